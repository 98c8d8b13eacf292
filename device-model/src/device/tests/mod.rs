//! Tests of the whole device through its registers: a [`Harness`] that plays the
//! driver (PCI setup, admin rings, an event ring), the register and reset tests, and
//! one file per topic: link and fatal state, fault sites, the port.

mod faults;
mod link_and_fatal;
mod ports;

use super::*;
use crate::dma::test_memory;
use crate::events;
use crate::fault::scope_queue;
use crate::fault::{FaultRule, Trigger};
use crate::irq::RecordingSink;
use crate::wire::in_process_pair;
use rnic_contract::admin::{opcode as op, CompletionRepr, NOP_RESULT0};
use rnic_contract::bar0::admin_error;
use rnic_contract::eth::LINK_SPEED_MBPS;
use vm_memory::{Bytes, GuestAddress};

pub(crate) const RAM: usize = 0x10_0000;

pub(crate) const ASQ: u64 = 0x1_0000;

pub(crate) const ACQ: u64 = 0x2_0000;

pub(crate) const EQ: u64 = 0x3_0000;

pub(crate) struct Harness {
    pub dev: Rnic,
    pub sink: Arc<RecordingSink>,
    pub mem: GuestMemoryMmap,
    pub sq_tail: u32,
    pub sq_size: u32,
    pub cq_head: u32,
    pub cq_size: u32,
    pub phase: bool,
}

impl Harness {
    /// PCI set up (memory, bus master, BARs, MSI-X vector 0 unmasked and enabled)
    /// but the device not enabled.
    pub fn new() -> Harness {
        let mem = test_memory(RAM);
        let sink = Arc::new(RecordingSink::new());
        let mut dev = Rnic::new(RnicConfig::default(), mem.clone(), sink.clone());
        dev.config_write(0x10, &0xC000_0000u32.to_le_bytes());
        dev.config_write(0x18, &0xC001_0000u32.to_le_bytes());
        dev.config_write(4, &6u16.to_le_bytes());
        for v in 0..16u64 {
            dev.bar_write(2, 16 * v, &0xFEE0_0000u64.to_le_bytes());
            dev.bar_write(2, 16 * v + 8, &(0x30 + v as u32).to_le_bytes());
            dev.bar_write(2, 16 * v + 12, &0u32.to_le_bytes());
        }
        dev.config_write(crate::pci::MSIX_CAP as u16 + 2, &0x8000u16.to_le_bytes());
        Harness {
            dev,
            sink,
            mem,
            sq_tail: 0,
            sq_size: 0,
            cq_head: 0,
            cq_size: 0,
            phase: true,
        }
    }

    /// `new` plus admin rings of the given sizes, enabled.
    pub fn enabled(sq: u32, cq: u32) -> Harness {
        let mut h = Harness::new();
        h.setup_rings(ASQ, sq, ACQ, cq);
        h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
        assert_eq!(
            h.read(bar0::DEV_STATUS) & dev_status::READY,
            dev_status::READY
        );
        h
    }

    pub fn setup_rings(&mut self, asq: u64, sq: u32, acq: u64, cq: u32) {
        self.write(bar0::ASQ_BASE_LO, asq as u32);
        self.write(bar0::ASQ_BASE_HI, (asq >> 32) as u32);
        self.write(bar0::ASQ_SIZE, sq);
        self.write(bar0::ACQ_BASE_LO, acq as u32);
        self.write(bar0::ACQ_BASE_HI, (acq >> 32) as u32);
        self.write(bar0::ACQ_SIZE, cq);
        self.sq_size = sq;
        self.cq_size = cq;
    }

