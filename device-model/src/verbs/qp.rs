//! Queue pairs: attributes, the RC state machine, WQE parsing, completions and
//! flushing. The RC transport itself (requester and responder) is in
//! `super::transport`.
use rnic_contract::event::qp_error_cause;

use super::async_event::AsyncEvent;
use super::cq::Cq;
use super::mr::{MrError, MrTable, Need};
use super::{Port, Table, VerbsLimits};
use crate::env::{DeviceEnv, DmaScope};
use crate::fault::{FaultAction, FaultPoint, FaultScope, FaultSite};
use rnic_contract::admin::{operands::modify_qp, query_qp, QUERY_RECORD_SIZE};
use rnic_contract::cqe::{self, CqeRepr, WcStatus};
use rnic_contract::field::Record;
use rnic_contract::verbs::{access, qp_attr, QpState};
use rnic_contract::wqe::{self, RecvWqe, SendWqe, MAX_INLINE, WQE_SIZE};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// Everything a QP operation may touch besides the QP itself.
pub(crate) struct Ctx<'a> {
    pub env: &'a mut dyn DeviceEnv,
    pub mrs: &'a mut MrTable,
    pub cqs: &'a mut Table<Cq>,
    /// Packets for the wire (and the router's other checks).
    pub out: &'a mut Vec<super::transport::OutPacket>,
    /// The engine's loopback queue: packets to the port's own address go straight
    /// in (one move of the packet, trains grown and ACKs coalesced in place).
    pub loopback: &'a mut VecDeque<super::transport::OutPacket>,
    /// The engine's count of packets queued for loopback delivery.
    pub loopback_packets: &'a mut u64,
    pub port: &'a Port,
    pub limits: &'a VerbsLimits,
    /// Number of the current service call of the engine (bounds per-call work).
    pub service: u64,
    /// Set when a QP stopped fetching because its per-call budget ran out.
    pub more_work: &'a mut bool,
}

/// One scatter/gather element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sge {
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) lkey: u32,
}

/// A send WQE's SGE list as the transmit loop and loopback packets share it. A
/// list of at most one SGE (the common case) is held inline: fetching, sending
/// and placing such a work request allocates nothing and touches no reference
/// count. Longer lists are shared behind one allocation per WQE.
#[derive(Clone, Debug)]
pub(crate) enum SgeList {
    /// No SGE or one (`len` is 0 or 1).
    Inline { sge: Sge, len: u8 },
    /// Two or more SGEs.
    Shared(std::sync::Arc<[Sge]>),
}

impl SgeList {
    /// The list holding `sges`.
    pub(crate) fn new(sges: &[Sge]) -> Self {
        match sges {
            [] => SgeList::Inline {
                sge: Sge::default(),
                len: 0,
            },
            [one] => SgeList::Inline { sge: *one, len: 1 },
            more => SgeList::Shared(std::sync::Arc::from(more)),
        }
    }

    /// Whether `other` is this same list (the same shared allocation, or the same
    /// inline SGE).
    pub(crate) fn same(&self, other: &SgeList) -> bool {
        match (self, other) {
            (SgeList::Shared(a), SgeList::Shared(b)) => std::sync::Arc::ptr_eq(a, b),
            (SgeList::Inline { sge: a, len: m }, SgeList::Inline { sge: b, len: n }) => {
                a == b && m == n
            }
            _ => false,
        }
    }
}

impl Default for SgeList {
    fn default() -> Self {
        SgeList::new(&[])
    }
}

impl std::ops::Deref for SgeList {
    type Target = [Sge];
    fn deref(&self) -> &[Sge] {
        match self {
            SgeList::Inline { sge, len } => &std::slice::from_ref(sge)[..usize::from(*len)],
            SgeList::Shared(v) => v,
        }
    }
}

/// Fields of a FAST_REG WQE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastReg {
    pub(crate) iova: u64,
    pub(crate) key: u32,
    pub(crate) access: u32,
    pub(crate) length: u64,
    pub(crate) page_list: u64,
    pub(crate) page_count: u32,
    pub(crate) fbo: u32,
    pub(crate) page_shift: u8,
}

/// A send WQE the device has fetched and not yet retired.
#[derive(Clone, Debug, Default)]
pub(crate) struct SqWqe {
    pub(crate) wr_id: u64,
    pub(crate) opcode: u8,
    pub(crate) flags: u8,
    pub(crate) imm_inv: u32,
    pub(crate) remote_addr: u64,
    pub(crate) rkey: u32,
    /// Shared: the transmit loop and loopback packets hold it without copying.
    pub(crate) sges: SgeList,
    pub(crate) inline: Option<std::sync::Arc<[u8]>>,
    pub(crate) len: u32,
    pub(crate) fr: FastReg,
    pub(crate) first_psn: u32,
    pub(crate) npkts: u32,
    /// READ: response packets received so far.
    pub(crate) read_rcvd: u32,
    /// Some packet of this WQE has been transmitted (or a local op executed).
    pub(crate) transmitted: bool,
    /// Local operation executed.
    pub(crate) done: bool,
    pub(crate) error: Option<(WcStatus, u32)>,
}

