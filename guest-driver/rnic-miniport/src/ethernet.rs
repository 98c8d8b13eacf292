//! The Ethernet queues' hardware side (docs/device-spec.md §5.2-§5.4): the TX and RX rings in
//! shared memory, the receive buffers, `CREATE_TXQ`/`CREATE_RXQ` at initialization and
//! `DESTROY_TXQ`/`DESTROY_RXQ` at halt. Both queues signal MSI-X message 0 (the admin
//! vector), so the one message DPC serves them all. Runs at PASSIVE_LEVEL (InitializeEx,
//! HaltEx).

use core::ptr::{null_mut, write_volatile};

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::bar0::eth_db;

use crate::adapter::{self, Adapter};
use crate::ffi::{self, log};
use crate::logic::{self, ethring};

/// The queue id the driver uses for its one TX and its one RX queue.
const QUEUE: u16 = 0;
/// The MSI-X message both queues signal.
const VECTOR: u16 = 0;
/// Command id of the queue commands (waited for synchronously).
const QUEUE_COMMAND_ID: u16 = 3;
/// Bytes of the receive buffer area (one buffer per RX descriptor).
const RX_AREA_BYTES: u32 = ethring::RING_ENTRIES * ethring::RX_BUFFER_BYTES;
/// Bytes of the transmit bounce area (one frame buffer per TX descriptor, same size as a
/// receive buffer: the largest frame at the default MTU).
const TX_AREA_BYTES: u32 = ethring::RING_ENTRIES * ethring::RX_BUFFER_BYTES;

/// One shared-memory allocation: virtual and bus address (null / 0 until allocated).
#[derive(Clone, Copy)]
pub struct Shared {
    /// Virtual address, null if not allocated.
    pub va: *mut u8,
    /// Bus address.
    pub pa: NDIS_PHYSICAL_ADDRESS,
}

/// The Ethernet rings of one adapter.
#[derive(Clone, Copy)]
pub struct EthRings {
    /// TX descriptor ring.
    pub tx: Shared,
    /// RX descriptor ring.
    pub rx: Shared,
    /// Receive buffers, `RX_BUFFER_BYTES` each, buffer `i` for RX descriptor `i`.
    pub rx_buffers: Shared,
    /// The device has TX queue `QUEUE`.
    pub tx_created: bool,
    /// The device has RX queue `QUEUE`.
    pub rx_created: bool,
    /// Driver-side positions of the RX ring.
    pub rx_ring: ethring::Ring,
    /// Transmit frame buffers, one per TX descriptor.
    pub tx_buffers: Shared,
    /// Driver-side positions of the TX ring: `tail` moves only under `tx_lock` (senders),
    /// `head` only in the DPC.
    pub tx_ring: ethring::Ring,
    /// The NET_BUFFER_LIST each in-flight TX descriptor belongs to.
    pub tx_owner: [*mut NET_BUFFER_LIST; ethring::RING_ENTRIES as usize],
    /// The receive NBL pool (null until allocated).
    pub pool: NDIS_HANDLE,
    /// Per receive buffer: its MDL and its NBL (one NET_BUFFER over the MDL).
    pub rx_mdl: [*mut MDL; ethring::RING_ENTRIES as usize],
    /// Per receive buffer: the NBL indicated for it.
    pub rx_nbl: [*mut NET_BUFFER_LIST; ethring::RING_ENTRIES as usize],
    /// Per RX descriptor slot: the receive buffer it was posted with.
    pub rx_slot_buffer: [u32; ethring::RING_ENTRIES as usize],
}

/// BAR0 offset of a doorbell register of the driver's queue.
fn doorbell(register: u64) -> usize {
    (eth_db::ETH_BASE + eth_db::ETH_STRIDE * u64::from(QUEUE) + register) as usize
}

/// Runs one queue command; false (logged) unless the device accepted it.
///
/// # Safety
/// As for [`adapter::admin_wait`].
unsafe fn queue_command(a: *mut Adapter, op: u8, operands: &[u32; 14]) -> bool {
    // SAFETY: guaranteed by the caller.
    match unsafe { adapter::admin_wait(a, op, QUEUE_COMMAND_ID, operands) } {
        Some((status, _)) if status == logic::ADMIN_STATUS_SUCCESS => true,
        Some((status, _)) => {
            log!(
                "queue command %x failed: status %u\n",
                op as u32,
                status as u32
            );
            false
        }
        None => false,
    }
}

