//! Settings: the sections of `config.toml`, their defaults and validation.
//!
//! Only the types and checks live here (no file or environment access); the
//! shell (`actors/config.rs`) layers built-in defaults < the TOML file <
//! `HORDE_HYDRATOR__SECTION__KEY` environment variables with the `config`
//! crate, deserialises into [`Settings`] and calls [`Settings::validate`].
//! Defaults follow the reference's settings (SPEC §2); every key is documented
//! in the top-level `config.toml`.
//!
//! Secrets never reach a log: the admin token is a [`Secret`] whose `Debug`
//! is redacted, and [`RedisSettings`]'s `Debug` masks a password in its URL.

use crate::category::Category;
use serde::Deserialize;
use std::fmt;

/// Every setting of the daemon, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub hydration: HydrationSettings,
    pub cache: CacheSettings,
    pub redis: RedisSettings,
    pub horde: HordeSettings,
    pub model_reference: ModelReferenceSettings,
    pub analysis: AnalysisSettings,
    pub admin: AdminSettings,
}

/// `[hydration]`: the schedule (the reference's `cache_hydration_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HydrationSettings {
    /// Run scheduled cycles, and serve stale entries up to `stale_ttl_seconds`.
    /// (The reference defaults to `false` because hydration is optional in its
    /// web service; hydrating is this program's whole purpose, so `true`.)
    pub enabled: bool,
    pub interval_seconds: u64,
    pub startup_delay_seconds: u64,
    pub stale_ttl_seconds: u64,
    /// Category names (validated into [`Category`] by [`Settings::categories`]).
    pub categories: Vec<String>,
    /// Quiet period that ends a burst of invalidations (the re-hydration starts
    /// then, at most 500 ms after the burst began).
    pub invalidation_debounce_ms: u64,
}

impl Default for HydrationSettings {
    fn default() -> Self {
        HydrationSettings {
            enabled: true,
            interval_seconds: 240,
            startup_delay_seconds: 5,
            stale_ttl_seconds: 3600,
            categories: Category::ALL.iter().map(|c| c.as_str().to_string()).collect(),
            invalidation_debounce_ms: 50,
        }
    }
}

/// `[cache]`: the Redis/memory TTLs of the two kinds of entries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub deletion_risk_ttl_seconds: u64,
    pub statistics_ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { deletion_risk_ttl_seconds: 300, statistics_ttl_seconds: 300 }
    }
}

/// `[redis]`: where entries are written and pub/sub is listened to.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Off: memory only, no pub/sub (the offline mode).
    pub enabled: bool,
    /// `redis://[:password@]host:port/db` (may hold a password: see [`redact_url`]).
    pub url: String,
    pub key_prefix: String,
    /// Connect and command timeout.
    pub socket_timeout_seconds: u64,
    /// A PEM file of the CA certificate(s) a `rediss://` server's certificate
    /// must chain to (a private CA); unset: the compiled-in webpki roots.
    /// A relative path is resolved against the config file's directory.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            enabled: true,
            url: "redis://localhost:6379/0".to_string(),
            key_prefix: "horde:model_ref".to_string(),
            socket_timeout_seconds: 5,
            tls_ca_file: None,
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("enabled", &self.enabled)
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("socket_timeout_seconds", &self.socket_timeout_seconds)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// `[horde]`: the AI Horde API, and the HTTP policy of every source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HordeSettings {
    /// `https://…` or `file:///dir` (a snapshot directory, SPEC §2).
    pub api_url: String,
    /// Per request (connect, headers and body), seconds.
    pub timeout_seconds: u64,
    /// The contact part of the `Client-Agent` header
    /// `horde-hydrator:<version>:<client_agent>`.
    pub client_agent: String,
    /// Retries after the first attempt, on connect errors, 429 and 5xx.
    pub max_retries: u32,
    /// First retry delay; doubles per retry, jittered.
    pub retry_base_delay_ms: u64,
    /// Cap of a retry delay, including a server's `Retry-After`.
    pub retry_max_delay_seconds: u64,
    /// Responses larger than this are a failure.
    pub max_response_bytes: u64,
    /// Consecutive failed fetches of a source that open its circuit.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit fails fast before one trial request.
    pub circuit_open_seconds: u64,
}

impl Default for HordeSettings {
    fn default() -> Self {
        HordeSettings {
            api_url: "https://aihorde.net/api".to_string(),
            timeout_seconds: 30,
            client_agent: "unknown".to_string(),
            max_retries: 3,
            retry_base_delay_ms: 500,
            retry_max_delay_seconds: 30,
            max_response_bytes: 64 * 1024 * 1024,
            circuit_failure_threshold: 5,
            circuit_open_seconds: 60,
        }
    }
}

