//! Fault plans: a TOML file of faults (one `[[fault]]` table each) or the same as JSON
//! (`{"fault": [{...}, ...]}`, for a file whose name ends in `.json`), loaded at start
//! (`rnic-vmm --rnic faults=PLANFILE`, `rnic-device-server --faults PLANFILE`); the
//! control API's `POST /v1/faults` takes one entry as a JSON object with the same keys.
//!
//! Each entry becomes one rule of the device model's fault engine
//! (`rnic_device::fault`, `docs/device-spec.md` Appendix A). Trigger words follow
//! the Linux kernel's fault-injection attributes (`probability` in percent,
//! `interval`, `times`) and QEMU blkdebug's `once`:
//!
//! ```toml
//! [[fault]]
//! site = "msix"          # dma_read dma_write msix admin_command cqe link wire_tx wire_rx device
//! action = "drop"        # what the device does instead (allowed actions depend on the site)
//! vector = 1             # scope: queue, vector, mr, opcode (each only where the site sets it)
//! interval = 4           # every 4th matching event; or once_at = N; or probability = P, seed = S
//! times = 2              # at most 2 hits (absent: no limit)
//! start_us = 0           # device-time window [start_us, end_us)
//! end_us = 2000000
//! ```
//!
//! Action parameters: `corrupt` takes `mask` (non-zero) and `offset` (default 0);
//! `delay` takes `delay_us`; `fail_status` and `cqe_error` take `status`.
//!
//! A bad plan is one line naming the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rnic_device::fault::{FaultAction, FaultError, FaultRule, FaultScope, FaultSite, Trigger};
use serde::{Deserialize, Serialize};

/// One fault as written in a plan (or posted to the API).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// Fault site name (`msix`, `dma_read`, ...).
    pub site: String,
    /// Action kind (`drop`, `corrupt`, ...).
    pub action: String,
    /// `corrupt`: byte offset (modulo the length) to corrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// `corrupt`: XOR mask (non-zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<u8>,
    /// `delay`: microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    /// `fail_status` (16 bits) / `cqe_error` (8 bits): the status reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Scope: queue number (the device's shared numbering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// Scope: MSI-X vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<u16>,
    /// Scope: memory region index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr: Option<u32>,
    /// Scope: admin opcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<u8>,
    /// Trigger: once, at the Nth matching event (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once_at: Option<u64>,
    /// Trigger: every Nth matching event (Linux `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Trigger: each matching event with this probability in percent, 0..=100
    /// (Linux `probability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Seed of the probability trigger's PRNG (default 0): the same seed gives the
    /// same hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Most hits (Linux `times`); absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Window start, device time in microseconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_us: Option<u64>,
    /// Window end (exclusive), device time in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<u64>,
}

/// A fault ready for the engine: the rule and the monitor-side hit limit.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedFault {
    /// The engine's rule.
    pub rule: FaultRule,
    /// Most hits (`times`), also set as the rule's `max_hits`: the device's fault
    /// engine stops the rule at exactly this many hits.
    pub times: Option<u64>,
}

/// Why an entry or a plan was refused: which line (for plans), which field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{}{}{}",
    line.map(|l| format!("line {l}: ")).unwrap_or_default(),
    field.as_ref().map(|f| format!("field `{}`: ", crate::one_line(f))).unwrap_or_default(),
    crate::one_line(reason)
)]
pub struct PlanError {
    /// 1-based line in the plan file (`None` for an API request).
    pub line: Option<usize>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong and what to write instead.
    pub reason: String,
}

fn field_error(field: &str, reason: impl Into<String>) -> PlanError {
    PlanError {
        line: None,
        field: Some(field.to_string()),
        reason: reason.into(),
    }
}

fn site_by_name(name: &str) -> Option<FaultSite> {
    FaultSite::ALL.into_iter().find(|s| s.name() == name)
}

