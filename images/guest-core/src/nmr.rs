//! The bookkeeping of the guest's Network Module Registrar (the netio.sys NMR the guest
//! provides): registrations of providers and clients, the bindings between those of one NPI,
//! each binding's attach and two-sided detach, and the verifier rules, named like Driver
//! Verifier's NDIS rules:
//!
//! - **NmrDoubleAttach**: a client attaches at most once per match (one
//!   NmrClientAttachProvider per binding the NMR offered).
//! - **NmrDetachDoubleComplete**: a detach is completed exactly once: Nmr*DetachComplete only
//!   after the detach callback returned `STATUS_PENDING`, and only once.
//! - **NmrDeregisterComplete**: a driver's deregistration is finished (every binding detached
//!   and cleaned up, and NmrWaitForProviderDeregisterComplete called) before its unload
//!   returns.
//!
//! Pure logic (no pointers are dereferenced here; addresses are plain numbers), host-tested;
//! the guest's `ndis::nmr` calls the modules' callbacks between these steps.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// An NPI id (a GUID's 16 bytes as laid out in memory).
pub type NpiId = [u8; 16];

/// First handle value the registry hands out (handles are opaque to the modules; these are
/// recognisable in logs and never null).
const HANDLE_BASE: u64 = 0x4E4D_5200_0000;
/// Distance between handles.
const HANDLE_STRIDE: u64 = 0x10;

/// Which side of an NPI a registration implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Registered with NmrRegisterProvider.
    Provider,
    /// Registered with NmrRegisterClient.
    Client,
}

/// One registration.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The NMR handle the module was given.
    pub handle: u64,
    /// Provider or client.
    pub role: Role,
    /// The NPI it registered for.
    pub npi: NpiId,
    /// Address of its characteristics (resident while registered).
    pub characteristics: u64,
    /// Its registration context.
    pub context: u64,
    /// Whether NmrDeregister* was called.
    pub deregistering: bool,
}

/// Where one side's detach is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetachSide {
    /// Its detach callback is running (not returned yet).
    Running,
    /// Completed while its callback was still running.
    RunningCompleted,
    /// The callback returned `STATUS_PENDING`; the completion has not come yet.
    Pending,
    /// Detached.
    Done,
}

/// The state of one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingState {
    /// Offered to the client (ClientAttachProvider running), not attached.
    Offered,
    /// NmrClientAttachProvider is running (the provider's attach callback).
    Attaching,
    /// Attached both ways.
    Attached,
    /// Being detached: the client's side and the provider's side.
    Detaching {
        /// The client's detach.
        client: DetachSide,
        /// The provider's detach.
        provider: DetachSide,
    },
}

/// One binding of a client and a provider of the same NPI.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The NMR binding handle both modules were given.
    pub handle: u64,
    /// The client's registration handle.
    pub client: u64,
    /// The provider's registration handle.
    pub provider: u64,
    /// Where it is.
    pub state: BindingState,
    /// The client's binding context (once attached).
    pub client_context: u64,
    /// The provider's binding context (once attached).
    pub provider_context: u64,
    /// The provider's dispatch table (once attached).
    pub provider_dispatch: u64,
}

/// A rule broken, or a handle the registry does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NmrViolation {
    /// NmrDoubleAttach.
    DoubleAttach {
        /// The binding.
        binding: u64,
    },
    /// NmrDetachDoubleComplete.
    DetachDoubleComplete {
        /// The binding.
        binding: u64,
        /// Which side completed.
        side: Role,
        /// Why the completion was not expected.
        why: &'static str,
    },
    /// NmrDeregisterComplete.
    DeregisterIncomplete {
        /// The provider registration.
        registration: u64,
        /// What was missing.
        why: String,
    },
    /// A handle that is not a live registration or binding of this registry.
    UnknownHandle {
        /// The function called.
        function: &'static str,
        /// The handle passed.
        handle: u64,
    },
    /// NmrDeregister* called twice for one registration.
    DoubleDeregister {
        /// The registration.
        registration: u64,
    },
}

