//! The model reference: parsing a category's v2 JSON (name → record).
//!
//! Records are kept as JSON objects, in file order (ties in every sort follow
//! it), because the two consumers read different fields: the deletion-risk
//! analysis reads a handful through typed accessors, the statistics read many.
//! A record that is not an object is skipped with a warning naming it; the
//! rest of the category is still computed.

use serde_json::{Map, Value};

/// One model of the reference, as the file holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The key of the record in the category object (the model's name).
    pub name: String,
    /// The record itself.
    pub fields: Map<String, Value>,
}

/// A category's records, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReference {
    pub records: Vec<RawRecord>,
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

/// Parse one category's model reference.
pub fn parse_reference(bytes: &[u8]) -> Result<ParsedReference, ReferenceError> {
    let value: Value = serde_json::from_slice(bytes)?;
    let Value::Object(map) = value else {
        return Err(ReferenceError::NotAnObject(json_type_name(&value)));
    };
    let mut records = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            Value::Object(fields) => records.push(RawRecord { name, fields }),
            other => log::warn!(
                "model reference: skipping record {name:?}: expected an object, found {}",
                json_type_name(&other)
            ),
        }
    }
    Ok(ParsedReference { records })
}
