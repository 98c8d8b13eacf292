//! `guest.selftest=contract`: calls the NDIS exports the way a misbehaving driver would, before
//! any driver is loaded, and checks each call is refused as `contract` documents: exactly one
//! violation recorded (with the expected text), the failure value returned, outputs cleared and
//! no effect on the guest's state. Calls that keep the contract must record nothing. The
//! violations are forgotten afterwards, so the boot goes on to an unaffected verdict.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

use ndis_abi::*;

use super::api::*;
use super::{
    adapter_handle, driver_handle, interrupt_handle, Phase, DEVICE_IRQL, DISPATCH_LEVEL, IRQL,
    PASSIVE_LEVEL, STATE,
};

/// A non-null value the refused calls must overwrite with NULL.
const STALE: NDIS_HANDLE = 0x5A5A_0000 as NDIS_HANDLE;
const TAG: u32 = u32::from_le_bytes(*b"Test");

struct Run {
    checks: usize,
}

impl Run {
    /// `call` (run at `irql` in `phase`) must record exactly one violation containing `text`
    /// and return true (its refusal value and effects were as documented).
    fn refused(
        &mut self,
        name: &str,
        irql: u8,
        phase: Phase,
        text: &str,
        call: impl FnOnce() -> bool,
    ) -> Result<(), String> {
        let new = recorded_by(irql, phase, call);
        self.checks += 1;
        match new {
            (true, v) if v.len() == 1 && v[0].contains(text) => Ok(()),
            (ok, v) => Err(format!(
                "{name}: expected one violation containing \"{text}\" and the refusal value; got {} violations {v:?}, value as documented: {ok}",
                v.len()
            )),
        }
    }

    /// `call` keeps the contract: it must record nothing and return true.
    fn clean(&mut self, name: &str, call: impl FnOnce() -> bool) -> Result<(), String> {
        let new = recorded_by(PASSIVE_LEVEL, Phase::Loaded, call);
        self.checks += 1;
        match new {
            (true, v) if v.is_empty() => Ok(()),
            (ok, v) => Err(format!(
                "{name}: expected success and no violation; got {v:?}, value as documented: {ok}"
            )),
        }
    }
}

/// Runs `call` at `irql` in `phase`; returns its result and the violations it recorded.
fn recorded_by(irql: u8, phase: Phase, call: impl FnOnce() -> bool) -> (bool, Vec<String>) {
    let before = {
        let mut s = STATE.lock();
        s.phase = phase;
        s.violations.len()
    };
    IRQL.store(irql, Ordering::Relaxed);
    let ok = call();
    IRQL.store(PASSIVE_LEVEL, Ordering::Relaxed);
    let mut s = STATE.lock();
    s.phase = Phase::Loaded;
    (ok, s.violations.split_off(before))
}

fn dma_description(header: NDIS_OBJECT_HEADER) -> NDIS_SG_DMA_DESCRIPTION {
    NDIS_SG_DMA_DESCRIPTION {
        Header: header,
        Flags: NDIS_SG_DMA_64_BIT_ADDRESS,
        MaximumPhysicalMapping: 0x1_0000,
        ProcessSGListHandler: None,
        SharedMemAllocateCompleteHandler: None,
        ScatterGatherListSize: 0,
    }
}

fn interrupt_characteristics(
    header: NDIS_OBJECT_HEADER,
) -> NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
    NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
        Header: header,
        InterruptHandler: None,
        InterruptDpcHandler: None,
        DisableInterruptHandler: None,
        EnableInterruptHandler: None,
        MsiSupported: 1,
        MsiSyncWithAllMessages: 0,
        MessageInterruptHandler: None,
        MessageInterruptDpcHandler: None,
        DisableMessageInterruptHandler: None,
        EnableMessageInterruptHandler: None,
        InterruptType: 0,
        MessageInfoTable: null_mut(),
    }
}

/// NdisMRegisterScatterGatherDma(adapter, `d`) returns `status`, clears the handle and
/// registers nothing.
fn dma_refused(d: *mut NDIS_SG_DMA_DESCRIPTION, status: NDIS_STATUS) -> bool {
    let mut h = STALE;
    // SAFETY: `d` is a live description or NULL; `h` a live handle slot.
    let returned = unsafe { NdisMRegisterScatterGatherDma(adapter_handle(0), d, &mut h) };
    returned == status && h.is_null() && !STATE.lock().adapters[0].dma_registered
}

fn in_pool(p: *mut c_void) -> bool {
    STATE.lock().pool.contains_key(&(p as u64))
}

