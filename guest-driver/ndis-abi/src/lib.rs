//! Hand-written x64 Windows ABI: the NDIS 6.x / ntoskrnl subset used by `rnic.sys`.
//!
//! The same definitions are compiled into the driver (`x86_64-pc-windows-msvc`, where the default
//! C ABI is already Microsoft x64) and into the guest kernel that hosts it (`x86_64-unknown-none`,
//! where the default is SysV). Every function-pointer type is therefore spelled
//! `extern "win64"` explicitly; never use `"C"` or `"system"` for anything crossing the boundary.
//!
//! Names follow the Windows headers (so that documentation searches work), hence the lints
//! allowed below. Every structure has a test pinning its size and field offsets; the layouts were
//! checked against Microsoft's documentation and against type dumps built from the public symbols
//! of ndis.sys / ntoskrnl.exe (x64).
//!
//! `ndk` holds the NDK provider interface (ndkpi.h), `ndis_ndk` its NDIS side (provider
//! registration, capabilities, NDK OIDs, the enable/disable PnP events), `inet` the socket
//! addresses NDK passes, `nmr` the Network Module Registrar (netio.sys) and the project's own
//! RNIC diagnostics NPI, `link` status indications (link state) and the reset's status codes.
//!
//! This crate holds definitions only. It owns no behaviour: the driver lives in
//! `guest-driver/rnic-miniport`, the NDIS implementation in `images/ndis-guest`.
#![no_std]
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::upper_case_acronyms
)]

pub mod attributes;
pub mod characteristics;
pub mod dma;
pub mod handlers;
pub mod header;
pub mod imports;
pub mod inet;
pub mod interrupt;
pub mod link;
pub mod nbl;
pub mod ndis_ndk;
pub mod ndk;
pub mod netbuf;
pub mod nmr;
pub mod oid;
pub mod pause;
pub mod resources;
pub mod status;
pub mod types;
pub mod wdm;

pub use attributes::*;
pub use characteristics::*;
pub use dma::*;
pub use handlers::*;
pub use header::*;
pub use imports::*;
pub use inet::*;
pub use interrupt::*;
pub use link::*;
pub use nbl::*;
pub use ndis_ndk::*;
pub use ndk::*;
pub use netbuf::*;
pub use nmr::*;
pub use oid::*;
pub use pause::*;
pub use resources::*;
pub use status::*;
pub use types::*;
pub use wdm::*;
