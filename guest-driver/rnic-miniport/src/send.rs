//! The send path (netvmini's send side): MiniportSendNetBufferLists copies each NET_BUFFER
//! into its TX descriptor's bounce buffer and rings `TXQ_TAIL`; the DPC retires finished
//! descriptors and completes NBLs with NdisMSendNetBufferListsComplete.

use core::ffi::c_void;
use core::ptr::{null_mut, write_volatile};
use core::sync::atomic::Ordering;

use ndis_abi::*;
use rnic_contract::bar0::eth_db;

use crate::adapter::Adapter;
use crate::ethernet::*;
use crate::ffi::{self};
use crate::hw;
use crate::logic::ethring;

/// MiniportSendNetBufferLists. IRQL: <= DISPATCH_LEVEL. While Running, every frame goes to
/// the TX ring ([`crate::ethernet::send`]) and its NBL completes from the DPC once the device
/// has sent it; while Paused every NBL completes at once with `NDIS_STATUS_PAUSED`.
pub unsafe extern "win64" fn MiniportSendNetBufferLists(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _port: NDIS_PORT_NUMBER,
    send_flags: u32,
) {
    if nbls.is_null() {
        return;
    }
    let at_dispatch = send_flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0;
    // SAFETY: context is our adapter; `nbls` is a valid NDIS-owned chain linked by `Next`.
    unsafe {
        let a = context.cast::<Adapter>();
        if !(*a).paused.load(Ordering::Acquire) {
            send(a, nbls, at_dispatch);
            return;
        }
        let mut nbl = nbls;
        while !nbl.is_null() {
            (*nbl).Status = NDIS_STATUS_PAUSED;
            nbl = (*nbl).Next;
        }
        let complete_flags = if at_dispatch {
            NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
        ffi::NdisMSendNetBufferListsComplete((*a).miniport, nbls, complete_flags);
    }
}

/// MiniportCancelSend. IRQL: <= DISPATCH_LEVEL. Frames on the TX ring are already with the
/// device (it sends synchronously at the doorbell), so none can be cancelled; their NBLs
/// complete from the DPC.
pub unsafe extern "win64" fn MiniportCancelSend(_context: NDIS_HANDLE, _cancel_id: *mut c_void) {}

/// `MiniportReserved[0]` of an NBL the driver owns: for a send, its outstanding
/// NET_BUFFERs; for a receive indication, its buffer index.
///
/// # Safety
/// `nbl` is an NBL the driver owns.
pub(crate) unsafe fn pending_nbs(nbl: *mut NET_BUFFER_LIST) -> *mut usize {
    // SAFETY: MiniportReserved is the miniport's while it owns the NBL; a pointer slot holds
    // a usize.
    unsafe { (&raw mut (*nbl).MiniportReserved[0]).cast::<usize>() }
}

/// Copies the frame a NET_BUFFER describes (its MDL chain from `CurrentMdl` +
/// `CurrentMdlOffset`, `DataLength` bytes) into `dst`; false if the chain is shorter than
/// the frame or an MDL is not mapped.
///
/// # Safety
/// `nb` is a valid NET_BUFFER whose MDLs are valid; `dst` holds `DataLength` bytes.
pub(crate) unsafe fn copy_frame(nb: *const NET_BUFFER, dst: *mut u8) -> bool {
    // SAFETY: guaranteed by the caller; every read stays inside an MDL's ByteCount.
    unsafe {
        let mut left = (*nb).DataLength as usize;
        let mut mdl = (*nb).CurrentMdl;
        let mut offset = (*nb).CurrentMdlOffset as usize;
        let mut out = dst;
        while left > 0 {
            if mdl.is_null() || (*mdl).MappedSystemVa.is_null() {
                return false;
            }
            let count = (*mdl).ByteCount as usize;
            if offset < count {
                let n = (count - offset).min(left);
                core::ptr::copy_nonoverlapping(
                    (*mdl).MappedSystemVa.cast::<u8>().add(offset),
                    out,
                    n,
                );
                out = out.add(n);
                left -= n;
            }
            offset = 0;
            mdl = (*mdl).Next;
        }
        true
    }
}

/// Queues every NET_BUFFER of `nbl` on the TX ring (copying each frame into its descriptor's
/// bounce buffer); returns how many were queued, or the status to fail the NBL with if none
/// could be. A partly queued NBL carries the failure in its Status.
///
/// # Safety
/// Called with the TX lock held; `nbl` is a valid NBL the driver owns; rings live.
pub(crate) unsafe fn queue_nbl(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST) -> usize {
    // SAFETY: slots are < RING_ENTRIES, so descriptor and buffer accesses stay inside their
    // allocations; lengths are checked against the bounce buffer size.
    unsafe {
        let mut queued = 0;
        let mut nb = net_buffer_list_first_nb(nbl);
        while !nb.is_null() {
            let len = (*nb).DataLength as usize;
            if !ethring::tx_length_ok(len, (*a).mtu) || len > ethring::RX_BUFFER_BYTES as usize {
                (*nbl).Status = NDIS_STATUS_INVALID_LENGTH;
            } else if !(*a).eth.tx_ring.has_room() {
                (*nbl).Status = NDIS_STATUS_RESOURCES;
            } else {
                let slot = (*a).eth.tx_ring.tail;
                let offset = slot as usize * ethring::RX_BUFFER_BYTES as usize;
                if copy_frame(nb, (*a).eth.tx_buffers.va.add(offset)) {
                    let d = ethring::encode_tx(
                        (*a).eth.tx_buffers.pa as u64 + offset as u64,
                        len as u16,
                    );
                    let at = (*a)
                        .eth
                        .tx
                        .va
                        .add(slot as usize * rnic_contract::eth::DESC_SIZE)
                        .cast::<u32>();
                    for (i, w) in d.iter().enumerate() {
                        write_volatile(at.add(i), *w);
                    }
                    (*a).eth.tx_owner[slot as usize] = nbl;
                    (*a).eth.tx_ring.produce();
                    queued += 1;
                } else {
                    (*nbl).Status = NDIS_STATUS_INVALID_DATA;
                }
            }
            nb = (*nb).Next;
        }
        queued
    }
}

/// Completes one NBL to NDIS with its Status.
///
/// # Safety
/// The driver owns `nbl` and gives it back exactly once.
pub(crate) unsafe fn complete_nbl(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST, at_dispatch: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*nbl).Next = null_mut();
        let flags = if at_dispatch {
            NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
        ffi::NdisMSendNetBufferListsComplete((*a).miniport, nbl, flags);
    }
}

