//! Bounds-checked device access to guest memory.
//!
//! Every access by the device goes through [`Dma`]. A range is accepted only when
//! it does not wrap around the 64-bit address space, lies entirely in guest RAM
//! (possibly spanning adjacent regions), does not overlap the device's own BARs and
//! PCI bus mastering is enabled. A refused or failed access returns a [`DmaError`];
//! nothing here panics on guest input.
//!
//! Fault hooks: [`faulted_read`] and [`faulted_write`] apply the fault engine's answer
//! at the `DmaRead`/`DmaWrite` sites (the device core asks the engine, with the scope
//! of the access, and passes the answer in). Engines inside the device reach guest
//! memory through [`crate::env::DeviceEnv`], which the device core implements with
//! the hooks applied.

use thiserror::Error;

use crate::env::CopyError;
use crate::fault::FaultAction;
use vm_memory::{
    ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap, MemoryRegionAddress,
};

/// Why a device access to guest memory failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DmaError {
    /// `addr + len` wraps around the address space.
    #[error("DMA range {addr:#x}+{len:#x} wraps around the address space; the driver passed a bad address")]
    Overflow {
        /// First guest-physical address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
    /// Part of the range is not guest RAM.
    #[error("DMA range {addr:#x}+{len:#x} is not entirely inside guest RAM; the driver passed a bad address or length")]
    OutOfRange {
        /// First guest-physical address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
    /// The range overlaps one of the device's own BARs.
    #[error("DMA range {addr:#x}+{len:#x} overlaps the device's own BAR; the device never DMAs into its registers")]
    DeviceRegion {
        /// First guest-physical address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
    /// PCI bus mastering is off.
    #[error(
        "DMA to {addr:#x} refused: PCI bus mastering is disabled; set Command.Bus Master Enable"
    )]
    BusMasterDisabled {
        /// First guest-physical address of the refused access.
        addr: u64,
    },
    /// The memory backend reported an error.
    #[error("guest memory access at {addr:#x}+{len:#x} failed: {reason}")]
    Memory {
        /// First guest-physical address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
        /// The guest memory backend's error, as text.
        reason: String,
    },
    /// The fault engine made this access fail.
    #[error("DMA at {addr:#x}+{len:#x} failed by fault injection")]
    Injected {
        /// First guest-physical address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
}

/// The device's DMA engine over guest RAM.
#[derive(Clone, Debug)]
pub struct Dma {
    mem: GuestMemoryMmap,
    /// Ranges (start, size) the device must never touch: its own BARs.
    excluded: Vec<(u64, u64)>,
    bus_master: bool,
}

impl Dma {
    /// A DMA engine over `mem`, bus mastering off, nothing excluded.
    pub fn new(mem: GuestMemoryMmap) -> Self {
        Dma {
            mem,
            excluded: Vec::new(),
            bus_master: false,
        }
    }

    /// The guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Sets the ranges the device must never access (its own BARs).
    pub fn set_excluded(&mut self, ranges: Vec<(u64, u64)>) {
        self.excluded = ranges;
    }

    /// Mirrors PCI Command.Bus Master Enable.
    pub fn set_bus_master(&mut self, on: bool) {
        self.bus_master = on;
    }

    /// Whether bus mastering is on.
    pub fn bus_master(&self) -> bool {
        self.bus_master
    }

    /// Checks that `[addr, addr+len)` is inside guest RAM, outside the device's BARs
    /// and does not wrap; does not look at bus mastering.
    pub fn check_range(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.checked_region(addr, len).map(|_| ())
    }

    /// [`Dma::check_range`], also returning the memory region holding the whole
    /// range and the offset of `addr` in it when there is one (`None` for an empty
    /// range or one spanning adjacent regions), so an access finds its region once.
    fn checked_region(
        &self,
        addr: u64,
        len: u64,
    ) -> Result<Option<(&GuestRegionMmap, MemoryRegionAddress)>, DmaError> {
        let end = addr
            .checked_add(len)
            .ok_or(DmaError::Overflow { addr, len })?;
        if len == 0 {
            return Ok(None);
        }
        if self
            .excluded
            .iter()
            .any(|&(s, sz)| addr < s.saturating_add(sz) && s < end)
        {
            return Err(DmaError::DeviceRegion { addr, len });
        }
        let Ok(ulen) = usize::try_from(len) else {
            return Err(DmaError::OutOfRange { addr, len });
        };
        let region = self.in_one_region(addr, ulen);
        if region.is_none() && !self.mem.check_range(GuestAddress(addr), ulen) {
            return Err(DmaError::OutOfRange { addr, len });
        }
        Ok(region)
    }

    fn check(&self, addr: u64, len: usize) -> Result<(), DmaError> {
        self.checked_access(addr, len).map(|_| ())
    }

    /// The checks of an access (bus mastering, then [`Dma::checked_region`]).
    fn checked_access(
        &self,
        addr: u64,
        len: usize,
    ) -> Result<Option<(&GuestRegionMmap, MemoryRegionAddress)>, DmaError> {
        if !self.bus_master {
            return Err(DmaError::BusMasterDisabled { addr });
        }
        self.checked_region(addr, len as u64)
    }

    /// The memory region holding all of `[addr, addr + len)` and the offset of
    /// `addr` in it, or `None` when the range is not entirely inside one region.
    /// Nearly every device access fits in one region; those are copied straight to
    /// or from that region's mapping (one `memcpy`) instead of going through the
    /// guest memory's per-region iteration, which cost a large part of the
    /// fuzz targets' time.
    fn in_one_region(
        &self,
        addr: u64,
        len: usize,
    ) -> Option<(&GuestRegionMmap, MemoryRegionAddress)> {
        let region = self.mem.find_region(GuestAddress(addr))?;
        let offset = addr - region.start_addr().0;
        let fits = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= region.len());
        fits.then_some((region, MemoryRegionAddress(offset)))
    }

    /// Reads `buf.len()` bytes at `addr`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let region = self.checked_access(addr, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some((region, offset)) = region {
            let slice = region
                .get_slice(offset, buf.len())
                .map_err(|e| memory_error(addr, buf.len(), &e))?;
            slice.copy_to(buf);
            return Ok(());
        }
        self.mem
            .read_slice(buf, GuestAddress(addr))
            .map_err(|e| DmaError::Memory {
                addr,
                len: buf.len() as u64,
                reason: e.to_string(),
            })
    }

    /// Writes `data` at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let region = self.checked_access(addr, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        if let Some((region, offset)) = region {
            let slice = region
                .get_slice(offset, data.len())
                .map_err(|e| memory_error(addr, data.len(), &e))?;
            slice.copy_from(data);
            return Ok(());
        }
        self.mem
            .write_slice(data, GuestAddress(addr))
            .map_err(|e| DmaError::Memory {
                addr,
                len: data.len() as u64,
                reason: e.to_string(),
            })
    }

    /// Copies `len` bytes from `src` to `dst` inside guest RAM with one `memmove`
    /// per memory region crossed (no intermediate buffer). Both ranges pass the
    /// same checks as [`Dma::read`] and [`Dma::write`] before any byte moves.
    pub fn copy(&self, src: u64, dst: u64, len: usize) -> Result<(), CopyError> {
        self.check(src, len).map_err(CopyError::Source)?;
        self.check(dst, len).map_err(CopyError::Destination)?;
        // Pieces that stay inside one memory region on both sides (one piece
        // unless a range crosses a region boundary), each one memmove. With
        // overlapping ranges where the destination is above the source, the
        // highest piece moves first so no piece overwrites source bytes not yet
        // copied. No piece list is built (a copy allocates nothing).
        let backwards = dst > src;
        let mut done = 0usize;
        while done < len {
            // Both checks above passed, so these additions cannot wrap.
            let (s, d, step) = if backwards {
                let end = (len - done) as u64;
                let (s_last, d_last) = (src + end - 1, dst + end - 1);
                let step = (len - done)
                    .min(self.region_before(s_last).map_err(CopyError::Source)?)
                    .min(self.region_before(d_last).map_err(CopyError::Destination)?);
                (s_last + 1 - step as u64, d_last + 1 - step as u64, step)
            } else {
                let (s, d) = (src + done as u64, dst + done as u64);
                let step = (len - done)
                    .min(self.region_rest(s).map_err(CopyError::Source)?)
                    .min(self.region_rest(d).map_err(CopyError::Destination)?);
                (s, d, step)
            };
            let from = self
                .mem
                .get_slice(GuestAddress(s), step)
                .map_err(|e| CopyError::Source(memory_error(s, step, &e)))?;
            let to = self
                .mem
                .get_slice(GuestAddress(d), step)
                .map_err(|e| CopyError::Destination(memory_error(d, step, &e)))?;
            from.copy_to_volatile_slice(to);
            done += step;
        }
        Ok(())
    }

    /// Bytes from the start of the guest memory region holding `addr` up to and
    /// including `addr`.
    fn region_before(&self, addr: u64) -> Result<usize, DmaError> {
        let region = self
            .mem
            .find_region(GuestAddress(addr))
            .ok_or(DmaError::OutOfRange { addr, len: 1 })?;
        let before = addr - region.start_addr().0 + 1;
        Ok(usize::try_from(before).unwrap_or(usize::MAX))
    }

    /// Bytes from `addr` to the end of the guest memory region holding it.
    fn region_rest(&self, addr: u64) -> Result<usize, DmaError> {
        let region = self
            .mem
            .find_region(GuestAddress(addr))
            .ok_or(DmaError::OutOfRange { addr, len: 1 })?;
        let rest = region.start_addr().0 + region.len() - addr;
        Ok(usize::try_from(rest).unwrap_or(usize::MAX))
    }

    /// Reads a plain-data object (little-endian layout, as on the x86 host).
    pub fn read_obj<T: ByteValued + Default>(&self, addr: u64) -> Result<T, DmaError> {
        let mut v = T::default();
        self.read(addr, v.as_mut_slice())?;
        Ok(v)
    }

    /// Writes a plain-data object.
    pub fn write_obj<T: ByteValued>(&self, addr: u64, v: &T) -> Result<(), DmaError> {
        self.write(addr, v.as_slice())
    }

    /// Reads a little-endian u16.
    pub fn read_u16(&self, addr: u64) -> Result<u16, DmaError> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    pub fn read_u32(&self, addr: u64) -> Result<u32, DmaError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64.
    pub fn read_u64(&self, addr: u64) -> Result<u64, DmaError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian u16.
    pub fn write_u16(&self, addr: u64, v: u16) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&self, addr: u64, v: u32) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }
}

