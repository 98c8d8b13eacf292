//! The RC transport: requester (segmentation, PSNs, ACK/NAK handling, go-back-N
//! retransmission, RDMA READ responses) and responder (expected PSN, duplicate
//! detection, data placement, protection checks, ACK/NAK generation).
use rnic_contract::event::qp_error_cause;

use super::async_event::AsyncEvent;
use super::mr::{pages_needed, Mr, MrError, MrState, Need};
use super::qp::{mr_err_code, Ctx, InMsg, Qp, RqWqe, Sge, SgeList, SqWqe};
use crate::env::{CopyError, DeviceEnv, DmaScope};
use crate::roce::{
    opcode as op, psn_add, psn_cmp, psn_distance, syndrome, Aeth, AethKind, Bth, EthHeader,
    Ipv4Info, Reth, RocePacket, DEFAULT_PKEY, DEFAULT_TTL,
};
use rnic_contract::cqe::{self, CqeRepr, WcStatus};
use rnic_contract::verbs::{access, QpState, RNR_TIMER_US};
use rnic_contract::wqe;
use std::cmp::Ordering;
use std::time::Duration;

/// Why moving data between guest memory and a packet failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XferError {
    Prot(MrError),
    Dma,
    Length,
}

/// On whose behalf a transfer runs: the QP (fault scope of the DMA) and its PD
/// (protection check).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Who {
    pub qpn: u32,
    pub pdn: u32,
}

impl Who {
    fn scope(self, mr_index: u32) -> DmaScope {
        DmaScope::qp(self.qpn).with_mr(mr_index)
    }
}

/// Where the payload of a loopback packet (or train of packets) is: still in the
/// sender's guest memory, behind its SGEs. The payload moves once, straight from
/// there into the destination, when the receiving QP has placed it
/// (`docs/device-spec.md` §6).
///
/// One loopback queue entry stands for a *train*: `packets` consecutive packets of
/// one message, exactly those the requester would have sent one by one (same PSNs,
/// opcodes, headers and ACK requests). Every packet but the train's last carries
/// `mtu` bytes. The train's first packet is the entry's `pkt`; its last packet's
/// varying header fields are in `last`; packets in between are MIDDLE packets
/// without optional headers. A train ends where the requester sets an ACK request,
/// so the responder answers a train as it would its packets.
#[derive(Clone, Debug)]
pub(crate) struct GuestPayload {
    /// The sending QP and its PD (the lkey check and the DMA fault scope).
    pub who: Who,
    /// The send WQE's SGEs, or for RDMA READ responses one element naming the
    /// responder's MR range (`lkey` = the rkey of the request).
    pub sges: SgeList,
    /// The access the SGEs are checked for when the payload is read: `LocalRead`
    /// (SEND and WRITE data) or `RemoteRead` (READ response data).
    pub need: Need,
    /// Byte offset of the train's payload in the SGE list.
    pub offset: u64,
    /// Payload length in bytes (all packets of the train).
    pub len: usize,
    /// Packets in the train (at least 1).
    pub packets: u32,
    /// Payload bytes of every packet but the last (the sender's path MTU).
    pub mtu: u32,
    /// Header fields of the train's last packet.
    pub last: LastHeader,
}

/// The header fields that differ between the packets of a train, as the train's
/// last packet carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LastHeader {
    /// BTH opcode.
    pub opcode: u8,
    /// Immediate data.
    pub imm: Option<u32>,
    /// Key to invalidate.
    pub ieth: Option<u32>,
    /// BTH solicited-event bit.
    pub solicited: bool,
    /// BTH acknowledge-request bit.
    pub ack_req: bool,
    /// ACK extended transport header (READ responses).
    pub aeth: Option<Aeth>,
}

impl LastHeader {
    fn of(p: &RocePacket) -> Self {
        LastHeader {
            opcode: p.bth.opcode,
            imm: p.imm,
            ieth: p.ieth,
            solicited: p.bth.solicited,
            ack_req: p.bth.ack_req,
            aeth: p.aeth,
        }
    }

    fn apply(self, p: &mut RocePacket) {
        p.bth.opcode = self.opcode;
        p.imm = self.imm;
        p.ieth = self.ieth;
        p.bth.solicited = self.solicited;
        p.bth.ack_req = self.ack_req;
        p.aeth = self.aeth;
    }
}

impl OutPacket {
    /// Packets this entry stands for (a loopback train may stand for many).
    pub(crate) fn packets(&self) -> u32 {
        self.source.as_ref().map_or(1, |s| s.packets)
    }

    /// Packet `i` of a loopback train (`i < packets()`) as the requester would
    /// have sent it alone: its headers and where its payload is.
    pub(crate) fn packet(&self, i: u32) -> (RocePacket, Option<GuestPayload>) {
        let Some(s) = &self.source else {
            return (self.pkt.clone(), None);
        };
        let mut p = self.pkt.clone();
        let mid = u64::from(s.mtu);
        let off = u64::from(i) * mid;
        let len = if i + 1 == s.packets {
            s.len - off as usize
        } else {
            s.mtu as usize
        };
        if i > 0 {
            p.bth.psn = psn_add(p.bth.psn, i);
            p.reth = None;
            LastHeader {
                opcode: middle_opcode(self.pkt.bth.opcode),
                ..LastHeader::default()
            }
            .apply(&mut p);
        }
        if i + 1 == s.packets {
            s.last.apply(&mut p);
        }
        let one = GuestPayload {
            offset: s.offset + off,
            len,
            packets: 1,
            last: LastHeader::of(&p),
            ..s.clone()
        };
        (p, Some(one))
    }

    /// Splits the first `k` packets (`0 < k < packets()`) off a loopback train:
    /// returns them as a train and keeps the rest.
    pub(crate) fn split_front(&mut self, k: u32) -> OutPacket {
        let (before, _) = self.packet(k - 1);
        let (rest_first, _) = self.packet(k);
        let mut front = OutPacket {
            from: self.from,
            pkt: std::mem::replace(&mut self.pkt, rest_first),
            source: self.source.clone(),
            frame: None,
        };
        if let (Some(f), Some(s)) = (&mut front.source, &mut self.source) {
            let moved = u64::from(k) * u64::from(s.mtu);
            f.packets = k;
            f.len = moved as usize;
            f.last = LastHeader::of(&before);
            s.packets -= k;
            s.offset += moved;
            s.len -= moved as usize;
        }
        front
    }
}

/// The MIDDLE opcode of the message class (SEND, RDMA WRITE or READ response) of
/// `opcode`.
fn middle_opcode(opcode: u8) -> u8 {
    if (op::RDMA_READ_RESPONSE_FIRST..=op::RDMA_READ_RESPONSE_ONLY).contains(&opcode) {
        op::RDMA_READ_RESPONSE_MIDDLE
    } else if (op::RDMA_WRITE_FIRST..=op::RDMA_WRITE_ONLY_WITH_IMMEDIATE).contains(&opcode) {
        op::RDMA_WRITE_MIDDLE
    } else {
        op::SEND_MIDDLE
    }
}

/// A packet a QP produced, on its way to the wire or the loopback queue.
#[derive(Clone, Debug)]
pub(crate) struct OutPacket {
    /// The QP that sent it (QP1 for connection manager MADs).
    pub from: u32,
    /// Headers and, unless `source` is set, the payload.
    pub pkt: RocePacket,
    /// For loopback request packets: the payload is in guest memory here and
    /// `pkt.payload` is empty.
    pub source: Option<GuestPayload>,
    /// For wire request packets: the encoded frame, its payload gathered straight
    /// into it (`pkt.payload` is empty).
    pub frame: Option<Vec<u8>>,
}

/// Where the payload of a received request is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Body<'a> {
    /// In the packet's own `payload`.
    Packet,
    /// In the received frame, which has passed every check of
    /// [`crate::roce::decode_in_place`] (the packet's `payload` is empty).
    Frame(&'a [u8]),
    /// In the sender's guest memory (loopback; the packet's `payload` is empty).
    Guest(&'a GuestPayload),
}

/// A loopback packet whose payload could not be read from its sender's memory when
/// it was placed: the sender completes the WQE that carries `psn` with `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceFault {
    /// The sending QP.
    pub qpn: u32,
    /// PSN of the packet.
    pub psn: u32,
    /// Completion status and vendor error of the WQE.
    pub status: (WcStatus, u32),
}

/// One physically contiguous piece of a transfer, after its protection check.
#[derive(Clone, Copy, Debug)]
struct Piece {
    scope: DmaScope,
    gpa: u64,
    len: usize,
}

/// The payload of a received packet: bytes (from the wire, inline data, READ
/// responses) or the sender's checked guest memory (loopback).
#[derive(Clone, Copy, Debug)]
enum Payload<'a> {
    Bytes(&'a [u8]),
    Guest(&'a [Piece]),
}

/// A SEND or WRITE packet that passed the responder's sequence checks: its
/// payload, the payload's length and its position in the message.
#[derive(Clone, Copy, Debug)]
struct Arrival<'a> {
    payload: Payload<'a>,
    len: usize,
    first: bool,
    last: bool,
}

/// Why placing a payload failed.
#[derive(Clone, Copy, Debug)]
enum PlaceError {
    /// Reading the sender's memory failed (loopback only).
    Source(XferError),
    /// Writing the destination failed.
    Destination(XferError),
}

/// The checked pieces of one transfer, physically contiguous runs merged (a run
/// of contiguous pages is one piece, so one copy). The first two live inline: a
/// packet's transfer (one page, or two when it crosses a page boundary)
/// allocates nothing, and the list stays small enough to move without a
/// `memcpy` call.
#[derive(Debug)]
struct Pieces {
    inline: [Piece; Pieces::INLINE],
    n: usize,
    spill: Vec<Piece>,
}

impl Pieces {
    const INLINE: usize = 2;

    fn new() -> Self {
        const NONE: Piece = Piece {
            scope: DmaScope::ADMIN,
            gpa: 0,
            len: 0,
        };
        Pieces {
            inline: [NONE; Pieces::INLINE],
            n: 0,
            spill: Vec::new(),
        }
    }

