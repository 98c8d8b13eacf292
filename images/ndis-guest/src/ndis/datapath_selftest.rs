//! The data-path rule self tests (`guest.selftest=nbl-*`, `pause-*`): before the real driver
//! loads, the guest plays a miniport that breaks one NBL-ownership or pause/restart rule
//! through the real exports, and checks the verifier names it. The provoked violations,
//! the guest's bookkeeping and every allocation are cleared afterwards, so the boot goes on
//! to an unaffected verdict.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use ndis_abi::*;

use super::api::NdisMSendNetBufferListsComplete;
use super::netbuf::{
    NdisAllocateMdl, NdisAllocateNetBufferAndNetBufferList, NdisAllocateNetBufferListPool,
    NdisFreeMdl, NdisFreeNetBufferList, NdisFreeNetBufferListPool,
    NdisMIndicateReceiveNetBufferLists, NETBUF,
};
use super::pause::{self, DataPath, NdisMPauseComplete};
use super::send::OUTSTANDING;
use super::{adapter_handle, violation, Phase, DISPATCH_LEVEL, IRQL, PASSIVE_LEVEL, STATE};

/// The rule each self test breaks: (plan name, text the violation must contain).
const RULES: &[(&str, &str)] = &[
    ("nbl-double-complete", "NdisNblDoubleComplete: "),
    ("nbl-leak", "NdisNblLeak: "),
    ("nbl-send-flags", "NdisNblFlagsIrql: SendCompleteFlags"),
    ("nbl-receive-flags", "NdisNblFlagsIrql: ReceiveFlags"),
    ("nbl-receive-double-indicate", "NdisNblReceiveOwnership: "),
    ("nbl-receive-freed", "NdisNblReceiveOwnership: "),
    ("pause-return", "MiniportPause_Return: "),
    ("pause-complete-not-pausing", "NdisPauseComplete: "),
    ("pause-double-complete", "NdisPauseComplete: called twice"),
    ("pause-paused-data-path", "NdisPausedDataPath: "),
];

/// Runs the self test `name`; returns the violation the verifier recorded for it.
pub fn rule(name: &str) -> Result<String, String> {
    let Some(&(_, text)) = RULES.iter().find(|(n, _)| *n == name) else {
        return Err(format!("{name} is not a data-path rule self test"));
    };
    let before = {
        let mut s = STATE.lock();
        s.phase = Phase::Running;
        s.violations.len()
    };
    pause::set(0, DataPath::Running);
    play(name);
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    let new = {
        let mut s = STATE.lock();
        s.phase = Phase::Loaded;
        s.violations.split_off(before)
    };
    pause::reset();
    match new.iter().find(|v| v.contains(text)) {
        Some(v) => Ok(v.clone()),
        None => Err(format!(
            "the verifier recorded no violation containing \"{text}\" (recorded: {new:?})"
        )),
    }
}

/// A send NBL the fake miniport was handed, recorded as outstanding.
struct FakeSend(Box<NET_BUFFER_LIST>);

impl FakeSend {
    fn new() -> Self {
        // SAFETY: NET_BUFFER_LIST is plain data: all-zero is valid.
        let nbl: Box<NET_BUFFER_LIST> = Box::new(unsafe { core::mem::zeroed() });
        OUTSTANDING.lock().insert(&*nbl as *const _ as u64, None);
        FakeSend(nbl)
    }

    fn ptr(&mut self) -> *mut NET_BUFFER_LIST {
        &mut *self.0
    }

    /// The fake miniport completes it with `flags` at `irql`.
    fn complete(&mut self, irql: u8, flags: u32) {
        IRQL.store(irql, Ordering::Relaxed);
        // SAFETY: the guest's own live NBL and adapter handle.
        unsafe { NdisMSendNetBufferListsComplete(adapter_handle(0), self.ptr(), flags) };
        IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    }
}

impl Drop for FakeSend {
    fn drop(&mut self) {
        OUTSTANDING.lock().remove(&(&*self.0 as *const _ as u64));
    }
}

/// A receive NBL of the fake miniport: a pool, an MDL over a frame buffer and an NBL, all
/// from the real exports (freed again on drop).
struct FakeReceive {
    pool: NDIS_HANDLE,
    mdl: *mut MDL,
    nbl: *mut NET_BUFFER_LIST,
    _frame: Vec<u8>,
}