/// `[model_reference]`: where the v2 model reference comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelReferenceSettings {
    /// `https://…/api` (the fetcher appends `/model_references/v2/{category}`)
    /// or `file:///dir` holding `{category}.json`.
    pub url: String,
    /// Per request, seconds (the reference's `primary_api_timeout`).
    pub timeout_seconds: u64,
}

impl Default for ModelReferenceSettings {
    fn default() -> Self {
        ModelReferenceSettings { url: "https://models.aihorde.net/api".to_string(), timeout_seconds: 10 }
    }
}

/// `[admin]`: who may send admin commands.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// When set (and not empty), every admin command must carry it as `"token"`.
    pub token: Option<Secret>,
}

impl AdminSettings {
    /// The token commands must carry, if one is configured (an empty one is none).
    pub fn required_token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose()).filter(|t| !t.is_empty())
    }
}

/// A string that must not be logged: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that compares or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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

/// A setting with a value the daemon cannot run with; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{key}`: {message}")]
pub struct SettingsError {
    /// `section.key`, as in `config.toml`.
    pub key: String,
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError { key: key.to_string(), message: message.into() }
}

fn at_least(key: &str, value: u64, min: u64) -> Result<(), SettingsError> {
    if value < min {
        return Err(invalid(key, format!("must be at least {min} (got {value})")));
    }
    Ok(())
}

/// A source URL: `http://`, `https://` or `file://` (relative or absolute path).
fn source_url(key: &str, value: &str) -> Result<(), SettingsError> {
    if let Some(path) = value.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid(key, "a file:// URL needs a directory path"));
        }
        return Ok(());
    }
    let parsed = url::Url::parse(value).map_err(|e| invalid(key, format!("not a URL ({e}): {value:?}")))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => Ok(()),
        "http" | "https" => Err(invalid(key, format!("URL has no host: {value:?}"))),
        other => Err(invalid(key, format!("unknown URL scheme {other:?}: expected http, https or file"))),
    }
}

impl Settings {
    /// Check every value the types alone cannot; the first problem wins.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let h = &self.hydration;
        at_least("hydration.interval_seconds", h.interval_seconds, 1)?;
        at_least("hydration.stale_ttl_seconds", h.stale_ttl_seconds, 1)?;
        if h.categories.is_empty() {
            return Err(invalid("hydration.categories", "needs at least one category"));
        }
        for name in &h.categories {
            name.parse::<Category>().map_err(|e| invalid("hydration.categories", e.to_string()))?;
        }
        at_least("cache.deletion_risk_ttl_seconds", self.cache.deletion_risk_ttl_seconds, 1)?;
        at_least("cache.statistics_ttl_seconds", self.cache.statistics_ttl_seconds, 1)?;

        let r = &self.redis;
        if r.enabled {
            let parsed = url::Url::parse(&r.url)
                .map_err(|e| invalid("redis.url", format!("not a URL ({e}): {}", redact_url(&r.url))))?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
                return Err(invalid(
                    "redis.url",
                    format!("unknown URL scheme {:?}: expected redis, rediss or unix", parsed.scheme()),
                ));
            }
        }
        if r.key_prefix.is_empty() {
            return Err(invalid("redis.key_prefix", "must not be empty"));
        }
        at_least("redis.socket_timeout_seconds", r.socket_timeout_seconds, 1)?;
        if r.enabled && r.tls_ca_file.as_ref().is_some_and(|p| !p.as_os_str().is_empty()) {
            let scheme = r.url.split_once("://").map_or("", |(scheme, _)| scheme);
            if scheme != "rediss" {
                return Err(invalid(
                    "redis.tls_ca_file",
                    format!("is set, but redis.url is {scheme}://, not rediss:// (TLS): use rediss:// or remove tls_ca_file"),
                ));
            }
        }

        let hs = &self.horde;
        source_url("horde.api_url", &hs.api_url)?;
        at_least("horde.timeout_seconds", hs.timeout_seconds, 1)?;
        at_least("horde.max_response_bytes", hs.max_response_bytes, 1)?;
        at_least("horde.circuit_failure_threshold", u64::from(hs.circuit_failure_threshold), 1)?;
        if hs.client_agent.is_empty() || hs.client_agent.chars().any(char::is_control) {
            return Err(invalid(
                "horde.client_agent",
                "must be a non-empty string without control characters",
            ));
        }
        source_url("model_reference.url", &self.model_reference.url)?;
        at_least("model_reference.timeout_seconds", self.model_reference.timeout_seconds, 1)?;

        let a = &self.analysis;
        for (key, v) in [
            ("analysis.low_usage_threshold_percentage", a.low_usage_threshold_percentage),
            ("analysis.text_gen_low_usage_threshold_percentage", a.text_gen_low_usage_threshold_percentage),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(key, format!("must be a finite number ≥ 0 (got {v})")));
            }
        }
        Ok(())
    }

    /// The categories to hydrate, in [`Category::ALL`] order, without
    /// duplicates (unknown names are skipped: [`Settings::validate`] rejects them).
    pub fn categories(&self) -> Vec<Category> {
        let wanted: Vec<Category> = self.hydration.categories.iter().filter_map(|n| n.parse().ok()).collect();
        Category::ALL.into_iter().filter(|c| wanted.contains(c)).collect()
    }

    /// The TTL of an entry of `kind`, in seconds.
    pub fn ttl_seconds(&self, kind: crate::keys::EntryKind) -> u64 {
        match kind {
            crate::keys::EntryKind::DeletionRisk => self.cache.deletion_risk_ttl_seconds,
            crate::keys::EntryKind::Statistics => self.cache.statistics_ttl_seconds,
        }
    }
}

