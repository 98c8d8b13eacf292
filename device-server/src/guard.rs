//! The message guard: a validating relay between the client's socket and the
//! `vfio_user` crate's [`vfio_user::Server`].
//!
//! The crate's server trusts the stream more than a device may: a Version message
//! shorter than its fixed part or without a terminating NUL panics it, a region
//! access count of 4 GiB makes it allocate 4 GiB, and a message longer than its
//! command's fixed part leaves the rest in the stream, where it is read as the next
//! header. The guard therefore reads each whole message from the client first (size
//! bounded by [`MAX_MESSAGE`]), checks it against the protocol, and forwards only
//! well-formed messages, trimmed to exactly the bytes the crate reads, over a private
//! socket pair. Everything else is answered by the guard itself with an error reply
//! (the message is consumed, the stream stays in step) or, when the stream cannot be
//! trusted any more (impossible size, not a request), by an error reply and a
//! disconnect.
//!
//! Replies: the crate's error replies carry errno 0 for backend errors, which QEMU
//! reads as success; the guard turns them into `EINVAL`. Replies to requests sent
//! with the NO_REPLY flag are dropped (the guard always asks the crate for one, so
//! both sides stay in step).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::backend::MAX_ACCESS;

/// Size of the vfio-user message header in bytes.
pub const HEADER_SIZE: usize = 16;
/// Largest message accepted from the client: a region write of [`MAX_ACCESS`] bytes
/// and its fixed part, or a Version message with a generous capabilities string.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Header flags: message type mask, reply type, NO_REPLY and ERROR bits.
const TYPE_MASK: u32 = 0xF;
const TYPE_COMMAND: u32 = 0;
const TYPE_REPLY: u32 = 1;
const FLAG_NO_REPLY: u32 = 1 << 4;
const FLAG_ERROR: u32 = 1 << 5;

/// vfio-user command numbers.
mod cmd {
    pub const VERSION: u16 = 1;
    pub const DMA_MAP: u16 = 2;
    pub const DMA_UNMAP: u16 = 3;
    pub const DEVICE_GET_INFO: u16 = 4;
    pub const DEVICE_GET_REGION_INFO: u16 = 5;
    pub const DEVICE_GET_IRQ_INFO: u16 = 7;
    pub const DEVICE_SET_IRQS: u16 = 8;
    pub const REGION_READ: u16 = 9;
    pub const REGION_WRITE: u16 = 10;
    pub const DEVICE_RESET: u16 = 13;
}

/// A vfio-user message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message ID, echoed in the reply.
    pub id: u16,
    /// Command number.
    pub command: u16,
    /// Size of the whole message including this header, in bytes.
    pub size: u32,
    /// Type and flag bits.
    pub flags: u32,
    /// Error number of an error reply.
    pub error: u32,
}

impl Header {
    /// Parses the 16 header bytes.
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Header {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: u32_at(4),
            flags: u32_at(8),
            error: u32_at(12),
        }
    }

    /// The 16 header bytes.
    pub fn bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    /// The error reply to this request with errno `errno`.
    pub fn error_reply(&self, errno: i32) -> Header {
        Header {
            id: self.id,
            command: self.command,
            size: HEADER_SIZE as u32,
            flags: TYPE_REPLY | FLAG_ERROR,
            error: errno as u32,
        }
    }
}

/// One message read from a socket.
#[derive(Debug)]
struct Message {
    header: Header,
    payload: Vec<u8>,
    fd: Option<File>,
}

/// What the guard decided about one client message.
#[derive(Debug)]
enum Verdict {
    /// Forward the first `len` payload bytes (and the fd, if any).
    Forward { len: usize, keep_fd: bool },
    /// Answer with an error reply; the stream stays usable.
    Refuse { errno: i32, why: String },
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Reading from or writing to a socket failed.
    #[error("socket I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The client sent something after which its stream cannot be trusted.
    #[error("the client broke the protocol ({0}); disconnected it")]
    Protocol(String),
}

