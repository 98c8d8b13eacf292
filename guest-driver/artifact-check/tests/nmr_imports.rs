//! The NMR functions `rnic.sys` imports (`ndis_abi::NMR_PROVIDER_IMPORTS`) and the client-side
//! ones the guest implements (`ndis_abi::NMR_CLIENT_FUNCTIONS`) are names the real netio.sys
//! exports, by the import library `libnetio.a` of Debian's mingw-w64 package (an oracle nobody
//! here wrote). Checked on the lists themselves, independent of a built image.

use artifact_check::winexports::{missing_exports, MINGW_LIB_DIR};

#[test]
fn nmr_functions_are_real_netio_exports() {
    let names: Vec<(String, String)> = ndis_abi::NMR_PROVIDER_IMPORTS
        .iter()
        .chain(ndis_abi::NMR_CLIENT_FUNCTIONS)
        .map(|(m, f)| (m.to_string(), f.to_string()))
        .collect();
    assert_eq!(
        names.len(),
        9,
        "the four provider and five client functions"
    );
    let missing = missing_exports(std::path::Path::new(MINGW_LIB_DIR), &names)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missing.is_empty(),
        "NMR functions that Windows' netio.sys does not export: {missing:?}"
    );
}
