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
/// the TX ring ([`send`]) and its NBL completes from the DPC once the device has sent it;
/// while Pausing or Paused every NBL completes at once with `NDIS_STATUS_PAUSED`.
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
        send(a, nbls, at_dispatch);
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

/// `NET_BUFFER.MiniportReserved` while the driver owns a NET_BUFFER: the adapter, the
/// owning NBL and the NET_BUFFER's scatter/gather list.
const NB_ADAPTER: usize = 0;
const NB_NBL: usize = 1;
const NB_SGL: usize = 2;

/// One NET_BUFFER of `nbl` ends without being sent (`status`): counted as a send error, and
/// the NBL completes if it was its last outstanding buffer.
///
/// # Safety
/// The driver owns `nbl` and the buffer was counted in its outstanding buffers.
unsafe fn nb_failed(
    a: *mut Adapter,
    nbl: *mut NET_BUFFER_LIST,
    status: NDIS_STATUS,
    at_dispatch: bool,
) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*nbl).Status = status;
        (*a).stats[2].fetch_add(1, Ordering::Relaxed);
        nb_done(a, nbl, at_dispatch);
    }
}

/// One NET_BUFFER of `nbl` is finished: completes the NBL after its last one.
///
/// # Safety
/// As for [`nb_failed`].
unsafe fn nb_done(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST, at_dispatch: bool) {
    // SAFETY: guaranteed by the caller; the count was set by `send` before any buffer was
    // handed on.
    unsafe {
        let left = pending_nbs(nbl);
        *left -= 1;
        if *left == 0 {
            complete_nbl(a, nbl, at_dispatch);
        }
    }
}

/// Completes one NBL the data path counted to NDIS with its Status; the last one of a
/// pending pause completes the pause.
///
/// # Safety
/// The driver owns `nbl`, counted it with `data_path.begin()`, and gives it back exactly once.
pub(crate) unsafe fn complete_nbl(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST, at_dispatch: bool) {
    // SAFETY: guaranteed by the caller; the NBL is NDIS's again before the pause can end.
    unsafe {
        give_back(a, nbl, at_dispatch);
        crate::pause::nbl_finished(a);
    }
}

