//! Pure driver logic over the device contract: admin command encoding and completion
//! decoding in the dword form the driver's volatile accesses use, completion-ring phase
//! tracking, and the BAR0 search in the resource list.
//!
//! Every number and byte layout comes from the `rnic-contract` crate (the device contract
//! as code, `docs/device-spec.md`); this module only adapts it to the driver's MMIO helpers
//! (`usize` offsets) and keeps the driver's own choices (ring sizes, the bring-up NOP id).
//!
//! No FFI and no MMIO here, so the module also compiles on the host: the
//! `artifact-check` crate includes this file (`#[path]`) and runs the tests below.

use ndis_abi::{CmResourceTypeMemory, CM_PARTIAL_RESOURCE_DESCRIPTOR};
use rnic_contract::admin::{self as contract, opcode, CommandRepr, CompletionRepr};
use rnic_contract::bar0;

/// BAR0 register offsets as the driver's `rd`/`wr` helpers take them (byte offsets into
/// the mapped BAR), and the register bits the driver tests. Values: `rnic_contract::bar0`
/// (docs/device-spec.md section 2).
pub mod reg {
    use rnic_contract::bar0::{self, dev_ctrl, dev_status};

    /// `VERSION`: major (31:16), minor (15:0).
    pub const VERSION: usize = bar0::VERSION as usize;
    /// `CAPS`: feature bits.
    pub const CAPS: usize = bar0::CAPS as usize;
    /// `DEV_CTRL`: enable and reset.
    pub const DEV_CTRL: usize = bar0::DEV_CTRL as usize;
    /// `DEV_STATUS`: ready, fatal, admin error, link.
    pub const DEV_STATUS: usize = bar0::DEV_STATUS as usize;
    /// `ADMIN_ERROR`: cause of `DEV_STATUS.ADMIN_ERR`.
    pub const ADMIN_ERROR: usize = bar0::ADMIN_ERROR as usize;
    /// Admin submission ring base, low half.
    pub const ASQ_BASE_LO: usize = bar0::ASQ_BASE_LO as usize;
    /// Admin submission ring base, high half.
    pub const ASQ_BASE_HI: usize = bar0::ASQ_BASE_HI as usize;
    /// Admin submission ring size in entries.
    pub const ASQ_SIZE: usize = bar0::ASQ_SIZE as usize;
    /// Admin completion ring base, low half.
    pub const ACQ_BASE_LO: usize = bar0::ACQ_BASE_LO as usize;
    /// Admin completion ring base, high half.
    pub const ACQ_BASE_HI: usize = bar0::ACQ_BASE_HI as usize;
    /// Admin completion ring size in entries.
    pub const ACQ_SIZE: usize = bar0::ACQ_SIZE as usize;
    /// Doorbell: submission producer index.
    pub const ASQ_TAIL: usize = bar0::ASQ_TAIL as usize;
    /// Device's submission consumer index.
    pub const ASQ_HEAD: usize = bar0::ASQ_HEAD as usize;
    /// Doorbell: completion consumer index.
    pub const ACQ_HEAD: usize = bar0::ACQ_HEAD as usize;
    /// Device's completion producer index.
    pub const ACQ_TAIL: usize = bar0::ACQ_TAIL as usize;
    /// `EQ_BASE_LO`.
    pub const EQ_BASE_LO: usize = bar0::EQ_BASE_LO as usize;
    /// `EQ_BASE_HI`.
    pub const EQ_BASE_HI: usize = bar0::EQ_BASE_HI as usize;
    /// `EQ_SIZE`.
    pub const EQ_SIZE: usize = bar0::EQ_SIZE as usize;
    /// `EQ_HEAD`.
    pub const EQ_HEAD: usize = bar0::EQ_HEAD as usize;

    /// `DEV_CTRL.ENABLE`.
    pub const DEV_CTRL_ENABLE: u32 = dev_ctrl::ENABLE;
    /// `DEV_CTRL.RESET`.
    pub const DEV_CTRL_RESET: u32 = dev_ctrl::RESET;
    /// `DEV_STATUS.READY`.
    pub const DEV_STATUS_READY: u32 = dev_status::READY;
    /// `DEV_STATUS.FATAL`.
    pub const DEV_STATUS_FATAL: u32 = dev_status::FATAL;
    /// `DEV_STATUS.ADMIN_ERR`.
    pub const DEV_STATUS_ADMIN_ERR: u32 = dev_status::ADMIN_ERR;
    /// `DEV_STATUS.LINK_UP`.
    pub const DEV_STATUS_LINK_UP: u32 = dev_status::LINK_UP;
}

/// Size of BAR0 in bytes, as `NdisMMapIoSpace` takes it; also how the BAR0 resource is
/// recognised.
pub const BAR0_LEN: u32 = rnic_contract::pci::BAR0_SIZE as u32;
/// Register-interface major version this driver speaks (`VERSION[31:16]`).
pub const SUPPORTED_MAJOR: u32 = bar0::VERSION_MAJOR;

/// Event ring entries the driver allocates (§4.1; a driver choice, 2..=4096).
pub const EQ_ENTRIES: u32 = 64;
/// Bytes of the event ring.
pub const EQ_BYTES: u32 = EQ_ENTRIES * rnic_contract::event::ENTRY_SIZE as u32;
/// Required event ring alignment.
pub const EQ_ALIGN: i64 = rnic_contract::event::ALIGN as i64;

/// Admin submission ring entries the driver allocates (a driver choice, 2..=4096).
pub const ASQ_ENTRIES: u32 = 16;
/// Admin completion ring entries the driver allocates (a driver choice, 2..=4096).
pub const ACQ_ENTRIES: u32 = 16;
/// Bytes per admin command.
pub const ASQ_ENTRY_BYTES: u32 = contract::COMMAND_SIZE as u32;
/// Bytes per admin completion.
pub const ACQ_ENTRY_BYTES: u32 = contract::COMPLETION_SIZE as u32;
/// Bytes of the submission ring allocation.
pub const ASQ_BYTES: u32 = ASQ_ENTRIES * ASQ_ENTRY_BYTES;
/// Bytes of the completion ring allocation.
pub const ACQ_BYTES: u32 = ACQ_ENTRIES * ACQ_ENTRY_BYTES;
/// Required alignment of the submission ring, as the allocator takes it.
pub const ASQ_ALIGN: i64 = contract::ASQ_ALIGN as i64;
/// Required alignment of the completion ring, as the allocator takes it.
pub const ACQ_ALIGN: i64 = contract::ACQ_ALIGN as i64;

/// The `NOP` opcode, sent at bring-up.
pub const OPCODE_NOP: u8 = opcode::NOP;
/// Command id of the bring-up NOP (a driver choice).
pub const NOP_COMMAND_ID: u16 = 1;
/// `result0` of a successful NOP: "NOP\0".
pub const NOP_RESULT0: u32 = contract::NOP_RESULT0;
/// Status of a successful admin command.
pub const ADMIN_STATUS_SUCCESS: u16 = contract::STATUS_SUCCESS;

