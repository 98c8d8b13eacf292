//! A reference model of the device's object tables, built only from what the
//! driver was told: the admin commands the device consumed and the completions it
//! wrote (status, result 0/1). Used by the scripted driver in `script.rs` (so by the
//! `mmio` fuzz target and the property tests).
//!
//! The model follows `docs/device-spec.md`:
//!
//! * live PDs, CQs, QPs (with their RC state after `MODIFY_QP`), MRs (key, PD,
//!   state, kind, pages) and Ethernet queues, plus the Ethernet MAC / MTU / receive
//!   filter and the verbs port address;
//! * handle allocation order (§0.1: never-used handles ascending from 1, then the
//!   handle destroyed longest ago) and the MR key-byte rule (§6.1);
//! * device reset (`DEV_CTRL.RESET`, `ENABLE` 1→0, FLR) and `RESET_FUNCTION` empty it.
//!
//! [`Model::outcomes`] says which statuses a command may complete with given the
//! model (exactly one for most handle-level decisions: a dead handle is
//! `INVALID_HANDLE`, a PD with MRs or QPs is `BUSY`, ...); [`Model::on_completion`]
//! checks a completion against that and applies its effects; [`Model::check_host`]
//! compares the model with the tables the device reports host-side
//! (`Rnic::stats()`, the MR table, the Ethernet queues). Every disagreement is an
//! `Err` with a readable description.
//!
//! The device may change some state on its own, and the model accepts exactly that
//! ("drift"): a QP not in RESET may go to ERR (errors, doorbell overruns), and a
//! fast-register MR may change state, key byte and pages (`FAST_REG` / `LOCAL_INV`
//! WQEs).
//!
//! When the model cannot know what the device did (a fault rule that can corrupt or
//! lose admin traffic, admin rings the driver does not know, ...) the script
//! *taints* it ([`Model::taint`]); a tainted model checks nothing until the next
//! device reset makes it exact again (an empty device).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use rnic_device::verbs::mr::MrState;
use rnic_device::verbs::VerbsStats;
use rnic_device::Rnic;

/// Admin status codes (§3.4).
pub mod status {
    pub const SUCCESS: u16 = 0x00;
    pub const INVALID_OPCODE: u16 = 0x01;
    pub const INVALID_PARAM: u16 = 0x02;
    pub const NO_RESOURCES: u16 = 0x10;
    pub const INVALID_HANDLE: u16 = 0x11;
    pub const BUSY: u16 = 0x12;
    pub const INVALID_STATE: u16 = 0x13;
    pub const DMA_ERROR: u16 = 0x14;
    pub const ADDRESS_IN_USE: u16 = 0x17;

    /// A readable name.
    pub fn name(s: u16) -> String {
        match s {
            SUCCESS => "SUCCESS".into(),
            INVALID_OPCODE => "INVALID_OPCODE".into(),
            INVALID_PARAM => "INVALID_PARAM".into(),
            NO_RESOURCES => "NO_RESOURCES".into(),
            INVALID_HANDLE => "INVALID_HANDLE".into(),
            BUSY => "BUSY".into(),
            INVALID_STATE => "INVALID_STATE".into(),
            DMA_ERROR => "DMA_ERROR".into(),
            ADDRESS_IN_USE => "ADDRESS_IN_USE".into(),
            other => format!("{other:#x}"),
        }
    }
}

/// Admin opcodes (§3.5).
pub mod opc {
    pub const NOP: u8 = 0x00;
    pub const QUERY_DEVICE: u8 = 0x01;
    pub const SET_MTU: u8 = 0x02;
    pub const SET_MAC: u8 = 0x03;
    pub const SET_RX_FILTER: u8 = 0x04;
    pub const SET_MULTICAST: u8 = 0x05;
    pub const QUERY_LINK: u8 = 0x06;
    pub const GET_STATS: u8 = 0x07;
    pub const CLEAR_STATS: u8 = 0x08;
    pub const RESET_FUNCTION: u8 = 0x09;
    pub const QUERY_CAPS: u8 = 0x10;
    pub const CREATE_PD: u8 = 0x11;
    pub const DESTROY_PD: u8 = 0x12;
    pub const SET_PORT_ADDR: u8 = 0x13;
    pub const SET_PORT_ADDR6: u8 = 0x14;
    pub const CREATE_CQ: u8 = 0x18;
    pub const DESTROY_CQ: u8 = 0x19;
    pub const RESIZE_CQ: u8 = 0x1A;
    pub const MODIFY_CQ: u8 = 0x1B;
    pub const CREATE_QP: u8 = 0x20;
    pub const MODIFY_QP: u8 = 0x21;
    pub const QUERY_QP: u8 = 0x22;
    pub const DESTROY_QP: u8 = 0x23;
    pub const REG_MR: u8 = 0x28;
    pub const DEREG_MR: u8 = 0x29;
    pub const ALLOC_FR_MR: u8 = 0x2A;
    pub const QUERY_MR: u8 = 0x2B;
    /// The connection manager's commands (§3.14): `CM_LISTEN` .. `CM_RELEASE`.
    pub const CM_FIRST: u8 = 0x30;
    pub const CM_LISTEN: u8 = 0x30;
    pub const CM_UNLISTEN: u8 = 0x31;
    pub const CM_QUERY: u8 = 0x37;
    pub const CM_LAST: u8 = 0x38;
    pub const CREATE_TXQ: u8 = 0x40;
    pub const DESTROY_TXQ: u8 = 0x41;
    pub const CREATE_RXQ: u8 = 0x42;
    pub const DESTROY_RXQ: u8 = 0x43;

    /// A readable name.
    pub fn name(op: u8) -> String {
        let n = match op {
            NOP => "NOP",
            QUERY_DEVICE => "QUERY_DEVICE",
            SET_MTU => "SET_MTU",
            SET_MAC => "SET_MAC",
            SET_RX_FILTER => "SET_RX_FILTER",
            SET_MULTICAST => "SET_MULTICAST",
            QUERY_LINK => "QUERY_LINK",
            GET_STATS => "GET_STATS",
            CLEAR_STATS => "CLEAR_STATS",
            RESET_FUNCTION => "RESET_FUNCTION",
            QUERY_CAPS => "QUERY_CAPS",
            CREATE_PD => "CREATE_PD",
            DESTROY_PD => "DESTROY_PD",
            SET_PORT_ADDR => "SET_PORT_ADDR",
            SET_PORT_ADDR6 => "SET_PORT_ADDR6",
            CM_FIRST..=CM_LAST => "CM_*",
            CREATE_CQ => "CREATE_CQ",
            DESTROY_CQ => "DESTROY_CQ",
            RESIZE_CQ => "RESIZE_CQ",
            MODIFY_CQ => "MODIFY_CQ",
            CREATE_QP => "CREATE_QP",
            MODIFY_QP => "MODIFY_QP",
            QUERY_QP => "QUERY_QP",
            DESTROY_QP => "DESTROY_QP",
            REG_MR => "REG_MR",
            DEREG_MR => "DEREG_MR",
            ALLOC_FR_MR => "ALLOC_FR_MR",
            QUERY_MR => "QUERY_MR",
            CREATE_TXQ => "CREATE_TXQ",
            DESTROY_TXQ => "DESTROY_TXQ",
            CREATE_RXQ => "CREATE_RXQ",
            DESTROY_RXQ => "DESTROY_RXQ",
            _ => return format!("opcode {op:#04x}"),
        };
        n.to_string()
    }
}

/// `MODIFY_QP` attribute mask bits (§3.12).
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
    /// The IPv6 address vector: stands wherever `AV` may, never with it.
    pub const AV6: u32 = 1 << 11;
    /// The optional set *X* of §7.1.
    pub const X: u32 = ACCESS | TIMEOUT | RETRY_CNT | RNR_RETRY | MIN_RNR_TIMER;
}

