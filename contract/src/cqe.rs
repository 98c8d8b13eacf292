//! Completion queue entries (`docs/device-spec.md` §9): the 32-byte CQE, its
//! opcodes and flags, and the completion status [`WcStatus`].

use crate::field;
use crate::fixed_view;

/// Size of one CQE in bytes (§9.2).
pub const CQE_SIZE: usize = 32;
/// Required CQ ring base alignment in bytes (§3.11).
pub const RING_ALIGN: u64 = 32;

/// CQE opcodes (byte 20, §9.2).
pub mod opcode {
    /// Send side: any SEND.
    pub const SEND: u8 = 0x00;
    /// Send side: RDMA WRITE (with or without immediate).
    pub const RDMA_WRITE: u8 = 0x01;
    /// Send side: RDMA READ.
    pub const RDMA_READ: u8 = 0x02;
    /// Send side: FAST_REG.
    pub const FAST_REG: u8 = 0x03;
    /// Send side: LOCAL_INV.
    pub const LOCAL_INV: u8 = 0x04;
    /// Receive side: a SEND was received.
    pub const RECV: u8 = 0x80;
    /// Receive side: an RDMA WRITE with immediate consumed a receive WQE.
    pub const RECV_RDMA_WITH_IMM: u8 = 0x81;
}

/// CQE flags (byte 22, §9.2).
pub mod flags {
    /// The immediate field holds immediate data.
    pub const IMM: u8 = 1;
    /// The immediate field holds the invalidated key.
    pub const INV: u8 = 2;
    /// The message had the solicited-event bit.
    pub const SOLICITED: u8 = 4;
}

/// Work completion status (byte 21, §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WcStatus {
    /// The work request completed.
    Success = 0,
    /// SGE total above the max message size, or a receive buffer too small.
    LocalLengthError = 1,
    /// Malformed WQE, or a receive WQE with too many SGEs.
    LocalQpOperationError = 2,
    /// An lkey check failed (vendor_err = step of §6.4).
    LocalProtectionError = 3,
    /// The QP is (or went) in ERR.
    Flushed = 4,
    /// The responder NAKed invalid request.
    RemoteInvalidRequest = 5,
    /// The responder NAKed remote access error.
    RemoteAccessError = 6,
    /// The responder NAKed remote operational error.
    RemoteOperationError = 7,
    /// The retry count ran out.
    RetryExceeded = 8,
    /// The RNR retry count ran out.
    RnrRetryExceeded = 9,
    /// FAST_REG / LOCAL_INV or a SEND with Invalidate's invalidation failed.
    MemoryManagementError = 10,
    /// An RDMA READ response of the wrong opcode or length, or a reserved AETH.
    BadResponse = 11,
    /// A DMA error while moving payload; the QP goes to ERR.
    Fatal = 12,
}