impl SqWqe {
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.opcode, wqe::opcode::FAST_REG | wqe::opcode::LOCAL_INV)
    }

    pub(crate) fn last_psn(&self) -> u32 {
        crate::roce::psn_add(self.first_psn, self.npkts.saturating_sub(1))
    }

    pub(crate) fn cqe_opcode(&self) -> u8 {
        match self.opcode {
            wqe::opcode::SEND | wqe::opcode::SEND_WITH_IMM | wqe::opcode::SEND_WITH_INV => {
                cqe::opcode::SEND
            }
            wqe::opcode::RDMA_WRITE | wqe::opcode::RDMA_WRITE_WITH_IMM => cqe::opcode::RDMA_WRITE,
            wqe::opcode::RDMA_READ => cqe::opcode::RDMA_READ,
            wqe::opcode::FAST_REG => cqe::opcode::FAST_REG,
            _ => cqe::opcode::LOCAL_INV,
        }
    }
}

/// A receive WQE.
#[derive(Clone, Debug, Default)]
pub(crate) struct RqWqe {
    pub(crate) wr_id: u64,
    pub(crate) sges: Vec<Sge>,
    pub(crate) capacity: u64,
}

/// A message the responder is in the middle of.
#[derive(Clone, Debug)]
pub(crate) enum InMsg {
    Send {
        wqe: RqWqe,
        offset: u64,
    },
    Write {
        va: u64,
        rkey: u32,
        total: u32,
        offset: u32,
    },
}

/// Requester state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Requester {
    /// PSN given to the next fetched WQE.
    pub(crate) next_psn: u32,
    /// Oldest unacknowledged PSN.
    pub(crate) una: u32,
    /// One past the highest PSN ever transmitted.
    pub(crate) sent_hwm: u32,
    /// Transmit cursor: WQE index in `outstanding` and packet index inside it.
    pub(crate) send_idx: usize,
    pub(crate) send_pkt: u32,
    pub(crate) outstanding: VecDeque<SqWqe>,
    pub(crate) retries_left: u8,
    pub(crate) rnr_left: u8,
    pub(crate) timer: Option<Duration>,
    pub(crate) rnr_until: Option<(Duration, u32)>,
    /// Packets sent since the last ACK request.
    pub(crate) since_ackreq: u32,
    /// The requester went back (sequence NAK, timeout or RNR NAK) and has seen
    /// no progress since: further sequence NAKs cost no retry (§10.3).
    pub(crate) going_back: bool,
    /// The service call `fetched` counts for.
    pub(crate) fetch_service: u64,
    /// WQEs fetched during service call `fetch_service`.
    pub(crate) fetched: u32,
}

/// Responder state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Responder {
    pub(crate) epsn: u32,
    pub(crate) msn: u32,
    pub(crate) cur: Option<InMsg>,
    /// An RNR or PSN sequence NAK was sent for ePSN: out-of-sequence packets are
    /// dropped silently until the packet with ePSN arrives.
    pub(crate) nak_sent: bool,
}

/// Serializes a QP state by its spec name (`"rts"`), `null` for none.
fn serialize_qp_state<S: serde::Serializer>(
    state: &Option<QpState>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match state {
        Some(st) => s.serialize_some(st.name()),
        None => s.serialize_none(),
    }
}

/// Per-QP counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QpStats {
    /// The QP number.
    pub qpn: u32,
    #[serde(serialize_with = "serialize_qp_state")]
    /// Current state; none once destroyed.
    pub state: Option<QpState>,
    /// The SQ producer count last written by the driver.
    pub sq_posted: u32,
    /// Send WQEs completed (with or without a CQE).
    pub sq_completed: u64,
    /// Receive WQEs completed.
    pub rq_completed: u64,
    /// Completions with an error status (not flushes).
    pub error_completions: u64,
    /// WQEs completed with FLUSHED.
    pub flushed: u64,
    /// Packets sent (including retransmissions and ACKs).
    pub tx_packets: u64,
    /// Packets received for the QP.
    pub rx_packets: u64,
    /// Payload bytes sent.
    pub tx_bytes: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// Packets sent again (timeouts, sequence NAKs).
    pub retransmitted_packets: u64,
    /// Local ACK timeouts that fired.
    pub timeouts: u64,
    /// ACKs sent by the responder.
    pub acks_sent: u64,
    /// ACKs received by the requester.
    pub acks_received: u64,
    /// PSN sequence error NAKs sent.
    pub seq_naks_sent: u64,
    /// PSN sequence error NAKs received.
    pub seq_naks_received: u64,
    /// Sequence NAKs that arrived while already going back (no retry charged).
    pub seq_naks_absorbed: u64,
    /// RNR NAKs sent (no receive WQE).
    pub rnr_naks_sent: u64,
    /// RNR NAKs received.
    pub rnr_naks_received: u64,
    /// Error NAKs sent (invalid request, access, operational).
    pub error_naks_sent: u64,
    /// Error NAKs received.
    pub error_naks_received: u64,
    /// Duplicate requests received (and answered again).
    pub duplicates_received: u64,
    /// Packets dropped for being ahead of the expected PSN.
    pub out_of_order_dropped: u64,
    /// SQ/RQ doorbell writes refused or ignored.
    pub bad_doorbells: u64,
}

