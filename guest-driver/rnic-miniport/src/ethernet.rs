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

        (*a).eth.rx_ring = ethring::Ring::new(entries);
        while (*a).eth.rx_ring.has_room() {
            let slot = (*a).eth.rx_ring.produce();
            let buffer = (*a).eth.rx_buffers.pa as u64
                + u64::from(slot) * u64::from(ethring::RX_BUFFER_BYTES);
            let d = ethring::encode_rx(buffer, ethring::RX_BUFFER_BYTES as u16);
            let at = (*a)
                .eth
                .rx
                .va
                .add(slot as usize * rnic_contract::eth::DESC_SIZE)
                .cast::<u32>();
            for (i, w) in d.iter().enumerate() {
                write_volatile(at.add(i), *w);
            }
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
        let areas = [
            (&mut (*a).eth.tx, ethring::RING_BYTES),
            (&mut (*a).eth.rx, ethring::RING_BYTES),
            (&mut (*a).eth.rx_buffers, RX_AREA_BYTES),
        ];
        for (area, len) in areas {
            if !area.va.is_null() {
                ffi::NdisMFreeSharedMemory(miniport, len, FALSE, area.va.cast(), area.pa);
                area.va = null_mut();
            }
        }
    }
}
