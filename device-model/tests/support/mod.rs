//! A small test-only "mini driver" for the emulated RNIC, written from the device
//! contract (`docs/device-spec.md`), not from the
//! device's source: every register offset, command layout, WQE/CQE layout and
//! status code below is typed in from the documents. It drives a device only the
//! way a guest driver could: PCI configuration space, BAR0/BAR2 accesses, guest
//! memory and MSI-X (observed through a `RecordingSink`).
//!
//! What it owns: bring-up, the admin queue and event queue, PD/MR/CQ/QP helpers,
//! WQE posting, CQE polling and a [`World`] that pumps one or more devices with a
//! test-controlled clock. What it must not touch: the device's internals (only
//! `Rnic::stats()` and the fault engine, the host-side API, are used for checks).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rnic_device::irq::RecordingSink;
use rnic_device::wire::{in_process_pair, WireBackend};
use rnic_device::{MacAddress, PciFunction, Rnic, RnicConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

// ---------------------------------------------------------------------------
// Contract constants (device-spec.md)
// ---------------------------------------------------------------------------

/// Guest RAM per device.
pub const RAM_SIZE: usize = 16 << 20;
/// Where the driver places BAR0 and BAR2 (outside guest RAM).
pub const BAR0_ADDR: u64 = 0xE000_0000;
pub const BAR2_ADDR: u64 = 0xE001_0000;
/// MSI address the driver programs (x86 LAPIC window); data = `MSI_DATA_BASE + vector`.
pub const MSI_ADDR: u64 = 0xFEE0_0000;
pub const MSI_DATA_BASE: u32 = 0x4100;

pub mod cfg {
    pub const VENDOR_DEVICE: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const BAR0: u16 = 0x10;
    pub const BAR2: u16 = 0x18;
    pub const MSIX_CAP: u16 = 0x50;
    pub const CMD_MEMORY: u16 = 1 << 1;
    pub const CMD_BUS_MASTER: u16 = 1 << 2;
    pub const MSIX_ENABLE: u16 = 1 << 15;
}

pub mod reg {
    pub const VERSION: u64 = 0x000;
    pub const CAPS: u64 = 0x004;
    pub const DEV_CTRL: u64 = 0x008;
    pub const DEV_STATUS: u64 = 0x00C;
    pub const ADMIN_ERROR: u64 = 0x010;
    pub const MAC_LO: u64 = 0x018;
    pub const MAC_HI: u64 = 0x01C;
    pub const ASQ_BASE_LO: u64 = 0x020;
    pub const ASQ_BASE_HI: u64 = 0x024;
    pub const ASQ_SIZE: u64 = 0x028;
    pub const ACQ_BASE_LO: u64 = 0x030;
    pub const ACQ_BASE_HI: u64 = 0x034;
    pub const ACQ_SIZE: u64 = 0x038;
    pub const ASQ_TAIL: u64 = 0x040;
    pub const ACQ_HEAD: u64 = 0x048;
    pub const EQ_BASE_LO: u64 = 0x050;
    pub const EQ_BASE_HI: u64 = 0x054;
    pub const EQ_SIZE: u64 = 0x058;
    pub const EQ_HEAD: u64 = 0x05C;

    pub const CTRL_ENABLE: u32 = 1 << 0;
    pub const CTRL_RESET: u32 = 1 << 1;

    pub const ST_READY: u32 = 1 << 0;
    pub const ST_FATAL: u32 = 1 << 1;
    pub const ST_ADMIN_ERR: u32 = 1 << 2;
    pub const ST_LINK_UP: u32 = 1 << 3;

    /// Ethernet doorbell block of queue `q`.
    pub const fn eth_db(q: u64) -> u64 {
        0x1000 + 16 * q
    }
    pub const TXQ_TAIL: u64 = 0x0;
    pub const TXQ_HEAD: u64 = 0x4;
    pub const RXQ_TAIL: u64 = 0x8;
    pub const RXQ_HEAD: u64 = 0xC;

    pub const fn sq_pi(qpn: u32) -> u64 {
        0x2000 + 8 * qpn as u64
    }
    pub const fn rq_pi(qpn: u32) -> u64 {
        0x2004 + 8 * qpn as u64
    }
    pub const fn cq_ci(cqn: u32) -> u64 {
        0x8000 + 8 * cqn as u64
    }
    pub const fn cq_arm(cqn: u32) -> u64 {
        0x8004 + 8 * cqn as u64
    }
    pub const ARM_NEXT: u32 = 1;
}

/// Admin opcodes.
pub mod op {
    pub const NOP: u8 = 0x00;
    pub const QUERY_DEVICE: u8 = 0x01;
    pub const QUERY_LINK: u8 = 0x06;
    pub const GET_STATS: u8 = 0x07;
    pub const CREATE_TXQ: u8 = 0x40;
    pub const CREATE_RXQ: u8 = 0x42;
    pub const QUERY_CAPS: u8 = 0x10;
    pub const CREATE_PD: u8 = 0x11;
    pub const CREATE_CQ: u8 = 0x18;
    pub const CREATE_QP: u8 = 0x20;
    pub const MODIFY_QP: u8 = 0x21;
    pub const QUERY_QP: u8 = 0x22;
    pub const REG_MR: u8 = 0x28;
    pub const DEREG_MR: u8 = 0x29;
    pub const ALLOC_FR_MR: u8 = 0x2A;
    pub const QUERY_MR: u8 = 0x2B;
}

/// Admin completion status codes.
pub mod status {
    pub const SUCCESS: u16 = 0x00;
    pub const INVALID_STATE: u16 = 0x13;
}

/// Event codes.
pub mod ev {
    pub const LINK_UP: u8 = 0x01;
    pub const LINK_DOWN: u8 = 0x02;
    pub const FATAL: u8 = 0x03;
    pub const QP_ERROR: u8 = 0x10;
    pub const QP_ACCESS_ERROR: u8 = 0x11;
}

/// MR access flags.
pub mod acc {
    pub const LOCAL_WRITE: u32 = 1;
    pub const REMOTE_READ: u32 = 2;
    pub const REMOTE_WRITE: u32 = 4;
    pub const ALL: u32 = 0xF;
}

/// Send WQE opcodes.
pub mod wr {
    pub const SEND: u8 = 0;
    pub const SEND_WITH_IMM: u8 = 1;
    pub const RDMA_WRITE: u8 = 3;
    pub const RDMA_WRITE_WITH_IMM: u8 = 4;
    pub const RDMA_READ: u8 = 5;
    pub const FAST_REG: u8 = 6;
    pub const LOCAL_INV: u8 = 7;

    pub const SIGNALED: u8 = 1;
    pub const INLINE: u8 = 4;
}

/// CQE opcodes.
pub mod cqe_op {
    pub const SEND: u8 = 0x00;
    pub const RDMA_WRITE: u8 = 0x01;
    pub const RDMA_READ: u8 = 0x02;
    pub const FAST_REG: u8 = 0x03;
    pub const LOCAL_INV: u8 = 0x04;
    pub const RECV: u8 = 0x80;
    pub const RECV_RDMA_WITH_IMM: u8 = 0x81;
}

/// Work completion status codes.
pub mod wc {
    pub const SUCCESS: u8 = 0;
    pub const FLUSHED: u8 = 4;
    pub const REMOTE_ACCESS_ERROR: u8 = 6;
    pub const RETRY_EXCEEDED: u8 = 8;
}

/// QP states.
pub mod qps {
    pub const RESET: u8 = 0;
    pub const INIT: u8 = 1;
    pub const RTR: u8 = 2;
    pub const RTS: u8 = 3;
    pub const ERR: u8 = 6;
}

/// MODIFY_QP attribute mask bits.
pub mod attr {
    pub const STATE: u32 = 1 << 0;
    pub const PATH_MTU: u32 = 1 << 1;
    pub const RETRY_CNT: u32 = 1 << 2;
    pub const RNR_RETRY: u32 = 1 << 3;
    pub const TIMEOUT: u32 = 1 << 4;
    pub const ACCESS: u32 = 1 << 5;
    pub const DEST_QPN: u32 = 1 << 6;
    pub const SQ_PSN: u32 = 1 << 7;
    pub const RQ_PSN: u32 = 1 << 8;
    pub const AV: u32 = 1 << 9;
    pub const MIN_RNR_TIMER: u32 = 1 << 10;
}

pub const ASQ_ENTRIES: u32 = 32;
pub const ACQ_ENTRIES: u32 = 32;
pub const EQ_ENTRIES: u32 = 64;
pub const WQE_SIZE: u64 = 128;
pub const CQE_SIZE: u64 = 32;
pub const PAGE: u64 = 4096;

/// Time advanced per pump step.
pub const STEP: Duration = Duration::from_micros(10);

// ---------------------------------------------------------------------------
// Little helpers
// ---------------------------------------------------------------------------

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Deterministic pseudo-random bytes (xorshift64*), distinct per seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Operand block of an admin command.
pub type Operands = [u8; 56];

/// Operand builder.
#[derive(Clone, Copy)]
pub struct Ops(pub Operands);

impl Ops {
    pub fn new() -> Self {
        Ops([0u8; 56])
    }
    pub fn u8(mut self, at: usize, v: u8) -> Self {
        self.0[at] = v;
        self
    }
    pub fn u16(mut self, at: usize, v: u16) -> Self {
        put16(&mut self.0, at, v);
        self
    }
    pub fn u32(mut self, at: usize, v: u32) -> Self {
        put32(&mut self.0, at, v);
        self
    }
    pub fn u64(mut self, at: usize, v: u64) -> Self {
        put64(&mut self.0, at, v);
        self
    }
    pub fn bytes(mut self, at: usize, v: &[u8]) -> Self {
        self.0[at..at + v.len()].copy_from_slice(v);
        self
    }
}

impl Default for Ops {
    fn default() -> Self {
        Self::new()
    }
}

/// One admin completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminResult {
    pub status: u16,
    pub r0: u32,
    pub r1: u32,
}

