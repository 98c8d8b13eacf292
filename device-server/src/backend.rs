//! The vfio-user device the server publishes, and the [`ServerBackend`] that answers
//! the client's requests for it.
//!
//! Layout (the vfio PCI region and interrupt indices): region 0 = BAR0 (registers),
//! region 2 = BAR2 (MSI-X table and PBA), region 7 = configuration space; every other
//! region has size 0. Interrupts: MSI-X (index 2) with 16 eventfd-signalled vectors;
//! INTx, MSI, error and request interrupts have no vectors.
//!
//! Every client-supplied number is checked here before it reaches the device: region
//! index, offset and length against the region size, interrupt index, start and count
//! against the vectors that exist, the number of eventfds against the count. A bad
//! request is answered with an error; it never panics and never reaches the device.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rnic_control::api::add_fault;
use rnic_control::faultplan::PlannedFault;
use rnic_device::fault::{FaultEngine, FaultError};
use rnic_device::wire::WireBackend;
use rnic_device::{Rnic, RnicConfig};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion};

use crate::dma::{Access, DmaMaps, MapView};
use crate::function::{bar_size, RegionTarget, RnicFunction, CONFIG_SPACE_SIZE, MSIX_VECTOR_COUNT};
use crate::irq::EventfdSink;

/// Longest single region access accepted, in bytes (the whole configuration space).
pub const MAX_ACCESS: usize = CONFIG_SPACE_SIZE as usize;

/// The legacy VGA/BIOS area below 1 MiB, `[start, end)`: QEMU's firmware switches it
/// between ROM and RAM while it runs, so its maps come and go.
pub const LEGACY_BIOS_AREA: (u64, u64) = (0xA_0000, 0x10_0000);

/// What a region index means and how big the region is.
fn region(index: u32) -> Option<(RegionTarget, u64)> {
    if index == VFIO_PCI_CONFIG_REGION_INDEX {
        return Some((RegionTarget::Config, CONFIG_SPACE_SIZE));
    }
    let bar = usize::try_from(index).ok()?;
    bar_size(bar).map(|size| (RegionTarget::Bar(bar), size))
}

/// The regions published to the client, indexed by vfio PCI region index.
pub fn server_regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let (flags, size) = match region(index) {
                Some((_, size)) => (
                    VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
                    size,
                ),
                None => (0, 0),
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    flags,
                    index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

/// The interrupts published to the client, indexed by vfio PCI interrupt index.
pub fn server_irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| IrqInfo {
            index,
            flags: VFIO_IRQ_INFO_EVENTFD,
            count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                MSIX_VECTOR_COUNT
            } else {
                0
            },
        })
        .collect()
}

fn invalid(msg: String) -> io::Error {
    tracing::warn!("refused: {msg}");
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Checks that the device's fault engine takes every fault of a plan (a plan of more
/// rules than the engine holds is refused), by arming them in an empty engine.
pub fn check_plan(faults: &[PlannedFault]) -> Result<(), FaultError> {
    let mut engine = FaultEngine::new();
    faults
        .iter()
        .try_for_each(|f| engine.add_rule(f.rule.clone()).map(drop))
}

/// The state of one client session: its DMA maps, its eventfds, the device.
pub struct Session {
    config: RnicConfig,
    wire: Option<Box<dyn WireBackend>>,
    /// Faults armed when the device is built.
    faults: Vec<PlannedFault>,
    maps: DmaMaps,
    sink: Arc<EventfdSink>,
    function: Option<RnicFunction>,
    /// The maps the device was built over.
    device_view: Vec<MapView>,
    started: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("maps", &self.maps)
            .field("function", &self.function)
            .finish()
    }
}

