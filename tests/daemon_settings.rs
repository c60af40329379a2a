//! Settings (SPEC §2): environment overrides win over the file, invalid values
//! stop start-up with a message naming the key, secrets never reach the log.

mod common;

use common::daemon::{run_cli, wait_for_entries, wait_until, Daemon, Setup, ENTRY_NAMES};
use common::horde_server::HordeServer;
use common::redis_server::{free_port, RedisServer};
use std::time::Duration;

#[test]
fn environment_overrides_the_file() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start();
    // The file points at a dead Redis and another prefix; the environment fixes both.
    let mut setup = Setup::new(&horde, Some(&format!("redis://127.0.0.1:{}/0", free_port())));
    setup.prefix("from:file");
    setup.env.push(("HORDE_HYDRATOR__REDIS__URL".into(), redis.url()));
    setup.env.push(("HORDE_HYDRATOR__REDIS__KEY_PREFIX".into(), "from:env".into()));
    // The TTLs: one from the file, one from the environment over the file.
    setup.set("cache", "deletion_risk_ttl_seconds", "120");
    setup.set("cache", "statistics_ttl_seconds", "100");
    setup.env.push(("HORDE_HYDRATOR__CACHE__STATISTICS_TTL_SECONDS".into(), "60".into()));
    let daemon = Daemon::start(&setup);
    assert_eq!(daemon.prefix, "from:env");
    wait_for_entries(&redis, "from:env", Duration::from_secs(60));
    let mut client = redis.client();
    assert!(client.keys("from:file:*").is_empty());
    for name in ENTRY_NAMES {
        let ttl = client.ttl(&daemon.key(name));
        let max = if name.starts_with("stats:") { 60 } else { 120 };
        assert!(ttl > max - 30 && ttl <= max, "{name}: TTL {ttl}, expected about {max}");
    }
}

/// Start-up with one bad setting fails, and the message names the key.
fn rejected(section: &str, key: &str, value: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None);
    setup.set(section, key, value);
    let config = setup.write(dir.path());
    let out = run_cli(&config, &[], &["run"], Duration::from_secs(15));
    assert!(!out.status.success(), "[{section}] {key} = {value} was accepted");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains(key), "[{section}] {key} = {value}: the message does not name the key:\n{said}");
}

#[test]
fn invalid_settings_stop_start_up_naming_the_key() {
    rejected("hydration", "interval_seconds", "0");
    rejected("hydration", "interval_seconds", "-5");
    rejected("hydration", "categories", "[\"image_generation\", \"video_generation\"]");
    rejected("horde", "api_url", "\"ftp://example.org/api\"");
    rejected("model_reference", "url", "\"gopher://example.org\"");
    rejected("cache", "statistics_ttl_seconds", "\"soon\"");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[hydration\ninterval_seconds = = 3\n").unwrap();
    let out = run_cli(&config, &[], &["run"], Duration::from_secs(15));
    assert!(!out.status.success(), "unparsable TOML was accepted");
}

#[test]
fn a_redis_password_never_reaches_the_log() {
    let horde = HordeServer::start(common::example_data());
    let redis = RedisServer::start(); // no password set: AUTH fails, the daemon complains
    let url = format!("redis://:hunter2-S3CRET@127.0.0.1:{}/0", redis.port());
    let daemon = Daemon::start(&Setup::new(&horde, Some(&url)));
    wait_until(Duration::from_secs(30), "a cycle", || (horde.total() >= 4).then_some(()));
    wait_until(Duration::from_secs(10), "a complaint about Redis", || {
        daemon.log().to_lowercase().contains("redis").then_some(())
    });
    assert!(!daemon.log().contains("hunter2-S3CRET"), "the Redis password is in the log:\n{}", daemon.log());
}

/// Every form a Redis URL can carry a secret in (issue 12): the daemon
/// connects with it, and neither its log nor the `admin status` reply shows it.
#[test]
fn no_form_of_a_redis_secret_reaches_the_log_or_status() {
    let horde = HordeServer::start(common::example_data());
    type Form<'a> = (&'a [&'a str], &'a dyn Fn(&RedisServer) -> String);
    let forms: [Form; 4] = [
        (&["--requirepass", "SECRET"], &|r| format!("redis://:SECRET@127.0.0.1:{}/0", r.port())),
        // The password in the user slot: redis-rs sends no AUTH, the server needs none.
        (&[], &|r| format!("redis://SECRET@127.0.0.1:{}/0", r.port())),
        (&["--requirepass", "SECRET", "--unixsocket", "{dir}/r.sock"], &|r| {
            format!("redis+unix://{}/r.sock?pass=SECRET", r.dir().display())
        }),
        (&["--requirepass", "SECRET", "--unixsocket", "{dir}/r.sock"], &|r| {
            format!("unix://{}/r.sock?db=0&pass=SECRET", r.dir().display())
        }),
    ];
    for (args, url) in forms {
        let redis = RedisServer::start_with(args);
        let url = url(&redis);
        let daemon = Daemon::start(&Setup::new(&horde, Some(&url)));
        let status = wait_until(Duration::from_secs(30), "a status reply saying Redis is connected", || {
            let out = daemon.cli(&["admin", "status"], Duration::from_secs(10));
            let said = format!("{}{}", out.stdout, out.stderr);
            (out.status.success() && said.contains("\"connected\": true")).then_some(said)
        });
        let log = daemon.log();
        assert_eq!(log.matches("SECRET").count(), 0, "{url}: the secret is in the log:\n{log}");
        assert_eq!(
            status.matches("SECRET").count(),
            0,
            "{url}: the secret is in the status reply:\n{status}"
        );
        assert!(status.contains("***"), "{url}: the status reply shows no redacted URL:\n{status}");
    }
}

/// Every settings case of issue 12: the message names the file position or
/// the environment variable, and `check-config` exits 2.
#[test]
fn settings_errors_name_the_file_position_or_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let shown = config.display().to_string();
    let seconds = "must be a whole number of seconds ≥ 1";
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], String);
    let cases: &[Case] = &[
        (
            "",
            &[("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS", "abc")],
            format!("(environment variable HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS): {seconds} (got \"abc\")"),
        ),
        (
            "",
            &[("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECOND", "60")],
            "environment variable HORDE_HYDRATOR__HYDRATION__INTERVAL_SECOND: not a setting of horde-hydrator; \
             did you mean HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS?"
                .to_string(),
        ),
        ("[hydration]\ninterval_seconds = -5\n", &[], format!("({shown} line 2, column 20): {seconds} (got -5)")),
        ("[hydration]\ninterval_seconds = 0\n", &[], format!("({shown} line 2, column 20): {seconds} (got 0)")),
        ("[cache]\nstatistics_ttl_seconds = 0.4\n", &[], format!("({shown} line 2, column 26): {seconds} (got 0.4)")),
        ("[cache]\nstatistics_ttl_seconds = 1.5\n", &[], format!("({shown} line 2, column 26): {seconds} (got 1.5)")),
        (
            "[cache]\nstatistics_ttl_seconds = \"300\"\n",
            &[],
            format!("({shown} line 2, column 26): {seconds} (got \"300\")"),
        ),
        (
            "[hydration]\ninterval_seconds = 1e9999\n",
            &[],
            format!("{shown} line 2, column 20: not valid TOML: floating-point number overflowed (in `interval_seconds = 1e9999`)"),
        ),
        ("[horde]\ntimeout_secnds = 5\n", &[], "did you mean horde.timeout_seconds?".to_string()),
    ];
    for (toml, env, want) in cases {
        std::fs::write(&config, toml).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let out = run_cli(&config, &env, &["check-config"], Duration::from_secs(15));
        assert_eq!(out.status.code(), Some(2), "{toml:?} {env:?}: {out:?}");
        assert!(out.stderr.contains(want.as_str()), "{toml:?} {env:?}: wanted {want:?} in:\n{}", out.stderr);
    }
}

