//! Monitor errors and the process exit codes they map to.
//!
//! Every error message is one line that says what went wrong and what to do.

use std::path::PathBuf;

/// Exit status when the monitor itself fails (bad arguments, unreadable files,
/// KVM errors, device set-up failures).
pub const EXIT_MONITOR_ERROR: i32 = 125;
/// Exit status when the guest ran past `--timeout`.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the guest crashed: triple fault (KVM_EXIT_SHUTDOWN), failed VM
/// entry or an internal KVM emulation error.
pub const EXIT_GUEST_CRASH: i32 = 123;
/// Exit status when the monitor was interrupted by SIGINT (128 + 2, shell convention).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything that can stop the monitor before or while the guest runs.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// Command-line parse or validation failure.
    #[error("{0}; run `rnic-vmm --help` for usage")]
    Usage(String),
    /// A file named on the command line cannot be used.
    #[error("cannot read {what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The kernel is not a PVH-bootable ELF.
    #[error("kernel {path} is not usable: {reason}")]
    Kernel { path: PathBuf, reason: String },
    /// The boot image (kernel + modules + boot data) does not fit the memory map.
    #[error("{0}")]
    Layout(String),
    /// `/dev/kvm` is missing or not accessible.
    #[error("{0}")]
    KvmUnavailable(String),
    /// A KVM ioctl failed while setting up the VM.
    #[error("KVM {op} failed: {source}; check that /dev/kvm supports this (see `rnic-vmm -v`)")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be created or written.
    #[error("guest memory: {0}; try a smaller --memory")]
    Memory(String),
    /// The serial output file cannot be created.
    #[error("cannot open serial output {path}: {source}; pass a writable path or `stdout`")]
    Serial {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A host resource (thread, eventfd, timerfd, signal handler) could not be created.
    #[error("cannot set up {what}: {reason}")]
    Host { what: &'static str, reason: String },
    /// The emulated RNIC could not be created or wired up.
    #[error("RNIC set-up failed: {0}; run with --no-rnic to boot without it")]
    Device(String),
}

impl VmmError {
    /// Wraps a KVM ioctl error with the name of the operation.
    pub fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |source| VmmError::Kvm { op, source }
    }

    /// Wraps a host resource failure.
    pub fn host<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> VmmError {
        move |e| VmmError::Host {
            what,
            reason: e.to_string(),
        }
    }
}

/// Result alias used throughout the monitor.
pub type Result<T> = std::result::Result<T, VmmError>;
