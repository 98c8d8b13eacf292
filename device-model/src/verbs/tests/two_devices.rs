//! Two `Verbs` instances (two devices) connected by a frame queue that the test
//! controls: byte-for-byte data checks, loss, reordering, retransmission, retry
//! exhaustion, duplicate handling, garbage frames.

use super::*;
use crate::roce;

struct Pair {
    a: Dev,
    b: Dev,
    cq_a: TCq,
    cq_b: TCq,
    qa: TQp,
    qb: TQp,
    buf_a: u64,
    key_a: u32,
    buf_b: u64,
    key_b: u32,
    /// Frames seen so far (both directions), for drop decisions.
    seen: u64,
}

const BUF: u64 = 1 << 20;

impl Pair {
    fn new(p: ConnParams) -> Self {
        let mut a = Dev::new(MAC_A, IP_A);
        let mut b = Dev::new(MAC_B, IP_B);
        let pda = a.pd();
        let pdb = b.pd();
        let cq_a = a.cq(256);
        let cq_b = b.cq(256);
        let qa = a.qp(pda, &cq_a, &cq_a, 64, 64);
        let qb = b.qp(pdb, &cq_b, &cq_b, 64, 64);
        a.connect(qa.qpn, qb.qpn, MAC_B, IP_B, &p);
        let pb = ConnParams {
            sq_psn: p.rq_psn,
            rq_psn: p.sq_psn,
            ..p
        };
        b.connect(qb.qpn, qa.qpn, MAC_A, IP_A, &pb);
        let (buf_a, key_a) = a.buf_mr(pda, BUF, ALL_ACCESS);
        let (buf_b, key_b) = b.buf_mr(pdb, BUF, ALL_ACCESS);
        Pair {
            a,
            b,
            cq_a,
            cq_b,
            qa,
            qb,
            buf_a,
            key_a,
            buf_b,
            key_b,
            seen: 0,
        }
    }

    /// Moves frames both ways until quiet; `keep(n, frame)` decides whether the
    /// n-th frame is delivered. Held frames (reorder) are delivered after the next.
    fn pump(&mut self, mut keep: impl FnMut(u64, &[u8]) -> Verdict) {
        let mut held_ab: Option<Vec<u8>> = None;
        let mut held_ba: Option<Vec<u8>> = None;
        for _ in 0..100_000 {
            let mut moved = false;
            if let Some(f) = self.a.env.frames.pop_front() {
                moved = true;
                self.seen += 1;
                match keep(self.seen, &f) {
                    Verdict::Deliver => {
                        self.b.v.receive_frame(&mut self.b.env, &f);
                        if let Some(h) = held_ab.take() {
                            self.b.v.receive_frame(&mut self.b.env, &h);
                        }
                    }
                    Verdict::Drop => {}
                    Verdict::Hold => held_ab = Some(f),
                }
            }
            if let Some(f) = self.b.env.frames.pop_front() {
                moved = true;
                self.seen += 1;
                match keep(self.seen, &f) {
                    Verdict::Deliver => {
                        self.a.v.receive_frame(&mut self.a.env, &f);
                        if let Some(h) = held_ba.take() {
                            self.a.v.receive_frame(&mut self.a.env, &h);
                        }
                    }
                    Verdict::Drop => {}
                    Verdict::Hold => held_ba = Some(f),
                }
            }
            if !moved {
                if let Some(h) = held_ab.take() {
                    self.b.v.receive_frame(&mut self.b.env, &h);
                    continue;
                }
                if let Some(h) = held_ba.take() {
                    self.a.v.receive_frame(&mut self.a.env, &h);
                    continue;
                }
                return;
            }
        }
        panic!("frames never stopped flowing");
    }

    fn pump_all(&mut self) {
        self.pump(|_, _| Verdict::Deliver);
    }

    /// Advances both clocks by `d` and runs timers.
    fn tick(&mut self, d: Duration) {
        self.a.advance(d);
        self.b.advance(d);
    }

