//! Named byte ranges and little-endian access to them (spec §0.1: every multi-byte
//! field is little-endian unless stated otherwise).
//!
//! A [`Field`] is the byte range of one field inside a fixed-layout entry. The
//! functions here read and write such fields; each panics only when the range lies
//! outside the slice, which the format views rule out by checking the length once
//! ([`Record::new_checked`] and the `new_checked` of every view).

use core::ops::Range;

/// The byte range of one field inside an entry.
pub type Field = Range<usize>;

/// Reads the byte at `at`.
pub fn get_u8(b: &[u8], at: usize) -> u8 {
    b[at]
}

/// Reads a little-endian `u16` from the two bytes of `f`.
pub fn get_u16(b: &[u8], f: Field) -> u16 {
    let mut x = [0u8; 2];
    x.copy_from_slice(&b[f]);
    u16::from_le_bytes(x)
}

/// Reads a little-endian `u32` from the four bytes of `f`.
pub fn get_u32(b: &[u8], f: Field) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[f]);
    u32::from_le_bytes(x)
}

/// Reads a little-endian `u64` from the eight bytes of `f`.
pub fn get_u64(b: &[u8], f: Field) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[f]);
    u64::from_le_bytes(x)
}

/// Reads the `N` bytes of `f` as they are (MAC and IPv4 addresses).
pub fn get_array<const N: usize>(b: &[u8], f: Field) -> [u8; N] {
    let mut x = [0u8; N];
    x.copy_from_slice(&b[f]);
    x
}

/// Writes the byte at `at`.
pub fn set_u8(b: &mut [u8], at: usize, v: u8) {
    b[at] = v;
}

/// Writes `v` little-endian into the two bytes of `f`.
pub fn set_u16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian into the four bytes of `f`.
pub fn set_u32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian into the eight bytes of `f`.
pub fn set_u64(b: &mut [u8], f: Field, v: u64) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

/// Copies `v` into the bytes of `f` (its length must equal the field's).
pub fn set_bytes(b: &mut [u8], f: Field, v: &[u8]) {
    b[f].copy_from_slice(v);
}

/// A view over a fixed-size record whose fields are named by `mod` constants of
/// [`Field`]s rather than by a dedicated type: the opcode-specific operands of admin
/// commands (§3.7-§3.13) and the query output records (§3.7.1, §3.9, §3.12, §3.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Record<T> {
    /// Wraps `buffer` without a length check: for a buffer whose size is fixed by
    /// its type (a `[u8; 56]` operand array, a `[u8; 64]` record), so every field of
    /// the record's layout is inside it. Getters panic on a field past the end.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds at least `len` bytes (the record's
    /// size from its spec table).
    pub fn new_checked(buffer: T, len: usize) -> Result<Self, crate::Truncated> {
        let got = buffer.as_ref().len();
        if got < len {
            return Err(crate::Truncated { needed: len, got });
        }
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The byte at `at`.
    pub fn u8(&self, at: usize) -> u8 {
        get_u8(self.buffer.as_ref(), at)
    }

    /// The `u16` field `f`.
    pub fn u16(&self, f: Field) -> u16 {
        get_u16(self.buffer.as_ref(), f)
    }

    /// The `u32` field `f`.
    pub fn u32(&self, f: Field) -> u32 {
        get_u32(self.buffer.as_ref(), f)
    }

    /// The `u64` field `f`.
    pub fn u64(&self, f: Field) -> u64 {
        get_u64(self.buffer.as_ref(), f)
    }

    /// The raw bytes of field `f` (addresses).
    pub fn array<const N: usize>(&self, f: Field) -> [u8; N] {
        get_array(self.buffer.as_ref(), f)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Record<T> {
    /// Writes the byte at `at`.
    pub fn set_u8(&mut self, at: usize, v: u8) {
        set_u8(self.buffer.as_mut(), at, v)
    }

    /// Writes the `u16` field `f`.
    pub fn set_u16(&mut self, f: Field, v: u16) {
        set_u16(self.buffer.as_mut(), f, v)
    }

    /// Writes the `u32` field `f`.
    pub fn set_u32(&mut self, f: Field, v: u32) {
        set_u32(self.buffer.as_mut(), f, v)
    }

    /// Writes the `u64` field `f`.
    pub fn set_u64(&mut self, f: Field, v: u64) {
        set_u64(self.buffer.as_mut(), f, v)
    }

    /// Copies `v` into field `f`.
    pub fn set_bytes(&mut self, f: Field, v: &[u8]) {
        set_bytes(self.buffer.as_mut(), f, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_round_trip() {
        let mut b = [0u8; 16];
        set_u16(&mut b, 0..2, 0x1234);
        set_u32(&mut b, 4..8, 0xAABB_CCDD);
        set_u64(&mut b, 8..16, 0x0102_0304_0506_0708);
        assert_eq!(b[..2], [0x34, 0x12]);
        assert_eq!(b[4..8], [0xDD, 0xCC, 0xBB, 0xAA]);
        assert_eq!(b[8], 0x08);
        assert_eq!(get_u16(&b, 0..2), 0x1234);
        assert_eq!(get_u32(&b, 4..8), 0xAABB_CCDD);
        assert_eq!(get_u64(&b, 8..16), 0x0102_0304_0506_0708);
    }

    #[test]
    fn record_rejects_short_buffer() {
        let e = Record::new_checked([0u8; 3], 4).unwrap_err();
        assert_eq!((e.needed, e.got), (4, 3));
        let mut r = Record::new_checked([0u8; 8], 8).unwrap();
        r.set_u32(4..8, 7);
        r.set_bytes(0..2, &[1, 2]);
        assert_eq!((r.u32(4..8), r.u8(1)), (7, 2));
    }
}