/// QP states (§7.1).
pub mod qps {
    pub const RESET: u8 = 0;
    pub const INIT: u8 = 1;
    pub const RTR: u8 = 2;
    pub const RTS: u8 = 3;
    pub const SQD: u8 = 4;
    pub const SQE: u8 = 5;
    pub const ERR: u8 = 6;

    pub fn name(s: u8) -> &'static str {
        ["RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"]
            .get(s as usize)
            .copied()
            .unwrap_or("?")
    }
}

/// The allowed QP transitions of §7.1: `(required, optional)` attribute masks, or
/// `None` (`INVALID_STATE`).
pub fn transition(from: u8, to: u8) -> Option<(u32, u32)> {
    use attr::*;
    use qps::*;
    Some(match (from, to) {
        (_, RESET) | (_, ERR) if from <= ERR => (0, 0),
        (RESET, INIT) | (INIT, INIT) => (0, ACCESS),
        (INIT, RTR) => (DEST_QPN | RQ_PSN | AV | PATH_MTU, ACCESS | MIN_RNR_TIMER),
        (RTR, RTR) | (RTS, RTS) | (SQD, RTS) | (SQE, RTS) => (0, X),
        (RTR, RTS) => (
            SQ_PSN | TIMEOUT | RETRY_CNT | RNR_RETRY,
            ACCESS | MIN_RNR_TIMER,
        ),
        (RTS, SQD) | (SQD, SQD) => (0, 0),
        _ => return None,
    })
}

/// MR states as `QUERY_MR` reports them.
pub const MR_FREE: u8 = 1;
/// See [`MR_FREE`].
pub const MR_VALID: u8 = 2;

/// An admin command as the device reads it from the submission ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub opcode: u8,
    pub flags: u8,
    pub id: u16,
    pub reserved: u32,
    pub o: [u8; 56],
}

impl Cmd {
    /// A well-formed command (flags and reserved dword 0).
    pub fn new(opcode: u8, id: u16) -> Cmd {
        Cmd {
            opcode,
            flags: 0,
            id,
            reserved: 0,
            o: [0; 56],
        }
    }

    pub fn from_bytes(b: &[u8; 64]) -> Cmd {
        let mut o = [0u8; 56];
        o.copy_from_slice(&b[8..]);
        Cmd {
            opcode: b[0],
            flags: b[1],
            id: u16::from_le_bytes([b[2], b[3]]),
            reserved: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            o,
        }
    }

    pub fn to_bytes(self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = self.opcode;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.reserved.to_le_bytes());
        b[8..].copy_from_slice(&self.o);
        b
    }

    pub fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.o[at], self.o[at + 1]])
    }

    pub fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.o[at], self.o[at + 1], self.o[at + 2], self.o[at + 3]])
    }

    pub fn u64(&self, at: usize) -> u64 {
        u64::from(self.u32(at)) | (u64::from(self.u32(at + 4)) << 32)
    }

    pub fn put16(&mut self, at: usize, v: u16) -> &mut Self {
        self.o[at..at + 2].copy_from_slice(&v.to_le_bytes());
        self
    }

    pub fn put32(&mut self, at: usize, v: u32) -> &mut Self {
        self.o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    pub fn put64(&mut self, at: usize, v: u64) -> &mut Self {
        self.o[at..at + 8].copy_from_slice(&v.to_le_bytes());
        self
    }

    /// Guest memory the device writes while executing this command, or later on
    /// this command's behalf (CQ and Ethernet rings), when it succeeds: `(address,
    /// length)`. Used to notice commands that write over the driver's own rings.
    pub fn device_writes(&self) -> Option<(u64, u64)> {
        Some(match self.opcode {
            // QUERY_DEVICE writes the 96-byte extended record into a buffer that holds it.
            opc::QUERY_DEVICE if self.u32(8) >= 96 => (self.u64(0), 96),
            opc::QUERY_DEVICE | opc::QUERY_CAPS => (self.u64(0), 64),
            opc::GET_STATS => (self.u64(0), u64::from(self.u32(8)).min(4096)),
            opc::QUERY_QP | opc::QUERY_MR => (self.u64(8), 64),
            opc::CM_QUERY => (self.u64(8), u64::from(self.u32(4)).min(260)),
            opc::CREATE_CQ => (self.u64(0), u64::from(self.u32(8)) * 32),
            opc::RESIZE_CQ => (self.u64(8), u64::from(self.u32(16)) * 32),
            opc::CREATE_TXQ | opc::CREATE_RXQ => (self.u64(0), u64::from(self.u32(8)) * 16),
            _ => return None,
        })
    }
}

/// An admin completion (§3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpl {
    pub r0: u32,
    pub r1: u32,
    pub id: u16,
    pub sq_head: u16,
    pub status: u16,
    pub phase: bool,
}

impl Cpl {
    pub fn from_bytes(b: &[u8; 16]) -> Cpl {
        Cpl {
            r0: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            r1: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            id: u16::from_le_bytes([b[8], b[9]]),
            sq_head: u16::from_le_bytes([b[10], b[11]]),
            status: u16::from_le_bytes([b[12], b[13]]),
            phase: b[14] & 1 == 1,
        }
    }
}

/// The object kinds with device-allocated handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pd = 0,
    Cq = 1,
    Qp = 2,
    Mr = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        ["PDN", "CQN", "QPN", "MR index"][self as usize]
    }
}

/// §0.1 allocation order: never-used handles ascending from the first one (1; 2 for
/// QPNs, §3.12), then FIFO reuse.
#[derive(Clone, Debug)]
struct AllocModel {
    first: u32,
    max: u32,
    next_fresh: u64,
    freed: VecDeque<u32>,
}

impl AllocModel {
    /// Handles `first..=max`.
    fn new(first: u32, max: u32) -> Self {
        AllocModel {
            first,
            max,
            next_fresh: u64::from(first),
            freed: VecDeque::new(),
        }
    }
    fn peek(&self) -> Option<u32> {
        if self.next_fresh <= u64::from(self.max) {
            Some(self.next_fresh as u32)
        } else {
            self.freed.front().copied()
        }
    }
    fn take(&mut self) {
        if self.next_fresh <= u64::from(self.max) {
            self.next_fresh += 1;
        } else {
            self.freed.pop_front();
        }
    }
    fn free(&mut self, h: u32) {
        self.freed.push_back(h);
    }
    fn reset(&mut self) {
        *self = AllocModel::new(self.first, self.max);
    }
}

/// A QP as the driver knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpModel {
    pub pdn: u32,
    pub send_cqn: u32,
    pub recv_cqn: u32,
    pub state: u8,
    pub sq_size: u32,
    pub rq_size: u32,
    pub attrs: QpAttrs,
}

/// The `MODIFY_QP` attributes `QUERY_QP` reports back (not the PSNs: traffic moves
/// them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpAttrs {
    /// Path MTU code, retry count, RNR retry, timeout, access, min RNR timer
    /// (`QUERY_QP` bytes 9..15).
    pub bytes: [u8; 6],
    pub dest_qpn: u32,
    pub mac: [u8; 6],
    pub ip: [u8; 4],
}

impl QpAttrs {
    /// The defaults of §7.2 (at creation and after every transition to RESET).
    pub const DEFAULT: QpAttrs = QpAttrs {
        bytes: [1, 0, 0, 0, 0, 0],
        dest_qpn: 0,
        mac: [0; 6],
        ip: [0; 4],
    };

    /// The attributes after a successful `MODIFY_QP` `c` (mask bits set).
    fn apply(mut self, c: &Cmd) -> QpAttrs {
        use attr::*;
        let mask = c.u32(4);
        for (i, bit) in [
            PATH_MTU,
            RETRY_CNT,
            RNR_RETRY,
            TIMEOUT,
            ACCESS,
            MIN_RNR_TIMER,
        ]
        .into_iter()
        .enumerate()
        {
            if mask & bit != 0 {
                self.bytes[i] = c.o[9 + i];
            }
        }
        if mask & DEST_QPN != 0 {
            self.dest_qpn = c.u32(16);
        }
        if mask & AV != 0 {
            self.mac.copy_from_slice(&c.o[28..34]);
            self.ip.copy_from_slice(&c.o[36..40]);
        }
        self
    }

