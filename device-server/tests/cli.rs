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
