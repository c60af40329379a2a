//! One category's analytics for one cycle: inputs in, serialised entries out.
//!
//! This is the one entry point the daemon calls (from the RiskCompute actor);
//! it runs every step of the core in data-flow order and returns the JSON
//! values exactly as the reference would write them to Redis.
//!
//! Shared work is done once: the Horde index and every distinct name's base
//! name (memoised in [`BaseNames`]), the per-record facts, and the merge
//! without backend variations, which the ungrouped and grouped views share
//! (the grouped view is the ungrouped response, grouped). An image category's
//! grouped entry is its ungrouped one (grouping only changes text), so both
//! keys share one JSON buffer.
//!
//! Threads (the machine has two cores, and the daemon computes the two
//! categories at once): one worker per call. It computes the statistics
//! entries while the calling thread builds the Horde index and the record
//! facts and makes the ungrouped and grouped entries; the text entry with
//! backend variations (which needs the index and the facts) is made by
//! whichever of the two is free first. Should the worker not start,
//! everything runs on the calling thread; the entries and their order are the
//! same either way.
//!
//! Every deletion-risk view is written model by model into a buffer sized up
//! front (no vector of per-model infos is kept) and handed to the cache as is
//! ([`EntryJson`]): no copy of a finished entry is made.

use crate::category::Category;
use crate::grouping;
use crate::horde::{BaseNames, HordeModelStats, HordeModelStatus};
use crate::keys::EntryKey;
use crate::merge::{self, HordeData, MergedModel};
use crate::records::{ParsedReference, RawRecord};
use crate::risk::{self, CategoryDeletionRiskSummary, RecordFacts};
use crate::settings::AnalysisSettings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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

/// Where one category's computation spent its time, stage by stage (for
/// the benchmark; the daemon ignores it). Parsing happens before the cycle
/// core and is timed by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Horde indexes (status and stats by name, base names of Horde names).
    pub index: Duration,
    /// Reference names joined with the Horde data (both merges for text).
    pub merge: Duration,
    /// Per-record facts, and the ungrouped deletion-risk views, flags to
    /// JSON (each model's info is written as it is made).
    pub risk: Duration,
    /// The grouped text view, grouping to JSON.
    pub grouping: Duration,
    /// Both statistics entries, computed (not serialised).
    pub statistics: Duration,
    /// The statistics entries' JSON serialisation (the deletion-risk views
    /// are written as they are made: see `risk` and `grouping`).
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
struct Shared<'i> {
    records: Vec<RawRecord<'i>>,
    facts: Vec<RecordFacts>,
    horde: HordeData<'i>,
}

impl<'i> Shared<'i> {
    fn new(
        category: Category,
        inputs: &'i CategoryInputs,
        settings: &AnalysisSettings,
        base_names: &mut BaseNames,
        times: &mut StageTimes,
    ) -> Self {
        let mut laps = Laps(Instant::now());
        let horde = HordeData::new(&inputs.status, &inputs.stats, base_names);
        laps.lap(&mut times.index);
        let records: Vec<RawRecord<'i>> =
            inputs.reference.records().filter(|r| r.has_usable_name()).collect();
        let facts: Vec<RecordFacts> =
            records.iter().map(|r| RecordFacts::new(r, category, settings)).collect();
        laps.lap(&mut times.risk);
        Shared { records, facts, horde }
    }

    fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.records.iter().map(|r| r.name)
    }
}

