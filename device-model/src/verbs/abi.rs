//! The driver-visible binary interface of the verbs engine: admin opcodes and
//! status codes, doorbell offsets, WQE and CQE layouts, access flags, completion
//! statuses. Every number here is written down in `docs/device-spec.md` (§3.9-3.13,
//! §6-9, §10.6).

use serde::Serialize;

/// Admin opcodes owned by the verbs engine (`0x10..=0x3F`).
pub mod op {
    pub const QUERY_CAPS: u8 = 0x10;
    pub const CREATE_PD: u8 = 0x11;
    pub const DESTROY_PD: u8 = 0x12;
    pub const SET_PORT_ADDR: u8 = 0x13;
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
}

/// Admin completion status of a verbs command (the `status` field of the 16-byte
/// admin completion). 0..=2 are shared with the device core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[repr(u16)]
pub enum AdminStatus {
    /// Unknown opcode.
    InvalidOpcode = 1,
    /// An operand is out of range, malformed, or a reserved bit is set.
    InvalidParam = 2,
    /// A table is full (PD, CQ, QP, MR) or a size exceeds a device limit.
    NoResources = 0x10,
    /// A handle (PDN, CQN, QPN, key) names no existing object.
    InvalidHandle = 0x11,
    /// The object is still referenced by another one.
    Busy = 0x12,
    /// The requested QP state transition is not allowed from the current state.
    InvalidState = 0x13,
    /// Reading or writing guest memory named by the command failed.
    DmaError = 0x14,
}

impl AdminStatus {
    /// The numeric status code.
    pub const fn code(self) -> u16 {
        self as u16
    }
}

/// Doorbell layout (BAR0 offsets).
pub mod db {
    /// First doorbell offset owned by the verbs engine.
    pub const BASE: u64 = 0x2000;
    /// QP doorbells: `QP_BASE + 8*qpn` = SQ producer index, `+4` = RQ producer index.
    pub const QP_BASE: u64 = 0x2000;
    /// End (exclusive) of the QP doorbell window.
    pub const QP_END: u64 = 0x8000;
    /// CQ doorbells: `CQ_BASE + 8*cqn` = consumer index, `+4` = arm.
    pub const CQ_BASE: u64 = 0x8000;
    /// End (exclusive) of the CQ doorbell window.
    pub const CQ_END: u64 = 0x1_0000;
    /// Highest QPN that has a doorbell.
    pub const MAX_QPN: u32 = ((QP_END - QP_BASE) / 8 - 1) as u32;
    /// Highest CQN that has a doorbell.
    pub const MAX_CQN: u32 = ((CQ_END - CQ_BASE) / 8 - 1) as u32;
    /// CQ arm value: interrupt on the next completion.
    pub const ARM_NEXT: u32 = 1;
    /// CQ arm value: interrupt on the next solicited or error completion.
    pub const ARM_SOLICITED: u32 = 2;
}

/// Memory region access flags (also the QP access attribute, which uses only the
/// two remote bits). Values match NDK's `NDK_MR_FLAG_*` (remote write there is 5 =
/// remote write | local write).
pub mod access {
    pub const LOCAL_WRITE: u32 = 1;
    pub const REMOTE_READ: u32 = 2;
    pub const REMOTE_WRITE: u32 = 4;
    pub const RDMA_READ_SINK: u32 = 8;
    pub const ALL: u32 = LOCAL_WRITE | REMOTE_READ | REMOTE_WRITE | RDMA_READ_SINK;
}

/// Send WQE opcodes (byte 8 of an SQ entry).
pub mod wr {
    pub const SEND: u8 = 0x00;
    pub const SEND_WITH_IMM: u8 = 0x01;
    pub const SEND_WITH_INV: u8 = 0x02;
    pub const RDMA_WRITE: u8 = 0x03;
    pub const RDMA_WRITE_WITH_IMM: u8 = 0x04;
    pub const RDMA_READ: u8 = 0x05;
    pub const FAST_REG: u8 = 0x06;
    pub const LOCAL_INV: u8 = 0x07;
}

