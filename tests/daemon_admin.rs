//! Admin commands over Redis pub/sub (SPEC §2 `P:admin`) and the `admin` CLI:
//! the status reply's content, `hydrate`, `invalidate`, `clear`, `reply_to`,
//! and the `admin.token` check (a rejected command changes nothing).

mod common;

use common::daemon::{model_names, snapshot, wait_for_entries, wait_until, Daemon, Setup, ENTRY_NAMES};
use common::horde_server::{copy_dataset, read_json, write_json, HordeServer, Route};
use common::redis_server::RedisServer;
use serde_json::{json, Value};
use std::path::Path;
use std::thread;
use std::time::Duration;

const REPLY: Duration = Duration::from_secs(5);

/// Every `(path, value)` of a JSON document, paths lower-cased like
/// `last_cycle.duration_ms` or `entries[3].age_seconds`.
fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.to_lowercase()
                    } else {
                        format!("{path}.{}", k.to_lowercase())
                    };
                    walk(v, p, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{path}[{i}]"), out);
                }
            }
            other => out.push((path, other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// Bumps every model's monthly usage in a dataset's Horde stats file by `by`.
fn bump_month_usage(dataset: &Path, file: &str, by: i64) {
    let path = dataset.join("horde").join(file);
    let mut stats = read_json(&path);
    for v in stats["month"].as_object_mut().unwrap().values_mut() {
        *v = json!(v.as_i64().unwrap_or(0) + by);
    }
    write_json(&path, &stats);
}

fn total_month_usage(redis: &RedisServer, daemon: &Daemon, category: &str) -> i64 {
    let entry =
        redis.client().get_json(&daemon.key(&format!("deletion_risk:{category}:grouped=false"))).unwrap();
    entry["category_total_month_usage"].as_i64().unwrap()
}

#[test]
fn status_reply_describes_the_daemon() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));

    let reply = daemon.admin(&redis, json!({"command": "status"}), REPLY).expect("no status reply");
    let text = reply.to_string();
    assert_eq!(reply["ok"], json!(true), "{text}");
    assert_eq!(reply["command"], json!("status"), "{text}");
    let leaves = leaves(&reply);
    let find = |what: &str, pred: &dyn Fn(&str, &Value) -> bool| {
        leaves
            .iter()
            .find(|(p, v)| pred(p, v))
            .unwrap_or_else(|| panic!("status reply has no {what}: {text}"))
            .clone()
    };
    find("version", &|p, v| p.contains("version") && v.as_str() == Some(env!("CARGO_PKG_VERSION")));
    find("uptime", &|p, v| p.contains("uptime") && v.as_f64().is_some_and(|x| x >= 0.0));
    find("last cycle", &|p, _| p.contains("last") && p.contains("cycle"));
    find("last cycle duration", &|p, v| p.contains("last") && p.contains("duration") && v.is_number());
    find("next cycle", &|p, _| p.contains("next"));
    find("Redis connection", &|p, v| {
        p.contains("redis")
            && (v == &json!(true) || v.as_str().is_some_and(|s| s.to_lowercase().contains("connected")))
    });
    find("Horde circuit state (closed after a good cycle)", &|p, v| {
        p.contains("circuit") && v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("closed"))
    });
    find("a cycle counter ≥ 1", &|p, v| p.contains("cycle") && v.as_u64().is_some_and(|n| n >= 1));
    // Every entry, with its age and freshness.
    for name in ENTRY_NAMES {
        assert!(text.contains(name), "status reply does not list {name}: {text}");
    }
    assert!(leaves.iter().filter(|(p, _)| p.contains("age")).count() >= 9, "entries without ages: {text}");
    assert!(
        leaves.iter().filter(|(p, _)| p.contains("fresh")).count() >= 9,
        "entries without freshness: {text}"
    );

    // reply_to picks the channel (under P:admin:reply: see daemon_links.rs).
    let reply = daemon
        .admin(
            &redis,
            json!({"command": "status", "reply_to": format!("{}:ops", daemon.reply_channel())}),
            REPLY,
        )
        .expect("no status reply on reply_to");
    assert_eq!(reply["ok"], json!(true));

    // The CLI publishes the command and prints the reply.
    let out = daemon.cli(&["admin", "status"], Duration::from_secs(20));
    assert!(out.status.success(), "admin status failed: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(env!("CARGO_PKG_VERSION")), "admin status printed: {}", out.stdout);
    assert!(
        out.stdout.contains("deletion_risk:text_generation:grouped=true"),
        "admin status printed: {}",
        out.stdout
    );
}

