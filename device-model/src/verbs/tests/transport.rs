//! RC transport between two QPs of one device (loopback): every WQE type, data
//! checks, completion statuses, RNR, flush, doorbell validation.
use rnic_contract::event::qp_error_cause;

use super::*;

#[test]
fn send_recv_single_packet() {
    let mut l = Loop::new();
    let data = pattern(200, 1);
    l.d.write_mem(l.buf_a, &data);
    l.recv_b(7, &[(l.buf_b, 1000, l.key_b)]);
    let mut w = signaled(wqe::opcode::SEND, 42);
    w.sges = vec![(l.buf_a, 200, l.key_a)];
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].wr_id, 42);
    assert_eq!(ca[0].status, 0);
    assert_eq!(ca[0].opcode, cqe::opcode::SEND);
    assert_eq!(ca[0].qpn, l.a.qpn);
    let cb = l.cqes_b();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0].wr_id, 7);
    assert_eq!(cb[0].opcode, cqe::opcode::RECV);
    assert_eq!(cb[0].byte_len, 200);
    assert_eq!(cb[0].qpn, l.b.qpn);
    assert_eq!(l.d.read_mem(l.buf_b, 200), data);
    assert!(l.d.env.frames.is_empty(), "loopback never reaches the wire");
}

#[test]
fn multi_packet_send_with_sge_lists_and_imm() {
    let mut l = Loop::new();
    let data = pattern(1000, 3);
    l.d.write_mem(l.buf_a, &data[..300]);
    l.d.write_mem(l.buf_a + 5000, &data[300..]);
    // Receive into three pieces.
    l.recv_b(
        1,
        &[
            (l.buf_b, 100, l.key_b),
            (l.buf_b + 4000, 500, l.key_b),
            (l.buf_b + 9000, 600, l.key_b),
        ],
    );
    let mut w = signaled(wqe::opcode::SEND_WITH_IMM, 2);
    w.flags |= wqe::flags::SOLICITED;
    w.imm = 0xDEAD_BEEF;
    w.sges = vec![(l.buf_a, 300, l.key_a), (l.buf_a + 5000, 700, l.key_a)];
    l.send_a(w);
    let cb = l.cqes_b();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0].byte_len, 1000);
    assert_eq!(cb[0].imm_inv, 0xDEAD_BEEF);
    assert_eq!(cb[0].flags, cqe::flags::IMM | cqe::flags::SOLICITED);
    let mut got = l.d.read_mem(l.buf_b, 100);
    got.extend(l.d.read_mem(l.buf_b + 4000, 500));
    got.extend(l.d.read_mem(l.buf_b + 9000, 400));
    assert_eq!(got, data);
    assert_eq!(l.cqes_a()[0].status, 0);
    let s = l.d.v.stats();
    let qa = s.qps.iter().find(|q| q.qpn == l.a.qpn).unwrap();
    assert_eq!(qa.tx_packets, 4, "1000 bytes at MTU 256");
}

#[test]
fn inline_send_and_zero_length_send() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 100, l.key_b)]);
    l.recv_b(2, &[]);
    let mut w = signaled(wqe::opcode::SEND, 10);
    w.flags |= wqe::flags::INLINE;
    w.inline = Some(b"hello inline world".to_vec());
    l.send_a(w);
    l.send_a(signaled(wqe::opcode::SEND, 11));
    let cb = l.cqes_b();
    assert_eq!(cb.len(), 2);
    assert_eq!(cb[0].byte_len, 18);
    assert_eq!(cb[1].byte_len, 0);
    assert_eq!(cb[1].wr_id, 2);
    assert_eq!(l.d.read_mem(l.buf_b, 18), b"hello inline world");
    assert_eq!(l.cqes_a().len(), 2);
}

