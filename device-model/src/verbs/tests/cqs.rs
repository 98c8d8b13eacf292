//! Completion queues: phase tag across wraps, arming, moderation, overflow, resize.
use rnic_contract::event::qp_error_cause;

use super::*;

fn write_wr(l: &Loop, wr_id: u64, flags: u8) -> SendWr {
    let mut w = signaled(wqe::opcode::RDMA_WRITE, wr_id);
    w.flags |= flags;
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    w
}

#[test]
fn phase_tag_wraps_many_times() {
    let mut l = Loop::new();
    let mut n = 0u64;
    for _ in 0..10 {
        for _ in 0..5 {
            let w = write_wr(&l, n, 0);
            l.send_a(w);
            n += 1;
        }
        let ca = l.cqes_a();
        assert_eq!(ca.len(), 5);
        assert_eq!(ca[4].wr_id, n - 1);
    }
    // 50 completions through a 64-entry CQ... and beyond: 100 more.
    for _ in 0..20 {
        for _ in 0..5 {
            let w = write_wr(&l, n, 0);
            l.send_a(w);
            n += 1;
        }
        assert_eq!(l.cqes_a().len(), 5);
    }
}

#[test]
fn arm_next_raises_the_cq_vector_once() {
    let mut l = Loop::new();
    let w = write_wr(&l, 1, 0);
    l.send_a(w);
    assert!(l.d.env.vectors.is_empty(), "not armed: no interrupt");
    l.cqes_a();
    l.d.v.doorbell(
        &mut l.d.env,
        0x8004 + 8 * u64::from(l.cq_a.cqn),
        verbs_db::ARM_NEXT,
    );
    let w = write_wr(&l, 2, 0);
    l.send_a(w);
    let w = write_wr(&l, 3, 0);
    l.send_a(w);
    assert_eq!(l.d.env.vectors, vec![1], "one-shot arm");
}

#[test]
fn arm_with_unconsumed_entries_fires_at_once() {
    let mut l = Loop::new();
    let w = write_wr(&l, 1, 0);
    l.send_a(w);
    l.d.v.doorbell(
        &mut l.d.env,
        0x8004 + 8 * u64::from(l.cq_a.cqn),
        verbs_db::ARM_NEXT,
    );
    assert_eq!(l.d.env.vectors, vec![1]);
}

#[test]
fn arm_solicited_fires_only_on_solicited_or_error() {
    let mut l = Loop::new();
    let cq_b = l.cq_b.cqn;
    l.d.v.doorbell(
        &mut l.d.env,
        0x8004 + 8 * u64::from(cq_b),
        verbs_db::ARM_SOLICITED,
    );
    for i in 0..2 {
        l.recv_b(i, &[(l.buf_b, 64, l.key_b)]);
    }
    let mut s = signaled(wqe::opcode::SEND, 1);
    s.sges = vec![(l.buf_a, 8, l.key_a)];
    l.send_a(s.clone());
    assert!(l.d.env.vectors.is_empty());
    s.flags |= wqe::flags::SOLICITED;
    l.send_a(s);
    assert_eq!(l.d.env.vectors, vec![1]);
}

#[test]
fn moderation_by_count_and_by_time() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let mut cq = d.cq_with(64, 3, 3, 50);
    let cq_b = d.cq(64);
    let mut a = d.qp(pd, &cq, &cq, 16, 16);
    let b = d.qp(pd, &cq_b, &cq_b, 16, 16);
    let p = ConnParams::default();
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &p);
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &p);
    let (buf, key) = d.buf_mr(pd, 4096, ALL_ACCESS);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 0);
    w.sges = vec![(buf, 8, key)];
    w.remote_addr = buf + 64;
    w.rkey = key;
    let arm = 0x8004 + 8 * u64::from(cq.cqn);
    d.v.doorbell(&mut d.env, arm, verbs_db::ARM_NEXT);
    d.post_send(&mut a, &w);
    d.post_send(&mut a, &w);
    assert!(d.env.vectors.is_empty());
    d.post_send(&mut a, &w);
    assert_eq!(d.env.vectors, vec![3], "third completion reaches the count");
    d.poll_cq(&mut cq);
    // By time: one completion, then 50 µs pass.
    d.v.doorbell(&mut d.env, arm, verbs_db::ARM_NEXT);
    d.post_send(&mut a, &w);
    d.advance(Duration::from_micros(49));
    assert_eq!(d.env.vectors.len(), 1);
    d.advance(Duration::from_micros(1));
    assert_eq!(d.env.vectors, vec![3, 3]);
}

