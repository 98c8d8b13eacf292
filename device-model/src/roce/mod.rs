//! RoCEv2 packet codec: Ethernet II / IPv4 / UDP (port 4791) / BTH / extension
//! headers / payload / pad / ICRC.
//!
//! This module owns the bytes of a RoCEv2 frame and nothing else: it knows no
//! queue pairs, memory or timers (the RC transport does), and no sockets (see
//! [`crate::wire`]). [`encode`] builds a frame from a [`RocePacket`]; [`decode`]
//! validates every length, checksum and field of a received frame and never
//! panics, whatever the input. The frame format is written down in
//! `docs/device-spec.md` §11.
//!
//! Scope: IPv4 without options or IPv6 without extension headers
//! ([`RocePacket::ip6`]), the Reliable Connected transport (every RC opcode, see
//! [`opcode`]) and UD SEND Only for the connection manager's datagrams. The UDP
//! checksum is sent as 0 over IPv4 and computed over IPv6 (which requires it); a
//! non-zero checksum on a received frame is verified.

mod classify;
pub mod icrc;
pub mod opcode;
pub mod psn;

pub use classify::is_roce_frame;

#[cfg(test)]
pub(crate) mod tests;

pub use opcode::OpcodeInfo;
pub use psn::{psn_add, psn_cmp, psn_distance, psn_sub, PSN_MASK};

use thiserror::Error;

/// UDP destination port assigned to RoCEv2 by IANA.
pub const ROCE_UDP_PORT: u16 = 4791;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// IPv6 header without extension headers.
pub const IPV6_HEADER_LEN: usize = 40;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Ethernet II header: destination MAC, source MAC, ethertype.
pub const ETH_HEADER_LEN: usize = 14;
/// IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Base Transport Header.
pub const BTH_LEN: usize = 12;
/// RDMA Extended Transport Header.
pub const RETH_LEN: usize = 16;
/// ACK Extended Transport Header.
pub const AETH_LEN: usize = 4;
/// Atomic Extended Transport Header.
pub const ATOMIC_ETH_LEN: usize = 28;
/// Atomic Acknowledge Extended Transport Header.
pub const ATOMIC_ACK_ETH_LEN: usize = 8;
/// Immediate data.
pub const IMM_LEN: usize = 4;
/// Invalidate Extended Transport Header.
pub const IETH_LEN: usize = 4;
/// Datagram Extended Transport Header (UD).
pub const DETH_LEN: usize = rnic_contract::mad::DETH_LEN;
/// Invariant CRC trailer.
pub const ICRC_LEN: usize = 4;
/// Offset of the BTH in an encoded frame.
pub const BTH_OFFSET: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Smallest Ethernet frame without FCS; shorter frames are zero-padded by [`encode`].
pub const MIN_ETH_FRAME_LEN: usize = 60;
/// Default P_Key (full membership, default partition).
pub const DEFAULT_PKEY: u16 = 0xFFFF;
/// Default IPv4 TTL written by devices.
pub const DEFAULT_TTL: u8 = 64;

/// Ethernet II addresses (the ethertype is always IPv4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EthHeader {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
}

/// The IPv4 header fields a sender chooses. Version, IHL, total length, flags (DF),
/// protocol and checksum are derived by [`encode`] and checked by [`decode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv4Info {
    /// Source IPv4 address, network byte order.
    pub src: [u8; 4],
    /// Destination IPv4 address, network byte order.
    pub dst: [u8; 4],
    /// Time to live.
    pub ttl: u8,
    /// DSCP (6 high bits) and ECN (2 low bits): the old TOS byte.
    pub dscp_ecn: u8,
    /// Identification field.
    pub id: u16,
}

/// The IPv6 header fields a sender chooses (RoCEv2 over IPv6). Version, payload
/// length and next header (UDP) are derived by [`encode`] and checked by [`decode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv6Info {
    /// Source address, network byte order.
    pub src: [u8; 16],
    /// Destination address, network byte order.
    pub dst: [u8; 16],
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label, 20 bits.
    pub flow_label: u32,
}

/// Base Transport Header. The pad count and transport version (always 0) are not
/// fields: [`encode`] derives the pad from the payload length and [`decode`] strips it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bth {
    /// One of the [`opcode`] constants.
    pub opcode: u8,
    /// Solicited event (SE).
    pub solicited: bool,
    /// Migration request (M).
    pub mig_req: bool,
    /// Partition key.
    pub pkey: u16,
    /// Forward explicit congestion notification (not covered by the ICRC).
    pub fecn: bool,
    /// Backward explicit congestion notification (not covered by the ICRC).
    pub becn: bool,
    /// Destination QP number, 24 bits.
    pub dest_qp: u32,
    /// Acknowledge request (A).
    pub ack_req: bool,
    /// Packet sequence number, 24 bits.
    pub psn: u32,
}

