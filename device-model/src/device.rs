//! [`Rnic`]: the top-level device. It ties configuration space, BAR0 registers,
//! MSI-X, DMA, the admin queue, the event queue, the Ethernet queues, the verbs
//! engine, the wire and the fault engine together and implements [`PciFunction`].
//!
//! Threading: the monitor calls [`PciFunction`] methods on the vCPU thread and
//! [`Rnic::poll`] periodically (timers, wire receive, delayed faults); all work runs
//! synchronously inside those calls.
//!
//! Structure: [`Rnic`] holds the engines that own guest-visible objects (admin
//! queue, Ethernet, verbs) and a `Core` with everything they share: DMA (with the
//! fault hooks), MSI-X (with the fault hooks), the event queue, the wire, the link
//! and fatal state, counters. Engines reach the core through [`crate::eth::EthEnv`],
//! [`crate::verbs::VerbsEnv`] and [`crate::dma::DmaPort`], all implemented here.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryMmap;

use crate::admin::{AdminCommand, AdminQueue, AdminRegEffect, AdminStatus, STATUS_SUCCESS};
use crate::dma::{faulted_read, faulted_write, Dma, DmaError, DmaPort};
use crate::eth::{EthEnv, Ethernet, MacAddress, QueueParams, RxOutcome, MAX_QUEUES};
use crate::events::{self, Event, EventQueue, PostResult};
use crate::fault::{FaultAction, FaultEngine, FaultPoint, FaultScope, FaultSite};
use crate::irq::InterruptSink;
use crate::msix::Msix;
use crate::pci::{bar_moves, BarKind, BarMove, BarRegion, ConfigSpace, PciFunction};
use crate::regs::{self, admin_error, dev_ctrl, dev_status};
use crate::stats::{self, DeviceCounters, PortStats, RnicStats};
use crate::verbs::{AsyncEvent, DmaScope, Verbs, VerbsEnv, VerbsLimits};
use crate::wire::{FaultyWire, WireBackend, WireClock, WireDecider};

/// Result 0 of the NOP command ("NOP\0").
pub const NOP_RESULT: u32 = 0x4E4F_5000;

/// Admin opcodes of the device core (`0x00..=0x0F`, `0x40..=0x4F`). The verbs engine
/// owns `0x10..=0x3F`.
pub mod op {
    /// No operation; result 0 = `NOP_RESULT`.
    pub const NOP: u8 = 0x00;
    /// Writes the 64-byte device information record to a guest buffer.
    pub const QUERY_DEVICE: u8 = 0x01;
    /// Sets the Ethernet MTU.
    pub const SET_MTU: u8 = 0x02;
    /// Sets the port's MAC address.
    pub const SET_MAC: u8 = 0x03;
    /// Sets the receive filter.
    pub const SET_RX_FILTER: u8 = 0x04;
    /// Loads the multicast address list.
    pub const SET_MULTICAST: u8 = 0x05;
    /// Reports link state and speed.
    pub const QUERY_LINK: u8 = 0x06;
    /// Writes the statistics block to a guest buffer.
    pub const GET_STATS: u8 = 0x07;
    /// Zeroes the guest-visible counters.
    pub const CLEAR_STATS: u8 = 0x08;
    /// Destroys every Ethernet queue and verbs object; MAC/MTU/filter to defaults.
    pub const RESET_FUNCTION: u8 = 0x09;
    /// Creates an Ethernet TX queue.
    pub const CREATE_TXQ: u8 = 0x40;
    /// Destroys an Ethernet TX queue.
    pub const DESTROY_TXQ: u8 = 0x41;
    /// Creates an Ethernet RX queue.
    pub const CREATE_RXQ: u8 = 0x42;
    /// Destroys an Ethernet RX queue.
    pub const DESTROY_RXQ: u8 = 0x43;
}

/// Size of the `QUERY_DEVICE` record.
pub const DEVICE_INFO_SIZE: usize = 64;
/// Link speed reported while the link is up, in Mb/s.
pub const LINK_SPEED_MBPS: u32 = 100_000;
/// Frames taken from the wire per `poll` call at most.
pub const RX_BUDGET: usize = 256;
/// UDP destination port of RoCEv2.
const ROCE_PORT: u16 = 4791;

/// Host-side configuration of one RNIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RnicConfig {
    /// The port's MAC address (after reset), e.g. `"02:7e:57:00:00:01"`.
    pub mac: MacAddress,
    /// The port's IPv4 address for RoCEv2 (after reset), e.g. `"10.77.0.1"`.
    pub ip: Ipv4Addr,
    /// Whether the port has carrier (the link is up while the device is enabled).
    pub carrier: bool,
}

impl Default for RnicConfig {
    fn default() -> Self {
        RnicConfig {
            mac: MacAddress([0x02, 0x7E, 0x57, 0x00, 0x00, 0x01]),
            ip: Ipv4Addr::new(10, 77, 0, 1),
            carrier: true,
        }
    }
}

fn lock(f: &Mutex<FaultEngine>) -> MutexGuard<'_, FaultEngine> {
    // A poisoned lock only means a panic elsewhere; the engine's data stays usable.
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// State shared by every engine of the device.
struct Core {
    dma: Dma,
    msix: Msix,
    faults: Arc<Mutex<FaultEngine>>,
    wire: Option<FaultyWire<Box<dyn WireBackend>>>,
    wire_broken: bool,
    /// Device time in nanoseconds, for the wire's delay clock.
    clock: Arc<AtomicU64>,
    /// Set by the wire's fault decider when a `wire_tx`/`wire_rx` rule answers `fatal`.
    wire_fatal: Arc<AtomicBool>,
    eq: EventQueue,
    now: Duration,
    enabled: bool,
    admin_error: u32,
    carrier: bool,
    link_fault_down: bool,
    link_reported: bool,
    fatal: Option<u32>,
    pending_fatal: Option<u32>,
    delayed_irqs: Vec<(Duration, u16)>,
    port: PortStats,
    counters: DeviceCounters,
}

/// DMA through the core's fault hooks with a fixed fault scope.
struct Scoped<'a> {
    core: &'a mut Core,
    scope: FaultScope,
}

impl DmaPort for Scoped<'_> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.core.read_scoped(self.scope, addr, buf)
    }
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.core.write_scoped(self.scope, addr, data)
    }
}

/// The `queue` field of fault scopes (`docs/device-spec.md` Appendix A.3): one
/// numbering shared by every site, so that a number names one object.
///
/// | value | object |
/// | --- | --- |
/// | `0` ([`ADMIN`](scope_queue::ADMIN)) | the admin queue: its rings and every admin command's buffer |
/// | `1..=0xFFFF` | the QP with that number (QPNs never reach `0x1_0000`) |
/// | [`ETH_RX`](scope_queue::ETH_RX)` \| n` | Ethernet RX queue `n` |
/// | [`ETH_TX`](scope_queue::ETH_TX)` \| n` | Ethernet TX queue `n` |
/// | [`CQ`](scope_queue::CQ)` \| n` | the ring of CQ `n` |
/// | [`EVENT_QUEUE`](scope_queue::EVENT_QUEUE) | the event ring |
pub mod scope_queue {
    use crate::verbs::DmaOwner;

    /// The admin queue (rings, command buffers; the `admin_command` site).
    pub const ADMIN: u32 = 0;
    /// Bit set for Ethernet RX queues (the queue's event handle, too).
    pub const ETH_RX: u32 = 1 << 16;
    /// Bit set for Ethernet TX queues (their event handle is the bare number).
    pub const ETH_TX: u32 = 1 << 17;
    /// Bit set for CQ rings.
    pub const CQ: u32 = 1 << 18;
    /// The event ring.
    pub const EVENT_QUEUE: u32 = 1 << 19;

    /// Scope number of a verbs DMA owner.
    pub const fn of_verbs(owner: DmaOwner) -> u32 {
        match owner {
            DmaOwner::Admin => ADMIN,
            DmaOwner::Qp(qpn) => qpn,
            DmaOwner::Cq(cqn) => CQ | cqn,
        }
    }
}

fn queue_scope(queue: u32) -> FaultScope {
    FaultScope {
        queue: Some(queue),
        ..FaultScope::default()
    }
}

fn admin_scope() -> FaultScope {
    queue_scope(scope_queue::ADMIN)
}

fn verbs_scope(s: DmaScope) -> FaultScope {
    FaultScope {
        queue: Some(scope_queue::of_verbs(s.owner)),
        mr: s.mr,
        ..FaultScope::default()
    }
}

impl Core {
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction> {
        let a = lock(&self.faults).check(&point, self.now);
        if a == Some(FaultAction::Fatal) {
            self.pending_fatal
                .get_or_insert(events::fatal_cause::INJECTED);
        }
        a
    }

