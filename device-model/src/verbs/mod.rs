//! # The RDMA verbs engine
//!
//! Protection domains, memory regions, completion queues and RC queue pairs, the
//! admin commands that manage them (opcodes `0x10..=0x3F`), their doorbells (BAR0
//! `0x2000..=0xFFFF`), the RC transport over RoCEv2 frames (IPv4 or IPv6), and the
//! connection manager that connects RC QPs with IBTA CM messages on QP1 and
//! resolves peers by ARP / Neighbor Discovery. The driver-visible contract is
//! `docs/device-spec.md` §3.9-3.14 and §6-12.
//!
//! What it owns: everything under `src/verbs`. What it must not touch: PCI, MSI-X,
//! the admin queue itself, DMA, the wire backends and the fault engine. It reaches
//! them only through [`DeviceEnv`], which the device core implements; frames are
//! encoded and decoded with [`crate::roce`].
//!
//! The engine never trusts the guest: every handle, index, count, length, key and
//! address is validated; bad input becomes an admin status, a completion status or
//! a QP error, never a panic. Work per call is bounded (ring sizes, window, a cap on
//! loopback frames per call).

pub mod async_event;
mod cm;
mod cm_wire;
pub mod cq;
pub mod handles;
pub mod mr;
mod neigh;
pub mod qp;
mod transport;

#[cfg(test)]
mod tests;

pub use crate::env::{DeviceEnv, DmaScope, Owner};
pub use async_event::AsyncEvent;
pub use cm::CmStats;

/// Most send WQEs of one QP the engine fetches in one service call (a doorbell,
/// a poll, a received frame); the engine's next polls fetch the rest, as a hardware
/// SQ engine works through a long queue over time (`docs/device-spec.md` §15).
pub const SQ_WQES_PER_SERVICE: u32 = 64;
pub use rnic_contract::admin::AdminStatus;
pub use rnic_contract::cqe::WcStatus;
pub use rnic_contract::verbs::QpState;

use cq::{Cq, CqStats};
use handles::HandleAlloc;
use mr::{load_page_list, pages_needed, Mr, MrState, MrTable};
use qp::{Ctx, ModifyAttrs, ModifyError, Qp, QpConfig, QpStats};
use rnic_contract::admin::{opcode as op, operands, query_caps, query_mr, QUERY_RECORD_SIZE};
use rnic_contract::bar0::verbs_db;
use rnic_contract::field::Record;
use rnic_contract::verbs::{access, FIRST_QPN};
use rnic_contract::{cqe, wqe};
use serde::Serialize;
use std::collections::VecDeque;

use crate::roce::{self, RocePacket};

/// Device limits of the verbs engine (reported by QUERY_CAPS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerbsLimits {
    /// Most protection domains at once.
    pub max_pd: u32,
    /// At most [`verbs_db::MAX_CQN`].
    pub max_cq: u32,
    /// At most [`verbs_db::MAX_QPN`].
    pub max_qp: u32,
    /// At most 2^24 - 1.
    pub max_mr: u32,
    /// Largest CQ (entries, power of two).
    pub max_cqe: u32,
    /// Largest SQ / RQ (entries, power of two).
    pub max_qp_wr: u32,
    /// Largest page list of one MR.
    pub max_mr_pages: u32,
    /// Page entries held by all MRs together.
    pub max_total_pages: u64,
    /// Largest message (SEND, WRITE or READ length).
    pub max_msg_size: u32,
    /// MSI-X vectors a CQ may name (vector < this).
    pub num_vectors: u16,
    /// Unacknowledged packets a QP may have in flight.
    pub max_inflight: u32,
    /// Largest path MTU code (5 = 4096).
    pub max_mtu_code: u8,
    /// Smallest MR page shift accepted (12 = 4 KiB).
    pub min_page_shift: u8,
    /// Largest MR page shift accepted (30 = 1 GiB).
    pub max_page_shift: u8,
    /// Loopback packets (between two QPs of this device) delivered per service
    /// call before the rest waits for the next `poll` (bounded work, spec §15).
    pub max_loopback_per_call: usize,
}

impl Default for VerbsLimits {
    fn default() -> Self {
        VerbsLimits {
            max_pd: 1024,
            max_cq: 1024,
            max_qp: 1024,
            max_mr: 8192,
            max_cqe: 65536,
            max_qp_wr: 16384,
            max_mr_pages: 262_144,
            max_total_pages: 1 << 22,
            max_msg_size: 16 << 20,
            num_vectors: 16,
            max_inflight: 128,
            max_mtu_code: 5,
            min_page_shift: 12,
            max_page_shift: 30,
            max_loopback_per_call: 128,
        }
    }
}

impl VerbsLimits {
    /// The limits with every value clamped to what the ABI can express.
    pub fn clamped(mut self) -> Self {
        self.max_cq = self.max_cq.min(verbs_db::MAX_CQN);
        // QPNs are FIRST_QPN..FIRST_QPN + max_qp and need a doorbell.
        self.max_qp = self.max_qp.min(verbs_db::MAX_QPN + 1 - FIRST_QPN);
        self.max_mr = self.max_mr.min(crate::roce::PSN_MASK);
        self.max_cqe = prev_pow2(self.max_cqe.max(2));
        self.max_qp_wr = prev_pow2(self.max_qp_wr.max(2));
        self.max_inflight = self.max_inflight.clamp(1, 1 << 20);
        self.max_mtu_code = self.max_mtu_code.clamp(1, 5);
        self.min_page_shift = self.min_page_shift.clamp(12, 30);
        self.max_page_shift = self.max_page_shift.clamp(self.min_page_shift, 30);
        self.max_loopback_per_call = self.max_loopback_per_call.max(1);
        self
    }

