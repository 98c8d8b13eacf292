//! Memory regions: keys, protection checks and iova → guest-physical translation.
//!
//! One key per MR (lkey == rkey): `key = (index << 8) | key byte`. Index 0 is never
//! allocated, so keys `0x00..=0xFF` are always invalid.

use super::handles::HandleAlloc;
use crate::dma::DmaError;
use crate::env::{DeviceEnv, DmaScope};
use rnic_contract::verbs::access;
use serde::Serialize;

/// Registration state of an MR slot that holds an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MrState {
    /// Allocated for fast registration, or invalidated: no access allowed.
    Free,
    /// Registered: accesses allowed within its rights and bounds.
    Valid,
}

/// Kind of access a check is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The device reads local memory (send data, RDMA WRITE source): always allowed.
    LocalRead,
    /// The device writes local memory (receive buffers).
    LocalWrite,
    /// The device writes RDMA READ response data: LOCAL_WRITE or RDMA_READ_SINK.
    ReadSink,
    /// A remote peer reads (RDMA READ responder).
    RemoteRead,
    /// A remote peer writes (RDMA WRITE responder).
    RemoteWrite,
}

/// Why an MR check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MrError {
    /// No MR with this index, or the key byte differs.
    BadKey,
    /// The MR belongs to another protection domain.
    WrongPd,
    /// The MR does not grant the needed right.
    NoAccess,
    /// The MR is not VALID (FREE: never fast-registered, or invalidated).
    NotValid,
    /// The range is not inside the region.
    Bounds,
}

/// One memory region.
#[derive(Clone, Debug)]
pub struct Mr {
    /// The key in force: index (bits 31:8) and key byte (7:0).
    pub key: u32,
    /// The protection domain.
    pub pdn: u32,
    /// Access flags (`rnic_contract::verbs::access`).
    pub access: u32,
    /// FREE or VALID.
    pub state: MrState,
    /// `Some(max pages)` for an MR allocated by ALLOC_FR_MR.
    pub fast_reg: Option<u32>,
    /// Virtual address of the first byte, as consumers name it.
    pub iova: u64,
    /// Length in bytes.
    pub length: u64,
    /// First byte offset inside the first page.
    pub fbo: u64,
    /// Page size as a power of two.
    pub page_shift: u8,
    /// Guest-physical page addresses.
    pub pages: Vec<u64>,
}

impl Mr {
    /// Whether `[va, va+len)` lies inside the region (no overflow possible).
    pub fn contains(&self, va: u64, len: u64) -> bool {
        let Some(end) = va.checked_add(len) else {
            return false;
        };
        // iova + length was checked not to overflow at registration.
        va >= self.iova && end <= self.iova + self.length
    }

    fn allows(&self, need: Need) -> bool {
        match need {
            Need::LocalRead => true,
            Need::LocalWrite => self.access & access::LOCAL_WRITE != 0,
            Need::ReadSink => self.access & (access::LOCAL_WRITE | access::RDMA_READ_SINK) != 0,
            Need::RemoteRead => self.access & access::REMOTE_READ != 0,
            Need::RemoteWrite => self.access & access::REMOTE_WRITE != 0,
        }
    }

    /// Calls `f(gpa, len)` for each physically contiguous piece of `[va, va+len)`:
    /// consecutive pages that follow each other in guest memory make one piece.
    /// The caller has checked [`Mr::contains`].
    pub fn for_each_piece<E>(
        &self,
        va: u64,
        len: u64,
        mut f: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let psize = 1u64 << self.page_shift;
        let mut off = va - self.iova + self.fbo;
        let mut left = len;
        // The piece being grown: (guest address, length).
        let mut run: Option<(u64, u64)> = None;
        while left > 0 {
            let page = (off >> self.page_shift) as usize;
            let in_page = off & (psize - 1);
            let chunk = left.min(psize - in_page);
            let gpa = self
                .pages
                .get(page)
                .copied()
                .unwrap_or(u64::MAX)
                .wrapping_add(in_page);
            run = match run {
                Some((start, n)) if start.checked_add(n) == Some(gpa) => Some((start, n + chunk)),
                Some((start, n)) => {
                    f(start, n)?;
                    Some((gpa, chunk))
                }
                None => Some((gpa, chunk)),
            };
            off += chunk;
            left -= chunk;
        }
        match run {
            Some((start, n)) => f(start, n),
            None => Ok(()),
        }
    }
}

