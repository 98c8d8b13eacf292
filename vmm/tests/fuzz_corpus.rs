//! Replays the minimised fuzz corpus of the configuration parsers kept in the
//! repository (`fuzz/corpus-min/config/`, grown with `scripts/fuzz.sh config
//! SECONDS`) through the same harness the cargo-fuzz target runs, so every input
//! that once found new coverage stays a regression test of `cargo test` and
//! `scripts/test.sh`.

#[path = "../fuzz/src/config.rs"]
mod config;

use std::path::PathBuf;

#[test]
fn config_corpus_replays_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus-min/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "the config corpus has {} files; restore fuzz/corpus-min/config",
        files.len()
    );
    for f in &files {
        // A panic names the input: replay it with `cargo fuzz run config <file>`.
        eprintln!("replaying {}", f.display());
        config::run(&std::fs::read(f).expect("corpus file"));
    }
}
