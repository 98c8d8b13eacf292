//! The connection manager as the driver sees it (`docs/device-spec.md` §3.14, §4.2,
//! §15): address families, limits, private data sizes, connection states, reject
//! reasons, timing of retransmissions and address resolution, and the `CM_QUERY`
//! record. The opcodes are in [`crate::admin::opcode`] (`CM_*`), the operand layouts
//! in [`crate::admin::operands`] (`cm_*`), the events in [`crate::event::code`]
//! (`CM_*`); what travels on the wire is in [`crate::mad`].
//!
//! Addresses in operands and records are 16 bytes in network byte order: an IPv6
//! address as it is, an IPv4 address `a.b.c.d` in bytes 0..4 with bytes 4..16 zero.
//! Ports are little-endian `u16` values like every other operand.

use crate::field;

/// Address families (`CM_LISTEN` byte 0, `CM_CONNECT` byte 4, record byte 1): the
/// IP version number.
pub mod family {
    /// IPv4.
    pub const IPV4: u8 = 4;
    /// IPv6.
    pub const IPV6: u8 = 6;
}

/// Listeners a device holds at once (listener ids 1..=this).
pub const MAX_LISTENERS: u8 = 64;
/// Connections a device holds at once (connecting, established, or closed but not
/// yet released with `CM_RELEASE`).
pub const MAX_CONNECTIONS: u16 = 256;
/// Largest responder resources / initiator depth a connection may ask for.
pub const MAX_RD_ATOMIC: u8 = 16;
/// First port the device picks when a `CM_LISTEN` or `CM_CONNECT` names port 0
/// (the IANA dynamic range 49152..=65535).
pub const EPHEMERAL_PORT_FIRST: u16 = 49152;

/// Private data a consumer may send in each message, in bytes (§3.14). REQ: the 92
/// bytes of the IBTA REQ less the 36-byte IP addressing header (IBTA annex A11, the
/// header Linux rdma_cm writes); the others: the whole IBTA private data field. RTU,
/// DREQ and DREP carry none from the consumer (the device sends zeros).
pub mod private_data {
    /// `CM_CONNECT` (REQ).
    pub const REQ: usize = 56;
    /// `CM_ACCEPT` (REP).
    pub const REP: usize = 196;
    /// `CM_REJECT` (REJ).
    pub const REJ: usize = 148;
    /// The largest private data the device keeps from the peer (REP), and so the
    /// largest `CM_QUERY` private data.
    pub const MAX_RECEIVED: usize = 196;
}

/// Connection states (`CM_QUERY` record byte 0, §3.14).
pub mod state {
    /// Active: resolving the peer's MAC (ARP or Neighbor Discovery).
    pub const RESOLVING: u8 = 1;
    /// Active: REQ sent, waiting for REP, REJ or MRA.
    pub const REQ_SENT: u8 = 2;
    /// Passive: REQ received, waiting for `CM_ACCEPT` or `CM_REJECT`.
    pub const REQ_RECEIVED: u8 = 3;
    /// Active: REP received, QP in RTR, waiting for `CM_COMPLETE_CONNECT` or
    /// `CM_REJECT`.
    pub const REP_RECEIVED: u8 = 4;
    /// Passive: REP sent, QP in RTR, waiting for RTU.
    pub const REP_SENT: u8 = 5;
    /// Established: the QP is in RTS.
    pub const ESTABLISHED: u8 = 6;
    /// `CM_DISCONNECT` sent DREQ, waiting for DREP.
    pub const DREQ_SENT: u8 = 7;
    /// Disconnected (DREQ/DREP done or DREQ received); the QP is in ERR.
    pub const DISCONNECTED: u8 = 8;
    /// Rejected by the peer or by the driver; the QP is in ERR.
    pub const REJECTED: u8 = 9;
    /// Failed without a reject (unreachable, timed out, port down); the QP is in ERR.
    pub const FAILED: u8 = 10;
}

/// IBTA reject reasons (the REJ `Reason` field) the device sends or reports in
/// `CM_REJECTED`. Any other received value is reported as it is.
pub mod reject_reason {
    /// No QP available (passive side: no free connection slot).
    pub const NO_QP: u16 = 1;
    /// Timeout (the REP was not answered in time, sent by the passive side).
    pub const TIMEOUT: u16 = 4;
    /// Invalid communication instance (a REP or RTU for no known connection).
    pub const INVALID_COMM_INSTANCE: u16 = 7;
    /// Invalid service ID: no listener on that port and address.
    pub const INVALID_SERVICE_ID: u16 = 8;
    /// Invalid transport service type (a REQ for anything but RC).
    pub const INVALID_TRANSPORT_TYPE: u16 = 9;
    /// Invalid GID (the REQ's remote GID is not this port's address).
    pub const INVALID_GID: u16 = 12;
    /// Consumer reject (`CM_REJECT`, `CM_UNLISTEN` or `CM_RELEASE` of an unanswered
    /// request).
    pub const CONSUMER: u16 = 28;
    /// Unsupported class version.
    pub const UNSUPPORTED_CLASS_VERSION: u16 = 31;
}

