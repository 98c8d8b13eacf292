//! The names the real Windows kernel modules export, read from an oracle nobody here wrote:
//! the import libraries of Debian's `mingw-w64-x86-64-dev` package
//! (`/usr/x86_64-w64-mingw32/lib/lib{ndis,ntoskrnl,netio,hal}.a`, installed by
//! `scripts/setup-packages.sh`). An import of `rnic.sys` that is not among them would fail to
//! load on Windows even though our guest provides it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use goblin::archive::Archive;

/// Where Debian's mingw-w64 package puts its x86-64 import libraries.
pub const MINGW_LIB_DIR: &str = "/usr/x86_64-w64-mingw32/lib";

/// Why the export list of a module could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportListError {
    /// The module is not one a kernel driver imports from.
    #[error("no import library is known for module {0} (known: ndis.sys, ntoskrnl.exe, netio.sys, hal.dll)")]
    UnknownModule(String),
    /// The import library is missing or unreadable.
    #[error("cannot read {path}: {source} (install Debian's mingw-w64-x86-64-dev; scripts/setup-packages.sh does)")]
    Read {
        /// The library file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an `ar` archive goblin can read.
    #[error("{path} is not a readable import library: {source}")]
    Parse {
        /// The library file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: goblin::error::Error,
    },
}

/// The import library of a kernel module (case-insensitive module name).
pub fn import_library(dir: &Path, module: &str) -> Result<PathBuf, ExportListError> {
    let base = match module.to_ascii_lowercase().as_str() {
        "ndis.sys" => "libndis.a",
        "ntoskrnl.exe" => "libntoskrnl.a",
        "netio.sys" => "libnetio.a",
        "hal.dll" => "libhal.a",
        _ => return Err(ExportListError::UnknownModule(module.to_string())),
    };
    Ok(dir.join(base))
}

/// The function names an import library's symbol index lists (the `__imp_` aliases are
/// folded into their plain names).
pub fn exported_names(library: &Path) -> Result<BTreeSet<String>, ExportListError> {
    let bytes = std::fs::read(library).map_err(|source| ExportListError::Read {
        path: library.to_path_buf(),
        source,
    })?;
    let archive = Archive::parse(&bytes).map_err(|source| ExportListError::Parse {
        path: library.to_path_buf(),
        source,
    })?;
    Ok(archive
        .summarize()
        .into_iter()
        .flat_map(|(_, _, symbols)| symbols)
        .map(|s| s.strip_prefix("__imp_").unwrap_or(s).to_string())
        .collect())
}

/// The imports (`(module, function)`) that the real module does not export, in order.
pub fn missing_exports(
    dir: &Path,
    imports: &[(String, String)],
) -> Result<Vec<(String, String)>, ExportListError> {
    let mut missing = Vec::new();
    let mut cache: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (module, function) in imports {
        let key = module.to_ascii_lowercase();
        let names = match cache.iter().position(|(m, _)| *m == key) {
            Some(i) => &cache[i].1,
            None => {
                let names = exported_names(&import_library(dir, module)?)?;
                cache.push((key, names));
                &cache.last().expect("just pushed").1
            }
        };
        if !names.contains(function) {
            missing.push((module.clone(), function.clone()));
        }
    }
    Ok(missing)
}
