//! The NDK completion queue: a ring of 32-byte CQEs in shared memory (docs/device-spec.md
//! §9), `CREATE_CQ` / `DESTROY_CQ` / `RESIZE_CQ` / `MODIFY_CQ` (§3.11), the `CQ_CI` and
//! `CQ_ARM` doorbells (§9.3), and the seven entries of `NDK_CQ_DISPATCH`, all implemented:
//! NdkCloseCq (`STATUS_DEVICE_BUSY` while QPs use the CQ), NdkQueryExtension
//! (`STATUS_NOT_SUPPORTED`), NdkResizeCq, NdkArmCq, NdkGetCqResults,
//! NdkControlCqInterruptModeration, NdkGetCqResultsEx.
//!
//! Completion vectors: CQ slot `s` signals MSI-X message `1 + s mod (messages - 1)` when the
//! adapter was granted more than one message (message 0 stays the admin/Ethernet vector), else
//! message 0. The message DPC ([`notify_vector`]) calls the notification callback of each
//! armed CQ on that vector that holds a qualifying completion, or that is the only armed CQ
//! on the vector (the device fired for it), once per arm, at DISPATCH_LEVEL.

use core::ffi::c_void;
use core::ptr::{null_mut, read_volatile};
use core::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::bar0::verbs_db;
use rnic_contract::cqe::{self, Cqe, CqeRepr, CQE_SIZE};

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::ndk::adapter::NdkAdapter;
use crate::ndk::{self, CQ_SLOTS};
use crate::ndk_logic;

/// `armed` values: not armed, armed for any completion, armed for solicited/error ones.
const ARM_NONE: u32 = 0;

/// One completion queue (`NDK_CQ` first).
#[repr(C)]
pub(crate) struct Cq {
    /// The NDK object the consumer sees.
    pub ndk: NDK_CQ,
    /// The adapter it was created on.
    pub owner: *mut NdkAdapter,
    /// The device's CQN.
    pub cqn: u32,
    /// Ring entries (power of two).
    pub entries: u32,
    /// MSI-X message the CQ signals.
    pub vector: u16,
    /// Slot in the adapter's CQ table.
    pub slot: u32,
    /// Ring memory.
    pub ring_va: *mut u8,
    /// Ring bus address.
    pub ring_pa: NDIS_PHYSICAL_ADDRESS,
    /// Free-running consumer count (under `polling`).
    pub consumer: u32,
    /// Held by the one poller (GetCqResults, resize); others return 0 meanwhile.
    pub polling: AtomicBool,
    /// `verbs_db::ARM_NEXT` / `ARM_SOLICITED` while armed, [`ARM_NONE`] otherwise.
    pub armed: AtomicU32,
    /// DPCs currently using the CQ (close waits for 0).
    pub dpc_users: AtomicU32,
    /// QPs using the CQ.
    pub qp_refs: AtomicU32,
    /// The notification callback and its context.
    pub notify: Option<NDK_FN_CQ_NOTIFICATION_CALLBACK>,
    /// Context of `notify`.
    pub notify_context: *mut c_void,
    /// Depth asked for by the pending create or resize.
    pub depth: u32,
    /// Pending create's callback.
    pub create_completion: Option<NDK_FN_CREATE_COMPLETION>,
    /// Pending resize's callback.
    pub request_completion: Option<NDK_FN_REQUEST_COMPLETION>,
    /// Pending close's callback.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of the pending callback.
    pub context: *mut c_void,
    /// Moderation asked for by the latest NdkControlCqInterruptModeration.
    pub moderation: (u32, u32),
}

static DISPATCH: NDK_CQ_DISPATCH = NDK_CQ_DISPATCH {
    NdkCloseCq: Some(close),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkResizeCq: Some(resize),
    NdkArmCq: Some(arm),
    NdkGetCqResults: Some(get_results),
    NdkControlCqInterruptModeration: Some(moderate),
    NdkGetCqResultsEx: Some(get_results_ex),
};

/// Bytes of a ring of `entries` CQEs.
fn ring_bytes(entries: u32) -> u32 {
    entries * CQE_SIZE as u32
}

