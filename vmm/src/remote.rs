//! RNICs served by another process (`--rnic socket=PATH`): a vfio-user client
//! (rust-vmm's `vfio_user::Client`) connected to a running `rnic-device-server`.
//!
//! The server's regions are forwarded exactly like a VFIO device's
//! ([`crate::passthrough::PassthroughDevice`] over
//! `rnic_device_server::vfio_passthrough::PassthroughFunction`): configuration space
//! and BAR accesses become region reads/writes, BAR placement stays in the monitor.
//! Guest RAM is a memfd (see [`crate::boot::create_shared_guest_memory`]) mapped
//! into the server with DMA_MAP; MSI-X Enable hands the server one eventfd per
//! vector (SET_IRQS), each registered as the KVM irqfd of the GSI routed from the
//! table entry the guest programmed (the monitor keeps a copy of BAR2's table; the
//! writes also reach the server, which masks and keeps pending bits itself).
//!
//! When the server goes away (any request fails, or the heartbeat that reads its
//! Vendor ID every [`HEARTBEAT_PERIOD`] does), the run ends with
//! [`crate::vm::Outcome::DeviceLost`] (exit status 121) and one line naming the RNIC.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rnic_contract::pci::MSIX_VECTORS;
use rnic_device_server::vfio_passthrough::{PassthroughFunction, VfioRegions};
use tracing::{info, warn};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
};
use vfio_user::Client;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Result, VmmError};
use crate::irq::{GsiRouter, IrqBackend};
use crate::options::RnicSettings;
use crate::passthrough::{attach, PassthroughDevice};
use crate::pci::PciBus;
use crate::rnic::RnicPlan;

/// How often an idle connection is checked (a config-space read of the Vendor ID):
/// a dead server is noticed within this even when the guest does not touch it.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(50);

/// Called once, with a one-line reason, when a server connection is lost.
pub type LostHandler = Arc<dyn Fn(String) + Send + Sync>;

/// One connection to a device server, shared by the bus and the heartbeat.
pub struct UserLink {
    id: String,
    client: Mutex<Client>,
    lost: AtomicBool,
    on_lost: LostHandler,
}

impl UserLink {
    fn client(&self) -> MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the connection was lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Runs `request` unless the link is lost; a failure marks it lost and reports it.
    fn request(
        &self,
        what: impl FnOnce() -> String,
        request: impl FnOnce(&mut Client) -> std::result::Result<(), vfio_user::Error>,
    ) -> bool {
        if self.is_lost() {
            return false;
        }
        match request(&mut self.client()) {
            Ok(()) => true,
            Err(e) => {
                if !self.lost.swap(true, Ordering::SeqCst) {
                    (self.on_lost)(format!("RNIC {}: {} failed: {e}", self.id, what()));
                }
                false
            }
        }
    }
}

/// A device server as the VFIO-like device [`PassthroughFunction`] forwards to.
pub struct UserDevice(pub Arc<UserLink>);

impl VfioRegions for UserDevice {
    fn region_size(&self, index: u32) -> u64 {
        self.0.client().region(index).map_or(0, |r| r.size)
    }

    fn region_read(&self, index: u32, offset: u64, data: &mut [u8]) {
        let len = data.len();
        let ok = self.0.request(
            || format!("reading {len} bytes at {offset:#x} of region {index}"),
            |c| c.region_read(index, offset, data),
        );
        if !ok {
            data.fill(0xFF);
        }
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) {
        self.0.request(
            || {
                format!(
                    "writing {} bytes at {offset:#x} of region {index}",
                    data.len()
                )
            },
            |c| c.region_write(index, offset, data),
        );
    }

    fn reset(&self) {
        self.0
            .request(|| "resetting the device".into(), Client::reset);
    }
}

impl crate::passthrough::MsixEventfds for UserDevice {
    fn enable_msix(&self, fds: &[&EventFd]) -> std::result::Result<(), String> {
        // One vector per message: a vfio-user server accepts one fd per message
        // unless it says otherwise (max_msg_fds defaults to 1), as QEMU does too.
        for (vector, fd) in fds.iter().enumerate() {
            let ok = self.0.request(
                || format!("SET_IRQS (the eventfd of MSI-X vector {vector})"),
                |c| {
                    c.set_irqs(
                        VFIO_PCI_MSIX_IRQ_INDEX,
                        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                        vector as u32,
                        1,
                        &[fd.as_raw_fd()],
                    )
                },
            );
            if !ok {
                return Err("the device server is gone".into());
            }
        }
        Ok(())
    }