    /// Runs until both CQs together hold `n` more entries or `rounds` timer ticks pass.
    fn run(
        &mut self,
        mut keep: impl FnMut(u64, &[u8]) -> Verdict,
        rounds: usize,
    ) -> (Vec<CqeRepr>, Vec<CqeRepr>) {
        let mut ca = Vec::new();
        let mut cb = Vec::new();
        for _ in 0..rounds {
            self.pump(&mut keep);
            ca.extend(self.a.poll_cq(&mut self.cq_a));
            cb.extend(self.b.poll_cq(&mut self.cq_b));
            self.tick(Duration::from_millis(100));
        }
        (ca, cb)
    }

    fn post_a(&mut self, w: &SendWr) {
        self.a.post_send(&mut self.qa, w);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Deliver,
    Drop,
    Hold,
}

fn big_params() -> ConnParams {
    ConnParams {
        mtu: 3, // 1024
        ..ConnParams::default()
    }
}

#[test]
fn write_read_send_across_devices_byte_for_byte() {
    let mut p = Pair::new(big_params());
    let data = pattern(100_000, 11);
    p.a.write_mem(p.buf_a, &data);
    // WRITE 100 000 bytes A -> B.
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 100_000, p.key_a)];
    w.remote_addr = p.buf_b + 3;
    w.rkey = p.key_b;
    p.post_a(&w);
    p.pump_all();
    assert_eq!(p.b.read_mem(p.buf_b + 3, 100_000), data);
    let ca = p.a.poll_cq(&mut p.cq_a);
    assert_eq!((ca.len(), ca[0].status), (1, 0));
    // READ it back into another part of A.
    let mut r = signaled(wqe::opcode::RDMA_READ, 2);
    r.sges = vec![(p.buf_a + 200_000, 100_000, p.key_a)];
    r.remote_addr = p.buf_b + 3;
    r.rkey = p.key_b;
    p.post_a(&r);
    p.pump_all();
    assert_eq!(p.a.read_mem(p.buf_a + 200_000, 100_000), data);
    let ca = p.a.poll_cq(&mut p.cq_a);
    assert_eq!((ca[0].wr_id, ca[0].status, ca[0].byte_len), (2, 0, 100_000));
    // SEND 5000 bytes.
    let mut qb = p.qb;
    p.b.post_recv(&mut qb, 9, &[(p.buf_b + 500_000, 8192, p.key_b)]);
    let mut s = signaled(wqe::opcode::SEND_WITH_IMM, 3);
    s.imm = 77;
    s.sges = vec![(p.buf_a, 5000, p.key_a)];
    p.post_a(&s);
    p.pump_all();
    let cb = p.b.poll_cq(&mut p.cq_b);
    assert_eq!((cb[0].wr_id, cb[0].byte_len, cb[0].imm_inv), (9, 5000, 77));
    assert_eq!(p.b.read_mem(p.buf_b + 500_000, 5000), data[..5000].to_vec());
    // Frames on the wire are real RoCEv2: decode one.
    assert!(p.a.v.stats().global.frames_sent > 100);
}

#[test]
fn frames_are_valid_rocev2() {
    let mut p = Pair::new(ConnParams::default());
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 600, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let frames: Vec<_> = p.a.env.frames.iter().cloned().collect();
    assert_eq!(frames.len(), 3);
    let pk: Vec<_> = frames.iter().map(|f| roce::decode(f).unwrap()).collect();
    assert_eq!(pk[0].bth.opcode, roce::opcode::RDMA_WRITE_FIRST);
    assert_eq!(pk[1].bth.opcode, roce::opcode::RDMA_WRITE_MIDDLE);
    assert_eq!(pk[2].bth.opcode, roce::opcode::RDMA_WRITE_LAST);
    assert!(pk[2].bth.ack_req);
    assert_eq!(pk[0].reth.unwrap().dma_len, 600);
    assert_eq!(pk[0].bth.dest_qp, p.qb.qpn);
    assert_eq!((pk[0].bth.psn, pk[2].bth.psn), (100, 102));
    assert_eq!(pk[0].ip.src, IP_A);
    assert_eq!(pk[0].ip.dst, IP_B);
    assert_eq!(pk[0].eth.dst, MAC_B);
    p.pump_all();
    assert_eq!(p.a.poll_cq(&mut p.cq_a)[0].status, 0);
}

