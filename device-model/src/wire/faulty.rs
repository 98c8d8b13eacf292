//! [`FaultyWire`]: applies fault-engine answers to frames at the `WireTx` and
//! `WireRx` fault sites.
//!
//! For every frame sent the wrapper asks its decider about
//! `FaultPoint { site: WireTx, .. }`, for every frame received about
//! `FaultPoint { site: WireRx, .. }`. Scope: on receive, `queue` is the frame's
//! BTH destination QP (the local QP) when the frame is RoCEv2, else `None`; on
//! transmit the device says which local queue (QP or Ethernet queue) sends the
//! frame by calling [`FaultyWire::send_with_scope`]; plain
//! [`WireBackend::send`] uses an empty scope. Answers:
//!
//! | action | effect |
//! | --- | --- |
//! | `Drop` | the frame is lost |
//! | `Duplicate` | the frame is delivered twice, back to back |
//! | `Reorder` | the frame is held back and delivered right after the next frame in the same direction (if another `Reorder` comes first, the older held frame goes out and the new one is held) |
//! | `Corrupt { offset, mask }` | one byte is XORed with `mask` (0 counts as 1), see [`corrupt_frame`]; on a RoCEv2 frame the byte lies in the ICRC-covered part, so the receiver's ICRC check rejects it |
//! | `Delay { micros }` | the frame is held until `now + micros` on the wrapper's clock and then delivered |
//! | anything else | not a wire fault: the frame passes unchanged |
//!
//! Held and delayed frames are released by later calls to `send`/`try_recv` or by
//! [`FaultyWire::poll`]; a device that uses delays calls `poll` when
//! [`FaultyWire::next_deadline`] passes. Frames held for reordering wait for the
//! next frame indefinitely; [`FaultyWire::flush_held`] releases them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{check_frame_len, WireBackend, WireError};
use crate::fault::{FaultAction, FaultPoint, FaultScope, FaultSite};
use crate::roce;

/// Answers "what goes wrong with this frame?"; the device plugs in
/// `move |point, now| engine.check(point, now)`.
pub type WireDecider = Box<dyn FnMut(&FaultPoint, Duration) -> Option<FaultAction> + Send>;
/// The time base for delays (device time).
pub type WireClock = Box<dyn FnMut() -> Duration + Send>;

/// How often each fault struck in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Frames dropped.
    pub dropped: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames held back behind the next one.
    pub reordered: u64,
    /// Frames with a byte flipped.
    pub corrupted: u64,
    /// Frames delivered late.
    pub delayed: u64,
    /// Held or delayed frames whose eventual transmission failed (lost).
    pub release_failures: u64,
}

/// Fault counts for both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireFaultStats {
    /// Faults applied to frames sent.
    pub tx: FaultCounts,
    /// Faults applied to frames received.
    pub rx: FaultCounts,
}

type Delayed = BinaryHeap<Reverse<(Duration, u64, Vec<u8>)>>;

/// A backend wrapper that injects wire faults (see the module documentation).
pub struct FaultyWire<B: WireBackend> {
    inner: B,
    decide: WireDecider,
    clock: WireClock,
    tx_held: Option<Vec<u8>>,
    rx_held: Option<Vec<u8>>,
    tx_delayed: Delayed,
    rx_delayed: Delayed,
    rx_ready: VecDeque<Vec<u8>>,
    seq: u64,
    stats: WireFaultStats,
}

/// XORs `mask` (0 counts as 1) into one byte of `frame`. For a RoCEv2 frame the
/// byte is chosen as `offset` modulo the ICRC-protected range (BTH through ICRC,
/// skipping BTH byte 4, which the ICRC does not cover); for any other frame,
/// `offset` modulo the frame length. Returns the index changed (`None` for an
/// empty frame).
pub fn corrupt_frame(frame: &mut [u8], offset: u32, mask: u8) -> Option<usize> {
    let mask = if mask == 0 { 1 } else { mask };
    let at = match roce::transport_range(frame) {
        Some(r) => {
            let n = r.len() - 1; // one uncovered byte skipped
            let i = offset as usize % n;
            r.start + if i >= 4 { i + 1 } else { i }
        }
        None if frame.is_empty() => return None,
        None => offset as usize % frame.len(),
    };
    frame[at] ^= mask;
    Some(at)
}

