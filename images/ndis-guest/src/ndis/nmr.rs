//! The guest's netio.sys Network Module Registrar: the provider-side exports `rnic.sys`
//! imports (NmrRegisterProvider, NmrDeregisterProvider, NmrWaitForProviderDeregisterComplete,
//! NmrProviderDetachClientComplete), the client-side functions the guest's own client calls
//! (NmrRegisterClient, NmrDeregisterClient, NmrWaitForClientDeregisterComplete,
//! NmrClientAttachProvider, NmrClientDetachProviderComplete: internal, not in the export
//! table), clients matched to providers by NPI id, the guest's diagnostics client that
//! attaches to the driver's NPI ([`host_client`]), the unload rule ([`unload_returned`]) and
//! the rule self tests ([`selftest`], a fake provider and client the guest plays).
//!
//! The bookkeeping and the rules (NmrDoubleAttach, NmrDetachDoubleComplete,
//! NmrDeregisterComplete) are `guest_core::nmr`; this module reads the modules' structures and
//! calls their callbacks, never holding the registry's lock across a call into a module.
#![allow(non_snake_case)] // the exports carry netio.sys's names

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use core::ffi::c_void;
use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicBool, Ordering};

use guest_core::nmr::{NmrViolation, NpiId, Registry, Role};
use ndis_abi::*;

use super::contract::{clear_out, export, refuse, require_irql, require_non_null, Checked};
use super::{violation, DISPATCH_LEVEL, PASSIVE_LEVEL, STATE};
use crate::sync::IrqLock;

/// The registrar's state.
pub static NMR: IrqLock<Registry> = IrqLock::new(Registry::new());

/// Set by `guest.selftest=nmr-refuse-provider`: the next NmrRegisterProvider fails with
/// `STATUS_INSUFFICIENT_RESOURCES` (as the real one may), registering nothing.
static REFUSE_NEXT_PROVIDER: AtomicBool = AtomicBool::new(false);

/// Makes the next NmrRegisterProvider fail for lack of resources.
pub fn refuse_next_provider() {
    REFUSE_NEXT_PROVIDER.store(true, Ordering::Relaxed);
}

/// How long NmrWaitFor*DeregisterComplete waits for detaches before it reports them (the real
/// one blocks for ever; a guest that hung would say nothing).
const WAIT_LIMIT_MS: u64 = 2000;

fn record(v: NmrViolation) {
    violation(v.to_string());
}

/// `{xxxxxxxx-xxxx-...}` of a GUID.
fn guid_text(g: &GUID) -> String {
    let d = g.Data4;
    format!(
        "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
        g.Data1, g.Data2, g.Data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    )
}

fn npi_bytes(g: &GUID) -> NpiId {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&g.Data1.to_le_bytes());
    out[4..6].copy_from_slice(&g.Data2.to_le_bytes());
    out[6..8].copy_from_slice(&g.Data3.to_le_bytes());
    out[8..].copy_from_slice(&g.Data4);
    out
}

/// Checks a registration instance (`Size`, `NpiId`, `ModuleId`) and reads its NPI id.
///
/// # Safety
/// `ri` points to a readable NPI_REGISTRATION_INSTANCE.
unsafe fn registration_npi(func: &str, ri: &NPI_REGISTRATION_INSTANCE) -> Checked<GUID> {
    if ri.Size as usize != core::mem::size_of::<NPI_REGISTRATION_INSTANCE>() {
        return refuse(
            func,
            format!("registration instance Size {:#x} (want 0x28)", ri.Size),
            STATUS_INVALID_PARAMETER,
        );
    }
    require_non_null(func, ri.NpiId, "NpiId")?;
    require_non_null(func, ri.ModuleId, "ModuleId")?;
    // SAFETY: non-null, and the module keeps it resident while registered.
    Ok(unsafe { ri.NpiId.read_unaligned() })
}

/// The provider characteristics of registration `handle`.
fn provider_chars(handle: u64) -> Option<(NPI_PROVIDER_CHARACTERISTICS, u64)> {
    let r = NMR.lock().registration(handle).cloned()?;
    // SAFETY: NmrRegisterProvider checked the pointer; the provider keeps it resident while
    // registered (its contract).
    let c = unsafe { (r.characteristics as *const NPI_PROVIDER_CHARACTERISTICS).read_unaligned() };
    Some((c, r.context))
}

/// The client characteristics of registration `handle`.
fn client_chars(handle: u64) -> Option<(NPI_CLIENT_CHARACTERISTICS, u64)> {
    let r = NMR.lock().registration(handle).cloned()?;
    // SAFETY: as for `provider_chars`.
    let c = unsafe { (r.characteristics as *const NPI_CLIENT_CHARACTERISTICS).read_unaligned() };
    Some((c, r.context))
}

