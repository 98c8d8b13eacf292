//! Per-adapter state and the adapter-level miniport handlers: initialize (bring-up + NOP),
//! halt, interrupts and DPC, and the minimal data-path / OID handlers of the skeleton.
//!
//! The adapter context is shared between PASSIVE_LEVEL handlers, the ISR and the DPC, so it is
//! only ever accessed through a raw `*mut Adapter` (never a long-lived `&mut`); fields touched by
//! more than one context are atomics.

use core::ffi::c_void;
use core::mem::{size_of, size_of_val};
use core::ptr::{addr_of_mut, null_mut, read_volatile, write_bytes, write_volatile};
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use ndis_abi::*;
use rnic_contract::{bar0, eth};

use crate::ffi::{self, log};
use crate::logic::{self, oids, reg, AdminCompletion, CqCursor};

/// Pool tag "rnic" (appears as "cinr" in a byte dump, as with any MSVC multi-char tag).
const TAG: u32 = pool_tag(*b"rnic");
/// How long InitializeEx waits for the NOP completion.
const ADMIN_TIMEOUT_MS: u32 = 2000;
/// Bound on DEV_STATUS polls (each one is an MMIO exit, roughly 10 µs here).
const POLL_LIMIT: u32 = 100_000;
/// Largest single DMA transfer the device performs.
const MAX_PHYSICAL_MAPPING: u32 = 0x1_0000;

const WAIT_PENDING: u32 = 0;
const WAIT_DONE: u32 = 1;

#[repr(C)]
pub struct Adapter {
    pub(crate) miniport: NDIS_HANDLE,
    /// Mapped BAR0, null until NdisMMapIoSpace succeeded.
    regs: *mut u8,
    dma: NDIS_HANDLE,
    interrupt: NDIS_HANDLE,
    asq_va: *mut u8,
    asq_pa: NDIS_PHYSICAL_ADDRESS,
    acq_va: *mut u8,
    acq_pa: NDIS_PHYSICAL_ADDRESS,
    asq_tail: u32,
    /// Completion-ring consumer position; only the DPC (under `dpc_busy`) moves it.
    cq: CqCursor,
    /// Set (Release) once the rings are programmed and `cq` is valid.
    rings_live: AtomicBool,
    dpc_busy: AtomicBool,
    pub(crate) paused: AtomicBool,
    /// The command id [`admin_wait`] waits for, and its state (`WAIT_*`), status and result 0.
    wait_id: AtomicU32,
    wait_state: AtomicU32,
    wait_status: AtomicU32,
    wait_result0: AtomicU32,
    wait_event: NDIS_EVENT,
    /// The Ethernet rings (null until allocated) and whether the device has the queues.
    pub(crate) eth: crate::ethernet::EthRings,
    /// Current MTU in bytes (the device's reset value; the driver does not change it).
    pub(crate) mtu: u32,
    /// The `NDIS_PACKET_TYPE_*` filter the device last acknowledged.
    pub(crate) packet_filter: u32,
    /// Current lookahead in bytes (driver state only).
    pub(crate) lookahead: u32,
    /// How many entries of `mc_cache` the device last acknowledged.
    pub(crate) multicast_count: usize,
    /// The acknowledged multicast addresses.
    pub(crate) mc_cache: [[u8; 6]; eth::MAX_MULTICAST],
    /// The multicast list in the device's `SET_MULTICAST` format, `MAX_MULTICAST` 8-byte
    /// entries of shared memory (null until allocated).
    pub(crate) mc_va: *mut u8,
    /// Bus address of `mc_va`.
    pub(crate) mc_pa: NDIS_PHYSICAL_ADDRESS,
    /// The OID set waiting for its admin completion (null: none).
    pub(crate) pending_oid: AtomicPtr<NDIS_OID_REQUEST>,
    /// What that set changes once acknowledged.
    pub(crate) staged: crate::oid::StagedSet,
    /// Frames sent, received, failed to send, received with error, dropped for lack of a
    /// receive buffer (the statistics OIDs).
    pub(crate) stats: [AtomicU64; 5],
    /// Held by a sender while it fills the TX ring.
    pub(crate) tx_lock: AtomicBool,
    /// Held while a receive buffer is reposted on the RX ring.
    pub(crate) rx_lock: AtomicBool,
}

impl Adapter {
    /// The multicast list the device last acknowledged.
    pub(crate) fn multicast_list(&self) -> &[[u8; 6]] {
        &self.mc_cache[..self.multicast_count.min(eth::MAX_MULTICAST)]
    }

