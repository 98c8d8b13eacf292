//! Neighbour resolution for the connection manager (`docs/device-spec.md` §11.7):
//! the bounded neighbour cache and the ARP frames the port sends and answers.

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
}
