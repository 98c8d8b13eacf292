//! The admin queue (`docs/device-spec.md` §3): ring geometry, the 64-byte command
//! entry and 16-byte completion entry, opcodes, the one [`AdminStatus`] type, and
//! the operand layouts and output records of each command.

use crate::field;
use crate::fixed_view;

/// Admin submission entry size in bytes (§3.2).
pub const COMMAND_SIZE: usize = 64;
/// Admin completion entry size in bytes (§3.3).
pub const COMPLETION_SIZE: usize = 16;
/// Required alignment of `ASQ_BASE` in bytes (§2.2).
pub const ASQ_ALIGN: u64 = 64;
/// Required alignment of `ACQ_BASE` in bytes (§2.2).
pub const ACQ_ALIGN: u64 = 16;
/// Smallest admin (and event) ring, in entries (§2.2).
pub const RING_MIN: u32 = 2;
/// Largest admin (and event) ring, in entries (§2.2).
pub const RING_MAX: u32 = 4096;
/// Operand bytes in a command (§3.2).
pub const OPERANDS_LEN: usize = 56;
/// `result0` of a successful `NOP`: ASCII "NOP" in bits 31:8 (§3.7).
pub const NOP_RESULT0: u32 = 0x4E4F_5000;

/// Admin opcodes (§3.5). `0x00..=0x0F` device core, `0x10..=0x3F` verbs,
/// `0x40..=0x4F` Ethernet queues; everything else is `INVALID_OPCODE`.
pub mod opcode {
    /// No operation; r0 = [`super::NOP_RESULT0`].
    pub const NOP: u8 = 0x00;
    /// Writes the 64-byte device record ([`super::query_device`]).
    pub const QUERY_DEVICE: u8 = 0x01;
    /// Sets the Ethernet MTU.
    pub const SET_MTU: u8 = 0x02;
    /// Sets the Ethernet MAC and the verbs port MAC.
    pub const SET_MAC: u8 = 0x03;
    /// Sets the receive filter.
    pub const SET_RX_FILTER: u8 = 0x04;
    /// Replaces the multicast list.
    pub const SET_MULTICAST: u8 = 0x05;
    /// Reports link state and speed.
    pub const QUERY_LINK: u8 = 0x06;
    /// Writes the statistics block (§14.1).
    pub const GET_STATS: u8 = 0x07;
    /// Zeroes the §14.1 counters.
    pub const CLEAR_STATS: u8 = 0x08;
    /// Destroys every queue and verbs object, resets port settings.
    pub const RESET_FUNCTION: u8 = 0x09;
    /// Writes the 64-byte verbs capability record ([`super::query_caps`]).
    pub const QUERY_CAPS: u8 = 0x10;
    /// Creates a protection domain; r0 = PDN.
    pub const CREATE_PD: u8 = 0x11;
    /// Destroys a protection domain.
    pub const DESTROY_PD: u8 = 0x12;
    /// Sets the verbs port MAC and IPv4 address.
    pub const SET_PORT_ADDR: u8 = 0x13;
    /// Sets the verbs port IPv6 address ([`super::operands::set_port_addr6`]).
    pub const SET_PORT_ADDR6: u8 = 0x14;
    /// Creates a completion queue; r0 = CQN.
    pub const CREATE_CQ: u8 = 0x18;
    /// Destroys a completion queue.
    pub const DESTROY_CQ: u8 = 0x19;
    /// Moves a CQ to a new ring; r0 = CQEs carried over.
    pub const RESIZE_CQ: u8 = 0x1A;
    /// Changes a CQ's interrupt moderation.
    pub const MODIFY_CQ: u8 = 0x1B;
    /// Creates an RC queue pair; r0 = QPN.
    pub const CREATE_QP: u8 = 0x20;
    /// Changes QP state and attributes.
    pub const MODIFY_QP: u8 = 0x21;
    /// Writes the 64-byte QP record; r0 = state.
    pub const QUERY_QP: u8 = 0x22;
    /// Destroys a queue pair.
    pub const DESTROY_QP: u8 = 0x23;
    /// Registers a memory region; r0 = key, r1 = index.
    pub const REG_MR: u8 = 0x28;
    /// Deregisters a memory region.
    pub const DEREG_MR: u8 = 0x29;
    /// Allocates a fast-register MR; r0 = key, r1 = index.
    pub const ALLOC_FR_MR: u8 = 0x2A;
    /// Writes the 64-byte MR record; r0 = state.
    pub const QUERY_MR: u8 = 0x2B;
    /// Connection manager: listens on an address and port; r0 = listener id,
    /// r1 = port ([`super::operands::cm_listen`], §3.14).
    pub const CM_LISTEN: u8 = 0x30;
    /// Connection manager: closes a listener ([`super::operands::handle`]).
    pub const CM_UNLISTEN: u8 = 0x31;
    /// Connection manager: starts an active connection for an RC QP; r0 = connection
    /// id ([`super::operands::cm_connect`]).
    pub const CM_CONNECT: u8 = 0x32;
    /// Connection manager: accepts a received connect request with a QP
    /// ([`super::operands::cm_accept`]).
    pub const CM_ACCEPT: u8 = 0x33;
    /// Connection manager: rejects a received request or reply with private data
    /// ([`super::operands::cm_reject`]).
    pub const CM_REJECT: u8 = 0x34;
    /// Connection manager: active side, after a reply: sends RTU, the QP goes to RTS
    /// ([`super::operands::handle`]).
    pub const CM_COMPLETE_CONNECT: u8 = 0x35;
    /// Connection manager: disconnects (DREQ/DREP); one `CM_DISCONNECTED` event
    /// follows ([`super::operands::handle`]).
    pub const CM_DISCONNECT: u8 = 0x36;
    /// Connection manager: writes the connection record and the peer's private data
    /// ([`super::operands::cm_query`], [`crate::cm::record`]); r0 = bytes written,
    /// r1 = private data length.
    pub const CM_QUERY: u8 = 0x37;
    /// Connection manager: frees a connection id in any state
    /// ([`super::operands::handle`]).
    pub const CM_RELEASE: u8 = 0x38;
    /// Creates an Ethernet TX queue; r0 = queue id.
    pub const CREATE_TXQ: u8 = 0x40;
    /// Destroys an Ethernet TX queue.
    pub const DESTROY_TXQ: u8 = 0x41;
    /// Creates an Ethernet RX queue; r0 = queue id.
    pub const CREATE_RXQ: u8 = 0x42;
    /// Destroys an Ethernet RX queue.
    pub const DESTROY_RXQ: u8 = 0x43;
}