/// Hands one NBL back to NDIS (NdisMSendNetBufferListsComplete) with its Status, the
/// completion flags saying whether the caller runs at DISPATCH_LEVEL.
///
/// # Safety
/// The driver owns `nbl` and gives it back exactly once.
unsafe fn give_back(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST, at_dispatch: bool) {
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

/// MiniportSendNetBufferLists' work (IRQL <= DISPATCH_LEVEL): each NBL the data path takes
/// (the adapter is Running) has every NET_BUFFER mapped for DMA (NdisMAllocateNetBufferSGList),
/// queued on the TX ring by [`process_sg_list`], and completes from the DPC ([`reap_tx`]);
/// an NBL arriving while Pausing or Paused completes at once with `NDIS_STATUS_PAUSED`.
///
/// # Safety
/// `a` is a live adapter; `nbls` a valid chain NDIS hands over.
pub unsafe fn send(a: *mut Adapter, nbls: *mut NET_BUFFER_LIST, at_dispatch: bool) {
    // SAFETY: the chain is ours until completed; each NBL's `Next` and each NET_BUFFER's
    // `Next` are read before the buffer is handed on (after which it may complete).
    unsafe {
        let mut nbl = nbls;
        while !nbl.is_null() {
            let next = (*nbl).Next;
            (*nbl).Next = null_mut();
            if !(*a).data_path.begin() {
                (*nbl).Status = NDIS_STATUS_PAUSED;
                give_back(a, nbl, at_dispatch);
                nbl = next;
                continue;
            }
            if crate::reset::unavailable(a) {
                // A fatal device or a reset in progress: fail at once, never queue.
                (*nbl).Status = crate::reset::unavailable_status(a);
                complete_nbl(a, nbl, at_dispatch);
                nbl = next;
                continue;
            }
            (*nbl).Status = NDIS_STATUS_SUCCESS;
            let mut count = 0;
            let mut nb = net_buffer_list_first_nb(nbl);
            while !nb.is_null() {
                count += 1;
                nb = (*nb).Next;
            }
            if count == 0 {
                (*nbl).Status = NDIS_STATUS_INVALID_PARAMETER;
                complete_nbl(a, nbl, at_dispatch);
                nbl = next;
                continue;
            }
            // Counted before any buffer is handed on.
            *pending_nbs(nbl) = count;
            let mut nb = net_buffer_list_first_nb(nbl);
            while !nb.is_null() {
                let nb_next = (*nb).Next;
                (*nb).MiniportReserved[NB_ADAPTER] = a.cast();
                (*nb).MiniportReserved[NB_NBL] = nbl.cast();
                (*nb).MiniportReserved[NB_SGL] = null_mut();
                let status = if ethring::tx_length_ok((*nb).DataLength as usize, (*a).mtu) {
                    ffi::NdisMAllocateNetBufferSGList(
                        (*a).dma,
                        nb,
                        nb.cast(),
                        NDIS_SG_LIST_WRITE_TO_DEVICE,
                        null_mut(),
                        0,
                    )
                } else {
                    NDIS_STATUS_INVALID_LENGTH
                };
                if status != NDIS_STATUS_SUCCESS {
                    nb_failed(a, nbl, status, at_dispatch);
                }
                nb = nb_next;
            }
            nbl = next;
        }
    }
}

/// MiniportProcessSGList. IRQL: DISPATCH_LEVEL. The NET_BUFFER (`context`) is mapped: one
/// TX descriptor points straight at its data when the list is one piece (zero copy);
/// otherwise the frame is copied into the descriptor's bounce buffer (the device takes one
/// contiguous buffer per frame). Rings `TXQ_TAIL`.
///
/// # Safety
/// Called by NDIS with a list it built for a NET_BUFFER `send` handed to it.
pub(crate) unsafe extern "win64" fn process_sg_list(
    _device_object: *mut c_void,
    _reserved: *mut c_void,
    sgl: *mut c_void,
    context: *mut c_void,
) {
    // SAFETY: `context` is the NET_BUFFER `send` mapped, whose MiniportReserved it filled;
    // descriptor and bounce accesses stay inside their rings (slot < RING_ENTRIES).
    unsafe {
        let nb = context.cast::<NET_BUFFER>();
        let a = (*nb).MiniportReserved[NB_ADAPTER].cast::<Adapter>();
        let nbl = (*nb).MiniportReserved[NB_NBL].cast::<NET_BUFFER_LIST>();
        let sgl = sgl.cast::<SCATTER_GATHER_LIST>();
        (*nb).MiniportReserved[NB_SGL] = sgl.cast();
        let len = (*nb).DataLength as usize;
        while (*a).tx_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // Checked under `tx_lock`: a fatal device's ring is emptied by `abort_tx` under the same
        // lock, so a frame is either refused here or taken off the ring there.
        let unavailable = crate::reset::unavailable(a);
        if sgl.is_null() || !(*a).eth.tx_ring.has_room() || unavailable {
            (*a).tx_lock.store(false, Ordering::Release);
            if !sgl.is_null() {
                ffi::NdisMFreeNetBufferSGList((*a).dma, sgl, nb);
            }
            let status = if unavailable {
                crate::reset::unavailable_status(a)
            } else {
                NDIS_STATUS_RESOURCES
            };
            nb_failed(a, nbl, status, true);
            return;
        }
        let slot = (*a).eth.tx_ring.tail;
        let first = sgl
            .cast::<u8>()
            .add(SCATTER_GATHER_LIST_ELEMENTS_OFFSET)
            .cast::<SCATTER_GATHER_ELEMENT>();
        let address = if (*sgl).NumberOfElements == 1 && (*first).Length as usize >= len {
            (*first).Address as u64
        } else {
            let offset = slot as usize * ethring::RX_BUFFER_BYTES as usize;
            if len > ethring::RX_BUFFER_BYTES as usize
                || !copy_frame(nb, (*a).eth.tx_buffers.va.add(offset))
            {
                (*a).tx_lock.store(false, Ordering::Release);
                ffi::NdisMFreeNetBufferSGList((*a).dma, sgl, nb);
                nb_failed(a, nbl, NDIS_STATUS_INVALID_DATA, true);
                return;
            }
            (*a).eth.tx_buffers.pa as u64 + offset as u64
        };
        let d = ethring::encode_tx(address, len as u16);
        let at = (*a)
            .eth
            .tx
            .va
            .add(slot as usize * rnic_contract::eth::DESC_SIZE)
            .cast::<u32>();
        for (i, w) in d.iter().enumerate() {
            write_volatile(at.add(i), *w);
        }
        (*a).eth.tx_owner[slot as usize] = nb;
        (*a).eth.tx_ring.produce();
        core::sync::atomic::fence(Ordering::Release);
        hw::wr(a, doorbell(eth_db::TXQ_TAIL), (*a).eth.tx_ring.tail);
        (*a).tx_lock.store(false, Ordering::Release);
    }
}

/// Retires every TX descriptor the device finished (DPC, DISPATCH_LEVEL): counts it, releases
/// its scatter/gather list and completes its NBL once all of the NBL's buffers are done.
///
/// # Safety
/// `a` is a live adapter; called only from the message DPC (the single TX consumer).
pub unsafe fn reap_tx(a: *mut Adapter) {
    // SAFETY: head < RING_ENTRIES; owners were recorded by process_sg_list before the
    // doorbell.
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
            core::sync::atomic::fence(Ordering::Acquire);
            write_volatile(at.add(2), 0);
            (*a).eth.tx_ring.consume();
            let nb = core::mem::replace(&mut (*a).eth.tx_owner[slot], null_mut());
            if nb.is_null() {
                continue;
            }
            let nbl = (*nb).MiniportReserved[NB_NBL].cast::<NET_BUFFER_LIST>();
            let sgl = (*nb).MiniportReserved[NB_SGL].cast::<SCATTER_GATHER_LIST>();
            ffi::NdisMFreeNetBufferSGList((*a).dma, sgl, nb);
            if sent {
                (*a).stats[0].fetch_add(1, Ordering::Relaxed);
                nb_done(a, nbl, true);
            } else {
                nb_failed(a, nbl, NDIS_STATUS_FAILURE, true);
            }
        }
    }
}

