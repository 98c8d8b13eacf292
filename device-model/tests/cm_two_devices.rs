//! The connection manager end to end, driven the way a guest driver drives it
//! (admin queue, event ring, doorbells through BAR0): two whole devices on the
//! in-process wire resolve each other by ARP through the port, connect with IBTA
//! CM messages on QP1, move data on the QPs the device connected, and disconnect;
//! the host's poll deadline carries the CM timers. Operand offsets, opcodes and
//! event codes are an independent copy of `docs/device-spec.md` §3.14 and §4.2.
//!
//! Run: `cargo test -p rnic-device --test cm_two_devices`.

mod support;

use std::time::Duration;

use support::*;

const CM_LISTEN: u8 = 0x30;
const CM_CONNECT: u8 = 0x32;
const CM_ACCEPT: u8 = 0x33;
const CM_COMPLETE_CONNECT: u8 = 0x35;
const CM_DISCONNECT: u8 = 0x36;
const EV_REQUEST: u8 = 0x30;
const EV_REPLY: u8 = 0x31;
const EV_ESTABLISHED: u8 = 0x32;
const EV_DISCONNECT_RECEIVED: u8 = 0x34;
const EV_DISCONNECTED: u8 = 0x35;
const EV_FAILED: u8 = 0x36;

fn addr4(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&ip);
    a
}

/// Steps until node `n` posts an event with `code`; returns it.
fn wait_event(w: &mut World, n: usize, code: u8) -> Event {
    let mut found = None;
    w.run_until(200_000, "a connection manager event", |w| {
        if found.is_none() {
            found = w.nodes[n]
                .poll_events()
                .into_iter()
                .find(|e| e.code == code);
        }
        found.is_some()
    });
    found.expect("event")
}

/// A PD, a CQ and an RC QP in RESET: (QPN, CQN, PDN).
fn rc_qp(n: &mut Node) -> (u32, u32, u32) {
    let c = QpCfg::default();
    let pd = n.create_pd();
    let cq = n.create_cq(c.cq_entries, 1);
    (n.create_qp(pd, cq, cq, &c), cq, pd)
}

#[test]
fn two_devices_connect_by_cm_move_data_and_disconnect() {
    let mut w = World::two();
    let (qa, cqa, pda) = rc_qp(&mut w.nodes[A]);
    let (qb, cqb, pdb) = rc_qp(&mut w.nodes[B]);
    let ip_b = ip_of(1);
    let (listener, port) = w.nodes[B].admin_ok(
        CM_LISTEN,
        Ops::new().u8(0, 4).u16(2, 18515).bytes(16, &addr4(ip_b)),
    );
    assert_eq!((listener, port), (1, 18515));
    let pd_buf = w.nodes[A].alloc(64, 8);
    w.nodes[A].write_mem(pd_buf, b"ndk private");
    let (ca, _) = w.nodes[A].admin_ok(
        CM_CONNECT,
        Ops::new()
            .u32(0, qa)
            .u8(4, 4)
            .u8(5, 8)
            .u8(6, 8)
            .u8(7, 11)
            .u64(8, pd_buf)
            .bytes(32, &addr4(ip_b))
            .u16(48, 18515),
    );
    // ARP through the port, then REQ: the request reaches B's event ring.
    let req = wait_event(&mut w, B, EV_REQUEST);
    assert_eq!(req.detail, listener);
    let cb = req.handle;
    w.nodes[B].admin_ok(CM_ACCEPT, Ops::new().u32(0, cb).u32(4, qb));
    let rep = wait_event(&mut w, A, EV_REPLY);
    assert_eq!((rep.handle, rep.detail), (ca, qa));
    w.nodes[A].admin_ok(CM_COMPLETE_CONNECT, Ops::new().u32(0, ca));
    let est = wait_event(&mut w, B, EV_ESTABLISHED);
    assert_eq!((est.handle, est.detail), (cb, qb));
    assert_eq!(w.nodes[A].query_qp(qa).0, 3, "RTS");
    assert_eq!(w.nodes[B].query_qp(qb).0, 3, "RTS");

    // A SEND from A lands in B's receive buffer.
    let src = w.nodes[A].buffer(pda, 4096, 1);
    let dst = w.nodes[B].buffer(pdb, 4096, 1);
    let data = pattern(7, 3000);
    w.nodes[A].write_mem(src.addr, &data);
    w.nodes[B].post_recv(qb, 1, &[dst.sge(0, 4096)]);
    w.nodes[A].post_send(qa, &SendWr::send(2, vec![src.sge(0, 3000)]));
    let got = w.wait_cqes(B, cqb, 1, 20_000);
    assert_eq!((got[0].status, got[0].byte_len), (0, 3000));
    assert_eq!(w.nodes[B].read_mem(dst.addr, 3000), data);
    let sent = w.wait_cqes(A, cqa, 1, 20_000);
    assert_eq!(sent[0].status, 0);

    // Disconnect: B hears it once, A's disconnect completes on DREP.
    w.nodes[A].admin_ok(CM_DISCONNECT, Ops::new().u32(0, ca));
    let dr = wait_event(&mut w, B, EV_DISCONNECT_RECEIVED);
    assert_eq!((dr.handle, dr.detail), (cb, qb));
    let done = wait_event(&mut w, A, EV_DISCONNECTED);
    assert_eq!((done.handle, done.detail), (ca, 0));
    w.idle(1000);
    assert!(w.nodes[B]
        .poll_events()
        .iter()
        .all(|e| e.code != EV_DISCONNECT_RECEIVED));
    let s = w.nodes[A].dev.stats().verbs.cm;
    assert_eq!((s.arp_sent, s.neighbours), (1, 1));
    assert_eq!(w.nodes[B].dev.stats().verbs.cm.arp_answered, 1);
}

#[test]
fn cm_timers_set_the_poll_deadline_and_an_unreachable_peer_fails() {
    let mut w = World::one();
    let (qa, _, _) = rc_qp(&mut w.nodes[A]);
    let now = w.nodes[A].dev.now();
    assert_eq!(w.nodes[A].dev.next_deadline(), None);
    let (ca, _) = w.nodes[A].admin_ok(
        CM_CONNECT,
        Ops::new()
            .u32(0, qa)
            .u8(4, 4)
            .bytes(32, &addr4([10, 9, 9, 9]))
            .u16(48, 1),
    );
    // The ARP wait (100 ms) is the next deadline.
    assert_eq!(
        w.nodes[A].dev.next_deadline(),
        Some(now + Duration::from_millis(100))
    );
    for _ in 0..3 {
        let t = w.nodes[A].dev.next_deadline().expect("a CM timer");
        w.nodes[A].dev.poll(t);
    }
    let evs = w.nodes[A].poll_events();
    let failed = evs.iter().find(|e| e.code == EV_FAILED).expect("failed");
    assert_eq!((failed.handle, failed.detail), (ca, 1));
    assert_eq!(w.nodes[A].dev.next_deadline(), None);
    assert_eq!(w.nodes[A].query_qp(qa).0, 6, "ERR");
}
