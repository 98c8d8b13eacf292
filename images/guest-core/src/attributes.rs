//! The verifier's checks of the adapter attributes a miniport passes to
//! `NdisMSetMiniportAttributes`, as far as they are pure data: the NDIS personality reads the
//! structure (and its OID list) out of driver memory and asks [`check_general`] whether NDIS
//! would accept it.

use alloc::vec::Vec;

use ndis_abi::{
    MediaConnectStateDisconnected, MediaDuplexStateFull, NdisMedium802_3,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
    NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1,
    NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
};

/// Bytes of an Ethernet (802.3) MAC address.
pub const ETHERNET_ADDRESS_LENGTH: usize = 6;
/// Largest OID list the verifier accepts (entries); bounds the copy out of driver memory.
pub const MAX_SUPPORTED_OIDS: usize = 512;

/// Why general attributes are refused (each message names the field and the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeneralAttributesError {
    /// Wrong header for the declared revision.
    #[error("general attributes header type {ty:#x} revision {revision} size {size:#x} (expected type 0x9f, revision 1 with size >= 0xd8 or revision 2 with size >= 0xe0)")]
    BadHeader {
        /// `Header.Type`.
        ty: u8,
        /// `Header.Revision`.
        revision: u8,
        /// `Header.Size`.
        size: u16,
    },
    /// A medium other than 802.3 (the RNIC is an Ethernet adapter).
    #[error("MediaType {0} is not NdisMedium802_3 (0)")]
    NotEthernet(u32),
    /// `MacAddressLength` is not 6 for an 802.3 adapter.
    #[error("MacAddressLength {0} is not 6 for an 802.3 adapter")]
    BadMacLength(u16),
    /// The current MAC is all zero or a group (multicast) address.
    #[error("CurrentMacAddress {0:02x?} is not a unicast address")]
    BadMac([u8; 6]),
    /// `MtuSize` is 0.
    #[error("MtuSize is 0")]
    ZeroMtu,
    /// `MediaConnectState` or `MediaDuplexState` outside their enums.
    #[error("MediaConnectState {connect} / MediaDuplexState {duplex} out of range")]
    BadLinkState {
        /// `MediaConnectState`.
        connect: u32,
        /// `MediaDuplexState`.
        duplex: u32,
    },
    /// The OID list's length is not whole ULONGs, too long, or disagrees with its pointer.
    #[error("SupportedOidList/SupportedOidListLength inconsistent: pointer {present}, length {length} bytes (whole ULONGs, at most 512, pointer non-NULL exactly when length > 0)")]
    BadOidList {
        /// Whether the pointer is non-NULL.
        present: bool,
        /// `SupportedOidListLength` in bytes.
        length: u32,
    },
}

/// What the verifier keeps of accepted general attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneralAttributes {
    /// The current MAC address.
    pub mac: [u8; 6],
    /// `MtuSize` in bytes.
    pub mtu: u32,
    /// `MediaConnectState`.
    pub connect_state: u32,
    /// `XmitLinkSpeed` in bits per second.
    pub xmit_link_speed: u64,
    /// `MaxXmitLinkSpeed` in bits per second: the speed of a connected link.
    pub max_xmit_link_speed: u64,
    /// The OIDs the miniport claims to answer.
    pub supported_oids: Vec<u32>,
}

/// Number of OID entries the structure's list holds, after checking the list's fields: the
/// caller copies that many ULONGs out of driver memory before calling [`check_general`].
pub fn oid_list_entries(
    attrs: &NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
) -> Result<usize, GeneralAttributesError> {
    let length = attrs.SupportedOidListLength;
    let present = !attrs.SupportedOidList.is_null();
    let entries = length as usize / 4;
    if !length.is_multiple_of(4) || entries > MAX_SUPPORTED_OIDS || present != (length != 0) {
        return Err(GeneralAttributesError::BadOidList { present, length });
    }
    Ok(entries)
}

