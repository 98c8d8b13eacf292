//! Neighbour resolution for the connection manager (`docs/device-spec.md` §11.7):
//! the bounded neighbour cache, the ARP frames (IPv4) and the ICMPv6 Neighbor
//! Solicitations and Advertisements (IPv6) the port sends and answers.

use std::net::IpAddr;

use rnic_contract::cm::timing::NEIGHBOUR_CACHE_ENTRIES;

/// Ethertype of ARP.
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
/// ARP operation: request.
pub(crate) const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub(crate) const ARP_REPLY: u16 = 2;
/// Length of an ARP packet for Ethernet/IPv4 (after the Ethernet header).
const ARP_LEN: usize = 28;
/// The Ethernet broadcast address.
pub(crate) const BROADCAST: [u8; 6] = [0xFF; 6];

/// A bounded IP → MAC cache, least recently used entry replaced.
#[derive(Debug, Default)]
pub(crate) struct NeighbourCache {
    entries: Vec<(IpAddr, [u8; 6], u64)>,
    tick: u64,
}

impl NeighbourCache {
    /// The MAC of `ip`, marking the entry used.
    pub(crate) fn lookup(&mut self, ip: IpAddr) -> Option<[u8; 6]> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.iter_mut().find(|e| e.0 == ip)?;
        e.2 = tick;
        Some(e.1)
    }

    /// Whether `ip` has an entry (no use recorded).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|e| e.0 == ip)
    }

    /// Sets the MAC of `ip`, replacing the least recently used entry when full.
    pub(crate) fn insert(&mut self, ip: IpAddr, mac: [u8; 6]) {
        self.tick += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == ip) {
            *e = (ip, mac, self.tick);
            return;
        }
        if self.entries.len() >= NEIGHBOUR_CACHE_ENTRIES {
            if let Some((i, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.2) {
                self.entries.swap_remove(i);
            }
        }
        self.entries.push((ip, mac, self.tick));
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// An ARP packet for Ethernet/IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arp {
    pub(crate) op: u16,
    pub(crate) sender_mac: [u8; 6],
    pub(crate) sender_ip: [u8; 4],
    pub(crate) target_mac: [u8; 6],
    pub(crate) target_ip: [u8; 4],
}

impl Arp {
    /// Parses an untagged Ethernet frame carrying ARP for Ethernet/IPv4; `None` for
    /// anything else.
    pub(crate) fn parse(frame: &[u8]) -> Option<Arp> {
        if frame.get(12..14)? != ETHERTYPE_ARP.to_be_bytes() {
            return None;
        }
        let a = frame.get(14..14 + ARP_LEN)?;
        // Hardware type Ethernet, protocol IPv4, address lengths 6 and 4.
        if a[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let op = u16::from_be_bytes([a[6], a[7]]);
        if op != ARP_REQUEST && op != ARP_REPLY {
            return None;
        }
        let mut p = Arp {
            op,
            sender_mac: [0; 6],
            sender_ip: [0; 4],
            target_mac: [0; 6],
            target_ip: [0; 4],
        };
        p.sender_mac.copy_from_slice(&a[8..14]);
        p.sender_ip.copy_from_slice(&a[14..18]);
        p.target_mac.copy_from_slice(&a[18..24]);
        p.target_ip.copy_from_slice(&a[24..28]);
        Some(p)
    }

    /// The Ethernet frame (padded to 60 bytes) carrying this packet to `dst`.
    pub(crate) fn frame(&self, dst: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&self.sender_mac);
        f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&self.op.to_be_bytes());
        f.extend_from_slice(&self.sender_mac);
        f.extend_from_slice(&self.sender_ip);
        f.extend_from_slice(&self.target_mac);
        f.extend_from_slice(&self.target_ip);
        f.resize(60, 0);
        f
    }
}

/// Ethertype of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// IPv6 next header of ICMPv6.
const NEXT_HEADER_ICMPV6: u8 = 58;
/// ICMPv6 type: Neighbor Solicitation.
pub(crate) const ND_SOLICITATION: u8 = 135;
/// ICMPv6 type: Neighbor Advertisement.
pub(crate) const ND_ADVERTISEMENT: u8 = 136;
/// Neighbor Discovery option: source link-layer address.
const OPT_SOURCE_LL: u8 = 1;
/// Neighbor Discovery option: target link-layer address.
const OPT_TARGET_LL: u8 = 2;
/// Neighbor Advertisement flags: Solicited and Override.
const NA_SOLICITED_OVERRIDE: u8 = 0x60;
/// NS/NA body: type, code, checksum, 4 bytes flags/reserved, 16-byte target.
const ND_BODY: usize = 24;
/// IPv6 header length.
const IPV6_LEN: usize = 40;

