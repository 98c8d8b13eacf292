//! The loopback data path moves each payload byte once, guest source to guest
//! destination, and only after both protection checks (the requester's lkey check
//! of the source, the responder's rkey/lkey check of the destination).

use super::*;

/// (reads, writes) the test environment logged inside `[lo, lo+len)`.
fn accesses_in(env: &TestEnv, lo: u64, len: u64) -> (usize, usize) {
    let inside = |r: &&DmaRecord| r.addr >= lo && r.addr < lo + len;
    let reads = env.dma_log.iter().filter(inside).filter(|r| !r.write);
    let writes = env.dma_log.iter().filter(inside).filter(|r| r.write);
    (reads.count(), writes.count())
}

fn write_wr(l: &Loop, len: u32, rkey: u32) -> SendWr {
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 7);
    w.sges = vec![(l.buf_a, len, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = rkey;
    w
}

/// A loop whose device delivers one loopback packet per service call (packets
/// wait in the queue between calls).
fn one_packet_per_call() -> Loop {
    let limits = VerbsLimits {
        max_loopback_per_call: 1,
        ..VerbsLimits::default()
    };
    Loop::with_limits(ConnParams::default(), limits)
}

fn deregister(l: &mut Loop, key: u32) {
    let mut o = [0u8; 56];
    put32(&mut o, 0, key);
    assert_eq!(l.d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
}

#[test]
fn loopback_write_and_send_move_every_byte_with_one_guest_to_guest_copy() {
    // MTU 256: a 700-byte WRITE is three packets, the SEND's receive buffer is
    // split over two SGEs so copies follow both sides' piece boundaries.
    let mut l = Loop::new();
    let data = pattern(700, 3);
    l.d.write_mem(l.buf_a, &data);
    let w = write_wr(&l, 700, l.key_b);
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(l.d.read_mem(l.buf_b, 700), data);
    assert_eq!(l.d.env.copied_bytes, 700);

    l.recv_b(
        9,
        &[
            (l.buf_b + 4096, 100, l.key_b),
            (l.buf_b + 8192, 600, l.key_b),
        ],
    );
    let mut s = signaled(wqe::opcode::SEND, 8);
    s.sges = vec![(l.buf_a, 700, l.key_a)];
    l.send_a(s);
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(l.cqes_b()[0].byte_len, 700);
    assert_eq!(l.d.read_mem(l.buf_b + 4096, 100), data[..100]);
    assert_eq!(l.d.read_mem(l.buf_b + 8192, 600), data[100..]);
    // Nothing went through a packet buffer: every payload byte was a copy.
    assert_eq!(l.d.env.copied_bytes, 1400);
}

#[test]
fn loopback_write_whose_destination_check_fails_reads_and_moves_no_byte() {
    let mut l = Loop::new();
    l.d.write_mem(l.buf_a, &pattern(300, 1));
    l.d.env.log_dma = true;
    let w = write_wr(&l, 300, l.key_b ^ 0x80);
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
    assert_eq!(l.d.read_mem(l.buf_b, 65536), vec![0; 65536]);
    assert_eq!(
        accesses_in(&l.d.env, l.buf_a, 65536),
        (0, 0),
        "source touched"
    );
    assert_eq!(
        accesses_in(&l.d.env, l.buf_b, 65536),
        (0, 0),
        "target touched"
    );
    assert_eq!(l.d.env.copied_bytes, 0);
}

#[test]
fn loopback_write_whose_source_check_fails_moves_no_byte() {
    let mut l = Loop::new();
    l.d.env.log_dma = true;
    let mut w = write_wr(&l, 300, l.key_b);
    w.sges = vec![(l.buf_a, 300, l.key_a ^ 0x80)];
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::LocalProtectionError));
    assert_eq!(accesses_in(&l.d.env, l.buf_b, 65536), (0, 0));
    assert_eq!(l.d.env.copied_bytes, 0);
}

#[test]
fn source_mr_deregistered_in_flight_stops_the_copy_and_fails_the_sender() {
    // One loopback packet per service call: the first packet of a two-packet
    // WRITE is placed by the doorbell, the second is still queued when the source
    // MR goes; its payload is never read and the sender completes in error.
    let mut l = one_packet_per_call();
    let data = pattern(512, 5);
    l.d.write_mem(l.buf_a, &data);
    let w = write_wr(&l, 512, l.key_b);
    l.send_a(w);
    assert_eq!(l.d.read_mem(l.buf_b, 256), data[..256]);
    assert_eq!(l.d.v.loopback_pending(), 1);
    let key = l.key_a;
    deregister(&mut l, key);
    assert_eq!(l.d.read_mem(l.buf_b + 256, 256), vec![0; 256]);
    assert_eq!(l.d.env.copied_bytes, 256);
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!(ca[0].status, st(WcStatus::LocalProtectionError));
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
}

