//! Criterion benchmarks of the verbs engine, driven only through its public API
//! (admin commands, doorbells, `Verbs::mr_table`). Run:
//! `cargo bench -p rnic-device --bench verbs`. Figures: `docs/performance.md`.
//!
//! * `rdma_write/{4KiB..1MiB}`: one signaled RDMA WRITE between two loopback RC
//!   QPs of one engine (MTU 4096), posted, doorbelled and its CQE polled, next to
//!   `memcpy/{same sizes}`: a plain `copy_from_slice` of the same size. The bench
//!   prints, per size, the ratio memcpy time / write time (1.0 = as fast as memcpy)
//!   from separate timed loops of both in the same run (alternating rounds, the
//!   fastest round of each).
//! * `wr_rate/write_64B_x32`: 32 unsignaled-but-last 64-byte RDMA WRITEs per
//!   doorbell: the small-message work-request rate (also printed from one timed
//!   loop, per second of wall time and per second of this thread's CPU time).
//! * `mr_reg/reg_dereg_4KiB`: REG_MR + DEREG_MR of a one-page region, then the same
//!   with 60 000 MRs registered (`reg_dereg_4KiB_60k_registered`).
//! * `mr_lookup/1M_mrs_check_x4096`: the full protection check (`MrTable::check`)
//!   of 4096 random keys in an engine holding 1 048 576 MRs, all registered with
//!   REG_MR (the bench prints how long the million registrations took).
//!
//! Measurement times are short on purpose (the reference machine has 2 shared cores).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rnic_contract::admin::opcode;
use rnic_contract::verbs::{access, qp_attr, QpState};
use rnic_contract::wqe;
use rnic_device::dma::DmaError;
use rnic_device::env::{CopyError, DeviceEnv, DmaScope, Owner};
use rnic_device::events::Event;
use rnic_device::fault::{FaultAction, FaultPoint};
use rnic_device::verbs::cq::decode_cqe;
use rnic_device::verbs::mr::Need;
use rnic_device::verbs::{Verbs, VerbsLimits};

const MEM: usize = 8 << 20;
const PAGE: u64 = 4096;
const MAX_MSG: u64 = 1 << 20;
const SIZES: [u64; 5] = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// Guest memory as a flat vector; no faults, no interrupts kept.
struct Env {
    mem: Vec<u8>,
    now: Duration,
}

impl Env {
    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, DmaError> {
        let end = addr
            .checked_add(len as u64)
            .filter(|&e| e <= self.mem.len() as u64)
            .ok_or(DmaError::OutOfRange {
                addr,
                len: len as u64,
            })?;
        Ok(addr as usize..end as usize)
    }
}

impl DeviceEnv for Env {
    fn dma_read(&mut self, _scope: DmaScope, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }
    fn dma_write(&mut self, _scope: DmaScope, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let r = self.range(addr, buf.len())?;
        self.mem[r].copy_from_slice(buf);
        Ok(())
    }
    fn dma_copy(
        &mut self,
        _src: DmaScope,
        src_addr: u64,
        _dst: DmaScope,
        dst_addr: u64,
        len: usize,
    ) -> Result<(), CopyError> {
        let from = self.range(src_addr, len).map_err(CopyError::Source)?;
        let to = self.range(dst_addr, len).map_err(CopyError::Destination)?;
        self.mem.copy_within(from, to.start);
        Ok(())
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.range(addr, len as usize).map(|_| ())
    }
    fn raise(&mut self, _vector: u16) {}
    fn transmit(&mut self, _owner: Owner, _frame: &[u8]) -> bool {
        true
    }
    fn now(&self) -> Duration {
        self.now
    }
    fn fault(&mut self, _point: FaultPoint) -> Option<FaultAction> {
        None
    }
    fn post_event(&mut self, ev: Event) {
        panic!("unexpected async event in benchmark: {ev:?}");
    }
}

