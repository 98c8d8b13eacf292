//! `NDIS_MINIPORT_DRIVER_CHARACTERISTICS` (passed to `NdisMRegisterMiniportDriver`) and
//! `NDIS_MINIPORT_INIT_PARAMETERS` (passed to `MiniportInitializeEx`).

use crate::handlers::*;
use crate::header::NDIS_OBJECT_HEADER;
use crate::resources::NDIS_RESOURCE_LIST;
use crate::types::NDIS_HANDLE;

/// Revision 1: NDIS 6.0, size through `CancelOidRequestHandler` (0x88).
pub const NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1: u8 = 1;
/// Revision 2: NDIS 6.1 and later (6.30 included): adds the direct-OID handlers; size 0x98.
pub const NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2: u8 = 2;
/// Revision 3: NDIS 6.80: adds `SynchronousOidRequestHandler`; size 0xA0.
pub const NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_3: u8 = 3;
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1: u16 = 0x88;
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2: u16 = 0x98;
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_3: u16 = 0xA0;

/// The characteristics revision and size NDIS requires for a declared NDIS version, or `None`
/// for a version this crate does not know (anything below 6.0 or above 6.89).
pub const fn required_characteristics_revision(major: u8, minor: u8) -> Option<(u8, u16)> {
    match (major, minor) {
        (6, 0) => Some((
            NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1,
        )),
        (6, 1..=79) => Some((
            NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2,
        )),
        (6, 80..=89) => Some((
            NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_3,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_3,
        )),
        _ => None,
    }
}

/// NDIS version the skeleton declares: 6.30 (Windows 8 / Server 2012, first with NDK).
pub const NDIS_MINIPORT_MAJOR_VERSION: u8 = 6;
pub const NDIS_MINIPORT_MINOR_VERSION: u8 = 30;

/// `NDIS_MINIPORT_DRIVER_CHARACTERISTICS` (x64, full revision-3 layout, 0xA0 bytes). A driver
/// declaring revision 1 or 2 sets `Header.Size` to the smaller size and NDIS must not read past it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_MINIPORT_DRIVER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MajorNdisVersion: u8,
    pub MinorNdisVersion: u8,
    pub MajorDriverVersion: u8,
    pub MinorDriverVersion: u8,
    pub Flags: u32,
    pub SetOptionsHandler: Option<MiniportSetOptionsFn>,
    pub InitializeHandlerEx: Option<MiniportInitializeFn>,
    pub HaltHandlerEx: Option<MiniportHaltFn>,
    pub UnloadHandler: Option<MiniportUnloadFn>,
    pub PauseHandler: Option<MiniportPauseFn>,
    pub RestartHandler: Option<MiniportRestartFn>,
    pub OidRequestHandler: Option<MiniportOidRequestFn>,
    pub SendNetBufferListsHandler: Option<MiniportSendNetBufferListsFn>,
    pub ReturnNetBufferListsHandler: Option<MiniportReturnNetBufferListsFn>,
    pub CancelSendHandler: Option<MiniportCancelSendFn>,
    pub CheckForHangHandlerEx: Option<MiniportCheckForHangFn>,
    pub ResetHandlerEx: Option<MiniportResetFn>,
    pub DevicePnPEventNotifyHandler: Option<MiniportDevicePnpEventNotifyFn>,
    pub ShutdownHandlerEx: Option<MiniportShutdownFn>,
    pub CancelOidRequestHandler: Option<MiniportCancelOidRequestFn>,
    // Revision 2 (NDIS 6.1)
    pub DirectOidRequestHandler: Option<MiniportOidRequestFn>,
    pub CancelDirectOidRequestHandler: Option<MiniportCancelOidRequestFn>,
    // Revision 3 (NDIS 6.80)
    pub SynchronousOidRequestHandler: Option<MiniportOidRequestFn>,
}

pub const NDIS_MINIPORT_INIT_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_MINIPORT_INIT_PARAMETER_REVISION_1: u16 = 0x40;