    /// One DMA access of `len` bytes at `addr` through fault `site` on behalf of
    /// `scope`: refused while the device is fatal, otherwise done by `access` with
    /// the fault engine's answer. Injected faults and failed accesses are counted.
    fn scoped_access(
        &mut self,
        site: FaultSite,
        scope: FaultScope,
        addr: u64,
        len: usize,
        access: impl FnOnce(&Dma, Option<FaultAction>) -> Result<(), DmaError>,
    ) -> Result<(), DmaError> {
        if self.fatal.is_some() {
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

    fn read_scoped(
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

    fn write_scoped(&mut self, scope: FaultScope, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.scoped_access(FaultSite::DmaWrite, scope, addr, data.len(), |dma, act| {
            faulted_write(dma, act, addr, data)
        })
    }

    /// Raises a vector through the MSI-X fault hook.
    fn raise(&mut self, vector: u16) {
        if self.fatal.is_some() {
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

    fn link_up(&self) -> bool {
        self.enabled
            && self.fatal.is_none()
            && self.carrier
            && !self.link_fault_down
            && !self.wire_broken
    }

    fn update_link(&mut self) {
        let up = self.link_up();
        if up == self.link_reported {
            return;
        }
        self.link_reported = up;
        tracing::info!(up, "link state changed");
        if up {
            self.port.link_up_events += 1;
            self.post_event(Event {
                code: events::code::LINK_UP,
                handle: 0,
                detail: 0,
            });
        } else {
            self.port.link_down_events += 1;
            self.post_event(Event {
                code: events::code::LINK_DOWN,
                handle: 0,
                detail: 0,
            });
        }
    }

    /// Writes an event to the EQ (if any) and raises vector 0.
    fn post_event(&mut self, ev: Event) {
        if self.fatal.is_some() {
            return;
        }
        let mut eq = std::mem::take(&mut self.eq);
        let r = eq.post(
            &mut Scoped {
                core: self,
                scope: queue_scope(scope_queue::EVENT_QUEUE),
            },
            &ev,
        );
        self.eq = eq;
        match r {
            PostResult::Written | PostResult::NoQueue => self.raise(regs::ADMIN_VECTOR),
            PostResult::Overflow => {
                tracing::warn!(code = ev.code, "event queue full: event dropped")
            }
            PostResult::Dma(e) => {
                tracing::warn!(error = %e, "event queue write failed: event queue stopped");
                self.raise(regs::ADMIN_VECTOR);
            }
        }
    }

    /// Sends a frame to the wire. `scope` is the `wire_tx` fault scope: `queue` =
    /// the sending queue in the numbering of [`scope_queue`], the QPN for RoCEv2
    /// frames, `ETH_TX | n` for Ethernet TX queue `n`.
    fn transmit(&mut self, scope: FaultScope, frame: &[u8]) -> bool {
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
                    self.wire_broken = true;
                }
                false
            }
        }
    }

    fn enter_fatal(&mut self, cause: u32) {
        if self.fatal.is_some() {
            return;
        }
        tracing::error!(
            cause,
            "device fatal error: registers read all ones until DEV_CTRL.RESET"
        );
        // Interrupts still pending from before the fatal error are dropped, so the
        // only interrupt a fatal device can still deliver (on unmask) is the one
        // announcing the FATAL event (§13.3).
        self.msix.clear_pending();
        self.post_event(Event {
            code: events::code::FATAL,
            handle: 0,
            detail: cause,
        });
        self.fatal = Some(cause);
        self.counters.fatal_errors += 1;
        self.link_reported = false;
        self.delayed_irqs.clear();
    }

    fn set_now(&mut self, now: Duration) {
        if now > self.now {
            self.now = now;
        }
        let ns = u64::try_from(self.now.as_nanos()).unwrap_or(u64::MAX);
        self.clock.store(ns, Ordering::Relaxed);
    }
}

impl EthEnv for Core {
    fn dma_read(&mut self, queue: u32, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.read_scoped(queue_scope(queue), addr, buf)
    }
    fn dma_write(&mut self, queue: u32, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.write_scoped(queue_scope(queue), addr, data)
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.dma.check_range(addr, len)
    }
    fn transmit(&mut self, queue: u32, frame: &[u8]) -> bool {
        Core::transmit(self, queue_scope(queue), frame)
    }
    fn raise(&mut self, vector: u16) {
        Core::raise(self, vector)
    }
    fn event(&mut self, ev: Event) {
        self.post_event(ev)
    }
}

impl VerbsEnv for Core {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.read_scoped(FaultScope::default(), addr, buf)
    }
    fn dma_write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        self.write_scoped(FaultScope::default(), addr, buf)
    }
    fn dma_read_scoped(
        &mut self,
        scope: DmaScope,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), DmaError> {
        self.read_scoped(verbs_scope(scope), addr, buf)
    }
    fn dma_write_scoped(&mut self, scope: DmaScope, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        self.write_scoped(verbs_scope(scope), addr, buf)
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.dma.check_range(addr, len)
    }
    fn raise_vector(&mut self, vector: u16) {
        self.raise(vector)
    }
    fn send_frame(&mut self, frame: &[u8]) {
        if self.transmit(FaultScope::default(), frame) {
            self.port.tx_roce_frames += 1;
        }
    }
    fn send_frame_from(&mut self, qpn: u32, frame: &[u8]) {
        if self.transmit(queue_scope(qpn), frame) {
            self.port.tx_roce_frames += 1;
        }
    }
    fn now(&self) -> Duration {
        self.now
    }
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction> {
        Core::fault(self, point)
    }
    fn post_async_event(&mut self, ev: AsyncEvent) {
        self.post_event(Event {
            code: ev.code(),
            handle: ev.handle(),
            detail: ev.detail(),
        })
    }
}

/// Whether `frame` is Ethernet II / IPv4 or IPv6 / UDP to port 4791 (optionally
/// behind one 802.1Q tag).
pub fn is_roce_frame(frame: &[u8]) -> bool {
    let be16 = |i: usize| {
        frame
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut off = 12;
    let mut ethertype = be16(off);
    if ethertype == Some(0x8100) {
        off += 4;
        ethertype = be16(off);
    }
    let l3 = off + 2;
    let udp = match ethertype {
        Some(0x0800) => {
            let Some(&vihl) = frame.get(l3) else {
                return false;
            };
            if vihl >> 4 != 4 || frame.get(l3 + 9) != Some(&17) {
                return false;
            }
            l3 + (vihl as usize & 0xF) * 4
        }
        Some(0x86DD) => {
            if frame.get(l3 + 6) != Some(&17) {
                return false;
            }
            l3 + 40
        }
        _ => return false,
    };
    be16(udp + 2) == Some(ROCE_PORT)
}

fn rd_u32(o: &[u8; 56], at: usize) -> u32 {
    u32::from_le_bytes([o[at], o[at + 1], o[at + 2], o[at + 3]])
}

fn rd_u64(o: &[u8; 56], at: usize) -> u64 {
    rd_u32(o, at) as u64 | (rd_u32(o, at + 4) as u64) << 32
}

/// The emulated RDMA NIC.
pub struct Rnic {
    config: RnicConfig,
    pci: ConfigSpace,
    admin: AdminQueue,
    admin_delayed: Option<(Duration, AdminCommand)>,
    eth: Ethernet,
    verbs: Verbs,
    core: Core,
}

impl std::fmt::Debug for Rnic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rnic")
            .field("config", &self.config)
            .field("pci", &self.pci)
            .field("enabled", &self.core.enabled)
            .field("admin_error", &self.core.admin_error)
            .field("fatal", &self.core.fatal)
            .finish()
    }
}

impl Rnic {
    /// A powered-on RNIC over guest memory `mem`, raising interrupts through `irq`.
    pub fn new(config: RnicConfig, mem: GuestMemoryMmap, irq: Arc<dyn InterruptSink>) -> Rnic {
        let mut verbs = Verbs::new(VerbsLimits::default());
        verbs.set_port_addr(config.mac.0, config.ip.octets());
        Rnic {
            pci: ConfigSpace::new(),
            admin: AdminQueue::new(),
            admin_delayed: None,
            eth: Ethernet::new(config.mac),
            verbs,
            core: Core {
                dma: Dma::new(mem),
                msix: Msix::new(irq),
                faults: Arc::new(Mutex::new(FaultEngine::new())),
                wire: None,
                wire_broken: false,
                clock: Arc::new(AtomicU64::new(0)),
                wire_fatal: Arc::new(AtomicBool::new(false)),
                eq: EventQueue::new(),
                now: Duration::ZERO,
                enabled: false,
                admin_error: 0,
                carrier: config.carrier,
                link_fault_down: false,
                link_reported: false,
                fatal: None,
                pending_fatal: None,
                delayed_irqs: Vec::new(),
                port: PortStats::default(),
                counters: DeviceCounters::default(),
            },
            config,
        }
    }

    /// The configuration the device was built with.
    pub fn config(&self) -> &RnicConfig {
        &self.config
    }

    /// The configuration space (read-only view).
    pub fn config_space(&self) -> &ConfigSpace {
        &self.pci
    }

    /// The MSI-X block (read-only view).
    pub fn msix(&self) -> &Msix {
        &self.core.msix
    }

    /// The Ethernet function (read-only view).
    pub fn ethernet(&self) -> &Ethernet {
        &self.eth
    }

    /// The verbs engine (read-only view).
    pub fn verbs(&self) -> &Verbs {
        &self.verbs
    }

