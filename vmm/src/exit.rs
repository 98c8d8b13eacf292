//! vCPU exit handling: one function, [`handle_exit`], turns a `KVM_RUN` exit into
//! device accesses and an [`ExitAction`] for the vCPU loop. Unit tests drive it with
//! synthetic exits (as Firecracker's are), without KVM.
//!
//! Port I/O is dispatched through a [`RangeBus`] of port ranges (COM1, PCI
//! configuration mechanism #1, the exit port, the line console, the PIT and port
//! `0x61`); MMIO goes to the
//! PCI bus, whose own range bus holds the decoded BARs.
//!
//! Every exit costs the guest a round trip through the host (about 8.5 us on the
//! nested KVM here), and KVM's instruction emulator turns each byte of a `rep outsb`
//! into its own exit: so besides COM1 the monitor offers a line console
//! ([`CONSOLE_PORT`]) that takes a whole line of guest memory in one exit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use kvm_ioctls::VcpuExit;
use tracing::{trace, warn};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::bus::RangeBus;
use crate::pci::{PciBus, CONFIG_ADDRESS_PORT, CONFIG_PORT_COUNT};
use crate::pit::{Pit, PIT_BASE, PIT_PORT_COUNT, PORT_B};
use crate::serial::{Com1, COM1_BASE, COM1_PORT_COUNT};

/// The exit port: a write of status S (1, 2 or 4 bytes) ends the run with guest
/// status `S & 0xFF` (docs/platform.md).
pub const EXIT_PORT: u16 = 0xF4;
/// Ports the exit port's range covers, so that a 4-byte `out` at [`EXIT_PORT`]
/// resolves to it; writes at the other three are dropped.
const EXIT_PORT_WIDTH: u16 = 4;

/// The line console's port (docs/platform.md, "Line console"): a 32-bit read
/// returns [`CONSOLE_SIGNATURE`] (a machine without the console reads all ones); a
/// 32-bit write of a guest-physical address A prints the line record at A: a
/// little-endian `u32` byte count N (at most [`CONSOLE_MAX_LINE`]) followed by N
/// bytes of text, written to the serial output as they are.
pub const CONSOLE_PORT: u16 = 0xF8;
/// Ports the console's range covers (a 32-bit access at [`CONSOLE_PORT`]).
const CONSOLE_PORT_WIDTH: u16 = 4;
/// What a 32-bit read of [`CONSOLE_PORT`] returns: `"RVMC"` in little-endian order.
pub const CONSOLE_SIGNATURE: u32 = u32::from_le_bytes(*b"RVMC");
/// Most bytes one console record may carry; a longer record is refused whole.
pub const CONSOLE_MAX_LINE: u32 = 4096;

/// A device on the port bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortDevice {
    Com1,
    PciConfig,
    Exit,
    Console,
    Pit,
}

/// Exits handled, by kind, for the run's statistics (`-v` prints them at exit).
#[derive(Debug, Default)]
pub struct ExitCounts {
    /// Port writes to COM1.
    pub com1_writes: AtomicU64,
    /// Port reads of COM1 (line status polls, mostly).
    pub com1_reads: AtomicU64,
    /// Line console records printed.
    pub console_lines: AtomicU64,
    /// Bytes those records carried.
    pub console_bytes: AtomicU64,
    /// PCI configuration port accesses.
    pub pci_config: AtomicU64,
    /// Other port accesses (unclaimed ports, reads of the console's signature).
    pub other_ports: AtomicU64,
    /// MMIO reads and writes (BARs of the RNICs and any unclaimed address).
    pub mmio: AtomicU64,
}

impl ExitCounts {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter, as `name=value` pairs for a log line.
    pub fn summary(&self) -> String {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "com1_writes={} com1_reads={} console_lines={} console_bytes={} pci_config={} \
             other_ports={} mmio={}",
            v(&self.com1_writes),
            v(&self.com1_reads),
            v(&self.console_lines),
            v(&self.console_bytes),
            v(&self.pci_config),
            v(&self.other_ports),
            v(&self.mmio)
        )
    }
}

