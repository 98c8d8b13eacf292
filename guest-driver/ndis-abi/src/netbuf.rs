//! `NET_BUFFER`, `MDL` and the scatter/gather list: what a NET_BUFFER_LIST's frames are made
//! of, and what NdisMAllocateNetBufferSGList hands the miniport's ProcessSGList handler for
//! DMA. x64 layouts as in the WDK's ndis/nblapi.h-era headers (`NET_BUFFER`), wdm.h (`MDL`,
//! `SCATTER_GATHER_LIST`).

use core::ffi::c_void;

use crate::nbl::NET_BUFFER_LIST;
use crate::types::NDIS_PHYSICAL_ADDRESS;

/// `MDL` (x64, 0x30 bytes): describes one virtually contiguous buffer. The data a NET_BUFFER
/// covers starts `DataOffset` bytes into its MDL chain.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MDL {
    /// `Next`: the next MDL of the chain (NULL: last).
    pub Next: *mut MDL,
    /// `Size`: bytes of this MDL structure including its page array.
    pub Size: i16,
    /// `MdlFlags`: `MDL_*` (for example `MDL_SOURCE_IS_NONPAGED_POOL`).
    pub MdlFlags: i16,
    /// `AllocationProcessorNumber` (Windows 7 and later; 0 otherwise).
    pub AllocationProcessorNumber: u16,
    /// `Reserved`.
    pub Reserved: u16,
    /// `Process`: owning process (NULL for system memory).
    pub Process: *mut c_void,
    /// `MappedSystemVa`: the buffer's system virtual address once mapped.
    pub MappedSystemVa: *mut c_void,
    /// `StartVa`: page-aligned virtual address of the buffer's first page.
    pub StartVa: *mut c_void,
    /// `ByteCount`: bytes in the buffer.
    pub ByteCount: u32,
    /// `ByteOffset`: offset of the buffer in its first page.
    pub ByteOffset: u32,
}

/// `MDL_SOURCE_IS_NONPAGED_POOL`: the buffer is nonpaged pool (mapped at `MappedSystemVa`).
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;

/// `NET_BUFFER` (x64, 0xB0 bytes, 16-byte aligned by the `SLIST_HEADER` of its first union):
/// one frame of a NET_BUFFER_LIST.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct NET_BUFFER {
    /// `Next`: the next NET_BUFFER of the same list.
    pub Next: *mut NET_BUFFER,
    /// `CurrentMdl`: the MDL holding the first used byte.
    pub CurrentMdl: *mut MDL,
    /// `CurrentMdlOffset`: offset of the first used byte in `CurrentMdl`.
    pub CurrentMdlOffset: u32,
    /// `DataLength` (union with `stDataLength`, SIZE_T): the frame's length in bytes.
    pub DataLength: u64,
    /// `MdlChain`: the first MDL of the chain.
    pub MdlChain: *mut MDL,
    /// `DataOffset`: offset of the first used byte from the start of `MdlChain`.
    pub DataOffset: u32,
    /// Tail padding of the first union (0x2C..0x30).
    pub _UnionTail: u32,
    /// `ChecksumBias`.
    pub ChecksumBias: u16,
    /// `Reserved`.
    pub Reserved: u16,
    /// `NdisPoolHandle`: the pool it came from.
    pub NdisPoolHandle: *mut c_void,
    /// `NdisReserved`.
    pub NdisReserved: [*mut c_void; 2],
    /// `ProtocolReserved`.
    pub ProtocolReserved: [*mut c_void; 6],
    /// `MiniportReserved`: the miniport's while it owns the NET_BUFFER.
    pub MiniportReserved: [*mut c_void; 4],
    /// `DataPhysicalAddress`.
    pub DataPhysicalAddress: NDIS_PHYSICAL_ADDRESS,
    /// `SharedMemoryInfo` / `ScatterGatherList` (union).
    pub ScatterGatherList: *mut SCATTER_GATHER_LIST,
}

/// `SCATTER_GATHER_ELEMENT` (x64, 0x18 bytes): one physically contiguous piece.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SCATTER_GATHER_ELEMENT {
    /// `Address`: bus address of the piece.
    pub Address: NDIS_PHYSICAL_ADDRESS,
    /// `Length`: bytes in the piece.
    pub Length: u32,
    /// `Reserved` (ULONG_PTR).
    pub Reserved: usize,
}

/// `SCATTER_GATHER_LIST` header (x64, 0x10 bytes); `NumberOfElements` elements follow at
/// [`SCATTER_GATHER_LIST_ELEMENTS_OFFSET`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SCATTER_GATHER_LIST {
    /// `NumberOfElements`.
    pub NumberOfElements: u32,
    /// `Reserved` (ULONG_PTR).
    pub Reserved: usize,
}

/// Offset of `Elements[0]` in a `SCATTER_GATHER_LIST`.
pub const SCATTER_GATHER_LIST_ELEMENTS_OFFSET: usize = 0x10;

/// `NET_BUFFER_LIST_FIRST_NB(nbl)`: the list's first NET_BUFFER.
///
/// # Safety
/// `nbl` points to a valid NET_BUFFER_LIST.
pub unsafe fn net_buffer_list_first_nb(nbl: *const NET_BUFFER_LIST) -> *mut NET_BUFFER {
    // SAFETY: guaranteed by the caller.
    unsafe { (*nbl).FirstNetBuffer.cast() }
}