/// Send WQE flags (byte 9 of an SQ entry).
pub mod wqe_flags {
    pub const SIGNALED: u8 = 1;
    pub const SOLICITED: u8 = 2;
    pub const INLINE: u8 = 4;
    pub const FENCE: u8 = 8;
    pub const ALL: u8 = SIGNALED | SOLICITED | INLINE | FENCE;
}

/// CQE opcodes (byte 20 of a CQE).
pub mod cqe_op {
    pub const SEND: u8 = 0x00;
    pub const RDMA_WRITE: u8 = 0x01;
    pub const RDMA_READ: u8 = 0x02;
    pub const FAST_REG: u8 = 0x03;
    pub const LOCAL_INV: u8 = 0x04;
    pub const RECV: u8 = 0x80;
    pub const RECV_RDMA_WITH_IMM: u8 = 0x81;
}

/// CQE flags (byte 22 of a CQE).
pub mod cqe_flags {
    pub const IMM: u8 = 1;
    pub const INV: u8 = 2;
    pub const SOLICITED: u8 = 4;
}

/// Work completion status (byte 21 of a CQE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[repr(u8)]
pub enum WcStatus {
    Success = 0,
    LocalLengthError = 1,
    LocalQpOperationError = 2,
    LocalProtectionError = 3,
    Flushed = 4,
    RemoteInvalidRequest = 5,
    RemoteAccessError = 6,
    RemoteOperationError = 7,
    RetryExceeded = 8,
    RnrRetryExceeded = 9,
    MemoryManagementError = 10,
    BadResponse = 11,
    Fatal = 12,
}

impl WcStatus {
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// Size of one SQ or RQ entry.
pub const WQE_SIZE: usize = 128;
/// Offset of the SGE array / inline data in a WQE.
pub const WQE_SGE_OFFSET: usize = 32;
/// Size of one scatter/gather element.
pub const SGE_SIZE: usize = 16;
/// SGEs that fit in a WQE.
pub const MAX_SGE: u8 = ((WQE_SIZE - WQE_SGE_OFFSET) / SGE_SIZE) as u8;
/// Inline bytes that fit in a WQE.
pub const MAX_INLINE: u32 = (WQE_SIZE - WQE_SGE_OFFSET) as u32;
/// Size of one CQE.
pub const CQE_SIZE: usize = 32;
/// Size of the QUERY_CAPS and QUERY_QP / QUERY_MR output buffers.
pub const QUERY_OUT_SIZE: usize = 64;

/// QP states (MODIFY_QP byte 8, QUERY_QP result 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum QpState {
    Reset = 0,
    Init = 1,
    Rtr = 2,
    Rts = 3,
    Sqd = 4,
    Sqe = 5,
    Err = 6,
}

impl QpState {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => QpState::Reset,
            1 => QpState::Init,
            2 => QpState::Rtr,
            3 => QpState::Rts,
            4 => QpState::Sqd,
            5 => QpState::Sqe,
            6 => QpState::Err,
            _ => return None,
        })
    }
}

/// MODIFY_QP attribute mask bits.
pub mod qp_attr {
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
    pub const ALL: u32 = (1 << 11) - 1;
}

/// Path MTU codes (IBA encoding) to bytes.
pub const fn mtu_bytes(code: u8) -> Option<u32> {
    match code {
        1 => Some(256),
        2 => Some(512),
        3 => Some(1024),
        4 => Some(2048),
        5 => Some(4096),
        _ => None,
    }
}

/// IBA RNR NAK timer encoding, in microseconds (index = 5-bit code).
pub const RNR_TIMER_US: [u32; 32] = [
    655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840,
    5120, 7680, 10_240, 15_360, 20_480, 30_720, 40_960, 61_440, 81_920, 122_880, 163_840, 245_760,
    327_680, 491_520,
];

/// Little-endian field readers over operand and WQE bytes. Offsets are constants
/// within fixed-size arrays, so the slicing cannot fail.
pub(crate) fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn wr_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn wr_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn wr_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