#[test]
fn hydrate_and_invalidate_commands_refresh_entries() {
    let data = copy_dataset(&common::example_data());
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    let mut client = redis.client();
    let before = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
    let text_total = total_month_usage(&redis, &daemon, "text_generation");

    // hydrate text only: new Horde usage shows up in text, image untouched.
    bump_month_usage(data.path(), "stats_text_models.json", 1000);
    bump_month_usage(data.path(), "stats_img_models.json", 1000);
    let reply = daemon
        .admin(&redis, json!({"command": "hydrate", "categories": ["text_generation"]}), REPLY)
        .expect("no hydrate reply");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    wait_until(Duration::from_secs(10), "text entries from the new usage", || {
        (total_month_usage(&redis, &daemon, "text_generation") > text_total).then_some(())
    });
    for name in ENTRY_NAMES.iter().filter(|n| n.contains("image_generation")) {
        assert_eq!(client.get(&daemon.key(name)), before[*name], "{name} re-hydrated by a text-only hydrate");
    }

    // invalidate (admin form): the image reference is re-read.
    let path = data.path().join("model_reference/image_generation.json");
    let mut reference = read_json(&path);
    let mut record = reference.as_object().unwrap().values().next().unwrap().clone();
    record["name"] = json!("Hydrator Test Image Model");
    reference.as_object_mut().unwrap().insert("Hydrator Test Image Model".into(), record);
    write_json(&path, &reference);
    let image_refs = horde.count(Route::ImageReference);
    let reply = daemon
        .admin(&redis, json!({"command": "invalidate", "category": "image_generation"}), REPLY)
        .expect("no invalidate reply");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let key = daemon.key("deletion_risk:image_generation:grouped=false");
    wait_until(Duration::from_secs(2), "the new image model", || {
        model_names(&client.get_json(&key)?).iter().any(|n| n == "Hydrator Test Image Model").then_some(())
    });
    assert!(horde.count(Route::ImageReference) > image_refs);
    let out = daemon.cli(&["admin", "invalidate", "image_generation"], Duration::from_secs(20));
    assert!(out.status.success(), "admin invalidate failed: {}\n{}", out.stdout, out.stderr);
    wait_until(Duration::from_secs(5), "image entries after the CLI invalidate", || {
        (horde.count(Route::ImageReference) > image_refs + 1).then_some(())
    });

    // The CLI form of hydrate.
    let out = daemon.cli(&["admin", "hydrate", "text_generation"], Duration::from_secs(20));
    assert!(out.status.success(), "admin hydrate failed: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("hydrate"), "admin hydrate printed: {}", out.stdout);
}

#[test]
fn with_a_token_only_authorised_commands_act() {
    const TOKEN: &str = "tok-3f9c2d1e-do-not-log";
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.admin_token(TOKEN);
    let mut daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    let mut client = redis.client();
    let before = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
    let fetches = horde.total();

    let rejected = [
        json!({"command": "clear"}),
        json!({"command": "clear", "token": "tok-wrong"}),
        json!({"command": "clear", "token": ""}),
        json!({"command": "clear", "token": null}),
        json!({"command": "clear", "token": 12345}),
        json!({"command": "clear", "token": format!("{TOKEN}x")}),
        json!({"command": "invalidate", "category": "text_generation", "token": "tok-wrong"}),
        json!({"command": "hydrate"}),
        json!({"command": "status"}),
    ];
    for command in rejected {
        if let Some(reply) = daemon.admin(&redis, command.clone(), Duration::from_millis(1500)) {
            assert_eq!(reply["ok"], json!(false), "{command} was accepted: {reply}");
            assert!(!reply.to_string().contains("uptime"), "a rejected status still told the state: {reply}");
        }
    }
    thread::sleep(Duration::from_secs(1));
    daemon.assert_alive();
    assert_eq!(
        snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES),
        before,
        "a rejected command changed entries"
    );
    assert_eq!(horde.total(), fetches, "a rejected command fetched");

    // The right token: status answers, clear empties the cache.
    let reply =
        daemon.admin(&redis, json!({"command": "status", "token": TOKEN}), REPLY).expect("no status reply");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let reply =
        daemon.admin(&redis, json!({"command": "clear", "token": TOKEN}), REPLY).expect("no clear reply");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    wait_until(Duration::from_secs(2), "the entries to be cleared", || {
        snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES).values().all(Option::is_none).then_some(())
    });

    // The CLI sends the configured token: hydrate brings the entries back, clear empties again.
    let out = daemon.cli(&["admin", "hydrate"], Duration::from_secs(20));
    assert!(out.status.success(), "admin hydrate failed: {}\n{}", out.stdout, out.stderr);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(30));
    let out = daemon.cli(&["admin", "clear"], Duration::from_secs(20));
    assert!(out.status.success(), "admin clear failed: {}\n{}", out.stdout, out.stderr);
    wait_until(Duration::from_secs(2), "the entries to be cleared by the CLI", || {
        snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES).values().all(Option::is_none).then_some(())
    });

    // Secrets never reach the log.
    assert!(!daemon.log().contains(TOKEN), "the admin token is in the log");
}

