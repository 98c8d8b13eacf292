//! [`Rnic`]: the top-level device. It ties configuration space, BAR0 registers,
//! MSI-X, DMA and the admin queue together and implements [`PciFunction`].
//!
//! Threading: the monitor calls [`PciFunction`] methods on the vCPU thread and
//! [`Rnic::poll`] periodically; all work runs synchronously inside those calls.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryMmap;

use crate::admin::{AdminCommand, AdminQueue, AdminRegEffect, AdminStatus, STATUS_SUCCESS};
use crate::dma::Dma;
use crate::eth::MacAddress;
use crate::irq::InterruptSink;
use crate::msix::Msix;
use crate::pci::{BarRegion, ConfigSpace, PciFunction};
use crate::regs::{self, dev_ctrl, dev_status};

/// Result 0 of the NOP command ("NOP\0").
pub const NOP_RESULT: u32 = 0x4E4F_5000;

/// Admin opcode: NOP.
pub const OP_NOP: u8 = 0x00;

/// Host-side configuration of one RNIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RnicConfig {
    /// The port's MAC address.
    pub mac: MacAddress,
    /// Whether the port has carrier (link up while the device is enabled).
    pub carrier: bool,
}

impl Default for RnicConfig {
    fn default() -> Self {
        RnicConfig {
            mac: MacAddress([0x02, 0x7E, 0x57, 0x00, 0x00, 0x01]),
            carrier: true,
        }
    }
}

/// The emulated RDMA NIC.
pub struct Rnic {
    config: RnicConfig,
    pci: ConfigSpace,
    msix: Msix,
    dma: Dma,
    admin: AdminQueue,
    /// `DEV_CTRL.ENABLE` as last written (cleared by reset).
    enabled: bool,
    /// `ADMIN_ERROR` (0 = none); non-zero also means `DEV_STATUS.ADMIN_ERR`.
    admin_error: u32,
    fatal: bool,
    carrier: bool,
    now: Duration,
}

impl std::fmt::Debug for Rnic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rnic")
            .field("config", &self.config)
            .field("pci", &self.pci)
            .field("enabled", &self.enabled)
            .field("admin_error", &self.admin_error)
            .finish()
    }
}

impl Rnic {
    /// A powered-on RNIC over guest memory `mem`, raising interrupts through `irq`.
    pub fn new(config: RnicConfig, mem: GuestMemoryMmap, irq: Arc<dyn InterruptSink>) -> Rnic {
        let carrier = config.carrier;
        Rnic {
            config,
            pci: ConfigSpace::new(),
            msix: Msix::new(irq),
            dma: Dma::new(mem),
            admin: AdminQueue::new(),
            enabled: false,
            admin_error: 0,
            fatal: false,
            carrier,
            now: Duration::ZERO,
        }
    }

    /// The configuration the device was built with.
    pub fn config(&self) -> &RnicConfig {
        &self.config
    }

    /// The configuration space (read-only view).
    pub fn config_space(&self) -> &ConfigSpace {
        &self.pci
    }

    /// The MSI-X block (read-only view).
    pub fn msix(&self) -> &Msix {
        &self.msix
    }

    /// `DEV_STATUS` as the driver would read it.
    pub fn dev_status(&self) -> u32 {
        let mut s = 0;
        if self.ready() {
            s |= dev_status::READY;
        }
        if self.fatal {
            s |= dev_status::FATAL;
        }
        if self.admin_error != 0 {
            s |= dev_status::ADMIN_ERR;
        }
        if self.enabled && self.carrier && !self.fatal {
            s |= dev_status::LINK_UP;
        }
        s
    }

    fn ready(&self) -> bool {
        self.enabled && self.admin.is_live() && self.admin_error == 0 && !self.fatal
    }

    /// Time-driven work: the monitor calls this periodically with a monotonic time.
    pub fn poll(&mut self, now: Duration) {
        self.now = now;
        if self.ready() && self.admin.has_work() {
            self.run_admin();
        }
    }