#[test]
fn rdma_write_and_write_with_imm() {
    let mut l = Loop::new();
    let data = pattern(3000, 9);
    l.d.write_mem(l.buf_a, &data);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 5);
    w.sges = vec![(l.buf_a, 3000, l.key_a)];
    w.remote_addr = l.buf_b + 123;
    w.rkey = l.key_b;
    l.send_a(w);
    assert_eq!(l.d.read_mem(l.buf_b + 123, 3000), data);
    let ca = l.cqes_a();
    assert_eq!(
        (ca[0].wr_id, ca[0].status, ca[0].opcode),
        (5, 0, cqe::opcode::RDMA_WRITE)
    );
    assert!(l.cqes_b().is_empty(), "plain WRITE consumes no receive");
    // With immediate: consumes a receive WQE.
    l.recv_b(77, &[]);
    let mut w = signaled(wqe::opcode::RDMA_WRITE_WITH_IMM, 6);
    w.sges = vec![(l.buf_a, 10, l.key_a)];
    w.remote_addr = l.buf_b + 20_000;
    w.rkey = l.key_b;
    w.imm = 0x1234;
    l.send_a(w);
    let cb = l.cqes_b();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0].opcode, cqe::opcode::RECV_RDMA_WITH_IMM);
    assert_eq!(
        (cb[0].wr_id, cb[0].imm_inv, cb[0].byte_len),
        (77, 0x1234, 10)
    );
    assert_eq!(l.d.read_mem(l.buf_b + 20_000, 10), data[..10].to_vec());
}

#[test]
fn rdma_read_multi_packet() {
    let mut l = Loop::new();
    let data = pattern(5000, 4);
    l.d.write_mem(l.buf_b + 64, &data);
    let mut w = signaled(wqe::opcode::RDMA_READ, 8);
    w.sges = vec![(l.buf_a, 2000, l.key_a), (l.buf_a + 10_000, 3000, l.key_a)];
    w.remote_addr = l.buf_b + 64;
    w.rkey = l.key_b;
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1);
    assert_eq!(
        (ca[0].wr_id, ca[0].status, ca[0].opcode, ca[0].byte_len),
        (8, 0, cqe::opcode::RDMA_READ, 5000)
    );
    let mut got = l.d.read_mem(l.buf_a, 2000);
    got.extend(l.d.read_mem(l.buf_a + 10_000, 3000));
    assert_eq!(got, data);
}

#[test]
fn zero_length_read_and_write_skip_key_checks() {
    let mut l = Loop::new();
    let mut w = signaled(wqe::opcode::RDMA_READ, 1);
    w.rkey = 0xBAD;
    l.send_a(w);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 2);
    w.rkey = 0xBAD;
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(ca.iter().map(|c| c.status).collect::<Vec<_>>(), vec![0, 0]);
}

#[test]
fn unsignaled_wqes_complete_silently_in_order() {
    let mut l = Loop::new();
    for i in 0..4u64 {
        let mut w = signaled(wqe::opcode::RDMA_WRITE, i);
        if i != 3 {
            w.flags = 0;
        }
        w.sges = vec![(l.buf_a, 8, l.key_a)];
        w.remote_addr = l.buf_b;
        w.rkey = l.key_b;
        l.send_a(w);
    }
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].wr_id, 3);
}

#[test]
fn many_wqes_batched_in_one_doorbell_and_ring_wrap() {
    let mut l = Loop::new();
    for round in 0..3u64 {
        let mut a = l.a;
        for i in 0..16u64 {
            let mut w = signaled(wqe::opcode::RDMA_WRITE, round * 100 + i);
            w.sges = vec![(l.buf_a + i * 8, 8, l.key_a)];
            w.remote_addr = l.buf_b + i * 8;
            w.rkey = l.key_b;
            l.d.post_send_no_db(&mut a, &w);
        }
        l.d.ring_sq(&a);
        l.a = a;
        let ca = l.cqes_a();
        assert_eq!(ca.len(), 16);
        assert!(ca
            .iter()
            .enumerate()
            .all(|(i, c)| c.wr_id == round * 100 + i as u64 && c.status == 0));
    }
}

