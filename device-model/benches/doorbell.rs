//! The worst-case doorbell: how long one guest register write can keep the device
//! (and the vCPU thread the monitor runs it on) busy. Run:
//! `cargo bench -p rnic-device --bench doorbell`. The bound it measures is written
//! down in `docs/device-spec.md` §15.1; figures are printed, never asserted.
//!
//! * `admin_doorbell/reg_mr_262144_pages_bad_last`: one `ASQ_TAIL` write announcing
//!   16 commands of the most expensive kind a guest can queue: `REG_MR` of the
//!   largest page list (262144 entries) whose last entry is misaligned, so the device
//!   reads and checks the whole 2 MiB list before refusing it. The per-service work
//!   budget (65536 units) lets one such command run per doorbell; the others wait
//!   for polls. The bench prints the slowest doorbell it saw.
//! * `admin_doorbell/nop_x16`: a doorbell announcing 16 `NOP`s (all run), for scale.
//!
//! The whole device is driven through its PCI function, over 1 GiB + 16 MiB of
//! anonymous guest memory (untouched pages cost nothing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rnic_contract::admin::{opcode, operands::reg_mr, CommandRepr, COMMAND_SIZE};
use rnic_contract::bar0::{self, dev_ctrl};
use rnic_contract::field::Record;
use rnic_contract::pci::{command, BAR0, COMMAND};
use rnic_contract::verbs::access;
use rnic_device::admin::COMMANDS_PER_SERVICE;
use rnic_device::{PciFunction, RecordingSink, Rnic, RnicConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Admin ring entries (the largest ring: the guest can queue this many commands).
const RING: u32 = 4096;
const ASQ: u64 = 0x10_0000;
const ACQ: u64 = 0x18_0000;
const PAGE_LIST: u64 = 0x20_0000;
/// The largest page list of one MR.
const PAGES: u32 = 262_144;
/// The page every list entry names (the list is checked, never followed).
const PAGE: u64 = 0x40_0000;
const RAM: u64 = (1 << 30) + (16 << 20);
const BAR0_ADDR: u64 = 0xE000_0000;

/// One RNIC with rings set up and enabled, driven like a guest driver.
struct Device {
    dev: Rnic,
    mem: GuestMemoryMmap,
    tail: u32,
}

impl Device {
    fn new() -> Device {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .expect("anonymous guest memory");
        let mut dev = Rnic::new(
            RnicConfig::default(),
            mem.clone(),
            Arc::new(RecordingSink::new()),
        );
        dev.config_write(BAR0 as u16, &(BAR0_ADDR as u32).to_le_bytes());
        let cmd = command::MEMORY | command::BUS_MASTER;
        dev.config_write(COMMAND as u16, &cmd.to_le_bytes());
        let mut d = Device { dev, mem, tail: 0 };
        d.write(bar0::ASQ_BASE_LO, ASQ as u32);
        d.write(bar0::ASQ_SIZE, RING);
        d.write(bar0::ACQ_BASE_LO, ACQ as u32);
        d.write(bar0::ACQ_SIZE, RING);
        d.write(bar0::DEV_CTRL, dev_ctrl::ENABLE);
        d
    }

    fn write(&mut self, offset: u64, value: u32) {
        self.dev.bar_write(0, offset, &value.to_le_bytes());
    }

    fn read(&mut self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.bar_read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Writes `cmd` into every slot of the submission ring.
    fn fill_ring(&mut self, cmd: &CommandRepr) {
        let bytes = cmd.to_bytes();
        for slot in 0..u64::from(RING) {
            self.mem
                .write_slice(&bytes, GuestAddress(ASQ + slot * COMMAND_SIZE as u64))
                .expect("ring in RAM");
        }
    }

    /// Releases every completion written so far (no commands are waiting, so this
    /// runs none).
    fn release_completions(&mut self) {
        let tail = self.read(bar0::ACQ_TAIL);
        self.write(bar0::ACQ_HEAD, tail);
    }

    /// One doorbell announcing `n` commands; returns how long the write took.
    fn doorbell(&mut self, n: u32) -> Duration {
        self.tail = (self.tail + n) % RING;
        let t = Instant::now();
        self.write(bar0::ASQ_TAIL, self.tail);
        t.elapsed()
    }
}

/// A `REG_MR` of the largest page list, whose last entry is misaligned.
fn worst_reg_mr(pdn: u32) -> CommandRepr {
    let mut c = CommandRepr::new(opcode::REG_MR, 7);
    let mut o = Record::new_unchecked(&mut c.operands);
    o.set_u32(reg_mr::PDN, pdn);
    o.set_u32(reg_mr::ACCESS, access::LOCAL_WRITE);
    o.set_u64(reg_mr::LENGTH, u64::from(PAGES) << 12);
    o.set_u64(reg_mr::PAGE_LIST, PAGE_LIST);
    o.set_u32(reg_mr::PAGE_COUNT, PAGES);
    o.set_u8(reg_mr::PAGE_SHIFT, 12);
    c
}

fn bench_admin_doorbell(c: &mut Criterion) {
    let batch = COMMANDS_PER_SERVICE as u32;
    let mut d = Device::new();
    // A PD for the REG_MRs: a fresh device hands out PDN 1 (spec §0.1).
    d.fill_ring(&CommandRepr::new(opcode::CREATE_PD, 1));
    d.doorbell(1);
    d.release_completions();
    let mut list = vec![0u8; PAGES as usize * 8];
    for e in list.chunks_exact_mut(8) {
        e.copy_from_slice(&PAGE.to_le_bytes());
    }
    let last = list.len() - 8;
    list[last..].copy_from_slice(&(PAGE + 1).to_le_bytes());
    d.mem
        .write_slice(&list, GuestAddress(PAGE_LIST))
        .expect("page list in RAM");

    let mut g = c.benchmark_group("admin_doorbell");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, cmd) in [
        ("reg_mr_262144_pages_bad_last", worst_reg_mr(1)),
        ("nop_x16", CommandRepr::new(opcode::NOP, 2)),
    ] {
        d.fill_ring(&cmd);
        let mut worst = Duration::ZERO;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    d.release_completions();
                    let t = d.doorbell(batch);
                    worst = worst.max(t);
                    total += t;
                }
                total
            })
        });
        let done = d.read(bar0::ACQ_TAIL);
        println!(
            "admin_doorbell/{name}: slowest single doorbell {:.3} ms ({batch} commands announced per doorbell, completion tail {done})",
            worst.as_secs_f64() * 1e3
        );
    }
    g.finish();
}

/// Criterion's generated group runner, kept in a private module (it has no docs).
mod groups {
    use super::*;

    criterion_group!(benches, bench_admin_doorbell);
}
criterion_main!(groups::benches);
