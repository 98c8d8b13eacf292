//! The exported NDIS functions. Each has exactly the signature of its `ndis_abi` typedef
//! (checked at compile time below), validates its arguments and the caller's IRQL/phase, and
//! records contract violations instead of trusting the driver. The checks and the rule they
//! follow (every violation is recorded and refuses the call) are in [`super::contract`]; each
//! export's body starts with its contract, written as those checks.
#![allow(non_snake_case)]

use alloc::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use alloc::format;
use core::ffi::c_void;
use core::ptr::{null_mut, read_volatile, write_volatile};

use ndis_abi::*;

use super::contract::{
    check_header, clear_out, export, read_header, refuse, require_adapter, require_handle,
    require_irql, require_non_null, require_one_of, require_phase, Checked, INSIDE_INITIALIZE,
};
use super::interrupt;
use super::{
    dma_handle, driver_handle, interrupt_handle, InterruptReg, Phase, COOKIES, DEVICE_IRQL,
    DISPATCH_LEVEL, PASSIVE_LEVEL, STATE,
};
use crate::interrupts::apic_id;
use guest_core::irq::MSG_VECTOR_BASE;

const _: NdisMRegisterMiniportDriverFn = NdisMRegisterMiniportDriver;
const _: NdisMDeregisterMiniportDriverFn = NdisMDeregisterMiniportDriver;
const _: NdisMSetMiniportAttributesFn = NdisMSetMiniportAttributes;
const _: NdisMMapIoSpaceFn = NdisMMapIoSpace;
const _: NdisMUnmapIoSpaceFn = NdisMUnmapIoSpace;
const _: NdisMRegisterInterruptExFn = NdisMRegisterInterruptEx;
const _: NdisMDeregisterInterruptExFn = NdisMDeregisterInterruptEx;
const _: NdisMRegisterScatterGatherDmaFn = NdisMRegisterScatterGatherDma;
const _: NdisMDeregisterScatterGatherDmaFn = NdisMDeregisterScatterGatherDma;
const _: NdisMAllocateSharedMemoryFn = NdisMAllocateSharedMemory;
const _: NdisMFreeSharedMemoryFn = NdisMFreeSharedMemory;
const _: NdisAllocateMemoryWithTagPriorityFn = NdisAllocateMemoryWithTagPriority;
const _: NdisFreeMemoryFn = NdisFreeMemory;
const _: NdisInitializeEventFn = NdisInitializeEvent;
const _: NdisSetEventFn = NdisSetEvent;
const _: NdisResetEventFn = NdisResetEvent;
const _: NdisWaitEventFn = NdisWaitEvent;
const _: NdisMSendNetBufferListsCompleteFn = NdisMSendNetBufferListsComplete;
const _: NdisMOidRequestCompleteFn = NdisMOidRequestComplete;

/// Longest wait the guest grants an infinite `NdisWaitEvent` before calling it a hang.
const INFINITE_WAIT_CAP_MS: u64 = 30_000;
const PAGE: usize = 4096;
/// Fill pattern of NdisAllocateMemoryWithTagPriority memory (pool memory is not zeroed).
const POOL_FILL: u8 = 0xA5;

/// Layout of the page-aligned block behind `NdisMAllocateSharedMemory(Length)`, or None when
/// `Length` is too large to lay out.
fn shared_layout(length: u32) -> Option<Layout> {
    Layout::from_size_align((length as usize).div_ceil(PAGE) * PAGE, PAGE).ok()
}

/// Layout of the block behind `NdisAllocateMemoryWithTagPriority(Length)`.
fn pool_layout(length: u32) -> Option<Layout> {
    Layout::from_size_align(length as usize, 16).ok()
}

/// A fresh block for `length` bytes laid out by `layout`, zero-filled when `zeroed`. A
/// zero-length or unsatisfiable request fails with NDIS_STATUS_RESOURCES: not a violation
/// (the export returns NULL, as NDIS does).
fn allocate(length: u32, layout: fn(u32) -> Option<Layout>, zeroed: bool) -> Checked<*mut u8> {
    let layout = layout(length)
        .filter(|l| l.size() != 0)
        .ok_or(NDIS_STATUS_RESOURCES)?;
    // SAFETY: non-zero size.
    let p = unsafe {
        if zeroed {
            alloc_zeroed(layout)
        } else {
            alloc(layout)
        }
    };
    if p.is_null() {
        return Err(NDIS_STATUS_RESOURCES);
    }
    Ok(p)
}

