//! PCI configuration mechanism #1 on bus 0: enumeration, BAR decoding, command register and
//! MSI-X capability/table programming.

//!
//! Configuration-space offsets and bits come from the device contract (`rnic_contract::pci`).

use rnic_contract::pci::{
    self as config, command, msix_control, status, CAP_ID_MSIX, MSIX_MESSAGE_CONTROL,
};

use crate::cpu::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;
/// The multi-function bit of the header-type byte.
const HEADER_TYPE_MULTI_FUNCTION: u32 = 0x80;
/// Capabilities live above the standard header (offset 0x40 on).
const FIRST_CAPABILITY_OFFSET: u8 = 0x40;

/// A bus-0 function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bdf {
    pub dev: u8,
    pub func: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "00:{:02x}.{}", self.dev, self.func)
    }
}

impl Bdf {
    fn addr(&self, off: u8) -> u32 {
        0x8000_0000 | (self.dev as u32) << 11 | (self.func as u32) << 8 | (off as u32 & 0xFC)
    }

    pub fn read32(&self, off: u8) -> u32 {
        outl(CONFIG_ADDRESS, self.addr(off));
        inl(CONFIG_DATA)
    }

    pub fn write32(&self, off: u8, v: u32) {
        outl(CONFIG_ADDRESS, self.addr(off));
        outl(CONFIG_DATA, v);
    }

    pub fn read16(&self, off: u8) -> u16 {
        (self.read32(off) >> ((off & 2) * 8)) as u16
    }

    /// 16-bit write done as a read-modify-write of the dword (mechanism #1 is dword-based).
    /// The other half is written back unchanged; callers only use it on RW-only dwords.
    pub fn write16(&self, off: u8, v: u16) {
        let shift = (off & 2) * 8;
        let old = self.read32(off & 0xFC);
        let new = (old & !(0xFFFF << shift)) | (v as u32) << shift;
        self.write32(off & 0xFC, new);
    }

    pub fn vendor_device(&self) -> (u16, u16) {
        let v = self.read32(0);
        (v as u16, (v >> 16) as u16)
    }
}

/// A decoded memory BAR.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bar {
    pub addr: u64,
    pub size: u64,
    pub is64: bool,
}

/// MSI-X capability facts.
#[derive(Clone, Copy, Debug)]
pub struct MsixCap {
    pub cap: u8,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

/// The RNIC as found on the bus.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    pub bdf: Bdf,
    pub bars: [Bar; 6],
    pub msix: Option<MsixCap>,
}

/// Calls `f` for every function present on bus 0.
pub fn for_each_function(mut f: impl FnMut(Bdf)) {
    for dev in 0..32u8 {
        let b0 = Bdf { dev, func: 0 };
        if b0.vendor_device().0 == 0xFFFF {
            continue;
        }
        let header_type = b0.read32(config::HEADER_TYPE as u8 & 0xFC) >> 16;
        let multi = header_type & HEADER_TYPE_MULTI_FUNCTION != 0;
        for func in 0..if multi { 8 } else { 1 } {
            let b = Bdf { dev, func };
            if b.vendor_device().0 != 0xFFFF {
                f(b);
            }
        }
    }
}

/// Decodes (and sizes) the six BARs. Memory decoding is turned off while sizing.
pub fn decode_bars(b: Bdf) -> [Bar; 6] {
    let mut bars = [Bar::default(); 6];
    let cmd = b.read16(config::COMMAND as u8);
    b.write16(config::COMMAND as u8, cmd & !(command::MEMORY | 1));
    let mut i = 0;
    while i < 6 {
        let off = config::BAR0 as u8 + 4 * i as u8;
        let lo = b.read32(off);
        if lo & 1 != 0 {
            i += 1; // I/O BAR: not used by the RNIC
            continue;
        }
        let is64 = (lo >> 1) & 3 == 2 && i < 5;
        b.write32(off, 0xFFFF_FFFF);
        let mask_lo = b.read32(off) & !0xF;
        b.write32(off, lo);
        let (hi, mask_hi) = if is64 {
            let hi = b.read32(off + 4);
            b.write32(off + 4, 0xFFFF_FFFF);
            let m = b.read32(off + 4);
            b.write32(off + 4, hi);
            (hi, m)
        } else {
            (0, if mask_lo != 0 { 0xFFFF_FFFF } else { 0 })
        };
        let mask = (mask_hi as u64) << 32 | mask_lo as u64;
        let size = if mask_lo == 0 && mask_hi == 0 {
            0
        } else {
            (!mask).wrapping_add(1)
        };
        bars[i] = Bar {
            addr: (hi as u64) << 32 | (lo & !0xF) as u64,
            size,
            is64,
        };
        i += if is64 { 2 } else { 1 };
    }
    b.write16(config::COMMAND as u8, cmd);
    bars
}

