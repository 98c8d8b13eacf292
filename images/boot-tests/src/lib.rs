//! # guest-boot-tests: the end-to-end scenarios of the rig
//!
//! Owns the guest boot tests: `rnic-vmm` (from `vmm/`) boots the guest kernel
//! (`images/ndis-guest`, built to `target/images/ndis-guest.elf`) with the emulated
//! RNIC and the real driver image (`target/images/rnic.sys`), and the tests read the
//! verdict from the serial log and the exit status. It must not reach into the
//! monitor, device or guest internals: everything goes through the same command line
//! a user types.
//!
//! Where things are found (all overridable by environment variables, which
//! `scripts/test.sh` sets):
//!
//! | what | variable | default |
//! | --- | --- | --- |
//! | the monitor binary | `RNIC_VMM` | `<workspace>/target/debug/rnic-vmm` |
//! | guest kernel and driver | `RNIC_ARTIFACT_DIR` | `<workspace>/target/images` |
//!
//! The tests need `/dev/kvm`. Without it they fail, unless `RNIC_ALLOW_NO_KVM=1`
//! says the user accepts that they do not run (they then print that they were
//! skipped on purpose).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What can stop a boot test before it reaches a verdict.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A build output the test needs does not exist.
    #[error("{what} not found at {path}: run scripts/build.sh first (or set {var})")]
    MissingArtifact {
        /// What the file is (for example "rnic-vmm").
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The environment variable that overrides the path.
        var: &'static str,
    },
    /// `/dev/kvm` cannot be opened read-write.
    #[error("cannot open /dev/kvm ({0}): the guest boot tests need KVM; set RNIC_ALLOW_NO_KVM=1 to skip them on purpose")]
    NoKvm(#[source] std::io::Error),
    /// The monitor could not be started.
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The monitor's executable.
        path: PathBuf,
        /// Why the spawn failed.
        source: std::io::Error,
    },
    /// The monitor ran past the test's time limit (the value) and was killed.
    #[error("rnic-vmm did not finish within {0:?}; it was killed")]
    Timeout(Duration),
    /// Reading or writing a file the test uses failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The driver image could not be patched as the test asked (the value says why).
    #[error("driver image patch failed: {0}")]
    Patch(String),
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives two levels below the workspace root")
        .to_path_buf()
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// Paths of everything a boot needs.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The monitor executable (`RNIC_VMM`, default `target/debug/rnic-vmm`).
    pub vmm: PathBuf,
    /// The guest kernel ELF (`ndis-guest.elf` in `RNIC_ARTIFACT_DIR`).
    pub kernel: PathBuf,
    /// The driver image (`rnic.sys` in `RNIC_ARTIFACT_DIR`).
    pub driver: PathBuf,
}

impl Artifacts {
    /// Locates the monitor, the guest kernel and the driver; each must exist.
    pub fn locate() -> Result<Self, HarnessError> {
        let root = workspace_root();
        let dir = from_env_or("RNIC_ARTIFACT_DIR", root.join("target/images"));
        let a = Artifacts {
            vmm: from_env_or("RNIC_VMM", root.join("target/debug/rnic-vmm")),
            kernel: dir.join("ndis-guest.elf"),
            driver: dir.join("rnic.sys"),
        };
        for (what, path, var) in [
            ("rnic-vmm", &a.vmm, "RNIC_VMM"),
            ("guest kernel", &a.kernel, "RNIC_ARTIFACT_DIR"),
            ("driver image", &a.driver, "RNIC_ARTIFACT_DIR"),
        ] {
            if !path.is_file() {
                return Err(HarnessError::MissingArtifact {
                    what,
                    path: path.clone(),
                    var,
                });
            }
        }
        Ok(a)
    }
}

