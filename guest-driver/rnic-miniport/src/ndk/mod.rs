//! The NDK provider (NDKPI 1.2): registration with NDIS, the NDK state of an adapter
//! (capabilities, enable/disable and its PnP announcement), `OpenNDKAdapterHandler` /
//! `CloseNDKAdapterHandler`, and the machinery every NDK object shares: object allocation,
//! deferred work at PASSIVE_LEVEL, and admin commands whose completion the admin-queue DPC
//! delivers by command id.
//!
//! Objects live in `adapter` (the NDK adapter), `pd`, `cq`, `mr`, `qp` and `cm` (connectors
//! and listeners). Every NDK entry point
//! may run at DISPATCH_LEVEL and never blocks: whatever needs PASSIVE_LEVEL (shared memory for
//! rings and page lists, waiting for the device) runs in an NDIS I/O work item ([`Job`]), and
//! the entry point returns `STATUS_PENDING`; the completion callback then runs exactly once,
//! from the work item or from the admin-completion DPC. Closing a parent that still has
//! children fails with `STATUS_DEVICE_BUSY` and changes nothing (NDK requires consumers to
//! close children first).

pub(crate) mod adapter;
pub(crate) mod cm;
pub(crate) mod cq;
pub(crate) mod mr;
pub(crate) mod pd;
pub(crate) mod qp;

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{addr_of_mut, null_mut, write_bytes};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};

use ndis_abi::*;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::logic::{self, AdminCompletion};
use crate::ndk_logic::{self, Caps};

/// Pool tag of NDK objects ("rndk").
pub(crate) const NDK_TAG: u32 = pool_tag(*b"rndk");
/// First admin command id of the NDK provider; slot `i` of the pending table uses
/// `PENDING_ID_BASE + i` (the bring-up, OID and Ethernet commands use ids below 0x100).
pub(crate) const PENDING_ID_BASE: u16 = 0x100;
/// Admin commands the NDK provider can have in flight at once.
pub(crate) const PENDING_SLOTS: usize = 32;
/// CQs the driver tracks for interrupt dispatch (the capabilities report no more).
pub(crate) const CQ_SLOTS: usize = 256;
/// How long a work item waits for one admin completion.
const ADMIN_WAIT_MS: u32 = 2000;

/// An admin command waiting for its completion: either a work item blocked on `event`
/// (`on_dpc` None) or a request completed from the DPC by `on_dpc(owner, completion)`.
#[repr(C)]
pub(crate) struct Pending {
    /// Signalled by the DPC once the results are stored (waiting mode).
    pub event: NDIS_EVENT,
    /// Completion status (admin status code).
    pub status: AtomicU32,
    /// Result 0.
    pub result0: AtomicU32,
    /// Result 1.
    pub result1: AtomicU32,
    /// Set by the DPC after its last access to this record.
    pub done: AtomicBool,
    /// DPC-mode handler (DISPATCH_LEVEL), called with `owner`.
    pub on_dpc: Option<unsafe fn(owner: *mut c_void, c: &AdminCompletion)>,
    /// What `on_dpc` acts on.
    pub owner: *mut c_void,
}

