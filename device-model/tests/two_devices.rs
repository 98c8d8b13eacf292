//! End-to-end tests of the whole emulated RNIC, driven the way a guest driver
//! drives it: PCI configuration space, BAR0/BAR2, guest memory and MSI-X only,
//! through the mini driver in `support/` (written from the device contract). Two
//! devices talk over the in-process wire; faults come from each device's fault
//! engine. Every loop is bounded by a step count on a test-controlled clock.
//!
//! Run: `cargo test -p rnic-device --test two_devices`.

mod support;

use std::time::Duration;

use rnic_device::fault::{FaultAction, FaultRule, FaultScope, FaultSite, Trigger};
use support::*;

/// Sizes from 1 byte to several MTUs (the default path MTU here is 1024).
const SIZES: [u64; 4] = [1, 4096, 5000, 65536 + 123];
/// Step budget for one operation.
const MAX_STEPS: usize = 20_000;

fn add_rule(w: &mut World, node: usize, rule: FaultRule) {
    w.node(node)
        .dev
        .faults_mut()
        .add_rule(rule)
        .expect("valid fault rule");
}

/// RDMA WRITE from A into B's buffer, all sizes, with guard bytes checked on both
/// sides of the target range.
fn write_sizes(w: &mut World, c: &Conn, sizes: &[u64], seed: u64) {
    let big = sizes.iter().copied().max().unwrap_or(1) + 64;
    let src = w.node(c.a.node).buffer(c.a.pd, big, acc::LOCAL_WRITE);
    let dst = w
        .node(c.b.node)
        .buffer(c.b.pd, big, acc::LOCAL_WRITE | acc::REMOTE_WRITE);
    for (i, &len) in sizes.iter().enumerate() {
        let data = pattern(seed + i as u64, len as usize);
        let guard = pattern(seed + 1000 + i as u64, dst.len as usize);
        w.node(c.b.node).write_mem(dst.addr, &guard);
        w.node(c.a.node).write_mem(src.addr + 7, &data);
        let wr = SendWr::write(
            100 + i as u64,
            vec![src.sge(7, len as u32)],
            dst.va(32),
            dst.key,
        );
        w.node(c.a.node).post_send(c.a.qpn, &wr);
        let cqes = w.wait_cqes(c.a.node, c.a.scq, 1, MAX_STEPS);
        assert_eq!(cqes.len(), 1, "{cqes:?}");
        assert_cqe(&cqes[0], 100 + i as u64, cqe_op::RDMA_WRITE, wc::SUCCESS, "WRITE");
        assert_eq!(cqes[0].byte_len, len as u32, "WRITE byte count");
        assert_eq!(cqes[0].qpn, c.a.qpn);
        let got = w.node(c.b.node).read_mem(dst.addr, dst.len as usize);
        let mut want = guard.clone();
        want[32..32 + len as usize].copy_from_slice(&data);
        assert_bytes(&got, &want, &format!("WRITE of {len} bytes"));
    }
}

/// RDMA READ by A of B's buffer, all sizes.
fn read_sizes(w: &mut World, c: &Conn, sizes: &[u64], seed: u64) {
    let big = sizes.iter().copied().max().unwrap_or(1) + 64;
    let remote = w
        .node(c.b.node)
        .buffer(c.b.pd, big, acc::LOCAL_WRITE | acc::REMOTE_READ);
    let sink = w.node(c.a.node).buffer(c.a.pd, big, acc::LOCAL_WRITE);
    for (i, &len) in sizes.iter().enumerate() {
        let data = pattern(seed + i as u64, remote.len as usize);
        let guard = pattern(seed + 2000 + i as u64, sink.len as usize);
        w.node(c.b.node).write_mem(remote.addr, &data);
        w.node(c.a.node).write_mem(sink.addr, &guard);
        let wr = SendWr::read(
            200 + i as u64,
            vec![sink.sge(5, len as u32)],
            remote.va(11),
            remote.key,
        );
        w.node(c.a.node).post_send(c.a.qpn, &wr);
        let cqes = w.wait_cqes(c.a.node, c.a.scq, 1, MAX_STEPS);
        assert_eq!(cqes.len(), 1, "{cqes:?}");
        assert_cqe(&cqes[0], 200 + i as u64, cqe_op::RDMA_READ, wc::SUCCESS, "READ");
        assert_eq!(cqes[0].byte_len, len as u32, "READ byte count");
        let got = w.node(c.a.node).read_mem(sink.addr, sink.len as usize);
        let mut want = guard.clone();
        want[5..5 + len as usize].copy_from_slice(&data[11..11 + len as usize]);
        assert_bytes(&got, &want, &format!("READ of {len} bytes"));
    }
}

