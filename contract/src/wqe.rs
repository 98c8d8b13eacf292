//! Work queue entries (`docs/device-spec.md` §8.2-§8.4): the 128-byte send WQE and
//! its FAST_REG variant, the 16-byte scatter/gather element, the receive WQE, and
//! the send opcodes and flags. The doorbells are in [`crate::bar0::verbs_db`].

use crate::field;
use crate::fixed_view;

/// Size of one SQ or RQ entry in bytes (§8.2, §8.4).
pub const WQE_SIZE: usize = 128;
/// Required SQ/RQ ring base alignment in bytes (§3.12).
pub const RING_ALIGN: u64 = 128;
/// Offset of the SGE array or the inline data in a WQE (§8.2).
pub const SGE_OFFSET: usize = 32;
/// Size of one scatter/gather element in bytes (§8.4).
pub const SGE_SIZE: usize = 16;
/// SGEs that fit in a WQE (§8.2).
pub const MAX_SGE: u8 = ((WQE_SIZE - SGE_OFFSET) / SGE_SIZE) as u8;
/// Inline bytes that fit in a WQE (§8.2).
pub const MAX_INLINE: u32 = (WQE_SIZE - SGE_OFFSET) as u32;
/// Largest message in bytes: sum of a WQE's SGE lengths (§8.2, §15).
pub const MAX_MESSAGE_SIZE: u32 = 16 << 20;

/// Send WQE opcodes (byte 8, §8.2).
pub mod opcode {
    /// SEND.
    pub const SEND: u8 = 0x00;
    /// SEND with immediate data.
    pub const SEND_WITH_IMM: u8 = 0x01;
    /// SEND with invalidate: the responder invalidates the key.
    pub const SEND_WITH_INV: u8 = 0x02;
    /// RDMA WRITE.
    pub const RDMA_WRITE: u8 = 0x03;
    /// RDMA WRITE with immediate (consumes a receive WQE at the responder).
    pub const RDMA_WRITE_WITH_IMM: u8 = 0x04;
    /// RDMA READ into the SGEs.
    pub const RDMA_READ: u8 = 0x05;
    /// Fast-register an MR (layout [`super::fast_reg_field`]).
    pub const FAST_REG: u8 = 0x06;
    /// Invalidate a key locally.
    pub const LOCAL_INV: u8 = 0x07;
    /// The highest defined opcode.
    pub const MAX: u8 = LOCAL_INV;
}

/// Send WQE flags (byte 9, §8.2).
pub mod flags {
    /// A successful completion writes a CQE.
    pub const SIGNALED: u8 = 1;
    /// Sets the BTH solicited-event bit on the last packet.
    pub const SOLICITED: u8 = 2;
    /// The data is inline at byte 32, length at byte 28.
    pub const INLINE: u8 = 4;
    /// Wait for every earlier RDMA READ before starting.
    pub const FENCE: u8 = 8;
    /// Every defined flag.
    pub const ALL: u8 = SIGNALED | SOLICITED | INLINE | FENCE;
}

/// Byte ranges of the send WQE (§8.2).
pub mod send_field {
    use crate::field::Field;
    /// wr_id, returned in the CQE.
    pub const WR_ID: Field = 0..8;
    /// Opcode (byte).
    pub const OPCODE: usize = 8;
    /// Flags (byte).
    pub const FLAGS: usize = 9;
    /// Number of SGEs (byte).
    pub const NUM_SGE: usize = 10;
    /// Immediate data, or key to invalidate.
    pub const IMM_INV: Field = 12..16;
    /// Remote virtual address.
    pub const REMOTE_ADDR: Field = 16..24;
    /// rkey.
    pub const RKEY: Field = 24..28;
    /// Inline data length.
    pub const INLINE_LEN: Field = 28..32;
    /// SGE array or inline data.
    pub const PAYLOAD: Field = 32..128;
}

