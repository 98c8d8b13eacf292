//! The admin queue: a submission ring (64-byte commands) and a completion ring
//! (16-byte completions with a phase tag) in guest memory (`docs/device-spec.md` §2-3).
//!
//! This module owns the ring state and the ring formats. It does not execute
//! commands: [`crate::device::Rnic`] fetches a command with [`AdminQueue::fetch`],
//! dispatches it by opcode, and posts the result with [`AdminQueue::complete`].
//!
//! Flow control: the device fetches a command only when the completion ring has a
//! free slot, so it never overwrites a completion the driver has not released
//! through `ACQ_HEAD`. A completion ring of N entries holds at most N-1 unreleased
//! completions (`ACQ_TAIL == ACQ_HEAD` means empty).

mod execute;
#[cfg(test)]
mod execute_tests;

use rnic_contract::admin::{
    self as contract, CommandRepr, CompletionRepr, COMMAND_SIZE, COMPLETION_SIZE,
};
use rnic_contract::bar0::{self, admin_error};

use crate::dma::{Dma, DmaError};
use crate::env::{DeviceEnv, DmaScope};

pub use rnic_contract::admin::AdminStatus;

/// Most admin commands one service call (a doorbell write or a device poll) runs;
/// the rest run on the following polls, as a hardware admin engine works through its
/// queue (`docs/device-spec.md` §3.1, bounded work table in §15).
pub const COMMANDS_PER_SERVICE: usize = 16;

/// Work units one service call may spend on admin commands before it stops (after
/// the command that reaches it): a `REG_MR` costs the page entries it examined
/// (whether it succeeded or not), a `RESIZE_CQ` the CQEs it moved, any other command
/// 1 (`docs/device-spec.md` §15.1).
pub const WORK_PER_SERVICE: u32 = 65_536;

/// The ring geometry latched at enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rings {
    asq_base: u64,
    asq_size: u32,
    acq_base: u64,
    acq_size: u32,
}

/// What a register write asks the device to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRegEffect {
    /// Nothing.
    None,
    /// Process submissions (the tail moved or completion space was freed).
    Process,
    /// Stop the queue with this `ADMIN_ERROR` cause.
    Error(u32),
}

/// Admin queue registers and ring state.
#[derive(Clone, Debug, Default)]
pub struct AdminQueue {
    asq_base: u64,
    asq_size: u32,
    acq_base: u64,
    acq_size: u32,
    asq_tail: u32,
    asq_head: u32,
    acq_head: u32,
    acq_tail: u32,
    phase: bool,
    live: Option<Rings>,
}

fn valid_size(n: u32) -> bool {
    (contract::RING_MIN..=contract::RING_MAX).contains(&n) && n.is_power_of_two()
}

/// Maps a ring access failure to its `ADMIN_ERROR` cause.
pub fn dma_cause(e: &DmaError) -> u32 {
    match e {
        DmaError::BusMasterDisabled { .. } => admin_error::BUS_MASTER_DISABLED,
        _ => admin_error::DMA_ERROR,
    }
}

impl AdminQueue {
    /// Reset state: every register 0, queue not live.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the rings are latched and valid.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Stops the queue (after an error); registers keep their values.
    pub fn halt(&mut self) {
        self.live = None;
    }

    /// Reads an admin register; `None` when `offset` is not one.
    pub fn reg_read(&self, offset: u64) -> Option<u32> {
        Some(match offset {
            bar0::ASQ_BASE_LO => self.asq_base as u32,
            bar0::ASQ_BASE_HI => (self.asq_base >> 32) as u32,
            bar0::ASQ_SIZE => self.asq_size,
            bar0::ACQ_BASE_LO => self.acq_base as u32,
            bar0::ACQ_BASE_HI => (self.acq_base >> 32) as u32,
            bar0::ACQ_SIZE => self.acq_size,
            bar0::ASQ_TAIL => self.asq_tail,
            bar0::ASQ_HEAD => self.asq_head,
            bar0::ACQ_HEAD => self.acq_head,
            bar0::ACQ_TAIL => self.acq_tail,
            _ => return None,
        })
    }