    /// Snapshot of the statistics counters.
    pub(crate) fn counters(&self) -> [u64; 5] {
        core::array::from_fn(|i| self.stats[i].load(Ordering::Relaxed))
    }
}

/// Volatile 32-bit BAR0 read (a plain `mov`).
///
/// # Safety
/// `(*a).regs` must be the live BAR0 mapping and `off` a register offset below 64 KiB.
pub(crate) unsafe fn rd(a: *const Adapter, off: usize) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { read_volatile((*a).regs.add(off).cast::<u32>()) }
}

/// Volatile 32-bit BAR0 write (a plain `mov`).
///
/// # Safety
/// As for [`rd`].
pub(crate) unsafe fn wr(a: *const Adapter, off: usize, value: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { write_volatile((*a).regs.add(off).cast::<u32>(), value) }
}

/// MiniportInitializeEx.
///
/// # Safety
/// Called by NDIS with its adapter handle and valid init parameters.
pub unsafe extern "win64" fn MiniportInitializeEx(
    miniport: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
    params: *mut NDIS_MINIPORT_INIT_PARAMETERS,
) -> NDIS_STATUS {
    log!("InitializeEx\n");
    let size = size_of::<Adapter>() as u32;
    // SAFETY: FFI allocation; the result is checked before use.
    let a =
        unsafe { ffi::NdisAllocateMemoryWithTagPriority(miniport, size, TAG, NormalPoolPriority) }
            .cast::<Adapter>();
    if a.is_null() {
        log!("adapter context allocation failed\n");
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `a` points to `size` writable bytes; all-zero is a valid Adapter (null pointers,
    // false/0 atomics, zeroed event).
    unsafe {
        write_bytes(a.cast::<u8>(), 0, size as usize);
        (*a).miniport = miniport;
    }
    // SAFETY: `a` is a valid, exclusively owned context; `params` comes from NDIS.
    let status = unsafe { bring_up(a, params) };
    if status != NDIS_STATUS_SUCCESS {
        log!("InitializeEx failed: %x\n", status);
        // SAFETY: releases exactly what bring_up recorded as taken.
        unsafe { teardown(a) };
        return status;
    }
    log!("adapter ready\n");
    NDIS_STATUS_SUCCESS
}

/// Everything InitializeEx does after allocating the context. Each resource taken is recorded
/// in the context at once, so `teardown` can undo a partial bring-up.
///
/// # Safety
/// `a` is a valid zero-initialised context owned by the caller; `params` comes from NDIS.
unsafe fn bring_up(a: *mut Adapter, params: *mut NDIS_MINIPORT_INIT_PARAMETERS) -> NDIS_STATUS {
    // SAFETY: (this block is the whole body) `a` is valid per the contract; every FFI call gets
    // valid pointers to locals or to the context; register accesses happen only after BAR0 is
    // mapped.
    unsafe {
        let miniport = (*a).miniport;
        // An adapter leaves InitializeEx Paused: no sends or indications before MiniportRestart.
        (*a).paused.store(true, Ordering::Release);
        // The device's reset values (docs/device-spec.md §5.5): MTU 1500, filter unicast +
        // broadcast, empty multicast list.
        (*a).mtu = eth::DEFAULT_MTU;
        (*a).lookahead = eth::DEFAULT_MTU;
        (*a).packet_filter = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST;

        // 1. Registration attributes: tells NDIS our context pointer.
        let mut attrs = NDIS_MINIPORT_ADAPTER_ATTRIBUTES {
            RegistrationAttributes: NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES {
                Header: NDIS_OBJECT_HEADER::new(
                    NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
                    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                    NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                ),
                MiniportAdapterContext: a.cast::<c_void>(),
                AttributeFlags: NDIS_MINIPORT_ATTRIBUTES_HARDWARE_DEVICE
                    | NDIS_MINIPORT_ATTRIBUTES_BUS_MASTER,
                CheckForHangTimeInSeconds: 0,
                InterfaceType: NdisInterfacePci,
            },
        };
        let status = ffi::NdisMSetMiniportAttributes(miniport, &mut attrs);
        if status != NDIS_STATUS_SUCCESS {
            log!("NdisMSetMiniportAttributes failed: %x\n", status);
            return status;
        }

        // 2. BAR0: the 64 KiB memory resource.
        if params.is_null() || (*params).AllocatedResources.is_null() {
            log!("no resources assigned\n");
            return NDIS_STATUS_ADAPTER_NOT_FOUND;
        }
        let descriptors = CM_PARTIAL_RESOURCE_LIST::descriptors((*params).AllocatedResources);
        let Some(bar0) = logic::find_bar0(descriptors) else {
            log!(
                "BAR0 (64 KiB memory resource) not found among %u resources\n",
                descriptors.len() as u32
            );
            return NDIS_STATUS_ADAPTER_NOT_FOUND;
        };
        let mut va: *mut c_void = null_mut();
        let status = ffi::NdisMMapIoSpace(&mut va, miniport, bar0, logic::BAR0_LEN);
        if status != NDIS_STATUS_SUCCESS || va.is_null() {
            log!("NdisMMapIoSpace(%llx) failed: %x\n", bar0 as u64, status);
            return failure_or(status);
        }
        (*a).regs = va.cast::<u8>();
        let version = rd(a, reg::VERSION);
        log!(
            "BAR0 %llx mapped at %p, VERSION %x\n",
            bar0 as u64,
            va,
            version
        );
        if version >> 16 != logic::SUPPORTED_MAJOR {
            log!("unsupported register interface version %x\n", version);
            return NDIS_STATUS_ADAPTER_NOT_FOUND;
        }

        // 3. Scatter/gather DMA (also required before shared-memory allocation).
        let mut dma = NDIS_SG_DMA_DESCRIPTION {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION,
                NDIS_SG_DMA_DESCRIPTION_REVISION_1,
                NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1,
            ),
            Flags: NDIS_SG_DMA_64_BIT_ADDRESS,
            MaximumPhysicalMapping: MAX_PHYSICAL_MAPPING,
            ProcessSGListHandler: Some(process_sg_list),
            SharedMemAllocateCompleteHandler: None,
            ScatterGatherListSize: 0,
        };
        let mut handle: NDIS_HANDLE = null_mut();
        let status = ffi::NdisMRegisterScatterGatherDma(miniport, &mut dma, &mut handle);
        if status != NDIS_STATUS_SUCCESS || handle.is_null() {
            log!("NdisMRegisterScatterGatherDma failed: %x\n", status);
            return failure_or(status);
        }
        (*a).dma = handle;

        // 4. Message-signalled interrupts.
        let mut ic = NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT,
                NDIS_MINIPORT_INTERRUPT_REVISION_1,
                NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1,
            ),
            InterruptHandler: Some(line_isr),
            InterruptDpcHandler: Some(line_dpc),
            DisableInterruptHandler: None,
            EnableInterruptHandler: None,
            MsiSupported: TRUE,
            MsiSyncWithAllMessages: FALSE,
            MessageInterruptHandler: Some(message_isr),
            MessageInterruptDpcHandler: Some(message_dpc),
            DisableMessageInterruptHandler: None,
            EnableMessageInterruptHandler: None,
            InterruptType: 0,
            MessageInfoTable: null_mut(),
        };
        let mut handle: NDIS_HANDLE = null_mut();
        let status =
            ffi::NdisMRegisterInterruptEx(miniport, a.cast::<c_void>(), &mut ic, &mut handle);
        if status != NDIS_STATUS_SUCCESS || handle.is_null() {
            log!("NdisMRegisterInterruptEx failed: %x\n", status);
            return failure_or(status);
        }
        (*a).interrupt = handle;
        if ic.InterruptType != NDIS_CONNECT_MESSAGE_BASED || ic.MessageInfoTable.is_null() {
            log!(
                "message-signalled interrupts not granted (InterruptType %u)\n",
                ic.InterruptType
            );
            return NDIS_STATUS_FAILURE;
        }
        log!(
            "MSI-X granted: %u messages\n",
            (*ic.MessageInfoTable).MessageCount
        );

        // 5. Device reset.
        wr(a, reg::DEV_CTRL, reg::DEV_CTRL_RESET);
        let busy = reg::DEV_STATUS_READY | reg::DEV_STATUS_FATAL | reg::DEV_STATUS_ADMIN_ERR;
        if !poll(a, |s| s & busy == 0) {
            log!(
                "device reset timed out (DEV_STATUS %x)\n",
                rd(a, reg::DEV_STATUS)
            );
            return NDIS_STATUS_FAILURE;
        }

        // 6. Admin rings in shared memory, zeroed.
        let Some((asq_va, asq_pa)) = alloc_ring(a, logic::ASQ_BYTES, logic::ASQ_ALIGN) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).asq_va = asq_va;
        (*a).asq_pa = asq_pa;
        let Some((acq_va, acq_pa)) = alloc_ring(a, logic::ACQ_BYTES, logic::ACQ_ALIGN) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).acq_va = acq_va;
        (*a).acq_pa = acq_pa;
        // The multicast list buffer SET_MULTICAST reads (8-byte entries).
        let Some((mc_va, mc_pa)) = alloc_ring(a, crate::oid::MULTICAST_BUFFER_BYTES, 8) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).mc_va = mc_va;
        (*a).mc_pa = mc_pa;

        // 7. Program the rings.
        let (lo, hi) = logic::split_phys(asq_pa);
        wr(a, reg::ASQ_BASE_LO, lo);
        wr(a, reg::ASQ_BASE_HI, hi);
        wr(a, reg::ASQ_SIZE, logic::ASQ_ENTRIES);
        let (lo, hi) = logic::split_phys(acq_pa);
        wr(a, reg::ACQ_BASE_LO, lo);
        wr(a, reg::ACQ_BASE_HI, hi);
        wr(a, reg::ACQ_SIZE, logic::ACQ_ENTRIES);
        (*a).asq_tail = 0;
        (*a).cq = CqCursor::new(logic::ACQ_ENTRIES);
        ffi::NdisInitializeEvent(addr_of_mut!((*a).wait_event));
        (*a).rings_live.store(true, Ordering::Release);

        // 8. Enable and wait for READY.
        wr(a, reg::DEV_CTRL, reg::DEV_CTRL_ENABLE);
        let mut status_reg = 0;
        let ready = poll(a, |s| {
            status_reg = s;
            s & (reg::DEV_STATUS_READY | reg::DEV_STATUS_ADMIN_ERR | reg::DEV_STATUS_FATAL) != 0
        });
        if !ready || status_reg & reg::DEV_STATUS_READY == 0 {
            log!(
                "device not ready after enable: DEV_STATUS %x ADMIN_ERROR %u\n",
                rd(a, reg::DEV_STATUS),
                rd(a, reg::ADMIN_ERROR)
            );
            return NDIS_STATUS_FAILURE;
        }
        log!("device enabled, admin queue live\n");

        // 9. One NOP through the admin queue; its completion arrives via MSI-X message 0.
        let Some((status, result0)) =
            admin_wait(a, logic::OPCODE_NOP, logic::NOP_COMMAND_ID, &[0; 14])
        else {
            return NDIS_STATUS_FAILURE;
        };
        if status != logic::ADMIN_STATUS_SUCCESS || result0 != logic::NOP_RESULT0 {
            log!("NOP failed: status %u result0 %x\n", status as u32, result0);
            return NDIS_STATUS_FAILURE;
        }
        log!("NOP completed\n");

        // 10. The Ethernet queues (TX 0 and RX 0, both on message 0).
        let status = crate::ethernet::create_queues(a);
        if status != NDIS_STATUS_SUCCESS {
            return status;
        }

        // 11. General attributes (after the registration attributes, before InitializeEx
        // returns): MAC and link state from the device, now that it is enabled.
        let mut general = NDIS_MINIPORT_ADAPTER_ATTRIBUTES {
            GeneralAttributes: general_attributes(read_mac(a), link_up(a)),
        };
        let status = ffi::NdisMSetMiniportAttributes(miniport, &mut general);
        if status != NDIS_STATUS_SUCCESS {
            log!("general attributes refused: %x\n", status);
            return status;
        }
        NDIS_STATUS_SUCCESS
    }
}

