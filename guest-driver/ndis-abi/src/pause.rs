//! `NDIS_MINIPORT_PAUSE_PARAMETERS` and `NDIS_MINIPORT_RESTART_PARAMETERS`: what NDIS passes
//! to MiniportPause and MiniportRestart, which move an adapter between Paused and Running.

use core::ffi::c_void;

use crate::header::NDIS_OBJECT_HEADER;

/// `NDIS_MINIPORT_PAUSE_PARAMETERS_REVISION_1`.
pub const NDIS_MINIPORT_PAUSE_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_MINIPORT_PAUSE_PARAMETERS_REVISION_1`: through `PauseReason` (0xC).
pub const NDIS_SIZEOF_MINIPORT_PAUSE_PARAMETERS_REVISION_1: u16 = 0xC;
/// `NDIS_MINIPORT_RESTART_PARAMETERS_REVISION_1`.
pub const NDIS_MINIPORT_RESTART_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_MINIPORT_RESTART_PARAMETERS_REVISION_1`: through `Flags` (0x14).
pub const NDIS_SIZEOF_MINIPORT_RESTART_PARAMETERS_REVISION_1: u16 = 0x14;
/// `NDIS_PAUSE_NDIS_INTERNAL`: the pause reason NDIS 6.40 and later always pass (except a
/// final pause before removal).
pub const NDIS_PAUSE_NDIS_INTERNAL: u32 = 0x0000_0001;

/// `NDIS_MINIPORT_PAUSE_PARAMETERS` (x64, 0xC bytes). Header: type
/// `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size 0xC.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_MINIPORT_PAUSE_PARAMETERS {
    /// `Header`: type 0x80, revision 1, size 0xC.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved (0).
    pub Flags: u32,
    /// `PauseReason`: `NDIS_PAUSE_*` (deprecated from NDIS 6.40; `NDIS_PAUSE_NDIS_INTERNAL`).
    pub PauseReason: u32,
}

/// `NDIS_MINIPORT_RESTART_PARAMETERS` (x64, 0x18 bytes with padding; revision-1 size 0x14).
/// Header: type `NDIS_OBJECT_TYPE_DEFAULT`, revision 1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_MINIPORT_RESTART_PARAMETERS {
    /// `Header`: type 0x80, revision 1, size 0x14.
    pub Header: NDIS_OBJECT_HEADER,
    /// `RestartAttributes`: `PNDIS_RESTART_ATTRIBUTES`, a linked list of restart attributes
    /// (NULL: none).
    pub RestartAttributes: *mut c_void,
    /// `Flags`: reserved (0).
    pub Flags: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn pause_parameters_layout() {
        type T = NDIS_MINIPORT_PAUSE_PARAMETERS;
        assert_eq!(size_of::<T>(), 0xC);
        assert_eq!(offset_of!(T, Flags), 0x4);
        assert_eq!(offset_of!(T, PauseReason), 0x8);
        assert_eq!(
            offset_of!(T, PauseReason) + 4,
            NDIS_SIZEOF_MINIPORT_PAUSE_PARAMETERS_REVISION_1 as usize
        );
    }

    #[test]
    fn restart_parameters_layout() {
        type T = NDIS_MINIPORT_RESTART_PARAMETERS;
        assert_eq!(size_of::<T>(), 0x18);
        assert_eq!(offset_of!(T, RestartAttributes), 0x8);
        assert_eq!(offset_of!(T, Flags), 0x10);
        assert_eq!(
            offset_of!(T, Flags) + 4,
            NDIS_SIZEOF_MINIPORT_RESTART_PARAMETERS_REVISION_1 as usize
        );
    }
}
