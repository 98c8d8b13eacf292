//! The RNICs in the monitor: each one's [`InterruptSink`] (KVM GSI routing +
//! irqfd, via [`GsiRouter`], with its own block of router vectors), its place on
//! the PCI bus (the device behind a mutex, shared by the bus on the vCPU threads,
//! the event loop's service pass and the control API), its wire and its faults.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::timerfd::TimerFd;

use rnic_contract::pci::MSIX_VECTORS;
use rnic_device::device::{Rnic, RnicConfig};
use rnic_device::fault::{FaultError, RuleId};
use rnic_device::irq::{InterruptError, InterruptSink, MsiMessage};
use rnic_device::pci::{BarMove, BarRegion, PciFunction};
use rnic_device::wire::{
    in_process_pair, CapturingWire, InProcessWire, UdpWire, UnixWire, WireBackend, WireError,
};
use tracing::{info, warn};
use vm_memory::GuestMemoryMmap;

use crate::error::{Result, VmmError};
use crate::faultplan::{self, PlannedFault};
use crate::irq::{GsiRouter, IrqBackend};
use crate::options::{RnicSettings, WireOption};
use crate::pci::PciBus;

/// One RNIC's interrupt sink: its vectors 0..16 are router vectors
/// `first_vector..first_vector + 16` (a block the router reserved for it), so several
/// RNICs share one router.
pub struct RouterSink<B: IrqBackend> {
    /// The monitor's GSI router.
    pub router: Arc<GsiRouter<B>>,
    /// Router vector of the device's vector 0.
    pub first_vector: u16,
}

impl<B: IrqBackend + 'static> RouterSink<B> {
    fn host_error(vector: u16, e: crate::irq::RouteError) -> InterruptError {
        InterruptError::Host {
            vector,
            reason: e.to_string(),
        }
    }
}

impl<B: IrqBackend + 'static> InterruptSink for RouterSink<B> {
    fn update_route(
        &self,
        vector: u16,
        route: Option<MsiMessage>,
    ) -> std::result::Result<(), InterruptError> {
        self.router
            .update_route(
                self.first_vector + vector,
                route.map(|m| (m.address, m.data)),
            )
            .map_err(|e| Self::host_error(vector, e))
    }

    fn trigger(&self, vector: u16, msg: MsiMessage) -> std::result::Result<(), InterruptError> {
        self.router
            .trigger(self.first_vector + vector, msg.address, msg.data)
            .map_err(|e| Self::host_error(vector, e))
    }
}

/// Longest time between two service passes of an RNIC: the device's `link` and
/// `device` fault sites and verbs timers are checked at least this often (docs/device-spec.md: the monitor polls periodically).
pub const SERVICE_PERIOD: Duration = Duration::from_millis(10);
/// Shortest timer wait: a deadline already due is serviced after this much.
const MIN_SERVICE_WAIT: Duration = Duration::from_micros(20);

/// How long to sleep after a service pass at device time `now`: until the device's
/// next deadline, at most [`SERVICE_PERIOD`], at least [`MIN_SERVICE_WAIT`].
pub fn service_wait(now: Duration, next_deadline: Option<Duration>) -> Duration {
    next_deadline
        .map_or(SERVICE_PERIOD, |deadline| deadline.saturating_sub(now))
        .clamp(MIN_SERVICE_WAIT, SERVICE_PERIOD)
}

/// One RNIC as an event-manager subscriber: it is serviced when its wire fd is
/// readable (frames arrived), when a doorbell left work due at once ([`DoorbellKick`])
/// and when its timer fires, the timer being re-armed after every pass for the
/// device's next deadline (delayed interrupts, admin commands, frames), at most
/// [`SERVICE_PERIOD`] away.
pub struct RnicService {
    rnic: Arc<AttachedRnic>,
    timer: TimerFd,
    wire: Option<RawFd>,
    started: Instant,
}

impl RnicService {
    /// A subscriber for `rnic`, whose device time counts from `started`.
    pub fn new(rnic: Arc<AttachedRnic>, started: Instant) -> std::io::Result<RnicService> {
        let wire = rnic.lock().wire_fd();
        let mut service = RnicService {
            rnic,
            timer: TimerFd::new()?,
            wire,
            started,
        };
        service.timer.reset(MIN_SERVICE_WAIT, None)?;
        Ok(service)
    }

