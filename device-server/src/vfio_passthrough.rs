//! A real PCI device passed through with VFIO (`vfio-ioctls`), behind the same PCI
//! device trait as the emulated RNIC ([`rnic_device::PciFunction`]), so a monitor can
//! host silicon or an FPGA prototype where it hosts the model.
//!
//! [`PassthroughFunction`] forwards configuration space, BAR accesses and resets to
//! a [`VfioRegions`] device (the real `VfioDevice`, or a fake in tests). It
//! virtualizes what must not reach the hardware: the BAR registers (the guest places
//! BARs in *its* physical address space, so the function keeps the guest's values,
//! answers sizing with the real sizes and reports moves as [`BarMove`]s) and the
//! expansion ROM BAR (reads 0). Everything else in configuration space, including
//! Command and the MSI-X capability, goes to the device.
//!
//! Not here: MSI-X and DMA wiring, which belong to the monitor. Guest writes to the
//! MSI-X table are forwarded like any BAR access, but with VFIO the host kernel owns
//! the physical table; a monitor hosting this function must emulate the table and
//! route each vector through an eventfd (`VfioDevice::enable_msix`, KVM irqfds), and
//! map guest RAM for the device through the container [`open`] hands out
//! ([`OpenedDevice::dma`]), as QEMU's vfio-pci does (rnic-vmm's `passthrough` module
//! does both).
//!
//! [`open`] is the real path: `/dev/vfio/vfio`, the device's IOMMU group, a
//! container and the device, each missing piece reported as one line that says
//! what to do. The machines this project is developed on have no VFIO at all (no
//! `/dev/vfio`, no IOMMU driver): only the error path and the fake-backed forwarding
//! are tested here, never a real device.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rnic_device::pci::{bar_moves, BarMove};
use rnic_device::{BarKind, BarRegion, PciFunction};
use vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

/// First BAR register in configuration space.
const BAR0_REG: u16 = 0x10;
/// Expansion ROM BAR register.
const ROM_BAR_REG: u16 = 0x30;
/// Command register and its Memory Space Enable bit.
const COMMAND_REG: u16 = 0x04;
const COMMAND_MEMORY: u32 = 1 << 1;