/// Encodes an admin command as the 16 little-endian dwords (64 bytes) the driver writes to
/// the submission ring; `operands` are the 56 operand bytes as 14 dwords.
pub fn encode_command(opcode: u8, command_id: u16, operands: &[u32; 14]) -> [u32; 16] {
    let mut cmd = CommandRepr::new(opcode, command_id);
    for (chunk, w) in cmd.operands.chunks_exact_mut(4).zip(operands) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let bytes = cmd.to_bytes();
    let mut d = [0u32; 16];
    for (w, chunk) in d.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    d
}

/// A decoded admin completion entry, in the form the driver's completion handler uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminCompletion {
    /// Result 0 (opcode-specific).
    pub result0: u32,
    /// Result 1 (opcode-specific).
    pub result1: u32,
    /// The completed command's id.
    pub command_id: u16,
    /// `ASQ_HEAD` after the command was consumed.
    pub sq_head: u16,
    /// Status (0 = success).
    pub status: u16,
    /// Phase tag, 0 or 1.
    pub phase: u8,
}

impl AdminCompletion {
    /// Decodes the entry from its four little-endian dwords (the contract's layout).
    pub fn decode(d: [u32; 4]) -> Self {
        let c = CompletionRepr::from_dwords(d);
        Self {
            result0: c.result0,
            result1: c.result1,
            command_id: c.id,
            sq_head: c.sq_head,
            status: c.status,
            phase: u8::from(c.phase),
        }
    }

    /// True for the successful completion of the bring-up NOP.
    pub fn is_good_nop(&self) -> bool {
        self.command_id == NOP_COMMAND_ID
            && self.status == ADMIN_STATUS_SUCCESS
            && self.result0 == NOP_RESULT0
    }
}

/// The driver's consumer position in a completion ring: the next slot to read and the phase
/// tag a fresh entry carries there (1 on the first pass, inverted on every wrap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqCursor {
    /// Next slot to read.
    pub head: u32,
    /// Phase tag a fresh entry carries at `head`.
    pub phase: u8,
    /// Slots in the ring.
    pub entries: u32,
}

impl CqCursor {
    /// Cursor for a freshly zeroed ring of `entries` slots (`entries` >= 1).
    pub const fn new(entries: u32) -> Self {
        Self {
            head: 0,
            phase: 1,
            entries,
        }
    }

    /// True if an entry with this phase tag at `head` is new.
    pub fn is_new(&self, entry_phase: u8) -> bool {
        entry_phase == self.phase
    }

    /// Moves past the entry at `head`.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head >= self.entries {
            self.head = 0;
            self.phase ^= 1;
        }
    }
}

/// Index after `tail` in a ring of `entries` slots.
pub fn ring_next(tail: u32, entries: u32) -> u32 {
    if tail + 1 >= entries {
        0
    } else {
        tail + 1
    }
}

/// The command id of the one admin command an OID set may have in flight (the NOP uses
/// [`NOP_COMMAND_ID`]).
pub const OID_COMMAND_ID: u16 = 2;

/// OID handling that needs no hardware: which OIDs the driver answers, how a query is encoded
/// into the caller's buffer and how a set is validated and translated for the device
/// (docs/device-spec.md §3.7, §5.5).
pub mod oids {
    use ndis_abi::*;
    use rnic_contract::eth;

    /// Every OID the driver lists in its general attributes, in order (the 21 Ethernet OIDs,
    /// then the four NDK OIDs). Queries of each are answered from device registers or the
    /// driver's state; the settable ones are `OID_NDK_SET_STATE` (by `crate::oid`) and [`OID_GEN_CURRENT_PACKET_FILTER`], [`OID_802_3_MULTICAST_LIST`] and
    /// [`OID_GEN_CURRENT_LOOKAHEAD`].
    pub const SUPPORTED: [NDIS_OID; 25] = [
        OID_GEN_SUPPORTED_LIST,
        OID_GEN_HARDWARE_STATUS,
        OID_GEN_MEDIA_SUPPORTED,
        OID_GEN_MEDIA_IN_USE,
        OID_GEN_MAXIMUM_LOOKAHEAD,
        OID_GEN_MAXIMUM_FRAME_SIZE,
        OID_GEN_LINK_SPEED,
        OID_GEN_CURRENT_PACKET_FILTER,
        OID_GEN_CURRENT_LOOKAHEAD,
        OID_GEN_MAXIMUM_TOTAL_SIZE,
        OID_GEN_MAC_OPTIONS,
        OID_GEN_MEDIA_CONNECT_STATUS,
        OID_GEN_XMIT_OK,
        OID_GEN_RCV_OK,
        OID_GEN_XMIT_ERROR,
        OID_GEN_RCV_ERROR,
        OID_GEN_RCV_NO_BUFFER,
        OID_802_3_PERMANENT_ADDRESS,
        OID_802_3_CURRENT_ADDRESS,
        OID_802_3_MULTICAST_LIST,
        OID_802_3_MAXIMUM_LIST_SIZE,
        OID_NDK_SET_STATE,
        OID_NDK_STATISTICS,
        OID_NDK_CONNECTIONS,
        OID_NDK_LOCAL_ENDPOINTS,
    ];

    /// `NDIS_MAC_OPTION_*` bits the driver reports (also in its general attributes).
    pub const MAC_OPTIONS: u32 = NDIS_MAC_OPTION_COPY_LOOKAHEAD_DATA
        | NDIS_MAC_OPTION_TRANSFERS_NOT_PEND
        | NDIS_MAC_OPTION_NO_LOOPBACK;
    /// Packet filters the device implements (`NDIS_PACKET_TYPE_*`).
    pub const SUPPORTED_PACKET_FILTERS: u32 = NDIS_PACKET_TYPE_DIRECTED
        | NDIS_PACKET_TYPE_MULTICAST
        | NDIS_PACKET_TYPE_ALL_MULTICAST
        | NDIS_PACKET_TYPE_BROADCAST
        | NDIS_PACKET_TYPE_PROMISCUOUS;
    /// Size of one Ethernet address in `OID_802_3_*` buffers.
    pub const MAC_LEN: usize = 6;

