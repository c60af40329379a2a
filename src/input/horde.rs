//! AI Horde data: status and stats responses, and their case-insensitive index.
//!
//! Parsing is lenient where the live API is sloppy: `queued` and `jobs` may be
//! fractional (the reference rejects those and crashes; we keep them as
//! floats), numbers may come as strings (pydantic's lax coercion applies), and
//! an entry that is not an object or has no name is skipped with a warning.
//!
//! Parsing is shaped for speed: the documents are read by typed
//! visitors straight into the result, never into a `serde_json::Value` tree
//! (whose maps cost a dozen allocations per entry). Only the field values are
//! read as `Value`s, which for numbers, booleans and null allocate nothing, so
//! that the lax coercions ([`crate::python::lax`]) and the errors are exactly those
//! of a `Value` parse: an out-of-range number fails the document wherever it
//! is, an unknown field is parsed (as a `Value`) and dropped, and of two equal
//! keys the later value wins. The stats names are interned into one buffer
//! ([`interner`]) as they are read: each distinct name is stored once however
//! many periods list it.
//!
//! The index ([`HordeIndex`], in [`index`]) answers the reference's lookups
//! (`IndexedHordeModelStatus`, `IndexedHordeModelStats`) in O(1) per model.

mod index;
mod interner;

pub use index::{BaseNames, HordeIndex, LookupScratch, Variations};

use crate::input::skip::{KeyWith, Skip};
use crate::python::lax::{json_type_name, lax_float, lax_int, lax_wide_int};
use interner::Interner;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

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
    /// JSON field `type`; `None` when missing or not a string.
    pub model_type: Option<HordeModelType>,
    /// The model name as the Horde reports it.
    pub name: String,
    /// Workers serving the model; 0 when missing or not an integer.
    pub count: i64,
}

/// A status entry's `type` (an enum, so the common values allocate nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HordeModelType {
    Image,
    Text,
    /// Any other string, as given.
    Other(String),
}

impl HordeModelType {
    fn from_str(s: Cow<'_, str>) -> Self {
        match &*s {
            "image" => HordeModelType::Image,
            "text" => HordeModelType::Text,
            _ => HordeModelType::Other(s.into_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            HordeModelType::Image => "image",
            HordeModelType::Text => "text",
            HordeModelType::Other(s) => s,
        }
    }
}

/// `GET /v2/stats/{img,text}/models`: usage per period, name → count, in
/// response order.
///
/// Each period holds what a `{name: count}` dict of it would (of two equal
/// names the later count, at the earlier one's position), without the counts
/// that are not integers. The names are interned: each distinct name is
/// stored once, and a period refers to it by id.
#[derive(Debug, Clone, Default)]
pub struct HordeModelStats {
    names: Interner,
    /// Boxed: keeps the value small to move around (it travels in messages).
    periods: Box<[PeriodCounts; 3]>,
}

/// One period's counts: the name `ids[i]` has `counts[i]` (two vectors
/// rather than one of pairs, which would pad each pair to 32 bytes).
#[derive(Debug, Clone, Default)]
struct PeriodCounts {
    ids: Vec<u32>,
    counts: Vec<UsageCount>,
}

/// One of the stats' periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day = 0,
    Month = 1,
    Total = 2,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Month, Period::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }
}

impl HordeModelStats {
    /// The `(name, count)` pairs of `period`, in response order.
    pub fn period(&self, period: Period) -> impl Iterator<Item = (&str, UsageCount)> + '_ {
        self.period_ids(period).map(|(id, count)| (self.names.get_str(id), count))
    }

    /// How many distinct names (in any period).
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The interned name `id` (see [`HordeModelStats::period_ids`]).
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get_str(id)
    }

    /// The `(name id, count)` pairs of `period`, in response order.
    pub(crate) fn period_ids(&self, period: Period) -> impl Iterator<Item = (u32, UsageCount)> + '_ {
        let counts = &self.periods[period as usize];
        counts.ids.iter().copied().zip(counts.counts.iter().copied())
    }
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
    match crate::python::json::from_slice::<Found<StatusList>>(bytes)? {
        Found::Expected(StatusList(list, warnings)) => {
            warnings.iter().for_each(|w| log::warn!("{w}"));
            Ok(list)
        }
        Found::Other(found) => {
            Err(HordeError::Shape(format!("status: expected a list of models, found {found}")))
        }
    }
}

