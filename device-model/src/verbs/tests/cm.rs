//! The connection manager between two devices (and on one device, loopback):
//! listen / connect / accept / reject / disconnect, lost and repeated messages,
//! timeouts, address resolution, malformed MADs and the limits of §3.14 and §15.
//! Operand offsets and codes are an independent copy of the spec's tables.

use super::*;
use crate::roce;

/// The CM's wait for a reply (contract `cm::timing`).
fn response_timeout() -> Duration {
    Duration::from_micros(rnic_contract::cm::timing::CM_RESPONSE_TIMEOUT_US)
}

// Opcodes (§3.5) and event codes (§4.2), copied from the spec.
const CM_LISTEN: u8 = 0x30;
const CM_UNLISTEN: u8 = 0x31;
const CM_CONNECT: u8 = 0x32;
const CM_ACCEPT: u8 = 0x33;
const CM_REJECT: u8 = 0x34;
const CM_COMPLETE_CONNECT: u8 = 0x35;
const CM_DISCONNECT: u8 = 0x36;
const CM_QUERY: u8 = 0x37;
const CM_RELEASE: u8 = 0x38;
const EV_REQUEST: u8 = 0x30;
const EV_REPLY: u8 = 0x31;
const EV_ESTABLISHED: u8 = 0x32;
const EV_REJECTED: u8 = 0x33;
const EV_DISCONNECT_RECEIVED: u8 = 0x34;
const EV_DISCONNECTED: u8 = 0x35;
const EV_FAILED: u8 = 0x36;

/// A CM event as (code, connection id, detail).
type Ev = (u8, u32, u32);

fn addr4(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&ip);
    a
}

impl Dev {
    fn cm_events(&mut self) -> Vec<Ev> {
        let evs = std::mem::take(&mut self.env.events);
        let mut out = Vec::new();
        for e in evs {
            if let AsyncEvent::Cm { code, conn, detail } = e {
                out.push((code, conn, detail));
            } else {
                self.env.events.push(e);
            }
        }
        out
    }

    fn listen(&mut self, port: u16, addr: [u8; 16]) -> Result<(u32, u32), AdminStatus> {
        let mut o = [0u8; 56];
        o[0] = 4;
        o[2..4].copy_from_slice(&port.to_le_bytes());
        o[16..32].copy_from_slice(&addr);
        self.admin(CM_LISTEN, o)
    }

    /// Puts `private` in guest memory and returns its address.
    fn stage(&mut self, private: &[u8]) -> u64 {
        let a = self.alloc(256);
        self.write_mem(a, private);
        a
    }

    fn connect_to(
        &mut self,
        qpn: u32,
        ip: [u8; 4],
        port: u16,
        private: &[u8],
    ) -> Result<(u32, u32), AdminStatus> {
        let pd = self.stage(private);
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        o[4] = 4;
        o[5] = 4;
        o[6] = 2;
        o[7] = private.len() as u8;
        put64(&mut o, 8, pd);
        o[32..48].copy_from_slice(&addr4(ip));
        o[48..50].copy_from_slice(&port.to_le_bytes());
        self.admin(CM_CONNECT, o)
    }

    fn accept(&mut self, conn: u32, qpn: u32, private: &[u8]) -> Result<(u32, u32), AdminStatus> {
        let pd = self.stage(private);
        let mut o = [0u8; 56];
        put32(&mut o, 0, conn);
        put32(&mut o, 4, qpn);
        put64(&mut o, 8, pd);
        o[16] = private.len() as u8;
        o[17] = 3;
        o[18] = 1;
        self.admin(CM_ACCEPT, o)
    }

    fn reject(&mut self, conn: u32, private: &[u8]) -> Result<(u32, u32), AdminStatus> {
        let pd = self.stage(private);
        let mut o = [0u8; 56];
        put32(&mut o, 0, conn);
        put64(&mut o, 8, pd);
        o[16] = private.len() as u8;
        self.admin(CM_REJECT, o)
    }

    fn on_conn(&mut self, opcode: u8, conn: u32) -> Result<(u32, u32), AdminStatus> {
        let mut o = [0u8; 56];
        put32(&mut o, 0, conn);
        self.admin(opcode, o)
    }

    /// `CM_QUERY` into a 260-byte buffer: (record, r0, r1).
    fn query_conn(&mut self, conn: u32) -> (Vec<u8>, u32, u32) {
        let out = self.alloc(512);
        let mut o = [0u8; 56];
        put32(&mut o, 0, conn);
        put32(&mut o, 4, 260);
        put64(&mut o, 8, out);
        let (n, pd) = self.admin(CM_QUERY, o).expect("CM_QUERY");
        (self.read_mem(out, 260), n, pd)
    }

    fn rc_qp(&mut self) -> (TQp, TCq) {
        let pd = self.pd();
        let cq = self.cq(64);
        let qp = self.qp(pd, &cq, &cq, 16, 16);
        (qp, cq)
    }
}

/// Two devices whose frames the test carries: RoCEv2 to the verbs engine, every
/// other frame to the neighbour code, as the device core classifies them.
struct CmPair {
    a: Dev,
    b: Dev,
    /// Frames carried so far (both directions).
    carried: u64,
    /// Every frame put on the wire, in order (dropped ones included).
    log: Vec<Vec<u8>>,
}

fn hand(d: &mut Dev, f: &[u8]) {
    if roce::is_roce_frame(f) {
        d.v.receive_frame(&mut d.env, f);
    } else {
        d.v.neighbour_frame(&mut d.env, f);
    }
}

impl CmPair {
    fn new() -> Self {
        CmPair {
            a: Dev::new(MAC_A, IP_A),
            b: Dev::new(MAC_B, IP_B),
            carried: 0,
            log: Vec::new(),
        }
    }

