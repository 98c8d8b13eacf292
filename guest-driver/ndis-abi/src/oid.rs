//! `NDIS_OID_REQUEST` (what NDIS passes to MiniportOidRequest) and the OID codes the miniport
//! answers.
//!
//! Layout (x64, 0xF0 bytes) as in the WDK's ndis/oidrequest.h: the `DATA` union starts at 0x20
//! and its largest member (`METHOD_INFORMATION`) makes it 0x28 bytes; then
//! `NdisReserved[16 * sizeof(PVOID)]`, `MiniportReserved[2 * sizeof(PVOID)]`,
//! `SourceReserved[2 * sizeof(PVOID)]`, `SupportedRevision`, `Reserved1`, `Reserved2`.

use core::ffi::c_void;

use crate::header::NDIS_OBJECT_HEADER;

/// `NDIS_OID`: a 32-bit object identifier.
pub type NDIS_OID = u32;

/// `NDIS_OID_REQUEST_REVISION_1`.
pub const NDIS_OID_REQUEST_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_OID_REQUEST_REVISION_1`: through `Reserved2` (0xEC, the struct is padded to 0xF0).
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_1: u16 = 0xEC;
/// `NDIS_OID_REQUEST_NDIS_RESERVED_SIZE`: pointer-sized slots NDIS reserves for itself.
pub const NDIS_OID_REQUEST_NDIS_RESERVED_SIZE: usize = 16;

/// `NDIS_REQUEST_TYPE`: a query (`NdisRequestQueryInformation`, 0).
pub const NdisRequestQueryInformation: u32 = 0;
/// `NDIS_REQUEST_TYPE`: a set (`NdisRequestSetInformation`, 1).
pub const NdisRequestSetInformation: u32 = 1;
/// `NDIS_REQUEST_TYPE`: a statistics query (`NdisRequestQueryStatistics`, 2), answered like a query.
pub const NdisRequestQueryStatistics: u32 = 2;
/// `NDIS_REQUEST_TYPE`: a method request (`NdisRequestMethod`, 12).
pub const NdisRequestMethod: u32 = 12;

/// `DATA.QUERY_INFORMATION` / `DATA.SET_INFORMATION` of [`NDIS_OID_REQUEST`] (their layouts
/// coincide; a set's `BytesRead` is at the place of a query's `BytesWritten`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_OID_REQUEST_INFORMATION {
    /// `Oid`: the object queried or set.
    pub Oid: NDIS_OID,
    /// `InformationBuffer`: the caller's buffer (query: output; set: input).
    pub InformationBuffer: *mut c_void,
    /// `InformationBufferLength`: its size in bytes.
    pub InformationBufferLength: u32,
    /// `BytesWritten` (query) / `BytesRead` (set): bytes the miniport used.
    pub BytesWritten: u32,
    /// `BytesNeeded`: on a too-short buffer, the size the miniport needs.
    pub BytesNeeded: u32,
}

/// `NDIS_OID_REQUEST` (x64, 0xF0 bytes; revision-1 size 0xEC). Header: type
/// `NDIS_OBJECT_TYPE_OID_REQUEST` (0x96), revision 1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_OID_REQUEST {
    /// `Header`: type 0x96, revision 1, size 0xEC.
    pub Header: NDIS_OBJECT_HEADER,
    /// `RequestType`: `NdisRequest*` above.
    pub RequestType: u32,
    /// `PortNumber`: NDIS port (0 = the default port).
    pub PortNumber: u32,
    /// `Timeout`: seconds NDIS lets the request run before it considers the miniport hung.
    pub Timeout: u32,
    /// `RequestId`: the caller's identifier (used by MiniportCancelOidRequest).
    pub RequestId: *mut c_void,
    /// `RequestHandle`: NDIS's handle of the request.
    pub RequestHandle: *mut c_void,
    /// `DATA.QUERY_INFORMATION` / `DATA.SET_INFORMATION`.
    pub Information: NDIS_OID_REQUEST_INFORMATION,
    /// Rest of the `DATA` union (the tail of `METHOD_INFORMATION`), unused for query/set.
    pub MethodTail: [u32; 2],
    /// `NdisReserved`: NDIS's own.
    pub NdisReserved: [*mut c_void; NDIS_OID_REQUEST_NDIS_RESERVED_SIZE],
    /// `MiniportReserved`: the miniport may keep state here while the request pends.
    pub MiniportReserved: [*mut c_void; 2],
    /// `SourceReserved`: the originator's.
    pub SourceReserved: [*mut c_void; 2],
    /// `SupportedRevision`: revision the originator supports.
    pub SupportedRevision: u8,
    /// `Reserved1`.
    pub Reserved1: u8,
    /// `Reserved2`.
    pub Reserved2: u16,
}

/// `OID_GEN_SUPPORTED_LIST`: the `NDIS_OID` array the miniport answers.
pub const OID_GEN_SUPPORTED_LIST: NDIS_OID = 0x0001_0101;
/// `OID_GEN_HARDWARE_STATUS`: `NDIS_HARDWARE_STATUS` (0 = ready).
pub const OID_GEN_HARDWARE_STATUS: NDIS_OID = 0x0001_0102;
/// `OID_GEN_MEDIA_SUPPORTED`: `NDIS_MEDIUM` (0 = 802.3).
pub const OID_GEN_MEDIA_SUPPORTED: NDIS_OID = 0x0001_0103;
/// `OID_GEN_MEDIA_IN_USE`: `NDIS_MEDIUM`.
pub const OID_GEN_MEDIA_IN_USE: NDIS_OID = 0x0001_0104;
/// `OID_GEN_MAXIMUM_LOOKAHEAD`: ULONG, bytes.
pub const OID_GEN_MAXIMUM_LOOKAHEAD: NDIS_OID = 0x0001_0105;
/// `OID_GEN_MAXIMUM_FRAME_SIZE`: ULONG, the MTU (bytes without the link header).
pub const OID_GEN_MAXIMUM_FRAME_SIZE: NDIS_OID = 0x0001_0106;
/// `OID_GEN_LINK_SPEED`: ULONG, in units of 100 bit/s.
pub const OID_GEN_LINK_SPEED: NDIS_OID = 0x0001_0107;
/// `OID_GEN_CURRENT_PACKET_FILTER`: ULONG, `NDIS_PACKET_TYPE_*` bits (query and set).
pub const OID_GEN_CURRENT_PACKET_FILTER: NDIS_OID = 0x0001_010E;
/// `OID_GEN_CURRENT_LOOKAHEAD`: ULONG, bytes (query and set).
pub const OID_GEN_CURRENT_LOOKAHEAD: NDIS_OID = 0x0001_010F;
/// `OID_GEN_MAXIMUM_TOTAL_SIZE`: ULONG, the largest frame including the link header.
pub const OID_GEN_MAXIMUM_TOTAL_SIZE: NDIS_OID = 0x0001_0111;
/// `OID_GEN_MAC_OPTIONS`: ULONG, `NDIS_MAC_OPTION_*` bits.
pub const OID_GEN_MAC_OPTIONS: NDIS_OID = 0x0001_0113;
/// `OID_GEN_MEDIA_CONNECT_STATUS`: ULONG, 0 connected / 1 disconnected.
pub const OID_GEN_MEDIA_CONNECT_STATUS: NDIS_OID = 0x0001_0114;
/// `OID_GEN_XMIT_OK`: ULONG or ULONG64, frames sent without error.
pub const OID_GEN_XMIT_OK: NDIS_OID = 0x0002_0101;
/// `OID_GEN_RCV_OK`: ULONG or ULONG64, frames received and indicated.
pub const OID_GEN_RCV_OK: NDIS_OID = 0x0002_0102;
/// `OID_GEN_XMIT_ERROR`: ULONG or ULONG64, frames the miniport failed to send.
pub const OID_GEN_XMIT_ERROR: NDIS_OID = 0x0002_0103;
/// `OID_GEN_RCV_ERROR`: ULONG or ULONG64, frames received with errors.
pub const OID_GEN_RCV_ERROR: NDIS_OID = 0x0002_0104;
/// `OID_GEN_RCV_NO_BUFFER`: ULONG or ULONG64, frames dropped for lack of a receive buffer.
pub const OID_GEN_RCV_NO_BUFFER: NDIS_OID = 0x0002_0105;
/// `OID_802_3_PERMANENT_ADDRESS`: 6 bytes, the burned-in MAC.
pub const OID_802_3_PERMANENT_ADDRESS: NDIS_OID = 0x0101_0101;
/// `OID_802_3_CURRENT_ADDRESS`: 6 bytes, the MAC in use.
pub const OID_802_3_CURRENT_ADDRESS: NDIS_OID = 0x0101_0102;
/// `OID_802_3_MULTICAST_LIST`: a packed array of 6-byte group addresses (query and set).
pub const OID_802_3_MULTICAST_LIST: NDIS_OID = 0x0101_0103;
/// `OID_802_3_MAXIMUM_LIST_SIZE`: ULONG, how many multicast addresses the list holds.
pub const OID_802_3_MAXIMUM_LIST_SIZE: NDIS_OID = 0x0101_0104;

/// `NdisHardwareStatusReady`: `OID_GEN_HARDWARE_STATUS` of a working adapter.
pub const NdisHardwareStatusReady: u32 = 0;
/// `NdisMediaStateConnected`: `OID_GEN_MEDIA_CONNECT_STATUS` with the link up.
pub const NdisMediaStateConnected: u32 = 0;
/// `NdisMediaStateDisconnected`: `OID_GEN_MEDIA_CONNECT_STATUS` with the link down.
pub const NdisMediaStateDisconnected: u32 = 1;
#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Offsets from the brief (checked against a WDK header copy) and, independently, from the
    /// x86 type dump of the same structure (0x8C bytes: pointers 4 bytes) rescaled to x64.
    #[test]
    fn oid_request_layout() {
        type T = NDIS_OID_REQUEST;
        type I = NDIS_OID_REQUEST_INFORMATION;
        assert_eq!(size_of::<T>(), 0xF0);
        assert_eq!(offset_of!(T, RequestType), 0x4);
        assert_eq!(offset_of!(T, PortNumber), 0x8);
        assert_eq!(offset_of!(T, Timeout), 0xC);
        assert_eq!(offset_of!(T, RequestId), 0x10);
        assert_eq!(offset_of!(T, RequestHandle), 0x18);
        assert_eq!(offset_of!(T, Information), 0x20);
        assert_eq!(offset_of!(T, Information) + offset_of!(I, Oid), 0x20);
        assert_eq!(
            offset_of!(T, Information) + offset_of!(I, InformationBuffer),
            0x28
        );
        assert_eq!(
            offset_of!(T, Information) + offset_of!(I, InformationBufferLength),
            0x30
        );
        assert_eq!(
            offset_of!(T, Information) + offset_of!(I, BytesWritten),
            0x34
        );
        assert_eq!(
            offset_of!(T, Information) + offset_of!(I, BytesNeeded),
            0x38
        );
        // DATA is as large as METHOD_INFORMATION: 8 fields, 0x28 bytes on x64.
        assert_eq!(offset_of!(T, NdisReserved), 0x48);
        assert_eq!(offset_of!(T, MiniportReserved), 0xC8);
        assert_eq!(offset_of!(T, SourceReserved), 0xD8);
        assert_eq!(offset_of!(T, SupportedRevision), 0xE8);
        assert_eq!(offset_of!(T, Reserved2), 0xEA);
        assert_eq!(
            offset_of!(T, Reserved2) + 2,
            NDIS_SIZEOF_OID_REQUEST_REVISION_1 as usize
        );
    }

    #[test]
    fn oid_codes() {
        // Independent copy of the documented values (ntddndis.h).
        assert_eq!(OID_GEN_SUPPORTED_LIST, 0x00010101);
        assert_eq!(OID_GEN_CURRENT_PACKET_FILTER, 0x0001010E);
        assert_eq!(OID_GEN_MEDIA_CONNECT_STATUS, 0x00010114);
        assert_eq!(OID_GEN_RCV_NO_BUFFER, 0x00020105);
        assert_eq!(OID_802_3_MULTICAST_LIST, 0x01010103);
        assert_eq!(NdisRequestMethod, 12);
    }
}