/// Parse a `/v2/stats/.../models` response (`{day, month, total}`).
pub fn parse_stats(bytes: &[u8]) -> Result<HordeModelStats, HordeError> {
    match crate::python::json::from_slice_exact_ints::<Found<StatsDocument>>(bytes)? {
        Found::Expected(StatsDocument(stats, warnings)) => {
            warnings.iter().for_each(|w| log::warn!("{w}"));
            Ok(stats)
        }
        Found::Other(found) => {
            Err(HordeError::Shape(format!("stats: expected an object of day/month/total, found {found}")))
        }
    }
}

// ---------------------------------------------------------------------------
// The typed readers.

/// A JSON value that is the expected kind (read as `T`), or another kind,
/// named as in the warnings (`json_type_name`). Another kind is read as a
/// `Value` would be and dropped, so it fails the parse exactly when a
/// `Value` parse would.
enum Found<T> {
    Expected(T),
    Other(&'static str),
}

/// The visit methods for the kinds other than the expected one (`$skip` is
/// the container kind that is not expected: `seq` or `map`).
macro_rules! other_kinds {
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Found::Other("an array"))
        }
        other_kinds!(scalars);
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
            Ok(Found::Other("an object"))
        }
        other_kinds!(scalars);
    };
    (scalars) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Found::Other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Found::Other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Found::Other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Found::Other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Found::Other("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Found::Other("null"))
        }
    };
}

/// The status list's entries, the unusable ones skipped, and the warnings
/// to log once the whole document has parsed (a document with a non-finite
/// literal is parsed twice, see [`crate::python::json::parse_with`]; a rejected one
/// should not warn about its entries).
struct StatusList(Vec<HordeModelStatus>, Vec<String>);

impl<'de> Deserialize<'de> for Found<StatusList> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Found<StatusList>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of models")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                let mut warnings = Vec::new();
                let mut index = 0;
                while let Some(entry) = seq.next_element::<Found<RawStatus<'de>>>()? {
                    if let Some(status) = status_entry(index, entry, &mut warnings) {
                        list.push(status);
                    }
                    index += 1;
                }
                Ok(Found::Expected(StatusList(list, warnings)))
            }
            other_kinds!(map);
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// A field value as read: a string borrowed from the input when it has no
/// escapes; anything else as the `Value` it is (numbers, booleans and null
/// allocate nothing).
enum Field<'de> {
    Str(Cow<'de, str>),
    Other(Value),
}

