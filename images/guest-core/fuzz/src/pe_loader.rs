//! The guest's PE32+ loader against arbitrary files, shared by the cargo-fuzz target
//! (`fuzz_targets/pe_loader.rs`) and the corpus replay test (`tests/fuzz_corpus.rs`,
//! which includes this file with `#[path]`).
//!
//! A driver image is input the guest must survive: a broken or hostile `rnic.sys`
//! must give a `PeError`, never a panic, never an access outside the file or the
//! image buffer, never unbounded work. The harness parses the input, lays out the
//! images that parse into a buffer of exactly `SizeOfImage` bytes, resolves imports
//! through a resolver that knows every name made of letters, digits and `_` (what
//! real exports look like) and refuses the others, and checks: the parsed
//! headers keep the promises `PeInfo` documents (sections and directories inside the
//! image, entry point inside it), the resolver is called at most
//! `MAX_IMPORTS` + 1 times, and every error is one line a user can read.

use guest_core::pe::{PeInfo, MAX_IMAGE_SIZE, MAX_IMPORTS};

/// Where the harness pretends the image is mapped.
const LOAD_BASE: u64 = 0xFFFF_F800_0010_0000;

/// Panics unless `e`'s message is one non-empty line.
fn one_line(e: &dyn core::fmt::Display) {
    let msg = e.to_string();
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "a loader error must be one line: {msg:?}"
    );
}

/// Runs one input; returns how many imports the loader resolved (0 when the image
/// was refused).
pub fn run(data: &[u8]) -> usize {
    let info = match PeInfo::parse(data) {
        Ok(info) => info,
        Err(e) => {
            one_line(&e);
            return 0;
        }
    };
    let size = u64::from(info.size_of_image);
    assert!(size > 0 && info.size_of_image <= MAX_IMAGE_SIZE);
    assert!(info.size_of_headers <= info.size_of_image);
    assert!(
        u64::from(info.entry_rva) < size,
        "entry point outside the image"
    );
    for s in &info.sections {
        assert!(
            u64::from(s.virtual_address) + u64::from(s.virtual_size) <= size,
            "section {s:?} outside the image"
        );
    }
    let mut dest = vec![0u8; info.size_of_image as usize];
    let mut calls = 0usize;
    let mut resolve = |_module: &str, name: &str| {
        calls += 1;
        let known =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        known.then_some(0xFFFF_F800_7000_0000 + 16 * calls as u64)
    };
    let result = info.load(data, &mut dest, LOAD_BASE, &mut resolve);
    assert!(
        calls <= MAX_IMPORTS + 1,
        "the loader called the resolver {calls} times (bound {MAX_IMPORTS})"
    );
    match result {
        Ok(stats) => {
            assert!(stats.imports_resolved <= MAX_IMPORTS);
            stats.imports_resolved
        }
        Err(e) => {
            one_line(&e);
            0
        }
    }
}
