//! `guest.ndk=bench`: the NDK figures, printed (never asserted): the raw floor measured in the
//! same boot (an MMIO exit round trip: a read of the RNIC's `DEV_STATUS` register), a guest
//! memcpy of 64 KiB and 1 MiB, then over a connected QP pair on the adapter the latency of a
//! 64-byte RDMA WRITE from post (doorbell) to its completion seen by the consumer (p50/p99
//! over 10,000 operations, polling the CQ), the same with the CQ armed, so that the
//! completion travels as an MSI through the driver's ISR and DPC to the notification (the MSI
//! round trip on top of the floor), and the throughput of 64 KiB and 1 MiB WRITEs.
//!
//! Times come from the TSC, calibrated against the PIT at the start. Under the
//! instruction emulator every guest instruction costs about 1.5 us: the figures are this
//! machine's, not the design's.

use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use guest_core::ndk::{latency, Latency, Outcome};
use ndis_abi::*;

use super::data::Cleanup;
use super::memory::Buffer;
use super::suite::{fail, Suite, TestResult};
use super::verifier;
use crate::ndis::{interrupt, DISPATCH_LEVEL};

/// 64-byte WRITEs timed for the latency figures.
const LATENCY_OPS: usize = 10_000;
/// WRITEs per throughput size.
const THROUGHPUT_OPS: usize = 16;
/// MMIO reads timed for the floor.
const MMIO_READS: usize = 2_000;
/// The port the bench's connection uses.
const BENCH_PORT: u16 = 6000;

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the time-stamp counter; no memory access.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// The PIT's input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// PIT counts the calibration waits for (about 50 ms).
const PIT_COUNTS: u64 = 59_659;

/// TSC ticks per microsecond, measured against the PIT (channel 2, one-shot, gated through
/// port 0x61): the in-kernel PIT follows the host's clock, while the LAPIC tick count of a
/// guest running in the instruction emulator falls behind (coalesced ticks).
fn tsc_per_us() -> u64 {
    use crate::cpu::{inb, outb};
    // Gate channel 2 on, speaker off; channel 2, lobyte/hibyte, mode 0 (one-shot), binary.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0b1011_0000);
    outb(0x42, 0xFF);
    outb(0x42, 0xFF);
    let t0 = rdtsc();
    let mut elapsed;
    loop {
        // Latch channel 2 and read its count.
        outb(0x43, 0b1000_0000);
        let lo = inb(0x42) as u64;
        let hi = inb(0x42) as u64;
        elapsed = 0xFFFF - (hi << 8 | lo);
        if elapsed >= PIT_COUNTS {
            break;
        }
    }
    let ticks = rdtsc() - t0;
    (ticks * PIT_HZ / (elapsed * 1_000_000)).max(1)
}

fn print_latency(what: &str, l: Option<Latency>, per_us: u64) {
    match l {
        Some(l) => crate::println!(
            "ndk: bench: {what}: p50 {} us, p99 {} us (min {}, max {}, {} ops)",
            l.p50 / per_us,
            l.p99 / per_us,
            l.min / per_us,
            l.max / per_us,
            l.count
        ),
        None => crate::println!("ndk: bench: {what}: no samples"),
    }
}

/// MB/s (10^6 bytes per second) of `bytes` moved in `ticks` TSC ticks.
fn mb_per_s(bytes: usize, ticks: u64, per_us: u64) -> u64 {
    (bytes as u64 * per_us) / ticks.max(1)
}

/// Runs the bench on `suite`'s adapter; `register` is the adapter's `DEV_STATUS` address.
pub fn run(suite: &Suite, register: u64) {
    let per_us = tsc_per_us();
    crate::println!("ndk: bench: TSC {per_us} ticks/us");
    // The floor: an MMIO exit round trip.
    let mut mmio = Vec::with_capacity(MMIO_READS);
    for _ in 0..MMIO_READS {
        let t = rdtsc();
        // SAFETY: a 32-bit read of the RNIC's status register (identity-mapped, uncached);
        // reading it has no side effect.
        unsafe { core::ptr::read_volatile(register as *const u32) };
        mmio.push(rdtsc() - t);
    }
    print_latency("MMIO exit round trip (floor)", latency(&mut mmio), per_us);
    // A guest memcpy of each throughput size.
    for size in [64 << 10, 1 << 20] {
        let (Some(src), Some(mut dst)) = (Buffer::new(size, 0), Buffer::new(size, 0)) else {
            crate::println!("ndk: bench: out of memory for {size}-byte buffers");
            return;
        };
        let t = rdtsc();
        dst.bytes_mut().copy_from_slice(src.bytes());
        let ticks = rdtsc() - t;
        crate::println!(
            "ndk: bench: guest memcpy {} KiB: {} us, {} MB/s",
            size >> 10,
            ticks / per_us,
            mb_per_s(size, ticks, per_us)
        );
    }
    if let Err(o) = writes(suite, per_us) {
        let why = match o {
            Outcome::Fail(w) | Outcome::Skip(w) => w,
            Outcome::Ok => return,
        };
        crate::println!("ndk: bench: RDMA WRITE figures not measured: {why}");
    }
}