/// Number of pages a region of `len` bytes starting `fbo` into its first page spans.
pub fn pages_needed(fbo: u64, len: u64, page_shift: u8) -> Option<u64> {
    if len == 0 {
        return Some(0);
    }
    let end = fbo.checked_add(len)?;
    let psize = 1u64 << page_shift;
    Some(end.div_ceil(psize))
}

/// The MR table.
///
/// Indexes come from a [`HandleAlloc`]: O(1), never-used indexes first, then the
/// index freed longest ago. The table also remembers, per index, the key byte the
/// index carried when its MR went away (deregistration or reset), and never hands
/// the index out again with that same key byte: a key held by a consumer or a peer
/// for the old MR can therefore never match the next MR at that index
/// (`docs/device-spec.md` §6.1).
#[derive(Debug, Default)]
pub struct MrTable {
    slots: Vec<Option<Mr>>,
    /// Key byte each index carried when its last MR was removed; kept across
    /// [`MrTable::clear`].
    last_key_byte: Vec<Option<u8>>,
    ids: HandleAlloc,
    /// Page entries held by all MRs (against the device-wide budget).
    pub total_pages: u64,
}

/// The key byte an index gets when `wanted` is asked for and the index's previous
/// MR carried `last`: `wanted`, or the next byte if that would repeat the old key.
pub fn key_byte_for(last: Option<u8>, wanted: u8) -> u8 {
    if last == Some(wanted) {
        wanted.wrapping_add(1)
    } else {
        wanted
    }
}

impl MrTable {
    /// A table of `max` MR indices, all free.
    pub fn new(max: u32) -> Self {
        // Slots grow as indices are first handed out (fresh indices ascend), so an
        // engine with few MRs holds no table sized for the limit.
        MrTable {
            slots: Vec::new(),
            last_key_byte: Vec::new(),
            ids: HandleAlloc::new(max),
            total_pages: 0,
        }
    }

    /// Removes every MR (device reset). The key bytes they carried are remembered,
    /// so the reset does not let an old key match a new MR either.
    pub fn clear(&mut self) {
        for (s, last) in self.slots.iter_mut().zip(&mut self.last_key_byte) {
            if let Some(mr) = s.take() {
                *last = Some(mr.key as u8);
            }
        }
        self.ids.reset();
        self.total_pages = 0;
    }

    /// The index the next [`MrTable::insert`] will use (never 0); `None` when
    /// every index is in use. O(1).
    pub fn next_index(&self) -> Option<u32> {
        self.ids.peek()
    }

    /// Number of MRs in the table.
    pub fn len(&self) -> u32 {
        self.ids.in_use()
    }

    /// Whether no MR exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `mr` under the index [`MrTable::next_index`] reported and returns its
    /// key. Only the low byte of `mr.key` is used (the key byte asked for); the
    /// table sets the index bits and, when that byte is the one the index carried
    /// last, the next byte instead (see [`key_byte_for`]). `None` (and `mr`
    /// dropped) when the table is full. O(1).
    pub fn insert(&mut self, mut mr: Mr) -> Option<u32> {
        let index = self.ids.alloc()?;
        if self.slots.len() <= index as usize {
            self.slots.resize_with(index as usize + 1, || None);
            self.last_key_byte.resize(index as usize + 1, None);
        }
        let last = self.last_key_byte[index as usize];
        mr.key = (index << 8) | u32::from(key_byte_for(last, mr.key as u8));
        self.total_pages += mr.pages.len() as u64;
        let key = mr.key;
        self.slots[index as usize] = Some(mr);
        Some(key)
    }

    /// Removes the MR at `index`, remembering its key byte; the index becomes free.
    pub fn remove(&mut self, index: u32) -> Option<Mr> {
        let mr = self.slots.get_mut(index as usize)?.take()?;
        self.total_pages -= mr.pages.len() as u64;
        self.last_key_byte[index as usize] = Some(mr.key as u8);
        self.ids.free(index);
        Some(mr)
    }

    /// The MR with index `index` (`key >> 8`), if any.
    pub fn by_index(&self, index: u32) -> Option<&Mr> {
        self.slots.get(index as usize)?.as_ref()
    }

    /// The MR with index `index`, writable.
    pub fn by_index_mut(&mut self, index: u32) -> Option<&mut Mr> {
        self.slots.get_mut(index as usize)?.as_mut()
    }

