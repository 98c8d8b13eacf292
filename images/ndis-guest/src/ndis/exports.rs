//! The guest's export table: every function `rnic.sys` may import, by module and name. The
//! lookup rules (and their tests) are `guest_core::exports`.

use guest_core::exports::{first_missing_at_build, Export, ExportTable};

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

/// [`Export`] rows from `module: Name, Name = path, ...;` lists. The expansion also checks, when
/// the kernel is built, that the rows cover every import the ABI crate lists
/// ([`check_covers_abi`]).
macro_rules! exports {
    ($($module:literal: $($name:ident $(= $f:path)?),+;)+) => {{
        const NAMES: &[(&str, &str)] = &[$($(($module, stringify!($name))),+),+];
        const _: () = check_covers_abi(NAMES);
        [$($(Export {
            module: $module,
            name: stringify!($name),
            address: addr!($name $(, $f)?),
        }),+),+]
    }};
}

/// Every function the guest exports (addresses are known only at run time).
fn rows() -> [Export; 41] {
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
            NdisMPauseComplete = super::pause::NdisMPauseComplete,
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

/// The resolver the loader is given: `(module, name)` -> address of the export, or None when
/// the guest does not provide it. The rows are built once, not per import.
pub fn resolver() -> impl FnMut(&str, &str) -> Option<u64> {
    let rows = rows();
    move |module, name| ExportTable::new(&MODULES, &rows).resolve(module, name)
}

/// Fails the kernel's build (the expansion of `exports!` evaluates it) when `exported` lacks an
/// import listed by the ABI crate (the skeleton's, the NDK and NMR providers'). A check at every
/// boot cost about 28,000 emulated instructions (some 40 ms here).
const fn check_covers_abi(exported: &[(&str, &str)]) {
    if first_missing_at_build(exported, ndis_abi::SKELETON_IMPORTS).is_some() {
        panic!("the guest export table lacks an import of ndis_abi::SKELETON_IMPORTS");
    }
    if first_missing_at_build(exported, ndis_abi::NDK_PROVIDER_IMPORTS).is_some() {
        panic!("the guest export table lacks an import of ndis_abi::NDK_PROVIDER_IMPORTS");
    }
    if first_missing_at_build(exported, ndis_abi::NMR_PROVIDER_IMPORTS).is_some() {
        panic!("the guest export table lacks an import of ndis_abi::NMR_PROVIDER_IMPORTS");
    }
}
