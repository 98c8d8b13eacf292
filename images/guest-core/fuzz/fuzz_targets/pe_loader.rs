//! Fuzz target: bytes → a driver image for the guest's PE32+ loader (see
//! `guest_core_fuzz::pe_loader`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guest_core_fuzz::pe_loader::run(data);
});