/// Walks the capability list for MSI-X.
pub fn find_msix(b: Bdf) -> Option<MsixCap> {
    if b.read16(config::STATUS as u8) & status::CAP_LIST == 0 {
        return None;
    }
    let mut cap_offset = (b.read32(config::CAP_PTR as u8) & 0xFC) as u8;
    for _ in 0..48 {
        if cap_offset < FIRST_CAPABILITY_OFFSET {
            return None;
        }
        let header = b.read32(cap_offset);
        if header as u8 == CAP_ID_MSIX {
            let ctrl = (header >> 16) as u16;
            let table = b.read32(cap_offset + 4);
            let pba = b.read32(cap_offset + 8);
            return Some(MsixCap {
                cap: cap_offset,
                table_size: (ctrl & msix_control::TABLE_SIZE_MASK) + 1,
                table_bar: (table & 7) as u8,
                table_offset: table & !7,
                pba_bar: (pba & 7) as u8,
                pba_offset: pba & !7,
            });
        }
        cap_offset = ((header >> 8) & 0xFC) as u8;
    }
    None
}

pub fn probe(b: Bdf) -> Device {
    Device {
        bdf: b,
        bars: decode_bars(b),
        msix: find_msix(b),
    }
}

/// Sets Memory Space Enable and Bus Master Enable.
pub fn enable_memory_and_bus_master(b: Bdf) {
    let cmd = b.read16(config::COMMAND as u8);
    b.write16(
        config::COMMAND as u8,
        cmd | command::MEMORY | command::BUS_MASTER,
    );
}

impl Device {
    /// Virtual (= physical) address of MSI-X table entry `i`, if the table lies in a BAR.
    fn msix_entry(&self, i: u16) -> Option<*mut u32> {
        let m = self.msix?;
        if i >= m.table_size {
            return None;
        }
        let bar = self.bars.get(m.table_bar as usize)?;
        let off = m.table_offset as u64 + 16 * i as u64;
        if bar.addr == 0 || off + 16 > bar.size {
            return None;
        }
        Some((bar.addr + off) as *mut u32)
    }

    /// Programs table entry `i`: message address for `apic_id`, data = `vector`, unmasked.
    pub fn msix_program(&self, i: u16, apic_id: u32, vector: u8) -> bool {
        let Some(e) = self.msix_entry(i) else {
            return false;
        };
        // SAFETY: `e` is inside the device's MSI-X BAR (checked), identity-mapped uncached;
        // aligned 32-bit MMIO accesses.
        unsafe {
            e.write_volatile(0xFEE0_0000 | (apic_id << 12));
            e.add(1).write_volatile(0);
            e.add(2).write_volatile(vector as u32);
            e.add(3).write_volatile(0);
        }
        true
    }

    /// Masks table entry `i`.
    pub fn msix_mask(&self, i: u16) {
        if let Some(e) = self.msix_entry(i) {
            // SAFETY: as for `msix_program`.
            unsafe { e.add(3).write_volatile(1) };
        }
    }

    /// Sets MSI-X Enable and clears Function Mask (or clears Enable when `on` is false).
    pub fn msix_enable(&self, on: bool) {
        if let Some(m) = self.msix {
            let ctrl = self.bdf.read16(m.cap + MSIX_MESSAGE_CONTROL as u8);
            let new = if on {
                (ctrl | msix_control::ENABLE) & !msix_control::FUNCTION_MASK
            } else {
                ctrl & !msix_control::ENABLE
            };
            // The dword holds the read-only capability id/next pointer in its low half.
            let dword = self.bdf.read32(m.cap);
            self.bdf
                .write32(m.cap, (dword & 0xFFFF) | (new as u32) << 16);
        }
    }

    /// True when `[addr, addr + len)` lies inside one of the device's memory BARs.
    pub fn owns_range(&self, addr: u64, len: u64) -> bool {
        self.bars.iter().any(|b| {
            b.size != 0
                && addr >= b.addr
                && addr.checked_add(len).is_some_and(|e| e <= b.addr + b.size)
        })
    }
}
