//! The guest's export table: every function `rnic.sys` may import, by module and name.

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

/// `(module, function, address)` rows from `module: Name, Name = path, ...;` lists.
macro_rules! exports {
    ($($module:literal: $($name:ident $(= $f:path)?),+;)+) => {
        [$($(($module, stringify!($name), addr!($name $(, $f)?))),+),+]
    };
}

/// `(module, function, address)`.
fn table() -> [(&'static str, &'static str, u64); 19] {
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
            NdisMSendNetBufferListsComplete;
        "ntoskrnl.exe":
            DbgPrint = super::dbgprint::guest_DbgPrint;
    }
}

/// Modules whose exports the guest provides (module names match case-insensitively).
pub const MODULES: [&str; 4] = ["ndis.sys", "ntoskrnl.exe", "netio.sys", "hal.dll"];

/// Address of `module!name`, or None when the guest does not provide it.
pub fn resolve(module: &str, name: &str) -> Option<u64> {
    if !MODULES.iter().any(|m| m.eq_ignore_ascii_case(module)) {
        return None;
    }
    table()
        .iter()
        .find(|(m, n, _)| *n == name && m.eq_ignore_ascii_case(module))
        .map(|e| e.2)
}

/// Every import the ABI crate lists is exported (checked once at boot).
pub fn check_covers_abi() -> Result<(), (&'static str, &'static str)> {
    for &(m, n) in ndis_abi::SKELETON_IMPORTS {
        if resolve(m, n).is_none() {
            return Err((m, n));
        }
    }
    Ok(())
}