/// `DEV_STATUS.LINK_UP`.
///
/// # Safety
/// BAR0 is mapped.
pub(crate) unsafe fn link_up(a: *const Adapter) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe { rd(a, reg::DEV_STATUS) & reg::DEV_STATUS_LINK_UP != 0 }
}

/// The device's current MAC address from `MAC_LO` (bytes 0..3, byte 0 in bits 7:0) and
/// `MAC_HI` (bytes 4..5 in bits 15:0).
///
/// # Safety
/// BAR0 is mapped.
pub(crate) unsafe fn read_mac(a: *const Adapter) -> [u8; 6] {
    // SAFETY: BAR0 mapped per the contract; both offsets are registers below 64 KiB.
    let (lo, hi) = unsafe { (rd(a, bar0::MAC_LO as usize), rd(a, bar0::MAC_HI as usize)) };
    let [b0, b1, b2, b3] = lo.to_le_bytes();
    let [b4, b5, _, _] = hi.to_le_bytes();
    [b0, b1, b2, b3, b4, b5]
}

/// The adapter's general attributes (revision 2): 802.3 with the device's MAC, the device's
/// default MTU and link speed, its receive filters and multicast capacity, and the OIDs the
/// control path (`crate::oid`) answers.
fn general_attributes(mac: [u8; 6], link_up: bool) -> NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES {
    let mut address = [0u8; NDIS_MAX_PHYS_ADDRESS_LENGTH];
    address[..6].copy_from_slice(&mac);
    let max_speed = eth::LINK_SPEED_MBPS as u64 * 1_000_000;
    let current_speed = if link_up {
        max_speed
    } else {
        NDIS_LINK_SPEED_UNKNOWN
    };
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
            NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
        ),
        Flags: 0,
        MediaType: NdisMedium802_3,
        PhysicalMediumType: NdisPhysicalMedium802_3,
        MtuSize: eth::DEFAULT_MTU,
        MaxXmitLinkSpeed: max_speed,
        XmitLinkSpeed: current_speed,
        MaxRcvLinkSpeed: max_speed,
        RcvLinkSpeed: current_speed,
        MediaConnectState: if link_up {
            MediaConnectStateConnected
        } else {
            MediaConnectStateDisconnected
        },
        MediaDuplexState: if link_up {
            MediaDuplexStateFull
        } else {
            MediaDuplexStateUnknown
        },
        LookaheadSize: eth::DEFAULT_MTU,
        PowerManagementCapabilities: null_mut(),
        MacOptions: oids::MAC_OPTIONS,
        SupportedPacketFilters: oids::SUPPORTED_PACKET_FILTERS,
        MaxMulticastListSize: eth::MAX_MULTICAST as u32,
        MacAddressLength: 6,
        PermanentMacAddress: address,
        CurrentMacAddress: address,
        RecvScaleCapabilities: null_mut(),
        AccessType: NET_IF_ACCESS_BROADCAST,
        DirectionType: NET_IF_DIRECTION_SENDRECEIVE,
        ConnectionType: NET_IF_CONNECTION_DEDICATED,
        IfType: IF_TYPE_ETHERNET_CSMACD,
        IfConnectorPresent: TRUE,
        SupportedStatistics: 0,
        SupportedPauseFunctions: 0,
        DataBackFillSize: 0,
        ContextBackFillSize: 0,
        SupportedOidList: oids::SUPPORTED.as_ptr(),
        SupportedOidListLength: size_of_val(&oids::SUPPORTED) as u32,
        AutoNegotiationFlags: 0,
        PowerManagementCapabilitiesEx: null_mut(),
    }
}

