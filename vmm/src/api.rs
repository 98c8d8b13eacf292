//! The control API: HTTP/JSON over a Unix socket (tiny_http), described by
//! `docs/api/openapi.yaml`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/vm` | state, outcome once there is one, the RNICs' settings |
//! | `GET /v1/stats` | every counter of an RNIC (device, port, queues, QPs, CQs, faults) |
//! | `GET /v1/faults` | an RNIC's fault rules |
//! | `POST /v1/faults` | add a fault (a fault-plan entry as JSON); answers its id |
//! | `DELETE /v1/faults/{id}` | remove a fault rule |
//! | `GET /v1/faults/log` | the hit log: what each fault hit and when |
//! | `PUT /v1/link` | `{"up": false}` unplugs the cable, `{"up": true}` plugs it in |
//! | `PUT /v1/fatal` | puts the RNIC in the fatal state |
//! | `PUT /v1/vm/shutdown` | ends the run (or the `--hold` after it) |
//!
//! Routes about one RNIC take `?rnic=ID`, which may be left out when the VM has
//! exactly one. Every error is a 4xx/5xx answer with `{"error": "..."}`; nothing a
//! client sends can disturb the VM beyond what the route does. The socket is made
//! owner-only (0600) and removed when the server is dropped.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rnic_device::fault::RuleId;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::faultplan::FaultEntry;
use crate::rnic::AttachedRnic;
use crate::vm::{Outcome, Shutdown};

/// Every route and its methods (`{id}` stands for a rule id), as
/// `docs/api/openapi.yaml` lists them.
pub const ROUTES: [(&str, &[&str]); 8] = [
    ("/v1/vm", &["GET"]),
    ("/v1/stats", &["GET"]),
    ("/v1/faults", &["GET", "POST"]),
    ("/v1/faults/{id}", &["DELETE"]),
    ("/v1/faults/log", &["GET"]),
    ("/v1/link", &["PUT"]),
    ("/v1/fatal", &["PUT"]),
    ("/v1/vm/shutdown", &["PUT"]),
];

/// The route template `path` belongs to, if any.
fn route_of(path: &str) -> Option<(&'static str, &'static [&'static str])> {
    let exact = ROUTES.iter().copied().find(|(route, _)| *route == path);
    exact.or_else(|| {
        ROUTES.iter().copied().find(|(route, _)| {
            route.ends_with("{id}")
                && path
                    .strip_prefix(route.trim_end_matches("{id}"))
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        })
    })
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An answer: HTTP status and JSON body (`None` = no body, for 204).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Option<Value>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
        }
    }
    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Some(json!({ "error": message.into() })),
        }
    }
    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
        }
    }
}

/// What the API acts on.
pub struct ApiState {
    /// The VM's RNICs.
    pub rnics: Vec<Arc<AttachedRnic>>,
    /// The run's outcome and stop protocol.
    pub shutdown: Arc<Shutdown>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    up: bool,
}

fn split_query(url: &str) -> (&str, Vec<(&str, &str)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    (path, pairs)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(400, format!("request body is not valid: {e}")))
}