/// RDMA Extended Transport Header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reth {
    /// Remote virtual address.
    pub va: u64,
    /// Remote key.
    pub rkey: u32,
    /// Length of the whole RDMA operation in bytes.
    pub dma_len: u32,
}

/// ACK Extended Transport Header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Aeth {
    /// See [`syndrome`] and [`Aeth::kind`].
    pub syndrome: u8,
    /// Message sequence number, 24 bits.
    pub msn: u32,
}

/// Atomic Extended Transport Header (CmpSwap, FetchAdd).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AtomicEth {
    /// Remote virtual address of the 8-byte target.
    pub va: u64,
    /// Remote key of the target region.
    pub rkey: u32,
    /// Swap value (CmpSwap) or addend (FetchAdd).
    pub swap_add: u64,
    /// Compare value (CmpSwap; ignored by FetchAdd).
    pub compare: u64,
}

/// AETH syndrome values (IBA table "AETH syndrome field"): bits 6:5 select ACK
/// (`00`), RNR NAK (`01`) or NAK (`11`); bits 4:0 carry the credit count, RNR timer
/// or NAK code.
pub mod syndrome {
    /// ACK with "invalid credit count": no end-to-end flow control.
    pub const ACK_UNLIMITED_CREDIT: u8 = 0x1F;
    /// Base of RNR NAK syndromes (OR in the 5-bit timer value).
    pub const RNR_NAK: u8 = 0x20;
    /// NAK: PSN sequence error.
    pub const NAK_PSN_SEQUENCE_ERROR: u8 = 0x60;
    /// NAK: invalid request.
    pub const NAK_INVALID_REQUEST: u8 = 0x61;
    /// NAK: remote access error (bad rkey, bounds or rights).
    pub const NAK_REMOTE_ACCESS_ERROR: u8 = 0x62;
    /// NAK: remote operational error.
    pub const NAK_REMOTE_OPERATIONAL_ERROR: u8 = 0x63;
    /// NAK: invalid RD request.
    pub const NAK_INVALID_RD_REQUEST: u8 = 0x64;
}

/// The meaning of an AETH syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AethKind {
    /// Positive acknowledge with a 5-bit credit count (31 = unlimited).
    Ack {
        /// End-to-end credit count, 5 bits (31 = unlimited).
        credits: u8,
    },
    /// Receiver not ready; retry after the encoded timer.
    RnrNak {
        /// RNR NAK timer code, 5 bits (`rnic_contract::verbs::RNR_TIMER_US`).
        timer: u8,
    },
    /// Negative acknowledge with a 5-bit code (0 .. 4, see [`syndrome`]).
    Nak {
        /// NAK code, 5 bits ([`syndrome`]).
        code: u8,
    },
    /// Bit 7 set or type `10`: reserved encodings.
    Reserved,
}

impl Aeth {
    /// A positive ACK for `msn` with unlimited credit.
    pub const fn ack(msn: u32) -> Self {
        Aeth {
            syndrome: syndrome::ACK_UNLIMITED_CREDIT,
            msn: msn & PSN_MASK,
        }
    }

    /// A NAK with one of the `syndrome::NAK_*` values.
    pub const fn nak(msn: u32, nak_syndrome: u8) -> Self {
        Aeth {
            syndrome: nak_syndrome,
            msn: msn & PSN_MASK,
        }
    }

    /// An RNR NAK with a 5-bit timer code.
    pub const fn rnr_nak(msn: u32, timer: u8) -> Self {
        Aeth {
            syndrome: syndrome::RNR_NAK | (timer & 0x1F),
            msn: msn & PSN_MASK,
        }
    }

    /// Classifies the syndrome.
    pub const fn kind(&self) -> AethKind {
        let value = self.syndrome & 0x1F;
        match self.syndrome >> 5 {
            0b000 => AethKind::Ack { credits: value },
            0b001 => AethKind::RnrNak { timer: value },
            0b011 => AethKind::Nak { code: value },
            _ => AethKind::Reserved,
        }
    }
}

/// Datagram Extended Transport Header (UD SEND Only to QP1, §11.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Deth {
    /// Queue key.
    pub qkey: u32,
    /// Source QP, 24 bits.
    pub src_qp: u32,
}

