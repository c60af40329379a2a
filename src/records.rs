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
//! absent and a warning names the record and the field.
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

use foldhash::{HashMap, HashMapExt};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::hash::BuildHasher;
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

pub(crate) fn json_type_name(v: &Value) -> &'static str {
    JsonType::of(v).name()
}

/// The type of a JSON value (for warnings and Python type tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn of(v: &Value) -> Self {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The type's name as the warnings write it ("a string").
    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Bool => "a boolean",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        }
    }
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

// ---------------------------------------------------------------------------
// The reduced record.
// ---------------------------------------------------------------------------

/// A piece of the category's text buffer ([`Doc::text`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub(crate) fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// A run of items in one of the category's item lists ([`Doc::tags`],
/// [`Doc::entries`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Run {
    start: u32,
    len: u32,
}

/// One JSON value of a record field, as its readers see it: scalars whole,
/// strings as [`Span`]s, arrays and objects by their emptiness (Python's
/// truthiness) and — in the fields whose Python `str()` the statistics count
/// (`baseline`, `style`, tag items) — their Python repr.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    /// A non-negative integer (serde_json's `u64` numbers).
    PosInt(u64),
    /// A negative integer.
    NegInt(i64),
    /// Any other number (integers beyond `u64` too, as serde_json reads them).
    Float(f64),
    Str(Span),
    Array(Container),
    Object(Container),
}

/// An array or object [`Val`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) empty: bool,
    /// Python's `repr` of the value; only kept (non-empty span) for
    /// non-empty values of the fields whose `str()` is counted.
    pub(crate) repr: Span,
}

impl Val {
    pub(crate) fn json_type(self) -> JsonType {
        match self {
            Val::Null => JsonType::Null,
            Val::Bool(_) => JsonType::Bool,
            Val::PosInt(_) | Val::NegInt(_) | Val::Float(_) => JsonType::Number,
            Val::Str(_) => JsonType::String,
            Val::Array(_) => JsonType::Array,
            Val::Object(_) => JsonType::Object,
        }
    }

    /// Python truthiness.
    pub(crate) fn truthy(self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => b,
            Val::PosInt(u) => u != 0,
            Val::NegInt(_) => true,
            Val::Float(f) => f != 0.0,
            Val::Str(s) => s.len > 0,
            Val::Array(c) | Val::Object(c) => !c.empty,
        }
    }

    /// The value as a JSON scalar: what serde_json would have read (arrays
    /// and objects, which no lax coercion accepts, become `null`; strings go
    /// through [`RawRecord::str`] instead).
    pub(crate) fn scalar(self) -> Value {
        match self {
            Val::Bool(b) => Value::Bool(b),
            Val::PosInt(u) => Value::Number(u.into()),
            Val::NegInt(i) => Value::Number(i.into()),
            Val::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Null | Val::Str(_) | Val::Array(_) | Val::Object(_) => Value::Null,
        }
    }
}

/// `description`, reduced to what the deletion-risk analysis asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Description {
    #[default]
    Missing,
    Null,
    /// A string; `blank` when it is empty or whitespace (Python's `strip()`).
    Text {
        blank: bool,
    },
    Other(JsonType),
}

/// `config`, reduced to its `download` member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Config {
    #[default]
    Missing,
    /// An object, and its `download` member.
    Object(DownloadField),
    /// Anything else: its type, and for a string or an array Python's
    /// `"download" in config` (`None` for the types on which `in` raises).
    Other { ty: JsonType, download_in: Option<bool> },
}

/// `config.download`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DownloadField {
    #[default]
    Missing,
    /// A list: its entries in [`Doc::entries`].
    List(Run),
    /// A string of this many characters (Python's `list.extend` adds each).
    Str { chars: usize },
    /// An object with this many distinct keys (`list.extend` adds each).
    Object { keys: usize },
    /// `null`, a boolean or a number (`list.extend` raises).
    Scalar(JsonType),
}

/// One item of a `config.download` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An object, and its `file_url`.
    Object(FileUrl),
    /// Anything else (its type).
    Other(JsonType),
}

/// A download entry's `file_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileUrl {
    Missing,
    /// A string, and the `netloc` of Python's `urlsplit` of it (`None` where
    /// `urlsplit` raises), computed once here for every reader.
    Str {
        url: Span,
        netloc: Option<Span>,
    },
    /// Anything else: its type and Python truthiness.
    Other {
        ty: JsonType,
        truthy: bool,
    },
}