impl Field<'_> {
    fn into_value(self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.into_owned()),
            Field::Other(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(s)))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Field::Other(Value::Bool(b)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Field::Other(Value::from(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Field::Other(Value::from(n)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                Ok(Field::Other(Value::from(n)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Other(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Other)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// A status entry's fields, as read (a later duplicate key wins).
#[derive(Default)]
struct RawStatus<'de> {
    performance: Option<Field<'de>>,
    queued: Option<Field<'de>>,
    jobs: Option<Field<'de>>,
    eta: Option<Field<'de>>,
    model_type: Option<Field<'de>>,
    name: Option<Field<'de>>,
    count: Option<Field<'de>>,
}

/// The status fields the analytics read; any other key is `Unknown`.
enum StatusKey {
    Performance,
    Queued,
    Jobs,
    Eta,
    Type,
    Name,
    Count,
    Unknown,
}

impl StatusKey {
    fn of(key: &str) -> StatusKey {
        match key {
            "performance" => StatusKey::Performance,
            "queued" => StatusKey::Queued,
            "jobs" => StatusKey::Jobs,
            "eta" => StatusKey::Eta,
            "type" => StatusKey::Type,
            "name" => StatusKey::Name,
            "count" => StatusKey::Count,
            _ => StatusKey::Unknown,
        }
    }
}

impl<'de> Deserialize<'de> for Found<RawStatus<'de>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Found<RawStatus<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a model status")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawStatus::default();
                while let Some(key) = map.next_key_seed(KeyWith(StatusKey::of))? {
                    let slot = match key {
                        StatusKey::Performance => &mut raw.performance,
                        StatusKey::Queued => &mut raw.queued,
                        StatusKey::Jobs => &mut raw.jobs,
                        StatusKey::Eta => &mut raw.eta,
                        StatusKey::Type => &mut raw.model_type,
                        StatusKey::Name => &mut raw.name,
                        StatusKey::Count => &mut raw.count,
                        StatusKey::Unknown => {
                            map.next_value::<Skip>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(Found::Expected(raw))
            }
            other_kinds!(seq);
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// One status entry, or `None` (with a warning) when it is unusable.
fn status_entry(
    index: usize,
    entry: Found<RawStatus<'_>>,
    warnings: &mut Vec<String>,
) -> Option<HordeModelStatus> {
    let raw = match entry {
        Found::Expected(raw) => raw,
        Found::Other(found) => {
            warnings
                .push(format!("Horde status: skipping entry #{index}: expected an object, found {found}"));
            return None;
        }
    };
    let name = match raw.name {
        Some(Field::Str(name)) => name.into_owned(),
        Some(Field::Other(other)) => {
            warnings.push(format!(
                "Horde status: skipping entry #{index}: `name` should be a string, found {}",
                json_type_name(&other)
            ));
            return None;
        }
        None => {
            warnings.push(format!("Horde status: skipping entry #{index}: it has no `name`"));
            return None;
        }
    };
    let float_field = |warnings: &mut Vec<String>, key: &str, field: Option<Field<'_>>| -> Option<f64> {
        let value = field?.into_value();
        let parsed = lax_float(&value);
        if parsed.is_none() {
            warnings.push(format!(
                "Horde status: model {name:?}: `{key}` should be a number, found {}; treated as absent",
                json_type_name(&value)
            ));
        }
        parsed
    };
    let int_field = |warnings: &mut Vec<String>, key: &str, field: Option<Field<'_>>| -> Option<i64> {
        let value = field?.into_value();
        let parsed = lax_int(&value);
        if parsed.is_none() {
            warnings.push(format!(
                "Horde status: model {name:?}: `{key}` should be an integer, found {value}; treated as absent"
            ));
        }
        parsed
    };
    let model_type = match raw.model_type {
        Some(Field::Str(t)) => Some(HordeModelType::from_str(t)),
        _ => None,
    };
    Some(HordeModelStatus {
        performance: float_field(warnings, "performance", raw.performance),
        queued: float_field(warnings, "queued", raw.queued),
        jobs: float_field(warnings, "jobs", raw.jobs),
        eta: int_field(warnings, "eta", raw.eta),
        model_type,
        count: int_field(warnings, "count", raw.count).unwrap_or(0),
        name,
    })
}

/// The stats document, its periods read and their names interned, and the
/// warnings to log once it has parsed (as [`StatusList`]'s).
struct StatsDocument(HordeModelStats, Vec<String>);

/// The stats keys the analytics read.
enum StatsKey {
    Period(Period),
    Unknown,
}

impl StatsKey {
    fn of(key: &str) -> StatsKey {
        match key {
            "day" => StatsKey::Period(Period::Day),
            "month" => StatsKey::Period(Period::Month),
            "total" => StatsKey::Period(Period::Total),
            _ => StatsKey::Unknown,
        }
    }
}

impl<'de> Deserialize<'de> for Found<StatsDocument> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = Found<StatsDocument>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of day/month/total")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut names = Interner::default();
                // Per name id: its entry in the period being read (dict semantics).
                let mut slots = Vec::new();
                let mut read: [Option<Found<PeriodCounts>>; 3] = [None, None, None];
                let mut warnings = Vec::new();
                while let Some(key) = map.next_key_seed(KeyWith(StatsKey::of))? {
                    match key {
                        StatsKey::Period(period) => {
                            let seed = PeriodSeed {
                                period,
                                names: &mut names,
                                slots: &mut slots,
                                warnings: &mut warnings,
                            };
                            read[period as usize] = Some(map.next_value_seed(seed)?);
                        }
                        StatsKey::Unknown => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                let periods = Period::ALL.map(|period| match read[period as usize].take() {
                    None => PeriodCounts::default(),
                    Some(Found::Expected(counts)) => counts,
                    Some(Found::Other(found)) => {
                        warnings.push(format!(
                            "Horde stats: `{}` should be an object, found {found}; treated as empty",
                            period.as_str()
                        ));
                        PeriodCounts::default()
                    }
                });
                Ok(Found::Expected(StatsDocument(
                    HordeModelStats { names, periods: Box::new(periods) },
                    warnings,
                )))
            }
            other_kinds!(seq);
        }
        deserializer.deserialize_any(DocumentVisitor)
    }
}

/// Reads one period, interning its names. A count that is not an integer
/// is skipped with a warning (and drops an earlier count of the same name,
/// as the dict would hold the later value).
struct PeriodSeed<'s> {
    period: Period,
    names: &'s mut Interner,
    /// Per name id: `u32::MAX`, or the index of its entry in this period.
    slots: &'s mut Vec<u32>,
    warnings: &'s mut Vec<String>,
}

seed_is_visitor!(PeriodSeed<'_> => Found<PeriodCounts>, deserialize_any);

impl<'de> Visitor<'de> for PeriodSeed<'_> {
    type Value = Found<PeriodCounts>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of name: count")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const ABSENT: u32 = u32::MAX;
        let slots = self.slots;
        slots.clear();
        slots.resize(self.names.len(), ABSENT);
        // The names read so far hint at this period's size (periods list
        // mostly the same names).
        let capacity = self.names.len();
        let mut period =
            PeriodCounts { ids: Vec::with_capacity(capacity), counts: Vec::with_capacity(capacity) };
        let mut valid: Vec<bool> = Vec::with_capacity(capacity);
        while let Some(id) = map.next_key_seed(NameSeed(self.names))? {
            let value: Value = map.next_value()?;
            let count = lax_wide_int(&value);
            if count.is_none() {
                self.warnings.push(format!(
                    "Horde stats: `{}` of {:?} should be an integer, found {value}; skipped",
                    self.period.as_str(),
                    self.names.get_str(id)
                ));
            }
            let id_index = id as usize;
            if id_index >= slots.len() {
                slots.resize(id_index + 1, ABSENT);
            }
            match slots[id_index] {
                ABSENT => {
                    slots[id_index] = period.ids.len() as u32;
                    period.ids.push(id);
                    period.counts.push(count.unwrap_or(0));
                    valid.push(count.is_some());
                }
                // A repeated name: the later count, at the earlier position.
                slot => {
                    period.counts[slot as usize] = count.unwrap_or(0);
                    valid[slot as usize] = count.is_some();
                }
            }
        }
        if valid.contains(&false) {
            let mut keep = valid.iter();
            period.ids.retain(|_| keep.next() == Some(&true));
            let mut keep = valid.iter();
            period.counts.retain(|_| keep.next() == Some(&true));
        }
        Ok(Found::Expected(period))
    }
    other_kinds!(seq);
}

/// Reads a key of a period, interning it (no `String` per key).
struct NameSeed<'s>(&'s mut Interner);

