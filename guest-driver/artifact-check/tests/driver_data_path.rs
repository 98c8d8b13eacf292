//! Runs the host-testable part of the driver's pause/restart state machine
//! (guest-driver/rnic-miniport/src/data_path.rs: Running/Pausing/Paused and the NBLs
//! outstanding, which decide when MiniportPause pends and who calls NdisMPauseComplete).
//! The driver crate builds only for Windows, so its pure module is compiled here and the unit
//! tests inside it run as part of this test binary.

#[path = "../../rnic-miniport/src/data_path.rs"]
mod data_path;

#[test]
fn data_path_module_is_linked() {
    // The real tests live in data_path.rs (`mod tests`); this guards against the include
    // silently compiling to nothing.
    let d = data_path::DataPath::new();
    assert!(d.restart());
    assert_eq!(d.pause(), data_path::Pause::Now);
}