    /// The attributes in a `QUERY_QP` record.
    fn from_record(b: &[u8; 64]) -> QpAttrs {
        let mut a = QpAttrs::DEFAULT;
        a.bytes.copy_from_slice(&b[9..15]);
        a.dest_qpn = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        a.mac.copy_from_slice(&b[28..34]);
        a.ip.copy_from_slice(&b[36..40]);
        a
    }
}

/// An MR as the driver knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MrModel {
    pub key: u32,
    pub pdn: u32,
    pub fast_reg: bool,
    /// `ALLOC_FR_MR` max pages (0 for `REG_MR`).
    pub max_pages: u32,
    pub state: u8,
    /// Page entries held (the `REG_MR` count; fast-register MRs: while registered).
    pub pages: u64,
}

/// Device limits the model needs (from `Rnic::verbs().limits()`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_pd: u32,
    pub max_cq: u32,
    pub max_qp: u32,
    pub max_mr: u32,
    pub max_cqe: u32,
    pub max_qp_wr: u32,
    pub max_mr_pages: u32,
    pub max_total_pages: u64,
    pub num_vectors: u16,
    pub max_mtu_code: u8,
    pub min_page_shift: u8,
    pub max_page_shift: u8,
}

impl Limits {
    pub fn of(dev: &Rnic) -> Limits {
        let l = dev.verbs().limits();
        Limits {
            max_pd: l.max_pd,
            max_cq: l.max_cq,
            max_qp: l.max_qp,
            max_mr: l.max_mr,
            max_cqe: l.max_cqe,
            max_qp_wr: l.max_qp_wr,
            max_mr_pages: l.max_mr_pages,
            max_total_pages: l.max_total_pages,
            num_vectors: l.num_vectors,
            max_mtu_code: l.max_mtu_code,
            min_page_shift: l.min_page_shift,
            max_page_shift: l.max_page_shift,
        }
    }
}

/// Ethernet and port settings the model tracks (reported by `QUERY_DEVICE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mac: [u8; 6],
    pub mtu: u32,
    pub filter: u32,
    pub port_mac: [u8; 6],
    pub port_ip: [u8; 4],
    /// The port's IPv6 address (`SET_PORT_ADDR6`), if any.
    pub port_ipv6: Option<[u8; 16]>,
}

const MAX_SGE: u8 = 6;
const MAX_INLINE: u16 = 96;
const ETH_QUEUES: usize = 8;
const ETH_RING_MAX: u32 = 4096;
const MSIX_VECTORS: u16 = 16;
const GUEST_COUNTERS: u32 = 89;
const DEAD_KEEP: usize = 16;

/// The statuses a command may complete with, checked in the device's order: the
/// first deterministic failure ends the list; checks the model cannot decide (is a
/// ring in guest RAM, can a buffer be written) add their status as possible.
struct Outcomes {
    list: Vec<u16>,
    done: bool,
}

impl Outcomes {
    fn new() -> Self {
        Outcomes {
            list: Vec::new(),
            done: false,
        }
    }
    fn fail_if(&mut self, cond: bool, st: u16) -> &mut Self {
        if !self.done && cond {
            self.add(st);
            self.done = true;
        }
        self
    }
    fn maybe(&mut self, st: u16) -> &mut Self {
        if !self.done {
            self.add(st);
        }
        self
    }
    fn add(&mut self, st: u16) {
        if !self.list.contains(&st) {
            self.list.push(st);
        }
    }
    fn end(&mut self) -> Vec<u16> {
        if !self.done {
            self.add(status::SUCCESS);
        }
        std::mem::take(&mut self.list)
    }
    /// A ring operand as `CREATE_CQ` / `CREATE_QP` check it.
    fn ring(&mut self, base: u64, size: u32, entry: u64, max: u32, allow_zero: bool) -> &mut Self {
        if allow_zero && size == 0 {
            return self;
        }
        self.fail_if(
            size < 2 || !size.is_power_of_two() || !base.is_multiple_of(entry),
            status::INVALID_PARAM,
        )
        .fail_if(size > max, status::NO_RESOURCES)
        .maybe(status::INVALID_PARAM)
    }
}

/// `ceil((fbo + len) / 2^shift)`, 0 for an empty region (§3.13).
fn pages_needed(fbo: u64, len: u64, shift: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let total = u128::from(fbo) + u128::from(len);
    total.div_ceil(1u128 << shift)
}

/// The reference model. See the module documentation.
#[derive(Clone, Debug)]
pub struct Model {
    /// Whether the model knows the device's tables exactly (else nothing is checked).
    exact: bool,
    /// Why the model was last tainted.
    taint_reason: Option<String>,
    /// Whether command statuses follow the spec exactly (false while fault rules at
    /// `admin_command` may replace them).
    pub predict: bool,
    /// Whether the per-index "last key byte" memory is known (lost for good once
    /// the model was tainted: the device keeps it across resets).
    key_memory_known: bool,
    limits: Limits,
    defaults: Settings,
    pub settings: Settings,
    pds: BTreeSet<u32>,
    cqs: BTreeSet<u32>,
    qps: BTreeMap<u32, QpModel>,
    mrs: BTreeMap<u32, MrModel>,
    txq: [bool; ETH_QUEUES],
    rxq: [bool; ETH_QUEUES],
    alloc: [AllocModel; 4],
    last_key_byte: BTreeMap<u32, u8>,
    dead: [VecDeque<u32>; 4],
    /// Completions checked so far (for reports).
    pub completions: u64,
    /// Completions checked, by (opcode, status) (to see what a run exercised).
    pub seen: BTreeMap<(u8, u16), u32>,
}

impl Model {
    /// The model of a powered-on device (no objects).
    pub fn new(dev: &Rnic) -> Model {
        let limits = Limits::of(dev);
        let cfg = dev.config();
        let defaults = Settings {
            mac: cfg.mac.0,
            mtu: 1500,
            filter: 0x3,
            port_mac: cfg.mac.0,
            port_ip: cfg.ip.octets(),
            port_ipv6: cfg.ipv6.map(|a| a.octets()),
        };
        Model {
            exact: true,
            taint_reason: None,
            predict: true,
            key_memory_known: true,
            alloc: [
                AllocModel::new(1, limits.max_pd),
                AllocModel::new(1, limits.max_cq),
                // QPNs 0 and 1 are reserved (§3.12).
                AllocModel::new(2, limits.max_qp + 1),
                AllocModel::new(1, limits.max_mr),
            ],
            limits,
            defaults,
            settings: defaults,
            pds: BTreeSet::new(),
            cqs: BTreeSet::new(),
            qps: BTreeMap::new(),
            mrs: BTreeMap::new(),
            txq: [false; ETH_QUEUES],
            rxq: [false; ETH_QUEUES],
            last_key_byte: BTreeMap::new(),
            dead: Default::default(),
            completions: 0,
            seen: BTreeMap::new(),
        }
    }

    /// Whether the model currently knows the device's tables.
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// Stops checking until the next device reset: the model can no longer know
    /// what the device did.
    pub fn taint(&mut self, why: &str) {
        if self.exact {
            self.taint_reason = Some(why.to_string());
        }
        self.exact = false;
        self.key_memory_known = false;
    }

    /// Why the model is (or last was) tainted.
    pub fn taint_reason(&self) -> Option<&str> {
        self.taint_reason.as_deref()
    }

    /// A device reset (§13.1) or FLR: no objects, settings back to reset values.
    /// `can_be_exact` is false while something (a fault rule) keeps the model from
    /// following the device.
    pub fn device_reset(&mut self, can_be_exact: bool) {
        self.clear_objects();
        self.settings = self.defaults;
        self.exact = can_be_exact;
    }

    /// `RESET_FUNCTION` (§3.7): like a device reset for objects and settings.
    fn reset_function(&mut self) {
        self.clear_objects();
        self.settings = self.defaults;
    }

