//! PCI configuration space and the [`PciFunction`] trait the monitor drives.
//!
//! The configuration space is a 4 KiB array with a per-byte writable mask and a
//! per-byte write-1-to-clear mask: a write changes only writable bits, so read-only
//! fields stay read-only whatever the guest writes, and writes to unknown registers
//! change nothing. BAR sizing falls out of the masks (the low address bits of a BAR
//! are not writable, so writing all ones reads back the size mask).
//!
//! Layout (see `docs/device-spec.md` §1):
//!
//! | offset | what |
//! | --- | --- |
//! | `0x00..0x40` | type 0 header |
//! | `0x40` | Power Management capability (v3) |
//! | `0x50` | MSI-X capability (16 vectors, table BAR2+0, PBA BAR2+0x1000) |
//! | `0x60` | PCI Express capability (v2, endpoint) |
//! | `0x100` | no extended capabilities (reads 0) |

use rnic_contract::pci::{
    self as contract, command, msix_control, status, BAR0, COMMAND, PCIE_DEVCTL_INITIATE_FLR,
    PCIE_DEVICE_CONTROL, STATUS,
};
pub use rnic_contract::pci::{
    CAP_PTR, CLASS_CODE, CONFIG_SIZE, DEVICE_ID, INTERRUPT_LINE, MSIX_CAP, PCIE_CAP, PM_CAP,
    REVISION_ID, SUBSYSTEM_ID, SUBSYSTEM_VENDOR_ID, VENDOR_ID,
};

/// What kind of address space a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory BAR.
    Memory32,
    /// 64-bit memory BAR (occupies this BAR and the next).
    Memory64,
    /// I/O port BAR.
    Io,
}

/// One programmed BAR: where the guest placed it and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarRegion {
    /// BAR index (0..=5; the lower index of a 64-bit pair).
    pub index: usize,
    /// Guest-physical base address.
    pub address: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
    /// Address space.
    pub kind: BarKind,
}

/// A change of the guest-physical range one BAR decodes, reported by
/// [`PciFunction::config_write`] so that the bus that routes MMIO follows the
/// function's own decode (as Cloud Hypervisor's `BarReprogrammingParams` do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMove {
    /// BAR index (0..=5; the lower index of a 64-bit pair).
    pub index: usize,
    /// The range decoded before the write; `None` when the BAR was not decoded.
    pub old: Option<BarRegion>,
    /// The range decoded after the write; `None` when the BAR is no longer decoded.
    pub new: Option<BarRegion>,
}

/// The moves that turn the decoded set `before` into `after` (both as returned by
/// [`PciFunction::decoded_bars`]), one per BAR whose range changed, by BAR index.
pub fn bar_moves(before: &[BarRegion], after: &[BarRegion]) -> Vec<BarMove> {
    let find = |set: &[BarRegion], index: usize| set.iter().copied().find(|r| r.index == index);
    (0..6)
        .filter_map(|index| {
            let old = find(before, index);
            let new = find(after, index);
            (old != new).then_some(BarMove { index, old, new })
        })
        .collect()
}

