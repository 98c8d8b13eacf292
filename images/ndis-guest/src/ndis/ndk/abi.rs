//! NDK hosting structures the guest needs that `ndis-abi` does not define (yet): the driver
//! helper's "ndis-abi: NDK" commit defines the NDK types; what is here is what NDIS itself
//! hands a provider (PnP notification, adapter-open parameters) and the OID values. Layouts
//! are x64, checked against the WDK headers' documentation and a type dump of ndis.sys
//! (BRIEF.md section 6), and pinned at compile time below.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

use core::ffi::c_void;

use ndis_abi::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_STATUS};

/// `OID_NDK_SET_STATE`: set request, a BOOLEAN (TRUE: enable NDK). Never pends.
pub const OID_NDK_SET_STATE: u32 = 0xFC04_0201;

/// `NET_PNP_EVENT_CODE` `NetEventNDKEnable`: the driver announces NDK is enabled.
pub const NetEventNDKEnable: u32 = 13;
/// `NET_PNP_EVENT_CODE` `NetEventNDKDisable`: the driver announces NDK is disabled.
pub const NetEventNDKDisable: u32 = 14;

/// Offset of `NET_PNP_EVENT_NOTIFICATION.NetPnPEvent.NetEvent` (after the 4-byte header and
/// the 4-byte `PortNumber`).
pub const NET_PNP_EVENT_NOTIFICATION_NETEVENT_OFFSET: usize = 8;
/// `NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1` on x64: header 4, port 4,
/// `NET_PNP_EVENT` 0x98 (event code, buffer pointer, length, four arrays of four ULONG_PTR).
pub const NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1: u16 = 0xA0;
/// `NET_PNP_EVENT_NOTIFICATION_REVISION_1`.
pub const NET_PNP_EVENT_NOTIFICATION_REVISION_1: u8 = 1;

/// `NDK_VERSION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDK_VERSION {
    /// Major version (1 for NDKPI 1.x).
    pub Major: u16,
    /// Minor version.
    pub Minor: u16,
}

/// `NDIS_OPEN_NDK_ADAPTER_PARAMETERS`: what NDIS passes to `OpenNDKAdapterHandler`. Header
/// type `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size 8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_OPEN_NDK_ADAPTER_PARAMETERS {
    /// Object header.
    pub Header: NDIS_OBJECT_HEADER,
    /// The NDKPI version the consumer asks for (major must match; the provider reports the
    /// highest minor it supports).
    pub Version: NDK_VERSION,
}

/// `NDIS_OPEN_NDK_ADAPTER_PARAMETERS_REVISION_1`.
pub const NDIS_OPEN_NDK_ADAPTER_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_OPEN_NDK_ADAPTER_PARAMETERS_REVISION_1`.
pub const NDIS_SIZEOF_OPEN_NDK_ADAPTER_PARAMETERS_REVISION_1: u16 = 8;

/// `OPEN_NDK_ADAPTER_HANDLER` (PASSIVE_LEVEL).
pub type OpenNdkAdapterFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    Parameters: *mut NDIS_OPEN_NDK_ADAPTER_PARAMETERS,
    ppNdkAdapter: *mut *mut c_void,
) -> NDIS_STATUS;

/// `CLOSE_NDK_ADAPTER_HANDLER` (PASSIVE_LEVEL).
pub type CloseNdkAdapterFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, pNdkAdapter: *mut c_void);

/// `NDIS_NDK_PROVIDER_CHARACTERISTICS` (0x18): given to NdisSetOptionalHandlers from
/// MiniportSetOptions.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_NDK_PROVIDER_CHARACTERISTICS {
    /// Type 0xB2, revision 1, size 0x18.
    pub Header: NDIS_OBJECT_HEADER,
    /// Reserved, 0.
    pub Flags: u32,
    /// Opens an NDK adapter instance.
    pub OpenNDKAdapterHandler: Option<OpenNdkAdapterFn>,
    /// Closes it.
    pub CloseNDKAdapterHandler: Option<CloseNdkAdapterFn>,
}

/// `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` (0x10).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES {
    /// Type 0xB3, revision 1, size 0x10.
    pub Header: NDIS_OBJECT_HEADER,
    /// Whether NDK starts enabled.
    pub Enabled: u8,
    /// The adapter's NDK capabilities.
    pub NdkCapabilities: *mut NDIS_NDK_CAPABILITIES,
}

/// `NDIS_NDK_CAPABILITIES` (0x38; `Flags` at 0x04, `MissingCounterMask` at 0x28, `NdkInfo` at
/// 0x30).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_NDK_CAPABILITIES {
    /// Type `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size 0x38.
    pub Header: NDIS_OBJECT_HEADER,
    /// Reserved flags.
    pub Flags: u32,
    /// Most queue pairs.
    pub MaxQpCount: u32,
    /// Most completion queues.
    pub MaxCqCount: u32,
    /// Most memory regions.
    pub MaxMrCount: u32,
    /// Most protection domains.
    pub MaxPdCount: u32,
    /// Most incoming RDMA reads in flight per QP.
    pub MaxInboundReadLimit: u32,
    /// Most outgoing RDMA reads in flight per QP.
    pub MaxOutboundReadLimit: u32,
    /// Most memory windows (0: unsupported).
    pub MaxMwCount: u32,
    /// Most shared receive queues (0: unsupported).
    pub MaxSrqCount: u32,
    /// Counters the adapter does not maintain.
    pub MissingCounterMask: u64,
    /// The adapter's `NDK_ADAPTER_INFO`.
    pub NdkInfo: *mut c_void,
}

// The guest kernel has no test harness (test = false): the layouts are pinned at compile time.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<NDIS_NDK_PROVIDER_CHARACTERISTICS>() == 0x18);
    assert!(offset_of!(NDIS_NDK_PROVIDER_CHARACTERISTICS, OpenNDKAdapterHandler) == 0x08);
    assert!(offset_of!(NDIS_NDK_PROVIDER_CHARACTERISTICS, CloseNDKAdapterHandler) == 0x10);
    assert!(size_of::<NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES>() == 0x10);
    assert!(offset_of!(NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES, NdkCapabilities) == 0x08);
    assert!(size_of::<NDIS_NDK_CAPABILITIES>() == 0x38);
    assert!(offset_of!(NDIS_NDK_CAPABILITIES, Flags) == 0x04);
    assert!(offset_of!(NDIS_NDK_CAPABILITIES, MaxSrqCount) == 0x24);
    assert!(offset_of!(NDIS_NDK_CAPABILITIES, MissingCounterMask) == 0x28);
    assert!(offset_of!(NDIS_NDK_CAPABILITIES, NdkInfo) == 0x30);
    assert!(size_of::<NDIS_OPEN_NDK_ADAPTER_PARAMETERS>() == 0x08);
};