/// One queue pair.
#[derive(Debug)]
pub(crate) struct Qp {
    pub(crate) qpn: u32,
    pub(crate) pdn: u32,
    pub(crate) send_cqn: u32,
    pub(crate) recv_cqn: u32,
    pub(crate) sq_base: u64,
    pub(crate) sq_size: u32,
    pub(crate) rq_base: u64,
    pub(crate) rq_size: u32,
    pub(crate) max_send_sge: u8,
    pub(crate) max_recv_sge: u8,
    pub(crate) max_inline: u32,
    pub(crate) sig_all: bool,
    pub(crate) state: QpState,
    pub(crate) mtu_code: u8,
    pub(crate) retry_cnt: u8,
    pub(crate) rnr_retry: u8,
    pub(crate) timeout: u8,
    pub(crate) min_rnr_timer: u8,
    pub(crate) access: u32,
    pub(crate) dest_qpn: u32,
    pub(crate) remote_mac: [u8; 6],
    pub(crate) remote_ip: [u8; 4],
    /// The peer's IPv6 address when the address vector is IPv6 (`AV6`).
    pub(crate) remote_ip6: Option<[u8; 16]>,
    pub(crate) sq_pi: u32,
    pub(crate) sq_head: u32,
    pub(crate) sq_retired: u32,
    pub(crate) rq_pi: u32,
    pub(crate) rq_head: u32,
    pub(crate) req: Requester,
    pub(crate) resp: Responder,
    pub(crate) drained_reported: bool,
    pub(crate) stats: QpStats,
}

/// Creation parameters (CREATE_QP operands after validation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct QpConfig {
    pub(crate) pdn: u32,
    pub(crate) send_cqn: u32,
    pub(crate) recv_cqn: u32,
    pub(crate) sq_base: u64,
    pub(crate) sq_size: u32,
    pub(crate) rq_base: u64,
    pub(crate) rq_size: u32,
    pub(crate) max_send_sge: u8,
    pub(crate) max_recv_sge: u8,
    pub(crate) max_inline: u32,
    pub(crate) sig_all: bool,
}

/// MODIFY_QP operands.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ModifyAttrs {
    pub(crate) mask: u32,
    pub(crate) state: u8,
    pub(crate) mtu_code: u8,
    pub(crate) retry_cnt: u8,
    pub(crate) rnr_retry: u8,
    pub(crate) timeout: u8,
    pub(crate) access: u8,
    pub(crate) min_rnr_timer: u8,
    pub(crate) dest_qpn: u32,
    pub(crate) sq_psn: u32,
    pub(crate) rq_psn: u32,
    pub(crate) mac: [u8; 6],
    pub(crate) ip: [u8; 4],
    pub(crate) ip6: [u8; 16],
}

impl ModifyAttrs {
    /// Reads the `MODIFY_QP` operands (`docs/device-spec.md` §3.12).
    pub(crate) fn parse(operands: &[u8; 56]) -> Self {
        let o = Record::new_unchecked(operands);
        ModifyAttrs {
            mask: o.u32(modify_qp::MASK),
            state: o.u8(modify_qp::STATE),
            mtu_code: o.u8(modify_qp::PATH_MTU),
            retry_cnt: o.u8(modify_qp::RETRY_CNT),
            rnr_retry: o.u8(modify_qp::RNR_RETRY),
            timeout: o.u8(modify_qp::TIMEOUT),
            access: o.u8(modify_qp::ACCESS),
            min_rnr_timer: o.u8(modify_qp::MIN_RNR_TIMER),
            dest_qpn: o.u32(modify_qp::DEST_QPN),
            sq_psn: o.u32(modify_qp::SQ_PSN),
            rq_psn: o.u32(modify_qp::RQ_PSN),
            mac: o.array(modify_qp::REMOTE_MAC),
            ip: o.array(modify_qp::REMOTE_IPV4),
            ip6: o.array(modify_qp::REMOTE_IPV6),
        }
    }
}

/// Why MODIFY_QP failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModifyError {
    /// The transition is not allowed from the current state.
    State,
    /// A required attribute is missing, a forbidden one present, or a value is out of range.
    Param,
}

/// Required and optional attributes of a transition, or `None` if illegal.
fn transition(cur: QpState, new: QpState) -> Option<(u32, u32)> {
    use QpState::*;
    let rts_opt = qp_attr::ACCESS
        | qp_attr::TIMEOUT
        | qp_attr::RETRY_CNT
        | qp_attr::RNR_RETRY
        | qp_attr::MIN_RNR_TIMER;
    Some(match (cur, new) {
        (_, Reset) | (_, Err) => (0, 0),
        (Reset, Init) | (Init, Init) => (0, qp_attr::ACCESS),
        (Init, Rtr) => (
            qp_attr::DEST_QPN | qp_attr::RQ_PSN | qp_attr::AV | qp_attr::PATH_MTU,
            qp_attr::ACCESS | qp_attr::MIN_RNR_TIMER,
        ),
        (Rtr, Rts) => (
            qp_attr::SQ_PSN | qp_attr::TIMEOUT | qp_attr::RETRY_CNT | qp_attr::RNR_RETRY,
            qp_attr::ACCESS | qp_attr::MIN_RNR_TIMER,
        ),
        (Rts, Rts) | (Sqd, Rts) | (Sqe, Rts) | (Rtr, Rtr) => (0, rts_opt),
        (Rts, Sqd) | (Sqd, Sqd) => (0, 0),
        _ => return None,
    })
}

