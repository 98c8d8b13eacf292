//! The imports the NDK provider adds (`ndis_abi::NDK_PROVIDER_IMPORTS`) are names the real
//! ndis.sys exports, by the import library of Debian's mingw-w64 package (an oracle nobody here
//! wrote). Checked on the list itself, so it holds before and after the driver imports them.

use artifact_check::winexports::{missing_exports, MINGW_LIB_DIR};

#[test]
fn ndk_provider_imports_are_real_ndis_exports() {
    let imports: Vec<(String, String)> = ndis_abi::NDK_PROVIDER_IMPORTS
        .iter()
        .map(|(m, f)| (m.to_string(), f.to_string()))
        .collect();
    let missing = missing_exports(std::path::Path::new(MINGW_LIB_DIR), &imports)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missing.is_empty(),
        "NDK provider imports that Windows' ndis.sys does not export: {missing:?}"
    );
}
