//! The NDIS side of an NDK provider (`ndisndk.h`, `ntddndis.h`, `ndis.h`, x64): the provider
//! characteristics given to `NdisSetOptionalHandlers`, the adapter's NDK attributes and
//! capabilities, the four NDK OIDs and their structures, and the `NET_PNP_EVENT_NOTIFICATION`
//! a miniport sends with `NdisMNetPnPEvent` to announce that NDK was enabled or disabled.
//!
//! Flow (Windows and the guest alike): `MiniportSetOptions` registers
//! [`NDIS_NDK_PROVIDER_CHARACTERISTICS`]; `MiniportInitializeEx` sets
//! [`NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES`]; NDIS sends [`OID_NDK_SET_STATE`] (never pended);
//! the miniport announces [`NetEventNDKEnable`] from outside its OID handler (a work item);
//! then NDIS opens the adapter with `OpenNDKAdapterHandler` and a consumer uses
//! `crate::ndk` objects; `CloseNDKAdapterHandler` ends it.

use core::ffi::c_void;

use crate::header::NDIS_OBJECT_HEADER;
use crate::inet::SOCKADDR_INET;
use crate::ndk::{NDK_ADAPTER, NDK_ADAPTER_INFO, NDK_VERSION};
use crate::status::NDIS_STATUS;
use crate::types::{BOOLEAN, NDIS_HANDLE, NDIS_PORT_NUMBER};

// ---------------------------------------------------------------------------------------------
// Provider registration

/// `NDIS_OPEN_NDK_ADAPTER_PARAMETERS` as NDIS 6.30/6.40 pass it (4 bytes): the NDKPI version
/// the consumer wants. NDIS 6.50 appends `SwitchId` and `VPortId`; a provider reads only
/// `Version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_OPEN_NDK_ADAPTER_PARAMETERS {
    /// `Version`: the NDKPI version to open; a major version the provider does not implement
    /// fails with `NDIS_STATUS_BAD_VERSION`.
    pub Version: NDK_VERSION,
}

/// `OPEN_NDK_ADAPTER_HANDLER`: `NDIS_STATUS OpenNDKAdapterHandler(NDIS_HANDLE
/// MiniportAdapterContext, PNDIS_OPEN_NDK_ADAPTER_PARAMETERS, NDK_ADAPTER** ppNdkAdapter)`,
/// PASSIVE_LEVEL.
pub type OPEN_NDK_ADAPTER_HANDLER = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    Parameters: *mut NDIS_OPEN_NDK_ADAPTER_PARAMETERS,
    ppNdkAdapter: *mut *mut NDK_ADAPTER,
) -> NDIS_STATUS;
/// `CLOSE_NDK_ADAPTER_HANDLER`: `VOID CloseNDKAdapterHandler(NDIS_HANDLE
/// MiniportAdapterContext, NDK_ADAPTER*)`, PASSIVE_LEVEL; NDIS calls it only after every
/// object of the adapter is closed.
pub type CLOSE_NDK_ADAPTER_HANDLER =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, pNdkAdapter: *mut NDK_ADAPTER);

