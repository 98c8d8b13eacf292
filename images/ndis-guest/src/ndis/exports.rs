//! The guest's export table: every function `rnic.sys` may import, by module and name.

use super::api::*;

macro_rules! addr {
    ($f:path) => {
        $f as *const () as u64
    };
}

/// `(module, function, address)`.
fn table() -> [(&'static str, &'static str, u64); 19] {
    [
        (
            "ndis.sys",
            "NdisMRegisterMiniportDriver",
            addr!(NdisMRegisterMiniportDriver),
        ),
        (
            "ndis.sys",
            "NdisMDeregisterMiniportDriver",
            addr!(NdisMDeregisterMiniportDriver),
        ),
        (
            "ndis.sys",
            "NdisMSetMiniportAttributes",
            addr!(NdisMSetMiniportAttributes),
        ),
        ("ndis.sys", "NdisMMapIoSpace", addr!(NdisMMapIoSpace)),
        ("ndis.sys", "NdisMUnmapIoSpace", addr!(NdisMUnmapIoSpace)),
        (
            "ndis.sys",
            "NdisMRegisterInterruptEx",
            addr!(NdisMRegisterInterruptEx),
        ),
        (
            "ndis.sys",
            "NdisMDeregisterInterruptEx",
            addr!(NdisMDeregisterInterruptEx),
        ),
        (
            "ndis.sys",
            "NdisMRegisterScatterGatherDma",
            addr!(NdisMRegisterScatterGatherDma),
        ),
        (
            "ndis.sys",
            "NdisMDeregisterScatterGatherDma",
            addr!(NdisMDeregisterScatterGatherDma),
        ),
        (
            "ndis.sys",
            "NdisMAllocateSharedMemory",
            addr!(NdisMAllocateSharedMemory),
        ),
        (
            "ndis.sys",
            "NdisMFreeSharedMemory",
            addr!(NdisMFreeSharedMemory),
        ),
        (
            "ndis.sys",
            "NdisAllocateMemoryWithTagPriority",
            addr!(NdisAllocateMemoryWithTagPriority),
        ),
        ("ndis.sys", "NdisFreeMemory", addr!(NdisFreeMemory)),
        (
            "ndis.sys",
            "NdisInitializeEvent",
            addr!(NdisInitializeEvent),
        ),
        ("ndis.sys", "NdisSetEvent", addr!(NdisSetEvent)),
        ("ndis.sys", "NdisResetEvent", addr!(NdisResetEvent)),
        ("ndis.sys", "NdisWaitEvent", addr!(NdisWaitEvent)),
        (
            "ndis.sys",
            "NdisMSendNetBufferListsComplete",
            addr!(NdisMSendNetBufferListsComplete),
        ),
        (
            "ntoskrnl.exe",
            "DbgPrint",
            addr!(super::dbgprint::guest_DbgPrint),
        ),
    ]
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
        .find(|(m, n, _)| m.eq_ignore_ascii_case(module) && *n == name)
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