/// One RoCEv2 packet, as the transport sees it.
///
/// Which of the optional headers must be present is fixed by the opcode (see
/// [`opcode::info`]); [`encode`] refuses a packet whose headers do not match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RocePacket {
    /// Ethernet addresses.
    pub eth: EthHeader,
    /// IPv4 addresses and TTL (ignored when [`RocePacket::ip6`] is set).
    pub ip: Ipv4Info,
    /// IPv6 header fields: when set the packet travels over IPv6 (ethertype
    /// `0x86DD`) instead of IPv4.
    pub ip6: Option<Ipv6Info>,
    /// UDP source port (RoCEv2 uses it as flow entropy; any value is valid).
    pub udp_src_port: u16,
    /// Base Transport Header.
    pub bth: Bth,
    /// Datagram Extended Transport Header (UD SEND Only).
    pub deth: Option<Deth>,
    /// RDMA Extended Transport Header (first packet of WRITE, READ request).
    pub reth: Option<Reth>,
    /// ACK Extended Transport Header (acknowledges, READ responses).
    pub aeth: Option<Aeth>,
    /// Atomic Extended Transport Header (atomic requests).
    pub atomic_eth: Option<AtomicEth>,
    /// Atomic Acknowledge ETH: the original remote data.
    pub atomic_ack: Option<u64>,
    /// Immediate data (network byte order on the wire).
    pub imm: Option<u32>,
    /// Invalidate ETH: the rkey to invalidate.
    pub ieth: Option<u32>,
    /// Payload without pad bytes.
    pub payload: Vec<u8>,
}

/// Why [`encode`] refused a packet (a bug in the caller, never in the peer).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error(
        "BTH opcode {0:#04x} is not an RC opcode this codec supports; use a roce::opcode constant"
    )]
    /// The BTH opcode is not one this codec encodes.
    UnsupportedOpcode(u8),
    #[error("opcode {opcode:#04x} ({name}) {} the {header} header; set the packet's optional headers to match roce::opcode::info", if *.required { "requires" } else { "must not carry" })]
    /// An optional header is present where the opcode forbids it, or missing where it requires it.
    HeaderMismatch {
        /// The BTH opcode.
        opcode: u8,
        /// The opcode's name.
        name: &'static str,
        /// The header in question.
        header: &'static str,
        /// True when the opcode requires the header (it was missing).
        required: bool,
    },
    #[error("opcode {opcode:#04x} ({name}) carries no payload but {len} payload bytes were given")]
    /// Payload given for an opcode that carries none.
    PayloadNotAllowed {
        /// The BTH opcode.
        opcode: u8,
        /// The opcode's name.
        name: &'static str,
        /// Payload bytes given.
        len: usize,
    },
    #[error("{field} = {value:#x} does not fit in 24 bits")]
    /// A 24-bit field holds a larger value.
    FieldOutOfRange {
        /// The field.
        field: &'static str,
        /// The value given.
        value: u32,
    },
    #[error("packet needs {len} bytes of IPv4 datagram, more than the 65535 IPv4 allows; split the message into smaller packets")]
    /// The packet does not fit an IPv4 datagram.
    TooLong {
        /// Bytes the IPv4 datagram would need.
        len: usize,
    },
}

/// Why [`decode`] rejected a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("frame truncated: {what} needs {need} bytes, {have} available")]
    /// The frame ends inside a header or the ICRC.
    Truncated {
        /// The part that is cut short.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    #[error("ethertype {0:#06x} is not IPv4 (0x0800) or IPv6 (0x86DD): not a RoCEv2 frame")]
    /// The ethertype (given) is neither IPv4 nor IPv6.
    NotIpv4(u16),
    #[error("IP version {0} does not match the ethertype")]
    /// The IP version field (given) is not the ethertype's (4 or 6).
    BadIpVersion(u8),
    #[error("IPv4 header length {0} bytes: IPv4 options are not supported")]
    /// The IPv4 header (length given) carries options.
    IpOptions(usize),
    #[error("IP length {total} is inconsistent with the {available} bytes received")]
    /// The IPv4 total length (IPv6: header plus payload length) disagrees with the frame.
    BadIpLength {
        /// IPv4 total length field.
        total: usize,
        /// Bytes after the Ethernet header.
        available: usize,
    },
    #[error("IPv4 header checksum is wrong")]
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    #[error("IPv4 fragment (flags/offset {0:#06x}): RoCEv2 packets are never fragmented")]
    /// The datagram is a fragment (flags and offset given).
    Fragmented(u16),
    #[error("IP protocol / IPv6 next header {0} is not UDP (17): not a RoCEv2 frame")]
    /// The IP protocol or IPv6 next header (given) is not UDP (IPv6 extension
    /// headers are not supported).
    NotUdp(u8),
    #[error("UDP destination port {0} is not 4791: not a RoCEv2 frame")]
    /// The UDP destination port (given) is not 4791.
    NotRoce(u16),
    #[error("UDP length {udp} does not match the IPv4 payload length {ip}")]
    /// The UDP length disagrees with the IPv4 payload.
    BadUdpLength {
        /// UDP length field.
        udp: usize,
        /// IPv4 payload length.
        ip: usize,
    },
    #[error("UDP checksum is wrong")]
    /// A non-zero UDP checksum that does not verify.
    BadUdpChecksum,
    #[error("ICRC mismatch: frame carries {found:#010x}, contents give {computed:#010x} (corrupted on the wire)")]
    /// The ICRC does not match the frame.
    BadIcrc {
        /// ICRC carried by the frame.
        found: u32,
        /// ICRC computed over the frame.
        computed: u32,
    },
    #[error("BTH transport version {0} is not 0")]
    /// The BTH transport version (given) is not 0.
    UnsupportedTver(u8),
    #[error("BTH opcode {0:#04x} is not a supported RC opcode")]
    /// The BTH opcode (given) is not a supported RC opcode.
    UnsupportedOpcode(u8),
    #[error("opcode {opcode:#04x} carries no payload but {len} bytes follow its headers")]
    /// Bytes follow the headers of an opcode that carries no payload.
    PayloadNotAllowed {
        /// The BTH opcode.
        opcode: u8,
        /// Bytes after the headers.
        len: usize,
    },
    #[error(
        "pad count {pad} with {len} bytes after the headers: packet length is not a multiple of 4"
    )]
    /// The pad count does not make the payload length a multiple of 4.
    BadPadding {
        /// BTH pad count.
        pad: u8,
        /// Bytes after the headers.
        len: usize,
    },
}

