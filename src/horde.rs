//! AI Horde data: status and stats responses, and their case-insensitive index.
//!
//! Parsing is lenient where the live API is sloppy: `queued` and `jobs` may be
//! fractional (the reference rejects those and crashes; we keep them as
//! floats), numbers may come as strings (pydantic's lax coercion applies), and
//! an entry that is not an object or has no name is skipped with a warning.
//!
//! The index answers the reference's lookups (`IndexedHordeModelStatus`,
//! `IndexedHordeModelStats`) in O(1) per model:
//!
//! * status: by lower-cased name (a later duplicate wins); aggregated over a
//!   model's name variants by the largest `count` (first wins on ties);
//! * stats: by lower-cased name; aggregated over the name variants plus every
//!   stats name with the same base model name (of its last `/` segment), or,
//!   with backend variations, over the names equal up to a quantisation suffix,
//!   split per backend. Group sums are precomputed when the index is built, so
//!   no lookup scans the Horde names.

use crate::names;
use crate::records::{json_type_name, lax_float, lax_int, lax_wide_int};
use foldhash::{HashMap, HashMapExt};
use indexmap::IndexMap;
use serde_json::Value;

/// One entry of `GET /v2/status/models`, in the reference's field order.
#[derive(Debug, Clone, PartialEq)]
pub struct HordeModelStatus {
    /// Performance metric; `None` when missing or not a number.
    pub performance: Option<f64>,
    /// Queued work (pixelsteps or tokens); may be fractional.
    pub queued: Option<f64>,
    /// Active jobs; may be fractional.
    pub jobs: Option<f64>,
    /// Estimated seconds to completion.
    pub eta: Option<i64>,
    /// `"image"` or `"text"` (JSON field `type`).
    pub model_type: Option<String>,
    /// The model name as the Horde reports it.
    pub name: String,
    /// Workers serving the model; 0 when missing or not an integer.
    pub count: i64,
}

/// `GET /v2/stats/{img,text}/models`: usage per period, name → count, in
/// response order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HordeModelStats {
    pub day: IndexMap<String, UsageCount>,
    pub month: IndexMap<String, UsageCount>,
    pub total: IndexMap<String, UsageCount>,
}

/// A usage count or a sum of them. The reference's are Python integers
/// (unbounded): counts beyond `i64` are accepted and sums of many large
/// counts must not saturate, so usage is kept in 128 bits.
pub type UsageCount = i128;

/// A Horde response could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum HordeError {
    #[error("Horde response is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Horde response has the wrong shape: {0}")]
    Shape(String),
}