/// Whether KVM tests should run: `Ok(true)` run, `Ok(false)` skipped on purpose.
pub fn kvm_available() -> Result<bool, HarnessError> {
    match OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Ok(true),
        Err(e) => {
            if std::env::var("RNIC_ALLOW_NO_KVM").as_deref() == Ok("1") {
                eprintln!("SKIPPED ON PURPOSE: /dev/kvm unavailable ({e}) and RNIC_ALLOW_NO_KVM=1");
                Ok(false)
            } else {
                Err(HarnessError::NoKvm(e))
            }
        }
    }
}

/// The result of one monitor run.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status of rnic-vmm (`None` if killed by a signal).
    pub status: Option<i32>,
    /// Everything the guest wrote to its serial port.
    pub serial: String,
    /// The monitor's own stderr.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// Asserts that `lines` appear in the serial log in this order (each as a
    /// substring of some line, later lines after earlier ones).
    pub fn assert_in_order(&self, lines: &[&str]) {
        let log: Vec<&str> = self.serial.lines().collect();
        let mut at = 0;
        for want in lines {
            match log[at..].iter().position(|l| l.contains(want)) {
                Some(i) => at += i + 1,
                None => panic!(
                    "serial log lacks {want:?} after line {at}\n--- serial ---\n{}\n--- stderr ---\n{}",
                    self.serial, self.stderr
                ),
            }
        }
    }
}

