//! The one seam between the device's engines (admin queue, event queue, Ethernet
//! queues, verbs) and the device core that owns guest memory, interrupts, the wire,
//! the clock and the fault engine.
//!
//! An engine never touches those directly: it calls a [`DeviceEnv`], naming the
//! object it acts for with a typed [`Owner`]. The core turns the owner into the
//! fault scope of the access (`docs/device-spec.md` Appendix A.3, numbering in
//! [`crate::fault::scope_queue`]), applies bus-master, range and fault checks, and
//! counts. Unit tests implement the trait with recorders.

use std::time::Duration;

use serde::Serialize;

use crate::dma::DmaError;
use crate::events::Event;
use crate::fault::{FaultAction, FaultPoint};

/// The object a DMA access, a transmitted frame or an event belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// The admin queue: its rings and every admin command's buffer (`QUERY_*`
    /// outputs, the multicast list, the `REG_MR` page list).
    #[default]
    Admin,
    /// A QP's work: its WQEs, its payload (SGEs, RDMA WRITE targets, RDMA READ
    /// sources), the page lists of its `FAST_REG` WQEs, and its RoCEv2 frames.
    Qp(u32),
    /// A CQ's ring: CQE writes and the copies of `RESIZE_CQ`.
    Cq(u32),
    /// Ethernet TX queue `n` (0..8): descriptors, frame buffers, frames sent.
    EthTx(u16),
    /// Ethernet RX queue `n` (0..8): descriptors and receive buffers.
    EthRx(u16),
    /// The event ring.
    EventQueue,
}

/// The fault scope of one access: the owning object and, for accesses through a
/// memory region (payload, page lists), the MR index (`key >> 8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DmaScope {
    /// The object the access is for.
    pub owner: Owner,
    /// The MR the access goes through, if any.
    pub mr: Option<u32>,
}

impl DmaScope {
    /// The admin queue (rings and command buffers).
    pub const ADMIN: DmaScope = DmaScope::of(Owner::Admin);
    /// The event ring.
    pub const EVENT_QUEUE: DmaScope = DmaScope::of(Owner::EventQueue);

    /// An access on behalf of `owner`, not through an MR.
    pub const fn of(owner: Owner) -> Self {
        DmaScope { owner, mr: None }
    }

    /// An access on behalf of QP `qpn`.
    pub const fn qp(qpn: u32) -> Self {
        DmaScope::of(Owner::Qp(qpn))
    }

    /// An access to the ring of CQ `cqn`.
    pub const fn cq(cqn: u32) -> Self {
        DmaScope::of(Owner::Cq(cqn))
    }

    /// The same scope, through the MR with index `index`.
    pub const fn with_mr(self, index: u32) -> Self {
        DmaScope {
            owner: self.owner,
            mr: Some(index),
        }
    }
}

/// Which side of a guest-to-guest copy ([`DeviceEnv::dma_copy`]) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyError {
    /// Reading the source failed (range, bus master or a `dma_read` fault); nothing
    /// was written.
    Source(DmaError),
    /// Writing the destination failed (range, bus master or a `dma_write` fault).
    Destination(DmaError),
}

/// What every engine of the device needs from the device around it.
pub trait DeviceEnv {
    /// Reads guest memory for `scope`. The environment applies bus-master, range and
    /// `dma_read` fault checks.
    fn dma_read(&mut self, scope: DmaScope, addr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Writes guest memory for `scope`. The environment applies bus-master, range and
    /// `dma_write` fault checks.
    fn dma_write(&mut self, scope: DmaScope, addr: u64, data: &[u8]) -> Result<(), DmaError>;
    /// Copies `len` bytes of guest memory from `src_addr` (read on behalf of `src`,
    /// through the `dma_read` checks) to `dst_addr` (written on behalf of `dst`,
    /// through the `dma_write` checks): the loopback data path's one copy. The
    /// ranges may overlap (the copy behaves as `memmove`).
    ///
    /// The default goes through a temporary buffer with [`DeviceEnv::dma_read`]
    /// and [`DeviceEnv::dma_write`] (two copies, every access visible to recording
    /// test environments); the device core copies guest to guest directly.
    fn dma_copy(
        &mut self,
        src: DmaScope,
        src_addr: u64,
        dst: DmaScope,
        dst_addr: u64,
        len: usize,
    ) -> Result<(), CopyError> {
        let mut buf = vec![0u8; len];
        self.dma_read(src, src_addr, &mut buf)
            .map_err(CopyError::Source)?;
        self.dma_write(dst, dst_addr, &buf)
            .map_err(CopyError::Destination)
    }
    /// Checks, without accessing it, that `[addr, addr+len)` is guest RAM the device
    /// may touch (rings and page lists are validated with this when created).
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError>;
    /// Raises MSI-X vector `vector` (through the `msix` fault site).
    fn raise(&mut self, vector: u16);
    /// Puts one frame sent by `owner` (an Ethernet TX queue or a QP) on the wire;
    /// false when it was dropped (link down, no wire, wire error).
    fn transmit(&mut self, owner: Owner, frame: &[u8]) -> bool;
    /// Writes an asynchronous event to the event ring and raises vector 0
    /// (`docs/device-spec.md` §4).
    fn post_event(&mut self, ev: Event);
    /// Device time.
    fn now(&self) -> Duration;
    /// Asks the fault engine whether something should go wrong at `point`.
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction>;
}
