//! Typedefs of every function `rnic.sys` imports, and [`SKELETON_IMPORTS`], the exact import
//! list. The guest implements each of these with the matching typedef (`extern "win64"`).

use core::ffi::{c_char, c_void};

use crate::attributes::NDIS_MINIPORT_ADAPTER_ATTRIBUTES;
use crate::characteristics::NDIS_MINIPORT_DRIVER_CHARACTERISTICS;
use crate::dma::NDIS_SG_DMA_DESCRIPTION;
use crate::interrupt::NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS;
use crate::nbl::NET_BUFFER_LIST;
use crate::ndis_ndk::{
    NDIS_DRIVER_OPTIONAL_HANDLERS, NDIS_IO_WORKITEM_ROUTINE, NET_PNP_EVENT_NOTIFICATION,
};
use crate::netbuf::{MDL, NET_BUFFER, NET_BUFFER_LIST_POOL_PARAMETERS, SCATTER_GATHER_LIST};
use crate::oid::NDIS_OID_REQUEST;
use crate::status::NDIS_STATUS;
use crate::types::{
    BOOLEAN, EX_POOL_PRIORITY, NDIS_HANDLE, NDIS_PHYSICAL_ADDRESS, NDIS_PORT_NUMBER,
};
use crate::wdm::{DRIVER_OBJECT, NDIS_EVENT, UNICODE_STRING};

/// Module name of NDIS's exports in an import table.
pub const NDIS_SYS: &str = "ndis.sys";
/// Module name of the kernel's exports in an import table.
pub const NTOSKRNL_EXE: &str = "ntoskrnl.exe";

/// `(module, function)` for every import of the skeleton `rnic.sys`, in no particular order.
/// `artifact-check` verifies the built image imports exactly these; the guest must export them.
pub const SKELETON_IMPORTS: &[(&str, &str)] = &[
    (NDIS_SYS, "NdisMRegisterMiniportDriver"),
    (NDIS_SYS, "NdisMDeregisterMiniportDriver"),
    (NDIS_SYS, "NdisMSetMiniportAttributes"),
    (NDIS_SYS, "NdisMMapIoSpace"),
    (NDIS_SYS, "NdisMUnmapIoSpace"),
    (NDIS_SYS, "NdisMRegisterInterruptEx"),
    (NDIS_SYS, "NdisMDeregisterInterruptEx"),
    (NDIS_SYS, "NdisMRegisterScatterGatherDma"),
    (NDIS_SYS, "NdisMDeregisterScatterGatherDma"),
    (NDIS_SYS, "NdisMAllocateSharedMemory"),
    (NDIS_SYS, "NdisMFreeSharedMemory"),
    (NDIS_SYS, "NdisAllocateMemoryWithTagPriority"),
    (NDIS_SYS, "NdisFreeMemory"),
    (NDIS_SYS, "NdisInitializeEvent"),
    (NDIS_SYS, "NdisSetEvent"),
    (NDIS_SYS, "NdisResetEvent"),
    (NDIS_SYS, "NdisWaitEvent"),
    (NDIS_SYS, "NdisMSendNetBufferListsComplete"),
    (NDIS_SYS, "NdisMOidRequestComplete"),
    (NDIS_SYS, "NdisMPauseComplete"),
    (NDIS_SYS, "NdisAllocateNetBufferListPool"),
    (NDIS_SYS, "NdisFreeNetBufferListPool"),
    (NDIS_SYS, "NdisAllocateNetBufferAndNetBufferList"),
    (NDIS_SYS, "NdisFreeNetBufferList"),
    (NDIS_SYS, "NdisAllocateMdl"),
    (NDIS_SYS, "NdisFreeMdl"),
    (NDIS_SYS, "NdisMIndicateReceiveNetBufferLists"),
    (NDIS_SYS, "NdisMAllocateNetBufferSGList"),
    (NDIS_SYS, "NdisMFreeNetBufferSGList"),
    (NDIS_SYS, "NdisSetOptionalHandlers"),
    (NDIS_SYS, "NdisMNetPnPEvent"),
    (NDIS_SYS, "NdisAllocateIoWorkItem"),
    (NDIS_SYS, "NdisQueueIoWorkItem"),
    (NDIS_SYS, "NdisFreeIoWorkItem"),
    (NDIS_SYS, "NdisMIndicateStatusEx"),
    (NDIS_SYS, "NdisMResetComplete"),
    (NTOSKRNL_EXE, "DbgPrint"),
    (crate::nmr::NETIO_SYS, "NmrRegisterProvider"),
    (crate::nmr::NETIO_SYS, "NmrDeregisterProvider"),
    (
        crate::nmr::NETIO_SYS,
        "NmrWaitForProviderDeregisterComplete",
    ),
    (crate::nmr::NETIO_SYS, "NmrProviderDetachClientComplete"),
];

