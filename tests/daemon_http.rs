//! The operations HTTP server of `run` (README "Operations"): `/healthz`,
//! JSON 404/405 bodies, `http.enabled = false`, and the stop on SIGTERM.

mod common;

use common::daemon::{wait_until, Daemon, Setup};
use common::http::try_request;
use std::time::Duration;

/// A daemon whose sources never answer (port 9 refuses): the HTTP server must
/// not depend on a cycle.
fn offline_daemon() -> Daemon {
    Daemon::start(&Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None))
}

#[test]
fn healthz_answers_while_the_daemon_runs() {
    let mut daemon = offline_daemon();
    let reply = daemon.http_get("/healthz");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    daemon.assert_alive();
}

#[test]
fn unknown_paths_and_methods_get_short_json_errors() {
    let daemon = offline_daemon();
    let addr = daemon.http_addr();

    let reply = daemon.http_get("/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not found");
    assert_eq!(reply.json()["status"], 404);

    let reply = try_request(&addr, "POST", "/healthz").unwrap();
    assert_eq!(reply.status, 405, "{}", reply.text());
    assert_eq!(reply.json()["error"], "method not allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));

    let reply = try_request(&addr, "HEAD", "/healthz").unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty(), "HEAD answered a body");
}

#[test]
fn sigterm_stops_the_http_server_with_the_daemon() {
    let mut daemon = offline_daemon();
    let addr = daemon.http_addr();
    assert_eq!(daemon.http_get("/healthz").status, 200);
    daemon.sigterm();
    let status =
        daemon.wait_exit(Duration::from_secs(6)).expect("the daemon did not exit within 6 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(try_request(&addr, "GET", "/healthz").is_err(), "the HTTP server still answers after the exit");
}

#[test]
fn http_enabled_false_starts_no_server() {
    let mut setup = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None);
    setup.set("http", "enabled", "false");
    let mut daemon = Daemon::start(&setup);
    wait_until(Duration::from_secs(10), "the daemon's start-up line", || {
        daemon.log().contains("starting:").then_some(())
    });
    // The signal loop starts after the HTTP server would have: once it has
    // answered a signal, start-up is over (no fixed sleep).
    daemon.signal("USR1");
    wait_until(Duration::from_secs(10), "the daemon's signal loop to log SIGUSR1", || {
        daemon.log().contains("received SIGUSR1: ignored").then_some(())
    });
    daemon.assert_alive();
    assert!(!daemon.log().contains("http: listening"), "{}", daemon.log());
}

#[test]
fn an_address_in_use_stops_start_up_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut setup = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None);
    setup.set_str("http", "bind", &format!("127.0.0.1:{port}"));
    let mut daemon = Daemon::start(&setup);
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("the daemon kept running on a taken port");
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    assert!(daemon.log().contains("http.bind"), "{}", daemon.log());
}

// ---- with a real Horde and Redis ----

use common::daemon::{wait_for_entries, ENTRY_NAMES};
use common::horde_server::HordeServer;
use common::redis_server::RedisServer;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `/readyz` as (status code, body).
fn readyz(daemon: &Daemon) -> (u16, Value) {
    let reply = daemon.http_get("/readyz");
    (reply.status, reply.json())
}

#[test]
fn readyz_follows_the_entries_from_start_to_expiry() {
    let Some(corpus) = common::conformance_dir() else { return };
    let horde = HordeServer::start(corpus.join("seed1"));
    let mut redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    // The first cycle 2 s after start; entries fresh for 2 s, served stale up
    // to 5 s; no second cycle.
    setup.set("hydration", "startup_delay_seconds", "2");
    setup.set("cache", "deletion_risk_ttl_seconds", "2");
    setup.set("cache", "statistics_ttl_seconds", "2");
    setup.set("hydration", "stale_ttl_seconds", "5");
    let mut daemon = Daemon::start(&setup);

    let (code, body) = readyz(&daemon);
    assert_eq!(code, 503, "ready before the first cycle: {body}");
    assert_eq!(body["ready"], json!(false));
    assert!(body["reason"].as_str().unwrap_or("").contains("no hydration cycle"), "{body}");

    let body = wait_until(Duration::from_secs(30), "/readyz 200 after the first cycle", || {
        let (code, body) = readyz(&daemon);
        (code == 200).then_some(body)
    });
    assert_eq!(body["ready"], json!(true), "{body}");
    assert_eq!(body["missing"], json!([]), "{body}");
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(5));

    // Redis goes away; the entries pass their TTL (still served: stale-if-error), then the stale TTL.
    redis.stop();
    let body = wait_until(Duration::from_secs(10), "/readyz 200 with stale entries", || {
        let (code, body) = readyz(&daemon);
        assert_eq!(code, 200, "not ready while the entries are within the stale TTL: {body}");
        (body["stale"].as_array().map_or(0, Vec::len) == ENTRY_NAMES.len()).then_some(body)
    });
    assert_eq!(body["missing"], json!([]), "{body}");
    // (The two categories were stored a few milliseconds apart: wait for both.)
    let body = wait_until(Duration::from_secs(15), "/readyz 503 with every entry past the stale TTL", || {
        let (code, body) = readyz(&daemon);
        (code == 503 && body["missing"].as_array().map_or(0, Vec::len) == ENTRY_NAMES.len()).then_some(body)
    });
    assert_eq!(body["stale"], json!([]), "{body}");
    assert_eq!(body["ready"], json!(false));
    let mut missing: Vec<String> =
        body["missing"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    missing.sort();
    let mut all: Vec<String> = ENTRY_NAMES.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(missing, all, "{body}");
    assert!(body["reason"].as_str().unwrap_or("").contains("9 of 9"), "{body}");
    assert_eq!(body["redis"], json!("down"), "{body}");
    daemon.assert_alive();
}

