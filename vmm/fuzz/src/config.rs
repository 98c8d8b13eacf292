//! What users type, against the parsers that read it: shared by the cargo-fuzz
//! target (`fuzz_targets/config.rs`) and the corpus replay test
//! (`vmm/tests/fuzz_corpus.rs`, which includes this file with `#[path]`).
//!
//! The first input byte picks the parser, the rest is its text:
//!
//! | byte % 5 | parser |
//! | --- | --- |
//! | 0 | a TOML fault plan (`rnic_control::faultplan::parse_plan`) |
//! | 1 | a JSON fault plan (`parse_json_plan`) |
//! | 2 | `--rnic` values, one per line, then their cross-checks (`options::resolve`) |
//! | 3 | a `--config` file (JSON `ConfigFile`, its error as the monitor prints it), then `options::resolve` |
//! | 4 | a whole command line, arguments separated by NUL bytes (`cli::parse`) |
//!
//! Checked: no panic; every refusal is one non-empty line (users read it in a
//! terminal, and fault plans name the line and field); every fault a plan parser
//! accepts is a rule the device's fault engine accepts too.

use rnic_device::fault::FaultEngine;
use rnic_vmm::error::VmmError;
use rnic_vmm::options::{self, ConfigFile};

/// Panics unless `e`'s message is one non-empty line.
fn one_line(e: &dyn std::fmt::Display) {
    let msg = e.to_string();
    assert!(
        !msg.trim().is_empty() && !msg.contains('\n'),
        "an error users read must be one line: {msg:?}"
    );
}

/// Checks a plan parser's answer.
fn plan(
    result: Result<Vec<rnic_control::faultplan::PlannedFault>, rnic_control::faultplan::PlanError>,
) {
    match result {
        Ok(faults) => {
            let mut engine = FaultEngine::new();
            for f in faults {
                if let Err(e) = engine.add_rule(f.rule.clone()) {
                    panic!("the plan parser accepted {f:?}, the fault engine refuses it: {e}");
                }
            }
        }
        Err(e) => one_line(&e),
    }
}

/// The command-line option that `cli::parse` reads a file for: the harness leaves it
/// out so that a run depends on its input only (the others are parsed, not opened).
const TOUCHES_FILES: [&str; 1] = ["--config"];

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => plan(rnic_control::faultplan::parse_plan(&text)),
        1 => plan(rnic_control::faultplan::parse_json_plan(&text)),
        2 => {
            let mut wanted = Vec::new();
            for line in text.lines().take(64) {
                match options::parse_rnic_option(line) {
                    Ok(o) => wanted.push(o),
                    Err(e) => return one_line(&e),
                }
            }
            if let Err(e) = options::resolve(&wanted) {
                one_line(&e);
            }
        }
        3 => match serde_json::from_slice::<ConfigFile>(rest) {
            Ok(file) => {
                if let Err(e) = options::resolve(&file.rnics) {
                    one_line(&e);
                }
            }
            // What the monitor prints for it.
            Err(source) => one_line(&VmmError::ConfigFile {
                path: "config.json".into(),
                source,
            }),
        },
        _ => {
            let args: Vec<String> = std::iter::once("rnic-vmm".to_string())
                .chain(text.split('\0').take(64).map(str::to_string))
                .collect();
            if args
                .iter()
                .any(|a| TOUCHES_FILES.iter().any(|f| a.starts_with(f)))
            {
                return;
            }
            if let Err(e) = rnic_vmm::cli::parse(args) {
                one_line(&e);
            }
        }
    }
}
