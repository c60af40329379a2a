//! Shared helpers of the integration tests: where the conformance corpus is,
//! and the parity rules of `../shared/tools/compare.py`.
#![allow(dead_code)]

pub mod compare;

use std::path::PathBuf;

/// The conformance corpus: `$HORDE_CONFORMANCE_DIR`, else `../shared/conformance`
/// beside the project. When it is missing, a test under CI (`CI=true`) fails;
/// elsewhere it says so on stderr and the caller skips.
pub fn conformance_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HORDE_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"),
    };
    // Absolute, because tests hand its paths to the daemon as file:// URLs,
    // and the daemon resolves relative ones against its config file.
    if let Ok(dir) = dir.canonicalize() {
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let msg = format!(
        "conformance corpus not found at {} (set HORDE_CONFORMANCE_DIR to the directory holding seed*/ and vectors/)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Every dataset (a directory with `expected/`) under the corpus, sorted.
pub fn datasets(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected").is_dir())
        .collect();
    out.sort();
    out
}
pub mod daemon;
pub mod horde_server;
pub mod proxy;
pub mod redis_server;
