//! (stub: filled by the analytics work)