/// One event queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub handle: u32,
    pub detail: u32,
    pub seq: u16,
}

/// One CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    pub wr_id: u64,
    pub byte_len: u32,
    pub imm: u32,
    pub qpn: u32,
    pub opcode: u8,
    pub status: u8,
    pub flags: u8,
    pub vendor_err: u32,
}

impl Cqe {
    fn decode(b: &[u8]) -> Cqe {
        Cqe {
            wr_id: get64(b, 0),
            byte_len: get32(b, 8),
            imm: get32(b, 12),
            qpn: get32(b, 16),
            opcode: b[20],
            status: b[21],
            flags: b[22],
            vendor_err: get32(b, 24),
        }
    }
}

/// A scatter/gather element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sge {
    pub addr: u64,
    pub len: u32,
    pub lkey: u32,
}

/// A send work request.
#[derive(Clone, Debug, Default)]
pub struct SendWr {
    pub wr_id: u64,
    pub opcode: u8,
    pub flags: u8,
    pub imm: u32,
    pub remote_addr: u64,
    pub rkey: u32,
    pub sges: Vec<Sge>,
    pub inline: Option<Vec<u8>>,
    /// FAST_REG only: the raw bytes 16..64 of the WQE.
    pub fast_reg: Option<[u8; 48]>,
}

