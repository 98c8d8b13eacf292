//! Hang check, reset and status indications as NDIS drives them, and Driver Verifier's
//! `NdisTimedDataHang` rule (bookkeeping in `guest_core::reset`):
//!
//! * the **reset step** of the life cycle (after the pause/restart rounds, before HaltEx):
//!   each adapter is restarted, `MiniportCheckForHangEx` is called at DISPATCH_LEVEL as NDIS's
//!   timer would, then `MiniportResetEx` (at DISPATCH_LEVEL); a pended reset must complete
//!   through `NdisMResetComplete` exactly once within [`RESET_TIMEOUT_MS`]. A reset that
//!   succeeded must leave an adapter that still sends and receives (adapter 0 runs the send
//!   check again: frames out, back through the loopback wire, counters checked; not over a
//!   peer wire, whose other guest has finished its exchange); one that failed is
//!   reported (the adapter is halted next, as NDIS would). Then the adapters are paused for
//!   HaltEx.
//! * the exports **`NdisMIndicateStatusEx`** (IRQL <= DISPATCH_LEVEL, the adapter's handle as
//!   `SourceHandle`, not while halting or halted, the indication's header, and for
//!   `NDIS_STATUS_LINK_STATE` a whole `NDIS_LINK_STATE`; one log line per indication) and
//!   **`NdisMResetComplete`** (IRQL <= DISPATCH_LEVEL, once per pended reset).
//! * **`NdisTimedDataHang`**: while sends are pending, some send must complete at least every
//!   22 s; checked whenever the guest waits ([`check_data_hang`]).
#![allow(non_snake_case)]

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_core::reset::{
    check_status_indication, DataHangWatch, ResetTracker, DATA_HANG_TIMEOUT_MS,
};
use ndis_abi::*;

use super::contract::{
    export, refuse, require_adapter, require_irql, require_non_null, require_phase,
};
use super::{
    adapter_handle, adapter_suffix, interrupt, pause_one, restart_one, run_sends, status_name,
    violation, Phase, DISPATCH_LEVEL, IRQL, MAX_ADAPTERS, PASSIVE_LEVEL, STATE,
};
use crate::sync::IrqLock;

const _: NdisMIndicateStatusExFn = NdisMIndicateStatusEx;
const _: NdisMResetCompleteFn = NdisMResetComplete;

/// How long the guest waits for `NdisMResetComplete` after MiniportResetEx pended.
const RESET_TIMEOUT_MS: u64 = 30_000;

/// Phases in which an adapter may indicate status: initialized and not halting.
const MAY_INDICATE: &[Phase] = &[
    Phase::Initializing,
    Phase::Paused,
    Phase::Restarting,
    Phase::Running,
    Phase::Pausing,
];

/// What the guest saw of one adapter's link indications.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkSeen {
    /// `NDIS_STATUS_LINK_STATE` indications accepted.
    pub indications: u32,
    /// The last `MediaConnectState` indicated.
    pub connect_state: Option<u32>,
}

/// Per adapter: link indications seen.
pub static LINK: IrqLock<[LinkSeen; MAX_ADAPTERS]> = IrqLock::new(
    [LinkSeen {
        indications: 0,
        connect_state: None,
    }; MAX_ADAPTERS],
);

/// Per adapter: the state of MiniportResetEx.
static RESETS: IrqLock<[ResetTracker; MAX_ADAPTERS]> =
    IrqLock::new([ResetTracker::new(); MAX_ADAPTERS]);

/// The `NdisTimedDataHang` watch over the guest's sends.
static DATA_HANG: IrqLock<DataHangWatch> = IrqLock::new(DataHangWatch::new());

/// Calls of `NdisMSendNetBufferListsComplete` so far (the send path's progress counter).
static SEND_COMPLETIONS: AtomicU64 = AtomicU64::new(0);

/// Per adapter: a send completed with `NDIS_STATUS_HARD_ERRORS` since the last successful
/// reset (the driver says its device failed).
static HARDWARE_FAILED: IrqLock<[bool; MAX_ADAPTERS]> = IrqLock::new([false; MAX_ADAPTERS]);

