//! Signals to the real daemon: SIGHUP reloads the settings (a new interval is
//! applied and shown by `admin status` and `GET /status`; a broken file or an invalid value is
//! rejected and the running settings stay; a key that needs a restart is
//! reported, not applied), SIGUSR1/SIGUSR2 are ignored, and the systemd
//! readiness protocol (`$NOTIFY_SOCKET`): READY=1 once the first cycle has
//! written its entries (a follower, which runs no cycle: once it follows),
//! RELOADING=1/READY=1 around a reload, STOPPING=1.
//!
//! The sources are the example snapshot (`examples/data`, `file://`), so these
//! tests need neither the conformance corpus nor the network.

mod common;

use common::daemon::{wait_for_entries, wait_until, Daemon, Setup};
use common::redis_server::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

const REPLY: Duration = Duration::from_secs(5);
const ENTRIES: Duration = Duration::from_secs(60);

fn example_setup(redis: &RedisServer) -> Setup {
    Setup::from_snapshot(&common::example_data(), Some(&redis.url()))
}

/// The daemon's `status` reply, over Redis pub/sub.
fn status(daemon: &Daemon, redis: &RedisServer) -> Value {
    daemon.admin(redis, json!({"command": "status"}), REPLY).expect("no status reply")
}

/// Rewrites the daemon's config file with `text`.
fn rewrite_config(daemon: &Daemon, text: &str) {
    std::fs::write(&daemon.config, text).unwrap();
}

/// Waits until the daemon's log has `needle` at least `times` times.
fn wait_log(daemon: &Daemon, needle: &str, times: usize) -> String {
    wait_until(Duration::from_secs(20), &format!("{needle:?} in the daemon's log"), || {
        let log = daemon.log();
        (log.matches(needle).count() >= times).then_some(log)
    })
}

/// `GET /status` says the daemon cycles every `seconds` (as `admin status` does).
#[track_caller]
fn assert_http_interval(daemon: &Daemon, seconds: u64) {
    let http = daemon.http_get("/status");
    assert_eq!(http.status, 200, "{}", http.text());
    assert_eq!(http.json()["hydration"]["interval_seconds"], json!(seconds), "{}", http.text());
}

/// One entry of a status reply's `settings` (`{"key", "value", "source"}`).
fn setting(status: &Value, key: &str) -> Value {
    let listed = status["settings"].as_array().cloned().unwrap_or_default();
    listed.into_iter().find(|s| s["key"] == key).unwrap_or_else(|| panic!("no setting {key} in {status}"))
}

/// The daemon (sent SIGTERM) exits, successfully, within 10 s.
#[track_caller]
fn assert_exits_cleanly(daemon: &mut Daemon) {
    let exit = daemon.wait_exit(Duration::from_secs(10)).expect("no exit after SIGTERM");
    assert!(exit.success(), "{exit}");
}

#[test]
fn sighup_applies_a_new_interval_and_keeps_running() {
    let redis = RedisServer::start();
    let mut setup = example_setup(&redis);
    setup.interval(3600);
    let mut daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, ENTRIES);
    let before = status(&daemon, &redis);
    assert_eq!(before["hydration"]["interval_seconds"], json!(3600), "{before}");
    assert_eq!(before["counters"]["cycles"], json!(1), "{before}");
    assert_http_interval(&daemon, 3600);

    // A new interval, and a key that needs a restart.
    setup.interval(1).set("redis", "socket_timeout_seconds", "7");
    rewrite_config(&daemon, &setup.to_toml());
    daemon.signal("HUP");
    let log = wait_log(&daemon, "reload: applied", 1);
    assert!(log.contains("hydration.interval_seconds 3600 → 1"), "{log}");
    assert!(log.contains("needs a restart (not applied): redis.socket_timeout_seconds 5 → 7"), "{log}");
    daemon.assert_alive();

    // The status shows the new interval, and cycles now come every second.
    let after = wait_until(Duration::from_secs(20), "three cycles at the new interval", || {
        let s = status(&daemon, &redis);
        (s["counters"]["cycles"].as_u64().unwrap_or(0) >= 3).then_some(s)
    });
    assert_eq!(after["hydration"]["interval_seconds"], json!(1), "{after}");
    // GET /status says the same as `admin status`.
    assert_http_interval(&daemon, 1);
    // Both list the settings in effect: the applied key with its new value
    // from the file, the one that needs a restart as it was.
    let http = daemon.http_get("/status").json();
    for reply in [&after, &http] {
        let interval = setting(reply, "hydration.interval_seconds");
        assert_eq!(interval["value"], json!("1"), "{interval}");
        assert!(interval["source"].as_str().is_some_and(|s| s.contains(".toml")), "{interval}");
        assert_eq!(setting(reply, "redis.socket_timeout_seconds")["value"], json!("5"), "{reply}");
    }
    daemon.assert_alive();

    daemon.sigterm();
    assert_exits_cleanly(&mut daemon);
}