/// The general-attributes arm of NdisMSetMiniportAttributes: checked as NDIS would
/// (`guest_core::attributes`), only after the registration attributes and only once, and kept
/// for the verifier and the OID tests.
///
/// # Safety
/// `attrs` points to at least `header.Size` readable bytes of driver memory; a non-NULL
/// `SupportedOidList` points to `SupportedOidListLength` readable bytes.
unsafe fn set_general_attributes(
    func: &str,
    adapter: usize,
    attrs: *const NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    header: NDIS_OBJECT_HEADER,
) -> Checked<NDIS_STATUS> {
    if STATE.lock().adapters[adapter].adapter_context.is_none() {
        return refuse(
            func,
            "general attributes set before the registration attributes",
            NDIS_STATUS_FAILURE,
        );
    }
    // Copy no more than the driver declared (a revision-1 structure is 0xD8 bytes).
    // SAFETY: all-zero is a valid value of this plain-data structure.
    let mut copy: NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES = unsafe { core::mem::zeroed() };
    let len = (header.Size as usize).min(core::mem::size_of_val(&copy));
    // SAFETY: `attrs` holds `header.Size` bytes per the caller; `copy` holds `len` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(attrs.cast::<u8>(), (&raw mut copy).cast::<u8>(), len)
    };
    let entries = match guest_core::attributes::oid_list_entries(&copy) {
        Ok(n) => n,
        Err(e) => return refuse(func, format!("{e}"), NDIS_STATUS_INVALID_PARAMETER),
    };
    let oids: alloc::vec::Vec<u32> = (0..entries)
        // SAFETY: the list holds `entries` ULONGs per the caller and `oid_list_entries`.
        .map(|i| unsafe { read_volatile(copy.SupportedOidList.add(i)) })
        .collect();
    let general = match guest_core::attributes::check_general(&copy, &oids) {
        Ok(g) => g,
        Err(e) => return refuse(func, format!("{e}"), NDIS_STATUS_INVALID_PARAMETER),
    };
    let mut s = STATE.lock();
    if s.adapters[adapter].general_attributes.is_some() {
        drop(s);
        return refuse(func, "general attributes set twice", NDIS_STATUS_FAILURE);
    }
    let m = general.mac;
    crate::println!(
        "ndis: general attributes: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, MTU {}, media connect state {}, {} supported OIDs",
        m[0], m[1], m[2], m[3], m[4], m[5],
        general.mtu,
        general.connect_state,
        general.supported_oids.len()
    );
    s.adapters[adapter].general_attributes = Some(general);
    Ok(NDIS_STATUS_SUCCESS)
}

// ---------------------------------------------------------------- driver registration

