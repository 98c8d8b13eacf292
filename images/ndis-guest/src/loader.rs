//! Loads the driver module (a PE32+ image) into heap memory with `guest_core::pe`, resolving
//! its imports through the resolver the caller passes (the NDIS layer's export table).

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::string::String;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_core::pe::{PeError, PeInfo};

use crate::start_info::Module;

/// Address range of the loaded image, for exception reports.
static IMAGE_BASE: AtomicU64 = AtomicU64::new(0);
static IMAGE_END: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub enum LoadError {
    Pe(PeError),
    OutOfMemory(usize),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Pe(e) => write!(f, "{e}"),
            LoadError::OutOfMemory(n) => write!(f, "cannot allocate {n} bytes for the image"),
        }
    }
}

/// A driver image laid out in memory.
pub struct LoadedImage {
    pub name: String,
    pub base: u64,
    pub size: usize,
    pub entry: u64,
    pub imports: usize,
    layout: Layout,
}

/// Lays `module` out in fresh heap memory; `resolve(module, name)` gives the address of each
/// import (None fails the load with the import's name).
pub fn load(
    module: &Module,
    resolve: &mut dyn FnMut(&str, &str) -> Option<u64>,
) -> Result<LoadedImage, LoadError> {
    let data = module.bytes();
    let info = PeInfo::parse(data).map_err(LoadError::Pe)?;
    let size = info.size_of_image as usize;
    let align = (info.section_alignment as usize).max(4096);
    let layout = Layout::from_size_align(size, align).map_err(|_| LoadError::OutOfMemory(size))?;
    // SAFETY: size is non-zero (checked by the parser).
    let mem = unsafe { alloc_zeroed(layout) };
    if mem.is_null() {
        return Err(LoadError::OutOfMemory(size));
    }
    // SAFETY: `mem` is a fresh allocation of `size` bytes.
    let dest = unsafe { core::slice::from_raw_parts_mut(mem, size) };
    let base = mem as u64;
    let result = info.load(data, dest, base, resolve);
    match result {
        Ok(stats) => {
            IMAGE_BASE.store(base, Ordering::Relaxed);
            IMAGE_END.store(base + size as u64, Ordering::Relaxed);
            Ok(LoadedImage {
                name: String::from(if module.name.is_empty() {
                    "driver.sys"
                } else {
                    module.name.rsplit('/').next().unwrap_or(module.name)
                }),
                base,
                size,
                entry: base + info.entry_rva as u64,
                imports: stats.imports_resolved,
                layout,
            })
        }
        Err(e) => {
            // SAFETY: allocated above with `layout`, not referenced anywhere else.
            unsafe { dealloc(mem, layout) };
            Err(LoadError::Pe(e))
        }
    }
}

/// Frees the image memory once the driver is unloaded.
pub fn unload(img: LoadedImage) {
    IMAGE_BASE.store(0, Ordering::Relaxed);
    IMAGE_END.store(0, Ordering::Relaxed);
    // SAFETY: allocated in `load` with this layout; the driver has been unloaded, nothing of it
    // runs or is referenced any more.
    unsafe { dealloc(img.base as *mut u8, img.layout) };
}

/// Formats " (driver+0xoff)" when `addr` lies inside the loaded image.
pub struct AddrInfo(u64);

impl fmt::Display for AddrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, e) = (
            IMAGE_BASE.load(Ordering::Relaxed),
            IMAGE_END.load(Ordering::Relaxed),
        );
        if b != 0 && (b..e).contains(&self.0) {
            write!(f, " (driver image +{:#x})", self.0 - b)
        } else {
            Ok(())
        }
    }
}

pub fn describe_address(addr: u64) -> AddrInfo {
    AddrInfo(addr)
}
