//! The control API: HTTP/JSON over a Unix socket (tiny_http), described by
//! `docs/api/openapi.yaml`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/vm` | state, outcome once there is one, the RNICs' settings (answered by the host program) |
//! | `GET /v1/stats` | every counter of an RNIC (device, port, queues, QPs, CQs, faults) |
//! | `GET /v1/faults` | an RNIC's fault rules |
//! | `POST /v1/faults` | add a fault (a fault-plan entry as JSON); answers its id |
//! | `DELETE /v1/faults/{id}` | remove a fault rule |
//! | `GET /v1/faults/log` | the hit log: what each fault hit and when |
//! | `PUT /v1/link` | `{"up": false}` unplugs the cable, `{"up": true}` plugs it in |
//! | `PUT /v1/fatal` | puts the RNIC in the fatal state |
//! | `PUT /v1/vm/shutdown` | ends the run (answered by the host program) |
//!
//! Routes about one RNIC take `?rnic=ID`, which may be left out when there is
//! exactly one. Every error is a 4xx/5xx answer with `{"error": "..."}`; nothing a
//! client sends can disturb the device beyond what the route does. The socket is made
//! owner-only (0600) and removed when the server is dropped.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rnic_device::fault::RuleId;
use rnic_device::Rnic;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::faultplan::{FaultEntry, PlannedFault};

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
pub fn route_of(path: &str) -> Option<(&'static str, &'static [&'static str])> {
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

/// Longest RNIC id, in bytes.
pub const MAX_ID_LEN: usize = 32;

/// Checks an RNIC id (`?rnic=ID`): 1..=[`MAX_ID_LEN`] characters of
/// `A-Z a-z 0-9 - _`; the error says so.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "RNIC id `{id}` must be 1..={MAX_ID_LEN} characters of A-Z a-z 0-9 - _"
        ))
    }
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
    /// 200 with `body`.
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
        }
    }

    /// `status` with `{"error": message}`; the message says what to do.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Some(json!({ "error": message.into() })),
        }
    }

    /// 204 without a body.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
        }
    }
}

/// An RNIC the API acts on.
pub trait ControlledRnic: Send + Sync {
    /// Its id, as `?rnic=ID` names it.
    fn id(&self) -> &str;

    /// Runs `f` on the device. A device that does not exist (yet) answers with the
    /// error reply to send instead (503, saying when it will exist).
    fn with_device(&self, f: &mut dyn FnMut(&mut Rnic)) -> Result<(), Reply>;
}

impl<T: ControlledRnic + ?Sized> ControlledRnic for Arc<T> {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn with_device(&self, f: &mut dyn FnMut(&mut Rnic)) -> Result<(), Reply> {
        (**self).with_device(f)
    }
}

/// What `f` returns when run on `rnic`'s device.
fn on_device<T>(rnic: &dyn ControlledRnic, f: impl FnOnce(&mut Rnic) -> T) -> Result<T, Reply> {
    let mut f = Some(f);
    let mut out = None;
    rnic.with_device(&mut |device| out = f.take().map(|f| f(device)))?;
    out.ok_or_else(|| Reply::error(500, "the device was not reached; try again"))
}

/// Adds a planned fault to `device`'s engine (its `times` limit is the rule's
/// `max_hits`, which the engine enforces exactly).
pub fn add_fault(
    device: &mut Rnic,
    fault: PlannedFault,
) -> Result<RuleId, rnic_device::fault::FaultError> {
    device.faults_mut().add_rule(fault.rule)
}

/// `{"link_up": bool, "fatal": cause or null}` of `rnic`'s device, or `{}` when it
/// does not exist.
pub fn device_state(rnic: &dyn ControlledRnic) -> Value {
    on_device(
        rnic,
        |device| json!({ "link_up": device.link_up(), "fatal": device.fatal() }),
    )
    .unwrap_or_else(|_| json!({}))
}

/// Splits a request URL into its path and `key=value` query pairs.
pub fn split_query(url: &str) -> (&str, Vec<(&str, &str)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    (path, pairs)
}

/// Parses a JSON request body; a bad one is a 400 saying why.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(400, format!("request body is not valid: {e}")))
}

