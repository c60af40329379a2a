//! Redis links that heal themselves (issue 9), against a real `redis-server`
//! and, for link faults, a TCP proxy of our own (`common/proxy.rs`):
//! half-open connections (the proxy blackholes every open connection), a
//! killed subscription, error replies from a live server (OOM, a user that
//! may not DEL, a read-only replica), a Redis restart, the admin `reply_to`
//! rule, one log line per invalidation burst, and honest cycle outcomes.
//!
//! Detection times and the operator's log lines are printed on stderr (run
//! with `--nocapture` to see them).

mod common;

use common::daemon::{
    model_names, run_cli, snapshot, wait_for_entries, wait_subscribed, wait_until, Daemon, Setup, ENTRY_NAMES,
};
use common::horde_server::{copy_dataset, read_json, write_json, HordeServer};
use common::proxy::Proxy;
use common::redis_server::{RedisClient, RedisServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REPLY: Duration = Duration::from_secs(5);
const NEW_MODEL: &str = "hydratortest/Links-Model-7B";

/// Adds a text model to a dataset's model reference, so the next text
/// computation gives other entries (the new model in the deletion-risk list).
fn add_text_model(dataset: &Path) {
    let path = dataset.join("model_reference/text_generation.json");
    let mut reference = read_json(&path);
    let mut record = reference.as_object().unwrap().values().next().unwrap().clone();
    record["name"] = json!(NEW_MODEL);
    reference.as_object_mut().unwrap().insert(NEW_MODEL.into(), record);
    write_json(&path, &reference);
}

/// The text deletion-risk entry in Redis lists the new model.
fn has_new_model(client: &mut RedisClient, daemon: &Daemon) -> bool {
    let key = daemon.key("deletion_risk:text_generation:grouped=false");
    client.get_json(&key).is_some_and(|v| model_names(&v).iter().any(|n| n == NEW_MODEL))
}

/// A daemon that has hydrated a fresh Redis once, from a copy of the example
/// data that the test may change (`add_text_model`). Fields drop in order: the
/// daemon first.
struct Hydrated {
    daemon: Daemon,
    redis: RedisServer,
    horde: HordeServer,
    data: tempfile::TempDir,
    /// The entries of the first hydration.
    old: BTreeMap<String, Vec<u8>>,
}

/// Starts the scenario; `redis_url` gives the daemon's URL for the server
/// (and may set the server up first).
fn hydrated(redis_url: impl FnOnce(&RedisServer) -> String) -> Hydrated {
    let data = copy_dataset(&common::example_data());
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis_url(&redis))));
    let old = wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    Hydrated { daemon, redis, horde, data, old }
}

/// No line of the log says Redis was unavailable or a connection lost.
#[track_caller]
fn assert_not_an_outage(log: &str) {
    assert_eq!(
        count_lines(log, &["unavailable"]) + count_lines(log, &["lost ("]),
        0,
        "not an outage:\n{log}"
    );
}

/// Seconds since midnight (UTC) of a log line's timestamp
/// (`[2026-11-30T06:01:02.123Z WARN …`).
fn log_time(line: &str) -> Option<f64> {
    let t = line.get(1..24)?.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn now_of_day() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() % 86400.0
}

/// The first log line containing every one of `needles`.
fn first_line<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| needles.iter().all(|n| l.contains(n)))
}

fn count_lines(log: &str, needles: &[&str]) -> usize {
    log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}

/// Lines logged after the first `skip` bytes, for the report.
fn lines_since(log: &str, skip: usize) -> String {
    log.get(skip..).unwrap_or_default().to_string()
}

