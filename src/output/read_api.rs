//! The reference's two read routes as pure functions: a request's path and
//! query → which entry answers it and how; an entry's JSON and that view →
//! the response body. No I/O: the HTTP shell (`actors/read_api.rs`) owns the
//! entries, the headers and the connections.
//!
//! The routes are those of horde-model-reference 8.6.2's
//! `service/statistics/routers/` (mounted at `/model_references/statistics`,
//! behind the service's `/api` root path):
//!
//! - `GET {category}/deletion-risk?group_text_models&include_backend_variations&preset&limit&offset`
//! - `GET {category}?group_text_models&limit&offset`
//!
//! and their semantics are the reference's, as read from its routers:
//!
//! - **Validation** is FastAPI's: an unknown category (the reference's own
//!   list of fifteen), a value that is not a boolean or an integer, `limit < 1`
//!   or `offset < 0` → 422 with pydantic's error list, path first, then the
//!   query parameters in the order the route declares them. The last of
//!   repeated parameters counts; an empty `preset` is no preset.
//! - **Which entry**: deletion risk reads `grouped=<group_text_models>` with
//!   variations only for text, ungrouped, when asked; statistics read
//!   `grouped=<group_text_models>`.
//! - **Deletion-risk pagination** (`limit` given or `offset > 0`) slices
//!   `models` and sets `total_count` (models before slicing), `returned_count`,
//!   `offset`, `limit`; the summary stays the whole entry's.
//! - **Presets** filter the models ([`Preset`], `analytics/filter_presets.py`)
//!   and recompute what the reference recomputes: `returned_count`, `offset`
//!   0, `limit` null and the summary (`CategoryDeletionRiskSummary.from_risk_models`
//!   over the filtered models); `total_count` and the top-level
//!   `category_total_month_usage` stay the entry's. Pagination then applies to
//!   the filtered list. An unknown preset is a 400, answered only where an
//!   entry exists (the reference validates it after computing).
//! - **Statistics pagination** only sets `offset` and `limit`.
//! - **Categories the reference knows but this daemon does not hydrate**:
//!   deletion risk answers the reference's 400; statistics answer 404 (the
//!   reference would compute them from its own files: route those to it).
//!
//! Without slicing or a preset the stored bytes are the answer, unchanged
//! ([`Rendered::Stored`]).

use crate::analytics::risk::{DeletionRiskFlags, SummaryTally, TalliedModel};
use crate::category::Category;
use crate::input::horde::UsageCount;
use crate::keys::EntryKey;
use crate::output::json::{fields, push_int, push_opt_int, push_str};
use crate::output::risk;
use crate::python::lax::{lax_bool_str, lax_wide_int_str};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The reference's `MODEL_REFERENCE_CATEGORY`, in its declaration order (the
/// order its 422 message lists them in).
pub const REFERENCE_CATEGORIES: [&str; 15] = [
    "blip",
    "clip",
    "codeformer",
    "controlnet",
    "controlnet_annotator",
    "esrgan",
    "gfpgan",
    "safety_checker",
    "image_generation",
    "text_generation",
    "video_generation",
    "audio_generation",
    "miscellaneous",
    "lora",
    "ti",
];

/// `analytics/constants.py` `LOW_USAGE_THRESHOLD` (percent of the category's month usage).
const LOW_USAGE_THRESHOLD: f64 = 0.01;

/// Which of the two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    DeletionRisk,
    Statistics,
}

/// `DeletionRiskFilterPreset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    DeletionCandidates,
    ZeroUsage,
    NoWorkers,
    MissingData,
    HostIssues,
    Critical,
    LowUsage,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::DeletionCandidates,
        Preset::ZeroUsage,
        Preset::NoWorkers,
        Preset::MissingData,
        Preset::HostIssues,
        Preset::Critical,
        Preset::LowUsage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::DeletionCandidates => "deletion_candidates",
            Preset::ZeroUsage => "zero_usage",
            Preset::NoWorkers => "no_workers",
            Preset::MissingData => "missing_data",
            Preset::HostIssues => "host_issues",
            Preset::Critical => "critical",
            Preset::LowUsage => "low_usage",
        }
    }

    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn keeps(self, m: &ModelFacts) -> bool {
        let f = &m.deletion_risk_flags;
        match self {
            Preset::DeletionCandidates => {
                m.at_risk || m.usage_percentage_of_category < LOW_USAGE_THRESHOLD || m.worker_count == 0
            }
            Preset::ZeroUsage => m.usage_month == 0,
            Preset::NoWorkers => m.worker_count == 0,
            Preset::MissingData => f.missing_description || f.missing_baseline,
            Preset::HostIssues => {
                f.has_non_preferred_host || f.has_multiple_hosts || f.has_unknown_host || f.no_download_urls
            }
            Preset::Critical => m.is_critical,
            Preset::LowUsage => f.low_usage,
        }
    }
}