    /// Everything a query may report, read by the caller from the device and its own state.
    #[derive(Clone, Copy, Debug)]
    pub struct AdapterView<'a> {
        /// Current MAC (`MAC_LO`/`MAC_HI`).
        pub mac: [u8; 6],
        /// Current MTU in bytes.
        pub mtu: u32,
        /// `DEV_STATUS.LINK_UP`.
        pub link_up: bool,
        /// The `NDIS_PACKET_TYPE_*` filter the device last acknowledged.
        pub packet_filter: u32,
        /// Current lookahead in bytes.
        pub lookahead: u32,
        /// The multicast list the device last acknowledged.
        pub multicast: &'a [[u8; 6]],
        /// Frames sent, received, failed to send, received with error, dropped for lack of a
        /// buffer (the order of `OID_GEN_XMIT_OK` .. `OID_GEN_RCV_NO_BUFFER`).
        pub counters: [u64; 5],
        /// Whether NDK is enabled (`OID_NDK_SET_STATE`).
        pub ndk_enabled: bool,
    }

    /// Outcome of a query or of a set's validation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum OidError {
        /// The OID is not one of [`SUPPORTED`] for this request type: `NDIS_STATUS_NOT_SUPPORTED`.
        NotSupported,
        /// The buffer is too short: `NDIS_STATUS_BUFFER_TOO_SHORT` (query) or
        /// `NDIS_STATUS_INVALID_LENGTH` (set), with `BytesNeeded`.
        TooShort {
            /// Bytes the request needs.
            needed: u32,
        },
        /// The set's data is malformed (a length that is not a whole number of entries, or a
        /// unicast address in the multicast list): `NDIS_STATUS_INVALID_DATA` /
        /// `NDIS_STATUS_INVALID_LENGTH`.
        Invalid(NDIS_STATUS),
    }

    impl OidError {
        /// The NDIS status for a query (`set` false) or a set (`set` true).
        pub fn status(self, set: bool) -> NDIS_STATUS {
            match self {
                OidError::NotSupported => NDIS_STATUS_NOT_SUPPORTED,
                OidError::TooShort { .. } if set => NDIS_STATUS_INVALID_LENGTH,
                OidError::TooShort { .. } => NDIS_STATUS_BUFFER_TOO_SHORT,
                OidError::Invalid(status) => status,
            }
        }

        /// `BytesNeeded` to report (0 unless the buffer was too short).
        pub fn bytes_needed(self) -> u32 {
            match self {
                OidError::TooShort { needed } => needed,
                _ => 0,
            }
        }
    }

    /// Link speed in the unit of `OID_GEN_LINK_SPEED` (100 bit/s); 0 when the link is down.
    pub fn link_speed_100bps(link_up: bool) -> u32 {
        if link_up {
            eth::LINK_SPEED_MBPS * 10_000
        } else {
            0
        }
    }

    /// Writes `bytes` to `out` if it fits; returns the byte count written.
    fn put(out: &mut [u8], bytes: &[u8]) -> Result<u32, OidError> {
        let needed = bytes.len() as u32;
        let Some(dst) = out.get_mut(..bytes.len()) else {
            return Err(OidError::TooShort { needed });
        };
        dst.copy_from_slice(bytes);
        Ok(needed)
    }

    /// A statistics counter: 8 bytes if the buffer holds them, else 4 (NDIS accepts both;
    /// the 32-bit form saturates), else too short (8 needed).
    fn put_counter(out: &mut [u8], value: u64) -> Result<u32, OidError> {
        if out.len() >= 8 {
            put(out, &value.to_le_bytes())
        } else if out.len() >= 4 {
            put(out, &(value.min(u32::MAX as u64) as u32).to_le_bytes())
        } else {
            Err(OidError::TooShort { needed: 8 })
        }
    }

    /// Answers a query of `oid` into `out`; returns `BytesWritten`.
    pub fn query(view: &AdapterView<'_>, oid: NDIS_OID, out: &mut [u8]) -> Result<u32, OidError> {
        let word = |out: &mut [u8], v: u32| put(out, &v.to_le_bytes());
        let max_frame = view.mtu;
        match oid {
            OID_GEN_SUPPORTED_LIST => {
                let needed = (SUPPORTED.len() * 4) as u32;
                if out.len() < needed as usize {
                    return Err(OidError::TooShort { needed });
                }
                for (dst, oid) in out.chunks_exact_mut(4).zip(SUPPORTED) {
                    dst.copy_from_slice(&oid.to_le_bytes());
                }
                Ok(needed)
            }
            OID_GEN_HARDWARE_STATUS => word(out, NdisHardwareStatusReady),
            OID_GEN_MEDIA_SUPPORTED | OID_GEN_MEDIA_IN_USE => word(out, NdisMedium802_3),
            OID_GEN_MAXIMUM_LOOKAHEAD => word(out, max_frame),
            OID_GEN_MAXIMUM_FRAME_SIZE => word(out, max_frame),
            OID_GEN_MAXIMUM_TOTAL_SIZE => word(out, max_frame + eth::ETH_HEADER as u32),
            OID_GEN_LINK_SPEED => word(out, link_speed_100bps(view.link_up)),
            OID_GEN_CURRENT_PACKET_FILTER => word(out, view.packet_filter),
            OID_GEN_CURRENT_LOOKAHEAD => word(out, view.lookahead),
            OID_GEN_MAC_OPTIONS => word(out, MAC_OPTIONS),
            OID_GEN_MEDIA_CONNECT_STATUS => word(
                out,
                if view.link_up {
                    NdisMediaStateConnected
                } else {
                    NdisMediaStateDisconnected
                },
            ),
            OID_GEN_XMIT_OK => put_counter(out, view.counters[0]),
            OID_GEN_RCV_OK => put_counter(out, view.counters[1]),
            OID_GEN_XMIT_ERROR => put_counter(out, view.counters[2]),
            OID_GEN_RCV_ERROR => put_counter(out, view.counters[3]),
            OID_GEN_RCV_NO_BUFFER => put_counter(out, view.counters[4]),
            OID_802_3_PERMANENT_ADDRESS | OID_802_3_CURRENT_ADDRESS => put(out, &view.mac),
            OID_802_3_MULTICAST_LIST => {
                let needed = (view.multicast.len() * MAC_LEN) as u32;
                if out.len() < needed as usize {
                    return Err(OidError::TooShort { needed });
                }
                for (dst, mac) in out.chunks_exact_mut(MAC_LEN).zip(view.multicast) {
                    dst.copy_from_slice(mac);
                }
                Ok(needed)
            }
            OID_802_3_MAXIMUM_LIST_SIZE => word(out, eth::MAX_MULTICAST as u32),
            // The NDK OIDs: the state as one BOOLEAN; statistics with no counter moving yet (no
            // connection manager; CQ-error and RDMA octet/frame counters are declared missing
            // in the capabilities); no connections and no local endpoints (a header with
            // Count 0: the two structures share the 0x10-byte header layout).
            OID_NDK_SET_STATE => put(out, &[view.ndk_enabled as u8]),
            OID_NDK_STATISTICS => {
                let mut b = [0u8; NDIS_SIZEOF_NDK_STATISTICS_INFO_REVISION_1 as usize];
                b[..4].copy_from_slice(&ndis_header(
                    NDIS_NDK_STATISTICS_INFO_REVISION_1,
                    NDIS_SIZEOF_NDK_STATISTICS_INFO_REVISION_1,
                ));
                put(out, &b)
            }
            OID_NDK_CONNECTIONS | OID_NDK_LOCAL_ENDPOINTS => {
                let size = ndis_sizeof_ndk_connections(0);
                let mut b = [0u8; 0x10];
                b[..4].copy_from_slice(&ndis_header(1, size as u16));
                put(out, &b[..size])
            }
            _ => Err(OidError::NotSupported),
        }
    }

    /// The bytes of an `NDIS_OBJECT_HEADER` of type `NDIS_OBJECT_TYPE_DEFAULT`.
    fn ndis_header(revision: u8, size: u16) -> [u8; 4] {
        let [lo, hi] = size.to_le_bytes();
        [NDIS_OBJECT_TYPE_DEFAULT, revision, lo, hi]
    }

    /// What a valid set asks for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum SetAction {
        /// `SET_RX_FILTER` with `device` bits; `ndis` is the filter to report once acknowledged.
        PacketFilter {
            /// `NDIS_PACKET_TYPE_*` bits as set.
            ndis: u32,
            /// The device's receive-filter bits (`rnic_contract::eth::filter`).
            device: u32,
        },
        /// `SET_MULTICAST` with this many 6-byte addresses from the input buffer.
        Multicast {
            /// Number of addresses (0..=64).
            count: usize,
        },
        /// A new lookahead (driver state only: the device has no lookahead setting, it always
        /// hands whole frames up).
        Lookahead(u32),
    }

    /// The device's receive-filter bits for an `NDIS_PACKET_TYPE_*` filter (§5.5).
    pub fn device_filter(ndis: u32) -> u32 {
        let map = [
            (NDIS_PACKET_TYPE_DIRECTED, eth::filter::UNICAST),
            (NDIS_PACKET_TYPE_BROADCAST, eth::filter::BROADCAST),
            (NDIS_PACKET_TYPE_MULTICAST, eth::filter::MULTICAST),
            (NDIS_PACKET_TYPE_ALL_MULTICAST, eth::filter::ALL_MULTICAST),
            (NDIS_PACKET_TYPE_PROMISCUOUS, eth::filter::PROMISCUOUS),
        ];
        map.iter()
            .filter(|(n, _)| ndis & n != 0)
            .fold(0, |acc, (_, d)| acc | d)
    }

    /// Validates a set of `oid` with input `data` against the device's limits (`mtu` bounds
    /// the lookahead); returns what to do, or the error to report with its `BytesNeeded`.
    pub fn parse_set(oid: NDIS_OID, data: &[u8], mtu: u32) -> Result<SetAction, OidError> {
        let word = |data: &[u8]| -> Result<u32, OidError> {
            let b = data.get(..4).ok_or(OidError::TooShort { needed: 4 })?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match oid {
            OID_GEN_CURRENT_PACKET_FILTER => {
                let ndis = word(data)?;
                if ndis & !SUPPORTED_PACKET_FILTERS != 0 {
                    return Err(OidError::NotSupported);
                }
                Ok(SetAction::PacketFilter {
                    ndis,
                    device: device_filter(ndis),
                })
            }
            OID_GEN_CURRENT_LOOKAHEAD => {
                let lookahead = word(data)?;
                if lookahead > mtu {
                    return Err(OidError::Invalid(NDIS_STATUS_INVALID_DATA));
                }
                Ok(SetAction::Lookahead(lookahead))
            }
            OID_802_3_MULTICAST_LIST => {
                if !data.len().is_multiple_of(MAC_LEN) {
                    return Err(OidError::Invalid(NDIS_STATUS_INVALID_LENGTH));
                }
                let count = data.len() / MAC_LEN;
                if count > eth::MAX_MULTICAST {
                    return Err(OidError::Invalid(NDIS_STATUS_MULTICAST_FULL));
                }
                // Bit 0 of the first byte marks a group address; the device refuses others.
                if data.chunks_exact(MAC_LEN).any(|mac| mac[0] & 1 == 0) {
                    return Err(OidError::Invalid(NDIS_STATUS_INVALID_DATA));
                }
                Ok(SetAction::Multicast { count })
            }
            _ => Err(OidError::NotSupported),
        }
    }
}

