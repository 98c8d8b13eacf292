//! Tests of the verbs engine against a test environment: `Vec<u8>` guest memory,
//! recorded interrupts and async events, a frame queue, a settable clock and
//! scripted faults.

mod admin;
mod cm;
mod cqs;
mod fuzz;
mod one_copy;
mod protection;
mod scopes;
mod transport;
mod two_devices;

use super::async_event::AsyncEvent;
use super::cq::decode_cqe;
use super::{AdminStatus, Verbs, VerbsLimits};
use crate::dma::DmaError;
use crate::env::{CopyError, DeviceEnv, DmaScope, Owner};
use crate::events::Event;
use crate::fault::{FaultAction, FaultPoint, FaultSite};
pub use rnic_contract::admin::opcode;
pub use rnic_contract::bar0::verbs_db;
pub use rnic_contract::cqe::{self, CqeRepr, WcStatus};
pub use rnic_contract::verbs::{access, qp_attr, QpState};
pub use rnic_contract::wqe;
use std::collections::VecDeque;
use std::time::Duration;

/// Little-endian readers for checking output records against the spec's offsets
/// (an independent copy of the numbers, as the tests keep).
pub fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// See [`le_u16`].
pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// See [`le_u16`].
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub const MEM_SIZE: usize = 4 << 20;
pub const PAGE: u64 = 4096;

/// The test environment.
pub struct TestEnv {
    pub mem: Vec<u8>,
    pub vectors: Vec<u16>,
    pub frames: VecDeque<Vec<u8>>,
    pub events: Vec<AsyncEvent>,
    pub now: Duration,
    /// Faults handed out in order to matching sites.
    pub faults: VecDeque<(FaultSite, FaultAction)>,
    /// DMA reads of addresses in this range fail.
    pub fail_reads: Option<(u64, u64)>,
    /// Record every DMA access in `dma_log` (off by default: payload is large).
    pub log_dma: bool,
    pub dma_log: Vec<DmaRecord>,
    /// The sending QPN of every frame transmitted (`None`: not sent by a QP).
    pub frame_sources: Vec<Option<u32>>,
    /// Bytes moved guest to guest by `dma_copy` (the loopback one-copy path).
    pub copied_bytes: u64,
    /// `dma_copy` calls that moved bytes.
    pub copies: u64,
}

/// One DMA access seen by the test environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmaRecord {
    /// The scope of the access (always set: every access names its owner).
    pub scope: Option<DmaScope>,
    pub write: bool,
    pub addr: u64,
    /// The bytes written (empty for reads).
    pub data: Vec<u8>,
}

impl TestEnv {
    pub fn new() -> Self {
        TestEnv {
            mem: vec![0; MEM_SIZE],
            vectors: Vec::new(),
            frames: VecDeque::new(),
            events: Vec::new(),
            now: Duration::ZERO,
            faults: VecDeque::new(),
            fail_reads: None,
            log_dma: false,
            dma_log: Vec::new(),
            frame_sources: Vec::new(),
            copied_bytes: 0,
            copies: 0,
        }
    }

    fn record(&mut self, scope: Option<DmaScope>, write: bool, addr: u64, data: &[u8]) {
        if self.log_dma {
            self.dma_log.push(DmaRecord {
                scope,
                write,
                addr,
                data: if write { data.to_vec() } else { Vec::new() },
            });
        }
    }

    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        if let Some((s, e)) = self.fail_reads {
            if addr < e && addr + buf.len() as u64 > s {
                return Err(DmaError::Injected {
                    addr,
                    len: buf.len() as u64,
                });
            }
        }
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }

    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let r = self.range(addr, buf.len())?;
        self.mem[r].copy_from_slice(buf);
        Ok(())
    }

    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, DmaError> {
        let end = addr.checked_add(len as u64).ok_or(DmaError::Overflow {
            addr,
            len: len as u64,
        })?;
        if end > self.mem.len() as u64 {
            return Err(DmaError::OutOfRange {
                addr,
                len: len as u64,
            });
        }
        Ok(addr as usize..end as usize)
    }
}

