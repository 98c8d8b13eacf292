//! The state every engine of the device shares, and the environment the engines
//! (admin queue, event queue, Ethernet, verbs) reach it through: DMA and MSI-X with
//! their fault hooks, the event queue, the wire, link and fatal state, counters.

use super::state::{FatalState, Link, LinkInput};
use super::*;
use crate::dma::faulted_copy;
use crate::env::{CopyError, DeviceEnv, DmaScope, Owner};
use crate::fault::{dma_scope, queue_scope, scope_queue};

/// State shared by every engine of the device.
pub(crate) struct Core {
    pub(crate) dma: Dma,
    pub(crate) msix: Msix,
    pub(crate) faults: Arc<Mutex<FaultEngine>>,
    pub(crate) wire: Option<FaultyWire<Box<dyn WireBackend>>>,
    /// Device time in nanoseconds, for the wire's delay clock.
    pub(crate) clock: Arc<AtomicU64>,
    /// Set by the wire's fault decider when a `wire_tx`/`wire_rx` rule answers `fatal`.
    pub(crate) wire_fatal: Arc<AtomicBool>,
    pub(crate) eq: EventQueue,
    pub(crate) now: Duration,
    pub(crate) enabled: bool,
    pub(crate) admin_error: u32,
    /// The port link (§5.6).
    pub(crate) link: Link,
    /// The fatal state (§13.3).
    pub(crate) fatal: FatalState,
    pub(crate) delayed_irqs: Vec<(Duration, u16)>,
    pub(crate) port: PortStats,
    pub(crate) counters: DeviceCounters,
}

impl Core {
    pub(crate) fn fault(&mut self, point: FaultPoint) -> Option<FaultAction> {
        let a = lock(&self.faults).check(&point, self.now);
        if a == Some(FaultAction::Fatal) {
            self.request_fatal(events::fatal_cause::INJECTED);
        }
        a
    }

    /// One DMA access of `len` bytes at `addr` through fault `site` on behalf of
    /// `scope`: refused while the device is fatal, otherwise done by `access` with
    /// the fault engine's answer. Injected faults and failed accesses are counted.
    pub(crate) fn scoped_access(
        &mut self,
        site: FaultSite,
        scope: FaultScope,
        addr: u64,
        len: usize,
        access: impl FnOnce(&Dma, Option<FaultAction>) -> Result<(), DmaError>,
    ) -> Result<(), DmaError> {
        if self.fatal.is_fatal() {
            return Err(DmaError::Injected {
                addr,
                len: len as u64,
            });
        }
        let act = self.fault(FaultPoint { site, scope });
        if act.is_some() {
            self.counters.dma_faults += 1;
        }
        let r = access(&self.dma, act);
        if r.is_err() {
            self.counters.dma_errors += 1;
        }
        r
    }

    pub(crate) fn read_scoped(
        &mut self,
        scope: FaultScope,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), DmaError> {
        let len = buf.len();
        self.scoped_access(FaultSite::DmaRead, scope, addr, len, |dma, act| {
            faulted_read(dma, act, addr, buf)
        })
    }

    pub(crate) fn write_scoped(
        &mut self,
        scope: FaultScope,
        addr: u64,
        data: &[u8],
    ) -> Result<(), DmaError> {
        self.scoped_access(FaultSite::DmaWrite, scope, addr, data.len(), |dma, act| {
            faulted_write(dma, act, addr, data)
        })
    }

    /// A guest-to-guest copy: the `DmaRead` site is asked for the source (a failure
    /// there writes nothing and never asks the `DmaWrite` site), then the
    /// `DmaWrite` site for the destination; counted as [`Core::scoped_access`]
    /// counts.
    pub(crate) fn copy_scoped(
        &mut self,
        src: FaultScope,
        src_addr: u64,
        dst: FaultScope,
        dst_addr: u64,
        len: usize,
    ) -> Result<(), CopyError> {
        let refused = |addr| DmaError::Injected {
            addr,
            len: len as u64,
        };
        if self.fatal.is_fatal() {
            return Err(CopyError::Source(refused(src_addr)));
        }
        let read_action = self.fault(FaultPoint {
            site: FaultSite::DmaRead,
            scope: src,
        });
        let write_action = match read_action {
            Some(FaultAction::DmaError | FaultAction::Fatal) => None,
            _ => self.fault(FaultPoint {
                site: FaultSite::DmaWrite,
                scope: dst,
            }),
        };
        self.counters.dma_faults +=
            u64::from(read_action.is_some()) + u64::from(write_action.is_some());
        let r = faulted_copy(
            &self.dma,
            read_action,
            write_action,
            src_addr,
            dst_addr,
            len,
        );
        if r.is_err() {
            self.counters.dma_errors += 1;
        }
        r
    }

