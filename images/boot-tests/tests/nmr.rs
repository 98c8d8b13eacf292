//! Boot tests of the guest's NMR (netio.sys): the driver registers its diagnostics NPI, the
//! guest's client attaches to it, reads the adapter statistics through the provider's
//! dispatch table and detaches (the provider's detach pends while the client holds a call
//! sequence), and unload waits for the deregistration; each NMR verifier rule's self test (a
//! fake provider and client the guest plays) is caught and named; every import of rnic.sys
//! is in the guest's export table and in the real system's export lists.

use guest_boot_tests::{assert_rule_selftest_caught, boot_guest, setup, LoopbackWire};

#[test]
fn default_boot_attaches_calls_and_detaches_the_diagnostics_npi() {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &[]);
    out.assert_in_order(&[
        "ndis: DriverEntry",
        "nmr: NmrRegisterProvider: provider ",
        "rnic: NMR provider registered (diagnostics NPI)",
        "ndis: MiniportInitializeEx",
        "ndis: OID_GEN_XMIT_OK: ",
        "nmr: NmrRegisterClient: client ",
        "rnic: NMR client attached (binding ",
        "nmr: client ",
        "nmr: ClientAttachProvider(binding ",
        "nmr: QueryAdapterStatistics(0): ",
        "nmr: NmrDeregisterClient(",
        "rnic: NMR detach pends (1 call sequence(s) in flight)",
        "(the detach pends)",
        "nmr: NmrDeregisterClient returned 0x00000103 with a call sequence in flight",
        "rnic: NMR detach completes (last call sequence ended)",
        "nmr: NmrProviderDetachClientComplete(binding ",
        "nmr: NmrClientDetachProviderComplete(binding ",
        "rnic: NMR binding cleaned up",
        "detached and cleaned up",
        "nmr: NmrWaitForClientDeregisterComplete(",
        "nmr: diagnostics client detached",
        "ndis: MiniportDriverUnload",
        "nmr: NmrDeregisterProvider(",
        "nmr: NmrWaitForProviderDeregisterComplete(",
        "rnic: NMR provider deregistered (wait: 0)",
        "verdict: PASS",
    ]);
    assert!(
        out.serial
            .lines()
            .any(|l| l.starts_with("nmr: NmrRegisterProvider: provider ")
                && l.ends_with("for NPI {6d1f3c52-8a47-4e0b-9c3a-52e1a7b40d19}")),
        "the driver registered no provider of the diagnostics NPI"
    );
    let stats = out
        .serial
        .lines()
        .find(|l| l.starts_with("nmr: QueryAdapterStatistics(0): "))
        .expect("statistics line");
    let sent: u64 = stats
        .trim_start_matches("nmr: QueryAdapterStatistics(0): ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("frames sent");
    assert!(sent > 0, "{stats}");
    assert!(!out.serial.contains("contract violation"), "{}", out.serial);
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn nmr_selftest_double_attach_is_caught() {
    assert_rule_selftest_caught(
        "nmr-double-attach",
        &["NmrDoubleAttach: NmrClientAttachProvider called again for binding"],
    );
}

#[test]
fn nmr_selftest_detach_double_complete_is_caught() {
    assert_rule_selftest_caught(
        "nmr-detach-double-complete",
        &[
            "NmrDetachDoubleComplete: NmrProviderDetachClientComplete for binding",
            "was already complete",
        ],
    );
}

#[test]
fn nmr_selftest_deregistration_unfinished_at_unload_is_caught() {
    assert_rule_selftest_caught(
        "nmr-deregister-incomplete",
        &[
            "NmrDeregisterComplete: unload returned while provider registration",
            "1 binding(s) not detached",
        ],
    );
}

/// When NmrRegisterProvider fails, DriverEntry deregisters the miniport it registered and
/// fails with the NMR's status: the boot ends with that reason and no contract violation (a
/// miniport left registered would be one).
#[test]
fn a_refused_nmr_registration_fails_driver_entry_cleanly() {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &["--cmdline", "guest.selftest=nmr-refuse-provider"]);
    out.assert_in_order(&[
        "guest: selftest nmr-refuse-provider: ",
        "ndis: DriverEntry",
        "rnic: miniport driver registered",
        "nmr: NmrRegisterProvider: refused with STATUS_INSUFFICIENT_RESOURCES",
        "rnic: NmrRegisterProvider failed: c000009a",
        "ndis: miniport deregistered",
        "verdict: FAIL (DriverEntry returned 0xc000009a)",
    ]);
    assert!(!out.serial.contains("contract violation"), "{}", out.serial);
    assert!(!out.serial.contains("ndis: MiniportInitializeEx"));
    assert_eq!(out.status, Some(1), "{}\n{}", out.serial, out.stderr);
}