    /// Replaces the page list of an MR, keeping the page total right.
    pub fn set_pages(&mut self, index: u32, pages: Vec<u64>) {
        if let Some(Some(mr)) = self.slots.get_mut(index as usize) {
            self.total_pages = self.total_pages - mr.pages.len() as u64 + pages.len() as u64;
            mr.pages = pages;
        }
    }

    /// MR with exactly this key.
    pub fn by_key(&self, key: u32) -> Option<&Mr> {
        self.by_index(key >> 8).filter(|m| m.key == key)
    }

    /// Every MR, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Mr> {
        self.slots.iter().flatten()
    }

    /// The full protection check: exact key, same PD, right, VALID, bounds.
    pub fn check(&self, key: u32, pdn: u32, need: Need, va: u64, len: u64) -> Result<&Mr, MrError> {
        let mr = self.by_key(key).ok_or(MrError::BadKey)?;
        if mr.pdn != pdn {
            return Err(MrError::WrongPd);
        }
        if mr.state != MrState::Valid {
            return Err(MrError::NotValid);
        }
        if !mr.allows(need) {
            return Err(MrError::NoAccess);
        }
        if !mr.contains(va, len) {
            return Err(MrError::Bounds);
        }
        Ok(mr)
    }
}

/// Why a page list could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageListError {
    /// The list itself could not be read.
    Dma(DmaError),
    /// A page address is not page aligned or not guest RAM.
    BadPage,
}

