//! The seam between the verbs engine and the rest of the device.
//!
//! [`crate::verbs::Verbs`] never touches guest memory, interrupts, the wire or the
//! clock directly: it goes through a [`VerbsEnv`] that the device core implements
//! (and that the tests implement with a `Vec<u8>` memory and recorders).

use crate::dma::DmaError;
use crate::fault::{FaultAction, FaultPoint};
use serde::Serialize;
use std::time::Duration;

/// What the verbs engine needs from the device around it.
pub trait VerbsEnv {
    /// Reads guest memory. The environment applies bus-master, range and
    /// `DmaRead` fault checks.
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Writes guest memory. The environment applies bus-master, range and
    /// `DmaWrite` fault checks.
    fn dma_write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError>;
    /// Checks, without accessing it, that `[addr, addr+len)` is guest RAM the device
    /// may touch (used to validate rings and page lists when they are created).
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError>;
    /// Raises an MSI-X vector (a completion queue event).
    fn raise_vector(&mut self, vector: u16);
    /// Puts one encoded RoCEv2 frame on the wire.
    fn send_frame(&mut self, frame: &[u8]);
    /// Device time; only differences matter.
    fn now(&self) -> Duration;
    /// Asks the fault engine whether something should go wrong at `point`.
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction>;
    /// Reports an asynchronous event (the device core writes it to its event queue
    /// and raises vector 0).
    fn post_async_event(&mut self, ev: AsyncEvent);
}

/// Asynchronous events of the verbs engine. See `docs/spec-parts/verbs.md` §9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AsyncEvent {
    /// The device moved a QP to ERR on its own (error completion, bad doorbell,
    /// DMA failure, retry exhausted, CQ overflow). `cause` is a completion status
    /// code (`WcStatus`) or [`CAUSE_BAD_DOORBELL`] / [`CAUSE_DMA`].
    QpError { qpn: u32, cause: u8 },
    /// Responder side: a request violated memory protection (bad rkey, PD, rights
    /// or bounds); the QP was moved to ERR.
    QpAccessError { qpn: u32 },
    /// Responder side: a malformed or unexpected request; the QP was moved to ERR.
    QpRequestError { qpn: u32 },
    /// A QP in SQD has no outstanding send work any more.
    SqDrained { qpn: u32 },
    /// A CQ overflowed or its ring could not be written; it accepts no more entries.
    CqError { cqn: u32 },
}

/// `QpError.cause`: a doorbell carried an impossible producer index.
pub const CAUSE_BAD_DOORBELL: u8 = 0xF0;
/// `QpError.cause`: reading a WQE or page list from guest memory failed.
pub const CAUSE_DMA: u8 = 0xF1;
/// `QpError.cause`: the QP's completion queue is in error (overflow).
pub const CAUSE_CQ_ERROR: u8 = 0xF2;

impl AsyncEvent {
    /// Event code for the device's event queue entry.
    pub const fn code(&self) -> u8 {
        match self {
            AsyncEvent::QpError { .. } => 0x10,
            AsyncEvent::QpAccessError { .. } => 0x11,
            AsyncEvent::QpRequestError { .. } => 0x12,
            AsyncEvent::SqDrained { .. } => 0x13,
            AsyncEvent::CqError { .. } => 0x20,
        }
    }

    /// The QP or CQ number the event is about.
    pub const fn handle(&self) -> u32 {
        match *self {
            AsyncEvent::QpError { qpn, .. }
            | AsyncEvent::QpAccessError { qpn }
            | AsyncEvent::QpRequestError { qpn }
            | AsyncEvent::SqDrained { qpn } => qpn,
            AsyncEvent::CqError { cqn } => cqn,
        }
    }

    /// Event-specific detail (the cause of `QpError`, else 0).
    pub const fn detail(&self) -> u32 {
        match *self {
            AsyncEvent::QpError { cause, .. } => cause as u32,
            _ => 0,
        }
    }
}
