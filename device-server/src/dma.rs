//! The client's DMA maps (VFIO_USER_DMA_MAP / DMA_UNMAP) and the guest memory the
//! device sees through them.
//!
//! Each accepted map is the client's file descriptor (a memfd for QEMU's
//! `memory-backend-memfd,share=on`) mapped into this process, so the device reads and
//! writes guest RAM directly. A map without a file descriptor is refused: this server
//! does not implement the slow DMA_READ/DMA_WRITE message path, so the client must
//! share its RAM ([`DmaMapError::NoFd`] says how).
//!
//! Every number the client sends is checked: page alignment, no wrap-around, no
//! overlap with an existing map, a bounded number of maps. Read-only maps are mapped
//! copy-on-write, so a device write there changes a private copy and never faults.
//!
//! The device is built over the maps that exist when it is first used (QEMU sends
//! its RAM maps before it reads the configuration space). A later map whose bytes the
//! device already sees at the same address (QEMU re-sends RAM maps when its memory
//! layout changes) needs nothing; any other later map is recorded and logged as not
//! visible to the device. Maps removed later stay mapped for the device (the memory
//! stays the client's own file, nothing else). [`MapView`] tells these cases apart.

use std::fs::File;

use thiserror::Error;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};

/// Page size every map must be aligned to, in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// Most maps kept at once (QEMU maps a handful: RAM below and above 4 GiB, ROMs).
pub const MAX_MAPS: usize = 64;

/// Why a DMA_MAP or DMA_UNMAP was refused.
#[derive(Debug, Error)]
pub enum DmaMapError {
    /// The client passed no file descriptor with the map.
    #[error(
        "DMA_MAP {address:#x}+{size:#x} refused: the client sent no file descriptor, and this \
         server needs shared guest RAM; start QEMU with \
         -object memory-backend-memfd,id=mem,size=...,share=on -machine ...,memory-backend=mem"
    )]
    NoFd {
        /// Guest-physical start of the refused map.
        address: u64,
        /// Size of the refused map in bytes.
        size: u64,
    },
    /// Size zero, unaligned, wrapping, or larger than this host can map.
    #[error(
        "DMA_MAP {address:#x}+{size:#x} (file offset {offset:#x}) refused: address, size and \
         offset must be {PAGE_SIZE}-byte aligned, non-empty and must not wrap"
    )]
    BadRange {
        /// Guest-physical start.
        address: u64,
        /// Size in bytes.
        size: u64,
        /// Offset in the client's file.
        offset: u64,
    },
    /// The range overlaps a map that already exists.
    #[error(
        "DMA_MAP {address:#x}+{size:#x} refused: it overlaps an existing map; unmap that first"
    )]
    Overlap {
        /// Guest-physical start.
        address: u64,
        /// Size in bytes.
        size: u64,
    },
    /// Too many maps.
    #[error("DMA_MAP refused: {MAX_MAPS} maps exist already")]
    TooMany,
    /// Neither read nor write access was asked for.
    #[error("DMA_MAP {address:#x}+{size:#x} refused: neither READ nor WRITE access requested")]
    NoAccess {
        /// Guest-physical start.
        address: u64,
        /// Size in bytes.
        size: u64,
    },
    /// The client's file could not be inspected.
    #[error("DMA_MAP {address:#x}+{size:#x}: the client's file descriptor cannot be inspected: {source}")]
    Stat {
        /// Guest-physical start.
        address: u64,
        /// Size in bytes.
        size: u64,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
    /// mmap of the client's file failed.
    #[error("DMA_MAP {address:#x}+{size:#x}: mapping the client's file failed: {source}")]
    Mmap {
        /// Guest-physical start.
        address: u64,
        /// Size in bytes.
        size: u64,
        /// What the host said.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
}

/// Where one map's bytes come from: guest-physical range, file identity (device and
/// inode of the client's file) and offset in that file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapView {
    /// Guest-physical start.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// (st_dev, st_ino) of the client's file.
    pub file: (u64, u64),
    /// Offset of `address` in that file.
    pub offset: u64,
}

impl MapView {
    /// The file offset of guest-physical `address` in this map, if it lies inside.
    fn file_offset_of(&self, address: u64) -> Option<u64> {
        (address >= self.address && address - self.address < self.size)
            .then(|| self.offset.wrapping_add(address - self.address))
    }

