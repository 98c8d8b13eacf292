//! The pause/restart state machine as NDIS keeps it for each adapter, the
//! `NdisMPauseComplete` export, and the rules the verifier names after Driver Verifier's and
//! Static Driver Verifier's NDIS rules:
//!
//! * `MiniportPause_Return`: MiniportPause returns `NDIS_STATUS_SUCCESS` (the pause is
//!   complete: no send the driver holds, no receive indication still up) or
//!   `NDIS_STATUS_PENDING`; nothing else.
//! * `NdisPauseComplete`: NdisMPauseComplete only for a pause in progress (inside MiniportPause
//!   or after it returned `NDIS_STATUS_PENDING`), exactly once, at IRQL <= DISPATCH_LEVEL, and
//!   only once every send has completed and every receive indication has returned.
//! * `NdisTimedPauseComplete`: a pending pause completes within [`PAUSE_TIMEOUT_MS`].
//! * `NdisPausedDataPath`: no send completion and no receive indication while the adapter is
//!   Paused.
//!
//! The bookkeeping is per adapter; `super::Phase` stays the guest-wide life-cycle phase.
#![allow(non_snake_case)]

use alloc::format;
use alloc::string::String;

use ndis_abi::*;

use super::contract::{export, refuse, require_adapter, require_irql, Checked};
use super::{status_name, violation, DISPATCH_LEVEL, MAX_ADAPTERS};
use crate::sync::IrqLock;

const _: NdisMPauseCompleteFn = NdisMPauseComplete;

/// `NdisTimedPauseComplete`: how long a pending pause may take (Driver Verifier's filter
/// pause limit, 10 s).
pub const PAUSE_TIMEOUT_MS: u64 = 10_000;

/// Where one adapter's data path is, as NDIS sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPath {
    /// Not initialized yet, or halted.
    Down,
    /// Stopped: after InitializeEx and after a completed pause.
    Paused,
    /// Inside MiniportRestart.
    Restarting,
    /// Sends and indications flow.
    Running,
    /// A pause in progress: `pended` once MiniportPause returned `NDIS_STATUS_PENDING`,
    /// `completed` once the driver called NdisMPauseComplete (which may come before the
    /// return, from a DPC).
    Pausing { pended: bool, completed: bool },
}

/// Each adapter's data-path state.
static DATA_PATH: IrqLock<[DataPath; MAX_ADAPTERS]> = IrqLock::new([DataPath::Down; MAX_ADAPTERS]);

/// Adapter `i`'s data-path state now.
pub fn state(i: usize) -> DataPath {
    DATA_PATH.lock()[i]
}

/// Sets adapter `i`'s state (InitializeEx: Paused; MiniportRestart: Restarting, then Running
/// or Paused; MiniportPause: Pausing; halt: Down).
pub fn set(i: usize, s: DataPath) {
    DATA_PATH.lock()[i] = s;
}

/// Forgets every adapter's state (the end of a boot's bookkeeping).
pub fn reset() {
    *DATA_PATH.lock() = [DataPath::Down; MAX_ADAPTERS];
}

/// What the driver still holds of adapter `i`'s NBLs: (sends not completed, receive
/// indications not returned). The guest sends on one adapter at a time, so every outstanding
/// send counts.
fn held(i: usize) -> (usize, usize) {
    let sends = super::send::OUTSTANDING
        .lock()
        .values()
        .filter(|s| s.is_none())
        .count();
    let n = super::netbuf::NETBUF.lock();
    let receives = n
        .received
        .iter()
        .filter(|(nbl, _)| n.received_on.get(nbl) == Some(&i))
        .count();
    (sends, receives)
}

/// What is still outstanding when a pause ends, as a reason (None: nothing).
fn outstanding_reason(i: usize) -> Option<String> {
    match held(i) {
        (0, 0) => None,
        (sends, receives) => Some(format!(
            "{sends} send NBL(s) not completed and {receives} receive indication(s) not returned"
        )),
    }
}

