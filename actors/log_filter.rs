//! The log filter, replaceable while the daemon runs (a SIGHUP reload of
//! `log.level`).
//!
//! env_logger fixes its filter when the logger is built; this wraps the logger
//! built by `main.rs` (text or JSON lines) so that the filter sits behind a
//! lock of its own: [`install`] sets the first one, [`set`] replaces it and
//! moves `log::set_max_level` with it (the macros' cheap early check). The
//! filter is `RUST_LOG` when that is set and not empty (it wins, as at start-up),
//! else `log.level`.

use log::{LevelFilter, Log, Metadata, Record};
use std::sync::{OnceLock, RwLock};

struct Reloadable {
    /// Formats and writes; its own filter lets everything through.
    inner: env_logger::Logger,
    filter: RwLock<env_filter::Filter>,
}

impl Log for Reloadable {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.read().map_or(true, |f| f.enabled(metadata))
    }

    fn log(&self, record: &Record<'_>) {
        if self.filter.read().map_or(true, |f| f.matches(record)) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

static LOGGER: OnceLock<&'static Reloadable> = OnceLock::new();

/// `RUST_LOG` when it is set and not empty: it wins over `log.level`.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG").ok().filter(|f| !f.trim().is_empty())
}

/// The filter in effect for `level` (the `log.level` setting).
fn spec(level: &str) -> String {
    rust_log().unwrap_or_else(|| level.to_string())
}

/// Does a non-empty `RUST_LOG` override `log.level`?
pub fn overridden_by_env() -> bool {
    rust_log().is_some()
}

fn build(spec: &str) -> env_filter::Filter {
    env_filter::Builder::new().parse(spec).build()
}

/// Install `builder`'s logger (its format and target) with the filter of
/// `level`; once per process (later calls do nothing).
pub fn install(mut builder: env_logger::Builder, level: &str) {
    let filter = build(&spec(level));
    let max = filter.filter();
    builder.filter_level(LevelFilter::Trace);
    let logger: &'static Reloadable =
        Box::leak(Box::new(Reloadable { inner: builder.build(), filter: RwLock::new(filter) }));
    if LOGGER.set(logger).is_ok() && log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// Replace the filter with the one of `level` (a reload).
pub fn set(level: &str) {
    let Some(logger) = LOGGER.get() else { return };
    let filter = build(&spec(level));
    let max = filter.filter();
    if let Ok(mut current) = logger.filter.write() {
        *current = filter;
    }
    log::set_max_level(max);
}
