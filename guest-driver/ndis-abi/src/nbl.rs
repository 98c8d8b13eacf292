//! `NET_BUFFER_LIST`: only the fixed prefix the skeleton touches (`Next` to walk a chain,
//! `Status` to complete a send).
//!
//! The real structure continues with `NetBufferListInfo[]` at 0x90, whose length grows with the
//! Windows release (26 entries in 10 1709, 29 later); anyone who *allocates* NBLs (the guest)
//! must allocate at least [`NET_BUFFER_LIST_MIN_ALLOCATION`] bytes, 16-byte aligned.

use core::ffi::c_void;

/// `NDIS_SEND_FLAGS_DISPATCH_LEVEL`: the send handler runs at DISPATCH_LEVEL.
pub const NDIS_SEND_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// `NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL`: the caller of NdisMSendNetBufferListsComplete
/// is at DISPATCH_LEVEL.
pub const NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// `NDIS_RETURN_FLAGS_DISPATCH_LEVEL`.
pub const NDIS_RETURN_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;

/// Number of `NetBufferListInfo` slots in the newest layout this crate knows (29).
pub const NET_BUFFER_LIST_INFO_MAX: usize = 29;
/// Bytes a host must allocate per NBL so a driver built for any NDIS 6.x release stays in bounds.
pub const NET_BUFFER_LIST_MIN_ALLOCATION: usize = 0x90 + NET_BUFFER_LIST_INFO_MAX * 8;

/// Fixed prefix of `NET_BUFFER_LIST` (x64). 16-byte aligned because its first member overlays an
/// `SLIST_HEADER`; `NdisReserved` is declared `DECLSPEC_ALIGN(16)`, hence the hole at 0x28.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct NET_BUFFER_LIST {
    /// `Next`: the next NBL of a chain (NULL ends it).
    pub Next: *mut NET_BUFFER_LIST,
    /// `FirstNetBuffer`: the first `NET_BUFFER` (one frame each) of this list.
    pub FirstNetBuffer: *mut c_void,
    /// `Context`: the top `NET_BUFFER_LIST_CONTEXT` of the context stack (owned by the current driver).
    pub Context: *mut c_void,
    /// `ParentNetBufferList`: the parent NBL if this one is a clone or fragment, else NULL.
    pub ParentNetBufferList: *mut NET_BUFFER_LIST,
    /// `NdisPoolHandle`: the pool the NBL was allocated from (owned by NDIS).
    pub NdisPoolHandle: *mut c_void,
    /// Padding before `NdisReserved`, which is 16-byte aligned (no WDK name; never used).
    pub _AlignmentHole: u64,
    /// `NdisReserved`: reserved for NDIS.
    pub NdisReserved: [*mut c_void; 2],
    /// `ProtocolReserved`: scratch space of the protocol driver that owns the NBL.
    pub ProtocolReserved: [*mut c_void; 4],
    /// `MiniportReserved`: scratch space of the miniport while it owns the NBL (for example a send queue link).
    pub MiniportReserved: [*mut c_void; 2],
    /// `Scratch`: scratch space of the current owner.
    pub Scratch: *mut c_void,
    /// `SourceHandle`: the NDIS handle of the driver that originated the NBL (set by NDIS).
    pub SourceHandle: *mut c_void,
    /// `NblFlags`: `NBL_FLAGS_*` bits describing the NBL (set by NDIS and protocols).
    pub NblFlags: u32,
    /// `ChildRefCount`: number of outstanding child NBLs of a parent.
    pub ChildRefCount: i32,
    /// `Flags`: `NDIS_NBL_FLAGS_*` attribute bits (IPv4/IPv6, TCP/UDP, receive-side hints, ...).
    pub Flags: u32,
    /// `NET_BUFFER_LIST_STATUS()`: set by the miniport before completing a send.
    pub Status: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn prefix_layout() {
        type T = NET_BUFFER_LIST;
        assert_eq!(align_of::<T>(), 16);
        assert_eq!(size_of::<T>(), 0x90);
        assert_eq!(offset_of!(T, Next), 0x00);
        assert_eq!(offset_of!(T, FirstNetBuffer), 0x08);
        assert_eq!(offset_of!(T, Context), 0x10);
        assert_eq!(offset_of!(T, ParentNetBufferList), 0x18);
        assert_eq!(offset_of!(T, NdisPoolHandle), 0x20);
        assert_eq!(offset_of!(T, NdisReserved), 0x30);
        assert_eq!(offset_of!(T, ProtocolReserved), 0x40);
        assert_eq!(offset_of!(T, MiniportReserved), 0x60);
        assert_eq!(offset_of!(T, Scratch), 0x70);
        assert_eq!(offset_of!(T, SourceHandle), 0x78);
        assert_eq!(offset_of!(T, NblFlags), 0x80);
        assert_eq!(offset_of!(T, ChildRefCount), 0x84);
        assert_eq!(offset_of!(T, Flags), 0x88);
        assert_eq!(offset_of!(T, Status), 0x8C);
        assert_eq!(NET_BUFFER_LIST_MIN_ALLOCATION, 0x180 - 8);
    }

    /// The data path's DISPATCH_LEVEL flags, as ndis/nblapi.h and ndis/nblreceive.h (WDK
    /// header copies) define them: the verifier's `NdisNblFlagsIrql` rule rests on them.
    #[test]
    fn dispatch_level_flag_values() {
        assert_eq!(NDIS_SEND_FLAGS_DISPATCH_LEVEL, 0x1);
        assert_eq!(NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL, 0x1);
        assert_eq!(NDIS_RETURN_FLAGS_DISPATCH_LEVEL, 0x1);
        assert_eq!(crate::netbuf::NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, 0x1);
    }
}
