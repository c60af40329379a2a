//! CacheActor: the entries, in memory and in Redis (SPEC §2 keys, §3 reads).
//!
//! Owns the in-memory entries (always written: the fallback) and the Redis
//! command connection (a [`CommandLink`], `redis_link.rs`). A category's
//! entries from one cycle are written by one fenced-store script (`fenced.rs`), so
//! a reader never sees two cycles mixed. Reads follow the reference's
//! `RedisCache.get`: Redis first, then memory — fresh within the TTL, and
//! while hydration is enabled stale up to `hydration.stale_ttl_seconds`;
//! older memory entries are dropped.
//!
//! The link heals itself. A PING every `redis.health_check_seconds` checks
//! it; a PING or any command that fails at the connection level (an I/O
//! error, or no answer within `redis.socket_timeout_seconds`: a half-open
//! connection) drops the connection, and a new one is opened at once, then
//! with a backoff doubling to at most 5 s. So a silently dropped connection
//! is replaced within health check + timeout. An outage is logged once when
//! it starts (with its cause) and once when it ends; meanwhile writes go to
//! memory only, and deletions that could not reach Redis are remembered. On
//! reconnecting, the memory entries are written back with their remaining
//! TTLs, then those deletions are replayed.
//!
//! An error reply (`OOM`, `NOPERM`, `READONLY`, `MISCONF`, `WRONGTYPE`, a
//! value too large, …) is not an outage: the connection stays, Redis keeps
//! its previous entries (a refused store script changes nothing), the error is
//! counted and logged once per kind per episode, and the refused categories
//! are written again from memory 5 s later, then every 8 s until Redis takes
//! them (or a cycle's write succeeds). A refused DEL is logged and not
//! replayed, and never holds back the writes: the next write replaces the
//! keys anyway.
//!
//! Stale-if-error (RFC 5861's idea, in Redis): while hydration is enabled, an
//! entry stays readable in Redis until `hydration.stale_ttl_seconds` after the
//! data it was computed from was fetched. When a cycle could not refresh it
//! ([`KeepStale`]), and whenever its Redis TTL is about to run out before a
//! cycle rewrote it (a keeper on the tick), its TTL is re-armed — by at most
//! one normal TTL, so entries of a daemon that stopped expire within their
//! normal TTL — and a key found missing is set again from memory. The payload
//! is never changed. Past the stale TTL the entry is dropped, logged once.
//!
//! Late DELs: after a store that re-hydrates an invalidated category
//! (`StoreCategory::guard`), the entries are checked at growing intervals for
//! five seconds (`STRLEN`, compared with the stored length) and any entry a
//! late DEL removed — or a reader's own answer replaced — is set again from
//! memory, unless a newer invalidation came. The Redis commands of both are
//! the small functions after the actor's code.

use crate::fenced::{self, Applied, Batch, FenceKeys, StoreItem, Writer};
use crate::hydrator::unix_now;
use crate::leader::RoleChanged;
use crate::metrics::Metrics;
use crate::read_api::ReadStore;
use crate::redis_link::{self, CommandLink, Conn, Failure, RefusalKind};
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{ComputedEntry, EntryJson};
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::leader::{connection_name, Role};
use horde_hydrator::settings::{CacheSettings, Settings};
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old an entry is compared with its TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    Fresh,
    /// Past its TTL but still served (hydration enabled, within the stale TTL).
    Stale,
    /// Too old to serve; dropped on the next read.
    Expired,
}

/// The reference's rule: fresh when `age < ttl`; stale when hydration is
/// enabled and `age < stale_ttl`; else expired.
pub fn freshness(age: Duration, ttl: Duration, stale_ttl: Duration, hydration_enabled: bool) -> Freshness {
    if age < ttl {
        Freshness::Fresh
    } else if hydration_enabled && age < stale_ttl {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// Every key the reference's `invalidate(category)` deletes: both kinds,
/// both groupings, both variation states (some never exist; DEL ignores them).
pub fn all_variant_keys(category: Category) -> Vec<EntryKey> {
    let mut keys = Vec::with_capacity(8);
    for kind in [EntryKind::DeletionRisk, EntryKind::Statistics] {
        for grouped in [false, true] {
            for variations in [false, true] {
                keys.push(EntryKey { kind, category, grouped, variations });
            }
        }
    }
    keys
}

/// The Redis link's state, as the status reply shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    Disabled,
    /// Not yet known to be up (start-up).
    Connecting,
    Up,
    Down,
}

/// Whether a write reached Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisWrite {
    Written,
    Disabled,
    /// Redis is down or the command failed; memory was still updated.
    Failed(String),
    /// Not written: another replica holds the leader lease (memory was updated).
    NotLeader,
    /// Not written: Redis holds entries of a cycle that started later.
    Superseded,
}

impl RedisWrite {
    fn from_applied(applied: Applied) -> Self {
        match applied {
            Applied::Yes => RedisWrite::Written,
            Applied::NotLeader => RedisWrite::NotLeader,
            Applied::Superseded => RedisWrite::Superseded,
        }
    }
}

/// Which writes this daemon may make in Redis (replicas: see `leader.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fence {
    /// No replicas: write unfenced (never backwards still holds).
    Unfenced,
    /// The leader: writes are applied only while this token holds the lease.
    Holder(String),
    /// A follower: memory only.
    Follower,
}

impl Fence {
    /// The token the scripts check (`""`: unfenced); `None` for a follower.
    fn token(&self) -> Option<&str> {
        match self {
            Fence::Unfenced => Some(""),
            Fence::Holder(t) => Some(t),
            Fence::Follower => None,
        }
    }
}

/// The one text of a write's result: `written`, `disabled`, `failed: <why>`,
/// `not_leader` or `superseded` (replies, status); the alternate form (`{:#}`,
/// the cycle's log line) says in words why the fence dropped a write:
/// `not written: this instance does not hold the lease`, `not written: it
/// holds entries of a later cycle`.
impl fmt::Display for RedisWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisWrite::Written => f.write_str("written"),
            RedisWrite::Disabled => f.write_str("disabled"),
            RedisWrite::Failed(e) => write!(f, "failed: {e}"),
            RedisWrite::NotLeader if f.alternate() => {
                f.write_str("not written: this instance does not hold the lease")
            }
            RedisWrite::NotLeader => f.write_str("not_leader"),
            RedisWrite::Superseded if f.alternate() => {
                f.write_str("not written: it holds entries of a later cycle")
            }
            RedisWrite::Superseded => f.write_str("superseded"),
        }
    }
}

impl serde::Serialize for RedisWrite {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct MemEntry {
    json: EntryJson,
    /// The start of the cycle that computed it (Unix ms; never-backwards).
    started_ms: u64,
    stored_at: Instant,
    stored_unix: f64,
    /// When the oldest input it was computed from was fetched (its stale TTL
    /// runs from here): `stored_at` unless computed from last good Horde data.
    as_of: Instant,
    /// When the key expires in Redis, as last set by this daemon; `None`:
    /// not known to be in Redis (not written, or a write failed).
    redis_until: Option<Instant>,
    /// Since when (Unix time) and why a cycle could not refresh it.
    stale_since: Option<(f64, String)>,
    ttl: Duration,
    models: usize,
    at_risk: Option<usize>,
    critical: Option<usize>,
}

impl MemEntry {
    /// When it becomes too old for stale-if-error.
    fn stale_end(&self, stale_ttl: Duration) -> Instant {
        self.as_of + stale_ttl
    }

