//! The connection manager (`docs/device-spec.md` §3.14, §11.6, §11.7): listeners
//! and connections, the IBTA CM exchange on QP1, the QP transitions it drives, its
//! retransmission timers and peer MAC resolution.
//!
//! Every unit of work is bounded (§15.1): a command or a received MAD looks at
//! most at the 64 listeners and 256 connection slots, sends at most one message and
//! posts at most one or two events; a timer pass visits each slot once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rnic_contract::admin::operands;
use rnic_contract::cm::{
    self as c, family, private_data, qp_defaults, record, reject_reason, state, timing,
};
use rnic_contract::event::{cm_disconnected, cm_failure, code};
use rnic_contract::field::Record;
use rnic_contract::mad::{self, attr, ip_cm, Mad, MAD_LEN};
use rnic_contract::verbs::{access, qp_attr, QpState};
use serde::Serialize;

use super::cm_wire::{self, MadBytes, RepFields, ReqFields};
use super::neigh::{
    Arp, Nd, NeighbourCache, ARP_REPLY, ARP_REQUEST, BROADCAST, ND_ADVERTISEMENT, ND_SOLICITATION,
};
use super::qp::ModifyAttrs;
use super::{AdminStatus, AsyncEvent, DeviceEnv, DmaScope, Owner, Verbs};
use crate::events::Event;
use crate::roce::{self, Bth, Deth, EthHeader, Ipv4Info, Ipv6Info, RocePacket};

/// Transaction IDs the active side uses: this tag in the upper half, the
/// connection id in the lower half.
const TID_TAG: u64 = 0x524E_4943 << 32;

/// A listener.
#[derive(Clone, Copy, Debug)]
struct Listener {
    family: u8,
    port: u16,
    /// `None`: every address of the family.
    addr: Option<IpAddr>,
}

/// One connection slot (`docs/device-spec.md` §3.14).
#[derive(Clone, Debug)]
struct Conn {
    /// The connection id = the local communication ID.
    id: u32,
    state: u8,
    active: bool,
    local: IpAddr,
    remote: IpAddr,
    local_port: u16,
    remote_port: u16,
    remote_mac: [u8; 6],
    remote_comm_id: u32,
    transaction_id: u64,
    /// The QP the connection holds (0: none).
    qpn: u32,
    remote_qpn: u32,
    listener: u32,
    local_psn: u32,
    remote_psn: u32,
    mtu_code: u8,
    responder_resources: u8,
    initiator_depth: u8,
    peer_responder_resources: u8,
    peer_initiator_depth: u8,
    reject_reason: u16,
    peer_private: Vec<u8>,
    /// The message to retransmit (REQ, REP or DREQ).
    pending: Option<MadBytes>,
    retries_left: u8,
    deadline: Option<Duration>,
    resolve_attempts: u8,
    peer_disconnected: bool,
    disconnect_called: bool,
}

impl Conn {
    fn family(&self) -> u8 {
        if self.remote.is_ipv4() {
            family::IPV4
        } else {
            family::IPV6
        }
    }
}

/// Connection manager counters (host-side statistics, §14.2).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CmStats {
    /// CM MADs sent, retransmissions included.
    pub mads_sent: u64,
    /// CM MADs received (before the checks of §11.6).
    pub mads_received: u64,
    /// REQ, REP and DREQ retransmissions.
    pub retransmissions: u64,
    /// Received MADs dropped by a check of §11.6 (Q_Key, length, header).
    pub mads_malformed: u64,
    /// Received MADs that named no connection or came in a state that does not
    /// expect them (answered or dropped as §3.14 says).
    pub mads_unexpected: u64,
    /// REJs sent.
    pub rejects_sent: u64,
    /// ARP requests answered for the port's IPv4 address.
    pub arp_answered: u64,
    /// ARP requests sent to resolve a peer.
    pub arp_sent: u64,
    /// Neighbor Solicitations answered for the port's IPv6 address.
    pub nd_answered: u64,
    /// Neighbor Solicitations sent to resolve a peer.
    pub nd_sent: u64,
    /// Neighbour entries learned.
    pub neighbours_learned: u64,
    /// Connections that found their peer in the neighbour cache.
    pub neighbour_hits: u64,
    /// Connections that had to resolve their peer.
    pub neighbour_misses: u64,
    /// Listeners in use.
    pub listeners: u32,
    /// Neighbour cache entries held.
    pub neighbours: u32,
    /// Connection slots in use.
    pub connections: u32,
}

/// The connection manager's state, owned by the verbs engine.
#[derive(Debug)]
pub(crate) struct Cm {
    listeners: Vec<Option<Listener>>,
    /// Connection slots in use or used before; grows up to `MAX_CONNECTIONS` as
    /// slots are first needed (a device that never connects allocates none).
    conns: Vec<Option<Conn>>,
    generations: Vec<u16>,
    neighbours: NeighbourCache,
    psn_seed: u32,
    ud_psn: u32,
    next_port: u16,
    stats: CmStats,
}

impl Default for Cm {
    fn default() -> Self {
        Cm {
            listeners: Vec::new(),
            conns: Vec::new(),
            generations: vec![0; usize::from(c::MAX_CONNECTIONS)],
            neighbours: NeighbourCache::default(),
            psn_seed: 0x5A17,
            ud_psn: 0,
            next_port: c::EPHEMERAL_PORT_FIRST,
            stats: CmStats::default(),
        }
    }
}

