//! The read API (README "Read API"): the reference's statistics routes served
//! by the daemon's HTTP server.
//!
//! - Every route and parameter combination of the side-by-side check, on the
//!   shared datasets (`../shared/conformance/seed1`, `seed2`): the nine plain
//!   entries against the dataset's `expected/`, pagination, the seven presets
//!   (image, text grouped) and the error answers against the reference
//!   service's own answers, committed in `tests/fixtures/read_api/<seed>.json.gz`
//!   by `tests/fixtures/read_api/side_by_side.py` — compared with compare.py's rules.
//! - HTTP caching: `ETag`, `If-None-Match` → 304 without a body,
//!   `Cache-Control: max-age`, gzip that decompresses to the same body.
//! - Stale-if-error on the clock: past the TTL the entry is still served
//!   (`max-age=0`), past the stale TTL the answer is 503.
//! - A daemon that does not hydrate (a follower) serves what is in Redis,
//!   and stops serving an entry that left Redis.

mod common;

use common::compare::differences;
use common::daemon::{wait_until, Daemon, Setup};
use common::http::{try_request_with, HttpReply};
use common::redis_server::RedisServer;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const R: &str = "/api/model_references/statistics";

/// The nine plain entries: path, `expected/` file.
const PLAIN: [(&str, &str); 9] = [
    ("/image_generation/deletion-risk", "deletion_risk__image_generation__grouped=false"),
    (
        "/image_generation/deletion-risk?group_text_models=true",
        "deletion_risk__image_generation__grouped=true",
    ),
    ("/text_generation/deletion-risk", "deletion_risk__text_generation__grouped=false"),
    (
        "/text_generation/deletion-risk?include_backend_variations=true",
        "deletion_risk__text_generation__grouped=false__variations=true",
    ),
    ("/text_generation/deletion-risk?group_text_models=true", "deletion_risk__text_generation__grouped=true"),
    ("/image_generation", "stats__image_generation__grouped=false"),
    ("/image_generation?group_text_models=true", "stats__image_generation__grouped=true"),
    ("/text_generation", "stats__text_generation__grouped=false"),
    ("/text_generation?group_text_models=true", "stats__text_generation__grouped=true"),
];

/// `Cache-Control: max-age=N` of a reply, as N.
fn max_age(reply: &HttpReply) -> u64 {
    let cc = reply.header("cache-control").expect("a Cache-Control header");
    cc.strip_prefix("max-age=").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("Cache-Control {cc:?}"))
}

/// `GET path` with extra request headers, one request per connection; every
/// answer but a 304 must have a `Content-Length` that matches its body.
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    let reply = try_request_with(addr, "GET", path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    if reply.status != 304 {
        let length =
            reply.header("content-length").unwrap_or_else(|| panic!("GET {path}: no Content-Length"));
        assert_eq!(length.parse::<usize>().unwrap(), reply.body.len(), "GET {path}: Content-Length");
    }
    reply
}

/// The shared datasets; fails with what to do when they are missing.
fn shared_datasets() -> Vec<PathBuf> {
    let root = common::conformance_dir().unwrap_or_else(|| {
        panic!("the read API's conformance test needs ../shared/conformance (or HORDE_CONFORMANCE_DIR)")
    });
    let sets = common::datasets(&root);
    assert!(!sets.is_empty(), "no dataset with expected/ under {}", root.display());
    sets
}

/// The reference's answers for a dataset, made by side_by_side.py.
fn fixtures(dataset: &Path) -> Option<Vec<Value>> {
    let name = dataset.file_name()?.to_str()?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/read_api/{name}.json.gz"));
    let gz = std::fs::read(&path).ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    Some(v["answers"].as_array().unwrap().clone())
}

/// A daemon hydrating from the dataset's files, Redis off, one startup cycle.
fn dataset_daemon(dataset: &Path) -> Daemon {
    Daemon::start(&Setup::from_snapshot(dataset, None))
}