impl Qp {
    pub(crate) fn new(qpn: u32, c: QpConfig) -> Self {
        Qp {
            qpn,
            pdn: c.pdn,
            send_cqn: c.send_cqn,
            recv_cqn: c.recv_cqn,
            sq_base: c.sq_base,
            sq_size: c.sq_size,
            rq_base: c.rq_base,
            rq_size: c.rq_size,
            max_send_sge: c.max_send_sge,
            max_recv_sge: c.max_recv_sge,
            max_inline: c.max_inline,
            sig_all: c.sig_all,
            state: QpState::Reset,
            mtu_code: 1,
            retry_cnt: 0,
            rnr_retry: 0,
            timeout: 0,
            min_rnr_timer: 0,
            access: 0,
            dest_qpn: 0,
            remote_mac: [0; 6],
            remote_ip: [0; 4],
            remote_ip6: None,
            sq_pi: 0,
            sq_head: 0,
            sq_retired: 0,
            rq_pi: 0,
            rq_head: 0,
            req: Requester::default(),
            resp: Responder::default(),
            drained_reported: false,
            stats: QpStats::default(),
        }
    }

    pub(crate) fn mtu(&self) -> u32 {
        rnic_contract::verbs::mtu_bytes(self.mtu_code).unwrap_or(256)
    }

    fn reset_state(&mut self) {
        self.state = QpState::Reset;
        self.mtu_code = 1;
        self.retry_cnt = 0;
        self.rnr_retry = 0;
        self.timeout = 0;
        self.min_rnr_timer = 0;
        self.access = 0;
        self.dest_qpn = 0;
        self.remote_mac = [0; 6];
        self.remote_ip = [0; 4];
        self.remote_ip6 = None;
        self.sq_pi = 0;
        self.sq_head = 0;
        self.sq_retired = 0;
        self.rq_pi = 0;
        self.rq_head = 0;
        self.req = Requester::default();
        self.resp = Responder::default();
        self.drained_reported = false;
    }

    /// MODIFY_QP.
    pub(crate) fn modify(&mut self, cx: &mut Ctx, a: &ModifyAttrs) -> Result<(), ModifyError> {
        if a.mask & !qp_attr::ALL != 0 {
            return Err(ModifyError::Param);
        }
        let new = if a.mask & qp_attr::STATE != 0 {
            QpState::from_u8(a.state).ok_or(ModifyError::Param)?
        } else {
            self.state
        };
        let (required, optional) = transition(self.state, new).ok_or(ModifyError::State)?;
        let attrs = a.mask & !qp_attr::STATE;
        // AV6 stands wherever AV may (§3.12); the two never come together.
        let as_table = if attrs & qp_attr::AV6 != 0 {
            (attrs & !qp_attr::AV6) | qp_attr::AV
        } else {
            attrs
        };
        if as_table & required != required
            || as_table & !(required | optional) != 0
            || attrs & (qp_attr::AV | qp_attr::AV6) == qp_attr::AV | qp_attr::AV6
        {
            return Err(ModifyError::Param);
        }
        let has = |bit: u32| attrs & bit != 0;
        // Validate every value before changing anything.
        if has(qp_attr::PATH_MTU)
            && (rnic_contract::verbs::mtu_bytes(a.mtu_code).is_none()
                || a.mtu_code > cx.limits.max_mtu_code)
        {
            return Err(ModifyError::Param);
        }
        if (has(qp_attr::RETRY_CNT) && a.retry_cnt > 7)
            || (has(qp_attr::RNR_RETRY) && a.rnr_retry > 7)
            || (has(qp_attr::TIMEOUT) && a.timeout > 31)
            || (has(qp_attr::MIN_RNR_TIMER) && a.min_rnr_timer > 31)
            || (has(qp_attr::ACCESS)
                && u32::from(a.access) & !(access::REMOTE_READ | access::REMOTE_WRITE) != 0)
            || (has(qp_attr::DEST_QPN) && a.dest_qpn > crate::roce::PSN_MASK)
            || (has(qp_attr::SQ_PSN) && a.sq_psn > crate::roce::PSN_MASK)
            || (has(qp_attr::RQ_PSN) && a.rq_psn > crate::roce::PSN_MASK)
            || (has(qp_attr::AV6) && cx.port.ipv6.is_none())
        {
            return Err(ModifyError::Param);
        }

        if new == QpState::Reset {
            self.reset_state();
            return Ok(());
        }
        if new == QpState::Err {
            if self.state != QpState::Err {
                self.enter_err(cx, None);
            }
            return Ok(());
        }
        if has(qp_attr::PATH_MTU) {
            self.mtu_code = a.mtu_code;
        }
        if has(qp_attr::RETRY_CNT) {
            self.retry_cnt = a.retry_cnt;
            self.req.retries_left = a.retry_cnt;
        }
        if has(qp_attr::RNR_RETRY) {
            self.rnr_retry = a.rnr_retry;
            self.req.rnr_left = a.rnr_retry;
        }
        if has(qp_attr::TIMEOUT) {
            self.timeout = a.timeout;
        }
        if has(qp_attr::MIN_RNR_TIMER) {
            self.min_rnr_timer = a.min_rnr_timer;
        }
        if has(qp_attr::ACCESS) {
            self.access = u32::from(a.access);
        }
        if has(qp_attr::DEST_QPN) {
            self.dest_qpn = a.dest_qpn;
        }
        if has(qp_attr::AV) {
            self.remote_mac = a.mac;
            self.remote_ip = a.ip;
            self.remote_ip6 = None;
        }
        if has(qp_attr::AV6) {
            self.remote_mac = a.mac;
            self.remote_ip = [0; 4];
            self.remote_ip6 = Some(a.ip6);
        }
        if has(qp_attr::RQ_PSN) {
            self.resp.epsn = a.rq_psn;
            self.resp.msn = 0;
        }
        if has(qp_attr::SQ_PSN) {
            self.req.next_psn = a.sq_psn;
            self.req.una = a.sq_psn;
            self.req.sent_hwm = a.sq_psn;
        }
        let old = self.state;
        self.state = new;
        match new {
            QpState::Rts => {
                self.drained_reported = false;
                if old != QpState::Rts {
                    self.kick_sq(cx);
                }
            }
            QpState::Sqd => self.check_drained(cx),
            _ => {}
        }
        Ok(())
    }

