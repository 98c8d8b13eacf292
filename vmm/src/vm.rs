//! The running VM: KVM set-up, the vCPU threads, the event loop thread and the
//! shutdown protocol.
//!
//! Threads:
//!
//! * one thread per vCPU runs `KVM_RUN` and dispatches PIO/MMIO exits to the
//!   devices ([`Devices`]);
//! * the event loop thread (event-manager) owns the guest timeout (TimerFd),
//!   SIGINT/SIGTERM/SIGHUP (an eventfd written by the signal handler) and one
//!   [`RnicService`] per RNIC (its wire fd and a TimerFd at its next deadline);
//! * with `--api-socket`, the control API thread ([`crate::api`]);
//! * the main thread waits for the first [`Outcome`], then kicks the vCPU threads
//!   out of `KVM_RUN` with a real-time signal until they have all stopped.
//!
//! The first outcome wins: the exit port, a timeout, a guest crash, a monitor
//! error, a signal or `PUT /v1/vm/shutdown`. With `--hold`, after the guest's
//! verdict the API stays up until the shutdown request, a signal or the timeout
//! releases the hold; the exit status stays the guest's.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_bindings::{kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use tracing::{debug, error, info, warn};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};
use vmm_sys_util::timerfd::TimerFd;

use crate::api::ApiState;
use crate::boot::{self, BootPlan};
use crate::error::{
    Result, VmmError, EXIT_DEVICE_LOST, EXIT_GUEST_CRASH, EXIT_MONITOR_ERROR,
    EXIT_SHUTDOWN_REQUESTED, EXIT_TIMEOUT,
};
use crate::exit::{handle_exit, internal_error_reason, Devices, ExitAction};
use crate::irq::{default_irqchip_routes, GsiRouter, KvmIrqBackend};
use crate::layout::{self, MemoryLayout};
use crate::pci::PciBus;
use crate::rnic::{attach_all, RnicPlan, RnicService};
use crate::serial::{Com1, COM1_GSI};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest wrote its status to the exit port.
    GuestExit(u8),
    /// `--timeout` expired.
    Timeout(Duration),
    /// The guest crashed (triple fault, failed entry, KVM internal error).
    GuestCrash(String),
    /// The monitor failed while the guest ran.
    MonitorError(String),
    /// A signal (SIGINT, SIGTERM or SIGHUP) ended the run.
    Signal(i32),
    /// `PUT /v1/vm/shutdown` ended the run before the guest's verdict.
    ShutdownRequested,
    /// The process serving an RNIC (`--rnic socket=PATH`) went away; the text says
    /// which RNIC and what the connection reported.
    DeviceLost(String),
}

/// The name of a signal the monitor handles.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

impl Outcome {
    /// Process exit status for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::GuestExit(s) => i32::from(*s),
            Outcome::Timeout(_) => EXIT_TIMEOUT,
            Outcome::GuestCrash(_) => EXIT_GUEST_CRASH,
            Outcome::MonitorError(_) => EXIT_MONITOR_ERROR,
            Outcome::Signal(signal) => 128 + signal,
            Outcome::ShutdownRequested => EXIT_SHUTDOWN_REQUESTED,
            Outcome::DeviceLost(_) => EXIT_DEVICE_LOST,
        }
    }

    /// The one line printed on stderr at the end.
    pub fn summary(&self, elapsed: Duration) -> String {
        let ms = elapsed.as_millis();
        match self {
            Outcome::GuestExit(s) => {
                format!("rnic-vmm: guest exited with status {s} after {ms} ms")
            }
            Outcome::Timeout(t) => format!(
                "rnic-vmm: error: guest did not exit within {} s (--timeout); \
                 it hung or needs a longer --timeout",
                t.as_secs()
            ),
            Outcome::GuestCrash(why) => format!(
                "rnic-vmm: error: guest crashed after {ms} ms: {why}; \
                 check the guest's serial output"
            ),
            Outcome::MonitorError(why) => format!("rnic-vmm: error: {why}"),
            Outcome::Signal(signal) => {
                format!(
                    "rnic-vmm: error: interrupted ({}) after {ms} ms",
                    signal_name(*signal)
                )
            }
            Outcome::ShutdownRequested => format!(
                "rnic-vmm: error: shut down through the control API after {ms} ms, \
                 before the guest's verdict"
            ),
            Outcome::DeviceLost(why) => format!(
                "rnic-vmm: error: the out-of-process device was lost after {ms} ms: {why}; \
                 check the device process (rnic-device-server) and its log"
            ),
        }
    }
}

/// Shared stop state: the first outcome, a stop flag the vCPU loops check, and
/// the `--hold` release.
#[derive(Default)]
pub struct Shutdown {
    outcome: Mutex<Option<(Outcome, Instant)>>,
    cv: Condvar,
    stop: AtomicBool,
    released: Mutex<bool>,
    release_cv: Condvar,
}