    /// The 64-byte QUERY_CAPS record.
    pub fn encode(&self) -> [u8; QUERY_RECORD_SIZE] {
        let mut b = [0u8; QUERY_RECORD_SIZE];
        let mut r = Record::new_unchecked(&mut b);
        r.set_u32(query_caps::MAX_QP, self.max_qp);
        r.set_u32(query_caps::MAX_CQ, self.max_cq);
        r.set_u32(query_caps::MAX_PD, self.max_pd);
        r.set_u32(query_caps::MAX_MR, self.max_mr);
        r.set_u32(query_caps::MAX_QP_WR, self.max_qp_wr);
        r.set_u32(query_caps::MAX_CQE, self.max_cqe);
        r.set_u8(query_caps::MAX_SEND_SGE, wqe::MAX_SGE);
        r.set_u8(query_caps::MAX_RECV_SGE, wqe::MAX_SGE);
        r.set_u16(query_caps::MAX_INLINE, wqe::MAX_INLINE as u16);
        r.set_u32(query_caps::MAX_MSG_SIZE, self.max_msg_size);
        r.set_u32(query_caps::MAX_MR_PAGES, self.max_mr_pages);
        r.set_u8(query_caps::MIN_PAGE_SHIFT, self.min_page_shift);
        r.set_u8(query_caps::MAX_PAGE_SHIFT, self.max_page_shift);
        r.set_u8(query_caps::MAX_PATH_MTU, self.max_mtu_code);
        r.set_u8(query_caps::CQ_VECTORS, self.num_vectors.min(255) as u8);
        r.set_u32(query_caps::MAX_FR_PAGES, self.max_mr_pages);
        r.set_u16(query_caps::WQE_SIZE, wqe::WQE_SIZE as u16);
        r.set_u16(query_caps::CQE_SIZE, cqe::CQE_SIZE as u16);
        r.set_u32(query_caps::MAX_INFLIGHT, self.max_inflight);
        r.set_u32(query_caps::ACCESS_BITS, access::ALL);
        r.set_u16(query_caps::MAX_MW, 0);
        r.set_u16(query_caps::MAX_SRQ, 0);
        r.set_u8(query_caps::MAX_RD_ATOMIC, rnic_contract::cm::MAX_RD_ATOMIC);
        r.set_u8(query_caps::MAX_LISTENERS, rnic_contract::cm::MAX_LISTENERS);
        r.set_u16(
            query_caps::MAX_CONNECTIONS,
            rnic_contract::cm::MAX_CONNECTIONS,
        );
        b
    }
}

fn prev_pow2(v: u32) -> u32 {
    1 << (31 - v.leading_zeros())
}

/// The port's own addresses (source of every frame; loopback when a QP's
/// destination IP equals `ip` or `ipv6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Port {
    /// Source MAC of every RoCEv2 frame the device sends.
    pub mac: [u8; 6],
    /// IPv4 address of the port, network byte order (GID `::ffff:a.b.c.d`).
    pub ip: [u8; 4],
    /// IPv6 address of the port (`SET_PORT_ADDR6`; its GID is the address), if any.
    pub ipv6: Option<[u8; 16]>,
}

/// A handle-indexed object table; handle 0 is never used. Allocation order and cost
/// are those of [`HandleAlloc`] (O(1), fresh handles first, then FIFO reuse).
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<Option<T>>,
    ids: HandleAlloc,
}

impl<T> Table<T> {
    pub(crate) fn new(max: u32) -> Self {
        Self::with_range(1, max)
    }
    /// A table of handles `first..=last`.
    pub(crate) fn with_range(first: u32, last: u32) -> Self {
        // Slots grow as handles are first handed out (fresh handles ascend).
        Table {
            slots: Vec::new(),
            ids: HandleAlloc::range(first, last),
        }
    }
    pub(crate) fn get(&self, h: u32) -> Option<&T> {
        if h == 0 {
            return None;
        }
        self.slots.get(h as usize)?.as_ref()
    }
    pub(crate) fn get_mut(&mut self, h: u32) -> Option<&mut T> {
        if h == 0 {
            return None;
        }
        self.slots.get_mut(h as usize)?.as_mut()
    }
    /// Objects in the table.
    pub(crate) fn len(&self) -> u32 {
        self.ids.in_use()
    }
    fn alloc(&mut self, v: T) -> Option<u32> {
        let h = self.ids.alloc()?;
        if self.slots.len() <= h as usize {
            self.slots.resize_with(h as usize + 1, || None);
        }
        self.slots[h as usize] = Some(v);
        Some(h)
    }
    fn take(&mut self, h: u32) -> Option<T> {
        if h == 0 {
            return None;
        }
        let v = self.slots.get_mut(h as usize)?.take()?;
        self.ids.free(h);
        Some(v)
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|v| (i as u32, v)))
    }
    fn handles(&self) -> Vec<u32> {
        self.iter().map(|(h, _)| h).collect()
    }
    fn clear(&mut self) {
        for s in &mut self.slots {
            *s = None;
        }
        self.ids.reset();
    }
}

/// A protection domain: besides its existence, how many MRs name it (so that
/// `DESTROY_PD` need not scan the MR table).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pd {
    mrs: u32,
}

