//! The send path as NDIS drives it: the guest builds NET_BUFFER_LISTs (one NET_BUFFER each,
//! over one MDL, or two for the largest frame) for frames of several sizes, hands them to MiniportSendNetBufferLists while the
//! adapter is Running, and checks that every one comes back exactly once through
//! NdisMSendNetBufferListsComplete (flags consistent with the caller's IRQL) within
//! Driver Verifier's `NdisTimedDataSend` limit, and that `OID_GEN_XMIT_OK` counts them.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use ndis_abi::*;

use super::{interrupt, violation, DISPATCH_LEVEL, IRQL};
use crate::sync::IrqLock;

/// Driver Verifier's `NdisTimedDataSend`: a send completes within 30 s.
const SEND_TIMEOUT_MS: u64 = 30_000;
/// Frame sizes the guest sends (whole Ethernet frames, header included): the minimum, a
/// middle size and the largest at MTU 1500.
pub const FRAME_SIZES: [usize; 3] = [60, 512, 1514];
/// Ethertype of the test frames (IEEE local experimental).
const ETHERTYPE: [u8; 2] = [0x88, 0xB5];

/// NBLs handed to the driver and not yet completed, with the status each came back with.
pub static OUTSTANDING: IrqLock<BTreeMap<u64, Option<NDIS_STATUS>>> = IrqLock::new(BTreeMap::new());

/// Records the driver's completion of a chain; each NBL must be outstanding and not yet
/// completed (`NdisNblDoubleComplete`: the driver completes only NBLs it owns), and the flags
/// must match the IRQL (`NdisNblFlagsIrql`). Returns the violations found.
pub fn completed(chain: *mut NET_BUFFER_LIST, flags: u32) -> Vec<alloc::string::String> {
    let mut problems = Vec::new();
    if let Some(why) = flags_mismatch(
        "SendCompleteFlags",
        flags,
        NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    ) {
        problems.push(why);
    }
    let mut nbl = chain;
    let mut out = OUTSTANDING.lock();
    while !nbl.is_null() {
        // Each NBL is checked against the guest's own record before anything is read from it.
        let next = match out.get_mut(&(nbl as u64)) {
            Some(slot @ None) => {
                // SAFETY: the guest allocated this NBL and it is still alive.
                let (status, next) = unsafe { ((*nbl).Status, (*nbl).Next) };
                *slot = Some(status);
                next
            }
            Some(Some(first)) => {
                problems.push(format!(
                    "NdisNblDoubleComplete: NBL {nbl:p} completed twice (first with {first:#010x}): the driver no longer owned it"
                ));
                break;
            }
            None => {
                problems.push(format!(
                    "NdisNblDoubleComplete: NBL {nbl:p} completed but the driver does not own it (never sent to it)"
                ));
                break;
            }
        };
        nbl = next;
    }
    problems
}

/// `NdisNblFlagsIrql`: the `DISPATCH_LEVEL` bit (`dispatch_bit`) of a completion's or an
/// indication's `flags` (`what`) must say whether the caller runs at DISPATCH_LEVEL; the
/// violation's text, or None.
pub fn flags_mismatch(what: &str, flags: u32, dispatch_bit: u32) -> Option<alloc::string::String> {
    let irql = IRQL.load(core::sync::atomic::Ordering::Relaxed);
    let at_dispatch = irql == DISPATCH_LEVEL;
    ((flags & dispatch_bit != 0) != at_dispatch).then(|| {
        format!(
            "NdisNblFlagsIrql: {what} {flags:#x} do not match the caller's IRQL {irql} (the DISPATCH_LEVEL flag {dispatch_bit:#x} must be set exactly at DISPATCH_LEVEL)"
        )
    })
}

/// Forgets every send record (leaks were reported): an emptied map keeps its nodes, so a
/// fresh one is put in before the heap is compared with its baseline.
pub fn reset() {
    *OUTSTANDING.lock() = BTreeMap::new();
}

/// `NdisNblLeak`: the send NBLs handed to the driver and never completed, as violation texts
/// (checked once the adapter has been halted).
pub fn leaks() -> Vec<alloc::string::String> {
    let out = OUTSTANDING.lock();
    let never: Vec<u64> = out
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(nbl, _)| *nbl)
        .collect();
    if never.is_empty() {
        return Vec::new();
    }
    alloc::vec![format!(
        "NdisNblLeak: {} send NBL(s) never completed (first {:#x}): NdisMSendNetBufferListsComplete owed",
        never.len(),
        never[0]
    )]
}

