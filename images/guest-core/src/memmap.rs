//! Memory-map arithmetic: choose the heap range from the PVH memory map.

/// A half-open physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte of the range.
    pub start: u64,
    /// First byte after the range.
    pub end: u64,
}

impl Range {
    /// The range `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Range { start, end }
    }
    /// Bytes in the range (0 if `end <= start`).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// True if the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest piece of `ram` (usable RAM ranges) inside `[lo, hi)` that overlaps none of
/// `reserved`, with its start rounded up and its end rounded down to `align` (a power of two).
/// Uses no allocation: it runs before the heap exists.
pub fn largest_free(
    ram: impl Iterator<Item = Range>,
    reserved: &[Range],
    lo: u64,
    hi: u64,
    align: u64,
) -> Option<Range> {
    let mut best: Option<Range> = None;
    for r in ram {
        let a = r.start.max(lo);
        let b = r.end.min(hi);
        let mut cur = a;
        while cur < b {
            if let Some(res) = reserved
                .iter()
                .find(|x| !x.is_empty() && x.start <= cur && cur < x.end)
            {
                cur = res.end;
                continue;
            }
            let next = reserved
                .iter()
                .filter(|x| !x.is_empty() && x.start > cur)
                .map(|x| x.start)
                .min()
                .unwrap_or(b)
                .min(b);
            let s = cur.checked_add(align - 1).map(|v| v & !(align - 1));
            let e = next & !(align - 1);
            if let Some(s) = s {
                if s < e && best.is_none_or(|bst| e - s > bst.len()) {
                    best = Some(Range::new(s, e));
                }
            }
            cur = next;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avoids_reserved_ranges_and_picks_the_largest() {
        let ram = [Range::new(0, 0x9FC00), Range::new(0x10_0000, 0x1000_0000)];
        let reserved = [
            Range::new(0x10_0000, 0x30_0000),    // kernel
            Range::new(0x800_0000, 0x810_0000),  // module
            Range::new(0xFFF_F000, 0x1000_0000), // start info
        ];
        let r = largest_free(
            ram.iter().copied(),
            &reserved,
            0x10_0000,
            0xC000_0000,
            0x1000,
        );
        assert_eq!(r, Some(Range::new(0x810_0000, 0xFFF_F000)));
    }

    #[test]
    fn respects_limits_and_alignment() {
        let ram = [Range::new(0x10_0123, 0x2_0000_0000)];
        let r = largest_free(ram.iter().copied(), &[], 0x10_0000, 0xC000_0000, 0x1000);
        assert_eq!(r, Some(Range::new(0x10_1000, 0xC000_0000)));
        assert_eq!(
            largest_free(
                ram.iter().copied(),
                &[Range::new(0, u64::MAX)],
                0,
                u64::MAX,
                16
            ),
            None
        );
    }

    #[test]
    fn overlapping_reservations() {
        let ram = [Range::new(0, 0x10000)];
        let reserved = [
            Range::new(0x1000, 0x5000),
            Range::new(0x4000, 0x8000),
            Range::new(0x9000, 0x9000),
        ];
        let r = largest_free(ram.iter().copied(), &reserved, 0, u64::MAX, 0x1000);
        assert_eq!(r, Some(Range::new(0x8000, 0x10000)));
    }
}
