//! # rnic-control: controlling an RNIC from outside the guest
//!
//! What `rnic-vmm` and `rnic-device-server` share so that a user controls an RNIC the
//! same way in both: fault plans ([`faultplan`]: TOML or JSON files, and the entries
//! the API takes) and the HTTP/JSON control API over a Unix socket ([`api`]: the
//! socket server, the routes about one RNIC, errors as JSON), described by
//! `docs/api/openapi.yaml`.
//!
//! Owns: the plan syntax, the API's wire format and the socket's life (0600, removed
//! when the server is dropped). Must not touch: the device's behaviour (it only calls
//! `rnic-device`'s public fault, statistics, link and fatal seams) or anything of a
//! VM (the monitor adds its VM routes through [`api::ApiServer::start`]'s handler).

pub mod api;
pub mod faultplan;

/// `text` with its control characters (newlines, escapes) written as Rust escapes, so
/// that a message quoting user input (a field name from a plan, serde_json's quote of
/// an unknown key) stays one line and carries no terminal escapes.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
