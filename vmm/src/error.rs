//! Monitor errors and the process exit codes they map to.
//!
//! Every error message is one line that says what went wrong and what to do.
//! Errors that come from a library keep it as their `#[source]`.

use std::path::PathBuf;

use crate::irq::RouteError;
use crate::pci::PciError;

/// Exit status when the monitor itself fails (bad arguments, unreadable files,
/// KVM errors, device set-up failures).
pub const EXIT_MONITOR_ERROR: i32 = 125;
/// Exit status when the guest ran past `--timeout`.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the guest crashed: triple fault (KVM_EXIT_SHUTDOWN), failed VM
/// entry or an internal KVM emulation error.
pub const EXIT_GUEST_CRASH: i32 = 123;
/// Exit status when the monitor was interrupted by SIGINT (128 + 2, shell
/// convention); SIGTERM gives 143 and SIGHUP 129 the same way.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit status when `PUT /v1/vm/shutdown` ended the run before the guest's verdict.
pub const EXIT_SHUTDOWN_REQUESTED: i32 = 122;
/// Exit status when the process serving an RNIC (`--rnic socket=PATH`) went away
/// while the guest ran.
pub const EXIT_DEVICE_LOST: i32 = 121;

/// Why the boot image (kernel + modules + boot data) does not fit the memory map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// A kernel segment is linked below 1 MiB.
    #[error(
        "kernel segment {start:#x}..{end:#x} lies below 1 MiB, where the legacy area \
         and boot data are; link the kernel at or above 1 MiB"
    )]
    KernelBelowHighRam {
        /// First guest-physical byte of the segment.
        start: u64,
        /// One past its last byte.
        end: u64,
    },
    /// A kernel segment ends past guest RAM below 4 GiB.
    #[error(
        "kernel segment {start:#x}..{end:#x} ends past guest RAM below 4 GiB \
         (which ends at {ram_end:#x} with --memory {memory_mib}); raise --memory"
    )]
    KernelPastRam {
        /// First guest-physical byte of the segment.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// One past the last byte of RAM below 4 GiB.
        ram_end: u64,
        /// The `--memory` value, in MiB.
        memory_mib: u64,
    },
    /// A boot module does not fit after the kernel and the modules before it.
    #[error(
        "module {name} ({size} bytes) does not fit in guest RAM after the kernel \
         and earlier modules (RAM below 4 GiB ends at {ram_end:#x}); raise --memory"
    )]
    ModuleDoesNotFit {
        /// The module's name (`--module NAME=PATH`).
        name: String,
        /// Its size in bytes.
        size: u64,
        /// One past the last byte of RAM below 4 GiB.
        ram_end: u64,
    },
}