impl SendWr {
    pub fn write(wr_id: u64, sges: Vec<Sge>, remote_addr: u64, rkey: u32) -> Self {
        SendWr {
            wr_id,
            opcode: wr::RDMA_WRITE,
            flags: wr::SIGNALED,
            remote_addr,
            rkey,
            sges,
            ..SendWr::default()
        }
    }
    pub fn write_imm(wr_id: u64, sges: Vec<Sge>, remote_addr: u64, rkey: u32, imm: u32) -> Self {
        SendWr {
            opcode: wr::RDMA_WRITE_WITH_IMM,
            imm,
            ..Self::write(wr_id, sges, remote_addr, rkey)
        }
    }
    pub fn read(wr_id: u64, sges: Vec<Sge>, remote_addr: u64, rkey: u32) -> Self {
        SendWr {
            opcode: wr::RDMA_READ,
            ..Self::write(wr_id, sges, remote_addr, rkey)
        }
    }
    pub fn send(wr_id: u64, sges: Vec<Sge>) -> Self {
        SendWr {
            wr_id,
            opcode: wr::SEND,
            flags: wr::SIGNALED,
            sges,
            ..SendWr::default()
        }
    }
    pub fn send_imm(wr_id: u64, sges: Vec<Sge>, imm: u32) -> Self {
        SendWr {
            opcode: wr::SEND_WITH_IMM,
            imm,
            ..Self::send(wr_id, sges)
        }
    }
    pub fn send_inline(wr_id: u64, data: &[u8]) -> Self {
        SendWr {
            wr_id,
            opcode: wr::SEND,
            flags: wr::SIGNALED | wr::INLINE,
            inline: Some(data.to_vec()),
            ..SendWr::default()
        }
    }
    pub fn local_inv(wr_id: u64, key: u32) -> Self {
        SendWr {
            wr_id,
            opcode: wr::LOCAL_INV,
            flags: wr::SIGNALED,
            imm: key,
            ..SendWr::default()
        }
    }

    fn encode(&self) -> [u8; WQE_SIZE as usize] {
        let mut b = [0u8; WQE_SIZE as usize];
        put64(&mut b, 0, self.wr_id);
        b[8] = self.opcode;
        b[9] = self.flags;
        b[10] = self.sges.len() as u8;
        put32(&mut b, 12, self.imm);
        if let Some(fr) = &self.fast_reg {
            b[16..64].copy_from_slice(fr);
            return b;
        }
        put64(&mut b, 16, self.remote_addr);
        put32(&mut b, 24, self.rkey);
        if let Some(d) = &self.inline {
            b[10] = 0;
            put32(&mut b, 28, d.len() as u32);
            b[32..32 + d.len()].copy_from_slice(d);
        } else {
            for (i, s) in self.sges.iter().enumerate() {
                let o = 32 + 16 * i;
                put64(&mut b, o, s.addr);
                put32(&mut b, o + 8, s.len);
                put32(&mut b, o + 12, s.lkey);
            }
        }
        b
    }
}

/// A registered memory region, as the driver remembers it.
#[derive(Clone, Copy, Debug)]
pub struct Mr {
    pub key: u32,
    pub iova: u64,
    /// Guest-physical address of the first byte.
    pub addr: u64,
    pub len: u64,
}

impl Mr {
    /// The consumer address of byte `off` of the region.
    pub fn va(&self, off: u64) -> u64 {
        self.iova + off
    }
    /// An SGE over `[off, off+len)` of the region.
    pub fn sge(&self, off: u64, len: u32) -> Sge {
        Sge {
            addr: self.va(off),
            len,
            lkey: self.key,
        }
    }
}

/// QP attributes used to connect.
#[derive(Clone, Copy, Debug)]
pub struct QpCfg {
    pub mtu_code: u8,
    pub timeout: u8,
    pub retry_cnt: u8,
    pub rnr_retry: u8,
    pub min_rnr_timer: u8,
    /// QP access (bit 1 remote read, bit 2 remote write).
    pub access: u8,
    pub sq_entries: u32,
    pub rq_entries: u32,
    pub cq_entries: u32,
}

impl Default for QpCfg {
    fn default() -> Self {
        QpCfg {
            mtu_code: 3, // 1024 bytes
            timeout: 6,  // 4.096 µs × 64 ≈ 262 µs
            retry_cnt: 7,
            rnr_retry: 7, // infinite
            min_rnr_timer: 1,
            access: (acc::REMOTE_READ | acc::REMOTE_WRITE) as u8,
            sq_entries: 64,
            rq_entries: 64,
            cq_entries: 256,
        }
    }
}

/// The far end a QP connects to.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub qpn: u32,
    pub mac: [u8; 6],
    pub ip: [u8; 4],
    /// The PSN the peer starts sending with.
    pub psn: u32,
}

struct AdminState {
    asq: u64,
    tail: u32,
    acq: u64,
    head: u32,
    eq: u64,
    eq_head: u32,
    next_id: u16,
}

struct CqState {
    base: u64,
    size: u32,
    ci: u32,
}

struct QpState {
    sq_base: u64,
    sq_size: u32,
    sq_pi: u32,
    rq_base: u64,
    rq_size: u32,
    rq_pi: u32,
}

/// One device plus the driver state for it.
pub struct Node {
    pub name: &'static str,
    pub dev: Rnic,
    pub mem: GuestMemoryMmap,
    pub sink: Arc<RecordingSink>,
    /// MAC and IPv4 as learned by the driver at bring-up.
    pub mac: [u8; 6],
    pub ip: [u8; 4],
    /// Every event read from the event queue so far.
    pub events: Vec<Event>,
    next_free: u64,
    admin: Option<AdminState>,
    cqs: HashMap<u32, CqState>,
    qps: HashMap<u32, QpState>,
}

impl Node {
    /// A powered-on device with its own guest RAM (not yet brought up).
    pub fn new(name: &'static str, mac: [u8; 6], ip: [u8; 4]) -> Node {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM_SIZE)]).expect("guest RAM");
        let sink = Arc::new(RecordingSink::new());
        let config = RnicConfig {
            mac: MacAddress(mac),
            ip: Ipv4Addr::from(ip),
            carrier: true,
            ipv6: None,
        };
        let dev = Rnic::new(config, mem.clone(), sink.clone());
        Node {
            name,
            dev,
            mem,
            sink,
            mac: [0; 6],
            ip: [0; 4],
            events: Vec::new(),
            next_free: 0x10_0000,
            admin: None,
            cqs: HashMap::new(),
            qps: HashMap::new(),
        }
    }