/// The VFIO device operations the forwarding needs.
pub trait VfioRegions: Send {
    /// Size in bytes of region `index` (0 for regions the device lacks).
    fn region_size(&self, index: u32) -> u64;
    /// Reads `data.len()` bytes at `offset` of region `index`.
    fn region_read(&self, index: u32, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` of region `index`.
    fn region_write(&self, index: u32, offset: u64, data: &[u8]);
    /// Resets the device.
    fn reset(&self);
}

impl VfioRegions for VfioDevice {
    fn region_size(&self, index: u32) -> u64 {
        self.get_region_size(index)
    }

    fn region_read(&self, index: u32, offset: u64, data: &mut [u8]) {
        VfioDevice::region_read(self, index, data, offset);
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) {
        VfioDevice::region_write(self, index, data, offset);
    }

    fn reset(&self) {
        VfioDevice::reset(self);
    }
}

/// Why a device could not be passed through.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// No VFIO in this kernel (or not loaded).
    #[error("/dev/vfio/vfio does not exist: this kernel has no VFIO (load vfio-pci: modprobe vfio-pci, with an IOMMU enabled, e.g. intel_iommu=on)")]
    NoVfio,
    /// The sysfs path names no PCI device.
    #[error("{0} does not exist: pass the device as /sys/bus/pci/devices/DDDD:BB:DD.F")]
    NoDevice(PathBuf),
    /// The device has no IOMMU group.
    #[error("{0} has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line)")]
    NoIommuGroup(PathBuf),
    /// The group has no VFIO node: the device is not bound to vfio-pci.
    #[error("/dev/vfio/{group} does not exist: bind {device} to vfio-pci (echo vfio-pci > {device}/driver_override; echo {name} > /sys/bus/pci/drivers_probe)")]
    GroupNotBound {
        /// The IOMMU group number.
        group: String,
        /// The device's sysfs path.
        device: PathBuf,
        /// The device's PCI address.
        name: String,
    },
    /// Some device of the group is bound to a host driver.
    #[error("IOMMU group {group} is not viable: every device in it must be bound to vfio-pci (or no driver); see /sys/kernel/iommu_groups/{group}/devices")]
    GroupNotViable {
        /// The IOMMU group number.
        group: String,
    },
    /// Another VFIO failure.
    #[error("VFIO could not open {device}: {source}")]
    Vfio {
        /// The device's sysfs path.
        device: PathBuf,
        /// What vfio-ioctls said.
        #[source]
        source: vfio_ioctls::VfioError,
    },
}

/// The guest's view of one implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VirtualBar {
    size: u64,
    kind: BarKind,
    /// Flag bits of the low register (type, prefetchable, I/O).
    flags: u32,
    /// The address the guest programmed (0 = not placed).
    address: u64,
}

/// A VFIO device as a [`PciFunction`].
pub struct PassthroughFunction<D: VfioRegions> {
    device: D,
    bars: [Option<VirtualBar>; 6],
}

impl<D: VfioRegions> std::fmt::Debug for PassthroughFunction<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassthroughFunction")
            .field("bars", &self.bars)
            .finish()
    }
}

impl<D: VfioRegions> PassthroughFunction<D> {
    /// Wraps `device`, learning its BARs from its configuration space and region sizes.
    pub fn new(device: D) -> Self {
        let mut bars = [None; 6];
        let mut i = 0;
        while i < 6 {
            let mut reg = [0u8; 4];
            device.region_read(
                VFIO_PCI_CONFIG_REGION_INDEX,
                u64::from(BAR0_REG) + 4 * i as u64,
                &mut reg,
            );
            let raw = u32::from_le_bytes(reg);
            let size = device.region_size(i as u32);
            let io = raw & 1 != 0;
            let is64 = !io && (raw >> 1) & 3 == 2 && i < 5;
            if size != 0 && size.is_power_of_two() {
                bars[i] = Some(VirtualBar {
                    size,
                    kind: if io {
                        BarKind::Io
                    } else if is64 {
                        BarKind::Memory64
                    } else {
                        BarKind::Memory32
                    },
                    flags: if io { raw & 0x3 } else { raw & 0xF },
                    address: 0,
                });
            }
            i += if is64 { 2 } else { 1 };
        }
        PassthroughFunction { device, bars }
    }

    /// The wrapped device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Resets the device; the guest's BAR placement is forgotten, as on a real reset.
    pub fn reset(&mut self) {
        self.device.reset();
        self.bars.iter_mut().flatten().for_each(|b| b.address = 0);
    }

    /// The value the guest reads from BAR register `index` (0..6).
    fn bar_register(&self, index: usize) -> u32 {
        if let Some(b) = self.bars[index] {
            let mask = !(b.size - 1);
            return match b.kind {
                BarKind::Io => (b.address & mask) as u32 & !0x3 | b.flags,
                _ => (b.address & mask) as u32 & !0xF | b.flags,
            };
        }
        // The upper half of a 64-bit BAR below.
        match index.checked_sub(1).and_then(|j| self.bars[j]) {
            Some(b) if b.kind == BarKind::Memory64 => ((b.address & !(b.size - 1)) >> 32) as u32,
            _ => 0,
        }
    }

    /// Applies a guest write of `value` (already merged to a whole dword) to BAR
    /// register `index`.
    fn set_bar_register(&mut self, index: usize, value: u32) {
        if let Some(b) = self.bars[index].as_mut() {
            b.address = (b.address & !0xFFFF_FFFF) | u64::from(value & !0xF);
            return;
        }
        if let Some(b) = index.checked_sub(1).and_then(|j| self.bars[j].as_mut()) {
            if b.kind == BarKind::Memory64 {
                b.address = (b.address & 0xFFFF_FFFF) | (u64::from(value) << 32);
            }
        }
    }

    fn memory_enabled(&self) -> bool {
        let mut cmd = [0u8; 4];
        self.device.region_read(
            VFIO_PCI_CONFIG_REGION_INDEX,
            u64::from(COMMAND_REG),
            &mut cmd,
        );
        u32::from_le_bytes(cmd) & COMMAND_MEMORY != 0
    }

    fn bar_in_range(&self, bar: usize, offset: u64, len: usize) -> bool {
        let size = self.bars.get(bar).copied().flatten().map_or(0, |b| b.size);
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= size)
    }
}

fn bar_register_index(dword: u16) -> Option<usize> {
    (BAR0_REG..BAR0_REG + 24)
        .contains(&dword)
        .then(|| usize::from((dword - BAR0_REG) / 4))
}

impl<D: VfioRegions> PciFunction for PassthroughFunction<D> {
    fn config_read(&mut self, offset: u16) -> u32 {
        let dword = offset & !3;
        if let Some(i) = bar_register_index(dword) {
            return self.bar_register(i);
        }
        if dword == ROM_BAR_REG {
            return 0;
        }
        let mut v = [0xFFu8; 4];
        self.device
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, u64::from(dword), &mut v);
        u32::from_le_bytes(v)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        let before = self.decoded_bars();
        let dword = offset & !3;
        let shift = usize::from(offset & 3);
        if !matches!(data.len(), 1 | 2 | 4) || shift + data.len() > 4 {
            return Vec::new();
        }
        if let Some(i) = bar_register_index(dword) {
            let mut bytes = self.bar_register(i).to_le_bytes();
            bytes[shift..shift + data.len()].copy_from_slice(data);
            self.set_bar_register(i, u32::from_le_bytes(bytes));
        } else if dword != ROM_BAR_REG {
            self.device
                .region_write(VFIO_PCI_CONFIG_REGION_INDEX, u64::from(offset), data);
        }
        bar_moves(&before, &self.decoded_bars())
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if self.bar_in_range(bar, offset, data.len()) {
            self.device.region_read(bar as u32, offset, data);
        } else {
            data.fill(0xFF);
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if self.bar_in_range(bar, offset, data.len()) {
            self.device.region_write(bar as u32, offset, data);
        }
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.bars
            .iter()
            .enumerate()
            .filter_map(|(index, b)| {
                let b = (*b)?;
                let address = b.address & !(b.size - 1);
                (address != 0).then_some(BarRegion {
                    index,
                    address,
                    size: b.size,
                    kind: b.kind,
                })
            })
            .collect()
    }

    fn decoded_bars(&self) -> Vec<BarRegion> {
        if !self.memory_enabled() {
            return Vec::new();
        }
        let mut bars = self.bar_regions();
        bars.retain(|r| r.kind != BarKind::Io);
        bars
    }
}

/// Opens the PCI device at `sysfs` (`/sys/bus/pci/devices/DDDD:BB:DD.F`) with VFIO:
/// checks each prerequisite in order and names the first one missing.
pub fn open(sysfs: &Path) -> Result<OpenedDevice, PassthroughError> {
    open_with_root(Path::new("/dev/vfio"), sysfs)
}

/// A device [`open`] opened: the function to put on a bus, and the VFIO container its
/// IOMMU group is attached to, through which the monitor maps guest RAM for the
/// device's DMA (`VfioOps::vfio_dma_map`, IOVA = guest physical address) before the
/// guest runs and unmaps it at the end.
pub struct OpenedDevice {
    /// The device behind the PCI function trait.
    pub function: PassthroughFunction<VfioDevice>,
    /// The container (as vfio-ioctls' DMA-mapping trait object).
    pub dma: Arc<dyn VfioOps>,
}

impl std::fmt::Debug for OpenedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedDevice")
            .field("function", &self.function)
            .finish_non_exhaustive()
    }
}

/// [`open`] with the VFIO device directory at `vfio_dir` (tests point it elsewhere).
fn open_with_root(vfio_dir: &Path, sysfs: &Path) -> Result<OpenedDevice, PassthroughError> {
    if !vfio_dir.join("vfio").exists() {
        return Err(PassthroughError::NoVfio);
    }
    if !sysfs.exists() {
        return Err(PassthroughError::NoDevice(sysfs.to_path_buf()));
    }
    let group = std::fs::read_link(sysfs.join("iommu_group"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| PassthroughError::NoIommuGroup(sysfs.to_path_buf()))?;
    if !vfio_dir.join(&group).exists() {
        return Err(PassthroughError::GroupNotBound {
            group,
            device: sysfs.to_path_buf(),
            name: sysfs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    let vfio = |source| PassthroughError::Vfio {
        device: sysfs.to_path_buf(),
        source,
    };
    let container: Arc<dyn VfioOps> = Arc::new(VfioContainer::new(None).map_err(vfio)?);
    match VfioDevice::new(sysfs, container.clone(), false) {
        Ok(device) => Ok(OpenedDevice {
            function: PassthroughFunction::new(device),
            dma: container,
        }),
        Err(vfio_ioctls::VfioError::GroupViable) => Err(PassthroughError::GroupNotViable { group }),
        Err(e) => Err(vfio(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake VFIO device: a 4 KiB configuration space, BAR0 64-bit 64 KiB, BAR2 32-bit
    /// prefetchable 4 KiB, BAR4 I/O 32 bytes; BAR memory is plain bytes; every call
    /// recorded.
    #[derive(Default)]
    struct FakeDevice {
        config: Mutex<Vec<u8>>,
        bars: Mutex<[Vec<u8>; 6]>,
        log: Mutex<Vec<String>>,
    }

    impl FakeDevice {
        fn new() -> Self {
            let f = FakeDevice::default();
            let mut c = vec![0u8; 4096];
            c[0..4].copy_from_slice(&0x0001_7E57u32.to_le_bytes());
            c[0x10..0x14].copy_from_slice(&0b100u32.to_le_bytes()); // 64-bit memory
            c[0x18..0x1C].copy_from_slice(&0b1000u32.to_le_bytes()); // 32-bit prefetchable
            c[0x20..0x24].copy_from_slice(&1u32.to_le_bytes()); // I/O
            c[0x30..0x34].copy_from_slice(&0xFFFF_0001u32.to_le_bytes()); // ROM (hidden)
            *f.config.lock().unwrap() = c;
            let mut bars: [Vec<u8>; 6] = Default::default();
            bars[0] = vec![0; 0x1_0000];
            bars[2] = vec![0; 0x1000];
            bars[4] = vec![0; 32];
            *f.bars.lock().unwrap() = bars;
            f
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl VfioRegions for FakeDevice {
        fn region_size(&self, index: u32) -> u64 {
            match index {
                7 => 4096,
                i if i < 6 => self.bars.lock().unwrap()[i as usize].len() as u64,
                _ => 0,
            }
        }

        fn region_read(&self, index: u32, offset: u64, data: &mut [u8]) {
            let o = offset as usize;
            if index == 7 {
                data.copy_from_slice(&self.config.lock().unwrap()[o..o + data.len()]);
            } else {
                data.copy_from_slice(&self.bars.lock().unwrap()[index as usize][o..o + data.len()]);
            }
        }

        fn region_write(&self, index: u32, offset: u64, data: &[u8]) {
            self.log
                .lock()
                .unwrap()
                .push(format!("write {index} {offset:#x} {data:?}"));
            let o = offset as usize;
            if index == 7 {
                self.config.lock().unwrap()[o..o + data.len()].copy_from_slice(data);
            } else {
                self.bars.lock().unwrap()[index as usize][o..o + data.len()].copy_from_slice(data);
            }
        }

        fn reset(&self) {
            self.log.lock().unwrap().push("reset".into());
        }
    }

    fn write32(f: &mut PassthroughFunction<FakeDevice>, off: u16, v: u32) -> Vec<BarMove> {
        f.config_write(off, &v.to_le_bytes())
    }

    #[test]
    fn bars_are_virtual_sized_like_hardware_and_never_reach_the_device() {
        let mut f = PassthroughFunction::new(FakeDevice::new());
        assert_eq!(
            f.config_read(0),
            0x0001_7E57,
            "identity comes from the device"
        );
        write32(&mut f, 0x10, 0xFFFF_FFFF);
        write32(&mut f, 0x14, 0xFFFF_FFFF);
        assert_eq!(f.config_read(0x10), 0xFFFF_0004, "64 KiB, 64-bit");
        assert_eq!(f.config_read(0x14), 0xFFFF_FFFF);
        write32(&mut f, 0x18, 0xFFFF_FFFF);
        assert_eq!(f.config_read(0x18), 0xFFFF_F008, "4 KiB, prefetchable");
        write32(&mut f, 0x20, 0xFFFF_FFFF);
        assert_eq!(f.config_read(0x20), 0xFFFF_FFE1, "32-byte I/O BAR");
        assert_eq!(f.config_read(0x24), 0, "BAR5 unimplemented");
        assert_eq!(f.config_read(0x30), 0, "expansion ROM hidden");
        write32(&mut f, 0x30, 0xFFFF_FFFF);
        assert!(
            f.device().log().is_empty(),
            "BAR and ROM writes stay in the function: {:?}",
            f.device().log()
        );
    }

    #[test]
    fn decoded_bars_follow_placement_and_memory_enable_with_moves() {
        let mut f = PassthroughFunction::new(FakeDevice::new());
        assert!(
            write32(&mut f, 0x10, 0xC000_0000).is_empty(),
            "decoding off"
        );
        write32(&mut f, 0x14, 0x1);
        write32(&mut f, 0x18, 0xD000_0000);
        assert_eq!(f.bar_regions().len(), 2);
        let moves = f.config_write(0x04, &0x0002u16.to_le_bytes());
        assert_eq!(moves.len(), 2, "memory enable decodes both BARs: {moves:?}");
        assert_eq!(
            moves[0].new,
            Some(BarRegion {
                index: 0,
                address: 0x1_C000_0000,
                size: 0x1_0000,
                kind: BarKind::Memory64
            })
        );
        let moved = write32(&mut f, 0x18, 0xE000_0000);
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].new.map(|r| r.address), Some(0xE000_0000));
        assert_eq!(f.device().log(), vec!["write 7 0x4 [2, 0]".to_string()]);
    }

    #[test]
    fn bar_accesses_are_forwarded_inside_the_bar_only() {
        let mut f = PassthroughFunction::new(FakeDevice::new());
        f.bar_write(0, 0x100, &[1, 2, 3, 4]);
        let mut back = [0u8; 4];
        f.bar_read(0, 0x100, &mut back);
        assert_eq!(back, [1, 2, 3, 4]);
        f.bar_write(0, 0xFFFE, &[9, 9, 9, 9]);
        f.bar_write(1, 0, &[9]);
        f.bar_read(2, u64::MAX, &mut back);
        assert_eq!(back, [0xFF; 4]);
        assert_eq!(
            f.device().log().len(),
            1,
            "only the in-range write reached the device"
        );
        write32(&mut f, 0x18, 0xD000_0000);
        f.reset();
        assert!(f.bar_regions().is_empty(), "reset forgets the placement");
        assert_eq!(f.device().log().last().map(String::as_str), Some("reset"));
    }

    #[test]
    fn the_real_path_names_what_is_missing_in_one_line() {
        let tmp = std::env::temp_dir().join(format!("rnic-vfio-pt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (vfio, dev) = (tmp.join("dev-vfio"), tmp.join("0000:01:00.0"));
        std::fs::create_dir_all(&vfio).unwrap();
        let msg = |e: PassthroughError| {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m}");
            m
        };
        assert!(
            msg(open_with_root(&vfio, &dev).unwrap_err()).contains("/dev/vfio/vfio does not exist")
        );
        std::fs::write(vfio.join("vfio"), b"").unwrap();
        assert!(msg(open_with_root(&vfio, &dev).unwrap_err())
            .contains("does not exist: pass the device"));
        std::fs::create_dir_all(&dev).unwrap();
        assert!(msg(open_with_root(&vfio, &dev).unwrap_err()).contains("has no IOMMU group"));
        std::os::unix::fs::symlink(tmp.join("groups/42"), dev.join("iommu_group")).unwrap();
        let e = msg(open_with_root(&vfio, &dev).unwrap_err());
        assert!(
            e.contains("/dev/vfio/42 does not exist") && e.contains("vfio-pci"),
            "{e}"
        );
        let viable = msg(PassthroughError::GroupNotViable { group: "42".into() });
        assert!(viable.contains("not viable"), "{viable}");
        // This machine has no VFIO: the real entry point says so.
        if !Path::new("/dev/vfio/vfio").exists() {
            let e = msg(open(Path::new("/sys/bus/pci/devices/0000:00:00.0")).unwrap_err());
            assert!(e.contains("/dev/vfio/vfio does not exist"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
