//! The RNIC out of process (`--rnic socket=PATH`): rnic-vmm boots the project's guest
//! (`target/images`, built by scripts/build.sh) with the RNIC served by
//! `rnic-device-server` over vfio-user, and a server killed mid-run ends the VM with
//! status 121 within a bounded time. Needs /dev/kvm (RNIC_ALLOW_NO_KVM=1 skips on
//! purpose). Logs of a failed run are kept under `target/test-artifacts/remote/`.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Longest a whole boot may take (about 0.2 s here; the machine is shared).
const BOOT_LIMIT: Duration = Duration::from_secs(100);
/// Longest the monitor may take to end after its device server died.
const LOST_LIMIT: Duration = Duration::from_secs(10);

fn images() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("RNIC_ARTIFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/images"));
    let (kernel, driver) = (dir.join("ndis-guest.elf"), dir.join("rnic.sys"));
    for p in [&kernel, &driver] {
        assert!(
            p.is_file(),
            "{} not found: run scripts/build.sh first (or set RNIC_ARTIFACT_DIR)",
            p.display()
        );
    }
    (kernel, driver)
}

struct Rig {
    scratch: Scratch,
    name: &'static str,
}

impl Rig {
    fn new(name: &'static str) -> Rig {
        Rig {
            scratch: Scratch::new(name),
            name,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.scratch.0.join(file)
    }

    fn log(&self, file: &str) -> String {
        fs::read_to_string(self.path(file)).unwrap_or_default()
    }

    /// Starts the server and waits until its socket exists.
    fn start_server(&self) -> Child {
        let socket = self.path("rnic.sock");
        let mut child = Command::new(server_binary())
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(File::create(self.path("server.log")).unwrap())
            .spawn()
            .expect("the server binary starts");
        let t0 = Instant::now();
        while !socket.exists() {
            if let Ok(Some(s)) = child.try_wait() {
                panic!(
                    "rnic-device-server exited with {s}: {}",
                    self.log("server.log")
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server never listened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    /// Starts rnic-vmm on the project's guest and driver.
    fn start_vmm(&self) -> Child {
        let (kernel, driver) = images();
        self.start_vmm_with(&kernel, Some(&driver))
    }

    fn start_vmm_with(&self, kernel: &Path, module: Option<&Path>) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rnic-vmm"));
        command.arg("--kernel").arg(kernel);
        if let Some(module) = module {
            command.arg("--module").arg(module);
        }
        command
            .arg("--rnic")
            .arg(format!("socket={}", self.path("rnic.sock").display()))
            .arg("--serial")
            .arg(self.path("serial.log"))
            .args(["--timeout", "100"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(File::create(self.path("vmm.log")).unwrap())
            .spawn()
            .expect("rnic-vmm starts")
    }

    /// Keeps the logs under target/test-artifacts/remote/NAME and fails with them.
    fn fail(&self, what: &str) -> ! {
        let keep = workspace_root()
            .join("target/test-artifacts/remote")
            .join(self.name);
        let _ = fs::remove_dir_all(&keep);
        fs::create_dir_all(&keep).unwrap();
        for f in ["serial.log", "vmm.log", "server.log"] {
            let _ = fs::copy(self.path(f), keep.join(f));
        }
        panic!(
            "{what}\n--- serial ---\n{}\n--- rnic-vmm ---\n{}\n--- server ---\n{}\n(logs kept in {})",
            self.log("serial.log"),
            self.log("vmm.log"),
            self.log("server.log"),
            keep.display()
        );
    }
}

/// Waits for `child` at most `limit`; kills it when the time is up (`None`).
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", child.id());
}

#[test]
fn the_guest_passes_with_the_rnic_served_by_rnic_device_server() {
    if !kvm_available("the_guest_passes_with_the_rnic_served_by_rnic_device_server") {
        return;
    }
    let rig = Rig::new("boot");
    let mut server = rig.start_server();
    let mut vmm = rig.start_vmm();
    let status = wait(&mut vmm, BOOT_LIMIT);
    let server_status = wait(&mut server, Duration::from_secs(20));
    let serial = rig.log("serial.log");
    if status.and_then(|s| s.code()) != Some(0) || !serial.contains("verdict: PASS") {
        rig.fail(&format!("rnic-vmm ended with {status:?}, not a PASS"));
    }
    if !serial.contains("ISR calls (") || serial.contains(" 0 ISR calls") {
        rig.fail("the guest saw no interrupt from the device server");
    }
    if server_status.map(|s| s.success()) != Some(true) {
        rig.fail(&format!(
            "the server did not end cleanly when the monitor disconnected: {server_status:?}"
        ));
    }
}

#[test]
fn a_device_server_killed_mid_run_ends_the_vm_with_status_121() {
    if !kvm_available("a_device_server_killed_mid_run_ends_the_vm_with_status_121") {
        return;
    }
    let rig = Rig::new("killed");
    let mut server = rig.start_server();
    let mut vmm = rig.start_vmm();
    // Freeze the monitor as soon as the driver talks to the device, kill the server,
    // then let the monitor run on: the guest is mid-way through its plan.
    let t0 = Instant::now();
    while !rig.log("serial.log").contains("rnic: InitializeEx") {
        if t0.elapsed() > BOOT_LIMIT || matches!(vmm.try_wait(), Ok(Some(_))) {
            let _ = server.kill();
            rig.fail("the guest never reached the driver's InitializeEx");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&vmm, libc::SIGSTOP);
    server.kill().unwrap();
    server.wait().unwrap();
    signal(&vmm, libc::SIGCONT);
    let t1 = Instant::now();
    let status = wait(&mut vmm, LOST_LIMIT);
    let waited = t1.elapsed();
    let err = rig.log("vmm.log");
    let last = err.lines().last().unwrap_or_default();
    if status.and_then(|s| s.code()) != Some(121) {
        rig.fail(&format!(
            "rnic-vmm ended with {status:?} after {waited:?}, not 121 (device lost)"
        ));
    }
    if !last.starts_with("rnic-vmm: error: the out-of-process device was lost")
        || !last.contains("RNIC rnic0")
    {
        rig.fail(&format!(
            "the last stderr line does not say the device was lost: {last}"
        ));
    }
    if rig.log("serial.log").contains("verdict: PASS") {
        rig.fail("the guest passed although its device died");
    }
}

#[test]
fn a_server_that_dies_under_an_idle_guest_is_noticed_by_the_heartbeat() {
    if !kvm_available("a_server_that_dies_under_an_idle_guest_is_noticed_by_the_heartbeat") {
        return;
    }
    let rig = Rig::new("idle");
    // A guest that never touches the device: only the monitor's heartbeat can see
    // the server go.
    let mut a = rnic_vmm::fixture::Asm::new();
    a.serial_str("idle\n").halt_forever();
    let kernel = rig.scratch.file(
        "idle.elf",
        &rnic_vmm::fixture::PvhImage::new(0x10_0000, a.finish()).build(),
    );
    let mut server = rig.start_server();
    let mut vmm = rig.start_vmm_with(&kernel, None);
    let t0 = Instant::now();
    while !rig.log("serial.log").contains("idle") {
        if t0.elapsed() > BOOT_LIMIT || matches!(vmm.try_wait(), Ok(Some(_))) {
            let _ = server.kill();
            rig.fail("the idle guest never started");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let t1 = Instant::now();
    let status = wait(&mut vmm, LOST_LIMIT);
    if status.and_then(|s| s.code()) != Some(121) {
        rig.fail(&format!(
            "rnic-vmm ended with {status:?} after {:?}, not 121 (device lost)",
            t1.elapsed()
        ));
    }
    let err = rig.log("vmm.log");
    if !err
        .lines()
        .last()
        .unwrap_or_default()
        .contains("the out-of-process device was lost")
    {
        rig.fail("the last stderr line does not say the device was lost");
    }
}

#[test]
fn a_socket_nobody_serves_is_one_line_and_status_125() {
    if !kvm_available("a_socket_nobody_serves_is_one_line_and_status_125") {
        return;
    }
    let s = Scratch::new("nosrv");
    let mut a = rnic_vmm::fixture::Asm::new();
    a.exit(0);
    let kernel = s.file(
        "k.elf",
        &rnic_vmm::fixture::PvhImage::new(0x10_0000, a.finish()).build(),
    );
    let socket = s.0.join("nobody.sock");
    let o = vmm(&[
        "--kernel",
        path_str(&kernel),
        "--rnic",
        &format!("id=far,socket={}", socket.display()),
    ]);
    assert_one_line_error(
        &o,
        125,
        &format!(
            "RNIC far: the device server at {} failed while connecting",
            socket.display()
        ),
    );
    assert!(
        stderr(&o).contains("start `rnic-device-server --socket"),
        "{}",
        stderr(&o)
    );
}