/// Parse a `/v2/status/models` response (a JSON array).
pub fn parse_status(bytes: &[u8]) -> Result<Vec<HordeModelStatus>, HordeError> {
    let value: Value = crate::pyjson::from_slice(bytes)?;
    let Value::Array(items) = value else {
        return Err(HordeError::Shape(format!(
            "status: expected a list of models, found {}",
            json_type_name(&value)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(status) = status_entry(i, item) {
            out.push(status);
        }
    }
    Ok(out)
}

/// One status entry, or `None` (with a warning) when it is unusable.
fn status_entry(index: usize, item: &Value) -> Option<HordeModelStatus> {
    let Value::Object(fields) = item else {
        log::warn!(
            "Horde status: skipping entry #{index}: expected an object, found {}",
            json_type_name(item)
        );
        return None;
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            log::warn!(
                "Horde status: skipping entry #{index}: `name` should be a string, found {}",
                json_type_name(other)
            );
            return None;
        }
        None => {
            log::warn!("Horde status: skipping entry #{index}: it has no `name`");
            return None;
        }
    };
    let field = |key: &str, parse: fn(&Value) -> Option<f64>| -> Option<f64> {
        let value = fields.get(key)?;
        let parsed = parse(value);
        if parsed.is_none() {
            log::warn!(
                "Horde status: model {name:?}: `{key}` should be a number, found {}; treated as absent",
                json_type_name(value)
            );
        }
        parsed
    };
    let int_field = |key: &str| -> Option<i64> {
        let value = fields.get(key)?;
        let parsed = lax_int(value);
        if parsed.is_none() {
            log::warn!(
                "Horde status: model {name:?}: `{key}` should be an integer, found {value}; treated as absent"
            );
        }
        parsed
    };
    let model_type = match fields.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        _ => None,
    };
    Some(HordeModelStatus {
        performance: field("performance", lax_float),
        queued: field("queued", lax_float),
        jobs: field("jobs", lax_float),
        eta: int_field("eta"),
        model_type,
        count: int_field("count").unwrap_or(0),
        name,
    })
}

/// Parse a `/v2/stats/.../models` response (`{day, month, total}`).
pub fn parse_stats(bytes: &[u8]) -> Result<HordeModelStats, HordeError> {
    let value: Value = crate::pyjson::from_slice_exact_ints(bytes)?;
    let Value::Object(periods) = value else {
        return Err(HordeError::Shape(format!(
            "stats: expected an object of day/month/total, found {}",
            json_type_name(&value)
        )));
    };
    Ok(HordeModelStats {
        day: stats_period(&periods, "day"),
        month: stats_period(&periods, "month"),
        total: stats_period(&periods, "total"),
    })
}

fn stats_period(periods: &serde_json::Map<String, Value>, period: &str) -> IndexMap<String, UsageCount> {
    let counts = match periods.get(period) {
        None => return IndexMap::new(),
        Some(Value::Object(counts)) => counts,
        Some(other) => {
            log::warn!(
                "Horde stats: `{period}` should be an object, found {}; treated as empty",
                json_type_name(other)
            );
            return IndexMap::new();
        }
    };
    let mut out = IndexMap::with_capacity(counts.len());
    for (name, count) in counts {
        match lax_wide_int(count) {
            Some(n) => {
                out.insert(name.clone(), n);
            }
            None => {
                log::warn!("Horde stats: `{period}` of {name:?} should be an integer, found {count}; skipped")
            }
        }
    }
    out
}

/// Usage counts over the three periods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub day: UsageCount,
    pub month: UsageCount,
    pub total: UsageCount,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.day = self.day.saturating_add(other.day);
        self.month = self.month.saturating_add(other.month);
        self.total = self.total.saturating_add(other.total);
    }

    /// Any period above zero (the reference's test for "has usage").
    pub fn any_positive(&self) -> bool {
        self.day > 0 || self.month > 0 || self.total > 0
    }

    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// The backend a Horde name variant belongs to, by its name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// The reference's own name (no backend prefix).
    Canonical,
    Aphrodite,
    Koboldcpp,
}

impl Backend {
    /// Every backend, in the order the reference initialises its totals.
    pub const ALL: [Backend; 3] = [Backend::Canonical, Backend::Aphrodite, Backend::Koboldcpp];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Canonical => "canonical",
            Backend::Aphrodite => "aphrodite",
            Backend::Koboldcpp => "koboldcpp",
        }
    }

    /// The backend of a (lower-cased) Horde name, by prefix.
    fn of_name(name: &str) -> Backend {
        if name.starts_with(APHRODITE) {
            Backend::Aphrodite
        } else if name.starts_with(KOBOLDCPP) {
            Backend::Koboldcpp
        } else {
            Backend::Canonical
        }
    }
}

impl serde::Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

const APHRODITE: &str = "aphrodite/";
const KOBOLDCPP: &str = "koboldcpp/";

/// The part after the last `/` (Python's `name.split("/")[-1]`).
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// `names::base_model_name`, memoised for one cycle: each distinct input is
/// parsed once, however many Horde names, reference names and groupings ask.
#[derive(Debug, Default)]
pub struct BaseNames {
    memo: HashMap<String, String>,
}

