//! Socket addresses, `GUID` and `GROUP_AFFINITY`: the small Windows types the NDK interface
//! passes around (ws2def.h / ws2ipdef.h / guiddef.h / ntdef.h, x64).
//!
//! Addresses are in network byte order exactly as Windows lays them out: `sin_port` and the
//! address bytes are big-endian, `sin_family` is a host-order `ADDRESS_FAMILY` (u16).

/// `ADDRESS_FAMILY` (USHORT).
pub type ADDRESS_FAMILY = u16;
/// `AF_INET`: IPv4.
pub const AF_INET: ADDRESS_FAMILY = 2;
/// `AF_INET6`: IPv6 (23 on Windows, unlike Linux's 10).
pub const AF_INET6: ADDRESS_FAMILY = 23;

/// `SOCKADDR` (16 bytes): the generic prefix every address starts with; NDK functions take a
/// `PSOCKADDR` plus a length and look at `sa_family` to know which address follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR {
    /// `sa_family`: [`AF_INET`] or [`AF_INET6`].
    pub sa_family: ADDRESS_FAMILY,
    /// `sa_data`: family-specific bytes.
    pub sa_data: [u8; 14],
}

/// `SOCKADDR_IN` (16 bytes): an IPv4 address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN {
    /// `sin_family`: [`AF_INET`].
    pub sin_family: ADDRESS_FAMILY,
    /// `sin_port`: port, big-endian (use `u16::to_be`).
    pub sin_port: u16,
    /// `sin_addr`: the four address bytes in wire order (`IN_ADDR`).
    pub sin_addr: [u8; 4],
    /// `sin_zero`: padding, zero.
    pub sin_zero: [u8; 8],
}

/// `SOCKADDR_IN6` (28 bytes): an IPv6 address, port, flow label and scope.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN6 {
    /// `sin6_family`: [`AF_INET6`].
    pub sin6_family: ADDRESS_FAMILY,
    /// `sin6_port`: port, big-endian.
    pub sin6_port: u16,
    /// `sin6_flowinfo`: flow label, big-endian.
    pub sin6_flowinfo: u32,
    /// `sin6_addr`: the 16 address bytes in wire order (`IN6_ADDR`).
    pub sin6_addr: [u8; 16],
    /// `sin6_scope_id`: scope (interface) id, 0 for global addresses.
    pub sin6_scope_id: u32,
}

/// `SOCKADDR_INET` (28 bytes): either address family, told apart by `si_family`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union SOCKADDR_INET {
    /// `Ipv4`: live when `si_family` is [`AF_INET`].
    pub Ipv4: SOCKADDR_IN,
    /// `Ipv6`: live when `si_family` is [`AF_INET6`].
    pub Ipv6: SOCKADDR_IN6,
    /// `si_family`: the family of the live member.
    pub si_family: ADDRESS_FAMILY,
}

impl Default for SOCKADDR_INET {
    fn default() -> Self {
        Self {
            Ipv6: SOCKADDR_IN6::default(),
        }
    }
}

/// `GUID` (16 bytes): NDK extension-interface ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GUID {
    /// `Data1`.
    pub Data1: u32,
    /// `Data2`.
    pub Data2: u16,
    /// `Data3`.
    pub Data3: u16,
    /// `Data4`.
    pub Data4: [u8; 8],
}

/// `GROUP_AFFINITY` (16 bytes): a processor group and a mask of processors in it (the CPUs a
/// consumer would like a CQ's or SRQ's notifications to run on).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GROUP_AFFINITY {
    /// `Mask`: `KAFFINITY`, one bit per processor of the group.
    pub Mask: u64,
    /// `Group`: processor group number.
    pub Group: u16,
    /// `Reserved`: zero.
    pub Reserved: [u16; 3],
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Second source for every layout here: Microsoft's win32 metadata as generated into the
    // `windows-sys` crate 0.61.2 (repository microsoft/windows-rs; files
    // src/Windows/Win32/Networking/WinSock/mod.rs for SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6,
    // SOCKADDR_INET, AF_INET/AF_INET6 and src/Windows/Win32/System/SystemInformation/mod.rs for
    // GROUP_AFFINITY), field by field.

    #[test]
    fn sockaddr_layouts() {
        assert_eq!(size_of::<SOCKADDR>(), 16);
        assert_eq!(size_of::<SOCKADDR_IN>(), 16);
        assert_eq!(offset_of!(SOCKADDR_IN, sin_port), 2);
        assert_eq!(offset_of!(SOCKADDR_IN, sin_addr), 4);
        assert_eq!(offset_of!(SOCKADDR_IN, sin_zero), 8);
        assert_eq!(size_of::<SOCKADDR_IN6>(), 28);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_port), 2);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_flowinfo), 4);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_addr), 8);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_scope_id), 24);
        assert_eq!(size_of::<SOCKADDR_INET>(), 28);
        assert_eq!(core::mem::align_of::<SOCKADDR_INET>(), 4);
    }

    /// `SOCKADDR_IN6` as ws2ipdef.h declares it (checked against a copy of Microsoft's
    /// declaration: repository m417z/windows-docs-scraper, file
    /// sdk-api/ws2ipdef/ns-ws2ipdef-sockaddr_in6_lh.c: `ADDRESS_FAMILY sin6_family; USHORT
    /// sin6_port; ULONG sin6_flowinfo; IN6_ADDR sin6_addr; union { ULONG sin6_scope_id;
    /// SCOPE_ID sin6_scope_struct; }`), and `AF_INET6` 23 as ws2def.h defines it: what the
    /// NDK connector and listener entries take for IPv6, 28 bytes, the family overlaying
    /// `SOCKADDR`'s and `SOCKADDR_INET`'s.
    #[test]
    fn sockaddr_in6_matches_ws2ipdef() {
        assert_eq!(size_of::<SOCKADDR_IN6>(), 28);
        assert_eq!(core::mem::align_of::<SOCKADDR_IN6>(), 4);
        assert_eq!(
            offset_of!(SOCKADDR_IN6, sin6_family),
            offset_of!(SOCKADDR, sa_family)
        );
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_port), 2);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_flowinfo), 4);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_addr), 8);
        assert_eq!(offset_of!(SOCKADDR_IN6, sin6_scope_id), 24);
        assert_eq!(offset_of!(SOCKADDR_INET, Ipv6), 0);
        assert_eq!(offset_of!(SOCKADDR_INET, si_family), 0);
        assert_eq!(AF_INET6, 23);
    }

    #[test]
    fn guid_and_affinity_layouts() {
        assert_eq!(size_of::<GUID>(), 16);
        assert_eq!(offset_of!(GUID, Data4), 8);
        assert_eq!(size_of::<GROUP_AFFINITY>(), 16);
        assert_eq!(offset_of!(GROUP_AFFINITY, Group), 8);
        assert_eq!(offset_of!(GROUP_AFFINITY, Reserved), 10);
    }

    #[test]
    fn windows_family_numbers() {
        assert_eq!(AF_INET, 2);
        assert_eq!(AF_INET6, 23);
    }
}
