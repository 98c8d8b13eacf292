//! PCI bus 0 behind configuration mechanism #1 (ports 0xCF8, 0xCFC..0xCFF), the
//! host bridge, BAR placement at start-up and MMIO routing to programmed BARs.
//!
//! The bus decodes BARs the way hardware does: after every configuration write
//! to a function it re-reads that function's Command register and BARs, so a
//! guest that re-programs a BAR (or toggles Memory Space Enable) is routed
//! correctly on the next access.

use tracing::{debug, trace, warn};

use crate::error::{Result, VmmError};
use crate::layout::{PCI_MMIO_END, PCI_MMIO_START};

/// CONFIG_ADDRESS port.
pub const CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// First CONFIG_DATA port.
pub const CONFIG_DATA_PORT: u16 = 0xCFC;
/// Device number of the host bridge.
pub const HOST_BRIDGE_DEV: u8 = 0;
/// Device number of the RNIC.
pub const RNIC_DEV: u8 = 1;

const COMMAND_OFFSET: u16 = 0x04;
const COMMAND_MEMORY_ENABLE: u32 = 1 << 1;
const BAR0_OFFSET: u16 = 0x10;
const BAR_COUNT: usize = 6;

/// A PCI function as the bus sees it. Offsets are within the 256-byte
/// configuration space; `config_read` offsets are dword-aligned.
pub trait PciSlot: Send {
    /// Reads the configuration dword at `offset` (a multiple of 4).
    fn config_read(&mut self, offset: u16) -> u32;
    /// Writes `data` (1, 2 or 4 bytes, not crossing a dword) at `offset`.
    fn config_write(&mut self, offset: u16, data: &[u8]);
    /// Reads from BAR `bar` at byte `offset`.
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// Writes to BAR `bar` at byte `offset`.
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The function's own list of programmed memory BARs, if it keeps one; `None`
    /// makes the bus decode the BAR registers itself. Only consulted while Memory
    /// Space Enable is set.
    fn bar_regions(&self) -> Option<Vec<MappedBar>> {
        None
    }
}

/// A decoded CONFIG_ADDRESS value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigAddress {
    /// Bit 31.
    pub enabled: bool,
    /// Bits 23:16.
    pub bus: u8,
    /// Bits 15:11.
    pub dev: u8,
    /// Bits 10:8.
    pub func: u8,
    /// Bits 7:2, as a byte offset.
    pub reg: u16,
}

impl ConfigAddress {
    /// Decodes a CONFIG_ADDRESS value (reserved bits 30:24 and 1:0 are ignored).
    pub fn decode(v: u32) -> Self {
        ConfigAddress {
            enabled: v & 0x8000_0000 != 0,
            bus: ((v >> 16) & 0xFF) as u8,
            dev: ((v >> 11) & 0x1F) as u8,
            func: ((v >> 8) & 0x7) as u8,
            reg: (v & 0xFC) as u16,
        }
    }
}

/// The host bridge at 00:00.0: identity registers only, writes ignored.
#[derive(Debug, Default)]
pub struct HostBridge;

impl HostBridge {
    /// Vendor ID.
    pub const VENDOR: u16 = 0x8086;
    /// Device ID.
    pub const DEVICE: u16 = 0x29C0;
    /// Class code (base, sub, prog-if).
    pub const CLASS: u32 = 0x06_00_00;
}

impl PciSlot for HostBridge {
    fn config_read(&mut self, offset: u16) -> u32 {
        match offset {
            0x00 => (u32::from(Self::DEVICE) << 16) | u32::from(Self::VENDOR),
            0x08 => Self::CLASS << 8,
            _ => 0,
        }
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) {
        trace!(offset, ?data, "host bridge config write ignored");
    }
    fn bar_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn bar_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}

/// A memory BAR found by sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR index (the low half for 64-bit BARs).
    pub index: usize,
    /// Size in bytes (a power of two).
    pub size: u64,
    /// 64-bit BAR (occupies `index` and `index + 1`).
    pub is_64: bool,
}

