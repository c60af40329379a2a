//! Each category's generation: bumped by an invalidation (or `clear`), read
//! by the cycle and the cache to drop work begun before it. Shared by every
//! actor through [`Metrics::generations`](crate::metrics::Metrics) (the one
//! `Arc` they all hold), though it is state, not a metric.

use horde_hydrator::category::Category;
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
