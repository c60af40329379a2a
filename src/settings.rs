//! Settings: what `config.toml` and the environment may say ([`RawSettings`]),
//! and the validated, typed [`Settings`] the daemon runs with.
//!
//! Loading is one pure function, [`Settings::from_sources`]: the TOML text of
//! the config file (the shell reads it) and the `HORDE_HYDRATOR__SECTION__KEY`
//! environment variables are layered over the built-in defaults (defaults <
//! file < environment), every value is checked once — its type, its range,
//! its URL — and turned into what the actors use: [`Category`]s, [`Source`]s,
//! [`Duration`]s, a [`RedisUrl`] and [`Secret`]s. No actor parses or converts
//! a setting again. Every error names where the bad value came from: the file
//! with line and column, or the environment variable by its exact name
//! ([`Origin`]); a misspelt key or variable is reported with the nearest valid
//! name. Defaults follow the reference's settings (SPEC §2); every key is
//! documented in the top-level `config.toml`.
//!
//! Secrets never reach a log: the admin token is a [`Secret`] and the Redis
//! URL a [`RedisUrl`], whose `Debug` and `Display` are redacted with the URL
//! parser ([`redact_url`]).

use crate::category::Category;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prefix of every environment variable the daemon reads.
pub const ENV_PREFIX: &str = "HORDE_HYDRATOR__";

/// The longest duration a setting may have (one year): longer ones would
/// overflow the clocks' arithmetic and are surely a typo.
const MAX_SECONDS: i64 = 365 * 24 * 3600;

// ------------------------------------------------------------------ raw form

/// A number as the file or the environment wrote it; checked into its typed
/// form (with one wording for every bad value) by [`Settings::from_raw`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
            Number::Text(s) => write!(f, "{s:?}"),
            Number::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// What the settings say before validation: one field per key of
/// `config.toml`, with the built-in defaults. The set of keys (and the kind
/// of value each takes) is read from this type's defaults, so a new key is a
/// new field here plus its check in [`Settings::from_raw`].
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSettings {
    pub hydration: RawHydration,
    pub cache: RawCache,
    pub redis: RawRedis,
    pub horde: RawHorde,
    pub model_reference: RawModelReference,
    pub analysis: RawAnalysis,
    pub admin: RawAdmin,
    pub limits: RawLimits,
    pub log: RawLog,
    pub leader: RawLeader,
    pub http: RawHttp,
}

/// `[hydration]`: the schedule (the reference's `cache_hydration_*`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHydration {
    pub enabled: bool,
    pub interval_seconds: Number,
    pub startup_delay_seconds: Number,
    pub stale_ttl_seconds: Number,
    pub categories: Vec<String>,
    pub invalidation_debounce_ms: Number,
}

impl Default for RawHydration {
    fn default() -> Self {
        RawHydration {
            enabled: true,
            interval_seconds: Number::Int(240),
            startup_delay_seconds: Number::Int(5),
            stale_ttl_seconds: Number::Int(3600),
            categories: Category::ALL.iter().map(|c| c.as_str().to_string()).collect(),
            invalidation_debounce_ms: Number::Int(50),
        }
    }
}

/// `[cache]`: the TTLs of the two kinds of entries.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCache {
    pub deletion_risk_ttl_seconds: Number,
    pub statistics_ttl_seconds: Number,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache { deletion_risk_ttl_seconds: Number::Int(300), statistics_ttl_seconds: Number::Int(300) }
    }
}

/// `[redis]`: where entries are written and pub/sub is listened to.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRedis {
    pub enabled: bool,
    pub url: String,
    pub key_prefix: String,
    pub socket_timeout_seconds: Number,
    pub health_check_seconds: Number,
    /// Empty: none.
    pub tls_ca_file: String,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            enabled: true,
            url: "redis://localhost:6379/0".to_string(),
            key_prefix: "horde:model_ref".to_string(),
            socket_timeout_seconds: Number::Int(5),
            health_check_seconds: Number::Int(5),
            tls_ca_file: String::new(),
        }
    }
}

/// `[horde]`: the AI Horde API, and the HTTP policy of every source.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHorde {
    pub api_url: String,
    pub timeout_seconds: Number,
    pub client_agent: String,
    pub max_retries: Number,
    pub retry_base_delay_ms: Number,
    pub retry_max_delay_seconds: Number,
    pub max_response_bytes: Number,
    pub circuit_failure_threshold: Number,
    pub circuit_open_seconds: Number,
}

impl Default for RawHorde {
    fn default() -> Self {
        RawHorde {
            api_url: "https://aihorde.net/api".to_string(),
            timeout_seconds: Number::Int(30),
            client_agent: "unknown".to_string(),
            max_retries: Number::Int(3),
            retry_base_delay_ms: Number::Int(500),
            retry_max_delay_seconds: Number::Int(30),
            max_response_bytes: Number::Int(64 * 1024 * 1024),
            circuit_failure_threshold: Number::Int(5),
            circuit_open_seconds: Number::Int(60),
        }
    }
}

/// `[model_reference]`: where the v2 model reference comes from.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawModelReference {
    pub url: String,
    pub timeout_seconds: Number,
}

impl Default for RawModelReference {
    fn default() -> Self {
        RawModelReference {
            url: "https://models.aihorde.net/api".to_string(),
            timeout_seconds: Number::Int(10),
        }
    }
}

/// `[analysis]`: the deletion-risk thresholds (the reference's defaults).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAnalysis {
    pub preferred_file_hosts: Vec<String>,
    pub low_usage_threshold_percentage: Number,
    pub text_gen_low_usage_threshold_percentage: Number,
    pub text_gen_ignore_download_hosts: bool,
    pub text_gen_critical_usage_threshold: Number,
    pub text_gen_critical_worker_threshold: Number,
}

impl Default for RawAnalysis {
    fn default() -> Self {
        RawAnalysis {
            preferred_file_hosts: vec!["huggingface.co".to_string()],
            low_usage_threshold_percentage: Number::Float(0.0065),
            text_gen_low_usage_threshold_percentage: Number::Float(0.02),
            text_gen_ignore_download_hosts: true,
            text_gen_critical_usage_threshold: Number::Int(10),
            text_gen_critical_worker_threshold: Number::Int(1),
        }
    }
}

