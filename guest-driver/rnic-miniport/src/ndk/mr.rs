//! The NDK memory region: exactly `NDK_MR_DISPATCH` (the seed), every entry implemented:
//! NdkCloseMr, NdkQueryExtension (`STATUS_NOT_SUPPORTED`), NdkRegisterMr, NdkDeregisterMr,
//! NdkInitializeFastRegisterMr, NdkGetRemoteTokenFromMr, NdkGetLocalTokenFromMr. Device side:
//! `REG_MR`, `ALLOC_FR_MR`, `DEREG_MR` (docs/device-spec.md §3.13, §6).
//!
//! NdkRegisterMr walks the MDL chain (ByteCount at 0x28, ByteOffset at 0x2C, the PFN array
//! after the 0x30-byte header) into a page list of 4 KiB pages in shared memory, names the
//! region by the MDL's virtual address (`StartVa + ByteOffset`, used as the iova and never
//! dereferenced), returns `STATUS_PENDING` and completes exactly once from the admin-queue
//! DPC. A zero length or one past the MDL chain fails at once with
//! `STATUS_INVALID_PARAMETER`. The one key the device hands out (spec §6.1) is both the
//! local and the remote token.

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::logic::AdminCompletion;
use crate::ndk::pd::{self, Pd};
use crate::ndk::{self, Pending};
use crate::ndk_logic::{self, MdlSegment, MrError};

/// No registration: `NdkRegisterMr` / `NdkInitializeFastRegisterMr` may be called.
const IDLE: u32 = 0;
/// A request of the MR is pending.
const BUSY: u32 = 1;
/// Registered (`REG_MR`) or allocated for fast registration (`ALLOC_FR_MR`): the key is
/// valid.
const REGISTERED: u32 = 2;
/// Most MDLs of one chain the walk follows (a bound on the work a malformed chain costs).
const MAX_CHAIN: usize = 4096;
/// Header bytes of an MDL before its PFN array.
const MDL_HEADER: usize = core::mem::size_of::<MDL>();

/// One memory region (`NDK_MR` first).
#[repr(C)]
pub(crate) struct Mr {
    /// The NDK object the consumer sees.
    pub ndk: NDK_MR,
    /// The PD it belongs to.
    pub pd: *mut Pd,
    /// Its adapter.
    pub a: *mut Adapter,
    /// Created for fast registration.
    pub fast_register: bool,
    /// [`IDLE`], [`BUSY`] or [`REGISTERED`].
    pub state: AtomicU32,
    /// The device key (0 when none): local and remote token.
    pub key: AtomicU32,
    /// The page list of the last `REG_MR` (shared memory, null when none).
    pub page_list_va: *mut u8,
    /// Its bus address.
    pub page_list_pa: NDIS_PHYSICAL_ADDRESS,
    /// Its size in bytes.
    pub page_list_bytes: u32,
    /// The pending registration's MDL chain, length and device access.
    pub mdl: *mut MDL,
    /// Bytes to register.
    pub length: usize,
    /// Device access flags.
    pub access: u32,
    /// Pages of the pending `ALLOC_FR_MR`.
    pub fr_pages: u32,
    /// The pending request's callback.
    pub completion: Option<NDK_FN_REQUEST_COMPLETION>,
    /// The pending close's callback.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of the pending callback.
    pub context: *mut c_void,
    /// The `REG_MR` in flight (completed in the DPC).
    pub pending: Pending,
    /// Page list of fast registrations (`fr_pages` entries of shared memory, allocated by
    /// NdkInitializeFastRegisterMr; null before).
    pub fr_list_va: *mut u8,
    /// Its bus address.
    pub fr_list_pa: NDIS_PHYSICAL_ADDRESS,
}

static DISPATCH: NDK_MR_DISPATCH = NDK_MR_DISPATCH {
    NdkCloseMr: Some(close),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkRegisterMr: Some(register),
    NdkDeregisterMr: Some(deregister),
    NdkInitializeFastRegisterMr: Some(initialize_fast_register),
    NdkGetRemoteTokenFromMr: Some(token),
    NdkGetLocalTokenFromMr: Some(token),
};

