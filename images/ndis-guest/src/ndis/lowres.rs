//! Low-resources simulation (plan key `guest.lowres`, decisions in `guest_core::lowres`):
//! every export that allocates on the driver's behalf asks [`allocation`] after its contract
//! checks, and fails as the real function documents when told to. Each injected failure is
//! one serial line, `lowres: injected failure: <function> request <n> phase <phase>`, which
//! the boot tests count; the verdict prints `lowres: <requests> allocation requests, <n>
//! failed (<mode>)`. With `guest.lowres=count` nothing fails and every request is listed,
//! `lowres: request <n>: <function> phase <phase>` (what a sweep chooses its points from).
//!
//! The phase is the life-cycle phase ([`super::Phase`]), or, while the adapter runs, what
//! the guest is driving ([`during`]: `oid`, `send`, `nmr-attach`, `ndk`, `pause`, `reset`).

use alloc::string::String;

use guest_core::lowres::{Injector, Mode};
use ndis_abi::NDIS_STATUS_RESOURCES;

use super::contract::Checked;
use super::STATE;
use crate::sync::IrqLock;

/// The injector the plan configured (counting only, until [`set_mode`]).
static INJECTOR: IrqLock<Injector> = IrqLock::new(Injector::new(None));
/// What the guest drives right now, when it is more precise than the phase.
static ACTIVITY: IrqLock<Option<&'static str>> = IrqLock::new(None);

/// Sets the plan's mode (once, before the driver loads).
pub fn set_mode(mode: Option<Mode>) {
    *INJECTOR.lock() = Injector::new(mode);
}

/// How many requests were failed so far.
pub fn injected() -> u32 {
    INJECTOR.lock().injected()
}

/// Runs `f` with the phase named `activity` (`oid`, `send`, `nmr-attach`, `ndk`, `pause`,
/// `reset`).
pub fn during<T>(activity: &'static str, f: impl FnOnce() -> T) -> T {
    let before = ACTIVITY.lock().replace(activity);
    let out = f();
    *ACTIVITY.lock() = before;
    out
}

/// The phase an injected failure is reported in.
fn phase() -> String {
    match *ACTIVITY.lock() {
        Some(a) => String::from(a),
        None => alloc::format!("{:?}", STATE.lock().phase),
    }
}

/// One allocation request of `func` (called after its contract checks passed):
/// `Err(NDIS_STATUS_RESOURCES)` when the plan fails it (reported on serial).
pub fn allocation(func: &str) -> Checked {
    let (decision, mode) = {
        let mut inj = INJECTOR.lock();
        (inj.request(), inj.mode())
    };
    if mode == Some(Mode::Count) {
        crate::println!(
            "lowres: request {}: {func} phase {}",
            decision.number,
            phase()
        );
    }
    if decision.fail {
        crate::println!(
            "lowres: injected failure: {func} request {} phase {}",
            decision.number,
            phase()
        );
        return Err(NDIS_STATUS_RESOURCES);
    }
    Ok(())
}

/// Whether a failed check of the guest's (`what`: not a contract rule but an outcome, such as
/// an InitializeEx that failed, a frame that did not come back or an NDK open that failed) is
/// an expected consequence of the low-resources simulation: true once the plan has failed at
/// least one allocation request (a failure's consequences may show later, e.g. an RX ring
/// left short by a failed InitializeEx allocation). Excused failures are printed, not counted
/// against the verdict; contract rules and leak checks are never excused.
pub fn excused(what: &str) -> bool {
    if injected() == 0 {
        return false;
    }
    crate::println!("lowres: expected under low resources: {what}");
    true
}

/// Records `what`, a failed outcome check of the guest's (not a contract rule), as a
/// violation unless [`excused`].
pub fn outcome_failed(what: String) {
    if !excused(&what) {
        super::violation(what);
    }
}

/// Whether any allocation request was failed (the functional end checks, such as "the ISR
/// claimed an interrupt", then no longer apply).
pub fn degraded() -> bool {
    injected() > 0
}

/// Prints the request count (every boot: the sweep's first boot counts the requests of the
/// default life cycle with it).
pub fn print_summary() {
    let inj = INJECTOR.lock().clone();
    match inj.mode() {
        Some(mode) => crate::println!(
            "lowres: {} allocation requests, {} failed ({mode})",
            inj.requests(),
            inj.injected()
        ),
        None => crate::println!(
            "lowres: {} allocation requests, 0 failed (no guest.lowres)",
            inj.requests()
        ),
    }
}