    fn pass(&mut self) {
        let now = self.started.elapsed();
        self.rnic.service(now);
        let wait = service_wait(now, self.rnic.lock().next_deadline());
        if let Err(e) = self.timer.reset(wait, None) {
            warn!(rnic = %self.rnic.settings.id, "cannot re-arm the service timer: {e}");
        }
    }
}

impl MutEventSubscriber for RnicService {
    fn init(&mut self, ops: &mut EventOps) {
        let fds = [self.timer.as_raw_fd(), self.rnic.kick.as_raw_fd()]
            .into_iter()
            .chain(self.wire);
        for fd in fds {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                warn!(rnic = %self.rnic.settings.id, "event loop cannot watch fd {fd}: {e:?}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.timer.as_raw_fd() {
            let _ = self.timer.wait();
        } else if events.fd() == self.rnic.kick.as_raw_fd() {
            let _ = self.rnic.kick.read();
        }
        // The wire fd is level-triggered: frames left over by the pass's receive
        // budget wake the loop again.
        self.pass();
    }
}

/// An RNIC to attach: its settings and the faults of its plan.
#[derive(Clone, Debug)]
pub struct RnicPlan {
    /// Settings with defaults filled in.
    pub settings: RnicSettings,
    /// Faults loaded from its plan file (empty without one).
    pub faults: Vec<PlannedFault>,
}

impl RnicPlan {
    /// Reads and checks the plan file named by `settings.faults`, if any.
    pub fn load(settings: RnicSettings) -> Result<RnicPlan> {
        let faults = match &settings.faults {
            Some(path) => faultplan::load_plan(path)?,
            None => Vec::new(),
        };
        Ok(RnicPlan { settings, faults })
    }
}

/// An RNIC plugged into the VM.
pub struct AttachedRnic {
    /// Its settings.
    pub settings: RnicSettings,
    /// The device, shared with the PCI bus.
    pub device: Arc<Mutex<Rnic>>,
    /// Signalled by the PCI side when a BAR write leaves work due at once.
    kick: Arc<EventFd>,
}

/// The RNIC as the PCI bus sees it: every access goes to the device, and a BAR write
/// (a doorbell) that leaves work due at once (admin commands, send WQEs or loopback
/// packets past the device's per-service bounds, docs/device-spec.md §15.1) signals
/// `kick`, so that the RNIC's [`RnicService`] runs its next pass now instead of at its
/// timer (up to [`SERVICE_PERIOD`] later).
pub struct DoorbellKick {
    device: Arc<Mutex<Rnic>>,
    kick: Arc<EventFd>,
}

impl PciFunction for DoorbellKick {
    fn config_read(&mut self, offset: u16) -> u32 {
        lock(&self.device).config_read(offset)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        lock(&self.device).config_write(offset, data)
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        lock(&self.device).bar_read(bar, offset, data)
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let mut device = lock(&self.device);
        device.bar_write(bar, offset, data);
        if device.has_pending_work() {
            // A full counter (never, in practice) still leaves the fd readable.
            let _ = self.kick.write(1);
        }
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        lock(&self.device).bar_regions()
    }

