//! A hostile RoCEv2 peer for the RNIC, shared by the cargo-fuzz target
//! (`fuzz_targets/wire.rs`) and the corpus replay test (`tests/fuzz_corpus.rs`,
//! which includes this file with `#[path]`).
//!
//! The device under test is brought up by the test driver of `tests/support`, with
//! one RC QP connected to a peer that does not exist: the fuzzer plays that peer on
//! the other end of an in-process wire. Fuzzer bytes become frames — mostly
//! well-formed RoCEv2 packets built by [`rnic_device::roce::encode`] (so the ICRC is
//! right and the packet reaches the transport) with every header field chosen by
//! the input (opcode, destination QP, PSN near or far from the expected one, RETH
//! addresses, keys and lengths in and around the registered region, AETH
//! syndromes, payload sizes up to twice the path MTU), now and then a corrupted
//! ICRC or raw bytes — interleaved with the device's own work (SENDs, RDMA WRITEs
//! and READs towards the peer, posted receives) and with time passing (ACK
//! timeouts, RNR timers, retransmissions).
//!
//! What must hold, whatever the peer sends: no panic; every frame the device sends
//! in answer is drained and the number sent per step stays bounded; the device
//! never writes guest RAM outside its rings, the receive buffers and the regions
//! registered for remote access (a guard page between them keeps its pattern);
//! the completions the driver reads are well-formed.

use std::time::Duration;

use rnic_device::roce::{self, opcode, Aeth, Bth, EthHeader, Ipv4Info, Reth, RocePacket};
use rnic_device::wire::{in_process_pair, InProcessWire, WireBackend};

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code, unused_imports)]
pub mod support;

pub use support::{acc, Mr, Node, Peer, QpCfg, SendWr};

/// The peer's MAC address (the fuzzer's end of the wire).
pub const PEER_MAC: [u8; 6] = [0x02, 0x7E, 0x57, 0x00, 0x00, 0x99];
/// The peer's IPv4 address.
pub const PEER_IP: [u8; 4] = [10, 77, 0, 99];
/// The peer's QPN the device's QP is connected to.
pub const PEER_QPN: u32 = 0x11;
/// The PSN the peer starts with (the device's expected PSN at first).
pub const PEER_PSN: u32 = 0x100;
/// The device's MAC address.
pub const DUT_MAC: [u8; 6] = [0x02, 0x7E, 0x57, 0x00, 0x00, 0x01];
/// The device's IPv4 address.
pub const DUT_IP: [u8; 4] = [10, 77, 0, 1];
/// Size of the region registered for remote access by [`WireRig::new`].
pub const MR_LEN: u64 = 0x4000;
/// Path MTU of the connection (code 3 = 1024 bytes).
pub const MTU: usize = 1024;
/// Pattern of the guard page.
const GUARD_BYTE: u8 = 0xC3;
/// Frames the device may send in answer to one step of the script: far above
/// what one request can cause (a READ response of a whole region at the MTU is
/// 16 frames, plus ACKs and retransmissions of the device's own work).
const MAX_FRAMES_PER_STEP: usize = 512;
/// Ops per input at most.
const MAX_OPS: usize = 512;

/// The device, its driver state and the peer's end of the wire.
pub struct WireRig {
    /// The device and its test driver.
    pub node: Node,
    peer: InProcessWire,
    /// The device's connected QP.
    pub qpn: u32,
    /// Its (send and receive) CQ.
    pub cq: u32,
    /// The region registered for local and remote access.
    pub remote: Mr,
    local: Mr,
    guard: u64,
    /// Device time.
    pub now: Duration,
    next_psn: u32,
    wr_id: u64,
    /// Frames the device sent to the peer so far.
    pub frames_out: u64,
}

impl WireRig {
    /// A device brought up, with its QP connected to the fuzzer's peer and a few
    /// receives posted.
    pub fn new() -> WireRig {
        Self::with_region(MR_LEN)
    }