/// `NDIS_NDK_PROVIDER_CHARACTERISTICS_REVISION_1`.
pub const NDIS_NDK_PROVIDER_CHARACTERISTICS_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NDK_PROVIDER_CHARACTERISTICS_REVISION_1` (the whole structure).
pub const NDIS_SIZEOF_NDK_PROVIDER_CHARACTERISTICS_REVISION_1: u16 = 0x18;

/// `NDIS_NDK_PROVIDER_CHARACTERISTICS` (0x18 bytes): given to `NdisSetOptionalHandlers` from
/// `MiniportSetOptions`. Header: type `NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS` (0xB2),
/// revision 1, size 0x18.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_NDK_PROVIDER_CHARACTERISTICS {
    /// `Header`: 0xB2, revision 1, size 0x18.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved, 0.
    pub Flags: u32,
    /// `OpenNDKAdapterHandler` (required).
    pub OpenNDKAdapterHandler: Option<OPEN_NDK_ADAPTER_HANDLER>,
    /// `CloseNDKAdapterHandler` (required).
    pub CloseNDKAdapterHandler: Option<CLOSE_NDK_ADAPTER_HANDLER>,
}

/// `NDIS_DRIVER_OPTIONAL_HANDLERS`: what `NdisSetOptionalHandlers` takes, a union told apart by
/// `Header.Type`. Only the member a miniport of this project registers is spelled out; NDIS
/// reads `Header.Size` bytes of the member `Header.Type` names.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_DRIVER_OPTIONAL_HANDLERS {
    /// `Header`: shared prefix; its `Type` says which member is live.
    pub Header: NDIS_OBJECT_HEADER,
    /// `NdkProviderCharacteristics`: live when `Header.Type` is 0xB2.
    pub NdkProviderCharacteristics: NDIS_NDK_PROVIDER_CHARACTERISTICS,
}

// ---------------------------------------------------------------------------------------------
// Adapter attributes and capabilities

/// `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1`.
pub const NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1` (the whole structure).
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1: u16 = 0x10;

/// `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` (0x10 bytes): set with `NdisMSetMiniportAttributes`
/// in `MiniportInitializeEx`. Header: type 0xB3, revision 1, size 0x10.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES {
    /// `Header`: 0xB3, revision 1, size 0x10.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Enabled`: whether NDK starts enabled (NDIS still sends `OID_NDK_SET_STATE`).
    pub Enabled: BOOLEAN,
    /// `NdkCapabilities`: the adapter's capabilities; NDIS copies them during the call.
    pub NdkCapabilities: *mut NDIS_NDK_CAPABILITIES,
}

