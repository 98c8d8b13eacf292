//! The pure part of the adapter's pause/restart state machine (`adapter::MiniportPause`,
//! `MiniportRestart`, the send and receive paths): the data-path state (Running, Pausing,
//! Paused) and the number of NBLs the driver holds for NDIS (sends not yet completed, receive
//! indications not yet returned) in one atomic word, so that a pause and the completion of
//! the last outstanding NBL agree on who calls NdisMPauseComplete, exactly once. No FFI here:
//! host-tested (artifact-check includes this file).

use core::sync::atomic::{AtomicU32, Ordering};

/// State bits of the word (above the count).
const STATE_SHIFT: u32 = 30;
/// The count's bits.
const COUNT_MASK: u32 = (1 << STATE_SHIFT) - 1;
/// Sends flow and receives are indicated.
const RUNNING: u32 = 0;
/// MiniportPause returned `NDIS_STATUS_PENDING`: nothing new starts, the outstanding NBLs drain.
const PAUSING: u32 = 1;
/// Stopped: where InitializeEx leaves the adapter and a pause ends.
const PAUSED: u32 = 2;

/// What MiniportPause does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Nothing outstanding: the adapter is Paused now (`NDIS_STATUS_SUCCESS`).
    Now,
    /// This many NBLs outstanding: the pause pends (`NDIS_STATUS_PENDING`) until the last one
    /// completes or returns, whose [`DataPath::finish`] says [`Finish::CompletesPause`].
    Pends(u32),
    /// The adapter was not Running (already Pausing or Paused): nothing changed.
    NotRunning,
}

/// What the end of one outstanding NBL did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// One NBL fewer outstanding.
    Done,
    /// The last NBL of a pending pause: the adapter is Paused now and the caller calls
    /// NdisMPauseComplete (exactly once over the pause).
    CompletesPause,
    /// Nothing was outstanding: nothing changed (a bookkeeping error of the caller).
    NotHeld,
}

/// One adapter's data-path state and outstanding NBL count.
#[derive(Debug)]
pub struct DataPath(AtomicU32);

impl Default for DataPath {
    fn default() -> Self {
        Self::new()
    }
}

impl DataPath {
    /// A new adapter: Paused (InitializeEx leaves it so), nothing outstanding.
    pub const fn new() -> Self {
        DataPath(AtomicU32::new(PAUSED << STATE_SHIFT))
    }