/// The Done-when check: every connection through the proxy goes half-open
/// after the first hydration (TTL 15 s, interval 4 s, socket timeout 2 s):
/// all nine entries stay in Redis at every 1-second sample for 45 s, and an
/// admin `status` published straight on Redis 20 s after the blackhole is
/// answered. Both replacements are logged once with their cause.
#[test]
fn half_open_connections_are_replaced() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port());
    let mut setup = Setup::new(&horde, Some(&proxy.redis_url()));
    setup.interval(4);
    setup.set("cache", "deletion_risk_ttl_seconds", "15");
    setup.set("cache", "statistics_ttl_seconds", "15");
    setup.set("redis", "socket_timeout_seconds", "2");
    let mut daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.admin_channel(), Duration::from_secs(10));
    let replies = redis.subscribe(&daemon.reply_channel());
    let log_before = daemon.log().len();

    proxy.blackhole_existing();
    let blackholed_at = Instant::now();
    let blackholed_of_day = now_of_day();
    let mut client = redis.client();
    let mut missing = Vec::new();
    let mut status_sent: Option<Instant> = None;
    let mut answered_after: Option<Duration> = None;
    for second in 1..=45u64 {
        let target = blackholed_at + Duration::from_secs(second);
        thread::sleep(target.saturating_duration_since(Instant::now()));
        let snap = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
        let gone: Vec<&String> = snap.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
        if !gone.is_empty() {
            missing.push(format!("{second} s: {gone:?}"));
        }
        if status_sent.is_none() && second >= 20 {
            let receivers = client.publish(&daemon.admin_channel(), br#"{"command":"status"}"#);
            assert!(receivers >= 1, "nobody subscribed to the admin channel 20 s after the blackhole");
            status_sent = Some(Instant::now());
            // Wait a little here, to time the answer finer than the samples.
            if let Some(reply) = replies.recv_json(Duration::from_millis(800)) {
                assert_eq!(reply["ok"], json!(true), "{reply}");
                answered_after = status_sent.map(|t| t.elapsed());
            }
        }
        if let (Some(sent), None) = (status_sent, answered_after) {
            if let Some(reply) = replies.recv_json(Duration::ZERO) {
                assert_eq!(reply["ok"], json!(true), "{reply}");
                answered_after = Some(sent.elapsed());
            }
        }
    }
    daemon.assert_alive();
    assert!(missing.is_empty(), "entries missing from Redis after the blackhole: {missing:?}");
    let answered_after = answered_after
        .or_else(|| replies.recv_json(Duration::from_millis(100)).map(|_| status_sent.unwrap().elapsed()));
    assert!(answered_after.is_some(), "the status published 20 s after the blackhole was not answered");

    let log = daemon.log();
    let after = lines_since(&log, log_before);
    let command_lost = first_line(&after, &["redis: connection to", "lost"])
        .unwrap_or_else(|| panic!("the half-open command connection was not logged:\n{after}"));
    let subscriber_lost = first_line(&after, &["pubsub: subscription on", "lost"])
        .unwrap_or_else(|| panic!("the half-open subscriber was not logged:\n{after}"));
    let command_s = log_time(command_lost).unwrap() - blackholed_of_day;
    let subscriber_s = log_time(subscriber_lost).unwrap() - blackholed_of_day;
    eprintln!(
        "half-open: command connection detected after {command_s:.1} s, subscriber after {subscriber_s:.1} s; status answered {:.1} s after it was published\noperator's log since the blackhole:\n{after}",
        answered_after.unwrap().as_secs_f64()
    );
    // health check 5 s + timeout 2 s, plus 2 s for a loaded machine.
    assert!(command_s <= 9.0, "command connection detected after {command_s:.1} s");
    assert!(subscriber_s <= 9.0, "subscriber detected after {subscriber_s:.1} s");
    assert_eq!(count_lines(&after, &["redis: connection to", "lost"]), 1, "logged once:\n{after}");
    assert!(first_line(&after, &["pubsub: resubscribed"]).is_some(), "{after}");
}

/// With no cycle due (hourly), the health checks alone find both half-open
/// connections within health check (5 s) + timeout (2 s); then an admin
/// command is answered and an invalidation acted on.
#[test]
fn half_open_connections_are_found_by_the_health_checks() {
    let data = copy_dataset(&common::example_data());
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port());
    let mut setup = Setup::new(&horde, Some(&proxy.redis_url()));
    setup.set("redis", "socket_timeout_seconds", "2");
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.admin_channel(), Duration::from_secs(10));
    let log_before = daemon.log().len();

    proxy.blackhole_existing();
    let blackholed_of_day = now_of_day();
    let (command_lost, subscriber_lost) =
        wait_until(Duration::from_secs(15), "both half-open connections in the log", || {
            let after = lines_since(&daemon.log(), log_before);
            let c = first_line(&after, &["redis: connection to", "lost", "health check PING"])?.to_string();
            let s = first_line(&after, &["pubsub: subscription on", "lost", "PING"])?.to_string();
            Some((c, s))
        });
    let command_s = log_time(&command_lost).unwrap() - blackholed_of_day;
    let subscriber_s = log_time(&subscriber_lost).unwrap() - blackholed_of_day;
    let mut client = redis.client();
    add_text_model(data.path());
    client.publish(&daemon.invalidate_channel(), b"text_generation");
    wait_until(Duration::from_secs(10), "the invalidation acted on after the resubscription", || {
        has_new_model(&mut client, &daemon).then_some(())
    });
    let reply = daemon.admin(&redis, json!({"command": "status"}), REPLY).expect("no status reply");
    assert_eq!(reply["redis"]["state"], json!("up"), "{reply}");
    let after = lines_since(&daemon.log(), log_before);
    eprintln!(
        "half-open (health checks only): command connection detected after {command_s:.1} s, subscriber after {subscriber_s:.1} s\noperator's log:\n{after}"
    );
    // health check 5 s + timeout 2 s, plus 2 s for a loaded machine.
    assert!(command_s <= 9.0, "command connection detected after {command_s:.1} s");
    assert!(subscriber_s <= 9.0, "subscriber detected after {subscriber_s:.1} s");
}

