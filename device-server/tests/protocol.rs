//! Protocol-level tests of the device server with a raw vfio-user client over a
//! socket pair: the server runs in a thread of this process (`serve_stream`), the
//! test writes messages byte by byte as a client would, including broken ones.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use rnic_device::RnicConfig;
use rnic_device_server::backend::Session;
use rnic_device_server::guard::{Header, HEADER_SIZE};
use rnic_device_server::{server, ServerError};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

const VERSION: u16 = 1;
const DMA_MAP: u16 = 2;
const DEVICE_GET_INFO: u16 = 4;
const SET_IRQS: u16 = 8;
const REGION_READ: u16 = 9;
const REGION_WRITE: u16 = 10;
const CONFIG_REGION: u32 = 7;
const EINVAL: u32 = 22;
const ENOSYS: u32 = 38;
const FLAG_ERROR: u32 = 1 << 5;

struct Client {
    stream: UnixStream,
    next_id: u16,
}

struct Reply {
    header: Header,
    payload: Vec<u8>,
}

impl Reply {
    fn error(&self) -> Option<u32> {
        (self.header.flags & FLAG_ERROR != 0).then_some(self.header.error)
    }
}

fn start() -> (Client, JoinHandle<Result<(), ServerError>>) {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let handle = std::thread::spawn(move || {
        server::serve_stream(&mut theirs, Session::new(RnicConfig::default(), None))
    });
    let mut c = Client {
        stream: ours,
        next_id: 0,
    };
    let mut v = vec![0u8, 0, 0, 0];
    v.extend_from_slice(b"{\"capabilities\":{}}\0");
    let r = c.request(VERSION, &v, None);
    assert_eq!(r.error(), None, "version negotiation");
    (c, handle)
}

impl Client {
    fn send_raw(&mut self, command: u16, size: u32, payload: &[u8], fd: Option<&File>) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let h = Header {
            id,
            command,
            size,
            flags: 0,
            error: 0,
        };
        let mut buf = h.bytes().to_vec();
        buf.extend_from_slice(payload);
        match fd {
            Some(f) => {
                let n = self.stream.send_with_fd(&buf[..], f.as_raw_fd()).unwrap();
                self.stream.write_all(&buf[n..]).unwrap();
            }
            None => self.stream.write_all(&buf).unwrap(),
        }
        id
    }

    fn read_reply(&mut self) -> Option<Reply> {
        let mut hb = [0u8; HEADER_SIZE];
        if self.stream.read_exact(&mut hb).is_err() {
            return None;
        }
        let header = Header::parse(&hb);
        let mut payload = vec![0u8; header.size as usize - HEADER_SIZE];
        self.stream.read_exact(&mut payload).ok()?;
        Some(Reply { header, payload })
    }

    fn request(&mut self, command: u16, payload: &[u8], fd: Option<&File>) -> Reply {
        let id = self.send_raw(command, (HEADER_SIZE + payload.len()) as u32, payload, fd);
        let r = self.read_reply().expect("the server answers");
        assert_eq!((r.header.id, r.header.command), (id, command));
        r
    }

    fn dma_map(&mut self, address: u64, size: u64, fd: Option<&File>) -> Reply {
        let mut p = Vec::new();
        p.extend_from_slice(&32u32.to_le_bytes()); // argsz
        p.extend_from_slice(&3u32.to_le_bytes()); // READ | WRITE
        p.extend_from_slice(&0u64.to_le_bytes()); // file offset
        p.extend_from_slice(&address.to_le_bytes());
        p.extend_from_slice(&size.to_le_bytes());
        self.request(DMA_MAP, &p, fd)
    }

    fn region_access(
        &mut self,
        command: u16,
        region: u32,
        offset: u64,
        count: u32,
        data: &[u8],
    ) -> Reply {
        let mut p = Vec::new();
        p.extend_from_slice(&offset.to_le_bytes());
        p.extend_from_slice(&region.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
        p.extend_from_slice(data);
        self.request(command, &p, None)
    }

    fn config_dword(&mut self, offset: u64) -> u32 {
        let r = self.region_access(REGION_READ, CONFIG_REGION, offset, 4, &[]);
        assert_eq!(r.error(), None);
        u32::from_le_bytes(r.payload[16..20].try_into().unwrap())
    }
}

fn memfd(len: u64) -> File {
    // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"rnic-protocol-test".as_ptr(), 0) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor nothing else owns.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(len).unwrap();
    f
}