    /// Device reset (`DEV_CTRL.RESET`, or `ENABLE` 1→0): §5.
    pub fn device_reset(&mut self) {
        tracing::debug!("device reset");
        self.admin = AdminQueue::new();
        self.enabled = false;
        self.admin_error = 0;
        self.fatal = false;
        self.msix.clear_pending();
    }

    /// PCI Function Level Reset: device reset plus configuration space and MSI-X.
    pub fn function_level_reset(&mut self) {
        tracing::debug!("function level reset");
        self.device_reset();
        self.pci.reset();
        self.msix.reset();
        self.dma.set_bus_master(false);
        self.dma.set_excluded(Vec::new());
    }

    fn set_admin_error(&mut self, cause: u32) {
        tracing::warn!(cause, "admin queue error");
        if self.admin_error == 0 {
            self.admin_error = cause;
        }
        self.admin.halt();
        self.msix.raise(regs::ADMIN_VECTOR);
    }

    fn reg_read(&mut self, offset: u64) -> u32 {
        match offset {
            regs::VERSION => regs::VERSION_VALUE,
            regs::CAPS => regs::CAPS_VALUE,
            regs::DEV_CTRL => {
                if self.enabled {
                    dev_ctrl::ENABLE
                } else {
                    0
                }
            }
            regs::DEV_STATUS => self.dev_status(),
            regs::ADMIN_ERROR => self.admin_error,
            regs::MAC_LO => self.config.mac.low_u32(),
            regs::MAC_HI => self.config.mac.high_u32(),
            o => self.admin.reg_read(o).unwrap_or(0),
        }
    }

    fn reg_write(&mut self, offset: u64, value: u32) {
        match offset {
            regs::DEV_CTRL => self.write_dev_ctrl(value),
            o => match self.admin.reg_write(o, value) {
                AdminRegEffect::None => {}
                AdminRegEffect::Error(cause) => {
                    if self.ready() {
                        self.set_admin_error(cause)
                    }
                }
                AdminRegEffect::Process => {
                    if !self.dma.bus_master() {
                        self.set_admin_error(regs::admin_error::BUS_MASTER_DISABLED);
                    } else if self.ready() {
                        self.run_admin();
                    }
                }
            },
        }
    }

    fn write_dev_ctrl(&mut self, value: u32) {
        if value & dev_ctrl::RESET != 0 {
            self.device_reset();
            return;
        }
        let en = value & dev_ctrl::ENABLE != 0;
        if en && !self.enabled {
            self.enabled = true;
            if let Err(cause) = self.admin.enable(&self.dma) {
                self.set_admin_error(cause);
            }
        } else if !en && self.enabled {
            self.device_reset();
        }
    }

    /// Processes submissions up to the tail while completion space lasts.
    fn run_admin(&mut self) {
        while self.ready() {
            let cmd = match self.admin.fetch(&self.dma) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(cause) => {
                    self.set_admin_error(cause);
                    break;
                }
            };
            let (status, r0, r1) = match self.execute(&cmd) {
                Ok((r0, r1)) => (STATUS_SUCCESS, r0, r1),
                Err(s) => (s.code(), 0, 0),
            };
            tracing::trace!(opcode = cmd.opcode, id = cmd.id, status, "admin command");
            if let Err(cause) = self.admin.complete(&self.dma, cmd.id, status, r0, r1) {
                self.set_admin_error(cause);
                break;
            }
            self.msix.raise(regs::ADMIN_VECTOR);
        }
    }

    /// Executes one admin command.
    fn execute(&mut self, cmd: &AdminCommand) -> Result<(u32, u32), AdminStatus> {
        if cmd.flags != 0 || cmd.reserved != 0 {
            return Err(AdminStatus::InvalidParam);
        }
        match cmd.opcode {
            OP_NOP => Ok((NOP_RESULT, 0)),
            _ => Err(AdminStatus::InvalidOpcode),
        }
    }

    fn apply_config_effects(&mut self, fx: crate::pci::ConfigEffects) {
        if fx.flr {
            self.function_level_reset();
            return;
        }
        if fx.command_changed {
            self.dma.set_bus_master(self.pci.bus_master());
        }
        if fx.bars_changed {
            let ranges = self
                .pci
                .bar_regions()
                .iter()
                .map(|r| (r.address, r.size))
                .collect();
            self.dma.set_excluded(ranges);
        }
        if fx.msix_control_changed {
            let (en, mask) = self.pci.msix_control();
            self.msix.set_control(en, mask);
        }
    }

    fn decoding(&self) -> bool {
        self.pci.memory_enabled() && self.pci.power_state() == 0
    }
}