    // ---- raw access ------------------------------------------------------

    pub fn reg(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.bar_read(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn set_reg(&mut self, off: u64, v: u32) {
        self.dev.bar_write(0, off, &v.to_le_bytes());
    }

    pub fn msix_write(&mut self, off: u64, v: u32) {
        self.dev.bar_write(2, off, &v.to_le_bytes());
    }

    pub fn msix_read(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.bar_read(2, off, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn cfg_write16(&mut self, off: u16, v: u16) {
        self.dev.config_write(off, &v.to_le_bytes());
    }

    pub fn cfg_write32(&mut self, off: u16, v: u32) {
        self.dev.config_write(off, &v.to_le_bytes());
    }

    /// Allocates zeroed guest memory: guest RAM starts zeroed and an address is
    /// handed out once, so nothing needs writing (the pages are touched only when
    /// used).
    pub fn alloc(&mut self, len: u64, align: u64) -> u64 {
        let a = self.next_free.next_multiple_of(align.max(1));
        let end = a + len.max(1);
        assert!(
            end <= RAM_SIZE as u64,
            "{}: test guest RAM exhausted",
            self.name
        );
        self.next_free = end;
        a
    }

    pub fn write_mem(&self, addr: u64, data: &[u8]) {
        self.mem
            .write_slice(data, GuestAddress(addr))
            .expect("guest write");
    }

    pub fn read_mem(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem
            .read_slice(&mut v, GuestAddress(addr))
            .expect("guest read");
        v
    }

    // ---- bring-up ---------------------------------------------------------

    /// PCI side of bring-up (device-spec.md §16 steps 1-2): BAR sizing and placement, Command
    /// register, MSI-X table (every vector unmasked), MSI-X enable.
    pub fn pci_setup(&mut self) {
        let id = self.dev.config_read(cfg::VENDOR_DEVICE);
        assert_eq!(id, 0x0001_7E57, "{}: vendor/device id", self.name);
        // BAR sizing.
        self.cfg_write32(cfg::BAR0, 0xFFFF_FFFF);
        assert_eq!(
            self.dev.config_read(cfg::BAR0),
            0xFFFF_0004,
            "BAR0 size mask"
        );
        self.cfg_write32(cfg::BAR2, 0xFFFF_FFFF);
        assert_eq!(
            self.dev.config_read(cfg::BAR2),
            0xFFFF_E004,
            "BAR2 size mask"
        );
        self.cfg_write32(cfg::BAR0, BAR0_ADDR as u32);
        self.cfg_write32(cfg::BAR0 + 4, (BAR0_ADDR >> 32) as u32);
        self.cfg_write32(cfg::BAR2, BAR2_ADDR as u32);
        self.cfg_write32(cfg::BAR2 + 4, (BAR2_ADDR >> 32) as u32);
        self.cfg_write16(cfg::COMMAND, cfg::CMD_MEMORY | cfg::CMD_BUS_MASTER);
        // MSI-X: table at BAR2 offset 0, 16 entries of 16 bytes.
        let mc = self.dev.config_read(cfg::MSIX_CAP) >> 16;
        assert_eq!(mc & 0x7FF, 15, "MSI-X table size field");
        for v in 0..16u64 {
            self.msix_write(16 * v, MSI_ADDR as u32);
            self.msix_write(16 * v + 4, (MSI_ADDR >> 32) as u32);
            self.msix_write(16 * v + 8, MSI_DATA_BASE + v as u32);
            self.msix_write(16 * v + 12, 0);
        }
        self.cfg_write16(cfg::MSIX_CAP + 2, cfg::MSIX_ENABLE);
        let mc = self.dev.config_read(cfg::MSIX_CAP) >> 16;
        assert_ne!(mc & u32::from(cfg::MSIX_ENABLE), 0, "MSI-X enable sticks");
    }

    /// Device side of bring-up (device-spec.md §16 steps 3-6), then learns MAC and IP.
    pub fn bring_up(&mut self) {
        self.set_reg(reg::DEV_CTRL, reg::CTRL_RESET);
        let mut polls = 0;
        while self.reg(reg::DEV_STATUS) != 0 {
            polls += 1;
            assert!(
                polls < 100,
                "{}: DEV_STATUS never cleared after RESET",
                self.name
            );
            let now = self.dev.now();
            self.dev.poll(now);
        }
        assert_eq!(self.reg(reg::VERSION), 0x0001_0000, "VERSION");
        assert_eq!(self.reg(reg::CAPS), 0x1F, "CAPS");
        self.cqs.clear();
        self.qps.clear();
        let asq = self.alloc(u64::from(ASQ_ENTRIES) * 64, 64);
        let acq = self.alloc(u64::from(ACQ_ENTRIES) * 16, 16);
        let eq = self.alloc(u64::from(EQ_ENTRIES) * 16, 16);
        self.set_reg(reg::ASQ_BASE_LO, asq as u32);
        self.set_reg(reg::ASQ_BASE_HI, (asq >> 32) as u32);
        self.set_reg(reg::ASQ_SIZE, ASQ_ENTRIES);
        self.set_reg(reg::ACQ_BASE_LO, acq as u32);
        self.set_reg(reg::ACQ_BASE_HI, (acq >> 32) as u32);
        self.set_reg(reg::ACQ_SIZE, ACQ_ENTRIES);
        self.set_reg(reg::EQ_BASE_LO, eq as u32);
        self.set_reg(reg::EQ_BASE_HI, (eq >> 32) as u32);
        self.set_reg(reg::EQ_SIZE, EQ_ENTRIES);
        self.set_reg(reg::DEV_CTRL, reg::CTRL_ENABLE);
        let st = self.reg(reg::DEV_STATUS);
        let cause = self.reg(reg::ADMIN_ERROR);
        assert_eq!(
            st & (reg::ST_FATAL | reg::ST_ADMIN_ERR),
            0,
            "{}: DEV_STATUS {st:#x}",
            self.name
        );
        assert_ne!(
            st & reg::ST_READY,
            0,
            "{}: not READY after enable: DEV_STATUS {st:#x}, ADMIN_ERROR {cause}",
            self.name
        );
        self.admin = Some(AdminState {
            asq,
            tail: 0,
            acq,
            head: 0,
            eq,
            eq_head: 0,
            next_id: 1,
        });
        let lo = self.reg(reg::MAC_LO).to_le_bytes();
        let hi = self.reg(reg::MAC_HI).to_le_bytes();
        self.mac = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];
        let r = self.admin_ok(op::NOP, Ops::new());
        assert_eq!(r.0, 0x4E4F_5000, "NOP result");
        let buf = self.alloc(64, 64);
        let r = self.admin_ok(op::QUERY_DEVICE, Ops::new().u64(0, buf).u32(8, 64));
        assert_eq!(r.0, 64);
        let info = self.read_mem(buf, 64);
        assert_eq!(&info[8..14], &self.mac, "QUERY_DEVICE MAC = MAC_LO/HI");
        self.ip = [info[60], info[61], info[62], info[63]];
        // The verbs layout this driver was written for.
        let (n, _) = self.admin_ok(op::QUERY_CAPS, Ops::new().u64(0, buf));
        assert_eq!(n, 64);
        let caps = self.read_mem(buf, 64);
        assert_eq!(
            (caps[24], caps[25], get16(&caps, 26)),
            (6, 6, 96),
            "SGE / inline limits"
        );
        assert_eq!(
            (get16(&caps, 44), get16(&caps, 46)),
            (128, 32),
            "WQE / CQE sizes"
        );
        assert_eq!(caps[38], 5, "max path MTU code");
        assert_eq!(get32(&caps, 52), acc::ALL, "supported MR access bits");
    }

    // ---- admin queue ------------------------------------------------------

    /// Submits one command and waits for its completion.
    pub fn admin(&mut self, opcode: u8, ops: Ops) -> AdminResult {
        let a = self.admin.as_mut().expect("bring_up first");
        let id = a.next_id;
        a.next_id = a.next_id.wrapping_add(1).max(1);
        let mut cmd = [0u8; 64];
        cmd[0] = opcode;
        put16(&mut cmd, 2, id);
        cmd[8..64].copy_from_slice(&ops.0);
        let slot = a.asq + u64::from(a.tail) * 64;
        a.tail = (a.tail + 1) % ASQ_ENTRIES;
        let tail = a.tail;
        self.write_mem(slot, &cmd);
        self.set_reg(reg::ASQ_TAIL, tail);
        for _ in 0..1000 {
            if let Some(r) = self.take_completion(id) {
                return r;
            }
            let now = self.dev.now();
            self.dev.poll(now);
        }
        let st = self.reg(reg::DEV_STATUS);
        panic!(
            "{}: admin command {opcode:#04x} never completed (DEV_STATUS {st:#x})",
            self.name
        );
    }

    fn take_completion(&mut self, id: u16) -> Option<AdminResult> {
        let (acq, head) = {
            let a = self.admin.as_ref()?;
            (a.acq, a.head)
        };
        let slot = acq + u64::from(head % ACQ_ENTRIES) * 16;
        let e = self.read_mem(slot, 16);
        let phase = ((head / ACQ_ENTRIES) & 1 == 0) as u16;
        if get16(&e, 14) & 1 != phase {
            return None;
        }
        assert_eq!(
            get16(&e, 8),
            id,
            "{}: completion for another command",
            self.name
        );
        let a = self.admin.as_mut()?;
        a.head = a.head.wrapping_add(1);
        let new_head = a.head % ACQ_ENTRIES;
        self.set_reg(reg::ACQ_HEAD, new_head);
        Some(AdminResult {
            status: get16(&e, 12),
            r0: get32(&e, 0),
            r1: get32(&e, 4),
        })
    }

    /// Submits a command that must succeed; returns (result 0, result 1).
    pub fn admin_ok(&mut self, opcode: u8, ops: Ops) -> (u32, u32) {
        let r = self.admin(opcode, ops);
        assert_eq!(
            r.status,
            status::SUCCESS,
            "{}: admin opcode {opcode:#04x} failed with status {:#x}",
            self.name,
            r.status
        );
        (r.r0, r.r1)
    }

    /// Reads new events from the event queue (by phase) and releases them.
    pub fn poll_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(a) = self.admin.as_mut() else {
            return out;
        };
        let (eq, mut head) = (a.eq, a.eq_head);
        loop {
            let slot = eq + u64::from(head % EQ_ENTRIES) * 16;
            let mut e = [0u8; 16];
            self.mem
                .read_slice(&mut e, GuestAddress(slot))
                .expect("EQ read");
            let phase = ((head / EQ_ENTRIES) & 1 == 0) as u16;
            if get16(&e, 14) & 1 != phase {
                break;
            }
            out.push(Event {
                code: e[0],
                handle: get32(&e, 4),
                detail: get32(&e, 8),
                seq: get16(&e, 12),
            });
            head = head.wrapping_add(1);
        }
        if !out.is_empty() {
            if let Some(a) = self.admin.as_mut() {
                a.eq_head = head;
            }
            self.set_reg(reg::EQ_HEAD, head % EQ_ENTRIES);
        }
        self.events.extend(out.iter().copied());
        out
    }

    /// Guest-visible counters from GET_STATS.
    pub fn guest_stats(&mut self) -> Vec<u64> {
        let len = 8 + 8 * 128;
        let buf = self.alloc(len, 8);
        let (n, count) = self.admin_ok(op::GET_STATS, Ops::new().u64(0, buf).u32(8, len as u32));
        let b = self.read_mem(buf, n as usize);
        assert_eq!(get32(&b, 0), 1, "GET_STATS version");
        assert_eq!(get32(&b, 4), count, "GET_STATS count = result 1");
        (0..count as usize).map(|i| get64(&b, 8 + 8 * i)).collect()
    }

    // ---- verbs objects ----------------------------------------------------

    pub fn create_pd(&mut self) -> u32 {
        self.admin_ok(op::CREATE_PD, Ops::new()).0
    }

    /// Registers `[addr, addr+len)` (any alignment) with 4 KiB pages. The iova is
    /// deliberately unrelated to the guest address.
    pub fn reg_mr(&mut self, pd: u32, addr: u64, len: u64, access: u32, key_byte: u8) -> Mr {
        let r = self.try_reg_mr(pd, addr, len, access, key_byte);
        assert_eq!(r.0.status, status::SUCCESS, "{}: REG_MR failed", self.name);
        r.1
    }

    pub fn try_reg_mr(
        &mut self,
        pd: u32,
        addr: u64,
        len: u64,
        access: u32,
        key_byte: u8,
    ) -> (AdminResult, Mr) {
        let fbo = addr % PAGE;
        let first = addr - fbo;
        let count = (fbo + len).div_ceil(PAGE);
        let list = self.alloc(8 * count.max(1), 8);
        let pages: Vec<u8> = (0..count)
            .flat_map(|i| (first + i * PAGE).to_le_bytes())
            .collect();
        self.write_mem(list, &pages);
        let iova = 0x5A00_0000_0000 + (addr << 4) + 0x321;
        let ops = Ops::new()
            .u32(0, pd)
            .u32(4, access)
            .u64(8, iova)
            .u64(16, len)
            .u64(24, list)
            .u32(32, count as u32)
            .u32(36, fbo as u32)
            .u8(40, 12)
            .u8(41, key_byte);
        let r = self.admin(op::REG_MR, ops);
        let mr = Mr {
            key: r.r0,
            iova,
            addr,
            len,
        };
        if r.status == status::SUCCESS {
            assert_eq!(r.r0 >> 8, r.r1, "REG_MR: key index = result 1");
            // The key byte asked for, or the next one when the index last carried
            // that byte (spec §6.1: a reused index never repeats its last key).
            let got = (r.r0 & 0xFF) as u8;
            assert!(
                got == key_byte || got == key_byte.wrapping_add(1),
                "REG_MR: key byte {got:#04x} for {key_byte:#04x} asked"
            );
        }
        (r, mr)
    }

    /// A buffer of `len` bytes at a deliberately odd offset, registered.
    pub fn buffer(&mut self, pd: u32, len: u64, access: u32) -> Mr {
        let addr = self.alloc(len + 0x200, PAGE) + 0x1A4;
        self.reg_mr(pd, addr, len, access, 0x5C)
    }

    pub fn create_cq(&mut self, entries: u32, vector: u16) -> u32 {
        let base = self.alloc(u64::from(entries) * CQE_SIZE, PAGE);
        let (cqn, _) = self.admin_ok(
            op::CREATE_CQ,
            Ops::new().u64(0, base).u32(8, entries).u16(12, vector),
        );
        self.cqs.insert(
            cqn,
            CqState {
                base,
                size: entries,
                ci: 0,
            },
        );
        cqn
    }

    pub fn create_qp(&mut self, pd: u32, scq: u32, rcq: u32, c: &QpCfg) -> u32 {
        let sq = self.alloc(u64::from(c.sq_entries) * WQE_SIZE, PAGE);
        let rq = self.alloc(u64::from(c.rq_entries) * WQE_SIZE, PAGE);
        let ops = Ops::new()
            .u32(0, pd)
            .u32(4, scq)
            .u32(8, rcq)
            .u32(12, c.sq_entries)
            .u32(16, c.rq_entries)
            .u64(20, sq)
            .u64(28, rq)
            .u8(36, 6)
            .u8(37, 6)
            .u16(38, 96);
        let (qpn, _) = self.admin_ok(op::CREATE_QP, ops);
        self.qps.insert(
            qpn,
            QpState {
                sq_base: sq,
                sq_size: c.sq_entries,
                sq_pi: 0,
                rq_base: rq,
                rq_size: c.rq_entries,
                rq_pi: 0,
            },
        );
        qpn
    }

    pub fn modify_qp(&mut self, qpn: u32, mask: u32, f: impl FnOnce(Ops) -> Ops) -> AdminResult {
        let ops = f(Ops::new().u32(0, qpn).u32(4, mask));
        self.admin(op::MODIFY_QP, ops)
    }

    /// RESET → INIT → RTR → RTS towards `peer`.
    pub fn connect_qp(&mut self, qpn: u32, my_psn: u32, peer: &Peer, c: &QpCfg) {
        let r = self.modify_qp(qpn, attr::STATE | attr::ACCESS, |o| {
            o.u8(8, qps::INIT).u8(13, c.access)
        });
        assert_eq!(r.status, status::SUCCESS, "RESET->INIT");
        let r = self.modify_qp(
            qpn,
            attr::STATE
                | attr::PATH_MTU
                | attr::DEST_QPN
                | attr::RQ_PSN
                | attr::AV
                | attr::MIN_RNR_TIMER,
            |o| {
                o.u8(8, qps::RTR)
                    .u8(9, c.mtu_code)
                    .u8(14, c.min_rnr_timer)
                    .u32(16, peer.qpn)
                    .u32(24, peer.psn)
                    .bytes(28, &peer.mac)
                    .bytes(36, &peer.ip)
            },
        );
        assert_eq!(r.status, status::SUCCESS, "INIT->RTR");
        let r = self.modify_qp(
            qpn,
            attr::STATE | attr::SQ_PSN | attr::TIMEOUT | attr::RETRY_CNT | attr::RNR_RETRY,
            |o| {
                o.u8(8, qps::RTS)
                    .u8(10, c.retry_cnt)
                    .u8(11, c.rnr_retry)
                    .u8(12, c.timeout)
                    .u32(20, my_psn)
            },
        );
        assert_eq!(r.status, status::SUCCESS, "RTR->RTS");
    }

    /// Moves a QP to RESET; the driver restarts its producer indices at 0.
    pub fn reset_qp(&mut self, qpn: u32) {
        let r = self.modify_qp(qpn, attr::STATE, |o| o.u8(8, qps::RESET));
        assert_eq!(
            r.status,
            status::SUCCESS,
            "{}: QP {qpn} to RESET",
            self.name
        );
        if let Some(q) = self.qps.get_mut(&qpn) {
            q.sq_pi = 0;
            q.rq_pi = 0;
        }
        // RESET → RTS is not a legal transition.
        let r = self.modify_qp(qpn, attr::STATE, |o| o.u8(8, qps::RTS));
        assert_eq!(r.status, status::INVALID_STATE, "RESET -> RTS refused");
    }

    /// QUERY_QP: (state, 64-byte record).
    pub fn query_qp(&mut self, qpn: u32) -> (u8, Vec<u8>) {
        let buf = self.alloc(64, 64);
        let (state, _) = self.admin_ok(op::QUERY_QP, Ops::new().u32(0, qpn).u64(8, buf));
        let rec = self.read_mem(buf, 64);
        assert_eq!(u32::from(rec[8]), state, "QUERY_QP record state = result 0");
        assert_eq!(get32(&rec, 0), qpn);
        (state as u8, rec)
    }

    // ---- work requests ----------------------------------------------------

    /// Writes a send WQE without ringing the doorbell.
    pub fn write_send(&mut self, qpn: u32, w: &SendWr) {
        let q = self.qps.get_mut(&qpn).expect("known QP");
        let slot = q.sq_base + u64::from(q.sq_pi & (q.sq_size - 1)) * WQE_SIZE;
        q.sq_pi = q.sq_pi.wrapping_add(1);
        self.write_mem(slot, &w.encode());
    }

    pub fn ring_sq(&mut self, qpn: u32) {
        let pi = self.qps[&qpn].sq_pi;
        self.set_reg(reg::sq_pi(qpn), pi);
    }

    pub fn post_send(&mut self, qpn: u32, w: &SendWr) {
        self.write_send(qpn, w);
        self.ring_sq(qpn);
    }

    pub fn post_recv(&mut self, qpn: u32, wr_id: u64, sges: &[Sge]) {
        let q = self.qps.get_mut(&qpn).expect("known QP");
        let slot = q.rq_base + u64::from(q.rq_pi & (q.rq_size - 1)) * WQE_SIZE;
        q.rq_pi = q.rq_pi.wrapping_add(1);
        let pi = q.rq_pi;
        let mut b = [0u8; WQE_SIZE as usize];
        put64(&mut b, 0, wr_id);
        b[8] = sges.len() as u8;
        for (i, s) in sges.iter().enumerate() {
            let o = 32 + 16 * i;
            put64(&mut b, o, s.addr);
            put32(&mut b, o + 8, s.len);
            put32(&mut b, o + 12, s.lkey);
        }
        self.write_mem(slot, &b);
        self.set_reg(reg::rq_pi(qpn), pi);
    }

    /// Consumes every new CQE (by phase) and writes the consumer index.
    pub fn poll_cq(&mut self, cqn: u32) -> Vec<Cqe> {
        let (base, size, mut ci) = {
            let c = &self.cqs[&cqn];
            (c.base, c.size, c.ci)
        };
        let mut out = Vec::new();
        loop {
            let slot = base + u64::from(ci & (size - 1)) * CQE_SIZE;
            let mut e = [0u8; CQE_SIZE as usize];
            self.mem
                .read_slice(&mut e, GuestAddress(slot))
                .expect("CQ read");
            let phase = ((ci / size) & 1 == 0) as u8;
            if e[23] & 1 != phase {
                break;
            }
            out.push(Cqe::decode(&e));
            ci = ci.wrapping_add(1);
        }
        if !out.is_empty() {
            if let Some(c) = self.cqs.get_mut(&cqn) {
                c.ci = ci;
            }
            self.set_reg(reg::cq_ci(cqn), ci);
        }
        out
    }

    pub fn arm_cq(&mut self, cqn: u32) {
        self.set_reg(reg::cq_arm(cqn), reg::ARM_NEXT);
    }

    /// Host view: per-QP verbs statistics.
    pub fn qp_stats(&self, qpn: u32) -> rnic_device::verbs::qp::QpStats {
        self.dev
            .stats()
            .verbs
            .qps
            .into_iter()
            .find(|q| q.qpn == qpn)
            .expect("QP in stats")
    }
}

/// One side of a connection.
#[derive(Clone, Copy, Debug)]
pub struct End {
    pub node: usize,
    pub pd: u32,
    pub scq: u32,
    pub rcq: u32,
    pub qpn: u32,
}

/// A connected pair of QPs.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    pub a: End,
    pub b: End,
}

/// Devices pumped together on one test clock.
pub struct World {
    pub nodes: Vec<Node>,
    pub now: Duration,
    /// Device time in nanoseconds, shared with capture clocks.
    pub clock: Arc<AtomicU64>,
    next_psn: u32,
}

pub const A: usize = 0;
pub const B: usize = 1;

pub fn mac_of(i: u8) -> [u8; 6] {
    [0x02, 0x7E, 0x57, 0x00, 0x00, 0x10 + i]
}

pub fn ip_of(i: u8) -> [u8; 4] {
    [10, 77, 0, 1 + i]
}

impl World {
    /// One device, brought up, no wire.
    pub fn one() -> World {
        let mut n = Node::new("A", mac_of(0), ip_of(0));
        n.pci_setup();
        n.bring_up();
        World::from_nodes(vec![n])
    }