/// A failed NDIS call's status, or FAILURE if it claimed success without producing a result.
fn failure_or(status: NDIS_STATUS) -> NDIS_STATUS {
    if status == NDIS_STATUS_SUCCESS {
        NDIS_STATUS_FAILURE
    } else {
        status
    }
}

/// Polls DEV_STATUS until `done` holds, at most `POLL_LIMIT` times.
///
/// # Safety
/// BAR0 must be mapped.
unsafe fn poll(a: *const Adapter, mut done: impl FnMut(u32) -> bool) -> bool {
    for _ in 0..POLL_LIMIT {
        // SAFETY: guaranteed by the caller.
        if done(unsafe { rd(a, reg::DEV_STATUS) }) {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// Allocates and zeroes one ring of shared memory, checking the alignment the device needs.
/// On an alignment failure the memory is freed again.
///
/// # Safety
/// `a` is valid and its SG DMA is registered.
pub(crate) unsafe fn alloc_ring(a: *mut Adapter, len: u32, align: i64) -> Option<(*mut u8, i64)> {
    // SAFETY: FFI calls with valid out-pointers; the memory is used only after the checks.
    unsafe {
        let mut va: *mut c_void = null_mut();
        let mut pa: NDIS_PHYSICAL_ADDRESS = 0;
        ffi::NdisMAllocateSharedMemory((*a).miniport, len, FALSE, &mut va, &mut pa);
        if va.is_null() {
            log!("NdisMAllocateSharedMemory(%u) failed\n", len);
            return None;
        }
        if pa % align != 0 {
            log!(
                "shared memory at %llx is not %u-byte aligned\n",
                pa as u64,
                align as u32
            );
            ffi::NdisMFreeSharedMemory((*a).miniport, len, FALSE, va, pa);
            return None;
        }
        write_bytes(va.cast::<u8>(), 0, len as usize);
        Some((va.cast::<u8>(), pa))
    }
}

/// Writes one 64-byte command at the ASQ tail and rings the ASQ_TAIL doorbell.
///
/// # Safety
/// Rings live, BAR0 mapped, called from a single submitter.
pub(crate) unsafe fn submit(a: *mut Adapter, command: &[u32; 16]) {
    // SAFETY: the slot lies inside the ASQ allocation (tail < ASQ_ENTRIES).
    unsafe {
        let tail = (*a).asq_tail;
        let slot = (*a)
            .asq_va
            .add((tail * logic::ASQ_ENTRY_BYTES) as usize)
            .cast::<u32>();
        for (i, word) in command.iter().enumerate() {
            write_volatile(slot.add(i), *word);
        }
        // The entry must be globally visible before the doorbell write.
        fence(Ordering::Release);
        let next = logic::ring_next(tail, logic::ASQ_ENTRIES);
        (*a).asq_tail = next;
        wr(a, reg::ASQ_TAIL, next);
    }
}

/// True if the ACQ slot at the consumer position holds a new entry.
///
/// # Safety
/// Rings live.
unsafe fn completion_pending(a: *const Adapter) -> bool {
    // SAFETY: head < ACQ_ENTRIES, so the read is inside the ACQ allocation.
    unsafe {
        let cq = (*a).cq;
        let entry = (*a)
            .acq_va
            .add((cq.head * logic::ACQ_ENTRY_BYTES) as usize)
            .cast::<u32>();
        cq.is_new(((read_volatile(entry.add(3)) >> 16) & 1) as u8)
    }
}

/// Consumes every new ACQ entry (phase-tag protocol), then publishes ACQ_HEAD.
///
/// # Safety
/// `a` is a live adapter context.
unsafe fn process_admin_completions(a: *mut Adapter) {
    // SAFETY: the context outlives its interrupt registration (halt deregisters the interrupt,
    // which waits for running DPCs, before freeing anything); ring accesses stay in bounds.
    unsafe {
        if !(*a).rings_live.load(Ordering::Acquire) {
            return;
        }
        loop {
            // One consumer at a time, even if DPCs for message 0 overlap on two CPUs.
            if (*a).dpc_busy.swap(true, Ordering::Acquire) {
                return;
            }
            let mut consumed = 0u32;
            while completion_pending(a) {
                // Read the rest of the entry only after its phase tag said it is complete.
                fence(Ordering::Acquire);
                let entry = (*a)
                    .acq_va
                    .add(((*a).cq.head * logic::ACQ_ENTRY_BYTES) as usize)
                    .cast::<u32>();
                let c = AdminCompletion::decode([
                    read_volatile(entry),
                    read_volatile(entry.add(1)),
                    read_volatile(entry.add(2)),
                    read_volatile(entry.add(3)),
                ]);
                handle_completion(a, &c);
                (*a).cq.advance();
                consumed += 1;
            }
            if consumed != 0 {
                wr(a, reg::ACQ_HEAD, (*a).cq.head);
            }
            (*a).dpc_busy.store(false, Ordering::Release);
            // An entry may have landed after the last check but before the flag was released,
            // while another DPC was turned away: look once more.
            if !completion_pending(a) {
                return;
            }
        }
    }
}

/// Acts on one admin completion: an OID set's goes to the control path, the one
/// [`admin_wait`] waits for wakes it.
///
/// # Safety
/// `a` is a live adapter context.
unsafe fn handle_completion(a: *mut Adapter, c: &AdminCompletion) {
    // SAFETY: atomics and the event live in the context, valid per the contract.
    unsafe {
        if c.command_id == logic::OID_COMMAND_ID {
            crate::oid::admin_completed(a, c);
            return;
        }
        if u32::from(c.command_id) != (*a).wait_id.load(Ordering::Acquire)
            || (*a).wait_state.load(Ordering::Relaxed) != WAIT_PENDING
        {
            log!(
                "unexpected admin completion: id %u status %u result0 %x\n",
                c.command_id as u32,
                c.status as u32,
                c.result0
            );
            return;
        }
        (*a).wait_status.store(c.status as u32, Ordering::Relaxed);
        (*a).wait_result0.store(c.result0, Ordering::Relaxed);
        (*a).wait_state.store(WAIT_DONE, Ordering::Release);
        ffi::NdisSetEvent(addr_of_mut!((*a).wait_event));
    }
}

/// Submits one admin command and waits (PASSIVE_LEVEL, interrupt-driven) for its completion.
/// Returns its status and result 0, or None (logged) after [`ADMIN_TIMEOUT_MS`].
///
/// # Safety
/// `a` is a live context with its admin rings live; the caller is the only submitter and
/// runs at PASSIVE_LEVEL.
pub(crate) unsafe fn admin_wait(
    a: *mut Adapter,
    opcode: u8,
    command_id: u16,
    operands: &[u32; 14],
) -> Option<(u16, u32)> {
    // SAFETY: the context, its event and its rings are live per the contract.
    unsafe {
        ffi::NdisResetEvent(addr_of_mut!((*a).wait_event));
        (*a).wait_state.store(WAIT_PENDING, Ordering::Relaxed);
        (*a).wait_id.store(u32::from(command_id), Ordering::Release);
        submit(a, &logic::encode_command(opcode, command_id, operands));
        if ffi::NdisWaitEvent(addr_of_mut!((*a).wait_event), ADMIN_TIMEOUT_MS) == FALSE
            || (*a).wait_state.load(Ordering::Acquire) != WAIT_DONE
        {
            log!(
                "admin command %x timed out after %u ms (ASQ_HEAD %u ACQ_TAIL %u DEV_STATUS %x)\n",
                opcode as u32,
                ADMIN_TIMEOUT_MS,
                rd(a, reg::ASQ_HEAD),
                rd(a, reg::ACQ_TAIL),
                rd(a, reg::DEV_STATUS)
            );
            return None;
        }
        Some((
            (*a).wait_status.load(Ordering::Relaxed) as u16,
            (*a).wait_result0.load(Ordering::Relaxed),
        ))
    }
}

/// Releases everything the context records as taken, in reverse order, then the context.
///
/// # Safety
/// `a` is a valid context no longer used by anyone else (NDIS stopped calling the adapter, or
/// InitializeEx is failing).
unsafe fn teardown(a: *mut Adapter) {
    // SAFETY: each handle/pointer is released once, only if recorded as taken.
    unsafe {
        let miniport = (*a).miniport;
        if !(*a).regs.is_null() {
            // Stop the device before its rings go away.
            wr(a, reg::DEV_CTRL, 0);
        }
        if !(*a).interrupt.is_null() {
            ffi::NdisMDeregisterInterruptEx((*a).interrupt);
            (*a).interrupt = null_mut();
        }
        (*a).rings_live.store(false, Ordering::Release);
        crate::ethernet::free_rings(a);
        if !(*a).asq_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                miniport,
                logic::ASQ_BYTES,
                FALSE,
                (*a).asq_va.cast(),
                (*a).asq_pa,
            );
            (*a).asq_va = null_mut();
        }
        if !(*a).acq_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                miniport,
                logic::ACQ_BYTES,
                FALSE,
                (*a).acq_va.cast(),
                (*a).acq_pa,
            );
            (*a).acq_va = null_mut();
        }
        if !(*a).mc_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                miniport,
                crate::oid::MULTICAST_BUFFER_BYTES,
                FALSE,
                (*a).mc_va.cast(),
                (*a).mc_pa,
            );
            (*a).mc_va = null_mut();
        }
        if !(*a).dma.is_null() {
            ffi::NdisMDeregisterScatterGatherDma((*a).dma);
            (*a).dma = null_mut();
        }
        if !(*a).regs.is_null() {
            ffi::NdisMUnmapIoSpace(miniport, (*a).regs.cast(), logic::BAR0_LEN);
            (*a).regs = null_mut();
        }
        ffi::NdisFreeMemory(a.cast(), size_of::<Adapter>() as u32, 0);
    }
}

