//! [`CapturingWire`]: records every frame crossing a backend into a pcap file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pcap::{PcapError, PcapWriter};
use super::{WireBackend, WireError};

/// Source of capture timestamps.
pub type CaptureClock = Box<dyn FnMut() -> Duration + Send>;

/// Wraps a backend and writes every frame it sends successfully and every frame
/// it receives to one pcap stream, in the order they happen. Classic pcap has no
/// direction flag: tell directions apart by the Ethernet/IP addresses.
///
/// A capture write failure never disturbs the wire: the first error is logged,
/// kept in [`CapturingWire::capture_error`], and capturing stops.
pub struct CapturingWire<B: WireBackend, W: Write + Send = BufWriter<File>> {
    inner: B,
    pcap: Option<PcapWriter<W>>,
    clock: CaptureClock,
    error: Option<PcapError>,
    frames: u64,
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl<B: WireBackend> CapturingWire<B, BufWriter<File>> {
    /// Captures into a new file at `path` (created or truncated).
    pub fn create(inner: B, path: impl AsRef<Path>) -> Result<Self, PcapError> {
        Ok(Self::new(inner, PcapWriter::create(path)?))
    }
}

impl<B: WireBackend, W: Write + Send> CapturingWire<B, W> {
    /// Captures into `pcap`, stamping frames with the wall clock.
    pub fn new(inner: B, pcap: PcapWriter<W>) -> Self {
        CapturingWire {
            inner,
            pcap: Some(pcap),
            clock: Box::new(wall_clock),
            error: None,
            frames: 0,
        }
    }

    /// Uses `clock` for timestamps instead (e.g. device time, for reproducible
    /// captures).
    pub fn with_clock(mut self, clock: CaptureClock) -> Self {
        self.clock = clock;
        self
    }

    /// The first capture write error, if capturing stopped because of one.
    pub fn capture_error(&self) -> Option<&PcapError> {
        self.error.as_ref()
    }

    /// Frames written to the capture so far.
    pub fn captured_frames(&self) -> u64 {
        self.frames
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend, writable.
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Stops capturing and returns the backend and the pcap writer (flushed).
    pub fn into_parts(mut self) -> (B, Option<PcapWriter<W>>) {
        if let Some(p) = self.pcap.as_mut() {
            let _ = p.flush();
        }
        (self.inner, self.pcap)
    }

    fn record(&mut self, frame: &[u8]) {
        let ts = (self.clock)();
        if let Some(p) = self.pcap.as_mut() {
            match p.write_frame(ts, frame) {
                Ok(()) => self.frames += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "wire capture failed; capturing stops, the wire keeps running");
                    self.error = Some(e);
                    self.pcap = None;
                }
            }
        }
    }
}

impl<B: WireBackend, W: Write + Send> WireBackend for CapturingWire<B, W> {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.inner.send(frame)?;
        self.record(frame);
        Ok(())
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let f = self.inner.try_recv()?;
        if let Some(f) = &f {
            self.record(f);
        }
        Ok(f)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }
}