fn put32(o: &mut [u8], at: usize, v: u32) {
    o[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(o: &mut [u8], at: usize, v: u64) {
    o[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IP: [u8; 4] = [10, 0, 0, 1];
const RING: u32 = 256;

struct Cq {
    cqn: u32,
    base: u64,
    ci: u32,
}

struct Qp {
    qpn: u32,
    sq_base: u64,
    sq_pi: u32,
}

/// One engine, two RC QPs connected to each other over loopback, 1 MiB source and
/// destination buffers registered.
struct Bench {
    v: Verbs,
    env: Env,
    next: u64,
    pd: u32,
    cq: Cq,
    a: Qp,
    src: u64,
    src_key: u32,
    dst: u64,
    dst_key: u32,
    list: u64,
}

impl Bench {
    fn new(limits: VerbsLimits) -> Bench {
        let mut v = Verbs::new(limits);
        v.set_port_addr(MAC, IP);
        let mut b = Bench {
            v,
            env: Env {
                mem: vec![0; MEM],
                now: Duration::ZERO,
            },
            next: PAGE,
            pd: 0,
            cq: Cq {
                cqn: 0,
                base: 0,
                ci: 0,
            },
            a: Qp {
                qpn: 0,
                sq_base: 0,
                sq_pi: 0,
            },
            src: 0,
            src_key: 0,
            dst: 0,
            dst_key: 0,
            list: 0,
        };
        b.pd = b.admin(opcode::CREATE_PD, [0; 56]).0;
        b.cq = b.create_cq();
        let cq_b = b.create_cq();
        let (qa, sq_a) = b.create_qp(b.cq.cqn);
        let (qb, _) = b.create_qp(cq_b.cqn);
        b.connect(qa, qb);
        b.connect(qb, qa);
        b.a = Qp {
            qpn: qa,
            sq_base: sq_a,
            sq_pi: 0,
        };
        let (src, src_key) = b.buf_mr(MAX_MSG);
        let (dst, dst_key) = b.buf_mr(MAX_MSG);
        (b.src, b.src_key, b.dst, b.dst_key) = (src, src_key, dst, dst_key);
        // A one-page page list for registration benchmarks.
        b.list = b.alloc(PAGE);
        let page = b.alloc(PAGE);
        let l = b.list as usize;
        b.env.mem[l..l + 8].copy_from_slice(&page.to_le_bytes());
        for (i, x) in b.env.mem[src as usize..(src + MAX_MSG) as usize]
            .iter_mut()
            .enumerate()
        {
            *x = (i * 7) as u8;
        }
        b
    }

    fn alloc(&mut self, size: u64) -> u64 {
        let a = self.next;
        self.next = (self.next + size).div_ceil(PAGE) * PAGE;
        assert!(self.next <= MEM as u64, "bench memory exhausted");
        a
    }

    fn admin(&mut self, opcode: u8, o: [u8; 56]) -> (u32, u32) {
        self.v
            .admin(&mut self.env, opcode, &o)
            .unwrap_or_else(|e| panic!("admin {opcode:#x} failed: {e:?}"))
    }

    fn create_cq(&mut self) -> Cq {
        let base = self.alloc(u64::from(RING) * 32);
        let mut o = [0u8; 56];
        put64(&mut o, 0, base);
        put32(&mut o, 8, RING);
        o[12..14].copy_from_slice(&1u16.to_le_bytes());
        Cq {
            cqn: self.admin(opcode::CREATE_CQ, o).0,
            base,
            ci: 0,
        }
    }

    fn create_qp(&mut self, cqn: u32) -> (u32, u64) {
        let sq = self.alloc(u64::from(RING) * 128);
        let rq = self.alloc(u64::from(RING) * 128);
        let mut o = [0u8; 56];
        put32(&mut o, 0, self.pd);
        put32(&mut o, 4, cqn);
        put32(&mut o, 8, cqn);
        put32(&mut o, 12, RING);
        put32(&mut o, 16, RING);
        put64(&mut o, 20, sq);
        put64(&mut o, 28, rq);
        o[36] = 6;
        o[37] = 6;
        o[38..40].copy_from_slice(&96u16.to_le_bytes());
        (self.admin(opcode::CREATE_QP, o).0, sq)
    }

    fn modify(&mut self, qpn: u32, mask: u32, f: impl FnOnce(&mut [u8; 56])) {
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        put32(&mut o, 4, mask);
        f(&mut o);
        self.admin(opcode::MODIFY_QP, o);
    }

    fn connect(&mut self, qpn: u32, remote: u32) {
        self.modify(qpn, qp_attr::STATE | qp_attr::ACCESS, |o| {
            o[8] = QpState::Init as u8;
            o[13] = (access::REMOTE_READ | access::REMOTE_WRITE) as u8;
        });
        self.modify(
            qpn,
            qp_attr::STATE
                | qp_attr::DEST_QPN
                | qp_attr::RQ_PSN
                | qp_attr::AV
                | qp_attr::PATH_MTU
                | qp_attr::MIN_RNR_TIMER,
            |o| {
                o[8] = QpState::Rtr as u8;
                o[9] = 5; // MTU 4096
                o[14] = 1;
                put32(o, 16, remote);
                put32(o, 24, 0);
                o[28..34].copy_from_slice(&MAC);
                o[36..40].copy_from_slice(&IP);
            },
        );
        self.modify(
            qpn,
            qp_attr::STATE
                | qp_attr::SQ_PSN
                | qp_attr::TIMEOUT
                | qp_attr::RETRY_CNT
                | qp_attr::RNR_RETRY,
            |o| {
                o[8] = QpState::Rts as u8;
                o[10] = 7;
                o[11] = 7;
                o[12] = 14;
                put32(o, 20, 0);
            },
        );
    }

    fn reg_mr(&mut self, addr: u64, len: u64, list: u64) -> u32 {
        self.reg_mr_iova(addr, len, list)
    }

    /// REG_MR of `len` bytes named `iova`, pages from the guest list at `list`.
    fn reg_mr_iova(&mut self, iova: u64, len: u64, list: u64) -> u32 {
        let n = len.div_ceil(PAGE);
        let mut o = [0u8; 56];
        put32(&mut o, 0, self.pd);
        put32(
            &mut o,
            4,
            access::LOCAL_WRITE | access::REMOTE_READ | access::REMOTE_WRITE,
        );
        put64(&mut o, 8, iova);
        put64(&mut o, 16, len);
        put64(&mut o, 24, list);
        put32(&mut o, 32, n as u32);
        o[40] = 12;
        o[41] = 0x5A;
        self.admin(opcode::REG_MR, o).0
    }

    fn buf_mr(&mut self, len: u64) -> (u64, u32) {
        let a = self.alloc(len);
        let n = len.div_ceil(PAGE);
        let list = self.alloc(n * 8);
        for i in 0..n {
            let p = (list + i * 8) as usize;
            self.env.mem[p..p + 8].copy_from_slice(&(a + i * PAGE).to_le_bytes());
        }
        (a, self.reg_mr(a, len, list))
    }

    /// Writes one RDMA WRITE WQE into the SQ (no doorbell).
    fn post_write(&mut self, len: u32, signaled: bool) {
        let mut w = [0u8; 128];
        put64(&mut w, 0, u64::from(self.a.sq_pi));
        w[8] = wqe::opcode::RDMA_WRITE;
        w[9] = if signaled { wqe::flags::SIGNALED } else { 0 };
        w[10] = 1;
        put64(&mut w, 16, self.dst);
        put32(&mut w, 24, self.dst_key);
        put64(&mut w, 32, self.src);
        put32(&mut w, 40, len);
        put32(&mut w, 44, self.src_key);
        let slot = self.a.sq_base + u64::from(self.a.sq_pi % RING) * 128;
        self.env.mem[slot as usize..slot as usize + 128].copy_from_slice(&w);
        self.a.sq_pi = self.a.sq_pi.wrapping_add(1);
    }

    fn ring(&mut self) {
        self.v.doorbell(
            &mut self.env,
            0x2000 + 8 * u64::from(self.a.qpn),
            self.a.sq_pi,
        );
    }

    /// Consumes CQEs until one arrives; returns how many were consumed.
    fn reap(&mut self) -> u32 {
        let mut got = 0;
        for _ in 0..1000 {
            loop {
                let slot = (self.cq.base + u64::from(self.cq.ci % RING) * 32) as usize;
                let mut b = [0u8; 32];
                b.copy_from_slice(&self.env.mem[slot..slot + 32]);
                let (cqe, phase) = decode_cqe(&b);
                let expect = (self.cq.ci / RING) & 1 == 0;
                if phase != expect {
                    break;
                }
                assert_eq!(cqe.status, 0, "benchmark work request failed: {cqe:?}");
                self.cq.ci = self.cq.ci.wrapping_add(1);
                got += 1;
            }
            if got > 0 {
                self.v.doorbell(
                    &mut self.env,
                    0x8000 + 8 * u64::from(self.cq.cqn),
                    self.cq.ci,
                );
                return got;
            }
            self.env.now += Duration::from_micros(1);
            self.v.poll(&mut self.env);
        }
        panic!("no completion arrived");
    }
}

fn limits() -> VerbsLimits {
    VerbsLimits {
        max_mr: 1 << 16,
        ..VerbsLimits::default()
    }
}

fn bench_write(c: &mut Criterion) {
    let mut b = Bench::new(limits());
    let mut g = c.benchmark_group("rdma_write");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for &size in &SIZES {
        g.throughput(Throughput::Bytes(size));
        g.bench_with_input(
            BenchmarkId::from_parameter(kib(size)),
            &size,
            |bn, &size| {
                bn.iter(|| {
                    b.post_write(size as u32, true);
                    b.ring();
                    black_box(b.reap());
                })
            },
        );
    }
    g.finish();
    // The destination holds what the source held (one full-size write first, so
    // the check holds when a filter skipped the timed writes).
    b.post_write(MAX_MSG as u32, true);
    b.ring();
    b.reap();
    let (s, d) = (b.src as usize, b.dst as usize);
    assert!(
        b.env.mem[s..s + MAX_MSG as usize] == b.env.mem[d..d + MAX_MSG as usize],
        "RDMA WRITE did not move the source into the destination"
    );

    let mut g = c.benchmark_group("memcpy");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let src = vec![7u8; MAX_MSG as usize];
    let mut dst = vec![0u8; MAX_MSG as usize];
    for &size in &SIZES {
        g.throughput(Throughput::Bytes(size));
        g.bench_with_input(
            BenchmarkId::from_parameter(kib(size)),
            &size,
            |bn, &size| {
                bn.iter(|| {
                    dst[..size as usize].copy_from_slice(black_box(&src[..size as usize]));
                    black_box(&dst);
                })
            },
        );
    }
    g.finish();
    ratio_report(&mut b);
}

/// A direct side-by-side timing of RDMA WRITE and memcpy, printed as a ratio.
/// The two alternate in rounds; each side's figure is its fastest round (the
/// round least disturbed by other jobs on a shared host).
fn ratio_report(b: &mut Bench) {
    const ROUNDS: u64 = 8;
    let src = vec![7u8; MAX_MSG as usize];
    let mut dst = vec![0u8; MAX_MSG as usize];
    eprintln!(
        "\nrdma_write vs memcpy (same run, same sizes; fastest of {ROUNDS} alternating rounds):"
    );
    eprintln!(
        "{:>8} {:>14} {:>14} {:>22}",
        "size", "write GB/s", "memcpy GB/s", "memcpy time/write time"
    );
    for &size in &SIZES {
        let iters = ((64u64 << 20) / size / ROUNDS).max(4);
        let (mut best_w, mut best_m) = (Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..iters {
                b.post_write(size as u32, true);
                b.ring();
                b.reap();
            }
            best_w = best_w.min(t.elapsed());
            let t = Instant::now();
            for _ in 0..iters {
                dst[..size as usize].copy_from_slice(black_box(&src[..size as usize]));
                black_box(&dst);
            }
            best_m = best_m.min(t.elapsed());
        }
        let gbps = |d: Duration| (size * iters) as f64 / d.as_secs_f64() / 1e9;
        eprintln!(
            "{:>8} {:>14.2} {:>14.2} {:>21.2}x",
            kib(size),
            gbps(best_w),
            gbps(best_m),
            best_m.as_secs_f64() / best_w.as_secs_f64()
        );
    }
}

fn kib(size: u64) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}

fn bench_wr_rate(c: &mut Criterion) {
    let mut b = Bench::new(limits());
    const BATCH: u32 = 32;
    let mut g = c.benchmark_group("wr_rate");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.bench_function("write_64B_x32", |bn| {
        bn.iter(|| {
            for i in 0..BATCH {
                b.post_write(64, i == BATCH - 1);
            }
            b.ring();
            black_box(b.reap());
        })
    });
    g.finish();
    // The same batches in one timed loop, printed for scripts/bench.sh.
    const BATCHES: u32 = 20_000;
    let cpu = thread_cpu_time();
    let t = Instant::now();
    for _ in 0..BATCHES {
        for i in 0..BATCH {
            b.post_write(64, i == BATCH - 1);
        }
        b.ring();
        black_box(b.reap());
    }
    let wall = t.elapsed();
    let writes = f64::from(BATCH * BATCHES);
    eprintln!(
        "\nwr_rate: 64-byte RDMA WRITEs per second (batches of {BATCH}, one core): {:.2} M",
        writes / wall.as_secs_f64() / 1e6
    );
    if let (Some(before), Some(after)) = (cpu, thread_cpu_time()) {
        let busy = after.saturating_sub(before).as_secs_f64();
        eprintln!(
            "wr_rate: the same per second of this thread's CPU time: {:.2} M ({:.0} ns per write)",
            writes / busy / 1e6,
            busy * 1e9 / writes
        );
    }
}

/// CPU time this thread has run so far (Linux `/proc/thread-self/schedstat`, in
/// ns), or `None` where that file is missing. On a shared host it leaves out the
/// time other jobs held the core, which wall time does not.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn bench_mr_reg(c: &mut Criterion) {
    let mut b = Bench::new(limits());
    let (page, list) = (b.alloc(PAGE), b.list);
    let mut g = c.benchmark_group("mr_reg");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("reg_dereg_4KiB", |bn| {
        bn.iter(|| {
            let key = b.reg_mr(page, PAGE, list);
            let mut o = [0u8; 56];
            put32(&mut o, 0, key);
            b.admin(opcode::DEREG_MR, o);
        })
    });
    // The same with 60 000 MRs already registered (a busy table).
    for _ in 0..60_000 {
        b.reg_mr(page, PAGE, list);
    }
    g.bench_function("reg_dereg_4KiB_60k_registered", |bn| {
        bn.iter(|| {
            let key = b.reg_mr(page, PAGE, list);
            let mut o = [0u8; 56];
            put32(&mut o, 0, key);
            b.admin(opcode::DEREG_MR, o);
        })
    });
    g.finish();
}

fn bench_mr_lookup(c: &mut Criterion) {
    const N: u32 = 1 << 20;
    let mut b = Bench::new(VerbsLimits {
        max_mr: N + 2,
        ..VerbsLimits::default()
    });
    // A million one-page MRs through the admin path, each with its own iova (the
    // guest page behind them is the same one: only the tables matter here).
    let list = b.list;
    let t = Instant::now();
    let mrs: Vec<(u32, u64)> = (0..N)
        .map(|i| {
            let iova = (u64::from(i) + 1) << 32;
            (b.reg_mr_iova(iova, PAGE, list), iova)
        })
        .collect();
    let took = t.elapsed();
    eprintln!(
        "\nmr_lookup: registered {N} MRs with REG_MR in {:.2} s ({:.0} ns each)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e9 / f64::from(N)
    );
    assert_eq!(b.v.stats().mrs, N + 2);
    // A fixed pseudo-random choice of registered MRs (xorshift), so cache behaviour
    // is realistic.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let probes: Vec<(u32, u64)> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mrs[(x % u64::from(N)) as usize]
        })
        .collect();
    let (t, pd) = (b.v.mr_table(), b.pd);
    assert!(probes
        .iter()
        .all(|&(k, va)| t.check(k, pd, Need::RemoteWrite, va + 64, 128).is_ok()));
    let mut g = c.benchmark_group("mr_lookup");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("1M_mrs_check_x4096", |bn| {
        bn.iter(|| {
            for &(k, va) in &probes {
                let r = t.check(black_box(k), pd, Need::RemoteWrite, va + 64, 128);
                black_box(r.is_ok());
            }
        })
    });
    g.finish();
}

/// Criterion's generated group runner, kept in a private module (it has no docs).
mod groups {
    use super::*;

    criterion_group!(
        benches,
        bench_write,
        bench_wr_rate,
        bench_mr_reg,
        bench_mr_lookup
    );
}
criterion_main!(groups::benches);