#[test]
fn loopback_source_read_failure_completes_the_sender_fatal_and_writes_nothing() {
    let mut l = Loop::new();
    l.d.env.fail_reads = Some((l.buf_a, l.buf_a + 16));
    let w = write_wr(&l, 16, l.key_b);
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::Fatal));
    assert_eq!(l.d.read_mem(l.buf_b, 16), vec![0; 16]);
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
}

fn read_wr(l: &Loop, len: u32, rkey: u32) -> SendWr {
    let mut w = signaled(wqe::opcode::RDMA_READ, 9);
    w.sges = vec![(l.buf_a, len, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = rkey;
    w
}

#[test]
fn loopback_read_moves_every_byte_with_one_guest_to_guest_copy() {
    // MTU 256: a 700-byte READ is three responses; its data moves from the
    // responder's MR straight into the READ's buffer.
    let mut l = Loop::new();
    let data = pattern(700, 7);
    l.d.write_mem(l.buf_b, &data);
    l.d.env.log_dma = true;
    let w = read_wr(&l, 700, l.key_b);
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!((ca[0].status, ca[0].byte_len), (0, 700));
    assert_eq!(l.d.read_mem(l.buf_a, 700), data);
    assert_eq!(l.d.env.copied_bytes, 700);
    // Only copies touched either buffer: no plain read of the responder's memory
    // into a packet, no plain write into the requester's.
    let plain = l.d.env.dma_log.iter().filter(|r| {
        let inside = |b: u64| r.addr >= b && r.addr < b + 65536;
        (inside(l.buf_a) || inside(l.buf_b)) && r.scope.is_some_and(|s| s.mr.is_some())
    });
    assert_eq!(plain.count(), 2 * l.d.env.copies as usize);
}

#[test]
fn loopback_read_whose_responder_check_fails_moves_no_byte() {
    let mut l = Loop::new();
    l.d.write_mem(l.buf_b, &pattern(300, 1));
    l.d.env.log_dma = true;
    let w = read_wr(&l, 300, l.key_b ^ 0x80);
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
    assert_eq!(accesses_in(&l.d.env, l.buf_a, 65536), (0, 0));
    assert_eq!(accesses_in(&l.d.env, l.buf_b, 65536), (0, 0));
    assert_eq!(l.d.env.copied_bytes, 0);
}

#[test]
fn loopback_read_whose_sink_check_fails_moves_no_byte() {
    // The READ's own buffer lies past the end of its MR: the WQE fails its check
    // before any request is sent.
    let mut l = Loop::new();
    l.d.write_mem(l.buf_b, &pattern(300, 1));
    l.d.env.log_dma = true;
    let mut w = read_wr(&l, 300, l.key_b);
    w.sges = vec![(l.buf_a + 65536 - 100, 300, l.key_a)];
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::LocalProtectionError));
    assert_eq!(accesses_in(&l.d.env, l.buf_b, 65536), (0, 0));
    assert_eq!(l.d.env.copied_bytes, 0);
}

#[test]
fn responder_mr_deregistered_while_responses_are_queued_moves_no_byte() {
    // One loopback packet per service call: the READ request is answered, the
    // responses wait in the loopback queue when the responder's MR goes. The
    // first is refused unread and the READ completes REMOTE_ACCESS_ERROR.
    let mut l = one_packet_per_call();
    l.d.write_mem(l.buf_b, &pattern(512, 5));
    let w = read_wr(&l, 512, l.key_b);
    l.send_a(w);
    assert_eq!(l.d.v.loopback_pending(), 2, "two responses queued");
    let key = l.key_b;
    deregister(&mut l, key);
    let mut ca = Vec::new();
    for _ in 0..100 {
        l.d.advance(Duration::from_millis(100));
        ca = l.cqes_a();
        if !ca.is_empty() {
            break;
        }
    }
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!(ca[0].status, st(WcStatus::RemoteAccessError));
    assert_eq!(l.d.read_mem(l.buf_a, 512), vec![0; 512]);
    assert_eq!(l.d.env.copied_bytes, 0);
}

#[test]
fn loopback_write_of_many_packets_is_one_copy_per_contiguous_run() {
    // MTU 256, 16 KiB: 64 packets in one train (the ACK request is on the last),
    // placed together into a contiguous destination from a contiguous source:
    // one copy, however many packets.
    let mut l = Loop::new();
    let data = pattern(16384, 9);
    l.d.write_mem(l.buf_a, &data);
    let w = write_wr(&l, 16384, l.key_b);
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(l.d.read_mem(l.buf_b, 16384), data);
    assert_eq!(l.d.env.copied_bytes, 16384);
    assert_eq!(l.d.env.copies, 1);
    let st_b =
        l.d.v
            .stats()
            .qps
            .into_iter()
            .find(|q| q.qpn == l.b.qpn)
            .unwrap();
    assert_eq!(st_b.rx_packets, 64, "every packet counted");
    assert_eq!(st_b.acks_sent, 1, "one ACK request, on the last packet");
}

