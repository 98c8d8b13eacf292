//! A first-fit free-list allocator over one contiguous memory range.
//!
//! Free blocks form a singly linked list sorted by address; each free block stores its size and
//! the next pointer in its first 16 bytes. Allocations carry no header (the caller passes the
//! same size and alignment to [`Heap::free`], as `GlobalAlloc` does), every block is a multiple
//! of 16 bytes, and freeing coalesces with both neighbours, so freeing everything restores one
//! block. A free that overlaps a free block (double free, wrong size) is reported, not absorbed.
//!
//! The heap is not thread-safe by itself: the kernel wraps it in an interrupt-disabling lock.

use core::ptr;

const GRAIN: usize = 16;

#[repr(C)]
struct FreeBlock {
    size: usize,
    next: *mut FreeBlock,
}

/// Live counters of a [`Heap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Allocations not yet freed.
    pub live_allocs: usize,
    /// Bytes requested by those allocations.
    pub live_bytes: usize,
    /// Highest `live_bytes` seen.
    pub peak_bytes: usize,
    /// Total allocations ever made.
    pub total_allocs: u64,
    /// Allocation requests that could not be satisfied.
    pub failed_allocs: u64,
    /// Size of the managed range.
    pub capacity: usize,
}

/// Why a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FreeError {
    /// The block lies (partly) outside the managed range.
    #[error("free of {addr:#x} (+{size:#x}) outside the heap")]
    OutOfRange {
        /// Address passed to the free.
        addr: usize,
        /// Size passed to the free, in bytes.
        size: usize,
    },
    /// The block overlaps memory that is already free.
    #[error("free of {addr:#x} (+{size:#x}) overlaps free memory: double free or wrong size")]
    Overlap {
        /// Address passed to the free.
        addr: usize,
        /// Size passed to the free, in bytes.
        size: usize,
    },
}

/// The allocator state.
pub struct Heap {
    head: *mut FreeBlock,
    /// A node of the free list (or null) where [`Heap::free`] may start its walk when the block
    /// freed lies above it: frees come in runs of nearby addresses, and walking the list from
    /// its head each time cost about 110 emulated instructions per free.
    finger: *mut FreeBlock,
    start: usize,
    end: usize,
    stats: HeapStats,
}

// SAFETY: the heap only hands out raw memory; the kernel serializes all access behind a lock.
unsafe impl Send for Heap {}

fn block_size(size: usize) -> usize {
    size.max(GRAIN).div_ceil(GRAIN) * GRAIN
}

impl Heap {
    /// An empty heap that satisfies no request.
    pub const fn empty() -> Heap {
        Heap {
            head: ptr::null_mut(),
            finger: ptr::null_mut(),
            start: 0,
            end: 0,
            stats: HeapStats {
                live_allocs: 0,
                live_bytes: 0,
                peak_bytes: 0,
                total_allocs: 0,
                failed_allocs: 0,
                capacity: 0,
            },
        }
    }

    /// Takes ownership of `[start, start + size)`.
    ///
    /// # Safety
    /// The range must be valid, writable memory used by nothing else for the heap's lifetime,
    /// and this must be called at most once.
    pub unsafe fn init(&mut self, start: usize, size: usize) {
        let s = start.div_ceil(GRAIN) * GRAIN;
        let e = (start + size) & !(GRAIN - 1);
        self.start = s;
        self.end = e;
        if e > s {
            let b = s as *mut FreeBlock;
            // SAFETY: the caller guarantees the range is ours; `s` is 16-aligned.
            unsafe {
                b.write(FreeBlock {
                    size: e - s,
                    next: ptr::null_mut(),
                })
            };
            self.head = b;
            self.stats.capacity = e - s;
        }
    }

    /// Current counters.
    pub fn stats(&self) -> HeapStats {
        self.stats
    }

    /// Total bytes in free blocks and the number of free blocks.
    pub fn free_summary(&self) -> (usize, usize) {
        let (mut bytes, mut n) = (0, 0);
        let mut p = self.head;
        while !p.is_null() {
            // SAFETY: every list node is a FreeBlock we wrote inside the heap range.
            unsafe {
                bytes += (*p).size;
                p = (*p).next;
            }
            n += 1;
        }
        (bytes, n)
    }

