//! MSI delivery through KVM: GSI routing + irqfd, one GSI and one eventfd per
//! device vector.
//!
//! `KVM_SET_GSI_ROUTING` replaces the whole table, so the monitor keeps the whole
//! table here (the irqchip pins 0..23 plus one MSI route per live vector) and
//! re-sends it on every change. Ordering rules (KVM resolves an irqfd's GSI when the
//! irqfd is assigned and whenever the routing table changes; an irqfd bound to a
//! GSI without a route delivers nothing):
//!
//! * a vector becoming deliverable: install its MSI route first, then assign its
//!   irqfd (an irqfd never points at a missing route);
//! * a vector becoming masked/disabled: deassign its irqfd first, then drop the
//!   route;
//! * a changed message on a live vector: re-send the table (KVM re-resolves the
//!   irqfd's route atomically).
//!
//! Triggering a vector is one eventfd write; KVM injects the MSI into the
//! in-kernel LAPIC without leaving the kernel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use tracing::{debug, trace};
use vm_allocator::{AddressAllocator, AllocPolicy};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// GSIs 0..23 are the irqchip's pins; MSI routes start here.
pub const FIRST_MSI_GSI: u32 = 24;
/// Vectors per router (GSIs 24..24+MAX_VECTORS).
pub const MAX_VECTORS: u16 = 2048;

/// One GSI routing table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// GSI wired to an irqchip pin.
    Irqchip {
        /// GSI number.
        gsi: u32,
        /// KVM irqchip id (PIC master 0, PIC slave 1, IOAPIC 2).
        chip: u32,
        /// Pin on that chip.
        pin: u32,
    },
    /// GSI that raises an MSI.
    Msi {
        /// GSI number.
        gsi: u32,
        /// MSI address.
        address: u64,
        /// MSI data.
        data: u32,
    },
}

