//! Pure driver logic over the device contract: admin command encoding and completion
//! decoding in the dword form the driver's volatile accesses use, completion-ring phase
//! tracking, and the BAR0 search in the resource list.
//!
//! Every number and byte layout comes from the `rnic-contract` crate (the device contract
//! as code, `docs/device-spec.md`); this module only adapts it to the driver's MMIO helpers
//! (`usize` offsets) and keeps the driver's own choices (ring sizes, the bring-up NOP id).
//!
//! No FFI and no MMIO here, so the module also compiles on the host: the
//! `artifact-check` crate includes this file (`#[path]`) and runs the tests below.

use ndis_abi::{CmResourceTypeMemory, CM_PARTIAL_RESOURCE_DESCRIPTOR};
use rnic_contract::admin::{self as contract, opcode, CommandRepr, CompletionRepr};
use rnic_contract::bar0;

/// BAR0 register offsets as the driver's `rd`/`wr` helpers take them (byte offsets into
/// the mapped BAR), and the register bits the driver tests. Values: `rnic_contract::bar0`
/// (docs/device-spec.md section 2).
pub mod reg {
    use rnic_contract::bar0::{self, dev_ctrl, dev_status};

    /// `VERSION`: major (31:16), minor (15:0).
    pub const VERSION: usize = bar0::VERSION as usize;
    /// `CAPS`: feature bits.
    pub const CAPS: usize = bar0::CAPS as usize;
    /// `DEV_CTRL`: enable and reset.
    pub const DEV_CTRL: usize = bar0::DEV_CTRL as usize;
    /// `DEV_STATUS`: ready, fatal, admin error, link.
    pub const DEV_STATUS: usize = bar0::DEV_STATUS as usize;
    /// `ADMIN_ERROR`: cause of `DEV_STATUS.ADMIN_ERR`.
    pub const ADMIN_ERROR: usize = bar0::ADMIN_ERROR as usize;
    /// Admin submission ring base, low half.
    pub const ASQ_BASE_LO: usize = bar0::ASQ_BASE_LO as usize;
    /// Admin submission ring base, high half.
    pub const ASQ_BASE_HI: usize = bar0::ASQ_BASE_HI as usize;
    /// Admin submission ring size in entries.
    pub const ASQ_SIZE: usize = bar0::ASQ_SIZE as usize;
    /// Admin completion ring base, low half.
    pub const ACQ_BASE_LO: usize = bar0::ACQ_BASE_LO as usize;
    /// Admin completion ring base, high half.
    pub const ACQ_BASE_HI: usize = bar0::ACQ_BASE_HI as usize;
    /// Admin completion ring size in entries.
    pub const ACQ_SIZE: usize = bar0::ACQ_SIZE as usize;
    /// Doorbell: submission producer index.
    pub const ASQ_TAIL: usize = bar0::ASQ_TAIL as usize;
    /// Device's submission consumer index.
    pub const ASQ_HEAD: usize = bar0::ASQ_HEAD as usize;
    /// Doorbell: completion consumer index.
    pub const ACQ_HEAD: usize = bar0::ACQ_HEAD as usize;
    /// Device's completion producer index.
    pub const ACQ_TAIL: usize = bar0::ACQ_TAIL as usize;

    /// `DEV_CTRL.ENABLE`.
    pub const DEV_CTRL_ENABLE: u32 = dev_ctrl::ENABLE;
    /// `DEV_CTRL.RESET`.
    pub const DEV_CTRL_RESET: u32 = dev_ctrl::RESET;
    /// `DEV_STATUS.READY`.
    pub const DEV_STATUS_READY: u32 = dev_status::READY;
    /// `DEV_STATUS.FATAL`.
    pub const DEV_STATUS_FATAL: u32 = dev_status::FATAL;
    /// `DEV_STATUS.ADMIN_ERR`.
    pub const DEV_STATUS_ADMIN_ERR: u32 = dev_status::ADMIN_ERR;
    /// `DEV_STATUS.LINK_UP`.
    pub const DEV_STATUS_LINK_UP: u32 = dev_status::LINK_UP;
}