    /// QUERY_QP output (64 bytes).
    pub(crate) fn query(&self) -> [u8; QUERY_RECORD_SIZE] {
        let mut b = [0u8; QUERY_RECORD_SIZE];
        let mut r = Record::new_unchecked(&mut b);
        r.set_u32(query_qp::QPN, self.qpn);
        r.set_u32(query_qp::PDN, self.pdn);
        r.set_u8(query_qp::STATE, self.state.code());
        r.set_u8(query_qp::PATH_MTU, self.mtu_code);
        r.set_u8(query_qp::RETRY_CNT, self.retry_cnt);
        r.set_u8(query_qp::RNR_RETRY, self.rnr_retry);
        r.set_u8(query_qp::TIMEOUT, self.timeout);
        r.set_u8(query_qp::ACCESS, self.access as u8);
        r.set_u8(query_qp::MIN_RNR_TIMER, self.min_rnr_timer);
        r.set_u32(query_qp::DEST_QPN, self.dest_qpn);
        r.set_u32(query_qp::SQ_PSN, self.req.next_psn);
        r.set_u32(query_qp::RQ_PSN, self.resp.epsn);
        r.set_bytes(query_qp::REMOTE_MAC, &self.remote_mac);
        r.set_bytes(query_qp::REMOTE_IPV4, &self.remote_ip);
        r.set_u32(query_qp::SEND_CQN, self.send_cqn);
        r.set_u32(query_qp::RECV_CQN, self.recv_cqn);
        r.set_u32(query_qp::SQ_ENTRIES, self.sq_size);
        r.set_u32(query_qp::RQ_ENTRIES, self.rq_size);
        r.set_u32(query_qp::SQ_HEAD, self.sq_head);
        r.set_u32(query_qp::RQ_HEAD, self.rq_head);
        b
    }

    pub(crate) fn stats(&self) -> QpStats {
        QpStats {
            qpn: self.qpn,
            state: Some(self.state),
            sq_posted: self.sq_pi,
            ..self.stats.clone()
        }
    }

    // ---- doorbells -------------------------------------------------------

    /// Checks a `ring` doorbell's producer index `pi` (§8.5): the count may not
    /// run more than `size` entries ahead of `consumed`, and may not move
    /// backwards from `prev` (a step of more than a ring, mod 2^32), which would
    /// withdraw posted work. An impossible index is counted as a bad doorbell and
    /// fails the QP; returns whether `pi` was accepted.
    fn producer_index_ok(
        &mut self,
        cx: &mut Ctx,
        ring: &'static str,
        pi: u32,
        consumed: u32,
        prev: u32,
        size: u32,
    ) -> bool {
        let posted = pi.wrapping_sub(consumed);
        let new = pi.wrapping_sub(prev);
        if posted > size || new > size {
            self.stats.bad_doorbells += 1;
            tracing::warn!(
                qpn = self.qpn,
                pi,
                "{ring} doorbell with impossible producer index"
            );
            self.fail(cx, qp_error_cause::BAD_DOORBELL);
            return false;
        }
        true
    }