/// Reads `count` page addresses from the guest array at `list`, validating each
/// one (aligned to the page size, the whole page inside guest RAM). `scope` is the
/// fault scope of the reads.
pub fn load_page_list(
    env: &mut dyn DeviceEnv,
    scope: DmaScope,
    list: u64,
    count: u32,
    page_shift: u8,
) -> Result<Vec<u64>, PageListError> {
    const CHUNK: usize = 512;
    let psize = 1u64 << page_shift;
    // Memory grows with the entries validated, chunk by chunk: a list that fails
    // early never reserves room for all `count` entries.
    let mut pages = Vec::new();
    let mut buf = [0u8; CHUNK * 8];
    let mut done = 0usize;
    let count = count as usize;
    while done < count {
        let n = (count - done).min(CHUNK);
        let addr = list
            .checked_add(done as u64 * 8)
            .ok_or(PageListError::BadPage)?;
        env.dma_read(scope, addr, &mut buf[..n * 8])
            .map_err(PageListError::Dma)?;
        pages.reserve(n);
        for e in buf[..n * 8].chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(e);
            let page = u64::from_le_bytes(a);
            if page & (psize - 1) != 0 || env.dma_check(page, psize).is_err() {
                return Err(PageListError::BadPage);
            }
            pages.push(page);
        }
        done += n;
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mr(key_byte: u8, pages: usize) -> Mr {
        Mr {
            key: u32::from(key_byte),
            pdn: 1,
            access: access::LOCAL_WRITE,
            state: MrState::Valid,
            fast_reg: None,
            iova: 0,
            length: (pages as u64) << 12,
            fbo: 0,
            page_shift: 12,
            pages: vec![0; pages],
        }
    }

    #[test]
    fn pieces_merge_pages_that_follow_each_other_in_guest_memory() {
        // Pages 0x10000, 0x11000 (contiguous), 0x30000, 0x31000 (contiguous),
        // 0x20000: three runs. A range from 0x800 into the first page to 0x100
        // into the last.
        let mut m = mr(1, 5);
        m.pages = vec![0x10000, 0x11000, 0x30000, 0x31000, 0x20000];
        let mut got = Vec::new();
        let r: Result<(), ()> = m.for_each_piece(0x800, 4 * 4096 - 0x800 + 0x100, |gpa, n| {
            got.push((gpa, n));
            Ok(())
        });
        assert_eq!(r, Ok(()));
        assert_eq!(
            got,
            vec![(0x10800, 0x1800), (0x30000, 0x2000), (0x20000, 0x100)]
        );
        // Inside one page: one piece.
        got.clear();
        let _ = m.for_each_piece::<()>(0x2010, 16, |gpa, n| {
            got.push((gpa, n));
            Ok(())
        });
        assert_eq!(got, vec![(0x30010, 16)]);
    }

    #[test]
    fn indexes_ascend_from_one_and_keep_the_key_byte() {
        let mut t = MrTable::new(3);
        assert_eq!(t.next_index(), Some(1));
        assert_eq!(t.insert(mr(0x5A, 1)), Some(0x15A));
        assert_eq!(t.next_index(), Some(2));
        assert_eq!(t.insert(mr(0x00, 2)), Some(0x200));
        assert_eq!(t.insert(mr(0xFF, 3)), Some(0x3FF));
        assert_eq!((t.len(), t.total_pages), (3, 6));
        assert_eq!(t.by_key(0x200).map(|m| m.pages.len()), Some(2));
        assert!(t.by_key(0x201).is_none(), "exact key only");
    }

    #[test]
    fn full_table_refuses_and_a_removed_index_comes_back() {
        let mut t = MrTable::new(2);
        t.insert(mr(1, 1)).unwrap();
        t.insert(mr(2, 1)).unwrap();
        assert_eq!(t.next_index(), None);
        assert_eq!(t.insert(mr(3, 1)), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(1).map(|m| m.key), Some(0x101));
        assert!(t.remove(1).is_none(), "already gone");
        assert!(t.remove(0).is_none() && t.remove(99).is_none());
        assert_eq!((t.len(), t.total_pages), (1, 1));
        assert_eq!(t.next_index(), Some(1));
        assert_eq!(t.insert(mr(7, 1)), Some(0x107));
    }

    #[test]
    fn a_reused_index_never_gets_the_key_byte_it_just_had() {
        let mut t = MrTable::new(1);
        let old = t.insert(mr(0x42, 1)).unwrap();
        t.remove(old >> 8);
        // The driver asks for the same key byte again: the old key must not match.
        let new = t.insert(mr(0x42, 1)).unwrap();
        assert_eq!(new >> 8, old >> 8, "only one index exists");
        assert_ne!(new, old);
        assert_eq!(new, 0x143);
        assert!(t.by_key(old).is_none(), "the stale key matches nothing");
        // 0xFF wraps to 0x00.
        t.remove(1);
        t.insert(mr(0xFF, 1)).unwrap();
        t.remove(1);
        assert_eq!(t.insert(mr(0xFF, 1)), Some(0x100));
        // A different byte is honoured as asked.
        t.remove(1);
        assert_eq!(t.insert(mr(0x10, 1)), Some(0x110));
    }

    #[test]
    fn the_key_byte_in_force_at_removal_is_the_one_remembered() {
        let mut t = MrTable::new(1);
        t.insert(mr(0x10, 1)).unwrap();
        // A fast registration changed the key byte to 0x11 in the meantime.
        t.by_index_mut(1).unwrap().key = 0x111;
        t.remove(1);
        assert_eq!(
            t.insert(mr(0x10, 1)),
            Some(0x110),
            "0x10 is not the last key"
        );
        t.remove(1);
        assert_eq!(t.insert(mr(0x10, 1)), Some(0x111));
    }

    #[test]
    fn clear_frees_every_index_but_remembers_key_bytes() {
        let mut t = MrTable::new(2);
        t.insert(mr(0x20, 4)).unwrap();
        t.insert(mr(0x30, 4)).unwrap();
        t.clear();
        assert_eq!((t.len(), t.total_pages), (0, 0));
        assert_eq!(t.iter().count(), 0);
        assert_eq!(t.next_index(), Some(1));
        assert_eq!(t.insert(mr(0x20, 1)), Some(0x121));
        assert_eq!(t.insert(mr(0x20, 1)), Some(0x220), "index 2 last had 0x30");
    }

    #[test]
    fn freed_indexes_are_reused_oldest_first() {
        let mut t = MrTable::new(4);
        for b in 0..4 {
            t.insert(mr(b, 1)).unwrap();
        }
        t.remove(2);
        t.remove(4);
        t.remove(1);
        let got: Vec<u32> = (0..3)
            .map(|_| t.insert(mr(0x99, 1)).unwrap() >> 8)
            .collect();
        assert_eq!(got, [2, 4, 1]);
    }

    #[test]
    fn key_byte_rule() {
        assert_eq!(key_byte_for(None, 7), 7);
        assert_eq!(key_byte_for(Some(6), 7), 7);
        assert_eq!(key_byte_for(Some(7), 7), 8);
        assert_eq!(key_byte_for(Some(0xFF), 0xFF), 0);
    }
}