/// The ones-complement sum of big-endian 16-bit words.
fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    for w in bytes.chunks(2) {
        acc += (u32::from(w[0]) << 8) | u32::from(*w.get(1).unwrap_or(&0));
    }
    acc
}

/// The ICMPv6 checksum of `msg` from `src` to `dst` (RFC 4443 pseudo-header).
fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut acc = sum16(0, src);
    acc = sum16(acc, dst);
    acc += msg.len() as u32 + u32::from(NEXT_HEADER_ICMPV6);
    acc = sum16(acc, msg);
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The solicited-node multicast address of `ip` (`ff02::1:ffXX:XXXX`).
pub(crate) fn solicited_node(ip: &[u8; 16]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xFF;
    a[1] = 0x02;
    a[11] = 0x01;
    a[12] = 0xFF;
    a[13..].copy_from_slice(&ip[13..]);
    a
}

/// The Ethernet multicast MAC of an IPv6 multicast address (`33:33` + its last
/// four bytes).
fn multicast_mac(ip: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, ip[12], ip[13], ip[14], ip[15]]
}

/// A Neighbor Solicitation or Advertisement (ICMPv6 with one link-layer option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Nd {
    /// [`ND_SOLICITATION`] or [`ND_ADVERTISEMENT`].
    pub(crate) kind: u8,
    /// Ethernet source of the frame.
    pub(crate) eth_src: [u8; 6],
    /// IPv6 source (unspecified for duplicate address detection).
    pub(crate) src: [u8; 16],
    /// IPv6 destination.
    pub(crate) dst: [u8; 16],
    /// The address asked about or advertised.
    pub(crate) target: [u8; 16],
    /// The link-layer option (source for NS, target for NA), if present.
    pub(crate) link: Option<[u8; 6]>,
}

impl Nd {
    /// Parses an untagged Ethernet frame carrying a Neighbor Solicitation or
    /// Advertisement with hop limit 255, code 0 and a valid ICMPv6 checksum;
    /// `None` for anything else.
    pub(crate) fn parse(frame: &[u8]) -> Option<Nd> {
        if frame.get(12..14)? != ETHERTYPE_IPV6.to_be_bytes() {
            return None;
        }
        let ip = frame.get(14..)?;
        let len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
        if ip[0] >> 4 != 6 || ip[6] != NEXT_HEADER_ICMPV6 || ip[7] != 255 {
            return None;
        }
        let msg = ip.get(IPV6_LEN..IPV6_LEN + len)?;
        if len < ND_BODY || msg[1] != 0 {
            return None;
        }
        let kind = msg[0];
        if kind != ND_SOLICITATION && kind != ND_ADVERTISEMENT {
            return None;
        }
        let src: [u8; 16] = ip[8..24].try_into().ok()?;
        let dst: [u8; 16] = ip[24..40].try_into().ok()?;
        let mut zeroed = msg.to_vec();
        zeroed[2..4].fill(0);
        if icmpv6_checksum(&src, &dst, &zeroed) != u16::from_be_bytes([msg[2], msg[3]]) {
            return None;
        }
        let want = if kind == ND_SOLICITATION {
            OPT_SOURCE_LL
        } else {
            OPT_TARGET_LL
        };
        // Options: type, length in units of 8 bytes, data; at most a handful fit.
        let mut link = None;
        let mut at = ND_BODY;
        while at + 2 <= msg.len() {
            let units = usize::from(msg[at + 1]);
            if units == 0 || at + units * 8 > msg.len() {
                return None;
            }
            if msg[at] == want && units == 1 {
                link = msg[at + 2..at + 8].try_into().ok();
            }
            at += units * 8;
        }
        Some(Nd {
            kind,
            eth_src: frame[6..12].try_into().ok()?,
            src,
            dst,
            target: msg[8..24].try_into().ok()?,
            link,
        })
    }

    /// The Ethernet frame of a Neighbor Solicitation for `target` from
    /// (`mac`, `src`), to the target's solicited-node multicast address.
    pub(crate) fn solicitation(mac: [u8; 6], src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
        let dst = solicited_node(&target);
        nd_frame(
            multicast_mac(&dst),
            mac,
            src,
            dst,
            [ND_SOLICITATION, 0],
            target,
            OPT_SOURCE_LL,
        )
    }