pub unsafe extern "win64" fn NdisMRegisterMiniportDriver(
    DriverObject: *mut DRIVER_OBJECT,
    RegistryPath: *mut UNICODE_STRING,
    MiniportDriverContext: NDIS_HANDLE,
    Characteristics: *mut NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    NdisMiniportDriverHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    const F: &str = "NdisMRegisterMiniportDriver";
    export(|| {
        // SAFETY: the driver's out-parameter for the handle.
        unsafe {
            clear_out(
                F,
                NdisMiniportDriverHandle,
                "NdisMiniportDriverHandle",
                null_mut(),
            )
        }?;
        require_irql(F, PASSIVE_LEVEL)?;
        require_phase(F, &[Phase::DriverEntry], "only allowed inside DriverEntry")?;
        let (drv, reg, already) = {
            let s = STATE.lock();
            (s.driver_object, s.registry_path, s.chars.is_some())
        };
        if already {
            return refuse(F, "driver already registered", NDIS_STATUS_FAILURE);
        }
        if DriverObject != drv || RegistryPath != reg {
            return refuse(
                F,
                "DriverObject/RegistryPath are not the ones DriverEntry received",
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        require_non_null(F, Characteristics, "Characteristics")?;
        // SAFETY: non-null pointer to the driver's characteristics, which start with a header.
        let hdr = unsafe { read_header(Characteristics) };
        // SAFETY: the version bytes follow the 4-byte header.
        let (maj, min) = unsafe {
            let p = Characteristics as *const u8;
            (p.add(4).read(), p.add(5).read())
        };
        // The type is checked first (the version bytes mean nothing in another structure); an
        // unknown version is refused right after it.
        let needed = required_characteristics_revision(maj, min);
        let (rev, size) = needed.unwrap_or((0, 0));
        check_header(
            F,
            &format!("characteristics for NDIS {maj}.{min}"),
            hdr,
            NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS,
            rev,
            size,
        )
        .map_err(|_| NDIS_STATUS_BAD_CHARACTERISTICS)?;
        if needed.is_none() {
            return refuse(
                F,
                format!("unsupported NDIS version {maj}.{min}"),
                NDIS_STATUS_BAD_VERSION,
            );
        }
        // Copy exactly the declared size (never read past what the driver said it provides).
        let mut c = NDIS_MINIPORT_DRIVER_CHARACTERISTICS::default();
        let n =
            (hdr.Size as usize).min(core::mem::size_of::<NDIS_MINIPORT_DRIVER_CHARACTERISTICS>());
        // SAFETY: the driver declares `Size` bytes; `c` has room for `n` <= its size.
        unsafe {
            core::ptr::copy_nonoverlapping(
                Characteristics as *const u8,
                &mut c as *mut _ as *mut u8,
                n,
            )
        };
        if let Some(name) = missing_required_handler(&c) {
            return refuse(
                F,
                format!("required handler {name} is NULL"),
                NDIS_STATUS_BAD_CHARACTERISTICS,
            );
        }
        {
            let mut s = STATE.lock();
            s.chars = Some(c);
            s.ndis_version = (maj, min);
            s.driver_context = MiniportDriverContext;
            s.registered_ever = true;
            s.deregistered = false;
        }
        // SAFETY: checked non-null by `clear_out`.
        unsafe { NdisMiniportDriverHandle.write(driver_handle()) };
        crate::println!("ndis: miniport registered (NDIS {maj}.{min})");
        if let Some(set_options) = c.SetOptionsHandler {
            crate::println!("ndis: MiniportSetOptions");
            super::ndk::IN_SET_OPTIONS.store(true, core::sync::atomic::Ordering::Relaxed);
            // SAFETY: driver handler, called synchronously as NDIS does.
            let status = unsafe { set_options(driver_handle(), MiniportDriverContext) };
            super::ndk::IN_SET_OPTIONS.store(false, core::sync::atomic::Ordering::Relaxed);
            if status != NDIS_STATUS_SUCCESS {
                crate::println!(
                    "ndis: MiniportSetOptions failed ({status:#010x}); registration fails"
                );
                let mut s = STATE.lock();
                s.chars = None;
                s.registered_ever = false;
                return Err(status);
            }
        }
        Ok(NDIS_STATUS_SUCCESS)
    })
}

/// The first handler NDIS requires that the characteristics leave NULL.
fn missing_required_handler(c: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS) -> Option<&'static str> {
    let required: [(&str, bool); 12] = [
        ("InitializeHandlerEx", c.InitializeHandlerEx.is_some()),
        ("HaltHandlerEx", c.HaltHandlerEx.is_some()),
        ("UnloadHandler", c.UnloadHandler.is_some()),
        ("PauseHandler", c.PauseHandler.is_some()),
        ("RestartHandler", c.RestartHandler.is_some()),
        ("OidRequestHandler", c.OidRequestHandler.is_some()),
        (
            "SendNetBufferListsHandler",
            c.SendNetBufferListsHandler.is_some(),
        ),
        (
            "ReturnNetBufferListsHandler",
            c.ReturnNetBufferListsHandler.is_some(),
        ),
        ("CancelSendHandler", c.CancelSendHandler.is_some()),
        (
            "DevicePnPEventNotifyHandler",
            c.DevicePnPEventNotifyHandler.is_some(),
        ),
        ("ShutdownHandlerEx", c.ShutdownHandlerEx.is_some()),
        (
            "CancelOidRequestHandler",
            c.CancelOidRequestHandler.is_some(),
        ),
    ];
    required
        .iter()
        .find(|(_, present)| !present)
        .map(|(name, _)| *name)
}

pub unsafe extern "win64" fn NdisMDeregisterMiniportDriver(NdisMiniportDriverHandle: NDIS_HANDLE) {
    const F: &str = "NdisMDeregisterMiniportDriver";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        require_handle(
            F,
            NdisMiniportDriverHandle,
            driver_handle(),
            "miniport driver",
        )?;
        require_phase(
            F,
            &[Phase::DriverEntry, Phase::Unloading],
            "only allowed on a failing DriverEntry's way out and in MiniportDriverUnload",
        )?;
        let mut s = STATE.lock();
        if s.chars.is_none() || s.deregistered {
            drop(s);
            return refuse(
                F,
                "driver is not registered (double deregistration?)",
                NDIS_STATUS_FAILURE,
            );
        }
        s.deregistered = true;
        drop(s);
        crate::println!("ndis: miniport deregistered");
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisMSetMiniportAttributes(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportAttributes: *mut NDIS_MINIPORT_ADAPTER_ATTRIBUTES,
) -> NDIS_STATUS {
    const F: &str = "NdisMSetMiniportAttributes";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_phase(F, &[Phase::Initializing], INSIDE_INITIALIZE)?;
        require_non_null(F, MiniportAttributes, "MiniportAttributes")?;
        // SAFETY: non-null pointer to an attribute structure starting with a header.
        let hdr = unsafe { read_header(MiniportAttributes) };
        match hdr.Type {
            NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES => {
                check_header(
                    F,
                    "registration attributes",
                    hdr,
                    NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
                    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                    NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1,
                )?;
                // SAFETY: the header says this is a registration-attributes structure of
                // adequate size.
                let r = unsafe {
                    read_volatile(
                        MiniportAttributes as *const NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
                    )
                };
                if r.MiniportAdapterContext.is_null() {
                    return refuse(
                        F,
                        "MiniportAdapterContext is NULL",
                        NDIS_STATUS_INVALID_PARAMETER,
                    );
                }
                let mut s = STATE.lock();
                if s.adapters[adapter].adapter_context.is_some() {
                    drop(s);
                    return refuse(F, "registration attributes set twice", NDIS_STATUS_FAILURE);
                }
                s.adapters[adapter].adapter_context = Some(r.MiniportAdapterContext);
                drop(s);
                crate::println!(
                    "ndis: adapter registration attributes (flags {:#x}, interface type {})",
                    r.AttributeFlags,
                    r.InterfaceType
                );
                Ok(NDIS_STATUS_SUCCESS)
            }
            NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES => {
                // SAFETY: the header says this is a general-attributes structure of at least
                // `hdr.Size` bytes (checked below before anything is trusted).
                unsafe { set_general_attributes(F, adapter, MiniportAttributes.cast(), hdr) }
            }
            NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES => {
                if STATE.lock().adapters[adapter].adapter_context.is_none() {
                    return refuse(
                        F,
                        format!(
                            "attributes type {:#x} set before the registration attributes",
                            hdr.Type
                        ),
                        NDIS_STATUS_FAILURE,
                    );
                }
                // SAFETY: non-null pointer to the driver's attributes (header readable).
                unsafe { super::ndk::set_ndk_attributes(F, adapter, MiniportAttributes.cast()) }
            }
            t => refuse(
                F,
                format!("unknown attributes type {t:#x}"),
                NDIS_STATUS_INVALID_PARAMETER,
            ),
        }
    })
}