/// One record, its [`READ_FIELDS`] reduced (missing fields at their default).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Fields {
    /// The record's key.
    name: Span,
    /// `None` for a record (an object); else the type of the value the
    /// category holds under the key (dropped once the whole category is read).
    not_an_object: Option<JsonType>,
    /// The type of the `name` field.
    pub(crate) name_field: Option<JsonType>,
    description: Description,
    pub(crate) baseline: Option<Val>,
    pub(crate) nsfw: Option<Val>,
    pub(crate) size_on_disk_bytes: Option<Val>,
    pub(crate) config: Config,
    /// Python's `str()` of each truthy item of `tags`, when it is a list.
    tags: Run,
    pub(crate) style: Option<Val>,
    pub(crate) parameters: Option<Val>,
    pub(crate) parameters_count: Option<Val>,
    /// `trigger` is a non-empty list.
    pub(crate) trigger: bool,
    /// `inpainting` is truthy.
    pub(crate) inpainting: bool,
    /// `requirements` is a non-empty object.
    pub(crate) requirements: bool,
    /// `showcases` is a non-empty list.
    pub(crate) showcases: bool,
}

/// A parsed category: its records and the buffers their fields point into.
#[derive(Debug, Default)]
struct Doc {
    /// Every kept string (names, string values, reprs, hosts), concatenated.
    text: String,
    records: Vec<Fields>,
    /// The counted texts of all records' `tags`.
    tags: Vec<Span>,
    /// All records' `config.download` entries.
    entries: Vec<Entry>,
}

impl Doc {
    fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text.get(start..start + span.len as usize).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Parsing.
// ---------------------------------------------------------------------------

/// Parse one category's model reference.
///
/// As Python's `json.loads` into a dict: of two equal keys, the later value
/// wins at the earlier one's position.
pub fn parse_reference(bytes: &[u8]) -> Result<ParsedReference, ReferenceError> {
    let (builder, top) = crate::pyjson::parse_with(bytes, |bytes| {
        let mut builder = Builder::new(bytes.len());
        // Valid UTF-8 as a whole (the usual case): one fast check here spares
        // serde_json checking every string it reads. Otherwise the slice
        // reader answers as it always did (only the strings it reads must be
        // valid).
        let top = match std::str::from_utf8(bytes) {
            Ok(text) => parse_document(&mut serde_json::Deserializer::from_str(text), &mut builder)?,
            Err(_) => parse_document(&mut serde_json::Deserializer::from_slice(bytes), &mut builder)?,
        };
        Ok((builder, top))
    })?;
    if let Some(found) = top {
        return Err(ReferenceError::NotAnObject(found.name()));
    }
    Ok(ParsedReference { doc: Arc::new(builder.finish()?) })
}

/// The whole document (its records go to `builder`): `None` when it is an
/// object, else its type.
fn parse_document<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    builder: &mut Builder,
) -> Result<Option<JsonType>, serde_json::Error> {
    let top = TopSeed(builder).deserialize(&mut *de)?;
    de.end()?;
    Ok(top)
}

/// A category being parsed.
struct Builder {
    doc: Doc,
    /// Hash of a record name → its position in `doc.records` (to find
    /// duplicate names; a hash collision falls back to a scan).
    slots: HashMap<u64, u32>,
    hasher: foldhash::fast::FixedState,
    /// A span or run went beyond `u32`: the parse fails at the end.
    too_large: bool,
}

impl Builder {
    fn new(input_len: usize) -> Self {
        // Rough sizes of the reference's files: ~600 bytes of JSON per
        // record, of which ~1/8 is kept text.
        let records = input_len / 512;
        Builder {
            doc: Doc {
                text: String::with_capacity(input_len / 8),
                records: Vec::with_capacity(records),
                tags: Vec::new(),
                entries: Vec::new(),
            },
            slots: HashMap::with_capacity(records),
            hasher: foldhash::fast::FixedState::default(),
            too_large: false,
        }
    }

    /// Keep `s` in the text buffer.
    fn push_str(&mut self, s: &str) -> Span {
        let start = self.doc.text.len();
        match (u32::try_from(start), u32::try_from(start + s.len())) {
            (Ok(start), Ok(_)) => {
                self.doc.text.push_str(s);
                Span { start, len: s.len() as u32 }
            }
            _ => {
                self.too_large = true;
                Span::default()
            }
        }
    }

    /// The run of list items from `start` to `end`.
    fn run(&mut self, start: usize, end: usize) -> Run {
        match (u32::try_from(start), u32::try_from(end - start)) {
            (Ok(start), Ok(len)) => Run { start, len },
            _ => {
                self.too_large = true;
                Run::default()
            }
        }
    }

