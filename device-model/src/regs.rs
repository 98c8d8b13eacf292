//! BAR0 register map: offsets, bits and reset values. Mirrors `docs/device-spec.md` §2.
//!
//! All registers are 32 bits wide, accessed with aligned 32-bit accesses.

/// Size of BAR0 (control registers and doorbells).
pub const BAR0_SIZE: u64 = 0x1_0000;
/// Size of BAR2 (MSI-X table and PBA).
pub const BAR2_SIZE: u64 = 0x2000;

/// Interface version, major in 31:16, minor in 15:0.
pub const VERSION: u64 = 0x000;
/// Feature bits (see `caps`).
pub const CAPS: u64 = 0x004;
/// Device control (see `dev_ctrl`).
pub const DEV_CTRL: u64 = 0x008;
/// Device status (see `dev_status`).
pub const DEV_STATUS: u64 = 0x00C;
/// Cause of `DEV_STATUS.ADMIN_ERR` (see `admin_error`).
pub const ADMIN_ERROR: u64 = 0x010;
/// MAC address bytes 0..4 (byte 0 in bits 7:0).
pub const MAC_LO: u64 = 0x018;
/// MAC address bytes 4..6 in bits 15:0.
pub const MAC_HI: u64 = 0x01C;
/// Admin submission queue base, bits 31:0.
pub const ASQ_BASE_LO: u64 = 0x020;
/// Admin submission queue base, bits 63:32.
pub const ASQ_BASE_HI: u64 = 0x024;
/// Admin submission queue size in entries.
pub const ASQ_SIZE: u64 = 0x028;
/// Admin completion queue base, bits 31:0.
pub const ACQ_BASE_LO: u64 = 0x030;
/// Admin completion queue base, bits 63:32.
pub const ACQ_BASE_HI: u64 = 0x034;
/// Admin completion queue size in entries.
pub const ACQ_SIZE: u64 = 0x038;
/// Doorbell: driver's submission producer index.
pub const ASQ_TAIL: u64 = 0x040;
/// Device's submission consumer index.
pub const ASQ_HEAD: u64 = 0x044;
/// Driver's completion consumer index.
pub const ACQ_HEAD: u64 = 0x048;
/// Device's completion producer index.
pub const ACQ_TAIL: u64 = 0x04C;

/// Event queue base, bits 31:0.
pub const EQ_BASE_LO: u64 = 0x050;
/// Event queue base, bits 63:32.
pub const EQ_BASE_HI: u64 = 0x054;
/// Event queue size in entries (0 = no event queue).
pub const EQ_SIZE: u64 = 0x058;
/// Driver's event consumer index.
pub const EQ_HEAD: u64 = 0x05C;
/// Device's event producer index.
pub const EQ_TAIL: u64 = 0x060;

/// End (exclusive) of the control register block.
pub const CONTROL_END: u64 = 0x1000;
/// Start of the doorbell area.
pub const DOORBELL_START: u64 = 0x1000;

/// Value of the `VERSION` register.
pub const VERSION_VALUE: u32 = 0x0001_0000;

/// `CAPS` bits.
pub mod caps {
    /// The admin queue is implemented (always set).
    pub const ADMIN_QUEUE: u32 = 1 << 0;
    /// The asynchronous event queue (`EQ_*` registers) is implemented.
    pub const EVENT_QUEUE: u32 = 1 << 1;
    /// Ethernet TX/RX queues are implemented.
    pub const ETHERNET: u32 = 1 << 2;
    /// RDMA verbs (PD, MR, CQ, RC QP over RoCEv2) are implemented.
    pub const RDMA: u32 = 1 << 3;
    /// The `GET_STATS` admin command is implemented.
    pub const STATS: u32 = 1 << 4;
}

/// Value of the `CAPS` register.
pub const CAPS_VALUE: u32 =
    caps::ADMIN_QUEUE | caps::EVENT_QUEUE | caps::ETHERNET | caps::RDMA | caps::STATS;

/// `DEV_CTRL` bits.
pub mod dev_ctrl {
    /// Enable the device (latches and validates the admin rings on 0→1).
    pub const ENABLE: u32 = 1 << 0;
    /// Full device reset (write 1; reads 0).
    pub const RESET: u32 = 1 << 1;
}

/// `DEV_STATUS` bits.
pub mod dev_status {
    /// Enabled and the admin queue is live.
    pub const READY: u32 = 1 << 0;
    /// The device hit a fatal error.
    pub const FATAL: u32 = 1 << 1;
    /// The admin queue stopped on an error; the cause is in `ADMIN_ERROR`.
    pub const ADMIN_ERR: u32 = 1 << 2;
    /// The port's link is up.
    pub const LINK_UP: u32 = 1 << 3;
    /// An event was dropped because the event queue was full (until reset).
    pub const EQ_OVERFLOW: u32 = 1 << 4;
    /// The event queue could not be written and stopped (until reset).
    pub const EQ_ERROR: u32 = 1 << 5;
}

/// `ADMIN_ERROR` causes.
pub mod admin_error {
    /// No error.
    pub const NONE: u32 = 0;
    /// ASQ base misaligned or ring outside guest RAM.
    pub const BAD_ASQ: u32 = 1;
    /// ACQ base misaligned or ring outside guest RAM.
    pub const BAD_ACQ: u32 = 2;
    /// ASQ_SIZE or ACQ_SIZE not a power of two in 2..=4096.
    pub const BAD_SIZE: u32 = 3;
    /// A doorbell was rung while PCI bus mastering was off.
    pub const BUS_MASTER_DISABLED: u32 = 4;
    /// A ring access failed while running.
    pub const DMA_ERROR: u32 = 5;
    /// `ASQ_TAIL` written with a value >= `ASQ_SIZE`.
    pub const BAD_TAIL: u32 = 6;
    /// `ACQ_HEAD` written with a value >= `ACQ_SIZE`.
    pub const BAD_HEAD: u32 = 7;
    /// The event queue registers are invalid at enable, or `EQ_HEAD` was written
    /// with a bad value.
    pub const BAD_EQ: u32 = 8;
}

/// Admin submission entry size in bytes.
pub const ASQ_ENTRY_SIZE: u64 = 64;
/// Admin completion entry size in bytes.
pub const ACQ_ENTRY_SIZE: u64 = 16;
/// Required alignment of `ASQ_BASE`.
pub const ASQ_ALIGN: u64 = 64;
/// Required alignment of `ACQ_BASE`.
pub const ACQ_ALIGN: u64 = 16;
/// Smallest admin ring, in entries.
pub const ADMIN_RING_MIN: u32 = 2;
/// Largest admin ring, in entries.
pub const ADMIN_RING_MAX: u32 = 4096;

/// Number of MSI-X vectors.
pub const MSIX_VECTORS: u16 = 16;
/// Offset of the MSI-X table in BAR2.
pub const MSIX_TABLE_OFFSET: u64 = 0x0000;
/// Offset of the MSI-X PBA in BAR2.
pub const MSIX_PBA_OFFSET: u64 = 0x1000;
/// The vector used for admin completions and asynchronous events.
pub const ADMIN_VECTOR: u16 = 0;