    /// Two devices on an in-process wire, brought up.
    pub fn two() -> World {
        Self::two_with(|_, w, _| Box::new(w))
    }

    /// Two devices; `wrap(i, end, clock)` may wrap each device's wire end (e.g. in
    /// a capture stamped with `clock`, the test's device time in nanoseconds).
    pub fn two_with(
        mut wrap: impl FnMut(
            usize,
            rnic_device::wire::InProcessWire,
            &Arc<AtomicU64>,
        ) -> Box<dyn WireBackend>,
    ) -> World {
        let clock = Arc::new(AtomicU64::new(0));
        let (wa, wb) = in_process_pair();
        let mut a = Node::new("A", mac_of(0), ip_of(0));
        let mut b = Node::new("B", mac_of(1), ip_of(1));
        a.dev.attach_wire(wrap(A, wa, &clock));
        b.dev.attach_wire(wrap(B, wb, &clock));
        for n in [&mut a, &mut b] {
            n.pci_setup();
            n.bring_up();
        }
        let mut w = World::from_nodes(vec![a, b]);
        w.clock = clock;
        for n in &mut w.nodes {
            let evs = n.poll_events();
            assert!(
                evs.iter().any(|e| e.code == ev::LINK_UP),
                "{}: no LINK_UP event after enable: {evs:?}",
                n.name
            );
        }
        w
    }

