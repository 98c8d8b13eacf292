//! The event ring (`docs/device-spec.md` §4.1, §4.2): the 16-byte event entry and
//! the event codes with their detail values.

use crate::field;
use crate::fixed_view;

/// Event entry size in bytes (§4.1).
pub const ENTRY_SIZE: usize = 16;
/// Required alignment of `EQ_BASE` in bytes (§2.2).
pub const ALIGN: u64 = 16;

/// Event codes (§4.2). Every other code is reserved.
pub mod code {
    /// The link came up (handle 0, detail 0).
    pub const LINK_UP: u8 = 0x01;
    /// The link went down (handle 0, detail 0).
    pub const LINK_DOWN: u8 = 0x02;
    /// The device entered the fatal state (detail: [`super::fatal_cause`]).
    pub const FATAL: u8 = 0x03;
    /// An Ethernet queue stopped (handle: queue id, bit 16 for RX; detail:
    /// [`crate::eth::queue_error`]).
    pub const ETH_QUEUE_ERROR: u8 = 0x08;
    /// The device moved a QP to ERR (handle: QPN; detail: [`super::qp_error_cause`]
    /// or a completion status).
    pub const QP_ERROR: u8 = 0x10;
    /// Responder: a remote access check failed, the QP went to ERR.
    pub const QP_ACCESS_ERROR: u8 = 0x11;
    /// Responder: a malformed or unsupported request, the QP went to ERR.
    pub const QP_REQUEST_ERROR: u8 = 0x12;
    /// A QP in SQD has no send WQE outstanding.
    pub const SQ_DRAINED: u8 = 0x13;
    /// A CQ overflowed or its ring could not be written.
    pub const CQ_ERROR: u8 = 0x20;
    /// Connection manager (§4.2, §3.14): a connect request arrived on a listener
    /// (handle: the new connection id; detail: listener id). Read the peer's
    /// addresses and private data with `CM_QUERY`, then `CM_ACCEPT` or `CM_REJECT`.
    pub const CM_CONNECT_REQUEST: u8 = 0x30;
    /// Active side: the peer accepted, its reply (REP) arrived (handle: connection
    /// id; detail: QPN). The QP is in RTR; `CM_COMPLETE_CONNECT` sends RTU.
    pub const CM_CONNECT_REPLY: u8 = 0x31;
    /// The connection is established, the QP is in RTS (handle: connection id;
    /// detail: QPN). Passive side: RTU (or the first packet on the QP) arrived;
    /// active side: after `CM_COMPLETE_CONNECT`.
    pub const CM_ESTABLISHED: u8 = 0x32;
    /// The peer rejected the request or the reply (handle: connection id; detail:
    /// IBTA reject reason, [`crate::cm::reject_reason`]). Private data: `CM_QUERY`.
    pub const CM_REJECTED: u8 = 0x33;
    /// The peer disconnected (DREQ arrived; the device answered DREP and moved the
    /// QP to ERR). Exactly once per connection (handle: connection id; detail: QPN).
    pub const CM_DISCONNECT_RECEIVED: u8 = 0x34;
    /// A `CM_DISCONNECT` finished (handle: connection id; detail:
    /// [`super::cm_disconnected`]). Exactly once per `CM_DISCONNECT`.
    pub const CM_DISCONNECTED: u8 = 0x35;
    /// A connection failed without a reject (handle: connection id; detail:
    /// [`super::cm_failure`]); its QP was moved to ERR.
    pub const CM_CONNECT_FAILED: u8 = 0x36;
}

/// `CM_DISCONNECTED` detail (§4.2).
pub mod cm_disconnected {
    /// The peer answered the DREQ with DREP.
    pub const DREP_RECEIVED: u32 = 0;
    /// The peer had disconnected first (its DREQ arrived before or across ours).
    pub const PEER_DISCONNECTED: u32 = 1;
    /// No DREP after every DREQ retransmission.
    pub const NO_REPLY: u32 = 2;
}

/// `CM_CONNECT_FAILED` detail (§4.2).
pub mod cm_failure {
    /// Active side: no ARP reply / Neighbor Advertisement for the remote address.
    pub const UNREACHABLE: u32 = 1;
    /// Active side: no REP (or MRA) after every REQ retransmission.
    pub const REQ_TIMEOUT: u32 = 2;
    /// Passive side: no RTU after every REP retransmission.
    pub const REP_TIMEOUT: u32 = 3;
}

/// `FATAL` event detail (§4.2).
pub mod fatal_cause {
    /// Injected by the fault engine or the host.
    pub const INJECTED: u32 = 1;
    /// Reserved (an event ring DMA failure).
    pub const EQ_DMA: u32 = 2;
}

/// `QP_ERROR` causes that are not completion statuses (§4.2). A cause is one byte:
/// below `0xF0` it is a completion status code.
pub mod qp_error_cause {
    /// An SQ or RQ producer count that overruns the ring (§8.5).
    pub const BAD_DOORBELL: u8 = 0xF0;
    /// DMA error reading a WQE (or a page list).
    pub const WQE_DMA: u8 = 0xF1;
    /// The QP's CQ is in error.
    pub const CQ_ERROR: u8 = 0xF2;
}

/// `ETH_QUEUE_ERROR` handle bit marking an RX queue (§4.2).
pub const ETH_RX_QUEUE_FLAG: u32 = 1 << 16;