/// `[admin]`: who may send admin commands.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAdmin {
    /// Empty: no token needed.
    pub token: String,
}

/// `[limits]`: the most work one source may ask for.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub max_models_per_category: Number,
    pub max_horde_entries: Number,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits { max_models_per_category: Number::Int(100_000), max_horde_entries: Number::Int(500_000) }
    }
}

/// `[log]`: how the daemon logs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { format: "text".to_string(), level: "info".to_string() }
    }
}

/// `[http]`: the operations HTTP server.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    pub enabled: bool,
    pub bind: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp { enabled: true, bind: "127.0.0.1:9360".to_string() }
    }
}

/// `[leader]`: replicas — which of several daemons on one Redis hydrates.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLeader {
    pub enabled: bool,
    pub lease_seconds: Number,
    pub instance_id: String,
}

impl Default for RawLeader {
    fn default() -> Self {
        RawLeader { enabled: true, lease_seconds: Number::Int(10), instance_id: String::new() }
    }
}

// ---------------------------------------------------------------- typed form

/// Every setting of the daemon, validated and typed, one field per section.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub hydration: HydrationSettings,
    pub cache: CacheSettings,
    pub redis: RedisSettings,
    pub horde: HordeSettings,
    pub model_reference: ModelReferenceSettings,
    pub analysis: AnalysisSettings,
    pub admin: AdminSettings,
    pub limits: LimitsSettings,
    pub log: LogSettings,
    pub leader: LeaderSettings,
    pub http: HttpSettings,
    /// Where each value came from (for `check-config` and the start-up line).
    pub provenance: Provenance,
}

/// `[hydration]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HydrationSettings {
    /// Run scheduled cycles, and serve stale entries up to `stale_ttl`.
    /// (The reference defaults to `false` because hydration is optional in its
    /// web service; hydrating is this program's whole purpose, so `true`.)
    pub enabled: bool,
    pub interval: Duration,
    pub startup_delay: Duration,
    pub stale_ttl: Duration,
    /// In [`Category::ALL`] order, without duplicates, at least one.
    pub categories: Vec<Category>,
    /// Quiet period that ends a burst of invalidations (the re-hydration starts
    /// then, at most 500 ms after the burst began).
    pub invalidation_debounce: Duration,
}

/// `[cache]`: the Redis/memory TTLs of the two kinds of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub deletion_risk_ttl: Duration,
    pub statistics_ttl: Duration,
}

impl CacheSettings {
    /// The TTL of an entry of `kind`.
    pub fn ttl(&self, kind: crate::keys::EntryKind) -> Duration {
        match kind {
            crate::keys::EntryKind::DeletionRisk => self.deletion_risk_ttl,
            crate::keys::EntryKind::Statistics => self.statistics_ttl,
        }
    }
}

/// `[redis]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// Off: memory only, no pub/sub (the offline mode).
    pub enabled: bool,
    /// Checked to be a `redis`, `rediss`, `unix` or `redis+unix` URL when enabled.
    pub url: RedisUrl,
    /// Not empty.
    pub key_prefix: String,
    /// Connect and command timeout.
    pub socket_timeout: Duration,
    /// Both Redis connections (commands, subscriber) send a PING this often;
    /// no answer within `socket_timeout` replaces the connection.
    pub health_check: Duration,
    /// A PEM file of the CA certificate(s) a `rediss://` server's certificate
    /// must chain to (a private CA); `None`: the compiled-in webpki roots.
    /// Only with a `rediss://` URL; a relative path is resolved against the
    /// config file's directory.
    pub tls_ca_file: Option<PathBuf>,
}

/// `[horde]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HordeSettings {
    /// The AI Horde API (`https://…/api`) or a snapshot directory (SPEC §2).
    pub api: Source,
    /// Per request (connect, headers and body).
    pub timeout: Duration,
    /// The contact part of the `Client-Agent` header
    /// `horde-hydrator:<version>:<client_agent>` (no control characters).
    pub client_agent: String,
    /// Retries after the first attempt, on connect errors, 429 and 5xx.
    pub max_retries: u32,
    /// First retry delay; doubles per retry, jittered.
    pub retry_base_delay: Duration,
    /// Cap of a retry delay, including a server's `Retry-After`.
    pub retry_max_delay: Duration,
    /// Responses larger than this are a failure.
    pub max_response_bytes: u64,
    /// Consecutive failed fetches of a source that open its circuit (≥ 1).
    pub circuit_failure_threshold: u32,
    /// How long an open circuit fails fast before one trial request.
    pub circuit_open: Duration,
}

/// `[model_reference]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReferenceSettings {
    /// `https://…/api` (the fetcher appends `/model_references/v2/{category}`)
    /// or a directory holding `{category}.json`.
    pub source: Source,
    /// Per request (the reference's `primary_api_timeout`).
    pub timeout: Duration,
}

/// `[analysis]`: the deletion-risk thresholds, as the core's risk code reads them.
#[derive(Debug, Clone, PartialEq)]
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
        Settings::default().analysis
    }
}

/// `[admin]`: who may send admin commands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminSettings {
    /// When set, every admin command must carry it as `"token"` (an empty
    /// token in the settings is none).
    pub token: Option<Secret>,
}

impl AdminSettings {
    /// The token commands must carry, if one is configured.
    pub fn required_token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose())
    }
}

/// `[limits]`: a source asking for more work than this fails (its category
/// keeps its entries), so memory is bounded by work, not only by bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsSettings {
    /// Records of one category's model reference (≥ 1).
    pub max_models_per_category: usize,
    /// Entries of one Horde document: status models, or names in the stats (≥ 1).
    pub max_horde_entries: usize,
}

/// `[http]`: the operations HTTP server (`/healthz`, `/readyz`, `/metrics`,
/// `/status`, and the read routes), started by `run` only.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub enabled: bool,
    /// Where to listen (`127.0.0.1:9360` by default: this host only; port 0
    /// picks a free port, logged at start-up).
    pub bind: core::net::SocketAddr,
}

/// `[leader]`: replicas — which of several daemons on one Redis hydrates.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderSettings {
    /// Take part in the leader election (a lease in Redis); only the holder
    /// hydrates and writes. Has no effect while `redis.enabled` is false.
    pub enabled: bool,
    /// How long the lease lasts without renewal (renewed every third of it; ≥ 3 s).
    pub lease: Duration,
    /// This daemon's name in the lease, `status` and `CLIENT LIST`; empty:
    /// `<hostname>:<pid>` (filled in by the shell). At most 200 characters,
    /// no spaces or control characters.
    pub instance_id: String,
}