impl Session {
    /// A session whose device will have `config` and be attached to `wire`.
    pub fn new(config: RnicConfig, wire: Option<Box<dyn WireBackend>>) -> Self {
        Session {
            config,
            wire,
            faults: Vec::new(),
            maps: DmaMaps::new(),
            sink: Arc::new(EventfdSink::new(MSIX_VECTOR_COUNT as usize)),
            function: None,
            device_view: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Arms `faults` (a checked plan, see [`check_plan`]) in the device when it is built.
    pub fn with_faults(mut self, faults: Vec<PlannedFault>) -> Self {
        self.faults = faults;
        self
    }

    /// The device, once a client has reached it (the control API's view).
    pub fn device_mut(&mut self) -> Option<&mut Rnic> {
        self.function.as_mut().map(RnicFunction::rnic_mut)
    }

    /// The device, built over the DMA maps that exist now on first use.
    fn function(&mut self) -> &mut RnicFunction {
        let Session {
            config,
            wire,
            faults,
            maps,
            sink,
            function,
            device_view,
            ..
        } = self;
        function.get_or_insert_with(|| {
            *device_view = maps.views();
            if maps.is_empty() {
                tracing::warn!(
                    "the device starts with no DMA map: it cannot reach guest memory \
                     (a client must DMA_MAP its RAM before it uses the device)"
                );
            } else {
                tracing::info!(maps = maps.len(), "device built over the client's DMA maps");
            }
            let irq: Arc<dyn rnic_device::InterruptSink> = sink.clone();
            let mut function = RnicFunction::new(config.clone(), maps.memory(), irq, wire.take());
            for fault in faults.drain(..) {
                // check_plan armed the same rules in an empty engine before the server
                // started, so this cannot fail; say so if it ever does.
                if let Err(e) = add_fault(function.rnic_mut(), fault) {
                    tracing::error!("a fault of the plan was refused: {e}");
                }
            }
            function
        })
    }

    /// Runs the device's periodic work, if the device exists.
    pub fn poll(&mut self) {
        let now = self.started.elapsed();
        if let Some(f) = self.function.as_mut() {
            f.poll(now);
        }
    }

    fn access(&mut self, index: u32, offset: u64, len: usize) -> io::Result<RegionTarget> {
        let Some((target, size)) = region(index) else {
            return Err(invalid(format!(
                "region {index} does not exist on this device"
            )));
        };
        let end = offset.checked_add(len as u64);
        if len == 0 || len > MAX_ACCESS || end.is_none_or(|e| e > size) {
            return Err(invalid(format!(
                "access of {len} bytes at {offset:#x} lies outside region {index} ({size:#x} bytes)"
            )));
        }
        Ok(target)
    }

    fn set_msix(&mut self, flags: u32, start: u32, count: u32, fds: Vec<File>) -> io::Result<()> {
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        let in_range = start
            .checked_add(count)
            .is_some_and(|end| end <= MSIX_VECTOR_COUNT);
        if !in_range {
            return Err(invalid(format!(
                "SET_IRQS vectors {start}+{count} exceed the {MSIX_VECTOR_COUNT} MSI-X vectors"
            )));
        }
        let vectors = start as usize..(start + count) as usize;
        match data {
            VFIO_IRQ_SET_DATA_NONE if count == 0 => {
                self.sink.clear();
                let f = self.function();
                (0..MSIX_VECTOR_COUNT as u16).for_each(|v| f.set_vector_enabled(v, false));
            }
            VFIO_IRQ_SET_DATA_NONE => {
                for v in vectors {
                    // Loopback trigger requested by the client; a vector without an
                    // eventfd has nowhere to go.
                    if let Err(e) = self.sink.signal(v) {
                        tracing::debug!("SET_IRQS trigger of vector {v}: {e}");
                    }
                }
            }
            VFIO_IRQ_SET_DATA_EVENTFD if fds.is_empty() => {
                for v in vectors {
                    self.sink.set(v, None);
                    self.function().set_vector_enabled(v as u16, false);
                }
            }
            VFIO_IRQ_SET_DATA_EVENTFD if fds.len() == count as usize => {
                for (v, fd) in vectors.zip(fds) {
                    self.sink.set(v, Some(fd));
                    self.function().set_vector_enabled(v as u16, true);
                }
            }
            VFIO_IRQ_SET_DATA_EVENTFD => {
                return Err(invalid(format!(
                    "SET_IRQS passed {} eventfds for {count} vectors",
                    fds.len()
                )))
            }
            _ => {
                return Err(invalid(format!(
                    "SET_IRQS data type {data:#x} is not supported"
                )))
            }
        }
        Ok(())
    }
}

/// The [`ServerBackend`] of one session; cheap to clone (the session is shared with
/// the thread that polls the device).
#[derive(Clone, Debug)]
pub struct Backend {
    session: Arc<Mutex<Session>>,
}

impl Backend {
    /// A backend for a new session.
    pub fn new(session: Session) -> Self {
        Backend {
            session: Arc::new(Mutex::new(session)),
        }
    }

    /// The session (locked).
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        // A poisoned lock only means a panic elsewhere; the session data is plain.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        let mut s = self.lock();
        match s.access(region, offset, data.len())? {
            RegionTarget::Config => s.function().config_read(offset, data),
            RegionTarget::Bar(bar) => s.function().bar_read(bar, offset, data),
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        match s.access(region, offset, data.len())? {
            RegionTarget::Config => s.function().config_write(offset, data),
            RegionTarget::Bar(bar) => s.function().bar_write(bar, offset, data),
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> io::Result<()> {
        let access = Access {
            read: flags.contains(DmaMapFlags::READ),
            write: flags.contains(DmaMapFlags::WRITE),
        };
        let mut s = self.lock();
        let view = s
            .maps
            .map(address, size, offset, access, fd)
            .map_err(|e| invalid(e.to_string()))?;
        if s.function.is_some() {
            // The legacy BIOS area flips between ROM and RAM while firmware runs and
            // is never a DMA target of a driver: not worth a warning.
            let mut unseen = view.unseen_parts(&s.device_view);
            unseen.retain(|&(a, b)| !(a >= LEGACY_BIOS_AREA.0 && b <= LEGACY_BIOS_AREA.1));
            if unseen.is_empty() {
                tracing::debug!(
                    "DMA_MAP {address:#x}+{size:#x}: the device sees these bytes already"
                );
            } else {
                let parts: Vec<String> = unseen
                    .iter()
                    .map(|(a, b)| format!("{a:#x}..{b:#x}"))
                    .collect();
                tracing::warn!(
                    "DMA_MAP {address:#x}+{size:#x} arrived after the device started; \
                     the device cannot reach {} of it",
                    parts.join(", ")
                );
            }
        }
        Ok(())
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> io::Result<()> {
        let all = flags.contains(DmaUnmapFlags::UNMAP_ALL);
        let removed = self.lock().maps.unmap(address, size, all);
        tracing::debug!("DMA_UNMAP {address:#x}+{size:#x}: {removed} maps removed");
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        tracing::debug!("DEVICE_RESET");
        self.lock().function().reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> io::Result<()> {
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if action != VFIO_IRQ_SET_ACTION_TRIGGER {
            return Err(invalid(format!(
                "SET_IRQS action {action:#x} is not supported (only TRIGGER; vectors are not maskable)"
            )));
        }
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            // INTx, MSI, error and request interrupts have no vectors: only
            // "disable all" is meaningful.
            if count == 0 && fds.is_empty() {
                return Ok(());
            }
            return Err(invalid(format!(
                "SET_IRQS for interrupt index {index}: the device has only MSI-X (index {VFIO_PCI_MSIX_IRQ_INDEX})"
            )));
        }
        self.lock().set_msix(flags, start, count, fds)
    }
}