/// One test frame with its NBL, NET_BUFFER and MDLs (kept alive until completed). Frames
/// longer than [`SPLIT_AT`] bytes are described by two MDLs (two scatter/gather pieces), as
/// a stack that prepends a header buffer would hand them down.
struct Frame {
    data: Vec<u8>,
    /// Filled once before they are linked, never grown afterwards (their addresses are in
    /// the chain).
    mdls: Vec<MDL>,
    nb: Box<NET_BUFFER>,
    nbl: Box<NET_BUFFER_LIST>,
}

/// Frames longer than this are split over two MDLs at this offset (the Ethernet header and
/// the start of the payload, then the rest).
const SPLIT_AT: usize = 64;
/// Frames at least this long are split.
const SPLIT_FROM: usize = 1000;

/// A frame of `size` bytes from `mac` to `mac` whose payload is a pattern seeded by `seed`.
pub fn test_frame(mac: [u8; 6], size: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; size];
    f[..6].copy_from_slice(&mac);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE);
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = seed.wrapping_add((i as u8).wrapping_mul(7));
    }
    f
}

fn build(data: Vec<u8>) -> Frame {
    let bounds: Vec<(usize, usize)> = if data.len() >= SPLIT_FROM {
        vec![(0, SPLIT_AT), (SPLIT_AT, data.len())]
    } else {
        vec![(0, data.len())]
    };
    // SAFETY: MDL, NET_BUFFER and NET_BUFFER_LIST are plain data: all-zero is valid.
    let mut f = unsafe {
        Frame {
            data,
            mdls: Vec::new(),
            nb: Box::new(core::mem::zeroed()),
            nbl: Box::new(core::mem::zeroed()),
        }
    };
    for (start, end) in bounds {
        // SAFETY: as above.
        let mut mdl: MDL = unsafe { core::mem::zeroed() };
        mdl.Size = core::mem::size_of::<MDL>() as i16;
        mdl.MdlFlags = MDL_SOURCE_IS_NONPAGED_POOL;
        // SAFETY: `start` <= the frame's length.
        let va = unsafe { f.data.as_mut_ptr().add(start) };
        mdl.MappedSystemVa = va.cast();
        mdl.StartVa = ((va as u64) & !0xFFF) as *mut core::ffi::c_void;
        mdl.ByteOffset = (va as u64 & 0xFFF) as u32;
        mdl.ByteCount = (end - start) as u32;
        f.mdls.push(mdl);
    }
    for i in 1..f.mdls.len() {
        let next: *mut MDL = &mut f.mdls[i];
        f.mdls[i - 1].Next = next;
    }
    f.nb.CurrentMdl = &mut f.mdls[0];
    f.nb.MdlChain = &mut f.mdls[0];
    f.nb.DataLength = f.data.len() as u64;
    f.nbl.FirstNetBuffer = (&mut *f.nb as *mut NET_BUFFER).cast();
    f
}

/// Sends one NBL per size of [`FRAME_SIZES`] in one chain at PASSIVE_LEVEL and waits for
/// their completions. Returns how many completed with NDIS_STATUS_SUCCESS.
pub fn send_frames(handler: MiniportSendNetBufferListsFn, ctx: NDIS_HANDLE, mac: [u8; 6]) -> usize {
    let frames = FRAME_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| test_frame(mac, size, i as u8))
        .collect();
    send_chain(handler, ctx, frames)
}

/// Sends `data` as one chain of NBLs at PASSIVE_LEVEL and waits for their completions.
/// Returns how many completed with NDIS_STATUS_SUCCESS.
fn send_chain(
    handler: MiniportSendNetBufferListsFn,
    ctx: NDIS_HANDLE,
    data: Vec<Vec<u8>>,
) -> usize {
    let burst = post_chain(handler, ctx, data);
    burst.wait()
}

/// Frames handed to the driver in one chain, kept alive until every NBL has come back.
pub struct Burst {
    frames: Vec<Frame>,
}

/// Hands `data` to the driver as one chain of NBLs (at the caller's IRQL, with send flags 0:
/// PASSIVE_LEVEL) without waiting: the returned [`Burst`] keeps the frames alive.
pub fn post_chain(
    handler: MiniportSendNetBufferListsFn,
    ctx: NDIS_HANDLE,
    data: Vec<Vec<u8>>,
) -> Burst {
    let mut frames: Vec<Frame> = data.into_iter().map(build).collect();
    // Chain them.
    for i in (0..frames.len().saturating_sub(1)).rev() {
        let next: *mut NET_BUFFER_LIST = &mut *frames[i + 1].nbl;
        frames[i].nbl.Next = next;
    }
    {
        let mut out = OUTSTANDING.lock();
        for f in &frames {
            out.insert(&*f.nbl as *const NET_BUFFER_LIST as u64, None);
        }
    }
    let head: *mut NET_BUFFER_LIST = &mut *frames[0].nbl;
    crate::println!(
        "ndis: MiniportSendNetBufferLists: {} frames of {:?} bytes",
        frames.len(),
        frames.iter().map(|f| f.data.len()).collect::<Vec<_>>()
    );
    // SAFETY: the driver's handler with its context; the chain stays alive until every NBL
    // has been completed (or the guest gives up and leaks it).
    unsafe { handler(ctx, head, 0, 0) };
    Burst { frames }
}