impl LeaderSettings {
    /// The lease is in use: enabled, and there is a Redis to hold it in.
    pub fn active(&self, redis: &RedisSettings) -> bool {
        self.enabled && redis.enabled
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A filter in `RUST_LOG`'s syntax: a level (`error`, `warn`, `info`,
    /// `debug`, `trace`, `off`), optionally with `target=level` parts, comma
    /// separated. `RUST_LOG`, when set, wins.
    pub level: String,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, for people.
    Text,
    /// One JSON object per line (`ts`, `level`, `target`, `message`, `fields`), for machines.
    Json,
}

/// Where a source's data lives: validated once, never re-parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An `http`/`https` base URL with a host.
    Http(url::Url),
    /// A snapshot directory (`file://` in the settings; relative paths are
    /// resolved against the config file's directory).
    Dir(PathBuf),
}

impl Source {
    /// The base URL without a trailing slash (`None` for a directory).
    pub fn http_base(&self) -> Option<&str> {
        match self {
            Source::Http(u) => Some(u.as_str().trim_end_matches('/')),
            Source::Dir(_) => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(u) => f.write_str(&redact_url(u.as_str())),
            Source::Dir(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// A string that must not be logged: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
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

/// The Redis URL, which may hold a password: `Display` and `Debug` show it
/// redacted ([`redact_url`]); [`RedisUrl::expose`] is for connecting only.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    pub fn new(s: impl Into<String>) -> Self {
        RedisUrl(Secret::new(s))
    }

    /// The URL itself, to hand to the Redis client.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with every secret replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// `raw` with every secret a URL can carry replaced by `***`, parsed with the
/// URL parser: a password, a user name without a password (the password in
/// the user slot, `redis://SECRET@host`), and the `pass`/`password` query
/// parameters (redis-rs's `redis+unix:///path?pass=SECRET`). Unparsable
/// input is redacted entirely after the scheme.
pub fn redact_url(raw: &str) -> String {
    const MASK: &str = "***";
    let unparsable = || match raw.split_once("://") {
        Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
            format!("{scheme}://<unparsable, redacted>")
        }
        _ => "<unparsable, redacted>".to_string(),
    };
    let Ok(mut u) = url::Url::parse(raw) else {
        return unparsable();
    };
    if u.password().is_some() {
        if u.set_password(Some(MASK)).is_err() {
            return unparsable();
        }
    } else if !u.username().is_empty() && u.set_username(MASK).is_err() {
        return unparsable();
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = matches!(k.to_ascii_lowercase().as_str(), "pass" | "password");
                (k.into_owned(), if secret { MASK.to_string() } else { v.into_owned() })
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if u.fragment().is_some() {
        u.set_fragment(Some(MASK));
    }
    u.to_string()
}

// ------------------------------------------------------------------- origins

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The config file, at a 1-based line and column.
    File { path: String, line: usize, column: usize },
    /// An environment variable, by its exact name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line, column } => write!(f, "{path} line {line}, column {column}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// The config file that was read, and where every key's value came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Provenance {
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Every key (`section.key`), its value as shown to people (secrets
    /// redacted) and its origin, in `config.toml` order.
    pub values: Vec<(String, String, Origin)>,
}

/// A setting the daemon cannot run with: names the key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SettingsError {
    /// `section.key`, as in `config.toml` (empty for a file that is not TOML).
    pub key: String,
    pub origin: Origin,
    pub message: String,
}

impl SettingsError {
    fn describe(&self) -> String {
        match (&self.origin, self.key.is_empty()) {
            (Origin::Default, false) => format!("invalid setting `{}`: {}", self.key, self.message),
            (origin, false) => format!("invalid setting `{}` ({origin}): {}", self.key, self.message),
            (origin, true) => format!("{origin}: {}", self.message),
        }
    }
}

// ------------------------------------------------------------------- loading

/// The kind of value a key takes, read from [`RawSettings`]'s defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Bool,
    Text,
    List,
}

/// Every key `section.key` of [`RawSettings`] with its kind, in order.
fn known_keys() -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    let Ok(table) = toml::Table::try_from(RawSettings::default()) else {
        return out;
    };
    for (section, body) in &table {
        let Some(body) = body.as_table() else { continue };
        for (key, value) in body {
            let kind = match value {
                toml::Value::Integer(_) | toml::Value::Float(_) => Kind::Number,
                toml::Value::Boolean(_) => Kind::Bool,
                toml::Value::Array(_) => Kind::List,
                _ => Kind::Text,
            };
            out.push((format!("{section}.{key}"), kind));
        }
    }
    out
}

