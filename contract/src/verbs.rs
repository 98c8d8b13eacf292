//! Verbs attributes shared by commands, WQEs and records (`docs/device-spec.md`
//! §3.9, §6.2, §7.1, §7.2, §10.6, §15): MR access flags, QP states, `MODIFY_QP`
//! attribute mask bits, path MTU codes and the RNR timer table.

/// Memory region access flags (§6.2; also the QP access attribute, which uses only
/// the two remote bits). Values match NDK's `NDK_MR_FLAG_*`.
pub mod access {
    /// The device may write the region on behalf of local work (receive, READ sink).
    pub const LOCAL_WRITE: u32 = 1;
    /// Remote peers may RDMA READ the region.
    pub const REMOTE_READ: u32 = 2;
    /// Remote peers may RDMA WRITE the region (requires `LOCAL_WRITE`).
    pub const REMOTE_WRITE: u32 = 4;
    /// The region may be the destination of an RDMA READ.
    pub const RDMA_READ_SINK: u32 = 8;
    /// Every defined bit.
    pub const ALL: u32 = LOCAL_WRITE | REMOTE_READ | REMOTE_WRITE | RDMA_READ_SINK;
}

/// The lowest QPN of an ordinary QP (§3.12): QPNs 0 and 1 are reserved in InfiniBand
/// and RoCE (QP0 and QP1 carry management datagrams), so the device never hands them
/// out; `max QPs` QPs are numbered `FIRST_QPN..FIRST_QPN + max QPs`.
pub const FIRST_QPN: u32 = 2;

/// QP states (§7.1): `MODIFY_QP` byte 8, `QUERY_QP` r0 and record byte 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum QpState {
    /// Created, not yet initialised.
    Reset = 0,
    /// Initialised: receives may be posted.
    Init = 1,
    /// Ready to receive.
    Rtr = 2,
    /// Ready to send.
    Rts = 3,
    /// Send queue drain.
    Sqd = 4,
    /// Send queue error.
    Sqe = 5,
    /// Error: every WQE is flushed.
    Err = 6,
}

impl QpState {
    /// The state with this code, `None` above 6.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => QpState::Reset,
            1 => QpState::Init,
            2 => QpState::Rtr,
            3 => QpState::Rts,
            4 => QpState::Sqd,
            5 => QpState::Sqe,
            6 => QpState::Err,
            _ => return None,
        })
    }

    /// The state's code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The state's lower-case name, as the spec and host reports spell it.
    pub const fn name(self) -> &'static str {
        match self {
            QpState::Reset => "reset",
            QpState::Init => "init",
            QpState::Rtr => "rtr",
            QpState::Rts => "rts",
            QpState::Sqd => "sqd",
            QpState::Sqe => "sqe",
            QpState::Err => "err",
        }
    }
}

/// `MODIFY_QP` attribute mask bits (§3.12).
pub mod qp_attr {
    /// New state (byte 8).
    pub const STATE: u32 = 1 << 0;
    /// Path MTU code (byte 9).
    pub const PATH_MTU: u32 = 1 << 1;
    /// Retry count (byte 10).
    pub const RETRY_CNT: u32 = 1 << 2;
    /// RNR retry count (byte 11).
    pub const RNR_RETRY: u32 = 1 << 3;
    /// ACK timeout exponent (byte 12).
    pub const TIMEOUT: u32 = 1 << 4;
    /// Responder access (byte 13).
    pub const ACCESS: u32 = 1 << 5;
    /// Destination QPN.
    pub const DEST_QPN: u32 = 1 << 6;
    /// Send PSN.
    pub const SQ_PSN: u32 = 1 << 7;
    /// Receive PSN.
    pub const RQ_PSN: u32 = 1 << 8;
    /// Address vector: remote MAC and IPv4.
    pub const AV: u32 = 1 << 9;
    /// Minimum RNR NAK timer (byte 14).
    pub const MIN_RNR_TIMER: u32 = 1 << 10;
    /// Address vector over IPv6: remote MAC (bytes 28..34) and remote IPv6
    /// (bytes 40..56); exclusive with `AV`.
    pub const AV6: u32 = 1 << 11;
    /// Every defined bit.
    pub const ALL: u32 = (1 << 12) - 1;
}

/// Bytes of a path MTU code (IBA encoding, §3.12): 1 = 256 .. 5 = 4096.
pub const fn mtu_bytes(code: u8) -> Option<u32> {
    match code {
        1 => Some(256),
        2 => Some(512),
        3 => Some(1024),
        4 => Some(2048),
        5 => Some(4096),
        _ => None,
    }
}

/// The largest path MTU code the device supports (§3.9).
pub const MAX_PATH_MTU_CODE: u8 = 5;

/// IBA RNR NAK timer encoding in microseconds, indexed by the 5-bit code (§10.6).
pub const RNR_TIMER_US: [u32; 32] = [
    655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840,
    5120, 7680, 10_240, 15_360, 20_480, 30_720, 40_960, 61_440, 81_920, 122_880, 163_840, 245_760,
    327_680, 491_520,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers of §6.2, §7.1, §3.12 and §10.6, copied independently.
    #[test]
    fn matches_spec() {
        assert_eq!(access::ALL, 0xF);
        assert_eq!(FIRST_QPN, 2, "QP0 and QP1 are reserved");
        for v in 0..=6u8 {
            assert_eq!(QpState::from_u8(v).map(QpState::code), Some(v));
        }
        assert_eq!(QpState::from_u8(7), None);
        assert_eq!(QpState::Rts.name(), "rts");
        assert_eq!(qp_attr::ALL, 0xFFF);
        assert_eq!(qp_attr::AV6, 0x800);
        assert_eq!(qp_attr::MIN_RNR_TIMER, 0x400);
        assert_eq!(
            (mtu_bytes(1), mtu_bytes(5), mtu_bytes(6)),
            (Some(256), Some(4096), None)
        );
        assert_eq!(
            (RNR_TIMER_US[0], RNR_TIMER_US[1], RNR_TIMER_US[31]),
            (655_360, 10, 491_520)
        );
        assert_eq!(RNR_TIMER_US[14], 1280);
    }
}
