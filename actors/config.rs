//! Loading the settings: built-in defaults < the TOML file < the environment.
//!
//! The file is `--config FILE` (default `./config.toml`; a missing default
//! file means "defaults only", a missing explicit file is an error). Every
//! key can be overridden by `HORDE_HYDRATOR__<SECTION>__<KEY>` (list values
//! comma-separated). The result is validated by the core
//! ([`Settings::validate`]), so a bad value stops start-up naming its key.
//!
//! `file://` source URLs with a relative path (`file://data/horde`) are
//! resolved against the directory of the config file that was loaded (the
//! current directory when no file was loaded), so `examples/offline.toml`
//! works from any working directory.

use horde_hydrator::settings::Settings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The default config file, used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// The settings could not be loaded; the message names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: config::ConfigError },
    #[error(transparent)]
    Invalid(#[from] horde_hydrator::settings::SettingsError),
}

/// Where the settings came from, for the start-up log line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Load from `explicit` (`--config`) or `./config.toml`, then the process environment.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let env: HashMap<String, String> =
        std::env::vars().filter(|(k, _)| k.starts_with("HORDE_HYDRATOR__")).collect();
    load_with_env(explicit, env)
}

/// [`load`] with the environment given (tests pass their own).
pub fn load_with_env(explicit: Option<&Path>, env: HashMap<String, String>) -> Result<Loaded, ConfigError> {
    let file = match explicit {
        Some(p) if !p.is_file() => return Err(ConfigError::Missing(p.to_path_buf())),
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
    };
    let mut builder = config::Config::builder();
    if let Some(path) = &file {
        builder = builder
            .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml).required(true));
    }
    let environment = config::Environment::with_prefix("HORDE_HYDRATOR")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("hydration.categories")
        .with_list_parse_key("analysis.preferred_file_hosts")
        .source(Some(env.into_iter().collect()));
    builder = builder.add_source(environment);
    let describe = || {
        file.as_ref().map_or_else(|| "(defaults and environment)".to_string(), |p| p.display().to_string())
    };
    let built = builder.build().map_err(|source| ConfigError::Read { path: describe(), source })?;
    let mut settings: Settings =
        built.try_deserialize().map_err(|source| ConfigError::Read { path: describe(), source })?;
    settings.validate()?;

    let base = match file.as_ref().and_then(|p| p.parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    settings.horde.api_url = resolve_file_url(&settings.horde.api_url, &base);
    settings.model_reference.url = resolve_file_url(&settings.model_reference.url, &base);
    if let Some(ca) = settings.redis.tls_ca_file.take() {
        settings.redis.tls_ca_file = Some(if ca.is_relative() { base.join(ca) } else { ca });
    }
    Ok(Loaded { settings, file })
}

/// `file://relative/dir` → `file:///abs/base/relative/dir`; anything else unchanged.
///
/// Standard file URLs are read as such too: `file://localhost/abs` is
/// `file:///abs` (RFC 8089), and a percent-encoded path (what Python's
/// `Path.as_uri()` writes for spaces and non-ASCII) is decoded when the
/// path as written does not exist but the decoded one does.
fn resolve_file_url(url: &str, base: &Path) -> String {
    let Some(path) = url.strip_prefix("file://") else {
        return url.to_string();
    };
    let path = path.strip_prefix("localhost").filter(|p| p.starts_with('/')).unwrap_or(path);
    let path = match percent_decoded(path) {
        Some(decoded) if !base.join(path).exists() && base.join(&decoded).exists() => decoded,
        _ => path.to_string(),
    };
    if path.starts_with('/') {
        return format!("file://{path}");
    }
    let joined = base.join(&path);
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    format!("file://{}", absolute.display())
}

/// `s` with its `%XX` escapes decoded; `None` when it has none, a malformed
/// one, or decodes to something that is not UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn layers_defaults_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[hydration]\ninterval_seconds = 60\nstartup_delay_seconds = 1\n[redis]\nkey_prefix = \"t\"\n",
        );
        let loaded = load_with_env(
            Some(&p),
            env(&[
                ("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS", "90"),
                ("HORDE_HYDRATOR__HYDRATION__CATEGORIES", "text_generation"),
                ("HORDE_HYDRATOR__ADMIN__TOKEN", "12345"),
            ]),
        )
        .unwrap();
        let s = loaded.settings;
        assert_eq!(s.hydration.interval_seconds, 90, "environment beats file");
        assert_eq!(s.hydration.startup_delay_seconds, 1, "file beats default");
        assert_eq!(s.hydration.stale_ttl_seconds, 3600, "default");
        assert_eq!(s.redis.key_prefix, "t");
        assert_eq!(s.categories(), vec![horde_hydrator::category::Category::TextGeneration]);
        assert_eq!(s.admin.required_token(), Some("12345"));
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = load_with_env(Some(Path::new("/nonexistent/x.toml")), env(&[])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[hydration]\ninterval_seconds = 0\n", "hydration.interval_seconds"),
            ("[hydration]\ninterval_seconds = -5\n", "interval_seconds"),
            ("[hydration]\ncategories = [\"clip\"]\n", "hydration.categories"),
            ("[horde]\napi_url = \"gopher://x\"\n", "horde.api_url"),
            ("[horde\napi_url = 1\n", "c.toml"),
            ("[horde]\nno_such_key = 1\n", "no_such_key"),
        ];
        for (toml, key) in cases {
            let p = write(dir.path(), toml);
            let e = load_with_env(Some(&p), env(&[])).unwrap_err();
            assert!(e.to_string().contains(key), "{toml:?}: {e}");
        }

        let e = load_with_env(None, env(&[("HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS", "zero")]))
            .unwrap_err();
        assert!(e.to_string().contains("statistics_ttl_seconds"), "{e}");
    }

    #[test]
    fn relative_file_urls_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[horde]\napi_url = \"file://data/horde\"\n[model_reference]\nurl = \"file:///abs/mr\"\n",
        );
        let s = load_with_env(Some(&p), env(&[])).unwrap().settings;
        assert_eq!(s.horde.api_url, format!("file://{}/data/horde", dir.path().display()));
        assert_eq!(s.model_reference.url, "file:///abs/mr");
    }

    #[test]
    fn standard_file_urls_localhost_and_percent_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("my data ü");
        std::fs::create_dir(&data).unwrap();
        let shown = data.display().to_string();
        // What Python's Path.as_uri() writes for it.
        let encoded = shown.replace(' ', "%20").replace('ü', "%C3%BC");
        let base = Path::new("/unused");
        assert_eq!(resolve_file_url(&format!("file://{encoded}"), base), format!("file://{shown}"));
        assert_eq!(resolve_file_url(&format!("file://localhost{shown}"), base), format!("file://{shown}"));
        assert_eq!(resolve_file_url(&format!("file://{shown}"), base), format!("file://{shown}"));
        // A path that exists as written wins; a missing one stays as written.
        let literal = dir.path().join("a%20b");
        std::fs::create_dir(&literal).unwrap();
        let literal = literal.display().to_string();
        assert_eq!(resolve_file_url(&format!("file://{literal}"), base), format!("file://{literal}"));
        assert_eq!(resolve_file_url("file:///nowhere%20x", base), "file:///nowhere%20x");
        assert_eq!(resolve_file_url("https://aihorde.net/api", base), "https://aihorde.net/api");
        assert_eq!(percent_decoded("a%2"), None);
        assert_eq!(percent_decoded("a%zz"), None);
        assert_eq!(percent_decoded("%C3%BC%20"), Some("ü ".to_string()));
    }
}
