//! Runs the host-testable part of the driver's NMR provider
//! (guest-driver/rnic-miniport/src/nmr_binding.rs: a binding's references and detach state).
//! The driver crate builds only for Windows, so its pure module is compiled here and the unit
//! tests inside it run as part of this test binary.

#[path = "../../rnic-miniport/src/nmr_binding.rs"]
mod nmr_binding;

#[test]
fn nmr_binding_module_is_linked() {
    // The real tests live in nmr_binding.rs (`mod tests`); this guards against the include
    // silently compiling to nothing.
    let b = nmr_binding::BindingState::new();
    assert_eq!(b.detach(), nmr_binding::Detach::Now);
}
