//! One vfio-user session: listen, accept one client, relay its requests through the
//! [`guard`](crate::guard) to the `vfio_user` crate's server running the
//! [`Backend`], poll the device every [`POLL_INTERVAL`], and stop when the client
//! disconnects.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rnic_control::api::ApiServer;
use vfio_user::Server;

use crate::backend::{server_irqs, server_regions, Backend, Session};
use crate::error::ServerError;
use crate::guard::{self, GuardError};
use crate::options::Options;

/// How often the device's periodic work runs (timers, wire receive, delayed faults).
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Removes the socket file when the server ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether some process has a Unix socket bound to `path` (absolute), per
/// `/proc/net/unix`. Connecting to find out would be taken by a one-client server
/// as its session, so the kernel's table is read instead; when it cannot be read
/// the socket counts as in use.
fn socket_in_use(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return true;
    };
    // The path is the last field and may itself contain spaces.
    let wanted = format!(" {}", path.as_os_str().to_string_lossy());
    table.lines().skip(1).any(|line| line.ends_with(&wanted))
}

/// Removes a socket file a killed server left behind; refuses any other file and a
/// socket another process still has bound.
fn clear_stale_socket(path: &Path) -> Result<(), ServerError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let stale =
        std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) && !socket_in_use(path);
    if !stale {
        return Err(ServerError::SocketExists(path.to_path_buf()));
    }
    tracing::info!(
        "removing the stale socket {} (nobody serves it)",
        path.display()
    );
    std::fs::remove_file(path).map_err(|source| ServerError::Listen {
        path: path.to_path_buf(),
        source,
    })
}

/// A bound, listening server that has not accepted its client yet.
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
    /// Removes the socket file when the server ends (or fails to start).
    socket_file: SocketFile,
    backend: Backend,
    api: Option<ApiServer>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("path", &self.path)
            .field("api", &self.api.as_ref().map(ApiServer::path))
            .finish()
    }
}

/// Binds `options.socket` and prepares the device's session (wire opened, fault plan
/// read and checked), and serves the control API on `options.api_socket` if given.
pub fn listen(options: &Options) -> Result<Listening, ServerError> {
    let config = options.device_config()?;
    let faults = options.fault_plan()?;
    let wire = options.open_wire()?;
    // Absolute, so that /proc/net/unix shows the path as `socket_in_use` looks for it.
    let path = std::path::absolute(&options.socket).map_err(|source| ServerError::Listen {
        path: options.socket.clone(),
        source,
    })?;
    clear_stale_socket(&path)?;
    let listener = UnixListener::bind(&path).map_err(|source| ServerError::Listen {
        path: path.clone(),
        source,
    })?;
    let socket_file = SocketFile(path.clone());
    let backend = Backend::new(Session::new(config, wire).with_faults(faults));
    let api = match &options.api_socket {
        Some(api_path) => Some(crate::control::serve(api_path, options, backend.clone())?),
        None => None,
    };
    Ok(Listening {
        listener,
        path,
        socket_file,
        backend,
        api,
    })
}

impl Listening {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The control API's socket path, when it is served.
    pub fn api_path(&self) -> Option<&Path> {
        self.api.as_ref().map(ApiServer::path)
    }

    /// Accepts one client and serves it until it disconnects.
    pub fn serve_one(self) -> Result<(), ServerError> {
        let _socket_file = self.socket_file;
        let (mut client, _) = self
            .listener
            .accept()
            .map_err(|source| ServerError::Accept {
                path: self.path.clone(),
                source,
            })?;
        tracing::info!("client connected on {}", self.path.display());
        // The API (if any) stays up until the session ends, then its socket goes.
        let _api = self.api;
        serve_backend(&mut client, self.backend)
    }
}

/// Serves one already connected client `stream` with a device in `session`.
pub fn serve_stream(client: &mut UnixStream, session: Session) -> Result<(), ServerError> {
    serve_backend(client, Backend::new(session))
}

/// Serves one already connected client `stream` with the session of `backend`.
fn serve_backend(client: &mut UnixStream, backend: Backend) -> Result<(), ServerError> {
    // The crate's server listens on a private abstract socket that only the guard
    // connects to.
    let name = format!("rnic-device-server-{}-{:p}", std::process::id(), client);
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(ServerError::Setup)?;
    let inner_listener = UnixListener::bind_addr(&addr).map_err(ServerError::Setup)?;
    let server =
        Server::from_owned_fd(inner_listener.into(), true, server_irqs(), server_regions());
    let mut run_backend = backend.clone();
    let server_thread = thread::Builder::new()
        .name("vfio-user".into())
        .spawn(move || server.run(&mut run_backend))
        .map_err(ServerError::Setup)?;
    let mut inner = UnixStream::connect_addr(&addr).map_err(ServerError::Setup)?;

    let stop = Arc::new(AtomicBool::new(false));
    let (poll_stop, poll_backend) = (stop.clone(), backend.clone());
    let poller = thread::Builder::new()
        .name("rnic-poll".into())
        .spawn(move || {
            while !poll_stop.load(Ordering::Relaxed) {
                thread::sleep(POLL_INTERVAL);
                poll_backend.lock().poll();
            }
        })
        .map_err(ServerError::Setup)?;

    let outcome = guard::relay(client, &mut inner);
    let _ = inner.shutdown(std::net::Shutdown::Both);
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    match server_thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("vfio-user server thread: {e}"),
        Err(_) => tracing::error!("the vfio-user server thread panicked"),
    }
    match outcome {
        Ok(()) => {
            tracing::info!("client disconnected");
            Ok(())
        }
        Err(GuardError::Protocol(why)) => {
            tracing::warn!("{why}");
            let _ = client.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Err(GuardError::Io(e)) => Err(ServerError::Session(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn options(socket: &Path) -> Options {
        Options::try_parse_from(
            ["rnic-device-server", "--socket"]
                .iter()
                .map(|s| s.to_string())
                .chain([socket.display().to_string()]),
        )
        .unwrap()
    }

    #[test]
    fn a_stale_socket_is_replaced_but_a_live_one_or_a_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("rnic-server-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a dead server's socket file");
        let live = listen(&options(&path)).expect("the stale socket is replaced");
        let e = listen(&options(&path)).unwrap_err();
        assert!(matches!(e, ServerError::SocketExists(_)), "{e}");
        drop(live);
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = listen(&options(&file)).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        assert!(file.exists(), "a plain file is never removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
