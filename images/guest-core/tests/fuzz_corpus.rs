//! Replays the minimised fuzz corpus of the PE32+ loader kept in the repository
//! (`fuzz/corpus-min/pe_loader/`, grown with `scripts/fuzz.sh pe_loader SECONDS`)
//! through the same harness the cargo-fuzz target runs, so every input that once
//! found new coverage stays a regression test of `cargo test` and `scripts/test.sh`.

#[path = "../fuzz/src/pe_loader.rs"]
mod pe_loader;

use std::path::PathBuf;

#[test]
fn pe_loader_corpus_replays_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus-min/pe_loader");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "the pe_loader corpus has {} files; restore fuzz/corpus-min/pe_loader",
        files.len()
    );
    let mut loaded = 0;
    for f in &files {
        // A panic names the input: replay it with `cargo fuzz run pe_loader <file>`.
        eprintln!("replaying {}", f.display());
        if pe_loader::run(&std::fs::read(f).expect("corpus file")) > 0 {
            loaded += 1;
        }
    }
    // The real rnic.sys is in the corpus: at least it loads with its imports.
    assert!(loaded > 0, "no corpus image loaded");
}
