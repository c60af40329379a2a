//! CacheActor: the entries, in memory and in Redis (SPEC §2 keys, §3 reads).
//!
//! Owns the in-memory entries (always written: the fallback) and the Redis
//! command connection (a [`CommandLink`], `redis_link.rs`). A category's
//! entries from one cycle are written in one MULTI/EXEC of SETEX commands, so
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
//! its previous entries (a refused MULTI/EXEC changes nothing), the error is
//! counted and logged once per kind per episode, and the refused categories
//! are written again from memory 5 s later, then every 8 s until Redis takes
//! them (or a cycle's write succeeds). A refused DEL is logged and not
//! replayed, and never holds back the writes: the next write replaces the
//! keys anyway.

use crate::counters::Counters;
use crate::redis_link::{self, CommandLink, Conn, Failure, RefusalKind};
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{ComputedEntry, EntryJson};
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::settings::{CacheSettings, Settings};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How old an entry is compared with its TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its TTL but still served (hydration enabled, within the stale TTL).
    Stale,
    /// Too old to serve; dropped on the next read.
    Expired,
}

impl Freshness {
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Expired => "expired",
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    Disabled,
    /// Not yet known to be up (start-up).
    Connecting,
    Up,
    Down,
}

impl RedisState {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisState::Disabled => "disabled",
            RedisState::Connecting => "connecting",
            RedisState::Up => "up",
            RedisState::Down => "down",
        }
    }
}

/// Whether a write reached Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisWrite {
    Written,
    Disabled,
    /// Redis is down or the command failed; memory was still updated.
    Failed(String),
}

struct MemEntry {
    json: EntryJson,
    stored_at: Instant,
    stored_unix: f64,
    ttl: Duration,
    models: usize,
    at_risk: Option<usize>,
    critical: Option<usize>,
}

/// One entry as the status reply lists it.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub key: String,
    pub stored_at_unix: f64,
    pub age_seconds: f64,
    pub ttl_seconds: u64,
    pub freshness: Freshness,
    pub bytes: usize,
    pub models: usize,
    pub at_risk: Option<usize>,
    pub critical: Option<usize>,
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

/// Store one category's entries of one cycle (memory, then one MULTI/EXEC).
#[derive(Message)]
#[rtype(result = "RedisWrite")]
pub struct StoreCategory {
    pub category: Category,
    pub entries: Vec<ComputedEntry>,
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
/// entries written from now on; the stale TTL and `hydration_enabled` (which
/// decides whether stale memory entries are served) to every read from now on.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub ttls: CacheSettings,
    pub stale_ttl: Duration,
    pub hydration_enabled: bool,
}

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
    counters: Arc<Counters>,
}

/// Redis could not be set up at all (a URL the client rejects, an unreadable CA file).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CacheSetupError(#[from] crate::redis_client::RedisClientError);

/// A Redis command of the cache, for its log lines.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A cycle's MULTI/EXEC of a category's entries.
    Store(Category),
    /// The write-back of a category's memory entries.
    WriteBack(Category),
    /// A DEL of this many keys.
    Delete(usize),
    Get,
    Ping,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Store(c) => write!(f, "the {c} entries (MULTI/EXEC of SETEX)"),
            Op::WriteBack(c) => write!(f, "the write-back of the {c} entries"),
            Op::Delete(n) => write!(f, "DEL of {n} keys"),
            Op::Get => f.write_str("GET"),
            Op::Ping => f.write_str("the health check PING"),
        }
    }
}

/// One step of a write-back, and how it ended.
enum WriteBackStep {
    Delete(Vec<String>, Result<(), Failure>),
    Category(Category, Result<(), Failure>),
}

