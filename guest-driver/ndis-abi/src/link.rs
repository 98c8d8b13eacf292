//! Status indications and resets: `NDIS_STATUS_INDICATION` (what `NdisMIndicateStatusEx`
//! takes), `NDIS_LINK_STATE` (the buffer of an `NDIS_STATUS_LINK_STATE` indication and the
//! answer to `OID_GEN_LINK_STATE`), the status codes of hang detection and reset, and the
//! typedefs of `NdisMIndicateStatusEx` and `NdisMResetComplete`.
//!
//! Layouts (x64) checked against a symbol dump of ndis.sys (repository `ntdiff/headers`, file
//! `Win10_20H1_18885/ARM64/System32/ndis.sys/Standalone/_NDIS_STATUS_INDICATION.h`: an LP64
//! layout, the same as x64: size 0x70, `StatusBuffer` at 0x30) and against the WDK's
//! `ntddndis.h` as Microsoft documents it (repository `MicrosoftDocs/windows-driver-docs-ddi`,
//! `wdk-ddi-src/content/ntddndis/ns-ntddndis-_ndis_link_state.md`: `NDIS_LINK_STATE` is
//! Header, MediaConnectState, MediaDuplexState, XmitLinkSpeed, RcvLinkSpeed, PauseFunctions,
//! AutoNegotiationFlags, size 0x28 in the same symbol dumps).

use core::ffi::c_void;

use crate::header::NDIS_OBJECT_HEADER;
use crate::inet::GUID;
use crate::types::{BOOLEAN, NDIS_HANDLE, NDIS_PORT_NUMBER};
use crate::NDIS_STATUS;
use crate::{NDIS_MEDIA_CONNECT_STATE, NDIS_MEDIA_DUPLEX_STATE};

/// `NDIS_STATUS_LINK_STATE`: a status indication whose buffer is an [`NDIS_LINK_STATE`]
/// (the link went up or down, or its speed or duplex changed).
pub const NDIS_STATUS_LINK_STATE: NDIS_STATUS = 0x4001_0017;
/// `NDIS_STATUS_HARD_ERRORS`: the adapter has a hardware failure (here: the device entered its
/// fatal state or its registers read all ones). A reset that cannot recover the device returns
/// it; requests the driver fails because of a fatal device complete with it.
pub const NDIS_STATUS_HARD_ERRORS: NDIS_STATUS = 0x8001_0004;
/// `NDIS_STATUS_NOT_RESETTABLE`: the adapter cannot be reset.
pub const NDIS_STATUS_NOT_RESETTABLE: NDIS_STATUS = 0x8001_0001;

/// `NDIS_OBJECT_TYPE_STATUS_INDICATION`: header type of an [`NDIS_STATUS_INDICATION`].
pub const NDIS_OBJECT_TYPE_STATUS_INDICATION: u8 = 0x98;
/// `NDIS_STATUS_INDICATION_REVISION_1`.
pub const NDIS_STATUS_INDICATION_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_STATUS_INDICATION_REVISION_1`: through `NdisReserved`, the whole structure.
pub const NDIS_SIZEOF_STATUS_INDICATION_REVISION_1: u16 = 0x70;
/// `NDIS_LINK_STATE_REVISION_1` (header type `NDIS_OBJECT_TYPE_DEFAULT`).
pub const NDIS_LINK_STATE_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_LINK_STATE_REVISION_1`: through `AutoNegotiationFlags`, the whole structure.
pub const NDIS_SIZEOF_LINK_STATE_REVISION_1: u16 = 0x28;

/// `NDIS_SUPPORTED_PAUSE_FUNCTIONS` (an enum, 4 bytes).
pub type NDIS_SUPPORTED_PAUSE_FUNCTIONS = u32;
/// `NdisPauseFunctionsUnsupported`: the link sends and honours no 802.3 pause frames.
pub const NdisPauseFunctionsUnsupported: NDIS_SUPPORTED_PAUSE_FUNCTIONS = 0;
/// `NdisPauseFunctionsUnknown`: the pause capability is not known (link down).
pub const NdisPauseFunctionsUnknown: NDIS_SUPPORTED_PAUSE_FUNCTIONS = 4;

/// `NDIS_STATUS_INDICATION` (0x70 bytes): what a miniport passes to `NdisMIndicateStatusEx`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_STATUS_INDICATION {
    /// `Header`: type [`NDIS_OBJECT_TYPE_STATUS_INDICATION`], revision 1, size 0x70.
    pub Header: NDIS_OBJECT_HEADER,
    /// `SourceHandle`: the miniport adapter handle NDIS gave InitializeEx.
    pub SourceHandle: NDIS_HANDLE,
    /// `PortNumber`: 0 (the default port).
    pub PortNumber: NDIS_PORT_NUMBER,
    /// `StatusCode`: what is indicated (`NDIS_STATUS_LINK_STATE`, ...).
    pub StatusCode: NDIS_STATUS,
    /// `Flags`: 0.
    pub Flags: u32,
    /// `DestinationHandle`: NULL (every overlying driver).
    pub DestinationHandle: NDIS_HANDLE,
    /// `RequestId`: NULL (not an answer to an OID).
    pub RequestId: *mut c_void,
    /// `StatusBuffer`: the indication's data (for `NDIS_STATUS_LINK_STATE` an
    /// [`NDIS_LINK_STATE`]); NDIS copies it before `NdisMIndicateStatusEx` returns.
    pub StatusBuffer: *mut c_void,
    /// `StatusBufferSize`: bytes of `StatusBuffer`.
    pub StatusBufferSize: u32,
    /// `Guid`: only for media-specific indications; zero otherwise.
    pub Guid: GUID,
    /// `NdisReserved`: zero.
    pub NdisReserved: [*mut c_void; 4],
}