    /// Past its TTL and past the stale TTL: no longer kept in Redis.
    fn is_past_stale_ttl(&self, now: Instant, stale_ttl: Duration) -> bool {
        now >= self.stored_at + self.ttl && now >= self.stale_end(stale_ttl)
    }

    /// The TTL to give the key in Redis now: what is left of its normal TTL,
    /// or (stale-if-error, `stale_ok`) up to one normal TTL, never past the
    /// stale TTL. Zero: do not write it.
    fn redis_ttl_left(&self, now: Instant, stale_ttl: Duration, stale_ok: bool) -> Duration {
        let fresh_left = (self.stored_at + self.ttl).saturating_duration_since(now);
        if !stale_ok {
            return fresh_left;
        }
        let allowance_left = self.stale_end(stale_ttl).saturating_duration_since(now);
        fresh_left.max(self.ttl.min(allowance_left))
    }
}

/// How long before its Redis expiry the keeper re-arms an entry that no
/// cycle rewrote: a sixth of the TTL (50 s of the default 300 s, so a healthy
/// 240 s cycle never needs it) — but for short TTLs up to 2 s, so a daemon
/// starved of CPU for a moment is not late — never more than half the TTL.
pub fn rearm_margin(ttl: Duration) -> Duration {
    let half = ttl / 2;
    (ttl / 6)
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
        .max(half.min(Duration::from_secs(2)))
        .min(half)
}

/// When, after a guarded store, the entries are checked for late DELs
/// (milliseconds after the write): dense while the reference's processes
/// are still DELeting (they do within ~0.2 s, a busy one later), then
/// sparser, for five seconds.
pub const GUARD_CHECKS_MS: [u64; 18] =
    [20, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 4000, 5000];

/// One entry as the status reply lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryInfo {
    pub key: String,
    #[serde(rename = "stored_at")]
    pub stored_at_unix: f64,
    pub age_seconds: f64,
    pub ttl_seconds: u64,
    pub freshness: Freshness,
    pub bytes: usize,
    pub models: usize,
    pub at_risk: Option<usize>,
    pub critical: Option<usize>,
    /// Unix time the oldest input of the entry was fetched.
    #[serde(rename = "data_as_of")]
    pub data_as_of_unix: f64,
    /// Unix time since which cycles could not refresh it, and why; an entry
    /// merely older than its TTL is stale since `stored_at + ttl`.
    #[serde(rename = "stale_since")]
    pub stale_since_unix: Option<f64>,
    pub stale_reason: Option<String>,
    /// Seconds until the key expires in Redis as this daemon last set it.
    pub redis_expires_in_seconds: Option<f64>,
    /// Seconds left before it is too old for stale-if-error (dropped then).
    pub stale_allowance_left_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct CacheInfo {
    pub redis: RedisState,
    pub entries: Vec<EntryInfo>,
}

/// Where a read was answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Redis,
    Memory(Freshness),
}

// ---------------------------------------------------------------- messages

/// Store one category's entries of one cycle (memory, then one fenced-store script).
#[derive(Message)]
#[rtype(result = "RedisWrite")]
pub struct StoreCategory {
    pub category: Category,
    pub entries: Vec<ComputedEntry>,
    /// When the cycle that computed them started (Unix ms): an older write never replaces a newer one.
    pub started_ms: u64,
    /// The category's generation when the cycle began it: a store from an
    /// older generation (an invalidation came since) is dropped.
    pub generation: u64,
    /// Re-hydration after an invalidation: watch for late DELs afterwards.
    pub guard: bool,
    /// How old the Horde data of the deletion-risk entries is (zero when
    /// fetched now): their stale TTL runs from when it was fetched.
    pub risk_inputs_age: Duration,
}

/// A cycle could not refresh these entries of a category (their sources
/// failed): keep them readable in Redis within the stale TTL.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeepStale {
    pub category: Category,
    pub kinds: Vec<EntryKind>,
    /// The failed sources, for the status reply.
    pub reason: String,
    pub generation: u64,
}

/// Read one entry as the reference's readers would.
#[derive(Message)]
#[rtype(result = "Option<(EntryJson, ReadSource)>")]
pub struct Get(pub EntryKey);

/// Drop every variant of a category, memory and Redis.
#[derive(Message)]
#[rtype(result = "RedisWrite")]
pub struct Invalidate(pub Category);

/// Drop every entry of every category, memory and Redis.
#[derive(Message)]
#[rtype(result = "RedisWrite")]
pub struct Clear;

#[derive(Message)]
#[rtype(result = "CacheInfo")]
pub struct Info;

/// The cache's part of a settings reload (SIGHUP). The TTLs apply to the
/// entries written from now on; the stale TTL, `hydration_enabled` (which
/// decides whether stale memory entries are served) and the interval (which
/// the keeper bridges) from now on.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub ttls: CacheSettings,
    pub stale_ttl: Duration,
    pub hydration_enabled: bool,
    pub interval: Duration,
}

/// Load every entry from Redis into the read API's store (entries this
/// daemon's own cycle stored are kept): how a daemon without entries of its
/// own — a follower replica — serves the read API. Answers when done (at
/// most the socket timeout).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LoadReadsFromRedis;

/// Wait (up to the socket timeout) until the Redis state is known.
#[derive(Message)]
#[rtype(result = "RedisState")]
pub struct ProbeRedis;

// ---------------------------------------------------------------- the actor

/// How often the actor looks at its link (connect due, PING due, retry due).
const TICK: Duration = Duration::from_millis(250);
/// After Redis refused a write: the first retry, and the longest wait between
/// retries (short enough that entries are written within 10 s of the cause
/// going away, long enough not to hammer a server that keeps refusing).
const REFUSED_FIRST_RETRY: Duration = Duration::from_secs(5);
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(8);

pub struct CacheActor {
    prefix: String,
    ttls: CacheSettings,
    stale_ttl: Duration,
    hydration_enabled: bool,
    /// `hydration.interval_seconds`: the keeper bridges a late cycle only
    /// where the schedule meant to refresh an entry within its TTL.
    interval: Duration,
    redis_url: String,
    health_every: Duration,
    /// The command connection (`None`: Redis disabled).
    link: Option<CommandLink>,
    /// Since when the link is down (`None`: up, or not connected yet).
    outage_since: Option<Instant>,
    last_ping: Instant,
    ping_in_flight: bool,
    memory: BTreeMap<EntryKey, MemEntry>,
    /// Keys whose deletion could not reach Redis; replayed on reconnect.
    pending_deletes: BTreeSet<String>,
    /// Categories whose latest entries Redis refused (an error reply): memory
    /// is newer than Redis. Retried on a timer, not on reconnect.
    refused: BTreeSet<Category>,
    /// The error kinds logged in the current episode of refusals.
    refusal_kinds: BTreeSet<RefusalKind>,
    /// The current episode had a write refused (not only a DEL).
    episode_refused_writes: bool,
    refused_retry_at: Option<Instant>,
    refused_retries: u32,
    metrics: Arc<Metrics>,
    /// The read API's snapshot of the entries (`read_api.rs`): every store,
    /// invalidation and clear is published there.
    reads: ReadStore,
    fence_keys: FenceKeys,
    fence: Fence,
    /// Per category, the latest guarded store (older guards stop).
    guards: BTreeMap<Category, u64>,
}