/// Offers every new match of registration `handle` to its client (ClientAttachProvider).
fn attach_matches(handle: u64) {
    let pairs = NMR.lock().matches(handle);
    for (client, provider) in pairs {
        let Some((cc, cctx)) = client_chars(client) else {
            continue;
        };
        let Some(attach) = cc.ClientAttachProvider else {
            continue;
        };
        let binding = NMR.lock().offer(client, provider);
        let ri = NMR
            .lock()
            .registration(provider)
            .map(|r| r.characteristics)
            .unwrap_or(0)
            + core::mem::offset_of!(NPI_PROVIDER_CHARACTERISTICS, ProviderRegistrationInstance)
                as u64;
        // SAFETY: the client's callback with its own context and the provider's resident
        // registration instance; PASSIVE_LEVEL.
        let status = unsafe {
            attach(
                binding as *mut c_void,
                cctx as *mut c_void,
                ri as *const NPI_REGISTRATION_INSTANCE,
            )
        };
        let attached = NMR.lock().offer_closed(binding);
        crate::println!(
            "nmr: ClientAttachProvider(binding {binding:#x}) returned {status:#010x}: {}",
            if attached { "attached" } else { "not attached" }
        );
    }
}

/// What NmrRegisterProvider and NmrRegisterClient share: the characteristics' `Length`
/// (0x48 for both) and required callbacks, the registration instance, then the registration
/// (its handle written to `handle`, already cleared) and the matches it makes attached.
struct Registering<'a> {
    func: &'static str,
    role: Role,
    length: u16,
    callbacks_present: bool,
    instance: &'a NPI_REGISTRATION_INSTANCE,
    characteristics: u64,
    context: u64,
}

impl Registering<'_> {
    fn register(self, handle: *mut *mut c_void) -> Checked<NTSTATUS> {
        let func = self.func;
        if self.length as usize != core::mem::size_of::<NPI_PROVIDER_CHARACTERISTICS>() {
            return refuse(
                func,
                format!("characteristics Length {:#x} (want 0x48)", self.length),
                STATUS_INVALID_PARAMETER,
            );
        }
        if !self.callbacks_present {
            return refuse(
                func,
                "the attach and detach callbacks are required",
                STATUS_INVALID_PARAMETER,
            );
        }
        // SAFETY: part of the resident characteristics.
        let npi = unsafe { registration_npi(func, self.instance)? };
        if self.role == Role::Provider && REFUSE_NEXT_PROVIDER.swap(false, Ordering::Relaxed) {
            crate::println!(
                "nmr: {func}: refused with STATUS_INSUFFICIENT_RESOURCES (guest.selftest=nmr-refuse-provider)"
            );
            return Ok(STATUS_INSUFFICIENT_RESOURCES);
        }
        if self.role == Role::Provider && super::lowres::allocation(func).is_err() {
            return Ok(STATUS_INSUFFICIENT_RESOURCES);
        }
        let h = NMR.lock().register(
            self.role,
            npi_bytes(&npi),
            self.characteristics,
            self.context,
        );
        // SAFETY: the caller cleared it with clear_out (non-null).
        unsafe { handle.write(h as *mut c_void) };
        let what = match self.role {
            Role::Provider => "provider",
            Role::Client => "client",
        };
        crate::println!("nmr: {func}: {what} {h:#x} for NPI {}", guid_text(&npi));
        attach_matches(h);
        Ok(STATUS_SUCCESS)
    }
}

/// NmrRegisterProvider. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by a driver with the documented arguments.
pub unsafe extern "win64" fn NmrRegisterProvider(
    chars: *const NPI_PROVIDER_CHARACTERISTICS,
    context: *mut c_void,
    handle: *mut *mut c_void,
) -> NTSTATUS {
    const F: &str = "NmrRegisterProvider";
    export(|| {
        // SAFETY: the caller's out-pointer (checked non-null first).
        unsafe { clear_out(F, handle, "NmrProviderHandle", null_mut())? };
        require_irql(F, PASSIVE_LEVEL)?;
        require_non_null(F, chars, "ProviderCharacteristics")?;
        // SAFETY: non-null; the provider keeps it resident while registered.
        let c = unsafe { &*chars };
        Registering {
            func: F,
            role: Role::Provider,
            length: c.Length,
            callbacks_present: c.ProviderAttachClient.is_some() && c.ProviderDetachClient.is_some(),
            instance: &c.ProviderRegistrationInstance,
            characteristics: chars as u64,
            context: context as u64,
        }
        .register(handle)
    })
}