/// Waits until the daemon's first cycle is served.
fn wait_served(daemon: &Daemon) -> String {
    let addr = daemon.http_addr();
    wait_until(Duration::from_secs(60), "the read API to serve the first cycle", || {
        (get(&addr, &format!("{R}/text_generation/deletion-risk?limit=1"), &[]).status == 200).then_some(())
    });
    addr
}

#[test]
fn every_route_answers_as_the_reference_on_the_shared_datasets() {
    let sets: Vec<(PathBuf, Vec<Value>)> =
        shared_datasets().into_iter().filter_map(|d| fixtures(&d).map(|f| (d, f))).collect();
    assert!(
        sets.len() >= 2,
        "expected the reference's answers for seed1 and seed2 in tests/fixtures/read_api (made by side_by_side.py)"
    );
    let daemons: Vec<Daemon> = sets.iter().map(|(d, _)| dataset_daemon(d)).collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for ((dataset, answers), daemon) in sets.iter().zip(&daemons) {
        let addr = wait_served(daemon);
        let name = dataset.file_name().unwrap().to_string_lossy();
        for (path, file) in PLAIN {
            let reply = get(&addr, &format!("{R}{path}"), &[]);
            let expected: Value = serde_json::from_slice(
                &std::fs::read(dataset.join("expected").join(format!("{file}.json"))).unwrap(),
            )
            .unwrap();
            checked += 1;
            if reply.status != 200 {
                failures.push(format!("{name} {path}: status {}", reply.status));
                continue;
            }
            let diffs = differences(&expected, &reply.json());
            if !diffs.is_empty() {
                failures.push(format!("{name} {path}: {}", diffs.join("; ")));
            }
        }
        for answer in answers {
            let path = answer["path"].as_str().unwrap();
            let reply = get(&addr, path, &[]);
            checked += 1;
            if u64::from(reply.status) != answer["status"].as_u64().unwrap() {
                failures.push(format!(
                    "{name} {path}: status {} where the reference gave {}",
                    reply.status, answer["status"]
                ));
                continue;
            }
            let diffs = differences(&answer["body"], &reply.json());
            if !diffs.is_empty() {
                failures.push(format!("{name} {path}: {}", diffs.join("; ")));
            }
        }
    }
    assert_eq!(checked, 31 * sets.len(), "31 requests per dataset");
    assert!(
        failures.is_empty(),
        "{} of {checked} requests differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn conditional_gets_gzip_and_cache_headers() {
    let dataset = shared_datasets().remove(0);
    let daemon = dataset_daemon(&dataset);
    let addr = wait_served(&daemon);
    let path = format!("{R}/text_generation/deletion-risk");

    let plain = get(&addr, &path, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert!(plain.header("content-encoding").is_none());
    let etag = plain.header("etag").expect("an ETag").to_string();
    let age = max_age(&plain);
    assert!((1..=300).contains(&age), "max-age {age} is the TTL left of a fresh entry (TTL 300 s)");

    let not_modified = get(&addr, &path, &[("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty(), "304 has no body");
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    let weak = format!("\"nope\", W/{etag}");
    assert_eq!(get(&addr, &path, &[("If-None-Match", &weak)]).status, 304, "a weak tag in a list matches");
    assert_eq!(get(&addr, &path, &[("If-None-Match", "\"other\"")]).status, 200);

    let gz = get(&addr, &path, &[("Accept-Encoding", "br;q=1.0, gzip;q=0.8")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz.body.len() * 4 < plain.body.len(), "gzip {} of {} bytes", gz.body.len(), plain.body.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut unzipped).unwrap();
    assert!(unzipped == plain.body, "gzip decompresses to the same body");
    let gz_tag = gz.header("etag").unwrap().to_string();
    assert_eq!(gz_tag, format!("{}-gzip\"", etag.trim_end_matches('"')), "the gzip form has its own tag");
    let not_modified = get(&addr, &path, &[("If-None-Match", &gz_tag), ("Accept-Encoding", "gzip")]);
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    let refused = get(&addr, &path, &[("Accept-Encoding", "gzip;q=0")]);
    assert!(refused.header("content-encoding").is_none(), "q=0 refuses gzip");

    // Another view of the same entry has its own tag; its gzip is its own body.
    let page = get(&addr, &format!("{path}?limit=2"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(page.status, 200);
    assert_ne!(page.header("etag"), Some(etag.as_str()));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&page.body[..]).read_to_string(&mut unzipped).unwrap();
    let v: Value = serde_json::from_str(&unzipped).unwrap();
    assert_eq!(v["returned_count"], 2);
    let page_tag = page.header("etag").unwrap().to_string();
    assert_eq!(get(&addr, &format!("{path}?limit=2"), &[("If-None-Match", &page_tag)]).status, 304);

    // Errors are the reference's shapes, not cached.
    let e = get(&addr, &format!("{path}?limit=0"), &[]);
    assert_eq!(e.status, 422);
    assert_eq!(e.json()["detail"][0]["type"], "greater_than_equal");
    assert!(e.header("etag").is_none());
    // Without the /api prefix too; other methods are 405.
    assert_eq!(get(&addr, "/model_references/statistics/image_generation", &[]).status, 200);
}

#[test]
fn stale_entries_are_served_until_the_stale_ttl_then_503() {
    let dataset = shared_datasets().remove(0);
    let mut setup = Setup::from_snapshot(&dataset, None);
    // One startup cycle only (hourly interval): the entry just ages.
    setup.set("cache", "deletion_risk_ttl_seconds", "2").set("hydration", "stale_ttl_seconds", "10");
    let daemon = Daemon::start(&setup);
    let addr = daemon.http_addr();
    let path = format!("{R}/image_generation/deletion-risk");
    wait_until(Duration::from_secs(30), "the entry to be served", || {
        (get(&addr, &path, &[]).status == 200).then_some(())
    });
    // max-age counts whole seconds left: 0 once the entry is more than 1 s old ...
    let t1 = wait_until(Duration::from_secs(10), "max-age=0", || {
        let r = get(&addr, &path, &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        (max_age(&r) == 0).then(std::time::Instant::now)
    });
    // ... so 1.5 s later it is past its 2 s TTL, and within the 10 s stale TTL.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(t1.elapsed()));
    let stale = get(&addr, &path, &[]);
    assert_eq!(stale.status, 200, "served past its TTL: {}", String::from_utf8_lossy(&stale.body));
    assert_eq!(max_age(&stale), 0);
    assert_eq!(stale.json()["category"], "image_generation");
    let gone = wait_until(Duration::from_secs(20), "503 past the stale TTL", || {
        let r = get(&addr, &path, &[]);
        (r.status != 200).then_some(r)
    });
    assert_eq!(gone.status, 503);
    assert!(gone.json()["detail"].as_str().unwrap().contains("deletion_risk:image_generation:grouped=false"));
    // Statistics keep their 300 s TTL: still fresh.
    assert_eq!(get(&addr, &format!("{R}/image_generation"), &[]).status, 200);
}

#[test]
fn a_daemon_that_does_not_hydrate_serves_what_is_in_redis() {
    let dataset = shared_datasets().remove(0);
    let redis = RedisServer::start();
    let writer = Daemon::start(&Setup::from_snapshot(&dataset, Some(&redis.url())));
    let mut reader_setup =
        Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", Some(&redis.url()));
    reader_setup.set("hydration", "enabled", "false").set("leader", "enabled", "false");
    let reader = Daemon::start(&reader_setup);
    let key = writer.key("deletion_risk:text_generation:grouped=true");
    let mut client = redis.client();
    let stored = wait_until(Duration::from_secs(60), "the writer's entries in Redis", || client.get(&key));

    let addr = reader.http_addr();
    let path = format!("{R}/text_generation/deletion-risk?group_text_models=true");
    // Its first requests, all at once: one asks Redis, the others wait for that answer.
    let first: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| get(&addr, &path, &[]).status)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(first, [200; 8], "concurrent first requests of a daemon without entries of its own");
    let reply = get(&addr, &path, &[]);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.body == stored, "the reader serves Redis's bytes unchanged");
    let writer_reply = get(&wait_served(&writer), &path, &[]);
    assert_eq!(
        reply.header("etag"),
        writer_reply.header("etag"),
        "the same entry has the same tag on every daemon"
    );

    // The entry leaves Redis: the reader notices within its refresh period.
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("DEL").arg(&key).query::<()>(&mut conn).unwrap();
    wait_until(Duration::from_secs(15), "the reader to stop serving a deleted entry", || {
        (get(&addr, &path, &[]).status == 503).then_some(())
    });
}

/// Done-when of issue 15: the daemon and the reference's own service, side by
/// side on one Redis and dataset, give the same status and equal JSON for
/// the 31 requests (side_by_side.py; the service itself comes from
/// ../shared/tools/reference_service.sh, which installs fastapi and uvicorn
/// into the venv on first use).
#[test]
fn the_reference_service_gives_the_same_31_answers_side_by_side() {
    let sets = shared_datasets();
    let corpus = sets[0].parent().expect("the corpus lies in shared/conformance");
    let Some((python, _)) = common::reference_python(corpus) else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read_api/side_by_side.py");
    let shared = corpus.parent().expect("the corpus lies in shared/conformance").to_path_buf();
    for dataset in sets {
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg("--daemon")
            .arg(env!("CARGO_BIN_EXE_horde-hydrator"))
            .arg("--dataset")
            .arg(&dataset)
            .env("HORDE_SHARED", &shared)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "{}: side by side with the reference service:\n{text}",
            dataset.display()
        );
        assert!(text.contains("31/31 requests"), "{text}");
    }
}

/// A daemon whose own entry went stale (it stopped hydrating, e.g. it lost
/// the leadership) serves the later version another daemon wrote to Redis.
#[test]
fn a_stale_own_entry_yields_to_a_later_version_in_redis() {
    let dataset = shared_datasets().remove(0);
    let redis = RedisServer::start();
    let mut setup = Setup::from_snapshot(&dataset, Some(&redis.url()));
    setup.set("cache", "deletion_risk_ttl_seconds", "2").set("hydration", "stale_ttl_seconds", "60");
    let daemon = Daemon::start(&setup);
    let key = daemon.key("deletion_risk:image_generation:grouped=false");
    let mut client = redis.client();
    let own = wait_until(Duration::from_secs(60), "the daemon's entry in Redis", || client.get(&key));
    let addr = wait_served(&daemon);
    let path = format!("{R}/image_generation/deletion-risk");

    // Another daemon writes a later version (same shape, other numbers).
    let mut later: Value = serde_json::from_slice(&own).unwrap();
    later["category_total_month_usage"] = Value::from(12345);
    let later = serde_json::to_vec(&later).unwrap();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("SETEX").arg(&key).arg(300).arg(&later).query::<()>(&mut conn).unwrap();

    wait_until(Duration::from_secs(20), "the later version from Redis once the own entry is stale", || {
        let r = get(&addr, &path, &[]);
        assert_eq!(r.status, 200);
        (r.body == later).then_some(())
    });
}

/// Replicas (two daemons, one lease): whichever leads hydrates, and both
/// serve the leader's entries — the follower from Redis.
#[test]
fn both_replicas_serve_the_leaders_entries() {
    let dataset = shared_datasets().remove(0);
    let redis = RedisServer::start();
    let setup = Setup::from_snapshot(&dataset, Some(&redis.url()));
    let a = Daemon::start(&setup);
    let b = Daemon::start(&setup);
    let key = a.key("stats:text_generation:grouped=false");
    let mut client = redis.client();
    let stored = wait_until(Duration::from_secs(60), "the leader's entries in Redis", || client.get(&key));
    let path = format!("{R}/text_generation");
    for daemon in [&a, &b] {
        let addr = daemon.http_addr();
        let body = wait_until(Duration::from_secs(20), "200 from each replica", || {
            let r = get(&addr, &path, &[]);
            (r.status == 200).then_some(r.body)
        });
        let (served, written): (Value, Value) =
            (serde_json::from_slice(&body).unwrap(), serde_json::from_slice(&stored).unwrap());
        assert_eq!(served["computed_at"], written["computed_at"], "both serve the version in Redis");
    }
}
