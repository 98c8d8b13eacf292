//! # rnic-scenarios: fault scenarios with machine-readable verdicts
//!
//! A scenario is a fault plan (faults of the device's catalog, `docs/device-spec.md`
//! Appendix A, written as in a `--rnic faults=PLAN` file), a guest command line, and the
//! behaviour expected of the driver under those faults. The runner (`src/main.rs`, called by
//! `scripts/faults.sh`) boots the guest under `rnic-vmm` once per scenario, reads the fault
//! hit log through the control API, and judges the run here: never a hang, never a crash,
//! never a contract violation, never a leak; the expected outcome; and the fault really hit
//! (a scenario whose fault never fired tested nothing and fails).
//!
//! Owns: the scenario matrix format (`scenarios/matrix.toml`), the judgement and the result
//! files (JUnit XML, JSON summary). Must not touch: the monitor, the device or the guest; it
//! only runs `rnic-vmm` and speaks its API.

use std::collections::BTreeSet;
use std::fmt;

use rnic_vmm::faultplan::FaultEntry;
use serde::{Deserialize, Serialize};

/// The scenario matrix file: `[[scenario]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// The scenarios, in the order they run.
    pub scenario: Vec<Scenario>,
}

/// What the driver is expected to do under a scenario's faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// The life cycle completes as without faults: verdict PASS.
    Completes,
    /// The driver fails the operation hit by the fault cleanly: `MiniportInitializeEx`
    /// returns a failure status, NDIS unloads the driver, nothing leaks, no contract
    /// violation (the guest's verdict names the failed initialization).
    FailsCleanly,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expect::Completes => "completes",
            Expect::FailsCleanly => "fails cleanly",
        })
    }
}

/// A scenario's wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireKind {
    /// Every frame the RNIC sends comes back to it through a Unix datagram socket.
    Loopback,
}

/// One scenario of the matrix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short unique name (letters, digits, `-`), used for files and the JUnit testcase.
    pub name: String,
    /// One sentence: what goes wrong.
    pub about: String,
    /// Expected behaviour of the driver.
    pub expect: Expect,
    /// The guest's command line (default empty: the full driver life cycle).
    #[serde(default)]
    pub cmdline: String,
    /// The RNIC's wire: absent = none; `"loopback"` = a Unix-socket wire that sends every
    /// frame back to the same RNIC (so the guest's sent frames come back through the wire
    /// and its `wire_tx`/`wire_rx` fault sites).
    #[serde(default)]
    pub wire: Option<WireKind>,
    /// Seconds the guest may take (default: the runner's `--timeout`). Scenarios that run
    /// the NDK consumer suite need minutes under the instruction emulator.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// When set, the scenario cannot run yet and is reported as skipped with this reason
    /// (e.g. its fault site is only reached by a data path the driver does not have yet).
    #[serde(default)]
    pub requires: Option<String>,
    /// Texts the guest's serial output must contain, in this order (each found after the
    /// previous one): what the expectation looks like in the log, for example the link-state
    /// indications a link flap must produce, or the reset that recovers a fatal device.
    #[serde(default)]
    pub serial_contains: Vec<String>,
    /// The faults, as in a fault plan's `[[fault]]` tables.
    pub fault: Vec<FaultEntry>,
}

/// A matrix that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The file is not valid TOML for the matrix format.
    #[error("scenario matrix {path}: {source}")]
    Syntax {
        /// The matrix file.
        path: String,
        /// The parser's error (it names the line and the field).
        #[source]
        source: toml::de::Error,
    },
    /// A scenario is wrong in itself.
    #[error("scenario matrix {path}: scenario {name:?}: {why}")]
    Scenario {
        /// The matrix file.
        path: String,
        /// The scenario's name.
        name: String,
        /// What is wrong and what to do.
        why: String,
    },
}