/// `NDIS_NDK_CAPABILITIES_REVISION_1`.
pub const NDIS_NDK_CAPABILITIES_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NDK_CAPABILITIES_REVISION_1` (the whole structure).
pub const NDIS_SIZEOF_NDK_CAPABILITIES_REVISION_1: u16 = 0x38;

/// `NDIS_NDK_CAPABILITIES` (0x38 bytes). Header: type `NDIS_OBJECT_TYPE_DEFAULT` (0x80),
/// revision 1, size 0x38. Older documentation pages omit `Flags` and are wrong: the ndis.sys
/// symbols and the current header have it at 0x04.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_NDK_CAPABILITIES {
    /// `Header`: 0x80, revision 1, size 0x38.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved, 0 (revision 1 defines no flag).
    pub Flags: u32,
    /// `MaxQpCount`: most QPs the adapter holds.
    pub MaxQpCount: u32,
    /// `MaxCqCount`: most CQs.
    pub MaxCqCount: u32,
    /// `MaxMrCount`: most MRs.
    pub MaxMrCount: u32,
    /// `MaxPdCount`: most PDs.
    pub MaxPdCount: u32,
    /// `MaxInboundReadLimit`: adapter-wide incoming reads outstanding (0: only per QP).
    pub MaxInboundReadLimit: u32,
    /// `MaxOutboundReadLimit`: adapter-wide outgoing reads outstanding (0: only per QP).
    pub MaxOutboundReadLimit: u32,
    /// `MaxMwCount`: most MWs (0: memory windows unsupported).
    pub MaxMwCount: u32,
    /// `MaxSrqCount`: most SRQs (0: SRQs unsupported).
    pub MaxSrqCount: u32,
    /// `MissingCounterMask`: bit `n` set = counter `n` of
    /// [`NDIS_NDK_PERFORMANCE_COUNTERS`] is not maintained.
    pub MissingCounterMask: u64,
    /// `NdkInfo`: the adapter information `NdkQueryAdapterInfo` would return.
    pub NdkInfo: *mut NDK_ADAPTER_INFO,
}

// ---------------------------------------------------------------------------------------------
// OIDs

/// `OID_NDK_SET_STATE` (set): the `InformationBuffer` is one `BOOLEAN`, TRUE to enable NDK.
/// Never pends; the miniport announces the change with `NdisMNetPnPEvent` afterwards.
pub const OID_NDK_SET_STATE: u32 = 0xFC04_0201;
/// `OID_NDK_STATISTICS` (query): [`NDIS_NDK_STATISTICS_INFO`].
pub const OID_NDK_STATISTICS: u32 = 0xFC04_0202;
/// `OID_NDK_CONNECTIONS` (query): [`NDIS_NDK_CONNECTIONS`] with one entry per connection.
pub const OID_NDK_CONNECTIONS: u32 = 0xFC04_0203;
/// `OID_NDK_LOCAL_ENDPOINTS` (query): [`NDIS_NDK_LOCAL_ENDPOINTS`] with one entry per
/// listener or shared endpoint.
pub const OID_NDK_LOCAL_ENDPOINTS: u32 = 0xFC04_0204;

/// Number of 64-bit counters in [`NDIS_NDK_PERFORMANCE_COUNTERS`] (bit positions of
/// `MissingCounterMask`).
pub const NDIS_NDK_PERFORMANCE_COUNTER_COUNT: usize = 30;

/// `NDIS_NDK_PERFORMANCE_COUNTERS` (0xF0 bytes): 30 counters; counter `n` is bit `n` of
/// `MissingCounterMask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_NDK_PERFORMANCE_COUNTERS {
    /// `Connect` (counter 0): outbound connections established.
    pub Connect: u64,
    /// `Accept` (1): inbound connections established.
    pub Accept: u64,
    /// `ConnectFailure` (2): connect attempts, either direction, that failed.
    pub ConnectFailure: u64,
    /// `ConnectionError` (3): established connections that ended with an error.
    pub ConnectionError: u64,
    /// `ActiveConnection` (4): connections established now.
    pub ActiveConnection: u64,
    /// `Reserved01`..`Reserved20` (5..=24): reserved, 0.
    pub Reserved: [u64; 20],
    /// `CQError` (25): CQ errors (overruns).
    pub CQError: u64,
    /// `RDMAInOctets` (26): RDMA bytes received.
    pub RDMAInOctets: u64,
    /// `RDMAOutOctets` (27): RDMA bytes sent.
    pub RDMAOutOctets: u64,
    /// `RDMAInFrames` (28): RDMA frames received.
    pub RDMAInFrames: u64,
    /// `RDMAOutFrames` (29): RDMA frames sent.
    pub RDMAOutFrames: u64,
}

