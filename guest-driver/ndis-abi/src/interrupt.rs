//! `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` (for `NdisMRegisterInterruptEx`) and the
//! `IO_INTERRUPT_MESSAGE_INFO` table NDIS returns for message-signalled interrupts.

use crate::handlers::*;
use crate::header::NDIS_OBJECT_HEADER;
use crate::types::{KAFFINITY, KIRQL, PHYSICAL_ADDRESS};

pub const NDIS_MINIPORT_INTERRUPT_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1: u16 = 0x60;

/// `NDIS_INTERRUPT_TYPE` (enum, 4 bytes): output field `InterruptType`.
pub type NDIS_INTERRUPT_TYPE = u32;
pub const NDIS_CONNECT_LINE_BASED: NDIS_INTERRUPT_TYPE = 1;
pub const NDIS_CONNECT_MESSAGE_BASED: NDIS_INTERRUPT_TYPE = 2;

/// `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` (x64, 0x60 bytes). Header: type 0x84, revision 1,
/// size 0x60. `InterruptType` and `MessageInfoTable` are written by NDIS on success.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub InterruptHandler: Option<MiniportIsrFn>,
    pub InterruptDpcHandler: Option<MiniportInterruptDpcFn>,
    pub DisableInterruptHandler: Option<MiniportInterruptControlFn>,
    pub EnableInterruptHandler: Option<MiniportInterruptControlFn>,
    pub MsiSupported: u8,
    pub MsiSyncWithAllMessages: u8,
    pub MessageInterruptHandler: Option<MiniportMessageIsrFn>,
    pub MessageInterruptDpcHandler: Option<MiniportMessageInterruptDpcFn>,
    pub DisableMessageInterruptHandler: Option<MiniportMessageInterruptControlFn>,
    pub EnableMessageInterruptHandler: Option<MiniportMessageInterruptControlFn>,
    pub InterruptType: NDIS_INTERRUPT_TYPE,
    pub MessageInfoTable: *mut IO_INTERRUPT_MESSAGE_INFO,
}

/// `KINTERRUPT_MODE`.
pub type KINTERRUPT_MODE = u32;
pub const LevelSensitive: KINTERRUPT_MODE = 0;
pub const Latched: KINTERRUPT_MODE = 1;
/// `KINTERRUPT_POLARITY`.
pub type KINTERRUPT_POLARITY = u32;
pub const InterruptPolarityUnknown: KINTERRUPT_POLARITY = 0;
pub const InterruptRisingEdge: KINTERRUPT_POLARITY = 1;

/// `IO_INTERRUPT_MESSAGE_INFO_ENTRY` (x64, 0x30 bytes): one MSI/MSI-X message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_INTERRUPT_MESSAGE_INFO_ENTRY {
    pub MessageAddress: PHYSICAL_ADDRESS,
    pub TargetProcessorSet: KAFFINITY,
    /// `PKINTERRUPT` (opaque).
    pub InterruptObject: *mut core::ffi::c_void,
    pub MessageData: u32,
    pub Vector: u32,
    pub Irql: KIRQL,
    pub Mode: KINTERRUPT_MODE,
    pub Polarity: KINTERRUPT_POLARITY,
}

/// `IO_INTERRUPT_MESSAGE_INFO` header (x64): `UnifiedIrql` at 0, `MessageCount` at 4, then
/// `MessageCount` entries starting at offset 8 (declared `MessageInfo[1]` in C; the table is
/// variable-length, so `size_of` of this struct covers exactly one entry: 0x38).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_INTERRUPT_MESSAGE_INFO {
    pub UnifiedIrql: KIRQL,
    pub MessageCount: u32,
    pub MessageInfo: [IO_INTERRUPT_MESSAGE_INFO_ENTRY; 1],
}

/// Byte offset of the first entry inside `IO_INTERRUPT_MESSAGE_INFO`.
pub const IO_INTERRUPT_MESSAGE_INFO_ENTRIES_OFFSET: usize = 8;

/// Bytes needed for a table with `count` entries (at least one entry, as in C).
pub const fn io_interrupt_message_info_size(count: usize) -> usize {
    let n = if count == 0 { 1 } else { count };
    IO_INTERRUPT_MESSAGE_INFO_ENTRIES_OFFSET
        + n * core::mem::size_of::<IO_INTERRUPT_MESSAGE_INFO_ENTRY>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn interrupt_characteristics_layout() {
        type T = NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS;
        assert_eq!(size_of::<T>(), 0x60);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, InterruptHandler), 0x08);
        assert_eq!(offset_of!(T, InterruptDpcHandler), 0x10);
        assert_eq!(offset_of!(T, DisableInterruptHandler), 0x18);
        assert_eq!(offset_of!(T, EnableInterruptHandler), 0x20);
        assert_eq!(offset_of!(T, MsiSupported), 0x28);
        assert_eq!(offset_of!(T, MsiSyncWithAllMessages), 0x29);
        assert_eq!(offset_of!(T, MessageInterruptHandler), 0x30);
        assert_eq!(offset_of!(T, MessageInterruptDpcHandler), 0x38);
        assert_eq!(offset_of!(T, DisableMessageInterruptHandler), 0x40);
        assert_eq!(offset_of!(T, EnableMessageInterruptHandler), 0x48);
        assert_eq!(offset_of!(T, InterruptType), 0x50);
        assert_eq!(offset_of!(T, MessageInfoTable), 0x58);
        assert_eq!(
            NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1 as usize,
            size_of::<T>()
        );
    }

    #[test]
    fn message_info_layout() {
        type E = IO_INTERRUPT_MESSAGE_INFO_ENTRY;
        assert_eq!(size_of::<E>(), 0x30);
        assert_eq!(offset_of!(E, MessageAddress), 0x00);
        assert_eq!(offset_of!(E, TargetProcessorSet), 0x08);
        assert_eq!(offset_of!(E, InterruptObject), 0x10);
        assert_eq!(offset_of!(E, MessageData), 0x18);
        assert_eq!(offset_of!(E, Vector), 0x1C);
        assert_eq!(offset_of!(E, Irql), 0x20);
        assert_eq!(offset_of!(E, Mode), 0x24);
        assert_eq!(offset_of!(E, Polarity), 0x28);

        type T = IO_INTERRUPT_MESSAGE_INFO;
        assert_eq!(offset_of!(T, UnifiedIrql), 0x00);
        assert_eq!(offset_of!(T, MessageCount), 0x04);
        assert_eq!(
            offset_of!(T, MessageInfo),
            IO_INTERRUPT_MESSAGE_INFO_ENTRIES_OFFSET
        );
        assert_eq!(size_of::<T>(), 0x38);
        assert_eq!(io_interrupt_message_info_size(0), 0x38);
        assert_eq!(io_interrupt_message_info_size(16), 8 + 16 * 0x30);
    }
}
