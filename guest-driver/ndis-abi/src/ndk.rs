//! The Network Direct Kernel provider interface (NDKPI, `ndkpi.h` / `ndkinfo.h`): NDK objects,
//! their dispatch tables in the documented order, the callbacks, results, scatter/gather
//! entries, adapter information and flag values (x64).
//!
//! Every NDK object is `{ NDK_OBJECT_HEADER Header; const <OBJECT>_DISPATCH *Dispatch; }`
//! (0x30 bytes); the consumer calls the provider only through `Dispatch`. Every dispatch entry
//! is an `Option<unsafe extern "win64" fn ...>` so that a table can be checked for holes, and
//! every callback a consumer passes in is an `Option` as well (a provider must not assume a
//! non-null pointer it did not check).
//!
//! IRQL (from ndkpi.h): every function runs at IRQL <= DISPATCH_LEVEL except
//! `NdkQueryAdapterInfo` (PASSIVE_LEVEL); the NDIS open/close handlers (`crate::ndis_ndk`) are
//! PASSIVE_LEVEL too. A function that returns `STATUS_PENDING` reports its result later through
//! its completion callback exactly once; any other return value means the callback is never
//! called.

use core::ffi::c_void;

use crate::inet::{GROUP_AFFINITY, GUID, SOCKADDR};
use crate::netbuf::MDL;
use crate::status::NTSTATUS;
use crate::types::{BOOLEAN, PHYSICAL_ADDRESS};

// ---------------------------------------------------------------------------------------------
// Versions and object types

/// `NDK_VERSION { USHORT Major; USHORT Minor; }` (4 bytes, passed by value in one register).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDK_VERSION {
    /// `Major`: 1 for every NDKPI so far; a provider fails any other major version.
    pub Major: u16,
    /// `Minor`: 1 for NDIS 6.30 (Windows Server 2012), 2 for NDIS 6.40 (2012 R2), 3 for 6.50+.
    pub Minor: u16,
}

/// NDKPI major version this crate describes.
pub const NDK_VERSION_MAJOR: u16 = 1;
/// NDKPI minor version this crate describes (1.2: adds `NDK_RESULT_EX` and
/// `NdkGetCqResultsEx`, the receive-and-invalidate result and the 1.2 adapter flags).
pub const NDK_VERSION_MINOR: u16 = 2;
/// The NDKPI version this crate describes, 1.2.
pub const NDK_VERSION_1_2: NDK_VERSION = NDK_VERSION {
    Major: NDK_VERSION_MAJOR,
    Minor: NDK_VERSION_MINOR,
};

/// `NDK_OBJECT_TYPE` (enum, 4 bytes).
pub type NDK_OBJECT_TYPE = u32;
/// `NdkObjectTypeUndefined`: never valid in an object header.
pub const NdkObjectTypeUndefined: NDK_OBJECT_TYPE = 0;
/// `NdkObjectTypeAdapter`: [`NDK_ADAPTER`].
pub const NdkObjectTypeAdapter: NDK_OBJECT_TYPE = 1;
/// `NdkObjectTypeQp`: [`NDK_QP`].
pub const NdkObjectTypeQp: NDK_OBJECT_TYPE = 2;
/// `NdkObjectTypeCq`: [`NDK_CQ`].
pub const NdkObjectTypeCq: NDK_OBJECT_TYPE = 3;
/// `NdkObjectTypeMr`: [`NDK_MR`].
pub const NdkObjectTypeMr: NDK_OBJECT_TYPE = 4;
/// `NdkObjectTypeMw`: [`NDK_MW`].
pub const NdkObjectTypeMw: NDK_OBJECT_TYPE = 5;
/// `NdkObjectTypePd`: [`NDK_PD`].
pub const NdkObjectTypePd: NDK_OBJECT_TYPE = 6;
/// `NdkObjectTypeSharedEndpoint`: [`NDK_SHARED_ENDPOINT`].
pub const NdkObjectTypeSharedEndpoint: NDK_OBJECT_TYPE = 7;
/// `NdkObjectTypeConnector`: [`NDK_CONNECTOR`].
pub const NdkObjectTypeConnector: NDK_OBJECT_TYPE = 8;
/// `NdkObjectTypeListener`: [`NDK_LISTENER`].
pub const NdkObjectTypeListener: NDK_OBJECT_TYPE = 9;
/// `NdkObjectTypeSrq`: [`NDK_SRQ`].
pub const NdkObjectTypeSrq: NDK_OBJECT_TYPE = 10;
/// `NdkObjectTypeMax`: one past the last valid type.
pub const NdkObjectTypeMax: NDK_OBJECT_TYPE = 11;

/// `NDK_OBJECT_HEADER_RESERVED_BLOCK { PVOID rf[4]; }` (0x20 bytes): for NDK's own use.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_OBJECT_HEADER_RESERVED_BLOCK {
    /// `rf`: reserved; the provider zeroes it and never reads it.
    pub rf: [*mut c_void; 4],
}

/// `NDK_OBJECT_HEADER` (0x28 bytes): first member of every NDK object.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_OBJECT_HEADER {
    /// `Version`: the NDKPI version the object implements.
    pub Version: NDK_VERSION,
    /// `ObjectType`: which object this header starts (never [`NdkObjectTypeUndefined`]).
    pub ObjectType: NDK_OBJECT_TYPE,
    /// `NdkReserved`: reserved for NDK, zero.
    pub NdkReserved: NDK_OBJECT_HEADER_RESERVED_BLOCK,
}

impl NDK_OBJECT_HEADER {
    /// A header of `object_type` at `version` with a zeroed reserved block.
    pub const fn new(version: NDK_VERSION, object_type: NDK_OBJECT_TYPE) -> Self {
        Self {
            Version: version,
            ObjectType: object_type,
            NdkReserved: NDK_OBJECT_HEADER_RESERVED_BLOCK {
                rf: [core::ptr::null_mut(); 4],
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results, operation types, SGEs, logical address mappings

/// `NDK_RESULT` (0x18 bytes): one completion taken from a CQ by `NdkGetCqResults`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_RESULT {
    /// `Status`: the request's completion status (`STATUS_SUCCESS`, `STATUS_CANCELLED` when
    /// flushed, ...).
    pub Status: NTSTATUS,
    /// `BytesTransferred`: bytes received; defined for receive completions only.
    pub BytesTransferred: u32,
    /// `QPContext`: the context given to `NdkCreateQp` for the request's QP.
    pub QPContext: *mut c_void,
    /// `RequestContext`: the context given when the request was posted.
    pub RequestContext: *mut c_void,
}

/// `NDK_OPERATION_TYPE` (enum, 4 bytes): what completed, in [`NDK_RESULT_EX`].
pub type NDK_OPERATION_TYPE = u32;
/// `NdkOperationTypeReceive`: a receive completed.
pub const NdkOperationTypeReceive: NDK_OPERATION_TYPE = 1;
/// `NdkOperationTypeReceiveAndInvalidate`: a receive completed and the peer's
/// send-and-invalidate invalidated the token in `TypeSpecificCompletionOutput`.
pub const NdkOperationTypeReceiveAndInvalidate: NDK_OPERATION_TYPE = 0x8001;
/// `NdkOperationTypeSend`: a send (or send-and-invalidate) completed.
pub const NdkOperationTypeSend: NDK_OPERATION_TYPE = 2;
/// `NdkOperationTypeFastRegister`: a fast-register completed.
pub const NdkOperationTypeFastRegister: NDK_OPERATION_TYPE = 4;
/// `NdkOperationTypeBind`: a memory-window bind completed.
pub const NdkOperationTypeBind: NDK_OPERATION_TYPE = 8;
/// `NdkOperationTypeInvalidate`: a local invalidate completed.
pub const NdkOperationTypeInvalidate: NDK_OPERATION_TYPE = 16;
/// `NdkOperationTypeRead`: an RDMA read completed.
pub const NdkOperationTypeRead: NDK_OPERATION_TYPE = 32;
/// `NdkOperationTypeWrite`: an RDMA write completed.
pub const NdkOperationTypeWrite: NDK_OPERATION_TYPE = 64;

/// `NDK_RESULT_EX` (0x28 bytes, NDKPI 1.2): [`NDK_RESULT`] plus the operation type and its
/// output, taken from a CQ by `NdkGetCqResultsEx`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_RESULT_EX {
    /// `Status`: as in [`NDK_RESULT`].
    pub Status: NTSTATUS,
    /// `BytesTransferred`: as in [`NDK_RESULT`].
    pub BytesTransferred: u32,
    /// `QPContext`: as in [`NDK_RESULT`].
    pub QPContext: *mut c_void,
    /// `RequestContext`: as in [`NDK_RESULT`].
    pub RequestContext: *mut c_void,
    /// `Type`: the `NdkOperationType*` that completed.
    pub Type: NDK_OPERATION_TYPE,
    /// `ProviderErrorCode` (in what older headers left as padding): 0 on success; on failure
    /// a provider detail for diagnosis, 0 when there is none (the RNIC reports the CQE's
    /// vendor_err here).
    pub ProviderErrorCode: u32,
    /// `TypeSpecificCompletionOutput` (ULONG_PTR): for
    /// [`NdkOperationTypeReceiveAndInvalidate`], the token the peer invalidated; 0 otherwise.
    pub TypeSpecificCompletionOutput: usize,
}

/// `NDK_LOGICAL_ADDRESS`: an adapter logical (bus) address, a `PHYSICAL_ADDRESS`.
pub type NDK_LOGICAL_ADDRESS = PHYSICAL_ADDRESS;

/// `NDK_LOGICAL_ADDRESS_MAPPING` (variable size: 0x10 + 8 * `AdapterPageCount`): the adapter
/// pages `NdkBuildLAM` produces. Declared with one page, as in C.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_LOGICAL_ADDRESS_MAPPING {
    /// `AdapterContext`: for the provider's use.
    pub AdapterContext: *mut c_void,
    /// `AdapterPageCount`: entries of `AdapterPageArray`.
    pub AdapterPageCount: u32,
    /// `AdapterPageArray`: the adapter pages (`AdapterPageCount` of them follow).
    pub AdapterPageArray: [NDK_LOGICAL_ADDRESS; 1],
}

/// Bytes of an [`NDK_LOGICAL_ADDRESS_MAPPING`] holding `pages` adapter pages
/// (`FIELD_OFFSET(AdapterPageArray) + pages * 8`), or `None` on overflow.
pub const fn ndk_lam_size(pages: u32) -> Option<u32> {
    match (pages as u64).checked_mul(8) {
        Some(bytes) if bytes + 0x10 <= u32::MAX as u64 => Some(bytes as u32 + 0x10),
        _ => None,
    }
}

/// The address of an [`NDK_SGE`]: a virtual address inside a registered MR, or a logical
/// address when the token is the privileged one.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDK_SGE_ADDRESS {
    /// `VirtualAddress`: an address in a memory region (an index, never dereferenced).
    pub VirtualAddress: *mut c_void,
    /// `LogicalAddress`: an adapter logical address (with the privileged token).
    pub LogicalAddress: NDK_LOGICAL_ADDRESS,
}

