//! BAR0 decode (`docs/device-spec.md` §2): control registers, `DEV_CTRL`, the
//! doorbell windows, and the effects of configuration-space writes.

use super::*;

impl Rnic {
    pub(crate) fn reg_read(&mut self, offset: u64) -> u32 {
        match offset {
            bar0::VERSION => bar0::VERSION_VALUE,
            bar0::CAPS => bar0::CAPS_VALUE,
            bar0::DEV_CTRL => {
                if self.core.enabled {
                    dev_ctrl::ENABLE
                } else {
                    0
                }
            }
            bar0::DEV_STATUS => self.dev_status(),
            bar0::ADMIN_ERROR => self.core.admin_error,
            bar0::MAC_LO => self.eth.mac().low_u32(),
            bar0::MAC_HI => self.eth.mac().high_u32(),
            o => self
                .admin
                .reg_read(o)
                .or_else(|| self.core.eq.reg_read(o))
                .unwrap_or(0),
        }
    }

    pub(crate) fn reg_write(&mut self, offset: u64, value: u32) {
        match offset {
            bar0::DEV_CTRL => self.write_dev_ctrl(value),
            bar0::EQ_BASE_LO | bar0::EQ_BASE_HI | bar0::EQ_SIZE | bar0::EQ_HEAD => {
                if self.core.eq.reg_write(offset, value).is_err() && self.ready() {
                    self.set_admin_error(admin_error::BAD_EQ);
                }
            }
            o => match self.admin.reg_write(o, value) {
                AdminRegEffect::None => {}
                AdminRegEffect::Error(cause) => {
                    if self.ready() {
                        self.set_admin_error(cause)
                    }
                }
                AdminRegEffect::Process => {
                    if !self.core.dma.bus_master() {
                        self.set_admin_error(admin_error::BUS_MASTER_DISABLED);
                    } else if self.ready() {
                        self.run_admin();
                    }
                }
            },
        }
    }

    pub(crate) fn write_dev_ctrl(&mut self, value: u32) {
        if value & dev_ctrl::RESET != 0 {
            self.device_reset();
            return;
        }
        let en = value & dev_ctrl::ENABLE != 0;
        if en && !self.core.enabled {
            if let Err(cause) = self.admin.enable(&self.core.dma) {
                self.set_admin_error(cause);
            } else if self.core.eq.enable(&self.core.dma).is_err() {
                self.set_admin_error(admin_error::BAD_EQ);
            }
            // Enabling with the link up posts LINK_UP, into the event ring just latched.
            self.core.set_enabled(true);
        } else if !en && self.core.enabled {
            self.device_reset();
        }
    }

    pub(crate) fn apply_config_effects(&mut self, fx: crate::pci::ConfigEffects) {
        if fx.flr {
            self.function_level_reset();
            return;
        }
        if fx.command_changed {
            self.core.dma.set_bus_master(self.pci.bus_master());
        }
        if fx.bars_changed {
            let ranges = self
                .pci
                .bar_regions()
                .iter()
                .map(|r| (r.address, r.size))
                .collect();
            self.core.dma.set_excluded(ranges);
        }
        if fx.msix_control_changed {
            let (en, mask) = self.pci.msix_control();
            self.core.msix.set_control(en, mask);
        }
    }

    pub(crate) fn decoding(&self) -> bool {
        self.pci.memory_enabled() && self.pci.power_state() == 0
    }

    pub(crate) fn bar0_read(&mut self, offset: u64) -> u32 {
        if self.core.fatal.is_fatal() {
            return 0xFFFF_FFFF;
        }
        if offset < bar0::CONTROL_END {
            self.reg_read(offset)
        } else if offset < rnic_contract::bar0::eth_db::ETH_END {
            self.eth.doorbell_read(offset)
        } else {
            0
        }
    }

    pub(crate) fn bar0_write(&mut self, offset: u64, value: u32) {
        if self.core.fatal.is_fatal() {
            if offset == bar0::DEV_CTRL && value & dev_ctrl::RESET != 0 {
                self.device_reset();
            }
            return;
        }
        self.operation(|dev| {
            if offset < bar0::CONTROL_END {
                dev.reg_write(offset, value);
            } else if !dev.core.enabled {
                // Doorbells of a disabled device are ignored.
            } else if offset < rnic_contract::bar0::eth_db::ETH_END {
                dev.eth.doorbell_write(&mut dev.core, offset, value);
            } else {
                dev.verbs.doorbell(&mut dev.core, offset, value);
            }
        });
    }
}
