//! Readers are always served (issue 10): stale-if-error in Redis while the
//! Horde fails, statistics refreshed from the model reference alone, and
//! invalidations that end with every entry present and current although the
//! reference's own processes DEL the category's keys late.
//!
//! Real parts: `redis-server`, the in-process Horde (tests/common/horde_server.rs)
//! serving a copy of `examples/data` (in the repository, so these tests never
//! skip), the daemon binary.

mod common;

use common::daemon::{
    category_entries, model_names, snapshot, wait_for_entries, wait_subscribed, wait_until, Daemon, Setup,
    ENTRY_NAMES,
};
use common::horde_server::{copy_dataset, read_json, write_json, HordeServer, Mode, Route};
use common::redis_server::{RedisClient, RedisServer};
use serde_json::{json, Value};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

const HORDE_ROUTES: [Route; 4] = [Route::StatusImage, Route::StatusText, Route::StatsImage, Route::StatsText];

struct Fixture {
    data: tempfile::TempDir,
    horde: HordeServer,
    redis: RedisServer,
    daemon: Daemon,
}

/// The example dataset copied and served; a daemon with TTLs of `ttl`
/// seconds, a cycle every `interval` seconds and the given stale TTL, which
/// has written its nine entries and listens on its channels.
fn start(ttl: u64, interval: u64, stale_ttl: u64) -> Fixture {
    let data = copy_dataset(&common::example_data());
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup
        .interval(interval)
        .prefix("readers:model_ref")
        .set("cache", "deletion_risk_ttl_seconds", &ttl.to_string())
        .set("cache", "statistics_ttl_seconds", &ttl.to_string())
        .set("hydration", "stale_ttl_seconds", &stale_ttl.to_string())
        // The daemon's own key: its default (60 s) would slow the recovery.
        .set("horde", "circuit_open_seconds", "2")
        // Failing cycles end quickly (retries 50-400 ms apart instead of
        // 0.5-4 s): with the default, a failing cycle under load outlasts the
        // 3 s TTL and the statistics' own refresh, which these tests time.
        .set("horde", "retry_base_delay_ms", "50");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));
    Fixture { data, horde, redis, daemon }
}

fn horde_fails(horde: &HordeServer) -> Instant {
    for r in HORDE_ROUTES {
        horde.set_route_mode(r, Mode::Status(500));
    }
    Instant::now()
}

fn risk_names() -> Vec<&'static str> {
    ENTRY_NAMES.iter().copied().filter(|n| n.starts_with("deletion_risk:")).collect()
}