/// Allocates the rings and receive buffers, creates TX and RX queue 0 and posts every receive
/// buffer but one (a full ring keeps one slot free). Each resource is recorded in the context
/// at once, so teardown undoes a partial setup.
///
/// # Safety
/// `a` is a live context during InitializeEx, admin queue live, PASSIVE_LEVEL.
pub unsafe fn create_queues(a: *mut Adapter) -> NDIS_STATUS {
    // SAFETY: the allocations are checked before use and every descriptor written lies inside
    // the RX ring (index < RING_ENTRIES); BAR0 is mapped.
    unsafe {
        let ring_align = rnic_contract::eth::RING_ALIGN as i64;
        let Some((va, pa)) = adapter::alloc_ring(a, ethring::RING_BYTES, ring_align) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.tx = Shared { va, pa };
        let Some((va, pa)) = adapter::alloc_ring(a, ethring::RING_BYTES, ring_align) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.rx = Shared { va, pa };
        let Some((va, pa)) = adapter::alloc_ring(a, RX_AREA_BYTES, 64) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.rx_buffers = Shared { va, pa };
        let Some((va, pa)) = adapter::alloc_ring(a, TX_AREA_BYTES, 64) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.tx_buffers = Shared { va, pa };
        (*a).eth.tx_ring = ethring::Ring::new(ethring::RING_ENTRIES);

        let entries = ethring::RING_ENTRIES;
        let tx_ops = ethring::create_queue_operands((*a).eth.tx.pa as u64, entries, VECTOR, QUEUE);
        if !queue_command(a, opcode::CREATE_TXQ, &tx_ops) {
            return NDIS_STATUS_FAILURE;
        }
        (*a).eth.tx_created = true;
        let rx_ops = ethring::create_queue_operands((*a).eth.rx.pa as u64, entries, VECTOR, QUEUE);
        if !queue_command(a, opcode::CREATE_RXQ, &rx_ops) {
            return NDIS_STATUS_FAILURE;
        }
        (*a).eth.rx_created = true;

        let status = allocate_receive_nbls(a);
        if status != NDIS_STATUS_SUCCESS {
            return status;
        }
        (*a).eth.rx_ring = ethring::Ring::new(entries);
        let mut buffer = 0;
        while (*a).eth.rx_ring.has_room() {
            post_rx(a, buffer);
            buffer += 1;
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        adapter::wr(a, doorbell(eth_db::RXQ_TAIL), (*a).eth.rx_ring.tail);
        log!(
            "Ethernet queues live: TX %u and RX %u, %u descriptors each, %u receive buffers posted\n",
            QUEUE as u32,
            QUEUE as u32,
            entries,
            (*a).eth.rx_ring.in_flight()
        );
        NDIS_STATUS_SUCCESS
    }
}

/// One NBL pool, and per receive buffer an MDL and an NBL over it (freed by [`free_rings`]).
///
/// # Safety
/// `a` is live, its receive buffers allocated; PASSIVE_LEVEL.
unsafe fn allocate_receive_nbls(a: *mut Adapter) -> NDIS_STATUS {
    // SAFETY: each allocation is checked and recorded before the next; buffer addresses stay
    // inside the receive area.
    unsafe {
        let mut params = NET_BUFFER_LIST_POOL_PARAMETERS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_DEFAULT,
                NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
                NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            ),
            ProtocolId: NDIS_PROTOCOL_ID_DEFAULT,
            fAllocateNetBuffer: TRUE,
            ContextSize: 0,
            PoolTag: pool_tag(*b"rnRx"),
            DataSize: 0,
        };
        let pool = ffi::NdisAllocateNetBufferListPool((*a).miniport, &mut params);
        if pool.is_null() {
            log!("NdisAllocateNetBufferListPool failed\n");
            return NDIS_STATUS_RESOURCES;
        }
        (*a).eth.pool = pool;
        for i in 0..ethring::RING_ENTRIES as usize {
            let va = (*a)
                .eth
                .rx_buffers
                .va
                .add(i * ethring::RX_BUFFER_BYTES as usize);
            let mdl = ffi::NdisAllocateMdl((*a).miniport, va.cast(), ethring::RX_BUFFER_BYTES);
            if mdl.is_null() {
                log!("NdisAllocateMdl failed\n");
                return NDIS_STATUS_RESOURCES;
            }
            (*a).eth.rx_mdl[i] = mdl;
            let nbl = ffi::NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, 0);
            if nbl.is_null() {
                log!("NdisAllocateNetBufferAndNetBufferList failed\n");
                return NDIS_STATUS_RESOURCES;
            }
            (*a).eth.rx_nbl[i] = nbl;
        }
        NDIS_STATUS_SUCCESS
    }
}