/// Engine-wide counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GlobalStats {
    /// Verbs admin commands executed.
    pub admin_commands: u64,
    /// Verbs admin commands that completed with an error status.
    pub admin_failures: u64,
    /// Verbs doorbell writes to objects that do not exist.
    pub bad_doorbells: u64,
    /// RoCEv2 frames handed to the engine.
    pub frames_received: u64,
    /// Received frames dropped (malformed, wrong address, unknown QP).
    pub frames_dropped: u64,
    /// RoCEv2 frames the engine sent.
    pub frames_sent: u64,
    /// Packets sent between QPs of this device without the wire (every packet of
    /// a train counts; an ACK replaced in the queue by a newer one does not).
    pub loopback_packets: u64,
    /// Packets the engine could not encode (an engine bug if ever non-zero).
    pub encode_errors: u64,
}

/// Everything [`Verbs::stats`] reports (serde-serializable).
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerbsStats {
    /// Engine-wide counters.
    pub global: GlobalStats,
    /// Protection domains in use.
    pub pds: u32,
    /// Memory regions in use.
    pub mrs: u32,
    /// Page entries held by all MRs.
    pub mr_pages: u64,
    /// Counters of every QP.
    pub qps: Vec<QpStats>,
    /// Counters of every CQ.
    pub cqs: Vec<CqStats>,
    /// Connection manager counters.
    pub cm: CmStats,
}

/// Whether `p` is addressed to `port`'s own address of its family (loopback).
pub(crate) fn addressed_to(port: &Port, p: &RocePacket) -> bool {
    match &p.ip6 {
        Some(v6) => port.ipv6 == Some(v6.dst),
        None => p.ip.dst == port.ip,
    }
}

/// The verbs engine.
#[derive(Debug)]
pub struct Verbs {
    limits: VerbsLimits,
    port: Port,
    /// The Ethernet MTU, from which the connection manager derives path MTUs.
    eth_mtu: u32,
    cm: cm::Cm,
    pds: Table<Pd>,
    cqs: Table<Cq>,
    qps: Table<Qp>,
    mrs: MrTable,
    loopback: VecDeque<transport::OutPacket>,
    /// An empty queue kept with its capacity: `drain_loopback` takes the
    /// loopback queue out and puts this one in its place (no allocation per call).
    loopback_spare: VecDeque<transport::OutPacket>,
    /// The packets of the QP being run, kept between calls so that running a QP
    /// allocates nothing once the buffer has grown.
    out: Vec<transport::OutPacket>,
    stats: GlobalStats,
    /// Counts service calls (doorbell, poll, received frame, admin command).
    service: u64,
    /// A QP left send WQEs unfetched in the last service call: the next poll fetches.
    more_work: bool,
}

impl Verbs {
    /// An engine with the given limits (clamped to what the ABI can express) and no objects.
    pub fn new(limits: VerbsLimits) -> Self {
        let limits = limits.clamped();
        Verbs {
            pds: Table::new(limits.max_pd),
            cqs: Table::new(limits.max_cq),
            qps: Table::with_range(FIRST_QPN, limits.max_qp + FIRST_QPN - 1),
            mrs: MrTable::new(limits.max_mr),
            limits,
            port: Port::default(),
            eth_mtu: rnic_contract::eth::DEFAULT_MTU,
            cm: cm::Cm::default(),
            loopback: VecDeque::new(),
            loopback_spare: VecDeque::new(),
            out: Vec::new(),
            stats: GlobalStats::default(),
            service: 0,
            more_work: false,
        }
    }

    /// Loopback packets queued for delivery by the next service call.
    pub fn loopback_pending(&self) -> usize {
        self.loopback.iter().map(|o| o.packets() as usize).sum()
    }

    /// Whether a service call left work for the next [`Verbs::poll`]: send WQEs
    /// unfetched or loopback packets undelivered (the device asks to be polled at
    /// once).
    pub fn has_pending_work(&self) -> bool {
        self.more_work || !self.loopback.is_empty()
    }

    /// The limits in force (after clamping).
    pub fn limits(&self) -> &VerbsLimits {
        &self.limits
    }

    /// The MR table, read-only (inspection, benchmarks of the protection check).
    pub fn mr_table(&self) -> &MrTable {
        &self.mrs
    }

    /// Sets the port's MAC and IPv4 address (the device core calls this with its
    /// configured MAC; SET_PORT_ADDR lets the driver change both).
    pub fn set_port_addr(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        self.port.mac = mac;
        self.port.ip = ip;
        self.cm.port_changed();
    }

    /// Sets (or with `None` removes) the port's IPv6 address.
    pub fn set_port_ipv6(&mut self, ip: Option<[u8; 16]>) {
        self.port.ipv6 = ip;
        self.cm.port_changed();
    }

    /// The port's IPv6 address, if it has one.
    pub fn port_ipv6(&self) -> Option<[u8; 16]> {
        self.port.ipv6
    }

    /// The Ethernet MTU changed (`SET_MTU`, reset): connections offer the path MTU
    /// that fits it (`docs/device-spec.md` §3.14).
    pub fn set_eth_mtu(&mut self, mtu: u32) {
        self.eth_mtu = mtu;
    }

    /// The earliest connection-manager timer (retransmission, resolution), for the
    /// host's poll deadline.
    pub fn next_deadline(&self) -> Option<std::time::Duration> {
        self.cm.next_deadline()
    }

    /// The verbs port's MAC and IPv4 address.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Device reset: drops every object and all queue state. The port address is kept.
    pub fn reset(&mut self) {
        self.pds.clear();
        self.cqs.clear();
        self.qps.clear();
        self.mrs.clear();
        self.loopback.clear();
        self.cm.reset();
        self.stats = GlobalStats::default();
    }

