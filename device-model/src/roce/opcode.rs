//! Reliable Connected (RC) BTH opcodes and the extension headers each one carries.
//!
//! The table follows the InfiniBand Architecture Specification, volume 1, section
//! 9.2 ("base transport header", RC opcode table): the top three bits of the opcode
//! select the transport (`000` = RC), the low five bits the operation. Headers
//! always appear in this order after the BTH: RETH, AETH, AtomicETH, AtomicAckETH,
//! ImmDt or IETH, then the payload.

/// SEND First: payload.
pub const SEND_FIRST: u8 = 0x00;
/// SEND Middle: payload.
pub const SEND_MIDDLE: u8 = 0x01;
/// SEND Last: payload.
pub const SEND_LAST: u8 = 0x02;
/// SEND Last with Immediate: ImmDt, payload.
pub const SEND_LAST_WITH_IMMEDIATE: u8 = 0x03;
/// SEND Only: payload.
pub const SEND_ONLY: u8 = 0x04;
/// SEND Only with Immediate: ImmDt, payload.
pub const SEND_ONLY_WITH_IMMEDIATE: u8 = 0x05;
/// RDMA WRITE First: RETH, payload.
pub const RDMA_WRITE_FIRST: u8 = 0x06;
/// RDMA WRITE Middle: payload.
pub const RDMA_WRITE_MIDDLE: u8 = 0x07;
/// RDMA WRITE Last: payload.
pub const RDMA_WRITE_LAST: u8 = 0x08;
/// RDMA WRITE Last with Immediate: ImmDt, payload.
pub const RDMA_WRITE_LAST_WITH_IMMEDIATE: u8 = 0x09;
/// RDMA WRITE Only: RETH, payload.
pub const RDMA_WRITE_ONLY: u8 = 0x0A;
/// RDMA WRITE Only with Immediate: RETH, ImmDt, payload.
pub const RDMA_WRITE_ONLY_WITH_IMMEDIATE: u8 = 0x0B;
/// RDMA READ Request: RETH, no payload.
pub const RDMA_READ_REQUEST: u8 = 0x0C;
/// RDMA READ response First: AETH, payload.
pub const RDMA_READ_RESPONSE_FIRST: u8 = 0x0D;
/// RDMA READ response Middle: payload.
pub const RDMA_READ_RESPONSE_MIDDLE: u8 = 0x0E;
/// RDMA READ response Last: AETH, payload.
pub const RDMA_READ_RESPONSE_LAST: u8 = 0x0F;
/// RDMA READ response Only: AETH, payload.
pub const RDMA_READ_RESPONSE_ONLY: u8 = 0x10;
/// Acknowledge: AETH, no payload.
pub const ACKNOWLEDGE: u8 = 0x11;
/// ATOMIC Acknowledge: AETH, AtomicAckETH, no payload.
pub const ATOMIC_ACKNOWLEDGE: u8 = 0x12;
/// CmpSwap: AtomicETH, no payload.
pub const COMPARE_SWAP: u8 = 0x13;
/// FetchAdd: AtomicETH, no payload.
pub const FETCH_ADD: u8 = 0x14;
/// SEND Last with Invalidate: IETH, payload.
pub const SEND_LAST_WITH_INVALIDATE: u8 = 0x16;
/// SEND Only with Invalidate: IETH, payload.
pub const SEND_ONLY_WITH_INVALIDATE: u8 = 0x17;
/// UD SEND Only (transport `011`): DETH, payload. The only non-RC opcode the codec
/// handles: the connection manager's datagrams to QP1 (`docs/device-spec.md` §11.6).
pub const UD_SEND_ONLY: u8 = rnic_contract::mad::UD_SEND_ONLY;