/// The `preset` parameter: validated only once an entry is there (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PresetParam {
    Known(Preset),
    Unknown(String),
}

/// `limit` and `offset`, validated (`limit >= 1`, `offset >= 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Page {
    pub limit: Option<u64>,
    pub offset: u64,
}

impl Page {
    /// The reference paginates when `limit is not None or offset > 0`.
    pub fn is_requested(self) -> bool {
        self.limit.is_some() || self.offset > 0
    }
}

/// How the answer is made from the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    /// The entry as stored.
    Stored,
    /// Deletion risk, a page of the models.
    RiskPage(Page),
    /// Deletion risk filtered by a preset, then paginated if asked.
    RiskPreset(PresetParam, Page),
    /// Statistics with `offset`/`limit` set.
    StatsPage(Page),
}

/// A valid request: the entry that answers it and the view of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    pub key: EntryKey,
    pub view: View,
}

/// An answer that is not an entry: status and JSON body (`{"detail": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub body: String,
}

impl ErrorAnswer {
    /// The reference's `HTTPException` shape.
    pub fn detail(status: u16, detail: &str) -> Self {
        ErrorAnswer { status, body: json!({ "detail": detail }).to_string() }
    }

    /// The answer when no entry can serve the request (never computed, or
    /// older than the stale TTL): 503, as a reader of a service that cannot
    /// compute would see, with the reason.
    pub fn unavailable(key: &EntryKey) -> Self {
        ErrorAnswer::detail(
            503,
            &format!(
                "{} is not available: the entry has not been computed yet or is older than its stale TTL \
                 (the hydrator's sources are failing); retry later",
                key.name()
            ),
        )
    }
}

/// What the body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// The stored entry, byte for byte.
    Stored,
    /// A body made from the entry.
    Body(String),
}

// ------------------------------------------------------------- parsing

/// One pydantic validation error, as FastAPI lists it.
struct FieldError {
    kind: &'static str,
    loc: [&'static str; 2],
    msg: String,
    input: String,
    ctx: Option<Value>,
}

impl FieldError {
    fn to_value(&self) -> Value {
        let mut v = json!({
            "type": self.kind,
            "loc": self.loc,
            "msg": self.msg,
            "input": self.input,
        });
        if let (Some(ctx), Some(map)) = (&self.ctx, v.as_object_mut()) {
            map.insert("ctx".to_string(), ctx.clone());
        }
        v
    }
}

fn enum_error(category: &str) -> FieldError {
    let (last, rest) = REFERENCE_CATEGORIES.split_last().unwrap_or((&"", &[]));
    let expected =
        format!("{} or '{last}'", rest.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "));
    FieldError {
        kind: "enum",
        loc: ["path", "model_category_name"],
        msg: format!("Input should be {expected}"),
        input: category.to_string(),
        ctx: Some(json!({ "expected": expected })),
    }
}

/// The error of the query parameter `name`, given as `raw`.
fn query_error(
    name: &'static str,
    raw: &str,
    kind: &'static str,
    msg: String,
    ctx: Option<Value>,
) -> Box<FieldError> {
    Box::new(FieldError { kind, loc: ["query", name], msg, input: raw.to_string(), ctx })
}

/// pydantic's lax `bool` from a string (`python::lax`).
fn parse_bool(name: &'static str, raw: &str) -> Result<bool, Box<FieldError>> {
    lax_bool_str(raw).ok_or_else(|| {
        let msg = "Input should be a valid boolean, unable to interpret input".to_string();
        query_error(name, raw, "bool_parsing", msg, None)
    })
}

/// pydantic's lax `int` from a string (`python::lax`: surrounding
/// whitespace, a sign, digits with single underscores, a fraction of zeros).
fn parse_int(name: &'static str, raw: &str) -> Result<i128, Box<FieldError>> {
    lax_wide_int_str(raw).ok_or_else(|| {
        let msg = "Input should be a valid integer, unable to parse string as an integer".to_string();
        query_error(name, raw, "int_parsing", msg, None)
    })
}

fn check_ge(name: &'static str, raw: &str, value: i128, ge: i128) -> Result<u64, Box<FieldError>> {
    if value < ge {
        let msg = format!("Input should be greater than or equal to {ge}");
        return Err(query_error(name, raw, "greater_than_equal", msg, Some(json!({ "ge": ge as i64 }))));
    }
    Ok(u64::try_from(value).unwrap_or(u64::MAX))
}

/// The query string's parameters, decoded; the last of repeated names wins.
fn last_values(query: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v.into_owned(),
            None => out.push((k.into_owned(), v.into_owned())),
        }
    }
    out
}