impl FaultEntry {
    /// Checks the entry and turns it into an engine rule.
    pub fn to_planned(&self) -> Result<PlannedFault, PlanError> {
        let site = site_by_name(&self.site).ok_or_else(|| {
            let names: Vec<&str> = FaultSite::ALL.iter().map(|s| s.name()).collect();
            field_error(
                "site",
                format!("unknown site `{}`; sites: {}", self.site, names.join(", ")),
            )
        })?;
        let action = self.action()?;
        let triggers = [
            ("once_at", self.once_at.is_some()),
            ("interval", self.interval.is_some()),
            ("probability", self.probability.is_some()),
        ];
        let given: Vec<&str> = triggers.iter().filter(|t| t.1).map(|t| t.0).collect();
        if given.len() > 1 {
            return Err(field_error(
                given[1],
                format!(
                    "give one trigger, not both `{}` and `{}`",
                    given[0], given[1]
                ),
            ));
        }
        if self.seed.is_some() && self.probability.is_none() {
            return Err(field_error("seed", "a seed needs `probability`"));
        }
        let trigger = if let Some(nth) = self.once_at {
            Trigger::Once { nth }
        } else if let Some(n) = self.interval {
            Trigger::Every { n }
        } else if let Some(percent) = self.probability {
            if !(0.0..=100.0).contains(&percent) {
                return Err(field_error(
                    "probability",
                    format!("{percent} is not a percentage in 0..=100"),
                ));
            }
            Trigger::Probability {
                p: percent / 100.0,
                seed: self.seed.unwrap_or(0),
            }
        } else {
            Trigger::Always
        };
        if self.times == Some(0) {
            return Err(field_error(
                "times",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        let mut rule = FaultRule::new(site, action)
            .with_scope(FaultScope {
                queue: self.queue,
                vector: self.vector,
                mr: self.mr,
                opcode: self.opcode,
            })
            .with_trigger(trigger);
        rule.max_hits = self.times;
        match (self.start_us, self.end_us) {
            (None, None) => {}
            (start, Some(end)) => {
                rule = rule.with_window(
                    Duration::from_micros(start.unwrap_or(0)),
                    Duration::from_micros(end),
                )
            }
            (Some(_), None) => {
                return Err(field_error(
                    "end_us",
                    "a window with `start_us` needs `end_us`",
                ))
            }
        }
        rule.validate().map_err(|e| {
            let field = match &e {
                FaultError::ActionNotAllowed { .. } => "action",
                FaultError::ScopeNeverSet { field, .. } => field,
                FaultError::ZeroCount { field: "once.nth" } => "once_at",
                FaultError::ZeroCount { .. } => "interval",
                FaultError::BadProbability { .. } => "probability",
                FaultError::EmptyWindow { .. } => "end_us",
                _ => "site",
            };
            field_error(field, e.to_string())
        })?;
        Ok(PlannedFault {
            rule,
            times: self.times,
        })
    }

    fn action(&self) -> Result<FaultAction, PlanError> {
        let takes: &[&str] = match self.action.as_str() {
            "corrupt" => &["offset", "mask"],
            "delay" => &["delay_us"],
            "fail_status" | "cqe_error" => &["status"],
            _ => &[],
        };
        let given = [
            ("offset", self.offset.is_some()),
            ("mask", self.mask.is_some()),
            ("delay_us", self.delay_us.is_some()),
            ("status", self.status.is_some()),
        ];
        if let Some((extra, _)) = given.iter().find(|(f, set)| *set && !takes.contains(f)) {
            return Err(field_error(
                extra,
                format!("action `{}` takes no `{extra}`", self.action),
            ));
        }
        let need =
            |field: &str| field_error(field, format!("action `{}` needs `{field}`", self.action));
        Ok(match self.action.as_str() {
            "dma_error" => FaultAction::DmaError,
            "corrupt" => {
                let mask = self.mask.ok_or_else(|| need("mask"))?;
                if mask == 0 {
                    return Err(field_error(
                        "mask",
                        "a zero mask changes nothing; give 1..=255",
                    ));
                }
                FaultAction::Corrupt {
                    offset: self.offset.unwrap_or(0),
                    mask,
                }
            }
            "drop" => FaultAction::Drop,
            "delay" => FaultAction::Delay {
                micros: self.delay_us.ok_or_else(|| need("delay_us"))?,
            },
            "duplicate" => FaultAction::Duplicate,
            "spurious" => FaultAction::Spurious,
            "reorder" => FaultAction::Reorder,
            "never_complete" => FaultAction::NeverComplete,
            "fail_status" => FaultAction::FailStatus {
                status: self.status.ok_or_else(|| need("status"))?,
            },
            "cqe_error" => {
                let status = self.status.ok_or_else(|| need("status"))?;
                FaultAction::CqeError {
                    status: u8::try_from(status)
                        .map_err(|_| field_error("status", "a CQE status is 0..=255"))?,
                }
            }
            "link_down" => FaultAction::LinkDown,
            "link_up" => FaultAction::LinkUp,
            "fatal" => FaultAction::Fatal,
            other => {
                return Err(field_error(
                    "action",
                    format!(
                        "unknown action `{other}`; actions: dma_error, corrupt, drop, delay, \
                         duplicate, spurious, reorder, never_complete, fail_status, cqe_error, \
                         link_down, link_up, fatal"
                    ),
                ))
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    fault: Vec<toml::Spanned<FaultEntry>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a TOML fault plan. Errors name the 1-based line and the field.
pub fn parse_plan(text: &str) -> Result<Vec<PlannedFault>, PlanError> {
    let plan: PlanFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(str::to_string);
        PlanError {
            line: e.span().map(|s| line_of(text, s.start)),
            field,
            reason: message,
        }
    })?;
    plan.fault
        .iter()
        .map(|entry| {
            entry.get_ref().to_planned().map_err(|mut e| {
                e.line = Some(line_of(text, entry.span().start));
                e
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPlanFile {
    #[serde(default)]
    fault: Vec<FaultEntry>,
}

/// Parses a JSON fault plan, `{"fault": [{...}, ...]}` with the keys of the TOML
/// tables. A syntax or schema error names its line; an entry that the engine would
/// refuse names its index in `fault` and its field (`fault[1].site`).
pub fn parse_json_plan(text: &str) -> Result<Vec<PlannedFault>, PlanError> {
    let plan: JsonPlanFile = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let reason = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        let field = reason
            .split('`')
            .nth(1)
            .filter(|_| reason.contains("field"))
            .map(str::to_string);
        PlanError {
            line: (e.line() > 0).then_some(e.line()),
            field,
            reason,
        }
    })?;
    plan.fault
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            entry.to_planned().map_err(|mut e| {
                e.field = Some(format!(
                    "fault[{index}].{}",
                    e.field.as_deref().unwrap_or("")
                ));
                e
            })
        })
        .collect()
}

/// Why a plan file could not be used; the message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// The file cannot be read.
    #[error("cannot read fault plan {path}: {reason}")]
    Read {
        /// The plan file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// The file is not a valid plan.
    #[error("fault plan {path}: {source}")]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// Which line and field, and why.
        #[source]
        source: PlanError,
    },
}

/// Reads and checks a plan file: JSON ([`parse_json_plan`]) when its name ends in
/// `.json`, TOML ([`parse_plan`]) otherwise.
pub fn load_plan(path: &Path) -> Result<Vec<PlannedFault>, PlanFileError> {
    let read_error = |reason: String| PlanFileError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_error(format!("{e}; check the path")))?;
    if !meta.is_file() {
        return Err(read_error(
            "it is not a regular file (a directory, FIFO or device); pass a file".into(),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| read_error(format!("{e}; check its permissions")))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let text = String::from_utf8(bytes).map_err(|_| {
        read_error("it is not UTF-8 text; write the plan as TOML (or JSON, named *.json)".into())
    })?;
    let parsed = if json {
        parse_json_plan(&text)
    } else {
        parse_plan(&text)
    };
    parsed.map_err(|source| PlanFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_stay_one_line_when_the_plan_quotes_a_newline() {
        // Found by the `config` fuzz target: a quoted TOML key with a newline came
        // back inside the "line N: field `...`" error.
        let e = parse_plan("[[fault]]\n\"a\\nb\" = 1\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("line 2: "), "{e}");
    }

    #[test]
    fn json_plans_take_the_same_keys_and_name_the_entry_and_field() {
        let plan = parse_json_plan(
            r#"{"fault": [
                {"site": "msix", "action": "drop", "vector": 1, "interval": 4, "times": 2},
                {"site": "link", "action": "link_down", "once_at": 3}
            ]}"#,
        )
        .unwrap();
        let toml = parse_plan(
            "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nvector = 1\ninterval = 4\ntimes = 2\n\
             [[fault]]\nsite = \"link\"\naction = \"link_down\"\nonce_at = 3\n",
        )
        .unwrap();
        assert_eq!(plan, toml);
        assert!(parse_json_plan("{}").unwrap().is_empty());
        let e = parse_json_plan(
            "{\"fault\": [\n{\"site\": \"msix\", \"action\": \"drop\", \"colour\": 1}]}",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.field.as_deref(), Some("colour"), "{e}");
        let e = parse_json_plan(
            r#"{"fault": [{"site": "msix", "action": "drop"}, {"site": "x", "action": "drop"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("field `fault[1].site`: unknown site `x`"),
            "{e}"
        );
        assert!(parse_json_plan("{\"fault\": [").unwrap_err().line.is_some());
    }

    #[test]
    fn plan_files_are_read_by_their_extension_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("rnic-control-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("p.toml");
        std::fs::write(&toml, "[[fault]]\nsite = \"link\"\naction = \"link_up\"\n").unwrap();
        let json = dir.join("p.json");
        std::fs::write(
            &json,
            r#"{"fault": [{"site": "link", "action": "link_up"}]}"#,
        )
        .unwrap();
        assert_eq!(load_plan(&toml).unwrap(), load_plan(&json).unwrap());
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"fault": [{"site": "link"}]}"#).unwrap();
        let e = load_plan(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "fault plan {}: line 1: field `action`",
                bad.display()
            )),
            "{e}"
        );
        let e = load_plan(&dir.join("absent.toml")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read fault plan "), "{e}");
        let e = load_plan(&dir).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let binary = dir.join("b.toml");
        std::fs::write(&binary, [0xFFu8, 0xFE]).unwrap();
        assert!(load_plan(&binary)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_plan_maps_every_trigger_and_scope_onto_engine_rules() {
        let plan = parse_plan(
            r#"
# drop every 4th interrupt of vector 1, twice at most
[[fault]]
site = "msix"
action = "drop"
vector = 1
interval = 4
times = 2

[[fault]]
site = "admin_command"
action = "fail_status"
status = 0x15
opcode = 0x11
once_at = 3

[[fault]]
site = "wire_tx"
action = "corrupt"
mask = 0x80
offset = 14
probability = 25.0
seed = 7
start_us = 1000
end_us = 5000

[[fault]]
site = "msix"
action = "delay"
delay_us = 300
"#,
        )
        .unwrap();
        assert_eq!(plan.len(), 4);
        let msix = &plan[0];
        assert_eq!(msix.rule.site, FaultSite::Msix);
        assert_eq!(msix.rule.action, FaultAction::Drop);
        assert_eq!(msix.rule.scope.vector, Some(1));
        assert_eq!(msix.rule.trigger, Trigger::Every { n: 4 });
        assert_eq!(msix.times, Some(2));
        let admin = &plan[1].rule;
        assert_eq!(admin.action, FaultAction::FailStatus { status: 0x15 });
        assert_eq!(admin.scope.opcode, Some(0x11));
        assert_eq!(admin.trigger, Trigger::Once { nth: 3 });
        let wire = &plan[2].rule;
        assert_eq!(
            wire.action,
            FaultAction::Corrupt {
                offset: 14,
                mask: 0x80
            }
        );
        assert_eq!(wire.trigger, Trigger::Probability { p: 0.25, seed: 7 });
        let window = wire.window.unwrap();
        assert_eq!(
            (window.from, window.until),
            (Duration::from_micros(1000), Duration::from_micros(5000))
        );
        assert_eq!(plan[3].rule.action, FaultAction::Delay { micros: 300 });
        assert_eq!(plan[3].rule.trigger, Trigger::Always);
        assert_eq!(plan[3].times, None);
        assert!(parse_plan("").unwrap().is_empty());
    }

    fn error_of(text: &str) -> PlanError {
        parse_plan(text).unwrap_err()
    }

    #[test]
    fn bad_plans_name_the_line_and_the_field_in_one_line() {
        let cases: &[(&str, usize, Option<&str>, &str)] = &[
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\ncolour = 1\n",
                4,
                Some("colour"),
                "unknown field",
            ),
            (
                "[[fault]]\nsite = \"msix\"\n",
                1,
                Some("action"),
                "missing field",
            ),
            (
                "\n\n[[fault]]\nsite = \"dma_read\"\naction = \"drop\"\n",
                3,
                Some("action"),
                "cannot be used at site `dma_read`",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nqueue = 2\n",
                1,
                Some("queue"),
                "never set",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\ninterval = 0\n",
                1,
                Some("interval"),
                "at least 1",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\ninterval = 2\nonce_at = 1\n",
                1,
                Some("interval"),
                "one trigger",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nprobability = 150.0\n",
                1,
                Some("probability"),
                "percentage",
            ),
            (
                "[[fault]]\nsite = \"wire_rx\"\naction = \"corrupt\"\n",
                1,
                Some("mask"),
                "needs `mask`",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nstatus = 3\n",
                1,
                Some("status"),
                "takes no `status`",
            ),
            (
                "[[fault]]\nsite = \"nowhere\"\naction = \"drop\"\n",
                1,
                Some("site"),
                "unknown site",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nstart_us = 9\nend_us = 9\n",
                1,
                Some("end_us"),
                "empty",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\ntimes = 0\n",
                1,
                Some("times"),
                "at least 1",
            ),
            (
                "[[fault]]\nsite = \"msix\"\naction = \"drop\"\nvector = -1\n",
                4,
                None,
                "",
            ),
            ("[[fault]\n", 1, None, ""),
        ];
        for (text, line, field, says) in cases {
            let e = error_of(text);
            assert_eq!(e.line, Some(*line), "{text}: {e}");
            if let Some(field) = field {
                assert_eq!(e.field.as_deref(), Some(*field), "{text}: {e}");
            }
            let message = e.to_string();
            assert!(message.contains(says), "{text}: {message}");
            assert!(message.starts_with(&format!("line {line}: ")), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn an_api_entry_is_the_same_keys_in_json() {
        let entry: FaultEntry =
            serde_json::from_str(r#"{"site": "link", "action": "link_down", "once_at": 1}"#)
                .unwrap();
        let planned = entry.to_planned().unwrap();
        assert_eq!(planned.rule.action, FaultAction::LinkDown);
        let e = entry_error(r#"{"site": "link", "action": "drop"}"#);
        assert_eq!(e.line, None);
        assert!(e.to_string().starts_with("field `action`: "), "{e}");
    }

    fn entry_error(json: &str) -> PlanError {
        serde_json::from_str::<FaultEntry>(json)
            .unwrap()
            .to_planned()
            .unwrap_err()
    }
}