    /// Carries frames both ways until quiet; `keep(frame)` false drops one.
    fn pump_with(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        for _ in 0..10_000 {
            let mut moved = false;
            if let Some(f) = self.a.env.frames.pop_front() {
                moved = true;
                self.carried += 1;
                self.log.push(f.clone());
                if keep(&f) {
                    hand(&mut self.b, &f);
                }
            }
            if let Some(f) = self.b.env.frames.pop_front() {
                moved = true;
                self.carried += 1;
                self.log.push(f.clone());
                if keep(&f) {
                    hand(&mut self.a, &f);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("frames never stopped flowing");
    }

    fn pump(&mut self) {
        self.pump_with(|_| true);
    }

    fn tick(&mut self, d: Duration) {
        self.a.advance(d);
        self.b.advance(d);
        self.pump();
    }

    /// Listen on B, connect from A, accept on B, complete on A: the connection ids
    /// (active, passive) and the two QPs with their CQs.
    fn establish(&mut self, port: u16) -> (u32, u32, (TQp, TCq), (TQp, TCq)) {
        let qa = self.a.rc_qp();
        let qb = self.b.rc_qp();
        let (l, _) = self.b.listen(port, [0; 16]).unwrap();
        let (ca, _) = self
            .a
            .connect_to(qa.0.qpn, IP_B, port, b"hi from A")
            .unwrap();
        self.pump();
        let evs = self.b.cm_events();
        let [(EV_REQUEST, cb, listener)] = evs[..] else {
            panic!("B saw {evs:?}");
        };
        assert_eq!(listener, l);
        self.b.accept(cb, qb.0.qpn, b"welcome").unwrap();
        self.pump();
        assert_eq!(self.a.cm_events(), vec![(EV_REPLY, ca, qa.0.qpn)]);
        self.a.on_conn(CM_COMPLETE_CONNECT, ca).unwrap();
        self.pump();
        assert_eq!(self.a.cm_events(), vec![(EV_ESTABLISHED, ca, qa.0.qpn)]);
        assert_eq!(self.b.cm_events(), vec![(EV_ESTABLISHED, cb, qb.0.qpn)]);
        (ca, cb, qa, qb)
    }
}

/// Posts a receive on `rx` and a SEND of `data` on `tx` over a connected pair of
/// QPs; returns where the data will land.
fn post_send_recv(tx: &mut Dev, qtx: &mut TQp, rx: &mut Dev, qrx: &mut TQp, data: &[u8]) -> u64 {
    let pd_rx = rx.qp_pdn(qrx.qpn);
    let (dst, rkey) = rx.buf_mr(pd_rx, 4096, access::LOCAL_WRITE);
    rx.post_recv(qrx, 7, &[(dst, 4096, rkey)]);
    let pd_tx = tx.qp_pdn(qtx.qpn);
    let (src, lkey) = tx.buf_mr(pd_tx, 4096, access::LOCAL_WRITE);
    tx.write_mem(src, data);
    tx.post_send(
        qtx,
        &SendWr {
            sges: vec![(src, data.len() as u32, lkey)],
            ..signaled(wqe::opcode::SEND, 9)
        },
    );
    dst
}

impl Dev {
    fn qp_pdn(&mut self, qpn: u32) -> u32 {
        let out = self.alloc(64);
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        put64(&mut o, 8, out);
        self.admin(opcode::QUERY_QP, o).unwrap();
        le_u32(&self.read_mem(out, 64), 4)
    }
}

#[test]
fn listen_connect_accept_then_rc_data_flows_both_ways() {
    let mut p = CmPair::new();
    let (ca, cb, mut qa, mut qb) = p.establish(4791);
    assert_eq!(p.a.qp_state(qa.0.qpn), QpState::Rts as u8);
    assert_eq!(p.b.qp_state(qb.0.qpn), QpState::Rts as u8);

    // The passive side sees the active side's addresses, ports and private data.
    let (rec, n, pd) = p.b.query_conn(cb);
    assert_eq!((n, pd), (64 + 56, 56));
    assert_eq!((rec[0], rec[1]), (6, 4), "ESTABLISHED, IPv4");
    assert_eq!(le_u16(&rec, 2), 4791);
    assert!(
        le_u16(&rec, 4) >= 49152,
        "the device picked the active port"
    );
    assert_eq!(
        (rec[6], rec[7]),
        (4, 2),
        "the REQ's responder resources / depth"
    );
    assert_eq!(le_u32(&rec, 8), qb.0.qpn);
    assert_eq!(le_u32(&rec, 12), qa.0.qpn);
    assert_eq!(rec[16..20], IP_B);
    assert_eq!(rec[32..36], IP_A);
    assert_eq!(&rec[64..73], b"hi from A");
    assert!(rec[73..120].iter().all(|&b| b == 0));
    // The active side sees the REP's values.
    let (rec, n, pd) = p.a.query_conn(ca);
    assert_eq!((n, pd), (64 + 196, 196));
    assert_eq!((rec[6], rec[7]), (3, 1));
    assert_eq!(le_u32(&rec, 12), qb.0.qpn);
    assert_eq!(&rec[64..71], b"welcome");

    // Data both ways on the QPs the device connected.
    for (len, seed, a_sends) in [(1000, 3, true), (3000, 5, false)] {
        let data = pattern(len, seed);
        let (tx, ctx, rx, crx) = if a_sends {
            (&mut p.a, &mut qa, &mut p.b, &mut qb)
        } else {
            (&mut p.b, &mut qb, &mut p.a, &mut qa)
        };
        let dst = post_send_recv(tx, &mut ctx.0, rx, &mut crx.0, &data);
        p.pump();
        let (tx, ctx, rx, crx) = if a_sends {
            (&mut p.a, &mut qa, &mut p.b, &mut qb)
        } else {
            (&mut p.b, &mut qb, &mut p.a, &mut qa)
        };
        let sent = tx.poll_cq(&mut ctx.1);
        assert!(
            sent.iter().any(|c| c.status == 0 && c.wr_id == 9),
            "{sent:?}"
        );
        let got = rx.poll_cq(&mut crx.1);
        let recv = got
            .iter()
            .find(|c| c.wr_id == 7)
            .expect("receive completion");
        assert_eq!((recv.status, recv.byte_len), (0, len as u32));
        assert_eq!(rx.read_mem(dst, len), data);
    }
    // Every CM message went to QP1 as a UD SEND Only from source QP 1.
    assert_eq!(p.a.v.stats().cm.mads_received, 1, "REP, and no more");
}

#[test]
fn reject_with_private_data_reaches_the_active_side() {
    let mut p = CmPair::new();
    let (qa, _) = p.a.rc_qp();
    let (qb, _) = p.b.rc_qp();
    p.b.listen(80, addr4(IP_B)).unwrap();
    let (ca, _) = p.a.connect_to(qa.qpn, IP_B, 80, b"let me in").unwrap();
    p.pump();
    let [(EV_REQUEST, cb, _)] = p.b.cm_events()[..] else {
        panic!("no request");
    };
    assert_eq!(p.b.reject(cb, &[0xAB; 149]), Err(AdminStatus::InvalidParam));
    p.b.reject(cb, b"go away").unwrap();
    p.pump();
    assert_eq!(p.a.cm_events(), vec![(EV_REJECTED, ca, 28)]);
    let (rec, _, pd) = p.a.query_conn(ca);
    assert_eq!((rec[0], le_u16(&rec, 52), pd), (9, 28, 148));
    assert_eq!(&rec[64..71], b"go away");
    assert_eq!(p.a.qp_state(qa.qpn), QpState::Err as u8);
    // The rejected request can no longer be accepted; releasing frees both slots.
    assert_eq!(p.b.accept(cb, qb.qpn, b""), Err(AdminStatus::InvalidState));
    p.b.on_conn(CM_RELEASE, cb).unwrap();
    p.a.on_conn(CM_RELEASE, ca).unwrap();
    assert_eq!(p.a.on_conn(CM_RELEASE, ca), Err(AdminStatus::InvalidHandle));
    assert_eq!(p.a.v.stats().cm.connections, 0);
}

#[test]
fn connect_without_a_listener_is_rejected_with_invalid_service_id() {
    let mut p = CmPair::new();
    let (qa, _) = p.a.rc_qp();
    p.b.listen(81, [0; 16]).unwrap();
    let (ca, _) = p.a.connect_to(qa.qpn, IP_B, 82, b"").unwrap();
    p.pump();
    assert_eq!(p.a.cm_events(), vec![(EV_REJECTED, ca, 8)]);
    assert!(p.b.cm_events().is_empty());
    assert_eq!(p.b.v.stats().cm.rejects_sent, 1);
}

#[test]
fn a_listener_on_an_address_in_use_is_refused() {
    let mut d = Dev::new(MAC_A, IP_A);
    let (l1, port) = d.listen(5000, [0; 16]).unwrap();
    assert_eq!((l1, port), (1, 5000));
    assert_eq!(d.listen(5000, [0; 16]), Err(AdminStatus::AddressInUse));
    assert_eq!(d.listen(5000, addr4(IP_A)), Err(AdminStatus::AddressInUse));
    assert_eq!(d.listen(5001, addr4(IP_A)).map(|r| r.1), Ok(5001));
    assert_eq!(d.listen(5001, [0; 16]), Err(AdminStatus::AddressInUse));
    assert_eq!(d.listen(5002, addr4(IP_B)), Err(AdminStatus::InvalidParam));
    // Port 0: the device picks a free port from 49152.
    let (_, picked) = d.listen(0, [0; 16]).unwrap();
    assert!(picked >= 49152);
    // Closing the listener frees the port.
    d.on_conn(CM_UNLISTEN, l1).unwrap();
    assert_eq!(d.on_conn(CM_UNLISTEN, l1), Err(AdminStatus::InvalidHandle));
    assert!(d.listen(5000, [0; 16]).is_ok());
    // A family the port has no address for.
    let mut o = [0u8; 56];
    o[0] = 6;
    o[2] = 1;
    assert_eq!(d.admin(CM_LISTEN, o), Err(AdminStatus::InvalidParam));
}

#[test]
fn two_connections_to_one_listener_and_a_qp_held_twice() {
    let mut p = CmPair::new();
    let (qa1, _) = p.a.rc_qp();
    let (qa2, _) = p.a.rc_qp();
    let (qb1, _) = p.b.rc_qp();
    let (qb2, _) = p.b.rc_qp();
    p.b.listen(7000, [0; 16]).unwrap();
    let (c1, _) = p.a.connect_to(qa1.qpn, IP_B, 7000, b"one").unwrap();
    assert_eq!(
        p.a.connect_to(qa1.qpn, IP_B, 7000, b""),
        Err(AdminStatus::Busy)
    );
    let (c2, _) = p.a.connect_to(qa2.qpn, IP_B, 7000, b"two").unwrap();
    p.pump();
    let evs = p.b.cm_events();
    assert_eq!(evs.len(), 2, "{evs:?}");
    p.b.accept(evs[0].1, qb1.qpn, b"").unwrap();
    // qb1 is in RTR now: not RESET or INIT.
    assert_eq!(
        p.b.accept(evs[1].1, qb1.qpn, b""),
        Err(AdminStatus::InvalidState)
    );
    p.b.accept(evs[1].1, qb2.qpn, b"").unwrap();
    p.pump();
    let replies = p.a.cm_events();
    assert_eq!(
        replies,
        vec![(EV_REPLY, c1, qa1.qpn), (EV_REPLY, c2, qa2.qpn)]
    );
    p.a.on_conn(CM_COMPLETE_CONNECT, c1).unwrap();
    p.a.on_conn(CM_COMPLETE_CONNECT, c2).unwrap();
    assert_eq!(
        p.a.on_conn(CM_COMPLETE_CONNECT, c2),
        Err(AdminStatus::InvalidState)
    );
    p.pump();
    assert_eq!(p.b.cm_events().len(), 2);
    for q in [qa1.qpn, qa2.qpn] {
        assert_eq!(p.a.qp_state(q), QpState::Rts as u8);
    }
    for q in [qb1.qpn, qb2.qpn] {
        assert_eq!(p.b.qp_state(q), QpState::Rts as u8);
    }
}

#[test]
fn a_disconnect_is_seen_by_the_peer_exactly_once() {
    let mut p = CmPair::new();
    let (ca, cb, qa, qb) = p.establish(9000);
    p.a.on_conn(CM_DISCONNECT, ca).unwrap();
    assert_eq!(p.a.qp_state(qa.0.qpn), QpState::Err as u8);
    // The first DREP is lost: A retransmits DREQ, B answers again without a second
    // event.
    let mut dropped = false;
    p.pump_with(|f| {
        let is_drep = attribute_of(f) == Some(0x16) && !dropped;
        if is_drep {
            dropped = true;
        }
        !is_drep
    });
    assert!(dropped, "B answered the DREQ");
    assert_eq!(
        p.b.cm_events(),
        vec![(EV_DISCONNECT_RECEIVED, cb, qb.0.qpn)]
    );
    assert_eq!(p.b.qp_state(qb.0.qpn), QpState::Err as u8);
    assert!(p.a.cm_events().is_empty(), "no DREP yet");
    p.tick(response_timeout() + Duration::from_millis(6));
    assert_eq!(p.a.cm_events(), vec![(EV_DISCONNECTED, ca, 0)]);
    assert!(
        p.b.cm_events().is_empty(),
        "the repeated DREQ posts nothing"
    );
    // B's own disconnect finishes at once; a second one is refused.
    p.b.on_conn(CM_DISCONNECT, cb).unwrap();
    assert_eq!(p.b.cm_events(), vec![(EV_DISCONNECTED, cb, 1)]);
    assert_eq!(
        p.b.on_conn(CM_DISCONNECT, cb),
        Err(AdminStatus::InvalidState)
    );
    assert_eq!(
        p.a.on_conn(CM_DISCONNECT, ca),
        Err(AdminStatus::InvalidState)
    );
}

#[test]
fn a_lost_req_is_retransmitted() {
    let mut p = CmPair::new();
    let (qa, _) = p.a.rc_qp();
    let (qb, _) = p.b.rc_qp();
    p.b.listen(4791, [0; 16]).unwrap();
    let (ca, _) = p.a.connect_to(qa.qpn, IP_B, 4791, b"").unwrap();
    // ARP goes through; the first REQ is lost.
    let mut reqs = 0;
    p.pump_with(|f| {
        if roce::is_roce_frame(f) {
            reqs += 1;
            return false;
        }
        true
    });
    assert_eq!(reqs, 1);
    assert!(p.b.cm_events().is_empty());
    p.tick(response_timeout() - Duration::from_millis(34));
    assert!(p.b.cm_events().is_empty(), "not yet due");
    p.tick(Duration::from_millis(40));
    let [(EV_REQUEST, cb, _)] = p.b.cm_events()[..] else {
        panic!("the retransmitted REQ did not arrive");
    };
    assert_eq!(p.a.v.stats().cm.retransmissions, 1);
    p.b.accept(cb, qb.qpn, b"").unwrap();
    p.pump();
    assert_eq!(p.a.cm_events(), vec![(EV_REPLY, ca, qa.qpn)]);
}

#[test]
fn a_peer_that_never_answers_times_the_connection_out() {
    let mut p = CmPair::new();
    let (qa, _) = p.a.rc_qp();
    p.b.listen(4791, [0; 16]).unwrap();
    let (ca, _) = p.a.connect_to(qa.qpn, IP_B, 4791, b"").unwrap();
    // The peer answers ARP, then goes away: every REQ is lost.
    let mut reqs = 0;
    p.pump_with(|f| {
        reqs += usize::from(attribute_of(f) == Some(0x10));
        !roce::is_roce_frame(f)
    });
    let mut rejs = 0;
    for _ in 0..10 {
        p.a.advance(response_timeout() + Duration::from_millis(1));
        for f in p.a.env.frames.drain(..) {
            reqs += usize::from(attribute_of(&f) == Some(0x10));
            rejs += usize::from(attribute_of(&f) == Some(0x12));
        }
    }
    let evs = p.a.cm_events();
    assert_eq!(evs, vec![(EV_FAILED, ca, 2)]);
    assert_eq!(reqs, 4, "REQ sent once and retransmitted 3 times");
    assert_eq!(rejs, 1, "REJ reason 4 (timeout) tells the peer");
    assert_eq!(p.a.qp_state(qa.qpn), QpState::Err as u8);
    assert_eq!(p.a.v.stats().cm.retransmissions, 3);
    assert_eq!(p.a.query_conn(ca).0[0], 10, "FAILED");
}

/// The CM attribute ID of a frame carrying a MAD to QP1 over IPv4 (MAD at byte
/// 14 + 20 + 8 + 12 + 8 = 62; attribute ID at MAD bytes 16..18).
fn attribute_of(f: &[u8]) -> Option<u16> {
    if !roce::is_roce_frame(f) || f.get(42) != Some(&0x64) {
        return None;
    }
    Some(u16::from_be_bytes([*f.get(62 + 16)?, *f.get(62 + 17)?]))
}

#[test]
fn an_unreachable_peer_fails_after_three_arp_requests() {
    let mut d = Dev::new(MAC_A, IP_A);
    let (qa, _) = d.rc_qp();
    let (ca, _) = d.connect_to(qa.qpn, [10, 0, 0, 99], 1, b"").unwrap();
    let mut arps = d.env.frames.drain(..).count();
    for _ in 0..5 {
        d.advance(Duration::from_millis(100));
        arps += d.env.frames.drain(..).count();
    }
    assert_eq!(arps, 3);
    assert_eq!(d.cm_events(), vec![(EV_FAILED, ca, 1)]);
    assert_eq!(d.qp_state(qa.qpn), QpState::Err as u8);
    assert_eq!(d.v.stats().cm.arp_sent, 3);
}

#[test]
fn arp_requests_for_the_port_are_answered_and_unasked_replies_not_learned() {
    use super::super::neigh::{Arp, ARP_REPLY, ARP_REQUEST, BROADCAST};
    let mut d = Dev::new(MAC_A, IP_A);
    let ask = |target| Arp {
        op: ARP_REQUEST,
        sender_mac: MAC_B,
        sender_ip: IP_B,
        target_mac: [0; 6],
        target_ip: target,
    };
    d.v.neighbour_frame(&mut d.env, &ask(IP_A).frame(BROADCAST));
    let reply = d.env.frames.pop_front().expect("an ARP reply");
    let r = Arp::parse(&reply).unwrap();
    assert_eq!((r.op, r.sender_mac, r.sender_ip), (ARP_REPLY, MAC_A, IP_A));
    assert_eq!((r.target_mac, r.target_ip), (MAC_B, IP_B));
    assert_eq!(reply[..6], MAC_B);
    // A request for another address is not answered; nothing was learned.
    d.v.neighbour_frame(&mut d.env, &ask([10, 0, 0, 7]).frame(BROADCAST));
    assert!(d.env.frames.is_empty());
    assert_eq!(d.v.stats().cm.neighbours, 0);
}

#[test]
fn loopback_connection_on_one_device_never_reaches_the_port() {
    let mut d = Dev::new(MAC_A, IP_A);
    let (mut qa, _) = d.rc_qp();
    let (mut qb, _) = d.rc_qp();
    d.listen(1234, [0; 16]).unwrap();
    let (ca, _) = d.connect_to(qa.qpn, IP_A, 1234, b"self").unwrap();
    let [(EV_REQUEST, cb, _)] = d.cm_events()[..] else {
        panic!("no request");
    };
    d.accept(cb, qb.qpn, b"").unwrap();
    assert_eq!(d.cm_events(), vec![(EV_REPLY, ca, qa.qpn)]);
    d.on_conn(CM_COMPLETE_CONNECT, ca).unwrap();
    let evs = d.cm_events();
    assert!(evs.contains(&(EV_ESTABLISHED, ca, qa.qpn)), "{evs:?}");
    assert!(evs.contains(&(EV_ESTABLISHED, cb, qb.qpn)), "{evs:?}");
    assert!(d.env.frames.is_empty(), "nothing reached the port");
    let _ = (&mut qa, &mut qb);
    d.on_conn(CM_DISCONNECT, ca).unwrap();
    let evs = d.cm_events();
    assert!(
        evs.contains(&(EV_DISCONNECT_RECEIVED, cb, qb.qpn)),
        "{evs:?}"
    );
    assert!(evs.contains(&(EV_DISCONNECTED, ca, 0)), "{evs:?}");
    assert!(d.env.frames.is_empty());
}

impl CmPair {
    /// B listens on 4791, A connects: ARP goes through and the REQ is caught (and
    /// handed to B only if `deliver`).
    fn catch_req(&mut self, deliver: bool) -> Vec<u8> {
        let (qa, _) = self.a.rc_qp();
        self.b.listen(4791, [0; 16]).unwrap();
        self.a.connect_to(qa.qpn, IP_B, 4791, b"").unwrap();
        let mut req = None;
        self.pump_with(|f| {
            if attribute_of(f) == Some(0x10) {
                req = Some(f.to_vec());
                return deliver;
            }
            true
        });
        req.expect("a REQ")
    }
}

#[test]
fn malformed_mads_are_dropped_and_counted() {
    let mut p = CmPair::new();
    let good = roce::decode(&p.catch_req(false)).unwrap();
    type Spoil = Box<dyn Fn(&mut roce::RocePacket)>;
    let variants: Vec<Spoil> = vec![
        Box::new(|p| p.deth = Some(roce::Deth { qkey: 1, src_qp: 1 })),
        Box::new(|p| p.payload.truncate(200)),
        Box::new(|p| p.payload[1] = 0x04),
        Box::new(|p| p.payload[0] = 2),
        Box::new(|p| p.payload[3] = 0x81),
        Box::new(|p| p.payload[17] = 0x20),
        Box::new(|p| p.payload[165] = 0x60),
        Box::new(|p| p.bth.dest_qp = 0),
    ];
    let n = variants.len() as u64;
    for v in variants {
        let mut p2 = good.clone();
        v(&mut p2);
        let f = roce::encode(&p2).unwrap();
        p.b.v.receive_frame(&mut p.b.env, &f);
    }
    assert!(p.b.cm_events().is_empty());
    assert!(p.b.env.frames.is_empty(), "nothing answered");
    let s = p.b.v.stats();
    assert_eq!(s.cm.mads_malformed + s.global.frames_dropped, n);
    // A REQ with another class version gets REJ reason 31.
    let mut p3 = good.clone();
    p3.payload[2] = 1;
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&p3).unwrap());
    let rej = roce::decode(&p.b.env.frames.pop_front().unwrap()).unwrap();
    assert_eq!(rej.payload[16..18], [0, 0x12]);
    assert_eq!(rej.payload[34..36], [0, 31]);
}

#[test]
fn listener_handles_are_reused_lowest_first_and_unknown_ones_refused() {
    // Listener slots are made as listeners need them: a handle past the slots made
    // so far (or past the 64) is an invalid handle, and a freed slot is the next
    // one handed out.
    let mut d = Dev::new(MAC_A, IP_A);
    assert_eq!(d.on_conn(CM_UNLISTEN, 1), Err(AdminStatus::InvalidHandle));
    let handles: Vec<u32> = (1..=3).map(|p| d.listen(p, [0; 16]).unwrap().0).collect();
    assert_eq!(handles, [1, 2, 3]);
    d.on_conn(CM_UNLISTEN, 2).unwrap();
    for h in [2, 4, 64, 65] {
        assert_eq!(d.on_conn(CM_UNLISTEN, h), Err(AdminStatus::InvalidHandle));
    }
    assert_eq!(d.listen(7, [0; 16]).unwrap().0, 2);
    assert_eq!(d.listen(8, [0; 16]).unwrap().0, 4);
}

#[test]
fn limits_listeners_connections_and_private_data() {
    let mut d = Dev::new(MAC_A, IP_A);
    for port in 1..=64 {
        d.listen(port, [0; 16]).unwrap();
    }
    assert_eq!(d.listen(65, [0; 16]), Err(AdminStatus::NoResources));
    let (qa, _) = d.rc_qp();
    assert_eq!(
        d.connect_to(qa.qpn, IP_B, 1, &[0u8; 57]),
        Err(AdminStatus::InvalidParam)
    );
    assert_eq!(
        d.connect_to(qa.qpn, [224, 0, 0, 1], 1, b""),
        Err(AdminStatus::InvalidParam)
    );
    assert_eq!(
        d.connect_to(qa.qpn, IP_B, 0, b""),
        Err(AdminStatus::InvalidParam)
    );
    assert_eq!(
        d.connect_to(999, IP_B, 1, b""),
        Err(AdminStatus::InvalidHandle)
    );
    // 256 connections (to an unreachable peer), then none.
    let pd = d.pd();
    let cq = d.cq(1024);
    let mut ids = Vec::new();
    for _ in 0..256 {
        let q = d.qp(pd, &cq, &cq, 2, 2);
        ids.push(d.connect_to(q.qpn, IP_B, 1, b"").unwrap().0);
    }
    let q = d.qp(pd, &cq, &cq, 2, 2);
    assert_eq!(
        d.connect_to(q.qpn, IP_B, 1, b""),
        Err(AdminStatus::NoResources)
    );
    // Released slots come back with a new generation: the old id is stale.
    d.on_conn(CM_RELEASE, ids[0]).unwrap();
    let (fresh, _) = d.connect_to(q.qpn, IP_B, 1, b"").unwrap();
    assert_eq!(fresh & 0xFFFF, ids[0] & 0xFFFF);
    assert_ne!(fresh, ids[0]);
    assert_eq!(d.on_conn(CM_QUERY, ids[0]), Err(AdminStatus::InvalidParam));
    let out = d.alloc(512);
    let mut o = [0u8; 56];
    put32(&mut o, 0, ids[0]);
    put32(&mut o, 4, 64);
    put64(&mut o, 8, out);
    assert_eq!(d.admin(CM_QUERY, o), Err(AdminStatus::InvalidHandle));
    // A timer pass visits every slot once: 256 resolutions fail after 3 requests
    // each (the released connection had sent its first one).
    for _ in 0..4 {
        d.advance(Duration::from_millis(100));
    }
    assert_eq!(d.v.stats().cm.arp_sent, 256 * 3 + 1);
    let failed = d.cm_events().iter().filter(|e| e.0 == EV_FAILED).count();
    assert_eq!(failed, 256);
}

#[test]
fn query_caps_reports_no_memory_windows_or_srqs_and_the_cm_limits() {
    let mut d = Dev::new(MAC_A, IP_A);
    let out = d.alloc(64);
    let mut o = [0u8; 56];
    put64(&mut o, 0, out);
    d.admin(opcode::QUERY_CAPS, o).unwrap();
    let r = d.read_mem(out, 64);
    assert_eq!((le_u16(&r, 56), le_u16(&r, 58)), (0, 0));
    assert_eq!((r[60], r[61], le_u16(&r, 62)), (16, 64, 256));
}

#[test]
fn destroying_a_connected_qp_unbinds_it() {
    let mut p = CmPair::new();
    let (ca, cb, qa, _qb) = p.establish(4000);
    let mut o = [0u8; 56];
    put32(&mut o, 0, qa.0.qpn);
    p.a.admin(opcode::DESTROY_QP, o).unwrap();
    assert_eq!(le_u32(&p.a.query_conn(ca).0, 8), 0);
    // The connection still disconnects on the wire.
    p.a.on_conn(CM_DISCONNECT, ca).unwrap();
    p.pump();
    assert_eq!(p.a.cm_events(), vec![(EV_DISCONNECTED, ca, 0)]);
    assert_eq!(p.b.cm_events()[0].0, EV_DISCONNECT_RECEIVED);
    let _ = cb;
}

/// Where test captures a person would inspect are kept.
fn artifact(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/test-artifacts");
    dir.join(name)
}

/// A whole connection between two devices as a capture: ARP, REQ, REP, RTU, RC
/// data both ways, DREQ, DREP.
fn capture_connection(path: &std::path::Path) -> (CmPair, u32, u32) {
    let mut p = CmPair::new();
    let (ca, cb, mut qa, mut qb) = p.establish(4791);
    let data = pattern(100, 1);
    post_send_recv(&mut p.a, &mut qa.0, &mut p.b, &mut qb.0, &data);
    p.pump();
    post_send_recv(&mut p.b, &mut qb.0, &mut p.a, &mut qa.0, &data);
    p.pump();
    p.a.on_conn(CM_DISCONNECT, ca).unwrap();
    p.pump();
    let _ = cb;
    let mut w = crate::wire::pcap::PcapWriter::create(path).expect("pcap");
    for (i, f) in p.log.iter().enumerate() {
        w.write_frame(Duration::from_millis(i as u64), f)
            .expect("pcap write");
    }
    (p, qa.0.qpn, qb.0.qpn)
}

/// Runs tshark over `path` with `fields`; `None` (and a notice) when tshark is not
/// on PATH.
fn tshark_rows(path: &std::path::Path, fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let Ok(out) = cmd.output() else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: the tshark cross-check did NOT run: `tshark` is not on PATH \
             (install the Debian package `tshark`)"
        );
        return None;
    };
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("tshark output is UTF-8");
    Some(
        text.lines()
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect(),
    )
}