/// Which entry and view answer `route` for the path's `category` and the raw
/// `query` string; or the reference's error answer.
pub fn parse_request(route: Route, category: &str, query: &str) -> Result<ReadRequest, ErrorAnswer> {
    let params = last_values(query);
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut errors: Vec<Box<FieldError>> = Vec::new();

    let known = REFERENCE_CATEGORIES.contains(&category);
    if !known {
        errors.push(Box::new(enum_error(category)));
    }
    let flag = |name: &'static str, errors: &mut Vec<Box<FieldError>>| match get(name) {
        None => false,
        Some(raw) => parse_bool(name, raw).unwrap_or_else(|e| {
            errors.push(e);
            false
        }),
    };
    let group_text_models = flag("group_text_models", &mut errors);
    let (include_backend_variations, preset) = match route {
        Route::DeletionRisk => {
            let variations = flag("include_backend_variations", &mut errors);
            let preset = get("preset").filter(|p| !p.is_empty()).map(|p| match Preset::parse(p) {
                Some(known) => PresetParam::Known(known),
                None => PresetParam::Unknown(p.to_string()),
            });
            (variations, preset)
        }
        Route::Statistics => (false, None),
    };
    let mut page = Page::default();
    if let Some(raw) = get("limit") {
        match parse_int("limit", raw).and_then(|v| check_ge("limit", raw, v, 1)) {
            Ok(v) => page.limit = Some(v),
            Err(e) => errors.push(e),
        }
    }
    if let Some(raw) = get("offset") {
        match parse_int("offset", raw).and_then(|v| check_ge("offset", raw, v, 0)) {
            Ok(v) => page.offset = v,
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let detail: Vec<Value> = errors.iter().map(|e| e.to_value()).collect();
        return Err(ErrorAnswer { status: 422, body: json!({ "detail": detail }).to_string() });
    }

    let hydrated: Option<Category> = category.parse().ok();
    match route {
        Route::DeletionRisk => {
            let Some(category) = hydrated else {
                return Err(ErrorAnswer::detail(
                    400,
                    "Deletion risk analysis is only supported for image_generation and text_generation categories",
                ));
            };
            let variations = include_backend_variations && category.is_text() && !group_text_models;
            let key = EntryKey::risk(category, group_text_models, variations);
            let view = match preset {
                Some(preset) => View::RiskPreset(preset, page),
                None if page.is_requested() => View::RiskPage(page),
                None => View::Stored,
            };
            Ok(ReadRequest { key, view })
        }
        Route::Statistics => {
            let Some(category) = hydrated else {
                return Err(ErrorAnswer::detail(
                    404,
                    &format!(
                        "horde-hydrator serves statistics for image_generation and text_generation only; \
                         '{category}' is answered by the reference service"
                    ),
                ));
            };
            let key = EntryKey::stats(category, group_text_models);
            let view = if page.is_requested() { View::StatsPage(page) } else { View::Stored };
            Ok(ReadRequest { key, view })
        }
    }
}

// ------------------------------------------------------------- rendering

