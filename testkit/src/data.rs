//! The recorded tweets of `../shared/data/tweets` (real API payloads, read in place, never
//! copied into the repository). Found through `$TWEETS_DATA_DIR`, else next to the workspace;
//! a clone without them skips the tests that need them, visibly.

use std::path::PathBuf;

use crate::{skip, workspace_root};

/// The recorded-tweets folder, if present.
pub fn tweets_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TWEETS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root()
                .join("..")
                .join("shared")
                .join("data")
                .join("tweets")
        });
    dir.join("v1_statuses.jsonl").is_file().then_some(dir)
}

/// The folder, or `None` after printing SKIPPED for `test`.
pub fn tweets_dir_or_skip(test: &str) -> Option<PathBuf> {
    let dir = tweets_dir();
    if dir.is_none() {
        skip(
            test,
            "the recorded tweets (../shared/data/tweets, or $TWEETS_DATA_DIR) are not here",
        );
    }
    dir
}

/// The lines of one file of the folder (each one recorded JSON value), as raw text.
pub fn lines(dir: &std::path::Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}
