//! Boot tests of hang detection, reset and link indications: the guest's reset step calls
//! rnic.sys's MiniportCheckForHangEx (a healthy adapter is not hung) and MiniportResetEx,
//! which pends and completes through NdisMResetComplete; the reset adapter sends and receives
//! again through a loopback wire. The `NdisTimedDataHang` rule's self test is caught. (The
//! fatal-error scenarios and the link flap, whose NDIS_STATUS_LINK_STATE indications its judge
//! checks, run in `scripts/faults.sh`: cqe-fatal, wire-tx-fatal, wire-rx-fatal, link-flap.)

use guest_boot_tests::{assert_rule_selftest_caught, boot_guest, setup};

/// A fresh directory for one test's sockets.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rnic-reset-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_reset_step_pends_completes_once_and_the_adapter_sends_again() {
    let Some(a) = setup() else { return };
    let dir = scratch("step");
    let sock = dir.join("loop.sock");
    let sock = sock.to_str().expect("utf-8 path");
    let wire = format!("wire=unix:{sock},{sock}");
    let out = boot_guest(
        &a,
        &["--rnic", &wire, "--cmdline", "guest.ethernet=loopback"],
    );
    let _ = std::fs::remove_dir_all(&dir);
    out.assert_in_order(&[
        "ndis: MiniportRestart (round 3)",
        "ndis: MiniportCheckForHangEx returned FALSE",
        "ndis: MiniportResetEx",
        "rnic: ResetEx",
        "ndis: MiniportResetEx returned NDIS_STATUS_PENDING",
        // 63 receive buffers, or fewer while a receive indication is still up with NDIS
        // when the reset rebuilds the queues (its buffer goes back when it is returned).
        "rnic: Ethernet queues live: TX 0 and RX 0, 64 descriptors each, ",
        "rnic: reset: device back up",
        "ndis: NdisMResetComplete: NDIS_STATUS_SUCCESS (AddressingReset 0)",
        "ndis: reset: the adapter recovered; sending again",
        "ndis: MiniportSendNetBufferLists: 3 frames of [60, 512, 1514] bytes",
        "ndis: send completions: 3 of 3 NBLs completed with NDIS_STATUS_SUCCESS",
        "ndis: receive: 3 frames indicated, 3 of 3 sent frames back with their payloads intact",
        "ndis: OID_GEN_XMIT_OK: ",
        "ndis: MiniportPause (round 3)",
        "ndis: MiniportHaltEx",
        "verdict: PASS",
    ]);
    // The counters survive the reset: the sends after it add exactly their 3 frames to
    // whatever the earlier steps sent.
    let after_reset = &out.serial[out.serial.find("reset: the adapter recovered").unwrap()..];
    let xmit = after_reset
        .lines()
        .find_map(|l| l.strip_prefix("ndis: OID_GEN_XMIT_OK: "))
        .expect("an OID_GEN_XMIT_OK line after the reset");
    let counts: Vec<u64> = xmit
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] > 0 && counts[1] == counts[0] + 3,
        "OID_GEN_XMIT_OK after the reset: {xmit:?} (the counters must survive the reset and count the 3 new frames)"
    );
    assert_eq!(
        out.serial.matches("ndis: NdisMResetComplete").count(),
        1,
        "one pended reset, one completion"
    );
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn ndis_timed_data_hang_selftest_is_caught() {
    assert_rule_selftest_caught(
        "data-hang",
        &[
            "NdisTimedDataHang: 1 send(s) pending",
            "no send completed for",
        ],
    );
}