/// A deletion-risk entry, its parts borrowed from the stored JSON.
#[derive(Deserialize)]
struct RiskEntry<'a> {
    #[serde(borrow)]
    category: &'a RawValue,
    #[serde(borrow)]
    category_total_month_usage: &'a RawValue,
    total_count: u64,
    #[serde(borrow)]
    models: Vec<&'a RawValue>,
    #[serde(borrow)]
    summary: &'a RawValue,
}

/// What the presets and the summary read of a model.
#[derive(Deserialize)]
struct ModelFacts {
    deletion_risk_flags: DeletionRiskFlags,
    at_risk: bool,
    risk_score: u64,
    #[serde(default)]
    worker_count: u64,
    #[serde(default)]
    usage_month: UsageCount,
    #[serde(default)]
    usage_percentage_of_category: f64,
    is_critical: bool,
    has_warning: bool,
}

/// The entry could not be read as the kind of entry its key says (a value
/// written by something else under the daemon's key).
#[derive(Debug, thiserror::Error)]
#[error("the stored entry is not a valid {what}: {source}")]
pub struct BadEntry {
    what: &'static str,
    source: serde_json::Error,
}

impl BadEntry {
    /// The reference's answer when its cached value does not parse: it
    /// recomputes; the daemon cannot, so 500 with the reason.
    pub fn answer(&self) -> ErrorAnswer {
        ErrorAnswer::detail(500, &format!("Failed to read the cached entry: {self}"))
    }
}

/// The body answering `view` from the stored `entry`; `Err` for an unknown
/// preset (400) or an entry that does not parse (500).
pub fn render(view: &View, entry: &str) -> Result<Rendered, ErrorAnswer> {
    match view {
        View::Stored => Ok(Rendered::Stored),
        View::RiskPage(page) => risk_page(entry, *page).map(Rendered::Body).map_err(|e| e.answer()),
        View::RiskPreset(PresetParam::Unknown(name), _) => {
            let valid: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
            // The entry must be readable for the reference to get this far.
            parse_risk(entry).map_err(|e| e.answer())?;
            Err(ErrorAnswer::detail(
                400,
                &format!("Invalid preset: Unknown preset: '{name}'. Valid presets: {}", valid.join(", ")),
            ))
        }
        View::RiskPreset(PresetParam::Known(preset), page) => {
            risk_preset(entry, *preset, *page).map(Rendered::Body).map_err(|e| e.answer())
        }
        View::StatsPage(page) => stats_page(entry, *page).map(Rendered::Body).map_err(|e| e.answer()),
    }
}

fn parse_risk(entry: &str) -> Result<RiskEntry<'_>, BadEntry> {
    serde_json::from_str(entry).map_err(|source| BadEntry { what: "deletion-risk entry", source })
}

/// `{"category":…,"category_total_month_usage":…,"total_count":…,"returned_count":…,"offset":…,"limit":…,"models":[`
fn write_head(e: &RiskEntry<'_>, total_count: u64, returned: usize, page: Page, out: &mut String) {
    fields!(out, "{",
        "category" => push_raw(e.category),
        "category_total_month_usage" => push_raw(e.category_total_month_usage),
        "total_count" => push_int(total_count),
        "returned_count" => push_int(returned),
        "offset" => push_int(page.offset),
        "limit" => push_opt_int(page.limit),
    );
    out.push_str(",\"models\":[");
}

/// A value of the stored entry, copied as it is.
fn push_raw(out: &mut String, value: &RawValue) {
    out.push_str(value.get());
}

fn write_models(models: &[&RawValue], out: &mut String) {
    for (i, m) in models.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m.get());
    }
}

/// Python's `models[offset:offset+limit]`.
fn slice<T>(items: &[T], page: Page) -> &[T] {
    let start = usize::try_from(page.offset).unwrap_or(usize::MAX).min(items.len());
    let end = match page.limit {
        Some(limit) => start.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX)).min(items.len()),
        None => items.len(),
    };
    &items[start..end]
}

fn risk_page(entry: &str, page: Page) -> Result<String, BadEntry> {
    let e = parse_risk(entry)?;
    let models = slice(&e.models, page);
    let mut out = String::with_capacity(
        models.iter().map(|m| m.get().len() + 1).sum::<usize>() + e.summary.get().len() + 256,
    );
    write_head(&e, e.models.len() as u64, models.len(), page, &mut out);
    write_models(models, &mut out);
    out.push_str("],\"summary\":");
    out.push_str(e.summary.get());
    out.push('}');
    Ok(out)
}