/// Status of a failed admin command: the completion's status field (§3.4). One type
/// for every command; `SUCCESS` (0) is not a variant, success is `Ok(..)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum AdminStatus {
    /// The opcode is not defined.
    InvalidOpcode = 0x01,
    /// An operand is out of range, misaligned, reserved, or names memory that is not
    /// guest RAM; or the command's flags byte or reserved dword is not 0.
    InvalidParam = 0x02,
    /// An object table is full, or a size exceeds a device limit.
    NoResources = 0x10,
    /// A handle names no live object.
    InvalidHandle = 0x11,
    /// The object is still referenced, or the queue id is taken.
    Busy = 0x12,
    /// QP state transition not allowed from the current state.
    InvalidState = 0x13,
    /// Guest memory named by the command (not the rings) could not be accessed.
    DmaError = 0x14,
    /// Internal device error (version 1.0: only by fault injection).
    DeviceError = 0x15,
    /// Valid command, feature not supported (version 1.0: only by fault injection).
    NotSupported = 0x16,
    /// `CM_LISTEN`: another listener holds that address and port (§3.14).
    AddressInUse = 0x17,
}

/// Status code of a successful command (§3.4).
pub const STATUS_SUCCESS: u16 = 0;

impl AdminStatus {
    /// Every status, in code order.
    pub const ALL: [AdminStatus; 10] = [
        AdminStatus::InvalidOpcode,
        AdminStatus::InvalidParam,
        AdminStatus::NoResources,
        AdminStatus::InvalidHandle,
        AdminStatus::Busy,
        AdminStatus::InvalidState,
        AdminStatus::DmaError,
        AdminStatus::DeviceError,
        AdminStatus::NotSupported,
        AdminStatus::AddressInUse,
    ];

    /// The code written to the completion's status field.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The status with this code; `None` for 0 (success) and undefined codes (which
    /// a driver treats as failure: fault injection may complete with any code).
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// What the status means, for a person reading a log.
    pub const fn message(self) -> &'static str {
        match self {
            AdminStatus::InvalidOpcode => "unknown admin opcode",
            AdminStatus::InvalidParam => "an admin operand is out of range",
            AdminStatus::NoResources => "the device is out of resources for this object",
            AdminStatus::InvalidHandle => "the handle does not name a live object",
            AdminStatus::Busy => "the object is still in use",
            AdminStatus::InvalidState => "the object is in the wrong state for this command",
            AdminStatus::DmaError => "a buffer named by the command is not accessible guest memory",
            AdminStatus::DeviceError => "internal device error",
            AdminStatus::NotSupported => "the feature is not supported by this device",
            AdminStatus::AddressInUse => {
                "another listener holds this address and port; pick another port or close it"
            }
        }
    }
}

impl core::fmt::Display for AdminStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for AdminStatus {}

/// Byte ranges of the command entry (§3.2).
pub mod command_field {
    use crate::field::Field;
    /// Opcode byte.
    pub const OPCODE: usize = 0;
    /// Flags byte: RsvdZ, checked.
    pub const FLAGS: usize = 1;
    /// Command id, echoed in the completion.
    pub const ID: Field = 2..4;
    /// Reserved dword: RsvdZ, checked.
    pub const RESERVED: Field = 4..8;
    /// Opcode-specific operands; "operand offset" counts from here.
    pub const OPERANDS: Field = 8..64;
}

fixed_view!(
    /// A view of a 64-byte admin command entry (§3.2).
    Command,
    COMMAND_SIZE
);

impl<T: AsRef<[u8]>> Command<T> {
    /// The opcode (§3.5).
    pub fn opcode(&self) -> u8 {
        self.bytes()[command_field::OPCODE]
    }
    /// The flags byte (must be 0).
    pub fn flags(&self) -> u8 {
        self.bytes()[command_field::FLAGS]
    }
    /// The command id.
    pub fn id(&self) -> u16 {
        field::get_u16(self.bytes(), command_field::ID)
    }
    /// The reserved dword (must be 0).
    pub fn reserved(&self) -> u32 {
        field::get_u32(self.bytes(), command_field::RESERVED)
    }
    /// The 56 operand bytes.
    pub fn operands(&self) -> &[u8] {
        &self.bytes()[command_field::OPERANDS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Command<T> {
    /// Sets the opcode.
    pub fn set_opcode(&mut self, v: u8) {
        self.bytes_mut()[command_field::OPCODE] = v;
    }
    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.bytes_mut()[command_field::FLAGS] = v;
    }
    /// Sets the command id.
    pub fn set_id(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), command_field::ID, v)
    }
    /// Sets the reserved dword.
    pub fn set_reserved(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), command_field::RESERVED, v)
    }
    /// The 56 operand bytes, writable.
    pub fn operands_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[command_field::OPERANDS]
    }
}

/// A whole admin command entry as values (§3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRepr {
    /// Opcode (§3.5).
    pub opcode: u8,
    /// Flags byte (RsvdZ, checked by the device).
    pub flags: u8,
    /// Command id, echoed in the completion.
    pub id: u16,
    /// Reserved dword (RsvdZ, checked by the device).
    pub reserved: u32,
    /// Opcode-specific operands (layouts in [`operands`]).
    pub operands: [u8; OPERANDS_LEN],
}