/// Wireshark's own dissector (not ours) names every CM message on QP1, reads the
/// REQ's fields where IBTA puts them, and sees the RC data on the connected QPNs.
/// The capture is kept at `target/test-artifacts/cm-two-devices.pcap`.
#[test]
fn tshark_decodes_the_cm_exchange_on_qp1_and_the_rc_data() {
    let path = artifact("cm-two-devices.pcap");
    let (p, qa, qb) = capture_connection(&path);
    let fields = [
        "eth.type",
        "infiniband.bth.opcode",
        "infiniband.bth.destqp",
        "_ws.col.Info",
        "_ws.malformed",
        "_ws.expert",
        "infiniband.deth.q_key",
        "infiniband.deth.srcqp",
        "infiniband.cm.req.serviceid.dport",
        "infiniband.cm.req.localqpn",
        "infiniband.cm.req.ip_cm.dip4",
        "infiniband.cm.req.ip_cm.private",
        "infiniband.cm.rep.localqpn",
    ];
    let Some(rows) = tshark_rows(&path, &fields) else {
        return;
    };
    assert_eq!(rows.len(), p.log.len());
    let info: Vec<&str> = rows.iter().map(|r| r[3].trim()).collect();
    let qp = |n: u32| format!("0x{n:06x}");
    let expected = [
        "Who has 10.0.0.2? Tell 10.0.0.1".to_string(),
        "10.0.0.2 is at 02:00:00:00:00:0b".to_string(),
        "CM: ConnectRequest".to_string(),
        "CM: ConnectReply".to_string(),
        "CM: ReadyToUse".to_string(),
        format!("RC Send Only QP={}", qp(qb)),
        format!("RC Acknowledge QP={}", qp(qa)),
        format!("RC Send Only QP={}", qp(qa)),
        format!("RC Acknowledge QP={}", qp(qb)),
        "CM: DisconnectRequest".to_string(),
        "CM: DisconnectReply".to_string(),
    ];
    assert_eq!(info, expected);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            (r[4].as_str(), r[5].as_str()),
            ("", ""),
            "frame {i} malformed or expert"
        );
        if r[3].starts_with("CM:") {
            assert_eq!(
                (r[1].as_str(), r[2].as_str()),
                ("100", "0x000001"),
                "frame {i}"
            );
            assert_eq!(
                (r[6].as_str(), r[7].as_str()),
                ("0x0000000080010000", "0x00000001"),
                "frame {i}"
            );
        }
    }
    let req = &rows[2];
    assert_eq!(req[8], "0x12b7", "service ID port 4791");
    assert_eq!(req[9], qp(qa));
    assert_eq!(req[10], "10.0.0.2");
    assert!(
        req[11].starts_with("68692066726f6d2041"),
        "consumer private data: {}",
        req[11]
    );
    assert_eq!(rows[3][12], qp(qb));
}

