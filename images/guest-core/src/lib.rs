//! # guest-core: host-testable logic of the ndis-guest kernel
//!
//! Everything here is pure computation over byte slices and plain values, so it runs both in
//! the bare-metal guest (`images/ndis-guest`, `x86_64-unknown-none`) and in host unit tests.
//! Hardware access, interrupts and the NDIS personality stay in the kernel crate.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod attributes;
pub mod exports;
pub mod fmt;
pub mod heap;
pub mod irq;
pub mod lowres;
pub mod memmap;
pub mod ndk;
pub mod nmr;
pub mod oid;
pub mod pe;
pub mod plan;
pub mod reset;