/// Records a valid `NdisMSendNetBufferListsComplete` of adapter `i`: progress for
/// `NdisTimedDataHang`, and whether an NBL of the chain reports a hardware failure.
///
/// # Safety
/// `chain` is a chain of NBLs the guest sent (checked by `send::completed`), linked by `Next`.
pub unsafe fn send_completed(i: usize, chain: *mut NET_BUFFER_LIST) {
    SEND_COMPLETIONS.fetch_add(1, Ordering::Relaxed);
    let mut nbl = chain;
    while !nbl.is_null() {
        // SAFETY: guaranteed by the caller.
        let (status, next) = unsafe { ((*nbl).Status, (*nbl).Next) };
        if status == NDIS_STATUS_HARD_ERRORS {
            HARDWARE_FAILED.lock()[i] = true;
        }
        nbl = next;
    }
}

/// Whether adapter `i`'s driver reported a hardware failure (a send completed with
/// `NDIS_STATUS_HARD_ERRORS`) that no successful reset has cleared yet: traffic checks before
/// the reset step cannot expect frames to go through then.
pub fn hardware_failed(i: usize) -> bool {
    HARDWARE_FAILED.lock()[i]
}

/// When [`check_data_hang`] next looks (guest milliseconds): it runs in every wait loop, so
/// it looks at most every [`DATA_HANG_CHECK_MS`].
static NEXT_DATA_HANG_CHECK: AtomicU64 = AtomicU64::new(0);
/// Period of the `NdisTimedDataHang` check (the rule's resolution).
const DATA_HANG_CHECK_MS: u64 = 100;

/// `NdisTimedDataHang` at the current time: records the violation when sends have been
/// pending [`DATA_HANG_TIMEOUT_MS`] with none completing (once per such wait). Looks at most
/// every [`DATA_HANG_CHECK_MS`].
pub fn check_data_hang() {
    let now = crate::interrupts::now_ms();
    if now < NEXT_DATA_HANG_CHECK.load(Ordering::Relaxed) {
        return;
    }
    NEXT_DATA_HANG_CHECK.store(now + DATA_HANG_CHECK_MS, Ordering::Relaxed);
    let pending = super::send::OUTSTANDING
        .lock()
        .values()
        .filter(|v| v.is_none())
        .count();
    let found = DATA_HANG
        .lock()
        .check(now, pending, SEND_COMPLETIONS.load(Ordering::Relaxed));
    if let Some(v) = found {
        violation(v);
    }
}

/// Forgets what the indications, resets and the data-hang watch recorded (end of the run).
pub fn reset_state() {
    *LINK.lock() = [LinkSeen::default(); MAX_ADAPTERS];
    *RESETS.lock() = [ResetTracker::new(); MAX_ADAPTERS];
    *DATA_HANG.lock() = DataHangWatch::new();
    *HARDWARE_FAILED.lock() = [false; MAX_ADAPTERS];
}

