//! Miniport handler typedefs: the functions the driver exports to NDIS through its
//! characteristics tables. All are `extern "win64"`: the guest (SysV by default) calls them.
//!
//! Structures store them as `Option<Fn>` (a nullable function pointer, same size and ABI as a C
//! function pointer).

use core::ffi::c_void;

use crate::nbl::NET_BUFFER_LIST;
use crate::oid::NDIS_OID_REQUEST;
use crate::status::NDIS_STATUS;
use crate::types::{
    BOOLEAN, NDIS_HALT_ACTION, NDIS_HANDLE, NDIS_PORT_NUMBER, NDIS_SHUTDOWN_ACTION,
};
use crate::wdm::DRIVER_OBJECT;
use crate::NDIS_MINIPORT_INIT_PARAMETERS;

/// `DRIVER_INITIALIZE`: `NTSTATUS DriverEntry(PDRIVER_OBJECT, PUNICODE_STRING RegistryPath)`.
pub type DriverEntryFn =
    unsafe extern "win64" fn(*mut DRIVER_OBJECT, *mut crate::wdm::UNICODE_STRING) -> u32;

/// `MINIPORT_SET_OPTIONS(NdisDriverHandle, DriverContext)`.
pub type MiniportSetOptionsFn = unsafe extern "win64" fn(
    NdisDriverHandle: NDIS_HANDLE,
    DriverContext: NDIS_HANDLE,
) -> NDIS_STATUS;
/// `MINIPORT_INITIALIZE(NdisMiniportHandle, MiniportDriverContext, InitParameters)`.
pub type MiniportInitializeFn = unsafe extern "win64" fn(
    NdisMiniportHandle: NDIS_HANDLE,
    MiniportDriverContext: NDIS_HANDLE,
    MiniportInitParameters: *mut NDIS_MINIPORT_INIT_PARAMETERS,
) -> NDIS_STATUS;
/// `MINIPORT_HALT(MiniportAdapterContext, HaltAction)`.
pub type MiniportHaltFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, HaltAction: NDIS_HALT_ACTION);
/// `MINIPORT_UNLOAD(DriverObject)`.
pub type MiniportUnloadFn = unsafe extern "win64" fn(DriverObject: *mut DRIVER_OBJECT);
/// `MINIPORT_PAUSE(MiniportAdapterContext, PNDIS_MINIPORT_PAUSE_PARAMETERS)`.
pub type MiniportPauseFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    PauseParameters: *mut c_void,
) -> NDIS_STATUS;
/// `MINIPORT_RESTART(MiniportAdapterContext, PNDIS_MINIPORT_RESTART_PARAMETERS)`.
pub type MiniportRestartFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    RestartParameters: *mut c_void,
) -> NDIS_STATUS;
/// `MINIPORT_OID_REQUEST(MiniportAdapterContext, PNDIS_OID_REQUEST)`; also the type of
/// `MINIPORT_DIRECT_OID_REQUEST` and `MINIPORT_SYNCHRONOUS_OID_REQUEST`.
pub type MiniportOidRequestFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    OidRequest: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS;
/// `MINIPORT_SEND_NET_BUFFER_LISTS(ctx, NetBufferList, PortNumber, SendFlags)`.
pub type MiniportSendNetBufferListsFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    NetBufferList: *mut NET_BUFFER_LIST,
    PortNumber: NDIS_PORT_NUMBER,
    SendFlags: u32,
);
/// `MINIPORT_RETURN_NET_BUFFER_LISTS(ctx, NetBufferLists, ReturnFlags)`.
pub type MiniportReturnNetBufferListsFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    NetBufferLists: *mut NET_BUFFER_LIST,
    ReturnFlags: u32,
);
/// `MINIPORT_CANCEL_SEND(ctx, CancelId)`.
pub type MiniportCancelSendFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, CancelId: *mut c_void);
/// `MINIPORT_CHECK_FOR_HANG(ctx) -> BOOLEAN`.
pub type MiniportCheckForHangFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE) -> BOOLEAN;
/// `MINIPORT_RESET(ctx, PBOOLEAN AddressingReset)`.
pub type MiniportResetFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    AddressingReset: *mut BOOLEAN,
) -> NDIS_STATUS;
/// `MINIPORT_DEVICE_PNP_EVENT_NOTIFY(ctx, PNET_DEVICE_PNP_EVENT)`.
pub type MiniportDevicePnpEventNotifyFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, NetDevicePnPEvent: *mut c_void);
/// `MINIPORT_SHUTDOWN(ctx, ShutdownAction)`.
pub type MiniportShutdownFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    ShutdownAction: NDIS_SHUTDOWN_ACTION,
);
/// `MINIPORT_CANCEL_OID_REQUEST(ctx, RequestId)`; also `MINIPORT_CANCEL_DIRECT_OID_REQUEST`.
pub type MiniportCancelOidRequestFn =
    unsafe extern "win64" fn(MiniportAdapterContext: NDIS_HANDLE, RequestId: *mut c_void);