#[test]
fn a_lost_rtu_is_replaced_by_the_first_rc_packet() {
    let mut p = CmPair::new();
    let (mut qa, _) = p.a.rc_qp();
    let (mut qb, mut cqb) = p.b.rc_qp();
    p.b.listen(4791, [0; 16]).unwrap();
    let (ca, _) = p.a.connect_to(qa.qpn, IP_B, 4791, b"").unwrap();
    p.pump();
    let [(EV_REQUEST, cb, _)] = p.b.cm_events()[..] else {
        panic!("no request");
    };
    p.b.accept(cb, qb.qpn, b"").unwrap();
    p.pump();
    p.a.cm_events();
    p.a.on_conn(CM_COMPLETE_CONNECT, ca).unwrap();
    // The RTU is lost; A sends data at once.
    p.pump_with(|f| attribute_of(f) != Some(0x14));
    assert!(p.b.cm_events().is_empty());
    assert_eq!(p.b.qp_state(qb.qpn), QpState::Rtr as u8);
    let dst = post_send_recv(&mut p.a, &mut qa, &mut p.b, &mut qb, b"data first");
    p.pump();
    assert_eq!(p.b.cm_events(), vec![(EV_ESTABLISHED, cb, qb.qpn)]);
    assert_eq!(p.b.qp_state(qb.qpn), QpState::Rts as u8);
    assert_eq!(p.b.read_mem(dst, 10), b"data first");
    assert_eq!(p.b.poll_cq(&mut cqb)[0].status, 0);
    // REP is no longer retransmitted.
    p.tick(response_timeout() * 4);
    assert_eq!(p.b.v.stats().cm.retransmissions, 0);
}