/// Runs rnic-vmm with `args`, the serial log going to a temporary file, and waits
/// at most `limit`.
pub fn run_vmm(vmm: &Path, args: &[&str], limit: Duration) -> Result<Outcome, HarnessError> {
    let dir = run_dir();
    std::fs::create_dir_all(&dir).map_err(|source| HarnessError::Io {
        path: dir.clone(),
        source,
    })?;
    let serial_path = dir.join("serial.log");
    let stderr_path = dir.join("stderr.log");
    let stderr_file = File::create(&stderr_path).map_err(|source| HarnessError::Io {
        path: stderr_path.clone(),
        source,
    })?;
    let start = Instant::now();
    let mut child = Command::new(vmm)
        .args(args)
        .arg("--serial")
        .arg(&serial_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .map_err(|source| HarnessError::Spawn {
            path: vmm.to_path_buf(),
            source,
        })?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Timeout(limit));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(HarnessError::Io {
                    path: vmm.to_path_buf(),
                    source,
                })
            }
        }
    };
    let elapsed = start.elapsed();
    let read = |p: &Path| -> String {
        let mut s = Vec::new();
        if let Ok(mut f) = File::open(p) {
            let _ = f.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    };
    let out = Outcome {
        status: status.code(),
        serial: read(&serial_path),
        stderr: read(&stderr_path),
        elapsed,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// The scratch folder of one monitor run, unique per run: the process id and a per-process
/// counter (tests run in parallel threads; a time-derived suffix once let two runs share, and
/// one delete, the other's folder, leaving an empty serial log).
fn run_dir() -> PathBuf {
    std::env::temp_dir().join(format!("rnic-boot-{}-{}", std::process::id(), run_number()))
}

/// A loopback cable for an RNIC: a scratch folder of its own (removed on drop) with the Unix
/// datagram socket the RNIC both sends to and receives on, so every frame it sends comes back.
pub struct LoopbackWire {
    dir: PathBuf,
}

impl LoopbackWire {
    /// A fresh folder for the socket; panics if it cannot be created (a test set-up failure).
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("rnic-wire-{}-{}", std::process::id(), run_number()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        LoopbackWire { dir }
    }

    /// The folder, for other files of the run (a fault plan, say).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `--rnic` setting of the cable: `wire=unix:SOCKET,SOCKET`.
    pub fn rnic_setting(&self) -> String {
        let socket = self.dir.join("loop.sock");
        let socket = socket.to_str().expect("utf-8 temp path");
        format!("wire=unix:{socket},{socket}")
    }
}

impl Default for LoopbackWire {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LoopbackWire {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number no other run of this process gets.
fn run_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Returns a copy of a driver image in which the imported function `from` is
/// renamed to `to` (same length), so that the guest cannot resolve it. The name is
/// located through the PE import table, not by guessing.
pub fn rename_import(image: &[u8], from: &str, to: &str) -> Result<Vec<u8>, HarnessError> {
    if from.len() != to.len() {
        return Err(HarnessError::Patch(format!(
            "{from} and {to} differ in length"
        )));
    }
    let pe = goblin::pe::PE::parse(image).map_err(|e| HarnessError::Patch(e.to_string()))?;
    if !pe.imports.iter().any(|i| i.name == from) {
        return Err(HarnessError::Patch(format!(
            "the image does not import {from}"
        )));
    }
    // The hint/name entry is "<u16 hint><name>\0"; find the name NUL-terminated and
    // NUL- or hint-preceded, and require exactly one such place.
    let needle: Vec<u8> = from.bytes().chain(std::iter::once(0)).collect();
    let hits: Vec<usize> = image
        .windows(needle.len())
        .enumerate()
        .filter(|(i, w)| *w == needle.as_slice() && *i >= 2)
        .map(|(i, _)| i)
        .collect();
    let [at] = hits.as_slice() else {
        return Err(HarnessError::Patch(format!(
            "expected one hint/name entry for {from}, found {}",
            hits.len()
        )));
    };
    let mut out = image.to_vec();
    out[*at..*at + from.len()].copy_from_slice(to.as_bytes());
    let patched = goblin::pe::PE::parse(&out).map_err(|e| HarnessError::Patch(e.to_string()))?;
    if !patched.imports.iter().any(|i| i.name == to) {
        return Err(HarnessError::Patch(format!(
            "patched image does not import {to}"
        )));
    }
    Ok(out)
}

/// Time one guest boot may take before the test calls it hung.
pub const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// Locates the artifacts and checks KVM for a boot test: `None` means skipped on purpose
/// (`RNIC_ALLOW_NO_KVM=1` without KVM); a missing artifact or KVM otherwise panics with what
/// to do.
pub fn setup() -> Option<Artifacts> {
    match kvm_available() {
        Ok(true) => Some(Artifacts::locate().unwrap_or_else(|e| panic!("{e}"))),
        Ok(false) => None,
        Err(e) => panic!("{e}"),
    }
}

/// Boots the guest kernel with the driver module, 256 MiB and the `extra` rnic-vmm
/// arguments; panics if the monitor cannot run or exceeds [`BOOT_LIMIT`].
pub fn boot_guest(a: &Artifacts, extra: &[&str]) -> Outcome {
    let kernel = a.kernel.to_str().expect("utf-8 path");
    let driver = a.driver.to_str().expect("utf-8 path");
    let mut args = vec!["--kernel", kernel, "--module", driver, "--memory", "256"];
    args.extend_from_slice(extra);
    run_vmm(&a.vmm, &args, BOOT_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots with the verifier-rule self test `name` (`guest.selftest=NAME`, a misbehaving module
/// the guest plays): the guest must report `guest: selftest NAME: the verifier caught it: `
/// with every one of `caught` on that line, then boot on to a clean verdict with the real
/// driver (status 0).
pub fn assert_rule_selftest_caught(name: &str, caught: &[&str]) {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &["--cmdline", &format!("guest.selftest={name}")]);
    let line = format!("guest: selftest {name}: the verifier caught it: ");
    out.assert_in_order(&[&line, "ndis: DriverEntry", "verdict: PASS"]);
    let report = out
        .serial
        .lines()
        .find(|l| l.starts_with(&line))
        .expect("report line");
    for text in caught {
        assert!(report.contains(text), "{report:?} lacks {text:?}");
    }
    assert_eq!(out.status, Some(0), "{}\n{}", out.serial, out.stderr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_never_repeat_across_threads() {
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..100).map(|_| run_dir()).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<PathBuf> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
