//! NDK hosted the way Windows hosts it: the provider registers `NDIS_NDK_PROVIDER_CHARACTERISTICS`
//! through NdisSetOptionalHandlers inside MiniportSetOptions, sets
//! `NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES` in MiniportInitializeEx; once the adapter runs, the
//! guest sends `OID_NDK_SET_STATE` (enable; it must not pend), waits for the
//! `NetEventNDKEnable` the driver raises with NdisMNetPnPEvent outside its OID handler, opens
//! the NDK adapter through `OpenNDKAdapterHandler` at PASSIVE_LEVEL, runs the consumer suite
//! under `guest.ndk=suite` (every call through the contract verifier), closes the adapter,
//! disables NDK again (`NetEventNDKDisable`), all before MiniportHaltEx.
//!
//! The structure checks are `guest_core::ndk`; the structures are ndis-abi's.
#![allow(non_snake_case)]

pub mod bench;
pub mod data;
pub mod memory;
pub mod selftest;
pub mod suite;
pub mod verifier;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::{null_mut, read_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use guest_core::ndk::{
    check_capabilities, check_ndk_attributes, check_provider_characteristics, Capabilities,
    ProviderCharacteristics, NDK_ATTRIBUTES_SIZE,
};
use ndis_abi::*;

use super::contract::{
    check_header, export, read_header, refuse, require_adapter, require_handle, require_irql,
    require_non_null, Checked,
};
use super::{
    driver_handle, interrupt, oid, status_name, violation, IRQL, MAX_ADAPTERS, PASSIVE_LEVEL,
};
use crate::sync::IrqLock;

/// True while the driver's MiniportSetOptions runs (the only place NdisSetOptionalHandlers
/// is legal).
pub static IN_SET_OPTIONS: AtomicBool = AtomicBool::new(false);

/// How long the guest waits for the NdisMNetPnPEvent that announces an NDK state change.
const PNP_EVENT_WAIT_MS: u64 = 5_000;
/// How long the guest lets a driver run after an OID_NDK_SET_STATE that changed nothing.
const NO_CHANGE_WAIT_MS: u64 = 20;

/// The NDKPI version the guest's consumer asks for (1.0: any 1.x provider must accept it and
/// report its highest minor version).
pub const CONSUMER_VERSION: NDK_VERSION = NDK_VERSION { Major: 1, Minor: 0 };

/// Offset of `NET_PNP_EVENT_NOTIFICATION.NetPnPEvent.NetEvent` (after the header and
/// `PortNumber`).
const NETEVENT_OFFSET: usize = core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, NetPnPEvent);

/// What NDIS knows of the driver's NDK side.
pub struct NdkHost {
    /// The provider's adapter handlers (from NdisSetOptionalHandlers).
    pub provider: Option<(OPEN_NDK_ADAPTER_HANDLER, CLOSE_NDK_ADAPTER_HANDLER)>,
    /// Per adapter: the NDK attributes the driver set (whether NDK starts enabled, and copies
    /// of its capabilities and of the `NDK_ADAPTER_INFO` they point to, taken during the call
    /// as NDIS does).
    pub attributes: [Option<(bool, Capabilities, NDK_ADAPTER_INFO)>; MAX_ADAPTERS],
    /// Per adapter: NET_PNP_EVENT codes the driver raised with NdisMNetPnPEvent, in order.
    pub pnp_events: [Vec<u32>; MAX_ADAPTERS],
}

/// The NDK host state.
pub static NDK: IrqLock<NdkHost> = IrqLock::new(NdkHost {
    provider: None,
    attributes: [None; MAX_ADAPTERS],
    pnp_events: [const { Vec::new() }; MAX_ADAPTERS],
});

/// Forgets everything (after unload; the boot's final leak check runs after this).
pub fn reset() {
    let mut n = NDK.lock();
    n.provider = None;
    n.attributes = [None; MAX_ADAPTERS];
    n.pnp_events = [const { Vec::new() }; MAX_ADAPTERS];
    drop(n);
    verifier::reset();
}

