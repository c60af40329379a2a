//! One category's analytics for one cycle: inputs in, serialised entries out.
//!
//! This is the one entry point the daemon calls (from the RiskCompute actor);
//! it runs every step of the core in data-flow order and returns the JSON
//! values exactly as the reference would write them to Redis.
//!
//! Shared work is done once: the Horde index and every distinct name's base
//! name (memoised in [`BaseNames`]), the per-record facts, and the merge
//! without backend variations, which the ungrouped and grouped views share
//! (the grouped view is the ungrouped response, grouped).

use crate::category::Category;
use crate::grouping;
use crate::horde::{BaseNames, HordeModelStats, HordeModelStatus};
use crate::keys::EntryKey;
use crate::merge::{self, HordeData};
use crate::records::{ParsedReference, RawRecord};
use crate::risk::{self, CategoryDeletionRiskResponse, RecordFacts};
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

/// A deletion-risk response as a finished entry; `None` (logged) if it could
/// not be serialised, so that no partial value is ever stored.
fn risk_entry(key: EntryKey, response: &CategoryDeletionRiskResponse) -> Option<ComputedEntry> {
    match serde_json::to_string(response) {
        Ok(json) => Some(ComputedEntry {
            key,
            json,
            models: response.summary.total_models,
            at_risk: Some(response.summary.models_at_risk),
            critical: Some(response.summary.models_critical),
        }),
        Err(e) => {
            log::error!("{key}: cannot serialise the deletion-risk response: {e}; entry skipped");
            None
        }
    }
}

/// The deletion-risk entries of a category: ungrouped, grouped and (text)
/// ungrouped with backend variations, in [`EntryKey::for_category`] order.
pub fn deletion_risk_entries(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
) -> Vec<ComputedEntry> {
    let mut base_names = BaseNames::new();
    let horde = HordeData::new(&inputs.status, &inputs.stats, &mut base_names);
    let records: Vec<&RawRecord> = inputs.reference.records.iter().filter(|r| r.has_usable_name()).collect();
    let facts: Vec<RecordFacts> = records.iter().map(|r| RecordFacts::new(r, category, settings)).collect();
    let names = || records.iter().map(|r| r.name.as_str());

    let mut entries = Vec::with_capacity(3);
    let merged = merge::merge_category(names(), &horde, &mut base_names, false);
    let total = merge::category_total_month(&merged);
    let ungrouped = risk::analyze(category, &facts, &merged, total, settings, false);
    drop(merged);
    entries.extend(risk_entry(EntryKey::risk(category, false, false), &ungrouped));
    let grouped = grouping::apply_text_model_grouping(ungrouped, &mut base_names, settings);
    entries.extend(risk_entry(EntryKey::risk(category, true, false), &grouped));
    drop(grouped);

    if category.is_text() {
        let merged = merge::merge_category(names(), &horde, &mut base_names, true);
        let total = merge::category_total_month(&merged);
        let variations = risk::analyze(category, &facts, &merged, total, settings, true);
        entries.extend(risk_entry(EntryKey::risk(category, false, true), &variations));
    }
    entries
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
    let mut entries = deletion_risk_entries(category, inputs, settings);
    for grouped in [false, true] {
        let (json, models) =
            crate::stats::compute_statistics(category, &inputs.reference, grouped, computed_at);
        entries.push(ComputedEntry {
            key: EntryKey::stats(category, grouped),
            json,
            models,
            at_risk: None,
            critical: None,
        });
    }
    entries
}