impl Shutdown {
    /// Records `outcome` if no outcome exists yet; returns whether it was recorded.
    pub fn finish(&self, outcome: Outcome) -> bool {
        let mut recorded = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        self.stop.store(true, Ordering::SeqCst);
        if recorded.is_some() {
            return false;
        }
        debug!(?outcome, "outcome");
        *recorded = Some((outcome, Instant::now()));
        self.cv.notify_all();
        true
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<Outcome> {
        let recorded = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        recorded.as_ref().map(|(o, _)| o.clone())
    }

    /// Ends a `--hold` (shutdown request, signal, timeout).
    pub fn release(&self) {
        *self.released.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.release_cv.notify_all();
    }

    /// Blocks until [`Shutdown::release`] was called.
    pub fn wait_release(&self) {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        while !*released {
            released = self
                .release_cv
                .wait(released)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// True once any outcome was recorded.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Blocks until an outcome exists.
    pub fn wait(&self) -> (Outcome, Instant) {
        let mut recorded = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        while recorded.is_none() {
            recorded = self.cv.wait(recorded).unwrap_or_else(|p| p.into_inner());
        }
        recorded.clone().expect("checked above")
    }
}

/// Opens `/dev/kvm` with an error that says what to do.
pub fn open_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| {
        let msg = match e.errno() {
            libc::ENOENT => "/dev/kvm does not exist: KVM is not available on this host; \
                             load the kvm module or run on a machine with KVM"
                .to_string(),
            libc::EACCES | libc::EPERM => "permission denied opening /dev/kvm; \
                                           add your user to the `kvm` group or run as root"
                .to_string(),
            _ => format!("cannot open /dev/kvm: {e}"),
        };
        VmmError::KvmUnavailable(msg)
    })
}

/// Everything needed to start a VM, checked beforehand.
pub struct VmSpec {
    /// Memory layout.
    pub layout: MemoryLayout,
    /// Kernel, modules and command line.
    pub plan: BootPlan,
    /// Serial sink.
    pub serial_out: Box<dyn Write + Send>,
    /// vCPU count.
    pub vcpus: u8,
    /// Guest time limit.
    pub timeout: Option<Duration>,
    /// RNICs to attach, in PCI order.
    pub rnics: Vec<RnicPlan>,
    /// Control API socket.
    pub api_socket: Option<PathBuf>,
    /// Keep the API up after the verdict until released.
    pub hold: bool,
    /// Devices passed through with VFIO (`--vfio-device`), opened; placed on the bus
    /// after the RNICs, their DMA mapped to guest RAM before the guest runs.
    pub vfio: Vec<crate::passthrough::OpenedVfio>,
}

/// Signals that end the run.
const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; `one` lives for the call and `fd` is
        // an eventfd that stays open for the life of the process once published.
        unsafe {
            libc::write(fd, (&one as *const u64).cast(), 8);
        }
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Event loop subscriber: timeout, stop signals, stop.
struct Controller {
    shutdown: Arc<Shutdown>,
    timeout: Option<(TimerFd, Duration)>,
    signals: EventFd,
    stop: EventFd,
    done: Arc<AtomicBool>,
}

impl MutEventSubscriber for Controller {
    fn init(&mut self, ops: &mut EventOps) {
        let mut add = |fd: i32| {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                error!("event loop: cannot watch fd {fd}: {e:?}");
            }
        };
        if let Some((t, _)) = &self.timeout {
            add(t.as_raw_fd());
        }
        add(self.signals.as_raw_fd());
        add(self.stop.as_raw_fd());
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if let Some((t, limit)) = &mut self.timeout {
            if fd == t.as_raw_fd() {
                let _ = t.wait();
                self.shutdown.finish(Outcome::Timeout(*limit));
                self.shutdown.release();
                return;
            }
        }
        if fd == self.signals.as_raw_fd() {
            let _ = self.signals.read();
            self.shutdown
                .finish(Outcome::Signal(LAST_SIGNAL.load(Ordering::SeqCst)));
            self.shutdown.release();
        } else if fd == self.stop.as_raw_fd() {
            let _ = self.stop.read();
            self.done.store(true, Ordering::SeqCst);
        }
    }
}