    /// The fault engine, for the host side (add/remove rules, statistics).
    pub fn faults_mut(&mut self) -> MutexGuard<'_, FaultEngine> {
        lock(&self.core.faults)
    }

    /// A shared handle on the fault engine (the control API may keep it).
    pub fn fault_engine(&self) -> Arc<Mutex<FaultEngine>> {
        self.core.faults.clone()
    }

    /// Connects the port to a wire. The device wraps it in a [`FaultyWire`] driven by
    /// its fault engine (sites `wire_tx`/`wire_rx`) on device time. Replaces any
    /// previous wire.
    pub fn attach_wire(&mut self, wire: Box<dyn WireBackend>) {
        let faults = self.core.faults.clone();
        let clock = self.core.clock.clone();
        let fatal = self.core.wire_fatal.clone();
        let decide: WireDecider = Box::new(move |p, now| {
            let a = lock(&faults).check(p, now);
            if a == Some(FaultAction::Fatal) {
                fatal.store(true, Ordering::Relaxed);
            }
            a
        });
        let clk: WireClock = Box::new(move || Duration::from_nanos(clock.load(Ordering::Relaxed)));
        self.core.wire = Some(FaultyWire::with_clock(wire, decide, clk));
        self.core.wire_broken = false;
        self.finish();
    }

    /// Disconnects the wire (frames are then dropped and counted); returns it.
    pub fn detach_wire(&mut self) -> Option<Box<dyn WireBackend>> {
        let w = self.core.wire.take().map(FaultyWire::into_inner);
        self.finish();
        w
    }

    /// The wire's file descriptor that becomes readable when frames arrive, if any.
    pub fn wire_fd(&self) -> Option<RawFd> {
        self.core.wire.as_ref().and_then(|w| w.raw_fd())
    }

    /// Plugs or unplugs the cable (host side): the link follows.
    pub fn set_carrier(&mut self, carrier: bool) {
        self.core.carrier = carrier;
        self.finish();
    }

    /// Whether `DEV_STATUS.LINK_UP` is set.
    pub fn link_up(&self) -> bool {
        self.core.link_up()
    }

    /// Puts the device in the fatal state now (host side), as the `device` fault would.
    pub fn inject_fatal(&mut self) {
        self.core.enter_fatal(events::fatal_cause::INJECTED);
    }

    /// The fatal cause, if the device is in the fatal state.
    pub fn fatal(&self) -> Option<u32> {
        self.core.fatal
    }

    /// Device time of the last `poll`.
    pub fn now(&self) -> Duration {
        self.core.now
    }

    /// The earliest device time at which `poll` has delayed work to do (delayed
    /// interrupts, a delayed admin command, delayed frames), if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        let irq = self.core.delayed_irqs.iter().map(|(t, _)| *t).min();
        let adm = self.admin_delayed.as_ref().map(|(t, _)| *t);
        let wire = self.core.wire.as_ref().and_then(|w| w.next_deadline());
        [irq, adm, wire].into_iter().flatten().min()
    }

    /// Every counter of the device (port, core, Ethernet queues, MSI-X, events,
    /// verbs per QP/CQ, faults).
    pub fn stats(&self) -> RnicStats {
        let (eth_tx, eth_rx) = self.eth.queue_stats();
        RnicStats {
            port: self.core.port,
            device: self.core.counters,
            eth_tx,
            eth_rx,
            msix: self.core.msix.counters(),
            events: self.core.eq.counters(),
            verbs: self.verbs.stats(),
            faults: lock(&self.core.faults).stats(),
        }
    }

    /// `DEV_STATUS` as the driver would read it (were the device not fatal).
    pub fn dev_status(&self) -> u32 {
        let mut s = 0;
        if self.ready() {
            s |= dev_status::READY;
        }
        if self.core.fatal.is_some() {
            s |= dev_status::FATAL;
        }
        if self.core.admin_error != 0 {
            s |= dev_status::ADMIN_ERR;
        }
        if self.core.link_up() {
            s |= dev_status::LINK_UP;
        }
        if self.core.eq.overflowed() {
            s |= dev_status::EQ_OVERFLOW;
        }
        if self.core.eq.failed() {
            s |= dev_status::EQ_ERROR;
        }
        s
    }

    fn ready(&self) -> bool {
        self.core.enabled
            && self.admin.is_live()
            && self.core.admin_error == 0
            && self.core.fatal.is_none()
    }

    /// Time-driven work; the monitor calls this periodically with a monotonic device
    /// time (and when [`Rnic::next_deadline`] passes or the wire fd is readable):
    /// `device` and `link` fault checks, delayed interrupts and admin commands, wire
    /// receive (up to [`RX_BUDGET`] frames), verbs timers.
    pub fn poll(&mut self, now: Duration) {
        self.core.set_now(now);
        let now = self.core.now;
        if self.core.fatal.is_some() {
            self.drain_wire();
            return;
        }
        self.core.fault(FaultPoint::new(FaultSite::Device));
        match self.core.fault(FaultPoint::new(FaultSite::Link)) {
            Some(FaultAction::LinkDown) => self.core.link_fault_down = true,
            Some(FaultAction::LinkUp) => self.core.link_fault_down = false,
            _ => {}
        }
        self.finish();
        if self.core.fatal.is_some() {
            return;
        }
        let mut due = Vec::new();
        self.core.delayed_irqs.retain(|&(t, v)| {
            if t <= now {
                due.push(v);
                false
            } else {
                true
            }
        });
        for v in due {
            self.core.msix.raise(v);
        }
        if self.admin_delayed.as_ref().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, cmd)) = self.admin_delayed.take() {
                if self.ready() {
                    self.run_command(&cmd);
                }
            }
        }
        if let Some(w) = self.core.wire.as_mut() {
            w.poll();
        }
        for _ in 0..RX_BUDGET {
            let Some(w) = self.core.wire.as_mut() else {
                break;
            };
            match w.try_recv() {
                Ok(Some(frame)) => self.receive(&frame),
                Ok(None) => break,
                Err(e) => {
                    self.core.port.rx_wire_errors += 1;
                    if !e.is_transient() {
                        tracing::warn!(error = %e, "wire broken: link down");
                        self.core.wire_broken = true;
                        break;
                    }
                }
            }
        }
        if self.core.enabled {
            self.verbs.poll(&mut self.core);
        }
        if self.ready() && self.admin.has_work() {
            self.run_admin();
        }
        self.finish();
    }

    fn drain_wire(&mut self) {
        if let Some(w) = self.core.wire.as_mut() {
            for _ in 0..RX_BUDGET {
                match w.try_recv() {
                    Ok(Some(_)) => self.core.port.rx_dropped_link_down += 1,
                    _ => break,
                }
            }
        }
    }

    /// Applies a fatal error requested during the operation, then the link state.
    fn finish(&mut self) {
        if self.core.wire_fatal.swap(false, Ordering::Relaxed) {
            self.core
                .pending_fatal
                .get_or_insert(events::fatal_cause::INJECTED);
        }
        if let Some(c) = self.core.pending_fatal.take() {
            self.core.enter_fatal(c);
        }
        self.core.update_link();
    }

    fn receive(&mut self, frame: &[u8]) {
        self.core.port.rx_frames += 1;
        self.core.port.rx_bytes += frame.len() as u64;
        if !self.core.link_up() {
            self.core.port.rx_dropped_link_down += 1;
            return;
        }
        let dst = frame.get(0..6);
        let ours = dst == Some(&self.eth.mac().0[..]) || dst == Some(&self.verbs.port().mac[..]);
        if ours && is_roce_frame(frame) {
            self.core.port.rx_roce_frames += 1;
            self.verbs.receive_frame(&mut self.core, frame);
            return;
        }
        match self.eth.receive(&mut self.core, frame) {
            RxOutcome::Delivered(_) | RxOutcome::Error => {}
            RxOutcome::Filtered => p_inc(&mut self.core.port.rx_dropped_filter),
            RxOutcome::NoQueue => p_inc(&mut self.core.port.rx_dropped_no_queue),
            RxOutcome::NoBuffer => p_inc(&mut self.core.port.rx_dropped_no_buffer),
            RxOutcome::TooLong => p_inc(&mut self.core.port.rx_dropped_too_long),
            RxOutcome::Runt => p_inc(&mut self.core.port.rx_runts),
        }
    }

    /// Device reset (`DEV_CTRL.RESET`, or `ENABLE` 1→0): §13.1.
    pub fn device_reset(&mut self) {
        tracing::debug!("device reset");
        self.admin = AdminQueue::new();
        self.admin_delayed = None;
        self.eth.reset();
        self.verbs.reset();
        self.verbs
            .set_port_addr(self.config.mac.0, self.config.ip.octets());
        let c = &mut self.core;
        c.enabled = false;
        c.admin_error = 0;
        c.fatal = None;
        c.pending_fatal = None;
        c.eq = EventQueue::new();
        c.delayed_irqs.clear();
        c.link_reported = false;
        c.msix.clear_pending();
        c.counters.resets += 1;
    }

    /// PCI Function Level Reset: device reset plus configuration space and MSI-X.
    pub fn function_level_reset(&mut self) {
        tracing::debug!("function level reset");
        self.device_reset();
        self.pci.reset();
        self.core.msix.reset();
        self.core.dma.set_bus_master(false);
        self.core.dma.set_excluded(Vec::new());
        self.core.counters.function_level_resets += 1;
    }

    fn set_admin_error(&mut self, cause: u32) {
        tracing::warn!(cause, "admin queue error");
        if self.core.admin_error == 0 {
            self.core.admin_error = cause;
        }
        self.core.counters.admin_queue_errors += 1;
        self.admin.halt();
        // A command held back by a `delay` fault dies with the queue: its
        // completion could never be written (device-spec.md Appendix A).
        self.admin_delayed = None;
        self.core.raise(regs::ADMIN_VECTOR);
    }

    fn reg_read(&mut self, offset: u64) -> u32 {
        match offset {
            regs::VERSION => regs::VERSION_VALUE,
            regs::CAPS => regs::CAPS_VALUE,
            regs::DEV_CTRL => {
                if self.core.enabled {
                    dev_ctrl::ENABLE
                } else {
                    0
                }
            }
            regs::DEV_STATUS => self.dev_status(),
            regs::ADMIN_ERROR => self.core.admin_error,
            regs::MAC_LO => self.eth.mac().low_u32(),
            regs::MAC_HI => self.eth.mac().high_u32(),
            o => self
                .admin
                .reg_read(o)
                .or_else(|| self.core.eq.reg_read(o))
                .unwrap_or(0),
        }
    }

    fn reg_write(&mut self, offset: u64, value: u32) {
        match offset {
            regs::DEV_CTRL => self.write_dev_ctrl(value),
            regs::EQ_BASE_LO | regs::EQ_BASE_HI | regs::EQ_SIZE | regs::EQ_HEAD => {
                if self.core.eq.reg_write(offset, value).is_err() && self.ready() {
                    self.set_admin_error(admin_error::BAD_EQ);
                }
            }
            o => match self.admin.reg_write(o, value) {
                AdminRegEffect::None => {}
                AdminRegEffect::Error(cause) => {
                    if self.ready() {
                        self.set_admin_error(cause)
                    }
                }
                AdminRegEffect::Process => {
                    if !self.core.dma.bus_master() {
                        self.set_admin_error(admin_error::BUS_MASTER_DISABLED);
                    } else if self.ready() {
                        self.run_admin();
                    }
                }
            },
        }
    }

    fn write_dev_ctrl(&mut self, value: u32) {
        if value & dev_ctrl::RESET != 0 {
            self.device_reset();
            return;
        }
        let en = value & dev_ctrl::ENABLE != 0;
        if en && !self.core.enabled {
            self.core.enabled = true;
            if let Err(cause) = self.admin.enable(&self.core.dma) {
                self.set_admin_error(cause);
            } else if self.core.eq.enable(&self.core.dma).is_err() {
                self.set_admin_error(admin_error::BAD_EQ);
            }
        } else if !en && self.core.enabled {
            self.device_reset();
        }
    }

    /// Processes submissions up to the tail while completion space lasts.
    fn run_admin(&mut self) {
        while self.ready() && self.admin_delayed.is_none() && self.core.pending_fatal.is_none() {
            let mut port = Scoped {
                core: &mut self.core,
                scope: admin_scope(),
            };
            let cmd = match self.admin.fetch(&mut port) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(cause) => {
                    self.set_admin_error(cause);
                    break;
                }
            };
            self.core.counters.admin_commands += 1;
            let point = FaultPoint::new(FaultSite::AdminCommand)
                .queue(scope_queue::ADMIN)
                .opcode(cmd.opcode);
            match self.core.fault(point) {
                Some(FaultAction::NeverComplete) => {
                    self.core.counters.admin_never_completed += 1;
                }
                Some(FaultAction::FailStatus { status }) => {
                    self.post_completion(cmd.id, status, 0, 0);
                }
                Some(FaultAction::Delay { micros }) => {
                    let due = self.core.now.saturating_add(Duration::from_micros(micros));
                    self.admin_delayed = Some((due, cmd));
                }
                Some(FaultAction::Fatal) => {}
                _ => self.run_command(&cmd),
            }
        }
    }

    fn run_command(&mut self, cmd: &AdminCommand) {
        let (status, r0, r1) = match self.execute(cmd) {
            Ok((r0, r1)) => (STATUS_SUCCESS, r0, r1),
            Err(s) => (s, 0, 0),
        };
        tracing::trace!(opcode = cmd.opcode, id = cmd.id, status, "admin command");
        self.post_completion(cmd.id, status, r0, r1);
    }

    fn post_completion(&mut self, id: u16, status: u16, r0: u32, r1: u32) {
        if status != STATUS_SUCCESS {
            self.core.counters.admin_failed += 1;
        }
        let mut port = Scoped {
            core: &mut self.core,
            scope: admin_scope(),
        };
        match self.admin.complete(&mut port, id, status, r0, r1) {
            Ok(()) => self.core.raise(regs::ADMIN_VECTOR),
            Err(cause) => self.set_admin_error(cause),
        }
    }

    fn write_guest(&mut self, addr: u64, data: &[u8]) -> Result<(), u16> {
        self.core
            .write_scoped(admin_scope(), addr, data)
            .map_err(|_| AdminStatus::DmaError.code())
    }

    /// Executes one admin command; `Err` carries the status code.
    fn execute(&mut self, cmd: &AdminCommand) -> Result<(u32, u32), u16> {
        let bad = AdminStatus::InvalidParam.code();
        if cmd.flags != 0 || cmd.reserved != 0 {
            return Err(bad);
        }
        let o = &cmd.operands;
        let st = |r: Result<(), AdminStatus>| r.map(|_| (0, 0)).map_err(AdminStatus::code);
        match cmd.opcode {
            op::NOP => Ok((NOP_RESULT, 0)),
            op::QUERY_DEVICE => {
                let (addr, len) = (rd_u64(o, 0), rd_u32(o, 8));
                if (len as usize) < DEVICE_INFO_SIZE {
                    return Err(bad);
                }
                let info = self.device_info();
                self.write_guest(addr, &info)?;
                Ok((DEVICE_INFO_SIZE as u32, 0))
            }
            op::SET_MTU => st(self.eth.set_mtu(rd_u32(o, 0))),
            op::SET_MAC => {
                let mac = MacAddress([o[0], o[1], o[2], o[3], o[4], o[5]]);
                self.eth.set_mac(mac).map_err(AdminStatus::code)?;
                let ip = self.verbs.port().ip;
                self.verbs.set_port_addr(mac.0, ip);
                Ok((0, 0))
            }
            op::SET_RX_FILTER => st(self.eth.set_filter(rd_u32(o, 0))),
            op::SET_MULTICAST => {
                let (count, addr) = (rd_u32(o, 0) as usize, rd_u64(o, 8));
                if count > crate::eth::MAX_MULTICAST {
                    return Err(bad);
                }
                let mut raw = vec![0u8; count * 8];
                if count > 0 {
                    self.core
                        .read_scoped(admin_scope(), addr, &mut raw)
                        .map_err(|_| AdminStatus::DmaError.code())?;
                }
                let list = raw
                    .chunks_exact(8)
                    .map(|c| MacAddress([c[0], c[1], c[2], c[3], c[4], c[5]]))
                    .collect();
                st(self.eth.set_multicast(list))
            }
            op::QUERY_LINK => {
                if self.core.link_up() {
                    Ok((1, LINK_SPEED_MBPS))
                } else {
                    Ok((0, 0))
                }
            }
            op::GET_STATS => {
                let (addr, len) = (rd_u64(o, 0), rd_u32(o, 8) as usize);
                if len < 8 {
                    return Err(bad);
                }
                let s = self.stats();
                let bytes = stats::encode_guest(&s);
                let total = (bytes.len() - 8) / 8;
                let n = 8 + (len.min(bytes.len()) - 8) / 8 * 8;
                self.write_guest(addr, &bytes[..n])?;
                Ok((n as u32, total as u32))
            }
            op::CLEAR_STATS => {
                self.core.port = PortStats::default();
                self.core.counters = DeviceCounters::default();
                self.core.msix.clear_counters();
                self.core.eq.clear_counters();
                self.eth.clear_stats();
                Ok((0, 0))
            }
            op::RESET_FUNCTION => {
                self.eth.reset();
                self.verbs.reset();
                self.verbs
                    .set_port_addr(self.config.mac.0, self.config.ip.octets());
                Ok((0, 0))
            }
            op::CREATE_TXQ | op::CREATE_RXQ => {
                let p = QueueParams::parse(o);
                self.eth
                    .create(&self.core, cmd.opcode == op::CREATE_RXQ, &p)
                    .map(|q| (q, 0))
                    .map_err(AdminStatus::code)
            }
            op::DESTROY_TXQ | op::DESTROY_RXQ => st(self
                .eth
                .destroy(cmd.opcode == op::DESTROY_RXQ, rd_u32(o, 0))),
            0x10..=0x3F => self
                .verbs
                .admin(&mut self.core, cmd.opcode, o)
                .map_err(|s| s.code()),
            _ => Err(AdminStatus::InvalidOpcode.code()),
        }
    }

    /// The `QUERY_DEVICE` record.
    fn device_info(&self) -> [u8; DEVICE_INFO_SIZE] {
        let mut b = [0u8; DEVICE_INFO_SIZE];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0, &regs::VERSION_VALUE.to_le_bytes());
        put(4, &regs::CAPS_VALUE.to_le_bytes());
        put(8, &self.eth.mac().0);
        put(16, &self.eth.mtu().to_le_bytes());
        put(20, &crate::eth::MIN_MTU.to_le_bytes());
        put(24, &crate::eth::MAX_MTU.to_le_bytes());
        put(28, &(MAX_QUEUES as u16).to_le_bytes());
        put(30, &(MAX_QUEUES as u16).to_le_bytes());
        put(32, &crate::eth::RING_MAX.to_le_bytes());
        put(36, &regs::MSIX_VECTORS.to_le_bytes());
        put(40, &regs::ADMIN_RING_MAX.to_le_bytes());
        put(44, &regs::ADMIN_RING_MAX.to_le_bytes());
        put(48, &LINK_SPEED_MBPS.to_le_bytes());
        put(52, &(crate::eth::MAX_MULTICAST as u32).to_le_bytes());
        put(56, &self.eth.filter().to_le_bytes());
        put(60, &self.verbs.port().ip);
        b
    }

    fn apply_config_effects(&mut self, fx: crate::pci::ConfigEffects) {
        if fx.flr {
            self.function_level_reset();
            return;
        }
        if fx.command_changed {
            self.core.dma.set_bus_master(self.pci.bus_master());
        }
        if fx.bars_changed {
            let ranges = self
                .pci
                .bar_regions()
                .iter()
                .map(|r| (r.address, r.size))
                .collect();
            self.core.dma.set_excluded(ranges);
        }
        if fx.msix_control_changed {
            let (en, mask) = self.pci.msix_control();
            self.core.msix.set_control(en, mask);
        }
    }

    fn decoding(&self) -> bool {
        self.pci.memory_enabled() && self.pci.power_state() == 0
    }

    fn bar0_read(&mut self, offset: u64) -> u32 {
        if self.core.fatal.is_some() {
            return 0xFFFF_FFFF;
        }
        if offset < regs::CONTROL_END {
            self.reg_read(offset)
        } else if offset < crate::eth::db::END {
            self.eth.doorbell_read(offset)
        } else {
            0
        }
    }

    fn bar0_write(&mut self, offset: u64, value: u32) {
        if self.core.fatal.is_some() {
            if offset == regs::DEV_CTRL && value & dev_ctrl::RESET != 0 {
                self.device_reset();
            }
            return;
        }
        if offset < regs::CONTROL_END {
            self.reg_write(offset, value);
        } else if !self.core.enabled {
            // Doorbells of a disabled device are ignored.
        } else if offset < crate::eth::db::END {
            self.eth.doorbell_write(&mut self.core, offset, value);
        } else {
            self.verbs.doorbell(&mut self.core, offset, value);
        }
        self.finish();
    }
}

