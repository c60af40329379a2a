//! Model-reference invalidation over Redis pub/sub (SPEC §2 `P:invalidate`):
//! the reference's bare category payload makes the daemon drop and re-hydrate
//! that category only, quickly, once per burst; anything else is ignored.

mod common;

use common::daemon::{
    category_entries, model_names, snapshot, wait_for_entries, wait_subscribed, wait_until, Daemon, Setup,
    ENTRY_NAMES,
};
use common::horde_server::{copy_dataset, read_json, write_json, HordeServer, Route};
use common::redis_server::RedisServer;
use serde_json::{json, Value};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

const NEW_MODEL: &str = "hydratortest/Brand-New-Model-13B";

/// Adds a model to a dataset's text reference (a copy of its first record, renamed).
fn add_text_model(dataset: &Path, name: &str) {
    let path = dataset.join("model_reference/text_generation.json");
    let mut reference = read_json(&path);
    let map = reference.as_object_mut().unwrap();
    let mut record = map.values().next().unwrap().clone();
    record["name"] = json!(name);
    record["display_name"] = json!("Brand New Model");
    map.insert(name.to_string(), record);
    write_json(&path, &reference);
}

struct Fixture {
    data: tempfile::TempDir,
    horde: HordeServer,
    redis: RedisServer,
    daemon: Daemon,
}

/// The example dataset (examples/data) copied into a temp dir and served; a daemon with a non-default prefix
/// has written its first cycle and listens on its channels.
fn start() -> Fixture {
    let seed = common::example_data();
    let data = copy_dataset(&seed);
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.prefix("itest:model_ref");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));
    Fixture { data, horde, redis, daemon }
}