/// A BAR currently decoded at a guest-physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedBar {
    /// BAR index.
    pub index: usize,
    /// Base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl MappedBar {
    fn contains(&self, addr: u64, len: usize) -> bool {
        addr >= self.base
            && addr
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.base + self.size)
    }
}

/// Hands out BAR addresses in the PCI MMIO window.
#[derive(Debug)]
pub struct BarAllocator {
    next: u64,
    end: u64,
}

impl Default for BarAllocator {
    fn default() -> Self {
        BarAllocator {
            next: PCI_MMIO_START,
            end: PCI_MMIO_END,
        }
    }
}

impl BarAllocator {
    /// Next `size`-aligned range of `size` bytes.
    pub fn allocate(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        let base = crate::layout::align_up(self.next, size)?;
        let end = base.checked_add(size)?;
        if end > self.end {
            return None;
        }
        self.next = end;
        Some(base)
    }
}

struct Slot {
    dev: Box<dyn PciSlot>,
    bars: Vec<BarInfo>,
    mapped: Vec<MappedBar>,
}

impl Slot {
    fn read_bar_base(&mut self, bar: &BarInfo) -> u64 {
        let lo = self.dev.config_read(BAR0_OFFSET + 4 * bar.index as u16);
        let hi = if bar.is_64 {
            self.dev
                .config_read(BAR0_OFFSET + 4 * (bar.index as u16 + 1))
        } else {
            0
        };
        (u64::from(hi) << 32) | u64::from(lo & !0xF)
    }

    /// Recomputes which BARs are decoded, from the function's own registers.
    fn refresh_mapping(&mut self) {
        let enabled = self.dev.config_read(COMMAND_OFFSET) & COMMAND_MEMORY_ENABLE != 0;
        let bars = self.bars.clone();
        let mapped: Vec<MappedBar> = if !enabled {
            Vec::new()
        } else if let Some(own) = self.dev.bar_regions() {
            own
        } else {
            bars.iter()
                .map(|b| MappedBar {
                    index: b.index,
                    base: self.read_bar_base(b),
                    size: b.size,
                })
                .filter(|m| m.base != 0 && m.base.checked_add(m.size).is_some())
                .collect()
        };
        if mapped != self.mapped {
            debug!(?mapped, "PCI BAR decoding changed");
        }
        self.mapped = mapped;
    }
}

/// Sizes every BAR of `dev` by the PCI procedure (write all ones, read back).
/// Returns memory BARs; I/O BARs are reported and left unassigned.
pub fn size_bars(dev: &mut dyn PciSlot) -> Vec<BarInfo> {
    let mut bars = Vec::new();
    let mut i = 0;
    while i < BAR_COUNT {
        let off = BAR0_OFFSET + 4 * i as u16;
        let orig = dev.config_read(off);
        dev.config_write(off, &u32::MAX.to_le_bytes());
        let lo = dev.config_read(off);
        dev.config_write(off, &orig.to_le_bytes());
        if lo == 0 {
            i += 1;
            continue;
        }
        if lo & 1 == 1 {
            warn!(bar = i, "I/O BARs are not supported; BAR left unassigned");
            i += 1;
            continue;
        }
        let is_64 = (lo >> 1) & 3 == 2 && i + 1 < BAR_COUNT;
        let mask = if is_64 {
            let hoff = off + 4;
            let horig = dev.config_read(hoff);
            dev.config_write(hoff, &u32::MAX.to_le_bytes());
            let hi = dev.config_read(hoff);
            dev.config_write(hoff, &horig.to_le_bytes());
            (u64::from(hi) << 32) | u64::from(lo & !0xF)
        } else {
            0xFFFF_FFFF_0000_0000 | u64::from(lo & !0xF)
        };
        let size = (!mask).wrapping_add(1);
        if size.is_power_of_two() {
            bars.push(BarInfo {
                index: i,
                size,
                is_64,
            });
        } else {
            warn!(
                bar = i,
                mask, "BAR size mask is not a power of two; BAR ignored"
            );
        }
        i += if is_64 { 2 } else { 1 };
    }
    bars
}