    /// Add a record; a duplicate name takes the earlier record's place.
    fn insert(&mut self, fields: Fields) {
        let (doc, slots) = (&mut self.doc, &mut self.slots);
        let name = doc.str(fields.name);
        let hash = self.hasher.hash_one(name);
        let at = match slots.get(&hash) {
            None => {
                if let Ok(next) = u32::try_from(doc.records.len()) {
                    slots.insert(hash, next);
                }
                None
            }
            Some(&at) if doc.str(doc.records[at as usize].name) == name => Some(at as usize),
            // Another name with the same hash (the map holds the first).
            Some(_) => doc.records.iter().position(|r| doc.str(r.name) == name),
        };
        match at {
            Some(at) => doc.records[at] = fields,
            None => doc.records.push(fields),
        }
    }

    /// The category, without the values that are not records (each
    /// reported).
    fn finish(self) -> Result<Doc, ReferenceError> {
        if self.too_large {
            return Err(ReferenceError::TooLarge);
        }
        let mut doc = self.doc;
        let text = &doc.text;
        doc.records.retain(|r| match r.not_an_object {
            None => true,
            Some(found) => {
                let name =
                    text.get(r.name.start as usize..(r.name.start + r.name.len) as usize).unwrap_or_default();
                log::warn!(
                    "model reference: skipping record {name:?}: expected an object, found {}",
                    found.name()
                );
                false
            }
        });
        Ok(doc)
    }
}

/// What a value that is not read whole looks like to Python: its type and
/// truthiness.
#[derive(Debug, Clone, Copy)]
struct Shape {
    ty: JsonType,
    truthy: bool,
}

/// The visitor methods of the JSON types a visitor does not read itself:
/// each builds `$shape` (the value's [`Shape`]; the content of arrays and
/// objects is skipped with `$skip`) and answers `$out`.
macro_rules! shapes {
    ($skip:ty; $shape:ident => $out:expr; $($kind:ident)*) => {
        $( shapes!(@$kind $skip; $shape => $out); )*
    };
    (@bool $skip:ty; $shape:ident => $out:expr) => {
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::Bool, truthy: b };
            Ok($out)
        }
    };
    (@number $skip:ty; $shape:ident => $out:expr) => {
        fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::Number, truthy: i != 0 };
            Ok($out)
        }
        fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::Number, truthy: u != 0 };
            Ok($out)
        }
        fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::Number, truthy: f != 0.0 };
            Ok($out)
        }
    };
    (@null $skip:ty; $shape:ident => $out:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::Null, truthy: false };
            Ok($out)
        }
    };
    (@str $skip:ty; $shape:ident => $out:expr) => {
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            let $shape = Shape { ty: JsonType::String, truthy: !s.is_empty() };
            Ok($out)
        }
    };
    (@array $skip:ty; $shape:ident => $out:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut truthy = false;
            while seq.next_element::<$skip>()?.is_some() {
                truthy = true;
            }
            let $shape = Shape { ty: JsonType::Array, truthy };
            Ok($out)
        }
    };
    (@object $skip:ty; $shape:ident => $out:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut truthy = false;
            while map.next_key::<$skip>()?.is_some() {
                map.next_value::<$skip>()?;
                truthy = true;
            }
            let $shape = Shape { ty: JsonType::Object, truthy };
            Ok($out)
        }
    };
}

/// Writes what a visitor expects (any JSON value).
macro_rules! expecting_any {
    () => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
    };
}

/// Any JSON value, validated exactly as a `serde_json::Value` would be
/// (strings are checked, numbers parsed) but not built.
pub(crate) struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            expecting_any!();
            shapes!(Skip; _shape => Skip; bool number null str array object);
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            expecting_any!();
            shapes!(Skip; shape => shape; bool number null str array object);
        }
        d.deserialize_any(V)
    }
}

/// The whole document: `None` when it is an object (its records are added
/// to the builder), else its type.
struct TopSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Option<JsonType>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Option<JsonType>;
    expecting_any!();
    shapes!(IgnoredAny; shape => Some(shape.ty); bool number null str array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let b = self.0;
        while let Some(name) = map.next_key_seed(TextSeed(&mut *b))? {
            let fields = match map.next_value_seed(RecordSeed { b: &mut *b, name })? {
                Ok(fields) => fields,
                Err(found) => Fields { name, not_an_object: Some(found), ..Fields::default() },
            };
            b.insert(fields);
        }
        Ok(None)
    }
}