/// Parses and checks a matrix: unique well-formed names, at least one fault each, and every
/// fault accepted by the monitor's fault-plan rules.
pub fn parse_matrix(path: &str, text: &str) -> Result<Matrix, MatrixError> {
    let matrix: Matrix = toml::from_str(text).map_err(|source| MatrixError::Syntax {
        path: path.to_string(),
        source,
    })?;
    let mut names = BTreeSet::new();
    for s in &matrix.scenario {
        let bad = |why: String| MatrixError::Scenario {
            path: path.to_string(),
            name: s.name.clone(),
            why,
        };
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad("names use letters, digits and '-' only".into()));
        }
        if !names.insert(s.name.clone()) {
            return Err(bad("the name is used twice".into()));
        }
        if s.fault.is_empty() {
            return Err(bad(
                "a scenario needs at least one [[scenario.fault]]".into()
            ));
        }
        for (i, f) in s.fault.iter().enumerate() {
            f.to_planned()
                .map_err(|e| bad(format!("fault {}: {e}", i + 1)))?;
        }
    }
    Ok(matrix)
}

/// The fault plan file (`[[fault]]` tables) for a scenario's faults.
pub fn plan_toml(faults: &[FaultEntry]) -> String {
    #[derive(Serialize)]
    struct Plan<'a> {
        fault: &'a [FaultEntry],
    }
    toml::to_string(&Plan { fault: faults }).unwrap_or_default()
}

/// What one run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// rnic-vmm's exit status (None: killed by the runner).
    pub exit_status: Option<i32>,
    /// The guest's serial output.
    pub serial: String,
    /// Fault hits the device logged, per fault of the scenario (in order).
    pub hits_per_fault: Vec<u64>,
    /// Wall time of the run in milliseconds.
    pub millis: u64,
}

/// The judgement of one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Judgement {
    /// Everything expected happened.
    Pass {
        /// The guest's verdict line.
        verdict: String,
    },
    /// Something expected did not happen, or something forbidden did.
    Fail {
        /// Every reason, most important first.
        reasons: Vec<String>,
    },
    /// The scenario was not run.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// The guest's `verdict: ...` line, if it printed one.
pub fn verdict_line(serial: &str) -> Option<&str> {
    serial
        .lines()
        .rev()
        .find(|l| l.starts_with("verdict: "))
        .map(str::trim_end)
}

/// Live heap allocations the guest reported beyond its pre-load baseline at the end.
fn leaked_allocations(serial: &str) -> Option<u64> {
    let line = serial
        .lines()
        .rev()
        .find(|l| l.contains("ndis: summary:"))?;
    let after = line.split("heap: ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// The first of `texts` not found in `serial` after the previous one (None: all there, in
/// order).
fn first_missing_in_order<'t>(serial: &str, texts: &'t [String]) -> Option<&'t str> {
    let mut rest = serial;
    for t in texts {
        match rest.find(t.as_str()) {
            Some(at) => rest = &rest[at + t.len()..],
            None => return Some(t),
        }
    }
    None
}

/// Judges a run against its scenario.
pub fn judge(scenario: &Scenario, run: &RunRecord) -> Judgement {
    let mut reasons = Vec::new();
    let verdict = verdict_line(&run.serial).map(str::to_string);
    match run.exit_status {
        Some(124) => reasons.push("hang: the timeout expired before the guest's verdict".into()),
        Some(123) => {
            reasons.push("crash: the guest crashed (triple fault or emulation failure)".into())
        }
        Some(4) => reasons.push("crash: CPU exception or panic in the guest".into()),
        None => reasons.push("hang: the monitor had to be killed".into()),
        _ => {}
    }
    for line in run
        .serial
        .lines()
        .filter(|l| l.contains("contract violation"))
    {
        reasons.push(format!("verifier: {}", line.trim()));
    }
    match leaked_allocations(&run.serial) {
        Some(0) => {}
        Some(n) => reasons.push(format!(
            "leak: {n} heap allocations still live after unload"
        )),
        None if verdict.is_some() => {
            reasons.push("the guest printed no end-of-run summary (unload never finished)".into())
        }
        None => {}
    }
    match (scenario.expect, run.exit_status, verdict.as_deref()) {
        (Expect::Completes, Some(0), Some("verdict: PASS")) => {}
        (Expect::Completes, status, v) => reasons.push(format!(
            "expected the life cycle to complete (status 0, verdict PASS), got status {} and {}",
            status.map_or("none".into(), |s| s.to_string()),
            v.unwrap_or("no verdict")
        )),
        (Expect::FailsCleanly, Some(1), Some(v))
            if v.contains("MiniportInitializeEx returned") && !v.contains("SUCCESS") =>
        {
            if !run.serial.contains("ndis: miniport deregistered") {
                reasons.push("the failed driver was not unloaded and deregistered".into());
            }
        }
        (Expect::FailsCleanly, status, v) => reasons.push(format!(
            "expected MiniportInitializeEx to fail cleanly (status 1, verdict naming the failed \
             initialization), got status {} and {}",
            status.map_or("none".into(), |s| s.to_string()),
            v.unwrap_or("no verdict")
        )),
    }
    if let Some(missing) = first_missing_in_order(&run.serial, &scenario.serial_contains) {
        reasons.push(format!(
            "the serial log lacks {missing:?} (the scenario's serial_contains, in order)"
        ));
    }
    for (i, hits) in run.hits_per_fault.iter().enumerate() {
        if *hits == 0 {
            reasons.push(format!(
                "fault {} ({} {}) never fired: the scenario tested nothing",
                i + 1,
                scenario.fault[i].site,
                scenario.fault[i].action
            ));
        }
    }
    if reasons.is_empty() {
        Judgement::Pass {
            verdict: verdict.unwrap_or_default(),
        }
    } else {
        Judgement::Fail { reasons }
    }
}