    fn as_slice(&self) -> &[Piece] {
        if self.spill.is_empty() {
            &self.inline[..self.n]
        } else {
            &self.spill
        }
    }

    /// Appends a piece, merged into the previous one when it continues it in
    /// guest memory with the same scope.
    fn push(&mut self, p: Piece) {
        let prev = if self.spill.is_empty() {
            self.n.checked_sub(1).map(|i| &mut self.inline[i])
        } else {
            self.spill.last_mut()
        };
        if let Some(prev) = prev {
            if prev.scope == p.scope && prev.gpa.checked_add(prev.len as u64) == Some(p.gpa) {
                prev.len += p.len;
                return;
            }
        }
        if self.spill.is_empty() && self.n < Pieces::INLINE {
            self.inline[self.n] = p;
            self.n += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline[..self.n]);
            }
            self.spill.push(p);
        }
    }
}

/// The checked pieces of `[offset, offset+len)` of an SGE list. (Inlined: the
/// list is built in the caller's frame instead of being moved out of this one.)
#[inline(always)]
fn sge_pieces(
    cx: &mut Ctx,
    who: Who,
    sges: &[Sge],
    offset: u64,
    len: usize,
    need: Need,
) -> Result<Pieces, XferError> {
    let mut v = Pieces::new();
    walk_sges(cx, who.pdn, sges, offset, len, need, |_, mr, gpa, _, n| {
        v.push(Piece {
            scope: who.scope(mr),
            gpa,
            len: n,
        });
        Ok(())
    })?;
    Ok(v)
}

/// The checked pieces of `[va, va+len)` of the MR named by `key` (inlined, as
/// [`sge_pieces`]).
#[inline(always)]
fn mr_pieces(
    cx: &Ctx,
    who: Who,
    key: u32,
    need: Need,
    va: u64,
    len: usize,
) -> Result<Pieces, XferError> {
    let scope = who.scope(key >> 8);
    let mr = cx
        .mrs
        .check(key, who.pdn, need, va, len as u64)
        .map_err(XferError::Prot)?;
    let mut v = Pieces::new();
    let _ = mr.for_each_piece::<()>(va, len as u64, |gpa, l| {
        v.push(Piece {
            scope,
            gpa,
            len: l as usize,
        });
        Ok(())
    });
    Ok(v)
}

/// Moves `payload` into the checked destination pieces `dst` (whose lengths add up
/// to the payload's): one DMA write per piece, or one guest-to-guest copy per
/// overlap of a source and a destination piece.
fn place(cx: &mut Ctx, dst: &[Piece], payload: Payload) -> Result<(), PlaceError> {
    match payload {
        Payload::Bytes(data) => {
            let mut pos = 0;
            for d in dst {
                cx.env
                    .dma_write(d.scope, d.gpa, &data[pos..pos + d.len])
                    .map_err(|_| PlaceError::Destination(XferError::Dma))?;
                pos += d.len;
            }
            Ok(())
        }
        Payload::Guest(src) => {
            let (mut si, mut so, mut di, mut doff) = (0, 0, 0, 0);
            while si < src.len() && di < dst.len() {
                let (s, d) = (src[si], dst[di]);
                let n = (s.len - so).min(d.len - doff);
                cx.env
                    .dma_copy(s.scope, s.gpa + so as u64, d.scope, d.gpa + doff as u64, n)
                    .map_err(|e| match e {
                        CopyError::Source(_) => PlaceError::Source(XferError::Dma),
                        CopyError::Destination(_) => PlaceError::Destination(XferError::Dma),
                    })?;
                so += n;
                doff += n;
                if so == s.len {
                    (si, so) = (si + 1, 0);
                }
                if doff == d.len {
                    (di, doff) = (di + 1, 0);
                }
            }
            Ok(())
        }
    }
}

/// Reads `out.len()` bytes at byte `offset` of an SGE list into `out`.
fn gather_into(
    cx: &mut Ctx,
    who: Who,
    sges: &[Sge],
    offset: u64,
    out: &mut [u8],
) -> Result<(), XferError> {
    walk_sges(
        cx,
        who.pdn,
        sges,
        offset,
        out.len(),
        Need::LocalRead,
        |env, mr, gpa, pos, n| {
            env.dma_read(who.scope(mr), gpa, &mut out[pos..pos + n])
                .map_err(|_| XferError::Dma)
        },
    )
}

/// The requester's lkey check of `[offset, offset+len)` of an SGE list: each SGE's
/// key, PD, access and bounds, without walking its pages (no access).
fn check_sges(
    cx: &mut Ctx,
    who: Who,
    sges: &[Sge],
    offset: u64,
    len: usize,
) -> Result<(), XferError> {
    walk_segments(
        cx,
        who.pdn,
        sges,
        offset,
        len,
        Need::LocalRead,
        |_, _, _, _, _, _| Ok(()),
    )
}

/// Calls `f(env, mr index, guest address, position, length)` for each physically
/// contiguous piece of `[offset, offset+len)` of the SGE list, after the
/// protection check of each SGE.
fn walk_sges(
    cx: &mut Ctx,
    pdn: u32,
    sges: &[Sge],
    offset: u64,
    len: usize,
    need: Need,
    mut f: impl FnMut(&mut dyn DeviceEnv, u32, u64, usize, usize) -> Result<(), XferError>,
) -> Result<(), XferError> {
    walk_segments(
        cx,
        pdn,
        sges,
        offset,
        len,
        need,
        |env, lkey, mr, va, n, mut pos| {
            mr.for_each_piece(va, n, |gpa, l| {
                f(env, lkey >> 8, gpa, pos, l as usize)?;
                pos += l as usize;
                Ok(())
            })
        },
    )
}

/// Calls `f(env, lkey, checked MR, va, length, position)` for the part of each SGE
/// that `[offset, offset+len)` of the list covers, after that part's protection
/// check; `Length` if the list is shorter.
fn walk_segments(
    cx: &mut Ctx,
    pdn: u32,
    sges: &[Sge],
    mut offset: u64,
    len: usize,
    need: Need,
    mut f: impl FnMut(&mut dyn DeviceEnv, u32, &Mr, u64, u64, usize) -> Result<(), XferError>,
) -> Result<(), XferError> {
    let mut pos = 0usize;
    for s in sges {
        if pos == len {
            break;
        }
        let slen = u64::from(s.len);
        if offset >= slen {
            offset -= slen;
            continue;
        }
        let n = (slen - offset).min((len - pos) as u64);
        let va = s
            .addr
            .checked_add(offset)
            .ok_or(XferError::Prot(MrError::Bounds))?;
        let mr = cx
            .mrs
            .check(s.lkey, pdn, need, va, n)
            .map_err(XferError::Prot)?;
        f(&mut *cx.env, s.lkey, mr, va, n, pos)?;
        pos += n as usize;
        offset = 0;
    }
    if pos == len {
        Ok(())
    } else {
        Err(XferError::Length)
    }
}

/// Reads `[va, va+buf.len())` of the MR named by `rkey` for a remote reader into
/// `buf`, after the protection check (no byte is read if it fails).
fn mr_read(cx: &mut Ctx, who: Who, rkey: u32, va: u64, buf: &mut [u8]) -> Result<(), XferError> {
    let pieces = mr_pieces(cx, who, rkey, Need::RemoteRead, va, buf.len())?;
    let mut pos = 0;
    for p in pieces.as_slice() {
        cx.env
            .dma_read(p.scope, p.gpa, &mut buf[pos..pos + p.len])
            .map_err(|_| XferError::Dma)?;
        pos += p.len;
    }
    Ok(())
}

fn xfer_status(e: XferError) -> (WcStatus, u32) {
    match e {
        XferError::Prot(m) => (WcStatus::LocalProtectionError, mr_err_code(m)),
        XferError::Dma => (WcStatus::Fatal, 0),
        XferError::Length => (WcStatus::LocalLengthError, 0),
    }
}

/// `now + d` without overflow.
fn later(now: Duration, d: Duration) -> Duration {
    now.checked_add(d).unwrap_or(Duration::MAX)
}

/// Local ACK timeout of the IBA encoding: 4.096 µs × 2^t; 0 means infinite.
fn ack_timeout(t: u8) -> Option<Duration> {
    (t != 0).then(|| Duration::from_nanos(4096u64 << t.min(31)))
}

impl Qp {
    fn who(&self) -> Who {
        Who {
            qpn: self.qpn,
            pdn: self.pdn,
        }
    }

    fn new_pkt(&self, cx: &Ctx, opcode: u8, psn: u32) -> RocePacket {
        RocePacket {
            eth: EthHeader {
                dst: self.remote_mac,
                src: cx.port.mac,
            },
            ip: Ipv4Info {
                src: cx.port.ip,
                dst: self.remote_ip,
                ttl: DEFAULT_TTL,
                dscp_ecn: 0,
                id: 0,
            },
            // An IPv6 address vector: the frame goes over IPv6 from the port's
            // IPv6 address (MODIFY_QP refuses AV6 while the port has none).
            ip6: self.remote_ip6.map(|dst| crate::roce::Ipv6Info {
                src: cx.port.ipv6.unwrap_or_default(),
                dst,
                hop_limit: DEFAULT_TTL,
                ..crate::roce::Ipv6Info::default()
            }),
            udp_src_port: 0xC000 | (self.qpn & 0x3FFF) as u16,
            bth: Bth {
                opcode,
                pkey: DEFAULT_PKEY,
                dest_qp: self.dest_qpn,
                psn,
                ..Bth::default()
            },
            ..RocePacket::default()
        }
    }

    fn emit(&mut self, cx: &mut Ctx, p: RocePacket) {
        self.emit_from(cx, p, None);
    }

