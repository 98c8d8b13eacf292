//! # ndis-guest: a bare-metal guest kernel that hosts the real `rnic.sys`
//!
//! Booted by PVH (see `boot.rs`), it brings up serial, IDT, LAPIC timer and heap, finds the
//! RNIC on PCI bus 0, loads the driver module (a PE32+ image) with its own loader, resolves the
//! driver's imports against its NDIS/ntoskrnl personality (`ndis/`), drives the NDIS life cycle
//! and verifies the driver's contract. The verdict goes to COM1; the exit port carries the status:
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | pass |
//! | 1 | contract violation / driver failure |
//! | 2 | no RNIC on the bus |
//! | 3 | driver load failure (missing module, malformed image, unresolved import) |
//! | 4 | CPU exception or kernel panic |
//! | 5 | the guest's plan (kernel command line) is invalid: unknown key or self test |
//!
//! This crate owns `images/ndis-guest` only; pure logic lives in `images/guest-core` and the
//! Windows ABI definitions in `guest-driver/ndis-abi`.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod cpu;
mod heap;
mod hostile;
mod interrupts;
mod loader;
mod ndis;
mod pci;
mod serial;
mod start_info;
mod sync;

use guest_core::memmap::{largest_free, Range};
use rnic_contract::pci::{MSIX_BAR, REGISTER_BAR};

use crate::start_info::StartInfo;

/// Exit status: every step happened as the NDIS contract says.
pub const STATUS_PASS: u32 = 0;
/// Exit status: the driver broke the NDIS contract (the verdict line says how).
pub const STATUS_VIOLATION: u32 = 1;
/// Exit status: no RNIC on the PCI bus.
pub const STATUS_NO_RNIC: u32 = 2;
/// Exit status: the driver image could not be loaded (bad PE or unresolved import).
pub const STATUS_LOAD: u32 = 3;
/// Exit status: a CPU exception or a panic in the guest.
pub const STATUS_EXCEPTION: u32 = 4;
/// Exit status: the command line (the guest's plan) is invalid.
pub const STATUS_BAD_PLAN: u32 = 5;

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

pub(crate) fn fail(reason: &str, status: u32) -> ! {
    println!("verdict: FAIL ({reason})");
    cpu::exit(status)
}

