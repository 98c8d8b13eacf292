//! Memory regions: keys, protection checks and iova → guest-physical translation.
//!
//! One key per MR (lkey == rkey): `key = (index << 8) | key byte`. Index 0 is never
//! allocated, so keys `0x00..=0xFF` are always invalid.

use super::abi::access;
use super::env::{DmaScope, VerbsEnv};
use crate::dma::DmaError;
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
    pub key: u32,
    pub pdn: u32,
    pub access: u32,
    pub state: MrState,
    /// `Some(max pages)` for an MR allocated by ALLOC_FR_MR.
    pub fast_reg: Option<u32>,
    pub iova: u64,
    pub length: u64,
    /// First byte offset inside the first page.
    pub fbo: u64,
    pub page_shift: u8,
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

    /// Calls `f(gpa, len)` for each physically contiguous piece of `[va, va+len)`.
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
        while left > 0 {
            let page = (off >> self.page_shift) as usize;
            let in_page = off & (psize - 1);
            let chunk = left.min(psize - in_page);
            let base = self.pages.get(page).copied().unwrap_or(u64::MAX);
            f(base.wrapping_add(in_page), chunk)?;
            off += chunk;
            left -= chunk;
        }
        Ok(())
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
#[derive(Debug, Default)]
pub struct MrTable {
    slots: Vec<Option<Mr>>,
    pub total_pages: u64,
}

impl MrTable {
    pub fn new(max: u32) -> Self {
        MrTable {
            slots: (0..=max).map(|_| None).collect(),
            total_pages: 0,
        }
    }

    pub fn clear(&mut self) {
        for s in &mut self.slots {
            *s = None;
        }
        self.total_pages = 0;
    }

    /// A free index (never 0).
    pub fn free_index(&self) -> Option<u32> {
        (1..self.slots.len())
            .find(|&i| self.slots[i].is_none())
            .map(|i| i as u32)
    }

    pub fn insert(&mut self, mr: Mr) {
        let idx = (mr.key >> 8) as usize;
        self.total_pages += mr.pages.len() as u64;
        if let Some(s) = self.slots.get_mut(idx) {
            *s = Some(mr);
        }
    }

    pub fn remove(&mut self, index: u32) -> Option<Mr> {
        let mr = self.slots.get_mut(index as usize)?.take()?;
        self.total_pages -= mr.pages.len() as u64;
        Some(mr)
    }

    pub fn by_index(&self, index: u32) -> Option<&Mr> {
        self.slots.get(index as usize)?.as_ref()
    }

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
    env: &mut dyn VerbsEnv,
    scope: DmaScope,
    list: u64,
    count: u32,
    page_shift: u8,
) -> Result<Vec<u64>, PageListError> {
    const CHUNK: usize = 512;
    let psize = 1u64 << page_shift;
    let mut pages = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; CHUNK * 8];
    let mut done = 0usize;
    let count = count as usize;
    while done < count {
        let n = (count - done).min(CHUNK);
        let addr = list
            .checked_add(done as u64 * 8)
            .ok_or(PageListError::BadPage)?;
        env.dma_read_scoped(scope, addr, &mut buf[..n * 8])
            .map_err(PageListError::Dma)?;
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