impl BaseNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// `get_base_model_name(name)`.
    ///
    /// The reference strips a backend prefix and then an author prefix before
    /// parsing; when what remains has no `/`, parsing it directly gives the
    /// same answer, so the memo is keyed by that remainder and e.g.
    /// `koboldcpp/Foo-7B`, `Org/Foo-7B` and `Foo-7B` share one parse.
    pub fn base_of(&mut self, name: &str) -> String {
        let without_backend =
            name.strip_prefix(APHRODITE).or_else(|| name.strip_prefix(KOBOLDCPP)).unwrap_or(name);
        let without_author = without_backend.split_once('/').map_or(without_backend, |(_, rest)| rest);
        let key = if without_author.contains('/') { name } else { without_author };
        if let Some(base) = self.memo.get(key) {
            return base.clone();
        }
        let base = names::base_model_name(key);
        self.memo.insert(key.to_string(), base.clone());
        base
    }

    /// The stats index's key for a name: the lower-cased base name of its last
    /// `/` segment.
    pub fn base_key(&mut self, name: &str) -> String {
        self.base_of(last_segment(name)).to_lowercase()
    }
}

/// The quantisation-variant key of a lower-cased Horde name: backend prefix
/// kept, author dropped, quantisation suffix stripped, size kept.
fn size_key(lower: &str) -> String {
    let (prefix, rest) = if let Some(rest) = lower.strip_prefix(APHRODITE) {
        (APHRODITE, rest)
    } else if let Some(rest) = lower.strip_prefix(KOBOLDCPP) {
        (KOBOLDCPP, rest)
    } else {
        ("", lower)
    };
    format!("{prefix}{}", names::strip_quant_suffix(last_segment(rest)))
}

/// Statuses by lower-cased name (`IndexedHordeModelStatus`).
#[derive(Debug, Default)]
pub struct StatusIndex<'a> {
    by_name: HashMap<String, &'a HordeModelStatus>,
}

impl<'a> StatusIndex<'a> {
    /// Index `statuses`; of two names equal up to case, the later wins.
    pub fn new(statuses: &'a [HordeModelStatus]) -> Self {
        let by_name = statuses.iter().map(|s| (s.name.to_lowercase(), s)).collect();
        StatusIndex { by_name }
    }

    /// The status of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&'a HordeModelStatus> {
        self.by_name.get(&name.to_lowercase()).copied()
    }

    /// The status with the most workers among `variants` (the model's name
    /// variants, canonical first); the first wins on ties.
    pub fn aggregated(&self, variants: &[String]) -> Option<&'a HordeModelStatus> {
        first_max_by_count(variants.iter().filter_map(|v| self.get(v)))
    }

    /// The aggregated status and the status per backend, as
    /// `get_status_with_variations` returns them (backends in the order first
    /// found; a later variant of the same backend replaces the earlier).
    pub fn with_variations(
        &self,
        canonical: &str,
        variants: &[String],
    ) -> (Option<&'a HordeModelStatus>, Vec<(Backend, &'a HordeModelStatus)>) {
        let mut found: Vec<(Backend, &'a HordeModelStatus)> = Vec::new();
        for variant in variants {
            let Some(status) = self.get(variant) else { continue };
            let backend = if variant == canonical {
                Backend::Canonical
            } else if variant.starts_with(APHRODITE) {
                Backend::Aphrodite
            } else if variant.starts_with(KOBOLDCPP) {
                Backend::Koboldcpp
            } else {
                continue; // name_variants only makes the three kinds
            };
            match found.iter_mut().find(|(b, _)| *b == backend) {
                Some(slot) => slot.1 = status,
                None => found.push((backend, status)),
            }
        }
        let aggregated = first_max_by_count(found.iter().map(|(_, s)| *s));
        (aggregated, found)
    }
}

/// Python's `max(statuses, key=lambda s: s.count)`: the first maximum.
fn first_max_by_count<'a>(
    statuses: impl Iterator<Item = &'a HordeModelStatus>,
) -> Option<&'a HordeModelStatus> {
    let mut best: Option<&'a HordeModelStatus> = None;
    for s in statuses {
        if best.is_none_or(|b| s.count > b.count) {
            best = Some(s);
        }
    }
    best
}

/// Stats names sharing a base name, with their precomputed sum.
#[derive(Debug, Default)]
struct BaseGroup {
    /// Name ids, sorted, distinct.
    ids: Vec<u32>,
    sum: Usage,
}

/// Stats names equal up to a quantisation suffix (one backend), with sums.
#[derive(Debug)]
struct SizeGroup {
    backend: Backend,
    /// Sum over every name of the group.
    all: Usage,
    /// Sum over the names with any usage above zero (what the reference
    /// attributes to the backend).
    positive: Usage,
}

