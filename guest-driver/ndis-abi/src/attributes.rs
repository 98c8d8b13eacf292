//! Adapter attributes passed to `NdisMSetMiniportAttributes`.
//!
//! The C prototype takes `PNDIS_MINIPORT_ADAPTER_ATTRIBUTES`, a union of pointers-to-structs that
//! all begin with an `NDIS_OBJECT_HEADER`; callers pass a pointer to one concrete attribute
//! structure and the callee dispatches on `Header.Type`.

use core::ffi::c_void;

use crate::header::NDIS_OBJECT_HEADER;
use crate::types::{NDIS_HANDLE, NDIS_INTERFACE_TYPE};

/// `NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1`: the NDIS 6.0 revision.
pub const NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1: u8 = 1;
/// Revision 2 (NDIS 6.30) only adds attribute flags; the layout is unchanged.
pub const NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_2: u8 = 2;
/// `RTL_SIZEOF_THROUGH_FIELD(..., InterfaceType)` = 0x1C (the struct itself is 0x20 with padding).
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1: u16 = 0x1C;

/// `NDIS_MINIPORT_ATTRIBUTES_HARDWARE_DEVICE`: the miniport drives a physical device.
pub const NDIS_MINIPORT_ATTRIBUTES_HARDWARE_DEVICE: u32 = 0x0000_0001;
/// `NDIS_MINIPORT_ATTRIBUTES_NDIS_WDM`: the device sits on a WDM bus (USB, ...) rather than a bus NDIS manages.
pub const NDIS_MINIPORT_ATTRIBUTES_NDIS_WDM: u32 = 0x0000_0002;
/// `NDIS_MINIPORT_ATTRIBUTES_SURPRISE_REMOVE_OK`: the device may be removed without warning.
pub const NDIS_MINIPORT_ATTRIBUTES_SURPRISE_REMOVE_OK: u32 = 0x0000_0004;
/// `NDIS_MINIPORT_ATTRIBUTES_NOT_CO_NDIS`: connection-oriented NDIS protocols must not bind.
pub const NDIS_MINIPORT_ATTRIBUTES_NOT_CO_NDIS: u32 = 0x0000_0008;
/// `NDIS_MINIPORT_ATTRIBUTES_DO_NOT_BIND_TO_ALL_CO`: CoNDIS protocols bind only when asked to.
pub const NDIS_MINIPORT_ATTRIBUTES_DO_NOT_BIND_TO_ALL_CO: u32 = 0x0000_0010;
/// `NDIS_MINIPORT_ATTRIBUTES_NO_HALT_ON_SUSPEND`: keep the miniport initialized across system sleep.
pub const NDIS_MINIPORT_ATTRIBUTES_NO_HALT_ON_SUSPEND: u32 = 0x0000_0020;
/// `NDIS_MINIPORT_ATTRIBUTES_BUS_MASTER`: the device is a DMA bus master (required for scatter/gather DMA).
pub const NDIS_MINIPORT_ATTRIBUTES_BUS_MASTER: u32 = 0x0000_0040;
/// `NDIS_MINIPORT_ATTRIBUTES_CONTROLS_DEFAULT_PORT`: the miniport activates the default NDIS port itself.
pub const NDIS_MINIPORT_ATTRIBUTES_CONTROLS_DEFAULT_PORT: u32 = 0x0000_0080;
/// `NDIS_MINIPORT_ATTRIBUTES_NO_PAUSE_ON_SUSPEND`: the data path stays running across system sleep.
pub const NDIS_MINIPORT_ATTRIBUTES_NO_PAUSE_ON_SUSPEND: u32 = 0x0000_0100;

/// `NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES` (x64, 0x20 bytes; revision-1 size 0x1C).
/// Header: type 0x9E. `MiniportAdapterContext` is what NDIS passes back to every handler.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES {
    /// `Header`: type `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES`, revision 1 or 2, size 0x1C.
    pub Header: NDIS_OBJECT_HEADER,
    /// `MiniportAdapterContext`: the miniport's per-adapter context, handed back to every handler.
    pub MiniportAdapterContext: NDIS_HANDLE,
    /// `AttributeFlags`: `NDIS_MINIPORT_ATTRIBUTES_*` bits.
    pub AttributeFlags: u32,
    /// `CheckForHangTimeInSeconds`: period of MiniportCheckForHangEx calls (0 selects NDIS's default of 2 s).
    pub CheckForHangTimeInSeconds: u32,
    /// `InterfaceType`: the bus the adapter sits on (`NdisInterfacePci` here).
    pub InterfaceType: NDIS_INTERFACE_TYPE,
}

