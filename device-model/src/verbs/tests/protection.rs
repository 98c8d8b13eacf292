//! Memory protection on both sides: wrong key, wrong PD, missing right, out of
//! bounds, invalidated MR, fast register on a VALID MR; fast-register, local and
//! remote invalidation flows.

use super::*;

/// A second PD's MR, an MR without rights, for the checks below.
struct Extra {
    other_pd_key: u32,
    no_rights_key: u32,
    other_pd_buf: u64,
    no_rights_buf: u64,
}

fn extra(l: &mut Loop) -> Extra {
    let pd2 = l.d.pd();
    let (other_pd_buf, other_pd_key) = l.d.buf_mr(pd2, 4096, ALL_ACCESS);
    let (no_rights_buf, no_rights_key) = l.d.buf_mr(l.pd, 4096, 0);
    Extra {
        other_pd_key,
        no_rights_key,
        other_pd_buf,
        no_rights_buf,
    }
}

fn expect_local_prot(l: &mut Loop, w: SendWr) {
    l.send_a(w);
    let ca = l.cqes_a();
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!(ca[0].status, st(WcStatus::LocalProtectionError));
    assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
}

#[test]
fn requester_lkey_checks() {
    type Case = fn(&Loop, &Extra) -> SendWr;
    let cases: Vec<(Case, u32)> = vec![
        // wrong key byte
        (|l, _| sge_send(l.buf_a, 8, l.key_a ^ 1), 1),
        // unknown index
        (|l, _| sge_send(l.buf_a, 8, 0x7700), 1),
        // other PD
        (|_, e| sge_send(e.other_pd_buf, 8, e.other_pd_key), 2),
        // out of bounds (end past the region), below the start
        (|l, _| sge_send(l.buf_a + 65530, 8, l.key_a), 5),
        (|l, _| sge_send(l.buf_a - 1, 8, l.key_a), 5),
        // address overflow
        (|l, _| sge_send(u64::MAX - 3, 8, l.key_a), 5),
        // READ into an MR without local write
        (
            |l, e| {
                let mut w = signaled(wqe::opcode::RDMA_READ, 1);
                w.sges = vec![(e.no_rights_buf, 8, e.no_rights_key)];
                w.remote_addr = l.buf_b;
                w.rkey = l.key_b;
                w
            },
            3,
        ),
    ];
    for (make, vendor) in cases {
        let mut l = Loop::new();
        let e = extra(&mut l);
        l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
        let w = make(&l, &e);
        l.send_a(w);
        let ca = l.cqes_a();
        assert_eq!(ca[0].status, st(WcStatus::LocalProtectionError));
        assert_eq!(ca[0].vendor_err, vendor);
        assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
        // The responder is untouched.
        assert_eq!(l.d.qp_state(l.b.qpn), QpState::Rts as u8);
    }
}

fn sge_send(addr: u64, len: u32, key: u32) -> SendWr {
    let mut w = signaled(wqe::opcode::SEND, 1);
    w.sges = vec![(addr, len, key)];
    w
}

#[test]
fn responder_recv_buffer_protection() {
    // A receive WQE naming an MR without local write: the responder completes it
    // with a local protection error and NAKs; the requester sees a remote
    // operational error.
    let mut l = Loop::new();
    let e = extra(&mut l);
    l.recv_b(1, &[(e.no_rights_buf, 64, e.no_rights_key)]);
    l.send_a(sge_send(l.buf_a, 8, l.key_a));
    assert_eq!(l.cqes_b()[0].status, st(WcStatus::LocalProtectionError));
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteOperationError));
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
}