    /// Writes an admin register (`offset` must be one of the admin registers of
    /// `docs/device-spec.md` §2.2; others are ignored). Base/size writes take
    /// effect at the next enable; doorbells are ignored while the queue is not
    /// live.
    pub fn reg_write(&mut self, offset: u64, value: u32) -> AdminRegEffect {
        let lo = |old: u64| (old & !0xFFFF_FFFF) | value as u64;
        let hi = |old: u64| (old & 0xFFFF_FFFF) | ((value as u64) << 32);
        match offset {
            bar0::ASQ_BASE_LO => self.asq_base = lo(self.asq_base),
            bar0::ASQ_BASE_HI => self.asq_base = hi(self.asq_base),
            bar0::ASQ_SIZE => self.asq_size = value,
            bar0::ACQ_BASE_LO => self.acq_base = lo(self.acq_base),
            bar0::ACQ_BASE_HI => self.acq_base = hi(self.acq_base),
            bar0::ACQ_SIZE => self.acq_size = value,
            bar0::ASQ_TAIL => {
                let Some(r) = self.live else {
                    return AdminRegEffect::None;
                };
                if value >= r.asq_size {
                    return AdminRegEffect::Error(admin_error::BAD_TAIL);
                }
                self.asq_tail = value;
                return AdminRegEffect::Process;
            }
            bar0::ACQ_HEAD => {
                let Some(r) = self.live else {
                    return AdminRegEffect::None;
                };
                // The new head may only move forward over produced entries:
                // (value - head) mod N <= (tail - head) mod N.
                let mask = r.acq_size - 1;
                let produced = self.acq_tail.wrapping_sub(self.acq_head) & mask;
                let advance = value.wrapping_sub(self.acq_head) & mask;
                if value >= r.acq_size || advance > produced {
                    return AdminRegEffect::Error(admin_error::BAD_HEAD);
                }
                self.acq_head = value;
                return AdminRegEffect::Process;
            }
            _ => {}
        }
        AdminRegEffect::None
    }

    /// Latches and validates the ring registers (DEV_CTRL.ENABLE 0→1). On error
    /// returns the `ADMIN_ERROR` cause and the queue stays not live.
    pub fn enable(&mut self, dma: &Dma) -> Result<(), u32> {
        self.asq_tail = 0;
        self.asq_head = 0;
        self.acq_head = 0;
        self.acq_tail = 0;
        self.phase = true;
        self.live = None;
        if !valid_size(self.asq_size) || !valid_size(self.acq_size) {
            return Err(admin_error::BAD_SIZE);
        }
        if self.asq_base & (contract::ASQ_ALIGN - 1) != 0
            || dma
                .check_range(self.asq_base, self.asq_size as u64 * COMMAND_SIZE as u64)
                .is_err()
        {
            return Err(admin_error::BAD_ASQ);
        }
        if self.acq_base & (contract::ACQ_ALIGN - 1) != 0
            || dma
                .check_range(self.acq_base, self.acq_size as u64 * COMPLETION_SIZE as u64)
                .is_err()
        {
            return Err(admin_error::BAD_ACQ);
        }
        self.live = Some(Rings {
            asq_base: self.asq_base,
            asq_size: self.asq_size,
            acq_base: self.acq_base,
            acq_size: self.acq_size,
        });
        Ok(())
    }

    /// Whether the completion ring has a free slot.
    pub fn has_completion_space(&self) -> bool {
        match self.live {
            Some(r) => (self.acq_tail + 1) & (r.acq_size - 1) != self.acq_head,
            None => false,
        }
    }

    /// Whether submissions are waiting (head != tail).
    pub fn has_work(&self) -> bool {
        self.live.is_some() && self.asq_head != self.asq_tail
    }

    /// Consumes the next command if there is one and a completion slot is free.
    /// On a ring access failure returns the `ADMIN_ERROR` cause.
    pub fn fetch(&mut self, env: &mut dyn DeviceEnv) -> Result<Option<CommandRepr>, u32> {
        let Some(r) = self.live else { return Ok(None) };
        if self.asq_head == self.asq_tail || !self.has_completion_space() {
            return Ok(None);
        }
        let mut b = [0u8; COMMAND_SIZE];
        let addr = r.asq_base + self.asq_head as u64 * COMMAND_SIZE as u64;
        env.dma_read(DmaScope::ADMIN, addr, &mut b)
            .map_err(|e| dma_cause(&e))?;
        self.asq_head = (self.asq_head + 1) & (r.asq_size - 1);
        Ok(Some(CommandRepr::from_bytes(&b)))
    }