fn finish(c: Client, handle: JoinHandle<Result<(), ServerError>>) {
    drop(c);
    let result = handle.join().expect("the server thread never panics");
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn dma_map_without_fd_is_refused_and_with_a_memfd_accepted() {
    let (mut c, h) = start();
    let r = c.dma_map(0, 0x10_0000, None);
    assert_eq!(
        r.error(),
        Some(EINVAL),
        "no fd: an error reply with a real errno"
    );
    let ram = memfd(0x10_0000);
    assert_eq!(c.dma_map(0, 0x10_0000, Some(&ram)).error(), None);
    assert_eq!(c.config_dword(0), 0x0001_7E57, "vendor/device of the RNIC");
    finish(c, h);
}

#[test]
fn malformed_requests_get_error_replies_and_the_stream_stays_in_step() {
    let (mut c, h) = start();
    // Unknown and unsupported commands (payload consumed, stream in step).
    assert_eq!(c.request(99, &[1, 2, 3], None).error(), Some(ENOSYS));
    assert_eq!(
        c.request(11, &[0; 24], None).error(),
        Some(ENOSYS),
        "DMA_READ"
    );
    // Too short for the command's fixed part.
    assert_eq!(
        c.request(DEVICE_GET_INFO, &[0; 4], None).error(),
        Some(EINVAL)
    );
    // Version without its terminating NUL (would panic the crate's server).
    assert_eq!(
        c.request(VERSION, &[0, 0, 0, 0, b'{'], None).error(),
        Some(EINVAL)
    );
    // Region accesses: huge count, data length mismatch, bad region, out of range.
    let huge = c.region_access(REGION_READ, CONFIG_REGION, 0, u32::MAX, &[]);
    assert_eq!(huge.error(), Some(EINVAL));
    let short = c.region_access(REGION_WRITE, CONFIG_REGION, 0, 8, &[1, 2]);
    assert_eq!(short.error(), Some(EINVAL));
    assert_eq!(
        c.region_access(REGION_READ, 5, 0, 4, &[]).error(),
        Some(EINVAL)
    );
    let beyond = c.region_access(REGION_READ, CONFIG_REGION, 4094, 4, &[]);
    assert_eq!(beyond.error(), Some(EINVAL));
    let wrap = c.region_access(REGION_READ, 0, u64::MAX - 1, 4, &[]);
    assert_eq!(wrap.error(), Some(EINVAL));
    // SET_IRQS beyond the 16 MSI-X vectors, and on an index without vectors.
    let irqs = |index: u32, start: u32, count: u32| {
        let mut p = Vec::new();
        for v in [
            20u32, 0x24, /* TRIGGER | EVENTFD */
            index, start, count,
        ] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    assert_eq!(
        c.request(SET_IRQS, &irqs(2, 15, 2), None).error(),
        Some(EINVAL)
    );
    assert_eq!(
        c.request(SET_IRQS, &irqs(2, u32::MAX, 2), None).error(),
        Some(EINVAL)
    );
    assert_eq!(
        c.request(SET_IRQS, &irqs(0, 0, 1), None).error(),
        Some(EINVAL)
    );
    assert_eq!(
        c.request(SET_IRQS, &irqs(9, 0, 1), None).error(),
        Some(EINVAL)
    );
    // After all that, a good request still works.
    assert_eq!(c.config_dword(0), 0x0001_7E57);
    finish(c, h);
}

#[test]
fn an_impossible_message_size_disconnects_without_a_panic() {
    for size in [3u32, 0x7FFF_FFFF] {
        let (mut c, h) = start();
        c.send_raw(DEVICE_GET_INFO, size, &[], None);
        if let Some(r) = c.read_reply() {
            assert!(r.error().is_some());
        }
        let mut rest = [0u8; 1];
        assert_eq!(
            c.stream.read(&mut rest).unwrap_or(0),
            0,
            "the server hung up"
        );
        let result = h.join().expect("the server thread never panics");
        assert!(
            result.is_ok(),
            "a protocol violation ends the session cleanly: {result:?}"
        );
    }
}

#[test]
fn a_reply_sent_as_a_request_disconnects() {
    let (mut c, h) = start();
    let bad = Header {
        id: 1,
        command: DEVICE_GET_INFO,
        size: HEADER_SIZE as u32,
        flags: 1, // a reply
        error: 0,
    };
    c.stream.write_all(&bad.bytes()).unwrap();
    let r = c.read_reply().expect("an error reply before the hang-up");
    assert_eq!(r.error(), Some(EINVAL));
    assert!(c.read_reply().is_none());
    assert!(h.join().unwrap().is_ok());
}