    pub fn read(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.bar_read(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn write(&mut self, off: u64, v: u32) {
        self.dev.bar_write(0, off, &v.to_le_bytes());
    }

    /// Places a command at the tail (without ringing).
    pub fn push(&mut self, cmd: &CommandRepr) {
        let addr = ASQ + 64 * self.sq_tail as u64;
        self.mem
            .write_slice(&cmd.to_bytes(), GuestAddress(addr))
            .unwrap();
        self.sq_tail = (self.sq_tail + 1) % self.sq_size;
    }

    pub fn ring(&mut self) {
        let t = self.sq_tail;
        self.write(bar0::ASQ_TAIL, t);
    }

    /// Submits one command and returns its completion (releasing the slot).
    pub fn submit(&mut self, cmd: &CommandRepr) -> CompletionRepr {
        self.push(cmd);
        self.ring();
        self.pop().expect("a completion")
    }

    /// The next completion if its phase matches; releases it through ACQ_HEAD.
    pub fn pop(&mut self) -> Option<CompletionRepr> {
        let c = self.peek_cq(self.cq_head);
        if c.phase != self.phase {
            return None;
        }
        self.cq_head = (self.cq_head + 1) % self.cq_size;
        if self.cq_head == 0 {
            self.phase = !self.phase;
        }
        let h = self.cq_head;
        self.write(bar0::ACQ_HEAD, h);
        Some(c)
    }

    pub fn peek_cq(&self, i: u32) -> CompletionRepr {
        let mut b = [0u8; 16];
        self.mem
            .read_slice(&mut b, GuestAddress(ACQ + 16 * i as u64))
            .unwrap();
        CompletionRepr::from_bytes(&b)
    }
}

pub(crate) fn with_eq(size: u32) -> Harness {
    let mut h = Harness::new();
    h.setup_rings(ASQ, 8, ACQ, 8);
    h.write(bar0::EQ_BASE_LO, EQ as u32);
    h.write(bar0::EQ_SIZE, size);
    h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
    assert_ne!(h.read(bar0::DEV_STATUS) & dev_status::READY, 0);
    h
}

pub(crate) fn event(h: &Harness, i: u64) -> (Event, u16, bool) {
    let mut b = [0u8; 16];
    h.mem.read_slice(&mut b, GuestAddress(EQ + 16 * i)).unwrap();
    events::decode(&b)
}

pub(crate) fn cmd(opcode: u8, id: u16, f: impl FnOnce(&mut [u8; 56])) -> CommandRepr {
    let mut c = CommandRepr::new(opcode, id);
    f(&mut c.operands);
    c
}

pub(crate) fn add_rule(h: &mut Harness, rule: FaultRule) {
    h.dev.faults_mut().add_rule(rule).unwrap();
}

pub(crate) fn expect_admin_err(h: &mut Harness, cause: u32) {
    assert_eq!(
        h.read(bar0::DEV_STATUS) & (dev_status::READY | dev_status::ADMIN_ERR),
        dev_status::ADMIN_ERR
    );
    assert_eq!(h.read(bar0::ADMIN_ERROR), cause);
    assert!(h.sink.trigger_count(0) >= 1, "vector 0 raised");
}

pub(crate) fn eth_frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0x5A; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
    f
}

pub(crate) fn roce_like(dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 12 + 4];
    f[0..6].copy_from_slice(&dst);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[14 + 9] = 17;
    f[34 + 2..34 + 4].copy_from_slice(&4791u16.to_be_bytes());
    f
}

/// Creates TX queue 0 (4 descriptors at 0x6_0000, vector `vector`) with one
/// 60-byte frame queued in descriptor 0; ring with `a.write(0x1000, 1)`.
pub(crate) fn txq_with_one_frame(h: &mut Harness, vector: u16) {
    let txr = 0x6_0000u64;
    let c = h.submit(&cmd(op::CREATE_TXQ, 1, |o| {
        o[0..8].copy_from_slice(&txr.to_le_bytes());
        o[8] = 4;
        o[12..14].copy_from_slice(&vector.to_le_bytes());
    }));
    assert_eq!(c.status, 0);
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
    d[8] = 60;
    h.mem.write_slice(&d, GuestAddress(txr)).unwrap();
}

