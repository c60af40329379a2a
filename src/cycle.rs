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
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Shared: the cache's memory copy and the Redis write need no copies.
    pub json: Arc<str>,
    /// Models in the entry (`total_models` / `total_models` of the statistics).
    pub models: usize,
    /// Deletion-risk entries: `summary.models_at_risk`; `None` for statistics.
    pub at_risk: Option<usize>,
    /// Deletion-risk entries: `summary.models_critical`; `None` for statistics.
    pub critical: Option<usize>,
}

/// Where one category's computation spent its time, stage by stage (for
/// the benchmark; the daemon ignores it). Parsing happens before the cycle
/// core and is timed by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Horde indexes (status and stats by name, base names of Horde names).
    pub index: Duration,
    /// Reference names joined with the Horde data (both merges for text).
    pub merge: Duration,
    /// Per-record facts, flags and the risk responses.
    pub risk: Duration,
    /// Text-model grouping of the ungrouped response.
    pub grouping: Duration,
    /// Both statistics entries, computed (not serialised).
    pub statistics: Duration,
    /// Every entry's JSON serialisation.
    pub serialise: Duration,
    /// The whole computation, start to end (the statistics run on a second
    /// thread, so this is less than the sum of the stages).
    pub wall: Duration,
}

impl StageTimes {
    /// The sum of every stage (not [`StageTimes::wall`]).
    pub fn total(&self) -> Duration {
        self.index + self.merge + self.risk + self.grouping + self.statistics + self.serialise
    }
}

/// A stopwatch that charges the time since its last lap to a stage.
struct Laps(Instant);

impl Laps {
    fn lap(&mut self, stage: &mut Duration) {
        let now = Instant::now();
        *stage += now - self.0;
        self.0 = now;
    }
}

/// An entry whose JSON is still in its working buffer. Worker threads hand
/// these back and the calling thread makes the long-lived shared copy
/// ([`PendingEntry::finish`]), so that nothing a cache keeps for minutes is
/// allocated by a thread that exits at the end of the computation (the
/// allocator would keep that thread's memory around).
struct PendingEntry {
    key: EntryKey,
    json: Vec<u8>,
    models: usize,
    at_risk: Option<usize>,
    critical: Option<usize>,
}

impl PendingEntry {
    /// The finished entry; `None` (logged) if the buffer is not UTF-8, which
    /// serde_json never writes.
    fn finish(&self) -> Option<ComputedEntry> {
        match std::str::from_utf8(&self.json) {
            Ok(json) => Some(ComputedEntry {
                key: self.key,
                json: Arc::from(json),
                models: self.models,
                at_risk: self.at_risk,
                critical: self.critical,
            }),
            Err(e) => {
                log::error!("{}: serialised entry is not UTF-8: {e}; entry skipped", self.key);
                None
            }
        }
    }
}