    /// SQ producer index doorbell.
    pub(crate) fn sq_doorbell(&mut self, cx: &mut Ctx, pi: u32) {
        if self.state == QpState::Reset {
            self.stats.bad_doorbells += 1;
            return;
        }
        if !self.producer_index_ok(cx, "SQ", pi, self.sq_retired, self.sq_pi, self.sq_size) {
            return;
        }
        self.sq_pi = pi;
        if self.state == QpState::Err {
            self.flush_unfetched(cx);
            return;
        }
        self.kick_sq(cx);
    }

    /// RQ producer index doorbell.
    pub(crate) fn rq_doorbell(&mut self, cx: &mut Ctx, pi: u32) {
        if self.state == QpState::Reset || self.rq_size == 0 {
            self.stats.bad_doorbells += 1;
            return;
        }
        // Like the SQ (§8.5), checked against the consumed receives.
        if !self.producer_index_ok(cx, "RQ", pi, self.rq_head, self.rq_pi, self.rq_size) {
            return;
        }
        self.rq_pi = pi;
        if self.state == QpState::Err {
            self.flush_rq(cx);
        }
    }

    // ---- WQE parsing -----------------------------------------------------

    fn read_wqe(&self, cx: &mut Ctx, base: u64, size: u32, idx: u32) -> Option<[u8; WQE_SIZE]> {
        let addr = base + u64::from(idx & (size - 1)) * WQE_SIZE as u64;
        let mut b = [0u8; WQE_SIZE];
        cx.env.dma_read(DmaScope::qp(self.qpn), addr, &mut b).ok()?;
        Some(b)
    }

    /// The first `n` SGEs of a WQE (`n` is at most [`wqe::MAX_SGE`], checked by the
    /// callers against the QP's maximum, which is no larger).
    /// Parsed into an array on the stack (the caller copies them once into the
    /// WQE's own storage); returns the array and how many are set.
    fn parse_sges(
        n: u8,
        sge: impl Fn(usize) -> Option<wqe::SgeRepr>,
    ) -> ([Sge; wqe::MAX_SGE as usize], usize) {
        let mut out = [Sge::default(); wqe::MAX_SGE as usize];
        let mut count = 0;
        for s in (0..usize::from(n)).filter_map(sge) {
            if let Some(slot) = out.get_mut(count) {
                *slot = Sge {
                    addr: s.addr,
                    len: s.len,
                    lkey: s.lkey,
                };
                count += 1;
            }
        }
        (out, count)
    }

    /// Parses and validates a send WQE. Errors are recorded in the WQE.
    fn parse_sq_wqe(&self, cx: &mut Ctx, bytes: &[u8; WQE_SIZE]) -> SqWqe {
        let b = SendWqe::new_unchecked(&bytes[..]);
        let mut w = SqWqe {
            wr_id: b.wr_id(),
            opcode: b.opcode(),
            flags: b.flags(),
            imm_inv: b.imm_inv(),
            remote_addr: b.remote_addr(),
            rkey: b.rkey(),
            ..SqWqe::default()
        };
        let num_sge = b.num_sge();
        let op_err = Some((WcStatus::LocalQpOperationError, 0));
        if w.opcode > wqe::opcode::MAX || w.flags & !wqe::flags::ALL != 0 {
            w.error = op_err;
            return w;
        }
        match w.opcode {
            wqe::opcode::FAST_REG => {
                w.fr = FastReg {
                    iova: b.fr_iova(),
                    key: b.fr_key(),
                    access: b.fr_access(),
                    length: b.fr_length(),
                    page_list: b.fr_page_list(),
                    page_count: b.fr_page_count(),
                    fbo: b.fr_fbo(),
                    page_shift: b.fr_page_shift(),
                };
                if w.flags & wqe::flags::INLINE != 0 {
                    w.error = op_err;
                }
                return w;
            }
            wqe::opcode::LOCAL_INV => {
                if w.flags & wqe::flags::INLINE != 0 {
                    w.error = op_err;
                }
                return w;
            }
            _ => {}
        }
        let need = if w.opcode == wqe::opcode::RDMA_READ {
            Need::ReadSink
        } else {
            Need::LocalRead
        };
        if w.flags & wqe::flags::INLINE != 0 {
            let len = b.inline_len();
            if w.opcode == wqe::opcode::RDMA_READ || len > self.max_inline.min(MAX_INLINE) {
                w.error = op_err;
                return w;
            }
            w.len = len;
            w.inline = Some(b.payload()[..len as usize].into());
        } else {
            if num_sge > self.max_send_sge {
                w.error = op_err;
                return w;
            }
            w.sges = match num_sge {
                // One SGE (the common case) goes straight into the inline list.
                1 => b.sge(0).map_or_else(SgeList::default, |s| SgeList::Inline {
                    sge: Sge {
                        addr: s.addr,
                        len: s.len,
                        lkey: s.lkey,
                    },
                    len: 1,
                }),
                _ => {
                    let (sges, n) = Self::parse_sges(num_sge, |i| b.sge(i));
                    SgeList::new(&sges[..n])
                }
            };
            let mut total: u64 = 0;
            for s in w.sges.iter() {
                total += u64::from(s.len);
            }
            if total > u64::from(cx.limits.max_msg_size) {
                w.error = Some((WcStatus::LocalLengthError, 0));
                return w;
            }
            w.len = total as u32;
            for s in w.sges.iter() {
                if s.len == 0 {
                    continue;
                }
                if let Err(e) = cx
                    .mrs
                    .check(s.lkey, self.pdn, need, s.addr, u64::from(s.len))
                {
                    w.error = Some((WcStatus::LocalProtectionError, mr_err_code(e)));
                    return w;
                }
            }
        }
        w.npkts = w.len.div_ceil(self.mtu()).max(1);
        w
    }