/// Byte ranges of the FAST_REG WQE beyond bytes 0..16 (§8.3).
pub mod fast_reg_field {
    use crate::field::Field;
    /// iova.
    pub const IOVA: Field = 16..24;
    /// New key: MR index (bits 31:8) and key byte (7:0).
    pub const KEY: Field = 24..28;
    /// Access flags.
    pub const ACCESS: Field = 28..32;
    /// Length in bytes.
    pub const LENGTH: Field = 32..40;
    /// Page list address (u64 page addresses).
    pub const PAGE_LIST: Field = 40..48;
    /// Page count.
    pub const PAGE_COUNT: Field = 48..52;
    /// First byte offset.
    pub const FBO: Field = 52..56;
    /// Page shift (byte).
    pub const PAGE_SHIFT: usize = 56;
}

/// Byte ranges of the receive WQE (§8.4).
pub mod recv_field {
    use crate::field::Field;
    /// wr_id.
    pub const WR_ID: Field = 0..8;
    /// Number of SGEs (byte).
    pub const NUM_SGE: usize = 8;
}

/// Byte ranges of the scatter/gather element (§8.4).
pub mod sge_field {
    use crate::field::Field;
    /// Virtual address in the MR's iova space.
    pub const ADDR: Field = 0..8;
    /// Length in bytes (0: skipped).
    pub const LEN: Field = 8..12;
    /// lkey.
    pub const LKEY: Field = 12..16;
}

fixed_view!(
    /// A view of a 128-byte send WQE (§8.2), including the FAST_REG fields (§8.3).
    SendWqe,
    WQE_SIZE
);

impl<T: AsRef<[u8]>> SendWqe<T> {
    /// wr_id.
    pub fn wr_id(&self) -> u64 {
        field::get_u64(self.bytes(), send_field::WR_ID)
    }
    /// Opcode ([`opcode`]).
    pub fn opcode(&self) -> u8 {
        self.bytes()[send_field::OPCODE]
    }
    /// Flags ([`flags`]).
    pub fn flags(&self) -> u8 {
        self.bytes()[send_field::FLAGS]
    }
    /// Number of SGEs.
    pub fn num_sge(&self) -> u8 {
        self.bytes()[send_field::NUM_SGE]
    }
    /// Immediate data or key to invalidate.
    pub fn imm_inv(&self) -> u32 {
        field::get_u32(self.bytes(), send_field::IMM_INV)
    }
    /// Remote virtual address.
    pub fn remote_addr(&self) -> u64 {
        field::get_u64(self.bytes(), send_field::REMOTE_ADDR)
    }
    /// rkey.
    pub fn rkey(&self) -> u32 {
        field::get_u32(self.bytes(), send_field::RKEY)
    }
    /// Inline data length.
    pub fn inline_len(&self) -> u32 {
        field::get_u32(self.bytes(), send_field::INLINE_LEN)
    }
    /// The 96 payload bytes: SGEs or inline data.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[send_field::PAYLOAD]
    }
    /// SGE `i` (0..[`MAX_SGE`]) of the payload; `None` past the array.
    pub fn sge(&self, i: usize) -> Option<SgeRepr> {
        sge_at(self.bytes(), i)
    }
    /// FAST_REG: iova.
    pub fn fr_iova(&self) -> u64 {
        field::get_u64(self.bytes(), fast_reg_field::IOVA)
    }
    /// FAST_REG: new key.
    pub fn fr_key(&self) -> u32 {
        field::get_u32(self.bytes(), fast_reg_field::KEY)
    }
    /// FAST_REG: access flags.
    pub fn fr_access(&self) -> u32 {
        field::get_u32(self.bytes(), fast_reg_field::ACCESS)
    }
    /// FAST_REG: length in bytes.
    pub fn fr_length(&self) -> u64 {
        field::get_u64(self.bytes(), fast_reg_field::LENGTH)
    }
    /// FAST_REG: page list address.
    pub fn fr_page_list(&self) -> u64 {
        field::get_u64(self.bytes(), fast_reg_field::PAGE_LIST)
    }
    /// FAST_REG: page count.
    pub fn fr_page_count(&self) -> u32 {
        field::get_u32(self.bytes(), fast_reg_field::PAGE_COUNT)
    }
    /// FAST_REG: first byte offset.
    pub fn fr_fbo(&self) -> u32 {
        field::get_u32(self.bytes(), fast_reg_field::FBO)
    }
    /// FAST_REG: page shift.
    pub fn fr_page_shift(&self) -> u8 {
        self.bytes()[fast_reg_field::PAGE_SHIFT]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SendWqe<T> {
    /// Sets wr_id.
    pub fn set_wr_id(&mut self, v: u64) {
        field::set_u64(self.bytes_mut(), send_field::WR_ID, v)
    }
    /// Sets the opcode.
    pub fn set_opcode(&mut self, v: u8) {
        self.bytes_mut()[send_field::OPCODE] = v;
    }
    /// Sets the flags.
    pub fn set_flags(&mut self, v: u8) {
        self.bytes_mut()[send_field::FLAGS] = v;
    }
    /// Sets the number of SGEs.
    pub fn set_num_sge(&mut self, v: u8) {
        self.bytes_mut()[send_field::NUM_SGE] = v;
    }
    /// Sets the immediate data or key to invalidate.
    pub fn set_imm_inv(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), send_field::IMM_INV, v)
    }
    /// Sets the remote virtual address.
    pub fn set_remote_addr(&mut self, v: u64) {
        field::set_u64(self.bytes_mut(), send_field::REMOTE_ADDR, v)
    }
    /// Sets the rkey.
    pub fn set_rkey(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), send_field::RKEY, v)
    }
    /// Sets the inline data length.
    pub fn set_inline_len(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), send_field::INLINE_LEN, v)
    }
    /// The payload bytes, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[send_field::PAYLOAD]
    }
    /// Writes SGE `i`; returns false (and writes nothing) past the array.
    pub fn set_sge(&mut self, i: usize, sge: &SgeRepr) -> bool {
        set_sge_at(self.bytes_mut(), i, sge)
    }
}

