//! The NDK contract verifier: the layer between the consumer (the suite, the benchmarks) and
//! the provider. Every dispatch call goes through [`call`], [`create`] or [`close`], which
//! record it and enforce NDK's rules:
//!
//! | rule | how it is checked |
//! | --- | --- |
//! | a call that returns `STATUS_PENDING` completes exactly once, any other return never | every call passes the verifier's own completion and context; `guest_core::ndk::RequestTracker` |
//! | no callback after a close completes | CQ notifications, connect and disconnect events name their object; `guest_core::ndk::ObjectTable` |
//! | a parent's close does not complete while children are open | the object table knows each object's parent |
//! | IRQL | calls NDK may make at DISPATCH_LEVEL are made at DISPATCH_LEVEL (a provider that then calls a PASSIVE-only NDIS function is refused by that export); adapter open/close and QueryAdapterInfo at PASSIVE_LEVEL; callbacks must run at <= DISPATCH_LEVEL |
//! | the MDL's virtual address is never dereferenced | `memory`: the address is unmapped; the page-fault handler names the rule |
//! | every object closed by halt | [`finish`] reports every object still open |
//!
//! Violations go to the NDIS personality's list (printed at once, failing the verdict).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_core::ndk::{ObjectKind, ObjectTable, RequestTracker};
use ndis_abi::*;

use super::super::{interrupt, violation, DISPATCH_LEVEL, IRQL};
use crate::sync::IrqLock;

/// How long the verifier waits for a pended call's completion before calling it lost.
pub const REQUEST_WAIT_MS: u64 = 5_000;

/// Where a completion callback leaves its result.
pub struct Slot {
    done: AtomicBool,
    status: AtomicU32,
    object: AtomicU64,
}

/// A notification target (a CQ's notification; later a listener's connect event and a
/// connector's disconnect event): the object it belongs to and how often it fired.
pub struct Watch {
    /// The object (set once the provider returns it).
    pub object: AtomicU64,
    /// Times the callback ran.
    pub fired: AtomicU32,
    /// The last status (CQ notification) or connector (connect event) it carried.
    pub last: AtomicU64,
    what: &'static str,
}

// The slots and watches are boxed on purpose: the provider holds their addresses (as callback
// contexts) while the vectors grow.
#[allow(clippy::vec_box)]
struct Verifier {
    requests: RequestTracker,
    objects: ObjectTable,
    calls: u64,
    slots: Vec<Box<Slot>>,
    watches: Vec<Box<Watch>>,
}

static VERIFIER: IrqLock<Verifier> = IrqLock::new(Verifier {
    requests: RequestTracker::new(),
    objects: ObjectTable::new(),
    calls: 0,
    slots: Vec::new(),
    watches: Vec::new(),
});

/// Dispatch calls made through the verifier so far.
pub fn calls() -> u64 {
    VERIFIER.lock().calls
}

/// Forgets everything, freeing the slots and watches (only once no provider can call back:
/// after the driver is unloaded, or after a self test's fake provider is done).
pub fn reset() {
    let mut v = VERIFIER.lock();
    v.requests = RequestTracker::new();
    v.objects = ObjectTable::new();
    v.calls = 0;
    v.slots = Vec::new();
    v.watches = Vec::new();
}

fn new_slot() -> *const Slot {
    let slot = Box::new(Slot {
        done: AtomicBool::new(false),
        status: AtomicU32::new(0),
        object: AtomicU64::new(0),
    });
    let p: *const Slot = &*slot;
    VERIFIER.lock().slots.push(slot);
    p
}

/// A callback's IRQL must be at most DISPATCH_LEVEL.
fn check_callback_irql(what: &str) {
    let irql = IRQL.load(Ordering::Relaxed);
    if irql > DISPATCH_LEVEL {
        violation(format!(
            "NDK IRQL rule: {what} ran at IRQL {irql}; NDK callbacks run at <= DISPATCH_LEVEL"
        ));
    }
}

