//! The monitor's control API: the routes of [`rnic_control::api`] (statistics, faults,
//! fault log, link, fatal, for the RNIC `?rnic=ID` names) plus the VM's own:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/vm` | state, outcome once there is one, the RNICs' settings |
//! | `PUT /v1/vm/shutdown` | ends the run (or the `--hold` after it) |
//!
//! RNICs served by another process (`socket=`) are not listed: their server has its own
//! API socket (`rnic-device-server --api-socket`).

use std::path::Path;
use std::sync::Arc;

use rnic_control::api::{self, ControlledRnic, Reply};
use rnic_device::Rnic;
use serde_json::{json, Value};

pub use rnic_control::api::{ApiError, ApiServer, MAX_BODY_BYTES, ROUTES};

use crate::rnic::AttachedRnic;
use crate::vm::{Outcome, Shutdown};

/// What the API acts on.
pub struct ApiState {
    /// The VM's RNICs.
    pub rnics: Vec<Arc<AttachedRnic>>,
    /// The run's outcome and stop protocol.
    pub shutdown: Arc<Shutdown>,
}

impl ControlledRnic for AttachedRnic {
    fn id(&self) -> &str {
        &self.settings.id
    }

    fn with_device(&self, f: &mut dyn FnMut(&mut Rnic)) -> Result<(), Reply> {
        f(&mut self.lock());
        Ok(())
    }
}

impl ApiState {
    fn vm_info(&self) -> Value {
        let (state, outcome) = match self.shutdown.outcome() {
            None => ("running", Value::Null),
            Some(o) => ("finished", outcome_json(&o)),
        };
        let rnics: Vec<Value> = self
            .rnics
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r.settings).unwrap_or(Value::Null);
                if let (Some(v), Value::Object(state)) = (v.as_object_mut(), api::device_state(r)) {
                    v.extend(state);
                }
                v
            })
            .collect();
        json!({ "state": state, "outcome": outcome, "rnics": rnics })
    }

    /// Answers one request. `url` may carry a query string.
    pub fn handle(&self, method: &str, url: &str, body: &[u8]) -> Reply {
        api::handle(&self.rnics, method, url, body, |method, path| {
            match (method, path) {
                ("GET", "/v1/vm") => Some(Reply::ok(self.vm_info())),
                ("PUT", "/v1/vm/shutdown") => {
                    self.shutdown.finish(Outcome::ShutdownRequested);
                    self.shutdown.release();
                    Some(Reply::no_content())
                }
                _ => None,
            }
        })
    }
}

/// Serves `state` on `path` (0600, removed when the server is dropped).
pub fn serve(path: &Path, state: ApiState) -> Result<ApiServer, ApiError> {
    ApiServer::start(
        path,
        Box::new(move |method, url, body| state.handle(method, url, body)),
    )
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::GuestExit(status) => json!({ "kind": "guest_exit", "status": status }),
        Outcome::Timeout(limit) => json!({ "kind": "timeout", "after_s": limit.as_secs() }),
        Outcome::GuestCrash(why) => json!({ "kind": "guest_crash", "reason": why }),
        Outcome::MonitorError(why) => json!({ "kind": "monitor_error", "reason": why }),
        Outcome::Signal(signal) => json!({ "kind": "signal", "signal": signal }),
        Outcome::ShutdownRequested => json!({ "kind": "shutdown_requested" }),
        Outcome::DeviceLost(why) => json!({ "kind": "device_lost", "reason": why }),
    }
}
