//! `guest.selftest=ndk-*`: each provokes one rule of the NDK contract verifier and checks the
//! verifier names it, before the real driver loads. The misbehaving provider is played by
//! the guest itself ([`fake`]): a fake NDK adapter whose dispatch functions break exactly the
//! rule under test; the consumer side goes through the same verifier calls the suite uses.
//!
//! `ndk-mdl-va` builds a consumer buffer and its MDL chain exactly as the suite does and reads
//! through the MDL's virtual address, as a provider that dereferences it would: the access
//! page-faults and the fault handler names the MDL rule; the boot ends there (status 1). The
//! other self tests report and let the boot go on.

use alloc::format;
use alloc::string::String;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use guest_core::ndk::ObjectKind;
use ndis_abi::*;

use super::memory::{Buffer, MdlChain};
use super::verifier;
use crate::ndis::{DISPATCH_LEVEL, STATE};

/// `ndk-mdl-va`: never returns (the read faults); Err if the MDL could not be built or the
/// read did not fault.
pub fn mdl_va() -> Result<(), &'static str> {
    let mut buf = Buffer::new(2 * 4096 + 100, 0x123).ok_or("out of memory")?;
    buf.fill(7);
    let chain = MdlChain::new(&buf, 0, buf.len, u32::MAX).ok_or("out of memory")?;
    let va = chain.virtual_address();
    // The MDL describes the buffer through its PFN array: the first byte it names physically
    // is the buffer's first byte (what a correct provider reads).
    let head = chain.head();
    // SAFETY: the chain's first MDL, built with its PFN array right after the header.
    let (pfn0, offset) = unsafe { (head.add(1).cast::<u64>().read(), (*head).ByteOffset) };
    let physical = pfn0 * 4096 + offset as u64;
    // SAFETY: identity-mapped RAM inside the buffer (the PFN array names its pages).
    let through_pfn = unsafe { core::ptr::read_volatile(physical as *const u8) };
    if physical != buf.addr() || through_pfn != buf.bytes()[0] {
        return Err("the MDL's PFN array does not describe the buffer");
    }
    crate::println!(
        "guest: selftest ndk-mdl-va: {} MDL(s) for {} bytes at {:#x}, MDL virtual address {va:#x}; reading it as a careless provider would",
        chain.len(),
        buf.len,
        buf.addr()
    );
    // SAFETY: deliberately not safe: the alias address is unmapped, so this read page-faults
    // and the exception handler ends the boot naming the MDL rule (it never returns here).
    let v = unsafe { core::ptr::read_volatile(va as *const u8) };
    crate::println!("guest: selftest ndk-mdl-va: read {v:#x} through the MDL address");
    Err("reading through the MDL's virtual address did not fault")
}

/// Runs the rule self test `name` (one of the `ndk-*` names but `ndk-mdl-va`): the scenario
/// must record a violation containing the rule's text. The violations it provoked are
/// forgotten afterwards, so the boot goes on to an unaffected verdict. Returns the violation
/// that named the rule.
pub fn rule(name: &str) -> Result<String, String> {
    let (mode, texts): (fake::Mode, &[&str]) = match name {
        "ndk-double-completion" => (fake::Mode::DoubleCompletion, &["completed twice"]),
        "ndk-completion-without-pending" => (
            fake::Mode::CompletionWithoutPending,
            &["not STATUS_PENDING"],
        ),
        "ndk-callback-after-close" => (
            fake::Mode::CallbackAfterClose,
            &["after its close completed"],
        ),
        "ndk-parent-close" => (
            fake::Mode::ParentClose,
            &["child object(s) were still open"],
        ),
        "ndk-irql" => (
            fake::Mode::Irql,
            &[
                "called at IRQL 2",
                "NDK IRQL rule: a create completion ran at IRQL 5",
            ],
        ),
        "ndk-leak" => (fake::Mode::Leak, &["was never closed"]),
        other => return Err(format!("{other} is not an NDK rule self test")),
    };
    let before = STATE.lock().violations.len();
    fake::run(mode);
    let new = STATE.lock().violations.split_off(before);
    verifier::reset();
    let mut caught = String::new();
    for text in texts {
        match new.iter().find(|v| v.contains(text)) {
            Some(v) if caught.is_empty() => caught = v.clone(),
            Some(v) => caught = format!("{caught}; {v}"),
            None => {
                return Err(format!(
                    "the verifier recorded no violation containing \"{text}\" (recorded: {new:?})"
                ))
            }
        }
    }
    Ok(caught)
}