/// A killed subscription: resubscribed, and every entry rewritten within 5 s
/// though no message was sent (the gap may have lost one).
#[test]
fn killed_subscription_rehydrates_every_category() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));
    let mut client = redis.client();
    for name in ENTRY_NAMES {
        client.set(&daemon.key(name), b"marker");
    }
    let log_before = daemon.log().len();

    client.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
    let killed = Instant::now();
    wait_until(Duration::from_secs(5), "every entry rewritten after CLIENT KILL TYPE pubsub", || {
        let snap = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
        snap.values().all(|v| v.as_deref().is_some_and(|b| b != b"marker")).then_some(())
    });
    let after = lines_since(&daemon.log(), log_before);
    eprintln!(
        "killed subscription: all nine entries rewritten {:.2} s after the kill\noperator's log:\n{after}",
        killed.elapsed().as_secs_f64()
    );
    assert!(first_line(&after, &["pubsub: resubscribed", "re-hydrating"]).is_some(), "{after}");
}

/// Out of memory (maxmemory + noeviction) is an error reply, not an outage:
/// at most 4 write attempts of the entries in 20 s after one hydrate (a
/// category's entries are written by one fenced-store script, which Redis
/// refuses whole under OOM: one refused EVAL per category and attempt), the old
/// entries byte-identical meanwhile, the new ones written within 10 s of
/// memory being freed; logged once, no outage.
#[test]
fn out_of_memory_is_not_an_outage() {
    let Hydrated { daemon, redis, horde: _horde, data, old } = hydrated(RedisServer::url);
    let mut client = redis.client();
    let log_before = daemon.log().len();

    client.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]).unwrap();
    client.command(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    add_text_model(data.path());
    let setex_before = client.command_attempts("setex");
    let stores_before = client.command_refusals("eval");
    let reply = daemon.admin(&redis, json!({"command": "hydrate"}), REPLY).expect("no reply to hydrate");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let hydrated = Instant::now();
    while hydrated.elapsed() < Duration::from_secs(20) {
        let snap = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
        for (name, value) in &snap {
            assert_eq!(value.as_ref(), old.get(name), "{name} changed while Redis refused writes");
        }
        thread::sleep(Duration::from_millis(500));
    }
    let attempts = client.command_refusals("eval") - stores_before;
    let log = lines_since(&daemon.log(), log_before);
    eprintln!(
        "out of memory: {attempts} refused store scripts (one per category) in 20 s\noperator's log:\n{log}"
    );
    assert!(
        attempts <= 4 * 2,
        "{attempts} refused stores in 20 s: more than 4 write attempts of the two categories"
    );
    assert!(attempts >= 2, "the hydrate did not even try to write ({attempts} refused stores)");
    assert_eq!(client.command_attempts("setex"), setex_before, "no SETEX may run under OOM");
    assert_eq!(
        count_lines(&log, &["refused", "out of memory", "the connection is fine"]),
        1,
        "logged once per episode:\n{log}"
    );
    assert_not_an_outage(&log);
    assert!(first_line(&log, &["WARN", "cycle partial"]).is_some(), "the cycle did not say partial:\n{log}");

    client.command(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    let freed = Instant::now();
    wait_until(Duration::from_secs(10), "the new entries after memory was freed", || {
        has_new_model(&mut client, &daemon).then_some(())
    });
    eprintln!(
        "out of memory: new entries written {:.1} s after memory was freed",
        freed.elapsed().as_secs_f64()
    );
    let snap = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
    assert!(snap.values().all(Option::is_some), "an entry is missing after recovery");
    let log = lines_since(&daemon.log(), log_before);
    assert!(first_line(&log, &["accepts the entries again"]).is_some(), "{log}");
}

/// A user that may not DEL: an invalidation still ends in fresh entries with
/// the new model (the refused DEL does not block the writes).
#[test]
fn a_user_without_del_still_gets_fresh_entries() {
    let Hydrated { daemon, redis, horde: _horde, data, .. } = hydrated(|redis| {
        let acl = ["ACL", "SETUSER", "hydrator", "on", ">s3cret", "~*", "&*", "+@all", "-del", "-unlink"];
        redis.client().command(&acl).unwrap();
        format!("redis://hydrator:s3cret@127.0.0.1:{}/0", redis.port())
    });
    let mut client = redis.client();
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));
    let log_before = daemon.log().len();

    add_text_model(data.path());
    client.publish(&daemon.invalidate_channel(), b"text_generation");
    wait_until(Duration::from_secs(10), "fresh entries with the new model after the invalidation", || {
        has_new_model(&mut client, &daemon).then_some(())
    });
    thread::sleep(Duration::from_millis(500));
    let log = lines_since(&daemon.log(), log_before);
    eprintln!("no-DEL user: operator's log:\n{log}");
    assert_eq!(count_lines(&log, &["refused DEL", "no permission", "the connection is fine"]), 1, "{log}");
    assert_not_an_outage(&log);
}

