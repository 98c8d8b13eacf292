//! [`Rnic`]: the top-level device. It ties configuration space, BAR0 registers,
//! MSI-X, DMA, the admin queue, the event queue, the Ethernet queues, the verbs
//! engine, the wire and the fault engine together and implements [`PciFunction`].
//!
//! Threading: the monitor calls [`PciFunction`] methods on the vCPU thread and
//! [`Rnic::poll`] periodically (timers, wire receive, delayed faults); all work runs
//! synchronously inside those calls.
//!
//! Structure, one job per file:
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | [`Rnic`] and [`RnicConfig`]: construction, the host API, polling, resets, receive classification |
//! | `core.rs` | the state every engine shares (DMA and MSI-X with their fault hooks, event queue, wire, link and fatal state, counters) and the environment the engines reach it through |
//! | `state.rs` | the link and fatal state types; their transitions post `LINK_UP`/`LINK_DOWN`/`FATAL` themselves, and [`Rnic::operation`] makes a fatal error requested by a fault take effect at the end of the BAR0 write or poll step that requested it |
//! | `registers.rs` | BAR0 decode: control registers, `DEV_CTRL`, doorbell dispatch, configuration-space effects |
//! | `pci_function.rs` | the [`PciFunction`] implementation the monitor drives |
//!
//! Admin command execution is in [`crate::admin`], RoCEv2 frame classification in
//! [`crate::roce`], the fault-scope numbering in [`crate::fault`].

mod core;
mod pci_function;
mod registers;
mod state;
#[cfg(test)]
pub(crate) mod tests;

pub(crate) use self::core::Core;
use self::state::{FatalState, Link, LinkInput};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryMmap;

use crate::admin::{AdminQueue, AdminRegEffect};
use crate::dma::{faulted_read, faulted_write, Dma, DmaError};
use crate::eth::{Ethernet, MacAddress, RxOutcome};
use crate::events::{self, Event, EventQueue, PostResult};
use crate::fault::{FaultAction, FaultEngine, FaultPoint, FaultScope, FaultSite};
use crate::irq::InterruptSink;
use crate::msix::Msix;
use crate::pci::{ConfigSpace, PciFunction};
use crate::stats::{DeviceCounters, PortStats, RnicStats};
use crate::verbs::{Verbs, VerbsLimits};
use crate::wire::{FaultyWire, WireBackend, WireClock, WireDecider};
use rnic_contract::admin::CommandRepr;
use rnic_contract::bar0::{self, admin_error, dev_ctrl, dev_status};
use rnic_contract::pci::{ADMIN_VECTOR, BAR0_SIZE, BAR2_SIZE};

/// Frames taken from the wire per `poll` call at most.
pub const RX_BUDGET: usize = 256;

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
    /// The port's IPv6 address for RoCEv2 (after reset), e.g. `"fd00:4d::1"`; none
    /// by default (`docs/device-spec.md` Appendix B).
    pub ipv6: Option<Ipv6Addr>,
}

impl Default for RnicConfig {
    fn default() -> Self {
        RnicConfig {
            mac: MacAddress([0x02, 0x7E, 0x57, 0x00, 0x00, 0x01]),
            ip: Ipv4Addr::new(10, 77, 0, 1),
            carrier: true,
            ipv6: None,
        }
    }
}

/// The verbs port's reset values: the configured MAC, IPv4 and IPv6 addresses and
/// the reset Ethernet MTU (device reset, FLR, `RESET_FUNCTION`).
pub(crate) fn reset_port_addresses(verbs: &mut Verbs, config: &RnicConfig) {
    verbs.set_port_addr(config.mac.0, config.ip.octets());
    verbs.set_port_ipv6(config.ipv6.map(|a| a.octets()));
    verbs.set_eth_mtu(rnic_contract::eth::DEFAULT_MTU);
}

