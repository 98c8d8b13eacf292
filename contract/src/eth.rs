//! Ethernet queues (`docs/device-spec.md` §3.8, §5): limits, the 16-byte TX and RX
//! descriptors, their status bits, the receive filter and the queue error causes.
//! The doorbells are in [`crate::bar0::eth_db`].

use crate::field;
use crate::fixed_view;

/// TX queues and RX queues, each (ids 0..7) (§5.2).
pub const MAX_QUEUES: usize = 8;
/// Descriptor size in bytes (§5.4).
pub const DESC_SIZE: usize = 16;
/// Required ring base alignment in bytes (§3.8).
pub const RING_ALIGN: u64 = 16;
/// Smallest ring in descriptors (§3.8).
pub const RING_MIN: u32 = 2;
/// Largest ring in descriptors (§3.8).
pub const RING_MAX: u32 = 4096;
/// Ethernet II header length in bytes (§5.5).
pub const ETH_HEADER: usize = 14;
/// One 802.1Q tag in bytes (§5.5).
pub const VLAN_TAG: usize = 4;
/// Smallest MTU (§5.5).
pub const MIN_MTU: u32 = 68;
/// Largest MTU (§5.5).
pub const MAX_MTU: u32 = 9000;
/// MTU after reset (§5.5).
pub const DEFAULT_MTU: u32 = 1500;
/// Largest multicast list (§3.7).
pub const MAX_MULTICAST: usize = 64;
/// Link speed reported when up, Mb/s (§3.7, §5.6).
pub const LINK_SPEED_MBPS: u32 = 100_000;

/// Descriptor status bits, written by the device (§5.4).
pub mod status {
    /// The device finished the descriptor.
    pub const DONE: u8 = 1 << 0;
    /// TX only: length out of range or buffer unreadable, not sent.
    pub const ERROR: u8 = 1 << 1;
    /// RX only: destination `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: u8 = 1 << 2;
    /// RX only: another group address.
    pub const MULTICAST: u8 = 1 << 3;
}

/// Receive filter bits (`SET_RX_FILTER`, §5.5).
pub mod filter {
    /// Frames to the Ethernet MAC.
    pub const UNICAST: u32 = 1 << 0;
    /// Frames to the broadcast address.
    pub const BROADCAST: u32 = 1 << 1;
    /// Frames to a group address in the multicast list.
    pub const MULTICAST: u32 = 1 << 2;
    /// Frames to any group address other than broadcast.
    pub const ALL_MULTICAST: u32 = 1 << 3;
    /// Every frame.
    pub const PROMISCUOUS: u32 = 1 << 4;
    /// Every defined bit.
    pub const ALL: u32 = 0x1F;
    /// Reset value.
    pub const DEFAULT: u32 = UNICAST | BROADCAST;
}

/// `ETH_QUEUE_ERROR` detail values (§5.3).
pub mod queue_error {
    /// A tail value ≥ the ring size was written.
    pub const BAD_DOORBELL: u32 = 1;
    /// A descriptor could not be read, or its status could not be written.
    pub const DESCRIPTOR_DMA: u32 = 2;
    /// RX: the frame could not be written to the buffer.
    pub const RX_BUFFER_DMA: u32 = 3;
}

/// Byte ranges of the TX descriptor (§5.4).
pub mod tx_field {
    use crate::field::Field;
    /// Frame buffer address.
    pub const ADDR: Field = 0..8;
    /// Frame length in bytes.
    pub const LEN: Field = 8..10;
    /// Flags (byte, RsvdZ, ignored).
    pub const FLAGS: usize = 10;
    /// Status (byte, written by the device; the only byte it writes).
    pub const STATUS: usize = 11;
}

/// Byte ranges of the RX descriptor (§5.4).
pub mod rx_field {
    use crate::field::Field;
    /// Buffer address.
    pub const ADDR: Field = 0..8;
    /// Buffer size in bytes.
    pub const BUF_LEN: Field = 8..10;
    /// Frame length, written by the device.
    pub const FRAME_LEN: Field = 10..12;
    /// Status (byte, written by the device last).
    pub const STATUS: usize = 13;
}