/// The environment variable of `key` (`hydration.interval_seconds` →
/// `HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS`).
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The candidate nearest to `wrong`, when it is near enough to be meant.
fn nearest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&wrong, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean {s}?"))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Settings {
    /// Load the settings from the config file's text (`file`: its path as
    /// shown to people and its contents, `None` when no file is read) and the
    /// `HORDE_HYDRATOR__…` environment variables (`env`; others are ignored),
    /// over the built-in defaults. Relative `file://` paths resolve against
    /// `base` (the config file's directory, made absolute by the caller).
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: &[(String, String)],
        base: &Path,
    ) -> Result<Settings, SettingsError> {
        let keys = known_keys();
        let kind_of = |key: &str| keys.iter().find(|(k, _)| k == key).map(|(_, kind)| *kind);
        let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
        let mut merged = toml::Table::new();
        let set = |merged: &mut toml::Table, key: &str, value: toml::Value| {
            if let Some((section, name)) = key.split_once('.') {
                if let Some(t) = merged
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                {
                    t.insert(name.to_string(), value);
                }
            }
        };

        if let Some((path, text)) = file {
            let shown = path.display().to_string();
            let at = |offset: usize| {
                let (line, column) = line_column(text, offset);
                Origin::File { path: shown.clone(), line, column }
            };
            // A UTF-8 BOM is not TOML, but editors write it: accept it.
            let (text, skipped) = match text.strip_prefix('\u{feff}') {
                Some(rest) => (rest, '\u{feff}'.len_utf8()),
                None => (text, 0),
            };
            let not_toml = |e: toml::de::Error| {
                let offset = e.span().map_or(0, |s| s.start);
                // The line as written, so the key is named even where the
                // parser cannot say which key it was reading.
                let start = text.get(..offset).unwrap_or(text).rfind('\n').map_or(0, |i| i + 1);
                let line = text.get(start..).unwrap_or("").lines().next().unwrap_or("").trim();
                SettingsError {
                    key: String::new(),
                    origin: at(offset + skipped),
                    message: format!("not valid TOML: {} (in `{line}`)", e.message()),
                }
            };
            let doc = toml::de::DeTable::parse(text).map_err(not_toml)?;
            let values: toml::Table = toml::from_str(text).map_err(not_toml)?;
            for (section, body) in doc.get_ref() {
                let section_name: &str = section.get_ref();
                let known =
                    keys.iter().any(|(k, _)| k.split_once('.').is_some_and(|(s, _)| s == section_name));
                let table = values.get(section_name).and_then(toml::Value::as_table).filter(|_| known);
                let Some(table) = table else {
                    let suggestion = nearest(
                        section_name,
                        keys.iter().filter_map(|(k, _)| k.split_once('.').map(|(s, _)| s)),
                    );
                    return Err(SettingsError {
                        key: section_name.to_string(),
                        origin: at(section.span().start + skipped),
                        message: format!(
                            "not a section of the settings{}",
                            did_you_mean(suggestion.map(|s| format!("[{s}]")).as_deref())
                        ),
                    });
                };
                let toml::de::DeValue::Table(spans) = body.get_ref() else { continue };
                for (name, value) in spans {
                    let key = format!("{section_name}.{}", name.get_ref());
                    let origin = at(value.span().start + skipped);
                    let Some(kind) = kind_of(&key) else {
                        let suggestion = nearest(&key, keys.iter().map(|(k, _)| k.as_str()));
                        return Err(SettingsError {
                            key,
                            origin: at(name.span().start + skipped),
                            message: format!("unknown setting{}", did_you_mean(suggestion)),
                        });
                    };
                    let Some(v) = table.get(name.get_ref().as_ref() as &str) else { continue };
                    check_kind(&key, kind, v).map_err(|message| SettingsError {
                        key: key.clone(),
                        origin: origin.clone(),
                        message,
                    })?;
                    set(&mut merged, &key, v.clone());
                    origins.insert(key, origin);
                }
            }
        }

        let mut env: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        env.sort();
        for (name, raw) in env {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase().replacen("__", ".", 1);
            let origin = Origin::Env(name.clone());
            let Some(kind) = kind_of(&key) else {
                let names: Vec<String> = keys.iter().map(|(k, _)| env_name(k)).collect();
                let suggestion = nearest(name, names.iter().map(String::as_str));
                return Err(SettingsError {
                    key: String::new(),
                    origin,
                    message: format!("not a setting of horde-hydrator{}", did_you_mean(suggestion)),
                });
            };
            let value = env_value(kind, raw).map_err(|message| SettingsError {
                key: key.clone(),
                origin: origin.clone(),
                message,
            })?;
            set(&mut merged, &key, value);
            origins.insert(key, origin);
        }

        let raw: RawSettings = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| {
            SettingsError { key: String::new(), origin: Origin::Default, message: e.message().to_string() }
        })?;
        let origin_of = |key: &str| origins.get(key).cloned().unwrap_or(Origin::Default);
        let mut settings = Settings::from_raw(&raw, &origin_of, base)?;
        settings.provenance = Provenance {
            file: file.map(|(p, _)| p.to_path_buf()),
            values: shown_values(&raw).into_iter().map(|(k, v)| (k.clone(), v, origin_of(&k))).collect(),
        };
        Ok(settings)
    }

    /// Check every value of `raw` and type it; `origin` says where a key's
    /// value came from (for the error). The first problem wins.
    pub fn from_raw(
        raw: &RawSettings,
        origin: &dyn Fn(&str) -> Origin,
        base: &Path,
    ) -> Result<Settings, SettingsError> {
        let v = Check { origin };
        let h = &raw.hydration;
        let hydration = HydrationSettings {
            enabled: h.enabled,
            interval: v.seconds("hydration.interval_seconds", &h.interval_seconds, 1)?,
            startup_delay: v.seconds("hydration.startup_delay_seconds", &h.startup_delay_seconds, 0)?,
            stale_ttl: v.seconds("hydration.stale_ttl_seconds", &h.stale_ttl_seconds, 1)?,
            categories: v.categories("hydration.categories", &h.categories)?,
            invalidation_debounce: v.millis(
                "hydration.invalidation_debounce_ms",
                &h.invalidation_debounce_ms,
                0,
            )?,
        };
        let cache = CacheSettings {
            deletion_risk_ttl: v.seconds(
                "cache.deletion_risk_ttl_seconds",
                &raw.cache.deletion_risk_ttl_seconds,
                1,
            )?,
            statistics_ttl: v.seconds(
                "cache.statistics_ttl_seconds",
                &raw.cache.statistics_ttl_seconds,
                1,
            )?,
        };
        let r = &raw.redis;
        if r.enabled {
            let parsed = url::Url::parse(&r.url)
                .map_err(|e| v.fail("redis.url", format!("not a URL ({e}): {}", redact_url(&r.url))))?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
                return Err(v.fail(
                    "redis.url",
                    format!(
                        "unknown URL scheme {:?}: expected redis, rediss, unix or redis+unix",
                        parsed.scheme()
                    ),
                ));
            }
        }
        if r.key_prefix.is_empty() {
            return Err(v.fail("redis.key_prefix", "must not be empty"));
        }
        let tls_ca_file = Some(Path::new(&r.tls_ca_file)).filter(|p| !p.as_os_str().is_empty());
        if let (true, Some(_)) = (r.enabled, tls_ca_file) {
            let scheme = r.url.split_once("://").map_or("", |(scheme, _)| scheme);
            if scheme != "rediss" {
                return Err(v.fail(
                    "redis.tls_ca_file",
                    format!("is set, but redis.url is {scheme}://, not rediss:// (TLS): use rediss:// or remove tls_ca_file"),
                ));
            }
        }
        let redis = RedisSettings {
            enabled: r.enabled,
            url: RedisUrl::new(r.url.clone()),
            key_prefix: r.key_prefix.clone(),
            socket_timeout: v.seconds("redis.socket_timeout_seconds", &r.socket_timeout_seconds, 1)?,
            health_check: v.seconds("redis.health_check_seconds", &r.health_check_seconds, 1)?,
            tls_ca_file: tls_ca_file.map(|p| if p.is_absolute() { p.to_path_buf() } else { base.join(p) }),
        };
        let hs = &raw.horde;
        if hs.client_agent.is_empty() || hs.client_agent.chars().any(char::is_control) {
            return Err(v.fail("horde.client_agent", "must be a non-empty string without control characters"));
        }
        let horde = HordeSettings {
            api: v.source("horde.api_url", &hs.api_url, base)?,
            timeout: v.seconds("horde.timeout_seconds", &hs.timeout_seconds, 1)?,
            client_agent: hs.client_agent.clone(),
            max_retries: v.count("horde.max_retries", &hs.max_retries, 0)?,
            retry_base_delay: v.millis("horde.retry_base_delay_ms", &hs.retry_base_delay_ms, 0)?,
            retry_max_delay: v.seconds("horde.retry_max_delay_seconds", &hs.retry_max_delay_seconds, 0)?,
            max_response_bytes: v.whole(
                "horde.max_response_bytes",
                &hs.max_response_bytes,
                1,
                i64::MAX,
                "bytes",
            )? as u64,
            circuit_failure_threshold: v.count(
                "horde.circuit_failure_threshold",
                &hs.circuit_failure_threshold,
                1,
            )?,
            circuit_open: v.seconds("horde.circuit_open_seconds", &hs.circuit_open_seconds, 1)?,
        };
        let m = &raw.model_reference;
        let model_reference = ModelReferenceSettings {
            source: v.source("model_reference.url", &m.url, base)?,
            timeout: v.seconds("model_reference.timeout_seconds", &m.timeout_seconds, 1)?,
        };
        let a = &raw.analysis;
        let analysis = AnalysisSettings {
            preferred_file_hosts: a.preferred_file_hosts.clone(),
            low_usage_threshold_percentage: v
                .percentage("analysis.low_usage_threshold_percentage", &a.low_usage_threshold_percentage)?,
            text_gen_low_usage_threshold_percentage: v.percentage(
                "analysis.text_gen_low_usage_threshold_percentage",
                &a.text_gen_low_usage_threshold_percentage,
            )?,
            text_gen_ignore_download_hosts: a.text_gen_ignore_download_hosts,
            text_gen_critical_usage_threshold: v.whole(
                "analysis.text_gen_critical_usage_threshold",
                &a.text_gen_critical_usage_threshold,
                0,
                i64::MAX,
                "",
            )?,
            text_gen_critical_worker_threshold: v.whole(
                "analysis.text_gen_critical_worker_threshold",
                &a.text_gen_critical_worker_threshold,
                0,
                i64::MAX,
                "",
            )?,
        };
        let admin =
            AdminSettings { token: Some(raw.admin.token.clone()).filter(|t| !t.is_empty()).map(Secret) };
        let format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(v.fail("log.format", format!("must be \"text\" or \"json\" (got {other:?})")))
            }
        };
        let levels = ["off", "error", "warn", "info", "debug", "trace"];
        let bad_part = raw.log.level.split(',').map(str::trim).find(|part| {
            let level = part
                .rsplit_once('=')
                .map_or(*part, |(target, level)| if target.is_empty() { "" } else { level });
            !levels.contains(&level.to_ascii_lowercase().as_str())
        });
        if let Some(part) = bad_part {
            return Err(v.fail(
                "log.level",
                format!("{part:?} is not a level: use off, error, warn, info, debug or trace, optionally as target=level parts"),
            ));
        }
        let log = LogSettings { format, level: raw.log.level.clone() };
        let ld = &raw.leader;
        if ld.instance_id.chars().count() > 200
            || ld.instance_id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(v.fail(
                "leader.instance_id",
                "must be at most 200 characters, without spaces or control characters (it names Redis connections)",
            ));
        }
        let leader = LeaderSettings {
            enabled: ld.enabled,
            lease: v.seconds("leader.lease_seconds", &ld.lease_seconds, 3)?,
            instance_id: ld.instance_id.clone(),
        };
        let bind = raw.http.bind.parse().map_err(|_| {
            v.fail(
                "http.bind",
                format!(
                    "must be IP:port, e.g. \"127.0.0.1:9360\" or \"[::1]:9360\" (got {:?})",
                    raw.http.bind
                ),
            )
        })?;
        let http = HttpSettings { enabled: raw.http.enabled, bind };
        let l = &raw.limits;
        let limits = LimitsSettings {
            max_models_per_category: v.count(
                "limits.max_models_per_category",
                &l.max_models_per_category,
                1,
            )? as usize,
            max_horde_entries: v.count("limits.max_horde_entries", &l.max_horde_entries, 1)? as usize,
        };
        Ok(Settings {
            hydration,
            cache,
            redis,
            horde,
            model_reference,
            analysis,
            admin,
            limits,
            log,
            leader,
            http,
            provenance: Provenance::default(),
        })
    }
}

