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
}