/// NmrRegisterClient (internal: the guest's own clients). IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrRegisterClient(
    chars: *const NPI_CLIENT_CHARACTERISTICS,
    context: *mut c_void,
    handle: *mut *mut c_void,
) -> NTSTATUS {
    const F: &str = "NmrRegisterClient";
    export(|| {
        // SAFETY: the caller's out-pointer (checked non-null first).
        unsafe { clear_out(F, handle, "NmrClientHandle", null_mut())? };
        require_irql(F, PASSIVE_LEVEL)?;
        require_non_null(F, chars, "ClientCharacteristics")?;
        // SAFETY: non-null; the client keeps it resident while registered.
        let c = unsafe { &*chars };
        Registering {
            func: F,
            role: Role::Client,
            length: c.Length,
            callbacks_present: c.ClientAttachProvider.is_some() && c.ClientDetachProvider.is_some(),
            instance: &c.ClientRegistrationInstance,
            characteristics: chars as u64,
            context: context as u64,
        }
        .register(handle)
    })
}

/// NmrClientAttachProvider (internal): called by a client inside its ClientAttachProvider;
/// calls the provider's ProviderAttachClient. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrClientAttachProvider(
    binding: *mut c_void,
    client_binding_context: *mut c_void,
    client_dispatch: *const c_void,
    provider_binding_context: *mut *mut c_void,
    provider_dispatch: *mut *const c_void,
) -> NTSTATUS {
    const F: &str = "NmrClientAttachProvider";
    export(|| {
        // SAFETY: the caller's out-pointers (checked non-null first).
        unsafe {
            clear_out(
                F,
                provider_binding_context,
                "ProviderBindingContext",
                null_mut(),
            )?;
            clear_out(F, provider_dispatch, "ProviderDispatch", null())?;
        }
        require_irql(F, PASSIVE_LEVEL)?;
        let b = binding as u64;
        let attach = NMR.lock().client_attach(b);
        if let Err(v) = attach {
            record(v);
            return Err(STATUS_INVALID_PARAMETER);
        }
        let (client, provider) = match NMR.lock().binding(b) {
            Some(x) => (x.client, x.provider),
            None => return Err(STATUS_INVALID_PARAMETER),
        };
        let client_ri = NMR
            .lock()
            .registration(client)
            .map(|r| r.characteristics)
            .unwrap_or(0)
            + core::mem::offset_of!(NPI_CLIENT_CHARACTERISTICS, ClientRegistrationInstance) as u64;
        let Some((pc, pctx)) = provider_chars(provider) else {
            return Err(STATUS_INVALID_PARAMETER);
        };
        let Some(attach) = pc.ProviderAttachClient else {
            return Err(STATUS_INVALID_PARAMETER);
        };
        let mut pbc: *mut c_void = null_mut();
        let mut pd: *const c_void = null();
        // SAFETY: the provider's callback with its own context, the client's resident
        // registration instance and live output slots; PASSIVE_LEVEL.
        let status = unsafe {
            attach(
                binding,
                pctx as *mut c_void,
                client_ri as *const NPI_REGISTRATION_INSTANCE,
                client_binding_context,
                client_dispatch,
                &mut pbc,
                &mut pd,
            )
        };
        if !nt_success(status) {
            NMR.lock().attach_refused(b);
            crate::println!("nmr: ProviderAttachClient(binding {b:#x}) refused: {status:#010x}");
            return Err(status);
        }
        NMR.lock()
            .attached(b, client_binding_context as u64, pbc as u64, pd as u64);
        // SAFETY: checked non-null by clear_out.
        unsafe {
            provider_binding_context.write(pbc);
            provider_dispatch.write(pd);
        }
        crate::println!(
            "nmr: client {client:#x} attached to provider {provider:#x} (binding {b:#x})"
        );
        Ok(STATUS_SUCCESS)
    })
}

/// Runs the cleanup callbacks of a binding whose both sides detached, and forgets it.
fn cleanup_if_detached(b: u64) {
    if !NMR.lock().detached(b) {
        return;
    }
    let Some(binding) = NMR.lock().binding(b).cloned() else {
        return;
    };
    let provider_cleanup =
        provider_chars(binding.provider).and_then(|(c, _)| c.ProviderCleanupBindingContext);
    let client_cleanup =
        client_chars(binding.client).and_then(|(c, _)| c.ClientCleanupBindingContext);
    NMR.lock().remove_binding(b);
    if let Some(cleanup) = provider_cleanup {
        // SAFETY: the provider's callback with the binding context it returned from attach,
        // called once (the binding is forgotten).
        unsafe { cleanup(binding.provider_context as *mut c_void) };
    }
    if let Some(cleanup) = client_cleanup {
        // SAFETY: as above, for the client.
        unsafe { cleanup(binding.client_context as *mut c_void) };
    }
    crate::println!("nmr: binding {b:#x} detached and cleaned up");
}