impl Default for Settings {
    /// The built-in defaults (relative paths against `.`).
    fn default() -> Self {
        match Settings::from_raw(&RawSettings::default(), &|_| Origin::Default, Path::new(".")) {
            Ok(s) => s,
            // The defaults are checked by a test; this cannot happen.
            Err(e) => panic!("the built-in settings are invalid: {e}"),
        }
    }
}

/// Is `value` (from the file) of the kind `key` takes?
fn check_kind(key: &str, kind: Kind, value: &toml::Value) -> Result<(), String> {
    let ok = match kind {
        Kind::Number => {
            matches!(
                value,
                toml::Value::Integer(_)
                    | toml::Value::Float(_)
                    | toml::Value::String(_)
                    | toml::Value::Boolean(_)
            )
        }
        Kind::Bool => value.is_bool(),
        Kind::Text => value.is_str(),
        Kind::List => value.as_array().is_some_and(|a| a.iter().all(toml::Value::is_str)),
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        Kind::Number => "a number",
        Kind::Bool => "true or false",
        Kind::Text => "a string",
        Kind::List => "a list of strings",
    };
    let shown =
        if key.ends_with("token") || key.ends_with("url") { "…".to_string() } else { value.to_string() };
    Err(format!("must be {expected} (got {shown})"))
}