impl PciFunction for Rnic {
    fn config_read(&mut self, offset: u16) -> u32 {
        self.pci.read(offset)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        let fx = self.pci.write(offset, data);
        self.apply_config_effects(fx);
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if !self.decoding() {
            data.fill(0xFF);
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= regs::BAR0_SIZE {
                    data.fill(0xFF);
                    return;
                }
                let v = if offset < regs::CONTROL_END {
                    self.reg_read(offset)
                } else {
                    0
                };
                data.copy_from_slice(&v.to_le_bytes());
            }
            2 if offset < regs::BAR2_SIZE => self.msix.bar_read(offset, data),
            _ => data.fill(0xFF),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if !self.decoding() {
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= regs::BAR0_SIZE {
                    return;
                }
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                if offset < regs::CONTROL_END {
                    self.reg_write(offset, v);
                }
            }
            2 if offset < regs::BAR2_SIZE => self.msix.bar_write(offset, data),
            _ => {}
        }
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.pci.bar_regions()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::admin::AdminCompletion;
    use crate::dma::test_memory;
    use crate::irq::RecordingSink;
    use crate::regs::admin_error;
    use vm_memory::{Bytes, GuestAddress};

    pub(crate) const RAM: usize = 0x10_0000;
    pub(crate) const ASQ: u64 = 0x1_0000;
    pub(crate) const ACQ: u64 = 0x2_0000;

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
            dev.bar_write(2, 0, &0xFEE0_0000u64.to_le_bytes());
            dev.bar_write(2, 8, &0x30u32.to_le_bytes());
            dev.bar_write(2, 12, &0u32.to_le_bytes());
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
            h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
            assert_eq!(
                h.read(regs::DEV_STATUS) & dev_status::READY,
                dev_status::READY
            );
            h
        }

        pub fn setup_rings(&mut self, asq: u64, sq: u32, acq: u64, cq: u32) {
            self.write(regs::ASQ_BASE_LO, asq as u32);
            self.write(regs::ASQ_BASE_HI, (asq >> 32) as u32);
            self.write(regs::ASQ_SIZE, sq);
            self.write(regs::ACQ_BASE_LO, acq as u32);
            self.write(regs::ACQ_BASE_HI, (acq >> 32) as u32);
            self.write(regs::ACQ_SIZE, cq);
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
        pub fn push(&mut self, cmd: &AdminCommand) {
            let addr = ASQ + 64 * self.sq_tail as u64;
            self.mem
                .write_slice(&cmd.to_bytes(), GuestAddress(addr))
                .unwrap();
            self.sq_tail = (self.sq_tail + 1) % self.sq_size;
        }

        pub fn ring(&mut self) {
            let t = self.sq_tail;
            self.write(regs::ASQ_TAIL, t);
        }

        /// Submits one command and returns its completion (releasing the slot).
        pub fn submit(&mut self, cmd: &AdminCommand) -> AdminCompletion {
            self.push(cmd);
            self.ring();
            self.pop().expect("a completion")
        }

        /// The next completion if its phase matches; releases it through ACQ_HEAD.
        pub fn pop(&mut self) -> Option<AdminCompletion> {
            let c = self.peek_cq(self.cq_head);
            if c.phase != self.phase {
                return None;
            }
            self.cq_head = (self.cq_head + 1) % self.cq_size;
            if self.cq_head == 0 {
                self.phase = !self.phase;
            }
            let h = self.cq_head;
            self.write(regs::ACQ_HEAD, h);
            Some(c)
        }

        pub fn peek_cq(&self, i: u32) -> AdminCompletion {
            let mut b = [0u8; 16];
            self.mem
                .read_slice(&mut b, GuestAddress(ACQ + 16 * i as u64))
                .unwrap();
            AdminCompletion::from_bytes(&b)
        }
    }

    #[test]
    fn register_reset_values() {
        let mut h = Harness::new();
        assert_eq!(h.read(regs::VERSION), 0x0001_0000);
        assert_eq!(h.read(regs::CAPS), regs::CAPS_VALUE);
        for r in [
            regs::DEV_CTRL,
            regs::DEV_STATUS,
            regs::ADMIN_ERROR,
            regs::ASQ_BASE_LO,
            regs::ASQ_BASE_HI,
            regs::ASQ_SIZE,
            regs::ACQ_BASE_LO,
            regs::ACQ_BASE_HI,
            regs::ACQ_SIZE,
            regs::ASQ_TAIL,
            regs::ASQ_HEAD,
            regs::ACQ_HEAD,
            regs::ACQ_TAIL,
        ] {
            assert_eq!(h.read(r), 0, "register {r:#x}");
        }
        assert_eq!(h.read(regs::MAC_LO), 0x0057_7E02);
        assert_eq!(h.read(regs::MAC_HI), 0x0100);
        // RO registers ignore writes; bad widths read all ones.
        h.write(regs::VERSION, 5);
        h.write(regs::DEV_STATUS, 0xF);
        h.write(regs::ASQ_HEAD, 3);
        assert_eq!(h.read(regs::VERSION), 0x0001_0000);
        assert_eq!(h.read(regs::DEV_STATUS), 0);
        assert_eq!(h.read(regs::ASQ_HEAD), 0);
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
        assert_eq!(h.read(regs::VERSION), 0xFFFF_FFFF);
        h.write(regs::ASQ_SIZE, 4);
        h.dev.config_write(4, &6u16.to_le_bytes());
        assert_eq!(h.read(regs::ASQ_SIZE), 0);
    }

    #[test]
    fn nop_completion_phase_and_vector() {
        let mut h = Harness::enabled(4, 4);
        h.sink.take();
        let c = h.submit(&AdminCommand::new(OP_NOP, 0x1234));
        assert_eq!(
            c,
            AdminCompletion {
                result0: NOP_RESULT,
                result1: 0,
                id: 0x1234,
                sq_head: 1,
                status: 0,
                phase: true
            }
        );
        assert_eq!(h.sink.triggers(), vec![0]);
        assert_eq!(h.read(regs::ASQ_HEAD), 1);
        assert_eq!(h.read(regs::ACQ_TAIL), 1);
        // Raw bytes at ACQ[0]: id at 8, phase at 14.
        let mut raw = [0u8; 16];
        h.mem.read_slice(&mut raw, GuestAddress(ACQ)).unwrap();
        assert_eq!(&raw[0..4], &NOP_RESULT.to_le_bytes());
        assert_eq!(&raw[8..10], &0x1234u16.to_le_bytes());
        assert_eq!(raw[14], 1);
    }

    #[test]
    fn phase_flips_on_wrap() {
        let mut h = Harness::enabled(4, 4);
        for i in 0..10u16 {
            let c = h.submit(&AdminCommand::new(OP_NOP, i));
            assert_eq!(c.id, i);
            assert_eq!(c.phase, (i / 4) % 2 == 0, "completion {i}");
            assert_eq!(c.sq_head as u32, (i as u32 + 1) % 4);
        }
    }

    #[test]
    fn ring_full_never_overwrites() {
        let mut h = Harness::enabled(8, 4);
        for i in 0..6 {
            h.push(&AdminCommand::new(OP_NOP, i));
        }
        h.ring();
        // 4-entry completion ring: 3 completions, then back-pressure.
        assert_eq!(h.read(regs::ACQ_TAIL), 3);
        assert_eq!(h.read(regs::ASQ_HEAD), 3);
        assert_eq!(h.sink.trigger_count(0), 3);
        let mut ids = Vec::new();
        while let Some(c) = h.pop() {
            ids.push(c.id);
        }
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(h.read(regs::ASQ_HEAD), 6);
    }

    #[test]
    fn invalid_opcode_and_reserved_fields() {
        let mut h = Harness::enabled(4, 4);
        assert_eq!(
            h.submit(&AdminCommand::new(0xEE, 1)).status,
            AdminStatus::InvalidOpcode.code()
        );
        let mut c = AdminCommand::new(OP_NOP, 2);
        c.flags = 1;
        assert_eq!(h.submit(&c).status, AdminStatus::InvalidParam.code());
        assert_eq!(
            h.read(regs::DEV_STATUS) & dev_status::READY,
            dev_status::READY
        );
    }

    fn expect_admin_err(h: &mut Harness, cause: u32) {
        assert_eq!(
            h.read(regs::DEV_STATUS) & (dev_status::READY | dev_status::ADMIN_ERR),
            dev_status::ADMIN_ERR
        );
        assert_eq!(h.read(regs::ADMIN_ERROR), cause);
        assert!(h.sink.trigger_count(0) >= 1, "vector 0 raised");
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
            h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
            expect_admin_err(&mut h, cause);
            // Doorbells are ignored; reset clears everything.
            h.write(regs::ASQ_TAIL, 1);
            h.write(regs::DEV_CTRL, dev_ctrl::RESET);
            assert_eq!(h.read(regs::DEV_STATUS), 0);
            assert_eq!(h.read(regs::ADMIN_ERROR), 0);
            assert_eq!(h.read(regs::ASQ_SIZE), 0);
        }
        // Admin ring placed on the device's own BAR.
        let mut h = Harness::new();
        h.setup_rings(0xC000_0000, 4, ACQ, 4);
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        expect_admin_err(&mut h, admin_error::BAD_ASQ);
    }

    #[test]
    fn bus_master_off_doorbell() {
        let mut h = Harness::enabled(4, 4);
        h.dev.config_write(4, &2u16.to_le_bytes());
        h.push(&AdminCommand::new(OP_NOP, 1));
        h.ring();
        expect_admin_err(&mut h, admin_error::BUS_MASTER_DISABLED);
        assert_eq!(h.read(regs::ACQ_TAIL), 0);
    }

    #[test]
    fn bad_doorbell_values() {
        let mut h = Harness::enabled(4, 4);
        h.write(regs::ASQ_TAIL, 9);
        expect_admin_err(&mut h, admin_error::BAD_TAIL);
        let mut h = Harness::enabled(4, 4);
        h.write(regs::ACQ_HEAD, 2);
        expect_admin_err(&mut h, admin_error::BAD_HEAD);
    }

    #[test]
    fn reset_and_reenable() {
        let mut h = Harness::enabled(4, 4);
        h.submit(&AdminCommand::new(OP_NOP, 1));
        h.write(regs::DEV_CTRL, 0);
        assert_eq!(h.read(regs::DEV_STATUS), 0);
        assert_eq!(h.read(regs::ASQ_HEAD), 0);
        // Bring it up again from scratch.
        h.mem.write_slice(&[0u8; 64], GuestAddress(ACQ)).unwrap();
        h.setup_rings(ASQ, 4, ACQ, 4);
        h.sq_tail = 0;
        h.cq_head = 0;
        h.phase = true;
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        assert_eq!(h.submit(&AdminCommand::new(OP_NOP, 7)).id, 7);
        assert_ne!(h.read(regs::DEV_STATUS) & dev_status::LINK_UP, 0);
    }

    #[test]
    fn masked_vector_then_unmask_delivers_admin_completion() {
        let mut h = Harness::enabled(4, 4);
        h.dev.bar_write(2, 12, &1u32.to_le_bytes());
        h.sink.take();
        h.submit(&AdminCommand::new(OP_NOP, 1));
        assert!(h.sink.triggers().is_empty());
        assert_eq!(h.dev.msix().pending_bits(), 1);
        h.dev.bar_write(2, 12, &0u32.to_le_bytes());
        assert_eq!(h.sink.triggers(), vec![0]);
        // Device reset drops pending interrupts.
        h.dev.bar_write(2, 12, &1u32.to_le_bytes());
        h.submit(&AdminCommand::new(OP_NOP, 2));
        h.write(regs::DEV_CTRL, dev_ctrl::RESET);
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
}
