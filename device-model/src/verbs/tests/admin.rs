//! Every admin command: success and each failure status.

use super::*;
use AdminStatus::*;

fn ops() -> [u8; 56] {
    [0u8; 56]
}

#[test]
fn unknown_opcodes_fail() {
    let mut d = Dev::new(MAC_A, IP_A);
    for opc in [0x15u8, 0x1C, 0x2F, 0x39, 0x3F] {
        assert_eq!(d.admin(opc, ops()), Err(InvalidOpcode), "opcode {opc:#x}");
    }
}

#[test]
fn query_caps_writes_limits() {
    let mut d = Dev::new(MAC_A, IP_A);
    let out = d.alloc(64);
    let mut o = ops();
    put64(&mut o, 0, out);
    assert_eq!(d.admin(opcode::QUERY_CAPS, o), Ok((64, 0)));
    let b = d.read_mem(out, 64);
    assert_eq!(le_u32(&b, 0), d.v.limits().max_qp);
    assert_eq!(b[24], wqe::MAX_SGE);
    assert_eq!(le_u16(&b, 44), 128);
    put64(&mut o, 0, MEM_SIZE as u64 - 8);
    assert_eq!(d.admin(opcode::QUERY_CAPS, o), Err(DmaError));
}

#[test]
fn pd_create_destroy_and_busy() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    assert_eq!(pd, 1);
    let (_, _key) = d.buf_mr(pd, 4096, 0);
    let mut o = ops();
    put32(&mut o, 0, pd);
    assert_eq!(d.admin(opcode::DESTROY_PD, o), Err(Busy));
    put32(&mut o, 0, 99);
    assert_eq!(d.admin(opcode::DESTROY_PD, o), Err(InvalidHandle));
    put32(&mut o, 0, 0);
    assert_eq!(d.admin(opcode::DESTROY_PD, o), Err(InvalidHandle));
    let pd2 = d.pd();
    put32(&mut o, 0, pd2);
    assert_eq!(d.admin(opcode::DESTROY_PD, o), Ok((0, 0)));
    assert_eq!(d.admin(opcode::DESTROY_PD, o), Err(InvalidHandle));
}

#[test]
fn pd_table_full() {
    let limits = VerbsLimits {
        max_pd: 2,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    d.pd();
    d.pd();
    assert_eq!(d.admin(opcode::CREATE_PD, ops()), Err(NoResources));
}

#[test]
fn set_port_addr() {
    let mut d = Dev::new(MAC_A, IP_A);
    let mut o = ops();
    o[..6].copy_from_slice(&MAC_B);
    o[8..12].copy_from_slice(&IP_B);
    assert_eq!(d.admin(opcode::SET_PORT_ADDR, o), Ok((0, 0)));
    assert_eq!(d.v.port().ip, IP_B);
    o[0] = 1; // multicast MAC
    assert_eq!(d.admin(opcode::SET_PORT_ADDR, o), Err(InvalidParam));
}

fn cq_ops(base: u64, size: u32, vector: u16) -> [u8; 56] {
    let mut o = ops();
    put64(&mut o, 0, base);
    put32(&mut o, 8, size);
    o[12..14].copy_from_slice(&vector.to_le_bytes());
    o
}

#[test]
fn cq_create_validation() {
    let mut d = Dev::new(MAC_A, IP_A);
    let base = d.alloc(4096);
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(base, 3, 1)),
        Err(InvalidParam)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(base, 1, 1)),
        Err(InvalidParam)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(base + 8, 4, 1)),
        Err(InvalidParam)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(base, 1 << 20, 1)),
        Err(NoResources)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(MEM_SIZE as u64 - 64, 4, 1)),
        Err(InvalidParam)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(u64::MAX - 63, 4, 1)),
        Err(InvalidParam)
    );
    assert_eq!(
        d.admin(opcode::CREATE_CQ, cq_ops(base, 4, 16)),
        Err(InvalidParam)
    );
    assert_eq!(d.admin(opcode::CREATE_CQ, cq_ops(base, 4, 15)), Ok((1, 0)));
}

