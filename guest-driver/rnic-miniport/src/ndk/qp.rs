//! The NDK queue pair: an RC QP with its SQ and RQ rings of 128-byte WQEs in shared memory
//! (docs/device-spec.md §3.12, §7, §8), and the eleven entries of `NDK_QP_DISPATCH`:
//!
//! | entry | state |
//! | --- | --- |
//! | NdkCloseQp | implemented (`DESTROY_QP` in a work item) |
//! | NdkQueryExtension | `STATUS_NOT_SUPPORTED` |
//! | NdkFlush | implemented: `MODIFY_QP` to ERR from a work item; every outstanding request completes with `STATUS_CANCELLED` |
//! | NdkSend, NdkReceive, NdkRead, NdkWrite, NdkSendAndInvalidate | implemented (SGEs with the local token; `NDK_OP_FLAG_INLINE` copies the data into the WQE where the QP's inline size allows) |
//! | NdkBind | `STATUS_NOT_SUPPORTED` (no memory windows) |
//! | NdkFastRegister | implemented (`FAST_REG` WQE, access from `NDK_OP_FLAG_*`) |
//! | NdkInvalidate | implemented (`LOCAL_INV` WQE) |
//!
//! A new QP is moved to INIT (responder access: remote read and write, the MR keys decide)
//! so requests can be posted at once; they run once a connection moves the QP to RTS.
//! Doorbells: `SQ_PI` / `RQ_PI` with the free-running producer counts (§8.5); a request with
//! `NDK_OP_FLAG_DEFER` is written but its doorbell waits for the next request.

use core::ffi::c_void;
use core::ptr::{null_mut, write_volatile};
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;
use rnic_contract::bar0::verbs_db;
use rnic_contract::verbs::{access, QpState};
use rnic_contract::wqe::{self, SgeRepr, WQE_SIZE};

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::hw;
use crate::ndk::cq::Cq;
use crate::ndk::pd::{self, Pd};
use crate::ndk::{self, mr};
use crate::ndk_logic::{self, QpShape};

/// QPs the driver tracks (QPN -> QP context for completions).
pub(crate) const QP_SLOTS: usize = 256;

/// One queue pair (`NDK_QP` first).
#[repr(C)]
pub(crate) struct Qp {
    /// The NDK object the consumer sees.
    pub ndk: NDK_QP,
    /// Its PD.
    pub pd: *mut Pd,
    /// Its adapter.
    pub a: *mut Adapter,
    /// Receive CQ.
    pub rcq: *mut Cq,
    /// Initiator (send) CQ.
    pub icq: *mut Cq,
    /// The consumer's QP context (reported in every result).
    pub context: *mut c_void,
    /// The device's QPN.
    pub qpn: u32,
    /// Ring shape and limits.
    pub shape: QpShape,
    /// SQ ring.
    pub sq_va: *mut u8,
    /// SQ bus address.
    pub sq_pa: NDIS_PHYSICAL_ADDRESS,
    /// RQ ring.
    pub rq_va: *mut u8,
    /// RQ bus address.
    pub rq_pa: NDIS_PHYSICAL_ADDRESS,
    /// SQ producer count (under `sq_lock`).
    pub sq_pi: u32,
    /// RQ producer count (under `rq_lock`).
    pub rq_pi: u32,
    /// Held by a poster of the SQ.
    pub sq_lock: AtomicBool,
    /// Held by a poster of the RQ.
    pub rq_lock: AtomicBool,
    /// Slot in the adapter's QP table.
    pub slot: usize,
    /// Pending create's callback.
    pub create_completion: Option<NDK_FN_CREATE_COMPLETION>,
    /// Pending close's callback.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of the pending callback.
    pub request_context: *mut c_void,
}

static DISPATCH: NDK_QP_DISPATCH = NDK_QP_DISPATCH {
    NdkCloseQp: Some(close),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkFlush: Some(flush),
    NdkSend: Some(send),
    NdkReceive: Some(receive),
    NdkBind: Some(bind),
    NdkFastRegister: Some(fast_register),
    NdkInvalidate: Some(invalidate),
    NdkRead: Some(read),
    NdkWrite: Some(write),
    NdkSendAndInvalidate: Some(send_and_invalidate),
};

