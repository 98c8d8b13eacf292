//! Completion queues: the CQE ring in guest memory, the phase tag, arming and
//! interrupt moderation.

use super::async_event::AsyncEvent;
use crate::dma::DmaError;
use crate::env::{DeviceEnv, DmaScope};
use rnic_contract::bar0::verbs_db;
use rnic_contract::cqe::{cqe_field, Cqe, CqeRepr, WcStatus, CQE_SIZE};
use serde::Serialize;
use std::time::Duration;

/// Parses a ring entry into its fields and phase tag (CQ resize and tests).
pub fn decode_cqe(b: &[u8; CQE_SIZE]) -> (CqeRepr, bool) {
    let view = Cqe::new_unchecked(&b[..]);
    (CqeRepr::parse(&view), view.phase())
}

/// Arming state of a CQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Not armed: completions raise no interrupt.
    Off,
    /// Interrupt on the next completion (`ARM_NEXT`).
    Next,
    /// Interrupt on the next solicited or error completion (`ARM_SOLICITED`).
    Solicited,
}

/// Per-CQ counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CqStats {
    /// The CQ number.
    pub cqn: u32,
    /// Ring size in CQEs.
    pub size: u32,
    /// MSI-X vector of the CQ.
    pub vector: u16,
    /// The device's free-running producer count.
    pub producer: u32,
    /// The driver's consumer count, as last written to `CQ_CI`.
    pub consumer: u32,
    /// CQEs written.
    pub cqes: u64,
    /// CQEs written with a status other than success.
    pub error_cqes: u64,
    /// Interrupts raised for the CQ.
    pub interrupts: u64,
    /// CQEs lost because the ring was full.
    pub overflows: u64,
    /// Doorbell writes that were refused (bad consumer count or arm value).
    pub bad_doorbells: u64,
    /// Whether the CQ is in its permanent error state.
    pub in_error: bool,
    /// The arming state, none while in error.
    pub armed: Option<Arm>,
}

#[derive(Debug)]
pub(crate) struct Cq {
    pub(crate) cqn: u32,
    pub(crate) base: u64,
    pub(crate) size: u32,
    /// Device producer count (free running).
    pub(crate) pi: u32,
    /// Driver consumer count (free running, from the CI doorbell).
    pub(crate) ci: u32,
    pub(crate) vector: u16,
    pub(crate) mod_count: u16,
    pub(crate) mod_usec: u32,
    pub(crate) arm: Arm,
    pending: u32,
    pending_since: Option<Duration>,
    pub(crate) error: bool,
    pub(crate) stats: CqStats,
}

/// Why a CQE could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqFull;

impl Cq {
    pub(crate) fn new(
        cqn: u32,
        base: u64,
        size: u32,
        vector: u16,
        mod_count: u16,
        mod_usec: u32,
    ) -> Self {
        Cq {
            cqn,
            base,
            size,
            pi: 0,
            ci: 0,
            vector,
            mod_count,
            mod_usec,
            arm: Arm::Off,
            pending: 0,
            pending_since: None,
            error: false,
            stats: CqStats::default(),
        }
    }

    fn slot_addr(&self, idx: u32) -> u64 {
        self.base + u64::from(idx & (self.size - 1)) * CQE_SIZE as u64
    }

    fn phase(&self, idx: u32) -> bool {
        (idx / self.size) & 1 == 0
    }

    fn set_error(&mut self, env: &mut dyn DeviceEnv) {
        if !self.error {
            self.error = true;
            env.post_event(AsyncEvent::CqError { cqn: self.cqn }.into());
        }
    }