/// `MINIPORT_ISR(MiniportInterruptContext, PBOOLEAN QueueDefaultInterruptDpc, PULONG TargetProcessors)`.
pub type MiniportIsrFn = unsafe extern "win64" fn(
    MiniportInterruptContext: NDIS_HANDLE,
    QueueDefaultInterruptDpc: *mut BOOLEAN,
    TargetProcessors: *mut u32,
) -> BOOLEAN;
/// `MINIPORT_INTERRUPT_DPC(ctx, MiniportDpcContext, ReceiveThrottleParameters, NdisReserved2)`.
pub type MiniportInterruptDpcFn = unsafe extern "win64" fn(
    MiniportInterruptContext: NDIS_HANDLE,
    MiniportDpcContext: *mut c_void,
    ReceiveThrottleParameters: *mut c_void,
    NdisReserved2: *mut c_void,
);
/// `MINIPORT_DISABLE_INTERRUPT(ctx)` / `MINIPORT_ENABLE_INTERRUPT(ctx)`.
pub type MiniportInterruptControlFn =
    unsafe extern "win64" fn(MiniportInterruptContext: NDIS_HANDLE);
/// `MINIPORT_MESSAGE_INTERRUPT(ctx, MessageId, PBOOLEAN QueueDefaultInterruptDpc, PULONG TargetProcessors)`.
pub type MiniportMessageIsrFn = unsafe extern "win64" fn(
    MiniportInterruptContext: NDIS_HANDLE,
    MessageId: u32,
    QueueDefaultInterruptDpc: *mut BOOLEAN,
    TargetProcessors: *mut u32,
) -> BOOLEAN;
/// `MINIPORT_MESSAGE_INTERRUPT_DPC(ctx, MessageId, DpcContext, ReceiveThrottleParameters, NdisReserved2)`.
pub type MiniportMessageInterruptDpcFn = unsafe extern "win64" fn(
    MiniportInterruptContext: NDIS_HANDLE,
    MessageId: u32,
    MiniportDpcContext: *mut c_void,
    ReceiveThrottleParameters: *mut c_void,
    NdisReserved2: *mut c_void,
);
/// `MINIPORT_DISABLE_MESSAGE_INTERRUPT(ctx, MessageId)` / `MINIPORT_ENABLE_MESSAGE_INTERRUPT`.
pub type MiniportMessageInterruptControlFn =
    unsafe extern "win64" fn(MiniportInterruptContext: NDIS_HANDLE, MessageId: u32);

/// `MINIPORT_PROCESS_SG_LIST(PDEVICE_OBJECT, Reserved, PSCATTER_GATHER_LIST, Context)`.
pub type MiniportProcessSgListFn = unsafe extern "win64" fn(
    DeviceObject: *mut c_void,
    Reserved: *mut c_void,
    ScatterGatherList: *mut c_void,
    Context: *mut c_void,
);
/// `MINIPORT_ALLOCATE_SHARED_MEM_COMPLETE(ctx, VirtualAddress, PNDIS_PHYSICAL_ADDRESS, Length, Context)`.
pub type MiniportAllocateSharedMemCompleteFn = unsafe extern "win64" fn(
    MiniportAdapterContext: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    PhysicalAddress: *mut i64,
    Length: u32,
    Context: *mut c_void,
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;
    use core::ptr::null_mut;

    #[test]
    fn nullable_handler_is_pointer_sized() {
        assert_eq!(size_of::<Option<MiniportInitializeFn>>(), 8);
        assert_eq!(size_of::<Option<MiniportMessageIsrFn>>(), 8);
    }

    // A win64 handler defined and called on the (SysV) host: proves the typedefs carry the
    // calling convention themselves, which is what the guest kernel relies on.
    unsafe extern "win64" fn isr(
        ctx: NDIS_HANDLE,
        message_id: u32,
        queue_dpc: *mut BOOLEAN,
        _targets: *mut u32,
    ) -> BOOLEAN {
        // SAFETY: the test passes a valid pointer.
        unsafe { *queue_dpc = (message_id == 7 && ctx.is_null()) as BOOLEAN };
        1
    }

    #[test]
    fn win64_handler_callable_from_host() {
        let f: MiniportMessageIsrFn = isr;
        let mut queue = 0u8;
        // SAFETY: `isr` only writes through `queue_dpc`, which points to a live local.
        let claimed = unsafe { f(null_mut(), 7, &mut queue, null_mut()) };
        assert_eq!(claimed, 1);
        assert_eq!(queue, 1);
    }
}