fn risk_preset(entry: &str, preset: Preset, page: Page) -> Result<String, BadEntry> {
    let e = parse_risk(entry)?;
    let mut kept: Vec<&RawValue> = Vec::new();
    let mut tally = SummaryTally::default();
    for raw in &e.models {
        let m: ModelFacts = serde_json::from_str(raw.get())
            .map_err(|source| BadEntry { what: "deletion-risk model", source })?;
        if !preset.keeps(&m) {
            continue;
        }
        kept.push(raw);
        tally.count(TalliedModel {
            at_risk: m.at_risk,
            is_critical: m.is_critical,
            has_warning: m.has_warning,
            flags: &m.deletion_risk_flags,
            risk_score: m.risk_score,
            usage_month: m.usage_month,
        });
    }
    let summary = tally.ungrouped();
    // The preset's response: total_count the entry's, offset 0, limit None;
    // pagination (if asked) then counts the filtered models.
    let (total_count, shown, page) = if page.is_requested() {
        (kept.len() as u64, slice(&kept, page), page)
    } else {
        (e.total_count, &kept[..], Page::default())
    };
    let mut out = String::with_capacity(shown.iter().map(|m| m.get().len() + 1).sum::<usize>() + 1024);
    write_head(&e, total_count, shown.len(), page, &mut out);
    write_models(shown, &mut out);
    risk::write_tail(&summary, &mut out);
    Ok(out)
}