/// What the KVM backend could not do.
#[derive(Debug, thiserror::Error)]
pub enum IrqBackendError {
    /// The routing table has more entries than a `kvm_irq_routing` can hold.
    #[error("the GSI routing table has {entries} entries, more than KVM accepts")]
    TableTooLarge {
        /// Entries in the table that was refused.
        entries: usize,
        /// The size check that failed.
        #[source]
        source: vmm_sys_util::fam::Error,
    },
    /// `KVM_SET_GSI_ROUTING` failed.
    #[error("KVM_SET_GSI_ROUTING failed: {0}")]
    SetRoutes(#[source] kvm_ioctls::Error),
    /// `KVM_IRQFD` (assign) failed.
    #[error("KVM_IRQFD could not bind an eventfd to GSI {gsi}: {source}")]
    AssignIrqfd {
        /// The GSI.
        gsi: u32,
        /// KVM's answer.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// `KVM_IRQFD` (deassign) failed.
    #[error("KVM_IRQFD could not unbind an eventfd from GSI {gsi}: {source}")]
    DeassignIrqfd {
        /// The GSI.
        gsi: u32,
        /// KVM's answer.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Routing failures: which vector, what the router was doing, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The initial table (irqchip pins only) was refused.
    #[error("installing the initial GSI routing table: {0}")]
    InitialTable(#[source] IrqBackendError),
    /// The vector number is beyond [`MAX_VECTORS`].
    #[error("MSI vector {vector} is beyond the monitor's limit of {MAX_VECTORS} vectors")]
    VectorBeyondLimit {
        /// The vector asked for.
        vector: u16,
    },
    /// No block of vectors that large is free any more.
    #[error(
        "no block of {count} MSI vectors is left (the monitor routes at most {MAX_VECTORS}); \
         attach fewer devices"
    )]
    VectorsExhausted {
        /// The block size asked for.
        count: u16,
    },
    /// No eventfd could be created for the vector.
    #[error("creating the eventfd of MSI vector {vector}: {source}")]
    EventFd {
        /// The vector.
        vector: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The backend refused a step of a routing change.
    #[error("{step} MSI vector {vector}: {source}")]
    Backend {
        /// The vector.
        vector: u16,
        /// What the router was doing ("routing", "unrouting").
        step: &'static str,
        /// The backend's error.
        #[source]
        source: IrqBackendError,
    },
    /// Writing the vector's eventfd failed.
    #[error("signalling MSI vector {vector}: {source}")]
    Signal {
        /// The vector.
        vector: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What the router needs from KVM (a fake stands in for it in tests).
pub trait IrqBackend: Send {
    /// Replaces the whole routing table.
    fn set_routes(&self, routes: &[Route]) -> Result<(), IrqBackendError>;
    /// Binds `fd` to `gsi`.
    fn assign_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError>;
    /// Unbinds `fd` from `gsi`.
    fn deassign_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError>;
}

/// The KVM implementation of [`IrqBackend`].
pub struct KvmIrqBackend {
    vm: Arc<VmFd>,
}

impl KvmIrqBackend {
    /// Backend on `vm` (which must have an in-kernel irqchip).
    pub fn new(vm: Arc<VmFd>) -> Self {
        KvmIrqBackend { vm }
    }
}

/// Converts a [`Route`] to KVM's entry.
pub fn kvm_entry(route: &Route) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry::default();
    match *route {
        Route::Irqchip { gsi, chip, pin } => {
            e.gsi = gsi;
            e.type_ = KVM_IRQ_ROUTING_IRQCHIP;
            e.u.irqchip.irqchip = chip;
            e.u.irqchip.pin = pin;
        }
        Route::Msi { gsi, address, data } => {
            e.gsi = gsi;
            e.type_ = KVM_IRQ_ROUTING_MSI;
            e.u.msi.address_lo = address as u32;
            e.u.msi.address_hi = (address >> 32) as u32;
            e.u.msi.data = data;
        }
    }
    e
}

impl IrqBackend for KvmIrqBackend {
    fn set_routes(&self, routes: &[Route]) -> Result<(), IrqBackendError> {
        let entries: Vec<kvm_irq_routing_entry> = routes.iter().map(kvm_entry).collect();
        let table = KvmIrqRouting::from_entries(&entries).map_err(|source| {
            IrqBackendError::TableTooLarge {
                entries: entries.len(),
                source,
            }
        })?;
        self.vm
            .set_gsi_routing(&table)
            .map_err(IrqBackendError::SetRoutes)
    }
    fn assign_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
        self.vm
            .register_irqfd(fd, gsi)
            .map_err(|source| IrqBackendError::AssignIrqfd { gsi, source })
    }
    fn deassign_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
        self.vm
            .unregister_irqfd(fd, gsi)
            .map_err(|source| IrqBackendError::DeassignIrqfd { gsi, source })
    }
}

/// KVM's default routing of GSIs 0..23: PIC and IOAPIC for 0..15, IOAPIC for 16..23.
pub fn default_irqchip_routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for gsi in 0..24u32 {
        if gsi < 16 {
            let (chip, pin) = if gsi < 8 {
                (KVM_IRQCHIP_PIC_MASTER, gsi)
            } else {
                (KVM_IRQCHIP_PIC_SLAVE, gsi - 8)
            };
            routes.push(Route::Irqchip { gsi, chip, pin });
        }
        routes.push(Route::Irqchip {
            gsi,
            chip: KVM_IRQCHIP_IOAPIC,
            pin: gsi,
        });
    }
    routes
}

struct VectorSlot {
    gsi: u32,
    evt: EventFd,
    route: Option<(u64, u32)>,
    assigned: bool,
}

struct RouterState<B> {
    backend: B,
    fixed: Vec<Route>,
    vectors: BTreeMap<u16, VectorSlot>,
}

impl<B: IrqBackend> RouterState<B> {
    fn table(&self) -> Vec<Route> {
        let mut table = self.fixed.clone();
        table.extend(self.vectors.values().filter_map(|slot| {
            slot.route.map(|(address, data)| Route::Msi {
                gsi: slot.gsi,
                address,
                data,
            })
        }));
        table
    }

    fn slot(&mut self, vector: u16) -> Result<&mut VectorSlot, RouteError> {
        if vector >= MAX_VECTORS {
            return Err(RouteError::VectorBeyondLimit { vector });
        }
        match self.vectors.entry(vector) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(v) => {
                let evt = EventFd::new(EFD_NONBLOCK)
                    .map_err(|source| RouteError::EventFd { vector, source })?;
                Ok(v.insert(VectorSlot {
                    gsi: FIRST_MSI_GSI + u32::from(vector),
                    evt,
                    route: None,
                    assigned: false,
                }))
            }
        }
    }

