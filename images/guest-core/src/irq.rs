//! The guest's interrupt vector plan and the hook table through which the NDIS layer receives
//! device interrupts.
//!
//! The kernel's IDT code owns the vectors (exceptions, the LAPIC tick, the spurious vector) and
//! knows nothing of NDIS: the NDIS personality installs [`InterruptHooks`] in a [`HookTable`] at
//! start-up, and the kernel's interrupt entry asks the table how to [`route`](HookTable::route)
//! each vector. Everything here is plain data, so the routing decisions are tested on the host.

/// Number of CPU exception vectors (0..=31); external interrupts start after them.
pub const EXCEPTION_VECTORS: u8 = 32;
/// IDT vector of the LAPIC timer (the 1 kHz tick).
pub const TIMER_VECTOR: u8 = 0x20;
/// MSI-X message `m` is delivered on IDT vector `MSG_VECTOR_BASE + m`.
pub const MSG_VECTOR_BASE: u8 = 0x30;
/// Number of IDT vectors reserved for MSI-X messages (messages 0..32).
pub const MSG_VECTORS: u8 = 32;
/// IDT vector the LAPIC uses for spurious interrupts (programmed into its SVR).
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// What a vector is in the guest's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// A CPU exception (0..=31): reported and fatal.
    Exception(u8),
    /// The LAPIC timer tick.
    Timer,
    /// The LAPIC spurious vector (no EOI may be sent for it).
    Spurious,
    /// MSI-X message number (0..[`MSG_VECTORS`]).
    Message(u32),
    /// A vector nothing is programmed to raise.
    Unassigned(u8),
}

/// Classifies an IDT vector.
pub const fn classify(vector: u8) -> VectorKind {
    if vector < EXCEPTION_VECTORS {
        VectorKind::Exception(vector)
    } else if vector == TIMER_VECTOR {
        VectorKind::Timer
    } else if vector == SPURIOUS_VECTOR {
        VectorKind::Spurious
    } else if vector >= MSG_VECTOR_BASE && vector - MSG_VECTOR_BASE < MSG_VECTORS {
        VectorKind::Message((vector - MSG_VECTOR_BASE) as u32)
    } else {
        VectorKind::Unassigned(vector)
    }
}

/// The IDT vector that MSI-X message `message` is delivered on, or `None` past the reserved
/// range.
pub const fn message_vector(message: u32) -> Option<u8> {
    if message < MSG_VECTORS as u32 {
        Some(MSG_VECTOR_BASE + message as u8)
    } else {
        None
    }
}

/// Functions the NDIS layer gives the interrupt code. Both run with interrupts masked, on the
/// interrupt stack of the vector being handled.
#[derive(Debug, Clone, Copy)]
pub struct InterruptHooks {
    /// Called for every message vector with `(vector, message)`; it must send the LAPIC EOI.
    pub on_message: fn(u8, u32),
    /// Called at the end of every external interrupt (after the EOI), for example to run
    /// queued DPCs when the interrupted code was at PASSIVE_LEVEL.
    pub on_irq_exit: fn(),
}

/// Why hooks could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// A second layer tried to take over the interrupts already routed to another one.
    #[error("interrupt hooks are already installed; remove them before installing others")]
    AlreadyInstalled,
}

/// What the interrupt entry does with one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Count a tick and send EOI.
    Tick,
    /// Count a spurious interrupt; no EOI.
    Spurious,
    /// Call [`HookTable::message_hook`] with `(vector, message)`; the hook sends the EOI. Only
    /// returned while hooks are installed.
    Message {
        /// The IDT vector.
        vector: u8,
        /// The MSI-X message number.
        message: u32,
    },
    /// Report an unexpected interrupt and send EOI (an unassigned vector, an exception vector
    /// reaching the external-interrupt path, or a message vector with no hooks installed).
    Unexpected(u8),
}

/// The installed hooks, if any. `Copy`, so the interrupt entry can take a snapshot under its
/// lock and call the hooks without holding it.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookTable {
    hooks: Option<InterruptHooks>,
}

impl HookTable {
    /// A table with no hooks: message vectors are reported as unexpected.
    pub const fn new() -> Self {
        HookTable { hooks: None }
    }

    /// Installs `hooks`; refuses when hooks are already installed.
    pub fn install(&mut self, hooks: InterruptHooks) -> Result<(), HookError> {
        if self.hooks.is_some() {
            return Err(HookError::AlreadyInstalled);
        }
        self.hooks = Some(hooks);
        Ok(())
    }