/// The NDK state of one adapter (part of the zero-initialised adapter context: all-zero is
/// "NDK not set up").
#[repr(C)]
pub(crate) struct NdkState {
    /// The device's verbs limits (`QUERY_CAPS` at InitializeEx).
    pub caps: Caps,
    /// What `NdkQueryAdapterInfo` reports.
    pub info: NDK_ADAPTER_INFO,
    /// Whether NDK is enabled (`OID_NDK_SET_STATE`; starts enabled).
    pub enabled: AtomicBool,
    /// The NDK state last announced with `NdisMNetPnPEvent` (the work item compares).
    pub announced: AtomicBool,
    /// The announcement work item is queued or running.
    pub announcing: AtomicBool,
    /// The work item that announces enable/disable (allocated at InitializeEx).
    pub pnp_item: NDIS_HANDLE,
    /// Open NDK adapters.
    pub open_adapters: AtomicU32,
    /// Live NDK objects other than adapters (PD, CQ, MR, QP, connector, listener), for the
    /// halt check.
    pub live_objects: AtomicU32,
    /// Jobs queued or running.
    pub jobs_in_flight: AtomicU32,
    /// Admin commands in flight, by command id - [`PENDING_ID_BASE`].
    pub pending: [AtomicPtr<Pending>; PENDING_SLOTS],
    /// Live CQs by slot (interrupt dispatch).
    pub cqs: [AtomicPtr<cq::Cq>; CQ_SLOTS],
    /// Live QPs by slot (QPN -> QP context of completions).
    pub qps: qp::QpTable,
    /// Connectors and listeners by device id (connection-manager events).
    pub cm: cm::CmTables,
    /// Key byte of the next registration (varied so stale keys stop matching).
    pub next_key_byte: AtomicU8,
    /// The verbs port's IPv4 and IPv6 addresses (extended `QUERY_DEVICE`): what wildcard
    /// listeners and unbound connectors report, and which source addresses are the port's.
    pub port: ndk_logic::PortAddresses,
    /// Jobs reserved for closes, chained through [`Job::next`] (guarded by
    /// `reserve_lock`): every object created reserves one ([`reserve_close`]) and its close
    /// takes one ([`defer_close`]), because a close may never fail for lack of memory.
    pub reserved: *mut Job,
    /// Held while `reserved` is pushed or popped.
    pub reserve_lock: AtomicBool,
}

/// Reads `QUERY_CAPS` (verbs limits) and `QUERY_DEVICE` (the port's IPv4 and IPv6 addresses) and fills
/// the NDK state (InitializeEx, PASSIVE_LEVEL), then sets the NDK attributes. A failed query
/// fails InitializeEx.
///
/// # Safety
/// `a` is a live adapter context in bring-up, its admin queue live.
pub(crate) unsafe fn initialize(a: *mut Adapter) -> NDIS_STATUS {
    // SAFETY: (whole body) `a` is live and owned by bring-up; the FFI calls get valid
    // pointers; the record buffers are shared memory read after their completion.
    unsafe {
        let Some((record, _)) = query_record::<{ rnic_contract::admin::QUERY_RECORD_SIZE }>(
            a,
            rnic_contract::admin::opcode::QUERY_CAPS,
            ndk_logic::query_caps_operands,
        ) else {
            return NDIS_STATUS_FAILURE;
        };
        let Some((device, written)) = query_record::<{ rnic_contract::admin::QUERY_DEVICE_EXT_SIZE }>(
            a,
            rnic_contract::admin::opcode::QUERY_DEVICE,
            ndk_logic::query_device_operands,
        ) else {
            return NDIS_STATUS_FAILURE;
        };
        (*a).ndk.port = ndk_logic::PortAddresses::from_query_device(&device, written);
        let ndk = addr_of_mut!((*a).ndk);
        let mut caps = Caps::parse(&record);
        caps.max_cq = caps.max_cq.min(CQ_SLOTS as u32);
        (*ndk).caps = caps;
        (*ndk).info = ndk_logic::adapter_info(&caps);
        (*ndk).enabled.store(true, Ordering::Release);
        (*ndk).announced.store(true, Ordering::Release);
        (*ndk).next_key_byte.store(1, Ordering::Relaxed);
        (*ndk).pnp_item = ffi::NdisAllocateIoWorkItem((*a).miniport);
        if (*ndk).pnp_item.is_null() {
            return NDIS_STATUS_RESOURCES;
        }
        log!(
            "NDK: %u QPs, %u CQs, %u MRs, %u PDs, %u SGEs, %u inline bytes\n",
            caps.max_qp,
            caps.max_cq,
            caps.max_mr,
            caps.max_pd,
            u32::from(caps.max_send_sge),
            u32::from(caps.max_inline)
        );
        let mut capabilities = ndk_logic::capabilities(&caps, addr_of_mut!((*ndk).info));
        let mut attrs = NDIS_MINIPORT_ADAPTER_ATTRIBUTES {
            NdkAttributes: NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES {
                Header: NDIS_OBJECT_HEADER::new(
                    NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES,
                    NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1,
                    NDIS_SIZEOF_MINIPORT_ADAPTER_NDK_ATTRIBUTES_REVISION_1,
                ),
                Enabled: TRUE,
                NdkCapabilities: &mut capabilities,
            },
        };
        let status = ffi::NdisMSetMiniportAttributes((*a).miniport, &mut attrs);
        if status != NDIS_STATUS_SUCCESS {
            log!("NDK attributes refused: %x\n", status);
            return status;
        }
        NDIS_STATUS_SUCCESS
    }
}