    fn update(&mut self, vector: u16, message: Option<(u64, u32)>) -> Result<(), RouteError> {
        let gsi = self.slot(vector)?.gsi;
        let backend_error = |step: &'static str| {
            move |source| RouteError::Backend {
                vector,
                step,
                source,
            }
        };
        let (current, assigned) = {
            let slot = &self.vectors[&vector];
            (slot.route, slot.assigned)
        };
        match message {
            Some(message) => {
                if current == Some(message) && assigned {
                    return Ok(());
                }
                self.vectors.get_mut(&vector).expect("exists").route = Some(message);
                if let Err(e) = self.backend.set_routes(&self.table()) {
                    self.vectors.get_mut(&vector).expect("exists").route = current;
                    return Err(backend_error("routing")(e));
                }
                if !assigned {
                    self.backend
                        .assign_irqfd(&self.vectors[&vector].evt, gsi)
                        .map_err(backend_error("binding the irqfd of"))?;
                    self.vectors.get_mut(&vector).expect("exists").assigned = true;
                }
                debug!(
                    vector,
                    gsi,
                    address = message.0,
                    data = message.1,
                    "MSI route live"
                );
            }
            None => {
                if assigned {
                    self.backend
                        .deassign_irqfd(&self.vectors[&vector].evt, gsi)
                        .map_err(backend_error("unbinding the irqfd of"))?;
                    self.vectors.get_mut(&vector).expect("exists").assigned = false;
                }
                if current.is_some() {
                    self.vectors.get_mut(&vector).expect("exists").route = None;
                    self.backend
                        .set_routes(&self.table())
                        .map_err(backend_error("unrouting"))?;
                    debug!(vector, gsi, "MSI route removed");
                }
            }
        }
        Ok(())
    }
}

/// The monitor's GSI routing table and per-vector irqfds, and the allocation of its
/// vectors (GSI `FIRST_MSI_GSI + vector`) to devices in blocks.
pub struct GsiRouter<B: IrqBackend> {
    state: Mutex<RouterState<B>>,
    /// Vectors `0..MAX_VECTORS` as an address space (vm-allocator, first fit): each
    /// device reserves one contiguous block.
    free_vectors: Mutex<AddressAllocator>,
}

impl<B: IrqBackend> GsiRouter<B> {
    /// A router that keeps `fixed` routes (normally [`default_irqchip_routes`]) in
    /// every table it sends. Sends the initial table.
    pub fn new(backend: B, fixed: Vec<Route>) -> Result<Self, RouteError> {
        backend
            .set_routes(&fixed)
            .map_err(RouteError::InitialTable)?;
        Ok(Self::over_installed(backend, fixed))
    }

    /// A router over a backend that already routes exactly `fixed` (KVM after
    /// `KVM_CREATE_IRQCHIP` routes [`default_irqchip_routes`]): sends nothing until the
    /// first MSI route, then whole tables with `fixed` first, as [`GsiRouter::new`]'s.
    /// Saves a `KVM_SET_GSI_ROUTING` (an SRCU grace period in the kernel, up to a few ms
    /// here) on every run that never routes an MSI, such as a boot without an RNIC.
    pub fn over_installed(backend: B, fixed: Vec<Route>) -> Self {
        GsiRouter {
            state: Mutex::new(RouterState {
                backend,
                fixed,
                vectors: BTreeMap::new(),
            }),
            free_vectors: Mutex::new(
                AddressAllocator::new(0, u64::from(MAX_VECTORS))
                    .expect("0..MAX_VECTORS is a non-empty range"),
            ),
        }
    }

