//! Helpers shared by the integration tests: scratch directories, running the
//! binary, and the /dev/kvm policy (fail unless RNIC_ALLOW_NO_KVM=1).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
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

/// One request with curl; returns the HTTP status and the body (JSON or empty).
pub fn curl(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--unix-socket", path_str(socket), "-X", method])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://localhost{path}"));
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd
        .output()
        .expect("curl is installed (scripts/setup-packages.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').expect("curl printed the status");
    let value = if json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{method} {path}: {e}: {json}"))
    };
    (code.parse().unwrap(), value)
}

/// Waits at most 20 s for `child` to exit and returns its output.
pub fn wait_exit(mut child: Child) -> std::process::Output {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "rnic-vmm did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Runs rnicctl against `socket`; returns (exit status, stdout, stderr).
pub fn rnicctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rnicctl"))
        .args(["--socket", path_str(socket)])
        .args(args)
        .output()
        .expect("spawn rnicctl");
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives one level below the workspace root")
        .to_path_buf()
}

/// `rnic-device-server` next to this test's own target directory.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let server = dir.join("rnic-device-server");
    assert!(
        server.is_file(),
        "{} not found: build it first (cargo build -p rnic-device-server, or scripts/build.sh)",
        server.display()
    );
    server
}

/// Adds a fault with `POST url` (`/v1/faults?rnic=...`), asserts 201 and returns its id.
pub fn post_fault(socket: &Path, url: &str, entry: &str) -> u64 {
    let (code, added) = curl(socket, "POST", url, Some(entry));
    assert_eq!(code, 201, "{added}");
    added["id"].as_u64().unwrap()
}