impl DeviceEnv for TestEnv {
    fn dma_read(&mut self, scope: DmaScope, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.record(Some(scope), false, addr, buf);
        self.read(addr, buf)
    }
    fn dma_write(&mut self, scope: DmaScope, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        self.record(Some(scope), true, addr, buf);
        self.write(addr, buf)
    }
    /// One guest-to-guest copy, logged as a read of the source and a write of the
    /// destination (with their scopes); `fail_reads` fails it as it fails a read.
    fn dma_copy(
        &mut self,
        src: DmaScope,
        src_addr: u64,
        dst: DmaScope,
        dst_addr: u64,
        len: usize,
    ) -> Result<(), CopyError> {
        if let Some((s, e)) = self.fail_reads {
            if src_addr < e && src_addr + len as u64 > s {
                return Err(CopyError::Source(DmaError::Injected {
                    addr: src_addr,
                    len: len as u64,
                }));
            }
        }
        let from = self.range(src_addr, len).map_err(CopyError::Source)?;
        let to = self.range(dst_addr, len).map_err(CopyError::Destination)?;
        self.record(Some(src), false, src_addr, &[]);
        self.mem.copy_within(from, to.start);
        let written = self.mem[to].to_vec();
        self.record(Some(dst), true, dst_addr, &written);
        self.copied_bytes += len as u64;
        self.copies += 1;
        Ok(())
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.range(addr, len as usize).map(|_| ())
    }
    fn raise(&mut self, vector: u16) {
        self.vectors.push(vector);
    }
    fn transmit(&mut self, owner: Owner, frame: &[u8]) -> bool {
        let qpn = match owner {
            Owner::Qp(qpn) => Some(qpn),
            _ => None,
        };
        self.frame_sources.push(qpn);
        self.frames.push_back(frame.to_vec());
        true
    }
    fn post_event(&mut self, ev: Event) {
        let ev = AsyncEvent::from_event(&ev).expect("the verbs engine posts only verbs events");
        self.events.push(ev);
    }
    fn now(&self) -> Duration {
        self.now
    }
    fn fault(&mut self, point: FaultPoint) -> Option<FaultAction> {
        let i = self.faults.iter().position(|(s, _)| *s == point.site)?;
        self.faults.remove(i).map(|(_, a)| a)
    }
}