/// NdkCreateCq. IRQL: <= DISPATCH_LEVEL. Depth 1..=MaxCqDepth (else
/// `STATUS_INVALID_PARAMETER`); pends, the ring and `CREATE_CQ` are set up in a work item
/// which calls `completion` (PASSIVE_LEVEL). `affinity` is not used (one processor group).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe extern "win64" fn create(
    adapter: *mut NDK_ADAPTER,
    depth: u32,
    notify: Option<NDK_FN_CQ_NOTIFICATION_CALLBACK>,
    notify_context: *mut c_void,
    _affinity: *mut GROUP_AFFINITY,
    completion: Option<NDK_FN_CREATE_COMPLETION>,
    context: *mut c_void,
    out: *mut *mut NDK_CQ,
) -> NTSTATUS {
    let owner = adapter.cast::<NdkAdapter>();
    if owner.is_null() || out.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter; the CQ is ours until completion.
    unsafe {
        let a = ndk::device_of(owner);
        let max = (*a).ndk.caps.max_cqe;
        if depth == 0 || ndk_logic::ring_entries(depth, max).is_none() {
            return STATUS_INVALID_PARAMETER;
        }
        let cq = ndk::alloc_object::<Cq>(a);
        if cq.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*cq).ndk = NDK_CQ {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeCq),
            Dispatch: &DISPATCH,
        };
        (*cq).owner = owner;
        (*cq).depth = depth;
        (*cq).notify = notify;
        (*cq).notify_context = notify_context;
        (*cq).create_completion = completion;
        (*cq).context = context;
        (*cq).slot = u32::MAX;
        (*owner).children.fetch_add(1, Ordering::AcqRel);
        if !ndk::defer(a, create_worker, cq.cast()) {
            (*owner).children.fetch_sub(1, Ordering::AcqRel);
            ndk::free(cq);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        *out = cq.cast();
    }
    STATUS_PENDING
}

/// The MSI-X message of CQ slot `slot`.
///
/// # Safety
/// `a` is live.
unsafe fn vector_for(a: *mut Adapter, slot: u32) -> u16 {
    // SAFETY: reads of the live context.
    let (messages, cap) = unsafe { ((*a).msix_messages, u32::from((*a).ndk.caps.cq_vectors)) };
    let usable = messages.min(cap.max(1));
    if usable > 1 {
        (1 + slot % (usable - 1)) as u16
    } else {
        0
    }
}

/// Work item of [`create`] (PASSIVE_LEVEL).
unsafe fn create_worker(a: *mut Adapter, object: *mut c_void) {
    let cq = object.cast::<Cq>();
    // SAFETY: `cq` is the CQ `create` allocated; freed here only on failure.
    unsafe {
        let completion = (*cq).create_completion.take();
        let context = (*cq).context;
        let status = setup(a, cq);
        if status == STATUS_SUCCESS {
            (*a).ndk.live_objects.fetch_add(1, Ordering::AcqRel);
            if let Some(f) = completion {
                f(context, STATUS_SUCCESS, cq.cast());
            }
        } else {
            (*(*cq).owner).children.fetch_sub(1, Ordering::AcqRel);
            ndk::free(cq);
            if let Some(f) = completion {
                f(context, status, null_mut());
            }
        }
    }
}