fn lock(f: &Mutex<FaultEngine>) -> MutexGuard<'_, FaultEngine> {
    // A poisoned lock only means a panic elsewhere; the engine's data stays usable.
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// The emulated RDMA NIC.
pub struct Rnic {
    pub(crate) config: RnicConfig,
    pub(crate) pci: ConfigSpace,
    pub(crate) admin: AdminQueue,
    pub(crate) admin_delayed: Option<(Duration, CommandRepr)>,
    pub(crate) eth: Ethernet,
    pub(crate) verbs: Verbs,
    pub(crate) core: Core,
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
        Rnic::with_limits(config, VerbsLimits::default(), mem, irq)
    }

    /// As [`Rnic::new`], with verbs limits other than the defaults (clamped to what
    /// the ABI can express). Test rigs use it to reach the table-full paths in a few
    /// commands; `QUERY_CAPS` reports the limits given here.
    pub fn with_limits(
        config: RnicConfig,
        limits: VerbsLimits,
        mem: GuestMemoryMmap,
        irq: Arc<dyn InterruptSink>,
    ) -> Rnic {
        let mut verbs = Verbs::new(limits);
        reset_port_addresses(&mut verbs, &config);
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
                clock: Arc::new(AtomicU64::new(0)),
                wire_fatal: Arc::new(AtomicBool::new(false)),
                eq: EventQueue::new(),
                now: Duration::ZERO,
                enabled: false,
                admin_error: 0,
                link: Link::new(config.carrier),
                fatal: FatalState::Running,
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
        self.core.set_link_input(LinkInput::WireBroken(false));
    }

    /// Disconnects the wire (frames are then dropped and counted); returns it.
    pub fn detach_wire(&mut self) -> Option<Box<dyn WireBackend>> {
        self.core.wire.take().map(FaultyWire::into_inner)
    }

    /// The wire's file descriptor that becomes readable when frames arrive, if any.
    pub fn wire_fd(&self) -> Option<RawFd> {
        self.core.wire.as_ref().and_then(|w| w.raw_fd())
    }

    /// Plugs or unplugs the cable (host side): the link follows.
    pub fn set_carrier(&mut self, carrier: bool) {
        self.core.set_link_input(LinkInput::Carrier(carrier));
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
        self.core.fatal.cause()
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
        // Connection manager timers (retransmissions, address resolution).
        let cm = self
            .core
            .enabled
            .then(|| self.verbs.next_deadline())
            .flatten();
        // Work left by a bounded service call is due at once.
        let pending = self.has_pending_work().then_some(self.core.now);
        [irq, adm, wire, cm, pending].into_iter().flatten().min()
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

    /// The device-core counters alone (O(1); [`Rnic::stats`] gathers everything,
    /// scanning every QP and CQ).
    pub fn device_counters(&self) -> DeviceCounters {
        self.core.counters
    }

    /// `DEV_STATUS` as the driver would read it (were the device not fatal).
    pub fn dev_status(&self) -> u32 {
        let mut s = 0;
        if self.ready() {
            s |= dev_status::READY;
        }
        if self.core.fatal.is_fatal() {
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

    /// Whether a bounded service call left work for the next poll (admin commands
    /// with completion space for them, unfetched send WQEs, loopback packets): the host
    /// should poll again at once (a monitor checks it after each doorbell).
    pub fn has_pending_work(&self) -> bool {
        let admin = self.ready()
            && self.admin_delayed.is_none()
            && self.admin.has_work()
            && self.admin.has_completion_space();
        admin || (self.core.enabled && self.verbs.has_pending_work())
    }

    pub(crate) fn ready(&self) -> bool {
        self.core.enabled
            && self.admin.is_live()
            && self.core.admin_error == 0
            && !self.core.fatal.is_fatal()
    }

    /// Time-driven work; the monitor calls this periodically with a monotonic device
    /// time (and when [`Rnic::next_deadline`] passes or the wire fd is readable):
    /// `device` and `link` fault checks, delayed interrupts and admin commands, wire
    /// receive (up to [`RX_BUDGET`] frames), verbs timers.
    pub fn poll(&mut self, now: Duration) {
        self.core.set_now(now);
        if self.core.fatal.is_fatal() {
            self.drain_wire();
            return;
        }
        // The `device` and `link` fault checks are one step: a `fatal` answer takes
        // effect before the rest of the poll.
        self.operation(|dev| {
            dev.core.fault(FaultPoint::new(FaultSite::Device));
            match dev.core.fault(FaultPoint::new(FaultSite::Link)) {
                Some(FaultAction::LinkDown) => dev.core.set_link_input(LinkInput::FaultDown(true)),
                Some(FaultAction::LinkUp) => dev.core.set_link_input(LinkInput::FaultDown(false)),
                _ => {}
            }
        });
        if self.core.fatal.is_fatal() {
            return;
        }
        self.operation(Rnic::poll_work);
    }

    /// The work of one poll after its fault checks: delayed interrupts and admin
    /// commands, wire receive, verbs timers, admin commands left by a full
    /// completion ring.
    fn poll_work(&mut self) {
        let now = self.core.now;
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
                        self.core.set_link_input(LinkInput::WireBroken(true));
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
    }

    pub(crate) fn drain_wire(&mut self) {
        if let Some(w) = self.core.wire.as_mut() {
            for _ in 0..RX_BUDGET {
                match w.try_recv() {
                    Ok(Some(_)) => self.core.port.rx_dropped_link_down += 1,
                    _ => break,
                }
            }
        }
    }

    pub(crate) fn receive(&mut self, frame: &[u8]) {
        self.core.port.rx_frames += 1;
        self.core.port.rx_bytes += frame.len() as u64;
        if !self.core.link_up() {
            self.core.port.rx_dropped_link_down += 1;
            return;
        }
        let dst = frame.get(0..6);
        let ours = dst == Some(&self.eth.mac().0[..]) || dst == Some(&self.verbs.port().mac[..]);
        if ours && crate::roce::is_roce_frame(frame) {
            self.core.port.rx_roce_frames += 1;
            self.verbs.receive_frame(&mut self.core, frame);
            return;
        }
        if self.core.enabled {
            // ARP / Neighbor Discovery for the verbs port; the frame carries on.
            self.verbs.neighbour_frame(&mut self.core, frame);
        }
        match self.eth.receive(&mut self.core, frame) {
            RxOutcome::Delivered(_) | RxOutcome::Error => {}
            RxOutcome::Filtered => self.core.port.rx_dropped_filter += 1,
            RxOutcome::NoQueue => self.core.port.rx_dropped_no_queue += 1,
            RxOutcome::NoBuffer => self.core.port.rx_dropped_no_buffer += 1,
            RxOutcome::TooLong => self.core.port.rx_dropped_too_long += 1,
            RxOutcome::Runt => self.core.port.rx_runts += 1,
        }
    }

    /// Device reset (`DEV_CTRL.RESET`, or `ENABLE` 1→0): §13.1.
    pub fn device_reset(&mut self) {
        tracing::debug!("device reset");
        self.admin = AdminQueue::new();
        self.admin_delayed = None;
        self.eth.reset();
        self.verbs.reset();
        reset_port_addresses(&mut self.verbs, &self.config);
        let c = &mut self.core;
        c.set_enabled(false);
        c.admin_error = 0;
        c.fatal = FatalState::Running;
        c.eq = EventQueue::new();
        c.delayed_irqs.clear();
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
}