    /// Starts one NBL (a send taken onto the TX ring, or a receive indication) if the
    /// adapter is Running; false otherwise (a send is then completed with
    /// `NDIS_STATUS_PAUSED`, a received frame dropped) or if the count would overflow.
    pub fn begin(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w >> STATE_SHIFT == RUNNING && w & COUNT_MASK < COUNT_MASK).then_some(w + 1)
            })
            .is_ok()
    }

    /// Ends one NBL started by [`begin`](Self::begin) (send completed, indication returned).
    pub fn finish(&self) -> Finish {
        let step = |w: u32| {
            let count = w & COUNT_MASK;
            if count == 0 {
                return None;
            }
            let state = w >> STATE_SHIFT;
            let state = if count == 1 && state == PAUSING {
                PAUSED
            } else {
                state
            };
            Some((state << STATE_SHIFT) | (count - 1))
        };
        match self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, step)
        {
            Err(_) => Finish::NotHeld,
            Ok(w) if w >> STATE_SHIFT == PAUSING && w & COUNT_MASK == 1 => Finish::CompletesPause,
            Ok(_) => Finish::Done,
        }
    }

    /// MiniportPause: stops new NBLs; Paused at once when none is outstanding.
    pub fn pause(&self) -> Pause {
        let step = |w: u32| {
            (w >> STATE_SHIFT == RUNNING).then(|| {
                let count = w & COUNT_MASK;
                let state = if count == 0 { PAUSED } else { PAUSING };
                (state << STATE_SHIFT) | count
            })
        };
        match self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, step)
        {
            Err(_) => Pause::NotRunning,
            Ok(w) if w & COUNT_MASK == 0 => Pause::Now,
            Ok(w) => Pause::Pends(w & COUNT_MASK),
        }
    }

    /// MiniportRestart: Paused -> Running; false (nothing changed) when the adapter was not
    /// Paused (Running, or a pause still pending).
    pub fn restart(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w >> STATE_SHIFT == PAUSED).then_some((RUNNING << STATE_SHIFT) | (w & COUNT_MASK))
            })
            .is_ok()
    }

    /// Whether the adapter is Running (sends and indications allowed).
    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) >> STATE_SHIFT == RUNNING
    }

    /// NBLs outstanding now.
    #[cfg(test)]
    pub fn outstanding(&self) -> u32 {
        self.0.load(Ordering::Acquire) & COUNT_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_adapter_is_paused_and_takes_nothing_until_restarted() {
        let d = DataPath::new();
        assert!(!d.is_running());
        assert!(!d.begin(), "no send or indication before MiniportRestart");
        assert_eq!(d.pause(), Pause::NotRunning);
        assert!(d.restart());
        assert!(d.is_running());
        assert!(!d.restart(), "a Running adapter is not restarted again");
        assert!(d.begin());
    }

    #[test]
    fn a_pause_with_nothing_outstanding_is_immediate() {
        let d = DataPath::new();
        assert!(d.restart());
        assert!(d.begin());
        assert_eq!(d.finish(), Finish::Done);
        assert_eq!(d.pause(), Pause::Now);
        assert!(!d.begin(), "Paused: nothing new starts");
        assert_eq!(d.finish(), Finish::NotHeld);
        assert!(d.restart());
    }

    #[test]
    fn a_pause_pends_until_the_last_nbl_ends_and_completes_exactly_once() {
        let d = DataPath::new();
        assert!(d.restart());
        for _ in 0..3 {
            assert!(d.begin());
        }
        assert_eq!(d.pause(), Pause::Pends(3));
        assert!(
            !d.begin(),
            "Pausing: a new send completes with NDIS_STATUS_PAUSED"
        );
        assert!(!d.restart(), "no restart while the pause pends");
        assert_eq!(
            d.pause(),
            Pause::NotRunning,
            "a second pause changes nothing"
        );
        assert_eq!(d.finish(), Finish::Done);
        assert_eq!(d.finish(), Finish::Done);
        assert_eq!(d.outstanding(), 1);
        assert_eq!(d.finish(), Finish::CompletesPause);
        assert_eq!(d.finish(), Finish::NotHeld, "never a second completion");
        assert_eq!(d.outstanding(), 0);
        assert!(d.restart(), "the completed pause left it Paused");
        assert!(d.begin());
    }

    #[test]
    fn nbls_ending_while_running_never_complete_a_pause() {
        let d = DataPath::new();
        assert!(d.restart());
        assert!(d.begin());
        assert!(d.begin());
        assert_eq!(d.finish(), Finish::Done);
        assert_eq!(d.finish(), Finish::Done);
        assert_eq!(d.finish(), Finish::NotHeld);
        assert!(d.is_running());
    }

    #[test]
    fn concurrent_ends_complete_a_pending_pause_exactly_once() {
        use std::sync::Arc;
        let d = Arc::new(DataPath::new());
        assert!(d.restart());
        const N: u32 = 4_000;
        for _ in 0..N {
            assert!(d.begin());
        }
        assert_eq!(d.pause(), Pause::Pends(N));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let d = Arc::clone(&d);
                std::thread::spawn(move || {
                    (0..N / 4)
                        .filter(|_| d.finish() == Finish::CompletesPause)
                        .count()
                })
            })
            .collect();
        let completions: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(completions, 1);
        assert_eq!(d.outstanding(), 0);
        assert!(d.restart());
    }
}