const IP6_A: [u8; 16] = [0xFD, 0, 0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xA];
const IP6_B: [u8; 16] = [0xFD, 0, 0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xB];

impl Dev {
    fn listen6(&mut self, port: u16) -> Result<(u32, u32), AdminStatus> {
        let mut o = [0u8; 56];
        o[0] = 6;
        o[2..4].copy_from_slice(&port.to_le_bytes());
        self.admin(CM_LISTEN, o)
    }

    fn connect6(&mut self, qpn: u32, ip: [u8; 16], port: u16) -> Result<(u32, u32), AdminStatus> {
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        o[4] = 6;
        o[32..48].copy_from_slice(&ip);
        o[48..50].copy_from_slice(&port.to_le_bytes());
        self.admin(CM_CONNECT, o)
    }
}

/// A bit-at-a-time CRC-32 over the RoCEv2-over-IPv6 pseudo-packet, masked here
/// (not in `icrc.rs`): the ICRC an independent receiver expects.
fn independent_icrc6(frame: &[u8]) -> u32 {
    let payload = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let end = 14 + 40 + payload - 4;
    let mut pseudo = vec![0xFFu8; 8];
    pseudo.extend_from_slice(&frame[14..end]);
    pseudo[8] |= 0x0F;
    pseudo[9..12].fill(0xFF);
    pseudo[8 + 7] = 0xFF;
    pseudo[8 + 40 + 6..8 + 40 + 8].fill(0xFF);
    pseudo[8 + 48 + 4] = 0xFF;
    roce::tests::bitwise_crc32(&pseudo)
}