/// Allocates the ring, claims a table slot and creates the device CQ.
///
/// # Safety
/// PASSIVE_LEVEL; `cq` is a CQ being created.
unsafe fn setup(a: *mut Adapter, cq: *mut Cq) -> NTSTATUS {
    // SAFETY: (whole body) `a` and `cq` live; the ring is released on every failure path.
    unsafe {
        let Some(entries) = ndk_logic::ring_entries((*cq).depth, (*a).ndk.caps.max_cqe) else {
            return STATUS_INVALID_PARAMETER;
        };
        let Some(slot) = (*a).ndk.cqs.iter().position(|s| {
            s.compare_exchange(null_mut(), cq, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        // Not visible to the DPC until `cqn` is valid: the table entry is there, but `armed`
        // stays ARM_NONE until the consumer arms it, which needs the completed create.
        let Some((va, pa)) = hw::alloc_ring(a, ring_bytes(entries), cqe::RING_ALIGN as i64) else {
            (*a).ndk.cqs[slot].store(null_mut(), Ordering::Release);
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        let vector = vector_for(a, slot as u32);
        let ops = ndk_logic::create_cq_operands(pa as u64, entries, vector, 0, 0);
        let (status, cqn, _) = ndk::admin_exec(a, opcode::CREATE_CQ, &ops);
        if status != 0 {
            log!(
                "CREATE_CQ (%u entries) failed: status %x\n",
                entries,
                status as u32
            );
            ffi::NdisMFreeSharedMemory((*a).miniport, ring_bytes(entries), FALSE, va.cast(), pa);
            (*a).ndk.cqs[slot].store(null_mut(), Ordering::Release);
            return ndk_logic::admin_status(status);
        }
        (*cq).cqn = cqn;
        (*cq).entries = entries;
        (*cq).vector = vector;
        (*cq).slot = slot as u32;
        (*cq).ring_va = va;
        (*cq).ring_pa = pa;
        (*cq).consumer = 0;
        STATUS_SUCCESS
    }
}

/// NdkCloseCq. IRQL: <= DISPATCH_LEVEL. `STATUS_DEVICE_BUSY` while QPs use the CQ;
/// otherwise no notification follows the call, and a work item destroys the CQ, frees it and
/// calls `completion` (PASSIVE_LEVEL); returns `STATUS_PENDING`.
unsafe extern "win64" fn close(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let cq = object.cast::<Cq>();
    if cq.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live CQ.
    unsafe {
        if (*cq).qp_refs.load(Ordering::Acquire) != 0 {
            return STATUS_DEVICE_BUSY;
        }
        let a = ndk::device_of((*cq).owner);
        (*cq).armed.store(ARM_NONE, Ordering::Release);
        (*a).ndk.cqs[(*cq).slot as usize].store(null_mut(), Ordering::Release);
        (*cq).close_completion = completion;
        (*cq).context = context;
        if !ndk::defer_close(a, close_worker, cq.cast()) {
            (*a).ndk.cqs[(*cq).slot as usize].store(cq, Ordering::Release);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close`] (PASSIVE_LEVEL).
unsafe fn close_worker(a: *mut Adapter, object: *mut c_void) {
    let cq = object.cast::<Cq>();
    // SAFETY: `cq` is live until freed here; no DPC uses it once `dpc_users` is 0 after its
    // table entry was cleared.
    unsafe {
        while (*cq).dpc_users.load(Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
        let (status, _, _) = ndk::admin_exec(
            a,
            opcode::DESTROY_CQ,
            &ndk_logic::handle_operands((*cq).cqn),
        );
        if status != 0 {
            log!(
                "DESTROY_CQ %u failed: status %x\n",
                (*cq).cqn,
                status as u32
            );
        }
        ffi::NdisMFreeSharedMemory(
            (*a).miniport,
            ring_bytes((*cq).entries),
            FALSE,
            (*cq).ring_va.cast(),
            (*cq).ring_pa,
        );
        let completion = (*cq).close_completion;
        let context = (*cq).context;
        (*(*cq).owner).children.fetch_sub(1, Ordering::AcqRel);
        (*a).ndk.live_objects.fetch_sub(1, Ordering::AcqRel);
        ndk::free(cq);
        if let Some(f) = completion {
            f(context);
        }
    }
}

/// The CQE at free-running count `n`, if the device has written it (its phase matches).
///
/// # Safety
/// `cq` is live with a ring.
unsafe fn entry(cq: *const Cq, n: u32) -> Option<CqeRepr> {
    // SAFETY: the slot is inside the ring (n masked by entries - 1).
    unsafe {
        let at = (*cq)
            .ring_va
            .add(((n & ((*cq).entries - 1)) as usize) * CQE_SIZE);
        let phase = read_volatile(at.add(23)) & 1 == 1;
        if phase != ndk_logic::cqe_phase(n, (*cq).entries) {
            return None;
        }
        // Read the body only after the phase said it is complete.
        fence(Ordering::Acquire);
        let mut bytes = [0u8; CQE_SIZE];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = read_volatile(at.add(i));
        }
        Some(CqeRepr::parse(&Cqe::new_unchecked(&bytes[..])))
    }
}

/// Takes up to `max` completions, handing each to `put(index, result)`; returns how many.
/// 0 while another caller polls or resizes the CQ.
///
/// # Safety
/// `cq` is a live CQ of this provider.
unsafe fn poll(cq: *mut Cq, max: u32, mut put: impl FnMut(usize, NDK_RESULT_EX)) -> u32 {
    // SAFETY: `polling` makes this the only mover of `consumer`; doorbells to a live CQN.
    unsafe {
        if (*cq).polling.swap(true, Ordering::Acquire) {
            return 0;
        }
        let a = ndk::device_of((*cq).owner);
        let mut taken = 0u32;
        while taken < max {
            let Some(c) = entry(cq, (*cq).consumer) else {
                break;
            };
            put(
                taken as usize,
                ndk_logic::result_ex(&c, qp_context(a, c.qpn)),
            );
            (*cq).consumer = (*cq).consumer.wrapping_add(1);
            taken += 1;
        }
        if taken != 0 {
            hw::wr(a, verbs_db::cq_doorbell((*cq).cqn) as usize, (*cq).consumer);
        }
        (*cq).polling.store(false, Ordering::Release);
        taken
    }
}

/// The `QPContext` of the QP a CQE names (null for a QP this adapter does not know).
///
/// # Safety
/// `a` is live.
unsafe fn qp_context(a: *mut Adapter, qpn: u32) -> *mut c_void {
    // SAFETY: guaranteed by the caller.
    unsafe { crate::ndk::qp::context_of(a, qpn) }
}

/// NdkGetCqResults. IRQL: <= DISPATCH_LEVEL. Fills up to `n` `NDK_RESULT`s from the ring
/// and returns how many; the consumer count goes to `CQ_CI`.
unsafe extern "win64" fn get_results(cq: *mut NDK_CQ, results: *mut NDK_RESULT, n: u32) -> u32 {
    if cq.is_null() || results.is_null() {
        return 0;
    }
    // SAFETY: the consumer passes its live CQ and an array of `n` results.
    unsafe {
        poll(cq.cast(), n, |i, x| {
            results.add(i).write(ndk_logic::result(&x));
        })
    }
}

/// NdkGetCqResultsEx. IRQL: <= DISPATCH_LEVEL. As [`get_results`] with `NDK_RESULT_EX`
/// (operation type; for a receive with invalidate, the invalidated token).
unsafe extern "win64" fn get_results_ex(
    cq: *mut NDK_CQ,
    results: *mut NDK_RESULT_EX,
    n: u32,
) -> u32 {
    if cq.is_null() || results.is_null() {
        return 0;
    }
    // SAFETY: as in `get_results`.
    unsafe { poll(cq.cast(), n, |i, x| results.add(i).write(x)) }
}

/// NdkArmCq. IRQL: <= DISPATCH_LEVEL. `NDK_CQ_NOTIFY_ANY` arms for the next completion,
/// `NDK_CQ_NOTIFY_SOLICITED` (and `NDK_CQ_NOTIFY_ERRORS`, which the device cannot tell apart)
/// for the next solicited or failed one; one notification per arm.
unsafe extern "win64" fn arm(cq: *mut NDK_CQ, ty: u32) {
    let cq = cq.cast::<Cq>();
    if cq.is_null() {
        return;
    }
    let value = if ty == NDK_CQ_NOTIFY_ANY {
        verbs_db::ARM_NEXT
    } else {
        verbs_db::ARM_SOLICITED
    };
    // SAFETY: the consumer passes its live CQ; doorbells of its CQN.
    unsafe {
        let a = ndk::device_of((*cq).owner);
        (*cq).armed.store(value, Ordering::Release);
        let db = verbs_db::cq_doorbell((*cq).cqn) as usize;
        hw::wr(a, db + verbs_db::SECOND as usize, value);
    }
}

/// NdkControlCqInterruptModeration. IRQL: <= DISPATCH_LEVEL. Sends `MODIFY_CQ` (count
/// clamped to 65535, interval in µs) from a work item and returns `STATUS_SUCCESS`; the
/// device applies it from the next counted completion.
unsafe extern "win64" fn moderate(cq: *mut NDK_CQ, interval: u32, count: u32) -> NTSTATUS {
    let cq = cq.cast::<Cq>();
    if cq.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live CQ; it stays live while the work item runs (a
    // close waits for jobs through the DPC-free admin path it shares).
    unsafe {
        (*cq).moderation = (interval, count);
        if !ndk::defer(ndk::device_of((*cq).owner), moderate_worker, cq.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_SUCCESS
}

/// Work item of [`moderate`] (PASSIVE_LEVEL).
unsafe fn moderate_worker(a: *mut Adapter, object: *mut c_void) {
    let cq = object.cast::<Cq>();
    // SAFETY: `cq` is live (see `moderate`).
    unsafe {
        let (interval, count) = (*cq).moderation;
        let ops = ndk_logic::modify_cq_operands((*cq).cqn, count, interval);
        let (status, _, _) = ndk::admin_exec(a, opcode::MODIFY_CQ, &ops);
        if status != 0 {
            log!("MODIFY_CQ %u failed: status %x\n", (*cq).cqn, status as u32);
        }
    }
}

/// NdkResizeCq. IRQL: <= DISPATCH_LEVEL. Depth 1..=MaxCqDepth (else
/// `STATUS_INVALID_PARAMETER`); pends, a work item moves the CQ to a new ring with
/// `RESIZE_CQ` (the device refuses a ring smaller than the completions it holds:
/// `STATUS_INVALID_PARAMETER`) and calls `completion` (PASSIVE_LEVEL).
unsafe extern "win64" fn resize(
    cq: *mut NDK_CQ,
    depth: u32,
    completion: Option<NDK_FN_REQUEST_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let cq = cq.cast::<Cq>();
    if cq.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live CQ.
    unsafe {
        let a = ndk::device_of((*cq).owner);
        if depth == 0 || ndk_logic::ring_entries(depth, (*a).ndk.caps.max_cqe).is_none() {
            return STATUS_INVALID_PARAMETER;
        }
        (*cq).depth = depth;
        (*cq).request_completion = completion;
        (*cq).context = context;
        if !ndk::defer(a, resize_worker, cq.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`resize`] (PASSIVE_LEVEL).
unsafe fn resize_worker(a: *mut Adapter, object: *mut c_void) {
    let cq = object.cast::<Cq>();
    // SAFETY: `cq` is live; holding `polling` keeps pollers off the rings while they change.
    unsafe {
        let completion = (*cq).request_completion.take();
        let context = (*cq).context;
        let status = 'resize: {
            let Some(entries) = ndk_logic::ring_entries((*cq).depth, (*a).ndk.caps.max_cqe) else {
                break 'resize STATUS_INVALID_PARAMETER;
            };
            let Some((va, pa)) = hw::alloc_ring(a, ring_bytes(entries), cqe::RING_ALIGN as i64)
            else {
                break 'resize STATUS_INSUFFICIENT_RESOURCES;
            };
            while (*cq).polling.swap(true, Ordering::Acquire) {
                core::hint::spin_loop();
            }
            // The device copies from the consumer count it was last told.
            hw::wr(a, verbs_db::cq_doorbell((*cq).cqn) as usize, (*cq).consumer);
            let ops = ndk_logic::resize_cq_operands((*cq).cqn, pa as u64, entries);
            let (admin, _, _) = ndk::admin_exec(a, opcode::RESIZE_CQ, &ops);
            if admin != 0 {
                (*cq).polling.store(false, Ordering::Release);
                ffi::NdisMFreeSharedMemory(
                    (*a).miniport,
                    ring_bytes(entries),
                    FALSE,
                    va.cast(),
                    pa,
                );
                break 'resize ndk_logic::admin_status(admin);
            }
            let (old_va, old_pa, old_entries) = ((*cq).ring_va, (*cq).ring_pa, (*cq).entries);
            (*cq).ring_va = va;
            (*cq).ring_pa = pa;
            (*cq).entries = entries;
            (*cq).consumer = 0;
            (*cq).polling.store(false, Ordering::Release);
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                ring_bytes(old_entries),
                FALSE,
                old_va.cast(),
                old_pa,
            );
            STATUS_SUCCESS
        };
        if let Some(f) = completion {
            f(context, status);
        }
    }
}

/// Whether an armed CQ holds a completion its arm waits for: any new one for `ARM_NEXT`; a
/// solicited or failed one for `ARM_SOLICITED`.
///
/// # Safety
/// `cq` is live with a ring.
unsafe fn qualifies(cq: *const Cq, armed: u32) -> bool {
    // SAFETY: ring reads of the live CQ (bounded by its size).
    unsafe {
        let mut n = (*cq).consumer;
        for _ in 0..(*cq).entries {
            let Some(c) = entry(cq, n) else {
                return false;
            };
            if armed == verbs_db::ARM_NEXT
                || c.flags & cqe::flags::SOLICITED != 0
                || c.status != cqe::WcStatus::Success.code()
            {
                return true;
            }
            n = n.wrapping_add(1);
        }
        false
    }
}

/// The message DPC of `vector` (DISPATCH_LEVEL): notifies the armed CQs on it.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn notify_vector(a: *mut Adapter, vector: u32) {
    // SAFETY: each CQ is used only while its table entry is set and `dpc_users` is held.
    unsafe {
        let armed_here = (*a)
            .ndk
            .cqs
            .iter()
            .filter(|s| {
                let cq = s.load(Ordering::Acquire);
                !cq.is_null()
                    && u32::from((*cq).vector) == vector
                    && (*cq).armed.load(Ordering::Acquire) != ARM_NONE
            })
            .count();
        for slot in (*a).ndk.cqs.iter().take(CQ_SLOTS) {
            let cq = slot.load(Ordering::Acquire);
            if cq.is_null() || u32::from((*cq).vector) != vector {
                continue;
            }
            (*cq).dpc_users.fetch_add(1, Ordering::AcqRel);
            if slot.load(Ordering::Acquire) == cq {
                let armed = (*cq).armed.load(Ordering::Acquire);
                if armed != ARM_NONE
                    && (armed_here == 1 || qualifies(cq, armed))
                    && (*cq).armed.swap(ARM_NONE, Ordering::AcqRel) != ARM_NONE
                {
                    if let Some(f) = (*cq).notify {
                        f((*cq).notify_context, STATUS_SUCCESS);
                    }
                }
            }
            (*cq).dpc_users.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
