//! The reference's own processes around the daemon (issue 10's done-when
//! check): its web service in PRIMARY mode serves the model reference to the
//! daemon over HTTP, a writer adds models through the reference's own write
//! path (`backend.update_model`: file, PUBLISH, DELs), and a reference worker
//! whose listener is busy DELs the category's keys up to 1.5 s late. Ten
//! writes; 10 s after each, every entry of the written category is in Redis
//! and names the new model, and the other category's entries are unchanged
//! (tests/reference/late_del_writes.py checks and reports each write).
//!
//! Needs the reference's venv (`$HORDE_REFERENCE_PYTHON`, else
//! `~/.cache/horde-reference-oracle/bin/python`, made by
//! `../shared/tools/oracle.sh`) and `../shared/tools/reference_service.sh`;
//! it takes about two minutes. So it is ignored by default and run with
//! `cargo test --test daemon_reference -- --ignored`, and then it **fails**
//! (it does not skip) when either is missing.

mod common;

use common::daemon::{wait_for_entries, wait_subscribed, wait_until, Daemon, Setup};
use common::horde_server::copy_dataset;
use common::redis_server::{free_port, RedisServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn reference_python() -> PathBuf {
    let python = match std::env::var_os("HORDE_REFERENCE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(&std::env::var_os("HOME").expect("HOME is not set"))
            .join(".cache/horde-reference-oracle/bin/python"),
    };
    assert!(
        python.is_file(),
        "the reference's venv is missing ({}): run ../shared/tools/oracle.sh once to make it, or set HORDE_REFERENCE_PYTHON",
        python.display()
    );
    python
}

fn tools() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools");
    assert!(
        dir.join("reference_service.sh").is_file(),
        "{} is missing: this test runs the reference's service with ../shared/tools/reference_service.sh",
        dir.display()
    );
    dir
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the reference's venv and ../shared (about 2 min): cargo test --test daemon_reference -- --ignored"]
fn reference_model_writes_with_a_late_deleting_worker_end_with_every_entry_present_and_current() {
    let python = reference_python();
    let tools = tools();
    let data = copy_dataset(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data"));
    let redis = RedisServer::start();
    let logs = tempfile::tempdir().unwrap();

    // The reference's service, offline, in PRIMARY mode, on our Redis.
    let port = free_port();
    let service_log = logs.path().join("service.log");
    let _service = Killed(
        Command::new("bash")
            .arg(tools.join("reference_service.sh"))
            .arg(data.path())
            .arg(redis.url())
            .arg(port.to_string())
            .env("ORACLE_VENV", python.parent().and_then(Path::parent).unwrap())
            .env("LOGURU_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&service_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let v2 = format!("127.0.0.1:{port}");
    wait_until(Duration::from_secs(120), "the reference's service to listen", || {
        std::net::TcpStream::connect(&v2).ok()
    });
    let log = std::fs::read_to_string(&service_log).unwrap();
    let home = log
        .split("(home ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no home in the service's log:\n{log}"))
        .to_string();

    // The daemon: the model reference from the service, the Horde from the
    // snapshot, the reference's key prefix, no scheduled cycle after the first.
    let horde = format!("file://{}", data.path().join("horde").display());
    let setup = Setup::with_sources(&horde, &format!("http://127.0.0.1:{port}/api"), Some(&redis.url()));
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    wait_subscribed(&redis, &daemon.invalidate_channel(), Duration::from_secs(10));

    // The writer (and its late worker), with the service's environment.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/late_del_writes.py");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(&python)
        .arg(&script)
        .args(["writes", "10", "10", "1.5"])
        .current_dir(Path::new(&home).join("cwd"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("HORDE_MODEL_REFERENCE_REPLICATE_MODE", "PRIMARY")
        .env("HORDE_MODEL_REFERENCE_REDIS__USE_REDIS", "true")
        .env("HORDE_MODEL_REFERENCE_REDIS__URL", redis.url())
        .env("HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX", &daemon.prefix)
        .env("HORDE_MODEL_REFERENCE_CACHE_HYDRATION_ENABLED", "false")
        .env("HORDE_MODEL_REFERENCE_GITHUB_SEED_ENABLED", "false")
        .env("HORDE_MODEL_REFERENCE_PRIMARY_API_URL", format!("{closed}/api"))
        .env("AI_HORDE_URL", format!("{closed}/api/"))
        .env("AIWORKER_CACHE_HOME", &home)
        .env("LOGS_FOLDER", Path::new(&home).join("logs"))
        .env("HTTP_PROXY", &closed)
        .env("HTTPS_PROXY", &closed)
        .env("http_proxy", &closed)
        .env("https_proxy", &closed)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("LOGURU_LEVEL", "WARNING")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{said}");
    assert!(out.status.success() && said.contains("summary: 10 of 10 writes ok"), "{said}");
    assert!(
        daemon.log().contains("after a late DEL"),
        "no late DEL was repaired: the worker did not DEL after the re-hydration, so this run proves nothing"
    );
}