    /// Parses a receive WQE; `None` on a malformed one.
    pub(crate) fn parse_rq_wqe(&self, bytes: &[u8; WQE_SIZE]) -> Result<RqWqe, u64> {
        let b = RecvWqe::new_unchecked(&bytes[..]);
        let wr_id = b.wr_id();
        let n = b.num_sge();
        if n > self.max_recv_sge {
            return Err(wr_id);
        }
        let (sges, count) = Self::parse_sges(n, |i| b.sge(i));
        let sges = sges[..count].to_vec();
        let capacity = sges.iter().map(|s| u64::from(s.len)).sum();
        Ok(RqWqe {
            wr_id,
            sges,
            capacity,
        })
    }

    pub(crate) fn fetch_rq_wqe(&self, cx: &mut Ctx) -> Option<Result<RqWqe, u64>> {
        let b = self.read_wqe(cx, self.rq_base, self.rq_size, self.rq_head)?;
        Some(self.parse_rq_wqe(&b))
    }

    /// Fetches newly posted send WQEs (RTS only; stops after a WQE in error).
    /// At most [`super::SQ_WQES_PER_SERVICE`] per service call; a WQE in error is
    /// always the last one fetched (fetching stops after it), so one look at the
    /// newest outstanding WQE tells whether fetching must stop.
    pub(crate) fn fetch_sq(&mut self, cx: &mut Ctx) {
        if self.req.fetch_service != cx.service {
            self.req.fetch_service = cx.service;
            self.req.fetched = 0;
        }
        while self.state == QpState::Rts
            && self.sq_head != self.sq_pi
            && self.req.outstanding.len() < self.sq_size as usize
            && self
                .req
                .outstanding
                .back()
                .is_none_or(|w| w.error.is_none())
        {
            if self.req.fetched >= super::SQ_WQES_PER_SERVICE {
                *cx.more_work = true;
                return;
            }
            self.req.fetched += 1;
            let Some(b) = self.read_wqe(cx, self.sq_base, self.sq_size, self.sq_head) else {
                self.fail(cx, qp_error_cause::WQE_DMA);
                return;
            };
            let mut w = self.parse_sq_wqe(cx, &b);
            if w.error.is_some() {
                w.npkts = 0;
            }
            w.first_psn = self.req.next_psn;
            self.req.next_psn = crate::roce::psn_add(self.req.next_psn, w.npkts);
            self.req.outstanding.push_back(w);
            self.sq_head = self.sq_head.wrapping_add(1);
        }
    }

    // ---- completions -----------------------------------------------------

    /// Writes a completion through the CQE fault hook. Returns the status that was
    /// written, or `None` if the CQ could not take it.
    pub(crate) fn complete(
        &mut self,
        cx: &mut Ctx,
        recv: bool,
        mut cqe: CqeRepr,
        solicited: bool,
    ) -> Option<u8> {
        cqe.qpn = self.qpn;
        let point = FaultPoint {
            site: FaultSite::Cqe,
            scope: FaultScope {
                queue: Some(self.qpn),
                ..FaultScope::default()
            },
        };
        if let Some(FaultAction::CqeError { status }) = cx.env.fault(point) {
            tracing::info!(qpn = self.qpn, status, "fault: CQE status overridden");
            cqe.status = status;
        }
        let cqn = if recv { self.recv_cqn } else { self.send_cqn };
        let cq = cx.cqs.get_mut(cqn)?;
        cq.push(cx.env, &cqe, solicited).ok()?;
        if recv {
            self.stats.rq_completed += 1;
        } else {
            self.stats.sq_completed += 1;
        }
        if cqe.status != WcStatus::Success.code() {
            self.stats.error_completions += 1;
        }
        Some(cqe.status)
    }

    /// Completes a WQE and moves the QP to ERR if the CQ failed or the written
    /// status is an error. Returns false if the QP went to ERR.
    pub(crate) fn complete_checked(
        &mut self,
        cx: &mut Ctx,
        recv: bool,
        cqe: CqeRepr,
        solicited: bool,
    ) -> bool {
        match self.complete(cx, recv, cqe, solicited) {
            None => {
                self.fail(cx, qp_error_cause::CQ_ERROR);
                false
            }
            Some(s) if s != WcStatus::Success.code() => {
                self.fail(cx, s);
                false
            }
            Some(_) => true,
        }
    }