fn p_inc(c: &mut u64) {
    *c += 1;
}

impl PciFunction for Rnic {
    fn config_read(&mut self, offset: u16) -> u32 {
        self.pci.read(offset)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        let before = self.decoded_bars();
        let fx = self.pci.write(offset, data);
        self.apply_config_effects(fx);
        bar_moves(&before, &self.decoded_bars())
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if !self.decoding() {
            data.fill(0xFF);
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= regs::BAR0_SIZE {
                    data.fill(0xFF);
                    return;
                }
                let v = self.bar0_read(offset);
                data.copy_from_slice(&v.to_le_bytes());
            }
            2 if offset < regs::BAR2_SIZE => self.core.msix.bar_read(offset, data),
            _ => data.fill(0xFF),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if !self.decoding() {
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= regs::BAR0_SIZE {
                    return;
                }
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.bar0_write(offset, v);
            }
            2 if offset < regs::BAR2_SIZE => self.core.msix.bar_write(offset, data),
            _ => {}
        }
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.pci.bar_regions()
    }

    fn decoded_bars(&self) -> Vec<BarRegion> {
        if !self.decoding() {
            return Vec::new();
        }
        let mut bars = self.pci.bar_regions();
        bars.retain(|r| r.kind != BarKind::Io);
        bars
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::admin::AdminCompletion;
    use crate::device::op::NOP as OP_NOP;
    use crate::dma::test_memory;
    use crate::irq::RecordingSink;
    use crate::regs::admin_error;
    use vm_memory::{Bytes, GuestAddress};

    pub(crate) const RAM: usize = 0x10_0000;
    pub(crate) const ASQ: u64 = 0x1_0000;
    pub(crate) const ACQ: u64 = 0x2_0000;

    pub(crate) struct Harness {
        pub dev: Rnic,
        pub sink: Arc<RecordingSink>,
        pub mem: GuestMemoryMmap,
        pub sq_tail: u32,
        pub sq_size: u32,
        pub cq_head: u32,
        pub cq_size: u32,
        pub phase: bool,
    }

    impl Harness {
        /// PCI set up (memory, bus master, BARs, MSI-X vector 0 unmasked and enabled)
        /// but the device not enabled.
        pub fn new() -> Harness {
            let mem = test_memory(RAM);
            let sink = Arc::new(RecordingSink::new());
            let mut dev = Rnic::new(RnicConfig::default(), mem.clone(), sink.clone());
            dev.config_write(0x10, &0xC000_0000u32.to_le_bytes());
            dev.config_write(0x18, &0xC001_0000u32.to_le_bytes());
            dev.config_write(4, &6u16.to_le_bytes());
            for v in 0..16u64 {
                dev.bar_write(2, 16 * v, &0xFEE0_0000u64.to_le_bytes());
                dev.bar_write(2, 16 * v + 8, &(0x30 + v as u32).to_le_bytes());
                dev.bar_write(2, 16 * v + 12, &0u32.to_le_bytes());
            }
            dev.config_write(crate::pci::MSIX_CAP as u16 + 2, &0x8000u16.to_le_bytes());
            Harness {
                dev,
                sink,
                mem,
                sq_tail: 0,
                sq_size: 0,
                cq_head: 0,
                cq_size: 0,
                phase: true,
            }
        }

        /// `new` plus admin rings of the given sizes, enabled.
        pub fn enabled(sq: u32, cq: u32) -> Harness {
            let mut h = Harness::new();
            h.setup_rings(ASQ, sq, ACQ, cq);
            h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
            assert_eq!(
                h.read(regs::DEV_STATUS) & dev_status::READY,
                dev_status::READY
            );
            h
        }

        pub fn setup_rings(&mut self, asq: u64, sq: u32, acq: u64, cq: u32) {
            self.write(regs::ASQ_BASE_LO, asq as u32);
            self.write(regs::ASQ_BASE_HI, (asq >> 32) as u32);
            self.write(regs::ASQ_SIZE, sq);
            self.write(regs::ACQ_BASE_LO, acq as u32);
            self.write(regs::ACQ_BASE_HI, (acq >> 32) as u32);
            self.write(regs::ACQ_SIZE, cq);
            self.sq_size = sq;
            self.cq_size = cq;
        }

        pub fn read(&mut self, off: u64) -> u32 {
            let mut b = [0u8; 4];
            self.dev.bar_read(0, off, &mut b);
            u32::from_le_bytes(b)
        }

        pub fn write(&mut self, off: u64, v: u32) {
            self.dev.bar_write(0, off, &v.to_le_bytes());
        }

        /// Places a command at the tail (without ringing).
        pub fn push(&mut self, cmd: &AdminCommand) {
            let addr = ASQ + 64 * self.sq_tail as u64;
            self.mem
                .write_slice(&cmd.to_bytes(), GuestAddress(addr))
                .unwrap();
            self.sq_tail = (self.sq_tail + 1) % self.sq_size;
        }

        pub fn ring(&mut self) {
            let t = self.sq_tail;
            self.write(regs::ASQ_TAIL, t);
        }

        /// Submits one command and returns its completion (releasing the slot).
        pub fn submit(&mut self, cmd: &AdminCommand) -> AdminCompletion {
            self.push(cmd);
            self.ring();
            self.pop().expect("a completion")
        }

        /// The next completion if its phase matches; releases it through ACQ_HEAD.
        pub fn pop(&mut self) -> Option<AdminCompletion> {
            let c = self.peek_cq(self.cq_head);
            if c.phase != self.phase {
                return None;
            }
            self.cq_head = (self.cq_head + 1) % self.cq_size;
            if self.cq_head == 0 {
                self.phase = !self.phase;
            }
            let h = self.cq_head;
            self.write(regs::ACQ_HEAD, h);
            Some(c)
        }

        pub fn peek_cq(&self, i: u32) -> AdminCompletion {
            let mut b = [0u8; 16];
            self.mem
                .read_slice(&mut b, GuestAddress(ACQ + 16 * i as u64))
                .unwrap();
            AdminCompletion::from_bytes(&b)
        }
    }

    #[test]
    fn register_reset_values() {
        let mut h = Harness::new();
        assert_eq!(h.read(regs::VERSION), 0x0001_0000);
        assert_eq!(h.read(regs::CAPS), regs::CAPS_VALUE);
        for r in [
            regs::DEV_CTRL,
            regs::DEV_STATUS,
            regs::ADMIN_ERROR,
            regs::ASQ_BASE_LO,
            regs::ASQ_BASE_HI,
            regs::ASQ_SIZE,
            regs::ACQ_BASE_LO,
            regs::ACQ_BASE_HI,
            regs::ACQ_SIZE,
            regs::ASQ_TAIL,
            regs::ASQ_HEAD,
            regs::ACQ_HEAD,
            regs::ACQ_TAIL,
        ] {
            assert_eq!(h.read(r), 0, "register {r:#x}");
        }
        assert_eq!(h.read(regs::MAC_LO), 0x0057_7E02);
        assert_eq!(h.read(regs::MAC_HI), 0x0100);
        // RO registers ignore writes; bad widths read all ones.
        h.write(regs::VERSION, 5);
        h.write(regs::DEV_STATUS, 0xF);
        h.write(regs::ASQ_HEAD, 3);
        assert_eq!(h.read(regs::VERSION), 0x0001_0000);
        assert_eq!(h.read(regs::DEV_STATUS), 0);
        assert_eq!(h.read(regs::ASQ_HEAD), 0);
        let mut b = [0u8; 2];
        h.dev.bar_read(0, 0, &mut b);
        assert_eq!(b, [0xFF; 2]);
        let mut b = [0u8; 4];
        h.dev.bar_read(0, 2, &mut b);
        assert_eq!(b, [0xFF; 4]);
        h.dev.bar_read(0, 0x10000, &mut b);
        assert_eq!(b, [0xFF; 4]);
        h.dev.bar_read(4, 0, &mut b);
        assert_eq!(b, [0xFF; 4]);
    }

    #[test]
    fn memory_decode_gated_by_command() {
        let mut h = Harness::new();
        h.dev.config_write(4, &0u16.to_le_bytes());
        assert_eq!(h.read(regs::VERSION), 0xFFFF_FFFF);
        h.write(regs::ASQ_SIZE, 4);
        h.dev.config_write(4, &6u16.to_le_bytes());
        assert_eq!(h.read(regs::ASQ_SIZE), 0);
    }

    #[test]
    fn nop_completion_phase_and_vector() {
        let mut h = Harness::enabled(4, 4);
        h.sink.take();
        let c = h.submit(&AdminCommand::new(OP_NOP, 0x1234));
        assert_eq!(
            c,
            AdminCompletion {
                result0: NOP_RESULT,
                result1: 0,
                id: 0x1234,
                sq_head: 1,
                status: 0,
                phase: true
            }
        );
        assert_eq!(h.sink.triggers(), vec![0]);
        assert_eq!(h.read(regs::ASQ_HEAD), 1);
        assert_eq!(h.read(regs::ACQ_TAIL), 1);
        // Raw bytes at ACQ[0]: id at 8, phase at 14.
        let mut raw = [0u8; 16];
        h.mem.read_slice(&mut raw, GuestAddress(ACQ)).unwrap();
        assert_eq!(&raw[0..4], &NOP_RESULT.to_le_bytes());
        assert_eq!(&raw[8..10], &0x1234u16.to_le_bytes());
        assert_eq!(raw[14], 1);
    }

    #[test]
    fn phase_flips_on_wrap() {
        let mut h = Harness::enabled(4, 4);
        for i in 0..10u16 {
            let c = h.submit(&AdminCommand::new(OP_NOP, i));
            assert_eq!(c.id, i);
            assert_eq!(c.phase, (i / 4) % 2 == 0, "completion {i}");
            assert_eq!(c.sq_head as u32, (i as u32 + 1) % 4);
        }
    }

    #[test]
    fn ring_full_never_overwrites() {
        let mut h = Harness::enabled(8, 4);
        for i in 0..6 {
            h.push(&AdminCommand::new(OP_NOP, i));
        }
        h.sink.take();
        h.ring();
        // 4-entry completion ring: 3 completions, then back-pressure.
        assert_eq!(h.read(regs::ACQ_TAIL), 3);
        assert_eq!(h.read(regs::ASQ_HEAD), 3);
        assert_eq!(h.sink.trigger_count(0), 3);
        let mut ids = Vec::new();
        while let Some(c) = h.pop() {
            ids.push(c.id);
        }
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(h.read(regs::ASQ_HEAD), 6);
    }

    #[test]
    fn invalid_opcode_and_reserved_fields() {
        let mut h = Harness::enabled(4, 4);
        assert_eq!(
            h.submit(&AdminCommand::new(0xEE, 1)).status,
            AdminStatus::InvalidOpcode.code()
        );
        let mut c = AdminCommand::new(OP_NOP, 2);
        c.flags = 1;
        assert_eq!(h.submit(&c).status, AdminStatus::InvalidParam.code());
        assert_eq!(
            h.read(regs::DEV_STATUS) & dev_status::READY,
            dev_status::READY
        );
    }

    pub(crate) fn expect_admin_err(h: &mut Harness, cause: u32) {
        assert_eq!(
            h.read(regs::DEV_STATUS) & (dev_status::READY | dev_status::ADMIN_ERR),
            dev_status::ADMIN_ERR
        );
        assert_eq!(h.read(regs::ADMIN_ERROR), cause);
        assert!(h.sink.trigger_count(0) >= 1, "vector 0 raised");
    }

    #[test]
    fn bad_ring_configuration() {
        let cases: [(u64, u32, u64, u32, u32); 6] = [
            (ASQ + 8, 4, ACQ, 4, admin_error::BAD_ASQ),
            (RAM as u64 - 64, 4, ACQ, 4, admin_error::BAD_ASQ),
            (0x4000_0000, 4, ACQ, 4, admin_error::BAD_ASQ),
            (ASQ, 4, ACQ + 4, 4, admin_error::BAD_ACQ),
            (ASQ, 4, u64::MAX - 15, 4, admin_error::BAD_ACQ),
            (ASQ, 6, ACQ, 4, admin_error::BAD_SIZE),
        ];
        for (asq, sq, acq, cq, cause) in cases {
            let mut h = Harness::new();
            h.setup_rings(asq, sq, acq, cq);
            h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
            expect_admin_err(&mut h, cause);
            // Doorbells are ignored; reset clears everything.
            h.write(regs::ASQ_TAIL, 1);
            h.write(regs::DEV_CTRL, dev_ctrl::RESET);
            assert_eq!(h.read(regs::DEV_STATUS), 0);
            assert_eq!(h.read(regs::ADMIN_ERROR), 0);
            assert_eq!(h.read(regs::ASQ_SIZE), 0);
        }
        // Admin ring placed on the device's own BAR.
        let mut h = Harness::new();
        h.setup_rings(0xC000_0000, 4, ACQ, 4);
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        expect_admin_err(&mut h, admin_error::BAD_ASQ);
    }

    #[test]
    fn bus_master_off_doorbell() {
        let mut h = Harness::enabled(4, 4);
        h.dev.config_write(4, &2u16.to_le_bytes());
        h.push(&AdminCommand::new(OP_NOP, 1));
        h.ring();
        expect_admin_err(&mut h, admin_error::BUS_MASTER_DISABLED);
        assert_eq!(h.read(regs::ACQ_TAIL), 0);
    }

    #[test]
    fn bad_doorbell_values() {
        let mut h = Harness::enabled(4, 4);
        h.write(regs::ASQ_TAIL, 9);
        expect_admin_err(&mut h, admin_error::BAD_TAIL);
        let mut h = Harness::enabled(4, 4);
        h.write(regs::ACQ_HEAD, 2);
        expect_admin_err(&mut h, admin_error::BAD_HEAD);
    }

    #[test]
    fn reset_and_reenable() {
        let mut h = Harness::enabled(4, 4);
        h.submit(&AdminCommand::new(OP_NOP, 1));
        h.write(regs::DEV_CTRL, 0);
        assert_eq!(h.read(regs::DEV_STATUS), 0);
        assert_eq!(h.read(regs::ASQ_HEAD), 0);
        // Bring it up again from scratch.
        h.mem.write_slice(&[0u8; 64], GuestAddress(ACQ)).unwrap();
        h.setup_rings(ASQ, 4, ACQ, 4);
        h.sq_tail = 0;
        h.cq_head = 0;
        h.phase = true;
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        assert_eq!(h.submit(&AdminCommand::new(OP_NOP, 7)).id, 7);
        assert_ne!(h.read(regs::DEV_STATUS) & dev_status::LINK_UP, 0);
    }

    #[test]
    fn masked_vector_then_unmask_delivers_admin_completion() {
        let mut h = Harness::enabled(4, 4);
        h.dev.bar_write(2, 12, &1u32.to_le_bytes());
        h.sink.take();
        h.submit(&AdminCommand::new(OP_NOP, 1));
        assert!(h.sink.triggers().is_empty());
        assert_eq!(h.dev.msix().pending_bits(), 1);
        h.dev.bar_write(2, 12, &0u32.to_le_bytes());
        assert_eq!(h.sink.triggers(), vec![0]);
        // Device reset drops pending interrupts.
        h.dev.bar_write(2, 12, &1u32.to_le_bytes());
        h.submit(&AdminCommand::new(OP_NOP, 2));
        h.write(regs::DEV_CTRL, dev_ctrl::RESET);
        assert_eq!(h.dev.msix().pending_bits(), 0);
    }

    #[test]
    fn flr_resets_config_and_msix() {
        let mut h = Harness::enabled(4, 4);
        h.dev
            .config_write(crate::pci::PCIE_CAP as u16 + 8, &0x8000u16.to_le_bytes());
        assert_eq!(h.dev.config_read(4) & 0xFFFF, 0);
        assert!(h.dev.bar_regions().is_empty());
        assert!(!h.dev.msix().enabled());
        assert_eq!(h.dev.dev_status(), 0);
    }

    #[test]
    fn config_serde_defaults() {
        let c: RnicConfig = serde_json_like_default();
        assert_eq!(c, RnicConfig::default());
    }

    fn serde_json_like_default() -> RnicConfig {
        // Round-trip through serde's value-less path: deserialize from an empty map.
        use serde::de::value::{Error, MapDeserializer};
        let empty: Vec<(String, String)> = Vec::new();
        RnicConfig::deserialize(MapDeserializer::<_, Error>::new(empty.into_iter())).unwrap()
    }
}

