//! Pure device-protocol logic of the driver: BAR0 register map, admin command encoding,
//! completion decoding with phase tracking, and the BAR0 search in the resource list.
//!
//! No FFI and no MMIO here, so the module also compiles on the host: the
//! `artifact-check` crate includes this file (`#[path]`) and runs the tests below.

use ndis_abi::{CmResourceTypeMemory, CM_PARTIAL_RESOURCE_DESCRIPTOR};

/// BAR0 register offsets (docs/device-spec.md section 2). All 32-bit.
pub mod reg {
    pub const VERSION: usize = 0x000;
    pub const CAPS: usize = 0x004;
    pub const DEV_CTRL: usize = 0x008;
    pub const DEV_STATUS: usize = 0x00C;
    pub const ADMIN_ERROR: usize = 0x010;
    pub const ASQ_BASE_LO: usize = 0x020;
    pub const ASQ_BASE_HI: usize = 0x024;
    pub const ASQ_SIZE: usize = 0x028;
    pub const ACQ_BASE_LO: usize = 0x030;
    pub const ACQ_BASE_HI: usize = 0x034;
    pub const ACQ_SIZE: usize = 0x038;
    pub const ASQ_TAIL: usize = 0x040;
    pub const ASQ_HEAD: usize = 0x044;
    pub const ACQ_HEAD: usize = 0x048;
    pub const ACQ_TAIL: usize = 0x04C;

    pub const DEV_CTRL_ENABLE: u32 = 1 << 0;
    pub const DEV_CTRL_RESET: u32 = 1 << 1;

    pub const DEV_STATUS_READY: u32 = 1 << 0;
    pub const DEV_STATUS_FATAL: u32 = 1 << 1;
    pub const DEV_STATUS_ADMIN_ERR: u32 = 1 << 2;
    pub const DEV_STATUS_LINK_UP: u32 = 1 << 3;
}

/// Size of BAR0 (control registers + doorbells).
pub const BAR0_LEN: u32 = 0x1_0000;
/// Register-interface major version this driver speaks (`VERSION[31:16]`).
pub const SUPPORTED_MAJOR: u32 = 1;

pub const ASQ_ENTRIES: u32 = 16;
pub const ACQ_ENTRIES: u32 = 16;
pub const ASQ_ENTRY_BYTES: u32 = 64;
pub const ACQ_ENTRY_BYTES: u32 = 16;
pub const ASQ_BYTES: u32 = ASQ_ENTRIES * ASQ_ENTRY_BYTES;
pub const ACQ_BYTES: u32 = ACQ_ENTRIES * ACQ_ENTRY_BYTES;
pub const ASQ_ALIGN: i64 = 64;
pub const ACQ_ALIGN: i64 = 16;

pub const OPCODE_NOP: u8 = 0x00;
/// Command id of the bring-up NOP.
pub const NOP_COMMAND_ID: u16 = 1;
/// `result0` of a successful NOP: "NOP\0".
pub const NOP_RESULT0: u32 = 0x4E4F_5000;

pub const ADMIN_STATUS_SUCCESS: u16 = 0;

/// Encodes an admin command as 16 little-endian dwords (64 bytes): opcode in byte 0, flags 0,
/// command id in bytes 2..4, reserved dword, 56 bytes of operands.
pub fn encode_command(opcode: u8, command_id: u16, operands: &[u32; 14]) -> [u32; 16] {
    let mut d = [0u32; 16];
    d[0] = opcode as u32 | ((command_id as u32) << 16);
    d[2..16].copy_from_slice(operands);
    d
}

/// A decoded 16-byte admin completion entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminCompletion {
    pub result0: u32,
    pub result1: u32,
    pub command_id: u16,
    pub sq_head: u16,
    pub status: u16,
    pub phase: u8,
}

impl AdminCompletion {
    /// Decodes the entry from its four little-endian dwords.
    pub fn decode(d: [u32; 4]) -> Self {
        Self {
            result0: d[0],
            result1: d[1],
            command_id: (d[2] & 0xFFFF) as u16,
            sq_head: (d[2] >> 16) as u16,
            status: (d[3] & 0xFFFF) as u16,
            phase: ((d[3] >> 16) & 1) as u8,
        }
    }

    /// True for the successful completion of the bring-up NOP.
    pub fn is_good_nop(&self) -> bool {
        self.command_id == NOP_COMMAND_ID
            && self.status == ADMIN_STATUS_SUCCESS
            && self.result0 == NOP_RESULT0
    }
}

/// The driver's consumer position in a completion ring: the next slot to read and the phase
/// tag a fresh entry carries there (1 on the first pass, inverted on every wrap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqCursor {
    pub head: u32,
    pub phase: u8,
    pub entries: u32,
}