fn vcpu_loop(mut vcpu: VcpuFd, id: u8, devices: Arc<Devices>, shutdown: Arc<Shutdown>) {
    while !shutdown.stopping() {
        let crash = match vcpu.run() {
            Ok(exit) => match handle_exit(exit, &devices) {
                ExitAction::Resume => None,
                ExitAction::GuestExit(status) => {
                    info!(vcpu = id, status, "guest wrote the exit port");
                    shutdown.finish(Outcome::GuestExit(status));
                    break;
                }
                ExitAction::Crash(why) => Some(why),
                ExitAction::MonitorError(why) => {
                    shutdown.finish(Outcome::MonitorError(why));
                    break;
                }
                ExitAction::InternalError => {
                    // SAFETY: the exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the
                    // active member of the exit union.
                    let sub = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                    Some(internal_error_reason(sub))
                }
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.set_kvm_immediate_exit(0);
                None
            }
            Err(e) => {
                shutdown.finish(Outcome::MonitorError(format!(
                    "KVM_RUN on vCPU {id} failed: {e}"
                )));
                break;
            }
        };
        if let Some(why) = crash {
            let rip = vcpu
                .get_regs()
                .map(|r| format!(" at rip {:#x}", r.rip))
                .unwrap_or_default();
            devices.flush_serial();
            shutdown.finish(Outcome::GuestCrash(format!("vCPU {id}: {why}{rip}")));
            break;
        }
    }
    debug!(vcpu = id, "vCPU thread stopped");
}

/// Result of a finished run.
pub struct RunResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Time from starting the vCPUs to the outcome.
    pub elapsed: Duration,
}