#[test]
fn cm_and_rc_over_ipv6_with_neighbor_discovery() {
    let mut p = CmPair::new();
    p.a.v.set_port_ipv6(Some(IP6_A));
    p.b.v.set_port_ipv6(Some(IP6_B));
    let (mut qa, mut cqa) = p.a.rc_qp();
    let (mut qb, mut cqb) = p.b.rc_qp();
    p.b.listen6(4791).unwrap();
    // A family-4 listener on the same port is another address: no clash.
    p.b.listen(4791, [0; 16]).unwrap();
    assert_eq!(p.b.listen6(4791), Err(AdminStatus::AddressInUse));
    let (ca, _) = p.a.connect6(qa.qpn, IP6_B, 4791).unwrap();
    p.pump();
    let [(EV_REQUEST, cb, 1)] = p.b.cm_events()[..] else {
        panic!("no request on the IPv6 listener");
    };
    let (rec, _, _) = p.b.query_conn(cb);
    assert_eq!(
        (rec[1], &rec[16..32], &rec[32..48]),
        (6, &IP6_B[..], &IP6_A[..])
    );
    p.b.accept(cb, qb.qpn, b"v6").unwrap();
    p.pump();
    assert_eq!(p.a.cm_events(), vec![(EV_REPLY, ca, qa.qpn)]);
    p.a.on_conn(CM_COMPLETE_CONNECT, ca).unwrap();
    p.pump();
    assert_eq!(p.b.cm_events(), vec![(EV_ESTABLISHED, cb, qb.qpn)]);
    let dst = post_send_recv(&mut p.a, &mut qa, &mut p.b, &mut qb, &pattern(2000, 9));
    p.pump();
    assert_eq!(p.b.read_mem(dst, 2000), pattern(2000, 9));
    assert_eq!(p.b.poll_cq(&mut cqb)[0].byte_len, 2000);
    assert_eq!(p.a.poll_cq(&mut cqa)[0].status, 0);
    let s = p.a.v.stats().cm;
    assert_eq!((s.nd_sent, s.neighbours), (1, 1));
    assert_eq!(p.b.v.stats().cm.nd_answered, 1);
    // Every RoCE frame went over IPv6 with an ICRC an independent receiver accepts.
    let roce: Vec<&Vec<u8>> = p.log.iter().filter(|f| roce::is_roce_frame(f)).collect();
    assert!(roce.len() >= 5);
    for f in &roce {
        assert_eq!(f[12..14], [0x86, 0xDD]);
        let range = roce::transport_range(f).unwrap();
        let t = &f[range.end - 4..range.end];
        assert_eq!(
            u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            independent_icrc6(f)
        );
    }
}

