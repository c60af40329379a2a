//! What a cycle reads, parsed: the model reference's records
//! ([`reference`]), the AI Horde's model status and usage statistics and
//! their index by name ([`horde`]), and where each source lives — the
//! snapshot directory's file layout and the HTTP endpoints ([`source`]).

/// `DeserializeSeed` for a seed that is its own `Visitor`: the parsers'
/// seeds carry their builder, so each is both; `$how` is the
/// `deserialize_*` call that hands the seed to serde as the visitor.
macro_rules! seed_is_visitor {
    ($seed:ty => $value:ty, $how:ident) => {
        impl<'de> serde::de::DeserializeSeed<'de> for $seed {
            type Value = $value;
            fn deserialize<D: serde::de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.$how(self)
            }
        }
    };
}

#[macro_use]
pub(crate) mod skip;

pub mod horde;
pub mod reference;
pub mod source;
