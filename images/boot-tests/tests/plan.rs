//! Boot tests of the guest's plan and module choice: a typo in the command line or an extra
//! driver module is an error the user sees, never a run that silently tests something else.

use std::time::Duration;

use guest_boot_tests::{kvm_available, run_vmm, Artifacts, Outcome};

const LIMIT: Duration = Duration::from_secs(120);

/// Locates artifacts and checks KVM; `None` means skipped on purpose.
fn setup() -> Option<Artifacts> {
    match kvm_available() {
        Ok(true) => Some(Artifacts::locate().unwrap_or_else(|e| panic!("{e}"))),
        Ok(false) => None,
        Err(e) => panic!("{e}"),
    }
}

fn boot(a: &Artifacts, extra: &[&str]) -> Outcome {
    let kernel = a.kernel.to_str().expect("utf-8 path");
    let driver = a.driver.to_str().expect("utf-8 path");
    let mut args = vec!["--kernel", kernel, "--module", driver];
    args.extend_from_slice(extra);
    run_vmm(&a.vmm, &args, LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_unknown_selftest_is_a_bad_plan() {
    let Some(a) = setup() else { return };
    let out = boot(&a, &["--cmdline", "guest.selftest=bogus"]);
    out.assert_in_order(&[
        "guest: bad plan: unknown self test \"bogus\" (known: ud, de, pf, panic, timer, contract, ",
        "verdict: FAIL (bad guest plan)",
    ]);
    // The error names every self test a user may choose (the list grows with the rules; one
    // of each family is checked here).
    let line = out
        .serial
        .lines()
        .find(|l| l.contains("unknown self test"))
        .expect("the bad-plan line");
    for name in [
        "ndk-irql",
        "nmr-refuse-provider",
        "data-hang",
        "nbl-leak",
        "pause-return",
    ] {
        assert!(line.contains(name), "{name} missing from {line:?}");
    }
    assert_eq!(out.status, Some(5), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn an_unknown_key_is_a_bad_plan() {
    let Some(a) = setup() else { return };
    let out = boot(&a, &["--cmdline", "guest.selftst=timer"]);
    out.assert_in_order(&["guest: bad plan: unknown command-line key \"guest.selftst\""]);
    assert_eq!(out.status, Some(5), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn a_second_driver_module_is_refused() {
    let Some(a) = setup() else { return };
    let second = format!("{}=second.sys", a.driver.to_str().expect("utf-8 path"));
    let out = boot(&a, &["--module", &second]);
    out.assert_in_order(&[
        "loader: more than one driver module (rnic.sys, second.sys)",
        "verdict: FAIL (load: no single driver module)",
    ]);
    assert!(!out.serial.contains("ndis: DriverEntry"), "{}", out.serial);
    assert_eq!(out.status, Some(3), "{}\n{}", out.serial, out.stderr);
}
