//! vCPU exit handling: one function, [`handle_exit`], turns a `KVM_RUN` exit into
//! device accesses and an [`ExitAction`] for the vCPU loop. Unit tests drive it with
//! synthetic exits (as Firecracker's are), without KVM.
//!
//! Port I/O is dispatched through a [`RangeBus`] of port ranges (COM1, PCI
//! configuration mechanism #1, the exit port); MMIO goes to the PCI bus, whose own
//! range bus holds the decoded BARs.

use std::sync::{Mutex, MutexGuard};

use kvm_ioctls::VcpuExit;
use tracing::trace;

use crate::bus::RangeBus;
use crate::pci::{PciBus, CONFIG_ADDRESS_PORT, CONFIG_PORT_COUNT};
use crate::serial::{Com1, COM1_BASE, COM1_PORT_COUNT};

/// The exit port: a write of status S (1, 2 or 4 bytes) ends the run with guest
/// status `S & 0xFF` (docs/platform.md).
pub const EXIT_PORT: u16 = 0xF4;
/// Ports the exit port's range covers, so that a 4-byte `out` at [`EXIT_PORT`]
/// resolves to it; writes at the other three are dropped.
const EXIT_PORT_WIDTH: u16 = 4;

/// A device on the port bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortDevice {
    Com1,
    PciConfig,
    Exit,
}

/// The devices behind port and MMIO exits.
pub struct Devices {
    serial: Mutex<Com1>,
    pci: Mutex<PciBus>,
    ports: RangeBus<PortDevice>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Devices {
    /// COM1, the PCI bus and the exit port on their fixed ports.
    pub fn new(serial: Com1, pci: PciBus) -> Self {
        let mut ports = RangeBus::default();
        for (base, len, device) in [
            (COM1_BASE, COM1_PORT_COUNT, PortDevice::Com1),
            (
                CONFIG_ADDRESS_PORT,
                CONFIG_PORT_COUNT,
                PortDevice::PciConfig,
            ),
            (EXIT_PORT, EXIT_PORT_WIDTH, PortDevice::Exit),
        ] {
            ports
                .insert(u64::from(base), u64::from(len), device)
                .expect("the fixed port ranges do not overlap");
        }
        Devices {
            serial: Mutex::new(serial),
            pci: Mutex::new(pci),
            ports,
        }
    }

    /// Flushes the serial output (before the run's outcome is reported).
    pub fn flush_serial(&self) {
        lock(&self.serial).flush();
    }

    fn port_device(&self, port: u16, len: usize) -> Option<PortDevice> {
        self.ports
            .resolve(u64::from(port), len as u64)
            .map(|(_, device, _)| *device)
    }
}

/// What the vCPU loop does after an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitAction {
    /// Run the vCPU again.
    Resume,
    /// The guest wrote its status to the exit port.
    GuestExit(u8),
    /// The guest crashed; the reason for the summary line.
    Crash(String),
    /// The monitor cannot go on (the serial output failed); the reason.
    MonitorError(String),
    /// `KVM_EXIT_INTERNAL_ERROR`: the loop reads the sub-error from `kvm_run` and
    /// reports a crash (see [`internal_error_reason`]).
    InternalError,
}

/// The crash reason for `KVM_EXIT_INTERNAL_ERROR` with sub-error `suberror`.
pub fn internal_error_reason(suberror: u32) -> String {
    format!(
        "KVM internal error, suberror {suberror} (1 = instruction emulation failed); \
         the guest used an instruction this KVM cannot emulate"
    )
}