/// Everything that can stop the monitor before or while the guest runs.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// Command-line parse or validation failure.
    #[error("{0}; run `rnic-vmm --help` for usage")]
    Usage(String),
    /// A file named on the command line cannot be used.
    #[error("cannot read {what} {path}: {reason}")]
    File {
        /// What the file is for ("kernel", "module").
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be used (the OS error, or "is a directory", "is empty").
        reason: String,
    },
    /// The `--config` file is not valid JSON of the expected schema.
    #[error(
        "config file {}: {}; see `rnic-vmm --help` for the keys",
        rnic_control::one_line(&path.display().to_string()),
        rnic_control::one_line(&source.to_string())
    )]
    ConfigFile {
        /// The `--config` path.
        path: PathBuf,
        /// serde_json's error (it names the line, column and field).
        #[source]
        source: serde_json::Error,
    },
    /// The kernel is not a PVH-bootable ELF.
    #[error("kernel {path} is not usable: {reason}")]
    Kernel {
        /// The `--kernel` path.
        path: PathBuf,
        /// What the ELF check found.
        reason: String,
    },
    /// The boot image (kernel + modules + boot data) does not fit the memory map.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A `--vfio-device` cannot be passed through (the message names what is missing).
    #[error(transparent)]
    Passthrough(#[from] crate::passthrough::PassthroughError),
    /// A device server (`--rnic socket=PATH`) could not be used at start.
    #[error("RNIC {id}: the device server at {socket} failed while {step}: {source}; start `rnic-device-server --socket {socket}` first (it serves one client)")]
    DeviceServer {
        /// The RNIC's id.
        id: String,
        /// The socket path.
        socket: PathBuf,
        /// What the monitor was doing.
        step: &'static str,
        /// The vfio-user client's error.
        #[source]
        source: vfio_user::Error,
    },
    /// Guest RAM is not file-backed, so it cannot be mapped into a device server.
    #[error("RNIC {id}: guest RAM is not backed by a file, so the device server cannot map it (a monitor bug: socket RNICs need shared memory)")]
    DeviceServerMemory {
        /// The RNIC's id.
        id: String,
    },
    /// The device server went away while the RNIC was being attached.
    #[error(
        "RNIC {id}: the device server went away while the RNIC was being attached; check its log"
    )]
    DeviceServerLostAtStart {
        /// The RNIC's id.
        id: String,
    },
    /// `/dev/kvm` is missing or not accessible.
    #[error("{0}")]
    KvmUnavailable(String),
    /// A KVM ioctl failed while setting up the VM.
    #[error("KVM {op} failed: {source}; check that /dev/kvm supports this (see `rnic-vmm -v`)")]
    Kvm {
        /// The ioctl, e.g. `KVM_CREATE_VM`.
        op: &'static str,
        /// KVM's answer.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be allocated.
    #[error("cannot allocate guest memory: {source}; try a smaller --memory")]
    MemoryAllocation {
        /// vm-memory's reason.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// The memfd behind shared guest RAM (needed by `--rnic socket=`) could not be made.
    #[error("cannot create shared guest memory (memfd) for the out-of-process RNIC: {0}; try a smaller --memory")]
    SharedMemory(#[source] std::io::Error),
    /// Boot data could not be written into guest memory.
    #[error("cannot write {what} into guest memory: {source}; try a larger --memory")]
    MemoryWrite {
        /// What was being written ("a module", "the command line", ...).
        what: &'static str,
        /// vm-memory's reason.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// linux-loader could not load the kernel's segments.
    #[error(
        "cannot load the kernel into guest memory: {source}; check the kernel's program headers"
    )]
    KernelLoad {
        /// linux-loader's reason.
        #[source]
        source: linux_loader::loader::Error,
    },
    /// linux-loader found a different PVH entry than the monitor's own ELF check.
    #[error(
        "linux-loader reports PVH entry {found} but the ELF note says {expected:#x}; \
         the kernel has conflicting PVH notes: keep one XEN_ELFNOTE_PHYS32_ENTRY"
    )]
    PvhEntryMismatch {
        /// What linux-loader reported.
        found: String,
        /// The entry from the monitor's ELF check.
        expected: u32,
    },
    /// `hvm_start_info` could not be written.
    #[error("cannot write hvm_start_info: {source}; try a larger --memory")]
    StartInfo {
        /// linux-loader's reason.
        #[source]
        source: linux_loader::configurator::Error,
    },
    /// The serial output file cannot be created.
    #[error("cannot open serial output {path}: {source}; pass a writable path or `stdout`")]
    Serial {
        /// The `--serial` path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A host resource (thread, eventfd, timerfd, signal handler) could not be created.
    #[error("cannot set up {what}: {source}; check the process limits (ulimit -n, -u)")]
    Host {
        /// Which resource.
        what: &'static str,
        /// The OS or library error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A fault plan file cannot be read or is not valid (the message names the file,
    /// the line and the field).
    #[error(transparent)]
    FaultPlan(#[from] crate::faultplan::PlanFileError),
    /// The fault engine refused a rule of a plan.
    #[error("RNIC {id}: fault rule refused: {source}")]
    FaultRule {
        /// The RNIC's id.
        id: String,
        /// The engine's reason.
        #[source]
        source: rnic_device::fault::FaultError,
    },
    /// An RNIC's wire could not be opened.
    #[error("RNIC {id}: cannot open its wire: {source}")]
    Wire {
        /// The RNIC's id.
        id: String,
        /// The wire backend's reason.
        #[source]
        source: rnic_device::wire::WireError,
    },
    /// An RNIC's pcap file could not be created.
    #[error("RNIC {id}: cannot create its pcap file: {source}; pass a writable pcap=FILE")]
    Pcap {
        /// The RNIC's id.
        id: String,
        /// The capture's reason.
        #[source]
        source: rnic_device::wire::pcap::PcapError,
    },
    /// A device could not be placed on the PCI bus.
    #[error("RNIC set-up failed: {0}; run with --no-rnic to boot without it")]
    Pci(#[from] PciError),
    /// The control API socket could not be served.
    #[error("control API: {0}")]
    Api(#[from] crate::api::ApiError),
    /// The interrupt routing table could not be set up.
    #[error("interrupt routing set-up failed: {0}; check that KVM has an in-kernel irqchip")]
    Routing(#[from] RouteError),
}

impl VmmError {
    /// Wraps a KVM ioctl error with the name of the operation.
    pub fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |source| VmmError::Kvm { op, source }
    }

    /// Wraps a host resource failure.
    pub fn host<E>(what: &'static str) -> impl FnOnce(E) -> VmmError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| VmmError::Host {
            what,
            source: Box::new(e),
        }
    }

    /// Wraps a failed write of boot data into guest memory.
    pub fn memory_write(
        what: &'static str,
    ) -> impl FnOnce(vm_memory::GuestMemoryError) -> VmmError {
        move |source| VmmError::MemoryWrite { what, source }
    }
}

/// Result alias used throughout the monitor.
pub type Result<T> = std::result::Result<T, VmmError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_errors_stay_one_line() {
        // Found by the `config` fuzz target: serde_json quotes an unknown field name,
        // newline and all.
        let source =
            serde_json::from_str::<crate::options::ConfigFile>(r#"{"a\nb": 1}"#).unwrap_err();
        let e = VmmError::ConfigFile {
            path: PathBuf::from("c.json"),
            source,
        };
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(r"a\nb"), "{text}");
    }
}
