//! `rnic-sys-check PATH`: checks a built rnic.sys (see the artifact-check crate) and prints the
//! report, or one line saying what is wrong (exit status 1).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Check that a driver image is a PE32+ x86-64 native image whose entry point is DriverEntry
/// and which imports only from kernel modules.
#[derive(Parser)]
#[command(name = "rnic-sys-check", version)]
struct Args {
    /// Path to the driver image (e.g. target/images/rnic.sys).
    path: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bytes = match std::fs::read(&args.path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "rnic-sys-check: cannot read {}: {e} (run scripts/build.sh first)",
                args.path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match artifact_check::check_driver_image(&bytes) {
        Ok(report) => {
            print!("{}: {report}", args.path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rnic-sys-check: {}: {e}", args.path.display());
            ExitCode::FAILURE
        }
    }
}