#[test]
fn invalidation_rehydrates_the_text_category_within_two_seconds_and_leaves_image_alone() {
    let f = start();
    let mut client = f.redis.client();
    let before = snapshot(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
    let text_stats_before = client.get_json(&f.daemon.key("stats:text_generation:grouped=false")).unwrap();

    add_text_model(f.data.path(), NEW_MODEL);
    let published = Instant::now();
    assert_eq!(client.publish(&f.daemon.invalidate_channel(), b"text_generation"), 1);
    let risk_key = f.daemon.key("deletion_risk:text_generation:grouped=false");
    wait_until(Duration::from_secs(2), "the new model in the text deletion-risk entry", || {
        let entry = client.get_json(&risk_key)?;
        model_names(&entry).iter().any(|n| n == NEW_MODEL).then_some(())
    });
    eprintln!("invalidation to fresh entry: {:?}", published.elapsed());

    // Every text entry comes from the new reference.
    let variations = client
        .get_json(&f.daemon.key("deletion_risk:text_generation:grouped=false:variations=true"))
        .unwrap();
    assert!(model_names(&variations).iter().any(|n| n == NEW_MODEL));
    let grouped = client.get_json(&f.daemon.key("deletion_risk:text_generation:grouped=true")).unwrap();
    assert!(grouped.to_string().contains("Brand-New-Model"), "grouped text entry without the new model");
    let text_stats = client.get_json(&f.daemon.key("stats:text_generation:grouped=false")).unwrap();
    assert_eq!(
        text_stats["total_models"].as_i64().unwrap(),
        text_stats_before["total_models"].as_i64().unwrap() + 1
    );

    // The image entries are untouched, byte for byte.
    let after = snapshot(&mut client, &f.daemon.prefix, &category_entries("image_generation"));
    for (name, value) in after {
        assert_eq!(value, before[&name], "{name} changed on a text invalidation");
    }
}

#[test]
fn a_burst_of_invalidations_rehydrates_once() {
    let f = start();
    let mut client = f.redis.client();
    let references_before = f.horde.count(Route::TextReference);
    let image_references_before = f.horde.count(Route::ImageReference);

    add_text_model(f.data.path(), NEW_MODEL);
    for _ in 0..20 {
        client.publish(&f.daemon.invalidate_channel(), b"text_generation");
    }
    let risk_key = f.daemon.key("deletion_risk:text_generation:grouped=false");
    wait_until(Duration::from_secs(5), "the new model after the burst", || {
        let entry = client.get_json(&risk_key)?;
        model_names(&entry).iter().any(|n| n == NEW_MODEL).then_some(())
    });
    // Leave room for any straggling re-hydration before counting.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        f.horde.count(Route::TextReference) - references_before,
        1,
        "20 invalidations should fetch the text reference once"
    );
    assert_eq!(f.horde.count(Route::ImageReference), image_references_before, "image reference refetched");
    // And the entries it left are all there.
    let all = snapshot(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
    assert!(all.values().all(Option::is_some), "entries missing after the burst");
}

#[test]
fn garbage_invalidations_are_ignored() {
    let mut f = start();
    let mut client = f.redis.client();
    let before = snapshot(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
    let fetches_before = f.horde.total();

    let payloads: [&[u8]; 9] = [
        b"",
        b"nonsense",
        b"clip",
        b"controlnet",
        b"image_generation text_generation",
        b"{\"category\": \"text_generation\"}",
        b"\xff\xfe\x00\x01garbage",
        b"null",
        b"42",
    ];
    for payload in payloads {
        client.publish(&f.daemon.invalidate_channel(), payload);
    }
    // A status round trip after them: the listener has read them by then.
    let reply = f.daemon.admin(&f.redis, json!({"command": "status"}), Duration::from_secs(5));
    assert_eq!(
        reply.as_ref().and_then(|r| r.get("ok")),
        Some(&Value::Bool(true)),
        "status after garbage: {reply:?}"
    );
    thread::sleep(Duration::from_millis(1500));
    f.daemon.assert_alive();
    assert_eq!(f.horde.total(), fetches_before, "garbage triggered fetches");
    assert_eq!(snapshot(&mut client, &f.daemon.prefix, &ENTRY_NAMES), before, "garbage changed entries");

    // The listener still works.
    add_text_model(f.data.path(), NEW_MODEL);
    client.publish(&f.daemon.invalidate_channel(), b"text_generation");
    let risk_key = f.daemon.key("deletion_risk:text_generation:grouped=false");
    wait_until(Duration::from_secs(2), "re-hydration after the garbage", || {
        let entry = client.get_json(&risk_key)?;
        model_names(&entry).iter().any(|n| n == NEW_MODEL).then_some(())
    });
}

#[test]
fn invalidation_drops_the_category_even_when_it_cannot_be_rehydrated() {
    let f = start();
    let mut client = f.redis.client();
    let before = snapshot(&mut client, &f.daemon.prefix, &ENTRY_NAMES);
    f.horde.set_route_mode(Route::TextReference, common::horde_server::Mode::Status(500));
    client.publish(&f.daemon.invalidate_channel(), b"text_generation");
    // SPEC §2: drop that category's entries (all variants, memory and Redis);
    // the fetcher's cached text reference is dropped too, so nothing comes back.
    wait_until(Duration::from_secs(2), "the text entries to be dropped", || {
        let text = snapshot(&mut client, &f.daemon.prefix, &category_entries("text_generation"));
        text.values().all(Option::is_none).then_some(())
    });
    thread::sleep(Duration::from_secs(1));
    let text = snapshot(&mut client, &f.daemon.prefix, &category_entries("text_generation"));
    assert!(text.values().all(Option::is_none), "text entries came back from a failed source");
    for (name, value) in snapshot(&mut client, &f.daemon.prefix, &category_entries("image_generation")) {
        assert_eq!(value, before[&name], "{name} changed");
    }
    // The source is back: the next invalidation restores the category.
    f.horde.reset_modes();
    client.publish(&f.daemon.invalidate_channel(), b"text_generation");
    wait_for_entries(&f.redis, &f.daemon.prefix, Duration::from_secs(5));
}

#[test]
fn garbage_is_logged_rate_limited() {
    let mut f = start();
    let mut client = f.redis.client();
    let lines_before = f.daemon.log().lines().count();
    for i in 0..300 {
        client.publish(&f.daemon.invalidate_channel(), format!("no-such-category-{i}").as_bytes());
    }
    let reply = f.daemon.admin(&f.redis, json!({"command": "status"}), Duration::from_secs(5));
    assert!(reply.is_some(), "no status reply after the garbage");
    f.daemon.assert_alive();
    let log = f.daemon.log();
    let logged = log.lines().count() - lines_before;
    assert!(log.contains("no-such-category"), "garbage not logged at all");
    assert!(logged < 100, "300 garbage messages gave {logged} log lines: not rate-limited");
}
