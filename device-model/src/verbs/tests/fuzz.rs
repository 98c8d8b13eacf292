//! Property tests: arbitrary guest input (WQEs, doorbells, admin operands,
//! frames, time) never panics the engine and never touches memory outside the
//! guest RAM (the test environment refuses such accesses).

use super::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Action {
    SqWqe(Vec<u8>, u32),
    RqWqe(Vec<u8>, u32),
    Doorbell(u16, u32),
    Admin(u8, Vec<u8>),
    Frame(Vec<u8>),
    MutateFrame(usize, u8),
    Tick(u32),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (proptest::collection::vec(any::<u8>(), 128), 0u32..40)
            .prop_map(|(b, n)| Action::SqWqe(b, n)),
        (proptest::collection::vec(any::<u8>(), 128), 0u32..40)
            .prop_map(|(b, n)| Action::RqWqe(b, n)),
        (0x2000u16..=0xFFFF, any::<u32>()).prop_map(|(o, v)| Action::Doorbell(o & !3, v)),
        (0x10u8..=0x3F, proptest::collection::vec(any::<u8>(), 56))
            .prop_map(|(o, b)| Action::Admin(o, b)),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Action::Frame),
        (any::<usize>(), any::<u8>()).prop_map(|(i, m)| Action::MutateFrame(i, m)),
        (0u32..2_000_000).prop_map(Action::Tick),
    ]
}

/// Makes a WQE slightly more plausible so the fuzzer reaches the transport:
/// small opcode, SGE count and lengths pointing at the registered buffers.
fn steer(l: &Loop, b: &mut [u8], sq: bool) {
    if b[0] & 1 == 0 {
        return;
    }
    if sq {
        b[8] %= 9;
    }
    let n = usize::from(b[if sq { 10 } else { 8 }] % 4);
    b[if sq { 10 } else { 8 }] = n as u8;
    b[9] &= 0x0F;
    for i in 0..n {
        let o = 32 + i * 16;
        let off = u64::from(b[o]) * 64;
        let (buf, key) = if b[o + 1] & 1 == 0 {
            (l.buf_a, l.key_a)
        } else {
            (l.buf_b, l.key_b)
        };
        b[o..o + 8].copy_from_slice(&(buf + off).to_le_bytes());
        let len = u32::from(b[o + 9]) * 16;
        b[o + 8..o + 12].copy_from_slice(&len.to_le_bytes());
        b[o + 12..o + 16].copy_from_slice(&key.to_le_bytes());
    }
    if sq {
        let ra = l.buf_b + u64::from(b[17]) * 8;
        b[16..24].copy_from_slice(&ra.to_le_bytes());
        b[24..28].copy_from_slice(&l.key_b.to_le_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics(actions in proptest::collection::vec(action(), 1..60)) {
        let mut l = Loop::new();
        // A remote pair so frames also go to the wire.
        let mut last_frame: Option<Vec<u8>> = None;
        for a in actions {
            match a {
                Action::SqWqe(mut b, n) => {
                    steer(&l, &mut b, true);
                    let mut q = l.a;
                    let slot = q.sq_base + u64::from(q.sq_pi & (q.sq_size - 1)) * 128;
                    l.d.write_mem(slot, &b);
                    q.sq_pi = q.sq_pi.wrapping_add(1 + n % 3);
                    l.d.ring_sq(&q);
                    l.a = q;
                }
                Action::RqWqe(mut b, n) => {
                    steer(&l, &mut b, false);
                    let mut q = l.b;
                    let slot = q.rq_base + u64::from(q.rq_pi & (q.rq_size - 1)) * 128;
                    l.d.write_mem(slot, &b);
                    q.rq_pi = q.rq_pi.wrapping_add(1 + n % 2);
                    l.d.v.doorbell(&mut l.d.env, 0x2004 + 8 * u64::from(q.qpn), q.rq_pi);
                    l.b = q;
                }
                Action::Doorbell(off, v) => l.d.v.doorbell(&mut l.d.env, u64::from(off), v),
                Action::Admin(opc, b) => {
                    let mut o = [0u8; 56];
                    o.copy_from_slice(&b);
                    let _ = l.d.v.admin(&mut l.d.env, opc, &o);
                }
                Action::Frame(f) => l.d.v.receive_frame(&mut l.d.env, &f),
                Action::MutateFrame(i, m) => {
                    if let Some(f) = l.d.env.frames.pop_front().or(last_frame.take()) {
                        let mut g = f.clone();
                        if !g.is_empty() {
                            let k = i % g.len();
                            g[k] ^= m;
                        }
                        l.d.v.receive_frame(&mut l.d.env, &g);
                        last_frame = Some(f);
                    }
                }
                Action::Tick(us) => l.d.advance(Duration::from_micros(u64::from(us))),
            }
            let _ = l.cqes_a();
            let _ = l.cqes_b();
        }
        let s = serde_json::to_string(&l.d.v.stats()).unwrap();
        prop_assert!(s.contains("global"));
    }

    #[test]
    fn arbitrary_roce_packets_to_a_connected_qp(
        ops in proptest::collection::vec((0u8..0x18, any::<u32>(), any::<u64>(), any::<u32>(), 0usize..1100, any::<bool>()), 1..40)
    ) {
        let mut p = Loop::new();
        for (opcode, psn_off, va, rkey, len, ackreq) in ops {
            let Some(info) = crate::roce::opcode::info(opcode) else { continue };
            let mut pk = crate::roce::RocePacket {
                eth: crate::roce::EthHeader { dst: MAC_A, src: MAC_A },
                ip: crate::roce::Ipv4Info { src: IP_A, dst: IP_A, ttl: 64, ..Default::default() },
                udp_src_port: 1234,
                bth: crate::roce::Bth {
                    opcode,
                    dest_qp: if psn_off & 1 == 0 { p.b.qpn } else { p.a.qpn },
                    psn: crate::roce::psn_add(100, psn_off % 8),
                    ack_req: ackreq,
                    pkey: 0xFFFF,
                    ..Default::default()
                },
                ..Default::default()
            };
            let choose_key = |k: u32| match k % 3 { 0 => p.key_b, 1 => p.key_a, _ => k };
            if info.reth {
                pk.reth = Some(crate::roce::Reth { va: if va & 1 == 0 { p.buf_b + (va >> 48) } else { va }, rkey: choose_key(rkey), dma_len: (len as u32) * (rkey % 5) });
            }
            if info.aeth {
                pk.aeth = Some(crate::roce::Aeth { syndrome: (rkey >> 8) as u8, msn: 0 });
            }
            if info.atomic_eth {
                pk.atomic_eth = Some(crate::roce::AtomicEth::default());
            }
            if info.atomic_ack_eth {
                pk.atomic_ack = Some(0);
            }
            if info.imm {
                pk.imm = Some(rkey);
            }
            if info.ieth {
                pk.ieth = Some(choose_key(rkey));
            }
            if info.payload {
                pk.payload = vec![0xAB; len];
            }
            if let Ok(f) = crate::roce::encode(&pk) {
                p.d.v.receive_frame(&mut p.d.env, &f);
            }
            p.d.advance(Duration::from_millis(50));
        }
        let _ = p.cqes_a();
        let _ = p.cqes_b();
    }
}