impl DecodeError {
    /// True if the frame is simply not RoCEv2 (another ethertype, IP protocol or
    /// UDP port, IPv4 options or fragments): hand it to the Ethernet path. False
    /// if it is a damaged or invalid RoCEv2 frame (or too short to tell): drop it
    /// and count it.
    pub fn is_not_roce(&self) -> bool {
        matches!(
            self,
            DecodeError::NotIpv4(_)
                | DecodeError::BadIpVersion(_)
                | DecodeError::IpOptions(_)
                | DecodeError::Fragmented(_)
                | DecodeError::NotUdp(_)
                | DecodeError::NotRoce(_)
        )
    }
}

/// The InfiniBand GID of an IPv4 address (`::ffff:a.b.c.d`, IPv4-mapped IPv6).
pub const fn gid_from_ipv4(ip: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, ip[0], ip[1], ip[2], ip[3],
    ]
}

/// The IPv4 address inside an IPv4-mapped GID, or `None` for other GIDs.
pub fn ipv4_from_gid(gid: &[u8; 16]) -> Option<[u8; 4]> {
    if gid[..10].iter().all(|&b| b == 0) && gid[10] == 0xFF && gid[11] == 0xFF {
        Some([gid[12], gid[13], gid[14], gid[15]])
    } else {
        None
    }
}

/// Ones-complement sum of big-endian 16-bit words (odd trailing byte padded with 0).
fn ones_sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(ones_sum(0, bytes))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn check_headers(p: &RocePacket, info: &OpcodeInfo, payload_len: usize) -> Result<(), EncodeError> {
    let checks = [
        ("DETH", info.deth, p.deth.is_some()),
        ("RETH", info.reth, p.reth.is_some()),
        ("AETH", info.aeth, p.aeth.is_some()),
        ("AtomicETH", info.atomic_eth, p.atomic_eth.is_some()),
        ("AtomicAckETH", info.atomic_ack_eth, p.atomic_ack.is_some()),
        ("ImmDt", info.imm, p.imm.is_some()),
        ("IETH", info.ieth, p.ieth.is_some()),
    ];
    for (header, required, present) in checks {
        if required != present {
            return Err(EncodeError::HeaderMismatch {
                opcode: p.bth.opcode,
                name: info.name,
                header,
                required,
            });
        }
    }
    if !info.payload && payload_len != 0 {
        return Err(EncodeError::PayloadNotAllowed {
            opcode: p.bth.opcode,
            name: info.name,
            len: payload_len,
        });
    }
    for (field, value) in [
        ("BTH dest_qp", p.bth.dest_qp),
        ("BTH psn", p.bth.psn),
        ("AETH msn", p.aeth.map_or(0, |a| a.msn)),
        ("DETH src_qp", p.deth.map_or(0, |d| d.src_qp)),
    ] {
        if value > PSN_MASK {
            return Err(EncodeError::FieldOutOfRange { field, value });
        }
    }
    Ok(())
}

/// Number of pad bytes that bring `payload_len` to a multiple of 4.
pub const fn pad_len(payload_len: usize) -> usize {
    (4 - payload_len % 4) % 4
}

