//! The PCI function: identity, configuration-space offsets and bits, BAR sizes and
//! the MSI-X placement (`docs/device-spec.md` §1.1-§1.5).
//!
//! Configuration-space offsets are `usize` byte offsets into the 4 KiB space.

/// Vendor ID (§1.1; chosen for this emulation, not assigned by PCI-SIG).
pub const VENDOR_ID: u16 = 0x7E57;
/// Device ID (§1.1).
pub const DEVICE_ID: u16 = 0x0001;
/// Revision ID (§1.1).
pub const REVISION_ID: u8 = 0x01;
/// Class code, 24 bits: network controller, Ethernet (§1.1).
pub const CLASS_CODE: u32 = 0x02_00_00;
/// Subsystem vendor ID (§1.1).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x7E57;
/// Subsystem ID (§1.1).
pub const SUBSYSTEM_ID: u16 = 0x0001;
/// Header type: type 0, single function (§1.1).
pub const HEADER_TYPE_VALUE: u8 = 0x00;

/// Size of the configuration space in bytes: PCI Express extended (§1.2).
pub const CONFIG_SIZE: usize = 4096;

/// Vendor ID register, 2 bytes (§1.2).
pub const VENDOR_ID_OFFSET: usize = 0x00;
/// Device ID register, 2 bytes (§1.2).
pub const DEVICE_ID_OFFSET: usize = 0x02;
/// Command register, 2 bytes (§1.2; bits in [`command`]).
pub const COMMAND: usize = 0x04;
/// Status register, 2 bytes (§1.2; bits in [`status`]).
pub const STATUS: usize = 0x06;
/// Revision ID register, 1 byte (§1.2).
pub const REVISION_ID_OFFSET: usize = 0x08;
/// Class code, 3 bytes (§1.2).
pub const CLASS_CODE_OFFSET: usize = 0x09;
/// Cache Line Size, 1 byte, RW without effect (§1.2).
pub const CACHE_LINE_SIZE: usize = 0x0C;
/// Header Type, 1 byte (§1.2).
pub const HEADER_TYPE: usize = 0x0E;
/// BAR0; BAR `n` is at `BAR0 + 4·n`, six BARs (§1.2, §1.4).
pub const BAR0: usize = 0x10;
/// Number of BAR registers in a type 0 header.
pub const BAR_COUNT: usize = 6;
/// Subsystem vendor ID register, 2 bytes (§1.2).
pub const SUBSYSTEM_VENDOR_ID_OFFSET: usize = 0x2C;
/// Subsystem ID register, 2 bytes (§1.2).
pub const SUBSYSTEM_ID_OFFSET: usize = 0x2E;
/// Capabilities pointer, 1 byte (§1.2).
pub const CAP_PTR: usize = 0x34;
/// Interrupt Line, 1 byte, RW without effect (§1.2).
pub const INTERRUPT_LINE: usize = 0x3C;
/// Interrupt Pin, 1 byte, reads 0: no INTx (§1.2).
pub const INTERRUPT_PIN: usize = 0x3D;

/// Power Management capability (§1.3).
pub const PM_CAP: usize = 0x40;
/// MSI-X capability (§1.3).
pub const MSIX_CAP: usize = 0x50;
/// PCI Express capability (§1.3).
pub const PCIE_CAP: usize = 0x60;
/// Capability ID of Power Management.
pub const CAP_ID_PM: u8 = 0x01;
/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Capability ID of PCI Express.
pub const CAP_ID_PCIE: u8 = 0x10;
/// MSI-X Message Control, relative to [`MSIX_CAP`] (§1.3).
pub const MSIX_MESSAGE_CONTROL: usize = 0x02;
/// PCIe Device Control, relative to [`PCIE_CAP`] (§1.3).
pub const PCIE_DEVICE_CONTROL: usize = 0x08;

/// Command register bits (§1.2).
pub mod command {
    /// Memory Space Enable: the BARs decode.
    pub const MEMORY: u16 = 1 << 1;
    /// Bus Master Enable: the device may DMA.
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Parity Error Response (stored, no effect).
    pub const PARITY: u16 = 1 << 6;
    /// SERR# Enable (stored, no effect).
    pub const SERR: u16 = 1 << 8;
    /// Interrupt Disable (stored, no effect: there is no INTx).
    pub const INTX_DISABLE: u16 = 1 << 10;
    /// Every writable Command bit.
    pub const WRITABLE: u16 = MEMORY | BUS_MASTER | PARITY | SERR | INTX_DISABLE;
}

/// Status register bits (§1.2).
pub mod status {
    /// Capabilities List: always set.
    pub const CAP_LIST: u16 = 1 << 4;
}

/// MSI-X Message Control bits (§1.3).
pub mod msix_control {
    /// MSI-X Enable.
    pub const ENABLE: u16 = 1 << 15;
    /// Function Mask: every vector masked.
    pub const FUNCTION_MASK: u16 = 1 << 14;
    /// Table size − 1 field (read-only).
    pub const TABLE_SIZE_MASK: u16 = 0x07FF;
}

/// PCIe Device Control bit 15: writing 1 performs a Function Level Reset (§1.3, §13.2).
pub const PCIE_DEVCTL_INITIATE_FLR: u16 = 1 << 15;

/// Size of BAR0 in bytes: control registers and doorbells (§1.4).
pub const BAR0_SIZE: u64 = 0x1_0000;
/// Size of BAR2 in bytes: MSI-X table and PBA (§1.4).
pub const BAR2_SIZE: u64 = 0x2000;
/// Index of the BAR holding the registers (64-bit, with BAR1 as upper half).
pub const REGISTER_BAR: usize = 0;
/// Index of the BAR holding the MSI-X table and PBA (64-bit, with BAR3).
pub const MSIX_BAR: usize = 2;

/// Number of MSI-X vectors (§1.5).
pub const MSIX_VECTORS: u16 = 16;
/// Offset of the MSI-X table in BAR2 (§1.5).
pub const MSIX_TABLE_OFFSET: u64 = 0x0000;
/// Size of one MSI-X table entry in bytes (§1.5).
pub const MSIX_ENTRY_SIZE: u64 = 16;
/// Offset of the MSI-X pending-bit array in BAR2 (§1.5).
pub const MSIX_PBA_OFFSET: u64 = 0x1000;
/// The vector of admin completions, admin errors and events (§4.3).
pub const ADMIN_VECTOR: u16 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers copied independently from docs/device-spec.md §1.
    #[test]
    fn matches_spec_section_1() {
        assert_eq!((VENDOR_ID, DEVICE_ID, REVISION_ID), (0x7E57, 1, 1));
        assert_eq!(CLASS_CODE, 0x020000);
        assert_eq!((SUBSYSTEM_VENDOR_ID, SUBSYSTEM_ID), (0x7E57, 1));
        assert_eq!((COMMAND, STATUS, BAR0, CAP_PTR), (4, 6, 16, 0x34));
        assert_eq!((SUBSYSTEM_VENDOR_ID_OFFSET, INTERRUPT_PIN), (0x2C, 0x3D));
        assert_eq!((PM_CAP, MSIX_CAP, PCIE_CAP), (0x40, 0x50, 0x60));
        assert_eq!(command::WRITABLE, 0b0000_0101_0100_0110);
        assert_eq!(status::CAP_LIST, 0x0010);
        assert_eq!((BAR0_SIZE, BAR2_SIZE), (65536, 8192));
        assert_eq!((MSIX_VECTORS, MSIX_PBA_OFFSET), (16, 0x1000));
        assert_eq!(PCIE_DEVCTL_INITIATE_FLR, 0x8000);
    }
}