/// Redis could not be set up at all (a URL the client rejects, an unreadable CA file).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CacheSetupError(#[from] crate::redis_client::RedisClientError);

/// A Redis command of the cache, for its log lines.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A cycle's store script of a category's entries.
    Store(Category),
    /// The write-back of a category's memory entries.
    WriteBack(Category),
    /// A DEL of this many keys.
    Delete(usize),
    /// Stale-if-error: re-arming the TTL of (or setting again) this many keys.
    Rearm(usize),
    /// Late DELs: checking (and repairing) a re-hydrated category's entries.
    Repair(Category),
    Get,
    Ping,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Store(c) => write!(f, "the {c} entries (fenced store)"),
            Op::WriteBack(c) => write!(f, "the write-back of the {c} entries"),
            Op::Delete(n) => write!(f, "DEL of {n} keys"),
            Op::Rearm(n) => write!(f, "the TTL re-arm of {n} entries (stale-if-error)"),
            Op::Repair(c) => write!(f, "the check of the re-hydrated {c} entries"),
            Op::Get => f.write_str("GET"),
            Op::Ping => f.write_str("the health check PING"),
        }
    }
}

/// One step of a write-back, and how it ended.
enum WriteBackStep {
    Delete(Vec<String>, Result<Applied, Failure>),
    Category(Category, Result<(), Failure>),
}

impl CacheActor {
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Result<Self, CacheSetupError> {
        let timeout = settings.redis.socket_timeout;
        let link = if settings.redis.enabled {
            let client = crate::redis_client::client(&settings.redis)?;
            Some(
                CommandLink::new(client, timeout)
                    .named(connection_name(&settings.leader.instance_id, "cache")),
            )
        } else {
            None
        };
        Ok(CacheActor {
            prefix: settings.redis.key_prefix.clone(),
            ttls: settings.cache.clone(),
            stale_ttl: settings.hydration.stale_ttl,
            hydration_enabled: settings.hydration.enabled,
            interval: settings.hydration.interval,
            redis_url: settings.redis.url.redacted(),
            health_every: settings.redis.health_check,
            link,
            outage_since: None,
            last_ping: Instant::now(),
            ping_in_flight: false,
            memory: BTreeMap::new(),
            pending_deletes: BTreeSet::new(),
            refused: BTreeSet::new(),
            refusal_kinds: BTreeSet::new(),
            episode_refused_writes: false,
            refused_retry_at: None,
            refused_retries: 0,
            metrics,
            reads: ReadStore::new(settings),
            fence_keys: FenceKeys::new(&settings.redis.key_prefix),
            // With replicas, nothing is written until the leader actor says this daemon leads.
            fence: if settings.leader.active(&settings.redis) { Fence::Follower } else { Fence::Unfenced },
            guards: BTreeMap::new(),
        })
    }

    /// The read API's view of this cache's entries (take it before `start`).
    pub fn reads(&self) -> ReadStore {
        self.reads.clone()
    }

    fn state(&self) -> RedisState {
        match &self.link {
            None => RedisState::Disabled,
            Some(link) if link.current().is_some() => RedisState::Up,
            Some(_) if self.outage_since.is_some() => RedisState::Down,
            Some(_) => RedisState::Connecting,
        }
    }

    /// The live connection and the socket timeout.
    fn conn(&self) -> Option<(Conn, Duration)> {
        let link = self.link.as_ref()?;
        Some((link.current()?, link.timeout()))
    }

    /// What re-arming or repairing needs: `None` without a connection, or
    /// as a follower (only the leader writes).
    fn redis_fix(&self) -> Option<RedisFix> {
        let (conn, timeout) = self.conn()?;
        Some(RedisFix {
            conn: conn.conn,
            link_generation: conn.generation,
            timeout,
            keys: self.fence_keys.clone(),
            token: self.fence.token()?.to_string(),
            metrics: self.metrics.clone(),
        })
    }