/// Handles one vCPU exit: port and MMIO accesses go to the devices (unclaimed
/// reads return all ones, unclaimed writes are dropped); the exit port, crashes and
/// unexpected exits become the matching [`ExitAction`].
pub fn handle_exit(exit: VcpuExit<'_>, devices: &Devices) -> ExitAction {
    match exit {
        VcpuExit::IoOut(port, data) => match devices.port_device(port, data.len()) {
            Some(PortDevice::Exit) if port == EXIT_PORT => {
                let mut status = [0u8; 4];
                let n = data.len().min(4);
                status[..n].copy_from_slice(&data[..n]);
                devices.flush_serial();
                ExitAction::GuestExit(status[0])
            }
            Some(PortDevice::Com1) => {
                let mut serial = lock(&devices.serial);
                serial.pio_write(port, data);
                match serial.take_error() {
                    Some(why) => ExitAction::MonitorError(why),
                    None => ExitAction::Resume,
                }
            }
            Some(PortDevice::PciConfig) => {
                lock(&devices.pci).config_port_write(port, data);
                ExitAction::Resume
            }
            Some(PortDevice::Exit) | None => {
                trace!(port, ?data, "write to unclaimed port ignored");
                ExitAction::Resume
            }
        },
        VcpuExit::IoIn(port, data) => {
            match devices.port_device(port, data.len()) {
                Some(PortDevice::Com1) => lock(&devices.serial).pio_read(port, data),
                Some(PortDevice::PciConfig) => lock(&devices.pci).config_port_read(port, data),
                Some(PortDevice::Exit) | None => {
                    data.fill(0xFF);
                    trace!(port, len = data.len(), "read of unclaimed port: all ones");
                }
            }
            ExitAction::Resume
        }
        VcpuExit::MmioRead(addr, data) => {
            if !lock(&devices.pci).mmio_read(addr, data) {
                trace!(
                    addr,
                    len = data.len(),
                    "MMIO read outside any BAR: all ones"
                );
            }
            ExitAction::Resume
        }
        VcpuExit::MmioWrite(addr, data) => {
            if !lock(&devices.pci).mmio_write(addr, data) {
                trace!(addr, ?data, "MMIO write outside any BAR ignored");
            }
            ExitAction::Resume
        }
        // With the in-kernel irqchip HLT does not exit; if it does, the guest has
        // nothing left to do that could ever wake it.
        VcpuExit::Hlt => ExitAction::Crash("HLT exit with no way to wake the vCPU".into()),
        VcpuExit::Shutdown => ExitAction::Crash("triple fault (KVM_EXIT_SHUTDOWN)".into()),
        VcpuExit::FailEntry(reason, cpu) => ExitAction::Crash(format!(
            "VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}, cpu {cpu})"
        )),
        VcpuExit::InternalError => ExitAction::InternalError,
        VcpuExit::SystemEvent(kind, _) => ExitAction::Crash(format!(
            "guest requested system event {kind} (reset/shutdown)"
        )),
        other => ExitAction::Crash(format!("unexpected vCPU exit {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::test_sinks::{Captured, Full};
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn a_failing_serial_output_stops_the_run_as_a_monitor_error() {
        let serial = Com1::new(Box::new(Full), EventFd::new(0).unwrap());
        let d = Devices::new(serial, PciBus::new());
        match handle_exit(VcpuExit::IoOut(COM1_BASE, b"x"), &d) {
            ExitAction::MonitorError(why) => assert!(why.contains("serial output"), "{why}"),
            other => panic!("expected a monitor error, got {other:?}"),
        }
    }

    fn devices() -> (Devices, Captured) {
        let out = Captured::default();
        let serial = Com1::new(Box::new(out.clone()), EventFd::new(0).unwrap());
        (Devices::new(serial, PciBus::new()), out)
    }

    #[test]
    fn exit_port_write_ends_the_run_with_the_low_status_byte() {
        let (d, _) = devices();
        assert_eq!(
            handle_exit(VcpuExit::IoOut(EXIT_PORT, &[3]), &d),
            ExitAction::GuestExit(3)
        );
        assert_eq!(
            handle_exit(VcpuExit::IoOut(EXIT_PORT, &0x1_02u32.to_le_bytes()), &d),
            ExitAction::GuestExit(2)
        );
        // The other ports of its range are not the exit port.
        assert_eq!(
            handle_exit(VcpuExit::IoOut(EXIT_PORT + 1, &[3]), &d),
            ExitAction::Resume
        );
        // Reading the exit port is an unclaimed read.
        let mut v = [0u8; 1];
        assert_eq!(
            handle_exit(VcpuExit::IoIn(EXIT_PORT, &mut v), &d),
            ExitAction::Resume
        );
        assert_eq!(v, [0xFF]);
    }

    #[test]
    fn port_exits_reach_com1_and_pci_configuration() {
        let (d, out) = devices();
        for b in b"ok" {
            assert_eq!(
                handle_exit(VcpuExit::IoOut(COM1_BASE, &[*b]), &d),
                ExitAction::Resume
            );
        }
        assert_eq!(&*out.0.lock().unwrap(), b"ok");
        handle_exit(
            VcpuExit::IoOut(CONFIG_ADDRESS_PORT, &0x8000_0000u32.to_le_bytes()),
            &d,
        );
        let mut id = [0u8; 4];
        handle_exit(VcpuExit::IoIn(0xCFC, &mut id), &d);
        assert_eq!(u32::from_le_bytes(id), 0x29C0_8086, "host bridge identity");
    }

    #[test]
    fn unclaimed_ports_and_addresses_read_all_ones_and_drop_writes() {
        let (d, out) = devices();
        let mut v = [0u8; 2];
        assert_eq!(
            handle_exit(VcpuExit::IoIn(0x80, &mut v), &d),
            ExitAction::Resume
        );
        assert_eq!(v, [0xFF; 2]);
        // A word access straddling COM1's last port is not COM1's.
        handle_exit(VcpuExit::IoOut(0x3FF, b"xy"), &d);
        assert!(out.0.lock().unwrap().is_empty());
        let mut m = [0u8; 4];
        assert_eq!(
            handle_exit(VcpuExit::MmioRead(0xC000_0000, &mut m), &d),
            ExitAction::Resume
        );
        assert_eq!(m, [0xFF; 4]);
        assert_eq!(
            handle_exit(VcpuExit::MmioWrite(0xFEB0_0000, &[1; 4]), &d),
            ExitAction::Resume
        );
    }

    #[test]
    fn crashes_and_unexpected_exits_stop_the_run_with_a_reason() {
        let (d, _) = devices();
        let crash = |e| match handle_exit(e, &d) {
            ExitAction::Crash(why) => why,
            other => panic!("expected a crash, got {other:?}"),
        };
        assert!(crash(VcpuExit::Shutdown).contains("triple fault"));
        assert!(crash(VcpuExit::Hlt).contains("HLT"));
        assert!(crash(VcpuExit::FailEntry(0x21, 0)).contains("0x21"));
        assert!(crash(VcpuExit::SystemEvent(1, &[])).contains("system event 1"));
        assert!(crash(VcpuExit::Debug(Default::default())).contains("unexpected vCPU exit"));
        assert_eq!(
            handle_exit(VcpuExit::InternalError, &d),
            ExitAction::InternalError
        );
        assert!(internal_error_reason(1).contains("suberror 1"));
    }
}
