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

use crate::counters::Counters;
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{ComputedEntry, EntryJson};
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::settings::{CacheSettings, Settings};
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

pub struct CacheActor {
    prefix: String,
    ttls: CacheSettings,
    stale_ttl: Duration,
    hydration_enabled: bool,
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
}

/// Redis could not be set up at all (a URL the client rejects, an unreadable CA file).
#[derive(Debug, thiserror::Error)]
pub enum CacheSetupError {
    #[error(transparent)]
    Client(#[from] crate::redis_client::RedisClientError),
    #[error("redis.url {url}: {source}")]
    Manager { url: String, source: redis::RedisError },
}

impl CacheActor {
    pub fn new(settings: &Settings, counters: Arc<Counters>) -> Result<Self, CacheSetupError> {
        let timeout = settings.redis.socket_timeout;
        let conn = if settings.redis.enabled {
            let client = crate::redis_client::client(&settings.redis).map_err(CacheSetupError::Client)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(5))
                .set_number_of_retries(2);
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|source| CacheSetupError::Manager { url: settings.redis.url.redacted(), source })?;
            Some(manager)
        } else {
            None
        };
        Ok(CacheActor {
            prefix: settings.redis.key_prefix.clone(),
            ttls: settings.cache.clone(),
            stale_ttl: settings.hydration.stale_ttl,
            hydration_enabled: settings.hydration.enabled,
            timeout,
            redis_url: settings.redis.url.redacted(),
            state: if conn.is_some() { RedisState::Connecting } else { RedisState::Disabled },
            conn,
            last_ping: None,
            ping_in_flight: false,
            memory: BTreeMap::new(),
            pending_deletes: BTreeSet::new(),
            counters,
        })
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
        for (key, e) in &self.memory {
            let left = e.ttl.saturating_sub(e.stored_at.elapsed()).as_secs();
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
        let Some(conn) = self.conn.clone() else { return Box::pin(fut::ready(RedisWrite::Disabled)) };
        if self.state == RedisState::Down {
            return Box::pin(fut::ready(RedisWrite::Failed("redis is down; kept in memory".to_string())));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in &msg.entries {
            let ttl = self.ttls.ttl(e.key.kind).as_secs();
            pipe.cmd("SETEX").arg(e.key.redis_key(&self.prefix)).arg(ttl).arg(e.json.as_bytes()).ignore();
        }
        let timeout = self.timeout;
        let category = msg.category;
        let fut = async move {
            let mut conn = conn;
            redis_op(timeout, pipe.query_async::<()>(&mut conn)).await
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.note_redis(true, None, ctx);
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
        MessageResult(CacheInfo { redis: self.state, entries })
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
