//! CacheActor: the entries, in memory and in Redis (SPEC §2 keys, §3 reads).
//!
//! Owns the in-memory entries (always written: the fallback) and the Redis
//! command connection (a lazily connecting `ConnectionManager` that reconnects
//! by itself with backoff capped at 5 s). A category's entries from one cycle
//! are written in one MULTI/EXEC of SETEX commands, so a reader never sees two
//! cycles mixed. Reads follow the reference's `RedisCache.get`: Redis first,
//! then memory — fresh within the TTL, and while hydration is enabled stale up
//! to `hydration.stale_ttl_seconds`; older memory entries are dropped.
//!
//! Redis health is watched by a PING every second while it is down (every
//! five while up). An outage is logged once when it starts and once when it
//! ends; meanwhile writes go to memory only, and deletions that could not
//! reach Redis are remembered. On reconnecting, those deletions are replayed
//! and the memory entries are written back with their remaining TTLs.
//!
//! Stale-if-error (RFC 5861's idea, in Redis): while hydration is enabled, an
//! entry stays readable in Redis until `hydration.stale_ttl_seconds` after the
//! data it was computed from was fetched. When a cycle could not refresh it
//! ([`KeepStale`]), and whenever its Redis TTL is about to run out before a
//! cycle rewrote it (a keeper timer), its TTL is re-armed — by at most one
//! normal TTL, so entries of a daemon that stopped expire within their normal
//! TTL — and a key found missing is set again from memory. The payload is
//! never changed. Past the stale TTL the entry is dropped, logged once.
//!
//! Late DELs: after a store that re-hydrates an invalidated category
//! (`StoreCategory::guard`), the entries are checked at growing intervals for
//! five seconds (`STRLEN`, compared with the stored length) and any entry a
//! late DEL removed — or a reader's own answer replaced — is set again from
//! memory, unless a newer invalidation came. The Redis commands of both are
//! the small functions at the end of the actor's code.

use crate::counters::Counters;
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{ComputedEntry, EntryJson};
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::settings::{redact_url, Settings};
use redis::aio::ConnectionManager;
use std::collections::{BTreeMap, BTreeSet};
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

/// How often the keeper looks for entries whose Redis TTL is running out.
const KEEPER_TICK: Duration = Duration::from_millis(250);

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
    /// Unix time the oldest input of the entry was fetched.
    pub data_as_of_unix: f64,
    /// Unix time since which cycles could not refresh it, and why; an entry
    /// merely older than its TTL is stale since `stored_at + ttl`.
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

