//! Real PCI devices passed through with VFIO (`--vfio-device`): the device opened by
//! `rnic_device_server::vfio_passthrough` (configuration space, BAR accesses and BAR
//! placement forwarded there), plus what only the monitor can do: the MSI-X table.
//!
//! VFIO does not let a user write a device's MSI-X table (vfio-pci drops those
//! writes), so [`PassthroughDevice`] keeps the guest's table itself: it finds the
//! MSI-X capability by walking the device's capability list, answers reads and
//! writes of the table region from its copy, hands the device one eventfd per vector
//! (`VFIO_DEVICE_SET_IRQS`) when the guest sets MSI-X Enable, and keeps each vector's
//! KVM route (GSI + irqfd through [`GsiRouter`]) equal to its table entry while the
//! vector is enabled and unmasked. A masked vector has no route: a signal the device
//! raises meanwhile is not delivered later (no pending-bit emulation).
//!
//! Guest RAM is mapped for the device's DMA through the VFIO container
//! ([`DmaMappedRam`]: every region once, IOVA = guest physical address) before the
//! guest runs, and unmapped when the run ends.
//!
//! Tested here against a fake device and a fake container only: these machines have
//! no VFIO.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rnic_device::pci::{BarMove, BarRegion, PciFunction};
use rnic_device_server::vfio_passthrough::{self, PassthroughFunction, VfioRegions};
use tracing::{debug, info, warn};
use vfio_ioctls::{VfioDevice, VfioOps};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::irq::{GsiRouter, IrqBackend};
use crate::pci::{MappedBar, PciBus, PciError};

/// Router vectors reserved for each passed-through device; vectors of a larger
/// MSI-X table beyond this are never routed (a warning says so).
pub const PASSTHROUGH_VECTORS: u16 = 256;

/// PCI capability ID of MSI-X.
const MSIX_CAP_ID: u32 = 0x11;
/// Capabilities-list pointer register.
const CAP_POINTER_REG: u16 = 0x34;
/// Status register bit: the capability list exists (bit 4 of Status, bit 20 of
/// the Command/Status dword).
const STATUS_CAP_LIST: u32 = 1 << 20;
/// Most capabilities walked before giving up (a looping list is a broken device).
const MAX_CAPS: usize = 48;
/// Bytes per MSI-X table entry.
const MSIX_ENTRY_SIZE: u64 = 16;
/// Message Control: MSI-X Enable.
const MSIX_ENABLE: u32 = 1 << 15;
/// Message Control: Function Mask.
const MSIX_FUNCTION_MASK: u32 = 1 << 14;
/// Vector Control: Mask bit.
const MSIX_VECTOR_MASKED: u32 = 1;

/// What a passthrough device needs beyond region access: MSI-X eventfds.
pub trait MsixEventfds: VfioRegions {
    /// Makes the device signal `fds[i]` for its MSI-X vector `i`
    /// (`VFIO_DEVICE_SET_IRQS`, `VFIO_PCI_MSIX_IRQ_INDEX`).
    fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), String>;
    /// Stops MSI-X signalling.
    fn disable_msix(&self) -> Result<(), String>;
}

impl MsixEventfds for VfioDevice {
    fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), String> {
        VfioDevice::enable_msix(self, fds.to_vec()).map_err(|e| e.to_string())
    }

    fn disable_msix(&self) -> Result<(), String> {
        VfioDevice::disable_msix(self).map_err(|e| e.to_string())
    }
}

/// Why `--vfio-device` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// VFIO refused to open the device (the message names what is missing).
    #[error("--vfio-device {path}: {source}")]
    Open {
        /// The sysfs path as given.
        path: PathBuf,
        /// What `vfio_passthrough::open` found missing.
        #[source]
        source: vfio_passthrough::PassthroughError,
    },
    /// More devices than the monitor has PCI slots and interrupt vectors for.
    #[error("{count} --vfio-device given; at most {MAX_VFIO_DEVICES} are supported")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A guest RAM region could not be mapped for the device's DMA.
    #[error(
        "--vfio-device {path}: mapping guest RAM {start:#x}..{end:#x} for its DMA failed: \
         {source}; VFIO pins guest RAM: raise the locked-memory limit (ulimit -l) to at \
         least --memory, or lower --memory"
    )]
    DmaMap {
        /// The sysfs path as given.
        path: PathBuf,
        /// First guest physical address (= IOVA) of the region.
        start: u64,
        /// End (exclusive) of the region.
        end: u64,
        /// What VFIO said.
        #[source]
        source: vfio_ioctls::VfioError,
    },
    /// No block of router vectors is left for the device's MSI-X.
    #[error("--vfio-device {path}: {source}")]
    Vectors {
        /// The sysfs path as given.
        path: PathBuf,
        /// The router's reason.
        #[source]
        source: crate::irq::RouteError,
    },
    /// The device could not be placed on the PCI bus.
    #[error("--vfio-device {path}: {source}")]
    Pci {
        /// The sysfs path as given.
        path: PathBuf,
        /// Why the bus refused it.
        #[source]
        source: PciError,
    },
}