pub fn put32(o: &mut [u8], at: usize, v: u32) {
    o[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put64(o: &mut [u8], at: usize, v: u64) {
    o[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A CQ as the test driver sees it.
#[derive(Clone, Copy, Debug)]
pub struct TCq {
    pub cqn: u32,
    pub base: u64,
    pub size: u32,
    pub ci: u32,
}

/// A QP as the test driver sees it.
#[derive(Clone, Copy, Debug)]
pub struct TQp {
    pub qpn: u32,
    pub sq_base: u64,
    pub sq_size: u32,
    pub rq_base: u64,
    pub rq_size: u32,
    pub sq_pi: u32,
    pub rq_pi: u32,
}

/// A send work request.
#[derive(Clone, Debug, Default)]
pub struct SendWr {
    pub wr_id: u64,
    pub opcode: u8,
    pub flags: u8,
    pub sges: Vec<(u64, u32, u32)>,
    pub imm: u32,
    pub remote_addr: u64,
    pub rkey: u32,
    pub inline: Option<Vec<u8>>,
    /// Raw bytes 16..128 override (FAST_REG).
    pub raw: Option<[u8; 128]>,
}

impl SendWr {
    pub fn encode(&self) -> [u8; 128] {
        let mut b = self.raw.unwrap_or([0u8; 128]);
        put64(&mut b, 0, self.wr_id);
        b[8] = self.opcode;
        b[9] = self.flags;
        put32(&mut b, 12, self.imm);
        if self.raw.is_some() {
            return b;
        }
        b[10] = self.sges.len() as u8;
        put64(&mut b, 16, self.remote_addr);
        put32(&mut b, 24, self.rkey);
        if let Some(d) = &self.inline {
            put32(&mut b, 28, d.len() as u32);
            b[32..32 + d.len()].copy_from_slice(d);
        } else {
            for (i, (a, l, k)) in self.sges.iter().enumerate() {
                let o = 32 + i * 16;
                put64(&mut b, o, *a);
                put32(&mut b, o + 8, *l);
                put32(&mut b, o + 12, *k);
            }
        }
        b
    }
}

/// A test device: a `Verbs` engine with its environment and a bump allocator.
pub struct Dev {
    pub v: Verbs,
    pub env: TestEnv,
    next: u64,
}

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xA];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xB];
pub const IP_A: [u8; 4] = [10, 0, 0, 1];
pub const IP_B: [u8; 4] = [10, 0, 0, 2];

impl Dev {
    pub fn new(mac: [u8; 6], ip: [u8; 4]) -> Self {
        Self::with_limits(mac, ip, VerbsLimits::default())
    }

    pub fn with_limits(mac: [u8; 6], ip: [u8; 4], limits: VerbsLimits) -> Self {
        let mut v = Verbs::new(limits);
        v.set_port_addr(mac, ip);
        Dev {
            v,
            env: TestEnv::new(),
            next: PAGE,
        }
    }

    pub fn alloc(&mut self, size: u64) -> u64 {
        let a = self.next;
        self.next = (self.next + size).div_ceil(PAGE) * PAGE;
        assert!(self.next <= MEM_SIZE as u64, "test memory exhausted");
        a
    }

    pub fn admin(&mut self, opcode: u8, o: [u8; 56]) -> Result<(u32, u32), AdminStatus> {
        self.v.admin(&mut self.env, opcode, &o)
    }

    pub fn pd(&mut self) -> u32 {
        self.admin(opcode::CREATE_PD, [0; 56]).unwrap().0
    }

    pub fn cq_with(&mut self, size: u32, vector: u16, count: u16, usec: u32) -> TCq {
        let base = self.alloc(u64::from(size) * 32);
        let mut o = [0u8; 56];
        put64(&mut o, 0, base);
        put32(&mut o, 8, size);
        o[12..14].copy_from_slice(&vector.to_le_bytes());
        o[14..16].copy_from_slice(&count.to_le_bytes());
        put32(&mut o, 16, usec);
        let cqn = self.admin(opcode::CREATE_CQ, o).unwrap().0;
        TCq {
            cqn,
            base,
            size,
            ci: 0,
        }
    }

    pub fn cq(&mut self, size: u32) -> TCq {
        self.cq_with(size, 1, 0, 0)
    }

    pub fn qp_ops(
        pd: u32,
        scq: u32,
        rcq: u32,
        sq: u32,
        rq: u32,
        sq_base: u64,
        rq_base: u64,
    ) -> [u8; 56] {
        let mut o = [0u8; 56];
        put32(&mut o, 0, pd);
        put32(&mut o, 4, scq);
        put32(&mut o, 8, rcq);
        put32(&mut o, 12, sq);
        put32(&mut o, 16, rq);
        put64(&mut o, 20, sq_base);
        put64(&mut o, 28, rq_base);
        o[36] = 6;
        o[37] = 6;
        o[38..40].copy_from_slice(&96u16.to_le_bytes());
        o
    }

    pub fn qp(&mut self, pd: u32, scq: &TCq, rcq: &TCq, sq: u32, rq: u32) -> TQp {
        let sq_base = self.alloc(u64::from(sq) * 128);
        let rq_base = self.alloc(u64::from(rq) * 128);
        let o = Self::qp_ops(pd, scq.cqn, rcq.cqn, sq, rq, sq_base, rq_base);
        let qpn = self.admin(opcode::CREATE_QP, o).unwrap().0;
        TQp {
            qpn,
            sq_base,
            sq_size: sq,
            rq_base,
            rq_size: rq,
            sq_pi: 0,
            rq_pi: 0,
        }
    }

    /// Registers `[addr, addr+len)` (page-aligned buffer from `alloc`) as an MR.
    pub fn reg_mr_at(
        &mut self,
        pd: u32,
        addr: u64,
        len: u64,
        acc: u32,
        iova: u64,
    ) -> Result<u32, AdminStatus> {
        let fbo = addr % PAGE;
        let first = addr - fbo;
        let n = (fbo + len).div_ceil(PAGE);
        let list = self.alloc(n * 8);
        for i in 0..n {
            let a = (list + i * 8) as usize;
            self.env.mem[a..a + 8].copy_from_slice(&(first + i * PAGE).to_le_bytes());
        }
        let mut o = [0u8; 56];
        put32(&mut o, 0, pd);
        put32(&mut o, 4, acc);
        put64(&mut o, 8, iova);
        put64(&mut o, 16, len);
        put64(&mut o, 24, list);
        put32(&mut o, 32, n as u32);
        put32(&mut o, 36, fbo as u32);
        o[40] = 12;
        o[41] = 0x5A;
        self.admin(opcode::REG_MR, o).map(|r| r.0)
    }

    /// Allocates a buffer and registers it with iova = its guest address.
    pub fn buf_mr(&mut self, pd: u32, len: u64, acc: u32) -> (u64, u32) {
        let a = self.alloc(len.max(1));
        let key = self.reg_mr_at(pd, a, len, acc, a).unwrap();
        (a, key)
    }

    pub fn write_mem(&mut self, addr: u64, data: &[u8]) {
        self.env.mem[addr as usize..addr as usize + data.len()].copy_from_slice(data);
    }

    pub fn read_mem(&self, addr: u64, len: usize) -> Vec<u8> {
        self.env.mem[addr as usize..addr as usize + len].to_vec()
    }

    pub fn post_send(&mut self, qp: &mut TQp, w: &SendWr) {
        self.post_send_no_db(qp, w);
        self.ring_sq(qp);
    }

    pub fn post_send_no_db(&mut self, qp: &mut TQp, w: &SendWr) {
        let slot = qp.sq_base + u64::from(qp.sq_pi & (qp.sq_size - 1)) * 128;
        self.write_mem(slot, &w.encode());
        qp.sq_pi = qp.sq_pi.wrapping_add(1);
    }

    pub fn ring_sq(&mut self, qp: &TQp) {
        self.v
            .doorbell(&mut self.env, 0x2000 + 8 * u64::from(qp.qpn), qp.sq_pi);
    }

    pub fn post_recv(&mut self, qp: &mut TQp, wr_id: u64, sges: &[(u64, u32, u32)]) {
        let mut b = [0u8; 128];
        put64(&mut b, 0, wr_id);
        b[8] = sges.len() as u8;
        for (i, (a, l, k)) in sges.iter().enumerate() {
            let o = 32 + i * 16;
            put64(&mut b, o, *a);
            put32(&mut b, o + 8, *l);
            put32(&mut b, o + 12, *k);
        }
        let slot = qp.rq_base + u64::from(qp.rq_pi & (qp.rq_size - 1)) * 128;
        self.write_mem(slot, &b);
        qp.rq_pi = qp.rq_pi.wrapping_add(1);
        self.v
            .doorbell(&mut self.env, 0x2004 + 8 * u64::from(qp.qpn), qp.rq_pi);
    }

    /// Reads all new CQEs (phase tag), then rings the CI doorbell.
    pub fn poll_cq(&mut self, cq: &mut TCq) -> Vec<CqeRepr> {
        let mut out = Vec::new();
        loop {
            let slot = cq.base + u64::from(cq.ci & (cq.size - 1)) * 32;
            let mut b = [0u8; 32];
            b.copy_from_slice(&self.env.mem[slot as usize..slot as usize + 32]);
            let (cqe, phase) = decode_cqe(&b);
            let expect = (cq.ci / cq.size) & 1 == 0;
            if phase != expect {
                break;
            }
            out.push(cqe);
            cq.ci = cq.ci.wrapping_add(1);
        }
        self.v
            .doorbell(&mut self.env, 0x8000 + 8 * u64::from(cq.cqn), cq.ci);
        out
    }

    pub fn modify(
        &mut self,
        qpn: u32,
        mask: u32,
        f: impl FnOnce(&mut [u8; 56]),
    ) -> Result<(u32, u32), AdminStatus> {
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        put32(&mut o, 4, mask);
        f(&mut o);
        self.admin(opcode::MODIFY_QP, o)
    }

    pub fn set_state(&mut self, qpn: u32, s: QpState) -> Result<(u32, u32), AdminStatus> {
        self.modify(qpn, qp_attr::STATE, |o| o[8] = s as u8)
    }

    pub fn qp_state(&mut self, qpn: u32) -> u8 {
        let out = self.alloc(64);
        let mut o = [0u8; 56];
        put32(&mut o, 0, qpn);
        put64(&mut o, 8, out);
        self.admin(opcode::QUERY_QP, o).unwrap().0 as u8
    }

    /// RESET → INIT → RTR → RTS towards a remote QP.
    pub fn connect(
        &mut self,
        qpn: u32,
        remote_qpn: u32,
        mac: [u8; 6],
        ip: [u8; 4],
        p: &ConnParams,
    ) {
        self.modify(qpn, qp_attr::STATE | qp_attr::ACCESS, |o| {
            o[8] = QpState::Init as u8;
            o[13] = (access::REMOTE_READ | access::REMOTE_WRITE) as u8;
        })
        .unwrap();
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
                o[9] = p.mtu;
                o[14] = 1;
                put32(o, 16, remote_qpn);
                put32(o, 24, p.rq_psn);
                o[28..34].copy_from_slice(&mac);
                o[36..40].copy_from_slice(&ip);
            },
        )
        .unwrap();
        self.modify(
            qpn,
            qp_attr::STATE
                | qp_attr::SQ_PSN
                | qp_attr::TIMEOUT
                | qp_attr::RETRY_CNT
                | qp_attr::RNR_RETRY,
            |o| {
                o[8] = QpState::Rts as u8;
                o[10] = p.retry;
                o[11] = p.rnr_retry;
                o[12] = p.timeout;
                put32(o, 20, p.sq_psn);
            },
        )
        .unwrap();
    }

    pub fn advance(&mut self, d: Duration) {
        self.env.now += d;
        self.v.poll(&mut self.env);
    }
}