    /// Removes the hooks (message vectors become unexpected again); returns the removed ones.
    pub fn remove(&mut self) -> Option<InterruptHooks> {
        self.hooks.take()
    }

    /// How the interrupt entry handles `vector`.
    pub fn route(&self, vector: u8) -> Route {
        match classify(vector) {
            VectorKind::Timer => Route::Tick,
            VectorKind::Spurious => Route::Spurious,
            VectorKind::Message(message) if self.hooks.is_some() => {
                Route::Message { vector, message }
            }
            VectorKind::Message(_) => Route::Unexpected(vector),
            VectorKind::Exception(v) | VectorKind::Unassigned(v) => Route::Unexpected(v),
        }
    }

    /// The hook that handles message vectors, if one is installed.
    pub fn message_hook(&self) -> Option<fn(u8, u32)> {
        self.hooks.map(|h| h.on_message)
    }

    /// The hook to call at the end of every external interrupt, if one is installed.
    pub fn irq_exit(&self) -> Option<fn()> {
        self.hooks.map(|h| h.on_irq_exit)
    }
}

/// The steps of the guest's wait loop ([`wait_loop`]) that touch the CPU and the clock: the
/// kernel implements them with `sti`/`cli`/`hlt` and its tick count, host tests with a script.
pub trait WaitSteps {
    /// Runs what is pending with interrupts enabled (DPCs, work items, watchdogs).
    fn service(&mut self);
    /// Whether the wait's deadline has passed.
    fn expired(&mut self) -> bool;
    /// Disables interrupts (so no wake-up is lost between the last check and the sleep) and
    /// returns whether work is already pending (then the loop services it instead of sleeping).
    fn quiesce(&mut self) -> bool;
    /// Re-enables interrupts and sleeps until the next one, atomically (`sti; hlt`).
    fn sleep(&mut self);
}

