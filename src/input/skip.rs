//! Reading a JSON value without building it: [`Skip`] validates any value
//! exactly as a `serde_json::Value` parse would (strings checked, numbers
//! parsed) and keeps nothing; [`Shape`] keeps only its type and Python
//! truthiness; [`KeyWith`] reads an object key by a function of its text.
//! The macros `shapes!` and `expecting_any!` write the visitor methods the
//! parsers of [`super::reference`] and [`super::horde`] share.

use crate::python::lax::JsonType;
use serde::de::{self, Visitor};

/// What a value that is not read whole looks like to Python: its type and
/// truthiness.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) ty: JsonType,
    pub(crate) truthy: bool,
}

/// The visitor methods of the JSON types a visitor does not read itself:
/// each builds `$shape` (the value's [`Shape`]; the content of arrays and
/// objects is skipped with `$skip`) and answers `$out`.
macro_rules! shapes {
    ($skip:ty; $shape:ident => $out:expr; $($kind:ident)*) => {
        $( shapes!(@$kind $skip; $shape => $out); )*
    };
    (@bool $skip:ty; $shape:ident => $out:expr) => {
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Bool, truthy: b };
            Ok($out)
        }
    };
    (@number $skip:ty; $shape:ident => $out:expr) => {
        fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Number, truthy: i != 0 };
            Ok($out)
        }
        fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Number, truthy: u != 0 };
            Ok($out)
        }
        fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Number, truthy: f != 0.0 };
            Ok($out)
        }
    };
    (@null $skip:ty; $shape:ident => $out:expr) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Null, truthy: false };
            Ok($out)
        }
    };
    (@str $skip:ty; $shape:ident => $out:expr) => {
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::String, truthy: !s.is_empty() };
            Ok($out)
        }
    };
    (@array $skip:ty; $shape:ident => $out:expr) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut truthy = false;
            while seq.next_element::<$skip>()?.is_some() {
                truthy = true;
            }
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Array, truthy };
            Ok($out)
        }
    };
    (@object $skip:ty; $shape:ident => $out:expr) => {
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut truthy = false;
            while map.next_key::<$skip>()?.is_some() {
                map.next_value::<$skip>()?;
                truthy = true;
            }
            let $shape = $crate::input::skip::Shape { ty: $crate::python::lax::JsonType::Object, truthy };
            Ok($out)
        }
    };
}

/// Writes what a visitor expects (any JSON value).
macro_rules! expecting_any {
    () => {
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
    };
}

/// Any JSON value, validated exactly as a `serde_json::Value` would be
/// (strings are checked, numbers parsed) but not built: a [`Shape`] read and
/// dropped.
pub(crate) struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Shape::deserialize(d).map(|_| Skip)
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

/// An object key read by a function of its text, without building a
/// `String` (`map.next_key_seed(KeyWith(Field::of))`).
pub(crate) struct KeyWith<F>(pub(crate) F);

impl<'de, K, F: FnOnce(&str) -> K> de::DeserializeSeed<'de> for KeyWith<F> {
    type Value = K;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K, F: FnOnce(&str) -> K> Visitor<'de> for KeyWith<F> {
    type Value = K;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<K, E> {
        Ok((self.0)(s))
    }
}