/// Runs one bring-up query command whose result is a record of at most `N` bytes (the
/// operands name an `N`-byte buffer) (InitializeEx, PASSIVE_LEVEL): the record and the
/// bytes the device wrote (its r0); None when it failed (logged).
///
/// # Safety
/// `a` is a live adapter context in bring-up, its admin queue live.
unsafe fn query_record<const N: usize>(
    a: *mut Adapter,
    opcode: u8,
    operands: fn(u64) -> [u32; 14],
) -> Option<([u8; N], usize)> {
    // SAFETY: the buffer is N bytes of shared memory, read after the completion and freed.
    unsafe {
        let (va, pa) = hw::alloc_ring(a, N as u32, 8)?;
        let result = hw::admin_wait(a, opcode, logic::NOP_COMMAND_ID, &operands(pa as u64));
        let mut record = [0u8; N];
        for (i, b) in record.iter_mut().enumerate() {
            *b = core::ptr::read_volatile(va.add(i));
        }
        ffi::NdisMFreeSharedMemory((*a).miniport, N as u32, FALSE, va.cast(), pa);
        match result {
            Some((status, written)) if status == logic::ADMIN_STATUS_SUCCESS => {
                Some((record, (written as usize).min(N)))
            }
            Some((status, _)) => {
                log!("query %x failed: status %x\n", opcode as u32, status as u32);
                None
            }
            None => None,
        }
    }
}

/// Releases the NDK state at halt (PASSIVE_LEVEL): the announcement work item. Logs objects
/// a consumer left open (NDIS closes every NDK adapter before halting, so there should be
/// none).
///
/// # Safety
/// `a` is a live adapter context being torn down.
pub(crate) unsafe fn teardown(a: *mut Adapter) {
    // SAFETY: `a` is live; the work item is freed once, after its last run (NDIS's work items
    // keep the miniport from halting while they run).
    unsafe {
        let ndk = addr_of_mut!((*a).ndk);
        let live = (*ndk).live_objects.load(Ordering::Acquire);
        let open = (*ndk).open_adapters.load(Ordering::Acquire);
        if live != 0 || open != 0 {
            log!(
                "NDK at halt: %u objects and %u adapters still open\n",
                live,
                open
            );
        }
        if !(*ndk).pnp_item.is_null() {
            ffi::NdisFreeIoWorkItem((*ndk).pnp_item);
            (*ndk).pnp_item = null_mut();
        }
        // Reservations no close took (objects whose create failed after reserving).
        while let Some(job) = take_reserved(a) {
            ffi::NdisFreeIoWorkItem((*job).item);
            free(job);
        }
    }
}

/// The NDK provider characteristics given to `NdisSetOptionalHandlers` from
/// MiniportSetOptions (PASSIVE_LEVEL).
///
/// # Safety
/// `driver_handle` is the handle MiniportSetOptions received.
pub(crate) unsafe fn register(driver_handle: NDIS_HANDLE) -> NDIS_STATUS {
    let mut handlers = NDIS_DRIVER_OPTIONAL_HANDLERS {
        NdkProviderCharacteristics: NDIS_NDK_PROVIDER_CHARACTERISTICS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS,
                NDIS_NDK_PROVIDER_CHARACTERISTICS_REVISION_1,
                NDIS_SIZEOF_NDK_PROVIDER_CHARACTERISTICS_REVISION_1,
            ),
            Flags: 0,
            OpenNDKAdapterHandler: Some(adapter::OpenNdkAdapter),
            CloseNDKAdapterHandler: Some(adapter::CloseNdkAdapter),
        },
    };
    // SAFETY: FFI call with a valid pointer to a local NDIS copies.
    unsafe { ffi::NdisSetOptionalHandlers(driver_handle, &mut handlers) }
}