/// Bus 0 with configuration mechanism #1.
pub struct PciBus {
    address: u32,
    slots: Vec<Option<Slot>>,
    allocator: BarAllocator,
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

impl PciBus {
    /// A bus with the host bridge at device 0.
    pub fn new() -> Self {
        let mut bus = PciBus {
            address: 0,
            slots: (0..32).map(|_| None).collect(),
            allocator: BarAllocator::default(),
        };
        bus.slots[HOST_BRIDGE_DEV as usize] = Some(Slot {
            dev: Box::new(HostBridge),
            bars: Vec::new(),
            mapped: Vec::new(),
        });
        bus
    }

    /// Plugs `dev` in at device number `dev_no`, sizes its BARs and places them in
    /// the MMIO window (memory decoding stays off: the guest enables it).
    pub fn add_device(&mut self, dev_no: u8, mut dev: Box<dyn PciSlot>) -> Result<Vec<MappedBar>> {
        let slot_no = dev_no as usize;
        if slot_no >= self.slots.len() || self.slots[slot_no].is_some() {
            return Err(VmmError::Device(format!(
                "PCI device number {dev_no} is taken"
            )));
        }
        let mut bars = size_bars(dev.as_mut());
        // Largest first keeps the window packed.
        bars.sort_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));
        let mut placed = Vec::new();
        for b in &bars {
            let base = self.allocator.allocate(b.size).ok_or_else(|| {
                VmmError::Device(format!(
                    "BAR{} of {} bytes does not fit in the PCI MMIO window",
                    b.index, b.size
                ))
            })?;
            let off = BAR0_OFFSET + 4 * b.index as u16;
            dev.config_write(off, &(base as u32).to_le_bytes());
            if b.is_64 {
                dev.config_write(off + 4, &((base >> 32) as u32).to_le_bytes());
            }
            placed.push(MappedBar {
                index: b.index,
                base,
                size: b.size,
            });
        }
        bars.sort_by_key(|b| b.index);
        placed.sort_by_key(|b| b.index);
        let mut slot = Slot {
            dev,
            bars,
            mapped: Vec::new(),
        };
        slot.refresh_mapping();
        self.slots[slot_no] = Some(slot);
        Ok(placed)
    }

    /// BARs decoded right now for device `dev_no`.
    pub fn mapped_bars(&self, dev_no: u8) -> Vec<MappedBar> {
        self.slots
            .get(dev_no as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.mapped.clone())
            .unwrap_or_default()
    }

    fn target(&mut self) -> Option<(&mut Slot, u16)> {
        let a = ConfigAddress::decode(self.address);
        if !a.enabled || a.bus != 0 || a.func != 0 {
            return None;
        }
        let reg = a.reg;
        self.slots
            .get_mut(a.dev as usize)?
            .as_mut()
            .map(|s| (s, reg))
    }

    /// True for the ports this bus decodes.
    pub fn handles_port(port: u16) -> bool {
        (CONFIG_ADDRESS_PORT..CONFIG_ADDRESS_PORT + 4).contains(&port)
            || (CONFIG_DATA_PORT..CONFIG_DATA_PORT + 4).contains(&port)
    }

    /// Port read.
    pub fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        data.fill(0xFF);
        if port == CONFIG_ADDRESS_PORT && data.len() == 4 {
            data.copy_from_slice(&self.address.to_le_bytes());
            return;
        }
        let Some(byte) = port.checked_sub(CONFIG_DATA_PORT).filter(|b| *b < 4) else {
            return;
        };
        if byte as usize + data.len() > 4 {
            return;
        }
        if let Some((slot, reg)) = self.target() {
            let dword = slot.dev.config_read(reg).to_le_bytes();
            data.copy_from_slice(&dword[byte as usize..byte as usize + data.len()]);
        }
    }

    /// Port write.
    pub fn pio_write(&mut self, port: u16, data: &[u8]) {
        if port == CONFIG_ADDRESS_PORT && data.len() == 4 {
            self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            return;
        }
        let Some(byte) = port.checked_sub(CONFIG_DATA_PORT).filter(|b| *b < 4) else {
            trace!(
                port,
                "PCI config-address port write that is not 32 bits, ignored"
            );
            return;
        };
        if byte as usize + data.len() > 4 {
            return;
        }
        if let Some((slot, reg)) = self.target() {
            slot.dev.config_write(reg + byte, data);
            slot.refresh_mapping();
        }
    }

    fn find_bar(&mut self, addr: u64, len: usize) -> Option<(&mut Slot, usize, u64)> {
        for slot in self.slots.iter_mut().flatten() {
            if let Some(m) = slot.mapped.iter().find(|m| m.contains(addr, len)).copied() {
                return Some((slot, m.index, addr - m.base));
            }
        }
        None
    }

    /// MMIO read; false (and all ones) when no BAR decodes `addr`.
    pub fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> bool {
        match self.find_bar(addr, data.len()) {
            Some((slot, bar, off)) => {
                slot.dev.bar_read(bar, off, data);
                true
            }
            None => {
                data.fill(0xFF);
                false
            }
        }
    }

    /// MMIO write; false when no BAR decodes `addr` (the write is dropped).
    pub fn mmio_write(&mut self, addr: u64, data: &[u8]) -> bool {
        match self.find_bar(addr, data.len()) {
            Some((slot, bar, off)) => {
                slot.dev.bar_write(bar, off, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// (BAR, offset, length, is_write).
    type BarAccess = (usize, u64, usize, bool);

    /// A function with a 64-bit 64 KiB BAR0 and a 32-bit 4 KiB BAR2 that records BAR
    /// accesses.
    struct FakeFn {
        cfg: [u32; 64],
        log: Arc<Mutex<Vec<BarAccess>>>,
    }

    impl Default for FakeFn {
        fn default() -> Self {
            FakeFn {
                cfg: [0; 64],
                log: Arc::default(),
            }
        }
    }

    impl PciSlot for FakeFn {
        fn config_read(&mut self, offset: u16) -> u32 {
            assert_eq!(offset % 4, 0);
            match offset {
                0 => 0x0001_7E57,
                0x10 => self.cfg[4] & !0xFFFF | 0x4,
                0x18 => self.cfg[6] & !0xFFF,
                0x1C..=0x24 => 0,
                _ => self.cfg[offset as usize / 4],
            }
        }
        fn config_write(&mut self, offset: u16, data: &[u8]) {
            let i = offset as usize / 4;
            let shift = (offset % 4) * 8;
            let mut v = self.cfg[i].to_le_bytes();
            for (k, b) in data.iter().enumerate() {
                v[(shift / 8) as usize + k] = *b;
            }
            self.cfg[i] = u32::from_le_bytes(v);
        }
        fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
            self.log
                .lock()
                .unwrap()
                .push((bar, offset, data.len(), false));
            data.fill(0xAB);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.log
                .lock()
                .unwrap()
                .push((bar, offset, data.len(), true));
        }
    }

    fn cfg_addr(dev: u8, reg: u8) -> [u8; 4] {
        (0x8000_0000u32 | (u32::from(dev) << 11) | u32::from(reg)).to_le_bytes()
    }

    fn read_cfg(bus: &mut PciBus, dev: u8, reg: u8) -> u32 {
        bus.pio_write(0xCF8, &cfg_addr(dev, reg));
        let mut d = [0u8; 4];
        bus.pio_read(0xCFC, &mut d);
        u32::from_le_bytes(d)
    }

    #[test]
    fn config_address_decode() {
        let a = ConfigAddress::decode(0x8001_0A14 | (3 << 11) | (2 << 8));
        assert!(a.enabled);
        assert_eq!(a.bus, 1);
        assert_eq!(a.dev, 1 | 3);
        assert_eq!(a.func, 2);
        assert_eq!(a.reg, 0x14);
        let b = ConfigAddress::decode(0x0000_08FF);
        assert!(!b.enabled);
        assert_eq!(b.dev, 1);
        assert_eq!(b.reg, 0xFC);
    }

    #[test]
    fn host_bridge_identity_and_absent_devices() {
        let mut bus = PciBus::new();
        assert_eq!(read_cfg(&mut bus, 0, 0), 0x29C0_8086);
        assert_eq!(read_cfg(&mut bus, 0, 8) >> 8, 0x06_00_00);
        assert_eq!(read_cfg(&mut bus, 1, 0), 0xFFFF_FFFF);
        assert_eq!(read_cfg(&mut bus, 31, 0), 0xFFFF_FFFF);
        // Disabled address: all ones.
        bus.pio_write(0xCF8, &0x0000_0000u32.to_le_bytes());
        let mut d = [0u8; 4];
        bus.pio_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
        // Function 1 of device 0 does not exist.
        bus.pio_write(0xCF8, &0x8000_0100u32.to_le_bytes());
        bus.pio_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
        // Bus 1 does not exist.
        bus.pio_write(0xCF8, &0x8001_0000u32.to_le_bytes());
        bus.pio_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
    }

    #[test]
    fn sub_dword_reads_and_address_readback() {
        let mut bus = PciBus::new();
        bus.pio_write(0xCF8, &cfg_addr(0, 0));
        let mut w = [0u8; 2];
        bus.pio_read(0xCFE, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x29C0);
        let mut b = [0u8; 1];
        bus.pio_read(0xCFD, &mut b);
        assert_eq!(b[0], 0x80);
        let mut a = [0u8; 4];
        bus.pio_read(0xCF8, &mut a);
        assert_eq!(a, cfg_addr(0, 0));
        // A 2-byte access at 0xCFF would cross the dword: all ones.
        bus.pio_read(0xCFF, &mut w);
        assert_eq!(w, [0xFF, 0xFF]);
    }

    #[test]
    fn bars_are_sized_placed_and_routed_after_memory_enable() {
        let mut bus = PciBus::new();
        let fake = FakeFn::default();
        let log = fake.log.clone();
        let placed = bus.add_device(1, Box::new(fake)).unwrap();
        assert_eq!(
            placed,
            vec![
                MappedBar {
                    index: 0,
                    base: 0xC000_0000,
                    size: 0x1_0000
                },
                MappedBar {
                    index: 2,
                    base: 0xC001_0000,
                    size: 0x1000
                },
            ]
        );
        // Decoding is off until the guest sets Memory Space Enable.
        let mut d = [0u8; 4];
        assert!(!bus.mmio_read(0xC000_0000, &mut d));
        assert_eq!(d, [0xFF; 4]);
        bus.pio_write(0xCF8, &cfg_addr(1, 4));
        bus.pio_write(0xCFC, &[0x06]);
        assert!(bus.mmio_read(0xC000_0010, &mut d));
        assert_eq!(d, [0xAB; 4]);
        assert!(bus.mmio_write(0xC001_0004, &[1, 2, 3, 4]));
        assert_eq!(
            *log.lock().unwrap(),
            vec![(0, 0x10, 4, false), (2, 4, 4, true)]
        );
        // An access straddling the end of a BAR is not routed.
        assert!(!bus.mmio_write(0xC001_0FFE, &[0; 4]));

        // The guest moves BAR2.
        bus.pio_write(0xCF8, &cfg_addr(1, 0x18));
        bus.pio_write(0xCFC, &0xD000_0000u32.to_le_bytes());
        assert_eq!(bus.mapped_bars(1)[1].base, 0xD000_0000);
        assert!(!bus.mmio_write(0xC001_0004, &[0; 4]));
        assert!(bus.mmio_write(0xD000_0004, &[0; 4]));
    }

    #[test]
    fn allocator_respects_alignment_and_window() {
        let mut a = BarAllocator::default();
        assert_eq!(a.allocate(0x1000), Some(0xC000_0000));
        assert_eq!(a.allocate(0x1_0000), Some(0xC001_0000));
        assert_eq!(a.allocate(0x3000), None);
        assert_eq!(
            a.allocate(1 << 30),
            None,
            "1 GiB at 0xC0000000 would pass the window end"
        );
    }
}