#[test]
fn rnr_retry_then_success_when_receive_posted() {
    let mut l = Loop::new();
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, 16, l.key_a)];
    l.send_a(w);
    assert!(l.cqes_a().is_empty());
    let s = l.d.v.stats();
    assert!(s.qps.iter().any(|q| q.rnr_naks_sent == 1));
    l.recv_b(9, &[(l.buf_b, 64, l.key_b)]);
    // min_rnr_timer code 1 = 10 µs.
    l.d.advance(Duration::from_micros(20));
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(l.cqes_b()[0].wr_id, 9);
}

#[test]
fn rnr_retry_exceeded() {
    let mut l = Loop::with(ConnParams {
        rnr_retry: 1,
        ..ConnParams::default()
    });
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, 16, l.key_a)];
    l.send_a(w);
    l.d.advance(Duration::from_micros(20));
    l.d.advance(Duration::from_micros(20));
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].status, st(WcStatus::RnrRetryExceeded));
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
}

#[test]
fn receive_too_small_is_local_length_error_on_responder() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 100, l.key_b)]);
    l.recv_b(2, &[(l.buf_b, 100, l.key_b)]);
    let mut w = signaled(wqe::opcode::SEND, 3);
    w.sges = vec![(l.buf_a, 101, l.key_a)];
    l.send_a(w);
    let cb = l.cqes_b();
    assert_eq!(cb[0].status, st(WcStatus::LocalLengthError));
    assert_eq!(cb[1].status, st(WcStatus::Flushed));
    let ca = l.cqes_a();
    assert_eq!(ca[0].status, st(WcStatus::RemoteInvalidRequest));
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
    assert!(l
        .d
        .env
        .events
        .contains(&AsyncEvent::QpRequestError { qpn: l.b.qpn }));
}

#[test]
fn malformed_wqes_are_local_qp_operation_errors() {
    type Make = Box<dyn Fn(&Loop) -> SendWr>;
    let cases: Vec<Make> = vec![
        Box::new(|_| signaled(0x20, 1)),
        Box::new(|_| {
            let mut w = signaled(wqe::opcode::SEND, 1);
            w.flags |= 0x40;
            w
        }),
        Box::new(|l| {
            let mut w = signaled(wqe::opcode::SEND, 1);
            w.sges = vec![(l.buf_a, 1, l.key_a); 7];
            w
        }),
        Box::new(|_| {
            let mut w = signaled(wqe::opcode::SEND, 1);
            w.flags |= wqe::flags::INLINE;
            w.inline = Some(vec![0; 96]);
            let mut raw = w.encode();
            put32(&mut raw, 28, 97);
            w.raw = Some(raw);
            w
        }),
        Box::new(|_| {
            let mut w = signaled(wqe::opcode::RDMA_READ, 1);
            w.flags |= wqe::flags::INLINE;
            w.inline = Some(vec![0; 4]);
            w
        }),
    ];
    for make in cases {
        let mut l = Loop::new();
        let mut w = make(&l);
        if w.sges.len() > 6 {
            // 7 SGEs do not fit the encoder: write the count byte by hand.
            w.sges.truncate(6);
            let mut raw = w.encode();
            raw[10] = 7;
            w.raw = Some(raw);
        }
        l.send_a(w);
        let ca = l.cqes_a();
        assert_eq!(ca[0].status, st(WcStatus::LocalQpOperationError));
        assert!(l
            .d
            .env
            .events
            .iter()
            .any(|e| matches!(e, AsyncEvent::QpError { qpn, .. } if *qpn == l.a.qpn)));
    }
}

#[test]
fn message_longer_than_limit_is_local_length_error() {
    let mut l = Loop::new();
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, u32::MAX, l.key_a), (l.buf_a, u32::MAX, l.key_a)];
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::LocalLengthError));
}