/// A bare DMA engine as the environment of unit tests of the admin and event
/// queues: guest memory only (no interrupts, no wire, no faults, time 0).
#[cfg(test)]
impl crate::env::DeviceEnv for Dma {
    fn dma_read(
        &mut self,
        _scope: crate::env::DmaScope,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), DmaError> {
        self.read(addr, buf)
    }
    fn dma_write(
        &mut self,
        _scope: crate::env::DmaScope,
        addr: u64,
        data: &[u8],
    ) -> Result<(), DmaError> {
        self.write(addr, data)
    }
    fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
        self.check_range(addr, len)
    }
    fn raise(&mut self, _vector: u16) {}
    fn transmit(&mut self, _owner: crate::env::Owner, _frame: &[u8]) -> bool {
        false
    }
    fn post_event(&mut self, _ev: crate::events::Event) {}
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    fn fault(&mut self, _point: crate::fault::FaultPoint) -> Option<crate::fault::FaultAction> {
        None
    }
}

fn memory_error(addr: u64, len: usize, e: &impl std::fmt::Display) -> DmaError {
    DmaError::Memory {
        addr,
        len: len as u64,
        reason: e.to_string(),
    }
}

/// A read with the fault engine's answer at the `DmaRead` site applied: `DmaError`
/// and `Fatal` fail the access (nothing is read), `Corrupt` flips one byte of what
/// was read; other answers are ignored.
pub fn faulted_read(
    dma: &Dma,
    action: Option<FaultAction>,
    addr: u64,
    buf: &mut [u8],
) -> Result<(), DmaError> {
    if let Some(FaultAction::DmaError | FaultAction::Fatal) = action {
        return Err(DmaError::Injected {
            addr,
            len: buf.len() as u64,
        });
    }
    dma.read(addr, buf)?;
    if let Some(a) = action {
        a.corrupt_in_place(buf);
    }
    Ok(())
}