#[test]
fn status_over_http_is_the_admin_status() {
    let Some(corpus) = common::conformance_dir() else { return };
    let horde = HordeServer::start(corpus.join("seed1"));
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));

    let http = daemon.http_get("/status");
    assert_eq!(http.status, 200, "{}", http.text());
    let http = http.json();
    let admin =
        daemon.admin(&redis, json!({"command": "status"}), Duration::from_secs(5)).expect("no admin reply");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&http), keys(&admin), "different fields:\nhttp: {http}\nadmin: {admin}");
    assert_eq!(http["ok"], json!(true));
    assert_eq!(http["command"], json!("status"));
    for field in ["version", "hydration", "last_cycle", "horde_circuit", "model_reference_circuit"] {
        assert_eq!(http[field], admin[field], "{field} differs");
    }
    let entry_keys = |v: &Value| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(entry_keys(&http).len(), 9, "{http}");
    assert_eq!(entry_keys(&http), entry_keys(&admin));
    // The settings in effect, with where each came from; the same for both.
    assert_eq!(http["settings"], admin["settings"]);
    let setting = |key: &str| {
        http["settings"].as_array().unwrap().iter().find(|s| s["key"] == key).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(setting("hydration.interval_seconds")["value"], json!("3600"), "{http}");
    assert!(setting("hydration.interval_seconds")["source"].as_str().unwrap().contains("line "), "{http}");
    assert_eq!(setting("analysis.text_gen_critical_usage_threshold")["source"], json!("default"), "{http}");
    assert_eq!(http["redis"]["state"], json!("up"));
    assert_eq!(admin["redis"]["subscribed"], json!(true));
    assert_eq!(http["redis"]["subscribed"], json!(true), "{http}");
    assert_eq!(http["counters"]["cycles"], json!(1), "{http}");
    assert_eq!(http["counters"]["entries_written"], json!(9), "{http}");
}

/// Every sample of a scrape, parsed by a strict OpenMetrics parser, as
/// `name{label="v",…}` (labels sorted; counters with `_total`, histograms
/// as their `_count`) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    use openmetrics_parser::OpenMetricsValue;
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|e| panic!("/metrics does not parse as OpenMetrics: {e:?}\n{text}"));
    let mut out = HashMap::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labelset = sample.get_labelset().unwrap();
            let mut labels: Vec<String> = labelset.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            labels.sort();
            let (suffix, value) = match &sample.value {
                OpenMetricsValue::Counter(c) => ("_total", c.value.as_f64()),
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => ("", n.as_f64()),
                OpenMetricsValue::Histogram(h) => ("_count", h.count.unwrap_or(0) as f64),
                _ => continue,
            };
            out.insert(format!("{name}{suffix}{{{}}}", labels.join(",")), value);
        }
    }
    out
}