    /// Every [`TICK`]: reconnect when due, health-check the connection, retry refused writes.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some(link) = &self.link else { return };
        if link.connect_due() {
            let fut = self.connect_now();
            ctx.spawn(fut);
            return;
        }
        if link.current().is_none() {
            return;
        }
        if !self.ping_in_flight && self.last_ping.elapsed() >= self.health_every {
            self.ping(ctx);
        }
        if self.refused_retry_at.is_some_and(|at| Instant::now() >= at) {
            self.refused_retry_at = None;
            self.refused_retries += 1;
            self.write_back(true, ctx);
        }
    }

    /// Open a new connection (PING-checked); on success write memory back.
    fn connect_now(&mut self) -> ResponseActFuture<Self, ()> {
        let Some(link) = self.link.as_mut() else { return Box::pin(fut::ready(())) };
        let fut = link.connect();
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            let Some(link) = act.link.as_mut() else { return };
            match res {
                Ok(conn) => {
                    link.connected(conn);
                    act.last_ping = Instant::now();
                    match act.outage_since.take() {
                        Some(since) => {
                            act.metrics.redis_reconnected();
                            log::info!(
                                "redis: reconnected to {} after {:.1} s; writing back memory entries",
                                act.redis_url,
                                since.elapsed().as_secs_f64()
                            )
                        }
                        None => log::info!("redis: connected to {}", act.redis_url),
                    }
                    act.write_back(false, ctx);
                }
                Err(failure) => {
                    link.connect_failed();
                    act.metrics.redis_connection_failure();
                    if act.outage_since.is_none() {
                        act.outage_since = Some(Instant::now());
                        act.metrics.redis_outage();
                        log::warn!(
                            "redis: {} unavailable ({failure}); serving from memory and reconnecting",
                            act.redis_url
                        );
                    } else {
                        log::debug!("redis: reconnecting to {} failed: {failure}", act.redis_url);
                    }
                }
            }
        }))
    }

    /// Note how a command on the connection of `generation` ended. A
    /// connection failure drops the connection (logged once per outage); an
    /// error reply is counted, and logged once per kind per episode.
    fn note<T>(&mut self, generation: u64, result: &Result<T, Failure>, op: Op) {
        match result {
            Ok(_) => {
                if let Some(link) = self.link.as_mut() {
                    link.succeeded();
                }
            }
            Err(Failure::Connection(cause)) => {
                self.metrics.redis_connection_failure();
                let dropped = self.link.as_mut().is_some_and(|l| l.drop_connection(generation));
                if dropped && self.outage_since.is_none() {
                    self.outage_since = Some(Instant::now());
                    self.metrics.redis_outage();
                    log::warn!(
                        "redis: connection to {} lost ({op}: {cause}); serving from memory and reconnecting",
                        self.redis_url
                    );
                }
            }
            Err(Failure::Refused { kind, message }) => {
                self.metrics.redis_refusal(*kind);
                if matches!(op, Op::Store(_) | Op::WriteBack(_)) {
                    self.episode_refused_writes = true;
                }
                if self.refusal_kinds.insert(*kind) {
                    let consequence = match op {
                        Op::Store(_) | Op::WriteBack(_) => format!(
                            "Redis keeps its previous entries, memory serves the new ones; retrying in {} s",
                            self.next_refused_retry().as_secs()
                        ),
                        Op::Delete(_) => "the keys stay in Redis until overwritten or expired".to_string(),
                        Op::Get | Op::Ping => "answered from memory".to_string(),
                        Op::Rearm(_) | Op::Repair(_) => "the entries stay in memory; retried".to_string(),
                    };
                    log::warn!(
                        "redis: {} refused {op} ({}: {message}); the connection is fine: {consequence}",
                        self.redis_url,
                        kind.as_str()
                    );
                }
            }
        }
    }

    fn next_refused_retry(&self) -> Duration {
        if self.refused_retries == 0 {
            REFUSED_FIRST_RETRY
        } else {
            REFUSED_RETRY_MAX
        }
    }

    /// A category's write was refused: retry it later (once per timer, not in a loop).
    fn refused_write(&mut self, category: Category) {
        self.refused.insert(category);
        if self.refused_retry_at.is_none() {
            self.refused_retry_at = Some(Instant::now() + self.next_refused_retry());
        }
    }

    /// A category's entries reached Redis.
    fn written(&mut self, category: Category) {
        self.refused.remove(&category);
        if self.refused.is_empty() {
            self.refused_retry_at = None;
            self.refused_retries = 0;
            self.refusal_kinds.clear();
            if std::mem::take(&mut self.episode_refused_writes) {
                log::info!("redis: {} accepts the entries again", self.redis_url);
            }
        }
    }

    /// Replay deletions that failed, then write the memory entries back with
    /// their remaining TTLs, one fenced store per category (a follower writes
    /// nothing back: see `fenced.rs`). `refused_only`:
    /// only the categories whose last write Redis refused (the retry timer);
    /// else every category except those (after a reconnect), so an entry
    /// Redis refuses never loops through reconnects. A refused DEL does not
    /// stop the writes.
    fn write_back(&mut self, refused_only: bool, ctx: &mut Context<Self>) {
        let Some(token) = self.fence.token().map(str::to_string) else { return };
        let keys = self.fence_keys.clone();
        let Some((conn, timeout)) = self.conn() else { return };
        let deletes: Vec<String> = std::mem::take(&mut self.pending_deletes).into_iter().collect();
        let mut per_category: BTreeMap<Category, Vec<(String, EntryJson, u64, u64)>> = BTreeMap::new();
        let now = Instant::now();
        let stale_ok = self.hydration_enabled;
        for (key, e) in self.memory.iter_mut() {
            if self.refused.contains(&key.category) != refused_only {
                continue;
            }
            // Stale-if-error: an entry past its TTL is written back too, within its stale TTL.
            let left = e.redis_ttl_left(now, self.stale_ttl, stale_ok).as_secs();
            e.redis_until = (left > 0).then(|| now + Duration::from_secs(left));
            if left > 0 {
                per_category.entry(key.category).or_default().push((
                    key.redis_key(&self.prefix),
                    e.json.clone(),
                    left,
                    e.started_ms,
                ));
            }
        }
        if refused_only {
            // Categories with nothing left to write are no longer refused.
            let gone: Vec<Category> =
                self.refused.iter().copied().filter(|c| !per_category.contains_key(c)).collect();
            for c in gone {
                self.written(c);
            }
        }
        if deletes.is_empty() && per_category.is_empty() {
            return;
        }
        let generation = conn.generation;
        // An invalidation from here on drops the category's write-back.
        let metrics = self.metrics.clone();
        let generations: BTreeMap<Category, u64> =
            per_category.keys().map(|c| (*c, metrics.generations.current(*c))).collect();
        let fut = async move {
            let mut conn = conn.conn;
            let mut steps = Vec::new();
            for (category, items) in per_category {
                let category_generation = generations.get(&category).copied().unwrap_or_default();
                let still_current = || metrics.generations.current(category) == category_generation;
                // A category's entries come from one cycle; the oldest start is the safe one.
                let started_ms = items.iter().map(|i| i.3).min().unwrap_or(0);
                let store: Vec<StoreItem<'_>> = items
                    .iter()
                    .map(|(key, json, left, _)| StoreItem { key, ttl_seconds: *left, value: json.as_bytes() })
                    .collect();
                let batch =
                    Batch { writer: Writer { keys: &keys, token: &token }, started_ms, items: &store };
                let res =
                    fenced::store_sized(&mut conn, timeout, &batch, still_current).await.map(|applied| {
                        if applied != Applied::Yes {
                            log::debug!("redis: write-back of {category} not applied: {applied:?}");
                        }
                    });
                let broken = matches!(res, Err(Failure::Connection(_)));
                steps.push(WriteBackStep::Category(category, res));
                if broken {
                    return steps;
                }
            }
            if !deletes.is_empty() {
                let res = redis_link::run(
                    timeout,
                    fenced::delete(&mut conn, Writer { keys: &keys, token: &token }, &deletes),
                )
                .await;
                steps.push(WriteBackStep::Delete(deletes, res));
            }
            steps
        };
        ctx.spawn(fut.into_actor(self).map(move |steps, act, _ctx| {
            for step in steps {
                match step {
                    WriteBackStep::Category(category, res) => {
                        act.note(generation, &res, Op::WriteBack(category));
                        match res {
                            Ok(()) => act.written(category),
                            Err(Failure::Refused { .. }) => act.refused_write(category),
                            Err(Failure::Connection(_)) => {} // written back on reconnect
                        }
                    }
                    WriteBackStep::Delete(keys, res) => {
                        act.note(generation, &res, Op::Delete(keys.len()));
                        if let Err(Failure::Connection(_)) = res {
                            act.pending_deletes.extend(keys);
                        }
                    }
                }
            }
        }));
    }

    /// The health check: a PING on the command connection.
    fn ping(&mut self, ctx: &mut Context<Self>) {
        let Some((conn, timeout)) = self.conn() else { return };
        self.ping_in_flight = true;
        self.last_ping = Instant::now();
        let generation = conn.generation;
        let fut = async move {
            let mut conn = conn.conn;
            redis_link::run(timeout, redis::cmd("PING").query_async::<()>(&mut conn)).await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _ctx| {
            act.ping_in_flight = false;
            act.note(generation, &res, Op::Ping);
        }));
    }

    /// Delete `keys` in Redis (now, or after the outage). A refused DEL is
    /// logged and not replayed: the next write of those keys replaces them.
    fn delete_in_redis(&mut self, keys: Vec<String>) -> ResponseActFuture<Self, RedisWrite> {
        if self.link.is_none() {
            return Box::pin(fut::ready(RedisWrite::Disabled));
        }
        let Some(token) = self.fence.token().map(str::to_string) else {
            // A follower drops its memory copies only; the leader deletes in Redis.
            return Box::pin(fut::ready(RedisWrite::NotLeader));
        };
        let Some((conn, timeout)) = self.conn() else {
            self.pending_deletes.extend(keys);
            return Box::pin(fut::ready(RedisWrite::Failed(
                "redis is down; the deletion will be replayed".into(),
            )));
        };
        let generation = conn.generation;
        let op = Op::Delete(keys.len());
        let pending = keys.clone();
        let fence_keys = self.fence_keys.clone();
        let fut = async move {
            let mut conn = conn.conn;
            redis_link::run(
                timeout,
                fenced::delete(&mut conn, Writer { keys: &fence_keys, token: &token }, &keys),
            )
            .await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            act.note(generation, &res, op);
            match res {
                Ok(applied) => RedisWrite::from_applied(applied),
                Err(Failure::Connection(e)) => {
                    act.pending_deletes.extend(pending);
                    RedisWrite::Failed(e)
                }
                Err(refused) => RedisWrite::Failed(refused.to_string()),
            }
        }))
    }
}

