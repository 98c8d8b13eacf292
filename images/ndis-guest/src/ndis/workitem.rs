//! NDIS I/O work items: how a driver gets from an OID handler or a DPC to PASSIVE_LEVEL (for
//! example to raise the NDK state's NdisMNetPnPEvent outside the OID handler). Queued items
//! run at PASSIVE_LEVEL, one at a time, in queue order, whenever the guest waits
//! ([`super::interrupt::wait_until`]), as Windows' system worker threads would.
#![allow(non_snake_case)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

use ndis_abi::*;

use super::contract::{export, refuse, require_irql};
use super::{driver_handle, index_of, COOKIES, DISPATCH_LEVEL, IRQL, PASSIVE_LEVEL};
use crate::sync::IrqLock;

/// Work items allocated and not freed (handle -> queued), and the queue.
struct WorkItems {
    allocated: BTreeMap<u64, bool>,
    queue: VecDeque<(u64, NDIS_IO_WORKITEM_ROUTINE, u64)>,
}

static ITEMS: IrqLock<WorkItems> = IrqLock::new(WorkItems {
    allocated: BTreeMap::new(),
    queue: VecDeque::new(),
});

/// Set while a work item runs (work items do not nest).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Runs every queued work item at PASSIVE_LEVEL (no-op above PASSIVE_LEVEL or inside a work
/// item).
pub fn run_queued() {
    if IRQL.load(Ordering::Relaxed) != PASSIVE_LEVEL || RUNNING.swap(true, Ordering::Acquire) {
        return;
    }
    loop {
        let next = {
            let mut w = ITEMS.lock();
            let next = w.queue.pop_front();
            if let Some((h, _, _)) = next {
                w.allocated.insert(h, false);
            }
            next
        };
        let Some((handle, routine, ctx)) = next else {
            break;
        };
        // SAFETY: the driver queued this routine with this context and work item, which it
        // may not free while the item is queued (NdisFreeIoWorkItem checks that).
        unsafe { routine(ctx as *mut c_void, handle as NDIS_HANDLE) };
    }
    RUNNING.store(false, Ordering::Release);
}

/// Work items still allocated (each a leak after halt).
pub fn leaks() -> usize {
    ITEMS.lock().allocated.len()
}

/// Forgets every work item (after the leaks were reported).
pub fn reset() {
    let mut w = ITEMS.lock();
    w.allocated = BTreeMap::new();
    w.queue = VecDeque::new();
}

const ITEM_SIZE: usize = 16;

/// `NdisAllocateIoWorkItem(NdisObjectHandle)`: a work item for the driver or adapter handle.
pub unsafe extern "win64" fn NdisAllocateIoWorkItem(NdisObjectHandle: NDIS_HANDLE) -> NDIS_HANDLE {
    const F: &str = "NdisAllocateIoWorkItem";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        if index_of(&COOKIES.adapter, NdisObjectHandle).is_none()
            && NdisObjectHandle != driver_handle()
        {
            return refuse(
                F,
                format!("{NdisObjectHandle:p} is neither the driver nor the adapter handle"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        super::lowres::allocation(F)?;
        let layout = core::alloc::Layout::from_size_align(ITEM_SIZE, 16)
            .map_err(|_| NDIS_STATUS_RESOURCES)?;
        // SAFETY: non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return Err(NDIS_STATUS_RESOURCES);
        }
        ITEMS.lock().allocated.insert(p as u64, false);
        Ok(p as NDIS_HANDLE)
    })
}

/// `NdisQueueIoWorkItem(handle, Routine, Context)`: the routine runs later at PASSIVE_LEVEL.
pub unsafe extern "win64" fn NdisQueueIoWorkItem(
    NdisIoWorkItemHandle: NDIS_HANDLE,
    Routine: Option<NDIS_IO_WORKITEM_ROUTINE>,
    WorkItemContext: *mut c_void,
) {
    const F: &str = "NdisQueueIoWorkItem";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let Some(routine) = Routine else {
            return refuse(F, "Routine is NULL", NDIS_STATUS_INVALID_PARAMETER);
        };
        let h = NdisIoWorkItemHandle as u64;
        let mut w = ITEMS.lock();
        match w.allocated.get(&h) {
            None => {
                drop(w);
                refuse(
                    F,
                    format!("{h:#x} is not a work item from NdisAllocateIoWorkItem"),
                    NDIS_STATUS_INVALID_PARAMETER,
                )
            }
            Some(true) => {
                drop(w);
                refuse(
                    F,
                    format!("work item {h:#x} queued again before it ran"),
                    NDIS_STATUS_FAILURE,
                )
            }
            Some(false) => {
                w.allocated.insert(h, true);
                w.queue.push_back((h, routine, WorkItemContext as u64));
                Ok(())
            }
        }
    })
}

/// `NdisFreeIoWorkItem(handle)`: frees a work item that is not queued.
pub unsafe extern "win64" fn NdisFreeIoWorkItem(NdisIoWorkItemHandle: NDIS_HANDLE) {
    const F: &str = "NdisFreeIoWorkItem";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let h = NdisIoWorkItemHandle as u64;
        let mut w = ITEMS.lock();
        match w.allocated.get(&h).copied() {
            None => {
                drop(w);
                refuse(
                    F,
                    format!("{h:#x} is not an allocated work item (freed twice?)"),
                    NDIS_STATUS_INVALID_PARAMETER,
                )
            }
            Some(true) => {
                drop(w);
                refuse(
                    F,
                    format!("work item {h:#x} freed while queued"),
                    NDIS_STATUS_FAILURE,
                )
            }
            Some(false) => {
                w.allocated.remove(&h);
                drop(w);
                let layout = core::alloc::Layout::from_size_align(ITEM_SIZE, 16)
                    .map_err(|_| NDIS_STATUS_RESOURCES)?;
                // SAFETY: allocated by NdisAllocateIoWorkItem with this layout, not queued.
                unsafe { alloc::alloc::dealloc(h as *mut u8, layout) };
                Ok(())
            }
        }
    })
}
