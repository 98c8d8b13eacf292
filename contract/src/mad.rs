//! Connection management on the wire (`docs/device-spec.md` §11.6): the general
//! services datagram that carries IBTA CM messages between devices. A CM message is
//! a RoCEv2 UD SEND Only packet to QP1: BTH (opcode [`UD_SEND_ONLY`], destination QP
//! [`GSI_QPN`]), DETH ([`Deth`]: Q_Key [`GSI_QKEY`], source QP 1), then one 256-byte
//! MAD ([`Mad`]) whose 24-byte header names the CM class and the message
//! ([`attr`]), followed by the message's fields ([`req`], [`rep`], [`rej`], [`mra`],
//! [`rtu`], [`dreq`], [`drep`]).
//!
//! Unlike the rest of this crate every field here is **big-endian** (network byte
//! order), as IBTA and Wireshark's InfiniBand dissector read them. Field ranges are
//! byte offsets from the start of the MAD (the IBTA message tables count from the
//! end of the 24-byte header: subtract 24). A field narrower than its bytes (a
//! 24-bit QPN, a 4-bit MTU) is named with the byte range that holds it and read
//! with the getters that take a shift and a width.

use crate::field::Field;
use crate::fixed_view;

/// BTH opcode of a UD SEND Only packet (transport `011`, operation SEND Only).
pub const UD_SEND_ONLY: u8 = 0x64;
/// The general services QP: CM messages are sent to and from QP1.
pub const GSI_QPN: u32 = 1;
/// The well-known Q_Key of QP1.
pub const GSI_QKEY: u32 = 0x8001_0000;
/// DETH length in bytes.
pub const DETH_LEN: usize = 8;
/// MAD length in bytes (header and data).
pub const MAD_LEN: usize = 256;
/// MAD common header length in bytes.
pub const MAD_HEADER_LEN: usize = 24;

/// MAD base version.
pub const BASE_VERSION: u8 = 1;
/// Management class of communication management.
pub const MGMT_CLASS_CM: u8 = 0x07;
/// CM class version (IBTA 1.2 and later).
pub const CM_CLASS_VERSION: u8 = 2;
/// MAD method `Send` (CM messages use no other).
pub const METHOD_SEND: u8 = 0x03;

/// CM attribute IDs: which message a MAD carries.
pub mod attr {
    /// ConnectRequest.
    pub const REQ: u16 = 0x0010;
    /// MessageReceiptAcknowledgement.
    pub const MRA: u16 = 0x0011;
    /// ConnectReject.
    pub const REJ: u16 = 0x0012;
    /// ConnectReply.
    pub const REP: u16 = 0x0013;
    /// ReadyToUse.
    pub const RTU: u16 = 0x0014;
    /// DisconnectRequest.
    pub const DREQ: u16 = 0x0015;
    /// DisconnectReply.
    pub const DREP: u16 = 0x0016;
}

/// Byte ranges of the DETH.
pub mod deth_field {
    use crate::field::Field;
    /// Q_Key.
    pub const QKEY: Field = 0..4;
    /// Source QP, 24 bits (byte 4 is reserved).
    pub const SRC_QP: Field = 5..8;
}

/// Byte ranges of the MAD common header.
pub mod header {
    use crate::field::Field;
    /// Base version (byte).
    pub const BASE_VERSION: usize = 0;
    /// Management class (byte).
    pub const MGMT_CLASS: usize = 1;
    /// Class version (byte).
    pub const CLASS_VERSION: usize = 2;
    /// Method (byte; bit 7 is the response bit, 0 for CM `Send`).
    pub const METHOD: usize = 3;
    /// Status.
    pub const STATUS: Field = 4..6;
    /// Class specific.
    pub const CLASS_SPECIFIC: Field = 6..8;
    /// Transaction ID.
    pub const TRANSACTION_ID: Field = 8..16;
    /// Attribute ID ([`super::attr`]).
    pub const ATTRIBUTE_ID: Field = 16..18;
    /// Reserved.
    pub const RESERVED: Field = 18..20;
    /// Attribute modifier.
    pub const ATTRIBUTE_MODIFIER: Field = 20..24;
}