/// Each responder-side rkey violation: the responder NAKs (remote access
/// error) and goes to ERR with an access-error event; the requester completes
/// with REMOTE_ACCESS_ERROR and goes to ERR.
#[test]
fn responder_rkey_checks_write_and_read() {
    type Case = fn(&Loop, &Extra) -> (u64, u32);
    let cases: Vec<Case> = vec![
        |l, _| (l.buf_b, l.key_b ^ 0x80),
        |_, _| (0x1000, 0x9900),
        |_, e| (e.other_pd_buf, e.other_pd_key),
        |_, e| (e.no_rights_buf, e.no_rights_key),
        |l, _| (l.buf_b + 65536 - 4, l.key_b),
        |l, _| (l.buf_b - 8, l.key_b),
    ];
    for opcode in [
        wqe::opcode::RDMA_WRITE,
        wqe::opcode::RDMA_READ,
        wqe::opcode::RDMA_WRITE_WITH_IMM,
    ] {
        for make in &cases {
            let mut l = Loop::new();
            let e = extra(&mut l);
            l.recv_b(1, &[]);
            let (addr, rkey) = make(&l, &e);
            let mut w = signaled(opcode, 3);
            w.sges = vec![(l.buf_a, 16, l.key_a)];
            w.remote_addr = addr;
            w.rkey = rkey;
            l.send_a(w);
            let ca = l.cqes_a();
            assert_eq!(
                ca[0].status,
                st(WcStatus::RemoteAccessError),
                "op {opcode} {addr:#x}/{rkey:#x}"
            );
            assert_eq!(l.d.qp_state(l.a.qpn), QpState::Err as u8);
            assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
            assert!(l
                .d
                .env
                .events
                .contains(&AsyncEvent::QpAccessError { qpn: l.b.qpn }));
            // The posted receive of the responder is flushed.
            assert_eq!(l.cqes_b()[0].status, st(WcStatus::Flushed));
        }
    }
}

#[test]
fn responder_qp_access_flags_are_enforced() {
    let mut l = Loop::new();
    // Remove remote rights from B's QP (RTS -> RTS with ACCESS = 0).
    l.d.modify(l.b.qpn, qp_attr::ACCESS, |o| o[13] = 0).unwrap();
    let mut w = signaled(wqe::opcode::RDMA_READ, 3);
    w.sges = vec![(l.buf_a, 16, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
}

fn fast_reg_wr(
    wr_id: u64,
    key: u32,
    acc: u32,
    iova: u64,
    len: u64,
    list: u64,
    count: u32,
) -> SendWr {
    let mut raw = [0u8; 128];
    put64(&mut raw, 16, iova);
    put32(&mut raw, 24, key);
    put32(&mut raw, 28, acc);
    put64(&mut raw, 32, len);
    put64(&mut raw, 40, list);
    put32(&mut raw, 48, count);
    put32(&mut raw, 52, 0);
    raw[56] = 12;
    SendWr {
        wr_id,
        opcode: wqe::opcode::FAST_REG,
        flags: wqe::flags::SIGNALED,
        raw: Some(raw),
        ..SendWr::default()
    }
}

fn alloc_fr(l: &mut Loop, max_pages: u32) -> u32 {
    let mut o = [0u8; 56];
    put32(&mut o, 0, l.pd);
    put32(&mut o, 4, max_pages);
    o[8] = 0x10;
    l.d.admin(opcode::ALLOC_FR_MR, o).unwrap().0
}

/// Fast-register B's FR MR over 2 pages through B's send queue.
fn fast_register_on_b(l: &mut Loop, key: u32, acc: u32) -> (u64, SendWr) {
    let buf = l.d.alloc(2 * PAGE);
    let list = l.d.alloc(16);
    l.d.write_mem(list, &buf.to_le_bytes());
    l.d.write_mem(list + 8, &(buf + PAGE).to_le_bytes());
    let w = fast_reg_wr(50, key, acc, 0x7000_0000, 2 * PAGE, list, 2);
    let mut b = l.b;
    l.d.post_send(&mut b, &w);
    l.b = b;
    (buf, w)
}

#[test]
fn fast_register_write_then_remote_invalidate() {
    let mut l = Loop::new();
    let fr = alloc_fr(&mut l, 4);
    // Before registration: FREE -> remote access error.
    {
        let mut l2 = Loop::new();
        let fr2 = alloc_fr(&mut l2, 4);
        let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
        w.sges = vec![(l2.buf_a, 8, l2.key_a)];
        w.remote_addr = 0;
        w.rkey = fr2;
        l2.send_a(w);
        assert_eq!(l2.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
    }
    let new_key = (fr & !0xFF) | 0x99;
    let (buf, _) = fast_register_on_b(&mut l, new_key, ALL_ACCESS);
    let cb = l.cqes_b();
    assert_eq!(
        (cb[0].wr_id, cb[0].status, cb[0].opcode),
        (50, 0, cqe::opcode::FAST_REG)
    );
    // RDMA WRITE through the new key, crossing the page boundary.
    let data = pattern(300, 2);
    l.d.write_mem(l.buf_a, &data);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 2);
    w.sges = vec![(l.buf_a, 300, l.key_a)];
    w.remote_addr = 0x7000_0000 + PAGE - 100;
    w.rkey = new_key;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, 0);
    assert_eq!(l.d.read_mem(buf + PAGE - 100, 300), data);
    // The old key no longer works.
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 3);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = 0x7000_0000;
    w.rkey = fr;
    {
        let mut l3 = Loop::new();
        let fr3 = alloc_fr(&mut l3, 4);
        let k3 = (fr3 & !0xFF) | 0x99;
        fast_register_on_b(&mut l3, k3, ALL_ACCESS);
        l3.cqes_b();
        let mut w3 = w.clone();
        w3.sges = vec![(l3.buf_a, 8, l3.key_a)];
        w3.rkey = fr3;
        l3.send_a(w3);
        assert_eq!(l3.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
    }
    // SEND with invalidate: B's MR becomes FREE; B's receive CQE reports the key.
    l.recv_b(60, &[(l.buf_b, 64, l.key_b)]);
    let mut s = signaled(wqe::opcode::SEND_WITH_INV, 4);
    s.imm = new_key;
    s.sges = vec![(l.buf_a, 8, l.key_a)];
    l.send_a(s);
    let cb = l.cqes_b();
    assert_eq!(cb[0].flags & cqe::flags::INV, cqe::flags::INV);
    assert_eq!(cb[0].imm_inv, new_key);
    assert_eq!(l.cqes_a()[0].status, 0);
    // Invalidated MR: WRITE now fails with remote access error.
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 5);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = 0x7000_0000;
    w.rkey = new_key;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
}