impl CacheActor {
    pub fn new(settings: &Settings, counters: Arc<Counters>) -> Result<Self, CacheSetupError> {
        let timeout = settings.redis.socket_timeout;
        let link = if settings.redis.enabled {
            Some(CommandLink::new(crate::redis_client::client(&settings.redis)?, timeout))
        } else {
            None
        };
        Ok(CacheActor {
            prefix: settings.redis.key_prefix.clone(),
            ttls: settings.cache.clone(),
            stale_ttl: settings.hydration.stale_ttl,
            hydration_enabled: settings.hydration.enabled,
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
            counters,
        })
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
                        Some(since) => log::info!(
                            "redis: reconnected to {} after {:.1} s; writing back memory entries",
                            act.redis_url,
                            since.elapsed().as_secs_f64()
                        ),
                        None => log::info!("redis: connected to {}", act.redis_url),
                    }
                    act.write_back(false, ctx);
                }
                Err(failure) => {
                    link.connect_failed();
                    act.counters.inc(&act.counters.redis_errors);
                    if act.outage_since.is_none() {
                        act.outage_since = Some(Instant::now());
                        act.counters.inc(&act.counters.redis_outages);
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
    fn note(&mut self, generation: u64, result: &Result<(), Failure>, op: Op) {
        match result {
            Ok(()) => {
                if let Some(link) = self.link.as_mut() {
                    link.succeeded();
                }
            }
            Err(Failure::Connection(cause)) => {
                self.counters.inc(&self.counters.redis_errors);
                let dropped = self.link.as_mut().is_some_and(|l| l.drop_connection(generation));
                if dropped && self.outage_since.is_none() {
                    self.outage_since = Some(Instant::now());
                    self.counters.inc(&self.counters.redis_outages);
                    log::warn!(
                        "redis: connection to {} lost ({op}: {cause}); serving from memory and reconnecting",
                        self.redis_url
                    );
                }
            }
            Err(Failure::Refused { kind, message }) => {
                self.counters.inc(&self.counters.redis_refusals);
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
    /// their remaining TTLs, one MULTI/EXEC per category. `refused_only`:
    /// only the categories whose last write Redis refused (the retry timer);
    /// else every category except those (after a reconnect), so an entry
    /// Redis refuses never loops through reconnects. A refused DEL does not
    /// stop the writes.
    fn write_back(&mut self, refused_only: bool, ctx: &mut Context<Self>) {
        let Some((conn, timeout)) = self.conn() else { return };
        let deletes: Vec<String> = std::mem::take(&mut self.pending_deletes).into_iter().collect();
        let mut per_category: BTreeMap<Category, Vec<(String, EntryJson, u64)>> = BTreeMap::new();
        for (key, e) in &self.memory {
            if self.refused.contains(&key.category) != refused_only {
                continue;
            }
            let left = e.ttl.saturating_sub(e.stored_at.elapsed()).as_secs();
            if left > 0 {
                per_category.entry(key.category).or_default().push((
                    key.redis_key(&self.prefix),
                    e.json.clone(),
                    left,
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
        let fut = async move {
            let mut conn = conn.conn;
            let mut steps = Vec::new();
            for (category, items) in per_category {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (key, json, left) in &items {
                    pipe.cmd("SETEX").arg(key).arg(*left).arg(json.as_bytes()).ignore();
                }
                let res = redis_link::run(timeout, pipe.query_async::<()>(&mut conn)).await;
                let broken = matches!(res, Err(Failure::Connection(_)));
                steps.push(WriteBackStep::Category(category, res));
                if broken {
                    return steps;
                }
            }
            if !deletes.is_empty() {
                let res =
                    redis_link::run(timeout, redis::cmd("DEL").arg(&deletes).query_async::<()>(&mut conn))
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
        let Some((conn, timeout)) = self.conn() else {
            self.pending_deletes.extend(keys);
            return Box::pin(fut::ready(RedisWrite::Failed(
                "redis is down; the deletion will be replayed".into(),
            )));
        };
        let generation = conn.generation;
        let op = Op::Delete(keys.len());
        let pending = keys.clone();
        let fut = async move {
            let mut conn = conn.conn;
            redis_link::run(timeout, redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            act.note(generation, &res, op);
            match res {
                Ok(()) => RedisWrite::Written,
                Err(Failure::Connection(e)) => {
                    act.pending_deletes.extend(pending);
                    RedisWrite::Failed(e)
                }
                Err(refused) => RedisWrite::Failed(refused.to_string()),
            }
        }))
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
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
        }
    }
}

impl Handler<StoreCategory> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, msg: StoreCategory, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let now_unix = unix_now();
        for e in &msg.entries {
            self.pending_deletes.remove(&e.key.redis_key(&self.prefix));
            self.memory.insert(
                e.key,
                MemEntry {
                    json: e.json.clone(),
                    stored_at: now,
                    stored_unix: now_unix,
                    ttl: self.ttls.ttl(e.key.kind),
                    models: e.models,
                    at_risk: e.at_risk,
                    critical: e.critical,
                },
            );
        }
        if self.link.is_none() {
            return Box::pin(fut::ready(RedisWrite::Disabled));
        }
        let Some((conn, timeout)) = self.conn() else {
            return Box::pin(fut::ready(RedisWrite::Failed(
                "redis is down; kept in memory, written back on reconnect".to_string(),
            )));
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in &msg.entries {
            let ttl = self.ttls.ttl(e.key.kind).as_secs();
            pipe.cmd("SETEX").arg(e.key.redis_key(&self.prefix)).arg(ttl).arg(e.json.as_bytes()).ignore();
        }
        let category = msg.category;
        let generation = conn.generation;
        let fut = async move {
            let mut conn = conn.conn;
            redis_link::run(timeout, pipe.query_async::<()>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            act.note(generation, &res, Op::Store(category));
            match res {
                Ok(()) => {
                    act.written(category);
                    RedisWrite::Written
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
                match res {
                    Ok(Some(bytes)) => {
                        act.note(generation, &Ok(()), Op::Get);
                        if let Ok(s) = String::from_utf8(bytes) {
                            return Some((EntryJson::from(s), ReadSource::Redis));
                        }
                    }
                    Ok(None) => act.note(generation, &Ok(()), Op::Get),
                    Err(e) => act.note(generation, &Err(e), Op::Get),
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
        let entries = self
            .memory
            .iter()
            .map(|(k, e)| {
                let age = e.stored_at.elapsed();
                EntryInfo {
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
        self.ttls = msg.ttls;
        self.stale_ttl = msg.stale_ttl;
        self.hydration_enabled = msg.hydration_enabled;
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

    fn entry(key: EntryKey, json: &str) -> ComputedEntry {
        ComputedEntry {
            key,
            json: EntryJson::from(json.to_string()),
            models: 3,
            at_risk: Some(1),
            critical: None,
        }
    }

    #[test]
    fn memory_only_store_get_invalidate_clear() {
        let mut settings = Settings::default();
        settings.redis.enabled = false;
        actix_rt::System::new().block_on(async move {
            let cache = CacheActor::new(&settings, Arc::new(Counters::default())).unwrap().start();
            let image = EntryKey::risk(Category::ImageGeneration, false, false);
            let text = EntryKey::stats(Category::TextGeneration, true);
            let w = cache.send(StoreCategory {
                category: Category::ImageGeneration,
                entries: vec![entry(image, "{\"a\":1}")],
            });
            assert_eq!(w.await.unwrap(), RedisWrite::Disabled);
            cache
                .send(StoreCategory { category: Category::TextGeneration, entries: vec![entry(text, "{}")] })
                .await
                .unwrap();

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