impl CommandRepr {
    /// A command with zero flags, reserved dword and operands.
    pub const fn new(opcode: u8, id: u16) -> Self {
        CommandRepr {
            opcode,
            flags: 0,
            id,
            reserved: 0,
            operands: [0; OPERANDS_LEN],
        }
    }

    /// Reads every field of `entry`.
    pub fn parse<T: AsRef<[u8]>>(entry: &Command<T>) -> Self {
        let mut operands = [0u8; OPERANDS_LEN];
        operands.copy_from_slice(entry.operands());
        CommandRepr {
            opcode: entry.opcode(),
            flags: entry.flags(),
            id: entry.id(),
            reserved: entry.reserved(),
            operands,
        }
    }

    /// Writes every field into `entry`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, entry: &mut Command<T>) {
        entry.set_opcode(self.opcode);
        entry.set_flags(self.flags);
        entry.set_id(self.id);
        entry.set_reserved(self.reserved);
        entry.operands_mut().copy_from_slice(&self.operands);
    }

    /// The 64-byte entry.
    pub fn to_bytes(&self) -> [u8; COMMAND_SIZE] {
        let mut b = [0u8; COMMAND_SIZE];
        self.emit(&mut Command::new_unchecked(&mut b[..]));
        b
    }

    /// Parses a 64-byte entry.
    pub fn from_bytes(b: &[u8; COMMAND_SIZE]) -> Self {
        Self::parse(&Command::new_unchecked(&b[..]))
    }
}

/// Byte ranges of the completion entry (§3.3).
pub mod completion_field {
    use crate::field::Field;
    /// Result 0 (opcode-specific).
    pub const RESULT0: Field = 0..4;
    /// Result 1 (opcode-specific).
    pub const RESULT1: Field = 4..8;
    /// Command id.
    pub const ID: Field = 8..10;
    /// `ASQ_HEAD` after this command was consumed.
    pub const SQ_HEAD: Field = 10..12;
    /// Status (§3.4).
    pub const STATUS: Field = 12..14;
    /// Bit 0: phase tag; written last by the device.
    pub const PHASE: Field = 14..16;
    /// Bytes written before the phase word.
    pub const BODY: Field = 0..14;
}

fixed_view!(
    /// A view of a 16-byte admin completion entry (§3.3).
    Completion,
    COMPLETION_SIZE
);

impl<T: AsRef<[u8]>> Completion<T> {
    /// Result 0.
    pub fn result0(&self) -> u32 {
        field::get_u32(self.bytes(), completion_field::RESULT0)
    }
    /// Result 1.
    pub fn result1(&self) -> u32 {
        field::get_u32(self.bytes(), completion_field::RESULT1)
    }
    /// The completed command's id.
    pub fn id(&self) -> u16 {
        field::get_u16(self.bytes(), completion_field::ID)
    }
    /// `ASQ_HEAD` after the command was consumed.
    pub fn sq_head(&self) -> u16 {
        field::get_u16(self.bytes(), completion_field::SQ_HEAD)
    }
    /// The status code (0 = success).
    pub fn status(&self) -> u16 {
        field::get_u16(self.bytes(), completion_field::STATUS)
    }
    /// The phase tag (bit 0 of the last word; the other bits are ignored).
    pub fn phase(&self) -> bool {
        field::get_u16(self.bytes(), completion_field::PHASE) & 1 != 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Completion<T> {
    /// Sets result 0.
    pub fn set_result0(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), completion_field::RESULT0, v)
    }
    /// Sets result 1.
    pub fn set_result1(&mut self, v: u32) {
        field::set_u32(self.bytes_mut(), completion_field::RESULT1, v)
    }
    /// Sets the command id.
    pub fn set_id(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), completion_field::ID, v)
    }
    /// Sets the `ASQ_HEAD` field.
    pub fn set_sq_head(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), completion_field::SQ_HEAD, v)
    }
    /// Sets the status code.
    pub fn set_status(&mut self, v: u16) {
        field::set_u16(self.bytes_mut(), completion_field::STATUS, v)
    }
    /// Sets the phase word (bit 0 = `phase`, other bits 0).
    pub fn set_phase(&mut self, phase: bool) {
        field::set_u16(self.bytes_mut(), completion_field::PHASE, phase as u16)
    }
}

/// A whole admin completion entry as values (§3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletionRepr {
    /// Result 0 (opcode-specific, 0 on failure).
    pub result0: u32,
    /// Result 1 (opcode-specific, 0 on failure).
    pub result1: u32,
    /// Command id.
    pub id: u16,
    /// `ASQ_HEAD` after this command.
    pub sq_head: u16,
    /// Status code ([`STATUS_SUCCESS`] or an [`AdminStatus`] code; fault injection may
    /// write any value).
    pub status: u16,
    /// Phase tag.
    pub phase: bool,
}

impl CompletionRepr {
    /// Reads every field of `entry`.
    pub fn parse<T: AsRef<[u8]>>(entry: &Completion<T>) -> Self {
        CompletionRepr {
            result0: entry.result0(),
            result1: entry.result1(),
            id: entry.id(),
            sq_head: entry.sq_head(),
            status: entry.status(),
            phase: entry.phase(),
        }
    }