    fn clear_objects(&mut self) {
        for (&i, mr) in &self.mrs {
            self.last_key_byte.insert(i, mr.key as u8);
        }
        let live: [Vec<u32>; 4] = [
            self.pds.iter().copied().collect(),
            self.cqs.iter().copied().collect(),
            self.qps.keys().copied().collect(),
            self.mrs.keys().copied().collect(),
        ];
        for (k, hs) in live.into_iter().enumerate() {
            for h in hs {
                self.remember_dead(k, h);
            }
        }
        self.pds.clear();
        self.cqs.clear();
        self.qps.clear();
        self.mrs.clear();
        self.txq = [false; ETH_QUEUES];
        self.rxq = [false; ETH_QUEUES];
        // The implementation restarts handle allocation at 1 after RESET_FUNCTION as
        // after a device reset (see the report on §0.1's wording).
        for a in &mut self.alloc {
            a.reset();
        }
    }

    fn remember_dead(&mut self, kind: usize, h: u32) {
        let d = &mut self.dead[kind];
        d.retain(|&x| x != h);
        d.push_back(h);
        if d.len() > DEAD_KEEP {
            d.pop_front();
        }
    }

    fn forget_dead(&mut self, kind: Kind, h: u32) {
        self.dead[kind as usize].retain(|&x| x != h);
    }

    // ---- picking handles for generated commands ---------------------------------

    /// Live handles of a kind, ascending (MRs: their keys).
    pub fn live(&self, kind: Kind) -> Vec<u32> {
        match kind {
            Kind::Pd => self.pds.iter().copied().collect(),
            Kind::Cq => self.cqs.iter().copied().collect(),
            Kind::Qp => self.qps.keys().copied().collect(),
            Kind::Mr => self.mrs.values().map(|m| m.key).collect(),
        }
    }

    /// Handles destroyed since they were last live (MRs: the key they had).
    pub fn dead(&self, kind: Kind) -> Vec<u32> {
        self.dead[kind as usize]
            .iter()
            .map(|&h| match kind {
                Kind::Mr => (h << 8) | u32::from(*self.last_key_byte.get(&h).unwrap_or(&0)),
                _ => h,
            })
            .collect()
    }

    /// A handle for a generated command: mostly a live one, sometimes a dead one,
    /// 0, or one that was never handed out.
    pub fn pick(&self, kind: Kind, sel: u16) -> u32 {
        let live = self.live(kind);
        let dead = self.dead(kind);
        let idx = usize::from(sel >> 4);
        match sel % 16 {
            0 if !dead.is_empty() => dead[idx % dead.len()],
            1 if sel & 0x10 == 0 => 0,
            1 => {
                // The highest valid handle (QPNs start at 2, §3.12).
                let max = [
                    self.limits.max_pd,
                    self.limits.max_cq,
                    self.limits.max_qp + 1,
                    self.limits.max_mr,
                ][kind as usize];
                let h = if sel & 0x20 != 0 {
                    max + 1
                } else {
                    1 + idx as u32 % 64
                };
                if kind == Kind::Mr {
                    h << 8
                } else {
                    h
                }
            }
            _ if !live.is_empty() => live[idx % live.len()],
            _ => 1 + idx as u32 % 4,
        }
    }

    /// The model's state of QP `qpn`, if live.
    pub fn qp(&self, qpn: u32) -> Option<QpModel> {
        self.qps.get(&qpn).copied()
    }

    /// The model's MR at `index`, if live.
    pub fn mr(&self, index: u32) -> Option<MrModel> {
        self.mrs.get(&index).copied()
    }

    /// Whether Ethernet queue `q` exists (`rx` selects the direction).
    pub fn eth_queue(&self, rx: bool, q: usize) -> bool {
        let t = if rx { &self.rxq } else { &self.txq };
        t.get(q).copied().unwrap_or(false)
    }

    fn mr_pages_total(&self) -> u64 {
        self.mrs.values().map(|m| m.pages).sum()
    }

    /// Whether MRs or QPs name PD `pdn`.
    pub fn pd_busy(&self, pdn: u32) -> bool {
        self.mrs.values().any(|m| m.pdn == pdn) || self.qps.values().any(|q| q.pdn == pdn)
    }

    /// Live PDs that no MR or QP names, ascending ([`Model::pd_busy`] of every
    /// PD, in one pass over the MRs and QPs).
    pub fn unused_pds(&self) -> Vec<u32> {
        let busy: BTreeSet<u32> = self
            .mrs
            .values()
            .map(|m| m.pdn)
            .chain(self.qps.values().map(|q| q.pdn))
            .collect();
        self.pds.difference(&busy).copied().collect()
    }

    fn cq_busy(&self, cqn: u32) -> bool {
        self.qps
            .values()
            .any(|q| q.send_cqn == cqn || q.recv_cqn == cqn)
    }

    /// The device may move a QP to ERR on its own unless it is in RESET.
    fn may_drift_to_err(state: u8) -> bool {
        state != qps::RESET && state != qps::ERR
    }

    // ---- what a command may complete with --------------------------------------

    /// `MODIFY_QP` outcomes when the QP is in `from`: the statuses, and the state
    /// after a success.
    fn modify_outcomes(&self, c: &Cmd, from: u8) -> (Vec<u16>, u8) {
        use attr::*;
        let mask = c.u32(4);
        let to = if mask & STATE != 0 { c.o[8] } else { from };
        let mut o = Outcomes::new();
        o.fail_if(mask >> 12 != 0 || to > qps::ERR, status::INVALID_PARAM);
        let t = transition(from, to);
        o.fail_if(t.is_none(), status::INVALID_STATE);
        let (req, opt) = t.unwrap_or((0, 0));
        let attrs = mask & !STATE;
        let as_table = if attrs & AV6 != 0 {
            (attrs & !AV6) | AV
        } else {
            attrs
        };
        o.fail_if(
            as_table & req != req || as_table & !(req | opt) != 0 || attrs & (AV | AV6) == AV | AV6,
            status::INVALID_PARAM,
        );
        let has = |b: u32| attrs & b != 0;
        let bad = (has(PATH_MTU) && !(1..=self.limits.max_mtu_code).contains(&c.o[9]))
            || (has(RETRY_CNT) && c.o[10] > 7)
            || (has(RNR_RETRY) && c.o[11] > 7)
            || (has(TIMEOUT) && c.o[12] > 31)
            || (has(ACCESS) && c.o[13] & !0x6 != 0)
            || (has(MIN_RNR_TIMER) && c.o[14] > 31)
            || (has(DEST_QPN) && c.u32(16) >= 1 << 24)
            || (has(SQ_PSN) && c.u32(20) >= 1 << 24)
            || (has(RQ_PSN) && c.u32(24) >= 1 << 24)
            || (has(AV6) && self.settings.port_ipv6.is_none());
        o.fail_if(bad, status::INVALID_PARAM);
        (o.end(), to)
    }

