//! One category's analytics for one cycle: inputs in, serialised entries out.
//!
//! This is the one entry point the daemon calls (from the RiskCompute actor);
//! it runs every step of the core in data-flow order and returns the JSON
//! values exactly as the reference would write them to Redis.

use crate::category::Category;
use crate::horde::{HordeModelStats, HordeModelStatus};
use crate::keys::EntryKey;
use crate::records::ParsedReference;
use crate::settings::AnalysisSettings;

/// Everything one category's analytics read.
#[derive(Debug, Clone, Default)]
pub struct CategoryInputs {
    pub reference: ParsedReference,
    pub status: Vec<HordeModelStatus>,
    pub stats: HordeModelStats,
}

/// One finished cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedEntry {
    pub key: EntryKey,
    /// The value, UTF-8 JSON in the reference's shape (what goes into Redis).
    pub json: String,
    /// Models in the entry (`total_models` / `total_models` of the statistics).
    pub models: usize,
    /// Deletion-risk entries: `summary.models_at_risk`; `None` for statistics.
    pub at_risk: Option<usize>,
    /// Deletion-risk entries: `summary.models_critical`; `None` for statistics.
    pub critical: Option<usize>,
}

/// Compute every entry of `category` (five for text, four for image), in the
/// order of [`EntryKey::for_category`]. `computed_at` is the Unix time stamped
/// into entries that carry one.
pub fn compute_category(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> Vec<ComputedEntry> {
    let _ = (category, inputs, settings, computed_at);
    todo!("cycle::compute_category")
}
