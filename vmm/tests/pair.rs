//! Two RNICs of one VM on a pair wire (`--rnic id=a,wire=pair:b --rnic id=b,wire=pair:a`):
//! a fixture guest drives both through BAR0 and admin commands as a driver does
//! (admin queue, one RX and one TX queue each), sends one frame from each to the other
//! and checks that each RX ring received the other's frame intact. The capture of the
//! end with `pcap=` is kept at `target/test-artifacts/vmm-pair-wire.pcap` and must hold
//! both frames, once each. Errors of a wrong pairing are one line with status 125.

mod common;

use std::path::PathBuf;

use common::*;
use rnic_contract::admin::{completion_field, opcode, operands::create_eth_queue, CommandRepr};
use rnic_contract::bar0::{self, dev_ctrl, dev_status, eth_db};
use rnic_contract::eth::{rx_field, status, tx_field, DESC_SIZE};
use rnic_contract::field;
use rnic_vmm::fixture::{Asm, PvhImage};

const LOAD: u64 = 0x10_0000;
/// Guest memory of RNIC `n` (1 or 2): rings and buffers in 64 KiB from here.
const fn area(n: u32) -> u32 {
    0x40_0000 + n * 0x1_0000
}
/// BAR0 of 00:0n.0 as the monitor places it (BAR0 and BAR2 of 64 KiB each, in order).
const fn bar0_of(n: u32) -> u32 {
    0xC000_0000 + (n - 1) * 0x2_0000
}
const ASQ: u32 = 0x0000;
const ACQ: u32 = 0x1000;
const TXQ: u32 = 0x2000;
const RXQ: u32 = 0x3000;
const TX_BUFFER: u32 = 0x4000;
const RX_BUFFER: u32 = 0x5000;
const FRAME_LEN: usize = 60;

/// The frame RNIC `from` sends to RNIC `to` (the monitor's default MACs
/// 02:7e:57:00:00:0N), with a payload pattern of its own.
fn frame(from: u8, to: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0x7E, 0x57, 0x00, 0x00, to];
    f.extend_from_slice(&[0x02, 0x7E, 0x57, 0x00, 0x00, from]);
    f.extend_from_slice(&[0x88, 0xB5]);
    f.extend((0..FRAME_LEN - 14).map(|i| (i as u8).wrapping_mul(from).wrapping_add(0x30)));
    f
}

/// `mov dword` stores of `bytes` (a multiple of 4 long) at `addr`.
fn store_bytes(a: &mut Asm, addr: u32, bytes: &[u8]) {
    for (i, dword) in bytes.chunks(4).enumerate() {
        let value = u32::from_le_bytes(dword.try_into().expect("a whole dword"));
        a.store_abs(addr + 4 * i as u32, value);
    }
}

/// Spins until `[addr] & mask` is non-zero.
fn wait_nonzero(a: &mut Asm, addr: u32, mask: u32) {
    let again = a.label();
    a.bind(again)
        .load_abs(addr)
        .and_eax(mask)
        .cmp_eax(0)
        .je(again);
}

fn create_queue(op: u8, id: u16, ring: u32) -> [u8; 64] {
    let mut command = CommandRepr::new(op, id);
    field::set_u64(
        &mut command.operands,
        create_eth_queue::BASE,
        u64::from(ring),
    );
    field::set_u32(&mut command.operands, create_eth_queue::SIZE, 2);
    command.to_bytes()
}

/// Brings RNIC `n` up: decoding and bus mastering, admin queue, enable, one RX queue
/// with one posted buffer and one TX queue; waits for link up. Exit status 10n+k on
/// a failed check.
fn bring_up(a: &mut Asm, n: u32) {
    let (mem, bar) = (area(n), bar0_of(n));
    a.pci_write(n as u8, 0, 0x04, 0x6);
    for (register, value) in [
        (bar0::ASQ_BASE_LO, mem + ASQ),
        (bar0::ASQ_BASE_HI, 0),
        (bar0::ASQ_SIZE, 4),
        (bar0::ACQ_BASE_LO, mem + ACQ),
        (bar0::ACQ_BASE_HI, 0),
        (bar0::ACQ_SIZE, 4),
        (bar0::DEV_CTRL, dev_ctrl::ENABLE),
    ] {
        a.store_abs(bar + register as u32, value);
    }
    store_bytes(
        a,
        mem + ASQ,
        &create_queue(opcode::CREATE_RXQ, 1, mem + RXQ),
    );
    store_bytes(
        a,
        mem + ASQ + 64,
        &create_queue(opcode::CREATE_TXQ, 2, mem + TXQ),
    );
    a.store_abs(bar + bar0::ASQ_TAIL as u32, 2);
    for entry in 0..2u32 {
        // Status (bytes 12..14) 0 and phase (bytes 14..16) 1 once completed.
        let word = mem + ACQ + 16 * entry + completion_field::STATUS.start as u32;
        wait_nonzero(a, word, 0x0001_0000);
        a.load_abs(word).expect_eax(0x0001_0000, 10 * n + 1 + entry);
    }
    let mut rx = [0u8; DESC_SIZE];
    field::set_u64(&mut rx, rx_field::ADDR, u64::from(mem + RX_BUFFER));
    field::set_u16(&mut rx, rx_field::BUF_LEN, 2048);
    store_bytes(a, mem + RXQ, &rx);
    a.store_abs(bar + (eth_db::queue_block(0) + eth_db::RXQ_TAIL) as u32, 1);
    wait_nonzero(a, bar + bar0::DEV_STATUS as u32, dev_status::LINK_UP);
}