#[cfg(test)]
mod phase2_tests {
    use super::tests::{Harness, ACQ, ASQ};
    use super::*;
    use crate::fault::{FaultRule, Trigger};
    use crate::regs::admin_error;
    use crate::wire::in_process_pair;
    use vm_memory::{Bytes, GuestAddress};

    const EQ: u64 = 0x3_0000;

    fn with_eq(size: u32) -> Harness {
        let mut h = Harness::new();
        h.setup_rings(ASQ, 8, ACQ, 8);
        h.write(regs::EQ_BASE_LO, EQ as u32);
        h.write(regs::EQ_SIZE, size);
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        assert_ne!(h.read(regs::DEV_STATUS) & dev_status::READY, 0);
        h
    }

    fn event(h: &Harness, i: u64) -> (Event, u16, bool) {
        let mut b = [0u8; 16];
        h.mem.read_slice(&mut b, GuestAddress(EQ + 16 * i)).unwrap();
        events::decode(&b)
    }

    fn cmd(opcode: u8, id: u16, f: impl FnOnce(&mut [u8; 56])) -> AdminCommand {
        let mut c = AdminCommand::new(opcode, id);
        f(&mut c.operands);
        c
    }

    fn add_rule(h: &mut Harness, rule: FaultRule) {
        h.dev.faults_mut().add_rule(rule).unwrap();
    }