#[test]
fn register_reset_values() {
    let mut h = Harness::new();
    assert_eq!(h.read(bar0::VERSION), 0x0001_0000);
    assert_eq!(h.read(bar0::CAPS), bar0::CAPS_VALUE);
    for r in [
        bar0::DEV_CTRL,
        bar0::DEV_STATUS,
        bar0::ADMIN_ERROR,
        bar0::ASQ_BASE_LO,
        bar0::ASQ_BASE_HI,
        bar0::ASQ_SIZE,
        bar0::ACQ_BASE_LO,
        bar0::ACQ_BASE_HI,
        bar0::ACQ_SIZE,
        bar0::ASQ_TAIL,
        bar0::ASQ_HEAD,
        bar0::ACQ_HEAD,
        bar0::ACQ_TAIL,
    ] {
        assert_eq!(h.read(r), 0, "register {r:#x}");
    }
    assert_eq!(h.read(bar0::MAC_LO), 0x0057_7E02);
    assert_eq!(h.read(bar0::MAC_HI), 0x0100);
    // RO registers ignore writes; bad widths read all ones.
    h.write(bar0::VERSION, 5);
    h.write(bar0::DEV_STATUS, 0xF);
    h.write(bar0::ASQ_HEAD, 3);
    assert_eq!(h.read(bar0::VERSION), 0x0001_0000);
    assert_eq!(h.read(bar0::DEV_STATUS), 0);
    assert_eq!(h.read(bar0::ASQ_HEAD), 0);
    let mut b = [0u8; 2];
    h.dev.bar_read(0, 0, &mut b);
    assert_eq!(b, [0xFF; 2]);
    let mut b = [0u8; 4];
    h.dev.bar_read(0, 2, &mut b);
    assert_eq!(b, [0xFF; 4]);
    h.dev.bar_read(0, 0x10000, &mut b);
    assert_eq!(b, [0xFF; 4]);
    h.dev.bar_read(4, 0, &mut b);
    assert_eq!(b, [0xFF; 4]);
}

#[test]
fn memory_decode_gated_by_command() {
    let mut h = Harness::new();
    h.dev.config_write(4, &0u16.to_le_bytes());
    assert_eq!(h.read(bar0::VERSION), 0xFFFF_FFFF);
    h.write(bar0::ASQ_SIZE, 4);
    h.dev.config_write(4, &6u16.to_le_bytes());
    assert_eq!(h.read(bar0::ASQ_SIZE), 0);
}

#[test]
fn config_writes_report_bar_moves_only_when_decoding_changes() {
    let mut h = Harness::new();
    let moved = |m: &[crate::pci::BarMove]| m.iter().map(|m| m.index).collect::<Vec<_>>();
    // Writes that leave the BARs, memory decoding and the power state alone.
    assert!(h.dev.config_write(0x3C, &[5]).is_empty(), "interrupt line");
    assert!(h
        .dev
        .config_write(crate::pci::MSIX_CAP as u16 + 2, &0x8000u16.to_le_bytes())
        .is_empty());
    assert!(h
        .dev
        .config_write(0x10, &0xC000_0000u32.to_le_bytes())
        .is_empty());
    // Memory decoding off and on again: both BARs leave, then come back.
    assert_eq!(moved(&h.dev.config_write(4, &4u16.to_le_bytes())), [0, 2]);
    assert_eq!(moved(&h.dev.config_write(4, &6u16.to_le_bytes())), [0, 2]);
    // Moving BAR2 while decoding reports BAR2 alone, from its old range.
    let m = h.dev.config_write(0x18, &0xD000_0000u32.to_le_bytes());
    assert_eq!(moved(&m), [2]);
    assert_eq!(m[0].old.map(|r| r.address), Some(0xC001_0000));
    assert_eq!(m[0].new.map(|r| r.address), Some(0xD000_0000));
}

#[test]
fn bad_ring_configuration() {
    let cases: [(u64, u32, u64, u32, u32); 6] = [
        (ASQ + 8, 4, ACQ, 4, admin_error::BAD_ASQ),
        (RAM as u64 - 64, 4, ACQ, 4, admin_error::BAD_ASQ),
        (0x4000_0000, 4, ACQ, 4, admin_error::BAD_ASQ),
        (ASQ, 4, ACQ + 4, 4, admin_error::BAD_ACQ),
        (ASQ, 4, u64::MAX - 15, 4, admin_error::BAD_ACQ),
        (ASQ, 6, ACQ, 4, admin_error::BAD_SIZE),
    ];
    for (asq, sq, acq, cq, cause) in cases {
        let mut h = Harness::new();
        h.setup_rings(asq, sq, acq, cq);
        h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
        expect_admin_err(&mut h, cause);
        // Doorbells are ignored; reset clears everything.
        h.write(bar0::ASQ_TAIL, 1);
        h.write(bar0::DEV_CTRL, dev_ctrl::RESET);
        assert_eq!(h.read(bar0::DEV_STATUS), 0);
        assert_eq!(h.read(bar0::ADMIN_ERROR), 0);
        assert_eq!(h.read(bar0::ASQ_SIZE), 0);
    }
    // Admin ring placed on the device's own BAR.
    let mut h = Harness::new();
    h.setup_rings(0xC000_0000, 4, ACQ, 4);
    h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
    expect_admin_err(&mut h, admin_error::BAD_ASQ);
}

