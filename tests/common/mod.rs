//! Shared helpers of the integration tests: where the conformance corpus is,
//! and the parity rules of `../shared/tools/compare.py`.
#![allow(dead_code)]

pub mod compare;

use std::path::PathBuf;

/// The small dataset shipped in `examples/data` (horde/ and model_reference/,
/// no expected answers): what tests that need *a* dataset, not the reference's
/// answers, run on, so they never depend on `../shared`.
pub fn example_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// The conformance corpus: `$HORDE_CONFORMANCE_DIR`, else `../shared/conformance`
/// beside the project. When it is missing the test fails, saying where to get
/// it — unless the user opted out with `HORDE_SKIP_CORPUS=1`: then `None`
/// (the caller skips) and the number of skipped tests is printed at exit.
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
    missing(
        "HORDE_SKIP_CORPUS",
        &format!(
            "the conformance corpus is missing: no directory {} (it is the project's shared/conformance: \
             check shared/ out beside this repository as ../shared, or set HORDE_CONFORMANCE_DIR to the \
             directory holding seed*/ and vectors/)",
            dir.display()
        ),
    );
    None
}

/// The reference's Python (`$HORDE_REFERENCE_PYTHON`, else the oracle's venv
/// `~/.cache/horde-reference-oracle/bin/python`) and the shared tools beside
/// the corpus. Missing: the test fails, unless `HORDE_SKIP_REFERENCE=1`.
pub fn reference_python(corpus: &std::path::Path) -> Option<(PathBuf, PathBuf)> {
    let python = match std::env::var_os("HORDE_REFERENCE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/horde-reference-oracle/bin/python"),
    };
    let tools = corpus.join("../tools");
    if python.is_file() && tools.join("reference_read.py").is_file() {
        return Some((python, tools));
    }
    missing(
        "HORDE_SKIP_REFERENCE",
        &format!(
            "the reference's Python is missing: {} (made by ../shared/tools/oracle.sh on its first run; \
             or set HORDE_REFERENCE_PYTHON to a python with horde-model-reference installed) or {}",
            python.display(),
            tools.join("reference_read.py").display()
        ),
    );
    None
}

/// Fail the test with `what`, unless `$opt_out` is `1`: then count the skip
/// and return (the caller skips). The count is printed once, at exit.
fn missing(opt_out: &str, what: &str) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SKIPPED: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn report() {
        let n = SKIPPED.load(Ordering::SeqCst);
        let exe = std::env::args().next().unwrap_or_default();
        // Straight to the process's stderr: libtest captures only print macros.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {n} test(s) of {exe} (opted out of what they need)");
    }
    if std::env::var(opt_out).as_deref() != Ok("1") {
        panic!("{what}. To skip the tests that need it instead, set {opt_out}=1.");
    }
    if SKIPPED.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: `report` is a plain function that only reads an atomic and
        // writes to stderr; atexit only stores its address.
        unsafe {
            libc::atexit(report);
        }
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED ({opt_out}=1): {what}");
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
pub mod http;
pub mod proxy;
pub mod redis_server;