/// `NDIS_LINK_STATE` (0x28 bytes): the link's state in an `NDIS_STATUS_LINK_STATE`
/// indication and in the answer to `OID_GEN_LINK_STATE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NDIS_LINK_STATE {
    /// `Header`: type `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size 0x28.
    pub Header: NDIS_OBJECT_HEADER,
    /// `MediaConnectState`: `MediaConnectStateConnected` / `Disconnected` / `Unknown`.
    pub MediaConnectState: NDIS_MEDIA_CONNECT_STATE,
    /// `MediaDuplexState`: `MediaDuplexStateFull` / `Half` / `Unknown`.
    pub MediaDuplexState: NDIS_MEDIA_DUPLEX_STATE,
    /// `XmitLinkSpeed`: bits per second (`NDIS_LINK_SPEED_UNKNOWN` when not connected).
    pub XmitLinkSpeed: u64,
    /// `RcvLinkSpeed`: bits per second (`NDIS_LINK_SPEED_UNKNOWN` when not connected).
    pub RcvLinkSpeed: u64,
    /// `PauseFunctions`: 802.3 pause-frame support (`NdisPauseFunctions*`).
    pub PauseFunctions: NDIS_SUPPORTED_PAUSE_FUNCTIONS,
    /// `AutoNegotiationFlags`: `NDIS_LINK_STATE_*_AUTO_NEGOTIATED` bits.
    pub AutoNegotiationFlags: u32,
}

/// `VOID NdisMIndicateStatusEx(NDIS_HANDLE MiniportAdapterHandle, PNDIS_STATUS_INDICATION)`,
/// IRQL <= DISPATCH_LEVEL: reports a status change (here: the link state) to the overlying
/// drivers. Not while the adapter is halting or after it halted.
pub type NdisMIndicateStatusExFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    StatusIndication: *mut NDIS_STATUS_INDICATION,
);
/// `VOID NdisMResetComplete(NDIS_HANDLE MiniportAdapterHandle, NDIS_STATUS Status,
/// BOOLEAN AddressingReset)`, IRQL <= DISPATCH_LEVEL: completes a MiniportResetEx that
/// returned `NDIS_STATUS_PENDING`, exactly once.
pub type NdisMResetCompleteFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    Status: NDIS_STATUS,
    AddressingReset: BOOLEAN,
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn status_indication_layout_matches_the_x64_symbol_dump() {
        type T = NDIS_STATUS_INDICATION;
        assert_eq!(size_of::<T>(), 0x70);
        assert_eq!(offset_of!(T, SourceHandle), 0x08);
        assert_eq!(offset_of!(T, PortNumber), 0x10);
        assert_eq!(offset_of!(T, StatusCode), 0x14);
        assert_eq!(offset_of!(T, Flags), 0x18);
        assert_eq!(offset_of!(T, DestinationHandle), 0x20);
        assert_eq!(offset_of!(T, RequestId), 0x28);
        assert_eq!(offset_of!(T, StatusBuffer), 0x30);
        assert_eq!(offset_of!(T, StatusBufferSize), 0x38);
        assert_eq!(offset_of!(T, Guid), 0x3C);
        assert_eq!(offset_of!(T, NdisReserved), 0x50);
        assert_eq!(
            usize::from(NDIS_SIZEOF_STATUS_INDICATION_REVISION_1),
            size_of::<T>()
        );
    }

    #[test]
    fn link_state_layout_matches_the_x64_symbol_dump() {
        type T = NDIS_LINK_STATE;
        assert_eq!(size_of::<T>(), 0x28);
        assert_eq!(offset_of!(T, MediaConnectState), 0x04);
        assert_eq!(offset_of!(T, MediaDuplexState), 0x08);
        assert_eq!(offset_of!(T, XmitLinkSpeed), 0x10);
        assert_eq!(offset_of!(T, RcvLinkSpeed), 0x18);
        assert_eq!(offset_of!(T, PauseFunctions), 0x20);
        assert_eq!(offset_of!(T, AutoNegotiationFlags), 0x24);
        assert_eq!(
            usize::from(NDIS_SIZEOF_LINK_STATE_REVISION_1),
            size_of::<T>()
        );
    }

    #[test]
    fn status_codes_are_the_wdk_values() {
        // ndis.h: NDIS_STATUS_LINK_STATE ((NDIS_STATUS)0x40010017L), NDIS_STATUS_HARD_ERRORS
        // ((NDIS_STATUS)0x80010004L), NDIS_STATUS_NOT_RESETTABLE ((NDIS_STATUS)0x80010001L);
        // objectheader.h: NDIS_OBJECT_TYPE_STATUS_INDICATION 0x98.
        assert_eq!(NDIS_STATUS_LINK_STATE, 0x40010017);
        assert_eq!(NDIS_STATUS_HARD_ERRORS, 0x80010004);
        assert_eq!(NDIS_STATUS_NOT_RESETTABLE, 0x80010001);
        assert_eq!(NDIS_OBJECT_TYPE_STATUS_INDICATION, 0x98);
    }
}
