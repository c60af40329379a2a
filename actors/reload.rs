//! Reloading the settings on SIGHUP (`systemctl reload`).
//!
//! [`reload`] loads the file and the environment again with the loader of
//! start-up (`config::load`, so the same validation and error messages). An
//! invalid configuration is rejected, logged as an error, and the running one
//! stays. A valid one is compared with the running settings ([`changes`]):
//! what can change live is sent to the actors, each its own part as a typed
//! `Reconfigure` message, and one line logs every changed key, which were
//! applied and which need a restart (those keep their running value until
//! then, and are reported again by every reload until the restart).
//!
//! Live: the schedule (`hydration.enabled`, `interval_seconds`), the TTLs
//! (`cache.*`, `hydration.stale_ttl_seconds`), the debounce, the deletion-risk
//! thresholds (`analysis.*`), the HTTP policy and circuit breaker limits
//! (`horde.*` but `api_url`, `model_reference.timeout_seconds`), the work
//! limits (`limits.*`), the log filter (`log.level`) and the admin token.
//! Everything else — the sources, Redis, the categories, the startup delay,
//! the HTTP server (`http.*`), the replicas' lease (`leader.*`), any key not listed in [`changes`] —
//! needs a restart.

use crate::cache::{self, CacheActor};
use crate::config;
use crate::horde_fetcher::{self, HordeFetcherActor};
use crate::hydrator::{self, HydratorActor};
use crate::invalidation::{self, InvalidationActor};
use actix::Addr;
use horde_hydrator::category::Category;
use horde_hydrator::settings::{RedisUrl, Secret, Settings, Source};
use std::path::Path;
use std::time::Duration;

/// One setting whose value differs between the running and the new settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `section.key`, as in `config.toml`.
    pub key: String,
    /// The values as a log may show them (secrets redacted).
    pub from: String,
    pub to: String,
    /// Applied at once (else it needs a restart).
    pub live: bool,
}

/// Whether a changed setting applies at once.
#[derive(Clone, Copy)]
enum Apply {
    Live,
    Restart,
}

