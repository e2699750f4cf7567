//! Replays every input the fuzzers kept (`fuzz/corpus/<target>/`) and every past
//! finding (`fuzz/regressions/<target>/`) through the same entry points the fuzz
//! targets call, so `cargo test` holds the fuzzers' properties without a fuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gatehouse::fuzzing::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut total = 0;
    for (name, target) in TARGETS {
        for file in inputs(&root.join(name)) {
            let data = match std::fs::read(&file) {
                Ok(data) => data,
                // A fuzzer running beside the tests replaces files as it minimises.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", file.display());
            total += 1;
        }
    }
    total
}

#[test]
fn every_target_has_a_corpus_and_all_of_it_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, _) in TARGETS {
        let kept = inputs(&root.join(name)).len();
        assert!(kept >= 5, "fuzz/corpus/{name} holds only {kept} inputs");
    }
    assert!(replay("corpus") > 0);
    // Findings are few (or none): they are replayed too, but not counted on.
    replay("regressions");
}
