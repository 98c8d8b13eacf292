//! The control API of the server's one RNIC (`--api-socket PATH`): the routes of
//! [`rnic_control::api`] that `rnic-vmm` serves too (statistics, faults, fault log,
//! link, fatal; `docs/api/openapi.yaml`), so that `rnicctl --socket PATH` and curl work
//! against the server as against the monitor.
//!
//! `GET /v1/vm` answers the server's state (`waiting` until a client has reached the
//! device, then `serving`) and its RNIC's settings; the server has no VM, so
//! `PUT /v1/vm/shutdown` is refused (404) with how to stop it instead. The device is
//! built when the vfio-user client first reaches it: until then the routes about the
//! RNIC answer 503.

use std::path::Path;

use rnic_control::api::{self, ApiError, ApiServer, ControlledRnic, Reply};
use rnic_device::Rnic;
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::options::Options;

/// The server's RNIC as the API sees it.
pub struct ServedRnic {
    id: String,
    backend: Backend,
}

impl ServedRnic {
    /// The RNIC of `backend`'s session, called `id` in the API.
    pub fn new(id: String, backend: Backend) -> Self {
        ServedRnic { id, backend }
    }
}

impl ControlledRnic for ServedRnic {
    fn id(&self) -> &str {
        &self.id
    }

    fn with_device(&self, f: &mut dyn FnMut(&mut Rnic)) -> Result<(), Reply> {
        match self.backend.lock().device_mut() {
            Some(device) => {
                f(device);
                Ok(())
            }
            None => Err(Reply::error(
                503,
                "the device does not exist yet: it is built when the vfio-user client first \
                 reaches it (start the client, e.g. rnic-vmm --rnic socket=PATH)",
            )),
        }
    }
}

/// The settings `GET /v1/vm` reports for the server's RNIC (the keys of
/// `rnic-vmm`'s RNIC settings, plus the vfio-user `socket` it is served on).
pub fn settings_json(options: &Options) -> Value {
    let mut settings = json!({
        "id": options.id,
        "mac": options.mac.to_string(),
        "ipv4": options.ipv4,
        "wire": options.wire.to_string(),
        "socket": options.socket,
    });
    if let Some(ip) = options.ipv6 {
        settings["ipv6"] = json!(ip);
    }
    for (key, path) in [("pcap", &options.pcap), ("faults", &options.faults)] {
        if let Some(path) = path {
            settings[key] = json!(path);
        }
    }
    settings
}

/// Answers one request for `rnic`, whose settings are `settings`.
pub fn handle(rnic: &ServedRnic, settings: &Value, method: &str, url: &str, body: &[u8]) -> Reply {
    api::handle(
        std::slice::from_ref(rnic),
        method,
        url,
        body,
        |method, path| match (method, path) {
            ("GET", "/v1/vm") => {
                let state = api::device_state(rnic);
                let serving = state.as_object().is_some_and(|s| !s.is_empty());
                let mut info = settings.clone();
                if let (Some(info), Value::Object(state)) = (info.as_object_mut(), state) {
                    info.extend(state);
                }
                Some(Reply::ok(json!({
                    "state": if serving { "serving" } else { "waiting" },
                    "outcome": null,
                    "rnics": [info],
                })))
            }
            ("PUT", "/v1/vm/shutdown") => Some(Reply::error(
                404,
                "rnic-device-server has no VM to shut down: it ends when its client \
                 disconnects, or on SIGTERM/SIGINT",
            )),
            _ => None,
        },
    )
}

/// Serves the API of `backend`'s RNIC on `path` (0600, removed when dropped).
pub fn serve(path: &Path, options: &Options, backend: Backend) -> Result<ApiServer, ApiError> {
    let rnic = ServedRnic::new(options.id.clone(), backend);
    let settings = settings_json(options);
    ApiServer::start(
        path,
        Box::new(move |method, url, body| handle(&rnic, &settings, method, url, body)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Session;
    use clap::Parser;
    use vfio_user::ServerBackend;

    fn options(extra: &[&str]) -> Options {
        let mut args = vec!["rnic-device-server", "--socket", "/tmp/s.sock"];
        args.extend_from_slice(extra);
        Options::try_parse_from(args).unwrap()
    }

    #[test]
    fn routes_answer_503_until_the_client_reaches_the_device_then_act_on_it() {
        let o = options(&["--id", "far", "--wire", "loopback"]);
        let backend = Backend::new(
            Session::new(o.device_config().unwrap(), o.open_wire().unwrap()).with_faults(
                rnic_control::faultplan::parse_plan(
                    "[[fault]]\nsite = \"link\"\naction = \"link_down\"\ntimes = 2\n",
                )
                .unwrap(),
            ),
        );
        let rnic = ServedRnic::new(o.id.clone(), backend.clone());
        let settings = settings_json(&o);
        let ask =
            |method, url: &str, body: &str| handle(&rnic, &settings, method, url, body.as_bytes());

        let vm = ask("GET", "/v1/vm", "").body.unwrap();
        assert_eq!(vm["state"], "waiting");
        assert_eq!(vm["rnics"][0]["id"], "far");
        assert_eq!(vm["rnics"][0]["wire"], "loopback");
        let stats = ask("GET", "/v1/stats", "");
        assert_eq!(stats.status, 503);
        assert!(stats.body.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("vfio-user client"));

        // The client's first access builds the device, with the plan's fault armed.
        let mut id = [0u8; 4];
        backend.clone().region_read(7, 0, &mut id).unwrap();
        let vm = ask("GET", "/v1/vm", "").body.unwrap();
        assert_eq!(vm["state"], "serving");
        assert_eq!(vm["rnics"][0]["link_up"], false);
        let faults = ask("GET", "/v1/faults?rnic=far", "").body.unwrap();
        assert_eq!(faults["faults"][0]["times"], 2, "{faults}");
        assert_eq!(ask("GET", "/v1/stats", "").status, 200);
        assert_eq!(ask("GET", "/v1/stats?rnic=near", "").status, 404);
        assert_eq!(ask("PUT", "/v1/link", r#"{"up": false}"#).status, 204);
        assert_eq!(ask("PUT", "/v1/fatal", "").status, 204);
        assert!(backend.lock().device_mut().unwrap().fatal().is_some());
        let shutdown = ask("PUT", "/v1/vm/shutdown", "");
        assert_eq!(shutdown.status, 404);
        assert!(shutdown.body.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"));
    }
}
