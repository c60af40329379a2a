//! The model reference: parsing a category's v2 JSON (name → record).
//!
//! Records are kept as JSON objects, in file order (ties in every sort follow
//! it), because the two consumers read different fields: the deletion-risk
//! analysis reads a handful through typed accessors, the statistics read many.
//! A record that is not an object is skipped with a warning naming it; the
//! rest of the category is still computed. A record without a string `name`
//! field is kept here (the reference's statistics read raw records and count
//! it) but [`RawRecord::has_usable_name`] lets the deletion-risk analysis skip
//! it (the reference's typed records require the field).
//!
//! The typed accessors answer what the reference's pydantic records would
//! hold after validation: pydantic's lax coercions (`"123"` → 123, `1.0` → 1,
//! `"yes"` → true) and its defaults for missing fields. Where pydantic would
//! reject the record (and the reference crash), the field is treated as
//! absent and a warning names the record and the field.

use serde_json::{Map, Value};
use std::sync::Arc;

/// One model of the reference, as the file holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The key of the record in the category object (the model's name).
    pub name: String,
    /// The record itself.
    pub fields: Map<String, Value>,
}

/// A category's records, in file order. Shared (`Arc`): the fetcher keeps
/// the last good reference while a cycle reads it, without a deep copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReference {
    pub records: Arc<Vec<RawRecord>>,
}

/// The model reference could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("model reference is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model reference must be a JSON object of name → record, found {0}")]
    NotAnObject(&'static str),
}

pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Every top-level record field that the analytics read (deletion risk and
/// statistics). Parsing keeps only these (the rest — `settings`, `metadata`,
/// `display_name`, ... — is skipped without being built), which roughly
/// halves the parse time and the memory of a large reference. A reader of a
/// new field must add it here (the unit test `kept_fields_are_the_read_ones`
/// lists them).
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

/// Parse one category's model reference.
///
/// As Python's `json.loads` into a dict (and serde_json's ordered map): of two
/// equal keys, the later value wins at the earlier one's position.
pub fn parse_reference(bytes: &[u8]) -> Result<ParsedReference, ReferenceError> {
    let top: TopLevel = crate::pyjson::from_slice(bytes)?;
    let map = match top {
        TopLevel::Records(map) => map,
        TopLevel::Other(found) => return Err(ReferenceError::NotAnObject(found)),
    };
    let mut records = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            RecordValue::Object(fields) => records.push(RawRecord { name, fields }),
            RecordValue::Other(found) => {
                log::warn!("model reference: skipping record {name:?}: expected an object, found {found}")
            }
        }
    }
    Ok(ParsedReference { records: Arc::new(records) })
}

/// The whole reference document: name → record, or something else (its
/// JSON type's name).
enum TopLevel {
    Records(indexmap::IndexMap<String, RecordValue>),
    Other(&'static str),
}

/// One record: an object holding the [`READ_FIELDS`] it has, or something
/// else (its JSON type's name).
enum RecordValue {
    Object(Map<String, Value>),
    Other(&'static str),
}

/// Visits any JSON value; objects go to `visit_map` of the implementor, every
/// other type is consumed and answered with its name.
macro_rules! other_types {
    ($t:ident) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$t, E> {
            Ok($t::Other("a boolean"))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$t, E> {
            Ok($t::Other("a number"))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$t, E> {
            Ok($t::Other("a number"))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$t, E> {
            Ok($t::Other("a number"))
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<$t, E> {
            Ok($t::Other("a string"))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<$t, E> {
            Ok($t::Other("null"))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$t, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($t::Other("an array"))
        }
    };
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            other_types!(TopLevel);
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut records = indexmap::IndexMap::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, record)) = map.next_entry::<String, RecordValue>()? {
                    records.insert(name, record);
                }
                Ok(TopLevel::Records(records))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for RecordValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RecordValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            other_types!(RecordValue);
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RecordValue, A::Error> {
                let mut fields = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if READ_FIELDS.contains(&key.as_str()) {
                        let value: Value = map.next_value()?;
                        fields.insert(key, value);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(RecordValue::Object(fields))
            }
        }
        d.deserialize_any(V)
    }
}

/// Python's `str.isspace()` for one character: Unicode White_Space plus the
/// four information separators U+001C..U+001F that Python also counts.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` (no argument).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// An integer as pydantic's lax `int` accepts it: integers, floats without a
/// fractional part, booleans and numeric strings (`" 1_000 "`, `"12.00"`).
/// `None` where pydantic raises (and for integers beyond `i64`).
pub fn lax_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(i);
            }
            if n.is_u64() {
                return None;
            }
            let f = n.as_f64()?;
            const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
            (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
        }
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => parse_int_str(s),
        _ => None,
    }
}

