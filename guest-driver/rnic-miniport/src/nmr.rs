//! rnic.sys as an NMR provider of the RNIC diagnostics NPI (`ndis_abi::nmr`,
//! guest-driver/README.md): DriverEntry registers it ([`register`]), a kernel client that
//! registers for [`NPI_RNIC_DIAGNOSTICS_ID`] attaches and reads each adapter's statistics
//! and the device's fault counters (`GET_STATS`) through [`RNIC_DIAG_PROVIDER_DISPATCH`], and MiniportDriverUnload deregisters it and waits
//! for every detach ([`deregister`]).
//!
//! A binding counts the call sequences a client holds (`ReferenceBinding` /
//! `DereferenceBinding`); a detach arriving while one is in flight returns `STATUS_PENDING` and
//! the last `DereferenceBinding` completes it with NmrProviderDetachClientComplete, exactly
//! once. Adapters are published here by MiniportInitializeEx ([`adapter_added`]) and withdrawn
//! by MiniportHaltEx ([`adapter_removed`]), which waits for statistics readers to leave.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use ndis_abi::*;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::nmr_binding::{BindingState, Detach, Release};

#[link(name = "netio.sys", kind = "raw-dylib", modifiers = "+verbatim")]
extern "win64" {
    fn NmrRegisterProvider(
        ProviderCharacteristics: *const NPI_PROVIDER_CHARACTERISTICS,
        ProviderContext: *mut c_void,
        NmrProviderHandle: *mut *mut c_void,
    ) -> NTSTATUS;
    fn NmrDeregisterProvider(NmrProviderHandle: *mut c_void) -> NTSTATUS;
    fn NmrWaitForProviderDeregisterComplete(NmrProviderHandle: *mut c_void) -> NTSTATUS;
    fn NmrProviderDetachClientComplete(NmrBindingHandle: *mut c_void);
}

/// Never called: makes the compiler compare each netio.sys declaration with the ABI typedef.
#[allow(dead_code)]
fn signature_checks() {
    let _: NmrRegisterProviderFn = NmrRegisterProvider;
    let _: NmrDeregisterProviderFn = NmrDeregisterProvider;
    let _: NmrWaitForProviderDeregisterCompleteFn = NmrWaitForProviderDeregisterComplete;
    let _: NmrProviderDetachClientCompleteFn = NmrProviderDetachClientComplete;
}

/// Most adapters whose statistics the NPI reports (further adapters are not published).
const MAX_ADAPTERS: usize = 4;
/// Pool tag of binding contexts.
const TAG: u32 = u32::from_le_bytes(*b"rNmr");

/// The provider's registration data; NMR requires it resident while registered.
struct Resident(NPI_PROVIDER_CHARACTERISTICS);
// SAFETY: the raw pointers inside refer to immutable statics; nothing ever writes through them.
unsafe impl Sync for Resident {}

static NPI_ID: NPIID = NPI_RNIC_DIAGNOSTICS_ID;
static MODULE_ID: NPI_MODULEID = NPI_MODULEID {
    Length: size_of::<NPI_MODULEID>() as u16,
    Type: MIT_GUID,
    Guid: RNIC_NMR_MODULE_GUID,
};
static CHARACTERISTICS: Resident = Resident(NPI_PROVIDER_CHARACTERISTICS {
    Version: 0,
    Length: size_of::<NPI_PROVIDER_CHARACTERISTICS>() as u16,
    ProviderAttachClient: Some(ProviderAttachClient),
    ProviderDetachClient: Some(ProviderDetachClient),
    ProviderCleanupBindingContext: Some(ProviderCleanupBindingContext),
    ProviderRegistrationInstance: NPI_REGISTRATION_INSTANCE {
        Version: 0,
        Size: size_of::<NPI_REGISTRATION_INSTANCE>() as u16,
        NpiId: &NPI_ID,
        ModuleId: &MODULE_ID,
        Number: 0,
        NpiSpecificCharacteristics: null(),
    },
});
static DISPATCH: RNIC_DIAG_PROVIDER_DISPATCH = RNIC_DIAG_PROVIDER_DISPATCH {
    Version: RNIC_DIAG_DISPATCH_VERSION,
    Size: size_of::<RNIC_DIAG_PROVIDER_DISPATCH>() as u16,
    QueryAdapterStatistics: Some(QueryAdapterStatistics),
    ReferenceBinding: Some(ReferenceBinding),
    DereferenceBinding: Some(DereferenceBinding),
    QueryDeviceFaultCounters: Some(QueryDeviceFaultCounters),
};