    /// Counters, per QP and per CQ.
    pub fn stats(&self) -> VerbsStats {
        VerbsStats {
            global: self.stats.clone(),
            pds: self.pds.len(),
            mrs: self.mrs.len(),
            mr_pages: self.mrs.total_pages,
            qps: self.qps.iter().map(|(_, q)| q.stats()).collect(),
            cqs: self.cqs.iter().map(|(_, c)| c.stats()).collect(),
            cm: self.cm.stats(),
        }
    }

    /// Runs `f` on QP `qpn` with a context over the other tables, then routes the
    /// packets it produced.
    fn with_qp<R>(
        &mut self,
        env: &mut dyn DeviceEnv,
        qpn: u32,
        f: impl FnOnce(&mut Qp, &mut Ctx) -> R,
    ) -> Option<R> {
        let mut out = std::mem::take(&mut self.out);
        let r = {
            let qp = self.qps.get_mut(qpn)?;
            let mut cx = Ctx {
                env: &mut *env,
                mrs: &mut self.mrs,
                cqs: &mut self.cqs,
                out: &mut out,
                loopback: &mut self.loopback,
                loopback_packets: &mut self.stats.loopback_packets,
                port: &self.port,
                limits: &self.limits,
                service: self.service,
                more_work: &mut self.more_work,
            };
            f(qp, &mut cx)
        };
        self.route(env, qpn, &mut out);
        self.out = out;
        Some(r)
    }

    /// Sends the packets QP `qpn` produced: to the loopback queue, or encoded to
    /// the wire.
    fn route(&mut self, env: &mut dyn DeviceEnv, qpn: u32, out: &mut Vec<transport::OutPacket>) {
        for o in out.drain(..) {
            if self.is_to_port(&o.pkt) {
                self.stats.loopback_packets += u64::from(o.packets());
                self.loopback.push_back(o);
            } else if let Some(frame) = o.frame {
                self.stats.frames_sent += 1;
                env.transmit(Owner::Qp(qpn), &frame);
            } else if o.source.is_some() {
                // A payload left in guest memory is only ever made for loopback
                // packets (same predicate, same call): an engine bug.
                self.stats.encode_errors += 1;
                tracing::error!("verbs: a wire packet without its payload");
            } else {
                let p = o.pkt;
                match roce::encode(&p) {
                    Ok(frame) => {
                        self.stats.frames_sent += 1;
                        env.transmit(Owner::Qp(qpn), &frame);
                    }
                    Err(e) => {
                        self.stats.encode_errors += 1;
                        tracing::error!(error = %e, "verbs: could not encode a frame");
                    }
                }
            }
        }
    }

    /// Delivers queued loopback packets, at most `max_loopback_per_call` of them
    /// (a train counts as its packets and is split at the bound).
    ///
    /// Entries are delivered where they lie, in a queue taken out of the engine
    /// (no move of a packet out of the queue); what delivery emits goes to the
    /// engine's queue, which is taken in turn once the first is done, so packets
    /// are delivered in the order they were queued.
    fn drain_loopback(&mut self, env: &mut dyn DeviceEnv) {
        let mut budget = self.limits.max_loopback_per_call;
        if self.loopback.is_empty() {
            return;
        }
        let spare = std::mem::take(&mut self.loopback_spare);
        let mut q = std::mem::replace(&mut self.loopback, spare);
        while budget > 0 {
            if q.is_empty() {
                if self.loopback.is_empty() {
                    break;
                }
                std::mem::swap(&mut q, &mut self.loopback);
            }
            let Some(next) = q.front_mut() else {
                break;
            };
            let n = next.packets() as usize;
            if n > budget {
                let mut front = next.split_front(budget as u32);
                budget = 0;
                self.deliver_loopback(env, &mut front);
            } else {
                budget -= n;
                self.deliver_loopback(env, next);
                q.drain(..1);
            }
        }
        // What is left of the taken queue goes before what delivery emitted.
        if !q.is_empty() {
            q.append(&mut self.loopback);
            std::mem::swap(&mut q, &mut self.loopback);
        }
        self.loopback_spare = q;
    }

    /// One loopback queue entry: a packet, or a train of packets of one message.
    /// A train's packets that open a SEND or end a message with a completion go
    /// one by one; the packets between them (an RDMA WRITE's FIRST, MIDDLE and
    /// plain LAST packets, a SEND's MIDDLE packets) are placed together when the
    /// receiving QP's checks allow ([`qp::Qp`]'s `on_train`), else one by one,
    /// exactly as if they had been queued singly.
    fn deliver_loopback(&mut self, env: &mut dyn DeviceEnv, o: &mut transport::OutPacket) {
        let run_start = matches!(
            o.pkt.bth.opcode,
            roce::opcode::RDMA_WRITE_FIRST
                | roce::opcode::RDMA_WRITE_MIDDLE
                | roce::opcode::SEND_MIDDLE
        );
        if o.packets() > 1 && !run_start {
            let mut head = o.split_front(1);
            self.deliver_loopback(env, &mut head);
        }
        let tail = match &o.source {
            Some(s)
                if s.packets > 1
                    && !matches!(
                        s.last.opcode,
                        roce::opcode::RDMA_WRITE_MIDDLE
                            | roce::opcode::RDMA_WRITE_LAST
                            | roce::opcode::SEND_MIDDLE
                    ) =>
            {
                let run = o.split_front(s.packets - 1);
                Some(std::mem::replace(o, run))
            }
            _ => None,
        };
        match &o.source {
            Some(s) if s.packets > 1 => {
                if !self.deliver_train(env, &o.pkt, s) {
                    for i in 0..s.packets {
                        let (p, one) = o.packet(i);
                        if let Some(one) = &one {
                            self.deliver(env, &p, transport::Body::Guest(one));
                        }
                    }
                }
            }
            Some(s) => self.deliver(env, &o.pkt, transport::Body::Guest(s)),
            None => self.deliver(env, &o.pkt, transport::Body::Packet),
        }
        if let Some(mut t) = tail {
            self.deliver_loopback(env, &mut t);
        }
    }

