//! The receive path (netvmini's receive side): the DPC indicates each frame the device
//! delivered with NdisMIndicateReceiveNetBufferLists; MiniportReturnNetBufferLists gives the
//! buffer back to the RX ring.

use core::ptr::{null_mut, write_volatile};

use ndis_abi::*;
use rnic_contract::bar0::eth_db;

use crate::adapter::Adapter;
use crate::ethernet::*;
use crate::ffi::{self, log};
use crate::hw;
use crate::logic::ethring;

use crate::send::pending_nbs;

/// MiniportReturnNetBufferLists. IRQL: <= DISPATCH_LEVEL. NDIS gives back receive NBLs;
/// their buffers go back on the RX ring.
pub unsafe extern "win64" fn MiniportReturnNetBufferLists(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _return_flags: u32,
) {
    // SAFETY: context is our adapter; `nbls` are NBLs it indicated.
    unsafe { return_nbls(context.cast::<Adapter>(), nbls) };
}

/// Hands receive buffer `buffer` to the device in the RX descriptor at the ring's tail (the
/// caller rings `RXQ_TAIL`).
///
/// # Safety
/// The ring has room, `buffer` < RING_ENTRIES and is not posted; the caller is the only
/// producer (InitializeEx, or ReturnNetBufferLists under `rx_lock`).
pub(crate) unsafe fn post_rx(a: *mut Adapter, buffer: u32) {
    // SAFETY: the slot is < RING_ENTRIES, so the descriptor lies inside the RX ring.
    unsafe {
        let slot = (*a).eth.rx_ring.tail;
        let pa =
            (*a).eth.rx_buffers.pa as u64 + u64::from(buffer) * u64::from(ethring::RX_BUFFER_BYTES);
        let d = ethring::encode_rx(pa, ethring::RX_BUFFER_BYTES as u16);
        let at = (*a)
            .eth
            .rx
            .va
            .add(slot as usize * rnic_contract::eth::DESC_SIZE)
            .cast::<u32>();
        for (i, w) in d.iter().enumerate() {
            write_volatile(at.add(i), *w);
        }
        (*a).eth.rx_slot_buffer[slot as usize] = buffer;
        (*a).eth.rx_ring.produce();
    }
}

/// Indicates every frame the device delivered (DPC, DISPATCH_LEVEL), one NBL per frame; a
/// descriptor whose length the device got wrong is counted as a receive error and its
/// buffer reposted, as is any frame that arrives while the adapter is Pausing or Paused
/// (dropped). Each indication is counted by the data path until [`return_nbls`] gives its
/// buffer back.
///
/// # Safety
/// `a` is live; called only from the message DPC (the single RX consumer).
pub unsafe fn reap_rx(a: *mut Adapter) {
    // SAFETY: head < RING_ENTRIES; buffer indices were recorded by post_rx.
    unsafe {
        if (*a).eth.rx.va.is_null() || (*a).eth.pool.is_null() {
            return;
        }
        while (*a).eth.rx_ring.in_flight() != 0 {
            let slot = (*a).eth.rx_ring.head as usize;
            let at = (*a)
                .eth
                .rx
                .va
                .add(slot * rnic_contract::eth::DESC_SIZE)
                .cast::<u32>();
            let d = core::array::from_fn(|i| core::ptr::read_volatile(at.add(i)));
            if !ethring::rx_descriptor_done(d) {
                return;
            }
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            (*a).eth.rx_ring.consume();
            let buffer = (*a).eth.rx_slot_buffer[slot];
            let Some(frame) = ethring::rx_done(d) else {
                (*a).stats[3].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                repost(a, buffer);
                continue;
            };
            if !(*a).data_path.begin() {
                // No indications while Pausing or Paused: the frame is dropped, the buffer
                // reposted.
                repost(a, buffer);
                continue;
            }
            let nbl = (*a).eth.rx_nbl[buffer as usize];
            let nb = net_buffer_list_first_nb(nbl);
            (*nb).DataLength = u64::from(frame.len);
            (*nb).DataOffset = 0;
            (*nb).CurrentMdlOffset = 0;
            (*nbl).Next = null_mut();
            (*nbl).Status = NDIS_STATUS_SUCCESS;
            (*nbl).SourceHandle = (*a).miniport;
            *pending_nbs(nbl) = buffer as usize;
            (*a).stats[1].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            ffi::NdisMIndicateReceiveNetBufferLists(
                (*a).miniport,
                nbl,
                0,
                1,
                NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
            );
        }
    }
}

/// Gives one receive buffer back to the device and rings `RXQ_TAIL`.
///
/// # Safety
/// `buffer` is a receive buffer the driver owns (not posted).
pub(crate) unsafe fn repost(a: *mut Adapter, buffer: u32) {
    // SAFETY: `rx_lock` makes the caller the only producer.
    unsafe {
        while (*a)
            .rx_lock
            .swap(true, core::sync::atomic::Ordering::Acquire)
        {
            core::hint::spin_loop();
        }
        post_rx(a, buffer);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        hw::wr(a, doorbell(eth_db::RXQ_TAIL), (*a).eth.rx_ring.tail);
        (*a).rx_lock
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// MiniportReturnNetBufferLists' work (IRQL <= DISPATCH_LEVEL): each returned NBL's buffer
/// goes back on the RX ring, and the last indication of a pending pause completes it.
///
/// # Safety
/// `nbls` is a chain of NBLs this driver indicated.
pub unsafe fn return_nbls(a: *mut Adapter, nbls: *mut NET_BUFFER_LIST) {
    // SAFETY: the buffer index was stored by reap_rx; it is checked before use.
    unsafe {
        let mut nbl = nbls;
        while !nbl.is_null() {
            let next = (*nbl).Next;
            let buffer = *pending_nbs(nbl);
            if buffer < ethring::RING_ENTRIES as usize && (*a).eth.rx_nbl[buffer] == nbl {
                // No longer indicated: a second return of it is refused below.
                *pending_nbs(nbl) = usize::MAX;
                repost(a, buffer as u32);
                crate::pause::nbl_finished(a);
            } else {
                log!(
                    "ReturnNetBufferLists: %p is not a receive NBL this adapter indicated (ignored)\n",
                    nbl
                );
            }
            nbl = next;
        }
    }
}