/// Builds the Ethernet frame (without FCS) carrying `p`.
///
/// Derived fields: IPv4 version/IHL, total length, DF flag, protocol, header
/// checksum; UDP destination port 4791, length, checksum 0; BTH pad count and
/// transport version 0; pad bytes (zero); ICRC. Frames shorter than 60 bytes are
/// zero-padded after the ICRC to the Ethernet minimum.
pub fn encode(p: &RocePacket) -> Result<Vec<u8>, EncodeError> {
    let filled = encode_with(p, p.payload.len(), |b| {
        b.copy_from_slice(&p.payload);
        Ok::<(), std::convert::Infallible>(())
    })?;
    Ok(filled.unwrap_or_else(|never| match never {}))
}

/// [`encode`] with the payload written by `fill` straight into the frame: `fill`
/// gets the frame's `payload_len` payload bytes to fill (the packet's own
/// `payload` is ignored), and the pad and ICRC are computed over the frame after
/// it. The inner `Err` is `fill`'s (no frame then); the outer one, [`encode`]'s.
pub fn encode_with<E>(
    p: &RocePacket,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<Result<Vec<u8>, E>, EncodeError> {
    let info = opcode::info(p.bth.opcode).ok_or(EncodeError::UnsupportedOpcode(p.bth.opcode))?;
    check_headers(p, &info, payload_len)?;
    let pad = pad_len(payload_len);
    let udp_len = UDP_HEADER_LEN + BTH_LEN + info.ext_len() + payload_len + pad + ICRC_LEN;
    let ip_header = if p.ip6.is_some() {
        IPV6_HEADER_LEN
    } else {
        IPV4_HEADER_LEN
    };
    // IPv4 counts its header in the total length; IPv6 counts only its payload.
    let length_field = if p.ip6.is_some() {
        udp_len
    } else {
        IPV4_HEADER_LEN + udp_len
    };
    if length_field > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong { len: length_field });
    }
    let ip_len = ip_header + udp_len;
    let mut f = Vec::with_capacity((ETH_HEADER_LEN + ip_len).max(MIN_ETH_FRAME_LEN));

    // Ethernet II.
    f.extend_from_slice(&p.eth.dst);
    f.extend_from_slice(&p.eth.src);
    let ip_start = ETH_HEADER_LEN;
    if let Some(v6) = &p.ip6 {
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let word = 6u32 << 28 | u32::from(v6.traffic_class) << 20 | (v6.flow_label & 0xF_FFFF);
        f.extend_from_slice(&word.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.push(IPPROTO_UDP);
        f.push(v6.hop_limit);
        f.extend_from_slice(&v6.src);
        f.extend_from_slice(&v6.dst);
    } else {
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f.push(0x45);
        f.push(p.ip.dscp_ecn);
        f.extend_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&p.ip.id.to_be_bytes());
        f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
        f.push(p.ip.ttl);
        f.push(IPPROTO_UDP);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&p.ip.src);
        f.extend_from_slice(&p.ip.dst);
        let csum = internet_checksum(&f[ip_start..ip_start + IPV4_HEADER_LEN]);
        f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    }

    // UDP.
    f.extend_from_slice(&p.udp_src_port.to_be_bytes());
    f.extend_from_slice(&ROCE_UDP_PORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);

    // BTH.
    let b = &p.bth;
    f.push(b.opcode);
    f.push(u8::from(b.solicited) << 7 | u8::from(b.mig_req) << 6 | (pad as u8) << 4);
    f.extend_from_slice(&b.pkey.to_be_bytes());
    f.push(u8::from(b.fecn) << 7 | u8::from(b.becn) << 6);
    f.extend_from_slice(&b.dest_qp.to_be_bytes()[1..]);
    f.push(u8::from(b.ack_req) << 7);
    f.extend_from_slice(&b.psn.to_be_bytes()[1..]);

    // Extension headers, in the order the specification fixes.
    if let Some(d) = &p.deth {
        f.extend_from_slice(&d.qkey.to_be_bytes());
        f.extend_from_slice(&d.src_qp.to_be_bytes());
    }
    if let Some(r) = &p.reth {
        f.extend_from_slice(&r.va.to_be_bytes());
        f.extend_from_slice(&r.rkey.to_be_bytes());
        f.extend_from_slice(&r.dma_len.to_be_bytes());
    }
    if let Some(a) = &p.aeth {
        f.push(a.syndrome);
        f.extend_from_slice(&a.msn.to_be_bytes()[1..]);
    }
    if let Some(a) = &p.atomic_eth {
        f.extend_from_slice(&a.va.to_be_bytes());
        f.extend_from_slice(&a.rkey.to_be_bytes());
        f.extend_from_slice(&a.swap_add.to_be_bytes());
        f.extend_from_slice(&a.compare.to_be_bytes());
    }
    if let Some(orig) = p.atomic_ack {
        f.extend_from_slice(&orig.to_be_bytes());
    }
    if let Some(imm) = p.imm {
        f.extend_from_slice(&imm.to_be_bytes());
    }
    if let Some(rkey) = p.ieth {
        f.extend_from_slice(&rkey.to_be_bytes());
    }

    let at = f.len();
    f.resize(at + payload_len, 0);
    if let Err(e) = fill(&mut f[at..]) {
        return Ok(Err(e));
    }
    f.extend_from_slice(&[0u8; 3][..pad]);
    // The headers written above make the IP part at least IP + UDP + BTH long.
    let crc = if p.ip6.is_some() {
        icrc::icrc6(&f[ip_start..])
    } else {
        icrc::icrc(&f[ip_start..])
    };
    f.extend_from_slice(&crc.unwrap_or_default().to_le_bytes());
    if let Some(v6) = &p.ip6 {
        // The ICRC masks the UDP checksum, so it may be filled in last.
        let udp_at = ip_start + IPV6_HEADER_LEN;
        let sum = !fold(ones_sum(udp6_pseudo_sum(v6, udp_len), &f[udp_at..]));
        let sum = if sum == 0 { 0xFFFF } else { sum };
        f[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
    }
    if f.len() < MIN_ETH_FRAME_LEN {
        f.resize(MIN_ETH_FRAME_LEN, 0);
    }
    Ok(Ok(f))
}