/// A guest-to-guest copy with the fault engine's answers at the `DmaRead` (source)
/// and `DmaWrite` (destination) sites applied as [`faulted_read`] and
/// [`faulted_write`] apply them. Without an answer the copy is direct
/// ([`Dma::copy`]); with one it goes through a buffer so that `Corrupt` flips
/// exactly what it flips on a read or a write.
pub fn faulted_copy(
    dma: &Dma,
    read_action: Option<FaultAction>,
    write_action: Option<FaultAction>,
    src: u64,
    dst: u64,
    len: usize,
) -> Result<(), CopyError> {
    if read_action.is_none() && write_action.is_none() {
        return dma.copy(src, dst, len);
    }
    let mut buf = vec![0u8; len];
    faulted_read(dma, read_action, src, &mut buf).map_err(CopyError::Source)?;
    faulted_write(dma, write_action, dst, &buf).map_err(CopyError::Destination)
}

/// A write with the fault engine's answer at the `DmaWrite` site applied:
/// `DmaError` and `Fatal` fail the access (nothing is written), `Corrupt` writes the
/// data with one byte flipped; other answers are ignored.
pub fn faulted_write(
    dma: &Dma,
    action: Option<FaultAction>,
    addr: u64,
    data: &[u8],
) -> Result<(), DmaError> {
    match action {
        Some(FaultAction::DmaError | FaultAction::Fatal) => Err(DmaError::Injected {
            addr,
            len: data.len() as u64,
        }),
        Some(a @ FaultAction::Corrupt { .. }) => {
            let mut copy = data.to_vec();
            a.corrupt_in_place(&mut copy);
            dma.write(addr, &copy)
        }
        _ => dma.write(addr, data),
    }
}

