//! `rnic-device-server`: serves the emulated RNIC over vfio-user (see `docs/vfio-user.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rnic_device_server::{server, Options};
use tracing_subscriber::EnvFilter;

/// Log filter without `RUST_LOG`: our own messages from `info`; the `vfio_user`
/// crate's own error lines are left out (every refusal is logged once by the server,
/// with what to do).
const DEFAULT_LOG_FILTER: &str = "info,vfio_user=off";

/// The signals that stop the server cleanly: SIGINT, SIGTERM and SIGHUP.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own; a zeroed sigset_t is a
    // valid argument for sigemptyset to initialise.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the stop signals in this thread and every thread started after it (call
/// before any thread starts), so that only the waiter below takes them.
fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: pthread_sigmask reads the set we own; no old mask is asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// On a stop signal: removes `sockets`, says which signal stopped the server in one
/// line and exits with 128 + the signal number.
fn remove_sockets_on_stop_signal(sockets: Vec<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || {
            let set = stop_signals();
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait reads the set we own and writes one c_int we own.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                return;
            }
            for socket in &sockets {
                let _ = std::fs::remove_file(socket);
            }
            let name = match signal {
                libc::SIGINT => "SIGINT",
                libc::SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            eprintln!("rnic-device-server: stopped by {name}");
            std::process::exit(128 + signal);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for stop signals ({e}); a signal leaves the sockets behind");
    }
}

fn main() -> ExitCode {
    block_stop_signals();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let options = Options::parse();
    let result = server::listen(&options).and_then(|l| {
        let sockets = std::iter::once(l.path())
            .chain(l.api_path())
            .map(PathBuf::from)
            .collect();
        remove_sockets_on_stop_signal(sockets);
        eprintln!("rnic-device-server: listening on {}", l.path().display());
        if let Some(api) = l.api_path() {
            eprintln!("rnic-device-server: control API on {}", api.display());
        }
        l.serve_one()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rnic-device-server: {e}");
            ExitCode::FAILURE
        }
    }
}