/// [`lax_int`] for Python integers beyond `i64` (up to `i128`): what the
/// reference accepts for counts and sizes that Python holds unbounded
/// (`2**63`, `"18446744073709551616"`). JSON integers beyond `u64` reach us as
/// floats (serde_json without arbitrary precision), so integral floats up to
/// 2^127 are accepted too (exact up to 2^53 and for powers of two).
pub fn lax_wide_int(value: &Value) -> Option<i128> {
    if let Some(i) = lax_int(value) {
        return Some(i128::from(i));
    }
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Some(i128::from(u));
            }
            let f = n.as_f64()?;
            const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0; // 2^127
            (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i128)
        }
        Value::String(s) => {
            let t = py_strip(s);
            let (negative, body) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            let int_part = match body.split_once('.') {
                Some((i, f)) if !f.is_empty() && f.bytes().all(|b| b == b'0') => i,
                Some(_) => return None,
                None => body,
            };
            if !digits_with_underscores(int_part) {
                return None;
            }
            let magnitude: i128 = int_part.chars().filter(|c| *c != '_').collect::<String>().parse().ok()?;
            Some(if negative { -magnitude } else { magnitude })
        }
        _ => None,
    }
}

/// pydantic's string-to-int: optional sign, ASCII digits with single
/// underscores between them, optionally `.` and one or more zeros.
fn parse_int_str(s: &str) -> Option<i64> {
    let t = py_strip(s);
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b == b'0')) {
        return None;
    }
    if !digits_with_underscores(int_part) {
        return None;
    }
    let digits: String = int_part.chars().filter(|c| *c != '_').collect();
    let magnitude: i64 = digits.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `1_000` yes; `_1`, `1_`, `1__0`, empty no.
fn digits_with_underscores(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// A float as pydantic's lax `float` accepts it: numbers, booleans and
/// numeric strings (Python `float()` syntax: `" 1e3 "`, `"inf"`, `"1_0.5"`).
pub fn lax_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => parse_float_str(s),
        _ => None,
    }
}