/// Hands receive buffer `buffer` to the device in the RX descriptor at the ring's tail (the
/// caller rings `RXQ_TAIL`).
///
/// # Safety
/// The ring has room, `buffer` < RING_ENTRIES and is not posted; the caller is the only
/// producer (InitializeEx, or ReturnNetBufferLists under `rx_lock`).
unsafe fn post_rx(a: *mut Adapter, buffer: u32) {
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
/// buffer reposted, as is any frame that arrives while the adapter is Paused (dropped). Buffers come back through [`return_nbls`].
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
            if (*a).paused.load(core::sync::atomic::Ordering::Acquire) {
                // No indications while Paused: the frame is dropped, the buffer reposted.
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
unsafe fn repost(a: *mut Adapter, buffer: u32) {
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
        adapter::wr(a, doorbell(eth_db::RXQ_TAIL), (*a).eth.rx_ring.tail);
        (*a).rx_lock
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// MiniportReturnNetBufferLists' work (IRQL <= DISPATCH_LEVEL): each returned NBL's buffer
/// goes back on the RX ring.
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
                repost(a, buffer as u32);
            } else {
                log!(
                    "ReturnNetBufferLists: %p is not a receive NBL of this adapter\n",
                    nbl
                );
            }
            nbl = next;
        }
    }
}

/// Destroys the queues the device has (HaltEx, PASSIVE_LEVEL, before teardown), so the
/// device stops using the rings before they are freed.
///
/// # Safety
/// `a` is a live context with its admin queue live.
pub unsafe fn destroy_queues(a: *mut Adapter) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let mut handle = [0u32; 14];
        handle[0] = u32::from(QUEUE);
        if (*a).eth.rx_created && queue_command(a, opcode::DESTROY_RXQ, &handle) {
            (*a).eth.rx_created = false;
        }
        if (*a).eth.tx_created && queue_command(a, opcode::DESTROY_TXQ, &handle) {
            (*a).eth.tx_created = false;
        }
        if !(*a).eth.tx_created && !(*a).eth.rx_created {
            log!("Ethernet queues destroyed\n");
        }
    }
}

/// Frees the rings and buffers (teardown, after the device was stopped).
///
/// # Safety
/// The device no longer uses the rings (queues destroyed or the device disabled).
pub unsafe fn free_rings(a: *mut Adapter) {
    // SAFETY: each allocation is freed once, with the length it was allocated with.
    unsafe {
        let miniport = (*a).miniport;
        for i in 0..ethring::RING_ENTRIES as usize {
            if !(*a).eth.rx_nbl[i].is_null() {
                ffi::NdisFreeNetBufferList((*a).eth.rx_nbl[i]);
                (*a).eth.rx_nbl[i] = null_mut();
            }
            if !(*a).eth.rx_mdl[i].is_null() {
                ffi::NdisFreeMdl((*a).eth.rx_mdl[i]);
                (*a).eth.rx_mdl[i] = null_mut();
            }
        }
        if !(*a).eth.pool.is_null() {
            ffi::NdisFreeNetBufferListPool((*a).eth.pool);
            (*a).eth.pool = null_mut();
        }
        let areas = [
            (&mut (*a).eth.tx, ethring::RING_BYTES),
            (&mut (*a).eth.rx, ethring::RING_BYTES),
            (&mut (*a).eth.rx_buffers, RX_AREA_BYTES),
            (&mut (*a).eth.tx_buffers, TX_AREA_BYTES),
        ];
        for (area, len) in areas {
            if !area.va.is_null() {
                ffi::NdisMFreeSharedMemory(miniport, len, FALSE, area.va.cast(), area.pa);
                area.va = null_mut();
            }
        }
    }
}

/// `MiniportReserved[0]` of an NBL the driver owns: for a send, its outstanding
/// NET_BUFFERs; for a receive indication, its buffer index.
///
/// # Safety
/// `nbl` is an NBL the driver owns.
unsafe fn pending_nbs(nbl: *mut NET_BUFFER_LIST) -> *mut usize {
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
unsafe fn copy_frame(nb: *const NET_BUFFER, dst: *mut u8) -> bool {
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
unsafe fn queue_nbl(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST) -> usize {
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
unsafe fn complete_nbl(a: *mut Adapter, nbl: *mut NET_BUFFER_LIST, at_dispatch: bool) {
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
            adapter::wr(a, doorbell(eth_db::TXQ_TAIL), (*a).eth.tx_ring.tail);
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
