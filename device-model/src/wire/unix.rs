//! Unix datagram socket backend: two monitors on one host.
//!
//! The design is symmetric, so start order does not matter: each end binds its
//! *own* socket path and sends each frame as one datagram to the *peer's* path.
//! Frames sent before the peer has bound are lost ([`WireError::PeerUnavailable`],
//! a transient error), exactly like frames sent into an unplugged cable. Datagrams
//! from any path other than the peer's are discarded (counted in
//! [`UnixWire::foreign_frames`]). Both ends must spell the paths identically
//! (use absolute paths).

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::{check_frame_len, received_frame, WireBackend, WireError, MAX_FRAME_LEN};

/// One end of a Unix-datagram wire.
#[derive(Debug)]
pub struct UnixWire {
    sock: UnixDatagram,
    local: PathBuf,
    peer: PathBuf,
    buf: Vec<u8>,
    foreign: u64,
}

impl UnixWire {
    /// Binds `local` and sends to `peer`. A stale socket file at `local` (left by a
    /// previous run) is removed first; any other kind of file there is an error.
    /// The socket file is removed again when the wire is dropped.
    pub fn bind(local: impl AsRef<Path>, peer: impl AsRef<Path>) -> Result<Self, WireError> {
        let local = local.as_ref().to_path_buf();
        let peer = peer.as_ref().to_path_buf();
        match std::fs::symlink_metadata(&local) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(&local).map_err(|e| {
                    WireError::io(format!("removing stale wire socket {}", local.display()), e)
                })?;
            }
            Ok(_) => {
                return Err(WireError::io(
                    format!(
                        "wire socket path {} exists and is not a socket; choose another path",
                        local.display()
                    ),
                    std::io::Error::from(ErrorKind::AlreadyExists),
                ))
            }
            Err(_) => {}
        }
        let sock = UnixDatagram::bind(&local)
            .map_err(|e| WireError::io(format!("binding wire socket {}", local.display()), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| WireError::io("making the wire socket non-blocking", e))?;
        Ok(UnixWire {
            sock,
            local,
            peer,
            buf: vec![0; MAX_FRAME_LEN + 1],
            foreign: 0,
        })
    }

    /// The path this end is bound to.
    pub fn local_path(&self) -> &Path {
        &self.local
    }

    /// The path frames are sent to.
    pub fn peer_path(&self) -> &Path {
        &self.peer
    }

    /// Datagrams received from paths other than the peer's (discarded).
    pub fn foreign_frames(&self) -> u64 {
        self.foreign
    }
}

impl WireBackend for UnixWire {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        check_frame_len(frame)?;
        match self.sock.send_to(frame, &self.peer) {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => WireError::PeerUnavailable {
                    peer: self.peer.display().to_string(),
                },
                ErrorKind::WouldBlock => WireError::Congested,
                _ => WireError::io(format!("sending a frame to {}", self.peer.display()), e),
            }),
        }
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(WireError::io(
                        format!("receiving on wire socket {}", self.local.display()),
                        e,
                    ))
                }
            };
            if from.as_pathname() != Some(self.peer.as_path()) {
                if self.foreign == 0 {
                    tracing::warn!(
                        local = %self.local.display(),
                        from = ?from,
                        "discarding a frame from a socket that is not the wire's peer"
                    );
                }
                self.foreign += 1;
                continue;
            }
            return received_frame(&self.buf, n).map(Some);
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }
}

impl Drop for UnixWire {
    fn drop(&mut self) {
        // Best effort: a missing file is fine.
        let _ = std::fs::remove_file(&self.local);
    }
}