    /// A train of MIDDLE packets placed at once by its QP; false (nothing changed)
    /// when its packets must go one by one.
    fn deliver_train(
        &mut self,
        env: &mut dyn DeviceEnv,
        p: &RocePacket,
        s: &transport::GuestPayload,
    ) -> bool {
        let qpn = p.bth.dest_qp;
        // The checks `deliver` makes of every packet, without their side effects
        // (a QP still waiting for its RTU takes its packets one by one).
        let ready = self.qps.get(qpn).is_some_and(|q| {
            let same_peer = match (&p.ip6, q.remote_ip6) {
                (Some(v6), Some(remote)) => v6.src == remote,
                (None, None) => q.remote_ip == p.ip.src,
                _ => false,
            };
            same_peer && matches!(q.state, QpState::Rts | QpState::Sqd)
        });
        if !ready {
            return false;
        }
        let r = self.with_qp(env, qpn, |qp, cx| qp.on_train(cx, p, s));
        match r {
            Some(Ok(fault)) => {
                if let Some(f) = fault {
                    self.with_qp(env, f.qpn, |qp, cx| qp.on_source_fault(cx, f.psn, f.status));
                }
                true
            }
            _ => false,
        }
    }

    /// Whether a packet is addressed to the port's own address of its family.
    fn is_to_port(&self, p: &RocePacket) -> bool {
        addressed_to(&self.port, p)
    }

    /// A decoded packet addressed to this port; `body` is where a request's
    /// payload is (every other packet carries its payload itself).
    fn deliver(&mut self, env: &mut dyn DeviceEnv, p: &RocePacket, body: transport::Body) {
        let qpn = p.bth.dest_qp;
        if p.bth.opcode == roce::opcode::UD_SEND_ONLY || qpn < FIRST_QPN {
            if p.bth.opcode == roce::opcode::UD_SEND_ONLY && qpn == rnic_contract::mad::GSI_QPN {
                self.cm_receive(env, p);
            } else {
                self.stats.frames_dropped += 1;
            }
            return;
        }
        let known = self.qps.get(qpn).is_some_and(|q| {
            let same_peer = match (&p.ip6, q.remote_ip6) {
                (Some(v6), Some(remote)) => v6.src == remote,
                (None, None) => q.remote_ip == p.ip.src,
                _ => false,
            };
            same_peer && q.state != QpState::Reset
        });
        if !known {
            self.stats.frames_dropped += 1;
            return;
        }
        // Passive side: the first RC packet on a QP whose REP is unanswered means
        // the peer got the REP and its RTU was lost (§3.14).
        if self.qps.get(qpn).is_some_and(|q| q.state == QpState::Rtr) {
            if let Some(id) = self.cm.waiting_for_rtu(qpn) {
                self.establish_passive(env, id);
            }
        }
        let opc = p.bth.opcode;
        let fault = self.with_qp(env, qpn, |qp, cx| {
            qp.stats.rx_packets += 1;
            if opc == roce::opcode::ACKNOWLEDGE {
                qp.on_ack(cx, p);
            } else if roce::opcode::is_response(opc) {
                if (roce::opcode::RDMA_READ_RESPONSE_FIRST..=roce::opcode::RDMA_READ_RESPONSE_ONLY)
                    .contains(&opc)
                {
                    qp.on_read_response(cx, p, body);
                }
            } else {
                return qp.on_request(cx, p, body);
            }
            None
        });
        if let Some(Some(f)) = fault {
            self.with_qp(env, f.qpn, |qp, cx| qp.on_source_fault(cx, f.psn, f.status));
        }
    }

    /// A frame from the wire.
    pub fn receive_frame(&mut self, env: &mut dyn DeviceEnv, frame: &[u8]) {
        self.service += 1;
        self.stats.frames_received += 1;
        match roce::decode_in_place(frame) {
            Ok((mut p, payload)) if self.is_to_port(&p) => {
                // An RC request's or READ response's payload is placed straight
                // from the frame (one copy); MADs keep theirs in the packet.
                let opc = p.bth.opcode;
                if opc == roce::opcode::UD_SEND_ONLY {
                    p.payload = frame[payload].to_vec();
                    self.deliver(env, &p, transport::Body::Packet);
                } else {
                    self.deliver(env, &p, transport::Body::Frame(&frame[payload]));
                }
            }
            Ok(_) => self.stats.frames_dropped += 1,
            Err(e) => {
                self.stats.frames_dropped += 1;
                tracing::debug!(error = %e, "verbs: dropped a frame");
            }
        }
        self.drain_loopback(env);
    }

