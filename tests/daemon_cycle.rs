//! A hydration cycle end to end: the real daemon against a real Redis and the
//! fake Horde writes the nine entries of SPEC §2 under the reference's keys,
//! with their TTLs, equal to what the reference computes (`expected/`); and
//! `once [--dump DIR]` does one cycle, writes the same entries as files, and
//! exits non-zero when a source fails.

mod common;

use common::compare::differences;
use common::daemon::{
    category_entries, dump_file, run_cli, wait_for_entries, wait_until, Daemon, Setup, DEFAULT_PREFIX,
    ENTRY_NAMES,
};
use common::horde_server::{HordeServer, Mode, Route};
use common::redis_server::{Monitor, RedisServer};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Parity of one entry's JSON with `expected/<dump name>`; panics listing the differences.
fn assert_parity(expected_dir: &Path, name: &str, actual: &[u8]) {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(expected_dir.join(dump_file(name))).unwrap()).unwrap();
    let actual: Value = serde_json::from_slice(actual).unwrap_or_else(|e| {
        panic!("{name}: not JSON ({e}): {}", common::daemon::truncate(&String::from_utf8_lossy(actual), 200))
    });
    let diffs = differences(&expected, &actual);
    assert!(diffs.is_empty(), "{name} differs from {}:\n{}", expected_dir.display(), diffs.join("\n"));
}

/// `file:///abs/dir` (the corpus path may be relative, as `.ci/run` sets it).
fn file_url(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| std::env::current_dir().unwrap().join(dir));
    format!("file://{}", dir.display())
}

#[test]
fn a_cycle_writes_the_nine_entries_with_ttls_equal_to_the_reference() {
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let horde = HordeServer::start(&seed);
    let redis = RedisServer::start();
    let monitor = Monitor::start(&redis);
    let daemon = Daemon::start(&Setup::new(&horde, Some(&redis.url())));
    assert_eq!(daemon.prefix, DEFAULT_PREFIX);

    let entries = wait_for_entries(&redis, DEFAULT_PREFIX, Duration::from_secs(60));
    // MONITOR's copy of the (large) writes may lag behind their effect.
    let seen = wait_until(Duration::from_secs(10), "MONITOR to show the nine writes", || {
        let seen = monitor.seen();
        let writes = seen
            .iter()
            .filter(|m| m.args.len() >= 2 && m.args[0] == "SETEX" && m.args[1].starts_with(DEFAULT_PREFIX))
            .count();
        (writes >= 9).then_some(seen)
    });
    assert_each_category_in_one_transaction(&seen, DEFAULT_PREFIX);
    let mut client = redis.client();
    for name in ENTRY_NAMES {
        let key = daemon.key(name);
        let ttl = client.ttl(&key);
        assert!(ttl > 0 && ttl <= 300, "{key}: TTL {ttl}, expected in (0, 300]");
        assert_parity(&seed.join("expected"), name, &entries[name]);
    }
    // The reference's readers find nothing else under the prefix that looks like an entry.
    let written: Vec<String> = client
        .keys(&format!("{DEFAULT_PREFIX}:*"))
        .into_iter()
        .filter(|k| k.contains(":deletion_risk:") || k.contains(":stats:"))
        .collect();
    assert_eq!(written.len(), 9, "entry-like keys: {written:?}");

    reference_reads(&corpus, &redis.url(), &seed.join("expected"));

    // The Horde API was asked as SPEC §2 says: known models, with a Client-Agent.
    let requests = horde.requests();
    let agent_prefix = format!("horde-hydrator:{}:", env!("CARGO_PKG_VERSION"));
    for route in Route::ALL {
        assert!(requests.iter().any(|r| r.route == route), "{route:?} was never requested");
    }
    assert!(requests.iter().all(|r| r.route != Route::Unknown), "unexpected requests: {requests:?}");
    for r in requests.iter().filter(|r| !r.route.is_reference()) {
        assert!(
            r.query.split('&').any(|kv| kv == "model_state=known"),
            "{} without model_state=known",
            r.path
        );
        let agent = r.client_agent.as_deref().unwrap_or_default();
        assert!(
            agent.starts_with(&agent_prefix),
            "{}: Client-Agent {agent:?}, expected {agent_prefix}<contact>",
            r.path
        );
    }
}