/// NdkCreateQp. IRQL: <= DISPATCH_LEVEL. Depths 1..=MaxInitiator/ReceiveQueueDepth, SGE
/// counts and inline size up to the adapter info's maxima (else `STATUS_INVALID_PARAMETER`);
/// pends, a work item creates the rings and the device QP, moves it to INIT and calls
/// `completion` (PASSIVE_LEVEL).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe extern "win64" fn create(
    pd: *mut NDK_PD,
    receive_cq: *mut NDK_CQ,
    initiator_cq: *mut NDK_CQ,
    qp_context: *mut c_void,
    receive_depth: u32,
    initiator_depth: u32,
    receive_sge: u32,
    initiator_sge: u32,
    inline: u32,
    completion: Option<NDK_FN_CREATE_COMPLETION>,
    context: *mut c_void,
    out: *mut *mut NDK_QP,
) -> NTSTATUS {
    if pd.is_null()
        || receive_cq.is_null()
        || initiator_cq.is_null()
        || out.is_null()
        || completion.is_none()
    {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live PD and CQs.
    unsafe {
        let (pd, a) = pd::parts(pd);
        let Some(shape) = ndk_logic::qp_shape(
            &(*a).ndk.caps,
            receive_depth,
            initiator_depth,
            receive_sge,
            initiator_sge,
            inline,
        ) else {
            return STATUS_INVALID_PARAMETER;
        };
        let qp = ndk::alloc_object::<Qp>(a);
        if qp.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*qp).ndk = NDK_QP {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypeQp),
            Dispatch: &DISPATCH,
        };
        (*qp).pd = pd;
        (*qp).a = a;
        (*qp).rcq = receive_cq.cast();
        (*qp).icq = initiator_cq.cast();
        (*qp).context = qp_context;
        (*qp).shape = shape;
        (*qp).create_completion = completion;
        (*qp).request_context = context;
        (*qp).slot = usize::MAX;
        (*pd).children.fetch_add(1, Ordering::AcqRel);
        (*(*qp).rcq).qp_refs.fetch_add(1, Ordering::AcqRel);
        (*(*qp).icq).qp_refs.fetch_add(1, Ordering::AcqRel);
        if !ndk::defer(a, create_worker, qp.cast()) {
            release_refs(qp);
            ndk::free(qp);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        *out = qp.cast();
    }
    STATUS_PENDING
}

/// Drops the QP's references on its PD and CQs.
///
/// # Safety
/// `qp` holds those references.
unsafe fn release_refs(qp: *mut Qp) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*(*qp).pd).children.fetch_sub(1, Ordering::AcqRel);
        (*(*qp).rcq).qp_refs.fetch_sub(1, Ordering::AcqRel);
        (*(*qp).icq).qp_refs.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Frees the QP's rings (PASSIVE_LEVEL).
///
/// # Safety
/// `qp` is live; the device no longer reads the rings.
unsafe fn free_rings(a: *mut Adapter, qp: *mut Qp) {
    // SAFETY: each ring was allocated with exactly these sizes.
    unsafe {
        if !(*qp).sq_va.is_null() {
            let bytes = (*qp).shape.sq_entries * WQE_SIZE as u32;
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                bytes,
                FALSE,
                (*qp).sq_va.cast(),
                (*qp).sq_pa,
            );
            (*qp).sq_va = null_mut();
        }
        if !(*qp).rq_va.is_null() {
            let bytes = (*qp).shape.rq_entries * WQE_SIZE as u32;
            ffi::NdisMFreeSharedMemory(
                (*a).miniport,
                bytes,
                FALSE,
                (*qp).rq_va.cast(),
                (*qp).rq_pa,
            );
            (*qp).rq_va = null_mut();
        }
    }
}

/// Work item of [`create`] (PASSIVE_LEVEL).
unsafe fn create_worker(a: *mut Adapter, object: *mut c_void) {
    let qp = object.cast::<Qp>();
    // SAFETY: `qp` is the QP `create` allocated; freed here only on failure.
    unsafe {
        let completion = (*qp).create_completion.take();
        let context = (*qp).request_context;
        let status = setup(a, qp);
        if status == STATUS_SUCCESS {
            (*a).ndk.live_objects.fetch_add(1, Ordering::AcqRel);
            if let Some(f) = completion {
                f(context, STATUS_SUCCESS, qp.cast());
            }
        } else {
            free_rings(a, qp);
            release_refs(qp);
            ndk::free(qp);
            if let Some(f) = completion {
                f(context, status, null_mut());
            }
        }
    }
}