// ---------------------------------------------------------------------------------------------
// OID_NDK_SET_STATE and its announcement

/// `OID_NDK_SET_STATE` (IRQL <= DISPATCH_LEVEL, never pends): records the state and queues
/// the work item that announces it with `NdisMNetPnPEvent` (PASSIVE_LEVEL, outside the OID
/// handler).
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn set_state(a: *mut Adapter, enable: bool) -> NDIS_STATUS {
    // SAFETY: `a` is live; the work item is queued at most once at a time (`announcing`).
    unsafe {
        let ndk = addr_of_mut!((*a).ndk);
        if (*ndk).pnp_item.is_null() {
            return NDIS_STATUS_NOT_SUPPORTED;
        }
        (*ndk).enabled.store(enable, Ordering::Release);
        log!(
            "NDK %s\n",
            if enable {
                c"enabled".as_ptr()
            } else {
                c"disabled".as_ptr()
            }
        );
        if !(*ndk).announcing.swap(true, Ordering::AcqRel) {
            ffi::NdisQueueIoWorkItem((*ndk).pnp_item, announce_worker, a.cast());
        }
        NDIS_STATUS_SUCCESS
    }
}

/// Work item (PASSIVE_LEVEL): sends `NetEventNDKEnable` / `NetEventNDKDisable` for every
/// change of the NDK state since the last announcement.
unsafe extern "win64" fn announce_worker(context: *mut c_void, _item: NDIS_HANDLE) {
    let a = context.cast::<Adapter>();
    // SAFETY: the adapter outlives its work items (NDIS holds the miniport while they run).
    unsafe {
        let ndk = addr_of_mut!((*a).ndk);
        loop {
            let want = (*ndk).enabled.load(Ordering::Acquire);
            if want != (*ndk).announced.load(Ordering::Acquire) {
                let mut n = NET_PNP_EVENT_NOTIFICATION::new(if want {
                    NetEventNDKEnable
                } else {
                    NetEventNDKDisable
                });
                let status = ffi::NdisMNetPnPEvent((*a).miniport, &mut n);
                log!(
                    "NDK %s announced: %x\n",
                    if want {
                        c"enable".as_ptr()
                    } else {
                        c"disable".as_ptr()
                    },
                    status
                );
                (*ndk).announced.store(want, Ordering::Release);
            }
            (*ndk).announcing.store(false, Ordering::Release);
            // A change after the check, whose setter saw `announcing` still set: go again.
            if (*ndk).enabled.load(Ordering::Acquire) == (*ndk).announced.load(Ordering::Acquire)
                || (*ndk).announcing.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

/// Allocates a zeroed `T` from nonpaged pool (IRQL <= DISPATCH_LEVEL); null when out of
/// memory.
///
/// # Safety
/// `a` is a live adapter context; `T` is valid all-zero.
pub(crate) unsafe fn alloc_zeroed<T>(a: *mut Adapter) -> *mut T {
    // SAFETY: FFI allocation of `size_of::<T>()` bytes, zeroed before use.
    unsafe {
        let p = ffi::NdisAllocateMemoryWithTagPriority(
            (*a).miniport,
            size_of::<T>() as u32,
            NDK_TAG,
            NormalPoolPriority,
        )
        .cast::<T>();
        if !p.is_null() {
            write_bytes(p.cast::<u8>(), 0, size_of::<T>());
        }
        p
    }
}

/// Allocates a zeroed NDK object `T` (IRQL <= DISPATCH_LEVEL) and reserves the job its close
/// will run ([`reserve_close`]); null when out of memory (nothing left allocated).
///
/// # Safety
/// As [`alloc_zeroed`]; the object is freed with [`free`].
pub(crate) unsafe fn alloc_object<T>(a: *mut Adapter) -> *mut T {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let p = alloc_zeroed::<T>(a);
        if !p.is_null() && !reserve_close(a) {
            free(p);
            return null_mut();
        }
        p
    }
}

/// Frees what [`alloc_zeroed`] returned.
///
/// # Safety
/// `p` came from `alloc_zeroed::<T>` and is not used afterwards.
pub(crate) unsafe fn free<T>(p: *mut T) {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::NdisFreeMemory(p.cast(), size_of::<T>() as u32, 0) }
}

/// `NdkQueryExtension` of every object (IRQL <= DISPATCH_LEVEL): the provider has no
/// extension interface.
pub(crate) unsafe extern "win64" fn query_extension(
    _object: *mut NDK_OBJECT_HEADER,
    _id: *mut GUID,
    _version: NDK_VERSION,
    _out: *mut NDK_EXTENSION_INTERFACE,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

// ---------------------------------------------------------------------------------------------
// Deferred work (PASSIVE_LEVEL) and admin commands

/// What a [`Job`] does at PASSIVE_LEVEL: `run(a, object)`.
pub(crate) type JobFn = unsafe fn(a: *mut Adapter, object: *mut c_void);

/// A piece of work an NDK entry point defers to an NDIS I/O work item.
#[repr(C)]
pub(crate) struct Job {
    /// The adapter.
    pub a: *mut Adapter,
    /// The work item running this job.
    pub item: NDIS_HANDLE,
    /// What to run.
    pub run: JobFn,
    /// Its argument.
    pub object: *mut c_void,
    /// The next reserved job ([`NdkState::reserved`]; null when queued).
    pub next: *mut Job,
}

/// A job and its work item, or None when out of memory (nothing left allocated).
///
/// # Safety
/// `a` is a live adapter context; IRQL <= DISPATCH_LEVEL.
unsafe fn new_job(a: *mut Adapter) -> Option<*mut Job> {
    // SAFETY: FFI allocations with checked results.
    unsafe {
        let job = alloc_zeroed::<Job>(a);
        if job.is_null() {
            return None;
        }
        let item = ffi::NdisAllocateIoWorkItem((*a).miniport);
        if item.is_null() {
            free(job);
            return None;
        }
        (*job).a = a;
        (*job).item = item;
        Some(job)
    }
}

/// Queues `job` to run `run(a, object)`; its worker frees it.
///
/// # Safety
/// `job` came from [`new_job`] for `a` and is not queued; `object` stays valid until `run` is
/// done with it.
unsafe fn queue(a: *mut Adapter, job: *mut Job, run: JobFn, object: *mut c_void) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*job).run = run;
        (*job).object = object;
        (*job).next = null_mut();
        (*a).ndk.jobs_in_flight.fetch_add(1, Ordering::AcqRel);
        ffi::NdisQueueIoWorkItem((*job).item, job_worker, job.cast());
    }
}