fn bth_of(f: &[u8]) -> roce::Bth {
    roce::peek_bth(f).unwrap()
}

#[test]
fn lost_data_packets_are_retransmitted() {
    for drop_at in [1u64, 2, 5, 20, 40] {
        let mut p = Pair::new(big_params());
        let data = pattern(30_000, drop_at as u8);
        p.a.write_mem(p.buf_a, &data);
        let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
        w.sges = vec![(p.buf_a, 30_000, p.key_a)];
        w.remote_addr = p.buf_b;
        w.rkey = p.key_b;
        p.post_a(&w);
        let (ca, _) = p.run(
            |n, _| {
                if n == drop_at {
                    Verdict::Drop
                } else {
                    Verdict::Deliver
                }
            },
            3,
        );
        assert_eq!(ca.len(), 1, "drop {drop_at}");
        assert_eq!(ca[0].status, 0);
        assert_eq!(p.b.read_mem(p.buf_b, 30_000), data, "drop {drop_at}");
    }
}

#[test]
fn lost_acks_and_read_responses_are_recovered() {
    // Drop every ACK and read response once (first sighting), deliver the rest.
    let mut p = Pair::new(big_params());
    let data = pattern(20_000, 1);
    p.b.write_mem(p.buf_b, &data);
    let mut r = signaled(wqe::opcode::RDMA_READ, 1);
    r.sges = vec![(p.buf_a, 20_000, p.key_a)];
    r.remote_addr = p.buf_b;
    r.rkey = p.key_b;
    p.post_a(&r);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 2);
    w.sges = vec![(p.buf_a + 100_000, 5000, p.key_a)];
    w.remote_addr = p.buf_b + 100_000;
    w.rkey = p.key_b;
    p.a.write_mem(p.buf_a + 100_000, &data[..5000]);
    p.post_a(&w);
    let mut dropped = std::collections::HashSet::new();
    let (ca, _) = p.run(
        |_, f| {
            let b = bth_of(f);
            if roce::opcode::is_response(b.opcode)
                && dropped.insert((b.opcode, b.psn))
                && matches!(b.psn % 3, 0)
            {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        },
        5,
    );
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 0), (2, 0)]
    );
    assert_eq!(p.a.read_mem(p.buf_a, 20_000), data);
    assert_eq!(p.b.read_mem(p.buf_b + 100_000, 5000), data[..5000].to_vec());
    let s = p.a.v.stats();
    assert!(s.qps[0].timeouts > 0 || s.qps[0].retransmitted_packets > 0);
}

#[test]
fn reordered_frames_trigger_sequence_nak_and_recover() {
    let mut p = Pair::new(big_params());
    let data = pattern(50_000, 7);
    p.a.write_mem(p.buf_a, &data);
    let mut qb = p.qb;
    for i in 0..4 {
        p.b.post_recv(&mut qb, i, &[(p.buf_b + i * 20_000, 20_000, p.key_b)]);
    }
    p.qb = qb;
    for i in 0..4u64 {
        let mut s = signaled(wqe::opcode::SEND, i);
        s.sges = vec![(p.buf_a + i * 12_000, 12_000, p.key_a)];
        p.post_a(&s);
    }
    let (ca, cb) = p.run(
        |n, _| {
            if n % 7 == 3 {
                Verdict::Hold
            } else {
                Verdict::Deliver
            }
        },
        4,
    );
    assert_eq!(ca.len(), 4);
    assert!(
        ca.iter().all(|c| c.status == 0),
        "{ca:?} {:?}",
        p.a.v.stats()
    );
    assert_eq!(cb.len(), 4);
    for i in 0..4u64 {
        assert_eq!(
            p.b.read_mem(p.buf_b + i * 20_000, 12_000),
            data[(i * 12_000) as usize..(i * 12_000 + 12_000) as usize].to_vec()
        );
    }
    let sb = p.b.v.stats();
    assert!(sb.qps[0].seq_naks_sent > 0);
    assert!(sb.qps[0].duplicates_received > 0 || p.a.v.stats().qps[0].seq_naks_received > 0);
}

