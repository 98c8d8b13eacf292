//! O(1) allocation of object handles (PDN, CQN, QPN) and MR indexes.
//!
//! The order is the one `docs/device-spec.md` §0.1 promises: handles never used
//! since the last reset are handed out first, in ascending order from the first
//! handle (1; 2 for QPNs, whose 0 and 1 are reserved); once
//! every handle up to the limit has been used, the handle freed longest ago is
//! reused first (a FIFO of freed handles). A just-freed handle is therefore reused
//! as late as possible, which keeps stale handles and keys held by a driver or a
//! peer from naming a new object soon after the old one went away.
//!
//! Allocation, release and [`HandleAlloc::peek`] are O(1); the allocator never
//! looks at the objects themselves (the tables in [`super`] and [`super::mr`] own
//! them and call [`HandleAlloc::free`] exactly once per released handle).

use std::collections::VecDeque;

/// Hands out handles `first..=last` (`1..=max` for most objects; QPNs start at 2);
/// 0 is never handed out.
#[derive(Clone, Debug, Default)]
pub struct HandleAlloc {
    /// Lowest handle handed out.
    first: u64,
    /// Highest handle handed out.
    max: u64,
    /// Lowest handle never handed out since the last reset (`max + 1` once all were).
    next_fresh: u64,
    /// Released handles, least recently released first.
    freed: VecDeque<u32>,
}

impl HandleAlloc {
    /// An allocator of handles `1..=max`.
    pub fn new(max: u32) -> Self {
        Self::range(1, max)
    }

    /// An allocator of handles `first..=last` (`first` at least 1; empty when
    /// `last < first`).
    pub fn range(first: u32, last: u32) -> Self {
        let first = u64::from(first.max(1));
        HandleAlloc {
            first,
            max: u64::from(last),
            next_fresh: first,
            freed: VecDeque::new(),
        }
    }

    /// The handle the next [`HandleAlloc::alloc`] returns, without taking it.
    pub fn peek(&self) -> Option<u32> {
        if self.next_fresh <= self.max {
            Some(self.next_fresh as u32)
        } else {
            self.freed.front().copied()
        }
    }

    /// Takes a handle; `None` when all `max` are in use.
    pub fn alloc(&mut self) -> Option<u32> {
        if self.next_fresh <= self.max {
            let h = self.next_fresh as u32;
            self.next_fresh += 1;
            Some(h)
        } else {
            self.freed.pop_front()
        }
    }

    /// Returns handle `h`. The caller guarantees that `h` is in use (it removed an
    /// object stored under `h`), so a handle is never queued twice.
    pub fn free(&mut self, h: u32) {
        debug_assert!(h != 0 && u64::from(h) < self.next_fresh, "freeing {h}");
        self.freed.push_back(h);
    }

    /// Every handle free again; allocation restarts at the first handle.
    pub fn reset(&mut self) {
        self.next_fresh = self.first;
        self.freed.clear();
    }

    /// Handles currently in use.
    pub fn in_use(&self) -> u32 {
        (self.next_fresh - self.first - self.freed.len() as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_handles_ascend_from_one_then_fifo_reuse() {
        let mut a = HandleAlloc::new(4);
        assert_eq!(a.peek(), Some(1));
        assert_eq!(
            (0..4).map(|_| a.alloc().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(a.peek(), None);
        assert_eq!(a.alloc(), None, "limit reached");
        assert_eq!(a.in_use(), 4);
        a.free(3);
        a.free(1);
        assert_eq!(a.in_use(), 2);
        assert_eq!(a.peek(), Some(3), "freed longest ago comes first");
        assert_eq!(a.alloc(), Some(3));
        a.free(2);
        assert_eq!(a.alloc(), Some(1));
        assert_eq!(a.alloc(), Some(2));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn a_freed_handle_waits_while_fresh_ones_remain() {
        let mut a = HandleAlloc::new(3);
        let h = a.alloc().unwrap();
        a.free(h);
        assert_eq!(a.alloc(), Some(2));
        assert_eq!(a.alloc(), Some(3));
        assert_eq!(a.alloc(), Some(h));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn reset_restarts_at_one() {
        let mut a = HandleAlloc::new(2);
        a.alloc();
        a.alloc();
        a.free(1);
        a.reset();
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.alloc(), Some(1));
        assert_eq!(a.alloc(), Some(2));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn zero_and_full_range_limits() {
        let mut a = HandleAlloc::new(0);
        assert_eq!(a.peek(), None);
        assert_eq!(a.alloc(), None);
        let mut a = HandleAlloc::new(u32::MAX);
        assert_eq!(a.alloc(), Some(1));
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn churn_on_a_nearly_full_large_table() {
        // A million allocate/free pairs with 2^20 - 1 handles live (cheap only because
        // allocation does not search: a scan from 1 would take minutes).
        let max = 1 << 20;
        let mut a = HandleAlloc::new(max);
        for _ in 0..max - 1 {
            a.alloc().unwrap();
        }
        for _ in 0..1_000_000 {
            let h = a.alloc().unwrap();
            a.free(h);
        }
        assert_eq!(a.in_use(), max - 1);
    }
}
