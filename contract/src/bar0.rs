//! BAR0: control registers, their bits, `ADMIN_ERROR` causes and the doorbell map
//! (`docs/device-spec.md` §2, §3.6, §5.3, §8.5, §9.3).
//!
//! Offsets are `u64` byte offsets into BAR0. Every register and doorbell is 32 bits
//! wide and is accessed with aligned 32-bit accesses.

/// Interface version, major in 31:16, minor in 15:0 (§2.2).
pub const VERSION: u64 = 0x000;
/// Feature bits, see [`caps`] (§2.2, §2.3).
pub const CAPS: u64 = 0x004;
/// Device control, see [`dev_ctrl`] (§2.2).
pub const DEV_CTRL: u64 = 0x008;
/// Device status, see [`dev_status`] (§2.2, §2.3).
pub const DEV_STATUS: u64 = 0x00C;
/// Cause of `DEV_STATUS.ADMIN_ERR`, see [`admin_error`] (§3.6).
pub const ADMIN_ERROR: u64 = 0x010;
/// Ethernet MAC address bytes 0..4, byte 0 in bits 7:0.
pub const MAC_LO: u64 = 0x018;
/// Ethernet MAC address bytes 4..6 in bits 15:0.
pub const MAC_HI: u64 = 0x01C;
/// Admin submission ring base, bits 31:0 (64-byte aligned).
pub const ASQ_BASE_LO: u64 = 0x020;
/// Admin submission ring base, bits 63:32.
pub const ASQ_BASE_HI: u64 = 0x024;
/// Admin submission ring size in entries (power of two, 2..=4096).
pub const ASQ_SIZE: u64 = 0x028;
/// Admin completion ring base, bits 31:0 (16-byte aligned).
pub const ACQ_BASE_LO: u64 = 0x030;
/// Admin completion ring base, bits 63:32.
pub const ACQ_BASE_HI: u64 = 0x034;
/// Admin completion ring size in entries (power of two, 2..=4096).
pub const ACQ_SIZE: u64 = 0x038;
/// Doorbell: the driver's submission producer index.
pub const ASQ_TAIL: u64 = 0x040;
/// The device's submission consumer index (read-only).
pub const ASQ_HEAD: u64 = 0x044;
/// Doorbell: the driver's completion consumer index.
pub const ACQ_HEAD: u64 = 0x048;
/// The device's completion producer index (read-only).
pub const ACQ_TAIL: u64 = 0x04C;
/// Event ring base, bits 31:0 (16-byte aligned) (§4.1).
pub const EQ_BASE_LO: u64 = 0x050;
/// Event ring base, bits 63:32.
pub const EQ_BASE_HI: u64 = 0x054;
/// Event ring size in entries (0 = no event ring, else power of two 2..=4096).
pub const EQ_SIZE: u64 = 0x058;
/// Doorbell: the driver's event consumer index.
pub const EQ_HEAD: u64 = 0x05C;
/// The device's event producer index (read-only).
pub const EQ_TAIL: u64 = 0x060;

/// End (exclusive) of the control register block (§2.1).
pub const CONTROL_END: u64 = 0x1000;
/// Start of the doorbell area; every doorbell write is ignored while disabled (§2.1).
pub const DOORBELL_START: u64 = 0x1000;

/// Value of the `VERSION` register: interface 1.0.
pub const VERSION_VALUE: u32 = 0x0001_0000;
/// The major version a driver for this contract accepts (`VERSION[31:16]`).
pub const VERSION_MAJOR: u32 = VERSION_VALUE >> 16;

/// `CAPS` bits (§2.3).
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

/// Value of the `CAPS` register in version 1.0: every feature.
pub const CAPS_VALUE: u32 =
    caps::ADMIN_QUEUE | caps::EVENT_QUEUE | caps::ETHERNET | caps::RDMA | caps::STATS;