/// RDMA-CM IP port space in the upper bits of an IBTA service ID (the way Linux
/// rdma_cm forms it for `RDMA_PS_TCP`): service ID = `SERVICE_ID_BASE | port`.
pub const SERVICE_ID_BASE: u64 = 0x0000_0000_0106_0000;
/// Mask of the bits that must equal [`SERVICE_ID_BASE`] in a service ID.
pub const SERVICE_ID_PREFIX_MASK: u64 = !0xFFFF;

/// The service ID of an RDMA-CM port.
pub const fn service_id(port: u16) -> u64 {
    SERVICE_ID_BASE | port as u64
}

/// The port of an RDMA-CM service ID, `None` for any other service ID.
pub const fn service_port(service_id: u64) -> Option<u16> {
    if service_id & SERVICE_ID_PREFIX_MASK == SERVICE_ID_BASE {
        Some(service_id as u16)
    } else {
        None
    }
}

/// Timing of the connection manager (§3.14, §15.1). Times are device time.
pub mod timing {
    /// CM response timeout exponent sent in REQ and used for every wait for a reply:
    /// 4.096 µs × 2^18 ≈ 1.07 s. Consumers answer from software (NDK's CompleteConnect
    /// and Accept), which under an instruction emulator can take hundreds of
    /// milliseconds; Linux's rdma_cm waits 2^20 for the same reason.
    pub const CM_RESPONSE_TIMEOUT_EXP: u8 = 18;
    /// The wait for a reply to REQ, REP or DREQ in microseconds (4.096 × 2^18,
    /// rounded up).
    pub const CM_RESPONSE_TIMEOUT_US: u64 = 1_073_742;
    /// Retransmissions of REQ, REP or DREQ after the first send (the REQ's
    /// "Max CM Retries"): a message is sent at most 1 + this times.
    pub const CM_MAX_RETRIES: u8 = 3;
    /// Service timeout exponent sent in MRA: 4.096 µs × 2^20 ≈ 4.3 s, how long the
    /// active side extends its wait while the passive consumer decides.
    pub const MRA_SERVICE_TIMEOUT_EXP: u8 = 20;
    /// The extended wait after an MRA, in microseconds (4.096 × 2^20, rounded up).
    pub const MRA_SERVICE_TIMEOUT_US: u64 = 4_294_968;
    /// Wait for an ARP reply or Neighbor Advertisement, in microseconds.
    pub const RESOLVE_TIMEOUT_US: u64 = 100_000;
    /// ARP requests / Neighbor Solicitations sent for one resolution before the
    /// connection fails with `UNREACHABLE`.
    pub const RESOLVE_ATTEMPTS: u8 = 3;
    /// Entries in the neighbour cache (IP address → MAC); the least recently used
    /// entry is replaced.
    pub const NEIGHBOUR_CACHE_ENTRIES: usize = 16;
}

/// QP attributes the device sets when it moves a connected QP (§3.14).
pub mod qp_defaults {
    /// Retry count (transport retries).
    pub const RETRY_CNT: u8 = 7;
    /// RNR retry count (7 = infinite).
    pub const RNR_RETRY: u8 = 7;
    /// Local ACK timeout exponent (4.096 µs × 2^14 ≈ 67 ms).
    pub const TIMEOUT: u8 = 14;
    /// Minimum RNR NAK timer code (12 = 0.64 ms).
    pub const MIN_RNR_TIMER: u8 = 12;
}

/// The path MTU code for an Ethernet MTU (§3.14): the largest IBTA MTU that fits
/// the Ethernet MTU less 88 bytes of headers (IPv6 40, UDP 8, BTH 12, the largest
/// extension header 28, ICRC 4 — the rule Linux applies to RoCE). 0 when even 256
/// bytes do not fit.
pub const fn path_mtu_for_eth_mtu(eth_mtu: u32) -> u8 {
    let room = eth_mtu.saturating_sub(88);
    if room >= 4096 {
        5
    } else if room >= 2048 {
        4
    } else if room >= 1024 {
        3
    } else if room >= 512 {
        2
    } else if room >= 256 {
        1
    } else {
        0
    }
}