fn need(what: &'static str, need: usize, have: usize) -> Result<(), DecodeError> {
    if have < need {
        Err(DecodeError::Truncated { what, need, have })
    } else {
        Ok(())
    }
}

/// The ones-complement sum of the IPv6 pseudo-header of a UDP datagram.
fn udp6_pseudo_sum(v6: &Ipv6Info, udp_len: usize) -> u32 {
    let mut acc = ones_sum(0, &v6.src);
    acc = ones_sum(acc, &v6.dst);
    acc + (udp_len as u32 >> 16) + (udp_len as u32 & 0xFFFF) + u32::from(IPPROTO_UDP)
}

/// Where the IP datagram of a RoCEv2 frame lies, after the Ethernet, IP and UDP
/// checks (no ICRC check): its start and end in the frame and the IP header length
/// (20 for IPv4, 40 for IPv6).
struct Located {
    start: usize,
    end: usize,
    ip_header: usize,
}

/// [`Located`] for an IPv6 frame.
fn locate6(frame: &[u8]) -> Result<Located, DecodeError> {
    let ip = &frame[ETH_HEADER_LEN..];
    need("IPv6 header", IPV6_HEADER_LEN, ip.len())?;
    let version = ip[0] >> 4;
    if version != 6 {
        return Err(DecodeError::BadIpVersion(version));
    }
    let payload = usize::from(be16(ip, 4));
    if payload < UDP_HEADER_LEN || IPV6_HEADER_LEN + payload > ip.len() {
        return Err(DecodeError::BadIpLength {
            total: IPV6_HEADER_LEN + payload,
            available: ip.len(),
        });
    }
    if ip[6] != IPPROTO_UDP {
        return Err(DecodeError::NotUdp(ip[6]));
    }
    let udp = &ip[IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload];
    let dport = be16(udp, 2);
    if dport != ROCE_UDP_PORT {
        return Err(DecodeError::NotRoce(dport));
    }
    let udp_len = usize::from(be16(udp, 4));
    if udp_len != udp.len() {
        return Err(DecodeError::BadUdpLength {
            udp: udp_len,
            ip: udp.len(),
        });
    }
    if be16(udp, 6) != 0 {
        let v6 = Ipv6Info {
            src: ip[8..24].try_into().unwrap_or_default(),
            dst: ip[24..40].try_into().unwrap_or_default(),
            ..Ipv6Info::default()
        };
        if fold(ones_sum(udp6_pseudo_sum(&v6, udp_len), udp)) != 0xFFFF {
            return Err(DecodeError::BadUdpChecksum);
        }
    }
    Ok(Located {
        start: ETH_HEADER_LEN,
        end: ETH_HEADER_LEN + IPV6_HEADER_LEN + payload,
        ip_header: IPV6_HEADER_LEN,
    })
}