/// Store one category's entries of one cycle (memory, then one MULTI/EXEC).
#[derive(Message)]
#[rtype(result = "RedisWrite")]
pub struct StoreCategory {
    pub category: Category,
    pub entries: Vec<ComputedEntry>,
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

/// Wait (up to the socket timeout) until the Redis state is known.
#[derive(Message)]
#[rtype(result = "RedisState")]
pub struct ProbeRedis;

// ---------------------------------------------------------------- the actor

pub struct CacheActor {
    prefix: String,
    risk_ttl: Duration,
    stats_ttl: Duration,
    stale_ttl: Duration,
    hydration_enabled: bool,
    /// `hydration.interval_seconds`: the keeper bridges a late cycle only
    /// where the schedule meant to refresh an entry within its TTL.
    interval: Duration,
    timeout: Duration,
    redis_url: String,
    conn: Option<ConnectionManager>,
    state: RedisState,
    last_ping: Option<Instant>,
    ping_in_flight: bool,
    memory: BTreeMap<EntryKey, MemEntry>,
    /// Keys whose deletion could not reach Redis; replayed on reconnect.
    pending_deletes: BTreeSet<String>,
    counters: Arc<Counters>,
    /// Per category, the latest guarded store (older guards stop).
    guards: BTreeMap<Category, u64>,
}

/// Redis could not be set up at all (a URL the client rejects).
#[derive(Debug, thiserror::Error)]
#[error("redis.url {url}: {source}")]
pub struct CacheSetupError {
    url: String,
    source: redis::RedisError,
}

impl CacheActor {
    pub fn new(settings: &Settings, counters: Arc<Counters>) -> Result<Self, CacheSetupError> {
        let timeout = Duration::from_secs(settings.redis.socket_timeout_seconds);
        let conn = if settings.redis.enabled {
            let client = redis::Client::open(settings.redis.url.as_str())
                .map_err(|source| CacheSetupError { url: redact_url(&settings.redis.url), source })?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(5))
                .set_number_of_retries(2);
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|source| CacheSetupError { url: redact_url(&settings.redis.url), source })?;
            Some(manager)
        } else {
            None
        };
        Ok(CacheActor {
            prefix: settings.redis.key_prefix.clone(),
            risk_ttl: Duration::from_secs(settings.cache.deletion_risk_ttl_seconds),
            stats_ttl: Duration::from_secs(settings.cache.statistics_ttl_seconds),
            stale_ttl: Duration::from_secs(settings.hydration.stale_ttl_seconds),
            hydration_enabled: settings.hydration.enabled,
            interval: Duration::from_secs(settings.hydration.interval_seconds),
            timeout,
            redis_url: redact_url(&settings.redis.url),
            state: if conn.is_some() { RedisState::Connecting } else { RedisState::Disabled },
            conn,
            last_ping: None,
            ping_in_flight: false,
            memory: BTreeMap::new(),
            pending_deletes: BTreeSet::new(),
            counters,
            guards: BTreeMap::new(),
        })
    }

    fn ttl(&self, kind: EntryKind) -> Duration {
        match kind {
            EntryKind::DeletionRisk => self.risk_ttl,
            EntryKind::Statistics => self.stats_ttl,
        }
    }

    /// Record the outcome of a Redis command: logs the start and the end of an outage once each.
    fn note_redis(&mut self, ok: bool, error: Option<&str>, ctx: &mut Context<Self>) {
        let before = self.state;
        match (ok, before) {
            (true, RedisState::Up) => {}
            (true, _) => {
                self.state = RedisState::Up;
                if before == RedisState::Down {
                    log::info!(
                        "redis: connection to {} restored; writing back memory entries",
                        self.redis_url
                    );
                } else {
                    log::info!("redis: connected to {}", self.redis_url);
                }
                self.write_back(ctx);
            }
            (false, RedisState::Down) => {
                self.counters.inc(&self.counters.redis_errors);
            }
            (false, _) => {
                self.state = RedisState::Down;
                self.counters.inc(&self.counters.redis_errors);
                self.counters.inc(&self.counters.redis_outages);
                log::warn!(
                    "redis: {} unavailable ({}); serving from memory and reconnecting",
                    self.redis_url,
                    error.unwrap_or("no answer")
                );
            }
        }
    }

    /// After an outage: replay deletions that failed, then write the memory
    /// entries back with their remaining TTLs, one MULTI/EXEC per category.
    fn write_back(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.clone() else { return };
        let deletes: Vec<String> = std::mem::take(&mut self.pending_deletes).into_iter().collect();
        let mut per_category: BTreeMap<Category, Vec<(String, EntryJson, u64)>> = BTreeMap::new();
        let now = Instant::now();
        let stale_ok = self.hydration_enabled;
        for (key, e) in self.memory.iter_mut() {
            let left = e.redis_ttl_left(now, self.stale_ttl, stale_ok).as_secs();
            e.redis_until = (left > 0).then(|| now + Duration::from_secs(left));
            if left > 0 {
                per_category.entry(key.category).or_default().push((
                    key.redis_key(&self.prefix),
                    e.json.clone(),
                    left,
                ));
            }
        }
        if deletes.is_empty() && per_category.is_empty() {
            return;
        }
        let timeout = self.timeout;
        let fut = async move {
            let mut conn = conn;
            if !deletes.is_empty() {
                if let Err(e) =
                    redis_op(timeout, redis::cmd("DEL").arg(&deletes).query_async::<()>(&mut conn)).await
                {
                    return Err((e, deletes));
                }
            }
            for (_, items) in per_category {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (key, json, left) in &items {
                    pipe.cmd("SETEX").arg(key).arg(*left).arg(json.as_bytes()).ignore();
                }
                redis_op(timeout, pipe.query_async::<()>(&mut conn)).await.map_err(|e| (e, Vec::new()))?;
            }
            Ok(())
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            if let Err((e, undeleted)) = res {
                // Still to be deleted next time; the entries are written back then too.
                act.pending_deletes.extend(undeleted);
                act.note_redis(false, Some(&e), ctx);
            }
        }));
    }

    fn ping(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.clone() else { return };
        if self.ping_in_flight {
            return;
        }
        let due = match (self.state, self.last_ping) {
            (_, None) => true,
            (RedisState::Up, Some(at)) => at.elapsed() >= Duration::from_secs(5),
            (_, Some(at)) => at.elapsed() >= Duration::from_secs(1),
        };
        if !due {
            return;
        }
        self.ping_in_flight = true;
        self.last_ping = Some(Instant::now());
        let timeout = self.timeout;
        let fut = async move {
            let mut conn = conn;
            redis_op(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.ping_in_flight = false;
            act.note_redis(res.is_ok(), res.as_ref().err().map(String::as_str), ctx);
        }));
    }

    /// Delete `keys` in Redis (now, or after the outage).
    fn delete_in_redis(&mut self, keys: Vec<String>) -> ResponseActFuture<Self, RedisWrite> {
        let Some(conn) = self.conn.clone() else { return Box::pin(fut::ready(RedisWrite::Disabled)) };
        if self.state == RedisState::Down {
            self.pending_deletes.extend(keys);
            return Box::pin(fut::ready(RedisWrite::Failed(
                "redis is down; the deletion will be replayed".into(),
            )));
        }
        let timeout = self.timeout;
        let pending = keys.clone();
        let fut = async move {
            let mut conn = conn;
            redis_op(timeout, redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.note_redis(true, None, ctx);
                RedisWrite::Written
            }
            Err(e) => {
                act.pending_deletes.extend(pending);
                act.note_redis(false, Some(&e), ctx);
                RedisWrite::Failed(e)
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
        if !self.hydration_enabled || self.conn.is_none() {
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
        if self.state != RedisState::Up {
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
        let Some(conn) = self.conn.clone() else { return };
        if self.state == RedisState::Down || !self.hydration_enabled {
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
                redis_key: k.redis_key(&self.prefix),
                json: e.json.clone(),
                ttl,
                generation: self.counters.generations.current(k.category),
            });
        }
        if items.is_empty() {
            return;
        }
        let (timeout, counters) = (self.timeout, self.counters.clone());
        let fut = async move { redis_rearm(conn, timeout, &items, &counters).await.map_err(|e| (e, items)) };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(restored) => {
                if !restored.is_empty() {
                    log::info!(
                        "cache: set again from memory (missing in Redis when re-armed): {}",
                        restored.join(", ")
                    );
                }
                act.note_redis(true, None, ctx);
            }
            Err((e, items)) => {
                for it in items {
                    if let Some(m) = act.memory.get_mut(&it.key) {
                        m.redis_until = None;
                    }
                }
                act.note_redis(false, Some(&e), ctx);
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
            || self.counters.generations.current(category) != generation
            || self.state != RedisState::Up
        {
            return;
        }
        let Some(conn) = self.conn.clone() else { return };
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
        let (timeout, counters) = (self.timeout, self.counters.clone());
        let fut = async move { redis_repair(conn, timeout, &items, &counters).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(repaired) => {
                if !repaired.is_empty() {
                    log::info!(
                        "cache: {category}: restored {} from memory after a late DEL (or a foreign write) following its re-hydration",
                        repaired.join(", ")
                    );
                }
            }
            Err(e) => act.note_redis(false, Some(&e), ctx),
        }));
    }
}