impl Cm {
    /// The lowest free listener slot, growing the table (slots are made as
    /// listeners need them, up to `MAX_LISTENERS`, so a device that never listens
    /// has no slots to scan); `None` when all `MAX_LISTENERS` are taken.
    fn free_listener_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.listeners.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.listeners.len() >= usize::from(c::MAX_LISTENERS) {
            return None;
        }
        self.listeners.push(None);
        Some(self.listeners.len() - 1)
    }

    /// Counters, with the current table occupancy.
    pub(crate) fn stats(&self) -> CmStats {
        let mut s = self.stats.clone();
        s.listeners = self.listeners.iter().flatten().count() as u32;
        s.neighbours = self.neighbours.len() as u32;
        s.connections = self.conns.iter().flatten().count() as u32;
        s
    }

    /// Forgets the neighbour cache (a port address changed).
    pub(crate) fn port_changed(&mut self) {
        self.neighbours.clear();
    }

    /// Device reset or `RESET_FUNCTION`: every listener, connection and neighbour
    /// is forgotten (generations continue, so old ids stay invalid).
    pub(crate) fn reset(&mut self) {
        let generations = std::mem::take(&mut self.generations);
        *self = Cm::default();
        self.generations = generations;
    }

    /// A connection QP `qpn` was destroyed: whoever holds it lets go.
    pub(crate) fn qp_destroyed(&mut self, qpn: u32) {
        for conn in self.conns.iter_mut().flatten() {
            if conn.qpn == qpn {
                conn.qpn = 0;
            }
        }
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        let slot = (id & 0xFFFF) as usize;
        if slot == 0 || slot > self.conns.len() {
            return None;
        }
        let i = slot - 1;
        self.conns[i].as_ref().filter(|c| c.id == id).map(|_| i)
    }

    fn conn(&self, id: u32) -> Option<&Conn> {
        self.slot_of(id).and_then(|i| self.conns[i].as_ref())
    }

    fn conn_mut(&mut self, id: u32) -> Option<&mut Conn> {
        self.slot_of(id).and_then(|i| self.conns[i].as_mut())
    }

    fn qp_held(&self, qpn: u32) -> bool {
        self.conns.iter().flatten().any(|c| c.qpn == qpn)
    }

    /// A free slot's new connection id.
    fn alloc_id(&mut self) -> Option<u32> {
        let i = match self.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None if !self.full() => {
                self.conns.push(None);
                self.conns.len() - 1
            }
            None => return None,
        };
        self.generations[i] = self.generations[i].wrapping_add(1);
        Some(u32::from(self.generations[i]) << 16 | (i as u32 + 1))
    }

    /// Whether every connection slot holds a connection.
    fn full(&self) -> bool {
        self.conns.len() >= usize::from(c::MAX_CONNECTIONS)
            && self.conns.iter().all(Option::is_some)
    }

    fn insert(&mut self, conn: Conn) {
        let i = (conn.id & 0xFFFF) as usize - 1;
        self.conns[i] = Some(conn);
    }

    /// A starting PSN: spread over 24 bits, different for every connection and,
    /// through `salt` (the port address), for every device.
    fn new_psn(&mut self, id: u32, salt: u32) -> u32 {
        self.psn_seed = self
            .psn_seed
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12_345);
        (id.wrapping_mul(0x9E37_79B1) ^ self.psn_seed ^ salt.rotate_left(7)) & roce::PSN_MASK
    }

    /// The passive connection waiting for RTU on QP `qpn`, if any.
    pub(crate) fn waiting_for_rtu(&self, qpn: u32) -> Option<u32> {
        self.conns
            .iter()
            .flatten()
            .find(|c| c.qpn == qpn && c.state == state::REP_SENT)
            .map(|c| c.id)
    }

    fn pick_port(&mut self, taken: impl Fn(u16) -> bool) -> Option<u16> {
        let span = u32::from(u16::MAX - c::EPHEMERAL_PORT_FIRST) + 1;
        for _ in 0..span.min(1024) {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                c::EPHEMERAL_PORT_FIRST
            } else {
                p + 1
            };
            if !taken(p) {
                return Some(p);
            }
        }
        None
    }

    /// The earliest timer of any connection.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.conns.iter().flatten().filter_map(|c| c.deadline).min()
    }
}