/// `NDIS_NDK_STATISTICS_INFO_REVISION_1`.
pub const NDIS_NDK_STATISTICS_INFO_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NDK_STATISTICS_INFO_REVISION_1` (the whole structure).
pub const NDIS_SIZEOF_NDK_STATISTICS_INFO_REVISION_1: u16 = 0xF8;

/// `NDIS_NDK_STATISTICS_INFO` (0xF8 bytes), the answer to [`OID_NDK_STATISTICS`]. Header:
/// 0x80, revision 1, size 0xF8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_NDK_STATISTICS_INFO {
    /// `Header`: 0x80, revision 1, size 0xF8.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved, 0.
    pub Flags: u32,
    /// `CounterSet`: the counters.
    pub CounterSet: NDIS_NDK_PERFORMANCE_COUNTERS,
}

/// `NDIS_NDK_CONNECTION_ENTRY` (0x40 bytes): one connection of [`NDIS_NDK_CONNECTIONS`].
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_NDK_CONNECTION_ENTRY {
    /// `Local`: local address and port.
    pub Local: SOCKADDR_INET,
    /// `Remote`: the peer's address and port.
    pub Remote: SOCKADDR_INET,
    /// `UserModeOwner`: FALSE for an NDK (kernel) connection.
    pub UserModeOwner: BOOLEAN,
    /// `OwnerPid`: the owning process of a user-mode connection, 0 otherwise.
    pub OwnerPid: u32,
}

/// `NDIS_NDK_CONNECTIONS_REVISION_1`.
pub const NDIS_NDK_CONNECTIONS_REVISION_1: u8 = 1;

/// `NDIS_NDK_CONNECTIONS` (header 0x10 bytes, then `Count` entries of 0x40), the answer to
/// [`OID_NDK_CONNECTIONS`]. Header: 0x80, revision 1, size
/// `min(0xFFFF, ndis_sizeof_ndk_connections(Count))`. Declared with one entry, as in C.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_NDK_CONNECTIONS {
    /// `Header`: 0x80, revision 1.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved, 0.
    pub Flags: u32,
    /// `Count`: entries in `Connections`.
    pub Count: u32,
    /// `NDConnectionsMappedtoTCPConnections`: TRUE if the connections are the same as TCP
    /// connections of the host stack (FALSE for the RNIC).
    pub NDConnectionsMappedtoTCPConnections: BOOLEAN,
    /// `Connections`: `Count` entries follow.
    pub Connections: [NDIS_NDK_CONNECTION_ENTRY; 1],
}

/// Bytes of an [`NDIS_NDK_CONNECTIONS`] with `count` entries (`FIELD_OFFSET(Connections) +
/// count * 0x40`).
pub const fn ndis_sizeof_ndk_connections(count: u32) -> usize {
    0x10 + count as usize * 0x40
}

/// `NDIS_NDK_LOCAL_ENDPOINT_ENTRY` (0x24 bytes): one listener or shared endpoint.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_NDK_LOCAL_ENDPOINT_ENTRY {
    /// `Local`: local address and port.
    pub Local: SOCKADDR_INET,
    /// `UserModeOwner`: FALSE for an NDK (kernel) endpoint.
    pub UserModeOwner: BOOLEAN,
    /// `Listener`: TRUE for a listener, FALSE for a shared endpoint.
    pub Listener: BOOLEAN,
    /// `OwnerPid`: the owning process of a user-mode endpoint, 0 otherwise.
    pub OwnerPid: u32,
}

/// `NDIS_NDK_LOCAL_ENDPOINTS_REVISION_1`.
pub const NDIS_NDK_LOCAL_ENDPOINTS_REVISION_1: u8 = 1;

/// `NDIS_NDK_LOCAL_ENDPOINTS` (header 0x10 bytes, then `Count` entries of 0x24), the answer to
/// [`OID_NDK_LOCAL_ENDPOINTS`]. Header: 0x80, revision 1, size
/// `min(0xFFFF, ndis_sizeof_ndk_local_endpoints(Count))`. Declared with one entry, as in C.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NDIS_NDK_LOCAL_ENDPOINTS {
    /// `Header`: 0x80, revision 1.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved, 0.
    pub Flags: u32,
    /// `Count`: entries in `LocalEndpoints`.
    pub Count: u32,
    /// `NDLocalEndpointsMappedtoTCPLocalEndpoints`: FALSE for the RNIC.
    pub NDLocalEndpointsMappedtoTCPLocalEndpoints: BOOLEAN,
    /// `LocalEndpoints`: `Count` entries follow.
    pub LocalEndpoints: [NDIS_NDK_LOCAL_ENDPOINT_ENTRY; 1],
}

/// Bytes of an [`NDIS_NDK_LOCAL_ENDPOINTS`] with `count` entries.
pub const fn ndis_sizeof_ndk_local_endpoints(count: u32) -> usize {
    0x10 + count as usize * 0x24
}

// ---------------------------------------------------------------------------------------------
// PnP event notification (NdisMNetPnPEvent)

/// `NET_PNP_EVENT_CODE` (enum, 4 bytes).
pub type NET_PNP_EVENT_CODE = u32;
/// `NetEventNDKEnable`: the miniport's NDK functionality became available.
pub const NetEventNDKEnable: NET_PNP_EVENT_CODE = 13;
/// `NetEventNDKDisable`: the miniport's NDK functionality is going away; NDIS closes every
/// open NDK adapter before completing the event.
pub const NetEventNDKDisable: NET_PNP_EVENT_CODE = 14;