seed_is_visitor!(NameSeed<'_> => u32, deserialize_str);

impl Visitor<'_> for NameSeed<'_> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.intern(name))
    }
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

use crate::analytics::names::{APHRODITE_PREFIX as APHRODITE, KOBOLDCPP_PREFIX as KOBOLDCPP};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn status(name: &str, count: i64) -> HordeModelStatus {
        HordeModelStatus {
            performance: Some(1.5),
            queued: None,
            jobs: None,
            eta: None,
            model_type: Some(HordeModelType::Text),
            name: name.into(),
            count,
        }
    }

    fn counts(stats: &HordeModelStats, period: Period) -> Vec<(&str, UsageCount)> {
        stats.period(period).collect()
    }

    #[test]
    fn parses_status_leniently() {
        let bytes = br#"[
          {"performance": 28.4, "queued": 34567.5, "jobs": 54.25, "eta": 395, "type": "text", "name": "koboldcpp/Foo-7B", "count": 2},
          {"performance": "7.5", "queued": 1, "jobs": "2", "eta": 10.0, "type": "image", "name": "Alpha", "count": "3"},
          {"name": "NoNumbers", "count": 2.5, "eta": null, "type": 7, "performance": [1], "extra": {"a": [1, 2]}},
          "not an object",
          {"count": 5},
          {"name": 7, "count": 1},
          [{"name": "in a list"}],
          {"name": "First", "count": 1, "name": "Dup\u00e9", "count": 4, "type": "other"}
        ]"#;
        let parsed = parse_status(bytes).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[0],
            HordeModelStatus {
                performance: Some(28.4),
                queued: Some(34567.5),
                jobs: Some(54.25),
                eta: Some(395),
                model_type: Some(HordeModelType::Text),
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
                model_type: Some(HordeModelType::Image),
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
        // Of two equal keys the later wins (escapes decoded).
        assert_eq!((parsed[3].name.as_str(), parsed[3].count), ("Dupé", 4));
        assert_eq!(parsed[3].model_type, Some(HordeModelType::Other("other".into())));
        assert_eq!(parsed[3].model_type.as_ref().map(HordeModelType::as_str), Some("other"));
    }

    #[test]
    fn rejects_unusable_responses() {
        assert!(matches!(parse_status(b"{}"), Err(HordeError::Shape(_))));
        assert!(matches!(parse_status(b"\"x\""), Err(HordeError::Shape(_))));
        assert!(matches!(parse_status(b"[1,"), Err(HordeError::Json(_))));
        assert!(matches!(parse_stats(b"[]"), Err(HordeError::Shape(_))));
        assert!(matches!(parse_stats(b"null"), Err(HordeError::Shape(_))));
        assert!(matches!(parse_stats(b"{} x"), Err(HordeError::Json(_))));
        // As a `Value` parse: an out-of-range number fails the document, even
        // in a field nobody reads.
        assert!(matches!(parse_status(br#"[{"name": "A", "extra": 1e400}]"#), Err(HordeError::Json(_))));
        assert!(matches!(parse_stats(br#"{"extra": [1e400]}"#), Err(HordeError::Json(_))));
    }

    #[test]
    fn non_finite_literals_read_as_null() {
        let parsed =
            parse_status(br#"[{"name": "A", "performance": NaN, "queued": Infinity, "count": 1}]"#).unwrap();
        assert_eq!((parsed[0].performance, parsed[0].queued, parsed[0].count), (None, None, 1));
    }

    #[test]
    fn parses_stats_leniently() {
        let stats = parse_stats(
            br#"{"day": {"A": 1, "B": "2", "C": 3.0, "D": 1.5, "E": null, "F": true, "G": " 1_000 "},
                 "month": [], "extra": 1}"#,
        )
        .unwrap();
        assert_eq!(counts(&stats, Period::Day), [("A", 1), ("B", 2), ("C", 3), ("F", 1), ("G", 1000)]);
        assert!(counts(&stats, Period::Month).is_empty());
        assert!(counts(&stats, Period::Total).is_empty());
    }

    #[test]
    fn stats_periods_are_dicts() {
        // A repeated name: the later count at the earlier position (and a
        // later non-integer drops it); a repeated period: the later one.
        let stats = parse_stats(
            br#"{"day": {"A": 1, "B": 2, "A": 3, "C": 4, "C": "x", "\u0041b": 5},
                 "month": {"A": 1}, "month": {"B": 7, "A": 8},
                 "total": {"Big": 340282366920938463463374607431768211455, "Neg": -12345678901234567890123}}"#,
        )
        .unwrap();
        assert_eq!(counts(&stats, Period::Day), [("A", 3), ("B", 2), ("Ab", 5)]);
        assert_eq!(counts(&stats, Period::Month), [("B", 7), ("A", 8)]);
        assert_eq!(counts(&stats, Period::Total), [("Neg", -12345678901234567890123)]);
        assert_eq!(stats.name_count(), 6);
    }

    #[test]
    fn status_lookup_is_case_insensitive_and_the_later_duplicate_wins() {
        let statuses = [status("Foo", 1), status("FOO", 2), status("Bar", 3)];
        let index = HordeIndex::new(&statuses, &HordeModelStats::default(), &mut BaseNames::new());
        assert_eq!(index.status("foo").map(|s| s.count), Some(2));
        assert_eq!(index.status("bAR").map(|s| s.count), Some(3));
        assert!(index.status("baz").is_none());
    }

    #[test]
    fn aggregated_status_takes_the_most_workers_first_on_ties() {
        let statuses =
            [status("Org/Foo-7B", 2), status("aphrodite/Org/Foo-7B", 5), status("koboldcpp/foo-7b", 5)];
        let index = HordeIndex::new(&statuses, &HordeModelStats::default(), &mut BaseNames::new());
        let scratch = &mut LookupScratch::default();
        let (best, _) = index.aggregated("Org/Foo-7B", "foo", scratch);
        assert_eq!(best.map(|s| s.name.as_str()), Some("aphrodite/Org/Foo-7B"));

        let found = index.with_variations("Org/Foo-7B", scratch);
        assert_eq!(found.status.map(|s| s.name.as_str()), Some("aphrodite/Org/Foo-7B"));
        let names = found.status_by_backend.map(|s| s.map(|s| s.name.as_str()));
        assert_eq!(names, [Some("Org/Foo-7B"), Some("aphrodite/Org/Foo-7B"), Some("koboldcpp/foo-7b")]);
        assert!(index.aggregated("Nothing", "nothing", scratch).0.is_none());
    }

    #[test]
    fn a_koboldcpp_name_is_its_own_koboldcpp_variant() {
        // `koboldcpp/Org/X` has the variants itself and `aphrodite/koboldcpp/Org/X`
        // only: `koboldcpp/X` is not one of them.
        let statuses = [status("koboldcpp/X", 9), status("KOBOLDCPP/Org/X", 1)];
        let index = HordeIndex::new(&statuses, &HordeModelStats::default(), &mut BaseNames::new());
        let found = index.with_variations("koboldcpp/Org/X", &mut LookupScratch::default());
        assert_eq!(found.status.map(|s| s.count), Some(1));
        assert_eq!(found.status_by_backend.map(|s| s.map(|s| s.count)), [Some(1), None, None]);
        // Only the original case decides: `KOBOLDCPP/Org/X` has a koboldcpp
        // variant, `koboldcpp/Org/X`, which is itself up to case.
        let found = index.with_variations("KOBOLDCPP/Org/X", &mut LookupScratch::default());
        assert_eq!(found.status_by_backend.map(|s| s.map(|s| s.count)), [Some(1), None, Some(1)]);
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
        let index = HordeIndex::new(&[], &foo_stats(), &mut base_names);
        // A later duplicate up to case wins, per period.
        assert_eq!(index.usage("koboldcpp/FOO-7B"), Usage { day: 10000, month: 2, total: 0 });
        let scratch = &mut LookupScratch::default();
        let key = base_names.base_key("Org/Foo-7B").to_owned();
        assert_eq!(key, "foo");
        assert_eq!(
            index.aggregated("Org/Foo-7B", &key, scratch).1,
            Usage { day: 10110, month: 202, total: 0 }
        );
        let key = base_names.base_key("Bar-7B").to_owned();
        assert_eq!(index.aggregated("Bar-7B", &key, scratch).1, Usage { day: 1000, month: 0, total: 3 });
        assert_eq!(index.aggregated("Nope", "nope", scratch).1, Usage::default());
    }

    #[test]
    fn stats_with_variations_split_by_backend_over_quantisations_only() {
        let mut base_names = BaseNames::new();
        let index = HordeIndex::new(&[], &foo_stats(), &mut base_names);
        let found = index.with_variations("Org/Foo-7B", &mut LookupScratch::default());
        // foo-13b is another size: not included.
        assert_eq!(found.usage, Usage { day: 10010, month: 2, total: 0 });
        assert_eq!(
            found.usage_by_backend,
            [
                Usage { day: 10, month: 0, total: 0 },
                Usage::default(),
                Usage { day: 10000, month: 2, total: 0 },
            ]
        );
        // A name with a backend prefix: its canonical quantisation group is
        // not one of its variants'.
        let found = index.with_variations("KoboldCPP/Foo-7B", &mut LookupScratch::default());
        assert_eq!(found.usage, Usage { day: 10000, month: 2, total: 0 });
    }

    #[test]
    fn base_names_are_memoised_by_what_is_parsed() {
        let mut base_names = BaseNames::new();
        assert_eq!(base_names.base_of("koboldcpp/Foo-7B"), "Foo");
        assert_eq!(base_names.base_of("Org/Foo-7B"), "Foo");
        assert_eq!(base_names.base_str("Foo-7B"), "Foo");
        assert_eq!(base_names.inputs.len(), 1);
        assert_eq!(base_names.base_key("aphrodite/Org/Foo-7B-Q4_K_M"), "foo");
        assert_eq!(base_names.base_of("a/b/c-7B"), "b/c");
    }
}