/// NdkCreateMr. IRQL: <= DISPATCH_LEVEL. Completes at once (`STATUS_SUCCESS`, no callback):
/// an MR takes device resources only when it is registered or initialized for fast
/// registration.
pub(crate) unsafe extern "win64" fn create(
    pd: *mut NDK_PD,
    fast_register: BOOLEAN,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    out: *mut *mut NDK_MR,
) -> NTSTATUS {
    if pd.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live PD and a valid out-pointer.
    unsafe {
        let (pd, a) = pd::parts(pd);
        let mr = ndk::alloc_object::<Mr>(a);
        if mr.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*mr).ndk = NDK_MR {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeMr),
            Dispatch: &DISPATCH,
        };
        (*mr).pd = pd;
        (*mr).a = a;
        (*mr).fast_register = fast_register != FALSE;
        (*mr).pending.owner = mr.cast();
        (*mr).pending.on_dpc = Some(register_done);
        (*pd).children.fetch_add(1, Ordering::AcqRel);
        (*a).ndk.live_objects.fetch_add(1, Ordering::AcqRel);
        *out = mr.cast();
    }
    STATUS_SUCCESS
}

/// Walks an MDL chain as [`MdlSegment`]s, reading only MDL headers and PFN arrays (never the
/// memory they describe). An MDL whose `Size` is too small for the pages its bytes span
/// yields an empty PFN array, which the page-list walk refuses.
///
/// # Safety
/// `mdl` is a chain of valid MDLs that stays untouched while the segments are used.
pub(crate) unsafe fn segments<'a>(mdl: *mut MDL) -> impl Iterator<Item = MdlSegment<'a>> {
    let mut next = mdl;
    core::iter::from_fn(move || {
        if next.is_null() {
            return None;
        }
        let m = next;
        // SAFETY: `m` is an MDL of the chain; its PFN array follows the header and holds at
        // least `(Size - header) / 8` entries, which bounds the slice.
        unsafe {
            next = (*m).Next;
            let (offset, count) = ((*m).ByteOffset, (*m).ByteCount);
            let pages = ndk_logic::span_pages(offset.min(4095), count) as usize;
            let room = ((*m).Size as u16 as usize).saturating_sub(MDL_HEADER) / 8;
            let pfns: &[u64] = if room >= pages {
                core::slice::from_raw_parts(m.cast::<u8>().add(MDL_HEADER).cast::<u64>(), pages)
            } else {
                &[]
            };
            Some(MdlSegment {
                byte_offset: offset,
                byte_count: count,
                pfns,
            })
        }
    })
    .take(MAX_CHAIN)
}