/// One finished scenario, as written to the JSON summary and JUnit XML.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// What goes wrong.
    pub about: String,
    /// What was expected.
    pub expect: Expect,
    /// The judgement.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// The run, when there was one.
    pub run: Option<RunRecord>,
}

/// Escapes text for XML attribute values and character data.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The last `n` lines of a serial log, for failure messages.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// JUnit XML for a set of outcomes (one testsuite, one testcase per scenario; failures carry
/// the reasons and the end of the serial log).
pub fn junit_xml(suite: &str, outcomes: &[Outcome]) -> String {
    let failures = outcomes
        .iter()
        .filter(|o| matches!(o.judgement, Judgement::Fail { .. }))
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| matches!(o.judgement, Judgement::Skipped { .. }))
        .count();
    let total_secs: f64 = outcomes
        .iter()
        .filter_map(|o| o.run.as_ref())
        .map(|r| r.millis as f64 / 1000.0)
        .sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total_secs:.3}\">\n",
        xml_escape(suite),
        outcomes.len()
    ));
    for o in outcomes {
        let secs = o.run.as_ref().map_or(0.0, |r| r.millis as f64 / 1000.0);
        x.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{secs:.3}\">\n",
            xml_escape(suite),
            xml_escape(&o.name)
        ));
        match &o.judgement {
            Judgement::Pass { .. } => {}
            Judgement::Skipped { reason } => x.push_str(&format!(
                "    <skipped message=\"{}\"/>\n",
                xml_escape(reason)
            )),
            Judgement::Fail { reasons } => {
                let serial = o
                    .run
                    .as_ref()
                    .map(|r| tail_lines(&r.serial, 40))
                    .unwrap_or_default();
                x.push_str(&format!(
                    "    <failure message=\"{}\">{}\n\nserial (last lines):\n{}</failure>\n",
                    xml_escape(&reasons[0]),
                    xml_escape(&reasons.join("\n")),
                    xml_escape(&serial)
                ));
            }
        }
        x.push_str(&format!(
            "    <system-out>{}</system-out>\n  </testcase>\n",
            xml_escape(&format!("{} (expected: {})", o.about, o.expect))
        ));
    }
    x.push_str("</testsuite></testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(expect: Expect) -> Scenario {
        let m = parse_matrix(
            "test",
            &format!(
                "[[scenario]]\nname = \"s\"\nabout = \"a\"\nexpect = \"{}\"\n[[scenario.fault]]\nsite = \"msix\"\naction = \"drop\"\nonce_at = 1\n",
                match expect {
                    Expect::Completes => "completes",
                    Expect::FailsCleanly => "fails-cleanly",
                }
            ),
        )
        .unwrap();
        m.scenario[0].clone()
    }

    const PASS_LOG: &str = "ndis: miniport deregistered\nndis: summary: 2 ISR calls; heap: 0 allocations live beyond the pre-load baseline\nverdict: PASS\n";
    const CLEAN_FAIL_LOG: &str = "rnic: NOP timed out\nndis: MiniportInitializeEx returned NDIS_STATUS_FAILURE\nndis: miniport deregistered\nndis: summary: heap: 0 allocations live beyond the pre-load baseline\nverdict: FAIL (MiniportInitializeEx returned NDIS_STATUS_FAILURE)\n";

    fn run(status: Option<i32>, serial: &str, hits: u64) -> RunRecord {
        RunRecord {
            exit_status: status,
            serial: serial.into(),
            hits_per_fault: vec![hits],
            millis: 10,
        }
    }

    #[test]
    fn a_completed_run_with_its_fault_hit_passes() {
        let j = judge(&scenario(Expect::Completes), &run(Some(0), PASS_LOG, 1));
        assert_eq!(
            j,
            Judgement::Pass {
                verdict: "verdict: PASS".into()
            }
        );
    }

    #[test]
    fn serial_expectations_must_appear_in_order() {
        let mut s = scenario(Expect::Completes);
        s.serial_contains = vec!["link down".into(), "link up".into()];
        let log = format!("x: link down\ny: link up\n{PASS_LOG}");
        assert!(matches!(
            judge(&s, &run(Some(0), &log, 1)),
            Judgement::Pass { .. }
        ));
        // Out of order, or missing: the run fails and names the text.
        let swapped = format!("y: link up\nx: link down\n{PASS_LOG}");
        let Judgement::Fail { reasons } = judge(&s, &run(Some(0), &swapped, 1)) else {
            panic!("the link-up line came before the link-down line");
        };
        assert!(reasons[0].contains("\"link up\""), "{reasons:?}");
        let Judgement::Fail { reasons } = judge(&s, &run(Some(0), PASS_LOG, 1)) else {
            panic!("neither line is there");
        };
        assert!(reasons[0].contains("\"link down\""), "{reasons:?}");
    }

    #[test]
    fn a_fault_that_never_fired_fails_the_scenario() {
        let Judgement::Fail { reasons } =
            judge(&scenario(Expect::Completes), &run(Some(0), PASS_LOG, 0))
        else {
            panic!("a scenario whose fault never fired must fail");
        };
        assert!(reasons[0].contains("never fired"), "{reasons:?}");
    }

    #[test]
    fn hang_crash_leak_and_violation_always_fail() {
        let s = scenario(Expect::FailsCleanly);
        for (status, log, needle) in [
            (Some(124), "", "hang"),
            (None, "", "hang"),
            (Some(123), "", "crash"),
            (
                Some(1),
                &CLEAN_FAIL_LOG.replace("heap: 0 allocations", "heap: 3 allocations")[..],
                "leak: 3",
            ),
            (
                Some(1),
                &format!("ndis: contract violation: double free\n{CLEAN_FAIL_LOG}")[..],
                "verifier",
            ),
        ] {
            let Judgement::Fail { reasons } = judge(&s, &run(status, log, 1)) else {
                panic!("{needle}: must fail");
            };
            assert!(
                reasons.iter().any(|r| r.contains(needle)),
                "{needle}: {reasons:?}"
            );
        }
    }

    #[test]
    fn fails_cleanly_needs_the_failed_initialization_and_the_unload() {
        let s = scenario(Expect::FailsCleanly);
        assert!(matches!(
            judge(&s, &run(Some(1), CLEAN_FAIL_LOG, 1)),
            Judgement::Pass { .. }
        ));
        // A pass where a clean failure was expected is a failure of the scenario.
        assert!(matches!(
            judge(&s, &run(Some(0), PASS_LOG, 1)),
            Judgement::Fail { .. }
        ));
        // Failing without unloading is not clean.
        let no_unload = CLEAN_FAIL_LOG.replace("ndis: miniport deregistered\n", "");
        let Judgement::Fail { reasons } = judge(&s, &run(Some(1), &no_unload, 1)) else {
            panic!("must fail");
        };
        assert!(
            reasons.iter().any(|r| r.contains("not unloaded")),
            "{reasons:?}"
        );
    }

    #[test]
    fn matrix_errors_name_the_scenario_and_what_to_fix() {
        let dup = "[[scenario]]\nname = \"a\"\nabout = \"x\"\nexpect = \"completes\"\n[[scenario.fault]]\nsite = \"msix\"\naction = \"drop\"\n[[scenario]]\nname = \"a\"\nabout = \"y\"\nexpect = \"completes\"\n[[scenario.fault]]\nsite = \"msix\"\naction = \"drop\"\n";
        let e = parse_matrix("m.toml", dup).unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("twice"), "{e}");
        let bad_action = "[[scenario]]\nname = \"b\"\nabout = \"x\"\nexpect = \"completes\"\n[[scenario.fault]]\nsite = \"msix\"\naction = \"reorder\"\n";
        let e = parse_matrix("m.toml", bad_action).unwrap_err().to_string();
        assert!(e.contains("\"b\"") && e.contains("fault 1"), "{e}");
        let unknown_key = "[[scenario]]\nname = \"c\"\nabout = \"x\"\nexpect = \"completes\"\nbogus = 1\n[[scenario.fault]]\nsite = \"msix\"\naction = \"drop\"\n";
        let e = parse_matrix("m.toml", unknown_key).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn plan_round_trips_through_the_monitors_parser() {
        let s = scenario(Expect::Completes);
        let text = plan_toml(&s.fault);
        let planned = rnic_vmm::faultplan::parse_plan(&text).unwrap();
        assert_eq!(planned.len(), 1);
    }

    #[test]
    fn junit_escapes_and_counts() {
        let outcomes = vec![
            Outcome {
                name: "a<b".into(),
                about: "x & y".into(),
                expect: Expect::Completes,
                judgement: Judgement::Fail {
                    reasons: vec!["hang: \"q\"".into()],
                },
                run: Some(run(Some(124), "line\u{1}\n", 1)),
            },
            Outcome {
                name: "s".into(),
                about: "z".into(),
                expect: Expect::Completes,
                judgement: Judgement::Skipped {
                    reason: "later".into(),
                },
                run: None,
            },
        ];
        let x = junit_xml("faults", &outcomes);
        assert!(
            x.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("name=\"a&lt;b\""));
        assert!(x.contains("message=\"hang: &quot;q&quot;\""));
        assert!(x.contains("x &amp; y"));
        assert!(!x.contains('\u{1}'));
    }

    #[test]
    fn an_unknown_wire_is_refused() {
        let text = "[[scenario]]\nname = \"w\"\nabout = \"x\"\nexpect = \"completes\"\nwire = \"udp\"\n[[scenario.fault]]\nsite = \"wire_tx\"\naction = \"drop\"\n";
        let e = parse_matrix("m.toml", text).unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn the_shipped_matrix_gives_the_guest_plans_it_accepts() {
        let m = parse_matrix("scenarios/matrix.toml", include_str!("../matrix.toml")).unwrap();
        for s in &m.scenario {
            if let Err(e) = guest_core::plan::parse(&s.cmdline) {
                panic!("scenario {}: the guest refuses its plan: {e}", s.name);
            }
        }
        let cqe = m.scenario.iter().find(|s| s.name == "cqe-error").unwrap();
        assert!(cqe.requires.is_none(), "the NDK data path runs cqe-error");
        assert!(
            cqe.timeout.is_some_and(|t| t > 30),
            "the NDK suite needs minutes"
        );
    }

    #[test]
    fn the_shipped_matrix_covers_every_action_of_the_catalog() {
        let text = include_str!("../matrix.toml");
        let m = parse_matrix("scenarios/matrix.toml", text).unwrap();
        let covered: BTreeSet<(String, String)> = m
            .scenario
            .iter()
            .flat_map(|s| s.fault.iter().map(|f| (f.site.clone(), f.action.clone())))
            .collect();
        // The fault catalog of docs/device-spec.md Appendix A.1, written out independently.
        let catalog = [
            ("dma_read", &["dma_error", "corrupt", "fatal"][..]),
            ("dma_write", &["dma_error", "corrupt", "fatal"]),
            ("msix", &["drop", "delay", "duplicate", "spurious", "fatal"]),
            (
                "admin_command",
                &["never_complete", "fail_status", "delay", "fatal"],
            ),
            ("cqe", &["cqe_error", "fatal"]),
            ("link", &["link_down", "link_up", "fatal"]),
            (
                "wire_tx",
                &["drop", "delay", "duplicate", "reorder", "corrupt", "fatal"],
            ),
            (
                "wire_rx",
                &["drop", "delay", "duplicate", "reorder", "corrupt", "fatal"],
            ),
            ("device", &["fatal"]),
        ];
        for (site, actions) in catalog {
            for action in actions {
                assert!(
                    covered.contains(&(site.to_string(), action.to_string())),
                    "no scenario covers {site} {action}"
                );
            }
        }
    }
}