/// MiniportHaltEx: disable the device and release everything.
///
/// # Safety
/// Called by NDIS with the context registered in InitializeEx.
pub unsafe extern "win64" fn MiniportHaltEx(context: NDIS_HANDLE, action: NDIS_HALT_ACTION) {
    log!("HaltEx (action %u)\n", action);
    // SAFETY: NDIS guarantees no other handler runs for this adapter during or after halt.
    unsafe {
        crate::ethernet::destroy_queues(context.cast::<Adapter>());
        teardown(context.cast::<Adapter>())
    };
    log!("halted\n");
}

/// MiniportMessageInterrupt: message 0 is the admin completion queue; defer to the DPC.
unsafe extern "win64" fn message_isr(
    _context: NDIS_HANDLE,
    message_id: u32,
    queue_default_dpc: *mut BOOLEAN,
    _target_processors: *mut u32,
) -> BOOLEAN {
    let ours = message_id == 0;
    if !queue_default_dpc.is_null() {
        // SAFETY: NDIS passes a valid out-pointer.
        unsafe { *queue_default_dpc = ours as BOOLEAN };
    }
    ours as BOOLEAN
}

/// MiniportMessageInterruptDpc.
unsafe extern "win64" fn message_dpc(
    context: NDIS_HANDLE,
    message_id: u32,
    _dpc_context: *mut c_void,
    _receive_throttle: *mut c_void,
    _reserved: *mut c_void,
) {
    if message_id == 0 {
        // SAFETY: the interrupt context is our adapter, live while the interrupt is registered.
        unsafe {
            process_admin_completions(context.cast::<Adapter>());
            crate::ethernet::reap_tx(context.cast::<Adapter>());
            crate::ethernet::reap_rx(context.cast::<Adapter>());
        }
    }
}