/// Every RC opcode this codec understands, in numeric order.
pub const ALL_RC: [u8; 23] = [
    SEND_FIRST,
    SEND_MIDDLE,
    SEND_LAST,
    SEND_LAST_WITH_IMMEDIATE,
    SEND_ONLY,
    SEND_ONLY_WITH_IMMEDIATE,
    RDMA_WRITE_FIRST,
    RDMA_WRITE_MIDDLE,
    RDMA_WRITE_LAST,
    RDMA_WRITE_LAST_WITH_IMMEDIATE,
    RDMA_WRITE_ONLY,
    RDMA_WRITE_ONLY_WITH_IMMEDIATE,
    RDMA_READ_REQUEST,
    RDMA_READ_RESPONSE_FIRST,
    RDMA_READ_RESPONSE_MIDDLE,
    RDMA_READ_RESPONSE_LAST,
    RDMA_READ_RESPONSE_ONLY,
    ACKNOWLEDGE,
    ATOMIC_ACKNOWLEDGE,
    COMPARE_SWAP,
    FETCH_ADD,
    SEND_LAST_WITH_INVALIDATE,
    SEND_ONLY_WITH_INVALIDATE,
];

/// Which headers (beyond the BTH) an opcode carries, and whether it has a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpcodeInfo {
    /// The name used by the InfiniBand specification (and by Wireshark).
    pub name: &'static str,
    /// RDMA Extended Transport Header, 16 bytes.
    pub reth: bool,
    /// ACK Extended Transport Header, 4 bytes.
    pub aeth: bool,
    /// Atomic Extended Transport Header, 28 bytes.
    pub atomic_eth: bool,
    /// Atomic Acknowledge Extended Transport Header, 8 bytes.
    pub atomic_ack_eth: bool,
    /// Immediate data, 4 bytes.
    pub imm: bool,
    /// Invalidate Extended Transport Header, 4 bytes.
    pub ieth: bool,
    /// Datagram Extended Transport Header, 8 bytes (UD; first after the BTH).
    pub deth: bool,
    /// Whether the packet may carry a payload (zero-length payloads are allowed).
    pub payload: bool,
}

impl OpcodeInfo {
    /// Length of the extension headers (everything between BTH and payload).
    pub const fn ext_len(&self) -> usize {
        (if self.reth { super::RETH_LEN } else { 0 })
            + (if self.aeth { super::AETH_LEN } else { 0 })
            + (if self.atomic_eth {
                super::ATOMIC_ETH_LEN
            } else {
                0
            })
            + (if self.atomic_ack_eth {
                super::ATOMIC_ACK_ETH_LEN
            } else {
                0
            })
            + (if self.imm { super::IMM_LEN } else { 0 })
            + (if self.ieth { super::IETH_LEN } else { 0 })
            + (if self.deth { super::DETH_LEN } else { 0 })
    }
}

const fn op(name: &'static str, payload: bool) -> OpcodeInfo {
    OpcodeInfo {
        name,
        reth: false,
        aeth: false,
        atomic_eth: false,
        atomic_ack_eth: false,
        imm: false,
        ieth: false,
        deth: false,
        payload,
    }
}