    /// Posts a completion for command `id`. The body is written before the word
    /// holding the phase tag, so a driver polling the phase never sees a torn entry.
    pub fn complete(
        &mut self,
        env: &mut dyn DeviceEnv,
        id: u16,
        status: u16,
        r0: u32,
        r1: u32,
    ) -> Result<(), u32> {
        let Some(r) = self.live else { return Ok(()) };
        let c = CompletionRepr {
            result0: r0,
            result1: r1,
            id,
            sq_head: self.asq_head as u16,
            status,
            phase: self.phase,
        };
        let b = c.to_bytes();
        let addr = r.acq_base + self.acq_tail as u64 * COMPLETION_SIZE as u64;
        let phase_at = contract::completion_field::PHASE.start;
        env.dma_write(DmaScope::ADMIN, addr, &b[..phase_at])
            .map_err(|e| dma_cause(&e))?;
        env.dma_write(DmaScope::ADMIN, addr + phase_at as u64, &b[phase_at..])
            .map_err(|e| dma_cause(&e))?;
        self.acq_tail = (self.acq_tail + 1) & (r.acq_size - 1);
        if self.acq_tail == 0 {
            self.phase = !self.phase;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::test_memory;

    fn dma() -> Dma {
        let mut d = Dma::new(test_memory(0x10_0000));
        d.set_bus_master(true);
        d
    }

    fn configure(q: &mut AdminQueue, asq: u64, asz: u32, acq: u64, csz: u32) {
        q.reg_write(bar0::ASQ_BASE_LO, asq as u32);
        q.reg_write(bar0::ASQ_BASE_HI, (asq >> 32) as u32);
        q.reg_write(bar0::ASQ_SIZE, asz);
        q.reg_write(bar0::ACQ_BASE_LO, acq as u32);
        q.reg_write(bar0::ACQ_BASE_HI, (acq >> 32) as u32);
        q.reg_write(bar0::ACQ_SIZE, csz);
    }

    #[test]
    fn completion_written_body_then_phase() {
        let mut d = dma();
        let mut q = AdminQueue::new();
        configure(&mut q, 0x1000, 4, 0x2000, 4);
        q.enable(&d).unwrap();
        q.reg_write(bar0::ASQ_TAIL, 1);
        let c = q.fetch(&mut d).unwrap().unwrap();
        q.complete(&mut d, c.id, 5, 1, 2).unwrap();
        let mut b = [0u8; COMPLETION_SIZE];
        d.read(0x2000, &mut b).unwrap();
        let view = rnic_contract::admin::Completion::new_checked(&b[..]).unwrap();
        assert_eq!((view.result0(), view.result1(), view.status()), (1, 2, 5));
        assert_eq!((view.sq_head(), view.phase()), (1, true));
    }

    #[test]
    fn validation_causes() {
        let d = dma();
        let mut q = AdminQueue::new();
        configure(&mut q, 0x1000, 3, 0x2000, 4);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_SIZE));
        configure(&mut q, 0x1000, 8192, 0x2000, 4);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_SIZE));
        configure(&mut q, 0x1000, 1, 0x2000, 4);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_SIZE));
        configure(&mut q, 0x1020, 4, 0x2000, 4);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_ASQ));
        configure(&mut q, 0xFFFC0, 4, 0x2000, 4);
        assert_eq!(
            q.enable(&d),
            Err(admin_error::BAD_ASQ),
            "ring crosses end of RAM"
        );
        configure(&mut q, 0x1000, 4, 0x2008, 4);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_ACQ));
        configure(&mut q, 0x1000, 4, 0xFFFF_FFFF_FFFF_FFF0, 4096);
        assert_eq!(q.enable(&d), Err(admin_error::BAD_ACQ), "wrap-around");
        assert!(!q.is_live());
        configure(&mut q, 0x1000, 4, 0x2000, 4);
        assert_eq!(q.enable(&d), Ok(()));
        assert!(q.is_live());
    }

    #[test]
    fn doorbell_validation() {
        let mut d = dma();
        let mut q = AdminQueue::new();
        assert_eq!(
            q.reg_write(bar0::ASQ_TAIL, 1),
            AdminRegEffect::None,
            "not live"
        );
        assert_eq!(q.reg_read(bar0::ASQ_TAIL), Some(0));
        configure(&mut q, 0x1000, 4, 0x2000, 4);
        q.enable(&d).unwrap();
        assert_eq!(
            q.reg_write(bar0::ASQ_TAIL, 4),
            AdminRegEffect::Error(admin_error::BAD_TAIL)
        );
        assert_eq!(
            q.reg_write(bar0::ACQ_HEAD, 1),
            AdminRegEffect::Error(admin_error::BAD_HEAD)
        );
        assert_eq!(q.reg_write(bar0::ASQ_TAIL, 2), AdminRegEffect::Process);
        assert!(q.fetch(&mut d).unwrap().is_some());
        q.complete(&mut d, 0, 0, 0, 0).unwrap();
        assert_eq!(q.reg_write(bar0::ACQ_HEAD, 1), AdminRegEffect::Process);
        assert_eq!(q.reg_read(0x999), None);
    }

    #[test]
    fn ring_full_back_pressure() {
        let mut d = dma();
        let mut q = AdminQueue::new();
        configure(&mut q, 0x1000, 8, 0x2000, 2);
        q.enable(&d).unwrap();
        q.reg_write(bar0::ASQ_TAIL, 3);
        let c = q.fetch(&mut d).unwrap().unwrap();
        q.complete(&mut d, c.id, 0, 0, 0).unwrap();
        assert_eq!(
            q.fetch(&mut d),
            Ok(None),
            "one slot of a 2-entry ring in use: full"
        );
        assert_eq!(q.reg_read(bar0::ASQ_HEAD), Some(1));
        q.reg_write(bar0::ACQ_HEAD, 1);
        assert!(q.fetch(&mut d).unwrap().is_some());
    }
}