/// Usage by lower-cased name plus the two aggregation indexes
/// (`IndexedHordeModelStats`).
#[derive(Debug, Default)]
pub struct StatsIndex {
    ids: HashMap<String, u32>,
    /// Usage per name id: each period from its own lower-cased dict (a later
    /// duplicate up to case wins), 0 where the period lacks the name.
    usage: Vec<Usage>,
    by_base: HashMap<String, BaseGroup>,
    by_size: HashMap<String, SizeGroup>,
}

impl StatsIndex {
    /// Index `stats`; every distinct Horde name's base name is computed once
    /// (through `base_names`).
    pub fn new(stats: &HordeModelStats, base_names: &mut BaseNames) -> Self {
        let mut index = StatsIndex::default();
        // Each distinct original-case name is lower-cased once, whatever the
        // number of periods it appears in.
        let mut id_of: HashMap<&str, u32> = HashMap::with_capacity(stats.day.len());
        for (name, count) in &stats.day {
            let id = index.intern_original(&mut id_of, name);
            index.usage[id].day = *count;
        }
        for (name, count) in &stats.month {
            let id = index.intern_original(&mut id_of, name);
            index.usage[id].month = *count;
        }
        for (name, count) in &stats.total {
            let id = index.intern_original(&mut id_of, name);
            index.usage[id].total = *count;
        }
        // Base-name groups: keyed by each distinct original-case name.
        for (name, id) in id_of {
            index.by_base.entry(base_names.base_key(name)).or_default().ids.push(id);
        }
        for group in index.by_base.values_mut() {
            group.ids.sort_unstable();
            group.ids.dedup();
            let mut sum = Usage::default();
            for id in &group.ids {
                sum.add(index.usage[*id as usize]);
            }
            group.sum = sum;
        }
        // Quantisation groups: keyed by each distinct lower-cased name.
        for (lower, id) in &index.ids {
            let usage = index.usage[*id as usize];
            let group = index.by_size.entry(size_key(lower)).or_insert_with(|| SizeGroup {
                backend: Backend::of_name(lower),
                all: Usage::default(),
                positive: Usage::default(),
            });
            group.all.add(usage);
            if usage.any_positive() {
                group.positive.add(usage);
            }
        }
        index
    }