/// The Ethernet rings of docs/device-spec.md §5.2-§5.4 in the dword form the driver's
/// volatile accesses use: descriptor encoding and decoding (layouts from
/// `rnic_contract::eth`), queue-creation operands, frame-length limits and ring occupancy.
pub mod ethring {
    use rnic_contract::admin::operands::create_eth_queue;
    use rnic_contract::eth::{self, status, RxDescriptor, TxDescriptor, DESC_SIZE};

    /// Descriptors per TX and per RX ring (a power of two in 2..=4096).
    pub const RING_ENTRIES: u32 = 64;
    /// Bytes of one ring.
    pub const RING_BYTES: u32 = RING_ENTRIES * DESC_SIZE as u32;
    /// Bytes of one receive buffer: the largest frame at the default MTU (MTU + Ethernet
    /// header + one VLAN tag), rounded up to 64.
    pub const RX_BUFFER_BYTES: u32 = (eth::DEFAULT_MTU + 18).div_ceil(64) * 64;

    fn dwords(bytes: [u8; DESC_SIZE]) -> [u32; 4] {
        core::array::from_fn(|i| {
            u32::from_le_bytes([
                bytes[4 * i],
                bytes[4 * i + 1],
                bytes[4 * i + 2],
                bytes[4 * i + 3],
            ])
        })
    }

    fn bytes(d: [u32; 4]) -> [u8; DESC_SIZE] {
        let mut b = [0u8; DESC_SIZE];
        for (chunk, w) in b.chunks_exact_mut(4).zip(d) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// True if the device sends a frame of `len` bytes at this MTU (14..=MTU + 18, §5.4).
    pub fn tx_length_ok(len: usize, mtu: u32) -> bool {
        (eth::ETH_HEADER..=mtu as usize + eth::ETH_HEADER + eth::VLAN_TAG).contains(&len)
    }

    /// A TX descriptor for the frame at bus address `addr`, `len` bytes, status cleared.
    pub fn encode_tx(addr: u64, len: u16) -> [u32; 4] {
        let mut d = TxDescriptor::new_unchecked([0u8; DESC_SIZE]);
        d.set_addr(addr);
        d.set_len(len);
        dwords(d.into_inner())
    }

    /// A free RX descriptor for the buffer at `addr` of `len` bytes, status cleared.
    pub fn encode_rx(addr: u64, len: u16) -> [u32; 4] {
        let mut d = RxDescriptor::new_unchecked([0u8; DESC_SIZE]);
        d.set_addr(addr);
        d.set_buf_len(len);
        dwords(d.into_inner())
    }

    /// How the device finished a TX descriptor: None while not DONE, else Some(sent), where
    /// `sent` is false when the device flagged `ERROR` (length or buffer bad: not sent).
    pub fn tx_done(d: [u32; 4]) -> Option<bool> {
        let s = TxDescriptor::new_unchecked(bytes(d)).status();
        (s & status::DONE != 0).then_some(s & status::ERROR == 0)
    }

    /// A received frame as an RX descriptor reports it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RxFrame {
        /// Frame length in bytes (whole frame, no FCS).
        pub len: u16,
        /// Sent to the broadcast address.
        pub broadcast: bool,
        /// Sent to another group address.
        pub multicast: bool,
    }

    /// True once the device finished the RX descriptor (status `DONE`).
    pub fn rx_descriptor_done(d: [u32; 4]) -> bool {
        RxDescriptor::new_unchecked(bytes(d)).status() & status::DONE != 0
    }