/// The NMR's handle of the registration (null: not registered).
static PROVIDER_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// The NDIS driver handle binding contexts are allocated with.
static DRIVER_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// The initialized adapters, by index (null: free slot).
static ADAPTERS: [AtomicPtr<Adapter>; MAX_ADAPTERS] =
    [const { AtomicPtr::new(null_mut()) }; MAX_ADAPTERS];
/// Statistics reads in progress (an adapter leaves only when none is).
static READERS: AtomicU32 = AtomicU32::new(0);
/// Held by the one `QueryDeviceFaultCounters` waiting for the device (the adapter has one
/// admin wait slot).
static FAULT_READ_BUSY: AtomicBool = AtomicBool::new(false);
/// Command id of the `GET_STATS` the diagnostics NPI submits.
const STATS_COMMAND_ID: u16 = 4;

/// One client's binding (the provider binding context).
struct Binding {
    /// The NMR's binding handle (for NmrProviderDetachClientComplete).
    nmr_binding: *mut c_void,
    /// References held by the client, and whether a detach began.
    state: BindingState,
}

/// Registers the diagnostics NPI provider. IRQL: PASSIVE_LEVEL (DriverEntry, after
/// NdisMRegisterMiniportDriver succeeded: `driver` is its handle). Returns the NMR's status.
///
/// # Safety
/// Called once, from DriverEntry.
pub unsafe fn register(driver: NDIS_HANDLE) -> NTSTATUS {
    DRIVER_HANDLE.store(driver, Ordering::Release);
    let mut handle: *mut c_void = null_mut();
    // SAFETY: the characteristics are a resident static; `handle` is a live local.
    let status = unsafe { NmrRegisterProvider(&CHARACTERISTICS.0, null_mut(), &mut handle) };
    if nt_success(status) {
        PROVIDER_HANDLE.store(handle, Ordering::Release);
        log!("NMR provider registered (diagnostics NPI)\n");
    } else {
        log!("NmrRegisterProvider failed: %x\n", status);
    }
    status
}

/// Deregisters the provider and waits until every client detached. IRQL: PASSIVE_LEVEL
/// (MiniportDriverUnload). Does nothing when not registered.
///
/// # Safety
/// Called from MiniportDriverUnload.
pub unsafe fn deregister() {
    let handle = PROVIDER_HANDLE.swap(null_mut(), Ordering::AcqRel);
    if handle.is_null() {
        return;
    }
    // SAFETY: `handle` came from NmrRegisterProvider and is deregistered once (swapped out).
    let status = unsafe { NmrDeregisterProvider(handle) };
    log!("NmrDeregisterProvider: %x\n", status);
    // SAFETY: as above; the wait is required whatever NmrDeregisterProvider returned.
    let waited = unsafe { NmrWaitForProviderDeregisterComplete(handle) };
    log!("NMR provider deregistered (wait: %x)\n", waited);
}