fn parse_float_str(s: &str) -> Option<f64> {
    let t = py_strip(s);
    if !t.contains('_') {
        return t.parse().ok();
    }
    // An underscore is allowed only between two digits.
    let bytes = t.as_bytes();
    let ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'_'
            || (i > 0 && bytes[i - 1].is_ascii_digit() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    if !ok {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// A boolean as pydantic's lax `bool` accepts it: booleans, 0/1 and the
/// strings `true/false/yes/no/on/off/t/f/y/n/1/0` in any case.
pub fn lax_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 0.0 {
                Some(false)
            } else if f == 1.0 {
                Some(true)
            } else {
                None
            }
        }
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "t" | "y" | "1" => Some(true),
            "false" | "no" | "off" | "f" | "n" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// One entry of a record's `config.download`, as the analytics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download<'a> {
    /// `file_url`; `None` when it is missing or not a string (the reference
    /// requires a string there).
    pub file_url: Option<&'a str>,
}

impl RawRecord {
    /// Whether the record has the string `name` field the reference's typed
    /// records require. Logs a warning naming the record when it has not.
    pub fn has_usable_name(&self) -> bool {
        match self.fields.get("name") {
            Some(Value::String(_)) => true,
            Some(other) => {
                log::warn!(
                    "model reference: record {:?}: `name` should be a string, found {}; record skipped",
                    self.name,
                    json_type_name(other)
                );
                false
            }
            None => {
                log::warn!("model reference: record {:?} has no `name` field; record skipped", self.name);
                false
            }
        }
    }

    fn warn_type(&self, field: &str, expected: &str, found: &Value) {
        log::warn!(
            "model reference: record {:?}: `{field}` should be {expected}, found {}; treated as absent",
            self.name,
            json_type_name(found)
        );
    }

    /// An optional string field (`str | None`): null and missing are `None`.
    fn optional_str(&self, field: &str) -> Option<&str> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.warn_type(field, "a string or null", other);
                None
            }
        }
    }

    /// `description` (`str | None`).
    pub fn description(&self) -> Option<&str> {
        self.optional_str("description")
    }

    /// `baseline`: optional for text records; image records require it (a
    /// missing one is reported and treated as absent).
    pub fn baseline(&self, category: crate::category::Category) -> Option<&str> {
        if category == crate::category::Category::ImageGeneration && self.fields.get("baseline").is_none() {
            log::warn!(
                "model reference: record {:?}: image record without `baseline`; treated as absent",
                self.name
            );
        }
        self.optional_str("baseline")
    }

    /// `nsfw`: text records default to `false`; image records require it
    /// (missing or invalid: `None`). Lax boolean coercion applies.
    pub fn nsfw(&self, category: crate::category::Category) -> Option<bool> {
        let default = match category {
            crate::category::Category::TextGeneration => Some(false),
            crate::category::Category::ImageGeneration => None,
        };
        match self.fields.get("nsfw") {
            None => {
                if default.is_none() {
                    log::warn!(
                        "model reference: record {:?}: image record without `nsfw`; treated as absent",
                        self.name
                    );
                }
                default
            }
            Some(v) => lax_bool(v).or_else(|| {
                self.warn_type("nsfw", "a boolean", v);
                default
            }),
        }
    }

    /// `size_on_disk_bytes` (`int | None`, lax integer coercion).
    pub fn size_on_disk_bytes(&self) -> Option<i128> {
        match self.fields.get("size_on_disk_bytes") {
            None | Some(Value::Null) => None,
            Some(v) => lax_wide_int(v).or_else(|| {
                self.warn_type("size_on_disk_bytes", "an integer or null", v);
                None
            }),
        }
    }

    /// `config.download`: missing `config` or `download` is an empty list;
    /// an entry that is not an object is skipped with a warning.
    pub fn downloads(&self) -> Vec<Download<'_>> {
        let config = match self.fields.get("config") {
            None => return Vec::new(),
            Some(Value::Object(config)) => config,
            Some(other) => {
                self.warn_type("config", "an object", other);
                return Vec::new();
            }
        };
        let items = match config.get("download") {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.warn_type("config.download", "a list", other);
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(entry) = item else {
                self.warn_type("config.download[]", "an object", item);
                continue;
            };
            let file_url = match entry.get("file_url") {
                Some(Value::String(url)) => Some(url.as_str()),
                Some(other) => {
                    self.warn_type("config.download[].file_url", "a string", other);
                    None
                }
                None => {
                    log::warn!("model reference: record {:?}: a download without `file_url`", self.name);
                    None
                }
            };
            out.push(Download { file_url });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use serde_json::json;

    fn record(fields: Value) -> RawRecord {
        let Value::Object(fields) = fields else { panic!("test record must be an object") };
        RawRecord { name: "m".into(), fields }
    }

    #[test]
    fn kept_fields_are_the_read_ones() {
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
        let names: Vec<&str> = parsed.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(Value::Object(parsed.records[0].fields.clone()), json!({"name": "a2", "tags": ["t"]}));
        let d: Vec<&str> = parsed.records[1].fields.keys().map(String::as_str).collect();
        assert_eq!(
            d,
            [
                "parameters",
                "parameters_count",
                "trigger",
                "inpainting",
                "requirements",
                "nsfw",
                "size_on_disk_bytes",
                "style",
                "baseline"
            ]
        );
        let one = parse_reference(
            br#"{"a": {"name": "a", "settings": {}, "description": "d", "display_name": "A",
                       "config": {"download": [{"file_url": "u", "sha256sum": "s"}]}, "description": "e"}}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(one.records[0].fields.clone()),
            json!({"name": "a", "description": "e", "config": {"download": [{"file_url": "u", "sha256sum": "s"}]}})
        );
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

    #[test]
    fn lax_int_follows_pydantic() {
        // Answers of pydantic 2.14's TypeAdapter(int).validate_python.
        let ok = [
            (json!(5), 5),
            (json!(-3), -3),
            (json!(1.0), 1),
            (json!(true), 1),
            (json!("123"), 123),
            (json!(" 123 "), 123),
            (json!("1.0"), 1),
            (json!("1.00"), 1),
            (json!("-1.0"), -1),
            (json!("1_000"), 1000),
            (json!("+5"), 5),
            (json!("007"), 7),
            (json!("\t7\n"), 7),
        ];
        for (value, expected) in ok {
            assert_eq!(lax_int(&value), Some(expected), "{value}");
        }
        for value in [
            json!(1.5),
            json!(1e20),
            json!(null),
            json!("1e3"),
            json!("0x10"),
            json!("1."),
            json!(".0"),
            json!("_1"),
            json!("1__0"),
            json!(""),
            json!("１２"),
            json!([1]),
        ] {
            assert_eq!(lax_int(&value), None, "{value}");
        }
    }

    #[test]
    fn lax_float_and_bool_follow_pydantic() {
        assert_eq!(lax_float(&json!("1.5")), Some(1.5));
        assert_eq!(lax_float(&json!(" 2 ")), Some(2.0));
        assert_eq!(lax_float(&json!("1_0.5")), Some(10.5));
        assert_eq!(lax_float(&json!(true)), Some(1.0));
        assert_eq!(lax_float(&json!("1e3")), Some(1000.0));
        assert_eq!(lax_float(&json!("inf")), Some(f64::INFINITY));
        assert_eq!(lax_float(&json!("")), None);
        assert_eq!(lax_float(&json!(null)), None);
        for (value, expected) in [
            (json!("yes"), true),
            (json!("TRUE"), true),
            (json!("t"), true),
            (json!(1), true),
            (json!(1.0), true),
            (json!("off"), false),
            (json!("n"), false),
            (json!(0), false),
            (json!("0"), false),
        ] {
            assert_eq!(lax_bool(&value), Some(expected), "{value}");
        }
        for value in [json!(2), json!(" true"), json!(null), json!("maybe")] {
            assert_eq!(lax_bool(&value), None, "{value}");
        }
    }

    #[test]
    fn python_whitespace_includes_the_separators() {
        assert_eq!(py_strip("\u{1c} x \u{3000}"), "x");
        assert!(py_strip("\u{1f}\u{85}\u{a0}").is_empty());
        assert_eq!(py_strip("\u{200b}"), "\u{200b}"); // not whitespace in Python either
    }

    #[test]
    fn skips_records_that_are_not_objects() {
        let parsed = parse_reference(br#"{"a": {"name": "a"}, "b": 5, "c": null, "d": {}}"#).unwrap();
        let names: Vec<&str> = parsed.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        assert!(parsed.records[0].has_usable_name());
        assert!(!parsed.records[1].has_usable_name());
        assert!(!record(json!({"name": 3})).has_usable_name());
        assert!(matches!(parse_reference(b"[]"), Err(ReferenceError::NotAnObject("an array"))));
        assert!(matches!(parse_reference(b"{"), Err(ReferenceError::Json(_))));
    }

    #[test]
    fn accessors_coerce_default_and_drop_wrong_types() {
        let r = record(json!({
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
        assert_eq!(r.description(), None);
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

        let empty = record(json!({}));
        assert_eq!(empty.nsfw(Category::TextGeneration), Some(false));
        assert_eq!(empty.nsfw(Category::ImageGeneration), None);
        assert_eq!(empty.baseline(Category::ImageGeneration), None);
        assert_eq!(empty.size_on_disk_bytes(), None);
        assert!(empty.downloads().is_empty());

        let odd = record(json!({"config": null, "nsfw": [], "size_on_disk_bytes": 1.5, "description": "d"}));
        assert!(odd.downloads().is_empty());
        assert_eq!(odd.nsfw(Category::TextGeneration), Some(false));
        assert_eq!(odd.size_on_disk_bytes(), None);
        assert_eq!(odd.description(), Some("d"));
        assert!(record(json!({"config": {"download": "x"}})).downloads().is_empty());
        assert!(record(json!({"config": {}})).downloads().is_empty());
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
        let r = record(json!({"size_on_disk_bytes": 100_000_000_000_000_000_000.0}));
        assert_eq!(r.size_on_disk_bytes(), Some(10i128.pow(20)));
    }
}
