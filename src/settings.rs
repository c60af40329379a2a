//! Settings: the sections of `config.toml`, their defaults and validation.
//!
//! Only the types and checks live here (no file or environment access); the
//! shell loads them with the `config` crate. Defaults follow the reference's
//! settings (SPEC §2).

use serde::Deserialize;

/// `[analysis]`: the deletion-risk thresholds (the reference's defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisSettings {
    pub preferred_file_hosts: Vec<String>,
    pub low_usage_threshold_percentage: f64,
    pub text_gen_low_usage_threshold_percentage: f64,
    pub text_gen_ignore_download_hosts: bool,
    pub text_gen_critical_usage_threshold: i64,
    pub text_gen_critical_worker_threshold: i64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            preferred_file_hosts: vec!["huggingface.co".to_string()],
            low_usage_threshold_percentage: 0.0065,
            text_gen_low_usage_threshold_percentage: 0.02,
            text_gen_ignore_download_hosts: true,
            text_gen_critical_usage_threshold: 10,
            text_gen_critical_worker_threshold: 1,
        }
    }
}