#[test]
fn cq_destroy_busy_and_invalid() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(8);
    let cq2 = d.cq(8);
    let _qp = d.qp(pd, &cq, &cq2, 4, 4);
    for c in [cq.cqn, cq2.cqn] {
        let mut o = ops();
        put32(&mut o, 0, c);
        assert_eq!(d.admin(opcode::DESTROY_CQ, o), Err(Busy));
    }
    let cq3 = d.cq(8);
    let mut o = ops();
    put32(&mut o, 0, cq3.cqn);
    assert_eq!(d.admin(opcode::DESTROY_CQ, o), Ok((0, 0)));
    assert_eq!(d.admin(opcode::DESTROY_CQ, o), Err(InvalidHandle));
}

#[test]
fn cq_modify_moderation() {
    let mut d = Dev::new(MAC_A, IP_A);
    let cq = d.cq(8);
    let mut o = ops();
    put32(&mut o, 0, cq.cqn);
    o[4..6].copy_from_slice(&4u16.to_le_bytes());
    put32(&mut o, 8, 100);
    assert_eq!(d.admin(opcode::MODIFY_CQ, o), Ok((0, 0)));
    put32(&mut o, 0, 77);
    assert_eq!(d.admin(opcode::MODIFY_CQ, o), Err(InvalidHandle));
}

#[test]
fn qp_create_validation() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(8);
    let sq = d.alloc(16 * 128);
    let rq = d.alloc(16 * 128);
    let good = Dev::qp_ops(pd, cq.cqn, cq.cqn, 16, 16, sq, rq);
    let mut o = good;
    put32(&mut o, 0, 9);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidHandle));
    let mut o = good;
    put32(&mut o, 4, 9);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidHandle));
    let mut o = good;
    put32(&mut o, 8, 0);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidHandle));
    let mut o = good;
    put32(&mut o, 12, 12);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    let mut o = good;
    put32(&mut o, 12, 1 << 20);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(NoResources));
    let mut o = good;
    put64(&mut o, 28, rq + 4);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    let mut o = good;
    put64(&mut o, 20, MEM_SIZE as u64 - 128);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    let mut o = good;
    o[36] = 7;
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    let mut o = good;
    o[38..40].copy_from_slice(&97u16.to_le_bytes());
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    let mut o = good;
    o[40] = 1; // QP type other than RC
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(InvalidParam));
    // No receive queue is allowed.
    let mut o = good;
    put32(&mut o, 16, 0);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Ok((2, 0)));
    assert_eq!(d.admin(opcode::CREATE_QP, good), Ok((3, 0)));
}

#[test]
fn qp_table_full() {
    let limits = VerbsLimits {
        max_qp: 1,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    let cq = d.cq(8);
    d.qp(pd, &cq, &cq, 4, 4);
    let o = Dev::qp_ops(pd, cq.cqn, cq.cqn, 4, 4, 4096, 4096);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(NoResources));
}