/// Most devices `--vfio-device` passes through: their router vector blocks
/// ([`PASSTHROUGH_VECTORS`] each) fit next to those of [`crate::options::MAX_RNICS`]
/// RNICs within the router's [`crate::irq::MAX_VECTORS`].
pub const MAX_VFIO_DEVICES: usize = 7;

/// A `--vfio-device` opened before `/dev/kvm` is: its path, the function to put on
/// the bus, and the VFIO container through which its DMA reaches guest RAM.
pub struct VfioAttachment<D: MsixEventfds> {
    /// The sysfs path as given.
    pub path: PathBuf,
    /// The device behind the PCI function trait.
    pub function: PassthroughFunction<D>,
    /// The container its IOMMU group is attached to.
    pub dma: Arc<dyn VfioOps>,
}

impl<D: MsixEventfds> std::fmt::Debug for VfioAttachment<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioAttachment")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A real device, as [`open_all`] opens it.
pub type OpenedVfio = VfioAttachment<VfioDevice>;

/// Opens every `--vfio-device` path; the first failure is returned as one line.
/// Runs before `/dev/kvm` is opened.
pub fn open_all(paths: &[PathBuf]) -> Result<Vec<OpenedVfio>, PassthroughError> {
    if paths.len() > MAX_VFIO_DEVICES {
        return Err(PassthroughError::TooMany { count: paths.len() });
    }
    paths
        .iter()
        .map(|path| {
            let opened = vfio_passthrough::open(Path::new(path)).map_err(|source| {
                PassthroughError::Open {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok(VfioAttachment {
                path: path.clone(),
                function: opened.function,
                dma: opened.dma,
            })
        })
        .collect()
}

/// Guest RAM mapped for one device's DMA: every region of guest memory mapped once,
/// IOVA = guest physical address, so the addresses the guest's driver programs into
/// the device are the ones the IOMMU translates. Unmapped (in reverse order) when
/// dropped; the memory is kept alive until then.
pub struct DmaMappedRam {
    dma: Arc<dyn VfioOps>,
    /// Keeps the mapped host memory alive while the IOMMU maps it.
    _mem: GuestMemoryMmap,
    /// (IOVA, size) of each region mapped, in mapping order.
    mapped: Vec<(u64, usize)>,
}

impl DmaMappedRam {
    /// Maps every region of `mem` through `dma` for the device at `path`. On a failure
    /// the regions already mapped are unmapped and the error names the region.
    pub fn map(
        dma: Arc<dyn VfioOps>,
        mem: &GuestMemoryMmap,
        path: &Path,
    ) -> Result<DmaMappedRam, PassthroughError> {
        let mut ram = DmaMappedRam {
            dma,
            _mem: mem.clone(),
            mapped: Vec::new(),
        };
        for region in mem.iter() {
            let start = region.start_addr().raw_value();
            let size = region.len() as usize;
            // SAFETY: the range is one region of guest RAM, already shared with the guest
            // (a KVM memory slot), which the monitor reaches only through vm-memory's
            // volatile accessors; `ram` keeps the memory mapped until `Drop` has
            // unmapped the IOVA range, and unmaps exactly the (iova, size) mapped here.
            let result = unsafe { ram.dma.vfio_dma_map(start, size, region.as_ptr()) };
            result.map_err(|source| PassthroughError::DmaMap {
                path: path.to_path_buf(),
                start,
                end: start + size as u64,
                source,
            })?;
            ram.mapped.push((start, size));
        }
        debug!(device = %path.display(), regions = ram.mapped.len(), "guest RAM mapped for DMA");
        Ok(ram)
    }

    /// (IOVA, size) of each region mapped, in mapping order.
    pub fn mapped(&self) -> &[(u64, usize)] {
        &self.mapped
    }
}

impl Drop for DmaMappedRam {
    fn drop(&mut self) {
        while let Some((iova, size)) = self.mapped.pop() {
            if let Err(e) = self.dma.vfio_dma_unmap(iova, size) {
                warn!(
                    iova,
                    size, "unmapping guest RAM from the device's IOMMU failed: {e}"
                );
            }
        }
    }
}

/// A passed-through device on the bus, its guest RAM mapped for DMA (unmapped when
/// this is dropped, at the end of the run).
pub struct AttachedVfio<D: MsixEventfds, B: IrqBackend> {
    /// The sysfs path as given.
    pub path: PathBuf,
    /// The device, shared with the bus.
    pub device: SharedPassthrough<D, B>,
    /// Where its BARs were placed.
    pub bars: Vec<MappedBar>,
    /// Its DMA mapping.
    pub dma: DmaMappedRam,
}

/// Maps guest RAM for each opened device's DMA, then plugs it in at PCI device
/// `first_device + i` with a block of [`PASSTHROUGH_VECTORS`] router vectors the router
/// reserves for it. Runs before the guest does.
pub fn attach_vfio<D, B>(
    opened: Vec<VfioAttachment<D>>,
    mem: &GuestMemoryMmap,
    router: &Arc<GsiRouter<B>>,
    bus: &mut PciBus,
    first_device: u8,
) -> Result<Vec<AttachedVfio<D, B>>, PassthroughError>
where
    D: MsixEventfds + 'static,
    B: IrqBackend + 'static,
{
    if opened.len() > MAX_VFIO_DEVICES {
        return Err(PassthroughError::TooMany {
            count: opened.len(),
        });
    }
    let mut attached = Vec::with_capacity(opened.len());
    for (i, device) in opened.into_iter().enumerate() {
        let dma = DmaMappedRam::map(device.dma, mem, &device.path)?;
        let first_vector = router
            .reserve_vectors(PASSTHROUGH_VECTORS)
            .map_err(|source| PassthroughError::Vectors {
                path: device.path.clone(),
                source,
            })?;
        let function = PassthroughDevice::new(
            device.function,
            router.clone(),
            first_vector,
            PASSTHROUGH_VECTORS,
        );
        let (shared, bars) = attach(bus, first_device + i as u8, function).map_err(|source| {
            PassthroughError::Pci {
                path: device.path.clone(),
                source,
            }
        })?;
        for b in &bars {
            info!(device = %device.path.display(), bar = b.index, base = %format!("{:#x}", b.base), size = b.size, "passed-through BAR placed");
        }
        attached.push(AttachedVfio {
            path: device.path,
            device: shared,
            bars,
            dma,
        });
    }
    Ok(attached)
}

/// The guest's MSI-X table of a passed-through device, kept by the monitor.
#[derive(Debug)]
struct MsixShadow {
    /// Offset of the capability in configuration space.
    cap: u16,
    /// BAR holding the table.
    bar: usize,
    /// Offset of the table in that BAR.
    offset: u64,
    /// Entries as dwords: address low, address high, data, vector control.
    entries: Vec<[u32; 4]>,
    /// Message Control's MSI-X Enable.
    enabled: bool,
    /// Message Control's Function Mask.
    function_masked: bool,
    /// The device has its eventfds (MSI-X enabled in VFIO).
    eventfds_given: bool,
}

impl MsixShadow {
    /// The table entry and dword a BAR access at `offset` of `bar` hits, if any.
    fn locate(&self, bar: usize, offset: u64) -> Option<(usize, usize)> {
        if bar != self.bar {
            return None;
        }
        let rel = offset.checked_sub(self.offset)?;
        let entry = usize::try_from(rel / MSIX_ENTRY_SIZE).ok()?;
        (entry < self.entries.len()).then_some((entry, (rel % MSIX_ENTRY_SIZE / 4) as usize))
    }

    /// The MSI message vector `entry` delivers now, `None` when it must not fire.
    fn route(&self, entry: usize) -> Option<(u64, u32)> {
        let [lo, hi, data, control] = self.entries[entry];
        (self.enabled && !self.function_masked && control & MSIX_VECTOR_MASKED == 0)
            .then_some((u64::from(hi) << 32 | u64::from(lo), data))
    }
}

/// An MSI-X table access the monitor serves: dword-aligned, 4 or 8 bytes, inside
/// one entry (`dword` is the access's first dword within the entry).
fn table_access_ok(offset: u64, dword: usize, len: usize) -> bool {
    offset.is_multiple_of(4) && matches!(len, 4 | 8) && dword + len / 4 <= 4
}

/// Finds the MSI-X capability of `function` by walking its capability list.
fn find_msix(function: &mut dyn PciFunction) -> Option<(u16, u32, u32, u32)> {
    if function.config_read(0x04) & STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut next = (function.config_read(CAP_POINTER_REG) & 0xFC) as u16;
    for _ in 0..MAX_CAPS {
        if next < 0x40 {
            return None;
        }
        let header = function.config_read(next);
        if header & 0xFF == MSIX_CAP_ID {
            let table = function.config_read(next + 4);
            let pba = function.config_read(next + 8);
            return Some((next, header >> 16, table, pba));
        }
        next = ((header >> 8) & 0xFC) as u16;
    }
    None
}

/// A VFIO device on the monitor's PCI bus, its MSI-X routed through KVM irqfds.
pub struct PassthroughDevice<D: MsixEventfds, B: IrqBackend> {
    inner: PassthroughFunction<D>,
    router: Arc<GsiRouter<B>>,
    first_vector: u16,
    msix: Option<MsixShadow>,
    /// The device keeps its own MSI-X table too (a vfio-user server does: it masks
    /// and keeps pending bits itself), so table accesses also go to the device and
    /// reads come from it.
    table_forwarded: bool,
}

impl<D: MsixEventfds, B: IrqBackend> PassthroughDevice<D, B> {
    /// Wraps `inner`; its MSI-X vector `i` becomes router vector `first_vector + i`
    /// (at most `max_vectors` vectors; [`PASSTHROUGH_VECTORS`] for VFIO devices).
    pub fn new(
        mut inner: PassthroughFunction<D>,
        router: Arc<GsiRouter<B>>,
        first_vector: u16,
        max_vectors: u16,
    ) -> Self {
        let msix = find_msix(&mut inner).and_then(|(cap, control, table, _pba)| {
            let size = (control & 0x7FF) as u16 + 1;
            if size > max_vectors {
                warn!(
                    size,
                    "MSI-X table larger than {max_vectors} vectors; the rest are never delivered"
                );
            }
            let bar = (table & 0x7) as usize;
            if bar >= 6 {
                warn!(
                    bar,
                    "MSI-X table in a BAR that does not exist; MSI-X not routed"
                );
                return None;
            }
            Some(MsixShadow {
                cap,
                bar,
                offset: u64::from(table & !0x7),
                // Entries reset masked (PCI spec).
                entries: vec![[0, 0, 0, MSIX_VECTOR_MASKED]; usize::from(size.min(max_vectors))],
                enabled: false,
                function_masked: false,
                eventfds_given: false,
            })
        });
        PassthroughDevice {
            inner,
            router,
            first_vector,
            msix,
            table_forwarded: false,
        }
    }

    /// Also sends MSI-X table accesses to the device (which keeps its own table, as
    /// a vfio-user server does) and reads the table from it; routes still follow the
    /// monitor's copy.
    pub fn forwarding_msix_table(mut self) -> Self {
        self.table_forwarded = true;
        self
    }

    /// The wrapped VFIO function.
    pub fn function(&self) -> &PassthroughFunction<D> {
        &self.inner
    }

    /// Hands the device its eventfds or takes them back when MSI-X Enable changed.
    fn sync_eventfds(&mut self) {
        let Some(msix) = self.msix.as_mut() else {
            return;
        };
        if msix.enabled == msix.eventfds_given {
            return;
        }
        let device = self.inner.device();
        if msix.enabled {
            let fds: Result<Vec<EventFd>, _> = (0..msix.entries.len() as u16)
                .map(|i| self.router.eventfd(self.first_vector + i))
                .collect();
            let result = fds
                .map_err(|e| e.to_string())
                .and_then(|fds| device.enable_msix(&fds.iter().collect::<Vec<_>>()));
            match result {
                Ok(()) => msix.eventfds_given = true,
                Err(e) => warn!("the device's MSI-X could not be enabled: {e}"),
            }
        } else {
            if let Err(e) = device.disable_msix() {
                warn!("the device's MSI-X could not be disabled: {e}");
            }
            msix.eventfds_given = false;
        }
    }

    /// Makes router vector `first_vector + entry` match table entry `entry`.
    fn sync_route(&self, entry: usize) {
        let Some(msix) = &self.msix else {
            return;
        };
        let vector = self.first_vector + entry as u16;
        if let Err(e) = self.router.update_route(vector, msix.route(entry)) {
            warn!(
                entry,
                "MSI-X vector of the passed-through device not routed: {e}"
            );
        }
    }

    fn sync_all_routes(&self) {
        let count = self.msix.as_ref().map_or(0, |m| m.entries.len());
        (0..count).for_each(|entry| self.sync_route(entry));
    }
}

impl<D: MsixEventfds, B: IrqBackend> PciFunction for PassthroughDevice<D, B> {
    fn config_read(&mut self, offset: u16) -> u32 {
        self.inner.config_read(offset)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        let moves = self.inner.config_write(offset, data);
        let Some(cap) = self.msix.as_ref().map(|m| m.cap) else {
            return moves;
        };
        let end = u32::from(offset) + data.len() as u32;
        // Message Control is bytes cap+2..cap+4.
        if u32::from(offset) < u32::from(cap) + 4 && end > u32::from(cap) + 2 {
            let control = self.inner.config_read(cap) >> 16;
            if let Some(msix) = self.msix.as_mut() {
                msix.enabled = control & MSIX_ENABLE != 0;
                msix.function_masked = control & MSIX_FUNCTION_MASK != 0;
                debug!(
                    enabled = msix.enabled,
                    masked = msix.function_masked,
                    "passthrough MSI-X control"
                );
            }
            self.sync_eventfds();
            self.sync_all_routes();
        }
        moves
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        let hit = self.msix.as_ref().and_then(|m| m.locate(bar, offset));
        let (Some((entry, dword)), false, Some(msix)) = (hit, self.table_forwarded, &self.msix)
        else {
            return self.inner.bar_read(bar, offset, data);
        };
        // Table reads come from the guest's copy, dword- or qword-aligned only.
        data.fill(0xFF);
        if !table_access_ok(offset, dword, data.len()) {
            return;
        }
        for (i, chunk) in data.chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&msix.entries[entry][dword + i].to_le_bytes());
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let hit = self.msix.as_ref().and_then(|m| m.locate(bar, offset));
        if hit.is_none() || self.table_forwarded {
            self.inner.bar_write(bar, offset, data);
        }
        let (Some((entry, dword)), Some(msix)) = (hit, self.msix.as_mut()) else {
            return;
        };
        if !table_access_ok(offset, dword, data.len()) {
            debug!(
                offset,
                len = data.len(),
                "unaligned MSI-X table write ignored"
            );
            return;
        }
        for (i, chunk) in data.chunks(4).enumerate() {
            let value = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            msix.entries[entry][dword + i] = value;
        }
        self.sync_route(entry);
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.inner.bar_regions()
    }

    fn decoded_bars(&self) -> Vec<BarRegion> {
        self.inner.decoded_bars()
    }
}

/// A passthrough device shared between the PCI bus and its owner.
pub type SharedPassthrough<D, B> = Arc<Mutex<PassthroughDevice<D, B>>>;

/// Plugs `device` in at PCI device number `number`; returns its BAR placements.
pub fn attach<D, B>(
    bus: &mut PciBus,
    number: u8,
    device: PassthroughDevice<D, B>,
) -> Result<(SharedPassthrough<D, B>, Vec<MappedBar>), PciError>
where
    D: MsixEventfds + 'static,
    B: IrqBackend + 'static,
{
    let shared = Arc::new(Mutex::new(device));
    let bars = bus.add_device(number, shared.clone())?;
    Ok((shared, bars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{IrqBackendError, Route};
    use crate::pci::{CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT};

    /// MSI-X capability offset in the fake's configuration space.
    const CAP: usize = 0x50;

    /// A fake VFIO device: 64-bit BAR0 of 16 KiB with the MSI-X table (4 vectors) at
    /// 0x2000, a capability list of a vendor capability then MSI-X; every BAR write
    /// and MSI-X call recorded.
    #[derive(Default)]
    struct FakeVfio {
        config: Mutex<Vec<u8>>,
        bar0: Mutex<Vec<u8>>,
        log: Mutex<Vec<String>>,
    }

    impl FakeVfio {
        fn new() -> Self {
            let f = FakeVfio::default();
            let mut c = vec![0u8; 4096];
            c[0..4].copy_from_slice(&0x1234_7E57u32.to_le_bytes());
            c[0x06] = 0x10; // capability list
            c[0x10..0x14].copy_from_slice(&0b100u32.to_le_bytes());
            c[0x34] = 0x40;
            c[0x40..0x42].copy_from_slice(&[0x09, CAP as u8]); // vendor cap -> MSI-X
            c[CAP..CAP + 4].copy_from_slice(&[MSIX_CAP_ID as u8, 0, 3, 0]); // 4 vectors
            c[CAP + 4..CAP + 8].copy_from_slice(&0x2000u32.to_le_bytes()); // BAR0 + 0x2000
            c[CAP + 8..CAP + 12].copy_from_slice(&0x3000u32.to_le_bytes());
            *f.config.lock().unwrap() = c;
            *f.bar0.lock().unwrap() = vec![0; 0x4000];
            f
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl VfioRegions for FakeVfio {
        fn region_size(&self, index: u32) -> u64 {
            match index {
                0 => 0x4000,
                7 => 4096,
                _ => 0,
            }
        }

        fn region_read(&self, index: u32, offset: u64, data: &mut [u8]) {
            let o = offset as usize;
            let src = if index == 7 { &self.config } else { &self.bar0 };
            data.copy_from_slice(&src.lock().unwrap()[o..o + data.len()]);
        }

        fn region_write(&self, index: u32, offset: u64, data: &[u8]) {
            let o = offset as usize;
            if index != 7 {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("bar{index} {offset:#x} {data:?}"));
            }
            let dst = if index == 7 { &self.config } else { &self.bar0 };
            dst.lock().unwrap()[o..o + data.len()].copy_from_slice(data);
        }

        fn reset(&self) {}
    }

    impl MsixEventfds for FakeVfio {
        fn enable_msix(&self, fds: &[&EventFd]) -> Result<(), String> {
            self.log
                .lock()
                .unwrap()
                .push(format!("enable_msix {}", fds.len()));
            Ok(())
        }

        fn disable_msix(&self) -> Result<(), String> {
            self.log.lock().unwrap().push("disable_msix".into());
            Ok(())
        }
    }

    /// Records the GSIs whose irqfds are bound.
    #[derive(Clone, Default)]
    struct Backend {
        assigned: Arc<Mutex<Vec<u32>>>,
    }

    impl IrqBackend for Backend {
        fn set_routes(&self, _: &[Route]) -> Result<(), IrqBackendError> {
            Ok(())
        }
        fn assign_irqfd(&self, _: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
            self.assigned.lock().unwrap().push(gsi);
            Ok(())
        }
        fn deassign_irqfd(&self, _: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
            self.assigned.lock().unwrap().retain(|g| *g != gsi);
            Ok(())
        }
    }

    fn config_write(bus: &mut PciBus, device: u8, offset: u16, data: &[u8]) {
        let address = 0x8000_0000 | u32::from(device) << 11 | u32::from(offset & !3);
        bus.config_port_write(CONFIG_ADDRESS_PORT, &address.to_le_bytes());
        bus.config_port_write(CONFIG_DATA_PORT + (offset & 3), data);
    }

    fn msi_routes(router: &GsiRouter<Backend>) -> Vec<(u32, u64, u32)> {
        router
            .table()
            .into_iter()
            .filter_map(|r| match r {
                Route::Msi { gsi, address, data } => Some((gsi, address, data)),
                _ => None,
            })
            .collect()
    }

    type Shared = SharedPassthrough<FakeVfio, Backend>;

    /// What the fake behind `shared` recorded.
    fn log(shared: &Shared) -> Vec<String> {
        shared.lock().unwrap().function().device().log()
    }

    /// The fake on bus device 3 with router vectors from 100; memory decoding on.
    fn plugged() -> (Shared, Arc<GsiRouter<Backend>>, Backend, PciBus, u64) {
        let backend = Backend::default();
        let router = Arc::new(GsiRouter::new(backend.clone(), Vec::new()).unwrap());
        let device = PassthroughDevice::new(
            PassthroughFunction::new(FakeVfio::new()),
            router.clone(),
            100,
            PASSTHROUGH_VECTORS,
        );
        let mut bus = PciBus::new();
        let (fake, bars) = attach(&mut bus, 3, device).unwrap();
        assert_eq!(bars.len(), 1, "{bars:?}");
        assert_eq!(bars[0].size, 0x4000);
        config_write(&mut bus, 3, 0x04, &2u16.to_le_bytes());
        (fake, router, backend, bus, bars[0].base)
    }

    #[test]
    fn bar_accesses_outside_the_table_reach_the_device() {
        let (fake, _router, _, mut bus, base) = plugged();
        assert!(bus.mmio_write(base + 0x100, &0xABCDu32.to_le_bytes()));
        let mut back = [0u8; 4];
        assert!(bus.mmio_read(base + 0x100, &mut back));
        assert_eq!(u32::from_le_bytes(back), 0xABCD);
        assert_eq!(log(&fake), vec!["bar0 0x100 [205, 171, 0, 0]".to_string()]);
        let mut id = [0u8; 4];
        bus.config_port_write(
            CONFIG_ADDRESS_PORT,
            &(0x8000_0000u32 | 3 << 11).to_le_bytes(),
        );
        bus.config_port_read(CONFIG_DATA_PORT, &mut id);
        assert_eq!(
            u32::from_le_bytes(id),
            0x1234_7E57,
            "identity from the device"
        );
    }

    #[test]
    fn msix_table_writes_become_kvm_routes_only_when_enabled_and_unmasked() {
        let (fake, router, backend, mut bus, base) = plugged();
        let table = base + 0x2000;
        // Vector 1: address 0xFEE0_1000, data 0x41, unmasked.
        bus.mmio_write(table + 16, &0xFEE0_1000u64.to_le_bytes());
        bus.mmio_write(table + 24, &0x41u32.to_le_bytes());
        bus.mmio_write(table + 28, &0u32.to_le_bytes());
        assert!(msi_routes(&router).is_empty(), "MSI-X not enabled yet");
        let mut back = [0u8; 8];
        bus.mmio_read(table + 16, &mut back);
        assert_eq!(
            u64::from_le_bytes(back),
            0xFEE0_1000,
            "table reads come from the copy"
        );
        assert!(
            log(&fake).is_empty(),
            "table writes never reach the device: {:?}",
            log(&fake)
        );

        // MSI-X Enable: the device gets its 4 eventfds; vector 1 goes live.
        config_write(&mut bus, 3, CAP as u16 + 2, &0x8003u16.to_le_bytes());
        assert_eq!(log(&fake), vec!["enable_msix 4".to_string()]);
        let gsi = crate::irq::FIRST_MSI_GSI + 101;
        assert_eq!(msi_routes(&router), vec![(gsi, 0xFEE0_1000, 0x41)]);
        assert_eq!(*backend.assigned.lock().unwrap(), vec![gsi]);

        // Masking the vector removes its route and irqfd; unmasking restores them.
        bus.mmio_write(table + 28, &1u32.to_le_bytes());
        assert!(msi_routes(&router).is_empty());
        assert!(backend.assigned.lock().unwrap().is_empty());
        bus.mmio_write(table + 28, &0u32.to_le_bytes());
        assert_eq!(msi_routes(&router).len(), 1);

        // Function Mask, then MSI-X disable: no routes, eventfds taken back.
        config_write(&mut bus, 3, CAP as u16 + 2, &0xC003u16.to_le_bytes());
        assert!(msi_routes(&router).is_empty());
        config_write(&mut bus, 3, CAP as u16 + 2, &0x0003u16.to_le_bytes());
        assert_eq!(log(&fake).last().map(String::as_str), Some("disable_msix"));
        assert!(backend.assigned.lock().unwrap().is_empty());
    }

    #[test]
    fn odd_table_accesses_are_ignored_and_read_all_ones() {
        let (fake, router, _, mut bus, base) = plugged();
        config_write(&mut bus, 3, CAP as u16 + 2, &0x8003u16.to_le_bytes());
        bus.mmio_write(base + 0x2002, &0u16.to_le_bytes());
        bus.mmio_write(base + 0x200C, &0u64.to_le_bytes());
        assert!(msi_routes(&router).is_empty());
        let mut back = [0u8; 2];
        bus.mmio_read(base + 0x2000, &mut back);
        assert_eq!(back, [0xFF; 2]);
        // Beyond the 4 entries the BAR is the device's again.
        bus.mmio_write(base + 0x2040, &7u32.to_le_bytes());
        assert_eq!(
            log(&fake).last().map(String::as_str),
            Some("bar0 0x2040 [7, 0, 0, 0]")
        );
    }

    #[test]
    fn a_device_without_msix_is_forwarded_untouched() {
        let fake = FakeVfio::new();
        fake.config.lock().unwrap()[0x06] = 0;
        let backend = Backend::default();
        let router = Arc::new(GsiRouter::new(backend.clone(), Vec::new()).unwrap());
        let mut device = PassthroughDevice::new(
            PassthroughFunction::new(fake),
            router.clone(),
            0,
            PASSTHROUGH_VECTORS,
        );
        assert!(device.msix.is_none());
        device.bar_write(0, 0x2000, &0xFEE0_0000u32.to_le_bytes());
        device.config_write(CAP as u16 + 2, &0x8003u16.to_le_bytes());
        assert_eq!(
            device.function().device().log(),
            vec!["bar0 0x2000 [0, 0, 224, 254]".to_string()],
            "the would-be table write reached the device; no MSI-X calls"
        );
        assert!(router.table().is_empty() && backend.assigned.lock().unwrap().is_empty());
    }

    #[test]
    fn without_vfio_the_option_fails_in_one_line_naming_what_is_missing() {
        if Path::new("/dev/vfio/vfio").exists() {
            return;
        }
        let e = open_all(&[PathBuf::from("/sys/bus/pci/devices/0000:00:00.0")]).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("--vfio-device /sys/bus/pci/devices/0000:00:00.0: ")
                && text.contains("/dev/vfio/vfio does not exist"),
            "{text}"
        );
        assert!(open_all(&[]).is_ok());
    }

    /// A fake VFIO container: records every DMA map and unmap; the map of the region
    /// at `fail_at` (a guest physical address) fails as the kernel's would.
    #[derive(Default)]
    struct FakeContainer {
        calls: Mutex<Vec<String>>,
        fail_at: Option<u64>,
    }

    impl FakeContainer {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl VfioOps for FakeContainer {
        unsafe fn vfio_dma_map(
            &self,
            iova: u64,
            size: usize,
            user_addr: *mut u8,
        ) -> Result<(), vfio_ioctls::VfioError> {
            if self.fail_at == Some(iova) {
                return Err(vfio_ioctls::VfioError::IommuDmaMap(
                    vmm_sys_util::errno::Error::new(libc::ENOMEM),
                ));
            }
            self.calls
                .lock()
                .unwrap()
                .push(format!("map {iova:#x} {size:#x} {:#x}", user_addr as usize));
            Ok(())
        }

        fn vfio_dma_unmap(&self, iova: u64, size: usize) -> Result<(), vfio_ioctls::VfioError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unmap {iova:#x} {size:#x}"));
            Ok(())
        }

        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    /// Guest RAM as the monitor lays it out above 4 GiB too: two regions.
    fn two_region_memory() -> GuestMemoryMmap {
        use vm_memory::GuestAddress;
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10_0000),
            (GuestAddress(0x1_0000_0000), 0x2_0000),
        ])
        .unwrap()
    }

    fn host_address(mem: &GuestMemoryMmap, index: usize) -> usize {
        mem.iter().nth(index).unwrap().as_ptr() as usize
    }

    #[test]
    fn guest_ram_is_mapped_once_per_region_at_its_guest_address_and_unmapped_on_drop() {
        let mem = two_region_memory();
        let container = Arc::new(FakeContainer::default());
        let ram = DmaMappedRam::map(container.clone(), &mem, Path::new("/sys/dev")).unwrap();
        assert_eq!(
            ram.mapped(),
            &[(0, 0x10_0000), (0x1_0000_0000, 0x2_0000)][..]
        );
        let (low, high) = (host_address(&mem, 0), host_address(&mem, 1));
        assert_eq!(
            container.calls(),
            vec![
                format!("map 0x0 0x100000 {low:#x}"),
                format!("map 0x100000000 0x20000 {high:#x}"),
            ],
            "IOVA = guest physical address, each region once, at its host mapping"
        );
        drop(ram);
        assert_eq!(
            container.calls()[2..],
            [
                "unmap 0x100000000 0x20000".to_string(),
                "unmap 0x0 0x100000".to_string()
            ],
            "unmapped in reverse when dropped"
        );
    }

    #[test]
    fn a_failed_map_unmaps_what_was_mapped_and_is_one_line_naming_the_region() {
        let mem = two_region_memory();
        let container = Arc::new(FakeContainer {
            fail_at: Some(0x1_0000_0000),
            ..Default::default()
        });
        let path = Path::new("/sys/bus/pci/devices/0000:01:00.0");
        let e = DmaMappedRam::map(container.clone(), &mem, path)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(
                "--vfio-device /sys/bus/pci/devices/0000:01:00.0: mapping guest RAM \
                 0x100000000..0x100020000 for its DMA failed: "
            ),
            "{e}"
        );
        assert!(e.contains("ulimit -l") && !e.contains('\n'), "{e}");
        let low = host_address(&mem, 0);
        assert_eq!(
            container.calls(),
            vec![
                format!("map 0x0 0x100000 {low:#x}"),
                "unmap 0x0 0x100000".to_string()
            ],
            "nothing stays mapped"
        );
    }

    #[test]
    fn attached_devices_follow_the_rnics_with_dma_mapped_and_their_own_vectors() {
        let mem = two_region_memory();
        let backend = Backend::default();
        let router = Arc::new(GsiRouter::new(backend.clone(), Vec::new()).unwrap());
        let mut bus = PciBus::new();
        let containers = [
            Arc::new(FakeContainer::default()),
            Arc::new(FakeContainer::default()),
        ];
        let opened = containers
            .iter()
            .enumerate()
            .map(|(i, c)| VfioAttachment {
                path: PathBuf::from(format!("/sys/dev{i}")),
                function: PassthroughFunction::new(FakeVfio::new()),
                dma: c.clone() as Arc<dyn VfioOps>,
            })
            .collect();
        // Two RNICs before them: 00:01.0 and 00:02.0.
        let attached = attach_vfio(opened, &mem, &router, &mut bus, 3).unwrap();
        assert_eq!(attached.len(), 2);
        for c in &containers {
            assert_eq!(c.calls().len(), 2, "both regions mapped: {:?}", c.calls());
        }
        // The second device (00:04.0): enable memory decoding and MSI-X, unmask
        // vector 0: its route is in the second block of 256 vectors the router handed out.
        let base = attached[1].bars[0].base;
        config_write(&mut bus, 4, 0x04, &2u16.to_le_bytes());
        config_write(&mut bus, 4, CAP as u16 + 2, &0x8003u16.to_le_bytes());
        bus.mmio_write(base + 0x2000, &0xFEE0_0000u64.to_le_bytes());
        bus.mmio_write(base + 0x2008, &0x30u32.to_le_bytes());
        bus.mmio_write(base + 0x200C, &0u32.to_le_bytes());
        let gsi = crate::irq::FIRST_MSI_GSI + u32::from(PASSTHROUGH_VECTORS);
        assert_eq!(msi_routes(&router), vec![(gsi, 0xFEE0_0000, 0x30)]);
        drop(attached);
        for c in &containers {
            assert_eq!(c.calls().len(), 4, "unmapped at the end: {:?}", c.calls());
        }
        let too_many = (0..=MAX_VFIO_DEVICES)
            .map(|_| VfioAttachment {
                path: PathBuf::from("/sys/x"),
                function: PassthroughFunction::new(FakeVfio::new()),
                dma: Arc::new(FakeContainer::default()) as Arc<dyn VfioOps>,
            })
            .collect();
        let e = attach_vfio(too_many, &mem, &router, &mut PciBus::new(), 1)
            .err()
            .unwrap();
        assert!(e.to_string().contains("at most 7"), "{e}");
    }
}