    /// The id of `name` (original case), lower-casing it only when `id_of`
    /// has not seen it yet.
    fn intern_original<'a>(&mut self, id_of: &mut HashMap<&'a str, u32>, name: &'a str) -> usize {
        let id = match id_of.get(name) {
            Some(&id) => id,
            None => {
                let id = self.intern(name.to_lowercase());
                id_of.insert(name, id);
                id
            }
        };
        id as usize
    }

    fn intern(&mut self, lower: String) -> u32 {
        let next = self.usage.len() as u32;
        let id = *self.ids.entry(lower).or_insert(next);
        if id == next {
            self.usage.push(Usage::default());
        }
        id
    }

    /// The usage of one name, case-insensitively (zeros when unknown).
    pub fn get(&self, name: &str) -> Usage {
        self.ids.get(&name.to_lowercase()).map_or_else(Usage::default, |id| self.usage[*id as usize])
    }

    /// `get_aggregated_stats`: the sum over the distinct names among the
    /// model's `variants` and every stats name whose base key is `base_key`
    /// (see [`BaseNames::base_key`] of the canonical name).
    pub fn aggregated(&self, variants: &[String], base_key: &str) -> Usage {
        let group = self.by_base.get(base_key);
        let mut sum = group.map_or_else(Usage::default, |g| g.sum);
        let mut extra: Vec<u32> = Vec::with_capacity(variants.len());
        for variant in variants {
            let Some(&id) = self.ids.get(&variant.to_lowercase()) else { continue };
            if group.is_some_and(|g| g.ids.binary_search(&id).is_ok()) || extra.contains(&id) {
                continue;
            }
            extra.push(id);
            sum.add(self.usage[id as usize]);
        }
        sum
    }

    /// `get_stats_with_variations`: the sum over the model's `variants` and
    /// their quantisation variants, and the part of it per backend (only the
    /// backends with usage, in [`Backend::ALL`] order).
    pub fn with_variations(&self, variants: &[String]) -> (Usage, Vec<(Backend, Usage)>) {
        let mut keys: Vec<String> = Vec::with_capacity(variants.len());
        for variant in variants {
            let key = size_key(&variant.to_lowercase());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut total = Usage::default();
        let mut per_backend = [Usage::default(); 3];
        for key in &keys {
            // A variant that is a stats name is in its own key's group; one
            // that is not contributes nothing.
            if let Some(group) = self.by_size.get(key) {
                total.add(group.all);
                per_backend[group.backend as usize].add(group.positive);
            }
        }
        let variations =
            Backend::ALL.into_iter().zip(per_backend).filter(|(_, usage)| !usage.is_zero()).collect();
        (total, variations)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn status(name: &str, count: i64) -> HordeModelStatus {
        HordeModelStatus {
            performance: Some(1.5),
            queued: None,
            jobs: None,
            eta: None,
            model_type: Some("text".into()),
            name: name.into(),
            count,
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_status_leniently() {
        let bytes = br#"[
          {"performance": 28.4, "queued": 34567.5, "jobs": 54.25, "eta": 395, "type": "text", "name": "koboldcpp/Foo-7B", "count": 2},
          {"performance": "7.5", "queued": 1, "jobs": "2", "eta": 10.0, "type": "image", "name": "Alpha", "count": "3"},
          {"name": "NoNumbers", "count": 2.5, "eta": null},
          "not an object",
          {"count": 5},
          {"name": 7, "count": 1}
        ]"#;
        let parsed = parse_status(bytes).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[0],
            HordeModelStatus {
                performance: Some(28.4),
                queued: Some(34567.5),
                jobs: Some(54.25),
                eta: Some(395),
                model_type: Some("text".into()),
                name: "koboldcpp/Foo-7B".into(),
                count: 2,
            }
        );
        assert_eq!(
            parsed[1],
            HordeModelStatus {
                performance: Some(7.5),
                queued: Some(1.0),
                jobs: Some(2.0),
                eta: Some(10),
                model_type: Some("image".into()),
                name: "Alpha".into(),
                count: 3,
            }
        );
        assert_eq!(
            parsed[2],
            HordeModelStatus {
                performance: None,
                queued: None,
                jobs: None,
                eta: None,
                model_type: None,
                name: "NoNumbers".into(),
                count: 0,
            }
        );
    }

    #[test]
    fn rejects_unusable_responses() {
        assert!(matches!(parse_status(b"{}"), Err(HordeError::Shape(_))));
        assert!(matches!(parse_status(b"[1,"), Err(HordeError::Json(_))));
        assert!(matches!(parse_stats(b"[]"), Err(HordeError::Shape(_))));
    }

    #[test]
    fn parses_stats_leniently() {
        let stats = parse_stats(
            br#"{"day": {"A": 1, "B": "2", "C": 3.0, "D": 1.5, "E": null, "F": true, "G": " 1_000 "},
                 "month": [], "extra": 1}"#,
        )
        .unwrap();
        let day: Vec<(&str, UsageCount)> = stats.day.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(day, [("A", 1), ("B", 2), ("C", 3), ("F", 1), ("G", 1000)]);
        assert!(stats.month.is_empty());
        assert!(stats.total.is_empty());
    }

    #[test]
    fn status_index_is_case_insensitive_and_the_later_duplicate_wins() {
        let statuses = [status("Foo", 1), status("FOO", 2), status("Bar", 3)];
        let index = StatusIndex::new(&statuses);
        assert_eq!(index.get("foo").map(|s| s.count), Some(2));
        assert_eq!(index.get("bAR").map(|s| s.count), Some(3));
        assert!(index.get("baz").is_none());
    }

    #[test]
    fn aggregated_status_takes_the_most_workers_first_on_ties() {
        let statuses =
            [status("Org/Foo-7B", 2), status("aphrodite/Org/Foo-7B", 5), status("koboldcpp/foo-7b", 5)];
        let index = StatusIndex::new(&statuses);
        let variants = strings(&["Org/Foo-7B", "aphrodite/Org/Foo-7B", "koboldcpp/Foo-7B"]);
        assert_eq!(index.aggregated(&variants).map(|s| s.name.as_str()), Some("aphrodite/Org/Foo-7B"));

        let (best, per_backend) = index.with_variations("Org/Foo-7B", &variants);
        assert_eq!(best.map(|s| s.name.as_str()), Some("aphrodite/Org/Foo-7B"));
        let found: Vec<(Backend, &str)> = per_backend.iter().map(|(b, s)| (*b, s.name.as_str())).collect();
        assert_eq!(
            found,
            [
                (Backend::Canonical, "Org/Foo-7B"),
                (Backend::Aphrodite, "aphrodite/Org/Foo-7B"),
                (Backend::Koboldcpp, "koboldcpp/foo-7b"),
            ]
        );
        assert!(index.aggregated(&strings(&["Nothing"])).is_none());
    }

    /// Stats where `Foo-7B`, `Foo-7B-Q4_K_M` and `foo-13b` share the base
    /// name `foo` (the reference's `get_base_model_name`, lower-cased).
    pub(crate) fn foo_stats() -> HordeModelStats {
        parse_stats(
            br#"{"day": {"koboldcpp/Foo-7B": 1, "Org/Foo-7B-Q4_K_M": 10, "foo-13b": 100, "Bar-7B": 1000,
                         "KOBOLDCPP/foo-7b": 10000},
                 "month": {"koboldcpp/Foo-7B": 2, "foo-13b": 200},
                 "total": {"Bar-7B": 3}}"#,
        )
        .unwrap()
    }

    #[test]
    fn stats_index_sums_the_variants_and_the_base_name_group() {
        let mut base_names = BaseNames::new();
        let index = StatsIndex::new(&foo_stats(), &mut base_names);
        // A later duplicate up to case wins, per period.
        assert_eq!(index.get("koboldcpp/FOO-7B"), Usage { day: 10000, month: 2, total: 0 });
        let variants = strings(&["Org/Foo-7B", "aphrodite/Org/Foo-7B", "koboldcpp/Foo-7B"]);
        let key = base_names.base_key("Org/Foo-7B");
        assert_eq!(key, "foo");
        assert_eq!(index.aggregated(&variants, &key), Usage { day: 10110, month: 202, total: 0 });
        let bar = strings(&["Bar-7B", "aphrodite/Bar-7B", "koboldcpp/Bar-7B"]);
        assert_eq!(
            index.aggregated(&bar, &base_names.base_key("Bar-7B")),
            Usage { day: 1000, month: 0, total: 3 }
        );
        assert_eq!(index.aggregated(&strings(&["Nope"]), "nope"), Usage::default());
    }

    #[test]
    fn stats_with_variations_split_by_backend_over_quantisations_only() {
        let mut base_names = BaseNames::new();
        let index = StatsIndex::new(&foo_stats(), &mut base_names);
        let variants = strings(&["Org/Foo-7B", "aphrodite/Org/Foo-7B", "koboldcpp/Foo-7B"]);
        let (total, per_backend) = index.with_variations(&variants);
        // foo-13b is another size: not included.
        assert_eq!(total, Usage { day: 10010, month: 2, total: 0 });
        assert_eq!(
            per_backend,
            [
                (Backend::Canonical, Usage { day: 10, month: 0, total: 0 }),
                (Backend::Koboldcpp, Usage { day: 10000, month: 2, total: 0 }),
            ]
        );
    }

    #[test]
    fn base_names_are_memoised_by_what_is_parsed() {
        let mut base_names = BaseNames::new();
        assert_eq!(base_names.base_of("koboldcpp/Foo-7B"), "Foo");
        assert_eq!(base_names.base_of("Org/Foo-7B"), "Foo");
        assert_eq!(base_names.base_of("Foo-7B"), "Foo");
        assert_eq!(base_names.memo.len(), 1);
        assert_eq!(base_names.base_key("aphrodite/Org/Foo-7B-Q4_K_M"), "foo");
    }
}
