//! `rnic-device-server`: serves the emulated RNIC over vfio-user (see `docs/vfio-user.md`).

use std::process::ExitCode;

use clap::Parser;
use rnic_device_server::{server, Options};
use tracing_subscriber::EnvFilter;

/// Log filter without `RUST_LOG`: our own messages from `info`; the `vfio_user`
/// crate's own error lines are left out (every refusal is logged once by the server,
/// with what to do).
const DEFAULT_LOG_FILTER: &str = "info,vfio_user=off";

fn main() -> ExitCode {
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
        eprintln!("rnic-device-server: listening on {}", l.path().display());
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