    /// Writes every field into `entry`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, entry: &mut Completion<T>) {
        entry.set_result0(self.result0);
        entry.set_result1(self.result1);
        entry.set_id(self.id);
        entry.set_sq_head(self.sq_head);
        entry.set_status(self.status);
        entry.set_phase(self.phase);
    }

    /// The 16-byte entry.
    pub fn to_bytes(&self) -> [u8; COMPLETION_SIZE] {
        let mut b = [0u8; COMPLETION_SIZE];
        self.emit(&mut Completion::new_unchecked(&mut b[..]));
        b
    }

    /// Parses a 16-byte entry.
    pub fn from_bytes(b: &[u8; COMPLETION_SIZE]) -> Self {
        Self::parse(&Completion::new_unchecked(&b[..]))
    }

    /// Parses an entry read as four little-endian dwords (how a driver reads MMIO-
    /// or DMA-visible memory with 32-bit volatile loads).
    pub fn from_dwords(d: [u32; 4]) -> Self {
        let mut b = [0u8; COMPLETION_SIZE];
        for (chunk, w) in b.chunks_exact_mut(4).zip(d) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Self::from_bytes(&b)
    }
}

/// Operand layouts of each command (§3.7-§3.13): byte ranges counted from operand
/// offset 0 (command byte 8). Read them with [`crate::field::Record`].
pub mod operands {
    /// `QUERY_DEVICE` and `GET_STATS` (§3.7): an output buffer and its length.
    pub mod buffer {
        use crate::field::Field;
        /// Guest address of the output buffer.
        pub const ADDR: Field = 0..8;
        /// Length of the buffer in bytes.
        pub const LEN: Field = 8..12;
    }
    /// `SET_MTU` (§3.7).
    pub mod set_mtu {
        use crate::field::Field;
        /// The MTU in bytes (68..=9000).
        pub const MTU: Field = 0..4;
    }
    /// `SET_MAC` (§3.7).
    pub mod set_mac {
        use crate::field::Field;
        /// The 6-byte MAC address.
        pub const MAC: Field = 0..6;
    }
    /// `SET_RX_FILTER` (§3.7).
    pub mod set_rx_filter {
        use crate::field::Field;
        /// Filter bits ([`crate::eth::filter`]).
        pub const FILTER: Field = 0..4;
    }
    /// `SET_MULTICAST` (§3.7).
    pub mod set_multicast {
        use crate::field::Field;
        /// Number of entries (0..=64).
        pub const COUNT: Field = 0..4;
        /// Guest address of `COUNT` 8-byte entries (6-byte MAC, 2 bytes ignored).
        pub const LIST: Field = 8..16;
        /// Size of one list entry in bytes.
        pub const ENTRY_SIZE: usize = 8;
    }
    /// `CREATE_TXQ` / `CREATE_RXQ` (§3.8).
    pub mod create_eth_queue {
        use crate::field::Field;
        /// Ring base (16-byte aligned).
        pub const BASE: Field = 0..8;
        /// Ring size in descriptors (power of two, 2..=4096).
        pub const SIZE: Field = 8..12;
        /// MSI-X vector.
        pub const VECTOR: Field = 12..14;
        /// Queue id chosen by the driver (0..7).
        pub const QUEUE_ID: Field = 14..16;
    }
    /// Commands whose only operand is one `u32` handle: `DESTROY_TXQ/RXQ` (queue id),
    /// `DESTROY_PD` (PDN), `DESTROY_CQ` (CQN), `DESTROY_QP` (QPN), `DEREG_MR` (key).
    pub mod handle {
        use crate::field::Field;
        /// The handle.
        pub const HANDLE: Field = 0..4;
    }
    /// `QUERY_CAPS` (§3.9).
    pub mod query_caps {
        use crate::field::Field;
        /// Guest address of the 64-byte output buffer.
        pub const ADDR: Field = 0..8;
    }
    /// `SET_PORT_ADDR` (§3.10).
    pub mod set_port_addr {
        use crate::field::Field;
        /// MAC address (bit 0 of byte 0 must be 0).
        pub const MAC: Field = 0..6;
        /// IPv4 address, network byte order.
        pub const IPV4: Field = 8..12;
    }
    /// `SET_PORT_ADDR6` (§3.10).
    pub mod set_port_addr6 {
        use crate::field::Field;
        /// IPv6 address, network byte order; all zero removes the IPv6 address.
        pub const IPV6: Field = 0..16;
    }
    /// `CM_LISTEN` (§3.14).
    pub mod cm_listen {
        use crate::field::Field;
        /// Address family (byte): [`crate::cm::family`].
        pub const FAMILY: usize = 0;
        /// Port; 0 = the device picks a free port (returned in r1).
        pub const PORT: Field = 2..4;
        /// Local address, network byte order (IPv4 in bytes 0..4, the rest 0); all
        /// zero = every address of the family.
        pub const ADDR: Field = 16..32;
    }
    /// `CM_CONNECT` (§3.14).
    pub mod cm_connect {
        use crate::field::Field;
        /// QPN of an RC QP in RESET or INIT that no connection holds.
        pub const QPN: Field = 0..4;
        /// Address family (byte): [`crate::cm::family`].
        pub const FAMILY: usize = 4;
        /// Responder resources offered (byte, ≤ [`crate::cm::MAX_RD_ATOMIC`]).
        pub const RESPONDER_RESOURCES: usize = 5;
        /// Initiator depth asked for (byte, ≤ [`crate::cm::MAX_RD_ATOMIC`]).
        pub const INITIATOR_DEPTH: usize = 6;
        /// Private data length (byte, ≤ [`crate::cm::private_data::REQ`]).
        pub const PRIVATE_DATA_LEN: usize = 7;
        /// Guest address of the private data (ignored when the length is 0).
        pub const PRIVATE_DATA: Field = 8..16;
        /// Local address: the port's address of the family, or all zero for it.
        pub const LOCAL_ADDR: Field = 16..32;
        /// Remote address, network byte order.
        pub const REMOTE_ADDR: Field = 32..48;
        /// Remote port (1..=65535).
        pub const REMOTE_PORT: Field = 48..50;
        /// Local port; 0 = the device picks one.
        pub const LOCAL_PORT: Field = 50..52;
    }
    /// `CM_ACCEPT` (§3.14).
    pub mod cm_accept {
        use crate::field::Field;
        /// Connection id of a received request (`CM_CONNECT_REQUEST` event).
        pub const CONN: Field = 0..4;
        /// QPN of an RC QP in RESET or INIT that no connection holds.
        pub const QPN: Field = 4..8;
        /// Guest address of the private data (ignored when the length is 0).
        pub const PRIVATE_DATA: Field = 8..16;
        /// Private data length (byte, ≤ [`crate::cm::private_data::REP`]).
        pub const PRIVATE_DATA_LEN: usize = 16;
        /// Responder resources (byte, ≤ [`crate::cm::MAX_RD_ATOMIC`]).
        pub const RESPONDER_RESOURCES: usize = 17;
        /// Initiator depth (byte, ≤ [`crate::cm::MAX_RD_ATOMIC`]).
        pub const INITIATOR_DEPTH: usize = 18;
    }
    /// `CM_REJECT` (§3.14).
    pub mod cm_reject {
        use crate::field::Field;
        /// Connection id (a received request, or a reply on the active side).
        pub const CONN: Field = 0..4;
        /// Guest address of the private data (ignored when the length is 0).
        pub const PRIVATE_DATA: Field = 8..16;
        /// Private data length (byte, ≤ [`crate::cm::private_data::REJ`]).
        pub const PRIVATE_DATA_LEN: usize = 16;
    }
    /// `CM_QUERY` (§3.14).
    pub mod cm_query {
        use crate::field::Field;
        /// Connection id.
        pub const CONN: Field = 0..4;
        /// Length of the output buffer, ≥ [`crate::cm::record::HEADER_LEN`].
        pub const LEN: Field = 4..8;
        /// Guest address of the output buffer.
        pub const ADDR: Field = 8..16;
    }
    /// `CREATE_CQ` (§3.11).
    pub mod create_cq {
        use crate::field::Field;
        /// Ring base (32-byte aligned).
        pub const BASE: Field = 0..8;
        /// Entries (power of two, ≥ 2).
        pub const ENTRIES: Field = 8..12;
        /// MSI-X vector.
        pub const VECTOR: Field = 12..14;
        /// Moderation count (§9.4).
        pub const MOD_COUNT: Field = 14..16;
        /// Moderation time in µs (§9.4).
        pub const MOD_TIME_US: Field = 16..20;
    }
    /// `RESIZE_CQ` (§3.11).
    pub mod resize_cq {
        use crate::field::Field;
        /// CQN.
        pub const CQN: Field = 0..4;
        /// New ring base.
        pub const BASE: Field = 8..16;
        /// New entries.
        pub const ENTRIES: Field = 16..20;
    }
    /// `MODIFY_CQ` (§3.11).
    pub mod modify_cq {
        use crate::field::Field;
        /// CQN.
        pub const CQN: Field = 0..4;
        /// Moderation count.
        pub const MOD_COUNT: Field = 4..6;
        /// Moderation time in µs.
        pub const MOD_TIME_US: Field = 8..12;
    }
    /// `CREATE_QP` (§3.12).
    pub mod create_qp {
        use crate::field::Field;
        /// PDN.
        pub const PDN: Field = 0..4;
        /// Send CQN.
        pub const SEND_CQN: Field = 4..8;
        /// Receive CQN.
        pub const RECV_CQN: Field = 8..12;
        /// SQ entries (power of two, ≥ 2).
        pub const SQ_ENTRIES: Field = 12..16;
        /// RQ entries (power of two ≥ 2, or 0 for no RQ).
        pub const RQ_ENTRIES: Field = 16..20;
        /// SQ base (128-byte aligned).
        pub const SQ_BASE: Field = 20..28;
        /// RQ base.
        pub const RQ_BASE: Field = 28..36;
        /// Max send SGEs per WQE (byte).
        pub const MAX_SEND_SGE: usize = 36;
        /// Max receive SGEs per WQE (byte).
        pub const MAX_RECV_SGE: usize = 37;
        /// Max inline bytes.
        pub const MAX_INLINE: Field = 38..40;
        /// QP type (byte; must be [`QP_TYPE_RC`]).
        pub const QP_TYPE: usize = 40;
        /// Flags (byte; [`FLAG_SQ_SIG_ALL`]).
        pub const FLAGS: usize = 41;
        /// The only QP type: reliable connected.
        pub const QP_TYPE_RC: u8 = 0;
        /// Every send WQE completes as if `SIGNALED`.
        pub const FLAG_SQ_SIG_ALL: u8 = 1;
    }
    /// `MODIFY_QP` (§3.12); the mask bits are [`crate::verbs::qp_attr`].
    pub mod modify_qp {
        use crate::field::Field;
        /// QPN.
        pub const QPN: Field = 0..4;
        /// Attribute mask.
        pub const MASK: Field = 4..8;
        /// New state (byte).
        pub const STATE: usize = 8;
        /// Path MTU code (byte).
        pub const PATH_MTU: usize = 9;
        /// Retry count (byte).
        pub const RETRY_CNT: usize = 10;
        /// RNR retry count (byte).
        pub const RNR_RETRY: usize = 11;
        /// Local ACK timeout exponent (byte).
        pub const TIMEOUT: usize = 12;
        /// Responder access bits (byte).
        pub const ACCESS: usize = 13;
        /// Minimum RNR NAK timer code (byte).
        pub const MIN_RNR_TIMER: usize = 14;
        /// Destination QPN.
        pub const DEST_QPN: Field = 16..20;
        /// Send PSN.
        pub const SQ_PSN: Field = 20..24;
        /// Receive PSN.
        pub const RQ_PSN: Field = 24..28;
        /// Remote MAC.
        pub const REMOTE_MAC: Field = 28..34;
        /// Remote IPv4, network byte order.
        pub const REMOTE_IPV4: Field = 36..40;
        /// Remote IPv6, network byte order (mask bit `AV6` instead of `AV`).
        pub const REMOTE_IPV6: Field = 40..56;
    }
    /// `QUERY_QP` and `QUERY_MR` (§3.12, §3.13): a handle and an output buffer.
    pub mod query_object {
        use crate::field::Field;
        /// QPN or MR key.
        pub const HANDLE: Field = 0..4;
        /// Guest address of the 64-byte output buffer.
        pub const ADDR: Field = 8..16;
    }
    /// `REG_MR` (§3.13).
    pub mod reg_mr {
        use crate::field::Field;
        /// PDN.
        pub const PDN: Field = 0..4;
        /// Access flags.
        pub const ACCESS: Field = 4..8;
        /// iova of the region's first byte.
        pub const IOVA: Field = 8..16;
        /// Length in bytes.
        pub const LENGTH: Field = 16..24;
        /// Guest address of the page list (u64 page addresses).
        pub const PAGE_LIST: Field = 24..32;
        /// Page count.
        pub const PAGE_COUNT: Field = 32..36;
        /// First byte offset in the first page.
        pub const FBO: Field = 36..40;
        /// Page shift (byte).
        pub const PAGE_SHIFT: usize = 40;
        /// Key byte (byte).
        pub const KEY_BYTE: usize = 41;
    }
    /// `ALLOC_FR_MR` (§3.13).
    pub mod alloc_fr_mr {
        use crate::field::Field;
        /// PDN.
        pub const PDN: Field = 0..4;
        /// Max pages.
        pub const MAX_PAGES: Field = 4..8;
        /// Initial key byte (byte).
        pub const KEY_BYTE: usize = 8;
    }
}