    /// The frame an RX descriptor holds, None while it is not DONE or if the device claims a
    /// length beyond the buffer (never trusted: such a descriptor is recycled, not indicated).
    pub fn rx_done(d: [u32; 4]) -> Option<RxFrame> {
        let rx = RxDescriptor::new_unchecked(bytes(d));
        let s = rx.status();
        if s & status::DONE == 0 || rx.frame_len() > rx.buf_len() {
            return None;
        }
        Some(RxFrame {
            len: rx.frame_len(),
            broadcast: s & status::BROADCAST != 0,
            multicast: s & status::MULTICAST != 0,
        })
    }

    /// Operands of `CREATE_TXQ` / `CREATE_RXQ` (§3.8) as 14 dwords.
    pub fn create_queue_operands(base: u64, entries: u32, vector: u16, queue: u16) -> [u32; 14] {
        let mut o = [0u32; 14];
        o[create_eth_queue::BASE.start / 4] = base as u32;
        o[create_eth_queue::BASE.start / 4 + 1] = (base >> 32) as u32;
        o[create_eth_queue::SIZE.start / 4] = entries;
        o[create_eth_queue::VECTOR.start / 4] = u32::from(vector) | (u32::from(queue) << 16);
        o
    }

    /// A ring's producer (`tail`) and consumer (`head`) positions as the driver tracks them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Ring {
        /// Next descriptor the driver expects the device to finish.
        pub head: u32,
        /// Next descriptor the driver fills.
        pub tail: u32,
        /// Descriptors in the ring (a power of two).
        pub entries: u32,
    }

    impl Ring {
        /// An empty ring of `entries` descriptors.
        pub const fn new(entries: u32) -> Self {
            Self {
                head: 0,
                tail: 0,
                entries,
            }
        }

        /// Descriptors handed to the device and not yet finished.
        pub fn in_flight(&self) -> u32 {
            self.tail.wrapping_sub(self.head) & (self.entries - 1)
        }

        /// True if one more descriptor fits (one slot stays empty so that full != empty).
        pub fn has_room(&self) -> bool {
            self.in_flight() < self.entries - 1
        }

        /// Takes the slot at `tail`; returns its index.
        pub fn produce(&mut self) -> u32 {
            let slot = self.tail;
            self.tail = (self.tail + 1) & (self.entries - 1);
            slot
        }

        /// Retires the slot at `head`; returns its index.
        pub fn consume(&mut self) -> u32 {
            let slot = self.head;
            self.head = (self.head + 1) & (self.entries - 1);
            slot
        }
    }
}

/// Finds BAR0 among the translated resources: the `CmResourceTypeMemory` descriptor whose length
/// is 64 KiB. Returns its physical start.
pub fn find_bar0(descriptors: &[CM_PARTIAL_RESOURCE_DESCRIPTOR]) -> Option<i64> {
    descriptors.iter().find_map(|d| match d.memory_range() {
        Some((start, BAR0_LEN)) if d.Type == CmResourceTypeMemory => Some(start),
        _ => None,
    })
}

/// Splits a physical address into the (low, high) register halves.
pub fn split_phys(pa: i64) -> (u32, u32) {
    let v = pa as u64;
    (v as u32, (v >> 32) as u32)
}

/// The pure decisions of hang detection, reset and link indication (docs/device-spec.md §2.3,
/// §4.2, §5.6, §13): what `MiniportCheckForHangEx` reports, whether a device reset brought the
/// device back, and the `NDIS_LINK_STATE` a link event becomes. The driver's own choices (the
/// check period, how many checks without progress make a stall) live here too.
pub mod health {
    use ndis_abi::{
        MediaConnectStateConnected, MediaConnectStateDisconnected, MediaDuplexStateFull,
        MediaDuplexStateUnknown, NdisPauseFunctionsUnknown, NdisPauseFunctionsUnsupported,
        NDIS_LINK_SPEED_UNKNOWN, NDIS_LINK_STATE, NDIS_LINK_STATE_REVISION_1, NDIS_OBJECT_HEADER,
        NDIS_OBJECT_TYPE_DEFAULT, NDIS_SIZEOF_LINK_STATE_REVISION_1,
    };
    use rnic_contract::eth;

    /// What every BAR0 read returns while the device is fatal (§13.3) or gone.
    pub const ALL_ONES: u32 = u32::MAX;

    /// `CheckForHangTimeInSeconds`: NDIS calls `MiniportCheckForHangEx` every this many
    /// seconds.
    pub const CHECK_FOR_HANG_SECONDS: u32 = 2;

    /// Consecutive `MiniportCheckForHangEx` calls that must see outstanding work and no
    /// progress before the work counts as stalled: 2 calls, so a command or frame is declared
    /// stuck after 2 to 4 seconds (the device answers in microseconds; the driver's own admin
    /// waits give up after 2 s).
    pub const STALL_CHECKS: u32 = 2;

    /// True if a `DEV_STATUS` value says the device is fatal: the `FATAL` bit, or all ones
    /// (what a fatal device, or one that is gone, returns for every read).
    pub fn is_fatal(dev_status: u32) -> bool {
        dev_status == ALL_ONES || dev_status & super::reg::DEV_STATUS_FATAL != 0
    }

    /// True if the `DEV_STATUS` read right after a device reset shows a device that left the
    /// fatal state: §13.1 clears every register, so the reset device reads exactly 0.
    pub fn reset_took(dev_status: u32) -> bool {
        dev_status == 0
    }

