//! The device's link and fatal state as explicit state types (`docs/device-spec.md`
//! §5.6, §13.3). Their transitions are methods of [`Core`] that post their own events
//! (`LINK_UP`, `LINK_DOWN`, `FATAL`), so no caller has to remember a follow-up call.

use super::*;

/// The port link (§5.6): its host- and fault-controlled inputs and the state last
/// reported to the driver. `DEV_STATUS.LINK_UP` = enabled and not fatal and
/// [`Link::inputs_up`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    /// Cable plugged (host configuration).
    carrier: bool,
    /// A `link` fault rule forced the link down.
    fault_down: bool,
    /// A non-transient wire failure; cleared when a wire is attached.
    wire_broken: bool,
    /// Whether the last `LINK_UP`/`LINK_DOWN` posted said up (a reset and entering
    /// the fatal state clear it without an event).
    reported_up: bool,
}

impl Link {
    /// A link with carrier `carrier`, nothing reported yet.
    pub(crate) fn new(carrier: bool) -> Self {
        Link {
            carrier,
            fault_down: false,
            wire_broken: false,
            reported_up: false,
        }
    }

    /// Whether carrier, link faults and the wire allow the link up.
    pub(crate) fn inputs_up(&self) -> bool {
        self.carrier && !self.fault_down && !self.wire_broken
    }
}

/// One input of the link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkInput {
    /// The host plugs or unplugs the cable.
    Carrier(bool),
    /// A `link` fault forces the link down (true) or releases it (false).
    FaultDown(bool),
    /// The wire broke (true) or a wire was attached (false).
    WireBroken(bool),
}

/// The fatal state (§13.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FatalState {
    /// Working.
    #[default]
    Running,
    /// A fault answered `fatal` during the current BAR0 write or poll: the fatal
    /// state takes effect when it ends (§13.3).
    Requested(u32),
    /// Entering: posting the `FATAL` event (DMA and vector 0 still allowed for it).
    Entering(u32),
    /// Fatal with this cause until a device reset.
    Fatal(u32),
}

impl FatalState {
    /// The cause, once the device is fatal (or entering it).
    pub(crate) fn cause(self) -> Option<u32> {
        match self {
            FatalState::Entering(c) | FatalState::Fatal(c) => Some(c),
            FatalState::Running | FatalState::Requested(_) => None,
        }
    }

    /// Whether the device is fatal: registers read all ones, DMA and interrupts stop.
    pub(crate) fn is_fatal(self) -> bool {
        matches!(self, FatalState::Fatal(_))
    }

    /// Whether a fatal error was requested and not yet entered.
    pub(crate) fn is_requested(self) -> bool {
        matches!(self, FatalState::Requested(_))
    }
}

impl Core {
    /// Whether `DEV_STATUS.LINK_UP` is set.
    pub(crate) fn link_up(&self) -> bool {
        self.enabled && !self.fatal.is_fatal() && self.link.inputs_up()
    }

    /// Changes one link input; a change of the link state posts `LINK_UP` or
    /// `LINK_DOWN` at once.
    pub(crate) fn set_link_input(&mut self, input: LinkInput) {
        match input {
            LinkInput::Carrier(c) => self.link.carrier = c,
            LinkInput::FaultDown(d) => self.link.fault_down = d,
            LinkInput::WireBroken(b) => self.link.wire_broken = b,
        }
        self.report_link();
    }

