//! PVH boot: where the kernel, modules and boot data go, and writing them into
//! guest memory.
//!
//! [`BootPlan::new`] checks everything against the memory layout before a VM
//! exists; [`BootPlan::write`] then loads the kernel with linux-loader's ELF loader
//! and writes `hvm_start_info`, the memory map, the module list, module names, the
//! command line and the boot GDT (layout in [`crate::layout`]).

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use linux_loader::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::cpu::BOOT_GDT;
use crate::elf::{KernelImage, PvhKernel};
use crate::error::{LayoutError, Result, VmmError};
use crate::layout::{self, MemoryLayout};

/// `hvm_start_info.magic`.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// `hvm_start_info.version` written by this monitor.
pub const HVM_START_VERSION: u32 = 1;
/// Alignment of boot modules in guest memory.
pub const MODULE_ALIGN: u64 = 0x1000;
/// Most boot modules accepted (the module list area holds this many entries).
pub const MAX_MODULES: usize = ((layout::MODLIST_END - layout::MODLIST_ADDR) as usize)
    / std::mem::size_of::<hvm_modlist_entry>();

/// A boot module: its bytes and the name the guest sees.
#[derive(Clone, Debug)]
pub struct BootModule {
    /// Name written as the module's command line (NUL-terminated in the guest).
    pub name: String,
    /// File contents.
    pub data: Vec<u8>,
}

/// Where a module ends up in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedModule {
    /// Guest-physical address (page-aligned).
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Guest-physical address of the NUL-terminated name.
    pub name_paddr: u64,
}

/// A checked boot configuration, ready to be written into guest memory.
#[derive(Debug)]
pub struct BootPlan {
    layout: MemoryLayout,
    kernel: PvhKernel,
    kernel_image: KernelImage,
    modules: Vec<BootModule>,
    placed: Vec<PlacedModule>,
    cmdline: String,
}

impl BootPlan {
    /// Checks that the kernel, modules and command line fit the layout.
    pub fn new(
        layout: MemoryLayout,
        kernel: PvhKernel,
        kernel_image: impl Into<KernelImage>,
        modules: Vec<BootModule>,
        cmdline: String,
    ) -> Result<Self> {
        let kernel_image = kernel_image.into();
        let memory_mib = layout.ram_bytes >> 20;
        for segment in &kernel.segments {
            if segment.paddr < layout::HIGH_RAM_START {
                return Err(LayoutError::KernelBelowHighRam {
                    start: segment.paddr,
                    end: segment.paddr + segment.memsz,
                }
                .into());
            }
            if !layout.is_loadable(segment.paddr, segment.memsz) {
                return Err(LayoutError::KernelPastRam {
                    start: segment.paddr,
                    end: segment.paddr + segment.memsz,
                    ram_end: layout.low_ram_end(),
                    memory_mib,
                }
                .into());
            }
        }
        if cmdline.len() > layout::CMDLINE_MAX {
            return Err(VmmError::Usage(format!(
                "--cmdline is {} bytes long; the limit is {}",
                cmdline.len(),
                layout::CMDLINE_MAX
            )));
        }
        if cmdline.contains('\0') {
            return Err(VmmError::Usage("--cmdline must not contain NUL".into()));
        }
        if modules.len() > MAX_MODULES {
            return Err(VmmError::Usage(format!(
                "{} modules given; at most {MAX_MODULES} are supported",
                modules.len()
            )));
        }
        let mut next = layout::align_up(kernel.end(), MODULE_ALIGN).unwrap_or(u64::MAX);
        let mut name_at = layout::MODULE_NAMES_ADDR;
        let mut placed = Vec::with_capacity(modules.len());
        for module in &modules {
            if module.name.contains('\0') {
                return Err(VmmError::Usage(format!(
                    "module name {:?} must not contain NUL",
                    module.name
                )));
            }
            let name_end = name_at + module.name.len() as u64 + 1;
            if name_end > layout::MODULE_NAMES_END {
                return Err(VmmError::Usage(format!(
                    "module names are too long together (limit {} bytes including NULs)",
                    layout::MODULE_NAMES_END - layout::MODULE_NAMES_ADDR
                )));
            }
            let size = module.data.len() as u64;
            if !layout.is_loadable(next, size.max(1)) {
                return Err(LayoutError::ModuleDoesNotFit {
                    name: module.name.clone(),
                    size,
                    ram_end: layout.low_ram_end(),
                }
                .into());
            }
            placed.push(PlacedModule {
                paddr: next,
                size,
                name_paddr: name_at,
            });
            name_at = name_end;
            next = layout::align_up(next + size.max(1), MODULE_ALIGN).unwrap_or(u64::MAX);
        }
        Ok(BootPlan {
            layout,
            kernel,
            kernel_image,
            modules,
            placed,
            cmdline,
        })
    }