/// `NdisMIndicateStatusEx`: checks the indication (see the module documentation), records
/// link states and logs every indication.
///
/// # Safety
/// Called by the driver; `StatusIndication` is checked before it is read.
pub unsafe extern "win64" fn NdisMIndicateStatusEx(
    MiniportAdapterHandle: NDIS_HANDLE,
    StatusIndication: *mut NDIS_STATUS_INDICATION,
) {
    const F: &str = "NdisMIndicateStatusEx";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let i = require_adapter(F, MiniportAdapterHandle)?;
        require_phase(
            F,
            MAY_INDICATE,
            "only allowed between MiniportInitializeEx and MiniportHaltEx",
        )?;
        require_non_null(F, StatusIndication, "StatusIndication")?;
        // SAFETY: non-null; the driver passes a whole indication (the header's size is checked
        // before any field past it is trusted).
        let ind = unsafe { core::ptr::read_volatile(StatusIndication) };
        let link = (ind.StatusCode == NDIS_STATUS_LINK_STATE
            && !ind.StatusBuffer.is_null()
            && ind.StatusBufferSize >= u32::from(NDIS_SIZEOF_LINK_STATE_REVISION_1))
        .then(|| {
            // SAFETY: non-null and at least an NDIS_LINK_STATE long, per the driver's size.
            unsafe { core::ptr::read_unaligned(ind.StatusBuffer.cast::<NDIS_LINK_STATE>()) }
        });
        if let Err(why) = check_status_indication(
            ind.Header,
            ind.StatusCode,
            ind.StatusBufferSize,
            link.as_ref(),
        ) {
            return refuse(F, why, NDIS_STATUS_INVALID_PARAMETER);
        }
        if ind.SourceHandle != adapter_handle(i) {
            return refuse(
                F,
                format!(
                    "SourceHandle {:p} is not the adapter's handle {:p}",
                    ind.SourceHandle,
                    adapter_handle(i)
                ),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        match link {
            Some(s) => {
                crate::println!(
                    "ndis: NdisMIndicateStatusEx{}: NDIS_STATUS_LINK_STATE {}, {} bit/s, duplex {}",
                    adapter_suffix(i),
                    connect_name(s.MediaConnectState),
                    s.XmitLinkSpeed,
                    s.MediaDuplexState
                );
                let mut seen = LINK.lock();
                seen[i].indications += 1;
                seen[i].connect_state = Some(s.MediaConnectState);
            }
            None => crate::println!(
                "ndis: NdisMIndicateStatusEx{}: status {:#010x}",
                adapter_suffix(i),
                ind.StatusCode
            ),
        }
        Ok(())
    })
}

/// Adapter `i`'s `MediaConnectState` as last indicated, or `initial` (the general
/// attributes') before any indication.
pub fn connect_state(i: usize, initial: u32) -> u32 {
    LINK.lock()[i].connect_state.unwrap_or(initial)
}

/// The name of a `MediaConnectState` value for the log.
fn connect_name(state: u32) -> &'static str {
    if state == MediaConnectStateConnected {
        "connected"
    } else if state == MediaConnectStateDisconnected {
        "disconnected"
    } else {
        "unknown"
    }
}

/// `NdisMResetComplete`: completes the adapter's pended MiniportResetEx, exactly once.
///
/// # Safety
/// Called by the driver.
pub unsafe extern "win64" fn NdisMResetComplete(
    MiniportAdapterHandle: NDIS_HANDLE,
    Status: NDIS_STATUS,
    AddressingReset: BOOLEAN,
) {
    const F: &str = "NdisMResetComplete";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let i = require_adapter(F, MiniportAdapterHandle)?;
        if let Err(why) = RESETS.lock()[i].complete(Status) {
            return refuse(F, why, NDIS_STATUS_INVALID_PARAMETER);
        }
        crate::println!(
            "ndis: NdisMResetComplete{}: {} (AddressingReset {})",
            adapter_suffix(i),
            status_name(Status),
            AddressingReset
        );
        Ok(())
    })
}

/// The reset step (see the module documentation) on every initialized adapter, which must be
/// Paused; leaves them Paused.
pub fn drive_reset(
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    adapters: &[(usize, NDIS_HANDLE)],
) {
    let (Some(restart), Some(_)) = (chars.RestartHandler, chars.PauseHandler) else {
        return;
    };
    for &(i, ctx) in adapters {
        if !restart_one(restart, i, ctx, 3) {
            return;
        }
    }
    STATE.lock().phase = Phase::Running;
    // Over a peer wire the exchange needs the other guest, which has finished its own: the
    // reset is checked without traffic there.
    let peer = super::ETHERNET_PEER.load(Ordering::Relaxed);
    for &(i, ctx) in adapters {
        if !reset_one(chars, i, ctx) {
            continue;
        }
        if i == 0 && !peer {
            crate::println!(
                "ndis: reset{}: the adapter recovered; sending again",
                adapter_suffix(i)
            );
            run_sends(chars, i);
        } else {
            crate::println!("ndis: reset{}: the adapter recovered", adapter_suffix(i));
        }
    }
    if let Some(ret) = chars.ReturnNetBufferListsHandler {
        super::send::return_unclaimed(ret, adapters);
    }
    for &(i, ctx) in adapters {
        pause_one(chars, i, ctx, 3);
    }
    STATE.lock().phase = Phase::Paused;
}