/// The TOML value of an environment variable's text, for a key of `kind`.
fn env_value(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    let t = raw.trim();
    Ok(match kind {
        Kind::Number => {
            if let Ok(i) = t.parse::<i64>() {
                toml::Value::Integer(i)
            } else if let Some(x) = t.parse::<f64>().ok().filter(|x| x.is_finite()) {
                toml::Value::Float(x)
            } else {
                toml::Value::String(raw.to_string())
            }
        }
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(format!("must be true or false (got {raw:?})")),
        },
        Kind::Text => toml::Value::String(raw.to_string()),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        ),
    })
}

/// Every key with its value as shown to people (secrets redacted).
fn shown_values(raw: &RawSettings) -> Vec<(String, String)> {
    let Ok(table) = toml::Table::try_from(raw.clone()) else { return Vec::new() };
    let mut out = Vec::new();
    for (section, body) in &table {
        let Some(body) = body.as_table() else { continue };
        for (key, value) in body {
            let full = format!("{section}.{key}");
            let shown = match value {
                toml::Value::String(s) if full.ends_with("url") => {
                    toml::Value::String(redact_url(s)).to_string()
                }
                toml::Value::String(s) if full.ends_with("token") || full.ends_with("password") => {
                    if s.is_empty() {
                        "\"\"".to_string()
                    } else {
                        "\"<redacted>\"".to_string()
                    }
                }
                other => other.to_string(),
            };
            out.push((full, shown));
        }
    }
    out
}

/// The checks of [`Settings::from_raw`], with the origin of each key at hand.
struct Check<'a> {
    origin: &'a dyn Fn(&str) -> Origin,
}