/// A deletion-risk response serialised into `buffer` (cleared first; reused
/// across the entries of a category, so a large entry does not grow a fresh
/// buffer by doubling and copying); `None` (logged) if it could not be
/// serialised, so that no partial value is ever stored.
fn serialise_risk(
    key: EntryKey,
    response: &CategoryDeletionRiskResponse,
    mut buffer: Vec<u8>,
) -> Option<PendingEntry> {
    buffer.clear();
    match serde_json::to_writer(&mut buffer, response) {
        Ok(()) => Some(PendingEntry {
            key,
            json: buffer,
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

/// [`serialise_risk`] finished on this thread, the buffer kept for the next entry.
fn risk_entry(
    key: EntryKey,
    response: &CategoryDeletionRiskResponse,
    scratch: &mut Vec<u8>,
) -> Option<ComputedEntry> {
    let mut pending = serialise_risk(key, response, std::mem::take(scratch))?;
    let entry = pending.finish();
    *scratch = std::mem::take(&mut pending.json);
    entry
}

/// Bytes per model of a serialised deletion-risk entry, a little above what
/// the reference-shaped JSON takes (about 1,000–1,200), to size the buffer.
const RISK_JSON_BYTES_PER_MODEL: usize = 1280;

/// The deletion-risk entries of a category: ungrouped, grouped and (text)
/// ungrouped with backend variations, in [`EntryKey::for_category`] order.
pub fn deletion_risk_entries(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
) -> Vec<ComputedEntry> {
    deletion_risk_entries_timed(category, inputs, settings, &mut StageTimes::default())
}

fn deletion_risk_entries_timed(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    times: &mut StageTimes,
) -> Vec<ComputedEntry> {
    let mut laps = Laps(Instant::now());
    let mut base_names = BaseNames::new();
    let horde = HordeData::new(&inputs.status, &inputs.stats, &mut base_names);
    laps.lap(&mut times.index);
    let records: Vec<RawRecord> = inputs.reference.records().filter(|r| r.has_usable_name()).collect();
    let facts: Vec<RecordFacts> = records.iter().map(|r| RecordFacts::new(r, category, settings)).collect();
    let names = || records.iter().map(|r| r.name);
    laps.lap(&mut times.risk);

    // Text: the entry with backend variations needs its own merge and no
    // base names; it is made on another thread while the ungrouped and
    // grouped entries are made here (on this thread if none can start).
    let variations_entry = |times: &mut StageTimes| -> Option<PendingEntry> {
        let mut laps = Laps(Instant::now());
        let merged = merge::merge_category(names(), &horde, &mut BaseNames::new(), true);
        let total = merge::category_total_month(&merged);
        laps.lap(&mut times.merge);
        let variations = risk::analyze(category, &facts, &merged, total, settings, true);
        drop(merged);
        laps.lap(&mut times.risk);
        let buffer = Vec::with_capacity(RISK_JSON_BYTES_PER_MODEL * (records.len() + 1));
        let entry = serialise_risk(EntryKey::risk(category, false, true), &variations, buffer);
        laps.lap(&mut times.serialise);
        entry
    };

    std::thread::scope(|scope| {
        let worker = category
            .is_text()
            .then(|| {
                std::thread::Builder::new().name("variations".into()).spawn_scoped(scope, || {
                    let mut times = StageTimes::default();
                    let entry = variations_entry(&mut times);
                    (entry, times)
                })
            })
            .and_then(|spawned| {
                spawned.map_err(|e| log::debug!("no thread for the variations entry ({e}); made here")).ok()
            });

        let mut laps = Laps(Instant::now());
        let mut entries = Vec::with_capacity(3);
        let mut scratch = Vec::with_capacity(RISK_JSON_BYTES_PER_MODEL * (records.len() + 1));
        let merged = merge::merge_category(names(), &horde, &mut base_names, false);
        let total = merge::category_total_month(&merged);
        laps.lap(&mut times.merge);
        let ungrouped = risk::analyze(category, &facts, &merged, total, settings, false);
        drop(merged);
        laps.lap(&mut times.risk);
        entries.extend(risk_entry(EntryKey::risk(category, false, false), &ungrouped, &mut scratch));
        laps.lap(&mut times.serialise);
        let grouped = grouping::apply_text_model_grouping(ungrouped, &mut base_names, settings);
        laps.lap(&mut times.grouping);
        entries.extend(risk_entry(EntryKey::risk(category, true, false), &grouped, &mut scratch));
        drop(grouped);
        drop(scratch);
        laps.lap(&mut times.serialise);

        match worker {
            Some(handle) => {
                let (entry, spent) = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                times.merge += spent.merge;
                times.risk += spent.risk;
                times.serialise += spent.serialise;
                entries.extend(entry.and_then(|e| e.finish()));
            }
            None if category.is_text() => entries.extend(variations_entry(times).and_then(|e| e.finish())),
            None => {}
        }
        entries
    })
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
    compute_category_timed(category, inputs, settings, computed_at).0
}

/// [`compute_category`], also answering how long each stage took.
///
/// The statistics entries do not depend on the deletion-risk ones, so they
/// are computed on a second thread (the machine this runs on has two cores);
/// should that thread not start, everything runs on this one. The entries
/// and their order are the same either way.
pub fn compute_category_timed(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> (Vec<ComputedEntry>, StageTimes) {
    let started = Instant::now();
    let mut times = StageTimes::default();
    let statistics = || statistics_entries(category, &inputs.reference, computed_at);
    let (mut entries, (stats, spent)) = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new().name("statistics".into()).spawn_scoped(scope, statistics);
        let risk = deletion_risk_entries_timed(category, inputs, settings, &mut times);
        let stats = match worker {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                log::debug!("no second thread for the statistics ({e}); computing them here");
                statistics()
            }
        };
        (risk, stats)
    });
    times.statistics += spent.compute;
    times.serialise += spent.serialise;
    entries.extend(stats.iter().filter_map(PendingEntry::finish));
    times.wall = started.elapsed();
    (entries, times)
}

/// Both statistics entries of a category, and the time they took.
fn statistics_entries(
    category: Category,
    reference: &ParsedReference,
    computed_at: i64,
) -> (Vec<PendingEntry>, crate::stats::StatisticsTimes) {
    let mut times = crate::stats::StatisticsTimes::default();
    let entries = [false, true]
        .into_iter()
        .filter_map(|grouped| {
            let key = EntryKey::stats(category, grouped);
            let (json, models, spent) =
                match crate::stats::compute_statistics_timed(category, reference, grouped, computed_at) {
                    Ok(computed) => computed,
                    Err(e) => {
                        log::error!("{key}: cannot serialise the statistics: {e}; entry skipped");
                        return None;
                    }
                };
            times.compute += spent.compute;
            times.serialise += spent.serialise;
            Some(PendingEntry { key, json: json.into_bytes(), models, at_risk: None, critical: None })
        })
        .collect();
    (entries, times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::horde::{parse_stats, parse_status};
    use crate::records::parse_reference;
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
            for entry in deletion_risk_entries(category, &inputs, &AnalysisSettings::default()) {
                let value: Value = serde_json::from_str(&entry.json).unwrap();
                assert_eq!(value["total_count"], 5, "{}", entry.key);
            }
        }
    }
}