/// `NDIS_MINIPORT_INIT_PARAMETERS` (x64, 0x40 bytes), filled by NDIS for `MiniportInitializeEx`.
/// Header: type `NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS` (0x81), revision 1, size 0x40.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_INIT_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    /// Translated resources (`CM_PARTIAL_RESOURCE_LIST`).
    pub AllocatedResources: *mut NDIS_RESOURCE_LIST,
    pub IMDeviceInstanceContext: NDIS_HANDLE,
    pub MiniportAddDeviceContext: NDIS_HANDLE,
    /// `NET_IFINDEX` (ULONG).
    pub IfIndex: u32,
    /// `NET_LUID` (64-bit).
    pub NetLuid: u64,
    pub DefaultPortAuthStates: *mut core::ffi::c_void,
    pub PciDeviceCustomProperties: *mut core::ffi::c_void,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn driver_characteristics_layout() {
        type T = NDIS_MINIPORT_DRIVER_CHARACTERISTICS;
        assert_eq!(size_of::<T>(), 0xA0);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, MajorNdisVersion), 0x04);
        assert_eq!(offset_of!(T, MinorNdisVersion), 0x05);
        assert_eq!(offset_of!(T, MajorDriverVersion), 0x06);
        assert_eq!(offset_of!(T, MinorDriverVersion), 0x07);
        assert_eq!(offset_of!(T, Flags), 0x08);
        assert_eq!(offset_of!(T, SetOptionsHandler), 0x10);
        assert_eq!(offset_of!(T, InitializeHandlerEx), 0x18);
        assert_eq!(offset_of!(T, HaltHandlerEx), 0x20);
        assert_eq!(offset_of!(T, UnloadHandler), 0x28);
        assert_eq!(offset_of!(T, PauseHandler), 0x30);
        assert_eq!(offset_of!(T, RestartHandler), 0x38);
        assert_eq!(offset_of!(T, OidRequestHandler), 0x40);
        assert_eq!(offset_of!(T, SendNetBufferListsHandler), 0x48);
        assert_eq!(offset_of!(T, ReturnNetBufferListsHandler), 0x50);
        assert_eq!(offset_of!(T, CancelSendHandler), 0x58);
        assert_eq!(offset_of!(T, CheckForHangHandlerEx), 0x60);
        assert_eq!(offset_of!(T, ResetHandlerEx), 0x68);
        assert_eq!(offset_of!(T, DevicePnPEventNotifyHandler), 0x70);
        assert_eq!(offset_of!(T, ShutdownHandlerEx), 0x78);
        assert_eq!(offset_of!(T, CancelOidRequestHandler), 0x80);
        assert_eq!(offset_of!(T, DirectOidRequestHandler), 0x88);
        assert_eq!(offset_of!(T, CancelDirectOidRequestHandler), 0x90);
        assert_eq!(offset_of!(T, SynchronousOidRequestHandler), 0x98);
        // "Size through field" of each revision.
        assert_eq!(
            offset_of!(T, CancelOidRequestHandler) + 8,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1 as usize
        );
        assert_eq!(
            offset_of!(T, CancelDirectOidRequestHandler) + 8,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2 as usize
        );
        assert_eq!(
            offset_of!(T, SynchronousOidRequestHandler) + 8,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_3 as usize
        );
    }

    #[test]
    fn revision_for_version() {
        assert_eq!(required_characteristics_revision(6, 0), Some((1, 0x88)));
        assert_eq!(required_characteristics_revision(6, 30), Some((2, 0x98)));
        assert_eq!(required_characteristics_revision(6, 80), Some((3, 0xA0)));
        assert_eq!(required_characteristics_revision(5, 1), None);
        assert_eq!(required_characteristics_revision(7, 0), None);
    }

    #[test]
    fn init_parameters_layout() {
        type T = NDIS_MINIPORT_INIT_PARAMETERS;
        assert_eq!(size_of::<T>(), 0x40);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, AllocatedResources), 0x08);
        assert_eq!(offset_of!(T, IMDeviceInstanceContext), 0x10);
        assert_eq!(offset_of!(T, MiniportAddDeviceContext), 0x18);
        assert_eq!(offset_of!(T, IfIndex), 0x20);
        assert_eq!(offset_of!(T, NetLuid), 0x28);
        assert_eq!(offset_of!(T, DefaultPortAuthStates), 0x30);
        assert_eq!(offset_of!(T, PciDeviceCustomProperties), 0x38);
        assert_eq!(
            NDIS_SIZEOF_MINIPORT_INIT_PARAMETER_REVISION_1 as usize,
            size_of::<T>()
        );
    }
}