impl Check<'_> {
    fn fail(&self, key: &str, message: impl Into<String>) -> SettingsError {
        SettingsError { key: key.to_string(), origin: (self.origin)(key), message: message.into() }
    }

    /// A whole number in `min..=max`; `unit` names what it counts ("" for none).
    fn whole(&self, key: &str, n: &Number, min: i64, max: i64, unit: &str) -> Result<i64, SettingsError> {
        let of = if unit.is_empty() { String::new() } else { format!(" of {unit}") };
        match n {
            Number::Int(i) if (min..=max).contains(i) => Ok(*i),
            Number::Int(i) if *i > max => {
                Err(self.fail(key, format!("must be a whole number{of} ≤ {max} (got {i})")))
            }
            other => Err(self.fail(key, format!("must be a whole number{of} ≥ {min} (got {other})"))),
        }
    }

    fn seconds(&self, key: &str, n: &Number, min: i64) -> Result<Duration, SettingsError> {
        Ok(Duration::from_secs(self.whole(key, n, min, MAX_SECONDS, "seconds")? as u64))
    }

    fn millis(&self, key: &str, n: &Number, min: i64) -> Result<Duration, SettingsError> {
        Ok(Duration::from_millis(self.whole(key, n, min, MAX_SECONDS * 1000, "milliseconds")? as u64))
    }

    fn count(&self, key: &str, n: &Number, min: i64) -> Result<u32, SettingsError> {
        Ok(self.whole(key, n, min, i64::from(u32::MAX), "")? as u32)
    }

    fn percentage(&self, key: &str, n: &Number) -> Result<f64, SettingsError> {
        let x = match n {
            Number::Int(i) => *i as f64,
            Number::Float(x) => *x,
            other => return Err(self.fail(key, format!("must be a finite number ≥ 0 (got {other})"))),
        };
        if !x.is_finite() || x < 0.0 {
            return Err(self.fail(key, format!("must be a finite number ≥ 0 (got {n})")));
        }
        Ok(x)
    }

    fn categories(&self, key: &str, names: &[String]) -> Result<Vec<Category>, SettingsError> {
        if names.is_empty() {
            return Err(self.fail(key, "needs at least one category"));
        }
        let mut wanted = Vec::new();
        for name in names {
            wanted.push(name.parse::<Category>().map_err(|e| self.fail(key, e.to_string()))?);
        }
        Ok(Category::ALL.into_iter().filter(|c| wanted.contains(c)).collect())
    }

    /// `http://`/`https://` with a host, or `file://` with a directory path
    /// (`file://localhost/abs` is `/abs`, RFC 8089; relative paths join `base`).
    fn source(&self, key: &str, value: &str, base: &Path) -> Result<Source, SettingsError> {
        if let Some(path) = value.strip_prefix("file://") {
            let path = path.strip_prefix("localhost").filter(|p| p.starts_with('/')).unwrap_or(path);
            if path.is_empty() {
                return Err(self.fail(key, "a file:// URL needs a directory path"));
            }
            let path = Path::new(path);
            return Ok(Source::Dir(if path.is_absolute() { path.to_path_buf() } else { base.join(path) }));
        }
        let parsed = url::Url::parse(value)
            .map_err(|e| self.fail(key, format!("not a URL ({e}): {:?}", redact_url(value))))?;
        match parsed.scheme() {
            "http" | "https" if parsed.host_str().is_some() => Ok(Source::Http(parsed)),
            "http" | "https" => Err(self.fail(key, format!("URL has no host: {:?}", redact_url(value)))),
            other => {
                Err(self.fail(key, format!("unknown URL scheme {other:?}: expected http, https or file")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_sources(Some((Path::new("c.toml"), toml)), &env, Path::new("/base"))
    }

    fn err(toml: &str, env: &[(&str, &str)]) -> String {
        match load(toml, env) {
            Ok(_) => panic!("{toml:?} {env:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_the_references_and_valid() {
        let s = Settings::default();
        assert_eq!(s.hydration.interval, Duration::from_secs(240));
        assert_eq!(s.hydration.startup_delay, Duration::from_secs(5));
        assert_eq!(s.hydration.stale_ttl, Duration::from_secs(3600));
        assert_eq!(s.cache.deletion_risk_ttl, Duration::from_secs(300));
        assert_eq!(s.cache.statistics_ttl, Duration::from_secs(300));
        assert_eq!(s.redis.key_prefix, "horde:model_ref");
        assert_eq!(s.horde.api.http_base(), Some("https://aihorde.net/api"));
        assert_eq!(s.horde.timeout, Duration::from_secs(30));
        assert_eq!(s.model_reference.source.http_base(), Some("https://models.aihorde.net/api"));
        assert_eq!(s.analysis.preferred_file_hosts, vec!["huggingface.co".to_string()]);
        assert_eq!(s.analysis.low_usage_threshold_percentage, 0.0065);
        assert_eq!(s.hydration.categories, Category::ALL.to_vec());
        assert_eq!(s.admin.required_token(), None);
        assert_eq!(load("", &[]).unwrap().hydration, s.hydration);
    }

    #[test]
    fn layers_defaults_file_and_environment_with_origins() {
        let s = load(
            "[hydration]\ninterval_seconds = 60\nstartup_delay_seconds = 1\n",
            &[
                ("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS", "90"),
                ("HORDE_HYDRATOR__ADMIN__TOKEN", "12345"),
                ("HORDE_HYDRATOR__HYDRATION__CATEGORIES", "text_generation, text_generation"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(s.hydration.interval, Duration::from_secs(90), "environment beats file");
        assert_eq!(s.hydration.startup_delay, Duration::from_secs(1), "file beats default");
        assert_eq!(s.hydration.categories, vec![Category::TextGeneration]);
        assert_eq!(s.admin.required_token(), Some("12345"));
        let origin = |key: &str| s.provenance.values.iter().find(|(k, _, _)| k == key).unwrap().2.clone();
        assert_eq!(
            origin("hydration.interval_seconds"),
            Origin::Env("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS".into())
        );
        assert_eq!(
            origin("hydration.startup_delay_seconds"),
            Origin::File { path: "c.toml".into(), line: 3, column: 25 }
        );
        assert_eq!(origin("cache.statistics_ttl_seconds"), Origin::Default);
        let shown = format!("{:?}", s.provenance);
        assert!(!shown.contains("12345"), "{shown}");
    }

    #[test]
    fn every_bad_number_has_one_wording_and_a_position() {
        let want = "must be a whole number of seconds ≥ 1";
        for (value, got) in [("-5", "-5"), ("0", "0"), ("0.4", "0.4"), ("1.5", "1.5"), ("\"300\"", "\"300\"")]
        {
            let e = err(&format!("[hydration]\ninterval_seconds = {value}\n"), &[]);
            assert_eq!(
                e,
                format!("invalid setting `hydration.interval_seconds` (c.toml line 2, column 20): {want} (got {got})")
            );
        }
        let e = err("[cache]\nstatistics_ttl_seconds = 0.4\n", &[]);
        assert!(e.contains("`cache.statistics_ttl_seconds` (c.toml line 2, column 26): must be a whole number of seconds ≥ 1 (got 0.4)"), "{e}");
        let e = err("[hydration]\ninterval_seconds = 99999999999999\n", &[]);
        assert!(e.contains("must be a whole number of seconds ≤ 31536000 (got 99999999999999)"), "{e}");
        let e = err("[horde]\nmax_retries = -1\n", &[]);
        assert!(
            e.contains("`horde.max_retries` (c.toml line 2, column 15): must be a whole number ≥ 0 (got -1)"),
            "{e}"
        );
    }

    #[test]
    fn an_overflowing_float_names_its_position() {
        let e = err("[hydration]\n\ninterval_seconds = 1e9999\n", &[]);
        assert_eq!(
            e,
            "c.toml line 3, column 20: not valid TOML: floating-point number overflowed (in `interval_seconds = 1e9999`)"
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let e = err("", &[("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS", "abc")]);
        assert_eq!(
            e,
            "invalid setting `hydration.interval_seconds` (environment variable \
             HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS): must be a whole number of seconds ≥ 1 (got \"abc\")"
        );
        let e = err("", &[("HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS", "-5")]);
        assert!(e.contains("HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS): must be a whole number of seconds ≥ 1 (got -5)"), "{e}");
        let e = err("", &[("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECOND", "60")]);
        assert_eq!(
            e,
            "environment variable HORDE_HYDRATOR__HYDRATION__INTERVAL_SECOND: not a setting of horde-hydrator; \
             did you mean HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS?"
        );
        let e = err("", &[("HORDE_HYDRATOR__REDIS__ENABLED", "maybe")]);
        assert!(e.contains("HORDE_HYDRATOR__REDIS__ENABLED): must be true or false"), "{e}");
    }

    #[test]
    fn file_type_and_key_errors_have_a_position() {
        let e = err("[horde]\nno_such_key = 1\n", &[]);
        assert!(e.contains("`horde.no_such_key` (c.toml line 2, column 1): unknown setting"), "{e}");
        let e = err("[hydration]\ninterval_secnds = 1\n", &[]);
        assert!(e.contains("did you mean hydration.interval_seconds?"), "{e}");
        let e = err("[hydratoin]\n", &[]);
        assert!(e.contains("did you mean [hydration]?"), "{e}");
        let e = err("[redis]\nenabled = \"yes\"\n", &[]);
        assert!(e.contains("`redis.enabled` (c.toml line 2, column 11): must be true or false"), "{e}");
        let e = err("[horde\napi_url = 1\n", &[]);
        assert!(e.starts_with("c.toml line 1, column"), "{e}");
        let e = err("[hydration]\ncategories = \"text_generation\"\n", &[]);
        assert!(e.contains("must be a list of strings"), "{e}");
    }

    #[test]
    fn a_bom_is_accepted_and_positions_count_from_it() {
        let s = load("\u{feff}[hydration]\ninterval_seconds = 7\n", &[]).unwrap();
        assert_eq!(s.hydration.interval, Duration::from_secs(7));
        let e = err("\u{feff}[hydration]\ninterval_seconds = 0\n", &[]);
        assert!(e.contains("c.toml line 2, column 20"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let e = err("[hydration]\ncategories = [\"clip\"]\n", &[]);
        assert!(e.contains("`hydration.categories`") && e.contains("clip"), "{e}");
        let e = err("[horde]\napi_url = \"ftp://example.com/api\"\n", &[]);
        assert!(e.contains("`horde.api_url`") && e.contains("ftp"), "{e}");
        let e = err("[model_reference]\nurl = \"models.aihorde.net/api\"\n", &[]);
        assert!(e.contains("`model_reference.url`"), "{e}");
        let e = err("[redis]\nurl = \"http://localhost:6379\"\n", &[]);
        assert!(e.contains("`redis.url`"), "{e}");
        let e = err("", &[("HORDE_HYDRATOR__ANALYSIS__LOW_USAGE_THRESHOLD_PERCENTAGE", "nan")]);
        assert!(e.contains("`analysis.low_usage_threshold_percentage`"), "{e}");
        let e = err("[analysis]\ntext_gen_low_usage_threshold_percentage = \"0.02\"\n", &[]);
        assert!(e.contains("must be a finite number ≥ 0 (got \"0.02\")"), "{e}");
    }

    #[test]
    fn log_settings_are_checked() {
        let s = load("[log]\nformat = \"json\"\nlevel = \"warn,horde_hydrator=debug\"\n", &[]).unwrap();
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.log.level, "warn,horde_hydrator=debug");
        let e = err("[log]\nformat = \"xml\"\n", &[]);
        assert!(e.contains("`log.format` (c.toml line 2, column 10): must be \"text\" or \"json\""), "{e}");
        let e = err("", &[("HORDE_HYDRATOR__LOG__LEVEL", "verbose")]);
        assert!(e.contains("HORDE_HYDRATOR__LOG__LEVEL): \"verbose\" is not a level"), "{e}");
    }

    #[test]
    fn leader_defaults_and_validation() {
        let s = Settings::default();
        assert!(s.leader.enabled);
        assert_eq!(s.leader.lease, Duration::from_secs(10));
        assert!(s.leader.active(&s.redis), "replicas on whenever Redis is");
        let s = load("[redis]\nenabled = false\n", &[]).unwrap();
        assert!(!s.leader.active(&s.redis), "no lease without Redis");
        let e = err("[leader]\nlease_seconds = 2\n", &[]);
        assert!(
            e.contains(
                "`leader.lease_seconds` (c.toml line 2, column 17): must be a whole number of seconds ≥ 3"
            ),
            "{e}"
        );
        let e = err("[leader]\ninstance_id = \"host a\"\n", &[]);
        assert!(e.contains("`leader.instance_id`"), "{e}");
        assert!(load("[leader]\ninstance_id = \"host-a:42\"\n", &[]).is_ok());
    }

    #[test]
    fn sources_are_typed_once() {
        let s = load(
            "[horde]\napi_url = \"file://data/horde\"\n[model_reference]\nurl = \"file://localhost/abs/mr\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.horde.api, Source::Dir(PathBuf::from("/base/data/horde")));
        assert_eq!(s.model_reference.source, Source::Dir(PathBuf::from("/abs/mr")));
        let e = err("[model_reference]\nurl = \"file://\"\n", &[]);
        assert!(e.contains("needs a directory path"), "{e}");
        let s = load("[horde]\napi_url = \"https://aihorde.net/api/\"\n", &[]).unwrap();
        assert_eq!(s.horde.api.http_base(), Some("https://aihorde.net/api"));
    }

    #[test]
    fn disabled_redis_url_is_not_checked() {
        assert!(load("[redis]\nenabled = false\nurl = \"nonsense\"\n", &[]).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_provenance() {
        let s = load(
            "[redis]\nurl = \"redis://:SECRET@example.com:6379/0\"\n[admin]\ntoken = \"hunter2\"\n",
            &[],
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("redis://:***@example.com:6379/0"), "{shown}");
        assert_eq!(s.admin.required_token(), Some("hunter2"));
        assert_eq!(s.redis.url.expose(), "redis://:SECRET@example.com:6379/0");
    }

    #[test]
    fn a_tls_ca_file_needs_a_rediss_url_and_resolves_against_the_config_directory() {
        let e = load("[redis]\ntls_ca_file = \"ca.pem\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("redis.tls_ca_file") && e.contains("rediss://"), "{e}");
        let s = load("[redis]\nurl = \"rediss://h:6380/0\"\ntls_ca_file = \"tls/ca.pem\"\n", &[]).unwrap();
        assert_eq!(s.redis.tls_ca_file, Some(PathBuf::from("/base/tls/ca.pem")));
        let env = [("HORDE_HYDRATOR__REDIS__TLS_CA_FILE", "/etc/ca.pem")];
        let s = load("[redis]\nurl = \"rediss://h:6380/0\"\n", &env).unwrap();
        assert_eq!(s.redis.tls_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(load("", &[]).unwrap().redis.tls_ca_file, None);
    }

    #[test]
    fn redaction_covers_every_form() {
        for (raw, want) in [
            ("redis://localhost:6379/0", "redis://localhost:6379/0"),
            ("redis://:SECRET@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:SECRET@h/1", "redis://user:***@h/1"),
            ("redis://SECRET@host", "redis://***@host"),
            ("redis://SECRET@host:6379/0", "redis://***@host:6379/0"),
            ("rediss://SECRET@host", "rediss://***@host"),
            ("redis+unix:///run/redis.sock?pass=SECRET", "redis+unix:///run/redis.sock?pass=***"),
            ("unix:///run/redis.sock?db=1&pass=SECRET", "unix:///run/redis.sock?db=1&pass=***"),
            ("redis://host/0?password=SECRET&protocol=resp3", "redis://host/0?password=***&protocol=resp3"),
            ("redis://host/0?PASSWORD=SECRET", "redis://host/0?PASSWORD=***"),
            ("redis://host/0#SECRET", "redis://host/0#***"),
            ("redis://:SECRET@[::1", "redis://<unparsable, redacted>"),
            ("SECRET", "<unparsable, redacted>"),
        ] {
            assert_eq!(redact_url(raw), want, "{raw}");
            assert!(!format!("{:?} {}", RedisUrl::new(raw), RedisUrl::new(raw)).contains("SECRET"), "{raw}");
        }
    }

    #[test]
    fn every_key_has_an_environment_variable() {
        let keys = known_keys();
        assert!(keys.len() >= 30, "{keys:?}");
        assert!(keys.contains(&("admin.token".to_string(), Kind::Text)));
        assert!(keys.contains(&("hydration.categories".to_string(), Kind::List)));
        assert_eq!(env_name("hydration.interval_seconds"), "HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS");
    }
}