/// `NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1`: the NDIS 6.0/6.1 layout (no
/// `PowerManagementCapabilitiesEx`).
pub const NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1: u8 = 1;
/// `NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2`: NDIS 6.20 and later, adds
/// `PowerManagementCapabilitiesEx`.
pub const NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2: u8 = 2;
/// `RTL_SIZEOF_THROUGH_FIELD(..., AutoNegotiationFlags)` = 0xD8.
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1: u16 = 0xD8;
/// `RTL_SIZEOF_THROUGH_FIELD(..., PowerManagementCapabilitiesEx)` = 0xE0 (the whole structure).
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2: u16 = 0xE0;
/// `NDIS_MAX_PHYS_ADDRESS_LENGTH` (= `IF_MAX_PHYS_ADDRESS_LENGTH`): bytes reserved for a MAC.
pub const NDIS_MAX_PHYS_ADDRESS_LENGTH: usize = 32;

/// `NDIS_MEDIUM` (enum, 4 bytes).
pub type NDIS_MEDIUM = u32;
/// `NdisMedium802_3`: Ethernet.
pub const NdisMedium802_3: NDIS_MEDIUM = 0;
/// `NDIS_PHYSICAL_MEDIUM` (enum, 4 bytes).
pub type NDIS_PHYSICAL_MEDIUM = u32;
/// `NdisPhysicalMediumUnspecified`: no particular physical medium.
pub const NdisPhysicalMediumUnspecified: NDIS_PHYSICAL_MEDIUM = 0;
/// `NdisPhysicalMedium802_3`: wired Ethernet.
pub const NdisPhysicalMedium802_3: NDIS_PHYSICAL_MEDIUM = 14;
/// `NDIS_MEDIA_CONNECT_STATE` (= `NET_IF_MEDIA_CONNECT_STATE`, enum, 4 bytes).
pub type NDIS_MEDIA_CONNECT_STATE = u32;
/// `MediaConnectStateUnknown`.
pub const MediaConnectStateUnknown: NDIS_MEDIA_CONNECT_STATE = 0;
/// `MediaConnectStateConnected`: link up.
pub const MediaConnectStateConnected: NDIS_MEDIA_CONNECT_STATE = 1;
/// `MediaConnectStateDisconnected`: link down.
pub const MediaConnectStateDisconnected: NDIS_MEDIA_CONNECT_STATE = 2;
/// `NDIS_MEDIA_DUPLEX_STATE` (= `NET_IF_MEDIA_DUPLEX_STATE`, enum, 4 bytes).
pub type NDIS_MEDIA_DUPLEX_STATE = u32;
/// `MediaDuplexStateUnknown`.
pub const MediaDuplexStateUnknown: NDIS_MEDIA_DUPLEX_STATE = 0;
/// `MediaDuplexStateHalf`.
pub const MediaDuplexStateHalf: NDIS_MEDIA_DUPLEX_STATE = 1;
/// `MediaDuplexStateFull`.
pub const MediaDuplexStateFull: NDIS_MEDIA_DUPLEX_STATE = 2;
/// `NDIS_LINK_SPEED_UNKNOWN`: a link speed (bits per second) the miniport does not know.
pub const NDIS_LINK_SPEED_UNKNOWN: u64 = u64::MAX;
/// `NET_IF_ACCESS_BROADCAST` (`NET_IF_ACCESS_TYPE`): a broadcast-capable LAN interface.
pub const NET_IF_ACCESS_BROADCAST: u32 = 2;
/// `NET_IF_DIRECTION_SENDRECEIVE` (`NET_IF_DIRECTION_TYPE`): sends and receives.
pub const NET_IF_DIRECTION_SENDRECEIVE: u32 = 0;
/// `NET_IF_CONNECTION_DEDICATED` (`NET_IF_CONNECTION_TYPE`): always connected.
pub const NET_IF_CONNECTION_DEDICATED: u32 = 1;
/// `IF_TYPE_ETHERNET_CSMACD` (`NET_IFTYPE`, IANA ifType 6): Ethernet.
pub const IF_TYPE_ETHERNET_CSMACD: u16 = 6;
/// `NDIS_MAC_OPTION_COPY_LOOKAHEAD_DATA`: indicated lookahead data may be copied anywhere.
pub const NDIS_MAC_OPTION_COPY_LOOKAHEAD_DATA: u32 = 0x0000_0001;
/// `NDIS_MAC_OPTION_TRANSFERS_NOT_PEND`: transfers never pend.
pub const NDIS_MAC_OPTION_TRANSFERS_NOT_PEND: u32 = 0x0000_0004;
/// `NDIS_MAC_OPTION_NO_LOOPBACK`: the NIC does not loop sent frames back; NDIS does it.
pub const NDIS_MAC_OPTION_NO_LOOPBACK: u32 = 0x0000_0008;
/// `NDIS_PACKET_TYPE_DIRECTED`: frames addressed to the adapter's MAC.
pub const NDIS_PACKET_TYPE_DIRECTED: u32 = 0x0000_0001;
/// `NDIS_PACKET_TYPE_MULTICAST`: frames to addresses of the multicast list.
pub const NDIS_PACKET_TYPE_MULTICAST: u32 = 0x0000_0002;
/// `NDIS_PACKET_TYPE_ALL_MULTICAST`: every multicast frame.
pub const NDIS_PACKET_TYPE_ALL_MULTICAST: u32 = 0x0000_0004;
/// `NDIS_PACKET_TYPE_BROADCAST`: broadcast frames.
pub const NDIS_PACKET_TYPE_BROADCAST: u32 = 0x0000_0008;
/// `NDIS_PACKET_TYPE_PROMISCUOUS`: every frame on the wire.
pub const NDIS_PACKET_TYPE_PROMISCUOUS: u32 = 0x0000_0020;