    /// Emits `p`; with `source`, its payload stays in guest memory until the
    /// receiving QP places it (loopback).
    fn emit_from(&mut self, cx: &mut Ctx, p: RocePacket, mut source: Option<GuestPayload>) {
        self.stats.tx_packets += source.as_ref().map_or(1, |s| u64::from(s.packets));
        self.stats.tx_bytes += source.as_ref().map_or(p.payload.len(), |s| s.len) as u64;
        if let Some(g) = &mut source {
            if g.packets == 1 {
                g.last = LastHeader::of(&p);
            }
        }
        if !super::addressed_to(cx.port, &p) {
            cx.out.push(OutPacket {
                from: self.qpn,
                pkt: p,
                source,
                frame: None,
            });
            return;
        }
        if let Some(back) = cx.loopback.back_mut() {
            // (ACKs are merged into a queued ACK before they are built:
            // `coalesce_ack`.) The next packets of the train the previous entry ended (no ACK
            // request in between): the train grows instead of a new entry.
            if let (
                OutPacket {
                    pkt: first,
                    source: Some(t),
                    frame: None,
                    from,
                },
                Some(g),
            ) = (back, &source)
            {
                let follows = *from == self.qpn
                    && t.who.qpn == g.who.qpn
                    && t.sges.same(&g.sges)
                    && t.mtu == g.mtu
                    && t.len == t.packets as usize * t.mtu as usize
                    && t.offset + t.len as u64 == g.offset
                    && !t.last.ack_req
                    && first.bth.dest_qp == p.bth.dest_qp
                    && psn_add(first.bth.psn, t.packets) == p.bth.psn;
                if follows {
                    t.packets += g.packets;
                    t.len += g.len;
                    t.last = g.last;
                    *cx.loopback_packets += u64::from(g.packets);
                    return;
                }
            }
        }
        *cx.loopback_packets += u64::from(source.as_ref().map_or(1, |s| s.packets));
        cx.loopback.push_back(OutPacket {
            from: self.qpn,
            pkt: p,
            source,
            frame: None,
        });
    }

    /// Emits a request packet already encoded into `frame` with `len` payload bytes.
    fn emit_frame(&mut self, cx: &mut Ctx, p: RocePacket, frame: Vec<u8>, len: usize) {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        cx.out.push(OutPacket {
            from: self.qpn,
            pkt: p,
            source: None,
            frame: Some(frame),
        });
    }

    /// A loopback packet of this QP could not read its payload when it was placed:
    /// the WQE carrying `psn` completes with `status` (and the QP fails, as when
    /// the payload cannot be read before sending).
    pub(crate) fn on_source_fault(&mut self, cx: &mut Ctx, psn: u32, status: (WcStatus, u32)) {
        let carrier = self.req.outstanding.iter().position(|w| {
            w.npkts > 0
                && psn_cmp(psn, w.first_psn) != Ordering::Less
                && psn_cmp(psn, w.last_psn()) != Ordering::Greater
        });
        let Some(i) = carrier else { return };
        if self.wqe_complete(&self.req.outstanding[i]) {
            return;
        }
        self.req.outstanding[i].error.get_or_insert(status);
        self.retire(cx);
        if matches!(self.state, QpState::Rts | QpState::Sqd) {
            self.rearm_timer(cx, false);
        }
    }

    // =====================================================================
    // Requester
    // =====================================================================

    /// Runs the send side: fetch new WQEs, transmit, retire.
    pub(crate) fn kick_sq(&mut self, cx: &mut Ctx) {
        if !matches!(self.state, QpState::Rts | QpState::Sqd) {
            return;
        }
        self.fetch_sq(cx);
        self.transmit(cx);
        self.retire(cx);
        if matches!(self.state, QpState::Rts | QpState::Sqd) {
            self.rearm_timer(cx, false);
            self.check_drained(cx);
        }
    }

    fn wqe_complete(&self, w: &SqWqe) -> bool {
        if w.is_local() {
            w.done
        } else if w.opcode == wqe::opcode::RDMA_READ {
            w.read_rcvd >= w.npkts
        } else {
            w.transmitted && psn_cmp(self.req.una, w.last_psn()) == Ordering::Greater
        }
    }

    fn in_window(&self, cx: &Ctx, psn: u32) -> bool {
        psn_cmp(psn, self.req.una) == Ordering::Less
            || psn_distance(self.req.una, psn) < cx.limits.max_inflight
    }

    fn note_sent(&mut self, psn: u32) {
        let next = psn_add(psn, 1);
        if psn_cmp(next, self.req.sent_hwm) == Ordering::Greater {
            self.req.sent_hwm = next;
        } else {
            self.stats.retransmitted_packets += 1;
        }
    }

    fn transmit(&mut self, cx: &mut Ctx) {
        if !matches!(self.state, QpState::Rts | QpState::Sqd) || self.req.rnr_until.is_some() {
            return;
        }
        // The loop reads each WQE where it lies (no copy per WQE): the queue is
        // taken out of the QP while it runs (nothing the loop calls touches the
        // QP's queue) and put back.
        let mut q = std::mem::take(&mut self.req.outstanding);
        self.transmit_from(cx, &mut q);
        self.req.outstanding = q;
    }

    /// The transmit loop over `q`, the QP's outstanding WQEs.
    fn transmit_from(&mut self, cx: &mut Ctx, q: &mut std::collections::VecDeque<SqWqe>) {
        let mtu = self.mtu();
        while self.req.send_idx < q.len() {
            let i = self.req.send_idx;
            if q[i].error.is_some() {
                break;
            }
            if q[i].flags & wqe::flags::FENCE != 0
                && q.iter()
                    .take(i)
                    .any(|w| w.opcode == wqe::opcode::RDMA_READ && w.read_rcvd < w.npkts)
            {
                break;
            }
            if q[i].is_local() {
                if !q[i].done {
                    self.exec_local(cx, &mut q[i]);
                    if q[i].error.is_some() {
                        break;
                    }
                }
                self.req.send_idx += 1;
                self.req.send_pkt = 0;
                continue;
            }
            let w = &q[i];
            if w.opcode == wqe::opcode::RDMA_READ {
                let psn = psn_add(w.first_psn, w.read_rcvd);
                if w.read_rcvd >= w.npkts {
                    self.req.send_idx += 1;
                    self.req.send_pkt = 0;
                    continue;
                }
                if !self.in_window(cx, psn) {
                    break;
                }
                let done = u64::from(w.read_rcvd) * u64::from(mtu);
                let mut p = self.new_pkt(cx, op::RDMA_READ_REQUEST, psn);
                p.reth = Some(Reth {
                    va: w.remote_addr.wrapping_add(done),
                    rkey: w.rkey,
                    dma_len: (u64::from(w.len) - done.min(u64::from(w.len))) as u32,
                });
                let last_psn = psn_add(w.first_psn, w.npkts - 1);
                self.emit(cx, p);
                // A READ request covers all PSNs of its responses.
                self.note_sent(last_psn);
                q[i].transmitted = true;
                self.req.send_idx += 1;
                self.req.send_pkt = 0;
                continue;
            }
            let (sent, error) = self.transmit_packets(cx, w, mtu);
            if sent {
                q[i].transmitted = true;
            }
            if let Some(e) = error {
                q[i].error = Some(e);
                break;
            }
            if self.req.send_pkt < q[i].npkts {
                break;
            }
            self.req.send_idx += 1;
            self.req.send_pkt = 0;
        }
    }

    /// Sends the data packets of SEND or RDMA WRITE `w` from the transmit cursor
    /// on, while the window allows. Returns whether a packet was sent and the
    /// error that stopped the WQE, if any.
    fn transmit_packets(
        &mut self,
        cx: &mut Ctx,
        w: &SqWqe,
        mtu: u32,
    ) -> (bool, Option<(WcStatus, u32)>) {
        let mut sent = false;
        let loopback = w.inline.is_none() && self.to_own_port(cx.port);
        while self.req.send_pkt < w.npkts {
            let k = self.req.send_pkt;
            let psn = psn_add(w.first_psn, k);
            if !self.in_window(cx, psn) {
                break;
            }
            if loopback {
                if let Some(m) = self.transmit_train(cx, w, k, mtu) {
                    sent = true;
                    self.req.send_pkt += m;
                    continue;
                }
            }
            let off = u64::from(k) * u64::from(mtu);
            let n = (u64::from(w.len) - off).min(u64::from(mtu)) as usize;
            let last = k + 1 == w.npkts;
            let mut p = self.data_header(cx, w, k);
            // Loopback: the payload stays where it is; the requester's lkey
            // check is made now and again when the responder places it (the
            // MR may be gone by then). The wire: gathered into the packet.
            let mut source = None;
            let mut gather_into_frame = false;
            let payload = match &w.inline {
                Some(d) => d[off as usize..off as usize + n].to_vec(),
                None if loopback => {
                    if let Err(e) = check_sges(cx, self.who(), &w.sges, off, n) {
                        return (sent, Some(xfer_status(e)));
                    }
                    source = Some(GuestPayload {
                        who: self.who(),
                        sges: w.sges.clone(),
                        need: Need::LocalRead,
                        offset: off,
                        len: n,
                        packets: 1,
                        mtu,
                        last: LastHeader::default(),
                    });
                    Vec::new()
                }
                None => {
                    gather_into_frame = true;
                    Vec::new()
                }
            };
            self.req.since_ackreq += 1;
            if last || self.req.since_ackreq >= (cx.limits.max_inflight / 2).max(1) {
                p.bth.ack_req = true;
                self.req.since_ackreq = 0;
            }
            p.payload = payload;
            if gather_into_frame {
                // The wire: the payload is read once, straight into the frame.
                let who = self.who();
                let frame =
                    crate::roce::encode_with(&p, n, |buf| gather_into(cx, who, &w.sges, off, buf));
                match frame {
                    Ok(Ok(frame)) => self.emit_frame(cx, p, frame, n),
                    Ok(Err(e)) => return (sent, Some(xfer_status(e))),
                    // An engine bug: the packet goes to the router, which
                    // counts it as an encoding error.
                    Err(_) => self.emit_from(cx, p, None),
                }
            } else {
                self.emit_from(cx, p, source);
            }
            self.note_sent(psn);
            sent = true;
            self.req.send_pkt += 1;
        }
        (sent, None)
    }

