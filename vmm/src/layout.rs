//! Guest-physical memory map (docs/platform.md, "Memory map") and the fixed
//! addresses of the boot data the monitor writes for a PVH guest.

use crate::error::{Result, VmmError};

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// One GiB.
pub const GIB: u64 = 1 << 30;

/// End of conventional RAM below 1 MiB (start of the legacy reserved area).
pub const LEGACY_RESERVED_START: u64 = 0x9_FC00;
/// Start of RAM above the legacy area; kernels are loaded at or above this.
pub const HIGH_RAM_START: u64 = 0x10_0000;
/// RAM below 4 GiB ends here at most (3 GiB); the rest of the guest RAM goes above 4 GiB.
pub const LOW_RAM_MAX_END: u64 = 3 * GIB;
/// Start of RAM above the 32-bit hole.
pub const RAM_ABOVE_4G_START: u64 = 4 * GIB;
/// Start of the PCI MMIO window where the monitor places BARs.
pub const PCI_MMIO_START: u64 = 0xC000_0000;
/// End (exclusive) of the PCI MMIO window.
pub const PCI_MMIO_END: u64 = 0xFEC0_0000;
/// Local APIC base (in-kernel irqchip).
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Address KVM uses for its real-mode TSS pages (3 pages, outside RAM and the MMIO window).
pub const KVM_TSS_ADDRESS: u64 = 0xFFFB_D000;

/// Boot GDT written by the monitor (null, null, code32 at 0x10, data32 at 0x18, TSS at 0x20).
pub const BOOT_GDT_ADDR: u64 = 0x5000;
/// `hvm_start_info`.
pub const START_INFO_ADDR: u64 = 0x6000;
/// `hvm_memmap_table_entry` array.
pub const MEMMAP_ADDR: u64 = 0x6100;
/// `hvm_modlist_entry` array.
pub const MODLIST_ADDR: u64 = 0x6400;
/// End (exclusive) of the module list area.
pub const MODLIST_END: u64 = 0x7000;
/// NUL-terminated module names, packed.
pub const MODULE_NAMES_ADDR: u64 = 0x7000;
/// End (exclusive) of the module name area.
pub const MODULE_NAMES_END: u64 = 0x8000;
/// NUL-terminated kernel command line.
pub const CMDLINE_ADDR: u64 = 0x8000;
/// Longest command line accepted, without the terminating NUL.
pub const CMDLINE_MAX: usize = 4095;
/// First address after all boot data below 1 MiB.
pub const BOOT_DATA_END: u64 = 0x9000;

/// Smallest accepted `--memory` in MiB (kernel at 1 MiB needs room above it).
pub const MIN_MEMORY_MIB: u64 = 8;
/// Largest accepted `--memory` in MiB (64 GiB).
pub const MAX_MEMORY_MIB: u64 = 64 * 1024;

/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// One entry of the guest's E820-style memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapEntry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The guest memory layout for a given RAM size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    /// Total guest RAM in bytes.
    pub ram_bytes: u64,
}

impl MemoryLayout {
    /// Checks `mib` against the accepted range and builds the layout.
    pub fn new(mib: u64) -> Result<Self> {
        if mib < MIN_MEMORY_MIB {
            return Err(VmmError::Usage(format!(
                "--memory {mib} is too small: give at least {MIN_MEMORY_MIB} MiB"
            )));
        }
        if mib > MAX_MEMORY_MIB {
            return Err(VmmError::Usage(format!(
                "--memory {mib} is too large: give at most {MAX_MEMORY_MIB} MiB"
            )));
        }
        Ok(MemoryLayout {
            ram_bytes: mib * MIB,
        })
    }

    /// End (exclusive) of RAM below 4 GiB.
    pub fn low_ram_end(&self) -> u64 {
        self.ram_bytes.min(LOW_RAM_MAX_END)
    }

    /// Bytes of RAM placed above 4 GiB (0 when memory fits below 3 GiB).
    pub fn high_ram_bytes(&self) -> u64 {
        self.ram_bytes.saturating_sub(LOW_RAM_MAX_END)
    }

    /// Host-backed regions `(guest address, length)`: the legacy hole is backed
    /// (it is only reported reserved), the PCI hole is not.
    pub fn regions(&self) -> Vec<(u64, u64)> {
        let mut regions = vec![(0, self.low_ram_end())];
        if self.high_ram_bytes() > 0 {
            regions.push((RAM_ABOVE_4G_START, self.high_ram_bytes()));
        }
        regions
    }