// ---------------------------------------------------------------- I/O space

pub unsafe extern "win64" fn NdisMMapIoSpace(
    VirtualAddress: *mut *mut c_void,
    MiniportAdapterHandle: NDIS_HANDLE,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
    Length: u32,
) -> NDIS_STATUS {
    const F: &str = "NdisMMapIoSpace";
    export(|| {
        // SAFETY: the driver's out-parameter for the mapping.
        unsafe { clear_out(F, VirtualAddress, "VirtualAddress", null_mut()) }?;
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        let pa = PhysicalAddress as u64;
        let mut s = STATE.lock();
        let owned = s.adapters[adapter]
            .device
            .is_some_and(|d| Length != 0 && d.owns_range(pa, Length as u64));
        if !owned {
            drop(s);
            return refuse(
                F,
                format!("{pa:#x} (+{Length:#x}) is not inside a BAR of the adapter"),
                NDIS_STATUS_RESOURCES,
            );
        }
        s.adapters[adapter].maps.push((pa, Length));
        drop(s);
        // Identity mapping; the MMIO window is mapped uncached by the boot page tables.
        // SAFETY: checked non-null by `clear_out`.
        unsafe { VirtualAddress.write(pa as *mut c_void) };
        Ok(NDIS_STATUS_SUCCESS)
    })
}

