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
    let limits = VerbsLimits {
        max_loopback_per_call: 1,
        ..VerbsLimits::default()
    };
    let mut l = Loop::with_limits(ConnParams::default(), limits);
    let data = pattern(512, 5);
    l.d.write_mem(l.buf_a, &data);
    let w = write_wr(&l, 512, l.key_b);
    l.send_a(w);
    assert_eq!(l.d.read_mem(l.buf_b, 256), data[..256]);
    assert_eq!(l.d.v.loopback_pending(), 1);
    let mut o = [0u8; 56];
    put32(&mut o, 0, l.key_a);
    assert_eq!(l.d.admin(opcode::DEREG_MR, o), Ok((0, 0)));
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