/// Completes every frame still on the TX ring with `status` (a fatal device or a reset: the
/// device will never finish them), each NBL exactly once, and empties the ring's positions.
/// The NBLs complete after `tx_lock` is released (a completion may send again), with the
/// dispatch flag of the caller's IRQL (`at_dispatch`).
///
/// # Safety
/// `a` is live; the device no longer processes the TX ring (fatal or reset); IRQL <=
/// DISPATCH_LEVEL.
pub(crate) unsafe fn abort_tx(a: *mut Adapter, status: NDIS_STATUS, at_dispatch: bool) {
    // SAFETY: owners were recorded by process_sg_list; slots stay < RING_ENTRIES; `tx_lock`
    // keeps senders off the ring while it is emptied.
    unsafe {
        if (*a).eth.tx.va.is_null() {
            return;
        }
        let mut taken = [null_mut::<NET_BUFFER>(); ethring::RING_ENTRIES as usize];
        while (*a).tx_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let mut n = 0;
        while (*a).eth.tx_ring.in_flight() != 0 {
            let slot = (*a).eth.tx_ring.consume() as usize;
            let nb = core::mem::replace(&mut (*a).eth.tx_owner[slot], null_mut());
            if !nb.is_null() {
                taken[n] = nb;
                n += 1;
            }
        }
        (*a).tx_lock.store(false, Ordering::Release);
        for &nb in &taken[..n] {
            let nbl = (*nb).MiniportReserved[NB_NBL].cast::<NET_BUFFER_LIST>();
            let sgl = (*nb).MiniportReserved[NB_SGL].cast::<SCATTER_GATHER_LIST>();
            ffi::NdisMFreeNetBufferSGList((*a).dma, sgl, nb);
            nb_failed(a, nbl, status, at_dispatch);
        }
    }
}