/// The RNIC a request's query names (`?rnic=ID`; may be left out when there is one).
pub fn select<'a, R: ControlledRnic>(
    rnics: &'a [R],
    query: &[(&str, &str)],
) -> Result<&'a R, Reply> {
    let wanted = query.iter().find(|(k, _)| *k == "rnic").map(|(_, v)| *v);
    if let Some((key, _)) = query.iter().find(|(k, _)| *k != "rnic") {
        return Err(Reply::error(
            400,
            format!("unknown query parameter `{key}`; only `rnic` is accepted"),
        ));
    }
    match wanted {
        Some(id) => rnics
            .iter()
            .find(|r| r.id() == id)
            .ok_or_else(|| Reply::error(404, format!("no RNIC `{id}`; GET /v1/vm lists them"))),
        None if rnics.len() == 1 => Ok(&rnics[0]),
        None if rnics.is_empty() => Err(Reply::error(404, "there is no RNIC here")),
        None => Err(Reply::error(
            400,
            "there are several RNICs: add ?rnic=ID (GET /v1/vm lists them)",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    up: bool,
}

/// Whether `(method, path)` is one of the routes about one RNIC.
fn is_rnic_route(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("GET", "/v1/stats")
            | ("GET" | "POST", "/v1/faults")
            | ("GET", "/v1/faults/log")
            | ("PUT", "/v1/link" | "/v1/fatal")
    ) || (method == "DELETE" && route_of(path).is_some_and(|r| r.0 == "/v1/faults/{id}"))
}

fn faults_json(rnic: &dyn ControlledRnic) -> Result<Value, Reply> {
    let rules = on_device(rnic, |device| device.faults_mut().rules())?;
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|rule| {
            let mut v = serde_json::to_value(&rule).unwrap_or(Value::Null);
            if let Some(times) = rule.max_hits {
                v["times"] = json!(times);
            }
            v
        })
        .collect();
    Ok(json!({ "rnic": rnic.id(), "faults": rules }))
}

/// Answers a request on a route about one RNIC (`is_rnic_route`).
fn rnic_request(rnic: &dyn ControlledRnic, method: &str, path: &str, body: &[u8]) -> Reply {
    let id = rnic.id();
    let result = match (method, path) {
        ("GET", "/v1/stats") => on_device(rnic, |device| device.stats())
            .map(|stats| Reply::ok(json!({ "rnic": id, "stats": stats }))),
        ("GET", "/v1/faults") => faults_json(rnic).map(Reply::ok),
        ("POST", "/v1/faults") => parse_json::<FaultEntry>(body).and_then(|entry| {
            let planned = entry
                .to_planned()
                .map_err(|e| Reply::error(400, e.to_string()))?;
            let added = on_device(rnic, |device| add_fault(device, planned))?;
            let rule = added.map_err(|e| Reply::error(409, e.to_string()))?;
            Ok(Reply {
                status: 201,
                body: Some(json!({ "rnic": id, "id": rule.0 })),
            })
        }),
        ("GET", "/v1/faults/log") => on_device(rnic, |device| {
            let engine = device.faults_mut();
            let log = engine.log();
            let hits: Vec<_> = log.entries().copied().collect();
            json!({ "rnic": id, "hits": hits, "dropped": log.dropped() })
        })
        .map(Reply::ok),
        ("PUT", "/v1/link") => parse_json::<LinkRequest>(body).and_then(|request| {
            on_device(rnic, |device| device.set_carrier(request.up)).map(|()| Reply::no_content())
        }),
        ("PUT", "/v1/fatal") => {
            on_device(rnic, |device| device.inject_fatal()).map(|()| Reply::no_content())
        }
        ("DELETE", p) => {
            let text = &p["/v1/faults/".len()..];
            text.parse::<u32>()
                .map_err(|_| Reply::error(400, format!("fault id `{text}` is not a number")))
                .and_then(|rule| {
                    let removed =
                        on_device(rnic, |device| device.faults_mut().remove_rule(RuleId(rule)))?;
                    removed
                        .map(|_| Reply::no_content())
                        .map_err(|e| Reply::error(404, e.to_string()))
                })
        }
        _ => Err(Reply::error(404, format!("no route {path}"))),
    };
    result.unwrap_or_else(|reply| reply)
}

