//! PCI bus 0 behind configuration mechanism #1 (ports 0xCF8, 0xCFC..0xCFF), the
//! host bridge, BAR placement at start-up and MMIO routing to decoded BARs.
//!
//! Every function on the bus is a [`PciFunction`] (the device model's trait) and
//! owns its BAR decode: the bus only applies the [`BarMove`]s that configuration
//! writes return to its range map, so a guest that re-programs a BAR (or toggles
//! Memory Space Enable) is routed correctly on the next access.

use std::sync::{Arc, Mutex, MutexGuard};

use rnic_contract::pci::{BAR0, BAR_COUNT, CLASS_CODE_OFFSET, VENDOR_ID_OFFSET};
use rnic_device::pci::{BarMove, BarRegion, PciFunction};
use tracing::{debug, trace, warn};
use vm_allocator::{AddressAllocator, AllocPolicy};

use crate::bus::{BusError, RangeBus};
use crate::layout::{PCI_MMIO_END, PCI_MMIO_START};

/// CONFIG_ADDRESS port.
pub const CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// First CONFIG_DATA port.
pub const CONFIG_DATA_PORT: u16 = 0xCFC;
/// Ports decoded by configuration mechanism #1: CONFIG_ADDRESS (0xCF8..0xCFB) and
/// CONFIG_DATA (0xCFC..0xCFF).
pub const CONFIG_PORT_COUNT: u16 = 8;
/// Device number of the host bridge.
pub const HOST_BRIDGE_DEVICE: u8 = 0;
/// Device number of the first RNIC; further RNICs take the following numbers.
pub const FIRST_RNIC_DEVICE: u8 = 1;
/// Device numbers on bus 0 (0..=31).
pub const DEVICES_PER_BUS: u8 = 32;

/// A PCI function shared between the bus (vCPU threads) and whoever services it.
pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

/// Why a function could not be plugged into the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PciError {
    /// The device number is beyond bus 0's 32 devices.
    #[error("PCI device number {device} does not exist (bus 0 has devices 0..=31)")]
    NoSuchDevice {
        /// The device number asked for.
        device: u8,
    },
    /// Another function already sits at that device number.
    #[error("PCI device number {device} is taken")]
    DeviceTaken {
        /// The device number asked for.
        device: u8,
    },
    /// The PCI MMIO window has no room left for a BAR.
    #[error(
        "BAR{bar} of device {device} ({size} bytes) does not fit in the PCI MMIO window \
         {PCI_MMIO_START:#x}..{PCI_MMIO_END:#x}; attach fewer devices"
    )]
    BarDoesNotFit {
        /// Device number.
        device: u8,
        /// BAR index.
        bar: usize,
        /// BAR size in bytes.
        size: u64,
    },
}

/// A decoded CONFIG_ADDRESS value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigAddress {
    /// Bit 31: configuration cycles enabled.
    pub enabled: bool,
    /// Bits 23:16: bus number.
    pub bus: u8,
    /// Bits 15:11: device number.
    pub device: u8,
    /// Bits 10:8: function number.
    pub function: u8,
    /// Bits 7:2, as a byte offset into configuration space.
    pub register: u16,
}

impl ConfigAddress {
    /// Decodes a CONFIG_ADDRESS value (reserved bits 30:24 and 1:0 are ignored).
    pub fn decode(value: u32) -> Self {
        ConfigAddress {
            enabled: value & 0x8000_0000 != 0,
            bus: ((value >> 16) & 0xFF) as u8,
            device: ((value >> 11) & 0x1F) as u8,
            function: ((value >> 8) & 0x7) as u8,
            register: (value & 0xFC) as u16,
        }
    }
}

/// The host bridge at 00:00.0: identity registers only, writes ignored, no BARs.
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

