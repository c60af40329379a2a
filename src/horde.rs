//! AI Horde data: status and stats responses, and their case-insensitive index.
//!
//! (stub: filled by the analytics work; the parse signatures are fixed, the
//! shell calls them)

/// One entry of `GET /v2/status/models`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct HordeModelStatus {
    pub name: String,
}

/// `GET /v2/stats/{img,text}/models`: usage per period, name → count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HordeModelStats {}

/// A Horde response could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum HordeError {
    #[error("Horde response is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Horde response has the wrong shape: {0}")]
    Shape(String),
}

/// Parse a `/v2/status/models` response (a JSON array).
pub fn parse_status(bytes: &[u8]) -> Result<Vec<HordeModelStatus>, HordeError> {
    let _ = bytes;
    todo!("horde::parse_status")
}

/// Parse a `/v2/stats/.../models` response (`{day, month, total}`).
pub fn parse_stats(bytes: &[u8]) -> Result<HordeModelStats, HordeError> {
    let _ = bytes;
    todo!("horde::parse_stats")
}