/// `check-config` prints every value in effect, where it came from, secrets redacted.
#[test]
fn check_config_shows_values_and_their_origins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[redis]\nurl = \"redis://:SECRET@127.0.0.1:1/0\"\n[admin]\ntoken = \"SECRET\"\n",
    )
    .unwrap();
    let env = vec![("HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS".to_string(), "90".to_string())];
    let out = run_cli(&config, &env, &["check-config"], Duration::from_secs(15));
    assert!(out.status.success(), "{out:?}");
    let shown = config.display().to_string();
    for want in [
        "interval_seconds = 90  # environment variable HORDE_HYDRATOR__HYDRATION__INTERVAL_SECONDS"
            .to_string(),
        format!("url = \"redis://:***@127.0.0.1:1/0\"  # {shown} line 2, column 7"),
        format!("token = \"<redacted>\"  # {shown} line 4, column 9"),
        "stale_ttl_seconds = 3600  # default".to_string(),
    ] {
        assert!(out.stdout.contains(&want), "{want:?} not in:\n{}", out.stdout);
    }
    assert_eq!(format!("{}{}", out.stdout, out.stderr).matches("SECRET").count(), 0, "{out:?}");
}

/// `log.format = "json"`: every log line is a JSON object with the time, the
/// level, the target, the message and the fields; `log.level` filters.
#[test]
fn json_logs_for_machines() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::example_data();
    let mut setup = Setup::from_snapshot(&data, None);
    setup.set_str("log", "format", "json");
    let config = setup.write(dir.path());
    // RUST_LOG (set by the harness) would win over log.level: take it away.
    let out = run_cli(&config, &[("RUST_LOG".into(), "".into())], &["once"], Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(!lines.is_empty(), "no log line");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["ts", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"].is_object(), "fields in {line}");
    }
    assert!(lines.iter().any(|l| l.contains("cycle ok")), "{lines:?}");

    setup.set_str("log", "level", "warn");
    let config = setup.write(dir.path());
    let out = run_cli(&config, &[("RUST_LOG".into(), "".into())], &["once"], Duration::from_secs(30));
    assert!(out.status.success() && out.stderr.is_empty(), "log.level = warn still logged:\n{}", out.stderr);
}

#[test]
fn help_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    for args in [&["--help"][..], &["run", "--help"], &["once", "--help"], &["admin", "--help"]] {
        let out = run_cli(&config, &[], args, Duration::from_secs(15));
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        assert!(out.stdout.to_lowercase().contains("usage"), "{args:?} printed no usage: {}", out.stdout);
    }
    let out = run_cli(&config, &[], &["--help"], Duration::from_secs(15));
    for command in ["run", "once", "admin"] {
        assert!(out.stdout.contains(command), "--help does not list {command}: {}", out.stdout);
    }
    let out = run_cli(&config, &[], &["once", "--help"], Duration::from_secs(15));
    assert!(out.stdout.contains("--dump"), "once --help: {}", out.stdout);
}