    /// The parts of this map, as (start, end) guest-physical ranges, whose bytes a
    /// device built over `seen` does not see at the same address (same file, same
    /// offset). Empty when the device sees all of it.
    pub fn unseen_parts(&self, seen: &[MapView]) -> Vec<(u64, u64)> {
        let end = self.address + self.size;
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut at = self.address;
        while at < end {
            let want = self.file_offset_of(at);
            let hit = seen
                .iter()
                .find(|v| v.file == self.file && v.file_offset_of(at) == want);
            let next = match hit {
                Some(v) => (v.address + v.size).min(end),
                None => {
                    // Up to the start of the next map that could cover, or the end.
                    let next = seen
                        .iter()
                        .map(|v| v.address)
                        .filter(|&a| a > at && a < end)
                        .min()
                        .unwrap_or(end);
                    match out.last_mut() {
                        Some(last) if last.1 == at => last.1 = next,
                        _ => out.push((at, next)),
                    }
                    next
                }
            };
            at = next;
        }
        out
    }
}

/// One accepted map.
#[derive(Debug)]
struct Map {
    view: MapView,
    region: std::sync::Arc<GuestRegionMmap>,
}

/// The set of DMA maps of one client session.
#[derive(Debug, Default)]
pub struct DmaMaps {
    maps: Vec<Map>,
}

/// Flags of a DMA_MAP as this module needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The device may read.
    pub read: bool,
    /// The device may write.
    pub write: bool,
}

impl DmaMaps {
    /// No maps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether there is no map.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Accepts (or refuses) a DMA_MAP of `size` bytes at guest-physical `address`,
    /// backed by `fd` at `offset`; returns where the accepted map's bytes come from.
    pub fn map(
        &mut self,
        address: u64,
        size: u64,
        offset: u64,
        access: Access,
        fd: Option<File>,
    ) -> Result<MapView, DmaMapError> {
        let Some(fd) = fd else {
            return Err(DmaMapError::NoFd { address, size });
        };
        let bad = DmaMapError::BadRange {
            address,
            size,
            offset,
        };
        let aligned = [address, size, offset].iter().all(|v| v % PAGE_SIZE == 0);
        let end = address.checked_add(size);
        if size == 0 || !aligned || end.is_none() || offset.checked_add(size).is_none() {
            return Err(bad);
        }
        let Ok(len) = usize::try_from(size) else {
            return Err(bad);
        };
        if !access.read && !access.write {
            return Err(DmaMapError::NoAccess { address, size });
        }
        if self
            .maps
            .iter()
            .any(|m| address < m.view.address + m.view.size && m.view.address < address + size)
        {
            return Err(DmaMapError::Overlap { address, size });
        }
        if self.maps.len() >= MAX_MAPS {
            return Err(DmaMapError::TooMany);
        }
        let meta = fd.metadata().map_err(|source| DmaMapError::Stat {
            address,
            size,
            source,
        })?;
        let view = MapView {
            address,
            size,
            file: (
                std::os::unix::fs::MetadataExt::dev(&meta),
                std::os::unix::fs::MetadataExt::ino(&meta),
            ),
            offset,
        };
        // Read-only memory is mapped copy-on-write: a device write then changes a
        // private page instead of faulting or reaching the client.
        let flags = if access.write {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        } | libc::MAP_NORESERVE;
        let mmap = MmapRegionBuilder::new(len)
            .with_file_offset(FileOffset::new(fd, offset))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(flags)
            .build()
            .map_err(|source| DmaMapError::Mmap {
                address,
                size,
                source,
            })?;
        let region = GuestRegionMmap::new(mmap, GuestAddress(address)).ok_or(bad)?;
        self.maps.push(Map {
            view,
            region: std::sync::Arc::new(region),
        });
        self.maps.sort_by_key(|m| m.view.address);
        Ok(view)
    }

    /// Removes every map that lies inside `[address, address + size)` (or every map
    /// when `all`); returns how many were removed. Unmapping nothing is not an error
    /// (the client may unmap a range it mapped but we refused).
    pub fn unmap(&mut self, address: u64, size: u64, all: bool) -> usize {
        let before = self.maps.len();
        let end = address.saturating_add(size);
        self.maps.retain(|m| {
            !(all || (m.view.address >= address && m.view.address + m.view.size <= end))
        });
        before - self.maps.len()
    }

    /// Where every current map's bytes come from, by address.
    pub fn views(&self) -> Vec<MapView> {
        self.maps.iter().map(|m| m.view).collect()
    }