impl ApiState {
    fn rnic(&self, query: &[(&str, &str)]) -> Result<&Arc<AttachedRnic>, Reply> {
        let wanted = query.iter().find(|(k, _)| *k == "rnic").map(|(_, v)| *v);
        if let Some((key, _)) = query.iter().find(|(k, _)| *k != "rnic") {
            return Err(Reply::error(
                400,
                format!("unknown query parameter `{key}`; only `rnic` is accepted"),
            ));
        }
        match wanted {
            Some(id) => self
                .rnics
                .iter()
                .find(|r| r.settings.id == id)
                .ok_or_else(|| Reply::error(404, format!("no RNIC `{id}`; GET /v1/vm lists them"))),
            None if self.rnics.len() == 1 => Ok(&self.rnics[0]),
            None if self.rnics.is_empty() => Err(Reply::error(404, "this VM has no RNIC")),
            None => Err(Reply::error(
                400,
                "this VM has several RNICs: add ?rnic=ID (GET /v1/vm lists them)",
            )),
        }
    }

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
                let device = r.lock();
                v["link_up"] = json!(device.link_up());
                v["fatal"] = json!(device.fatal());
                v
            })
            .collect();
        json!({ "state": state, "outcome": outcome, "rnics": rnics })
    }

    fn faults(&self, rnic: &AttachedRnic) -> Value {
        let rules: Vec<Value> = rnic
            .lock()
            .faults_mut()
            .rules()
            .into_iter()
            .map(|rule| {
                let mut v = serde_json::to_value(&rule).unwrap_or(Value::Null);
                if let Some(times) = rule.id.and_then(|id| rnic.limit_of(id)) {
                    v["times"] = json!(times);
                }
                v
            })
            .collect();
        json!({ "rnic": rnic.settings.id, "faults": rules })
    }

    /// Answers one request. `path` may carry a query string.
    pub fn handle(&self, method: &str, url: &str, body: &[u8]) -> Reply {
        let (path, query) = split_query(url);
        let result = match (method, path) {
            ("GET", "/v1/vm") => Ok(Reply::ok(self.vm_info())),
            ("GET", "/v1/stats") => self.rnic(&query).map(|r| {
                let stats = r.lock().stats();
                Reply::ok(json!({ "rnic": r.settings.id, "stats": stats }))
            }),
            ("GET", "/v1/faults") => self.rnic(&query).map(|r| Reply::ok(self.faults(r))),
            ("POST", "/v1/faults") => self.rnic(&query).and_then(|r| {
                let entry: FaultEntry = parse_json(body)?;
                let planned = entry
                    .to_planned()
                    .map_err(|e| Reply::error(400, e.to_string()))?;
                let id = r
                    .add_fault(planned)
                    .map_err(|e| Reply::error(409, e.to_string()))?;
                Ok(Reply {
                    status: 201,
                    body: Some(json!({ "rnic": r.settings.id, "id": id.0 })),
                })
            }),
            ("GET", "/v1/faults/log") => self.rnic(&query).map(|r| {
                let mut device = r.lock();
                let engine = device.faults_mut();
                let log = engine.log();
                let hits: Vec<_> = log.entries().copied().collect();
                Reply::ok(json!({ "rnic": r.settings.id, "hits": hits, "dropped": log.dropped() }))
            }),
            ("DELETE", p) if route_of(p).is_some_and(|r| r.0 == "/v1/faults/{id}") => {
                self.rnic(&query).and_then(|r| {
                    let text = &p["/v1/faults/".len()..];
                    let id: u32 = text.parse().map_err(|_| {
                        Reply::error(400, format!("fault id `{text}` is not a number"))
                    })?;
                    r.remove_fault(RuleId(id))
                        .map_err(|e| Reply::error(404, e.to_string()))?;
                    Ok(Reply::no_content())
                })
            }
            ("PUT", "/v1/link") => self.rnic(&query).and_then(|r| {
                let request: LinkRequest = parse_json(body)?;
                r.lock().set_carrier(request.up);
                Ok(Reply::no_content())
            }),
            ("PUT", "/v1/fatal") => self.rnic(&query).map(|r| {
                r.lock().inject_fatal();
                Reply::no_content()
            }),
            ("PUT", "/v1/vm/shutdown") => {
                self.shutdown.finish(Outcome::ShutdownRequested);
                self.shutdown.release();
                Ok(Reply::no_content())
            }
            _ => match route_of(path) {
                Some((_, methods)) => Err(Reply::error(
                    405,
                    format!(
                        "{method} is not allowed on {path}; use {}",
                        methods.join(" or ")
                    ),
                )),
                None => Err(Reply::error(
                    404,
                    format!("no route {path}; see docs/api/openapi.yaml"),
                )),
            },
        };
        result.unwrap_or_else(|reply| reply)
    }
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

/// Why the API socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Something other than a stale socket is at the path, or a server answers there.
    #[error("{path} is in use ({what}); pick another --api-socket path")]
    PathInUse {
        /// The socket path.
        path: PathBuf,
        /// What is there.
        what: &'static str,
    },
    /// Binding or securing the socket failed.
    #[error("cannot serve the API on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The API server thread; stops and removes the socket when dropped.