    /// The device moves the QP to ERR on its own: async event, then flush.
    pub(crate) fn fail(&mut self, cx: &mut Ctx, cause: u8) {
        if self.state == QpState::Err || self.state == QpState::Reset {
            return;
        }
        cx.env.post_event(
            AsyncEvent::QpError {
                qpn: self.qpn,
                cause,
            }
            .into(),
        );
        self.enter_err(cx, Some(cause));
    }

    /// Enters ERR and flushes every outstanding and posted WQE with FLUSHED.
    pub(crate) fn enter_err(&mut self, cx: &mut Ctx, cause: Option<u8>) {
        tracing::debug!(qpn = self.qpn, ?cause, "QP enters ERR");
        self.state = QpState::Err;
        let outstanding = std::mem::take(&mut self.req.outstanding);
        self.req = Requester::default();
        self.resp = Responder::default();
        for w in outstanding {
            self.flush_one(cx, false, w.wr_id, w.cqe_opcode());
            self.sq_retired = self.sq_retired.wrapping_add(1);
        }
        self.flush_unfetched(cx);
        self.flush_rq(cx);
    }

    fn flush_one(&mut self, cx: &mut Ctx, recv: bool, wr_id: u64, opcode: u8) {
        let cqe = CqeRepr {
            wr_id,
            opcode,
            status: WcStatus::Flushed.code(),
            ..CqeRepr::default()
        };
        self.stats.flushed += 1;
        let _ = self.complete(cx, recv, cqe, false);
    }

    /// Flushes SQ WQEs posted but not fetched (ERR state).
    fn flush_unfetched(&mut self, cx: &mut Ctx) {
        while self.sq_head != self.sq_pi {
            let (wr_id, opcode) = match self.read_wqe(cx, self.sq_base, self.sq_size, self.sq_head)
            {
                Some(bytes) => {
                    let b = SendWqe::new_unchecked(&bytes[..]);
                    let w = SqWqe {
                        opcode: b.opcode(),
                        ..SqWqe::default()
                    };
                    (b.wr_id(), w.cqe_opcode())
                }
                None => (0, cqe::opcode::SEND),
            };
            self.flush_one(cx, false, wr_id, opcode);
            self.sq_head = self.sq_head.wrapping_add(1);
            self.sq_retired = self.sq_head;
        }
    }

    /// Flushes every posted receive WQE (ERR state).
    fn flush_rq(&mut self, cx: &mut Ctx) {
        while self.rq_size > 0 && self.rq_head != self.rq_pi {
            let wr_id = self
                .read_wqe(cx, self.rq_base, self.rq_size, self.rq_head)
                .map_or(0, |b| RecvWqe::new_unchecked(&b[..]).wr_id());
            self.flush_one(cx, true, wr_id, cqe::opcode::RECV);
            self.rq_head = self.rq_head.wrapping_add(1);
        }
    }

    /// SQD: report the drain once nothing is outstanding.
    pub(crate) fn check_drained(&mut self, cx: &mut Ctx) {
        if self.state == QpState::Sqd && !self.drained_reported && self.req.outstanding.is_empty() {
            self.drained_reported = true;
            cx.env
                .post_event(AsyncEvent::SqDrained { qpn: self.qpn }.into());
        }
    }
}

/// Vendor error detail for an MR check failure (CQE `vendor_err`).
pub fn mr_err_code(e: MrError) -> u32 {
    match e {
        MrError::BadKey => 1,
        MrError::WrongPd => 2,
        MrError::NoAccess => 3,
        MrError::NotValid => 4,
        MrError::Bounds => 5,
    }
}

#[cfg(test)]
mod sge_list_tests {
    use super::{Sge, SgeList};

    fn sge(addr: u64) -> Sge {
        Sge {
            addr,
            len: 64,
            lkey: 0x100,
        }
    }

    #[test]
    fn lists_of_up_to_one_sge_are_inline_and_longer_ones_shared() {
        assert!(matches!(SgeList::new(&[]), SgeList::Inline { len: 0, .. }));
        assert!(SgeList::new(&[]).is_empty());
        let one = SgeList::new(&[sge(0x1000)]);
        assert!(matches!(one, SgeList::Inline { len: 1, .. }));
        assert_eq!(&*one, &[sge(0x1000)]);
        let two = SgeList::new(&[sge(0x1000), sge(0x2000)]);
        assert!(matches!(two, SgeList::Shared(_)));
        assert_eq!(&*two, &[sge(0x1000), sge(0x2000)]);
    }

    #[test]
    fn same_means_the_same_shared_list_or_an_equal_inline_sge() {
        let one = SgeList::new(&[sge(0x1000)]);
        assert!(one.same(&one.clone()));
        assert!(one.same(&SgeList::new(&[sge(0x1000)])));
        assert!(!one.same(&SgeList::new(&[sge(0x2000)])));
        let two = SgeList::new(&[sge(0x1000), sge(0x2000)]);
        assert!(two.same(&two.clone()));
        // Equal contents in another allocation are another WQE's list.
        assert!(!two.same(&SgeList::new(&[sge(0x1000), sge(0x2000)])));
        assert!(!one.same(&two));
    }
}