fixed_view!(
    /// A view of a 128-byte receive WQE (§8.4).
    RecvWqe,
    WQE_SIZE
);

impl<T: AsRef<[u8]>> RecvWqe<T> {
    /// wr_id.
    pub fn wr_id(&self) -> u64 {
        field::get_u64(self.bytes(), recv_field::WR_ID)
    }
    /// Number of SGEs.
    pub fn num_sge(&self) -> u8 {
        self.bytes()[recv_field::NUM_SGE]
    }
    /// SGE `i`; `None` past the array.
    pub fn sge(&self, i: usize) -> Option<SgeRepr> {
        sge_at(self.bytes(), i)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RecvWqe<T> {
    /// Sets wr_id.
    pub fn set_wr_id(&mut self, v: u64) {
        field::set_u64(self.bytes_mut(), recv_field::WR_ID, v)
    }
    /// Sets the number of SGEs.
    pub fn set_num_sge(&mut self, v: u8) {
        self.bytes_mut()[recv_field::NUM_SGE] = v;
    }
    /// Writes SGE `i`; returns false (and writes nothing) past the array.
    pub fn set_sge(&mut self, i: usize, sge: &SgeRepr) -> bool {
        set_sge_at(self.bytes_mut(), i, sge)
    }
}

/// One scatter/gather element as values (§8.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SgeRepr {
    /// Virtual address in the MR's iova space.
    pub addr: u64,
    /// Length in bytes (0: skipped).
    pub len: u32,
    /// lkey.
    pub lkey: u32,
}

impl SgeRepr {
    /// Parses a 16-byte SGE.
    pub fn parse(b: &[u8; SGE_SIZE]) -> Self {
        SgeRepr {
            addr: field::get_u64(b, sge_field::ADDR),
            len: field::get_u32(b, sge_field::LEN),
            lkey: field::get_u32(b, sge_field::LKEY),
        }
    }