/// `(module, function)` of the imports the NDK provider adds to the skeleton (all of them are
/// also in [`SKELETON_IMPORTS`]): registration
/// (`NdisSetOptionalHandlers`), the enable/disable announcement (`NdisMNetPnPEvent`, PASSIVE_LEVEL,
/// so it is sent from an NDIS I/O work item) and that work item. Every name is exported by the
/// real ndis.sys (artifact-check verifies it against mingw-w64's import library); the guest
/// must export them too.
pub const NDK_PROVIDER_IMPORTS: &[(&str, &str)] = &[
    (NDIS_SYS, "NdisSetOptionalHandlers"),
    (NDIS_SYS, "NdisMNetPnPEvent"),
    (NDIS_SYS, "NdisAllocateIoWorkItem"),
    (NDIS_SYS, "NdisQueueIoWorkItem"),
    (NDIS_SYS, "NdisFreeIoWorkItem"),
];

/// `NDIS_STATUS NdisMRegisterMiniportDriver(PDRIVER_OBJECT, PUNICODE_STRING RegistryPath,
/// NDIS_HANDLE MiniportDriverContext, PNDIS_MINIPORT_DRIVER_CHARACTERISTICS, PNDIS_HANDLE)`.
/// `MiniportSetOptions` is called synchronously from inside this call.
pub type NdisMRegisterMiniportDriverFn = unsafe extern "win64" fn(
    DriverObject: *mut DRIVER_OBJECT,
    RegistryPath: *mut UNICODE_STRING,
    MiniportDriverContext: NDIS_HANDLE,
    MiniportDriverCharacteristics: *mut NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    NdisMiniportDriverHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS;
/// `VOID NdisMDeregisterMiniportDriver(NDIS_HANDLE NdisMiniportDriverHandle)`.
pub type NdisMDeregisterMiniportDriverFn =
    unsafe extern "win64" fn(NdisMiniportDriverHandle: NDIS_HANDLE);
/// `NDIS_STATUS NdisMSetMiniportAttributes(NDIS_HANDLE MiniportAdapterHandle,
/// PNDIS_MINIPORT_ADAPTER_ATTRIBUTES)`.
pub type NdisMSetMiniportAttributesFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportAttributes: *mut NDIS_MINIPORT_ADAPTER_ATTRIBUTES,
) -> NDIS_STATUS;
/// `NDIS_STATUS NdisMMapIoSpace(PVOID* VirtualAddress, NDIS_HANDLE MiniportAdapterHandle,
/// NDIS_PHYSICAL_ADDRESS PhysicalAddress (by value), UINT Length)`.
pub type NdisMMapIoSpaceFn = unsafe extern "win64" fn(
    VirtualAddress: *mut *mut c_void,
    MiniportAdapterHandle: NDIS_HANDLE,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
    Length: u32,
) -> NDIS_STATUS;
/// `VOID NdisMUnmapIoSpace(NDIS_HANDLE MiniportAdapterHandle, PVOID VirtualAddress, UINT Length)`.
pub type NdisMUnmapIoSpaceFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    Length: u32,
);
/// `NDIS_STATUS NdisMRegisterInterruptEx(NDIS_HANDLE MiniportAdapterHandle, NDIS_HANDLE
/// MiniportInterruptContext, PNDIS_MINIPORT_INTERRUPT_CHARACTERISTICS, PNDIS_HANDLE
/// NdisInterruptHandle)`.
pub type NdisMRegisterInterruptExFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportInterruptContext: NDIS_HANDLE,
    MiniportInterruptCharacteristics: *mut NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
    NdisInterruptHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS;
