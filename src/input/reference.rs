//! The model reference: parsing a category's v2 JSON (name → record).
//!
//! Records keep their file order (ties in every sort follow it). A record
//! that is not an object is skipped with a warning naming it; the rest of the
//! category is still computed. A record without a string `name` field is kept
//! here (the reference's statistics read raw records and count it) but
//! [`RawRecord::has_usable_name`] lets the deletion-risk analysis skip it (the
//! reference's typed records require the field).
//!
//! The typed accessors answer what the reference's pydantic records would
//! hold after validation: pydantic's lax coercions (`"123"` → 123, `1.0` → 1,
//! `"yes"` → true) and its defaults for missing fields. Where pydantic would
//! reject the record (and the reference crash), the field is treated as
//! absent and a warning names the record and the field. The statistics read
//! the raw dict instead, as Python does, through typed views of their own:
//! [`RawRecord::stats_fields`], [`RawRecord::tags`] and
//! `RawRecord::config_download` (the download list a text group's fold
//! extends).
//!
//! # Shaped for speed
//!
//! The parse is a large share of a cycle, and in a fresh process every byte
//! it allocates costs page faults, so records are not JSON trees. Each of the
//! [`READ_FIELDS`] is reduced, while it is parsed, to what its readers (the
//! accessors here, the statistics) ever look at: scalars whole ([`Val`]),
//! strings as pieces of one text buffer shared by the category ([`Span`]),
//! arrays and objects by their emptiness (and, for the fields whose Python
//! `str()` the statistics count, their Python repr), `tags` as the texts the
//! statistics count, `config.download` as a list of entries holding only
//! their `file_url` and its host. A whole category is then a handful of
//! allocations (the text, the records, the tag texts, the download entries)
//! instead of a map and a string per key and per value. Everything else in a
//! record is validated as JSON and skipped without being built.
//!
//! Duplicate keys follow Python's `json.loads` into a dict: the later value
//! wins, at the earlier key's position (which only matters for records).

pub(crate) mod arena;
pub(crate) mod parse;

pub use parse::parse_reference;

use crate::python::lax::{lax_bool, lax_bool_str, lax_wide_int, lax_wide_int_str, JsonType};
use arena::{Config, Description, Doc, DownloadField, Entry, Fields, FileUrl, Run, Span, Val};
use std::borrow::Cow;
use std::sync::Arc;

/// A category's records, in file order. Shared (`Arc`): the fetcher keeps
/// the last good reference while a cycle reads it, without a deep copy.
#[derive(Debug, Clone, Default)]
pub struct ParsedReference {
    doc: Arc<Doc>,
}

impl ParsedReference {
    /// The records, in file order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = RawRecord<'_>> + Clone {
        let doc: &Doc = &self.doc;
        doc.records.iter().map(move |fields| RawRecord { name: doc.str(fields.name), doc, fields })
    }
}

/// One model of the reference: its name and (through the accessors) the
/// fields the analytics read.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// The key of the record in the category object (the model name).
    pub name: &'a str,
    doc: &'a Doc,
    fields: &'a Fields,
}

/// The model reference could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("model reference is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model reference must be a JSON object of name → record, found {0}")]
    NotAnObject(&'static str),
    #[error("model reference too large: its kept text exceeds 4 GiB")]
    TooLarge,
}

/// Every top-level record field that the analytics read (deletion risk and
/// statistics). Parsing keeps only these (the rest — `settings`, `metadata`,
/// `display_name`, ... — is skipped without being built). A reader of a new
/// field must add it here and to [`Field`] (the unit test
/// `kept_fields_are_the_read_ones` checks the two agree).
pub const READ_FIELDS: [&str; 14] = [
    "name",
    "description",
    "baseline",
    "nsfw",
    "size_on_disk_bytes",
    "config",
    "tags",
    "style",
    "parameters",
    "parameters_count",
    "trigger",
    "inpainting",
    "requirements",
    "showcases",
];

/// One entry of a record's `config.download`, as the analytics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download<'a> {
    /// `file_url`; `None` when it is missing or not a string (the reference
    /// requires a string there).
    pub file_url: Option<&'a str>,
}

