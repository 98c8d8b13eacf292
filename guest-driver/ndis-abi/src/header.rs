//! `NDIS_OBJECT_HEADER` and the object-type constants.

/// `NDIS_OBJECT_HEADER { UCHAR Type; UCHAR Revision; USHORT Size; }` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    /// `Type`: which NDIS structure follows (one of the `NDIS_OBJECT_TYPE_*` values).
    pub Type: u8,
    /// `Revision`: the structure's revision; later revisions append fields.
    pub Revision: u8,
    /// `Size`: bytes of the structure as the caller declares it (the size of its revision).
    pub Size: u16,
}

impl NDIS_OBJECT_HEADER {
    /// Builds a header from its three fields (arguments in field order).
    pub const fn new(Type: u8, Revision: u8, Size: u16) -> Self {
        Self {
            Type,
            Revision,
            Size,
        }
    }
}

/// `NDIS_OBJECT_TYPE_DEFAULT`: structures without a type of their own (general attributes, statistics, ...).
pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
/// `NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS`: `NDIS_MINIPORT_INIT_PARAMETERS` given to MiniportInitializeEx.
pub const NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS: u8 = 0x81;
/// `NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION`: `NDIS_SG_DMA_DESCRIPTION` for NdisMRegisterScatterGatherDma.
pub const NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION: u8 = 0x83;
/// `NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT`: `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` for NdisMRegisterInterruptEx.
pub const NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT: u8 = 0x84;
/// `NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS`: `NDIS_MINIPORT_DRIVER_CHARACTERISTICS` for NdisMRegisterMiniportDriver.
pub const NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS: u8 = 0x8A;
/// `NDIS_OBJECT_TYPE_MINIPORT_PNP_CHARACTERISTICS`: `NDIS_MINIPORT_PNP_CHARACTERISTICS` given to NdisSetOptionalHandlers.
pub const NDIS_OBJECT_TYPE_MINIPORT_PNP_CHARACTERISTICS: u8 = 0x92;
/// `NDIS_OBJECT_TYPE_OID_REQUEST`: `NDIS_OID_REQUEST` passed to MiniportOidRequest.
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;
/// `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES`: registration attributes for NdisMSetMiniportAttributes.
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES: u8 = 0x9E;
/// `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES`: general attributes (MAC, MTU, media, OID list) for NdisMSetMiniportAttributes.
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES: u8 = 0x9F;
/// `NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS`: `NDIS_NDK_PROVIDER_CHARACTERISTICS` given to NdisSetOptionalHandlers.
pub const NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS: u8 = 0xB2;
/// `NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES`: `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` for NdisMSetMiniportAttributes.
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES: u8 = 0xB3;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<NDIS_OBJECT_HEADER>(), 4);
        assert_eq!(offset_of!(NDIS_OBJECT_HEADER, Type), 0);
        assert_eq!(offset_of!(NDIS_OBJECT_HEADER, Revision), 1);
        assert_eq!(offset_of!(NDIS_OBJECT_HEADER, Size), 2);
    }
}