/// Size of BAR0 in bytes, as `NdisMMapIoSpace` takes it; also how the BAR0 resource is
/// recognised.
pub const BAR0_LEN: u32 = rnic_contract::pci::BAR0_SIZE as u32;
/// Register-interface major version this driver speaks (`VERSION[31:16]`).
pub const SUPPORTED_MAJOR: u32 = bar0::VERSION_MAJOR;

/// Admin submission ring entries the driver allocates (a driver choice, 2..=4096).
pub const ASQ_ENTRIES: u32 = 16;
/// Admin completion ring entries the driver allocates (a driver choice, 2..=4096).
pub const ACQ_ENTRIES: u32 = 16;
/// Bytes per admin command.
pub const ASQ_ENTRY_BYTES: u32 = contract::COMMAND_SIZE as u32;
/// Bytes per admin completion.
pub const ACQ_ENTRY_BYTES: u32 = contract::COMPLETION_SIZE as u32;
/// Bytes of the submission ring allocation.
pub const ASQ_BYTES: u32 = ASQ_ENTRIES * ASQ_ENTRY_BYTES;
/// Bytes of the completion ring allocation.
pub const ACQ_BYTES: u32 = ACQ_ENTRIES * ACQ_ENTRY_BYTES;
/// Required alignment of the submission ring, as the allocator takes it.
pub const ASQ_ALIGN: i64 = contract::ASQ_ALIGN as i64;
/// Required alignment of the completion ring, as the allocator takes it.
pub const ACQ_ALIGN: i64 = contract::ACQ_ALIGN as i64;

/// The `NOP` opcode, sent at bring-up.
pub const OPCODE_NOP: u8 = opcode::NOP;
/// Command id of the bring-up NOP (a driver choice).
pub const NOP_COMMAND_ID: u16 = 1;
/// `result0` of a successful NOP: "NOP\0".
pub const NOP_RESULT0: u32 = contract::NOP_RESULT0;
/// Status of a successful admin command.
pub const ADMIN_STATUS_SUCCESS: u16 = contract::STATUS_SUCCESS;

/// Encodes an admin command as the 16 little-endian dwords (64 bytes) the driver writes to
/// the submission ring; `operands` are the 56 operand bytes as 14 dwords.
pub fn encode_command(opcode: u8, command_id: u16, operands: &[u32; 14]) -> [u32; 16] {
    let mut cmd = CommandRepr::new(opcode, command_id);
    for (chunk, w) in cmd.operands.chunks_exact_mut(4).zip(operands) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let bytes = cmd.to_bytes();
    let mut d = [0u32; 16];
    for (w, chunk) in d.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    d
}

/// A decoded admin completion entry, in the form the driver's completion handler uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminCompletion {
    /// Result 0 (opcode-specific).
    pub result0: u32,
    /// Result 1 (opcode-specific).
    pub result1: u32,
    /// The completed command's id.
    pub command_id: u16,
    /// `ASQ_HEAD` after the command was consumed.
    pub sq_head: u16,
    /// Status (0 = success).
    pub status: u16,
    /// Phase tag, 0 or 1.
    pub phase: u8,
}

impl AdminCompletion {
    /// Decodes the entry from its four little-endian dwords (the contract's layout).
    pub fn decode(d: [u32; 4]) -> Self {
        let c = CompletionRepr::from_dwords(d);
        Self {
            result0: c.result0,
            result1: c.result1,
            command_id: c.id,
            sq_head: c.sq_head,
            status: c.status,
            phase: u8::from(c.phase),
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
    /// Next slot to read.
    pub head: u32,
    /// Phase tag a fresh entry carries at `head`.
    pub phase: u8,
    /// Slots in the ring.
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