#[test]
fn tshark_decodes_cm_over_ipv6_and_neighbor_discovery() {
    let mut p = CmPair::new();
    p.a.v.set_port_ipv6(Some(IP6_A));
    p.b.v.set_port_ipv6(Some(IP6_B));
    let (qa, _) = p.a.rc_qp();
    let (qb, _) = p.b.rc_qp();
    p.b.listen6(4791).unwrap();
    let (ca, _) = p.a.connect6(qa.qpn, IP6_B, 4791).unwrap();
    p.pump();
    let cb = p.b.cm_events()[0].1;
    p.b.accept(cb, qb.qpn, b"").unwrap();
    p.pump();
    p.a.on_conn(CM_COMPLETE_CONNECT, ca).unwrap();
    p.pump();
    let path = artifact("cm-two-devices-ipv6.pcap");
    let mut w = crate::wire::pcap::PcapWriter::create(&path).expect("pcap");
    for (i, f) in p.log.iter().enumerate() {
        w.write_frame(Duration::from_millis(i as u64), f)
            .expect("pcap write");
    }
    drop(w);
    let fields = [
        "frame.protocols",
        "_ws.col.Info",
        "udp.checksum.status",
        "_ws.malformed",
        "_ws.expert",
        "infiniband.cm.req.ip_cm.ipv",
        "infiniband.cm.req.ip_cm.dip6",
        "infiniband.invariant.crc",
    ];
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(&path)
        .args(["-o", "udp.check_checksum:TRUE"]);
    cmd.args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let Ok(out) = cmd.output() else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: the tshark cross-check did NOT run: `tshark` is not on PATH"
        );
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let info: Vec<&str> = rows.iter().map(|r| r[1].trim()).collect();
    assert_eq!(
        info,
        [
            "Neighbor Solicitation for fd00:4d00::b from 02:00:00:00:00:0a",
            "Neighbor Advertisement fd00:4d00::b (sol, ovr) is at 02:00:00:00:00:0b",
            "CM: ConnectRequest",
            "CM: ConnectReply",
            "CM: ReadyToUse",
        ]
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            (r[3], r[4]),
            ("", ""),
            "frame {i} malformed or expert: {r:?}"
        );
    }
    for (i, r) in rows.iter().enumerate().skip(2) {
        assert!(r[0].contains("ipv6:udp:infiniband"), "frame {i}: {}", r[0]);
        assert_eq!(
            r[2], "1",
            "frame {i}: UDP checksum verified good (1 = Good)"
        );
        let f = &p.log[i];
        let range = roce::transport_range(f).unwrap();
        let icrc = u32::from_be_bytes(f[range.end - 4..range.end].try_into().unwrap());
        assert_eq!(
            r[7],
            format!("0x{icrc:08x}"),
            "frame {i}: ICRC where tshark reads it"
        );
    }
    assert_eq!((rows[2][5], rows[2][6]), ("0x06", "fd00:4d00::b"));
}

