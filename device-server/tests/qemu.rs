//! QEMU as the vfio-user client: QEMU 11.1 (from `scripts/setup-qemu.sh`) boots the
//! project's PVH guest on the `pc` machine with the RNIC served by
//! `rnic-device-server`, and the guest runs the same driver life cycle it runs under
//! rnic-vmm. A second test kills the server while the guest uses the device.
//!
//! Needs: QEMU >= 10.1 (set up by `scripts/setup-qemu.sh`, which this test runs; it
//! takes seconds once the private extraction exists) and the guest artifacts
//! (`scripts/build.sh`). When QEMU cannot be set up the tests fail with the reason,
//! unless `RNIC_ALLOW_NO_QEMU=1` (they then print "SKIPPED on purpose"). Logs of a
//! failed run are kept under `target/test-artifacts/vfio-user/`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest a whole boot may take (about 4 s here; the nested KVM is slow and the
/// machine is shared).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives one level below the workspace root")
        .to_path_buf()
}

struct Rig {
    qemu: PathBuf,
    kernel: PathBuf,
    driver: PathBuf,
    /// Where this test's logs go (a fresh directory per test).
    dir: PathBuf,
    /// Where the logs are kept when the test fails.
    keep: PathBuf,
}

/// Finds QEMU and the guest artifacts; `None` when the user opted out of QEMU tests.
fn rig(test: &str) -> Option<Rig> {
    let root = workspace_root();
    let setup = root.join("scripts/setup-qemu.sh");
    let out = Command::new(&setup)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
    let qemu = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !qemu.is_file() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().last().unwrap_or("no output").to_string();
        if std::env::var("RNIC_ALLOW_NO_QEMU").as_deref() == Ok("1") {
            eprintln!("SKIPPED on purpose: QEMU >= 10.1 could not be set up ({why}) and RNIC_ALLOW_NO_QEMU=1");
            return None;
        }
        panic!("scripts/setup-qemu.sh failed: {why}; the vfio-user interop test needs QEMU >= 10.1 (set RNIC_ALLOW_NO_QEMU=1 to skip it on purpose)");
    }
    let images = std::env::var_os("RNIC_ARTIFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/images"));
    let (kernel, driver) = (images.join("ndis-guest.elf"), images.join("rnic.sys"));
    for p in [&kernel, &driver] {
        assert!(
            p.is_file(),
            "{} not found: run scripts/build.sh first (or set RNIC_ARTIFACT_DIR)",
            p.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("rnic-vfio-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let keep = root.join("target/test-artifacts/vfio-user").join(test);
    Some(Rig {
        qemu,
        kernel,
        driver,
        dir,
        keep,
    })
}

impl Rig {
    fn socket(&self) -> PathBuf {
        self.dir.join("rnic.sock")
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Starts the server and waits until its socket exists.
    fn start_server(&self) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rnic-device-server"))
            .arg("--socket")
            .arg(self.socket())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(self.dir.join("server.log")).unwrap())
            .spawn()
            .expect("the server binary starts");
        let t0 = Instant::now();
        while !self.socket().exists() {
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
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Starts QEMU on the pc machine with shared memfd RAM, the guest, its driver
    /// as the initrd module, the exit port and the RNIC over vfio-user. `accel` is
    /// QEMU's accelerator list (`-accel` options).
    fn start_qemu(&self, accel: &[&str]) -> Child {
        let device = format!(
            "{{\"driver\":\"vfio-user-pci\",\"socket\":{{\"type\":\"unix\",\"path\":\"{}\"}}}}",
            self.socket().display()
        );
        Command::new(&self.qemu)
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(accel.iter().flat_map(|a| ["-accel", a]))
            .args(["-machine", "pc,memory-backend=mem"])
            .args([
                "-object",
                "memory-backend-memfd,id=mem,size=256M,share=on",
                "-m",
                "256",
            ])
            .arg("-serial")
            .arg(format!("file:{}", self.dir.join("serial.log").display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.driver)
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .args(["-device", &device])
            .stdout(Stdio::null())
            .stderr(File::create(self.dir.join("qemu.log")).unwrap())
            .spawn()
            .expect("QEMU starts")
    }

    /// Keeps the logs of a failed test; removes them on success.
    fn finish(&self, ok: bool, what: &str) {
        if ok {
            let _ = fs::remove_dir_all(&self.dir);
            return;
        }
        let _ = fs::remove_dir_all(&self.keep);
        fs::create_dir_all(&self.keep).unwrap();
        for f in ["serial.log", "qemu.log", "server.log"] {
            let _ = fs::copy(self.dir.join(f), self.keep.join(f));
        }
        panic!(
            "{what}\n--- serial ---\n{}\n--- qemu ---\n{}\n--- server ---\n{}\n(logs kept in {})",
            self.log("serial.log"),
            self.log("qemu.log"),
            self.log("server.log"),
            self.keep.display()
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// KVM when /dev/kvm works (interrupts reach the guest through KVM irqfds), else TCG.
const KVM_FIRST: &[&str] = &["kvm", "tcg"];

/// Boots the guest with `accel`, checks the verdict and prints the wall time.
fn boot_passes(test: &str, accel: &[&str]) {
    let Some(rig) = rig(test) else { return };
    let mut server = rig.start_server();
    let t0 = Instant::now();
    let mut qemu = rig.start_qemu(accel);
    let status = wait(&mut qemu, BOOT_TIMEOUT);
    let elapsed = t0.elapsed();
    let server_status = wait(&mut server, Duration::from_secs(20));
    let serial = rig.log("serial.log");
    // isa-debug-exit: QEMU exits with (value << 1) | 1, so guest status 0 is 1.
    let passed = status.and_then(|s| s.code()) == Some(1) && serial.contains("verdict: PASS");
    let server_clean = server_status.is_some_and(|s| s.success());
    let found = serial.contains("pci: rnic found") && serial.contains("rnic: adapter ready");
    rig.finish(
        passed && server_clean && found,
        &format!("QEMU exited with {status:?} (guest PASS is 1), server with {server_status:?}"),
    );
    eprintln!(
        "QEMU ({}) + rnic-device-server: start to verdict {} ms",
        accel.join(","),
        elapsed.as_millis()
    );
}

#[test]
fn qemu_boots_the_guest_with_the_rnic_served_over_vfio_user() {
    boot_passes("boot", KVM_FIRST);
}

#[test]
fn qemu_tcg_boots_the_guest_with_the_rnic_served_over_vfio_user() {
    // Without KVM QEMU delivers the device's eventfd interrupts itself.
    boot_passes("boot-tcg", &["tcg"]);
}

#[test]
fn server_killed_mid_run_gives_qemu_an_error_not_a_hang() {
    let Some(rig) = rig("server-killed") else {
        return;
    };
    let mut server = rig.start_server();
    let mut qemu = rig.start_qemu(KVM_FIRST);
    // Kill the server once the guest has found the RNIC and its driver is starting.
    let t0 = Instant::now();
    while !rig.log("serial.log").contains("rnic: DriverEntry") {
        if t0.elapsed() > BOOT_TIMEOUT || qemu.try_wait().ok().flatten().is_some() {
            let _ = server.kill();
            let _ = qemu.kill();
            rig.finish(false, "the guest never reached the driver");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().expect("the server is still running");
    let _ = server.wait();
    let status = wait(&mut qemu, BOOT_TIMEOUT);
    let serial = rig.log("serial.log");
    let qemu_log = rig.log("qemu.log");
    // The guest reads all ones from the lost device, its driver fails and the guest
    // reports a FAIL verdict through the exit port: an odd QEMU status other than 1.
    let code = status.and_then(|s| s.code());
    let guest_verdict = code.is_some_and(|c| c & 1 == 1 && c != 1);
    let failed_visibly = serial.contains("verdict: FAIL") && !serial.contains("verdict: PASS");
    let reported = qemu_log.contains("vfio") || qemu_log.contains("socket");
    rig.finish(
        guest_verdict && failed_visibly && reported,
        &format!("after the server died QEMU ended with {status:?} (None = hung and was killed); it must end on its own with a FAIL verdict of the guest and QEMU must report the lost device"),
    );
}
