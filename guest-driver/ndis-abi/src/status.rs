//! `NDIS_STATUS` and `NTSTATUS` codes (both are 32-bit; NDIS codes are NTSTATUS values).

/// `NDIS_STATUS`: 32-bit, same space as NTSTATUS. Kept unsigned so hex literals read naturally.
pub type NDIS_STATUS = u32;
/// `NTSTATUS`: 32-bit; negative (bit 31 set) means failure.
pub type NTSTATUS = u32;

/// `STATUS_SUCCESS`: the operation succeeded.
pub const STATUS_SUCCESS: NTSTATUS = 0x0000_0000;
/// `STATUS_TIMEOUT`: a wait ended because its timeout expired (a success code).
pub const STATUS_TIMEOUT: NTSTATUS = 0x0000_0102;
/// `STATUS_PENDING`: the operation continues; its completion is reported later, exactly once.
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
/// `STATUS_UNSUCCESSFUL`: unspecified failure.
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001;
/// `STATUS_INVALID_PARAMETER`: an argument was out of range or malformed.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D;
/// `STATUS_INSUFFICIENT_RESOURCES`: an allocation failed.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A;
/// `STATUS_NOT_SUPPORTED`: the request is not implemented by the callee.
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB;

// NTSTATUS codes of the NDK provider interface (values: ntstatus.h, checked against windows-sys
// 0.61.2 src/Windows/Win32/Foundation/mod.rs in the tests below).

/// `STATUS_BUFFER_OVERFLOW` (warning): data did not fit; the part that fit was returned.
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = 0x8000_0005;
/// `STATUS_DEVICE_BUSY` (warning): the device cannot take the request now.
pub const STATUS_DEVICE_BUSY: NTSTATUS = 0x8000_0011;
/// `STATUS_IO_DEVICE_ERROR`: the device failed the request or did not answer it.
pub const STATUS_IO_DEVICE_ERROR: NTSTATUS = 0xC000_0185;
/// `STATUS_ACCESS_VIOLATION`: a memory access was refused (NDK: bad token, access rights or
/// range on a local or remote memory region).
pub const STATUS_ACCESS_VIOLATION: NTSTATUS = 0xC000_0005;
/// `STATUS_INVALID_HANDLE`: an object handle or pointer is not what the callee expects.
pub const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008;
/// `STATUS_INVALID_DEVICE_REQUEST`: the request is not valid for this object's state or type.
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = 0xC000_0010;
/// `STATUS_BUFFER_TOO_SMALL`: the caller's buffer is too small; the needed size is reported.
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023;
/// `STATUS_INVALID_PARAMETER_MIX`: arguments contradict each other.
pub const STATUS_INVALID_PARAMETER_MIX: NTSTATUS = 0xC000_0030;
/// `STATUS_DATA_OVERRUN` (NDK): a CQ overflowed.
pub const STATUS_DATA_OVERRUN: NTSTATUS = 0xC000_003C;
/// `STATUS_DATA_ERROR` (NDK): the transfer failed (for example a transport error).
pub const STATUS_DATA_ERROR: NTSTATUS = 0xC000_003E;
/// `STATUS_SHARING_VIOLATION`: the address is in use by another listener or endpoint.
pub const STATUS_SHARING_VIOLATION: NTSTATUS = 0xC000_0043;
/// `STATUS_DELETE_PENDING`: the object is being closed.
pub const STATUS_DELETE_PENDING: NTSTATUS = 0xC000_0056;
/// `STATUS_DEVICE_NOT_READY`: the device is not ready (NDK disabled, adapter halting).
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = 0xC000_00A3;
/// `STATUS_IO_TIMEOUT`: the request timed out (NDK: retries exhausted, no reply to a connect).
pub const STATUS_IO_TIMEOUT: NTSTATUS = 0xC000_00B5;
/// `STATUS_CANCELLED` (NDK): the request was flushed.
pub const STATUS_CANCELLED: NTSTATUS = 0xC000_0120;
/// `STATUS_INVALID_ADDRESS`: the address is malformed or of an unsupported family.
pub const STATUS_INVALID_ADDRESS: NTSTATUS = 0xC000_0141;
/// `STATUS_INVALID_DEVICE_STATE`: the object is in a state that does not allow the request
/// (for example a CQ resize below the entries it holds).
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184;
/// `STATUS_INVALID_BUFFER_SIZE` (NDK): a receive buffer was too small for the incoming send.
pub const STATUS_INVALID_BUFFER_SIZE: NTSTATUS = 0xC000_0206;
/// `STATUS_ADDRESS_ALREADY_EXISTS`: the local address is already bound.
pub const STATUS_ADDRESS_ALREADY_EXISTS: NTSTATUS = 0xC000_020A;
/// `STATUS_CONNECTION_DISCONNECTED`: the peer disconnected.
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = 0xC000_020C;
/// `STATUS_CONNECTION_RESET`: the connection was reset by the peer.
pub const STATUS_CONNECTION_RESET: NTSTATUS = 0xC000_020D;
/// `STATUS_CONNECTION_REFUSED`: the peer rejected the connection, or nothing listens there.
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = 0xC000_0236;
/// `STATUS_CONNECTION_INVALID`: the QP or connector is not connected.
pub const STATUS_CONNECTION_INVALID: NTSTATUS = 0xC000_023A;
/// `STATUS_CONNECTION_ACTIVE`: the connector or QP is already connected.
pub const STATUS_CONNECTION_ACTIVE: NTSTATUS = 0xC000_023B;
/// `STATUS_NETWORK_UNREACHABLE`: no route to the peer's network.
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = 0xC000_023C;
/// `STATUS_HOST_UNREACHABLE`: the peer's address does not resolve.
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = 0xC000_023D;
/// `STATUS_REQUEST_ABORTED`: the request was aborted (for example its object closed).
pub const STATUS_REQUEST_ABORTED: NTSTATUS = 0xC000_0240;
/// `STATUS_CONNECTION_ABORTED`: the connection was aborted locally.
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = 0xC000_0241;