    /// Writes one CQE. Fails (and puts the CQ in error) on overflow or DMA error.
    pub(crate) fn push(
        &mut self,
        env: &mut dyn DeviceEnv,
        cqe: &CqeRepr,
        solicited: bool,
    ) -> Result<(), CqFull> {
        if self.error {
            return Err(CqFull);
        }
        if self.pi.wrapping_sub(self.ci) >= self.size {
            self.stats.overflows += 1;
            tracing::warn!(cqn = self.cqn, "completion queue overflow");
            self.set_error(env);
            return Err(CqFull);
        }
        // Body first, phase last (§9.2): the first write carries the whole entry with
        // byte 23 still holding the slot's previous phase (so the entry is not yet
        // valid to the driver), the second sets the new phase.
        let phase = self.phase(self.pi);
        let bytes = cqe.to_bytes(!phase);
        let scope = DmaScope::cq(self.cqn);
        let addr = self.slot_addr(self.pi);
        if env.dma_write(scope, addr, &bytes).is_err()
            || env
                .dma_write(scope, addr + cqe_field::PHASE as u64, &[u8::from(phase)])
                .is_err()
        {
            self.set_error(env);
            return Err(CqFull);
        }
        self.pi = self.pi.wrapping_add(1);
        self.stats.cqes += 1;
        let is_error = cqe.status != WcStatus::Success.code();
        if is_error {
            self.stats.error_cqes += 1;
        }
        let counts = match self.arm {
            Arm::Off => false,
            Arm::Next => true,
            Arm::Solicited => solicited || is_error,
        };
        if counts {
            self.pending += 1;
            if self.pending_since.is_none() {
                self.pending_since = Some(env.now());
            }
            self.maybe_fire(env);
        }
        Ok(())
    }

    fn fire(&mut self, env: &mut dyn DeviceEnv) {
        env.raise(self.vector);
        self.stats.interrupts += 1;
        self.arm = Arm::Off;
        self.pending = 0;
        self.pending_since = None;
    }

    fn maybe_fire(&mut self, env: &mut dyn DeviceEnv) {
        if self.arm == Arm::Off || self.pending == 0 {
            return;
        }
        let by_count = self.mod_count > 0 && self.pending >= u32::from(self.mod_count);
        let immediate = self.mod_count == 0 && self.mod_usec == 0;
        let by_time = self.mod_usec > 0
            && self.pending_since.is_some_and(|t| {
                env.now().saturating_sub(t) >= Duration::from_micros(u64::from(self.mod_usec))
            });
        if immediate || by_count || by_time {
            self.fire(env);
        }
    }

    /// Timer check for time-based moderation.
    pub(crate) fn poll(&mut self, env: &mut dyn DeviceEnv) {
        self.maybe_fire(env);
    }

    /// The CI doorbell. Returns false (and ignores the value) if it is not between
    /// the previous consumer index and the producer index.
    pub(crate) fn set_ci(&mut self, ci: u32) -> bool {
        let adv = ci.wrapping_sub(self.ci);
        let avail = self.pi.wrapping_sub(self.ci);
        if adv > avail {
            self.stats.bad_doorbells += 1;
            return false;
        }
        self.ci = ci;
        true
    }

    /// The arm doorbell.
    pub(crate) fn arm(&mut self, env: &mut dyn DeviceEnv, value: u32) -> bool {
        let mode = match value {
            verbs_db::ARM_NEXT => Arm::Next,
            verbs_db::ARM_SOLICITED => Arm::Solicited,
            _ => {
                self.stats.bad_doorbells += 1;
                return false;
            }
        };
        self.arm = mode;
        self.pending = 0;
        self.pending_since = None;
        // Entries the driver has not consumed yet: report them at once so an
        // arm that races with a completion never loses the event.
        if mode == Arm::Next && self.pi != self.ci {
            self.fire(env);
        }
        true
    }

    /// Moves the unconsumed entries to a new ring; returns how many.
    pub(crate) fn resize(
        &mut self,
        env: &mut dyn DeviceEnv,
        base: u64,
        size: u32,
    ) -> Result<u32, DmaError> {
        let n = self.pi.wrapping_sub(self.ci);
        let mut entries = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut b = [0u8; CQE_SIZE];
            env.dma_read(
                DmaScope::cq(self.cqn),
                self.slot_addr(self.ci.wrapping_add(i)),
                &mut b,
            )?;
            entries.push(b);
        }
        let old = (self.base, self.size);
        self.base = base;
        self.size = size;
        for (i, mut b) in entries.into_iter().enumerate() {
            let i = i as u32;
            Cqe::new_unchecked(&mut b[..]).set_phase(self.phase(i));
            if let Err(e) = env.dma_write(DmaScope::cq(self.cqn), self.slot_addr(i), &b) {
                (self.base, self.size) = old;
                return Err(e);
            }
        }
        self.pi = n;
        self.ci = 0;
        Ok(n)
    }

    pub(crate) fn stats(&self) -> CqStats {
        CqStats {
            cqn: self.cqn,
            size: self.size,
            vector: self.vector,
            producer: self.pi,
            consumer: self.ci,
            in_error: self.error,
            armed: Some(self.arm),
            ..self.stats.clone()
        }
    }
}