/// §15.1: a received MAD costs at most one message and one event. A REQ repeated
/// 500 times while the driver decides gets one MRA each and no second event; 500
/// REQs with the wrong remote GID get one REJ each and create nothing.
#[test]
fn each_received_mad_sends_at_most_one_message() {
    let mut p = CmPair::new();
    let req = p.catch_req(true);
    assert_eq!(p.b.cm_events().len(), 1);
    p.b.env.frames.clear();
    for _ in 0..500 {
        p.b.v.receive_frame(&mut p.b.env, &req);
        assert_eq!(p.b.env.frames.len(), 1, "one answer per MAD");
        let f = p.b.env.frames.pop_front().unwrap();
        assert_eq!(attribute_of(&f), Some(0x11), "MRA");
    }
    assert!(p.b.cm_events().is_empty());
    let mut wrong = roce::decode(&req).unwrap();
    wrong.payload[24 + 72 + 15] ^= 1; // the REQ's primary remote GID
    wrong.payload[27] ^= 1; // another local communication ID: not a repeat
    let wrong = roce::encode(&wrong).unwrap();
    for _ in 0..500 {
        p.b.v.receive_frame(&mut p.b.env, &wrong);
        let f = p.b.env.frames.pop_front().expect("a REJ");
        assert!(p.b.env.frames.is_empty());
        let rej = roce::decode(&f).unwrap();
        assert_eq!(rej.payload[34..36], [0, 12], "REJ reason 12, invalid GID");
    }
    assert!(p.b.cm_events().is_empty());
    assert_eq!(p.b.v.stats().cm.connections, 1);
}

/// §15.1: `CM_QUERY` writes at most 260 bytes whatever the buffer length, and a
/// timer pass sends at most one request per slot.
#[test]
fn cm_query_and_timer_passes_are_bounded() {
    let mut p = CmPair::new();
    let (ca, _, _, _) = p.establish(4791);
    let out = p.a.alloc(4096);
    p.a.write_mem(out, &[0xEE; 4096]);
    let mut o = [0u8; 56];
    put32(&mut o, 0, ca);
    put32(&mut o, 4, u32::MAX);
    put64(&mut o, 8, out);
    assert_eq!(p.a.admin(CM_QUERY, o), Ok((260, 196)));
    let mem = p.a.read_mem(out, 4096);
    assert!(
        mem[260..].iter().all(|&b| b == 0xEE),
        "nothing past 260 bytes"
    );
    put32(&mut o, 4, 70);
    assert_eq!(p.a.admin(CM_QUERY, o), Ok((70, 196)));

    let mut d = Dev::new(MAC_A, IP_A);
    let pd = d.pd();
    let cq = d.cq(1024);
    for _ in 0..256 {
        let q = d.qp(pd, &cq, &cq, 2, 2);
        d.connect_to(q.qpn, IP_B, 1, b"").unwrap();
    }
    assert_eq!(d.env.frames.drain(..).count(), 256);
    for _ in 0..2 {
        d.advance(Duration::from_millis(100));
        assert_eq!(d.env.frames.drain(..).count(), 256, "one request per slot");
    }
}

/// Both ends use the active side's path MTU: A (Ethernet MTU 9000) offers 4096,
/// B (1500) takes it, since the REP has no MTU field to answer with.
#[test]
fn the_passive_side_takes_the_path_mtu_of_the_req() {
    let mut p = CmPair::new();
    p.a.v.set_eth_mtu(9000);
    p.b.v.set_eth_mtu(1500);
    let (_, _, qa, qb) = p.establish(4791);
    let mtu_of = |d: &mut Dev, qpn: u32| {
        let out = d.alloc(64);
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        put64(&mut o, 8, out);
        d.admin(opcode::QUERY_QP, o).unwrap();
        d.read_mem(out, 64)[9]
    };
    assert_eq!(mtu_of(&mut p.a, qa.0.qpn), 5);
    assert_eq!(mtu_of(&mut p.b, qb.0.qpn), 5);
    // With 1500 on the active side both use 1024.
    let mut q = CmPair::new();
    q.b.v.set_eth_mtu(9000);
    let (_, _, qa, qb) = q.establish(4791);
    assert_eq!(mtu_of(&mut q.a, qa.0.qpn), 3);
    assert_eq!(mtu_of(&mut q.b, qb.0.qpn), 3);
}
