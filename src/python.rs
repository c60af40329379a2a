//! Python's behaviour, where the reference's answers depend on it: its JSON
//! reader ([`json`]), float rounding and `repr` ([`float`]), `urlsplit`
//! ([`url`]), the Unicode tables of `str.isdigit`/`\w` ([`unicode`]) and
//! pydantic's lax coercions ([`lax`]). Each is tested against Python's own
//! answers for the same inputs.

pub mod float;
pub mod json;
pub mod lax;
pub mod unicode;
pub mod url;