#[test]
fn qp_state_machine() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(8);
    let qp = d.qp(pd, &cq, &cq, 4, 4);
    let q = qp.qpn;
    // Illegal transitions.
    assert_eq!(d.set_state(q, QpState::Rtr), Err(InvalidState));
    assert_eq!(d.set_state(q, QpState::Rts), Err(InvalidState));
    assert_eq!(d.set_state(q, QpState::Sqd), Err(InvalidState));
    // Bad state value, unknown mask bit.
    assert_eq!(d.modify(q, qp_attr::STATE, |o| o[8] = 9), Err(InvalidParam));
    assert_eq!(d.modify(q, 1 << 20, |_| {}), Err(InvalidParam));
    // RESET -> INIT with a forbidden attribute.
    assert_eq!(
        d.modify(q, qp_attr::STATE | qp_attr::SQ_PSN, |o| o[8] = 1),
        Err(InvalidParam)
    );
    // Bad access bits.
    assert_eq!(
        d.modify(q, qp_attr::STATE | qp_attr::ACCESS, |o| {
            o[8] = 1;
            o[13] = 0x10;
        }),
        Err(InvalidParam)
    );
    assert_eq!(d.set_state(q, QpState::Init), Ok((0, 0)));
    assert_eq!(d.qp_state(q), QpState::Init as u8);
    // INIT -> RTR needs DEST_QPN, RQ_PSN, AV, PATH_MTU.
    assert_eq!(d.set_state(q, QpState::Rtr), Err(InvalidParam));
    let rtr =
        qp_attr::STATE | qp_attr::DEST_QPN | qp_attr::RQ_PSN | qp_attr::AV | qp_attr::PATH_MTU;
    assert_eq!(
        d.modify(q, rtr, |o| {
            o[8] = 2;
            o[9] = 6;
        }),
        Err(InvalidParam)
    );
    assert_eq!(
        d.modify(q, rtr, |o| {
            o[8] = 2;
            o[9] = 3;
            put32(o, 24, 1 << 24);
        }),
        Err(InvalidParam)
    );
    assert_eq!(
        d.modify(q, rtr, |o| {
            o[8] = 2;
            o[9] = 3;
            put32(o, 16, 1 << 24);
        }),
        Err(InvalidParam)
    );
    assert_eq!(
        d.modify(q, rtr, |o| {
            o[8] = 2;
            o[9] = 3;
            put32(o, 16, 5);
        }),
        Ok((0, 0))
    );
    assert_eq!(d.set_state(q, QpState::Init), Err(InvalidState));
    let rts = qp_attr::STATE
        | qp_attr::SQ_PSN
        | qp_attr::TIMEOUT
        | qp_attr::RETRY_CNT
        | qp_attr::RNR_RETRY;
    assert_eq!(
        d.modify(q, rts, |o| {
            o[8] = 3;
            o[10] = 8;
        }),
        Err(InvalidParam)
    );
    assert_eq!(
        d.modify(q, rts, |o| {
            o[8] = 3;
            o[12] = 32;
        }),
        Err(InvalidParam)
    );
    assert_eq!(d.modify(q, rts, |o| o[8] = 3), Ok((0, 0)));
    // RTS -> RTS with optional attributes; without the state bit.
    assert_eq!(d.modify(q, qp_attr::TIMEOUT, |o| o[12] = 10), Ok((0, 0)));
    assert_eq!(
        d.modify(q, qp_attr::PATH_MTU, |o| o[9] = 1),
        Err(InvalidParam)
    );
    // RTS -> SQD -> RTS; SQD reports drained at once (nothing outstanding).
    assert_eq!(d.set_state(q, QpState::Sqd), Ok((0, 0)));
    assert!(d.env.events.contains(&AsyncEvent::SqDrained { qpn: q }));
    assert_eq!(d.set_state(q, QpState::Init), Err(InvalidState));
    assert_eq!(d.set_state(q, QpState::Rts), Ok((0, 0)));
    // SQE is reachable only from RESET/ERR paths: RTS -> SQE is illegal.
    assert_eq!(d.set_state(q, QpState::Sqe), Err(InvalidState));
    // ERR from anywhere, then only RESET (or ERR).
    assert_eq!(d.set_state(q, QpState::Err), Ok((0, 0)));
    assert_eq!(d.qp_state(q), QpState::Err as u8);
    assert_eq!(d.set_state(q, QpState::Rts), Err(InvalidState));
    assert_eq!(d.set_state(q, QpState::Err), Ok((0, 0)));
    assert_eq!(d.set_state(q, QpState::Reset), Ok((0, 0)));
    assert_eq!(d.set_state(q, QpState::Init), Ok((0, 0)));
    // Unknown QP.
    assert_eq!(d.set_state(99, QpState::Init), Err(InvalidHandle));
}

#[test]
fn qp_query_and_destroy() {
    let mut l = Loop::new();
    let out = l.d.alloc(64);
    let mut o = ops();
    put32(&mut o, 0, l.a.qpn);
    put64(&mut o, 8, out);
    assert_eq!(l.d.admin(opcode::QUERY_QP, o), Ok((QpState::Rts as u32, 0)));
    let b = l.d.read_mem(out, 64);
    assert_eq!(le_u32(&b, 0), l.a.qpn);
    assert_eq!(le_u32(&b, 16), l.b.qpn);
    assert_eq!(le_u32(&b, 20), 100);
    assert_eq!(le_u32(&b, 24), 100);
    assert_eq!(&b[36..40], &IP_A);
    assert_eq!(b[9], 1);
    put64(&mut o, 8, u64::MAX - 10);
    assert_eq!(l.d.admin(opcode::QUERY_QP, o), Err(DmaError));
    let mut o = ops();
    put32(&mut o, 0, l.a.qpn);
    assert_eq!(l.d.admin(opcode::DESTROY_QP, o), Ok((0, 0)));
    assert_eq!(l.d.admin(opcode::DESTROY_QP, o), Err(InvalidHandle));
    assert_eq!(l.d.admin(opcode::QUERY_QP, o), Err(InvalidHandle));
    // The CQ is free now that its only QP is gone.
    let mut o = ops();
    put32(&mut o, 0, l.cq_a.cqn);
    assert_eq!(l.d.admin(opcode::DESTROY_CQ, o), Ok((0, 0)));
}