/// What the statistics read of a record, read as the reference reads the raw
/// dict (`calculate_category_statistics`): Python truthiness, `str()` of
/// whatever value is there, `isinstance(v, (int, float)) and v > 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFields<'a> {
    /// `nsfw` is truthy.
    pub nsfw: bool,
    /// `str(baseline)` when it is truthy.
    pub baseline: Option<Cow<'a, str>>,
    /// `int(size_on_disk_bytes)` when it is a positive number.
    pub size_on_disk_bytes: Option<i128>,
    /// `str(style)` when it is truthy.
    pub style: Option<Cow<'a, str>>,
    /// The size of a text model, `int()` of a positive number: the key
    /// `parameters_count` if the record has it, else `parameters` (the
    /// expected statistics read it so).
    pub parameters: Option<i128>,
    /// `trigger` is a non-empty list.
    pub trigger: bool,
    /// `inpainting` is truthy.
    pub inpainting: bool,
    /// `requirements` is a non-empty object.
    pub requirements: bool,
    /// `showcases` is a non-empty list.
    pub showcases: bool,
}

/// A record's `config.download` as the statistics read the raw dict: what
/// counting its items and Python's `list.extend` of it (a text group's fold)
/// need to know.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConfigDownload<'a> {
    /// No `config`, or a `config` object without `download`.
    Missing,
    /// `config.download` is a list.
    List(DownloadItems<'a>),
    /// `config.download` is a string or an object: `list.extend` adds this
    /// many items (its characters, its keys), none of them an object.
    Extends { items: usize },
    /// `config.download` is null, a boolean or a number (`list.extend`
    /// raises).
    Scalar(JsonType),
    /// `config` is not an object: for a string or an array Python's
    /// `"download" in config`, `None` for the types on which `in` raises.
    ConfigNotObject { download_in: Option<bool> },
}

/// The items of one record's `config.download` list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DownloadItems<'a> {
    doc: &'a Doc,
    entries: &'a [Entry],
}

impl<'a> DownloadItems<'a> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The `file_url` of each item that is an object (the others have none
    /// to read), in order.
    pub(crate) fn file_urls(self) -> impl Iterator<Item = RawFileUrl<'a>> {
        let doc = self.doc;
        self.entries.iter().filter_map(move |entry| match *entry {
            Entry::Object(FileUrl::Missing) => Some(RawFileUrl::Missing),
            Entry::Object(FileUrl::Str { url, netloc }) => {
                Some(RawFileUrl::Str { url: doc.str(url), netloc: netloc.map(|n| doc.str(n)) })
            }
            Entry::Object(FileUrl::Other { ty, truthy }) => Some(RawFileUrl::Other { ty, truthy }),
            Entry::Other(_) => None,
        })
    }
}

/// A download item's `file_url` as the raw dict holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawFileUrl<'a> {
    Missing,
    /// A string, and the `netloc` of Python's `urlsplit` of it (`None`
    /// where `urlsplit` raises).
    Str {
        url: &'a str,
        netloc: Option<&'a str>,
    },
    /// Anything else: its type and Python truthiness.
    Other {
        ty: JsonType,
        truthy: bool,
    },
}

/// `isinstance(v, (int, float)) and v > 0`, then `int(v)` (bools are ints;
/// floats truncate). `None` when the value does not count.
fn positive_int(value: Option<Val>) -> Option<i128> {
    match value? {
        Val::Bool(true) => Some(1),
        Val::PosInt(u) => (u > 0).then_some(i128::from(u)),
        // `as` saturates: sizes beyond i128 are not worth a big-int type.
        Val::Float(f) => (f > 0.0).then_some(f.trunc() as i128),
        _ => None,
    }
}

/// The text model's size as the expected statistics read it: the key
/// `parameters_count` if the record has it, else `parameters`.
fn parameters_field(fields: &Fields) -> Option<Val> {
    if fields.parameters_count.is_some() {
        fields.parameters_count
    } else {
        fields.parameters
    }
}

impl<'a> RawRecord<'a> {
    /// Whether the record has the string `name` field the reference's typed
    /// records require. Logs a warning naming the record when it has not.
    pub fn has_usable_name(&self) -> bool {
        match self.fields.name_field {
            Some(JsonType::String) => true,
            Some(other) => {
                log::warn!(
                    "model reference: record {:?}: `name` should be a string, found {}; record skipped",
                    self.name,
                    other.name()
                );
                false
            }
            None => {
                log::warn!("model reference: record {:?} has no `name` field; record skipped", self.name);
                false
            }
        }
    }

    fn warn_type(&self, field: &str, expected: &str, found: JsonType) {
        log::warn!(
            "model reference: record {:?}: `{field}` should be {expected}, found {}; treated as absent",
            self.name,
            found.name()
        );
    }

