//! The NDIS personality: state shared by the exported functions, the contract verifier, and the
//! life cycle the guest drives (as Windows would): DriverEntry -> MiniportInitializeEx ->
//! Restart/Pause rounds -> a reset (`reset`) -> MiniportHaltEx -> MiniportDriverUnload, with
//! checks after each step.

pub mod api;
pub mod contract;
pub mod datapath_selftest;
pub mod dbgprint;
pub mod exports;
pub mod interrupt;
pub mod lowres;
pub mod ndk;
pub mod netbuf;
pub mod nmr;
pub mod oid;
pub mod pause;
pub mod reset;
pub mod selftest;
pub mod send;
pub mod workitem;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::AtomicU8;

use ndis_abi::*;
use rnic_contract::pci::{MSIX_BAR, REGISTER_BAR};

use crate::loader::LoadedImage;
use crate::pci;
use crate::sync::IrqLock;

/// Interrupt request levels the verifier tracks.
pub const PASSIVE_LEVEL: u8 = 0;
pub const DISPATCH_LEVEL: u8 = 2;
/// The DIRQL the guest reports for every message (what ISRs run at).
pub const DEVICE_IRQL: u8 = 5;

/// IRQL of the code running right now.
pub static IRQL: AtomicU8 = AtomicU8::new(PASSIVE_LEVEL);

/// Where the driver is in its life cycle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Loaded,
    DriverEntry,
    Registered,
    Initializing,
    /// Initialized, data path stopped: where InitializeEx leaves the adapter, and the only
    /// state MiniportHaltEx may be called in.
    Paused,
    /// Inside MiniportRestart.
    Restarting,
    /// Data path running.
    Running,
    /// Inside MiniportPause.
    Pausing,
    Halting,
    Halted,
    Unloading,
    Unloaded,
}

/// Most adapters (RNICs) the guest hosts at once.
pub const MAX_ADAPTERS: usize = 2;
/// MSI-X messages each adapter gets: adapter `i`'s message `m` arrives on IDT vector
/// `MSG_VECTOR_BASE + i * MESSAGES_PER_ADAPTER + m`.
pub const MESSAGES_PER_ADAPTER: u32 = guest_core::irq::MSG_VECTORS as u32 / MAX_ADAPTERS as u32;

/// Distinct cookies handed out as NDIS handles (their addresses are the handle values): one
/// driver handle, and an adapter, interrupt and DMA handle per adapter.
pub struct Cookies {
    pub driver: u8,
    pub adapter: [u8; MAX_ADAPTERS],
    pub interrupt: [u8; MAX_ADAPTERS],
    pub dma: [u8; MAX_ADAPTERS],
}

pub static COOKIES: Cookies = Cookies {
    driver: 0,
    adapter: [0; MAX_ADAPTERS],
    interrupt: [0; MAX_ADAPTERS],
    dma: [0; MAX_ADAPTERS],
};

pub fn driver_handle() -> NDIS_HANDLE {
    &COOKIES.driver as *const u8 as NDIS_HANDLE
}
/// The miniport adapter handle of adapter `i`.
pub fn adapter_handle(i: usize) -> NDIS_HANDLE {
    &COOKIES.adapter[i] as *const u8 as NDIS_HANDLE
}
/// The interrupt handle of adapter `i`.
pub fn interrupt_handle(i: usize) -> NDIS_HANDLE {
    &COOKIES.interrupt[i] as *const u8 as NDIS_HANDLE
}
/// The DMA handle of adapter `i`.
pub fn dma_handle(i: usize) -> NDIS_HANDLE {
    &COOKIES.dma[i] as *const u8 as NDIS_HANDLE
}

/// The adapter whose `kind` cookie `handle` is (None: not one of them).
pub fn index_of(cookies: &'static [u8; MAX_ADAPTERS], handle: NDIS_HANDLE) -> Option<usize> {
    let base = cookies.as_ptr() as u64;
    let h = handle as u64;
    (h >= base && h < base + MAX_ADAPTERS as u64).then(|| (h - base) as usize)
}

/// What `NdisMRegisterInterruptEx` recorded.
#[derive(Clone, Copy)]
pub struct InterruptReg {
    pub ctx: NDIS_HANDLE,
    pub isr: MiniportMessageIsrFn,
    pub dpc: MiniportMessageInterruptDpcFn,
    pub messages: u32,
    pub info_table: *mut IO_INTERRUPT_MESSAGE_INFO,
    pub info_layout: core::alloc::Layout,
}

/// The NDIS-side state of one adapter (one RNIC).
pub struct AdapterState {
    pub device: Option<pci::Device>,
    pub adapter_context: Option<NDIS_HANDLE>,
    /// The general attributes the driver set in MiniportInitializeEx, once accepted.
    pub general_attributes: Option<guest_core::attributes::GeneralAttributes>,
    pub interrupt: Option<InterruptReg>,
    pub interrupt_registered_ever: bool,
    pub dma_registered: bool,
    /// The driver's MiniportProcessSGList, from its scatter/gather DMA registration.
    pub process_sg_list: Option<MiniportProcessSgListFn>,
    pub maps: Vec<(u64, u32)>,
    pub shared: BTreeMap<u64, (u32, bool)>,
    /// Pool blocks allocated with this adapter's handle and not freed yet (MiniportHaltEx
    /// must free them).
    pub pool: alloc::collections::BTreeSet<u64>,
}

