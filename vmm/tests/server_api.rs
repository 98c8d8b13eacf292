//! `rnic-device-server --api-socket` through real clients (curl over the Unix socket,
//! and `rnicctl --socket`): the same routes as rnic-vmm's for the server's one RNIC,
//! its `--faults` plan armed when the client (rnic-vmm with `--rnic socket=`) reaches
//! the device, 503 before that, the socket owner-only and removed when the session
//! ends. Needs /dev/kvm for the client VM (RNIC_ALLOW_NO_KVM=1 skips on purpose).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rnic_vmm::fixture::{Asm, PvhImage};
use serde_json::Value;

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start_server(s: &Scratch, plan: &Path) -> Child {
    Command::new(server_binary())
        .arg("--socket")
        .arg(s.0.join("rnic.sock"))
        .arg("--api-socket")
        .arg(s.0.join("api.sock"))
        .args(["--id", "far", "--wire", "loopback", "--faults"])
        .arg(plan)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts")
}

/// rnic-vmm with a guest that spins, its RNIC served by the server on `rnic.sock`.
fn start_client(s: &Scratch) -> Child {
    let mut a = Asm::new();
    let spin = a.label();
    a.bind(spin).jmp(spin);
    let kernel = s.file("spin.elf", &PvhImage::new(0x10_0000, a.finish()).build());
    Command::new(env!("CARGO_BIN_EXE_rnic-vmm"))
        .arg("--kernel")
        .arg(kernel)
        .arg("--rnic")
        .arg(format!("socket={}", s.0.join("rnic.sock").display()))
        .args(["--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rnic-vmm starts")
}

#[test]
fn the_device_server_serves_the_same_api_for_its_rnic() {
    if !kvm_available("the_device_server_serves_the_same_api_for_its_rnic") {
        return;
    }
    let s = Scratch::new("server-api");
    let plan = s.file(
        "plan.json",
        br#"{"fault": [{"site": "link", "action": "link_up", "times": 2}]}"#,
    );
    let server = start_server(&s, &plan);
    let api = s.0.join("api.sock");
    wait_for("the server never served its API", || api.exists());
    let mode = std::fs::metadata(&api).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    // No client yet: the device does not exist.
    let (code, vm) = curl(&api, "GET", "/v1/vm", None);
    assert_eq!((code, vm["state"].as_str()), (200, Some("waiting")), "{vm}");
    assert_eq!(vm["rnics"][0]["id"], "far");
    assert_eq!(vm["rnics"][0]["wire"], "loopback");
    let (code, body) = curl(&api, "GET", "/v1/stats", None);
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("vfio-user client"));

    let client = start_client(&s);
    wait_for("the client never reached the device", || {
        curl(&api, "GET", "/v1/vm", None).1["state"] == "serving"
    });
    let (_, vm) = curl(&api, "GET", "/v1/vm", None);
    assert!(vm["rnics"][0]["link_up"].is_boolean(), "{vm}");

    // The plan's rule was armed when the device was built.
    let (code, faults) = curl(&api, "GET", "/v1/faults", None);
    assert_eq!(code, 200);
    assert_eq!(faults["rnic"], "far");
    assert_eq!(faults["faults"][0]["times"], 2, "{faults}");
    let id = post_fault(
        &api,
        "/v1/faults?rnic=far",
        r#"{"site": "msix", "action": "delay", "delay_us": 5, "once_at": 1000000}"#,
    );
    let (code, _) = curl(&api, "DELETE", &format!("/v1/faults/{id}"), None);
    assert_eq!(code, 204);
    let (code, _) = curl(&api, "DELETE", &format!("/v1/faults/{id}"), None);
    assert_eq!(code, 404);
    let (code, log) = curl(&api, "GET", "/v1/faults/log", None);
    assert_eq!(code, 200);
    assert!(log["hits"].is_array(), "{log}");
    let (code, stats) = curl(&api, "GET", "/v1/stats?rnic=far", None);
    assert_eq!(code, 200);
    assert!(stats["stats"]["port"].is_object(), "{stats}");
    let (code, _) = curl(&api, "GET", "/v1/stats?rnic=near", None);
    assert_eq!(code, 404);
    let (code, body) = curl(&api, "POST", "/v1/faults", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    let (code, _) = curl(&api, "PUT", "/v1/link", Some(r#"{"up": false}"#));
    assert_eq!(code, 204);
    assert_eq!(
        curl(&api, "GET", "/v1/vm", None).1["rnics"][0]["link_up"],
        false
    );

    // rnicctl speaks to the server as to the monitor.
    let json = |text: &str| -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let (code, out, err) = rnicctl(&api, &["stats"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["rnic"], "far");
    let (code, out, _) = rnicctl(&api, &["--rnic", "far", "faults", "list"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["faults"].as_array().unwrap().len(), 1);
    let (code, _, _) = rnicctl(&api, &["link", "up"]);
    assert_eq!(code, 0);
    let (code, _, err) = rnicctl(&api, &["shutdown"]);
    assert_eq!(code, 1);
    assert!(err.contains("no VM to shut down"), "{err}");
    let (code, _, _) = rnicctl(&api, &["fatal"]);
    assert_eq!(code, 0);
    assert!(curl(&api, "GET", "/v1/vm", None).1["rnics"][0]["fatal"].is_u64());

    // The client goes: the session ends, the server exits and both sockets go.
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(client.id() as i32, libc::SIGTERM) }, 0);
    let _ = wait_exit(client);
    let out = wait_exit(server);
    assert_eq!(out.status.code(), Some(0));
    assert!(!api.exists(), "the API socket is removed");
    assert!(
        !s.0.join("rnic.sock").exists(),
        "the vfio-user socket is removed"
    );
}