    /// The E820-style map handed to the guest in `hvm_start_info`.
    pub fn memmap(&self) -> Vec<MemmapEntry> {
        let mut map = vec![
            MemmapEntry {
                addr: 0,
                size: LEGACY_RESERVED_START,
                kind: E820_RAM,
            },
            MemmapEntry {
                addr: LEGACY_RESERVED_START,
                size: HIGH_RAM_START - LEGACY_RESERVED_START,
                kind: E820_RESERVED,
            },
            MemmapEntry {
                addr: HIGH_RAM_START,
                size: self.low_ram_end() - HIGH_RAM_START,
                kind: E820_RAM,
            },
        ];
        if self.high_ram_bytes() > 0 {
            map.push(MemmapEntry {
                addr: RAM_ABOVE_4G_START,
                size: self.high_ram_bytes(),
                kind: E820_RAM,
            });
        }
        map
    }

    /// True when `[addr, addr + len)` is RAM where a kernel or module may be loaded
    /// (above 1 MiB and below the end of low RAM).
    pub fn is_loadable(&self, addr: u64, len: u64) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= HIGH_RAM_START && end <= self.low_ram_end(),
            None => false,
        }
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

// The fixed areas must not overlap one another or the legacy area, and the APIC
// and KVM's TSS pages must stay out of RAM and the MMIO window (checked at build
// time).
const _: () = {
    assert!(BOOT_GDT_ADDR + 5 * 8 <= START_INFO_ADDR);
    assert!(START_INFO_ADDR + 56 <= MEMMAP_ADDR);
    assert!(MEMMAP_ADDR + 8 * 24 <= MODLIST_ADDR);
    assert!(MODLIST_END <= MODULE_NAMES_ADDR);
    assert!(MODULE_NAMES_END <= CMDLINE_ADDR);
    assert!(CMDLINE_ADDR + (CMDLINE_MAX as u64) < BOOT_DATA_END);
    assert!(BOOT_DATA_END <= LEGACY_RESERVED_START);
    assert!(LOW_RAM_MAX_END <= PCI_MMIO_START);
    assert!(LAPIC_BASE >= PCI_MMIO_END && KVM_TSS_ADDRESS > LAPIC_BASE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_has_no_high_region() {
        let l = MemoryLayout::new(256).unwrap();
        assert_eq!(l.low_ram_end(), 256 * MIB);
        assert_eq!(l.high_ram_bytes(), 0);
        assert_eq!(l.regions(), vec![(0, 256 * MIB)]);
        let map = l.memmap();
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            MemmapEntry {
                addr: 0,
                size: 0x9_FC00,
                kind: E820_RAM
            }
        );
        assert_eq!(
            map[1],
            MemmapEntry {
                addr: 0x9_FC00,
                size: 0x10_0000 - 0x9_FC00,
                kind: E820_RESERVED
            }
        );
        assert_eq!(
            map[2],
            MemmapEntry {
                addr: 0x10_0000,
                size: 256 * MIB - 0x10_0000,
                kind: E820_RAM
            }
        );
    }

    #[test]
    fn large_memory_splits_around_the_pci_hole() {
        let l = MemoryLayout::new(4096).unwrap();
        assert_eq!(l.low_ram_end(), 3 * GIB);
        assert_eq!(l.high_ram_bytes(), GIB);
        assert_eq!(l.regions(), vec![(0, 3 * GIB), (4 * GIB, GIB)]);
        let map = l.memmap();
        assert_eq!(map.len(), 4);
        assert_eq!(
            map[3],
            MemmapEntry {
                addr: 4 * GIB,
                size: GIB,
                kind: E820_RAM
            }
        );
        // No RAM entry touches the MMIO window or the APIC.
        for e in &map {
            let end = e.addr + e.size;
            assert!(end <= PCI_MMIO_START || e.addr >= RAM_ABOVE_4G_START);
        }
    }

    #[test]
    fn memory_bounds_are_enforced() {
        assert!(MemoryLayout::new(0).is_err());
        assert!(MemoryLayout::new(MIN_MEMORY_MIB - 1).is_err());
        assert!(MemoryLayout::new(MIN_MEMORY_MIB).is_ok());
        assert!(MemoryLayout::new(MAX_MEMORY_MIB).is_ok());
        assert!(MemoryLayout::new(MAX_MEMORY_MIB + 1).is_err());
    }

    #[test]
    fn loadable_ranges() {
        let l = MemoryLayout::new(16).unwrap();
        assert!(l.is_loadable(0x10_0000, 0x1000));
        assert!(!l.is_loadable(0x8_0000, 0x1000));
        assert!(!l.is_loadable(16 * MIB - 0x800, 0x1000));
        assert!(!l.is_loadable(u64::MAX - 1, 0x10));
    }

    #[test]
    fn align_up_rounds_to_powers_of_two() {
        assert_eq!(align_up(0x1001, 0x1000), Some(0x2000));
        assert_eq!(align_up(0x1000, 0x1000), Some(0x1000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
    }
}
