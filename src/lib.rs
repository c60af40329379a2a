//! horde-hydrator's functional core.
//!
//! Everything in this crate is plain functions over plain data: parsing the
//! model reference and the AI Horde responses, name handling, merging, the
//! deletion-risk analysis, text-model grouping, category statistics, settings
//! and Redis key names. There is no I/O, no thread and no actor here (the test
//! `tests/core_is_pure.rs` checks the imports), so every step can be
//! unit-tested and benchmarked alone. The daemon around it lives in
//! `actors/`, which also decides what runs on which thread.
//!
//! The folders follow the data flow of one category in one cycle (see
//! [`cycle`]):
//!
//! ```text
//!  input/                      analytics/                          output/
//!  reference::parse_reference ─┐
//!  horde::parse_status ────────┼─> horde index ─> merge ─> risk ─> grouping ─┐
//!  horde::parse_stats ─────────┘                   stats ────────────────────┴─> JSON entries
//! ```
//!
//! `python/` holds the Python behaviour every step must match (its JSON
//! reader, float rounding, `urlsplit`, Unicode classes, pydantic's lax
//! coercions); `category`, `keys` and `settings` are shared by all.

pub mod analytics;
pub mod category;
pub mod cycle;
pub mod input;
pub mod keys;
pub mod leader;
pub mod output;
pub mod python;
pub mod settings;
