//! Guest boot tests: the monitor boots our guest, which loads the real rnic.sys and
//! plays NDIS. See the crate docs for where artifacts come from.

use std::time::Duration;

use guest_boot_tests::{kvm_available, rename_import, run_vmm, Artifacts, Outcome};

const LIMIT: Duration = Duration::from_secs(180);

/// Locates artifacts and checks KVM; `None` means skipped on purpose.
fn setup() -> Option<Artifacts> {
    match kvm_available() {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => panic!("{e}"),
    }
    Some(Artifacts::locate().unwrap_or_else(|e| panic!("{e}")))
}

fn boot(a: &Artifacts, extra: &[&str], driver: &str) -> Outcome {
    let kernel = a.kernel.to_str().expect("utf-8 path");
    let mut args = vec!["--kernel", kernel, "--module", driver, "--memory", "256"];
    args.extend_from_slice(extra);
    run_vmm(&a.vmm, &args, LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn boot_with_rnic_runs_the_driver_life_cycle() {
    let Some(a) = setup() else { return };
    let out = boot(&a, &[], a.driver.to_str().unwrap());
    println!(
        "boot figure: rnic-vmm took {} ms from start to the guest's verdict",
        out.elapsed.as_millis()
    );
    out.assert_in_order(&[
        "ndis: DriverEntry",
        "ndis: miniport registered",
        "ndis: MiniportInitializeEx",
        "ndis: interrupt registered",
        "ndis: MSI-X vector fired",
        "ndis: MiniportMessageInterrupt ",
        "ndis: MiniportMessageInterruptDpc",
        "rnic: NOP completed",
        // TX and RX queue 0 created through the admin queue, receive buffers posted.
        "rnic: Ethernet queues live: TX 0 and RX 0, 64 descriptors each, 63 receive buffers posted",
        // The device's default MAC and MTU (docs/device-spec.md), read by the driver.
        "ndis: general attributes: MAC 02:7e:57:00:00:01, MTU 1500, media connect state 1, ",
        "ndis: MiniportInitializeEx returned NDIS_STATUS_SUCCESS",
        // InitializeEx leaves the adapter Paused; NDIS restarts and pauses it twice.
        "ndis: MiniportRestart (round 1)",
        "rnic: Restart",
        "ndis: MiniportRestart returned NDIS_STATUS_SUCCESS",
        // The OID matrix while Running (round 1).
        "ndis: OID matrix: ",
        "ndis: OID queries: ",
        "ndis: OID short buffers: ",
        "ndis: OID unclaimed 0x0001010c: NDIS_STATUS_NOT_SUPPORTED",
        "ndis: OID set 0x0001010e: NDIS_STATUS_SUCCESS, read back",
        "ndis: OID set 0x01010103: NDIS_STATUS_SUCCESS, read back",
        "ndis: OID set 0x0001010f: NDIS_STATUS_SUCCESS, read back",
        // Packet filter and multicast list go to the device (admin commands), so they pend.
        "ndis: OID sets: 3 of 3 applied and read back, 2 of 2 bad sets refused; 2 requests pended and completed through NdisMOidRequestComplete",
        // Frames of 60, 512 and 1514 bytes through the TX ring; completions from the DPC.
        "ndis: MiniportSendNetBufferLists: 3 frames of [60, 512, 1514] bytes",
        "ndis: send completions: 3 of 3 NBLs completed with NDIS_STATUS_SUCCESS",
        // No wire: the device drops what it sends, nothing comes back (spec §5.6).
        "ndis: receive: 0 frames indicated, 0 of 3 sent frames back with their payloads intact",
        "ndis: OID_GEN_XMIT_OK: 0 before, 3 after the sends",
        // Round 1 pauses with sends in flight: the pause pends (tests/pause.rs).
        "ndis: MiniportPause (round 1)",
        "rnic: Pause pends",
        "ndis: MiniportPause returned NDIS_STATUS_PENDING",
        "ndis: NdisMPauseComplete (adapter 0)",
        "ndis: MiniportRestart (round 2)",
        "ndis: MiniportPause (round 2)",
        "ndis: MiniportPause returned NDIS_STATUS_SUCCESS",
        "ndis: MiniportHaltEx",
        "rnic: Ethernet queues destroyed",
        "ndis: MiniportDriverUnload",
        "verdict: PASS",
    ]);
    assert_eq!(
        out.status,
        Some(0),
        "monitor exit status\n{}\n{}",
        out.serial,
        out.stderr
    );
    // Every OID the driver claims (however many its NDK work adds) answers, and every one
    // with a value refuses a short buffer.
    let claimed = number_after(&out.serial, "supported OIDs", "media connect state 1, ");
    for (line, before) in [
        ("ndis: OID matrix: ", "ndis: OID matrix: "),
        ("ndis: OID queries: ", "ndis: OID queries: "),
    ] {
        let n = number_after(&out.serial, line, before);
        assert_eq!(n, claimed, "{line}: {n} for {claimed} claimed OIDs");
    }
    let answered = out
        .serial
        .lines()
        .find(|l| l.starts_with("ndis: OID queries: "))
        .expect("queries line");
    assert!(
        answered.contains(&format!("{claimed} of {claimed} claimed OIDs answered")),
        "{answered}"
    );
    let short = out
        .serial
        .lines()
        .find(|l| l.starts_with("ndis: OID short buffers: "))
        .expect("short-buffer line");
    let mut nums = short
        .trim_start_matches("ndis: OID short buffers: ")
        .split(' ')
        .filter_map(|w| w.parse::<usize>().ok());
    let (refused, tried) = (nums.next(), nums.next());
    assert!(
        refused.is_some() && refused == tried && tried < Some(claimed + 1),
        "{short}"
    );
}

/// The number that follows `before` on the serial line containing `line`.
fn number_after(serial: &str, line: &str, before: &str) -> usize {
    let l = serial
        .lines()
        .find(|l| l.contains(line))
        .unwrap_or_else(|| panic!("no line with {line:?}"));
    let rest = &l[l.find(before).expect("prefix") + before.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {before:?} in {l:?}"))
}

/// The Ethernet data path end to end: the RNIC's wire is a Unix datagram socket that sends to
/// its own path (a loopback cable), so every frame the guest sends through the driver's TX
/// ring comes back through the RX ring and is indicated up; the guest checks each payload
/// byte for byte, returns the NBLs, and checks the statistics OIDs.
#[test]
fn frames_sent_through_a_loopback_wire_come_back_intact() {
    let Some(a) = setup() else { return };
    let dir = std::env::temp_dir().join(format!("rnic-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("loop.sock");
    let sock = sock.to_str().expect("utf-8 path");
    let wire = format!("wire=unix:{sock},{sock}");
    let out = boot(
        &a,
        &["--rnic", &wire, "--cmdline", "guest.ethernet=loopback"],
        a.driver.to_str().unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    out.assert_in_order(&[
        "rnic: Ethernet queues live: TX 0 and RX 0, 64 descriptors each, 63 receive buffers posted",
        "ndis: MiniportRestart returned NDIS_STATUS_SUCCESS",
        "ndis: MiniportSendNetBufferLists: 3 frames of [60, 512, 1514] bytes",
        "ndis: send completions: 3 of 3 NBLs completed with NDIS_STATUS_SUCCESS",
        "ndis: receive: 3 frames indicated, 3 of 3 sent frames back with their payloads intact",
        "ndis: OID_GEN_RCV_OK: 0 before, 3 after the receives",
        "ndis: OID_GEN_XMIT_OK: 0 before, 3 after the sends",
        "rnic: Ethernet queues destroyed",
        "verdict: PASS",
    ]);
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn boot_without_rnic_reports_it_and_fails() {
    let Some(a) = setup() else { return };
    let out = boot(&a, &["--no-rnic"], a.driver.to_str().unwrap());
    out.assert_in_order(&["pci: no rnic found", "verdict: FAIL (no RNIC)"]);
    assert_eq!(out.status, Some(2), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn loader_refuses_an_import_the_guest_does_not_provide() {
    let Some(a) = setup() else { return };
    let image = std::fs::read(&a.driver).expect("read rnic.sys");
    let bad = rename_import(
        &image,
        "NdisMRegisterInterruptEx",
        "NdisMRegisterInterruptXx",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("rnic-badimport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rnic.sys");
    std::fs::write(&path, bad).unwrap();
    let out = boot(&a, &[], path.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    out.assert_in_order(&[
        "loader: unresolved import ndis.sys!NdisMRegisterInterruptXx",
        "verdict: FAIL (load",
    ]);
    assert_eq!(out.status, Some(3), "{}\n{}", out.serial, out.stderr);
    assert!(!out.serial.contains("ndis: DriverEntry"));
}

/// The guest's own contract checker: before loading the driver, the guest makes
/// deliberately bad NDIS calls and checks each is recorded and refused, then boots
/// normally. Guards the verifier itself (a verifier that accepts everything would
/// pass every other boot test).
#[test]
fn guest_contract_checker_selftest_passes() {
    let Some(a) = setup() else { return };
    let out = boot(
        &a,
        &["--cmdline", "guest.selftest=contract"],
        a.driver.to_str().unwrap(),
    );
    out.assert_in_order(&[
        "guest: selftest contract: 20 checks passed",
        "ndis: DriverEntry",
        "verdict: PASS",
    ]);
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}
