//! Per-adapter state and the life-cycle handlers (netvmini's adapter/miniport layer):
//! InitializeEx (bring-up, NOP, queues, attributes), HaltEx, Pause/Restart, PnP and shutdown
//! notifications (CheckForHangEx and ResetEx are `reset`'s, link indications `link`'s). Hardware access is `hw`, interrupts `interrupt`, the
//! control path `oid`, the data path `send`/`receive` over the rings of `ethernet`.
//!
//! The adapter context is shared between PASSIVE_LEVEL handlers, the ISR and the DPC, so it is
//! only ever accessed through a raw `*mut Adapter` (never a long-lived `&mut`); fields touched by
//! more than one context are atomics.

use core::ffi::c_void;
use core::mem::{size_of, size_of_val};
use core::ptr::{addr_of_mut, null_mut, write_bytes};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use ndis_abi::*;
use rnic_contract::eth;

use crate::ffi::{self, log};
use crate::hw::*;
use crate::interrupt::*;
use crate::logic::{self, oids, reg, CqCursor};

/// Pool tag "rnic" (appears as "cinr" in a byte dump, as with any MSVC multi-char tag).
const TAG: u32 = pool_tag(*b"rnic");
/// Largest single DMA transfer the device performs.
const MAX_PHYSICAL_MAPPING: u32 = 0x1_0000;

#[repr(C)]
pub struct Adapter {
    pub(crate) miniport: NDIS_HANDLE,
    /// Mapped BAR0, null until NdisMMapIoSpace succeeded.
    pub(crate) regs: *mut u8,
    pub(crate) dma: NDIS_HANDLE,
    pub(crate) interrupt: NDIS_HANDLE,
    pub(crate) asq_va: *mut u8,
    pub(crate) asq_pa: NDIS_PHYSICAL_ADDRESS,
    pub(crate) acq_va: *mut u8,
    pub(crate) acq_pa: NDIS_PHYSICAL_ADDRESS,
    pub(crate) asq_tail: u32,
    /// Completion-ring consumer position; only the DPC (under `dpc_busy`) moves it.
    pub(crate) cq: CqCursor,
    /// Set (Release) once the rings are programmed and `cq` is valid.
    pub(crate) rings_live: AtomicBool,
    pub(crate) dpc_busy: AtomicBool,
    /// Running/Pausing/Paused and the NBLs outstanding (`crate::data_path`); starts Paused.
    pub(crate) data_path: crate::data_path::DataPath,
    /// The command id [`admin_wait`] waits for, and its state (`WAIT_*`), status and result 0.
    pub(crate) wait_id: AtomicU32,
    pub(crate) wait_state: AtomicU32,
    pub(crate) wait_status: AtomicU32,
    pub(crate) wait_result0: AtomicU32,
    pub(crate) wait_event: NDIS_EVENT,
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
    /// Held by an admin submitter while it writes the ASQ (`hw::submit`).
    pub(crate) asq_lock: AtomicBool,
    /// Admin commands submitted whose completion the DPC has not consumed yet.
    pub(crate) asq_in_flight: AtomicU32,
    /// Event ring (§4.1; null until allocated) and its bus address.
    pub(crate) eq_va: *mut u8,
    /// Bus address of `eq_va`.
    pub(crate) eq_pa: NDIS_PHYSICAL_ADDRESS,
    /// Event-ring consumer position (moved by the message-0 DPC under `event_busy`).
    pub(crate) eq: CqCursor,
    /// Held by the event-ring consumer.
    pub(crate) event_busy: AtomicBool,
    /// MSI-X messages NDIS granted (message 0: admin and Ethernet; the rest: CQs).
    pub(crate) msix_messages: u32,
    /// The NDK provider's state (`crate::ndk`).
    pub(crate) ndk: crate::ndk::NdkState,
    /// Fatal state, reset in progress, halt begun, hang watches (`crate::reset`).
    pub(crate) health: crate::reset::Health,
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

/// MiniportInitializeEx. IRQL: PASSIVE_LEVEL. Brings the adapter up and leaves it Paused.
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
    crate::nmr::adapter_added(a);
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
        (*a).data_path = crate::data_path::DataPath::new();
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
                CheckForHangTimeInSeconds: logic::health::CHECK_FOR_HANG_SECONDS,
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
            ProcessSGListHandler: Some(crate::send::process_sg_list),
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
        (*a).msix_messages = (*ic.MessageInfoTable).MessageCount;
        log!("MSI-X granted: %u messages\n", (*a).msix_messages);

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
        // The event ring: connection-manager events of the NDK provider (§4).
        let Some((eq_va, eq_pa)) = alloc_ring(a, logic::EQ_BYTES, logic::EQ_ALIGN) else {
            return NDIS_STATUS_RESOURCES;
        };
        (*a).eq_va = eq_va;
        (*a).eq_pa = eq_pa;

