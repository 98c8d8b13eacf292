//! # rnic-device: the emulated RDMA NIC
//!
//! This crate *is* the hardware our users design: a PCI Express function with a
//! register BAR, an MSI-X BAR, an admin queue, RDMA verbs objects (PD, MR, CQ, QP),
//! Ethernet queues, a wire to other devices and a scriptable fault engine. The
//! written contract is `docs/device-spec.md`; this crate follows it exactly, and
//! every register offset, opcode, status and byte layout comes from the
//! `rnic-contract` crate (the contract as code, shared with the driver and guest).
//!
//! What it owns: everything the device does. What it must not touch: KVM, vCPUs,
//! host files other than wire/pcap backends the caller hands it. It reaches the
//! outside world only through three seams:
//!
//! * guest memory: a [`vm_memory::GuestMemoryMmap`], every access bounds-checked
//!   ([`dma`]);
//! * interrupts: the [`irq::InterruptSink`] trait, implemented by the monitor
//!   (KVM irqfd) or by tests (a recorder);
//! * the wire: the [`wire::WireBackend`] trait (in-process pair, Unix socket, UDP).
//!
//! The device never trusts the guest: every index, count, length, address and key
//! read from registers or guest memory is validated, and bad input produces a
//! device-visible error status, never a panic and never an access outside guest RAM.
//!
//! Module map:
//!
//! | module | what |
//! | --- | --- |
//! | [`pci`] | configuration space, capabilities, BAR sizing, the [`pci::PciFunction`] trait |
//! | [`msix`] | MSI-X table and PBA, mask/pending semantics |
//! | [`irq`] | the interrupt seam to the monitor |
//! | [`dma`] | bounds-checked guest memory access, fault hooks |
//! | [`env`] | [`env::DeviceEnv`], the one seam between the engines and the device core, with the typed [`env::Owner`] of every access |
//! | [`device`] | [`device::Rnic`], the top-level device |
//! | [`admin`] | admin queue rings and admin command execution (formats in `rnic-contract`) |
//! | [`eth`] | Ethernet: MAC address, filter, MTU, TX/RX descriptor rings |
//! | [`events`] | asynchronous event queue |
//! | [`stats`] | counters and the guest statistics block |
//! | [`verbs`] | RDMA verbs: PD, MR (keys, protection), CQ (arming, moderation), QP (RC state machine), WQE engine, RC transport, and the connection manager (IBTA CM on QP1, ARP / Neighbor Discovery for the verbs port) |
//! | [`roce`] | RoCEv2 frame codec (Ethernet, IPv4 or IPv6, UDP 4791, BTH/DETH/RETH/AETH/ImmDt/IETH, ICRC) and PSN arithmetic |
//! | [`wire`] | the wire between devices: backends, pcap capture, wire faults |
//! | [`fault`] | the fault engine: rules (site, scope, action, trigger), statistics, hit log |
//!
//! Tests: unit tests next to each module; `tests/two_devices.rs` drives two whole
//! devices through their registers over the in-process wire with a small driver
//! written from the spec (`tests/support`); `tests/prop_device.rs` runs random
//! scripts (also the cargo-fuzz target in `fuzz/`); `benches/verbs.rs` measures.

pub mod admin;
pub mod device;
pub mod dma;
pub mod env;
pub mod eth;
pub mod events;
pub mod irq;
pub mod msix;
pub mod pci;
pub mod stats;

pub mod fault;
pub mod roce;
pub mod verbs;
pub mod wire;

pub use device::{Rnic, RnicConfig};
pub use dma::{Dma, DmaError};
pub use eth::MacAddress;
pub use events::Event;
pub use irq::{InterruptError, InterruptSink, MsiMessage, RecordingSink};
pub use pci::{BarKind, BarRegion, PciFunction};
pub use stats::RnicStats;