/// A duration set in seconds, as `config.toml` writes it.
fn secs(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// A duration set in milliseconds.
fn millis(d: &Duration) -> String {
    d.as_millis().to_string()
}

/// Every setting that differs, in `config.toml` order, and `running` with the
/// live ones taken from `new` (the settings in effect after the reload).
///
/// The keys listed here are compared as typed values (so a new password in
/// `redis.url` or a new `admin.token` is noticed although both are shown
/// redacted). Any other key — one added to the settings without being listed
/// here — is compared as shown by the loader's provenance and needs a restart.
pub fn changes(running: &Settings, new: &Settings) -> (Vec<Change>, Settings) {
    use Apply::{Live, Restart};
    let mut out = Vec::new();
    let mut effective = running.clone();
    let mut listed: Vec<&'static str> = Vec::new();
    // key!("section.key" as config.toml names it, the field, Live or Restart[, how to show a value])
    macro_rules! key {
        ($name:literal, $($field:ident).+, $apply:expr) => {
            key!($name, $($field).+, $apply, |v: &_| format!("{v:?}"))
        };
        ($name:literal, $($field:ident).+, $apply:expr, $show:expr) => {{
            listed.push($name);
            let (a, b) = (&running.$($field).+, &new.$($field).+);
            if a != b {
                let show = $show;
                let live = matches!($apply, Live);
                out.push(Change { key: $name.to_string(), from: show(a), to: show(b), live });
                if live {
                    effective.$($field).+ = b.clone();
                }
            }
        }};
    }
    let shown = |v: &dyn std::fmt::Display| v.to_string();
    key!("hydration.enabled", hydration.enabled, Live);
    key!("hydration.interval_seconds", hydration.interval, Live, secs);
    key!("hydration.startup_delay_seconds", hydration.startup_delay, Restart, secs);
    key!("hydration.stale_ttl_seconds", hydration.stale_ttl, Live, secs);
    key!("hydration.categories", hydration.categories, Restart, |v: &Vec<Category>| {
        format!("{:?}", v.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    });
    key!("hydration.invalidation_debounce_ms", hydration.invalidation_debounce, Live, millis);
    key!("cache.deletion_risk_ttl_seconds", cache.deletion_risk_ttl, Live, secs);
    key!("cache.statistics_ttl_seconds", cache.statistics_ttl, Live, secs);
    key!("redis.enabled", redis.enabled, Restart);
    key!("redis.url", redis.url, Restart, |v: &RedisUrl| shown(v));
    key!("redis.key_prefix", redis.key_prefix, Restart);
    key!("redis.socket_timeout_seconds", redis.socket_timeout, Restart, secs);
    key!("redis.health_check_seconds", redis.health_check, Restart, secs);
    key!("redis.tls_ca_file", redis.tls_ca_file, Restart);
    key!("horde.api_url", horde.api, Restart, |v: &Source| shown(v));
    key!("horde.timeout_seconds", horde.timeout, Live, secs);
    key!("horde.client_agent", horde.client_agent, Live);
    key!("horde.max_retries", horde.max_retries, Live);
    key!("horde.retry_base_delay_ms", horde.retry_base_delay, Live, millis);
    key!("horde.retry_max_delay_seconds", horde.retry_max_delay, Live, secs);
    key!("horde.max_response_bytes", horde.max_response_bytes, Live);
    key!("horde.circuit_failure_threshold", horde.circuit_failure_threshold, Live);
    key!("horde.circuit_open_seconds", horde.circuit_open, Live, secs);
    key!("model_reference.url", model_reference.source, Restart, |v: &Source| shown(v));
    key!("model_reference.timeout_seconds", model_reference.timeout, Live, secs);
    key!("analysis.preferred_file_hosts", analysis.preferred_file_hosts, Live);
    key!("analysis.low_usage_threshold_percentage", analysis.low_usage_threshold_percentage, Live);
    key!(
        "analysis.text_gen_low_usage_threshold_percentage",
        analysis.text_gen_low_usage_threshold_percentage,
        Live
    );
    key!("analysis.text_gen_ignore_download_hosts", analysis.text_gen_ignore_download_hosts, Live);
    key!("analysis.text_gen_critical_usage_threshold", analysis.text_gen_critical_usage_threshold, Live);
    key!("analysis.text_gen_critical_worker_threshold", analysis.text_gen_critical_worker_threshold, Live);
    key!("limits.max_models_per_category", limits.max_models_per_category, Live);
    key!("limits.max_horde_entries", limits.max_horde_entries, Live);
    key!("log.level", log.level, Live);
    key!("admin.token", admin.token, Live, |v: &Option<Secret>| match v {
        Some(_) => "<redacted>".to_string(),
        None => "(none)".to_string(),
    });
    // The HTTP server listens where it was started.
    key!("http.enabled", http.enabled, Restart);
    key!("http.bind", http.bind, Restart, |v: &std::net::SocketAddr| v.to_string());
    // The lease's holder, length and name are fixed for the LeaderActor's life.
    key!("leader.enabled", leader.enabled, Restart);
    key!("leader.lease_seconds", leader.lease, Restart, secs);
    key!("leader.instance_id", leader.instance_id, Restart);
    // Keys not listed above: compared as the loader shows them; a restart applies them.
    let before = &running.provenance.values;
    for (key, to, _) in &new.provenance.values {
        if listed.contains(&key.as_str()) {
            continue;
        }
        let from = before.iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v.clone());
        if from.as_ref() != Some(to) {
            let from = from.unwrap_or_else(|| "(none)".to_string());
            out.push(Change { key: key.clone(), from, to: to.clone(), live: false });
        }
    }
    // What check-config (and a status of the settings in effect) shows: the
    // applied keys with their new value and origin, the others as they were.
    for change in out.iter().filter(|c| c.live) {
        let now = new.provenance.values.iter().find(|(k, _, _)| *k == change.key);
        let was = effective.provenance.values.iter_mut().find(|(k, _, _)| *k == change.key);
        if let (Some(now), Some(was)) = (now, was) {
            *was = now.clone();
        }
    }
    (out, effective)
}

/// The running actors a reload reconfigures.
pub struct Targets {
    pub hydrator: Addr<HydratorActor>,
    pub cache: Addr<CacheActor>,
    pub fetcher: Addr<HordeFetcherActor>,
    pub invalidation: Option<Addr<InvalidationActor>>,
}

impl Targets {
    /// Send every actor its part of `s`.
    fn apply(&self, s: &Settings) {
        self.hydrator.do_send(hydrator::Reconfigure {
            enabled: s.hydration.enabled,
            interval: s.hydration.interval,
            stale_ttl: s.hydration.stale_ttl,
            analysis: s.analysis.clone(),
        });
        self.cache.do_send(cache::Reconfigure {
            ttls: s.cache.clone(),
            stale_ttl: s.hydration.stale_ttl,
            hydration_enabled: s.hydration.enabled,
            interval: s.hydration.interval,
        });
        self.fetcher.do_send(horde_fetcher::Reconfigure {
            horde: s.horde.clone(),
            reference_timeout: s.model_reference.timeout,
            limits: s.limits.clone(),
        });
        if let Some(invalidation) = &self.invalidation {
            invalidation.do_send(invalidation::Reconfigure {
                token: s.admin.token.clone(),
                debounce: s.hydration.invalidation_debounce,
            });
        }
    }
}

/// Reload from `file` (the `--config` of start-up) and the environment; apply
/// what can change live; return the settings now in effect (`running` when
/// the new configuration is invalid).
pub fn reload(file: Option<&Path>, running: &Settings, targets: &Targets) -> Settings {
    crate::sd_notify::reloading();
    let effective = match config::load(file) {
        Err(e) => {
            log::error!("reload rejected, the running settings stay in effect: {e}");
            running.clone()
        }
        Ok(mut new) => {
            // As at start-up (`main.rs`): an unset instance id is `<hostname>:<pid>`.
            if new.leader.instance_id.is_empty() {
                new.leader.instance_id = crate::default_instance_id();
            }
            let (changed, effective) = changes(running, &new);
            if changed.is_empty() {
                log::info!("reload: the settings are unchanged");
            } else {
                targets.apply(&effective);
                // Logged under the filter of before, then the new filter.
                log::info!("reload: {}", describe(&changed));
                if changed.iter().any(|c| c.key == "log.level") {
                    if crate::log_filter::overridden_by_env() {
                        log::warn!("reload: RUST_LOG is set and wins over log.level: the log filter stays");
                    }
                    crate::log_filter::set(&effective.log.level);
                }
            }
            effective
        }
    };
    crate::sd_notify::reloaded();
    effective
}

/// `applied: a.b 1 → 2, …; needs a restart (not applied): c.d "x" → "y"`.
fn describe(changed: &[Change]) -> String {
    let list = |live: bool| {
        changed
            .iter()
            .filter(|c| c.live == live)
            .map(|c| format!("{} {} → {}", c.key, c.from, c.to))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (applied, restart) = (list(true), list(false));
    match (applied.is_empty(), restart.is_empty()) {
        (false, true) => format!("applied {applied}"),
        (true, false) => format!("nothing applied; needs a restart (not applied): {restart}"),
        _ => format!("applied {applied}; needs a restart (not applied): {restart}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_changes_apply_and_restart_changes_are_reported_but_kept() {
        let running = Settings::default();
        let mut new = running.clone();
        new.hydration.interval = Duration::from_secs(60);
        new.redis.key_prefix = "other".to_string();
        new.redis.url = RedisUrl::new("redis://u:hunter2@example.com:6379/0");
        new.admin.token = Some(Secret::new("s3cret"));
        let (changed, effective) = changes(&running, &new);
        let keys: Vec<(&str, bool)> = changed.iter().map(|c| (c.key.as_str(), c.live)).collect();
        assert_eq!(
            keys,
            [
                ("hydration.interval_seconds", true),
                ("redis.url", false),
                ("redis.key_prefix", false),
                ("admin.token", true)
            ]
        );
        assert_eq!(effective.hydration.interval, Duration::from_secs(60));
        assert_eq!(effective.admin.required_token(), Some("s3cret"));
        assert_eq!(effective.redis.key_prefix, "horde:model_ref", "needs a restart: kept");
        assert_eq!(effective.redis.url, running.redis.url);
        let line = describe(&changed);
        assert!(line.contains("applied hydration.interval_seconds 240 → 60"), "{line}");
        assert!(line.contains("needs a restart (not applied): redis.url"), "{line}");
        assert!(!line.contains("hunter2") && !line.contains("s3cret"), "{line}");

        // The next reload, with the same file, still reports the restart keys.
        let (again, _) = changes(&effective, &new);
        assert!(again.iter().all(|c| !c.live), "{again:?}");
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn a_key_this_file_does_not_list_is_found_by_provenance_and_needs_a_restart() {
        use horde_hydrator::settings::Origin;
        let mut running = Settings::default();
        let mut new = running.clone();
        running.provenance.values.push(("zeta.bind".into(), "\"127.0.0.1:1\"".into(), Origin::Default));
        new.provenance.values.push(("zeta.bind".into(), "\"0.0.0.0:1\"".into(), Origin::Env("X".into())));
        new.provenance.values.push(("zeta.new_key".into(), "3".into(), Origin::Default));
        let (changed, _) = changes(&running, &new);
        let shown: Vec<String> =
            changed.iter().map(|c| format!("{} {} → {} {}", c.key, c.from, c.to, c.live)).collect();
        assert_eq!(
            shown,
            ["zeta.bind \"127.0.0.1:1\" → \"0.0.0.0:1\" false", "zeta.new_key (none) → 3 false"]
        );
    }

    #[test]
    fn the_provenance_in_effect_has_the_applied_keys_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let load = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            config::load_with_env(Some(&file), &[]).unwrap()
        };
        let running = load("[hydration]\ninterval_seconds = 60\n[redis]\nkey_prefix = \"a\"\n");
        let new = load("[hydration]\ninterval_seconds = 90\n[redis]\nkey_prefix = \"b\"\n");
        let (_, effective) = changes(&running, &new);
        let shown = |s: &Settings, key: &str| {
            s.provenance.values.iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v.clone()).unwrap()
        };
        assert_eq!(shown(&effective, "hydration.interval_seconds"), "90");
        assert_eq!(shown(&effective, "redis.key_prefix"), "\"a\"", "needs a restart: as it was");
        // The next reload from the same file reports only the key still waiting for a restart.
        let (again, _) = changes(&effective, &new);
        let keys: Vec<&str> = again.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["redis.key_prefix"]);
    }

    #[test]
    fn no_change_is_no_change() {
        let s = Settings::default();
        let (changed, effective) = changes(&s, &s.clone());
        assert!(changed.is_empty());
        assert_eq!(effective, s);
    }
}