/// `url` with any password (and user name) replaced by `***`, for logs.
/// Unparsable input is redacted entirely after the scheme.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparsable, redacted>"),
            None => "<unparsable, redacted>".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_references_and_valid() {
        let s = Settings::default();
        assert_eq!(s.hydration.interval_seconds, 240);
        assert_eq!(s.hydration.startup_delay_seconds, 5);
        assert_eq!(s.hydration.stale_ttl_seconds, 3600);
        assert_eq!(s.cache.deletion_risk_ttl_seconds, 300);
        assert_eq!(s.cache.statistics_ttl_seconds, 300);
        assert_eq!(s.redis.key_prefix, "horde:model_ref");
        assert_eq!(s.horde.api_url, "https://aihorde.net/api");
        assert_eq!(s.horde.timeout_seconds, 30);
        assert_eq!(s.model_reference.url, "https://models.aihorde.net/api");
        assert_eq!(s.analysis.preferred_file_hosts, vec!["huggingface.co".to_string()]);
        assert_eq!(s.categories(), Category::ALL.to_vec());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_key() {
        let mut s = Settings::default();
        s.hydration.interval_seconds = 0;
        assert_eq!(s.validate().unwrap_err().key, "hydration.interval_seconds");

        let mut s = Settings::default();
        s.hydration.categories = vec!["clip".to_string()];
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "hydration.categories");
        assert!(e.to_string().contains("clip"), "{e}");

        let mut s = Settings::default();
        s.horde.api_url = "ftp://example.com/api".to_string();
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "horde.api_url");
        assert!(e.message.contains("ftp"), "{e}");

        let mut s = Settings::default();
        s.model_reference.url = "models.aihorde.net/api".to_string();
        assert_eq!(s.validate().unwrap_err().key, "model_reference.url");

        let mut s = Settings::default();
        s.redis.url = "http://localhost:6379".to_string();
        assert_eq!(s.validate().unwrap_err().key, "redis.url");

        let mut s = Settings::default();
        s.analysis.low_usage_threshold_percentage = f64::NAN;
        assert_eq!(s.validate().unwrap_err().key, "analysis.low_usage_threshold_percentage");
    }

    #[test]
    fn file_urls_may_be_relative_or_absolute() {
        let mut s = Settings::default();
        s.horde.api_url = "file:///srv/horde".to_string();
        s.model_reference.url = "file://data/model_reference".to_string();
        assert_eq!(s.validate(), Ok(()));
        s.model_reference.url = "file://".to_string();
        assert_eq!(s.validate().unwrap_err().key, "model_reference.url");
    }

    #[test]
    fn a_tls_ca_file_needs_a_rediss_url() {
        let mut s = Settings::default();
        s.redis.tls_ca_file = Some("/etc/ssl/private-ca.pem".into());
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "redis.tls_ca_file");
        assert!(e.message.contains("rediss://"), "{e}");
        s.redis.url = "rediss://cache.example.com:6380/0".to_string();
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn disabled_redis_url_is_not_checked() {
        let mut s = Settings::default();
        s.redis.enabled = false;
        s.redis.url = "nonsense".to_string();
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings::default();
        s.admin.token = Some(Secret::new("hunter2"));
        s.redis.url = "redis://:s3cret@example.com:6379/0".to_string();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://:***@example.com:6379/0"), "{shown}");
        assert_eq!(s.admin.required_token(), Some("hunter2"));
        assert_eq!(redact_url("redis://localhost:6379/0"), "redis://localhost:6379/0");
        assert_eq!(redact_url("redis://user:pw@h/1"), "redis://user:***@h/1");
    }

    #[test]
    fn empty_token_means_none_and_categories_dedupe() {
        let mut s = Settings::default();
        s.admin.token = Some(Secret::new(""));
        assert_eq!(s.admin.required_token(), None);
        s.hydration.categories = vec!["text_generation".into(), "text_generation".into()];
        assert_eq!(s.categories(), vec![Category::TextGeneration]);
    }
}