#[test]
fn a_train_whose_responder_mtu_differs_is_refused_packet_by_packet() {
    // The responder's path MTU is 512, the requester's 256: its packets are too
    // short for the responder, which NAKs the first one as an invalid request,
    // exactly as when the packets travelled one by one.
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let mut cq = d.cq(64);
    let mut a = d.qp(pd, &cq, &cq, 16, 16);
    let b = d.qp(pd, &cq, &cq, 16, 16);
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &ConnParams::default());
    let wide = ConnParams {
        mtu: 2,
        ..ConnParams::default()
    };
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &wide);
    let (src, skey) = d.buf_mr(pd, 4096, ALL_ACCESS);
    let (dst, dkey) = d.buf_mr(pd, 4096, ALL_ACCESS);
    d.write_mem(src, &pattern(2048, 3));
    let w = SendWr {
        sges: vec![(src, 2048, skey)],
        remote_addr: dst,
        rkey: dkey,
        ..signaled(wqe::opcode::RDMA_WRITE, 1)
    };
    d.post_send(&mut a, &w);
    let c = d.poll_cq(&mut cq);
    let mine: Vec<_> = c.iter().filter(|c| c.qpn == a.qpn).collect();
    assert_eq!(mine.len(), 1, "{c:?}");
    assert_eq!(mine[0].status, st(WcStatus::RemoteInvalidRequest));
    assert_eq!(d.read_mem(dst, 2048), vec![0; 2048]);
}

#[test]
fn acks_queued_back_to_back_on_loopback_coalesce_into_the_newest() {
    // 16 one-packet WRITEs (the SQ's size) behind one doorbell: the responder
    // acknowledges each
    // (every last packet asks for an ACK), and each ACK replaces the one queued
    // right before it, so the requester handles one ACK that completes them all.
    let mut l = Loop::new();
    let mut a = l.a;
    for i in 0..16u64 {
        let mut w = write_wr(&l, 64, l.key_b);
        w.wr_id = i;
        w.flags = if i == 15 { wqe::flags::SIGNALED } else { 0 };
        l.d.post_send_no_db(&mut a, &w);
    }
    l.d.ring_sq(&a);
    l.a = a;
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!((ca[0].wr_id, ca[0].status), (15, 0));
    let stats = l.d.v.stats().qps;
    let of = |qpn: u32| stats.iter().find(|q| q.qpn == qpn).cloned().unwrap();
    assert_eq!(of(l.b.qpn).acks_sent, 16);
    assert_eq!(of(l.a.qpn).acks_received, 1);
    assert_eq!(of(l.b.qpn).rx_bytes, 16 * 64);
}

#[test]
fn loopback_delivery_keeps_queue_order_when_the_bound_splits_every_drain() {
    // Three packets per service call and a window of four: every drain stops
    // inside the queue while the ACKs it delivers let the requester send more,
    // which must queue behind the requests left over (putting them in front
    // made the responder see a PSN gap). Sixteen WRITEs, one or two SGEs each
    // (inline and shared SGE lists), all signaled: they arrive in PSN order (no
    // sequence NAK, no retransmission, nothing dropped) and each moves its own
    // bytes.
    let limits = VerbsLimits {
        max_loopback_per_call: 3,
        max_inflight: 4,
        ..VerbsLimits::default()
    };
    let mut l = Loop::with_limits(ConnParams::default(), limits);
    let src = pattern(16 * 96, 5);
    l.d.write_mem(l.buf_a, &src);
    let mut a = l.a;
    for i in 0..16u64 {
        let at = i * 96;
        let mut w = signaled(wqe::opcode::RDMA_WRITE, i);
        w.sges = if i % 2 == 0 {
            vec![(l.buf_a + at, 96, l.key_a)]
        } else {
            vec![
                (l.buf_a + at, 40, l.key_a),
                (l.buf_a + at + 40, 56, l.key_a),
            ]
        };
        w.remote_addr = l.buf_b + at;
        w.rkey = l.key_b;
        l.d.post_send_no_db(&mut a, &w);
    }
    l.d.ring_sq(&a);
    l.a = a;
    let mut done = Vec::new();
    for _ in 0..100 {
        done.extend(l.cqes_a());
        if done.len() == 16 {
            break;
        }
        l.d.v.poll(&mut l.d.env);
    }
    let got: Vec<(u64, u8)> = done.iter().map(|c| (c.wr_id, c.status)).collect();
    let want: Vec<(u64, u8)> = (0..16).map(|i| (i, 0)).collect();
    assert_eq!(got, want);
    assert_eq!(l.d.read_mem(l.buf_b, src.len()), src);
    let stats = l.d.v.stats().qps;
    let of = |qpn: u32| stats.iter().find(|q| q.qpn == qpn).cloned().unwrap();
    let (qa, qb) = (of(l.a.qpn), of(l.b.qpn));
    assert_eq!(
        (
            qb.seq_naks_sent,
            qb.duplicates_received,
            qb.out_of_order_dropped
        ),
        (0, 0, 0)
    );
    assert_eq!((qa.retransmitted_packets, qa.out_of_order_dropped), (0, 0));
    assert_eq!(qb.rx_bytes, 16 * 96);
}