    /// The statuses `c` may complete with, given the model (before its effects).
    pub fn outcomes(&self, c: &Cmd) -> Vec<u16> {
        use status::*;
        let mut o = Outcomes::new();
        if c.flags != 0 || c.reserved != 0 {
            return vec![INVALID_PARAM];
        }
        match c.opcode {
            opc::NOP | opc::QUERY_LINK | opc::CLEAR_STATS | opc::RESET_FUNCTION => {}
            opc::QUERY_DEVICE => {
                o.fail_if(c.u32(8) < 64, INVALID_PARAM).maybe(DMA_ERROR);
            }
            opc::SET_MTU => {
                o.fail_if(!(68..=9000).contains(&c.u32(0)), INVALID_PARAM);
            }
            opc::SET_MAC => {
                o.fail_if(c.o[0] & 1 != 0 || c.o[..6] == [0; 6], INVALID_PARAM);
            }
            opc::SET_RX_FILTER => {
                o.fail_if(c.u32(0) & !0x1F != 0, INVALID_PARAM);
            }
            opc::SET_MULTICAST => {
                let n = c.u32(0);
                o.fail_if(n > 64, INVALID_PARAM);
                if n > 0 {
                    o.maybe(DMA_ERROR).maybe(INVALID_PARAM);
                }
            }
            opc::GET_STATS => {
                o.fail_if(c.u32(8) < 8, INVALID_PARAM).maybe(DMA_ERROR);
            }
            opc::QUERY_CAPS => {
                o.maybe(DMA_ERROR);
            }
            opc::CREATE_PD => {
                o.fail_if(self.pds.len() as u32 >= self.limits.max_pd, NO_RESOURCES);
            }
            opc::DESTROY_PD => {
                let pdn = c.u32(0);
                o.fail_if(!self.pds.contains(&pdn), INVALID_HANDLE)
                    .fail_if(self.pd_busy(pdn), BUSY);
            }
            opc::SET_PORT_ADDR => {
                o.fail_if(c.o[0] & 1 != 0, INVALID_PARAM);
            }
            opc::CREATE_CQ => {
                o.ring(c.u64(0), c.u32(8), 32, self.limits.max_cqe, false)
                    .fail_if(c.u16(12) >= self.limits.num_vectors, INVALID_PARAM)
                    .fail_if(self.cqs.len() as u32 >= self.limits.max_cq, NO_RESOURCES);
            }
            opc::DESTROY_CQ => {
                let cqn = c.u32(0);
                o.fail_if(!self.cqs.contains(&cqn), INVALID_HANDLE)
                    .fail_if(self.cq_busy(cqn), BUSY);
            }
            opc::RESIZE_CQ => {
                o.fail_if(!self.cqs.contains(&c.u32(0)), INVALID_HANDLE)
                    .ring(c.u64(8), c.u32(16), 32, self.limits.max_cqe, false)
                    .maybe(INVALID_PARAM)
                    .maybe(DMA_ERROR);
            }
            opc::MODIFY_CQ => {
                o.fail_if(!self.cqs.contains(&c.u32(0)), INVALID_HANDLE);
            }
            opc::CREATE_QP => {
                let dead = !self.pds.contains(&c.u32(0))
                    || !self.cqs.contains(&c.u32(4))
                    || !self.cqs.contains(&c.u32(8));
                o.fail_if(c.o[40] != 0 || c.o[41] & !1 != 0, INVALID_PARAM)
                    .fail_if(dead, INVALID_HANDLE)
                    .fail_if(
                        c.o[36] > MAX_SGE || c.o[37] > MAX_SGE || c.u16(38) > MAX_INLINE,
                        INVALID_PARAM,
                    )
                    .ring(c.u64(20), c.u32(12), 128, self.limits.max_qp_wr, false)
                    .ring(c.u64(28), c.u32(16), 128, self.limits.max_qp_wr, true)
                    .fail_if(self.qps.len() as u32 >= self.limits.max_qp, NO_RESOURCES);
            }
            opc::MODIFY_QP => {
                let Some(q) = self.qps.get(&c.u32(0)) else {
                    return vec![INVALID_HANDLE];
                };
                let (mut list, _) = self.modify_outcomes(c, q.state);
                if Self::may_drift_to_err(q.state) {
                    for s in self.modify_outcomes(c, qps::ERR).0 {
                        if !list.contains(&s) {
                            list.push(s);
                        }
                    }
                }
                return list;
            }
            opc::QUERY_QP => {
                o.fail_if(!self.qps.contains_key(&c.u32(0)), INVALID_HANDLE)
                    .maybe(DMA_ERROR);
            }
            opc::DESTROY_QP => {
                o.fail_if(!self.qps.contains_key(&c.u32(0)), INVALID_HANDLE);
            }
            opc::REG_MR => {
                let acc = c.u32(4);
                let (iova, len, count, fbo, shift) =
                    (c.u64(8), c.u64(16), c.u32(32), c.u32(36), c.o[40]);
                let l = &self.limits;
                let bad = acc & !0xF != 0
                    || (acc & 4 != 0 && acc & 1 == 0)
                    || shift < l.min_page_shift
                    || shift > l.max_page_shift
                    || u64::from(fbo) >= 1u64 << shift
                    || iova.checked_add(len).is_none()
                    || pages_needed(u64::from(fbo), len, shift) != u128::from(count);
                o.fail_if(!self.pds.contains(&c.u32(0)), INVALID_HANDLE)
                    .fail_if(bad, INVALID_PARAM)
                    .fail_if(
                        count > l.max_mr_pages
                            || self.mr_pages_total() + u64::from(count) > l.max_total_pages,
                        NO_RESOURCES,
                    )
                    .fail_if(self.mrs.len() as u32 >= l.max_mr, NO_RESOURCES)
                    .maybe(DMA_ERROR)
                    .maybe(INVALID_PARAM);
            }
            opc::DEREG_MR => {
                o.fail_if(!self.mrs.contains_key(&(c.u32(0) >> 8)), INVALID_HANDLE);
            }
            opc::ALLOC_FR_MR => {
                let maxp = c.u32(4);
                o.fail_if(!self.pds.contains(&c.u32(0)), INVALID_HANDLE)
                    .fail_if(maxp == 0 || maxp > self.limits.max_mr_pages, INVALID_PARAM)
                    .fail_if(self.mrs.len() as u32 >= self.limits.max_mr, NO_RESOURCES);
            }
            opc::QUERY_MR => {
                o.fail_if(!self.mrs.contains_key(&(c.u32(0) >> 8)), INVALID_HANDLE)
                    .maybe(DMA_ERROR);
            }
            opc::CREATE_TXQ | opc::CREATE_RXQ => {
                let (q, vec, size, base) = (c.u16(14), c.u16(12), c.u32(8), c.u64(0));
                let bad = usize::from(q) >= ETH_QUEUES
                    || vec >= MSIX_VECTORS
                    || !(2..=ETH_RING_MAX).contains(&size)
                    || !size.is_power_of_two()
                    || !base.is_multiple_of(16);
                o.fail_if(bad, INVALID_PARAM).maybe(INVALID_PARAM).fail_if(
                    self.eth_queue(c.opcode == opc::CREATE_RXQ, usize::from(q)),
                    BUSY,
                );
            }
            opc::DESTROY_TXQ | opc::DESTROY_RXQ => {
                let q = c.u32(0) as usize;
                o.fail_if(
                    !self.eth_queue(c.opcode == opc::DESTROY_RXQ, q),
                    INVALID_HANDLE,
                );
            }
            opc::SET_PORT_ADDR6 => {
                o.fail_if(c.o[0] == 0xFF, INVALID_PARAM);
            }
            // The connection manager (§3.14) is checked by its own tests; the model
            // does not follow connections, so any defined status may come back.
            opc::CM_FIRST..=opc::CM_LAST => {
                return vec![
                    SUCCESS,
                    INVALID_PARAM,
                    NO_RESOURCES,
                    INVALID_HANDLE,
                    BUSY,
                    INVALID_STATE,
                    DMA_ERROR,
                    ADDRESS_IN_USE,
                ];
            }
            _ => return vec![INVALID_OPCODE],
        }
        o.end()
    }

    // ---- completions ----------------------------------------------------------

