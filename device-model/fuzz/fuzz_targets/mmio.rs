//! Fuzz target: bytes → a script of configuration/BAR0/BAR2 accesses, admin
//! commands, doorbells and guest memory contents, run against an `Rnic` with its
//! invariants checked after every step (see `rnic_device_fuzz::script`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rnic_device_fuzz::script::run_bytes(data);
});
