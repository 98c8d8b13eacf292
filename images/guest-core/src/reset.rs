//! The bookkeeping behind the guest's reset step, its status-indication checks and Driver
//! Verifier's `NdisTimedDataHang` rule, as pure state machines over plain values (the kernel
//! feeds them the clock and the driver's calls):
//!
//! * [`DataHangWatch`]: `NdisTimedDataHang`: while at least one send is pending, some send
//!   must complete at least every [`DATA_HANG_TIMEOUT_MS`] (Driver Verifier's 22 s).
//! * [`ResetTracker`]: a MiniportResetEx that returned `NDIS_STATUS_PENDING` completes through
//!   `NdisMResetComplete` exactly once; nothing else may call it.
//! * [`check_status_indication`]: an `NDIS_STATUS_INDICATION` as `NdisMIndicateStatusEx`
//!   requires it (header, and for `NDIS_STATUS_LINK_STATE` a whole `NDIS_LINK_STATE`).

use alloc::format;
use alloc::string::String;

use ndis_abi::{
    NDIS_LINK_STATE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT,
    NDIS_OBJECT_TYPE_STATUS_INDICATION, NDIS_SIZEOF_LINK_STATE_REVISION_1,
    NDIS_SIZEOF_STATUS_INDICATION_REVISION_1, NDIS_STATUS, NDIS_STATUS_INDICATION_REVISION_1,
    NDIS_STATUS_LINK_STATE, NDIS_STATUS_PENDING,
};

/// Driver Verifier's `NdisTimedDataHang` bound: with sends pending, none completed for this
/// long is a data-path hang.
pub const DATA_HANG_TIMEOUT_MS: u64 = 22_000;

/// Watches the send path for `NdisTimedDataHang`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHangWatch {
    /// When the current wait began: the first check that saw sends pending, or the last one
    /// that saw a completion (None while nothing is pending).
    since_ms: Option<u64>,
    /// The completion count at that moment.
    completions: u64,
    /// The rule already fired for this wait (reported once).
    fired: bool,
}

impl DataHangWatch {
    /// A watch that has seen nothing.
    pub const fn new() -> Self {
        DataHangWatch {
            since_ms: None,
            completions: 0,
            fired: false,
        }
    }

    /// One look at the send path at `now_ms`: `pending` sends handed to the driver and not
    /// completed, `completions` the driver's send completions so far (a counter). Returns the
    /// violation text the first time `pending > 0` has lasted [`DATA_HANG_TIMEOUT_MS`] without
    /// any completion.
    pub fn check(&mut self, now_ms: u64, pending: usize, completions: u64) -> Option<String> {
        if pending == 0 {
            *self = DataHangWatch::new();
            self.completions = completions;
            return None;
        }
        let since = match self.since_ms {
            Some(since) if completions == self.completions => since,
            _ => {
                self.since_ms = Some(now_ms);
                self.completions = completions;
                self.fired = false;
                return None;
            }
        };
        let waited = now_ms.saturating_sub(since);
        if waited < DATA_HANG_TIMEOUT_MS || self.fired {
            return None;
        }
        self.fired = true;
        Some(format!(
            "NdisTimedDataHang: {pending} send(s) pending and no send completed for {waited} ms (limit {DATA_HANG_TIMEOUT_MS} ms)"
        ))
    }
}

/// Per-adapter state of MiniportResetEx as NDIS sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetTracker {
    /// MiniportResetEx returned `NDIS_STATUS_PENDING` and `NdisMResetComplete` has not come.
    pending: bool,
    /// The status the last `NdisMResetComplete` reported.
    completed_with: Option<NDIS_STATUS>,
}

impl ResetTracker {
    /// A tracker with no reset.
    pub const fn new() -> Self {
        ResetTracker {
            pending: false,
            completed_with: None,
        }
    }

    /// MiniportResetEx returned `status`: a pending reset now waits for its completion; any
    /// other status is the reset's result at once.
    pub fn returned(&mut self, status: NDIS_STATUS) {
        self.completed_with = None;
        if status == NDIS_STATUS_PENDING {
            self.pending = true;
        } else {
            self.completed_with = Some(status);
        }
    }

