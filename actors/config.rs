//! Loading the settings: built-in defaults < the TOML file < the environment.
//!
//! The file is `--config FILE` (default `./config.toml`; a missing default
//! file means "defaults only", a missing explicit file is an error). Every
//! key can be overridden by `HORDE_HYDRATOR__<SECTION>__<KEY>` (list values
//! comma-separated). This file only reads the file and the environment;
//! the core ([`Settings::from_sources`]) layers, checks and types them, so a
//! bad value stops start-up naming its key and where it came from.
//!
//! `file://` source URLs with a relative path (`file://data/horde`) are
//! resolved against the directory of the config file that was loaded (the
//! current directory when no file was loaded), so `examples/offline.toml`
//! works from any working directory.

use horde_hydrator::settings::{Settings, Source, ENV_PREFIX};
use std::path::{Path, PathBuf};

/// The default config file, used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// The settings could not be loaded; the message names the file, the
/// position or the environment variable, and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] horde_hydrator::settings::SettingsError),
}

/// Load from `explicit` (`--config`) or `./config.toml`, then the process
/// environment. A plain function: a reload calls it again.
pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    load_with_env(explicit, &env)
}

/// [`load`] with the environment given (tests pass their own).
pub fn load_with_env(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let file = match explicit {
        Some(p) if !p.is_file() => return Err(ConfigError::Missing(p.to_path_buf())),
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
    };
    let text = match &file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?,
        ),
        None => None,
    };
    let base = match file.as_ref().and_then(|p| p.parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = std::path::absolute(&base).unwrap_or(base);
    let input = file.as_deref().zip(text.as_deref());
    let mut settings = Settings::from_sources(input, env, &base)?;
    for source in [&mut settings.horde.api, &mut settings.model_reference.source] {
        if let Source::Dir(dir) = source {
            *dir = decode_if_only_that_exists(dir);
        }
    }
    Ok(settings)
}

/// A percent-encoded directory path (what Python's `Path.as_uri()` writes for
/// spaces and non-ASCII) decoded, when the path as written does not exist but
/// the decoded one does.
fn decode_if_only_that_exists(dir: &Path) -> PathBuf {
    match dir.to_str().and_then(percent_decoded) {
        Some(decoded) if !dir.exists() && Path::new(&decoded).exists() => PathBuf::from(decoded),
        _ => dir.to_path_buf(),
    }
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
    use horde_hydrator::category::Category;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
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
        let s = load_with_env(
            Some(&p),
            &env(&[
                ("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS", "90"),
                ("HORDE_HYDRATOR__HYDRATION__CATEGORIES", "text_generation"),
                ("HORDE_HYDRATOR__ADMIN__TOKEN", "12345"),
            ]),
        )
        .unwrap();
        assert_eq!(s.hydration.interval, Duration::from_secs(90), "environment beats file");
        assert_eq!(s.hydration.startup_delay, Duration::from_secs(1), "file beats default");
        assert_eq!(s.hydration.stale_ttl, Duration::from_secs(3600), "default");
        assert_eq!(s.redis.key_prefix, "t");
        assert_eq!(s.hydration.categories, vec![Category::TextGeneration]);
        assert_eq!(s.admin.required_token(), Some("12345"));
        assert_eq!(s.provenance.file.as_deref(), Some(p.as_path()));
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = load_with_env(Some(Path::new("/nonexistent/x.toml")), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().join("c.toml").display().to_string();
        let cases = [
            ("[hydration]\ninterval_seconds = 0\n", "`hydration.interval_seconds` (FILE line 2, column 20)"),
            (
                "[hydration]\ninterval_seconds = -5\n",
                "(FILE line 2, column 20): must be a whole number of seconds ≥ 1 (got -5)",
            ),
            ("[hydration]\ncategories = [\"clip\"]\n", "hydration.categories"),
            ("[horde]\napi_url = \"gopher://x\"\n", "horde.api_url"),
            ("[horde\napi_url = 1\n", "FILE line 1"),
            ("[horde]\nno_such_key = 1\n", "no_such_key"),
        ];
        for (toml, want) in cases {
            let p = write(dir.path(), toml);
            let e = load_with_env(Some(&p), &env(&[])).unwrap_err();
            assert!(e.to_string().contains(&want.replace("FILE", &shown)), "{toml:?}: {e}");
        }

        let e = load_with_env(None, &env(&[("HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS", "zero")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("(environment variable HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS)"),
            "{e}"
        );
    }

    #[test]
    fn relative_file_urls_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[horde]\napi_url = \"file://data/horde\"\n[model_reference]\nurl = \"file:///abs/mr\"\n",
        );
        let s = load_with_env(Some(&p), &env(&[])).unwrap();
        assert_eq!(s.horde.api, Source::Dir(dir.path().join("data/horde")));
        assert_eq!(s.model_reference.source, Source::Dir(PathBuf::from("/abs/mr")));
    }

    #[test]
    fn standard_file_urls_localhost_and_percent_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("my data ü");
        std::fs::create_dir(&data).unwrap();
        let shown = data.display().to_string();
        // What Python's Path.as_uri() writes for it.
        let encoded = shown.replace(' ', "%20").replace('ü', "%C3%BC");
        let source = |url: &str| {
            let p = write(dir.path(), &format!("[horde]\napi_url = \"{url}\"\n"));
            load_with_env(Some(&p), &env(&[])).unwrap().horde.api
        };
        assert_eq!(source(&format!("file://{encoded}")), Source::Dir(data.clone()));
        assert_eq!(source(&format!("file://localhost{shown}")), Source::Dir(data.clone()));
        assert_eq!(source(&format!("file://{shown}")), Source::Dir(data.clone()));
        // A path that exists as written wins; a missing one stays as written.
        let literal = dir.path().join("a%20b");
        std::fs::create_dir(&literal).unwrap();
        assert_eq!(source(&format!("file://{}", literal.display())), Source::Dir(literal.clone()));
        assert_eq!(source("file:///nowhere%20x"), Source::Dir(PathBuf::from("/nowhere%20x")));
        assert_eq!(percent_decoded("a%2"), None);
        assert_eq!(percent_decoded("a%zz"), None);
        assert_eq!(percent_decoded("%C3%BC%20"), Some("ü ".to_string()));
    }
}