/// Text: the entry with backend variations (its own merge, no base names).
fn variations_entry(
    category: Category,
    shared: &Shared<'_>,
    settings: &AnalysisSettings,
    times: &mut StageTimes,
) -> ComputedEntry {
    let mut laps = Laps(Instant::now());
    let merged = merge::merge_category(shared.names(), &shared.horde, &mut BaseNames::new(), true);
    let total = merge::category_total_month(&merged);
    laps.lap(&mut times.merge);
    let (facts, merged) = aligned(&shared.facts, &merged);
    let order = risk::ranking(merged);
    let mut json = String::with_capacity(risk::json_capacity(facts, merged, true));
    let summary = risk::write_analysis(category, facts, merged, &order, total, settings, true, &mut json);
    laps.lap(&mut times.risk);
    risk_entry(EntryKey::risk(category, false, true), json, &summary)
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
/// shares the ungrouped JSON).
fn ungrouped_and_grouped(
    category: Category,
    shared: &Shared<'_>,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
    times: &mut StageTimes,
) -> [ComputedEntry; 2] {
    let mut laps = Laps(Instant::now());
    let merged = merge::merge_category(shared.names(), &shared.horde, base_names, false);
    let total = merge::category_total_month(&merged);
    laps.lap(&mut times.merge);
    let (facts, merged) = aligned(&shared.facts, &merged);
    let order = risk::ranking(merged);
    let mut json = String::with_capacity(risk::json_capacity(facts, merged, false));
    let summary = risk::write_analysis(category, facts, merged, &order, total, settings, false, &mut json);
    let first = risk_entry(EntryKey::risk(category, false, false), json, &summary);
    laps.lap(&mut times.risk);
    if !category.is_text() {
        return [first.clone(), ComputedEntry { key: EntryKey::risk(category, true, false), ..first }];
    }
    // A first estimate: there are no more groups than ungrouped models.
    let mut json = String::with_capacity(first.json.len());
    let summary =
        grouping::write_grouped(category, facts, merged, &order, total, base_names, settings, &mut json);
    laps.lap(&mut times.grouping);
    [first, risk_entry(EntryKey::risk(category, true, false), json, &summary)]
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

/// Only the statistics entries of `category` (both groupings, in the order of
/// [`EntryKey::for_category`]): they read the model reference alone, so the
/// daemon refreshes them while the Horde's data is unavailable. The same
/// entries, byte for byte, as [`compute_category`] makes.
pub fn compute_statistics_entries(
    category: Category,
    reference: &ParsedReference,
    computed_at: i64,
) -> Vec<ComputedEntry> {
    statistics_entries(category, reference, computed_at, &mut StageTimes::default())
}

/// What the worker makes: the statistics entries, then (text) the entry with
/// backend variations, and the time it spent.
struct WorkerOutput {
    statistics: Vec<ComputedEntry>,
    variations: Option<ComputedEntry>,
    times: StageTimes,
}

/// The text entry with backend variations goes to whichever thread is free
/// first: the worker after the statistics, or the calling thread after the
/// ungrouped and grouped entries (at x1 the statistics are the shorter part,
/// at x10 the longer one).
#[derive(Debug, Default)]
struct VariationsJob(AtomicBool);

impl VariationsJob {
    /// Take the job; `true` for exactly one caller.
    fn claim(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// The worker's part; `ready` says when `shared` is set (it never comes if
/// the calling thread failed, and the sender is then dropped).
fn worker_part(
    category: Category,
    inputs: &CategoryInputs,
    shared: &OnceLock<Shared<'_>>,
    ready: Receiver<()>,
    job: &VariationsJob,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> WorkerOutput {
    let mut times = StageTimes::default();
    let statistics = statistics_entries(category, &inputs.reference, computed_at, &mut times);
    let variations = if category.is_text() && job.claim() {
        ready
            .recv()
            .ok()
            .and_then(|()| shared.get())
            .map(|shared| variations_entry(category, shared, settings, &mut times))
    } else {
        None
    };
    WorkerOutput { statistics, variations, times }
}

/// [`compute_category`], also answering how long each stage took.
pub fn compute_category_timed(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> (Vec<ComputedEntry>, StageTimes) {
    let started = Instant::now();
    let mut times = StageTimes::default();
    let shared_lock: OnceLock<Shared<'_>> = OnceLock::new();
    let job = VariationsJob::default();
    let (risk, variations, worker) = std::thread::scope(|scope| {
        let (lock, job) = (&shared_lock, &job);
        let (signal, ready) = sync_channel::<()>(1);
        let worker = std::thread::Builder::new()
            .name("analytics".into())
            .spawn_scoped(scope, move || {
                worker_part(category, inputs, lock, ready, job, settings, computed_at)
            })
            .map_err(|e| log::debug!("no worker thread ({e}); everything computed here"));
        let mut base_names = BaseNames::new();
        let shared =
            lock.get_or_init(|| Shared::new(category, inputs, settings, &mut base_names, &mut times));
        // Nothing to do if the worker is gone (it then reports nothing).
        let _ = signal.send(());
        let risk = ungrouped_and_grouped(category, shared, &mut base_names, settings, &mut times);
        drop(signal);
        let variations = (category.is_text() && job.claim())
            .then(|| variations_entry(category, shared, settings, &mut times));
        let worker = match worker {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(()) => {
                let (signal, ready) = sync_channel::<()>(1);
                let _ = signal.send(());
                worker_part(category, inputs, lock, ready, job, settings, computed_at)
            }
        };
        (risk, variations, worker)
    });
    times.merge += worker.times.merge;
    times.risk += worker.times.risk;
    times.statistics += worker.times.statistics;
    times.serialise += worker.times.serialise;
    let mut entries = Vec::with_capacity(5);
    entries.extend(risk);
    entries.extend(variations.or(worker.variations));
    entries.extend(worker.statistics);
    times.wall = started.elapsed();
    (entries, times)
}

/// Both statistics entries of a category (an entry that cannot be
/// serialised is logged and skipped).
fn statistics_entries(
    category: Category,
    reference: &ParsedReference,
    computed_at: i64,
    times: &mut StageTimes,
) -> Vec<ComputedEntry> {
    [false, true]
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
            times.statistics += spent.compute;
            times.serialise += spent.serialise;
            Some(ComputedEntry { key, json: EntryJson::from(json), models, at_risk: None, critical: None })
        })
        .collect()
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
    fn statistics_only_are_the_full_computation_s_statistics_entries() {
        let inputs = text_inputs();
        let category = Category::TextGeneration;
        let all = compute_category(category, &inputs, &AnalysisSettings::default(), 42);
        let stats = compute_statistics_entries(category, &inputs.reference, 42);
        let expected: Vec<&ComputedEntry> =
            all.iter().filter(|e| e.key.kind == crate::keys::EntryKind::Statistics).collect();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn written_views_equal_the_built_responses() {
        // The cycle writes the views model by model; `analyze` and
        // `apply_text_model_grouping` build them. Same bytes.
        let settings = AnalysisSettings::default();
        let inputs = text_inputs();
        let category = Category::TextGeneration;
        let mut base_names = BaseNames::new();
        let shared = Shared::new(category, &inputs, &settings, &mut base_names, &mut StageTimes::default());
        for variations in [false, true] {
            let merged = merge::merge_category(shared.names(), &shared.horde, &mut base_names, variations);
            let total = merge::category_total_month(&merged);
            let (facts, merged) = aligned(&shared.facts, &merged);
            let order = risk::ranking(merged);
            let built = risk::analyze(category, facts, merged, total, &settings, variations);
            let (mut expected, mut written) = (String::new(), String::new());
            risk::write_response(&built, &mut expected);
            let summary = risk::write_analysis(
                category,
                facts,
                merged,
                &order,
                total,
                &settings,
                variations,
                &mut written,
            );
            assert_eq!((written.as_str(), &summary), (expected.as_str(), &built.summary));
            let grouped = grouping::apply_text_model_grouping(built, &mut base_names, &settings);
            let (mut expected, mut written) = (String::new(), String::new());
            risk::write_response(&grouped, &mut expected);
            let summary = grouping::write_grouped(
                category,
                facts,
                merged,
                &order,
                total,
                &mut base_names,
                &settings,
                &mut written,
            );
            assert_eq!((written.as_str(), &summary), (expected.as_str(), &grouped.summary));
            assert!(grouped.models.len() < grouped.total_count, "something was grouped");
        }
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
