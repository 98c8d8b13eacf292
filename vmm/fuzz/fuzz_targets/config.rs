//! Fuzz target: bytes → fault plans, `--rnic` values, `--config` files and command
//! lines for the monitor's parsers (see `rnic_vmm_fuzz::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rnic_vmm_fuzz::config::run(data);
});