/// Builds the VM from `spec`, runs it to an outcome and tears it down.
pub fn run(kvm: &Kvm, spec: VmSpec) -> Result<RunResult> {
    let vm = Arc::new(kvm.create_vm().map_err(VmmError::kvm("KVM_CREATE_VM"))?);
    if let Err(e) = vm.set_tss_address(layout::KVM_TSS_ADDRESS as usize) {
        warn!("KVM_SET_TSS_ADDR failed ({e}); continuing");
    }
    vm.create_irq_chip()
        .map_err(VmmError::kvm("KVM_CREATE_IRQCHIP"))?;
    // No in-kernel PIT: the monitor serves the PIT's ports itself (`crate::pit`), as
    // tearing KVM's down cost 10-16 ms of every run's exit here.

    // A device in another process maps guest RAM: it must be a shared memfd then.
    let mem = if spec.rnics.iter().any(|p| p.settings.socket.is_some()) {
        boot::create_shared_guest_memory(&spec.layout)?
    } else {
        boot::create_guest_memory(&spec.layout)?
    };
    register_memory(&vm, &mem)?;
    let start_info = spec.plan.write(&mem)?;
    debug!(
        entry = %format!("{:#x}", spec.plan.entry()),
        start_info = %format!("{start_info:#x}"),
        modules = ?spec.plan.placed_modules(),
        "boot image loaded"
    );

    // KVM_CREATE_IRQCHIP installed the default routes: nothing to send until an MSI.
    let router = Arc::new(GsiRouter::over_installed(
        KvmIrqBackend::new(vm.clone()),
        default_irqchip_routes(),
    ));
    let serial_irq = EventFd::new(EFD_NONBLOCK).map_err(VmmError::host("eventfd"))?;
    vm.register_irqfd(&serial_irq, COM1_GSI)
        .map_err(VmmError::kvm("KVM_IRQFD (COM1)"))?;
    let mut pci = PciBus::new();
    let rnics = attach_all(&spec.rnics, &mem, &router, &mut pci)?;
    let shutdown = Arc::new(Shutdown::default());
    let lost_shutdown = shutdown.clone();
    let on_lost: crate::remote::LostHandler = Arc::new(move |why: String| {
        error!("{why}");
        lost_shutdown.finish(Outcome::DeviceLost(why));
        lost_shutdown.release();
    });
    let remotes = crate::remote::attach_all(&spec.rnics, &mem, &router, &mut pci, &on_lost)?;
    // Lives until the run ends: dropping it unmaps guest RAM from the devices' IOMMU.
    let _vfio = crate::passthrough::attach_vfio(
        spec.vfio,
        &mem,
        &router,
        &mut pci,
        crate::pci::FIRST_RNIC_DEVICE + spec.rnics.len() as u8,
    )?;
    let devices = Arc::new(
        Devices::new(Com1::new(spec.serial_out, serial_irq), pci).with_guest_memory(mem.clone()),
    );

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
    let mut vcpus = Vec::new();
    for id in 0..spec.vcpus {
        let vcpu = vm
            .create_vcpu(u64::from(id))
            .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
        let boot = (id == 0).then(|| (spec.plan.entry(), start_info));
        crate::cpu::configure_vcpu(&vcpu, id, &supported, boot)?;
        vcpus.push(vcpu);
    }

    // Signals: a no-op real-time signal to kick vCPUs out of KVM_RUN, and the stop
    // signals. The handlers only do async-signal-safe work (nothing, or an atomic
    // store and write(2)).
    register_signal_handler(SIGRTMIN(), on_kick).map_err(VmmError::host("signal handler"))?;
    let signal_evt = EventFd::new(EFD_NONBLOCK).map_err(VmmError::host("eventfd"))?;
    let signal_reader = signal_evt.try_clone().map_err(VmmError::host("eventfd"))?;
    // The fd is leaked on purpose: the signal handler may use it until exit.
    SIGNAL_FD.store(signal_evt.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(signal_evt);
    for signal in STOP_SIGNALS {
        register_signal_handler(signal, on_stop_signal)
            .map_err(VmmError::host("signal handler"))?;
    }

    let api = match &spec.api_socket {
        Some(path) => Some(crate::api::serve(
            path,
            ApiState {
                rnics: rnics.clone(),
                shutdown: shutdown.clone(),
            },
        )?),
        None => None,
    };
    let started = Instant::now();

    // Event loop thread.
    let stop_evt = EventFd::new(EFD_NONBLOCK).map_err(VmmError::host("eventfd"))?;
    let done = Arc::new(AtomicBool::new(false));
    let timeout = match spec.timeout {
        Some(limit) => {
            let mut t = TimerFd::new().map_err(VmmError::host("timerfd"))?;
            t.reset(limit, None).map_err(VmmError::host("timerfd"))?;
            Some((t, limit))
        }
        None => None,
    };
    let controller = Controller {
        shutdown: shutdown.clone(),
        timeout,
        signals: signal_reader,
        stop: stop_evt.try_clone().map_err(VmmError::host("eventfd"))?,
        done: done.clone(),
    };
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().map_err(VmmError::host("event manager"))?;
    em.add_subscriber(Arc::new(Mutex::new(controller)));
    for rnic in &rnics {
        let service = RnicService::new(rnic.clone(), started)
            .map_err(VmmError::host("RNIC service timer"))?;
        em.add_subscriber(Arc::new(Mutex::new(service)));
    }
    let loop_shutdown = shutdown.clone();
    let event_thread = std::thread::Builder::new()
        .name("rnic-vmm-events".into())
        .spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Err(e) = em.run_with_timeout(100) {
                    loop_shutdown.finish(Outcome::MonitorError(format!("event loop: {e:?}")));
                    break;
                }
            }
        })
        .map_err(VmmError::host("event loop thread"))?;
    let heartbeat_shutdown = shutdown.clone();
    let heartbeat = crate::remote::spawn_heartbeat(&remotes, move || heartbeat_shutdown.stopping())
        .map_err(VmmError::host("device server heartbeat thread"))?;

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let (stopped_sender, vcpu_stopped) = std::sync::mpsc::channel::<()>();
    for (id, vcpu) in vcpus.into_iter().enumerate() {
        let vcpu_devices = devices.clone();
        let vcpu_shutdown = shutdown.clone();
        let stopped = stopped_sender.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("rnic-vmm-vcpu{id}"))
            .spawn(move || {
                vcpu_loop(vcpu, id as u8, vcpu_devices, vcpu_shutdown);
                let _ = stopped.send(());
            })
            .map_err(VmmError::host("vCPU thread"));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                shutdown.finish(Outcome::MonitorError(e.to_string()));
                break;
            }
        }
    }

    drop(stopped_sender);
    let (outcome, at) = shutdown.wait();
    let elapsed = at.duration_since(started);
    if spec.hold && api.is_some() && matches!(outcome, Outcome::GuestExit(_)) {
        info!("guest verdict in; holding the control API");
        eprintln!(
            "rnic-vmm: guest exited with status {}; holding (--hold) until \
             PUT /v1/vm/shutdown, a signal or --timeout",
            outcome.exit_code()
        );
        shutdown.wait_release();
    }

    // Kick every vCPU out of KVM_RUN until all threads have reported that they left
    // their loop. A thread that stopped by itself (the one that saw the exit port)
    // reports at once, so the common case waits for nothing.
    let mut running = threads.len();
    loop {
        while running > 0 && vcpu_stopped.try_recv().is_ok() {
            running -= 1;
        }
        if running == 0 {
            break;
        }
        for t in threads.iter().filter(|t| !t.is_finished()) {
            let _ = t.kill(SIGRTMIN());
        }
        match vcpu_stopped.recv_timeout(Duration::from_millis(2)) {
            Ok(()) => running -= 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // Every vCPU thread has ended (and dropped its sender).
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = stop_evt.write(1);
    let _ = event_thread.join();
    if let Some(heartbeat) = heartbeat {
        let _ = heartbeat.join();
    }
    drop(remotes);
    devices.flush_serial();
    debug!(exits = %devices.counts.summary(), "vCPU exits handled in user space");
    drop(api);
    Ok(RunResult { outcome, elapsed })
}

fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<()> {
    for (slot, region) in mem.iter().enumerate() {
        let host = region.as_ptr() as u64;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host,
            flags: 0,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which outlives the VM
        // (both are dropped at the end of `run`, the VM's vCPUs having stopped).
        unsafe { vm.set_user_memory_region(r) }
            .map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}