    /// Checks one completion of command `c` and applies its effects. `buf` is the
    /// output buffer of a `QUERY_QP` / `QUERY_MR` / `QUERY_DEVICE` when the caller
    /// could read it right after the command (it then must match the model).
    pub fn on_completion(
        &mut self,
        c: &Cmd,
        cpl: &Cpl,
        buf: Option<&[u8; 64]>,
    ) -> Result<(), String> {
        if !self.exact {
            return Ok(());
        }
        self.completions += 1;
        *self.seen.entry((c.opcode, cpl.status)).or_insert(0) += 1;
        let what = || {
            format!(
                "{} (id {:#06x}, operands {})",
                opc::name(c.opcode),
                c.id,
                hex(&c.o[..48])
            )
        };
        if cpl.id != c.id {
            return Err(format!(
                "completion id {:#06x} does not match the command it completes: {}",
                cpl.id,
                what()
            ));
        }
        if self.predict {
            let allowed = self.outcomes(c);
            if !allowed.contains(&cpl.status) {
                let names: Vec<String> = allowed.iter().map(|&s| status::name(s)).collect();
                return Err(format!(
                    "{} completed with {} but the model allows only {}",
                    what(),
                    status::name(cpl.status),
                    names.join(" or ")
                ));
            }
        }
        if cpl.status != status::SUCCESS {
            if cpl.r0 != 0 || cpl.r1 != 0 {
                return Err(format!(
                    "{} failed with {} but returned results {:#x}/{:#x} (a failed command has results 0 and 0)",
                    what(),
                    status::name(cpl.status),
                    cpl.r0,
                    cpl.r1
                ));
            }
            return Ok(());
        }
        self.apply_success(c, cpl, buf)
            .map_err(|e| format!("{}: {e}", what()))
    }

    fn expect_results(cpl: &Cpl, r0: u32, r1: u32) -> Result<(), String> {
        if (cpl.r0, cpl.r1) != (r0, r1) {
            return Err(format!(
                "results {:#x}/{:#x}, expected {r0:#x}/{r1:#x}",
                cpl.r0, cpl.r1
            ));
        }
        Ok(())
    }

    /// A new handle of `kind`: not live, and the one §0.1's order hands out next.
    fn new_handle(&mut self, kind: Kind, h: u32, live: bool) -> Result<(), String> {
        if h == 0 {
            return Err(format!("{} 0 returned", kind.name()));
        }
        if live {
            return Err(format!(
                "{} {h} returned again while it is still live",
                kind.name()
            ));
        }
        let a = &mut self.alloc[kind as usize];
        match a.peek() {
            Some(want) if want == h => a.take(),
            want => {
                return Err(format!(
                    "{} {h} handed out, but the allocation order of §0.1 gives {want:?} next",
                    kind.name()
                ))
            }
        }
        self.forget_dead(kind, h);
        Ok(())
    }

    fn drop_handle(&mut self, kind: Kind, h: u32) {
        self.alloc[kind as usize].free(h);
        self.remember_dead(kind as usize, h);
    }