    /// The PVH entry point.
    pub fn entry(&self) -> u32 {
        self.kernel.entry
    }

    /// Where each module is placed.
    pub fn placed_modules(&self) -> &[PlacedModule] {
        &self.placed
    }

    /// The `hvm_start_info` this plan writes.
    pub fn start_info(&self) -> hvm_start_info {
        hvm_start_info {
            magic: HVM_START_MAGIC,
            version: HVM_START_VERSION,
            flags: 0,
            nr_modules: self.modules.len() as u32,
            modlist_paddr: if self.modules.is_empty() {
                0
            } else {
                layout::MODLIST_ADDR
            },
            cmdline_paddr: layout::CMDLINE_ADDR,
            rsdp_paddr: 0,
            memmap_paddr: layout::MEMMAP_ADDR,
            memmap_entries: self.layout.memmap().len() as u32,
            reserved: 0,
        }
    }

    /// Loads the kernel and writes all boot data. Returns the address of
    /// `hvm_start_info` (the value for `ebx`).
    pub fn write(&self, mem: &GuestMemoryMmap) -> Result<u64> {
        let loaded = match &self.kernel_image {
            KernelImage::File(file) => Elf::load(mem, None, &mut &*file, None),
            KernelImage::Bytes(bytes) => {
                Elf::load(mem, None, &mut std::io::Cursor::new(bytes.as_slice()), None)
            }
        }
        .map_err(|source| VmmError::KernelLoad { source })?;
        match loaded.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) if addr.0 == u64::from(self.kernel.entry) => {}
            other => {
                return Err(VmmError::PvhEntryMismatch {
                    found: format!("{other:?}"),
                    expected: self.kernel.entry,
                })
            }
        }

        for (m, p) in self.modules.iter().zip(&self.placed) {
            mem.write_slice(&m.data, GuestAddress(p.paddr))
                .map_err(VmmError::memory_write("a module"))?;
            let mut name = m.name.as_bytes().to_vec();
            name.push(0);
            mem.write_slice(&name, GuestAddress(p.name_paddr))
                .map_err(VmmError::memory_write("a module name"))?;
        }
        let mut cmdline = self.cmdline.as_bytes().to_vec();
        cmdline.push(0);
        mem.write_slice(&cmdline, GuestAddress(layout::CMDLINE_ADDR))
            .map_err(VmmError::memory_write("the command line"))?;

        let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|d| d.to_le_bytes()).collect();
        mem.write_slice(&gdt, GuestAddress(layout::BOOT_GDT_ADDR))
            .map_err(VmmError::memory_write("the boot GDT"))?;

        let memmap: Vec<hvm_memmap_table_entry> = self
            .layout
            .memmap()
            .iter()
            .map(|e| hvm_memmap_table_entry {
                addr: e.addr,
                size: e.size,
                type_: e.kind,
                reserved: 0,
            })
            .collect();
        let modlist: Vec<hvm_modlist_entry> = self
            .placed
            .iter()
            .map(|p| hvm_modlist_entry {
                paddr: p.paddr,
                size: p.size,
                cmdline_paddr: p.name_paddr,
                reserved: 0,
            })
            .collect();
        let mut params = BootParams::new(&self.start_info(), GuestAddress(layout::START_INFO_ADDR));
        params.set_sections(&memmap, GuestAddress(layout::MEMMAP_ADDR));
        if !modlist.is_empty() {
            params.set_modules(&modlist, GuestAddress(layout::MODLIST_ADDR));
        }
        PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
            .map_err(|source| VmmError::StartInfo { source })?;
        Ok(layout::START_INFO_ADDR)
    }
}

