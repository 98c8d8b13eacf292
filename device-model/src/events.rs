//! The asynchronous event queue (EQ): a guest ring of 16-byte event entries with a
//! phase tag, written by the device and consumed by the driver (`docs/device-spec.md` §4).
//!
//! The ring is configured through `EQ_BASE_LO/HI` and `EQ_SIZE` and latched with the
//! admin rings when `DEV_CTRL.ENABLE` goes 0→1 (`EQ_SIZE` = 0: no event queue). The
//! driver releases entries by writing `EQ_HEAD`. After writing events the device
//! raises vector 0. A ring of N entries holds N-1 unreleased events; when it is full
//! further events are dropped, counted, and `DEV_STATUS.EQ_OVERFLOW` is set until reset.

use serde::{Deserialize, Serialize};

use crate::dma::{Dma, DmaError};
use crate::env::{DeviceEnv, DmaScope};
use rnic_contract::admin as admin_contract;
use rnic_contract::bar0;
use rnic_contract::event::{EventEntry, EventRepr, ENTRY_SIZE};

pub use rnic_contract::event::{code, fatal_cause};

/// Event entry size in bytes.
const EQ_ENTRY_SIZE: u64 = ENTRY_SIZE as u64;
/// Offset of the phase word, written after the body.
const PHASE_AT: usize = rnic_contract::event::entry_field::PHASE.start;

/// One event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Event code.
    pub code: u8,
    /// Object the event is about (QP/CQ number, queue id, 0).
    pub handle: u32,
    /// Code-specific detail.
    pub detail: u32,
}

/// Encodes an event entry (`docs/device-spec.md` §4.1) with sequence number `seq`
/// and phase tag `phase`.
pub fn encode(ev: &Event, seq: u16, phase: bool) -> [u8; ENTRY_SIZE] {
    EventRepr {
        code: ev.code,
        handle: ev.handle,
        detail: ev.detail,
        sequence: seq,
        phase,
    }
    .to_bytes()
}

/// Decodes an entry: (event, sequence, phase).
pub fn decode(b: &[u8; ENTRY_SIZE]) -> (Event, u16, bool) {
    let r = EventRepr::parse(&EventEntry::new_unchecked(&b[..]));
    let ev = Event {
        code: r.code,
        handle: r.handle,
        detail: r.detail,
    };
    (ev, r.sequence, r.phase)
}

/// Result of posting an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostResult {
    /// Written to the ring: raise vector 0.
    Written,
    /// No event queue configured: only counted.
    NoQueue,
    /// The ring was full: dropped.
    Overflow,
    /// The ring could not be written.
    Dma(DmaError),
}

/// Event queue counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounters {
    /// Events written to the ring.
    pub written: u64,
    /// Events dropped because the ring was full.
    pub overflowed: u64,
    /// Events that happened with no event queue configured.
    pub unqueued: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ring {
    base: u64,
    size: u32,
}

/// EQ registers and ring state.
#[derive(Clone, Debug, Default)]
pub struct EventQueue {
    base: u64,
    size: u32,
    head: u32,
    tail: u32,
    phase: bool,
    seq: u16,
    overflow: bool,
    failed: bool,
    live: Option<Ring>,
    counters: EventCounters,
}

/// Why the EQ registers are invalid at enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEq;

impl EventQueue {
    /// Reset state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an EQ register; `None` when `offset` is not one.
    pub fn reg_read(&self, offset: u64) -> Option<u32> {
        Some(match offset {
            bar0::EQ_BASE_LO => self.base as u32,
            bar0::EQ_BASE_HI => (self.base >> 32) as u32,
            bar0::EQ_SIZE => self.size,
            bar0::EQ_HEAD => self.head,
            bar0::EQ_TAIL => self.tail,
            _ => return None,
        })
    }

    /// Writes an EQ register. Returns `Err(BadEq)` for an invalid `EQ_HEAD`.
    pub fn reg_write(&mut self, offset: u64, value: u32) -> Result<(), BadEq> {
        match offset {
            bar0::EQ_BASE_LO => self.base = (self.base & !0xFFFF_FFFF) | value as u64,
            bar0::EQ_BASE_HI => self.base = (self.base & 0xFFFF_FFFF) | ((value as u64) << 32),
            bar0::EQ_SIZE => self.size = value,
            bar0::EQ_HEAD => {
                let Some(r) = self.live else { return Ok(()) };
                let mask = r.size - 1;
                let produced = self.tail.wrapping_sub(self.head) & mask;
                let advance = value.wrapping_sub(self.head) & mask;
                if value >= r.size || advance > produced {
                    return Err(BadEq);
                }
                self.head = value;
            }
            _ => {}
        }
        Ok(())
    }