/// `VOID NdisMDeregisterInterruptEx(NDIS_HANDLE NdisInterruptHandle)`.
pub type NdisMDeregisterInterruptExFn = unsafe extern "win64" fn(NdisInterruptHandle: NDIS_HANDLE);
/// `NDIS_STATUS NdisMRegisterScatterGatherDma(NDIS_HANDLE MiniportAdapterHandle,
/// PNDIS_SG_DMA_DESCRIPTION, PNDIS_HANDLE NdisMiniportDmaHandle)`.
pub type NdisMRegisterScatterGatherDmaFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    DmaDescription: *mut NDIS_SG_DMA_DESCRIPTION,
    NdisMiniportDmaHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS;
/// `VOID NdisMDeregisterScatterGatherDma(NDIS_HANDLE NdisMiniportDmaHandle)`.
pub type NdisMDeregisterScatterGatherDmaFn =
    unsafe extern "win64" fn(NdisMiniportDmaHandle: NDIS_HANDLE);
/// `VOID NdisMAllocateSharedMemory(NDIS_HANDLE MiniportAdapterHandle, ULONG Length, BOOLEAN
/// Cached, PVOID* VirtualAddress, PNDIS_PHYSICAL_ADDRESS PhysicalAddress)`. On failure
/// `*VirtualAddress` is NULL.
pub type NdisMAllocateSharedMemoryFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut *mut c_void,
    PhysicalAddress: *mut NDIS_PHYSICAL_ADDRESS,
);
/// `VOID NdisMFreeSharedMemory(NDIS_HANDLE MiniportAdapterHandle, ULONG Length, BOOLEAN Cached,
/// PVOID VirtualAddress, NDIS_PHYSICAL_ADDRESS PhysicalAddress (by value))`.
pub type NdisMFreeSharedMemoryFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut c_void,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
);
/// `PVOID NdisAllocateMemoryWithTagPriority(NDIS_HANDLE NdisHandle, UINT Length, ULONG Tag,
/// EX_POOL_PRIORITY Priority)`. NULL on failure; memory is not zeroed.
pub type NdisAllocateMemoryWithTagPriorityFn = unsafe extern "win64" fn(
    NdisHandle: NDIS_HANDLE,
    Length: u32,
    Tag: u32,
    Priority: EX_POOL_PRIORITY,
) -> *mut c_void;
/// `VOID NdisFreeMemory(PVOID VirtualAddress, UINT Length, UINT MemoryFlags)` (flags 0 for memory
/// from NdisAllocateMemoryWithTagPriority).
pub type NdisFreeMemoryFn =
    unsafe extern "win64" fn(VirtualAddress: *mut c_void, Length: u32, MemoryFlags: u32);
/// `VOID NdisInitializeEvent(PNDIS_EVENT)`: notification event, initially not signalled.
pub type NdisInitializeEventFn = unsafe extern "win64" fn(Event: *mut NDIS_EVENT);
/// `VOID NdisSetEvent(PNDIS_EVENT)`; callable at IRQL <= DISPATCH_LEVEL.
pub type NdisSetEventFn = unsafe extern "win64" fn(Event: *mut NDIS_EVENT);
/// `VOID NdisResetEvent(PNDIS_EVENT)`.
pub type NdisResetEventFn = unsafe extern "win64" fn(Event: *mut NDIS_EVENT);
/// `BOOLEAN NdisWaitEvent(PNDIS_EVENT, UINT MsToWait)`: TRUE if signalled, FALSE on timeout;
/// `MsToWait == 0` waits forever. PASSIVE_LEVEL only.
pub type NdisWaitEventFn =
    unsafe extern "win64" fn(Event: *mut NDIS_EVENT, MsToWait: u32) -> BOOLEAN;
