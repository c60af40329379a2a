//! The Redis command connection the actors share the code of: one
//! [`CommandLink`] per user (the cache's command connection, the admin
//! replies' publisher), [`open`], which opens and checks one connection (the
//! links, and the leader actor's lease connection), and [`classify`], which
//! tells a broken link from an error reply.
//!
//! Why not redis-rs's `ConnectionManager`: it reconnects when the socket is
//! closed, not when a command goes unanswered. Behind a NAT or load balancer
//! that silently dropped the flow (a half-open connection: the socket stays
//! open, nothing arrives), every command then times out forever while Redis
//! itself is healthy. A [`CommandLink`] owns its `MultiplexedConnection` in an
//! `Option` instead: any connection-level failure ([`Failure::Connection`]:
//! an I/O error, a closed socket, or no answer within the socket timeout)
//! makes the owner call [`CommandLink::drop_connection`], and the next
//! [`CommandLink::connect`] opens a new one (after a backoff of 100 ms
//! doubling to at most 5 s while attempts keep failing).
//!
//! An error reply ([`Failure::Refused`]: `OOM`, `NOPERM`, `READONLY`,
//! `MISCONF`, `WRONGTYPE`, an oversized value, …) comes from a live server:
//! the connection is kept, and the caller decides what to retry.
//!
//! Each connection carries a generation number, so a late failure of a
//! command sent on an old connection cannot drop its replacement.

use redis::aio::MultiplexedConnection;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// The capped, doubling delay between connection attempts (100 ms … 5 s).
pub fn reconnect_delay(failures: u32) -> Duration {
    crate::horde_fetcher::backoff_delay(failures, Duration::from_millis(100), Duration::from_secs(5), 1.0)
}

/// What an error reply says, as far as the daemon acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalKind {
    /// `OOM`: `maxmemory` reached with a no-eviction policy.
    OutOfMemory,
    /// `NOPERM`: the ACL user may not run the command or touch the key.
    NoPermission,
    /// `READONLY`: a replica (e.g. the old primary after a failover).
    ReadOnly,
    /// `MISCONF`: writes stopped because snapshots fail.
    Misconfigured,
    /// The value is larger than the server accepts (`proto-max-bulk-len`).
    TooLarge,
    /// `WRONGTYPE`: the key holds another type.
    WrongType,
    /// `LOADING`: the server is loading its dataset.
    Loading,
    /// `NOAUTH`/`WRONGPASS`: the server wants other credentials.
    Authentication,
    /// Any other error reply.
    Other,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::OutOfMemory => "out of memory",
            RefusalKind::NoPermission => "no permission",
            RefusalKind::ReadOnly => "read-only replica",
            RefusalKind::Misconfigured => "writes disabled (MISCONF)",
            RefusalKind::TooLarge => "value too large",
            RefusalKind::WrongType => "wrong type",
            RefusalKind::Loading => "loading its dataset",
            RefusalKind::Authentication => "authentication",
            RefusalKind::Other => "error reply",
        }
    }

    /// The kind of an error reply's code (its first word) and text.
    pub fn of(code: &str, detail: &str) -> RefusalKind {
        let detail = detail.to_ascii_lowercase();
        match code {
            "OOM" => RefusalKind::OutOfMemory,
            "NOPERM" => RefusalKind::NoPermission,
            "READONLY" => RefusalKind::ReadOnly,
            "MISCONF" => RefusalKind::Misconfigured,
            "WRONGTYPE" => RefusalKind::WrongType,
            "LOADING" => RefusalKind::Loading,
            "NOAUTH" | "WRONGPASS" => RefusalKind::Authentication,
            // A command inside a script (the fenced writes) that the ACL user may not run.
            _ if detail.contains("can't run this command") => RefusalKind::NoPermission,
            _ if detail.contains("bulk length")
                || detail.contains("maximum allowed size")
                || detail.contains("too large")
                || detail.contains("too big") =>
            {
                RefusalKind::TooLarge
            }
            _ => RefusalKind::Other,
        }
    }
}

/// Why a Redis command failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The link is broken (I/O error, closed, no answer in time): replace it.
    Connection(String),
    /// The server answered with an error: the link is fine.
    Refused { kind: RefusalKind, message: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connection(cause) => f.write_str(cause),
            Failure::Refused { kind, message } => write!(f, "refused ({}): {message}", kind.as_str()),
        }
    }
}

/// Sort a redis-rs error into a broken link or an error reply. A refused
/// transaction (`EXECABORT`) is classified by the error of the command that
/// made it fail.
pub fn classify(error: &redis::RedisError) -> Failure {
    if let Some(errors) = error.clone().into_server_errors() {
        let first = errors.iter().find(|(_, e)| e.code() != "EXECABORT").or_else(|| errors.first());
        if let Some((_, e)) = first {
            let detail = e.details().unwrap_or_default();
            let message = format!("{} {detail}", e.code()).trim().to_string();
            return Failure::Refused { kind: RefusalKind::of(e.code(), detail), message };
        }
    }
    match error.kind() {
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => {
            let code = error.code().unwrap_or("ERR");
            let detail = error.detail().unwrap_or_default();
            Failure::Refused { kind: RefusalKind::of(code, detail), message: error.to_string() }
        }
        _ => Failure::Connection(error.to_string()),
    }
}

/// Run a Redis command with the socket timeout: no answer in time is a
/// connection failure (the link is presumed half-open).
pub async fn run<T>(
    timeout: Duration,
    op: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Failure::Connection(format!("no answer within {} s", timeout.as_secs_f64()))),
    }
}