    fn from_nodes(nodes: Vec<Node>) -> World {
        World {
            nodes,
            now: Duration::ZERO,
            clock: Arc::new(AtomicU64::new(0)),
            next_psn: 0x10,
        }
    }

    /// Advances the clock by one step and polls every device.
    pub fn step(&mut self) {
        self.now += STEP;
        self.clock
            .store(self.now.as_nanos() as u64, Ordering::Relaxed);
        for n in &mut self.nodes {
            n.dev.poll(self.now);
        }
    }

    /// Steps until `done` holds; panics after `max_steps`.
    pub fn run_until(
        &mut self,
        max_steps: usize,
        what: &str,
        mut done: impl FnMut(&mut World) -> bool,
    ) -> usize {
        for i in 0..max_steps {
            if done(self) {
                return i;
            }
            self.step();
        }
        if done(self) {
            return max_steps;
        }
        let mut stats = String::new();
        for n in &self.nodes {
            for q in n.dev.stats().verbs.qps {
                let j = serde_json::to_string(&q).unwrap_or_default();
                stats.push_str(&format!("\n  {} {j}", n.name));
            }
        }
        panic!("{what}: not done after {max_steps} steps; verbs QPs:{stats}");
    }

    /// Collects CQEs from `cqn` on `node` until at least `n` arrived.
    pub fn wait_cqes(&mut self, node: usize, cqn: u32, n: usize, max_steps: usize) -> Vec<Cqe> {
        let mut got = Vec::new();
        let what = format!("{} CQEs on node {node} CQ {cqn}", n);
        self.run_until(max_steps, &what, |w| {
            got.extend(w.nodes[node].poll_cq(cqn));
            got.len() >= n
        });
        got
    }

