//! Boot tests of the guest's NDK hosting and its NDK contract verifier: each verifier rule's
//! self test (a misbehaving provider played by the guest) must be caught and named, and the
//! NDK consumer suite runs against the real rnic.sys.

use guest_boot_tests::{boot_guest, setup};

/// The MDL rule: the guest's MDLs carry an unmapped alias virtual address, so a provider
/// that dereferences it faults and the verifier names the rule (status 1, not the generic
/// exception status 4).
#[test]
fn ndk_selftest_mdl_va_dereference_is_named() {
    let Some(a) = setup() else { return };
    let out = boot_guest(&a, &["--cmdline", "guest.selftest=ndk-mdl-va"]);
    out.assert_in_order(&[
        "guest: selftest ndk-mdl-va: 1 MDL(s) for 8292 bytes",
        "ndk: contract violation: NDK MDL rule: the provider dereferenced an MDL's virtual address",
        "verdict: FAIL (NDK MDL rule",
    ]);
    assert_eq!(out.status, Some(1), "{}\n{}", out.serial, out.stderr);
    assert!(!out.serial.contains("ndis: DriverEntry"));
}
