//! Link indications (docs/device-spec.md §4.2, §5.6): the device's `LINK_UP` / `LINK_DOWN`
//! events become `NdisMIndicateStatusEx(NDIS_STATUS_LINK_STATE)` with an `NDIS_LINK_STATE`
//! (`logic::health::link_state`: connected, full duplex, 100 Gb/s both ways; or disconnected
//! with unknown speed and duplex). Only changes are indicated (a reset's silent link drop and
//! the `LINK_UP` of the next enable change nothing), and nothing once HaltEx began. A device
//! found fatal is indicated as disconnected (it sends and receives nothing, and posts no
//! `LINK_DOWN` itself, §13.3); the `LINK_UP` after a successful reset reconnects it. The OIDs
//! that report the link (`OID_GEN_MEDIA_CONNECT_STATUS`, `OID_GEN_LINK_SPEED`) answer the
//! state last indicated ([`reported_up`]).

use core::mem::size_of;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

use ndis_abi::*;

use crate::adapter::Adapter;
use crate::ffi::{self, log};
use crate::logic::health;

/// A `LINK_UP` (`up`) or `LINK_DOWN` event from the event ring (message-0 DPC,
/// DISPATCH_LEVEL): indicated to NDIS if it changes the state last reported and the adapter
/// is not halting.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn event(a: *mut Adapter, up: bool) {
    // SAFETY: the health fields are atomics of the live context.
    unsafe {
        let reported = (*a).health.link_reported.load(Ordering::Acquire);
        if !health::link_changes(reported, up) || (*a).health.halting.load(Ordering::Acquire) {
            return;
        }
        (*a).health
            .link_reported
            .store(u32::from(up), Ordering::Release);
        indicate(a, up);
    }
}

/// Whether the link is up as last reported to NDIS (general attributes, then indications):
/// what the link OIDs answer, so that NDIS never hears two different stories.
///
/// # Safety
/// `a` is a live adapter context.
pub(crate) unsafe fn reported_up(a: *const Adapter) -> bool {
    // SAFETY: an atomic of the live context.
    unsafe { (*a).health.link_reported.load(Ordering::Acquire) == 1 }
}

/// `NdisMIndicateStatusEx(NDIS_STATUS_LINK_STATE)` with the `NDIS_LINK_STATE` for `up`
/// (IRQL <= DISPATCH_LEVEL; NDIS copies the buffer before returning).
///
/// # Safety
/// `a` is a live adapter context that is not halting.
unsafe fn indicate(a: *mut Adapter, up: bool) {
    let mut state = health::link_state(up);
    let mut indication = NDIS_STATUS_INDICATION {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_STATUS_INDICATION,
            NDIS_STATUS_INDICATION_REVISION_1,
            NDIS_SIZEOF_STATUS_INDICATION_REVISION_1,
        ),
        // SAFETY: `a` is live per the contract.
        SourceHandle: unsafe { (*a).miniport },
        PortNumber: 0,
        StatusCode: NDIS_STATUS_LINK_STATE,
        Flags: 0,
        DestinationHandle: null_mut(),
        RequestId: null_mut(),
        StatusBuffer: (&raw mut state).cast(),
        StatusBufferSize: size_of::<NDIS_LINK_STATE>() as u32,
        Guid: GUID::default(),
        NdisReserved: [null_mut(); 4],
    };
    log!(
        "link %s: NDIS_STATUS_LINK_STATE indicated\n",
        if up { c"up".as_ptr() } else { c"down".as_ptr() }
    );
    // SAFETY: FFI with the adapter handle and a live indication whose buffer outlives the call.
    unsafe { ffi::NdisMIndicateStatusEx((*a).miniport, &mut indication) };
}