#[test]
fn random_loss_many_operations() {
    let mut p = Pair::new(ConnParams {
        mtu: 2,
        ..ConnParams::default()
    });
    let data = pattern(200_000, 5);
    p.a.write_mem(p.buf_a, &data);
    p.b.write_mem(p.buf_b + 400_000, &data);
    let mut qb = p.qb;
    for i in 0..8u64 {
        p.b.post_recv(
            &mut qb,
            100 + i,
            &[(p.buf_b + 600_000 + i * 4096, 4096, p.key_b)],
        );
    }
    p.qb = qb;
    let mut x: u64 = 12345;
    for i in 0..24u64 {
        let off = i * 8000;
        let w = match i % 3 {
            0 => {
                let mut w = signaled(wqe::opcode::RDMA_WRITE, i);
                w.sges = vec![(p.buf_a + off, 8000, p.key_a)];
                w.remote_addr = p.buf_b + off;
                w.rkey = p.key_b;
                w
            }
            1 => {
                let mut w = signaled(wqe::opcode::RDMA_READ, i);
                w.sges = vec![(p.buf_a + 400_000 + off, 8000, p.key_a)];
                w.remote_addr = p.buf_b + 400_000 + off;
                w.rkey = p.key_b;
                w
            }
            _ => {
                let mut w = signaled(wqe::opcode::SEND, i);
                w.sges = vec![(p.buf_a + off, 4000, p.key_a)];
                w
            }
        };
        p.post_a(&w);
    }
    let (ca, cb) = p.run(
        |_, _| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match (x >> 33) % 10 {
                0 => Verdict::Drop,
                1 => Verdict::Hold,
                _ => Verdict::Deliver,
            }
        },
        30,
    );
    assert_eq!(
        ca.len(),
        24,
        "{:?}",
        ca.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    assert!(ca
        .iter()
        .enumerate()
        .all(|(i, c)| c.wr_id == i as u64 && c.status == 0));
    assert_eq!(cb.len(), 8);
    for i in 0..24u64 {
        let off = i * 8000;
        match i % 3 {
            0 => assert_eq!(
                p.b.read_mem(p.buf_b + off, 8000),
                data[off as usize..(off + 8000) as usize].to_vec()
            ),
            1 => assert_eq!(
                p.a.read_mem(p.buf_a + 400_000 + off, 8000),
                data[off as usize..(off + 8000) as usize].to_vec()
            ),
            _ => {}
        }
    }
}

#[test]
fn retry_exceeded_when_the_peer_is_gone() {
    let mut p = Pair::new(ConnParams {
        retry: 2,
        ..ConnParams::default()
    });
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 64, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let mut w2 = w.clone();
    w2.wr_id = 2;
    p.post_a(&w2);
    let (ca, _) = p.run(|_, _| Verdict::Drop, 6);
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, st(WcStatus::RetryExceeded)), (2, st(WcStatus::Flushed))]
    );
    assert_eq!(p.a.qp_state(p.qa.qpn), QpState::Err as u8);
    let s = p.a.v.stats();
    assert_eq!(s.qps[0].timeouts, 3);
    assert!(p.a.env.events.contains(&AsyncEvent::QpError {
        qpn: p.qa.qpn,
        cause: st(WcStatus::RetryExceeded)
    }));
}