/// Reserves the job the close of one object about to be created will run (IRQL <=
/// DISPATCH_LEVEL). False when out of memory: the create then fails with
/// `STATUS_INSUFFICIENT_RESOURCES` (a close cannot fail: NDK_FN_CLOSE_COMPLETION).
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn reserve_close(a: *mut Adapter) -> bool {
    // SAFETY: the list is only touched under `reserve_lock`; `job` is fresh.
    unsafe {
        let Some(job) = new_job(a) else {
            return false;
        };
        let ndk = addr_of_mut!((*a).ndk);
        while (*ndk).reserve_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        (*job).next = (*ndk).reserved;
        (*ndk).reserved = job;
        (*ndk).reserve_lock.store(false, Ordering::Release);
        true
    }
}

/// Takes one reserved job (None when there is none).
///
/// # Safety
/// `a` is a live adapter context.
unsafe fn take_reserved(a: *mut Adapter) -> Option<*mut Job> {
    // SAFETY: the list is only touched under `reserve_lock`.
    unsafe {
        let ndk = addr_of_mut!((*a).ndk);
        while (*ndk).reserve_lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let job = (*ndk).reserved;
        if !job.is_null() {
            (*ndk).reserved = (*job).next;
        }
        (*ndk).reserve_lock.store(false, Ordering::Release);
        (!job.is_null()).then_some(job)
    }
}