#[test]
fn fast_register_on_valid_mr_fails() {
    let mut l = Loop::new();
    let fr = alloc_fr(&mut l, 4);
    fast_register_on_b(&mut l, fr, ALL_ACCESS);
    assert_eq!(l.cqes_b()[0].status, 0);
    fast_register_on_b(&mut l, fr, ALL_ACCESS);
    let cb = l.cqes_b();
    assert_eq!(cb[0].status, st(WcStatus::MemoryManagementError));
    assert_eq!(cb[0].vendor_err, 4);
    assert_eq!(l.d.qp_state(l.b.qpn), QpState::Err as u8);
}

#[test]
fn fast_register_failures() {
    type Case = fn(&mut Loop, u32) -> (SendWr, u32);
    let cases: Vec<Case> = vec![
        // not a fast-register MR
        |l, _| (fast_reg_wr(1, l.key_b, 0, 0, PAGE, 0, 1), 2),
        // unknown index
        |_, _| (fast_reg_wr(1, 0x0077_7700, 0, 0, PAGE, 0, 1), 1),
        // too many pages
        |l, fr| {
            let list = l.d.alloc(64);
            (fast_reg_wr(1, fr, 0, 0, 8 * PAGE, list, 8), 6)
        },
        // page count does not match the length
        |l, fr| {
            let list = l.d.alloc(64);
            (fast_reg_wr(1, fr, 0, 0, PAGE, list, 2), 6)
        },
        // remote write without local write
        |_, fr| (fast_reg_wr(1, fr, access::REMOTE_WRITE, 0, PAGE, 0, 1), 5),
        // page address not aligned
        |l, fr| {
            let list = l.d.alloc(64);
            l.d.write_mem(list, &0x1234u64.to_le_bytes());
            (fast_reg_wr(1, fr, 0, 0, PAGE, list, 1), 7)
        },
        // page list unreadable
        |_, fr| (fast_reg_wr(1, fr, 0, 0, PAGE, u64::MAX - 3, 1), 7),
    ];
    for make in cases {
        let mut l = Loop::new();
        let fr = alloc_fr(&mut l, 4);
        let (w, vendor) = make(&mut l, fr);
        l.send_a(w);
        let ca = l.cqes_a();
        assert_eq!(ca[0].status, st(WcStatus::MemoryManagementError));
        assert_eq!(ca[0].vendor_err, vendor);
    }
    // Fast register of an MR of another PD.
    let mut l = Loop::new();
    let pd2 = l.d.pd();
    let mut o = [0u8; 56];
    put32(&mut o, 0, pd2);
    put32(&mut o, 4, 4);
    let fr = l.d.admin(opcode::ALLOC_FR_MR, o).unwrap().0;
    l.send_a(fast_reg_wr(1, fr, 0, 0, PAGE, 0, 1));
    assert_eq!(l.cqes_a()[0].vendor_err, 3);
}

