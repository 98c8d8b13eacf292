//! `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` (for `NdisMRegisterInterruptEx`) and the
//! `IO_INTERRUPT_MESSAGE_INFO` table NDIS returns for message-signalled interrupts.

use crate::handlers::*;
use crate::header::NDIS_OBJECT_HEADER;
use crate::types::{KAFFINITY, KIRQL, PHYSICAL_ADDRESS};

/// `NDIS_MINIPORT_INTERRUPT_REVISION_1`: the NDIS 6.0 revision.
pub const NDIS_MINIPORT_INTERRUPT_REVISION_1: u8 = 1;
/// Size of the revision-1 interrupt characteristics (the whole x64 structure).
pub const NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1: u16 = 0x60;

/// `NDIS_INTERRUPT_TYPE` (enum, 4 bytes): output field `InterruptType`.
pub type NDIS_INTERRUPT_TYPE = u32;
/// `NDIS_CONNECT_LINE_BASED`: NDIS connected a line-based (INTx) interrupt.
pub const NDIS_CONNECT_LINE_BASED: NDIS_INTERRUPT_TYPE = 1;
/// `NDIS_CONNECT_MESSAGE_BASED`: NDIS connected message-signalled interrupts (MSI/MSI-X).
pub const NDIS_CONNECT_MESSAGE_BASED: NDIS_INTERRUPT_TYPE = 2;

/// `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` (x64, 0x60 bytes). Header: type 0x84, revision 1,
/// size 0x60. `InterruptType` and `MessageInfoTable` are written by NDIS on success.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
    /// `Header`: type `NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT`, revision 1, size 0x60.
    pub Header: NDIS_OBJECT_HEADER,
    /// `InterruptHandler`: `MiniportInterrupt`, the line-based ISR (DIRQL) (required).
    pub InterruptHandler: Option<MiniportIsrFn>,
    /// `InterruptDpcHandler`: `MiniportInterruptDPC`, the line-based DPC (DISPATCH_LEVEL) (required).
    pub InterruptDpcHandler: Option<MiniportInterruptDpcFn>,
    /// `DisableInterruptHandler`: `MiniportDisableInterruptEx`, masks the device's line interrupt (optional).
    pub DisableInterruptHandler: Option<MiniportInterruptControlFn>,
    /// `EnableInterruptHandler`: `MiniportEnableInterruptEx`, unmasks the device's line interrupt (optional).
    pub EnableInterruptHandler: Option<MiniportInterruptControlFn>,
    /// `MsiSupported` (BOOLEAN): TRUE when the message handlers below are valid and MSI/MSI-X is wanted.
    pub MsiSupported: u8,
    /// `MsiSyncWithAllMessages` (BOOLEAN): TRUE to serialize NdisMSynchronizeWithInterruptEx against every message's ISR.
    pub MsiSyncWithAllMessages: u8,
    /// `MessageInterruptHandler`: `MiniportMessageInterrupt`, the per-message ISR (DIRQL).
    pub MessageInterruptHandler: Option<MiniportMessageIsrFn>,
    /// `MessageInterruptDpcHandler`: `MiniportMessageInterruptDPC`, the per-message DPC (DISPATCH_LEVEL).
    pub MessageInterruptDpcHandler: Option<MiniportMessageInterruptDpcFn>,
    /// `DisableMessageInterruptHandler`: `MiniportDisableMessageInterrupt`, masks one message (optional).
    pub DisableMessageInterruptHandler: Option<MiniportMessageInterruptControlFn>,
    /// `EnableMessageInterruptHandler`: `MiniportEnableMessageInterrupt`, unmasks one message (optional).
    pub EnableMessageInterruptHandler: Option<MiniportMessageInterruptControlFn>,
    /// `InterruptType` (output): `NDIS_CONNECT_LINE_BASED` or `NDIS_CONNECT_MESSAGE_BASED`.
    pub InterruptType: NDIS_INTERRUPT_TYPE,
    /// `MessageInfoTable` (output): for message-based interrupts, the table describing each connected message.
    pub MessageInfoTable: *mut IO_INTERRUPT_MESSAGE_INFO,
}

/// `KINTERRUPT_MODE`.
pub type KINTERRUPT_MODE = u32;
/// `LevelSensitive`: the interrupt is asserted while the line is held.
pub const LevelSensitive: KINTERRUPT_MODE = 0;
/// `Latched`: edge-triggered; every MSI/MSI-X message is latched.
pub const Latched: KINTERRUPT_MODE = 1;
/// `KINTERRUPT_POLARITY`.
pub type KINTERRUPT_POLARITY = u32;
/// `InterruptPolarityUnknown`: the polarity is not reported.
pub const InterruptPolarityUnknown: KINTERRUPT_POLARITY = 0;
/// `InterruptRisingEdge`: triggered on a rising edge (what messages report).
pub const InterruptRisingEdge: KINTERRUPT_POLARITY = 1;

/// `IO_INTERRUPT_MESSAGE_INFO_ENTRY` (x64, 0x30 bytes): one MSI/MSI-X message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_INTERRUPT_MESSAGE_INFO_ENTRY {
    /// `MessageAddress`: the physical address the device writes to signal this message.
    pub MessageAddress: PHYSICAL_ADDRESS,
    /// `TargetProcessorSet`: processors this message is delivered to (bit per processor).
    pub TargetProcessorSet: KAFFINITY,
    /// `PKINTERRUPT` (opaque).
    pub InterruptObject: *mut core::ffi::c_void,
    /// `MessageData`: the 32-bit value the device writes to `MessageAddress`.
    pub MessageData: u32,
    /// `Vector`: the IDT vector the message arrives on.
    pub Vector: u32,
    /// `Irql`: the DIRQL the ISR of this message runs at.
    pub Irql: KIRQL,
    /// `Mode`: `Latched` for messages.
    pub Mode: KINTERRUPT_MODE,
    /// `Polarity`: `InterruptRisingEdge` for messages.
    pub Polarity: KINTERRUPT_POLARITY,
}

/// `IO_INTERRUPT_MESSAGE_INFO` header (x64): `UnifiedIrql` at 0, `MessageCount` at 4, then
/// `MessageCount` entries starting at offset 8 (declared `MessageInfo[1]` in C; the table is
/// variable-length, so `size_of` of this struct covers exactly one entry: 0x38).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_INTERRUPT_MESSAGE_INFO {
    /// `UnifiedIrql`: the one DIRQL all messages' ISRs run at when they are synchronized together.
    pub UnifiedIrql: KIRQL,
    /// `MessageCount`: number of entries in `MessageInfo`.
    pub MessageCount: u32,
    /// `MessageInfo`: the first of `MessageCount` entries (the table continues past this struct).
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
