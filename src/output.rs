//! The entries' JSON: one serialisation path for every entry.
