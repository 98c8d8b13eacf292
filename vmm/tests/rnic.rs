//! The RNIC seen from a fixture guest: PCI identity, BAR placement, MMIO, DMA
//! and an MSI-X interrupt delivered through KVM GSI routing + irqfd to a real
//! IDT vector (needs /dev/kvm).

mod common;

use common::*;
use rnic_vmm::fixture::{Asm, PvhImage};

const LOAD: u64 = 0x10_0000;
const IDT: u32 = 0x2_0000;
const IDTR: u32 = 0x2_1000;
const ASQ: u32 = 0x3_0000;
const ACQ: u32 = 0x3_1000;
const VECTOR: u32 = 0x40;

fn build(a: Asm) -> Vec<u8> {
    PvhImage::new(LOAD, a.finish()).build()
}

#[test]
fn rnic_identity_and_bars() {
    if !kvm_available("rnic_identity_and_bars") {
        return;
    }
    let s = Scratch::new("rnic-id");
    let mut a = Asm::new();
    a.pci_read(1, 0, 0x00).expect_eax(0x0001_7E57, 20);
    a.pci_read(1, 0, 0x08)
        .and_eax(0xFFFF_FF00)
        .expect_eax(0x0200_0000, 21);
    // BAR0: 64-bit memory at the start of the MMIO window; BAR2 right after it.
    a.pci_read(1, 0, 0x10).expect_eax(0xC000_0004, 22);
    a.pci_read(1, 0, 0x14).expect_eax(0, 23);
    a.pci_read(1, 0, 0x18).expect_eax(0xC001_0004, 24);
    // Memory decoding is off until the guest enables it: all ones.
    a.load_abs(0xC000_0000).expect_eax(0xFFFF_FFFF, 25);
    a.pci_write(1, 0, 0x04, 0x0002);
    a.load_abs(0xC000_0000).expect_eax(0x0001_0000, 26);
    // Unclaimed MMIO reads all ones.
    a.load_abs(0xD000_0000).expect_eax(0xFFFF_FFFF, 27);
    a.exit(0);
    let k = s.file("k.elf", &build(a));
    let o = vmm(&["--kernel", path_str(&k)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Two RNICs: 00:01.0 and 00:02.0, each with its own BARs (placed first fit), each
/// answering MMIO at its own BAR0 once its memory decoding is on.
#[test]
fn two_rnics_sit_at_their_own_pci_devices_and_bars() {
    if !kvm_available("two_rnics_sit_at_their_own_pci_devices_and_bars") {
        return;
    }
    let s = Scratch::new("rnic-two");
    let mut a = Asm::new();
    a.pci_read(2, 0, 0x00).expect_eax(0x0001_7E57, 30);
    a.pci_read(2, 0, 0x10).expect_eax(0xC002_0004, 31);
    // First fit (vm-allocator): the second RNIC's 8 KiB BAR2 fills the gap after the
    // first RNIC's BAR2, below its own 64 KiB-aligned BAR0.
    a.pci_read(2, 0, 0x18).expect_eax(0xC001_2004, 32);
    a.pci_read(3, 0, 0x00).expect_eax(0xFFFF_FFFF, 33);
    // Only the second RNIC's decoding on: its BAR0 answers, the first's does not.
    a.pci_write(2, 0, 0x04, 0x0002);
    a.load_abs(0xC002_0000).expect_eax(0x0001_0000, 34);
    a.load_abs(0xC000_0000).expect_eax(0xFFFF_FFFF, 35);
    a.exit(0);
    let k = s.file("k.elf", &build(a));
    let o = vmm(&["--kernel", path_str(&k), "--rnic", "--rnic", "id=second"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A guest that brings the admin queue up, submits one NOP and waits for the
/// completion interrupt on IDT vector VECTOR. With `masked_first`, the MSI-X entry
/// is masked while the NOP completes; the guest checks the PBA bit, then unmasks
/// and the pending interrupt must arrive (deassign/assign of the irqfd on real KVM).
fn nop_guest(masked_first: bool) -> Vec<u8> {
    const FLAG: u32 = 0x2_2000;
    let mut a = Asm::new();
    let main = a.label();
    a.jmp(main);
    // Interrupt handler for VECTOR, at LOAD + 2.
    let handler = LOAD as u32 + a.offset() as u32;
    a.serial_str("irq ");
    a.load_abs(FLAG).expect_eax(1, 43); // not before the guest allowed it
    a.load_abs(ACQ).expect_eax(0x4E4F_5000, 42); // completion result 0 = "NOP\0"
    a.serial_str("nop-ok\n");
    a.exit(0);

    a.bind(main);
    a.mov_esp(0x9_0000);
    // IDT with one 32-bit interrupt gate, then enable the local APIC.
    a.store_abs(IDT + VECTOR * 8, (0x10 << 16) | (handler & 0xFFFF));
    a.store_abs(IDT + VECTOR * 8 + 4, (handler & 0xFFFF_0000) | 0x8E00);
    a.store_abs(IDTR, 0x07FF);
    a.store_abs(IDTR + 4, IDT >> 16);
    a.lidt_abs(IDTR);
    a.store_abs(0xFEE0_00F0, 0x1FF);
    a.store_abs(FLAG, u32::from(!masked_first));
    // Memory space + bus master.
    a.pci_write(1, 0, 0x04, 0x0006);
    // MSI-X table entry 0 (BAR2 + 0): address, data = VECTOR, mask; enable MSI-X.
    a.pci_read(1, 0, 0x18).and_eax(0xFFFF_FFF0).mov_esi_eax();
    a.store_esi_disp(0, 0xFEE0_0000)
        .store_esi_disp(4, 0)
        .store_esi_disp(8, VECTOR)
        .store_esi_disp(12, u32::from(masked_first));
    a.pci_write(1, 0, 0x50, 0x8000_0000);
    // Admin queue: two-entry rings in low RAM (zeroed), enable, check READY.
    a.pci_read(1, 0, 0x10).and_eax(0xFFFF_FFF0).mov_esi_eax();
    a.mov_eax_esi_disp(0).expect_eax(0x0001_0000, 40);
    a.store_esi_disp(0x20, ASQ)
        .store_esi_disp(0x24, 0)
        .store_esi_disp(0x28, 2)
        .store_esi_disp(0x30, ACQ)
        .store_esi_disp(0x34, 0)
        .store_esi_disp(0x38, 2)
        .store_esi_disp(0x08, 1);
    a.mov_eax_esi_disp(0x0C).and_eax(1).expect_eax(1, 41);
    // A zeroed ASQ entry is a NOP with id 0: ring the doorbell.
    a.sti();
    a.store_esi_disp(0x40, 1);
    if masked_first {
        // The completion is written but its interrupt is pending in the PBA.
        a.load_abs(ACQ).expect_eax(0x4E4F_5000, 44);
        a.pci_read(1, 0, 0x18).and_eax(0xFFFF_FFF0).mov_esi_eax();
        a.add_esi(0x1000)
            .mov_eax_esi_disp(0)
            .and_eax(1)
            .expect_eax(1, 45);
        a.store_abs(FLAG, 1);
        a.add_esi(0u32.wrapping_sub(0x1000)).store_esi_disp(12, 0);
    }
    a.halt_forever();
    PvhImage::new(LOAD, a.finish()).build()
}

fn run_nop_guest(tag: &str, masked_first: bool) {
    let s = Scratch::new(tag);
    let k = s.file("k.elf", &nop_guest(masked_first));
    let o = vmm(&["--kernel", path_str(&k), "--timeout", "20"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(stdout(&o), "irq nop-ok\n");
}

#[test]
fn admin_nop_completes_with_an_msix_interrupt() {
    if !kvm_available("admin_nop_completes_with_an_msix_interrupt") {
        return;
    }
    run_nop_guest("rnic-msix", false);
}

#[test]
fn interrupt_raised_while_masked_arrives_on_unmask() {
    if !kvm_available("interrupt_raised_while_masked_arrives_on_unmask") {
        return;
    }
    run_nop_guest("rnic-msix-masked", true);
}