/// `DEV_CTRL` bits (§2.2, §2.4).
pub mod dev_ctrl {
    /// Enable the device (latches and validates the rings on 0→1; 1→0 resets).
    pub const ENABLE: u32 = 1 << 0;
    /// Full device reset (write 1; reads 0).
    pub const RESET: u32 = 1 << 1;
}

/// `DEV_STATUS` bits (§2.3).
pub mod dev_status {
    /// Enabled and the admin queue is live.
    pub const READY: u32 = 1 << 0;
    /// The device is in the fatal state (the register then reads all ones).
    pub const FATAL: u32 = 1 << 1;
    /// The admin queue stopped on an error; the cause is in `ADMIN_ERROR`.
    pub const ADMIN_ERR: u32 = 1 << 2;
    /// The port's link is up.
    pub const LINK_UP: u32 = 1 << 3;
    /// An event was dropped because the event ring was full (sticky until reset).
    pub const EQ_OVERFLOW: u32 = 1 << 4;
    /// The event ring could not be written and stopped (sticky until reset).
    pub const EQ_ERROR: u32 = 1 << 5;
}

/// `ADMIN_ERROR` causes (§3.6). Not command statuses: they stop the admin queue.
pub mod admin_error {
    /// No error.
    pub const NONE: u32 = 0;
    /// ASQ base misaligned or ring outside guest RAM.
    pub const BAD_ASQ: u32 = 1;
    /// ACQ base misaligned or ring outside guest RAM.
    pub const BAD_ACQ: u32 = 2;
    /// `ASQ_SIZE` or `ACQ_SIZE` not a power of two in 2..=4096.
    pub const BAD_SIZE: u32 = 3;
    /// An admin doorbell or ring access while PCI bus mastering was off.
    pub const BUS_MASTER_DISABLED: u32 = 4;
    /// An admin ring access failed while running.
    pub const DMA_ERROR: u32 = 5;
    /// `ASQ_TAIL` written with a value ≥ `ASQ_SIZE`.
    pub const BAD_TAIL: u32 = 6;
    /// `ACQ_HEAD` out of range or past `ACQ_TAIL`.
    pub const BAD_HEAD: u32 = 7;
    /// Invalid event ring registers at enable, or a bad `EQ_HEAD`.
    pub const BAD_EQ: u32 = 8;
}

/// Ethernet queue doorbells (§5.3): queue `q` has a 16-byte block at
/// `ETH_BASE + ETH_STRIDE·q`.
pub mod eth_db {
    /// First Ethernet doorbell.
    pub const ETH_BASE: u64 = 0x1000;
    /// End (exclusive) of the Ethernet doorbell window.
    pub const ETH_END: u64 = 0x2000;
    /// Bytes per queue block.
    pub const ETH_STRIDE: u64 = 16;
    /// TX producer index (RW), relative to the queue block.
    pub const TXQ_TAIL: u64 = 0x0;
    /// TX consumer index (RO).
    pub const TXQ_HEAD: u64 = 0x4;
    /// RX producer index (RW).
    pub const RXQ_TAIL: u64 = 0x8;
    /// RX consumer index (RO).
    pub const RXQ_HEAD: u64 = 0xC;

    /// BAR0 offset of queue `q`'s block.
    pub const fn queue_block(q: u32) -> u64 {
        ETH_BASE + ETH_STRIDE * q as u64
    }
}