/// One entry to re-arm or repair in Redis.
struct Rearm {
    key: EntryKey,
    redis_key: String,
    json: EntryJson,
    ttl: Duration,
    /// The category's generation this was decided in: no write once it moved.
    generation: u64,
}

/// Re-arm each key's TTL (`PEXPIRE`); a key that is gone is set again from
/// memory (`SET … PX`), unless its category was invalidated meanwhile.
/// Answers the keys set again.
async fn redis_rearm(
    mut conn: ConnectionManager,
    timeout: Duration,
    items: &[Rearm],
    counters: &Counters,
) -> Result<Vec<String>, String> {
    let mut pipe = redis::pipe();
    for it in items {
        pipe.cmd("PEXPIRE").arg(&it.redis_key).arg(millis(it.ttl));
    }
    let armed: Vec<i64> = redis_op(timeout, pipe.query_async(&mut conn)).await?;
    counters.add(&counters.stale_rearms, armed.iter().filter(|a| **a == 1).count() as u64);
    let missing: Vec<&Rearm> = items.iter().zip(&armed).filter(|(_, a)| **a == 0).map(|(it, _)| it).collect();
    redis_set_again(conn, timeout, &missing, counters).await
}

/// Compare each key's length with the entry's (`STRLEN`: 0 when missing)
/// and set again from memory those that differ. Answers the keys set again.
async fn redis_repair(
    mut conn: ConnectionManager,
    timeout: Duration,
    items: &[Rearm],
    counters: &Counters,
) -> Result<Vec<String>, String> {
    let mut pipe = redis::pipe();
    for it in items {
        pipe.cmd("STRLEN").arg(&it.redis_key);
    }
    let lens: Vec<usize> = redis_op(timeout, pipe.query_async(&mut conn)).await?;
    let differ: Vec<&Rearm> =
        items.iter().zip(&lens).filter(|(it, len)| **len != it.json.len()).map(|(it, _)| it).collect();
    let repaired = redis_set_again(conn, timeout, &differ, counters).await?;
    counters.add(&counters.late_deletes_repaired, repaired.len() as u64);
    Ok(repaired)
}

