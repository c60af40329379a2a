//! Counters every actor bumps and the status reply shows.
//!
//! Plain atomics behind one `Arc` instead of messages: they are monotonic,
//! read only for display, and must not add round trips to the hot paths.
//!
//! Also each category's generation ([`Generations`]): bumped by an
//! invalidation (or `clear`), read by the cycle and the cache to drop work
//! begun before it.

use horde_hydrator::category::Category;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// Each category's generation: an invalidation bumps it. A cycle notes the
/// generation when it starts a category; a fetch result or a store from an
/// older generation is dropped, so entries invalidated while a cycle was
/// fetching are never re-filled from what it fetched before.
#[derive(Debug, Default)]
pub struct Generations {
    image: AtomicU64,
    text: AtomicU64,
}

impl Generations {
    fn slot(&self, category: Category) -> &AtomicU64 {
        match category {
            Category::ImageGeneration => &self.image,
            Category::TextGeneration => &self.text,
        }
    }

    /// The category's current generation.
    pub fn current(&self, category: Category) -> u64 {
        self.slot(category).load(Ordering::SeqCst)
    }

    /// A new generation (an invalidation); returns it.
    pub fn bump(&self, category: Category) -> u64 {
        self.slot(category).fetch_add(1, Ordering::SeqCst) + 1
    }
}

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
    /// Not a counter of events: the categories' generations (see [`Generations`]).
    pub generations: Generations,
    /// Entries whose TTL was re-armed in Redis while their sources failed.
    pub stale_rearms: AtomicU64,
    /// Entries restored in Redis after a DEL that came after a re-hydration.
    pub late_deletes_repaired: AtomicU64,
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
            "stale_rearms": g(&self.stale_rearms),
            "late_deletes_repaired": g(&self.late_deletes_repaired),
        })
    }
}