/// `NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1`.
pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1`: through `DataSize` (0x10).
pub const NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u16 = 0x10;
/// `NDIS_PROTOCOL_ID_DEFAULT`: NBLs not tied to a protocol.
pub const NDIS_PROTOCOL_ID_DEFAULT: u8 = 0;
/// `NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL`: NdisMIndicateReceiveNetBufferLists is called at
/// DISPATCH_LEVEL.
pub const NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;

/// `NET_BUFFER_LIST_POOL_PARAMETERS` (x64, 0x10 bytes): what NdisAllocateNetBufferListPool
/// allocates. Header: type `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size 0x10.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NET_BUFFER_LIST_POOL_PARAMETERS {
    /// `Header`: type 0x80, revision 1, size 0x10.
    pub Header: crate::header::NDIS_OBJECT_HEADER,
    /// `ProtocolId`: `NDIS_PROTOCOL_ID_*`.
    pub ProtocolId: u8,
    /// `fAllocateNetBuffer`: TRUE: each NBL comes with one NET_BUFFER
    /// (NdisAllocateNetBufferAndNetBufferList).
    pub fAllocateNetBuffer: u8,
    /// `ContextSize`: bytes of NET_BUFFER_LIST_CONTEXT to preallocate (multiple of
    /// MEMORY_ALLOCATION_ALIGNMENT).
    pub ContextSize: u16,
    /// `PoolTag`: pool tag of the allocations.
    pub PoolTag: u32,
    /// `DataSize`: bytes of data buffer to preallocate per NET_BUFFER (0: none).
    pub DataSize: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Offsets from the WDK headers, checked against an x64 type dump of `NET_BUFFER` (size
    /// 0xB0, ChecksumBias at 0x30, ScatterGatherList at 0xA8) and, for the field order, the
    /// gVNIC test copy of the NDIS headers.
    #[test]
    fn mdl_layout() {
        assert_eq!(size_of::<MDL>(), 0x30);
        assert_eq!(offset_of!(MDL, Size), 0x8);
        assert_eq!(offset_of!(MDL, MdlFlags), 0xA);
        assert_eq!(offset_of!(MDL, Process), 0x10);
        assert_eq!(offset_of!(MDL, MappedSystemVa), 0x18);
        assert_eq!(offset_of!(MDL, StartVa), 0x20);
        assert_eq!(offset_of!(MDL, ByteCount), 0x28);
        assert_eq!(offset_of!(MDL, ByteOffset), 0x2C);
    }

    #[test]
    fn net_buffer_layout() {
        type T = NET_BUFFER;
        assert_eq!(size_of::<T>(), 0xB0);
        assert_eq!(offset_of!(T, CurrentMdl), 0x8);
        assert_eq!(offset_of!(T, CurrentMdlOffset), 0x10);
        assert_eq!(offset_of!(T, DataLength), 0x18);
        assert_eq!(offset_of!(T, MdlChain), 0x20);
        assert_eq!(offset_of!(T, DataOffset), 0x28);
        assert_eq!(offset_of!(T, ChecksumBias), 0x30);
        assert_eq!(offset_of!(T, Reserved), 0x32);
        assert_eq!(offset_of!(T, NdisPoolHandle), 0x38);
        assert_eq!(offset_of!(T, NdisReserved), 0x40);
        assert_eq!(offset_of!(T, ProtocolReserved), 0x50);
        assert_eq!(offset_of!(T, MiniportReserved), 0x80);
        assert_eq!(offset_of!(T, DataPhysicalAddress), 0xA0);
        assert_eq!(offset_of!(T, ScatterGatherList), 0xA8);
        assert_eq!(core::mem::align_of::<T>(), 16);
    }

    /// Field order and types as in the gVNIC copy of the NDIS headers
    /// (`NET_BUFFER_LIST_POOL_PARAMETERS`: Header, ProtocolId, fAllocateNetBuffer,
    /// ContextSize, PoolTag, DataSize).
    #[test]
    fn pool_parameters_layout() {
        type T = NET_BUFFER_LIST_POOL_PARAMETERS;
        assert_eq!(size_of::<T>(), 0x10);
        assert_eq!(offset_of!(T, ProtocolId), 0x4);
        assert_eq!(offset_of!(T, fAllocateNetBuffer), 0x5);
        assert_eq!(offset_of!(T, ContextSize), 0x6);
        assert_eq!(offset_of!(T, PoolTag), 0x8);
        assert_eq!(offset_of!(T, DataSize), 0xC);
        assert_eq!(
            offset_of!(T, DataSize) + 4,
            NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 as usize
        );
    }

    #[test]
    fn scatter_gather_layout() {
        assert_eq!(size_of::<SCATTER_GATHER_ELEMENT>(), 0x18);
        assert_eq!(offset_of!(SCATTER_GATHER_ELEMENT, Length), 0x8);
        assert_eq!(offset_of!(SCATTER_GATHER_ELEMENT, Reserved), 0x10);
        assert_eq!(
            size_of::<SCATTER_GATHER_LIST>(),
            SCATTER_GATHER_LIST_ELEMENTS_OFFSET
        );
    }
}