/// `NDK_SGE` (0x10 bytes): one scatter/gather element of a work request.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDK_SGE {
    /// The element's start (anonymous union in C).
    pub Address: NDK_SGE_ADDRESS,
    /// `Length`: bytes.
    pub Length: u32,
    /// `MemoryRegionToken`: the local token of the MR holding the bytes.
    pub MemoryRegionToken: u32,
}

/// `NDK_EXTENSION_INTERFACE { const VOID *Dispatch; }`: what `NdkQueryExtension` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_EXTENSION_INTERFACE {
    /// `Dispatch`: the extension's dispatch table.
    pub Dispatch: *const c_void,
}

// ---------------------------------------------------------------------------------------------
// Flags

/// `NDK_MR_FLAG_ALLOW_LOCAL_READ` (`NdkRegisterMr`): always allowed, the value is 0.
pub const NDK_MR_FLAG_ALLOW_LOCAL_READ: u32 = 0x0000_0000;
/// `NDK_MR_FLAG_ALLOW_LOCAL_WRITE` (`NdkRegisterMr`): the adapter may write the region.
pub const NDK_MR_FLAG_ALLOW_LOCAL_WRITE: u32 = 0x0000_0001;
/// `NDK_MR_FLAG_ALLOW_REMOTE_READ` (`NdkRegisterMr`): peers may RDMA-read the region.
pub const NDK_MR_FLAG_ALLOW_REMOTE_READ: u32 = 0x0000_0002;
/// `NDK_MR_FLAG_ALLOW_REMOTE_WRITE` (`NdkRegisterMr`): peers may RDMA-write the region; the
/// value includes [`NDK_MR_FLAG_ALLOW_LOCAL_WRITE`] (0x4 | 0x1).
pub const NDK_MR_FLAG_ALLOW_REMOTE_WRITE: u32 = 0x0000_0005;
/// `NDK_MR_FLAG_RDMA_READ_SINK` (`NdkRegisterMr`): the region may receive RDMA-read data.
pub const NDK_MR_FLAG_RDMA_READ_SINK: u32 = 0x0000_0008;

/// `NDK_OP_FLAG_SILENT_SUCCESS`: no completion unless the request fails.
pub const NDK_OP_FLAG_SILENT_SUCCESS: u32 = 0x0000_0001;
/// `NDK_OP_FLAG_READ_FENCE`: wait for earlier RDMA reads before starting this request.
pub const NDK_OP_FLAG_READ_FENCE: u32 = 0x0000_0002;
/// `NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT`: the peer's receive completion is solicited.
pub const NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT: u32 = 0x0000_0004;
/// `NDK_OP_FLAG_ALLOW_REMOTE_READ` (`NdkFastRegister`, `NdkBind`): peers may read.
pub const NDK_OP_FLAG_ALLOW_REMOTE_READ: u32 = 0x0000_0008;
/// `NDK_OP_FLAG_ALLOW_LOCAL_WRITE` (`NdkFastRegister`): the adapter may write the region.
pub const NDK_OP_FLAG_ALLOW_LOCAL_WRITE: u32 = 0x0000_0010;
/// `NDK_OP_FLAG_ALLOW_REMOTE_WRITE` (`NdkFastRegister`, `NdkBind`): peers may write; the
/// value includes [`NDK_OP_FLAG_ALLOW_LOCAL_WRITE`] (0x20 | 0x10).
pub const NDK_OP_FLAG_ALLOW_REMOTE_WRITE: u32 = 0x0000_0030;
/// `NDK_OP_FLAG_INLINE`: the provider copies the data at post time (up to the QP's inline
/// size); the SGE tokens are not used.
pub const NDK_OP_FLAG_INLINE: u32 = 0x0000_0040;
/// `NDK_OP_FLAG_RDMA_READ_SINK` (`NdkFastRegister`): the region may receive RDMA-read data.
pub const NDK_OP_FLAG_RDMA_READ_SINK: u32 = 0x0000_0080;
/// `NDK_OP_FLAG_RDMA_READ_LOCAL_INVALIDATE`: invalidate the read's local token when it ends.
pub const NDK_OP_FLAG_RDMA_READ_LOCAL_INVALIDATE: u32 = 0x0000_0100;
/// `NDK_OP_FLAG_DEFER`: queue the request without ringing the doorbell yet.
pub const NDK_OP_FLAG_DEFER: u32 = 0x0000_0200;

/// `NDK_CQ_NOTIFY_ERRORS` (`NdkArmCq`): notify only on a CQ error.
pub const NDK_CQ_NOTIFY_ERRORS: u32 = 0;
/// `NDK_CQ_NOTIFY_ANY` (`NdkArmCq`): notify on the next completion of any kind.
pub const NDK_CQ_NOTIFY_ANY: u32 = 1;
/// `NDK_CQ_NOTIFY_SOLICITED` (`NdkArmCq`): notify on the next solicited receive or any error
/// completion.
pub const NDK_CQ_NOTIFY_SOLICITED: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Adapter information (ndkinfo.h)

/// `NDK_RDMA_TECHNOLOGY` (enum, 4 bytes).
pub type NDK_RDMA_TECHNOLOGY = u32;
/// `NdkUndefined`.
pub const NdkUndefined: NDK_RDMA_TECHNOLOGY = 0;
/// `NdkiWarp`: iWARP.
pub const NdkiWarp: NDK_RDMA_TECHNOLOGY = 1;
/// `NdkInfiniBand`.
pub const NdkInfiniBand: NDK_RDMA_TECHNOLOGY = 2;
/// `NdkRoCE`: RoCE v1.
pub const NdkRoCE: NDK_RDMA_TECHNOLOGY = 3;
/// `NdkRoCEv2`: RoCE v2 (UDP/IP), what the RNIC speaks.
pub const NdkRoCEv2: NDK_RDMA_TECHNOLOGY = 4;

/// `NDK_ADAPTER_FLAG_IN_ORDER_DMA_SUPPORTED`: incoming data lands in buffer order.
pub const NDK_ADAPTER_FLAG_IN_ORDER_DMA_SUPPORTED: u32 = 0x0000_0001;
/// `NDK_ADAPTER_FLAG_RDMA_READ_SINK_NOT_REQUIRED`: read sinks need no special access flag.
pub const NDK_ADAPTER_FLAG_RDMA_READ_SINK_NOT_REQUIRED: u32 = 0x0000_0002;
/// `NDK_ADAPTER_FLAG_CQ_INTERRUPT_MODERATION_SUPPORTED`: `NdkControlCqInterruptModeration`
/// works.
pub const NDK_ADAPTER_FLAG_CQ_INTERRUPT_MODERATION_SUPPORTED: u32 = 0x0000_0004;
/// `NDK_ADAPTER_FLAG_MULTI_ENGINE_SUPPORTED`: the adapter has several engines that can run
/// requests in parallel.
pub const NDK_ADAPTER_FLAG_MULTI_ENGINE_SUPPORTED: u32 = 0x0000_0008;
/// `NDK_ADAPTER_FLAG_RDMA_READ_LOCAL_INVALIDATE_SUPPORTED`:
/// [`NDK_OP_FLAG_RDMA_READ_LOCAL_INVALIDATE`] works.
pub const NDK_ADAPTER_FLAG_RDMA_READ_LOCAL_INVALIDATE_SUPPORTED: u32 = 0x0000_0010;
/// `NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED`: `NdkResizeCq` works.
pub const NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED: u32 = 0x0000_0100;
/// `NDK_ADAPTER_FLAG_LOOPBACK_CONNECTIONS_SUPPORTED`: two endpoints of the same adapter can
/// connect to each other.
pub const NDK_ADAPTER_FLAG_LOOPBACK_CONNECTIONS_SUPPORTED: u32 = 0x0001_0000;