/// MiniportInterrupt (line-based): the device has no INTx pin, so a line interrupt is never
/// ours. Registered only because NDIS requires the line-based handlers.
unsafe extern "win64" fn line_isr(
    _context: NDIS_HANDLE,
    queue_default_dpc: *mut BOOLEAN,
    _target_processors: *mut u32,
) -> BOOLEAN {
    if !queue_default_dpc.is_null() {
        // SAFETY: NDIS passes a valid out-pointer.
        unsafe { *queue_default_dpc = FALSE };
    }
    FALSE
}

/// MiniportInterruptDpc (line-based): drains the admin queue like the message DPC would.
unsafe extern "win64" fn line_dpc(
    context: NDIS_HANDLE,
    _dpc_context: *mut c_void,
    _receive_throttle: *mut c_void,
    _reserved: *mut c_void,
) {
    // SAFETY: as in `message_dpc`.
    unsafe { process_admin_completions(context.cast::<Adapter>()) };
}

/// MiniportProcessSGList: the skeleton never maps NET_BUFFERs, so NDIS never calls this.
unsafe extern "win64" fn process_sg_list(
    _device_object: *mut c_void,
    _reserved: *mut c_void,
    _sg_list: *mut c_void,
    _context: *mut c_void,
) {
    log!("unexpected ProcessSGList\n");
}

