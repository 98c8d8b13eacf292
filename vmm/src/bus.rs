//! A range bus: non-overlapping address ranges mapped to targets, looked up in
//! O(log n) (shaped like Cloud Hypervisor's `vm_device::Bus`). The monitor keeps one
//! for port I/O and the PCI bus keeps one for the BARs its functions decode.

use std::collections::BTreeMap;

/// Why a range could not be added to a [`RangeBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The range is empty or runs past the end of the address space.
    #[error("range at {base:#x} of {len:#x} bytes is empty or wraps the address space")]
    InvalidRange {
        /// First address of the refused range.
        base: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// The range overlaps one already on the bus.
    #[error(
        "range {base:#x}..{end:#x} overlaps {other_base:#x}..{other_end:#x}, which is already mapped",
        end = base.wrapping_add(*len),
        other_end = other_base.wrapping_add(*other_len)
    )]
    Overlap {
        /// First address of the refused range.
        base: u64,
        /// Its length in bytes.
        len: u64,
        /// First address of the range it collides with.
        other_base: u64,
        /// Length of that range in bytes.
        other_len: u64,
    },
}

/// One range on a [`RangeBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRange {
    /// First address.
    pub base: u64,
    /// Length in bytes (at least 1).
    pub len: u64,
}

impl BusRange {
    /// True when the `access_len` bytes at `addr` lie wholly inside the range.
    pub fn contains(&self, addr: u64, access_len: u64) -> bool {
        addr >= self.base
            && addr
                .checked_add(access_len)
                .is_some_and(|end| end <= self.base + self.len)
    }
}

/// Non-overlapping ranges of an address space, each mapped to a `T`.
#[derive(Debug)]
pub struct RangeBus<T> {
    ranges: BTreeMap<u64, (u64, T)>,
}

impl<T> Default for RangeBus<T> {
    fn default() -> Self {
        RangeBus {
            ranges: BTreeMap::new(),
        }
    }
}

impl<T> RangeBus<T> {
    /// Maps `len` bytes at `base` to `target`. Refuses empty, wrapping and
    /// overlapping ranges.
    pub fn insert(&mut self, base: u64, len: u64, target: T) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        let before = self.ranges.range(..end).next_back();
        if let Some((&other_base, &(other_len, _))) = before {
            if other_base + other_len > base {
                return Err(BusError::Overlap {
                    base,
                    len,
                    other_base,
                    other_len,
                });
            }
        }
        self.ranges.insert(base, (len, target));
        Ok(())
    }

    /// Removes the range that starts at `base` and returns its target.
    pub fn remove(&mut self, base: u64) -> Option<T> {
        self.ranges.remove(&base).map(|(_, t)| t)
    }

    /// The range holding the whole access of `access_len` bytes at `addr`, its
    /// target and the offset of `addr` in it. An access that straddles the end of
    /// a range resolves to nothing.
    pub fn resolve(&self, addr: u64, access_len: u64) -> Option<(BusRange, &T, u64)> {
        let (&base, (len, target)) = self.ranges.range(..=addr).next_back()?;
        let range = BusRange { base, len: *len };
        range
            .contains(addr, access_len)
            .then_some((range, target, addr - base))
    }

    /// Every range and its target, by ascending address.
    pub fn iter(&self) -> impl Iterator<Item = (BusRange, &T)> {
        self.ranges
            .iter()
            .map(|(&base, (len, t))| (BusRange { base, len: *len }, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_whole_accesses_inside_ranges_only() {
        let mut bus = RangeBus::default();
        bus.insert(0x3F8, 8, "com1").unwrap();
        bus.insert(0xCF8, 8, "pci").unwrap();
        let (range, target, offset) = bus.resolve(0x3FD, 1).unwrap();
        assert_eq!((range.base, *target, offset), (0x3F8, "com1", 5));
        assert_eq!(bus.resolve(0xCFC, 4).map(|r| (*r.1, r.2)), Some(("pci", 4)));
        // Straddling the end, below the first range, in a gap, past the last.
        assert!(bus.resolve(0xCFE, 4).is_none());
        assert!(bus.resolve(0x3F7, 1).is_none());
        assert!(bus.resolve(0x400, 1).is_none());
        assert!(bus.resolve(0xD00, 1).is_none());
    }

    #[test]
    fn refuses_overlaps_empty_and_wrapping_ranges() {
        let mut bus = RangeBus::default();
        bus.insert(0x1000, 0x1000, 1).unwrap();
        for (base, len) in [(0x1800, 0x10), (0x0800, 0x900), (0x0, 0x10000)] {
            assert_eq!(
                bus.insert(base, len, 2),
                Err(BusError::Overlap {
                    base,
                    len,
                    other_base: 0x1000,
                    other_len: 0x1000
                })
            );
        }
        // Touching ranges are fine.
        bus.insert(0x2000, 0x10, 3).unwrap();
        bus.insert(0x0F00, 0x100, 4).unwrap();
        assert_eq!(
            bus.insert(5, 0, 5),
            Err(BusError::InvalidRange { base: 5, len: 0 })
        );
        assert!(matches!(
            bus.insert(u64::MAX, 2, 5),
            Err(BusError::InvalidRange { .. })
        ));
        assert_eq!(
            bus.iter().map(|(r, t)| (r.base, *t)).collect::<Vec<_>>(),
            vec![(0x0F00, 4), (0x1000, 1), (0x2000, 3)]
        );
    }

    #[test]
    fn removed_ranges_stop_resolving_and_free_their_space() {
        let mut bus = RangeBus::default();
        bus.insert(0xC000_0000, 0x1_0000, 'a').unwrap();
        assert_eq!(bus.remove(0xC000_0000), Some('a'));
        assert_eq!(bus.remove(0xC000_0000), None);
        assert!(bus.resolve(0xC000_0000, 4).is_none());
        bus.insert(0xC000_8000, 0x1000, 'b').unwrap();
        assert_eq!(bus.resolve(0xC000_8FFC, 4).map(|r| *r.1), Some('b'));
    }
}
