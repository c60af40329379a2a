//! horde-hydrator's functional core.
//!
//! Everything in this crate is plain functions over plain data: parsing the
//! model reference and the AI Horde responses, name handling, merging, the
//! deletion-risk analysis, text-model grouping, category statistics, settings
//! and Redis key names. There is no I/O and no actor here, so every step can be
//! unit-tested and benchmarked alone. The daemon around it lives in `actors/`.
//!
//! Data flow of one category in one cycle (see [`cycle::compute_category`]):
//!
//! ```text
//! records::parse_reference ─┐
//! horde::parse_status ──────┼─> horde::index ─> merge ─> risk ─> grouping ─┐
//! horde::parse_stats ───────┘                                  stats ──────┴─> serialised entries
//! ```

pub mod category;
pub mod cycle;
pub mod grouping;
pub mod horde;
pub mod keys;
pub mod merge;
pub mod names;
pub mod pyfloat;
pub mod pyjson;
pub mod pyurl;
pub mod read_api;
pub mod records;
pub mod risk;
pub mod settings;
pub mod stats;