/// Runs every check; returns how many passed, or the first that did not.
pub fn contract() -> Result<usize, String> {
    let mut run = Run { checks: 0 };
    let good_dma = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION,
        NDIS_SG_DMA_DESCRIPTION_REVISION_1,
        NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1,
    );

    // Every unsafe block below calls an export as a driver would: with pointers to live locals
    // of the right types, or deliberately NULL.
    run.refused(
        "IRQL",
        DISPATCH_LEVEL,
        Phase::Initializing,
        "NdisMRegisterScatterGatherDma: called at IRQL 2 (allowed <= 0)",
        || dma_refused(&mut dma_description(good_dma), NDIS_STATUS_FAILURE),
    )?;
    run.refused(
        "handle",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMMapIoSpace: 0x5a5a0000 is not the miniport adapter handle",
        || {
            let mut va: *mut c_void = STALE;
            // SAFETY: live locals (or NULL) of the types the export takes.
            let returned = unsafe { NdisMMapIoSpace(&mut va, STALE, 0xC000_0000, 0x1000) };
            returned == NDIS_STATUS_INVALID_PARAMETER
                && va.is_null()
                && STATE.lock().adapters[0].maps.is_empty()
        },
    )?;
    run.refused(
        "phase",
        PASSIVE_LEVEL,
        Phase::Running,
        "NdisMSetMiniportAttributes: only allowed inside MiniportInitializeEx (called during Running)",
        || {
            let mut a = NDIS_MINIPORT_ADAPTER_ATTRIBUTES {
                RegistrationAttributes: NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES {
                    Header: NDIS_OBJECT_HEADER::new(
                        NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
                        NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                        NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                    ),
                    MiniportAdapterContext: STALE,
                    AttributeFlags: 0,
                    CheckForHangTimeInSeconds: 0,
                    InterfaceType: 5,
                },
            };
            // SAFETY: live locals (or NULL) of the types the export takes.
            let returned = unsafe { NdisMSetMiniportAttributes(adapter_handle(0), &mut a) };
            returned == NDIS_STATUS_FAILURE && STATE.lock().adapters[0].adapter_context.is_none()
        },
    )?;
    run.refused(
        "general attributes first",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMSetMiniportAttributes: general attributes set before the registration attributes",
        || {
            // SAFETY: all-zero is a valid value of this plain-data union.
            let mut a: NDIS_MINIPORT_ADAPTER_ATTRIBUTES = unsafe { core::mem::zeroed() };
            a.GeneralAttributes.Header = NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
                NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
                NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2,
            );
            // SAFETY: a live local of the type the export takes.
            let returned = unsafe { NdisMSetMiniportAttributes(adapter_handle(0), &mut a) };
            returned == NDIS_STATUS_FAILURE && STATE.lock().adapters[0].general_attributes.is_none()
        },
    )?;
    run.refused(
        "null out-pointer",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMRegisterInterruptEx: NdisInterruptHandle is NULL",
        || {
            let mut c = interrupt_characteristics(NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT,
                NDIS_MINIPORT_INTERRUPT_REVISION_1,
                NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1,
            ));
            // SAFETY: live locals (or NULL) of the types the export takes.
            let returned =
                unsafe { NdisMRegisterInterruptEx(adapter_handle(0), STALE, &mut c, null_mut()) };
            returned == NDIS_STATUS_INVALID_PARAMETER
                && STATE.lock().adapters[0].interrupt.is_none()
        },
    )?;
    run.refused(
        "null input",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMRegisterScatterGatherDma: DmaDescription is NULL",
        || dma_refused(null_mut(), NDIS_STATUS_INVALID_PARAMETER),
    )?;
    run.refused(
        "header type",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMRegisterScatterGatherDma: DMA description header type 0x80",
        || {
            let mut d = dma_description(NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_DEFAULT,
                NDIS_SG_DMA_DESCRIPTION_REVISION_1,
                NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1,
            ));
            dma_refused(&mut d, NDIS_STATUS_INVALID_PARAMETER)
        },
    )?;
    run.refused(
        "header size",
        PASSIVE_LEVEL,
        Phase::Initializing,
        "NdisMRegisterInterruptEx: interrupt characteristics header type 0x84 revision 1 size 0x10",
        || {
            let mut c = interrupt_characteristics(NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT,
                NDIS_MINIPORT_INTERRUPT_REVISION_1,
                0x10,
            ));
            let mut h = STALE;
            // SAFETY: live locals (or NULL) of the types the export takes.
            let returned =
                unsafe { NdisMRegisterInterruptEx(adapter_handle(0), STALE, &mut c, &mut h) };
            returned == NDIS_STATUS_INVALID_PARAMETER
                && h.is_null()
                && STATE.lock().adapters[0].interrupt.is_none()
        },
    )?;
    run.refused(
        "double deregistration",
        PASSIVE_LEVEL,
        Phase::Halting,
        "NdisMDeregisterInterruptEx: no interrupt registered",
        || {
            // SAFETY: live locals (or NULL) of the types the export takes.
            unsafe { NdisMDeregisterInterruptEx(interrupt_handle(0)) };
            true
        },
    )?;
    run.refused(
        "pool handle",
        PASSIVE_LEVEL,
        Phase::Running,
        "NdisAllocateMemoryWithTagPriority: 0x5a5a0000 is neither the driver nor the adapter handle",
        // SAFETY: live locals (or NULL) of the types the export takes.
        || unsafe { NdisAllocateMemoryWithTagPriority(STALE, 64, TAG, NormalPoolPriority) }.is_null(),
    )?;

    // A refused void call has no effect: memory freed at DIRQL stays allocated.
    let mut p: *mut c_void = null_mut();
    run.clean("NdisAllocateMemoryWithTagPriority", || {
        // SAFETY: live locals (or NULL) of the types the export takes.
        p = unsafe {
            NdisAllocateMemoryWithTagPriority(driver_handle(), 64, TAG, NormalPoolPriority)
        };
        !p.is_null() && in_pool(p)
    })?;
    run.refused(
        "IRQL of a void export",
        DEVICE_IRQL,
        Phase::Running,
        "NdisFreeMemory: called at IRQL 5 (allowed <= 2)",
        || {
            // SAFETY: live locals (or NULL) of the types the export takes.
            unsafe { NdisFreeMemory(p, 64, 0) };
            in_pool(p)
        },
    )?;
    run.clean("NdisFreeMemory", || {
        // SAFETY: live locals (or NULL) of the types the export takes.
        unsafe { NdisFreeMemory(p, 64, 0) };
        !in_pool(p)
    })?;

    // Memory allocated with the adapter handle and still held when the halt returns is
    // reported (memory allocated with the driver handle may live until unload).
    run.refused(
        "adapter memory held past halt",
        PASSIVE_LEVEL,
        Phase::Halted,
        "allocated with the adapter handle (NdisAllocateMemoryWithTagPriority) not freed",
        || {
            // SAFETY: the guest's own exports with its adapter handle.
            let a = unsafe {
                NdisAllocateMemoryWithTagPriority(adapter_handle(0), 32, TAG, NormalPoolPriority)
            };
            super::check_adapter_released("MiniportHaltEx", 0);
            // SAFETY: as above; the block was just allocated.
            unsafe { NdisFreeMemory(a, 32, 0) };
            !a.is_null() && !in_pool(a) && STATE.lock().adapters[0].pool.is_empty()
        },
    )?;

    // Events: a refused wait returns FALSE at once; a refused set leaves the event alone.
    let mut ev = NDIS_EVENT::default();
    run.clean("NdisInitializeEvent", || {
        // SAFETY: live locals (or NULL) of the types the export takes.
        unsafe { NdisInitializeEvent(&mut ev) };
        ev.Event.Size != 0 && ev.Event.SignalState == 0
    })?;
    run.refused(
        "IRQL of a wait",
        DISPATCH_LEVEL,
        Phase::Running,
        "NdisWaitEvent: called at IRQL 2 (allowed <= 0)",
        // SAFETY: live locals (or NULL) of the types the export takes.
        || unsafe { NdisWaitEvent(&mut ev, 0) } == FALSE,
    )?;
    let mut raw = NDIS_EVENT::default();
    run.refused(
        "uninitialized event",
        PASSIVE_LEVEL,
        Phase::Running,
        "was not initialized with NdisInitializeEvent",
        || {
            // SAFETY: live locals (or NULL) of the types the export takes.
            unsafe { NdisSetEvent(&mut raw) };
            raw.Event.SignalState == 0
        },
    )?;

    // OID rules (guest_core::oid): a completion of a request NDIS never issued, and a second
    // completion of a pended request.
    // SAFETY: plain data; all-zero is a valid request.
    let mut req: NDIS_OID_REQUEST = unsafe { core::mem::zeroed() };
    let req_ptr: *mut NDIS_OID_REQUEST = &mut req;
    run.refused(
        "NdisOidComplete",
        DISPATCH_LEVEL,
        Phase::Running,
        "NdisOidComplete: NdisMOidRequestComplete(",
        || {
            // SAFETY: a live local of the type the export takes.
            unsafe { NdisMOidRequestComplete(adapter_handle(0), req_ptr, NDIS_STATUS_SUCCESS) };
            true
        },
    )?;
    let pended = {
        let mut t = super::oid::TRACKER.lock();
        t.issue(req_ptr as u64).is_ok() && matches!(t.returned(NDIS_STATUS_PENDING), Ok(None))
    };
    run.clean("NdisMOidRequestComplete of a pended request", || {
        // SAFETY: as above.
        unsafe { NdisMOidRequestComplete(adapter_handle(0), req_ptr, NDIS_STATUS_SUCCESS) };
        pended && super::oid::TRACKER.lock().take_completion() == Some(NDIS_STATUS_SUCCESS)
    })?;
    run.refused(
        "NdisOidDoubleComplete",
        DISPATCH_LEVEL,
        Phase::Running,
        "NdisOidDoubleComplete: OID request",
        || {
            // SAFETY: as above.
            unsafe { NdisMOidRequestComplete(adapter_handle(0), req_ptr, NDIS_STATUS_SUCCESS) };
            true
        },
    )?;
    *super::oid::TRACKER.lock() = guest_core::oid::OidTracker::new();

    // Leave no allocation behind that the heap baseline taken before the driver loads would
    // count.
    let mut s = STATE.lock();
    s.violations = Vec::new();
    s.pool = BTreeMap::new();
    Ok(run.checks)
}
