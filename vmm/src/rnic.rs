//! The RNIC in the monitor: its [`InterruptSink`] (KVM GSI routing + irqfd, via
//! [`GsiRouter`]) and its place on the PCI bus (the device behind a mutex, shared
//! by the bus on the vCPU threads and the event loop's periodic `poll`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rnic_device::device::{Rnic, RnicConfig};
use rnic_device::irq::{InterruptError, InterruptSink, MsiMessage};
use tracing::info;
use vm_memory::GuestMemoryMmap;

use crate::error::Result;
use crate::irq::{GsiRouter, IrqBackend, KvmIrqBackend};
use crate::pci::{PciBus, FIRST_RNIC_DEVICE};
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
                reason: e.to_string(),
            })
    }

    fn trigger(&self, vector: u16, msg: MsiMessage) -> std::result::Result<(), InterruptError> {
        self.0
            .trigger(vector, msg.address, msg.data)
            .map_err(|e| InterruptError::Host {
                vector,
                reason: e.to_string(),
            })
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
            let bars = bus.add_device(FIRST_RNIC_DEVICE, rnic.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rnic_contract::bar0;
    use rnic_contract::pci::{
        BAR0, COMMAND, PCIE_CAP, PCIE_DEVCTL_INITIATE_FLR, PCIE_DEVICE_CONTROL,
    };
    use rnic_device::{PciFunction, RecordingSink};
    use vm_memory::GuestAddress;

    use crate::pci::MappedBar;

    fn write_config(bus: &mut PciBus, register: usize, data: &[u8]) {
        let address =
            0x8000_0000u32 | (u32::from(FIRST_RNIC_DEVICE) << 11) | (register as u32 & !3);
        bus.config_port_write(crate::pci::CONFIG_ADDRESS_PORT, &address.to_le_bytes());
        bus.config_port_write(crate::pci::CONFIG_DATA_PORT + (register as u16 & 3), data);
    }

    fn version(bus: &mut PciBus, bar0_base: u64) -> Option<u32> {
        let mut v = [0u8; 4];
        bus.mmio_read(bar0_base + bar0::VERSION, &mut v)
            .then_some(u32::from_le_bytes(v))
    }

    /// The real device on the bus: its configuration writes report BAR moves and
    /// the bus routes MMIO by them (enable, move, function level reset).
    #[test]
    fn the_rnic_reports_its_bar_moves_to_the_bus() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let rnic = Arc::new(Mutex::new(Rnic::new(
            RnicConfig::default(),
            mem,
            Arc::new(RecordingSink::default()),
        )));
        let mut bus = PciBus::new();
        let placed = bus.add_device(FIRST_RNIC_DEVICE, rnic.clone()).unwrap();
        assert_eq!(placed.len(), 2, "BAR0 and BAR2: {placed:?}");
        assert!(bus.mapped_bars(FIRST_RNIC_DEVICE).is_empty());
        let bar0 = placed[0].base;
        assert_eq!(version(&mut bus, bar0), None);

        write_config(&mut bus, COMMAND, &2u16.to_le_bytes());
        assert_eq!(bus.mapped_bars(FIRST_RNIC_DEVICE), placed);
        let expected = {
            let mut v = [0u8; 4];
            rnic.lock().unwrap().bar_read(0, bar0::VERSION, &mut v);
            u32::from_le_bytes(v)
        };
        assert_eq!(version(&mut bus, bar0), Some(expected));

        // The guest moves BAR0 (64-bit: low dword, then high dword).
        let moved = 0xD000_0000u64;
        write_config(&mut bus, BAR0, &(moved as u32 | 0x4).to_le_bytes());
        write_config(&mut bus, BAR0 + 4, &0u32.to_le_bytes());
        assert_eq!(
            bus.mapped_bars(FIRST_RNIC_DEVICE)[0],
            MappedBar {
                index: 0,
                base: moved,
                size: placed[0].size
            }
        );
        assert_eq!(version(&mut bus, bar0), None);
        assert_eq!(version(&mut bus, moved), Some(expected));

        // A function level reset clears the BARs and Command: nothing is decoded.
        write_config(
            &mut bus,
            PCIE_CAP + PCIE_DEVICE_CONTROL,
            &PCIE_DEVCTL_INITIATE_FLR.to_le_bytes(),
        );
        assert!(bus.mapped_bars(FIRST_RNIC_DEVICE).is_empty());
        assert_eq!(version(&mut bus, moved), None);
    }
}