impl Burst {
    /// The status each NBL of the burst came back with so far (None: still with the driver).
    pub fn statuses(&self) -> Vec<Option<NDIS_STATUS>> {
        let out = OUTSTANDING.lock();
        self.frames
            .iter()
            .map(|f| {
                out.get(&(&*f.nbl as *const NET_BUFFER_LIST as u64))
                    .copied()
                    .flatten()
            })
            .collect()
    }

    /// Waits (`NdisTimedDataSend`, 30 s) until every NBL of the burst has been completed;
    /// forgets them and returns how many completed with NDIS_STATUS_SUCCESS (0 after a
    /// timeout, whose NBLs are kept alive for ever: the driver may still touch them).
    pub fn wait(self) -> usize {
        let all_done = || self.statuses().iter().all(|s| s.is_some());
        if !interrupt::wait_until(SEND_TIMEOUT_MS, all_done) {
            violation(format!(
                "NdisTimedDataSend: {} of {} NBLs not completed within {SEND_TIMEOUT_MS} ms",
                self.statuses().iter().filter(|v| v.is_none()).count(),
                self.frames.len()
            ));
            core::mem::forget(self);
            return 0;
        }
        let done = self.statuses();
        {
            let mut out = OUTSTANDING.lock();
            for f in &self.frames {
                out.remove(&(&*f.nbl as *const NET_BUFFER_LIST as u64));
            }
        }
        let ok = done
            .iter()
            .filter(|s| **s == Some(NDIS_STATUS_SUCCESS))
            .count();
        crate::println!(
            "ndis: send completions: {ok} of {} NBLs completed with NDIS_STATUS_SUCCESS",
            done.len()
        );
        ok
    }
}

/// How long the guest waits for sent frames to come back through a loopback wire (plan key
/// `guest.ethernet=loopback`); without one it does not wait: the device drops them
/// (docs/device-spec.md §5.6) and none come back.
const RECEIVE_WAIT_MS: u64 = 1000;

/// Waits (when `loopback`: the wire sends frames back) for the frames of [`FRAME_SIZES`] to
/// be indicated back, checks every indicated frame is one of them byte for byte, and returns
/// the NBLs through `ret` (PASSIVE_LEVEL, as a protocol would). Returns how many of the sent
/// frames came back intact.
pub fn receive_frames(
    ret: MiniportReturnNetBufferListsFn,
    ctx: NDIS_HANDLE,
    mac: [u8; 6],
    loopback: bool,
) -> usize {
    let expected: Vec<Vec<u8>> = FRAME_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| test_frame(mac, size, i as u8))
        .collect();
    let arrived = || super::netbuf::NETBUF.lock().received.len() >= expected.len();
    if loopback {
        interrupt::wait_until(RECEIVE_WAIT_MS, arrived);
    }
    let received = core::mem::take(&mut super::netbuf::NETBUF.lock().received);
    let mut matched = vec![false; expected.len()];
    // Ethernet may deliver a frame twice (a wire that duplicates, as the fault scenarios
    // make it), or late (a wire that reorders may hold a frame of an earlier step until the
    // next one leaves): a second copy of a sent frame, or an intact test frame of an earlier
    // step, is counted, not a fault of the driver. A frame the guest never sent is one (the
    // driver damaged or invented it).
    let mut duplicates = 0;
    for (nbl, frame) in &received {
        match expected.iter().position(|e| e == frame) {
            Some(i) if !matched[i] => matched[i] = true,
            Some(_) => duplicates += 1,
            None if is_earlier_test_frame(mac, frame) => duplicates += 1,
            None => violation(format!(
                "NBL {nbl:#x}: received a {}-byte frame that is not one the guest sent",
                frame.len()
            )),
        }
    }
    let intact = matched.iter().filter(|m| **m).count();
    crate::println!(
        "ndis: receive: {} frames indicated, {intact} of {} sent frames back with their payloads intact, {duplicates} duplicates",
        received.len(),
        expected.len()
    );
    return_nbls(ret, ctx, &received);
    intact
}

