//! The NDK protection domain: `CREATE_PD` / `DESTROY_PD` (docs/device-spec.md §3.10) and the
//! eight entries of `NDK_PD_DISPATCH`.
//!
//! | entry | state |
//! | --- | --- |
//! | NdkClosePd | implemented; `STATUS_DEVICE_BUSY` while MRs or QPs of the PD live |
//! | NdkQueryExtension | `STATUS_NOT_SUPPORTED` |
//! | NdkCreateMr | implemented (`mr`) |
//! | NdkCreateMw | `STATUS_NOT_SUPPORTED` (no memory windows: `MaxMwCount` 0) |
//! | NdkCreateSrq | `STATUS_NOT_SUPPORTED` (no SRQs: `MaxSrqCount` 0) |
//! | NdkCreateQp | implemented (`qp`) |
//! | NdkCreateQpWithSrq | `STATUS_NOT_SUPPORTED` (no SRQs) |
//! | NdkGetPrivilegedMemoryRegionToken | writes 0, a key the device never accepts (no privileged token) |

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};

use ndis_abi::*;
use rnic_contract::admin::opcode;

use crate::adapter::Adapter;
use crate::ffi::log;
use crate::ndk::adapter::NdkAdapter;
use crate::ndk::{self, mr, qp};
use crate::ndk_logic;

/// One protection domain (`NDK_PD` first).
#[repr(C)]
pub(crate) struct Pd {
    /// The NDK object the consumer sees.
    pub ndk: NDK_PD,
    /// The adapter it was created on.
    pub owner: *mut NdkAdapter,
    /// The device's PDN (valid once created).
    pub pdn: u32,
    /// Live MRs and QPs in the PD.
    pub children: AtomicU32,
    /// The pending create's or close's callback and context.
    pub create_completion: Option<NDK_FN_CREATE_COMPLETION>,
    /// The pending close's callback.
    pub close_completion: Option<NDK_FN_CLOSE_COMPLETION>,
    /// Context of the pending callback.
    pub context: *mut c_void,
}

static DISPATCH: NDK_PD_DISPATCH = NDK_PD_DISPATCH {
    NdkClosePd: Some(close),
    NdkQueryExtension: Some(ndk::query_extension),
    NdkCreateMr: Some(mr::create),
    NdkCreateMw: Some(create_mw),
    NdkCreateSrq: Some(create_srq),
    NdkCreateQp: Some(qp::create),
    NdkCreateQpWithSrq: Some(create_qp_with_srq),
    NdkGetPrivilegedMemoryRegionToken: Some(privileged_token),
};