/// Checks general attributes as NDIS (and the verifier) would; `oids` is the copied list of
/// [`oid_list_entries`] entries.
pub fn check_general(
    attrs: &NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    oids: &[u32],
) -> Result<GeneralAttributes, GeneralAttributesError> {
    let h = attrs.Header;
    let header_ok = h.Type == NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES
        && match h.Revision {
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1 => {
                h.Size >= NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_1
            }
            r if r >= NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2 => {
                h.Size >= NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2
            }
            _ => false,
        };
    if !header_ok {
        return Err(GeneralAttributesError::BadHeader {
            ty: h.Type,
            revision: h.Revision,
            size: h.Size,
        });
    }
    if attrs.MediaType != NdisMedium802_3 {
        return Err(GeneralAttributesError::NotEthernet(attrs.MediaType));
    }
    if attrs.MacAddressLength as usize != ETHERNET_ADDRESS_LENGTH {
        return Err(GeneralAttributesError::BadMacLength(attrs.MacAddressLength));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&attrs.CurrentMacAddress[..ETHERNET_ADDRESS_LENGTH]);
    if mac == [0; 6] || mac[0] & 1 != 0 {
        return Err(GeneralAttributesError::BadMac(mac));
    }
    if attrs.MtuSize == 0 {
        return Err(GeneralAttributesError::ZeroMtu);
    }
    if attrs.MediaConnectState > MediaConnectStateDisconnected
        || attrs.MediaDuplexState > MediaDuplexStateFull
    {
        return Err(GeneralAttributesError::BadLinkState {
            connect: attrs.MediaConnectState,
            duplex: attrs.MediaDuplexState,
        });
    }
    let entries = oid_list_entries(attrs)?;
    if oids.len() != entries {
        return Err(GeneralAttributesError::BadOidList {
            present: !attrs.SupportedOidList.is_null(),
            length: attrs.SupportedOidListLength,
        });
    }
    Ok(GeneralAttributes {
        mac,
        mtu: attrs.MtuSize,
        connect_state: attrs.MediaConnectState,
        xmit_link_speed: attrs.XmitLinkSpeed,
        max_xmit_link_speed: attrs.MaxXmitLinkSpeed,
        supported_oids: oids.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndis_abi::*;

    const OIDS: [u32; 2] = [0x0001_0101, 0x0101_0102];

    fn good() -> NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES {
        // SAFETY: the structure is integers, byte arrays and nullable raw pointers: all-zero
        // is a valid value.
        let mut a: NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES = unsafe { core::mem::zeroed() };
        a.Header = NDIS_OBJECT_HEADER::new(0x9F, 2, 0xE0);
        a.MediaType = NdisMedium802_3;
        a.MtuSize = 1500;
        a.MacAddressLength = 6;
        a.CurrentMacAddress[..6].copy_from_slice(&[0x02, 0x7e, 0x57, 0, 0, 1]);
        a.MediaConnectState = MediaConnectStateConnected;
        a.XmitLinkSpeed = 100_000_000_000;
        a.MaxXmitLinkSpeed = 100_000_000_000;
        a.SupportedOidList = OIDS.as_ptr();
        a.SupportedOidListLength = 8;
        a
    }

    #[test]
    fn accepts_well_formed_attributes() {
        let g = check_general(&good(), &OIDS).unwrap();
        assert_eq!(g.mac, [0x02, 0x7e, 0x57, 0, 0, 1]);
        assert_eq!(g.mtu, 1500);
        assert_eq!(g.supported_oids, OIDS);
        assert_eq!(g.connect_state, 1);
        assert_eq!(g.xmit_link_speed, 100_000_000_000);
        assert_eq!(g.max_xmit_link_speed, 100_000_000_000);
        // Revision 1 with its smaller size is fine too, and an empty list is not an error.
        let mut a = good();
        a.Header = NDIS_OBJECT_HEADER::new(0x9F, 1, 0xD8);
        a.SupportedOidList = core::ptr::null();
        a.SupportedOidListLength = 0;
        assert_eq!(oid_list_entries(&a), Ok(0));
        assert!(check_general(&a, &[]).unwrap().supported_oids.is_empty());
    }

    #[test]
    fn header_must_match_its_revision() {
        for (ty, rev, size) in [
            (0x9E, 2, 0xE0),
            (0x9F, 2, 0xD8),
            (0x9F, 1, 0xD0),
            (0x9F, 0, 0xE0),
        ] {
            let mut a = good();
            a.Header = NDIS_OBJECT_HEADER::new(ty, rev, size);
            assert_eq!(
                check_general(&a, &OIDS),
                Err(GeneralAttributesError::BadHeader {
                    ty,
                    revision: rev,
                    size
                })
            );
        }
    }

    #[test]
    fn field_rules() {
        let mut a = good();
        a.MediaType = 14;
        assert_eq!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::NotEthernet(14))
        );
        let mut a = good();
        a.MacAddressLength = 8;
        assert_eq!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::BadMacLength(8))
        );
        let mut a = good();
        a.CurrentMacAddress[0] = 0x01;
        assert!(matches!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::BadMac(_))
        ));
        let mut a = good();
        a.CurrentMacAddress = [0; 32];
        assert!(matches!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::BadMac(_))
        ));
        let mut a = good();
        a.MtuSize = 0;
        assert_eq!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::ZeroMtu)
        );
        let mut a = good();
        a.MediaDuplexState = 3;
        assert!(matches!(
            check_general(&a, &OIDS),
            Err(GeneralAttributesError::BadLinkState { .. })
        ));
    }

    #[test]
    fn oid_list_rules() {
        let mut a = good();
        a.SupportedOidListLength = 6;
        assert!(oid_list_entries(&a).is_err());
        let mut a = good();
        a.SupportedOidList = core::ptr::null();
        assert!(oid_list_entries(&a).is_err());
        let mut a = good();
        a.SupportedOidListLength = 0;
        assert!(oid_list_entries(&a).is_err());
        let mut a = good();
        a.SupportedOidListLength = 4 * (MAX_SUPPORTED_OIDS as u32 + 1);
        assert!(oid_list_entries(&a).is_err());
        // The copied list must have the declared number of entries.
        assert!(check_general(&good(), &OIDS[..1]).is_err());
    }
}