fn completed(ctx: *mut c_void, status: NTSTATUS, object: u64, what: &str) {
    check_callback_irql(what);
    let r = VERIFIER.lock().requests.completed(ctx as u64);
    if let Err(v) = r {
        violation(format!("{v}"));
        return;
    }
    // SAFETY: the context of a tracked request is a slot the verifier keeps alive until
    // `reset`.
    let slot = unsafe { &*(ctx as *const Slot) };
    slot.status.store(status, Ordering::Relaxed);
    slot.object.store(object, Ordering::Relaxed);
    slot.done.store(true, Ordering::Release);
}

/// `NDK_FN_CREATE_COMPLETION` the verifier passes.
pub unsafe extern "win64" fn on_create(
    ctx: *mut c_void,
    status: NTSTATUS,
    object: *mut NDK_OBJECT_HEADER,
) {
    completed(ctx, status, object as u64, "a create completion");
}

/// `NDK_FN_REQUEST_COMPLETION` the verifier passes.
pub unsafe extern "win64" fn on_request(ctx: *mut c_void, status: NTSTATUS) {
    completed(ctx, status, 0, "a request completion");
}

/// `NDK_FN_CLOSE_COMPLETION` the verifier passes.
pub unsafe extern "win64" fn on_close(ctx: *mut c_void) {
    completed(ctx, STATUS_SUCCESS, 0, "a close completion");
}

fn watched(ctx: *mut c_void, last: u64) {
    // SAFETY: the context of a notification is a watch the verifier keeps alive until
    // `reset`.
    let w = unsafe { &*(ctx as *const Watch) };
    check_callback_irql(w.what);
    let object = w.object.load(Ordering::Relaxed);
    let r = VERIFIER.lock().objects.callback(object, w.what);
    if let Err(v) = r {
        violation(format!("{v}"));
    }
    w.last.store(last, Ordering::Relaxed);
    w.fired.fetch_add(1, Ordering::Release);
}

/// `NDK_FN_CQ_NOTIFICATION_CALLBACK` the verifier passes (context: a [`Watch`]).
pub unsafe extern "win64" fn on_cq_notification(ctx: *mut c_void, status: NTSTATUS) {
    watched(ctx, status as u64);
}

/// `NDK_FN_CONNECT_EVENT_CALLBACK` the verifier passes (context: a [`Watch`]; `last` is the
/// new connector).
pub unsafe extern "win64" fn on_connect_event(ctx: *mut c_void, connector: *mut NDK_CONNECTOR) {
    watched(ctx, connector as u64);
}

/// `NDK_FN_DISCONNECT_EVENT_CALLBACK` the verifier passes (context: a [`Watch`]).
pub unsafe extern "win64" fn on_disconnect_event(ctx: *mut c_void) {
    watched(ctx, 0);
}

/// A notification target (`what` names the callback in reports). Lives until [`reset`].
pub fn new_watch(what: &'static str) -> &'static Watch {
    let w = Box::new(Watch {
        object: AtomicU64::new(0),
        fired: AtomicU32::new(0),
        last: AtomicU64::new(0),
        what,
    });
    let p: *const Watch = &*w;
    VERIFIER.lock().watches.push(w);
    // SAFETY: the box is kept in the verifier until `reset`, which runs only when nothing
    // can use the watch any more.
    unsafe { &*p }
}

/// The newest watch registered for `object` (a CQ's notification), if any.
pub fn watch_of(object: *const c_void) -> Option<&'static Watch> {
    let v = VERIFIER.lock();
    // The newest watch of that address: a closed object's memory can come back as a new
    // object's, and the closed one's watch (never removed) must not shadow the live one's.
    let w = v
        .watches
        .iter()
        .rev()
        .find(|w| w.object.load(Ordering::Relaxed) == object as u64)?;
    let p: *const Watch = &**w;
    // SAFETY: watches live until `reset` (see `new_watch`).
    Some(unsafe { &*p })
}

impl Watch {
    /// The context to pass the provider.
    pub fn context(&'static self) -> *mut c_void {
        self as *const Watch as *mut c_void
    }
}