// ---------------------------------------------------------------- stale-if-error, late DELs

impl CacheActor {
    /// A store of `keys` made at `stored_at` reached Redis with the full TTL.
    fn note_written(&mut self, keys: &[EntryKey], stored_at: Instant) {
        for k in keys {
            if let Some(e) = self.memory.get_mut(k).filter(|e| e.stored_at == stored_at) {
                e.redis_until = Some(stored_at + e.ttl);
            }
        }
    }

    /// The keeper: drop entries past the stale TTL (logged once, as they
    /// go), and re-arm those whose Redis TTL runs out before a cycle
    /// rewrote them — when their sources are failing, or when the schedule
    /// meant to rewrite them in time (interval below the TTL) and the cycle
    /// is late (retrying, or skipped behind a slow one). An interval longer
    /// than the TTL never meant to keep entries in Redis: they expire.
    fn keep(&mut self, ctx: &mut Context<Self>) {
        if !self.hydration_enabled || self.link.is_none() {
            return;
        }
        let now = Instant::now();
        let stale_ttl = self.stale_ttl;
        let expired: Vec<EntryKey> = self
            .memory
            .iter()
            .filter(|(_, e)| e.is_past_stale_ttl(now, stale_ttl))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(e) = self.memory.remove(&k) {
                let why = e.stale_since.as_ref().map_or("it was not refreshed", |(_, r)| r.as_str());
                log::warn!(
                    "cache: {} is older than hydration.stale_ttl_seconds ({} s) and {why}; it is no longer kept in Redis and readers miss until a cycle computes it",
                    k.redis_key(&self.prefix),
                    stale_ttl.as_secs()
                );
            }
        }
        if self.conn().is_none() {
            return; // the write-back on reconnect re-arms everything
        }
        let due: Vec<EntryKey> = self
            .memory
            .iter()
            .filter(|(_, e)| e.stale_since.is_some() || self.interval < e.ttl)
            .filter(|(_, e)| {
                e.redis_until.is_some_and(|until| until.saturating_duration_since(now) < rearm_margin(e.ttl))
            })
            .map(|(k, _)| *k)
            .collect();
        if !due.is_empty() {
            self.rearm(due, ctx);
        }
    }

    /// Re-arm the Redis TTL of these memory entries (by at most one TTL,
    /// never past their stale TTL); a key found missing is set again.
    fn rearm(&mut self, keys: Vec<EntryKey>, ctx: &mut Context<Self>) {
        // Replicas: only the leader re-arms (fenced in Redis too).
        let Some(fix) = self.redis_fix() else { return };
        if !self.hydration_enabled {
            return;
        }
        let now = Instant::now();
        let mut items = Vec::new();
        for k in keys {
            let Some(e) = self.memory.get_mut(&k) else { continue };
            let ttl = e.ttl.min(e.stale_end(self.stale_ttl).saturating_duration_since(now));
            if ttl < Duration::from_millis(1) {
                continue;
            }
            e.redis_until = Some(now + ttl);
            items.push(Rearm {
                key: k,
                started_ms: e.started_ms,
                redis_key: k.redis_key(&self.prefix),
                json: e.json.clone(),
                ttl,
                generation: self.metrics.generations.current(k.category),
            });
        }
        if items.is_empty() {
            return;
        }
        let generation = fix.link_generation;
        let op = Op::Rearm(items.len());
        let fut = async move {
            let res = redis_rearm(fix, &items).await;
            (res, items)
        };
        ctx.spawn(fut.into_actor(self).map(move |(res, items), act, _ctx| {
            act.note(generation, &res, op);
            match res {
                Ok(restored) => {
                    if !restored.is_empty() {
                        log::info!(
                            "cache: set again from memory (missing in Redis when re-armed): {}",
                            restored.join(", ")
                        );
                    }
                }
                Err(_) => {
                    // Not known to be in Redis: the write-back on reconnect
                    // (or the next cycle) writes it.
                    for it in items {
                        if let Some(m) = act.memory.get_mut(&it.key) {
                            m.redis_until = None;
                        }
                    }
                }
            }
        }));
    }

    /// After a guarded store: check the category's entries at
    /// [`GUARD_CHECKS_MS`] and repair what a late DEL removed.
    fn guard(&mut self, category: Category, generation: u64, ctx: &mut Context<Self>) {
        let stamp = self.guards.entry(category).or_default();
        *stamp += 1;
        let stamp = *stamp;
        for ms in GUARD_CHECKS_MS {
            ctx.run_later(Duration::from_millis(ms), move |act, ctx| {
                act.guard_check(category, generation, stamp, ctx);
            });
        }
    }

    fn guard_check(&mut self, category: Category, generation: u64, stamp: u64, ctx: &mut Context<Self>) {
        if self.guards.get(&category) != Some(&stamp)
            || self.metrics.generations.current(category) != generation
        {
            return;
        }
        let Some(fix) = self.redis_fix() else { return };
        let now = Instant::now();
        let stale_ok = self.hydration_enabled;
        let items: Vec<Rearm> = self
            .memory
            .iter()
            .filter(|(k, _)| k.category == category)
            .filter_map(|(k, e)| {
                let ttl = e.redis_until.map_or_else(
                    || e.redis_ttl_left(now, self.stale_ttl, stale_ok),
                    |until| until.saturating_duration_since(now),
                );
                (ttl >= Duration::from_millis(1)).then(|| Rearm {
                    key: *k,
                    started_ms: e.started_ms,
                    redis_key: k.redis_key(&self.prefix),
                    json: e.json.clone(),
                    ttl,
                    generation,
                })
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let link_generation = fix.link_generation;
        let fut = async move { redis_repair(fix, &items).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _ctx| {
            act.note(link_generation, &res, Op::Repair(category));
            if let Ok(repaired) = res {
                if !repaired.is_empty() {
                    log::info!(
                        "cache: {category}: restored {} from memory after a late DEL (or a foreign write) following its re-hydration",
                        repaired.join(", ")
                    );
                }
            }
        }));
    }
}

/// One entry to re-arm or repair in Redis.
struct Rearm {
    key: EntryKey,
    /// The start of the cycle that computed it (never backwards).
    started_ms: u64,
    redis_key: String,
    json: EntryJson,
    ttl: Duration,
    /// The category's generation this was decided in: no write once it moved.
    generation: u64,
}