/// Queues a close's `run(a, object)` on the job its object reserved at create (IRQL <=
/// DISPATCH_LEVEL): allocates nothing, so it does not fail for lack of memory. False only
/// when no job was reserved and none can be allocated.
///
/// # Safety
/// As [`defer`]; the object was created with [`reserve_close`].
pub(crate) unsafe fn defer_close(a: *mut Adapter, run: JobFn, object: *mut c_void) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match take_reserved(a) {
            Some(job) => {
                queue(a, job, run, object);
                true
            }
            None => defer(a, run, object),
        }
    }
}

/// Queues `run(a, object)` on a work item (IRQL <= DISPATCH_LEVEL). False when out of
/// memory (nothing queued).
///
/// # Safety
/// `a` is a live adapter context; `object` stays valid until `run` is done with it.
pub(crate) unsafe fn defer(a: *mut Adapter, run: JobFn, object: *mut c_void) -> bool {
    // SAFETY: the job is fresh and freed by its worker.
    unsafe {
        let Some(job) = new_job(a) else {
            return false;
        };
        queue(a, job, run, object);
        true
    }
}

/// The work-item routine of every [`Job`] (PASSIVE_LEVEL).
unsafe extern "win64" fn job_worker(context: *mut c_void, item: NDIS_HANDLE) {
    let job = context.cast::<Job>();
    // SAFETY: `job` is the record `defer` queued; it is read, run and freed here only.
    unsafe {
        let (a, run, object) = ((*job).a, (*job).run, (*job).object);
        free(job);
        ffi::NdisFreeIoWorkItem(item);
        run(a, object);
        (*a).ndk.jobs_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Claims a pending-table slot for `p`; its command id, or None when all are taken.
///
/// # Safety
/// `a` is live; `p` stays valid until the DPC has set `done`.
unsafe fn claim_slot(a: *mut Adapter, p: *mut Pending) -> Option<u16> {
    // SAFETY: atomics of the live context.
    unsafe {
        for (i, slot) in (*a).ndk.pending.iter().enumerate() {
            if slot
                .compare_exchange(null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(PENDING_ID_BASE + i as u16);
            }
        }
    }
    None
}

/// Submits `opcode` with `p` as its pending record, waiting (PASSIVE_LEVEL, bounded) for a
/// free ASQ slot and a free pending slot. False if neither came free in time (nothing
/// submitted; `p` not referenced).
///
/// # Safety
/// `a` is live; PASSIVE_LEVEL; `p` stays valid until its completion sets `done`.
unsafe fn submit_pending(a: *mut Adapter, opcode: u8, ops: &[u32; 14], p: *mut Pending) -> bool {
    // SAFETY: `a`, `p` valid per the contract; the sleep event is a local.
    unsafe {
        let mut sleep = NDIS_EVENT::default();
        ffi::NdisInitializeEvent(&mut sleep);
        for _ in 0..ADMIN_WAIT_MS {
            if let Some(id) = claim_slot(a, p) {
                let command = logic::encode_command(opcode, id, ops);
                loop {
                    if hw::try_submit(a, &command) {
                        return true;
                    }
                    // The ASQ is busy: wait 1 ms for the DPC to consume completions.
                    ffi::NdisWaitEvent(&mut sleep, 1);
                    if (*a).asq_in_flight.load(Ordering::Acquire) >= hw::ASQ_NDK_LIMIT
                        && !(*a).rings_live.load(Ordering::Acquire)
                    {
                        (*a).ndk.pending[(id - PENDING_ID_BASE) as usize]
                            .store(null_mut(), Ordering::Release);
                        return false;
                    }
                }
            }
            ffi::NdisWaitEvent(&mut sleep, 1);
        }
        false
    }
}

/// Runs one admin command from a work item and waits for its completion (PASSIVE_LEVEL).
/// Returns (admin status, result 0, result 1); a timeout reads as `DEVICE_ERROR`.
///
/// # Safety
/// `a` is a live adapter context with its admin queue live; PASSIVE_LEVEL.
pub(crate) unsafe fn admin_exec(a: *mut Adapter, opcode: u8, ops: &[u32; 14]) -> (u16, u32, u32) {
    const TIMED_OUT: (u16, u32, u32) = (0x15, 0, 0);
    // SAFETY: the pending record lives on this stack frame until the DPC has finished with it
    // (`done`), or until it is taken back from the table unseen.
    unsafe {
        let mut p: Pending = core::mem::zeroed();
        ffi::NdisInitializeEvent(&mut p.event);
        let pp: *mut Pending = &mut p;
        if !submit_pending(a, opcode, ops, pp) {
            log!(
                "NDK: admin command %x not submitted (queue full)\n",
                opcode as u32
            );
            return TIMED_OUT;
        }
        if ffi::NdisWaitEvent(addr_of_mut!((*pp).event), ADMIN_WAIT_MS) == FALSE {
            // Take the record back unless the DPC already has it.
            let mut reclaimed = false;
            for slot in (*a).ndk.pending.iter() {
                if slot
                    .compare_exchange(pp, null_mut(), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    reclaimed = true;
                }
            }
            if reclaimed {
                log!("NDK: admin command %x timed out\n", opcode as u32);
                return TIMED_OUT;
            }
        }
        while !(*pp).done.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        (
            (*pp).status.load(Ordering::Acquire) as u16,
            (*pp).result0.load(Ordering::Acquire),
            (*pp).result1.load(Ordering::Acquire),
        )
    }
}

/// Submits one admin command from a work item whose completion is handled in the DPC by
/// `(*p).on_dpc` (set by the caller with `owner`). False if it could not be submitted.
///
/// # Safety
/// As for [`admin_exec`]; `p` stays valid until `on_dpc` ran.
pub(crate) unsafe fn admin_submit_async(
    a: *mut Adapter,
    opcode: u8,
    ops: &[u32; 14],
    p: *mut Pending,
) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*p).done.store(false, Ordering::Release);
        submit_pending(a, opcode, ops, p)
    }
}

