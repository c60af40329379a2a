//! The entries' JSON, one serialisation path for every entry: the writer of
//! [`json`], used by the deletion-risk views ([`risk`], written model by
//! model as the analysis makes them) and the statistics ([`stats`]).

pub mod json;
pub mod risk;
pub mod stats;
