//! Link state and its events, the event ring at enable, the fatal state.

use super::*;

#[test]
fn link_events_on_enable_and_carrier() {
    let mut h = with_eq(8);
    let (ev, seq, phase) = event(&h, 0);
    assert_eq!((ev.code, seq, phase), (events::code::LINK_UP, 0, true));
    assert_ne!(h.read(bar0::DEV_STATUS) & dev_status::LINK_UP, 0);
    h.dev.set_carrier(false);
    assert_eq!(event(&h, 1).0.code, events::code::LINK_DOWN);
    assert_eq!(h.read(bar0::DEV_STATUS) & dev_status::LINK_UP, 0);
    assert_eq!(h.read(bar0::EQ_TAIL), 2);
    h.write(bar0::EQ_HEAD, 2);
    assert_eq!(h.read(bar0::EQ_HEAD), 2);
    let c = h.submit(&CommandRepr::new(op::QUERY_LINK, 1));
    assert_eq!((c.status, c.result0), (0, 0));
    h.dev.set_carrier(true);
    let c = h.submit(&CommandRepr::new(op::QUERY_LINK, 2));
    assert_eq!((c.result0, c.result1), (1, LINK_SPEED_MBPS));
    // A bad EQ_HEAD stops the admin queue.
    h.write(bar0::EQ_HEAD, 7);
    assert_eq!(h.read(bar0::ADMIN_ERROR), admin_error::BAD_EQ);
}

#[test]
fn bad_eq_at_enable() {
    let mut h = Harness::new();
    h.setup_rings(ASQ, 4, ACQ, 4);
    h.write(bar0::EQ_BASE_LO, EQ as u32 + 8);
    h.write(bar0::EQ_SIZE, 4);
    h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
    assert_eq!(h.read(bar0::ADMIN_ERROR), admin_error::BAD_EQ);
    assert_eq!(h.read(bar0::DEV_STATUS) & dev_status::READY, 0);
}

#[test]
fn fatal_reads_all_ones_until_reset() {
    let mut h = with_eq(8);
    h.sink.take();
    h.dev.inject_fatal();
    let (ev, _, _) = event(&h, 1);
    assert_eq!(
        (ev.code, ev.detail),
        (events::code::FATAL, events::fatal_cause::INJECTED)
    );
    assert_eq!(
        h.sink.triggers(),
        vec![0],
        "vector 0 raised for the FATAL event"
    );
    for r in [
        bar0::VERSION,
        bar0::DEV_STATUS,
        bar0::ADMIN_ERROR,
        bar0::ASQ_HEAD,
        0x1000,
        0x2000,
    ] {
        assert_eq!(h.read(r), 0xFFFF_FFFF, "register {r:#x}");
    }
    assert_ne!(h.dev.dev_status() & dev_status::FATAL, 0);
    // Writes other than RESET are ignored, nothing is DMA'd or raised.
    h.push(&CommandRepr::new(op::NOP, 1));
    h.ring();
    h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
    h.dev.poll(Duration::from_millis(5));
    assert_eq!(h.sink.triggers(), vec![0]);
    assert!(!h.peek_cq(0).phase);
    h.write(bar0::DEV_CTRL, dev_ctrl::RESET | dev_ctrl::ENABLE);
    assert_eq!(h.read(bar0::DEV_STATUS), 0);
    assert_eq!(h.read(bar0::VERSION), bar0::VERSION_VALUE);
    assert_eq!(h.dev.stats().device.fatal_errors, 1);
}

#[test]
fn fatal_clears_pending_interrupts() {
    let mut h = with_eq(8);
    txq_with_one_frame(&mut h, 3);
    // Mask vectors 0 and 3 (Vector Control of entries 0 and 3): a NOP
    // completion and a TX completion leave their PBA bits set.
    h.dev.bar_write(2, 12, &1u32.to_le_bytes());
    h.dev.bar_write(2, 3 * 16 + 12, &1u32.to_le_bytes());
    h.submit(&CommandRepr::new(op::NOP, 2));
    h.write(0x1000, 1);
    assert_eq!(h.dev.msix().pending_bits(), 1 | 1 << 3);
    h.sink.take();
    h.dev.inject_fatal();
    // Only the FATAL event's own vector-0 interrupt is pending now.
    assert_eq!(h.dev.msix().pending_bits(), 1);
    h.dev.bar_write(2, 3 * 16 + 12, &0u32.to_le_bytes());
    assert!(h.sink.triggers().is_empty(), "no stale TX interrupt");
    h.dev.bar_write(2, 12, &0u32.to_le_bytes());
    assert_eq!(h.sink.triggers(), vec![0], "the FATAL event's interrupt");
    assert_eq!(h.dev.msix().pending_bits(), 0);
}