    /// Timers: retransmission, RNR waits, time-based interrupt moderation, and any
    /// loopback traffic left over from a previous call.
    pub fn poll(&mut self, env: &mut dyn DeviceEnv) {
        self.service += 1;
        let fetch = std::mem::take(&mut self.more_work);
        for qpn in self.qps.handles() {
            self.with_qp(env, qpn, |qp, cx| {
                qp.on_timer(cx);
                if fetch && qp.sq_head != qp.sq_pi {
                    qp.kick_sq(cx);
                }
            });
        }
        for cqn in self.cqs.handles() {
            if let Some(cq) = self.cqs.get_mut(cqn) {
                cq.poll(env);
            }
        }
        self.cm_poll(env);
        self.drain_loopback(env);
    }

    /// A doorbell write at BAR0 `offset` (`0x2000..=0xFFFF`).
    pub fn doorbell(&mut self, env: &mut dyn DeviceEnv, offset: u64, value: u32) {
        self.service += 1;
        if offset & 3 != 0 {
            self.stats.bad_doorbells += 1;
            return;
        }
        if (verbs_db::QP_BASE..verbs_db::QP_END).contains(&offset) {
            let rel = offset - verbs_db::QP_BASE;
            let qpn = (rel / 8) as u32;
            let rq = rel % 8 == 4;
            let r = self.with_qp(env, qpn, |qp, cx| {
                if rq {
                    qp.rq_doorbell(cx, value);
                } else {
                    qp.sq_doorbell(cx, value);
                }
            });
            if r.is_none() {
                self.stats.bad_doorbells += 1;
            }
        } else if (verbs_db::CQ_BASE..verbs_db::CQ_END).contains(&offset) {
            let rel = offset - verbs_db::CQ_BASE;
            let cqn = (rel / 8) as u32;
            let Some(cq) = self.cqs.get_mut(cqn) else {
                self.stats.bad_doorbells += 1;
                return;
            };
            let ok = if rel % 8 == 4 {
                cq.arm(env, value)
            } else {
                cq.set_ci(value)
            };
            if !ok {
                self.stats.bad_doorbells += 1;
            }
        } else {
            self.stats.bad_doorbells += 1;
        }
        self.drain_loopback(env);
    }

    /// Executes admin command `opcode` (`0x10..=0x3F`) with its 56 operand bytes.
    /// Returns (result 0, result 1) or the failure status.
    pub fn admin(
        &mut self,
        env: &mut dyn DeviceEnv,
        opcode: u8,
        operands: &[u8; 56],
    ) -> Result<(u32, u32), AdminStatus> {
        self.service += 1;
        self.stats.admin_commands += 1;
        let r = self.admin_inner(env, opcode, operands);
        if let Err(s) = r {
            self.stats.admin_failures += 1;
            tracing::debug!(opcode, status = ?s, "verbs admin command failed");
        }
        self.drain_loopback(env);
        r
    }