/// Whether `frame` is, byte for byte, a test frame the guest sends ([`test_frame`] of this
/// MAC, its size and the seed its first payload byte carries): a frame of an earlier step that
/// a reordering wire delivered late.
fn is_earlier_test_frame(mac: [u8; 6], frame: &[u8]) -> bool {
    frame.len() > 14 && *frame == test_frame(mac, frame.len(), frame[14])[..]
}

/// Hands the NBLs of `received` (indicated by the driver, not yet returned) back to the
/// driver in one chain through `ret`, at PASSIVE_LEVEL as a protocol would.
/// Returns every NBL still indicated up to the adapter that indicated it (`adapters`: index
/// and context of each), as a protocol that consumed or ignored them would: frames nobody
/// waited for (the peer's ARP of an RDMA connection, say) must go back before the pause.
pub fn return_unclaimed(ret: MiniportReturnNetBufferListsFn, adapters: &[(usize, NDIS_HANDLE)]) {
    for &(i, ctx) in adapters {
        return_held(ret, i, ctx);
    }
}

/// Returns the NBLs adapter `i` (context `ctx`) indicated and the guest still holds, in one
/// chain through `ret` at PASSIVE_LEVEL; those of other adapters stay held. Returns how many.
pub fn return_held(ret: MiniportReturnNetBufferListsFn, i: usize, ctx: NDIS_HANDLE) -> usize {
    let mine: Vec<(u64, Vec<u8>)> = {
        let mut n = super::netbuf::NETBUF.lock();
        let n = &mut *n;
        let (mine, others) = core::mem::take(&mut n.received)
            .into_iter()
            .partition(|(nbl, _)| n.received_on.get(nbl) == Some(&i));
        n.received = others;
        for (nbl, _) in &mine {
            n.received_on.remove(nbl);
        }
        mine
    };
    if !mine.is_empty() {
        crate::println!(
            "ndis: returning {} unclaimed received frame(s) to adapter {i}",
            mine.len()
        );
    }
    return_nbls(ret, ctx, &mine);
    mine.len()
}

fn return_nbls(ret: MiniportReturnNetBufferListsFn, ctx: NDIS_HANDLE, received: &[(u64, Vec<u8>)]) {
    let Some(last) = received.last() else {
        return;
    };
    for pair in received.windows(2) {
        // SAFETY: NBLs the driver indicated and the guest has not returned yet.
        unsafe { (*(pair[0].0 as *mut NET_BUFFER_LIST)).Next = pair[1].0 as *mut NET_BUFFER_LIST };
    }
    // SAFETY: as above.
    unsafe { (*(last.0 as *mut NET_BUFFER_LIST)).Next = core::ptr::null_mut() };
    // SAFETY: the driver's handler with its context and a chain of its own NBLs.
    unsafe { ret(ctx, received[0].0 as *mut NET_BUFFER_LIST, 0) };
}

/// Destination of the frames exchanged with a peer guest (it does not know its MAC).
const BROADCAST: [u8; 6] = [0xFF; 6];
/// Pause between two rounds of the exchange with a peer guest.
const PEER_ROUND_MS: u64 = 100;
/// How long the guest waits for the peer guest's frames (the two VMs start about
/// together; the wait covers a slow start of the other).
const PEER_WAIT_MS: u64 = 30_000;
/// Rounds sent after the peer's frames arrived: the peer was receiving when it sent
/// them, so these reach it.
const ROUNDS_AFTER_PEER: u32 = 2;
/// Rounds without a frame that end the exchange (the peer has sent its last round).
const PEER_QUIET_ROUNDS: u32 = 3;

/// Which of the frames of [`FRAME_SIZES`] a peer guest sends `frame` is: to the broadcast
/// address, from a MAC other than `mac`, the test payload of that size byte for byte.
fn peer_frame_index(frame: &[u8], mac: [u8; 6]) -> Option<usize> {
    let i = FRAME_SIZES.iter().position(|&size| size == frame.len())?;
    let expected = test_frame(mac, frame.len(), i as u8);
    (frame[..6] == BROADCAST && frame[6..12] != mac && frame[12..] == expected[12..]).then_some(i)
}

/// How many frames that are none of the peer's test frames the exchange describes on the
/// console (the count covers them all).
const FOREIGN_DESCRIBED: u32 = 4;

