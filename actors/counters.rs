//! Counters every actor bumps and the status reply shows.
//!
//! Plain atomics behind one `Arc` instead of messages: they are monotonic,
//! read only for display, and must not add round trips to the hot paths.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    pub cycles: AtomicU64,
    pub cycles_failed: AtomicU64,
    pub entries_written: AtomicU64,
    pub fetch_failures: AtomicU64,
    pub redis_errors: AtomicU64,
    pub redis_outages: AtomicU64,
    /// Error replies from a live Redis (OOM, NOPERM, READONLY, …).
    pub redis_refusals: AtomicU64,
    /// Subscriptions lost and made again.
    pub pubsub_resubscribes: AtomicU64,
    pub invalidations: AtomicU64,
    pub admin_commands: AtomicU64,
    pub admin_rejected: AtomicU64,
    pub messages_ignored: AtomicU64,
}

impl Counters {
    pub fn inc(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter by name, for the status reply.
    pub fn to_json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "cycles": g(&self.cycles),
            "cycles_failed": g(&self.cycles_failed),
            "entries_written": g(&self.entries_written),
            "fetch_failures": g(&self.fetch_failures),
            "redis_errors": g(&self.redis_errors),
            "redis_outages": g(&self.redis_outages),
            "redis_refusals": g(&self.redis_refusals),
            "pubsub_resubscribes": g(&self.pubsub_resubscribes),
            "invalidations": g(&self.invalidations),
            "admin_commands": g(&self.admin_commands),
            "admin_rejected": g(&self.admin_rejected),
            "messages_ignored": g(&self.messages_ignored),
        })
    }
}