/// SEND from A to a RECV posted on B, all sizes.
fn send_sizes(w: &mut World, c: &Conn, sizes: &[u64], seed: u64) {
    let big = sizes.iter().copied().max().unwrap_or(1) + 64;
    let src = w.node(c.a.node).buffer(c.a.pd, big, 0);
    let rbuf = w.node(c.b.node).buffer(c.b.pd, big, acc::LOCAL_WRITE);
    for (i, &len) in sizes.iter().enumerate() {
        let data = pattern(seed + i as u64, len as usize);
        let guard = pattern(seed + 3000 + i as u64, rbuf.len as usize);
        w.node(c.b.node).write_mem(rbuf.addr, &guard);
        w.node(c.a.node).write_mem(src.addr, &data);
        w.node(c.b.node)
            .post_recv(c.b.qpn, 900 + i as u64, &[rbuf.sge(3, big as u32 - 3)]);
        let wr = SendWr::send(300 + i as u64, vec![src.sge(0, len as u32)]);
        w.node(c.a.node).post_send(c.a.qpn, &wr);
        let sc = w.wait_cqes(c.a.node, c.a.scq, 1, MAX_STEPS);
        assert_cqe(&sc[0], 300 + i as u64, cqe_op::SEND, wc::SUCCESS, "SEND");
        assert_eq!(sc[0].byte_len, len as u32);
        let rc = w.wait_cqes(c.b.node, c.b.rcq, 1, MAX_STEPS);
        assert_eq!(rc.len(), 1, "{rc:?}");
        assert_cqe(&rc[0], 900 + i as u64, cqe_op::RECV, wc::SUCCESS, "RECV");
        assert_eq!(rc[0].byte_len, len as u32, "RECV byte count");
        assert_eq!(rc[0].qpn, c.b.qpn);
        assert_eq!(rc[0].flags & 1, 0, "no immediate on a plain SEND");
        let got = w.node(c.b.node).read_mem(rbuf.addr, rbuf.len as usize);
        let mut want = guard.clone();
        want[3..3 + len as usize].copy_from_slice(&data);
        assert_bytes(&got, &want, &format!("SEND of {len} bytes"));
    }
}

#[test]
fn rdma_write_two_devices_all_sizes() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    write_sizes(&mut w, &c, &SIZES, 1);
    // The path MTU is 4096 on a second connection: fewer, bigger packets.
    let c4 = w.connect(
        A,
        B,
        &QpCfg {
            mtu_code: 5,
            ..QpCfg::default()
        },
    );
    write_sizes(&mut w, &c4, &SIZES, 11);
}

#[test]
fn rdma_read_two_devices_all_sizes() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    read_sizes(&mut w, &c, &SIZES, 2);
    let c4 = w.connect(
        A,
        B,
        &QpCfg {
            mtu_code: 5,
            ..QpCfg::default()
        },
    );
    read_sizes(&mut w, &c4, &SIZES, 12);
}

#[test]
fn send_recv_two_devices_all_sizes() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    send_sizes(&mut w, &c, &SIZES, 3);
    // And the other direction on the same connection.
    let rev = Conn { a: c.b, b: c.a };
    send_sizes(&mut w, &rev, &[1, 3000], 33);
}

