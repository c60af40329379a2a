//! The entries' JSON, one serialisation path for every entry: the writer of
//! [`json`], used by the deletion-risk views ([`risk`], written model by
//! model as the analysis makes them) and the statistics ([`stats`]); and the
//! answers of the read API made from a stored entry ([`read_api`]).

pub mod json;
pub mod read_api;
pub mod risk;
pub mod stats;
