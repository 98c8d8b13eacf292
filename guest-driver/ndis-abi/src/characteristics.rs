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
/// Size of the revision-1 characteristics: through `CancelOidRequestHandler`.
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_1: u16 = 0x88;
/// Size of the revision-2 characteristics: through `CancelDirectOidRequestHandler`.
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2: u16 = 0x98;
/// Size of the revision-3 characteristics: through `SynchronousOidRequestHandler`.
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
/// Minor NDIS version the skeleton declares (30, with [`NDIS_MINIPORT_MAJOR_VERSION`] 6).
pub const NDIS_MINIPORT_MINOR_VERSION: u8 = 30;

/// `NDIS_MINIPORT_DRIVER_CHARACTERISTICS` (x64, full revision-3 layout, 0xA0 bytes). A driver
/// declaring revision 1 or 2 sets `Header.Size` to the smaller size and NDIS must not read past it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_MINIPORT_DRIVER_CHARACTERISTICS {
    /// `Header`: type `NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS`, revision and size matching the declared NDIS version (see [`required_characteristics_revision`]).
    pub Header: NDIS_OBJECT_HEADER,
    /// `MajorNdisVersion`: NDIS major version the driver is written for (6).
    pub MajorNdisVersion: u8,
    /// `MinorNdisVersion`: NDIS minor version the driver is written for (0..=89).
    pub MinorNdisVersion: u8,
    /// `MajorDriverVersion`: the driver's own major version (free for the vendor).
    pub MajorDriverVersion: u8,
    /// `MinorDriverVersion`: the driver's own minor version (free for the vendor).
    pub MinorDriverVersion: u8,
    /// `Flags`: `NDIS_WDM_DRIVER` (1) for WDM-bus drivers, otherwise 0.
    pub Flags: u32,
    /// `SetOptionsHandler`: `MiniportSetOptions`, called inside NdisMRegisterMiniportDriver to register optional services (NDK, PnP) (optional).
    pub SetOptionsHandler: Option<MiniportSetOptionsFn>,
    /// `InitializeHandlerEx`: `MiniportInitializeEx`, brings up one adapter at PASSIVE_LEVEL (required).
    pub InitializeHandlerEx: Option<MiniportInitializeFn>,
    /// `HaltHandlerEx`: `MiniportHaltEx`, releases one adapter at PASSIVE_LEVEL (required).
    pub HaltHandlerEx: Option<MiniportHaltFn>,
    /// `UnloadHandler`: `MiniportDriverUnload`, called before the image is unloaded (required).
    pub UnloadHandler: Option<MiniportUnloadFn>,
    /// `PauseHandler`: `MiniportPause`, stops the data path; may pend (required).
    pub PauseHandler: Option<MiniportPauseFn>,
    /// `RestartHandler`: `MiniportRestart`, resumes the data path; may pend (required).
    pub RestartHandler: Option<MiniportRestartFn>,
    /// `OidRequestHandler`: `MiniportOidRequest`, answers query/set OIDs at or below DISPATCH_LEVEL (required).
    pub OidRequestHandler: Option<MiniportOidRequestFn>,
    /// `SendNetBufferListsHandler`: `MiniportSendNetBufferLists`, transmits a chain of NBLs (required).
    pub SendNetBufferListsHandler: Option<MiniportSendNetBufferListsFn>,
    /// `ReturnNetBufferListsHandler`: `MiniportReturnNetBufferLists`, gets back NBLs the miniport indicated as received (required).
    pub ReturnNetBufferListsHandler: Option<MiniportReturnNetBufferListsFn>,
    /// `CancelSendHandler`: `MiniportCancelSend`, cancels queued sends carrying a cancel id (required).
    pub CancelSendHandler: Option<MiniportCancelSendFn>,
    /// `CheckForHangHandlerEx`: `MiniportCheckForHangEx`, polled periodically; TRUE asks NDIS for a reset (optional).
    pub CheckForHangHandlerEx: Option<MiniportCheckForHangFn>,
    /// `ResetHandlerEx`: `MiniportResetEx`, resets the adapter's hardware; may pend (optional).
    pub ResetHandlerEx: Option<MiniportResetFn>,
    /// `DevicePnPEventNotifyHandler`: `MiniportDevicePnPEventNotify`, surprise removal and power-profile events (required).
    pub DevicePnPEventNotifyHandler: Option<MiniportDevicePnpEventNotifyFn>,
    /// `ShutdownHandlerEx`: `MiniportShutdownEx`, stops the hardware at system shutdown (required).
    pub ShutdownHandlerEx: Option<MiniportShutdownFn>,
    /// `CancelOidRequestHandler`: `MiniportCancelOidRequest`, cancels a pending OID by request id (required).
    pub CancelOidRequestHandler: Option<MiniportCancelOidRequestFn>,
    // Revision 2 (NDIS 6.1)
    /// `DirectOidRequestHandler`: `MiniportDirectOidRequest` (revision 2): OIDs that bypass NDIS's serialization.
    pub DirectOidRequestHandler: Option<MiniportOidRequestFn>,
    /// `CancelDirectOidRequestHandler`: `MiniportCancelDirectOidRequest` (revision 2).
    pub CancelDirectOidRequestHandler: Option<MiniportCancelOidRequestFn>,
    // Revision 3 (NDIS 6.80)
    /// `SynchronousOidRequestHandler`: `MiniportSynchronousOidRequest` (revision 3): OIDs that never pend.
    pub SynchronousOidRequestHandler: Option<MiniportOidRequestFn>,
}

/// `NDIS_MINIPORT_INIT_PARAMETERS_REVISION_1`: the revision NDIS 6.x passes.
pub const NDIS_MINIPORT_INIT_PARAMETERS_REVISION_1: u8 = 1;
/// Size of revision-1 init parameters (the whole x64 structure).
pub const NDIS_SIZEOF_MINIPORT_INIT_PARAMETER_REVISION_1: u16 = 0x40;

/// `NDIS_MINIPORT_INIT_PARAMETERS` (x64, 0x40 bytes), filled by NDIS for `MiniportInitializeEx`.
/// Header: type `NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS` (0x81), revision 1, size 0x40.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_INIT_PARAMETERS {
    /// `Header`: type 0x81, revision 1, size 0x40.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved by NDIS (0).
    pub Flags: u32,
    /// Translated resources (`CM_PARTIAL_RESOURCE_LIST`).
    pub AllocatedResources: *mut NDIS_RESOURCE_LIST,
    /// `IMDeviceInstanceContext`: for intermediate drivers, the context given to NdisIMInitializeDeviceInstanceEx; NULL for a miniport.
    pub IMDeviceInstanceContext: NDIS_HANDLE,
    /// `MiniportAddDeviceContext`: the context MiniportAddDevice set, if the driver registered one; NULL otherwise.
    pub MiniportAddDeviceContext: NDIS_HANDLE,
    /// `NET_IFINDEX` (ULONG).
    pub IfIndex: u32,
    /// `NET_LUID` (64-bit).
    pub NetLuid: u64,
    /// `DefaultPortAuthStates`: `PNDIS_PORT_AUTHENTICATION_PARAMETERS` of the default port (opaque here).
    pub DefaultPortAuthStates: *mut core::ffi::c_void,
    /// `PciDeviceCustomProperties`: `PNDIS_PCI_DEVICE_CUSTOM_PROPERTIES` (PCIe link and device facts; opaque here).
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