/// `VOID NdisMSendNetBufferListsComplete(NDIS_HANDLE MiniportAdapterHandle, PNET_BUFFER_LIST,
/// ULONG SendCompleteFlags)`: returns a chain (linked by `Next`) of sent NBLs to NDIS.
pub type NdisMSendNetBufferListsCompleteFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetBufferList: *mut NET_BUFFER_LIST,
    SendCompleteFlags: u32,
);
/// `VOID NdisMPauseComplete(NDIS_HANDLE MiniportAdapterHandle)`: ends a pause MiniportPause
/// returned `NDIS_STATUS_PENDING` for, exactly once, at IRQL <= DISPATCH_LEVEL, once every
/// send the miniport held has completed and every receive indication has returned.
pub type NdisMPauseCompleteFn = unsafe extern "win64" fn(MiniportAdapterHandle: NDIS_HANDLE);
/// `VOID NdisMRestartComplete(NDIS_HANDLE MiniportAdapterHandle, NDIS_STATUS Status)`: ends a
/// restart MiniportRestart returned `NDIS_STATUS_PENDING` for, exactly once, at IRQL <=
/// DISPATCH_LEVEL.
pub type NdisMRestartCompleteFn =
    unsafe extern "win64" fn(MiniportAdapterHandle: NDIS_HANDLE, Status: NDIS_STATUS);
/// `VOID NdisMOidRequestComplete(NDIS_HANDLE MiniportAdapterHandle, PNDIS_OID_REQUEST,
/// NDIS_STATUS)`: completes an OID request the miniport returned `NDIS_STATUS_PENDING` for,
/// exactly once, at IRQL <= DISPATCH_LEVEL.
pub type NdisMOidRequestCompleteFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    OidRequest: *mut NDIS_OID_REQUEST,
    Status: NDIS_STATUS,
);
/// `NDIS_HANDLE NdisAllocateNetBufferListPool(NDIS_HANDLE NdisHandle,
/// PNET_BUFFER_LIST_POOL_PARAMETERS)`: NULL on failure. IRQL <= DISPATCH_LEVEL.
pub type NdisAllocateNetBufferListPoolFn = unsafe extern "win64" fn(
    NdisHandle: NDIS_HANDLE,
    Parameters: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
) -> NDIS_HANDLE;
/// `VOID NdisFreeNetBufferListPool(NDIS_HANDLE PoolHandle)`: every NBL must be freed first.
pub type NdisFreeNetBufferListPoolFn = unsafe extern "win64" fn(PoolHandle: NDIS_HANDLE);
/// `PNET_BUFFER_LIST NdisAllocateNetBufferAndNetBufferList(NDIS_HANDLE PoolHandle,
/// USHORT ContextSize, USHORT ContextBackFill, PMDL MdlChain, ULONG DataOffset,
/// SIZE_T DataLength)`: an NBL with one NET_BUFFER over `MdlChain`; NULL on failure.
pub type NdisAllocateNetBufferAndNetBufferListFn = unsafe extern "win64" fn(
    PoolHandle: NDIS_HANDLE,
    ContextSize: u16,
    ContextBackFill: u16,
    MdlChain: *mut MDL,
    DataOffset: u32,
    DataLength: usize,
)
    -> *mut NET_BUFFER_LIST;