/// What re-arming and repairing entries in Redis need besides the entries
/// ([`CacheActor::redis_fix`]).
struct RedisFix {
    conn: MultiplexedConnection,
    /// The link's generation of `conn` (see `note`).
    link_generation: u64,
    timeout: Duration,
    keys: FenceKeys,
    token: String,
    metrics: Arc<Metrics>,
}

/// Re-arm each key's TTL (`PEXPIRE`); a key that is gone is set again from
/// memory (`SET … PX`), unless its category was invalidated meanwhile.
/// Answers the keys set again.
async fn redis_rearm(mut fix: RedisFix, items: &[Rearm]) -> Result<Vec<String>, Failure> {
    let pairs: Vec<(&str, u64)> =
        items.iter().map(|it| (it.redis_key.as_str(), fenced::ms(it.ttl))).collect();
    let rearm = fenced::rearm(&mut fix.conn, Writer { keys: &fix.keys, token: &fix.token }, &pairs);
    let Some(armed) = redis_link::run(fix.timeout, rearm).await? else {
        return Ok(Vec::new()); // the lease is gone: the new leader keeps the entries
    };
    fix.metrics.stale_rearms(armed.iter().filter(|a| **a == 1).count());
    let missing: Vec<&Rearm> = items.iter().zip(&armed).filter(|(_, a)| **a == 0).map(|(it, _)| it).collect();
    redis_set_again(fix, &missing).await
}

/// Compare each key's length with the entry's (`STRLEN`: 0 when missing)
/// and set again from memory those that differ. Answers the keys set again.
async fn redis_repair(mut fix: RedisFix, items: &[Rearm]) -> Result<Vec<String>, Failure> {
    let mut pipe = redis::pipe();
    for it in items {
        pipe.cmd("STRLEN").arg(&it.redis_key);
    }
    let lens: Vec<usize> = redis_link::run(fix.timeout, pipe.query_async(&mut fix.conn)).await?;
    let differ: Vec<&Rearm> =
        items.iter().zip(&lens).filter(|(it, len)| **len != it.json.len()).map(|(it, _)| it).collect();
    let metrics = fix.metrics.clone();
    let repaired = redis_set_again(fix, &differ).await?;
    metrics.late_deletes_repaired(repaired.len());
    Ok(repaired)
}

/// Set entries again, each by a fenced store (TTL in whole seconds, at
/// least one), when their category is still in the generation they were
/// decided in. That is checked just before the commands are queued, all at
/// once, on the actors' one thread: an invalidation's DEL, queued later,
/// wins. Answers the keys set again.
async fn redis_set_again(mut fix: RedisFix, items: &[&Rearm]) -> Result<Vec<String>, Failure> {
    let current: Vec<&&Rearm> =
        items.iter().filter(|it| fix.metrics.generations.current(it.key.category) == it.generation).collect();
    if current.is_empty() {
        return Ok(Vec::new());
    }
    let cmds = current
        .iter()
        .map(|it| {
            let item =
                StoreItem { key: &it.redis_key, ttl_seconds: it.ttl.as_secs(), value: it.json.as_bytes() };
            let writer = Writer { keys: &fix.keys, token: &fix.token };
            fenced::store_cmd(&Batch { writer, started_ms: it.started_ms, items: &[item] })
        })
        .collect();
    let applied = redis_link::run(fix.timeout, fenced::apply_all(&mut fix.conn, cmds)).await?;
    Ok(current
        .iter()
        .zip(applied)
        .filter(|(_, a)| *a == Applied::Yes)
        .map(|(it, _)| it.redis_key.clone())
        .collect())
}

impl Actor for CacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.link.is_some() {
            // The first connection attempt holds the mailbox (for at most the
            // socket timeout), so the first messages see a known Redis state.
            let first = self.connect_now();
            ctx.wait(first);
            ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
            ctx.run_interval(TICK, |act, ctx| act.keep(ctx));
        }
    }
}

impl Handler<StoreCategory> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, msg: StoreCategory, _ctx: &mut Self::Context) -> Self::Result {
        if self.metrics.generations.current(msg.category) != msg.generation {
            log::info!(
                "cache: {} was invalidated while it was computed; those entries are dropped",
                msg.category
            );
            return Box::pin(fut::ready(RedisWrite::Failed(
                "superseded by an invalidation; not written".to_string(),
            )));
        }
        let now = Instant::now();
        let now_unix = unix_now();
        let risk_as_of = now.checked_sub(msg.risk_inputs_age).unwrap_or(now);
        for e in &msg.entries {
            self.pending_deletes.remove(&e.key.redis_key(&self.prefix));
            let as_of = match e.key.kind {
                EntryKind::DeletionRisk => risk_as_of,
                EntryKind::Statistics => now,
            };
            self.memory.insert(
                e.key,
                MemEntry {
                    json: e.json.clone(),
                    started_ms: msg.started_ms,
                    stored_at: now,
                    stored_unix: now_unix,
                    as_of,
                    redis_until: None,
                    stale_since: None,
                    ttl: self.ttls.ttl(e.key.kind),
                    models: e.models,
                    at_risk: e.at_risk,
                    critical: e.critical,
                },
            );
            self.reads.publish(e.key, e.json.clone(), now, as_of);
        }
        if self.link.is_none() {
            return Box::pin(fut::ready(RedisWrite::Disabled));
        }
        let Some((conn, timeout)) = self.conn() else {
            return Box::pin(fut::ready(RedisWrite::Failed(
                "redis is down; kept in memory, written back on reconnect".to_string(),
            )));
        };
        let Some(token) = self.fence.token().map(str::to_string) else {
            return Box::pin(fut::ready(RedisWrite::NotLeader));
        };
        // The values are shared with the memory entries (no copy is made
        // here); `store_sized` sends a large category in pieces.
        let owned: Vec<(String, u64, EntryJson)> = msg
            .entries
            .iter()
            .map(|e| (e.key.redis_key(&self.prefix), self.ttls.ttl(e.key.kind).as_secs(), e.json.clone()))
            .collect();
        let fence_keys = self.fence_keys.clone();
        let started_ms = msg.started_ms;
        let category = msg.category;
        let generation = conn.generation;
        let (category_generation, guard) = (msg.generation, msg.guard);
        let stored: Vec<EntryKey> = msg.entries.iter().map(|e| e.key).collect();
        let metrics = self.metrics.clone();
        drop(msg);
        let fut = async move {
            let mut conn = conn.conn;
            let items: Vec<StoreItem<'_>> = owned
                .iter()
                .map(|(key, ttl_seconds, json)| StoreItem {
                    key,
                    ttl_seconds: *ttl_seconds,
                    value: json.as_bytes(),
                })
                .collect();
            let still_current = || metrics.generations.current(category) == category_generation;
            let started = Instant::now();
            let batch =
                Batch { writer: Writer { keys: &fence_keys, token: &token }, started_ms, items: &items };
            let written = fenced::store_sized(&mut conn, timeout, &batch, still_current).await;
            if written.is_ok() {
                metrics.redis_write(started.elapsed());
            }
            written
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            act.note(generation, &res, Op::Store(category));
            match res {
                Ok(applied) => {
                    if applied != Applied::Yes {
                        log::debug!("redis: {category} not written: {applied:?}");
                    }
                    act.written(category);
                    if applied == Applied::Yes {
                        act.note_written(&stored, now);
                        if guard {
                            act.guard(category, category_generation, ctx);
                        }
                    }
                    RedisWrite::from_applied(applied)
                }
                Err(Failure::Connection(e)) => RedisWrite::Failed(e),
                Err(refused) => {
                    act.refused_write(category);
                    RedisWrite::Failed(refused.to_string())
                }
            }
        }))
    }
}

