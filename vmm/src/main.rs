//! `rnic-vmm` binary: parses the command line, runs the VM, prints one summary
//! line on stderr and exits with the guest's status (see vmm/README.md).

use std::io::{IsTerminal, Write};

use rnic_vmm::cli::{self, Parsed};
use rnic_vmm::error::EXIT_MONITOR_ERROR;
use tracing_subscriber::EnvFilter;

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn real_main() -> i32 {
    let config = match cli::parse(std::env::args_os()) {
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(Parsed::Run(c)) => c,
        Err(e) => {
            eprintln!("rnic-vmm: error: {e}");
            return EXIT_MONITOR_ERROR;
        }
    };
    init_tracing(config.verbose);
    match rnic_vmm::launch(&config) {
        Ok(r) => {
            let _ = std::io::stdout().flush();
            eprintln!("{}", r.outcome.summary(r.elapsed));
            r.outcome.exit_code()
        }
        Err(e) => {
            eprintln!("rnic-vmm: error: {e}");
            EXIT_MONITOR_ERROR
        }
    }
}

fn main() {
    // A bug must still end in one line and a monitor-error status, never a
    // backtrace, and never leave the process waiting on a dead thread.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let _ = std::io::stdout().flush();
        eprintln!("rnic-vmm: error: internal bug{at}: {msg}; please report it");
        std::process::exit(EXIT_MONITOR_ERROR);
    }));
    std::process::exit(real_main());
}