#[allow(clippy::too_many_arguments)]
fn mr_ops(
    pd: u32,
    acc: u32,
    iova: u64,
    len: u64,
    list: u64,
    count: u32,
    fbo: u32,
    shift: u8,
) -> [u8; 56] {
    let mut o = ops();
    put32(&mut o, 0, pd);
    put32(&mut o, 4, acc);
    put64(&mut o, 8, iova);
    put64(&mut o, 16, len);
    put64(&mut o, 24, list);
    put32(&mut o, 32, count);
    put32(&mut o, 36, fbo);
    o[40] = shift;
    o[41] = 0x33;
    o
}

#[test]
fn reg_mr_success_and_key_format() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let buf = d.alloc(3 * PAGE);
    let list = d.alloc(64);
    for i in 0..3u64 {
        d.write_mem(list + i * 8, &(buf + i * PAGE).to_le_bytes());
    }
    let r = d.admin(
        opcode::REG_MR,
        mr_ops(
            pd,
            access::LOCAL_WRITE,
            0x1000_0100,
            2 * PAGE,
            list,
            3,
            0x100,
            12,
        ),
    );
    assert_eq!(r, Ok(((1 << 8) | 0x33, 1)));
    // QUERY_MR.
    let out = d.alloc(64);
    let mut o = ops();
    put32(&mut o, 0, (1 << 8) | 0x33);
    put64(&mut o, 8, out);
    assert_eq!(d.admin(opcode::QUERY_MR, o), Ok((2, 0)));
    let b = d.read_mem(out, 64);
    assert_eq!(le_u64(&b, 16), 0x1000_0100);
    assert_eq!(le_u32(&b, 32), 3);
    put32(&mut o, 0, 0x5500);
    assert_eq!(d.admin(opcode::QUERY_MR, o), Err(InvalidHandle));
    // DEREG.
    let mut o = ops();
    put32(&mut o, 0, (1 << 8) | 0x33);
    assert_eq!(d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
    assert_eq!(d.admin(opcode::DEREG_MR, o), Err(InvalidHandle));
    put32(&mut o, 0, 0x33);
    assert_eq!(d.admin(opcode::DEREG_MR, o), Err(InvalidHandle));
    assert_eq!(d.v.stats().mr_pages, 0);
}

#[test]
fn reg_mr_failures() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let buf = d.alloc(2 * PAGE);
    let list = d.alloc(64);
    d.write_mem(list, &buf.to_le_bytes());
    d.write_mem(list + 8, &(buf + PAGE).to_le_bytes());
    let ok = mr_ops(pd, 0, 0, 2 * PAGE, list, 2, 0, 12);
    let cases: Vec<([u8; 56], AdminStatus)> = vec![
        (mr_ops(7, 0, 0, 2 * PAGE, list, 2, 0, 12), InvalidHandle),
        (
            mr_ops(pd, access::REMOTE_WRITE, 0, 2 * PAGE, list, 2, 0, 12),
            InvalidParam,
        ),
        (mr_ops(pd, 0x10, 0, 2 * PAGE, list, 2, 0, 12), InvalidParam),
        (mr_ops(pd, 0, 0, 2 * PAGE, list, 3, 0, 12), InvalidParam),
        (mr_ops(pd, 0, 0, 2 * PAGE, list, 1, 0, 12), InvalidParam),
        (mr_ops(pd, 0, 0, 2 * PAGE, list, 2, 4096, 12), InvalidParam),
        (mr_ops(pd, 0, 0, 2 * PAGE, list, 2, 0, 11), InvalidParam),
        (mr_ops(pd, 0, 0, 2 * PAGE, list, 2, 0, 31), InvalidParam),
        (
            mr_ops(pd, 0, u64::MAX - 10, 2 * PAGE, list, 2, 0, 12),
            InvalidParam,
        ),
        (mr_ops(pd, 0, 0, 2 * PAGE, u64::MAX - 4, 2, 0, 12), DmaError),
        (mr_ops(pd, 0, 0, 1 << 40, list, 1 << 28, 0, 12), NoResources),
    ];
    for (o, want) in cases {
        assert_eq!(d.admin(opcode::REG_MR, o), Err(want));
    }
    // Page addresses: misaligned, outside RAM.
    d.write_mem(list + 8, &(buf + 100).to_le_bytes());
    assert_eq!(d.admin(opcode::REG_MR, ok), Err(InvalidParam));
    d.write_mem(list + 8, &(MEM_SIZE as u64).to_le_bytes());
    assert_eq!(d.admin(opcode::REG_MR, ok), Err(InvalidParam));
    d.write_mem(list + 8, &(buf + PAGE).to_le_bytes());
    assert!(d.admin(opcode::REG_MR, ok).is_ok());
    // Remote write together with local write is fine.
    let o = mr_ops(
        pd,
        access::REMOTE_WRITE | access::LOCAL_WRITE,
        0,
        2 * PAGE,
        list,
        2,
        0,
        12,
    );
    assert!(d.admin(opcode::REG_MR, o).is_ok());
}

