//! Imports of rnic.sys, resolved at load time against ndis.sys and ntoskrnl.exe (raw-dylib: no
//! import library needed). Keep in sync with `ndis_abi::SKELETON_IMPORTS`; `signature_checks`
//! makes the compiler compare each declaration with the ABI crate's typedef, and
//! artifact-check compares the built image's import table with the list. The netio.sys (NMR)
//! imports are declared next to their only user, `crate::nmr`.

use core::ffi::{c_char, c_void};

use ndis_abi::*;

#[link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim")]
extern "win64" {
    pub fn NdisMRegisterMiniportDriver(
        DriverObject: *mut DRIVER_OBJECT,
        RegistryPath: *mut UNICODE_STRING,
        MiniportDriverContext: NDIS_HANDLE,
        MiniportDriverCharacteristics: *mut NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
        NdisMiniportDriverHandle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisMDeregisterMiniportDriver(NdisMiniportDriverHandle: NDIS_HANDLE);
    pub fn NdisMSetMiniportAttributes(
        MiniportAdapterHandle: NDIS_HANDLE,
        MiniportAttributes: *mut NDIS_MINIPORT_ADAPTER_ATTRIBUTES,
    ) -> NDIS_STATUS;
    pub fn NdisMMapIoSpace(
        VirtualAddress: *mut *mut c_void,
        MiniportAdapterHandle: NDIS_HANDLE,
        PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
        Length: u32,
    ) -> NDIS_STATUS;
    pub fn NdisMUnmapIoSpace(
        MiniportAdapterHandle: NDIS_HANDLE,
        VirtualAddress: *mut c_void,
        Length: u32,
    );
    pub fn NdisMRegisterInterruptEx(
        MiniportAdapterHandle: NDIS_HANDLE,
        MiniportInterruptContext: NDIS_HANDLE,
        MiniportInterruptCharacteristics: *mut NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
        NdisInterruptHandle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisMDeregisterInterruptEx(NdisInterruptHandle: NDIS_HANDLE);
    pub fn NdisMRegisterScatterGatherDma(
        MiniportAdapterHandle: NDIS_HANDLE,
        DmaDescription: *mut NDIS_SG_DMA_DESCRIPTION,
        NdisMiniportDmaHandle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisMDeregisterScatterGatherDma(NdisMiniportDmaHandle: NDIS_HANDLE);
    pub fn NdisMAllocateSharedMemory(
        MiniportAdapterHandle: NDIS_HANDLE,
        Length: u32,
        Cached: BOOLEAN,
        VirtualAddress: *mut *mut c_void,
        PhysicalAddress: *mut NDIS_PHYSICAL_ADDRESS,
    );
    pub fn NdisMFreeSharedMemory(
        MiniportAdapterHandle: NDIS_HANDLE,
        Length: u32,
        Cached: BOOLEAN,
        VirtualAddress: *mut c_void,
        PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
    );
    pub fn NdisAllocateMemoryWithTagPriority(
        NdisHandle: NDIS_HANDLE,
        Length: u32,
        Tag: u32,
        Priority: EX_POOL_PRIORITY,
    ) -> *mut c_void;
    pub fn NdisFreeMemory(VirtualAddress: *mut c_void, Length: u32, MemoryFlags: u32);
    pub fn NdisInitializeEvent(Event: *mut NDIS_EVENT);
    pub fn NdisSetEvent(Event: *mut NDIS_EVENT);
    pub fn NdisResetEvent(Event: *mut NDIS_EVENT);
    pub fn NdisWaitEvent(Event: *mut NDIS_EVENT, MsToWait: u32) -> BOOLEAN;
    pub fn NdisMSendNetBufferListsComplete(
        MiniportAdapterHandle: NDIS_HANDLE,
        NetBufferList: *mut NET_BUFFER_LIST,
        SendCompleteFlags: u32,
    );
    pub fn NdisMOidRequestComplete(
        MiniportAdapterHandle: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        Status: NDIS_STATUS,
    );
    pub fn NdisAllocateNetBufferListPool(
        NdisHandle: NDIS_HANDLE,
        Parameters: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    pub fn NdisFreeNetBufferListPool(PoolHandle: NDIS_HANDLE);
    pub fn NdisAllocateNetBufferAndNetBufferList(
        PoolHandle: NDIS_HANDLE,
        ContextSize: u16,
        ContextBackFill: u16,
        MdlChain: *mut MDL,
        DataOffset: u32,
        DataLength: usize,
    ) -> *mut NET_BUFFER_LIST;
    pub fn NdisFreeNetBufferList(NetBufferList: *mut NET_BUFFER_LIST);
    pub fn NdisAllocateMdl(
        NdisHandle: NDIS_HANDLE,
        VirtualAddress: *mut c_void,
        Length: u32,
    ) -> *mut MDL;
    pub fn NdisFreeMdl(Mdl: *mut MDL);
    pub fn NdisMAllocateNetBufferSGList(
        NdisMiniportDmaHandle: NDIS_HANDLE,
        NetBuffer: *mut NET_BUFFER,
        Context: *mut c_void,
        Flags: u32,
        ScatterGatherListBuffer: *mut c_void,
        ScatterGatherListBufferSize: u32,
    ) -> NDIS_STATUS;
    pub fn NdisMFreeNetBufferSGList(
        NdisMiniportDmaHandle: NDIS_HANDLE,
        ScatterGatherList: *mut SCATTER_GATHER_LIST,
        NetBuffer: *mut NET_BUFFER,
    );
    pub fn NdisMIndicateReceiveNetBufferLists(
        MiniportAdapterHandle: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        PortNumber: NDIS_PORT_NUMBER,
        NumberOfNetBufferLists: u32,
        ReceiveFlags: u32,
    );
    pub fn NdisSetOptionalHandlers(
        NdisHandle: NDIS_HANDLE,
        OptionalHandlers: *mut NDIS_DRIVER_OPTIONAL_HANDLERS,
    ) -> NDIS_STATUS;
    pub fn NdisMNetPnPEvent(
        MiniportAdapterHandle: NDIS_HANDLE,
        NetPnPEventNotification: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS;
    pub fn NdisAllocateIoWorkItem(NdisObjectHandle: NDIS_HANDLE) -> NDIS_HANDLE;
    pub fn NdisQueueIoWorkItem(
        NdisIoWorkItemHandle: NDIS_HANDLE,
        Routine: NDIS_IO_WORKITEM_ROUTINE,
        WorkItemContext: *mut c_void,
    );
    pub fn NdisFreeIoWorkItem(NdisIoWorkItemHandle: NDIS_HANDLE);
    pub fn NdisMIndicateStatusEx(
        MiniportAdapterHandle: NDIS_HANDLE,
        StatusIndication: *mut NDIS_STATUS_INDICATION,
    );
    pub fn NdisMResetComplete(
        MiniportAdapterHandle: NDIS_HANDLE,
        Status: NDIS_STATUS,
        AddressingReset: BOOLEAN,
    );
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "win64" {
    pub fn DbgPrint(Format: *const c_char, ...) -> u32;
}

/// Never called: only makes the compiler check every declaration above against the typedef of
/// the ABI crate (a mismatch is a type error here).
#[allow(dead_code)]
fn signature_checks() {
    let _: NdisMRegisterMiniportDriverFn = NdisMRegisterMiniportDriver;
    let _: NdisMDeregisterMiniportDriverFn = NdisMDeregisterMiniportDriver;
    let _: NdisMSetMiniportAttributesFn = NdisMSetMiniportAttributes;
    let _: NdisMMapIoSpaceFn = NdisMMapIoSpace;
    let _: NdisMUnmapIoSpaceFn = NdisMUnmapIoSpace;
    let _: NdisMRegisterInterruptExFn = NdisMRegisterInterruptEx;
    let _: NdisMDeregisterInterruptExFn = NdisMDeregisterInterruptEx;
    let _: NdisMRegisterScatterGatherDmaFn = NdisMRegisterScatterGatherDma;
    let _: NdisMDeregisterScatterGatherDmaFn = NdisMDeregisterScatterGatherDma;
    let _: NdisMAllocateSharedMemoryFn = NdisMAllocateSharedMemory;
    let _: NdisMFreeSharedMemoryFn = NdisMFreeSharedMemory;
    let _: NdisAllocateMemoryWithTagPriorityFn = NdisAllocateMemoryWithTagPriority;
    let _: NdisFreeMemoryFn = NdisFreeMemory;
    let _: NdisInitializeEventFn = NdisInitializeEvent;
    let _: NdisSetEventFn = NdisSetEvent;
    let _: NdisResetEventFn = NdisResetEvent;
    let _: NdisWaitEventFn = NdisWaitEvent;
    let _: NdisMSendNetBufferListsCompleteFn = NdisMSendNetBufferListsComplete;
    let _: NdisMOidRequestCompleteFn = NdisMOidRequestComplete;
    let _: NdisAllocateNetBufferListPoolFn = NdisAllocateNetBufferListPool;
    let _: NdisFreeNetBufferListPoolFn = NdisFreeNetBufferListPool;
    let _: NdisAllocateNetBufferAndNetBufferListFn = NdisAllocateNetBufferAndNetBufferList;
    let _: NdisFreeNetBufferListFn = NdisFreeNetBufferList;
    let _: NdisAllocateMdlFn = NdisAllocateMdl;
    let _: NdisFreeMdlFn = NdisFreeMdl;
    let _: NdisMIndicateReceiveNetBufferListsFn = NdisMIndicateReceiveNetBufferLists;
    let _: NdisMAllocateNetBufferSGListFn = NdisMAllocateNetBufferSGList;
    let _: NdisMFreeNetBufferSGListFn = NdisMFreeNetBufferSGList;
    let _: NdisSetOptionalHandlersFn = NdisSetOptionalHandlers;
    let _: NdisMNetPnPEventFn = NdisMNetPnPEvent;
    let _: NdisAllocateIoWorkItemFn = NdisAllocateIoWorkItem;
    let _: NdisQueueIoWorkItemFn = NdisQueueIoWorkItem;
    let _: NdisFreeIoWorkItemFn = NdisFreeIoWorkItem;
    let _: NdisMIndicateStatusExFn = NdisMIndicateStatusEx;
    let _: NdisMResetCompleteFn = NdisMResetComplete;
    let _: DbgPrintFn = DbgPrint;
}

/// `DbgPrint("rnic: " fmt, args...)`. Arguments must already have their C types (`u32` for
/// `%u %x %d`, `u64` for `%llx`, pointers for `%p`, `*const c_char` for `%s`).
macro_rules! log {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        // SAFETY: the format is a NUL-terminated literal and each call site passes arguments of
        // the C types its conversions expect; DbgPrint is callable at any IRQL <= DIRQL.
        #[allow(unused_unsafe)]
        unsafe {
            $crate::ffi::DbgPrint(concat!("rnic: ", $fmt, "\0").as_ptr().cast() $(, $arg)*);
        }
    }};
}
pub(crate) use log;
