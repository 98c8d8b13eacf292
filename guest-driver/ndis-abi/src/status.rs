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
}
