//! UDP backend: one Ethernet frame per UDP datagram, between two fixed addresses.
//!
//! Symmetric like [`super::UnixWire`]: each end binds its own address and sends to
//! the peer's; start order does not matter. The socket is not `connect`ed, so ICMP
//! "port unreachable" answers from a peer that is not up yet never surface as
//! errors: such frames are simply lost. Datagrams from other source addresses are
//! discarded and counted. Note: this UDP tunnel is only the *cable*; the frames it
//! carries contain their own Ethernet/IPv4/UDP(4791) headers.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use super::{check_frame_len, received_frame, WireBackend, WireError, MAX_FRAME_LEN};

/// One end of a UDP wire.
#[derive(Debug)]
pub struct UdpWire {
    sock: UdpSocket,
    peer: SocketAddr,
    buf: Vec<u8>,
    foreign: u64,
}

impl UdpWire {
    /// Binds `local` (port 0 picks a free port; see [`UdpWire::local_addr`]) and
    /// sends to `peer`. Only datagrams whose source is exactly `peer` are
    /// accepted, so each side should bind a specific IP address (not `0.0.0.0`)
    /// and name that same address as the other side's peer.
    pub fn bind(local: SocketAddr, peer: SocketAddr) -> Result<Self, WireError> {
        let sock = UdpSocket::bind(local)
            .map_err(|e| WireError::io(format!("binding UDP wire socket {local}"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| WireError::io("making the UDP wire socket non-blocking", e))?;
        Ok(UdpWire {
            sock,
            peer,
            buf: vec![0; MAX_FRAME_LEN + 1],
            foreign: 0,
        })
    }

    /// The bound local address.
    pub fn local_addr(&self) -> Result<SocketAddr, WireError> {
        self.sock
            .local_addr()
            .map_err(|e| WireError::io("reading the UDP wire's local address", e))
    }

    /// The address frames are sent to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Changes the peer (used when one end learns the other's port after binding).
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
    }

    /// Datagrams received from addresses other than the peer's (discarded).
    pub fn foreign_frames(&self) -> u64 {
        self.foreign
    }
}

impl WireBackend for UdpWire {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        check_frame_len(frame)?;
        match self.sock.send_to(frame, self.peer) {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                ErrorKind::ConnectionRefused => WireError::PeerUnavailable {
                    peer: self.peer.to_string(),
                },
                ErrorKind::WouldBlock => WireError::Congested,
                _ => WireError::io(format!("sending a frame to {}", self.peer), e),
            }),
        }
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A stray ICMP error reported on the socket: not a frame, keep going.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(WireError::io("receiving on the UDP wire", e)),
            };
            if from != self.peer {
                if self.foreign == 0 {
                    tracing::warn!(%from, peer = %self.peer, "discarding a datagram that is not from the wire's peer");
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