/// A PCI function on a bus: the one device trait between a PCI device model and
/// the monitor's bus. Accesses come from the vCPU thread.
///
/// The function owns its BAR decode: [`decoded_bars`](Self::decoded_bars) says
/// which memory ranges it answers right now, and every
/// [`config_write`](Self::config_write) reports how that set changed, so the bus
/// never decodes BAR or Command registers itself.
pub trait PciFunction: Send {
    /// Reads the configuration dword containing `offset` (the low 2 bits are ignored).
    /// Offsets beyond the configuration space read all ones.
    fn config_read(&mut self, offset: u16) -> u32;
    /// Writes 1, 2 or 4 bytes at `offset` (any byte offset inside a dword). Returns
    /// one [`BarMove`] per BAR whose decoded range the write changed (a moved BAR,
    /// Memory Space Enable toggled, a power-state change, a function reset); empty
    /// when nothing the bus routes changed.
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove>;
    /// Reads `data.len()` bytes at `offset` in BAR `bar`.
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` in BAR `bar`.
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The BARs whose address is programmed, whether or not memory decoding is on.
    fn bar_regions(&self) -> Vec<BarRegion>;
    /// The memory BARs the function decodes right now: programmed, with memory
    /// decoding on. I/O BARs are not included. Empty while decoding is off.
    fn decoded_bars(&self) -> Vec<BarRegion>;
}

/// Static description of one BAR slot.
#[derive(Clone, Copy, Debug)]
struct BarDef {
    size: u64,
    kind: BarKind,
}

/// Side effects of a configuration write that the owner must apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigEffects {
    /// The Command register changed.
    pub command_changed: bool,
    /// A BAR address changed.
    pub bars_changed: bool,
    /// MSI-X Enable or Function Mask changed.
    pub msix_control_changed: bool,
    /// The guest requested a Function Level Reset (the owner resets the function,
    /// including this configuration space via [`ConfigSpace::reset`]).
    pub flr: bool,
    /// The power state changed (PMCSR bits 1:0).
    pub power_state_changed: bool,
}

/// The function's configuration space.
#[derive(Clone)]
pub struct ConfigSpace {
    data: Box<[u8; CONFIG_SIZE]>,
    wmask: Box<[u8; CONFIG_SIZE]>,
    w1cmask: Box<[u8; CONFIG_SIZE]>,
    bars: [Option<BarDef>; 6],
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("command", &self.command())
            .field("bars", &self.bar_regions())
            .finish()
    }
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSpace {
    /// Power-on configuration space of the RNIC.
    pub fn new() -> Self {
        let mut c = ConfigSpace {
            data: Box::new([0; CONFIG_SIZE]),
            wmask: Box::new([0; CONFIG_SIZE]),
            w1cmask: Box::new([0; CONFIG_SIZE]),
            bars: [None; 6],
        };
        c.build();
        c
    }

    /// Power-on / Function Level Reset: every register back to its initial value.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    fn set16(&mut self, off: usize, v: u16) {
        self.data[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, off: usize, v: u32) {
        self.data[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn wmask16(&mut self, off: usize, m: u16) {
        self.wmask[off..off + 2].copy_from_slice(&m.to_le_bytes());
    }

    fn wmask32(&mut self, off: usize, m: u32) {
        self.wmask[off..off + 4].copy_from_slice(&m.to_le_bytes());
    }

    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.data[off], self.data[off + 1]])
    }

    fn get32(&self, off: usize) -> u32 {
        u32::from_le_bytes([
            self.data[off],
            self.data[off + 1],
            self.data[off + 2],
            self.data[off + 3],
        ])
    }

    fn build(&mut self) {
        // Type 0 header.
        self.set16(0x00, VENDOR_ID);
        self.set16(0x02, DEVICE_ID);
        self.wmask16(COMMAND, command::WRITABLE);
        self.set16(STATUS, status::CAP_LIST);
        self.data[0x08] = REVISION_ID;
        self.data[0x09] = CLASS_CODE as u8;
        self.data[0x0A] = (CLASS_CODE >> 8) as u8;
        self.data[0x0B] = (CLASS_CODE >> 16) as u8;
        self.wmask[0x0C] = 0xFF; // cache line size
        self.data[0x0E] = 0x00; // header type 0, single function
        self.set16(0x2C, SUBSYSTEM_VENDOR_ID);
        self.set16(0x2E, SUBSYSTEM_ID);
        self.data[CAP_PTR] = PM_CAP as u8;
        self.wmask[INTERRUPT_LINE] = 0xFF;
        self.data[0x3D] = 0; // no INTx pin

        // BARs: BAR0/1 64-bit 64 KiB, BAR2/3 64-bit 8 KiB, BAR4/5 unimplemented.
        self.define_bar64(0, contract::BAR0_SIZE);
        self.define_bar64(2, contract::BAR2_SIZE);

        // Power Management capability, version 3, no PME, D0 and D3hot only.
        self.data[PM_CAP] = 0x01;
        self.data[PM_CAP + 1] = MSIX_CAP as u8;
        self.set16(PM_CAP + 2, 0x0003);
        // PMCSR: PowerState (1:0) RW, No_Soft_Reset (bit 3) = 1.
        self.set16(PM_CAP + 4, 1 << 3);
        self.wmask16(PM_CAP + 4, 0x0003);

        // MSI-X capability.
        self.data[MSIX_CAP] = 0x11;
        self.data[MSIX_CAP + 1] = PCIE_CAP as u8;
        self.set16(MSIX_CAP + 2, contract::MSIX_VECTORS - 1);
        self.wmask16(
            MSIX_CAP + 2,
            msix_control::ENABLE | msix_control::FUNCTION_MASK,
        );
        self.set32(MSIX_CAP + 4, contract::MSIX_TABLE_OFFSET as u32 | 2);
        self.set32(MSIX_CAP + 8, contract::MSIX_PBA_OFFSET as u32 | 2);

        // PCI Express capability, version 2, endpoint (device/port type 0).
        let p = PCIE_CAP;
        self.data[p] = 0x10;
        self.data[p + 1] = 0; // end of list
        self.set16(p + 0x02, 0x0002);
        // Device Capabilities: max payload 256 B (1), FLR capable (bit 28).
        self.set32(p + 0x04, 0x1 | (1 << 28));
        // Device Control: error enables (3:0), relaxed ordering (4), max payload (7:5),
        // extended tag (8), no snoop (11), max read request (14:12) writable; FLR (15)
        // is write-only (reads 0, handled in `write`). Reset: RO+NS set, 512 B MRRS.
        self.set16(p + 0x08, (1 << 4) | (1 << 11) | (2 << 12));
        self.wmask16(p + 0x08, 0x79FF);
        // Device Status: error bits RW1C (never set by this model).
        self.w1cmask[p + 0x0A] = 0x0F;
        // Link Capabilities: 8 GT/s (3), x8, port number 0.
        self.set32(p + 0x0C, 0x3 | (8 << 4));
        // Link Control: ASPM (1:0), RCB (3), common clock (6), extended synch (7) RW.
        self.wmask16(p + 0x10, 0x00CB);
        // Link Status: 8 GT/s, x8.
        self.set16(p + 0x12, 0x3 | (8 << 4));
        // Device Capabilities 2: completion timeout ranges A-D supported (0xF).
        self.set32(p + 0x24, 0xF);
        // Device Control 2: completion timeout value (3:0), disable (4).
        self.wmask16(p + 0x28, 0x001F);
        // Link Capabilities 2: supported speeds 2.5, 5, 8 GT/s.
        self.set32(p + 0x2C, 0b1110);
        // Link Control 2: target link speed 8 GT/s (3:0 RW).
        self.set16(p + 0x30, 0x3);
        self.wmask16(p + 0x30, 0x000F);
    }

    fn define_bar64(&mut self, index: usize, size: u64) {
        let off = BAR0 + 4 * index;
        // Memory, 64-bit (type 10b), non-prefetchable.
        self.set32(off, 0b100);
        self.wmask32(off, !(size as u32 - 1) & !0xF);
        self.wmask32(off + 4, 0xFFFF_FFFF);
        self.bars[index] = Some(BarDef {
            size,
            kind: BarKind::Memory64,
        });
    }

    /// Reads the dword containing `offset`; all ones beyond the configuration space.
    pub fn read(&self, offset: u16) -> u32 {
        let off = (offset & !3) as usize;
        if off + 4 > CONFIG_SIZE {
            return 0xFFFF_FFFF;
        }
        self.get32(off)
    }

    /// Writes `data` (1, 2 or 4 bytes) at `offset`. Other lengths and bytes beyond the
    /// configuration space are ignored.
    pub fn write(&mut self, offset: u16, data: &[u8]) -> ConfigEffects {
        let mut fx = ConfigEffects::default();
        if !matches!(data.len(), 1 | 2 | 4) {
            return fx;
        }
        let old_cmd = self.command();
        // Only the six BAR registers place the BARs.
        let bar_registers = BAR0..BAR0 + 6 * 4;
        let touches_bars = (offset as usize) < bar_registers.end
            && offset as usize + data.len() > bar_registers.start;
        let old_bars = touches_bars.then(|| self.bar_regions());
        let old_msix = self.msix_control();
        let old_pm = self.power_state();
        let devctl = PCIE_CAP + PCIE_DEVICE_CONTROL;
        for (i, &b) in data.iter().enumerate() {
            let off = offset as usize + i;
            if off >= CONFIG_SIZE {
                break;
            }
            if off == devctl + 1 && b & (PCIE_DEVCTL_INITIATE_FLR >> 8) as u8 != 0 {
                fx.flr = true;
            }
            let w = self.wmask[off];
            let mut v = (self.data[off] & !w) | (b & w);
            v &= !(b & self.w1cmask[off]);
            self.data[off] = v;
        }
        fx.command_changed = self.command() != old_cmd;
        fx.bars_changed = old_bars.is_some_and(|old| self.bar_regions() != old);
        fx.msix_control_changed = self.msix_control() != old_msix;
        fx.power_state_changed = self.power_state() != old_pm;
        fx
    }

    /// The Command register.
    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// Memory Space Enable.
    pub fn memory_enabled(&self) -> bool {
        self.command() & command::MEMORY != 0
    }

    /// Bus Master Enable.
    pub fn bus_master(&self) -> bool {
        self.command() & command::BUS_MASTER != 0
    }

    /// MSI-X (Enable, Function Mask).
    pub fn msix_control(&self) -> (bool, bool) {
        let c = self.get16(MSIX_CAP + 2);
        (
            c & msix_control::ENABLE != 0,
            c & msix_control::FUNCTION_MASK != 0,
        )
    }

    /// Power state from PMCSR: 0 = D0, 3 = D3hot (1 and 2 are accepted but unused).
    pub fn power_state(&self) -> u8 {
        self.data[PM_CAP + 4] & 3
    }

    /// Current address of BAR `index` (combining a 64-bit pair), without flag bits.
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        let def = self.bars.get(index).copied().flatten()?;
        let off = BAR0 + 4 * index;
        let lo = (self.get32(off) & !0xF) as u64;
        Some(match def.kind {
            BarKind::Memory64 => lo | ((self.get32(off + 4) as u64) << 32),
            BarKind::Memory32 => lo,
            BarKind::Io => (self.get32(off) & !0x3) as u64,
        })
    }

    /// BARs with a non-zero address that fits in the address space.
    pub fn bar_regions(&self) -> Vec<BarRegion> {
        let mut out = Vec::new();
        for index in 0..6 {
            let Some(def) = self.bars[index] else {
                continue;
            };
            let Some(address) = self.bar_address(index) else {
                continue;
            };
            if address == 0 || address.checked_add(def.size).is_none() {
                continue;
            }
            out.push(BarRegion {
                index,
                address,
                size: def.size,
                kind: def.kind,
            });
        }
        out
    }

    /// Maps a guest-physical address to (BAR index, offset) when it falls in a
    /// programmed BAR.
    pub fn decode(&self, addr: u64) -> Option<(usize, u64)> {
        self.bar_regions()
            .into_iter()
            .find(|r| addr >= r.address && addr - r.address < r.size)
            .map(|r| (r.index, addr - r.address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_moves_report_moved_added_and_removed_bars_only() {
        let bar = |index, address| BarRegion {
            index,
            address,
            size: 0x1000,
            kind: BarKind::Memory64,
        };
        let before = [bar(0, 0xC000_0000), bar(2, 0xC001_0000)];
        let after = [bar(2, 0xD000_0000), bar(4, 0xE000_0000)];
        assert_eq!(
            bar_moves(&before, &after),
            vec![
                BarMove {
                    index: 0,
                    old: Some(bar(0, 0xC000_0000)),
                    new: None
                },
                BarMove {
                    index: 2,
                    old: Some(bar(2, 0xC001_0000)),
                    new: Some(bar(2, 0xD000_0000))
                },
                BarMove {
                    index: 4,
                    old: None,
                    new: Some(bar(4, 0xE000_0000))
                },
            ]
        );
        assert!(bar_moves(&after, &after).is_empty());
    }

    #[test]
    fn identity() {
        let c = ConfigSpace::new();
        assert_eq!(c.read(0), 0x0001_7E57);
        assert_eq!(c.read(8), 0x0200_0001);
        assert_eq!(c.read(0x0C) >> 16 & 0xFF, 0, "header type 0");
        assert_eq!(c.read(0x2C), 0x0001_7E57);
        assert_eq!(c.read(0x3C) >> 8 & 0xFF, 0, "no interrupt pin");
        assert_eq!(
            c.read(4) >> 16 & status::CAP_LIST as u32,
            status::CAP_LIST as u32
        );
        assert_eq!(c.read(0x34) & 0xFF, PM_CAP as u32);
    }

    #[test]
    fn capability_chain() {
        let c = ConfigSpace::new();
        let mut ptr = c.read(0x34) as u16 & 0xFC;
        let mut ids = Vec::new();
        while ptr != 0 {
            let h = c.read(ptr);
            ids.push(h & 0xFF);
            ptr = (h >> 8) as u16 & 0xFC;
        }
        assert_eq!(ids, vec![0x01, 0x11, 0x10]);
        // MSI-X: 16 entries, table BIR 2 offset 0, PBA BIR 2 offset 0x1000.
        assert_eq!(c.read(MSIX_CAP as u16) >> 16, 15);
        assert_eq!(c.read(MSIX_CAP as u16 + 4), 2);
        assert_eq!(c.read(MSIX_CAP as u16 + 8), 0x1002);
        // PCIe v2 endpoint.
        assert_eq!(c.read(PCIE_CAP as u16) >> 16, 0x0002);
        assert_eq!(c.read(0x100), 0, "no extended capabilities");
    }

    #[test]
    fn bar_sizing_64bit() {
        let mut c = ConfigSpace::new();
        assert_eq!(c.read(0x10), 0x4, "64-bit memory, non-prefetchable");
        c.write(0x10, &0xFFFF_FFFFu32.to_le_bytes());
        c.write(0x14, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(c.read(0x10), 0xFFFF_0004);
        assert_eq!(c.read(0x14), 0xFFFF_FFFF);
        c.write(0x18, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(c.read(0x18), 0xFFFF_E004);
        c.write(0x20, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(c.read(0x20), 0, "BAR4 unimplemented");
        assert_eq!(c.read(0x24), 0);
        // Sizing patterns are not reported as regions.
        assert!(c.bar_regions().iter().all(|r| r.index != 0));
        let fx = c.write(0x10, &0xC000_0000u32.to_le_bytes());
        assert!(fx.bars_changed);
        let fx = c.write(0x14, &0u32.to_le_bytes());
        assert!(fx.bars_changed, "the high dword moves a 64-bit BAR");
        // Writes next to the BAR registers never report a move; a partial write of
        // a BAR's address bits does.
        assert!(!c.write(0x0C, &0xFFFF_FFFFu32.to_le_bytes()).bars_changed);
        assert!(!c.write(0x28, &0xFFFF_FFFFu32.to_le_bytes()).bars_changed);
        assert!(c.write(0x12, &[0x00, 0xD0]).bars_changed);
        assert_eq!(c.bar_regions()[0].address, 0xD000_0000);
        c.write(0x10, &0xC000_0000u32.to_le_bytes());
        assert_eq!(
            c.bar_regions()[0],
            BarRegion {
                index: 0,
                address: 0xC000_0000,
                size: 0x1_0000,
                kind: BarKind::Memory64
            }
        );
        assert_eq!(c.decode(0xC000_0044), Some((0, 0x44)));
        assert_eq!(c.decode(0xC001_0000), None);
    }

    #[test]
    fn read_only_fields_stay() {
        let mut c = ConfigSpace::new();
        let before: Vec<u32> = (0..1024).map(|i| c.read(i * 4)).collect();
        for off in [
            0x00u16,
            0x08,
            0x2C,
            0x34,
            PM_CAP as u16,
            MSIX_CAP as u16 + 4,
            0x100,
            0xFFC,
        ] {
            c.write(off, &0xFFFF_FFFFu32.to_le_bytes());
            assert_eq!(c.read(off), before[off as usize / 4], "offset {off:#x}");
        }
        // Command: only the writable bits stick; status RO.
        c.write(4, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(c.read(4) & 0xFFFF, command::WRITABLE as u32);
        assert_eq!(c.read(4) >> 16, status::CAP_LIST as u32);
        // MSI-X control: table size RO, enable + mask RW.
        c.write(MSIX_CAP as u16 + 2, &0xFFFFu16.to_le_bytes());
        assert_eq!(c.read(MSIX_CAP as u16) >> 16, 0xC00F);
        assert_eq!(c.msix_control(), (true, true));
    }

    #[test]
    fn byte_writes_and_bounds() {
        let mut c = ConfigSpace::new();
        c.write(5, &[0x00]);
        c.write(4, &[0x06]);
        assert!(c.memory_enabled() && c.bus_master());
        c.write(0x3C, &[0x0B]);
        assert_eq!(c.read(0x3D) & 0xFF, 0x0B, "unaligned read uses the dword");
        assert_eq!(c.read(4096), 0xFFFF_FFFF);
        assert_eq!(c.read(0xFFFF), 0xFFFF_FFFF);
        c.write(0xFFFF, &[1, 2, 3, 4]);
        c.write(0xFFE, &[1, 2, 3, 4]);
        c.write(0x10, &[1, 2, 3]);
        c.write(0x10, &[]);
        assert_eq!(c.read(0x10), 4);
    }

    #[test]
    fn flr_request_and_power_state() {
        let mut c = ConfigSpace::new();
        let fx = c.write(
            PCIE_CAP as u16 + 8,
            &(PCIE_DEVCTL_INITIATE_FLR | 0x20).to_le_bytes(),
        );
        assert!(fx.flr);
        assert_eq!(c.read(PCIE_CAP as u16 + 8) & 0x8000, 0, "FLR bit reads 0");
        let fx = c.write(PM_CAP as u16 + 4, &[3]);
        assert!(fx.power_state_changed);
        assert_eq!(c.power_state(), 3);
        assert_eq!(
            c.read(PM_CAP as u16 + 4) & 0xF,
            0xB,
            "No_Soft_Reset stays set"
        );
    }
}
