//! Admin command execution through the whole device (rings, phase, back-pressure,
//! reserved fields, the device-core commands, dispatch to verbs).

use super::AdminStatus;
use crate::device::tests::*;
use crate::device::RnicConfig;
use crate::stats;
use rnic_contract::admin::{opcode as op, CommandRepr, CompletionRepr, NOP_RESULT0};
use rnic_contract::bar0::{self, dev_ctrl, dev_status};
use vm_memory::{Bytes, GuestAddress};

#[test]
fn nop_completion_phase_and_vector() {
    let mut h = Harness::enabled(4, 4);
    h.sink.take();
    let c = h.submit(&CommandRepr::new(op::NOP, 0x1234));
    assert_eq!(
        c,
        CompletionRepr {
            result0: NOP_RESULT0,
            result1: 0,
            id: 0x1234,
            sq_head: 1,
            status: 0,
            phase: true
        }
    );
    assert_eq!(h.sink.triggers(), vec![0]);
    assert_eq!(h.read(bar0::ASQ_HEAD), 1);
    assert_eq!(h.read(bar0::ACQ_TAIL), 1);
    // Raw bytes at ACQ[0]: id at 8, phase at 14.
    let mut raw = [0u8; 16];
    h.mem.read_slice(&mut raw, GuestAddress(ACQ)).unwrap();
    assert_eq!(&raw[0..4], &NOP_RESULT0.to_le_bytes());
    assert_eq!(&raw[8..10], &0x1234u16.to_le_bytes());
    assert_eq!(raw[14], 1);
}

#[test]
fn phase_flips_on_wrap() {
    let mut h = Harness::enabled(4, 4);
    for i in 0..10u16 {
        let c = h.submit(&CommandRepr::new(op::NOP, i));
        assert_eq!(c.id, i);
        assert_eq!(c.phase, (i / 4) % 2 == 0, "completion {i}");
        assert_eq!(c.sq_head as u32, (i as u32 + 1) % 4);
    }
}

#[test]
fn ring_full_never_overwrites() {
    let mut h = Harness::enabled(8, 4);
    for i in 0..6 {
        h.push(&CommandRepr::new(op::NOP, i));
    }
    h.sink.take();
    h.ring();
    // 4-entry completion ring: 3 completions, then back-pressure.
    assert_eq!(h.read(bar0::ACQ_TAIL), 3);
    assert_eq!(h.read(bar0::ASQ_HEAD), 3);
    assert_eq!(h.sink.trigger_count(0), 3);
    let mut ids = Vec::new();
    while let Some(c) = h.pop() {
        ids.push(c.id);
    }
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(h.read(bar0::ASQ_HEAD), 6);
}

#[test]
fn invalid_opcode_and_reserved_fields() {
    let mut h = Harness::enabled(4, 4);
    assert_eq!(
        h.submit(&CommandRepr::new(0xEE, 1)).status,
        AdminStatus::InvalidOpcode.code()
    );
    let mut c = CommandRepr::new(op::NOP, 2);
    c.flags = 1;
    assert_eq!(h.submit(&c).status, AdminStatus::InvalidParam.code());
    assert_eq!(
        h.read(bar0::DEV_STATUS) & dev_status::READY,
        dev_status::READY
    );
}