/// The WRITE figures over a connection on the adapter.
fn writes(suite: &Suite, per_us: u64) -> TestResult {
    let mut c = Cleanup::default();
    let r = (|| {
        let conn = suite.connect(BENCH_PORT, b"bench", b"ok", &mut c)?;
        let size = 1 << 20;
        let src = suite.registered(conn.pd_a, (size, 0), NDK_MR_FLAG_ALLOW_LOCAL_WRITE, &mut c)?;
        let dst = suite.registered(conn.pd_b, (size, 0), NDK_MR_FLAG_ALLOW_REMOTE_WRITE, &mut c)?;
        let qp = conn.a.qp;
        // SAFETY: a QP the provider returned.
        let d = unsafe { core::ptr::read_volatile((*qp).Dispatch) };
        let Some(write) = d.NdkWrite else {
            return fail("the QP dispatch table lacks NdkWrite");
        };
        let post = |len: usize| -> TestResult {
            let sge = Suite::at(&src, 0, len);
            // SAFETY: the provider's post function with a live SGE and the peer's token.
            let st = verifier::sync(DISPATCH_LEVEL, || unsafe {
                write(qp, 0xBE0 as *mut c_void, &sge, 1, dst.va, dst.remote, 0)
            });
            super::suite::expect_success("NdkWrite", st)
        };
        // Polled latency.
        let mut polled = Vec::with_capacity(LATENCY_OPS);
        for _ in 0..LATENCY_OPS {
            let t = rdtsc();
            post(64)?;
            suite.results(conn.a.cq, 1)?;
            polled.push(rdtsc() - t);
        }
        print_latency(
            "64-byte RDMA WRITE, post to polled completion",
            latency(&mut polled),
            per_us,
        );
        // Through the MSI: arm, post, wait for the notification, then take the result.
        let watch = verifier::watch_of(conn.a.cq as *const c_void)
            .ok_or(Outcome::Fail("the CQ has no notification watch".into()))?;
        // SAFETY: a CQ the provider returned.
        let cqd = unsafe { core::ptr::read_volatile((*conn.a.cq).Dispatch) };
        let Some(arm) = cqd.NdkArmCq else {
            return fail("the CQ dispatch table lacks NdkArmCq");
        };
        let mut notified = Vec::with_capacity(LATENCY_OPS / 10);
        for _ in 0..LATENCY_OPS / 10 {
            let before = watch.fired.load(Ordering::Acquire);
            // SAFETY: the provider's function with its CQ.
            verifier::sync(DISPATCH_LEVEL, || unsafe {
                arm(conn.a.cq, NDK_CQ_NOTIFY_ANY)
            });
            let t = rdtsc();
            post(64)?;
            if !interrupt::wait_until(1_000, || watch.fired.load(Ordering::Acquire) > before) {
                return fail("an armed CQ did not notify a WRITE completion within 1 s");
            }
            notified.push(rdtsc() - t);
            suite.results(conn.a.cq, 1)?;
        }
        print_latency(
            "64-byte RDMA WRITE, post to CQ notification (MSI, ISR, DPC)",
            latency(&mut notified),
            per_us,
        );
        for len in [64 << 10, 1 << 20] {
            let t = rdtsc();
            for _ in 0..THROUGHPUT_OPS {
                post(len)?;
                suite.results(conn.a.cq, 1)?;
            }
            let ticks = rdtsc() - t;
            crate::println!(
                "ndk: bench: RDMA WRITE {} KiB x {THROUGHPUT_OPS}: {} MB/s",
                len >> 10,
                mb_per_s(len * THROUGHPUT_OPS, ticks, per_us)
            );
        }
        suite.disconnect(&conn)
    })();
    let closed = c.close(suite);
    r.and(closed)
}

/// The MMIO floor's register on the adapter with these BARs.
pub fn status_register(bar0: u64) -> u64 {
    bar0 + rnic_contract::bar0::DEV_STATUS
}