impl PciFunction for HostBridge {
    fn config_read(&mut self, offset: u16) -> u32 {
        match usize::from(offset & !3) {
            VENDOR_ID_OFFSET => (u32::from(Self::DEVICE) << 16) | u32::from(Self::VENDOR),
            o if o == CLASS_CODE_OFFSET & !3 => Self::CLASS << 8,
            _ => 0,
        }
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        trace!(offset, ?data, "host bridge config write ignored");
        Vec::new()
    }
    fn bar_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn bar_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
    fn bar_regions(&self) -> Vec<BarRegion> {
        Vec::new()
    }
    fn decoded_bars(&self) -> Vec<BarRegion> {
        Vec::new()
    }
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

/// Hands out BAR addresses in the PCI MMIO window: vm-allocator's address allocator
/// over `PCI_MMIO_START..PCI_MMIO_END`, first fit, each BAR aligned to its size.
#[derive(Debug)]
pub struct BarAllocator {
    window: AddressAllocator,
}

impl Default for BarAllocator {
    fn default() -> Self {
        BarAllocator {
            window: AddressAllocator::new(PCI_MMIO_START, PCI_MMIO_END - PCI_MMIO_START)
                .expect("the PCI MMIO window (layout.rs) is a non-empty range"),
        }
    }
}

impl BarAllocator {
    /// The lowest free `size`-aligned range of `size` bytes, or `None` when `size` is
    /// not a power of two or no such range is free.
    pub fn allocate(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        self.window
            .allocate(size, size, AllocPolicy::FirstMatch)
            .ok()
            .map(|range| range.start())
    }
}

/// Where a decoded BAR range leads: device number and BAR index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BarTarget {
    device: u8,
    bar: usize,
}

fn lock(function: &SharedFunction) -> MutexGuard<'_, dyn PciFunction + 'static> {
    function.lock().unwrap_or_else(|p| p.into_inner())
}

fn bar_offset(index: usize) -> u16 {
    (BAR0 + 4 * index) as u16
}

/// Sizes every BAR of `function` by the PCI procedure (write all ones, read back,
/// restore), as firmware does. Returns memory BARs; I/O BARs are reported and left
/// unassigned.
pub fn size_bars(function: &mut dyn PciFunction) -> Vec<BarInfo> {
    let mut probe = |offset: u16| {
        let original = function.config_read(offset);
        let _ = function.config_write(offset, &u32::MAX.to_le_bytes());
        let mask = function.config_read(offset);
        let _ = function.config_write(offset, &original.to_le_bytes());
        mask
    };
    let mut bars = Vec::new();
    let mut index = 0;
    while index < BAR_COUNT {
        let offset = bar_offset(index);
        let low = probe(offset);
        if low == 0 {
            index += 1;
            continue;
        }
        if low & 1 == 1 {
            warn!(
                bar = index,
                "I/O BARs are not supported; BAR left unassigned"
            );
            index += 1;
            continue;
        }
        let is_64 = (low >> 1) & 3 == 2 && index + 1 < BAR_COUNT;
        let mask = if is_64 {
            (u64::from(probe(offset + 4)) << 32) | u64::from(low & !0xF)
        } else {
            0xFFFF_FFFF_0000_0000 | u64::from(low & !0xF)
        };
        let size = (!mask).wrapping_add(1);
        if size.is_power_of_two() {
            bars.push(BarInfo { index, size, is_64 });
        } else {
            warn!(
                bar = index,
                mask, "BAR size mask is not a power of two; BAR ignored"
            );
        }
        index += if is_64 { 2 } else { 1 };
    }
    bars
}