/// Connection parameters.
#[derive(Clone, Copy, Debug)]
pub struct ConnParams {
    pub mtu: u8,
    pub retry: u8,
    pub rnr_retry: u8,
    pub timeout: u8,
    pub sq_psn: u32,
    pub rq_psn: u32,
}

impl Default for ConnParams {
    fn default() -> Self {
        ConnParams {
            mtu: 1,
            retry: 7,
            rnr_retry: 7,
            timeout: 14,
            sq_psn: 100,
            rq_psn: 100,
        }
    }
}

/// One device, two connected QPs (loopback), each with its own CQ, a 64 KiB
/// registered buffer each.
pub struct Loop {
    pub d: Dev,
    pub pd: u32,
    pub cq_a: TCq,
    pub cq_b: TCq,
    pub a: TQp,
    pub b: TQp,
    pub buf_a: u64,
    pub key_a: u32,
    pub buf_b: u64,
    pub key_b: u32,
}

pub const ALL_ACCESS: u32 = access::LOCAL_WRITE | access::REMOTE_READ | access::REMOTE_WRITE;

impl Loop {
    pub fn new() -> Self {
        Self::with(ConnParams::default())
    }

    pub fn with(p: ConnParams) -> Self {
        Self::with_limits(p, VerbsLimits::default())
    }