#[test]
fn mr_table_full() {
    let limits = VerbsLimits {
        max_mr: 1,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    d.buf_mr(pd, 100, 0);
    let a = d.alloc(100);
    assert_eq!(d.reg_mr_at(pd, a, 100, 0, 0), Err(NoResources));
    let mut o = ops();
    put32(&mut o, 0, pd);
    put32(&mut o, 4, 4);
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, o), Err(NoResources));
}

#[test]
fn a_reused_mr_index_gets_a_new_key_byte() {
    // One MR index: every registration after a deregistration reuses it.
    let limits = VerbsLimits {
        max_mr: 1,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    let (buf, old) = d.buf_mr(pd, 100, 0);
    assert_eq!(old, 0x15A);
    let mut o = ops();
    put32(&mut o, 0, old);
    assert_eq!(d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
    // The driver asks for key byte 0x5A again: the device hands out 0x5B.
    let new = d.reg_mr_at(pd, buf, 100, 0, buf).unwrap();
    assert_eq!(new, 0x15B);
    let out = d.alloc(64);
    let mut q = ops();
    put32(&mut q, 0, new);
    put64(&mut q, 8, out);
    assert_eq!(d.admin(opcode::QUERY_MR, q), Ok((2, 0)));
    assert_eq!(le_u32(&d.read_mem(out, 4), 0), new, "key in force");
    // The same holds for ALLOC_FR_MR.
    put32(&mut o, 0, new);
    assert_eq!(d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
    let mut f = ops();
    put32(&mut f, 0, pd);
    put32(&mut f, 4, 4);
    f[8] = 0x5B;
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, f), Ok((0x15C, 1)));
    // And across a device reset.
    d.v.reset();
    let pd = d.pd();
    put32(&mut f, 0, pd);
    f[8] = 0x5C;
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, f), Ok((0x15D, 1)));
}

