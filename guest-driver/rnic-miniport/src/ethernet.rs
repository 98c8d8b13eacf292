//! The Ethernet queues' hardware side (docs/device-spec.md §5.2-§5.4): the TX and RX rings in
//! shared memory, the receive buffers, `CREATE_TXQ`/`CREATE_RXQ` at initialization and
//! `DESTROY_TXQ`/`DESTROY_RXQ` at halt. Both queues signal MSI-X message 0 (the admin
//! vector), so the one message DPC serves them all. Runs at PASSIVE_LEVEL (InitializeEx,
//! HaltEx).

use core::ptr::null_mut;

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::bar0::eth_db;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::logic::{self, ethring};
use crate::receive::post_rx;

/// The queue id the driver uses for its one TX and its one RX queue.
pub(crate) const QUEUE: u16 = 0;
/// The MSI-X message both queues signal.
const VECTOR: u16 = 0;
/// Command id of the queue commands (waited for synchronously).
const QUEUE_COMMAND_ID: u16 = 3;
/// Bytes of the receive buffer area (one buffer per RX descriptor).
pub(crate) const RX_AREA_BYTES: u32 = ethring::RING_ENTRIES * ethring::RX_BUFFER_BYTES;
/// Bytes of the transmit bounce area (one frame buffer per TX descriptor, same size as a
/// receive buffer: the largest frame at the default MTU).
pub(crate) const TX_AREA_BYTES: u32 = ethring::RING_ENTRIES * ethring::RX_BUFFER_BYTES;

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
    /// Transmit bounce buffers, one per TX descriptor (for frames whose scatter/gather list has
    /// more than one piece).
    pub tx_buffers: Shared,
    /// Driver-side positions of the TX ring: `tail` moves only under `tx_lock` (senders),
    /// `head` only in the DPC.
    pub tx_ring: ethring::Ring,
    /// The NET_BUFFER each in-flight TX descriptor sends.
    pub tx_owner: [*mut NET_BUFFER; ethring::RING_ENTRIES as usize],
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
pub(crate) fn doorbell(register: u64) -> usize {
    (eth_db::ETH_BASE + eth_db::ETH_STRIDE * u64::from(QUEUE) + register) as usize
}

/// Runs one queue command; false (logged) unless the device accepted it.
///
/// # Safety
/// As for [`hw::admin_wait`].
unsafe fn queue_command(a: *mut Adapter, op: u8, operands: &[u32; 14]) -> bool {
    // SAFETY: guaranteed by the caller.
    match unsafe { hw::admin_wait(a, op, QUEUE_COMMAND_ID, operands) } {
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
        let Some((va, pa)) = hw::alloc_ring(a, ethring::RING_BYTES, ring_align) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.tx = Shared { va, pa };
        let Some((va, pa)) = hw::alloc_ring(a, ethring::RING_BYTES, ring_align) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.rx = Shared { va, pa };
        let Some((va, pa)) = hw::alloc_ring(a, RX_AREA_BYTES, 64) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.rx_buffers = Shared { va, pa };
        let Some((va, pa)) = hw::alloc_ring(a, TX_AREA_BYTES, 64) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eth.tx_buffers = Shared { va, pa };
        (*a).eth.tx_ring = ethring::Ring::new(ethring::RING_ENTRIES);
        if !create_device_queues(a) {
            return NDIS_STATUS_FAILURE;
        }

        let status = allocate_receive_nbls(a);
        if status != NDIS_STATUS_SUCCESS {
            return status;
        }
        (*a).eth.rx_ring = ethring::Ring::new(ethring::RING_ENTRIES);
        post_buffers(a, u64::MAX);
        NDIS_STATUS_SUCCESS
    }
}

/// `CREATE_TXQ` and `CREATE_RXQ` over the rings already allocated; false (logged) if the
/// device refused one. Records each queue the device has.
///
/// # Safety
/// `a` is live, its rings allocated, admin queue live, PASSIVE_LEVEL.
unsafe fn create_device_queues(a: *mut Adapter) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let entries = ethring::RING_ENTRIES;
        let tx_ops = ethring::create_queue_operands((*a).eth.tx.pa as u64, entries, VECTOR, QUEUE);
        if !queue_command(a, opcode::CREATE_TXQ, &tx_ops) {
            return false;
        }
        (*a).eth.tx_created = true;
        let rx_ops = ethring::create_queue_operands((*a).eth.rx.pa as u64, entries, VECTOR, QUEUE);
        if !queue_command(a, opcode::CREATE_RXQ, &rx_ops) {
            return false;
        }
        (*a).eth.rx_created = true;
        true
    }
}

/// Posts the receive buffers of `buffers` (bit `i` = buffer `i`) while the RX ring has room,
/// rings `RXQ_TAIL` and logs the queues live.
///
/// # Safety
/// `a` is live, RX queue created, its ring empty and the listed buffers owned by the driver.
unsafe fn post_buffers(a: *mut Adapter, buffers: u64) {
    // SAFETY: buffer indices stay below RING_ENTRIES (64, the width of the set).
    unsafe {
        for buffer in 0..ethring::RING_ENTRIES {
            if buffers & (1 << buffer) != 0 && (*a).eth.rx_ring.has_room() {
                post_rx(a, buffer);
            }
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        hw::wr(a, doorbell(eth_db::RXQ_TAIL), (*a).eth.rx_ring.tail);
        log!(
            "Ethernet queues live: TX %u and RX %u, %u descriptors each, %u receive buffers posted\n",
            QUEUE as u32,
            QUEUE as u32,
            ethring::RING_ENTRIES,
            (*a).eth.rx_ring.in_flight()
        );
    }
}

/// After a device reset (§13.1 destroyed both queues): empties both descriptor rings and
/// their positions; the rings and buffers stay allocated for [`recreate_queues`].
///
/// # Safety
/// `a` is live; the device was reset and does not use the rings; every TX descriptor's frame
/// was completed already (`send::abort_tx`).
pub(crate) unsafe fn forget_queues(a: *mut Adapter) {
    // SAFETY: both rings are RING_BYTES long allocations of the context.
    unsafe {
        (*a).eth.tx_created = false;
        (*a).eth.rx_created = false;
        if !(*a).eth.tx.va.is_null() {
            core::ptr::write_bytes((*a).eth.tx.va, 0, ethring::RING_BYTES as usize);
        }
        if !(*a).eth.rx.va.is_null() {
            core::ptr::write_bytes((*a).eth.rx.va, 0, ethring::RING_BYTES as usize);
        }
        (*a).eth.tx_ring = ethring::Ring::new(ethring::RING_ENTRIES);
        (*a).eth.rx_ring = ethring::Ring::new(ethring::RING_ENTRIES);
    }
}

/// Creates TX and RX queue 0 again after a reset and posts the receive buffers of
/// `rx_buffers` (those the RX ring held before it; buffers NDIS still holds come back through
/// MiniportReturnNetBufferLists).
///
/// # Safety
/// As for [`create_device_queues`]; [`forget_queues`] ran.
pub(crate) unsafe fn recreate_queues(a: *mut Adapter, rx_buffers: &u64) -> NDIS_STATUS {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if (*a).eth.tx.va.is_null() || (*a).eth.rx.va.is_null() || (*a).eth.pool.is_null() {
            return NDIS_STATUS_FAILURE;
        }
        if !create_device_queues(a) {
            return NDIS_STATUS_FAILURE;
        }
        post_buffers(a, *rx_buffers);
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
