//! CRC-32 and the RoCEv2 invariant CRC (ICRC).
//!
//! The ICRC is the IEEE 802.3 CRC-32 (reflected polynomial `0xEDB88320`, initial
//! value all ones, final complement) computed over a *pseudo-packet*:
//!
//! 1. eight bytes of `0xFF` (they stand for the InfiniBand LRH, which RoCEv2 lacks);
//! 2. the IPv4 header with the fields routers may change replaced by ones: DSCP/ECN
//!    (byte 1), TTL (byte 8) and the header checksum (bytes 10..12);
//! 3. the UDP header with its checksum (bytes 6..8) replaced by ones;
//! 4. the BTH with its byte 4 (FECN, BECN and reserved bits) replaced by ones;
//! 5. the extension headers, the payload and the pad bytes, unchanged.
//!
//! Over IPv6 ([`icrc6`]) item 2 is the 40-byte IPv6 header with the traffic class,
//! the flow label and the hop limit replaced by ones (the version nibble is kept).
//!
//! The 32-bit result is stored after the pad least significant byte first (the
//! same byte order as the Ethernet FCS).

/// Reflected CRC-32 polynomial (IEEE 802.3).
const POLY: u32 = 0xEDB8_8320;

/// Slicing-by-8 tables: `TABLES[0]` is the classic byte table; `TABLES[k][i]` is the
/// CRC register after byte `i` followed by `k` zero bytes, so eight bytes are folded
/// in with eight lookups instead of eight dependent steps.
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// A running CRC-32 (raw register; call [`Crc32::finish`] for the final value).
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh CRC (register all ones).
    pub const fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    /// Feeds bytes (eight at a time, then the rest one by one).
    pub fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut c = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for b in &mut chunks {
            let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ c;
            let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The CRC of everything fed so far (complemented register).
    pub const fn finish(&self) -> u32 {
        !self.0
    }
}

/// CRC-32 (IEEE 802.3) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.finish()
}

/// Byte offsets inside the IPv4/UDP/BTH run that the ICRC masks to ones.
const IPV4_TOS: usize = 1;
const IPV4_TTL: usize = 8;
const IPV4_CSUM: usize = 10;
const UDP_CSUM: usize = super::IPV4_HEADER_LEN + 6;
const BTH_RESV8A: usize = super::IPV4_HEADER_LEN + super::UDP_HEADER_LEN + 4;
/// IPv4 header + UDP header + BTH.
const MASKED_LEN: usize = super::IPV4_HEADER_LEN + super::UDP_HEADER_LEN + super::BTH_LEN;

/// Computes the ICRC of a RoCEv2 packet over IPv4.
///
/// `packet` runs from the first byte of a 20-byte IPv4 header (no options) to the
/// last pad byte, i.e. it excludes the Ethernet header and the ICRC itself. Returns
/// `None` if `packet` is too short to hold IPv4 + UDP + BTH.
pub fn icrc(packet: &[u8]) -> Option<u32> {
    if packet.len() < MASKED_LEN {
        return None;
    }
    let mut head = [0u8; MASKED_LEN];
    head.copy_from_slice(&packet[..MASKED_LEN]);
    head[IPV4_TOS] = 0xFF;
    head[IPV4_TTL] = 0xFF;
    head[IPV4_CSUM] = 0xFF;
    head[IPV4_CSUM + 1] = 0xFF;
    head[UDP_CSUM] = 0xFF;
    head[UDP_CSUM + 1] = 0xFF;
    head[BTH_RESV8A] = 0xFF;
    let mut c = Crc32::new();
    c.update(&[0xFF; 8]);
    c.update(&head);
    c.update(&packet[MASKED_LEN..]);
    Some(c.finish())
}

/// IPv6 header + UDP header + BTH.
const MASKED_LEN6: usize = super::IPV6_HEADER_LEN + super::UDP_HEADER_LEN + super::BTH_LEN;

/// Computes the ICRC of a RoCEv2 packet over IPv6: `packet` runs from the first
/// byte of the 40-byte IPv6 header (no extension headers) to the last pad byte.
/// Returns `None` if `packet` is too short to hold IPv6 + UDP + BTH.
pub fn icrc6(packet: &[u8]) -> Option<u32> {
    if packet.len() < MASKED_LEN6 {
        return None;
    }
    let mut head = [0u8; MASKED_LEN6];
    head.copy_from_slice(&packet[..MASKED_LEN6]);
    // Traffic class and flow label (bits 27:0 of the first word), hop limit.
    head[0] |= 0x0F;
    head[1..4].fill(0xFF);
    head[7] = 0xFF;
    let udp_csum = super::IPV6_HEADER_LEN + 6;
    head[udp_csum..udp_csum + 2].fill(0xFF);
    head[super::IPV6_HEADER_LEN + super::UDP_HEADER_LEN + 4] = 0xFF;
    let mut c = Crc32::new();
    c.update(&[0xFF; 8]);
    c.update(&head);
    c.update(&packet[MASKED_LEN6..]);
    Some(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time CRC-32, written independently of the table version.
    fn crc32_bitwise(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &b in bytes {
            for bit in 0..8 {
                let inbit = (b >> bit) & 1;
                let top = crc & 1;
                crc >>= 1;
                if (top as u8 ^ inbit) != 0 {
                    crc ^= POLY;
                }
            }
        }
        !crc
    }

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_bitwise(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn table_and_bitwise_agree() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for len in [0, 1, 2, 3, 17, 64, 999, 1000] {
            assert_eq!(crc32(&data[..len]), crc32_bitwise(&data[..len]));
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"the quick brown fox jumps over the lazy dog";
        let mut c = Crc32::new();
        c.update(&data[..10]);
        c.update(&data[10..]);
        assert_eq!(c.finish(), crc32(data));
    }

    #[test]
    fn prefix_register_matches_the_known_seed() {
        // After eight 0xFF bytes the raw register holds 0xDEBB20E3, the constant
        // RoCE implementations start from when they skip the masked LRH.
        let mut c = Crc32::new();
        c.update(&[0xFF; 8]);
        assert_eq!(c.0, 0xDEBB_20E3);
    }

    #[test]
    fn icrc_ignores_exactly_the_masked_fields() {
        let mut p: Vec<u8> = (0..80u8).collect();
        let base = icrc(&p).unwrap();
        for i in 0..p.len() {
            let masked = [
                IPV4_TOS,
                IPV4_TTL,
                IPV4_CSUM,
                IPV4_CSUM + 1,
                UDP_CSUM,
                UDP_CSUM + 1,
                BTH_RESV8A,
            ]
            .contains(&i);
            p[i] ^= 0x5A;
            assert_eq!(icrc(&p).unwrap() == base, masked, "byte {i}");
            p[i] ^= 0x5A;
        }
        assert_eq!(icrc(&p[..MASKED_LEN - 1]), None);
    }
}
