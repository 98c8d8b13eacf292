//! The pure part of the NMR provider (`crate::nmr`): one binding's reference count and detach
//! state in a single atomic word, so that a detach and the end of the last call sequence
//! agree on who completes the detach, exactly once. Host-tested (artifact-check includes this
//! file).

use core::sync::atomic::{AtomicU32, Ordering};

/// Bit of the state word set once a detach began; the bits below count references.
const DETACHING: u32 = 1 << 31;

/// What a detach of the binding does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// No call sequence in flight: detached now (`STATUS_SUCCESS`).
    Now,
    /// This many call sequences in flight: the detach pends (`STATUS_PENDING`) until the last
    /// ends.
    Pends(u32),
}

/// What ending a call sequence did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// A reference was dropped.
    Released,
    /// The last reference of a pended detach: the caller completes the detach.
    CompletesDetach,
    /// No reference was held: nothing changed (a client error, ignored).
    NotHeld,
}

/// One binding's state: references held by the client, and whether a detach began.
#[derive(Debug, Default)]
pub struct BindingState(AtomicU32);

impl BindingState {
    /// A fresh binding: no reference, not detaching.
    pub const fn new() -> Self {
        BindingState(AtomicU32::new(0))
    }

    /// Begins a call sequence; false once a detach began (no new sequence may start) or if
    /// the count would overflow.
    pub fn reference(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & DETACHING == 0 && s + 1 < DETACHING).then_some(s + 1)
            })
            .is_ok()
    }

    /// Ends a call sequence.
    pub fn release(&self) -> Release {
        match self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & !DETACHING != 0).then(|| s - 1)
            }) {
            Err(_) => Release::NotHeld,
            Ok(prev) if prev - 1 == DETACHING => Release::CompletesDetach,
            Ok(_) => Release::Released,
        }
    }

    /// Begins the detach (once: later calls report the same without changing anything).
    pub fn detach(&self) -> Detach {
        let held = self.0.fetch_or(DETACHING, Ordering::AcqRel) & !DETACHING;
        if held == 0 {
            Detach::Now
        } else {
            Detach::Pends(held)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detach_without_calls_in_flight_is_immediate() {
        let b = BindingState::new();
        assert_eq!(b.detach(), Detach::Now);
        assert!(!b.reference(), "no call sequence starts after a detach");
        assert_eq!(b.release(), Release::NotHeld);
    }

    #[test]
    fn a_detach_pends_until_the_last_call_sequence_ends_and_completes_once() {
        let b = BindingState::new();
        assert!(b.reference());
        assert!(b.reference());
        assert_eq!(b.detach(), Detach::Pends(2));
        assert_eq!(b.release(), Release::Released);
        assert_eq!(b.release(), Release::CompletesDetach);
        assert_eq!(b.release(), Release::NotHeld, "never a second completion");
    }

    #[test]
    fn releases_without_a_detach_never_complete_anything() {
        let b = BindingState::new();
        assert!(b.reference());
        assert_eq!(b.release(), Release::Released);
        assert_eq!(b.release(), Release::NotHeld);
        assert_eq!(b.detach(), Detach::Now);
    }
}