fixed_view!(
    /// A view of a 16-byte TX descriptor (§5.4).
    TxDescriptor,
    DESC_SIZE
);

impl<T: AsRef<[u8]>> TxDescriptor<T> {
    /// Frame buffer address.
    pub fn addr(&self) -> u64 {
        field::get_u64(self.bytes(), tx_field::ADDR)
    }
    /// Frame length in bytes.
    pub fn len(&self) -> u16 {
        field::get_u16(self.bytes(), tx_field::LEN)
    }
    /// Whether the frame length is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Status byte.
    pub fn status(&self) -> u8 {
        self.bytes()[tx_field::STATUS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TxDescriptor<T> {
    /// Sets the buffer address.
    pub fn set_addr(&mut self, v: u64) {
        field::set_u64(self.bytes_mut(), tx_field::ADDR, v)
    }
    /// Sets the frame length.
    pub fn set_len(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), tx_field::LEN, v)
    }
    /// Sets the status byte.
    pub fn set_status(&mut self, v: u8) {
        self.bytes_mut()[tx_field::STATUS] = v;
    }
}

fixed_view!(
    /// A view of a 16-byte RX descriptor (§5.4).
    RxDescriptor,
    DESC_SIZE
);

impl<T: AsRef<[u8]>> RxDescriptor<T> {
    /// Buffer address.
    pub fn addr(&self) -> u64 {
        field::get_u64(self.bytes(), rx_field::ADDR)
    }
    /// Buffer size in bytes.
    pub fn buf_len(&self) -> u16 {
        field::get_u16(self.bytes(), rx_field::BUF_LEN)
    }
    /// Frame length written by the device.
    pub fn frame_len(&self) -> u16 {
        field::get_u16(self.bytes(), rx_field::FRAME_LEN)
    }
    /// Status byte.
    pub fn status(&self) -> u8 {
        self.bytes()[rx_field::STATUS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RxDescriptor<T> {
    /// Sets the buffer address.
    pub fn set_addr(&mut self, v: u64) {
        field::set_u64(self.bytes_mut(), rx_field::ADDR, v)
    }
    /// Sets the buffer size.
    pub fn set_buf_len(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), rx_field::BUF_LEN, v)
    }
    /// Sets the frame length.
    pub fn set_frame_len(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), rx_field::FRAME_LEN, v)
    }
    /// Sets the status byte.
    pub fn set_status(&mut self, v: u8) {
        self.bytes_mut()[rx_field::STATUS] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptor layouts of §5.4 and limits of §3.8/§5.5, copied independently.
    #[test]
    fn matches_spec_section_5() {
        let mut b = [0u8; 16];
        let mut tx = TxDescriptor::new_checked(&mut b[..]).unwrap();
        tx.set_addr(0x1122_3344_5566_7788);
        tx.set_len(1514);
        tx.set_status(status::DONE | status::ERROR);
        assert_eq!(b[0], 0x88);
        assert_eq!(b[8..10], 1514u16.to_le_bytes());
        assert_eq!(b[11], 3);
        let mut b = [0u8; 16];
        let mut rx = RxDescriptor::new_checked(&mut b[..]).unwrap();
        rx.set_buf_len(2048);
        rx.set_frame_len(60);
        rx.set_status(status::DONE | status::BROADCAST);
        assert_eq!((rx.buf_len(), rx.frame_len(), rx.status()), (2048, 60, 5));
        assert_eq!(b[10..12], [60, 0]);
        assert_eq!(b[13], 5);
        assert_eq!((MIN_MTU, MAX_MTU, DEFAULT_MTU), (68, 9000, 1500));
        assert_eq!((filter::DEFAULT, filter::ALL), (3, 0x1F));
        assert_eq!(status::MULTICAST, 8);
    }
}
