//! `guest.hostile=registers`: the guest as a hostile driver. Before any driver is loaded
//! it writes pseudo-random values to pseudo-random dword offsets of every RNIC's BAR0 —
//! control registers and the whole doorbell area — then checks that the device still
//! behaves as its contract says: it answers reads (`VERSION` reads the contract's value,
//! or all ones in the fatal state, docs/device-spec.md §13.3), and a `DEV_CTRL.RESET`
//! brings it back to a clean, readable state (§13.1). The monitor side (that it keeps
//! serving its control API and stays within its memory) is checked by the boot test.
//!
//! Bus mastering stays off during the writes: a random `ASQ_BASE` plus a random doorbell
//! would otherwise let the device write completions over this very kernel, which tests
//! the guest's luck rather than the device. With bus mastering off every DMA the writes
//! provoke fails, as §1.6 says, and the device reports it in its own registers.

use rnic_contract::bar0::{self, dev_ctrl, dev_status};
use rnic_contract::pci::{command, REGISTER_BAR};

use crate::pci;
use crate::println;

/// Random writes per RNIC (each is one MMIO exit, about 8.5 us on this host).
const WRITES: u32 = 4096;

/// xorshift64: a fixed, reproducible sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn read(base: u64, off: u64) -> u32 {
    // SAFETY: `base` is the RNIC's BAR0, identity-mapped uncached MMIO, and `off` is
    // inside it (callers pass register offsets or offsets reduced modulo the BAR size).
    unsafe { core::ptr::read_volatile((base + off) as *const u32) }
}

fn write(base: u64, off: u64, value: u32) {
    // SAFETY: as in `read`; MMIO writes have no effect on guest memory (bus mastering is
    // off, so the device cannot DMA).
    unsafe { core::ptr::write_volatile((base + off) as *mut u32, value) }
}

/// Runs the hostile writes against every RNIC and ends the boot with the verdict.
pub fn run(devices: &[pci::Device]) -> ! {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for dev in devices {
        let bdf = dev.bdf;
        let cmd = bdf.read16(rnic_contract::pci::COMMAND as u8);
        bdf.write16(
            rnic_contract::pci::COMMAND as u8,
            (cmd | command::MEMORY) & !command::BUS_MASTER,
        );
        let bar = dev.bars[REGISTER_BAR];
        let dwords = bar.size / 4;
        let mut doorbells = 0u32;
        for _ in 0..WRITES {
            // Half to the control registers, half anywhere (mostly doorbells).
            let span = if rng.next() & 1 == 0 {
                bar0::CONTROL_END / 4
            } else {
                dwords
            };
            let off = (rng.next() % span) * 4;
            doorbells += u32::from(off >= bar0::DOORBELL_START);
            write(bar.addr, off, rng.next() as u32);
        }
        let version = read(bar.addr, bar0::VERSION);
        let status = read(bar.addr, bar0::DEV_STATUS);
        println!(
            "hostile: {WRITES} random writes to {bdf} BAR0 ({doorbells} in the doorbell area): VERSION {version:#x}, DEV_STATUS {status:#x}"
        );
        let fatal = version == u32::MAX && status == u32::MAX;
        if version != bar0::VERSION_VALUE && !fatal {
            crate::fail(
                "hostile: the device answers neither its VERSION nor the fatal state's all ones",
                crate::STATUS_VIOLATION,
            );
        }
        if !fatal && status & dev_status::FATAL != 0 {
            crate::fail(
                "hostile: DEV_STATUS says FATAL while the registers still read",
                crate::STATUS_VIOLATION,
            );
        }
        // A reset brings the device back, whatever the writes did (§13.1: it completes
        // within the register write).
        write(bar.addr, bar0::DEV_CTRL, dev_ctrl::RESET);
        let (version, status) = (read(bar.addr, bar0::VERSION), read(bar.addr, bar0::DEV_STATUS));
        println!("hostile: after DEV_CTRL.RESET: VERSION {version:#x}, DEV_STATUS {status:#x}");
        if version != bar0::VERSION_VALUE || status != 0 {
            crate::fail(
                "hostile: DEV_CTRL.RESET did not bring the device back",
                crate::STATUS_VIOLATION,
            );
        }
        bdf.write16(rnic_contract::pci::COMMAND as u8, cmd);
    }
    println!("hostile: every RNIC survived and came back after a reset");
    println!("verdict: PASS");
    crate::cpu::exit(crate::STATUS_PASS)
}