/// MiniportPause: nothing is in flight (sends complete synchronously), so pausing is immediate.
pub unsafe extern "win64" fn MiniportPause(
    context: NDIS_HANDLE,
    _params: *mut c_void,
) -> NDIS_STATUS {
    log!("Pause\n");
    // SAFETY: context is our adapter.
    unsafe {
        (*context.cast::<Adapter>())
            .paused
            .store(true, Ordering::Release)
    };
    NDIS_STATUS_SUCCESS
}

/// MiniportRestart.
pub unsafe extern "win64" fn MiniportRestart(
    context: NDIS_HANDLE,
    _params: *mut c_void,
) -> NDIS_STATUS {
    log!("Restart\n");
    // SAFETY: context is our adapter.
    unsafe {
        (*context.cast::<Adapter>())
            .paused
            .store(false, Ordering::Release)
    };
    NDIS_STATUS_SUCCESS
}

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
            crate::ethernet::send(a, nbls, at_dispatch);
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

/// MiniportReturnNetBufferLists. IRQL: <= DISPATCH_LEVEL. NDIS gives back receive NBLs;
/// their buffers go back on the RX ring.
pub unsafe extern "win64" fn MiniportReturnNetBufferLists(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _return_flags: u32,
) {
    // SAFETY: context is our adapter; `nbls` are NBLs it indicated.
    unsafe { crate::ethernet::return_nbls(context.cast::<Adapter>(), nbls) };
}

