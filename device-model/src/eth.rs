//! Ethernet side of the port: MAC address, receive filter, MTU and the TX/RX
//! descriptor rings (`docs/device-spec.md` §5).
//!
//! Queues are created and destroyed with admin commands; their doorbells live in
//! BAR0 at `0x1000 + 16 * queue`. Each descriptor is 16 bytes; one descriptor is one
//! whole frame. The device writes a descriptor's status byte last, so a driver that
//! sees `DONE` also sees the other fields the device wrote.
//!
//! The rings talk to the rest of the device through [`DeviceEnv`] (DMA with fault
//! hooks, the wire, interrupts, events) as [`Owner::EthTx`] / [`Owner::EthRx`], so
//! they can be tested alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::admin::AdminStatus;
use crate::dma::DmaError;
use crate::env::{DeviceEnv, DmaScope, Owner};
use crate::events::{code, Event};
use rnic_contract::event::ETH_RX_QUEUE_FLAG;

/// A 48-bit MAC address; serde and `Display`/`FromStr` use `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The broadcast address.
    pub const BROADCAST: MacAddress = MacAddress([0xFF; 6]);

    /// Group (multicast or broadcast) address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Bytes 0..4 as a little-endian u32 (the `MAC_LO` register layout).
    pub fn low_u32(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// Bytes 4..6 as a little-endian u32 (the `MAC_HI` register layout).
    pub fn high_u32(&self) -> u32 {
        u32::from_le_bytes([self.0[4], self.0[5], 0, 0])
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A MAC address string that does not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid MAC address {0:?}: write six hex bytes separated by ':', e.g. 02:7e:57:00:00:01")]
pub struct MacParseError(pub String);

impl FromStr for MacAddress {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddress(out))
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

use rnic_contract::admin::operands::create_eth_queue;
use rnic_contract::bar0::eth_db;
pub use rnic_contract::eth::{
    filter, status, DEFAULT_MTU, ETH_HEADER, MAX_MTU, MAX_MULTICAST, MAX_QUEUES, MIN_MTU,
    RING_ALIGN, RING_MAX, RING_MIN, VLAN_TAG,
};
use rnic_contract::eth::{queue_error, rx_field, tx_field, RxDescriptor, TxDescriptor, DESC_SIZE};
use rnic_contract::field::Record;

/// Counters of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthQueueStats {
    /// Frames sent or received.
    pub frames: u64,
    /// Bytes sent or received.
    pub bytes: u64,
    /// TX: descriptors completed with ERROR. RX: frames lost to buffer DMA errors.
    pub errors: u64,
    /// TX: frames dropped by the link. RX: frames dropped for lack of a descriptor
    /// or because they did not fit the buffer.
    pub drops: u64,
}

/// One descriptor ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    base: u64,
    size: u32,
    head: u32,
    tail: u32,
    vector: u16,
    failed: bool,
    stats: EthQueueStats,
}

impl Ring {
    fn mask(&self) -> u32 {
        self.size - 1
    }

    fn desc(&self, i: u32) -> u64 {
        self.base + i as u64 * DESC_SIZE as u64
    }

    /// Counters.
    pub fn stats(&self) -> EthQueueStats {
        self.stats
    }

    /// Whether the queue stopped on an error.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// Ring parameters of a create command (operands 0..16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueParams {
    /// Ring base (16-byte aligned).
    pub base: u64,
    /// Ring size in descriptors (power of two, 2..=4096).
    pub size: u32,
    /// MSI-X vector raised after completions.
    pub vector: u16,
    /// Queue id (0..MAX_QUEUES).
    pub queue: u16,
}

impl QueueParams {
    /// Parses the operands of `CREATE_TXQ`/`CREATE_RXQ`.
    pub fn parse(operands: &[u8; 56]) -> Self {
        let o = Record::new_unchecked(operands);
        QueueParams {
            base: o.u64(create_eth_queue::BASE),
            size: o.u32(create_eth_queue::SIZE),
            vector: o.u16(create_eth_queue::VECTOR),
            queue: o.u16(create_eth_queue::QUEUE_ID),
        }
    }
}

/// What happened to a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// Written to queue `0`.
    Delivered(u16),
    /// Rejected by the receive filter.
    Filtered,
    /// No RX queue exists.
    NoQueue,
    /// The queue had no free descriptor.
    NoBuffer,
    /// Longer than MTU + header (+ VLAN tag) or than the buffer.
    TooLong,
    /// Shorter than an Ethernet header.
    Runt,
    /// The queue failed while delivering.
    Error,
}