/// NdkRegisterMr. IRQL: <= DISPATCH_LEVEL. Fails at once with `STATUS_INVALID_PARAMETER`
/// for an unknown `NDK_MR_FLAG_*` bit, a zero length or a length past the MDL chain, and
/// with `STATUS_INVALID_DEVICE_REQUEST` on a fast-register MR or
/// `STATUS_INVALID_DEVICE_STATE` while the MR is registered or busy; otherwise pends and
/// completes once from the admin-queue DPC.
unsafe extern "win64" fn register(
    mr: *mut NDK_MR,
    mdl: *mut MDL,
    length: usize,
    flags: u32,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let mr = mr.cast::<Mr>();
    if mr.is_null() || mdl.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(access) = ndk_logic::mr_access(flags) else {
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: the consumer passes its live MR and an MDL chain it leaves alone until the
    // registration completes.
    unsafe {
        if (*mr).fast_register {
            return STATUS_INVALID_DEVICE_REQUEST;
        }
        let a = (*mr).a;
        if length == 0
            || length as u64 > ndk_logic::chain_bytes(segments(mdl))
            || length > (*a).ndk.info.MaxRegistrationSize
        {
            return STATUS_INVALID_PARAMETER;
        }
        begin(mr, IDLE, register_worker, completion, context, |mr| {
            (*mr).mdl = mdl;
            (*mr).length = length;
            (*mr).access = access;
        })
    }
}

/// Starts a request of the MR: moves it from `from` to BUSY (else
/// `STATUS_INVALID_DEVICE_STATE`), lets `prepare` record the request's arguments, and defers
/// `worker`; `STATUS_PENDING`, or `STATUS_INSUFFICIENT_RESOURCES` with the state restored.
///
/// # Safety
/// `mr` is a live MR of this provider.
unsafe fn begin(
    mr: *mut Mr,
    from: u32,
    worker: ndk::JobFn,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
    prepare: impl FnOnce(*mut Mr),
) -> NTSTATUS {
    // SAFETY: guaranteed by the caller; only the winner of the state change writes the
    // request fields.
    unsafe {
        if (*mr)
            .state
            .compare_exchange(from, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return STATUS_INVALID_DEVICE_STATE;
        }
        prepare(mr);
        (*mr).completion = completion;
        (*mr).context = context;
        if !ndk::defer((*mr).a, worker, mr.cast()) {
            (*mr).state.store(from, Ordering::Release);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Frees the MR's page list (PASSIVE_LEVEL).
///
/// # Safety
/// `mr` is live; no `REG_MR` reading the list is in flight.
unsafe fn free_page_list(a: *mut Adapter, mr: *mut Mr) {
    // SAFETY: the list was allocated with exactly these arguments.
    unsafe {
        if !(*mr).page_list_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                (*mr).page_list_bytes,
                FALSE,
                (*mr).page_list_va.cast(),
                (*mr).page_list_pa,
            );
            (*mr).page_list_va = null_mut();
        }
    }
}

/// Ends a pending request of the MR with `status`, leaving it in `state`.
///
/// # Safety
/// `mr` is live with a pending request.
unsafe fn finish(mr: *mut Mr, state: u32, status: NTSTATUS) {
    // SAFETY: guaranteed by the caller; the callback is taken so it runs once.
    unsafe {
        let completion = (*mr).completion.take();
        let context = (*mr).context;
        (*mr).state.store(state, Ordering::Release);
        if let Some(f) = completion {
            f(context, status);
        }
    }
}

/// Work item of [`register`] (PASSIVE_LEVEL): builds the page list and submits `REG_MR`;
/// its completion arrives in [`register_done`].
unsafe fn register_worker(a: *mut Adapter, object: *mut c_void) {
    let mr = object.cast::<Mr>();
    // SAFETY: `mr` is live and BUSY; the page list is ours; the MDL chain is untouched by the
    // consumer while the registration pends.
    unsafe {
        free_page_list(a, mr);
        let first = (*mr).mdl;
        let offset = u64::from((*first).ByteOffset);
        let pages = (offset + (*mr).length as u64).div_ceil(ndk_logic::PAGE_SIZE);
        if pages > u64::from((*a).ndk.caps.max_mr_pages) {
            finish(mr, IDLE, MrError::TooManyPages.status());
            return;
        }
        let bytes = (pages * 8) as u32;
        let Some((va, pa)) = hw::alloc_ring(a, bytes, 8) else {
            finish(mr, IDLE, STATUS_INSUFFICIENT_RESOURCES);
            return;
        };
        (*mr).page_list_va = va;
        (*mr).page_list_pa = pa;
        (*mr).page_list_bytes = bytes;
        let out = core::slice::from_raw_parts_mut(va.cast::<u64>(), pages as usize);
        let list = match ndk_logic::mdl_pages(segments(first), (*mr).length as u64, out) {
            Ok(list) => list,
            Err(e) => {
                free_page_list(a, mr);
                finish(mr, IDLE, e.status());
                return;
            }
        };
        // The region's name: the MDL's virtual address, a number that is never dereferenced.
        let iova = ((*first).StartVa as u64).wrapping_add(offset);
        let key_byte = (*a).ndk.next_key_byte.fetch_add(1, Ordering::Relaxed);
        let ops = ndk_logic::reg_mr_operands(
            (*(*mr).pd).pdn,
            (*mr).access,
            iova,
            (*mr).length as u64,
            pa as u64,
            list,
            key_byte,
        );
        if !ndk::admin_submit_async(a, opcode::REG_MR, &ops, &mut (*mr).pending) {
            free_page_list(a, mr);
            finish(mr, IDLE, STATUS_INSUFFICIENT_RESOURCES);
        }
    }
}

/// `REG_MR` completed (admin-queue DPC, DISPATCH_LEVEL): the registration's one completion.
unsafe fn register_done(owner: *mut c_void, c: &AdminCompletion) {
    let mr = owner.cast::<Mr>();
    // SAFETY: `owner` is the MR whose `pending` this completion belongs to; it stays live
    // while BUSY (close refuses a busy MR).
    unsafe {
        if c.status == 0 {
            (*mr).key.store(c.result0, Ordering::Release);
            finish(mr, REGISTERED, STATUS_SUCCESS);
        } else {
            log!("REG_MR failed: status %x\n", c.status as u32);
            finish(mr, IDLE, ndk_logic::admin_status(c.status));
        }
    }
}

/// NdkDeregisterMr. IRQL: <= DISPATCH_LEVEL. `STATUS_INVALID_DEVICE_STATE` unless the MR is
/// registered (or initialized for fast registration); otherwise pends, a work item sends
/// `DEREG_MR` and calls `completion` (PASSIVE_LEVEL).
unsafe extern "win64" fn deregister(
    mr: *mut NDK_MR,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let mr = mr.cast::<Mr>();
    if mr.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live MR.
    unsafe {
        begin(
            mr,
            REGISTERED,
            deregister_worker,
            completion,
            context,
            |_| {},
        )
    }
}

/// Sends `DEREG_MR` for the MR's key and frees its page list (PASSIVE_LEVEL); the NTSTATUS.
///
/// # Safety
/// `mr` is live and holds a key.
unsafe fn release_key(a: *mut Adapter, mr: *mut Mr) -> NTSTATUS {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let key = (*mr).key.swap(0, Ordering::AcqRel);
        let (status, _, _) = ndk::admin_exec(a, opcode::DEREG_MR, &ndk_logic::handle_operands(key));
        if status != 0 {
            log!("DEREG_MR %x failed: status %x\n", key, status as u32);
        }
        free_page_list(a, mr);
        ndk_logic::admin_status(status)
    }
}

/// Work item of [`deregister`] (PASSIVE_LEVEL).
unsafe fn deregister_worker(a: *mut Adapter, object: *mut c_void) {
    let mr = object.cast::<Mr>();
    // SAFETY: `mr` is live and BUSY.
    unsafe {
        let status = release_key(a, mr);
        finish(mr, IDLE, status);
    }
}

/// NdkInitializeFastRegisterMr. IRQL: <= DISPATCH_LEVEL. For an MR created with
/// `FastRegister`: `STATUS_INVALID_DEVICE_REQUEST` otherwise, `STATUS_INVALID_PARAMETER` for
/// 0 or more than `FRMRPageCount` pages, `STATUS_INVALID_DEVICE_STATE` when already
/// initialized; pends, a work item sends `ALLOC_FR_MR` and calls `completion`
/// (PASSIVE_LEVEL). `RemoteAccess` needs nothing from the device: the access of each fast
/// registration is given by its `NDK_OP_FLAG_*`.
unsafe extern "win64" fn initialize_fast_register(
    mr: *mut NDK_MR,
    pages: u32,
    _remote_access: BOOLEAN,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let mr = mr.cast::<Mr>();
    if mr.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live MR.
    unsafe {
        if !(*mr).fast_register {
            return STATUS_INVALID_DEVICE_REQUEST;
        }
        let allocated = !(*mr).fr_list_va.is_null();
        if pages == 0
            || pages > (*(*mr).a).ndk.caps.max_fr_pages
            || (allocated && pages != (*mr).fr_pages)
        {
            return STATUS_INVALID_PARAMETER;
        }
        begin(mr, IDLE, fast_register_worker, completion, context, |mr| {
            (*mr).fr_pages = pages;
        })
    }
}

/// Work item of [`initialize_fast_register`] (PASSIVE_LEVEL).
unsafe fn fast_register_worker(a: *mut Adapter, object: *mut c_void) {
    let mr = object.cast::<Mr>();
    // SAFETY: `mr` is live and BUSY.
    unsafe {
        if (*mr).fr_list_va.is_null() {
            let Some((va, pa)) = hw::alloc_ring(a, (*mr).fr_pages * 8, 8) else {
                finish(mr, IDLE, STATUS_INSUFFICIENT_RESOURCES);
                return;
            };
            (*mr).fr_list_va = va;
            (*mr).fr_list_pa = pa;
        }
        let key_byte = (*a).ndk.next_key_byte.fetch_add(1, Ordering::Relaxed);
        let ops = ndk_logic::alloc_fr_mr_operands((*(*mr).pd).pdn, (*mr).fr_pages, key_byte);
        let (status, key, _) = ndk::admin_exec(a, opcode::ALLOC_FR_MR, &ops);
        if status == 0 {
            (*mr).key.store(key, Ordering::Release);
            finish(mr, REGISTERED, STATUS_SUCCESS);
        } else {
            log!("ALLOC_FR_MR failed: status %x\n", status as u32);
            finish(mr, IDLE, ndk_logic::admin_status(status));
        }
    }
}

/// NdkGetRemoteTokenFromMr / NdkGetLocalTokenFromMr. IRQL: <= DISPATCH_LEVEL. The device key
/// (one key serves both uses, spec §6.1); 0 while the MR has none.
unsafe extern "win64" fn token(mr: *mut NDK_MR) -> u32 {
    let mr = mr.cast::<Mr>();
    if mr.is_null() {
        return 0;
    }
    // SAFETY: the consumer passes its live MR.
    unsafe { (*mr).key.load(Ordering::Acquire) }
}

/// NdkCloseMr. IRQL: <= DISPATCH_LEVEL. `STATUS_DEVICE_BUSY` while a request of the MR
/// pends; otherwise pends, a work item deregisters it if needed, frees it and calls
/// `completion` (PASSIVE_LEVEL).
unsafe extern "win64" fn close(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let mr = object.cast::<Mr>();
    if mr.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live MR.
    unsafe {
        if (*mr).state.load(Ordering::Acquire) == BUSY {
            return STATUS_DEVICE_BUSY;
        }
        (*mr).close_completion = completion;
        (*mr).context = context;
        if !ndk::defer_close((*mr).a, close_worker, mr.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close`] (PASSIVE_LEVEL).
unsafe fn close_worker(a: *mut Adapter, object: *mut c_void) {
    let mr = object.cast::<Mr>();
    // SAFETY: `mr` is live until freed here.
    unsafe {
        if (*mr).state.load(Ordering::Acquire) == REGISTERED {
            let _ = release_key(a, mr);
        }
        free_page_list(a, mr);
        if !(*mr).fr_list_va.is_null() {
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                (*mr).fr_pages * 8,
                FALSE,
                (*mr).fr_list_va.cast(),
                (*mr).fr_list_pa,
            );
        }
        let completion = (*mr).close_completion;
        let context = (*mr).context;
        (*(*mr).pd).children.fetch_sub(1, Ordering::AcqRel);
        (*a).ndk.live_objects.fetch_sub(1, Ordering::AcqRel);
        ndk::free(mr);
        if let Some(f) = completion {
            f(context);
        }
    }
}

/// The fast-register page list of an MR initialized for fast registration: (virtual
/// address, bus address, pages it holds); None for any other MR.
///
/// # Safety
/// `mr` is a live MR of this provider.
pub(crate) unsafe fn fast_register_list(
    mr: *mut NDK_MR,
) -> Option<(*mut u8, NDIS_PHYSICAL_ADDRESS, u32)> {
    let mr = mr.cast::<Mr>();
    // SAFETY: guaranteed by the caller.
    unsafe {
        ((*mr).fast_register
            && !(*mr).fr_list_va.is_null()
            && (*mr).state.load(Ordering::Acquire) == REGISTERED)
            .then(|| ((*mr).fr_list_va, (*mr).fr_list_pa, (*mr).fr_pages))
    }
}

/// The MR's current key.
///
/// # Safety
/// `mr` is a live MR of this provider.
pub(crate) unsafe fn key(mr: *mut NDK_MR) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { (*mr.cast::<Mr>()).key.load(Ordering::Acquire) }
}

/// Sets the MR's key (a fast registration gives it the next key byte).
///
/// # Safety
/// `mr` is a live MR of this provider.
pub(crate) unsafe fn set_key(mr: *mut NDK_MR, key: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { (*mr.cast::<Mr>()).key.store(key, Ordering::Release) }
}
