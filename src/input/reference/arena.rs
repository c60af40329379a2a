//! The reduced record: what the parse keeps of each of the reference's
//! [`READ_FIELDS`](super::READ_FIELDS) (see the parent module's "Shaped for
//! speed"), as pieces of one text buffer and runs of shared item lists.

use crate::python::lax::JsonType;
use serde_json::Value;

/// A piece of the category's text buffer ([`Doc::text`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// A run of items in one of the category's item lists ([`Doc::tags`],
/// [`Doc::entries`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) start: u32,
    pub(crate) len: u32,
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
pub(crate) enum Description {
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
    pub(crate) name: Span,
    /// `None` for a record (an object); else the type of the value the
    /// category holds under the key (dropped once the whole category is read).
    pub(crate) not_an_object: Option<JsonType>,
    /// The type of the `name` field.
    pub(crate) name_field: Option<JsonType>,
    pub(crate) description: Description,
    pub(crate) baseline: Option<Val>,
    pub(crate) nsfw: Option<Val>,
    pub(crate) size_on_disk_bytes: Option<Val>,
    pub(crate) config: Config,
    /// Python's `str()` of each truthy item of `tags`, when it is a list.
    pub(crate) tags: Run,
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
pub(crate) struct Doc {
    /// Every kept string (names, string values, reprs, hosts), concatenated.
    pub(crate) text: String,
    pub(crate) records: Vec<Fields>,
    /// The counted texts of all records' `tags`.
    pub(crate) tags: Vec<Span>,
    /// All records' `config.download` entries.
    pub(crate) entries: Vec<Entry>,
}

impl Doc {
    pub(crate) fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text.get(start..start + span.len as usize).unwrap_or_default()
    }
}
