//! Memory the NDK consumer hands the provider: buffers and the MDL chains that describe them,
//! built the way `IoAllocateMdl` + `MmBuildMdlForNonPagedPool` build them (multi-page, with a
//! byte offset, chained), except that each MDL's `StartVa` (and `MappedSystemVa`) is an
//! *alias* address that is not mapped in the guest's page tables: `ALIAS_BASE + physical`. An
//! NDK provider treats an MDL's virtual address as an index and uses only the PFN array; one
//! that dereferences it page-faults, and the fault handler names the rule
//! ([`mdl_va_fault`], installed by [`install_fault_namer`]).

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::vec::Vec;

use guest_core::ndk::{plan_mdl_chain, MdlPlan, PAGE_SIZE};
use ndis_abi::{MDL, MDL_SOURCE_IS_NONPAGED_POOL};

/// Base of the alias addresses MDLs carry: PML4 slot 1 (512 GiB), which the boot page tables
/// leave empty (they identity-map the low 4 GiB only).
pub const ALIAS_BASE: u64 = 0x80_0000_0000;
/// Size of the alias window: the identity-mapped 4 GiB.
pub const ALIAS_SPAN: u64 = 0x1_0000_0000;

/// The rule an access to the alias window breaks.
pub const MDL_VA_RULE: &str =
    "NDK MDL rule: the provider dereferenced an MDL's virtual address (an index into the registration, never to be dereferenced; use the PFN array)";

/// The page-fault namer: a fault inside the alias window is the MDL rule.
pub fn mdl_va_fault(cr2: u64, _rip: u64) -> Option<&'static str> {
    (ALIAS_BASE..ALIAS_BASE + ALIAS_SPAN)
        .contains(&cr2)
        .then_some(MDL_VA_RULE)
}

/// Routes page faults through [`mdl_va_fault`] (once, at boot).
pub fn install_fault_namer() {
    crate::interrupts::set_page_fault_namer(mdl_va_fault);
}

/// The alias (unmapped) address of identity-mapped guest memory at `va`.
pub fn alias_of(va: u64) -> u64 {
    ALIAS_BASE + va
}

/// A consumer buffer: `len` bytes starting `offset` bytes into a page-aligned block
/// (identity-mapped: its address is its physical address).
pub struct Buffer {
    block: *mut u8,
    layout: Layout,
    /// Offset of the data in the first page.
    pub offset: usize,
    /// Bytes of data.
    pub len: usize,
}

impl Buffer {
    /// A zeroed buffer of `len` bytes at `offset` (0..4095) into its first page; None when
    /// out of memory.
    pub fn new(len: usize, offset: usize) -> Option<Buffer> {
        let size = (offset + len.max(1)).div_ceil(PAGE_SIZE as usize) * PAGE_SIZE as usize;
        let layout = Layout::from_size_align(size, PAGE_SIZE as usize).ok()?;
        // SAFETY: non-zero size.
        let block = unsafe { alloc_zeroed(layout) };
        (!block.is_null()).then_some(Buffer {
            block,
            layout,
            offset,
            len,
        })
    }

    /// Address (identity-mapped, so also physical) of the first data byte.
    pub fn addr(&self) -> u64 {
        self.block as u64 + self.offset as u64
    }

    /// The data.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the block holds offset + len bytes, owned by this buffer.
        unsafe { core::slice::from_raw_parts(self.block.add(self.offset), self.len) }
    }

    /// The data, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.block.add(self.offset), self.len) }
    }

    /// Fills the data with a pattern that differs per byte and per `seed`.
    pub fn fill(&mut self, seed: u8) {
        for (i, b) in self.bytes_mut().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.block, self.layout) };
    }
}

/// An MDL chain describing (part of) a [`Buffer`] with alias virtual addresses.
pub struct MdlChain {
    mdls: Vec<(*mut MDL, Layout)>,
}

impl MdlChain {
    /// Describes `len` bytes of `buf` from `start` as MDLs spanning at most `pages_per_mdl`
    /// pages each, every boundary between two MDLs on a page boundary (`u32::MAX`: one MDL).
    /// None when out of memory or the range leaves the buffer.
    pub fn new(buf: &Buffer, start: usize, len: usize, pages_per_mdl: u32) -> Option<MdlChain> {
        if start.checked_add(len)? > buf.len {
            return None;
        }
        let pa = buf.addr() + start as u64;
        let plans = plan_mdl_chain(alias_of(pa), pa, len as u64, pages_per_mdl);
        let mut chain = MdlChain { mdls: Vec::new() };
        for plan in &plans {
            chain.mdls.push(build_mdl(plan)?);
        }
        for pair in chain.mdls.windows(2) {
            // SAFETY: both MDLs were just built and are owned by the chain.
            unsafe { (*pair[0].0).Next = pair[1].0 };
        }
        Some(chain)
    }

    /// The first MDL (what an NDK call takes); NULL for an empty chain.
    pub fn head(&self) -> *mut MDL {
        self.mdls.first().map_or(core::ptr::null_mut(), |m| m.0)
    }

    /// MDLs in the chain.
    pub fn len(&self) -> usize {
        self.mdls.len()
    }

    /// The first MDL's virtual address (`StartVa + ByteOffset`): the base NDK addresses of the
    /// registration are relative to.
    pub fn virtual_address(&self) -> u64 {
        self.mdls.first().map_or(0, |&(m, _)| {
            // SAFETY: an MDL this chain owns.
            unsafe { (*m).StartVa as u64 + (*m).ByteOffset as u64 }
        })
    }
}

impl Drop for MdlChain {
    fn drop(&mut self) {
        for &(m, layout) in &self.mdls {
            // SAFETY: built by `build_mdl` with this layout.
            unsafe { dealloc(m.cast(), layout) };
        }
    }
}

/// Allocates one MDL (header + PFN array) as `plan` describes it.
fn build_mdl(plan: &MdlPlan) -> Option<(*mut MDL, Layout)> {
    let size = core::mem::size_of::<MDL>() + 8 * plan.pfns.len();
    let layout = Layout::from_size_align(size, 16).ok()?;
    // SAFETY: non-zero size.
    let m = unsafe { alloc_zeroed(layout) }.cast::<MDL>();
    if m.is_null() {
        return None;
    }
    // SAFETY: `m` holds the MDL header followed by room for the PFN array.
    unsafe {
        (*m).Size = size as i16;
        (*m).MdlFlags = MDL_SOURCE_IS_NONPAGED_POOL;
        (*m).StartVa = plan.start_va as *mut core::ffi::c_void;
        (*m).MappedSystemVa = plan.virtual_address() as *mut core::ffi::c_void;
        (*m).ByteCount = plan.byte_count;
        (*m).ByteOffset = plan.byte_offset;
        let pfns = m.add(1).cast::<u64>();
        for (i, &pfn) in plan.pfns.iter().enumerate() {
            pfns.add(i).write(pfn);
        }
    }
    Some((m, layout))
}