#[test]
fn once_dump_writes_the_reference_entries_for_every_dataset() {
    let Some(corpus) = common::conformance_dir() else { return };
    let datasets = common::datasets(&corpus);
    assert!(datasets.len() >= 2, "expected seed1 and seed2 in {}", corpus.display());
    for dataset in datasets {
        // Offline snapshots (file://), Redis off.
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::with_sources(
            &file_url(&dataset.join("horde")),
            &file_url(&dataset.join("model_reference")),
            None,
        );
        let config = setup.write(dir.path());
        let out = dir.path().join("dump");
        let run = run_cli(&config, &[], &["once", "--dump", out.to_str().unwrap()], Duration::from_secs(120));
        assert!(run.status.success(), "once failed on {}: {}\n{}", dataset.display(), run.stdout, run.stderr);
        for name in ENTRY_NAMES {
            let path = out.join(dump_file(name));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_parity(&dataset.join("expected"), name, &bytes);
        }
        // The summary names the categories it computed.
        for category in ["image_generation", "text_generation"] {
            assert!(run.stdout.contains(category), "summary without {category}:\n{}", run.stdout);
        }
    }
}

/// `--dump` into a directory that already holds a dump: every entry file is
/// replaced by this run's (no half-written or stale entry), files that are not
/// entries are left alone, and an entry this run could not compute is absent
/// rather than left over from the earlier run.
#[test]
fn once_dump_replaces_an_earlier_dump_and_drops_what_it_could_not_compute() {
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dump");
    std::fs::create_dir_all(&out).unwrap();
    // Longer than any entry: the new content must not keep the old tail.
    let stale = format!("{{\"stale\": true}}{}", "x".repeat(4 << 20));
    for name in ENTRY_NAMES {
        std::fs::write(out.join(dump_file(name)), &stale).unwrap();
    }
    std::fs::write(out.join("notes.txt"), b"kept").unwrap();

    let setup =
        Setup::with_sources(&file_url(&seed.join("horde")), &file_url(&seed.join("model_reference")), None);
    let config = setup.write(dir.path());
    let run = run_cli(&config, &[], &["once", "--dump", out.to_str().unwrap()], Duration::from_secs(120));
    assert!(run.status.success(), "once failed: {}\n{}", run.stdout, run.stderr);
    for name in ENTRY_NAMES {
        assert_parity(&seed.join("expected"), name, &std::fs::read(out.join(dump_file(name))).unwrap());
    }
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"kept");
    let hidden: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary files left in the dump: {hidden:?}");

    // The text reference disappears: the text entries cannot be computed.
    let broken = dir.path().join("reference");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(seed.join("model_reference/image_generation.json"), broken.join("image_generation.json"))
        .unwrap();
    let setup = Setup::with_sources(&file_url(&seed.join("horde")), &file_url(&broken), None);
    let config = setup.write(dir.path());
    let run = run_cli(&config, &[], &["once", "--dump", out.to_str().unwrap()], Duration::from_secs(120));
    assert!(!run.status.success(), "once succeeded without the text reference: {}", run.stdout);
    for name in ENTRY_NAMES {
        let path = out.join(dump_file(name));
        if name.contains("image_generation") {
            assert_parity(&seed.join("expected"), name, &std::fs::read(&path).unwrap());
        } else {
            assert!(!path.exists(), "{} left over from the earlier run", path.display());
        }
    }
}

#[test]
fn once_over_http_matches_too() {
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let horde = HordeServer::start(&seed);
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(&horde, None).write(dir.path());
    let out = dir.path().join("dump");
    let run = run_cli(&config, &[], &["once", "--dump", out.to_str().unwrap()], Duration::from_secs(120));
    assert!(run.status.success(), "once failed: {}\n{}", run.stdout, run.stderr);
    for name in ENTRY_NAMES {
        assert_parity(&seed.join("expected"), name, &std::fs::read(out.join(dump_file(name))).unwrap());
    }
}

