//! Checks the real, built driver image. Fails (never skips) when it is missing.
//!
//! The image is `$RNIC_ARTIFACT_DIR/rnic.sys`, default `<workspace>/target/images/rnic.sys`
//! (written by scripts/build-driver.sh, which scripts/build.sh runs).

use std::path::PathBuf;

use artifact_check::check_driver_image;

fn artifact_path() -> PathBuf {
    let dir = match std::env::var_os("RNIC_ARTIFACT_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/images"),
    };
    dir.join("rnic.sys")
}

fn read_artifact() -> Vec<u8> {
    let path = artifact_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "driver image {} is missing ({e}): run scripts/build.sh first \
             (or scripts/build-driver.sh; set RNIC_ARTIFACT_DIR to look elsewhere)",
            path.display()
        )
    })
}

#[test]
fn real_rnic_sys_is_a_valid_driver_image() {
    let report = check_driver_image(&read_artifact())
        .unwrap_or_else(|e| panic!("{}: {e}", artifact_path().display()));
    assert_eq!(report.entry_rva, report.driver_entry_rva);
    assert!(report.sections.iter().any(|s| s == ".text"), "{report}");
}

#[test]
fn real_rnic_sys_imports_exactly_the_skeleton_list() {
    let report = check_driver_image(&read_artifact())
        .unwrap_or_else(|e| panic!("{}: {e}", artifact_path().display()));
    let mut expected: Vec<(String, String)> = ndis_abi::SKELETON_IMPORTS
        .iter()
        .map(|(m, f)| (m.to_string(), f.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        report.import_pairs(),
        expected,
        "rnic.sys imports differ from ndis_abi::SKELETON_IMPORTS; update one or the other \
         (the guest must implement every import)"
    );
}

/// Every import of rnic.sys is a name the real Windows module exports, by the import
/// libraries of Debian's mingw-w64 package (an oracle nobody here wrote).
#[test]
fn real_rnic_sys_imports_only_names_windows_exports() {
    use artifact_check::winexports::{missing_exports, MINGW_LIB_DIR};
    let report = check_driver_image(&read_artifact())
        .unwrap_or_else(|e| panic!("{}: {e}", artifact_path().display()));
    let dir = std::path::Path::new(MINGW_LIB_DIR);
    let missing = missing_exports(dir, &report.import_pairs()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missing.is_empty(),
        "rnic.sys imports names Windows does not export: {missing:?}"
    );
    // The oracle itself: a real export is found, a renamed one is not.
    let probe = [
        (
            "ndis.sys".to_string(),
            "NdisMRegisterInterruptEx".to_string(),
        ),
        ("NTOSKRNL.EXE".to_string(), "DbgPrint".to_string()),
        (
            "ndis.sys".to_string(),
            "NdisMRegisterInterruptXx".to_string(),
        ),
    ];
    assert_eq!(
        missing_exports(dir, &probe).unwrap_or_else(|e| panic!("{e}")),
        vec![probe[2].clone()]
    );
}