    fn admin_inner(
        &mut self,
        env: &mut dyn DeviceEnv,
        opcode: u8,
        operand_bytes: &[u8; 56],
    ) -> Result<(u32, u32), AdminStatus> {
        use AdminStatus::*;
        let o = Record::new_unchecked(operand_bytes);
        let handle = o.u32(operands::handle::HANDLE);
        match opcode {
            op::QUERY_CAPS => {
                let out = o.u64(operands::query_caps::ADDR);
                env.dma_write(DmaScope::ADMIN, out, &self.limits.encode())
                    .map_err(|_| DmaError)?;
                Ok((QUERY_RECORD_SIZE as u32, 0))
            }
            op::CREATE_PD => self
                .pds
                .alloc(Pd::default())
                .map(|h| (h, 0))
                .ok_or(NoResources),
            op::DESTROY_PD => {
                let pdn = handle;
                let pd = self.pds.get(pdn).ok_or(InvalidHandle)?;
                let used = pd.mrs > 0 || self.qps.iter().any(|(_, q)| q.pdn == pdn);
                if used {
                    return Err(Busy);
                }
                self.pds.take(pdn);
                Ok((0, 0))
            }
            op::SET_PORT_ADDR => {
                let mac: [u8; 6] = o.array(operands::set_port_addr::MAC);
                if mac[0] & 1 != 0 {
                    return Err(InvalidParam);
                }
                self.set_port_addr(mac, o.array(operands::set_port_addr::IPV4));
                Ok((0, 0))
            }
            op::SET_PORT_ADDR6 => {
                let ip: [u8; 16] = o.array(operands::set_port_addr6::IPV6);
                if ip[0] == 0xFF {
                    return Err(InvalidParam);
                }
                self.set_port_ipv6((ip != [0; 16]).then_some(ip));
                Ok((0, 0))
            }
            op::CM_LISTEN..=op::CM_RELEASE => self.cm_admin(env, opcode, &o),
            op::CREATE_CQ => {
                let base = o.u64(operands::create_cq::BASE);
                let size = o.u32(operands::create_cq::ENTRIES);
                let vector = o.u16(operands::create_cq::VECTOR);
                let mod_count = o.u16(operands::create_cq::MOD_COUNT);
                let mod_usec = o.u32(operands::create_cq::MOD_TIME_US);
                self.check_ring(env, base, size, cqe::CQE_SIZE, self.limits.max_cqe, false)?;
                if vector >= self.limits.num_vectors {
                    return Err(InvalidParam);
                }
                let cqn = self
                    .cqs
                    .alloc(Cq::new(0, base, size, vector, mod_count, mod_usec))
                    .ok_or(NoResources)?;
                if let Some(cq) = self.cqs.get_mut(cqn) {
                    cq.cqn = cqn;
                }
                Ok((cqn, 0))
            }
            op::DESTROY_CQ => {
                let cqn = handle;
                self.cqs.get(cqn).ok_or(InvalidHandle)?;
                if self
                    .qps
                    .iter()
                    .any(|(_, q)| q.send_cqn == cqn || q.recv_cqn == cqn)
                {
                    return Err(Busy);
                }
                self.cqs.take(cqn);
                Ok((0, 0))
            }
            op::RESIZE_CQ => {
                let cqn = o.u32(operands::resize_cq::CQN);
                let base = o.u64(operands::resize_cq::BASE);
                let size = o.u32(operands::resize_cq::ENTRIES);
                self.cqs.get(cqn).ok_or(InvalidHandle)?;
                self.check_ring(env, base, size, cqe::CQE_SIZE, self.limits.max_cqe, false)?;
                let cq = self.cqs.get_mut(cqn).ok_or(InvalidHandle)?;
                if cq.pi.wrapping_sub(cq.ci) > size {
                    return Err(InvalidParam);
                }
                let n = cq.resize(env, base, size).map_err(|_| DmaError)?;
                Ok((n, 0))
            }
            op::MODIFY_CQ => {
                let cqn = o.u32(operands::modify_cq::CQN);
                let cq = self.cqs.get_mut(cqn).ok_or(InvalidHandle)?;
                cq.mod_count = o.u16(operands::modify_cq::MOD_COUNT);
                cq.mod_usec = o.u32(operands::modify_cq::MOD_TIME_US);
                Ok((0, 0))
            }
            op::CREATE_QP => self.create_qp(env, &o),
            op::MODIFY_QP => {
                let qpn = o.u32(operands::modify_qp::QPN);
                let attrs = ModifyAttrs::parse(operand_bytes);
                let r = self
                    .with_qp(env, qpn, |qp, cx| qp.modify(cx, &attrs))
                    .ok_or(InvalidHandle)?;
                match r {
                    Ok(()) => Ok((0, 0)),
                    Err(ModifyError::State) => Err(InvalidState),
                    Err(ModifyError::Param) => Err(InvalidParam),
                }
            }
            op::QUERY_QP => {
                let qpn = o.u32(operands::query_object::HANDLE);
                let out = o.u64(operands::query_object::ADDR);
                let qp = self.qps.get(qpn).ok_or(InvalidHandle)?;
                let (bytes, state) = (qp.query(), u32::from(qp.state.code()));
                env.dma_write(DmaScope::ADMIN, out, &bytes)
                    .map_err(|_| DmaError)?;
                Ok((state, 0))
            }
            op::DESTROY_QP => {
                let qpn = handle;
                self.qps.take(qpn).ok_or(InvalidHandle)?;
                self.loopback.retain(|o| o.pkt.bth.dest_qp != qpn);
                self.cm.qp_destroyed(qpn);
                Ok((0, 0))
            }
            op::REG_MR => self.reg_mr(env, &o),
            op::DEREG_MR => {
                let key = handle;
                let mr = self.mrs.remove(key >> 8).ok_or(InvalidHandle)?;
                if let Some(pd) = self.pds.get_mut(mr.pdn) {
                    pd.mrs -= 1;
                }
                Ok((0, 0))
            }
            op::ALLOC_FR_MR => {
                let pdn = o.u32(operands::alloc_fr_mr::PDN);
                let max_pages = o.u32(operands::alloc_fr_mr::MAX_PAGES);
                let key_byte = o.u8(operands::alloc_fr_mr::KEY_BYTE);
                self.pds.get(pdn).ok_or(InvalidHandle)?;
                if max_pages == 0 || max_pages > self.limits.max_mr_pages {
                    return Err(InvalidParam);
                }
                let key = self
                    .mrs
                    .insert(Mr {
                        key: u32::from(key_byte),
                        pdn,
                        access: 0,
                        state: MrState::Free,
                        fast_reg: Some(max_pages),
                        iova: 0,
                        length: 0,
                        fbo: 0,
                        page_shift: self.limits.min_page_shift,
                        pages: Vec::new(),
                    })
                    .ok_or(NoResources)?;
                if let Some(pd) = self.pds.get_mut(pdn) {
                    pd.mrs += 1;
                }
                Ok((key, key >> 8))
            }
            op::QUERY_MR => {
                let key = o.u32(operands::query_object::HANDLE);
                let out = o.u64(operands::query_object::ADDR);
                let mr = self.mrs.by_index(key >> 8).ok_or(InvalidHandle)?;
                let state = match mr.state {
                    MrState::Free => query_mr::STATE_FREE,
                    MrState::Valid => query_mr::STATE_VALID,
                };
                let mut b = [0u8; QUERY_RECORD_SIZE];
                let mut r = Record::new_unchecked(&mut b);
                r.set_u32(query_mr::KEY, mr.key);
                r.set_u32(query_mr::PDN, mr.pdn);
                r.set_u32(query_mr::ACCESS, mr.access);
                r.set_u8(query_mr::STATE, state);
                r.set_u8(query_mr::FAST_REG, u8::from(mr.fast_reg.is_some()));
                r.set_u8(query_mr::PAGE_SHIFT, mr.page_shift);
                r.set_u64(query_mr::IOVA, mr.iova);
                r.set_u64(query_mr::LENGTH, mr.length);
                r.set_u32(query_mr::PAGE_COUNT, mr.pages.len() as u32);
                r.set_u32(query_mr::FBO, mr.fbo as u32);
                r.set_u32(query_mr::MAX_PAGES, mr.fast_reg.unwrap_or(0));
                let state = u32::from(state);
                env.dma_write(DmaScope::ADMIN, out, &b)
                    .map_err(|_| DmaError)?;
                Ok((state, 0))
            }
            _ => Err(InvalidOpcode),
        }
    }