    /// Whether this QP's peer is the port itself (its packets go to the loopback
    /// queue: the router's test of a packet, made from the QP's address vector).
    fn to_own_port(&self, port: &super::Port) -> bool {
        match self.remote_ip6 {
            Some(v6) => port.ipv6 == Some(v6),
            None => self.remote_ip == port.ip,
        }
    }

    /// The headers of data packet `k` of SEND or RDMA WRITE `w` (no payload, no
    /// ACK request).
    fn data_header(&self, cx: &Ctx, w: &SqWqe, k: u32) -> RocePacket {
        let first = k == 0;
        let last = k + 1 == w.npkts;
        let opcode = packet_opcode(w.opcode, first, last);
        let mut p = self.new_pkt(cx, opcode, psn_add(w.first_psn, k));
        if first
            && matches!(
                w.opcode,
                wqe::opcode::RDMA_WRITE | wqe::opcode::RDMA_WRITE_WITH_IMM
            )
        {
            p.reth = Some(Reth {
                va: w.remote_addr,
                rkey: w.rkey,
                dma_len: w.len,
            });
        }
        if last {
            match w.opcode {
                wqe::opcode::SEND_WITH_IMM | wqe::opcode::RDMA_WRITE_WITH_IMM => {
                    p.imm = Some(w.imm_inv)
                }
                wqe::opcode::SEND_WITH_INV => p.ieth = Some(w.imm_inv),
                _ => {}
            }
            p.bth.solicited =
                w.flags & wqe::flags::SOLICITED != 0 && w.opcode != wqe::opcode::RDMA_WRITE;
        }
        p
    }

    /// Loopback: sends data packets `k..` of `w` whose payload stays in guest
    /// memory as one train, up to the next ACK request or the window's end, with
    /// one lkey check of their whole range. Returns the packets sent, or `None`
    /// (nothing sent) for a train of one packet or a range whose check fails: the
    /// packets then go one by one, which stops at the failing one exactly.
    fn transmit_train(&mut self, cx: &mut Ctx, w: &SqWqe, k: u32, mtu: u32) -> Option<u32> {
        let half = (cx.limits.max_inflight / 2).max(1);
        let (mut m, mut since, mut ack_req) = (0, self.req.since_ackreq, false);
        while k + m < w.npkts && self.in_window(cx, psn_add(w.first_psn, k + m)) {
            m += 1;
            since += 1;
            if k + m == w.npkts || since >= half {
                ack_req = true;
                break;
            }
        }
        if m < 2 {
            return None;
        }
        let off = u64::from(k) * u64::from(mtu);
        let len = (u64::from(w.len) - off).min(u64::from(m) * u64::from(mtu)) as usize;
        check_sges(cx, self.who(), &w.sges, off, len).ok()?;
        let mut end = self.data_header(cx, w, k + m - 1);
        end.bth.ack_req = ack_req;
        let first = self.data_header(cx, w, k);
        let source = GuestPayload {
            who: self.who(),
            sges: w.sges.clone(),
            need: Need::LocalRead,
            offset: off,
            len,
            packets: m,
            mtu,
            last: LastHeader::of(&end),
        };
        self.req.since_ackreq = if ack_req { 0 } else { since };
        for j in 0..m {
            self.note_sent(psn_add(first.bth.psn, j));
        }
        self.emit_from(cx, first, Some(source));
        Some(m)
    }

    /// FAST_REG and LOCAL_INV, executed in order when the transmit cursor reaches them.
    fn exec_local(&mut self, cx: &mut Ctx, slot: &mut SqWqe) {
        let result = if slot.opcode == wqe::opcode::FAST_REG {
            self.fast_register(cx, slot)
        } else {
            invalidate(cx, slot.imm_inv, self.pdn).map_err(|_| 0)
        };
        slot.transmitted = true;
        match result {
            Ok(()) => slot.done = true,
            Err(detail) => slot.error = Some((WcStatus::MemoryManagementError, detail)),
        }
    }

    fn fast_register(&mut self, cx: &mut Ctx, w: &SqWqe) -> Result<(), u32> {
        let f = w.fr;
        let index = f.key >> 8;
        let mr = cx.mrs.by_index(index).ok_or(1u32)?;
        let Some(max_pages) = mr.fast_reg else {
            return Err(2);
        };
        if mr.pdn != self.pdn {
            return Err(3);
        }
        if mr.state != MrState::Free {
            return Err(4);
        }
        if f.page_shift < cx.limits.min_page_shift
            || f.page_shift > cx.limits.max_page_shift
            || u64::from(f.fbo) >= 1u64 << f.page_shift
            || f.iova.checked_add(f.length).is_none()
            || f.access & !access::ALL != 0
            || (f.access & access::REMOTE_WRITE != 0 && f.access & access::LOCAL_WRITE == 0)
        {
            return Err(5);
        }
        if f.page_count > max_pages
            || pages_needed(u64::from(f.fbo), f.length, f.page_shift)
                != Some(u64::from(f.page_count))
        {
            return Err(6);
        }
        // The page budget is checked before the page list is read (bounded work:
        // a registration that cannot fit costs no DMA).
        let old_pages = mr.pages.len() as u64;
        if cx.mrs.total_pages - old_pages + u64::from(f.page_count) > cx.limits.max_total_pages {
            return Err(8);
        }
        let scope = DmaScope::qp(self.qpn).with_mr(index);
        let pages =
            super::mr::load_page_list(cx.env, scope, f.page_list, f.page_count, f.page_shift)
                .map_err(|_| 7u32)?;
        cx.mrs.set_pages(index, pages);
        if let Some(mr) = cx.mrs.by_index_mut(index) {
            mr.key = f.key;
            mr.access = f.access;
            mr.iova = f.iova;
            mr.length = f.length;
            mr.fbo = u64::from(f.fbo);
            mr.page_shift = f.page_shift;
            mr.state = MrState::Valid;
        }
        Ok(())
    }

    /// Retires completed WQEs from the head, in order.
    fn retire(&mut self, cx: &mut Ctx) {
        while let Some(w) = self.req.outstanding.front() {
            if let Some((status, vendor)) = w.error {
                let w = self.req.outstanding.pop_front().unwrap_or_default();
                self.req.send_idx = self.req.send_idx.saturating_sub(1);
                self.sq_retired = self.sq_retired.wrapping_add(1);
                let cqe = CqeRepr {
                    wr_id: w.wr_id,
                    opcode: w.cqe_opcode(),
                    status: status.code(),
                    vendor_err: vendor,
                    ..CqeRepr::default()
                };
                let written = self.complete(cx, false, cqe, true);
                self.fail(cx, written.unwrap_or(status.code()));
                return;
            }
            if !self.wqe_complete(w) {
                break;
            }
            let signaled = w.flags & wqe::flags::SIGNALED != 0 || self.sig_all;
            let cqe = CqeRepr {
                wr_id: w.wr_id,
                opcode: w.cqe_opcode(),
                byte_len: if w.is_local() { 0 } else { w.len },
                ..CqeRepr::default()
            };
            // Dropped where it lies (no move of the retired WQE out of the queue).
            self.req.outstanding.drain(..1);
            self.req.send_idx = self.req.send_idx.saturating_sub(1);
            self.sq_retired = self.sq_retired.wrapping_add(1);
            if signaled && !self.complete_checked(cx, false, cqe, false) {
                return;
            }
        }
    }

    fn rearm_timer(&mut self, cx: &mut Ctx, progress: bool) {
        let limit = self.req.send_idx + 1;
        let in_flight =
            self.req.outstanding.iter().take(limit).any(|w| {
                w.npkts > 0 && w.transmitted && w.error.is_none() && !self.wqe_complete(w)
            });
        if !in_flight || self.req.rnr_until.is_some() {
            self.req.timer = None;
        } else if progress || self.req.timer.is_none() {
            self.req.timer = ack_timeout(self.timeout).map(|d| later(cx.env.now(), d));
        }
    }

    /// Moves the transmit cursor back to `psn` (never forward).
    fn seek(&mut self, psn: u32) {
        let found = self.req.outstanding.iter().enumerate().find(|(_, w)| {
            w.npkts > 0
                && w.error.is_none()
                && !self.wqe_complete(w)
                && psn_cmp(w.last_psn(), psn) != Ordering::Less
        });
        let Some((i, w)) = found else {
            return;
        };
        let pkt = if w.opcode == wqe::opcode::RDMA_READ {
            0
        } else if psn_cmp(psn, w.first_psn) == Ordering::Greater {
            psn_distance(w.first_psn, psn)
        } else {
            0
        };
        if i < self.req.send_idx || (i == self.req.send_idx && pkt < self.req.send_pkt) {
            self.req.send_idx = i;
            self.req.send_pkt = pkt;
        }
    }

    /// Go back to the oldest unfinished packet (timeout).
    fn seek_oldest(&mut self) {
        let found = self
            .req
            .outstanding
            .iter()
            .enumerate()
            .find(|(_, w)| w.npkts > 0 && w.error.is_none() && !self.wqe_complete(w));
        if let Some((i, w)) = found {
            let pkt = if w.opcode == wqe::opcode::RDMA_READ {
                0
            } else if psn_cmp(self.req.una, w.first_psn) == Ordering::Greater {
                psn_distance(w.first_psn, self.req.una)
            } else {
                0
            };
            if i <= self.req.send_idx {
                self.req.send_idx = i;
                self.req.send_pkt = pkt;
            }
        }
    }

    fn error_at(&mut self, psn: u32, status: WcStatus) {
        if let Some(w) = self
            .req
            .outstanding
            .iter_mut()
            .find(|w| w.npkts > 0 && psn_cmp(w.last_psn(), psn) != Ordering::Less)
        {
            if w.error.is_none() {
                w.error = Some((status, 0));
            }
        }
    }