    fn apply_success(&mut self, c: &Cmd, cpl: &Cpl, buf: Option<&[u8; 64]>) -> Result<(), String> {
        match c.opcode {
            opc::NOP => Self::expect_results(cpl, 0x4E4F_5000, 0)?,
            opc::QUERY_DEVICE => {
                let written = if c.u32(8) >= 96 { 96 } else { 64 };
                Self::expect_results(cpl, written, 0)?;
                if let Some(b) = buf {
                    self.check_device_record(b)?;
                }
            }
            opc::SET_MTU => {
                Self::expect_results(cpl, 0, 0)?;
                self.settings.mtu = c.u32(0);
            }
            opc::SET_MAC => {
                Self::expect_results(cpl, 0, 0)?;
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&c.o[..6]);
                self.settings.mac = mac;
                self.settings.port_mac = mac;
            }
            opc::SET_RX_FILTER => {
                Self::expect_results(cpl, 0, 0)?;
                self.settings.filter = c.u32(0);
            }
            opc::SET_MULTICAST | opc::CLEAR_STATS => Self::expect_results(cpl, 0, 0)?,
            opc::SET_PORT_ADDR6 => {
                Self::expect_results(cpl, 0, 0)?;
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&c.o[..16]);
                self.settings.port_ipv6 = (ip != [0; 16]).then_some(ip);
            }
            // Listeners touch no object the model tracks; other connection-manager
            // commands move QPs on their own from now on (connect, accept, timers).
            opc::CM_LISTEN | opc::CM_UNLISTEN | opc::CM_QUERY => {}
            opc::CM_FIRST..=opc::CM_LAST => {
                self.taint("a connection-manager command moves QPs the model does not follow")
            }
            opc::QUERY_LINK => match cpl.r0 {
                1 => Self::expect_results(cpl, 1, 100_000)?,
                _ => Self::expect_results(cpl, 0, 0)?,
            },
            opc::GET_STATS => {
                // 89 counters in version 1; later versions only append (§14.1).
                if cpl.r1 < GUEST_COUNTERS {
                    return Err(format!(
                        "{} counters available, version 1 has {GUEST_COUNTERS}",
                        cpl.r1
                    ));
                }
                let total = 8 + 8 * u64::from(cpl.r1);
                let len = u64::from(c.u32(8)).min(total);
                Self::expect_results(cpl, (8 + (len - 8) / 8 * 8) as u32, cpl.r1)?;
            }
            opc::RESET_FUNCTION => {
                Self::expect_results(cpl, 0, 0)?;
                self.reset_function();
            }
            opc::QUERY_CAPS => Self::expect_results(cpl, 64, 0)?,
            opc::CREATE_PD => {
                let h = cpl.r0;
                Self::expect_results(cpl, h, 0)?;
                self.new_handle(Kind::Pd, h, self.pds.contains(&h))?;
                self.pds.insert(h);
            }
            opc::DESTROY_PD => {
                Self::expect_results(cpl, 0, 0)?;
                let pdn = c.u32(0);
                if !self.pds.contains(&pdn) {
                    return Err(format!("destroyed PD {pdn}, which is not live"));
                }
                if self.pd_busy(pdn) {
                    return Err(format!(
                        "destroyed PD {pdn} although MRs or QPs still name it (must be BUSY)"
                    ));
                }
                self.pds.remove(&pdn);
                self.drop_handle(Kind::Pd, pdn);
            }
            opc::SET_PORT_ADDR => {
                Self::expect_results(cpl, 0, 0)?;
                self.settings.port_mac.copy_from_slice(&c.o[..6]);
                self.settings.port_ip.copy_from_slice(&c.o[8..12]);
            }
            opc::CREATE_CQ => {
                let h = cpl.r0;
                Self::expect_results(cpl, h, 0)?;
                self.new_handle(Kind::Cq, h, self.cqs.contains(&h))?;
                self.cqs.insert(h);
            }
            opc::DESTROY_CQ => {
                Self::expect_results(cpl, 0, 0)?;
                let cqn = c.u32(0);
                if !self.cqs.contains(&cqn) {
                    return Err(format!("destroyed CQ {cqn}, which is not live"));
                }
                if self.cq_busy(cqn) {
                    return Err(format!(
                        "destroyed CQ {cqn} although a QP still names it (must be BUSY)"
                    ));
                }
                self.cqs.remove(&cqn);
                self.drop_handle(Kind::Cq, cqn);
            }
            opc::RESIZE_CQ | opc::MODIFY_CQ => {
                let cqn = c.u32(0);
                if !self.cqs.contains(&cqn) {
                    return Err(format!("succeeded on CQ {cqn}, which is not live"));
                }
                if c.opcode == opc::MODIFY_CQ {
                    Self::expect_results(cpl, 0, 0)?;
                } else {
                    Self::expect_results(cpl, cpl.r0, 0)?;
                }
            }
            opc::CREATE_QP => {
                let h = cpl.r0;
                Self::expect_results(cpl, h, 0)?;
                let q = QpModel {
                    pdn: c.u32(0),
                    send_cqn: c.u32(4),
                    recv_cqn: c.u32(8),
                    state: qps::RESET,
                    sq_size: c.u32(12),
                    rq_size: c.u32(16),
                    attrs: QpAttrs::DEFAULT,
                };
                for (what, ok) in [
                    ("PD", self.pds.contains(&q.pdn)),
                    ("send CQ", self.cqs.contains(&q.send_cqn)),
                    ("receive CQ", self.cqs.contains(&q.recv_cqn)),
                ] {
                    if !ok {
                        return Err(format!("created QP {h} on a {what} that is not live"));
                    }
                }
                self.new_handle(Kind::Qp, h, self.qps.contains_key(&h))?;
                self.qps.insert(h, q);
            }
            opc::MODIFY_QP => {
                Self::expect_results(cpl, 0, 0)?;
                let qpn = c.u32(0);
                let Some(q) = self.qps.get(&qpn).copied() else {
                    return Err(format!("modified QP {qpn}, which is not live"));
                };
                let (ok, to) = self.modify_outcomes(c, q.state);
                let to = if ok.contains(&status::SUCCESS) {
                    to
                } else {
                    let (ok_err, to_err) = self.modify_outcomes(c, qps::ERR);
                    if Self::may_drift_to_err(q.state) && ok_err.contains(&status::SUCCESS) {
                        to_err
                    } else {
                        return Err(format!(
                            "QP {qpn} in {} accepted a transition §7.1 does not allow (mask {:#x}, new state {})",
                            qps::name(q.state),
                            c.u32(4),
                            c.o[8]
                        ));
                    }
                };
                if let Some(m) = self.qps.get_mut(&qpn) {
                    m.state = to;
                    m.attrs = if to == qps::RESET {
                        QpAttrs::DEFAULT
                    } else {
                        m.attrs.apply(c)
                    };
                }
            }
            opc::QUERY_QP => {
                let qpn = c.u32(0);
                let Some(q) = self.qps.get(&qpn).copied() else {
                    return Err(format!("queried QP {qpn}, which is not live"));
                };
                let state = self.learn_qp_state(qpn, q, cpl.r0 as u8, "QUERY_QP result 0")?;
                Self::expect_results(cpl, u32::from(state), 0)?;
                if let Some(b) = buf {
                    let rd =
                        |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                    let got = (rd(0), rd(4), b[8], rd(40), rd(44), rd(48), rd(52));
                    let want = (
                        qpn, q.pdn, state, q.send_cqn, q.recv_cqn, q.sq_size, q.rq_size,
                    );
                    if got != want {
                        return Err(format!(
                            "QUERY_QP record (QPN, PDN, state, send CQN, receive CQN, SQ, RQ entries) = {got:?}, model {want:?}"
                        ));
                    }
                    let attrs = QpAttrs::from_record(b);
                    if attrs != q.attrs || b[15] != 0 || b[34..36] != [0, 0] {
                        return Err(format!(
                            "QUERY_QP attributes {attrs:x?} (reserved bytes 15, 34..36: {:x?}), model {:x?} (MODIFY_QP successes since creation, defaults after RESET)",
                            [b[15], b[34], b[35]],
                            q.attrs
                        ));
                    }
                }
            }
            opc::DESTROY_QP => {
                Self::expect_results(cpl, 0, 0)?;
                let qpn = c.u32(0);
                if self.qps.remove(&qpn).is_none() {
                    return Err(format!("destroyed QP {qpn}, which is not live"));
                }
                self.drop_handle(Kind::Qp, qpn);
            }
            opc::REG_MR | opc::ALLOC_FR_MR => {
                let fast_reg = c.opcode == opc::ALLOC_FR_MR;
                let (key, index) = (cpl.r0, cpl.r1);
                if key >> 8 != index {
                    return Err(format!(
                        "key {key:#x} does not carry index {index} in bits 31:8"
                    ));
                }
                let pdn = c.u32(0);
                if !self.pds.contains(&pdn) {
                    return Err(format!(
                        "registered MR {index} on PD {pdn}, which is not live"
                    ));
                }
                let wanted = if fast_reg { c.o[8] } else { c.o[41] };
                let kb = key as u8;
                if self.key_memory_known {
                    let last = self.last_key_byte.get(&index).copied();
                    let want = if last == Some(wanted) {
                        wanted.wrapping_add(1)
                    } else {
                        wanted
                    };
                    if kb != want {
                        return Err(format!(
                            "key byte {kb:#04x} for index {index}: asked {wanted:#04x}, the index last carried {last:?}, so §6.1 gives {want:#04x}"
                        ));
                    }
                } else if kb != wanted && kb != wanted.wrapping_add(1) {
                    return Err(format!(
                        "key byte {kb:#04x}: asked {wanted:#04x} (§6.1 allows it or the next byte)"
                    ));
                }
                self.new_handle(Kind::Mr, index, self.mrs.contains_key(&index))?;
                self.mrs.insert(
                    index,
                    MrModel {
                        key,
                        pdn,
                        fast_reg,
                        max_pages: if fast_reg { c.u32(4) } else { 0 },
                        state: if fast_reg { MR_FREE } else { MR_VALID },
                        pages: if fast_reg { 0 } else { u64::from(c.u32(32)) },
                    },
                );
            }
            opc::DEREG_MR => {
                Self::expect_results(cpl, 0, 0)?;
                let index = c.u32(0) >> 8;
                let Some(m) = self.mrs.remove(&index) else {
                    return Err(format!("deregistered MR index {index}, which is not live"));
                };
                self.last_key_byte.insert(index, m.key as u8);
                self.drop_handle(Kind::Mr, index);
            }
            opc::QUERY_MR => {
                let index = c.u32(0) >> 8;
                let Some(m) = self.mrs.get(&index).copied() else {
                    return Err(format!("queried MR index {index}, which is not live"));
                };
                let state = cpl.r0 as u8;
                if state != m.state && !(m.fast_reg && (state == MR_FREE || state == MR_VALID)) {
                    return Err(format!(
                        "QUERY_MR of index {index} reports state {state}, model {}",
                        m.state
                    ));
                }
                Self::expect_results(cpl, u32::from(state), 0)?;
                if let Some(b) = buf {
                    let rd =
                        |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                    let key_ok = if m.fast_reg {
                        rd(0) >> 8 == index
                    } else {
                        rd(0) == m.key
                    };
                    let got = (rd(4), b[12], b[13] == 1, rd(40));
                    let want = (m.pdn, state, m.fast_reg, m.max_pages);
                    if !key_ok || got != want || b[13] > 1 {
                        return Err(format!(
                            "QUERY_MR record: key {:#x}, (PDN, state, fast-register, max pages) = {got:?}; model key {:#x}, {want:?}",
                            rd(0),
                            m.key
                        ));
                    }
                    if !m.fast_reg && u64::from(rd(32)) != m.pages {
                        return Err(format!("QUERY_MR page count {}, model {}", rd(32), m.pages));
                    }
                }
            }
            opc::CREATE_TXQ | opc::CREATE_RXQ => {
                let rx = c.opcode == opc::CREATE_RXQ;
                let q = c.u16(14);
                Self::expect_results(cpl, u32::from(q), 0)?;
                let t = if rx { &mut self.rxq } else { &mut self.txq };
                match t.get_mut(usize::from(q)) {
                    Some(slot) if !*slot => *slot = true,
                    _ => {
                        return Err(format!(
                            "created Ethernet {} queue {q}, which exists or is out of range",
                            if rx { "RX" } else { "TX" }
                        ))
                    }
                }
            }
            opc::DESTROY_TXQ | opc::DESTROY_RXQ => {
                Self::expect_results(cpl, 0, 0)?;
                let rx = c.opcode == opc::DESTROY_RXQ;
                let q = c.u32(0) as usize;
                let t = if rx { &mut self.rxq } else { &mut self.txq };
                match t.get_mut(q) {
                    Some(slot) if *slot => *slot = false,
                    _ => {
                        return Err(format!(
                            "destroyed Ethernet queue {q}, which does not exist"
                        ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "opcode {other:#04x} is undefined but completed with SUCCESS"
                ))
            }
        }
        Ok(())
    }

    /// QP `qpn`'s state as the device reports it: equal to the model's, or ERR
    /// reached on the device's own (then the model learns it).
    fn learn_qp_state(&mut self, qpn: u32, q: QpModel, dev: u8, src: &str) -> Result<u8, String> {
        if dev == q.state {
            return Ok(dev);
        }
        if dev == qps::ERR && Self::may_drift_to_err(q.state) {
            if let Some(m) = self.qps.get_mut(&qpn) {
                m.state = qps::ERR;
            }
            return Ok(dev);
        }
        Err(format!(
            "QP {qpn}: {src} is {} but the driver left it in {}",
            qps::name(dev),
            qps::name(q.state)
        ))
    }