/// `NDIS_STATUS_SUCCESS` (= `STATUS_SUCCESS`).
pub const NDIS_STATUS_SUCCESS: NDIS_STATUS = STATUS_SUCCESS;
/// `NDIS_STATUS_PENDING` (= `STATUS_PENDING`): completed later through the matching `...Complete` call.
pub const NDIS_STATUS_PENDING: NDIS_STATUS = STATUS_PENDING;
/// `NDIS_STATUS_NOT_ACCEPTED`: informational; the request was not taken (for example an unwanted packet).
pub const NDIS_STATUS_NOT_ACCEPTED: NDIS_STATUS = 0x0001_0003;
/// `NDIS_STATUS_FAILURE` (= `STATUS_UNSUCCESSFUL`): unspecified failure.
pub const NDIS_STATUS_FAILURE: NDIS_STATUS = STATUS_UNSUCCESSFUL;
/// `NDIS_STATUS_RESOURCES` (= `STATUS_INSUFFICIENT_RESOURCES`): out of memory or another resource.
pub const NDIS_STATUS_RESOURCES: NDIS_STATUS = STATUS_INSUFFICIENT_RESOURCES;
/// `NDIS_STATUS_INVALID_PARAMETER` (= `STATUS_INVALID_PARAMETER`).
pub const NDIS_STATUS_INVALID_PARAMETER: NDIS_STATUS = STATUS_INVALID_PARAMETER;
/// `NDIS_STATUS_NOT_SUPPORTED` (= `STATUS_NOT_SUPPORTED`): for example an OID the miniport does not handle.
pub const NDIS_STATUS_NOT_SUPPORTED: NDIS_STATUS = STATUS_NOT_SUPPORTED;
/// `NDIS_STATUS_CLOSING`: the binding or adapter is being closed.
pub const NDIS_STATUS_CLOSING: NDIS_STATUS = 0xC001_0002;
/// `NDIS_STATUS_BAD_VERSION`: the caller declared an NDIS (or NDK) version the callee does not support.
pub const NDIS_STATUS_BAD_VERSION: NDIS_STATUS = 0xC001_0004;
/// `NDIS_STATUS_BAD_CHARACTERISTICS`: a characteristics structure has a wrong header or misses a required handler.
pub const NDIS_STATUS_BAD_CHARACTERISTICS: NDIS_STATUS = 0xC001_0005;
/// `NDIS_STATUS_ADAPTER_NOT_FOUND`: the hardware the miniport expected is absent.
pub const NDIS_STATUS_ADAPTER_NOT_FOUND: NDIS_STATUS = 0xC001_0006;
/// `NDIS_STATUS_DEVICE_FAILED`: the device stopped working.
pub const NDIS_STATUS_DEVICE_FAILED: NDIS_STATUS = 0xC001_0008;
/// `NDIS_STATUS_REQUEST_ABORTED`: a request was cancelled (for example a cancelled OID).
pub const NDIS_STATUS_REQUEST_ABORTED: NDIS_STATUS = 0xC001_000C;
/// `NDIS_STATUS_RESET_IN_PROGRESS`: the adapter is being reset; retry later.
pub const NDIS_STATUS_RESET_IN_PROGRESS: NDIS_STATUS = 0xC001_000D;
/// `NDIS_STATUS_ADAPTER_NOT_READY`: the adapter cannot take the request in its current state.
pub const NDIS_STATUS_ADAPTER_NOT_READY: NDIS_STATUS = 0xC001_0011;
/// `NDIS_STATUS_INVALID_LENGTH`: an OID's information buffer has the wrong length (`BytesNeeded` says the right one).
pub const NDIS_STATUS_INVALID_LENGTH: NDIS_STATUS = 0xC001_0014;
/// `NDIS_STATUS_BUFFER_TOO_SHORT`: an OID's information buffer is too small (`BytesNeeded` says how much is needed).
pub const NDIS_STATUS_BUFFER_TOO_SHORT: NDIS_STATUS = 0xC001_0016;
/// `NDIS_STATUS_MULTICAST_FULL`: a multicast list set longer than the adapter holds.
pub const NDIS_STATUS_MULTICAST_FULL: NDIS_STATUS = 0xC001_0009;
/// `NDIS_STATUS_INVALID_DATA`: a set's data is malformed or out of range.
pub const NDIS_STATUS_INVALID_DATA: NDIS_STATUS = 0xC001_0015;
/// `NDIS_STATUS_INVALID_OID`: the OID is not valid for this request type.
pub const NDIS_STATUS_INVALID_OID: NDIS_STATUS = 0xC001_0017;
/// `STATUS_NDIS_PAUSED`: returned for sends while the miniport is paused.
pub const NDIS_STATUS_PAUSED: NDIS_STATUS = 0xC023_002A;