/// Rings, `CREATE_QP`, RESET -> INIT, table slot.
///
/// # Safety
/// PASSIVE_LEVEL; `qp` is being created.
unsafe fn setup(a: *mut Adapter, qp: *mut Qp) -> NTSTATUS {
    // SAFETY: (whole body) `a`, `qp` live; the caller frees the rings on failure.
    unsafe {
        let shape = (*qp).shape;
        let align = wqe::RING_ALIGN as i64;
        let Some((va, pa)) = hw::alloc_ring(a, shape.sq_entries * WQE_SIZE as u32, align) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        (*qp).sq_va = va;
        (*qp).sq_pa = pa;
        let Some((va, pa)) = hw::alloc_ring(a, shape.rq_entries * WQE_SIZE as u32, align) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        (*qp).rq_va = va;
        (*qp).rq_pa = pa;
        let Some(slot) = (*a).ndk.qps.iter().position(|s| {
            s.compare_exchange(null_mut(), qp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        let ops = ndk_logic::create_qp_operands(
            (*(*qp).pd).pdn,
            (*(*qp).icq).cqn,
            (*(*qp).rcq).cqn,
            &shape,
            (*qp).sq_pa as u64,
            (*qp).rq_pa as u64,
        );
        let (status, qpn, _) = ndk::admin_exec(a, opcode::CREATE_QP, &ops);
        if status != 0 {
            log!("CREATE_QP failed: status %x\n", status as u32);
            (*a).ndk.qps[slot].store(null_mut(), Ordering::Release);
            return ndk_logic::admin_status(status);
        }
        (*qp).qpn = qpn;
        (*qp).slot = slot;
        let remote = (access::REMOTE_READ | access::REMOTE_WRITE) as u8;
        let ops = ndk_logic::modify_qp_state_operands(qpn, QpState::Init, Some(remote));
        let (status, _, _) = ndk::admin_exec(a, opcode::MODIFY_QP, &ops);
        if status != 0 {
            log!("QP %u to INIT failed: status %x\n", qpn, status as u32);
            let _ = ndk::admin_exec(a, opcode::DESTROY_QP, &ndk_logic::handle_operands(qpn));
            (*a).ndk.qps[slot].store(null_mut(), Ordering::Release);
            return ndk_logic::admin_status(status);
        }
        STATUS_SUCCESS
    }
}

/// The QP context of QP `qpn` of this adapter (null if none).
///
/// # Safety
/// `a` is live.
pub(crate) unsafe fn context_of(a: *mut Adapter, qpn: u32) -> *mut c_void {
    // SAFETY: table entries are live QPs (cleared before a QP is freed).
    unsafe {
        for s in (*a).ndk.qps.iter() {
            let qp = s.load(Ordering::Acquire);
            if !qp.is_null() && (*qp).qpn == qpn {
                return (*qp).context;
            }
        }
    }
    null_mut()
}

/// NdkCloseQp. IRQL: <= DISPATCH_LEVEL. Pends; a work item destroys the device QP (its
/// outstanding work is dropped without completions, spec §3.12), frees it and calls
/// `completion` (PASSIVE_LEVEL).
unsafe extern "win64" fn close(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let qp = object.cast::<Qp>();
    if qp.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live QP.
    unsafe {
        (*qp).close_completion = completion;
        (*qp).request_context = context;
        if !ndk::defer_close((*qp).a, close_worker, qp.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close`] (PASSIVE_LEVEL).
unsafe fn close_worker(a: *mut Adapter, object: *mut c_void) {
    let qp = object.cast::<Qp>();
    // SAFETY: `qp` is live until freed here.
    unsafe {
        let (status, _, _) = ndk::admin_exec(
            a,
            opcode::DESTROY_QP,
            &ndk_logic::handle_operands((*qp).qpn),
        );
        if status != 0 {
            log!(
                "DESTROY_QP %u failed: status %x\n",
                (*qp).qpn,
                status as u32
            );
        }
        (*a).ndk.qps[(*qp).slot].store(null_mut(), Ordering::Release);
        free_rings(a, qp);
        release_refs(qp);
        (*a).ndk.live_objects.fetch_sub(1, Ordering::AcqRel);
        let completion = (*qp).close_completion;
        let context = (*qp).request_context;
        ndk::free(qp);
        if let Some(f) = completion {
            f(context);
        }
    }
}

/// NdkFlush. IRQL: <= DISPATCH_LEVEL. Moves the QP to ERR from a work item: every
/// outstanding and later request completes with `STATUS_CANCELLED`.
unsafe extern "win64" fn flush(qp: *mut NDK_QP) {
    let qp = qp.cast::<Qp>();
    if qp.is_null() {
        return;
    }
    // SAFETY: the consumer passes its live QP.
    unsafe {
        if !ndk::defer((*qp).a, flush_worker, qp.cast()) {
            log!("NDK flush of QP %u: out of memory\n", (*qp).qpn);
        }
    }
}

/// Work item of [`flush`] (PASSIVE_LEVEL).
unsafe fn flush_worker(a: *mut Adapter, object: *mut c_void) {
    let qp = object.cast::<Qp>();
    // SAFETY: `qp` is live (a close queued after the flush runs after it).
    unsafe {
        let ops = ndk_logic::modify_qp_state_operands((*qp).qpn, QpState::Err, None);
        let (status, _, _) = ndk::admin_exec(a, opcode::MODIFY_QP, &ops);
        if status != 0 {
            log!("QP %u to ERR failed: status %x\n", (*qp).qpn, status as u32);
        }
    }
}

/// Reads the consumer's SGEs into device SGEs (the local token is the device key).
///
/// # Safety
/// `sgl` points to `n` SGEs.
unsafe fn sges(
    sgl: *const NDK_SGE,
    n: u32,
    out: &mut [SgeRepr; wqe::MAX_SGE as usize],
) -> Option<usize> {
    let n = n as usize;
    if n > out.len() || (n != 0 && sgl.is_null()) {
        return None;
    }
    for (i, o) in out.iter_mut().take(n).enumerate() {
        // SAFETY: guaranteed by the caller.
        let s = unsafe { sgl.add(i).read() };
        *o = SgeRepr {
            // SAFETY: reading either member of the address union is reading the same 8 bytes.
            addr: unsafe { s.Address.LogicalAddress } as u64,
            len: s.Length,
            lkey: s.MemoryRegionToken,
        };
    }
    Some(n)
}

/// Writes one WQE into the SQ (or RQ) and rings its doorbell unless deferred.
///
/// # Safety
/// `qp` is live.
unsafe fn post(qp: *mut Qp, receive: bool, entry: &[u8; WQE_SIZE], defer: bool) -> NTSTATUS {
    // SAFETY: the slot is inside the ring (producer masked); the lock makes this the only
    // poster of the queue.
    unsafe {
        let (lock, ring, entries) = if receive {
            (&(*qp).rq_lock, (*qp).rq_va, (*qp).shape.rq_entries)
        } else {
            (&(*qp).sq_lock, (*qp).sq_va, (*qp).shape.sq_entries)
        };
        while lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let pi = if receive {
            &mut (*qp).rq_pi
        } else {
            &mut (*qp).sq_pi
        };
        let at = ring.add(((*pi & (entries - 1)) as usize) * WQE_SIZE);
        for (i, b) in entry.iter().enumerate() {
            write_volatile(at.add(i), *b);
        }
        *pi = pi.wrapping_add(1);
        if !defer {
            // The WQE must be visible before the doorbell.
            fence(Ordering::Release);
            let db = verbs_db::sq_doorbell((*qp).qpn) as usize
                + if receive {
                    verbs_db::SECOND as usize
                } else {
                    0
                };
            hw::wr((*qp).a, db, *pi);
        }
        lock.store(false, Ordering::Release);
    }
    STATUS_SUCCESS
}

/// Builds and posts a send-queue request over SGEs, or inline with `NDK_OP_FLAG_INLINE`
/// (the data read from the SGEs' virtual addresses, which for inline requests are ordinary
/// consumer buffers).
///
/// # Safety
/// `qp` live; `sgl` has `n` SGEs.
#[allow(clippy::too_many_arguments)]
unsafe fn post_send(
    qp: *mut Qp,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
    flags: u32,
    opcode: u8,
    imm_inv: u32,
    remote_addr: u64,
    rkey: u32,
) -> NTSTATUS {
    if qp.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live QP and `n` SGEs.
    unsafe {
        let wflags = ndk_logic::send_wqe_flags(flags);
        let defer = flags & NDK_OP_FLAG_DEFER != 0;
        let mut list = [SgeRepr::default(); wqe::MAX_SGE as usize];
        let Some(count) = sges(sgl, n, &mut list) else {
            return STATUS_INVALID_PARAMETER;
        };
        if flags & NDK_OP_FLAG_INLINE != 0 && opcode != wqe::opcode::RDMA_READ {
            let total: u64 = list[..count].iter().map(|s| u64::from(s.len)).sum();
            if total > u64::from((*qp).shape.inline) {
                return STATUS_INVALID_PARAMETER;
            }
            let mut data = [0u8; wqe::MAX_INLINE as usize];
            let mut at = 0usize;
            for s in &list[..count] {
                let src = core::slice::from_raw_parts(s.addr as usize as *const u8, s.len as usize);
                data[at..at + src.len()].copy_from_slice(src);
                at += src.len();
            }
            let Some(entry) = ndk_logic::inline_wqe(
                context as u64,
                opcode,
                wflags,
                &data[..at],
                imm_inv,
                remote_addr,
                rkey,
            ) else {
                return STATUS_INVALID_PARAMETER;
            };
            return post(qp, false, &entry, defer);
        }
        if count > usize::from((*qp).shape.send_sge) {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(entry) = ndk_logic::send_wqe(
            context as u64,
            opcode,
            wflags & !wqe::flags::INLINE,
            &list[..count],
            imm_inv,
            remote_addr,
            rkey,
        ) else {
            return STATUS_INVALID_PARAMETER;
        };
        post(qp, false, &entry, defer)
    }
}

/// NdkSend. IRQL: <= DISPATCH_LEVEL. A SEND; completes in the initiator CQ.
unsafe extern "win64" fn send(
    qp: *mut NDK_QP,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
    flags: u32,
) -> NTSTATUS {
    // SAFETY: forwarded consumer arguments.
    unsafe {
        post_send(
            qp.cast(),
            context,
            sgl,
            n,
            flags,
            wqe::opcode::SEND,
            0,
            0,
            0,
        )
    }
}

/// NdkSendAndInvalidate. IRQL: <= DISPATCH_LEVEL. A SEND that invalidates `token` at the
/// peer (reported there as a receive-and-invalidate result).
unsafe extern "win64" fn send_and_invalidate(
    qp: *mut NDK_QP,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
    flags: u32,
    token: u32,
) -> NTSTATUS {
    // SAFETY: forwarded consumer arguments.
    unsafe {
        post_send(
            qp.cast(),
            context,
            sgl,
            n,
            flags,
            wqe::opcode::SEND_WITH_INV,
            token,
            0,
            0,
        )
    }
}

/// NdkRead. IRQL: <= DISPATCH_LEVEL. An RDMA READ of `(remote, token)` into the SGEs.
unsafe extern "win64" fn read(
    qp: *mut NDK_QP,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
    remote: u64,
    token: u32,
    flags: u32,
) -> NTSTATUS {
    // SAFETY: forwarded consumer arguments.
    unsafe {
        post_send(
            qp.cast(),
            context,
            sgl,
            n,
            flags & !NDK_OP_FLAG_INLINE,
            wqe::opcode::RDMA_READ,
            0,
            remote,
            token,
        )
    }
}

/// NdkWrite. IRQL: <= DISPATCH_LEVEL. An RDMA WRITE of the SGEs to `(remote, token)`.
unsafe extern "win64" fn write(
    qp: *mut NDK_QP,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
    remote: u64,
    token: u32,
    flags: u32,
) -> NTSTATUS {
    // SAFETY: forwarded consumer arguments.
    unsafe {
        post_send(
            qp.cast(),
            context,
            sgl,
            n,
            flags,
            wqe::opcode::RDMA_WRITE,
            0,
            remote,
            token,
        )
    }
}

/// NdkReceive. IRQL: <= DISPATCH_LEVEL. Posts a receive buffer; completes in the receive CQ.
unsafe extern "win64" fn receive(
    qp: *mut NDK_QP,
    context: *mut c_void,
    sgl: *const NDK_SGE,
    n: u32,
) -> NTSTATUS {
    let qp = qp.cast::<Qp>();
    if qp.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live QP and `n` SGEs.
    unsafe {
        let mut list = [SgeRepr::default(); wqe::MAX_SGE as usize];
        let Some(count) = sges(sgl, n, &mut list) else {
            return STATUS_INVALID_PARAMETER;
        };
        if count > usize::from((*qp).shape.recv_sge) {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(entry) = ndk_logic::recv_wqe(context as u64, &list[..count]) else {
            return STATUS_INVALID_PARAMETER;
        };
        post(qp, true, &entry, false)
    }
}

/// NdkBind. IRQL: <= DISPATCH_LEVEL. `STATUS_NOT_SUPPORTED` (no memory windows).
unsafe extern "win64" fn bind(
    _qp: *mut NDK_QP,
    _context: *mut c_void,
    _mr: *mut NDK_MR,
    _mw: *mut NDK_MW,
    _va: *mut c_void,
    _length: usize,
    _flags: u32,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// NdkFastRegister. IRQL: <= DISPATCH_LEVEL. For an MR initialized with
/// NdkInitializeFastRegisterMr (else `STATUS_INVALID_DEVICE_REQUEST`) and at most its page
/// count (else `STATUS_INVALID_PARAMETER`): copies the adapter pages into the MR's page list,
/// gives the MR its next key (the token getters return it from now on) and posts a
/// `FAST_REG` WQE whose access comes from `NDK_OP_FLAG_*`.
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn fast_register(
    qp: *mut NDK_QP,
    context: *mut c_void,
    mr: *mut NDK_MR,
    pages: u32,
    page_array: *const NDK_LOGICAL_ADDRESS,
    fbo: u32,
    length: usize,
    base: *mut c_void,
    flags: u32,
) -> NTSTATUS {
    let qp = qp.cast::<Qp>();
    if qp.is_null() || mr.is_null() || (pages != 0 && page_array.is_null()) {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live QP, MR and `pages` adapter pages.
    unsafe {
        let Some((list_va, list_pa, max_pages)) = mr::fast_register_list(mr) else {
            return STATUS_INVALID_DEVICE_REQUEST;
        };
        if pages > max_pages || u64::from(fbo) >= ndk_logic::PAGE_SIZE {
            return STATUS_INVALID_PARAMETER;
        }
        for i in 0..pages as usize {
            write_volatile(
                list_va.cast::<u64>().add(i),
                page_array.add(i).read() as u64,
            );
        }
        let key = ndk_logic::next_key(mr::key(mr));
        mr::set_key(mr, key);
        let entry = ndk_logic::fast_reg_wqe(
            context as u64,
            ndk_logic::send_wqe_flags(flags),
            base as u64,
            key,
            ndk_logic::fast_register_access(flags),
            length as u64,
            list_pa as u64,
            pages,
            fbo,
        );
        post(qp, false, &entry, flags & NDK_OP_FLAG_DEFER != 0)
    }
}

/// NdkInvalidate. IRQL: <= DISPATCH_LEVEL. Posts a `LOCAL_INV` WQE for the MR's key (an MW
/// object is refused: there are none).
unsafe extern "win64" fn invalidate(
    qp: *mut NDK_QP,
    context: *mut c_void,
    object: *mut NDK_OBJECT_HEADER,
    flags: u32,
) -> NTSTATUS {
    let qp = qp.cast::<Qp>();
    if qp.is_null() || object.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live QP and MR.
    unsafe {
        if (*object).ObjectType != NdkObjectTypeMr {
            return STATUS_NOT_SUPPORTED;
        }
        let key = mr::key(object.cast());
        let Some(entry) = ndk_logic::send_wqe(
            context as u64,
            wqe::opcode::LOCAL_INV,
            ndk_logic::send_wqe_flags(flags) & !wqe::flags::INLINE,
            &[],
            key,
            0,
            0,
        ) else {
            return STATUS_INVALID_PARAMETER;
        };
        post(qp, false, &entry, flags & NDK_OP_FLAG_DEFER != 0)
    }
}

/// Keeps the table type in one place for `NdkState`.
pub(crate) type QpTable = [AtomicPtr<Qp>; QP_SLOTS];
