//! The binary's error path: a bad set-up is one line on stderr and a non-zero exit,
//! never a backtrace.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rnic-device-server"))
        .args(args)
        .output()
        .expect("the server binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn setup_errors_are_one_line_and_exit_non_zero() {
    let dir = std::env::temp_dir().join(format!("rnic-server-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let sock = sock.to_str().unwrap();
    let missing_dir = dir.join("no/such/dir/s.sock");
    let plain_file = dir.join("plain");
    std::fs::write(&plain_file, b"x").unwrap();
    for (args, expect) in [
        (
            vec!["--socket", sock, "--pcap", "/tmp/x.pcap"],
            "--pcap needs a wire",
        ),
        (
            vec!["--socket", missing_dir.to_str().unwrap()],
            "cannot listen on",
        ),
        (
            vec!["--socket", plain_file.to_str().unwrap()],
            "exists already",
        ),
        (
            vec!["--socket", sock, "--wire", "unix:/nonexistent/a,/tmp/b"],
            "cannot open the wire unix:/nonexistent/a,/tmp/b",
        ),
        (
            vec!["--socket", sock, "--mac", "01:00:5e:00:00:01"],
            "multicast",
        ),
    ] {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
        assert!(
            lines[0].starts_with("rnic-device-server: ") && lines[0].contains(expect),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_fault_plan_or_api_socket_is_one_line() {
    let dir = std::env::temp_dir().join(format!("rnic-server-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nintervall = 4\n",
    )
    .unwrap();
    let not_a_socket = dir.join("api.file");
    std::fs::write(&not_a_socket, b"x").unwrap();
    for (args, expect) in [
        (
            vec!["--faults", plan.to_str().unwrap()],
            "line 4: field `intervall`: unknown field",
        ),
        (
            vec!["--faults", "/nonexistent/plan.toml"],
            "cannot read fault plan /nonexistent/plan.toml",
        ),
        (
            vec!["--api-socket", not_a_socket.to_str().unwrap()],
            "is in use (a file that is not a socket)",
        ),
        (vec!["--id", ""], "--id: RNIC id `` must be"),
    ] {
        let mut all = vec!["--socket", sock.to_str().unwrap()];
        all.extend(&args);
        let (code, stderr) = run(&all);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
        assert!(lines[0].starts_with("rnic-device-server: "), "{stderr}");
        assert!(lines[0].contains(expect), "{expect:?} not in {stderr}");
        assert!(!sock.exists(), "{args:?}: no socket left behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM (and SIGINT, SIGHUP) stop a waiting server in one line with 128 + the
/// signal, and both of its sockets are gone.
#[test]
fn a_stop_signal_removes_both_sockets() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    let dir = std::env::temp_dir().join(format!("rnic-server-cli-sig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (signal, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        (libc::SIGHUP, 129),
    ] {
        let (sock, api) = (dir.join("s.sock"), dir.join("api.sock"));
        let child = Command::new(env!("CARGO_BIN_EXE_rnic-device-server"))
            .arg("--socket")
            .arg(&sock)
            .arg("--api-socket")
            .arg(&api)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !(sock.exists() && api.exists()) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server never listened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mode = std::fs::metadata(&api).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "API socket mode {mode:o}");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr
                .lines()
                .last()
                .unwrap_or("")
                .starts_with("rnic-device-server: stopped by SIG"),
            "{stderr}"
        );
        assert!(!sock.exists() && !api.exists(), "both sockets removed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