impl Handler<RoleChanged> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: RoleChanged, ctx: &mut Self::Context) {
        let was_follower = self.fence == Fence::Follower;
        self.fence = match (msg.role, msg.token) {
            (Role::Standalone, _) => Fence::Unfenced,
            (Role::Leader, Some(token)) => Fence::Holder(token),
            _ => Fence::Follower,
        };
        if self.fence == Fence::Follower && !was_follower {
            // The read API serves the leader's entries from Redis from now on.
            self.reads.follow_redis();
        }
        // Entries computed while detached (Redis unreachable) reach Redis now
        // (never backwards: older ones are dropped by the script).
        if was_follower && self.fence != Fence::Follower && self.state() == RedisState::Up {
            self.write_back(false, ctx);
        }
    }
}

impl Handler<KeepStale> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: KeepStale, ctx: &mut Self::Context) {
        if self.metrics.generations.current(msg.category) != msg.generation {
            return;
        }
        let now_unix = unix_now();
        let mut keys = Vec::new();
        let mut newly = 0;
        for (k, e) in self.memory.iter_mut() {
            if k.category == msg.category && msg.kinds.contains(&k.kind) {
                match &mut e.stale_since {
                    Some((_, reason)) => *reason = msg.reason.clone(),
                    None => {
                        e.stale_since = Some((now_unix, msg.reason.clone()));
                        newly += 1;
                    }
                }
                keys.push(*k);
            }
        }
        if newly > 0 && self.hydration_enabled {
            log::warn!(
                "cache: {} entries of {} kept readable in Redis while their sources fail (up to {} s after their data was fetched)",
                newly,
                msg.category,
                self.stale_ttl.as_secs()
            );
        }
        self.rearm(keys, ctx);
    }
}

impl Handler<Get> for CacheActor {
    type Result = ResponseActFuture<Self, Option<(EntryJson, ReadSource)>>;

    fn handle(&mut self, msg: Get, _ctx: &mut Self::Context) -> Self::Result {
        let key = msg.0;
        let redis_read = self.conn().map(|(conn, timeout)| {
            let redis_key = key.redis_key(&self.prefix);
            let generation = conn.generation;
            async move {
                let mut conn = conn.conn;
                let res = redis_link::run(
                    timeout,
                    redis::cmd("GET").arg(redis_key).query_async::<Option<Vec<u8>>>(&mut conn),
                )
                .await;
                (generation, res)
            }
        });
        let fut = async move {
            match redis_read {
                Some(f) => Some(f.await),
                None => None,
            }
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            if let Some((generation, res)) = res {
                act.note(generation, &res, Op::Get);
                if let Ok(Some(bytes)) = res {
                    if let Ok(s) = String::from_utf8(bytes) {
                        return Some((EntryJson::from(s), ReadSource::Redis));
                    }
                }
            }
            let e = act.memory.get(&key)?;
            let f = freshness(e.stored_at.elapsed(), e.ttl, act.stale_ttl, act.hydration_enabled);
            if f == Freshness::Expired {
                act.memory.remove(&key);
                return None;
            }
            Some((e.json.clone(), ReadSource::Memory(f)))
        }))
    }
}

impl Handler<Invalidate> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, msg: Invalidate, _ctx: &mut Self::Context) -> Self::Result {
        let keys = all_variant_keys(msg.0);
        for k in &keys {
            self.memory.remove(k);
            self.reads.remove(k);
        }
        let redis_keys = keys.iter().map(|k| k.redis_key(&self.prefix)).collect();
        log::debug!("cache: invalidated {}", msg.0);
        self.delete_in_redis(redis_keys)
    }
}

impl Handler<Clear> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, _msg: Clear, _ctx: &mut Self::Context) -> Self::Result {
        self.memory.clear();
        self.reads.clear();
        self.refused.clear();
        let redis_keys =
            Category::ALL.into_iter().flat_map(all_variant_keys).map(|k| k.redis_key(&self.prefix)).collect();
        log::info!("cache: cleared every entry");
        self.delete_in_redis(redis_keys)
    }
}

impl Handler<Info> for CacheActor {
    type Result = MessageResult<Info>;

    fn handle(&mut self, _msg: Info, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let now_unix = unix_now();
        let ago = |at: Instant| now_unix - now.saturating_duration_since(at).as_secs_f64();
        let entries = self
            .memory
            .iter()
            .map(|(k, e)| {
                let age = now.saturating_duration_since(e.stored_at);
                let stale_since_unix = e
                    .stale_since
                    .as_ref()
                    .map(|(at, _)| *at)
                    .or_else(|| (age >= e.ttl).then_some(e.stored_unix + e.ttl.as_secs_f64()));
                EntryInfo {
                    data_as_of_unix: ago(e.as_of),
                    stale_since_unix,
                    stale_reason: e.stale_since.as_ref().map(|(_, r)| r.clone()),
                    redis_expires_in_seconds: e
                        .redis_until
                        .map(|until| until.saturating_duration_since(now).as_secs_f64()),
                    stale_allowance_left_seconds: e
                        .stale_end(self.stale_ttl)
                        .saturating_duration_since(now)
                        .as_secs_f64(),
                    key: k.redis_key(&self.prefix),
                    stored_at_unix: e.stored_unix,
                    age_seconds: age.as_secs_f64(),
                    ttl_seconds: e.ttl.as_secs(),
                    freshness: freshness(age, e.ttl, self.stale_ttl, self.hydration_enabled),
                    bytes: e.json.len(),
                    models: e.models,
                    at_risk: e.at_risk,
                    critical: e.critical,
                }
            })
            .collect();
        MessageResult(CacheInfo { redis: self.state(), entries })
    }
}

impl Handler<Reconfigure> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Self::Context) {
        self.reads.reconfigure(msg.ttls.clone(), msg.stale_ttl, msg.hydration_enabled);
        self.ttls = msg.ttls;
        self.stale_ttl = msg.stale_ttl;
        self.hydration_enabled = msg.hydration_enabled;
        self.interval = msg.interval;
    }
}

