//! A real `redis-server` for the daemon's integration tests, and a small
//! synchronous client to look at what the daemon wrote.
//!
//! Each [`RedisServer`] is its own process on a free loopback port with its own
//! temporary directory and no persistence, so tests can run side by side. It can
//! be stopped and started again on the same port ([`RedisServer::stop`],
//! [`RedisServer::start_again`]) to play an outage under a running daemon, and it
//! is killed when dropped. `REDIS_SERVER` overrides the binary
//! (default: `redis-server` on `PATH`, else `/usr/bin/redis-server`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// The `redis-server` binary to run.
fn redis_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("redis-server")).find(|p| p.is_file()));
    on_path.flatten().unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"))
}

/// Ports of this process's servers, running or stopped (for a restart), so
/// that no other test of the same binary is handed one of them.
static RESERVED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A loopback port that was free a moment ago and is not reserved by another
/// [`RedisServer`] of this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !RESERVED.lock().unwrap().contains(&port) {
            return port;
        }
    }
}

/// A free port, reserved until [`release`].
fn reserve_port() -> u16 {
    let mut reserved = RESERVED.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !reserved.contains(&port) {
            reserved.push(port);
            return port;
        }
    }
}

fn release(port: u16) {
    RESERVED.lock().unwrap().retain(|p| *p != port);
}

/// One `redis-server` process (or, after [`RedisServer::stop`], the port it
/// will come back on).
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra `redis-server` arguments (e.g. `--requirepass`).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// [`RedisServer::start`] with extra `redis-server` arguments; `{dir}` in
    /// one is replaced by the server's own directory (for `--unixsocket`).
    /// With `--requirepass`, only [`RedisServer::url`]-less clients of your
    /// own can talk to it (the helpers here send no password).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        // A port found free can be taken by someone else before redis binds it:
        // try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let extra = extra.iter().map(|a| a.replace("{dir}", &dir.path().display().to_string())).collect();
            let mut server = RedisServer { port: reserve_port(), dir, child: None, extra };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e, // dropping `server` releases its port
            }
        }
        panic!("redis-server would not start: {last_error}");
    }

    /// Starts the server process on `self.port` and waits for PING.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let child = Command::new(redis_binary())
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e} (install redis-server)", redis_binary().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server on port {} exited with {status}: {log}", self.port));
            }
            let needs_auth = self.extra.iter().any(|a| a == "--requirepass");
            let answered = if needs_auth {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                self.client_once().map(|mut c| c.ping()).unwrap_or(false)
            };
            if answered {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!("redis-server on port {} did not answer PING within {STARTUP_DEADLINE:?}", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own directory (its log, and a `--unixsocket` under `{dir}`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, so clients see the connection drop) and
    /// waits until it is gone. The port stays reserved for [`Self::start_again`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        // The old socket may linger for a moment; redis binds with SO_REUSEADDR,
        // but retry a little anyway.
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("{e}"),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Stops and starts the server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn client_once(&self) -> Option<RedisClient> {
        let client = redis::Client::open(self.url()).ok()?;
        let conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        conn.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(RedisClient { conn })
    }

    /// A new synchronous connection (panics when the server does not answer).
    pub fn client(&self) -> RedisClient {
        self.client_once().unwrap_or_else(|| panic!("cannot connect to {}", self.url()))
    }

    /// Subscribes to `channel`; messages arrive on the returned [`Subscriber`].
    /// Returns once the subscription is active, so a PUBLISH after this call is seen.
    pub fn subscribe(&self, channel: &str) -> Subscriber {
        Subscriber::new(&self.url(), channel)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        release(self.port);
    }
}

/// A synchronous connection with the few commands the tests need.
pub struct RedisClient {
    conn: redis::Connection,
}

impl RedisClient {
    pub fn ping(&mut self) -> bool {
        redis::cmd("PING").query::<String>(&mut self.conn).is_ok_and(|r| r == "PONG")
    }

    /// The value's raw bytes, `None` when the key does not exist.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn).unwrap()
    }

    /// The value parsed as JSON (panics on bad JSON, naming the key).
    pub fn get_json(&mut self, key: &str) -> Option<serde_json::Value> {
        self.get(key).map(|bytes| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key} does not hold JSON: {e}"))
        })
    }

    /// Seconds to live: -2 when the key is missing, -1 when it has no expiry.
    pub fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL").arg(key).query(&mut self.conn).unwrap()
    }

    pub fn set(&mut self, key: &str, value: &[u8]) {
        redis::cmd("SET").arg(key).arg(value).query::<()>(&mut self.conn).unwrap()
    }

    /// Every key matching a glob pattern, sorted.
    pub fn keys(&mut self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut self.conn).unwrap();
        keys.sort();
        keys
    }

    /// Publishes and returns how many subscribers received the message.
    pub fn publish(&mut self, channel: &str, payload: &[u8]) -> i64 {
        redis::cmd("PUBLISH").arg(channel).arg(payload).query(&mut self.conn).unwrap()
    }

    /// `CLIENT LIST` as (address, name) pairs (name empty when unset).
    pub fn client_list(&mut self) -> Vec<(String, String)> {
        let text: String = redis::cmd("CLIENT").arg("LIST").query(&mut self.conn).unwrap();
        text.lines()
            .map(|line| {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                        .unwrap_or("")
                        .to_string()
                };
                (field("addr"), field("name"))
            })
            .collect()
    }

    /// Any command, e.g. `["CONFIG", "SET", "maxmemory", "0"]`; an error reply as text.
    pub fn command(&mut self, args: &[&str]) -> Result<redis::Value, String> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut self.conn).map_err(|e| e.to_string())
    }

    /// How often the server was asked to run `command` (lower case, e.g.
    /// `setex`): calls + rejected calls + failed calls, from INFO commandstats.
    pub fn command_attempts(&mut self, command: &str) -> u64 {
        self.command_stats(command, &["calls", "rejected_calls", "failed_calls"])
    }

    /// How often the server refused or failed `command` (lower case, e.g.
    /// `eval`): rejected + failed calls, from INFO commandstats.
    pub fn command_refusals(&mut self, command: &str) -> u64 {
        self.command_stats(command, &["rejected_calls", "failed_calls"])
    }

    /// The sum of `counters` on `command`'s line of INFO commandstats (0 for
    /// a command never run).
    fn command_stats(&mut self, command: &str, counters: &[&str]) -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut self.conn).unwrap();
        let prefix = format!("cmdstat_{command}:");
        let Some(line) = info.lines().find(|l| l.starts_with(&prefix)) else { return 0 };
        line[prefix.len()..]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| counters.contains(k))
            .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
            .sum()
    }

    /// Number of subscribers of a channel (PUBSUB NUMSUB).
    pub fn subscribers(&mut self, channel: &str) -> i64 {
        let reply: (String, i64) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query(&mut self.conn).unwrap();
        reply.1
    }
}