fn read_u32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Checks one complete request against the protocol.
fn judge(m: &Message) -> Verdict {
    let refuse = |errno: i32, why: String| Verdict::Refuse { errno, why };
    let fixed = |len: usize, fds_ok: bool| -> Verdict {
        if m.payload.len() < len {
            return refuse(
                libc::EINVAL,
                format!(
                    "command {} needs {len} payload bytes, got {}",
                    m.header.command,
                    m.payload.len()
                ),
            );
        }
        if m.fd.is_some() && !fds_ok {
            return refuse(
                libc::EINVAL,
                format!("command {} takes no file descriptor", m.header.command),
            );
        }
        Verdict::Forward {
            len,
            keep_fd: fds_ok,
        }
    };
    let p = &m.payload;
    match m.header.command {
        cmd::VERSION => {
            // major, minor, then a NUL-terminated JSON string without inner NULs.
            let ok = p.len() > 4 && p.last() == Some(&0) && !p[4..p.len() - 1].contains(&0);
            if !ok || m.fd.is_some() {
                return refuse(
                    libc::EINVAL,
                    "Version needs a NUL-terminated capabilities string".into(),
                );
            }
            Verdict::Forward {
                len: p.len(),
                keep_fd: false,
            }
        }
        cmd::DMA_MAP => fixed(32, true),
        cmd::DMA_UNMAP => fixed(24, false),
        cmd::DEVICE_GET_INFO | cmd::DEVICE_GET_IRQ_INFO => fixed(16, false),
        cmd::DEVICE_GET_REGION_INFO => fixed(32, false),
        cmd::DEVICE_SET_IRQS => fixed(20, true),
        cmd::REGION_READ | cmd::REGION_WRITE => {
            if p.len() < 16 {
                return fixed(16, false);
            }
            let count = read_u32(p, 12) as usize;
            if count > MAX_ACCESS {
                return refuse(
                    libc::EINVAL,
                    format!("region access of {count} bytes (at most {MAX_ACCESS})"),
                );
            }
            if m.header.command == cmd::REGION_WRITE {
                if p.len() != 16 + count {
                    return refuse(
                        libc::EINVAL,
                        format!(
                            "region write of {count} bytes carries {} data bytes",
                            p.len() - 16
                        ),
                    );
                }
                return fixed(16 + count, false);
            }
            fixed(16, false)
        }
        cmd::DEVICE_RESET => fixed(0, false),
        other => refuse(
            libc::ENOSYS,
            format!("command {other} is not supported by this server"),
        ),
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream before the
/// first byte.
fn read_full(s: &mut UnixStream, buf: &mut [u8], mut got: usize) -> io::Result<bool> {
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "message cut short",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads one message (header, payload up to `limit` bytes in all, at most one fd).
/// `Ok(None)` on a clean end of stream.
fn read_message(s: &mut UnixStream, limit: usize) -> Result<Option<Message>, GuardError> {
    let mut hb = [0u8; HEADER_SIZE];
    let (n, fd) = s
        .recv_with_fd(&mut hb[..])
        .map_err(|e| GuardError::Io(io::Error::from_raw_os_error(e.errno())))?;
    if n == 0 {
        return Ok(None);
    }
    if !read_full(s, &mut hb, n)? {
        return Ok(None);
    }
    let header = Header::parse(&hb);
    let size = header.size as usize;
    if !(HEADER_SIZE..=limit).contains(&size) {
        return Err(GuardError::Protocol(format!(
            "message size {size} outside {HEADER_SIZE}..={limit}"
        )));
    }
    let mut payload = vec![0u8; size - HEADER_SIZE];
    if !payload.is_empty() && !read_full(s, &mut payload, 0)? {
        return Err(GuardError::Protocol("message cut short".into()));
    }
    Ok(Some(Message {
        header,
        payload,
        fd,
    }))
}

fn send(s: &mut UnixStream, header: &Header, payload: &[u8], fd: Option<&File>) -> io::Result<()> {
    let mut buf = header.bytes().to_vec();
    buf.extend_from_slice(payload);
    match fd {
        Some(fd) => {
            let sent = s
                .send_with_fd(&buf[..], fd.as_raw_fd())
                .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
            s.write_all(&buf[sent..])
        }
        None => s.write_all(&buf),
    }
}

/// Relays requests from `client` to `inner` (the crate's server) and replies back,
/// until the client disconnects (`Ok`) or breaks the protocol (`Err`, after an error
/// reply where one is possible).
pub fn relay(client: &mut UnixStream, inner: &mut UnixStream) -> Result<(), GuardError> {
    loop {
        let m = match read_message(client, MAX_MESSAGE) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(GuardError::Protocol(why)) => return Err(GuardError::Protocol(why)),
            Err(e) => return Err(e),
        };
        let h = m.header;
        if h.flags & TYPE_MASK != TYPE_COMMAND || h.flags & FLAG_ERROR != 0 {
            let _ = send(client, &h.error_reply(libc::EINVAL), &[], None);
            return Err(GuardError::Protocol(format!(
                "message {} (command {}) is not a request (flags {:#x})",
                h.id, h.command, h.flags
            )));
        }
        let wants_reply = h.flags & FLAG_NO_REPLY == 0;
        match judge(&m) {
            Verdict::Refuse { errno, why } => {
                tracing::warn!("refused message {} (command {}): {why}", h.id, h.command);
                if wants_reply {
                    send(client, &h.error_reply(errno), &[], None)?;
                }
            }
            Verdict::Forward { len, keep_fd } => {
                let fwd = Header {
                    size: (HEADER_SIZE + len) as u32,
                    flags: TYPE_COMMAND,
                    error: 0,
                    ..h
                };
                let fd = if keep_fd { m.fd.as_ref() } else { None };
                send(inner, &fwd, &m.payload[..len], fd)?;
                let Some(mut reply) = read_message(inner, usize::MAX >> 1)? else {
                    return Err(GuardError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the vfio-user server thread stopped",
                    )));
                };
                if reply.header.flags & FLAG_ERROR != 0 && reply.header.error == 0 {
                    reply.header.error = libc::EINVAL as u32;
                }
                if wants_reply {
                    send(client, &reply.header, &reply.payload, reply.fd.as_ref())?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(command: u16, payload: Vec<u8>) -> Message {
        Message {
            header: Header {
                id: 1,
                command,
                size: (HEADER_SIZE + payload.len()) as u32,
                flags: 0,
                error: 0,
            },
            payload,
            fd: None,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            id: 7,
            command: 9,
            size: 32,
            flags: FLAG_NO_REPLY,
            error: 0,
        };
        assert_eq!(Header::parse(&h.bytes()), h);
        let e = h.error_reply(libc::EINVAL);
        assert_eq!(
            (e.id, e.command, e.size, e.flags),
            (7, 9, 16, TYPE_REPLY | FLAG_ERROR)
        );
    }

    #[test]
    fn judge_trims_checks_sizes_and_refuses_the_unsupported() {
        let forward = |v: Verdict| match v {
            Verdict::Forward { len, .. } => Some(len),
            Verdict::Refuse { .. } => None,
        };
        assert_eq!(
            forward(judge(&msg(cmd::DEVICE_GET_INFO, vec![0; 40]))),
            Some(16)
        );
        assert_eq!(forward(judge(&msg(cmd::DEVICE_GET_INFO, vec![0; 4]))), None);
        let mut version = vec![0u8; 4];
        version.extend_from_slice(b"{}\0");
        assert!(forward(judge(&msg(cmd::VERSION, version))).is_some());
        assert_eq!(
            forward(judge(&msg(cmd::VERSION, vec![0, 0, 0, 0, b'{']))),
            None
        );
        assert_eq!(forward(judge(&msg(cmd::VERSION, vec![0; 3]))), None);
        let mut read = vec![0u8; 16];
        read[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(forward(judge(&msg(cmd::REGION_READ, read))), None);
        let mut write = vec![0u8; 16];
        write[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(forward(judge(&msg(cmd::REGION_WRITE, write.clone()))), None);
        write.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(forward(judge(&msg(cmd::REGION_WRITE, write))), Some(20));
        for unsupported in [0u16, 6, 11, 12, 14, 99] {
            assert!(matches!(
                judge(&msg(unsupported, vec![])),
                Verdict::Refuse {
                    errno: libc::ENOSYS,
                    ..
                }
            ));
        }
    }
}