/// Length of the fake received frame.
const FRAME: usize = 60;

impl FakeReceive {
    fn new() -> Option<Self> {
        let mut frame = alloc::vec![0x5Au8; FRAME];
        let mut params = NET_BUFFER_LIST_POOL_PARAMETERS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_DEFAULT,
                NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
                NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            ),
            ProtocolId: 0,
            fAllocateNetBuffer: 1,
            ContextSize: 0,
            PoolTag: u32::from_le_bytes(*b"Test"),
            DataSize: 0,
        };
        // SAFETY: the guest's exports with live arguments; results checked.
        unsafe {
            let pool = NdisAllocateNetBufferListPool(adapter_handle(0), &mut params);
            let mdl = NdisAllocateMdl(adapter_handle(0), frame.as_mut_ptr().cast(), FRAME as u32);
            let nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, FRAME);
            (!pool.is_null() && !mdl.is_null() && !nbl.is_null()).then_some(FakeReceive {
                pool,
                mdl,
                nbl,
                _frame: frame,
            })
        }
    }

    /// The fake miniport indicates it with `flags` at `irql`.
    fn indicate(&self, irql: u8, flags: u32) {
        IRQL.store(irql, Ordering::Relaxed);
        // SAFETY: a live NBL of the guest's and the adapter handle.
        unsafe { NdisMIndicateReceiveNetBufferLists(adapter_handle(0), self.nbl, 0, 1, flags) };
        IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    }
}

impl Drop for FakeReceive {
    fn drop(&mut self) {
        // NDIS "returns" it: out of the indicated list, then everything freed.
        {
            let mut n = NETBUF.lock();
            n.received.retain(|(nbl, _)| *nbl != self.nbl as u64);
            n.received_on.remove(&(self.nbl as u64));
        }
        // SAFETY: the objects the exports handed out, freed once.
        unsafe {
            NdisFreeNetBufferList(self.nbl);
            NdisFreeMdl(self.mdl);
            NdisFreeNetBufferListPool(self.pool);
        }
    }
}

/// The misbehaving miniport of self test `name`.
fn play(name: &str) {
    match name {
        "nbl-double-complete" => {
            let mut nbl = FakeSend::new();
            nbl.complete(PASSIVE_LEVEL, 0);
            nbl.complete(PASSIVE_LEVEL, 0);
        }
        "nbl-leak" => {
            let _never_completed = FakeSend::new();
            // What the halt check finds.
            for leak in super::send::leaks() {
                violation(leak);
            }
        }
        "nbl-send-flags" => {
            FakeSend::new().complete(PASSIVE_LEVEL, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL);
        }
        "nbl-receive-flags" => {
            if let Some(r) = FakeReceive::new() {
                r.indicate(DISPATCH_LEVEL, 0);
            }
        }
        "nbl-receive-double-indicate" => {
            if let Some(r) = FakeReceive::new() {
                r.indicate(DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL);
                r.indicate(DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL);
            }
        }
        "nbl-receive-freed" => {
            if let Some(r) = FakeReceive::new() {
                r.indicate(DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL);
                // SAFETY: the fake's own live NBL; the call is refused (still indicated).
                unsafe { NdisFreeNetBufferList(r.nbl) };
            }
        }
        "pause-return" => {
            // MiniportPause says "done" while a send it was handed is still outstanding.
            let _in_flight = FakeSend::new();
            pause::set(
                0,
                DataPath::Pausing {
                    pended: false,
                    completed: false,
                },
            );
            pause::pause_returned(0, NDIS_STATUS_SUCCESS);
        }
        "pause-complete-not-pausing" => {
            // SAFETY: the guest's own adapter handle.
            unsafe { NdisMPauseComplete(adapter_handle(0)) }
        }
        "pause-double-complete" => {
            // Completed twice from a DPC while MiniportPause is still running.
            pause::set(
                0,
                DataPath::Pausing {
                    pended: false,
                    completed: false,
                },
            );
            // SAFETY: as above.
            unsafe {
                NdisMPauseComplete(adapter_handle(0));
                NdisMPauseComplete(adapter_handle(0));
            }
        }
        "pause-paused-data-path" => {
            let mut nbl = FakeSend::new();
            pause::set(0, DataPath::Paused);
            nbl.complete(PASSIVE_LEVEL, 0);
        }
        _ => {}
    }
}
