//! A first-fit free-list allocator over one contiguous memory range, with a size-class pool
//! for small blocks.
//!
//! Free blocks form a singly linked list sorted by address; each free block stores its size and
//! the next pointer in its first 16 bytes. Allocations carry no header (the caller passes the
//! same size and alignment to [`Heap::free`], as `GlobalAlloc` does), every block is a multiple
//! of 16 bytes, and freeing coalesces with both neighbours. A free that overlaps a free block
//! (double free, wrong size) is reported, not absorbed.
//!
//! Small blocks (at most [`SMALL_MAX`] bytes, alignment at most 16: the NDIS layer's net
//! buffer lists, MDLs, OID requests, map nodes, strings) come from the small pool instead: one
//! [`SMALL_POOL`]-byte block taken from the free list at the first small allocation, carved
//! upwards and recycled through one LIFO list per 16-byte size class, so that `alloc` and
//! `free` of a recycled block cost a few instructions instead of a walk of the address-ordered
//! list (85-95 emulated instructions per call, at 1.1-1.5 us apiece on the nested KVM here).
//! The pool keeps the checks: a size map at its start holds one byte per 16-byte grain, the
//! block's length in grains at the first grain of each allocated block and zero elsewhere, so
//! a free is accepted only for exactly the block handed out (a double free, a wrong size, an
//! address inside a block or never handed out is refused as an overlap). When the pool is
//! full, small requests fall back to the free list. [`Heap::release_small_pool`] hands an
//! empty pool back to the free list, after which freeing everything leaves one free block.
//!
//! The heap is not thread-safe by itself: the kernel wraps it in an interrupt-disabling lock.

use core::ptr;

const GRAIN: usize = 16;

/// The largest block, in bytes, the small pool serves (requests of up to this size rounded
/// up to 16 bytes, with an alignment of at most 16).
pub const SMALL_MAX: usize = 1024;
/// Size classes of the small pool: class `c` holds blocks of `(c + 1) * 16` bytes.
const SMALL_CLASSES: usize = SMALL_MAX / GRAIN;
/// Bytes of the small pool, its size map included.
pub const SMALL_POOL: usize = 512 * 1024;
/// Grains (16 bytes) of the small pool, one size-map byte each.
const POOL_GRAINS: usize = SMALL_POOL / GRAIN;
/// Bytes of the size map at the pool's start (its own grains are never handed out).
const POOL_MAP_BYTES: usize = POOL_GRAINS;

/// A free block of the small pool: the next block of its size class.
#[repr(C)]
struct PooledBlock {
    next: *mut PooledBlock,
}

/// The small pool's state (all zero while it is not taken from the free list).
///
/// The size map holds one byte per grain of the carved part of the pool (below `bump`): at
/// the first grain of an allocated block, its length in grains; everywhere else (free blocks,
/// the grains inside a block) zero. A free is accepted only where the map holds exactly the
/// freed length.
struct SmallPool {
    /// Start of the pool (its size map), 0 while there is no pool.
    start: usize,
    /// End of the pool.
    end: usize,
    /// Blocks below `bump` have been handed out at least once; above it, never (their map
    /// bytes are not initialised).
    bump: usize,
    /// Map bytes below this address are initialised (zeroed as `bump` advances).
    map_zeroed: usize,
    /// Head of each size class's free list.
    classes: [*mut PooledBlock; SMALL_CLASSES],
    /// Blocks of the pool allocated now.
    live: usize,
    /// The free list could not spare a pool once: small requests use the list from then on
    /// (rather than retrying, a walk of the whole list, at every small request).
    unavailable: bool,
}

impl SmallPool {
    const fn none() -> SmallPool {
        SmallPool {
            start: 0,
            end: 0,
            bump: 0,
            map_zeroed: 0,
            classes: [ptr::null_mut(); SMALL_CLASSES],
            live: 0,
            unavailable: false,
        }
    }

    fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr < self.end
    }

    /// The size-map byte of the grain at `addr` (inside the pool).
    fn map_byte(&self, addr: usize) -> *mut u8 {
        (self.start + (addr - self.start) / GRAIN) as *mut u8
    }
}

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
    pool: SmallPool,
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
            pool: SmallPool::none(),
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
        // The fast path: a block of the request's size class, free in the pool.
        if size <= SMALL_MAX && align <= GRAIN {
            let grains = block_size(size) / GRAIN;
            let head = self.pool.classes[grains - 1];
            if !head.is_null() {
                // SAFETY: class list nodes are free pool blocks we wrote (see `pool_free`);
                // their size-map byte lies in the pool's map.
                unsafe {
                    self.pool.classes[grains - 1] = (*head).next;
                    *self.pool.map_byte(head as usize) = grains as u8;
                }
                self.pool.live += 1;
                self.count_alloc(size);
                return head.cast();
            }
        }
        self.alloc_slow(size, align)
    }

    fn count_alloc(&mut self, size: usize) {
        self.stats.live_allocs += 1;
        self.stats.live_bytes += size;
        self.stats.total_allocs += 1;
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.live_bytes);
    }

    /// [`Heap::alloc`] without a free pool block of the right class: carve one from the pool,
    /// or walk the free list.
    #[inline(never)]
    fn alloc_slow(&mut self, size: usize, align: usize) -> *mut u8 {
        let need = block_size(size);
        let small = if need <= SMALL_MAX && align <= GRAIN {
            self.pool_carve(need)
        } else {
            0
        };
        let addr = if small != 0 {
            small
        } else {
            self.list_alloc(need, align.max(GRAIN))
        };
        if addr == 0 {
            self.stats.failed_allocs += 1;
            return ptr::null_mut();
        }
        self.count_alloc(size);
        addr as *mut u8
    }

    /// A new block of `need` bytes (a multiple of 16, at most [`SMALL_MAX`]) from the pool's
    /// never-used part, taking the pool from the free list first if there is none; 0 when
    /// the pool is full or cannot be had.
    fn pool_carve(&mut self, need: usize) -> usize {
        if self.pool.start == 0 && (self.pool.unavailable || !self.take_pool()) {
            return 0;
        }
        if self.pool.end - self.pool.bump < need {
            return 0;
        }
        let addr = self.pool.bump;
        self.pool.bump += need;
        // Zero the map up to the new end of the carved part, eight grains at a time (the
        // inner grains of a block must read zero: never a block start).
        let carved_end = self.pool.map_byte(self.pool.bump) as usize;
        while self.pool.map_zeroed < carved_end {
            // SAFETY: an 8-aligned word of the map (it starts 16-aligned and advances by 8),
            // inside the pool: the map covers the pool's grains.
            unsafe { (self.pool.map_zeroed as *mut u64).write(0) };
            self.pool.map_zeroed += 8;
        }
        // SAFETY: the block's first map byte, in the map, now zeroed.
        unsafe { *self.pool.map_byte(addr) = (need / GRAIN) as u8 };
        self.pool.live += 1;
        addr
    }

    /// Takes [`SMALL_POOL`] bytes from the free list for the small pool; false when the heap
    /// cannot spare them (small requests then use the free list).
    fn take_pool(&mut self) -> bool {
        let start = self.list_alloc(SMALL_POOL, GRAIN);
        if start == 0 {
            self.pool.unavailable = true;
            return false;
        }
        self.pool.start = start;
        self.pool.end = start + SMALL_POOL;
        // The map's own grains are never handed out (and `pool_free` refuses them).
        self.pool.bump = start + POOL_MAP_BYTES;
        self.pool.map_zeroed = self.pool.map_byte(self.pool.bump) as usize;
        true
    }

    /// Hands the small pool back to the free list if none of its blocks is allocated; returns
    /// whether it did (or there was no pool). The next small allocation takes a new pool.
    pub fn release_small_pool(&mut self) -> bool {
        if self.pool.start == 0 {
            return true;
        }
        if self.pool.live != 0 {
            return false;
        }
        let start = self.pool.start;
        self.pool = SmallPool::none();
        // SAFETY: the pool was one block of the free list's, now unused.
        unsafe { self.list_free(start, SMALL_POOL) }.is_ok()
    }

    /// The first-fit walk of the address-ordered free list: the address of a block of `need`
    /// bytes aligned to `align` (both multiples of 16), or 0.
    fn list_alloc(&mut self, need: usize, align: usize) -> usize {
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
                return a;
            }
            prev = cur;
            cur = next;
        }
        0
    }

    /// Returns a block obtained from [`Heap::alloc`] with the same `size`.
    ///
    /// # Safety
    /// `ptr`/`size` must describe a live allocation of this heap, not used afterwards.
    pub unsafe fn free(&mut self, ptr: *mut u8, size: usize) -> Result<(), FreeError> {
        let addr = ptr as usize;
        // The fast path: a block of the pool (which lies inside the heap).
        if self.pool.contains(addr) && addr.is_multiple_of(GRAIN) {
            self.pool_free(addr, block_size(size))
                .map_err(|()| FreeError::Overlap { addr, size })?;
            self.count_free(size);
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.free_slow(addr, size) }
    }

    fn count_free(&mut self, size: usize) {
        self.stats.live_allocs -= 1;
        self.stats.live_bytes -= size;
    }

    /// [`Heap::free`] of a block outside the pool: checks the range, then returns the block
    /// to the address-ordered free list.
    ///
    /// # Safety
    /// As [`Heap::free`].
    #[inline(never)]
    unsafe fn free_slow(&mut self, addr: usize, size: usize) -> Result<(), FreeError> {
        let len = block_size(size);
        if !addr.is_multiple_of(GRAIN) || addr < self.start || addr.saturating_add(len) > self.end {
            return Err(FreeError::OutOfRange { addr, size });
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.list_free(addr, len) }.map_err(|()| FreeError::Overlap { addr, size })?;
        self.count_free(size);
        Ok(())
    }

    /// Returns a pool block of `len` bytes at `addr` to its size class; Err unless the size
    /// map says a block of exactly `len` bytes is allocated there (a double free, a wrong
    /// size, an address inside a block or never handed out are all refused).
    fn pool_free(&mut self, addr: usize, len: usize) -> Result<(), ()> {
        if addr >= self.pool.bump || addr < self.pool.start + POOL_MAP_BYTES {
            return Err(());
        }
        let map = self.pool.map_byte(addr);
        // SAFETY: `addr` lies in the carved part of the pool, whose map bytes are initialised.
        if usize::from(unsafe { *map }) != len / GRAIN {
            return Err(());
        }
        let b = addr as *mut PooledBlock;
        // SAFETY: the block was allocated and is ours again; 16-aligned, at least 16 bytes;
        // its map byte as above.
        unsafe {
            *map = 0;
            b.write(PooledBlock {
                next: self.pool.classes[len / GRAIN - 1],
            });
        }
        self.pool.classes[len / GRAIN - 1] = b;
        self.pool.live -= 1;
        Ok(())
    }

    /// Inserts `len` bytes at `addr` (16-aligned, inside the heap) into the address-ordered
    /// free list, coalescing; Err when they overlap a free block.
    ///
    /// # Safety
    /// The range must be an allocation of this heap's free list that is not used afterwards.
    unsafe fn list_free(&mut self, addr: usize, len: usize) -> Result<(), ()> {
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
            return Err(());
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
        assert!(a.heap.release_small_pool(), "the pool is empty");
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
    #[test]
    fn small_blocks_come_from_the_pool_and_are_recycled_per_size_class() {
        let mut a = arena(1 << 20);
        let big = a.heap.alloc(4096, 4096);
        let p = a.heap.alloc(40, 8);
        let q = a.heap.alloc(40, 16);
        let r = a.heap.alloc(200, 16);
        assert!(![big, p, q, r].iter().any(|x| x.is_null()));
        let pool = a.heap.pool.start;
        for x in [p, q, r] {
            let x = x as usize;
            assert!(
                x >= pool + POOL_MAP_BYTES && x < pool + SMALL_POOL,
                "{x:#x} in the pool"
            );
        }
        assert_eq!(
            q as usize,
            p as usize + 48,
            "carved upwards, 48-byte blocks"
        );
        // A larger alignment is not served by the pool.
        let aligned = a.heap.alloc(40, 64);
        assert!(!a.heap.pool.contains(aligned as usize));
        // SAFETY: live allocations, each freed once.
        unsafe {
            a.heap.free(p, 40).unwrap();
            // The same class hands the block back first (LIFO); another class does not.
            assert_eq!(a.heap.alloc(33, 16), p);
            assert_ne!(a.heap.alloc(20, 16), q);
        }
        assert_eq!(a.heap.stats().live_allocs, 6);
    }

    #[test]
    fn the_pool_refuses_double_frees_wrong_sizes_and_blocks_never_handed_out() {
        let mut a = arena(1 << 20);
        let p = a.heap.alloc(64, 16);
        let q = a.heap.alloc(64, 16);
        assert!(a.heap.pool.contains(p as usize));
        let overlap = |r| matches!(r, Err(FreeError::Overlap { .. }));
        // SAFETY: p and q are live; every refused free changes nothing.
        unsafe {
            a.heap.free(p, 64).unwrap();
            assert!(overlap(a.heap.free(p, 64)), "double free");
            assert!(overlap(a.heap.free(p, 16)), "double free with another size");
            assert!(
                overlap(a.heap.free(q, 128)),
                "a size running past the block into free grains"
            );
            assert!(overlap(a.heap.free(q.add(128), 16)), "never handed out");
            assert!(
                overlap(a.heap.free(a.heap.pool.start as *mut u8, 16)),
                "the size map"
            );
            assert!(overlap(a.heap.free(q, 32)), "a size smaller than the block");
            assert!(overlap(a.heap.free(q.add(16), 16)), "inside a block");
            assert!(!a.heap.release_small_pool(), "q is still allocated");
            a.heap.free(q, 64).unwrap();
        }
        let st = a.heap.stats();
        assert_eq!((st.live_allocs, st.live_bytes), (0, 0));
        assert!(a.heap.release_small_pool());
        assert_eq!(a.heap.free_summary(), (st.capacity, 1), "fully coalesced");
        // The next small allocation takes a new pool.
        let again = a.heap.alloc(64, 16);
        assert!(a.heap.pool.contains(again as usize));
    }

    #[test]
    fn a_full_pool_or_a_heap_too_small_for_one_falls_back_to_the_list() {
        let mut a = arena(SMALL_POOL + (64 << 10));
        let per_pool = (SMALL_POOL - POOL_MAP_BYTES) / SMALL_MAX;
        let blocks: Vec<*mut u8> = (0..per_pool + 3)
            .map(|_| a.heap.alloc(SMALL_MAX, 16))
            .collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        let pooled = blocks
            .iter()
            .filter(|p| a.heap.pool.contains(**p as usize))
            .count();
        assert_eq!(pooled, per_pool, "the rest came from the list");
        // SAFETY: every block is live and freed once.
        unsafe {
            for p in &blocks {
                a.heap.free(*p, SMALL_MAX).unwrap();
            }
        }
        assert!(a.heap.release_small_pool());
        assert_eq!(a.heap.free_summary().1, 1);

        let mut tiny = arena(4096);
        let p = tiny.heap.alloc(32, 16);
        assert!(
            !p.is_null() && tiny.heap.pool.start == 0,
            "no pool in a 4 KiB heap"
        );
        // SAFETY: live.
        unsafe { tiny.heap.free(p, 32).unwrap() };
    }
}