    fn disable_msix(&self) -> std::result::Result<(), String> {
        let ok = self.0.request(
            || "SET_IRQS (MSI-X off)".into(),
            |c| {
                c.set_irqs(
                    VFIO_PCI_MSIX_IRQ_INDEX,
                    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                    0,
                    0,
                    &[],
                )
            },
        );
        ok.then_some(())
            .ok_or_else(|| "the device server is gone".into())
    }
}

/// An RNIC served by another process, attached to the bus.
pub struct RemoteRnic {
    /// Its settings.
    pub settings: RnicSettings,
    /// The connection.
    pub link: Arc<UserLink>,
}

/// Connects to the server of `settings` (which has a socket) and maps every RAM
/// region of `mem` (which must be file-backed) into it.
fn connect(
    settings: &RnicSettings,
    mem: &GuestMemoryMmap,
    on_lost: LostHandler,
) -> Result<Arc<UserLink>> {
    let socket = settings.socket.clone().unwrap_or_default();
    let fail = |step: &'static str, source: vfio_user::Error| VmmError::DeviceServer {
        id: settings.id.clone(),
        socket: socket.clone(),
        step,
        source,
    };
    let mut client = Client::new(&socket).map_err(|e| fail("connecting", e))?;
    for region in mem.iter() {
        let Some(file) = region.file_offset() else {
            return Err(VmmError::DeviceServerMemory {
                id: settings.id.clone(),
            });
        };
        client
            .dma_map(
                file.start(),
                region.start_addr().0,
                region.len(),
                file.file().as_raw_fd(),
            )
            .map_err(|e| fail("mapping guest RAM (DMA_MAP)", e))?;
    }
    let irqs = client
        .get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX)
        .map_err(|e| fail("reading its MSI-X interrupt info", e))?;
    info!(rnic = %settings.id, socket = %socket.display(), vectors = irqs.count, "device server connected");
    Ok(Arc::new(UserLink {
        id: settings.id.clone(),
        client: Mutex::new(client),
        lost: AtomicBool::new(false),
        on_lost,
    }))
}

/// Connects every planned RNIC that has a socket, plugs it in at its PCI device
/// number with its block of router vectors (as an emulated RNIC's).
pub fn attach_all<B: IrqBackend + 'static>(
    plans: &[RnicPlan],
    mem: &GuestMemoryMmap,
    router: &Arc<GsiRouter<B>>,
    bus: &mut PciBus,
    on_lost: &LostHandler,
) -> Result<Vec<RemoteRnic>> {
    let mut attached = Vec::new();
    for plan in plans.iter().filter(|p| p.settings.socket.is_some()) {
        let settings = &plan.settings;
        let link = connect(settings, mem, on_lost.clone())?;
        let first_vector = router.reserve_vectors(MSIX_VECTORS)?;
        let device = PassthroughDevice::new(
            PassthroughFunction::new(UserDevice(link.clone())),
            router.clone(),
            first_vector,
            MSIX_VECTORS,
        )
        .forwarding_msix_table();
        let (_, bars) = attach(bus, settings.pci_device, device)?;
        for b in &bars {
            info!(rnic = %settings.id, bar = b.index, base = %format!("{:#x}", b.base), size = b.size, "remote RNIC BAR placed");
        }
        if link.is_lost() {
            return Err(VmmError::DeviceServerLostAtStart {
                id: settings.id.clone(),
            });
        }
        attached.push(RemoteRnic {
            settings: settings.clone(),
            link,
        });
    }
    Ok(attached)
}

/// Checks every link each [`HEARTBEAT_PERIOD`] until `stopping()` is true; a link
/// that fails reports itself through its lost handler.
pub fn spawn_heartbeat(
    remotes: &[RemoteRnic],
    stopping: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<Option<JoinHandle<()>>> {
    if remotes.is_empty() {
        return Ok(None);
    }
    let links: Vec<Arc<UserLink>> = remotes.iter().map(|r| r.link.clone()).collect();
    std::thread::Builder::new()
        .name("rnic-vmm-heartbeat".into())
        .spawn(move || {
            while !stopping() {
                for link in &links {
                    let mut vendor = [0u8; 4];
                    UserDevice(link.clone()).region_read(
                        VFIO_PCI_CONFIG_REGION_INDEX,
                        0,
                        &mut vendor,
                    );
                }
                if links.iter().any(|l| l.is_lost()) {
                    warn!("a device server connection was lost");
                    break;
                }
                std::thread::sleep(HEARTBEAT_PERIOD);
            }
        })
        .map(Some)
}
