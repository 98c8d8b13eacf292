//! The RNIC in the monitor: its [`InterruptSink`] (KVM GSI routing + irqfd, via
//! [`GsiRouter`]) and its [`PciSlot`] adapter (the device behind a mutex, shared
//! with the event loop's periodic `poll`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rnic_device::device::{Rnic, RnicConfig};
use rnic_device::irq::{InterruptError, InterruptSink, MsiMessage};
use rnic_device::pci::{BarKind, PciFunction};
use tracing::info;
use vm_memory::GuestMemoryMmap;

use crate::error::Result;
use crate::irq::{GsiRouter, IrqBackend, KvmIrqBackend};
use crate::pci::{MappedBar, PciBus, PciSlot, RNIC_DEV};
use crate::vm::{DeviceFactory, TickFn};

/// The device's interrupt sink: every call goes to the monitor's GSI router.
pub struct RouterSink<B: IrqBackend>(pub Arc<GsiRouter<B>>);

impl<B: IrqBackend + 'static> InterruptSink for RouterSink<B> {
    fn update_route(
        &self,
        vector: u16,
        route: Option<MsiMessage>,
    ) -> std::result::Result<(), InterruptError> {
        self.0
            .update_route(vector, route.map(|m| (m.address, m.data)))
            .map_err(|e| InterruptError::Host {
                vector,
                reason: e.0,
            })
    }

    fn trigger(&self, vector: u16, msg: MsiMessage) -> std::result::Result<(), InterruptError> {
        self.0
            .trigger(vector, msg.address, msg.data)
            .map_err(|e| InterruptError::Host {
                vector,
                reason: e.0,
            })
    }
}

/// Any [`PciFunction`] behind a mutex, as a bus slot.
pub struct SharedFunction<F: PciFunction>(pub Arc<Mutex<F>>);

impl<F: PciFunction> SharedFunction<F> {
    fn lock(&self) -> std::sync::MutexGuard<'_, F> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<F: PciFunction> PciSlot for SharedFunction<F> {
    fn config_read(&mut self, offset: u16) -> u32 {
        self.lock().config_read(offset)
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.lock().config_write(offset, data)
    }
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        self.lock().bar_read(bar, offset, data)
    }
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        self.lock().bar_write(bar, offset, data)
    }
    fn bar_regions(&self) -> Option<Vec<MappedBar>> {
        Some(
            self.lock()
                .bar_regions()
                .into_iter()
                .filter(|r| r.kind != BarKind::Io)
                .map(|r| MappedBar {
                    index: r.index,
                    base: r.address,
                    size: r.size,
                })
                .collect(),
        )
    }
}

/// Plugs a default-configured RNIC in at 00:01.0 and returns its poll hook.
pub fn factory() -> DeviceFactory {
    Box::new(
        |mem: &GuestMemoryMmap, router: Arc<GsiRouter<KvmIrqBackend>>, bus: &mut PciBus| {
            let sink: Arc<dyn InterruptSink> = Arc::new(RouterSink(router));
            let rnic = Arc::new(Mutex::new(Rnic::new(
                RnicConfig::default(),
                mem.clone(),
                sink,
            )));
            let bars = bus.add_device(RNIC_DEV, Box::new(SharedFunction(rnic.clone())))?;
            for b in &bars {
                info!(bar = b.index, base = %format!("{:#x}", b.base), size = b.size, "RNIC BAR placed");
            }
            let tick: TickFn = Box::new(move |now: Duration| {
                rnic.lock().unwrap_or_else(|p| p.into_inner()).poll(now);
            });
            Result::Ok(Some(tick))
        },
    )
}
