//! # rnic-device-server: the RNIC out of process, over vfio-user
//!
//! Serves one emulated RNIC ([`rnic_device::Rnic`]) to a vfio-user client (QEMU's
//! `vfio-user-pci`) over a Unix socket, with rust-vmm's `vfio_user` crate: PCI
//! configuration space, BAR0 and BAR2 as regions, MSI-X through the eventfds the
//! client passes in SET_IRQS (the device keeps the pending bits, which QEMU reads
//! from BAR2's PBA), DMA through the file-backed maps of DMA_MAP, device reset.
//!
//! What it owns: the protocol side (sessions, validation of every client-supplied
//! number, DMA maps, eventfds). What it must not touch: the device's behaviour,
//! which stays in `device-model/`; only [`function`] uses the device's PCI API.
//!
//! | module | what |
//! | --- | --- |
//! | [`options`] | command line: socket, MAC, IPv4, wire, pcap, fault plan, API socket |
//! | [`control`] | the control API of the one RNIC (`--api-socket`), shared with rnic-vmm through `rnic-control` |
//! | [`server`] | one session: listen, accept, relay, poll, stop |
//! | [`guard`] | validating relay in front of the `vfio_user` crate's server |
//! | [`backend`] | the published regions/interrupts and the request handlers |
//! | [`function`] | the adapter to the device model's PCI function |
//! | [`dma`] | DMA_MAP/DMA_UNMAP and the guest memory the device sees |
//! | [`irq`] | MSI-X vectors as the client's eventfds |
//! | [`error`] | typed errors with one-line messages |
//! | [`vfio_passthrough`] | a real device through VFIO (`vfio-ioctls`) behind the device model's PCI trait; tested against a fake only (no VFIO on these machines) |
//!
//! User guide: `docs/vfio-user.md`.

pub mod backend;
pub mod control;
pub mod dma;
pub mod error;
pub mod function;
pub mod guard;
pub mod irq;
pub mod options;
pub mod server;
pub mod vfio_passthrough;

pub use error::ServerError;
pub use options::Options;