/// The devices behind port and MMIO exits.
pub struct Devices {
    serial: Mutex<Com1>,
    pci: Mutex<PciBus>,
    pit: Mutex<Pit>,
    ports: RangeBus<PortDevice>,
    /// Guest RAM, for the line console's records (None: records are ignored).
    memory: Option<GuestMemoryMmap>,
    /// Exits handled so far.
    pub counts: ExitCounts,
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
            (CONSOLE_PORT, CONSOLE_PORT_WIDTH, PortDevice::Console),
            (PIT_BASE, PIT_PORT_COUNT, PortDevice::Pit),
            (PORT_B, 1, PortDevice::Pit),
        ] {
            ports
                .insert(u64::from(base), u64::from(len), device)
                .expect("the fixed port ranges do not overlap");
        }
        Devices {
            serial: Mutex::new(serial),
            pci: Mutex::new(pci),
            pit: Mutex::new(Pit::new()),
            ports,
            memory: None,
            counts: ExitCounts::default(),
        }
    }

    /// Lets the line console read its records from `memory` (the guest's RAM).
    pub fn with_guest_memory(mut self, memory: GuestMemoryMmap) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Prints the line record at guest-physical `addr` (see [`CONSOLE_PORT`]). A
    /// record outside RAM or longer than [`CONSOLE_MAX_LINE`] is refused with a
    /// warning; the guest goes on.
    fn console_line(&self, addr: u32) -> ExitAction {
        let Some(mem) = &self.memory else {
            warn!(
                addr,
                "line console record ignored: no guest memory attached"
            );
            return ExitAction::Resume;
        };
        let mut len = [0u8; 4];
        let base = GuestAddress(u64::from(addr));
        if mem.read_slice(&mut len, base).is_err() {
            warn!(addr, "line console record outside guest RAM ignored");
            return ExitAction::Resume;
        }
        let len = u32::from_le_bytes(len);
        if len > CONSOLE_MAX_LINE {
            warn!(
                addr,
                len,
                max = CONSOLE_MAX_LINE,
                "line console record too long: ignored"
            );
            return ExitAction::Resume;
        }
        let mut text = vec![0u8; len as usize];
        if mem
            .read_slice(&mut text, GuestAddress(u64::from(addr) + 4))
            .is_err()
        {
            warn!(
                addr,
                len, "line console record runs outside guest RAM: ignored"
            );
            return ExitAction::Resume;
        }
        ExitCounts::bump(&self.counts.console_lines);
        self.counts
            .console_bytes
            .fetch_add(u64::from(len), Ordering::Relaxed);
        let mut serial = lock(&self.serial);
        serial.write_text(&text);
        match serial.take_error() {
            Some(why) => ExitAction::MonitorError(why),
            None => ExitAction::Resume,
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
            Some(PortDevice::Console) if port == CONSOLE_PORT && data.len() == 4 => {
                let addr = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                devices.console_line(addr)
            }
            Some(PortDevice::Exit) if port == EXIT_PORT => {
                let mut status = [0u8; 4];
                let n = data.len().min(4);
                status[..n].copy_from_slice(&data[..n]);
                devices.flush_serial();
                ExitAction::GuestExit(status[0])
            }
            Some(PortDevice::Com1) => {
                ExitCounts::bump(&devices.counts.com1_writes);
                let mut serial = lock(&devices.serial);
                serial.pio_write(port, data);
                match serial.take_error() {
                    Some(why) => ExitAction::MonitorError(why),
                    None => ExitAction::Resume,
                }
            }
            Some(PortDevice::PciConfig) => {
                ExitCounts::bump(&devices.counts.pci_config);
                lock(&devices.pci).config_port_write(port, data);
                ExitAction::Resume
            }
            Some(PortDevice::Pit) => {
                ExitCounts::bump(&devices.counts.other_ports);
                let mut pit = lock(&devices.pit);
                let now = pit.now();
                for (byte_port, &byte) in (port..).zip(data.iter()) {
                    pit.write(byte_port, byte, now);
                }
                ExitAction::Resume
            }
            Some(PortDevice::Exit | PortDevice::Console) | None => {
                ExitCounts::bump(&devices.counts.other_ports);
                trace!(port, ?data, "write to unclaimed port ignored");
                ExitAction::Resume
            }
        },
        VcpuExit::IoIn(port, data) => {
            match devices.port_device(port, data.len()) {
                Some(PortDevice::Com1) => {
                    ExitCounts::bump(&devices.counts.com1_reads);
                    lock(&devices.serial).pio_read(port, data)
                }
                Some(PortDevice::PciConfig) => {
                    ExitCounts::bump(&devices.counts.pci_config);
                    lock(&devices.pci).config_port_read(port, data)
                }
                Some(PortDevice::Console) if port == CONSOLE_PORT && data.len() == 4 => {
                    ExitCounts::bump(&devices.counts.other_ports);
                    data.copy_from_slice(&CONSOLE_SIGNATURE.to_le_bytes());
                }
                Some(PortDevice::Pit) => {
                    ExitCounts::bump(&devices.counts.other_ports);
                    let mut pit = lock(&devices.pit);
                    let now = pit.now();
                    for (byte_port, byte) in (port..).zip(data.iter_mut()) {
                        *byte = pit.read(byte_port, now);
                    }
                }
                Some(PortDevice::Exit | PortDevice::Console) | None => {
                    ExitCounts::bump(&devices.counts.other_ports);
                    data.fill(0xFF);
                    trace!(port, len = data.len(), "read of unclaimed port: all ones");
                }
            }
            ExitAction::Resume
        }
        VcpuExit::MmioRead(addr, data) => {
            ExitCounts::bump(&devices.counts.mmio);
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
            ExitCounts::bump(&devices.counts.mmio);
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

    /// The PIT is served in user space (there is no in-kernel PIT): a calibration loop's
    /// accesses reach it, and channel 2 counts down from the count written once its gate
    /// is on.
    #[test]
    fn pit_ports_reach_the_user_space_pit() {
        let (d, _) = devices();
        let out = |port: u16, v: u8| {
            assert_eq!(
                handle_exit(VcpuExit::IoOut(port, &[v]), &d),
                ExitAction::Resume
            )
        };
        let read = |port: u16| {
            let mut v = [0u8; 1];
            assert_eq!(
                handle_exit(VcpuExit::IoIn(port, &mut v), &d),
                ExitAction::Resume
            );
            v[0]
        };
        assert_eq!(read(PORT_B) & 1, 0, "channel 2's gate is off at power-on");
        out(PORT_B, 1);
        out(0x43, 0b1011_0000);
        out(0x42, 0xFF);
        out(0x42, 0xFF);
        assert_eq!(
            read(PORT_B) & 0x21,
            0x01,
            "gate on, OUT2 low while counting"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        out(0x43, 0b1000_0000);
        let count = u16::from_le_bytes([read(0x42), read(0x42)]);
        // At least 2 ms of 1.193 MHz ticks have passed (a slow host may add more).
        assert!(count <= 0xFFFF - 2_386, "count {count:#x}");
        assert_eq!(read(0x43), 0xFF, "the control port is write-only");
    }

    /// Devices whose console reads `ram` bytes of guest RAM at address 0.
    fn devices_with_memory(ram: usize) -> (Devices, Captured, GuestMemoryMmap) {
        let (d, out) = devices();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), ram)]).unwrap();
        (d.with_guest_memory(mem.clone()), out, mem)
    }

    fn put_record(mem: &GuestMemoryMmap, addr: u64, len: u32, text: &[u8]) {
        mem.write_slice(&len.to_le_bytes(), GuestAddress(addr))
            .unwrap();
        mem.write_slice(text, GuestAddress(addr + 4)).unwrap();
    }

    #[test]
    fn the_console_port_reads_its_signature_and_prints_a_record_in_one_exit() {
        let (d, out, mem) = devices_with_memory(0x10000);
        let mut sig = [0u8; 4];
        handle_exit(VcpuExit::IoIn(CONSOLE_PORT, &mut sig), &d);
        assert_eq!(&sig, b"RVMC");
        assert_eq!(u32::from_le_bytes(sig), CONSOLE_SIGNATURE);
        put_record(&mem, 0x2000, 12, b"guest: hello\n");
        assert_eq!(
            handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0x2000u32.to_le_bytes()), &d),
            ExitAction::Resume
        );
        // Only the counted bytes: the record says 12, the newline stays out.
        assert_eq!(&*out.0.lock().unwrap(), b"guest: hello");
        assert_eq!(d.counts.console_lines.load(Ordering::Relaxed), 1);
        assert_eq!(d.counts.console_bytes.load(Ordering::Relaxed), 12);
        // An empty record prints nothing and is fine.
        put_record(&mem, 0x3000, 0, b"");
        handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0x3000u32.to_le_bytes()), &d);
        assert_eq!(out.0.lock().unwrap().len(), 12);
    }

    #[test]
    fn console_records_outside_ram_or_too_long_are_refused_whole() {
        let (d, out, mem) = devices_with_memory(0x10000);
        // The count lies past the end of RAM.
        handle_exit(
            VcpuExit::IoOut(CONSOLE_PORT, &0xFFFF_FFF0u32.to_le_bytes()),
            &d,
        );
        // The text runs past the end of RAM.
        put_record(&mem, 0xFFF0, 64, b"");
        handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0xFFF0u32.to_le_bytes()), &d);
        // Longer than the limit, though inside RAM.
        put_record(&mem, 0x100, CONSOLE_MAX_LINE + 1, b"x");
        handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0x100u32.to_le_bytes()), &d);
        // Narrower accesses are not console accesses.
        handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &[0]), &d);
        let mut narrow = [0u8; 1];
        handle_exit(VcpuExit::IoIn(CONSOLE_PORT, &mut narrow), &d);
        assert_eq!(narrow, [0xFF]);
        assert!(out.0.lock().unwrap().is_empty());
        assert_eq!(d.counts.console_lines.load(Ordering::Relaxed), 0);
        // Without guest memory a record is ignored, not a crash.
        let (bare, bare_out) = devices();
        assert_eq!(
            handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0u32.to_le_bytes()), &bare),
            ExitAction::Resume
        );
        assert!(bare_out.0.lock().unwrap().is_empty());
        // At the limit is fine.
        let long = vec![b'y'; CONSOLE_MAX_LINE as usize];
        put_record(&mem, 0x100, CONSOLE_MAX_LINE, &long);
        handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0x100u32.to_le_bytes()), &d);
        assert_eq!(out.0.lock().unwrap().len(), CONSOLE_MAX_LINE as usize);
    }

    #[test]
    fn a_failing_output_behind_the_console_stops_the_run_as_a_monitor_error() {
        let serial = Com1::new(Box::new(Full), EventFd::new(0).unwrap());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let d = Devices::new(serial, PciBus::new()).with_guest_memory(mem.clone());
        put_record(&mem, 0, 1, b"x");
        match handle_exit(VcpuExit::IoOut(CONSOLE_PORT, &0u32.to_le_bytes()), &d) {
            ExitAction::MonitorError(why) => assert!(why.contains("serial output"), "{why}"),
            other => panic!("expected a monitor error, got {other:?}"),
        }
    }

    #[test]
    fn exits_are_counted_by_kind() {
        let (d, _) = devices();
        handle_exit(VcpuExit::IoOut(COM1_BASE, b"x"), &d);
        let mut v = [0u8; 1];
        handle_exit(VcpuExit::IoIn(COM1_BASE + 5, &mut v), &d);
        handle_exit(VcpuExit::IoIn(COM1_BASE + 5, &mut v), &d);
        let mut m = [0u8; 4];
        handle_exit(VcpuExit::MmioRead(0xC000_0000, &mut m), &d);
        let summary = d.counts.summary();
        assert!(summary.contains("com1_writes=1 com1_reads=2"), "{summary}");
        assert!(summary.contains("mmio=1"), "{summary}");
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