/// The misbehaving provider the rule self tests drive.
mod fake {
    use super::*;
    use core::sync::atomic::AtomicU8;

    /// Which rule the fake provider breaks.
    #[derive(Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Mode {
        /// NdkCreatePd pends and completes twice.
        DoubleCompletion = 1,
        /// NdkCreatePd completes and returns STATUS_SUCCESS.
        CompletionWithoutPending,
        /// The CQ notification runs after NdkCloseCq completed.
        CallbackAfterClose,
        /// NdkClosePd completes while an MR of the PD is open.
        ParentClose,
        /// NdkCreateCq (called at DISPATCH_LEVEL) calls a PASSIVE-only NDIS function and
        /// completes from DIRQL.
        Irql,
        /// The consumer finishes with a PD still open.
        Leak,
    }

    static MODE: AtomicU8 = AtomicU8::new(0);

    fn mode() -> u8 {
        MODE.load(Ordering::Relaxed)
    }

    /// Fake objects: statics the fake hands out (their addresses are the objects).
    struct Objects {
        adapter: NDK_ADAPTER,
        pd: NDK_PD,
        mr: NDK_MR,
        cq: NDK_CQ,
    }

    // SAFETY: the objects are only read (by the verifier) on the one CPU; their raw pointers
    // point to the static dispatch tables below.
    unsafe impl Sync for Objects {}

    const V: NDK_VERSION = NDK_VERSION { Major: 1, Minor: 2 };

    static OBJECTS: Objects = Objects {
        adapter: NDK_ADAPTER {
            Header: NDK_OBJECT_HEADER::new(V, NdkObjectTypeAdapter),
            Dispatch: &ADAPTER_DISPATCH,
        },
        pd: NDK_PD {
            Header: NDK_OBJECT_HEADER::new(V, NdkObjectTypePd),
            Dispatch: &PD_DISPATCH,
        },
        mr: NDK_MR {
            Header: NDK_OBJECT_HEADER::new(V, NdkObjectTypeMr),
            Dispatch: &MR_DISPATCH,
        },
        cq: NDK_CQ {
            Header: NDK_OBJECT_HEADER::new(V, NdkObjectTypeCq),
            Dispatch: &CQ_DISPATCH,
        },
    };

    fn obj<T>(o: &'static T) -> *mut T {
        o as *const T as *mut T
    }

    static ADAPTER_DISPATCH: NDK_ADAPTER_DISPATCH = NDK_ADAPTER_DISPATCH {
        NdkQueryExtension: None,
        NdkQueryAdapterInfo: None,
        NdkCreateCq: Some(create_cq),
        NdkCreatePd: Some(create_pd),
        NdkCreateSharedEndpoint: None,
        NdkCreateConnector: None,
        NdkCreateListener: None,
        NdkBuildLAM: None,
        NdkReleaseLAM: None,
    };
    static PD_DISPATCH: NDK_PD_DISPATCH = NDK_PD_DISPATCH {
        NdkClosePd: Some(close_ok),
        NdkQueryExtension: None,
        NdkCreateMr: Some(create_mr),
        NdkCreateMw: None,
        NdkCreateSrq: None,
        NdkCreateQp: None,
        NdkCreateQpWithSrq: None,
        NdkGetPrivilegedMemoryRegionToken: None,
    };
    static MR_DISPATCH: NDK_MR_DISPATCH = NDK_MR_DISPATCH {
        NdkCloseMr: Some(close_ok),
        NdkQueryExtension: None,
        NdkRegisterMr: None,
        NdkDeregisterMr: None,
        NdkInitializeFastRegisterMr: None,
        NdkGetRemoteTokenFromMr: None,
        NdkGetLocalTokenFromMr: None,
    };
    static CQ_DISPATCH: NDK_CQ_DISPATCH = NDK_CQ_DISPATCH {
        NdkCloseCq: Some(close_ok),
        NdkQueryExtension: None,
        NdkResizeCq: None,
        NdkArmCq: None,
        NdkGetCqResults: None,
        NdkControlCqInterruptModeration: None,
        NdkGetCqResultsEx: None,
    };

    /// The CQ notification the fake CQ was created with (callback, context).
    static CQ_NOTIFY: crate::sync::IrqLock<Option<(NDK_FN_CQ_NOTIFICATION_CALLBACK, u64)>> =
        crate::sync::IrqLock::new(None);

    unsafe extern "win64" fn close_ok(
        _object: *mut NDK_OBJECT_HEADER,
        _done: Option<NDK_FN_CLOSE_COMPLETION>,
        _ctx: *mut c_void,
    ) -> NTSTATUS {
        STATUS_SUCCESS
    }

    unsafe extern "win64" fn create_pd(
        _adapter: *mut NDK_ADAPTER,
        done: Option<NDK_FN_CREATE_COMPLETION>,
        ctx: *mut c_void,
        out: *mut *mut NDK_PD,
    ) -> NTSTATUS {
        let pd = obj(&OBJECTS.pd);
        let Some(done) = done else {
            return STATUS_INVALID_PARAMETER;
        };
        // SAFETY: the consumer's completion with its context, and its out-pointer.
        unsafe {
            if mode() == Mode::DoubleCompletion as u8 {
                done(ctx, STATUS_SUCCESS, pd.cast());
                done(ctx, STATUS_SUCCESS, pd.cast());
                return STATUS_PENDING;
            }
            out.write(pd);
            if mode() == Mode::CompletionWithoutPending as u8 {
                done(ctx, STATUS_SUCCESS, pd.cast());
            }
        }
        STATUS_SUCCESS
    }

    unsafe extern "win64" fn create_mr(
        _pd: *mut NDK_PD,
        _fast: BOOLEAN,
        _done: Option<NDK_FN_CREATE_COMPLETION>,
        _ctx: *mut c_void,
        out: *mut *mut NDK_MR,
    ) -> NTSTATUS {
        // SAFETY: the consumer's out-pointer.
        unsafe { out.write(obj(&OBJECTS.mr)) };
        STATUS_SUCCESS
    }

    #[allow(clippy::too_many_arguments)]
    unsafe extern "win64" fn create_cq(
        _adapter: *mut NDK_ADAPTER,
        _depth: u32,
        notify: Option<NDK_FN_CQ_NOTIFICATION_CALLBACK>,
        notify_ctx: *mut c_void,
        _affinity: *mut GROUP_AFFINITY,
        done: Option<NDK_FN_CREATE_COMPLETION>,
        ctx: *mut c_void,
        out: *mut *mut NDK_CQ,
    ) -> NTSTATUS {
        let cq = obj(&OBJECTS.cq);
        if let Some(n) = notify {
            *CQ_NOTIFY.lock() = Some((n, notify_ctx as u64));
        }
        if mode() == Mode::Irql as u8 {
            // A provider that allocates its ring with a PASSIVE-only function while NDK calls
            // it at DISPATCH_LEVEL ...
            let mut va: *mut c_void = core::ptr::null_mut();
            let mut pa: NDIS_PHYSICAL_ADDRESS = 0;
            // SAFETY: the guest's own export with valid out-pointers.
            unsafe {
                crate::ndis::api::NdisMAllocateSharedMemory(
                    crate::ndis::adapter_handle(0),
                    4096,
                    0,
                    &mut va,
                    &mut pa,
                )
            };
            // ... and completes from its ISR.
            let prev = crate::ndis::IRQL.swap(crate::ndis::DEVICE_IRQL, Ordering::Relaxed);
            if let Some(done) = done {
                // SAFETY: the consumer's completion with its context.
                unsafe { done(ctx, STATUS_SUCCESS, cq.cast()) };
            }
            crate::ndis::IRQL.store(prev, Ordering::Relaxed);
            return STATUS_PENDING;
        }
        // SAFETY: the consumer's out-pointer.
        unsafe { out.write(cq) };
        STATUS_SUCCESS
    }

    fn adapter() -> *mut NDK_ADAPTER {
        obj(&OBJECTS.adapter)
    }

    fn create_pd_through_verifier() -> Option<*mut NDK_PD> {
        let a = adapter();
        verifier::create(
            "NdkCreatePd",
            ObjectKind::Pd,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the fake's own function with the verifier's arguments.
            |done, ctx, out| unsafe { create_pd(a, done, ctx, out) },
        )
        .ok()
    }

    fn create_cq_through_verifier(watch: &'static verifier::Watch) -> Option<*mut NDK_CQ> {
        let a = adapter();
        let cq = verifier::create(
            "NdkCreateCq",
            ObjectKind::Cq,
            Some(a as *const c_void),
            DISPATCH_LEVEL,
            // SAFETY: the fake's own function with the verifier's arguments.
            |done, ctx, out| unsafe {
                create_cq(
                    a,
                    16,
                    Some(verifier::on_cq_notification),
                    watch.context(),
                    core::ptr::null_mut(),
                    done,
                    ctx,
                    out,
                )
            },
        )
        .ok()?;
        watch.object.store(cq as u64, Ordering::Relaxed);
        Some(cq)
    }

    /// Plays the scenario of `mode` against the verifier.
    pub fn run(mode: Mode) {
        MODE.store(mode as u8, Ordering::Relaxed);
        *CQ_NOTIFY.lock() = None;
        let a = adapter();
        verifier::adopt(a as *const c_void, ObjectKind::Adapter, None);
        match mode {
            Mode::DoubleCompletion | Mode::CompletionWithoutPending => {
                if let Some(pd) = create_pd_through_verifier() {
                    verifier::close(pd.cast(), ObjectKind::Pd);
                }
            }
            Mode::ParentClose => {
                if let Some(pd) = create_pd_through_verifier() {
                    let mr = verifier::create(
                        "NdkCreateMr",
                        ObjectKind::Mr,
                        Some(pd as *const c_void),
                        DISPATCH_LEVEL,
                        // SAFETY: the fake's own function with the verifier's arguments.
                        |done, ctx, out| unsafe { create_mr(pd, 0, done, ctx, out) },
                    );
                    verifier::close(pd.cast(), ObjectKind::Pd);
                    if let Ok(mr) = mr {
                        verifier::close(mr.cast(), ObjectKind::Mr);
                    }
                }
            }
            Mode::CallbackAfterClose => {
                let watch = verifier::new_watch("CQ notification");
                if let Some(cq) = create_cq_through_verifier(watch) {
                    verifier::close(cq.cast(), ObjectKind::Cq);
                    // The provider's DPC fires the notification after the close completed.
                    let n = *CQ_NOTIFY.lock();
                    if let Some((notify, ctx)) = n {
                        let prev = crate::ndis::IRQL.swap(DISPATCH_LEVEL, Ordering::Relaxed);
                        // SAFETY: the consumer's callback with the context it registered.
                        unsafe { notify(ctx as *mut c_void, STATUS_SUCCESS) };
                        crate::ndis::IRQL.store(prev, Ordering::Relaxed);
                    }
                }
            }
            Mode::Irql => {
                let watch = verifier::new_watch("CQ notification");
                if let Some(cq) = create_cq_through_verifier(watch) {
                    verifier::close(cq.cast(), ObjectKind::Cq);
                }
            }
            Mode::Leak => {
                create_pd_through_verifier();
            }
        }
        verifier::finish();
        verifier::forget(a as *const c_void);
        MODE.store(0, Ordering::Relaxed);
    }
}