/// Polls `probe` every 50 ms until it holds or `timeout` passes.
fn wait_for(timeout: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn missing(client: &mut RedisClient, prefix: &str, names: &[&str]) -> Vec<String> {
    snapshot(client, prefix, names).into_iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect()
}

fn computed_at(client: &mut RedisClient, daemon: &Daemon, name: &str) -> Option<i64> {
    client.get_json(&daemon.key(name))?["computed_at"].as_i64()
}

/// Adds a model to the dataset's reference of `category` (a copy of its
/// first record, renamed) — the model reference's own write.
fn add_model(dataset: &Path, category: &str, name: &str) {
    let path = dataset.join(format!("model_reference/{category}.json"));
    let mut reference = read_json(&path);
    let map = reference.as_object_mut().unwrap();
    let mut record = map.values().next().unwrap().clone();
    record["name"] = json!(name);
    map.insert(name.to_string(), record);
    write_json(&path, &reference);
}

/// Every entry of `category` is in Redis and names `model` (deletion risk:
/// in its models; statistics: counted, and computed after `since_unix`).
fn category_has_model(
    client: &mut RedisClient,
    daemon: &Daemon,
    category: &str,
    model: &str,
    models: usize,
    since_unix: i64,
) -> Result<(), String> {
    for name in category_entries(category) {
        let entry = client.get_json(&daemon.key(name)).ok_or_else(|| format!("{name} missing"))?;
        if name.starts_with("deletion_risk:") {
            // The grouped view names the group: no organisation, no size.
            let group = model.rsplit('/').next().unwrap_or(model).trim_end_matches("-7B");
            let listed = model_names(&entry).iter().any(|n| n == model)
                || (name.contains("grouped=true") && entry.to_string().contains(group));
            if !listed {
                return Err(format!("{name} lacks {model}"));
            }
        } else {
            let at = entry["computed_at"].as_i64().unwrap_or(0);
            if at < since_unix {
                return Err(format!("{name} computed at {at}, before the write ({since_unix})"));
            }
            if name.ends_with("grouped=false") && entry["total_models"].as_u64() != Some(models as u64) {
                return Err(format!("{name} counts {} models, not {models}", entry["total_models"]));
            }
        }
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn reference_len(dataset: &Path, category: &str) -> usize {
    read_json(&dataset.join(format!("model_reference/{category}.json"))).as_object().unwrap().len()
}

#[test]
fn horde_outage_keeps_all_nine_entries_readable_and_statistics_fresh() {
    // TTL 3 s, a cycle every second, the default stale TTL (an hour).
    let f = start(3, 1, 3600);
    let mut client = f.redis.client();
    let risk_before = snapshot(&mut client, &f.daemon.prefix, &risk_names());

    let failing = horde_fails(&f.horde);
    // New usage upstream, seen only once the Horde answers again.
    let stats_path = f.data.path().join("horde/stats_text_models.json");
    let mut stats = read_json(&stats_path);
    for v in stats["month"].as_object_mut().unwrap().values_mut() {
        *v = json!(v.as_i64().unwrap_or(0) + 1000);
    }
    write_json(&stats_path, &stats);
    // Readers never miss: every entry is there at every look, for 10 s.
    let mut looks = 0;
    while failing.elapsed() < Duration::from_secs(10) {
        let gone = missing(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
        assert!(gone.is_empty(), "{:?} after the Horde failed: missing {gone:?}", failing.elapsed());
        looks += 1;
        thread::sleep(Duration::from_millis(100));
    }
    assert!(looks > 20, "only {looks} looks in 10 s");
    // The deletion-risk entries are the last good ones, byte for byte...
    let risk_after = snapshot(&mut client, &f.daemon.prefix, &risk_names());
    assert!(risk_after == risk_before, "a deletion-risk entry changed while the Horde failed");
    // ...the statistics still refresh from the model reference.
    let at = computed_at(&mut client, &f.daemon, "stats:text_generation:grouped=false").unwrap();
    assert!(at >= unix_now() - 4, "statistics not refreshed during the outage (computed_at {at})");
    // Their TTL is re-armed within one normal TTL (a stopped daemon's entries
    // expire within it).
    for name in ENTRY_NAMES {
        let ttl = client.ttl(&f.daemon.key(name));
        assert!((1..=3).contains(&ttl), "{name}: TTL {ttl}");
    }
    // `status` says since when and why the deletion risk is stale.
    let status = f.daemon.admin(&f.redis, json!({"command": "status"}), Duration::from_secs(10)).unwrap();
    let entries = status["entries"].as_array().unwrap();
    let risk = entries
        .iter()
        .find(|e| e["key"] == json!(f.daemon.key("deletion_risk:text_generation:grouped=false")))
        .unwrap();
    assert!(risk["stale_since"].as_f64().is_some(), "{risk}");
    assert!(risk["stale_reason"].as_str().unwrap_or("").contains("horde/"), "{risk}");
    assert!(risk["age_seconds"].as_f64().unwrap() > 8.0, "{risk}");
    let stats = entries
        .iter()
        .find(|e| e["key"] == json!(f.daemon.key("stats:text_generation:grouped=false")))
        .unwrap();
    assert_eq!(stats["stale_since"], Value::Null, "{stats}");

    // The Horde back: the deletion risk is computed again.
    f.horde.reset_modes();
    let key = f.daemon.key("deletion_risk:text_generation:grouped=false");
    let old = risk_before[&"deletion_risk:text_generation:grouped=false".to_string()].clone();
    wait_until(Duration::from_secs(60), "the deletion risk rewritten after the outage", || {
        let now = client.get(&key)?;
        (Some(now) != old).then_some(())
    });
}

#[test]
fn past_the_stale_ttl_deletion_risk_expires_while_statistics_keep_refreshing() {
    let f = start(3, 1, 12);
    let mut client = f.redis.client();
    let failing = horde_fails(&f.horde);

    thread::sleep(Duration::from_secs(6));
    assert_eq!(missing(&mut client, &f.daemon.prefix, &ENTRY_NAMES), Vec::<String>::new(), "at 6 s");
    let stats_at = computed_at(&mut client, &f.daemon, "stats:image_generation:grouped=false").unwrap();

    let until = failing + Duration::from_secs(20);
    thread::sleep(until.saturating_duration_since(Instant::now()));
    let gone = missing(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
    let mut risk: Vec<String> = risk_names().iter().map(|s| s.to_string()).collect();
    risk.sort();
    assert_eq!(gone, risk, "20 s after the Horde failed (stale TTL 12 s)");
    let later = computed_at(&mut client, &f.daemon, "stats:image_generation:grouped=false").unwrap();
    assert!(later > stats_at, "statistics computed_at did not move: {stats_at} -> {later}");
    // The end of stale-if-error is logged once per entry, as a warning.
    let log = f.daemon.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("older than hydration.stale_ttl_seconds"))
        .collect();
    assert_eq!(warned.len(), risk.len(), "{warned:#?}");
}

/// The reference's sequence after a model write: PUBLISH the category on
/// `P:invalidate`, then its processes DEL the category's keys — some late.
#[test]
fn late_dels_after_an_invalidation_are_repaired_and_the_other_category_is_untouched() {
    let f = start(300, 3600, 3600);
    let mut client = f.redis.client();
    let image_before = snapshot(&mut client, &f.daemon.prefix, &category_entries("image_generation"));
    let text_keys: Vec<String> =
        category_entries("text_generation").iter().map(|n| f.daemon.key(n)).collect();
    let url = f.redis.url();

    for (round, delay_ms) in [0u64, 300, 1500].into_iter().enumerate() {
        let model = format!("readerstest/Late-Del-Model-{round}-7B");
        let since = unix_now();
        add_model(f.data.path(), "text_generation", &model);
        let models = reference_len(f.data.path(), "text_generation");
        let published = Instant::now();
        assert_eq!(client.publish(&f.daemon.invalidate_channel(), b"text_generation"), 1);
        // A reference worker's listener, DELeting late.
        let (keys, url) = (text_keys.clone(), url.clone());
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(delay_ms));
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_connection().unwrap();
            redis::cmd("DEL").arg(&keys).query::<i64>(&mut conn).unwrap()
        });
        let deleted = worker.join().unwrap();
        eprintln!("round {round}: DEL after {delay_ms} ms removed {deleted} keys");
        let mut last = String::new();
        let present = wait_for(Duration::from_secs(10), || {
            category_has_model(&mut client, &f.daemon, "text_generation", &model, models, since)
                .map_err(|e| last = e)
                .is_ok()
        });
        assert!(present, "round {round} (DEL after {delay_ms} ms): {last}");
        // And they stay: look again past the guard's window.
        let settle = published + Duration::from_secs(7);
        thread::sleep(settle.saturating_duration_since(Instant::now()));
        if let Err(e) = category_has_model(&mut client, &f.daemon, "text_generation", &model, models, since) {
            panic!("round {round} (DEL after {delay_ms} ms), 7 s after the PUBLISH: {e}");
        }
        let image_now = snapshot(&mut client, &f.daemon.prefix, &category_entries("image_generation"));
        assert!(image_now == image_before, "round {round}: the image entries changed");
    }
}

#[test]
fn invalidate_then_clear_leaves_no_entry() {
    let f = start(300, 3600, 3600);
    let mut client = f.redis.client();
    let replies = f.redis.subscribe(&f.daemon.reply_channel());
    wait_subscribed(&f.redis, &f.daemon.admin_channel(), Duration::from_secs(10));
    let admin = f.daemon.admin_channel();
    client.publish(
        &admin,
        json!({"command": "invalidate", "category": "image_generation"}).to_string().as_bytes(),
    );
    client.publish(&admin, json!({"command": "clear"}).to_string().as_bytes());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let reply = replies.recv_json(Duration::from_secs(10)).expect("admin replies");
        assert_eq!(reply["ok"], json!(true), "{reply}");
        seen.push(reply["command"].as_str().unwrap_or("").to_string());
    }
    seen.sort();
    assert_eq!(seen, ["clear", "invalidate"]);
    // Well past the debounce and a re-hydration's time.
    thread::sleep(Duration::from_secs(3));
    // (The replicas' lease `P:hydrator:leader` is not an entry.)
    let left: Vec<String> = client
        .keys(&format!("{}:*", f.daemon.prefix))
        .into_iter()
        .filter(|k| !k.starts_with(&format!("{}:hydrator:", f.daemon.prefix)))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let status = f.daemon.admin(&f.redis, json!({"command": "status"}), Duration::from_secs(10)).unwrap();
    assert_eq!(status["entries"], json!([]), "{status}");
    assert_eq!(status["follow_up_queued"], json!(false), "{status}");
}