// ---------------------------------------------------------------- exports

/// `NdisSetOptionalHandlers(NdisHandle, OptionalHandlers)`: records the NDK provider
/// characteristics. Legal only inside MiniportSetOptions, at PASSIVE_LEVEL, with the driver
/// handle.
pub unsafe extern "win64" fn NdisSetOptionalHandlers(
    NdisHandle: NDIS_HANDLE,
    OptionalHandlers: *mut NDIS_OBJECT_HEADER,
) -> NDIS_STATUS {
    const F: &str = "NdisSetOptionalHandlers";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        require_handle(F, NdisHandle, driver_handle(), "miniport driver")?;
        if !IN_SET_OPTIONS.load(Ordering::Relaxed) {
            return refuse(
                F,
                "only allowed inside MiniportSetOptions",
                NDIS_STATUS_FAILURE,
            );
        }
        require_non_null(F, OptionalHandlers, "OptionalHandlers")?;
        // SAFETY: non-null pointer to a structure that starts with an NDIS_OBJECT_HEADER.
        let hdr = unsafe { read_header(OptionalHandlers) };
        if hdr.Type != NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS {
            return refuse(
                F,
                format!(
                    "optional handlers of type {:#x}: the guest's NDIS knows only NDK provider characteristics (type {:#x})",
                    hdr.Type, NDIS_OBJECT_TYPE_NDK_PROVIDER_CHARACTERISTICS
                ),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        if (hdr.Size as usize) < core::mem::size_of::<NDIS_NDK_PROVIDER_CHARACTERISTICS>() {
            let e = check_provider_characteristics(&ProviderCharacteristics {
                ty: hdr.Type,
                revision: hdr.Revision,
                size: hdr.Size,
                flags: 0,
                open: true,
                close: true,
            });
            return refuse(
                F,
                e.map_or_else(|e| format!("{e}"), |_| String::from("short structure")),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        // SAFETY: the header declares the whole structure (size checked above).
        let c =
            unsafe { read_volatile(OptionalHandlers.cast::<NDIS_NDK_PROVIDER_CHARACTERISTICS>()) };
        let checked = check_provider_characteristics(&ProviderCharacteristics {
            ty: hdr.Type,
            revision: hdr.Revision,
            size: hdr.Size,
            flags: c.Flags,
            open: c.OpenNDKAdapterHandler.is_some(),
            close: c.CloseNDKAdapterHandler.is_some(),
        });
        if let Err(e) = checked {
            return refuse(F, e, NDIS_STATUS_BAD_CHARACTERISTICS);
        }
        let (Some(open), Some(close)) = (c.OpenNDKAdapterHandler, c.CloseNDKAdapterHandler) else {
            return Err(NDIS_STATUS_BAD_CHARACTERISTICS);
        };
        let mut n = NDK.lock();
        if n.provider.is_some() {
            drop(n);
            return refuse(
                F,
                "NDK provider characteristics registered twice",
                NDIS_STATUS_FAILURE,
            );
        }
        n.provider = Some((open, close));
        drop(n);
        crate::println!("ndis: NDK provider characteristics registered");
        Ok(NDIS_STATUS_SUCCESS)
    })
}

/// The NDK-attributes arm of NdisMSetMiniportAttributes: the header (type 0xB3, revision 1,
/// size 0x10) and the capabilities it points to are checked (`guest_core::ndk`) and kept.
///
/// # Safety
/// `attrs` points to at least 4 readable bytes (the header) of driver memory.
pub unsafe fn set_ndk_attributes(
    func: &str,
    adapter: usize,
    attrs: *const c_void,
) -> Checked<NDIS_STATUS> {
    // SAFETY: the caller's contract.
    let hdr = unsafe { read_header(attrs) };
    if hdr.Size < NDK_ATTRIBUTES_SIZE {
        return refuse(
            func,
            format!(
                "NDK attributes size {:#x} (NDIS requires {NDK_ATTRIBUTES_SIZE:#x})",
                hdr.Size
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: the header declares the whole revision-1 structure.
    let a = unsafe { read_volatile(attrs.cast::<NDIS_MINIPORT_ADAPTER_NDK_ATTRIBUTES>()) };
    if let Err(e) = check_ndk_attributes(
        (hdr.Type, hdr.Revision, hdr.Size),
        !a.NdkCapabilities.is_null(),
    ) {
        return refuse(func, e, NDIS_STATUS_INVALID_PARAMETER);
    }
    // SAFETY: non-null pointer to the driver's capabilities; its header comes first.
    let ch = unsafe { read_header(a.NdkCapabilities) };
    if (ch.Size as usize) < core::mem::size_of::<NDIS_NDK_CAPABILITIES>() {
        return refuse(
            func,
            format!(
                "NDIS_NDK_CAPABILITIES size {:#x} (revision 1 is {:#x}; older documentation pages omit Flags and are wrong)",
                ch.Size,
                core::mem::size_of::<NDIS_NDK_CAPABILITIES>()
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: the header declares the whole structure.
    let c = unsafe { read_volatile(a.NdkCapabilities) };
    let caps = Capabilities {
        header: (ch.Type, ch.Revision, ch.Size),
        flags: c.Flags,
        max_qp: c.MaxQpCount,
        max_cq: c.MaxCqCount,
        max_mr: c.MaxMrCount,
        max_pd: c.MaxPdCount,
        max_inbound_read: c.MaxInboundReadLimit,
        max_outbound_read: c.MaxOutboundReadLimit,
        max_mw: c.MaxMwCount,
        max_srq: c.MaxSrqCount,
        missing_counter_mask: c.MissingCounterMask,
        has_info: !c.NdkInfo.is_null(),
    };
    if let Err(e) = check_capabilities(&caps) {
        return refuse(func, e, NDIS_STATUS_INVALID_PARAMETER);
    }
    let mut n = NDK.lock();
    if n.attributes[adapter].is_some() {
        drop(n);
        return refuse(func, "NDK attributes set twice", NDIS_STATUS_FAILURE);
    }
    // SAFETY: non-NULL (checked) pointer to the driver's NDK_ADAPTER_INFO, read during the
    // call that hands it over.
    let info = unsafe { read_volatile(c.NdkInfo) };
    n.attributes[adapter] = Some((a.Enabled != 0, caps, info));
    drop(n);
    crate::println!(
        "ndis: NDK attributes: enabled {}, max QP {} CQ {} MR {} PD {} MW {} SRQ {}, reads in/out {}/{}",
        a.Enabled,
        caps.max_qp,
        caps.max_cq,
        caps.max_mr,
        caps.max_pd,
        caps.max_mw,
        caps.max_srq,
        caps.max_inbound_read,
        caps.max_outbound_read
    );
    Ok(NDIS_STATUS_SUCCESS)
}

/// `NdisMNetPnPEvent(MiniportAdapterHandle, NetPnPEvent)`: records the event. The NDK state
/// events must be raised outside MiniportOidRequest (the driver completes OID_NDK_SET_STATE
/// first, then announces the change, typically from a work item).
pub unsafe extern "win64" fn NdisMNetPnPEvent(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetPnPEvent: *mut NDIS_OBJECT_HEADER,
) -> NDIS_STATUS {
    const F: &str = "NdisMNetPnPEvent";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_non_null(F, NetPnPEvent, "NetPnPEvent")?;
        // SAFETY: non-null pointer to a NET_PNP_EVENT_NOTIFICATION (header first).
        let hdr = unsafe { read_header(NetPnPEvent) };
        check_header(
            F,
            "NET_PNP_EVENT_NOTIFICATION",
            hdr,
            NDIS_OBJECT_TYPE_DEFAULT,
            NET_PNP_EVENT_NOTIFICATION_REVISION_1,
            NDIS_SIZEOF_NET_PNP_EVENT_NOTIFICATION_REVISION_1,
        )?;
        // SAFETY: the header declares the whole structure; the event code is a ULONG at 8.
        let event =
            unsafe { read_volatile(NetPnPEvent.cast::<u8>().add(NETEVENT_OFFSET).cast::<u32>()) };
        let ndk_event = event == NetEventNDKEnable || event == NetEventNDKDisable;
        if ndk_event && oid::IN_OID_HANDLER.load(Ordering::Relaxed) {
            return refuse(
                F,
                format!("NET_PNP_EVENT {event} (NDK state) raised from inside MiniportOidRequest; NDK state changes are announced after the OID completes, outside the OID handler"),
                NDIS_STATUS_FAILURE,
            );
        }
        crate::println!("ndis: NdisMNetPnPEvent {}", pnp_event_name(event));
        NDK.lock().pnp_events[adapter].push(event);
        Ok(NDIS_STATUS_SUCCESS)
    })
}

fn pnp_event_name(event: u32) -> String {
    if event == NetEventNDKEnable {
        String::from("NetEventNDKEnable")
    } else if event == NetEventNDKDisable {
        String::from("NetEventNDKDisable")
    } else {
        format!("event {event}")
    }
}

// ---------------------------------------------------------------- hosting

/// Sends OID_NDK_SET_STATE(`enable`) and waits for the matching NdisMNetPnPEvent. False
/// (reported) if a rule broke.
fn set_state(
    handler: MiniportOidRequestFn,
    adapter: usize,
    ctx: NDIS_HANDLE,
    enable: bool,
) -> bool {
    let want = if enable {
        NetEventNDKEnable
    } else {
        NetEventNDKDisable
    };
    let seen = || {
        NDK.lock().pnp_events[adapter]
            .iter()
            .filter(|&&e| e == want)
            .count()
    };
    let seen_before = seen();
    let mut value = [enable as u8];
    let Some(a) = oid::request(
        handler,
        ctx,
        NdisRequestSetInformation,
        OID_NDK_SET_STATE,
        &mut value,
    ) else {
        return false;
    };
    crate::println!(
        "ndis: OID_NDK_SET_STATE({}) returned {}{}",
        if enable { "TRUE" } else { "FALSE" },
        status_name(a.status),
        if a.pended { " after pending" } else { "" }
    );
    if a.pended {
        violation(String::from(
            "OID_NDK_SET_STATE pended: it never pends (the state change is announced afterwards with NdisMNetPnPEvent)",
        ));
    }
    if a.status != NDIS_STATUS_SUCCESS {
        super::lowres::outcome_failed(format!(
            "OID_NDK_SET_STATE({enable}) returned {}",
            status_name(a.status)
        ));
        return false;
    }
    // The state before the request: the last NDK event raised, else the attributes' Enabled.
    let current = {
        let n = NDK.lock();
        let last = n.pnp_events[adapter]
            .iter()
            .rev()
            .find(|&&e| e == NetEventNDKEnable || e == NetEventNDKDisable);
        match last {
            Some(&e) => e == NetEventNDKEnable,
            None => n.attributes[adapter].is_some_and(|a| a.0),
        }
    };
    if current == enable {
        // No state change (the adapter started with NDK enabled): nothing to announce.
        interrupt::idle(NO_CHANGE_WAIT_MS);
        crate::println!(
            "ndis: NDK was already {}: no {} expected ({} raised)",
            if enable { "enabled" } else { "disabled" },
            pnp_event_name(want),
            seen() - seen_before
        );
        return !a.pended;
    }
    let announced = interrupt::wait_until(PNP_EVENT_WAIT_MS, || seen() > seen_before);
    if !announced {
        violation(format!(
            "OID_NDK_SET_STATE({enable}) succeeded but the driver raised no {} with NdisMNetPnPEvent within {PNP_EVENT_WAIT_MS} ms",
            pnp_event_name(want)
        ));
        return false;
    }
    !a.pended
}

/// An NDK adapter instance opened through the provider's handler.
pub struct OpenAdapter {
    /// The `NDK_ADAPTER` the provider returned.
    pub adapter: *mut NDK_ADAPTER,
    /// The miniport adapter context it was opened on.
    pub ctx: NDIS_HANDLE,
}

/// Calls `OpenNDKAdapterHandler` at PASSIVE_LEVEL asking for `version`; returns its status and
/// the adapter (NULL unless it succeeded).
pub fn open_adapter(
    open: OPEN_NDK_ADAPTER_HANDLER,
    ctx: NDIS_HANDLE,
    version: NDK_VERSION,
) -> (NDIS_STATUS, *mut NDK_ADAPTER) {
    let mut params = NDIS_OPEN_NDK_ADAPTER_PARAMETERS { Version: version };
    let mut adapter: *mut NDK_ADAPTER = null_mut();
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    // SAFETY: the provider's handler with the adapter context it gave NDIS; both pointers are
    // live locals.
    let status = unsafe { open(ctx, &mut params, &mut adapter) };
    interrupt::run_pending_dpcs();
    (status, adapter)
}

/// Hosts NDK on the Running adapters (`(index, context)` each; see the module
/// documentation): enables NDK and opens an NDK adapter on each, runs the suite and the bench
/// on the first (the second, when there is one, is the passive side of the connection tests,
/// across the wire), then closes every NDK adapter and disables NDK again. A driver without
/// an NDK provider is reported and skipped, unless the plan asked for the suite or the bench
/// (then it is a failure).
pub fn host(
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    adapters: &[(usize, NDIS_HANDLE)],
    (suite, bench): (bool, bool),
) {
    let provider = NDK.lock().provider;
    let Some((open, close)) = provider else {
        if suite || bench {
            violation(String::from(
                "guest.ndk: the driver registered no NDK provider (no NdisSetOptionalHandlers in MiniportSetOptions)",
            ));
        } else {
            crate::println!("ndis: the driver registered no NDK provider; NDK not hosted");
        }
        return;
    };
    let Some(handler) = chars.OidRequestHandler else {
        return;
    };
    let mut enabled: Vec<(usize, NDIS_HANDLE)> = Vec::new();
    let mut opened: Vec<(usize, OpenAdapter)> = Vec::new();
    for &(index, ctx) in adapters {
        if NDK.lock().attributes[index].is_none() {
            violation(String::from(
                "the driver registered an NDK provider but MiniportInitializeEx set no NDK attributes",
            ));
            continue;
        }
        if !set_state(handler, index, ctx, true) {
            continue;
        }
        enabled.push((index, ctx));
        if let Some(adapter) = open_checked(open, ctx) {
            opened.push((index, OpenAdapter { adapter, ctx }));
        }
    }
    if let Some((first, local)) = opened.first() {
        let (_, caps, info) = NDK.lock().attributes[*first].unwrap_or_default();
        let make = || {
            let s = suite::Suite::new(local.adapter, (caps, info), (open, close), local.ctx)
                .with_oid_handler(handler);
            match opened.get(1) {
                Some((_, peer)) => s.with_peer(peer.adapter),
                None => s,
            }
        };
        if let Some((_, peer)) = opened.get(1) {
            crate::println!(
                "ndk: the connection tests cross the wire: passive side on the NDK adapter at {:p}",
                peer.adapter
            );
        }
        if bench {
            let bar0 = super::STATE.lock().adapters[*first]
                .device
                .map_or(0, |d| d.bars[rnic_contract::pci::REGISTER_BAR].addr);
            bench::run(&make(), bench::status_register(bar0));
        }
        if suite {
            crate::println!(
                "ndk: consumer suite against the NDK adapter at {:p}",
                local.adapter
            );
            report(make().run());
        }
    }
    verifier::finish();
    for (_, a) in opened {
        let adapter = a.adapter;
        close_adapter(close, a);
        verifier::forget(adapter as *const c_void);
    }
    for (index, ctx) in enabled {
        set_state(handler, index, ctx, false);
    }
}

/// `guest.expect=ndk-errors`: a fault plan makes the device fail NDK work.
static ERRORS_EXPECTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Records the plan's `guest.expect=ndk-errors` (before the driver is loaded).
pub fn set_errors_expected(expected: bool) {
    ERRORS_EXPECTED.store(expected, core::sync::atomic::Ordering::Relaxed);
}

/// Prints the suite's summary; failures fail the verdict, unless the plan expects NDK
/// errors (then they are reported; the verifier's rules still fail the verdict).
fn report(report: guest_core::ndk::SuiteReport) {
    crate::println!(
        "ndk: verifier: {} dispatch calls checked",
        verifier::calls()
    );
    crate::println!("{}", report.summary());
    if report.failed > 0 && ERRORS_EXPECTED.load(core::sync::atomic::Ordering::Relaxed) {
        crate::println!(
            "ndk: {} of {} tests failed, as the plan expects (guest.expect=ndk-errors); the contract rules were checked throughout",
            report.failed,
            report.ok + report.failed + report.skipped
        );
    } else if report.failed > 0 {
        super::lowres::outcome_failed(format!(
            "NDK consumer suite: {} of {} tests failed",
            report.failed,
            report.ok + report.failed + report.skipped
        ));
    }
}

/// Opens an NDK adapter on `ctx` with the consumer's version and checks the object; None
/// (reported) when the open fails or the object is malformed.
fn open_checked(open: OPEN_NDK_ADAPTER_HANDLER, ctx: NDIS_HANDLE) -> Option<*mut NDK_ADAPTER> {
    let (status, adapter) = open_adapter(open, ctx, CONSUMER_VERSION);
    crate::println!(
        "ndis: OpenNDKAdapterHandler(version {}.{}) returned {}",
        CONSUMER_VERSION.Major,
        CONSUMER_VERSION.Minor,
        status_name(status)
    );
    if status != NDIS_STATUS_SUCCESS || adapter.is_null() {
        let what = format!(
            "OpenNDKAdapterHandler returned {} with adapter {adapter:p} on an NDK-enabled adapter",
            status_name(status)
        );
        // Out of memory is the one failure an open may report under low resources.
        if status == NDIS_STATUS_RESOURCES && adapter.is_null() {
            super::lowres::outcome_failed(what);
        } else {
            violation(what);
        }
        return None;
    }
    if !check_adapter_object(adapter) {
        return None;
    }
    verifier::adopt(
        adapter as *const c_void,
        guest_core::ndk::ObjectKind::Adapter,
        None,
    );
    Some(adapter)
}

/// The adapter object the open handler returned: header of type adapter, NDKPI 1.x, a
/// dispatch table. False (reported) otherwise.
fn check_adapter_object(adapter: *mut NDK_ADAPTER) -> bool {
    // SAFETY: non-NULL object the provider returned.
    let a = unsafe { read_volatile(adapter) };
    if a.Header.ObjectType != NdkObjectTypeAdapter
        || a.Header.Version.Major != 1
        || a.Dispatch.is_null()
    {
        violation(format!(
            "OpenNDKAdapterHandler returned an object with type {} version {}.{} dispatch {:p}; an adapter (type 1), NDKPI 1.x, with a dispatch table expected",
            a.Header.ObjectType, a.Header.Version.Major, a.Header.Version.Minor, a.Dispatch
        ));
        return false;
    }
    true
}

/// Calls `CloseNDKAdapterHandler` at PASSIVE_LEVEL.
pub fn close_adapter(close: CLOSE_NDK_ADAPTER_HANDLER, opened: OpenAdapter) {
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    // SAFETY: the provider's handler with the adapter it returned from open and its context.
    unsafe { close(opened.ctx, opened.adapter) };
    interrupt::run_pending_dpcs();
    crate::println!("ndis: CloseNDKAdapterHandler returned");
}
