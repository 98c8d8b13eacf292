//! The IBTA CM messages the connection manager sends, built on the contract's
//! [`Mad`] view (`docs/device-spec.md` §11.6), and the GIDs and GUIDs they carry.

use std::net::IpAddr;

use rnic_contract::cm::{self, timing};
use rnic_contract::mad::{self, attr, ip_cm, Mad, MAD_LEN};

/// One MAD, as sent or received.
pub(crate) type MadBytes = [u8; MAD_LEN];

/// The IB GID of an address: IPv4-mapped (`::ffff:a.b.c.d`) or the IPv6 address.
pub(crate) fn gid_of(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The EUI-64 CA GUID derived from a MAC (universal/local bit flipped, `FF FE` in
/// the middle), as RoCE adapters form it.
pub(crate) fn guid_of(mac: [u8; 6]) -> u64 {
    u64::from_be_bytes([
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xFF,
        0xFE,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// An address in the 16-byte form of the IP addressing header: IPv6 as it is, IPv4
/// in the last four bytes.
fn ip_cm_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[12..].copy_from_slice(&v4.octets());
            a
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address in an IP addressing header field for IP version `version`.
pub(crate) fn ip_cm_addr_parse(version: u8, a: &[u8]) -> Option<IpAddr> {
    let a: [u8; 16] = a.try_into().ok()?;
    match version {
        4 if a[..12].iter().all(|&b| b == 0) => Some(IpAddr::from([a[12], a[13], a[14], a[15]])),
        6 => Some(IpAddr::from(a)),
        _ => None,
    }
}

/// What a REQ carries beyond the connection's identifiers.
pub(crate) struct ReqFields<'a> {
    pub transaction_id: u64,
    pub local_comm_id: u32,
    pub port: u16,
    pub local_port: u16,
    pub guid: u64,
    pub qpn: u32,
    pub responder_resources: u8,
    pub initiator_depth: u8,
    pub psn: u32,
    pub mtu_code: u8,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub private: &'a [u8],
}

fn new_mad(transaction_id: u64, attribute: u16) -> MadBytes {
    let mut b = [0u8; MAD_LEN];
    Mad::new_unchecked(&mut b[..]).set_cm_header(transaction_id, attribute);
    b
}

/// A ConnectRequest (§11.6 field table).
pub(crate) fn req(f: &ReqFields) -> MadBytes {
    use mad::req as r;
    let mut b = new_mad(f.transaction_id, attr::REQ);
    let mut m = Mad::new_unchecked(&mut b[..]);
    m.set(r::LOCAL_COMM_ID, f.local_comm_id.into());
    m.set(r::SERVICE_ID, cm::service_id(f.port));
    m.set(r::LOCAL_CA_GUID, f.guid);
    m.set(r::LOCAL_QKEY, 0);
    m.set(
        r::LOCAL_QPN_RESPONDER_RESOURCES,
        u64::from(f.qpn) << 8 | u64::from(f.responder_resources),
    );
    m.set(r::LOCAL_EECN_INITIATOR_DEPTH, f.initiator_depth.into());
    // Remote CM response timeout (7:3); transport type RC (0); no end-to-end credits.
    m.set(
        r::REMOTE_EECN_TIMEOUT_TRANSPORT,
        u64::from(timing::CM_RESPONSE_TIMEOUT_EXP) << 3,
    );
    m.set(
        r::STARTING_PSN_TIMEOUT_RETRY,
        u64::from(f.psn) << 8
            | u64::from(timing::CM_RESPONSE_TIMEOUT_EXP) << 3
            | u64::from(cm::qp_defaults::RETRY_CNT),
    );
    m.set(r::PKEY, 0xFFFF);
    m.set(
        r::MTU_RNR_RETRY..r::MTU_RNR_RETRY + 1,
        u64::from(f.mtu_code) << 4 | u64::from(cm::qp_defaults::RNR_RETRY),
    );
    m.set(
        r::MAX_CM_RETRIES_SRQ..r::MAX_CM_RETRIES_SRQ + 1,
        u64::from(timing::CM_MAX_RETRIES) << 4,
    );
    m.set(r::PRIMARY_LOCAL_LID, 0xFFFF);
    m.set(r::PRIMARY_REMOTE_LID, 0xFFFF);
    m.set_slice(r::PRIMARY_LOCAL_GID, &gid_of(f.local));
    m.set_slice(r::PRIMARY_REMOTE_GID, &gid_of(f.remote));
    m.set(
        r::PRIMARY_HOP_LIMIT..r::PRIMARY_HOP_LIMIT + 1,
        crate::roce::DEFAULT_TTL.into(),
    );
    m.set(
        r::PRIMARY_LOCAL_ACK_TIMEOUT..r::PRIMARY_LOCAL_ACK_TIMEOUT + 1,
        u64::from(cm::qp_defaults::TIMEOUT) << 3,
    );
    let mut private = [0u8; 92];
    private[ip_cm::VERSION] = 0;
    private[ip_cm::IP_VERSION] = if f.local.is_ipv4() { 4 << 4 } else { 6 << 4 };
    private[ip_cm::SRC_PORT].copy_from_slice(&f.local_port.to_be_bytes());
    private[ip_cm::SRC_ADDR].copy_from_slice(&ip_cm_addr(f.local));
    private[ip_cm::DST_ADDR].copy_from_slice(&ip_cm_addr(f.remote));
    let n = f.private.len().min(cm::private_data::REQ);
    private[ip_cm::LEN..ip_cm::LEN + n].copy_from_slice(&f.private[..n]);
    m.set_slice(r::PRIVATE_DATA, &private);
    b
}

/// What a REP carries.
pub(crate) struct RepFields<'a> {
    pub transaction_id: u64,
    pub local_comm_id: u32,
    pub remote_comm_id: u32,
    pub qpn: u32,
    pub psn: u32,
    pub responder_resources: u8,
    pub initiator_depth: u8,
    pub guid: u64,
    pub private: &'a [u8],
}

/// A ConnectReply.
pub(crate) fn rep(f: &RepFields) -> MadBytes {
    use mad::rep as r;
    let mut b = new_mad(f.transaction_id, attr::REP);
    let mut m = Mad::new_unchecked(&mut b[..]);
    m.set(r::LOCAL_COMM_ID, f.local_comm_id.into());
    m.set(r::REMOTE_COMM_ID, f.remote_comm_id.into());
    m.set(r::LOCAL_QPN, u64::from(f.qpn) << 8);
    m.set(r::STARTING_PSN, u64::from(f.psn) << 8);
    m.set(
        r::RESPONDER_RESOURCES..r::RESPONDER_RESOURCES + 1,
        f.responder_resources.into(),
    );
    m.set(
        r::INITIATOR_DEPTH..r::INITIATOR_DEPTH + 1,
        f.initiator_depth.into(),
    );
    m.set(
        r::RNR_RETRY_SRQ..r::RNR_RETRY_SRQ + 1,
        u64::from(cm::qp_defaults::RNR_RETRY) << 5,
    );
    m.set(r::LOCAL_CA_GUID, f.guid);
    m.set_slice(r::PRIVATE_DATA, f.private);
    b
}

/// A ConnectReject.
pub(crate) fn rej(
    transaction_id: u64,
    local_comm_id: u32,
    remote_comm_id: u32,
    message_rejected: u8,
    reason: u16,
    private: &[u8],
) -> MadBytes {
    use mad::rej as r;
    let mut b = new_mad(transaction_id, attr::REJ);
    let mut m = Mad::new_unchecked(&mut b[..]);
    m.set(r::LOCAL_COMM_ID, local_comm_id.into());
    m.set(r::REMOTE_COMM_ID, remote_comm_id.into());
    m.set(
        r::MESSAGE_REJECTED..r::MESSAGE_REJECTED + 1,
        u64::from(message_rejected) << 6,
    );
    m.set(r::REASON, reason.into());
    m.set_slice(r::PRIVATE_DATA, private);
    b
}

/// A MessageReceiptAcknowledgement of a REQ.
pub(crate) fn mra(transaction_id: u64, local_comm_id: u32, remote_comm_id: u32) -> MadBytes {
    use mad::mra as r;
    let mut b = new_mad(transaction_id, attr::MRA);
    let mut m = Mad::new_unchecked(&mut b[..]);
    m.set(r::LOCAL_COMM_ID, local_comm_id.into());
    m.set(r::REMOTE_COMM_ID, remote_comm_id.into());
    m.set(
        r::MESSAGE_MRAED..r::MESSAGE_MRAED + 1,
        u64::from(mad::MSG_REQ) << 6,
    );
    m.set(
        r::SERVICE_TIMEOUT..r::SERVICE_TIMEOUT + 1,
        u64::from(timing::MRA_SERVICE_TIMEOUT_EXP) << 3,
    );
    b
}

/// A message that carries only the two communication IDs: RTU or DREP.
pub(crate) fn ids_only(
    transaction_id: u64,
    attribute: u16,
    local_comm_id: u32,
    remote_comm_id: u32,
) -> MadBytes {
    // RTU and DREP put the IDs at the same offsets.
    let mut b = new_mad(transaction_id, attribute);
    let mut m = Mad::new_unchecked(&mut b[..]);
    m.set(mad::rtu::LOCAL_COMM_ID, local_comm_id.into());
    m.set(mad::rtu::REMOTE_COMM_ID, remote_comm_id.into());
    b
}

/// A DisconnectRequest.
pub(crate) fn dreq(
    transaction_id: u64,
    local_comm_id: u32,
    remote_comm_id: u32,
    remote_qpn: u32,
) -> MadBytes {
    let mut b = ids_only(transaction_id, attr::DREQ, local_comm_id, remote_comm_id);
    Mad::new_unchecked(&mut b[..]).set(mad::dreq::REMOTE_QPN, u64::from(remote_qpn) << 8);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_guids_and_ip_cm_addresses() {
        let v4: IpAddr = "10.77.0.2".parse().unwrap();
        assert_eq!(gid_of(v4)[10..], [0xFF, 0xFF, 10, 77, 0, 2]);
        assert_eq!(guid_of([2, 0x7E, 0x57, 0, 0, 1]), 0x007E_57FF_FE00_0001);
        let a = ip_cm_addr(v4);
        assert_eq!(a[12..], [10, 77, 0, 2]);
        assert_eq!(ip_cm_addr_parse(4, &a), Some(v4));
        assert_eq!(ip_cm_addr_parse(6, &a).map(|a| a.is_ipv6()), Some(true));
        let mut bad = a;
        bad[0] = 1;
        assert_eq!(ip_cm_addr_parse(4, &bad), None);
        assert_eq!(ip_cm_addr_parse(5, &a), None);
    }

    /// A REQ's fields where §11.6 puts them, read back independently.
    #[test]
    fn req_fields_at_their_offsets() {
        let f = ReqFields {
            transaction_id: 7,
            local_comm_id: 0x0001_0002,
            port: 4791,
            local_port: 50000,
            guid: 0x1122_3344_5566_7788,
            qpn: 0x12_3456,
            responder_resources: 4,
            initiator_depth: 2,
            psn: 0xAB_CDEF,
            mtu_code: 3,
            local: "10.0.0.1".parse().unwrap(),
            remote: "10.0.0.2".parse().unwrap(),
            private: b"hello",
        };
        let b = req(&f);
        assert_eq!(b[..4], [1, 7, 2, 3]);
        assert_eq!(b[16..18], [0, 0x10]);
        assert_eq!(b[24..28], [0, 1, 0, 2]);
        assert_eq!(b[32..40], [0, 0, 0, 0, 1, 6, 0x12, 0xB7]);
        assert_eq!(b[56..60], [0x12, 0x34, 0x56, 4]);
        assert_eq!(b[63], 2);
        assert_eq!(b[67] >> 3, 18);
        assert_eq!(b[68..71], [0xAB, 0xCD, 0xEF]);
        assert_eq!((b[71] >> 3, b[71] & 7), (18, 7));
        assert_eq!((b[74] >> 4, b[74] & 7, b[75] >> 4), (3, 7, 3));
        assert_eq!(b[96 + 10..112], [0xFF, 0xFF, 10, 0, 0, 2]);
        assert_eq!((b[164], b[165]), (0, 0x40));
        assert_eq!(b[166..168], 50000u16.to_be_bytes());
        assert_eq!(b[164 + 16..164 + 20], [10, 0, 0, 1]);
        assert_eq!(b[164 + 32..164 + 36], [10, 0, 0, 2]);
        assert_eq!(&b[200..205], b"hello");
        assert!(b[205..].iter().all(|&x| x == 0));
    }
}