    #[test]
    fn link_events_on_enable_and_carrier() {
        let mut h = with_eq(8);
        let (ev, seq, phase) = event(&h, 0);
        assert_eq!((ev.code, seq, phase), (events::code::LINK_UP, 0, true));
        assert_ne!(h.read(regs::DEV_STATUS) & dev_status::LINK_UP, 0);
        h.dev.set_carrier(false);
        assert_eq!(event(&h, 1).0.code, events::code::LINK_DOWN);
        assert_eq!(h.read(regs::DEV_STATUS) & dev_status::LINK_UP, 0);
        assert_eq!(h.read(regs::EQ_TAIL), 2);
        h.write(regs::EQ_HEAD, 2);
        assert_eq!(h.read(regs::EQ_HEAD), 2);
        let c = h.submit(&AdminCommand::new(op::QUERY_LINK, 1));
        assert_eq!((c.status, c.result0), (0, 0));
        h.dev.set_carrier(true);
        let c = h.submit(&AdminCommand::new(op::QUERY_LINK, 2));
        assert_eq!((c.result0, c.result1), (1, LINK_SPEED_MBPS));
        // A bad EQ_HEAD stops the admin queue.
        h.write(regs::EQ_HEAD, 7);
        assert_eq!(h.read(regs::ADMIN_ERROR), admin_error::BAD_EQ);
    }

    #[test]
    fn bad_eq_at_enable() {
        let mut h = Harness::new();
        h.setup_rings(ASQ, 4, ACQ, 4);
        h.write(regs::EQ_BASE_LO, EQ as u32 + 8);
        h.write(regs::EQ_SIZE, 4);
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        assert_eq!(h.read(regs::ADMIN_ERROR), admin_error::BAD_EQ);
        assert_eq!(h.read(regs::DEV_STATUS) & dev_status::READY, 0);
    }

    #[test]
    fn fatal_reads_all_ones_until_reset() {
        let mut h = with_eq(8);
        h.sink.take();
        h.dev.inject_fatal();
        let (ev, _, _) = event(&h, 1);
        assert_eq!(
            (ev.code, ev.detail),
            (events::code::FATAL, events::fatal_cause::INJECTED)
        );
        assert_eq!(
            h.sink.triggers(),
            vec![0],
            "vector 0 raised for the FATAL event"
        );
        for r in [
            regs::VERSION,
            regs::DEV_STATUS,
            regs::ADMIN_ERROR,
            regs::ASQ_HEAD,
            0x1000,
            0x2000,
        ] {
            assert_eq!(h.read(r), 0xFFFF_FFFF, "register {r:#x}");
        }
        assert_ne!(h.dev.dev_status() & dev_status::FATAL, 0);
        // Writes other than RESET are ignored, nothing is DMA'd or raised.
        h.push(&AdminCommand::new(op::NOP, 1));
        h.ring();
        h.write(regs::DEV_CTRL, dev_ctrl::ENABLE);
        h.dev.poll(Duration::from_millis(5));
        assert_eq!(h.sink.triggers(), vec![0]);
        assert!(!h.peek_cq(0).phase);
        h.write(regs::DEV_CTRL, dev_ctrl::RESET | dev_ctrl::ENABLE);
        assert_eq!(h.read(regs::DEV_STATUS), 0);
        assert_eq!(h.read(regs::VERSION), regs::VERSION_VALUE);
        assert_eq!(h.dev.stats().device.fatal_errors, 1);
    }