impl AdapterState {
    const fn new() -> Self {
        AdapterState {
            device: None,
            adapter_context: None,
            general_attributes: None,
            interrupt: None,
            interrupt_registered_ever: false,
            dma_registered: false,
            process_sg_list: None,
            maps: Vec::new(),
            shared: BTreeMap::new(),
            pool: alloc::collections::BTreeSet::new(),
        }
    }
}

/// All NDIS-side state: the driver's, and each adapter's.
pub struct State {
    pub phase: Phase,
    pub driver_object: *mut DRIVER_OBJECT,
    pub registry_path: *mut UNICODE_STRING,
    pub driver_context: NDIS_HANDLE,
    pub chars: Option<NDIS_MINIPORT_DRIVER_CHARACTERISTICS>,
    pub ndis_version: (u8, u8),
    pub registered_ever: bool,
    pub deregistered: bool,
    /// Per adapter, indexed like the handles.
    pub adapters: [AdapterState; MAX_ADAPTERS],
    pub pool: BTreeMap<u64, (u32, u32)>,
    pub violations: Vec<String>,
}

// SAFETY: raw pointers in State refer to guest-owned memory; access is serialized by IrqLock.
unsafe impl Send for State {}

pub static STATE: IrqLock<State> = IrqLock::new(State {
    phase: Phase::Loaded,
    driver_object: core::ptr::null_mut(),
    registry_path: core::ptr::null_mut(),
    driver_context: core::ptr::null_mut(),
    chars: None,
    ndis_version: (0, 0),
    registered_ever: false,
    deregistered: false,
    adapters: [const { AdapterState::new() }; MAX_ADAPTERS],
    pool: BTreeMap::new(),
    violations: Vec::new(),
});

/// Records a contract violation (reported on serial now, and in the verdict).
pub fn violation(msg: String) {
    crate::println!("ndis: contract violation: {msg}");
    STATE.lock().violations.push(msg);
}

fn ends(reason: &str, status: u32) -> ! {
    crate::println!("verdict: FAIL ({reason})");
    crate::cpu::exit(status)
}