/// MiniportCancelSend. IRQL: <= DISPATCH_LEVEL. Frames on the TX ring are already with the
/// device (it sends synchronously at the doorbell), so none can be cancelled; their NBLs
/// complete from the DPC.
pub unsafe extern "win64" fn MiniportCancelSend(_context: NDIS_HANDLE, _cancel_id: *mut c_void) {}

/// MiniportResetEx: nothing queued to reset; completes synchronously.
pub unsafe extern "win64" fn MiniportResetEx(
    _context: NDIS_HANDLE,
    addressing_reset: *mut BOOLEAN,
) -> NDIS_STATUS {
    log!("ResetEx\n");
    if !addressing_reset.is_null() {
        // SAFETY: NDIS passes a valid out-pointer.
        unsafe { *addressing_reset = FALSE };
    }
    NDIS_STATUS_SUCCESS
}

/// MiniportDevicePnPEventNotify: no PnP event needs action in the skeleton.
pub unsafe extern "win64" fn MiniportDevicePnPEventNotify(
    _context: NDIS_HANDLE,
    _event: *mut c_void,
) {
}

/// MiniportShutdownEx: may run at high IRQL (bug check): only stop the device, call nothing.
pub unsafe extern "win64" fn MiniportShutdownEx(
    context: NDIS_HANDLE,
    _action: NDIS_SHUTDOWN_ACTION,
) {
    let a = context.cast::<Adapter>();
    // SAFETY: context is our adapter; a mapped BAR0 stays mapped until halt.
    unsafe {
        if !(*a).regs.is_null() {
            wr(a, reg::DEV_CTRL, 0);
        }
    }
}