#[test]
fn bus_master_off_doorbell() {
    let mut h = Harness::enabled(4, 4);
    h.dev.config_write(4, &2u16.to_le_bytes());
    h.push(&CommandRepr::new(op::NOP, 1));
    h.ring();
    expect_admin_err(&mut h, admin_error::BUS_MASTER_DISABLED);
    assert_eq!(h.read(bar0::ACQ_TAIL), 0);
}

#[test]
fn bad_doorbell_values() {
    let mut h = Harness::enabled(4, 4);
    h.write(bar0::ASQ_TAIL, 9);
    expect_admin_err(&mut h, admin_error::BAD_TAIL);
    let mut h = Harness::enabled(4, 4);
    h.write(bar0::ACQ_HEAD, 2);
    expect_admin_err(&mut h, admin_error::BAD_HEAD);
}

#[test]
fn reset_and_reenable() {
    let mut h = Harness::enabled(4, 4);
    h.submit(&CommandRepr::new(op::NOP, 1));
    h.write(bar0::DEV_CTRL, 0);
    assert_eq!(h.read(bar0::DEV_STATUS), 0);
    assert_eq!(h.read(bar0::ASQ_HEAD), 0);
    // Bring it up again from scratch.
    h.mem.write_slice(&[0u8; 64], GuestAddress(ACQ)).unwrap();
    h.setup_rings(ASQ, 4, ACQ, 4);
    h.sq_tail = 0;
    h.cq_head = 0;
    h.phase = true;
    h.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
    assert_eq!(h.submit(&CommandRepr::new(op::NOP, 7)).id, 7);
    assert_ne!(h.read(bar0::DEV_STATUS) & dev_status::LINK_UP, 0);
}

#[test]
fn masked_vector_then_unmask_delivers_admin_completion() {
    let mut h = Harness::enabled(4, 4);
    h.dev.bar_write(2, 12, &1u32.to_le_bytes());
    h.sink.take();
    h.submit(&CommandRepr::new(op::NOP, 1));
    assert!(h.sink.triggers().is_empty());
    assert_eq!(h.dev.msix().pending_bits(), 1);
    h.dev.bar_write(2, 12, &0u32.to_le_bytes());
    assert_eq!(h.sink.triggers(), vec![0]);
    // Device reset drops pending interrupts.
    h.dev.bar_write(2, 12, &1u32.to_le_bytes());
    h.submit(&CommandRepr::new(op::NOP, 2));
    h.write(bar0::DEV_CTRL, dev_ctrl::RESET);
    assert_eq!(h.dev.msix().pending_bits(), 0);
}

#[test]
fn flr_resets_config_and_msix() {
    let mut h = Harness::enabled(4, 4);
    h.dev
        .config_write(crate::pci::PCIE_CAP as u16 + 8, &0x8000u16.to_le_bytes());
    assert_eq!(h.dev.config_read(4) & 0xFFFF, 0);
    assert!(h.dev.bar_regions().is_empty());
    assert!(!h.dev.msix().enabled());
    assert_eq!(h.dev.dev_status(), 0);
}

#[test]
fn config_serde_defaults() {
    let c: RnicConfig = serde_json_like_default();
    assert_eq!(c, RnicConfig::default());
}

fn serde_json_like_default() -> RnicConfig {
    // Round-trip through serde's value-less path: deserialize from an empty map.
    use serde::de::value::{Error, MapDeserializer};
    let empty: Vec<(String, String)> = Vec::new();
    RnicConfig::deserialize(MapDeserializer::<_, Error>::new(empty.into_iter())).unwrap()
}