fn status_name(s: NDIS_STATUS) -> String {
    match s {
        NDIS_STATUS_SUCCESS => String::from("NDIS_STATUS_SUCCESS"),
        NDIS_STATUS_PENDING => String::from("NDIS_STATUS_PENDING"),
        NDIS_STATUS_FAILURE => String::from("NDIS_STATUS_FAILURE"),
        NDIS_STATUS_RESOURCES => String::from("NDIS_STATUS_RESOURCES"),
        NDIS_STATUS_NOT_SUPPORTED => String::from("NDIS_STATUS_NOT_SUPPORTED"),
        NDIS_STATUS_BAD_VERSION => String::from("NDIS_STATUS_BAD_VERSION"),
        NDIS_STATUS_BAD_CHARACTERISTICS => String::from("NDIS_STATUS_BAD_CHARACTERISTICS"),
        NDIS_STATUS_DEVICE_FAILED => String::from("NDIS_STATUS_DEVICE_FAILED"),
        NDIS_STATUS_ADAPTER_NOT_FOUND => String::from("NDIS_STATUS_ADAPTER_NOT_FOUND"),
        NDIS_STATUS_HARD_ERRORS => String::from("NDIS_STATUS_HARD_ERRORS"),
        NDIS_STATUS_RESET_IN_PROGRESS => String::from("NDIS_STATUS_RESET_IN_PROGRESS"),
        other => format!("{other:#010x}"),
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// Builds `CM_PARTIAL_RESOURCE_LIST` for adapter `adapter`: BAR0, BAR2 and its message
/// interrupts.
fn resource_list(dev: &pci::Device, adapter: usize) -> Vec<u64> {
    let descs = [
        CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(
            dev.bars[REGISTER_BAR].addr as i64,
            dev.bars[REGISTER_BAR].size as u32,
            CM_RESOURCE_MEMORY_READ_WRITE,
        ),
        CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(
            dev.bars[MSIX_BAR].addr as i64,
            dev.bars[MSIX_BAR].size as u32,
            CM_RESOURCE_MEMORY_READ_WRITE,
        ),
        CM_PARTIAL_RESOURCE_DESCRIPTOR::message_interrupt(
            guest_core::irq::MSG_VECTOR_BASE as u32 + adapter as u32 * MESSAGES_PER_ADAPTER,
            DEVICE_IRQL as u16,
            1,
        ),
    ];
    let bytes = cm_partial_resource_list_size(descs.len());
    let mut buf: Vec<u64> = alloc::vec![0; bytes.div_ceil(8)];
    let list = buf.as_mut_ptr() as *mut CM_PARTIAL_RESOURCE_LIST;
    // SAFETY: `buf` holds `bytes` bytes, 8-aligned; descriptors start at offset 8.
    unsafe {
        (*list).Version = 1;
        (*list).Revision = 1;
        (*list).Count = descs.len() as u32;
        let first = (list as *mut u8).add(CM_PARTIAL_RESOURCE_LIST_DESCRIPTORS_OFFSET)
            as *mut CM_PARTIAL_RESOURCE_DESCRIPTOR;
        for (i, d) in descs.iter().enumerate() {
            first.add(i).write_unaligned(*d);
        }
    }
    buf
}

/// Drives the whole life cycle of the loaded driver; never returns (exits with the verdict).
/// Rounds of Restart/Pause the guest drives between InitializeEx and HaltEx.
const PAUSE_RESTART_ROUNDS: u32 = 2;

/// NDIS's data-path state machine after a successful InitializeEx: the adapter starts Paused;
/// NDIS restarts it (Running), lets it run, pauses it (Paused) and does it again; HaltEx
/// follows only on a paused adapter. A pause may pend: the guest waits for NdisMPauseComplete
/// (`pause`). Round 1 pauses adapter 0 while sends are in flight
/// ([`pause_with_sends_in_flight`]); round 2 checks a frame still goes through after the
/// restart (both but with a peer guest on the wire, `guest.ethernet=peer`). MiniportRestart
/// may not pend (the driver does not import NdisMRestartComplete).
/// A restart that fails leaves the adapter Paused (as NDIS does) and ends the rounds.
fn drive_pause_restart(
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    adapters: &[(usize, NDIS_HANDLE)],
) {
    STATE.lock().phase = Phase::Paused;
    let (Some(restart), Some(_)) = (chars.RestartHandler, chars.PauseHandler) else {
        violation(String::from(
            "the driver registered no RestartHandler/PauseHandler (both are required)",
        ));
        return;
    };
    // With a peer guest on the wire only the exchange's frames may travel (its capture is
    // checked frame by frame): no burst for the pause, no frame after the restart.
    let peer = ETHERNET_PEER.load(core::sync::atomic::Ordering::Relaxed);
    // Whether the burst in flight at the round-1 pause went through (then a frame must still
    // go through after the restart).
    let mut sent_before_pause = false;
    for round in 1..=PAUSE_RESTART_ROUNDS {
        for &(i, ctx) in adapters {
            if !restart_one(restart, i, ctx, round) {
                return;
            }
        }
        STATE.lock().phase = Phase::Running;
        // Let the restart's interrupts and DPCs land (at most the 10 ms this once idled).
        interrupt::settle(10);
        if round == 1 {
            let suite = NDK_SUITE.load(core::sync::atomic::Ordering::Relaxed);
            let bench = NDK_BENCH.load(core::sync::atomic::Ordering::Relaxed);
            for &(i, ctx) in adapters {
                lowres::during("oid", || run_oid_matrix(chars, i));
                if i == 0 {
                    lowres::during("send", || run_sends(chars, i));
                    lowres::during("nmr-attach", || nmr::host_client(chars, ctx));
                }
            }
            lowres::during("ndk", || ndk::host(chars, adapters, (suite, bench)));
        } else if !peer {
            lowres::during("send", || {
                send_after_restart(chars, adapters[0], sent_before_pause)
            });
        }
        if let Some(ret) = chars.ReturnNetBufferListsHandler {
            send::return_unclaimed(ret, adapters);
        }
        for &(i, ctx) in adapters {
            if round == 1 && i == 0 && !peer {
                sent_before_pause = lowres::during("pause", || pause_with_sends_in_flight(chars));
            } else {
                pause_one(chars, i, ctx, round);
            }
        }
        STATE.lock().phase = Phase::Paused;
    }
}

/// MiniportRestart of adapter `i` (phase Restarting during the call); false if the rounds
/// must end (the restart failed or pended).
fn restart_one(restart: MiniportRestartFn, i: usize, ctx: NDIS_HANDLE, round: u32) -> bool {
    let mut restart_params = NDIS_MINIPORT_RESTART_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NDIS_MINIPORT_RESTART_PARAMETERS_REVISION_1,
            NDIS_SIZEOF_MINIPORT_RESTART_PARAMETERS_REVISION_1,
        ),
        RestartAttributes: core::ptr::null_mut(),
        Flags: 0,
    };
    STATE.lock().phase = Phase::Restarting;
    pause::set(i, pause::DataPath::Restarting);
    crate::println!("ndis: MiniportRestart (round {round})");
    // SAFETY: driver handler with the context it registered; the parameters are a live
    // local for the duration of the call.
    let status = unsafe { restart(ctx, (&raw mut restart_params).cast()) };
    interrupt::run_pending_dpcs();
    crate::println!("ndis: MiniportRestart returned {}", status_name(status));
    if status == NDIS_STATUS_PENDING {
        violation(String::from(
            "MiniportRestart returned NDIS_STATUS_PENDING, but the driver does not import NdisMRestartComplete",
        ));
    }
    if status != NDIS_STATUS_SUCCESS {
        STATE.lock().phase = Phase::Paused;
        pause::set(i, pause::DataPath::Paused);
        return false;
    }
    pause::set(i, pause::DataPath::Running);
    true
}

