//! One category's analytics for one cycle: inputs in, serialised entries out.
//!
//! Plain functions over plain data, in data-flow order; the daemon's
//! RiskCompute actor calls them (and decides which run on which thread), the
//! tests and the benchmark call them directly. [`compute_category`] runs
//! every step, one after the other; the steps it is made of are public so
//! the shell can run them in parallel:
//!
//! ```text
//! compute_statistics_entries(reference)                  -> the 2 statistics entries
//! RiskBasis::new(inputs) ─┬─ ungrouped_and_grouped(basis) -> 2 deletion-risk entries
//!                         └─ variations_entry(basis)      -> text: 1 entry with backend variations
//! ```
//!
//! Shared work is done once: the Horde index and every distinct name's base
//! name (memoised in [`BaseNames`]), the per-record facts ([`RiskBasis`]), and
//! the merge without backend variations, which the ungrouped and grouped
//! views share (the grouped view is the ungrouped response, grouped). An
//! image category's grouped entry is its ungrouped one (grouping only
//! changes text), so both keys share one JSON buffer.
//!
//! Every deletion-risk view is written model by model into a buffer sized up
//! front (no vector of per-model infos is kept) and handed to the cache as is
//! ([`EntryJson`]): no copy of a finished entry is made.

use crate::analytics::grouping;
use crate::analytics::merge::{self, HordeData, MergedModel};
use crate::analytics::risk::{self, CategoryDeletionRiskSummary, RecordFacts};
use crate::analytics::stats;
use crate::category::Category;
use crate::input::horde::{BaseNames, HordeModelStats, HordeModelStatus};
use crate::input::reference::{ParsedReference, RawRecord};
use crate::keys::EntryKey;
use crate::output::risk::json_capacity;
use crate::settings::AnalysisSettings;
use std::sync::Arc;

/// Everything one category's analytics read.
#[derive(Debug, Clone, Default)]
pub struct CategoryInputs {
    pub reference: ParsedReference,
    pub status: Vec<HordeModelStatus>,
    pub stats: HordeModelStats,
}

/// A finished entry's value: UTF-8 JSON in the reference's shape (what goes
/// into Redis). Shared by reference count: the cache's memory copy, the Redis
/// write and `once --dump` hold the buffer it was written into, never a copy
/// (at x100 an entry is tens of MB).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EntryJson(Arc<String>);

impl EntryJson {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for EntryJson {
    fn from(json: String) -> Self {
        EntryJson(Arc::new(json))
    }
}

impl std::ops::Deref for EntryJson {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for EntryJson {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

/// The bytes, for owners that hold an entry without copying it (the read
/// API's bodies share the cache's buffer).
impl AsRef<[u8]> for EntryJson {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for EntryJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One finished cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedEntry {
    pub key: EntryKey,
    /// The value, shared (see [`EntryJson`]).
    pub json: EntryJson,
    /// Models in the entry (`total_models` / `total_models` of the statistics).
    pub models: usize,
    /// Deletion-risk entries: `summary.models_at_risk`; `None` for statistics.
    pub at_risk: Option<usize>,
    /// Deletion-risk entries: `summary.models_critical`; `None` for statistics.
    pub critical: Option<usize>,
}

/// A deletion-risk view's JSON as an entry (the counts from its summary).
fn risk_entry(key: EntryKey, json: String, summary: &CategoryDeletionRiskSummary) -> ComputedEntry {
    ComputedEntry {
        key,
        json: EntryJson::from(json),
        models: summary.total_models,
        at_risk: Some(summary.models_at_risk),
        critical: Some(summary.models_critical),
    }
}

/// What the deletion-risk views of a category share: the records with a
/// usable name, their facts (aligned) and the Horde index.
pub struct RiskBasis<'i> {
    category: Category,
    records: Vec<RawRecord<'i>>,
    facts: Vec<RecordFacts>,
    horde: HordeData<'i>,
}

impl<'i> RiskBasis<'i> {
    /// Index the Horde data (base names go to `base_names`) and read every
    /// record's facts.
    pub fn new(
        category: Category,
        inputs: &'i CategoryInputs,
        settings: &AnalysisSettings,
        base_names: &mut BaseNames,
    ) -> Self {
        let horde = HordeData::new(&inputs.status, &inputs.stats, base_names);
        let records: Vec<RawRecord<'i>> =
            inputs.reference.records().filter(|r| r.has_usable_name()).collect();
        let facts: Vec<RecordFacts> =
            records.iter().map(|r| RecordFacts::new(r, category, settings)).collect();
        RiskBasis { category, records, facts, horde }
    }

    fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.records.iter().map(|r| r.name)
    }
}

/// Text: the entry with backend variations (its own merge, no base names);
/// `None` for other categories.
pub fn variations_entry(basis: &RiskBasis<'_>, settings: &AnalysisSettings) -> Option<ComputedEntry> {
    let category = basis.category;
    if !category.is_text() {
        return None;
    }
    let merged = merge::merge_category(basis.names(), &basis.horde, &mut BaseNames::new(), true);
    let total = merge::category_total_month(&merged);
    let (facts, merged) = aligned(&basis.facts, &merged);
    let order = risk::ranking(merged);
    let mut json = String::with_capacity(json_capacity(facts, merged, true));
    let summary = risk::write_analysis(category, facts, merged, &order, total, settings, true, &mut json);
    Some(risk_entry(EntryKey::risk(category, false, true), json, &summary))
}

/// The facts and the merged data cut to the same length (they are made from
/// the same records, so this only guards the indexing).
fn aligned<'f, 'm>(
    facts: &'f [RecordFacts],
    merged: &'m [MergedModel],
) -> (&'f [RecordFacts], &'m [MergedModel]) {
    let n = facts.len().min(merged.len());
    (&facts[..n], &merged[..n])
}

/// The ungrouped and grouped entries (the image category's grouped entry
/// shares the ungrouped JSON). `base_names` is the one the basis was made
/// with (the grouping looks the same names up again).
pub fn ungrouped_and_grouped(
    basis: &RiskBasis<'_>,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
) -> [ComputedEntry; 2] {
    let category = basis.category;
    let merged = merge::merge_category(basis.names(), &basis.horde, base_names, false);
    let total = merge::category_total_month(&merged);
    let (facts, merged) = aligned(&basis.facts, &merged);
    let order = risk::ranking(merged);
    let mut json = String::with_capacity(json_capacity(facts, merged, false));
    let summary = risk::write_analysis(category, facts, merged, &order, total, settings, false, &mut json);
    let first = risk_entry(EntryKey::risk(category, false, false), json, &summary);
    if !category.is_text() {
        return [first.clone(), ComputedEntry { key: EntryKey::risk(category, true, false), ..first }];
    }
    // A first estimate: there are no more groups than ungrouped models.
    let mut json = String::with_capacity(first.json.len());
    let summary =
        grouping::write_grouped(category, facts, merged, &order, total, base_names, settings, &mut json);
    [first, risk_entry(EntryKey::risk(category, true, false), json, &summary)]
}

/// Only the statistics entries of `category` (both groupings, in the order
/// of [`EntryKey::for_category`]): they read the model reference alone, so
/// they can be made while the Horde's data is unavailable.
pub fn compute_statistics_entries(
    category: Category,
    reference: &ParsedReference,
    computed_at: i64,
) -> Vec<ComputedEntry> {
    [false, true]
        .into_iter()
        .map(|grouped| {
            let (json, models) = stats::compute_statistics(category, reference, grouped, computed_at);
            let key = EntryKey::stats(category, grouped);
            ComputedEntry { key, json: EntryJson::from(json), models, at_risk: None, critical: None }
        })
        .collect()
}

/// Compute every entry of `category` (five for text, four for image), in the
/// order of [`EntryKey::for_category`], one step after the other.
/// `computed_at` is the Unix time stamped into entries that carry one.
pub fn compute_category(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> Vec<ComputedEntry> {
    let mut base_names = BaseNames::new();
    let basis = RiskBasis::new(category, inputs, settings, &mut base_names);
    let mut entries = Vec::with_capacity(5);
    entries.extend(ungrouped_and_grouped(&basis, &mut base_names, settings));
    entries.extend(variations_entry(&basis, settings));
    entries.extend(compute_statistics_entries(category, &inputs.reference, computed_at));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::horde::{parse_stats, parse_status};
    use crate::input::reference::parse_reference;
    use serde_json::Value;

    fn text_inputs() -> CategoryInputs {
        CategoryInputs {
            reference: parse_reference(
                br#"{
                  "Org/Foo-7B": {"name": "Org/Foo-7B", "parameters": 7000000000, "description": "d"},
                  "Org/Foo-13B": {"name": "Org/Foo-13B", "parameters": 13000000000},
                  "Org/Bar-7B": {"name": "Org/Bar-7B", "parameters": 7000000000, "baseline": "b"},
                  "Nameless": {"parameters": 1}
                }"#,
            )
            .unwrap(),
            status: parse_status(
                br#"[{"performance": 2.0, "queued": 1.5, "jobs": 0.25, "eta": 3, "type": "text",
                      "name": "koboldcpp/Foo-7B", "count": 2}]"#,
            )
            .unwrap(),
            stats: parse_stats(br#"{"day": {"koboldcpp/Foo-7B": 5}, "month": {"koboldcpp/Foo-7B": 50, "Org/Bar-7B": 5}, "total": {}}"#)
                .unwrap(),
        }
    }

