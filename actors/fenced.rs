//! Fenced writes: every Redis command that changes entries or the lease, as
//! Lua scripts run atomically by Redis (the one place that holds them).
//!
//! With replicas, only the holder of the lease `P:hydrator:leader` may write.
//! The check is made *in Redis*, in the same script as the write: a daemon
//! that lost its lease (a partition, a pause, a write already in flight when
//! the lease ran out) can never overwrite the new leader's entries. A store
//! also never goes backwards: it is dropped when an entry it would replace was
//! written by a cycle that started later (the hash `P:hydrator:written_at`
//! keeps each entry's cycle start, in ms; a missing entry has nothing to
//! protect). A category's entries are written by one script — all or none —
//! so a reader never sees two cycles mixed, as with the MULTI/EXEC before.
//!
//! The entries' values are exactly the bytes given (the reference GETs them);
//! they are written with `SETEX`, so TTLs are what they were.
//!
//! Large categories go in pieces ([`store_in_pieces`]): redis-rs copies a
//! command's arguments twice (into the command, then into the connection's
//! write buffer, which keeps that capacity for the connection's life), so one
//! script carrying a category of 150 MB cost 300 MB more at the peak and kept
//! 150 MB between cycles. Above [`ONE_SCRIPT_MAX_BYTES`] the values are staged
//! first, at most [`PIECE_BYTES`] a command, under keys of this store's own
//! (`P:hydrator:staging:<nonce>:<entry key>`, expiring on their own if the
//! daemon dies half-way; `SET` of the first piece, `SETRANGE` of the last,
//! then of those between, so Redis allocates each value once), then moved into place by one script that checks the
//! same lease and never-backwards rule (`RENAME`, `EXPIRE`): readers still see
//! a category all old or all new.
//!
//! An empty token means "not fenced" (a standalone daemon, `once`): the lease
//! is not checked, the never-backwards rule still applies.
//!
//! The cache calls [`store_sized`] (and [`store_cmd`] with [`apply_all`]),
//! [`rearm`] and [`delete`]; the leader actor calls [`acquire`], [`renew`]
//! and [`release`].

use crate::redis_link::{run, Failure};
use redis::aio::ConnectionLike;
use std::time::Duration;

/// A writer under the lease: the scripts' key names and this daemon's
/// token (`""`: unfenced). Every call below takes one.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub keys: &'a FenceKeys,
    pub token: &'a str,
}

/// The names the scripts need, under one key prefix.
#[derive(Debug, Clone)]
pub struct FenceKeys {
    pub lease: String,
    pub written_at: String,
    /// Where [`store_in_pieces`] stages values: `P:hydrator:staging:`.
    pub staging: String,
}

impl FenceKeys {
    pub fn new(prefix: &str) -> Self {
        FenceKeys {
            lease: horde_hydrator::leader::lease_key(prefix),
            written_at: horde_hydrator::leader::written_at_key(prefix),
            staging: format!("{prefix}:hydrator:staging:"),
        }
    }
}

/// What a fenced write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Yes,
    /// The token does not hold the lease: nothing written.
    NotLeader,
    /// Redis holds an entry from a cycle that started later: nothing written.
    Superseded,
}

impl Applied {
    fn from_reply(reply: i64) -> Applied {
        match reply {
            1 => Applied::Yes,
            -1 => Applied::Superseded,
            _ => Applied::NotLeader,
        }
    }
}

// The scripts are put together from the two rules below, each written once.
// The first comment names each script, so MONITOR and SLOWLOG show which it is.
// The store script declares itself a writer (`#!lua`, no flags; it must stay
// the very first line): Redis then refuses it whole, before it runs, when
// `maxmemory` is reached (OOM), instead of failing at one SETEX with the
// earlier ones done. The others stay flagless, so that under OOM a lease can
// still be renewed and released, and entries deleted and their TTLs re-armed
// (PEXPIRE and DEL are not refused).

