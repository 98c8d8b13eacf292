//! Helpers shared by the integration tests: scratch directories, running the
//! binary, and the /dev/kvm policy (fail unless RNIC_ALLOW_NO_KVM=1).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rnic-vmm-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs rnic-vmm with `args`.
pub fn vmm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnic-vmm"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn rnic-vmm")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run failed with a single `rnic-vmm: error:` line and no panic.
pub fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("rnic-vmm: error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
}

/// True when KVM tests can run. Without /dev/kvm this panics (the test fails)
/// unless RNIC_ALLOW_NO_KVM=1, in which case it says the test was skipped on
/// purpose and returns false.
pub fn kvm_available(test: &str) -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if ok {
        return true;
    }
    if std::env::var("RNIC_ALLOW_NO_KVM").as_deref() == Ok("1") {
        eprintln!("{test}: SKIPPED on purpose: /dev/kvm is not usable and RNIC_ALLOW_NO_KVM=1");
        return false;
    }
    panic!(
        "{test}: /dev/kvm is missing or not accessible, so this KVM test cannot run; \
         run on a host with KVM, or set RNIC_ALLOW_NO_KVM=1 to skip KVM tests on purpose"
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