/// Posts RNIC `n`'s frame to the other RNIC.
fn send(a: &mut Asm, n: u32) {
    let (mem, bar) = (area(n), bar0_of(n));
    store_bytes(a, mem + TX_BUFFER, &frame(n as u8, 3 - n as u8));
    let mut tx = [0u8; DESC_SIZE];
    field::set_u64(&mut tx, tx_field::ADDR, u64::from(mem + TX_BUFFER));
    field::set_u16(&mut tx, tx_field::LEN, FRAME_LEN as u16);
    store_bytes(a, mem + TXQ, &tx);
    a.store_abs(bar + (eth_db::queue_block(0) + eth_db::TXQ_TAIL) as u32, 1);
}

/// Waits for RNIC `n`'s TX and RX descriptors and checks the received frame: its
/// length and every dword of the other RNIC's frame. Exit status 10n+5.. on a
/// failed check.
fn check(a: &mut Asm, n: u32) {
    let mem = area(n);
    let tx_status = mem + TXQ + (tx_field::STATUS as u32 & !3);
    wait_nonzero(a, tx_status, 0xFF << (8 * (tx_field::STATUS % 4)));
    a.load_abs(tx_status)
        .and_eax(0xFF << (8 * (tx_field::STATUS % 4)))
        .expect_eax(
            u32::from(status::DONE) << (8 * (tx_field::STATUS % 4)),
            10 * n + 5,
        );
    let rx_status = mem + RXQ + (rx_field::STATUS as u32 & !3);
    let shift = 8 * (rx_field::STATUS % 4);
    wait_nonzero(a, rx_status, 0xFF << shift);
    a.load_abs(rx_status)
        .and_eax(0xFF << shift)
        .expect_eax(u32::from(status::DONE) << shift, 10 * n + 6);
    // FRAME_LEN is bytes 10..12: the high half of the dword at 8.
    a.load_abs(mem + RXQ + 8)
        .and_eax(0xFFFF_0000)
        .expect_eax((FRAME_LEN as u32) << 16, 10 * n + 7);
    let expected = frame(3 - n as u8, n as u8);
    for (i, dword) in expected.chunks(4).enumerate() {
        let value = u32::from_le_bytes(dword.try_into().unwrap());
        a.load_abs(mem + RX_BUFFER + 4 * i as u32)
            .expect_eax(value, 10 * n + 8);
    }
}

fn exchange_kernel(s: &Scratch) -> PathBuf {
    let mut a = Asm::new();
    bring_up(&mut a, 1);
    bring_up(&mut a, 2);
    send(&mut a, 1);
    send(&mut a, 2);
    check(&mut a, 1);
    check(&mut a, 2);
    a.serial_str("pair ok\n").exit(0);
    s.file("pair.elf", &PvhImage::new(LOAD, a.finish()).build())
}

fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn two_paired_rnics_exchange_frames_and_the_capture_holds_both() {
    if !kvm_available("two_paired_rnics_exchange_frames_and_the_capture_holds_both") {
        return;
    }
    let s = Scratch::new("pair");
    let kernel = exchange_kernel(&s);
    let pcap = artifact("vmm-pair-wire.pcap");
    let _ = std::fs::remove_file(&pcap);
    let first = format!("id=a,wire=pair:b,pcap={}", path_str(&pcap));
    let o = vmm(&[
        "--kernel",
        path_str(&kernel),
        "--timeout",
        "60",
        "--rnic",
        &first,
        "--rnic",
        "id=b,wire=pair:a",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("pair ok"), "{}", stdout(&o));
    let mut captured: Vec<Vec<u8>> = rnic_device::wire::pcap::read_file(&pcap)
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    let mut expected = vec![frame(1, 2), frame(2, 1)];
    captured.sort();
    expected.sort();
    assert_eq!(captured, expected, "each direction once");
}

#[test]
fn wrong_pairings_are_one_line_errors() {
    let s = Scratch::new("pair-bad");
    let kernel = s.file("k.elf", &PvhImage::new(LOAD, Asm::new().finish()).build());
    let k = path_str(&kernel);
    for (rnics, says) in [
        (&["id=a,wire=pair:b", "id=b"][..], "give b wire=pair:a"),
        (&["id=a,wire=pair:a"][..], "names itself"),
        (
            &["id=a,wire=pair:z", "id=b"][..],
            "names no RNIC of this VM",
        ),
        (
            &["id=a,wire=pair:b", "id=b,wire=pair:a", "id=c,wire=pair:b"][..],
            "both give wire=pair:b",
        ),
    ] {
        let mut args = vec!["--kernel", k];
        for r in rnics {
            args.extend(["--rnic", r]);
        }
        assert_one_line_error(&vmm(&args), 125, says);
    }
}