    fn error_oldest(&mut self, status: WcStatus) {
        let una = self.req.una;
        let idx = self.req.outstanding.iter().position(|w| {
            w.npkts > 0
                && w.error.is_none()
                && !(if w.opcode == wqe::opcode::RDMA_READ {
                    w.read_rcvd >= w.npkts
                } else {
                    w.transmitted && psn_cmp(una, w.last_psn()) == Ordering::Greater
                })
        });
        if let Some(i) = idx {
            self.req.outstanding[i].error = Some((status, 0));
        }
    }

    /// Advances the oldest unacknowledged PSN to `psn` if that is forward.
    fn advance_una(&mut self, psn: u32) -> bool {
        if psn_cmp(psn, self.req.una) == Ordering::Greater {
            self.req.una = psn;
            true
        } else {
            false
        }
    }

    /// Progress: the retry and RNR retry counts are restored and the requester is
    /// no longer going back (§10.3).
    fn restore_retries(&mut self) {
        self.req.retries_left = self.retry_cnt;
        self.req.rnr_left = self.rnr_retry;
        self.req.going_back = false;
    }

    fn after_progress(&mut self) {
        self.restore_retries();
        // A READ that the responder has moved past without its responses arriving
        // lost them: ask again (IBA implicit NAK).
        let una = self.req.una;
        if let Some(first) = self
            .req
            .outstanding
            .iter()
            .find(|w| {
                w.opcode == wqe::opcode::RDMA_READ
                    && w.read_rcvd < w.npkts
                    && w.transmitted
                    && psn_cmp(una, w.last_psn()) == Ordering::Greater
            })
            .map(|w| w.first_psn)
        {
            self.seek(first);
        }
    }

    /// After acknowledged progress: retires what completed and, if the QP still
    /// sends, restarts the retransmit timer and sends more.
    fn retire_and_resume(&mut self, cx: &mut Ctx) {
        self.retire(cx);
        if !matches!(self.state, QpState::Rts | QpState::Sqd) {
            return;
        }
        self.rearm_timer(cx, true);
        self.kick_sq(cx);
    }

    /// ACKNOWLEDGE packets (ACK, RNR NAK, NAK).
    pub(crate) fn on_ack(&mut self, cx: &mut Ctx, p: &RocePacket) {
        let Some(aeth) = p.aeth else { return };
        let psn = p.bth.psn;
        // Valid: una - 1 <= psn < sent_hwm.
        let lo = crate::roce::psn_sub(self.req.una, 1);
        if psn_cmp(psn, lo) == Ordering::Less || psn_cmp(psn, self.req.sent_hwm) != Ordering::Less {
            self.stats.out_of_order_dropped += 1;
            return;
        }
        match aeth.kind() {
            AethKind::Ack { .. } => {
                self.stats.acks_received += 1;
                if self.advance_una(psn_add(psn, 1)) {
                    self.after_progress();
                    self.retire_and_resume(cx);
                }
            }
            AethKind::Nak { code } if code == (syndrome::NAK_PSN_SEQUENCE_ERROR & 0x1F) => {
                self.stats.seq_naks_received += 1;
                if self.advance_una(psn) {
                    self.after_progress();
                    self.retire(cx);
                    if !matches!(self.state, QpState::Rts | QpState::Sqd) {
                        return;
                    }
                }
                if self.req.going_back || self.req.rnr_until.is_some() {
                    // Already going back (or about to, at the end of an RNR wait)
                    // without progress since: this NAK belongs to the same loss
                    // episode. The go-back in progress resends `psn` anyway, so the
                    // NAK costs no retry and does not rewind again.
                    self.stats.seq_naks_absorbed += 1;
                    return;
                }
                if self.req.retries_left == 0 {
                    self.error_at(psn, WcStatus::RetryExceeded);
                    self.retire(cx);
                    return;
                }
                self.req.retries_left -= 1;
                self.req.going_back = true;
                self.seek(psn);
                self.transmit(cx);
                self.rearm_timer(cx, true);
            }
            AethKind::RnrNak { timer } => {
                self.stats.rnr_naks_received += 1;
                self.advance_una(psn);
                self.retire(cx);
                if !matches!(self.state, QpState::Rts | QpState::Sqd) {
                    return;
                }
                if self.rnr_retry != 7 {
                    if self.req.rnr_left == 0 {
                        self.error_at(psn, WcStatus::RnrRetryExceeded);
                        self.retire(cx);
                        return;
                    }
                    self.req.rnr_left -= 1;
                }
                let wait =
                    Duration::from_micros(u64::from(RNR_TIMER_US[usize::from(timer & 0x1F)]));
                self.req.rnr_until = Some((later(cx.env.now(), wait), psn));
                self.req.going_back = true;
                self.req.timer = None;
            }
            AethKind::Nak { code } => {
                self.stats.error_naks_received += 1;
                let status = match code | 0x60 {
                    syndrome::NAK_REMOTE_ACCESS_ERROR => WcStatus::RemoteAccessError,
                    syndrome::NAK_REMOTE_OPERATIONAL_ERROR => WcStatus::RemoteOperationError,
                    _ => WcStatus::RemoteInvalidRequest,
                };
                self.advance_una(psn);
                self.error_at(psn, status);
                self.retire(cx);
            }
            AethKind::Reserved => {
                self.error_at(psn, WcStatus::BadResponse);
                self.retire(cx);
            }
        }
    }

