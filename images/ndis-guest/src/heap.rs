//! The kernel heap: `guest_core::heap::Heap` behind an `IrqLock`, as the global allocator.

use core::alloc::{GlobalAlloc, Layout};

use guest_core::heap::{Heap, HeapStats};

use crate::sync::IrqLock;

static HEAP: IrqLock<Heap> = IrqLock::new(Heap::empty());

struct KernelAlloc;

// SAFETY: `Heap` returns blocks of at least `size` bytes aligned to `align`, never handing out
// the same memory twice while it is live.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.lock().alloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this layout.
        if let Err(e) = unsafe { HEAP.lock().free(ptr, layout.size()) } {
            panic!("heap: {e}");
        }
    }
}

#[global_allocator]
static ALLOCATOR: KernelAlloc = KernelAlloc;

/// Hands `[start, start + size)` to the heap.
///
/// # Safety
/// The range must be mapped RAM used by nothing else; call once.
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.lock().init(start as usize, size as usize) }
}

pub fn stats() -> HeapStats {
    HEAP.lock().stats()
}
