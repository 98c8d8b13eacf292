//! The checks NDIS exports start with, and the one rule they all follow.
//!
//! **Rule.** A check that fails records a contract violation (printed at once, and it fails the
//! verdict) and *refuses* the call: the export does nothing more and returns the failure value of
//! its signature ([`Refusal`]). No check lets a call go on after a violation, so the guest never
//! acts on a request the driver was not allowed to make, and the first violation recorded (the
//! one the verdict names) is the cause, not a consequence.
//!
//! Each kind of violation has one status (what a status-returning export gives back):
//!
//! | kind | helper | status |
//! | --- | --- | --- |
//! | null out-pointer | [`clear_out`] | `NDIS_STATUS_INVALID_PARAMETER` |
//! | IRQL above the function's maximum | [`require_irql`] | `NDIS_STATUS_FAILURE` |
//! | handle not the one NDIS gave | [`require_handle`], [`require_adapter`], [`require_one_of`] | `NDIS_STATUS_INVALID_PARAMETER` |
//! | life-cycle phase that does not allow the call | [`require_phase`] | `NDIS_STATUS_FAILURE` |
//! | null input pointer | [`require_non_null`] | `NDIS_STATUS_INVALID_PARAMETER` |
//! | object header type, revision or size | [`check_header`] | `NDIS_STATUS_INVALID_PARAMETER` |
//!
//! Exports check in that order: out-pointers first (each is cleared as soon as it is known
//! non-null, so a refused call never leaves stale output), then IRQL, handle, phase, input
//! pointers and headers, then what is particular to the function (via [`refuse`]).
//! A failure that is not the driver's fault (out of memory, no MSI-X) is an `Err` without a
//! violation. Violations seen after the fact (an infinite `NdisWaitEvent` never signalled,
//! resources still held after halt) are recorded where they are seen: there is no call left
//! to refuse.

use alloc::format;
use core::fmt::Display;
use core::ptr::read_volatile;
use core::sync::atomic::Ordering;

use ndis_abi::*;

use super::{index_of, violation, Phase, COOKIES, IRQL, MAX_ADAPTERS, STATE};

/// Outcome of an export's body: `Err(status)` is a refused or failed call.
pub type Checked<T = ()> = Result<T, NDIS_STATUS>;

/// What an export returns when its call is refused with `status`.
pub trait Refusal {
    fn refused(status: NDIS_STATUS) -> Self;
}

/// `NDIS_STATUS` exports return the status itself.
impl Refusal for NDIS_STATUS {
    fn refused(status: NDIS_STATUS) -> Self {
        status
    }
}

/// `VOID` exports just return.
impl Refusal for () {
    fn refused(_: NDIS_STATUS) -> Self {}
}

/// `BOOLEAN` exports return FALSE.
impl Refusal for BOOLEAN {
    fn refused(_: NDIS_STATUS) -> Self {
        FALSE
    }
}

/// Pointer-returning exports return NULL.
impl<T> Refusal for *mut T {
    fn refused(_: NDIS_STATUS) -> Self {
        core::ptr::null_mut()
    }
}

/// Runs an export's body; a refusal becomes the export's failure value.
pub fn export<T: Refusal>(body: impl FnOnce() -> Checked<T>) -> T {
    body().unwrap_or_else(T::refused)
}

/// Records the violation `func: why` and refuses the call with `status`.
pub fn refuse<T>(func: &str, why: impl Display, status: NDIS_STATUS) -> Checked<T> {
    violation(format!("{func}: {why}"));
    Err(status)
}

/// The call is allowed at IRQL <= `max` only.
pub fn require_irql(func: &str, max: u8) -> Checked {
    let irql = IRQL.load(Ordering::Relaxed);
    if irql > max {
        return refuse(
            func,
            format!("called at IRQL {irql} (allowed <= {max})"),
            NDIS_STATUS_FAILURE,
        );
    }
    Ok(())
}

/// `got` must be the `what` handle NDIS gave the driver (`want`).
pub fn require_handle(func: &str, got: NDIS_HANDLE, want: NDIS_HANDLE, what: &str) -> Checked {
    if got != want {
        return refuse(
            func,
            format!("{got:p} is not the {what} handle NDIS gave ({want:p})"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    Ok(())
}

/// `got` must be one of the miniport adapter handles NDIS gave; returns the adapter's index.
pub fn require_adapter(func: &str, got: NDIS_HANDLE) -> Checked<usize> {
    require_one_of(func, got, &COOKIES.adapter, "miniport adapter")
}

/// `got` must be the `what` handle of one of the adapters (`cookies`); returns its index.
pub fn require_one_of(
    func: &str,
    got: NDIS_HANDLE,
    cookies: &'static [u8; MAX_ADAPTERS],
    what: &str,
) -> Checked<usize> {
    match index_of(cookies, got) {
        Some(i) => Ok(i),
        None => refuse(
            func,
            format!("{got:p} is not the {what} handle of any adapter NDIS gave"),
            NDIS_STATUS_INVALID_PARAMETER,
        ),
    }
}

/// The driver must be in one of the `allowed` phases; `rule` says where the call belongs.
pub fn require_phase(func: &str, allowed: &[Phase], rule: &str) -> Checked {
    let phase = STATE.lock().phase;
    if !allowed.contains(&phase) {
        return refuse(
            func,
            format!("{rule} (called during {phase:?})"),
            NDIS_STATUS_FAILURE,
        );
    }
    Ok(())
}

/// Where the calls that set an adapter up belong.
pub const INSIDE_INITIALIZE: &str = "only allowed inside MiniportInitializeEx";

/// The input pointer `what` must not be NULL.
pub fn require_non_null<T>(func: &str, p: *const T, what: &str) -> Checked {
    if p.is_null() {
        return refuse(
            func,
            format!("{what} is NULL"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    Ok(())
}

/// The out-pointer `what` must not be NULL; it is set to `empty` at once.
///
/// # Safety
/// `out`, when non-null, must be valid for a write of `T` (the caller's contract with the
/// driver for an out-parameter).
pub unsafe fn clear_out<T>(func: &str, out: *mut T, what: &str, empty: T) -> Checked {
    require_non_null(func, out, what)?;
    // SAFETY: non-null, and valid for writes by this function's contract.
    unsafe { out.write(empty) };
    Ok(())
}

/// Reads the `NDIS_OBJECT_HEADER` a structure starts with.
///
/// # Safety
/// `p` must be non-null and point to at least 4 readable bytes.
pub unsafe fn read_header<T>(p: *const T) -> NDIS_OBJECT_HEADER {
    // SAFETY: by this function's contract; the header has alignment 2 and NDIS structures
    // are at least 8-aligned.
    unsafe { read_volatile(p as *const NDIS_OBJECT_HEADER) }
}

/// The header of the `what` structure must say type `ty`, revision >= `min_rev` and size
/// >= `min_size`.
pub fn check_header(
    func: &str,
    what: &str,
    hdr: NDIS_OBJECT_HEADER,
    ty: u8,
    min_rev: u8,
    min_size: u16,
) -> Checked {
    if hdr.Type != ty || hdr.Revision < min_rev || hdr.Size < min_size {
        return refuse(
            func,
            format!(
                "{what} header type {:#x} revision {} size {:#x} (expected type {ty:#x}, revision >= {min_rev}, size >= {min_size:#x})",
                hdr.Type, hdr.Revision, hdr.Size
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    Ok(())
}
