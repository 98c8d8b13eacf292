//! `rnicctl`: the command line of the control API (docs/api/openapi.yaml) that rnic-vmm
//! and rnic-device-server serve.
//! Prints the answer's JSON on stdout; an error answer is one `rnicctl: error:`
//! line on stderr and exit status 1; an unreachable socket exits with 2.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rnic_vmm::client::{self, Answer};
use serde_json::{json, Map, Value};

/// Talk to a running rnic-vmm or rnic-device-server through its --api-socket.
#[derive(Parser, Debug)]
#[command(
    name = "rnicctl",
    version,
    after_help = "Examples:\n  rnicctl --socket /tmp/vm.sock stats\n  \
                  rnicctl --socket /tmp/vm.sock faults add site=msix action=drop interval=4 times=2\n  \
                  rnicctl --socket /tmp/vm.sock --rnic rnic1 link down"
)]
struct Cli {
    /// The --api-socket path of rnic-vmm or rnic-device-server.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Which RNIC (its id); may be left out when the VM has one.
    #[arg(long, value_name = "ID")]
    rnic: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The VM's state, outcome and RNICs.
    Vm,
    /// Every counter of the RNIC.
    Stats,
    /// Fault rules.
    #[command(subcommand)]
    Faults(FaultCommand),
    /// Plug (up) or unplug (down) the RNIC's cable.
    Link {
        /// up or down.
        #[arg(value_parser = ["up", "down"])]
        state: String,
    },
    /// Put the RNIC in the fatal state.
    Fatal,
    /// End the run (or the --hold after it).
    Shutdown,
}

#[derive(Subcommand, Debug)]
enum FaultCommand {
    /// Add a fault: the keys of a fault-plan entry, e.g. site=msix action=drop interval=4.
    Add {
        /// KEY=VALUE settings (numbers are numbers; see vmm/README.md for the keys).
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List the fault rules.
    List,
    /// Remove fault rule ID.
    Rm {
        /// The rule's id (from `faults add` or `faults list`).
        id: u32,
    },
    /// The hit log: what each fault hit and when.
    Log,
}

fn fault_entry(settings: &[String]) -> Result<Value, String> {
    let mut entry = Map::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("`{setting}` is not KEY=VALUE"))?;
        let value = match value.parse::<f64>() {
            Ok(_) => serde_json::from_str(value).unwrap_or_else(|_| json!(value)),
            Err(_) => json!(value),
        };
        if entry.insert(key.to_string(), value).is_some() {
            return Err(format!("key `{key}` is given twice"));
        }
    }
    Ok(Value::Object(entry))
}

fn with_rnic(path: &str, rnic: &Option<String>) -> String {
    match rnic {
        Some(id) => format!("{path}?rnic={id}"),
        None => path.to_string(),
    }
}

fn run(cli: &Cli) -> Result<Answer, (i32, String)> {
    let at = |path: &str| with_rnic(path, &cli.rnic);
    let (method, path, body) = match &cli.command {
        Command::Vm => ("GET", "/v1/vm".to_string(), None),
        Command::Stats => ("GET", at("/v1/stats"), None),
        Command::Faults(FaultCommand::Add { settings }) => (
            "POST",
            at("/v1/faults"),
            Some(fault_entry(settings).map_err(|e| (1, e))?),
        ),
        Command::Faults(FaultCommand::List) => ("GET", at("/v1/faults"), None),
        Command::Faults(FaultCommand::Rm { id }) => {
            ("DELETE", at(&format!("/v1/faults/{id}")), None)
        }
        Command::Faults(FaultCommand::Log) => ("GET", at("/v1/faults/log"), None),
        Command::Link { state } => ("PUT", at("/v1/link"), Some(json!({ "up": state == "up" }))),
        Command::Fatal => ("PUT", at("/v1/fatal"), None),
        Command::Shutdown => ("PUT", "/v1/vm/shutdown".to_string(), None),
    };
    let answer = client::request(&cli.socket, method, &path, body.as_ref())
        .map_err(|e| (2, e.to_string()))?;
    if answer.status >= 400 {
        let why = answer.body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| answer.body.to_string());
        return Err((1, format!("{method} {path}: HTTP {}: {why}", answer.status)));
    }
    Ok(answer)
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(&cli) {
        Ok(answer) => {
            if !answer.body.is_null() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer.body).unwrap_or_default()
                );
            }
        }
        Err((code, message)) => {
            eprintln!("rnicctl: error: {message}");
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_settings_become_a_json_entry() {
        let entry = fault_entry(&[
            "site=msix".into(),
            "action=drop".into(),
            "interval=4".into(),
            "probability=12.5".into(),
        ])
        .unwrap();
        assert_eq!(
            entry,
            json!({"site": "msix", "action": "drop", "interval": 4, "probability": 12.5})
        );
        assert!(fault_entry(&["site".into()]).is_err());
        assert!(fault_entry(&["a=1".into(), "a=2".into()]).is_err());
    }

    #[test]
    fn the_rnic_goes_in_the_query() {
        assert_eq!(
            with_rnic("/v1/stats", &Some("r1".into())),
            "/v1/stats?rnic=r1"
        );
        assert_eq!(with_rnic("/v1/stats", &None), "/v1/stats");
    }
}