/// `SET key value PX ttl` for entries whose category is still in the
/// generation they were decided in (checked just before the command is
/// queued, on the actors' one thread: an invalidation's DEL, queued later,
/// wins).
async fn redis_set_again(
    mut conn: ConnectionManager,
    timeout: Duration,
    items: &[&Rearm],
    counters: &Counters,
) -> Result<Vec<String>, String> {
    let current: Vec<&&Rearm> =
        items.iter().filter(|it| counters.generations.current(it.key.category) == it.generation).collect();
    if current.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for it in &current {
        pipe.cmd("SET").arg(&it.redis_key).arg(it.json.as_bytes()).arg("PX").arg(millis(it.ttl)).ignore();
    }
    redis_op(timeout, pipe.query_async::<()>(&mut conn)).await?;
    Ok(current.iter().map(|it| it.redis_key.clone()).collect())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Run a Redis command with the socket timeout; errors as text.
async fn redis_op<T>(
    timeout: Duration,
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Actor for CacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.conn.is_some() {
            self.ping(ctx);
            ctx.run_interval(Duration::from_millis(500), |act, ctx| act.ping(ctx));
            ctx.run_interval(KEEPER_TICK, |act, ctx| act.keep(ctx));
        }
    }
}

impl Handler<StoreCategory> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, msg: StoreCategory, _ctx: &mut Self::Context) -> Self::Result {
        if self.counters.generations.current(msg.category) != msg.generation {
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
            self.memory.insert(
                e.key,
                MemEntry {
                    json: e.json.clone(),
                    stored_at: now,
                    stored_unix: now_unix,
                    as_of: match e.key.kind {
                        EntryKind::DeletionRisk => risk_as_of,
                        EntryKind::Statistics => now,
                    },
                    redis_until: None,
                    stale_since: None,
                    ttl: self.ttl(e.key.kind),
                    models: e.models,
                    at_risk: e.at_risk,
                    critical: e.critical,
                },
            );
        }
        let Some(conn) = self.conn.clone() else { return Box::pin(fut::ready(RedisWrite::Disabled)) };
        if self.state == RedisState::Down {
            return Box::pin(fut::ready(RedisWrite::Failed("redis is down; kept in memory".to_string())));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in &msg.entries {
            let ttl = self.ttl(e.key.kind).as_secs();
            pipe.cmd("SETEX").arg(e.key.redis_key(&self.prefix)).arg(ttl).arg(e.json.as_bytes()).ignore();
        }
        let timeout = self.timeout;
        let category = msg.category;
        let (generation, guard) = (msg.generation, msg.guard);
        let written: Vec<EntryKey> = msg.entries.iter().map(|e| e.key).collect();
        let fut = async move {
            let mut conn = conn;
            redis_op(timeout, pipe.query_async::<()>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.note_redis(true, None, ctx);
                act.note_written(&written, now);
                if guard {
                    act.guard(category, generation, ctx);
                }
                RedisWrite::Written
            }
            Err(e) => {
                log::debug!("redis: writing {category} failed: {e}");
                act.note_redis(false, Some(&e), ctx);
                RedisWrite::Failed(e)
            }
        }))
    }
}