    #[test]
    fn computes_the_five_text_entries_in_order() {
        let entries =
            compute_category(Category::TextGeneration, &text_inputs(), &AnalysisSettings::default(), 42);
        let keys: Vec<EntryKey> = entries.iter().map(|e| e.key).collect();
        assert_eq!(keys, EntryKey::for_category(Category::TextGeneration));
        let summary = |i: usize| {
            let v: Value = serde_json::from_str(&entries[i].json).unwrap();
            (
                v["total_count"].as_u64(),
                v["returned_count"].as_u64(),
                v["summary"]["models_critical"].as_u64(),
            )
        };
        // The nameless record is skipped; Foo-7B and Foo-13B share a base name.
        // Values of the reference (oracle.py) for the same dataset.
        assert_eq!(summary(0), (Some(3), Some(3), Some(1)));
        assert_eq!(summary(1), (Some(3), Some(2), Some(1)));
        assert_eq!(summary(2), (Some(3), Some(3), Some(2)));
        assert_eq!((entries[0].models, entries[0].at_risk, entries[0].critical), (3, Some(3), Some(1)));
        assert_eq!((entries[1].models, entries[1].critical), (2, Some(1)));
        assert_eq!(entries[3].at_risk, None);
        let first: Value = serde_json::from_str(&entries[0].json).unwrap();
        // Both Foo sizes aggregate the base-name group (50), Bar has its own 5.
        let months: Vec<(&str, i64)> = first["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m["usage_month"].as_i64().unwrap()))
            .collect();
        assert_eq!(months, [("Org/Foo-7B", 50), ("Org/Foo-13B", 50), ("Org/Bar-7B", 5)]);
        assert_eq!(first["category_total_month_usage"], 105);
        let variations: Value = serde_json::from_str(&entries[2].json).unwrap();
        assert_eq!(variations["models"][0]["backend_variations"][0]["variant_name"], "koboldcpp/Foo-7B");
        // Other sizes are not aggregated with backend variations.
        assert_eq!(variations["models"][2]["name"], "Org/Foo-13B");
        assert_eq!(variations["models"][2]["usage_month"], 0);
        assert_eq!(variations["category_total_month_usage"], 55);
    }

    #[test]
    fn other_categories_pass_through_the_grouping() {
        // The image category's grouped entry is its ungrouped one, byte for byte.
        let mut inputs = text_inputs();
        inputs.status = Vec::new();
        let entries = compute_category(Category::ImageGeneration, &inputs, &AnalysisSettings::default(), 42);
        let keys: Vec<EntryKey> = entries.iter().map(|e| e.key).collect();
        assert_eq!(keys, EntryKey::for_category(Category::ImageGeneration));
        assert_eq!(entries[0].json, entries[1].json);
        let grouped: Value = serde_json::from_str(&entries[1].json).unwrap();
        let names: Vec<&str> =
            grouped["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Org/Foo-7B", "Org/Foo-13B", "Org/Bar-7B"]); // not renamed to base names
    }

    #[test]
    fn the_steps_make_the_entries_of_compute_category() {
        // What the shell runs in parallel is what the tests run in sequence.
        let (settings, inputs) = (AnalysisSettings::default(), text_inputs());
        let category = Category::TextGeneration;
        let mut base_names = BaseNames::new();
        let basis = RiskBasis::new(category, &inputs, &settings, &mut base_names);
        let variations = variations_entry(&basis, &settings);
        let views = ungrouped_and_grouped(&basis, &mut base_names, &settings);
        let statistics = compute_statistics_entries(category, &inputs.reference, 42);
        let steps: Vec<ComputedEntry> = views.into_iter().chain(variations).chain(statistics).collect();
        assert_eq!(steps, compute_category(category, &inputs, &settings, 42));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let reference = parse_reference(
            br#"{
              "": {"name": "", "description": 3, "baseline": [], "nsfw": "perhaps", "size_on_disk_bytes": -1,
                   "config": {"download": [null, {"file_url": 5}, {"file_url": "http://[::1"}, {"file_url": "\u0000"}]}},
              "Alpha": {"name": "Alpha", "config": "none", "size_on_disk_bytes": 1e300},
              "alpha": {"name": "alpha", "config": {"download": {"a": 1}}, "size_on_disk_bytes": "9999999999999999999999"},
              "koboldcpp/aphrodite/x": {"name": "koboldcpp/aphrodite/x"},
              "///": {"name": "///"}
            }"#,
        )
        .unwrap();
        let status = parse_status(
            br#"[{"name": "alpha", "count": -3, "queued": "NaN", "jobs": 1e308, "performance": null},
                 {"name": "ALPHA", "count": 9223372036854775807}, {"name": "///", "count": 1}]"#,
        )
        .unwrap();
        let stats = parse_stats(
            br#"{"day": {"alpha": -5, "Alpha": 9223372036854775807, "///": 1},
                 "month": {"alpha": 9223372036854775807, "ALPHA": 9223372036854775807, "": 3},
                 "total": {"x": 18446744073709551615}}"#,
        )
        .unwrap();
        let inputs = CategoryInputs { reference, status, stats };
        for category in Category::ALL {
            let entries = compute_category(category, &inputs, &AnalysisSettings::default(), 0);
            for entry in entries.iter().filter(|e| e.at_risk.is_some()) {
                let value: Value = serde_json::from_str(&entry.json).unwrap();
                assert_eq!(value["total_count"], 5, "{}", entry.key);
            }
        }
    }
}