    /// RDMA READ response packets, their payload in `body`. A loopback response
    /// names the responder's checked MR range: after the responder's check again
    /// and this READ's check of its own buffers the data moves once, straight from
    /// the responder's memory into the READ's buffers. A response whose source no
    /// longer passes the responder's check (its MR went while the response was
    /// queued) completes the READ `REMOTE_ACCESS_ERROR`, a failed read of the
    /// responder's memory `REMOTE_OPERATION_ERROR`, as the NAKs the responder
    /// would have sent (`docs/device-spec.md` §6.3).
    pub(crate) fn on_read_response(&mut self, cx: &mut Ctx, p: &RocePacket, body: Body) {
        let psn = p.bth.psn;
        let Some(i) = self.req.outstanding.iter().position(|w| {
            w.opcode == wqe::opcode::RDMA_READ
                && w.transmitted
                && psn_cmp(psn, w.first_psn) != Ordering::Less
                && psn_cmp(psn, w.last_psn()) != Ordering::Greater
        }) else {
            self.stats.out_of_order_dropped += 1;
            return;
        };
        let w = self.req.outstanding[i].clone();
        if psn != psn_add(w.first_psn, w.read_rcvd) {
            // A duplicate or a gap: the timer recovers.
            self.stats.out_of_order_dropped += 1;
            return;
        }
        let src = match body {
            Body::Guest(s) => match sge_pieces(cx, s.who, &s.sges, s.offset, s.len, s.need) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.req.outstanding[i].error = Some((WcStatus::RemoteAccessError, 0));
                    self.retire(cx);
                    return;
                }
            },
            _ => None,
        };
        let payload = match (&src, body) {
            (Some(v), _) => Payload::Guest(v.as_slice()),
            (None, Body::Frame(b)) => Payload::Bytes(b),
            (None, _) => Payload::Bytes(&p.payload),
        };
        let len = match body {
            Body::Packet => p.payload.len(),
            Body::Frame(b) => b.len(),
            Body::Guest(s) => s.len,
        };
        // The response implicitly acknowledges everything before the READ.
        let mut progress = self.advance_una(w.first_psn);
        let k = w.read_rcvd;
        let mtu = self.mtu();
        // A re-requested READ restarts with FIRST (or ONLY) at the resume point.
        let opc = p.bth.opcode;
        let ends = matches!(
            opc,
            op::RDMA_READ_RESPONSE_LAST | op::RDMA_READ_RESPONSE_ONLY
        );
        let starts = matches!(
            opc,
            op::RDMA_READ_RESPONSE_FIRST | op::RDMA_READ_RESPONSE_ONLY
        );
        let off = u64::from(k) * u64::from(mtu);
        let expected_len = (u64::from(w.len) - off).min(u64::from(mtu)) as usize;
        if ends != (k + 1 == w.npkts) || (k == 0 && !starts) || len != expected_len {
            self.req.outstanding[i].error = Some((WcStatus::BadResponse, 0));
            self.retire(cx);
            return;
        }
        let placed = sge_pieces(cx, self.who(), &w.sges, off, len, Need::ReadSink)
            .map_err(PlaceError::Destination)
            .and_then(|dst| place(cx, dst.as_slice(), payload));
        match placed {
            Ok(()) => {}
            Err(PlaceError::Destination(e)) => {
                self.req.outstanding[i].error = Some(xfer_status(e));
                self.retire(cx);
                return;
            }
            Err(PlaceError::Source(_)) => {
                self.req.outstanding[i].error = Some((WcStatus::RemoteOperationError, 0));
                self.retire(cx);
                return;
            }
        }
        self.req.outstanding[i].read_rcvd += 1;
        if self.req.outstanding[i].read_rcvd == w.npkts {
            progress |= self.advance_una(psn_add(w.last_psn(), 1));
        }
        // Every accepted response is progress: it restores the retry counts even
        // when `una` does not move (a long READ that loses a response now and then
        // must not run out of retries while it keeps advancing).
        if progress {
            self.after_progress();
        } else {
            self.restore_retries();
        }
        self.retire_and_resume(cx);
    }

    /// Timers: retransmission timeout and RNR wait.
    pub(crate) fn on_timer(&mut self, cx: &mut Ctx) {
        if !matches!(self.state, QpState::Rts | QpState::Sqd) {
            return;
        }
        let now = cx.env.now();
        if let Some((t, psn)) = self.req.rnr_until {
            if now >= t {
                self.req.rnr_until = None;
                self.seek(psn);
                self.transmit(cx);
                self.rearm_timer(cx, true);
            }
            return;
        }
        let Some(t) = self.req.timer else { return };
        if now < t {
            return;
        }
        self.stats.timeouts += 1;
        if self.req.retries_left == 0 {
            tracing::debug!(qpn = self.qpn, "retry count exhausted");
            self.error_oldest(WcStatus::RetryExceeded);
            self.req.timer = None;
            self.retire(cx);
            return;
        }
        self.req.retries_left -= 1;
        self.req.going_back = true;
        self.seek_oldest();
        self.transmit(cx);
        self.rearm_timer(cx, true);
    }

    // =====================================================================
    // Responder
    // =====================================================================

    fn send_ack(&mut self, cx: &mut Ctx, psn: u32, aeth: Aeth) {
        match aeth.kind() {
            AethKind::Ack { .. } => self.stats.acks_sent += 1,
            AethKind::RnrNak { .. } => self.stats.rnr_naks_sent += 1,
            AethKind::Nak { code: 0 } => self.stats.seq_naks_sent += 1,
            _ => self.stats.error_naks_sent += 1,
        }
        if self.coalesce_ack(cx, psn, aeth) {
            return;
        }
        let mut p = self.new_pkt(cx, op::ACKNOWLEDGE, psn);
        p.aeth = Some(aeth);
        self.emit(cx, p);
    }

    /// Loopback: a plain ACK for `psn` when the newest queued packet is an older
    /// plain ACK of this QP to the same peer QP, with the same addresses, is
    /// merged into it in place (ACKs are cumulative: the newer one says all the
    /// older one said, as a responder coalesces acknowledgements), without
    /// building a packet. Returns whether it was merged.
    fn coalesce_ack(&mut self, cx: &mut Ctx, psn: u32, aeth: Aeth) -> bool {
        if !matches!(aeth.kind(), AethKind::Ack { .. }) || !self.to_own_port(cx.port) {
            return false;
        }
        let Some(back) = cx.loopback.back_mut() else {
            return false;
        };
        let same_path = back.from == self.qpn
            && back.pkt.bth.dest_qp == self.dest_qpn
            && back.pkt.eth.dst == self.remote_mac
            && back.pkt.eth.src == cx.port.mac
            && back.pkt.ip.dst == self.remote_ip
            && back.pkt.ip.src == cx.port.ip
            && back.pkt.ip6.map(|v6| (v6.src, v6.dst))
                == self
                    .remote_ip6
                    .map(|dst| (cx.port.ipv6.unwrap_or_default(), dst));
        if !same_path || !plain_ack(back) || psn_cmp(psn, back.pkt.bth.psn) == Ordering::Less {
            return false;
        }
        back.pkt.bth.psn = psn;
        back.pkt.aeth = Some(aeth);
        self.stats.tx_packets += 1;
        true
    }

    /// A responder-detected error: NAK, async event, QP → ERR.
    fn resp_fail(&mut self, cx: &mut Ctx, psn: u32, nak: u8) {
        let msn = self.resp.msn;
        self.send_ack(cx, psn, Aeth::nak(msn, nak));
        let ev = match nak {
            syndrome::NAK_REMOTE_ACCESS_ERROR => AsyncEvent::QpAccessError { qpn: self.qpn },
            syndrome::NAK_INVALID_REQUEST => AsyncEvent::QpRequestError { qpn: self.qpn },
            _ => AsyncEvent::QpError {
                qpn: self.qpn,
                cause: WcStatus::RemoteOperationError.code(),
            },
        };
        if !matches!(self.state, QpState::Err | QpState::Reset) {
            cx.env.post_event(ev.into());
            self.enter_err(cx, Some(nak));
        }
    }

    /// Completes the receive WQE at the RQ head with an error, then fails.
    fn recv_fail(
        &mut self,
        cx: &mut Ctx,
        wr_id: u64,
        status: WcStatus,
        vendor: u32,
        psn: u32,
        nak: u8,
    ) {
        let cqe = CqeRepr {
            wr_id,
            opcode: cqe::opcode::RECV,
            status: status.code(),
            vendor_err: vendor,
            ..CqeRepr::default()
        };
        self.rq_head = self.rq_head.wrapping_add(1);
        let _ = self.complete(cx, true, cqe, true);
        self.resp.cur = None;
        self.resp_fail(cx, psn, nak);
    }

    /// Fetches the receive WQE at the RQ head for the message whose packet has
    /// `psn`. A DMA failure fails the QP; a malformed WQE is completed in error
    /// and NAKed (remote operational error). Either way `None`: drop the packet.
    fn take_rq_wqe(&mut self, cx: &mut Ctx, psn: u32) -> Option<RqWqe> {
        match self.fetch_rq_wqe(cx) {
            None => {
                self.fail(cx, qp_error_cause::WQE_DMA);
                None
            }
            Some(Err(wr_id)) => {
                self.recv_fail(
                    cx,
                    wr_id,
                    WcStatus::LocalQpOperationError,
                    0,
                    psn,
                    syndrome::NAK_REMOTE_OPERATIONAL_ERROR,
                );
                None
            }
            Some(Ok(wqe)) => Some(wqe),
        }
    }

    /// Requests arriving at this QP, their payload in `body`. Returns the fault to
    /// report to a loopback sender whose payload could not be read.
    pub(crate) fn on_request(
        &mut self,
        cx: &mut Ctx,
        p: &RocePacket,
        body: Body,
    ) -> Option<SourceFault> {
        let source = match body {
            Body::Guest(s) => Some(s),
            _ => None,
        };
        if !matches!(self.state, QpState::Rtr | QpState::Rts | QpState::Sqd) {
            return None;
        }
        let psn = p.bth.psn;
        match psn_cmp(psn, self.resp.epsn) {
            Ordering::Less => {
                self.stats.duplicates_received += 1;
                if p.bth.opcode == op::RDMA_READ_REQUEST {
                    // Re-execute the read: responses are resent from this PSN, at
                    // most one send window of them (bounded work: a peer repeating
                    // a 16 MiB request gets 128 packets per request; the requester
                    // re-requests the rest from where they stop).
                    if let Some(reth) = p.reth {
                        let _ = self.read_responses(cx, psn, reth, cx.limits.max_inflight);
                    }
                } else {
                    let last = crate::roce::psn_sub(self.resp.epsn, 1);
                    let msn = self.resp.msn;
                    self.send_ack(cx, last, Aeth::ack(msn));
                }
                return None;
            }
            Ordering::Greater => {
                // One NAK per episode: after an RNR NAK or a sequence NAK for ePSN,
                // later packets are dropped silently until ePSN arrives again.
                if !self.resp.nak_sent {
                    self.resp.nak_sent = true;
                    let (epsn, msn) = (self.resp.epsn, self.resp.msn);
                    self.send_ack(cx, epsn, Aeth::nak(msn, syndrome::NAK_PSN_SEQUENCE_ERROR));
                } else {
                    self.stats.out_of_order_dropped += 1;
                }
                return None;
            }
            Ordering::Equal => self.resp.nak_sent = false,
        }
        let opc = p.bth.opcode;
        let mtu = self.mtu() as usize;
        let len = match body {
            Body::Packet => p.payload.len(),
            Body::Frame(b) => b.len(),
            Body::Guest(s) => s.len,
        };
        let (first, last) = position(opc);
        let is_send = matches!(
            opc,
            op::SEND_FIRST
                ..=op::SEND_ONLY_WITH_IMMEDIATE
                    | op::SEND_LAST_WITH_INVALIDATE
                    | op::SEND_ONLY_WITH_INVALIDATE
        );
        let is_write = (op::RDMA_WRITE_FIRST..=op::RDMA_WRITE_ONLY_WITH_IMMEDIATE).contains(&opc);
        // Opcode sequence.
        let seq_ok = match &self.resp.cur {
            None => first || opc == op::RDMA_READ_REQUEST,
            Some(InMsg::Send { .. }) => is_send && !first,
            Some(InMsg::Write { .. }) => is_write && !first,
        };
        let len_ok = if last {
            len <= mtu && (first || len > 0)
        } else {
            len == mtu
        };
        if !seq_ok
            || (!(is_send || is_write) && opc != op::RDMA_READ_REQUEST)
            || ((is_send || is_write) && !len_ok)
        {
            self.resp.cur = None;
            self.resp_fail(cx, psn, syndrome::NAK_INVALID_REQUEST);
            return None;
        }
        self.stats.rx_bytes += len as u64;
        if opc == op::RDMA_READ_REQUEST {
            let reth = p.reth?;
            match self.read_responses(cx, psn, reth, u32::MAX) {
                Ok(n) => {
                    self.resp.epsn = psn_add(self.resp.epsn, n);
                    self.resp.msn = psn_add(self.resp.msn, 1);
                }
                Err(nak) => self.resp_fail(cx, psn, nak),
            }
            return None;
        }
        // A loopback payload: the sender's lkey check again (its MR may have
        // gone since the packet was made), before anything of this QP changes.
        let source_pieces = match source {
            Some(s) => match sge_pieces(cx, s.who, &s.sges, s.offset, s.len, s.need) {
                Ok(v) => Some(v),
                Err(e) => {
                    return Some(SourceFault {
                        qpn: s.who.qpn,
                        psn,
                        status: xfer_status(e),
                    })
                }
            },
            None => None,
        };
        let payload = match (&source_pieces, body) {
            (Some(v), _) => Payload::Guest(v.as_slice()),
            (None, Body::Frame(b)) => Payload::Bytes(b),
            (None, _) => Payload::Bytes(&p.payload),
        };
        let arrival = Arrival {
            payload,
            len,
            first,
            last,
        };
        let placed = if is_send {
            self.on_send_packet(cx, p, arrival)
        } else {
            self.on_write_packet(cx, p, arrival)
        };
        match (placed, source) {
            (Err(e), Some(s)) => Some(SourceFault {
                qpn: s.who.qpn,
                psn,
                status: xfer_status(e),
            }),
            _ => None,
        }
    }

    /// A loopback train of MIDDLE packets in the middle of a SEND, or of an RDMA
    /// WRITE's packets (its FIRST, MIDDLE and plain LAST packets), `p` its first
    /// packet: placed
    /// with one protection check per side and one copy per contiguous run, then
    /// answered as its packets would have been (one ACK if its last packet asks).
    /// `Err(())`: something would make the packets' one-by-one handling differ
    /// (a sequence, length or protection check fails, the MTUs differ); nothing
    /// has changed and the caller delivers the packets one by one. A DMA failure
    /// while copying fails the train at its first packet.
    pub(crate) fn on_train(
        &mut self,
        cx: &mut Ctx,
        p: &RocePacket,
        s: &GuestPayload,
    ) -> Result<Option<SourceFault>, ()> {
        let psn = p.bth.psn;
        if !matches!(self.state, QpState::Rtr | QpState::Rts | QpState::Sqd)
            || psn != self.resp.epsn
            || s.mtu != self.mtu()
            || s.len == 0
        {
            return Err(());
        }
        let ends = s.last.opcode == op::RDMA_WRITE_LAST;
        // The RDMA WRITE the train belongs to: opened by its first packet (the
        // checks of a WRITE's first packet, on its RETH) or already open.
        let write = match (&self.resp.cur, p.bth.opcode) {
            (None, op::RDMA_WRITE_FIRST) => {
                let reth = p.reth.ok_or(())?;
                let allowed =
                    reth.dma_len <= cx.limits.max_msg_size && self.remote_write_allowed(cx, reth);
                if !allowed {
                    return Err(());
                }
                Some((reth.va, reth.rkey, reth.dma_len, 0))
            }
            (
                Some(InMsg::Write {
                    va,
                    rkey,
                    total,
                    offset,
                }),
                op::RDMA_WRITE_MIDDLE,
            ) => Some((*va, *rkey, *total, *offset)),
            _ => None,
        };
        let (dst, recv_wr_id) = match (write, &self.resp.cur, s.last.opcode) {
            (Some((va, rkey, total, offset)), _, op::RDMA_WRITE_MIDDLE | op::RDMA_WRITE_LAST) => {
                let end = u32::try_from(s.len)
                    .ok()
                    .and_then(|n| offset.checked_add(n))
                    .ok_or(())?;
                if end > total || (ends && end != total) {
                    return Err(());
                }
                let target = va.wrapping_add(u64::from(offset));
                let dst = mr_pieces(cx, self.who(), rkey, Need::RemoteWrite, target, s.len);
                (dst.map_err(|_| ())?, None)
            }
            (None, Some(InMsg::Send { wqe, offset }), op::SEND_MIDDLE)
                if p.bth.opcode == op::SEND_MIDDLE =>
            {
                if offset + s.len as u64 > wqe.capacity {
                    return Err(());
                }
                let dst = sge_pieces(cx, self.who(), &wqe.sges, *offset, s.len, Need::LocalWrite);
                (dst.map_err(|_| ())?, Some(wqe.wr_id))
            }
            _ => return Err(()),
        };
        let src = sge_pieces(cx, s.who, &s.sges, s.offset, s.len, s.need).map_err(|_| ())?;
        // Every check passed: from here on the train is this QP's.
        self.resp.nak_sent = false;
        self.stats.rx_packets += u64::from(s.packets);
        self.stats.rx_bytes += s.len as u64;
        match place(cx, dst.as_slice(), Payload::Guest(src.as_slice())) {
            Ok(()) => {}
            Err(PlaceError::Source(e)) => {
                return Ok(Some(SourceFault {
                    qpn: s.who.qpn,
                    psn,
                    status: xfer_status(e),
                }))
            }
            Err(PlaceError::Destination(e)) => {
                match recv_wr_id {
                    Some(wr_id) => {
                        let (st, vendor) = xfer_status(e);
                        let nak = syndrome::NAK_REMOTE_OPERATIONAL_ERROR;
                        self.recv_fail(cx, wr_id, st, vendor, psn, nak);
                    }
                    None => {
                        self.resp.cur = None;
                        self.resp_fail(cx, psn, syndrome::NAK_REMOTE_OPERATIONAL_ERROR);
                    }
                }
                return Ok(None);
            }
        }
        match (write, &mut self.resp.cur) {
            (Some((va, rkey, total, offset)), _) => {
                self.resp.cur = Some(InMsg::Write {
                    va,
                    rkey,
                    total,
                    offset: offset + s.len as u32,
                });
            }
            (None, Some(InMsg::Send { offset, .. })) => *offset += s.len as u64,
            _ => {}
        }
        let last_psn = psn_add(psn, s.packets - 1);
        self.resp.epsn = psn_add(self.resp.epsn, s.packets);
        if ends {
            self.resp.msn = psn_add(self.resp.msn, 1);
            self.resp.cur = None;
        }
        if s.last.ack_req {
            let msn = self.resp.msn;
            self.send_ack(cx, last_psn, Aeth::ack(msn));
        }
        Ok(None)
    }

    /// The responder's check of an RDMA WRITE's whole range (its RETH): the QP's
    /// remote-write right, then the rkey's protection check.
    fn remote_write_allowed(&self, cx: &Ctx, reth: Reth) -> bool {
        self.access & access::REMOTE_WRITE != 0
            && cx
                .mrs
                .check(
                    reth.rkey,
                    self.pdn,
                    Need::RemoteWrite,
                    reth.va,
                    u64::from(reth.dma_len),
                )
                .is_ok()
    }

    fn finish_packet(&mut self, cx: &mut Ctx, p: &RocePacket, last: bool) {
        self.resp.epsn = psn_add(self.resp.epsn, 1);
        if last {
            self.resp.msn = psn_add(self.resp.msn, 1);
            self.resp.cur = None;
        }
        if p.bth.ack_req {
            let msn = self.resp.msn;
            self.send_ack(cx, p.bth.psn, Aeth::ack(msn));
        }
    }

    /// RNR NAK for the packet with ePSN. Nothing of the packet has been consumed;
    /// later packets are dropped silently until ePSN arrives again.
    fn rnr_nak(&mut self, cx: &mut Ctx, psn: u32) {
        let (msn, t) = (self.resp.msn, self.min_rnr_timer);
        self.resp.nak_sent = true;
        self.send_ack(cx, psn, Aeth::rnr_nak(msn, t));
    }

    /// One packet of a SEND with `len` payload bytes. `Err`: the sender's memory
    /// could not be read (loopback); the packet is dropped.
    fn on_send_packet(
        &mut self,
        cx: &mut Ctx,
        p: &RocePacket,
        arrival: Arrival,
    ) -> Result<(), XferError> {
        let Arrival {
            payload,
            len,
            first,
            last,
        } = arrival;
        let psn = p.bth.psn;
        if first {
            if self.rq_size == 0 || self.rq_head == self.rq_pi {
                self.rnr_nak(cx, psn);
                return Ok(());
            }
            let Some(wqe) = self.take_rq_wqe(cx, psn) else {
                return Ok(());
            };
            self.resp.cur = Some(InMsg::Send { wqe, offset: 0 });
        }
        // The message's receive WQE is taken out of the responder (no copy of its
        // SGE list per packet) and put back with the new offset below.
        let Some(InMsg::Send { wqe, offset }) = self.resp.cur.take() else {
            return Ok(());
        };
        let end = offset + len as u64;
        if end > wqe.capacity {
            self.recv_fail(
                cx,
                wqe.wr_id,
                WcStatus::LocalLengthError,
                0,
                psn,
                syndrome::NAK_INVALID_REQUEST,
            );
            return Ok(());
        }
        let placed = sge_pieces(cx, self.who(), &wqe.sges, offset, len, Need::LocalWrite)
            .map_err(PlaceError::Destination)
            .and_then(|dst| place(cx, dst.as_slice(), payload));
        if let Err(e) = placed {
            let e = match e {
                PlaceError::Source(e) => {
                    // The packet is dropped: the message stays where it was.
                    self.resp.cur = Some(InMsg::Send { wqe, offset });
                    return Err(e);
                }
                PlaceError::Destination(e) => e,
            };
            let (st, vendor) = xfer_status(e);
            self.recv_fail(
                cx,
                wqe.wr_id,
                st,
                vendor,
                psn,
                syndrome::NAK_REMOTE_OPERATIONAL_ERROR,
            );
            return Ok(());
        }
        let wr_id = wqe.wr_id;
        self.resp.cur = Some(InMsg::Send { wqe, offset: end });
        if last {
            let mut cqe = CqeRepr {
                wr_id,
                opcode: cqe::opcode::RECV,
                byte_len: end as u32,
                ..CqeRepr::default()
            };
            if let Some(imm) = p.imm {
                cqe.imm_inv = imm;
                cqe.flags |= cqe::flags::IMM;
            }
            if let Some(rkey) = p.ieth {
                if invalidate(cx, rkey, self.pdn).is_err() {
                    self.recv_fail(
                        cx,
                        wr_id,
                        WcStatus::MemoryManagementError,
                        0,
                        psn,
                        syndrome::NAK_INVALID_REQUEST,
                    );
                    return Ok(());
                }
                cqe.imm_inv = rkey;
                cqe.flags |= cqe::flags::INV;
            }
            if p.bth.solicited {
                cqe.flags |= cqe::flags::SOLICITED;
            }
            self.rq_head = self.rq_head.wrapping_add(1);
            self.finish_packet(cx, p, true);
            self.complete_checked(cx, true, cqe, p.bth.solicited);
        } else {
            self.finish_packet(cx, p, false);
        }
        Ok(())
    }

    /// One packet of an RDMA WRITE with `len` payload bytes. `Err`: the sender's
    /// memory could not be read (loopback); the packet is dropped.
    fn on_write_packet(
        &mut self,
        cx: &mut Ctx,
        p: &RocePacket,
        arrival: Arrival,
    ) -> Result<(), XferError> {
        let Arrival {
            payload,
            len,
            first,
            last,
        } = arrival;
        let psn = p.bth.psn;
        let with_imm = p.imm.is_some();
        // The last packet of a WRITE with immediate needs a receive WQE. Without one
        // the packet is RNR NAKed before anything changes, so the responder is
        // exactly as if it had never arrived and the retransmission starts afresh
        // (a WRITE ONLY with immediate opens no message context).
        if last && with_imm && (self.rq_size == 0 || self.rq_head == self.rq_pi) {
            self.rnr_nak(cx, psn);
            return Ok(());
        }
        if first {
            let Some(reth) = p.reth else { return Ok(()) };
            if reth.dma_len > cx.limits.max_msg_size {
                self.resp_fail(cx, psn, syndrome::NAK_INVALID_REQUEST);
                return Ok(());
            }
            if reth.dma_len > 0 && !self.remote_write_allowed(cx, reth) {
                self.resp_fail(cx, psn, syndrome::NAK_REMOTE_ACCESS_ERROR);
                return Ok(());
            }
        }
        // The message's state as locals: read from the fields just checked (a
        // new message) or from the responder, never written and read back.
        let (va, rkey, total, offset) = if first {
            let Some(reth) = p.reth else { return Ok(()) };
            self.resp.cur = Some(InMsg::Write {
                va: reth.va,
                rkey: reth.rkey,
                total: reth.dma_len,
                offset: 0,
            });
            (reth.va, reth.rkey, reth.dma_len, 0)
        } else {
            match self.resp.cur {
                Some(InMsg::Write {
                    va,
                    rkey,
                    total,
                    offset,
                }) => (va, rkey, total, offset),
                _ => return Ok(()),
            }
        };
        let n = len as u32;
        let end = offset.saturating_add(n);
        if end > total || (last && end != total) {
            self.resp.cur = None;
            self.resp_fail(cx, psn, syndrome::NAK_INVALID_REQUEST);
            return Ok(());
        }
        // The receive WQE a WRITE with immediate consumes is fetched and checked
        // before its last packet's data is placed, exactly as a SEND's is before
        // its first packet's.
        let recv_wr_id = if last && with_imm {
            let Some(wqe) = self.take_rq_wqe(cx, psn) else {
                return Ok(());
            };
            Some(wqe.wr_id)
        } else {
            None
        };
        if n > 0 {
            let target = va.wrapping_add(u64::from(offset));
            let placed = mr_pieces(cx, self.who(), rkey, Need::RemoteWrite, target, len)
                .map_err(PlaceError::Destination)
                .and_then(|dst| place(cx, dst.as_slice(), payload));
            match placed {
                Ok(()) => {}
                Err(PlaceError::Source(e)) => return Err(e),
                Err(PlaceError::Destination(XferError::Prot(_))) => {
                    self.resp.cur = None;
                    self.resp_fail(cx, psn, syndrome::NAK_REMOTE_ACCESS_ERROR);
                    return Ok(());
                }
                Err(_) => {
                    self.resp.cur = None;
                    self.resp_fail(cx, psn, syndrome::NAK_REMOTE_OPERATIONAL_ERROR);
                    return Ok(());
                }
            }
        }
        self.resp.cur = Some(InMsg::Write {
            va,
            rkey,
            total,
            offset: end,
        });
        if let Some(wr_id) = recv_wr_id {
            let cqe = CqeRepr {
                wr_id,
                opcode: cqe::opcode::RECV_RDMA_WITH_IMM,
                byte_len: total,
                imm_inv: p.imm.unwrap_or(0),
                flags: cqe::flags::IMM
                    | if p.bth.solicited {
                        cqe::flags::SOLICITED
                    } else {
                        0
                    },
                ..CqeRepr::default()
            };
            self.rq_head = self.rq_head.wrapping_add(1);
            self.finish_packet(cx, p, true);
            self.complete_checked(cx, true, cqe, p.bth.solicited);
        } else {
            self.finish_packet(cx, p, last);
        }
        Ok(())
    }

    /// Validates a READ request and emits its responses starting at `psn`.
    /// Returns the number of response packets, or the NAK syndrome.
    /// Sends the responses of an RDMA READ starting at `psn`, at most `max_pkts` of
    /// them; returns the number of packets the whole read takes.
    fn read_responses(
        &mut self,
        cx: &mut Ctx,
        psn: u32,
        reth: Reth,
        max_pkts: u32,
    ) -> Result<u32, u8> {
        if reth.dma_len > cx.limits.max_msg_size {
            return Err(syndrome::NAK_INVALID_REQUEST);
        }
        if reth.dma_len > 0
            && (self.access & access::REMOTE_READ == 0
                || cx
                    .mrs
                    .check(
                        reth.rkey,
                        self.pdn,
                        Need::RemoteRead,
                        reth.va,
                        u64::from(reth.dma_len),
                    )
                    .is_err())
        {
            return Err(syndrome::NAK_REMOTE_ACCESS_ERROR);
        }
        let mtu = self.mtu();
        let npkts = reth.dma_len.div_ceil(mtu).max(1);
        let msn = psn_add(self.resp.msn, 1);
        // Loopback: the responses name the checked MR range and the requester
        // copies from it straight into its READ's buffers (one copy). The wire:
        // each response's data is read straight into its frame.
        let loopback = self.to_own_port(cx.port);
        let range = SgeList::new(&[Sge {
            addr: reth.va,
            len: reth.dma_len,
            lkey: reth.rkey,
        }]);
        for k in 0..npkts.min(max_pkts) {
            let off = u64::from(k) * u64::from(mtu);
            let n = (u64::from(reth.dma_len) - off).min(u64::from(mtu)) as usize;
            let opcode = if npkts == 1 {
                op::RDMA_READ_RESPONSE_ONLY
            } else if k == 0 {
                op::RDMA_READ_RESPONSE_FIRST
            } else if k + 1 == npkts {
                op::RDMA_READ_RESPONSE_LAST
            } else {
                op::RDMA_READ_RESPONSE_MIDDLE
            };
            let mut r = self.new_pkt(cx, opcode, psn_add(psn, k));
            if opcode != op::RDMA_READ_RESPONSE_MIDDLE {
                r.aeth = Some(Aeth::ack(msn));
            }
            let nak = |e| match e {
                XferError::Prot(_) => syndrome::NAK_REMOTE_ACCESS_ERROR,
                _ => syndrome::NAK_REMOTE_OPERATIONAL_ERROR,
            };
            if n == 0 {
                self.emit(cx, r);
            } else if loopback {
                let source = GuestPayload {
                    who: self.who(),
                    sges: range.clone(),
                    need: Need::RemoteRead,
                    offset: off,
                    len: n,
                    packets: 1,
                    mtu,
                    last: LastHeader::default(),
                };
                self.emit_from(cx, r, Some(source));
            } else {
                let who = self.who();
                let va = reth.va.wrapping_add(off);
                let frame =
                    crate::roce::encode_with(&r, n, |buf| mr_read(cx, who, reth.rkey, va, buf));
                match frame {
                    Ok(Ok(frame)) => self.emit_frame(cx, r, frame, n),
                    Ok(Err(e)) => return Err(nak(e)),
                    // An engine bug: the router counts it as an encoding error.
                    Err(_) => self.emit(cx, r),
                }
            }
        }
        Ok(npkts)
    }
}

