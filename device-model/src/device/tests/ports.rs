//! The port: Ethernet between two devices.

use super::*;
use crate::admin::AdminStatus;

#[test]
fn ethernet_between_two_devices() {
    let (wa, wb) = in_process_pair();
    let mut a = with_eq(0);
    let mut b = with_eq(0);
    a.dev.attach_wire(Box::new(wa));
    b.dev.attach_wire(Box::new(wb));
    let mac_b = [2, 0x7E, 0x57, 0, 0, 2];
    assert_eq!(
        b.submit(&cmd(op::SET_MAC, 1, |o| o[0..6].copy_from_slice(&mac_b)))
            .status,
        0
    );
    let (txr, rxr, buf) = (0x6_0000u64, 0x7_0000u64, 0x8_0000u64);
    let q = |base: u64, vector: u16| {
        move |o: &mut [u8; 56]| {
            o[0..8].copy_from_slice(&base.to_le_bytes());
            o[8..12].copy_from_slice(&8u32.to_le_bytes());
            o[12..14].copy_from_slice(&vector.to_le_bytes());
        }
    };
    assert_eq!(a.submit(&cmd(op::CREATE_TXQ, 2, q(txr, 1))).status, 0);
    assert_eq!(b.submit(&cmd(op::CREATE_RXQ, 3, q(rxr, 2))).status, 0);
    assert_eq!(
        b.submit(&cmd(op::CREATE_RXQ, 4, q(rxr, 2))).status,
        AdminStatus::Busy.code()
    );
    // B posts one receive buffer.
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&buf.to_le_bytes());
    d[8..10].copy_from_slice(&2048u16.to_le_bytes());
    b.mem.write_slice(&d, GuestAddress(rxr)).unwrap();
    b.write(0x1008, 1);
    // A sends one frame to B and one to somebody else.
    let f = eth_frame(mac_b, [2, 0x7E, 0x57, 0, 0, 1], 100);
    let g = eth_frame([2, 9, 9, 9, 9, 9], [2, 0x7E, 0x57, 0, 0, 1], 80);
    a.mem.write_slice(&f, GuestAddress(buf)).unwrap();
    a.mem.write_slice(&g, GuestAddress(buf + 0x1000)).unwrap();
    for (i, (addr, len)) in [(buf, 100u16), (buf + 0x1000, 80)].into_iter().enumerate() {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..10].copy_from_slice(&len.to_le_bytes());
        a.mem
            .write_slice(&d, GuestAddress(txr + 16 * i as u64))
            .unwrap();
    }
    a.sink.take();
    a.write(0x1000, 2);
    assert_eq!(a.read(0x1004), 2, "TX head");
    assert_eq!(a.sink.triggers(), vec![1]);
    b.sink.take();
    b.dev.poll(Duration::from_millis(1));
    let mut got = vec![0u8; 100];
    b.mem.read_slice(&mut got, GuestAddress(buf)).unwrap();
    assert_eq!(got, f);
    let mut rd = [0u8; 16];
    b.mem.read_slice(&mut rd, GuestAddress(rxr)).unwrap();
    assert_eq!(u16::from_le_bytes([rd[10], rd[11]]), 100);
    assert_eq!(rd[13], crate::eth::status::DONE);
    assert_eq!(b.sink.triggers(), vec![2]);
    let (sa, sb) = (a.dev.stats(), b.dev.stats());
    assert_eq!((sa.port.tx_frames, sa.eth_tx[0].frames), (2, 2));
    assert_eq!(
        (
            sb.port.rx_frames,
            sb.eth_rx[0].frames,
            sb.port.rx_dropped_filter
        ),
        (2, 1, 1)
    );
    // RoCE frames to B's MAC go to the verbs engine, not the RX ring.
    a.dev.detach_wire();
    b.dev.receive(&roce_like(mac_b));
    assert_eq!(b.dev.stats().port.rx_roce_frames, 1);
    // Link down: A's frames are dropped and counted.
    let (wa, _wb) = in_process_pair();
    a.dev.attach_wire(Box::new(wa));
    a.dev.set_carrier(false);
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&buf.to_le_bytes());
    d[8..10].copy_from_slice(&100u16.to_le_bytes());
    a.mem.write_slice(&d, GuestAddress(txr + 32)).unwrap();
    a.write(0x1000, 3);
    assert_eq!(a.dev.stats().port.tx_dropped_link_down, 1);
}
