//! Fuzzing support for `guest-core`: the PE32+ loader harness ([`pe_loader`]) of the
//! `pe_loader` target. This crate owns `images/guest-core/fuzz/` only and must not be
//! used by the guest.

pub mod pe_loader;
