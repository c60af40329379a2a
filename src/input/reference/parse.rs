//! Parsing a category's v2 JSON into the reduced records ([`super::arena`]):
//! serde seeds and visitors that keep each read field as its readers need it
//! and skip everything else without building it.

use foldhash::{HashMap, HashMapExt};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::arena::*;
use super::{ParsedReference, ReferenceError};
use crate::input::skip::{KeyWith, Shape, Skip};
use crate::python::lax::{py_strip, JsonType};

/// Parse one category's model reference.
///
/// As Python's `json.loads` into a dict: of two equal keys, the later value
/// wins at the earlier one's position.
pub fn parse_reference(bytes: &[u8]) -> Result<ParsedReference, ReferenceError> {
    let (builder, top) = crate::python::json::parse_with(bytes, |bytes| {
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

/// The whole document: `None` when it is an object (its records are added
/// to the builder), else its type.
struct TopSeed<'b>(&'b mut Builder);

seed_is_visitor!(TopSeed<'_> => Option<JsonType>, deserialize_any);

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

seed_is_visitor!(TextSeed<'_> => Span, deserialize_str);

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Span, E> {
        Ok(self.0.push_str(s))
    }
}

/// One of the [`READ_FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
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
    pub(crate) fn of(key: &str) -> Option<Field> {
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

/// One record (a value of the document), named `name`.
struct RecordSeed<'b> {
    b: &'b mut Builder,
    name: Span,
}

seed_is_visitor!(RecordSeed<'_> => Result<Fields, JsonType>, deserialize_any);

impl<'de> Visitor<'de> for RecordSeed<'_> {
    /// The record's fields, or the type of a value that is not an object.
    type Value = Result<Fields, JsonType>;
    expecting_any!();
    shapes!(IgnoredAny; shape => Err(shape.ty); bool number null str array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let b = self.b;
        let mut f = Fields { name: self.name, ..Fields::default() };
        while let Some(field) = map.next_key_seed(KeyWith(Field::of))? {
            let Some(field) = field else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match field {
                Field::Name => f.name_field = Some(map.next_value::<Shape>()?.ty),
                Field::Description => f.description = map.next_value_seed(DescriptionSeed)?,
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

seed_is_visitor!(ValSeed<'_> => Val, deserialize_any);

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
        let repr = if empty { Span::default() } else { self.push_str(&crate::python::json::py_str(&value)) };
        Container { empty, repr }
    }
}

/// `description`.
struct DescriptionSeed;

seed_is_visitor!(DescriptionSeed => Description, deserialize_any);

impl<'de> Visitor<'de> for DescriptionSeed {
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

/// `tags`: the Python `str()` of each truthy item, when it is a list.
struct TagsSeed<'b>(&'b mut Builder);

seed_is_visitor!(TagsSeed<'_> => Run, deserialize_any);

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
                scalar => b.push_str(&crate::python::json::py_str(&scalar.scalar())),
            };
            b.doc.tags.push(text);
        }
        let end = b.doc.tags.len();
        Ok(b.run(start, end))
    }
}

/// `config`.
struct ConfigSeed<'b>(&'b mut Builder);

seed_is_visitor!(ConfigSeed<'_> => Config, deserialize_any);

impl<'de> Visitor<'de> for ConfigSeed<'_> {
    type Value = Config;
    expecting_any!();
    shapes!(Skip; shape => Config::Other { ty: shape.ty, download_in: None }; bool number null);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Config, E> {
        Ok(Config::Other { ty: JsonType::String, download_in: Some(s.contains("download")) })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Config, A::Error> {
        let mut found = false;
        while let Some(is) = seq.next_element_seed(DownloadWordSeed)? {
            found |= is;
        }
        Ok(Config::Other { ty: JsonType::Array, download_in: Some(found) })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
        let b = self.0;
        let mut download = DownloadField::Missing;
        while next_member(&mut map, "download")? {
            download = map.next_value_seed(DownloadSeed(&mut *b))?;
        }
        Ok(Config::Object(download))
    }
}

/// Move on to the next member of an object named `key` (its value is read
/// next), validating and skipping the others; `false` at the object's end.
/// Of two members named `key`, the caller keeps the later (Python's dict).
fn next_member<'de, A: MapAccess<'de>>(map: &mut A, key: &str) -> Result<bool, A::Error> {
    while let Some(is_key) = map.next_key_seed(KeyWith(|k: &str| k == key))? {
        if is_key {
            return Ok(true);
        }
        map.next_value::<Skip>()?;
    }
    Ok(false)
}

/// An item of an array `config`: whether it is the string `"download"`.
struct DownloadWordSeed;

seed_is_visitor!(DownloadWordSeed => bool, deserialize_any);

impl<'de> Visitor<'de> for DownloadWordSeed {
    type Value = bool;
    expecting_any!();
    shapes!(Skip; _shape => false; bool number null array object);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        Ok(s == "download")
    }
}

/// `config.download`.
struct DownloadSeed<'b>(&'b mut Builder);

seed_is_visitor!(DownloadSeed<'_> => DownloadField, deserialize_any);

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

seed_is_visitor!(EntrySeed<'_> => Entry, deserialize_any);

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    expecting_any!();
    shapes!(Skip; shape => Entry::Other(shape.ty); bool number null str array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let b = self.0;
        let mut file_url = FileUrl::Missing;
        while next_member(&mut map, "file_url")? {
            file_url = map.next_value_seed(FileUrlSeed(&mut *b))?;
        }
        Ok(Entry::Object(file_url))
    }
}

/// A download entry's `file_url`.
struct FileUrlSeed<'b>(&'b mut Builder);

seed_is_visitor!(FileUrlSeed<'_> => FileUrl, deserialize_any);

impl<'de> Visitor<'de> for FileUrlSeed<'_> {
    type Value = FileUrl;
    expecting_any!();
    shapes!(Skip; shape => FileUrl::Other { ty: shape.ty, truthy: shape.truthy };
        bool number null array object);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<FileUrl, E> {
        let b = self.0;
        let url = b.push_str(s);
        let netloc = crate::python::url::urlsplit(s).ok().map(|parts| {
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
