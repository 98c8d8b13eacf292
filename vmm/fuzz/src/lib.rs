//! Fuzzing support for the monitor: the configuration harness ([`config`]) of the
//! `config` target. This crate owns `vmm/fuzz/` only and must not be used by the
//! monitor.

pub mod config;
