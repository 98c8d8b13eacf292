//! Fault scopes of verbs DMA: every access names the QP whose work it is (and the
//! MR it goes through), the CQ whose ring it writes, or the admin queue.

use super::*;

fn scopes_at(env: &TestEnv, lo: u64, hi: u64, write: bool) -> Vec<Option<DmaScope>> {
    env.dma_log
        .iter()
        .filter(|r| r.write == write && r.addr >= lo && r.addr < hi)
        .map(|r| r.scope)
        .collect()
}

fn mr(key: u32) -> u32 {
    key >> 8
}

#[test]
fn send_names_qps_mrs_and_cqs() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
    l.d.env.log_dma = true;
    let mut w = signaled(wqe::opcode::SEND, 2);
    w.sges = vec![(l.buf_a, 16, l.key_a)];
    l.send_a(w);
    assert_eq!(l.cqes_b()[0].status, 0);
    let env = &l.d.env;
    assert!(
        env.dma_log.iter().all(|r| r.scope.is_some()),
        "unscoped DMA"
    );
    let (qa, qb) = (l.a.qpn, l.b.qpn);
    let ring = |q: &TQp, rq: bool| {
        let (base, n) = if rq {
            (q.rq_base, q.rq_size)
        } else {
            (q.sq_base, q.sq_size)
        };
        (base, base + u64::from(n) * 128)
    };
    let (s0, s1) = ring(&l.a, false);
    assert_eq!(
        scopes_at(env, s0, s1, false),
        vec![Some(DmaScope::qp(qa))],
        "send WQE fetch"
    );
    let (r0, r1) = ring(&l.b, true);
    assert_eq!(
        scopes_at(env, r0, r1, false),
        vec![Some(DmaScope::qp(qb))],
        "receive WQE fetch"
    );
    assert_eq!(
        scopes_at(env, l.buf_a, l.buf_a + 65536, false),
        vec![Some(DmaScope::qp(qa).with_mr(mr(l.key_a)))],
        "payload read"
    );
    assert_eq!(
        scopes_at(env, l.buf_b, l.buf_b + 65536, true),
        vec![Some(DmaScope::qp(qb).with_mr(mr(l.key_b)))],
        "payload write"
    );
    let cq = |c: &TCq| (c.base, c.base + u64::from(c.size) * 32);
    let (c0, c1) = cq(&l.cq_a);
    assert_eq!(
        scopes_at(env, c0, c1, true),
        vec![Some(DmaScope::cq(l.cq_a.cqn)); 2],
        "send CQE"
    );
    let (c0, c1) = cq(&l.cq_b);
    assert_eq!(
        scopes_at(env, c0, c1, true),
        vec![Some(DmaScope::cq(l.cq_b.cqn)); 2],
        "receive CQE"
    );
}

#[test]
fn rdma_write_and_read_name_the_remote_mr() {
    let mut l = Loop::new();
    l.d.env.log_dma = true;
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(l.buf_a, 100, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w);
    let mut r = signaled(wqe::opcode::RDMA_READ, 2);
    r.sges = vec![(l.buf_a + 1000, 100, l.key_a)];
    r.remote_addr = l.buf_b;
    r.rkey = l.key_b;
    l.send_a(r);
    assert_eq!(l.cqes_a().len(), 2);
    let env = &l.d.env;
    let (qa, qb) = (l.a.qpn, l.b.qpn);
    let at_b = DmaScope::qp(qb).with_mr(mr(l.key_b));
    let at_a = DmaScope::qp(qa).with_mr(mr(l.key_a));
    assert_eq!(
        scopes_at(env, l.buf_b, l.buf_b + 100, true),
        vec![Some(at_b)],
        "WRITE target"
    );
    assert_eq!(
        scopes_at(env, l.buf_b, l.buf_b + 100, false),
        vec![Some(at_b)],
        "READ source"
    );
    assert_eq!(
        scopes_at(env, l.buf_a + 1000, l.buf_a + 1100, true),
        vec![Some(at_a)],
        "READ sink"
    );
}

#[test]
fn admin_buffers_and_page_lists() {
    let mut l = Loop::new();
    l.d.env.log_dma = true;
    // REG_MR: the page list is read for the admin queue, naming the new MR.
    let buf = l.d.alloc(PAGE);
    let key = l.d.reg_mr_at(l.pd, buf, PAGE, ALL_ACCESS, buf).unwrap();
    let reads: Vec<_> = l.d.env.dma_log.iter().filter(|r| !r.write).collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].scope, Some(DmaScope::ADMIN.with_mr(mr(key))));
    // QUERY_QP: the result buffer is the admin queue's.
    l.d.env.dma_log.clear();
    l.d.qp_state(l.a.qpn);
    assert_eq!(l.d.env.dma_log.len(), 1);
    assert_eq!(l.d.env.dma_log[0].scope, Some(DmaScope::ADMIN));
    // FAST_REG: the page list is read for the QP, naming the MR.
    let mut o = [0u8; 56];
    put32(&mut o, 0, l.pd);
    put32(&mut o, 4, 1);
    let fr = l.d.admin(opcode::ALLOC_FR_MR, o).unwrap().0;
    let page = l.d.alloc(PAGE);
    let list = l.d.alloc(8);
    l.d.write_mem(list, &page.to_le_bytes());
    let mut raw = [0u8; 128];
    put64(&mut raw, 16, 0x4000_0000);
    put32(&mut raw, 24, fr);
    put32(&mut raw, 28, access::LOCAL_WRITE);
    put64(&mut raw, 32, PAGE);
    put64(&mut raw, 40, list);
    put32(&mut raw, 48, 1);
    raw[56] = 12;
    let mut w = signaled(wqe::opcode::FAST_REG, 3);
    w.raw = Some(raw);
    l.d.env.dma_log.clear();
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(
        scopes_at(&l.d.env, list, list + 8, false),
        vec![Some(DmaScope::qp(l.a.qpn).with_mr(mr(fr)))]
    );
}