#[no_mangle]
extern "C" fn kmain(start_info_phys: u64) -> ! {
    serial::init();
    if let Err(e) = interrupts::init_idt() {
        println!("guest: {e}");
        fail("bad interrupt table", STATUS_EXCEPTION);
    }
    if let Err(what) = cpu::init_fpu() {
        println!("guest: the CPU lacks {what}, which the driver needs");
        fail("CPU lacks FXSR/SSE/SSE2", STATUS_EXCEPTION);
    }
    // SAFETY: the value comes from ebx at the PVH entry.
    let si = match unsafe { StartInfo::parse(start_info_phys) } {
        Ok(si) => si,
        Err(e) => {
            println!("guest: {e}");
            fail("no PVH start info", STATUS_LOAD);
        }
    };

    // Heap: the largest RAM range that holds neither the kernel nor anything the loader left.
    let mut reserved = [Range::new(0, 0); 48];
    let n = si.reserved(&mut reserved);
    // Linker-provided symbols; only their addresses are used.
    let (kstart, kend) = (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    );
    reserved[n] = Range::new(kstart, kend);
    let heap_range = largest_free(si.ram(), &reserved[..=n], 0x10_0000, 0xC000_0000, 4096);
    let Some(heap_range) = heap_range.filter(|r| r.len() >= 4 << 20) else {
        fail("less than 4 MiB of free RAM for the heap", STATUS_LOAD);
    };
    // SAFETY: the range is RAM from the memory map, overlapping no reserved range, below 3 GiB
    // (identity-mapped).
    unsafe { heap::init(heap_range.start, heap_range.len()) };

    if let Err(e) = interrupts::init_apic() {
        fail(e, STATUS_EXCEPTION);
    }
    if let Err(e) = ndis::interrupt::install() {
        fail(&alloc::format!("{e}"), STATUS_EXCEPTION);
    }
    cpu::sti();

    println!(
        "guest: boot ok (memory {} MiB, {} modules)",
        si.ram_bytes() >> 20,
        si.module_count()
    );
    println!(
        "guest: heap {:#x}..{:#x} ({} MiB), apic id {}, cmdline \"{}\"",
        heap_range.start,
        heap_range.end,
        heap_range.len() >> 20,
        interrupts::apic_id(),
        si.cmdline()
    );

    let plan = match guest_core::plan::parse(si.cmdline()) {
        Ok(plan) => plan,
        Err(e) => {
            println!("guest: bad plan: {e}");
            fail("bad guest plan", STATUS_BAD_PLAN);
        }
    };
    ndis::set_ethernet_loopback(plan.ethernet_loopback);
    ndis::set_ethernet_peer(plan.ethernet_peer);
    ndis::set_ndk(plan.ndk_suite, plan.ndk_bench);
    ndis::ndk::set_errors_expected(plan.ndk_errors_expected);
    ndis::lowres::set_mode(plan.lowres);
    ndis::ndk::memory::install_fault_namer();
    for what in &plan.selftests {
        selftest(what);
    }

    // One scan of bus 0 lists the functions and finds the RNICs (each configuration read is
    // two exits to the monitor).
    let mut rnics = alloc::vec::Vec::new();
    pci::for_each_function(|b| {
        let (v, d) = b.vendor_device();
        let class = b.read32(0x08) >> 8;
        println!("pci: {b} {v:04x}:{d:04x} class {class:06x}");
        if (v, d) == (rnic_contract::pci::VENDOR_ID, rnic_contract::pci::DEVICE_ID) {
            rnics.push(b);
        }
    });
    if rnics.is_empty() {
        println!("pci: no rnic found");
        fail("no RNIC", STATUS_NO_RNIC);
    }
    if rnics.len() > ndis::MAX_ADAPTERS {
        println!(
            "pci: {} RNICs found; the guest hosts the first {}",
            rnics.len(),
            ndis::MAX_ADAPTERS
        );
    }
    let devices: alloc::vec::Vec<pci::Device> = rnics
        .iter()
        .take(ndis::MAX_ADAPTERS)
        .map(|&bdf| probe_rnic(bdf))
        .collect();
    if plan.hostile_registers {
        hostile::run(&devices);
    }
    // The driver: the one module whose name ends in ".sys" (or a lone unnamed PE image, as
    // some monitors pass no module names).
    let modules: alloc::vec::Vec<_> = si.modules().collect();
    let named: alloc::vec::Vec<(&str, bool)> = modules
        .iter()
        .map(|m| (m.name, m.bytes().starts_with(b"MZ")))
        .collect();
    let module = match guest_core::plan::choose_driver(&named) {
        Ok(i) => &modules[i],
        Err(e) => {
            println!("loader: {e}");
            fail("load: no single driver module", STATUS_LOAD);
        }
    };
    let baseline = heap::stats().live_allocs;
    let image = match loader::load(module, &mut ndis::exports::resolver()) {
        Ok(img) => img,
        Err(e) => {
            println!("loader: {e}");
            fail(&alloc::format!("load: {e}"), STATUS_LOAD);
        }
    };
    println!(
        "loader: {} loaded at {:#x} ({} imports resolved)",
        image.name, image.base, image.imports
    );
    ndis::run(&devices, image, baseline)
}

/// Probes the RNIC at `bdf` (BARs, MSI-X) and reports it; ends the boot if it cannot be used.
fn probe_rnic(bdf: pci::Bdf) -> pci::Device {
    let dev = pci::probe(bdf);
    println!(
        "pci: rnic found at {bdf} bar0={:#x} bar2={:#x}",
        dev.bars[REGISTER_BAR].addr, dev.bars[MSIX_BAR].addr
    );
    for (i, b) in dev.bars.iter().enumerate().filter(|(_, b)| b.size != 0) {
        println!(
            "pci: rnic bar{i} {:#x} size {:#x} ({}-bit)",
            b.addr,
            b.size,
            if b.is64 { 64 } else { 32 }
        );
    }
    if let Some(m) = dev.msix {
        println!(
            "pci: msi-x {} vectors, table bar{} +{:#x}, pba bar{} +{:#x}",
            m.table_size, m.table_bar, m.table_offset, m.pba_bar, m.pba_offset
        );
    }
    if dev.bars[REGISTER_BAR].addr == 0
        || dev.bars[REGISTER_BAR].size == 0
        || dev.bars[MSIX_BAR].addr == 0
    {
        fail("RNIC BARs are not assigned", STATUS_NO_RNIC);
    }
    if dev.msix.is_none() {
        fail("RNIC has no MSI-X capability", STATUS_NO_RNIC);
    }
    dev
}