    /// Allocates `size` bytes aligned to `align` (a power of two); null when out of memory.
    pub fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        let need = block_size(size);
        let align = align.max(GRAIN);
        let mut prev: *mut FreeBlock = ptr::null_mut();
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: list nodes are valid FreeBlocks inside the heap range (see `free`).
            let (bstart, bsize, next) = unsafe { (cur as usize, (*cur).size, (*cur).next) };
            if bsize < need {
                // Too small whatever the alignment: skip it before the alignment arithmetic
                // (a division), as most blocks passed over are small holes and every
                // instruction is emulated on the nested KVM here.
                prev = cur;
                cur = next;
                continue;
            }
            let bend = bstart + bsize;
            let mut a = bstart.div_ceil(align) * align;
            if a != bstart && a - bstart < GRAIN {
                a = (bstart + GRAIN).div_ceil(align) * align;
            }
            if a.checked_add(need).is_some_and(|e| e <= bend) {
                let tail = bend - (a + need);
                // Replace `cur` by [front?, tail?] in the sorted list.
                let mut link = next;
                if tail > 0 {
                    let t = (a + need) as *mut FreeBlock;
                    // SAFETY: [a+need, bend) lies in the free block being split.
                    unsafe {
                        t.write(FreeBlock {
                            size: tail,
                            next: link,
                        })
                    };
                    link = t;
                }
                if a > bstart {
                    // SAFETY: `cur` stays a free block, shortened to the front part.
                    unsafe {
                        (*cur).size = a - bstart;
                        (*cur).next = link;
                    }
                } else {
                    // `cur` leaves the list: the finger must not point at it.
                    if self.finger == cur {
                        self.finger = prev;
                    }
                    if prev.is_null() {
                        self.head = link;
                    } else {
                        // SAFETY: `prev` is a valid list node.
                        unsafe { (*prev).next = link };
                    }
                }
                self.stats.live_allocs += 1;
                self.stats.live_bytes += size;
                self.stats.total_allocs += 1;
                self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.live_bytes);
                return a as *mut u8;
            }
            prev = cur;
            cur = next;
        }
        self.stats.failed_allocs += 1;
        ptr::null_mut()
    }

    /// Returns a block obtained from [`Heap::alloc`] with the same `size`.
    ///
    /// # Safety
    /// `ptr`/`size` must describe a live allocation of this heap, not used afterwards.
    pub unsafe fn free(&mut self, ptr: *mut u8, size: usize) -> Result<(), FreeError> {
        let addr = ptr as usize;
        let len = block_size(size);
        if !addr.is_multiple_of(GRAIN) || addr < self.start || addr.saturating_add(len) > self.end {
            return Err(FreeError::OutOfRange { addr, size });
        }
        let end = addr + len;
        // Every node before the finger lies below it, so a walk for an address above the
        // finger may start there.
        let (mut prev, mut cur) = if !self.finger.is_null() && (self.finger as usize) < addr {
            // SAFETY: the finger is a valid list node (kept so by `alloc` and below).
            (self.finger, unsafe { (*self.finger).next })
        } else {
            (ptr::null_mut(), self.head)
        };
        while !cur.is_null() && (cur as usize) < addr {
            prev = cur;
            // SAFETY: valid list node.
            cur = unsafe { (*cur).next };
        }
        let prev_end = if prev.is_null() {
            0
        } else {
            // SAFETY: prev is a valid, non-null node of the free list.
            prev as usize + unsafe { (*prev).size }
        };
        if prev_end > addr || (!cur.is_null() && (cur as usize) < end) {
            return Err(FreeError::Overlap { addr, size });
        }
        let b = addr as *mut FreeBlock;
        // SAFETY: [addr, end) was an allocation of ours and is now free; 16-aligned.
        unsafe {
            b.write(FreeBlock {
                size: len,
                next: cur,
            });
            if !cur.is_null() && cur as usize == end {
                (*b).size += (*cur).size;
                (*b).next = (*cur).next;
            }
            if prev.is_null() {
                self.head = b;
            } else if prev_end == addr {
                (*prev).size += (*b).size;
                (*prev).next = (*b).next;
            } else {
                (*prev).next = b;
            }
        }
        // `prev` stays in the list (it may have absorbed the block); without one, the block
        // is the head.
        self.finger = if prev.is_null() { self.head } else { prev };
        self.stats.live_allocs -= 1;
        self.stats.live_bytes -= size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    struct Arena {
        mem: Vec<u8>,
        heap: Heap,
    }

    fn arena(size: usize) -> Arena {
        let mut mem = alloc::vec![0u8; size + 64];
        let mut heap = Heap::empty();
        // SAFETY: the Vec outlives the heap in every test (both live in Arena).
        unsafe { heap.init(mem.as_mut_ptr() as usize + 3, size) };
        Arena { mem, heap }
    }

    #[test]
    fn alloc_respects_alignment_and_never_overlaps() {
        let mut a = arena(1 << 20);
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut seed = 0x1234_5678u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            if live.len() < 64 && rnd() % 3 != 0 {
                let size = (rnd() % 5000) as usize + 1;
                let align = 1usize << (rnd() % 13);
                let p = a.heap.alloc(size, align) as usize;
                if p == 0 {
                    continue;
                }
                assert_eq!(p % align, 0);
                for &(q, qs) in &live {
                    assert!(p + size <= q || q + qs <= p, "overlap");
                }
                live.push((p, size));
            } else if !live.is_empty() {
                let i = (rnd() as usize) % live.len();
                let (p, s) = live.swap_remove(i);
                // SAFETY: p/s come from alloc above.
                unsafe { a.heap.free(p as *mut u8, s).unwrap() };
            }
        }
        for (p, s) in live.drain(..) {
            // SAFETY: as above.
            unsafe { a.heap.free(p as *mut u8, s).unwrap() };
        }
        let st = a.heap.stats();
        assert_eq!((st.live_allocs, st.live_bytes), (0, 0));
        assert_eq!(a.heap.free_summary(), (st.capacity, 1), "fully coalesced");
        assert!(a.mem.len() > st.capacity);
    }

    #[test]
    fn frees_in_any_order_around_the_finger_coalesce_and_catch_double_frees() {
        let mut a = arena(1 << 16);
        let blocks: Vec<*mut u8> = (0..32).map(|_| a.heap.alloc(48, 16)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        // SAFETY: every pointer is a live allocation of 48 bytes, freed once (the refused
        // double frees change nothing).
        unsafe {
            // Every other block, upwards: the finger follows the frees.
            for p in blocks.iter().step_by(2) {
                a.heap.free(*p, 48).unwrap();
            }
            // A double free just above the finger and one far below it are both refused.
            assert!(a.heap.free(blocks[30], 48).is_err());
            assert!(a.heap.free(blocks[0], 48).is_err());
            // An allocation takes the lowest hole (which may be the finger's node).
            let again = a.heap.alloc(48, 16);
            assert_eq!(again, blocks[0]);
            a.heap.free(again, 48).unwrap();
            // The rest downwards: each free lies below the finger and walks from the head.
            for p in blocks.iter().skip(1).step_by(2).rev() {
                a.heap.free(*p, 48).unwrap();
            }
        }
        let st = a.heap.stats();
        assert_eq!((st.live_allocs, st.live_bytes), (0, 0));
        assert_eq!(a.heap.free_summary(), (st.capacity, 1), "fully coalesced");
    }

    #[test]
    fn exhaustion_and_counters() {
        let mut a = arena(4096);
        let p = a.heap.alloc(4000, 16);
        assert!(!p.is_null());
        assert!(a.heap.alloc(200, 16).is_null());
        let st = a.heap.stats();
        assert_eq!(
            (st.live_allocs, st.live_bytes, st.failed_allocs),
            (1, 4000, 1)
        );
        // SAFETY: p is live.
        unsafe { a.heap.free(p, 4000).unwrap() };
        assert_eq!(a.heap.stats().peak_bytes, 4000);
    }

    #[test]
    fn double_free_and_foreign_free_are_refused() {
        let mut a = arena(4096);
        let p = a.heap.alloc(64, 16);
        let q = a.heap.alloc(64, 16);
        // SAFETY: live allocations.
        unsafe {
            a.heap.free(p, 64).unwrap();
            assert!(matches!(a.heap.free(p, 64), Err(FreeError::Overlap { .. })));
            assert!(matches!(
                a.heap.free(0x10 as *mut u8, 64),
                Err(FreeError::OutOfRange { .. })
            ));
            a.heap.free(q, 64).unwrap();
        }
        assert_eq!(a.heap.free_summary().1, 1);
    }

    #[test]
    fn page_aligned_allocations_leave_usable_fronts() {
        let mut a = arena(64 * 1024);
        let small = a.heap.alloc(24, 8);
        let page = a.heap.alloc(8192, 4096);
        assert_eq!(page as usize % 4096, 0);
        let small2 = a.heap.alloc(32, 16);
        assert!((small2 as usize) < page as usize, "front remainder reused");
        // SAFETY: live allocations.
        unsafe {
            a.heap.free(page, 8192).unwrap();
            a.heap.free(small, 24).unwrap();
            a.heap.free(small2, 32).unwrap();
        }
        assert_eq!(a.heap.free_summary().1, 1);
    }
}