#[test]
fn error_flushes_outstanding_posted_and_later_wqes() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
    l.recv_b(2, &[(l.buf_b, 64, l.key_b)]);
    l.d.set_state(l.b.qpn, QpState::Err).unwrap();
    let cb = l.cqes_b();
    assert_eq!(
        cb.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 4), (2, 4)]
    );
    // Driver-requested ERR posts no async event.
    assert!(l.d.env.events.is_empty());
    // Posting in ERR completes at once with FLUSHED.
    l.recv_b(3, &[(l.buf_b, 64, l.key_b)]);
    let mut b = l.b;
    l.d.post_send(&mut b, &signaled(wqe::opcode::SEND, 4));
    let cb = l.cqes_b();
    assert_eq!(cb.len(), 2);
    assert!(cb.iter().all(|c| c.status == st(WcStatus::Flushed)));
    assert_eq!(cb[1].opcode, cqe::opcode::SEND);
    assert_eq!(cb[0].opcode, cqe::opcode::RECV);
    // Back to RESET and reuse.
    l.d.set_state(l.b.qpn, QpState::Reset).unwrap();
    assert_eq!(l.d.qp_state(l.b.qpn), 0);
}

#[test]
fn bad_sq_doorbell_moves_qp_to_error() {
    let mut l = Loop::new();
    l.d.v
        .doorbell(&mut l.d.env, 0x2000 + 8 * u64::from(l.a.qpn), 17);
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
    assert!(l.d.env.events.contains(&AsyncEvent::QpError {
        qpn: l.a.qpn,
        cause: qp_error_cause::BAD_DOORBELL
    }));
    // Bad RQ index too.
    l.d.v
        .doorbell(&mut l.d.env, 0x2004 + 8 * u64::from(l.b.qpn), 0xFFFF_0000);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
}

#[test]
fn stray_doorbells_are_counted_and_ignored() {
    let mut l = Loop::new();
    for (off, v) in [
        (0x2000u64 + 8 * 500, 1u32),
        (0x2002, 1),
        (0x8000 + 8 * 900, 1),
        (0x9999 & !3, 3),
        (0x1000, 1),
    ] {
        l.d.v.doorbell(&mut l.d.env, off, v);
    }
    // Arm with an unknown value; CI past the producer.
    l.d.v
        .doorbell(&mut l.d.env, 0x8004 + 8 * u64::from(l.cq_a.cqn), 7);
    l.d.v
        .doorbell(&mut l.d.env, 0x8000 + 8 * u64::from(l.cq_a.cqn), 5);
    assert!(l.d.v.stats().global.bad_doorbells >= 6);
    // The QPs still work.
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, 0);
}

#[test]
fn doorbells_in_reset_are_ignored_and_posts_before_rts_run_later() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let mut cq = d.cq(16);
    let mut a = d.qp(pd, &cq, &cq, 4, 4);
    let mut b = d.qp(pd, &cq, &cq, 4, 4);
    d.ring_sq(&TQp { sq_pi: 1, ..a });
    assert!(d.v.stats().qps[0].bad_doorbells == 1);
    let (buf, key) = d.buf_mr(pd, 4096, ALL_ACCESS);
    d.set_state(a.qpn, QpState::Init).unwrap();
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(buf, 8, key)];
    w.remote_addr = buf + 100;
    w.rkey = key;
    d.post_send(&mut a, &w);
    d.post_recv(&mut b, 5, &[]);
    assert!(d.poll_cq(&mut cq).is_empty());
    d.set_state(a.qpn, QpState::Reset).unwrap();
    a.sq_pi = 0;
    let p = ConnParams::default();
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &p);
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &p);
    d.set_state(a.qpn, QpState::Sqd).unwrap();
    d.post_send(&mut a, &w);
    assert!(d.poll_cq(&mut cq).is_empty(), "SQD fetches nothing new");
    d.set_state(a.qpn, QpState::Rts).unwrap();
    let c = d.poll_cq(&mut cq);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, 0);
}

#[test]
fn cqe_fault_overrides_status_and_fails_qp() {
    let mut l = Loop::new();
    l.d.env.faults.push_back((
        crate::fault::FaultSite::Cqe,
        crate::fault::FaultAction::CqeError { status: 12 },
    ));
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w.clone());
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(ca[0].status, 12);
    assert_eq!(ca[1].status, st(WcStatus::Flushed));
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
}