    /// Validates a ring: power-of-two size in `min..=max`, aligned, inside guest RAM.
    fn check_ring(
        &self,
        env: &mut dyn DeviceEnv,
        base: u64,
        size: u32,
        entry: usize,
        max: u32,
        allow_zero: bool,
    ) -> Result<(), AdminStatus> {
        if allow_zero && size == 0 {
            return Ok(());
        }
        if size < 2 || !size.is_power_of_two() || base & (entry as u64 - 1) != 0 {
            return Err(AdminStatus::InvalidParam);
        }
        if size > max {
            return Err(AdminStatus::NoResources);
        }
        env.dma_check(base, u64::from(size) * entry as u64)
            .map_err(|_| AdminStatus::InvalidParam)
    }

    fn create_qp(
        &mut self,
        env: &mut dyn DeviceEnv,
        o: &Record<&[u8; 56]>,
    ) -> Result<(u32, u32), AdminStatus> {
        use operands::create_qp as f;
        use AdminStatus::*;
        let flags = o.u8(f::FLAGS);
        let c = QpConfig {
            pdn: o.u32(f::PDN),
            send_cqn: o.u32(f::SEND_CQN),
            recv_cqn: o.u32(f::RECV_CQN),
            sq_size: o.u32(f::SQ_ENTRIES),
            rq_size: o.u32(f::RQ_ENTRIES),
            sq_base: o.u64(f::SQ_BASE),
            rq_base: o.u64(f::RQ_BASE),
            max_send_sge: o.u8(f::MAX_SEND_SGE),
            max_recv_sge: o.u8(f::MAX_RECV_SGE),
            max_inline: u32::from(o.u16(f::MAX_INLINE)),
            sig_all: flags & f::FLAG_SQ_SIG_ALL != 0,
        };
        if o.u8(f::QP_TYPE) != f::QP_TYPE_RC || flags & !f::FLAG_SQ_SIG_ALL != 0 {
            return Err(InvalidParam);
        }
        self.pds.get(c.pdn).ok_or(InvalidHandle)?;
        self.cqs.get(c.send_cqn).ok_or(InvalidHandle)?;
        self.cqs.get(c.recv_cqn).ok_or(InvalidHandle)?;
        if c.max_send_sge > wqe::MAX_SGE
            || c.max_recv_sge > wqe::MAX_SGE
            || c.max_inline > wqe::MAX_INLINE
        {
            return Err(InvalidParam);
        }
        self.check_ring(
            env,
            c.sq_base,
            c.sq_size,
            wqe::WQE_SIZE,
            self.limits.max_qp_wr,
            false,
        )?;
        self.check_ring(
            env,
            c.rq_base,
            c.rq_size,
            wqe::WQE_SIZE,
            self.limits.max_qp_wr,
            true,
        )?;
        let qpn = self.qps.alloc(Qp::new(0, c)).ok_or(NoResources)?;
        if let Some(qp) = self.qps.get_mut(qpn) {
            qp.qpn = qpn;
        }
        Ok((qpn, 0))
    }

    fn reg_mr(
        &mut self,
        env: &mut dyn DeviceEnv,
        o: &Record<&[u8; 56]>,
    ) -> Result<(u32, u32), AdminStatus> {
        use operands::reg_mr as f;
        use AdminStatus::*;
        let pdn = o.u32(f::PDN);
        let acc = o.u32(f::ACCESS);
        let iova = o.u64(f::IOVA);
        let length = o.u64(f::LENGTH);
        let list = o.u64(f::PAGE_LIST);
        let count = o.u32(f::PAGE_COUNT);
        let fbo = u64::from(o.u32(f::FBO));
        let shift = o.u8(f::PAGE_SHIFT);
        let key_byte = o.u8(f::KEY_BYTE);
        self.pds.get(pdn).ok_or(InvalidHandle)?;
        if acc & !access::ALL != 0
            || (acc & access::REMOTE_WRITE != 0 && acc & access::LOCAL_WRITE == 0)
            || shift < self.limits.min_page_shift
            || shift > self.limits.max_page_shift
            || fbo >= 1u64 << shift
            || iova.checked_add(length).is_none()
            || pages_needed(fbo, length, shift) != Some(u64::from(count))
        {
            return Err(InvalidParam);
        }
        if count > self.limits.max_mr_pages
            || self.mrs.total_pages + u64::from(count) > self.limits.max_total_pages
        {
            return Err(NoResources);
        }
        // The index the MR will get: the page list reads are attributed to it.
        let index = self.mrs.next_index().ok_or(NoResources)?;
        let scope = DmaScope::ADMIN.with_mr(index);
        let pages = load_page_list(env, scope, list, count, shift).map_err(|e| match e {
            mr::PageListError::Dma(_) => DmaError,
            mr::PageListError::BadPage => InvalidParam,
        })?;
        let key = self
            .mrs
            .insert(Mr {
                key: u32::from(key_byte),
                pdn,
                access: acc,
                state: MrState::Valid,
                fast_reg: None,
                iova,
                length,
                fbo,
                page_shift: shift,
                pages,
            })
            .ok_or(NoResources)?;
        debug_assert_eq!(key >> 8, index);
        if let Some(pd) = self.pds.get_mut(pdn) {
            pd.mrs += 1;
        }
        Ok((key, key >> 8))
    }
}
