//! Replays the minimised fuzz corpus kept in the repository
//! (`fuzz/corpus-min/<target>/`, refreshed with `scripts/fuzz.sh` and
//! `cargo fuzz cmin`) through the same scripted driver and invariant checks the
//! cargo-fuzz target runs, so every input that once found new coverage stays a
//! regression test of `cargo test` and `scripts/test.sh`.

#[path = "../fuzz/src/script.rs"]
#[allow(dead_code)]
mod script;

#[path = "../fuzz/src/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::path::PathBuf;

/// The corpus files of fuzz target `target`, sorted by name.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus-min")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn mmio_corpus_replays_clean() {
    let files = corpus("mmio");
    assert!(
        files.len() >= 8,
        "the mmio corpus has {} files; restore fuzz/corpus-min/mmio",
        files.len()
    );
    for f in files {
        let bytes = std::fs::read(&f).expect("corpus file");
        // A panic names the input: replay it with `cargo fuzz run mmio <file>`.
        eprintln!("replaying {}", f.display());
        script::run_bytes(&bytes);
    }
}

#[test]
fn wire_corpus_replays_clean() {
    let files = corpus("wire");
    assert!(
        files.len() >= 8,
        "the wire corpus has {} files; restore fuzz/corpus-min/wire",
        files.len()
    );
    let mut frames = 0;
    for f in files {
        let bytes = std::fs::read(&f).expect("corpus file");
        // A panic names the input: replay it with `cargo fuzz run wire <file>`.
        eprintln!("replaying {}", f.display());
        frames += wire::run_bytes(&bytes).frames_out;
    }
    // The inputs reach the transport: the device answered with ACKs, NAKs or
    // READ responses (a harness that only produced dropped frames would not).
    assert!(frames > 0, "no input made the device send a frame");
}
