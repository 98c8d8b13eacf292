//! The guest's export table: every function `rnic.sys` may import, by module and name. The
//! lookup rules (and their tests) are `guest_core::exports`.

use guest_core::exports::{Export, ExportTable};

use super::api::*;

/// Address of an export: the function of that name, or the one given after `=`.
macro_rules! addr {
    ($name:ident) => {
        $name as *const () as u64
    };
    ($name:ident, $f:path) => {
        $f as *const () as u64
    };
}

/// [`Export`] rows from `module: Name, Name = path, ...;` lists.
macro_rules! exports {
    ($($module:literal: $($name:ident $(= $f:path)?),+;)+) => {
        [$($(Export {
            module: $module,
            name: stringify!($name),
            address: addr!($name $(, $f)?),
        }),+),+]
    };
}

/// Every function the guest exports (addresses are known only at run time).
fn rows() -> [Export; 40] {
    exports! {
        "ndis.sys":
            NdisMRegisterMiniportDriver,
            NdisMDeregisterMiniportDriver,
            NdisMSetMiniportAttributes,
            NdisMMapIoSpace,
            NdisMUnmapIoSpace,
            NdisMRegisterInterruptEx,
            NdisMDeregisterInterruptEx,
            NdisMRegisterScatterGatherDma,
            NdisMDeregisterScatterGatherDma,
            NdisMAllocateSharedMemory,
            NdisMFreeSharedMemory,
            NdisAllocateMemoryWithTagPriority,
            NdisFreeMemory,
            NdisInitializeEvent,
            NdisSetEvent,
            NdisResetEvent,
            NdisWaitEvent,
            NdisMSendNetBufferListsComplete,
            NdisMOidRequestComplete,
            NdisAllocateNetBufferListPool = super::netbuf::NdisAllocateNetBufferListPool,
            NdisFreeNetBufferListPool = super::netbuf::NdisFreeNetBufferListPool,
            NdisAllocateNetBufferAndNetBufferList = super::netbuf::NdisAllocateNetBufferAndNetBufferList,
            NdisFreeNetBufferList = super::netbuf::NdisFreeNetBufferList,
            NdisAllocateMdl = super::netbuf::NdisAllocateMdl,
            NdisFreeMdl = super::netbuf::NdisFreeMdl,
            NdisMIndicateReceiveNetBufferLists = super::netbuf::NdisMIndicateReceiveNetBufferLists,
            NdisMAllocateNetBufferSGList = super::netbuf::NdisMAllocateNetBufferSGList,
            NdisMFreeNetBufferSGList = super::netbuf::NdisMFreeNetBufferSGList,
            NdisSetOptionalHandlers = super::ndk::NdisSetOptionalHandlers,
            NdisMNetPnPEvent = super::ndk::NdisMNetPnPEvent,
            NdisAllocateIoWorkItem = super::workitem::NdisAllocateIoWorkItem,
            NdisQueueIoWorkItem = super::workitem::NdisQueueIoWorkItem,
            NdisFreeIoWorkItem = super::workitem::NdisFreeIoWorkItem,
            NdisMIndicateStatusEx = super::reset::NdisMIndicateStatusEx,
            NdisMResetComplete = super::reset::NdisMResetComplete;
        "ntoskrnl.exe":
            DbgPrint = super::dbgprint::guest_DbgPrint;
        "netio.sys":
            NmrRegisterProvider = super::nmr::NmrRegisterProvider,
            NmrDeregisterProvider = super::nmr::NmrDeregisterProvider,
            NmrWaitForProviderDeregisterComplete = super::nmr::NmrWaitForProviderDeregisterComplete,
            NmrProviderDetachClientComplete = super::nmr::NmrProviderDetachClientComplete;
    }
}

/// Modules whose exports the guest provides (module names match case-insensitively).
pub const MODULES: [&str; 4] = ["ndis.sys", "ntoskrnl.exe", "netio.sys", "hal.dll"];

/// Address of `module!name`, or None when the guest does not provide it: the resolver the
/// loader is given.
pub fn resolve(module: &str, name: &str) -> Option<u64> {
    let rows = rows();
    ExportTable::new(&MODULES, &rows).resolve(module, name)
}

/// Every import the ABI crate lists (the skeleton's and the NDK provider's) is exported
/// (checked once at boot).
pub fn check_covers_abi() -> Result<(), (&'static str, &'static str)> {
    let rows = rows();
    let table = ExportTable::new(&MODULES, &rows);
    match table
        .first_missing(ndis_abi::SKELETON_IMPORTS)
        .or_else(|| table.first_missing(ndis_abi::NDK_PROVIDER_IMPORTS))
        .or_else(|| table.first_missing(ndis_abi::NMR_PROVIDER_IMPORTS))
    {
        Some(missing) => Err(missing),
        None => Ok(()),
    }
}
