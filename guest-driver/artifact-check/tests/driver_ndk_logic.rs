//! Runs the host-testable part of the driver's NDK provider
//! (guest-driver/rnic-miniport/src/ndk_logic.rs: adapter info and capabilities from
//! QUERY_CAPS, MDL chain to page list, NDK flag mapping, CQE to NDK_RESULT_EX, verbs operand
//! records). The driver crate builds only for Windows, so its pure module is compiled here and
//! the unit tests inside it run as part of this test binary.

#[allow(dead_code)]
#[path = "../../rnic-miniport/src/ndk_logic.rs"]
mod ndk_logic;

#[test]
fn ndk_logic_module_is_linked() {
    // The real tests live in ndk_logic.rs (`mod tests`); this guards against the include
    // silently compiling to nothing.
    assert_eq!(ndk_logic::PAGE_SIZE, 4096);
    assert_eq!(ndk_logic::VENDOR_ID, 0x7E57);
}