/// CheckForHangEx then ResetEx on adapter `i`; true if the reset succeeded.
fn reset_one(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS, i: usize, ctx: NDIS_HANDLE) -> bool {
    let suffix = adapter_suffix(i);
    if let Some(check) = chars.CheckForHangHandlerEx {
        IRQL.store(DISPATCH_LEVEL, Ordering::Relaxed);
        // SAFETY: the driver's handler with its context, at DISPATCH_LEVEL as NDIS's timer
        // calls it.
        let hung = unsafe { check(ctx) };
        IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
        interrupt::run_pending_dpcs();
        crate::println!(
            "ndis: MiniportCheckForHangEx{suffix} returned {}",
            if hung != FALSE {
                "TRUE (hung)"
            } else {
                "FALSE"
            }
        );
    }
    let Some(reset) = chars.ResetHandlerEx else {
        crate::println!("ndis: no MiniportResetEx: the reset step is skipped");
        return false;
    };
    let mut addressing: BOOLEAN = 0xCC;
    crate::println!("ndis: MiniportResetEx{suffix}");
    IRQL.store(DISPATCH_LEVEL, Ordering::Relaxed);
    // SAFETY: the driver's handler with its context and a live out-variable, at
    // DISPATCH_LEVEL (the highest IRQL NDIS calls it at).
    let status = unsafe { reset(ctx, &mut addressing) };
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    RESETS.lock()[i].returned(status);
    crate::println!(
        "ndis: MiniportResetEx{suffix} returned {}",
        status_name(status)
    );
    if addressing != FALSE && addressing != TRUE {
        violation(format!(
            "MiniportResetEx{suffix} left AddressingReset unset ({addressing:#x})"
        ));
    }
    if status == NDIS_STATUS_PENDING
        && !interrupt::wait_until(RESET_TIMEOUT_MS, || !RESETS.lock()[i].pending())
    {
        violation(format!(
            "MiniportResetEx{suffix} pended and NdisMResetComplete did not come within {RESET_TIMEOUT_MS} ms"
        ));
        return false;
    }
    let result = RESETS.lock()[i].result();
    match result {
        Some(NDIS_STATUS_SUCCESS) => {
            HARDWARE_FAILED.lock()[i] = false;
            true
        }
        Some(other) => {
            crate::println!(
                "ndis: reset{suffix} failed with {}: the adapter is halted next, as NDIS does",
                status_name(other)
            );
            false
        }
        None => false,
    }
}

/// `guest.selftest=data-hang`: a fake driver holds a send and never completes it; after
/// [`DATA_HANG_TIMEOUT_MS`] of real time the verifier must record `NdisTimedDataHang` (and
/// not before). The fake send and the violation are forgotten afterwards. Returns the
/// violation text.
pub fn selftest_data_hang() -> Result<String, String> {
    // A key no real NBL has (the guest's NBLs are heap addresses, 16-aligned).
    const FAKE_NBL: u64 = 0x5A5A_0001;
    let before = STATE.lock().violations.len();
    super::send::OUTSTANDING.lock().insert(FAKE_NBL, None);
    interrupt::idle(DATA_HANG_TIMEOUT_MS - 2_000);
    let early = STATE.lock().violations.len() - before;
    interrupt::idle(2_500);
    super::send::OUTSTANDING.lock().remove(&FAKE_NBL);
    NEXT_DATA_HANG_CHECK.store(0, Ordering::Relaxed);
    check_data_hang();
    let new = STATE.lock().violations.split_off(before);
    *DATA_HANG.lock() = DataHangWatch::new();
    if early != 0 {
        return Err(format!(
            "NdisTimedDataHang fired before {} ms: {new:?}",
            DATA_HANG_TIMEOUT_MS - 2_000
        ));
    }
    match new.as_slice() {
        [v] if v.starts_with("NdisTimedDataHang") => Ok(v.clone()),
        other => Err(format!(
            "expected one NdisTimedDataHang violation after {} ms, recorded {other:?}",
            DATA_HANG_TIMEOUT_MS + 500
        )),
    }
}
