//! Running the real `horde-hydrator` binary in tests: its config file, the
//! process (`run`, or a one-shot CLI command), its log, signals, and polling.
//!
//! [`Setup`] renders a `config.toml` with the SPEC §2 sections (sources from
//! the fake Horde, Redis from the test server, short intervals, no startup
//! delay); [`Daemon`] runs `horde-hydrator --config FILE run` with
//! `RUST_LOG=info`, its stderr and stdout captured to files the test can search,
//! and kills it when dropped. Signals go through `kill(1)`, so no libc binding
//! is needed. [`wait_until`] polls a condition with a deadline instead of
//! sleeping a fixed time.

use super::horde_server::HordeServer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_horde-hydrator");

/// The reference's default key prefix.
pub const DEFAULT_PREFIX: &str = "horde:model_ref";

/// The nine entries of a cycle (SPEC §2), as the key after `P:`.
pub const ENTRY_NAMES: [&str; 9] = [
    "deletion_risk:image_generation:grouped=false",
    "deletion_risk:image_generation:grouped=true",
    "deletion_risk:text_generation:grouped=false",
    "deletion_risk:text_generation:grouped=true",
    "deletion_risk:text_generation:grouped=false:variations=true",
    "stats:image_generation:grouped=false",
    "stats:image_generation:grouped=true",
    "stats:text_generation:grouped=false",
    "stats:text_generation:grouped=true",
];

/// The entries of one category (`image_generation` or `text_generation`).
pub fn category_entries(category: &str) -> Vec<&'static str> {
    ENTRY_NAMES.iter().copied().filter(|n| n.split(':').nth(1) == Some(category)).collect()
}

/// The Redis key of an entry under `prefix`.
pub fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}:{name}")
}

/// The file `once --dump` writes for an entry (and `expected/` holds).
pub fn dump_file(name: &str) -> String {
    format!("{}.json", name.replace(':', "__"))
}

/// Polls `probe` every 50 ms until it gives a value or `timeout` passes, then
/// panics naming `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The settings a test runs the daemon with, rendered as TOML by [`Setup::write`].
#[derive(Debug, Clone)]
pub struct Setup {
    /// section → key → TOML value literal
    sections: BTreeMap<String, BTreeMap<String, String>>,
    /// Extra environment for the process (e.g. `HORDE_HYDRATOR__…` overrides).
    pub env: Vec<(String, String)>,
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string
}

impl Setup {
    /// Sources from the fake Horde, Redis from `redis_url` (`None`: Redis off),
    /// hourly cycles (so only the first, startup cycle runs unless a test
    /// asks), no startup delay, a 2 s HTTP timeout, the default key prefix.
    pub fn new(horde: &HordeServer, redis_url: Option<&str>) -> Setup {
        Setup::with_sources(&horde.api_url(), &horde.reference_url(), redis_url)
    }

    /// Like [`Setup::new`] with a snapshot directory's `horde/` and
    /// `model_reference/` as `file://` sources.
    pub fn from_snapshot(dir: &Path, redis_url: Option<&str>) -> Setup {
        let url = |sub: &str| format!("file://{}", dir.join(sub).display());
        Setup::with_sources(&url("horde"), &url("model_reference"), redis_url)
    }

    /// Like [`Setup::new`] with any source URLs (`file://` snapshots too).
    pub fn with_sources(api_url: &str, reference_url: &str, redis_url: Option<&str>) -> Setup {
        let mut s = Setup { sections: BTreeMap::new(), env: Vec::new() };
        s.set("hydration", "enabled", "true");
        s.set("hydration", "interval_seconds", "3600");
        s.set("hydration", "startup_delay_seconds", "0");
        s.set("horde", "api_url", &toml_string(api_url));
        s.set("horde", "timeout_seconds", "2");
        s.set("model_reference", "url", &toml_string(reference_url));
        // A free port per daemon (tests run in parallel); [`Daemon::http_addr`] reads it from the log.
        s.set("http", "bind", &toml_string("127.0.0.1:0"));
        match redis_url {
            Some(url) => {
                s.set("redis", "enabled", "true");
                s.set("redis", "url", &toml_string(url));
            }
            None => {
                s.set("redis", "enabled", "false");
            }
        }
        s
    }

    /// Sets `[section] key = value` (`value` is a TOML literal: `"text"`, `3`, `true`).
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> &mut Setup {
        self.sections.entry(section.to_string()).or_default().insert(key.to_string(), value.to_string());
        self
    }

    /// Sets a string setting (quoted for TOML).
    pub fn set_str(&mut self, section: &str, key: &str, value: &str) -> &mut Setup {
        self.set(section, key, &toml_string(value))
    }

    pub fn interval(&mut self, seconds: u64) -> &mut Setup {
        self.set("hydration", "interval_seconds", &seconds.to_string())
    }

    pub fn prefix(&mut self, prefix: &str) -> &mut Setup {
        self.set_str("redis", "key_prefix", prefix)
    }

    pub fn admin_token(&mut self, token: &str) -> &mut Setup {
        self.set_str("admin", "token", token)
    }

    /// The key prefix the daemon will use.
    pub fn key_prefix(&self) -> String {
        let from_env =
            self.env.iter().find(|(k, _)| k == "HORDE_HYDRATOR__REDIS__KEY_PREFIX").map(|(_, v)| v.clone());
        let from_file = self.sections.get("redis").and_then(|s| s.get("key_prefix"));
        from_env
            .or_else(|| from_file.map(|v| serde_json::from_str(v).unwrap()))
            .unwrap_or_else(|| DEFAULT_PREFIX.to_string())
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }

    /// Writes `config.toml` into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, self.to_toml()).unwrap();
        path
    }
}