/// The admin-queue DPC hands every completion here first (DISPATCH_LEVEL): true if it was
/// an NDK command (its waiter woken or its DPC handler run).
///
/// # Safety
/// `a` is a live adapter context; called by the single admin-completion consumer.
pub(crate) unsafe fn admin_completed(a: *mut Adapter, c: &AdminCompletion) -> bool {
    let Some(i) = c
        .command_id
        .checked_sub(PENDING_ID_BASE)
        .map(usize::from)
        .filter(|i| *i < PENDING_SLOTS)
    else {
        return false;
    };
    // SAFETY: the record stays valid until `done` is set (waiter) or `on_dpc` ran (async).
    unsafe {
        let p = (*a).ndk.pending[i].swap(null_mut(), Ordering::AcqRel);
        if p.is_null() {
            log!("NDK: completion for idle id %x\n", c.command_id as u32);
            return true;
        }
        (*p).status.store(u32::from(c.status), Ordering::Release);
        (*p).result0.store(c.result0, Ordering::Release);
        (*p).result1.store(c.result1, Ordering::Release);
        match (*p).on_dpc {
            Some(handler) => {
                let owner = (*p).owner;
                (*p).done.store(true, Ordering::Release);
                handler(owner, c);
            }
            None => {
                ffi::NdisSetEvent(addr_of_mut!((*p).event));
                (*p).done.store(true, Ordering::Release);
            }
        }
    }
    true
}

/// The adapter an NDK object belongs to, from the `NdkAdapter` it records.
///
/// # Safety
/// `owner` is a live NDK adapter object.
pub(crate) unsafe fn device_of(owner: *mut adapter::NdkAdapter) -> *mut Adapter {
    // SAFETY: guaranteed by the caller.
    unsafe { (*owner).a }
}