/// A subscription read by a background thread; messages are queued until read.
pub struct Subscriber {
    rx: mpsc::Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Subscriber {
    fn new(url: &str, channel: &str) -> Subscriber {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (url, channel, stop2) = (url.to_string(), channel.to_string(), stop.clone());
        let thread = thread::spawn(move || {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
            let mut pubsub = conn.as_pubsub();
            pubsub.subscribe(&channel).unwrap();
            pubsub.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            ready_tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                match pubsub.get_message() {
                    Ok(msg) => {
                        if tx.send(msg.get_payload_bytes().to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(_) => return,
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("SUBSCRIBE did not complete");
        Subscriber { rx, stop, thread: Some(thread) }
    }

    /// The next message, or `None` when none arrives within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next message parsed as JSON (`None` on timeout; panics on non-JSON).
    pub fn recv_json(&self, timeout: Duration) -> Option<serde_json::Value> {
        self.recv(timeout).map(|bytes| {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One command as `MONITOR` shows it: the client's address and the first
/// arguments (command name upper-cased, then up to two more).
#[derive(Debug, Clone, PartialEq)]
pub struct Monitored {
    pub client: String,
    pub args: Vec<String>,
    /// The server's time stamp of the command (Unix seconds).
    pub at: f64,
}

/// A `MONITOR` connection recording every command the server runs.
pub struct Monitor {
    seen: Arc<std::sync::Mutex<Vec<Monitored>>>,
    stream: std::net::TcpStream,
    thread: Option<thread::JoinHandle<()>>,
}

/// The first `n` double-quoted tokens of a MONITOR line (escapes kept raw).
fn quoted_tokens(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while out.len() < n {
        if !chars.by_ref().any(|c| c == '"') {
            break;
        }
        let mut tok = String::new();
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, c) => {
                    tok.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => break,
                (false, c) => tok.push(c),
            }
        }
        out.push(tok);
    }
    out
}

impl Monitor {
    /// Records what the server runs from now on (until dropped).
    pub fn start(server: &RedisServer) -> Monitor {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert_eq!(first.trim_end(), "+OK", "MONITOR refused");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let thread = thread::spawn(move || {
            let mut line = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line);
                if let (Some(open), Some(close)) = (text.find('['), text.find(']')) {
                    let client = text[open + 1..close].split_whitespace().last().unwrap_or("").to_string();
                    let at = text[..open].trim().parse().unwrap_or(0.0);
                    let mut args = quoted_tokens(&text[close..], 3);
                    if let Some(cmd) = args.first_mut() {
                        *cmd = cmd.to_uppercase();
                    }
                    seen2.lock().unwrap().push(Monitored { client, args, at });
                }
                line.clear();
            }
        });
        Monitor { seen, stream, thread: Some(thread) }
    }

    /// What has been recorded so far.
    pub fn seen(&self) -> Vec<Monitored> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