#[test]
fn sighup_with_a_broken_or_invalid_file_keeps_the_running_settings() {
    let redis = RedisServer::start();
    let mut setup = example_setup(&redis);
    setup.interval(3600).admin_token("first-token");
    let mut daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, ENTRIES);

    // Unparsable TOML: the loader's own message (it names the file), logged as an error.
    rewrite_config(&daemon, "[hydration\ninterval_seconds = 1\n");
    daemon.signal("HUP");
    let log = wait_log(&daemon, "the running settings stay in effect", 1);
    let line = log.lines().find(|l| l.contains("the running settings stay")).unwrap();
    assert!(line.contains("ERROR"), "{line}");
    // The loader's message: the file, the position, what is wrong.
    assert!(line.contains(&daemon.config.display().to_string()) && line.contains("unclosed table"), "{line}");
    daemon.assert_alive();

    // A valid file with an invalid value: the message names the key.
    let mut invalid = setup.clone();
    invalid.interval(0);
    rewrite_config(&daemon, &invalid.to_toml());
    daemon.signal("HUP");
    let log = wait_log(&daemon, "the running settings stay in effect", 2);
    assert!(log.contains("hydration.interval_seconds"), "{log}");
    daemon.assert_alive();

    let reply = daemon
        .admin(&redis, json!({"command": "status", "token": "first-token"}), REPLY)
        .expect("no status reply");
    assert_eq!(reply["ok"], json!(true), "the old token still works: {reply}");
    assert_eq!(reply["hydration"]["interval_seconds"], json!(3600), "{reply}");
    assert!(!daemon.log().contains("reload: applied"), "{}", daemon.log());

    // A good file again, with a new admin token: applied at once.
    let mut good = setup.clone();
    good.admin_token("second-token");
    rewrite_config(&daemon, &good.to_toml());
    daemon.signal("HUP");
    let log = wait_log(&daemon, "reload: applied admin.token <redacted> → <redacted>", 1);
    assert!(!log.contains("first-token") && !log.contains("second-token"), "{log}");
    let old = daemon.admin(&redis, json!({"command": "status", "token": "first-token"}), REPLY).unwrap();
    assert_eq!(old["ok"], json!(false), "the old token is refused now: {old}");
    let new = daemon.admin(&redis, json!({"command": "status", "token": "second-token"}), REPLY).unwrap();
    assert_eq!(new["ok"], json!(true), "{new}");
    daemon.assert_alive();
}

#[test]
fn sigusr1_and_sigusr2_are_logged_and_ignored() {
    let redis = RedisServer::start();
    let mut daemon = Daemon::start(&example_setup(&redis));
    wait_for_entries(&redis, &daemon.prefix, ENTRIES);
    for name in ["USR1", "USR2", "USR1"] {
        daemon.signal(name);
    }
    wait_log(&daemon, "received SIGUSR1: ignored", 2);
    wait_log(&daemon, "received SIGUSR2: ignored", 1);
    daemon.assert_alive();
    assert_eq!(status(&daemon, &redis)["ok"], json!(true));
    daemon.sigterm();
    assert_exits_cleanly(&mut daemon);
}