#[test]
fn overflow_puts_cq_in_error_and_fails_the_qp() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(2);
    let cq_b = d.cq(8);
    let mut a = d.qp(pd, &cq, &cq, 4, 4);
    let b = d.qp(pd, &cq_b, &cq_b, 4, 4);
    let p = ConnParams::default();
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &p);
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &p);
    let (buf, key) = d.buf_mr(pd, 4096, ALL_ACCESS);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 0);
    w.sges = vec![(buf, 8, key)];
    w.remote_addr = buf + 64;
    w.rkey = key;
    for _ in 0..3 {
        d.post_send(&mut a, &w);
    }
    assert!(d.env.events.contains(&AsyncEvent::CqError { cqn: cq.cqn }));
    assert!(d.env.events.contains(&AsyncEvent::QpError {
        qpn: a.qpn,
        cause: qp_error_cause::CQ_ERROR
    }));
    let s = d.v.stats();
    let c = s.cqs.iter().find(|c| c.cqn == cq.cqn).unwrap();
    assert!(c.in_error);
    assert_eq!(c.overflows, 1);
}

#[test]
fn resize_moves_unconsumed_entries() {
    let mut l = Loop::new();
    for i in 0..3 {
        let w = write_wr(&l, i, 0);
        l.send_a(w);
    }
    let new_base = l.d.alloc(128 * 32);
    let mut o = [0u8; 56];
    put32(&mut o, 0, l.cq_a.cqn);
    put64(&mut o, 8, new_base);
    put32(&mut o, 16, 2);
    assert_eq!(
        l.d.admin(opcode::RESIZE_CQ, o),
        Err(AdminStatus::InvalidParam),
        "3 entries do not fit in 2"
    );
    put32(&mut o, 16, 3);
    assert_eq!(
        l.d.admin(opcode::RESIZE_CQ, o),
        Err(AdminStatus::InvalidParam)
    );
    put32(&mut o, 16, 128);
    put64(&mut o, 8, MEM_SIZE as u64 - 64);
    assert_eq!(
        l.d.admin(opcode::RESIZE_CQ, o),
        Err(AdminStatus::InvalidParam)
    );
    put64(&mut o, 8, new_base);
    put32(&mut o, 0, 999);
    assert_eq!(
        l.d.admin(opcode::RESIZE_CQ, o),
        Err(AdminStatus::InvalidHandle)
    );
    put32(&mut o, 0, l.cq_a.cqn);
    assert_eq!(l.d.admin(opcode::RESIZE_CQ, o), Ok((3, 0)));
    l.cq_a = TCq {
        cqn: l.cq_a.cqn,
        base: new_base,
        size: 128,
        ci: 0,
    };
    let w = write_wr(&l, 3, 0);
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(
        ca.iter().map(|c| c.wr_id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
}

#[test]
fn error_completion_counts_in_stats() {
    let mut l = Loop::new();
    let mut w = write_wr(&l, 1, 0);
    w.rkey = 0;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
    let s = l.d.v.stats();
    assert_eq!(s.cqs.iter().map(|c| c.error_cqes).sum::<u64>(), 1);
}

/// Errata D.2 (fixed): a CQE is written body first (byte 23 still holding the
/// slot's previous phase), then the phase byte alone, on every pass.
#[test]
fn cqe_body_is_written_before_its_phase() {
    let mut env = TestEnv::new();
    env.log_dma = true;
    let base = 0x1000;
    let mut cq = crate::verbs::cq::Cq::new(5, base, 2, 0, 0, 0);
    for n in 0..4u32 {
        let cqe = CqeRepr {
            wr_id: u64::from(n) + 1,
            byte_len: 10 * n,
            qpn: 3,
            ..CqeRepr::default()
        };
        cq.push(&mut env, &cqe, false).unwrap();
        cq.set_ci(n + 1);
        let phase = (n / 2) % 2 == 0;
        let slot = base + u64::from(n % 2) * 32;
        let mut body = cqe.to_bytes(phase);
        body[23] = u8::from(!phase);
        let log: Vec<_> = env.dma_log.drain(..).collect();
        let scope = Some(DmaScope::cq(5));
        assert_eq!(
            log,
            vec![
                DmaRecord {
                    scope,
                    write: true,
                    addr: slot,
                    data: body.to_vec(),
                },
                DmaRecord {
                    scope,
                    write: true,
                    addr: slot + 23,
                    data: vec![u8::from(phase)],
                },
            ],
            "CQE {n}"
        );
        let mut b = [0u8; 32];
        b.copy_from_slice(&env.mem[slot as usize..slot as usize + 32]);
        assert_eq!(decode_cqe(&b), (cqe, phase));
    }
}
