//! A client of the control API for `rnicctl`: one HTTP/1.1 request per connection
//! over the Unix socket (`Connection: close`), the response parsed by `httparse`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Largest response accepted, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How long a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed before an HTTP answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached.
    #[error("cannot connect to {path}: {source}; is rnic-vmm running with --api-socket {path}?", path = path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("talking to {path}: {source}", path = path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not HTTP or not JSON.
    #[error("the answer from {path} is not a valid API response: {reason}", path = path.display())]
    BadResponse {
        /// The socket path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// An API answer: HTTP status and JSON body (`Value::Null` when empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

/// Sends `method path` with an optional JSON body and returns the answer.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, ClientError> {
    let io_error = |source| ClientError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io_error)?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(io_error)?;
    stream.write_all(payload.as_bytes()).map_err(io_error)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(io_error)?;
    parse_response(&raw).map_err(|reason| ClientError::BadResponse {
        path: socket.to_path_buf(),
        reason,
    })
}

/// Parses a complete HTTP/1.1 response whose body runs to the end (or to its
/// Content-Length).
pub fn parse_response(raw: &[u8]) -> Result<Answer, String> {
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(format!("larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let body_start = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the response ended in its header".into()),
        Err(e) => return Err(e.to_string()),
    };
    let status = response.code.ok_or("no status code")?;
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("bad Content-Length")
        })
        .transpose()?;
    let rest = &raw[body_start..];
    let body = match length {
        Some(n) if n > rest.len() => {
            return Err("the body is shorter than its Content-Length".into())
        }
        Some(n) => &rest[..n],
        None => rest,
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?
    };
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_and_without_bodies() {
        let a = parse_response(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":3}",
        )
        .unwrap();
        assert_eq!(a.status, 201);
        assert_eq!(a.body["id"], 3);
        let a = parse_response(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((a.status, a.body), (204, Value::Null));
        let a = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n{\"error\":\"x\"}").unwrap();
        assert_eq!(a.body["error"], "x");
    }

    #[test]
    fn broken_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nnot json").is_err());
    }
}
