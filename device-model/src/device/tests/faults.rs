//! Fault sites exercised through the whole device: device, link, admin command, MSI-X, DMA, wire; fault scopes.

use super::*;

#[test]
fn device_and_link_faults_in_poll() {
    let mut h = with_eq(8);
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Link, FaultAction::LinkDown)
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.dev.poll(Duration::from_millis(1));
    assert_eq!(event(&h, 1).0.code, events::code::LINK_DOWN);
    assert!(!h.dev.link_up());
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Link, FaultAction::LinkUp).with_trigger(Trigger::Once { nth: 1 }),
    );
    h.dev.poll(Duration::from_millis(2));
    assert_eq!(event(&h, 2).0.code, events::code::LINK_UP);
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Device, FaultAction::Fatal),
    );
    h.dev.poll(Duration::from_millis(3));
    assert_eq!(h.dev.fatal(), Some(events::fatal_cause::INJECTED));
    assert_eq!(event(&h, 3).0.code, events::code::FATAL);
    assert_eq!(h.read(bar0::DEV_STATUS), 0xFFFF_FFFF);
}

#[test]
fn admin_command_faults() {
    let mut h = with_eq(8);
    let nop = |id| CommandRepr::new(op::NOP, id);
    add_rule(
        &mut h,
        FaultRule::new(
            FaultSite::AdminCommand,
            FaultAction::FailStatus { status: 0x15 },
        )
        .with_trigger(Trigger::Once { nth: 1 }),
    );
    assert_eq!(h.submit(&nop(1)).status, 0x15);
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::AdminCommand, FaultAction::NeverComplete)
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.push(&nop(2));
    h.ring();
    assert!(h.pop().is_none(), "never completes");
    assert_eq!(h.submit(&nop(3)).id, 3);
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::AdminCommand, FaultAction::Delay { micros: 500 })
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.dev.poll(Duration::from_millis(10));
    h.push(&nop(4));
    h.push(&nop(5));
    h.ring();
    assert!(h.pop().is_none());
    assert_eq!(h.dev.next_deadline(), Some(Duration::from_micros(10_500)));
    h.dev.poll(Duration::from_micros(10_400));
    assert!(h.pop().is_none());
    h.dev.poll(Duration::from_micros(10_500));
    assert_eq!(h.pop().map(|c| c.id), Some(4));
    assert_eq!(
        h.pop().map(|c| c.id),
        Some(5),
        "the queue resumes after the delayed command"
    );
    let d = h.dev.stats().device;
    assert_eq!((d.admin_never_completed, d.admin_failed), (1, 1));
}

/// A command held back by a `delay` fault must not run once the admin queue
/// has halted on an error: its completion could never be written, so running it
/// would create an object the driver is never told about.
#[test]
fn delayed_command_is_discarded_when_the_queue_halts() {
    let mut h = Harness::enabled(4, 4);
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::AdminCommand, FaultAction::Delay { micros: 100 })
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.push(&CommandRepr::new(op::CREATE_PD, 1));
    h.ring();
    assert!(h.pop().is_none(), "held back by the delay");
    h.write(bar0::ASQ_TAIL, 9);
    super::tests::expect_admin_err(&mut h, admin_error::BAD_TAIL);
    h.dev.poll(Duration::from_millis(1));
    assert!(h.pop().is_none());
    assert_eq!(h.dev.next_deadline(), None, "nothing left to run");
    assert_eq!(
        h.dev.stats().verbs.pds,
        0,
        "the delayed CREATE_PD never ran"
    );
}

#[test]
fn msix_faults() {
    let mut h = with_eq(0);
    h.sink.take();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Msix, FaultAction::Drop).with_trigger(Trigger::Once { nth: 1 }),
    );
    h.submit(&CommandRepr::new(op::NOP, 1));
    assert!(h.sink.triggers().is_empty(), "dropped");
    assert_eq!(
        h.dev.msix().pending_bits(),
        0,
        "a dropped interrupt leaves no PBA bit"
    );
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Msix, FaultAction::Duplicate)
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.submit(&CommandRepr::new(op::NOP, 2));
    assert_eq!(h.sink.take().len(), 2);
    h.dev.faults_mut().clear();
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::Msix, FaultAction::Delay { micros: 100 })
            .with_trigger(Trigger::Once { nth: 1 }),
    );
    h.submit(&CommandRepr::new(op::NOP, 3));
    assert!(h.sink.triggers().is_empty());
    h.dev.poll(Duration::from_micros(100));
    assert_eq!(h.sink.triggers(), vec![0]);
    let d = h.dev.stats().device;
    assert_eq!((d.msix_dropped, d.msix_extra, d.msix_delayed), (1, 1, 1));
}

#[test]
fn dma_read_fault_on_admin_ring() {
    let mut h = with_eq(0);
    add_rule(
        &mut h,
        FaultRule::new(FaultSite::DmaRead, FaultAction::DmaError),
    );
    h.push(&CommandRepr::new(op::NOP, 1));
    h.ring();
    assert_eq!(h.read(bar0::ADMIN_ERROR), admin_error::DMA_ERROR);
    assert_eq!(h.read(bar0::DEV_STATUS) & dev_status::READY, 0);
}

#[test]
fn dma_write_corruption_of_completion() {
    let mut h = with_eq(0);
    add_rule(
        &mut h,
        FaultRule::new(
            FaultSite::DmaWrite,
            FaultAction::Corrupt {
                offset: 0,
                mask: 0xFF,
            },
        )
        .with_trigger(Trigger::Once { nth: 1 }),
    );
    let c = h.submit(&CommandRepr::new(op::NOP, 1));
    assert_eq!(c.result0, NOP_RESULT0 ^ 0xFF);
}

