//! The control API through a real HTTP client (curl over the Unix socket), with a
//! fixture guest that spins (or exits, for --hold): every route, malformed and
//! unknown requests, the socket's permissions and its removal on exit.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rnic_vmm::fixture::{Asm, PvhImage};
use serde_json::Value;

const LOAD: u64 = 0x10_0000;

fn spinning_kernel(s: &Scratch) -> PathBuf {
    let mut a = Asm::new();
    let l = a.label();
    a.serial_str("up\n");
    a.bind(l).jmp(l);
    s.file("spin.elf", &PvhImage::new(LOAD, a.finish()).build())
}

fn exiting_kernel(s: &Scratch, status: u32) -> PathBuf {
    let mut a = Asm::new();
    a.serial_str("up\n").exit(status);
    s.file("exit.elf", &PvhImage::new(LOAD, a.finish()).build())
}

/// Starts rnic-vmm and waits until the guest printed "up" and the socket exists.
fn start(kernel: &Path, socket: &Path, extra: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnic-vmm"))
        .args([
            "--kernel",
            path_str(kernel),
            "--api-socket",
            path_str(socket),
        ])
        .args(["--timeout", "60"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rnic-vmm");
    let mut up = [0u8; 3];
    child.stdout.as_mut().unwrap().read_exact(&mut up).unwrap();
    assert_eq!(&up, b"up\n");
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no API socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// With KVM: a scratch directory and a running VM whose guest spins, serving the
/// API on `api.sock` in that directory. `None` when KVM tests are skipped on purpose.
fn spinning_vm(test: &str, extra: &[&str]) -> Option<(Scratch, PathBuf, Child)> {
    if !kvm_available(test) {
        return None;
    }
    let s = Scratch::new("api");
    let socket = s.0.join("api.sock");
    let child = start(&spinning_kernel(&s), &socket, extra);
    Some((s, socket, child))
}

#[test]
fn every_route_answers_and_bad_requests_get_4xx_json() {
    let Some((_scratch, socket, child)) =
        spinning_vm("every_route_answers_and_bad_requests_get_4xx_json", &[])
    else {
        return;
    };

    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    let (code, vm) = curl(&socket, "GET", "/v1/vm", None);
    assert_eq!(code, 200);
    assert_eq!(vm["state"], "running");
    assert_eq!(vm["rnics"][0]["id"], "rnic0");
    assert_eq!(vm["rnics"][0]["pci_device"], 1);

    let (code, stats) = curl(&socket, "GET", "/v1/stats", None);
    assert_eq!(code, 200);
    assert!(stats["stats"]["port"].is_object(), "{stats}");
    assert!(stats["stats"]["faults"].is_object(), "{stats}");

    // A link fault that hits at the first service pass.
    let id = post_fault(
        &socket,
        "/v1/faults?rnic=rnic0",
        r#"{"site": "link", "action": "link_down", "once_at": 1, "times": 1}"#,
    );
    let (code, faults) = curl(&socket, "GET", "/v1/faults", None);
    assert_eq!(code, 200);
    assert_eq!(faults["faults"][0]["id"], id);
    assert_eq!(faults["faults"][0]["times"], 1);
    let t0 = Instant::now();
    loop {
        let (code, log) = curl(&socket, "GET", "/v1/faults/log", None);
        assert_eq!(code, 200);
        if let Some(hit) = log["hits"].as_array().and_then(|h| h.first()) {
            assert_eq!(hit["rule"], id);
            assert_eq!(hit["site"], "link");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no hit: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _) = curl(&socket, "DELETE", &format!("/v1/faults/{id}"), None);
    assert_eq!(code, 204);

    // Malformed and unknown requests: 4xx with a JSON error, the VM goes on.
    for (method, path, body, want) in [
        ("DELETE", format!("/v1/faults/{id}"), None, 404),
        ("DELETE", "/v1/faults/abc".to_string(), None, 400),
        ("POST", "/v1/faults".to_string(), Some("{"), 400),
        (
            "POST",
            "/v1/faults".to_string(),
            Some(r#"{"site": "msix", "action": "link_down"}"#),
            400,
        ),
        (
            "POST",
            "/v1/faults".to_string(),
            Some(r#"{"site": "msix", "action": "drop", "x": 1}"#),
            400,
        ),
        ("PUT", "/v1/link".to_string(), Some(r#"{"up": "yes"}"#), 400),
        ("GET", "/v1/stats?rnic=nope".to_string(), None, 404),
        ("GET", "/v1/stats?colour=red".to_string(), None, 400),
        ("GET", "/v2/anything".to_string(), None, 404),
        ("POST", "/v1/vm".to_string(), Some("{}"), 405),
        ("GET", "/v1/vm/shutdown".to_string(), None, 405),
        ("DELETE", "/v1/faults/log".to_string(), None, 405),
    ] {
        let (code, answer) = curl(&socket, method, &path, body);
        assert_eq!(code, want, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let big = format!(r#"{{"up": true, "pad": "{}"}}"#, "x".repeat(70_000));
    let (code, answer) = curl(&socket, "PUT", "/v1/link", Some(&big));
    assert_eq!(code, 413, "{answer}");

    let (code, _) = curl(&socket, "PUT", "/v1/link", Some(r#"{"up": false}"#));
    assert_eq!(code, 204);
    let (code, _) = curl(&socket, "PUT", "/v1/fatal", None);
    assert_eq!(code, 204);
    let (_, vm) = curl(&socket, "GET", "/v1/vm", None);
    assert_eq!(vm["state"], "running", "{vm}");
    assert!(vm["rnics"][0]["fatal"].is_u64(), "{vm}");
    assert_eq!(vm["rnics"][0]["link_up"], false);

    let (code, _) = curl(&socket, "PUT", "/v1/vm/shutdown", None);
    assert_eq!(code, 204);
    let o = wait_exit(child);
    // The device logs the injected faults (warnings) before the summary line.
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(122), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("rnic-vmm: error: shut down through the control API"),
        "{err}"
    );
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn hold_keeps_the_api_after_the_verdict_and_exits_with_the_guest_status() {
    if !kvm_available("hold_keeps_the_api_after_the_verdict_and_exits_with_the_guest_status") {
        return;
    }
    let s = Scratch::new("hold");
    let kernel = exiting_kernel(&s, 3);
    for ending in ["shutdown", "SIGTERM"] {
        let socket = s.0.join(format!("{ending}.sock"));
        let child = start(&kernel, &socket, &["--hold"]);
        let t0 = Instant::now();
        let vm = loop {
            let (_, vm) = curl(&socket, "GET", "/v1/vm", None);
            if vm["state"] == "finished" {
                break vm;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{vm}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(vm["outcome"]["kind"], "guest_exit");
        assert_eq!(vm["outcome"]["status"], 3);
        let (code, _) = curl(&socket, "GET", "/v1/stats", None);
        assert_eq!(code, 200, "statistics stay readable while held");
        let (code, _) = curl(&socket, "GET", "/v1/faults/log", None);
        assert_eq!(code, 200);
        if ending == "shutdown" {
            let (code, _) = curl(&socket, "PUT", "/v1/vm/shutdown", None);
            assert_eq!(code, 204);
        } else {
            // SAFETY: kill(2) on our own child's pid.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        }
        let o = wait_exit(child);
        assert_eq!(o.status.code(), Some(3), "{ending}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("rnic-vmm: guest exited with status 3 after"),
            "{}",
            stderr(&o)
        );
        assert!(!socket.exists(), "{ending}: the socket is removed on exit");
    }
}

#[test]
fn rnicctl_speaks_the_api() {
    let Some((_scratch, socket, child)) = spinning_vm(
        "rnicctl_speaks_the_api",
        &["--rnic", "id=left", "--rnic", "id=right"],
    ) else {
        return;
    };
    let json = |text: &str| -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };

    let (code, out, _) = rnicctl(&socket, &["vm"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["rnics"][1]["id"], "right");
    // Two RNICs: routes need --rnic.
    let (code, _, err) = rnicctl(&socket, &["stats"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("rnicctl: error: ") && err.contains("?rnic=ID"),
        "{err}"
    );
    let (code, out, _) = rnicctl(&socket, &["--rnic", "right", "stats"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["rnic"], "right");

    let (code, out, err) = rnicctl(
        &socket,
        &[
            "--rnic",
            "right",
            "faults",
            "add",
            "site=msix",
            "action=drop",
            "interval=4",
            "times=2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = json(&out)["id"].as_u64().unwrap().to_string();
    let (_, out, _) = rnicctl(&socket, &["--rnic", "right", "faults", "list"]);
    assert_eq!(json(&out)["faults"][0]["trigger"]["n"], 4);
    let (_, out, _) = rnicctl(&socket, &["--rnic", "left", "faults", "list"]);
    assert_eq!(json(&out)["faults"], serde_json::json!([]));
    let (code, _, err) = rnicctl(
        &socket,
        &[
            "--rnic",
            "right",
            "faults",
            "add",
            "site=msix",
            "action=fatal",
            "queue=1",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 400") && err.contains("queue"), "{err}");
    let (code, out, _) = rnicctl(&socket, &["--rnic", "right", "faults", "log"]);
    assert_eq!(code, 0);
    assert!(json(&out)["hits"].is_array());
    let (code, _, _) = rnicctl(&socket, &["--rnic", "right", "faults", "rm", &id]);
    assert_eq!(code, 0);
    let (code, _, err) = rnicctl(&socket, &["--rnic", "right", "faults", "rm", &id]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = rnicctl(&socket, &["--rnic", "left", "link", "down"]);
    assert_eq!(code, 0);
    let (code, _, _) = rnicctl(&socket, &["--rnic", "left", "fatal"]);
    assert_eq!(code, 0);
    let (code, _, _) = rnicctl(&socket, &["shutdown"]);
    assert_eq!(code, 0);
    let o = wait_exit(child);
    assert_eq!(o.status.code(), Some(122), "{}", stderr(&o));
    assert!(!socket.exists());
    let (code, _, err) = rnicctl(&socket, &["vm"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn a_socket_path_in_use_is_a_one_line_error() {
    if !kvm_available("a_socket_path_in_use_is_a_one_line_error") {
        return;
    }
    let s = Scratch::new("inuse");
    let kernel = exiting_kernel(&s, 0);
    let file = s.file("not-a-socket", b"x");
    let o = vmm(&[
        "--kernel",
        path_str(&kernel),
        "--api-socket",
        path_str(&file),
    ]);
    assert_one_line_error(&o, 125, "is in use");
    assert!(file.exists(), "a file that is not a socket is left alone");
}
