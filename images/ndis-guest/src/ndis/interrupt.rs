//! Message-signalled interrupt delivery to the driver, and DPCs.
//!
//! An MSI-X message `m` arrives on IDT vector `MSG_VECTOR_BASE + m` (`interrupts::irq_dispatch`
//! has already saved the FPU/SSE state and calls the hooks [`install`] gave it). The driver's `MessageInterruptHandler` runs at DIRQL;
//! the LAPIC gets its EOI afterwards; a DPC the ISR asks for is queued. Queued DPCs run, with
//! interrupts enabled and at DISPATCH_LEVEL, whenever the CPU drops back to PASSIVE_LEVEL: at the
//! end of an interrupt that interrupted passive code (like Windows' DPC software interrupt) and
//! in every wait loop.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_core::irq::{HookError, InterruptHooks};

use super::{
    InterruptReg, DEVICE_IRQL, DISPATCH_LEVEL, IRQL, MESSAGES_PER_ADAPTER, PASSIVE_LEVEL, STATE,
};
use crate::cpu::{self, FxArea};
use crate::interrupts;

static DPC_PENDING: AtomicU32 = AtomicU32::new(0);
static DPC_ACTIVE: AtomicBool = AtomicBool::new(false);
static SEEN_FIRE: AtomicU32 = AtomicU32::new(0);
static SEEN_ISR: AtomicU32 = AtomicU32::new(0);
static SEEN_DPC: AtomicU32 = AtomicU32::new(0);
static ISR_CALLS: AtomicU64 = AtomicU64::new(0);
static ISR_CLAIMED: AtomicU64 = AtomicU64::new(0);
static DPC_RUNS: AtomicU64 = AtomicU64::new(0);
static STRAY: AtomicU64 = AtomicU64::new(0);

/// (ISR calls, ISRs that claimed, DPC runs, stray message interrupts).
pub fn counters() -> (u64, u64, u64, u64) {
    (
        ISR_CALLS.load(Ordering::Relaxed),
        ISR_CLAIMED.load(Ordering::Relaxed),
        DPC_RUNS.load(Ordering::Relaxed),
        STRAY.load(Ordering::Relaxed),
    )
}

/// Routes the device's message vectors to this layer: `on_message_vector` for each message,
/// `run_dpcs_on_irq_exit` at the end of every interrupt. Called once at boot, before interrupts
/// are enabled.
pub fn install() -> Result<(), HookError> {
    interrupts::install_hooks(InterruptHooks {
        on_message: on_message_vector,
        on_irq_exit: run_dpcs_on_irq_exit,
    })
}

fn first_time(set: &AtomicU32, m: u32) -> bool {
    set.fetch_or(1 << m, Ordering::Relaxed) & (1 << m) == 0
}

/// The adapter and its message number behind the guest-wide message `msg` (adapter `i` owns
/// messages `i * MESSAGES_PER_ADAPTER ..`).
fn split(msg: u32) -> (usize, u32) {
    (
        (msg / MESSAGES_PER_ADAPTER) as usize,
        msg % MESSAGES_PER_ADAPTER,
    )
}

/// The interrupt registration of the adapter owning guest-wide message `msg`.
fn registration(msg: u32) -> Option<(InterruptReg, u32)> {
    let (adapter, m) = split(msg);
    let reg = STATE.lock().adapters.get(adapter)?.interrupt?;
    (m < reg.messages).then_some((reg, m))
}

/// The message hook: called from `irq_dispatch` (interrupts masked) for message vectors.
fn on_message_vector(vector: u8, msg: u32) {
    let (reg, m) = match registration(msg) {
        Some(r) => r,
        _ => {
            if STRAY.fetch_add(1, Ordering::Relaxed) == 0 {
                crate::println!(
                    "ndis: stray interrupt on idt vector {vector:#x} (message {msg}, no handler registered)"
                );
            }
            interrupts::eoi();
            return;
        }
    };
    if first_time(&SEEN_FIRE, msg) {
        crate::println!("ndis: MSI-X vector fired (message {msg}, idt vector {vector:#x})");
    }
    if first_time(&SEEN_ISR, msg) {
        crate::println!("ndis: MiniportMessageInterrupt (message {msg})");
    }
    let prev = IRQL.swap(DEVICE_IRQL, Ordering::Relaxed);
    let mut queue_dpc: u8 = 0;
    let mut targets: u32 = 0;
    // SAFETY: the handler was registered by the driver with this context; both out-pointers
    // are live locals.
    let claimed = unsafe { (reg.isr)(reg.ctx, m, &mut queue_dpc, &mut targets) };
    IRQL.store(prev, Ordering::Relaxed);
    ISR_CALLS.fetch_add(1, Ordering::Relaxed);
    interrupts::eoi();
    if claimed != 0 {
        ISR_CLAIMED.fetch_add(1, Ordering::Relaxed);
        if queue_dpc != 0 {
            DPC_PENDING.fetch_or(1 << msg, Ordering::Relaxed);
        }
    }
}

