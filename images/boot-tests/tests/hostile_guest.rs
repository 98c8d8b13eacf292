//! A hostile guest (`guest.hostile=registers`: thousands of random register and doorbell
//! writes to the RNIC, no driver) under rnic-vmm: the device keeps answering as its
//! contract says and comes back after a reset (the guest checks that and reports), the
//! monitor keeps serving its control API afterwards (checked here through curl over the
//! API socket, while `--hold` keeps the VM), its memory stays bounded, and it exits with
//! the guest's status when told to shut down.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guest_boot_tests::{kvm_available, Artifacts};

/// The monitor's peak resident memory we accept (the guest has 256 MiB of RAM by
/// default; the device's own state is a few MiB).
const MAX_MONITOR_RSS_KIB: u64 = 768 * 1024;

/// One request through curl over the Unix socket: (HTTP status, body).
fn curl(socket: &Path, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--unix-socket",
        ])
        .arg(socket)
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl runs (scripts/setup-packages.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The monitor's peak resident set (VmHWM) in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn random_register_and_doorbell_writes_leave_device_and_monitor_serving() {
    if !kvm_available().unwrap_or_else(|e| panic!("{e}")) {
        eprintln!("skipped: /dev/kvm is not usable");
        return;
    }
    let a = Artifacts::locate().unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("hostile-guest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("api.sock");
    let serial = dir.join("serial.log");
    let mut child = Command::new(&a.vmm)
        .arg("--kernel")
        .arg(&a.kernel)
        .arg("--module")
        .arg(&a.driver)
        .args([
            "--cmdline",
            "guest.hostile=registers",
            "--hold",
            "--timeout",
            "120",
        ])
        .arg("--api-socket")
        .arg(&socket)
        .arg("--serial")
        .arg(&serial)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rnic-vmm starts");
    let t0 = Instant::now();
    loop {
        let (code, vm) = curl(&socket, "GET", "/v1/vm");
        if code == 200 && vm.contains("\"finished\"") {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the guest did not finish; last GET /v1/vm: {code} {vm}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stats) = curl(&socket, "GET", "/v1/stats");
    assert_eq!(code, 200, "statistics after the hostile writes: {stats}");
    assert!(stats.trim_start().starts_with('{'), "{stats}");
    let rss = peak_rss_kib(child.id());
    eprintln!("rnic-vmm peak resident memory after the hostile guest: {rss} KiB");
    assert!(
        rss > 0 && rss < MAX_MONITOR_RSS_KIB,
        "the monitor's memory: {rss} KiB"
    );
    let (code, _) = curl(&socket, "PUT", "/v1/vm/shutdown");
    assert_eq!(code, 204);
    let out = child.wait_with_output().expect("rnic-vmm exits");
    let log = std::fs::read_to_string(&serial).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "hostile: 4096 random writes to 00:01.0 BAR0",
        "hostile: after DEV_CTRL.RESET: VERSION 0x10000, DEV_STATUS 0x0",
        "hostile: every RNIC survived and came back after a reset",
        "verdict: PASS",
    ] {
        assert!(log.contains(line), "missing {line:?} in\n{log}");
    }
    assert!(!socket.exists(), "the API socket is removed on exit");
}
