//! COM1: a vm-superio 16550 UART at 0x3F8 whose output goes to stdout or a file,
//! flushed on every byte so a crash never loses guest output. Its interrupt line
//! is an eventfd that the monitor binds to GSI 4 (IRQ 4).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Result, VmmError};

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3F8;
/// Ports COM1 decodes (0x3F8..=0x3FF).
pub const COM1_PORT_COUNT: u16 = 8;
/// GSI of COM1's interrupt.
pub const COM1_GSI: u32 = 4;

/// An eventfd as a vm-superio interrupt trigger.
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Output sink that flushes after every write.
pub struct FlushingWriter(Box<dyn Write + Send>);

impl Write for FlushingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.0.flush()?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Opens the serial sink named by `--serial`: `stdout` or a file path (created or
/// truncated).
pub fn open_sink(spec: &str) -> Result<Box<dyn Write + Send>> {
    if spec == "stdout" {
        return Ok(Box::new(io::stdout()));
    }
    let f = File::create(Path::new(spec)).map_err(|source| VmmError::Serial {
        path: spec.into(),
        source,
    })?;
    Ok(Box::new(f))
}

/// COM1 as seen from the port bus.
pub struct Com1 {
    uart: Serial<EventFdTrigger, vm_superio::serial::NoEvents, FlushingWriter>,
    write_error: Option<String>,
}

impl Com1 {
    /// A UART writing to `out` and signalling `irq`.
    pub fn new(out: Box<dyn Write + Send>, irq: EventFd) -> Self {
        Com1 {
            uart: Serial::new(EventFdTrigger(irq), FlushingWriter(out)),
            write_error: None,
        }
    }

    /// Port read at `port` (0x3F8..=0x3FF; one byte, wider reads repeat the register).
    pub fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        let v = self.uart.read((port - COM1_BASE) as u8);
        data.fill(v);
    }

    /// Port write at `port` (0x3F8..=0x3FF; the low byte of wider writes). A
    /// failing output (disk full, closed pipe) is kept for [`Com1::take_error`].
    pub fn pio_write(&mut self, port: u16, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        if let Err(e) = self.uart.write((port - COM1_BASE) as u8, v) {
            if self.write_error.is_none() {
                self.write_error = Some(format!(
                    "serial output failed: {e:?}; free space or pass another --serial"
                ));
            }
        }
    }

    /// Writes `text` to the output as it is (a line console record: the bytes do not
    /// pass through the UART's registers), flushed. A failing output is kept for
    /// [`Com1::take_error`] as in [`Com1::pio_write`].
    pub fn write_text(&mut self, text: &[u8]) {
        if let Err(e) = self.uart.writer_mut().write_all(text) {
            if self.write_error.is_none() {
                self.write_error = Some(format!(
                    "serial output failed: {e}; free space or pass another --serial"
                ));
            }
        }
    }

    /// The first output failure since the last call, if any.
    pub fn take_error(&mut self) -> Option<String> {
        self.write_error.take()
    }

    /// Flushes the sink.
    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}

/// Serial sinks for tests: one that keeps what is written, one that is always full.
#[cfg(test)]
pub(crate) mod test_sinks {
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};

    /// Keeps every byte written; clones share the bytes.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Fails every write with ENOSPC, like `/dev/full`.
    pub(crate) struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_sinks::{Captured, Full};
    use super::*;

    #[test]
    fn a_failing_sink_is_reported_once_per_failure() {
        let mut c = Com1::new(Box::new(Full), EventFd::new(0).unwrap());
        assert_eq!(c.take_error(), None);
        c.pio_write(0x3F8, b"x");
        c.pio_write(0x3F8, b"y");
        let e = c.take_error().unwrap();
        assert!(e.contains("serial output failed"), "{e}");
        assert_eq!(c.take_error(), None);
    }

    #[test]
    fn bytes_written_to_thr_reach_the_sink() {
        let out = Captured::default();
        let mut c = Com1::new(Box::new(out.clone()), EventFd::new(0).unwrap());
        for b in b"hi\n" {
            c.pio_write(0x3F8, &[*b]);
        }
        assert_eq!(&*out.0.lock().unwrap(), b"hi\n");
        // Line status: transmitter empty.
        let mut lsr = [0u8];
        c.pio_read(0x3FD, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0);
    }
}
