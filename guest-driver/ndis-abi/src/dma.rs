//! `NDIS_SG_DMA_DESCRIPTION` (for `NdisMRegisterScatterGatherDma`).

use crate::handlers::{MiniportAllocateSharedMemCompleteFn, MiniportProcessSgListFn};
use crate::header::NDIS_OBJECT_HEADER;

/// `NDIS_SG_DMA_DESCRIPTION_REVISION_1`: the only revision before NDIS 6.85.
pub const NDIS_SG_DMA_DESCRIPTION_REVISION_1: u8 = 1;
/// `RTL_SIZEOF_THROUGH_FIELD(NDIS_SG_DMA_DESCRIPTION, ScatterGatherListSize)` = 0x24.
pub const NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1: u16 = 0x24;
/// The device can address 64-bit physical memory.
pub const NDIS_SG_DMA_64_BIT_ADDRESS: u32 = 0x0000_0001;

/// `NDIS_SG_DMA_DESCRIPTION` (x64, revision-1 layout, 0x28 bytes with padding). Header: type 0x83.
/// `ScatterGatherListSize` is an output. (NDIS 6.85 appends `PdoOverride` as revision 2; not used.)
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_SG_DMA_DESCRIPTION {
    /// `Header`: type `NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION`, revision 1, size 0x24.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: `NDIS_SG_DMA_64_BIT_ADDRESS` when the device addresses 64-bit physical memory.
    pub Flags: u32,
    /// `MaximumPhysicalMapping`: the largest number of bytes the device moves in one DMA transfer.
    pub MaximumPhysicalMapping: u32,
    /// `ProcessSGListHandler`: `MiniportProcessSGList`, called with each scatter/gather list NDIS builds for a send.
    pub ProcessSGListHandler: Option<MiniportProcessSgListFn>,
    /// `SharedMemAllocateCompleteHandler`: `MiniportSharedMemoryAllocateComplete`, for asynchronous shared-memory allocations (optional).
    pub SharedMemAllocateCompleteHandler: Option<MiniportAllocateSharedMemCompleteFn>,
    /// `ScatterGatherListSize` (output): bytes of the largest scatter/gather list NDIS may build, for preallocation.
    pub ScatterGatherListSize: u32,
}

/// `NDIS_SG_LIST_WRITE_TO_DEVICE`: NdisMAllocateNetBufferSGList maps the data for a transfer
/// to the device (a send).
pub const NDIS_SG_LIST_WRITE_TO_DEVICE: u32 = 0x0000_0001;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        type T = NDIS_SG_DMA_DESCRIPTION;
        assert_eq!(size_of::<T>(), 0x28);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, MaximumPhysicalMapping), 0x08);
        assert_eq!(offset_of!(T, ProcessSGListHandler), 0x10);
        assert_eq!(offset_of!(T, SharedMemAllocateCompleteHandler), 0x18);
        assert_eq!(offset_of!(T, ScatterGatherListSize), 0x20);
        assert_eq!(
            offset_of!(T, ScatterGatherListSize) + 4,
            NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1 as usize
        );
    }
}