/// ConnectRequest (IBTA 12.6.5), MAD offsets.
pub mod req {
    use crate::field::Field;
    /// Local communication ID.
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Service ID ([`crate::cm::service_id`]).
    pub const SERVICE_ID: Field = 32..40;
    /// Local CA GUID.
    pub const LOCAL_CA_GUID: Field = 40..48;
    /// Local Q_Key (0 for RC).
    pub const LOCAL_QKEY: Field = 52..56;
    /// Local QPN (bits 31:8) and responder resources (bits 7:0).
    pub const LOCAL_QPN_RESPONDER_RESOURCES: Field = 56..60;
    /// Local EECN (bits 31:8) and initiator depth (bits 7:0).
    pub const LOCAL_EECN_INITIATOR_DEPTH: Field = 60..64;
    /// Remote EECN (31:8), remote CM response timeout (7:3), transport service type
    /// (2:1, 0 = RC), end-to-end flow control (0).
    pub const REMOTE_EECN_TIMEOUT_TRANSPORT: Field = 64..68;
    /// Starting PSN (31:8), local CM response timeout (7:3), retry count (2:0).
    pub const STARTING_PSN_TIMEOUT_RETRY: Field = 68..72;
    /// Partition key.
    pub const PKEY: Field = 72..74;
    /// Path MTU (7:4), RDC exists (3), RNR retry count (2:0).
    pub const MTU_RNR_RETRY: usize = 74;
    /// Max CM retries (7:4), SRQ (3), extended transport type (2:0).
    pub const MAX_CM_RETRIES_SRQ: usize = 75;
    /// Primary local port LID (`0xFFFF`, permissive, on RoCE).
    pub const PRIMARY_LOCAL_LID: Field = 76..78;
    /// Primary remote port LID.
    pub const PRIMARY_REMOTE_LID: Field = 78..80;
    /// Primary local port GID (the sender's address as a GID).
    pub const PRIMARY_LOCAL_GID: Field = 80..96;
    /// Primary remote port GID.
    pub const PRIMARY_REMOTE_GID: Field = 96..112;
    /// Flow label (31:12), reserved (11:6), packet rate (5:0).
    pub const PRIMARY_FLOW_LABEL_RATE: Field = 112..116;
    /// Traffic class (byte).
    pub const PRIMARY_TRAFFIC_CLASS: usize = 116;
    /// Hop limit (byte).
    pub const PRIMARY_HOP_LIMIT: usize = 117;
    /// SL (7:4), subnet local (3).
    pub const PRIMARY_SL_SUBNET_LOCAL: usize = 118;
    /// Local ACK timeout (7:3).
    pub const PRIMARY_LOCAL_ACK_TIMEOUT: usize = 119;
    /// The alternate path (unused: zero).
    pub const ALTERNATE_PATH: Field = 120..164;
    /// Private data (92 bytes); with IP addressing the first 36 are the [`ip_cm`](super::ip_cm) header.
    pub const PRIVATE_DATA: Field = 164..256;
}

/// The IP addressing header at the start of a REQ's private data (IBTA annex A11,
/// as Linux rdma_cm writes it). Offsets from the start of the private data.
pub mod ip_cm {
    use crate::field::Field;
    /// Major (7:4) and minor (3:0) version: 0.
    pub const VERSION: usize = 0;
    /// IP version (7:4): 4 or 6.
    pub const IP_VERSION: usize = 1;
    /// Source port.
    pub const SRC_PORT: Field = 2..4;
    /// Source address: IPv6, or IPv4 in bytes 12..16 with bytes 0..12 zero.
    pub const SRC_ADDR: Field = 4..20;
    /// Destination address, as the source.
    pub const DST_ADDR: Field = 20..36;
    /// Length of the header; the consumer's private data follows.
    pub const LEN: usize = 36;
}