    /// Steps `n` times.
    pub fn idle(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Creates PD, CQs and QP on `x` and `y` (which may be the same device) and
    /// connects them.
    pub fn connect(&mut self, x: usize, y: usize, c: &QpCfg) -> Conn {
        let mk = |w: &mut World, node: usize| {
            let n = &mut w.nodes[node];
            let pd = n.create_pd();
            let scq = n.create_cq(c.cq_entries, 1);
            let rcq = n.create_cq(c.cq_entries, 2);
            let qpn = n.create_qp(pd, scq, rcq, c);
            End {
                node,
                pd,
                scq,
                rcq,
                qpn,
            }
        };
        let a = mk(self, x);
        let b = mk(self, y);
        let (pa, pb) = (self.next_psn, self.next_psn.wrapping_mul(7) & 0xFF_FFFF);
        self.next_psn = self.next_psn.wrapping_add(0x1234);
        let peer_b = Peer {
            qpn: b.qpn,
            mac: self.nodes[y].mac,
            ip: self.nodes[y].ip,
            psn: pb,
        };
        let peer_a = Peer {
            qpn: a.qpn,
            mac: self.nodes[x].mac,
            ip: self.nodes[x].ip,
            psn: pa,
        };
        self.nodes[x].connect_qp(a.qpn, pa, &peer_b, c);
        self.nodes[y].connect_qp(b.qpn, pb, &peer_a, c);
        Conn { a, b }
    }

    /// Resets both QPs of `c` and connects them again with fresh PSNs.
    pub fn reconnect(&mut self, c: &Conn, cfg: &QpCfg) {
        self.nodes[c.a.node].reset_qp(c.a.qpn);
        self.nodes[c.b.node].reset_qp(c.b.qpn);
        let (pa, pb) = (self.next_psn, 0xFF_FFF0);
        self.next_psn = self.next_psn.wrapping_add(0x1234);
        let peer_b = Peer {
            qpn: c.b.qpn,
            mac: self.nodes[c.b.node].mac,
            ip: self.nodes[c.b.node].ip,
            psn: pb,
        };
        let peer_a = Peer {
            qpn: c.a.qpn,
            mac: self.nodes[c.a.node].mac,
            ip: self.nodes[c.a.node].ip,
            psn: pa,
        };
        self.nodes[c.a.node].connect_qp(c.a.qpn, pa, &peer_b, cfg);
        self.nodes[c.b.node].connect_qp(c.b.qpn, pb, &peer_a, cfg);
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
}

/// Expected value of a CQE, for readable assertions.
pub fn assert_cqe(c: &Cqe, wr_id: u64, opcode: u8, status: u8, what: &str) {
    assert_eq!(
        (c.wr_id, c.opcode, c.status),
        (wr_id, opcode, status),
        "{what}: unexpected CQE {c:?}"
    );
}

/// Asserts two byte strings are equal, reporting the first difference.
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{what}: first difference at byte {i} of {}: got {:#04x}, want {:#04x}",
            want.len(),
            got[i],
            want[i]
        );
    }
}
