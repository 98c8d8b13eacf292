//! A hostile RoCEv2 peer against one device: each case sends the adversarial
//! frames issue 10 names (bad ICRC, PSN outside the window, lengths past the region,
//! an unknown opcode, a flood, duplicate READ requests in a loop) and checks that the
//! device drops, NAKs or errors exactly as docs/device-spec.md §10.4, §10.5 and
//! §11.4 say, that its work and the host memory it holds stay bounded, and that the
//! connection still works where the contract says it must.
//!
//! The fixture is the `wire` fuzz target's rig (`fuzz/src/wire.rs`): a device with
//! one RC QP connected to a peer the test plays on the other end of an in-process
//! wire.

#[path = "../fuzz/src/wire.rs"]
#[allow(dead_code)]
mod wire;

use rnic_contract::verbs::QpState;
use rnic_device::device::RX_BUDGET;
use rnic_device::roce::{self, opcode, syndrome, Reth, RocePacket};
use rnic_device::wire::QUEUE_FRAMES;
use wire::{WireRig, MTU, PEER_PSN};

/// The AETH syndrome of an ACK (credit code 31: no end-to-end credits, §10.4).
const ACK: u8 = syndrome::ACK_UNLIMITED_CREDIT;

fn frame(p: &RocePacket) -> Vec<u8> {
    roce::encode(p).expect("the test builds valid packets")
}

/// An RDMA WRITE ONLY of `len` bytes at `offset` into the region, with `rkey`.
fn write_only(rig: &WireRig, psn: u32, offset: u64, len: usize, rkey: u32) -> RocePacket {
    let mut p = rig.request(opcode::RDMA_WRITE_ONLY, psn);
    p.reth = Some(Reth {
        va: rig.remote.va(offset),
        rkey,
        dma_len: len as u32,
    });
    p.payload = vec![0x5A; len];
    p
}

/// A READ request for `len` bytes from the start of the region.
fn read_request(rig: &WireRig, psn: u32, len: u32) -> RocePacket {
    let mut p = rig.request(opcode::RDMA_READ_REQUEST, psn);
    p.reth = Some(Reth {
        va: rig.remote.va(0),
        rkey: rig.remote.key,
        dma_len: len,
    });
    p
}

fn qp_state(rig: &WireRig) -> Option<QpState> {
    rig.node
        .dev
        .stats()
        .verbs
        .qps
        .iter()
        .find(|q| q.qpn == rig.qpn)
        .and_then(|q| q.state)
}

fn frames_dropped(rig: &WireRig) -> u64 {
    rig.node.dev.stats().verbs.global.frames_dropped
}

/// The AETH syndromes and PSNs of the packets the device sent.
fn answers(rig: &mut WireRig) -> Vec<(u8, u32)> {
    rig.sent_packets()
        .iter()
        .map(|p| {
            let aeth = p.aeth.expect("an acknowledgement carries an AETH");
            (aeth.syndrome, p.bth.psn)
        })
        .collect()
}

#[test]
fn a_bad_icrc_is_dropped_and_counted_without_an_answer() {
    let mut rig = WireRig::new();
    let mut f = frame(&write_only(&rig, PEER_PSN, 0, 64, rig.remote.key));
    let last = f.len() - 1;
    f[last] ^= 0x01; // the ICRC's last byte
    let dropped = frames_dropped(&rig);
    rig.inject(&f);
    assert!(rig.sent_frames().is_empty(), "a bad ICRC was answered");
    assert_eq!(frames_dropped(&rig), dropped + 1);
    assert_eq!(rig.node.read_mem(rig.remote.addr, 64), vec![0; 64]);
    // The same write with its ICRC intact is executed and acknowledged.
    rig.inject(&frame(&write_only(&rig, PEER_PSN, 0, 64, rig.remote.key)));
    assert_eq!(answers(&mut rig), vec![(ACK, PEER_PSN)]);
    assert_eq!(rig.node.read_mem(rig.remote.addr, 64), vec![0x5A; 64]);
}

#[test]
fn psns_past_the_expected_one_get_one_sequence_nak_per_episode() {
    let mut rig = WireRig::new();
    for ahead in [1000, 1001, 5_000_000] {
        let psn = (PEER_PSN + ahead) & 0xFF_FFFF;
        rig.inject(&frame(&write_only(&rig, psn, 0, 8, rig.remote.key)));
    }
    assert_eq!(
        answers(&mut rig),
        vec![(syndrome::NAK_PSN_SEQUENCE_ERROR, PEER_PSN)],
        "one NAK for the expected PSN, then silence"
    );
    // The expected PSN arrives: executed and acknowledged; the QP stays usable.
    rig.inject(&frame(&write_only(&rig, PEER_PSN, 0, 8, rig.remote.key)));
    assert_eq!(answers(&mut rig), vec![(ACK, PEER_PSN)]);
    assert_eq!(qp_state(&rig), Some(QpState::Rts));
}