/// The header layout of an RC opcode or of UD SEND Only, or `None` for opcodes this
/// codec does not handle (other transports and operations, reserved values).
pub const fn info(opcode: u8) -> Option<OpcodeInfo> {
    let i = match opcode {
        SEND_FIRST => op("SEND First", true),
        SEND_MIDDLE => op("SEND Middle", true),
        SEND_LAST => op("SEND Last", true),
        SEND_LAST_WITH_IMMEDIATE => OpcodeInfo {
            imm: true,
            ..op("SEND Last with Immediate", true)
        },
        SEND_ONLY => op("SEND Only", true),
        SEND_ONLY_WITH_IMMEDIATE => OpcodeInfo {
            imm: true,
            ..op("SEND Only with Immediate", true)
        },
        RDMA_WRITE_FIRST => OpcodeInfo {
            reth: true,
            ..op("RDMA WRITE First", true)
        },
        RDMA_WRITE_MIDDLE => op("RDMA WRITE Middle", true),
        RDMA_WRITE_LAST => op("RDMA WRITE Last", true),
        RDMA_WRITE_LAST_WITH_IMMEDIATE => OpcodeInfo {
            imm: true,
            ..op("RDMA WRITE Last with Immediate", true)
        },
        RDMA_WRITE_ONLY => OpcodeInfo {
            reth: true,
            ..op("RDMA WRITE Only", true)
        },
        RDMA_WRITE_ONLY_WITH_IMMEDIATE => OpcodeInfo {
            reth: true,
            imm: true,
            ..op("RDMA WRITE Only with Immediate", true)
        },
        RDMA_READ_REQUEST => OpcodeInfo {
            reth: true,
            ..op("RDMA READ Request", false)
        },
        RDMA_READ_RESPONSE_FIRST => OpcodeInfo {
            aeth: true,
            ..op("RDMA READ response First", true)
        },
        RDMA_READ_RESPONSE_MIDDLE => op("RDMA READ response Middle", true),
        RDMA_READ_RESPONSE_LAST => OpcodeInfo {
            aeth: true,
            ..op("RDMA READ response Last", true)
        },
        RDMA_READ_RESPONSE_ONLY => OpcodeInfo {
            aeth: true,
            ..op("RDMA READ response Only", true)
        },
        ACKNOWLEDGE => OpcodeInfo {
            aeth: true,
            ..op("Acknowledge", false)
        },
        ATOMIC_ACKNOWLEDGE => OpcodeInfo {
            aeth: true,
            atomic_ack_eth: true,
            ..op("ATOMIC Acknowledge", false)
        },
        COMPARE_SWAP => OpcodeInfo {
            atomic_eth: true,
            ..op("CmpSwap", false)
        },
        FETCH_ADD => OpcodeInfo {
            atomic_eth: true,
            ..op("FetchAdd", false)
        },
        SEND_LAST_WITH_INVALIDATE => OpcodeInfo {
            ieth: true,
            ..op("SEND Last with Invalidate", true)
        },
        SEND_ONLY_WITH_INVALIDATE => OpcodeInfo {
            ieth: true,
            ..op("SEND Only with Invalidate", true)
        },
        UD_SEND_ONLY => OpcodeInfo {
            deth: true,
            ..op("UD SEND Only", true)
        },
        _ => return None,
    };
    Some(i)
}

/// True for requests the responder acknowledges (everything a requester sends).
pub const fn is_request(opcode: u8) -> bool {
    matches!(
        opcode,
        SEND_FIRST
            ..=RDMA_READ_REQUEST
                | COMPARE_SWAP
                | FETCH_ADD
                | SEND_LAST_WITH_INVALIDATE
                | SEND_ONLY_WITH_INVALIDATE
    )
}

/// True for responses (read responses and acknowledges).
pub const fn is_response(opcode: u8) -> bool {
    matches!(opcode, RDMA_READ_RESPONSE_FIRST..=ATOMIC_ACKNOWLEDGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_opcode_has_info_and_others_do_not() {
        for op in 0u8..=255 {
            let known = ALL_RC.contains(&op) || op == UD_SEND_ONLY;
            assert_eq!(info(op).is_some(), known, "opcode {op:#x}");
        }
    }

    #[test]
    fn requests_and_responses_partition_the_table() {
        for op in ALL_RC {
            assert!(is_request(op) ^ is_response(op), "opcode {op:#x}");
        }
    }

    #[test]
    fn extension_lengths_match_the_spec() {
        assert_eq!(info(RDMA_WRITE_ONLY_WITH_IMMEDIATE).unwrap().ext_len(), 20);
        assert_eq!(info(ACKNOWLEDGE).unwrap().ext_len(), 4);
        assert_eq!(info(ATOMIC_ACKNOWLEDGE).unwrap().ext_len(), 12);
        assert_eq!(info(COMPARE_SWAP).unwrap().ext_len(), 28);
        assert_eq!(info(SEND_MIDDLE).unwrap().ext_len(), 0);
        assert_eq!(info(SEND_ONLY_WITH_INVALIDATE).unwrap().ext_len(), 4);
        assert_eq!(UD_SEND_ONLY, 0x64);
        assert_eq!(info(UD_SEND_ONLY).unwrap().ext_len(), 8);
    }
}