impl WcStatus {
    /// The status byte.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// Byte ranges of the CQE (§9.2).
pub mod cqe_field {
    use crate::field::Field;
    /// wr_id.
    pub const WR_ID: Field = 0..8;
    /// Byte count.
    pub const BYTE_LEN: Field = 8..12;
    /// Immediate data or invalidated key.
    pub const IMM_INV: Field = 12..16;
    /// QPN.
    pub const QPN: Field = 16..20;
    /// Opcode (byte).
    pub const OPCODE: usize = 20;
    /// Status (byte).
    pub const STATUS: usize = 21;
    /// Flags (byte).
    pub const FLAGS: usize = 22;
    /// Phase tag (bit 0 of the byte); written last, alone.
    pub const PHASE: usize = 23;
    /// vendor_err.
    pub const VENDOR_ERR: Field = 24..28;
}

fixed_view!(
    /// A view of a 32-byte CQE (§9.2).
    Cqe,
    CQE_SIZE
);

impl<T: AsRef<[u8]>> Cqe<T> {
    /// wr_id.
    pub fn wr_id(&self) -> u64 {
        field::get_u64(self.bytes(), cqe_field::WR_ID)
    }
    /// Byte count.
    pub fn byte_len(&self) -> u32 {
        field::get_u32(self.bytes(), cqe_field::BYTE_LEN)
    }
    /// Immediate data or invalidated key.
    pub fn imm_inv(&self) -> u32 {
        field::get_u32(self.bytes(), cqe_field::IMM_INV)
    }
    /// QPN.
    pub fn qpn(&self) -> u32 {
        field::get_u32(self.bytes(), cqe_field::QPN)
    }
    /// Opcode ([`opcode`]).
    pub fn opcode(&self) -> u8 {
        self.bytes()[cqe_field::OPCODE]
    }
    /// Status byte ([`WcStatus`] code).
    pub fn status(&self) -> u8 {
        self.bytes()[cqe_field::STATUS]
    }
    /// Flags ([`flags`]).
    pub fn flags(&self) -> u8 {
        self.bytes()[cqe_field::FLAGS]
    }
    /// Phase tag.
    pub fn phase(&self) -> bool {
        self.bytes()[cqe_field::PHASE] & 1 != 0
    }
    /// vendor_err.
    pub fn vendor_err(&self) -> u32 {
        field::get_u32(self.bytes(), cqe_field::VENDOR_ERR)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Cqe<T> {
    /// Sets the phase byte (bit 0 = `phase`).
    pub fn set_phase(&mut self, phase: bool) {
        self.bytes_mut()[cqe_field::PHASE] = phase as u8;
    }
}

/// A whole CQE as values, without the phase tag (the device writes it separately,
/// §9.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CqeRepr {
    /// wr_id of the completed WQE.
    pub wr_id: u64,
    /// Byte count.
    pub byte_len: u32,
    /// Immediate data or invalidated key.
    pub imm_inv: u32,
    /// QPN.
    pub qpn: u32,
    /// Opcode ([`opcode`]).
    pub opcode: u8,
    /// Status code ([`WcStatus`] or an injected value).
    pub status: u8,
    /// Flags ([`flags`]).
    pub flags: u8,
    /// vendor_err.
    pub vendor_err: u32,
}

impl CqeRepr {
    /// Reads every field but the phase tag.
    pub fn parse<T: AsRef<[u8]>>(cqe: &Cqe<T>) -> Self {
        CqeRepr {
            wr_id: cqe.wr_id(),
            byte_len: cqe.byte_len(),
            imm_inv: cqe.imm_inv(),
            qpn: cqe.qpn(),
            opcode: cqe.opcode(),
            status: cqe.status(),
            flags: cqe.flags(),
            vendor_err: cqe.vendor_err(),
        }
    }

    /// Writes every field but the phase tag; bytes 28..32 become 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, cqe: &mut Cqe<T>) {
        let b = cqe.bytes_mut();
        field::set_u64(b, cqe_field::WR_ID, self.wr_id);
        field::set_u32(b, cqe_field::BYTE_LEN, self.byte_len);
        field::set_u32(b, cqe_field::IMM_INV, self.imm_inv);
        field::set_u32(b, cqe_field::QPN, self.qpn);
        b[cqe_field::OPCODE] = self.opcode;
        b[cqe_field::STATUS] = self.status;
        b[cqe_field::FLAGS] = self.flags;
        field::set_u32(b, cqe_field::VENDOR_ERR, self.vendor_err);
        b[28..32].fill(0);
    }

    /// The 32-byte CQE with phase byte `phase`.
    pub fn to_bytes(&self, phase: bool) -> [u8; CQE_SIZE] {
        let mut b = [0u8; CQE_SIZE];
        let mut v = Cqe::new_unchecked(&mut b[..]);
        self.emit(&mut v);
        v.set_phase(phase);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CQE of §9.2, offsets and codes copied independently.
    #[test]
    fn matches_spec_9_2() {
        let c = CqeRepr {
            wr_id: 0x1122_3344_5566_7788,
            byte_len: 4096,
            imm_inv: 0xDEAD_BEEF,
            qpn: 7,
            opcode: opcode::RECV_RDMA_WITH_IMM,
            status: WcStatus::RemoteAccessError.code(),
            flags: flags::IMM | flags::SOLICITED,
            vendor_err: 3,
        };
        let b = c.to_bytes(true);
        assert_eq!(b[0], 0x88);
        assert_eq!(b[8..12], 4096u32.to_le_bytes());
        assert_eq!(b[12..16], [0xEF, 0xBE, 0xAD, 0xDE]);
        assert_eq!(b[16], 7);
        assert_eq!((b[20], b[21], b[22], b[23]), (0x81, 6, 5, 1));
        assert_eq!(b[24], 3);
        let v = Cqe::new_checked(&b[..]).unwrap();
        assert_eq!(CqeRepr::parse(&v), c);
        assert!(v.phase());
        assert_eq!(WcStatus::Fatal.code(), 12);
        assert_eq!(WcStatus::MemoryManagementError.code(), 10);
        assert_eq!(opcode::LOCAL_INV, 4);
    }
}