/// The 16-byte operand form of an address (IPv4 in bytes 0..4).
fn operand_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => c::addr_from_ipv4(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Reads an operand address of `fam`; `None` when it is malformed for the family.
fn parse_operand_addr(fam: u8, a: [u8; 16]) -> Option<IpAddr> {
    match fam {
        family::IPV4 => c::ipv4_from_addr(&a).map(IpAddr::from),
        family::IPV6 => Some(IpAddr::from(a)),
        _ => None,
    }
}

fn unusable_remote(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// QP attributes for the transitions the connection manager drives.
fn to_init() -> ModifyAttrs {
    ModifyAttrs {
        mask: qp_attr::STATE | qp_attr::ACCESS,
        state: QpState::Init.code(),
        access: (access::REMOTE_READ | access::REMOTE_WRITE) as u8,
        ..ModifyAttrs::default()
    }
}

fn to_rtr(conn: &Conn) -> ModifyAttrs {
    let mut a = ModifyAttrs {
        mask: qp_attr::STATE
            | qp_attr::DEST_QPN
            | qp_attr::RQ_PSN
            | qp_attr::PATH_MTU
            | qp_attr::MIN_RNR_TIMER,
        state: QpState::Rtr.code(),
        mtu_code: conn.mtu_code,
        min_rnr_timer: qp_defaults::MIN_RNR_TIMER,
        dest_qpn: conn.remote_qpn,
        rq_psn: conn.remote_psn,
        mac: conn.remote_mac,
        ..ModifyAttrs::default()
    };
    match conn.remote {
        IpAddr::V4(v4) => {
            a.mask |= qp_attr::AV;
            a.ip = v4.octets();
        }
        IpAddr::V6(v6) => {
            a.mask |= qp_attr::AV6;
            a.ip6 = v6.octets();
        }
    }
    a
}

fn to_rts(conn: &Conn) -> ModifyAttrs {
    ModifyAttrs {
        mask: qp_attr::STATE
            | qp_attr::SQ_PSN
            | qp_attr::TIMEOUT
            | qp_attr::RETRY_CNT
            | qp_attr::RNR_RETRY,
        state: QpState::Rts.code(),
        sq_psn: conn.local_psn,
        timeout: qp_defaults::TIMEOUT,
        retry_cnt: qp_defaults::RETRY_CNT,
        rnr_retry: qp_defaults::RNR_RETRY,
        ..ModifyAttrs::default()
    }
}

fn to_err() -> ModifyAttrs {
    ModifyAttrs {
        mask: qp_attr::STATE,
        state: QpState::Err.code(),
        ..ModifyAttrs::default()
    }
}

fn event(code: u8, conn: u32, detail: u32) -> Event {
    AsyncEvent::Cm { code, conn, detail }.into()
}

fn dur_us(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl Verbs {
    /// The port's address of family `fam`, if it has one.
    pub(crate) fn own_addr(&self, fam: u8) -> Option<IpAddr> {
        match fam {
            family::IPV4 => Some(IpAddr::V4(Ipv4Addr::from(self.port.ip))),
            family::IPV6 => self.port.ipv6.map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            _ => None,
        }
    }

    fn is_own(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.octets() == self.port.ip,
            IpAddr::V6(v6) => self.port.ipv6 == Some(v6.octets()),
        }
    }

    /// The path MTU code this port offers (§3.14).
    fn own_mtu_code(&self) -> u8 {
        c::path_mtu_for_eth_mtu(self.eth_mtu).clamp(1, self.limits.max_mtu_code)
    }

    /// Runs a connection-manager driven transition of QP `qpn`; false when the QP
    /// is gone or refused it.
    fn cm_modify(&mut self, env: &mut dyn DeviceEnv, qpn: u32, a: &ModifyAttrs) -> bool {
        if qpn == 0 {
            return false;
        }
        matches!(
            self.with_qp(env, qpn, |qp, cx| qp.modify(cx, a)),
            Some(Ok(()))
        )
    }

    /// Moves QP `qpn` to ERR unless it is in RESET or ERR already.
    fn cm_qp_error(&mut self, env: &mut dyn DeviceEnv, qpn: u32) {
        let live = self
            .qps
            .get(qpn)
            .is_some_and(|q| !matches!(q.state, QpState::Reset | QpState::Err));
        if live {
            self.cm_modify(env, qpn, &to_err());
        }
    }

    /// Sends one CM MAD to `dst` (loopback when `dst` is the port itself).
    fn send_mad(&mut self, env: &mut dyn DeviceEnv, dst_mac: [u8; 6], dst: IpAddr, m: &MadBytes) {
        self.cm.ud_psn = (self.cm.ud_psn + 1) & roce::PSN_MASK;
        let (ip, ip6) = match dst {
            IpAddr::V4(v4) => (
                Ipv4Info {
                    src: self.port.ip,
                    dst: v4.octets(),
                    ttl: roce::DEFAULT_TTL,
                    ..Ipv4Info::default()
                },
                None,
            ),
            IpAddr::V6(v6) => (
                Ipv4Info::default(),
                Some(Ipv6Info {
                    src: self.port.ipv6.unwrap_or_default(),
                    dst: v6.octets(),
                    hop_limit: roce::DEFAULT_TTL,
                    ..Ipv6Info::default()
                }),
            ),
        };
        let p = RocePacket {
            eth: EthHeader {
                dst: dst_mac,
                src: self.port.mac,
            },
            ip,
            ip6,
            udp_src_port: 0xC000 | (self.cm.ud_psn & 0x3FFF) as u16,
            bth: Bth {
                opcode: roce::opcode::UD_SEND_ONLY,
                pkey: roce::DEFAULT_PKEY,
                dest_qp: mad::GSI_QPN,
                psn: self.cm.ud_psn,
                ..Bth::default()
            },
            deth: Some(Deth {
                qkey: mad::GSI_QKEY,
                src_qp: mad::GSI_QPN,
            }),
            payload: m.to_vec(),
            ..RocePacket::default()
        };
        self.cm.stats.mads_sent += 1;
        self.route(
            env,
            mad::GSI_QPN,
            &mut vec![super::transport::OutPacket {
                from: mad::GSI_QPN,
                pkt: p,
                source: None,
                frame: None,
            }],
        );
    }

    /// Sends (or retransmits) a connection's pending message and arms its timer.
    fn send_pending(&mut self, env: &mut dyn DeviceEnv, id: u32, wait_us: u64) {
        let now = env.now();
        let Some(conn) = self.cm.conn_mut(id) else {
            return;
        };
        conn.deadline = Some(now + dur_us(wait_us));
        let (mac, ip, m) = (conn.remote_mac, conn.remote, conn.pending);
        if let Some(m) = m {
            self.send_mad(env, mac, ip, &m);
        }
    }

    /// Sends a REJ to `to` (MAC, address); `ids` = (transaction ID, local and
    /// remote communication IDs).
    fn send_rej(
        &mut self,
        env: &mut dyn DeviceEnv,
        to: ([u8; 6], IpAddr),
        ids: (u64, u32, u32),
        message: u8,
        reason: u16,
        private: &[u8],
    ) {
        self.cm.stats.rejects_sent += 1;
        let m = cm_wire::rej(ids.0, ids.1, ids.2, message, reason, private);
        self.send_mad(env, to.0, to.1, &m);
    }

    /// Reads `len` bytes of private data the driver named (at most `max`).
    fn read_private(
        env: &mut dyn DeviceEnv,
        addr: u64,
        len: usize,
        max: usize,
    ) -> Result<Vec<u8>, AdminStatus> {
        if len > max {
            return Err(AdminStatus::InvalidParam);
        }
        let mut v = vec![0u8; len];
        if len > 0 {
            env.dma_read(DmaScope::ADMIN, addr, &mut v)
                .map_err(|_| AdminStatus::DmaError)?;
        }
        Ok(v)
    }

    /// Checks that QP `qpn` can be bound to a new connection.
    fn bindable_qp(&self, qpn: u32) -> Result<(), AdminStatus> {
        let qp = self.qps.get(qpn).ok_or(AdminStatus::InvalidHandle)?;
        if !matches!(qp.state, QpState::Reset | QpState::Init) {
            return Err(AdminStatus::InvalidState);
        }
        if self.cm.qp_held(qpn) {
            return Err(AdminStatus::Busy);
        }
        Ok(())
    }

    /// The connection manager's admin commands (`0x30..=0x38`).
    pub(crate) fn cm_admin(
        &mut self,
        env: &mut dyn DeviceEnv,
        opcode: u8,
        o: &Record<&[u8; 56]>,
    ) -> Result<(u32, u32), AdminStatus> {
        use rnic_contract::admin::opcode as op;
        use AdminStatus::*;
        let handle = o.u32(operands::handle::HANDLE);
        match opcode {
            op::CM_LISTEN => self.cm_listen(o),
            op::CM_UNLISTEN => {
                let i = (handle as usize)
                    .checked_sub(1)
                    .filter(|&i| i < self.cm.listeners.len() && self.cm.listeners[i].is_some())
                    .ok_or(InvalidHandle)?;
                self.cm.listeners[i] = None;
                let waiting: Vec<u32> = self
                    .cm
                    .conns
                    .iter()
                    .flatten()
                    .filter(|c| c.listener == handle && c.state == state::REQ_RECEIVED)
                    .map(|c| c.id)
                    .collect();
                for id in waiting {
                    self.reject_request(env, id, &[]);
                }
                Ok((0, 0))
            }
            op::CM_CONNECT => self.cm_connect(env, o),
            op::CM_ACCEPT => self.cm_accept(env, o),
            op::CM_REJECT => {
                use operands::cm_reject as f;
                let id = o.u32(f::CONN);
                let len = usize::from(o.u8(f::PRIVATE_DATA_LEN));
                if len > private_data::REJ {
                    return Err(InvalidParam);
                }
                let st = self.cm.conn(id).ok_or(InvalidHandle)?.state;
                if st != state::REQ_RECEIVED && st != state::REP_RECEIVED {
                    return Err(InvalidState);
                }
                let private = Self::read_private(env, o.u64(f::PRIVATE_DATA), len, len)?;
                if st == state::REQ_RECEIVED {
                    self.reject_request(env, id, &private);
                } else {
                    let conn = self.cm.conn(id).ok_or(InvalidHandle)?;
                    let (mac, ip, ids, qpn) = (
                        conn.remote_mac,
                        conn.remote,
                        (conn.transaction_id, conn.id, conn.remote_comm_id),
                        conn.qpn,
                    );
                    self.send_rej(
                        env,
                        (mac, ip),
                        ids,
                        mad::MSG_REP,
                        reject_reason::CONSUMER,
                        &private,
                    );
                    self.cm_qp_error(env, qpn);
                    if let Some(conn) = self.cm.conn_mut(id) {
                        conn.state = state::REJECTED;
                        conn.reject_reason = reject_reason::CONSUMER;
                    }
                }
                Ok((0, 0))
            }
            op::CM_COMPLETE_CONNECT => {
                let conn = self.cm.conn(handle).ok_or(InvalidHandle)?;
                if conn.state != state::REP_RECEIVED {
                    return Err(InvalidState);
                }
                let (attrs, qpn) = (to_rts(conn), conn.qpn);
                self.cm_modify(env, qpn, &attrs);
                let conn = self.cm.conn_mut(handle).ok_or(InvalidHandle)?;
                conn.state = state::ESTABLISHED;
                let (mac, ip) = (conn.remote_mac, conn.remote);
                let m =
                    cm_wire::ids_only(conn.transaction_id, attr::RTU, conn.id, conn.remote_comm_id);
                self.send_mad(env, mac, ip, &m);
                env.post_event(event(code::CM_ESTABLISHED, handle, qpn));
                Ok((0, 0))
            }
            op::CM_DISCONNECT => {
                let conn = self.cm.conn(handle).ok_or(InvalidHandle)?;
                match conn.state {
                    state::ESTABLISHED => {
                        let qpn = conn.qpn;
                        self.cm_qp_error(env, qpn);
                        let conn = self.cm.conn_mut(handle).ok_or(InvalidHandle)?;
                        conn.state = state::DREQ_SENT;
                        conn.disconnect_called = true;
                        conn.retries_left = timing::CM_MAX_RETRIES;
                        conn.pending = Some(cm_wire::dreq(
                            conn.transaction_id,
                            conn.id,
                            conn.remote_comm_id,
                            conn.remote_qpn,
                        ));
                        self.send_pending(env, handle, timing::CM_RESPONSE_TIMEOUT_US);
                        Ok((0, 0))
                    }
                    state::DISCONNECTED | state::REJECTED | state::FAILED
                        if !conn.disconnect_called =>
                    {
                        let detail = if conn.peer_disconnected {
                            cm_disconnected::PEER_DISCONNECTED
                        } else {
                            cm_disconnected::NO_REPLY
                        };
                        if let Some(conn) = self.cm.conn_mut(handle) {
                            conn.disconnect_called = true;
                        }
                        env.post_event(event(code::CM_DISCONNECTED, handle, detail));
                        Ok((0, 0))
                    }
                    _ => Err(InvalidState),
                }
            }
            op::CM_QUERY => {
                use operands::cm_query as f;
                let id = o.u32(f::CONN);
                let len = o.u32(f::LEN) as usize;
                if len < record::HEADER_LEN {
                    return Err(InvalidParam);
                }
                let conn = self.cm.conn(id).ok_or(InvalidHandle)?;
                let mut b = vec![0u8; record::HEADER_LEN + conn.peer_private.len()];
                let mut r = Record::new_unchecked(&mut b[..]);
                r.set_u8(record::STATE, conn.state);
                r.set_u8(record::FAMILY, conn.family());
                r.set_u16(record::LOCAL_PORT, conn.local_port);
                r.set_u16(record::REMOTE_PORT, conn.remote_port);
                r.set_u8(record::RESPONDER_RESOURCES, conn.peer_responder_resources);
                r.set_u8(record::INITIATOR_DEPTH, conn.peer_initiator_depth);
                r.set_u32(record::QPN, conn.qpn);
                r.set_u32(record::REMOTE_QPN, conn.remote_qpn);
                r.set_bytes(record::LOCAL_ADDR, &operand_addr(conn.local));
                r.set_bytes(record::REMOTE_ADDR, &operand_addr(conn.remote));
                r.set_u32(record::LISTENER, conn.listener);
                r.set_u16(record::REJECT_REASON, conn.reject_reason);
                r.set_u16(record::PRIVATE_DATA_LEN, conn.peer_private.len() as u16);
                b[record::PRIVATE_DATA..].copy_from_slice(&conn.peer_private);
                let n = len.min(b.len());
                let pd_len = conn.peer_private.len() as u32;
                env.dma_write(DmaScope::ADMIN, o.u64(f::ADDR), &b[..n])
                    .map_err(|_| DmaError)?;
                Ok((n as u32, pd_len))
            }
            op::CM_RELEASE => {
                let i = self.cm.slot_of(handle).ok_or(InvalidHandle)?;
                let conn = self.cm.conns[i].take().ok_or(InvalidHandle)?;
                let ids = (conn.transaction_id, conn.id, conn.remote_comm_id);
                match conn.state {
                    state::REQ_RECEIVED => self.send_rej(
                        env,
                        (conn.remote_mac, conn.remote),
                        ids,
                        mad::MSG_REQ,
                        reject_reason::CONSUMER,
                        &[],
                    ),
                    state::ESTABLISHED => {
                        let m = cm_wire::dreq(ids.0, ids.1, ids.2, conn.remote_qpn);
                        self.send_mad(env, conn.remote_mac, conn.remote, &m);
                    }
                    _ => {}
                }
                self.cm_qp_error(env, conn.qpn);
                Ok((0, 0))
            }
            _ => Err(InvalidOpcode),
        }
    }

    fn cm_listen(&mut self, o: &Record<&[u8; 56]>) -> Result<(u32, u32), AdminStatus> {
        use operands::cm_listen as f;
        use AdminStatus::*;
        let fam = o.u8(f::FAMILY);
        let own = self.own_addr(fam).ok_or(InvalidParam)?;
        let raw: [u8; 16] = o.array(f::ADDR);
        let addr = if raw == [0; 16] {
            None
        } else {
            let a = parse_operand_addr(fam, raw).ok_or(InvalidParam)?;
            if a != own {
                return Err(InvalidParam);
            }
            Some(a)
        };
        let clash = |l: &Listener, port: u16| {
            l.family == fam
                && l.port == port
                && (l.addr.is_none() || addr.is_none() || l.addr == addr)
        };
        let mut port = o.u16(f::PORT);
        if port != 0 && self.cm.listeners.iter().flatten().any(|l| clash(l, port)) {
            return Err(AddressInUse);
        }
        let slot = self.cm.free_listener_slot().ok_or(NoResources)?;
        if port == 0 {
            let listeners = self.cm.listeners.clone();
            port = self
                .cm
                .pick_port(|p| listeners.iter().flatten().any(|l| clash(l, p)))
                .ok_or(NoResources)?;
        }
        self.cm.listeners[slot] = Some(Listener {
            family: fam,
            port,
            addr,
        });
        Ok((slot as u32 + 1, u32::from(port)))
    }

    fn cm_connect(
        &mut self,
        env: &mut dyn DeviceEnv,
        o: &Record<&[u8; 56]>,
    ) -> Result<(u32, u32), AdminStatus> {
        use operands::cm_connect as f;
        use AdminStatus::*;
        let fam = o.u8(f::FAMILY);
        let own = self.own_addr(fam).ok_or(InvalidParam)?;
        let resp = o.u8(f::RESPONDER_RESOURCES);
        let depth = o.u8(f::INITIATOR_DEPTH);
        let len = usize::from(o.u8(f::PRIVATE_DATA_LEN));
        let local_raw: [u8; 16] = o.array(f::LOCAL_ADDR);
        let local_ok = local_raw == [0; 16] || parse_operand_addr(fam, local_raw) == Some(own);
        let remote = parse_operand_addr(fam, o.array(f::REMOTE_ADDR));
        let remote_port = o.u16(f::REMOTE_PORT);
        let remote = match remote {
            Some(r)
                if local_ok
                    && !unusable_remote(r)
                    && remote_port != 0
                    && resp <= c::MAX_RD_ATOMIC
                    && depth <= c::MAX_RD_ATOMIC
                    && len <= private_data::REQ =>
            {
                r
            }
            _ => return Err(InvalidParam),
        };
        let qpn = o.u32(f::QPN);
        self.bindable_qp(qpn)?;
        if self.cm.full() {
            return Err(NoResources);
        }
        let private = Self::read_private(env, o.u64(f::PRIVATE_DATA), len, len)?;
        let mut local_port = o.u16(f::LOCAL_PORT);
        if local_port == 0 {
            local_port = self.cm.pick_port(|_| false).ok_or(NoResources)?;
        }
        let id = self.cm.alloc_id().ok_or(NoResources)?;
        let psn = self.cm.new_psn(id, u32::from_be_bytes(self.port.ip));
        self.cm_modify(env, qpn, &to_init());
        let mtu_code = self.own_mtu_code();
        let transaction_id = TID_TAG | u64::from(id);
        let req = cm_wire::req(&ReqFields {
            transaction_id,
            local_comm_id: id,
            port: remote_port,
            local_port,
            guid: cm_wire::guid_of(self.port.mac),
            qpn,
            responder_resources: resp,
            initiator_depth: depth,
            psn,
            mtu_code,
            local: own,
            remote,
            private: &private,
        });
        let loopback = self.is_own(remote);
        let mac = if loopback {
            Some(self.port.mac)
        } else {
            self.cm.neighbours.lookup(remote)
        };
        self.cm.insert(Conn {
            id,
            state: state::RESOLVING,
            active: true,
            local: own,
            remote,
            local_port,
            remote_port,
            remote_mac: mac.unwrap_or([0; 6]),
            remote_comm_id: 0,
            transaction_id,
            qpn,
            remote_qpn: 0,
            listener: 0,
            local_psn: psn,
            remote_psn: 0,
            mtu_code,
            responder_resources: resp,
            initiator_depth: depth,
            peer_responder_resources: 0,
            peer_initiator_depth: 0,
            reject_reason: 0,
            peer_private: Vec::new(),
            pending: Some(req),
            retries_left: timing::CM_MAX_RETRIES,
            deadline: None,
            resolve_attempts: 0,
            peer_disconnected: false,
            disconnect_called: false,
        });
        if mac.is_some() {
            if !loopback {
                self.cm.stats.neighbour_hits += 1;
            }
            self.start_request(env, id);
        } else {
            self.cm.stats.neighbour_misses += 1;
            self.resolve(env, id);
        }
        Ok((id, 0))
    }

    /// The peer's MAC is known: REQ goes out.
    fn start_request(&mut self, env: &mut dyn DeviceEnv, id: u32) {
        if let Some(conn) = self.cm.conn_mut(id) {
            conn.state = state::REQ_SENT;
            conn.retries_left = timing::CM_MAX_RETRIES;
        }
        self.send_pending(env, id, timing::CM_RESPONSE_TIMEOUT_US);
    }

    /// Sends one ARP request (or Neighbor Solicitation) for a resolving connection.
    fn resolve(&mut self, env: &mut dyn DeviceEnv, id: u32) {
        let now = env.now();
        let Some(conn) = self.cm.conn_mut(id) else {
            return;
        };
        conn.resolve_attempts += 1;
        conn.deadline = Some(now + dur_us(timing::RESOLVE_TIMEOUT_US));
        let remote = conn.remote;
        match remote {
            IpAddr::V4(v4) => {
                let arp = Arp {
                    op: ARP_REQUEST,
                    sender_mac: self.port.mac,
                    sender_ip: self.port.ip,
                    target_mac: [0; 6],
                    target_ip: v4.octets(),
                };
                self.cm.stats.arp_sent += 1;
                env.transmit(Owner::Qp(mad::GSI_QPN), &arp.frame(BROADCAST));
            }
            IpAddr::V6(v6) => {
                let frame = Nd::solicitation(
                    self.port.mac,
                    self.port.ipv6.unwrap_or_default(),
                    v6.octets(),
                );
                self.cm.stats.nd_sent += 1;
                env.transmit(Owner::Qp(mad::GSI_QPN), &frame);
            }
        }
    }

    fn cm_accept(
        &mut self,
        env: &mut dyn DeviceEnv,
        o: &Record<&[u8; 56]>,
    ) -> Result<(u32, u32), AdminStatus> {
        use operands::cm_accept as f;
        use AdminStatus::*;
        let len = usize::from(o.u8(f::PRIVATE_DATA_LEN));
        let resp = o.u8(f::RESPONDER_RESOURCES);
        let depth = o.u8(f::INITIATOR_DEPTH);
        if len > private_data::REP || resp > c::MAX_RD_ATOMIC || depth > c::MAX_RD_ATOMIC {
            return Err(InvalidParam);
        }
        let id = o.u32(f::CONN);
        let qpn = o.u32(f::QPN);
        let st = self.cm.conn(id).ok_or(InvalidHandle)?.state;
        self.qps.get(qpn).ok_or(InvalidHandle)?;
        if st != state::REQ_RECEIVED {
            return Err(InvalidState);
        }
        self.bindable_qp(qpn)?;
        let private = Self::read_private(env, o.u64(f::PRIVATE_DATA), len, len)?;
        let psn = self.cm.new_psn(id, u32::from_be_bytes(self.port.ip));
        let guid = cm_wire::guid_of(self.port.mac);
        let conn = self.cm.conn_mut(id).ok_or(InvalidHandle)?;
        conn.qpn = qpn;
        conn.local_psn = psn;
        conn.responder_resources = resp;
        conn.initiator_depth = depth;
        conn.state = state::REP_SENT;
        conn.retries_left = timing::CM_MAX_RETRIES;
        conn.pending = Some(cm_wire::rep(&RepFields {
            transaction_id: conn.transaction_id,
            local_comm_id: conn.id,
            remote_comm_id: conn.remote_comm_id,
            qpn,
            psn,
            responder_resources: resp,
            initiator_depth: depth,
            guid,
            private: &private,
        }));
        let rtr = to_rtr(conn);
        self.cm_modify(env, qpn, &to_init());
        self.cm_modify(env, qpn, &rtr);
        self.send_pending(env, id, timing::CM_RESPONSE_TIMEOUT_US);
        Ok((0, 0))
    }

    /// Rejects an unanswered request (driver reject, unlisten): REJ reason 28.
    fn reject_request(&mut self, env: &mut dyn DeviceEnv, id: u32, private: &[u8]) {
        let Some(conn) = self.cm.conn_mut(id) else {
            return;
        };
        conn.state = state::REJECTED;
        conn.reject_reason = reject_reason::CONSUMER;
        conn.deadline = None;
        let (mac, ip) = (conn.remote_mac, conn.remote);
        let ids = (conn.transaction_id, conn.id, conn.remote_comm_id);
        self.send_rej(
            env,
            (mac, ip),
            ids,
            mad::MSG_REQ,
            reject_reason::CONSUMER,
            private,
        );
    }

    /// Ends a connection without a reject: QP to ERR, state FAILED, one event.
    fn fail_connection(&mut self, env: &mut dyn DeviceEnv, id: u32, cause: u32) {
        let Some(conn) = self.cm.conn_mut(id) else {
            return;
        };
        conn.state = state::FAILED;
        conn.deadline = None;
        conn.pending = None;
        let qpn = conn.qpn;
        self.cm_qp_error(env, qpn);
        env.post_event(event(code::CM_CONNECT_FAILED, id, cause));
    }

    /// A UD SEND Only packet for QP1: one CM MAD (§11.6 receive checks).
    pub(crate) fn cm_receive(&mut self, env: &mut dyn DeviceEnv, p: &RocePacket) {
        self.cm.stats.mads_received += 1;
        let (src, dst) = match &p.ip6 {
            Some(v6) => (IpAddr::from(v6.src), IpAddr::from(v6.dst)),
            None => (IpAddr::from(p.ip.src), IpAddr::from(p.ip.dst)),
        };
        self.cm_receive_mad(env, p.eth.src, src, dst, p.deth, &p.payload);
    }

    /// A MAD from `src` (MAC `mac`) to the port's address `dst`.
    pub(crate) fn cm_receive_mad(
        &mut self,
        env: &mut dyn DeviceEnv,
        mac: [u8; 6],
        src: IpAddr,
        dst: IpAddr,
        deth: Option<Deth>,
        payload: &[u8],
    ) {
        let good_deth = deth.is_some_and(|d| d.qkey == mad::GSI_QKEY);
        let m = match Mad::new_checked(payload) {
            Ok(m) if good_deth && payload.len() == MAD_LEN => m,
            _ => {
                self.cm.stats.mads_malformed += 1;
                return;
            }
        };
        let attribute = m.attribute_id();
        if m.base_version() != mad::BASE_VERSION
            || m.mgmt_class() != mad::MGMT_CLASS_CM
            || m.method() != mad::METHOD_SEND
            || !(attr::REQ..=attr::DREP).contains(&attribute)
        {
            self.cm.stats.mads_malformed += 1;
            return;
        }
        let tid = m.transaction_id();
        if m.class_version() != mad::CM_CLASS_VERSION {
            self.cm.stats.mads_malformed += 1;
            if attribute == attr::REQ {
                let their = m.get(mad::req::LOCAL_COMM_ID) as u32;
                self.send_rej(
                    env,
                    (mac, src),
                    (tid, 0, their),
                    mad::MSG_REQ,
                    reject_reason::UNSUPPORTED_CLASS_VERSION,
                    &[],
                );
            }
            return;
        }
        if attribute == attr::REQ {
            self.on_req(env, mac, src, dst, &m);
            return;
        }
        // Every other message names our communication ID as its remote ID (the
        // field after the sender's local ID in every message).
        let their = m.get(mad::rep::LOCAL_COMM_ID) as u32;
        let ours = m.get(mad::rep::REMOTE_COMM_ID) as u32;
        let known = self
            .cm
            .conn(ours)
            .filter(|c| c.remote == src)
            .map(|c| c.state);
        let Some(st) = known else {
            self.cm.stats.mads_unexpected += 1;
            match attribute {
                attr::REP => self.send_rej(
                    env,
                    (mac, src),
                    (tid, 0, their),
                    mad::MSG_REP,
                    reject_reason::INVALID_COMM_INSTANCE,
                    &[],
                ),
                attr::DREQ => {
                    let m = cm_wire::ids_only(tid, attr::DREP, ours, their);
                    self.send_mad(env, mac, src, &m);
                }
                _ => {}
            }
            return;
        };
        let handled = match attribute {
            attr::REP => self.on_rep(env, ours, st, &m),
            attr::RTU => self.on_rtu(env, ours, st),
            attr::REJ => self.on_rej(env, ours, st, &m),
            attr::MRA => self.on_mra(env, ours, st),
            attr::DREQ => self.on_dreq(env, ours, st),
            _ => self.on_drep(env, ours, st),
        };
        if !handled {
            self.cm.stats.mads_unexpected += 1;
        }
    }

    fn on_req(
        &mut self,
        env: &mut dyn DeviceEnv,
        mac: [u8; 6],
        src: IpAddr,
        dst: IpAddr,
        m: &Mad<&[u8]>,
    ) {
        use mad::req as r;
        let tid = m.transaction_id();
        let their = m.get(r::LOCAL_COMM_ID) as u32;
        // A repeated REQ: MRA while the driver decides, the REP again once accepted.
        let dup = self
            .cm
            .conns
            .iter()
            .flatten()
            .find(|c| !c.active && c.remote_comm_id == their && c.remote == src)
            .map(|c| (c.id, c.state));
        if let Some((id, st)) = dup {
            self.cm.stats.mads_unexpected += 1;
            match st {
                state::REQ_RECEIVED => {
                    let m = cm_wire::mra(tid, id, their);
                    self.send_mad(env, mac, src, &m);
                }
                state::REP_SENT => {
                    if let Some(p) = self.cm.conn(id).and_then(|c| c.pending) {
                        self.send_mad(env, mac, src, &p);
                    }
                }
                _ => {}
            }
            return;
        }
        let reject = |reason| (tid, 0u32, their, reason);
        let private = m.slice(r::PRIVATE_DATA);
        let ip_version = private[ip_cm::IP_VERSION] >> 4;
        let fam = if src.is_ipv4() {
            family::IPV4
        } else {
            family::IPV6
        };
        let header_ok = private[ip_cm::VERSION] == 0
            && ip_version == fam
            && cm_wire::ip_cm_addr_parse(ip_version, &private[ip_cm::DST_ADDR]) == Some(dst);
        let src_port = u16::from_be_bytes([private[2], private[3]]);
        let service = c::service_port(m.get(r::SERVICE_ID));
        let transport = m.get_bits(r::REMOTE_EECN_TIMEOUT_TRANSPORT, 1, 2);
        let own_gid = self.own_addr(fam).map(cm_wire::gid_of);
        let remote_gid: [u8; 16] = m.slice(r::PRIMARY_REMOTE_GID).try_into().unwrap_or([0; 16]);
        let listener = service.and_then(|port| {
            self.cm.listeners.iter().enumerate().find_map(|(i, l)| {
                let l = l.as_ref()?;
                let hit = l.family == fam && l.port == port && l.addr.is_none_or(|a| a == dst);
                hit.then_some((i as u32 + 1, port))
            })
        });
        let problem = if !header_ok {
            self.cm.stats.mads_malformed += 1;
            return;
        } else if transport != 0 {
            Some(reject(reject_reason::INVALID_TRANSPORT_TYPE))
        } else if own_gid != Some(remote_gid) {
            Some(reject(reject_reason::INVALID_GID))
        } else if listener.is_none() {
            Some(reject(reject_reason::INVALID_SERVICE_ID))
        } else {
            None
        };
        let id = match (problem, listener) {
            (None, Some(_)) => self.cm.alloc_id(),
            _ => None,
        };
        let (Some(id), Some((listener, port))) = (id, listener) else {
            let (tid, ours, their, reason) =
                problem.unwrap_or_else(|| reject(reject_reason::NO_QP));
            self.send_rej(
                env,
                (mac, src),
                (tid, ours, their),
                mad::MSG_REQ,
                reason,
                &[],
            );
            return;
        };
        let req_mtu = m.get_bits(r::MTU_RNR_RETRY..r::MTU_RNR_RETRY + 1, 4, 4) as u8;
        // The REP carries no MTU: the passive side takes the active side's offer so
        // that both ends agree (§3.14).
        let mtu_code = req_mtu.clamp(1, self.limits.max_mtu_code);
        let peer_resp = m.get_bits(r::LOCAL_QPN_RESPONDER_RESOURCES, 0, 8) as u8;
        self.cm.insert(Conn {
            id,
            state: state::REQ_RECEIVED,
            active: false,
            local: dst,
            remote: src,
            local_port: port,
            remote_port: src_port,
            remote_mac: mac,
            remote_comm_id: their,
            transaction_id: tid,
            qpn: 0,
            remote_qpn: m.get_bits(r::LOCAL_QPN_RESPONDER_RESOURCES, 8, 24) as u32,
            listener,
            local_psn: 0,
            remote_psn: m.get_bits(r::STARTING_PSN_TIMEOUT_RETRY, 8, 24) as u32,
            mtu_code,
            responder_resources: 0,
            initiator_depth: 0,
            peer_responder_resources: peer_resp,
            peer_initiator_depth: m.get_bits(r::LOCAL_EECN_INITIATOR_DEPTH, 0, 8) as u8,
            reject_reason: 0,
            peer_private: private[ip_cm::LEN..].to_vec(),
            pending: None,
            retries_left: 0,
            deadline: None,
            resolve_attempts: 0,
            peer_disconnected: false,
            disconnect_called: false,
        });
        env.post_event(event(code::CM_CONNECT_REQUEST, id, listener));
    }

    fn on_rep(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8, m: &Mad<&[u8]>) -> bool {
        use mad::rep as r;
        match st {
            state::REQ_SENT => {
                let Some(conn) = self.cm.conn_mut(id) else {
                    return false;
                };
                conn.remote_comm_id = m.get(r::LOCAL_COMM_ID) as u32;
                conn.remote_qpn = m.get_bits(r::LOCAL_QPN, 8, 24) as u32;
                conn.remote_psn = m.get_bits(r::STARTING_PSN, 8, 24) as u32;
                conn.peer_responder_resources =
                    m.get(r::RESPONDER_RESOURCES..r::RESPONDER_RESOURCES + 1) as u8;
                conn.peer_initiator_depth = m.get(r::INITIATOR_DEPTH..r::INITIATOR_DEPTH + 1) as u8;
                conn.peer_private = m.slice(r::PRIVATE_DATA).to_vec();
                conn.state = state::REP_RECEIVED;
                conn.deadline = None;
                conn.pending = None;
                let (attrs, qpn) = (to_rtr(conn), conn.qpn);
                self.cm_modify(env, qpn, &attrs);
                env.post_event(event(code::CM_CONNECT_REPLY, id, qpn));
                true
            }
            state::ESTABLISHED => {
                // Our RTU was lost: send it again.
                let Some(conn) = self.cm.conn(id) else {
                    return false;
                };
                let (mac, ip) = (conn.remote_mac, conn.remote);
                let m = cm_wire::ids_only(conn.transaction_id, attr::RTU, id, conn.remote_comm_id);
                self.send_mad(env, mac, ip, &m);
                false
            }
            _ => false,
        }
    }

    fn on_rtu(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8) -> bool {
        if st != state::REP_SENT {
            return false;
        }
        self.establish_passive(env, id);
        true
    }

    /// Passive side: RTU (or the first packet on the QP) arrived.
    pub(crate) fn establish_passive(&mut self, env: &mut dyn DeviceEnv, id: u32) {
        let Some(conn) = self.cm.conn_mut(id) else {
            return;
        };
        conn.state = state::ESTABLISHED;
        conn.deadline = None;
        conn.pending = None;
        let (attrs, qpn) = (to_rts(conn), conn.qpn);
        self.cm_modify(env, qpn, &attrs);
        env.post_event(event(code::CM_ESTABLISHED, id, qpn));
    }

    fn on_rej(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8, m: &Mad<&[u8]>) -> bool {
        if !matches!(
            st,
            state::REQ_SENT | state::REQ_RECEIVED | state::REP_RECEIVED | state::REP_SENT
        ) {
            return false;
        }
        let reason = m.get(mad::rej::REASON) as u16;
        let Some(conn) = self.cm.conn_mut(id) else {
            return false;
        };
        conn.state = state::REJECTED;
        conn.reject_reason = reason;
        conn.peer_private = m.slice(mad::rej::PRIVATE_DATA).to_vec();
        conn.deadline = None;
        conn.pending = None;
        let qpn = conn.qpn;
        self.cm_qp_error(env, qpn);
        env.post_event(event(code::CM_REJECTED, id, reason.into()));
        true
    }

    fn on_mra(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8) -> bool {
        if st != state::REQ_SENT && st != state::REP_SENT {
            return false;
        }
        let now = env.now();
        if let Some(conn) = self.cm.conn_mut(id) {
            conn.deadline = Some(now + dur_us(timing::MRA_SERVICE_TIMEOUT_US));
            conn.retries_left = timing::CM_MAX_RETRIES;
        }
        true
    }

    fn on_dreq(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8) -> bool {
        let Some(conn) = self.cm.conn(id) else {
            return false;
        };
        let (mac, ip, qpn) = (conn.remote_mac, conn.remote, conn.qpn);
        let drep = cm_wire::ids_only(conn.transaction_id, attr::DREP, id, conn.remote_comm_id);
        let first = matches!(st, state::ESTABLISHED | state::REP_SENT | state::DREQ_SENT);
        if first {
            self.cm_qp_error(env, qpn);
            if let Some(conn) = self.cm.conn_mut(id) {
                conn.state = state::DISCONNECTED;
                conn.peer_disconnected = true;
                conn.deadline = None;
                conn.pending = None;
            }
        }
        if first || st == state::DISCONNECTED {
            self.send_mad(env, mac, ip, &drep);
        }
        if first {
            env.post_event(event(code::CM_DISCONNECT_RECEIVED, id, qpn));
            if st == state::DREQ_SENT {
                env.post_event(event(
                    code::CM_DISCONNECTED,
                    id,
                    cm_disconnected::PEER_DISCONNECTED,
                ));
            }
        }
        first
    }

    fn on_drep(&mut self, env: &mut dyn DeviceEnv, id: u32, st: u8) -> bool {
        if st != state::DREQ_SENT {
            return false;
        }
        if let Some(conn) = self.cm.conn_mut(id) {
            conn.state = state::DISCONNECTED;
            conn.deadline = None;
            conn.pending = None;
        }
        env.post_event(event(
            code::CM_DISCONNECTED,
            id,
            cm_disconnected::DREP_RECEIVED,
        ));
        true
    }

    /// Timers: retransmissions, resolution retries and timeouts. Each slot is looked
    /// at once per call.
    pub(crate) fn cm_poll(&mut self, env: &mut dyn DeviceEnv) {
        let now = env.now();
        let due: Vec<(u32, u8, u8, u8)> = self
            .cm
            .conns
            .iter()
            .flatten()
            .filter(|c| c.deadline.is_some_and(|d| d <= now))
            .map(|c| (c.id, c.state, c.retries_left, c.resolve_attempts))
            .collect();
        for (id, st, retries, attempts) in due {
            match st {
                state::RESOLVING if attempts < timing::RESOLVE_ATTEMPTS => self.resolve(env, id),
                state::RESOLVING => self.fail_connection(env, id, cm_failure::UNREACHABLE),
                state::REQ_SENT | state::REP_SENT | state::DREQ_SENT if retries > 0 => {
                    if let Some(conn) = self.cm.conn_mut(id) {
                        conn.retries_left -= 1;
                    }
                    self.cm.stats.retransmissions += 1;
                    self.send_pending(env, id, timing::CM_RESPONSE_TIMEOUT_US);
                }
                state::REQ_SENT | state::REP_SENT => {
                    if let Some(conn) = self.cm.conn(id) {
                        let (mac, ip) = (conn.remote_mac, conn.remote);
                        let ids = (conn.transaction_id, conn.id, conn.remote_comm_id);
                        let msg = if st == state::REQ_SENT {
                            mad::MSG_REQ
                        } else {
                            mad::MSG_REP
                        };
                        self.send_rej(env, (mac, ip), ids, msg, reject_reason::TIMEOUT, &[]);
                    }
                    let cause = if st == state::REQ_SENT {
                        cm_failure::REQ_TIMEOUT
                    } else {
                        cm_failure::REP_TIMEOUT
                    };
                    self.fail_connection(env, id, cause);
                }
                state::DREQ_SENT => {
                    if let Some(conn) = self.cm.conn_mut(id) {
                        conn.state = state::DISCONNECTED;
                        conn.deadline = None;
                        conn.pending = None;
                    }
                    env.post_event(event(code::CM_DISCONNECTED, id, cm_disconnected::NO_REPLY));
                }
                _ => {
                    if let Some(conn) = self.cm.conn_mut(id) {
                        conn.deadline = None;
                    }
                }
            }
        }
    }

    /// A frame the port received that is not RoCEv2: ARP (and ICMPv6 Neighbor
    /// Discovery) is answered and learned from (§11.7). The frame is not consumed.
    pub fn neighbour_frame(&mut self, env: &mut dyn DeviceEnv, frame: &[u8]) {
        if let Some(arp) = Arp::parse(frame) {
            self.on_arp(env, &arp);
        } else if let Some(nd) = Nd::parse(frame) {
            self.on_nd(env, &nd);
        }
    }

    fn on_arp(&mut self, env: &mut dyn DeviceEnv, arp: &Arp) {
        if arp.op == ARP_REQUEST && arp.target_ip == self.port.ip {
            let reply = Arp {
                op: ARP_REPLY,
                sender_mac: self.port.mac,
                sender_ip: self.port.ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            self.cm.stats.arp_answered += 1;
            env.transmit(Owner::Qp(mad::GSI_QPN), &reply.frame(arp.sender_mac));
        }
        self.learn(env, IpAddr::from(arp.sender_ip), arp.sender_mac);
    }

    fn on_nd(&mut self, env: &mut dyn DeviceEnv, nd: &Nd) {
        let Some(own) = self.port.ipv6 else {
            return;
        };
        if nd.kind == ND_SOLICITATION {
            if nd.target == own {
                self.cm.stats.nd_answered += 1;
                let frame = nd.advertisement(self.port.mac, own);
                env.transmit(Owner::Qp(mad::GSI_QPN), &frame);
            }
            if nd.src != [0; 16] {
                if let Some(mac) = nd.link {
                    self.learn(env, IpAddr::from(nd.src), mac);
                }
            }
        } else if nd.kind == ND_ADVERTISEMENT {
            let mac = nd.link.unwrap_or(nd.eth_src);
            self.learn(env, IpAddr::from(nd.target), mac);
        }
    }

    /// Fills the cache entry of `ip` if the device is resolving it or already holds
    /// it, and sends the REQs that waited for it.
    fn learn(&mut self, env: &mut dyn DeviceEnv, ip: IpAddr, mac: [u8; 6]) {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return;
        }
        let waiting: Vec<u32> = self
            .cm
            .conns
            .iter()
            .flatten()
            .filter(|c| c.state == state::RESOLVING && c.remote == ip)
            .map(|c| c.id)
            .collect();
        if waiting.is_empty() && !self.cm.neighbours.contains(ip) {
            return;
        }
        self.cm.stats.neighbours_learned += 1;
        self.cm.neighbours.insert(ip, mac);
        for id in waiting {
            if let Some(conn) = self.cm.conn_mut(id) {
                conn.remote_mac = mac;
            }
            self.start_request(env, id);
        }
    }
}