#[test]
fn hydrate_during_a_cycle_queues_exactly_one_follow_up() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.set("horde", "timeout_seconds", "30");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    let cycles_before = horde.count(Route::StatusText);

    // Make the next cycle take a while, start it, and ask for more during it.
    horde.set_route_mode(Route::StatusText, common::horde_server::Mode::Slow(Duration::from_secs(2)));
    let first = daemon.admin(&redis, json!({"command": "hydrate"}), REPLY).expect("no hydrate reply");
    assert_eq!(first["ok"], json!(true), "{first}");
    wait_until(Duration::from_secs(10), "the slow cycle to start", || {
        (horde.count(Route::StatusText) > cycles_before).then_some(())
    });
    for _ in 0..5 {
        let reply = daemon.admin(&redis, json!({"command": "hydrate"}), REPLY).expect("no hydrate reply");
        assert_eq!(reply["ok"], json!(true), "{reply}");
    }
    // The running cycle, then exactly one follow-up.
    wait_until(Duration::from_secs(15), "the follow-up cycle", || {
        (horde.count(Route::StatusText) >= cycles_before + 2).then_some(())
    });
    thread::sleep(Duration::from_secs(4));
    assert_eq!(horde.count(Route::StatusText), cycles_before + 2, "not exactly one follow-up cycle");
}

/// The freshness values of the status reply's entries.
fn freshness(daemon: &Daemon, redis: &RedisServer) -> Vec<String> {
    let reply = daemon.admin(redis, json!({"command": "status"}), REPLY).expect("no status reply");
    leaves(&reply)
        .into_iter()
        .filter(|(p, _)| p.contains("fresh"))
        .map(|(_, v)| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
        .collect()
}

#[test]
fn entries_are_fresh_then_stale_then_dropped() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.set("cache", "deletion_risk_ttl_seconds", "3");
    setup.set("cache", "statistics_ttl_seconds", "3");
    setup.set("hydration", "stale_ttl_seconds", "6");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    let now = freshness(&daemon, &redis);
    assert_eq!(now.len(), 9, "{now:?}");
    assert!(now.iter().all(|f| f == "fresh"), "{now:?}");

    // Past the TTL Redis drops them; the daemon still serves them, stale.
    let mut client = redis.client();
    wait_until(Duration::from_secs(10), "Redis to expire the entries", || {
        snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES).values().all(Option::is_none).then_some(())
    });
    wait_until(Duration::from_secs(10), "all entries stale", || {
        let now = freshness(&daemon, &redis);
        (now.len() == 9 && now.iter().all(|f| f == "stale")).then_some(())
    });
    // Past the stale TTL they are no longer served.
    wait_until(Duration::from_secs(10), "no entry served any more", || {
        freshness(&daemon, &redis).iter().all(|f| f != "fresh" && f != "stale").then_some(())
    });
}

#[test]
fn admin_cli_without_a_daemon_fails() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", Some(&redis.url()))
        .write(dir.path());
    let out = common::daemon::run_cli(&config, &[], &["admin", "status"], Duration::from_secs(30));
    assert!(!out.status.success(), "admin status succeeded with no daemon: {}", out.stdout);
}