#[test]
fn local_invalidate_and_reregister_with_new_key_byte() {
    let mut l = Loop::new();
    let fr = alloc_fr(&mut l, 4);
    fast_register_on_b(&mut l, fr, ALL_ACCESS);
    l.cqes_b();
    let mut inv = signaled(wqe::opcode::LOCAL_INV, 70);
    inv.imm = fr;
    let mut b = l.b;
    l.d.post_send(&mut b, &inv);
    l.b = b;
    let cb = l.cqes_b();
    assert_eq!(
        (cb[0].wr_id, cb[0].status, cb[0].opcode),
        (70, 0, cqe::opcode::LOCAL_INV)
    );
    // FREE again: register with a new key byte.
    let k2 = (fr & !0xFF) | 0x42;
    fast_register_on_b(&mut l, k2, ALL_ACCESS);
    assert_eq!(l.cqes_b()[0].status, 0);
    // Invalidate with a stale key fails.
    let mut inv = signaled(wqe::opcode::LOCAL_INV, 71);
    inv.imm = fr;
    let mut b = l.b;
    l.d.post_send(&mut b, &inv);
    assert_eq!(l.cqes_b()[0].status, st(WcStatus::MemoryManagementError));
}

#[test]
fn remote_invalidate_of_bad_key_fails_both_sides() {
    let mut l = Loop::new();
    l.recv_b(1, &[(l.buf_b, 64, l.key_b)]);
    let mut s = signaled(wqe::opcode::SEND_WITH_INV, 4);
    s.imm = l.key_b; // a regular MR cannot be invalidated remotely
    s.sges = vec![(l.buf_a, 8, l.key_a)];
    l.send_a(s);
    assert_eq!(l.cqes_b()[0].status, st(WcStatus::MemoryManagementError));
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteInvalidRequest));
}

#[test]
fn deregistered_mr_is_rejected() {
    let mut l = Loop::new();
    let mut o = [0u8; 56];
    put32(&mut o, 0, l.key_b);
    l.d.admin(opcode::DEREG_MR, o).unwrap();
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(l.buf_a, 8, l.key_a)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    l.send_a(w);
    assert_eq!(l.cqes_a()[0].status, st(WcStatus::RemoteAccessError));
}

#[test]
fn expect_local_prot_helper_on_write_source() {
    let mut l = Loop::new();
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(l.buf_a, 8, 0)];
    w.remote_addr = l.buf_b;
    w.rkey = l.key_b;
    expect_local_prot(&mut l, w);
}

/// Bounded work (issue 10): FAST_REG checks the device-wide page budget before it
/// reads the page list, so a registration that cannot fit costs no DMA at all.
#[test]
fn fast_register_over_the_page_budget_reads_no_page_list() {
    let limits = VerbsLimits {
        max_total_pages: 40,
        ..VerbsLimits::default()
    };
    let mut d = Dev::with_limits(MAC_A, IP_A, limits);
    let pd = d.pd();
    let mut cq = d.cq(16);
    let mut a = d.qp(pd, &cq, &cq, 16, 16);
    let b = d.qp(pd, &cq, &cq, 16, 16);
    d.connect(a.qpn, b.qpn, MAC_A, IP_A, &ConnParams::default());
    d.connect(b.qpn, a.qpn, MAC_A, IP_A, &ConnParams::default());
    let mut o = [0u8; 56];
    put32(&mut o, 0, pd);
    put32(&mut o, 4, 64);
    let fr = d.admin(opcode::ALLOC_FR_MR, o).unwrap().0;
    let pages = 48u32;
    let buf = d.alloc(u64::from(pages) * PAGE);
    let list = d.alloc(u64::from(pages) * 8);
    for i in 0..u64::from(pages) {
        d.write_mem(list + 8 * i, &(buf + i * PAGE).to_le_bytes());
    }
    d.env.log_dma = true;
    let w = fast_reg_wr(9, fr, 0, 0, u64::from(pages) * PAGE, list, pages);
    d.post_send(&mut a, &w);
    let c = d.poll_cq(&mut cq);
    assert_eq!(c[0].status, st(WcStatus::MemoryManagementError));
    assert_eq!(c[0].vendor_err, 8, "page budget exceeded");
    let list_end = list + u64::from(pages) * 8;
    let list_reads = d
        .env
        .dma_log
        .iter()
        .filter(|r| !r.write && r.addr >= list && r.addr < list_end)
        .count();
    assert_eq!(
        list_reads, 0,
        "the page list was read for a registration that cannot fit"
    );
}