/// Size of every query output record (`QUERY_DEVICE`, `QUERY_CAPS`, `QUERY_QP`,
/// `QUERY_MR`) in bytes.
pub const QUERY_RECORD_SIZE: usize = 64;
/// Size of the extended `QUERY_DEVICE` record, written when the buffer holds it
/// (§3.7.1): the 64-byte record followed by the port's IPv6 address.
pub const QUERY_DEVICE_EXT_SIZE: usize = 96;

/// The `QUERY_DEVICE` record (§3.7.1).
pub mod query_device {
    use crate::field::Field;
    /// `VERSION` register value.
    pub const VERSION: Field = 0..4;
    /// `CAPS` register value.
    pub const CAPS: Field = 4..8;
    /// Current Ethernet MAC.
    pub const MAC: Field = 8..14;
    /// Current MTU.
    pub const MTU: Field = 16..20;
    /// Minimum MTU.
    pub const MIN_MTU: Field = 20..24;
    /// Maximum MTU.
    pub const MAX_MTU: Field = 24..28;
    /// Ethernet TX queues.
    pub const TX_QUEUES: Field = 28..30;
    /// Ethernet RX queues.
    pub const RX_QUEUES: Field = 30..32;
    /// Largest Ethernet ring in descriptors.
    pub const ETH_RING_MAX: Field = 32..36;
    /// MSI-X vectors.
    pub const MSIX_VECTORS: Field = 36..38;
    /// Largest admin ring in entries.
    pub const ADMIN_RING_MAX: Field = 40..44;
    /// Largest event ring in entries.
    pub const EVENT_RING_MAX: Field = 44..48;
    /// Link speed when up, Mb/s.
    pub const LINK_SPEED_MBPS: Field = 48..52;
    /// Largest multicast list.
    pub const MULTICAST_MAX: Field = 52..56;
    /// Current receive filter.
    pub const RX_FILTER: Field = 56..60;
    /// Verbs port IPv4 address, network byte order.
    pub const PORT_IPV4: Field = 60..64;
    /// Extended record only: verbs port IPv6 address (all zero: none).
    pub const PORT_IPV6: Field = 64..80;
}