impl core::fmt::Display for NmrViolation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NmrViolation::DoubleAttach { binding } => write!(
                f,
                "NmrDoubleAttach: NmrClientAttachProvider called again for binding {binding:#x} (a client attaches at most once per match)"
            ),
            NmrViolation::DetachDoubleComplete { binding, side, why } => write!(
                f,
                "NmrDetachDoubleComplete: {} for binding {binding:#x}, whose detach {why} (a detach is completed exactly once)",
                match side {
                    Role::Provider => "NmrProviderDetachClientComplete",
                    Role::Client => "NmrClientDetachProviderComplete",
                }
            ),
            NmrViolation::DeregisterIncomplete { registration, why } => write!(
                f,
                "NmrDeregisterComplete: unload returned while provider registration {registration:#x} {why} (deregistration must finish before unload returns)"
            ),
            NmrViolation::UnknownHandle { function, handle } => {
                write!(f, "{function}: {handle:#x} is not a live NMR handle")
            }
            NmrViolation::DoubleDeregister { registration } => write!(
                f,
                "NMR registration {registration:#x} deregistered twice"
            ),
        }
    }
}

/// The registrar's state.
#[derive(Debug, Default)]
pub struct Registry {
    registrations: Vec<Registration>,
    bindings: Vec<Binding>,
    /// The last [`RETIRED_KEPT`] bindings removed (a late completion names one of them).
    retired: Vec<u64>,
    issued: u64,
}