/// NmrDeregister{Provider,Client}: detaches every binding of `handle` (both sides' detach
/// callbacks); `STATUS_PENDING` while some are not detached.
fn deregister(func: &'static str, handle: *mut c_void) -> NTSTATUS {
    export(|| {
        require_irql(func, DISPATCH_LEVEL)?;
        let h = handle as u64;
        let started = NMR.lock().begin_deregister(func, h);
        let started = match started {
            Ok(s) => s,
            Err(v) => {
                record(v);
                return Err(STATUS_INVALID_PARAMETER);
            }
        };
        crate::println!(
            "nmr: {func}({h:#x}): {} binding(s) to detach",
            started.len()
        );
        for b in started {
            let Some(binding) = NMR.lock().binding(b).cloned() else {
                continue;
            };
            let client_detach =
                client_chars(binding.client).and_then(|(c, _)| c.ClientDetachProvider);
            let provider_detach =
                provider_chars(binding.provider).and_then(|(c, _)| c.ProviderDetachClient);
            let client_status = client_detach.map_or(STATUS_SUCCESS, |detach| {
                // SAFETY: the client's callback with its binding context.
                unsafe { detach(binding.client_context as *mut c_void) }
            });
            if let Err(v) =
                NMR.lock()
                    .detach_returned(b, Role::Client, client_status == STATUS_PENDING)
            {
                record(v);
            }
            let provider_status = provider_detach.map_or(STATUS_SUCCESS, |detach| {
                // SAFETY: the provider's callback with its binding context.
                unsafe { detach(binding.provider_context as *mut c_void) }
            });
            crate::println!(
                "nmr: ProviderDetachClient(binding {b:#x}) returned {provider_status:#010x}{}",
                if provider_status == STATUS_PENDING {
                    " (the detach pends)"
                } else {
                    ""
                }
            );
            let returned =
                NMR.lock()
                    .detach_returned(b, Role::Provider, provider_status == STATUS_PENDING);
            if let Err(v) = returned {
                record(v);
            }
            cleanup_if_detached(b);
        }
        let left = NMR.lock().bindings_of(h);
        Ok(if left == 0 {
            STATUS_SUCCESS
        } else {
            STATUS_PENDING
        })
    })
}

/// NmrDeregisterProvider. IRQL: <= DISPATCH_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrDeregisterProvider(handle: *mut c_void) -> NTSTATUS {
    deregister("NmrDeregisterProvider", handle)
}

/// NmrDeregisterClient (internal). IRQL: <= DISPATCH_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrDeregisterClient(handle: *mut c_void) -> NTSTATUS {
    deregister("NmrDeregisterClient", handle)
}

/// Nmr{Provider,Client}Detach*Complete for `side` of `binding`.
fn detach_complete(func: &'static str, binding: *mut c_void, side: Role) {
    export(|| {
        require_irql(func, DISPATCH_LEVEL)?;
        let b = binding as u64;
        let completed = NMR.lock().detach_complete(func, b, side);
        if let Err(v) = completed {
            record(v);
            return Err(STATUS_INVALID_PARAMETER);
        }
        crate::println!("nmr: {func}(binding {b:#x})");
        cleanup_if_detached(b);
        Ok(())
    })
}

/// NmrProviderDetachClientComplete. IRQL: <= DISPATCH_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrProviderDetachClientComplete(binding: *mut c_void) {
    detach_complete("NmrProviderDetachClientComplete", binding, Role::Provider)
}

/// NmrClientDetachProviderComplete (internal). IRQL: <= DISPATCH_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrClientDetachProviderComplete(binding: *mut c_void) {
    detach_complete("NmrClientDetachProviderComplete", binding, Role::Client)
}

/// NmrWaitFor{Provider,Client}DeregisterComplete: waits (running DPCs and timers) until the
/// registration has no binding left, then forgets it.
fn wait_deregister(func: &'static str, handle: *mut c_void) -> NTSTATUS {
    export(|| {
        require_irql(func, PASSIVE_LEVEL)?;
        let h = handle as u64;
        let mut waited = 0;
        while NMR.lock().bindings_of(h) > 0 && waited < WAIT_LIMIT_MS {
            super::interrupt::idle(10);
            waited += 10;
        }
        let left = NMR.lock().bindings_of(h);
        if left > 0 {
            return refuse(
                func,
                format!(
                    "NmrDeregisterComplete: {left} binding(s) of {h:#x} still not detached after {WAIT_LIMIT_MS} ms (a pended detach was never completed)"
                ),
                STATUS_UNSUCCESSFUL,
            );
        }
        let finished = NMR.lock().finish(func, h);
        if let Err(v) = finished {
            record(v);
            return Err(STATUS_INVALID_PARAMETER);
        }
        crate::println!("nmr: {func}({h:#x}): deregistration complete");
        Ok(STATUS_SUCCESS)
    })
}

/// NmrWaitForProviderDeregisterComplete. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrWaitForProviderDeregisterComplete(handle: *mut c_void) -> NTSTATUS {
    wait_deregister("NmrWaitForProviderDeregisterComplete", handle)
}