/// MiniportPause of adapter `i` returned `status`: checks `MiniportPause_Return` and
/// `NdisPauseComplete`, and moves the state on. Returns whether the adapter is Paused now
/// (false: the pause pends).
pub fn pause_returned(i: usize, status: NDIS_STATUS) -> bool {
    let completed = matches!(
        state(i),
        DataPath::Pausing {
            completed: true,
            ..
        }
    );
    match status {
        NDIS_STATUS_SUCCESS => {
            if completed {
                violation(String::from(
                    "NdisPauseComplete: NdisMPauseComplete was called for a pause MiniportPause completed itself (returned NDIS_STATUS_SUCCESS)",
                ));
            }
            if let Some(why) = outstanding_reason(i) {
                violation(format!(
                    "MiniportPause_Return: MiniportPause returned NDIS_STATUS_SUCCESS with {why} (it must pend)"
                ));
            }
            set(i, DataPath::Paused);
            true
        }
        NDIS_STATUS_PENDING if completed => {
            set(i, DataPath::Paused);
            true
        }
        NDIS_STATUS_PENDING => {
            set(
                i,
                DataPath::Pausing {
                    pended: true,
                    completed: false,
                },
            );
            false
        }
        other => {
            violation(format!(
                "MiniportPause_Return: MiniportPause returned {} (only NDIS_STATUS_SUCCESS or NDIS_STATUS_PENDING)",
                status_name(other)
            ));
            // NDIS cannot tell what the driver holds: it treats the adapter as Paused.
            set(i, DataPath::Paused);
            true
        }
    }
}

/// Waits (DPCs running) for the pending pause of adapter `i` to complete; a pause still
/// pending after [`PAUSE_TIMEOUT_MS`] is an `NdisTimedPauseComplete` violation. Returns
/// whether the adapter is Paused.
pub fn wait_for_pause(i: usize) -> bool {
    let paused = super::interrupt::wait_until(PAUSE_TIMEOUT_MS, || state(i) == DataPath::Paused);
    if !paused {
        violation(format!(
            "NdisTimedPauseComplete: the pending pause of adapter {i} did not complete within {PAUSE_TIMEOUT_MS} ms (NdisMPauseComplete never called)"
        ));
    }
    paused
}

/// `NdisPausedDataPath`: `what` (a send completion, a receive indication) of adapter `i` is
/// allowed only while the adapter is not Paused.
pub fn require_not_paused(func: &str, i: usize, what: &str) -> Checked {
    if state(i) == DataPath::Paused {
        return refuse(
            func,
            format!("NdisPausedDataPath: {what} while adapter {i} is Paused"),
            NDIS_STATUS_FAILURE,
        );
    }
    Ok(())
}

/// `VOID NdisMPauseComplete(NDIS_HANDLE MiniportAdapterHandle)`.
pub unsafe extern "win64" fn NdisMPauseComplete(MiniportAdapterHandle: NDIS_HANDLE) {
    const F: &str = "NdisMPauseComplete";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let i = require_adapter(F, MiniportAdapterHandle)?;
        let pended = match state(i) {
            DataPath::Pausing {
                pended,
                completed: false,
            } => pended,
            DataPath::Pausing {
                completed: true, ..
            } => {
                return refuse(
                    F,
                    format!("NdisPauseComplete: called twice for one pause of adapter {i}"),
                    NDIS_STATUS_FAILURE,
                )
            }
            other => {
                return refuse(
                    F,
                    format!(
                        "NdisPauseComplete: called while adapter {i} is {other:?} (only for a pause in progress)"
                    ),
                    NDIS_STATUS_FAILURE,
                )
            }
        };
        if let Some(why) = outstanding_reason(i) {
            violation(format!(
                "{F}: NdisPauseComplete: the pause of adapter {i} completed with {why}"
            ));
        }
        crate::println!("ndis: NdisMPauseComplete (adapter {i})");
        set(
            i,
            if pended {
                DataPath::Paused
            } else {
                DataPath::Pausing {
                    pended: false,
                    completed: true,
                }
            },
        );
        Ok(())
    })
}
