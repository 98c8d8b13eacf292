//! The PVH `hvm_start_info` structure, its module list and memory map.

use guest_core::memmap::Range;

pub const MAGIC: u32 = 0x336E_C578;

#[repr(C)]
#[derive(Clone, Copy)]
struct RawStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawModule {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RawMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

pub const MEMMAP_RAM: u32 = 1;
/// Bound on list lengths read from the start info (defends against garbage).
const MAX_ENTRIES: u32 = 128;
/// Only memory below this is identity-mapped by the boot page tables.
pub const MAPPED_LIMIT: u64 = 0x1_0000_0000;

/// A boot module: physical range and its name (module command line).
#[derive(Clone, Copy)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
    pub name: &'static str,
}

impl Module {
    /// The module's bytes (identity-mapped).
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: `parse` checked the module lies in mapped memory; the monitor put it there and
        // the heap never covers it (it is a reserved range).
        unsafe { core::slice::from_raw_parts(self.paddr as *const u8, self.size as usize) }
    }
}

pub struct StartInfo {
    phys: u64,
    raw: RawStartInfo,
}

#[derive(Debug)]
pub enum StartInfoError {
    BadPointer(u64),
    BadMagic(u32),
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::BadPointer(p) => write!(
                f,
                "hvm_start_info pointer {p:#x} is not in mapped memory; boot through PVH"
            ),
            StartInfoError::BadMagic(m) => write!(
                f,
                "hvm_start_info magic {m:#x} != {MAGIC:#x}; boot through PVH"
            ),
        }
    }
}

fn in_mapped(addr: u64, len: u64) -> bool {
    addr != 0 && addr.checked_add(len).is_some_and(|e| e <= MAPPED_LIMIT)
}

/// Reads a NUL-terminated ASCII string of at most 255 bytes at `p`; "" when absent or invalid.
fn c_str(p: u64) -> &'static str {
    if !in_mapped(p, 256) {
        return "";
    }
    // SAFETY: 256 bytes at `p` are mapped (checked above); the monitor wrote the string.
    let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, 256) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(0);
    core::str::from_utf8(&bytes[..len]).unwrap_or("")
}

impl StartInfo {
    /// # Safety
    /// `phys` must be the value the PVH loader put in `ebx`.
    pub unsafe fn parse(phys: u64) -> Result<StartInfo, StartInfoError> {
        if !in_mapped(phys, core::mem::size_of::<RawStartInfo>() as u64) {
            return Err(StartInfoError::BadPointer(phys));
        }
        // SAFETY: mapped (checked) and provided by the loader.
        let raw = unsafe { (phys as *const RawStartInfo).read_unaligned() };
        if raw.magic != MAGIC {
            return Err(StartInfoError::BadMagic(raw.magic));
        }
        Ok(StartInfo { phys, raw })
    }

    pub fn cmdline(&self) -> &'static str {
        c_str(self.raw.cmdline_paddr)
    }

    fn modules_raw(&self) -> impl Iterator<Item = RawModule> + '_ {
        let n = self.raw.nr_modules.min(MAX_ENTRIES) as u64;
        let base = self.raw.modlist_paddr;
        let ok = in_mapped(base, n * 32);
        (0..if ok { n } else { 0 }).map(move |i| {
            // SAFETY: the whole list is mapped (checked above).
            unsafe { ((base + i * 32) as *const RawModule).read_unaligned() }
        })
    }

    pub fn modules(&self) -> impl Iterator<Item = Module> + '_ {
        self.modules_raw()
            .filter(|m| in_mapped(m.paddr, m.size))
            .map(|m| Module {
                paddr: m.paddr,
                size: m.size,
                name: c_str(m.cmdline_paddr),
            })
    }

    pub fn module_count(&self) -> usize {
        self.modules_raw().count()
    }

    fn memmap_raw(&self) -> impl Iterator<Item = RawMemmapEntry> + '_ {
        let n = self.raw.memmap_entries.min(MAX_ENTRIES) as u64;
        let base = self.raw.memmap_paddr;
        let ok = self.raw.version >= 1 && in_mapped(base, n * 24);
        (0..if ok { n } else { 0 }).map(move |i| {
            // SAFETY: the whole map is mapped (checked above).
            unsafe { ((base + i * 24) as *const RawMemmapEntry).read_unaligned() }
        })
    }

    /// RAM ranges of the memory map.
    pub fn ram(&self) -> impl Iterator<Item = Range> + '_ {
        self.memmap_raw()
            .filter(|e| e.kind == MEMMAP_RAM)
            .map(|e| Range::new(e.addr, e.addr.saturating_add(e.size)))
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram().map(|r| r.len()).sum()
    }

    /// Everything the heap must not cover: the start info itself, module list, memory map,
    /// command lines and modules. Returns the number of entries written to `out`.
    pub fn reserved(&self, out: &mut [Range]) -> usize {
        let mut n = 0;
        let mut push = |r: Range| {
            if n < out.len() {
                out[n] = r;
                n += 1;
            }
        };
        push(Range::new(self.phys, self.phys + 4096));
        push(Range::new(
            self.raw.modlist_paddr,
            self.raw.modlist_paddr + self.raw.nr_modules.min(MAX_ENTRIES) as u64 * 32,
        ));
        push(Range::new(
            self.raw.memmap_paddr,
            self.raw.memmap_paddr + self.raw.memmap_entries.min(MAX_ENTRIES) as u64 * 24,
        ));
        push(Range::new(
            self.raw.cmdline_paddr,
            self.raw.cmdline_paddr + 256,
        ));
        for m in self.modules_raw() {
            push(Range::new(m.paddr, m.paddr.saturating_add(m.size)));
            push(Range::new(m.cmdline_paddr, m.cmdline_paddr + 256));
        }
        n
    }
}