#[test]
fn query_device_and_port_commands() {
    let mut h = with_eq(0);
    let buf = 0x5_0000u64;
    let c = h.submit(&cmd(op::QUERY_DEVICE, 1, |o| {
        o[0..8].copy_from_slice(&buf.to_le_bytes());
        o[8..12].copy_from_slice(&64u32.to_le_bytes());
    }));
    assert_eq!((c.status, c.result0), (0, 64));
    let mut info = [0u8; 64];
    h.mem.read_slice(&mut info, GuestAddress(buf)).unwrap();
    assert_eq!(&info[0..4], &bar0::VERSION_VALUE.to_le_bytes());
    assert_eq!(&info[8..14], &RnicConfig::default().mac.0);
    assert_eq!(&info[16..20], &1500u32.to_le_bytes());
    assert_eq!(&info[60..64], &[10, 77, 0, 1]);
    let short = h.submit(&cmd(op::QUERY_DEVICE, 2, |o| o[8] = 63));
    assert_eq!(short.status, AdminStatus::InvalidParam.code());
    let outside = h.submit(&cmd(op::QUERY_DEVICE, 3, |o| {
        o[0..8].copy_from_slice(&0x7000_0000u64.to_le_bytes());
        o[8] = 64;
    }));
    assert_eq!(outside.status, AdminStatus::DmaError.code());
    assert_eq!(
        h.submit(&cmd(op::SET_MTU, 4, |o| o[0..4]
            .copy_from_slice(&9001u32.to_le_bytes())))
            .status,
        2
    );
    assert_eq!(
        h.submit(&cmd(op::SET_MTU, 5, |o| o[0..4]
            .copy_from_slice(&9000u32.to_le_bytes())))
            .status,
        0
    );
    assert_eq!(h.dev.ethernet().mtu(), 9000);
    let mac = [0x02, 1, 2, 3, 4, 5];
    assert_eq!(
        h.submit(&cmd(op::SET_MAC, 6, |o| o[0..6].copy_from_slice(&mac)))
            .status,
        0
    );
    assert_eq!(h.read(bar0::MAC_LO), u32::from_le_bytes([2, 1, 2, 3]));
    assert_eq!(h.dev.verbs().port().mac, mac);
    assert_eq!(
        h.submit(&cmd(op::SET_MAC, 7, |o| o[0] = 1)).status,
        2,
        "multicast MAC"
    );
    assert_eq!(
        h.submit(&cmd(op::SET_RX_FILTER, 8, |o| o[0] = 0x1F)).status,
        0
    );
    assert_eq!(
        h.submit(&cmd(op::SET_RX_FILTER, 9, |o| o[0] = 0x20)).status,
        2
    );
    h.mem
        .write_slice(&[1, 0, 0x5E, 0, 0, 1, 0, 0], GuestAddress(buf))
        .unwrap();
    let mc = h.submit(&cmd(op::SET_MULTICAST, 10, |o| {
        o[0] = 1;
        o[8..16].copy_from_slice(&buf.to_le_bytes());
    }));
    assert_eq!(mc.status, 0);
    assert_eq!(
        h.submit(&cmd(op::SET_MULTICAST, 11, |o| o[0] = 65)).status,
        2
    );
    assert_eq!(
        h.submit(&CommandRepr::new(0x4F, 12)).status,
        AdminStatus::InvalidOpcode.code()
    );
    // RESET_FUNCTION restores the defaults.
    assert_eq!(
        h.submit(&CommandRepr::new(op::RESET_FUNCTION, 13)).status,
        0
    );
    assert_eq!(h.dev.ethernet().mtu(), 1500);
    assert_eq!(h.dev.ethernet().mac(), RnicConfig::default().mac);
}

#[test]
fn get_and_clear_stats() {
    let mut h = with_eq(0);
    h.submit(&CommandRepr::new(op::NOP, 1));
    let buf = 0x5_0000u64;
    let c = h.submit(&cmd(op::GET_STATS, 2, |o| {
        o[0..8].copy_from_slice(&buf.to_le_bytes());
        o[8..12].copy_from_slice(&4096u32.to_le_bytes());
    }));
    let total = stats::guest_counters(&h.dev.stats()).len();
    assert_eq!(
        (c.status, c.result0, c.result1),
        (0, 8 + 8 * total as u32, total as u32)
    );
    let mut b = [0u8; 8 + 8 * 18];
    h.mem.read_slice(&mut b, GuestAddress(buf)).unwrap();
    assert_eq!(&b[0..4], &1u32.to_le_bytes());
    assert_eq!(
        u64::from_le_bytes(b[8 + 8 * 17..].try_into().unwrap()),
        2,
        "admin_commands"
    );
    let small = h.submit(&cmd(op::GET_STATS, 3, |o| {
        o[0..8].copy_from_slice(&buf.to_le_bytes());
        o[8..12].copy_from_slice(&20u32.to_le_bytes());
    }));
    assert_eq!(small.result0, 16, "whole counters only");
    assert_eq!(h.submit(&CommandRepr::new(op::CLEAR_STATS, 4)).status, 0);
    assert_eq!(h.dev.stats().device.admin_commands, 0);
}