/// Bus 0 with configuration mechanism #1 and the MMIO ranges of its BARs.
pub struct PciBus {
    address: u32,
    functions: Vec<Option<SharedFunction>>,
    bars: RangeBus<BarTarget>,
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
            functions: (0..DEVICES_PER_BUS).map(|_| None).collect(),
            bars: RangeBus::default(),
            allocator: BarAllocator::default(),
        };
        bus.functions[usize::from(HOST_BRIDGE_DEVICE)] = Some(Arc::new(Mutex::new(HostBridge)));
        bus
    }

    /// Plugs `function` in at device number `device`, sizes its BARs and places
    /// them in the MMIO window (memory decoding stays off: the guest enables it).
    /// Returns the BAR placements, by BAR index.
    pub fn add_device(
        &mut self,
        device: u8,
        function: SharedFunction,
    ) -> Result<Vec<MappedBar>, PciError> {
        match self.functions.get(usize::from(device)) {
            None => return Err(PciError::NoSuchDevice { device }),
            Some(Some(_)) => return Err(PciError::DeviceTaken { device }),
            Some(None) => {}
        }
        let mut placed = Vec::new();
        {
            let mut f = lock(&function);
            let mut bars = size_bars(&mut *f);
            // Largest first keeps the window packed.
            bars.sort_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));
            for b in &bars {
                let base = self
                    .allocator
                    .allocate(b.size)
                    .ok_or(PciError::BarDoesNotFit {
                        device,
                        bar: b.index,
                        size: b.size,
                    })?;
                let offset = bar_offset(b.index);
                let mut moves = f.config_write(offset, &(base as u32).to_le_bytes());
                if b.is_64 {
                    moves.extend(f.config_write(offset + 4, &((base >> 32) as u32).to_le_bytes()));
                }
                self.apply_moves(device, &moves);
                placed.push(MappedBar {
                    index: b.index,
                    base,
                    size: b.size,
                });
            }
        }
        placed.sort_by_key(|b| b.index);
        self.functions[usize::from(device)] = Some(function);
        Ok(placed)
    }

    /// Applies the BAR moves a configuration write of `device` reported: old ranges
    /// leave the map first (so two BARs may swap places), then new ones enter. A
    /// new range that overlaps another device's BAR is not decoded (a warning says
    /// so), as the guest programmed a conflict.
    fn apply_moves(&mut self, device: u8, moves: &[BarMove]) {
        for m in moves {
            if let Some(old) = m.old {
                let target = BarTarget {
                    device,
                    bar: m.index,
                };
                let ours = self
                    .bars
                    .resolve(old.address, 1)
                    .is_some_and(|(range, t, _)| range.base == old.address && *t == target);
                if ours {
                    self.bars.remove(old.address);
                }
            }
        }
        for m in moves {
            if let Some(new) = m.new {
                let target = BarTarget {
                    device,
                    bar: m.index,
                };
                match self.bars.insert(new.address, new.size, target) {
                    Ok(()) => debug!(
                        device,
                        bar = m.index,
                        base = new.address,
                        size = new.size,
                        "BAR decoded"
                    ),
                    Err(e @ (BusError::Overlap { .. } | BusError::InvalidRange { .. })) => warn!(
                        device,
                        bar = m.index,
                        "BAR not decoded: {e}; the guest programmed a conflicting address"
                    ),
                }
            } else {
                debug!(device, bar = m.index, "BAR no longer decoded");
            }
        }
    }

    /// BARs decoded right now for device `device`, by BAR index.
    pub fn mapped_bars(&self, device: u8) -> Vec<MappedBar> {
        let mut bars: Vec<MappedBar> = self
            .bars
            .iter()
            .filter(|(_, t)| t.device == device)
            .map(|(range, t)| MappedBar {
                index: t.bar,
                base: range.base,
                size: range.len,
            })
            .collect();
        bars.sort_by_key(|b| b.index);
        bars
    }

    fn target(&self) -> Option<(u8, SharedFunction, u16)> {
        let a = ConfigAddress::decode(self.address);
        if !a.enabled || a.bus != 0 || a.function != 0 {
            return None;
        }
        let function = self.functions.get(usize::from(a.device))?.clone()?;
        Some((a.device, function, a.register))
    }

    /// Reads `data.len()` bytes from configuration port `port` (0xCF8..0xCFF);
    /// anything not decoded reads all ones.
    pub fn config_port_read(&mut self, port: u16, data: &mut [u8]) {
        data.fill(0xFF);
        if port == CONFIG_ADDRESS_PORT && data.len() == 4 {
            data.copy_from_slice(&self.address.to_le_bytes());
            return;
        }
        let Some(byte) = port.checked_sub(CONFIG_DATA_PORT).filter(|b| *b < 4) else {
            return;
        };
        let byte = usize::from(byte);
        if byte + data.len() > 4 {
            return;
        }
        if let Some((_, function, register)) = self.target() {
            let dword = lock(&function).config_read(register).to_le_bytes();
            data.copy_from_slice(&dword[byte..byte + data.len()]);
        }
    }

    /// Writes `data` to configuration port `port` (0xCF8..0xCFF) and applies the
    /// BAR moves the write causes.
    pub fn config_port_write(&mut self, port: u16, data: &[u8]) {
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
        if usize::from(byte) + data.len() > 4 {
            return;
        }
        if let Some((device, function, register)) = self.target() {
            let moves = lock(&function).config_write(register + byte, data);
            self.apply_moves(device, &moves);
        }
    }

    fn resolve_bar(&self, addr: u64, len: usize) -> Option<(SharedFunction, usize, u64)> {
        let (_, target, offset) = self.bars.resolve(addr, len as u64)?;
        let function = self.functions[usize::from(target.device)].clone()?;
        Some((function, target.bar, offset))
    }

    /// MMIO read; false (and all ones) when no BAR decodes `addr`.
    pub fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve_bar(addr, data.len()) {
            Some((function, bar, offset)) => {
                lock(&function).bar_read(bar, offset, data);
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
        match self.resolve_bar(addr, data.len()) {
            Some((function, bar, offset)) => {
                lock(&function).bar_write(bar, offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnic_device::pci::{bar_moves, BarKind};

    /// (BAR, offset, length, is_write).
    type BarAccess = (usize, u64, usize, bool);

    /// A function of the [`PciFunction`] trait with a 64-bit 64 KiB BAR0 and a
    /// 32-bit 4 KiB BAR2, decoding while Command bit 1 is set, that records BAR
    /// accesses.
    struct FakeFunction {
        config: [u32; 64],
        log: Arc<Mutex<Vec<BarAccess>>>,
    }

    impl Default for FakeFunction {
        fn default() -> Self {
            FakeFunction {
                config: [0; 64],
                log: Arc::default(),
            }
        }
    }

    impl FakeFunction {
        fn bar_address(&self, index: usize) -> u64 {
            match index {
                0 => (u64::from(self.config[5]) << 32) | u64::from(self.config[4] & !0xFFFF),
                _ => u64::from(self.config[6] & !0xFFF),
            }
        }
    }

    impl PciFunction for FakeFunction {
        fn config_read(&mut self, offset: u16) -> u32 {
            assert_eq!(offset % 4, 0);
            match offset {
                0 => 0x0001_7E57,
                0x10 => self.config[4] & !0xFFFF | 0x4,
                0x18 => self.config[6] & !0xFFF,
                0x1C..=0x24 => 0,
                _ => self.config[offset as usize / 4],
            }
        }
        fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
            let before = self.decoded_bars();
            let i = offset as usize / 4;
            let shift = (offset % 4) as usize;
            let mut v = self.config[i].to_le_bytes();
            v[shift..shift + data.len()].copy_from_slice(data);
            self.config[i] = u32::from_le_bytes(v);
            bar_moves(&before, &self.decoded_bars())
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
        fn bar_regions(&self) -> Vec<BarRegion> {
            [
                (0, 0x1_0000, BarKind::Memory64),
                (2, 0x1000, BarKind::Memory32),
            ]
            .into_iter()
            .map(|(index, size, kind)| BarRegion {
                index,
                address: self.bar_address(index),
                size,
                kind,
            })
            .filter(|r| r.address != 0)
            .collect()
        }
        fn decoded_bars(&self) -> Vec<BarRegion> {
            if self.config[1] & 2 == 0 {
                return Vec::new();
            }
            self.bar_regions()
        }
    }

    fn cfg_addr(dev: u8, reg: u8) -> [u8; 4] {
        (0x8000_0000u32 | (u32::from(dev) << 11) | u32::from(reg)).to_le_bytes()
    }

    fn read_cfg(bus: &mut PciBus, dev: u8, reg: u8) -> u32 {
        bus.config_port_write(0xCF8, &cfg_addr(dev, reg));
        let mut d = [0u8; 4];
        bus.config_port_read(0xCFC, &mut d);
        u32::from_le_bytes(d)
    }

    fn write_cfg(bus: &mut PciBus, dev: u8, reg: u8, data: &[u8]) {
        bus.config_port_write(0xCF8, &cfg_addr(dev, reg));
        bus.config_port_write(0xCFC, data);
    }

    fn fake_on_bus(bus: &mut PciBus, device: u8) -> Arc<Mutex<Vec<BarAccess>>> {
        let fake = FakeFunction::default();
        let log = fake.log.clone();
        bus.add_device(device, Arc::new(Mutex::new(fake))).unwrap();
        log
    }

    #[test]
    fn config_address_decode() {
        let a = ConfigAddress::decode(0x8001_0A14 | (3 << 11) | (2 << 8));
        assert!(a.enabled);
        assert_eq!(a.bus, 1);
        assert_eq!(a.device, 1 | 3);
        assert_eq!(a.function, 2);
        assert_eq!(a.register, 0x14);
        let b = ConfigAddress::decode(0x0000_08FF);
        assert!(!b.enabled);
        assert_eq!(b.device, 1);
        assert_eq!(b.register, 0xFC);
    }

    #[test]
    fn host_bridge_identity_and_absent_devices() {
        let mut bus = PciBus::new();
        assert_eq!(read_cfg(&mut bus, 0, 0), 0x29C0_8086);
        assert_eq!(read_cfg(&mut bus, 0, 8) >> 8, 0x06_00_00);
        assert_eq!(read_cfg(&mut bus, 1, 0), 0xFFFF_FFFF);
        assert_eq!(read_cfg(&mut bus, 31, 0), 0xFFFF_FFFF);
        // Disabled address: all ones.
        bus.config_port_write(0xCF8, &0x0000_0000u32.to_le_bytes());
        let mut d = [0u8; 4];
        bus.config_port_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
        // Function 1 of device 0 does not exist.
        bus.config_port_write(0xCF8, &0x8000_0100u32.to_le_bytes());
        bus.config_port_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
        // Bus 1 does not exist.
        bus.config_port_write(0xCF8, &0x8001_0000u32.to_le_bytes());
        bus.config_port_read(0xCFC, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::MAX);
    }

    #[test]
    fn sub_dword_reads_and_address_readback() {
        let mut bus = PciBus::new();
        bus.config_port_write(0xCF8, &cfg_addr(0, 0));
        let mut w = [0u8; 2];
        bus.config_port_read(0xCFE, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x29C0);
        let mut b = [0u8; 1];
        bus.config_port_read(0xCFD, &mut b);
        assert_eq!(b[0], 0x80);
        let mut a = [0u8; 4];
        bus.config_port_read(0xCF8, &mut a);
        assert_eq!(a, cfg_addr(0, 0));
        // A 2-byte access at 0xCFF would cross the dword: all ones.
        bus.config_port_read(0xCFF, &mut w);
        assert_eq!(w, [0xFF, 0xFF]);
    }

    #[test]
    fn bars_are_sized_placed_and_routed_after_memory_enable() {
        let mut bus = PciBus::new();
        let log = fake_on_bus(&mut bus, 1);
        assert_eq!(
            bus.add_device(1, Arc::new(Mutex::new(HostBridge))),
            Err(PciError::DeviceTaken { device: 1 })
        );
        assert_eq!(
            bus.add_device(32, Arc::new(Mutex::new(HostBridge))),
            Err(PciError::NoSuchDevice { device: 32 })
        );
        // Decoding is off until the guest sets Memory Space Enable.
        assert!(bus.mapped_bars(1).is_empty());
        let mut d = [0u8; 4];
        assert!(!bus.mmio_read(0xC000_0000, &mut d));
        assert_eq!(d, [0xFF; 4]);
        write_cfg(&mut bus, 1, 4, &[0x06]);
        assert_eq!(
            bus.mapped_bars(1),
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
        assert!(bus.mmio_read(0xC000_0010, &mut d));
        assert_eq!(d, [0xAB; 4]);
        assert!(bus.mmio_write(0xC001_0004, &[1, 2, 3, 4]));
        assert_eq!(
            *log.lock().unwrap(),
            vec![(0, 0x10, 4, false), (2, 4, 4, true)]
        );
        // An access straddling the end of a BAR is not routed.
        assert!(!bus.mmio_write(0xC001_0FFE, &[0; 4]));

        // The guest moves BAR2: the function reports the move, the bus follows.
        write_cfg(&mut bus, 1, 0x18, &0xD000_0000u32.to_le_bytes());
        assert_eq!(bus.mapped_bars(1)[1].base, 0xD000_0000);
        assert!(!bus.mmio_write(0xC001_0004, &[0; 4]));
        assert!(bus.mmio_write(0xD000_0004, &[0; 4]));

        // Memory Space Enable off: nothing is decoded any more.
        write_cfg(&mut bus, 1, 4, &[0x00]);
        assert!(bus.mapped_bars(1).is_empty());
        assert!(!bus.mmio_write(0xD000_0004, &[0; 4]));
    }

    #[test]
    fn a_bar_moved_onto_another_devices_bar_is_not_decoded_until_moved_away() {
        let mut bus = PciBus::new();
        let first = fake_on_bus(&mut bus, 1);
        let second = fake_on_bus(&mut bus, 2);
        write_cfg(&mut bus, 1, 4, &[0x02]);
        write_cfg(&mut bus, 2, 4, &[0x02]);
        let first_bar2 = bus.mapped_bars(1)[1].base;
        // Device 2 puts its BAR2 on device 1's BAR2.
        write_cfg(&mut bus, 2, 0x18, &(first_bar2 as u32).to_le_bytes());
        assert_eq!(bus.mapped_bars(2).len(), 1, "{:?}", bus.mapped_bars(2));
        assert!(bus.mmio_write(first_bar2, &[0; 4]));
        assert_eq!(first.lock().unwrap().last(), Some(&(2, 0, 4, true)));
        assert!(second.lock().unwrap().is_empty());
        // Moving it away decodes it at its new address; device 1 keeps its range.
        write_cfg(&mut bus, 2, 0x18, &0xE000_0000u32.to_le_bytes());
        assert_eq!(bus.mapped_bars(2)[1].base, 0xE000_0000);
        assert_eq!(bus.mapped_bars(1)[1].base, first_bar2);
        assert!(bus.mmio_read(0xE000_0000, &mut [0; 4]));
        assert_eq!(second.lock().unwrap().last(), Some(&(2, 0, 4, false)));
    }

    #[test]
    fn allocator_respects_alignment_and_window() {
        let mut a = BarAllocator::default();
        assert_eq!(a.allocate(0x1000), Some(0xC000_0000));
        assert_eq!(a.allocate(0x1_0000), Some(0xC001_0000));
        assert_eq!(a.allocate(0x3000), None);
        // First fit: the hole left below the 64 KiB BAR by its alignment is used.
        assert_eq!(a.allocate(0x2000), Some(0xC000_2000));
        assert_eq!(a.allocate(0x1000), Some(0xC000_1000));
        let window = PCI_MMIO_END - PCI_MMIO_START;
        assert_eq!(
            a.allocate(window.next_power_of_two() * 2),
            None,
            "larger than the window"
        );
        // Fill the window with BARs of its largest power-of-two size that still fit.
        let mut fresh = BarAllocator::default();
        let big = 1u64 << (63 - window.leading_zeros());
        let mut placed = Vec::new();
        while let Some(base) = fresh.allocate(big) {
            assert_eq!(base % big, 0, "aligned to its size");
            assert!(
                base >= PCI_MMIO_START && base + big <= PCI_MMIO_END,
                "{base:#x}"
            );
            placed.push(base);
            assert!(placed.len() <= 2, "the window holds at most two");
        }
        assert!(!placed.is_empty());
    }
}
