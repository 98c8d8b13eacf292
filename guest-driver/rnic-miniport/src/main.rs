//! rnic.sys: the NDIS 6.30 miniport for the emulated RNIC (docs/device-spec.md).
//!
//! A Windows kernel-mode PE32+ image (`/DRIVER /SUBSYSTEM:NATIVE /ENTRY:DriverEntry`) built on
//! Linux by scripts/build-driver.sh. One file per path, as Microsoft's netvmini sample:
//! `adapter` (life cycle), `oid` (control path), `send`, `receive`, `ethernet` (the rings),
//! `interrupt`, `hw` (hardware access), `reset` (fatal errors, CheckForHangEx, ResetEx),
//! `link` (link-state indications), `pause` (pending pauses), `ndk` (the NDK provider: adapter, PD, CQ, MR objects),
//! `nmr` (the NMR provider of the RNIC diagnostics NPI);
//! `logic`, `ndk_logic`, `nmr_binding`, `data_path` and `device_stats` are the pure, host-tested parts. Every log
//! line goes through `DbgPrint` and starts with `rnic: `.
//!
//! This crate owns the driver only; the ABI it compiles against is `guest-driver/ndis-abi`
//! (shared with the guest) and must not be redefined here.
#![no_std]
#![no_main]
#![allow(non_snake_case)]

mod adapter;
mod data_path;
mod device_stats;
mod ethernet;
mod ffi;
mod hw;
mod interrupt;
mod link;
#[allow(dead_code)] // the full register map and helpers, not all used yet
mod logic;
mod ndk;
#[allow(dead_code)] // the pure NDK logic, also host-tested; not every helper is used yet
mod ndk_logic;
mod nmr;
mod nmr_binding;
mod oid;
mod pause;
mod receive;
mod reset;
mod send;

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use ffi::log;
use ndis_abi::*;

/// Handle returned by NdisMRegisterMiniportDriver; needed by MiniportDriverUnload.
static DRIVER_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// # Safety
/// Called once by the OS loader with a valid driver object and registry path.
#[no_mangle]
pub unsafe extern "win64" fn DriverEntry(
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    log!("DriverEntry\n");
    let mut chars = NDIS_MINIPORT_DRIVER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS,
            NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2,
        ),
        MajorNdisVersion: NDIS_MINIPORT_MAJOR_VERSION,
        MinorNdisVersion: NDIS_MINIPORT_MINOR_VERSION,
        MajorDriverVersion: 0,
        MinorDriverVersion: 1,
        Flags: 0,
        SetOptionsHandler: Some(MiniportSetOptions),
        InitializeHandlerEx: Some(adapter::MiniportInitializeEx),
        HaltHandlerEx: Some(adapter::MiniportHaltEx),
        UnloadHandler: Some(MiniportDriverUnload),
        PauseHandler: Some(adapter::MiniportPause),
        RestartHandler: Some(adapter::MiniportRestart),
        OidRequestHandler: Some(oid::MiniportOidRequest),
        SendNetBufferListsHandler: Some(send::MiniportSendNetBufferLists),
        ReturnNetBufferListsHandler: Some(receive::MiniportReturnNetBufferLists),
        CancelSendHandler: Some(send::MiniportCancelSend),
        CheckForHangHandlerEx: Some(reset::MiniportCheckForHangEx),
        ResetHandlerEx: Some(reset::MiniportResetEx),
        DevicePnPEventNotifyHandler: Some(adapter::MiniportDevicePnPEventNotify),
        ShutdownHandlerEx: Some(adapter::MiniportShutdownEx),
        CancelOidRequestHandler: Some(oid::MiniportCancelOidRequest),
        DirectOidRequestHandler: Some(oid::MiniportDirectOidRequest),
        CancelDirectOidRequestHandler: Some(oid::MiniportCancelDirectOidRequest),
        SynchronousOidRequestHandler: None,
    };
    let mut handle: NDIS_HANDLE = null_mut();
    // SAFETY: FFI call with valid pointers to locals; NDIS copies the characteristics.
    let status = unsafe {
        ffi::NdisMRegisterMiniportDriver(
            driver_object,
            registry_path,
            null_mut(),
            &mut chars,
            &mut handle,
        )
    };
    if status != NDIS_STATUS_SUCCESS {
        log!("NdisMRegisterMiniportDriver failed: %x\n", status);
        return status;
    }
    log!("miniport driver registered (NDIS %u.%u)\n", 6u32, 30u32);
    // SAFETY: once, from DriverEntry, with the handle just registered.
    let status = unsafe { nmr::register(handle) };
    if !nt_success(status) {
        // SAFETY: `handle` came from the successful registration above; nothing else holds it.
        unsafe { ffi::NdisMDeregisterMiniportDriver(handle) };
        return status;
    }
    DRIVER_HANDLE.store(handle, Ordering::Release);
    STATUS_SUCCESS
}

/// MiniportSetOptions. IRQL: PASSIVE_LEVEL. Called synchronously inside
/// NdisMRegisterMiniportDriver: registers the NDK provider (NdisSetOptionalHandlers with the
/// provider characteristics).
unsafe extern "win64" fn MiniportSetOptions(
    ndis_driver_handle: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
) -> NDIS_STATUS {
    log!("SetOptions\n");
    // SAFETY: the handle is the one NDIS gave this call.
    let status = unsafe { ndk::register(ndis_driver_handle) };
    if status != NDIS_STATUS_SUCCESS {
        log!("NDK provider registration failed: %x\n", status);
    }
    status
}

/// MiniportDriverUnload. IRQL: PASSIVE_LEVEL. Undoes DriverEntry: the NMR provider is
/// deregistered (and every client detached) before the miniport.
unsafe extern "win64" fn MiniportDriverUnload(_driver_object: *mut DRIVER_OBJECT) {
    log!("DriverUnload\n");
    // SAFETY: from MiniportDriverUnload, as `nmr::deregister` requires.
    unsafe { nmr::deregister() };
    let handle = DRIVER_HANDLE.swap(null_mut(), Ordering::AcqRel);
    if !handle.is_null() {
        // SAFETY: `handle` came from a successful NdisMRegisterMiniportDriver and is
        // deregistered exactly once (the swap above clears it).
        unsafe { ffi::NdisMDeregisterMiniportDriver(handle) };
    }
}

/// MSVC's marker that floating point is in use; compiler_builtins references it and the CRT
/// that normally defines it is not linked (/NODEFAULTLIB).
#[used]
#[no_mangle]
static _fltused: i32 = 0;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No bug-check import in the skeleton: raise #UD so the host sees a precise fault.
    // SAFETY: `ud2` only raises an invalid-opcode exception.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}
