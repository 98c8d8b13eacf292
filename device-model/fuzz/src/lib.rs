//! Fuzzing support for `rnic-device`: the scripted driver ([`script`]) that the
//! `mmio` fuzz target drives, and the hostile RoCEv2 peer ([`wire`]) of the `wire`
//! target. This crate owns `device-model/fuzz/` only and must
//! not be used by the device itself.

pub mod script;
pub mod wire;