#[test]
fn dma_failure_reading_a_wqe_fails_the_qp() {
    let mut l = Loop::new();
    let sq = l.a.sq_base;
    l.d.env.fail_reads = Some((sq, sq + 128));
    l.send_a(signaled(wqe::opcode::SEND, 1));
    assert!(l.d.env.events.contains(&AsyncEvent::QpError {
        qpn: l.a.qpn,
        cause: qp_error_cause::WQE_DMA
    }));
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].status, st(WcStatus::Flushed));
}

#[test]
fn dma_failure_reading_payload_is_fatal_completion() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
    l.d.env.fail_reads = Some((l.buf_a, l.buf_a + 16));
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, 16, l.key_a)];
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::Fatal));
}

#[test]
fn sqd_reports_drained_after_outstanding_work() {
    let mut l = Loop::new();
    // An RNR-blocked SEND stays outstanding.
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    l.send_a(w);
    l.d.set_state(l.a.qpn, QpState::Sqd).unwrap();
    assert!(!l
        .d
        .env
        .events
        .contains(&AsyncEvent::SqDrained { qpn: l.a.qpn }));
    l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
    l.d.advance(Duration::from_micros(20));
    assert_eq!(l.cqes_a()[0].status, 0);
    assert!(l
        .d
        .env
        .events
        .contains(&AsyncEvent::SqDrained { qpn: l.a.qpn }));
}

#[test]
fn fence_waits_for_prior_reads() {
    let mut l = Loop::new();
    l.d.write_mem(l.buf_b, &pattern(64, 5));
    let mut r = signaled(wqe::opcode::RDMA_READ, 1);
    r.sges = vec![(l.buf_a, 64, l.key_a)];
    r.remote_addr = l.buf_b;
    r.rkey = l.key_b;
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 2);
    w.flags |= wqe::flags::FENCE;
    w.sges = vec![(l.buf_a, 64, l.key_a)];
    w.remote_addr = l.buf_b + 1000;
    w.rkey = l.key_b;
    let mut a = l.a;
    l.d.post_send_no_db(&mut a, &r);
    l.d.post_send_no_db(&mut a, &w);
    l.d.ring_sq(&a);
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 2);
    // The fenced WRITE sent the data the READ brought in.
    assert_eq!(l.d.read_mem(l.buf_b + 1000, 64), pattern(64, 5));
}

/// Errata D.1 (fixed): a WRITE ONLY with immediate that finds no receive WQE is
/// RNR NAKed without opening a message context, so its retransmission succeeds.
#[test]
fn write_with_imm_before_recv_is_rnr_nakd_then_succeeds() {
    let mut l = Loop::new();
    let data = pattern(100, 3);
    l.d.write_mem(l.buf_a, &data);
    let mut w = signaled(wqe::opcode::RDMA_WRITE_WITH_IMM, 1);
    w.sges = vec![(l.buf_a, 100, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    w.imm = 0xAB;
    l.send_a(w);
    assert!(l.cqes_a().is_empty());
    let b = l.d.v.stats().qps[1].clone();
    assert_eq!((b.qpn, b.rnr_naks_sent, b.error_naks_sent), (l.b.qpn, 1, 0));
    l.recv_b(9, &[]);
    l.d.advance(Duration::from_micros(20));
    let ca = l.cqes_a();
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    let cb = l.cqes_b();
    assert_eq!(
        (
            cb[0].wr_id,
            cb[0].opcode,
            cb[0].status,
            cb[0].byte_len,
            cb[0].imm_inv
        ),
        (9, cqe::opcode::RECV_RDMA_WITH_IMM, 0, 100, 0xAB)
    );
    assert_eq!(l.d.read_mem(l.buf_b, 100), data);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Rts as u8);
}

/// An RNR NAK for a SEND FIRST ends the round for the whole message: the
/// responder drops MIDDLE and LAST silently (no sequence NAK), so waiting for a
/// receive costs no retry even with RETRY_CNT = 0.
#[test]
fn multi_packet_send_before_recv_costs_no_retries() {
    let mut l = Loop::with(ConnParams {
        retry: 0,
        ..ConnParams::default()
    });
    let data = pattern(600, 5); // 3 packets at MTU 256
    l.d.write_mem(l.buf_a, &data);
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(l.buf_a, 600, l.key_a)];
    l.send_a(w);
    for _ in 0..3 {
        l.d.advance(Duration::from_micros(20));
    }
    assert!(l.cqes_a().is_empty(), "still waiting for a receive");
    let b = l.d.v.stats().qps[1].clone();
    assert_eq!(b.qpn, l.b.qpn);
    assert_eq!(
        (b.rnr_naks_sent, b.seq_naks_sent),
        (4, 0),
        "one NAK per round"
    );
    assert_eq!(b.out_of_order_dropped, 8);
    l.recv_b(7, &[(l.buf_b, 1000, l.key_b)]);
    l.d.advance(Duration::from_micros(20));
    let ca = l.cqes_a();
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    let cb = l.cqes_b();
    assert_eq!((cb[0].wr_id, cb[0].status, cb[0].byte_len), (7, 0, 600));
    assert_eq!(l.d.read_mem(l.buf_b, 600), data);
}