#[test]
fn timeout_zero_means_no_retransmission() {
    let mut p = Pair::new(ConnParams {
        timeout: 0,
        ..ConnParams::default()
    });
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 64, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let (ca, _) = p.run(|_, _| Verdict::Drop, 3);
    assert!(ca.is_empty());
    assert_eq!(p.a.v.stats().qps[0].timeouts, 0);
}

#[test]
fn duplicated_frames_are_harmless() {
    let mut p = Pair::new(big_params());
    let data = pattern(10_000, 3);
    p.a.write_mem(p.buf_a, &data);
    let mut qb = p.qb;
    p.b.post_recv(&mut qb, 1, &[(p.buf_b, 20_000, p.key_b)]);
    p.b.post_recv(&mut qb, 2, &[(p.buf_b + 20_000, 20_000, p.key_b)]);
    let mut s = signaled(wqe::opcode::SEND, 1);
    s.sges = vec![(p.buf_a, 10_000, p.key_a)];
    p.post_a(&s);
    // Deliver every frame from A twice.
    for _ in 0..100 {
        let Some(f) = p.a.env.frames.pop_front() else {
            break;
        };
        p.b.v.receive_frame(&mut p.b.env, &f);
        p.b.v.receive_frame(&mut p.b.env, &f);
        while let Some(g) = p.b.env.frames.pop_front() {
            p.a.v.receive_frame(&mut p.a.env, &g);
        }
    }
    let cb = p.b.poll_cq(&mut p.cq_b);
    assert_eq!(cb.len(), 1, "one message, one receive");
    assert_eq!(cb[0].byte_len, 10_000);
    assert_eq!(p.a.poll_cq(&mut p.cq_a)[0].status, 0);
    assert!(p.b.v.stats().qps[0].duplicates_received >= 10);
}

#[test]
fn garbage_and_stray_frames_are_dropped() {
    let mut p = Pair::new(ConnParams::default());
    let mut x: u64 = 99;
    for len in 0..400usize {
        let f: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        p.b.v.receive_frame(&mut p.b.env, &f);
    }
    // A valid frame for an unknown QP, and one from the wrong source IP.
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 8, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let f = p.a.env.frames.pop_front().unwrap();
    let mut pk = roce::decode(&f).unwrap();
    pk.bth.dest_qp = 1000;
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&pk).unwrap());
    pk.bth.dest_qp = p.qb.qpn;
    pk.ip.src = [9, 9, 9, 9];
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&pk).unwrap());
    pk.ip.src = IP_A;
    pk.ip.dst = [9, 9, 9, 9];
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&pk).unwrap());
    assert_eq!(p.b.v.stats().global.frames_dropped, 403);
    assert_eq!(p.b.qp_state(p.qb.qpn), QpState::Rts as u8);
    // The real frame still works.
    p.b.v.receive_frame(&mut p.b.env, &f);
    p.pump_all();
    assert_eq!(p.a.poll_cq(&mut p.cq_a)[0].status, 0);
}

#[test]
fn malformed_request_sequences_get_invalid_request_naks() {
    // A MIDDLE packet with no FIRST: the responder NAKs invalid request and fails.
    let mut p = Pair::new(big_params());
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 3000, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let f = p.a.env.frames.pop_front().unwrap();
    let mut pk = roce::decode(&f).unwrap();
    pk.bth.opcode = roce::opcode::RDMA_WRITE_MIDDLE;
    pk.reth = None;
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&pk).unwrap());
    assert_eq!(p.b.qp_state(p.qb.qpn), QpState::Err as u8);
    let nak = roce::decode(&p.b.env.frames.pop_front().unwrap()).unwrap();
    assert_eq!(
        nak.aeth.unwrap().syndrome,
        roce::syndrome::NAK_INVALID_REQUEST
    );
    p.a.v
        .receive_frame(&mut p.a.env, &roce::encode(&nak).unwrap());
    assert_eq!(
        p.a.poll_cq(&mut p.cq_a)[0].status,
        st(WcStatus::RemoteInvalidRequest)
    );
}