#[test]
fn systemd_notify_ready_after_the_first_cycle_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let recv_all = |for_what: &str, until: &str| -> Vec<String> {
        let mut got = Vec::new();
        wait_until(Duration::from_secs(60), for_what, || {
            let mut buf = [0u8; 512];
            if let Ok(n) = socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            got.iter().any(|m| m.contains(until)).then_some(())
        });
        got
    };

    let mut setup = example_setup(&redis);
    setup.env.push(("NOTIFY_SOCKET".to_string(), socket_path.display().to_string()));
    let mut daemon = Daemon::start(&setup);
    let first = recv_all("READY=1", "READY=1");
    // READY comes after the first cycle: its entries are in Redis by then.
    let mut client = redis.client();
    let written = common::daemon::snapshot(&mut client, &daemon.prefix, &common::daemon::ENTRY_NAMES);
    assert!(written.values().all(Option::is_some), "READY=1 before the entries were written: {first:?}");
    assert_eq!(first.len(), 1, "{first:?}");

    daemon.signal("HUP");
    let reload = recv_all("READY=1 after RELOADING=1", "READY=1");
    assert!(reload[0].starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reload:?}");

    daemon.sigterm();
    recv_all("STOPPING=1", "STOPPING=1");
    assert_exits_cleanly(&mut daemon);
}

#[test]
fn systemd_notify_ready_from_a_follower_that_runs_no_cycle() {
    use std::os::unix::net::UnixDatagram;
    let redis = RedisServer::start();
    let mut setup = example_setup(&redis);
    setup.interval(3600);
    setup.set_str("leader", "instance_id", "replica-a");
    let leader = Daemon::start(&setup);
    wait_for_entries(&redis, &leader.prefix, ENTRIES);

    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    setup.set_str("leader", "instance_id", "replica-b");
    setup.env.push(("NOTIFY_SOCKET".to_string(), socket_path.display().to_string()));
    let follower = Daemon::start(&setup);
    // The follower never runs a cycle (the leader's schedule is an hour): it is
    // ready once it knows it follows.
    let ready = wait_until(ENTRIES, "READY=1 from the follower", || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    assert_eq!(ready, "READY=1\nSTATUS=following the leader", "{}", follower.log());
    let role = status_of(&follower, "replica-b");
    assert_eq!(role["replica"]["role"], json!("follower"), "{role}");
    assert_eq!(role["counters"]["cycles"], json!(0), "{role}");
}

/// The `status` reply of the replica `instance` (every replica answers `admin status`).
fn status_of(daemon: &Daemon, instance: &str) -> Value {
    wait_until(Duration::from_secs(30), &format!("a status reply from {instance}"), || {
        let out = daemon.cli(&["admin", "status"], Duration::from_secs(20));
        serde_json::Deserializer::from_str(&out.stdout)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .find(|r| r["replica"]["instance_id"] == json!(instance))
    })
}

#[test]
fn sighup_changes_the_log_level() {
    let redis = RedisServer::start();
    let mut setup = example_setup(&redis);
    setup.set_str("log", "level", "info");
    // The harness sets RUST_LOG=info, which would win over log.level.
    setup.env.push(("RUST_LOG".to_string(), String::new()));
    let mut daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, ENTRIES);
    assert!(!daemon.log().contains(" DEBUG "), "{}", daemon.log());

    // info → debug: the next cycle logs its debug lines.
    setup.set_str("log", "level", "debug");
    rewrite_config(&daemon, &setup.to_toml());
    daemon.signal("HUP");
    wait_log(&daemon, "reload: applied log.level \"info\" → \"debug\"", 1);
    let hydrate = json!({"command": "hydrate"});
    assert_eq!(daemon.admin(&redis, hydrate.clone(), REPLY).expect("no hydrate reply")["ok"], json!(true));
    wait_log(&daemon, "hydrator: cycle starts (admin hydrate)", 1);

    // debug → warn: a cycle and an admin command log nothing at info any more.
    setup.set_str("log", "level", "warn");
    rewrite_config(&daemon, &setup.to_toml());
    daemon.signal("HUP");
    wait_log(&daemon, "reload: applied log.level \"debug\" → \"warn\"", 1);
    let before = daemon.log().len();
    assert_eq!(daemon.admin(&redis, hydrate, REPLY).expect("no hydrate reply")["ok"], json!(true));
    wait_until(Duration::from_secs(20), "the third cycle", || {
        (status(&daemon, &redis)["counters"]["cycles"].as_u64() >= Some(3)).then_some(())
    });
    let after = daemon.log()[before..].to_string();
    assert!(!after.contains(" INFO ") && !after.contains(" DEBUG "), "{after}");
    daemon.assert_alive();
}
