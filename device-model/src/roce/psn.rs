//! 24-bit packet sequence number arithmetic.
//!
//! PSNs wrap modulo 2^24. Two PSNs are compared with the half-window rule of the
//! InfiniBand specification: `a` is *after* `b` when `(a - b) mod 2^24` lies in
//! `1 .. 2^23`, *before* it when that distance is `2^23` or more.

use std::cmp::Ordering;

/// Mask of the 24 significant bits of a PSN (also of a QP number and an MSN).
pub const PSN_MASK: u32 = 0x00FF_FFFF;

/// Half the PSN space: the largest forward distance still counted as "after".
pub const PSN_HALF_WINDOW: u32 = 0x0080_0000;

/// `psn + n` modulo 2^24.
pub const fn psn_add(psn: u32, n: u32) -> u32 {
    psn.wrapping_add(n) & PSN_MASK
}

/// `psn - n` modulo 2^24.
pub const fn psn_sub(psn: u32, n: u32) -> u32 {
    psn.wrapping_sub(n) & PSN_MASK
}

/// Forward distance from `from` to `to`, modulo 2^24 (`0 ..= 2^24 - 1`).
pub const fn psn_distance(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from) & PSN_MASK
}

/// Compares two PSNs with the half-window rule: `Greater` means `a` comes after `b`.
pub fn psn_cmp(a: u32, b: u32) -> Ordering {
    let d = psn_distance(b, a);
    if d == 0 {
        Ordering::Equal
    } else if d < PSN_HALF_WINDOW {
        Ordering::Greater
    } else {
        Ordering::Less
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn add_wraps_at_24_bits() {
        assert_eq!(psn_add(0xFF_FFFF, 1), 0);
        assert_eq!(psn_add(0xFF_FFFE, 5), 3);
        assert_eq!(psn_add(7, 0), 7);
        assert_eq!(psn_sub(0, 1), 0xFF_FFFF);
    }

    #[test]
    fn cmp_uses_the_half_window() {
        assert_eq!(psn_cmp(5, 5), Ordering::Equal);
        assert_eq!(psn_cmp(6, 5), Ordering::Greater);
        assert_eq!(psn_cmp(5, 6), Ordering::Less);
        // Across the wrap: 1 comes after 0xFFFFFF.
        assert_eq!(psn_cmp(1, 0xFF_FFFF), Ordering::Greater);
        assert_eq!(psn_cmp(0xFF_FFFF, 1), Ordering::Less);
        // Exactly half a window ahead counts as behind.
        assert_eq!(psn_cmp(PSN_HALF_WINDOW, 0), Ordering::Less);
        assert_eq!(psn_cmp(PSN_HALF_WINDOW - 1, 0), Ordering::Greater);
    }

    proptest! {
        #[test]
        fn cmp_is_antisymmetric(a in 0u32..=PSN_MASK, b in 0u32..=PSN_MASK) {
            let ab = psn_cmp(a, b);
            let ba = psn_cmp(b, a);
            if psn_distance(a, b) == PSN_HALF_WINDOW {
                // The one ambiguous distance: both call the other "after".
                prop_assert_eq!(ab, Ordering::Less);
                prop_assert_eq!(ba, Ordering::Less);
            } else {
                prop_assert_eq!(ab, ba.reverse());
            }
        }

        #[test]
        fn add_then_distance(a in 0u32..=PSN_MASK, n in 0u32..PSN_HALF_WINDOW) {
            let b = psn_add(a, n);
            prop_assert_eq!(psn_distance(a, b), n);
            prop_assert_eq!(psn_sub(b, n), a);
            if n > 0 {
                prop_assert_eq!(psn_cmp(b, a), Ordering::Greater);
            }
        }
    }
}
