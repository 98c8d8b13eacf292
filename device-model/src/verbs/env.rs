//! The seam between the verbs engine and the rest of the device.
//!
//! [`crate::verbs::Verbs`] never touches guest memory, interrupts, the wire or the
//! clock directly: it goes through a [`VerbsEnv`] that the device core implements
//! (and that the tests implement with a `Vec<u8>` memory and recorders).

use crate::dma::DmaError;
use crate::fault::{FaultAction, FaultPoint};
use rnic_contract::event::code;
pub use rnic_contract::event::qp_error_cause;
use serde::Serialize;
use std::time::Duration;

/// Which object a verbs DMA access belongs to. The device core turns it into the
/// `queue` of the fault scope (`docs/device-spec.md` Appendix A.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaOwner {
    /// An admin command's buffer (`QUERY_CAPS`, `QUERY_QP`, `QUERY_MR`, the
    /// `REG_MR` page list).
    #[default]
    Admin,
    /// A QP's work: its WQEs, its payload (SGEs, RDMA WRITE targets, RDMA READ
    /// sources) and the page lists of its `FAST_REG` WQEs.
    Qp(u32),
    /// A CQ's ring: CQE writes and the copies of `RESIZE_CQ`.
    Cq(u32),
}

/// The fault scope of one verbs DMA access: the owning object and, for accesses
/// through a memory region (payload, page lists), the MR index (`key >> 8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DmaScope {
    pub owner: DmaOwner,
    pub mr: Option<u32>,
}

impl DmaScope {
    /// An admin command buffer.
    pub const ADMIN: DmaScope = DmaScope {
        owner: DmaOwner::Admin,
        mr: None,
    };

    /// An access on behalf of QP `qpn`.
    pub const fn qp(qpn: u32) -> Self {
        DmaScope {
            owner: DmaOwner::Qp(qpn),
            mr: None,
        }
    }

    /// An access to the ring of CQ `cqn`.
    pub const fn cq(cqn: u32) -> Self {
        DmaScope {
            owner: DmaOwner::Cq(cqn),
            mr: None,
        }
    }

    /// The same scope, through the MR with index `index`.
    pub const fn with_mr(self, index: u32) -> Self {
        DmaScope {
            owner: self.owner,
            mr: Some(index),
        }
    }
}

/// What the verbs engine needs from the device around it.
///
/// The engine itself only calls the scoped methods ([`VerbsEnv::dma_read_scoped`],
/// [`VerbsEnv::dma_write_scoped`], [`VerbsEnv::send_frame_from`]); their default
/// implementations drop the scope and call the plain ones, so a simple environment
/// (tests, benchmarks) implements only those.
pub trait VerbsEnv {
    /// Reads guest memory. The environment applies bus-master, range and
    /// `DmaRead` fault checks.
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Writes guest memory. The environment applies bus-master, range and
    /// `DmaWrite` fault checks.
    fn dma_write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError>;
    /// [`VerbsEnv::dma_read`] on behalf of `scope` (the fault scope of the access).
    fn dma_read_scoped(
        &mut self,
        scope: DmaScope,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), DmaError> {
        let _ = scope;
        self.dma_read(addr, buf)
    }
    /// [`VerbsEnv::dma_write`] on behalf of `scope` (the fault scope of the access).
    fn dma_write_scoped(&mut self, scope: DmaScope, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let _ = scope;
        self.dma_write(addr, buf)
    }
    /// Checks, without accessing it, that `[addr, addr+len)` is guest RAM the device
    /// may touch (used to validate rings and page lists when they are created).
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError>;
    /// Raises an MSI-X vector (a completion queue event).
    fn raise_vector(&mut self, vector: u16);
    /// Puts one encoded RoCEv2 frame on the wire.
    fn send_frame(&mut self, frame: &[u8]);
    /// [`VerbsEnv::send_frame`] for a frame sent by local QP `qpn` (the `wire_tx`
    /// fault scope).
    fn send_frame_from(&mut self, qpn: u32, frame: &[u8]) {
        let _ = qpn;
        self.send_frame(frame)
    }
    /// Device time; only differences matter.
    fn now(&self) -> Duration;
    /// Asks the fault engine whether something should go wrong at `point`.
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction>;
    /// Reports an asynchronous event (the device core writes it to its event queue
    /// and raises vector 0).
    fn post_async_event(&mut self, ev: AsyncEvent);
}

/// Asynchronous events of the verbs engine (`docs/device-spec.md` §4.2, §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AsyncEvent {
    /// The device moved a QP to ERR on its own (error completion, bad doorbell,
    /// DMA failure, retry exhausted, CQ overflow). `cause` is a completion status
    /// code (`WcStatus`) or one of [`qp_error_cause`].
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

impl AsyncEvent {
    /// Event code for the device's event queue entry.
    pub const fn code(&self) -> u8 {
        match self {
            AsyncEvent::QpError { .. } => code::QP_ERROR,
            AsyncEvent::QpAccessError { .. } => code::QP_ACCESS_ERROR,
            AsyncEvent::QpRequestError { .. } => code::QP_REQUEST_ERROR,
            AsyncEvent::SqDrained { .. } => code::SQ_DRAINED,
            AsyncEvent::CqError { .. } => code::CQ_ERROR,
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