/// `NT_SUCCESS()`: true for success and informational codes (bit 31 clear).
pub const fn nt_success(status: NTSTATUS) -> bool {
    (status as i32) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_predicate() {
        assert!(nt_success(NDIS_STATUS_SUCCESS));
        assert!(nt_success(NDIS_STATUS_PENDING));
        assert!(!nt_success(NDIS_STATUS_FAILURE));
        assert!(!nt_success(NDIS_STATUS_ADAPTER_NOT_FOUND));
    }

    #[test]
    fn ndis_codes_alias_nt_codes() {
        assert_eq!(NDIS_STATUS_RESOURCES, 0xC000_009A);
        assert_eq!(NDIS_STATUS_NOT_SUPPORTED, 0xC000_00BB);
        assert_eq!(NDIS_STATUS_INVALID_PARAMETER, 0xC000_000D);
        assert_eq!(NDIS_STATUS_BAD_VERSION, 0xC001_0004);
    }

    #[test]
    fn ndk_status_values() {
        // Independent copy from windows-sys 0.61.2, src/Windows/Win32/Foundation/mod.rs.
        assert_eq!(STATUS_BUFFER_TOO_SMALL, 0xC0000023);
        assert_eq!(STATUS_ACCESS_VIOLATION, 0xC0000005);
        assert_eq!(STATUS_CONNECTION_INVALID, 0xC000023A);
        assert_eq!(STATUS_CANCELLED, 0xC0000120);
        assert_eq!(STATUS_BUFFER_OVERFLOW, 0x80000005);
        assert_eq!(STATUS_INVALID_BUFFER_SIZE, 0xC0000206);
        assert_eq!(STATUS_IO_TIMEOUT, 0xC00000B5);
        assert_eq!(STATUS_CONNECTION_RESET, 0xC000020D);
        assert_eq!(STATUS_CONNECTION_ABORTED, 0xC0000241);
        assert_eq!(STATUS_CONNECTION_DISCONNECTED, 0xC000020C);
        assert_eq!(STATUS_CONNECTION_REFUSED, 0xC0000236);
        assert_eq!(STATUS_ADDRESS_ALREADY_EXISTS, 0xC000020A);
        assert_eq!(STATUS_SHARING_VIOLATION, 0xC0000043);
        assert_eq!(STATUS_INVALID_DEVICE_STATE, 0xC0000184);
        assert_eq!(STATUS_INVALID_ADDRESS, 0xC0000141);
        assert_eq!(STATUS_NETWORK_UNREACHABLE, 0xC000023C);
        assert_eq!(STATUS_HOST_UNREACHABLE, 0xC000023D);
        assert_eq!(STATUS_INVALID_DEVICE_REQUEST, 0xC0000010);
        assert_eq!(STATUS_REQUEST_ABORTED, 0xC0000240);
        assert_eq!(STATUS_DATA_ERROR, 0xC000003E);
        assert_eq!(STATUS_DEVICE_BUSY, 0x80000011);
        assert_eq!(STATUS_IO_DEVICE_ERROR, 0xC0000185);
        assert_eq!(STATUS_CONNECTION_ACTIVE, 0xC000023B);
        assert_eq!(STATUS_DELETE_PENDING, 0xC0000056);
        assert_eq!(STATUS_INVALID_HANDLE, 0xC0000008);
        assert_eq!(STATUS_DATA_OVERRUN, 0xC000003C);
        assert_eq!(STATUS_DEVICE_NOT_READY, 0xC00000A3);
        assert_eq!(STATUS_INVALID_PARAMETER_MIX, 0xC0000030);
        assert!(!nt_success(STATUS_BUFFER_OVERFLOW));
    }
}