    fn decoded_bars(&self) -> Vec<BarRegion> {
        lock(&self.device).decoded_bars()
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AttachedRnic {
    /// Locks the device.
    pub fn lock(&self) -> MutexGuard<'_, Rnic> {
        lock(&self.device)
    }

    /// Adds a fault to the device's engine (its `times` limit is the rule's `max_hits`,
    /// which the engine enforces exactly).
    pub fn add_fault(&self, fault: PlannedFault) -> std::result::Result<RuleId, FaultError> {
        rnic_control::api::add_fault(&mut self.lock(), fault)
    }

    /// Removes a fault rule.
    pub fn remove_fault(&self, id: RuleId) -> std::result::Result<(), FaultError> {
        self.lock().faults_mut().remove_rule(id).map(drop)
    }

    /// The `times` limit of rule `id`, if it has one.
    pub fn limit_of(&self, id: RuleId) -> Option<u64> {
        self.lock()
            .faults_mut()
            .rules()
            .into_iter()
            .find(|rule| rule.id == Some(id))
            .and_then(|rule| rule.max_hits)
    }

    /// Runs the device's timed work up to device time `now`.
    pub fn service(&self, now: Duration) {
        self.lock().poll(now);
    }
}

/// One end of a `wire=pair:OTHER_ID` wire between two RNICs of this VM: the device
/// model's in-process wire, plus one eventfd per end that the sender signals, so that
/// the receiving RNIC's [`RnicService`] wakes when a frame arrives (the in-process
/// wire has no fd of its own). The eventfd stays readable while frames wait: a
/// receive clears it only when it finds the queue empty.
pub struct PairWireEnd {
    wire: InProcessWire,
    arrived: Arc<EventFd>,
    peer_arrived: Arc<EventFd>,
}

/// Two connected [`PairWireEnd`]s: what one sends, the other receives, in order
/// (each direction queues up to the in-process wire's limit).
pub fn pair_wire() -> std::io::Result<(PairWireEnd, PairWireEnd)> {
    let (a, b) = in_process_pair();
    let a_arrived = Arc::new(EventFd::new(EFD_NONBLOCK)?);
    let b_arrived = Arc::new(EventFd::new(EFD_NONBLOCK)?);
    Ok((
        PairWireEnd {
            wire: a,
            arrived: a_arrived.clone(),
            peer_arrived: b_arrived.clone(),
        },
        PairWireEnd {
            wire: b,
            arrived: b_arrived,
            peer_arrived: a_arrived,
        },
    ))
}

impl WireBackend for PairWireEnd {
    fn send(&mut self, frame: &[u8]) -> std::result::Result<(), WireError> {
        self.wire.send(frame)?;
        // A full counter (never, in practice) still leaves the fd readable.
        let _ = self.peer_arrived.write(1);
        Ok(())
    }