/// A string (an object key), kept in the text buffer.
struct TextSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = Span;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Span, E> {
        Ok(self.0.push_str(s))
    }
}

/// An object key: whether it is `self.0`.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        Ok(s == self.0)
    }
}

/// One of the [`READ_FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Description,
    Baseline,
    Nsfw,
    SizeOnDiskBytes,
    Config,
    Tags,
    Style,
    Parameters,
    ParametersCount,
    Trigger,
    Inpainting,
    Requirements,
    Showcases,
}

impl Field {
    fn of(key: &str) -> Option<Field> {
        Some(match key {
            "name" => Field::Name,
            "description" => Field::Description,
            "baseline" => Field::Baseline,
            "nsfw" => Field::Nsfw,
            "size_on_disk_bytes" => Field::SizeOnDiskBytes,
            "config" => Field::Config,
            "tags" => Field::Tags,
            "style" => Field::Style,
            "parameters" => Field::Parameters,
            "parameters_count" => Field::ParametersCount,
            "trigger" => Field::Trigger,
            "inpainting" => Field::Inpainting,
            "requirements" => Field::Requirements,
            "showcases" => Field::Showcases,
            _ => return None,
        })
    }
}

/// A record key: the field it names, if it is read.
struct FieldKey(Option<Field>);

impl<'de> de::Deserialize<'de> for FieldKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FieldKey, E> {
                Ok(FieldKey(Field::of(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One record (a value of the document), named `name`.
struct RecordSeed<'b> {
    b: &'b mut Builder,
    name: Span,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Result<Fields, JsonType>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    /// The record's fields, or the type of a value that is not an object.
    type Value = Result<Fields, JsonType>;
    expecting_any!();
    shapes!(IgnoredAny; shape => Err(shape.ty); bool number null str array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let b = self.b;
        let mut f = Fields { name: self.name, ..Fields::default() };
        while let Some(FieldKey(field)) = map.next_key()? {
            let Some(field) = field else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match field {
                Field::Name => f.name_field = Some(map.next_value::<Shape>()?.ty),
                Field::Description => f.description = map.next_value()?,
                Field::Baseline => {
                    f.baseline = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: true })?)
                }
                Field::Nsfw => f.nsfw = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: false })?),
                Field::SizeOnDiskBytes => {
                    f.size_on_disk_bytes = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: false })?)
                }
                Field::Config => f.config = map.next_value_seed(ConfigSeed(&mut *b))?,
                Field::Tags => f.tags = map.next_value_seed(TagsSeed(&mut *b))?,
                Field::Style => f.style = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: true })?),
                Field::Parameters => {
                    f.parameters = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: false })?)
                }
                Field::ParametersCount => {
                    f.parameters_count = Some(map.next_value_seed(ValSeed { b: &mut *b, repr: false })?)
                }
                Field::Trigger => {
                    let shape: Shape = map.next_value()?;
                    f.trigger = shape.ty == JsonType::Array && shape.truthy;
                }
                Field::Inpainting => f.inpainting = map.next_value::<Shape>()?.truthy,
                Field::Requirements => {
                    let shape: Shape = map.next_value()?;
                    f.requirements = shape.ty == JsonType::Object && shape.truthy;
                }
                Field::Showcases => {
                    let shape: Shape = map.next_value()?;
                    f.showcases = shape.ty == JsonType::Array && shape.truthy;
                }
            }
        }
        Ok(Ok(f))
    }
}

/// A field value as a [`Val`]; `repr`: keep the Python repr of a non-empty
/// array or object (the fields whose `str()` is counted).
struct ValSeed<'b> {
    b: &'b mut Builder,
    repr: bool,
}