impl Handler<KeepStale> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: KeepStale, ctx: &mut Self::Context) {
        if self.counters.generations.current(msg.category) != msg.generation {
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
        let redis_read = match (&self.conn, self.state) {
            (Some(conn), RedisState::Up | RedisState::Connecting) => {
                let mut conn = conn.clone();
                let redis_key = key.redis_key(&self.prefix);
                let timeout = self.timeout;
                Some(async move {
                    redis_op(
                        timeout,
                        redis::cmd("GET").arg(redis_key).query_async::<Option<Vec<u8>>>(&mut conn),
                    )
                    .await
                })
            }
            _ => None,
        };
        let fut = async move {
            match redis_read {
                Some(f) => Some(f.await),
                None => None,
            }
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            match res {
                Some(Ok(Some(bytes))) => {
                    act.note_redis(true, None, ctx);
                    if let Ok(s) = String::from_utf8(bytes) {
                        return Some((EntryJson::from(s), ReadSource::Redis));
                    }
                }
                Some(Ok(None)) => act.note_redis(true, None, ctx),
                Some(Err(e)) => act.note_redis(false, Some(&e), ctx),
                None => {}
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
        log::info!("cache: invalidated {}", msg.0);
        self.delete_in_redis(redis_keys)
    }
}

impl Handler<Clear> for CacheActor {
    type Result = ResponseActFuture<Self, RedisWrite>;

    fn handle(&mut self, _msg: Clear, _ctx: &mut Self::Context) -> Self::Result {
        self.memory.clear();
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
                let now = Instant::now();
                let now_unix = unix_now();
                let ago = |at: Instant| now_unix - now.saturating_duration_since(at).as_secs_f64();
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
        MessageResult(CacheInfo { redis: self.state, entries })
    }
}

impl Handler<ProbeRedis> for CacheActor {
    type Result = ResponseActFuture<Self, RedisState>;

    fn handle(&mut self, _msg: ProbeRedis, _ctx: &mut Self::Context) -> Self::Result {
        let Some(conn) = self.conn.clone() else { return Box::pin(fut::ready(RedisState::Disabled)) };
        let timeout = self.timeout;
        let fut = async move {
            let mut conn = conn;
            redis_op(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.note_redis(res.is_ok(), res.as_ref().err().map(String::as_str), ctx);
            act.state
        }))
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

    fn store(category: Category, entries: Vec<ComputedEntry>) -> StoreCategory {
        StoreCategory { category, entries, generation: 0, guard: false, risk_inputs_age: Duration::ZERO }
    }

    #[test]
    fn stale_if_error_ttls_never_pass_the_stale_ttl() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let e = MemEntry {
            json: EntryJson::from("{}".to_string()),
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
            let cache = CacheActor::new(&settings, Arc::new(Counters::default())).unwrap().start();
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