    /// Latches the ring at enable. `EQ_SIZE` = 0 means no event queue.
    pub fn enable(&mut self, dma: &Dma) -> Result<(), BadEq> {
        self.head = 0;
        self.tail = 0;
        self.phase = true;
        self.live = None;
        if self.size == 0 {
            return Ok(());
        }
        let size_ok = (admin_contract::RING_MIN..=admin_contract::RING_MAX).contains(&self.size)
            && self.size.is_power_of_two();
        if !size_ok
            || self.base & (rnic_contract::event::ALIGN - 1) != 0
            || dma
                .check_range(self.base, self.size as u64 * EQ_ENTRY_SIZE)
                .is_err()
        {
            return Err(BadEq);
        }
        self.live = Some(Ring {
            base: self.base,
            size: self.size,
        });
        Ok(())
    }

    /// Whether a ring is latched.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Whether an event was lost to a full ring since reset.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Counters.
    pub fn counters(&self) -> EventCounters {
        self.counters
    }

    /// Zeroes the counters.
    pub fn clear_counters(&mut self) {
        self.counters = EventCounters::default();
    }

    /// Whether the ring stopped on a write error since it was latched.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Writes `ev` to the ring (body first, then the phase word).
    pub fn post(&mut self, env: &mut dyn DeviceEnv, ev: &Event) -> PostResult {
        let Some(r) = self.live else {
            self.counters.unqueued += 1;
            return PostResult::NoQueue;
        };
        if (self.tail + 1) & (r.size - 1) == self.head {
            self.overflow = true;
            self.counters.overflowed += 1;
            return PostResult::Overflow;
        }
        let b = encode(ev, self.seq, self.phase);
        let addr = r.base + self.tail as u64 * EQ_ENTRY_SIZE;
        if let Err(e) = env
            .dma_write(DmaScope::EVENT_QUEUE, addr, &b[..PHASE_AT])
            .and_then(|_| {
                env.dma_write(
                    DmaScope::EVENT_QUEUE,
                    addr + PHASE_AT as u64,
                    &b[PHASE_AT..],
                )
            })
        {
            self.live = None;
            self.failed = true;
            return PostResult::Dma(e);
        }
        self.seq = self.seq.wrapping_add(1);
        self.tail = (self.tail + 1) & (r.size - 1);
        if self.tail == 0 {
            self.phase = !self.phase;
        }
        self.counters.written += 1;
        PostResult::Written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::test_memory;

    fn setup(size: u32) -> (Dma, EventQueue) {
        let mut d = Dma::new(test_memory(0x10000));
        d.set_bus_master(true);
        let mut q = EventQueue::new();
        q.reg_write(bar0::EQ_BASE_LO, 0x1000).unwrap();
        q.reg_write(bar0::EQ_SIZE, size).unwrap();
        (d, q)
    }

    #[test]
    fn post_phase_and_overflow() {
        let (mut d, mut q) = setup(4);
        q.enable(&d).unwrap();
        let ev = Event {
            code: code::LINK_UP,
            handle: 0,
            detail: 0,
        };
        for _ in 0..3 {
            assert_eq!(q.post(&mut d, &ev), PostResult::Written);
        }
        assert_eq!(q.post(&mut d, &ev), PostResult::Overflow);
        assert!(q.overflowed());
        let mut b = [0u8; 16];
        d.read(0x1000 + 32, &mut b).unwrap();
        assert_eq!(decode(&b), (ev, 2, true));
        q.reg_write(bar0::EQ_HEAD, 3).unwrap();
        assert_eq!(q.post(&mut d, &ev), PostResult::Written);
        assert_eq!(q.post(&mut d, &ev), PostResult::Written);
        d.read(0x1000, &mut b).unwrap();
        assert!(!decode(&b).2, "second pass has phase 0");
        assert_eq!(q.reg_read(bar0::EQ_TAIL), Some(1));
        assert_eq!(q.reg_write(bar0::EQ_HEAD, 2), Err(BadEq), "head past tail");
        assert_eq!(q.reg_write(bar0::EQ_HEAD, 1), Ok(()));
    }

    #[test]
    fn enable_validation() {
        let (mut d, mut q) = setup(0);
        assert_eq!(q.enable(&d), Ok(()));
        assert!(!q.is_live());
        assert_eq!(
            q.post(
                &mut d,
                &Event {
                    code: 1,
                    handle: 0,
                    detail: 0
                }
            ),
            PostResult::NoQueue
        );
        let (d, mut q) = setup(3);
        assert_eq!(q.enable(&d), Err(BadEq));
        let (d, mut q) = setup(4096);
        assert_eq!(q.enable(&d), Err(BadEq), "ring beyond RAM");
        let (d, mut q) = setup(4);
        q.reg_write(bar0::EQ_BASE_LO, 0x1004).unwrap();
        assert_eq!(q.enable(&d), Err(BadEq));
    }
}