/// The lease check (Lua): with a token (`ARGV[1]`; `''` = unfenced), only
/// the holder of the lease `KEYS[1]` writes; else the script runs `$refused`.
macro_rules! lease_check {
    ($refused:literal) => {
        concat!("if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then ", $refused, " end\n")
    };
}

/// Never backwards (Lua): for each entry `KEYS[3]` … `KEYS[$last]`, runs
/// `$newer` when it exists and the hash `KEYS[2]` says a cycle that started
/// after `ARGV[2]` (ms) wrote it; `$also` is more of the loop's body.
macro_rules! never_backwards {
    ($last:literal, $newer:literal $(, $also:literal)?) => {
        concat!(
            "local started = tonumber(ARGV[2])\n",
            "for i = 3, ", $last, " do\n",
            "  if redis.call('EXISTS', KEYS[i]) == 1 then\n",
            "    local at = tonumber(redis.call('HGET', KEYS[2], KEYS[i]))\n",
            "    if at and at > started then ", $newer, " end\n",
            "  end\n",
            $($also,)?
            "end\n",
        )
    };
}

/// The start of a store's script (Lua) over the entries `KEYS[3]` …: it
/// declares itself a writer (`#!lua`, the first line), names itself, checks
/// the lease and never goes backwards (answering 0 or -1).
macro_rules! checked_store {
    ($name:literal, $arguments:literal) => {
        concat!(
            "#!lua\n-- horde-hydrator: ",
            $name,
            "\n-- KEYS: lease, written_at hash, entries…; ARGV: token ('' = unfenced), ",
            $arguments,
            "\n",
            lease_check!("return 0"),
            never_backwards!("#KEYS", "return -1"),
        )
    };
}

const STORE: &str = concat!(
    checked_store!("fenced store", "cycle start ms, then ttl s, value per entry"),
    "for i = 3, #KEYS do
  local j = 3 + (i - 3) * 2
  redis.call('SETEX', KEYS[i], ARGV[j], ARGV[j + 1])
  redis.call('HSET', KEYS[2], KEYS[i], ARGV[2])
end
return 1",
);

