//! The interrupt seam between the device and whoever hosts it.
//!
//! The device never injects interrupts itself: it tells an [`InterruptSink`] which
//! MSI-X vectors are currently deliverable (and with which message) and asks it to
//! deliver a message. The monitor implements the sink with KVM GSI routes and
//! irqfds; tests use [`RecordingSink`].

use std::sync::Mutex;

use thiserror::Error;

/// One MSI message as programmed by the guest in an MSI-X table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address (`addr_hi:addr_lo`).
    pub address: u64,
    /// Message data.
    pub data: u32,
}

/// Why an interrupt could not be routed or delivered.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InterruptError {
    /// The vector is outside what the sink was set up for.
    #[error("MSI-X vector {0} is not known to the interrupt sink; configure the sink with at least 16 vectors")]
    UnknownVector(u16),
    /// The host failed to route or inject the message.
    #[error("the host could not deliver MSI-X vector {vector}: {reason}; check the monitor's interrupt routing")]
    Host {
        /// The MSI-X vector being delivered.
        vector: u16,
        /// The monitor's error, as text.
        reason: String,
    },
}

/// Receives the device's interrupt routing changes and interrupt requests.
///
/// * `update_route(v, Some(msg))` is called when vector `v` becomes deliverable
///   (its entry is unmasked, the function is unmasked and MSI-X is enabled) and
///   whenever its message changes while it stays deliverable.
/// * `update_route(v, None)` is called when vector `v` stops being deliverable.
/// * `trigger(v, msg)` is called only for a deliverable vector, after its route was
///   announced with the same message.
pub trait InterruptSink: Send + Sync {
    /// A vector's route changed (see the trait documentation).
    fn update_route(&self, vector: u16, route: Option<MsiMessage>) -> Result<(), InterruptError>;
    /// Deliver `msg` for `vector` now.
    fn trigger(&self, vector: u16, msg: MsiMessage) -> Result<(), InterruptError>;
}

/// One call recorded by [`RecordingSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkEvent {
    /// `update_route(vector, route)`.
    Route {
        /// The MSI-X vector whose route changed.
        vector: u16,
        /// The new message, or none when the vector cannot deliver.
        route: Option<MsiMessage>,
    },
    /// `trigger(vector, msg)`.
    Trigger {
        /// The MSI-X vector delivered.
        vector: u16,
        /// The message (address and data) written.
        msg: MsiMessage,
    },
}

/// An [`InterruptSink`] that records every call. Meant for tests (of this crate and
/// of anything that hosts the device); it never fails.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<SinkEvent>>,
}

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, oldest first.
    pub fn events(&self) -> Vec<SinkEvent> {
        self.lock().clone()
    }

    /// Removes and returns every call so far.
    pub fn take(&self) -> Vec<SinkEvent> {
        std::mem::take(&mut *self.lock())
    }

    /// The vectors triggered so far, oldest first.
    pub fn triggers(&self) -> Vec<u16> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                SinkEvent::Trigger { vector, .. } => Some(*vector),
                SinkEvent::Route { .. } => None,
            })
            .collect()
    }

    /// How many times `vector` was triggered.
    pub fn trigger_count(&self, vector: u16) -> usize {
        self.triggers().iter().filter(|v| **v == vector).count()
    }

    /// The route updates so far, oldest first.
    pub fn routes(&self) -> Vec<(u16, Option<MsiMessage>)> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                SinkEvent::Route { vector, route } => Some((*vector, *route)),
                SinkEvent::Trigger { .. } => None,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SinkEvent>> {
        // A poisoned lock only means another test thread panicked; the data is plain.
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl InterruptSink for RecordingSink {
    fn update_route(&self, vector: u16, route: Option<MsiMessage>) -> Result<(), InterruptError> {
        self.lock().push(SinkEvent::Route { vector, route });
        Ok(())
    }

    fn trigger(&self, vector: u16, msg: MsiMessage) -> Result<(), InterruptError> {
        self.lock().push(SinkEvent::Trigger { vector, msg });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_order_and_filters() {
        let s = RecordingSink::new();
        let m = MsiMessage {
            address: 0xFEE0_0000,
            data: 0x41,
        };
        s.update_route(3, Some(m)).unwrap();
        s.trigger(3, m).unwrap();
        s.update_route(3, None).unwrap();
        assert_eq!(s.triggers(), vec![3]);
        assert_eq!(s.routes(), vec![(3, Some(m)), (3, None)]);
        assert_eq!(s.trigger_count(3), 1);
        assert_eq!(s.take().len(), 3);
        assert!(s.events().is_empty());
    }
}