#[test]
fn an_invalidation_during_a_horde_outage_ends_with_entries_from_the_new_reference() {
    let f = start(300, 2, 3600);
    let mut client = f.redis.client();
    let risk_key = f.daemon.key("deletion_risk:text_generation:grouped=false");
    let usage_before = client.get_json(&risk_key).unwrap()["category_total_month_usage"].clone();
    let failing = horde_fails(&f.horde);
    wait_until(Duration::from_secs(30), "a failed Horde request", || {
        f.horde.requests().iter().any(|r| r.at > failing && r.route != Route::TextReference).then_some(())
    });

    let model = "readerstest/Outage-Model-7B";
    let since = unix_now();
    add_model(f.data.path(), "text_generation", model);
    let models = reference_len(f.data.path(), "text_generation");
    client.publish(&f.daemon.invalidate_channel(), b"text_generation");
    let keys: Vec<String> = category_entries("text_generation").iter().map(|n| f.daemon.key(n)).collect();
    thread::sleep(Duration::from_millis(300));
    redis::cmd("DEL").arg(&keys).query::<i64>(&mut redis_conn(&f.redis)).unwrap();
    let mut last = String::new();
    let present = wait_for(Duration::from_secs(30), || {
        category_has_model(&mut client, &f.daemon, "text_generation", model, models, since)
            .map_err(|e| last = e)
            .is_ok()
    });
    assert!(present, "the text entries after an invalidation during the outage: {last}");
    // Computed with the last good Horde data.
    let entry = client.get_json(&risk_key).unwrap();
    assert_eq!(entry["category_total_month_usage"], usage_before);
}

fn redis_conn(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url().as_str()).unwrap().get_connection().unwrap()
}