#[test]
fn a_write_past_the_region_is_a_remote_access_nak_and_the_qp_errors() {
    let mut rig = WireRig::new();
    let len = rig.remote.len;
    // 64 bytes starting 8 bytes before the end of the region.
    let p = write_only(&rig, PEER_PSN, len - 8, 64, rig.remote.key);
    rig.inject(&frame(&p));
    assert_eq!(
        answers(&mut rig),
        vec![(syndrome::NAK_REMOTE_ACCESS_ERROR, PEER_PSN)]
    );
    assert_eq!(qp_state(&rig), Some(QpState::Err));
    assert_eq!(
        rig.node.read_mem(rig.remote.addr + len - 8, 8),
        vec![0; 8],
        "nothing of the refused write reached memory"
    );
    // A QP in ERR drops further requests without answering.
    rig.inject(&frame(&write_only(
        &rig,
        PEER_PSN + 1,
        0,
        8,
        rig.remote.key,
    )));
    assert!(rig.sent_frames().is_empty());
    rig.settle();
    rig.check_guard();
}

#[test]
fn a_write_with_a_wrong_key_or_past_16_mib_is_refused() {
    let mut rig = WireRig::new();
    let wrong = rig.remote.key ^ 0x0100; // another MR index
    rig.inject(&frame(&write_only(&rig, PEER_PSN, 0, 8, wrong)));
    assert_eq!(
        answers(&mut rig),
        vec![(syndrome::NAK_REMOTE_ACCESS_ERROR, PEER_PSN)]
    );
    let mut rig = WireRig::new();
    let mut p = write_only(&rig, PEER_PSN, 0, MTU, rig.remote.key);
    p.bth.opcode = opcode::RDMA_WRITE_FIRST;
    p.reth.as_mut().expect("RETH").dma_len = (16 << 20) + 1;
    rig.inject(&frame(&p));
    assert_eq!(
        answers(&mut rig),
        vec![(syndrome::NAK_INVALID_REQUEST, PEER_PSN)]
    );
    assert_eq!(qp_state(&rig), Some(QpState::Err));
}

#[test]
fn an_unknown_opcode_is_dropped_without_an_answer() {
    let mut rig = WireRig::new();
    // A SEND ONLY re-labelled with RC opcode 0x1F (reserved), ICRC recomputed so
    // that the opcode check, not the ICRC check, is what refuses it.
    let mut f = frame(&rig.request(opcode::SEND_ONLY, PEER_PSN));
    let bth = 14 + 20 + 8;
    f[bth] = 0x1F;
    let end = f.len() - 4;
    let icrc = roce::icrc::icrc(&f[14..end]).expect("long enough");
    f[end..].copy_from_slice(&icrc.to_le_bytes());
    let dropped = frames_dropped(&rig);
    rig.inject(&f);
    assert!(rig.sent_frames().is_empty());
    assert_eq!(frames_dropped(&rig), dropped + 1);
    assert_eq!(qp_state(&rig), Some(QpState::Rts));
}

#[test]
fn a_flood_is_taken_at_most_rx_budget_frames_per_poll_and_the_wire_queue_bounds_memory() {
    let mut rig = WireRig::new();
    let mut f = frame(&write_only(&rig, PEER_PSN, 0, 64, rig.remote.key));
    let last = f.len() - 1;
    f[last] ^= 0x01; // dropped by the device: the test counts, nothing is answered
    let mut queued = 0;
    for _ in 0..4 * QUEUE_FRAMES {
        if rig.queue(&f) {
            queued += 1;
        }
    }
    assert_eq!(
        queued, QUEUE_FRAMES,
        "the wire holds at most QUEUE_FRAMES frames: the rest are refused at the sender"
    );
    let mut polls = 0;
    let mut taken = 0;
    while taken < queued as u64 {
        let before = frames_dropped(&rig);
        rig.node.dev.poll(rig.now);
        let now = frames_dropped(&rig) - before;
        assert!(
            now as usize <= RX_BUDGET,
            "one poll took {now} frames (budget {RX_BUDGET})"
        );
        assert!(now > 0, "a poll made no progress with frames waiting");
        taken += now;
        polls += 1;
    }
    assert_eq!(polls, queued.div_ceil(RX_BUDGET));
    assert!(rig.sent_frames().is_empty());
}

#[test]
fn duplicate_read_requests_in_a_loop_each_get_at_most_one_window_of_responses() {
    // A region of 256 MTU-sized packets: more than one send window (128).
    let region = 256 * MTU as u64;
    let mut rig = WireRig::with_region(region);
    rig.inject(&frame(&read_request(&rig, PEER_PSN, region as u32)));
    let first = rig.sent_packets();
    assert_eq!(first.len(), 256, "the original request is answered whole");
    for round in 0..200 {
        rig.inject(&frame(&read_request(&rig, PEER_PSN, region as u32)));
        let again = rig.sent_packets();
        assert_eq!(
            again.len(),
            128,
            "duplicate {round}: one send window of responses, no more"
        );
        assert_eq!(again[0].bth.psn, PEER_PSN);
    }
    // The responder's expected PSN did not move: the next new request is served.
    let next = (PEER_PSN + 256) & 0xFF_FFFF;
    rig.inject(&frame(&read_request(&rig, next, 8)));
    let answer = rig.sent_packets();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].bth.opcode, opcode::RDMA_READ_RESPONSE_ONLY);
    assert_eq!(answer[0].bth.psn, next);
    assert_eq!(qp_state(&rig), Some(QpState::Rts));
}