/// Posts a receive WQE with `nsge` SGEs (all zero) on B without validation.
fn post_raw_recv(l: &mut Loop, wr_id: u64, nsge: u8) {
    let mut b = [0u8; 128];
    put64(&mut b, 0, wr_id);
    b[8] = nsge;
    let slot = l.b.rq_base + u64::from(l.b.rq_pi & (l.b.rq_size - 1)) * 128;
    l.d.write_mem(slot, &b);
    l.b.rq_pi += 1;
    l.d.v
        .doorbell(&mut l.d.env, 0x2004 + 8 * u64::from(l.b.qpn), l.b.rq_pi);
}

/// Errata D.4 (fixed): a malformed receive WQE met by an RDMA WRITE with
/// immediate is an error, as for a SEND: LOCAL_QP_OPERATION_ERROR receive
/// completion, NAK remote operational error, responder QP to ERR; the last
/// packet's data is not placed.
#[test]
fn write_with_imm_into_malformed_recv_wqe_is_an_error() {
    let mut l = Loop::new();
    post_raw_recv(&mut l, 5, 7); // the QP allows 6 receive SGEs
    l.d.write_mem(l.buf_a, &pattern(100, 9));
    let mut w = signaled(wqe::opcode::RDMA_WRITE_WITH_IMM, 1);
    w.sges = vec![(l.buf_a, 100, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w);
    let cb = l.cqes_b();
    assert_eq!(
        (cb[0].wr_id, cb[0].status),
        (5, st(WcStatus::LocalQpOperationError))
    );
    let ca = l.cqes_a();
    assert_eq!(
        (ca[0].wr_id, ca[0].status),
        (1, st(WcStatus::RemoteOperationError))
    );
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
    assert!(l.d.env.events.contains(&AsyncEvent::QpError {
        qpn: l.b.qpn,
        cause: WcStatus::RemoteOperationError.code()
    }));
    assert_eq!(l.d.read_mem(l.buf_b, 100), vec![0; 100]);
}

/// Errata D.5 (fixed): an RQ producer count that moves backwards is an overrun
/// like the SQ's: QP to ERR with cause 0xF0, posted receives flushed.
#[test]
fn rq_doorbell_moving_backwards_fails_the_qp() {
    let mut l = Loop::new();
    for i in 0..3 {
        l.recv_b(i, &[(l.buf_b, 64, l.key_b)]);
    }
    // Writing the current count again is fine.
    l.d.v
        .doorbell(&mut l.d.env, 0x2004 + 8 * u64::from(l.b.qpn), 3);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Rts as u8);
    l.d.v
        .doorbell(&mut l.d.env, 0x2004 + 8 * u64::from(l.b.qpn), 1);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
    assert!(l.d.env.events.contains(&AsyncEvent::QpError {
        qpn: l.b.qpn,
        cause: qp_error_cause::BAD_DOORBELL
    }));
    let cb = l.cqes_b();
    assert_eq!(
        cb.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(0, 4), (1, 4), (2, 4)]
    );
}