    fn try_recv(&mut self) -> std::result::Result<Option<Vec<u8>>, WireError> {
        if let Some(frame) = self.wire.try_recv()? {
            return Ok(Some(frame));
        }
        // Empty: clear the fd (it may already be clear: EAGAIN), then look once more,
        // so that a frame sent between the two steps keeps the fd readable.
        let _ = self.arrived.read();
        let late = self.wire.try_recv()?;
        if late.is_some() {
            let _ = self.arrived.write(1);
        }
        Ok(late)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.arrived.as_raw_fd())
    }
}

/// The pair-wire ends not yet taken, by the id of the RNIC that takes them.
type PairEnds = HashMap<String, PairWireEnd>;

fn open_wire(
    settings: &RnicSettings,
    pair_ends: &mut PairEnds,
) -> Result<Option<Box<dyn WireBackend>>> {
    let wire_error = |source| VmmError::Wire {
        id: settings.id.clone(),
        source,
    };
    let inner: Box<dyn WireBackend> = match &settings.wire {
        WireOption::None => return Ok(None),
        WireOption::Pair { peer } => match pair_ends.remove(&settings.id) {
            Some(end) => Box::new(end),
            None => {
                let (ours, theirs) =
                    pair_wire().map_err(VmmError::host("a pair wire's eventfds"))?;
                pair_ends.insert(peer.clone(), theirs);
                Box::new(ours)
            }
        },
        WireOption::Unix { local, peer } => {
            Box::new(UnixWire::bind(local, peer).map_err(wire_error)?)
        }
        WireOption::Udp { local, peer } => {
            Box::new(UdpWire::bind(*local, *peer).map_err(wire_error)?)
        }
    };
    Ok(Some(match &settings.pcap {
        Some(path) => {
            Box::new(
                CapturingWire::create(inner, path).map_err(|source| VmmError::Pcap {
                    id: settings.id.clone(),
                    source,
                })?,
            )
        }
        None => inner,
    }))
}

/// Creates each planned RNIC emulated here (those without a `socket`), plugs it in
/// at its PCI device number, connects its wire and arms its faults.
pub fn attach_all<B: IrqBackend + 'static>(
    plans: &[RnicPlan],
    mem: &GuestMemoryMmap,
    router: &Arc<GsiRouter<B>>,
    bus: &mut PciBus,
) -> Result<Vec<Arc<AttachedRnic>>> {
    let mut attached = Vec::with_capacity(plans.len());
    let mut pair_ends = PairEnds::new();
    for plan in plans.iter().filter(|p| p.settings.socket.is_none()) {
        let settings = &plan.settings;
        let sink: Arc<dyn InterruptSink> = Arc::new(RouterSink {
            router: router.clone(),
            first_vector: router.reserve_vectors(MSIX_VECTORS)?,
        });
        let config = RnicConfig {
            mac: settings.mac,
            ip: settings.ipv4,
            carrier: true,
            ipv6: settings.ipv6,
        };
        let device = Arc::new(Mutex::new(Rnic::new(config, mem.clone(), sink)));
        if let Some(wire) = open_wire(settings, &mut pair_ends)? {
            lock(&device).attach_wire(wire);
        }
        let kick = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| VmmError::Host {
            what: "creating an RNIC's doorbell eventfd",
            source: Box::new(e),
        })?);
        let function = Arc::new(Mutex::new(DoorbellKick {
            device: device.clone(),
            kick: kick.clone(),
        }));
        let bars = bus.add_device(settings.pci_device, function)?;
        for b in &bars {
            info!(rnic = %settings.id, bar = b.index, base = %format!("{:#x}", b.base), size = b.size, "RNIC BAR placed");
        }
        let rnic = Arc::new(AttachedRnic {
            settings: settings.clone(),
            device,
            kick,
        });
        for fault in &plan.faults {
            rnic.add_fault(fault.clone())
                .map_err(|source| VmmError::FaultRule {
                    id: settings.id.clone(),
                    source,
                })?;
        }
        attached.push(rnic);
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnic_contract::bar0;
    use rnic_contract::pci::{
        BAR0, COMMAND, PCIE_CAP, PCIE_DEVCTL_INITIATE_FLR, PCIE_DEVICE_CONTROL,
    };
    use rnic_device::{PciFunction, RecordingSink};
    use vm_memory::GuestAddress;

    use crate::faultplan::parse_plan;
    use crate::irq::{IrqBackendError, Route};
    use crate::options::{resolve, RnicOptions};
    use crate::pci::{MappedBar, FIRST_RNIC_DEVICE};
    use vmm_sys_util::eventfd::EventFd;

    /// A backend that accepts everything (routing is tested in `irq`).
    struct AcceptingBackend;

    impl IrqBackend for AcceptingBackend {
        fn set_routes(&self, _: &[Route]) -> std::result::Result<(), IrqBackendError> {
            Ok(())
        }
        fn assign_irqfd(&self, _: &EventFd, _: u32) -> std::result::Result<(), IrqBackendError> {
            Ok(())
        }
        fn deassign_irqfd(&self, _: &EventFd, _: u32) -> std::result::Result<(), IrqBackendError> {
            Ok(())
        }
    }

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    #[test]
    fn the_service_timer_follows_the_next_deadline_within_bounds() {
        let now = Duration::from_millis(100);
        assert_eq!(service_wait(now, None), SERVICE_PERIOD);
        assert_eq!(
            service_wait(now, Some(now + Duration::from_micros(300))),
            Duration::from_micros(300)
        );
        assert_eq!(
            service_wait(now, Some(now + Duration::from_secs(5))),
            SERVICE_PERIOD
        );
        // Already due (or past): soon, but never a zero wait (which disarms a timerfd).
        assert_eq!(service_wait(now, Some(now)), MIN_SERVICE_WAIT);
        assert_eq!(service_wait(now, Some(Duration::ZERO)), MIN_SERVICE_WAIT);
    }

    /// Frames arriving on an RNIC's wire are received by its service subscriber
    /// (here dropped for link down: the device is not enabled).
    #[test]
    fn the_service_subscriber_drains_the_wire() {
        use event_manager::{EventManager, SubscriberOps};
        use std::os::unix::net::UnixDatagram;

        let dir = std::env::temp_dir().join(format!("rnic-vmm-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ours, theirs) = (dir.join("rnic.sock"), dir.join("peer.sock"));
        let settings = resolve(&[RnicOptions {
            wire: Some(WireOption::Unix {
                local: ours.clone(),
                peer: theirs.clone(),
            }),
            ..Default::default()
        }])
        .unwrap();
        let plans = [RnicPlan {
            settings: settings[0].clone(),
            faults: Vec::new(),
        }];
        let router = Arc::new(GsiRouter::new(AcceptingBackend, Vec::new()).unwrap());
        let rnics = attach_all(&plans, &memory(), &router, &mut PciBus::new()).unwrap();
        let mut events: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().unwrap();
        let service = RnicService::new(rnics[0].clone(), Instant::now()).unwrap();
        events.add_subscriber(Arc::new(Mutex::new(service)));

        let peer = UnixDatagram::bind(&theirs).unwrap();
        let frame = [0x5Au8; 60];
        peer.send_to(&frame, &ours).unwrap();
        let dropped = || rnics[0].lock().stats().port.rx_dropped_link_down;
        for _ in 0..100 {
            if dropped() == 1 {
                break;
            }
            events.run_with_timeout(50).unwrap();
        }
        assert_eq!(dropped(), 1);
        drop(events);
        drop(rnics);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rnics_get_their_own_pci_device_settings_and_faults() {
        let settings = resolve(&[
            RnicOptions::default(),
            RnicOptions {
                id: Some("second".into()),
                ipv6: Some("fd00:4d::2".parse().unwrap()),
                ..Default::default()
            },
        ])
        .unwrap();
        let plan =
            parse_plan("[[fault]]\nsite = \"link\"\naction = \"link_up\"\ntimes = 2\n").unwrap();
        let plans = vec![
            RnicPlan {
                settings: settings[0].clone(),
                faults: Vec::new(),
            },
            RnicPlan {
                settings: settings[1].clone(),
                faults: plan,
            },
        ];
        let router = Arc::new(GsiRouter::new(AcceptingBackend, Vec::new()).unwrap());
        let mut bus = PciBus::new();
        let rnics = attach_all(&plans, &memory(), &router, &mut bus).unwrap();
        assert_eq!(rnics.len(), 2);
        assert_eq!(
            rnics[1].lock().config().mac.to_string(),
            "02:7e:57:00:00:02"
        );
        assert_eq!(rnics[1].lock().config().ipv6, settings[1].ipv6);
        assert_eq!(rnics[0].lock().config().ipv6, None);
        // Both on the bus, at 00:01.0 and 00:02.0, with distinct BARs.
        for (device, ids) in [(1u8, 0x0001_7E57u32), (2, 0x0001_7E57)] {
            bus.config_port_write(
                crate::pci::CONFIG_ADDRESS_PORT,
                &(0x8000_0000u32 | u32::from(device) << 11).to_le_bytes(),
            );
            let mut id = [0u8; 4];
            bus.config_port_read(crate::pci::CONFIG_DATA_PORT, &mut id);
            assert_eq!(u32::from_le_bytes(id), ids, "device {device}");
        }
        // The plan's rule is armed on the second RNIC only, and `times` caps it:
        // the link site is checked once per service pass.
        assert!(rnics[0].lock().faults_mut().rules().is_empty());
        let rule = rnics[1].lock().faults_mut().rules()[0].id.unwrap();
        assert_eq!(rnics[1].limit_of(rule), Some(2));
        for ms in 1..=5 {
            rnics[1].service(Duration::from_millis(ms));
        }
        let mut device = rnics[1].lock();
        let engine = device.faults_mut();
        assert_eq!(engine.stats().rules[0].hits, 2, "capped at its limit");
        drop(engine);
        drop(device);
        assert_eq!(rnics[1].limit_of(rule), Some(2), "still reported");
        rnics[1].remove_fault(rule).unwrap();
        assert_eq!(rnics[1].limit_of(rule), None);
        assert!(rnics[1].remove_fault(rule).is_err());
    }

    /// A doorbell that leaves admin commands past the device's per-service bound wakes
    /// the RNIC's service at once through its kick eventfd; one that leaves nothing
    /// pending does not.
    #[test]
    fn a_doorbell_that_leaves_work_due_kicks_the_service() {
        use rnic_contract::admin::{opcode, CommandRepr};
        use vm_memory::{Bytes, GuestAddress};

        const ASQ: u64 = 0x1_0000;
        const ACQ: u64 = 0x2_0000;
        let mem = memory();
        let settings = crate::options::resolve(&[RnicOptions::default()]).unwrap();
        let plans = [RnicPlan {
            settings: settings[0].clone(),
            faults: Vec::new(),
        }];
        let router = Arc::new(GsiRouter::new(AcceptingBackend, Vec::new()).unwrap());
        let mut bus = PciBus::new();
        let rnics = attach_all(&plans, &mem, &router, &mut bus).unwrap();
        let bar0 = enable_admin(&mut bus, FIRST_RNIC_DEVICE, ASQ, ACQ, 64);
        let write =
            |bus: &mut PciBus, register: u64, value: u32| write_bar0(bus, bar0, register, value);
        let kick = &rnics[0].kick;
        let post = |bus: &mut PciBus, first: u16, count: u16| {
            for id in first..first + count {
                let command = CommandRepr::new(opcode::NOP, id).to_bytes();
                mem.write_slice(&command, GuestAddress(ASQ + 64 * u64::from(id)))
                    .unwrap();
            }
            write(bus, bar0::ASQ_TAIL, u32::from(first + count));
        };
        // One command: done within the doorbell, nothing left, no kick.
        post(&mut bus, 0, 1);
        assert!(kick.read().is_err(), "no kick without pending work");
        // More commands than one service call runs: the rest is due at once.
        post(&mut bus, 1, 40);
        assert!(kick.read().unwrap() >= 1, "the doorbell kicked the service");
        assert!(rnics[0].lock().has_pending_work());
        // The service passes the kick causes finish the work.
        for ms in 1..=10 {
            rnics[0].service(Duration::from_millis(ms));
        }
        assert!(!rnics[0].lock().has_pending_work());
        let mut head = [0u8; 4];
        assert!(bus.mmio_read(bar0 + bar0::ASQ_HEAD, &mut head));
        assert_eq!(u32::from_le_bytes(head), 41);
    }

    fn write_config(bus: &mut PciBus, register: usize, data: &[u8]) {
        write_config_of(bus, FIRST_RNIC_DEVICE, register, data);
    }

    fn write_config_of(bus: &mut PciBus, device: u8, register: usize, data: &[u8]) {
        let address = 0x8000_0000u32 | (u32::from(device) << 11) | (register as u32 & !3);
        bus.config_port_write(crate::pci::CONFIG_ADDRESS_PORT, &address.to_le_bytes());
        bus.config_port_write(crate::pci::CONFIG_DATA_PORT + (register as u16 & 3), data);
    }

    /// A 32-bit write of `value` to BAR0 register `register` (which must be decoded).
    fn write_bar0(bus: &mut PciBus, bar0: u64, register: u64, value: u32) {
        assert!(bus.mmio_write(bar0 + register, &value.to_le_bytes()));
    }

    /// Turns on memory decoding and bus mastering of PCI device `device`, points its
    /// admin queues at `asq` and `acq` (`entries` each) and enables it, as a driver
    /// does. Returns its BAR0 base.
    fn enable_admin(bus: &mut PciBus, device: u8, asq: u64, acq: u64, entries: u32) -> u64 {
        use rnic_contract::bar0::dev_ctrl;
        write_config_of(bus, device, COMMAND, &6u16.to_le_bytes());
        let bar0 = bus.mapped_bars(device)[0].base;
        for (register, value) in [
            (bar0::ASQ_BASE_LO, asq as u32),
            (bar0::ASQ_BASE_HI, (asq >> 32) as u32),
            (bar0::ASQ_SIZE, entries),
            (bar0::ACQ_BASE_LO, acq as u32),
            (bar0::ACQ_BASE_HI, (acq >> 32) as u32),
            (bar0::ACQ_SIZE, entries),
            (bar0::DEV_CTRL, dev_ctrl::ENABLE),
        ] {
            write_bar0(bus, bar0, register, value);
        }
        bar0
    }

    /// Whether `fd` is readable now (poll with no wait).
    fn readable(fd: RawFd) -> bool {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut poll, 1, 0) };
        n == 1 && poll.revents & libc::POLLIN != 0
    }

    /// A pair wire's ends: frames cross both ways in order; each end's fd is readable
    /// exactly while frames wait for it.
    #[test]
    fn pair_wire_ends_cross_frames_and_signal_arrivals() {
        let (mut a, mut b) = pair_wire().unwrap();
        let (a_fd, b_fd) = (a.raw_fd().unwrap(), b.raw_fd().unwrap());
        assert!(!readable(a_fd) && !readable(b_fd));
        a.send(&[1u8; 60]).unwrap();
        a.send(&[2u8; 61]).unwrap();
        assert!(readable(b_fd), "a frame waits for b");
        assert!(!readable(a_fd), "nothing waits for a");
        assert_eq!(b.try_recv().unwrap(), Some(vec![1u8; 60]));
        assert!(readable(b_fd), "a second frame still waits");
        assert_eq!(b.try_recv().unwrap(), Some(vec![2u8; 61]));
        assert_eq!(b.try_recv().unwrap(), None);
        assert!(!readable(b_fd), "cleared once empty");
        b.send(&[3u8; 60]).unwrap();
        assert!(readable(a_fd));
        assert_eq!(a.try_recv().unwrap(), Some(vec![3u8; 60]));
        assert_eq!(a.try_recv().unwrap(), None);
        // Frame-length checks are the wire's.
        assert!(a.send(&[0u8; 10]).is_err());
        assert!(!readable(b_fd), "a refused frame signals nothing");
        drop(b);
        assert!(a.try_recv().is_err(), "the peer is gone");
    }

    /// Two RNICs paired by `wire=pair:` on one bus and one guest memory: the frame
    /// each transmits (driven through BAR0 and admin commands, as a driver does)
    /// reaches the other, and the capture of the one end that has `pcap` holds both
    /// frames, each once.
    #[test]
    fn paired_rnics_exchange_frames_and_one_capture_holds_both_directions() {
        use crate::options::parse_rnic_option;
        use rnic_contract::admin::{completion_field, operands::create_eth_queue};
        use rnic_contract::admin::{opcode, CommandRepr, COMPLETION_SIZE};
        use rnic_contract::bar0::eth_db;
        use rnic_contract::eth::{tx_field, DESC_SIZE};
        use rnic_contract::field;
        use vm_memory::Bytes;

        let dir = std::env::temp_dir().join(format!("rnic-vmm-pair-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("pair.pcap");
        let options = [
            parse_rnic_option(&format!("id=a,wire=pair:b,pcap={}", pcap.display())).unwrap(),
            parse_rnic_option("id=b,wire=pair:a").unwrap(),
        ];
        let plans: Vec<RnicPlan> = resolve(&options)
            .unwrap()
            .into_iter()
            .map(|settings| RnicPlan {
                settings,
                faults: Vec::new(),
            })
            .collect();
        let mem = memory();
        let router = Arc::new(GsiRouter::new(AcceptingBackend, Vec::new()).unwrap());
        let mut bus = PciBus::new();
        let rnics = attach_all(&plans, &mem, &router, &mut bus).unwrap();
        let macs: Vec<[u8; 6]> = rnics.iter().map(|r| r.settings.mac.0).collect();

        let mut frames = Vec::new();
        for (index, mac) in macs.iter().enumerate() {
            // Each RNIC's rings and frame in its own 64 KiB of guest memory.
            let base = 0x1_0000 * (1 + index as u64);
            let (asq, acq, txq, buffer) = (base, base + 0x1000, base + 0x2000, base + 0x3000);
            let device = FIRST_RNIC_DEVICE + index as u8;
            let bar0 = enable_admin(&mut bus, device, asq, acq, 4);
            let write = |bus: &mut PciBus, register: u64, value: u32| {
                write_bar0(bus, bar0, register, value)
            };
            let mut command = CommandRepr::new(opcode::CREATE_TXQ, 7);
            field::set_u64(&mut command.operands, create_eth_queue::BASE, txq);
            field::set_u32(&mut command.operands, create_eth_queue::SIZE, 2);
            mem.write_slice(&command.to_bytes(), GuestAddress(asq))
                .unwrap();
            write(&mut bus, bar0::ASQ_TAIL, 1);
            rnics[index].service(Duration::from_millis(1));
            let mut completion = [0u8; COMPLETION_SIZE];
            mem.read_slice(&mut completion, GuestAddress(acq)).unwrap();
            assert_eq!(field::get_u16(&completion, completion_field::ID), 7);
            assert_eq!(field::get_u16(&completion, completion_field::STATUS), 0);

            // One 60-byte frame to the other RNIC's MAC, from this one's.
            let mut frame = macs[1 - index].to_vec();
            frame.extend_from_slice(mac);
            frame.extend_from_slice(&[0x88, 0xB5]);
            frame.resize(60, 0xA0 + index as u8);
            mem.write_slice(&frame, GuestAddress(buffer)).unwrap();
            let mut descriptor = [0u8; DESC_SIZE];
            field::set_u64(&mut descriptor, tx_field::ADDR, buffer);
            field::set_u16(&mut descriptor, tx_field::LEN, frame.len() as u16);
            mem.write_slice(&descriptor, GuestAddress(txq)).unwrap();
            write(&mut bus, eth_db::queue_block(0) + eth_db::TXQ_TAIL, 1);
            frames.push(frame);
        }
        for ms in 2..=5 {
            for rnic in &rnics {
                rnic.service(Duration::from_millis(ms));
            }
        }
        for rnic in &rnics {
            let port = rnic.lock().stats().port;
            let id = &rnic.settings.id;
            assert_eq!(port.tx_frames, 1, "{id} sent its frame");
            assert_eq!(port.rx_frames, 1, "{id} received the other's frame");
            assert_eq!(port.rx_dropped_no_queue, 1, "{id} has no RX queue");
        }
        drop(rnics);
        drop(bus); // the last holder of the devices: the capture is flushed
        let records = rnic_device::wire::pcap::read_file(&pcap).unwrap();
        let captured: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
        assert_eq!(captured, frames, "a's frame sent, then b's received");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn version(bus: &mut PciBus, bar0_base: u64) -> Option<u32> {
        let mut v = [0u8; 4];
        bus.mmio_read(bar0_base + bar0::VERSION, &mut v)
            .then_some(u32::from_le_bytes(v))
    }

    /// The real device on the bus: its configuration writes report BAR moves and
    /// the bus routes MMIO by them (enable, move, function level reset).
    #[test]
    fn the_rnic_reports_its_bar_moves_to_the_bus() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let rnic = Arc::new(Mutex::new(Rnic::new(
            RnicConfig::default(),
            mem,
            Arc::new(RecordingSink::default()),
        )));
        let mut bus = PciBus::new();
        let placed = bus.add_device(FIRST_RNIC_DEVICE, rnic.clone()).unwrap();
        assert_eq!(placed.len(), 2, "BAR0 and BAR2: {placed:?}");
        assert!(bus.mapped_bars(FIRST_RNIC_DEVICE).is_empty());
        let bar0 = placed[0].base;
        assert_eq!(version(&mut bus, bar0), None);

        write_config(&mut bus, COMMAND, &2u16.to_le_bytes());
        assert_eq!(bus.mapped_bars(FIRST_RNIC_DEVICE), placed);
        let expected = {
            let mut v = [0u8; 4];
            rnic.lock().unwrap().bar_read(0, bar0::VERSION, &mut v);
            u32::from_le_bytes(v)
        };
        assert_eq!(version(&mut bus, bar0), Some(expected));

        // The guest moves BAR0 (64-bit: low dword, then high dword).
        let moved = 0xD000_0000u64;
        write_config(&mut bus, BAR0, &(moved as u32 | 0x4).to_le_bytes());
        write_config(&mut bus, BAR0 + 4, &0u32.to_le_bytes());
        assert_eq!(
            bus.mapped_bars(FIRST_RNIC_DEVICE)[0],
            MappedBar {
                index: 0,
                base: moved,
                size: placed[0].size
            }
        );
        assert_eq!(version(&mut bus, bar0), None);
        assert_eq!(version(&mut bus, moved), Some(expected));

        // A function level reset clears the BARs and Command: nothing is decoded.
        write_config(
            &mut bus,
            PCIE_CAP + PCIE_DEVICE_CONTROL,
            &PCIE_DEVCTL_INITIATE_FLR.to_le_bytes(),
        );
        assert!(bus.mapped_bars(FIRST_RNIC_DEVICE).is_empty());
        assert_eq!(version(&mut bus, moved), None);
    }
}