/// `NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES` (x64, 0xE0 bytes). Header: type 0x9F, revision
/// 1 (size 0xD8) or 2 (size 0xE0). NDIS requires it in MiniportInitializeEx, after the
/// registration attributes. Pointers in it are read during the call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES {
    /// `Header`: type `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES`, revision and size
    /// as above.
    pub Header: NDIS_OBJECT_HEADER,
    /// `Flags`: reserved (0).
    pub Flags: u32,
    /// `MediaType`: the medium the miniport presents (`NdisMedium802_3`).
    pub MediaType: NDIS_MEDIUM,
    /// `PhysicalMediumType`: the physical medium (`NdisPhysicalMedium802_3`).
    pub PhysicalMediumType: NDIS_PHYSICAL_MEDIUM,
    /// `MtuSize`: largest payload of one frame, in bytes, without the link header.
    pub MtuSize: u32,
    /// `MaxXmitLinkSpeed`: highest transmit speed in bits per second.
    pub MaxXmitLinkSpeed: u64,
    /// `XmitLinkSpeed`: current transmit speed in bits per second (`NDIS_LINK_SPEED_UNKNOWN`
    /// when not known).
    pub XmitLinkSpeed: u64,
    /// `MaxRcvLinkSpeed`: highest receive speed in bits per second.
    pub MaxRcvLinkSpeed: u64,
    /// `RcvLinkSpeed`: current receive speed in bits per second.
    pub RcvLinkSpeed: u64,
    /// `MediaConnectState`: link state at initialization (`MediaConnectState*`).
    pub MediaConnectState: NDIS_MEDIA_CONNECT_STATE,
    /// `MediaDuplexState`: duplex at initialization (`MediaDuplexState*`).
    pub MediaDuplexState: NDIS_MEDIA_DUPLEX_STATE,
    /// `LookaheadSize`: bytes of each received frame the miniport can indicate as lookahead.
    pub LookaheadSize: u32,
    /// `PowerManagementCapabilities`: `PNDIS_PNP_CAPABILITIES` of revision-1 drivers (NULL:
    /// no wake-up support).
    pub PowerManagementCapabilities: *mut c_void,
    /// `MacOptions`: `NDIS_MAC_OPTION_*` bits.
    pub MacOptions: u32,
    /// `SupportedPacketFilters`: the `NDIS_PACKET_TYPE_*` filters the hardware implements.
    pub SupportedPacketFilters: u32,
    /// `MaxMulticastListSize`: multicast addresses the hardware filter holds.
    pub MaxMulticastListSize: u32,
    /// `MacAddressLength`: bytes of a MAC in the two address arrays (6 for Ethernet).
    pub MacAddressLength: u16,
    /// `PermanentMacAddress`: the burned-in MAC, in its first `MacAddressLength` bytes.
    pub PermanentMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    /// `CurrentMacAddress`: the MAC in use, in its first `MacAddressLength` bytes.
    pub CurrentMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    /// `RecvScaleCapabilities`: `PNDIS_RECEIVE_SCALE_CAPABILITIES` (NULL: no RSS).
    pub RecvScaleCapabilities: *mut c_void,
    /// `AccessType`: `NET_IF_ACCESS_TYPE` (`NET_IF_ACCESS_BROADCAST` for Ethernet).
    pub AccessType: u32,
    /// `DirectionType`: `NET_IF_DIRECTION_TYPE` (`NET_IF_DIRECTION_SENDRECEIVE`).
    pub DirectionType: u32,
    /// `ConnectionType`: `NET_IF_CONNECTION_TYPE` (`NET_IF_CONNECTION_DEDICATED`).
    pub ConnectionType: u32,
    /// `IfType`: `NET_IFTYPE`, the IANA interface type (`IF_TYPE_ETHERNET_CSMACD`).
    pub IfType: u16,
    /// `IfConnectorPresent` (BOOLEAN): TRUE for a physical adapter with a connector.
    pub IfConnectorPresent: u8,
    /// `SupportedStatistics`: `NDIS_STATISTICS_*_SUPPORTED` bits of the statistics OIDs the
    /// miniport answers.
    pub SupportedStatistics: u32,
    /// `SupportedPauseFunctions`: `NDIS_SUPPORTED_PAUSE_FUNCTIONS` (0: no 802.3 pause frames).
    pub SupportedPauseFunctions: u32,
    /// `DataBackFillSize`: bytes of data backfill the miniport asks for in sent buffers.
    pub DataBackFillSize: u32,
    /// `ContextBackFillSize`: bytes of NBL context backfill the miniport asks for.
    pub ContextBackFillSize: u32,
    /// `SupportedOidList`: the OIDs the miniport answers (`NDIS_OID`, ULONG each).
    pub SupportedOidList: *const u32,
    /// `SupportedOidListLength`: bytes (not entries) of `SupportedOidList`.
    pub SupportedOidListLength: u32,
    /// `AutoNegotiationFlags`: `NDIS_LINK_STATE_*_AUTO_NEGOTIATED` bits.
    pub AutoNegotiationFlags: u32,
    /// `PowerManagementCapabilitiesEx` (revision 2): `PNDIS_PM_CAPABILITIES` (NULL: none).
    pub PowerManagementCapabilitiesEx: *mut c_void,
}