#[test]
fn once_fails_when_a_source_fails_and_keeps_the_other_category() {
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let horde = HordeServer::start(&seed);
    horde.set_route_mode(Route::StatusText, Mode::Status(500));
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(&horde, None).write(dir.path());
    let out = dir.path().join("dump");
    let run = run_cli(&config, &[], &["once", "--dump", out.to_str().unwrap()], Duration::from_secs(120));
    assert!(!run.status.success(), "once succeeded although the text status answered 500:\n{}", run.stdout);
    let said = format!("{}\n{}", run.stdout, run.stderr).to_lowercase();
    assert!(said.contains("text"), "once does not say which source failed:\n{said}");
    // One category failing does not stop the other; of the failing one only
    // the statistics (which read the model reference alone) are written.
    for name in category_entries("image_generation") {
        let bytes = std::fs::read(out.join(dump_file(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_parity(&seed.join("expected"), name, &bytes);
    }
    for name in category_entries("text_generation") {
        if name.starts_with("stats:") {
            let bytes = std::fs::read(out.join(dump_file(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_parity(&seed.join("expected"), name, &bytes);
        } else {
            assert!(!out.join(dump_file(name)).exists(), "{name} written although its source failed");
        }
    }
}

#[test]
fn once_fails_when_a_snapshot_directory_is_missing() {
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::with_sources(
        &file_url(&seed.join("horde")),
        &file_url(&dir.path().join("no-such-directory")),
        None,
    );
    let config = setup.write(dir.path());
    let run = run_cli(&config, &[], &["once"], Duration::from_secs(60));
    assert!(!run.status.success(), "once succeeded without a model reference:\n{}", run.stdout);
}

/// The reference's own readers parse what the daemon wrote (the issue's
/// done-when check), when the reference's Python environment is installed
/// (`$HORDE_REFERENCE_PYTHON`, else `~/.cache/horde-reference-oracle/bin/python`).
fn reference_reads(corpus: &Path, redis_url: &str, expected: &Path) {
    let Some((python, tools)) = common::reference_python(corpus) else { return };
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&python).args(args).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = run(&[tools.join("reference_read.py").as_os_str(), redis_url.as_ref()]);
    assert!(ok && text.contains("9 parsed, 0 missing"), "reference_read.py: {text}");
    let (ok, text) = run(&[
        tools.join("compare.py").as_os_str(),
        expected.as_os_str(),
        "--redis".as_ref(),
        redis_url.as_ref(),
    ]);
    assert!(ok && text.contains("9 passed, 0 failed"), "compare.py --redis: {text}");
}

/// Each category's entries were written by one fenced-store script: one
/// EVAL of one client, whose SETEX commands Redis runs atomically (MONITOR
/// shows them as the client `lua`, right after the EVAL).
fn assert_each_category_in_one_transaction(seen: &[common::redis_server::Monitored], prefix: &str) {
    for category in ["image_generation", "text_generation"] {
        let keys: Vec<String> = category_entries(category).iter().map(|n| format!("{prefix}:{n}")).collect();
        let writes: Vec<usize> = seen
            .iter()
            .enumerate()
            .filter(|(_, m)| m.args.len() >= 2 && keys.contains(&m.args[1]) && m.args[0].starts_with("SET"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            writes.len(),
            keys.len(),
            "{category}: expected one write per entry, saw {:?}",
            writes.iter().map(|i| &seen[*i]).collect::<Vec<_>>()
        );
        assert!(
            writes.iter().all(|i| seen[*i].client == "lua" && seen[*i].args[0] == "SETEX"),
            "{category}: written outside the store script: {:?}",
            writes.iter().map(|i| &seen[*i]).collect::<Vec<_>>()
        );
        let script = seen[..writes[0]].iter().rposition(|m| m.client != "lua").unwrap();
        let eval = &seen[script];
        assert!(
            eval.args[0] == "EVAL" && eval.args[1].contains("horde-hydrator: fenced store"),
            "{category}: writes not inside the fenced store script: {eval:?}"
        );
        let last = *writes.last().unwrap();
        assert!(
            seen[script + 1..=last].iter().all(|m| m.client == "lua"),
            "{category}: other commands inside the script's run"
        );
    }
}

#[test]
fn readme_quickstart_runs_a_cycle_offline_and_prints_the_table() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/offline.toml");
    let run = run_cli(&config, &[], &["once"], Duration::from_secs(60));
    assert!(run.status.success(), "quickstart failed: {}\n{}", run.stdout, run.stderr);
    for name in ENTRY_NAMES {
        let row = run.stdout.lines().find(|l| l.split_whitespace().next() == Some(name));
        let row = row.unwrap_or_else(|| panic!("no row for {name} in:\n{}", run.stdout));
        // entry, models, at risk, critical, milliseconds: the models column counts something.
        let models: u64 = row.split_whitespace().nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
        assert!(models > 0, "{name}: no models in {row:?}");
    }
}

#[test]
fn fractional_queued_and_jobs_from_the_live_api_are_taken() {
    // The live API sends queued and jobs as floats that may be fractional
    // (SPEC §2); they feed no entry, so the entries stay the reference's.
    let Some(corpus) = common::conformance_dir() else { return };
    let seed = corpus.join("seed1");
    let data = common::horde_server::copy_dataset(&seed);
    for file in ["status_models_image.json", "status_models_text.json"] {
        let path = data.path().join("horde").join(file);
        let mut status = common::horde_server::read_json(&path);
        for entry in status.as_array_mut().unwrap() {
            let queued = entry["queued"].as_f64().unwrap_or(0.0);
            let jobs = entry["jobs"].as_f64().unwrap_or(0.0);
            entry["queued"] = serde_json::json!(queued + 0.5);
            entry["jobs"] = serde_json::json!(jobs + 0.25);
        }
        common::horde_server::write_json(&path, &status);
    }
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    setup.prefix("fractional");
    let _daemon = Daemon::start(&setup);
    let entries = wait_for_entries(&redis, "fractional", Duration::from_secs(60));
    for name in ENTRY_NAMES {
        assert_parity(&seed.join("expected"), name, &entries[name]);
    }
}