/// Local or remote invalidation of a fast-register MR: exact key, same PD.
pub(crate) fn invalidate(cx: &mut Ctx, key: u32, pdn: u32) -> Result<(), MrError> {
    let mr = cx.mrs.by_key(key).ok_or(MrError::BadKey)?;
    if mr.fast_reg.is_none() {
        return Err(MrError::NoAccess);
    }
    if mr.pdn != pdn {
        return Err(MrError::WrongPd);
    }
    if let Some(mr) = cx.mrs.by_index_mut(key >> 8) {
        mr.state = MrState::Free;
    }
    Ok(())
}

/// (first, last) position of a request opcode inside its message.
fn position(opc: u8) -> (bool, bool) {
    match opc {
        op::SEND_FIRST | op::RDMA_WRITE_FIRST => (true, false),
        op::SEND_MIDDLE | op::RDMA_WRITE_MIDDLE => (false, false),
        op::SEND_LAST
        | op::SEND_LAST_WITH_IMMEDIATE
        | op::SEND_LAST_WITH_INVALIDATE
        | op::RDMA_WRITE_LAST
        | op::RDMA_WRITE_LAST_WITH_IMMEDIATE => (false, true),
        _ => (true, true),
    }
}

/// BTH opcode of packet `first/last` of a send-queue operation.
fn packet_opcode(wr_op: u8, first: bool, last: bool) -> u8 {
    let write = matches!(
        wr_op,
        wqe::opcode::RDMA_WRITE | wqe::opcode::RDMA_WRITE_WITH_IMM
    );
    match (first, last) {
        (true, true) => match wr_op {
            wqe::opcode::SEND_WITH_IMM => op::SEND_ONLY_WITH_IMMEDIATE,
            wqe::opcode::SEND_WITH_INV => op::SEND_ONLY_WITH_INVALIDATE,
            wqe::opcode::RDMA_WRITE => op::RDMA_WRITE_ONLY,
            wqe::opcode::RDMA_WRITE_WITH_IMM => op::RDMA_WRITE_ONLY_WITH_IMMEDIATE,
            _ => op::SEND_ONLY,
        },
        (true, false) => {
            if write {
                op::RDMA_WRITE_FIRST
            } else {
                op::SEND_FIRST
            }
        }
        (false, false) => {
            if write {
                op::RDMA_WRITE_MIDDLE
            } else {
                op::SEND_MIDDLE
            }
        }
        (false, true) => match wr_op {
            wqe::opcode::SEND_WITH_IMM => op::SEND_LAST_WITH_IMMEDIATE,
            wqe::opcode::SEND_WITH_INV => op::SEND_LAST_WITH_INVALIDATE,
            wqe::opcode::RDMA_WRITE => op::RDMA_WRITE_LAST,
            wqe::opcode::RDMA_WRITE_WITH_IMM => op::RDMA_WRITE_LAST_WITH_IMMEDIATE,
            _ => op::SEND_LAST,
        },
    }
}

/// Whether `o` is a plain ACK (an ACKNOWLEDGE that is no NAK, without payload).
fn plain_ack(o: &OutPacket) -> bool {
    o.pkt.bth.opcode == op::ACKNOWLEDGE
        && o.source.is_none()
        && o.frame.is_none()
        && o.pkt
            .aeth
            .is_some_and(|a| matches!(a.kind(), AethKind::Ack { .. }))
}