/// `NET_PNP_EVENT` (0x98 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NET_PNP_EVENT {
    /// `NetEvent`: `NetEvent*` code.
    pub NetEvent: NET_PNP_EVENT_CODE,
    /// `Buffer`: event-specific data (NULL for the NDK events).
    pub Buffer: *mut c_void,
    /// `BufferLength`: bytes at `Buffer`.
    pub BufferLength: u32,
    /// `NdisReserved`: for NDIS.
    pub NdisReserved: [usize; 4],
    /// `TransportReserved`: for transports.
    pub TransportReserved: [usize; 4],
    /// `TdiReserved`: for TDI.
    pub TdiReserved: [usize; 4],
    /// `TdiClientReserved`: for TDI clients.
    pub TdiClientReserved: [usize; 4],
}

/// `NET_PNP_EVENT_NOTIFICATION_REVISION_1`.
pub const NET_PNP_EVENT_NOTIFICATION_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1`: through `Flags` (0xA4).
pub const NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1: u16 = 0xA4;

/// `NET_PNP_EVENT_NOTIFICATION` (x64, 0xB0 bytes with the NDIS 6.50 fields; revision 1 ends
/// after `Flags`, 0xA4). Header: 0x80, revision 1, size 0xA4 from an NDIS 6.30 miniport.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NET_PNP_EVENT_NOTIFICATION {
    /// `Header`: 0x80, revision 1, size 0xA4.
    pub Header: NDIS_OBJECT_HEADER,
    /// `PortNumber`: 0 when the event is not specific to a port.
    pub PortNumber: NDIS_PORT_NUMBER,
    /// `NetPnPEvent`: the event.
    pub NetPnPEvent: NET_PNP_EVENT,
    /// `Flags`: 0.
    pub Flags: u32,
    /// `SwitchId` (revision 2, NDIS 6.50): not read from a revision-1 notification.
    pub SwitchId: u32,
    /// `VPortId` (revision 2, NDIS 6.50): not read from a revision-1 notification.
    pub VPortId: u32,
}

impl NET_PNP_EVENT_NOTIFICATION {
    /// A revision-1 notification of `event` with no buffer, for port 0.
    pub const fn new(event: NET_PNP_EVENT_CODE) -> Self {
        Self {
            Header: NDIS_OBJECT_HEADER::new(
                crate::header::NDIS_OBJECT_TYPE_DEFAULT,
                NET_PNP_EVENT_NOTIFICATION_REVISION_1,
                NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1,
            ),
            PortNumber: 0,
            NetPnPEvent: NET_PNP_EVENT {
                NetEvent: event,
                Buffer: core::ptr::null_mut(),
                BufferLength: 0,
                NdisReserved: [0; 4],
                TransportReserved: [0; 4],
                TdiReserved: [0; 4],
                TdiClientReserved: [0; 4],
            },
            Flags: 0,
            SwitchId: 0,
            VPortId: 0,
        }
    }
}

/// `NDIS_IO_WORKITEM_ROUTINE`: `VOID Routine(PVOID WorkItemContext, NDIS_HANDLE
/// NdisIoWorkItemHandle)`, run at PASSIVE_LEVEL by a system worker thread.
pub type NDIS_IO_WORKITEM_ROUTINE =
    unsafe extern "win64" fn(WorkItemContext: *mut c_void, NdisIoWorkItemHandle: NDIS_HANDLE);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Second sources, x64:
    // - ntdiff/headers, Win10_1709_RS3/x64/System32/ndis.sys/Standalone/
    //   _NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES.h (Enabled 0x04, NdkCapabilities 0x08, 0x10);
    // - an ndis.sys type dump in the code index (NDIS_NDK_CAPABILITIES: Flags 0x04 ...
    //   MissingCounterMask 0x28, NdkInfo 0x30, size 0x38; NET_PNP_EVENT 0x98 and
    //   NET_PNP_EVENT_NOTIFICATION 0xB0 with Flags 0xA0; NET_PNP_EVENT_CODE values);
    // - m417z/windows-docs-scraper, windows-driver-docs-ddi/ntddndis/
    //   ns-ntddndis-_ndis_ndk_connections.c, ns-ntddndis-_ndis_ndk_connection_entry.c,
    //   ns-ntddndis-_ndis_ndk_local_endpoints.c, ns-ntddndis-_ndis_ndk_performance_counters.c
    //   and the NDIS_NDK_STATISTICS_INFO page (Header, Flags, CounterSet);
    // - windows-sys 0.61.2 (microsoft/windows-rs), src/Windows/Wdk/NetworkManagement/Ndis/
    //   mod.rs: OID_NDK_* values, NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS 178,
    //   NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES 179, the *_REVISION_1 values;
    // - a copy of ndisndk.h in the code index (open/close handler prototypes, provider
    //   characteristics: Header, Flags, OpenNDKAdapterHandler, CloseNDKAdapterHandler).

    #[test]
    fn provider_characteristics_layout() {
        type T = NDIS_NDK_PROVIDER_CHARACTERISTICS;
        assert_eq!(size_of::<T>(), 0x18);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, OpenNDKAdapterHandler), 0x08);
        assert_eq!(offset_of!(T, CloseNDKAdapterHandler), 0x10);
        assert_eq!(
            NDIS_SIZEOF_NDK_PROVIDER_CHARACTERISTICS_REVISION_1 as usize,
            size_of::<T>()
        );
        assert_eq!(size_of::<NDIS_DRIVER_OPTIONAL_HANDLERS>(), 0x18);
        assert_eq!(size_of::<NDIS_OPEN_NDK_ADAPTER_PARAMETERS>(), 4);
    }

    #[test]
    fn ndk_attributes_layout() {
        type T = NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES;
        assert_eq!(size_of::<T>(), 0x10);
        assert_eq!(offset_of!(T, Enabled), 0x04);
        assert_eq!(offset_of!(T, NdkCapabilities), 0x08);
        assert_eq!(
            NDIS_SIZEOF_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1 as usize,
            size_of::<T>()
        );
    }

    #[test]
    fn capabilities_layout_has_flags() {
        type T = NDIS_NDK_CAPABILITIES;
        assert_eq!(size_of::<T>(), 0x38);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, MaxQpCount), 0x08);
        assert_eq!(offset_of!(T, MaxCqCount), 0x0C);
        assert_eq!(offset_of!(T, MaxMrCount), 0x10);
        assert_eq!(offset_of!(T, MaxPdCount), 0x14);
        assert_eq!(offset_of!(T, MaxInboundReadLimit), 0x18);
        assert_eq!(offset_of!(T, MaxOutboundReadLimit), 0x1C);
        assert_eq!(offset_of!(T, MaxMwCount), 0x20);
        assert_eq!(offset_of!(T, MaxSrqCount), 0x24);
        assert_eq!(offset_of!(T, MissingCounterMask), 0x28);
        assert_eq!(offset_of!(T, NdkInfo), 0x30);
        assert_eq!(
            NDIS_SIZEOF_NDK_CAPABILITIES_REVISION_1 as usize,
            size_of::<T>()
        );
    }

    #[test]
    fn oid_values() {
        assert_eq!(OID_NDK_SET_STATE, 4228121089);
        assert_eq!(OID_NDK_STATISTICS, 4228121090);
        assert_eq!(OID_NDK_CONNECTIONS, 4228121091);
        assert_eq!(OID_NDK_LOCAL_ENDPOINTS, 4228121092);
    }

    #[test]
    fn statistics_layout() {
        type C = NDIS_NDK_PERFORMANCE_COUNTERS;
        assert_eq!(size_of::<C>(), NDIS_NDK_PERFORMANCE_COUNTER_COUNT * 8);
        assert_eq!(offset_of!(C, ActiveConnection), 4 * 8);
        assert_eq!(offset_of!(C, Reserved), 5 * 8);
        assert_eq!(offset_of!(C, CQError), 25 * 8);
        assert_eq!(offset_of!(C, RDMAOutFrames), 29 * 8);
        type T = NDIS_NDK_STATISTICS_INFO;
        assert_eq!(size_of::<T>(), 0xF8);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, CounterSet), 0x08);
        assert_eq!(
            NDIS_SIZEOF_NDK_STATISTICS_INFO_REVISION_1 as usize,
            size_of::<T>()
        );
    }

    #[test]
    fn connections_layout() {
        type E = NDIS_NDK_CONNECTION_ENTRY;
        assert_eq!(size_of::<E>(), 0x40);
        assert_eq!(offset_of!(E, Remote), 0x1C);
        assert_eq!(offset_of!(E, UserModeOwner), 0x38);
        assert_eq!(offset_of!(E, OwnerPid), 0x3C);
        type T = NDIS_NDK_CONNECTIONS;
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, Count), 0x08);
        assert_eq!(offset_of!(T, NDConnectionsMappedtoTCPConnections), 0x0C);
        assert_eq!(offset_of!(T, Connections), 0x10);
        assert_eq!(size_of::<T>(), ndis_sizeof_ndk_connections(1));
        assert_eq!(ndis_sizeof_ndk_connections(0), 0x10);
    }

    #[test]
    fn local_endpoints_layout() {
        type E = NDIS_NDK_LOCAL_ENDPOINT_ENTRY;
        assert_eq!(size_of::<E>(), 0x24);
        assert_eq!(offset_of!(E, UserModeOwner), 0x1C);
        assert_eq!(offset_of!(E, Listener), 0x1D);
        assert_eq!(offset_of!(E, OwnerPid), 0x20);
        type T = NDIS_NDK_LOCAL_ENDPOINTS;
        assert_eq!(offset_of!(T, Count), 0x08);
        assert_eq!(
            offset_of!(T, NDLocalEndpointsMappedtoTCPLocalEndpoints),
            0x0C
        );
        assert_eq!(offset_of!(T, LocalEndpoints), 0x10);
        assert_eq!(size_of::<T>(), ndis_sizeof_ndk_local_endpoints(1));
    }

    #[test]
    fn pnp_event_layout() {
        type E = NET_PNP_EVENT;
        assert_eq!(size_of::<E>(), 0x98);
        assert_eq!(offset_of!(E, Buffer), 0x08);
        assert_eq!(offset_of!(E, BufferLength), 0x10);
        assert_eq!(offset_of!(E, NdisReserved), 0x18);
        assert_eq!(offset_of!(E, TransportReserved), 0x38);
        assert_eq!(offset_of!(E, TdiReserved), 0x58);
        assert_eq!(offset_of!(E, TdiClientReserved), 0x78);
        type T = NET_PNP_EVENT_NOTIFICATION;
        assert_eq!(size_of::<T>(), 0xB0);
        assert_eq!(offset_of!(T, PortNumber), 0x04);
        assert_eq!(offset_of!(T, NetPnPEvent), 0x08);
        assert_eq!(offset_of!(T, Flags), 0xA0);
        assert_eq!(offset_of!(T, SwitchId), 0xA4);
        assert_eq!(offset_of!(T, VPortId), 0xA8);
        assert_eq!(
            offset_of!(T, Flags) + 4,
            NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1 as usize
        );
        assert_eq!([NetEventNDKEnable, NetEventNDKDisable], [13, 14]);
        let n = T::new(NetEventNDKEnable);
        assert_eq!(n.Header.Type, 0x80);
        assert_eq!(n.Header.Size, 0xA4);
        assert_eq!(n.NetPnPEvent.NetEvent, 13);
    }
}