    /// The fields the statistics read, in one typed value.
    pub fn stats_fields(&self) -> StatsFields<'a> {
        let f = self.fields;
        StatsFields {
            nsfw: f.nsfw.is_some_and(Val::truthy),
            baseline: f.baseline.filter(|v| v.truthy()).map(|v| self.py_str(v)),
            size_on_disk_bytes: positive_int(f.size_on_disk_bytes),
            style: f.style.filter(|v| v.truthy()).map(|v| self.py_str(v)),
            parameters: positive_int(parameters_field(f)),
            trigger: f.trigger,
            inpainting: f.inpainting,
            requirements: f.requirements,
            showcases: f.showcases,
        }
    }

    /// `config.download` as the statistics read it ([`ConfigDownload`]).
    pub(crate) fn config_download(&self) -> ConfigDownload<'a> {
        match self.fields.config {
            Config::Missing | Config::Object(DownloadField::Missing) => ConfigDownload::Missing,
            Config::Object(DownloadField::List(run)) => {
                ConfigDownload::List(DownloadItems { doc: self.doc, entries: self.entries(run) })
            }
            Config::Object(DownloadField::Str { chars: items } | DownloadField::Object { keys: items }) => {
                ConfigDownload::Extends { items }
            }
            Config::Object(DownloadField::Scalar(ty)) => ConfigDownload::Scalar(ty),
            Config::Other { download_in, .. } => ConfigDownload::ConfigNotObject { download_in },
        }
    }

    /// Python's `str(value)` of one of this record's field values.
    fn py_str(&self, value: Val) -> Cow<'a, str> {
        match value {
            Val::Str(s) => Cow::Borrowed(self.str(s)),
            Val::Array(c) | Val::Object(c) => Cow::Borrowed(self.str(c.repr)),
            scalar => Cow::Owned(crate::python::json::py_str(&scalar.scalar()).into_owned()),
        }
    }

    /// The text of a span of this record.
    fn str(&self, span: Span) -> &'a str {
        self.doc.str(span)
    }

    /// The entries of a `config.download` list.
    fn entries(&self, run: Run) -> &'a [Entry] {
        let start = run.start as usize;
        self.doc.entries.get(start..start + run.len as usize).unwrap_or_default()
    }

    /// Python's `str()` of each truthy item of `tags` (when it is a list).
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (doc, run) = (self.doc, self.fields.tags);
        let start = run.start as usize;
        let spans = doc.tags.get(start..start + run.len as usize).unwrap_or_default();
        spans.iter().map(move |span| doc.str(*span))
    }

    /// An optional string field (`str | None`): null and missing are `None`.
    fn optional_str(&self, field: &str, value: Option<Val>) -> Option<&'a str> {
        match value {
            None | Some(Val::Null) => None,
            Some(Val::Str(s)) => Some(self.str(s)),
            Some(other) => {
                self.warn_type(field, "a string or null", other.json_type());
                None
            }
        }
    }

    /// `validate_description`: `description` (`str | None`) is missing, or
    /// only whitespace (Python's `strip()`).
    pub fn description_missing(&self) -> bool {
        match self.fields.description {
            Description::Missing | Description::Null => true,
            Description::Text { blank } => blank,
            Description::Other(found) => {
                self.warn_type("description", "a string or null", found);
                true
            }
        }
    }

    /// `baseline`: optional for text records; image records require it (a
    /// missing one is reported and treated as absent).
    pub fn baseline(&self, category: crate::category::Category) -> Option<&'a str> {
        if category == crate::category::Category::ImageGeneration && self.fields.baseline.is_none() {
            log::warn!(
                "model reference: record {:?}: image record without `baseline`; treated as absent",
                self.name
            );
        }
        self.optional_str("baseline", self.fields.baseline)
    }

    /// `nsfw`: text records default to `false`; image records require it
    /// (missing or invalid: `None`). Lax boolean coercion applies.
    pub fn nsfw(&self, category: crate::category::Category) -> Option<bool> {
        let default = match category {
            crate::category::Category::TextGeneration => Some(false),
            crate::category::Category::ImageGeneration => None,
        };
        let Some(v) = self.fields.nsfw else {
            if default.is_none() {
                log::warn!(
                    "model reference: record {:?}: image record without `nsfw`; treated as absent",
                    self.name
                );
            }
            return default;
        };
        self.lax("nsfw", "a boolean", v, lax_bool_str, lax_bool).or(default)
    }

    /// `size_on_disk_bytes` (`int | None`, lax integer coercion).
    pub fn size_on_disk_bytes(&self) -> Option<i128> {
        let v = match self.fields.size_on_disk_bytes {
            None | Some(Val::Null) => return None,
            Some(v) => v,
        };
        self.lax("size_on_disk_bytes", "an integer or null", v, lax_wide_int_str, lax_wide_int)
    }

    /// `v` through one of pydantic's lax coercions (`of_str` reads a string,
    /// `of_scalar` any other value); where it is rejected, a warning names
    /// the field and the answer is `None`.
    fn lax<T>(
        &self,
        field: &str,
        expected: &str,
        v: Val,
        of_str: impl FnOnce(&str) -> Option<T>,
        of_scalar: impl FnOnce(&serde_json::Value) -> Option<T>,
    ) -> Option<T> {
        let coerced = match v {
            Val::Str(s) => of_str(self.str(s)),
            other => of_scalar(&other.scalar()),
        };
        if coerced.is_none() {
            self.warn_type(field, expected, v.json_type());
        }
        coerced
    }

    /// `config.download`: missing `config` or `download` is an empty list;
    /// an entry that is not an object is skipped with a warning.
    pub fn downloads(&self) -> Vec<Download<'a>> {
        let download = match self.fields.config {
            Config::Missing => return Vec::new(),
            Config::Object(download) => download,
            Config::Other { ty, .. } => {
                self.warn_type("config", "an object", ty);
                return Vec::new();
            }
        };
        let run = match download {
            DownloadField::Missing => return Vec::new(),
            DownloadField::List(run) => run,
            DownloadField::Str { .. } => return self.not_a_list(JsonType::String),
            DownloadField::Object { .. } => return self.not_a_list(JsonType::Object),
            DownloadField::Scalar(ty) => return self.not_a_list(ty),
        };
        let entries = self.entries(run);
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let file_url = match *entry {
                Entry::Other(ty) => {
                    self.warn_type("config.download[]", "an object", ty);
                    continue;
                }
                Entry::Object(FileUrl::Str { url, .. }) => Some(self.str(url)),
                Entry::Object(FileUrl::Other { ty, .. }) => {
                    self.warn_type("config.download[].file_url", "a string", ty);
                    None
                }
                Entry::Object(FileUrl::Missing) => {
                    log::warn!("model reference: record {:?}: a download without `file_url`", self.name);
                    None
                }
            };
            out.push(Download { file_url });
        }
        out
    }

    fn not_a_list(&self, found: JsonType) -> Vec<Download<'a>> {
        self.warn_type("config.download", "a list", found);
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::parse::Field;
    use super::*;
    use crate::category::Category;
    use serde_json::json;
    use serde_json::Value;

    /// The fields of the record `{"m": fields}`.
    fn fields_of(fields: Value) -> Fields {
        let parsed = parse_reference(json!({ "m": fields }).to_string().as_bytes()).unwrap();
        let fields = parsed.records().next().unwrap().fields.clone();
        fields
    }

    /// A JSON value as a record field holds it (its text, if any, is not kept).
    fn val(value: &Value) -> Val {
        fields_of(json!({ "baseline": value })).baseline.unwrap()
    }

    /// Python truthiness of a JSON value.
    fn truthy(value: &Value) -> bool {
        val(value).truthy()
    }

    #[test]
    fn python_truthiness() {
        for v in
            [json!(null), json!(false), json!(0), json!(0.0), json!(-0.0), json!(""), json!([]), json!({})]
        {
            assert!(!truthy(&v), "{v} is falsy");
        }
        for v in [json!(true), json!(-1), json!(0.5), json!("0"), json!([0]), json!({"a": null})] {
            assert!(truthy(&v), "{v} is truthy");
        }
    }

    #[test]
    fn sizes_and_parameters_as_python_reads_them() {
        assert_eq!(positive_int(Some(val(&json!(5214865159u64)))), Some(5214865159));
        assert_eq!(positive_int(Some(val(&json!(2.9)))), Some(2));
        assert_eq!(positive_int(Some(val(&json!(0.5)))), Some(0));
        assert_eq!(positive_int(Some(val(&json!(true)))), Some(1));
        for odd in [json!("123"), json!(0), json!(-7), json!(-0.5), json!(null), json!(false), json!([1])] {
            assert_eq!(positive_int(Some(val(&odd))), None, "{odd}");
        }
        assert_eq!(positive_int(None), None);

        let m = fields_of;
        assert_eq!(parameters_field(&m(json!({"parameters": 7}))), Some(val(&json!(7))));
        assert_eq!(
            parameters_field(&m(json!({"parameters": 7, "parameters_count": null}))),
            Some(val(&json!(null)))
        );
        assert_eq!(
            parameters_field(&m(json!({"parameters": null, "parameters_count": 9}))),
            Some(val(&json!(9)))
        );
        assert_eq!(parameters_field(&m(json!({}))), None);
    }

    /// `validate_description`: missing, null, or only whitespace in Python's
    /// sense of `str.strip()` (which includes `\x1c`).
    #[test]
    fn description_is_missing_when_blank_in_python_terms() {
        let parsed = parse_reference(
            br#"{"a": {"name": "a"}, "b": {"name": "b", "description": ""},
                 "c": {"name": "c", "description": " \u001c\t"}, "d": {"name": "d", "description": " x "},
                 "e": {"name": "e", "description": null}}"#,
        )
        .unwrap();
        let missing: Vec<bool> = parsed.records().map(|r| r.description_missing()).collect();
        assert_eq!(missing, [true, true, true, false, true]);
    }

    /// A reference holding one record, `"m"`, with these fields.
    fn record(fields: Value) -> ParsedReference {
        parse_reference(json!({ "m": fields }).to_string().as_bytes()).unwrap()
    }

    fn first(parsed: &ParsedReference) -> RawRecord<'_> {
        parsed.records().next().unwrap()
    }

    #[test]
    fn kept_fields_are_the_read_ones() {
        for field in READ_FIELDS {
            assert!(Field::of(field).is_some(), "{field}");
        }
        assert_eq!(Field::of("settings"), None);
        let parsed = parse_reference(
            br#"{
              "a": {"name": "a", "settings": {"x": [1, {"y": 2}]}, "description": "d", "metadata": {},
                    "config": {"download": [{"file_url": "u", "sha256sum": "s"}]}, "display_name": "A",
                    "showcases": ["s"], "description": "later wins", "url": "https://x"},
              "b": "not a record",
              "c": [1, 2],
              "a": {"name": "a2", "tags": ["t"]},
              "d": {"parameters": 7, "parameters_count": null, "trigger": [], "inpainting": false,
                    "requirements": {}, "nsfw": true, "size_on_disk_bytes": 1, "style": "s", "baseline": "b"}
            }"#,
        )
        .unwrap();
        // Duplicate names: the later record, at the earlier one's position.
        let names: Vec<&str> = parsed.records().map(|r| r.name).collect();
        assert_eq!(names, ["a", "d"]);
        let a = first(&parsed);
        assert_eq!(a.fields.name_field, Some(JsonType::String));
        assert_eq!(a.tags().collect::<Vec<_>>(), ["t"]);
        assert!(a.description_missing() && a.downloads().is_empty() && !a.fields.showcases);
        let d = parsed.records().nth(1).unwrap();
        let f = d.fields;
        assert_eq!(f.name_field, None);
        assert_eq!((f.parameters, f.parameters_count), (Some(Val::PosInt(7)), Some(Val::Null)));
        assert_eq!((f.trigger, f.inpainting, f.requirements, f.showcases), (false, false, false, false));
        assert_eq!((f.nsfw, f.size_on_disk_bytes), (Some(Val::Bool(true)), Some(Val::PosInt(1))));
        assert_eq!(
            (d.baseline(Category::TextGeneration), f.style.map(|s| s.json_type())),
            (Some("b"), Some(JsonType::String))
        );
        assert_eq!(f.config, Config::Missing);
        let one = parse_reference(
            br#"{"a": {"name": "a", "settings": {}, "description": "d", "display_name": "A",
                       "config": {"download": [{"file_url": "u", "sha256sum": "s"}]}, "description": " "}}"#,
        )
        .unwrap();
        let a = first(&one);
        assert!(a.description_missing());
        assert_eq!(a.downloads(), [Download { file_url: Some("u") }]);
        for (doc, found) in
            [(&b"[]"[..], "an array"), (b"null", "null"), (b"\"x\"", "a string"), (b"1.5", "a number")]
        {
            match parse_reference(doc) {
                Err(ReferenceError::NotAnObject(f)) => assert_eq!(f, found),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(parse_reference(b"{\"a\": {"), Err(ReferenceError::Json(_))));
    }

    /// Invalid UTF-8 fails the parse only inside a string that is read (as
    /// serde_json's slice reader answered before the whole-input check).
    #[test]
    fn invalid_utf8_only_matters_where_read() {
        let skipped = b"{\"a\": {\"name\": \"a\", \"settings\": \"\xff\"}}";
        assert_eq!(parse_reference(skipped).unwrap().records().next().unwrap().name, "a");
        let read = b"{\"a\": {\"name\": \"a\", \"baseline\": \"\xff\"}}";
        assert!(matches!(parse_reference(read), Err(ReferenceError::Json(_))));
    }

    /// The reduced fields keep what the readers ask of nested values.
    #[test]
    fn nested_values_are_reduced_to_what_is_read() {
        let parsed = record(json!({
            "tags": ["x", "", null, 0, 2, 1.5, true, [], ["a", "it's"], {"k": null}, {}],
            "style": {"s": [1, 2.5]},
            "baseline": ["b"],
            "trigger": ["t"], "inpainting": "no", "requirements": {"clip_skip": 2}, "showcases": [""],
            "config": {"download": [
                {"file_url": "https://User@Host.example:8/x", "file_url": " https://h.example/"},
                {"file_url": "https://a\tb.example/"}, {"file_url": "http://[bad/"}, {"file_url": ["u"]},
                {"file_url": {}}, {}, 7
            ]}
        }));
        let r = first(&parsed);
        assert_eq!(r.tags().collect::<Vec<_>>(), ["x", "2", "1.5", "True", "['a', \"it's\"]", "{'k': None}"]);
        let f = r.fields;
        let Some(Val::Object(style)) = f.style else { panic!("{:?}", f.style) };
        assert_eq!(r.str(style.repr), "{'s': [1, 2.5]}");
        assert_eq!(f.baseline.map(Val::truthy), Some(true));
        assert!(f.trigger && f.inpainting && f.requirements && f.showcases);
        let Config::Object(DownloadField::List(run)) = f.config else { panic!("{:?}", f.config) };
        let hosts: Vec<_> = r
            .entries(run)
            .iter()
            .map(|e| match *e {
                Entry::Object(FileUrl::Str { netloc, .. }) => format!("{:?}", netloc.map(|n| r.str(n))),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            hosts,
            [
                "Some(\"h.example\")",
                "Some(\"ab.example\")",
                "None",
                "Object(Other { ty: Array, truthy: true })",
                "Object(Other { ty: Object, truthy: false })",
                "Object(Missing)",
                "Other(Number)"
            ]
        );
        for (config, expected) in [
            (json!("a download"), Config::Other { ty: JsonType::String, download_in: Some(true) }),
            (json!(["x", "download"]), Config::Other { ty: JsonType::Array, download_in: Some(true) }),
            (json!(["downloads"]), Config::Other { ty: JsonType::Array, download_in: Some(false) }),
            (json!(null), Config::Other { ty: JsonType::Null, download_in: None }),
            (json!({"download": "héllo"}), Config::Object(DownloadField::Str { chars: 5 })),
            (json!({"download": {"a": 1, "b": 2}}), Config::Object(DownloadField::Object { keys: 2 })),
            (json!({"download": false}), Config::Object(DownloadField::Scalar(JsonType::Bool))),
            (json!({"other": 1}), Config::Object(DownloadField::Missing)),
        ] {
            assert_eq!(first(&record(json!({ "config": config }))).fields.config, expected);
        }
        // Duplicate keys in an object: distinct keys are counted.
        let dup = parse_reference(br#"{"m": {"config": {"download": {"a": 1, "a": 2}}}}"#).unwrap();
        assert_eq!(first(&dup).fields.config, Config::Object(DownloadField::Object { keys: 1 }));
    }

    #[test]
    fn skips_records_that_are_not_objects() {
        let parsed = parse_reference(br#"{"a": {"name": "a"}, "b": 5, "c": null, "d": {}}"#).unwrap();
        let names: Vec<&str> = parsed.records().map(|r| r.name).collect();
        assert_eq!(names, ["a", "d"]);
        assert!(first(&parsed).has_usable_name());
        assert!(!parsed.records().nth(1).unwrap().has_usable_name());
        assert!(!first(&record(json!({"name": 3}))).has_usable_name());
        // A later value that is not an object drops the earlier record.
        let parsed = parse_reference(br#"{"a": {}, "b": {}, "a": 1, "b": [], "b": {"name": "b"}}"#).unwrap();
        let names: Vec<&str> = parsed.records().map(|r| r.name).collect();
        assert_eq!(names, ["b"]);
        assert!(matches!(parse_reference(b"[]"), Err(ReferenceError::NotAnObject("an array"))));
        assert!(matches!(parse_reference(b"{"), Err(ReferenceError::Json(_))));
    }

    #[test]
    fn accessors_coerce_default_and_drop_wrong_types() {
        let parsed = record(json!({
            "description": 5,
            "baseline": "stable_diffusion_1",
            "nsfw": "yes",
            "size_on_disk_bytes": "2147483648",
            "config": {"download": [
                {"file_name": "a", "file_url": "https://huggingface.co/a"},
                "not an entry",
                {"file_name": "b", "file_url": null},
                {"file_name": "c"}
            ]}
        }));
        let r = first(&parsed);
        assert!(r.description_missing());
        assert_eq!(r.baseline(Category::ImageGeneration), Some("stable_diffusion_1"));
        assert_eq!(r.nsfw(Category::ImageGeneration), Some(true));
        assert_eq!(r.size_on_disk_bytes(), Some(2_147_483_648));
        assert_eq!(
            r.downloads(),
            [
                Download { file_url: Some("https://huggingface.co/a") },
                Download { file_url: None },
                Download { file_url: None }
            ]
        );

        let parsed = record(json!({}));
        let empty = first(&parsed);
        assert_eq!(empty.nsfw(Category::TextGeneration), Some(false));
        assert_eq!(empty.nsfw(Category::ImageGeneration), None);
        assert_eq!(empty.baseline(Category::ImageGeneration), None);
        assert_eq!(empty.size_on_disk_bytes(), None);
        assert!(empty.downloads().is_empty());

        let parsed =
            record(json!({"config": null, "nsfw": [], "size_on_disk_bytes": 1.5, "description": "d"}));
        let odd = first(&parsed);
        assert!(odd.downloads().is_empty());
        assert_eq!(odd.nsfw(Category::TextGeneration), Some(false));
        assert_eq!(odd.size_on_disk_bytes(), None);
        assert!(!odd.description_missing());
        assert!(first(&record(json!({"config": {"download": "x"}}))).downloads().is_empty());
        assert!(first(&record(json!({"config": {}}))).downloads().is_empty());
    }

    // The reference (pydantic's lax int) on the same inputs: 2**64 →
    // 18446744073709551616, "18446744073709551616" → the same, " 1_000 ".
    #[test]
    fn wide_ints_go_beyond_i64() {
        assert_eq!(lax_wide_int(&json!(9_223_372_036_854_775_808u64)), Some(9_223_372_036_854_775_808));
        assert_eq!(lax_wide_int(&json!("18446744073709551616")), Some(18_446_744_073_709_551_616));
        assert_eq!(lax_wide_int(&json!(" -99999999999999999999999 ")), Some(-99_999_999_999_999_999_999_999));
        assert_eq!(lax_wide_int(&json!("1_000_000_000_000_000_000_000.0")), Some(10i128.pow(21)));
        let big: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(lax_wide_int(&big), Some(1i128 << 64));
        assert_eq!(lax_wide_int(&json!(12)), Some(12));
        assert_eq!(lax_wide_int(&json!("1e3")), None);
        assert_eq!(lax_wide_int(&json!(1.5)), None);
        assert_eq!(lax_wide_int(&json!(null)), None);
        let parsed = record(json!({"size_on_disk_bytes": 100_000_000_000_000_000_000.0}));
        assert_eq!(first(&parsed).size_on_disk_bytes(), Some(10i128.pow(20)));
        let parsed = parse_reference(br#"{"m": {"size_on_disk_bytes": 18446744073709551616}}"#).unwrap();
        assert_eq!(first(&parsed).size_on_disk_bytes(), Some(1i128 << 64));
        let parsed = record(json!({"size_on_disk_bytes": " 18446744073709551616 ", "nsfw": "ON"}));
        assert_eq!(first(&parsed).size_on_disk_bytes(), Some(1i128 << 64));
        assert_eq!(first(&parsed).nsfw(Category::ImageGeneration), Some(true));
    }
}