/// Test helper: guest memory with RAM at `[0, size)`.
#[cfg(test)]
pub(crate) fn test_memory(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("test memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dma() -> Dma {
        let mem = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x10000), 0x10000),
            (GuestAddress(0x40000), 0x1000),
        ])
        .unwrap();
        let mut d = Dma::new(mem);
        d.set_bus_master(true);
        d
    }

    #[test]
    fn round_trip_and_le() {
        let d = dma();
        d.write_u32(0x100, 0x1122_3344).unwrap();
        assert_eq!(d.read_u16(0x100).unwrap(), 0x3344);
        assert_eq!(d.read_u32(0x100).unwrap(), 0x1122_3344);
        d.write_u64(0x200, u64::MAX - 1).unwrap();
        assert_eq!(d.read_u64(0x200).unwrap(), u64::MAX - 1);
        d.write_obj(0x300, &7u32).unwrap();
        assert_eq!(d.read_obj::<u32>(0x300).unwrap(), 7);
        // Spanning two adjacent regions is fine.
        d.write(0xFFFC, &[1; 8]).unwrap();
        let mut b = [0; 8];
        d.read(0xFFFC, &mut b).unwrap();
        assert_eq!(b, [1; 8]);
    }

    #[test]
    fn accesses_inside_one_region_keep_every_bound() {
        // Ranges ending exactly at a region's end take the one-region copy; one byte
        // more crosses into the next region (allowed) or past the last one (refused).
        let d = dma();
        d.write(0xFFF0, &[7; 16]).unwrap();
        let mut b = [0u8; 17];
        d.read(0xFFF0, &mut b[..16]).unwrap();
        assert_eq!(b[..16], [7; 16]);
        d.read(0xFFF0, &mut b).unwrap();
        assert_eq!(b[16], 0, "the second region's first byte");
        d.write(0x40FF0, &[9; 16]).unwrap();
        d.read(0x40FF0, &mut b[..16]).unwrap();
        assert_eq!(b[..16], [9; 16]);
        assert!(matches!(
            d.write(0x40FF0, &[9; 17]),
            Err(DmaError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.read(0x40FF0, &mut b),
            Err(DmaError::OutOfRange { .. })
        ));
        assert_eq!(d.check_range(0x40FF0, 16), Ok(()));
        assert!(d.check_range(0x40FF0, 17).is_err());
        assert!(
            d.check_range(0x1FFF0, 0x20).is_err(),
            "into the hole after 0x20000"
        );
    }

    #[test]
    fn refusals() {
        let mut d = dma();
        let mut b = [0u8; 16];
        assert!(matches!(
            d.read(0x1FFF8, &mut b),
            Err(DmaError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.read(0x30000, &mut b),
            Err(DmaError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.read(u64::MAX - 4, &mut b),
            Err(DmaError::Overflow { .. })
        ));
        assert!(matches!(
            d.check_range(0, u64::MAX),
            Err(DmaError::OutOfRange { .. })
        ));
        d.set_excluded(vec![(0x40000, 0x1000)]);
        assert!(matches!(
            d.write(0x40800, &b),
            Err(DmaError::DeviceRegion { .. })
        ));
        d.set_bus_master(false);
        assert!(matches!(
            d.read(0, &mut b),
            Err(DmaError::BusMasterDisabled { .. })
        ));
        d.set_bus_master(true);
        assert!(d.read(0x1000, &mut []).is_ok());
    }

    #[test]
    fn fault_hooks() {
        let d = dma();
        d.write(0x100, &[0u8; 4]).unwrap();
        let mut b = [0u8; 4];
        assert!(matches!(
            faulted_read(&d, Some(FaultAction::DmaError), 0x100, &mut b),
            Err(DmaError::Injected {
                addr: 0x100,
                len: 4
            })
        ));
        faulted_read(
            &d,
            Some(FaultAction::Corrupt {
                offset: 5,
                mask: 0x80,
            }),
            0x100,
            &mut b,
        )
        .unwrap();
        assert_eq!(b, [0, 0x80, 0, 0]);
        faulted_write(
            &d,
            Some(FaultAction::Corrupt { offset: 2, mask: 1 }),
            0x100,
            &[9; 4],
        )
        .unwrap();
        assert_eq!(d.read_u32(0x100).unwrap(), u32::from_le_bytes([9, 9, 8, 9]));
        assert!(faulted_write(&d, Some(FaultAction::Fatal), 0x100, &[0; 4]).is_err());
        assert_eq!(
            d.read_u32(0x100).unwrap(),
            u32::from_le_bytes([9, 9, 8, 9]),
            "nothing written"
        );
        faulted_write(&d, None, 0x100, &[1; 4]).unwrap();
        assert_eq!(d.read_u32(0x100).unwrap(), 0x0101_0101);
    }

    #[test]
    fn copy_crosses_regions_and_overlaps_like_memmove() {
        let d = dma();
        let data: Vec<u8> = (0..64u8).collect();
        // Source and destination each span the boundary of the first two regions.
        d.write(0xFFE0, &data).unwrap();
        d.copy(0xFFE0, 0xFFF0, 64).unwrap();
        let mut b = [0u8; 64];
        d.read(0xFFF0, &mut b).unwrap();
        assert_eq!(b.to_vec(), data, "overlapping copy keeps the source bytes");
        d.copy(0xFFF0, 0x100, 64).unwrap();
        d.read(0x100, &mut b).unwrap();
        assert_eq!(b.to_vec(), data);
        assert_eq!(d.copy(0x100, 0x200, 0), Ok(()));
    }

    #[test]
    fn copy_refuses_before_moving_a_byte() {
        let mut d = dma();
        d.write(0x100, &[7; 16]).unwrap();
        // Destination over the hole between regions, over a BAR, wrapping.
        assert!(matches!(
            d.copy(0x100, 0x1FFF8, 16),
            Err(CopyError::Destination(DmaError::OutOfRange { .. }))
        ));
        d.set_excluded(vec![(0x200, 0x10)]);
        assert!(matches!(
            d.copy(0x100, 0x1F8, 16),
            Err(CopyError::Destination(DmaError::DeviceRegion { .. }))
        ));
        assert!(matches!(
            d.copy(0x1F8, 0x100, 16),
            Err(CopyError::Source(DmaError::DeviceRegion { .. }))
        ));
        assert!(matches!(
            d.copy(u64::MAX - 4, 0x100, 16),
            Err(CopyError::Source(DmaError::Overflow { .. }))
        ));
        let mut b = [0u8; 8];
        d.read(0x1F8, &mut b).unwrap();
        assert_eq!(b, [0; 8], "nothing written next to the BAR");
        d.set_bus_master(false);
        assert!(matches!(
            d.copy(0x100, 0x300, 16),
            Err(CopyError::Source(DmaError::BusMasterDisabled { .. }))
        ));
    }

    #[test]
    fn faulted_copy_applies_the_read_and_write_answers() {
        let d = dma();
        d.write(0x100, &[1; 4]).unwrap();
        let read_error = faulted_copy(&d, Some(FaultAction::DmaError), None, 0x100, 0x200, 4);
        assert!(matches!(
            read_error,
            Err(CopyError::Source(DmaError::Injected { .. }))
        ));
        let write_error = faulted_copy(&d, None, Some(FaultAction::Fatal), 0x100, 0x200, 4);
        assert!(matches!(
            write_error,
            Err(CopyError::Destination(DmaError::Injected { .. }))
        ));
        assert_eq!(d.read_u32(0x200).unwrap(), 0, "nothing written");
        let corrupt = Some(FaultAction::Corrupt { offset: 1, mask: 2 });
        faulted_copy(&d, None, corrupt, 0x100, 0x200, 4).unwrap();
        assert_eq!(d.read_u32(0x200).unwrap(), u32::from_le_bytes([1, 3, 1, 1]));
        faulted_copy(&d, None, None, 0x100, 0x300, 4).unwrap();
        assert_eq!(d.read_u32(0x300).unwrap(), 0x0101_0101);
    }
}