/// MiniportPause of adapter `i` (phase Pausing during the call; the rules are
/// `pause::pause_returned`'s). Returns the status; a pending pause is left pending.
fn call_pause(pause: MiniportPauseFn, i: usize, ctx: NDIS_HANDLE, round: u32) -> NDIS_STATUS {
    let mut pause_params = NDIS_MINIPORT_PAUSE_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NDIS_MINIPORT_PAUSE_PARAMETERS_REVISION_1,
            NDIS_SIZEOF_MINIPORT_PAUSE_PARAMETERS_REVISION_1,
        ),
        Flags: 0,
        PauseReason: NDIS_PAUSE_NDIS_INTERNAL,
    };
    STATE.lock().phase = Phase::Pausing;
    pause::set(
        i,
        pause::DataPath::Pausing {
            pended: false,
            completed: false,
        },
    );
    crate::println!("ndis: MiniportPause (round {round})");
    // SAFETY: as for the restart call.
    let status = unsafe { pause(ctx, (&raw mut pause_params).cast()) };
    crate::println!("ndis: MiniportPause returned {}", status_name(status));
    pause::pause_returned(i, status);
    status
}

/// MiniportPause of adapter `i`; a pause that pends is waited for, the receive indications
/// still up (a frame that arrived after the guest returned the others) returned meanwhile,
/// as the protocols above NDIS would.
fn pause_one(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS, i: usize, ctx: NDIS_HANDLE, round: u32) {
    let Some(pause) = chars.PauseHandler else {
        return;
    };
    call_pause(pause, i, ctx, round);
    interrupt::run_pending_dpcs();
    if pause::state(i) != pause::DataPath::Paused {
        if let Some(ret) = chars.ReturnNetBufferListsHandler {
            send::return_held(ret, i, ctx);
        }
        pause::wait_for_pause(i);
    }
}

/// Frames of the burst in flight when adapter 0 is paused.
const IN_FLIGHT_FRAMES: usize = 4;
/// How long the guest lets the paused adapter sit, to see nothing more arrives from it.
const PAUSED_QUIET_MS: u64 = 50;

/// "A pause while sends are in flight" (round 1, adapter 0): a frame is sent and (through a
/// loopback wire) received and held, so a receive indication is up; then, with interrupts
/// off so that no DPC can complete anything, a burst of [`IN_FLIGHT_FRAMES`] is handed to
/// the driver and MiniportPause called: it must pend (`MiniportPause_Return`). A send during
/// Pausing must complete at once with `NDIS_STATUS_PAUSED`. Interrupts back on, the burst
/// completes from the DPC; the held indication is returned; NdisMPauseComplete must follow,
/// exactly once, after the last of them (`NdisPauseComplete`, `NdisTimedPauseComplete`); and
/// nothing is completed or indicated once Paused (`NdisPausedDataPath`). Returns whether every
/// frame of the burst was sent (completed with NDIS_STATUS_SUCCESS).
fn pause_with_sends_in_flight(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS) -> bool {
    const I: usize = 0;
    let (general, ctx) = initialized_adapter(I);
    let (Some(send_handler), Some(ret), Some(pause), Some(general), Some(ctx)) = (
        chars.SendNetBufferListsHandler,
        chars.ReturnNetBufferListsHandler,
        chars.PauseHandler,
        general,
        ctx,
    ) else {
        violation(String::from(
            "no send, return or pause handler: the pause with sends in flight cannot run",
        ));
        return false;
    };
    crate::println!("ndis: pause with sends in flight (adapter {I})");
    let mac = general.mac;
    let held_frame = send::post_chain(
        send_handler,
        ctx,
        alloc::vec![send::test_frame(mac, 60, 0x40)],
    );
    held_frame.wait();
    if ETHERNET_LOOPBACK.load(core::sync::atomic::Ordering::Relaxed) {
        interrupt::wait_until(1000, || !netbuf::NETBUF.lock().received.is_empty());
    }
    let were_enabled = crate::cpu::interrupts_enabled();
    crate::cpu::cli();
    let frames = (0..IN_FLIGHT_FRAMES)
        .map(|n| send::test_frame(mac, 60 + 64 * n, 0x50 + n as u8))
        .collect();
    let burst = send::post_chain(send_handler, ctx, frames);
    let sends_held = burst.statuses().iter().filter(|s| s.is_none()).count();
    let receives_held = netbuf::NETBUF.lock().received.len();
    let status = call_pause(pause, I, ctx, 1);
    let pended = status == NDIS_STATUS_PENDING;
    crate::println!(
        "ndis: MiniportPause with {sends_held} send NBL(s) in flight and {receives_held} receive indication(s) up: {}",
        status_name(status)
    );
    // NDIS sends while Pausing, never once Paused: only a pause that pended gets this send.
    let late = pended.then(|| {
        send::post_chain(
            send_handler,
            ctx,
            alloc::vec![send::test_frame(mac, 60, 0x60)],
        )
    });
    if let Some(late) = &late {
        match late.statuses()[0] {
            Some(NDIS_STATUS_PAUSED) => crate::println!(
                "ndis: a send while Pausing completed at once with NDIS_STATUS_PAUSED"
            ),
            other => violation(format!(
                "a send while Pausing must complete at once with NDIS_STATUS_PAUSED (got {})",
                other.map_or(String::from("no completion"), status_name)
            )),
        }
    }
    if were_enabled {
        crate::cpu::sti();
    }
    if let Some(late) = late {
        late.wait();
    }
    let sent = burst.wait() == IN_FLIGHT_FRAMES;
    send::return_held(ret, I, ctx);
    let paused = pause::state(I) == pause::DataPath::Paused || pause::wait_for_pause(I);
    if pended && paused {
        crate::println!("ndis: the pending pause completed through NdisMPauseComplete");
    }
    let before = STATE.lock().violations.len();
    interrupt::idle(PAUSED_QUIET_MS);
    let after = STATE.lock().violations.len();
    crate::println!(
        "ndis: paused adapter {I} quiet for {PAUSED_QUIET_MS} ms: {} send completion(s) or indication(s) after the pause",
        after - before
    );
    sent
}