#[test]
fn short_first_packet_is_invalid() {
    let mut p = Pair::new(big_params());
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 3000, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let f = p.a.env.frames.pop_front().unwrap();
    let mut pk = roce::decode(&f).unwrap();
    pk.payload.truncate(100);
    p.b.v
        .receive_frame(&mut p.b.env, &roce::encode(&pk).unwrap());
    assert_eq!(p.b.qp_state(p.qb.qpn), QpState::Err as u8);
}

/// A sequence NAK that arrives while the requester is already going back (no
/// progress since its last go-back) costs no retry and does not rewind again.
#[test]
fn sequence_nak_while_going_back_costs_no_retry() {
    let mut p = Pair::new(ConnParams {
        retry: 1,
        ..ConnParams::default()
    });
    let data = pattern(600, 4); // 3 packets at MTU 256
    p.a.write_mem(p.buf_a, &data);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 600, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let sent: Vec<_> = p.a.env.frames.drain(..).collect();
    assert_eq!(sent.len(), 3);
    // The first packet is lost: B NAKs the second once and drops the third.
    p.b.v.receive_frame(&mut p.b.env, &sent[1]);
    p.b.v.receive_frame(&mut p.b.env, &sent[2]);
    let naks: Vec<_> = p.b.env.frames.drain(..).collect();
    assert_eq!(naks.len(), 1);
    // A goes back (its one retry) and resends everything.
    p.a.v.receive_frame(&mut p.a.env, &naks[0]);
    assert_eq!(p.a.env.frames.len(), 3);
    // The NAK again (duplicated on the wire): same episode, nothing happens.
    p.a.v.receive_frame(&mut p.a.env, &naks[0]);
    assert_eq!(p.a.env.frames.len(), 3);
    assert_eq!(p.a.qp_state(p.qa.qpn), QpState::Rts as u8);
    p.pump_all();
    let ca = p.a.poll_cq(&mut p.cq_a);
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    assert_eq!(p.b.read_mem(p.buf_b, 600), data);
    let s = &p.a.v.stats().qps[0];
    assert_eq!((s.seq_naks_received, s.seq_naks_absorbed), (2, 1));
}

