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

/// A bound, listening server that has not accepted its client yet.
#[derive(Debug)]
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
    session: Session,
}

/// Binds `options.socket` and prepares the device's session (wire opened).
pub fn listen(options: &Options) -> Result<Listening, ServerError> {
    let config = options.device_config()?;
    let wire = options.open_wire()?;
    let path = options.socket.clone();
    if path.exists() {
        return Err(ServerError::SocketExists(path));
    }
    let listener = UnixListener::bind(&path).map_err(|source| ServerError::Listen {
        path: path.clone(),
        source,
    })?;
    Ok(Listening {
        listener,
        path,
        session: Session::new(config, wire),
    })
}

impl Listening {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one client and serves it until it disconnects.
    pub fn serve_one(self) -> Result<(), ServerError> {
        let _socket_file = SocketFile(self.path.clone());
        let (mut client, _) = self
            .listener
            .accept()
            .map_err(|source| ServerError::Accept {
                path: self.path.clone(),
                source,
            })?;
        tracing::info!("client connected on {}", self.path.display());
        serve_stream(&mut client, self.session)
    }
}

/// Serves one already connected client `stream` with a device in `session`.
pub fn serve_stream(client: &mut UnixStream, session: Session) -> Result<(), ServerError> {
    // The crate's server listens on a private abstract socket that only the guard
    // connects to.
    let name = format!("rnic-device-server-{}-{:p}", std::process::id(), client);
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(ServerError::Setup)?;
    let inner_listener = UnixListener::bind_addr(&addr).map_err(ServerError::Setup)?;
    let server =
        Server::from_owned_fd(inner_listener.into(), true, server_irqs(), server_regions());
    let backend = Backend::new(session);

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