/// The `QUERY_CAPS` record (§3.9).
pub mod query_caps {
    use crate::field::Field;
    /// Max QPs.
    pub const MAX_QP: Field = 0..4;
    /// Max CQs.
    pub const MAX_CQ: Field = 4..8;
    /// Max PDs.
    pub const MAX_PD: Field = 8..12;
    /// Max MRs.
    pub const MAX_MR: Field = 12..16;
    /// Max SQ / RQ entries.
    pub const MAX_QP_WR: Field = 16..20;
    /// Max CQ entries.
    pub const MAX_CQE: Field = 20..24;
    /// Max send SGEs per WQE (byte).
    pub const MAX_SEND_SGE: usize = 24;
    /// Max receive SGEs per WQE (byte).
    pub const MAX_RECV_SGE: usize = 25;
    /// Max inline bytes per WQE.
    pub const MAX_INLINE: Field = 26..28;
    /// Max message size in bytes.
    pub const MAX_MSG_SIZE: Field = 28..32;
    /// Max pages per registered MR.
    pub const MAX_MR_PAGES: Field = 32..36;
    /// Min page shift (byte).
    pub const MIN_PAGE_SHIFT: usize = 36;
    /// Max page shift (byte).
    pub const MAX_PAGE_SHIFT: usize = 37;
    /// Max path MTU code (byte).
    pub const MAX_PATH_MTU: usize = 38;
    /// MSI-X vectors a CQ may name (byte).
    pub const CQ_VECTORS: usize = 39;
    /// Max pages per fast-register MR.
    pub const MAX_FR_PAGES: Field = 40..44;
    /// WQE size in bytes.
    pub const WQE_SIZE: Field = 44..46;
    /// CQE size in bytes.
    pub const CQE_SIZE: Field = 46..48;
    /// Max unacknowledged packets per QP.
    pub const MAX_INFLIGHT: Field = 48..52;
    /// Supported MR access bits.
    pub const ACCESS_BITS: Field = 52..56;
    /// Max memory windows: 0, memory windows are not modelled.
    pub const MAX_MW: Field = 56..58;
    /// Max shared receive queues: 0, SRQs are not modelled.
    pub const MAX_SRQ: Field = 58..60;
    /// Max responder resources / initiator depth a connection may ask for (byte).
    pub const MAX_RD_ATOMIC: usize = 60;
    /// Connection manager: max listeners (byte).
    pub const MAX_LISTENERS: usize = 61;
    /// Connection manager: max connections.
    pub const MAX_CONNECTIONS: Field = 62..64;
}