/// One line on a received frame that is none of the peer's test frames: its length, its
/// addresses and EtherType, and where it first differs from the test frame of its size
/// (so a reader can tell a stray frame from a damaged or truncated test frame).
fn describe_foreign(frame: &[u8], mac: [u8; 6]) -> String {
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut line = format!("{} bytes", frame.len());
    if frame.len() >= 14 {
        line += &format!(
            ", dst {}, src {}, type {:02x}{:02x}",
            hex(&frame[..6]),
            hex(&frame[6..12]),
            frame[12],
            frame[13]
        );
    }
    match FRAME_SIZES.iter().position(|&size| size == frame.len()) {
        Some(i) => {
            let expected = test_frame(mac, frame.len(), i as u8);
            let at = (12..frame.len()).find(|&k| frame[k] != expected[k]);
            line += &match at {
                Some(k) => format!(
                    ", differs from the test payload from byte {k} ({:#04x}, expected {:#04x})",
                    frame[k], expected[k]
                ),
                None => ", the test payload of its size from a source or to a destination the exchange does not expect".to_string(),
            };
        }
        None => line += ", a length no test frame has",
    }
    line
}

/// `guest.ethernet=peer`: the wire goes to another guest running the same plan. Sends the
/// frames of [`FRAME_SIZES`] (from `mac` to the broadcast address, the test payloads) in
/// rounds every [`PEER_ROUND_MS`] until the peer's frames have all arrived intact, then
/// [`ROUNDS_AFTER_PEER`] more, and goes on receiving until the wire is quiet for
/// [`PEER_QUIET_ROUNDS`] rounds; returns every NBL received to the driver; a peer whose
/// frames do not all arrive within [`PEER_WAIT_MS`] is a violation. Prints one result line.
/// Returns how many sends completed with NDIS_STATUS_SUCCESS, over all rounds.
pub fn exchange_with_peer(
    send: MiniportSendNetBufferListsFn,
    ret: MiniportReturnNetBufferListsFn,
    ctx: NDIS_HANDLE,
    mac: [u8; 6],
) -> usize {
    let frames: Vec<Vec<u8>> = FRAME_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut f = test_frame(mac, size, i as u8);
            f[..6].copy_from_slice(&BROADCAST);
            f
        })
        .collect();
    let mut got = vec![false; FRAME_SIZES.len()];
    let (mut rounds, mut after, mut sent_ok, mut repeats, mut foreign) = (0u32, 0u32, 0, 0, 0);
    // Takes the frames indicated so far, sorts them and returns their NBLs; how many.
    let mut take = |got: &mut Vec<bool>| {
        let received = core::mem::take(&mut super::netbuf::NETBUF.lock().received);
        for (_, frame) in &received {
            match peer_frame_index(frame, mac) {
                Some(i) if got[i] => repeats += 1,
                Some(i) => got[i] = true,
                None => {
                    foreign += 1;
                    if foreign <= FOREIGN_DESCRIBED {
                        crate::println!(
                            "ndis: peer: other frame: {}",
                            describe_foreign(frame, mac)
                        );
                    }
                }
            }
        }
        return_nbls(ret, ctx, &received);
        received.len()
    };
    let start = crate::interrupts::now_ms();
    let waited = || crate::interrupts::now_ms().saturating_sub(start);
    while after < ROUNDS_AFTER_PEER {
        if waited() > PEER_WAIT_MS {
            violation(format!(
                "guest.ethernet=peer: {} of {} frames from the peer arrived within {PEER_WAIT_MS} ms",
                got.iter().filter(|g| **g).count(),
                got.len()
            ));
            break;
        }
        sent_ok += send_chain(send, ctx, frames.clone());
        rounds += 1;
        if got.iter().all(|g| *g) {
            after += 1;
        }
        interrupt::idle(PEER_ROUND_MS);
        take(&mut got);
    }
    // The peer may still be sending its last rounds: return what arrives until the wire has
    // been quiet for PEER_QUIET_ROUNDS rounds, so that no NBL is still indicated at halt.
    let mut quiet = 0;
    while quiet < PEER_QUIET_ROUNDS && waited() <= PEER_WAIT_MS {
        interrupt::idle(PEER_ROUND_MS);
        quiet = if take(&mut got) == 0 { quiet + 1 } else { 0 };
    }
    let intact = got.iter().filter(|g| **g).count();
    crate::println!(
        "ndis: peer: {intact} of {} frames from the peer intact ({rounds} rounds sent, {repeats} repeats, {foreign} other frames)",
        got.len()
    );
    if foreign > 0 {
        violation(format!(
            "guest.ethernet=peer: {foreign} received frames are none of the peer's test frames"
        ));
    }
    sent_ok
}