impl Handler<LoadReadsFromRedis> for CacheActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: LoadReadsFromRedis, _ctx: &mut Self::Context) -> Self::Result {
        let Some((conn, timeout)) = self.conn() else {
            self.reads.loaded();
            return Box::pin(fut::ready(()));
        };
        let keys: Vec<EntryKey> = Category::ALL.into_iter().flat_map(EntryKey::for_category).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            let name = k.redis_key(&self.prefix);
            pipe.cmd("GET").arg(&name).cmd("PTTL").arg(&name);
        }
        let generation = conn.generation;
        let fut = async move {
            let mut conn = conn.conn;
            redis_link::run(timeout, pipe.query_async::<Vec<(Option<Vec<u8>>, i64)>>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            act.note(generation, &res, Op::Get);
            if let Ok(values) = res {
                for (key, (value, pttl)) in keys.iter().zip(values) {
                    match value.map(String::from_utf8) {
                        Some(Ok(json)) => {
                            let left = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
                            act.reads.publish_from_redis(*key, EntryJson::from(json), left);
                        }
                        _ => act.reads.forget_redis(key),
                    }
                }
            }
            act.reads.loaded();
        }))
    }
}

impl Handler<ProbeRedis> for CacheActor {
    type Result = MessageResult<ProbeRedis>;

    /// The first connection attempt ran before any message (see `started`).
    fn handle(&mut self, _msg: ProbeRedis, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_follows_the_reference() {
        let s = Duration::from_secs;
        assert_eq!(freshness(s(10), s(300), s(3600), true), Freshness::Fresh);
        assert_eq!(freshness(s(300), s(300), s(3600), true), Freshness::Stale);
        assert_eq!(freshness(s(3599), s(300), s(3600), true), Freshness::Stale);
        assert_eq!(freshness(s(3600), s(300), s(3600), true), Freshness::Expired);
        assert_eq!(freshness(s(301), s(300), s(3600), false), Freshness::Expired);
        assert_eq!(freshness(s(299), s(300), s(3600), false), Freshness::Fresh);
    }

    #[test]
    fn states_serialise_as_the_status_reply_names_them() {
        let names = |v: serde_json::Value| v.to_string();
        let freshness = [Freshness::Fresh, Freshness::Stale, Freshness::Expired];
        assert_eq!(names(serde_json::json!(freshness)), r#"["fresh","stale","expired"]"#);
        let states = [RedisState::Disabled, RedisState::Connecting, RedisState::Up, RedisState::Down];
        assert_eq!(names(serde_json::json!(states)), r#"["disabled","connecting","up","down"]"#);
    }

    fn entry(key: EntryKey, json: &str) -> ComputedEntry {
        ComputedEntry {
            key,
            json: EntryJson::from(json.to_string()),
            models: 3,
            at_risk: Some(1),
            critical: None,
        }
    }

    fn store(category: Category, entries: Vec<ComputedEntry>) -> StoreCategory {
        StoreCategory {
            category,
            entries,
            generation: 0,
            guard: false,
            risk_inputs_age: Duration::ZERO,
            started_ms: 0,
        }
    }

    #[test]
    fn stale_if_error_ttls_never_pass_the_stale_ttl() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let e = MemEntry {
            json: EntryJson::from("{}".to_string()),
            started_ms: 0,
            stored_at: t0,
            stored_unix: 0.0,
            as_of: t0,
            redis_until: Some(t0 + s(300)),
            stale_since: None,
            ttl: s(300),
            models: 0,
            at_risk: None,
            critical: None,
        };
        let stale = s(3600);
        // Fresh: what is left of the TTL, or (stale-if-error) a whole TTL.
        assert_eq!(e.redis_ttl_left(t0 + s(100), stale, false), s(200));
        assert_eq!(e.redis_ttl_left(t0 + s(100), stale, true), s(300));
        // Past the TTL: nothing without stale-if-error; one TTL at most with it...
        assert_eq!(e.redis_ttl_left(t0 + s(400), stale, false), s(0));
        assert_eq!(e.redis_ttl_left(t0 + s(400), stale, true), s(300));
        // ...and never past the stale TTL.
        assert_eq!(e.redis_ttl_left(t0 + s(3500), stale, true), s(100));
        assert_eq!(e.redis_ttl_left(t0 + s(3600), stale, true), s(0));
        assert!(!e.is_past_stale_ttl(t0 + s(3599), stale));
        assert!(e.is_past_stale_ttl(t0 + s(3600), stale));
        // Computed from older Horde data: the stale TTL runs from that data.
        let older = MemEntry { as_of: t0 - s(3000), ..e };
        assert_eq!(older.redis_ttl_left(t0 + s(400), stale, true), s(200));
        assert!(older.is_past_stale_ttl(t0 + s(600), stale));
    }

    #[test]
    fn rearm_margin_leaves_healthy_cycles_alone() {
        let s = Duration::from_secs;
        assert_eq!(rearm_margin(s(300)), s(50), "a 240 s cycle rewrites with 60 s left");
        assert_eq!(rearm_margin(s(3)), Duration::from_millis(1500));
        assert_eq!(rearm_margin(s(12)), s(2));
        assert_eq!(rearm_margin(s(1)), Duration::from_millis(500));
        assert_eq!(rearm_margin(s(3600)), s(60));
    }

    #[test]
    fn memory_only_store_get_invalidate_clear() {
        let mut settings = Settings::default();
        settings.redis.enabled = false;
        actix_rt::System::new().block_on(async move {
            let cache = CacheActor::new(&settings, Arc::new(Metrics::new())).unwrap().start();
            let image = EntryKey::risk(Category::ImageGeneration, false, false);
            let text = EntryKey::stats(Category::TextGeneration, true);
            let w = cache.send(store(Category::ImageGeneration, vec![entry(image, "{\"a\":1}")]));
            assert_eq!(w.await.unwrap(), RedisWrite::Disabled);
            cache.send(store(Category::TextGeneration, vec![entry(text, "{}")])).await.unwrap();

            let (json, source) = cache.send(Get(image)).await.unwrap().unwrap();
            assert_eq!(&*json, "{\"a\":1}");
            assert_eq!(source, ReadSource::Memory(Freshness::Fresh));
            let info = cache.send(Info).await.unwrap();
            assert_eq!(info.redis, RedisState::Disabled);
            let keys: Vec<&str> = info.entries.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "horde:model_ref:deletion_risk:image_generation:grouped=false",
                    "horde:model_ref:stats:text_generation:grouped=true"
                ]
            );
            assert_eq!(info.entries[0].ttl_seconds, 300);
            assert_eq!(info.entries[0].freshness, Freshness::Fresh);

            cache.send(Invalidate(Category::ImageGeneration)).await.unwrap();
            assert!(cache.send(Get(image)).await.unwrap().is_none(), "invalidated");
            assert!(cache.send(Get(text)).await.unwrap().is_some(), "the other category stays");
            cache.send(Clear).await.unwrap();
            assert!(cache.send(Get(text)).await.unwrap().is_none(), "cleared");
            assert!(cache.send(Info).await.unwrap().entries.is_empty());
        });
    }

    #[test]
    fn invalidation_covers_every_variant() {
        let names: Vec<String> =
            all_variant_keys(Category::ImageGeneration).iter().map(|k| k.redis_key("P")).collect();
        assert_eq!(names.len(), 8);
        assert!(names.contains(&"P:deletion_risk:image_generation:grouped=false".to_string()));
        assert!(names.contains(&"P:deletion_risk:image_generation:grouped=true:variations=true".to_string()));
        assert!(names.contains(&"P:stats:image_generation:grouped=true".to_string()));
        assert!(names.iter().all(|n| n.contains("image_generation")));
    }
}