    /// The driver called `NdisMResetComplete(status)`: allowed once per pended reset, never
    /// with `NDIS_STATUS_PENDING`.
    pub fn complete(&mut self, status: NDIS_STATUS) -> Result<(), String> {
        if status == NDIS_STATUS_PENDING {
            return Err(String::from("completes a reset with NDIS_STATUS_PENDING"));
        }
        if !self.pending {
            return Err(match self.completed_with {
                Some(first) => {
                    format!("completes a reset that already completed (with {first:#010x})")
                }
                None => String::from("completes a reset that MiniportResetEx did not pend"),
            });
        }
        self.pending = false;
        self.completed_with = Some(status);
        Ok(())
    }

    /// True while a pended reset waits for `NdisMResetComplete`.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// The reset's result: the status MiniportResetEx returned, or the one it completed with
    /// (None while pending or before any reset).
    pub fn result(&self) -> Option<NDIS_STATUS> {
        self.completed_with
    }
}

/// Checks an `NDIS_STATUS_INDICATION`'s header (type `NDIS_OBJECT_TYPE_STATUS_INDICATION`,
/// revision >= 1, size >= 0x70) and, for `NDIS_STATUS_LINK_STATE`, its buffer: at least an
/// `NDIS_LINK_STATE` revision 1 with its own header right. `link_state` is the buffer read as
/// one when the size allows (the caller reads it only then). Returns what is wrong.
pub fn check_status_indication(
    header: NDIS_OBJECT_HEADER,
    status_code: NDIS_STATUS,
    buffer_size: u32,
    link_state: Option<&NDIS_LINK_STATE>,
) -> Result<(), String> {
    if header.Type != NDIS_OBJECT_TYPE_STATUS_INDICATION
        || header.Revision < NDIS_STATUS_INDICATION_REVISION_1
        || header.Size < NDIS_SIZEOF_STATUS_INDICATION_REVISION_1
    {
        return Err(format!(
            "status indication header type {:#x} revision {} size {:#x} (expected type {:#x}, revision >= 1, size >= {:#x})",
            header.Type,
            header.Revision,
            header.Size,
            NDIS_OBJECT_TYPE_STATUS_INDICATION,
            NDIS_SIZEOF_STATUS_INDICATION_REVISION_1
        ));
    }
    if status_code != NDIS_STATUS_LINK_STATE {
        return Ok(());
    }
    let state = match link_state {
        Some(s) if buffer_size >= u32::from(NDIS_SIZEOF_LINK_STATE_REVISION_1) => s,
        _ => {
            return Err(format!(
                "NDIS_STATUS_LINK_STATE with a StatusBuffer of {buffer_size} bytes (an NDIS_LINK_STATE needs {:#x})",
                NDIS_SIZEOF_LINK_STATE_REVISION_1
            ))
        }
    };
    let h = state.Header;
    if h.Type != NDIS_OBJECT_TYPE_DEFAULT
        || h.Revision < 1
        || h.Size < NDIS_SIZEOF_LINK_STATE_REVISION_1
    {
        return Err(format!(
            "NDIS_LINK_STATE header type {:#x} revision {} size {:#x} (expected type {:#x}, revision >= 1, size >= {:#x})",
            h.Type, h.Revision, h.Size, NDIS_OBJECT_TYPE_DEFAULT, NDIS_SIZEOF_LINK_STATE_REVISION_1
        ));
    }
    if !(0..=2).contains(&state.MediaConnectState) || !(0..=2).contains(&state.MediaDuplexState) {
        return Err(format!(
            "NDIS_LINK_STATE MediaConnectState {} / MediaDuplexState {} out of range",
            state.MediaConnectState, state.MediaDuplexState
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_hang_fires_once_after_22_seconds_without_a_completion() {
        let mut w = DataHangWatch::new();
        assert_eq!(w.check(1_000, 0, 0), None);
        // A send is pending from t = 2 s.
        assert_eq!(w.check(2_000, 1, 0), None);
        assert_eq!(w.check(2_000 + DATA_HANG_TIMEOUT_MS - 1, 1, 0), None);
        let v = w.check(2_000 + DATA_HANG_TIMEOUT_MS, 1, 0).expect("fires");
        assert!(v.starts_with("NdisTimedDataHang: 1 send(s) pending"), "{v}");
        assert!(v.contains("22000 ms"), "{v}");
        // Reported once per wait.
        assert_eq!(w.check(60_000, 1, 0), None);
        // A completion starts a new wait.
        assert_eq!(w.check(61_000, 1, 1), None);
        assert_eq!(w.check(61_000 + DATA_HANG_TIMEOUT_MS - 1, 1, 1), None);
        assert!(w.check(61_000 + DATA_HANG_TIMEOUT_MS, 1, 1).is_some());
    }

    #[test]
    fn completions_keep_a_busy_send_path_from_hanging() {
        let mut w = DataHangWatch::new();
        // Sends stay pending for a minute, but one completes every 10 s: no hang (that is
        // NdisTimedDataSend's business, per send).
        for (i, t) in (0..60_000).step_by(10_000).enumerate() {
            assert_eq!(w.check(t, 3, i as u64), None, "at {t}");
        }
        // Nothing pending: never a hang.
        let mut w = DataHangWatch::new();
        assert_eq!(w.check(0, 0, 5), None);
        assert_eq!(w.check(100_000, 0, 5), None);
    }

    #[test]
    fn a_pended_reset_completes_exactly_once() {
        let mut r = ResetTracker::new();
        assert!(r.complete(0).unwrap_err().contains("did not pend"));
        r.returned(NDIS_STATUS_PENDING);
        assert!(r.pending());
        assert_eq!(r.result(), None);
        assert!(r.complete(NDIS_STATUS_PENDING).is_err());
        r.complete(0).unwrap();
        assert!(!r.pending());
        assert_eq!(r.result(), Some(0));
        let e = r.complete(0).unwrap_err();
        assert!(e.contains("already completed"), "{e}");
        // A synchronous reset has its result at once and takes no completion.
        let mut r = ResetTracker::new();
        r.returned(0x8001_0004);
        assert_eq!(r.result(), Some(0x8001_0004));
        assert!(r.complete(0).is_err());
    }

    fn indication_header() -> NDIS_OBJECT_HEADER {
        NDIS_OBJECT_HEADER::new(0x98, 1, 0x70)
    }

    fn link_up() -> NDIS_LINK_STATE {
        NDIS_LINK_STATE {
            Header: NDIS_OBJECT_HEADER::new(0x80, 1, 0x28),
            MediaConnectState: 1,
            MediaDuplexState: 2,
            XmitLinkSpeed: 100_000_000_000,
            RcvLinkSpeed: 100_000_000_000,
            PauseFunctions: 0,
            AutoNegotiationFlags: 0,
        }
    }

    #[test]
    fn link_state_indications_need_their_headers_and_a_whole_buffer() {
        let s = link_up();
        check_status_indication(indication_header(), 0x4001_0017, 0x28, Some(&s)).unwrap();
        // Wrong indication header type, old size.
        let e = check_status_indication(
            NDIS_OBJECT_HEADER::new(0x80, 1, 0x70),
            0x4001_0017,
            0x28,
            Some(&s),
        )
        .unwrap_err();
        assert!(e.contains("type 0x80"), "{e}");
        assert!(check_status_indication(
            NDIS_OBJECT_HEADER::new(0x98, 1, 0x40),
            0x4001_0017,
            0x28,
            Some(&s)
        )
        .is_err());
        // A short buffer.
        let e = check_status_indication(indication_header(), 0x4001_0017, 0x20, None).unwrap_err();
        assert!(e.contains("0x28"), "{e}");
        // A link state with a bad header or state.
        let mut bad = s;
        bad.Header = NDIS_OBJECT_HEADER::new(0x98, 1, 0x28);
        assert!(
            check_status_indication(indication_header(), 0x4001_0017, 0x28, Some(&bad)).is_err()
        );
        let mut bad = s;
        bad.MediaConnectState = 7;
        assert!(
            check_status_indication(indication_header(), 0x4001_0017, 0x28, Some(&bad)).is_err()
        );
        // Other status codes only need the indication header.
        check_status_indication(indication_header(), 0x4001_0018, 0, None).unwrap();
    }
}