/// Creates guest memory for `layout`.
pub fn create_guest_memory(layout: &MemoryLayout) -> Result<GuestMemoryMmap> {
    let ranges: Vec<(GuestAddress, usize)> = layout
        .regions()
        .into_iter()
        .map(|(a, l)| (GuestAddress(a), l as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|source| VmmError::MemoryAllocation { source })
}

/// Guest RAM backed by one memfd (each region at its own offset of the file, mapped
/// shared), so that another process can map it: vfio-user's DMA_MAP sends the fd.
pub fn create_shared_guest_memory(layout: &MemoryLayout) -> Result<GuestMemoryMmap> {
    let regions = layout.regions();
    let total: u64 = regions.iter().map(|(_, len)| len).sum();
    let name = c"rnic-vmm-guest-ram";
    // SAFETY: memfd_create reads the NUL-terminated name and returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(VmmError::SharedMemory(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.set_len(total).map_err(VmmError::SharedMemory)?;
    let file = std::sync::Arc::new(file);
    let mut offset = 0;
    let mut ranges = Vec::with_capacity(regions.len());
    for (address, len) in regions {
        ranges.push((
            GuestAddress(address),
            len as usize,
            Some(vm_memory::FileOffset::from_arc(file.clone(), offset)),
        ));
        offset += len;
    }
    GuestMemoryMmap::from_ranges_with_files(&ranges)
        .map_err(|source| VmmError::MemoryAllocation { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::parse_pvh_kernel;
    use crate::fixture::{Asm, PvhImage};

    fn kernel() -> (PvhKernel, Vec<u8>) {
        let mut a = Asm::new();
        a.exit(0);
        let img = PvhImage::new(0x10_0000, a.finish()).build();
        (parse_pvh_kernel(&img).unwrap(), img)
    }

    #[test]
    fn shared_guest_memory_is_one_memfd_at_consecutive_offsets() {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let layout = MemoryLayout::new(16).unwrap();
        let mem = create_shared_guest_memory(&layout).unwrap();
        let mut expected = 0;
        for region in mem.iter() {
            let file = region.file_offset().expect("file-backed");
            assert_eq!(file.start(), expected);
            expected += region.len();
        }
        assert_eq!(expected, 16 << 20);
        mem.write_obj(0xABCD_u32, GuestAddress(0x1000)).unwrap();
        assert_eq!(rd32(&mem, 0x1000), 0xABCD);
    }

    fn rd32(mem: &GuestMemoryMmap, a: u64) -> u32 {
        mem.read_obj(GuestAddress(a)).unwrap()
    }

    fn rd64(mem: &GuestMemoryMmap, a: u64) -> u64 {
        mem.read_obj(GuestAddress(a)).unwrap()
    }

    fn cstr(mem: &GuestMemoryMmap, a: u64) -> String {
        let mut out = Vec::new();
        for i in 0.. {
            let b: u8 = mem.read_obj(GuestAddress(a + i)).unwrap();
            if b == 0 {
                break;
            }
            out.push(b);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn start_info_struct_layout_matches_the_pvh_abi() {
        assert_eq!(std::mem::size_of::<hvm_start_info>(), 56);
        assert_eq!(std::mem::size_of::<hvm_modlist_entry>(), 32);
        assert_eq!(std::mem::size_of::<hvm_memmap_table_entry>(), 24);
        assert_eq!(MAX_MODULES, 96);
    }

    #[test]
    fn writes_start_info_modules_memmap_and_cmdline() {
        let layout = MemoryLayout::new(64).unwrap();
        let (k, img) = kernel();
        let modules = vec![
            BootModule {
                name: "rnic.sys".into(),
                data: b"MZ driver".to_vec(),
            },
            BootModule {
                name: "plan.json".into(),
                data: vec![7u8; 5000],
            },
        ];
        let plan = BootPlan::new(layout.clone(), k, img, modules, "console=com1 x".into()).unwrap();
        let mem = create_guest_memory(&layout).unwrap();
        let si = plan.write(&mem).unwrap();
        assert_eq!(si, layout::START_INFO_ADDR);

        // hvm_start_info, by raw offsets of the PVH ABI.
        assert_eq!(rd32(&mem, si), HVM_START_MAGIC);
        assert_eq!(rd32(&mem, si + 4), 1);
        assert_eq!(rd32(&mem, si + 8), 0);
        assert_eq!(rd32(&mem, si + 12), 2);
        assert_eq!(rd64(&mem, si + 16), layout::MODLIST_ADDR);
        assert_eq!(rd64(&mem, si + 24), layout::CMDLINE_ADDR);
        assert_eq!(rd64(&mem, si + 32), 0);
        assert_eq!(rd64(&mem, si + 40), layout::MEMMAP_ADDR);
        assert_eq!(rd32(&mem, si + 48), 3);
        assert_eq!(cstr(&mem, layout::CMDLINE_ADDR), "console=com1 x");

        // Module list entries {paddr, size, cmdline_paddr, reserved}.
        let m0 = layout::MODLIST_ADDR;
        let m1 = m0 + 32;
        let p0 = rd64(&mem, m0);
        let p1 = rd64(&mem, m1);
        assert_eq!(p0 % MODULE_ALIGN, 0);
        assert_eq!(p1 % MODULE_ALIGN, 0);
        assert!(p0 >= 0x10_1000, "module placed above the kernel");
        assert!(p1 >= p0 + 9);
        assert_eq!(rd64(&mem, m0 + 8), 9);
        assert_eq!(rd64(&mem, m1 + 8), 5000);
        assert_eq!(cstr(&mem, rd64(&mem, m0 + 16)), "rnic.sys");
        assert_eq!(cstr(&mem, rd64(&mem, m1 + 16)), "plan.json");
        let mut buf = [0u8; 9];
        mem.read_slice(&mut buf, GuestAddress(p0)).unwrap();
        assert_eq!(&buf, b"MZ driver");

        // Memory map entries {addr, size, type, reserved}.
        let mm = layout::MEMMAP_ADDR;
        assert_eq!(rd64(&mem, mm), 0);
        assert_eq!(rd64(&mem, mm + 8), 0x9_FC00);
        assert_eq!(rd32(&mem, mm + 16), 1);
        assert_eq!(rd64(&mem, mm + 24), 0x9_FC00);
        assert_eq!(rd32(&mem, mm + 24 + 16), 2);
        assert_eq!(rd64(&mem, mm + 48), 0x10_0000);
        assert_eq!(rd64(&mem, mm + 56), 64 * layout::MIB - 0x10_0000);

        // The kernel is at its physical address.
        let first: u8 = mem.read_obj(GuestAddress(0x10_0000)).unwrap();
        assert_eq!(first, 0x66);
    }

    #[test]
    fn no_modules_means_null_modlist() {
        let layout = MemoryLayout::new(16).unwrap();
        let (k, img) = kernel();
        let plan = BootPlan::new(layout, k, img, vec![], String::new()).unwrap();
        let si = plan.start_info();
        assert_eq!(si.nr_modules, 0);
        assert_eq!(si.modlist_paddr, 0);
    }

    #[test]
    fn module_too_big_for_memory_is_rejected() {
        let layout = MemoryLayout::new(8).unwrap();
        let (k, img) = kernel();
        let m = BootModule {
            name: "big".into(),
            data: vec![0; 8 << 20],
        };
        let e = BootPlan::new(layout, k, img, vec![m], String::new()).unwrap_err();
        assert!(
            matches!(&e, VmmError::Layout(LayoutError::ModuleDoesNotFit { name, size, .. })
                if name == "big" && *size == 8 << 20),
            "{e:?}"
        );
        assert!(e.to_string().contains("raise --memory"), "{e}");
    }

    #[test]
    fn kernel_below_1mib_is_rejected() {
        let mut a = Asm::new();
        a.exit(0);
        let img = PvhImage::new(0x8000, a.finish()).build();
        let k = parse_pvh_kernel(&img).unwrap();
        let e = BootPlan::new(
            MemoryLayout::new(16).unwrap(),
            k,
            img,
            vec![],
            String::new(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                VmmError::Layout(LayoutError::KernelBelowHighRam { start: 0x8000, .. })
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("below 1 MiB"), "{e}");
    }

    #[test]
    fn overlong_cmdline_is_rejected() {
        let (k, img) = kernel();
        let e = BootPlan::new(
            MemoryLayout::new(16).unwrap(),
            k,
            img,
            vec![],
            "x".repeat(layout::CMDLINE_MAX + 1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--cmdline"));
    }
}