const REARM: &str = concat!(
    "-- horde-hydrator: fenced rearm
-- KEYS: lease, entries…; ARGV: token ('' = unfenced), then ttl ms per entry
-- Answers {0} when the token does not hold the lease, else {1, PEXPIRE's answer per entry}.\n",
    lease_check!("return {0}"),
    "local armed = {1}
for i = 2, #KEYS do armed[i] = redis.call('PEXPIRE', KEYS[i], ARGV[i]) end
return armed",
);

const DELETE: &str = concat!(
    "-- horde-hydrator: fenced delete
-- KEYS: lease, written_at hash, entries…; ARGV: token ('' = unfenced)\n",
    lease_check!("return 0"),
    "for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('HDEL', KEYS[2], KEYS[i])
end
return 1",
);

// The two halves of a store in pieces. Both declare themselves writers, as
// STORE does: under OOM the check is refused before anything is staged.
const STORE_CHECK: &str = concat!(checked_store!("fenced store check", "cycle start ms"), "return 1");

const STORE_STAGED: &str = concat!(
    "#!lua\n",
    "-- horde-hydrator: fenced store staged
-- KEYS: lease, written_at hash, n entries, then their n staged values; ARGV: token ('' = unfenced), cycle start ms, then ttl s per entry
-- Answers 1 (moved into place), 0 (not the lease holder), -1 (superseded), -2 (a staged value is gone); staged values are deleted unless moved.
local n = (#KEYS - 2) / 2
local function drop_staged() for i = 3 + n, #KEYS do redis.pcall('DEL', KEYS[i]) end end\n",
    lease_check!("drop_staged() return 0"),
    never_backwards!(
        "2 + n",
        "drop_staged() return -1",
        "  if redis.call('EXISTS', KEYS[i + n]) == 0 then drop_staged() return -2 end\n"
    ),
    "for i = 3, 2 + n do
  redis.call('RENAME', KEYS[i + n], KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[i])
  redis.call('HSET', KEYS[2], KEYS[i], ARGV[2])
end
return 1",
);

/// A category whose values together are at most this large is stored by one
/// script ([`store_cmd`]); a larger one in pieces ([`store_in_pieces`]).
pub const ONE_SCRIPT_MAX_BYTES: usize = 4 << 20;
/// The largest piece of a value one staging command carries.
pub const PIECE_BYTES: usize = 1 << 20;
/// How long a staged value lives if the store never finishes (a crash, a
/// lost connection): long enough for a slow upload, short enough not to
/// leave much behind.
const STAGING_TTL_MS: u64 = 600_000;

/// Store a category's entries, as [`store_cmd`] does, by one script when
/// they are small and in pieces ([`store_in_pieces`]) when they are not.
/// `timeout` bounds each command, not the whole store. `still_current` is
/// asked just before the command that makes the entries visible is queued
/// (an invalidation since: dropped as [`Applied::Superseded`]), so that an
/// invalidation's DEL, queued later on the same connection, comes after it.
pub async fn store_sized(
    conn: &mut impl ConnectionLike,
    timeout: Duration,
    batch: &Batch<'_>,
    still_current: impl Fn() -> bool,
) -> Result<Applied, Failure> {
    if batch.items.iter().map(|i| i.value.len()).sum::<usize>() <= ONE_SCRIPT_MAX_BYTES {
        if !still_current() {
            return Ok(Applied::Superseded);
        }
        return run(timeout, store(conn, batch)).await;
    }
    store_in_pieces(conn, timeout, batch, PIECE_BYTES, still_current).await
}

/// Store a category's entries in pieces of at most `piece` bytes: check the
/// lease and the never-backwards rule (a refusal here, e.g. OOM, stages
/// nothing), stage every value (`SET … PX`, then `SETRANGE`), then move them
/// into place by one script that checks both again (and, before it is
/// queued, `still_current`: see [`store_sized`]). What is staged is deleted
/// when the store is refused or fails (or expires if even that fails).
pub async fn store_in_pieces(
    conn: &mut impl ConnectionLike,
    timeout: Duration,
    batch: &Batch<'_>,
    piece: usize,
    still_current: impl Fn() -> bool,
) -> Result<Applied, Failure> {
    let piece = piece.max(1);
    let items = batch.items;
    let checked: i64 = run(timeout, batch.eval(STORE_CHECK, &[]).query_async(conn)).await?;
    if checked != 1 {
        return Ok(Applied::from_reply(checked));
    }
    // A nonce per store: two writers (a deposed leader's store in flight and
    // the new leader's) never append to the same staged value.
    let nonce = format!("{:016x}", rand::random::<u64>());
    let staged: Vec<String> =
        items.iter().map(|i| format!("{}{nonce}:{}", batch.writer.keys.staging, i.key)).collect();
    let result = match stage(conn, timeout, items, &staged, piece).await {
        Ok(()) if !still_current() => Ok(Applied::Superseded),
        Ok(()) => {
            let mut commit = batch.eval(STORE_STAGED, &staged);
            for i in items {
                commit.arg(i.ttl_seconds.max(1));
            }
            // The script drops the staged values whenever it does not move them.
            match run(timeout, commit.query_async::<i64>(conn)).await {
                Ok(-2) => {
                    return Err(Failure::Connection(
                        "a staged value expired before the store finished".to_string(),
                    ))
                }
                Ok(reply) => return Ok(Applied::from_reply(reply)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // Invalidated meanwhile, refused or broken half-way: drop what was staged
    // (best effort; it expires anyway).
    if !matches!(result, Err(Failure::Connection(_))) {
        let _ = run(timeout, redis::cmd("DEL").arg(&staged).query_async::<()>(conn)).await;
    }
    result
}

async fn stage(
    conn: &mut impl ConnectionLike,
    timeout: Duration,
    items: &[StoreItem<'_>],
    staged: &[String],
    piece: usize,
) -> Result<(), Failure> {
    for (item, key) in items.iter().zip(staged) {
        let pieces: Vec<(usize, &[u8])> =
            item.value.chunks(piece).enumerate().map(|(i, p)| (i * piece, p)).collect();
        let first = pieces.first().map_or(&[][..], |(_, p)| *p);
        let mut set = redis::cmd("SET");
        set.arg(key).arg(first).arg("PX").arg(STAGING_TTL_MS);
        run(timeout, set.query_async::<()>(conn)).await?;
        drop(set);
        // The last piece first: Redis sizes the value once (APPENDing piece
        // by piece made it copy the growing value again and again), then
        // the pieces between are written in place.
        let rest = pieces.get(1..).unwrap_or_default();
        for (offset, p) in rest.iter().rev().take(1).chain(rest.iter().take(rest.len().saturating_sub(1))) {
            let mut setrange = redis::cmd("SETRANGE");
            setrange.arg(key).arg(*offset).arg(*p);
            run(timeout, setrange.query_async::<i64>(conn)).await?;
        }
    }
    Ok(())
}

const RENEW: &str = "-- horde-hydrator: lease renew
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

const RELEASE: &str = "-- horde-hydrator: lease release
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// One entry to store: its Redis key, TTL in seconds (at least 1) and value.
pub struct StoreItem<'a> {
    pub key: &'a str,
    pub ttl_seconds: u64,
    pub value: &'a [u8],
}

/// A category's entries of one cycle, to store under the lease.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub writer: Writer<'a>,
    /// When the cycle that computed the entries started (Unix ms).
    pub started_ms: u64,
    pub items: &'a [StoreItem<'a>],
}

impl Batch<'_> {
    /// `EVAL script` over the lease, the `written_at` hash, the entries and
    /// the `more` keys, with the token and the cycle start as its first
    /// arguments.
    fn eval(&self, script: &str, more: &[String]) -> redis::Cmd {
        let keys = self.writer.keys;
        let mut names: Vec<&str> = vec![&keys.lease, &keys.written_at];
        names.extend(self.items.iter().map(|i| i.key));
        names.extend(more.iter().map(String::as_str));
        let mut cmd = eval(script, &names);
        cmd.arg(self.writer.token).arg(self.started_ms);
        cmd
    }
}

/// The command that stores a batch if its token holds the lease and Redis
/// holds nothing of a cycle that started later.
pub fn store_cmd(batch: &Batch<'_>) -> redis::Cmd {
    let mut cmd = batch.eval(STORE, &[]);
    for i in batch.items {
        cmd.arg(i.ttl_seconds.max(1)).arg(i.value);
    }
    cmd
}

/// The command that re-arms entries' TTLs (ms each), if the token holds the lease.
pub fn rearm_cmd(writer: Writer<'_>, items: &[(&str, u64)]) -> redis::Cmd {
    let mut names: Vec<&str> = vec![&writer.keys.lease];
    names.extend(items.iter().map(|(k, _)| *k));
    let mut cmd = eval(REARM, &names);
    cmd.arg(writer.token);
    for (_, ttl_ms) in items {
        cmd.arg((*ttl_ms).max(1));
    }
    cmd
}

/// The command that deletes entries, if the token holds the lease.
pub fn delete_cmd(writer: Writer<'_>, entries: &[String]) -> redis::Cmd {
    let mut names: Vec<&str> = vec![&writer.keys.lease, &writer.keys.written_at];
    names.extend(entries.iter().map(String::as_str));
    let mut cmd = eval(DELETE, &names);
    cmd.arg(writer.token);
    cmd
}

/// Run a fenced command built above.
pub async fn apply(conn: &mut impl ConnectionLike, cmd: &redis::Cmd) -> redis::RedisResult<Applied> {
    let reply: i64 = cmd.query_async(conn).await?;
    Ok(Applied::from_reply(reply))
}

/// Store (see [`store_cmd`]).
pub async fn store(conn: &mut impl ConnectionLike, batch: &Batch<'_>) -> redis::RedisResult<Applied> {
    apply(conn, &store_cmd(batch)).await
}

/// Re-arm TTLs (see [`rearm_cmd`]): `None` when the token does not hold
/// the lease, else per entry 1 (re-armed) or 0 (the key is missing).
pub async fn rearm(
    conn: &mut impl ConnectionLike,
    writer: Writer<'_>,
    items: &[(&str, u64)],
) -> redis::RedisResult<Option<Vec<i64>>> {
    let reply: Vec<i64> = rearm_cmd(writer, items).query_async(conn).await?;
    Ok(match reply.split_first() {
        Some((1, armed)) => Some(armed.to_vec()),
        _ => None,
    })
}

/// Run several fenced commands (built above) in one pipeline, queued at
/// once: what each did.
pub async fn apply_all(
    conn: &mut impl ConnectionLike,
    cmds: Vec<redis::Cmd>,
) -> redis::RedisResult<Vec<Applied>> {
    let mut pipe = redis::pipe();
    for c in cmds {
        pipe.add_command(c);
    }
    let replies: Vec<i64> = pipe.query_async(conn).await?;
    Ok(replies.into_iter().map(Applied::from_reply).collect())
}

/// Delete (see [`delete_cmd`]).
pub async fn delete(
    conn: &mut impl ConnectionLike,
    writer: Writer<'_>,
    entries: &[String],
) -> redis::RedisResult<Applied> {
    apply(conn, &delete_cmd(writer, entries)).await
}

// ---------------------------------------------------------------- the lease

/// What a lease call saw: whether we hold it, who does, and the newest cycle
/// start of the entries in Redis (for a new leader's first cycle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub held: bool,
    pub holder: Option<String>,
    pub newest_written_ms: Option<u64>,
}

/// A duration in whole milliseconds, as `PX` and `PEXPIRE` take them.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `SET lease token NX PX lease`, then read who holds it (us, if a lost reply
/// had already set it) and the entries' newest write.
pub async fn acquire(
    conn: &mut impl ConnectionLike,
    writer: Writer<'_>,
    lease: Duration,
) -> redis::RedisResult<LeaseView> {
    let Writer { keys, token } = writer;
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(&keys.lease).arg(token).arg("NX").arg("PX").arg(ms(lease)).ignore();
    pipe.cmd("GET").arg(&keys.lease);
    pipe.cmd("HVALS").arg(&keys.written_at);
    let (holder, written): (Option<String>, Vec<String>) = pipe.query_async(conn).await?;
    Ok(LeaseView {
        held: holder.as_deref() == Some(token),
        holder,
        newest_written_ms: written.iter().filter_map(|v| v.parse().ok()).max(),
    })
}

/// Extend the lease by `lease` from now if `token` still holds it.
pub async fn renew(
    conn: &mut impl ConnectionLike,
    writer: Writer<'_>,
    lease: Duration,
) -> redis::RedisResult<LeaseView> {
    let mut pipe = redis::pipe();
    let mut renew = eval(RENEW, &[&writer.keys.lease]);
    renew.arg(writer.token).arg(ms(lease));
    pipe.add_command(renew);
    pipe.cmd("GET").arg(&writer.keys.lease);
    let (renewed, holder): (i64, Option<String>) = pipe.query_async(conn).await?;
    Ok(LeaseView { held: renewed == 1, holder, newest_written_ms: None })
}

/// Delete the lease if `token` holds it (a clean stop hands over at once).
pub async fn release(conn: &mut impl ConnectionLike, writer: Writer<'_>) -> redis::RedisResult<bool> {
    let mut cmd = eval(RELEASE, &[&writer.keys.lease]);
    cmd.arg(writer.token);
    let released: i64 = cmd.query_async(conn).await?;
    Ok(released == 1)
}

#[cfg(test)]
mod tests {
    //! The scripts against a real `redis-server` (on the `PATH`, as for the
    //! daemon tests), one per test on a free port.
    use super::*;
    use std::process::{Child, Command, Stdio};

    struct Server(Child, u16);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn server() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        Server(child, port)
    }

    async fn connect(server: &Server) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.1)).unwrap();
        for _ in 0..200 {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {} did not answer", server.1);
    }

    /// Run `test` against a `redis-server` of its own, with a connection
    /// and the fence's keys under the prefix `P`.
    fn against_redis<T: std::future::Future<Output = ()>>(
        test: impl FnOnce(redis::aio::MultiplexedConnection, FenceKeys) -> T,
    ) {
        let server = server();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { test(connect(&server).await, FenceKeys::new("P")).await });
    }

    async fn get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
    }

    fn batch<'a>(
        keys: &'a FenceKeys,
        token: &'a str,
        started_ms: u64,
        items: &'a [StoreItem<'a>],
    ) -> Batch<'a> {
        Batch { writer: Writer { keys, token }, started_ms, items }
    }

    fn writer<'a>(keys: &'a FenceKeys, token: &'a str) -> Writer<'a> {
        Writer { keys, token }
    }

    fn item<'a>(key: &'a str, value: &'a [u8]) -> StoreItem<'a> {
        StoreItem { key, ttl_seconds: 300, value }
    }

    #[test]
    fn the_writers_declare_themselves_first_and_every_script_names_itself() {
        for (script, name) in [(STORE, "store"), (STORE_CHECK, "store check"), (STORE_STAGED, "store staged")]
        {
            let head = format!("#!lua\n-- horde-hydrator: fenced {name}\n");
            assert!(script.starts_with(&head), "{script}");
        }
        for (script, name) in [(REARM, "rearm"), (DELETE, "delete")] {
            assert!(script.starts_with(&format!("-- horde-hydrator: fenced {name}\n")), "{script}");
        }
        for script in [STORE, STORE_CHECK, STORE_STAGED, REARM, DELETE] {
            assert_eq!(script.matches("redis.call('GET', KEYS[1]) ~= ARGV[1]").count(), 1, "{script}");
        }
    }

    #[test]
    fn only_the_lease_holder_writes_and_a_deposed_one_never_does() {
        against_redis(|mut conn, keys| async move {
            let lease = Duration::from_millis(300);
            let a = acquire(&mut conn, writer(&keys, "a/1"), lease).await.unwrap();
            assert!(a.held && a.holder.as_deref() == Some("a/1"));
            let b = acquire(&mut conn, writer(&keys, "b/2"), lease).await.unwrap();
            assert!(!b.held && b.holder.as_deref() == Some("a/1"), "{b:?}");

            let value: &[u8] = b"{\"computed_at\": 1, \"x\": \"\\u00e9\"}";
            assert_eq!(
                store(&mut conn, &batch(&keys, "b/2", 1000, &[item("P:e", value)])).await.unwrap(),
                Applied::NotLeader
            );
            assert_eq!(get(&mut conn, "P:e").await, None, "a follower's write is refused");
            assert_eq!(
                store(&mut conn, &batch(&keys, "a/1", 1000, &[item("P:e", value)])).await.unwrap(),
                Applied::Yes
            );
            assert_eq!(get(&mut conn, "P:e").await.as_deref(), Some(value), "the bytes as given");
            let ttl: i64 = redis::cmd("TTL").arg("P:e").query_async(&mut conn).await.unwrap();
            assert!(ttl > 290 && ttl <= 300, "TTL {ttl}");

            // a's lease runs out (a pause, a partition); b takes it.
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(acquire(&mut conn, writer(&keys, "b/2"), Duration::from_secs(10)).await.unwrap().held);
            // a's write, in flight all along, is refused; so are its renewal, delete and re-arm.
            let late = store(&mut conn, &batch(&keys, "a/1", 5000, &[item("P:e", b"late")])).await.unwrap();
            assert_eq!(late, Applied::NotLeader);
            assert!(!renew(&mut conn, writer(&keys, "a/1"), lease).await.unwrap().held);
            assert_eq!(
                delete(&mut conn, writer(&keys, "a/1"), &["P:e".to_string()]).await.unwrap(),
                Applied::NotLeader
            );
            assert_eq!(rearm(&mut conn, writer(&keys, "a/1"), &[("P:e", 1)]).await.unwrap(), None);
            assert!(!release(&mut conn, writer(&keys, "a/1")).await.unwrap(), "a cannot delete b's lease");
            assert_eq!(get(&mut conn, "P:e").await.as_deref(), Some(value));

            assert!(renew(&mut conn, writer(&keys, "b/2"), Duration::from_secs(10)).await.unwrap().held);
            assert!(release(&mut conn, writer(&keys, "b/2")).await.unwrap());
            assert!(
                acquire(&mut conn, writer(&keys, "c/3"), lease).await.unwrap().held,
                "released: free at once"
            );
        });
    }

    #[test]
    fn writes_never_go_backwards() {
        against_redis(|mut conn, keys| async move {
            let both = |v: &'static [u8]| [item("P:a", v), item("P:b", v)];
            assert_eq!(store(&mut conn, &batch(&keys, "", 2000, &both(b"new"))).await.unwrap(), Applied::Yes);
            assert_eq!(
                store(&mut conn, &batch(&keys, "", 1999, &both(b"old"))).await.unwrap(),
                Applied::Superseded
            );
            assert_eq!(get(&mut conn, "P:a").await.as_deref(), Some(&b"new"[..]));
            assert_eq!(get(&mut conn, "P:b").await.as_deref(), Some(&b"new"[..]), "all or nothing");
            assert_eq!(
                store(&mut conn, &batch(&keys, "", 2000, &both(b"same"))).await.unwrap(),
                Applied::Yes
            );
            let seen = acquire(&mut conn, writer(&keys, "x/1"), Duration::from_secs(1)).await.unwrap();
            assert_eq!(seen.newest_written_ms, Some(2000));
            // Deleted entries have nothing to protect: an older cycle may write them again.
            assert_eq!(
                delete(&mut conn, writer(&keys, ""), &["P:a".into(), "P:b".into()]).await.unwrap(),
                Applied::Yes
            );
            assert_eq!(get(&mut conn, "P:a").await, None);
            assert_eq!(
                store(&mut conn, &batch(&keys, "", 1500, &both(b"again"))).await.unwrap(),
                Applied::Yes
            );
            // Re-arm sets the TTL, not the value.
            assert_eq!(
                rearm(&mut conn, writer(&keys, ""), &[("P:a", 50_000), ("P:gone", 9)]).await.unwrap(),
                Some(vec![1, 0])
            );
            let pttl: i64 = redis::cmd("PTTL").arg("P:a").query_async(&mut conn).await.unwrap();
            assert!(pttl > 40_000 && pttl <= 50_000, "PTTL {pttl}");
            assert_eq!(get(&mut conn, "P:a").await.as_deref(), Some(&b"again"[..]));
        });
    }

    async fn config_set(conn: &mut redis::aio::MultiplexedConnection, name: &str, value: &str) {
        redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query_async::<()>(conn).await.unwrap();
    }

    async fn staged_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        redis::cmd("KEYS").arg("P:hydrator:staging:*").query_async(conn).await.unwrap()
    }

    #[test]
    fn a_store_in_pieces_writes_the_same_bytes_and_follows_the_same_rules() {
        against_redis(|mut conn, keys| async move {
            let t = Duration::from_secs(5);
            assert!(acquire(&mut conn, writer(&keys, "a/1"), Duration::from_secs(10)).await.unwrap().held);
            // 7-byte pieces: values of 0, 5, 7 and 100 bytes, one split inside a UTF-8 character.
            let long: Vec<u8> = "{\"models\": [\"\u{e9}t\u{e9}\"], \"x\": 1}".repeat(3).into_bytes();
            let values: [&[u8]; 4] = [b"", b"short", b"exactly", &long];
            let names = ["P:e0", "P:e1", "P:e2", "P:e3"];
            let items: Vec<StoreItem<'_>> = names
                .iter()
                .zip(values)
                .map(|(k, v)| StoreItem { key: k, ttl_seconds: 120, value: v })
                .collect();
            let applied =
                store_in_pieces(&mut conn, t, &batch(&keys, "a/1", 1000, &items), 7, || true).await.unwrap();
            assert_eq!(applied, Applied::Yes);
            for (k, v) in names.iter().zip(values) {
                assert_eq!(get(&mut conn, k).await.as_deref(), Some(v), "{k}: the bytes as given");
                let ttl: i64 = redis::cmd("TTL").arg(*k).query_async(&mut conn).await.unwrap();
                assert!(ttl > 110 && ttl <= 120, "{k}: TTL {ttl}");
            }
            assert_eq!(staged_keys(&mut conn).await, Vec::<String>::new(), "everything staged was moved");
            let at: Option<String> =
                redis::cmd("HGET").arg(&keys.written_at).arg("P:e3").query_async(&mut conn).await.unwrap();
            assert_eq!(at.as_deref(), Some("1000"));

            // Not the lease holder, or an older cycle: nothing changes, nothing is left staged.
            let other: Vec<StoreItem<'_>> =
                names.iter().map(|k| StoreItem { key: k, ttl_seconds: 120, value: b"other value" }).collect();
            let refused =
                store_in_pieces(&mut conn, t, &batch(&keys, "b/2", 2000, &other), 7, || true).await.unwrap();
            assert_eq!(refused, Applied::NotLeader);
            let older =
                store_in_pieces(&mut conn, t, &batch(&keys, "a/1", 999, &other), 7, || true).await.unwrap();
            assert_eq!(older, Applied::Superseded);
            // An invalidation while the values were staged: dropped before they become visible.
            let invalidated =
                store_in_pieces(&mut conn, t, &batch(&keys, "a/1", 2000, &other), 7, || false).await.unwrap();
            assert_eq!(invalidated, Applied::Superseded);
            assert_eq!(get(&mut conn, "P:e3").await.as_deref(), Some(&long[..]));
            assert_eq!(staged_keys(&mut conn).await, Vec::<String>::new());

            // Out of memory: refused before anything is staged, the entries as they were.
            config_set(&mut conn, "maxmemory-policy", "noeviction").await;
            config_set(&mut conn, "maxmemory", "1").await;
            let oom = store_in_pieces(&mut conn, t, &batch(&keys, "a/1", 3000, &other), 7, || true).await;
            assert!(matches!(oom, Err(Failure::Refused { .. })), "{oom:?}");
            config_set(&mut conn, "maxmemory", "0").await;
            assert_eq!(staged_keys(&mut conn).await, Vec::<String>::new());
            assert_eq!(get(&mut conn, "P:e1").await.as_deref(), Some(&b"short"[..]));

            // store_sized: small categories by one script, as before; the result is the same.
            let sized = store_sized(&mut conn, t, &batch(&keys, "a/1", 3000, &other), || true).await.unwrap();
            assert_eq!(sized, Applied::Yes);
            assert_eq!(get(&mut conn, "P:e0").await.as_deref(), Some(&b"other value"[..]));
        });
    }
}