/// Boot-time self tests selected by `guest.selftest=<name>` on the kernel command line: `ud`,
/// `de`, `pf` and `panic` prove the exception and panic paths report and exit (status 4)
/// instead of hanging; `timer` and `contract` (the NDIS exports refuse contract violations as
/// documented) report and let the boot go on.
fn selftest(what: &str) {
    println!("guest: selftest {what}");
    match what {
        // SAFETY: a deliberate invalid-opcode fault; the IDT's handler reports it and exits.
        "ud" => unsafe { core::arch::asm!("ud2") },
        // SAFETY: a deliberate divide-by-zero fault (only the named registers are touched); the
        // IDT's handler reports it and exits.
        "de" => unsafe {
            core::arch::asm!("xor ecx, ecx", "div ecx", out("ecx") _, out("eax") _, out("edx") _)
        },
        // SAFETY: a deliberate page fault at 8 GiB, beyond the identity map; the IDT's handler
        // reports it and exits, so the read never returns.
        "pf" => unsafe {
            core::ptr::read_volatile(0x2_0000_0000 as *const u64);
        },
        "panic" => panic!("selftest panic"),
        "timer" => {
            let t0 = interrupts::now_ms();
            ndis::interrupt::idle(100);
            println!(
                "guest: selftest timer: {} ms elapsed",
                interrupts::now_ms() - t0
            );
        }
        "contract" => match ndis::selftest::contract() {
            Ok(n) => println!(
                "guest: selftest contract: {n} checks passed (the violations above were provoked)"
            ),
            Err(e) => {
                println!("guest: selftest contract: {e}");
                fail("selftest contract", STATUS_VIOLATION);
            }
        },
        "ndk-mdl-va" => {
            if let Err(e) = ndis::ndk::selftest::mdl_va() {
                println!("guest: selftest ndk-mdl-va: {e}");
                fail("selftest ndk-mdl-va", STATUS_VIOLATION);
            }
        }
        rule if rule.starts_with("ndk-") => match ndis::ndk::selftest::rule(rule) {
            Ok(caught) => println!("guest: selftest {rule}: the verifier caught it: {caught}"),
            Err(e) => {
                println!("guest: selftest {rule}: {e}");
                fail("NDK verifier self test", STATUS_VIOLATION);
            }
        },
        "nmr-refuse-provider" => {
            ndis::nmr::refuse_next_provider();
            println!("guest: selftest nmr-refuse-provider: the next NmrRegisterProvider fails with STATUS_INSUFFICIENT_RESOURCES");
        }
        rule if rule.starts_with("nmr-") => match ndis::nmr::selftest(rule) {
            Ok(caught) => println!("guest: selftest {rule}: the verifier caught it: {caught}"),
            Err(e) => {
                println!("guest: selftest {rule}: {e}");
                fail("NMR verifier self test", STATUS_VIOLATION);
            }
        },
        "data-hang" => match ndis::reset::selftest_data_hang() {
            Ok(caught) => println!("guest: selftest data-hang: the verifier caught it: {caught}"),
            Err(e) => {
                println!("guest: selftest data-hang: {e}");
                fail("NdisTimedDataHang self test", STATUS_VIOLATION);
            }
        },
        rule if rule.starts_with("nbl-") || rule.starts_with("pause-") => {
            match ndis::datapath_selftest::rule(rule) {
                Ok(caught) => println!("guest: selftest {rule}: the verifier caught it: {caught}"),
                Err(e) => {
                    println!("guest: selftest {rule}: {e}");
                    fail("data-path verifier self test", STATUS_VIOLATION);
                }
            }
        }
        // The plan accepts only the names of guest_core::plan::SELFTESTS.
        other => unreachable!("self test {other} passed the plan check"),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    cpu::cli();
    // A line the kernel was collecting goes out first, unless the panic came from inside the
    // console writer.
    serial::flush_before_exit();
    let mut w = serial::RawSerial;
    let _ = writeln!(w, "\npanic: {info}");
    let _ = writeln!(w, "verdict: FAIL (guest kernel panic)");
    cpu::exit(STATUS_EXCEPTION)
}