/// NmrWaitForClientDeregisterComplete (internal). IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// As NmrRegisterProvider.
pub unsafe extern "win64" fn NmrWaitForClientDeregisterComplete(handle: *mut c_void) -> NTSTATUS {
    wait_deregister("NmrWaitForClientDeregisterComplete", handle)
}

/// NmrDeregisterComplete, after the driver's unload returned: every provider registration
/// still there is a violation (and is forgotten).
pub fn unload_returned() {
    let found = NMR.lock().unload_returned();
    for v in found {
        record(v);
    }
}

/// Forgets everything (the heap check after unload counts no registry node).
pub fn reset() {
    *NMR.lock() = Registry::new();
}

/// A client module: its characteristics (resident while registered) and what its callbacks
/// saw.
struct ClientModule {
    chars: NPI_CLIENT_CHARACTERISTICS,
    module_id: NPI_MODULEID,
    npi: NPIID,
    /// The binding the NMR offered and the provider's side of it, once attached.
    binding: *mut c_void,
    provider_context: *mut c_void,
    provider_dispatch: *const c_void,
    /// Calls of NmrClientAttachProvider the attach callback makes (2 breaks NmrDoubleAttach).
    attach_calls: u32,
    /// Whether its detach callback pends (completed by [`ClientModule::complete_detach`]).
    pend_detach: bool,
    detached: bool,
    cleaned_up: bool,
}

impl ClientModule {
    /// A client of `npi` whose callbacks record into the module itself (boxed: the context
    /// is its address).
    fn new(npi: NPIID, attach_calls: u32, pend_detach: bool) -> Box<Self> {
        let mut m = Box::new(ClientModule {
            chars: NPI_CLIENT_CHARACTERISTICS {
                Version: 0,
                Length: core::mem::size_of::<NPI_CLIENT_CHARACTERISTICS>() as u16,
                ClientAttachProvider: Some(client_attach_provider),
                ClientDetachProvider: Some(client_detach_provider),
                ClientCleanupBindingContext: Some(client_cleanup),
                ClientRegistrationInstance: NPI_REGISTRATION_INSTANCE {
                    Version: 0,
                    Size: core::mem::size_of::<NPI_REGISTRATION_INSTANCE>() as u16,
                    NpiId: null(),
                    ModuleId: null(),
                    Number: 0,
                    NpiSpecificCharacteristics: null(),
                },
            },
            module_id: NPI_MODULEID {
                Length: core::mem::size_of::<NPI_MODULEID>() as u16,
                Type: MIT_GUID,
                Guid: GUEST_MODULE_GUID,
            },
            npi,
            binding: null_mut(),
            provider_context: null_mut(),
            provider_dispatch: null(),
            attach_calls,
            pend_detach,
            detached: false,
            cleaned_up: false,
        });
        m.chars.ClientRegistrationInstance.NpiId = &m.npi;
        m.chars.ClientRegistrationInstance.ModuleId = &m.module_id;
        m
    }

    /// Completes the detach its callback pended.
    fn complete_detach(&self) {
        if self.pend_detach && self.detached {
            // SAFETY: the binding the NMR attached this module with; its detach pended.
            unsafe { NmrClientDetachProviderComplete(self.binding) };
        }
    }

    /// NmrRegisterClient for this module; its handle.
    fn register(&mut self) -> Result<*mut c_void, String> {
        let mut handle = null_mut();
        let ctx: *mut ClientModule = self;
        // SAFETY: the characteristics live in this boxed module, which outlives the
        // registration (the callers deregister before dropping it).
        let status = unsafe { NmrRegisterClient(&self.chars, ctx.cast(), &mut handle) };
        if status != STATUS_SUCCESS {
            return Err(format!("NmrRegisterClient returned {status:#010x}"));
        }
        Ok(handle)
    }
}

/// Module id of the guest's own NMR clients.
const GUEST_MODULE_GUID: GUID = GUID {
    Data1: 0x9e57_0001,
    Data2: 0x4e4d,
    Data3: 0x5200,
    Data4: *b"rnicgst\0",
};

unsafe extern "win64" fn client_attach_provider(
    binding: *mut c_void,
    context: *mut c_void,
    _provider: *const NPI_REGISTRATION_INSTANCE,
) -> NTSTATUS {
    let m = context.cast::<ClientModule>();
    let mut status = STATUS_SUCCESS;
    // SAFETY: the context is the boxed module that registered; the guest is single-threaded
    // here (PASSIVE_LEVEL, no other access to it during the call).
    unsafe {
        for _ in 0..(*m).attach_calls {
            let mut pbc = null_mut();
            let mut pd = null();
            status = NmrClientAttachProvider(binding, m.cast(), null(), &mut pbc, &mut pd);
            if status == STATUS_SUCCESS {
                (*m).binding = binding;
                (*m).provider_context = pbc;
                (*m).provider_dispatch = pd;
            }
        }
    }
    status
}