    /// The Neighbor Advertisement answering this solicitation for the port
    /// (`mac`, `own`).
    pub(crate) fn advertisement(&self, mac: [u8; 6], own: [u8; 16]) -> Vec<u8> {
        let (eth_dst, dst) = if self.src == [0; 16] {
            let all_nodes = [0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            (multicast_mac(&all_nodes), all_nodes)
        } else {
            (self.link.unwrap_or(self.eth_src), self.src)
        };
        nd_frame(
            eth_dst,
            mac,
            own,
            dst,
            [ND_ADVERTISEMENT, NA_SOLICITED_OVERRIDE],
            own,
            OPT_TARGET_LL,
        )
    }
}

/// An NS or NA frame: `kind_flags` = (ICMPv6 type, first flags byte).
fn nd_frame(
    eth_dst: [u8; 6],
    mac: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    kind_flags: [u8; 2],
    target: [u8; 16],
    option: u8,
) -> Vec<u8> {
    let mut msg = vec![kind_flags[0], 0, 0, 0, kind_flags[1], 0, 0, 0];
    msg.extend_from_slice(&target);
    msg.extend_from_slice(&[option, 1]);
    msg.extend_from_slice(&mac);
    let csum = icmpv6_checksum(&src, &dst, &msg);
    msg[2..4].copy_from_slice(&csum.to_be_bytes());
    let mut f = Vec::with_capacity(14 + IPV6_LEN + msg.len());
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&msg);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_replaces_the_least_recently_used() {
        let mut c = NeighbourCache::default();
        for i in 0..NEIGHBOUR_CACHE_ENTRIES as u8 {
            c.insert(IpAddr::from([10, 0, 0, i]), [2, 0, 0, 0, 0, i]);
        }
        // Entry 0 is used, so entry 1 is the least recently used one.
        assert_eq!(
            c.lookup(IpAddr::from([10, 0, 0, 0])),
            Some([2, 0, 0, 0, 0, 0])
        );
        c.insert(IpAddr::from([10, 0, 1, 0]), [2, 1, 1, 1, 1, 1]);
        assert_eq!(c.len(), NEIGHBOUR_CACHE_ENTRIES);
        assert!(!c.contains(IpAddr::from([10, 0, 0, 1])));
        assert!(c.contains(IpAddr::from([10, 0, 0, 0])));
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn arp_round_trip_and_layout() {
        let a = Arp {
            op: ARP_REQUEST,
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: [10, 0, 0, 1],
            target_mac: [0; 6],
            target_ip: [10, 0, 0, 2],
        };
        let f = a.frame(BROADCAST);
        assert_eq!(f.len(), 60);
        assert_eq!(f[12..22], [8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(f[38..42], [10, 0, 0, 2]);
        assert_eq!(Arp::parse(&f), Some(a));
        let mut bad = f.clone();
        bad[21] = 3;
        assert_eq!(Arp::parse(&bad), None);
        assert_eq!(Arp::parse(&f[..30]), None);
    }

    #[test]
    fn neighbor_solicitation_and_advertisement_round_trip() {
        let own = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAB, 0xCD, 1];
        let peer = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let ns = Nd::solicitation([2, 0, 0, 0, 0, 2], peer, own);
        assert_eq!(ns[..6], [0x33, 0x33, 0xFF, 0xAB, 0xCD, 1]);
        assert_eq!((ns[20], ns[21], ns[54]), (58, 255, 135));
        let p = Nd::parse(&ns).expect("a valid NS");
        assert_eq!(
            (p.target, p.src, p.link),
            (own, peer, Some([2, 0, 0, 0, 0, 2]))
        );
        assert_eq!(p.dst, solicited_node(&own));
        let na = p.advertisement([2, 0, 0, 0, 0, 1], own);
        assert_eq!(na[..6], [2, 0, 0, 0, 0, 2]);
        let a = Nd::parse(&na).expect("a valid NA");
        assert_eq!(
            (a.kind, a.target, a.link),
            (ND_ADVERTISEMENT, own, Some([2, 0, 0, 0, 0, 1]))
        );
        assert_eq!(na[14 + 40 + 4], 0x60, "Solicited and Override");
        // A damaged checksum or a routed hop limit is refused.
        let mut bad = na.clone();
        bad[14 + 40 + 20] ^= 1;
        assert_eq!(Nd::parse(&bad), None);
        let mut routed = na.clone();
        routed[21] = 254;
        assert_eq!(Nd::parse(&routed), None);
    }
}
