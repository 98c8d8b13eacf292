//! The exported NDIS functions. Each has exactly the signature of its `ndis_abi` typedef
//! (checked at compile time below), validates its arguments and the caller's IRQL/phase, and
//! records contract violations instead of trusting the driver.
#![allow(non_snake_case)]

use alloc::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use alloc::format;
use alloc::string::String;
use core::ffi::c_void;
use core::ptr::{read_volatile, write_volatile};

use ndis_abi::*;

use super::interrupt;
use super::{
    adapter_handle, check_handle, check_irql, dma_handle, driver_handle, interrupt_handle,
    violation, InterruptReg, Phase, DEVICE_IRQL, DISPATCH_LEVEL, PASSIVE_LEVEL, STATE,
};
use crate::interrupts::{apic_id, MSG_VECTORS, MSG_VECTOR_BASE};

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

/// Longest wait the guest grants an infinite `NdisWaitEvent` before calling it a hang.
const INFINITE_WAIT_CAP_MS: u64 = 30_000;
const PAGE: usize = 4096;
/// Fill pattern of NdisAllocateMemoryWithTagPriority memory (pool memory is not zeroed).
const POOL_FILL: u8 = 0xA5;

fn phase() -> Phase {
    STATE.lock().phase
}

fn refuse(func: &str, why: String, status: NDIS_STATUS) -> NDIS_STATUS {
    violation(format!("{func}: {why}"));
    status
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
    check_irql(F, PASSIVE_LEVEL);
    let (phase, drv, reg, already) = {
        let s = STATE.lock();
        (s.phase, s.driver_object, s.registry_path, s.chars.is_some())
    };
    if phase != Phase::DriverEntry {
        return refuse(
            F,
            format!("called outside DriverEntry ({phase:?})"),
            NDIS_STATUS_FAILURE,
        );
    }
    if already {
        return refuse(
            F,
            String::from("driver already registered"),
            NDIS_STATUS_FAILURE,
        );
    }
    if DriverObject != drv || RegistryPath != reg {
        return refuse(
            F,
            String::from("DriverObject/RegistryPath are not the ones DriverEntry received"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    if Characteristics.is_null() || NdisMiniportDriverHandle.is_null() {
        return refuse(
            F,
            String::from("null characteristics or handle pointer"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: non-null pointer from the driver to its characteristics; read the header first.
    let hdr = unsafe { read_volatile(Characteristics as *const NDIS_OBJECT_HEADER) };
    // SAFETY: the version bytes follow the 4-byte header.
    let (maj, min) = unsafe {
        let p = Characteristics as *const u8;
        (p.add(4).read(), p.add(5).read())
    };
    if hdr.Type != NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS {
        return refuse(
            F,
            format!("characteristics header type {:#x}, expected 0x8a", hdr.Type),
            NDIS_STATUS_BAD_CHARACTERISTICS,
        );
    }
    let Some((rev, size)) = required_characteristics_revision(maj, min) else {
        return refuse(
            F,
            format!("unsupported NDIS version {maj}.{min}"),
            NDIS_STATUS_BAD_VERSION,
        );
    };
    if hdr.Revision < rev || hdr.Size < size {
        return refuse(
            F,
            format!(
                "characteristics revision {} size {:#x} too small for NDIS {maj}.{min} (needs revision {rev} size {size:#x})",
                hdr.Revision, hdr.Size
            ),
            NDIS_STATUS_BAD_CHARACTERISTICS,
        );
    }
    // Copy exactly the declared size (never read past what the driver said it provides).
    let mut c = NDIS_MINIPORT_DRIVER_CHARACTERISTICS::default();
    let n = (hdr.Size as usize).min(core::mem::size_of::<NDIS_MINIPORT_DRIVER_CHARACTERISTICS>());
    // SAFETY: the driver declares `Size` bytes; `c` has room for `n` <= its size.
    unsafe {
        core::ptr::copy_nonoverlapping(Characteristics as *const u8, &mut c as *mut _ as *mut u8, n)
    };
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
    if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
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
    // SAFETY: checked non-null above.
    unsafe { NdisMiniportDriverHandle.write(driver_handle()) };
    crate::println!("ndis: miniport registered (NDIS {maj}.{min})");
    if let Some(set_options) = c.SetOptionsHandler {
        crate::println!("ndis: MiniportSetOptions");
        // SAFETY: driver handler, called synchronously as NDIS does.
        let st = unsafe { set_options(driver_handle(), MiniportDriverContext) };
        if st != NDIS_STATUS_SUCCESS {
            crate::println!("ndis: MiniportSetOptions failed ({st:#010x}); registration fails");
            let mut s = STATE.lock();
            s.chars = None;
            s.registered_ever = false;
            return st;
        }
    }
    NDIS_STATUS_SUCCESS
}

pub unsafe extern "win64" fn NdisMDeregisterMiniportDriver(NdisMiniportDriverHandle: NDIS_HANDLE) {
    const F: &str = "NdisMDeregisterMiniportDriver";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(
        F,
        NdisMiniportDriverHandle,
        driver_handle(),
        "miniport driver",
    ) {
        return;
    }
    let mut s = STATE.lock();
    if s.chars.is_none() || s.deregistered {
        drop(s);
        violation(format!(
            "{F}: driver is not registered (double deregistration?)"
        ));
        return;
    }
    if !matches!(s.phase, Phase::DriverEntry | Phase::Unloading) {
        let p = s.phase;
        drop(s);
        violation(format!(
            "{F} called during {p:?}; only DriverEntry failure paths and MiniportDriverUnload may"
        ));
        return;
    }
    s.deregistered = true;
    drop(s);
    crate::println!("ndis: miniport deregistered");
}

pub unsafe extern "win64" fn NdisMSetMiniportAttributes(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportAttributes: *mut NDIS_MINIPORT_ADAPTER_ATTRIBUTES,
) -> NDIS_STATUS {
    const F: &str = "NdisMSetMiniportAttributes";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    if phase() != Phase::Initializing {
        return refuse(
            F,
            String::from("only allowed inside MiniportInitializeEx"),
            NDIS_STATUS_FAILURE,
        );
    }
    if MiniportAttributes.is_null() {
        return refuse(
            F,
            String::from("null attributes"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: non-null pointer to an attribute structure starting with a header.
    let hdr = unsafe { read_volatile(MiniportAttributes as *const NDIS_OBJECT_HEADER) };
    match hdr.Type {
        NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES => {
            if hdr.Revision < NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1
                || hdr.Size < NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1
            {
                return refuse(
                    F,
                    format!(
                        "registration attributes revision {} size {:#x} invalid",
                        hdr.Revision, hdr.Size
                    ),
                    NDIS_STATUS_INVALID_PARAMETER,
                );
            }
            // SAFETY: header says this is a registration-attributes structure of adequate size.
            let r = unsafe {
                read_volatile(
                    MiniportAttributes as *const NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
                )
            };
            if r.MiniportAdapterContext.is_null() {
                return refuse(
                    F,
                    String::from("MiniportAdapterContext is NULL"),
                    NDIS_STATUS_INVALID_PARAMETER,
                );
            }
            let mut s = STATE.lock();
            if s.adapter_context.is_some() {
                drop(s);
                return refuse(
                    F,
                    String::from("registration attributes set twice"),
                    NDIS_STATUS_FAILURE,
                );
            }
            s.adapter_context = Some(r.MiniportAdapterContext);
            drop(s);
            crate::println!(
                "ndis: adapter registration attributes (flags {:#x}, interface type {})",
                r.AttributeFlags,
                r.InterfaceType
            );
            NDIS_STATUS_SUCCESS
        }
        NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES
        | NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_NDK_ATTRIBUTES => {
            if STATE.lock().adapter_context.is_none() {
                return refuse(
                    F,
                    format!(
                        "attributes type {:#x} set before the registration attributes",
                        hdr.Type
                    ),
                    NDIS_STATUS_FAILURE,
                );
            }
            crate::println!("ndis: adapter attributes type {:#x} accepted", hdr.Type);
            NDIS_STATUS_SUCCESS
        }
        t => refuse(
            F,
            format!("unknown attributes type {t:#x}"),
            NDIS_STATUS_INVALID_PARAMETER,
        ),
    }
}

// ---------------------------------------------------------------- I/O space

pub unsafe extern "win64" fn NdisMMapIoSpace(
    VirtualAddress: *mut *mut c_void,
    MiniportAdapterHandle: NDIS_HANDLE,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
    Length: u32,
) -> NDIS_STATUS {
    const F: &str = "NdisMMapIoSpace";
    check_irql(F, PASSIVE_LEVEL);
    if VirtualAddress.is_null() {
        return refuse(
            F,
            String::from("null VirtualAddress pointer"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: non-null out pointer.
    unsafe { VirtualAddress.write(core::ptr::null_mut()) };
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    let pa = PhysicalAddress as u64;
    let mut s = STATE.lock();
    let owned = s
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
    s.maps.push((pa, Length));
    drop(s);
    // Identity mapping; the MMIO window is mapped uncached by the boot page tables.
    // SAFETY: non-null out pointer.
    unsafe { VirtualAddress.write(pa as *mut c_void) };
    NDIS_STATUS_SUCCESS
}

pub unsafe extern "win64" fn NdisMUnmapIoSpace(
    MiniportAdapterHandle: NDIS_HANDLE,
    VirtualAddress: *mut c_void,
    Length: u32,
) {
    const F: &str = "NdisMUnmapIoSpace";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return;
    }
    let mut s = STATE.lock();
    let va = VirtualAddress as u64;
    match s.maps.iter().position(|&(a, l)| a == va && l == Length) {
        Some(i) => {
            s.maps.swap_remove(i);
        }
        None => {
            drop(s);
            violation(format!(
                "{F}: {va:#x} (+{Length:#x}) was not mapped by NdisMMapIoSpace"
            ));
        }
    }
}

// ---------------------------------------------------------------- interrupts

pub unsafe extern "win64" fn NdisMRegisterInterruptEx(
    MiniportAdapterHandle: NDIS_HANDLE,
    MiniportInterruptContext: NDIS_HANDLE,
    Chars: *mut NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
    NdisInterruptHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    const F: &str = "NdisMRegisterInterruptEx";
    if !check_irql(F, PASSIVE_LEVEL) {
        return NDIS_STATUS_FAILURE;
    }
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    if phase() != Phase::Initializing {
        return refuse(
            F,
            String::from("only allowed inside MiniportInitializeEx"),
            NDIS_STATUS_FAILURE,
        );
    }
    if Chars.is_null() || NdisInterruptHandle.is_null() {
        return refuse(
            F,
            String::from("null characteristics or handle pointer"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: non-null pointer to the driver's interrupt characteristics.
    let c = unsafe { read_volatile(Chars) };
    if c.Header.Type != NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT
        || c.Header.Revision < NDIS_MINIPORT_INTERRUPT_REVISION_1
        || c.Header.Size < NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1
    {
        return refuse(
            F,
            format!(
                "interrupt characteristics header type {:#x} revision {} size {:#x} (expected 0x84, 1, 0x60)",
                c.Header.Type, c.Header.Revision, c.Header.Size
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    if STATE.lock().interrupt.is_some() {
        return refuse(
            F,
            String::from("interrupt already registered"),
            NDIS_STATUS_FAILURE,
        );
    }
    if c.MsiSupported == 0 {
        crate::println!(
            "ndis: interrupt registration refused: the RNIC has no line interrupt (MSI-X only)"
        );
        return NDIS_STATUS_RESOURCES;
    }
    let (Some(isr), Some(dpc)) = (c.MessageInterruptHandler, c.MessageInterruptDpcHandler) else {
        return refuse(
            F,
            String::from(
                "MsiSupported without MessageInterruptHandler and MessageInterruptDpcHandler",
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    };
    let Some(dev) = STATE.lock().device else {
        return NDIS_STATUS_ADAPTER_NOT_FOUND;
    };
    let Some(msix) = dev.msix else {
        crate::println!("ndis: interrupt registration refused: no MSI-X capability");
        return NDIS_STATUS_RESOURCES;
    };
    let messages = (msix.table_size as u32).min(MSG_VECTORS as u32);
    let apic = apic_id();
    let layout = match Layout::from_size_align(io_interrupt_message_info_size(messages as usize), 8)
    {
        Ok(l) => l,
        Err(_) => return NDIS_STATUS_RESOURCES,
    };
    // SAFETY: non-zero size.
    let table = unsafe { alloc_zeroed(layout) } as *mut IO_INTERRUPT_MESSAGE_INFO;
    if table.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `table` holds the header plus `messages` entries (io_interrupt_message_info_size).
    unsafe {
        (*table).UnifiedIrql = DEVICE_IRQL;
        (*table).MessageCount = messages;
        let first = (table as *mut u8).add(IO_INTERRUPT_MESSAGE_INFO_ENTRIES_OFFSET)
            as *mut IO_INTERRUPT_MESSAGE_INFO_ENTRY;
        for m in 0..messages {
            let vector = MSG_VECTOR_BASE as u32 + m;
            first
                .add(m as usize)
                .write(IO_INTERRUPT_MESSAGE_INFO_ENTRY {
                    MessageAddress: (0xFEE0_0000u64 | (apic as u64) << 12) as i64,
                    TargetProcessorSet: 1,
                    InterruptObject: core::ptr::null_mut(),
                    MessageData: vector,
                    Vector: vector,
                    Irql: DEVICE_IRQL,
                    Mode: Latched,
                    Polarity: InterruptRisingEdge,
                });
        }
    }
    // Record the handlers before unmasking anything: an interrupt may arrive at once.
    STATE.lock().interrupt = Some(InterruptReg {
        ctx: MiniportInterruptContext,
        isr,
        dpc,
        messages,
        info_table: table,
        info_layout: layout,
    });
    STATE.lock().interrupt_registered_ever = true;
    for m in 0..messages {
        if !dev.msix_program(m as u16, apic, MSG_VECTOR_BASE + m as u8) {
            deregister_interrupt_inner();
            return refuse(
                F,
                format!("MSI-X table entry {m} is not inside a BAR"),
                NDIS_STATUS_RESOURCES,
            );
        }
    }
    dev.msix_enable(true);
    // SAFETY: checked non-null; output fields of the driver's characteristics.
    unsafe {
        write_volatile(&raw mut (*Chars).InterruptType, NDIS_CONNECT_MESSAGE_BASED);
        write_volatile(&raw mut (*Chars).MessageInfoTable, table);
        NdisInterruptHandle.write(interrupt_handle());
    }
    crate::println!("ndis: interrupt registered (message-based, {messages} messages)");
    NDIS_STATUS_SUCCESS
}

/// Masks every entry, disables MSI-X, frees the message table and forgets the handlers.
pub fn deregister_interrupt_inner() {
    let (reg, dev) = {
        let mut s = STATE.lock();
        (s.interrupt.take(), s.device)
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
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(F, NdisInterruptHandle, interrupt_handle(), "interrupt") {
        return;
    }
    if STATE.lock().interrupt.is_none() {
        violation(format!(
            "{F}: no interrupt registered (double deregistration?)"
        ));
        return;
    }
    // Like Windows, finish DPCs already queued before disconnecting.
    interrupt::run_pending_dpcs();
    deregister_interrupt_inner();
    crate::println!("ndis: interrupt deregistered");
}

// ---------------------------------------------------------------- DMA and shared memory

pub unsafe extern "win64" fn NdisMRegisterScatterGatherDma(
    MiniportAdapterHandle: NDIS_HANDLE,
    DmaDescription: *mut NDIS_SG_DMA_DESCRIPTION,
    NdisMiniportDmaHandle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    const F: &str = "NdisMRegisterScatterGatherDma";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    if phase() != Phase::Initializing {
        return refuse(
            F,
            String::from("only allowed inside MiniportInitializeEx"),
            NDIS_STATUS_FAILURE,
        );
    }
    if DmaDescription.is_null() || NdisMiniportDmaHandle.is_null() {
        return refuse(
            F,
            String::from("null description or handle pointer"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    // SAFETY: non-null pointer to the driver's description.
    let d = unsafe { read_volatile(DmaDescription) };
    if d.Header.Type != NDIS_OBJECT_TYPE_SG_DMA_DESCRIPTION
        || d.Header.Revision < NDIS_SG_DMA_DESCRIPTION_REVISION_1
        || d.Header.Size < NDIS_SIZEOF_SG_DMA_DESCRIPTION_REVISION_1
    {
        return refuse(
            F,
            format!(
                "DMA description header type {:#x} revision {} size {:#x} (expected 0x83, 1, >= 0x24)",
                d.Header.Type, d.Header.Revision, d.Header.Size
            ),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    if d.MaximumPhysicalMapping == 0 {
        return refuse(
            F,
            String::from("MaximumPhysicalMapping is 0"),
            NDIS_STATUS_INVALID_PARAMETER,
        );
    }
    let mut s = STATE.lock();
    if s.dma_registered {
        drop(s);
        return refuse(
            F,
            String::from("scatter/gather DMA already registered"),
            NDIS_STATUS_FAILURE,
        );
    }
    s.dma_registered = true;
    drop(s);
    // SCATTER_GATHER_LIST: 16-byte header + one 24-byte element per page (plus one for an
    // unaligned start).
    let pages = (d.MaximumPhysicalMapping as usize).div_ceil(PAGE) + 1;
    // SAFETY: non-null pointers checked above; ScatterGatherListSize is an output field.
    unsafe {
        write_volatile(
            &raw mut (*DmaDescription).ScatterGatherListSize,
            (16 + 24 * pages) as u32,
        );
        NdisMiniportDmaHandle.write(dma_handle());
    }
    crate::println!(
        "ndis: scatter/gather DMA registered (max mapping {:#x}, 64-bit {})",
        d.MaximumPhysicalMapping,
        d.Flags & NDIS_SG_DMA_64_BIT_ADDRESS != 0
    );
    NDIS_STATUS_SUCCESS
}

pub unsafe extern "win64" fn NdisMDeregisterScatterGatherDma(NdisMiniportDmaHandle: NDIS_HANDLE) {
    const F: &str = "NdisMDeregisterScatterGatherDma";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(F, NdisMiniportDmaHandle, dma_handle(), "DMA") {
        return;
    }
    let mut s = STATE.lock();
    if !s.dma_registered {
        drop(s);
        violation(format!("{F}: DMA not registered (double deregistration?)"));
        return;
    }
    s.dma_registered = false;
}

pub unsafe extern "win64" fn NdisMAllocateSharedMemory(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut *mut c_void,
    PhysicalAddress: *mut NDIS_PHYSICAL_ADDRESS,
) {
    const F: &str = "NdisMAllocateSharedMemory";
    if VirtualAddress.is_null() || PhysicalAddress.is_null() {
        violation(format!("{F}: null output pointer"));
        return;
    }
    // SAFETY: non-null out pointers.
    unsafe {
        VirtualAddress.write(core::ptr::null_mut());
        PhysicalAddress.write(0);
    }
    if !check_irql(F, PASSIVE_LEVEL)
        || !check_handle(
            F,
            MiniportAdapterHandle,
            adapter_handle(),
            "miniport adapter",
        )
    {
        return;
    }
    if !STATE.lock().dma_registered {
        violation(format!("{F} called before NdisMRegisterScatterGatherDma"));
        return;
    }
    if Length == 0 {
        return;
    }
    let size = (Length as usize).div_ceil(PAGE) * PAGE;
    let Ok(layout) = Layout::from_size_align(size, PAGE) else {
        return;
    };
    // SAFETY: non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return;
    }
    STATE.lock().shared.insert(p as u64, (Length, Cached != 0));
    // SAFETY: non-null out pointers; identity mapping: physical = virtual.
    unsafe {
        VirtualAddress.write(p as *mut c_void);
        PhysicalAddress.write(p as i64);
    }
}

pub unsafe extern "win64" fn NdisMFreeSharedMemory(
    MiniportAdapterHandle: NDIS_HANDLE,
    Length: u32,
    Cached: BOOLEAN,
    VirtualAddress: *mut c_void,
    PhysicalAddress: NDIS_PHYSICAL_ADDRESS,
) {
    const F: &str = "NdisMFreeSharedMemory";
    check_irql(F, PASSIVE_LEVEL);
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return;
    }
    let va = VirtualAddress as u64;
    let mut s = STATE.lock();
    let Some(&(len, cached)) = s.shared.get(&va) else {
        drop(s);
        violation(format!(
            "{F}: {va:#x} is not shared memory from NdisMAllocateSharedMemory"
        ));
        return;
    };
    if len != Length || cached != (Cached != 0) || PhysicalAddress as u64 != va {
        drop(s);
        violation(format!(
            "{F}: {va:#x} freed with length {Length:#x}/cached {Cached}/pa {PhysicalAddress:#x}, allocated as {len:#x}/{}/{va:#x}",
            cached as u8
        ));
        return;
    }
    s.shared.remove(&va);
    drop(s);
    let size = (len as usize).div_ceil(PAGE) * PAGE;
    // SAFETY: allocated by NdisMAllocateSharedMemory with exactly this layout (validated above).
    unsafe { dealloc(va as *mut u8, Layout::from_size_align_unchecked(size, PAGE)) };
}

// ---------------------------------------------------------------- pool memory

pub unsafe extern "win64" fn NdisAllocateMemoryWithTagPriority(
    NdisHandle: NDIS_HANDLE,
    Length: u32,
    Tag: u32,
    _Priority: EX_POOL_PRIORITY,
) -> *mut c_void {
    const F: &str = "NdisAllocateMemoryWithTagPriority";
    if !check_irql(F, DISPATCH_LEVEL) {
        return core::ptr::null_mut();
    }
    if NdisHandle != driver_handle() && NdisHandle != adapter_handle() {
        violation(format!(
            "{F}: {NdisHandle:p} is neither the driver nor the adapter handle"
        ));
        return core::ptr::null_mut();
    }
    if Length == 0 {
        return core::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(Length as usize, 16) else {
        return core::ptr::null_mut();
    };
    // SAFETY: non-zero size.
    let p = unsafe { alloc(layout) };
    if p.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: fresh allocation of `Length` bytes. Pool memory is not zeroed: make that visible.
    unsafe { core::ptr::write_bytes(p, POOL_FILL, Length as usize) };
    STATE.lock().pool.insert(p as u64, (Length, Tag));
    p as *mut c_void
}

pub unsafe extern "win64" fn NdisFreeMemory(
    VirtualAddress: *mut c_void,
    Length: u32,
    MemoryFlags: u32,
) {
    const F: &str = "NdisFreeMemory";
    check_irql(F, DISPATCH_LEVEL);
    let va = VirtualAddress as u64;
    let mut s = STATE.lock();
    let Some(&(len, _tag)) = s.pool.get(&va) else {
        drop(s);
        violation(format!(
            "{F}: {va:#x} was not allocated by NdisAllocateMemoryWithTagPriority (or freed twice)"
        ));
        return;
    };
    if (Length != 0 && Length != len) || MemoryFlags != 0 {
        drop(s);
        violation(format!(
            "{F}: {va:#x} freed with length {Length:#x} flags {MemoryFlags:#x}; allocated {len:#x} bytes with flags 0"
        ));
        return;
    }
    s.pool.remove(&va);
    drop(s);
    // SAFETY: allocated by NdisAllocateMemoryWithTagPriority with this layout.
    unsafe {
        dealloc(
            va as *mut u8,
            Layout::from_size_align_unchecked(len as usize, 16),
        )
    };
}

// ---------------------------------------------------------------- events

const NOTIFICATION_EVENT: u8 = 0;
const KEVENT_SIZE_DWORDS: u8 = (core::mem::size_of::<KEVENT>() / 4) as u8;

fn event_ok(func: &str, e: *mut NDIS_EVENT, need_init: bool) -> bool {
    if e.is_null() || (e as u64) >= 0xC000_0000 {
        violation(format!("{func}: invalid event pointer {e:p}"));
        return false;
    }
    if need_init {
        // SAFETY: pointer validated to lie in RAM; reads the driver's KEVENT header.
        let (t, sz) = unsafe {
            (
                read_volatile(&raw const (*e).Event.Type),
                read_volatile(&raw const (*e).Event.Size),
            )
        };
        if t != NOTIFICATION_EVENT || sz != KEVENT_SIZE_DWORDS {
            violation(format!(
                "{func}: event {e:p} was not initialized with NdisInitializeEvent"
            ));
            return false;
        }
    }
    true
}

pub unsafe extern "win64" fn NdisInitializeEvent(Event: *mut NDIS_EVENT) {
    const F: &str = "NdisInitializeEvent";
    check_irql(F, PASSIVE_LEVEL);
    if !event_ok(F, Event, false) {
        return;
    }
    let list = &raw mut (*Event).Event.WaitListHead as u64;
    // SAFETY: validated pointer to the driver's NDIS_EVENT.
    unsafe {
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
}

pub unsafe extern "win64" fn NdisSetEvent(Event: *mut NDIS_EVENT) {
    const F: &str = "NdisSetEvent";
    check_irql(F, DISPATCH_LEVEL);
    if event_ok(F, Event, true) {
        // SAFETY: validated, initialized event.
        unsafe { write_volatile(&raw mut (*Event).Event.SignalState, 1) };
    }
}

pub unsafe extern "win64" fn NdisResetEvent(Event: *mut NDIS_EVENT) {
    const F: &str = "NdisResetEvent";
    check_irql(F, DISPATCH_LEVEL);
    if event_ok(F, Event, true) {
        // SAFETY: validated, initialized event.
        unsafe { write_volatile(&raw mut (*Event).Event.SignalState, 0) };
    }
}

pub unsafe extern "win64" fn NdisWaitEvent(Event: *mut NDIS_EVENT, MsToWait: u32) -> BOOLEAN {
    const F: &str = "NdisWaitEvent";
    if !check_irql(F, PASSIVE_LEVEL) || !event_ok(F, Event, true) {
        return FALSE;
    }
    let limit = if MsToWait == 0 {
        INFINITE_WAIT_CAP_MS
    } else {
        MsToWait as u64
    };
    // SAFETY: validated, initialized event; the driver keeps it alive while waiting on it.
    let signalled = || unsafe { read_volatile(&raw const (*Event).Event.SignalState) } != 0;
    let ok = interrupt::wait_until(limit, signalled);
    if !ok && MsToWait == 0 {
        violation(format!(
            "{F}(infinite) not signalled within {INFINITE_WAIT_CAP_MS} ms: the driver would hang"
        ));
    }
    ok as BOOLEAN
}

// ---------------------------------------------------------------- send path

pub unsafe extern "win64" fn NdisMSendNetBufferListsComplete(
    MiniportAdapterHandle: NDIS_HANDLE,
    NetBufferList: *mut NET_BUFFER_LIST,
    SendCompleteFlags: u32,
) {
    const F: &str = "NdisMSendNetBufferListsComplete";
    check_irql(F, DISPATCH_LEVEL);
    if !check_handle(
        F,
        MiniportAdapterHandle,
        adapter_handle(),
        "miniport adapter",
    ) {
        return;
    }
    // The guest never sends through this driver, so nothing can be completed.
    violation(format!(
        "{F}: completes NBL {NetBufferList:p} (flags {SendCompleteFlags:#x}) that NDIS never sent"
    ));
}