impl<'de> DeserializeSeed<'de> for ValSeed<'_> {
    type Value = Val;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValSeed<'_> {
    type Value = Val;
    expecting_any!();
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Val, E> {
        Ok(u64::try_from(i).map_or(Val::NegInt(i), Val::PosInt))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Val, E> {
        Ok(Val::PosInt(u))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Val, E> {
        Ok(Val::Float(f))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Val, E> {
        Ok(Val::Str(self.b.push_str(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let container = if self.repr {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
            self.b.container_repr(Value::Array(items))
        } else {
            let mut empty = true;
            while seq.next_element::<Skip>()?.is_some() {
                empty = false;
            }
            Container { empty, repr: Span::default() }
        };
        Ok(Val::Array(container))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let container = if self.repr {
            // As serde_json builds an object: the later of two equal keys
            // wins at the earlier one's position.
            let mut members = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value: Value = map.next_value()?;
                members.insert(key, value);
            }
            self.b.container_repr(Value::Object(members))
        } else {
            let mut empty = true;
            while map.next_key::<Skip>()?.is_some() {
                map.next_value::<Skip>()?;
                empty = false;
            }
            Container { empty, repr: Span::default() }
        };
        Ok(Val::Object(container))
    }
}

impl Builder {
    /// An array or object whose Python repr is kept (when it is not empty).
    fn container_repr(&mut self, value: Value) -> Container {
        let empty = match &value {
            Value::Array(items) => items.is_empty(),
            Value::Object(members) => members.is_empty(),
            _ => true,
        };
        let repr = if empty { Span::default() } else { self.push_str(&crate::pyjson::py_str(&value)) };
        Container { empty, repr }
    }
}

impl<'de> de::Deserialize<'de> for Description {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Description;
            expecting_any!();
            shapes!(Skip; shape => Description::Other(shape.ty); bool number array object);
            fn visit_unit<E: de::Error>(self) -> Result<Description, E> {
                Ok(Description::Null)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Description, E> {
                Ok(Description::Text { blank: py_strip(s).is_empty() })
            }
        }
        d.deserialize_any(V)
    }
}

/// `tags`: the Python `str()` of each truthy item, when it is a list.
struct TagsSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for TagsSeed<'_> {
    type Value = Run;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TagsSeed<'_> {
    type Value = Run;
    expecting_any!();
    shapes!(Skip; _shape => Run::default(); bool number null str object);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Run, A::Error> {
        let b = self.0;
        let start = b.doc.tags.len();
        while let Some(item) = seq.next_element_seed(ValSeed { b: &mut *b, repr: true })? {
            if !item.truthy() {
                continue;
            }
            let text = match item {
                Val::Str(span) => span,
                Val::Array(c) | Val::Object(c) => c.repr,
                scalar => b.push_str(&crate::pyjson::py_str(&scalar.scalar())),
            };
            b.doc.tags.push(text);
        }
        let end = b.doc.tags.len();
        Ok(b.run(start, end))
    }
}

/// `config`.
struct ConfigSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for ConfigSeed<'_> {
    type Value = Config;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ConfigSeed<'_> {
    type Value = Config;
    expecting_any!();
    shapes!(Skip; shape => Config::Other { ty: shape.ty, download_in: None }; bool number null);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Config, E> {
        Ok(Config::Other { ty: JsonType::String, download_in: Some(s.contains("download")) })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Config, A::Error> {
        let mut found = false;
        while let Some(DownloadWord(is)) = seq.next_element()? {
            found |= is;
        }
        Ok(Config::Other { ty: JsonType::Array, download_in: Some(found) })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
        let b = self.0;
        let mut download = DownloadField::Missing;
        while let Some(is_download) = map.next_key_seed(KeyIs("download"))? {
            if is_download {
                download = map.next_value_seed(DownloadSeed(&mut *b))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Config::Object(download))
    }
}

/// An item of an array `config`: whether it is the string `"download"`.
struct DownloadWord(bool);

impl<'de> de::Deserialize<'de> for DownloadWord {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DownloadWord;
            expecting_any!();
            shapes!(Skip; _shape => DownloadWord(false); bool number null array object);
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DownloadWord, E> {
                Ok(DownloadWord(s == "download"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `config.download`.
struct DownloadSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for DownloadSeed<'_> {
    type Value = DownloadField;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DownloadSeed<'_> {
    type Value = DownloadField;
    expecting_any!();
    shapes!(Skip; shape => DownloadField::Scalar(shape.ty); bool number null);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<DownloadField, E> {
        Ok(DownloadField::Str { chars: s.chars().count() })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DownloadField, A::Error> {
        let b = self.0;
        let start = b.doc.entries.len();
        while let Some(entry) = seq.next_element_seed(EntrySeed(&mut *b))? {
            b.doc.entries.push(entry);
        }
        let end = b.doc.entries.len();
        Ok(DownloadField::List(b.run(start, end)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DownloadField, A::Error> {
        let mut keys = foldhash::HashSet::default();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<Skip>()?;
            keys.insert(key);
        }
        Ok(DownloadField::Object { keys: keys.len() })
    }
}

/// An item of `config.download`.
struct EntrySeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    expecting_any!();
    shapes!(Skip; shape => Entry::Other(shape.ty); bool number null str array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let b = self.0;
        let mut file_url = FileUrl::Missing;
        while let Some(is_url) = map.next_key_seed(KeyIs("file_url"))? {
            if is_url {
                file_url = map.next_value_seed(FileUrlSeed(&mut *b))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Entry::Object(file_url))
    }
}

/// A download entry's `file_url`.
struct FileUrlSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for FileUrlSeed<'_> {
    type Value = FileUrl;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FileUrlSeed<'_> {
    type Value = FileUrl;
    expecting_any!();
    shapes!(Skip; shape => FileUrl::Other { ty: shape.ty, truthy: shape.truthy };
        bool number null array object);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<FileUrl, E> {
        let b = self.0;
        let url = b.push_str(s);
        let netloc = crate::pyurl::urlsplit(s).ok().map(|parts| {
            let netloc = parts.netloc.as_str();
            // Usually the piece of the URL after its first `//`.
            let at = s.as_bytes().windows(2).position(|w| w == b"//").map_or(s.len(), |i| i + 2);
            if netloc.is_empty() {
                Span::default()
            } else if s[at..].starts_with(netloc) {
                Span { start: url.start.saturating_add(at as u32), len: netloc.len() as u32 }
            } else {
                b.push_str(netloc)
            }
        });
        Ok(FileUrl::Str { url, netloc })
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
        Value::String(s) => wide_int_str(s),
        _ => None,
    }
}

/// [`lax_wide_int`] of a string.
pub(crate) fn lax_wide_int_str(s: &str) -> Option<i128> {
    parse_int_str(s).map(i128::from).or_else(|| wide_int_str(s))
}

/// A string as a Python integer up to `i128` (the rules of [`parse_int_str`]).
fn wide_int_str(s: &str) -> Option<i128> {
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
        Value::String(s) => lax_bool_str(s),
        _ => None,
    }
}

/// [`lax_bool`] of a string.
pub(crate) fn lax_bool_str(s: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "yes", "on", "t", "y", "1"];
    const FALSE: [&str; 6] = ["false", "no", "off", "f", "n", "0"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// One entry of a record's `config.download`, as the analytics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download<'a> {
    /// `file_url`; `None` when it is missing or not a string (the reference
    /// requires a string there).
    pub file_url: Option<&'a str>,
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

    /// The reduced fields (for the statistics).
    pub(crate) fn fields(&self) -> &'a Fields {
        self.fields
    }

    /// The text of a span of this record.
    pub(crate) fn str(&self, span: Span) -> &'a str {
        self.doc.str(span)
    }

    /// The entries of a `config.download` list.
    pub(crate) fn entries(&self, run: Run) -> &'a [Entry] {
        let start = run.start as usize;
        self.doc.entries.get(start..start + run.len as usize).unwrap_or_default()
    }

    /// Python's `str()` of each truthy item of `tags` (when it is a list).
    pub(crate) fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
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
        let coerced = match v {
            Val::Str(s) => lax_bool_str(self.str(s)),
            other => lax_bool(&other.scalar()),
        };
        coerced.or_else(|| {
            self.warn_type("nsfw", "a boolean", v.json_type());
            default
        })
    }

    /// `size_on_disk_bytes` (`int | None`, lax integer coercion).
    pub fn size_on_disk_bytes(&self) -> Option<i128> {
        let v = match self.fields.size_on_disk_bytes {
            None | Some(Val::Null) => return None,
            Some(v) => v,
        };
        let coerced = match v {
            Val::Str(s) => lax_wide_int_str(self.str(s)),
            other => lax_wide_int(&other.scalar()),
        };
        coerced.or_else(|| {
            self.warn_type("size_on_disk_bytes", "an integer or null", v.json_type());
            None
        })
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
    use super::*;
    use crate::category::Category;
    use serde_json::json;

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
        assert_eq!(a.fields().name_field, Some(JsonType::String));
        assert_eq!(a.tags().collect::<Vec<_>>(), ["t"]);
        assert!(a.description_missing() && a.downloads().is_empty() && !a.fields().showcases);
        let d = parsed.records().nth(1).unwrap();
        let f = d.fields();
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
        let f = r.fields();
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
            assert_eq!(first(&record(json!({ "config": config }))).fields().config, expected);
        }
        // Duplicate keys in an object: distinct keys are counted.
        let dup = parse_reference(br#"{"m": {"config": {"download": {"a": 1, "a": 2}}}}"#).unwrap();
        assert_eq!(first(&dup).fields().config, Config::Object(DownloadField::Object { keys: 1 }));
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