#[test]
fn multi_sge_write_read_send() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    // Three source pieces in two MRs, gathered into one WRITE.
    let s1 = w.node(A).buffer(c.a.pd, 3000, acc::LOCAL_WRITE);
    let s2 = w.node(A).buffer(c.a.pd, 5000, acc::LOCAL_WRITE);
    let d = w
        .node(B)
        .buffer(c.b.pd, 9000, acc::LOCAL_WRITE | acc::REMOTE_WRITE | acc::REMOTE_READ);
    let p1 = pattern(41, 3000);
    let p2 = pattern(42, 5000);
    w.node(A).write_mem(s1.addr, &p1);
    w.node(A).write_mem(s2.addr, &p2);
    let sges = vec![s1.sge(100, 1000), s2.sge(0, 4321), s1.sge(2000, 999)];
    let mut want: Vec<u8> = Vec::new();
    want.extend_from_slice(&p1[100..1100]);
    want.extend_from_slice(&p2[..4321]);
    want.extend_from_slice(&p1[2000..2999]);
    w.node(A)
        .post_send(c.a.qpn, &SendWr::write(1, sges, d.va(10), d.key));
    let cq = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
    assert_cqe(&cq[0], 1, cqe_op::RDMA_WRITE, wc::SUCCESS, "gather WRITE");
    assert_eq!(cq[0].byte_len, want.len() as u32);
    let got = w.node(B).read_mem(d.addr + 10, want.len());
    assert_bytes(&got, &want, "gathered WRITE");

    // READ it back, scattered into three pieces.
    let r1 = w.node(A).buffer(c.a.pd, 2000, acc::LOCAL_WRITE);
    let r2 = w.node(A).buffer(c.a.pd, 6000, acc::LOCAL_WRITE);
    let sges = vec![r1.sge(0, 1500), r2.sge(17, 4000), r1.sge(1500, 500)];
    let total: usize = 6000;
    w.node(A)
        .post_send(c.a.qpn, &SendWr::read(2, sges, d.va(10), d.key));
    let cq = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
    assert_cqe(&cq[0], 2, cqe_op::RDMA_READ, wc::SUCCESS, "scatter READ");
    assert_eq!(cq[0].byte_len, total as u32);
    let mut got = w.node(A).read_mem(r1.addr, 1500);
    got.extend(w.node(A).read_mem(r2.addr + 17, 4000));
    got.extend(w.node(A).read_mem(r1.addr + 1500, 500));
    assert_bytes(&got, &want[..total], "scattered READ");

    // SEND gathered from two SGEs into a RECV with three SGEs.
    let q1 = w.node(B).buffer(c.b.pd, 700, acc::LOCAL_WRITE);
    let q2 = w.node(B).buffer(c.b.pd, 3000, acc::LOCAL_WRITE);
    w.node(B).post_recv(
        c.b.qpn,
        77,
        &[q1.sge(0, 700), q2.sge(0, 1000), q2.sge(2000, 1000)],
    );
    let sges = vec![s2.sge(0, 1200), s1.sge(0, 1000)];
    let mut sent = p2[..1200].to_vec();
    sent.extend_from_slice(&p1[..1000]);
    w.node(A).post_send(c.a.qpn, &SendWr::send(3, sges));
    let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
    assert_cqe(&rc[0], 77, cqe_op::RECV, wc::SUCCESS, "scatter RECV");
    assert_eq!(rc[0].byte_len, 2200);
    let mut got = w.node(B).read_mem(q1.addr, 700);
    got.extend(w.node(B).read_mem(q2.addr, 1000));
    got.extend(w.node(B).read_mem(q2.addr + 2000, 500));
    assert_bytes(&got, &sent, "scattered RECV");
    let sc = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
    assert_cqe(&sc[0], 3, cqe_op::SEND, wc::SUCCESS, "gather SEND");

    // Inline SEND.
    w.node(B).post_recv(c.b.qpn, 78, &[q1.sge(0, 700)]);
    let inline = pattern(99, 96);
    w.node(A)
        .post_send(c.a.qpn, &SendWr::send_inline(4, &inline));
    let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
    assert_cqe(&rc[0], 78, cqe_op::RECV, wc::SUCCESS, "inline RECV");
    assert_eq!(rc[0].byte_len, 96);
    assert_bytes(&w.node(B).read_mem(q1.addr, 96), &inline, "inline SEND");
}