/// `NDK_ADAPTER_INFO` (0x68 bytes): the limits and capabilities `NdkQueryAdapterInfo`
/// reports (and `NDIS_NDK_CAPABILITIES.NdkInfo` points to).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDK_ADAPTER_INFO {
    /// `Version`: the NDKPI version the adapter implements.
    pub Version: NDK_VERSION,
    /// `VendorId`: PCI vendor id.
    pub VendorId: u32,
    /// `DeviceId`: PCI device id.
    pub DeviceId: u32,
    /// `MaxRegistrationSize` (SIZE_T): largest MR in bytes.
    pub MaxRegistrationSize: usize,
    /// `MaxWindowSize` (SIZE_T): largest MW in bytes (0: no memory windows).
    pub MaxWindowSize: usize,
    /// `FRMRPageCount`: most pages one fast-register may map.
    pub FRMRPageCount: u32,
    /// `MaxInitiatorRequestSge`: most SGEs of a send/write/read request.
    pub MaxInitiatorRequestSge: u32,
    /// `MaxReceiveRequestSge`: most SGEs of a receive request.
    pub MaxReceiveRequestSge: u32,
    /// `MaxReadRequestSge`: most SGEs of an RDMA read request.
    pub MaxReadRequestSge: u32,
    /// `MaxTransferLength`: largest single transfer in bytes.
    pub MaxTransferLength: u32,
    /// `MaxInlineDataSize`: most inline bytes of one request.
    pub MaxInlineDataSize: u32,
    /// `MaxInboundReadLimit`: most incoming RDMA reads outstanding per QP.
    pub MaxInboundReadLimit: u32,
    /// `MaxOutboundReadLimit`: most outgoing RDMA reads outstanding per QP.
    pub MaxOutboundReadLimit: u32,
    /// `MaxReceiveQueueDepth`: deepest receive queue.
    pub MaxReceiveQueueDepth: u32,
    /// `MaxInitiatorQueueDepth`: deepest initiator (send) queue.
    pub MaxInitiatorQueueDepth: u32,
    /// `MaxSrqDepth`: deepest SRQ (0: no SRQs).
    pub MaxSrqDepth: u32,
    /// `MaxCqDepth`: deepest CQ.
    pub MaxCqDepth: u32,
    /// `LargeRequestThreshold`: requests at least this large are better done as RDMA.
    pub LargeRequestThreshold: u32,
    /// `MaxCallerData`: most private-data bytes of a connect request.
    pub MaxCallerData: u32,
    /// `MaxCalleeData`: most private-data bytes of an accept or reject.
    pub MaxCalleeData: u32,
    /// `AdapterFlags`: `NDK_ADAPTER_FLAG_*`.
    pub AdapterFlags: u32,
    /// `RdmaTechnology`: `Ndk*` technology ([`NdkRoCEv2`] for the RNIC).
    pub RdmaTechnology: NDK_RDMA_TECHNOLOGY,
}

// ---------------------------------------------------------------------------------------------
// Callbacks the consumer passes to the provider

/// `NDK_FN_CLOSE_COMPLETION(PVOID Context)`: a pended close finished.
pub type NDK_FN_CLOSE_COMPLETION = unsafe extern "win64" fn(Context: *mut c_void);
/// `NDK_FN_REQUEST_COMPLETION(PVOID Context, NTSTATUS Status)`: a pended request finished.
pub type NDK_FN_REQUEST_COMPLETION =
    unsafe extern "win64" fn(Context: *mut c_void, Status: NTSTATUS);
/// `NDK_FN_CREATE_COMPLETION(PVOID Context, NTSTATUS Status, NDK_OBJECT_HEADER*)`: a pended
/// create finished; the object is valid when `Status` is success.
pub type NDK_FN_CREATE_COMPLETION = unsafe extern "win64" fn(
    Context: *mut c_void,
    Status: NTSTATUS,
    pNdkObject: *mut NDK_OBJECT_HEADER,
);
/// `NDK_FN_CQ_NOTIFICATION_CALLBACK(PVOID CqNotificationContext, NTSTATUS CqStatus)`: an
/// armed CQ has a completion (or failed: `CqStatus` is an error, e.g. `STATUS_DATA_OVERRUN`).
pub type NDK_FN_CQ_NOTIFICATION_CALLBACK =
    unsafe extern "win64" fn(CqNotificationContext: *mut c_void, CqStatus: NTSTATUS);
/// `NDK_FN_SRQ_NOTIFICATION_CALLBACK(PVOID SrqNotificationContext, NTSTATUS SrqStatus)`: an
/// SRQ fell below its notify threshold.
pub type NDK_FN_SRQ_NOTIFICATION_CALLBACK =
    unsafe extern "win64" fn(SrqNotificationContext: *mut c_void, SrqStatus: NTSTATUS);
/// `NDK_FN_CONNECT_EVENT_CALLBACK(PVOID ConnectEventContext, NDK_CONNECTOR*)`: a connect
/// request arrived at a listener; the consumer owns the new connector.
pub type NDK_FN_CONNECT_EVENT_CALLBACK =
    unsafe extern "win64" fn(ConnectEventContext: *mut c_void, pNdkConnector: *mut NDK_CONNECTOR);
/// `NDK_FN_DISCONNECT_EVENT_CALLBACK(PVOID DisconnectEventContext)`: the peer disconnected
/// (called at most once per connection).
pub type NDK_FN_DISCONNECT_EVENT_CALLBACK =
    unsafe extern "win64" fn(DisconnectEventContext: *mut c_void);

// ---------------------------------------------------------------------------------------------
// Functions shared by every object