/// How many removed binding handles the registry remembers.
const RETIRED_KEPT: usize = 16;

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            registrations: Vec::new(),
            bindings: Vec::new(),
            retired: Vec::new(),
            issued: 0,
        }
    }

    fn next_handle(&mut self) -> u64 {
        self.issued += 1;
        HANDLE_BASE + self.issued * HANDLE_STRIDE
    }

    /// Records a registration; returns its handle.
    pub fn register(&mut self, role: Role, npi: NpiId, characteristics: u64, context: u64) -> u64 {
        let handle = self.next_handle();
        self.registrations.push(Registration {
            handle,
            role,
            npi,
            characteristics,
            context,
            deregistering: false,
        });
        handle
    }

    /// The live registration `handle`.
    pub fn registration(&self, handle: u64) -> Option<&Registration> {
        self.registrations.iter().find(|r| r.handle == handle)
    }

    /// The live binding `handle`.
    pub fn binding(&self, handle: u64) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.handle == handle)
    }

    /// The `(client, provider)` pairs of one NPI that the new registration `handle` makes
    /// possible: neither side deregistering, not bound yet.
    pub fn matches(&self, handle: u64) -> Vec<(u64, u64)> {
        let Some(new) = self.registration(handle) else {
            return Vec::new();
        };
        self.registrations
            .iter()
            .filter(|r| r.role != new.role && r.npi == new.npi && !r.deregistering)
            .map(|r| match new.role {
                Role::Client => (new.handle, r.handle),
                Role::Provider => (r.handle, new.handle),
            })
            .filter(|&(c, p)| {
                !self
                    .bindings
                    .iter()
                    .any(|b| b.client == c && b.provider == p)
            })
            .collect()
    }

    /// Offers the provider to the client (before ClientAttachProvider): a new binding.
    pub fn offer(&mut self, client: u64, provider: u64) -> u64 {
        let handle = self.next_handle();
        self.bindings.push(Binding {
            handle,
            client,
            provider,
            state: BindingState::Offered,
            client_context: 0,
            provider_context: 0,
            provider_dispatch: 0,
        });
        handle
    }

    fn binding_mut(
        &mut self,
        function: &'static str,
        handle: u64,
    ) -> Result<&mut Binding, NmrViolation> {
        self.bindings
            .iter_mut()
            .find(|b| b.handle == handle)
            .ok_or(NmrViolation::UnknownHandle { function, handle })
    }

    /// NmrClientAttachProvider begins on `binding`: allowed once per offer.
    pub fn client_attach(&mut self, binding: u64) -> Result<(), NmrViolation> {
        let b = self.binding_mut("NmrClientAttachProvider", binding)?;
        match b.state {
            BindingState::Offered => {
                b.state = BindingState::Attaching;
                Ok(())
            }
            _ => Err(NmrViolation::DoubleAttach { binding }),
        }
    }

    /// The provider accepted: the binding is attached with these contexts.
    pub fn attached(
        &mut self,
        binding: u64,
        client_context: u64,
        provider_context: u64,
        provider_dispatch: u64,
    ) {
        if let Some(b) = self.bindings.iter_mut().find(|b| b.handle == binding) {
            b.state = BindingState::Attached;
            b.client_context = client_context;
            b.provider_context = provider_context;
            b.provider_dispatch = provider_dispatch;
        }
    }

    /// The provider refused the attach: back to offered (the client may not retry within
    /// this offer; it is withdrawn when ClientAttachProvider returns unattached).
    pub fn attach_refused(&mut self, binding: u64) {
        if let Some(b) = self.bindings.iter_mut().find(|b| b.handle == binding) {
            b.state = BindingState::Offered;
        }
    }

    /// ClientAttachProvider returned: an offer not taken up is withdrawn. True if attached.
    pub fn offer_closed(&mut self, binding: u64) -> bool {
        match self.binding(binding).map(|b| b.state) {
            Some(BindingState::Attached) => true,
            Some(_) => {
                self.bindings.retain(|b| b.handle != binding);
                false
            }
            None => false,
        }
    }

    /// NmrDeregister{Provider,Client}: marks the registration and starts detaching its
    /// attached bindings (returned: their detach callbacks are to be called, both sides).
    pub fn begin_deregister(
        &mut self,
        function: &'static str,
        handle: u64,
    ) -> Result<Vec<u64>, NmrViolation> {
        let reg = self
            .registrations
            .iter_mut()
            .find(|r| r.handle == handle)
            .ok_or(NmrViolation::UnknownHandle { function, handle })?;
        if reg.deregistering {
            return Err(NmrViolation::DoubleDeregister {
                registration: handle,
            });
        }
        reg.deregistering = true;
        let mut started = Vec::new();
        for b in &mut self.bindings {
            if (b.client == handle || b.provider == handle) && b.state == BindingState::Attached {
                b.state = BindingState::Detaching {
                    client: DetachSide::Running,
                    provider: DetachSide::Running,
                };
                started.push(b.handle);
            }
        }
        Ok(started)
    }

    fn side_mut(b: &mut Binding, side: Role) -> Option<&mut DetachSide> {
        match &mut b.state {
            BindingState::Detaching { client, provider } => Some(match side {
                Role::Client => client,
                Role::Provider => provider,
            }),
            _ => None,
        }
    }

    /// The `side` detach callback of `binding` returned (`pending`: `STATUS_PENDING`). Err when
    /// it completed during the call yet returned something else than `STATUS_PENDING`.
    pub fn detach_returned(
        &mut self,
        binding: u64,
        side: Role,
        pending: bool,
    ) -> Result<(), NmrViolation> {
        let Some(b) = self.bindings.iter_mut().find(|b| b.handle == binding) else {
            return Ok(());
        };
        let Some(s) = Self::side_mut(b, side) else {
            return Ok(());
        };
        let (next, result) = match (*s, pending) {
            (DetachSide::Running, true) => (DetachSide::Pending, Ok(())),
            (DetachSide::Running, false) | (DetachSide::RunningCompleted, true) => {
                (DetachSide::Done, Ok(()))
            }
            (DetachSide::RunningCompleted, false) => (
                DetachSide::Done,
                Err(NmrViolation::DetachDoubleComplete {
                    binding,
                    side,
                    why: "did not return STATUS_PENDING",
                }),
            ),
            (other, _) => (other, Ok(())),
        };
        *s = next;
        result
    }

    /// Nmr{Provider,Client}DetachComplete for `side` of `binding`: allowed once, after a
    /// pending return (or while the callback runs, to be followed by `STATUS_PENDING`).
    pub fn detach_complete(
        &mut self,
        function: &'static str,
        binding: u64,
        side: Role,
    ) -> Result<(), NmrViolation> {
        if self.retired.contains(&binding) {
            return Err(NmrViolation::DetachDoubleComplete {
                binding,
                side,
                why: "was already complete (the binding is cleaned up)",
            });
        }
        let b = self.binding_mut(function, binding)?;
        let Some(s) = Self::side_mut(b, side) else {
            return Err(NmrViolation::DetachDoubleComplete {
                binding,
                side,
                why: "was never started",
            });
        };
        match *s {
            DetachSide::Pending => {
                *s = DetachSide::Done;
                Ok(())
            }
            DetachSide::Running => {
                *s = DetachSide::RunningCompleted;
                Ok(())
            }
            DetachSide::RunningCompleted | DetachSide::Done => {
                Err(NmrViolation::DetachDoubleComplete {
                    binding,
                    side,
                    why: "was already complete",
                })
            }
        }
    }

    /// Whether both sides of `binding` detached (its contexts may be cleaned up).
    pub fn detached(&self, binding: u64) -> bool {
        matches!(
            self.binding(binding).map(|b| b.state),
            Some(BindingState::Detaching {
                client: DetachSide::Done,
                provider: DetachSide::Done
            })
        )
    }

    /// Removes a detached binding (after the cleanup callbacks ran).
    pub fn remove_binding(&mut self, binding: u64) -> Option<Binding> {
        let i = self.bindings.iter().position(|b| b.handle == binding)?;
        if self.retired.len() == RETIRED_KEPT {
            self.retired.remove(0);
        }
        self.retired.push(binding);
        Some(self.bindings.remove(i))
    }

    /// Bindings of registration `handle` that are still there.
    pub fn bindings_of(&self, handle: u64) -> usize {
        self.bindings
            .iter()
            .filter(|b| b.client == handle || b.provider == handle)
            .count()
    }

    /// NmrWaitFor*DeregisterComplete once no binding is left: the registration is gone.
    /// Err if it is unknown or was not deregistered.
    pub fn finish(&mut self, function: &'static str, handle: u64) -> Result<(), NmrViolation> {
        match self
            .registrations
            .iter()
            .position(|r| r.handle == handle && r.deregistering)
        {
            Some(i) if self.bindings_of(handle) == 0 => {
                self.registrations.remove(i);
                Ok(())
            }
            _ => Err(NmrViolation::UnknownHandle { function, handle }),
        }
    }

    /// NmrDeregisterComplete, checked when a driver's unload returned: every provider
    /// registration left is a violation (and is forgotten, with its bindings).
    pub fn unload_returned(&mut self) -> Vec<NmrViolation> {
        let mut found = Vec::new();
        let providers: Vec<Registration> = self
            .registrations
            .iter()
            .filter(|r| r.role == Role::Provider)
            .cloned()
            .collect();
        for r in providers {
            let left = self.bindings_of(r.handle);
            let why = if !r.deregistering {
                String::from("was never deregistered (NmrDeregisterProvider)")
            } else if left > 0 {
                format!("still has {left} binding(s) not detached")
            } else {
                String::from("was not waited for (NmrWaitForProviderDeregisterComplete)")
            };
            found.push(NmrViolation::DeregisterIncomplete {
                registration: r.handle,
                why,
            });
            self.bindings.retain(|b| b.provider != r.handle);
            self.registrations.retain(|x| x.handle != r.handle);
        }
        found
    }

    /// Whether nothing is registered or bound.
    pub fn is_empty(&self) -> bool {
        self.registrations.is_empty() && self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NPI: NpiId = [7; 16];

    /// A provider and a client of NPI, attached: (registry, provider, client, binding).
    fn attached_pair() -> (Registry, u64, u64, u64) {
        let mut r = Registry::new();
        let p = r.register(Role::Provider, NPI, 0x1000, 0);
        assert!(r.matches(p).is_empty(), "no client yet");
        let c = r.register(Role::Client, NPI, 0x2000, 0x20);
        assert_eq!(r.matches(c), [(c, p)]);
        let b = r.offer(c, p);
        r.client_attach(b).unwrap();
        r.attached(b, 0xC0, 0xB0, 0xD0);
        assert!(r.offer_closed(b));
        assert!(r.matches(c).is_empty(), "already bound");
        (r, p, c, b)
    }

    #[test]
    fn clients_match_providers_of_the_same_npi_only() {
        let mut r = Registry::new();
        let p = r.register(Role::Provider, NPI, 1, 0);
        let other = r.register(Role::Client, [9; 16], 2, 0);
        assert!(r.matches(other).is_empty());
        let c = r.register(Role::Client, NPI, 3, 0);
        assert_eq!(r.matches(p), [(c, p)]);
    }

    #[test]
    fn a_second_attach_of_one_match_is_nmr_double_attach() {
        let (mut r, _, _, b) = attached_pair();
        let e = r.client_attach(b).unwrap_err();
        assert_eq!(e, NmrViolation::DoubleAttach { binding: b });
        assert!(e.to_string().starts_with("NmrDoubleAttach: "));
    }

    #[test]
    fn an_offer_not_taken_is_withdrawn() {
        let mut r = Registry::new();
        let p = r.register(Role::Provider, NPI, 1, 0);
        let c = r.register(Role::Client, NPI, 2, 0);
        let b = r.offer(c, p);
        r.client_attach(b).unwrap();
        r.attach_refused(b);
        assert!(!r.offer_closed(b));
        assert_eq!(r.bindings_of(c), 0);
    }

    #[test]
    fn a_pended_provider_detach_completes_once_and_the_deregistration_finishes() {
        let (mut r, p, c, b) = attached_pair();
        assert_eq!(r.begin_deregister("NmrDeregisterClient", c).unwrap(), [b]);
        r.detach_returned(b, Role::Client, false).unwrap();
        r.detach_returned(b, Role::Provider, true).unwrap();
        assert!(!r.detached(b));
        assert!(r.finish("NmrWaitForClientDeregisterComplete", c).is_err());
        r.detach_complete("NmrProviderDetachClientComplete", b, Role::Provider)
            .unwrap();
        assert!(r.detached(b));
        let e = r
            .detach_complete("NmrProviderDetachClientComplete", b, Role::Provider)
            .unwrap_err();
        assert!(
            e.to_string().starts_with("NmrDetachDoubleComplete: "),
            "{e}"
        );
        assert_eq!(r.remove_binding(b).unwrap().provider_context, 0xB0);
        let e = r
            .detach_complete("NmrProviderDetachClientComplete", b, Role::Provider)
            .unwrap_err();
        assert!(e.to_string().contains("cleaned up"), "{e}");
        r.finish("NmrWaitForClientDeregisterComplete", c).unwrap();
        assert!(r.registration(c).is_none());
        assert_eq!(r.begin_deregister("NmrDeregisterProvider", p).unwrap(), []);
        r.finish("NmrWaitForProviderDeregisterComplete", p).unwrap();
        assert!(r.is_empty());
        assert!(r.unload_returned().is_empty());
    }

    #[test]
    fn completing_a_detach_that_returned_success_is_a_double_complete() {
        let (mut r, p, _, b) = attached_pair();
        r.begin_deregister("NmrDeregisterProvider", p).unwrap();
        r.detach_returned(b, Role::Provider, false).unwrap();
        let e = r
            .detach_complete("NmrProviderDetachClientComplete", b, Role::Provider)
            .unwrap_err();
        assert!(matches!(e, NmrViolation::DetachDoubleComplete { .. }));
    }

    #[test]
    fn completing_inside_the_callback_requires_a_pending_return() {
        let (mut r, p, _, b) = attached_pair();
        r.begin_deregister("NmrDeregisterProvider", p).unwrap();
        r.detach_complete("x", b, Role::Provider).unwrap();
        assert!(r.detach_returned(b, Role::Provider, false).is_err());
        let (mut r, p, _, b) = attached_pair();
        r.begin_deregister("NmrDeregisterProvider", p).unwrap();
        r.detach_complete("x", b, Role::Provider).unwrap();
        r.detach_returned(b, Role::Provider, true).unwrap();
        r.detach_returned(b, Role::Client, false).unwrap();
        assert!(r.detached(b));
    }

    #[test]
    fn unload_with_a_registration_left_is_nmr_deregister_complete() {
        let (mut r, p, _, b) = attached_pair();
        let v = r.unload_returned();
        assert_eq!(v.len(), 1);
        assert!(v[0].to_string().contains("never deregistered"), "{}", v[0]);
        assert!(r.binding(b).is_none(), "forgotten with its bindings");
        let (mut r, p2, _, b) = attached_pair();
        r.begin_deregister("NmrDeregisterProvider", p2).unwrap();
        r.detach_returned(b, Role::Provider, true).unwrap();
        let v = r.unload_returned();
        assert!(
            v[0].to_string().starts_with("NmrDeregisterComplete: "),
            "{}",
            v[0]
        );
        assert!(v[0].to_string().contains("1 binding(s) not detached"));
        let _ = p;
    }

    #[test]
    fn unknown_handles_and_double_deregistration_are_refused() {
        let (mut r, p, _, _) = attached_pair();
        assert!(matches!(
            r.client_attach(0x1234),
            Err(NmrViolation::UnknownHandle { handle: 0x1234, .. })
        ));
        r.begin_deregister("NmrDeregisterProvider", p).unwrap();
        assert_eq!(
            r.begin_deregister("NmrDeregisterProvider", p),
            Err(NmrViolation::DoubleDeregister { registration: p })
        );
    }
}
