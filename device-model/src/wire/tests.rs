//! Backend and capture tests.

use super::pcap::{self, PcapWriter};
use super::*;
use crate::roce::{self, opcode, tests::sample_packet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rnic-wire-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn roce_frame(op: u8, psn: u32, qp: u32) -> Vec<u8> {
    let mut p = sample_packet(op, 16);
    p.bth.psn = psn;
    p.bth.dest_qp = qp;
    roce::encode(&p).unwrap()
}

/// Receives one frame, waiting up to a second (socket delivery is asynchronous
/// in principle, though immediate on Linux loopback).
fn recv_wait<B: WireBackend>(w: &mut B) -> Vec<u8> {
    let start = Instant::now();
    loop {
        if let Some(f) = w.try_recv().unwrap() {
            return f;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "no frame arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn exchange<A: WireBackend, B: WireBackend>(a: &mut A, b: &mut B) {
    for psn in 0..5 {
        a.send(&roce_frame(opcode::SEND_ONLY, psn, 1)).unwrap();
    }
    for psn in 0..5 {
        assert_eq!(recv_wait(b), roce_frame(opcode::SEND_ONLY, psn, 1));
    }
    b.send(&roce_frame(opcode::ACKNOWLEDGE, 4, 2)).unwrap();
    assert_eq!(recv_wait(a), roce_frame(opcode::ACKNOWLEDGE, 4, 2));
    assert_eq!(a.try_recv().unwrap(), None);
    assert_eq!(b.try_recv().unwrap(), None);
}

fn refuses_bad_sizes<B: WireBackend>(w: &mut B) {
    let e = w.send(&vec![0; MAX_FRAME_LEN + 1]).unwrap_err();
    assert!(matches!(e, WireError::FrameTooLarge { len, .. } if len == MAX_FRAME_LEN + 1));
    assert!(e.is_transient());
    assert!(e.to_string().contains("lower the MTU"));
    assert!(matches!(
        w.send(&[0; 13]),
        Err(WireError::FrameTooShort { .. })
    ));
    // The largest frame passes.
    w.send(&vec![0xAB; MAX_FRAME_LEN]).unwrap();
}

#[test]
fn in_process_pair_carries_frames_both_ways() {
    let (mut a, mut b) = in_process_pair();
    exchange(&mut a, &mut b);
    refuses_bad_sizes(&mut a);
    assert_eq!(recv_wait(&mut b).len(), MAX_FRAME_LEN);
    assert_eq!(a.raw_fd(), None);
}

#[test]
fn in_process_pair_reports_congestion_and_disconnect() {
    let (mut a, b) = in_process_pair();
    let f = roce_frame(opcode::SEND_ONLY, 0, 1);
    for _ in 0..QUEUE_FRAMES {
        a.send(&f).unwrap();
    }
    let e = a.send(&f).unwrap_err();
    assert!(matches!(e, WireError::Congested) && e.is_transient());
    drop(b);
    let e = a.send(&f).unwrap_err();
    assert!(matches!(e, WireError::Disconnected(_)) && !e.is_transient());

    let (a, mut b) = in_process_pair();
    let mut a = a;
    a.send(&f).unwrap();
    drop(a);
    assert_eq!(b.try_recv().unwrap(), Some(f));
    assert!(matches!(b.try_recv(), Err(WireError::Disconnected(_))));
}

#[test]
fn boxed_backends_work() {
    let (a, b) = in_process_pair();
    let mut a: Box<dyn WireBackend> = Box::new(a);
    let mut b: Box<dyn WireBackend> = Box::new(b);
    exchange(&mut a, &mut b);
}

#[test]
fn loopback_returns_what_it_sends() {
    let mut w = LoopbackWire::new();
    for psn in 0..3 {
        w.send(&roce_frame(opcode::SEND_ONLY, psn, 1)).unwrap();
    }
    for psn in 0..3 {
        assert_eq!(
            w.try_recv().unwrap(),
            Some(roce_frame(opcode::SEND_ONLY, psn, 1))
        );
    }
    assert_eq!(w.try_recv().unwrap(), None);
    refuses_bad_sizes(&mut w);
    for _ in 1..QUEUE_FRAMES {
        w.send(&[0; 60]).unwrap();
    }
    assert!(matches!(w.send(&[0; 60]), Err(WireError::Congested)));
}

#[test]
fn unix_wire_connects_two_ends_in_any_order() {
    let dir = TempDir::new("unix");
    let pa = dir.path().join("a.sock");
    let pb = dir.path().join("b.sock");
    let mut a = UnixWire::bind(&pa, &pb).unwrap();
    // The peer is not up yet: the frame is lost, the wire stays usable.
    let e = a.send(&roce_frame(opcode::SEND_ONLY, 0, 1)).unwrap_err();
    assert!(matches!(e, WireError::PeerUnavailable { .. }) && e.is_transient());
    assert!(e.to_string().contains("b.sock"));
    let mut b = UnixWire::bind(&pb, &pa).unwrap();
    exchange(&mut a, &mut b);
    assert!(a.raw_fd().is_some());
    assert_eq!(a.local_path(), pa.as_path());
    assert_eq!(a.peer_path(), pb.as_path());
    refuses_bad_sizes(&mut a);
    assert_eq!(recv_wait(&mut b).len(), MAX_FRAME_LEN);

    // A third socket's datagrams are ignored.
    let stranger = std::os::unix::net::UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
    stranger.send_to(&[0; 60], &pb).unwrap();
    a.send(&roce_frame(opcode::SEND_ONLY, 9, 1)).unwrap();
    assert_eq!(recv_wait(&mut b), roce_frame(opcode::SEND_ONLY, 9, 1));
    assert_eq!(b.foreign_frames(), 1);

    // Dropping an end removes its socket file; its peer then reports the loss.
    drop(b);
    assert!(!pb.exists());
    assert!(matches!(
        a.send(&[0; 60]),
        Err(WireError::PeerUnavailable { .. })
    ));
}

#[test]
fn unix_wire_replaces_stale_sockets_but_not_other_files() {
    let dir = TempDir::new("unix-stale");
    let pa = dir.path().join("a.sock");
    let pb = dir.path().join("b.sock");
    // A socket file left behind by a crashed run.
    drop(std::os::unix::net::UnixDatagram::bind(&pa).unwrap());
    assert!(pa.exists());
    let a = UnixWire::bind(&pa, &pb).unwrap();
    drop(a);
    std::fs::write(&pa, b"not a socket").unwrap();
    let e = UnixWire::bind(&pa, &pb).unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert!(pa.exists());
}

#[test]
fn udp_wire_exchanges_frames_on_loopback() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut a = UdpWire::bind(any, any).unwrap();
    let mut b = UdpWire::bind(any, a.local_addr().unwrap()).unwrap();
    a.set_peer(b.local_addr().unwrap());
    assert_eq!(a.peer_addr(), b.local_addr().unwrap());
    exchange(&mut a, &mut b);
    assert!(a.raw_fd().is_some());
    refuses_bad_sizes(&mut a);
    assert_eq!(recv_wait(&mut b).len(), MAX_FRAME_LEN);

    // Datagrams from elsewhere are discarded.
    let stranger = std::net::UdpSocket::bind(any).unwrap();
    stranger.send_to(&[0; 60], b.local_addr().unwrap()).unwrap();
    a.send(&roce_frame(opcode::SEND_ONLY, 3, 1)).unwrap();
    assert_eq!(recv_wait(&mut b), roce_frame(opcode::SEND_ONLY, 3, 1));
    assert_eq!(b.foreign_frames(), 1);
}

#[test]
fn udp_wire_with_absent_peer_loses_frames_quietly() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Reserve a port, then free it so nobody listens there.
    let gone = std::net::UdpSocket::bind(any)
        .unwrap()
        .local_addr()
        .unwrap();
    let mut a = UdpWire::bind(any, gone).unwrap();
    for _ in 0..3 {
        // Either accepted (lost in flight) or refused as a transient error.
        if let Err(e) = a.send(&[0; 60]) {
            assert!(e.is_transient(), "{e}");
        }
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(a.try_recv().unwrap(), None);
    }
}

#[test]
fn bind_errors_name_the_address() {
    let dir = TempDir::new("bind-err");
    let e = UnixWire::bind(dir.path().join("no/such/dir/a.sock"), "/x").unwrap_err();
    assert!(e.to_string().contains("no/such/dir"), "{e}");
    assert!(!e.is_transient());
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = UdpWire::bind(addr, addr).unwrap_err();
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

/// Frames of several opcodes, as (opcode, psn, qp, from_a).
pub(crate) const SCRIPT: [(u8, u32, u32, bool); 8] = [
    (opcode::SEND_FIRST, 100, 0x11, true),
    (opcode::SEND_MIDDLE, 101, 0x11, true),
    (opcode::SEND_LAST_WITH_IMMEDIATE, 102, 0x11, true),
    (opcode::ACKNOWLEDGE, 102, 0x22, false),
    (opcode::RDMA_WRITE_ONLY, 103, 0x11, true),
    (opcode::RDMA_READ_REQUEST, 104, 0x11, true),
    (opcode::RDMA_READ_RESPONSE_ONLY, 104, 0x22, false),
    (opcode::SEND_ONLY_WITH_INVALIDATE, 105, 0x11, true),
];

/// Runs `SCRIPT` over an in-process pair whose `a` end captures into `path`
/// with a fake clock (1 ms per frame); returns the frames in capture order.
pub(crate) fn capture_script(path: &Path) -> Vec<Vec<u8>> {
    let (a, mut b) = in_process_pair();
    let mut tick = 0u64;
    let mut a = CapturingWire::create(a, path)
        .unwrap()
        .with_clock(Box::new(move || {
            tick += 1;
            Duration::from_millis(tick)
        }));
    let mut order = Vec::new();
    for &(op, psn, qp, from_a) in &SCRIPT {
        let mut p = sample_packet(op, 24);
        p.bth.psn = psn;
        p.bth.dest_qp = qp;
        if !from_a {
            std::mem::swap(&mut p.eth.src, &mut p.eth.dst);
            std::mem::swap(&mut p.ip.src, &mut p.ip.dst);
        }
        let f = roce::encode(&p).unwrap();
        if from_a {
            a.send(&f).unwrap();
            assert_eq!(b.try_recv().unwrap().as_ref(), Some(&f));
        } else {
            b.send(&f).unwrap();
            assert_eq!(a.try_recv().unwrap().as_ref(), Some(&f));
        }
        order.push(f);
    }
    assert_eq!(a.captured_frames(), SCRIPT.len() as u64);
    assert!(a.capture_error().is_none());
    order
}

#[test]
fn capture_records_both_directions_and_reads_back_as_roce() {
    let dir = TempDir::new("capture");
    let path = dir.path().join("wire.pcap");
    let frames = capture_script(&path);
    let recs = pcap::read_file(&path).unwrap();
    assert_eq!(recs.len(), SCRIPT.len());
    for (i, (rec, &(op, psn, qp, _))) in recs.iter().zip(SCRIPT.iter()).enumerate() {
        assert_eq!(rec.data, frames[i]);
        assert_eq!(rec.orig_len as usize, frames[i].len());
        assert_eq!(rec.ts, Duration::from_millis(i as u64 + 1));
        let p = roce::decode(&rec.data).unwrap();
        assert_eq!((p.bth.opcode, p.bth.psn, p.bth.dest_qp), (op, psn, qp));
    }
}

#[test]
fn capture_write_failure_does_not_break_the_wire() {
    /// A writer that accepts the global header, then fails.
    struct FailAfter(usize);
    impl std::io::Write for FailAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (a, mut b) = in_process_pair();
    let pcap = PcapWriter::new(FailAfter(24)).unwrap();
    let mut a = CapturingWire::new(a, pcap);
    let f = roce_frame(opcode::SEND_ONLY, 1, 1);
    a.send(&f).unwrap();
    a.send(&f).unwrap();
    assert_eq!(b.try_recv().unwrap(), Some(f.clone()));
    assert_eq!(b.try_recv().unwrap(), Some(f));
    assert!(a.capture_error().unwrap().to_string().contains("disk full"));
    assert_eq!(a.captured_frames(), 0);
    let (_inner, writer) = a.into_parts();
    assert!(writer.is_none());
}

#[test]
fn failed_sends_are_not_captured() {
    let dir = TempDir::new("capture-fail");
    let path = dir.path().join("w.pcap");
    let (a, b) = in_process_pair();
    drop(b);
    let mut a = CapturingWire::create(a, &path).unwrap();
    assert!(a.send(&[0; 60]).is_err());
    assert_eq!(a.captured_frames(), 0);
    drop(a);
    assert!(pcap::read_file(&path).unwrap().is_empty());
}

#[test]
fn fault_and_capture_stack() {
    use crate::fault::{FaultAction, FaultSite};
    let dir = TempDir::new("stack");
    let path = dir.path().join("w.pcap");
    let (a, mut b) = in_process_pair();
    let mut n = 0;
    let decide: WireDecider = Box::new(move |p, _| {
        if p.site != FaultSite::WireTx {
            return None;
        }
        n += 1;
        (n == 2).then_some(FaultAction::Drop)
    });
    let mut a = FaultyWire::new(CapturingWire::create(a, &path).unwrap(), decide);
    for psn in 0..3 {
        a.send(&roce_frame(opcode::SEND_ONLY, psn, 1)).unwrap();
    }
    let mut got = Vec::new();
    while let Some(f) = b.try_recv().unwrap() {
        got.push(roce::decode(&f).unwrap().bth.psn);
    }
    assert_eq!(got, vec![0, 2]);
    // The capture shows what crossed the wire: the dropped frame is absent.
    let caught: Vec<u32> = pcap::read_file(&path)
        .unwrap()
        .iter()
        .map(|r| roce::decode(&r.data).unwrap().bth.psn)
        .collect();
    assert_eq!(caught, vec![0, 2]);
}