/// The Ethernet function of the port.
#[derive(Clone, Debug)]
pub struct Ethernet {
    mac: MacAddress,
    default_mac: MacAddress,
    mtu: u32,
    filter: u32,
    multicast: Vec<MacAddress>,
    tx: [Option<Ring>; MAX_QUEUES],
    rx: [Option<Ring>; MAX_QUEUES],
}

fn read_desc(env: &mut dyn DeviceEnv, owner: Owner, addr: u64) -> Result<[u8; 16], DmaError> {
    let mut d = [0u8; 16];
    env.dma_read(DmaScope::of(owner), addr, &mut d)?;
    Ok(d)
}

impl Ethernet {
    /// Reset state with the configured MAC address.
    pub fn new(mac: MacAddress) -> Self {
        Ethernet {
            mac,
            default_mac: mac,
            mtu: DEFAULT_MTU,
            filter: filter::DEFAULT,
            multicast: Vec::new(),
            tx: Default::default(),
            rx: Default::default(),
        }
    }

    /// Device reset: queues destroyed, MAC/MTU/filter back to defaults.
    pub fn reset(&mut self) {
        *self = Ethernet::new(self.default_mac);
    }

    /// Destroys every queue (keeps MAC, MTU, filter).
    pub fn destroy_all(&mut self) {
        self.tx = Default::default();
        self.rx = Default::default();
    }

    /// Current MAC address.
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// Current MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Current receive filter.
    pub fn filter(&self) -> u32 {
        self.filter
    }

    /// TX queue `q`.
    pub fn tx_queue(&self, q: usize) -> Option<&Ring> {
        self.tx.get(q).and_then(|r| r.as_ref())
    }

    /// RX queue `q`.
    pub fn rx_queue(&self, q: usize) -> Option<&Ring> {
        self.rx.get(q).and_then(|r| r.as_ref())
    }

    /// Largest frame accepted (header + MTU + one VLAN tag).
    pub fn max_frame(&self) -> usize {
        ETH_HEADER + VLAN_TAG + self.mtu as usize
    }