/// The `QUERY_QP` record (§3.12).
pub mod query_qp {
    use crate::field::Field;
    /// QPN.
    pub const QPN: Field = 0..4;
    /// PDN.
    pub const PDN: Field = 4..8;
    /// State (byte).
    pub const STATE: usize = 8;
    /// Path MTU code (byte).
    pub const PATH_MTU: usize = 9;
    /// Retry count (byte).
    pub const RETRY_CNT: usize = 10;
    /// RNR retry count (byte).
    pub const RNR_RETRY: usize = 11;
    /// ACK timeout exponent (byte).
    pub const TIMEOUT: usize = 12;
    /// Access (byte).
    pub const ACCESS: usize = 13;
    /// Min RNR timer code (byte).
    pub const MIN_RNR_TIMER: usize = 14;
    /// Destination QPN.
    pub const DEST_QPN: Field = 16..20;
    /// Next send PSN.
    pub const SQ_PSN: Field = 20..24;
    /// Expected receive PSN.
    pub const RQ_PSN: Field = 24..28;
    /// Remote MAC.
    pub const REMOTE_MAC: Field = 28..34;
    /// Remote IPv4.
    pub const REMOTE_IPV4: Field = 36..40;
    /// Send CQN.
    pub const SEND_CQN: Field = 40..44;
    /// Receive CQN.
    pub const RECV_CQN: Field = 44..48;
    /// SQ entries.
    pub const SQ_ENTRIES: Field = 48..52;
    /// RQ entries.
    pub const RQ_ENTRIES: Field = 52..56;
    /// SQ consumer count.
    pub const SQ_HEAD: Field = 56..60;
    /// RQ consumer count.
    pub const RQ_HEAD: Field = 60..64;
}

/// The `QUERY_MR` record (§3.13).
pub mod query_mr {
    use crate::field::Field;
    /// Key in force.
    pub const KEY: Field = 0..4;
    /// PDN.
    pub const PDN: Field = 4..8;
    /// Access flags.
    pub const ACCESS: Field = 8..12;
    /// State (byte): [`STATE_FREE`] or [`STATE_VALID`].
    pub const STATE: usize = 12;
    /// 1 = fast-register MR (byte).
    pub const FAST_REG: usize = 13;
    /// Page shift (byte).
    pub const PAGE_SHIFT: usize = 14;
    /// iova.
    pub const IOVA: Field = 16..24;
    /// Length.
    pub const LENGTH: Field = 24..32;
    /// Page count.
    pub const PAGE_COUNT: Field = 32..36;
    /// First byte offset.
    pub const FBO: Field = 36..40;
    /// Max pages (fast-register MRs; 0 otherwise).
    pub const MAX_PAGES: Field = 40..44;
    /// MR state FREE (also `QUERY_MR` r0).
    pub const STATE_FREE: u8 = 1;
    /// MR state VALID (also `QUERY_MR` r0).
    pub const STATE_VALID: u8 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opcode map of §3.5, copied independently.
    #[test]
    fn opcodes_match_spec_3_5() {
        use opcode::*;
        let table = [
            (NOP, 0x00),
            (QUERY_DEVICE, 0x01),
            (SET_MTU, 0x02),
            (SET_MAC, 0x03),
            (SET_RX_FILTER, 0x04),
            (SET_MULTICAST, 0x05),
            (QUERY_LINK, 0x06),
            (GET_STATS, 0x07),
            (CLEAR_STATS, 0x08),
            (RESET_FUNCTION, 0x09),
            (QUERY_CAPS, 0x10),
            (CREATE_PD, 0x11),
            (DESTROY_PD, 0x12),
            (SET_PORT_ADDR, 0x13),
            (CREATE_CQ, 0x18),
            (DESTROY_CQ, 0x19),
            (RESIZE_CQ, 0x1A),
            (MODIFY_CQ, 0x1B),
            (CREATE_QP, 0x20),
            (MODIFY_QP, 0x21),
            (QUERY_QP, 0x22),
            (DESTROY_QP, 0x23),
            (REG_MR, 0x28),
            (DEREG_MR, 0x29),
            (ALLOC_FR_MR, 0x2A),
            (QUERY_MR, 0x2B),
            (SET_PORT_ADDR6, 0x14),
            (CM_LISTEN, 0x30),
            (CM_UNLISTEN, 0x31),
            (CM_CONNECT, 0x32),
            (CM_ACCEPT, 0x33),
            (CM_REJECT, 0x34),
            (CM_COMPLETE_CONNECT, 0x35),
            (CM_DISCONNECT, 0x36),
            (CM_QUERY, 0x37),
            (CM_RELEASE, 0x38),
            (CREATE_TXQ, 0x40),
            (DESTROY_TXQ, 0x41),
            (CREATE_RXQ, 0x42),
            (DESTROY_RXQ, 0x43),
        ];
        for (code, spec) in table {
            assert_eq!(code, spec);
        }
        assert_eq!(NOP_RESULT0.to_be_bytes(), *b"NOP\0");
    }