    /// Raises a vector through the MSI-X fault hook.
    pub(crate) fn raise(&mut self, vector: u16) {
        if self.fatal.is_fatal() {
            return;
        }
        if !self.msix.deliverable(vector) {
            self.msix.raise(vector);
            return;
        }
        match self.fault(FaultPoint::new(FaultSite::Msix).vector(vector)) {
            Some(FaultAction::Drop) => self.counters.msix_dropped += 1,
            Some(FaultAction::Delay { micros }) => {
                self.counters.msix_delayed += 1;
                let due = self.now.saturating_add(Duration::from_micros(micros));
                self.delayed_irqs.push((due, vector));
            }
            Some(FaultAction::Duplicate | FaultAction::Spurious) => {
                self.counters.msix_extra += 1;
                self.msix.raise(vector);
                self.msix.raise(vector);
            }
            Some(FaultAction::Fatal) => {}
            _ => self.msix.raise(vector),
        }
    }

    /// Writes an event to the EQ (if any) and raises vector 0.
    pub(crate) fn post_event(&mut self, ev: Event) {
        if self.fatal.is_fatal() {
            return;
        }
        let mut eq = std::mem::take(&mut self.eq);
        let r = eq.post(self, &ev);
        self.eq = eq;
        match r {
            PostResult::Written | PostResult::NoQueue => self.raise(ADMIN_VECTOR),
            PostResult::Overflow => {
                tracing::warn!(code = ev.code, "event queue full: event dropped")
            }
            PostResult::Dma(e) => {
                tracing::warn!(error = %e, "event queue write failed: event queue stopped");
                self.raise(ADMIN_VECTOR);
            }
        }
    }

    /// Sends a frame to the wire. `scope` is the `wire_tx` fault scope: `queue` =
    /// the sending queue in the numbering of [`scope_queue`], the QPN for RoCEv2
    /// frames, `ETH_TX | n` for Ethernet TX queue `n`.
    pub(crate) fn transmit(&mut self, scope: FaultScope, frame: &[u8]) -> bool {
        if !self.link_up() {
            self.port.tx_dropped_link_down += 1;
            return false;
        }
        let Some(w) = self.wire.as_mut() else {
            self.port.tx_dropped_link_down += 1;
            return false;
        };
        match w.send_with_scope(frame, scope) {
            Ok(()) => {
                self.port.tx_frames += 1;
                self.port.tx_bytes += frame.len() as u64;
                true
            }
            Err(e) => {
                self.port.tx_wire_errors += 1;
                if !e.is_transient() {
                    tracing::warn!(error = %e, "wire broken: link down");
                    self.set_link_input(LinkInput::WireBroken(true));
                }
                false
            }
        }
    }

    pub(crate) fn set_now(&mut self, now: Duration) {
        if now > self.now {
            self.now = now;
        }
        let ns = u64::try_from(self.now.as_nanos()).unwrap_or(u64::MAX);
        self.clock.store(ns, Ordering::Relaxed);
    }
}

impl DeviceEnv for Core {
    fn dma_read(&mut self, scope: DmaScope, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.read_scoped(dma_scope(scope), addr, buf)
    }
    fn dma_write(&mut self, scope: DmaScope, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.write_scoped(dma_scope(scope), addr, data)
    }
    fn dma_copy(
        &mut self,
        src: DmaScope,
        src_addr: u64,
        dst: DmaScope,
        dst_addr: u64,
        len: usize,
    ) -> Result<(), CopyError> {
        self.copy_scoped(dma_scope(src), src_addr, dma_scope(dst), dst_addr, len)
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.dma.check_range(addr, len)
    }
    fn raise(&mut self, vector: u16) {
        Core::raise(self, vector)
    }
    fn transmit(&mut self, owner: Owner, frame: &[u8]) -> bool {
        let sent = Core::transmit(self, queue_scope(scope_queue::of(owner)), frame);
        if sent && matches!(owner, Owner::Qp(_)) {
            self.port.tx_roce_frames += 1;
        }
        sent
    }
    fn post_event(&mut self, ev: Event) {
        Core::post_event(self, ev)
    }
    fn now(&self) -> Duration {
        self.now
    }
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction> {
        Core::fault(self, point)
    }
}