/// The final result of a call: its status (the completion's when it pended; `STATUS_IO_TIMEOUT`
/// when a pended call never completed) and the object a pended create delivered.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Final status.
    pub status: NTSTATUS,
    /// The call returned `STATUS_PENDING`.
    pub pended: bool,
    /// Object from a create completion (0 otherwise).
    pub object: u64,
}

/// A call that may still be pended: [`Started::wait`] gives its final outcome.
#[must_use = "a started call must be waited for"]
pub struct Started {
    slot: *const Slot,
    status: NTSTATUS,
}

/// Makes the dispatch call `f` (named `name`) at `irql`, passing it the context the
/// verifier's completions expect, and returns without waiting for a pended call (for calls
/// that complete only after the consumer does something else, such as NdkConnect, which
/// completes once the peer accepts).
pub fn start(name: &str, irql: u8, f: impl FnOnce(*mut c_void) -> NTSTATUS) -> Started {
    let slot = new_slot();
    {
        let mut v = VERIFIER.lock();
        v.requests.begin(slot as u64, name);
        v.calls += 1;
    }
    let prev = IRQL.swap(irql, Ordering::Relaxed);
    let status = f(slot as *mut c_void);
    IRQL.store(prev, Ordering::Relaxed);
    interrupt::run_pending_dpcs();
    let r = VERIFIER.lock().requests.returned(slot as u64, status);
    if let Err(v) = r {
        violation(format!("{v}"));
    }
    Started { slot, status }
}

impl Started {
    /// Whether the call has finished (returned a final status, or its completion ran).
    pub fn is_done(&self) -> bool {
        // SAFETY: the slot lives until `reset`.
        self.status != STATUS_PENDING || unsafe { &*self.slot }.done.load(Ordering::Acquire)
    }

    /// Waits (at most [`REQUEST_WAIT_MS`]) for a pended call's completion; the final outcome.
    pub fn wait(self) -> Outcome {
        // SAFETY: the slot lives until `reset`.
        let s = unsafe { &*self.slot };
        if self.status != STATUS_PENDING {
            return Outcome {
                status: self.status,
                pended: false,
                object: 0,
            };
        }
        if !interrupt::wait_until(REQUEST_WAIT_MS, || s.done.load(Ordering::Acquire)) {
            let lost = VERIFIER
                .lock()
                .requests
                .timed_out(self.slot as u64, REQUEST_WAIT_MS);
            if let Some(v) = lost {
                violation(format!("{v}"));
            }
            return Outcome {
                status: STATUS_IO_TIMEOUT,
                pended: true,
                object: 0,
            };
        }
        Outcome {
            status: s.status.load(Ordering::Relaxed),
            pended: true,
            object: s.object.load(Ordering::Relaxed),
        }
    }
}

/// Makes the dispatch call `f` (named `name`) at `irql`, passing it the context the
/// verifier's completions expect, and waits for a pended call to complete.
pub fn call(name: &str, irql: u8, f: impl FnOnce(*mut c_void) -> NTSTATUS) -> Outcome {
    start(name, irql, f).wait()
}

/// Makes a synchronous dispatch call (no completion: getters, posts, arm) at `irql`.
pub fn sync<T>(irql: u8, f: impl FnOnce() -> T) -> T {
    VERIFIER.lock().calls += 1;
    let prev = IRQL.swap(irql, Ordering::Relaxed);
    let r = f();
    IRQL.store(prev, Ordering::Relaxed);
    interrupt::run_pending_dpcs();
    r
}