    pub fn with_limits(p: ConnParams, limits: VerbsLimits) -> Self {
        let mut d = Dev::with_limits(MAC_A, IP_A, limits);
        let pd = d.pd();
        let cq_a = d.cq(64);
        let cq_b = d.cq(64);
        let a = d.qp(pd, &cq_a, &cq_a, 16, 16);
        let b = d.qp(pd, &cq_b, &cq_b, 16, 16);
        d.connect(a.qpn, b.qpn, MAC_A, IP_A, &p);
        let pb = ConnParams {
            sq_psn: p.rq_psn,
            rq_psn: p.sq_psn,
            ..p
        };
        d.connect(b.qpn, a.qpn, MAC_A, IP_A, &pb);
        let (buf_a, key_a) = d.buf_mr(pd, 65536, ALL_ACCESS);
        let (buf_b, key_b) = d.buf_mr(pd, 65536, ALL_ACCESS);
        Loop {
            d,
            pd,
            cq_a,
            cq_b,
            a,
            b,
            buf_a,
            key_a,
            buf_b,
            key_b,
        }
    }

    pub fn cqes_a(&mut self) -> Vec<CqeRepr> {
        let mut cq = self.cq_a;
        let r = self.d.poll_cq(&mut cq);
        self.cq_a = cq;
        r
    }

    pub fn cqes_b(&mut self) -> Vec<CqeRepr> {
        let mut cq = self.cq_b;
        let r = self.d.poll_cq(&mut cq);
        self.cq_b = cq;
        r
    }

    pub fn send_a(&mut self, w: SendWr) {
        let mut a = self.a;
        self.d.post_send(&mut a, &w);
        self.a = a;
    }

    pub fn recv_b(&mut self, wr_id: u64, sges: &[(u64, u32, u32)]) {
        let mut b = self.b;
        self.d.post_recv(&mut b, wr_id, sges);
        self.b = b;
    }
}

pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub fn signaled(opcode: u8, wr_id: u64) -> SendWr {
    SendWr {
        wr_id,
        opcode,
        flags: wqe::flags::SIGNALED,
        ..SendWr::default()
    }
}

pub fn st(s: WcStatus) -> u8 {
    s.code()
}