/// Every accepted READ response is progress and restores the retry count: a
/// long READ that loses a response four times, each loss recovered by a
/// timeout, completes with RETRY_CNT = 1.
#[test]
fn read_responses_restore_the_retry_count() {
    let mut p = Pair::new(ConnParams {
        retry: 1,
        ..big_params()
    });
    let data = pattern(20_000, 8); // 20 responses at MTU 1024, PSNs 100..=119
    p.b.write_mem(p.buf_b, &data);
    let mut r = signaled(wqe::opcode::RDMA_READ, 1);
    r.sges = vec![(p.buf_a, 20_000, p.key_a)];
    r.remote_addr = p.buf_b;
    r.rkey = p.key_b;
    p.post_a(&r);
    // Burst k (the k-th READ Response FIRST seen) loses the response with PSN
    // 103 + 5(k-1): one loss per (re-)request, each after some progress.
    let mut bursts = 0u32;
    let mut dropped = Vec::new();
    let (ca, _) = p.run(
        |_, f| {
            let b = bth_of(f);
            if b.opcode == roce::opcode::RDMA_READ_RESPONSE_FIRST {
                bursts += 1;
            }
            let target = 103 + 5 * bursts.saturating_sub(1);
            if roce::opcode::is_response(b.opcode) && target < 120 && b.psn == target {
                dropped.push(b.psn);
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        },
        8,
    );
    assert_eq!(dropped, vec![103, 108, 113, 118]);
    assert_eq!(
        ca.iter().map(|c| (c.wr_id, c.status)).collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    assert_eq!(p.a.read_mem(p.buf_a, 20_000), data);
    assert_eq!(p.a.v.stats().qps[0].timeouts, 4);
}

/// Every frame tells the environment which QP sent it (the `wire_tx` scope).
#[test]
fn frames_name_their_source_qp() {
    let mut p = Pair::new(big_params());
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 5000, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    p.pump_all();
    assert_eq!(p.a.poll_cq(&mut p.cq_a)[0].status, 0);
    let (qa, qb) = (p.qa.qpn, p.qb.qpn);
    assert_eq!(p.a.env.frame_sources, vec![Some(qa); 5]);
    assert!(!p.b.env.frame_sources.is_empty());
    assert!(p.b.env.frame_sources.iter().all(|&s| s == Some(qb)));
}

/// Bounded work (issue 10): a duplicate RDMA READ request from the peer is answered
/// with at most one send window of responses (128 packets), not by re-executing the
/// whole read; the requester re-requests the rest from where the responses stop.
#[test]
fn duplicate_read_request_is_answered_with_at_most_one_window() {
    let mut p = Pair::new(ConnParams {
        mtu: 1, // 256-byte packets: a 64 KiB READ is 256 responses
        ..ConnParams::default()
    });
    let len = 64 * 1024;
    let mut r = signaled(wqe::opcode::RDMA_READ, 1);
    r.sges = vec![(p.buf_a, len, p.key_a)];
    r.remote_addr = p.buf_b;
    r.rkey = p.key_b;
    p.post_a(&r);
    let mut request = None;
    let (ca, _) = p.run(
        |_, f| {
            if bth_of(f).opcode == roce::opcode::RDMA_READ_REQUEST {
                request.get_or_insert_with(|| f.to_vec());
            }
            Verdict::Deliver
        },
        3,
    );
    assert_eq!(ca.len(), 1, "the READ completed");
    let request = request.expect("the READ request frame");
    p.b.env.frames.clear();
    // The same request again: a duplicate for B's responder.
    p.b.v.receive_frame(&mut p.b.env, &request);
    let responses =
        p.b.env
            .frames
            .iter()
            .filter(|f| roce::opcode::is_response(bth_of(f).opcode))
            .count();
    assert!(
        (1..=128).contains(&responses),
        "{responses} responses to one duplicate READ request"
    );
}

#[test]
fn a_wire_write_is_placed_from_the_frame_and_a_corrupted_frame_places_no_byte() {
    let mut p = Pair::new(ConnParams::default());
    let data = pattern(200, 9);
    p.a.write_mem(p.buf_a, &data);
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 200, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    let mut f = p.a.env.frames.pop_front().expect("the WRITE frame");
    let (_, payload) = roce::decode_in_place(&f).expect("a valid frame");
    assert_eq!(
        f[payload.clone()],
        data[..],
        "the payload's place in the frame"
    );
    // One payload bit flipped: the ICRC fails, nothing is placed, nothing answered.
    f[payload.start + 7] ^= 0x40;
    p.b.v.receive_frame(&mut p.b.env, &f);
    assert_eq!(p.b.read_mem(p.buf_b, 200), vec![0; 200]);
    assert!(
        p.b.env.frames.is_empty(),
        "no ACK or NAK for a corrupted frame"
    );
    // The retransmission after the ACK timeout is placed byte for byte.
    let (ca, _) = p.run(|_, _| Verdict::Deliver, 3);
    assert_eq!(ca[0].status, 0);
    assert_eq!(p.b.read_mem(p.buf_b, 200), data);
}

#[test]
fn a_wire_payload_that_cannot_be_read_sends_no_frame_and_fails_the_sender() {
    let mut p = Pair::new(ConnParams::default());
    p.a.env.fail_reads = Some((p.buf_a + 100, p.buf_a + 101));
    let mut w = signaled(wqe::opcode::RDMA_WRITE, 1);
    w.sges = vec![(p.buf_a, 200, p.key_a)];
    w.remote_addr = p.buf_b;
    w.rkey = p.key_b;
    p.post_a(&w);
    assert!(
        p.a.env.frames.is_empty(),
        "no frame for an unreadable payload"
    );
    assert_eq!(p.a.poll_cq(&mut p.cq_a)[0].status, st(WcStatus::Fatal));
}