/// Answers one request: the routes about one RNIC for the RNIC `?rnic=` selects from
/// `rnics`; any other request goes to `host` (the host program's own routes, such as
/// `GET /v1/vm`), and what `host` does not answer is a 405 (a known route, another
/// method) or a 404.
pub fn handle<R: ControlledRnic>(
    rnics: &[R],
    method: &str,
    url: &str,
    body: &[u8],
    host: impl FnOnce(&str, &str) -> Option<Reply>,
) -> Reply {
    let (path, query) = split_query(url);
    if is_rnic_route(method, path) {
        return match select(rnics, &query) {
            Ok(rnic) => rnic_request(rnic, method, path, body),
            Err(reply) => reply,
        };
    }
    if let Some(reply) = host(method, path) {
        return reply;
    }
    match route_of(path) {
        Some((_, methods)) => Reply::error(
            405,
            format!(
                "{method} is not allowed on {path}; use {}",
                methods.join(" or ")
            ),
        ),
        None => Reply::error(404, format!("no route {path}; see docs/api/openapi.yaml")),
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

/// Answers one request: (method, URL with its query, body) -> reply.
pub type Handler = Box<dyn Fn(&str, &str, &[u8]) -> Reply + Send>;

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
    /// Binds `path` owner-only (a stale socket there is replaced) and answers each
    /// request with `handler` on a thread of its own.
    pub fn start(path: &Path, handler: Handler) -> Result<ApiServer, ApiError> {
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
            .name("rnic-api".into())
            .spawn(move || serve(server, handler, thread_stop))
            .map_err(|e| bind_error(Box::new(e)))?;
        Ok(ApiServer {
            stop,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
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

fn serve(server: tiny_http::Server, handler: Handler, stop: Arc<AtomicBool>) {
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
            Ok(_) => handler(&method, &url, &body),
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
    use std::sync::Mutex;

    /// The OpenAPI document lists exactly the routes and methods served here.
    #[test]
    fn openapi_document_lists_every_route_and_method() {
        let yaml = include_str!("../../../docs/api/openapi.yaml");
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

    /// An RNIC whose device may not exist yet, as the device server's before its
    /// client connects.
    struct TestRnic {
        id: &'static str,
        device: Mutex<Option<Rnic>>,
    }

    impl ControlledRnic for TestRnic {
        fn id(&self) -> &str {
            self.id
        }
        fn with_device(&self, f: &mut dyn FnMut(&mut Rnic)) -> Result<(), Reply> {
            match self.device.lock().unwrap().as_mut() {
                Some(device) => {
                    f(device);
                    Ok(())
                }
                None => Err(Reply::error(503, "no device yet")),
            }
        }
    }

    fn rnic(id: &'static str, exists: bool) -> TestRnic {
        let device = exists.then(|| {
            let memory =
                vm_memory::GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 0x1_0000)])
                    .unwrap();
            Rnic::new(
                rnic_device::RnicConfig::default(),
                memory,
                Arc::new(rnic_device::RecordingSink::default()),
            )
        });
        TestRnic {
            id,
            device: Mutex::new(device),
        }
    }

    fn no_host(_: &str, _: &str) -> Option<Reply> {
        None
    }

    #[test]
    fn rnic_routes_act_on_the_selected_device() {
        let rnics = [rnic("a", true), rnic("b", true)];
        let ask =
            |method, url: &str, body: &str| handle(&rnics, method, url, body.as_bytes(), no_host);
        assert_eq!(
            ask("GET", "/v1/stats", "").status,
            400,
            "two RNICs: ?rnic= needed"
        );
        let stats = ask("GET", "/v1/stats?rnic=b", "");
        assert_eq!(stats.status, 200);
        assert_eq!(stats.body.unwrap()["rnic"], "b");
        let added = ask(
            "POST",
            "/v1/faults?rnic=b",
            r#"{"site": "link", "action": "link_down", "times": 3}"#,
        );
        assert_eq!(added.status, 201, "{added:?}");
        let id = added.body.unwrap()["id"].as_u64().unwrap();
        let listed = ask("GET", "/v1/faults?rnic=b", "").body.unwrap();
        assert_eq!(listed["faults"][0]["times"], 3);
        assert_eq!(
            ask("GET", "/v1/faults?rnic=a", "").body.unwrap()["faults"],
            json!([])
        );
        assert_eq!(
            ask("DELETE", &format!("/v1/faults/{id}?rnic=b"), "").status,
            204
        );
        assert_eq!(
            ask("DELETE", &format!("/v1/faults/{id}?rnic=b"), "").status,
            404
        );
        assert_eq!(ask("DELETE", "/v1/faults/x?rnic=b", "").status, 400);
        assert_eq!(
            ask("PUT", "/v1/link?rnic=a", r#"{"up": false}"#).status,
            204
        );
        assert_eq!(ask("PUT", "/v1/link?rnic=a", r#"{"down": 1}"#).status, 400);
        assert_eq!(ask("PUT", "/v1/fatal?rnic=a", "").status, 204);
        assert!(device_state(&rnics[0])["fatal"].is_u64(), "the fatal cause");
        assert!(device_state(&rnics[1])["fatal"].is_null());
        assert_eq!(device_state(&rnics[0])["link_up"], false);
        assert_eq!(ask("GET", "/v1/faults/log?rnic=a", "").status, 200);
        assert_eq!(ask("GET", "/v1/stats?rnic=z", "").status, 404);
        assert_eq!(ask("GET", "/v1/stats?rnic=a&x=1", "").status, 400);
        assert_eq!(
            ask("GET", "/v1/vm", "").status,
            405,
            "a route the host did not answer"
        );
        assert_eq!(ask("PUT", "/v1/stats?rnic=a", "").status, 405);
        assert_eq!(ask("GET", "/v2/x", "").status, 404);
    }

    #[test]
    fn a_device_that_does_not_exist_yet_answers_with_its_reply() {
        let rnics = [rnic("only", false)];
        let reply = handle(&rnics, "GET", "/v1/stats", b"", no_host);
        assert_eq!(reply.status, 503);
        assert_eq!(device_state(&rnics[0]), json!({}));
        let host = handle(&rnics, "GET", "/v1/vm", b"", |_, path| {
            (path == "/v1/vm").then(|| Reply::ok(json!({ "state": "waiting" })))
        });
        assert_eq!(host.body.unwrap()["state"], "waiting");
    }
}