#[test]
fn metrics_parse_and_match_the_status() {
    let Some(corpus) = common::conformance_dir() else { return };
    let horde = HordeServer::start(corpus.join("seed1"));
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.admin_token("tok-metrics");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));

    // One rejected and one accepted admin command, one invalidation message of garbage.
    let rejected =
        daemon.admin(&redis, json!({"command": "status", "token": "wrong"}), Duration::from_secs(5));
    assert_eq!(rejected.expect("no reply to a rejected command")["ok"], json!(false));
    let ok =
        daemon.admin(&redis, json!({"command": "status", "token": "tok-metrics"}), Duration::from_secs(5));
    assert_eq!(ok.expect("no status reply")["ok"], json!(true));
    redis.client().publish(&daemon.invalidate_channel(), b"not-a-category");

    let status = wait_until(Duration::from_secs(5), "the ignored message to be counted", || {
        let status = daemon.http_get("/status").json();
        (status["counters"]["messages_ignored"] == json!(1)).then_some(status)
    });
    let reply = daemon.http_get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("content-type").unwrap_or("").starts_with("application/openmetrics-text"));
    let text = reply.text();
    let m = samples(&text);
    let get = |key: &str| *m.get(key).unwrap_or_else(|| panic!("/metrics has no {key}:\n{text}"));

    assert_eq!(get(&format!("horde_hydrator_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1.0);
    // Cycles and entries, as /status counts them.
    let counters = &status["counters"];
    let cycles = ["ok", "partial", "failed"]
        .iter()
        .map(|o| get(&format!("horde_hydrator_cycles_total{{outcome=\"{o}\"}}")))
        .sum::<f64>();
    assert_eq!(cycles, counters["cycles"].as_f64().unwrap());
    assert_eq!(get("horde_hydrator_cycles_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(get("horde_hydrator_cycle_duration_seconds_count{}"), 1.0);
    assert_eq!(get("horde_hydrator_entries_written_total{}"), counters["entries_written"].as_f64().unwrap());
    for category in ["image_generation", "text_generation"] {
        for stage in ["fetch", "compute", "store"] {
            let key = format!(
                "horde_hydrator_stage_duration_seconds_count{{category=\"{category}\",stage=\"{stage}\"}}"
            );
            assert_eq!(get(&key), 1.0, "{key}");
        }
    }
    // Per entry: size, models, age and freshness as /status lists them.
    for entry in status["entries"].as_array().unwrap() {
        let name =
            entry["key"].as_str().unwrap().strip_prefix(&format!("{}:", daemon.prefix)).unwrap().to_string();
        let l = format!("{{entry=\"{name}\"}}");
        assert_eq!(
            get(&format!("horde_hydrator_entry_size_bytes{l}")),
            entry["bytes"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            get(&format!("horde_hydrator_entry_models{l}")),
            entry["models"].as_f64().unwrap(),
            "{name}"
        );
        let age = get(&format!("horde_hydrator_entry_age_seconds{l}"));
        assert!(age >= entry["age_seconds"].as_f64().unwrap() && age < 60.0, "{name}: age {age}");
        assert_eq!(entry["freshness"], json!("fresh"));
        let state =
            |s: &str| get(&format!("horde_hydrator_entry_freshness{{entry=\"{name}\",state=\"{s}\"}}"));
        assert_eq!((state("fresh"), state("stale-if-error"), state("missing")), (1.0, 0.0, 0.0), "{name}");
    }
    assert_eq!(status["entries"].as_array().unwrap().len(), 9);
    // Sources, circuits, Redis.
    for source in ["horde/status_models_image", "horde/stats_text_models", "model_reference/text_generation"]
    {
        let last =
            get(&format!("horde_hydrator_source_last_success_timestamp_seconds{{source=\"{source}\"}}"));
        assert!(last > 1.7e9, "{source}: {last}");
        let failures = get(&format!(
            "horde_hydrator_source_fetch_failures_total{{kind=\"status\",source=\"{source}\"}}"
        ));
        assert_eq!(failures, 0.0);
    }
    assert_eq!(status["horde_circuit"], json!("closed"));
    assert_eq!(get("horde_hydrator_source_circuit_state{service=\"horde\",state=\"closed\"}"), 1.0);
    assert_eq!(get("horde_hydrator_source_circuit_state{service=\"horde\",state=\"open\"}"), 0.0);
    assert_eq!(status["redis"]["connected"], json!(true));
    assert_eq!(get("horde_hydrator_redis_up{}"), 1.0);
    assert_eq!(status["replica"]["role"], json!("leader"), "{status}");
    assert_eq!(get("horde_hydrator_replica_role{role=\"leader\"}"), 1.0);
    assert_eq!(get("horde_hydrator_replica_role{role=\"follower\"}"), 0.0);
    assert_eq!(get("horde_hydrator_redis_outages_total{}"), counters["redis_outages"].as_f64().unwrap());
    assert!(m.contains_key("horde_hydrator_redis_reconnects_total{}"), "{text}");
    assert_eq!(
        get("horde_hydrator_redis_connection_failures_total{}"),
        counters["redis_errors"].as_f64().unwrap()
    );
    let replies: f64 =
        ["oom", "noperm", "readonly", "misconf", "too_large", "wrongtype", "loading", "auth", "other"]
            .iter()
            .map(|k| get(&format!("horde_hydrator_redis_error_replies_total{{kind=\"{k}\"}}")))
            .sum();
    assert_eq!(replies, counters["redis_refusals"].as_f64().unwrap());
    assert_eq!(
        get("horde_hydrator_pubsub_resubscribes_total{}"),
        counters["pubsub_resubscribes"].as_f64().unwrap()
    );
    assert_eq!(get("horde_hydrator_redis_write_duration_seconds_count{}"), 2.0, "one store per category");
    // Pub/sub and admin.
    assert_eq!(get("horde_hydrator_pubsub_messages_total{channel=\"invalidate\",outcome=\"ignored\"}"), 1.0);
    assert_eq!(get("horde_hydrator_pubsub_messages_total{channel=\"admin\",outcome=\"handled\"}"), 2.0);
    assert_eq!(get("horde_hydrator_admin_commands_total{command=\"status\",outcome=\"unauthorized\"}"), 1.0);
    assert_eq!(get("horde_hydrator_admin_commands_total{command=\"status\",outcome=\"ok\"}"), 1.0);
    assert_eq!(counters["admin_rejected"], json!(1));
    assert_eq!(counters["admin_commands"], json!(1));
    assert!(m.contains_key("horde_hydrator_invalidations_total{category=\"text_generation\"}"), "{text}");
    assert!(m.contains_key("horde_hydrator_invalidation_bursts_total{}"), "{text}");
}