        // 7. Program the rings.
        let (lo, hi) = logic::split_phys(asq_pa);
        wr(a, reg::ASQ_BASE_LO, lo);
        wr(a, reg::ASQ_BASE_HI, hi);
        wr(a, reg::ASQ_SIZE, logic::ASQ_ENTRIES);
        let (lo, hi) = logic::split_phys(acq_pa);
        wr(a, reg::ACQ_BASE_LO, lo);
        wr(a, reg::ACQ_BASE_HI, hi);
        wr(a, reg::ACQ_SIZE, logic::ACQ_ENTRIES);
        let (lo, hi) = logic::split_phys(eq_pa);
        wr(a, reg::EQ_BASE_LO, lo);
        wr(a, reg::EQ_BASE_HI, hi);
        wr(a, reg::EQ_SIZE, logic::EQ_ENTRIES);
        (*a).eq = CqCursor::new(logic::EQ_ENTRIES);
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

        // 12. The reset's work item and the link state just reported.
        let status = crate::reset::initialize(a);
        if status != NDIS_STATUS_SUCCESS {
            return status;
        }

        // 13. The NDK provider: verbs limits (QUERY_CAPS) and the NDK attributes.
        crate::ndk::initialize(a)
    }
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
        crate::reset::teardown(a);
        crate::ndk::teardown(a);
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
        if !(*a).eq_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                miniport,
                logic::EQ_BYTES,
                FALSE,
                (*a).eq_va.cast(),
                (*a).eq_pa,
            );
            (*a).eq_va = null_mut();
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

/// MiniportHaltEx. IRQL: PASSIVE_LEVEL. Stops status indications, destroys the queues (a
/// fatal device fails those commands at once), disables the device and releases everything.
///
/// # Safety
/// Called by NDIS with the context registered in InitializeEx.
pub unsafe extern "win64" fn MiniportHaltEx(context: NDIS_HANDLE, action: NDIS_HALT_ACTION) {
    log!("HaltEx (action %u)\n", action);
    // SAFETY: the context is our adapter; `halting` is an atomic.
    unsafe {
        (*context.cast::<Adapter>())
            .health
            .halting
            .store(true, Ordering::Release)
    };
    crate::nmr::adapter_removed(context.cast::<Adapter>());
    // SAFETY: NDIS guarantees no other handler runs for this adapter during or after halt.
    unsafe {
        crate::ethernet::destroy_queues(context.cast::<Adapter>());
        teardown(context.cast::<Adapter>())
    };
    log!("halted\n");
}

/// MiniportPause. IRQL: PASSIVE_LEVEL. Stops new sends (completed at once with
/// `NDIS_STATUS_PAUSED`) and receive indications. With sends still on the TX ring or receive
/// indications not yet returned it returns `NDIS_STATUS_PENDING`, and the last of them to
/// complete or come back calls NdisMPauseComplete (`crate::pause::nbl_finished`), exactly
/// once; otherwise the adapter is Paused at once.
pub unsafe extern "win64" fn MiniportPause(
    context: NDIS_HANDLE,
    _params: *mut c_void,
) -> NDIS_STATUS {
    // SAFETY: context is our adapter.
    let decision = unsafe { (*context.cast::<Adapter>()).data_path.pause() };
    match decision {
        crate::data_path::Pause::Now => {
            log!("Pause\n");
            NDIS_STATUS_SUCCESS
        }
        crate::data_path::Pause::Pends(outstanding) => {
            log!("Pause pends (%u NBLs outstanding)\n", outstanding);
            NDIS_STATUS_PENDING
        }
        crate::data_path::Pause::NotRunning => {
            log!("Pause of an adapter that is not Running (ignored)\n");
            NDIS_STATUS_SUCCESS
        }
    }
}

/// MiniportRestart. IRQL: PASSIVE_LEVEL. Lets sends and indications flow again; fails with
/// `NDIS_STATUS_FAILURE` (changing nothing) unless the adapter is Paused.
pub unsafe extern "win64" fn MiniportRestart(
    context: NDIS_HANDLE,
    _params: *mut c_void,
) -> NDIS_STATUS {
    // SAFETY: context is our adapter.
    if unsafe { (*context.cast::<Adapter>()).data_path.restart() } {
        log!("Restart\n");
        NDIS_STATUS_SUCCESS
    } else {
        log!("Restart of an adapter that is not Paused: refused\n");
        NDIS_STATUS_FAILURE
    }
}

/// MiniportDevicePnPEventNotify. IRQL: PASSIVE_LEVEL. No PnP event needs action.
pub unsafe extern "win64" fn MiniportDevicePnPEventNotify(
    _context: NDIS_HANDLE,
    _event: *mut c_void,
) {
}

/// MiniportShutdownEx. IRQL: PASSIVE_LEVEL, or HIGH_LEVEL on a bug check: only stops the
/// device and calls nothing.
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
