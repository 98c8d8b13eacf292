//! The [`PciFunction`] implementation the monitor drives (owned by the monitor side of
//! the device/monitor seam; moved here intact from device.rs).

use super::*;
use crate::pci::{bar_moves, BarKind, BarMove, BarRegion};

impl PciFunction for Rnic {
    fn config_read(&mut self, offset: u16) -> u32 {
        self.pci.read(offset)
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<BarMove> {
        let before = self.decoded_bars();
        let fx = self.pci.write(offset, data);
        // The decoded BARs follow the BAR registers, memory decoding (Command) and
        // the power state; an FLR resets all three.
        let may_move = fx.flr || fx.bars_changed || fx.command_changed || fx.power_state_changed;
        self.apply_config_effects(fx);
        if !may_move {
            return Vec::new();
        }
        bar_moves(&before, &self.decoded_bars())
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if !self.decoding() {
            data.fill(0xFF);
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= BAR0_SIZE {
                    data.fill(0xFF);
                    return;
                }
                let v = self.bar0_read(offset);
                data.copy_from_slice(&v.to_le_bytes());
            }
            2 if offset < BAR2_SIZE => self.core.msix.bar_read(offset, data),
            _ => data.fill(0xFF),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if !self.decoding() {
            return;
        }
        match bar {
            0 => {
                if data.len() != 4 || offset & 3 != 0 || offset >= BAR0_SIZE {
                    return;
                }
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.bar0_write(offset, v);
            }
            2 if offset < BAR2_SIZE => self.core.msix.bar_write(offset, data),
            _ => {}
        }
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.pci.bar_regions()
    }

    fn decoded_bars(&self) -> Vec<BarRegion> {
        if !self.decoding() {
            return Vec::new();
        }
        let mut bars = self.pci.bar_regions();
        bars.retain(|r| r.kind != BarKind::Io);
        bars
    }
}