/// `NTSTATUS NdkCloseObject(NDK_OBJECT_HEADER*, NDK_FN_CLOSE_COMPLETION, PVOID
/// RequestContext)`: closes any object; `STATUS_PENDING` means `CloseCompletion` follows.
pub type NDK_FN_CLOSE_OBJECT = unsafe extern "win64" fn(
    pNdkObject: *mut NDK_OBJECT_HEADER,
    CloseCompletion: Option<NDK_FN_CLOSE_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkQueryExtension(NDK_OBJECT_HEADER*, GUID* ExtensionInterfaceID, NDK_VERSION
/// ExtensionInterfaceVersion, NDK_EXTENSION_INTERFACE*)`.
pub type NDK_FN_QUERY_EXTENSION_INTERFACE = unsafe extern "win64" fn(
    pNdkObject: *mut NDK_OBJECT_HEADER,
    ExtensionInterfaceID: *mut GUID,
    ExtensionInterfaceVersion: NDK_VERSION,
    pExtensionInterface: *mut NDK_EXTENSION_INTERFACE,
) -> NTSTATUS;

// ---------------------------------------------------------------------------------------------
// CQ

/// `NTSTATUS NdkResizeCq(NDK_CQ*, ULONG CqDepth, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_RESIZE_CQ = unsafe extern "win64" fn(
    pNdkCq: *mut NDK_CQ,
    CqDepth: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `VOID NdkArmCq(NDK_CQ*, ULONG Type)`: `Type` is `NDK_CQ_NOTIFY_*`.
pub type NDK_FN_ARM_CQ = unsafe extern "win64" fn(pNdkCq: *mut NDK_CQ, Type: u32);
/// `ULONG NdkGetCqResults(NDK_CQ*, NDK_RESULT Results[], ULONG nResults)`: returns how many
/// results it wrote.
pub type NDK_FN_GET_CQ_RESULTS =
    unsafe extern "win64" fn(pNdkCq: *mut NDK_CQ, Results: *mut NDK_RESULT, nResults: u32) -> u32;
/// `NTSTATUS NdkControlCqInterruptModeration(NDK_CQ*, ULONG ModerationInterval (µs), ULONG
/// ModerationCount)`.
pub type NDK_FN_CONTROL_CQ_INTERRUPT_MODERATION = unsafe extern "win64" fn(
    pNdkCq: *mut NDK_CQ,
    ModerationInterval: u32,
    ModerationCount: u32,
) -> NTSTATUS;
/// `ULONG NdkGetCqResultsEx(NDK_CQ*, NDK_RESULT_EX Results[], ULONG nResults)`.
pub type NDK_FN_GET_CQ_RESULTS_EX = unsafe extern "win64" fn(
    pNdkCq: *mut NDK_CQ,
    Results: *mut NDK_RESULT_EX,
    nResults: u32,
) -> u32;

/// `NDK_CQ_DISPATCH` (7 entries, 0x38 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_CQ_DISPATCH {
    /// `NdkCloseCq`.
    pub NdkCloseCq: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkResizeCq`.
    pub NdkResizeCq: Option<NDK_FN_RESIZE_CQ>,
    /// `NdkArmCq`.
    pub NdkArmCq: Option<NDK_FN_ARM_CQ>,
    /// `NdkGetCqResults`.
    pub NdkGetCqResults: Option<NDK_FN_GET_CQ_RESULTS>,
    /// `NdkControlCqInterruptModeration`.
    pub NdkControlCqInterruptModeration: Option<NDK_FN_CONTROL_CQ_INTERRUPT_MODERATION>,
    /// `NdkGetCqResultsEx`.
    pub NdkGetCqResultsEx: Option<NDK_FN_GET_CQ_RESULTS_EX>,
}

// ---------------------------------------------------------------------------------------------
// MR

/// `NTSTATUS NdkRegisterMr(NDK_MR*, MDL* Mdl, SIZE_T Length, ULONG Flags,
/// NDK_FN_REQUEST_COMPLETION, PVOID)`: registers the virtually contiguous region the MDL chain
/// describes; `Flags` are `NDK_MR_FLAG_*`.
pub type NDK_FN_REGISTER_MR = unsafe extern "win64" fn(
    pNdkMr: *mut NDK_MR,
    Mdl: *mut MDL,
    Length: usize,
    Flags: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkDeregisterMr(NDK_MR*, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_DEREGISTER_MR = unsafe extern "win64" fn(
    pNdkMr: *mut NDK_MR,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkInitializeFastRegisterMr(NDK_MR*, ULONG AdapterPageCount, BOOLEAN
/// RemoteAccess, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_INITIALIZE_FAST_REGISTER_MR = unsafe extern "win64" fn(
    pNdkMr: *mut NDK_MR,
    AdapterPageCount: u32,
    RemoteAccess: BOOLEAN,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `UINT32 NdkGetRemoteTokenFromMr(NDK_MR*)`: the token peers use (the device's rkey).
pub type NDK_FN_GET_REMOTE_TOKEN_FROM_MR = unsafe extern "win64" fn(pNdkMr: *mut NDK_MR) -> u32;
/// `UINT32 NdkGetLocalTokenFromMr(NDK_MR*)`: the token of local SGEs (the device's lkey).
pub type NDK_FN_GET_LOCAL_TOKEN_FROM_MR = unsafe extern "win64" fn(pNdkMr: *mut NDK_MR) -> u32;

/// `NDK_MR_DISPATCH` (7 entries, 0x38 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_MR_DISPATCH {
    /// `NdkCloseMr`.
    pub NdkCloseMr: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkRegisterMr`.
    pub NdkRegisterMr: Option<NDK_FN_REGISTER_MR>,
    /// `NdkDeregisterMr`.
    pub NdkDeregisterMr: Option<NDK_FN_DEREGISTER_MR>,
    /// `NdkInitializeFastRegisterMr`.
    pub NdkInitializeFastRegisterMr: Option<NDK_FN_INITIALIZE_FAST_REGISTER_MR>,
    /// `NdkGetRemoteTokenFromMr`.
    pub NdkGetRemoteTokenFromMr: Option<NDK_FN_GET_REMOTE_TOKEN_FROM_MR>,
    /// `NdkGetLocalTokenFromMr`.
    pub NdkGetLocalTokenFromMr: Option<NDK_FN_GET_LOCAL_TOKEN_FROM_MR>,
}

// ---------------------------------------------------------------------------------------------
// MW

/// `UINT32 NdkGetRemoteTokenFromMw(NDK_MW*)`.
pub type NDK_FN_GET_REMOTE_TOKEN_FROM_MW = unsafe extern "win64" fn(pNdkMw: *mut NDK_MW) -> u32;

/// `NDK_MW_DISPATCH` (3 entries, 0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_MW_DISPATCH {
    /// `NdkCloseMw`.
    pub NdkCloseMw: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkGetRemoteTokenFromMw`.
    pub NdkGetRemoteTokenFromMw: Option<NDK_FN_GET_REMOTE_TOKEN_FROM_MW>,
}

// ---------------------------------------------------------------------------------------------
// SRQ

/// `NTSTATUS NdkModifySrq(NDK_SRQ*, ULONG SrqDepth, ULONG NotifyThreshold,
/// NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_MODIFY_SRQ = unsafe extern "win64" fn(
    pNdkSrq: *mut NDK_SRQ,
    SrqDepth: u32,
    NotifyThreshold: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkSrqReceive(NDK_SRQ*, PVOID RequestContext, const NDK_SGE*, ULONG nSge)`.
pub type NDK_FN_SRQ_RECEIVE = unsafe extern "win64" fn(
    pNdkSrq: *mut NDK_SRQ,
    RequestContext: *mut c_void,
    pSgl: *const NDK_SGE,
    nSge: u32,
) -> NTSTATUS;

/// `NDK_SRQ_DISPATCH` (4 entries, 0x20 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_SRQ_DISPATCH {
    /// `NdkCloseSrq`.
    pub NdkCloseSrq: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkModifySrq`.
    pub NdkModifySrq: Option<NDK_FN_MODIFY_SRQ>,
    /// `NdkSrqReceive`.
    pub NdkSrqReceive: Option<NDK_FN_SRQ_RECEIVE>,
}

// ---------------------------------------------------------------------------------------------
// QP

/// `VOID NdkFlush(NDK_QP*)`: moves the QP to error; every outstanding request completes with
/// `STATUS_CANCELLED`.
pub type NDK_FN_FLUSH = unsafe extern "win64" fn(pNdkQp: *mut NDK_QP);
/// `NTSTATUS NdkSend(NDK_QP*, PVOID RequestContext, const NDK_SGE*, ULONG nSge, ULONG Flags)`.
pub type NDK_FN_SEND = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pSgl: *const NDK_SGE,
    nSge: u32,
    Flags: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkReceive(NDK_QP*, PVOID RequestContext, const NDK_SGE*, ULONG nSge)`.
pub type NDK_FN_RECEIVE = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pSgl: *const NDK_SGE,
    nSge: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkBind(NDK_QP*, PVOID RequestContext, NDK_MR*, NDK_MW*, PVOID VirtualAddress,
/// SIZE_T Length, ULONG Flags)`: `Flags` are `NDK_OP_FLAG_*`.
pub type NDK_FN_BIND = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pMr: *mut NDK_MR,
    pMw: *mut NDK_MW,
    VirtualAddress: *mut c_void,
    Length: usize,
    Flags: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkFastRegister(NDK_QP*, PVOID RequestContext, NDK_MR*, ULONG AdapterPageCount,
/// const NDK_LOGICAL_ADDRESS* AdapterPageArray, ULONG FBO, SIZE_T Length, PVOID
/// BaseVirtualAddress, ULONG Flags)`: `Flags` are `NDK_OP_FLAG_*` (not `NDK_MR_FLAG_*`).
pub type NDK_FN_FAST_REGISTER = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pMr: *mut NDK_MR,
    AdapterPageCount: u32,
    AdapterPageArray: *const NDK_LOGICAL_ADDRESS,
    FBO: u32,
    Length: usize,
    BaseVirtualAddress: *mut c_void,
    Flags: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkInvalidate(NDK_QP*, PVOID RequestContext, NDK_OBJECT_HEADER* pNdkMrOrMw,
/// ULONG Flags)`.
pub type NDK_FN_INVALIDATE = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pNdkMrOrMw: *mut NDK_OBJECT_HEADER,
    Flags: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkRead(NDK_QP*, PVOID RequestContext, const NDK_SGE*, ULONG nSge, UINT64
/// RemoteAddress, UINT32 RemoteToken, ULONG Flags)`.
pub type NDK_FN_READ = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pSgl: *const NDK_SGE,
    nSge: u32,
    RemoteAddress: u64,
    RemoteToken: u32,
    Flags: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkWrite(NDK_QP*, PVOID RequestContext, const NDK_SGE*, ULONG nSge, UINT64
/// RemoteAddress, UINT32 RemoteToken, ULONG Flags)`.
pub type NDK_FN_WRITE = NDK_FN_READ;
/// `NTSTATUS NdkSendAndInvalidate(NDK_QP*, PVOID RequestContext, const NDK_SGE*, ULONG nSge,
/// ULONG Flags, UINT32 RemoteToken)`.
pub type NDK_FN_SEND_AND_INVALIDATE = unsafe extern "win64" fn(
    pNdkQp: *mut NDK_QP,
    RequestContext: *mut c_void,
    pSgl: *const NDK_SGE,
    nSge: u32,
    Flags: u32,
    RemoteToken: u32,
) -> NTSTATUS;

/// `NDK_QP_DISPATCH` (11 entries, 0x58 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_QP_DISPATCH {
    /// `NdkCloseQp`.
    pub NdkCloseQp: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkFlush`.
    pub NdkFlush: Option<NDK_FN_FLUSH>,
    /// `NdkSend`.
    pub NdkSend: Option<NDK_FN_SEND>,
    /// `NdkReceive`.
    pub NdkReceive: Option<NDK_FN_RECEIVE>,
    /// `NdkBind`.
    pub NdkBind: Option<NDK_FN_BIND>,
    /// `NdkFastRegister`.
    pub NdkFastRegister: Option<NDK_FN_FAST_REGISTER>,
    /// `NdkInvalidate`.
    pub NdkInvalidate: Option<NDK_FN_INVALIDATE>,
    /// `NdkRead`.
    pub NdkRead: Option<NDK_FN_READ>,
    /// `NdkWrite`.
    pub NdkWrite: Option<NDK_FN_WRITE>,
    /// `NdkSendAndInvalidate`.
    pub NdkSendAndInvalidate: Option<NDK_FN_SEND_AND_INVALIDATE>,
}

// ---------------------------------------------------------------------------------------------
// PD

/// `NTSTATUS NdkCreateMr(NDK_PD*, BOOLEAN FastRegister, NDK_FN_CREATE_COMPLETION, PVOID,
/// NDK_MR**)`.
pub type NDK_FN_CREATE_MR = unsafe extern "win64" fn(
    pNdkPd: *mut NDK_PD,
    FastRegister: BOOLEAN,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkMr: *mut *mut NDK_MR,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateMw(NDK_PD*, NDK_FN_CREATE_COMPLETION, PVOID, NDK_MW**)`.
pub type NDK_FN_CREATE_MW = unsafe extern "win64" fn(
    pNdkPd: *mut NDK_PD,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkMw: *mut *mut NDK_MW,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateSrq(NDK_PD*, ULONG SrqDepth, ULONG MaxReceiveRequestSge, ULONG
/// NotifyThreshold, NDK_FN_SRQ_NOTIFICATION_CALLBACK, PVOID, GROUP_AFFINITY*,
/// NDK_FN_CREATE_COMPLETION, PVOID, NDK_SRQ**)`.
pub type NDK_FN_CREATE_SRQ = unsafe extern "win64" fn(
    pNdkPd: *mut NDK_PD,
    SrqDepth: u32,
    MaxReceiveRequestSge: u32,
    NotifyThreshold: u32,
    SrqNotification: Option<NDK_FN_SRQ_NOTIFICATION_CALLBACK>,
    SrqNotificationContext: *mut c_void,
    Affinity: *mut GROUP_AFFINITY,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkSrq: *mut *mut NDK_SRQ,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateQp(NDK_PD*, NDK_CQ* pReceiveCq, NDK_CQ* pInitiatorCq, PVOID QPContext,
/// ULONG ReceiveQueueDepth, ULONG InitiatorQueueDepth, ULONG MaxReceiveRequestSge, ULONG
/// MaxInitiatorRequestSge, ULONG InlineDataSize, NDK_FN_CREATE_COMPLETION, PVOID, NDK_QP**)`.
pub type NDK_FN_CREATE_QP = unsafe extern "win64" fn(
    pNdkPd: *mut NDK_PD,
    pReceiveCq: *mut NDK_CQ,
    pInitiatorCq: *mut NDK_CQ,
    QPContext: *mut c_void,
    ReceiveQueueDepth: u32,
    InitiatorQueueDepth: u32,
    MaxReceiveRequestSge: u32,
    MaxInitiatorRequestSge: u32,
    InlineDataSize: u32,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkQp: *mut *mut NDK_QP,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateQpWithSrq(NDK_PD*, NDK_CQ* pReceiveCq, NDK_CQ* pInitiatorCq, NDK_SRQ*,
/// PVOID QPContext, ULONG InitiatorQueueDepth, ULONG MaxInitiatorRequestSge, ULONG
/// InlineDataSize, NDK_FN_CREATE_COMPLETION, PVOID, NDK_QP**)`.
pub type NDK_FN_CREATE_QP_WITH_SRQ = unsafe extern "win64" fn(
    pNdkPd: *mut NDK_PD,
    pReceiveCq: *mut NDK_CQ,
    pInitiatorCq: *mut NDK_CQ,
    pSrq: *mut NDK_SRQ,
    QPContext: *mut c_void,
    InitiatorQueueDepth: u32,
    MaxInitiatorRequestSge: u32,
    InlineDataSize: u32,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkQp: *mut *mut NDK_QP,
) -> NTSTATUS;
/// `VOID NdkGetPrivilegedMemoryRegionToken(NDK_PD*, UINT32* pToken)`.
pub type NDK_FN_GET_PRIVILEGED_MEMORY_REGION_TOKEN =
    unsafe extern "win64" fn(pNdkPd: *mut NDK_PD, pToken: *mut u32);

/// `NDK_PD_DISPATCH` (8 entries, 0x40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_PD_DISPATCH {
    /// `NdkClosePd`.
    pub NdkClosePd: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkCreateMr`.
    pub NdkCreateMr: Option<NDK_FN_CREATE_MR>,
    /// `NdkCreateMw`.
    pub NdkCreateMw: Option<NDK_FN_CREATE_MW>,
    /// `NdkCreateSrq`.
    pub NdkCreateSrq: Option<NDK_FN_CREATE_SRQ>,
    /// `NdkCreateQp`.
    pub NdkCreateQp: Option<NDK_FN_CREATE_QP>,
    /// `NdkCreateQpWithSrq`.
    pub NdkCreateQpWithSrq: Option<NDK_FN_CREATE_QP_WITH_SRQ>,
    /// `NdkGetPrivilegedMemoryRegionToken`.
    pub NdkGetPrivilegedMemoryRegionToken: Option<NDK_FN_GET_PRIVILEGED_MEMORY_REGION_TOKEN>,
}

// ---------------------------------------------------------------------------------------------
// Shared endpoint

/// `NTSTATUS NdkGetLocalAddress(NDK_SHARED_ENDPOINT*, PSOCKADDR, ULONG* pAddressLength)`.
pub type NDK_FN_GET_SHARED_ENDPOINT_LOCAL_ADDRESS = unsafe extern "win64" fn(
    pNdkSharedEndpoint: *mut NDK_SHARED_ENDPOINT,
    pAddress: *mut SOCKADDR,
    pAddressLength: *mut u32,
) -> NTSTATUS;

/// `NDK_SHARED_ENDPOINT_DISPATCH` (3 entries, 0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_SHARED_ENDPOINT_DISPATCH {
    /// `NdkCloseSharedEndpoint`.
    pub NdkCloseSharedEndpoint: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkGetLocalAddress`.
    pub NdkGetLocalAddress: Option<NDK_FN_GET_SHARED_ENDPOINT_LOCAL_ADDRESS>,
}

// ---------------------------------------------------------------------------------------------
// Connector

/// `NTSTATUS NdkConnect(NDK_CONNECTOR*, NDK_QP*, const PSOCKADDR pSrcAddress, ULONG
/// SrcAddressLength, const PSOCKADDR pDestAddress, ULONG DestAddressLength, ULONG
/// InboundReadLimit, ULONG OutboundReadLimit, const PVOID pPrivateData, ULONG
/// PrivateDataLength, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_CONNECT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pNdkQp: *mut NDK_QP,
    pSrcAddress: *const SOCKADDR,
    SrcAddressLength: u32,
    pDestAddress: *const SOCKADDR,
    DestAddressLength: u32,
    InboundReadLimit: u32,
    OutboundReadLimit: u32,
    pPrivateData: *const c_void,
    PrivateDataLength: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkConnectWithSharedEndpoint(NDK_CONNECTOR*, NDK_QP*, NDK_SHARED_ENDPOINT*,
/// const PSOCKADDR pDestAddress, ULONG DestAddressLength, ULONG InboundReadLimit, ULONG
/// OutboundReadLimit, const PVOID pPrivateData, ULONG PrivateDataLength,
/// NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_CONNECT_WITH_SHARED_ENDPOINT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pNdkQp: *mut NDK_QP,
    pNdkSharedEndpoint: *mut NDK_SHARED_ENDPOINT,
    pDestAddress: *const SOCKADDR,
    DestAddressLength: u32,
    InboundReadLimit: u32,
    OutboundReadLimit: u32,
    pPrivateData: *const c_void,
    PrivateDataLength: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkCompleteConnect(NDK_CONNECTOR*, NDK_FN_DISCONNECT_EVENT_CALLBACK, PVOID
/// DisconnectEventContext, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_COMPLETE_CONNECT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    DisconnectEvent: Option<NDK_FN_DISCONNECT_EVENT_CALLBACK>,
    DisconnectEventContext: *mut c_void,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkAccept(NDK_CONNECTOR*, NDK_QP*, ULONG InboundReadLimit, ULONG
/// OutboundReadLimit, const PVOID pPrivateData, ULONG PrivateDataLength,
/// NDK_FN_DISCONNECT_EVENT_CALLBACK, PVOID DisconnectEventContext, NDK_FN_REQUEST_COMPLETION,
/// PVOID)`.
pub type NDK_FN_ACCEPT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pNdkQp: *mut NDK_QP,
    InboundReadLimit: u32,
    OutboundReadLimit: u32,
    pPrivateData: *const c_void,
    PrivateDataLength: u32,
    DisconnectEvent: Option<NDK_FN_DISCONNECT_EVENT_CALLBACK>,
    DisconnectEventContext: *mut c_void,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkReject(NDK_CONNECTOR*, const PVOID pPrivateData, ULONG PrivateDataLength)`.
pub type NDK_FN_REJECT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pPrivateData: *const c_void,
    PrivateDataLength: u32,
) -> NTSTATUS;
/// `NTSTATUS NdkGetConnectionData(NDK_CONNECTOR*, ULONG* pInboundReadLimit, ULONG*
/// pOutboundReadLimit, PVOID pPrivateData, ULONG* pPrivateDataLength)`.
pub type NDK_FN_GET_CONNECTION_DATA = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pInboundReadLimit: *mut u32,
    pOutboundReadLimit: *mut u32,
    pPrivateData: *mut c_void,
    pPrivateDataLength: *mut u32,
) -> NTSTATUS;
/// `NTSTATUS NdkGetLocalAddress(NDK_CONNECTOR*, PSOCKADDR, ULONG* pAddressLength)`.
pub type NDK_FN_GET_LOCAL_ADDRESS = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    pAddress: *mut SOCKADDR,
    pAddressLength: *mut u32,
) -> NTSTATUS;
/// `NTSTATUS NdkGetPeerAddress(NDK_CONNECTOR*, PSOCKADDR, ULONG* pAddressLength)`.
pub type NDK_FN_GET_PEER_ADDRESS = NDK_FN_GET_LOCAL_ADDRESS;
/// `NTSTATUS NdkDisconnect(NDK_CONNECTOR*, NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_DISCONNECT = unsafe extern "win64" fn(
    pNdkConnector: *mut NDK_CONNECTOR,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;

/// `NDK_CONNECTOR_DISPATCH` (11 entries, 0x58 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_CONNECTOR_DISPATCH {
    /// `NdkCloseConnector`.
    pub NdkCloseConnector: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkConnect`.
    pub NdkConnect: Option<NDK_FN_CONNECT>,
    /// `NdkConnectWithSharedEndpoint`.
    pub NdkConnectWithSharedEndpoint: Option<NDK_FN_CONNECT_WITH_SHARED_ENDPOINT>,
    /// `NdkCompleteConnect`.
    pub NdkCompleteConnect: Option<NDK_FN_COMPLETE_CONNECT>,
    /// `NdkAccept`.
    pub NdkAccept: Option<NDK_FN_ACCEPT>,
    /// `NdkReject`.
    pub NdkReject: Option<NDK_FN_REJECT>,
    /// `NdkGetConnectionData`.
    pub NdkGetConnectionData: Option<NDK_FN_GET_CONNECTION_DATA>,
    /// `NdkGetLocalAddress`.
    pub NdkGetLocalAddress: Option<NDK_FN_GET_LOCAL_ADDRESS>,
    /// `NdkGetPeerAddress`.
    pub NdkGetPeerAddress: Option<NDK_FN_GET_PEER_ADDRESS>,
    /// `NdkDisconnect`.
    pub NdkDisconnect: Option<NDK_FN_DISCONNECT>,
}

// ---------------------------------------------------------------------------------------------
// Listener

/// `VOID NdkControlConnectEvents(NDK_LISTENER*, BOOLEAN Pause)`.
pub type NDK_FN_CONTROL_CONNECT_EVENTS =
    unsafe extern "win64" fn(pNdkListener: *mut NDK_LISTENER, Pause: BOOLEAN);
/// `NTSTATUS NdkListen(NDK_LISTENER*, const PSOCKADDR pAddress, ULONG AddressLength,
/// NDK_FN_REQUEST_COMPLETION, PVOID)`.
pub type NDK_FN_LISTEN = unsafe extern "win64" fn(
    pNdkListener: *mut NDK_LISTENER,
    pAddress: *const SOCKADDR,
    AddressLength: u32,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
) -> NTSTATUS;
/// `NTSTATUS NdkGetLocalAddress(NDK_LISTENER*, PSOCKADDR, ULONG* pAddressLength)`.
pub type NDK_FN_GET_LISTENER_LOCAL_ADDRESS = unsafe extern "win64" fn(
    pNdkListener: *mut NDK_LISTENER,
    pAddress: *mut SOCKADDR,
    pAddressLength: *mut u32,
) -> NTSTATUS;

/// `NDK_LISTENER_DISPATCH` (5 entries, 0x28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_LISTENER_DISPATCH {
    /// `NdkCloseListener`.
    pub NdkCloseListener: Option<NDK_FN_CLOSE_OBJECT>,
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkListen`.
    pub NdkListen: Option<NDK_FN_LISTEN>,
    /// `NdkGetLocalAddress`.
    pub NdkGetLocalAddress: Option<NDK_FN_GET_LISTENER_LOCAL_ADDRESS>,
    /// `NdkControlConnectEvents`.
    pub NdkControlConnectEvents: Option<NDK_FN_CONTROL_CONNECT_EVENTS>,
}

// ---------------------------------------------------------------------------------------------
// Adapter

/// `NTSTATUS NdkQueryAdapterInfo(NDK_ADAPTER*, NDK_ADAPTER_INFO* pInfo, ULONG* pBufferSize)`
/// (PASSIVE_LEVEL): a too-small `*pBufferSize` fails with `STATUS_BUFFER_TOO_SMALL` and the
/// needed size in `*pBufferSize`.
pub type NDK_FN_QUERY_ADAPTER_INFO = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    pInfo: *mut NDK_ADAPTER_INFO,
    pBufferSize: *mut u32,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateCq(NDK_ADAPTER*, ULONG CqDepth, NDK_FN_CQ_NOTIFICATION_CALLBACK, PVOID
/// CqNotificationContext, GROUP_AFFINITY* Affinity, NDK_FN_CREATE_COMPLETION, PVOID,
/// NDK_CQ**)`.
pub type NDK_FN_CREATE_CQ = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    CqDepth: u32,
    CqNotification: Option<NDK_FN_CQ_NOTIFICATION_CALLBACK>,
    CqNotificationContext: *mut c_void,
    Affinity: *mut GROUP_AFFINITY,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkCq: *mut *mut NDK_CQ,
) -> NTSTATUS;
/// `NTSTATUS NdkCreatePd(NDK_ADAPTER*, NDK_FN_CREATE_COMPLETION, PVOID, NDK_PD**)`.
pub type NDK_FN_CREATE_PD = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkPd: *mut *mut NDK_PD,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateSharedEndpoint(NDK_ADAPTER*, const PSOCKADDR pAddress, ULONG
/// AddressLength, NDK_FN_CREATE_COMPLETION, PVOID, NDK_SHARED_ENDPOINT**)`.
pub type NDK_FN_CREATE_SHARED_ENDPOINT = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    pAddress: *const SOCKADDR,
    AddressLength: u32,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkSharedEndpoint: *mut *mut NDK_SHARED_ENDPOINT,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateConnector(NDK_ADAPTER*, NDK_FN_CREATE_COMPLETION, PVOID,
/// NDK_CONNECTOR**)`.
pub type NDK_FN_CREATE_CONNECTOR = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkConnector: *mut *mut NDK_CONNECTOR,
) -> NTSTATUS;
/// `NTSTATUS NdkCreateListener(NDK_ADAPTER*, NDK_FN_CONNECT_EVENT_CALLBACK, PVOID
/// ConnectEventContext, NDK_FN_CREATE_COMPLETION, PVOID, NDK_LISTENER**)`.
pub type NDK_FN_CREATE_LISTENER = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    ConnectEvent: Option<NDK_FN_CONNECT_EVENT_CALLBACK>,
    ConnectEventContext: *mut c_void,
    CreateCompletion: Option<NDK_FN_CREATE_COMPLETION>,
    RequestContext: *mut c_void,
    ppNdkListener: *mut *mut NDK_LISTENER,
) -> NTSTATUS;
/// `NTSTATUS NdkBuildLAM(NDK_ADAPTER*, MDL* Mdl, SIZE_T Length, NDK_FN_REQUEST_COMPLETION,
/// PVOID, NDK_LOGICAL_ADDRESS_MAPPING* pNdkLAM, ULONG* pLAMSize, ULONG* pFBO)`.
pub type NDK_FN_BUILD_LAM = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    Mdl: *mut MDL,
    Length: usize,
    RequestCompletion: Option<NDK_FN_REQUEST_COMPLETION>,
    RequestContext: *mut c_void,
    pNdkLAM: *mut NDK_LOGICAL_ADDRESS_MAPPING,
    pLAMSize: *mut u32,
    pFBO: *mut u32,
) -> NTSTATUS;
/// `VOID NdkReleaseLAM(NDK_ADAPTER*, NDK_LOGICAL_ADDRESS_MAPPING*)`.
pub type NDK_FN_RELEASE_LAM = unsafe extern "win64" fn(
    pNdkAdapter: *mut NDK_ADAPTER,
    pNdkLAM: *mut NDK_LOGICAL_ADDRESS_MAPPING,
);

/// `NDK_ADAPTER_DISPATCH` (9 entries, 0x48 bytes). The adapter has no close entry: NDIS
/// closes it through `CloseNDKAdapterHandler`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDK_ADAPTER_DISPATCH {
    /// `NdkQueryExtension`.
    pub NdkQueryExtension: Option<NDK_FN_QUERY_EXTENSION_INTERFACE>,
    /// `NdkQueryAdapterInfo`.
    pub NdkQueryAdapterInfo: Option<NDK_FN_QUERY_ADAPTER_INFO>,
    /// `NdkCreateCq`.
    pub NdkCreateCq: Option<NDK_FN_CREATE_CQ>,
    /// `NdkCreatePd`.
    pub NdkCreatePd: Option<NDK_FN_CREATE_PD>,
    /// `NdkCreateSharedEndpoint`.
    pub NdkCreateSharedEndpoint: Option<NDK_FN_CREATE_SHARED_ENDPOINT>,
    /// `NdkCreateConnector`.
    pub NdkCreateConnector: Option<NDK_FN_CREATE_CONNECTOR>,
    /// `NdkCreateListener`.
    pub NdkCreateListener: Option<NDK_FN_CREATE_LISTENER>,
    /// `NdkBuildLAM`.
    pub NdkBuildLAM: Option<NDK_FN_BUILD_LAM>,
    /// `NdkReleaseLAM`.
    pub NdkReleaseLAM: Option<NDK_FN_RELEASE_LAM>,
}

// ---------------------------------------------------------------------------------------------
// The objects: { Header; Dispatch } (0x30 bytes each)

macro_rules! ndk_object {
    ($(#[$doc:meta])* $name:ident, $dispatch:ident) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            /// `Header`: version and object type.
            pub Header: NDK_OBJECT_HEADER,
            /// `Dispatch`: the provider's function table for this object.
            pub Dispatch: *const $dispatch,
        }
    };
}

ndk_object!(
    /// `NDK_ADAPTER` (0x30 bytes): an open NDK adapter.
    NDK_ADAPTER,
    NDK_ADAPTER_DISPATCH
);
ndk_object!(
    /// `NDK_PD` (0x30 bytes): a protection domain.
    NDK_PD,
    NDK_PD_DISPATCH
);
ndk_object!(
    /// `NDK_CQ` (0x30 bytes): a completion queue.
    NDK_CQ,
    NDK_CQ_DISPATCH
);
ndk_object!(
    /// `NDK_MR` (0x30 bytes): a memory region.
    NDK_MR,
    NDK_MR_DISPATCH
);
ndk_object!(
    /// `NDK_MW` (0x30 bytes): a memory window.
    NDK_MW,
    NDK_MW_DISPATCH
);
ndk_object!(
    /// `NDK_SRQ` (0x30 bytes): a shared receive queue.
    NDK_SRQ,
    NDK_SRQ_DISPATCH
);
ndk_object!(
    /// `NDK_QP` (0x30 bytes): a queue pair.
    NDK_QP,
    NDK_QP_DISPATCH
);
ndk_object!(
    /// `NDK_SHARED_ENDPOINT` (0x30 bytes): a local address shared by several connectors.
    NDK_SHARED_ENDPOINT,
    NDK_SHARED_ENDPOINT_DISPATCH
);
ndk_object!(
    /// `NDK_CONNECTOR` (0x30 bytes): one connection, active or passive side.
    NDK_CONNECTOR,
    NDK_CONNECTOR_DISPATCH
);
ndk_object!(
    /// `NDK_LISTENER` (0x30 bytes): listens on a local address for connect requests.
    NDK_LISTENER,
    NDK_LISTENER_DISPATCH
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Second sources, x64:
    // - ntdiff/headers, Win10_2004_20H1/x64/System32/ndis.sys/Standalone/_NDK_LISTENER.h
    //   (NDK_VERSION, NDK_OBJECT_TYPE values, NDK_OBJECT_HEADER_RESERVED_BLOCK 0x20,
    //   NDK_OBJECT_HEADER 0x28, object {Header, Dispatch at 0x28} 0x30) and .../_NDK_RESULT.h
    //   (NDK_RESULT 0x18), type dumps of ndis.sys's public symbols;
    // - ntdiff/headers, Win10_1709_RS3/x64/System32/ndis.sys/Standalone/
    //   _NDK_SHARED_ENDPOINT_DISPATCH.h (3 entries, 0x18);
    // - m417z/windows-docs-scraper, windows-driver-docs-ddi/ndkpi/ns-ndkpi-_ndk_*_dispatch.c
    //   (entry order of every dispatch table), ns-ndkpi-_ndk_result_ex.c (with ProviderErrorCode
    //   in the former padding at 0x1C), ns-ndkpi-_ndk_sge.c,
    //   ns-ndkpi-_ndk_logical_address_mapping.c, ne-ndkpi-_ndk_operation_type.c;
    // - windows-sys 0.61.2 (microsoft/windows-rs), src/Windows/Win32/NetworkManagement/Ndis/
    //   mod.rs: NDK_ADAPTER_INFO fields and NDK_ADAPTER_FLAG_* / NdkRoCEv2 values;
    // - a copy of the WDK's ndkpi.h in the code index (NDK_MR_FLAG_*, NDK_OP_FLAG_*,
    //   NDK_CQ_NOTIFY_*, every function prototype).

    /// Offsets of consecutive pointer-sized entries: entry `i` at `8 * i`.
    fn entries_at(offsets: &[usize]) {
        for (i, o) in offsets.iter().enumerate() {
            assert_eq!(*o, 8 * i, "entry {i}");
        }
    }

    #[test]
    fn object_header_layout() {
        assert_eq!(size_of::<NDK_VERSION>(), 4);
        assert_eq!(offset_of!(NDK_VERSION, Minor), 2);
        assert_eq!(size_of::<NDK_OBJECT_HEADER_RESERVED_BLOCK>(), 0x20);
        type T = NDK_OBJECT_HEADER;
        assert_eq!(size_of::<T>(), 0x28);
        assert_eq!(offset_of!(T, Version), 0x00);
        assert_eq!(offset_of!(T, ObjectType), 0x04);
        assert_eq!(offset_of!(T, NdkReserved), 0x08);
    }

    #[test]
    fn objects_are_header_then_dispatch() {
        macro_rules! check {
            ($($t:ty),*) => {$(
                assert_eq!(size_of::<$t>(), 0x30);
                assert_eq!(offset_of!($t, Header), 0x00);
                assert_eq!(offset_of!($t, Dispatch), 0x28);
            )*};
        }
        check!(
            NDK_ADAPTER,
            NDK_PD,
            NDK_CQ,
            NDK_MR,
            NDK_MW,
            NDK_SRQ,
            NDK_QP,
            NDK_SHARED_ENDPOINT,
            NDK_CONNECTOR,
            NDK_LISTENER
        );
    }

    #[test]
    fn object_type_values() {
        assert_eq!(
            [
                NdkObjectTypeAdapter,
                NdkObjectTypeQp,
                NdkObjectTypeCq,
                NdkObjectTypeMr,
                NdkObjectTypeMw,
                NdkObjectTypePd,
                NdkObjectTypeSharedEndpoint,
                NdkObjectTypeConnector,
                NdkObjectTypeListener,
                NdkObjectTypeSrq,
                NdkObjectTypeMax
            ],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        );
    }

    #[test]
    fn adapter_dispatch_order() {
        type T = NDK_ADAPTER_DISPATCH;
        assert_eq!(size_of::<T>(), 9 * 8);
        entries_at(&[
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkQueryAdapterInfo),
            offset_of!(T, NdkCreateCq),
            offset_of!(T, NdkCreatePd),
            offset_of!(T, NdkCreateSharedEndpoint),
            offset_of!(T, NdkCreateConnector),
            offset_of!(T, NdkCreateListener),
            offset_of!(T, NdkBuildLAM),
            offset_of!(T, NdkReleaseLAM),
        ]);
    }

    #[test]
    fn pd_dispatch_order() {
        type T = NDK_PD_DISPATCH;
        assert_eq!(size_of::<T>(), 8 * 8);
        entries_at(&[
            offset_of!(T, NdkClosePd),
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkCreateMr),
            offset_of!(T, NdkCreateMw),
            offset_of!(T, NdkCreateSrq),
            offset_of!(T, NdkCreateQp),
            offset_of!(T, NdkCreateQpWithSrq),
            offset_of!(T, NdkGetPrivilegedMemoryRegionToken),
        ]);
    }

    #[test]
    fn cq_dispatch_order() {
        type T = NDK_CQ_DISPATCH;
        assert_eq!(size_of::<T>(), 7 * 8);
        entries_at(&[
            offset_of!(T, NdkCloseCq),
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkResizeCq),
            offset_of!(T, NdkArmCq),
            offset_of!(T, NdkGetCqResults),
            offset_of!(T, NdkControlCqInterruptModeration),
            offset_of!(T, NdkGetCqResultsEx),
        ]);
    }

    #[test]
    fn mr_dispatch_order_is_the_seed() {
        type T = NDK_MR_DISPATCH;
        assert_eq!(size_of::<T>(), 7 * 8);
        entries_at(&[
            offset_of!(T, NdkCloseMr),
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkRegisterMr),
            offset_of!(T, NdkDeregisterMr),
            offset_of!(T, NdkInitializeFastRegisterMr),
            offset_of!(T, NdkGetRemoteTokenFromMr),
            offset_of!(T, NdkGetLocalTokenFromMr),
        ]);
    }

    #[test]
    fn mw_and_srq_dispatch_order() {
        type W = NDK_MW_DISPATCH;
        assert_eq!(size_of::<W>(), 3 * 8);
        entries_at(&[
            offset_of!(W, NdkCloseMw),
            offset_of!(W, NdkQueryExtension),
            offset_of!(W, NdkGetRemoteTokenFromMw),
        ]);
        type S = NDK_SRQ_DISPATCH;
        assert_eq!(size_of::<S>(), 4 * 8);
        entries_at(&[
            offset_of!(S, NdkCloseSrq),
            offset_of!(S, NdkQueryExtension),
            offset_of!(S, NdkModifySrq),
            offset_of!(S, NdkSrqReceive),
        ]);
    }

    #[test]
    fn qp_dispatch_order() {
        type T = NDK_QP_DISPATCH;
        assert_eq!(size_of::<T>(), 11 * 8);
        entries_at(&[
            offset_of!(T, NdkCloseQp),
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkFlush),
            offset_of!(T, NdkSend),
            offset_of!(T, NdkReceive),
            offset_of!(T, NdkBind),
            offset_of!(T, NdkFastRegister),
            offset_of!(T, NdkInvalidate),
            offset_of!(T, NdkRead),
            offset_of!(T, NdkWrite),
            offset_of!(T, NdkSendAndInvalidate),
        ]);
    }

    #[test]
    fn connector_dispatch_order() {
        type T = NDK_CONNECTOR_DISPATCH;
        assert_eq!(size_of::<T>(), 11 * 8);
        entries_at(&[
            offset_of!(T, NdkCloseConnector),
            offset_of!(T, NdkQueryExtension),
            offset_of!(T, NdkConnect),
            offset_of!(T, NdkConnectWithSharedEndpoint),
            offset_of!(T, NdkCompleteConnect),
            offset_of!(T, NdkAccept),
            offset_of!(T, NdkReject),
            offset_of!(T, NdkGetConnectionData),
            offset_of!(T, NdkGetLocalAddress),
            offset_of!(T, NdkGetPeerAddress),
            offset_of!(T, NdkDisconnect),
        ]);
    }

    #[test]
    fn listener_and_shared_endpoint_dispatch_order() {
        type L = NDK_LISTENER_DISPATCH;
        assert_eq!(size_of::<L>(), 5 * 8);
        entries_at(&[
            offset_of!(L, NdkCloseListener),
            offset_of!(L, NdkQueryExtension),
            offset_of!(L, NdkListen),
            offset_of!(L, NdkGetLocalAddress),
            offset_of!(L, NdkControlConnectEvents),
        ]);
        type S = NDK_SHARED_ENDPOINT_DISPATCH;
        assert_eq!(size_of::<S>(), 0x18);
        entries_at(&[
            offset_of!(S, NdkCloseSharedEndpoint),
            offset_of!(S, NdkQueryExtension),
            offset_of!(S, NdkGetLocalAddress),
        ]);
    }

    #[test]
    fn result_layouts() {
        type R = NDK_RESULT;
        assert_eq!(size_of::<R>(), 0x18);
        assert_eq!(offset_of!(R, Status), 0x00);
        assert_eq!(offset_of!(R, BytesTransferred), 0x04);
        assert_eq!(offset_of!(R, QPContext), 0x08);
        assert_eq!(offset_of!(R, RequestContext), 0x10);
        type X = NDK_RESULT_EX;
        assert_eq!(size_of::<X>(), 0x28);
        assert_eq!(offset_of!(X, Status), 0x00);
        assert_eq!(offset_of!(X, BytesTransferred), 0x04);
        assert_eq!(offset_of!(X, QPContext), 0x08);
        assert_eq!(offset_of!(X, RequestContext), 0x10);
        assert_eq!(offset_of!(X, Type), 0x18);
        assert_eq!(offset_of!(X, ProviderErrorCode), 0x1C);
        assert_eq!(offset_of!(X, TypeSpecificCompletionOutput), 0x20);
    }

    #[test]
    fn operation_type_values() {
        assert_eq!(NdkOperationTypeReceive, 1);
        assert_eq!(NdkOperationTypeReceiveAndInvalidate, 32769);
        assert_eq!(NdkOperationTypeSend, 2);
        assert_eq!(NdkOperationTypeFastRegister, 4);
        assert_eq!(NdkOperationTypeBind, 8);
        assert_eq!(NdkOperationTypeInvalidate, 16);
        assert_eq!(NdkOperationTypeRead, 32);
        assert_eq!(NdkOperationTypeWrite, 64);
    }

    #[test]
    fn sge_and_lam_layouts() {
        type S = NDK_SGE;
        assert_eq!(size_of::<S>(), 0x10);
        assert_eq!(offset_of!(S, Address), 0x00);
        assert_eq!(offset_of!(S, Length), 0x08);
        assert_eq!(offset_of!(S, MemoryRegionToken), 0x0C);
        type L = NDK_LOGICAL_ADDRESS_MAPPING;
        assert_eq!(offset_of!(L, AdapterContext), 0x00);
        assert_eq!(offset_of!(L, AdapterPageCount), 0x08);
        assert_eq!(offset_of!(L, AdapterPageArray), 0x10);
        assert_eq!(size_of::<L>(), 0x18);
        assert_eq!(ndk_lam_size(1), Some(0x18));
        assert_eq!(ndk_lam_size(0), Some(0x10));
        assert_eq!(ndk_lam_size(u32::MAX), None);
        assert_eq!(size_of::<NDK_EXTENSION_INTERFACE>(), 8);
    }

    #[test]
    fn adapter_info_layout() {
        type T = NDK_ADAPTER_INFO;
        assert_eq!(size_of::<T>(), 0x68);
        assert_eq!(offset_of!(T, Version), 0x00);
        assert_eq!(offset_of!(T, VendorId), 0x04);
        assert_eq!(offset_of!(T, DeviceId), 0x08);
        assert_eq!(offset_of!(T, MaxRegistrationSize), 0x10);
        assert_eq!(offset_of!(T, MaxWindowSize), 0x18);
        assert_eq!(offset_of!(T, FRMRPageCount), 0x20);
        assert_eq!(offset_of!(T, MaxInitiatorRequestSge), 0x24);
        assert_eq!(offset_of!(T, MaxReceiveRequestSge), 0x28);
        assert_eq!(offset_of!(T, MaxReadRequestSge), 0x2C);
        assert_eq!(offset_of!(T, MaxTransferLength), 0x30);
        assert_eq!(offset_of!(T, MaxInlineDataSize), 0x34);
        assert_eq!(offset_of!(T, MaxInboundReadLimit), 0x38);
        assert_eq!(offset_of!(T, MaxOutboundReadLimit), 0x3C);
        assert_eq!(offset_of!(T, MaxReceiveQueueDepth), 0x40);
        assert_eq!(offset_of!(T, MaxInitiatorQueueDepth), 0x44);
        assert_eq!(offset_of!(T, MaxSrqDepth), 0x48);
        assert_eq!(offset_of!(T, MaxCqDepth), 0x4C);
        assert_eq!(offset_of!(T, LargeRequestThreshold), 0x50);
        assert_eq!(offset_of!(T, MaxCallerData), 0x54);
        assert_eq!(offset_of!(T, MaxCalleeData), 0x58);
        assert_eq!(offset_of!(T, AdapterFlags), 0x5C);
        assert_eq!(offset_of!(T, RdmaTechnology), 0x60);
    }

    #[test]
    fn flag_values() {
        assert_eq!(
            [
                NDK_MR_FLAG_ALLOW_LOCAL_READ,
                NDK_MR_FLAG_ALLOW_LOCAL_WRITE,
                NDK_MR_FLAG_ALLOW_REMOTE_READ,
                NDK_MR_FLAG_ALLOW_REMOTE_WRITE,
                NDK_MR_FLAG_RDMA_READ_SINK
            ],
            [0, 1, 2, 5, 8]
        );
        assert_eq!(
            [
                NDK_OP_FLAG_SILENT_SUCCESS,
                NDK_OP_FLAG_READ_FENCE,
                NDK_OP_FLAG_SEND_AND_SOLICIT_EVENT,
                NDK_OP_FLAG_ALLOW_REMOTE_READ,
                NDK_OP_FLAG_ALLOW_LOCAL_WRITE,
                NDK_OP_FLAG_ALLOW_REMOTE_WRITE,
                NDK_OP_FLAG_INLINE,
                NDK_OP_FLAG_RDMA_READ_SINK,
                NDK_OP_FLAG_RDMA_READ_LOCAL_INVALIDATE,
                NDK_OP_FLAG_DEFER
            ],
            [0x1, 0x2, 0x4, 0x8, 0x10, 0x30, 0x40, 0x80, 0x100, 0x200]
        );
        assert_eq!(
            [
                NDK_CQ_NOTIFY_ERRORS,
                NDK_CQ_NOTIFY_ANY,
                NDK_CQ_NOTIFY_SOLICITED
            ],
            [0, 1, 2]
        );
        assert_eq!(
            [
                NDK_ADAPTER_FLAG_IN_ORDER_DMA_SUPPORTED,
                NDK_ADAPTER_FLAG_RDMA_READ_SINK_NOT_REQUIRED,
                NDK_ADAPTER_FLAG_CQ_INTERRUPT_MODERATION_SUPPORTED,
                NDK_ADAPTER_FLAG_MULTI_ENGINE_SUPPORTED,
                NDK_ADAPTER_FLAG_RDMA_READ_LOCAL_INVALIDATE_SUPPORTED,
                NDK_ADAPTER_FLAG_CQ_RESIZE_SUPPORTED,
                NDK_ADAPTER_FLAG_LOOPBACK_CONNECTIONS_SUPPORTED
            ],
            [1, 2, 4, 8, 0x10, 0x100, 0x10000]
        );
        assert_eq!(NdkRoCEv2, 4);
    }

    #[test]
    fn dispatch_entries_are_nullable_pointers() {
        assert_eq!(size_of::<Option<NDK_FN_FAST_REGISTER>>(), 8);
        assert_eq!(size_of::<Option<NDK_FN_REQUEST_COMPLETION>>(), 8);
    }
}