/// ConnectReply (IBTA 12.6.8), MAD offsets.
pub mod rep {
    use crate::field::Field;
    /// Local communication ID (the replier's).
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID (the requester's).
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Local Q_Key.
    pub const LOCAL_QKEY: Field = 32..36;
    /// Local QPN (31:8).
    pub const LOCAL_QPN: Field = 36..40;
    /// Local EECN (31:8).
    pub const LOCAL_EECN: Field = 40..44;
    /// Starting PSN (31:8).
    pub const STARTING_PSN: Field = 44..48;
    /// Responder resources (byte).
    pub const RESPONDER_RESOURCES: usize = 48;
    /// Initiator depth (byte).
    pub const INITIATOR_DEPTH: usize = 49;
    /// Target ACK delay (7:3), failover accepted (2:1), end-to-end flow control (0).
    pub const TARGET_ACK_DELAY_FAILOVER: usize = 50;
    /// RNR retry count (7:5), SRQ (4).
    pub const RNR_RETRY_SRQ: usize = 51;
    /// Local CA GUID.
    pub const LOCAL_CA_GUID: Field = 52..60;
    /// Private data (196 bytes).
    pub const PRIVATE_DATA: Field = 60..256;
}

/// ConnectReject (IBTA 12.6.7), MAD offsets.
pub mod rej {
    use crate::field::Field;
    /// Local communication ID (the rejecter's; 0 when it has none).
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID.
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Message rejected (7:6): [`super::MSG_REQ`], [`super::MSG_REP`], [`super::MSG_OTHER`].
    pub const MESSAGE_REJECTED: usize = 32;
    /// Reject info length (7:1).
    pub const REJECT_INFO_LEN: usize = 33;
    /// Reason ([`crate::cm::reject_reason`]).
    pub const REASON: Field = 34..36;
    /// Additional reject information (72 bytes).
    pub const ARI: Field = 36..108;
    /// Private data (148 bytes).
    pub const PRIVATE_DATA: Field = 108..256;
}

/// MessageReceiptAcknowledgement (IBTA 12.6.6), MAD offsets.
pub mod mra {
    use crate::field::Field;
    /// Local communication ID.
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID.
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Message MRAed (7:6): [`super::MSG_REQ`], [`super::MSG_REP`].
    pub const MESSAGE_MRAED: usize = 32;
    /// Service timeout (7:3).
    pub const SERVICE_TIMEOUT: usize = 33;
    /// Private data (222 bytes).
    pub const PRIVATE_DATA: Field = 34..256;
}

/// ReadyToUse (IBTA 12.6.9), MAD offsets.
pub mod rtu {
    use crate::field::Field;
    /// Local communication ID.
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID.
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Private data (224 bytes).
    pub const PRIVATE_DATA: Field = 32..256;
}

/// DisconnectRequest (IBTA 12.6.10), MAD offsets.
pub mod dreq {
    use crate::field::Field;
    /// Local communication ID.
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID.
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Remote QPN/EECN (31:8): the QPN of the receiver.
    pub const REMOTE_QPN: Field = 32..36;
    /// Private data (220 bytes).
    pub const PRIVATE_DATA: Field = 36..256;
}

/// DisconnectReply (IBTA 12.6.11), MAD offsets.
pub mod drep {
    use crate::field::Field;
    /// Local communication ID.
    pub const LOCAL_COMM_ID: Field = 24..28;
    /// Remote communication ID.
    pub const REMOTE_COMM_ID: Field = 28..32;
    /// Private data (224 bytes).
    pub const PRIVATE_DATA: Field = 32..256;
}

/// "Message rejected" / "message MRAed" value: the REQ.
pub const MSG_REQ: u8 = 0;
/// "Message rejected" / "message MRAed" value: the REP.
pub const MSG_REP: u8 = 1;
/// "Message rejected" value: another message.
pub const MSG_OTHER: u8 = 2;

/// Reads a big-endian number from the bytes of `f` (at most 8 bytes).
fn get_be(b: &[u8], f: Field) -> u64 {
    b[f].iter().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Writes `v` big-endian into the bytes of `f` (at most 8 bytes).
fn set_be(b: &mut [u8], f: Field, mut v: u64) {
    for x in b[f].iter_mut().rev() {
        *x = v as u8;
        v >>= 8;
    }
}

/// A mask of `width` low bits.
const fn low_bits(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

fixed_view!(
    /// A view of the 8-byte Datagram Extended Transport Header.
    Deth,
    DETH_LEN
);

impl<T: AsRef<[u8]>> Deth<T> {
    /// Q_Key.
    pub fn qkey(&self) -> u32 {
        get_be(self.bytes(), deth_field::QKEY) as u32
    }
    /// Source QP.
    pub fn src_qp(&self) -> u32 {
        get_be(self.bytes(), deth_field::SRC_QP) as u32
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Deth<T> {
    /// Sets the Q_Key.
    pub fn set_qkey(&mut self, v: u32) {
        set_be(self.bytes_mut(), deth_field::QKEY, v as u64)
    }
    /// Sets the source QP (24 bits) and zeroes the reserved byte.
    pub fn set_src_qp(&mut self, v: u32) {
        let b = self.bytes_mut();
        b[4] = 0;
        set_be(b, deth_field::SRC_QP, (v & 0xFF_FFFF) as u64)
    }
}

fixed_view!(
    /// A view of one 256-byte MAD: the common header and the CM message fields
    /// named by the modules of this file.
    Mad,
    MAD_LEN
);

impl<T: AsRef<[u8]>> Mad<T> {
    /// Base version.
    pub fn base_version(&self) -> u8 {
        self.bytes()[header::BASE_VERSION]
    }
    /// Management class.
    pub fn mgmt_class(&self) -> u8 {
        self.bytes()[header::MGMT_CLASS]
    }
    /// Class version.
    pub fn class_version(&self) -> u8 {
        self.bytes()[header::CLASS_VERSION]
    }
    /// Method.
    pub fn method(&self) -> u8 {
        self.bytes()[header::METHOD]
    }
    /// Status.
    pub fn status(&self) -> u16 {
        get_be(self.bytes(), header::STATUS) as u16
    }
    /// Transaction ID.
    pub fn transaction_id(&self) -> u64 {
        get_be(self.bytes(), header::TRANSACTION_ID)
    }
    /// Attribute ID.
    pub fn attribute_id(&self) -> u16 {
        get_be(self.bytes(), header::ATTRIBUTE_ID) as u16
    }
    /// Attribute modifier.
    pub fn attribute_modifier(&self) -> u32 {
        get_be(self.bytes(), header::ATTRIBUTE_MODIFIER) as u32
    }
    /// The big-endian number in the bytes of `f` (at most 8 bytes).
    pub fn get(&self, f: Field) -> u64 {
        get_be(self.bytes(), f)
    }
    /// The `width` bits starting at bit `shift` (0 = least significant) of the
    /// big-endian number in `f`: a sub-byte field such as a 24-bit QPN (shift 8,
    /// width 24) or a 4-bit MTU (shift 4, width 4).
    pub fn get_bits(&self, f: Field, shift: u32, width: u32) -> u64 {
        (get_be(self.bytes(), f) >> shift) & low_bits(width)
    }
    /// The bytes of `f` (GIDs, private data).
    pub fn slice(&self, f: Field) -> &[u8] {
        &self.bytes()[f]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Mad<T> {
    /// Writes the common header of a CM `Send` MAD (base version 1, class CM,
    /// class version 2, method Send, status 0) for message `attribute_id`.
    pub fn set_cm_header(&mut self, transaction_id: u64, attribute_id: u16) {
        let b = self.bytes_mut();
        b[header::BASE_VERSION] = BASE_VERSION;
        b[header::MGMT_CLASS] = MGMT_CLASS_CM;
        b[header::CLASS_VERSION] = CM_CLASS_VERSION;
        b[header::METHOD] = METHOD_SEND;
        set_be(b, header::STATUS, 0);
        set_be(b, header::CLASS_SPECIFIC, 0);
        set_be(b, header::TRANSACTION_ID, transaction_id);
        set_be(b, header::ATTRIBUTE_ID, attribute_id as u64);
        set_be(b, header::RESERVED, 0);
        set_be(b, header::ATTRIBUTE_MODIFIER, 0);
    }
    /// Writes `v` big-endian into the bytes of `f` (at most 8 bytes).
    pub fn set(&mut self, f: Field, v: u64) {
        set_be(self.bytes_mut(), f, v)
    }
    /// Replaces the `width` bits at bit `shift` of the big-endian number in `f`,
    /// keeping the other bits.
    pub fn set_bits(&mut self, f: Field, shift: u32, width: u32, v: u64) {
        let mask = low_bits(width) << shift;
        let old = get_be(self.bytes(), f.clone());
        set_be(self.bytes_mut(), f, (old & !mask) | ((v << shift) & mask))
    }
    /// Copies `v` into the start of `f` and zeroes the rest of it; `v` must not be
    /// longer than the field.
    pub fn set_slice(&mut self, f: Field, v: &[u8]) {
        let dst = &mut self.bytes_mut()[f];
        let (head, tail) = dst.split_at_mut(v.len());
        head.copy_from_slice(v);
        tail.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MAD header and CM message offsets, copied independently from the IBTA
    /// tables (data offsets + 24), as Wireshark's packet-infiniband.c walks them.
    #[test]
    fn offsets_match_ibta() {
        assert_eq!((UD_SEND_ONLY, GSI_QPN, GSI_QKEY), (0x64, 1, 0x8001_0000));
        assert_eq!((MAD_LEN, MAD_HEADER_LEN, DETH_LEN), (256, 24, 8));
        assert_eq!(
            (BASE_VERSION, MGMT_CLASS_CM, CM_CLASS_VERSION, METHOD_SEND),
            (1, 7, 2, 3)
        );
        assert_eq!(
            [
                attr::REQ,
                attr::MRA,
                attr::REJ,
                attr::REP,
                attr::RTU,
                attr::DREQ,
                attr::DREP
            ],
            [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16]
        );
        assert_eq!(header::TRANSACTION_ID, 8..16);
        assert_eq!(header::ATTRIBUTE_ID, 16..18);
        // REQ: data offsets 0, 8, 16, 28, 32, 36, 40, 44, 48, 50, 51, 52, 56, 72, 88, 140.
        assert_eq!(req::LOCAL_COMM_ID.start, 24);
        assert_eq!(req::SERVICE_ID.start, 24 + 8);
        assert_eq!(req::LOCAL_CA_GUID.start, 24 + 16);
        assert_eq!(req::LOCAL_QKEY.start, 24 + 28);
        assert_eq!(req::LOCAL_QPN_RESPONDER_RESOURCES.start, 24 + 32);
        assert_eq!(req::STARTING_PSN_TIMEOUT_RETRY.start, 24 + 44);
        assert_eq!((req::PKEY.start, req::MTU_RNR_RETRY), (24 + 48, 24 + 50));
        assert_eq!(req::PRIMARY_LOCAL_GID.start, 24 + 56);
        assert_eq!(req::PRIMARY_REMOTE_GID.start, 24 + 72);
        assert_eq!(req::PRIMARY_FLOW_LABEL_RATE.start, 24 + 88);
        assert_eq!(req::PRIVATE_DATA, 24 + 140..256);
        assert_eq!(req::PRIVATE_DATA.len(), 92);
        assert_eq!(ip_cm::LEN + crate::cm::private_data::REQ, 92);
        // REP: 0, 4, 8, 12, 16, 20, 24, 25, 26, 27, 28, 36.
        assert_eq!(rep::LOCAL_QPN.start, 24 + 12);
        assert_eq!(rep::STARTING_PSN.start, 24 + 20);
        assert_eq!((rep::RESPONDER_RESOURCES, rep::INITIATOR_DEPTH), (48, 49));
        assert_eq!(rep::PRIVATE_DATA.len(), crate::cm::private_data::REP);
        // REJ: 0, 4, 8, 9, 10, 12, 84.
        assert_eq!(rej::REASON, 24 + 10..24 + 12);
        assert_eq!(rej::PRIVATE_DATA.len(), crate::cm::private_data::REJ);
        assert_eq!(mra::PRIVATE_DATA.len(), 222);
        assert_eq!(rtu::PRIVATE_DATA.len(), 224);
        assert_eq!(dreq::PRIVATE_DATA.len(), 220);
        assert_eq!(drep::PRIVATE_DATA.len(), 224);
    }

    /// Big-endian bytes of a CM header, a DETH and packed sub-byte fields.
    #[test]
    fn big_endian_bytes() {
        let mut b = [0u8; MAD_LEN];
        let mut m = Mad::new_checked(&mut b[..]).unwrap();
        m.set_cm_header(0x0102_0304_0506_0708, attr::REP);
        m.set(rep::LOCAL_COMM_ID, 0xAABB_CCDD);
        m.set_bits(req::LOCAL_QPN_RESPONDER_RESOURCES, 8, 24, 0x12_3456);
        m.set_bits(req::LOCAL_QPN_RESPONDER_RESOURCES, 0, 8, 4);
        m.set_bits(req::MTU_RNR_RETRY..req::MTU_RNR_RETRY + 1, 4, 4, 3);
        m.set_bits(req::MTU_RNR_RETRY..req::MTU_RNR_RETRY + 1, 0, 3, 7);
        m.set_slice(rej::PRIVATE_DATA, &[9, 8]);
        assert_eq!(m.attribute_id(), 0x13);
        assert_eq!(
            m.get_bits(req::LOCAL_QPN_RESPONDER_RESOURCES, 8, 24),
            0x12_3456
        );
        assert_eq!(b[..4], [1, 7, 2, 3]);
        assert_eq!(b[8..16], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[16..18], [0x00, 0x13]);
        assert_eq!(b[24..28], [0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(b[56..60], [0x12, 0x34, 0x56, 4]);
        assert_eq!(b[74], 0x37);
        assert_eq!((b[108], b[109], b[110]), (9, 8, 0));
        let mut d = [0xFFu8; DETH_LEN];
        let mut deth = Deth::new_checked(&mut d[..]).unwrap();
        deth.set_qkey(GSI_QKEY);
        deth.set_src_qp(1);
        assert_eq!((deth.qkey(), deth.src_qp()), (GSI_QKEY, 1));
        assert_eq!(d, [0x80, 0x01, 0, 0, 0, 0, 0, 1]);
        assert!(Mad::new_checked(&[0u8; 255][..]).is_err());
    }
}