fn monotonic_clock() -> WireClock {
    let start = Instant::now();
    Box::new(move || start.elapsed())
}

impl<B: WireBackend> FaultyWire<B> {
    /// Wraps `inner`; delays are measured on a monotonic clock starting now.
    pub fn new(inner: B, decide: WireDecider) -> Self {
        Self::with_clock(inner, decide, monotonic_clock())
    }

    /// Wraps `inner` with an explicit clock (device time).
    pub fn with_clock(inner: B, decide: WireDecider, clock: WireClock) -> Self {
        FaultyWire {
            inner,
            decide,
            clock,
            tx_held: None,
            rx_held: None,
            tx_delayed: BinaryHeap::new(),
            rx_delayed: BinaryHeap::new(),
            rx_ready: VecDeque::new(),
            seq: 0,
            stats: WireFaultStats::default(),
        }
    }

    /// How many faults of each kind were applied, per direction.
    pub fn stats(&self) -> WireFaultStats {
        self.stats
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend, writable.
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Unwraps, discarding held and delayed frames.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// The earliest time (on the wrapper's clock) a delayed frame becomes due.
    pub fn next_deadline(&self) -> Option<Duration> {
        let t = self.tx_delayed.peek().map(|Reverse((t, _, _))| *t);
        let r = self.rx_delayed.peek().map(|Reverse((t, _, _))| *t);
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True if received frames are waiting inside the wrapper (ready, held or
    /// delayed), which the backend's fd does not signal.
    pub fn has_pending_rx(&self) -> bool {
        !self.rx_ready.is_empty() || self.rx_held.is_some() || !self.rx_delayed.is_empty()
    }

    /// Sends delayed frames that are due and moves due received frames to the
    /// receive queue.
    pub fn poll(&mut self) {
        let now = (self.clock)();
        while let Some(Reverse((due, _, _))) = self.tx_delayed.peek() {
            if *due > now {
                break;
            }
            if let Some(Reverse((_, _, f))) = self.tx_delayed.pop() {
                self.release_tx(&f);
            }
        }
        while let Some(Reverse((due, _, _))) = self.rx_delayed.peek() {
            if *due > now {
                break;
            }
            if let Some(Reverse((_, _, f))) = self.rx_delayed.pop() {
                self.rx_ready.push_back(f);
            }
        }
    }

    /// Releases frames held for reordering, in both directions.
    pub fn flush_held(&mut self) {
        if let Some(f) = self.tx_held.take() {
            self.release_tx(&f);
        }
        if let Some(f) = self.rx_held.take() {
            self.rx_ready.push_back(f);
        }
    }

    fn release_tx(&mut self, frame: &[u8]) {
        if let Err(e) = self.inner.send(frame) {
            tracing::debug!(error = %e, "a held or delayed frame was lost on release");
            self.stats.tx.release_failures += 1;
        }
    }

    fn ask(&mut self, site: FaultSite, scope: FaultScope, now: Duration) -> Option<FaultAction> {
        (self.decide)(&FaultPoint { site, scope }, now)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Handles one frame that arrived from the inner backend.
    fn receive_one(&mut self, mut frame: Vec<u8>, now: Duration) {
        let scope = FaultScope {
            queue: roce::peek_bth(&frame).map(|b| b.dest_qp),
            ..FaultScope::default()
        };
        match self.ask(FaultSite::WireRx, scope, now) {
            Some(FaultAction::Drop) => {
                self.stats.rx.dropped += 1;
                return;
            }
            Some(FaultAction::Delay { micros }) => {
                self.stats.rx.delayed += 1;
                let seq = self.next_seq();
                self.rx_delayed
                    .push(Reverse((now + Duration::from_micros(micros), seq, frame)));
                return;
            }
            Some(FaultAction::Reorder) => {
                self.stats.rx.reordered += 1;
                if let Some(old) = self.rx_held.replace(frame) {
                    self.rx_ready.push_back(old);
                }
                return;
            }
            Some(FaultAction::Duplicate) => {
                self.stats.rx.duplicated += 1;
                self.rx_ready.push_back(frame.clone());
            }
            Some(FaultAction::Corrupt { offset, mask }) => {
                self.stats.rx.corrupted += 1;
                corrupt_frame(&mut frame, offset, mask);
            }
            _ => {}
        }
        self.rx_ready.push_back(frame);
        if let Some(held) = self.rx_held.take() {
            self.rx_ready.push_back(held);
        }
    }
}

impl<B: WireBackend> FaultyWire<B> {
    /// Sends `frame` like [`WireBackend::send`], telling the fault engine which
    /// local object sends it (`scope.queue` = QP number or Ethernet queue).
    pub fn send_with_scope(&mut self, frame: &[u8], scope: FaultScope) -> Result<(), WireError> {
        check_frame_len(frame)?;
        self.poll();
        let now = (self.clock)();
        let mut owned;
        let mut out = frame;
        let mut copies = 1;
        match self.ask(FaultSite::WireTx, scope, now) {
            Some(FaultAction::Drop) => {
                self.stats.tx.dropped += 1;
                return Ok(());
            }
            Some(FaultAction::Delay { micros }) => {
                self.stats.tx.delayed += 1;
                let seq = self.next_seq();
                self.tx_delayed.push(Reverse((
                    now + Duration::from_micros(micros),
                    seq,
                    frame.to_vec(),
                )));
                return Ok(());
            }
            Some(FaultAction::Reorder) => {
                self.stats.tx.reordered += 1;
                if let Some(old) = self.tx_held.replace(frame.to_vec()) {
                    self.release_tx(&old);
                }
                return Ok(());
            }
            Some(FaultAction::Duplicate) => {
                self.stats.tx.duplicated += 1;
                copies = 2;
            }
            Some(FaultAction::Corrupt { offset, mask }) => {
                self.stats.tx.corrupted += 1;
                owned = frame.to_vec();
                corrupt_frame(&mut owned, offset, mask);
                out = &owned;
            }
            _ => {}
        }
        let mut result = Ok(());
        for _ in 0..copies {
            if let Err(e) = self.inner.send(out) {
                result = Err(e);
                break;
            }
        }
        if let Some(held) = self.tx_held.take() {
            self.release_tx(&held);
        }
        result
    }
}

impl<B: WireBackend> WireBackend for FaultyWire<B> {
    fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.send_with_scope(frame, FaultScope::default())
    }

    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        self.poll();
        let now = (self.clock)();
        while self.rx_ready.is_empty() {
            match self.inner.try_recv()? {
                Some(f) => self.receive_one(f, now),
                None => break,
            }
        }
        Ok(self.rx_ready.pop_front())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roce::opcode;
    use crate::roce::tests::sample_packet;
    use crate::wire::LoopbackWire;
    use std::sync::{Arc, Mutex};

    /// A frame whose PSN identifies it.
    fn frame(psn: u32) -> Vec<u8> {
        let mut p = sample_packet(opcode::SEND_ONLY, 8);
        p.bth.psn = psn;
        roce::encode(&p).unwrap()
    }

    fn psn_of(f: &[u8]) -> u32 {
        roce::decode(f).unwrap().bth.psn
    }

    /// A decider that answers from a script keyed by (site, call index) and
    /// records every point it was asked about.
    type Log = Arc<Mutex<Vec<(FaultPoint, Duration)>>>;

    fn scripted(script: Vec<(FaultSite, usize, FaultAction)>) -> (WireDecider, Log) {
        let log: Log = Arc::default();
        let seen = log.clone();
        let mut counts = std::collections::HashMap::<FaultSite, usize>::new();
        let d: WireDecider = Box::new(move |p: &FaultPoint, now| {
            seen.lock().unwrap().push((*p, now));
            let n = counts.entry(p.site).or_default();
            let i = *n;
            *n += 1;
            script
                .iter()
                .find(|(s, k, _)| *s == p.site && *k == i)
                .map(|(_, _, a)| *a)
        });
        (d, log)
    }

    fn drain<B: WireBackend>(w: &mut B) -> Vec<u32> {
        let mut v = Vec::new();
        while let Some(f) = w.try_recv().unwrap() {
            v.push(psn_of(&f));
        }
        v
    }

    fn manual_clock() -> (WireClock, Arc<Mutex<Duration>>) {
        let t = Arc::new(Mutex::new(Duration::ZERO));
        let t2 = t.clone();
        (Box::new(move || *t2.lock().unwrap()), t)
    }

    #[test]
    fn no_faults_pass_frames_through_with_scope() {
        let (d, log) = scripted(vec![]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        w.send(&frame(1)).unwrap();
        let qp7 = FaultScope {
            queue: Some(7),
            ..FaultScope::default()
        };
        w.send_with_scope(&frame(2), qp7).unwrap();
        w.send(&frame(3)).unwrap();
        assert_eq!(drain(&mut w), vec![1, 2, 3]);
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 6);
        let scopes: Vec<_> = log.iter().map(|(p, _)| (p.site, p.scope.queue)).collect();
        assert_eq!(
            scopes,
            vec![
                (FaultSite::WireTx, None),
                (FaultSite::WireTx, Some(7)),
                (FaultSite::WireTx, None),
                // Received frames are scoped by their BTH destination QP.
                (FaultSite::WireRx, Some(0x11)),
                (FaultSite::WireRx, Some(0x11)),
                (FaultSite::WireRx, Some(0x11)),
            ]
        );
        assert_eq!(w.stats(), WireFaultStats::default());
    }

    #[test]
    fn tx_drop_dup_reorder() {
        let (d, _) = scripted(vec![
            (FaultSite::WireTx, 1, FaultAction::Drop),
            (FaultSite::WireTx, 2, FaultAction::Duplicate),
            (FaultSite::WireTx, 3, FaultAction::Reorder),
        ]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        for psn in 1..=5 {
            w.send(&frame(psn)).unwrap();
        }
        // 2 dropped, 3 twice, 4 held until 5 went out.
        assert_eq!(drain(&mut w), vec![1, 3, 3, 5, 4]);
        let s = w.stats().tx;
        assert_eq!((s.dropped, s.duplicated, s.reordered), (1, 1, 1));
    }

    #[test]
    fn rx_drop_dup_reorder() {
        let (d, _) = scripted(vec![
            (FaultSite::WireRx, 0, FaultAction::Reorder),
            (FaultSite::WireRx, 2, FaultAction::Drop),
            (FaultSite::WireRx, 3, FaultAction::Duplicate),
        ]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        for psn in 1..=5 {
            w.send(&frame(psn)).unwrap();
        }
        assert_eq!(drain(&mut w), vec![2, 1, 4, 4, 5]);
        let s = w.stats().rx;
        assert_eq!((s.dropped, s.duplicated, s.reordered), (1, 1, 1));
    }

    #[test]
    fn reorder_without_a_next_frame_waits_until_flushed() {
        let (d, _) = scripted(vec![(FaultSite::WireTx, 0, FaultAction::Reorder)]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        w.send(&frame(9)).unwrap();
        assert_eq!(drain(&mut w), Vec::<u32>::new());
        w.flush_held();
        assert_eq!(drain(&mut w), vec![9]);
    }

    #[test]
    fn two_reorders_in_a_row_release_the_older_frame() {
        let (d, _) = scripted(vec![
            (FaultSite::WireTx, 0, FaultAction::Reorder),
            (FaultSite::WireTx, 1, FaultAction::Reorder),
        ]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        for psn in 1..=3 {
            w.send(&frame(psn)).unwrap();
        }
        assert_eq!(drain(&mut w), vec![1, 3, 2]);
    }

    #[test]
    fn corruption_is_caught_by_the_icrc() {
        for offset in [0u32, 3, 4, 5, 11, 40, 1000, u32::MAX] {
            for mask in [0u8, 1, 0x80, 0xFF] {
                let (d, _) = scripted(vec![(
                    FaultSite::WireTx,
                    0,
                    FaultAction::Corrupt { offset, mask },
                )]);
                let mut w = FaultyWire::new(LoopbackWire::new(), d);
                let sent = frame(1);
                w.send(&sent).unwrap();
                let got = w.try_recv().unwrap().unwrap();
                assert_ne!(got, sent);
                assert!(
                    matches!(roce::decode(&got), Err(roce::DecodeError::BadIcrc { .. })),
                    "offset {offset} mask {mask}"
                );
                assert_eq!(w.stats().tx.corrupted, 1);
            }
        }
        // Receive-side corruption too.
        let (d, _) = scripted(vec![(
            FaultSite::WireRx,
            0,
            FaultAction::Corrupt {
                offset: 7,
                mask: 0x10,
            },
        )]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        w.send(&frame(1)).unwrap();
        let got = w.try_recv().unwrap().unwrap();
        assert!(roce::decode(&got).is_err());
        assert_eq!(w.stats().rx.corrupted, 1);
    }

    #[test]
    fn corrupt_frame_covers_every_protected_byte_and_plain_frames() {
        let f = frame(1);
        let range = roce::transport_range(&f).unwrap();
        let mut hit = std::collections::BTreeSet::new();
        for off in 0..range.len() as u32 * 2 {
            let mut g = f.clone();
            hit.insert(corrupt_frame(&mut g, off, 0xFF).unwrap());
        }
        let expected: std::collections::BTreeSet<usize> =
            range.clone().filter(|&i| i != range.start + 4).collect();
        assert_eq!(hit, expected);
        let mut plain = vec![0u8; 20];
        assert_eq!(corrupt_frame(&mut plain, 25, 0x0F), Some(5));
        assert_eq!(plain[5], 0x0F);
        assert_eq!(corrupt_frame(&mut [], 1, 1), None);
    }

    #[test]
    fn delays_release_at_their_due_time_in_order() {
        let (d, log) = scripted(vec![
            (FaultSite::WireTx, 0, FaultAction::Delay { micros: 500 }),
            (FaultSite::WireTx, 1, FaultAction::Delay { micros: 100 }),
            (FaultSite::WireRx, 1, FaultAction::Delay { micros: 1000 }),
        ]);
        let (clock, t) = manual_clock();
        let mut w = FaultyWire::with_clock(LoopbackWire::new(), d, clock);
        w.send(&frame(1)).unwrap();
        w.send(&frame(2)).unwrap();
        w.send(&frame(3)).unwrap();
        assert_eq!(w.next_deadline(), Some(Duration::from_micros(100)));
        assert_eq!(drain(&mut w), vec![3]);
        *t.lock().unwrap() = Duration::from_micros(100);
        // Frame 2 goes out; on receive it is the second WireRx: delayed 1000 µs.
        assert_eq!(drain(&mut w), Vec::<u32>::new());
        assert!(w.has_pending_rx());
        assert_eq!(w.next_deadline(), Some(Duration::from_micros(500)));
        *t.lock().unwrap() = Duration::from_micros(600);
        assert_eq!(drain(&mut w), vec![1]);
        assert_eq!(w.next_deadline(), Some(Duration::from_micros(1100)));
        *t.lock().unwrap() = Duration::from_micros(1100);
        assert_eq!(drain(&mut w), vec![2]);
        assert_eq!(w.next_deadline(), None);
        assert!(!w.has_pending_rx());
        assert_eq!(w.stats().tx.delayed, 2);
        assert_eq!(w.stats().rx.delayed, 1);
        // The decider saw device time.
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .any(|(_, now)| *now == Duration::from_micros(100)));
    }

    #[test]
    fn non_wire_actions_pass_frames_unchanged() {
        let (d, _) = scripted(vec![
            (FaultSite::WireTx, 0, FaultAction::DmaError),
            (FaultSite::WireRx, 0, FaultAction::Fatal),
        ]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        w.send(&frame(4)).unwrap();
        assert_eq!(drain(&mut w), vec![4]);
    }

    #[test]
    fn plain_ethernet_frames_have_no_queue_scope() {
        let (d, log) = scripted(vec![]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        let mut f = vec![0u8; 60];
        f[12] = 0x88;
        f[13] = 0xB5;
        w.send(&f).unwrap();
        assert_eq!(w.try_recv().unwrap(), Some(f));
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .all(|(p, _)| p.scope.queue.is_none()));
    }

    #[test]
    fn oversized_frames_are_refused_before_faults() {
        let (d, log) = scripted(vec![]);
        let mut w = FaultyWire::new(LoopbackWire::new(), d);
        let e = w
            .send(&vec![0; crate::wire::MAX_FRAME_LEN + 1])
            .unwrap_err();
        assert!(matches!(e, WireError::FrameTooLarge { .. }) && e.is_transient());
        assert!(log.lock().unwrap().is_empty());
    }
}