    /// The guest memory made of every current map (empty when there is none).
    pub fn memory(&self) -> GuestMemoryMmap {
        let regions = self.maps.iter().map(|m| m.region.clone()).collect();
        GuestMemoryMmap::from_arc_regions(regions).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vm_memory::{Bytes, GuestMemoryBackend};

    const RW: Access = Access {
        read: true,
        write: true,
    };

    fn memfd(len: u64) -> File {
        let name = c"rnic-dma-test";
        // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.set_len(len).unwrap();
        file
    }

    #[test]
    fn map_without_fd_is_refused_naming_share_on() {
        let mut maps = DmaMaps::new();
        let err = maps.map(0, 0x1000, 0, RW, None).unwrap_err();
        assert!(matches!(err, DmaMapError::NoFd { .. }));
        let msg = err.to_string();
        assert!(msg.contains("share=on"), "{msg}");
        assert!(!msg.contains('\n'));
        assert!(maps.is_empty());
    }

    #[test]
    fn bad_ranges_overlaps_and_no_access_are_refused() {
        let mut maps = DmaMaps::new();
        let f = || Some(memfd(0x4000));
        for (addr, size, off) in [
            (0, 0, 0),
            (1, 0x1000, 0),
            (0, 0x1001, 0),
            (0, 0x1000, 3),
            (u64::MAX - 0xFFF, 0x2000, 0),
            (0, 0x1000, u64::MAX - 0xFFF),
        ] {
            let e = maps.map(addr, size, off, RW, f()).unwrap_err();
            assert!(
                matches!(e, DmaMapError::BadRange { .. }),
                "{addr:#x}+{size:#x}"
            );
        }
        let none = Access {
            read: false,
            write: false,
        };
        assert!(matches!(
            maps.map(0, 0x1000, 0, none, f()),
            Err(DmaMapError::NoAccess { .. })
        ));
        maps.map(0x1000, 0x2000, 0, RW, f()).unwrap();
        assert!(matches!(
            maps.map(0x2000, 0x1000, 0, RW, f()),
            Err(DmaMapError::Overlap { .. })
        ));
        assert_eq!(maps.len(), 1);
    }

    #[test]
    fn memory_sees_the_client_file_and_read_only_maps_stay_private() {
        let mut maps = DmaMaps::new();
        let mut file = memfd(0x3000);
        file.write_all(b"guest").unwrap();
        let shared = file.try_clone().unwrap();
        maps.map(0x10_0000, 0x1000, 0, RW, Some(file.try_clone().unwrap()))
            .unwrap();
        let ro = Access {
            read: true,
            write: false,
        };
        maps.map(0x20_0000, 0x1000, 0x1000, ro, Some(file)).unwrap();
        let mem = maps.memory();
        assert_eq!(mem.num_regions(), 2);
        let mut buf = [0u8; 5];
        mem.read_slice(&mut buf, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(&buf, b"guest");
        mem.write_slice(b"dev", GuestAddress(0x10_0000)).unwrap();
        mem.write_slice(b"cow", GuestAddress(0x20_0000)).unwrap();
        let mut seen = [0u8; 3];
        std::os::unix::fs::FileExt::read_exact_at(&shared, &mut seen, 0).unwrap();
        assert_eq!(&seen, b"dev", "a shared map writes the client's file");
        std::os::unix::fs::FileExt::read_exact_at(&shared, &mut seen, 0x1000).unwrap();
        assert_eq!(
            seen,
            [0, 0, 0],
            "a read-only map never writes the client's file"
        );
        let views = maps.views();
        assert_eq!(views.len(), 2);
        let low = views[0];
        assert!(low.unseen_parts(&views).is_empty());
        let inside = MapView { size: 0x800, ..low };
        assert!(inside.unseen_parts(&views).is_empty());
        let other_bytes = MapView {
            offset: 0x1000,
            ..low
        };
        assert_eq!(
            other_bytes.unseen_parts(&views),
            vec![(0x10_0000, 0x10_1000)]
        );
        let other_file = MapView {
            file: (0, 0),
            ..low
        };
        assert_eq!(
            other_file.unseen_parts(&views),
            vec![(0x10_0000, 0x10_1000)]
        );
        // A larger map over the same file: only the part beyond the old map is new.
        let grown = MapView {
            size: 0x3000,
            ..low
        };
        assert_eq!(grown.unseen_parts(&views), vec![(0x10_1000, 0x10_3000)]);
        assert_eq!(maps.unmap(0x10_0000, 0x1000, false), 1);
        assert_eq!(maps.unmap(0x50_0000, 0x1000, false), 0);
        assert_eq!(maps.unmap(0, 0, true), 1);
        assert_eq!(maps.memory().num_regions(), 0);
    }
}