/// Round 2: after the pending pause and MiniportRestart, a frame still goes through adapter 0
/// (`must`: the burst before the pause went through; otherwise the device is not passing
/// frames, as under a fault plan that made it fatal, and the outcome is only reported).
fn send_after_restart(
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    (i, ctx): (usize, NDIS_HANDLE),
    must: bool,
) {
    let (Some(send_handler), Some(general)) =
        (chars.SendNetBufferListsHandler, initialized_adapter(i).0)
    else {
        return;
    };
    let burst = send::post_chain(
        send_handler,
        ctx,
        alloc::vec![send::test_frame(general.mac, 60, 0x70)],
    );
    match (burst.wait() == 1, must) {
        (true, _) => crate::println!("ndis: after the restart a frame still goes through"),
        (false, _) if reset::hardware_failed(i) => crate::println!(
            "ndis: the frame after the restart failed: the driver reported a hardware failure (NDIS_STATUS_HARD_ERRORS), which the reset step must clear"
        ),
        (false, true) => lowres::outcome_failed(String::from(
            "after the pause and MiniportRestart, a frame sent did not complete with NDIS_STATUS_SUCCESS (the frames before the pause did)",
        )),
        (false, false) => crate::println!(
            "ndis: after the restart the frame did not go through (nor did the frames before the pause)"
        ),
    }
}

/// The general attributes and the adapter context InitializeEx left for adapter `i` (either
/// may be missing).
fn initialized_adapter(
    i: usize,
) -> (
    Option<guest_core::attributes::GeneralAttributes>,
    Option<NDIS_HANDLE>,
) {
    let s = STATE.lock();
    let a = &s.adapters[i];
    (a.general_attributes.clone(), a.adapter_context)
}