/// Verbs doorbells (§8.5, §9.3). Verbs doorbells always read 0.
pub mod verbs_db {
    /// QP doorbells: `QP_BASE + 8·qpn` = SQ producer count, `+ 4` = RQ producer count.
    pub const QP_BASE: u64 = 0x2000;
    /// End (exclusive) of the QP doorbell window.
    pub const QP_END: u64 = 0x8000;
    /// CQ doorbells: `CQ_BASE + 8·cqn` = consumer count, `+ 4` = arm.
    pub const CQ_BASE: u64 = 0x8000;
    /// End (exclusive) of the CQ doorbell window.
    pub const CQ_END: u64 = 0x1_0000;
    /// Bytes per QP or CQ doorbell pair.
    pub const STRIDE: u64 = 8;
    /// Offset of the second doorbell of a pair (RQ producer count, CQ arm).
    pub const SECOND: u64 = 4;
    /// Highest QPN that has a doorbell.
    pub const MAX_QPN: u32 = ((QP_END - QP_BASE) / STRIDE - 1) as u32;
    /// Highest CQN that has a doorbell.
    pub const MAX_CQN: u32 = ((CQ_END - CQ_BASE) / STRIDE - 1) as u32;
    /// CQ arm value: interrupt on the next completion.
    pub const ARM_NEXT: u32 = 1;
    /// CQ arm value: interrupt on the next solicited or error completion.
    pub const ARM_SOLICITED: u32 = 2;

    /// BAR0 offset of QP `qpn`'s SQ doorbell (its RQ doorbell is 4 bytes further).
    pub const fn sq_doorbell(qpn: u32) -> u64 {
        QP_BASE + STRIDE * qpn as u64
    }

    /// BAR0 offset of CQ `cqn`'s consumer-count doorbell (its arm doorbell is 4
    /// bytes further).
    pub const fn cq_doorbell(cqn: u32) -> u64 {
        CQ_BASE + STRIDE * cqn as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers copied independently from docs/device-spec.md §2.1-§2.3, §3.6.
    #[test]
    fn matches_spec_section_2() {
        let control = [
            (VERSION, 0x000),
            (CAPS, 0x004),
            (DEV_CTRL, 0x008),
            (DEV_STATUS, 0x00C),
            (ADMIN_ERROR, 0x010),
            (MAC_LO, 0x018),
            (MAC_HI, 0x01C),
            (ASQ_BASE_LO, 0x020),
            (ASQ_BASE_HI, 0x024),
            (ASQ_SIZE, 0x028),
            (ACQ_BASE_LO, 0x030),
            (ACQ_BASE_HI, 0x034),
            (ACQ_SIZE, 0x038),
            (ASQ_TAIL, 0x040),
            (ASQ_HEAD, 0x044),
            (ACQ_HEAD, 0x048),
            (ACQ_TAIL, 0x04C),
            (EQ_BASE_LO, 0x050),
            (EQ_BASE_HI, 0x054),
            (EQ_SIZE, 0x058),
            (EQ_HEAD, 0x05C),
            (EQ_TAIL, 0x060),
        ];
        for (code, spec) in control {
            assert_eq!(code, spec);
        }
        assert_eq!(VERSION_VALUE, 0x0001_0000);
        assert_eq!(CAPS_VALUE, 0x1F);
        assert_eq!((dev_ctrl::ENABLE, dev_ctrl::RESET), (1, 2));
        assert_eq!(
            [
                dev_status::READY,
                dev_status::FATAL,
                dev_status::ADMIN_ERR,
                dev_status::LINK_UP,
                dev_status::EQ_OVERFLOW,
                dev_status::EQ_ERROR
            ],
            [1, 2, 4, 8, 16, 32]
        );
        assert_eq!((admin_error::BAD_ASQ, admin_error::BAD_EQ), (1, 8));
        assert_eq!(admin_error::BUS_MASTER_DISABLED, 4);
    }

    /// Doorbell map of §2.1, §5.3, §8.5 (doorbells up to QPN 3071), §9.3.
    #[test]
    fn doorbell_map() {
        assert_eq!(eth_db::queue_block(7) + eth_db::RXQ_HEAD, 0x107C);
        assert_eq!(verbs_db::sq_doorbell(1), 0x2008);
        assert_eq!(verbs_db::sq_doorbell(verbs_db::MAX_QPN), 0x7FF8);
        assert_eq!(verbs_db::MAX_QPN, 3071);
        assert_eq!(verbs_db::cq_doorbell(2) + verbs_db::SECOND, 0x8014);
        assert_eq!(verbs_db::MAX_CQN, 4095);
    }
}