impl CqCursor {
    /// Cursor for a freshly zeroed ring of `entries` slots (`entries` >= 1).
    pub const fn new(entries: u32) -> Self {
        Self {
            head: 0,
            phase: 1,
            entries,
        }
    }

    /// True if an entry with this phase tag at `head` is new.
    pub fn is_new(&self, entry_phase: u8) -> bool {
        entry_phase == self.phase
    }

    /// Moves past the entry at `head`.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head >= self.entries {
            self.head = 0;
            self.phase ^= 1;
        }
    }
}

/// Index after `tail` in a ring of `entries` slots.
pub fn ring_next(tail: u32, entries: u32) -> u32 {
    if tail + 1 >= entries {
        0
    } else {
        tail + 1
    }
}

/// Finds BAR0 among the translated resources: the `CmResourceTypeMemory` descriptor whose length
/// is 64 KiB. Returns its physical start.
pub fn find_bar0(descriptors: &[CM_PARTIAL_RESOURCE_DESCRIPTOR]) -> Option<i64> {
    descriptors.iter().find_map(|d| match d.memory_range() {
        Some((start, BAR0_LEN)) if d.Type == CmResourceTypeMemory => Some(start),
        _ => None,
    })
}

/// Splits a physical address into the (low, high) register halves.
pub fn split_phys(pa: i64) -> (u32, u32) {
    let v = pa as u64;
    (v as u32, (v >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nop_encoding() {
        let d = encode_command(OPCODE_NOP, NOP_COMMAND_ID, &[0; 14]);
        let mut bytes = [0u8; 64];
        for (i, w) in d.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(bytes[0], OPCODE_NOP);
        assert_eq!(bytes[1], 0, "flags are RsvdZ");
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), NOP_COMMAND_ID);
        assert!(bytes[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn operands_land_at_offset_8() {
        let mut ops = [0u32; 14];
        ops[0] = 0xAABB_CCDD;
        ops[13] = 7;
        let d = encode_command(0x12, 0x3456, &ops);
        assert_eq!(d[0], 0x3456_0012);
        assert_eq!(d[1], 0);
        assert_eq!(d[2], 0xAABB_CCDD);
        assert_eq!(d[15], 7);
    }

    #[test]
    fn completion_decoding() {
        // result0, result1, cmd id 1 | sq head 1 << 16, status 0 | phase 1 << 16
        let c = AdminCompletion::decode([NOP_RESULT0, 0, 0x0001_0001, 0x0001_0000]);
        assert_eq!(c.command_id, 1);
        assert_eq!(c.sq_head, 1);
        assert_eq!(c.status, 0);
        assert_eq!(c.phase, 1);
        assert!(c.is_good_nop());
        let bad = AdminCompletion::decode([NOP_RESULT0, 0, 1, 0x0001_0001]);
        assert_eq!(bad.status, 1);
        assert!(!bad.is_good_nop());
        let wrong_result = AdminCompletion::decode([0, 0, 1, 0x0001_0000]);
        assert!(!wrong_result.is_good_nop());
        // Reserved bits above the phase bit are ignored.
        assert_eq!(AdminCompletion::decode([0, 0, 0, 0xFFFE_0000]).phase, 0);
    }

    #[test]
    fn cursor_phase_inverts_on_wrap() {
        let mut c = CqCursor::new(2);
        assert!(c.is_new(1));
        assert!(!c.is_new(0), "zeroed slot is not new");
        c.advance();
        assert_eq!((c.head, c.phase), (1, 1));
        c.advance();
        assert_eq!((c.head, c.phase), (0, 0));
        assert!(c.is_new(0));
        assert!(!c.is_new(1), "last pass's entry is stale");
        c.advance();
        c.advance();
        assert_eq!((c.head, c.phase), (0, 1));
    }

    #[test]
    fn ring_next_wraps() {
        assert_eq!(ring_next(0, 16), 1);
        assert_eq!(ring_next(15, 16), 0);
    }

    #[test]
    fn bar0_search() {
        let ds = [
            CM_PARTIAL_RESOURCE_DESCRIPTOR::message_interrupt(0x40, 5, 1),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC001_0000, 0x2000, 0),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC000_0000, BAR0_LEN, 0),
        ];
        assert_eq!(find_bar0(&ds), Some(0xC000_0000));
        assert_eq!(find_bar0(&ds[..2]), None);
        assert_eq!(find_bar0(&[]), None);
    }

    #[test]
    fn phys_split() {
        assert_eq!(split_phys(0x1_2345_6780), (0x2345_6780, 1));
        assert_eq!(split_phys(0x8000), (0x8000, 0));
    }
}