fn locate(frame: &[u8]) -> Result<Located, DecodeError> {
    need("Ethernet header", ETH_HEADER_LEN, frame.len())?;
    let ethertype = be16(frame, 12);
    if ethertype == ETHERTYPE_IPV6 {
        return locate6(frame);
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Err(DecodeError::NotIpv4(ethertype));
    }
    let ip = &frame[ETH_HEADER_LEN..];
    need("IPv4 header", IPV4_HEADER_LEN, ip.len())?;
    let version = ip[0] >> 4;
    if version != 4 {
        return Err(DecodeError::BadIpVersion(version));
    }
    let ihl = usize::from(ip[0] & 0x0F) * 4;
    if ihl != IPV4_HEADER_LEN {
        return Err(DecodeError::IpOptions(ihl));
    }
    let total = usize::from(be16(ip, 2));
    if total < IPV4_HEADER_LEN + UDP_HEADER_LEN || total > ip.len() {
        return Err(DecodeError::BadIpLength {
            total,
            available: ip.len(),
        });
    }
    if fold(ones_sum(0, &ip[..IPV4_HEADER_LEN])) != 0xFFFF {
        return Err(DecodeError::BadIpChecksum);
    }
    let frag = be16(ip, 6);
    if frag & 0x3FFF != 0 {
        return Err(DecodeError::Fragmented(frag));
    }
    if ip[9] != IPPROTO_UDP {
        return Err(DecodeError::NotUdp(ip[9]));
    }
    let udp = &ip[IPV4_HEADER_LEN..total];
    let dport = be16(udp, 2);
    if dport != ROCE_UDP_PORT {
        return Err(DecodeError::NotRoce(dport));
    }
    let udp_len = usize::from(be16(udp, 4));
    if udp_len != udp.len() {
        return Err(DecodeError::BadUdpLength {
            udp: udp_len,
            ip: udp.len(),
        });
    }
    if be16(udp, 6) != 0 {
        let mut acc = ones_sum(0, &ip[12..20]);
        acc += u32::from(IPPROTO_UDP) + udp_len as u32;
        acc = ones_sum(acc, udp);
        if fold(acc) != 0xFFFF {
            return Err(DecodeError::BadUdpChecksum);
        }
    }
    Ok(Located {
        start: ETH_HEADER_LEN,
        end: ETH_HEADER_LEN + total,
        ip_header: IPV4_HEADER_LEN,
    })
}

fn decode_bth(b: &[u8]) -> (Bth, u8, u8) {
    let bth = Bth {
        opcode: b[0],
        solicited: b[1] & 0x80 != 0,
        mig_req: b[1] & 0x40 != 0,
        pkey: be16(b, 2),
        fecn: b[4] & 0x80 != 0,
        becn: b[4] & 0x40 != 0,
        dest_qp: be24(b, 5),
        ack_req: b[8] & 0x80 != 0,
        psn: be24(b, 9),
    };
    (bth, (b[1] >> 4) & 3, b[1] & 0x0F)
}

/// The byte range of a RoCEv2 frame that the ICRC protects end to end: from the
/// first BTH byte to the last ICRC byte (Ethernet padding excluded). `None` if the
/// frame does not look like RoCEv2 (checks as in [`peek_bth`]). Note that BTH byte
/// 4 (FECN/BECN) inside this range is not covered.
pub fn transport_range(frame: &[u8]) -> Option<std::ops::Range<usize>> {
    let l = locate(frame).ok()?;
    let bth_at = l.start + l.ip_header + UDP_HEADER_LEN;
    if l.end < bth_at + BTH_LEN + ICRC_LEN {
        return None;
    }
    Some(bth_at..l.end)
}

/// Reads the BTH of a frame that looks like RoCEv2 (Ethernet/IPv4/UDP 4791 with
/// consistent lengths) without checking the ICRC or the opcode. Meant for cheap
/// classification (fault scopes, statistics); use [`decode`] before trusting it.
pub fn peek_bth(frame: &[u8]) -> Option<Bth> {
    let range = transport_range(frame)?;
    let bth_at = range.start;
    Some(decode_bth(&frame[bth_at..bth_at + BTH_LEN]).0)
}

/// Parses and validates a received Ethernet frame (without FCS; bytes after the
/// IPv4 datagram, such as Ethernet minimum-size padding, are ignored).
///
/// Checks, in order: Ethernet type, IPv4 version/IHL/length/checksum/fragmentation,
/// protocol, UDP port/length/checksum (when non-zero), ICRC, BTH transport version,
/// opcode, extension header lengths, pad. Never panics.
pub fn decode(frame: &[u8]) -> Result<RocePacket, DecodeError> {
    let (mut p, payload) = decode_in_place(frame)?;
    p.payload = frame[payload].to_vec();
    Ok(p)
}