/// `VOID NdisFreeNetBufferList(PNET_BUFFER_LIST)`: frees an NBL (and its preallocated
/// NET_BUFFER) from NdisAllocateNetBufferAndNetBufferList.
pub type NdisFreeNetBufferListFn = unsafe extern "win64" fn(NetBufferList: *mut NET_BUFFER_LIST);
/// `PMDL NdisAllocateMdl(NDIS_HANDLE NdisHandle, PVOID VirtualAddress, UINT Length)`: an MDL
/// for nonpaged memory; NULL on failure.
pub type NdisAllocateMdlFn = unsafe extern "win64" fn(
    NdisHandle: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    Length: u32,
) -> *mut MDL;
/// `VOID NdisFreeMdl(PMDL Mdl)`: frees an MDL from NdisAllocateMdl.
pub type NdisFreeMdlFn = unsafe extern "win64" fn(Mdl: *mut MDL);
/// `VOID NdisMIndicateReceiveNetBufferLists(NDIS_HANDLE MiniportAdapterHandle,
/// PNET_BUFFER_LIST, NDIS_PORT_NUMBER, ULONG NumberOfNetBufferLists, ULONG ReceiveFlags)`:
/// hands received frames up; NDIS gives them back through MiniportReturnNetBufferLists.
pub type NdisMIndicateReceiveNetBufferListsFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetBufferLists: *mut NET_BUFFER_LIST,
    PortNumber: NDIS_PORT_NUMBER,
    NumberOfNetBufferLists: u32,
    ReceiveFlags: u32,
);
/// `NDIS_STATUS NdisMAllocateNetBufferSGList(NDIS_HANDLE NdisMiniportDmaHandle, PNET_BUFFER,
/// PVOID Context, ULONG Flags, PVOID ScatterGatherListBuffer, ULONG
/// ScatterGatherListBufferSize)`: maps a NET_BUFFER for DMA and calls the miniport's
/// MiniportProcessSGList with the list and `Context` (possibly before returning). IRQL
/// DISPATCH_LEVEL.
pub type NdisMAllocateNetBufferSGListFn = unsafe extern "win64" fn(
    NdisMiniportDmaHandle: NDIS_HANDLE,
    NetBuffer: *mut NET_BUFFER,
    Context: *mut c_void,
    Flags: u32,
    ScatterGatherListBuffer: *mut c_void,
    ScatterGatherListBufferSize: u32,
) -> NDIS_STATUS;
/// `VOID NdisMFreeNetBufferSGList(NDIS_HANDLE NdisMiniportDmaHandle, PSCATTER_GATHER_LIST,
/// PNET_BUFFER)`: releases a list from NdisMAllocateNetBufferSGList once the DMA is done.
pub type NdisMFreeNetBufferSGListFn = unsafe extern "win64" fn(
    NdisMiniportDmaHandle: NDIS_HANDLE,
    ScatterGatherList: *mut SCATTER_GATHER_LIST,
    NetBuffer: *mut NET_BUFFER,
);
/// `NDIS_STATUS NdisSetOptionalHandlers(NDIS_HANDLE NdisHandle, PNDIS_DRIVER_OPTIONAL_HANDLERS)`,
/// PASSIVE_LEVEL: from `MiniportSetOptions` with the driver handle it was given, registers the
/// optional handlers the union's header names (here the NDK provider characteristics).
pub type NdisSetOptionalHandlersFn = unsafe extern "win64" fn(
    NdisHandle: NDIS_HANDLE,
    OptionalHandlers: *mut NDIS_DRIVER_OPTIONAL_HANDLERS,
) -> NDIS_STATUS;
/// `NDIS_STATUS NdisMNetPnPEvent(NDIS_HANDLE MiniportAdapterHandle,
/// PNET_PNP_EVENT_NOTIFICATION)`, PASSIVE_LEVEL: the miniport raises a PnP event (NDK enabled or
/// disabled) to NDIS and the protocols above; returns when they have all handled it.
pub type NdisMNetPnPEventFn = unsafe extern "win64" fn(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetPnPEventNotification: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS;
/// `NDIS_HANDLE NdisAllocateIoWorkItem(NDIS_HANDLE NdisObjectHandle)`, <= DISPATCH_LEVEL: a
/// work item for the adapter (`NdisObjectHandle` is the miniport adapter handle); NULL when out
/// of memory.
pub type NdisAllocateIoWorkItemFn =
    unsafe extern "win64" fn(NdisObjectHandle: NDIS_HANDLE) -> NDIS_HANDLE;
/// `VOID NdisQueueIoWorkItem(NDIS_HANDLE NdisIoWorkItemHandle, NDIS_IO_WORKITEM_ROUTINE Routine,
/// PVOID WorkItemContext)`, <= DISPATCH_LEVEL: runs `Routine` once at PASSIVE_LEVEL.
pub type NdisQueueIoWorkItemFn = unsafe extern "win64" fn(
    NdisIoWorkItemHandle: NDIS_HANDLE,
    Routine: NDIS_IO_WORKITEM_ROUTINE,
    WorkItemContext: *mut c_void,
);
/// `VOID NdisFreeIoWorkItem(NDIS_HANDLE NdisIoWorkItemHandle)`, <= DISPATCH_LEVEL: frees a work
/// item that is not queued.
pub type NdisFreeIoWorkItemFn = unsafe extern "win64" fn(NdisIoWorkItemHandle: NDIS_HANDLE);
/// `ULONG DbgPrint(PCSTR Format, ...)` (C varargs, Microsoft x64 convention: the first four
/// arguments in RCX, RDX, R8, R9, the rest on the stack above 32 bytes of home space). The driver
/// only uses `%s %d %u %x %lx %llx %p` and plain text.
pub type DbgPrintFn = unsafe extern "win64" fn(Format: *const c_char, ...) -> u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_list_has_no_duplicates_and_known_modules() {
        for (i, a) in SKELETON_IMPORTS.iter().enumerate() {
            assert!(
                a.0 == NDIS_SYS || a.0 == NTOSKRNL_EXE || a.0 == crate::nmr::NETIO_SYS,
                "unexpected module {}",
                a.0
            );
            for b in &SKELETON_IMPORTS[i + 1..] {
                assert_ne!(a, b, "duplicate import");
            }
        }
        assert_eq!(SKELETON_IMPORTS.len(), 41);
        assert!(SKELETON_IMPORTS.contains(&(NDIS_SYS, "NdisMPauseComplete")));
        assert!(SKELETON_IMPORTS.contains(&(NTOSKRNL_EXE, "DbgPrint")));
        for import in crate::nmr::NMR_PROVIDER_IMPORTS {
            assert!(SKELETON_IMPORTS.contains(import), "{import:?}");
        }
    }

    #[test]
    fn ndk_provider_imports_are_new_ndis_names() {
        for (i, a) in NDK_PROVIDER_IMPORTS.iter().enumerate() {
            assert_eq!(a.0, NDIS_SYS);
            for b in &NDK_PROVIDER_IMPORTS[i + 1..] {
                assert_ne!(a, b, "duplicate import");
            }
        }
        assert_eq!(NDK_PROVIDER_IMPORTS.len(), 5);
        // The driver imports them: they are part of the exact list.
        for i in NDK_PROVIDER_IMPORTS {
            assert!(
                SKELETON_IMPORTS.contains(i),
                "{i:?} missing from SKELETON_IMPORTS"
            );
        }
    }

    #[test]
    fn import_typedefs_are_pointer_sized() {
        assert_eq!(core::mem::size_of::<NdisMRegisterMiniportDriverFn>(), 8);
        assert_eq!(core::mem::size_of::<Option<DbgPrintFn>>(), 8);
    }

    // A varargs win64 function is callable through the typedef: checks the typedef is usable the
    // way the guest's dispatch uses it (the guest implements DbgPrint in its own way).
    unsafe extern "win64" fn wait(_e: *mut NDIS_EVENT, ms: u32) -> BOOLEAN {
        (ms == 2000) as BOOLEAN
    }

    #[test]
    fn wait_event_typedef_callable() {
        let f: NdisWaitEventFn = wait;
        let mut e = NDIS_EVENT::default();
        // SAFETY: `wait` ignores its pointer argument.
        assert_eq!(unsafe { f(&mut e, 2000) }, 1);
    }
}