    /// As [`WireRig::new`], with a remote-access region of `region_len` bytes.
    pub fn with_region(region_len: u64) -> WireRig {
        let (dut_end, peer) = in_process_pair();
        let mut node = Node::new("dut", DUT_MAC, DUT_IP);
        node.dev.attach_wire(Box::new(dut_end));
        node.pci_setup();
        node.bring_up();
        let pd = node.create_pd();
        let rights = acc::LOCAL_WRITE | acc::REMOTE_READ | acc::REMOTE_WRITE;
        let remote = node.buffer(pd, region_len, rights);
        let guard = node.alloc(0x1000, 0x1000);
        node.write_mem(guard, &[GUARD_BYTE; 0x1000]);
        let local = node.buffer(pd, MR_LEN, acc::LOCAL_WRITE);
        // Small rings: the rig's set-up is paid on every input.
        let cfg = QpCfg {
            sq_entries: 16,
            rq_entries: 16,
            cq_entries: 64,
            ..QpCfg::default()
        };
        let cq = node.create_cq(cfg.cq_entries, 1);
        let qpn = node.create_qp(pd, cq, cq, &cfg);
        let peer_addr = Peer {
            qpn: PEER_QPN,
            mac: PEER_MAC,
            ip: PEER_IP,
            psn: PEER_PSN,
        };
        node.connect_qp(qpn, 0, &peer_addr, &cfg);
        for i in 0..8 {
            node.post_recv(qpn, 1000 + i, &[local.sge(i * 0x800, 0x800)]);
        }
        let mut rig = WireRig {
            node,
            peer,
            qpn,
            cq,
            remote,
            local,
            guard,
            now: Duration::ZERO,
            next_psn: PEER_PSN,
            wr_id: 0,
            frames_out: 0,
        };
        rig.drain("bring-up");
        rig
    }

    /// Reads every frame the device sent to the peer; panics past the per-step bound.
    fn drain(&mut self, step: &str) {
        let n = self.sent_frames().len();
        assert!(
            n <= MAX_FRAMES_PER_STEP,
            "the device sent {n} frames in answer to {step} (bound {MAX_FRAMES_PER_STEP})"
        );
    }

    /// Takes every frame the device sent to the peer since the last call.
    pub fn sent_frames(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Ok(Some(f)) = self.peer.try_recv() {
            frames.push(f);
        }
        self.frames_out += frames.len() as u64;
        frames
    }

    /// Takes the RoCEv2 packets the device sent to the peer since the last call
    /// (panics on a frame the device should never send).
    pub fn sent_packets(&mut self) -> Vec<RocePacket> {
        self.sent_frames()
            .iter()
            .map(|f| roce::decode(f).expect("the device sent a malformed RoCEv2 frame"))
            .collect()
    }

    /// Queues one frame from the peer without letting the device run; false when
    /// the wire refused it (queue full, bad length).
    pub fn queue(&mut self, frame: &[u8]) -> bool {
        self.peer.send(frame).is_ok()
    }

    /// Sends one frame from the peer and lets the device take it.
    pub fn inject(&mut self, frame: &[u8]) {
        // A full queue or a bad length is the wire's business, not the device's.
        let _ = self.peer.send(frame);
        self.node.dev.poll(self.now);
    }