/// Creates an object of `kind` under `parent` through `f(completion, context, out)` (named
/// `name`) at `irql`. On success the object is checked (non-NULL, header of `kind`, NDKPI
/// major version 1, dispatch table present) and recorded.
pub fn create<T>(
    name: &str,
    kind: ObjectKind,
    parent: Option<*const c_void>,
    irql: u8,
    f: impl FnOnce(Option<NDK_FN_CREATE_COMPLETION>, *mut c_void, *mut *mut T) -> NTSTATUS,
) -> Result<*mut T, NTSTATUS> {
    let mut out: *mut T = core::ptr::null_mut();
    let o = call(name, irql, |ctx| f(Some(on_create), ctx, &mut out));
    if o.status != STATUS_SUCCESS {
        return Err(o.status);
    }
    let object = if o.pended { o.object as *mut T } else { out };
    if object.is_null() {
        violation(format!("{name} succeeded without an object"));
        return Err(STATUS_UNSUCCESSFUL);
    }
    // SAFETY: the provider returned this object; every NDK object is {header, dispatch}.
    let (hdr, dispatch) = unsafe {
        let h = object.cast::<NDK_OBJECT_HEADER>();
        (
            core::ptr::read_volatile(h),
            core::ptr::read_volatile(h.add(1).cast::<*const c_void>()),
        )
    };
    if hdr.ObjectType != kind.value() || hdr.Version.Major != 1 || dispatch.is_null() {
        violation(format!(
            "{name} returned an object with type {} version {}.{} dispatch {dispatch:p} (expected type {} ({kind}), version 1.x, a dispatch table)",
            hdr.ObjectType, hdr.Version.Major, hdr.Version.Minor, kind.value()
        ));
        return Err(STATUS_UNSUCCESSFUL);
    }
    let r = VERIFIER
        .lock()
        .objects
        .created(object as u64, kind, parent.map(|p| p as u64));
    if let Err(v) = r {
        violation(format!("{v}"));
    }
    Ok(object)
}

/// Records `object` of `kind` under `parent` that the provider handed over without a create
/// call (the adapter the open handler returned; a connector from a connect event).
pub fn adopt(object: *const c_void, kind: ObjectKind, parent: Option<*const c_void>) {
    let r = VERIFIER
        .lock()
        .objects
        .created(object as u64, kind, parent.map(|p| p as u64));
    if let Err(v) = r {
        violation(format!("{v}"));
    }
}

/// Records that `object` is gone without a close call (the adapter after its close handler).
pub fn forget(object: *const c_void) {
    let r = VERIFIER.lock().objects.close_completed(object as u64);
    if let Err(v) = r {
        violation(format!("{v}"));
    }
}

/// Closes `object` (of `kind`) through the first entry of its dispatch table (every NDK
/// dispatch table starts with its close function) at DISPATCH_LEVEL; the close is complete
/// when it returns success or its completion runs. Returns the final status.
pub fn close(object: *mut c_void, kind: ObjectKind) -> NTSTATUS {
    // SAFETY: an object the provider returned: its dispatch pointer follows the header, and
    // every dispatch table starts with the close function.
    let close_fn = unsafe {
        let dispatch = core::ptr::read_volatile(
            object
                .cast::<NDK_OBJECT_HEADER>()
                .add(1)
                .cast::<*const Option<NDK_FN_CLOSE_OBJECT>>(),
        );
        core::ptr::read_volatile(dispatch)
    };
    let Some(close_fn) = close_fn else {
        violation(format!(
            "the {kind} at {object:p} has no close function in its dispatch table"
        ));
        return STATUS_NOT_SUPPORTED;
    };
    let name = format!("close {kind}");
    let o = call(&name, DISPATCH_LEVEL, |ctx| {
        // SAFETY: the provider's close function with its own object and the verifier's
        // completion and context.
        unsafe { close_fn(object.cast(), Some(on_close), ctx) }
    });
    if o.status == STATUS_SUCCESS {
        let r = VERIFIER.lock().objects.close_completed(object as u64);
        if let Err(v) = r {
            violation(format!("{v}"));
        }
    }
    o.status
}

/// Called when the consumer is done (before the NDK adapters close): every object still open
/// other than the adapters themselves (closed by CloseNDKAdapterHandler next) and every
/// request still pended is a violation.
pub fn finish() {
    let (leaks, outstanding) = {
        let v = VERIFIER.lock();
        (v.objects.leaks(), v.requests.outstanding())
    };
    for leak in leaks {
        if let guest_core::ndk::ObjectViolation::NeverClosed {
            kind: ObjectKind::Adapter,
            ..
        } = leak
        {
            continue;
        }
        violation(format!("{leak}"));
    }
    for call in outstanding {
        violation(format!(
            "NDK request rule: {call} is still pended when the adapter closes"
        ));
    }
}