unsafe extern "win64" fn client_detach_provider(context: *mut c_void) -> NTSTATUS {
    let m = context.cast::<ClientModule>();
    // SAFETY: the client binding context is the boxed module (see attach).
    unsafe {
        (*m).detached = true;
        if (*m).pend_detach {
            STATUS_PENDING
        } else {
            STATUS_SUCCESS
        }
    }
}

unsafe extern "win64" fn client_cleanup(context: *mut c_void) {
    // SAFETY: as above.
    unsafe { (*context.cast::<ClientModule>()).cleaned_up = true };
}

/// The guest's diagnostics client, run once adapter 0 is Running and has sent frames: it
/// registers for the RNIC diagnostics NPI (the NMR attaches it to rnic.sys), reads adapter 0's
/// statistics through the provider's dispatch table and checks them against
/// `OID_GEN_XMIT_OK`, checks an unknown adapter index is refused, then deregisters while it
/// holds a reference (the provider's detach must pend, and complete when the reference is
/// dropped) and waits for the deregistration.
pub fn host_client(chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS, ctx: NDIS_HANDLE) {
    if let Err(e) = run_client(chars, ctx) {
        super::lowres::outcome_failed(format!("NMR diagnostics client: {e}"));
    }
}

fn run_client(
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    ctx: NDIS_HANDLE,
) -> Result<(), String> {
    let mut m = ClientModule::new(NPI_RNIC_DIAGNOSTICS_ID, 1, true);
    let handle = m.register()?;
    let result = use_binding(&m, chars, ctx);
    let mut reference_held = false;
    if let (Ok(()), false) = (&result, m.provider_dispatch.is_null()) {
        // SAFETY: the provider's dispatch table, resident while attached.
        let d =
            unsafe { (m.provider_dispatch as *const RNIC_DIAG_PROVIDER_DISPATCH).read_unaligned() };
        if let Some(reference) = d.ReferenceBinding {
            // SAFETY: the provider's function with its binding context.
            reference_held = unsafe { reference(m.provider_context) } == STATUS_SUCCESS;
        }
    }
    // SAFETY: the handle NmrRegisterClient gave.
    let status = unsafe { NmrDeregisterClient(handle) };
    crate::println!(
        "nmr: NmrDeregisterClient returned {status:#010x} with a call sequence in flight"
    );
    if reference_held {
        if status != STATUS_PENDING {
            violation(String::from(
                "NMR diagnostics client: the provider's detach did not pend while a call sequence was in flight",
            ));
        }
        // SAFETY: the binding is still attached (its detach pends); the dispatch table stays
        // resident until cleanup.
        let d =
            unsafe { (m.provider_dispatch as *const RNIC_DIAG_PROVIDER_DISPATCH).read_unaligned() };
        if let Some(dereference) = d.DereferenceBinding {
            // SAFETY: as above.
            unsafe { dereference(m.provider_context) };
        }
    }
    m.complete_detach();
    // SAFETY: the handle NmrRegisterClient gave.
    let waited = unsafe { NmrWaitForClientDeregisterComplete(handle) };
    if waited != STATUS_SUCCESS {
        return Err(format!(
            "NmrWaitForClientDeregisterComplete returned {waited:#010x}"
        ));
    }
    if !m.provider_dispatch.is_null() && (!m.detached || !m.cleaned_up) {
        return Err(String::from("the client was not detached and cleaned up"));
    }
    crate::println!("nmr: diagnostics client detached");
    result
}

