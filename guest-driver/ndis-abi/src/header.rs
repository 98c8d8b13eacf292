//! `NDIS_OBJECT_HEADER` and the object-type constants.

/// `NDIS_OBJECT_HEADER { UCHAR Type; UCHAR Revision; USHORT Size; }` (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    pub Type: u8,
    pub Revision: u8,
    pub Size: u16,
}

impl NDIS_OBJECT_HEADER {
    pub const fn new(Type: u8, Revision: u8, Size: u16) -> Self {
        Self {
            Type,
            Revision,
            Size,
        }
    }
}

pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
pub const NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS: u8 = 0x81;
pub const NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION: u8 = 0x83;
pub const NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT: u8 = 0x84;
pub const NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS: u8 = 0x8A;
pub const NDIS_OBJECT_TYPE_MINIPORT_PNP_CHARACTERISTICS: u8 = 0x92;
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES: u8 = 0x9E;
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES: u8 = 0x9F;
pub const NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS: u8 = 0xB2;
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
