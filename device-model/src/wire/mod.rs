//! The wire between devices: how Ethernet frames (RoCEv2 or plain) leave one
//! emulated RNIC and reach another.
//!
//! A [`WireBackend`] moves whole frames, one frame per message, never splitting or
//! merging them. Backends:
//!
//! | backend | use |
//! | --- | --- |
//! | [`in_process_pair`] | two devices in one process (tests) |
//! | [`LoopbackWire`] | one device talking to itself |
//! | [`UnixWire`] | two monitors on one host (Unix datagram sockets) |
//! | [`UdpWire`] | two monitors anywhere (one frame per UDP datagram) |
//!
//! Wrappers stack on any backend: [`CapturingWire`] records every frame into a
//! pcap file ([`pcap`]), [`FaultyWire`] applies fault-engine answers at the
//! `WireTx`/`WireRx` fault sites. The usual stack is
//! `FaultyWire<CapturingWire<B>>`, so the capture shows what really crossed the
//! wire (after transmit faults, before receive faults).
//!
//! This module owns the transport of frames only; frame contents belong to
//! [`crate::roce`] and to the device. The format and the way two monitors connect
//! are documented in `docs/device-spec.md` §11 and Appendix B.

mod capture;
mod faulty;
pub mod pcap;
mod udp;
mod unix;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tshark_tests;

pub use capture::CapturingWire;
pub use faulty::{corrupt_frame, FaultCounts, FaultyWire, WireClock, WireDecider, WireFaultStats};
pub use udp::UdpWire;
pub use unix::UnixWire;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};

use thiserror::Error;

/// Largest frame a wire carries (Ethernet header + 9000-byte jumbo payload + slack).
pub const MAX_FRAME_LEN: usize = 9216;
/// Smallest frame a wire carries: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;
/// Frames a receiving end queues before further frames are lost (in-process and
/// loopback backends; socket backends use the kernel's buffers).
pub const QUEUE_FRAMES: usize = 1024;

/// Why a wire operation failed.
///
/// [`WireError::is_transient`] errors lose one frame and leave the wire usable
/// (the device counts a lost frame and carries on); the others mean the wire is
/// broken and the device should treat the link as down.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the wire's maximum of {max} bytes; the frame was not sent (lower the MTU)")]
    /// The frame is larger than the backend carries.
    FrameTooLarge {
        /// Frame length in bytes.
        len: usize,
        /// Largest frame the backend carries.
        max: usize,
    },
    #[error("frame of {len} bytes is shorter than an Ethernet header ({min} bytes); the frame was not sent")]
    /// The frame is shorter than an Ethernet header.
    FrameTooShort {
        /// Frame length in bytes.
        len: usize,
        /// Smallest frame accepted.
        min: usize,
    },
    #[error("nobody is listening at the other end of the wire ({peer}); the frame was lost (start the peer monitor or check the wire address)")]
    /// The peer is gone (transient until it comes back).
    PeerUnavailable {
        /// The peer, as an address or name.
        peer: String,
    },
    #[error("the wire is congested (the receiver's queue is full); the frame was lost")]
    /// The backend cannot take the frame now (transient).
    Congested,
    #[error("the other end of the wire is gone ({0}); the link is down")]
    /// The wire is broken (reason given); the link goes down.
    Disconnected(String),
    #[error("{context}: {source}")]
    /// A socket operation failed.
    Io {
        /// What the backend was doing.
        context: String,
        #[source]
        /// The operating-system error.
        source: io::Error,
    },
}

impl WireError {
    /// True if only one frame was lost and the wire can still be used.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WireError::FrameTooLarge { .. }
                | WireError::FrameTooShort { .. }
                | WireError::PeerUnavailable { .. }
                | WireError::Congested
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        WireError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Checks a frame's length against [`MIN_FRAME_LEN`] and [`MAX_FRAME_LEN`].
pub fn check_frame_len(frame: &[u8]) -> Result<(), WireError> {
    if frame.len() > MAX_FRAME_LEN {
        Err(WireError::FrameTooLarge {
            len: frame.len(),
            max: MAX_FRAME_LEN,
        })
    } else if frame.len() < MIN_FRAME_LEN {
        Err(WireError::FrameTooShort {
            len: frame.len(),
            min: MIN_FRAME_LEN,
        })
    } else {
        Ok(())
    }
}

/// The frame a socket backend received as the first `n` bytes of `buf` (a buffer
/// of [`MAX_FRAME_LEN`]` + 1` bytes, so a longer datagram shows as too large).
pub(crate) fn received_frame(buf: &[u8], n: usize) -> Result<Vec<u8>, WireError> {
    if n > MAX_FRAME_LEN {
        return Err(WireError::FrameTooLarge {
            len: n,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(buf[..n].to_vec())
}

/// One end of a wire. Frames are whole Ethernet frames without FCS.
pub trait WireBackend: Send {
    /// Puts one frame on the wire. Never blocks. An error means the frame was not
    /// delivered; see [`WireError::is_transient`].
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError>;

    /// Takes the next frame that arrived, or `None` if none is waiting. Never blocks.
    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError>;

    /// A file descriptor that becomes readable when a frame may be waiting, for a
    /// monitor's poll loop. After it fires, call [`WireBackend::try_recv`] until it
    /// returns `None`. Backends without one (in-process) return `None`: poll them.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

impl<B: WireBackend + ?Sized> WireBackend for Box<B> {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        (**self).send(frame)
    }
    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        (**self).try_recv()
    }
    fn raw_fd(&self) -> Option<RawFd> {
        (**self).raw_fd()
    }
}

/// One end of an in-process wire (see [`in_process_pair`]).
#[derive(Debug)]
pub struct InProcessWire {
    tx: SyncSender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

/// Two connected wire ends: what one sends, the other receives, in order. Each
/// direction queues up to [`QUEUE_FRAMES`] frames; beyond that sends fail with
/// [`WireError::Congested`]. Dropping one end makes the other report
/// [`WireError::Disconnected`] once the frames already queued are read.
pub fn in_process_pair() -> (InProcessWire, InProcessWire) {
    let (a_tx, b_rx) = mpsc::sync_channel(QUEUE_FRAMES);
    let (b_tx, a_rx) = mpsc::sync_channel(QUEUE_FRAMES);
    (
        InProcessWire { tx: a_tx, rx: a_rx },
        InProcessWire { tx: b_tx, rx: b_rx },
    )
}

impl WireBackend for InProcessWire {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        check_frame_len(frame)?;
        match self.tx.try_send(frame.to_vec()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(WireError::Congested),
            Err(TrySendError::Disconnected(_)) => {
                Err(WireError::Disconnected("in-process peer dropped".into()))
            }
        }
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        match self.rx.try_recv() {
            Ok(f) => Ok(Some(f)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                Err(WireError::Disconnected("in-process peer dropped".into()))
            }
        }
    }
}

/// A wire whose far end is its own near end: every frame sent is received back,
/// in order (up to [`QUEUE_FRAMES`] waiting frames).
#[derive(Debug, Default)]
pub struct LoopbackWire {
    queue: VecDeque<Vec<u8>>,
}

impl LoopbackWire {
    /// A wire that hands every frame sent back to the receiver.
    pub fn new() -> Self {
        Self::default()
    }
}

impl WireBackend for LoopbackWire {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        check_frame_len(frame)?;
        if self.queue.len() >= QUEUE_FRAMES {
            return Err(WireError::Congested);
        }
        self.queue.push_back(frame.to_vec());
        Ok(())
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        Ok(self.queue.pop_front())
    }
}