fn use_binding(
    m: &ClientModule,
    chars: &NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
    ctx: NDIS_HANDLE,
) -> Result<(), String> {
    if m.provider_dispatch.is_null() {
        return Err(String::from(
            "no provider of the RNIC diagnostics NPI attached (rnic.sys did not register it)",
        ));
    }
    // SAFETY: the provider's dispatch table, resident while attached.
    let d = unsafe { (m.provider_dispatch as *const RNIC_DIAG_PROVIDER_DISPATCH).read_unaligned() };
    if d.Version != RNIC_DIAG_DISPATCH_VERSION
        || d.Size as usize != core::mem::size_of::<RNIC_DIAG_PROVIDER_DISPATCH>()
    {
        return Err(format!(
            "dispatch table version {} size {:#x}",
            d.Version, d.Size
        ));
    }
    let query = d
        .QueryAdapterStatistics
        .ok_or("the dispatch table has no QueryAdapterStatistics")?;
    let mut stats = RNIC_DIAG_ADAPTER_STATISTICS {
        Size: core::mem::size_of::<RNIC_DIAG_ADAPTER_STATISTICS>() as u32,
        ..Default::default()
    };
    // SAFETY: the provider's function with its binding context and a live output.
    let status = unsafe { query(m.provider_context, 0, &mut stats) };
    if status != STATUS_SUCCESS {
        return Err(format!("QueryAdapterStatistics(0) returned {status:#010x}"));
    }
    crate::println!(
        "nmr: QueryAdapterStatistics(0): {} sent, {} received, {} send errors, {} receive errors, {} without buffer",
        stats.FramesSent,
        stats.FramesReceived,
        stats.SendErrors,
        stats.ReceiveErrors,
        stats.ReceiveNoBuffer
    );
    let xmit_ok = chars
        .OidRequestHandler
        .and_then(|h| super::oid::query_counter(h, ctx, OID_GEN_XMIT_OK));
    match xmit_ok {
        // Frames went out, or every one failed (a fatal device): the provider counted them.
        Some(x) if x == stats.FramesSent && (x > 0 || stats.SendErrors > 0) => {}
        other => {
            return Err(format!(
                "FramesSent {} is not plausible: OID_GEN_XMIT_OK says {other:?} after the Ethernet check",
                stats.FramesSent
            ))
        }
    }
    let mut other = RNIC_DIAG_ADAPTER_STATISTICS {
        Size: core::mem::size_of::<RNIC_DIAG_ADAPTER_STATISTICS>() as u32,
        ..Default::default()
    };
    // SAFETY: as above.
    let status = unsafe { query(m.provider_context, 99, &mut other) };
    if status != STATUS_NOT_FOUND {
        return Err(format!(
            "QueryAdapterStatistics(99) returned {status:#010x}, not STATUS_NOT_FOUND"
        ));
    }
    let faults = d
        .QueryDeviceFaultCounters
        .ok_or("the dispatch table (version 2) has no QueryDeviceFaultCounters")?;
    read_fault_counters(faults, m.provider_context)
}

/// Reads adapter 0's device fault counters through the provider (PASSIVE_LEVEL) and prints
/// them (`nmr: QueryDeviceFaultCounters(0): name value, ...`, for the boot tests to judge);
/// the device was reset at least once (InitializeEx), a wrong size and an unknown index are
/// refused.
fn read_fault_counters(
    query: RnicDiagQueryDeviceFaultCountersFn,
    binding: *mut c_void,
) -> Result<(), String> {
    let size = core::mem::size_of::<RNIC_DIAG_DEVICE_FAULT_COUNTERS>() as u32;
    let mut c = RNIC_DIAG_DEVICE_FAULT_COUNTERS {
        Size: size,
        ..Default::default()
    };
    // SAFETY: the provider's function with its binding context and a live output, at
    // PASSIVE_LEVEL.
    let status = unsafe { query(binding, 0, &mut c) };
    if status == STATUS_IO_DEVICE_ERROR && super::reset::hardware_failed(0) {
        // A failed device answers no statistics command; the driver said so already.
        crate::println!(
            "nmr: QueryDeviceFaultCounters(0): STATUS_IO_DEVICE_ERROR (the driver reported the device failed: NDIS_STATUS_HARD_ERRORS)"
        );
        return Ok(());
    }
    if status != STATUS_SUCCESS {
        return Err(format!(
            "QueryDeviceFaultCounters(0) returned {status:#010x}"
        ));
    }
    crate::println!(
        "nmr: QueryDeviceFaultCounters(0): tx_dropped_link_down {}, tx_wire_errors {}, rx_dropped_no_buffer {}, rx_wire_errors {}, admin_failed {}, dma_errors {}, device_resets {}, events_overflowed {}, tx_queue0_errors {}, rx_queue0_errors {}",
        c.TxDroppedLinkDown,
        c.TxWireErrors,
        c.RxDroppedNoBuffer,
        c.RxWireErrors,
        c.AdminFailed,
        c.DmaErrors,
        c.DeviceResets,
        c.EventsOverflowed,
        c.TxQueue0Errors,
        c.RxQueue0Errors
    );
    if c.Size != size || c.AdapterIndex != 0 || c.DeviceResets == 0 {
        return Err(format!(
            "QueryDeviceFaultCounters(0): size {:#x}, adapter {}, {} device resets (InitializeEx resets the device)",
            c.Size, c.AdapterIndex, c.DeviceResets
        ));
    }
    // Refused calls: a record of the wrong size, an adapter that does not exist.
    for (index, size, want) in [
        (0, size - 8, STATUS_INVALID_PARAMETER),
        (99, size, STATUS_NOT_FOUND),
    ] {
        let mut refused = RNIC_DIAG_DEVICE_FAULT_COUNTERS {
            Size: size,
            ..Default::default()
        };
        // SAFETY: as above.
        let status = unsafe { query(binding, index, &mut refused) };
        if status != want {
            return Err(format!(
                "QueryDeviceFaultCounters({index}) with Size {size:#x} returned {status:#010x}, not {want:#010x}"
            ));
        }
    }
    Ok(())
}

