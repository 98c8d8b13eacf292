//! The end of a pending pause: every NBL the driver holds for NDIS (a send on the TX ring, a
//! receive indication not yet returned) is counted by the adapter's `data_path`
//! (`crate::data_path`); the one that ends last while a pause pends calls NdisMPauseComplete.

use ndis_abi::*;

use crate::adapter::Adapter;
use crate::data_path::Finish;
use crate::ffi::log;

#[link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim")]
extern "win64" {
    fn NdisMPauseComplete(MiniportAdapterHandle: NDIS_HANDLE);
}

/// Never called: makes the compiler compare the declaration with the ABI typedef.
#[allow(dead_code)]
fn signature_checks() {
    let _: NdisMPauseCompleteFn = NdisMPauseComplete;
}

/// One outstanding NBL of `a` ended (a send completed to NDIS, or a receive indication
/// returned); the last one of a pending pause completes it. IRQL: <= DISPATCH_LEVEL. Called
/// after the NBL went back to its owner, so NDIS sees the completion before the pause ends.
///
/// # Safety
/// `a` is a live adapter and the NBL was counted by `data_path.begin()`.
pub(crate) unsafe fn nbl_finished(a: *mut Adapter) {
    // SAFETY: guaranteed by the caller.
    match unsafe { (*a).data_path.finish() } {
        Finish::Done => {}
        Finish::CompletesPause => {
            log!("Pause completes (last outstanding NBL ended)\n");
            // SAFETY: our adapter's NDIS handle; `finish` said this is the single end of the
            // pending pause, so NdisMPauseComplete is called exactly once for it.
            unsafe { NdisMPauseComplete((*a).miniport) };
        }
        Finish::NotHeld => log!("an NBL ended that the data path did not count (ignored)\n"),
    }
}