/// Publishes an initialized adapter to the NPI. IRQL: PASSIVE_LEVEL (end of
/// MiniportInitializeEx).
pub fn adapter_added(a: *mut Adapter) {
    for slot in &ADAPTERS {
        if slot
            .compare_exchange(null_mut(), a, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// Withdraws an adapter before it is torn down, waiting for statistics reads in progress.
/// IRQL: PASSIVE_LEVEL (MiniportHaltEx, or a failed MiniportInitializeEx).
pub fn adapter_removed(a: *mut Adapter) {
    for slot in &ADAPTERS {
        let _ = slot.compare_exchange(a, null_mut(), Ordering::AcqRel, Ordering::Acquire);
    }
    while READERS.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
}

/// ProviderAttachClient. IRQL: PASSIVE_LEVEL. Allocates the binding and hands out the
/// diagnostics dispatch table.
unsafe extern "win64" fn ProviderAttachClient(
    nmr_binding: *mut c_void,
    _provider_context: *mut c_void,
    client: *const NPI_REGISTRATION_INSTANCE,
    _client_binding_context: *mut c_void,
    _client_dispatch: *const c_void,
    provider_binding_context: *mut *mut c_void,
    provider_dispatch: *mut *const c_void,
) -> NTSTATUS {
    if client.is_null() || provider_binding_context.is_null() || provider_dispatch.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let size = size_of::<Binding>() as u32;
    let driver = DRIVER_HANDLE.load(Ordering::Acquire);
    // SAFETY: FFI allocation with the driver handle; the result is checked before use.
    let b =
        unsafe { ffi::NdisAllocateMemoryWithTagPriority(driver, size, TAG, NormalPoolPriority) }
            .cast::<Binding>();
    if b.is_null() {
        log!("NMR attach: no memory for the binding\n");
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: `b` is a fresh allocation of `size` bytes, suitably aligned (pool memory); the
    // output pointers were checked non-null and are the NMR's.
    unsafe {
        b.write(Binding {
            nmr_binding,
            state: BindingState::new(),
        });
        *provider_binding_context = b.cast();
        *provider_dispatch = (&raw const DISPATCH).cast();
    }
    log!("NMR client attached (binding %p)\n", b);
    STATUS_SUCCESS
}

/// ProviderDetachClient. IRQL: <= DISPATCH_LEVEL. Detached at once when the client holds no
/// reference; otherwise `STATUS_PENDING`, completed by the last DereferenceBinding.
unsafe extern "win64" fn ProviderDetachClient(context: *mut c_void) -> NTSTATUS {
    let b = context.cast::<Binding>();
    // SAFETY: the NMR passes the binding context this provider returned from attach; it lives
    // until ProviderCleanupBindingContext.
    match unsafe { (*b).state.detach() } {
        Detach::Now => {
            log!("NMR detach: done\n");
            STATUS_SUCCESS
        }
        Detach::Pends(held) => {
            log!("NMR detach pends (%u call sequence(s) in flight)\n", held);
            STATUS_PENDING
        }
    }
}

/// ProviderCleanupBindingContext. IRQL: <= DISPATCH_LEVEL. Frees the binding.
unsafe extern "win64" fn ProviderCleanupBindingContext(context: *mut c_void) {
    log!("NMR binding cleaned up\n");
    // SAFETY: the context is the pool block allocated in attach; the NMR calls cleanup once,
    // after both sides detached, so nothing uses it any more.
    unsafe { ffi::NdisFreeMemory(context, size_of::<Binding>() as u32, 0) };
}

/// QueryAdapterStatistics of the diagnostics NPI. IRQL: <= DISPATCH_LEVEL.
unsafe extern "win64" fn QueryAdapterStatistics(
    context: *mut c_void,
    index: u32,
    stats: *mut RNIC_DIAG_ADAPTER_STATISTICS,
) -> NTSTATUS {
    // SAFETY: `stats` is the caller's statistics record (or NULL), led by its Size.
    let a = match unsafe { enter_for(context, stats, index) } {
        Ok(a) => a,
        Err(status) => return status,
    };
    // SAFETY: a published adapter stays valid while READERS is non-zero (halt waits).
    let [sent, received, send_errors, receive_errors, no_buffer] = unsafe { (*a).counters() };
    // SAFETY: checked non-null above; the caller owns the buffer.
    unsafe {
        stats.write(RNIC_DIAG_ADAPTER_STATISTICS {
            Size: size_of::<RNIC_DIAG_ADAPTER_STATISTICS>() as u32,
            AdapterIndex: index,
            FramesSent: sent,
            FramesReceived: received,
            SendErrors: send_errors,
            ReceiveErrors: receive_errors,
            ReceiveNoBuffer: no_buffer,
        })
    };
    leave();
    STATUS_SUCCESS
}

/// The published adapter of `index` with a statistics reader counted (halt waits for it to
/// leave: the caller calls [`leave`]); None (not counted) when there is none.
fn enter(index: u32) -> Option<*mut Adapter> {
    let slot = ADAPTERS.get(index as usize)?;
    READERS.fetch_add(1, Ordering::AcqRel);
    let a = slot.load(Ordering::Acquire);
    if a.is_null() {
        leave();
        return None;
    }
    Some(a)
}

/// [`enter`] for a dispatch call that fills the caller's record `out` of type `T`:
/// `STATUS_INVALID_PARAMETER` for a NULL binding context or record, or a record whose `Size`
/// (set by the caller) is not `size_of::<T>()`; `STATUS_NOT_FOUND` for no adapter of `index`.
///
/// # Safety
/// `out`, when non-null, points to the caller's `T`, whose first field is its `u32` `Size`.
unsafe fn enter_for<T>(
    context: *mut c_void,
    out: *mut T,
    index: u32,
) -> Result<*mut Adapter, NTSTATUS> {
    if context.is_null() || out.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a non-null record led by its u32 Size, by this function's contract.
    if unsafe { out.cast::<u32>().read() } != size_of::<T>() as u32 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    enter(index).ok_or(STATUS_NOT_FOUND)
}

/// Ends what [`enter`] began.
fn leave() {
    READERS.fetch_sub(1, Ordering::AcqRel);
}

/// QueryDeviceFaultCounters of the diagnostics NPI (dispatch version 2). IRQL: PASSIVE_LEVEL:
/// it submits `GET_STATS` and waits for the device's completion.
unsafe extern "win64" fn QueryDeviceFaultCounters(
    context: *mut c_void,
    index: u32,
    counters: *mut RNIC_DIAG_DEVICE_FAULT_COUNTERS,
) -> NTSTATUS {
    // SAFETY: `counters` is the caller's fault-counter record (or NULL), led by its Size.
    let a = match unsafe { enter_for(context, counters, index) } {
        Ok(a) => a,
        Err(status) => return status,
    };
    if FAULT_READ_BUSY.swap(true, Ordering::Acquire) {
        leave();
        return STATUS_DEVICE_BUSY;
    }
    // SAFETY: a published adapter stays valid while READERS is non-zero (halt waits); the
    // admin wait slot is this caller's alone (FAULT_READ_BUSY; bring-up and halt, its other
    // users, run while the adapter is not published); `counters` was checked above.
    let status = unsafe {
        match read_fault_counters(a, index) {
            Ok(c) => {
                counters.write(c);
                STATUS_SUCCESS
            }
            Err(status) => status,
        }
    };
    FAULT_READ_BUSY.store(false, Ordering::Release);
    leave();
    status
}

/// Runs `GET_STATS` on adapter `a` into a shared-memory buffer and picks the fault counters
/// out of the block (`crate::device_stats`). IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// `a` is a live, published adapter and the caller owns its admin wait slot.
unsafe fn read_fault_counters(
    a: *mut Adapter,
    index: u32,
) -> Result<RNIC_DIAG_DEVICE_FAULT_COUNTERS, NTSTATUS> {
    use crate::device_stats::{fault_counters, get_stats_operands, BUFFER_BYTES};
    // SAFETY: the buffer is BUFFER_BYTES of shared memory, read after the completion, then
    // freed once.
    unsafe {
        let Some((va, pa)) = crate::hw::alloc_ring(a, BUFFER_BYTES, 8) else {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        let result = crate::hw::admin_wait(
            a,
            rnic_contract::admin::opcode::GET_STATS,
            STATS_COMMAND_ID,
            &get_stats_operands(pa as u64),
        );
        let mut block = [0u8; BUFFER_BYTES as usize];
        for (i, b) in block.iter_mut().enumerate() {
            *b = core::ptr::read_volatile(va.add(i));
        }
        ffi::NdisMFreeSharedMemory((*a).miniport, BUFFER_BYTES, FALSE, va.cast(), pa);
        match result {
            Some((status, written)) if status == crate::logic::ADMIN_STATUS_SUCCESS => {
                fault_counters(&block, written, index).ok_or_else(|| {
                    log!(
                        "GET_STATS wrote a block without the fault counters (%u bytes)\n",
                        written
                    );
                    STATUS_IO_DEVICE_ERROR
                })
            }
            Some((status, _)) => {
                log!("GET_STATS failed: status %x\n", status as u32);
                Err(STATUS_IO_DEVICE_ERROR)
            }
            None => Err(STATUS_IO_DEVICE_ERROR),
        }
    }
}

/// ReferenceBinding of the diagnostics NPI. IRQL: <= DISPATCH_LEVEL. Refused once a detach
/// began.
unsafe extern "win64" fn ReferenceBinding(context: *mut c_void) -> NTSTATUS {
    if context.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: a live binding context of this provider (the client is attached).
    if unsafe { (*context.cast::<Binding>()).state.reference() } {
        STATUS_SUCCESS
    } else {
        STATUS_UNSUCCESSFUL
    }
}

/// DereferenceBinding of the diagnostics NPI. IRQL: <= DISPATCH_LEVEL. The last reference
/// of a binding whose detach pended completes the detach.
unsafe extern "win64" fn DereferenceBinding(context: *mut c_void) {
    if context.is_null() {
        return;
    }
    let b = context.cast::<Binding>();
    // SAFETY: a live binding context of this provider while the client holds a reference: the
    // handle is read before the release, after which the binding may be cleaned up.
    let nmr_binding = unsafe { (*b).nmr_binding };
    // SAFETY: as above (the release is the last access).
    let release = unsafe { (*b).state.release() };
    match release {
        Release::Released => {}
        Release::NotHeld => log!("NMR DereferenceBinding without a reference (ignored)\n"),
        Release::CompletesDetach => {
            log!("NMR detach completes (last call sequence ended)\n");
            // SAFETY: the detach of this binding returned STATUS_PENDING and this is the single
            // release that ends its last call sequence: it is completed exactly once.
            unsafe { NmrProviderDetachClientComplete(nmr_binding) };
        }
    }
}