/// The verifier rule self tests (`guest.selftest=nmr-*`): a fake provider and client the
/// guest plays break one rule each; returns the violation the verifier recorded.
pub fn selftest(name: &str) -> Result<String, String> {
    let (mode, text) = match name {
        "nmr-double-attach" => (fake::Mode::DoubleAttach, "NmrDoubleAttach: "),
        "nmr-detach-double-complete" => (fake::Mode::DoubleComplete, "NmrDetachDoubleComplete: "),
        "nmr-deregister-incomplete" => (fake::Mode::NoWait, "NmrDeregisterComplete: "),
        other => return Err(format!("{other} is not an NMR rule self test")),
    };
    let before = STATE.lock().violations.len();
    fake::run(mode);
    let new = STATE.lock().violations.split_off(before);
    reset();
    match new.iter().find(|v| v.contains(text)) {
        Some(v) => Ok(v.clone()),
        None => Err(format!(
            "the verifier recorded no violation containing \"{text}\" (recorded: {new:?})"
        )),
    }
}

/// The misbehaving modules of the self tests.
mod fake {
    use super::*;
    use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

    /// Which rule is broken.
    #[derive(Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Mode {
        /// The client's attach callback attaches twice.
        DoubleAttach = 1,
        /// The provider's detach pends and is completed twice.
        DoubleComplete,
        /// The provider deregisters, its detach pends for ever, and "unload" returns.
        NoWait,
    }

    static MODE: AtomicU8 = AtomicU8::new(0);
    /// The binding handle the fake provider was attached with.
    static BINDING: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
    /// A binding context value the fake provider hands out.
    static CONTEXT: u8 = 0;
    /// The fake provider's NPI (distinct from the driver's).
    static NPI: NPIID = GUID {
        Data1: 0x9e57_0002,
        Data2: 0x4e4d,
        Data3: 0x5200,
        Data4: *b"fakenpi\0",
    };
    static MODULE: NPI_MODULEID = NPI_MODULEID {
        Length: 0x18,
        Type: MIT_GUID,
        Guid: GUEST_MODULE_GUID,
    };

    struct Resident(NPI_PROVIDER_CHARACTERISTICS);
    // SAFETY: the pointers inside refer to immutable statics.
    unsafe impl Sync for Resident {}
    static CHARS: Resident = Resident(NPI_PROVIDER_CHARACTERISTICS {
        Version: 0,
        Length: 0x48,
        ProviderAttachClient: Some(attach),
        ProviderDetachClient: Some(detach),
        ProviderCleanupBindingContext: None,
        ProviderRegistrationInstance: NPI_REGISTRATION_INSTANCE {
            Version: 0,
            Size: 0x28,
            NpiId: &NPI,
            ModuleId: &MODULE,
            Number: 0,
            NpiSpecificCharacteristics: null(),
        },
    });
    static DISPATCH: u64 = 0;

    unsafe extern "win64" fn attach(
        binding: *mut c_void,
        _ctx: *mut c_void,
        _client: *const NPI_REGISTRATION_INSTANCE,
        _cbc: *mut c_void,
        _cd: *const c_void,
        pbc: *mut *mut c_void,
        pd: *mut *const c_void,
    ) -> NTSTATUS {
        BINDING.store(binding, Ordering::Relaxed);
        // SAFETY: the NMR's live output slots.
        unsafe {
            pbc.write((&raw const CONTEXT).cast_mut().cast());
            pd.write((&raw const DISPATCH).cast());
        }
        STATUS_SUCCESS
    }

    unsafe extern "win64" fn detach(_pbc: *mut c_void) -> NTSTATUS {
        STATUS_PENDING
    }

    pub fn run(mode: Mode) {
        MODE.store(mode as u8, Ordering::Relaxed);
        let mut provider = null_mut();
        // SAFETY: resident static characteristics, a live out slot.
        let status = unsafe { NmrRegisterProvider(&CHARS.0, null_mut(), &mut provider) };
        if status != STATUS_SUCCESS {
            return;
        }
        let attach_calls = if mode == Mode::DoubleAttach { 2 } else { 1 };
        let mut client = ClientModule::new(NPI, attach_calls, false);
        let Ok(client_handle) = client.register() else {
            return;
        };
        match mode {
            Mode::DoubleAttach => {}
            Mode::DoubleComplete => {
                // SAFETY: the handle the NMR gave; the detach pends.
                unsafe { NmrDeregisterProvider(provider) };
                let b = BINDING.load(Ordering::Relaxed);
                // SAFETY: the binding handle the fake was attached with: completed twice.
                unsafe {
                    NmrProviderDetachClientComplete(b);
                    NmrProviderDetachClientComplete(b);
                }
            }
            Mode::NoWait => {
                // SAFETY: as above; the pended detach is never completed.
                unsafe { NmrDeregisterProvider(provider) };
                unload_returned();
            }
        }
        let _ = client_handle;
        drop(client);
    }
}