    fn check_device_record(&self, b: &[u8; 64]) -> Result<(), String> {
        let rd = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let rd16 = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let s = &self.settings;
        let checks: [(&str, u64, u64); 17] = [
            ("VERSION", rd(0).into(), 0x0001_0000),
            ("CAPS", rd(4).into(), 0x1F),
            ("MAC", mac_u64(&b[8..14]), mac_u64(&s.mac)),
            ("MTU", rd(16).into(), s.mtu.into()),
            ("min MTU", rd(20).into(), 68),
            ("max MTU", rd(24).into(), 9000),
            ("TX queues", rd16(28).into(), ETH_QUEUES as u64),
            ("RX queues", rd16(30).into(), ETH_QUEUES as u64),
            ("largest Ethernet ring", rd(32).into(), ETH_RING_MAX.into()),
            ("MSI-X vectors", rd16(36).into(), MSIX_VECTORS.into()),
            ("largest admin ring", rd(40).into(), 4096),
            ("largest event ring", rd(44).into(), 4096),
            ("link speed", rd(48).into(), 100_000),
            ("largest multicast list", rd(52).into(), 64),
            ("receive filter", rd(56).into(), s.filter.into()),
            (
                "port IPv4",
                u64::from(u32::from_be_bytes([b[60], b[61], b[62], b[63]])),
                u64::from(u32::from_be_bytes(s.port_ip)),
            ),
            (
                "reserved bytes 14, 38",
                u64::from(rd16(14)) | u64::from(rd16(38)) << 16,
                0,
            ),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(format!(
                    "QUERY_DEVICE record field {name} = {got:#x}, model {want:#x}"
                ));
            }
        }
        Ok(())
    }

    // ---- host-side comparison ---------------------------------------------------

    /// Compares the model with the tables the device reports host-side, learning
    /// the changes the device may make on its own (see the module documentation).
    pub fn check_host(&mut self, dev: &Rnic, v: &VerbsStats) -> Result<(), String> {
        if !self.exact {
            return Ok(());
        }
        if v.pds as usize != self.pds.len() {
            return Err(format!(
                "the device holds {} PDs, the driver was told of {}: {:?}",
                v.pds,
                self.pds.len(),
                self.pds
            ));
        }
        // The device lists its objects by ascending handle, as the model's sets
        // iterate, so equal lists are compared without building sets (which the
        // failure path still does, to say it plainly whatever the order).
        if !v.cqs.iter().map(|c| c.cqn).eq(self.cqs.iter().copied()) {
            let dev_cqs: BTreeSet<u32> = v.cqs.iter().map(|c| c.cqn).collect();
            if dev_cqs != self.cqs || v.cqs.len() != self.cqs.len() {
                return Err(format!(
                    "the device's CQs are {dev_cqs:?}, the driver was told of {:?}",
                    self.cqs
                ));
            }
        }
        let states = v
            .qps
            .iter()
            .map(|q| (q.qpn, q.state.map_or(0xFF, |s| s as u8)));
        if states
            .clone()
            .map(|(qpn, _)| qpn)
            .eq(self.qps.keys().copied())
        {
            for (qpn, state) in states {
                let q = self.qps[&qpn];
                self.learn_qp_state(qpn, q, state, "the device's state")?;
            }
        } else {
            let dev_qps: BTreeMap<u32, u8> = states.collect();
            if dev_qps.keys().ne(self.qps.keys()) || v.qps.len() != self.qps.len() {
                return Err(format!(
                    "the device's QPs are {:?}, the driver was told of {:?}",
                    dev_qps.keys().collect::<Vec<_>>(),
                    self.qps.keys().collect::<Vec<_>>()
                ));
            }
            for (&qpn, &state) in &dev_qps {
                let q = self.qps[&qpn];
                self.learn_qp_state(qpn, q, state, "the device's state")?;
            }
        }
        if v.mrs as usize != self.mrs.len() {
            return Err(format!(
                "the device holds {} MRs, the driver was told of {}: {:?}",
                v.mrs,
                self.mrs.len(),
                self.mrs.keys().collect::<Vec<_>>()
            ));
        }
        let table = dev.verbs().mr_table();
        for (&index, m) in self.mrs.iter_mut() {
            let Some(d) = table.by_index(index) else {
                return Err(format!(
                    "MR index {index} (key {:#x}) is live for the driver but not in the device's table",
                    m.key
                ));
            };
            let state = match d.state {
                MrState::Free => MR_FREE,
                MrState::Valid => MR_VALID,
            };
            if m.fast_reg {
                // FAST_REG / LOCAL_INV may change these on the device's side.
                m.key = d.key;
                m.state = state;
                m.pages = d.pages.len() as u64;
            }
            let got = (
                d.key,
                d.pdn,
                d.fast_reg.is_some(),
                d.fast_reg.unwrap_or(0),
                state,
                d.pages.len() as u64,
            );
            let want = (m.key, m.pdn, m.fast_reg, m.max_pages, m.state, m.pages);
            if got != want || d.key >> 8 != index {
                return Err(format!(
                    "MR index {index}: device (key, PDN, fast-register, max pages, state, pages) = {got:x?}, model {want:x?}"
                ));
            }
        }
        if v.mr_pages != self.mr_pages_total() {
            return Err(format!(
                "the device counts {} MR pages, the model {}",
                v.mr_pages,
                self.mr_pages_total()
            ));
        }
        let eth = dev.ethernet();
        for q in 0..ETH_QUEUES {
            for (rx, want) in [(false, self.txq[q]), (true, self.rxq[q])] {
                let got = if rx {
                    eth.rx_queue(q).is_some()
                } else {
                    eth.tx_queue(q).is_some()
                };
                if got != want {
                    return Err(format!(
                        "Ethernet {} queue {q}: the device {} it, the driver was told {}",
                        if rx { "RX" } else { "TX" },
                        if got { "has" } else { "does not have" },
                        if want {
                            "it exists"
                        } else {
                            "it does not exist"
                        }
                    ));
                }
            }
        }
        let port = dev.verbs().port();
        let got = Settings {
            mac: eth.mac().0,
            mtu: eth.mtu(),
            filter: eth.filter(),
            port_mac: port.mac,
            port_ip: port.ip,
            port_ipv6: port.ipv6,
        };
        if got != self.settings {
            return Err(format!(
                "device settings {got:x?}, model {:x?}",
                self.settings
            ));
        }
        Ok(())
    }

    /// A one-paragraph description of the model, for failure messages.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "PDs {:?}; CQs {:?}; QPs {{", self.pds, self.cqs);
        for (n, q) in &self.qps {
            let _ = write!(
                s,
                " {n}: {} pd {} cq {}/{}",
                qps::name(q.state),
                q.pdn,
                q.send_cqn,
                q.recv_cqn
            );
        }
        let _ = write!(s, " }}; MRs {{");
        for (i, m) in &self.mrs {
            let _ = write!(
                s,
                " {i}: key {:#x} pd {} {}{}",
                m.key,
                m.pdn,
                if m.state == MR_VALID { "VALID" } else { "FREE" },
                if m.fast_reg { " fast-reg" } else { "" }
            );
        }
        let q =
            |t: &[bool; ETH_QUEUES]| -> Vec<usize> { (0..ETH_QUEUES).filter(|&i| t[i]).collect() };
        let _ = write!(
            s,
            " }}; TXQs {:?}; RXQs {:?}; {} completions checked",
            q(&self.txq),
            q(&self.rxq),
            self.completions
        );
        s
    }
}

fn mac_u64(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| (a << 8) | u64::from(x))
}

fn hex(b: &[u8]) -> String {
    let end = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    b[..end].iter().map(|x| format!("{x:02x}")).collect()
}
