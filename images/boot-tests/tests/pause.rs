//! Boot tests of the pause/restart state machine and NBL ownership: the guest pauses the
//! adapter while sends are in flight (and, over a loopback wire, while a receive indication
//! is up); rnic.sys must pend the pause, complete a send arriving while Pausing with
//! `NDIS_STATUS_PAUSED`, and call NdisMPauseComplete once, after the last send completed and
//! the last indication returned; nothing may follow while Paused, and after the restart a
//! frame still goes through. Each data-path verifier rule's self test (a misbehaving
//! miniport the guest plays) is caught and named.

use guest_boot_tests::{assert_rule_selftest_caught, boot_guest, setup, LoopbackWire};

/// The default boot (no wire): four sends in flight when MiniportPause is called.
#[test]
fn a_pause_with_sends_in_flight_pends_and_completes_once_they_complete() {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &[]);
    out.assert_in_order(&[
        "ndis: pause with sends in flight (adapter 0)",
        "ndis: MiniportSendNetBufferLists: 4 frames of [60, 124, 188, 252] bytes",
        "ndis: MiniportPause (round 1)",
        "rnic: Pause pends (4 NBLs outstanding)",
        "ndis: MiniportPause returned NDIS_STATUS_PENDING",
        "ndis: MiniportPause with 4 send NBL(s) in flight and 0 receive indication(s) up: NDIS_STATUS_PENDING",
        // A send while Pausing completes at once, with NDIS_STATUS_PAUSED.
        "ndis: MiniportSendNetBufferLists: 1 frames of [60] bytes",
        "ndis: a send while Pausing completed at once with NDIS_STATUS_PAUSED",
        // Interrupts back on: the DPC completes the four sends, the last one the pause.
        "rnic: Pause completes (last outstanding NBL ended)",
        "ndis: NdisMPauseComplete (adapter 0)",
        "ndis: the pending pause completed through NdisMPauseComplete",
        "ndis: paused adapter 0 quiet for 50 ms: 0 send completion(s) or indication(s) after the pause",
        "ndis: MiniportRestart (round 2)",
        "rnic: Restart",
        "ndis: after the restart a frame still goes through",
        "ndis: MiniportPause (round 2)",
        "ndis: MiniportPause returned NDIS_STATUS_SUCCESS",
        "ndis: MiniportHaltEx",
        "verdict: PASS",
    ]);
    assert!(
        out.serial
            .contains("ndis: send completions: 4 of 4 NBLs completed with NDIS_STATUS_SUCCESS"),
        "{}",
        out.serial
    );
    assert_eq!(
        out.serial.matches("ndis: NdisMPauseComplete").count(),
        1,
        "{}",
        out.serial
    );
    assert!(!out.serial.contains("contract violation"), "{}", out.serial);
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

/// Over a loopback wire a frame comes back and the guest holds its indication across the
/// pause: the sends' completions do not end the pause, the return of the indication does.
#[test]
fn a_pause_waits_for_the_receive_indication_to_return() {
    let Some(a) = setup() else { return };
    let wire = LoopbackWire::new();
    let out = boot_guest(
        &a,
        &[
            "--rnic",
            &wire.rnic_setting(),
            "--cmdline",
            "guest.ethernet=loopback",
        ],
    );
    out.assert_in_order(&[
        "ndis: pause with sends in flight (adapter 0)",
        "rnic: Pause pends (5 NBLs outstanding)",
        "ndis: MiniportPause with 4 send NBL(s) in flight and 1 receive indication(s) up: NDIS_STATUS_PENDING",
        "ndis: a send while Pausing completed at once with NDIS_STATUS_PAUSED",
        "ndis: send completions: 4 of 4 NBLs completed with NDIS_STATUS_SUCCESS",
        "ndis: returning 1 unclaimed received frame(s) to adapter 0",
        "rnic: Pause completes (last outstanding NBL ended)",
        "ndis: NdisMPauseComplete (adapter 0)",
        "ndis: the pending pause completed through NdisMPauseComplete",
        "ndis: paused adapter 0 quiet for 50 ms: 0 send completion(s) or indication(s) after the pause",
        "ndis: after the restart a frame still goes through",
        "verdict: PASS",
    ]);
    assert!(!out.serial.contains("contract violation"), "{}", out.serial);
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

#[test]
fn nbl_selftest_double_completion_is_caught() {
    assert_rule_selftest_caught(
        "nbl-double-complete",
        &["NdisNblDoubleComplete: NBL ", "completed twice"],
    );
}

#[test]
fn nbl_selftest_send_never_completed_by_halt_is_caught() {
    assert_rule_selftest_caught("nbl-leak", &["NdisNblLeak: 1 send NBL(s) never completed"]);
}

#[test]
fn nbl_selftest_send_complete_flags_against_the_irql_are_caught() {
    assert_rule_selftest_caught(
        "nbl-send-flags",
        &["NdisNblFlagsIrql: SendCompleteFlags 0x1", "IRQL 0"],
    );
}

#[test]
fn nbl_selftest_receive_flags_against_the_irql_are_caught() {
    assert_rule_selftest_caught(
        "nbl-receive-flags",
        &["NdisNblFlagsIrql: ReceiveFlags 0x0", "IRQL 2"],
    );
}

#[test]
fn nbl_selftest_receive_indicated_twice_is_caught() {
    assert_rule_selftest_caught(
        "nbl-receive-double-indicate",
        &[
            "NdisNblReceiveOwnership: ",
            "indicated again before NDIS returned it",
        ],
    );
}

#[test]
fn nbl_selftest_receive_freed_before_its_return_is_caught() {
    assert_rule_selftest_caught(
        "nbl-receive-freed",
        &[
            "NdisNblReceiveOwnership: ",
            "still indicated up (never returned)",
        ],
    );
}

#[test]
fn pause_selftest_success_with_a_send_outstanding_is_caught() {
    assert_rule_selftest_caught(
        "pause-return",
        &["MiniportPause_Return: MiniportPause returned NDIS_STATUS_SUCCESS with 1 send NBL(s) not completed"],
    );
}

#[test]
fn pause_selftest_completion_without_a_pause_is_caught() {
    assert_rule_selftest_caught(
        "pause-complete-not-pausing",
        &["NdisPauseComplete: called while adapter 0 is Running"],
    );
}

#[test]
fn pause_selftest_double_completion_is_caught() {
    assert_rule_selftest_caught(
        "pause-double-complete",
        &["NdisPauseComplete: called twice for one pause of adapter 0"],
    );
}

#[test]
fn pause_selftest_send_completion_while_paused_is_caught() {
    assert_rule_selftest_caught(
        "pause-paused-data-path",
        &["NdisPausedDataPath: a send completion while adapter 0 is Paused"],
    );
}