/// [`decode`] without copying the payload: the packet's `payload` is left empty
/// and its place in `frame` (pad and ICRC excluded) is returned with it, after the
/// same checks (the ICRC over the whole frame included), so the payload can be
/// placed straight from the frame.
pub fn decode_in_place(frame: &[u8]) -> Result<(RocePacket, std::ops::Range<usize>), DecodeError> {
    let Located {
        start,
        end,
        ip_header,
    } = locate(frame)?;
    let ipd = &frame[start..end];
    need(
        "BTH and ICRC",
        ip_header + UDP_HEADER_LEN + BTH_LEN + ICRC_LEN,
        ipd.len(),
    )?;
    let icrc_at = ipd.len() - ICRC_LEN;
    let found = u32::from_le_bytes([
        ipd[icrc_at],
        ipd[icrc_at + 1],
        ipd[icrc_at + 2],
        ipd[icrc_at + 3],
    ]);
    let computed = if ip_header == IPV6_HEADER_LEN {
        icrc::icrc6(&ipd[..icrc_at])
    } else {
        icrc::icrc(&ipd[..icrc_at])
    };
    let computed = computed.ok_or(DecodeError::Truncated {
        what: "BTH",
        need: ip_header + UDP_HEADER_LEN + BTH_LEN,
        have: icrc_at,
    })?;
    if found != computed {
        return Err(DecodeError::BadIcrc { found, computed });
    }

    let eth = EthHeader {
        dst: frame[0..6].try_into().unwrap_or_default(),
        src: frame[6..12].try_into().unwrap_or_default(),
    };
    let (ip, ip6) = if ip_header == IPV6_HEADER_LEN {
        let word = be32(ipd, 0);
        let v6 = Ipv6Info {
            src: ipd[8..24].try_into().unwrap_or_default(),
            dst: ipd[24..40].try_into().unwrap_or_default(),
            hop_limit: ipd[7],
            traffic_class: (word >> 20) as u8,
            flow_label: word & 0xF_FFFF,
        };
        (Ipv4Info::default(), Some(v6))
    } else {
        let v4 = Ipv4Info {
            src: ipd[12..16].try_into().unwrap_or_default(),
            dst: ipd[16..20].try_into().unwrap_or_default(),
            ttl: ipd[8],
            dscp_ecn: ipd[1],
            id: be16(ipd, 4),
        };
        (v4, None)
    };
    let udp_src_port = be16(ipd, ip_header);
    let bth_at = ip_header + UDP_HEADER_LEN;
    let (bth, pad, tver) = decode_bth(&ipd[bth_at..bth_at + BTH_LEN]);
    if tver != 0 {
        return Err(DecodeError::UnsupportedTver(tver));
    }
    let info = opcode::info(bth.opcode).ok_or(DecodeError::UnsupportedOpcode(bth.opcode))?;
    let mut at = bth_at + BTH_LEN;
    need("extension headers", at + info.ext_len(), icrc_at)?;

    let mut p = RocePacket {
        eth,
        ip,
        ip6,
        udp_src_port,
        bth,
        ..RocePacket::default()
    };
    if info.deth {
        p.deth = Some(Deth {
            qkey: be32(ipd, at),
            src_qp: be24(ipd, at + 5),
        });
        at += DETH_LEN;
    }
    if info.reth {
        p.reth = Some(Reth {
            va: be64(ipd, at),
            rkey: be32(ipd, at + 8),
            dma_len: be32(ipd, at + 12),
        });
        at += RETH_LEN;
    }
    if info.aeth {
        p.aeth = Some(Aeth {
            syndrome: ipd[at],
            msn: be24(ipd, at + 1),
        });
        at += AETH_LEN;
    }
    if info.atomic_eth {
        p.atomic_eth = Some(AtomicEth {
            va: be64(ipd, at),
            rkey: be32(ipd, at + 8),
            swap_add: be64(ipd, at + 12),
            compare: be64(ipd, at + 20),
        });
        at += ATOMIC_ETH_LEN;
    }
    if info.atomic_ack_eth {
        p.atomic_ack = Some(be64(ipd, at));
        at += ATOMIC_ACK_ETH_LEN;
    }
    if info.imm {
        p.imm = Some(be32(ipd, at));
        at += IMM_LEN;
    }
    if info.ieth {
        p.ieth = Some(be32(ipd, at));
        at += IETH_LEN;
    }

    let rest = icrc_at - at;
    if !info.payload && rest != 0 {
        return Err(DecodeError::PayloadNotAllowed {
            opcode: bth.opcode,
            len: rest,
        });
    }
    if rest & 3 != 0 || usize::from(pad) > rest {
        return Err(DecodeError::BadPadding { pad, len: rest });
    }
    Ok((p, start + at..start + icrc_at - usize::from(pad)))
}