/// A read-only replica (as after a failover) refuses writes: not an outage;
/// the old entries stay; once it is a primary again the new ones are written.
#[test]
fn read_only_replica_then_primary_again() {
    let Hydrated { daemon, redis, horde: _horde, data, old } = hydrated(RedisServer::url);
    let mut client = redis.client();
    let log_before = daemon.log().len();

    // A replica of a port where nothing listens: it keeps its data, refuses writes.
    let dummy = common::redis_server::free_port().to_string();
    client.command(&["REPLICAOF", "127.0.0.1", &dummy]).unwrap();
    add_text_model(data.path());
    let reply = daemon.admin(&redis, json!({"command": "hydrate"}), REPLY).expect("no reply to hydrate");
    assert_eq!(reply["ok"], json!(true), "{reply}");
    wait_until(Duration::from_secs(10), "the refused cycle in the log", || {
        first_line(&lines_since(&daemon.log(), log_before), &["cycle partial", "read-only"]).map(|_| ())
    });
    let snap = snapshot(&mut client, &daemon.prefix, &ENTRY_NAMES);
    for (name, value) in &snap {
        assert_eq!(value.as_ref(), old.get(name), "{name} changed on a read-only replica");
    }

    client.command(&["REPLICAOF", "NO", "ONE"]).unwrap();
    let primary = Instant::now();
    wait_until(Duration::from_secs(10), "the new entries once Redis is a primary again", || {
        has_new_model(&mut client, &daemon).then_some(())
    });
    let log = lines_since(&daemon.log(), log_before);
    eprintln!(
        "read-only: new entries {:.1} s after REPLICAOF NO ONE\noperator's log:\n{log}",
        primary.elapsed().as_secs_f64()
    );
    assert_eq!(count_lines(&log, &["refused", "read-only", "the connection is fine"]), 1, "{log}");
    assert_not_an_outage(&log);
}

/// After a Redis restart, the first admin command is answered.
#[test]
fn first_admin_command_after_a_restart_is_answered() {
    let horde = HordeServer::start(common::example_data());
    let mut redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    // A first reply opens the publisher connection the restart will break.
    let reply = daemon.admin(&redis, json!({"command": "status"}), REPLY).expect("no status reply");
    assert_eq!(reply["ok"], json!(true));
    let log_before = daemon.log().len();

    redis.restart();
    let reply = daemon.admin(&redis, json!({"command": "status"}), REPLY);
    let log = lines_since(&daemon.log(), log_before);
    eprintln!("restart: operator's log:\n{log}");
    assert_eq!(reply.expect("the first admin command after the restart was not answered")["ok"], json!(true));

    // Only the command connections die (the subscription stays): the reply
    // fails on the dead publisher connection and is sent on a fresh one.
    let log_before = daemon.log().len();
    redis.client().command(&["CLIENT", "KILL", "TYPE", "normal"]).unwrap();
    let reply = daemon.admin(&redis, json!({"command": "status"}), REPLY);
    assert_eq!(reply.expect("no reply after CLIENT KILL TYPE normal")["ok"], json!(true));
    // The line is logged once the reply is out: the reply may arrive first.
    wait_until(Duration::from_secs(5), "the reply `sent on a fresh connection` in the log", || {
        let log = lines_since(&daemon.log(), log_before);
        first_line(&log, &["admin: reply on", "sent on a fresh connection"]).map(|_| ())
    });
    eprintln!("publisher killed: operator's log:\n{}", lines_since(&daemon.log(), log_before));
}

