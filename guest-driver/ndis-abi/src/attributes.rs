//! Adapter attributes passed to `NdisMSetMiniportAttributes`.
//!
//! The C prototype takes `PNDIS_MINIPORT_ADAPTER_ATTRIBUTES`, a union of pointers-to-structs that
//! all begin with an `NDIS_OBJECT_HEADER`; callers pass a pointer to one concrete attribute
//! structure and the callee dispatches on `Header.Type`.

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

    #[test]
    fn attributes_union_header_aliases_member_header() {
        assert_eq!(offset_of!(NDIS_MINIPORT_ADAPTER_ATTRIBUTES, Header), 0);
        assert_eq!(
            offset_of!(NDIS_MINIPORT_ADAPTER_ATTRIBUTES, RegistrationAttributes),
            0
        );
    }
}