pub unsafe extern "win64" fn NdisMUnmapIoSpace(
    MiniportAdapterHandle: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    Length: u32,
) {
    const F: &str = "NdisMUnmapIoSpace";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        let mut guard = STATE.lock();
        let va = VirtualAddress as u64;
        let maps = &mut guard.adapters[adapter].maps;
        let Some(i) = maps.iter().position(|&(a, l)| a == va && l == Length) else {
            drop(guard);
            return refuse(
                F,
                format!("{va:#x} (+{Length:#x}) was not mapped by NdisMMapIoSpace"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        maps.swap_remove(i);
        Ok(())
    })
}

// ---------------------------------------------------------------- interrupts

pub unsafe extern "win64" fn NdisMRegisterInterruptEx(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportInterruptContext: NDIS_HANDLE,
    Chars: *mut NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
    NdisInterruptHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    const F: &str = "NdisMRegisterInterruptEx";
    export(|| {
        // SAFETY: the driver's out-parameter for the handle.
        unsafe { clear_out(F, NdisInterruptHandle, "NdisInterruptHandle", null_mut()) }?;
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_phase(F, &[Phase::Initializing], INSIDE_INITIALIZE)?;
        require_non_null(F, Chars, "interrupt characteristics")?;
        // SAFETY: non-null pointer to the driver's interrupt characteristics.
        let hdr = unsafe { read_header(Chars) };
        check_header(
            F,
            "interrupt characteristics",
            hdr,
            NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT,
            NDIS_MINIPORT_INTERRUPT_REVISION_1,
            NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1,
        )?;
        // SAFETY: the header declares the whole revision-1 structure.
        let c = unsafe { read_volatile(Chars) };
        if STATE.lock().adapters[adapter].interrupt.is_some() {
            return refuse(F, "interrupt already registered", NDIS_STATUS_FAILURE);
        }
        if c.MsiSupported == 0 {
            crate::println!(
                "ndis: interrupt registration refused: the RNIC has no line interrupt (MSI-X only)"
            );
            return Err(NDIS_STATUS_RESOURCES);
        }
        let (Some(isr), Some(dpc)) = (c.MessageInterruptHandler, c.MessageInterruptDpcHandler)
        else {
            return refuse(
                F,
                "MsiSupported without MessageInterruptHandler and MessageInterruptDpcHandler",
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        let dev = STATE.lock().adapters[adapter]
            .device
            .ok_or(NDIS_STATUS_ADAPTER_NOT_FOUND)?;
        let Some(msix) = dev.msix else {
            crate::println!("ndis: interrupt registration refused: no MSI-X capability");
            return Err(NDIS_STATUS_RESOURCES);
        };
        let messages = (msix.table_size as u32).min(super::MESSAGES_PER_ADAPTER);
        let first_vector = MSG_VECTOR_BASE as u32 + adapter as u32 * super::MESSAGES_PER_ADAPTER;
        let apic = apic_id();
        let (table, layout) = message_info_table(messages, apic, first_vector)?;
        // Record the handlers before unmasking anything: an interrupt may arrive at once.
        {
            let mut s = STATE.lock();
            s.adapters[adapter].interrupt = Some(InterruptReg {
                ctx: MiniportInterruptContext,
                isr,
                dpc,
                messages,
                info_table: table,
                info_layout: layout,
            });
            s.adapters[adapter].interrupt_registered_ever = true;
        }
        for m in 0..messages {
            if !dev.msix_program(m as u16, apic, (first_vector + m) as u8) {
                deregister_interrupt_inner(adapter);
                return refuse(
                    F,
                    format!("MSI-X table entry {m} is not inside a BAR"),
                    NDIS_STATUS_RESOURCES,
                );
            }
        }
        dev.msix_enable(true);
        // SAFETY: checked non-null; output fields of the driver's characteristics and its
        // handle out-parameter.
        unsafe {
            write_volatile(&raw mut (*Chars).InterruptType, NDIS_CONNECT_MESSAGE_BASED);
            write_volatile(&raw mut (*Chars).MessageInfoTable, table);
            NdisInterruptHandle.write(interrupt_handle(adapter));
        }
        crate::println!("ndis: interrupt registered (message-based, {messages} messages)");
        Ok(NDIS_STATUS_SUCCESS)
    })
}

/// Allocates the `IO_INTERRUPT_MESSAGE_INFO` handed to the driver: `messages` entries, message
/// `m` on vector `first_vector + m` of the LAPIC `apic`.
fn message_info_table(
    messages: u32,
    apic: u32,
    first_vector: u32,
) -> Checked<(*mut IO_INTERRUPT_MESSAGE_INFO, Layout)> {
    let layout = Layout::from_size_align(io_interrupt_message_info_size(messages as usize), 8)
        .map_err(|_| NDIS_STATUS_RESOURCES)?;
    // SAFETY: non-zero size (the header alone is non-empty).
    let table = unsafe { alloc_zeroed(layout) } as *mut IO_INTERRUPT_MESSAGE_INFO;
    if table.is_null() {
        return Err(NDIS_STATUS_RESOURCES);
    }
    // SAFETY: `table` holds the header plus `messages` entries (io_interrupt_message_info_size).
    unsafe {
        (*table).UnifiedIrql = DEVICE_IRQL;
        (*table).MessageCount = messages;
        let first = (table as *mut u8).add(IO_INTERRUPT_MESSAGE_INFO_ENTRIES_OFFSET)
            as *mut IO_INTERRUPT_MESSAGE_INFO_ENTRY;
        for m in 0..messages {
            let vector = first_vector + m;
            first
                .add(m as usize)
                .write(IO_INTERRUPT_MESSAGE_INFO_ENTRY {
                    MessageAddress: (0xFEE0_0000u64 | (apic as u64) << 12) as i64,
                    TargetProcessorSet: 1,
                    InterruptObject: null_mut(),
                    MessageData: vector,
                    Vector: vector,
                    Irql: DEVICE_IRQL,
                    Mode: Latched,
                    Polarity: InterruptRisingEdge,
                });
        }
    }
    Ok((table, layout))
}

/// Masks every entry of adapter `adapter`, disables its MSI-X, frees the message table and
/// forgets the handlers.
pub fn deregister_interrupt_inner(adapter: usize) {
    let (reg, dev) = {
        let mut s = STATE.lock();
        let a = &mut s.adapters[adapter];
        (a.interrupt.take(), a.device)
    };
    if let (Some(reg), Some(dev)) = (reg, dev) {
        for m in 0..reg.messages {
            dev.msix_mask(m as u16);
        }
        dev.msix_enable(false);
        // SAFETY: allocated in NdisMRegisterInterruptEx with this layout.
        unsafe { dealloc(reg.info_table as *mut u8, reg.info_layout) };
    }
}

pub unsafe extern "win64" fn NdisMDeregisterInterruptEx(NdisInterruptHandle: NDIS_HANDLE) {
    const F: &str = "NdisMDeregisterInterruptEx";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_one_of(F, NdisInterruptHandle, &COOKIES.interrupt, "interrupt")?;
        if STATE.lock().adapters[adapter].interrupt.is_none() {
            return refuse(
                F,
                "no interrupt registered (double deregistration?)",
                NDIS_STATUS_FAILURE,
            );
        }
        // Like Windows, finish DPCs already queued before disconnecting.
        interrupt::run_pending_dpcs();
        deregister_interrupt_inner(adapter);
        crate::println!("ndis: interrupt deregistered");
        Ok(())
    })
}

// ---------------------------------------------------------------- DMA and shared memory

pub unsafe extern "win64" fn NdisMRegisterScatterGatherDma(
    MiniportAdapterHandle: NDIS_HANDLE,
    DmaDescription: *mut NDIS_SG_DMA_DESCRIPTION,
    NdisMiniportDmaHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    const F: &str = "NdisMRegisterScatterGatherDma";
    export(|| {
        // SAFETY: the driver's out-parameter for the handle.
        unsafe {
            clear_out(
                F,
                NdisMiniportDmaHandle,
                "NdisMiniportDmaHandle",
                null_mut(),
            )
        }?;
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_phase(F, &[Phase::Initializing], INSIDE_INITIALIZE)?;
        require_non_null(F, DmaDescription, "DmaDescription")?;
        // SAFETY: non-null pointer to the driver's description.
        let hdr = unsafe { read_header(DmaDescription) };
        check_header(
            F,
            "DMA description",
            hdr,
            NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION,
            NDIS_SG_DMA_DESCRIPTION_REVISION_1,
            NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1,
        )?;
        // SAFETY: the header declares the whole revision-1 structure.
        let d = unsafe { read_volatile(DmaDescription) };
        if d.MaximumPhysicalMapping == 0 {
            return refuse(
                F,
                "MaximumPhysicalMapping is 0",
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        let mut guard = STATE.lock();
        let s = &mut guard.adapters[adapter];
        if s.dma_registered {
            drop(guard);
            return refuse(
                F,
                "scatter/gather DMA already registered",
                NDIS_STATUS_FAILURE,
            );
        }
        s.dma_registered = true;
        s.process_sg_list = d.ProcessSGListHandler;
        drop(guard);
        // SCATTER_GATHER_LIST: 16-byte header + one 24-byte element per page (plus one for an
        // unaligned start).
        let pages = (d.MaximumPhysicalMapping as usize).div_ceil(PAGE) + 1;
        // SAFETY: non-null pointers checked above; ScatterGatherListSize is an output field.
        unsafe {
            write_volatile(
                &raw mut (*DmaDescription).ScatterGatherListSize,
                (16 + 24 * pages) as u32,
            );
            NdisMiniportDmaHandle.write(dma_handle(adapter));
        }
        crate::println!(
            "ndis: scatter/gather DMA registered (max mapping {:#x}, 64-bit {})",
            d.MaximumPhysicalMapping,
            d.Flags & NDIS_SG_DMA_64_BIT_ADDRESS != 0
        );
        Ok(NDIS_STATUS_SUCCESS)
    })
}

pub unsafe extern "win64" fn NdisMDeregisterScatterGatherDma(NdisMiniportDmaHandle: NDIS_HANDLE) {
    const F: &str = "NdisMDeregisterScatterGatherDma";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_one_of(F, NdisMiniportDmaHandle, &COOKIES.dma, "DMA")?;
        let mut guard = STATE.lock();
        let s = &mut guard.adapters[adapter];
        if !s.dma_registered {
            drop(guard);
            return refuse(
                F,
                "DMA not registered (double deregistration?)",
                NDIS_STATUS_FAILURE,
            );
        }
        s.dma_registered = false;
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisMAllocateSharedMemory(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut *mut c_void,
    PhysicalAddress: *mut NDIS_PHYSICAL_ADDRESS,
) {
    const F: &str = "NdisMAllocateSharedMemory";
    export(|| {
        // SAFETY: the driver's out-parameters for the allocation.
        unsafe {
            clear_out(F, VirtualAddress, "VirtualAddress", null_mut())?;
            clear_out(F, PhysicalAddress, "PhysicalAddress", 0)?;
        }
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        if !STATE.lock().adapters[adapter].dma_registered {
            return refuse(
                F,
                "called before NdisMRegisterScatterGatherDma",
                NDIS_STATUS_FAILURE,
            );
        }
        super::lowres::allocation(F)?;
        let p = allocate(Length, shared_layout, true)?;
        STATE.lock().adapters[adapter]
            .shared
            .insert(p as u64, (Length, Cached != 0));
        // SAFETY: checked non-null by `clear_out`; identity mapping: physical = virtual.
        unsafe {
            VirtualAddress.write(p as *mut c_void);
            PhysicalAddress.write(p as i64);
        }
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisMFreeSharedMemory(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut c_void,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
) {
    const F: &str = "NdisMFreeSharedMemory";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        let va = VirtualAddress as u64;
        let mut guard = STATE.lock();
        let s = &mut guard.adapters[adapter];
        let Some(&(len, cached)) = s.shared.get(&va) else {
            drop(guard);
            return refuse(
                F,
                format!("{va:#x} is not shared memory from NdisMAllocateSharedMemory"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        if len != Length || cached != (Cached != 0) || PhysicalAddress as u64 != va {
            drop(guard);
            return refuse(
                F,
                format!(
                    "{va:#x} freed with length {Length:#x}/cached {Cached}/pa {PhysicalAddress:#x}, allocated as {len:#x}/{}/{va:#x}",
                    cached as u8
                ),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        s.shared.remove(&va);
        drop(guard);
        if let Some(layout) = shared_layout(len) {
            // SAFETY: allocated by NdisMAllocateSharedMemory with exactly this layout (the
            // length was validated above).
            unsafe { dealloc(va as *mut u8, layout) };
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- pool memory

pub unsafe extern "win64" fn NdisAllocateMemoryWithTagPriority(
    NdisHandle: NDIS_HANDLE,
    Length: u32,
    Tag: u32,
    _Priority: EX_POOL_PRIORITY,
) -> *mut c_void {
    const F: &str = "NdisAllocateMemoryWithTagPriority";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        if NdisHandle != driver_handle() && super::index_of(&COOKIES.adapter, NdisHandle).is_none()
        {
            return refuse(
                F,
                format!("{NdisHandle:p} is neither the driver nor the adapter handle"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        super::lowres::allocation(F)?;
        let p = allocate(Length, pool_layout, false)?;
        // SAFETY: fresh allocation of `Length` bytes. Pool memory is not zeroed: make that
        // visible.
        unsafe { core::ptr::write_bytes(p, POOL_FILL, Length as usize) };
        let mut s = STATE.lock();
        s.pool.insert(p as u64, (Length, Tag));
        // Memory allocated with an adapter handle belongs to that adapter: freed by its halt.
        if let Some(i) = super::index_of(&COOKIES.adapter, NdisHandle) {
            s.adapters[i].pool.insert(p as u64);
        }
        Ok(p as *mut c_void)
    })
}

pub unsafe extern "win64" fn NdisFreeMemory(
    VirtualAddress: *mut c_void,
    Length: u32,
    MemoryFlags: u32,
) {
    const F: &str = "NdisFreeMemory";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let va = VirtualAddress as u64;
        let mut s = STATE.lock();
        let Some(&(len, _tag)) = s.pool.get(&va) else {
            drop(s);
            return refuse(
                F,
                format!(
                    "{va:#x} was not allocated by NdisAllocateMemoryWithTagPriority (or freed twice)"
                ),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        };
        if (Length != 0 && Length != len) || MemoryFlags != 0 {
            drop(s);
            return refuse(
                F,
                format!(
                    "{va:#x} freed with length {Length:#x} flags {MemoryFlags:#x}; allocated {len:#x} bytes with flags 0"
                ),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        s.pool.remove(&va);
        for a in s.adapters.iter_mut() {
            a.pool.remove(&va);
        }
        drop(s);
        if let Some(layout) = pool_layout(len) {
            // SAFETY: allocated by NdisAllocateMemoryWithTagPriority with this layout.
            unsafe { dealloc(va as *mut u8, layout) };
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- events

const NOTIFICATION_EVENT: u8 = 0;
const KEVENT_SIZE_DWORDS: u8 = (core::mem::size_of::<KEVENT>() / 4) as u8;

/// `e` must point into RAM and, when `initialized`, hold an event NdisInitializeEvent set up.
fn require_event(func: &str, e: *mut NDIS_EVENT, initialized: bool) -> Checked {
    if e.is_null() || (e as u64) >= 0xC000_0000 {
        return refuse(
            func,
            format!("invalid event pointer {e:p}"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    if initialized {
        // SAFETY: pointer validated to lie in RAM; reads the driver's KEVENT header.
        let (t, sz) = unsafe {
            (
                read_volatile(&raw const (*e).Event.Type),
                read_volatile(&raw const (*e).Event.Size),
            )
        };
        if t != NOTIFICATION_EVENT || sz != KEVENT_SIZE_DWORDS {
            return refuse(
                func,
                format!("event {e:p} was not initialized with NdisInitializeEvent"),
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
    }
    Ok(())
}

/// NdisSetEvent and NdisResetEvent: at IRQL <= DISPATCH_LEVEL, on an initialized event.
fn set_signal_state(func: &str, e: *mut NDIS_EVENT, state: i32) {
    export(|| {
        require_irql(func, DISPATCH_LEVEL)?;
        require_event(func, e, true)?;
        // SAFETY: validated, initialized event.
        unsafe { write_volatile(&raw mut (*e).Event.SignalState, state) };
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisInitializeEvent(Event: *mut NDIS_EVENT) {
    const F: &str = "NdisInitializeEvent";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        require_event(F, Event, false)?;
        // SAFETY: validated pointer to the driver's NDIS_EVENT.
        unsafe {
            let list = &raw mut (*Event).Event.WaitListHead as u64;
            write_volatile(
                &raw mut (*Event).Event,
                KEVENT {
                    Type: NOTIFICATION_EVENT,
                    Signalling: 0,
                    Size: KEVENT_SIZE_DWORDS,
                    Reserved1: 0,
                    SignalState: 0,
                    WaitListHead: [list, list],
                },
            )
        };
        Ok(())
    })
}

pub unsafe extern "win64" fn NdisSetEvent(Event: *mut NDIS_EVENT) {
    set_signal_state("NdisSetEvent", Event, 1);
}

pub unsafe extern "win64" fn NdisResetEvent(Event: *mut NDIS_EVENT) {
    set_signal_state("NdisResetEvent", Event, 0);
}

pub unsafe extern "win64" fn NdisWaitEvent(Event: *mut NDIS_EVENT, MsToWait: u32) -> BOOLEAN {
    const F: &str = "NdisWaitEvent";
    export(|| {
        require_irql(F, PASSIVE_LEVEL)?;
        require_event(F, Event, true)?;
        let limit = if MsToWait == 0 {
            INFINITE_WAIT_CAP_MS
        } else {
            MsToWait as u64
        };
        // SAFETY: validated, initialized event; the driver keeps it alive while waiting on it.
        let signalled = || unsafe { read_volatile(&raw const (*Event).Event.SignalState) } != 0;
        let ok = interrupt::wait_until(limit, signalled);
        if !ok && MsToWait == 0 {
            // Not a refusal: the wait happened and reports its outcome.
            super::violation(format!(
                "{F}(infinite) not signalled within {INFINITE_WAIT_CAP_MS} ms: the driver would hang"
            ));
        }
        Ok(ok as BOOLEAN)
    })
}

// ---------------------------------------------------------------- send path

pub unsafe extern "win64" fn NdisMSendNetBufferListsComplete(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetBufferList: *mut NET_BUFFER_LIST,
    SendCompleteFlags: u32,
) {
    const F: &str = "NdisMSendNetBufferListsComplete";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        let adapter = require_adapter(F, MiniportAdapterHandle)?;
        require_non_null(F, NetBufferList, "NetBufferList")?;
        super::pause::require_not_paused(F, adapter, "a send completion")?;
        let problems = super::send::completed(NetBufferList, SendCompleteFlags);
        if problems.is_empty() {
            // SAFETY: every NBL of the chain is one the guest sent and still owns the memory
            // of (`completed` checked each against its record).
            unsafe { super::reset::send_completed(adapter, NetBufferList) };
        }
        match problems.into_iter().next() {
            Some(first) => refuse(F, first, NDIS_STATUS_INVALID_PARAMETER),
            None => Ok(()),
        }
    })
}

// ---------------------------------------------------------------- control path

pub unsafe extern "win64" fn NdisMOidRequestComplete(
    MiniportAdapterHandle: NDIS_HANDLE,
    OidRequest: *mut NDIS_OID_REQUEST,
    Status: NDIS_STATUS,
) {
    const F: &str = "NdisMOidRequestComplete";
    export(|| {
        require_irql(F, DISPATCH_LEVEL)?;
        require_adapter(F, MiniportAdapterHandle)?;
        if Status == NDIS_STATUS_PENDING {
            return refuse(
                F,
                "completes a request with NDIS_STATUS_PENDING",
                NDIS_STATUS_INVALID_PARAMETER,
            );
        }
        match super::oid::TRACKER
            .lock()
            .complete(OidRequest as u64, Status)
        {
            Ok(()) => Ok(()),
            Err(v) => refuse(F, v, NDIS_STATUS_INVALID_PARAMETER),
        }
    })
}