/// Whether the plan says the RNIC's wire loops frames back (`guest.ethernet=loopback`).
static ETHERNET_LOOPBACK: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Sets what the plan says of the wire (called once, before [`run`]): with a loopback wire
/// the guest waits for its frames to come back; without one it does not wait for frames
/// the device drops (docs/device-spec.md §5.6).
pub fn set_ethernet_loopback(loopback: bool) {
    ETHERNET_LOOPBACK.store(loopback, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the plan says the wire goes to a peer guest (`guest.ethernet=peer`).
static ETHERNET_PEER: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Sets whether the wire goes to a peer guest running the same plan (called once, before
/// [`run`]): the sends become [`send::exchange_with_peer`].
pub fn set_ethernet_peer(peer: bool) {
    ETHERNET_PEER.store(peer, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the plan asks for the NDK consumer suite (`guest.ndk=suite`).
static NDK_SUITE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Whether the plan asks for the NDK figures (`guest.ndk=bench`).
static NDK_BENCH: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Sets what the plan says of NDK (called once, before [`run`]).
pub fn set_ndk(suite: bool, bench: bool) {
    NDK_SUITE.store(suite, core::sync::atomic::Ordering::Relaxed);
    NDK_BENCH.store(bench, core::sync::atomic::Ordering::Relaxed);
}

/// Sends frames while Running ([`send::send_frames`]) and checks `OID_GEN_XMIT_OK` counts them.
fn run_sends(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS, i: usize) {
    let (general, ctx) = initialized_adapter(i);
    let (Some(send), Some(oid_handler), Some(general), Some(ctx)) = (
        chars.SendNetBufferListsHandler,
        chars.OidRequestHandler,
        general,
        ctx,
    ) else {
        violation(String::from(
            "no send or OID handler: the send test cannot run",
        ));
        return;
    };
    let before = oid::query_counter(oid_handler, ctx, OID_GEN_XMIT_OK);
    let rcv_before = oid::query_counter(oid_handler, ctx, OID_GEN_RCV_OK);
    let peer = ETHERNET_PEER.load(core::sync::atomic::Ordering::Relaxed);
    let (ok, ret) = match chars.ReturnNetBufferListsHandler {
        Some(ret) if peer => (send::exchange_with_peer(send, ret, ctx, general.mac), None),
        ret => (send::send_frames(send, ctx, general.mac), ret),
    };
    if let Some(ret) = ret {
        let loopback = ETHERNET_LOOPBACK.load(core::sync::atomic::Ordering::Relaxed);
        let back = send::receive_frames(ret, ctx, general.mac, loopback);
        let rcv_after = oid::query_counter(oid_handler, ctx, OID_GEN_RCV_OK);
        if let (Some(b), Some(a)) = (rcv_before, rcv_after) {
            crate::println!("ndis: OID_GEN_RCV_OK: {b} before, {a} after the receives");
            if a.wrapping_sub(b) < back as u64 {
                violation(format!(
                    "OID_GEN_RCV_OK rose by {} for {back} frames received",
                    a.wrapping_sub(b)
                ));
            }
        }
    }
    let after = oid::query_counter(oid_handler, ctx, OID_GEN_XMIT_OK);
    if let (Some(before), Some(after)) = (before, after) {
        crate::println!("ndis: OID_GEN_XMIT_OK: {before} before, {after} after the sends");
        if after - before != ok as u64 {
            violation(format!(
                "OID_GEN_XMIT_OK rose by {} for {ok} frames sent",
                after.wrapping_sub(before)
            ));
        }
    }
}

/// Runs the OID matrix ([`oid::run_matrix`]) once the adapter is Running.
fn run_oid_matrix(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS, i: usize) {
    let (general, ctx) = initialized_adapter(i);
    let (Some(handler), Some(general), Some(ctx)) = (chars.OidRequestHandler, general, ctx) else {
        violation(String::from(
            "no OidRequestHandler or no general attributes: the OID matrix cannot run",
        ));
        return;
    };
    crate::println!(
        "ndis: OID matrix: {} claimed OIDs",
        general.supported_oids.len()
    );
    oid::run_matrix(handler, ctx, &general, i);
}

pub fn run(devices: &[pci::Device], image: LoadedImage, heap_baseline: usize) -> ! {
    // Kernel-side objects the driver sees.
    let mut drv: Box<DRIVER_OBJECT> = Box::new(
        // SAFETY: DRIVER_OBJECT is plain data (integers, raw pointers, nullable fn pointers):
        // all-zero is a valid value.
        unsafe { core::mem::zeroed() },
    );
    let mut name16 = utf16("\\Driver\\rnic");
    let mut reg16 = utf16("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\rnic");
    drv.Type = IO_TYPE_DRIVER;
    drv.Size = core::mem::size_of::<DRIVER_OBJECT>() as i16;
    drv.DriverStart = image.base as *mut c_void;
    drv.DriverSize = image.size as u32;
    drv.DriverInit = image.entry as *mut c_void;
    drv.DriverName = UNICODE_STRING {
        Length: (name16.len() * 2) as u16,
        MaximumLength: (name16.len() * 2) as u16,
        Buffer: name16.as_mut_ptr(),
    };
    let mut reg = Box::new(UNICODE_STRING {
        Length: (reg16.len() * 2) as u16,
        MaximumLength: (reg16.len() * 2) as u16,
        Buffer: reg16.as_mut_ptr(),
    });
    let drv_ptr: *mut DRIVER_OBJECT = &mut *drv;
    let reg_ptr: *mut UNICODE_STRING = &mut *reg;
    {
        let mut s = STATE.lock();
        for (i, dev) in devices.iter().enumerate() {
            s.adapters[i].device = Some(*dev);
        }
        s.driver_object = drv_ptr;
        s.registry_path = reg_ptr;
        s.phase = Phase::DriverEntry;
    }
    for dev in devices {
        pci::enable_memory_and_bus_master(dev.bdf);
    }

    // DriverEntry
    crate::println!("ndis: DriverEntry");
    // SAFETY: `entry` is the image's entry point (inside the loaded image, checked by the
    // parser); DriverEntry has this signature by the Windows contract.
    let entry: DriverEntryFn = unsafe { core::mem::transmute::<u64, DriverEntryFn>(image.entry) };
    // SAFETY: calling into the driver with valid kernel objects, at PASSIVE_LEVEL.
    let status = unsafe { entry(drv_ptr, reg_ptr) };
    let (registered, deregistered) = {
        let s = STATE.lock();
        (s.chars.is_some(), s.deregistered)
    };
    if !nt_success(status) {
        if registered && !deregistered {
            violation(String::from(
                "DriverEntry failed after NdisMRegisterMiniportDriver without NdisMDeregisterMiniportDriver",
            ));
        }
        let why = format!("DriverEntry returned {status:#010x}");
        if !lowres::excused(&why) {
            ends(&why, crate::STATUS_VIOLATION);
        }
        // `finish` never returns: nothing of this frame may stay on the heap it counts.
        drop(why);
        // Under low resources a failed DriverEntry is the outcome: the driver must have
        // released everything on its way out (no unload follows).
        STATE.lock().phase = Phase::Unloaded;
        nmr::unload_returned();
        finish((drv, reg, reg16, name16), image, heap_baseline, Vec::new());
    }
    let chars = match STATE.lock().chars {
        Some(c) => c,
        None => ends(
            "DriverEntry succeeded without registering a miniport driver",
            crate::STATUS_VIOLATION,
        ),
    };
    STATE.lock().phase = Phase::Registered;

    // MiniportInitializeEx, once per adapter.
    let Some(init) = chars.InitializeHandlerEx else {
        ends("no InitializeHandlerEx", crate::STATUS_VIOLATION)
    };
    let mut initialized: Vec<(usize, NDIS_HANDLE)> = Vec::new();
    let mut init_failures: Vec<String> = Vec::new();
    for (i, dev) in devices.iter().enumerate() {
        match initialize(init, i, dev) {
            Ok(ctx) => initialized.push((i, ctx)),
            Err(why) if lowres::excused(&why) => {}
            Err(why) => init_failures.push(why),
        }
    }

    if !initialized.is_empty() {
        drive_pause_restart(&chars, &initialized);
        lowres::during("reset", || reset::drive_reset(&chars, &initialized));
        // Let anything still in flight settle (interrupts, DPCs), then halt the paused
        // adapters: done once they are quiet, at most the 20 ms this once idled.
        interrupt::settle(20);
        for &(i, ctx) in &initialized {
            STATE.lock().phase = Phase::Halting;
            crate::println!("ndis: MiniportHaltEx{}", adapter_suffix(i));
            if let Some(halt) = chars.HaltHandlerEx {
                // SAFETY: driver handler with the context it registered.
                unsafe { halt(ctx, NdisHaltDeviceDisabled) };
            }
            interrupt::run_pending_dpcs();
            pause::set(i, pause::DataPath::Down);
        }
    }
    // Windows does not halt an adapter whose initialization failed; the driver must have
    // released everything itself.
    STATE.lock().phase = Phase::Halted;
    for i in 0..devices.len() {
        let halted = initialized.iter().any(|&(a, _)| a == i);
        check_adapter_released(
            if halted {
                "MiniportHaltEx"
            } else {
                "failed MiniportInitializeEx"
            },
            i,
        );
    }
    drop(initialized);

    // Unload
    STATE.lock().phase = Phase::Unloading;
    crate::println!("ndis: MiniportDriverUnload");
    match chars.UnloadHandler {
        // SAFETY: driver handler, called with its own DRIVER_OBJECT.
        Some(unload) => unsafe { unload(drv_ptr) },
        None => violation(String::from("no UnloadHandler")),
    }
    interrupt::run_pending_dpcs();
    nmr::unload_returned();
    {
        let mut s = STATE.lock();
        s.phase = Phase::Unloaded;
        if !s.deregistered {
            drop(s);
            violation(String::from(
                "MiniportDriverUnload returned without NdisMDeregisterMiniportDriver",
            ));
        }
    }
    finish(
        (drv, reg, reg16, name16),
        image,
        heap_baseline,
        init_failures,
    )
}

/// The kernel-side objects the driver saw (its DRIVER_OBJECT, registry path and their
/// strings), held only to be released before the heap count.
type DriverObjects = (Box<DRIVER_OBJECT>, Box<UNICODE_STRING>, Vec<u16>, Vec<u16>);

/// After unload (or a DriverEntry that failed under low resources): the pool leak check, the
/// unload of the image, the heap count against `heap_baseline`, and the verdict;
/// `init_failures` are the failed InitializeEx calls (already excused under low resources).
fn finish(
    objects: DriverObjects,
    image: LoadedImage,
    heap_baseline: usize,
    init_failures: Vec<String>,
) -> ! {
    let leaked_pool: Vec<(u64, (u32, u32))> =
        STATE.lock().pool.iter().map(|(k, v)| (*k, *v)).collect();
    for (va, (len, tag)) in &leaked_pool {
        let tag_s: String = tag
            .to_le_bytes()
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        violation(format!(
            "memory leak: {len} bytes at {va:#x} (tag '{tag_s}') from NdisAllocateMemoryWithTagPriority never freed"
        ));
    }
    drop(leaked_pool);

    // Release kernel-side objects, then compare the heap with the baseline taken before the
    // driver was loaded: every allocation made on the driver's behalf must be gone.
    drop(objects);
    let (isr_calls, isr_claimed, dpc_runs, stray) = interrupt::counters();
    let (ticks, spurious, unexpected) = crate::interrupts::counters();
    let nop_seen = dbgprint::nop_completed_seen();
    crate::loader::unload(image);
    let mut reasons: Vec<String> = {
        let mut s = STATE.lock();
        // The attributes' OID lists are the guest's own copies, not the driver's; emptied
        // maps keep their nodes.
        s.adapters = [const { AdapterState::new() }; MAX_ADAPTERS];
        s.pool = BTreeMap::new();
        // Emptied maps keep their nodes: start the bookkeeping afresh (leaks were reported).
        *netbuf::NETBUF.lock() = netbuf::NetBufState::new();
        workitem::reset();
        ndk::reset();
        nmr::reset();
        reset::reset_state();
        pause::reset();
        send::reset();
        core::mem::take(&mut s.violations)
    };
    // Failed initializations first (they are the cause); moved in before the heap count so
    // that their strings count as the list's own.
    let init_failed = !init_failures.is_empty();
    reasons.splice(0..0, init_failures);
    let heap = crate::heap::stats();
    // Allocations owned by the violation list itself (its buffer and its strings).
    let own =
        (reasons.capacity() > 0) as usize + reasons.iter().filter(|r| r.capacity() > 0).count();
    let leaked = heap.live_allocs.saturating_sub(heap_baseline + own);
    crate::println!(
        "ndis: summary: {isr_calls} ISR calls ({isr_claimed} claimed), {dpc_runs} DPCs, {stray} stray; {ticks} timer ticks, {spurious} spurious, {unexpected} unexpected vectors; heap: {leaked} allocations live beyond the pre-load baseline"
    );
    if leaked > 0 {
        reasons.push(format!(
            "heap: {leaked} allocations still live after unload"
        ));
    }
    // An injected allocation failure (guest.lowres) may leave the adapter without interrupts
    // or its NOP: only the rules and the leak checks above still hold then.
    if !init_failed && !lowres::degraded() {
        if isr_claimed == 0 {
            reasons.push(String::from(
                "the driver's message ISR never claimed an interrupt",
            ));
        }
        if dpc_runs == 0 {
            reasons.push(String::from("no message DPC ran"));
        }
        if !nop_seen {
            reasons.push(String::from("the driver never reported the NOP completion"));
        }
    }
    lowres::print_summary();
    if let Some(first) = reasons.first() {
        ends(first, crate::STATUS_VIOLATION);
    }
    crate::println!("verdict: PASS");
    crate::cpu::exit(crate::STATUS_PASS)
}

/// MiniportInitializeEx of adapter `i` on `dev`: its adapter context, or why it failed (the
/// violations are recorded).
fn initialize(
    init: MiniportInitializeFn,
    i: usize,
    dev: &pci::Device,
) -> Result<NDIS_HANDLE, String> {
    let resources = resource_list(dev, i);
    let mut params = Box::new(NDIS_MINIPORT_INIT_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS,
            NDIS_MINIPORT_INIT_PARAMETERS_REVISION_1,
            NDIS_SIZEOF_MINIPORT_INIT_PARAMETER_REVISION_1,
        ),
        Flags: 0,
        AllocatedResources: resources.as_ptr() as *mut NDIS_RESOURCE_LIST,
        IMDeviceInstanceContext: core::ptr::null_mut(),
        MiniportAddDeviceContext: core::ptr::null_mut(),
        IfIndex: 1 + i as u32,
        NetLuid: 0x0006_0000_0000_0001 + i as u64,
        DefaultPortAuthStates: core::ptr::null_mut(),
        PciDeviceCustomProperties: core::ptr::null_mut(),
    });
    let driver_context = STATE.lock().driver_context;
    STATE.lock().phase = Phase::Initializing;
    crate::println!("ndis: MiniportInitializeEx{}", adapter_suffix(i));
    // SAFETY: handler supplied by the driver; arguments are live kernel objects (the
    // parameters and resources outlive the call).
    let status = unsafe { init(adapter_handle(i), driver_context, &mut *params) };
    interrupt::run_pending_dpcs();
    STATE.lock().phase = Phase::Paused;
    crate::println!(
        "ndis: MiniportInitializeEx returned {}",
        status_name(status)
    );
    let (adapter_ctx, general) = {
        let s = STATE.lock();
        let a = &s.adapters[i];
        (a.adapter_context, a.general_attributes.is_some())
    };
    let init_ok = status == NDIS_STATUS_SUCCESS;
    if init_ok {
        pause::set(i, pause::DataPath::Paused);
    }
    if init_ok && adapter_ctx.is_none() {
        violation(String::from(
            "MiniportInitializeEx succeeded without NdisMSetMiniportAttributes(registration attributes)",
        ));
    }
    if init_ok && !general {
        violation(String::from(
            "MiniportInitializeEx succeeded without NdisMSetMiniportAttributes(general attributes)",
        ));
    }
    if status == NDIS_STATUS_PENDING {
        violation(String::from(
            "MiniportInitializeEx may not return NDIS_STATUS_PENDING",
        ));
    }
    match adapter_ctx {
        Some(ctx) if init_ok => Ok(ctx),
        _ => Err(format!(
            "MiniportInitializeEx{} returned {}",
            adapter_suffix(i),
            status_name(status)
        )),
    }
}

/// How log lines name adapter `i`: nothing for the first (the single-RNIC logs stay as they
/// were), ` (adapter i)` for the others.
fn adapter_suffix(i: usize) -> String {
    if i == 0 {
        String::new()
    } else {
        format!(" (adapter {i})")
    }
}

/// After halt (or a failed initialize): adapter `i`'s resources must all be released.
pub fn check_adapter_released(when: &str, i: usize) {
    let (irq, dma, maps, shared, pool) = {
        let guard = STATE.lock();
        let s = &guard.adapters[i];
        let pool: Vec<(u64, u32)> = s
            .pool
            .iter()
            .map(|va| (*va, guard.pool.get(va).map_or(0, |p| p.0)))
            .collect();
        (
            s.interrupt.is_some(),
            s.dma_registered,
            s.maps.clone(),
            s.shared.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            pool,
        )
    };
    for (va, len) in pool {
        violation(format!(
            "{when} returned with {len} bytes at {va:#x} allocated with the adapter handle (NdisAllocateMemoryWithTagPriority) not freed"
        ));
    }
    if irq {
        violation(format!(
            "{when} returned with the interrupt still registered (no NdisMDeregisterInterruptEx)"
        ));
        interrupt::force_deregister(i);
    }
    if dma {
        violation(format!(
            "{when} returned with scatter/gather DMA still registered"
        ));
    }
    for (va, len) in maps {
        violation(format!(
            "{when} returned with I/O space {va:#x} (+{len:#x}) still mapped"
        ));
    }
    for leak in netbuf::leaks().into_iter().chain(send::leaks()) {
        violation(format!("{when} returned with {leak}"));
    }
    let work_items = workitem::leaks();
    if work_items > 0 {
        violation(format!(
            "{when} returned with {work_items} I/O work item(s) not freed (NdisFreeIoWorkItem)"
        ));
    }
    for (va, (len, _)) in shared {
        violation(format!(
            "{when} returned with shared memory {va:#x} (+{len:#x}) not freed"
        ));
    }
}