    #[test]
    fn device_and_link_faults_in_poll() {
        let mut h = with_eq(8);
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Link, FaultAction::LinkDown)
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.dev.poll(Duration::from_millis(1));
        assert_eq!(event(&h, 1).0.code, events::code::LINK_DOWN);
        assert!(!h.dev.link_up());
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Link, FaultAction::LinkUp)
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.dev.poll(Duration::from_millis(2));
        assert_eq!(event(&h, 2).0.code, events::code::LINK_UP);
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Device, FaultAction::Fatal),
        );
        h.dev.poll(Duration::from_millis(3));
        assert_eq!(h.dev.fatal(), Some(events::fatal_cause::INJECTED));
        assert_eq!(event(&h, 3).0.code, events::code::FATAL);
        assert_eq!(h.read(regs::DEV_STATUS), 0xFFFF_FFFF);
    }

    #[test]
    fn admin_command_faults() {
        let mut h = with_eq(8);
        let nop = |id| AdminCommand::new(op::NOP, id);
        add_rule(
            &mut h,
            FaultRule::new(
                FaultSite::AdminCommand,
                FaultAction::FailStatus { status: 0x15 },
            )
            .with_trigger(Trigger::Once { nth: 1 }),
        );
        assert_eq!(h.submit(&nop(1)).status, 0x15);
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::AdminCommand, FaultAction::NeverComplete)
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.push(&nop(2));
        h.ring();
        assert!(h.pop().is_none(), "never completes");
        assert_eq!(h.submit(&nop(3)).id, 3);
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::AdminCommand, FaultAction::Delay { micros: 500 })
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.dev.poll(Duration::from_millis(10));
        h.push(&nop(4));
        h.push(&nop(5));
        h.ring();
        assert!(h.pop().is_none());
        assert_eq!(h.dev.next_deadline(), Some(Duration::from_micros(10_500)));
        h.dev.poll(Duration::from_micros(10_400));
        assert!(h.pop().is_none());
        h.dev.poll(Duration::from_micros(10_500));
        assert_eq!(h.pop().map(|c| c.id), Some(4));
        assert_eq!(
            h.pop().map(|c| c.id),
            Some(5),
            "the queue resumes after the delayed command"
        );
        let d = h.dev.stats().device;
        assert_eq!((d.admin_never_completed, d.admin_failed), (1, 1));
    }

    /// A command held back by a `delay` fault must not run once the admin queue
    /// has halted on an error: its completion could never be written, so running it
    /// would create an object the driver is never told about.
    #[test]
    fn delayed_command_is_discarded_when_the_queue_halts() {
        let mut h = Harness::enabled(4, 4);
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::AdminCommand, FaultAction::Delay { micros: 100 })
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.push(&AdminCommand::new(crate::verbs::abi::op::CREATE_PD, 1));
        h.ring();
        assert!(h.pop().is_none(), "held back by the delay");
        h.write(regs::ASQ_TAIL, 9);
        super::tests::expect_admin_err(&mut h, admin_error::BAD_TAIL);
        h.dev.poll(Duration::from_millis(1));
        assert!(h.pop().is_none());
        assert_eq!(h.dev.next_deadline(), None, "nothing left to run");
        assert_eq!(
            h.dev.stats().verbs.pds,
            0,
            "the delayed CREATE_PD never ran"
        );
    }

    #[test]
    fn msix_faults() {
        let mut h = with_eq(0);
        h.sink.take();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Msix, FaultAction::Drop)
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.submit(&AdminCommand::new(op::NOP, 1));
        assert!(h.sink.triggers().is_empty(), "dropped");
        assert_eq!(
            h.dev.msix().pending_bits(),
            0,
            "a dropped interrupt leaves no PBA bit"
        );
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Msix, FaultAction::Duplicate)
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.submit(&AdminCommand::new(op::NOP, 2));
        assert_eq!(h.sink.take().len(), 2);
        h.dev.faults_mut().clear();
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::Msix, FaultAction::Delay { micros: 100 })
                .with_trigger(Trigger::Once { nth: 1 }),
        );
        h.submit(&AdminCommand::new(op::NOP, 3));
        assert!(h.sink.triggers().is_empty());
        h.dev.poll(Duration::from_micros(100));
        assert_eq!(h.sink.triggers(), vec![0]);
        let d = h.dev.stats().device;
        assert_eq!((d.msix_dropped, d.msix_extra, d.msix_delayed), (1, 1, 1));
    }

    #[test]
    fn dma_read_fault_on_admin_ring() {
        let mut h = with_eq(0);
        add_rule(
            &mut h,
            FaultRule::new(FaultSite::DmaRead, FaultAction::DmaError),
        );
        h.push(&AdminCommand::new(op::NOP, 1));
        h.ring();
        assert_eq!(h.read(regs::ADMIN_ERROR), admin_error::DMA_ERROR);
        assert_eq!(h.read(regs::DEV_STATUS) & dev_status::READY, 0);
    }

    #[test]
    fn dma_write_corruption_of_completion() {
        let mut h = with_eq(0);
        add_rule(
            &mut h,
            FaultRule::new(
                FaultSite::DmaWrite,
                FaultAction::Corrupt {
                    offset: 0,
                    mask: 0xFF,
                },
            )
            .with_trigger(Trigger::Once { nth: 1 }),
        );
        let c = h.submit(&AdminCommand::new(op::NOP, 1));
        assert_eq!(c.result0, NOP_RESULT ^ 0xFF);
    }

    #[test]
    fn query_device_and_port_commands() {
        let mut h = with_eq(0);
        let buf = 0x5_0000u64;
        let c = h.submit(&cmd(op::QUERY_DEVICE, 1, |o| {
            o[0..8].copy_from_slice(&buf.to_le_bytes());
            o[8..12].copy_from_slice(&64u32.to_le_bytes());
        }));
        assert_eq!((c.status, c.result0), (0, 64));
        let mut info = [0u8; 64];
        h.mem.read_slice(&mut info, GuestAddress(buf)).unwrap();
        assert_eq!(&info[0..4], &regs::VERSION_VALUE.to_le_bytes());
        assert_eq!(&info[8..14], &RnicConfig::default().mac.0);
        assert_eq!(&info[16..20], &1500u32.to_le_bytes());
        assert_eq!(&info[60..64], &[10, 77, 0, 1]);
        let short = h.submit(&cmd(op::QUERY_DEVICE, 2, |o| o[8] = 63));
        assert_eq!(short.status, AdminStatus::InvalidParam.code());
        let outside = h.submit(&cmd(op::QUERY_DEVICE, 3, |o| {
            o[0..8].copy_from_slice(&0x7000_0000u64.to_le_bytes());
            o[8] = 64;
        }));
        assert_eq!(outside.status, AdminStatus::DmaError.code());
        assert_eq!(
            h.submit(&cmd(op::SET_MTU, 4, |o| o[0..4]
                .copy_from_slice(&9001u32.to_le_bytes())))
                .status,
            2
        );
        assert_eq!(
            h.submit(&cmd(op::SET_MTU, 5, |o| o[0..4]
                .copy_from_slice(&9000u32.to_le_bytes())))
                .status,
            0
        );
        assert_eq!(h.dev.ethernet().mtu(), 9000);
        let mac = [0x02, 1, 2, 3, 4, 5];
        assert_eq!(
            h.submit(&cmd(op::SET_MAC, 6, |o| o[0..6].copy_from_slice(&mac)))
                .status,
            0
        );
        assert_eq!(h.read(regs::MAC_LO), u32::from_le_bytes([2, 1, 2, 3]));
        assert_eq!(h.dev.verbs().port().mac, mac);
        assert_eq!(
            h.submit(&cmd(op::SET_MAC, 7, |o| o[0] = 1)).status,
            2,
            "multicast MAC"
        );
        assert_eq!(
            h.submit(&cmd(op::SET_RX_FILTER, 8, |o| o[0] = 0x1F)).status,
            0
        );
        assert_eq!(
            h.submit(&cmd(op::SET_RX_FILTER, 9, |o| o[0] = 0x20)).status,
            2
        );
        h.mem
            .write_slice(&[1, 0, 0x5E, 0, 0, 1, 0, 0], GuestAddress(buf))
            .unwrap();
        let mc = h.submit(&cmd(op::SET_MULTICAST, 10, |o| {
            o[0] = 1;
            o[8..16].copy_from_slice(&buf.to_le_bytes());
        }));
        assert_eq!(mc.status, 0);
        assert_eq!(
            h.submit(&cmd(op::SET_MULTICAST, 11, |o| o[0] = 65)).status,
            2
        );
        assert_eq!(
            h.submit(&AdminCommand::new(0x4F, 12)).status,
            AdminStatus::InvalidOpcode.code()
        );
        // RESET_FUNCTION restores the defaults.
        assert_eq!(
            h.submit(&AdminCommand::new(op::RESET_FUNCTION, 13)).status,
            0
        );
        assert_eq!(h.dev.ethernet().mtu(), 1500);
        assert_eq!(h.dev.ethernet().mac(), RnicConfig::default().mac);
    }

    #[test]
    fn get_and_clear_stats() {
        let mut h = with_eq(0);
        h.submit(&AdminCommand::new(op::NOP, 1));
        let buf = 0x5_0000u64;
        let c = h.submit(&cmd(op::GET_STATS, 2, |o| {
            o[0..8].copy_from_slice(&buf.to_le_bytes());
            o[8..12].copy_from_slice(&4096u32.to_le_bytes());
        }));
        let total = stats::guest_counters(&h.dev.stats()).len();
        assert_eq!(
            (c.status, c.result0, c.result1),
            (0, 8 + 8 * total as u32, total as u32)
        );
        let mut b = [0u8; 8 + 8 * 18];
        h.mem.read_slice(&mut b, GuestAddress(buf)).unwrap();
        assert_eq!(&b[0..4], &1u32.to_le_bytes());
        assert_eq!(
            u64::from_le_bytes(b[8 + 8 * 17..].try_into().unwrap()),
            2,
            "admin_commands"
        );
        let small = h.submit(&cmd(op::GET_STATS, 3, |o| {
            o[0..8].copy_from_slice(&buf.to_le_bytes());
            o[8..12].copy_from_slice(&20u32.to_le_bytes());
        }));
        assert_eq!(small.result0, 16, "whole counters only");
        assert_eq!(h.submit(&AdminCommand::new(op::CLEAR_STATS, 4)).status, 0);
        assert_eq!(h.dev.stats().device.admin_commands, 0);
    }

    #[test]
    fn verbs_opcodes_are_dispatched() {
        let mut h = with_eq(0);
        let c = h.submit(&AdminCommand::new(crate::verbs::abi::op::CREATE_PD, 1));
        assert_eq!(c.status, 0);
        assert_ne!(c.result0, 0, "a PD handle");
        let c = h.submit(&cmd(crate::verbs::abi::op::QUERY_CAPS, 2, |o| {
            o[0..8].copy_from_slice(&0x5_0000u64.to_le_bytes());
        }));
        assert_eq!((c.status, c.result0), (0, 64));
        assert_eq!(h.dev.stats().verbs.pds, 1);
        h.write(regs::DEV_CTRL, dev_ctrl::RESET);
        assert_eq!(h.dev.stats().verbs.pds, 0, "reset drops verbs objects");
    }

    fn eth_frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
        let mut f = vec![0x5A; len];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
        f
    }

    fn roce_like(dst: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 12 + 4];
        f[0..6].copy_from_slice(&dst);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[34 + 2..34 + 4].copy_from_slice(&4791u16.to_be_bytes());
        f
    }

    #[test]
    fn roce_frame_classification() {
        let mac = [2, 0x7E, 0x57, 0, 0, 1];
        assert!(is_roce_frame(&roce_like(mac)));
        let mut v6 = vec![0u8; 14 + 40 + 8];
        v6[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
        v6[14 + 6] = 17;
        v6[54 + 2..54 + 4].copy_from_slice(&4791u16.to_be_bytes());
        assert!(is_roce_frame(&v6));
        let mut other = roce_like(mac);
        other[34 + 3] = 0x00;
        assert!(!is_roce_frame(&other));
        assert!(!is_roce_frame(&eth_frame(mac, mac, 60)));
        assert!(!is_roce_frame(&[0u8; 13]));
        let mut truncated = roce_like(mac);
        truncated.truncate(30);
        assert!(!is_roce_frame(&truncated));
    }

    #[test]
    fn ethernet_between_two_devices() {
        let (wa, wb) = in_process_pair();
        let mut a = with_eq(0);
        let mut b = with_eq(0);
        a.dev.attach_wire(Box::new(wa));
        b.dev.attach_wire(Box::new(wb));
        let mac_b = [2, 0x7E, 0x57, 0, 0, 2];
        assert_eq!(
            b.submit(&cmd(op::SET_MAC, 1, |o| o[0..6].copy_from_slice(&mac_b)))
                .status,
            0
        );
        let (txr, rxr, buf) = (0x6_0000u64, 0x7_0000u64, 0x8_0000u64);
        let q = |base: u64, vector: u16| {
            move |o: &mut [u8; 56]| {
                o[0..8].copy_from_slice(&base.to_le_bytes());
                o[8..12].copy_from_slice(&8u32.to_le_bytes());
                o[12..14].copy_from_slice(&vector.to_le_bytes());
            }
        };
        assert_eq!(a.submit(&cmd(op::CREATE_TXQ, 2, q(txr, 1))).status, 0);
        assert_eq!(b.submit(&cmd(op::CREATE_RXQ, 3, q(rxr, 2))).status, 0);
        assert_eq!(
            b.submit(&cmd(op::CREATE_RXQ, 4, q(rxr, 2))).status,
            AdminStatus::Busy.code()
        );
        // B posts one receive buffer.
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&buf.to_le_bytes());
        d[8..10].copy_from_slice(&2048u16.to_le_bytes());
        b.mem.write_slice(&d, GuestAddress(rxr)).unwrap();
        b.write(0x1008, 1);
        // A sends one frame to B and one to somebody else.
        let f = eth_frame(mac_b, [2, 0x7E, 0x57, 0, 0, 1], 100);
        let g = eth_frame([2, 9, 9, 9, 9, 9], [2, 0x7E, 0x57, 0, 0, 1], 80);
        a.mem.write_slice(&f, GuestAddress(buf)).unwrap();
        a.mem.write_slice(&g, GuestAddress(buf + 0x1000)).unwrap();
        for (i, (addr, len)) in [(buf, 100u16), (buf + 0x1000, 80)].into_iter().enumerate() {
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&addr.to_le_bytes());
            d[8..10].copy_from_slice(&len.to_le_bytes());
            a.mem
                .write_slice(&d, GuestAddress(txr + 16 * i as u64))
                .unwrap();
        }
        a.sink.take();
        a.write(0x1000, 2);
        assert_eq!(a.read(0x1004), 2, "TX head");
        assert_eq!(a.sink.triggers(), vec![1]);
        b.sink.take();
        b.dev.poll(Duration::from_millis(1));
        let mut got = vec![0u8; 100];
        b.mem.read_slice(&mut got, GuestAddress(buf)).unwrap();
        assert_eq!(got, f);
        let mut rd = [0u8; 16];
        b.mem.read_slice(&mut rd, GuestAddress(rxr)).unwrap();
        assert_eq!(u16::from_le_bytes([rd[10], rd[11]]), 100);
        assert_eq!(rd[13], crate::eth::status::DONE);
        assert_eq!(b.sink.triggers(), vec![2]);
        let (sa, sb) = (a.dev.stats(), b.dev.stats());
        assert_eq!((sa.port.tx_frames, sa.eth_tx[0].frames), (2, 2));
        assert_eq!(
            (
                sb.port.rx_frames,
                sb.eth_rx[0].frames,
                sb.port.rx_dropped_filter
            ),
            (2, 1, 1)
        );
        // RoCE frames to B's MAC go to the verbs engine, not the RX ring.
        a.dev.detach_wire();
        b.dev.receive(&roce_like(mac_b));
        assert_eq!(b.dev.stats().port.rx_roce_frames, 1);
        // Link down: A's frames are dropped and counted.
        let (wa, _wb) = in_process_pair();
        a.dev.attach_wire(Box::new(wa));
        a.dev.set_carrier(false);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&buf.to_le_bytes());
        d[8..10].copy_from_slice(&100u16.to_le_bytes());
        a.mem.write_slice(&d, GuestAddress(txr + 32)).unwrap();
        a.write(0x1000, 3);
        assert_eq!(a.dev.stats().port.tx_dropped_link_down, 1);
    }

    #[test]
    fn wire_faults_apply_through_the_device_engine() {
        let (wa, mut wb) = in_process_pair();
        let mut a = with_eq(0);
        a.dev.attach_wire(Box::new(wa));
        add_rule(&mut a, FaultRule::new(FaultSite::WireTx, FaultAction::Drop));
        let txr = 0x6_0000u64;
        let c = a.submit(&cmd(op::CREATE_TXQ, 1, |o| {
            o[0..8].copy_from_slice(&txr.to_le_bytes());
            o[8] = 4;
        }));
        assert_eq!(c.status, 0);
        let f = eth_frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 60);
        a.mem.write_slice(&f, GuestAddress(0x8_0000)).unwrap();
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
        d[8] = 60;
        a.mem.write_slice(&d, GuestAddress(txr)).unwrap();
        a.write(0x1000, 1);
        assert!(
            crate::wire::WireBackend::try_recv(&mut wb)
                .unwrap()
                .is_none(),
            "dropped on the wire"
        );
        assert_eq!(a.dev.faults_mut().stats().total_hits, 1);
    }

    #[test]
    fn fatal_answer_at_a_wire_site() {
        let (wa, _wb) = in_process_pair();
        let mut a = with_eq(0);
        a.dev.attach_wire(Box::new(wa));
        add_rule(
            &mut a,
            FaultRule::new(FaultSite::WireTx, FaultAction::Fatal),
        );
        let txr = 0x6_0000u64;
        let c = a.submit(&cmd(op::CREATE_TXQ, 1, |o| {
            o[0..8].copy_from_slice(&txr.to_le_bytes());
            o[8] = 4;
        }));
        assert_eq!(c.status, 0);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
        d[8] = 60;
        a.mem.write_slice(&d, GuestAddress(txr)).unwrap();
        a.write(0x1000, 1);
        assert!(a.dev.fatal().is_some());
    }

    /// Creates TX queue 0 (4 descriptors at 0x6_0000, vector `vector`) with one
    /// 60-byte frame queued in descriptor 0; ring with `a.write(0x1000, 1)`.
    fn txq_with_one_frame(h: &mut Harness, vector: u16) {
        let txr = 0x6_0000u64;
        let c = h.submit(&cmd(op::CREATE_TXQ, 1, |o| {
            o[0..8].copy_from_slice(&txr.to_le_bytes());
            o[8] = 4;
            o[12..14].copy_from_slice(&vector.to_le_bytes());
        }));
        assert_eq!(c.status, 0);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x8_0000u64.to_le_bytes());
        d[8] = 60;
        h.mem.write_slice(&d, GuestAddress(txr)).unwrap();
    }

    #[test]
    fn fatal_clears_pending_interrupts() {
        let mut h = with_eq(8);
        txq_with_one_frame(&mut h, 3);
        // Mask vectors 0 and 3 (Vector Control of entries 0 and 3): a NOP
        // completion and a TX completion leave their PBA bits set.
        h.dev.bar_write(2, 12, &1u32.to_le_bytes());
        h.dev.bar_write(2, 3 * 16 + 12, &1u32.to_le_bytes());
        h.submit(&AdminCommand::new(op::NOP, 2));
        h.write(0x1000, 1);
        assert_eq!(h.dev.msix().pending_bits(), 1 | 1 << 3);
        h.sink.take();
        h.dev.inject_fatal();
        // Only the FATAL event's own vector-0 interrupt is pending now.
        assert_eq!(h.dev.msix().pending_bits(), 1);
        h.dev.bar_write(2, 3 * 16 + 12, &0u32.to_le_bytes());
        assert!(h.sink.triggers().is_empty(), "no stale TX interrupt");
        h.dev.bar_write(2, 12, &0u32.to_le_bytes());
        assert_eq!(h.sink.triggers(), vec![0], "the FATAL event's interrupt");
        assert_eq!(h.dev.msix().pending_bits(), 0);
    }

    #[test]
    fn wire_tx_scope_names_the_ethernet_tx_queue() {
        let (wa, _wb) = in_process_pair();
        let mut a = with_eq(0);
        a.dev.attach_wire(Box::new(wa));
        let scoped = |queue| {
            FaultRule::new(FaultSite::WireTx, FaultAction::Drop).with_scope(FaultScope {
                queue: Some(queue),
                ..FaultScope::default()
            })
        };
        // Queue 0 is the admin queue, never an Ethernet queue; QP 1 is not it either.
        add_rule(&mut a, scoped(scope_queue::ADMIN));
        add_rule(&mut a, scoped(1));
        add_rule(&mut a, scoped(scope_queue::ETH_TX));
        txq_with_one_frame(&mut a, 1);
        a.write(0x1000, 1);
        let st = a.dev.stats().faults;
        let events: Vec<u64> = st.rules.iter().map(|r| r.events).collect();
        assert_eq!(events, vec![0, 0, 1]);
        assert_eq!(st.rules[2].hits, 1);
    }

    #[test]
    fn dma_scope_zero_is_the_admin_queue_only() {
        let mut a = with_eq(8);
        // Every admin ring access and command buffer counts for queue 0; the TX
        // queue's descriptor and buffer accesses and event ring writes do not.
        let admin = |site| {
            FaultRule::new(site, FaultAction::Corrupt { offset: 0, mask: 0 }).with_scope(
                FaultScope {
                    queue: Some(scope_queue::ADMIN),
                    ..FaultScope::default()
                },
            )
        };
        txq_with_one_frame(&mut a, 1);
        add_rule(&mut a, admin(FaultSite::DmaRead));
        add_rule(&mut a, admin(FaultSite::DmaWrite));
        let eq_writes = FaultRule::new(
            FaultSite::DmaWrite,
            FaultAction::Corrupt { offset: 0, mask: 0 },
        )
        .with_scope(FaultScope {
            queue: Some(scope_queue::EVENT_QUEUE),
            ..FaultScope::default()
        });
        add_rule(&mut a, eq_writes);
        let tx_reads = FaultRule::new(
            FaultSite::DmaRead,
            FaultAction::Corrupt { offset: 0, mask: 0 },
        )
        .with_scope(FaultScope {
            queue: Some(scope_queue::ETH_TX),
            ..FaultScope::default()
        });
        add_rule(&mut a, tx_reads);
        a.write(0x1000, 1); // descriptor + buffer reads, status write
        let ev = |a: &Harness| -> Vec<u64> {
            a.dev
                .stats()
                .faults
                .rules
                .iter()
                .map(|r| r.events)
                .collect()
        };
        assert_eq!(ev(&a), vec![0, 0, 0, 2]);
        a.submit(&AdminCommand::new(op::NOP, 9)); // command read, completion writes
        assert_eq!(ev(&a), vec![1, 2, 0, 2]);
        a.dev.set_carrier(false); // LINK_DOWN event: body + phase word
        assert_eq!(ev(&a), vec![1, 2, 2, 2]);
    }

    #[test]
    fn flr_keeps_fault_rules() {
        let mut h = with_eq(0);
        add_rule(&mut h, FaultRule::new(FaultSite::Msix, FaultAction::Drop));
        h.dev
            .config_write(crate::pci::PCIE_CAP as u16 + 8, &0x8000u16.to_le_bytes());
        assert_eq!(h.dev.faults_mut().rules().len(), 1);
        assert_eq!(h.dev.stats().device.function_level_resets, 1);
    }
}