/// The proxy itself: forwards, blackholes open connections (new ones still
/// pass), delays, resets.
#[test]
fn the_proxy_forwards_blackholes_delays_and_resets() {
    use std::io::{Read, Write};
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port());
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s
    };
    let ping = |s: &mut std::net::TcpStream| -> std::io::Result<String> {
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let mut first = connect();
    assert_eq!(ping(&mut first).unwrap(), "+PONG\r\n");
    assert_eq!(proxy.open_connections(), 1);

    proxy.blackhole_existing();
    let err = ping(&mut first).expect_err("a blackholed connection answered");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
    let mut second = connect();
    assert_eq!(ping(&mut second).unwrap(), "+PONG\r\n", "a new connection is forwarded");

    proxy.set_delay(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(ping(&mut second).unwrap(), "+PONG\r\n");
    assert!(t.elapsed() >= Duration::from_millis(600), "no delay: {:?}", t.elapsed());
    proxy.set_delay(Duration::ZERO);

    proxy.reset_existing();
    let err = ping(&mut second).and_then(|_| ping(&mut second)).expect_err("a reset connection answered");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let mut third = connect();
    assert_eq!(ping(&mut third).unwrap(), "+PONG\r\n");
}

/// `reply_to` must be `P:admin:reply` or under it; `P:admin` itself would make
/// the reply run as a command. Refused with a log line, no reply.
#[test]
fn replies_only_go_under_the_reply_channel() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_subscribed(&redis, &daemon.admin_channel(), Duration::from_secs(30));

    let under = format!("{}:ops", daemon.reply_channel());
    let reply = daemon.admin(&redis, json!({"command": "status", "reply_to": under}), REPLY);
    assert_eq!(reply.expect("no reply under P:admin:reply")["ok"], json!(true));

    for channel in [daemon.admin_channel(), "ops:private:replies".to_string()] {
        let watch = redis.subscribe(&channel);
        redis.client().publish(
            &daemon.admin_channel(),
            json!({"command": "status", "reply_to": channel}).to_string().as_bytes(),
        );
        let mut seen = Vec::new();
        while let Some(m) = watch.recv(Duration::from_secs(2)) {
            seen.push(String::from_utf8_lossy(&m).into_owned());
        }
        // On P:admin we see our own command, nothing else.
        assert!(seen.iter().all(|m| !m.contains("\"ok\"")), "a reply went to {channel}: {seen:?}");
        assert!(seen.len() <= 1, "{channel}: {seen:?}");
    }
    let log = daemon.log();
    assert_eq!(count_lines(&log, &["admin: refused", "reply_to"]), 2, "{log}");
}

/// A burst of invalidations logs one line per category (with the count), not
/// one per message.
#[test]
fn an_invalidation_burst_logs_one_line() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));
    let log_before = daemon.log().len();

    let mut client = redis.client();
    for _ in 0..200 {
        client.publish(&daemon.invalidate_channel(), b"text_generation");
    }
    let counted = || {
        let log = lines_since(&daemon.log(), log_before);
        let n: u64 = log
            .lines()
            .filter(|l| l.contains("pubsub: invalidated text_generation ("))
            .filter_map(|l| l.split('(').nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        (n, log)
    };
    wait_until(Duration::from_secs(10), "200 invalidations in the burst lines", || {
        (counted().0 == 200).then_some(())
    });
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(10));
    thread::sleep(Duration::from_secs(1));
    let (_, log) = counted();
    eprintln!("invalidation burst: operator's log:\n{log}");
    let bursts = count_lines(&log, &["pubsub: invalidated text_generation ("]);
    assert!(bursts <= 3, "{bursts} burst lines for one burst of 200:\n{log}");
    assert!(log.lines().count() <= 10, "200 invalidations logged {} lines:\n{log}", log.lines().count());
}

/// A cycle whose Redis write failed is `partial`, not `ok`: `once` exits 1
/// and says so on stdout and stderr.
#[test]
fn once_with_redis_down_is_partial() {
    let horde = HordeServer::start(common::example_data());
    let mut redis = RedisServer::start();
    redis.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(&horde, Some(&redis.url())).write(dir.path());
    let out = run_cli(&config, &[], &["once"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("cycle partial"), "stdout:\n{}", out.stdout);
    assert!(out.stderr.contains("cycle partial"), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("cycle ok"), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("not written to Redis"), "stderr:\n{}", out.stderr);
}