fn stats_page(entry: &str, page: Page) -> Result<String, BadEntry> {
    let fields: indexmap::IndexMap<String, &RawValue> =
        serde_json::from_str(entry).map_err(|source| BadEntry { what: "statistics entry", source })?;
    let limit = match page.limit {
        Some(l) => l.to_string(),
        None => "null".to_string(),
    };
    let offset = page.offset.to_string();
    let mut out = String::with_capacity(entry.len() + 32);
    out.push('{');
    let mut first = true;
    let mut push = |out: &mut String, key: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        push_str(out, key);
        out.push(':');
        out.push_str(value);
    };
    for (k, v) in &fields {
        let value = match k.as_str() {
            "offset" => offset.as_str(),
            "limit" => limit.as_str(),
            _ => v.get(),
        };
        push(&mut out, k, value);
    }
    for (k, value) in [("offset", &offset), ("limit", &limit)] {
        if !fields.contains_key(k) {
            push(&mut out, k, value);
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(route: Route, cat: &str, q: &str) -> ErrorAnswer {
        parse_request(route, cat, q).unwrap_err()
    }

    #[test]
    fn validation_errors_are_fastapis() {
        let e = err(Route::DeletionRisk, "image_generation", "limit=0");
        assert_eq!(e.status, 422);
        assert_eq!(
            e.body,
            r#"{"detail":[{"type":"greater_than_equal","loc":["query","limit"],"msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}}]}"#
        );
        let e = err(Route::DeletionRisk, "image_generation", "offset=-1");
        assert_eq!(
            e.body,
            r#"{"detail":[{"type":"greater_than_equal","loc":["query","offset"],"msg":"Input should be greater than or equal to 0","input":"-1","ctx":{"ge":0}}]}"#
        );
        let e = err(Route::DeletionRisk, "image_generation", "limit=abc&offset=x&group_text_models=maybe");
        assert_eq!(
            e.body,
            r#"{"detail":[{"type":"bool_parsing","loc":["query","group_text_models"],"msg":"Input should be a valid boolean, unable to interpret input","input":"maybe"},{"type":"int_parsing","loc":["query","limit"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"},{"type":"int_parsing","loc":["query","offset"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}"#
        );
        let e = err(Route::Statistics, "foo", "limit=0");
        assert_eq!(
            e.body,
            r#"{"detail":[{"type":"enum","loc":["path","model_category_name"],"msg":"Input should be 'blip', 'clip', 'codeformer', 'controlnet', 'controlnet_annotator', 'esrgan', 'gfpgan', 'safety_checker', 'image_generation', 'text_generation', 'video_generation', 'audio_generation', 'miscellaneous', 'lora' or 'ti'","input":"foo","ctx":{"expected":"'blip', 'clip', 'codeformer', 'controlnet', 'controlnet_annotator', 'esrgan', 'gfpgan', 'safety_checker', 'image_generation', 'text_generation', 'video_generation', 'audio_generation', 'miscellaneous', 'lora' or 'ti'"}},{"type":"greater_than_equal","loc":["query","limit"],"msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}}]}"#
        );
        let e = err(Route::DeletionRisk, "clip", "");
        assert_eq!(e.status, 400);
        assert_eq!(
            e.body,
            r#"{"detail":"Deletion risk analysis is only supported for image_generation and text_generation categories"}"#
        );
    }

    #[test]
    fn lax_numbers_and_booleans_as_pydantic_reads_them() {
        for (raw, want) in [("%2B1", 1), ("%201", 1), ("1%20", 1), ("1.0", 1), ("1_0", 10), ("01", 1)] {
            let r = parse_request(Route::DeletionRisk, "image_generation", &format!("limit={raw}")).unwrap();
            assert_eq!(r.view, View::RiskPage(Page { limit: Some(want), offset: 0 }), "{raw}");
        }
        for raw in ["-0", "1e1", "0x1", "", "1.5", "1__0", "_1"] {
            let e = err(Route::DeletionRisk, "image_generation", &format!("limit={raw}"));
            assert_eq!(e.status, 422, "{raw}");
        }
        for raw in ["TRUE", "True", "yes", "Y", "on", "1"] {
            let r = parse_request(Route::Statistics, "text_generation", &format!("group_text_models={raw}"))
                .unwrap();
            assert!(r.key.grouped, "{raw}");
        }
        for raw in ["", "true%20", "2"] {
            assert_eq!(
                err(Route::Statistics, "text_generation", &format!("group_text_models={raw}")).status,
                422
            );
        }
        // The last of repeated parameters counts.
        assert_eq!(err(Route::DeletionRisk, "image_generation", "limit=1&limit=0").status, 422);
    }

    #[test]
    fn which_entry_answers() {
        let r =
            parse_request(Route::DeletionRisk, "text_generation", "include_backend_variations=true").unwrap();
        assert_eq!(r.key, EntryKey::risk(Category::TextGeneration, false, true));
        assert_eq!(r.view, View::Stored);
        let r = parse_request(
            Route::DeletionRisk,
            "text_generation",
            "include_backend_variations=true&group_text_models=true",
        )
        .unwrap();
        assert_eq!(r.key, EntryKey::risk(Category::TextGeneration, true, false));
        let r = parse_request(Route::DeletionRisk, "image_generation", "include_backend_variations=true")
            .unwrap();
        assert_eq!(r.key, EntryKey::risk(Category::ImageGeneration, false, false));
        let r = parse_request(Route::DeletionRisk, "image_generation", "preset=").unwrap();
        assert_eq!(r.view, View::Stored, "an empty preset is no preset");
        let r = parse_request(Route::Statistics, "image_generation", "offset=0").unwrap();
        assert_eq!(r.view, View::Stored, "offset 0 without limit is no pagination");
        let r = parse_request(Route::DeletionRisk, "image_generation", "preset=nope").unwrap();
        assert_eq!(r.view, View::RiskPreset(PresetParam::Unknown("nope".into()), Page::default()));
    }

    const ENTRY: &str = r#"{"category":"image_generation","category_total_month_usage":30,"total_count":3,"returned_count":3,"offset":0,"limit":null,"models":[{"name":"a","deletion_risk_flags":{"zero_usage_month":false,"no_active_workers":false},"at_risk":false,"risk_score":0,"worker_count":2,"usage_month":30,"usage_percentage_of_category":100.0,"is_critical":false,"has_warning":false},{"name":"b","deletion_risk_flags":{"zero_usage_month":true,"no_active_workers":true,"low_usage":true},"at_risk":true,"risk_score":3,"worker_count":0,"usage_month":0,"usage_percentage_of_category":0.0,"is_critical":true,"has_warning":false},{"name":"c","deletion_risk_flags":{"has_non_preferred_host":true},"at_risk":true,"risk_score":1,"worker_count":1,"usage_month":0,"usage_percentage_of_category":0.0,"is_critical":false,"has_warning":true}],"summary":{"total_models":3}}"#;

    fn body(view: View, entry: &str) -> Value {
        match render(&view, entry).unwrap() {
            Rendered::Body(b) => serde_json::from_str(&b).unwrap(),
            Rendered::Stored => serde_json::from_str(entry).unwrap(),
        }
    }

    fn names(v: &Value) -> Vec<&str> {
        v["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn pagination_slices_models_and_keeps_the_summary() {
        let v = body(View::RiskPage(Page { limit: Some(1), offset: 1 }), ENTRY);
        assert_eq!(names(&v), ["b"]);
        assert_eq!((v["total_count"].as_u64(), v["returned_count"].as_u64()), (Some(3), Some(1)));
        assert_eq!((v["offset"].as_u64(), v["limit"].as_u64()), (Some(1), Some(1)));
        assert_eq!(v["summary"], json!({"total_models": 3}));
        let v = body(View::RiskPage(Page { limit: None, offset: 7 }), ENTRY);
        assert_eq!(names(&v), Vec::<&str>::new());
        assert_eq!(v["limit"], Value::Null);
        assert_eq!(render(&View::Stored, ENTRY).unwrap(), Rendered::Stored);
    }

    #[test]
    fn presets_filter_and_recompute_the_summary() {
        let v = body(View::RiskPreset(PresetParam::Known(Preset::Critical), Page::default()), ENTRY);
        assert_eq!(names(&v), ["b"]);
        assert_eq!(v["total_count"], 3, "the entry's total");
        assert_eq!(v["returned_count"], 1);
        assert_eq!(v["category_total_month_usage"], 30, "the entry's");
        assert_eq!(v["summary"]["total_models"], 1);
        assert_eq!(v["summary"]["models_critical"], 1);
        assert_eq!(v["summary"]["average_risk_score"], 3.0);
        assert_eq!(v["summary"]["category_total_month_usage"], 0);
        let v =
            body(View::RiskPreset(PresetParam::Known(Preset::DeletionCandidates), Page::default()), ENTRY);
        assert_eq!(names(&v), ["b", "c"]);
        assert_eq!(v["summary"]["average_risk_score"], 2.0);
        assert_eq!(v["summary"]["models_with_warnings"], 1);
        let v = body(View::RiskPreset(PresetParam::Known(Preset::HostIssues), Page::default()), ENTRY);
        assert_eq!(names(&v), ["c"]);
        let v = body(
            View::RiskPreset(PresetParam::Known(Preset::ZeroUsage), Page { limit: Some(1), offset: 1 }),
            ENTRY,
        );
        assert_eq!(names(&v), ["c"]);
        assert_eq!((v["total_count"].as_u64(), v["returned_count"].as_u64()), (Some(2), Some(1)));
        assert_eq!(v["summary"]["total_models"], 2, "the filtered list's summary, not the page's");
        let e =
            render(&View::RiskPreset(PresetParam::Unknown("x".into()), Page::default()), ENTRY).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.body,
            r#"{"detail":"Invalid preset: Unknown preset: 'x'. Valid presets: deletion_candidates, zero_usage, no_workers, missing_data, host_issues, critical, low_usage"}"#
        );
    }

    #[test]
    fn statistics_pagination_sets_offset_and_limit_only() {
        let entry =
            r#"{"category":"text_generation","offset":0,"limit":null,"total_models":4,"x":{"a":[1,2]}}"#;
        let out = render(&View::StatsPage(Page { limit: Some(2), offset: 5 }), entry).unwrap();
        assert_eq!(
            out,
            Rendered::Body(
                r#"{"category":"text_generation","offset":5,"limit":2,"total_models":4,"x":{"a":[1,2]}}"#
                    .into()
            )
        );
    }

    #[test]
    fn a_foreign_value_is_a_500_not_a_panic() {
        let e = render(&View::RiskPage(Page { limit: Some(1), offset: 0 }), "{\"nope\":1}").unwrap_err();
        assert_eq!(e.status, 500);
        let e = render(&View::StatsPage(Page { limit: Some(1), offset: 0 }), "[1]").unwrap_err();
        assert_eq!(e.status, 500);
    }
}