    /// Watches one kind of work (admin commands, TX descriptors) across `MiniportCheckForHangEx`
    /// calls: stalled when work was outstanding and the progress counter did not move for
    /// [`STALL_CHECKS`] calls in a row.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProgressWatch {
        /// The progress counter at the last call.
        last: u32,
        /// Calls in a row that saw outstanding work and no progress.
        idle_checks: u32,
    }

    impl ProgressWatch {
        /// A watch that has seen nothing yet.
        pub const fn new() -> Self {
            ProgressWatch {
                last: 0,
                idle_checks: 0,
            }
        }

        /// One check: `outstanding` says whether work waits for the device, `progress` is a
        /// counter that moves whenever the device finishes some (it may wrap). Returns true
        /// once the work has been stuck for [`STALL_CHECKS`] checks.
        pub fn check(&mut self, outstanding: bool, progress: u32) -> bool {
            if !outstanding || progress != self.last {
                self.last = progress;
                self.idle_checks = 0;
                return false;
            }
            self.idle_checks = self.idle_checks.saturating_add(1);
            self.idle_checks >= STALL_CHECKS
        }
    }

    /// Why `MiniportCheckForHangEx` asks NDIS for a reset.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Hang {
        /// `DEV_STATUS` has the `FATAL` bit or reads all ones.
        DeviceFatal,
        /// `DEV_STATUS.ADMIN_ERR`: the device stopped the admin queue (§2.4); only a reset
        /// restarts it.
        AdminQueueStopped,
        /// An admin command has waited [`STALL_CHECKS`] checks without any completion.
        AdminStalled,
        /// Frames have waited on the TX ring [`STALL_CHECKS`] checks without any retiring.
        TxStalled,
    }

    impl Hang {
        /// A short name for the log line (`rnic: CheckForHangEx: hang: <name>`), NUL-terminated
        /// for `DbgPrint`'s `%s`.
        pub fn name(self) -> &'static core::ffi::CStr {
            match self {
                Hang::DeviceFatal => c"device fatal",
                Hang::AdminQueueStopped => c"admin queue stopped",
                Hang::AdminStalled => c"admin command stalled",
                Hang::TxStalled => c"TX ring stalled",
            }
        }
    }

    /// The verdict of one `MiniportCheckForHangEx`: the first cause that applies, most severe
    /// first, or None when the adapter is healthy.
    pub fn hang_cause(dev_status: u32, admin_stalled: bool, tx_stalled: bool) -> Option<Hang> {
        if is_fatal(dev_status) {
            Some(Hang::DeviceFatal)
        } else if dev_status & super::reg::DEV_STATUS_ADMIN_ERR != 0 {
            Some(Hang::AdminQueueStopped)
        } else if admin_stalled {
            Some(Hang::AdminStalled)
        } else if tx_stalled {
            Some(Hang::TxStalled)
        } else {
            None
        }
    }

    /// The `NDIS_LINK_STATE` for a link that is up (connected, full duplex, the port's
    /// 100 Gb/s both ways, no pause frames) or down (disconnected, speeds and duplex unknown).
    pub fn link_state(up: bool) -> NDIS_LINK_STATE {
        let speed = if up {
            u64::from(eth::LINK_SPEED_MBPS) * 1_000_000
        } else {
            NDIS_LINK_SPEED_UNKNOWN
        };
        NDIS_LINK_STATE {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_DEFAULT,
                NDIS_LINK_STATE_REVISION_1,
                NDIS_SIZEOF_LINK_STATE_REVISION_1,
            ),
            MediaConnectState: if up {
                MediaConnectStateConnected
            } else {
                MediaConnectStateDisconnected
            },
            MediaDuplexState: if up {
                MediaDuplexStateFull
            } else {
                MediaDuplexStateUnknown
            },
            XmitLinkSpeed: speed,
            RcvLinkSpeed: speed,
            PauseFunctions: if up {
                NdisPauseFunctionsUnsupported
            } else {
                NdisPauseFunctionsUnknown
            },
            AutoNegotiationFlags: 0,
        }
    }

    /// Link state the driver reports (`LINK_DOWN`/`LINK_UP` encoded as 0/1; [`LINK_UNKNOWN`]
    /// before the first report).
    pub const LINK_UNKNOWN: u32 = 2;

    /// Whether a link event must be indicated: only when it changes what was last reported
    /// (`reported` is 0 down, 1 up, [`LINK_UNKNOWN`]). A device reset drops the link silently
    /// and the next enable posts `LINK_UP` again (§13.1), which changes nothing for NDIS.
    pub fn link_changes(reported: u32, up: bool) -> bool {
        reported != u32::from(up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_is_the_fatal_bit_or_all_ones() {
        assert!(health::is_fatal(0xFFFF_FFFF));
        assert!(health::is_fatal(
            reg::DEV_STATUS_FATAL | reg::DEV_STATUS_READY
        ));
        assert!(!health::is_fatal(
            reg::DEV_STATUS_READY | reg::DEV_STATUS_LINK_UP
        ));
        assert!(!health::is_fatal(0));
        // §13.1: a reset device reads 0; anything else (still all ones) did not recover.
        assert!(health::reset_took(0));
        assert!(!health::reset_took(0xFFFF_FFFF));
        assert!(!health::reset_took(reg::DEV_STATUS_READY));
    }

    #[test]
    fn a_watch_reports_a_stall_only_after_two_checks_without_progress() {
        let mut w = health::ProgressWatch::new();
        // Nothing outstanding: never a stall, however long the counter stands still.
        for _ in 0..5 {
            assert!(!w.check(false, 7));
        }
        // Outstanding work, counter still: stalled at the second check.
        assert!(!w.check(true, 7));
        assert!(w.check(true, 7));
        assert!(w.check(true, 7));
        // Progress (even a wrap) clears it.
        assert!(!w.check(true, 8));
        assert!(!w.check(true, 8));
        assert!(w.check(true, 8));
        let mut w = health::ProgressWatch::new();
        assert!(!w.check(true, u32::MAX));
        assert!(!w.check(true, 0));
        // Work that finished between two checks resets the count too.
        assert!(!w.check(true, 0));
        assert!(!w.check(false, 0));
        assert!(!w.check(true, 0));
    }

    #[test]
    fn hang_causes_come_most_severe_first() {
        use health::{hang_cause, Hang};
        let healthy = reg::DEV_STATUS_READY | reg::DEV_STATUS_LINK_UP;
        assert_eq!(hang_cause(healthy, false, false), None);
        assert_eq!(hang_cause(0xFFFF_FFFF, true, true), Some(Hang::DeviceFatal));
        assert_eq!(
            hang_cause(reg::DEV_STATUS_FATAL, false, false),
            Some(Hang::DeviceFatal)
        );
        assert_eq!(
            hang_cause(reg::DEV_STATUS_ADMIN_ERR, true, true),
            Some(Hang::AdminQueueStopped)
        );
        assert_eq!(hang_cause(healthy, true, true), Some(Hang::AdminStalled));
        assert_eq!(hang_cause(healthy, false, true), Some(Hang::TxStalled));
        assert_eq!(Hang::DeviceFatal.name(), c"device fatal");
    }

    #[test]
    fn link_states_carry_speed_and_duplex_only_when_up() {
        let up = health::link_state(true);
        assert_eq!(up.Header.Type, 0x80);
        assert_eq!(up.Header.Revision, 1);
        assert_eq!(up.Header.Size, 0x28);
        assert_eq!(up.MediaConnectState, 1);
        assert_eq!(up.MediaDuplexState, 2);
        // 100 Gb/s (§5.6: QUERY_LINK reports 100000 Mb/s) in bits per second.
        assert_eq!(up.XmitLinkSpeed, 100_000_000_000);
        assert_eq!(up.RcvLinkSpeed, 100_000_000_000);
        let down = health::link_state(false);
        assert_eq!(down.MediaConnectState, 2);
        assert_eq!(down.MediaDuplexState, 0);
        assert_eq!(down.XmitLinkSpeed, u64::MAX);
        assert_eq!(down.RcvLinkSpeed, u64::MAX);
    }

    #[test]
    fn only_link_changes_are_indicated() {
        use health::{link_changes, LINK_UNKNOWN};
        assert!(link_changes(LINK_UNKNOWN, true));
        assert!(link_changes(LINK_UNKNOWN, false));
        assert!(link_changes(1, false));
        assert!(link_changes(0, true));
        assert!(!link_changes(1, true));
        assert!(!link_changes(0, false));
    }

    #[test]
    fn nop_encoding() {
        let d = encode_command(OPCODE_NOP, NOP_COMMAND_ID, &[0; 14]);
        let mut bytes = [0u8; 64];
        for (i, w) in d.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(bytes[0], OPCODE_NOP);
        assert_eq!(bytes[1], 0, "flags are RsvdZ");
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), NOP_COMMAND_ID);
        assert!(bytes[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn operands_land_at_offset_8() {
        let mut ops = [0u32; 14];
        ops[0] = 0xAABB_CCDD;
        ops[13] = 7;
        let d = encode_command(0x12, 0x3456, &ops);
        assert_eq!(d[0], 0x3456_0012);
        assert_eq!(d[1], 0);
        assert_eq!(d[2], 0xAABB_CCDD);
        assert_eq!(d[15], 7);
    }

    #[test]
    fn completion_decoding() {
        // result0, result1, cmd id 1 | sq head 1 << 16, status 0 | phase 1 << 16
        let c = AdminCompletion::decode([NOP_RESULT0, 0, 0x0001_0001, 0x0001_0000]);
        assert_eq!(c.command_id, 1);
        assert_eq!(c.sq_head, 1);
        assert_eq!(c.status, 0);
        assert_eq!(c.phase, 1);
        assert!(c.is_good_nop());
        let bad = AdminCompletion::decode([NOP_RESULT0, 0, 1, 0x0001_0001]);
        assert_eq!(bad.status, 1);
        assert!(!bad.is_good_nop());
        let wrong_result = AdminCompletion::decode([0, 0, 1, 0x0001_0000]);
        assert!(!wrong_result.is_good_nop());
        // Reserved bits above the phase bit are ignored.
        assert_eq!(AdminCompletion::decode([0, 0, 0, 0xFFFE_0000]).phase, 0);
    }

    #[test]
    fn cursor_phase_inverts_on_wrap() {
        let mut c = CqCursor::new(2);
        assert!(c.is_new(1));
        assert!(!c.is_new(0), "zeroed slot is not new");
        c.advance();
        assert_eq!((c.head, c.phase), (1, 1));
        c.advance();
        assert_eq!((c.head, c.phase), (0, 0));
        assert!(c.is_new(0));
        assert!(!c.is_new(1), "last pass's entry is stale");
        c.advance();
        c.advance();
        assert_eq!((c.head, c.phase), (0, 1));
    }

    #[test]
    fn ring_next_wraps() {
        assert_eq!(ring_next(0, 16), 1);
        assert_eq!(ring_next(15, 16), 0);
    }

    #[test]
    fn bar0_search() {
        let ds = [
            CM_PARTIAL_RESOURCE_DESCRIPTOR::message_interrupt(0x40, 5, 1),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC001_0000, 0x2000, 0),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0xC000_0000, BAR0_LEN, 0),
        ];
        assert_eq!(find_bar0(&ds), Some(0xC000_0000));
        assert_eq!(find_bar0(&ds[..2]), None);
        assert_eq!(find_bar0(&[]), None);
    }

    #[test]
    fn phys_split() {
        assert_eq!(split_phys(0x1_2345_6780), (0x2345_6780, 1));
        assert_eq!(split_phys(0x8000), (0x8000, 0));
    }

    fn view(multicast: &[[u8; 6]]) -> oids::AdapterView<'_> {
        oids::AdapterView {
            mac: [2, 0x7e, 0x57, 0, 0, 1],
            mtu: 1500,
            link_up: true,
            packet_filter: 0x9,
            lookahead: 256,
            multicast,
            counters: [5, 4, 3, 2, u64::MAX],
            ndk_enabled: true,
        }
    }

    #[test]
    fn ndk_oid_queries() {
        use ndis_abi::{
            OID_NDK_CONNECTIONS, OID_NDK_LOCAL_ENDPOINTS, OID_NDK_SET_STATE, OID_NDK_STATISTICS,
        };
        let v = view(&[]);
        let mut buf = [0u8; 0x100];
        assert_eq!(oids::query(&v, OID_NDK_SET_STATE, &mut buf), Ok(1));
        assert_eq!(buf[0], 1);
        assert_eq!(oids::query(&v, OID_NDK_STATISTICS, &mut buf), Ok(0xF8));
        assert_eq!(&buf[..4], &[0x80, 1, 0xF8, 0]);
        assert!(buf[4..0xF8].iter().all(|b| *b == 0));
        assert_eq!(oids::query(&v, OID_NDK_CONNECTIONS, &mut buf), Ok(0x10));
        assert_eq!(&buf[..4], &[0x80, 1, 0x10, 0]);
        assert_eq!(oids::query(&v, OID_NDK_LOCAL_ENDPOINTS, &mut buf), Ok(0x10));
        let mut short = [0u8; 8];
        assert_eq!(
            oids::query(&v, OID_NDK_STATISTICS, &mut short),
            Err(oids::OidError::TooShort { needed: 0xF8 })
        );
    }

    #[test]
    fn supported_oids_are_distinct_and_each_answers() {
        use ndis_abi::NDIS_STATUS_NOT_SUPPORTED;
        let list = [[0x01, 0, 0x5e, 0, 0, 1]];
        let v = view(&list);
        for (i, a) in oids::SUPPORTED.iter().enumerate() {
            assert!(!oids::SUPPORTED[i + 1..].contains(a), "{a:#x} listed twice");
            let mut buf = [0u8; 256];
            let written = oids::query(&v, *a, &mut buf).unwrap_or_else(|e| panic!("{a:#x}: {e:?}"));
            assert!(written > 0, "{a:#x} wrote nothing");
        }
        let mut buf = [0u8; 4];
        let unknown = oids::query(&v, 0x0001_010C, &mut buf).unwrap_err();
        assert_eq!(unknown.status(false), NDIS_STATUS_NOT_SUPPORTED);
    }

    #[test]
    fn queries_report_the_view() {
        let list = [[0x01, 0, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]];
        let v = view(&list);
        let mut buf = [0u8; 64];
        assert_eq!(
            oids::query(&v, ndis_abi::OID_802_3_CURRENT_ADDRESS, &mut buf),
            Ok(6)
        );
        assert_eq!(buf[..6], [2, 0x7e, 0x57, 0, 0, 1]);
        assert_eq!(
            oids::query(&v, ndis_abi::OID_GEN_LINK_SPEED, &mut buf),
            Ok(4)
        );
        // 100 Gb/s in units of 100 bit/s.
        assert_eq!(
            u32::from_le_bytes(buf[..4].try_into().unwrap()),
            1_000_000_000
        );
        assert_eq!(
            oids::query(&v, ndis_abi::OID_802_3_MULTICAST_LIST, &mut buf),
            Ok(12)
        );
        assert_eq!(buf[6..12], [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(
            oids::query(&v, ndis_abi::OID_GEN_MAXIMUM_TOTAL_SIZE, &mut buf),
            Ok(4)
        );
        assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), 1514);
        // Counters: 64-bit when the buffer allows, 32-bit saturated otherwise.
        assert_eq!(
            oids::query(&v, ndis_abi::OID_GEN_RCV_NO_BUFFER, &mut buf),
            Ok(8)
        );
        let mut small = [0u8; 4];
        assert_eq!(
            oids::query(&v, ndis_abi::OID_GEN_RCV_NO_BUFFER, &mut small),
            Ok(4)
        );
        assert_eq!(small, [0xff; 4]);
    }

    #[test]
    fn short_buffers_report_bytes_needed() {
        use ndis_abi::*;
        let v = view(&[]);
        let mut buf = [0u8; 3];
        let e = oids::query(&v, OID_GEN_MAXIMUM_FRAME_SIZE, &mut buf).unwrap_err();
        assert_eq!(
            (e.status(false), e.bytes_needed()),
            (NDIS_STATUS_BUFFER_TOO_SHORT, 4)
        );
        let e = oids::query(&v, OID_GEN_XMIT_OK, &mut buf).unwrap_err();
        assert_eq!(e.bytes_needed(), 8);
        let e = oids::query(&v, OID_GEN_SUPPORTED_LIST, &mut [0u8; 8]).unwrap_err();
        assert_eq!(e.bytes_needed(), 4 * oids::SUPPORTED.len() as u32);
        let e = oids::parse_set(OID_GEN_CURRENT_PACKET_FILTER, &[1, 0], 1500).unwrap_err();
        assert_eq!(
            (e.status(true), e.bytes_needed()),
            (NDIS_STATUS_INVALID_LENGTH, 4)
        );
    }

    #[test]
    fn sets_are_validated_and_translated() {
        use ndis_abi::*;
        let f = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST | NDIS_PACKET_TYPE_MULTICAST;
        // Device bits per docs/device-spec.md §5.5: unicast 0, broadcast 1, multicast 2.
        assert_eq!(
            oids::parse_set(OID_GEN_CURRENT_PACKET_FILTER, &f.to_le_bytes(), 1500),
            Ok(oids::SetAction::PacketFilter {
                ndis: f,
                device: 0b111
            })
        );
        assert_eq!(oids::device_filter(NDIS_PACKET_TYPE_PROMISCUOUS), 1 << 4);
        assert_eq!(oids::device_filter(NDIS_PACKET_TYPE_ALL_MULTICAST), 1 << 3);
        // NDIS_PACKET_TYPE_SMT (0x40) is not implemented.
        let e = oids::parse_set(OID_GEN_CURRENT_PACKET_FILTER, &0x40u32.to_le_bytes(), 1500);
        assert_eq!(e, Err(oids::OidError::NotSupported));
        let two = [0x01, 0, 0x5e, 0, 0, 1, 0x01, 0, 0x5e, 0, 0, 2];
        assert_eq!(
            oids::parse_set(OID_802_3_MULTICAST_LIST, &two, 1500),
            Ok(oids::SetAction::Multicast { count: 2 })
        );
        let unicast = [0x02, 0, 0x5e, 0, 0, 1];
        assert_eq!(
            oids::parse_set(OID_802_3_MULTICAST_LIST, &unicast, 1500),
            Err(oids::OidError::Invalid(NDIS_STATUS_INVALID_DATA))
        );
        assert_eq!(
            oids::parse_set(OID_802_3_MULTICAST_LIST, &two[..7], 1500),
            Err(oids::OidError::Invalid(NDIS_STATUS_INVALID_LENGTH))
        );
        let too_many = [0x01u8; 6 * 65];
        assert_eq!(
            oids::parse_set(OID_802_3_MULTICAST_LIST, &too_many, 1500),
            Err(oids::OidError::Invalid(NDIS_STATUS_MULTICAST_FULL))
        );
        assert_eq!(
            oids::parse_set(OID_GEN_CURRENT_LOOKAHEAD, &128u32.to_le_bytes(), 1500),
            Ok(oids::SetAction::Lookahead(128))
        );
        assert!(oids::parse_set(OID_GEN_CURRENT_LOOKAHEAD, &1501u32.to_le_bytes(), 1500).is_err());
        assert_eq!(
            oids::parse_set(OID_GEN_LINK_SPEED, &[0; 4], 1500),
            Err(oids::OidError::NotSupported)
        );
    }

    #[test]
    fn tx_and_rx_descriptors_follow_the_spec() {
        // §5.4 byte offsets, independently: TX addr 0..8, len 8..10, status 11;
        // RX addr 0..8, buffer 8..10, frame 10..12, status 13.
        let tx = ethring::encode_tx(0x1_2345_6780, 60);
        assert_eq!(tx, [0x2345_6780, 1, 60, 0]);
        assert_eq!(ethring::tx_done(tx), None);
        assert_eq!(ethring::tx_done([0, 0, 60 | (1 << 24), 0]), Some(true));
        assert_eq!(ethring::tx_done([0, 0, 60 | (3 << 24), 0]), Some(false));
        let rx = ethring::encode_rx(0x8000, 1536);
        assert_eq!(rx, [0x8000, 0, 1536, 0]);
        assert_eq!(ethring::rx_done(rx), None);
        assert!(!ethring::rx_descriptor_done(rx));
        let done = [0x8000, 0, 1536 | (60 << 16), (1 | 4) << 8];
        assert_eq!(
            ethring::rx_done(done),
            Some(ethring::RxFrame {
                len: 60,
                broadcast: true,
                multicast: false
            })
        );
        // A frame longer than its buffer is never trusted.
        assert!(ethring::rx_descriptor_done([
            0x8000,
            0,
            64 | (65 << 16),
            1 << 8
        ]));
        assert_eq!(ethring::rx_done([0x8000, 0, 64 | (65 << 16), 1 << 8]), None);
    }

    #[test]
    fn frame_limits_and_queue_operands() {
        assert!(!ethring::tx_length_ok(13, 1500));
        assert!(ethring::tx_length_ok(14, 1500));
        assert!(ethring::tx_length_ok(1518, 1500));
        assert!(!ethring::tx_length_ok(1519, 1500));
        const { assert!(ethring::RX_BUFFER_BYTES >= 1518) };
        // §3.8: base 0..8, size 8..12, vector 12..14, queue id 14..16.
        let o = ethring::create_queue_operands(0x1_0000_2000, 64, 3, 5);
        assert_eq!(o[..4], [0x2000, 1, 64, 3 | (5 << 16)]);
    }

    #[test]
    fn ring_occupancy_wraps() {
        let mut r = ethring::Ring::new(4);
        assert_eq!(r.in_flight(), 0);
        for expected in 0..3 {
            assert!(r.has_room());
            assert_eq!(r.produce(), expected);
        }
        assert!(!r.has_room(), "one slot stays free");
        assert_eq!(r.consume(), 0);
        assert!(r.has_room());
        assert_eq!(r.produce(), 3);
        assert_eq!(r.in_flight(), 3);
        assert!(!r.has_room());
        assert_eq!((r.consume(), r.consume()), (1, 2));
        assert_eq!(r.produce(), 0, "the tail wraps");
        assert_eq!(r.in_flight(), 2);
    }
}
