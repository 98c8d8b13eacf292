//! Fuzz target: bytes → frames from a hostile RoCEv2 peer (and the device's own
//! work and timers around them) against an `Rnic` with a connected RC QP (see
//! `rnic_device_fuzz::wire`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rnic_device_fuzz::wire::run_bytes(data);
});