    /// Writes the 16-byte SGE.
    pub fn emit(&self, b: &mut [u8; SGE_SIZE]) {
        field::set_u64(b, sge_field::ADDR, self.addr);
        field::set_u32(b, sge_field::LEN, self.len);
        field::set_u32(b, sge_field::LKEY, self.lkey);
    }
}

fn sge_range(i: usize) -> Option<core::ops::Range<usize>> {
    (i < MAX_SGE as usize).then(|| {
        let at = SGE_OFFSET + i * SGE_SIZE;
        at..at + SGE_SIZE
    })
}

fn sge_at(wqe: &[u8], i: usize) -> Option<SgeRepr> {
    let r = sge_range(i)?;
    Some(SgeRepr::parse(&field::get_array(wqe, r)))
}

fn set_sge_at(wqe: &mut [u8], i: usize, sge: &SgeRepr) -> bool {
    let Some(r) = sge_range(i) else {
        return false;
    };
    let mut b = [0u8; SGE_SIZE];
    sge.emit(&mut b);
    wqe[r].copy_from_slice(&b);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send WQE of §8.2 and FAST_REG WQE of §8.3, offsets copied independently.
    #[test]
    fn send_wqe_layout() {
        let mut b = [0u8; 128];
        let mut w = SendWqe::new_checked(&mut b[..]).unwrap();
        w.set_wr_id(0x0102_0304_0506_0708);
        w.set_opcode(opcode::RDMA_READ);
        w.set_flags(flags::SIGNALED | flags::FENCE);
        w.set_num_sge(2);
        w.set_imm_inv(0xAABB_CCDD);
        w.set_remote_addr(0x1000);
        w.set_rkey(0x0000_0142);
        w.set_inline_len(9);
        let sge = SgeRepr {
            addr: 0x2000,
            len: 64,
            lkey: 0x0000_0201,
        };
        assert!(w.set_sge(5, &sge));
        assert!(!w.set_sge(6, &sge));
        assert_eq!(w.sge(5), Some(sge));
        assert_eq!(b[0], 0x08);
        assert_eq!((b[8], b[9], b[10]), (5, 9, 2));
        assert_eq!(b[12..16], [0xDD, 0xCC, 0xBB, 0xAA]);
        assert_eq!(b[17], 0x10);
        assert_eq!(b[24..28], [0x42, 1, 0, 0]);
        assert_eq!(b[28], 9);
        // SGE 5 at 32 + 5·16 = 112: addr, len at +8, lkey at +12.
        assert_eq!(b[113], 0x20);
        assert_eq!(b[120], 64);
        assert_eq!(b[124..128], [1, 2, 0, 0]);
        assert_eq!((MAX_SGE, MAX_INLINE), (6, 96));

        let mut f = [0u8; 128];
        f[40] = 0x11;
        f[48] = 3;
        f[52] = 0x80;
        f[56] = 12;
        let fr = SendWqe::new_checked(&f[..]).unwrap();
        assert_eq!(fr.fr_page_list(), 0x11);
        assert_eq!(
            (fr.fr_page_count(), fr.fr_fbo(), fr.fr_page_shift()),
            (3, 0x80, 12)
        );
    }

    /// Receive WQE of §8.4: wr_id, SGE count at 8, SGEs from 32.
    #[test]
    fn recv_wqe_layout() {
        let mut b = [0u8; 128];
        b[8] = 1;
        b[32 + 8] = 0x40;
        let r = RecvWqe::new_checked(&b[..]).unwrap();
        assert_eq!(r.num_sge(), 1);
        assert_eq!(r.sge(0).map(|s| s.len), Some(0x40));
        assert!(RecvWqe::new_checked(&b[..127]).is_err());
    }
}