    /// Reserves `count` consecutive vectors for one device (its MSI-X vector `i` is
    /// router vector `first + i`) and returns the first, the lowest free block first.
    pub fn reserve_vectors(&self, count: u16) -> Result<u16, RouteError> {
        let exhausted = RouteError::VectorsExhausted { count };
        let block = self
            .free_vectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocate(u64::from(count), 1, AllocPolicy::FirstMatch)
            .map_err(|_| exhausted)?;
        // The space is 0..MAX_VECTORS, so the start fits in a u16.
        Ok(block.start() as u16)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouterState<B>> {
        // A panic while holding the lock cannot leave the table half-updated in a way
        // that matters more than stopping delivery; keep going with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Vector `vector` becomes deliverable with MSI `(address, data)`, or stops
    /// being deliverable (`None`).
    pub fn update_route(&self, vector: u16, message: Option<(u64, u32)>) -> Result<(), RouteError> {
        self.lock().update(vector, message)
    }

    /// Raises vector `vector` with MSI `(address, data)`. If the vector's live route
    /// is a different message (or none), the route is installed first.
    pub fn trigger(&self, vector: u16, address: u64, data: u32) -> Result<(), RouteError> {
        let mut state = self.lock();
        let live = state
            .vectors
            .get(&vector)
            .is_some_and(|s| s.assigned && s.route == Some((address, data)));
        if !live {
            state.update(vector, Some((address, data)))?;
        }
        let slot = state.vectors.get(&vector).expect("routed above");
        trace!(vector, gsi = slot.gsi, "MSI");
        slot.evt
            .write(1)
            .map_err(|source| RouteError::Signal { vector, source })
    }

    /// A second handle on the eventfd of vector `vector` (created if the vector has
    /// none yet): a device outside the monitor (a VFIO device) signals it, and KVM
    /// delivers the vector's MSI once [`GsiRouter::update_route`] made it live.
    pub fn eventfd(&self, vector: u16) -> Result<EventFd, RouteError> {
        self.lock()
            .slot(vector)?
            .evt
            .try_clone()
            .map_err(|source| RouteError::EventFd { vector, source })
    }

    /// The whole table as last sent.
    pub fn table(&self) -> Vec<Route> {
        self.lock().table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Op {
        Set(Vec<Route>),
        Assign(u32),
        Deassign(u32),
    }

    #[derive(Clone, Default)]
    struct Fake {
        ops: Arc<Mutex<Vec<Op>>>,
        fail_set: Arc<Mutex<bool>>,
    }

    impl IrqBackend for Fake {
        fn set_routes(&self, routes: &[Route]) -> Result<(), IrqBackendError> {
            if *self.fail_set.lock().unwrap() {
                return Err(IrqBackendError::SetRoutes(kvm_ioctls::Error::new(
                    libc::EINVAL,
                )));
            }
            self.ops.lock().unwrap().push(Op::Set(routes.to_vec()));
            Ok(())
        }
        fn assign_irqfd(&self, _fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
            self.ops.lock().unwrap().push(Op::Assign(gsi));
            Ok(())
        }
        fn deassign_irqfd(&self, _fd: &EventFd, gsi: u32) -> Result<(), IrqBackendError> {
            self.ops.lock().unwrap().push(Op::Deassign(gsi));
            Ok(())
        }
    }

    fn msi(gsi: u32, data: u32) -> Route {
        Route::Msi {
            gsi,
            address: 0xFEE0_0000,
            data,
        }
    }

    fn router() -> (GsiRouter<Fake>, Fake) {
        let fake = Fake::default();
        let r = GsiRouter::new(fake.clone(), default_irqchip_routes()).unwrap();
        fake.ops.lock().unwrap().clear();
        (r, fake)
    }

    #[test]
    fn a_router_over_installed_routes_sends_nothing_until_the_first_msi_route() {
        let fake = Fake::default();
        let r = GsiRouter::over_installed(fake.clone(), default_irqchip_routes());
        assert!(fake.ops.lock().unwrap().is_empty());
        assert_eq!(r.table(), default_irqchip_routes());
        r.update_route(0, Some((0xFEE0_0000, 0x41))).unwrap();
        let mut expected = default_irqchip_routes();
        expected.push(msi(24, 0x41));
        assert_eq!(
            *fake.ops.lock().unwrap(),
            vec![Op::Set(expected), Op::Assign(24)]
        );
    }

    #[test]
    fn default_routes_cover_24_pins() {
        let d = default_irqchip_routes();
        assert_eq!(d.len(), 16 * 2 + 8);
        assert!(d.contains(&Route::Irqchip {
            gsi: 4,
            chip: 0,
            pin: 4
        }));
        assert!(d.contains(&Route::Irqchip {
            gsi: 10,
            chip: 1,
            pin: 2
        }));
        assert!(d.contains(&Route::Irqchip {
            gsi: 23,
            chip: 2,
            pin: 23
        }));
    }

    #[test]
    fn route_then_assign_and_deassign_then_unroute() {
        let (r, fake) = router();
        r.update_route(0, Some((0xFEE0_0000, 0x41))).unwrap();
        r.update_route(3, Some((0xFEE0_0000, 0x44))).unwrap();
        r.update_route(0, None).unwrap();
        let base = default_irqchip_routes();
        let with = |extra: &[Route]| {
            let mut t = base.clone();
            t.extend_from_slice(extra);
            t
        };
        assert_eq!(
            *fake.ops.lock().unwrap(),
            vec![
                Op::Set(with(&[msi(24, 0x41)])),
                Op::Assign(24),
                // The whole table is re-sent: vector 0's route survives vector 3's update.
                Op::Set(with(&[msi(24, 0x41), msi(27, 0x44)])),
                Op::Assign(27),
                Op::Deassign(24),
                Op::Set(with(&[msi(27, 0x44)])),
            ]
        );
        assert_eq!(r.table(), with(&[msi(27, 0x44)]));
    }

    #[test]
    fn same_route_twice_is_a_no_op_and_changed_route_only_resends_table() {
        let (r, fake) = router();
        r.update_route(1, Some((0xFEE0_0000, 0x50))).unwrap();
        r.update_route(1, Some((0xFEE0_0000, 0x50))).unwrap();
        r.update_route(1, Some((0xFEE0_1000, 0x51))).unwrap();
        let ops = fake.ops.lock().unwrap().clone();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1], Op::Assign(25));
        assert!(
            matches!(&ops[2], Op::Set(t) if t.last() == Some(&Route::Msi { gsi: 25, address: 0xFEE0_1000, data: 0x51 }))
        );
    }

    #[test]
    fn devices_reserve_consecutive_blocks_until_the_vectors_run_out() {
        let (r, fake) = router();
        assert_eq!(r.reserve_vectors(16).unwrap(), 0);
        assert_eq!(r.reserve_vectors(16).unwrap(), 16);
        assert_eq!(r.reserve_vectors(256).unwrap(), 32);
        assert_eq!(r.reserve_vectors(1).unwrap(), 288);
        // What is left: MAX_VECTORS - 289 vectors in one block.
        let left = MAX_VECTORS - 289;
        let e = r.reserve_vectors(left + 1).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("no block of {} MSI vectors is left", left + 1)),
            "{e}"
        );
        assert_eq!(r.reserve_vectors(left).unwrap(), 289);
        assert!(matches!(
            r.reserve_vectors(1),
            Err(RouteError::VectorsExhausted { count: 1 })
        ));
        assert!(
            fake.ops.lock().unwrap().is_empty(),
            "reserving routes nothing"
        );
    }

    #[test]
    fn unrouting_an_unknown_vector_sends_nothing() {
        let (r, fake) = router();
        r.update_route(5, None).unwrap();
        assert!(fake.ops.lock().unwrap().is_empty());
    }

    #[test]
    fn trigger_signals_the_eventfd_and_routes_on_demand() {
        let (r, fake) = router();
        r.trigger(2, 0xFEE0_0000, 0x60).unwrap();
        r.trigger(2, 0xFEE0_0000, 0x60).unwrap();
        let ops = fake.ops.lock().unwrap().clone();
        assert_eq!(ops.len(), 2, "routed once: {ops:?}");
        let st = r.lock();
        assert_eq!(st.vectors[&2].evt.read().unwrap(), 2);
    }

    #[test]
    fn failed_routing_leaves_the_table_unchanged() {
        let (r, fake) = router();
        *fake.fail_set.lock().unwrap() = true;
        let e = r.update_route(0, Some((0xFEE0_0000, 0x41))).unwrap_err();
        assert!(
            matches!(
                &e,
                RouteError::Backend {
                    vector: 0,
                    step: "routing",
                    source: IrqBackendError::SetRoutes(k)
                } if k.errno() == libc::EINVAL
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("routing MSI vector 0"), "{e}");
        assert_eq!(r.table(), default_irqchip_routes());
        assert!(matches!(
            r.update_route(MAX_VECTORS, None),
            Err(RouteError::VectorBeyondLimit {
                vector: MAX_VECTORS
            })
        ));
    }

    #[test]
    fn kvm_entries_encode_msi_and_irqchip() {
        let e = kvm_entry(&Route::Msi {
            gsi: 30,
            address: 0x1_FEE0_1000,
            data: 0x42,
        });
        assert_eq!((e.gsi, e.type_), (30, KVM_IRQ_ROUTING_MSI));
        // SAFETY: the entry was built as an MSI entry just above.
        let m = unsafe { e.u.msi };
        assert_eq!((m.address_lo, m.address_hi, m.data), (0xFEE0_1000, 1, 0x42));
        let e = kvm_entry(&Route::Irqchip {
            gsi: 4,
            chip: 2,
            pin: 4,
        });
        // SAFETY: the entry was built as an irqchip entry just above.
        let c = unsafe { e.u.irqchip };
        assert_eq!((e.type_, c.irqchip, c.pin), (KVM_IRQ_ROUTING_IRQCHIP, 2, 4));
    }
}