#[test]
fn write_with_immediate_consumes_a_recv() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    let src = w.node(A).buffer(c.a.pd, 70000, 0);
    let dst = w
        .node(B)
        .buffer(c.b.pd, 70000, acc::LOCAL_WRITE | acc::REMOTE_WRITE);
    let rbuf = w.node(B).buffer(c.b.pd, 64, acc::LOCAL_WRITE);
    let marker = pattern(7, 64);
    w.node(B).write_mem(rbuf.addr, &marker);
    for (i, len) in [1u64, 65536 + 123].into_iter().enumerate() {
        let data = pattern(50 + i as u64, len as usize);
        w.node(A).write_mem(src.addr, &data);
        w.node(B)
            .post_recv(c.b.qpn, 500 + i as u64, &[rbuf.sge(0, 64)]);
        // Arm B's receive CQ: the RECV_RDMA_WITH_IMM completion must interrupt.
        w.node(B).arm_cq(c.b.rcq);
        let before = w.node(B).sink.trigger_count(2);
        let imm = 0xC0DE_0000 | i as u32;
        w.node(A).post_send(
            c.a.qpn,
            &SendWr::write_imm(i as u64, vec![src.sge(0, len as u32)], dst.va(0), dst.key, imm),
        );
        let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
        assert_eq!(rc.len(), 1);
        assert_cqe(
            &rc[0],
            500 + i as u64,
            cqe_op::RECV_RDMA_WITH_IMM,
            wc::SUCCESS,
            "WRITE_WITH_IMM receive",
        );
        assert_eq!(rc[0].imm, imm, "immediate delivered");
        assert_eq!(rc[0].flags & 1, 1, "immediate-valid flag");
        assert_eq!(rc[0].byte_len, len as u32, "RECV_RDMA_WITH_IMM byte count");
        assert_eq!(
            w.node(B).sink.trigger_count(2),
            before + 1,
            "armed CQ raised its vector once"
        );
        let sc = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
        assert_cqe(&sc[0], i as u64, cqe_op::RDMA_WRITE, wc::SUCCESS, "WRITE_WITH_IMM");
        let got = w.node(B).read_mem(dst.addr, len as usize);
        assert_bytes(&got, &data, "WRITE_WITH_IMM data");
        // The receive buffer itself is not written.
        assert_bytes(&w.node(B).read_mem(rbuf.addr, 64), &marker, "RECV buffer untouched");
    }
    // SEND with immediate, too.
    w.node(B).post_recv(c.b.qpn, 600, &[rbuf.sge(0, 64)]);
    w.node(A).write_mem(src.addr, &pattern(60, 10));
    w.node(A)
        .post_send(c.a.qpn, &SendWr::send_imm(9, vec![src.sge(0, 10)], 0x1234_5678));
    let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
    assert_cqe(&rc[0], 600, cqe_op::RECV, wc::SUCCESS, "SEND_WITH_IMM receive");
    assert_eq!((rc[0].imm, rc[0].flags & 1), (0x1234_5678, 1));
    assert_bytes(&w.node(B).read_mem(rbuf.addr, 10), &pattern(60, 10), "SEND_WITH_IMM data");
}

/// RNR: a WRITE with immediate (one packet) arrives before B posted a receive;
/// B answers RNR NAK, and once the receive is posted the retransmission must
/// succeed (RNR retry 7 = infinite).
#[test]
fn write_with_immediate_before_recv_is_retried_after_rnr() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    let src = w.node(A).buffer(c.a.pd, 4096, 0);
    let dst = w
        .node(B)
        .buffer(c.b.pd, 4096, acc::LOCAL_WRITE | acc::REMOTE_WRITE);
    let data = pattern(70, 100);
    w.node(A).write_mem(src.addr, &data);
    w.node(A).post_send(
        c.a.qpn,
        &SendWr::write_imm(1, vec![src.sge(0, 100)], dst.va(0), dst.key, 0xAB),
    );
    w.idle(20);
    assert!(w.node(A).poll_cq(c.a.scq).is_empty(), "no completion before a RECV");
    assert!(w.node(B).qp_stats(c.b.qpn).rnr_naks_sent > 0, "B sent RNR NAK");
    w.node(B).post_recv(c.b.qpn, 2, &[]);
    let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
    assert_cqe(&rc[0], 2, cqe_op::RECV_RDMA_WITH_IMM, wc::SUCCESS, "RECV after RNR");
    assert_eq!(rc[0].imm, 0xAB);
    let sc = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
    assert_cqe(&sc[0], 1, cqe_op::RDMA_WRITE, wc::SUCCESS, "WRITE_WITH_IMM after RNR");
    assert_bytes(&w.node(B).read_mem(dst.addr, 100), &data, "data after RNR");
}

/// Same with a SEND (RNR on SEND ONLY).
#[test]
fn send_before_recv_is_retried_after_rnr() {
    let mut w = World::two();
    let c = w.connect(A, B, &QpCfg::default());
    let src = w.node(A).buffer(c.a.pd, 4096, 0);
    let rbuf = w.node(B).buffer(c.b.pd, 4096, acc::LOCAL_WRITE);
    let data = pattern(71, 3000);
    w.node(A).write_mem(src.addr, &data);
    w.node(A)
        .post_send(c.a.qpn, &SendWr::send(1, vec![src.sge(0, 3000)]));
    w.idle(20);
    assert!(w.node(B).qp_stats(c.b.qpn).rnr_naks_sent > 0, "B sent RNR NAK");
    w.node(B).post_recv(c.b.qpn, 2, &[rbuf.sge(0, 4096)]);
    let rc = w.wait_cqes(B, c.b.rcq, 1, MAX_STEPS);
    assert_cqe(&rc[0], 2, cqe_op::RECV, wc::SUCCESS, "RECV after RNR");
    let sc = w.wait_cqes(A, c.a.scq, 1, MAX_STEPS);
    assert_cqe(&sc[0], 1, cqe_op::SEND, wc::SUCCESS, "SEND after RNR");
    assert_bytes(&w.node(B).read_mem(rbuf.addr, 3000), &data, "data after RNR");
}