#[test]
fn wire_faults_apply_through_the_device_engine() {
    let (wa, mut wb) = in_process_pair();
    let mut a = with_eq(0);
    a.dev.attach_wire(Box::new(wa));
    add_rule(&mut a, FaultRule::new(FaultSite::WireTx, FaultAction::Drop));
    let txr = 0x6_0000u64;
    let c = a.submit(&cmd(op::CREATE_TXQ, 1, |o| {
        o[0..8].copy_from_slice(&txr.to_le_bytes());
        o[8] = 4;
    }));
    assert_eq!(c.status, 0);
    let f = eth_frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 60);
    a.mem.write_slice(&f, GuestAddress(0x8_0000)).unwrap();
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
    d[8] = 60;
    a.mem.write_slice(&d, GuestAddress(txr)).unwrap();
    a.write(0x1000, 1);
    assert!(
        crate::wire::WireBackend::try_recv(&mut wb)
            .unwrap()
            .is_none(),
        "dropped on the wire"
    );
    assert_eq!(a.dev.faults_mut().stats().total_hits, 1);
}

#[test]
fn fatal_answer_at_a_wire_site() {
    let (wa, _wb) = in_process_pair();
    let mut a = with_eq(0);
    a.dev.attach_wire(Box::new(wa));
    add_rule(
        &mut a,
        FaultRule::new(FaultSite::WireTx, FaultAction::Fatal),
    );
    let txr = 0x6_0000u64;
    let c = a.submit(&cmd(op::CREATE_TXQ, 1, |o| {
        o[0..8].copy_from_slice(&txr.to_le_bytes());
        o[8] = 4;
    }));
    assert_eq!(c.status, 0);
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
    d[8] = 60;
    a.mem.write_slice(&d, GuestAddress(txr)).unwrap();
    a.write(0x1000, 1);
    assert!(a.dev.fatal().is_some());
}

#[test]
fn wire_tx_scope_names_the_ethernet_tx_queue() {
    let (wa, _wb) = in_process_pair();
    let mut a = with_eq(0);
    a.dev.attach_wire(Box::new(wa));
    let scoped = |queue| {
        FaultRule::new(FaultSite::WireTx, FaultAction::Drop).with_scope(FaultScope {
            queue: Some(queue),
            ..FaultScope::default()
        })
    };
    // Queue 0 is the admin queue, never an Ethernet queue; QP 1 is not it either.
    add_rule(&mut a, scoped(scope_queue::ADMIN));
    add_rule(&mut a, scoped(1));
    add_rule(&mut a, scoped(scope_queue::ETH_TX));
    txq_with_one_frame(&mut a, 1);
    a.write(0x1000, 1);
    let st = a.dev.stats().faults;
    let events: Vec<u64> = st.rules.iter().map(|r| r.events).collect();
    assert_eq!(events, vec![0, 0, 1]);
    assert_eq!(st.rules[2].hits, 1);
}

#[test]
fn dma_scope_zero_is_the_admin_queue_only() {
    let mut a = with_eq(8);
    // Every admin ring access and command buffer counts for queue 0; the TX
    // queue's descriptor and buffer accesses and event ring writes do not.
    let admin = |site| {
        FaultRule::new(site, FaultAction::Corrupt { offset: 0, mask: 0 }).with_scope(FaultScope {
            queue: Some(scope_queue::ADMIN),
            ..FaultScope::default()
        })
    };
    txq_with_one_frame(&mut a, 1);
    add_rule(&mut a, admin(FaultSite::DmaRead));
    add_rule(&mut a, admin(FaultSite::DmaWrite));
    let eq_writes = FaultRule::new(
        FaultSite::DmaWrite,
        FaultAction::Corrupt { offset: 0, mask: 0 },
    )
    .with_scope(FaultScope {
        queue: Some(scope_queue::EVENT_QUEUE),
        ..FaultScope::default()
    });
    add_rule(&mut a, eq_writes);
    let tx_reads = FaultRule::new(
        FaultSite::DmaRead,
        FaultAction::Corrupt { offset: 0, mask: 0 },
    )
    .with_scope(FaultScope {
        queue: Some(scope_queue::ETH_TX),
        ..FaultScope::default()
    });
    add_rule(&mut a, tx_reads);
    a.write(0x1000, 1); // descriptor + buffer reads, status write
    let ev = |a: &Harness| -> Vec<u64> {
        a.dev
            .stats()
            .faults
            .rules
            .iter()
            .map(|r| r.events)
            .collect()
    };
    assert_eq!(ev(&a), vec![0, 0, 0, 2]);
    a.submit(&CommandRepr::new(op::NOP, 9)); // command read, completion writes
    assert_eq!(ev(&a), vec![1, 2, 0, 2]);
    a.dev.set_carrier(false); // LINK_DOWN event: body + phase word
    assert_eq!(ev(&a), vec![1, 2, 2, 2]);
}

#[test]
fn flr_keeps_fault_rules() {
    let mut h = with_eq(0);
    add_rule(&mut h, FaultRule::new(FaultSite::Msix, FaultAction::Drop));
    h.dev
        .config_write(crate::pci::PCIE_CAP as u16 + 8, &0x8000u16.to_le_bytes());
    assert_eq!(h.dev.faults_mut().rules().len(), 1);
    assert_eq!(h.dev.stats().device.function_level_resets, 1);
}