/// Every import of the real rnic.sys is in the guest's export table (the boot says so before
/// loading the driver) and is a name the real Windows module exports (mingw-w64's import
/// libraries), netio.sys's NMR functions among them.
#[test]
fn every_rnic_sys_import_is_exported_by_the_guest_and_by_windows() {
    use artifact_check::winexports::{missing_exports, MINGW_LIB_DIR};
    let Some(a) = setup() else { return };
    let image = std::fs::read(&a.driver).unwrap_or_else(|e| panic!("{}: {e}", a.driver.display()));
    let report = artifact_check::check_driver_image(&image).unwrap_or_else(|e| panic!("{e}"));
    let imports = report.import_pairs();
    for (module, function) in ndis_abi::NMR_PROVIDER_IMPORTS {
        assert!(
            imports.contains(&(module.to_string(), function.to_string())),
            "rnic.sys does not import {module}!{function}"
        );
    }
    let missing = missing_exports(std::path::Path::new(MINGW_LIB_DIR), &imports)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(missing.is_empty(), "not exported by Windows: {missing:?}");
    let out = boot_guest(&a, &[]);
    assert!(
        !out.serial.contains("the export table lacks"),
        "{}",
        out.serial
    );
    out.assert_in_order(&["ndis: DriverEntry", "verdict: PASS"]);
}

/// The value printed after `name ` on the guest's `nmr: QueryDeviceFaultCounters(0): ` line.
fn fault_counter(serial: &str, name: &str) -> u64 {
    let line = serial
        .lines()
        .find(|l| l.starts_with("nmr: QueryDeviceFaultCounters(0): "))
        .unwrap_or_else(|| panic!("no fault counters line\n{serial}"));
    line.split(", ")
        .find_map(|item| item.rsplit(": ").next()?.strip_prefix(&format!("{name} ")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line:?} has no counter {name}"))
}

/// Without faults the device's fault counters, read over the diagnostics NPI (`GET_STATS`),
/// are zero; the device was reset at InitializeEx.
#[test]
fn the_diagnostics_npi_reads_the_device_fault_counters() {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &[]);
    out.assert_in_order(&[
        "nmr: QueryAdapterStatistics(0): ",
        "nmr: QueryDeviceFaultCounters(0): ",
        "nmr: diagnostics client detached",
        "verdict: PASS",
    ]);
    assert!(fault_counter(&out.serial, "device_resets") >= 1);
    for name in [
        "tx_wire_errors",
        "rx_wire_errors",
        "admin_failed",
        "dma_errors",
        "tx_queue0_errors",
        "rx_queue0_errors",
    ] {
        assert_eq!(
            fault_counter(&out.serial, name),
            0,
            "{name}\n{}",
            out.serial
        );
    }
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

/// With a fault plan that fails the device's first DMA write into receive queue 0 (a frame
/// coming back over a loopback wire), the device's DMA error and RX queue 0 error counters
/// read over the NPI are above zero, and the boot still completes.
#[test]
fn an_injected_dma_fault_shows_in_the_device_fault_counters() {
    let Some(a) = setup() else { return };
    let wire = LoopbackWire::new();
    let plan = wire.dir().join("plan.toml");
    std::fs::write(
        &plan,
        "[[fault]]\nsite = \"dma_write\"\naction = \"dma_error\"\nqueue = 0x10000\nonce_at = 1\n",
    )
    .unwrap();
    let rnic = format!(
        "{},faults={}",
        wire.rnic_setting(),
        plan.to_str().expect("utf-8 path")
    );
    let out = boot_guest(
        &a,
        &["--rnic", &rnic, "--cmdline", "guest.ethernet=loopback"],
    );
    out.assert_in_order(&["nmr: QueryDeviceFaultCounters(0): ", "verdict: PASS"]);
    for name in ["dma_errors", "rx_queue0_errors"] {
        assert!(
            fault_counter(&out.serial, name) >= 1,
            "{name}\n{}",
            out.serial
        );
    }
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}