/// Waits until `done()` returns true (then true) or the deadline passes (then false):
/// services pending work, asks `done()`, and, with interrupts disabled and nothing pending,
/// asks `done()` once more before sleeping, so a completion that arrived in between never
/// costs a sleep.
///
/// `done` may consume what it finds (an NDK consumer's `NdkGetCqResults` takes the
/// completion it reports): whichever call returns true ends the wait with true. Ignoring the
/// pre-sleep call's answer lost such a completion whenever it arrived between the two calls
/// (the suite's `send-and-invalidate-in-results-ex` then saw "no receive completion within
/// the wait" although the device had written it and the driver had handed it out).
pub fn wait_loop(steps: &mut impl WaitSteps, mut done: impl FnMut() -> bool) -> bool {
    loop {
        steps.service();
        if done() {
            return true;
        }
        if steps.expired() {
            return false;
        }
        if !steps.quiesce() {
            if done() {
                return true;
            }
            steps.sleep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static MESSAGES_SEEN: AtomicU32 = AtomicU32::new(0);
    static EXITS_SEEN: AtomicU32 = AtomicU32::new(0);

    fn record_message(vector: u8, message: u32) {
        MESSAGES_SEEN.store(((vector as u32) << 8) | message, Ordering::Relaxed);
    }
    fn record_exit() {
        EXITS_SEEN.fetch_add(1, Ordering::Relaxed);
    }
    fn other_message(_: u8, _: u32) {}

    const HOOKS: InterruptHooks = InterruptHooks {
        on_message: record_message,
        on_irq_exit: record_exit,
    };

    #[test]
    fn every_vector_has_exactly_one_kind() {
        for v in 0..=255u8 {
            let kind = classify(v);
            match kind {
                VectorKind::Exception(e) => assert!(v < 32 && e == v),
                VectorKind::Timer => assert_eq!(v, 0x20),
                VectorKind::Spurious => assert_eq!(v, 0xFF),
                VectorKind::Message(m) => {
                    assert!((0x30..0x50).contains(&v));
                    assert_eq!(message_vector(m), Some(v));
                }
                VectorKind::Unassigned(u) => {
                    assert_eq!(u, v);
                    assert!(v > 0x20 && v != 0xFF && !(0x30..0x50).contains(&v));
                }
            }
        }
    }

    #[test]
    fn message_vectors_bounds() {
        assert_eq!(message_vector(0), Some(0x30));
        assert_eq!(message_vector(31), Some(0x4F));
        assert_eq!(message_vector(32), None);
        assert_eq!(message_vector(u32::MAX), None);
        assert_eq!(classify(0x4F), VectorKind::Message(31));
        assert_eq!(classify(0x50), VectorKind::Unassigned(0x50));
        assert_eq!(classify(0x2F), VectorKind::Unassigned(0x2F));
    }

    #[test]
    fn without_hooks_messages_are_unexpected() {
        let t = HookTable::new();
        assert_eq!(t.route(0x30), Route::Unexpected(0x30));
        assert_eq!(t.route(0x20), Route::Tick);
        assert_eq!(t.route(0xFF), Route::Spurious);
        assert_eq!(t.route(0x60), Route::Unexpected(0x60));
        assert_eq!(t.route(3), Route::Unexpected(3));
        assert!(t.irq_exit().is_none());
    }

    #[test]
    fn installed_hooks_receive_message_vectors() {
        let mut t = HookTable::new();
        t.install(HOOKS).unwrap();
        assert_eq!(
            t.route(0x32),
            Route::Message {
                vector: 0x32,
                message: 2
            }
        );
        (t.message_hook().expect("message hook installed"))(0x32, 2);
        assert_eq!(MESSAGES_SEEN.load(Ordering::Relaxed), 0x3202);
        let before = EXITS_SEEN.load(Ordering::Relaxed);
        (t.irq_exit().expect("exit hook installed"))();
        assert_eq!(EXITS_SEEN.load(Ordering::Relaxed), before + 1);
        // Timer and spurious never reach the hooks.
        assert_eq!(t.route(0x20), Route::Tick);
        assert_eq!(t.route(0xFF), Route::Spurious);
    }

    #[test]
    fn second_install_is_refused_until_removed() {
        let mut t = HookTable::new();
        t.install(HOOKS).unwrap();
        let other = InterruptHooks {
            on_message: other_message,
            on_irq_exit: record_exit,
        };
        assert_eq!(t.install(other), Err(HookError::AlreadyInstalled));
        assert!(t.remove().is_some());
        assert!(t.remove().is_none());
        assert_eq!(t.route(0x30), Route::Unexpected(0x30));
        assert!(t.message_hook().is_none());
        t.install(other).unwrap();
        assert!(matches!(t.route(0x30), Route::Message { .. }));
    }

    /// A scripted wait: `checks_left` deadline checks before it expires; counts sleeps.
    struct Script {
        checks_left: u32,
        sleeps: u32,
    }

    impl WaitSteps for Script {
        fn service(&mut self) {}
        fn expired(&mut self) -> bool {
            if self.checks_left == 0 {
                return true;
            }
            self.checks_left -= 1;
            false
        }
        fn quiesce(&mut self) -> bool {
            false
        }
        fn sleep(&mut self) {
            self.sleeps += 1;
        }
    }

    /// The completion arrives between the loop's first check and its pre-sleep check, and the
    /// check that sees it consumes it (as NdkGetCqResults does): the wait must report it, not
    /// time out asking again for what it already took.
    #[test]
    fn a_completion_taken_by_the_pre_sleep_check_ends_the_wait() {
        let mut script = Script {
            checks_left: 100,
            sleeps: 0,
        };
        let mut calls = 0u32;
        let mut held = 0u32;
        let got = wait_loop(&mut script, || {
            calls += 1;
            if calls == 2 {
                held += 1;
            }
            // Takes what is there, as a CQ poll does.
            let taken = held;
            held = 0;
            taken == 1
        });
        assert!(got, "the completion taken by the pre-sleep check was lost");
        assert_eq!(calls, 2);
        assert_eq!(script.sleeps, 0, "no sleep once the completion was there");
    }

    /// Nothing arrives: the wait sleeps between checks and ends false at its deadline.
    #[test]
    fn a_wait_for_nothing_sleeps_and_expires() {
        let mut script = Script {
            checks_left: 3,
            sleeps: 0,
        };
        assert!(!wait_loop(&mut script, || false));
        assert_eq!(script.sleeps, 3);
    }

    /// Work pending when interrupts go off: serviced at once, no sleep, no pre-sleep check.
    #[test]
    fn pending_work_is_serviced_before_sleeping() {
        struct Busy(u32, u32);
        impl WaitSteps for Busy {
            fn service(&mut self) {
                self.0 += 1;
            }
            fn expired(&mut self) -> bool {
                self.0 > 2
            }
            fn quiesce(&mut self) -> bool {
                true
            }
            fn sleep(&mut self) {
                self.1 += 1;
            }
        }
        let mut busy = Busy(0, 0);
        assert!(!wait_loop(&mut busy, || false));
        assert_eq!((busy.0, busy.1), (3, 0));
    }
}