/// The exit hook, the tail of every interrupt: run queued DPCs if the interrupted code was at
/// PASSIVE_LEVEL.
fn run_dpcs_on_irq_exit() {
    if DPC_PENDING.load(Ordering::Relaxed) != 0 {
        run_pending_dpcs();
    }
}

/// Runs every queued DPC, if the CPU is at PASSIVE_LEVEL and no DPC is already running.
pub fn run_pending_dpcs() {
    if IRQL.load(Ordering::Relaxed) != PASSIVE_LEVEL || DPC_ACTIVE.swap(true, Ordering::Acquire) {
        return;
    }
    let were_enabled = cpu::interrupts_enabled();
    loop {
        cpu::cli();
        let pending = DPC_PENDING.swap(0, Ordering::Relaxed);
        if pending == 0 {
            break;
        }
        cpu::sti();
        for m in 0..32 {
            if pending & (1 << m) != 0 {
                run_dpc(m);
            }
        }
    }
    DPC_ACTIVE.store(false, Ordering::Release);
    if were_enabled {
        cpu::sti();
    }
}

fn run_dpc(msg: u32) {
    let Some((reg, m)) = registration(msg) else {
        return;
    };
    if first_time(&SEEN_DPC, msg) {
        crate::println!("ndis: MiniportMessageInterruptDpc (message {msg})");
    }
    let mut fx = FxArea::new();
    fx.save();
    IRQL.store(DISPATCH_LEVEL, Ordering::Relaxed);
    // SAFETY: the DPC handler registered by the driver with its interrupt context.
    unsafe {
        (reg.dpc)(
            reg.ctx,
            m,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    fx.restore();
    DPC_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// Waits (interrupts enabled, DPCs and work items running) until `done()` or `timeout_ms` elapse.
/// Returns whether `done()` became true. `done` may consume what it finds (a CQ poll): the call
/// that returns true ends the wait ([`guest_core::irq::wait_loop`]).
pub fn wait_until(timeout_ms: u64, done: impl FnMut() -> bool) -> bool {
    let were_enabled = cpu::interrupts_enabled();
    let mut steps = KernelWait {
        deadline: interrupts::now_ms().saturating_add(timeout_ms),
    };
    let result = guest_core::irq::wait_loop(&mut steps, done);
    if were_enabled {
        cpu::sti();
    } else {
        cpu::cli();
    }
    result
}

/// The kernel's steps of [`wait_until`]: DPCs, work items and the data-hang watch with
/// interrupts on, the tick count for the deadline (guest milliseconds), `sti; hlt` to sleep.
struct KernelWait {
    deadline: u64,
}

impl guest_core::irq::WaitSteps for KernelWait {
    fn service(&mut self) {
        cpu::sti();
        run_pending_dpcs();
        super::workitem::run_queued();
        super::reset::check_data_hang();
    }

    fn expired(&mut self) -> bool {
        interrupts::now_ms() >= self.deadline
    }

    fn quiesce(&mut self) -> bool {
        cpu::cli();
        DPC_PENDING.load(Ordering::Relaxed) != 0
    }

    fn sleep(&mut self) {
        // Atomically re-enables interrupts and sleeps until the next one (the 1 kHz tick
        // bounds the sleep).
        cpu::wait_for_interrupt();
    }
}

/// Lets the system run for `ms` milliseconds (interrupts and DPCs are serviced).
pub fn idle(ms: u64) {
    wait_until(ms, || false);
}

/// How long no message interrupt may arrive, with no DPC queued, before [`settle`] calls the
/// adapters quiet, in milliseconds (timer ticks: one tick may be short, so two are needed to
/// cover at least one whole millisecond).
pub const QUIET_MS: u64 = 2;

/// Lets what is in flight land (message interrupts, their DPCs and the work items those
/// queue) and returns as soon as the adapters are quiet: no DPC queued and no message
/// interrupt for [`QUIET_MS`]; at the latest after `max_ms`. Returns whether they went
/// quiet. Replaces fixed idles that waited `max_ms` whatever happened.
pub fn settle(max_ms: u64) -> bool {
    let mut last_isr = ISR_CALLS.load(Ordering::Relaxed);
    let mut quiet_since = interrupts::now_ms();
    wait_until(max_ms, || {
        let isr = ISR_CALLS.load(Ordering::Relaxed);
        let now = interrupts::now_ms();
        if isr != last_isr || DPC_PENDING.load(Ordering::Relaxed) != 0 {
            last_isr = isr;
            quiet_since = now;
            return false;
        }
        now.saturating_sub(quiet_since) >= QUIET_MS
    })
}

/// Tears down a registration the driver failed to remove (so no handler of an unloaded
/// driver can run).
pub fn force_deregister(adapter: usize) {
    super::api::deregister_interrupt_inner(adapter);
}