/// Open a connection through `client` and check it — by `CLIENT SETNAME
/// name` when it has a `name` (for `CLIENT LIST`), else by a PING — all
/// within `timeout`.
pub async fn open(
    client: redis::Client,
    timeout: Duration,
    name: Option<String>,
) -> Result<MultiplexedConnection, Failure> {
    // One timeout for every command, `run`'s (redis-rs's own response
    // timeout, 500 ms by default, is off): one cause in the logs.
    let config =
        redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(None);
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        match &name {
            // Answered like a PING: it checks the connection too.
            Some(name) => redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async::<()>(&mut conn).await?,
            None => redis::cmd("PING").query_async::<()>(&mut conn).await?,
        }
        Ok::<_, redis::RedisError>(conn)
    };
    run(timeout, attempt).await
}

/// A live connection and its generation.
#[derive(Clone)]
pub struct Conn {
    pub conn: MultiplexedConnection,
    pub generation: u64,
}

/// One Redis command connection, replaced whenever it fails (see the module doc).
pub struct CommandLink {
    client: redis::Client,
    timeout: Duration,
    current: Option<Conn>,
    generation: u64,
    connecting: bool,
    /// Connection attempts that failed since the last command that succeeded.
    failures: u32,
    retry_at: Instant,
    /// `CLIENT SETNAME` of every connection it opens (replicas: `leader.rs`).
    name: Option<String>,
}

impl CommandLink {
    /// A link through `client` (built by `redis_client::client`), not connected yet.
    pub fn new(client: redis::Client, timeout: Duration) -> CommandLink {
        CommandLink {
            client,
            timeout,
            current: None,
            generation: 0,
            connecting: false,
            failures: 0,
            retry_at: Instant::now(),
            name: None,
        }
    }

    /// Name every connection (`CLIENT SETNAME`), so `CLIENT LIST` shows whose it is.
    pub fn named(mut self, name: String) -> CommandLink {
        self.name = Some(name);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The live connection, if there is one.
    pub fn current(&self) -> Option<Conn> {
        self.current.clone()
    }

    /// No connection, none being opened, and the backoff has passed.
    pub fn connect_due(&self) -> bool {
        self.current.is_none() && !self.connecting && Instant::now() >= self.retry_at
    }

    /// Open a new connection and check it with a PING, all within the socket
    /// timeout. Hand the result to [`Self::connected`] or [`Self::connect_failed`].
    pub fn connect(&mut self) -> impl Future<Output = Result<MultiplexedConnection, Failure>> + 'static {
        self.connecting = true;
        self.fresh()
    }

    /// A new connection (PING-checked) without touching the link's state;
    /// nothing happens until it is awaited.
    pub fn fresh(&self) -> impl Future<Output = Result<MultiplexedConnection, Failure>> + 'static {
        open(self.client.clone(), self.timeout, self.name.clone())
    }

    /// The connection [`Self::connect`] opened is now the link's.
    pub fn connected(&mut self, conn: MultiplexedConnection) -> Conn {
        self.connecting = false;
        self.generation += 1;
        let c = Conn { conn, generation: self.generation };
        self.current = Some(c.clone());
        c
    }

    pub fn connect_failed(&mut self) {
        self.connecting = false;
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Instant::now() + reconnect_delay(self.failures);
    }

    /// A command on the connection of `generation` failed at the connection
    /// level: drop it (unless it was already replaced). True when dropped.
    pub fn drop_connection(&mut self, generation: u64) -> bool {
        match &self.current {
            Some(c) if c.generation == generation => {
                self.current = None;
                self.retry_at = Instant::now() + reconnect_delay(self.failures);
                self.failures = self.failures.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// Forget the current connection (e.g. it probably shares the fate of
    /// another one that was found dead); the next use opens a new one.
    pub fn forget(&mut self) {
        self.current = None;
    }

    /// A command succeeded: the backoff starts from the bottom again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_is_capped_at_five_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1), Duration::from_millis(200));
        assert_eq!(reconnect_delay(5), Duration::from_millis(3200));
        assert_eq!(reconnect_delay(6), Duration::from_secs(5));
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn error_replies_are_classified_by_code() {
        assert_eq!(RefusalKind::of("OOM", "command not allowed"), RefusalKind::OutOfMemory);
        assert_eq!(RefusalKind::of("NOPERM", "User x has no permissions"), RefusalKind::NoPermission);
        assert_eq!(RefusalKind::of("READONLY", "You can't write"), RefusalKind::ReadOnly);
        assert_eq!(RefusalKind::of("MISCONF", "Redis is configured"), RefusalKind::Misconfigured);
        assert_eq!(RefusalKind::of("WRONGTYPE", "Operation against"), RefusalKind::WrongType);
        assert_eq!(RefusalKind::of("ERR", "Protocol error: invalid bulk length"), RefusalKind::TooLarge);
        assert_eq!(RefusalKind::of("ERR", "string exceeds maximum allowed size"), RefusalKind::TooLarge);
        assert_eq!(RefusalKind::of("ERR", "unknown command"), RefusalKind::Other);
        assert_eq!(
            RefusalKind::of(
                "ERR",
                "The user executing the script can't run this command or subcommand script: 96"
            ),
            RefusalKind::NoPermission
        );
    }

    #[test]
    fn io_errors_are_connection_failures() {
        let e = redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe"));
        assert!(matches!(classify(&e), Failure::Connection(_)));
    }
}