/// A command for the binary with a clean environment: no `HORDE_HYDRATOR__*`
/// from the caller's shell, `RUST_LOG=info`, the setup's own overrides.
fn command(config: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if k.starts_with("HORDE_HYDRATOR__") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info").arg("--config").arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a finished CLI command printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `horde-hydrator --config CONFIG ARGS…` to completion (killed after `timeout`).
pub fn run_cli(config: &Path, env: &[(String, String)], args: &[&str], timeout: Duration) -> CliOutput {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = command(config, env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`horde-hydrator {}` did not finish within {timeout:?}; stderr:\n{}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
    }
}

/// A running `horde-hydrator run`; killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    exit: Option<ExitStatus>,
    dir: tempfile::TempDir,
    pub config: PathBuf,
    pub prefix: String,
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// Writes the setup's config into a new temporary directory and starts `run`.
    pub fn start(setup: &Setup) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = setup.write(dir.path());
        let child = command(&config, &setup.env)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        Daemon {
            child: Some(child),
            pid,
            exit: None,
            dir,
            config,
            prefix: setup.key_prefix(),
            env: setup.env.clone(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The Redis key of an entry under this daemon's prefix.
    pub fn key(&self, name: &str) -> String {
        key(&self.prefix, name)
    }

    /// `P:invalidate`
    pub fn invalidate_channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    /// `P:admin`
    pub fn admin_channel(&self) -> String {
        format!("{}:admin", self.prefix)
    }

    /// `P:admin:reply`
    pub fn reply_channel(&self) -> String {
        format!("{}:admin:reply", self.prefix)
    }

    /// Everything the daemon logged so far (stderr).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("stderr")).unwrap_or_default())
            .into_owned()
    }

    /// The address of the daemon's HTTP server (`IP:port`), from its start-up
    /// log line; waits up to 10 s for it.
    pub fn http_addr(&self) -> String {
        wait_until(Duration::from_secs(10), "the daemon's `http: listening on` log line", || {
            let log = self.log();
            let rest = log.split("http: listening on ").nth(1)?;
            rest.split_whitespace().next().map(str::to_string)
        })
    }

    /// `GET path` on the daemon's HTTP server.
    pub fn http_get(&self, path: &str) -> super::http::HttpReply {
        super::http::request(&self.http_addr(), "GET", path)
    }

    /// Everything the daemon printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("stdout")).unwrap_or_default())
            .into_owned()
    }

    /// Runs a CLI command (`admin status`, …) with this daemon's config.
    pub fn cli(&self, args: &[&str], timeout: Duration) -> CliOutput {
        run_cli(&self.config, &self.env, args, timeout)
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid.to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// The exit status, once the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    self.exit = Some(status);
                    self.child = None;
                }
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs; panics with its log when it has ended.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_exit() {
            panic!("the daemon exited ({status}); its log:\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // On failure, or always with HYDRATOR_TEST_LOG=1, show what the daemon said.
        if thread::panicking() || std::env::var_os("HYDRATOR_TEST_LOG").is_some() {
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- daemon log (last 60 lines) ---\n{tail}\n--- end of daemon log ---");
        }
    }
}

// ---- Looking at what the daemon wrote ----

use super::redis_server::{RedisClient, RedisServer};
use serde_json::Value;

/// The raw values of some entries (`None`: the key is missing), by entry name.
pub fn snapshot(redis: &mut RedisClient, prefix: &str, names: &[&str]) -> BTreeMap<String, Option<Vec<u8>>> {
    names.iter().map(|n| (n.to_string(), redis.get(&key(prefix, n)))).collect()
}

/// Waits until all nine entries exist under `prefix`; returns their values.
pub fn wait_for_entries(redis: &RedisServer, prefix: &str, timeout: Duration) -> BTreeMap<String, Vec<u8>> {
    let mut client = redis.client();
    wait_until(timeout, &format!("the nine entries under {prefix}:"), || {
        let snap = snapshot(&mut client, prefix, &ENTRY_NAMES);
        snap.values().all(Option::is_some).then(|| snap.into_iter().map(|(k, v)| (k, v.unwrap())).collect())
    })
}

/// Waits until somebody (the daemon) subscribes to `channel`.
pub fn wait_subscribed(redis: &RedisServer, channel: &str, timeout: Duration) {
    let mut client = redis.client();
    wait_until(timeout, &format!("a subscriber on {channel}"), || {
        (client.subscribers(channel) > 0).then_some(())
    });
}

/// The `models[].name` of a deletion-risk entry.
pub fn model_names(entry: &Value) -> Vec<String> {
    entry["models"]
        .as_array()
        .unwrap_or_else(|| panic!("entry has no models list: {}", truncate(&entry.to_string(), 300)))
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The first `n` characters of a text, for messages.
pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Daemon {
    /// Publishes an admin command (JSON) and returns the first reply on its
    /// reply channel (`reply_to`, else `P:admin:reply`) whose `command` field is
    /// the command's, or `None` when none comes within `timeout`. Waits for the
    /// daemon's subscription first, so the command is not lost.
    pub fn admin(&self, redis: &RedisServer, command: Value, timeout: Duration) -> Option<Value> {
        let reply_to = command.get("reply_to").and_then(Value::as_str).map(str::to_string);
        let replies = redis.subscribe(&reply_to.unwrap_or_else(|| self.reply_channel()));
        wait_subscribed(redis, &self.admin_channel(), Duration::from_secs(10));
        let name = command.get("command").cloned();
        redis.client().publish(&self.admin_channel(), command.to_string().as_bytes());
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = replies.recv_json(left)?;
            if name.is_none() || reply.get("command") == name.as_ref() {
                return Some(reply);
            }
        }
    }
}