    /// `SET_MTU`.
    pub fn set_mtu(&mut self, mtu: u32) -> Result<(), AdminStatus> {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(AdminStatus::InvalidParam);
        }
        self.mtu = mtu;
        Ok(())
    }

    /// `SET_MAC`: a unicast, non-zero address.
    pub fn set_mac(&mut self, mac: MacAddress) -> Result<(), AdminStatus> {
        if mac.is_multicast() || mac.0 == [0; 6] {
            return Err(AdminStatus::InvalidParam);
        }
        self.mac = mac;
        Ok(())
    }

    /// `SET_RX_FILTER`.
    pub fn set_filter(&mut self, flags: u32) -> Result<(), AdminStatus> {
        if flags & !filter::ALL != 0 {
            return Err(AdminStatus::InvalidParam);
        }
        self.filter = flags;
        Ok(())
    }

    /// `SET_MULTICAST_LIST`: every address must be multicast.
    pub fn set_multicast(&mut self, list: Vec<MacAddress>) -> Result<(), AdminStatus> {
        if list.len() > MAX_MULTICAST || list.iter().any(|m| !m.is_multicast()) {
            return Err(AdminStatus::InvalidParam);
        }
        self.multicast = list;
        Ok(())
    }

    /// Whether the receive filter accepts a frame to `dst`.
    pub fn accepts(&self, dst: MacAddress) -> bool {
        let f = self.filter;
        if f & filter::PROMISCUOUS != 0 {
            return true;
        }
        if dst == MacAddress::BROADCAST {
            return f & filter::BROADCAST != 0;
        }
        if dst.is_multicast() {
            return f & filter::ALL_MULTICAST != 0
                || (f & filter::MULTICAST != 0 && self.multicast.contains(&dst));
        }
        f & filter::UNICAST != 0 && dst == self.mac
    }

    fn validate(env: &dyn DeviceEnv, p: &QueueParams) -> Result<(), AdminStatus> {
        if p.queue as usize >= MAX_QUEUES
            || p.vector >= rnic_contract::pci::MSIX_VECTORS
            || !(RING_MIN..=RING_MAX).contains(&p.size)
            || !p.size.is_power_of_two()
            || p.base & (RING_ALIGN - 1) != 0
            || env
                .dma_check(p.base, p.size as u64 * DESC_SIZE as u64)
                .is_err()
        {
            return Err(AdminStatus::InvalidParam);
        }
        Ok(())
    }

    fn new_ring(p: &QueueParams) -> Ring {
        Ring {
            base: p.base,
            size: p.size,
            head: 0,
            tail: 0,
            vector: p.vector,
            failed: false,
            stats: EthQueueStats::default(),
        }
    }

    /// `CREATE_TXQ` / `CREATE_RXQ`.
    pub fn create(
        &mut self,
        env: &dyn DeviceEnv,
        rx: bool,
        p: &QueueParams,
    ) -> Result<u32, AdminStatus> {
        Self::validate(env, p)?;
        let slot = if rx {
            &mut self.rx[p.queue as usize]
        } else {
            &mut self.tx[p.queue as usize]
        };
        if slot.is_some() {
            return Err(AdminStatus::Busy);
        }
        *slot = Some(Self::new_ring(p));
        Ok(p.queue as u32)
    }

    /// `DESTROY_TXQ` / `DESTROY_RXQ`.
    pub fn destroy(&mut self, rx: bool, queue: u32) -> Result<(), AdminStatus> {
        let table = if rx { &mut self.rx } else { &mut self.tx };
        match table.get_mut(queue as usize) {
            Some(slot @ Some(_)) => {
                *slot = None;
                Ok(())
            }
            _ => Err(AdminStatus::InvalidHandle),
        }
    }

    /// Reads a doorbell register (offset relative to BAR0).
    pub fn doorbell_read(&self, offset: u64) -> u32 {
        let q = ((offset - eth_db::ETH_BASE) / eth_db::ETH_STRIDE) as usize;
        let reg = (offset - eth_db::ETH_BASE) % eth_db::ETH_STRIDE;
        let ring = match reg {
            eth_db::TXQ_TAIL | eth_db::TXQ_HEAD => self.tx_queue(q),
            _ => self.rx_queue(q),
        };
        match (ring, reg) {
            (Some(r), eth_db::TXQ_TAIL | eth_db::RXQ_TAIL) => r.tail,
            (Some(r), _) => r.head,
            (None, _) => 0,
        }
    }

    /// Stops `ring` and posts `ETH_QUEUE_ERROR` for the queue with event handle
    /// `handle` (TX: the queue id; RX: the id with bit 16 set).
    fn fail(env: &mut dyn DeviceEnv, ring: &mut Ring, handle: u32, cause: u32) {
        tracing::warn!(queue = handle, cause, "Ethernet queue error");
        ring.failed = true;
        env.post_event(Event {
            code: code::ETH_QUEUE_ERROR,
            handle,
            detail: cause,
        });
    }

    /// Handles a doorbell write (offset relative to BAR0).
    pub fn doorbell_write(&mut self, env: &mut dyn DeviceEnv, offset: u64, value: u32) {
        let q = ((offset - eth_db::ETH_BASE) / eth_db::ETH_STRIDE) as usize;
        match (offset - eth_db::ETH_BASE) % eth_db::ETH_STRIDE {
            eth_db::TXQ_TAIL => self.tx_doorbell(env, q, value),
            eth_db::RXQ_TAIL => {
                let Some(ring) = self.rx.get_mut(q).and_then(|r| r.as_mut()) else {
                    return;
                };
                if ring.failed {
                    return;
                }
                if value >= ring.size {
                    Self::fail(
                        env,
                        ring,
                        ETH_RX_QUEUE_FLAG | q as u32,
                        queue_error::BAD_DOORBELL,
                    );
                    return;
                }
                ring.tail = value;
            }
            _ => {}
        }
    }

    fn tx_doorbell(&mut self, env: &mut dyn DeviceEnv, q: usize, value: u32) {
        let max_frame = self.max_frame();
        let Some(ring) = self.tx.get_mut(q).and_then(|r| r.as_mut()) else {
            return;
        };
        if ring.failed {
            return;
        }
        if value >= ring.size {
            Self::fail(env, ring, q as u32, queue_error::BAD_DOORBELL);
            return;
        }
        ring.tail = value;
        // The event handle of TX queue `q` is `q`.
        let handle = q as u32;
        let owner = Owner::EthTx(q as u16);
        let mut done = 0;
        while ring.head != ring.tail {
            let addr = ring.desc(ring.head);
            let d = match read_desc(env, owner, addr) {
                Ok(d) => d,
                Err(_) => {
                    Self::fail(env, ring, handle, queue_error::DESCRIPTOR_DMA);
                    break;
                }
            };
            let desc = TxDescriptor::new_unchecked(&d[..]);
            let (buf, len) = (desc.addr(), usize::from(desc.len()));
            let mut st = status::DONE;
            if !(ETH_HEADER..=max_frame).contains(&len) {
                st |= status::ERROR;
            } else {
                let mut frame = vec![0u8; len];
                if env.dma_read(DmaScope::of(owner), buf, &mut frame).is_err() {
                    st |= status::ERROR;
                } else if env.transmit(owner, &frame) {
                    ring.stats.frames += 1;
                    ring.stats.bytes += len as u64;
                } else {
                    ring.stats.drops += 1;
                }
            }
            if st & status::ERROR != 0 {
                ring.stats.errors += 1;
            }
            if env
                .dma_write(DmaScope::of(owner), addr + tx_field::STATUS as u64, &[st])
                .is_err()
            {
                Self::fail(env, ring, handle, queue_error::DESCRIPTOR_DMA);
                break;
            }
            ring.head = (ring.head + 1) & ring.mask();
            done += 1;
        }
        if done > 0 {
            env.raise(ring.vector);
        }
    }

    /// Delivers a received frame: filter, then the lowest-numbered live RX queue.
    pub fn receive(&mut self, env: &mut dyn DeviceEnv, frame: &[u8]) -> RxOutcome {
        if frame.len() < ETH_HEADER {
            return RxOutcome::Runt;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        let dst = MacAddress(dst);
        if !self.accepts(dst) {
            return RxOutcome::Filtered;
        }
        let max_frame = self.max_frame();
        let Some(q) = self
            .rx
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| !r.failed))
        else {
            return RxOutcome::NoQueue;
        };
        let Some(ring) = self.rx[q].as_mut() else {
            return RxOutcome::NoQueue;
        };
        // The event handle of RX queue `q` is `q` with bit 16 set.
        let handle = ETH_RX_QUEUE_FLAG | q as u32;
        let scope = DmaScope::of(Owner::EthRx(q as u16));
        if frame.len() > max_frame {
            ring.stats.drops += 1;
            return RxOutcome::TooLong;
        }
        if ring.head == ring.tail {
            ring.stats.drops += 1;
            return RxOutcome::NoBuffer;
        }
        let addr = ring.desc(ring.head);
        let d = match read_desc(env, scope.owner, addr) {
            Ok(d) => d,
            Err(_) => {
                Self::fail(env, ring, handle, queue_error::DESCRIPTOR_DMA);
                return RxOutcome::Error;
            }
        };
        let desc = RxDescriptor::new_unchecked(&d[..]);
        let (buf, cap) = (desc.addr(), usize::from(desc.buf_len()));
        if frame.len() > cap {
            ring.stats.drops += 1;
            return RxOutcome::TooLong;
        }
        if env.dma_write(scope, buf, frame).is_err() {
            ring.stats.errors += 1;
            Self::fail(env, ring, handle, queue_error::RX_BUFFER_DMA);
            return RxOutcome::Error;
        }
        let mut st = status::DONE;
        if dst == MacAddress::BROADCAST {
            st |= status::BROADCAST;
        } else if dst.is_multicast() {
            st |= status::MULTICAST;
        }
        let len = (frame.len() as u16).to_le_bytes();
        if env
            .dma_write(scope, addr + rx_field::FRAME_LEN.start as u64, &len)
            .is_err()
            || env
                .dma_write(scope, addr + rx_field::STATUS as u64, &[st])
                .is_err()
        {
            Self::fail(env, ring, handle, queue_error::DESCRIPTOR_DMA);
            return RxOutcome::Error;
        }
        ring.head = (ring.head + 1) & ring.mask();
        ring.stats.frames += 1;
        ring.stats.bytes += frame.len() as u64;
        env.raise(ring.vector);
        RxOutcome::Delivered(q as u16)
    }

    /// Zeroes every queue's counters.
    pub fn clear_stats(&mut self) {
        for r in self.tx.iter_mut().chain(self.rx.iter_mut()).flatten() {
            r.stats = EthQueueStats::default();
        }
    }

    /// Per-queue counters: (tx, rx), `MAX_QUEUES` each, zero for absent queues.
    pub fn queue_stats(&self) -> (Vec<EthQueueStats>, Vec<EthQueueStats>) {
        let f = |t: &[Option<Ring>; MAX_QUEUES]| {
            t.iter()
                .map(|r| r.as_ref().map(|r| r.stats).unwrap_or_default())
                .collect()
        };
        (f(&self.tx), f(&self.rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::{test_memory, Dma};
    use crate::fault::{FaultAction, FaultPoint};

    struct Env {
        dma: Dma,
        sent: Vec<Vec<u8>>,
        link: bool,
        raised: Vec<u16>,
        events: Vec<Event>,
        /// Owner of every DMA access and transmission.
        scopes: Vec<Owner>,
    }

    impl Env {
        fn new() -> Env {
            let mut dma = Dma::new(test_memory(0x10_0000));
            dma.set_bus_master(true);
            Env {
                dma,
                sent: vec![],
                link: true,
                raised: vec![],
                events: vec![],
                scopes: vec![],
            }
        }
    }

    impl DeviceEnv for Env {
        fn dma_read(&mut self, s: DmaScope, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
            self.scopes.push(s.owner);
            self.dma.read(addr, buf)
        }
        fn dma_write(&mut self, s: DmaScope, addr: u64, data: &[u8]) -> Result<(), DmaError> {
            self.scopes.push(s.owner);
            self.dma.write(addr, data)
        }
        fn dma_check(&self, addr: u64, len: u64) -> Result<(), DmaError> {
            self.dma.check_range(addr, len)
        }
        fn transmit(&mut self, owner: Owner, frame: &[u8]) -> bool {
            self.scopes.push(owner);
            if self.link {
                self.sent.push(frame.to_vec());
            }
            self.link
        }
        fn raise(&mut self, vector: u16) {
            self.raised.push(vector);
        }
        fn post_event(&mut self, ev: Event) {
            self.events.push(ev);
        }
        fn now(&self) -> std::time::Duration {
            std::time::Duration::ZERO
        }
        fn fault(&mut self, _point: FaultPoint) -> Option<FaultAction> {
            None
        }
    }

    const MAC: MacAddress = MacAddress([2, 0x7E, 0x57, 0, 0, 1]);

    fn params(base: u64, size: u32, vector: u16, queue: u16) -> QueueParams {
        QueueParams {
            base,
            size,
            vector,
            queue,
        }
    }

    fn frame(dst: MacAddress, len: usize) -> Vec<u8> {
        let mut f = vec![0xAB; len];
        f[0..6].copy_from_slice(&dst.0);
        f
    }

    fn tx_desc(env: &Env, ring: u64, i: u64, buf: u64, len: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&buf.to_le_bytes());
        d[8..10].copy_from_slice(&len.to_le_bytes());
        env.dma.write(ring + 16 * i, &d).unwrap();
    }

    #[test]
    fn tx_sends_and_completes() {
        let mut env = Env::new();
        let mut e = Ethernet::new(MAC);
        e.create(&env, false, &params(0x1000, 4, 3, 0)).unwrap();
        let f = frame(MacAddress::BROADCAST, 60);
        env.dma.write(0x8000, &f).unwrap();
        tx_desc(&env, 0x1000, 0, 0x8000, 60);
        tx_desc(&env, 0x1000, 1, 0x8000, 5); // runt: error
        e.doorbell_write(&mut env, eth_db::ETH_BASE + eth_db::TXQ_TAIL, 2);
        assert_eq!(env.sent, vec![f]);
        assert_eq!(env.raised, vec![3]);
        assert_eq!(env.dma.read_obj::<u8>(0x1000 + 11).unwrap(), status::DONE);
        assert_eq!(
            env.dma.read_obj::<u8>(0x1010 + 11).unwrap(),
            status::DONE | status::ERROR
        );
        assert_eq!(e.doorbell_read(eth_db::ETH_BASE + eth_db::TXQ_HEAD), 2);
        let s = e.tx_queue(0).unwrap().stats();
        assert_eq!((s.frames, s.bytes, s.errors), (1, 60, 1));
        // Link down: completed but dropped.
        env.link = false;
        tx_desc(&env, 0x1000, 2, 0x8000, 60);
        e.doorbell_write(&mut env, eth_db::ETH_BASE + eth_db::TXQ_TAIL, 3);
        assert_eq!(e.tx_queue(0).unwrap().stats().drops, 1);
    }

    #[test]
    fn queues_name_themselves_in_fault_scopes() {
        // TX queue 2: `ETH_TX | 2` for descriptor, buffer and status accesses and
        // for the transmission; the admin queue's 0 is never used.
        let mut env = Env::new();
        let mut e = Ethernet::new(MAC);
        e.create(&env, false, &params(0x1000, 4, 1, 2)).unwrap();
        let f = frame(MacAddress::BROADCAST, 60);
        env.dma.write(0x8000, &f).unwrap();
        tx_desc(&env, 0x1000, 0, 0x8000, 60);
        e.doorbell_write(
            &mut env,
            eth_db::ETH_BASE + 2 * eth_db::ETH_STRIDE + eth_db::TXQ_TAIL,
            1,
        );
        assert_eq!(env.sent, vec![f.clone()]);
        assert_eq!(env.scopes, vec![Owner::EthTx(2); 4]);
        // RX queue 1: `ETH_RX | 1`.
        env.scopes.clear();
        e.create(&env, true, &params(0x2000, 4, 1, 1)).unwrap();
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x9000u64.to_le_bytes());
        d[8..10].copy_from_slice(&2048u16.to_le_bytes());
        env.dma.write(0x2000, &d).unwrap();
        e.doorbell_write(
            &mut env,
            eth_db::ETH_BASE + eth_db::ETH_STRIDE + eth_db::RXQ_TAIL,
            1,
        );
        assert_eq!(e.receive(&mut env, &f), RxOutcome::Delivered(1));
        assert!(!env.scopes.is_empty());
        assert!(env.scopes.iter().all(|&q| q == Owner::EthRx(1)));
    }

    #[test]
    fn tx_bad_doorbell_and_dma_fail_the_queue() {
        let mut env = Env::new();
        let mut e = Ethernet::new(MAC);
        e.create(&env, false, &params(0x1000, 4, 1, 2)).unwrap();
        e.doorbell_write(&mut env, eth_db::ETH_BASE + 2 * eth_db::ETH_STRIDE, 4);
        assert!(e.tx_queue(2).unwrap().failed());
        assert_eq!(
            env.events,
            vec![Event {
                code: code::ETH_QUEUE_ERROR,
                handle: 2,
                detail: queue_error::BAD_DOORBELL
            }]
        );
        // Further doorbells ignored; destroy + recreate recovers.
        e.doorbell_write(&mut env, eth_db::ETH_BASE + 2 * eth_db::ETH_STRIDE, 1);
        assert_eq!(
            e.doorbell_read(eth_db::ETH_BASE + 2 * eth_db::ETH_STRIDE + eth_db::TXQ_HEAD),
            0
        );
        e.destroy(false, 2).unwrap();
        assert_eq!(e.destroy(false, 2), Err(AdminStatus::InvalidHandle));
        e.create(&env, false, &params(0x1000, 4, 1, 2)).unwrap();
        env.dma.set_bus_master(false);
        e.doorbell_write(&mut env, eth_db::ETH_BASE + 2 * eth_db::ETH_STRIDE, 1);
        assert!(e.tx_queue(2).unwrap().failed());
    }

    #[test]
    fn create_validation() {
        let env = Env::new();
        let mut e = Ethernet::new(MAC);
        for p in [
            params(0x1000, 3, 0, 0),
            params(0x1000, 8192, 0, 0),
            params(0x1008, 4, 0, 0),
            params(0x1000, 4, 16, 0),
            params(0x1000, 4, 0, 8),
            params(0xFFFF0, 4096, 0, 0),
        ] {
            assert_eq!(
                e.create(&env, true, &p),
                Err(AdminStatus::InvalidParam),
                "{p:?}"
            );
        }
        e.create(&env, true, &params(0x1000, 4, 0, 0)).unwrap();
        assert_eq!(
            e.create(&env, true, &params(0x1000, 4, 0, 0)),
            Err(AdminStatus::Busy)
        );
    }

    #[test]
    fn rx_filter_and_delivery() {
        let mut env = Env::new();
        let mut e = Ethernet::new(MAC);
        assert_eq!(e.receive(&mut env, &frame(MAC, 60)), RxOutcome::NoQueue);
        e.create(&env, true, &params(0x2000, 4, 2, 0)).unwrap();
        for i in 0..3u64 {
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&(0x9000 + 0x800 * i).to_le_bytes());
            d[8..10].copy_from_slice(&2048u16.to_le_bytes());
            env.dma.write(0x2000 + 16 * i, &d).unwrap();
        }
        assert_eq!(e.receive(&mut env, &frame(MAC, 60)), RxOutcome::NoBuffer);
        e.doorbell_write(&mut env, eth_db::ETH_BASE + eth_db::RXQ_TAIL, 3);
        let other = MacAddress([2, 0, 0, 0, 0, 9]);
        let mcast = MacAddress([1, 0, 0x5E, 0, 0, 1]);
        assert_eq!(e.receive(&mut env, &frame(other, 60)), RxOutcome::Filtered);
        assert_eq!(e.receive(&mut env, &frame(mcast, 60)), RxOutcome::Filtered);
        assert_eq!(e.receive(&mut env, &frame(MAC, 10)), RxOutcome::Runt);
        assert_eq!(e.receive(&mut env, &frame(MAC, 1600)), RxOutcome::TooLong);
        assert_eq!(
            e.receive(&mut env, &frame(MAC, 100)),
            RxOutcome::Delivered(0)
        );
        let mut b = [0u8; 100];
        env.dma.read(0x9000, &mut b).unwrap();
        assert_eq!(&b[..], &frame(MAC, 100)[..]);
        assert_eq!(env.dma.read_u16(0x2000 + 10).unwrap(), 100);
        assert_eq!(env.dma.read_obj::<u8>(0x2000 + 13).unwrap(), status::DONE);
        assert_eq!(
            e.receive(&mut env, &frame(MacAddress::BROADCAST, 60)),
            RxOutcome::Delivered(0)
        );
        assert_eq!(
            env.dma.read_obj::<u8>(0x2010 + 13).unwrap(),
            status::DONE | status::BROADCAST
        );
        e.set_multicast(vec![mcast]).unwrap();
        e.set_filter(filter::DEFAULT | filter::MULTICAST).unwrap();
        assert_eq!(
            e.receive(&mut env, &frame(mcast, 60)),
            RxOutcome::Delivered(0)
        );
        assert_eq!(env.raised, vec![2, 2, 2]);
        assert_eq!(e.receive(&mut env, &frame(MAC, 60)), RxOutcome::NoBuffer);
        e.set_filter(filter::PROMISCUOUS).unwrap();
        assert!(e.accepts(other));
        assert_eq!(e.set_filter(0x100), Err(AdminStatus::InvalidParam));
        assert_eq!(e.set_multicast(vec![MAC]), Err(AdminStatus::InvalidParam));
    }

    #[test]
    fn mtu_and_mac_checks() {
        let mut e = Ethernet::new(MAC);
        assert_eq!(e.max_frame(), 1518);
        assert_eq!(e.set_mtu(67), Err(AdminStatus::InvalidParam));
        assert_eq!(e.set_mtu(9001), Err(AdminStatus::InvalidParam));
        e.set_mtu(9000).unwrap();
        assert_eq!(e.max_frame(), 9018);
        assert_eq!(
            e.set_mac(MacAddress::BROADCAST),
            Err(AdminStatus::InvalidParam)
        );
        assert_eq!(
            e.set_mac(MacAddress([0; 6])),
            Err(AdminStatus::InvalidParam)
        );
        e.set_mac(MacAddress([2, 1, 1, 1, 1, 1])).unwrap();
        e.reset();
        assert_eq!(
            (e.mac(), e.mtu(), e.filter()),
            (MAC, DEFAULT_MTU, filter::DEFAULT)
        );
    }

    #[test]
    fn mac_parse_display() {
        let m: MacAddress = "02:7e:57:00:00:01".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x7E, 0x57, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:7e:57:00:00:01");
        assert_eq!(m.low_u32(), 0x0057_7E02);
        assert_eq!(m.high_u32(), 0x0100);
        assert!(!m.is_multicast());
        assert!(MacAddress::BROADCAST.is_multicast());
        for bad in [
            "",
            "02:7e:57:00:00",
            "02:7e:57:00:00:01:02",
            "zz:7e:57:00:00:01",
            "002:7e:57:00:00:1",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
    }
}