    /// A request from the peer to the device's QP: `op` at `psn`, every other header
    /// empty (fill in what the opcode needs).
    pub fn request(&self, op: u8, psn: u32) -> RocePacket {
        RocePacket {
            eth: EthHeader {
                dst: DUT_MAC,
                src: PEER_MAC,
            },
            ip: Ipv4Info {
                src: PEER_IP,
                dst: DUT_IP,
                ttl: 64,
                ..Default::default()
            },
            udp_src_port: 0xC000,
            bth: Bth {
                opcode: op,
                pkey: roce::DEFAULT_PKEY,
                dest_qp: self.qpn,
                ack_req: true,
                psn,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Runs one op taken from `d`; false at the end of the input.
    fn step(&mut self, d: &mut Bytes<'_>) -> bool {
        let Some(kind) = d.next() else { return false };
        match kind % 8 {
            0..=2 => {
                let p = self.packet(d);
                if let Ok(mut frame) = roce::encode(&p) {
                    if d.u8().is_multiple_of(16) {
                        // A corrupted ICRC (or any other byte) now and then.
                        let at = d.u16() as usize % frame.len();
                        frame[at] ^= d.u8() | 1;
                    }
                    self.inject(&frame);
                }
            }
            3 => {
                let len = 14 + d.u8() as usize;
                let frame = d.bytes(len);
                self.inject(&frame);
            }
            4 => {
                self.now += Duration::from_micros(u64::from(d.u16()) * 4);
                self.node.dev.poll(self.now);
            }
            5 => self.post_work(d),
            6 => {
                let off = u64::from(d.u8()) * 0x40;
                self.node
                    .post_recv(self.qpn, 2000 + off, &[self.local.sge(off, 0x800)]);
                self.node.dev.poll(self.now);
            }
            _ => {
                // The driver reads its completions and events.
                for c in self.node.poll_cq(self.cq) {
                    assert!(c.qpn == self.qpn, "completion for QP {} of {c:?}", c.qpn);
                }
                self.node.poll_events();
            }
        }
        self.drain("one step of the script");
        true
    }

    /// The device posts work towards the peer (so ACKs, NAKs and READ responses
    /// from the fuzzer meet outstanding requests).
    fn post_work(&mut self, d: &mut Bytes<'_>) {
        self.wr_id += 1;
        let off = u64::from(d.u8()) * 0x20;
        let len = u32::from(d.u16()) % 0x1800;
        let sge = vec![self.local.sge(off % 0x2000, len)];
        let raddr = self.remote.va(0) + u64::from(d.u16());
        let wr = match d.u8() % 3 {
            0 => SendWr::send(self.wr_id, sge),
            1 => SendWr::write(self.wr_id, sge, raddr, d.u32()),
            _ => SendWr::read(self.wr_id, sge, raddr, d.u32()),
        };
        self.node.post_send(self.qpn, &wr);
        self.node.dev.poll(self.now);
    }

    /// A RoCEv2 packet from the peer with fields taken from the input.
    fn packet(&mut self, d: &mut Bytes<'_>) -> RocePacket {
        let sel = d.u8();
        let op = if sel < 240 {
            opcode::ALL_RC[sel as usize % opcode::ALL_RC.len()]
        } else {
            d.u8()
        };
        let dest_qp = match d.u8() % 8 {
            0 => 1,
            1 => d.u32() & 0xFF_FFFF,
            _ => self.qpn,
        };
        let psn = match d.u8() % 4 {
            0 => d.u32() & 0xFF_FFFF,
            1 => self.next_psn.wrapping_sub(u32::from(d.u8())) & 0xFF_FFFF,
            _ => {
                let p = self.next_psn;
                self.next_psn = (p + 1) & 0xFF_FFFF;
                p
            }
        };
        let rkey = if d.u8().is_multiple_of(4) {
            d.u32()
        } else {
            self.remote.key
        };
        let va = self.remote.va(0).wrapping_add(u64::from(d.u16())) ^ (u64::from(d.u8() % 2) << 40);
        let dma_len = match d.u8() % 4 {
            0 => d.u32(),
            _ => u32::from(d.u16()) % (MR_LEN as u32 + 0x100),
        };
        let info = opcode::info(op);
        let payload_len = if info.is_some_and(|i| i.payload) {
            match d.u8() % 8 {
                0 => MTU,
                1 => d.u16() as usize % (2 * MTU + 1),
                _ => d.u8() as usize,
            }
        } else {
            0
        };
        let fill = d.u8();
        let src_ip = if d.u8().is_multiple_of(16) {
            DUT_IP
        } else {
            PEER_IP
        };
        let mut p = self.request(op, psn);
        p.ip.src = src_ip;
        p.udp_src_port = 0xC000 | u16::from(d.u8());
        p.bth.solicited = d.u8().is_multiple_of(2);
        p.bth.dest_qp = dest_qp;
        p.bth.ack_req = d.u8().is_multiple_of(2);
        p.reth = info
            .is_some_and(|i| i.reth)
            .then_some(Reth { va, rkey, dma_len });
        p.aeth = info.is_some_and(|i| i.aeth).then(|| Aeth {
            syndrome: d.u8(),
            msn: d.u32() & 0xFF_FFFF,
        });
        p.imm = info.is_some_and(|i| i.imm).then(|| d.u32());
        p.ieth = info.is_some_and(|i| i.ieth).then(|| d.u32());
        p.payload = vec![fill; payload_len];
        p
    }

    /// End of the script: time passes until every timer has fired, the driver
    /// reads everything, and the guard page must still hold its pattern.
    pub fn finish(&mut self) {
        self.settle();
        self.check_guard();
    }

    /// Lets four seconds of device time pass (every timer fires) and the driver
    /// read its completions and events.
    pub fn settle(&mut self) {
        for _ in 0..4 {
            self.now += Duration::from_secs(1);
            self.node.dev.poll(self.now);
            self.drain("the final polls");
        }
        let _ = self.node.poll_cq(self.cq);
        self.node.poll_events();
    }

    /// Panics unless the guard page between the buffers still holds its pattern.
    pub fn check_guard(&self) {
        let guard = self.node.read_mem(self.guard, 0x1000);
        if let Some(i) = guard.iter().position(|&b| b != GUARD_BYTE) {
            panic!(
                "the device wrote guest RAM outside its buffers, at {:#x}",
                self.guard + i as u64
            );
        }
    }
}

impl Default for WireRig {
    fn default() -> Self {
        Self::new()
    }
}

/// Fuzzer bytes read front to back; past the end every read gives 0.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    /// Bytes to read.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn u8(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }
}

/// Runs a whole fuzzer input against a fresh device.
pub fn run_bytes(data: &[u8]) -> WireRig {
    let mut rig = WireRig::new();
    let mut d = Bytes::new(data);
    let mut ops = 0;
    while ops < MAX_OPS && rig.step(&mut d) {
        ops += 1;
    }
    rig.finish();
    rig
}
