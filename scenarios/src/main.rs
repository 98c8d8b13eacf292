//! `rnic-scenarios`: runs the fault scenario matrix (see the library docs) and writes
//! `summary.json` and `junit.xml` into the output folder. Exit status 0 when every scenario
//! that ran passed, 1 when one failed, 2 on bad input (one line on stderr).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rnic_scenarios::{judge, junit_xml, parse_matrix, plan_toml, Judgement, Outcome, RunRecord};
use rnic_vmm::client;
use serde_json::Value;

/// Runs fault scenarios against the guest and rnic.sys under rnic-vmm.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The monitor binary.
    #[arg(long, value_name = "PATH")]
    vmm: PathBuf,
    /// The guest kernel.
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// The driver image.
    #[arg(long, value_name = "PATH")]
    driver: PathBuf,
    /// The scenario matrix (TOML).
    #[arg(long, value_name = "PATH")]
    matrix: PathBuf,
    /// Folder for plans, serial logs, summary.json and junit.xml (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Run only the scenarios whose names contain this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// Per-scenario limit for the guest, in seconds (a scenario's own `timeout` wins).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

/// Errors that stop the whole run.
#[derive(Debug, thiserror::Error)]
enum RunnerError {
    #[error(transparent)]
    Matrix(#[from] rnic_scenarios::MatrixError),
    #[error("{what} {path}: {source} (check the path; scripts/faults.sh builds everything first)")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no scenario of {matrix} matches --only {only:?}")]
    NothingSelected { matrix: PathBuf, only: Vec<String> },
}

fn file_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError {
    let path = path.to_path_buf();
    move |source| RunnerError::File { what, path, source }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rnic-scenarios: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, RunnerError> {
    let text = fs::read_to_string(&args.matrix).map_err(file_error("matrix", &args.matrix))?;
    let matrix = parse_matrix(&args.matrix.display().to_string(), &text)?;
    for (what, path) in [
        ("monitor", &args.vmm),
        ("kernel", &args.kernel),
        ("driver", &args.driver),
    ] {
        fs::metadata(path).map_err(file_error(what, path))?;
    }
    let selected: Vec<_> = matrix
        .scenario
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    if selected.is_empty() {
        return Err(RunnerError::NothingSelected {
            matrix: args.matrix.clone(),
            only: args.only.clone(),
        });
    }
    fs::create_dir_all(&args.out).map_err(file_error("output folder", &args.out))?;
    println!(
        "{:<28} {:<14} {:<8} {:>7}  detail",
        "scenario", "expected", "result", "ms"
    );
    let mut outcomes = Vec::new();
    for s in selected {
        let (judgement, run) = match &s.requires {
            Some(reason) => (
                Judgement::Skipped {
                    reason: format!("needs {reason}"),
                },
                None,
            ),
            None => {
                let dir = args.out.join(&s.name);
                fs::create_dir_all(&dir).map_err(file_error("scenario folder", &dir))?;
                let record = run_one(args, s, &dir)?;
                (judge(s, &record), Some(record))
            }
        };
        let (result, detail) = match &judgement {
            Judgement::Pass { verdict } => ("pass", verdict.clone()),
            Judgement::Fail { reasons } => ("FAIL", reasons.join("; ")),
            Judgement::Skipped { reason } => ("skip", reason.clone()),
        };
        println!(
            "{:<28} {:<14} {:<8} {:>7}  {}",
            s.name,
            s.expect.to_string(),
            result,
            run.as_ref()
                .map_or(String::from("-"), |r| r.millis.to_string()),
            detail
        );
        outcomes.push(Outcome {
            name: s.name.clone(),
            about: s.about.clone(),
            expect: s.expect,
            judgement,
            run,
        });
    }
    let count = |f: fn(&Judgement) -> bool| outcomes.iter().filter(|o| f(&o.judgement)).count();
    let passed = count(|j| matches!(j, Judgement::Pass { .. }));
    let failed = count(|j| matches!(j, Judgement::Fail { .. }));
    let skipped = count(|j| matches!(j, Judgement::Skipped { .. }));
    let summary = serde_json::json!({
        "suite": "faults",
        "matrix": args.matrix.display().to_string(),
        "passed": passed, "failed": failed, "skipped": skipped,
        "scenarios": outcomes.iter().map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
            // The serial log is in the scenario's folder; keep the summary small.
            if let Some(run) = v.get_mut("run").and_then(Value::as_object_mut) {
                run.remove("serial");
            }
            v
        }).collect::<Vec<_>>(),
    });
    let summary_path = args.out.join("summary.json");
    fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(file_error("summary", &summary_path))?;
    let junit_path = args.out.join("junit.xml");
    fs::write(&junit_path, junit_xml("faults", &outcomes))
        .map_err(file_error("JUnit file", &junit_path))?;
    println!(
        "results: {} and {}",
        summary_path.display(),
        junit_path.display()
    );
    println!("faults: {passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}

/// Boots the guest once with the scenario's faults and collects what happened.
fn run_one(
    args: &Args,
    s: &rnic_scenarios::Scenario,
    dir: &Path,
) -> Result<RunRecord, RunnerError> {
    let plan = dir.join("plan.toml");
    fs::write(&plan, plan_toml(&s.fault)).map_err(file_error("plan", &plan))?;
    let serial = dir.join("serial.log");
    let socket = dir.join("api.sock");
    let _ = fs::remove_file(&socket);
    let stderr_path = dir.join("monitor.log");
    let stderr = fs::File::create(&stderr_path).map_err(file_error("monitor log", &stderr_path))?;
    let mut rnic = format!("faults={}", plan.display());
    // Short, unique socket path (Unix socket paths are limited to 107 bytes).
    let wire = (s.wire == Some(rnic_scenarios::WireKind::Loopback)).then(|| {
        std::env::temp_dir().join(format!(
            "rnic-scenario-{}-{}.sock",
            std::process::id(),
            s.name
        ))
    });
    if let Some(wire) = &wire {
        let _ = fs::remove_file(wire);
        rnic = format!("wire=unix:{0},{0},{rnic}", wire.display());
    }
    // With a loopback wire the guest is told to wait for its frames to come back.
    let cmdline = match wire {
        Some(_) => format!("{} guest.ethernet=loopback", s.cmdline),
        None => s.cmdline.clone(),
    };
    let timeout = s.timeout.unwrap_or(args.timeout);
    let started = Instant::now();
    let mut child = Command::new(&args.vmm)
        .arg("--kernel")
        .arg(&args.kernel)
        .arg("--module")
        .arg(&args.driver)
        .arg("--rnic")
        .arg(&rnic)
        .arg("--api-socket")
        .arg(&socket)
        .arg("--hold")
        .arg("--serial")
        .arg(&serial)
        .arg("--timeout")
        .arg(timeout.to_string())
        .arg("--cmdline")
        .arg(cmdline.trim())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(file_error("monitor", &args.vmm))?;
    // The guest's limit, plus room for start-up and the API exchange.
    let deadline = started + Duration::from_secs(timeout + 15);
    let hits_per_fault = wait_and_collect(&mut child, &socket, deadline, s.fault.len());
    let exit_status = finish(&mut child, &socket, deadline);
    if let Some(wire) = &wire {
        let _ = fs::remove_file(wire);
    }
    Ok(RunRecord {
        exit_status,
        serial: fs::read_to_string(&serial).unwrap_or_default(),
        hits_per_fault,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Waits until the VM has finished (the API says so) and reads the fault hit log: hits per
/// rule, in plan order (rules get ids 1, 2, ... in plan order on a fresh RNIC).
fn wait_and_collect(
    child: &mut Child,
    socket: &Path,
    deadline: Instant,
    faults: usize,
) -> Vec<u64> {
    loop {
        if Instant::now() >= deadline || matches!(child.try_wait(), Ok(Some(_))) {
            return vec![0; faults];
        }
        if let Ok(answer) = client::request(socket, "GET", "/v1/vm", None) {
            if answer.body["state"] == "finished" {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut per_rule: BTreeMap<u64, u64> = BTreeMap::new();
    if let Ok(answer) = client::request(socket, "GET", "/v1/faults/log", None) {
        for hit in answer.body["hits"].as_array().into_iter().flatten() {
            if let Some(rule) = hit["rule"].as_u64() {
                *per_rule.entry(rule).or_default() += 1;
            }
        }
    }
    (1..=faults as u64)
        .map(|id| per_rule.get(&id).copied().unwrap_or(0))
        .collect()
}

/// Ends the --hold and returns the monitor's exit status (None: it had to be killed).
fn finish(child: &mut Child, socket: &Path, deadline: Instant) -> Option<i32> {
    let _ = client::request(socket, "PUT", "/v1/vm/shutdown", None);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