#[test]
fn verbs_opcodes_are_dispatched() {
    let mut h = with_eq(0);
    let c = h.submit(&CommandRepr::new(op::CREATE_PD, 1));
    assert_eq!(c.status, 0);
    assert_ne!(c.result0, 0, "a PD handle");
    let c = h.submit(&cmd(op::QUERY_CAPS, 2, |o| {
        o[0..8].copy_from_slice(&0x5_0000u64.to_le_bytes());
    }));
    assert_eq!((c.status, c.result0), (0, 64));
    assert_eq!(h.dev.stats().verbs.pds, 1);
    h.write(bar0::DEV_CTRL, dev_ctrl::RESET);
    assert_eq!(h.dev.stats().verbs.pds, 0, "reset drops verbs objects");
}

/// Bounded work (issue 10): one doorbell runs at most
/// [`super::COMMANDS_PER_SERVICE`] commands; the rest run on the following device
/// polls, which [`crate::Rnic::next_deadline`] asks for at once.
#[test]
fn one_doorbell_runs_a_bounded_batch_and_polls_resume() {
    let batch = super::COMMANDS_PER_SERVICE as u32;
    let mut h = Harness::enabled(128, 128);
    let total = 2 * batch + 3;
    for i in 0..total {
        h.push(&CommandRepr::new(op::NOP, i as u16));
    }
    h.ring();
    assert_eq!(h.read(bar0::ASQ_HEAD), batch, "one batch per doorbell");
    let now = h.dev.now();
    assert_eq!(
        h.dev.next_deadline(),
        Some(now),
        "pending commands are due now"
    );
    h.dev.poll(now);
    assert_eq!(h.read(bar0::ASQ_HEAD), 2 * batch);
    h.dev.poll(now);
    assert_eq!(h.read(bar0::ASQ_HEAD), total);
    assert_eq!(h.dev.next_deadline(), None);
    let ids: Vec<u16> = std::iter::from_fn(|| h.pop()).map(|c| c.id).collect();
    assert_eq!(ids, (0..total as u16).collect::<Vec<_>>());
}

/// Bounded work (issue 10): page entries examined by `REG_MR` count toward a
/// per-service work budget whether the registration succeeds or fails, so a queue
/// of long page lists that fail at their last entry runs one list per doorbell.
#[test]
fn failed_page_lists_count_toward_the_work_budget() {
    let entries = super::WORK_PER_SERVICE;
    let mut h = Harness::enabled(16, 16);
    let pd = h.submit(&CommandRepr::new(op::CREATE_PD, 1)).result0;
    // A page list of `entries` pages whose last entry is misaligned.
    let list = 0x8_0000u64;
    let page = 0x4_0000u64;
    let mut bytes = vec![0u8; entries as usize * 8];
    for e in bytes.chunks_exact_mut(8) {
        e.copy_from_slice(&page.to_le_bytes());
    }
    let last = bytes.len() - 8;
    bytes[last..].copy_from_slice(&(page + 1).to_le_bytes());
    h.mem.write_slice(&bytes, GuestAddress(list)).unwrap();
    let head = h.read(bar0::ASQ_HEAD);
    for i in 0..4 {
        h.push(&cmd(op::REG_MR, 10 + i, |o| {
            o[0..4].copy_from_slice(&pd.to_le_bytes());
            o[4..8].copy_from_slice(&1u32.to_le_bytes());
            o[16..24].copy_from_slice(&(u64::from(entries) << 12).to_le_bytes());
            o[24..32].copy_from_slice(&list.to_le_bytes());
            o[32..36].copy_from_slice(&entries.to_le_bytes());
            o[40] = 12;
        }));
    }
    h.ring();
    assert_eq!(
        h.read(bar0::ASQ_HEAD),
        head + 1,
        "one long list per doorbell"
    );
    let now = h.dev.now();
    for _ in 0..3 {
        h.dev.poll(now);
    }
    assert_eq!(h.read(bar0::ASQ_HEAD), head + 4);
    let statuses: Vec<u16> = std::iter::from_fn(|| h.pop()).map(|c| c.status).collect();
    assert_eq!(statuses, [AdminStatus::InvalidParam.code(); 4]);
}