#[test]
fn handles_fresh_first_then_oldest_freed() {
    let limits = VerbsLimits {
        max_pd: 3,
        max_cq: 3,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    assert_eq!([d.pd(), d.pd()], [1, 2]);
    let destroy = |d: &mut Dev, opc: u8, h: u32| {
        let mut o = ops();
        put32(&mut o, 0, h);
        assert_eq!(d.admin(opc, o), Ok((0, 0)));
    };
    destroy(&mut d, opcode::DESTROY_PD, 1);
    // A never-used handle comes before the one just destroyed.
    assert_eq!(d.pd(), 3);
    destroy(&mut d, opcode::DESTROY_PD, 3);
    destroy(&mut d, opcode::DESTROY_PD, 2);
    assert_eq!([d.pd(), d.pd(), d.pd()], [1, 3, 2]);
    assert_eq!(d.admin(opcode::CREATE_PD, ops()), Err(NoResources));
    // CQs follow the same order.
    let cqs: Vec<u32> = (0..3).map(|_| d.cq(4).cqn).collect();
    assert_eq!(cqs, [1, 2, 3]);
    destroy(&mut d, opcode::DESTROY_CQ, 2);
    destroy(&mut d, opcode::DESTROY_CQ, 1);
    assert_eq!([d.cq(4).cqn, d.cq(4).cqn], [2, 1]);
    assert_eq!(d.v.stats().pds, 3);
}

#[test]
fn qp_handles_are_reused_oldest_first() {
    let limits = VerbsLimits {
        max_qp: 2,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    let cq = d.cq(16);
    let (a, b) = (d.qp(pd, &cq, &cq, 4, 4).qpn, d.qp(pd, &cq, &cq, 4, 4).qpn);
    assert_eq!((a, b), (2, 3), "QPNs 0 and 1 are reserved (spec §3.12)");
    let mut o = ops();
    put32(&mut o, 0, a);
    d.admin(opcode::DESTROY_QP, o).unwrap();
    put32(&mut o, 0, b);
    d.admin(opcode::DESTROY_QP, o).unwrap();
    assert_eq!(d.qp(pd, &cq, &cq, 4, 4).qpn, 2);
    assert_eq!(d.qp(pd, &cq, &cq, 4, 4).qpn, 3);
    let ring = d.alloc(4 * 128);
    let o = Dev::qp_ops(pd, cq.cqn, cq.cqn, 4, 4, ring, ring);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(NoResources));
}

#[test]
fn pd_busy_follows_its_mrs() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let other = d.pd();
    let (_, k1) = d.buf_mr(pd, 100, 0);
    let mut f = ops();
    put32(&mut f, 0, pd);
    put32(&mut f, 4, 4);
    let k2 = d.admin(opcode::ALLOC_FR_MR, f).unwrap().0;
    let (_, k3) = d.buf_mr(other, 100, 0);
    let mut p = ops();
    put32(&mut p, 0, pd);
    for k in [k1, k2] {
        assert_eq!(d.admin(opcode::DESTROY_PD, p), Err(Busy));
        let mut o = ops();
        put32(&mut o, 0, k);
        assert_eq!(d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
    }
    assert_eq!(d.admin(opcode::DESTROY_PD, p), Ok((0, 0)));
    put32(&mut p, 0, other);
    assert_eq!(d.admin(opcode::DESTROY_PD, p), Err(Busy));
    let mut o = ops();
    put32(&mut o, 0, k3);
    d.admin(opcode::DEREG_MR, o).unwrap();
    assert_eq!(d.admin(opcode::DESTROY_PD, p), Ok((0, 0)));
    assert_eq!(d.v.stats().mrs, 0);
}

#[test]
fn alloc_fr_mr() {
    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let mut o = ops();
    put32(&mut o, 0, pd);
    put32(&mut o, 4, 16);
    o[8] = 0x77;
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, o), Ok((0x177, 1)));
    put32(&mut o, 4, 0);
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, o), Err(InvalidParam));
    put32(&mut o, 4, 1 << 30);
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, o), Err(InvalidParam));
    put32(&mut o, 0, 55);
    put32(&mut o, 4, 1);
    assert_eq!(d.admin(opcode::ALLOC_FR_MR, o), Err(InvalidHandle));
    // The FR MR is FREE.
    let out = d.alloc(64);
    let mut q = ops();
    put32(&mut q, 0, 0x177);
    put64(&mut q, 8, out);
    assert_eq!(d.admin(opcode::QUERY_MR, q), Ok((1, 0)));
}

#[test]
fn reset_drops_everything() {
    let mut l = Loop::new();
    l.d.v.reset();
    let s = l.d.v.stats();
    assert!(s.qps.is_empty() && s.cqs.is_empty());
    assert_eq!(s.pds, 0);
    assert_eq!(s.mrs, 0);
    assert_eq!(l.d.pd(), 1);
    let json = serde_json::to_string(&l.d.v.stats()).unwrap();
    assert!(json.contains("\"pds\":1"));
}

/// QPNs 0 and 1 are reserved in InfiniBand and RoCE (QP0/QP1, management
/// datagrams): ordinary QPs are numbered from 2, and `max_qp` QPs still fit.
#[test]
fn qpns_0_and_1_are_never_handed_out() {
    let limits = VerbsLimits {
        max_qp: 3,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    let cq = d.cq(16);
    let qpns: Vec<u32> = (0..3).map(|_| d.qp(pd, &cq, &cq, 4, 4).qpn).collect();
    assert_eq!(qpns, [2, 3, 4]);
    let ring = d.alloc(4 * 128);
    let o = Dev::qp_ops(pd, cq.cqn, cq.cqn, 4, 4, ring, ring);
    assert_eq!(d.admin(opcode::CREATE_QP, o), Err(NoResources));
    // Doorbells of the reserved QPNs name no QP.
    for reserved in [0, 1] {
        d.v.doorbell(&mut d.env, verbs_db::sq_doorbell(reserved), 1);
    }
    assert_eq!(d.v.stats().global.bad_doorbells, 2);
}