/// `NDIS_MINIPORT_ADAPTER_ATTRIBUTES`: the union `NdisMSetMiniportAttributes` receives a pointer
/// to. Only the members this project uses are declared; read `Header` first, then the member
/// its `Type` names.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_MINIPORT_ADAPTER_ATTRIBUTES {
    /// `Header`: shared prefix of every member; its `Type` says which member is live.
    pub Header: NDIS_OBJECT_HEADER,
    /// `RegistrationAttributes`: live when `Header.Type` is 0x9E.
    pub RegistrationAttributes: NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    /// `GeneralAttributes`: live when `Header.Type` is 0x9F.
    pub GeneralAttributes: NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    /// The NDK attributes: live when `Header.Type` is 0xB3 (`NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES`).
    pub NdkAttributes: crate::ndis_ndk::NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn registration_attributes_layout() {
        type T = NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES;
        assert_eq!(size_of::<T>(), 0x20);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, MiniportAdapterContext), 0x08);
        assert_eq!(offset_of!(T, AttributeFlags), 0x10);
        assert_eq!(offset_of!(T, CheckForHangTimeInSeconds), 0x14);
        assert_eq!(offset_of!(T, InterfaceType), 0x18);
        assert_eq!(
            offset_of!(T, InterfaceType) + 4,
            NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1 as usize
        );
    }

    /// Offsets from the WDK's ndis.h declaration order with x64 alignment, cross-checked
    /// against a type dump of ndis.sys (x86 offsets, which differ only by pointer size).
    #[test]
    fn general_attributes_layout() {
        type T = NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES;
        assert_eq!(size_of::<T>(), 0xE0);
        assert_eq!(offset_of!(T, Header), 0x00);
        assert_eq!(offset_of!(T, Flags), 0x04);
        assert_eq!(offset_of!(T, MediaType), 0x08);
        assert_eq!(offset_of!(T, PhysicalMediumType), 0x0C);
        assert_eq!(offset_of!(T, MtuSize), 0x10);
        assert_eq!(offset_of!(T, MaxXmitLinkSpeed), 0x18);
        assert_eq!(offset_of!(T, XmitLinkSpeed), 0x20);
        assert_eq!(offset_of!(T, MaxRcvLinkSpeed), 0x28);
        assert_eq!(offset_of!(T, RcvLinkSpeed), 0x30);
        assert_eq!(offset_of!(T, MediaConnectState), 0x38);
        assert_eq!(offset_of!(T, MediaDuplexState), 0x3C);
        assert_eq!(offset_of!(T, LookaheadSize), 0x40);
        assert_eq!(offset_of!(T, PowerManagementCapabilities), 0x48);
        assert_eq!(offset_of!(T, MacOptions), 0x50);
        assert_eq!(offset_of!(T, SupportedPacketFilters), 0x54);
        assert_eq!(offset_of!(T, MaxMulticastListSize), 0x58);
        assert_eq!(offset_of!(T, MacAddressLength), 0x5C);
        assert_eq!(offset_of!(T, PermanentMacAddress), 0x5E);
        assert_eq!(offset_of!(T, CurrentMacAddress), 0x7E);
        assert_eq!(offset_of!(T, RecvScaleCapabilities), 0xA0);
        assert_eq!(offset_of!(T, AccessType), 0xA8);
        assert_eq!(offset_of!(T, DirectionType), 0xAC);
        assert_eq!(offset_of!(T, ConnectionType), 0xB0);
        assert_eq!(offset_of!(T, IfType), 0xB4);
        assert_eq!(offset_of!(T, IfConnectorPresent), 0xB6);
        assert_eq!(offset_of!(T, SupportedStatistics), 0xB8);
        assert_eq!(offset_of!(T, SupportedPauseFunctions), 0xBC);
        assert_eq!(offset_of!(T, DataBackFillSize), 0xC0);
        assert_eq!(offset_of!(T, ContextBackFillSize), 0xC4);
        assert_eq!(offset_of!(T, SupportedOidList), 0xC8);
        assert_eq!(offset_of!(T, SupportedOidListLength), 0xD0);
        assert_eq!(offset_of!(T, AutoNegotiationFlags), 0xD4);
        assert_eq!(offset_of!(T, PowerManagementCapabilitiesEx), 0xD8);
        assert_eq!(
            offset_of!(T, AutoNegotiationFlags) + 4,
            NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1 as usize
        );
        assert_eq!(
            size_of::<T>(),
            NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2 as usize
        );
    }

    #[test]
    fn attributes_union_header_aliases_member_header() {
        assert_eq!(offset_of!(NDIS_MINIPORT_ADAPTER_ATTRIBUTES, Header), 0);
        assert_eq!(
            offset_of!(NDIS_MINIPORT_ADAPTER_ATTRIBUTES, RegistrationAttributes),
            0
        );
        assert_eq!(
            offset_of!(NDIS_MINIPORT_ADAPTER_ATTRIBUTES, GeneralAttributes),
            0
        );
        assert_eq!(size_of::<NDIS_MINIPORT_ADAPTER_ATTRIBUTES>(), 0xE0);
    }
}