/// NdkCreatePd. IRQL: <= DISPATCH_LEVEL. Pends; `CREATE_PD` runs in a work item, which calls
/// `completion` with the PD (PASSIVE_LEVEL).
pub(crate) unsafe extern "win64" fn create(
    adapter: *mut NDK_ADAPTER,
    completion: Option<NDK_FN_CREATE_COMPLETION>,
    context: *mut c_void,
    out: *mut *mut NDK_PD,
) -> NTSTATUS {
    let owner = adapter.cast::<NdkAdapter>();
    if owner.is_null() || out.is_null() || completion.is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live adapter; the PD is ours until completion.
    unsafe {
        let a = ndk::device_of(owner);
        let pd = ndk::alloc_object::<Pd>(a);
        if pd.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        (*pd).ndk = NDK_PD {
            Header: NDK_OBJECT_HEADER::new(NDK_VERSION_1_2, NdkObjectTypePd),
            Dispatch: &DISPATCH,
        };
        (*pd).owner = owner;
        (*pd).create_completion = completion;
        (*pd).context = context;
        (*owner).children.fetch_add(1, Ordering::AcqRel);
        if !ndk::defer(a, create_worker, pd.cast()) {
            (*owner).children.fetch_sub(1, Ordering::AcqRel);
            ndk::free(pd);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        *out = pd.cast();
    }
    STATUS_PENDING
}

/// Work item of [`create`] (PASSIVE_LEVEL): `CREATE_PD`, then the create completion.
unsafe fn create_worker(a: *mut Adapter, object: *mut c_void) {
    let pd = object.cast::<Pd>();
    // SAFETY: `pd` is the PD `create` allocated; freed here only on failure.
    unsafe {
        let (status, pdn, _) = ndk::admin_exec(a, opcode::CREATE_PD, &[0; 14]);
        let completion = (*pd).create_completion.take();
        let context = (*pd).context;
        let nt = ndk_logic::admin_status(status);
        if nt == STATUS_SUCCESS {
            (*pd).pdn = pdn;
            (*a).ndk.live_objects.fetch_add(1, Ordering::AcqRel);
            if let Some(f) = completion {
                f(context, STATUS_SUCCESS, pd.cast());
            }
        } else {
            log!("CREATE_PD failed: status %x\n", status as u32);
            (*(*pd).owner).children.fetch_sub(1, Ordering::AcqRel);
            ndk::free(pd);
            if let Some(f) = completion {
                f(context, nt, core::ptr::null_mut());
            }
        }
    }
}

/// NdkClosePd. IRQL: <= DISPATCH_LEVEL. `STATUS_DEVICE_BUSY` while MRs or QPs live in the
/// PD; otherwise pends, `DESTROY_PD` runs in a work item which frees the PD and calls
/// `completion` (PASSIVE_LEVEL).
unsafe extern "win64" fn close(
    object: *mut NDK_OBJECT_HEADER,
    completion: Option<NDK_FN_CLOSE_COMPLETION>,
    context: *mut c_void,
) -> NTSTATUS {
    let pd = object.cast::<Pd>();
    if pd.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the consumer passes its live PD.
    unsafe {
        if (*pd).children.load(Ordering::Acquire) != 0 {
            return STATUS_DEVICE_BUSY;
        }
        let a = ndk::device_of((*pd).owner);
        (*pd).close_completion = completion;
        (*pd).context = context;
        if !ndk::defer_close(a, close_worker, pd.cast()) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    STATUS_PENDING
}

/// Work item of [`close`] (PASSIVE_LEVEL).
unsafe fn close_worker(a: *mut Adapter, object: *mut c_void) {
    let pd = object.cast::<Pd>();
    // SAFETY: `pd` is live until freed here.
    unsafe {
        let (status, _, _) = ndk::admin_exec(
            a,
            opcode::DESTROY_PD,
            &ndk_logic::handle_operands((*pd).pdn),
        );
        if status != 0 {
            log!(
                "DESTROY_PD %u failed: status %x\n",
                (*pd).pdn,
                status as u32
            );
        }
        let completion = (*pd).close_completion;
        let context = (*pd).context;
        (*(*pd).owner).children.fetch_sub(1, Ordering::AcqRel);
        (*a).ndk.live_objects.fetch_sub(1, Ordering::AcqRel);
        ndk::free(pd);
        if let Some(f) = completion {
            f(context);
        }
    }
}

/// NdkCreateMw. IRQL: <= DISPATCH_LEVEL. `STATUS_NOT_SUPPORTED` (no memory windows).
unsafe extern "win64" fn create_mw(
    _pd: *mut NDK_PD,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    _out: *mut *mut NDK_MW,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// NdkCreateSrq. IRQL: <= DISPATCH_LEVEL. `STATUS_NOT_SUPPORTED` (no SRQs).
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn create_srq(
    _pd: *mut NDK_PD,
    _depth: u32,
    _max_sge: u32,
    _threshold: u32,
    _notification: Option<NDK_FN_SRQ_NOTIFICATION_CALLBACK>,
    _notification_context: *mut c_void,
    _affinity: *mut GROUP_AFFINITY,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    _out: *mut *mut NDK_SRQ,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// NdkCreateQpWithSrq. IRQL: <= DISPATCH_LEVEL. `STATUS_NOT_SUPPORTED` (no SRQs).
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn create_qp_with_srq(
    _pd: *mut NDK_PD,
    _receive_cq: *mut NDK_CQ,
    _initiator_cq: *mut NDK_CQ,
    _srq: *mut NDK_SRQ,
    _qp_context: *mut c_void,
    _initiator_depth: u32,
    _initiator_sge: u32,
    _inline: u32,
    _completion: Option<NDK_FN_CREATE_COMPLETION>,
    _context: *mut c_void,
    _out: *mut *mut NDK_QP,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// NdkGetPrivilegedMemoryRegionToken. IRQL: <= DISPATCH_LEVEL. The device has no privileged
/// token: writes 0, which no MR key ever equals (keys 0..=0xFF are never valid, spec §6.1).
unsafe extern "win64" fn privileged_token(_pd: *mut NDK_PD, token: *mut u32) {
    if !token.is_null() {
        // SAFETY: the consumer passes a valid out-pointer.
        unsafe { *token = 0 };
    }
}

/// The device PDN of a consumer's PD and its adapter.
///
/// # Safety
/// `pd` is a live PD of this provider.
pub(crate) unsafe fn parts(pd: *mut NDK_PD) -> (*mut Pd, *mut Adapter) {
    let p = pd.cast::<Pd>();
    // SAFETY: guaranteed by the caller.
    unsafe { (p, ndk::device_of((*p).owner)) }
}