/// The `CM_QUERY` output record (§3.14): a 64-byte header followed by the peer's
/// private data. The device writes `min(buffer length, HEADER_LEN + private data
/// length)` bytes.
pub mod record {
    use crate::field::Field;
    /// Size of the fixed part.
    pub const HEADER_LEN: usize = 64;
    /// Size of the whole record with the largest private data.
    pub const MAX_LEN: usize = HEADER_LEN + super::private_data::MAX_RECEIVED;
    /// State (byte, [`super::state`]).
    pub const STATE: usize = 0;
    /// Address family (byte, [`super::family`]).
    pub const FAMILY: usize = 1;
    /// Local port.
    pub const LOCAL_PORT: Field = 2..4;
    /// Remote port.
    pub const REMOTE_PORT: Field = 4..6;
    /// Responder resources of the connection (byte): what the peer offered in its
    /// REQ (passive side) or REP (active side).
    pub const RESPONDER_RESOURCES: usize = 6;
    /// Initiator depth of the connection (byte), from the same message.
    pub const INITIATOR_DEPTH: usize = 7;
    /// Local QPN (0 while none is bound).
    pub const QPN: Field = 8..12;
    /// The peer's QPN (0 while unknown).
    pub const REMOTE_QPN: Field = 12..16;
    /// Local address (network byte order, IPv4 in bytes 0..4).
    pub const LOCAL_ADDR: Field = 16..32;
    /// Remote address.
    pub const REMOTE_ADDR: Field = 32..48;
    /// Listener id (passive side; 0 on the active side).
    pub const LISTENER: Field = 48..52;
    /// Reject reason of the REJ received or sent (0 when none).
    pub const REJECT_REASON: Field = 52..54;
    /// Length of the peer's private data that follows the header.
    pub const PRIVATE_DATA_LEN: Field = 54..56;
    /// The peer's private data: from its REQ (passive side, the 56 bytes after the
    /// IP addressing header), its REP (active side) or its REJ (after a reject).
    pub const PRIVATE_DATA: usize = 64;
}

/// A 16-byte operand address from an IPv4 address (bytes 0..4, the rest zero).
pub const fn addr_from_ipv4(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = ip[0];
    a[1] = ip[1];
    a[2] = ip[2];
    a[3] = ip[3];
    a
}

/// The IPv4 address in a 16-byte operand address; `None` when bytes 4..16 are not 0.
pub fn ipv4_from_addr(a: &[u8; 16]) -> Option<[u8; 4]> {
    if a[4..].iter().any(|&b| b != 0) {
        return None;
    }
    Some(field::get_array(a, 0..4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers of §3.14 and §15, copied independently.
    #[test]
    fn matches_spec_3_14() {
        assert_eq!((family::IPV4, family::IPV6), (4, 6));
        assert_eq!(
            (MAX_LISTENERS, MAX_CONNECTIONS, MAX_RD_ATOMIC),
            (64, 256, 16)
        );
        assert_eq!(
            (private_data::REQ, private_data::REP, private_data::REJ),
            (56, 196, 148)
        );
        assert_eq!(
            (state::RESOLVING, state::ESTABLISHED, state::FAILED),
            (1, 6, 10)
        );
        assert_eq!(
            (
                reject_reason::INVALID_SERVICE_ID,
                reject_reason::CONSUMER,
                reject_reason::TIMEOUT
            ),
            (8, 28, 4)
        );
        assert_eq!(service_id(4791), 0x0000_0000_0106_12B7);
        assert_eq!(service_port(0x0000_0000_0106_0050), Some(80));
        assert_eq!(service_port(0x0000_0000_0111_0050), None);
        // 4.096 µs × 2^e, rounded up to whole microseconds.
        assert_eq!(
            timing::CM_RESPONSE_TIMEOUT_US,
            (4096u64 << 18).div_ceil(1000)
        );
        assert_eq!(
            timing::MRA_SERVICE_TIMEOUT_US,
            (4096u64 << 20).div_ceil(1000)
        );
        assert_eq!(
            (timing::CM_MAX_RETRIES, timing::NEIGHBOUR_CACHE_ENTRIES),
            (3, 16)
        );
        assert_eq!(
            [
                path_mtu_for_eth_mtu(1500),
                path_mtu_for_eth_mtu(9000),
                path_mtu_for_eth_mtu(2200),
                path_mtu_for_eth_mtu(68)
            ],
            [3, 5, 4, 0]
        );
        assert_eq!((record::HEADER_LEN, record::MAX_LEN), (64, 260));
        assert_eq!(record::REMOTE_ADDR, 32..48);
        assert_eq!(record::PRIVATE_DATA_LEN, 54..56);
        let a = addr_from_ipv4([10, 77, 0, 2]);
        assert_eq!(a[..5], [10, 77, 0, 2, 0]);
        assert_eq!(ipv4_from_addr(&a), Some([10, 77, 0, 2]));
        let mut b = a;
        b[15] = 1;
        assert_eq!(ipv4_from_addr(&b), None);
    }
}
