//! Classification of frames taken from the port: is it RoCEv2 (`docs/device-spec.md`
//! §5.1)?

use super::ROCE_UDP_PORT;

/// Whether `frame` is Ethernet II / IPv4 or IPv6 / UDP to port 4791 (optionally
/// behind one 802.1Q tag).
pub fn is_roce_frame(frame: &[u8]) -> bool {
    let be16 = |i: usize| {
        frame
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut off = 12;
    let mut ethertype = be16(off);
    if ethertype == Some(0x8100) {
        off += 4;
        ethertype = be16(off);
    }
    let l3 = off + 2;
    let udp = match ethertype {
        Some(0x0800) => {
            let Some(&vihl) = frame.get(l3) else {
                return false;
            };
            if vihl >> 4 != 4 || frame.get(l3 + 9) != Some(&17) {
                return false;
            }
            l3 + (vihl as usize & 0xF) * 4
        }
        Some(0x86DD) => {
            if frame.get(l3 + 6) != Some(&17) {
                return false;
            }
            l3 + 40
        }
        _ => return false,
    };
    be16(udp + 2) == Some(ROCE_UDP_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::tests::{eth_frame, roce_like};

    #[test]
    fn roce_frame_classification() {
        let mac = [2, 0x7E, 0x57, 0, 0, 1];
        assert!(is_roce_frame(&roce_like(mac)));
        let mut v6 = vec![0u8; 14 + 40 + 8];
        v6[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
        v6[14 + 6] = 17;
        v6[54 + 2..54 + 4].copy_from_slice(&4791u16.to_be_bytes());
        assert!(is_roce_frame(&v6));
        let mut other = roce_like(mac);
        other[34 + 3] = 0x00;
        assert!(!is_roce_frame(&other));
        assert!(!is_roce_frame(&eth_frame(mac, mac, 60)));
        assert!(!is_roce_frame(&[0u8; 13]));
        let mut truncated = roce_like(mac);
        truncated.truncate(30);
        assert!(!is_roce_frame(&truncated));
    }
}
