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
//! An empty token means "not fenced" (a standalone daemon, `once`): the lease
//! is not checked, the never-backwards rule still applies.
//!
//! The cache calls [`store`], [`rearm`] and [`delete`]; the leader actor
//! calls [`acquire`], [`renew`] and [`release`].

use redis::aio::ConnectionLike;
use std::time::Duration;

/// The names the scripts need, under one key prefix.
#[derive(Debug, Clone)]
pub struct FenceKeys {
    pub lease: String,
    pub written_at: String,
}

impl FenceKeys {
    pub fn new(prefix: &str) -> Self {
        FenceKeys {
            lease: horde_hydrator::leader::lease_key(prefix),
            written_at: horde_hydrator::leader::written_at_key(prefix),
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

// The first comment names each script, so MONITOR and SLOWLOG show which it is.
// The store script declares itself a writer (`#!lua`, no flags): Redis then
// refuses it whole, before it runs, when `maxmemory` is reached (OOM), instead
// of failing at one SETEX with the earlier ones done. The others stay
// flagless, so that under OOM a lease can still be renewed and released, and
// entries deleted and their TTLs re-armed (PEXPIRE and DEL are not refused).
const STORE: &str = "#!lua
-- horde-hydrator: fenced store
-- KEYS: lease, written_at hash, entries…; ARGV: token ('' = unfenced), cycle start ms, then ttl s, value per entry
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local started = tonumber(ARGV[2])
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local at = tonumber(redis.call('HGET', KEYS[2], KEYS[i]))
    if at and at > started then return -1 end
  end
end
for i = 3, #KEYS do
  local j = 3 + (i - 3) * 2
  redis.call('SETEX', KEYS[i], ARGV[j], ARGV[j + 1])
  redis.call('HSET', KEYS[2], KEYS[i], ARGV[2])
end
return 1";

const REARM: &str = "-- horde-hydrator: fenced rearm
-- KEYS: lease, entries…; ARGV: token ('' = unfenced), then ttl ms per entry
-- Answers {0} when the token does not hold the lease, else {1, PEXPIRE's answer per entry}.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local armed = {1}
for i = 2, #KEYS do armed[i] = redis.call('PEXPIRE', KEYS[i], ARGV[i]) end
return armed";

const DELETE: &str = "-- horde-hydrator: fenced delete
-- KEYS: lease, written_at hash, entries…; ARGV: token ('' = unfenced)
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('HDEL', KEYS[2], KEYS[i])
end
return 1";

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

/// The command that stores a category's entries of the cycle that started at
/// `started_ms` (Unix ms), if `token` holds the lease and nothing newer is there.
pub fn store_cmd(keys: &FenceKeys, token: &str, started_ms: u64, items: &[StoreItem<'_>]) -> redis::Cmd {
    let mut names: Vec<&str> = vec![&keys.lease, &keys.written_at];
    names.extend(items.iter().map(|i| i.key));
    let mut cmd = eval(STORE, &names);
    cmd.arg(token).arg(started_ms);
    for i in items {
        cmd.arg(i.ttl_seconds.max(1)).arg(i.value);
    }
    cmd
}

/// The command that re-arms entries' TTLs (ms each), if `token` holds the lease.
pub fn rearm_cmd(keys: &FenceKeys, token: &str, items: &[(&str, u64)]) -> redis::Cmd {
    let mut names: Vec<&str> = vec![&keys.lease];
    names.extend(items.iter().map(|(k, _)| *k));
    let mut cmd = eval(REARM, &names);
    cmd.arg(token);
    for (_, ttl_ms) in items {
        cmd.arg((*ttl_ms).max(1));
    }
    cmd
}

/// The command that deletes entries, if `token` holds the lease.
pub fn delete_cmd(keys: &FenceKeys, token: &str, entries: &[String]) -> redis::Cmd {
    let mut names: Vec<&str> = vec![&keys.lease, &keys.written_at];
    names.extend(entries.iter().map(String::as_str));
    let mut cmd = eval(DELETE, &names);
    cmd.arg(token);
    cmd
}

/// Run a fenced command built above.
pub async fn apply(conn: &mut impl ConnectionLike, cmd: &redis::Cmd) -> redis::RedisResult<Applied> {
    let reply: i64 = cmd.query_async(conn).await?;
    Ok(Applied::from_reply(reply))
}

/// Store (see [`store_cmd`]).
pub async fn store(
    conn: &mut impl ConnectionLike,
    keys: &FenceKeys,
    token: &str,
    started_ms: u64,
    items: &[StoreItem<'_>],
) -> redis::RedisResult<Applied> {
    apply(conn, &store_cmd(keys, token, started_ms, items)).await
}

/// Re-arm TTLs (see [`rearm_cmd`]): `None` when the token does not hold
/// the lease, else per entry 1 (re-armed) or 0 (the key is missing).
pub async fn rearm(
    conn: &mut impl ConnectionLike,
    keys: &FenceKeys,
    token: &str,
    items: &[(&str, u64)],
) -> redis::RedisResult<Option<Vec<i64>>> {
    let reply: Vec<i64> = rearm_cmd(keys, token, items).query_async(conn).await?;
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
    keys: &FenceKeys,
    token: &str,
    entries: &[String],
) -> redis::RedisResult<Applied> {
    apply(conn, &delete_cmd(keys, token, entries)).await
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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `SET lease token NX PX lease`, then read who holds it (us, if a lost reply
/// had already set it) and the entries' newest write.
pub async fn acquire(
    conn: &mut impl ConnectionLike,
    keys: &FenceKeys,
    token: &str,
    lease: Duration,
) -> redis::RedisResult<LeaseView> {
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
    keys: &FenceKeys,
    token: &str,
    lease: Duration,
) -> redis::RedisResult<LeaseView> {
    let mut pipe = redis::pipe();
    let mut renew = eval(RENEW, &[&keys.lease]);
    renew.arg(token).arg(ms(lease));
    pipe.add_command(renew);
    pipe.cmd("GET").arg(&keys.lease);
    let (renewed, holder): (i64, Option<String>) = pipe.query_async(conn).await?;
    Ok(LeaseView { held: renewed == 1, holder, newest_written_ms: None })
}

/// Delete the lease if `token` holds it (a clean stop hands over at once).
pub async fn release(
    conn: &mut impl ConnectionLike,
    keys: &FenceKeys,
    token: &str,
) -> redis::RedisResult<bool> {
    let mut cmd = eval(RELEASE, &[&keys.lease]);
    cmd.arg(token);
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

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    async fn get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
    }

    fn item<'a>(key: &'a str, value: &'a [u8]) -> StoreItem<'a> {
        StoreItem { key, ttl_seconds: 300, value }
    }

    #[test]
    fn only_the_lease_holder_writes_and_a_deposed_one_never_does() {
        let server = server();
        block_on(async {
            let mut conn = connect(&server).await;
            let keys = FenceKeys::new("P");
            let lease = Duration::from_millis(300);
            let a = acquire(&mut conn, &keys, "a/1", lease).await.unwrap();
            assert!(a.held && a.holder.as_deref() == Some("a/1"));
            let b = acquire(&mut conn, &keys, "b/2", lease).await.unwrap();
            assert!(!b.held && b.holder.as_deref() == Some("a/1"), "{b:?}");

            let value: &[u8] = b"{\"computed_at\": 1, \"x\": \"\\u00e9\"}";
            assert_eq!(
                store(&mut conn, &keys, "b/2", 1000, &[item("P:e", value)]).await.unwrap(),
                Applied::NotLeader
            );
            assert_eq!(get(&mut conn, "P:e").await, None, "a follower's write is refused");
            assert_eq!(
                store(&mut conn, &keys, "a/1", 1000, &[item("P:e", value)]).await.unwrap(),
                Applied::Yes
            );
            assert_eq!(get(&mut conn, "P:e").await.as_deref(), Some(value), "the bytes as given");
            let ttl: i64 = redis::cmd("TTL").arg("P:e").query_async(&mut conn).await.unwrap();
            assert!(ttl > 290 && ttl <= 300, "TTL {ttl}");

            // a's lease runs out (a pause, a partition); b takes it.
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(acquire(&mut conn, &keys, "b/2", Duration::from_secs(10)).await.unwrap().held);
            // a's write, in flight all along, is refused; so are its renewal, delete and re-arm.
            let late = store(&mut conn, &keys, "a/1", 5000, &[item("P:e", b"late")]).await.unwrap();
            assert_eq!(late, Applied::NotLeader);
            assert!(!renew(&mut conn, &keys, "a/1", lease).await.unwrap().held);
            assert_eq!(
                delete(&mut conn, &keys, "a/1", &["P:e".to_string()]).await.unwrap(),
                Applied::NotLeader
            );
            assert_eq!(rearm(&mut conn, &keys, "a/1", &[("P:e", 1)]).await.unwrap(), None);
            assert!(!release(&mut conn, &keys, "a/1").await.unwrap(), "a cannot delete b's lease");
            assert_eq!(get(&mut conn, "P:e").await.as_deref(), Some(value));

            assert!(renew(&mut conn, &keys, "b/2", Duration::from_secs(10)).await.unwrap().held);
            assert!(release(&mut conn, &keys, "b/2").await.unwrap());
            assert!(acquire(&mut conn, &keys, "c/3", lease).await.unwrap().held, "released: free at once");
        });
    }

    #[test]
    fn writes_never_go_backwards() {
        let server = server();
        block_on(async {
            let mut conn = connect(&server).await;
            let keys = FenceKeys::new("P");
            let both = |v: &'static [u8]| [item("P:a", v), item("P:b", v)];
            assert_eq!(store(&mut conn, &keys, "", 2000, &both(b"new")).await.unwrap(), Applied::Yes);
            assert_eq!(store(&mut conn, &keys, "", 1999, &both(b"old")).await.unwrap(), Applied::Superseded);
            assert_eq!(get(&mut conn, "P:a").await.as_deref(), Some(&b"new"[..]));
            assert_eq!(get(&mut conn, "P:b").await.as_deref(), Some(&b"new"[..]), "all or nothing");
            assert_eq!(store(&mut conn, &keys, "", 2000, &both(b"same")).await.unwrap(), Applied::Yes);
            let seen = acquire(&mut conn, &keys, "x/1", Duration::from_secs(1)).await.unwrap();
            assert_eq!(seen.newest_written_ms, Some(2000));
            // Deleted entries have nothing to protect: an older cycle may write them again.
            assert_eq!(
                delete(&mut conn, &keys, "", &["P:a".into(), "P:b".into()]).await.unwrap(),
                Applied::Yes
            );
            assert_eq!(get(&mut conn, "P:a").await, None);
            assert_eq!(store(&mut conn, &keys, "", 1500, &both(b"again")).await.unwrap(), Applied::Yes);
            // Re-arm sets the TTL, not the value.
            assert_eq!(
                rearm(&mut conn, &keys, "", &[("P:a", 50_000), ("P:gone", 9)]).await.unwrap(),
                Some(vec![1, 0])
            );
            let pttl: i64 = redis::cmd("PTTL").arg("P:a").query_async(&mut conn).await.unwrap();
            assert!(pttl > 40_000 && pttl <= 50_000, "PTTL {pttl}");
            assert_eq!(get(&mut conn, "P:a").await.as_deref(), Some(&b"again"[..]));
        });
    }
}