pub struct ApiServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

fn clear_stale_socket(path: &Path) -> Result<(), ApiError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let in_use = |what| ApiError::PathInUse {
        path: path.to_path_buf(),
        what,
    };
    if !meta.file_type().is_socket() {
        return Err(in_use("a file that is not a socket"));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(in_use("another process serves it"));
    }
    std::fs::remove_file(path).map_err(|e| ApiError::Bind {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

impl ApiServer {
    /// Binds `path` owner-only and serves `state` on a thread of its own.
    pub fn start(path: &Path, state: ApiState) -> Result<ApiServer, ApiError> {
        clear_stale_socket(path)?;
        let bind_error = |source: Box<dyn std::error::Error + Send + Sync>| ApiError::Bind {
            path: path.to_path_buf(),
            source,
        };
        // The socket is created with the umask's permissions: make it owner-only
        // from the start (no window where others could connect), then restore.
        // SAFETY: umask(2) only swaps the process's file mode mask; no memory is
        // touched.
        let previous = unsafe { libc::umask(0o177) };
        let server = tiny_http::Server::http_unix(path);
        // SAFETY: as above, restoring the mask read just before.
        unsafe { libc::umask(previous) };
        let server = server.map_err(bind_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| bind_error(Box::new(e)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rnic-vmm-api".into())
            .spawn(move || serve(server, state, thread_stop))
            .map_err(|e| bind_error(Box::new(e)))?;
        Ok(ApiServer {
            stop,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // tiny_http removes the socket when the server drops; make sure of it.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(server: tiny_http::Server, state: ApiState, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let mut request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                warn!("control API: accepting a request failed: {e}");
                continue;
            }
        };
        let method = request.method().as_str().to_string();
        let url = request.url().to_string();
        let mut body = Vec::new();
        let read = request
            .as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body);
        let reply = match read {
            Err(e) => Reply::error(400, format!("cannot read the request body: {e}")),
            Ok(_) if body.len() > MAX_BODY_BYTES => Reply::error(
                413,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ),
            Ok(_) => state.handle(&method, &url, &body),
        };
        debug!(%method, %url, status = reply.status, "control API request");
        let response = match &reply.body {
            Some(body) => tiny_http::Response::from_string(body.to_string())
                .with_status_code(reply.status)
                .with_header(
                    "Content-Type: application/json"
                        .parse::<tiny_http::Header>()
                        .expect("a valid header"),
                )
                .boxed(),
            None => tiny_http::Response::empty(reply.status).boxed(),
        };
        if let Err(e) = request.respond(response) {
            debug!("control API: the client went away before the answer: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document lists exactly the routes and methods served here.
    #[test]
    fn openapi_document_lists_every_route_and_method() {
        let yaml = include_str!("../../docs/api/openapi.yaml");
        let mut documented: Vec<(String, Vec<String>)> = Vec::new();
        for line in yaml.lines() {
            if let Some(path) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                documented.push((format!("/{path}"), Vec::new()));
            } else if let Some(method) = line
                .strip_prefix("    ")
                .and_then(|l| l.strip_suffix(':'))
                .filter(|m| ["get", "post", "put", "delete"].contains(m))
            {
                documented
                    .last_mut()
                    .expect("a method under a path")
                    .1
                    .push(method.to_uppercase());
            }
        }
        let mut served: Vec<(String, Vec<String>)> = ROUTES
            .iter()
            .map(|(p, m)| (p.to_string(), m.iter().map(|m| m.to_string()).collect()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn routes_resolve_templates_but_not_prefixes() {
        assert_eq!(
            route_of("/v1/faults/7").map(|r| r.0),
            Some("/v1/faults/{id}")
        );
        assert_eq!(
            route_of("/v1/faults/log").map(|r| r.0),
            Some("/v1/faults/log")
        );
        assert!(route_of("/v1/faults/").is_none());
        assert!(route_of("/v1/faults/1/2").is_none());
        assert!(route_of("/v1/vmx").is_none());
    }
}