/// Byte ranges of the event entry (§4.1).
pub mod entry_field {
    use crate::field::Field;
    /// Event code (byte).
    pub const CODE: usize = 0;
    /// Handle: the object the event is about.
    pub const HANDLE: Field = 4..8;
    /// Detail.
    pub const DETAIL: Field = 8..12;
    /// Sequence number (events written since reset, wrapping at 2^16).
    pub const SEQUENCE: Field = 12..14;
    /// Bit 0: phase tag; written last.
    pub const PHASE: Field = 14..16;
}

fixed_view!(
    /// A view of a 16-byte event entry (§4.1).
    EventEntry,
    ENTRY_SIZE
);

impl<T: AsRef<[u8]>> EventEntry<T> {
    /// Event code.
    pub fn code(&self) -> u8 {
        self.bytes()[entry_field::CODE]
    }
    /// Handle.
    pub fn handle(&self) -> u32 {
        field::get_u32(self.bytes(), entry_field::HANDLE)
    }
    /// Detail.
    pub fn detail(&self) -> u32 {
        field::get_u32(self.bytes(), entry_field::DETAIL)
    }
    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        field::get_u16(self.bytes(), entry_field::SEQUENCE)
    }
    /// Phase tag.
    pub fn phase(&self) -> bool {
        field::get_u16(self.bytes(), entry_field::PHASE) & 1 != 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EventEntry<T> {
    /// Sets the code and zeroes bytes 1..4.
    pub fn set_code(&mut self, v: u8) {
        let b = self.bytes_mut();
        b[entry_field::CODE] = v;
        b[1..4].fill(0);
    }
    /// Sets the handle.
    pub fn set_handle(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), entry_field::HANDLE, v)
    }
    /// Sets the detail.
    pub fn set_detail(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), entry_field::DETAIL, v)
    }
    /// Sets the sequence number.
    pub fn set_sequence(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), entry_field::SEQUENCE, v)
    }
    /// Sets the phase word (bit 0 = `phase`, other bits 0).
    pub fn set_phase(&mut self, phase: bool) {
        field::set_u16(self.bytes_mut(), entry_field::PHASE, phase as u16)
    }
}

/// A whole event entry as values (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRepr {
    /// Event code ([`code`]).
    pub code: u8,
    /// Handle.
    pub handle: u32,
    /// Detail.
    pub detail: u32,
    /// Sequence number.
    pub sequence: u16,
    /// Phase tag.
    pub phase: bool,
}

impl EventRepr {
    /// Reads every field of `entry`.
    pub fn parse<T: AsRef<[u8]>>(entry: &EventEntry<T>) -> Self {
        EventRepr {
            code: entry.code(),
            handle: entry.handle(),
            detail: entry.detail(),
            sequence: entry.sequence(),
            phase: entry.phase(),
        }
    }

    /// Writes every field into `entry`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, entry: &mut EventEntry<T>) {
        entry.set_code(self.code);
        entry.set_handle(self.handle);
        entry.set_detail(self.detail);
        entry.set_sequence(self.sequence);
        entry.set_phase(self.phase);
    }

    /// The 16-byte entry.
    pub fn to_bytes(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        self.emit(&mut EventEntry::new_unchecked(&mut b[..]));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event entry of §4.1 and codes of §4.2, copied independently.
    #[test]
    fn matches_spec_section_4() {
        let e = EventRepr {
            code: code::QP_ERROR,
            handle: 0x0102_0304,
            detail: 0xF2,
            sequence: 0xABCD,
            phase: true,
        };
        let b = e.to_bytes();
        assert_eq!(b[0], 0x10);
        assert_eq!(b[1..4], [0, 0, 0]);
        assert_eq!(b[4..8], [4, 3, 2, 1]);
        assert_eq!(b[8], 0xF2);
        assert_eq!(b[12..14], [0xCD, 0xAB]);
        assert_eq!(b[14..16], [1, 0]);
        assert_eq!(
            EventRepr::parse(&EventEntry::new_checked(&b[..]).unwrap()),
            e
        );
        assert_eq!(
            [
                code::LINK_UP,
                code::LINK_DOWN,
                code::FATAL,
                code::ETH_QUEUE_ERROR
            ],
            [1, 2, 3, 8]
        );
        assert_eq!(
            [
                code::QP_ACCESS_ERROR,
                code::QP_REQUEST_ERROR,
                code::SQ_DRAINED,
                code::CQ_ERROR
            ],
            [0x11, 0x12, 0x13, 0x20]
        );
        assert_eq!(ETH_RX_QUEUE_FLAG, 0x1_0000);
    }

    /// Connection-manager event codes and details of §4.2, copied independently.
    #[test]
    fn cm_events_match_spec_section_4() {
        assert_eq!(
            [
                code::CM_CONNECT_REQUEST,
                code::CM_CONNECT_REPLY,
                code::CM_ESTABLISHED,
                code::CM_REJECTED,
                code::CM_DISCONNECT_RECEIVED,
                code::CM_DISCONNECTED,
                code::CM_CONNECT_FAILED
            ],
            [0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36]
        );
        assert_eq!(
            [
                cm_disconnected::DREP_RECEIVED,
                cm_disconnected::PEER_DISCONNECTED,
                cm_disconnected::NO_REPLY
            ],
            [0, 1, 2]
        );
        assert_eq!(
            [
                cm_failure::UNREACHABLE,
                cm_failure::REQ_TIMEOUT,
                cm_failure::REP_TIMEOUT
            ],
            [1, 2, 3]
        );
    }
}