    /// Status table of §3.4.
    #[test]
    fn statuses_match_spec_3_4() {
        let codes: [u16; 10] = [0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];
        for (s, c) in AdminStatus::ALL.iter().zip(codes) {
            assert_eq!(s.code(), c);
            assert_eq!(AdminStatus::from_code(c), Some(*s));
        }
        assert_eq!(AdminStatus::from_code(0), None);
        assert_eq!(AdminStatus::from_code(0x18), None);
    }

    /// Command entry of §3.2: opcode 0, flags 1, id 2..4, reserved 4..8, operands 8..
    #[test]
    fn command_layout() {
        let mut c = CommandRepr::new(0x21, 0xBEEF);
        c.flags = 0x5A;
        c.reserved = 0x0102_0304;
        c.operands[0] = 0x77;
        c.operands[55] = 0x99;
        let b = c.to_bytes();
        assert_eq!(b[0], 0x21);
        assert_eq!(b[1], 0x5A);
        assert_eq!(b[2..4], [0xEF, 0xBE]);
        assert_eq!(b[4..8], [4, 3, 2, 1]);
        assert_eq!((b[8], b[63]), (0x77, 0x99));
        assert_eq!(CommandRepr::from_bytes(&b), c);
        assert!(Command::new_checked(&b[..63]).is_err());
    }

    /// Completion entry of §3.3: results, id at 8, head at 10, status at 12, phase
    /// in bit 0 of the word at 14.
    #[test]
    fn completion_layout() {
        let c = CompletionRepr {
            result0: 0x4E4F_5000,
            result1: 7,
            id: 0x1234,
            sq_head: 3,
            status: 0x14,
            phase: true,
        };
        let b = c.to_bytes();
        assert_eq!(b[0..4], [0x00, 0x50, 0x4F, 0x4E]);
        assert_eq!(b[4], 7);
        assert_eq!(b[8..10], [0x34, 0x12]);
        assert_eq!(b[10], 3);
        assert_eq!(b[12..14], [0x14, 0]);
        assert_eq!(b[14..16], [1, 0]);
        assert_eq!(CompletionRepr::from_bytes(&b), c);
        assert_eq!(completion_field::PHASE.start, 14);
        // Reserved bits above the phase bit are ignored.
        let d = CompletionRepr::from_dwords([0, 0, 0, 0xFFFE_0000]);
        assert!(!d.phase);
        let e = CompletionRepr::from_dwords([1, 2, 0x0003_0004, 0x0001_0005]);
        assert_eq!((e.id, e.sq_head, e.status, e.phase), (4, 3, 5, true));
    }

    /// Operand offsets of §3.11-§3.13 spot-checked against the spec tables.
    #[test]
    fn operand_layouts() {
        assert_eq!(operands::create_qp::SQ_BASE, 20..28);
        assert_eq!(operands::create_qp::FLAGS, 41);
        assert_eq!(operands::modify_qp::REMOTE_IPV4, 36..40);
        assert_eq!(operands::reg_mr::KEY_BYTE, 41);
        assert_eq!(operands::resize_cq::ENTRIES, 16..20);
        assert_eq!(query_device::PORT_IPV4, 60..64);
        assert_eq!(query_caps::ACCESS_BITS, 52..56);
        assert_eq!(query_qp::RQ_HEAD, 60..64);
        assert_eq!(query_mr::MAX_PAGES, 40..44);
    }

    /// Operand layouts of §3.10 and §3.14 (connection manager), copied independently.
    #[test]
    fn cm_operand_layouts() {
        use operands::*;
        assert_eq!(set_port_addr6::IPV6, 0..16);
        assert_eq!(
            (cm_listen::FAMILY, cm_listen::PORT, cm_listen::ADDR),
            (0, 2..4, 16..32)
        );
        assert_eq!(
            (
                cm_connect::QPN,
                cm_connect::FAMILY,
                cm_connect::RESPONDER_RESOURCES,
                cm_connect::INITIATOR_DEPTH,
                cm_connect::PRIVATE_DATA_LEN
            ),
            (0..4, 4, 5, 6, 7)
        );
        assert_eq!(
            (
                cm_connect::PRIVATE_DATA,
                cm_connect::LOCAL_ADDR,
                cm_connect::REMOTE_ADDR,
                cm_connect::REMOTE_PORT,
                cm_connect::LOCAL_PORT
            ),
            (8..16, 16..32, 32..48, 48..50, 50..52)
        );
        assert_eq!(
            (cm_accept::CONN, cm_accept::QPN, cm_accept::PRIVATE_DATA),
            (0..4, 4..8, 8..16)
        );
        assert_eq!(
            (
                cm_accept::PRIVATE_DATA_LEN,
                cm_accept::RESPONDER_RESOURCES,
                cm_accept::INITIATOR_DEPTH
            ),
            (16, 17, 18)
        );
        assert_eq!(
            (
                cm_reject::CONN,
                cm_reject::PRIVATE_DATA,
                cm_reject::PRIVATE_DATA_LEN
            ),
            (0..4, 8..16, 16)
        );
        assert_eq!(
            (cm_query::CONN, cm_query::LEN, cm_query::ADDR),
            (0..4, 4..8, 8..16)
        );
        assert_eq!(modify_qp::REMOTE_IPV6, 40..56);
        assert_eq!(query_device::PORT_IPV6, 64..80);
        assert_eq!(QUERY_DEVICE_EXT_SIZE, 96);
        assert_eq!(
            (
                crate::admin::query_caps::MAX_MW,
                crate::admin::query_caps::MAX_SRQ
            ),
            (56..58, 58..60)
        );
        assert_eq!(
            (
                crate::admin::query_caps::MAX_RD_ATOMIC,
                crate::admin::query_caps::MAX_LISTENERS,
                crate::admin::query_caps::MAX_CONNECTIONS
            ),
            (60, 61, 62..64)
        );
        assert_eq!(AdminStatus::AddressInUse.code(), 0x17);
    }
}