/// The send half of MiniportSendNetBufferLists (IRQL <= DISPATCH_LEVEL) for a Running
/// adapter: queues every NET_BUFFER and rings `TXQ_TAIL` once; NBLs none of whose buffers
/// could be queued complete at once, the others from the DPC ([`reap_tx`]).
///
/// # Safety
/// `a` is a live, Running adapter; `nbls` a valid chain NDIS hands over.
pub unsafe fn send(a: *mut Adapter, nbls: *mut NET_BUFFER_LIST, at_dispatch: bool) {
    // SAFETY: the TX lock serializes senders; the chain is ours until completed.
    unsafe {
        while (*a)
            .tx_lock
            .swap(true, core::sync::atomic::Ordering::Acquire)
        {
            core::hint::spin_loop();
        }
        let mut nbl = nbls;
        let mut any = false;
        let mut failed: *mut NET_BUFFER_LIST = null_mut();
        while !nbl.is_null() {
            let next = (*nbl).Next;
            (*nbl).Status = NDIS_STATUS_SUCCESS;
            // Counted before the descriptors are visible to the device or the DPC.
            *pending_nbs(nbl) = usize::MAX;
            let queued = queue_nbl(a, nbl);
            if queued == 0 {
                (*nbl).Next = failed;
                failed = nbl;
                (*a).stats[2].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            } else {
                *pending_nbs(nbl) = queued;
                any = true;
            }
            nbl = next;
        }
        if any {
            core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
            hw::wr(a, doorbell(eth_db::TXQ_TAIL), (*a).eth.tx_ring.tail);
        }
        (*a).tx_lock
            .store(false, core::sync::atomic::Ordering::Release);
        while !failed.is_null() {
            let next = (*failed).Next;
            complete_nbl(a, failed, at_dispatch);
            failed = next;
        }
    }
}

/// Retires every TX descriptor the device finished (DPC, DISPATCH_LEVEL): counts it, and
/// completes its NBL once all of the NBL's buffers are done.
///
/// # Safety
/// `a` is a live adapter; called only from the message DPC (the single TX consumer).
pub unsafe fn reap_tx(a: *mut Adapter) {
    // SAFETY: head < RING_ENTRIES; owners were recorded by `send` before the doorbell.
    unsafe {
        if (*a).eth.tx.va.is_null() {
            return;
        }
        loop {
            let ring = (*a).eth.tx_ring;
            if ring.in_flight() == 0 {
                return;
            }
            let slot = ring.head as usize;
            let at = (*a)
                .eth
                .tx
                .va
                .add(slot * rnic_contract::eth::DESC_SIZE)
                .cast::<u32>();
            let d = core::array::from_fn(|i| core::ptr::read_volatile(at.add(i)));
            let Some(sent) = ethring::tx_done(d) else {
                return;
            };
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            write_volatile(at.add(2), 0);
            (*a).eth.tx_ring.consume();
            let nbl = core::mem::replace(&mut (*a).eth.tx_owner[slot], null_mut());
            (*a).stats[if sent { 0 } else { 2 }]
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            if nbl.is_null() {
                continue;
            }
            if !sent {
                (*nbl).Status = NDIS_STATUS_FAILURE;
            }
            let left = pending_nbs(nbl);
            *left -= 1;
            if *left == 0 {
                complete_nbl(a, nbl, true);
            }
        }
    }
}