    /// Sets `DEV_CTRL.ENABLE` as held by the device; enabling with the link up posts
    /// `LINK_UP`. Disabling is part of the device reset, which changes the link
    /// silently.
    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if enabled {
            self.report_link();
        } else {
            self.link.reported_up = false;
        }
    }

    /// Posts `LINK_UP`/`LINK_DOWN` when the link state differs from the last one
    /// reported.
    fn report_link(&mut self) {
        let up = self.link_up();
        if up == self.link.reported_up {
            return;
        }
        self.link.reported_up = up;
        tracing::info!(up, "link state changed");
        let code = if up {
            self.port.link_up_events += 1;
            events::code::LINK_UP
        } else {
            self.port.link_down_events += 1;
            events::code::LINK_DOWN
        };
        self.post_event(Event {
            code,
            handle: 0,
            detail: 0,
        });
    }

    /// Records a fatal error requested by a fault answer; it takes effect when the
    /// current BAR0 write or poll ends ([`Rnic::operation`]).
    pub(crate) fn request_fatal(&mut self, cause: u32) {
        if self.fatal == FatalState::Running {
            self.fatal = FatalState::Requested(cause);
        }
    }

    /// Enters a requested fatal error (also one requested by the wire's fault
    /// decider, which runs inside the wire).
    pub(crate) fn enter_requested_fatal(&mut self) {
        if self.wire_fatal.swap(false, Ordering::Relaxed) {
            self.request_fatal(events::fatal_cause::INJECTED);
        }
        if let FatalState::Requested(cause) = self.fatal {
            self.enter_fatal(cause);
        }
    }

    /// Enters the fatal state now (§13.3): drops pending interrupts, posts `FATAL`
    /// (the last event), stops DMA, interrupts and the link (silently).
    pub(crate) fn enter_fatal(&mut self, cause: u32) {
        if matches!(self.fatal, FatalState::Entering(_) | FatalState::Fatal(_)) {
            return;
        }
        tracing::error!(
            cause,
            "device fatal error: registers read all ones until DEV_CTRL.RESET"
        );
        self.fatal = FatalState::Entering(cause);
        // Interrupts still pending from before the fatal error are dropped, so the
        // only interrupt a fatal device can still deliver (on unmask) is the one
        // announcing the FATAL event (§13.3).
        self.msix.clear_pending();
        self.post_event(Event {
            code: events::code::FATAL,
            handle: 0,
            detail: cause,
        });
        self.fatal = FatalState::Fatal(cause);
        self.counters.fatal_errors += 1;
        self.link.reported_up = false;
        self.delayed_irqs.clear();
    }
}

impl Rnic {
    /// Runs one BAR0 write, configuration write, poll step or host action: a fatal
    /// error requested by a fault answer during it takes effect when it ends
    /// (§13.3).
    pub(crate) fn operation<R>(&mut self, f: impl FnOnce(&mut Rnic) -> R) -> R {
        let r = f(self);
        self.core.enter_requested_fatal();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_inputs_all_needed() {
        let mut l = Link::new(true);
        assert!(l.inputs_up());
        l.fault_down = true;
        assert!(!l.inputs_up());
        l.fault_down = false;
        l.wire_broken = true;
        assert!(!l.inputs_up());
        assert!(!Link::new(false).inputs_up());
    }

    #[test]
    fn fatal_state_queries() {
        assert_eq!(FatalState::Running.cause(), None);
        assert!(FatalState::Requested(1).is_requested() && !FatalState::Requested(1).is_fatal());
        assert_eq!(FatalState::Entering(1).cause(), Some(1));
        assert!(
            !FatalState::Entering(1).is_fatal(),
            "the FATAL event is still written"
        );
        assert!(FatalState::Fatal(1).is_fatal());
    }

    /// A `fatal` answer at a DMA site during a BAR0 write takes effect when the write
    /// ends, through the operation itself: no follow-up call by the caller.
    #[test]
    fn requested_fatal_takes_effect_at_the_end_of_the_operation() {
        use crate::device::tests::Harness;
        use crate::fault::{FaultRule, Trigger};
        use rnic_contract::admin::{opcode, CommandRepr};
        let mut h = Harness::enabled(4, 4);
        h.dev
            .faults_mut()
            .add_rule(
                FaultRule::new(FaultSite::DmaRead, FaultAction::Fatal)
                    .with_trigger(Trigger::Once { nth: 1 }),
            )
            .unwrap();
        h.push(&CommandRepr::new(opcode::NOP, 1));
        assert_eq!(h.dev.fatal(), None);
        h.ring();
        assert_eq!(h.dev.fatal(), Some(events::fatal_cause::INJECTED));
        assert_eq!(h.read(bar0::DEV_STATUS), 0xFFFF_FFFF);
    }
}