/// Bounded work (issue 10): one SQ doorbell fetches at most
/// [`crate::verbs::SQ_WQES_PER_SERVICE`] WQEs of a QP; the engine's next polls fetch
/// the rest (the SQ consumer count of `QUERY_QP` shows how far it got).
#[test]
fn one_sq_doorbell_fetches_a_bounded_batch() {
    let batch = crate::verbs::SQ_WQES_PER_SERVICE;
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(4096);
    let mut a = d.qp(pd, &cq, &cq, 1024, 16);
    let b = d.qp(pd, &cq, &cq, 16, 16);
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &ConnParams::default());
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &ConnParams::default());
    let (buf, key) = d.buf_mr(pd, 4096, ALL_ACCESS);
    let total = 2 * batch + 5;
    for i in 0..total {
        let w = SendWr {
            remote_addr: buf,
            rkey: key,
            ..signaled(wqe::opcode::RDMA_WRITE, u64::from(i))
        };
        d.post_send_no_db(&mut a, &w);
    }
    d.ring_sq(&a);
    let fetched = |d: &mut Dev| {
        let out = d.alloc(64);
        let mut o = [0u8; 56];
        put32(&mut o, 0, a.qpn);
        put64(&mut o, 8, out);
        d.admin(opcode::QUERY_QP, o).unwrap();
        le_u32(&d.read_mem(out, 64), 56)
    };
    assert_eq!(fetched(&mut d), batch, "one batch per doorbell");
    d.v.poll(&mut d.env);
    assert_eq!(fetched(&mut d), 2 * batch);
    d.v.poll(&mut d.env);
    assert_eq!(fetched(&mut d), total);
    let mut cq = cq;
    let ids: Vec<u64> = d.poll_cq(&mut cq).iter().map(|c| c.wr_id).collect();
    assert_eq!(ids, (0..u64::from(total)).collect::<Vec<_>>());
}

/// Bounded work (issue 10): packets between two QPs of the same device are
/// delivered at most 128 per service call (spec §15); a 1 MiB loopback WRITE (256
/// data packets at MTU 4096, plus ACKs) therefore spreads over polls, which the
/// device asks for at once, instead of running inside its doorbell.
#[test]
fn loopback_work_per_doorbell_is_bounded() {
    let bound = 128;
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let mut cq = d.cq(64);
    let mut a = d.qp(pd, &cq, &cq, 16, 16);
    let b = d.qp(pd, &cq, &cq, 16, 16);
    let p = ConnParams {
        mtu: 5,
        ..ConnParams::default()
    };
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &p);
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &p);
    let len = 1u64 << 20;
    let (src, skey) = d.buf_mr(pd, len, ALL_ACCESS);
    let (dst, dkey) = d.buf_mr(pd, len, ALL_ACCESS);
    let w = SendWr {
        sges: vec![(src, len as u32, skey)],
        remote_addr: dst,
        rkey: dkey,
        ..signaled(wqe::opcode::RDMA_WRITE, 1)
    };
    d.post_send(&mut a, &w);
    let delivered = d.v.stats().global.loopback_packets - d.v.loopback_pending() as u64;
    assert!(
        delivered <= bound,
        "{delivered} loopback packets delivered in one doorbell, bound {bound}"
    );
    assert!(
        d.v.has_pending_work(),
        "the rest is left for the next polls"
    );
    let mut polls = 0;
    let mut c = Vec::new();
    while c.is_empty() && polls < 1000 {
        d.v.poll(&mut d.env);
        c = d.poll_cq(&mut cq);
        polls += 1;
    }
    assert_eq!(c.len(), 1, "the WRITE completes over {polls} polls");
    assert_eq!(c[0].status, st(WcStatus::Success));
}
