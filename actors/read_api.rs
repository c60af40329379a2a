//! The read API: the reference's statistics read routes, answered
//! from the daemon's own entries on the operations HTTP server (`http.rs`).
//!
//! Owns the HTTP side of the routes ([`routes`]) and the [`ReadStore`], the
//! read-only snapshot of the entries that the handlers answer from. What an
//! answer is (validation, which entry, pagination, presets) is the pure core's
//! `horde_hydrator::output::read_api`; this file adds what a fast read API has:
//!
//! - **Where the bytes come from.** The `CacheActor` publishes each entry it
//!   stores (the very bytes it sends to Redis) into the store, and removes it
//!   on invalidation. A daemon that holds no entry of its own (a follower
//!   replica, or before its first cycle) loads the entries from Redis
//!   ([`crate::cache::LoadReadsFromRedis`]) when asked for one it lacks, and
//!   reloads them at most every [`REDIS_REFRESH`] while requests come (one
//!   load at a time; requests that found nothing wait for it), so the
//!   leader's writes reach it. An entry of its own that is past its TTL also
//!   asks Redis, and yields to a later version found there (an ex-leader
//!   serves the new leader's entries). **Replicas hook:** a follower that
//!   learns of the leader's write sooner may send `LoadReadsFromRedis` itself.
//! - **Stale-if-error.** An entry past its TTL but younger than
//!   `hydration.stale_ttl_seconds` (with hydration enabled) is served; older,
//!   or never computed, the answer is 503 with `{"detail": …}`.
//! - **HTTP caching.** `ETag` per entry version (a hash of the bytes, so every
//!   replica gives the same tag for the same entry) and per view; a matching
//!   `If-None-Match` → 304 without a body. `Cache-Control: max-age=<seconds
//!   left of the TTL>` (0 once stale). `Content-Length` on every body;
//!   keep-alive is actix-web's default.
//! - **gzip** when `Accept-Encoding` allows it, compressed once per entry
//!   version (and per view) on first request, then served from memory with
//!   `Vary: Accept-Encoding`. Brotli is not offered (no brotli encoder in the
//!   dependency tree; gzip already makes the largest entry ~8x smaller).
//! - **Views** other than the stored bytes (pages, presets, statistics with
//!   offset/limit) are rendered once per entry version and kept, up to
//!   [`VIEW_CACHE_BYTES`] per entry.
//!
//! **Why a shared snapshot and not a message per request** (the actors'
//! rule is to share nothing but messages): a request must never wait on a
//! cycle or on the cache actor's mailbox. The store is written only by the
//! `CacheActor` (one writer, a whole entry swapped under a short write lock)
//! and read by the HTTP workers, who clone an `Arc` and let go; nothing in it
//! is mutated in place except the per-version memos of compressed and
//! rendered bodies, which are pure functions of the immutable entry.

use crate::cache::{Freshness, LoadReadsFromRedis};
use crate::http::AppState;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use horde_hydrator::cycle::EntryJson;
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::output::read_api::{self, ErrorAnswer, ReadRequest, Rendered, Route, View};
use horde_hydrator::settings::{CacheSettings, Settings};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How often a daemon that serves entries read from Redis reloads them while requests come.
pub const REDIS_REFRESH: Duration = Duration::from_secs(2);

/// How long a request that found no entry waits for another request's load from Redis.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// Rendered views kept per entry version, in bytes of body.
pub const VIEW_CACHE_BYTES: usize = 16 << 20;

/// Where an entry in the store came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Stored by this daemon's cycle.
    Cycle,
    /// Read from Redis (written by another daemon, or by this one before a restart).
    Redis,
}

/// A body and its tags, with its gzip form made on first need. The gzip
/// form has its own tag (the identity's with `-gzip`, as Apache's
/// mod_deflate does): the two are different bytes of the same version.
struct Body {
    bytes: Bytes,
    etag: HeaderValue,
    gzip_etag: HeaderValue,
    gzip: OnceLock<Option<Bytes>>,
}

impl Body {
    /// `tag` is the opaque part of the entity tag (no quotes).
    fn new(bytes: Bytes, tag: &str) -> Self {
        let value =
            |t: String| HeaderValue::from_str(&t).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Body {
            bytes,
            etag: value(format!("\"{tag}\"")),
            gzip_etag: value(format!("\"{tag}-gzip\"")),
            gzip: OnceLock::new(),
        }
    }

    /// The opaque part of the tag.
    fn tag(&self) -> &str {
        self.etag.to_str().unwrap_or("\"0\"").trim_matches('"')
    }

    /// The gzip form; `None` if compressing failed (then the identity is sent).
    fn gzip(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.bytes.len() / 6 + 64),
                    flate2::Compression::new(6),
                );
                enc.write_all(&self.bytes).and_then(|()| enc.finish()).ok().map(Bytes::from)
            })
            .as_ref()
    }
}

/// One version of one entry: its bytes and what is derived from them, each
/// made on first need (a cycle publishes every entry; most are never read
/// between two cycles, and hashing them all would cost the cycle).
struct Version {
    json: EntryJson,
    hash: OnceLock<u64>,
    body: OnceLock<Body>,
    views: Mutex<ViewCache>,
}

/// One entry as the handlers serve it: a version and its clock.
pub struct Published {
    version: Arc<Version>,
    /// When the entry was stored (for a Redis-loaded entry: derived from its remaining TTL).
    stored_at: Instant,
    /// How old its data is: the stale TTL counts from here (the cache's
    /// rule: a risk entry made from kept Horde inputs is as old as they are).
    as_of: Instant,
    ttl: Duration,
    origin: Origin,
    loaded_at: Instant,
}

#[derive(Default)]
struct ViewCache {
    bytes: usize,
    map: HashMap<View, Arc<Result<Body, ErrorAnswer>>>,
}

fn content_hash(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6864_7261_7465_7221).hash_one(bytes)
}

impl Version {
    fn new(json: EntryJson) -> Self {
        Version {
            json,
            hash: OnceLock::new(),
            body: OnceLock::new(),
            views: Mutex::new(ViewCache::default()),
        }
    }

    fn hash(&self) -> u64 {
        *self.hash.get_or_init(|| content_hash(self.json.as_bytes()))
    }

    /// The stored bytes as served; they share the cache's buffer (no copy of the entry).
    fn body(&self) -> &Body {
        self.body
            .get_or_init(|| Body::new(Bytes::from_owner(self.json.clone()), &format!("{:016x}", self.hash())))
    }

    /// The body of a view other than the stored bytes, rendered once (memoised).
    fn view(&self, view: &View) -> Arc<Result<Body, ErrorAnswer>> {
        if let Ok(cache) = self.views.lock() {
            if let Some(hit) = cache.map.get(view) {
                return hit.clone();
            }
        }
        let tag = format!("{}-{:016x}", self.body().tag(), content_hash(format!("{view:?}").as_bytes()));
        let rendered = Arc::new(match read_api::render(view, &self.json) {
            Ok(Rendered::Stored) => Ok(Body::new(self.body().bytes.clone(), &tag)),
            Ok(Rendered::Body(b)) => Ok(Body::new(Bytes::from(b), &tag)),
            Err(e) => Err(e),
        });
        if let Ok(mut cache) = self.views.lock() {
            let size = match &*rendered {
                Ok(b) => b.bytes.len(),
                Err(e) => e.body.len(),
            };
            if cache.bytes + size > VIEW_CACHE_BYTES {
                cache.map.clear();
                cache.bytes = 0;
            }
            cache.bytes += size;
            cache.map.insert(view.clone(), rendered.clone());
        }
        rendered
    }
}

/// What decides an entry's TTL and whether it is served stale.
#[derive(Debug, Clone)]
struct ReadPolicy {
    ttls: CacheSettings,
    stale_ttl: Duration,
    hydration_enabled: bool,
}

/// The entries as the read API serves them: one writer (the `CacheActor`),
/// many readers (the HTTP workers). Cheap to clone.
#[derive(Clone)]
pub struct ReadStore {
    entries: Arc<RwLock<HashMap<EntryKey, Arc<Published>>>>,
    /// The TTLs and the stale-if-error rule, shared by every clone (a settings
    /// reload changes them: [`ReadStore::reconfigure`]).
    policy: Arc<RwLock<ReadPolicy>>,
    redis_enabled: bool,
    /// Milliseconds since `epoch` of the last load from Redis asked for (throttle).
    last_load_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// A load from Redis runs; requests that found no entry wait for it.
    load_in_flight: Arc<AtomicBool>,
    /// Counts finished loads (wakes the waiting requests).
    loads: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ReadStore {
    pub fn new(settings: &Settings) -> Self {
        ReadStore {
            entries: Arc::default(),
            policy: Arc::new(RwLock::new(ReadPolicy {
                ttls: settings.cache.clone(),
                stale_ttl: settings.hydration.stale_ttl,
                hydration_enabled: settings.hydration.enabled,
            })),
            redis_enabled: settings.redis.enabled,
            last_load_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
            load_in_flight: Arc::new(AtomicBool::new(false)),
            loads: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// The cache finished a load from Redis (whatever its outcome).
    pub fn loaded(&self) {
        self.load_in_flight.store(false, Ordering::Release);
        self.loads.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn ttl(&self, kind: EntryKind) -> Duration {
        self.policy().ttls.ttl(kind)
    }

    fn policy(&self) -> ReadPolicy {
        self.policy.read().map_or_else(|e| e.into_inner().clone(), |p| p.clone())
    }

    /// A settings reload (SIGHUP): the TTLs of entries published from now on,
    /// and the stale-if-error rule from now on (the cache's own rule).
    pub fn reconfigure(&self, ttls: CacheSettings, stale_ttl: Duration, hydration_enabled: bool) {
        let policy = ReadPolicy { ttls, stale_ttl, hydration_enabled };
        match self.policy.write() {
            Ok(mut p) => *p = policy,
            Err(e) => *e.into_inner() = policy,
        }
    }

    /// The cache stored `json` under `key` at `stored_at` (this daemon's
    /// cycle), from data as of `as_of`.
    pub fn publish(&self, key: EntryKey, json: EntryJson, stored_at: Instant, as_of: Instant) {
        let published = Arc::new(Published {
            version: Arc::new(Version::new(json)),
            stored_at,
            as_of,
            ttl: self.ttl(key.kind),
            origin: Origin::Cycle,
            loaded_at: Instant::now(),
        });
        if let Ok(mut map) = self.entries.write() {
            map.insert(key, published);
        }
    }

    /// An entry read from Redis with `remaining` of its TTL left (its age is
    /// taken as TTL − remaining). Ignored when this daemon's own cycle stored
    /// the same bytes or a later version; the same bytes from Redis keep
    /// their rendered views.
    pub fn publish_from_redis(&self, key: EntryKey, json: EntryJson, remaining: Duration) {
        let ttl = self.ttl(key.kind);
        let now = Instant::now();
        let age = ttl.saturating_sub(remaining);
        let stored_at = now.checked_sub(age).unwrap_or(now);
        let Ok(mut map) = self.entries.write() else { return };
        let version = match map.get(&key) {
            Some(p) => {
                // The Redis copy is hashed once (a whole entry, at every load).
                let hash = content_hash(json.as_bytes());
                let same = p.version.hash() == hash;
                // This daemon's own cycle stored the key: its copy stands unless
                // Redis holds another version written later (another daemon
                // became the leader; this one keeps serving, from Redis).
                if p.origin == Origin::Cycle && (same || stored_at <= p.stored_at + Duration::from_secs(1)) {
                    return;
                }
                if same {
                    // Same version: keep its memos; only the clock is refreshed.
                    p.version.clone()
                } else {
                    let version = Version::new(json);
                    let _ = version.hash.set(hash);
                    Arc::new(version)
                }
            }
            None => Arc::new(Version::new(json)),
        };
        map.insert(
            key,
            Arc::new(Published {
                version,
                stored_at,
                as_of: stored_at,
                ttl,
                origin: Origin::Redis,
                loaded_at: now,
            }),
        );
    }

    /// This daemon became a follower (replicas): Redis, where the leader
    /// writes, is the truth now. Its own entries are kept but count as read
    /// from Redis, due for a reload on the next request.
    pub fn follow_redis(&self) {
        let Ok(mut map) = self.entries.write() else { return };
        let due = Instant::now().checked_sub(REDIS_REFRESH).unwrap_or_else(Instant::now);
        for p in map.values_mut() {
            if p.origin == Origin::Cycle {
                *p = Arc::new(Published {
                    version: p.version.clone(),
                    stored_at: p.stored_at,
                    as_of: p.as_of,
                    ttl: p.ttl,
                    origin: Origin::Redis,
                    loaded_at: due,
                });
            }
        }
    }

    /// A key from Redis is gone: drop it (only if Redis was its source).
    pub fn forget_redis(&self, key: &EntryKey) {
        if let Ok(mut map) = self.entries.write() {
            if map.get(key).is_some_and(|p| p.origin == Origin::Redis) {
                map.remove(key);
            }
        }
    }

    pub fn remove(&self, key: &EntryKey) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(key);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }

    fn get(&self, key: &EntryKey) -> Option<Arc<Published>> {
        self.entries.read().ok().and_then(|m| m.get(key).cloned())
    }

    /// The cache's rule (`MemEntry::is_past_stale_ttl`): fresh within the
    /// TTL of the store; then, with hydration enabled, stale until the stale
    /// TTL after the data's `as_of`.
    fn freshness(&self, p: &Published) -> Freshness {
        let now = Instant::now();
        let policy = self.policy();
        if now < p.stored_at + p.ttl {
            Freshness::Fresh
        } else if policy.hydration_enabled && now < p.as_of + policy.stale_ttl {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// Whether a load from Redis may start now (at most one per [`REDIS_REFRESH`]).
    fn claim_load(&self) -> bool {
        if !self.redis_enabled {
            return false;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_load_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < REDIS_REFRESH.as_millis() as u64 {
            return false;
        }
        let claimed =
            self.last_load_ms.compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed).is_ok();
        if claimed {
            self.load_in_flight.store(true, Ordering::Release);
        }
        claimed
    }
}

// ---------------------------------------------------------------- routes

/// The read routes, with and without the service's `/api` root path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for prefix in ["/api/model_references/statistics", "/model_references/statistics"] {
        cfg.service(
            web::resource(format!("{prefix}/{{category}}/deletion-risk"))
                .route(web::get().to(deletion_risk))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(
            web::resource(format!("{prefix}/{{category}}"))
                .route(web::get().to(statistics))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

async fn method_not_allowed() -> HttpResponse {
    let mut reply = json_error(&ErrorAnswer::detail(405, "Method Not Allowed"));
    reply.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    reply
}

async fn deletion_risk(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    answer(Route::DeletionRisk, &req, &state).await
}

async fn statistics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    answer(Route::Statistics, &req, &state).await
}

fn json_error(e: &ErrorAnswer) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(e.body.clone())
}

async fn answer(route: Route, req: &HttpRequest, state: &AppState) -> HttpResponse {
    let category = req.match_info().get("category").unwrap_or("");
    let request = match read_api::parse_request(route, category, req.query_string()) {
        Ok(r) => r,
        Err(e) => return json_error(&e),
    };
    let store = &state.reads;
    // Subscribed before looking, so a load that ends after the look wakes us.
    let mut loads = store.loads.subscribe();
    let mut entry = store.get(&request.key);
    let servable =
        |p: &Option<Arc<Published>>| p.as_ref().is_some_and(|p| store.freshness(p) != Freshness::Expired);
    if !servable(&entry) && store.claim_load() {
        // Nothing to serve from memory: ask Redis (bounded by the socket timeout).
        let _ = state.cache.send(LoadReadsFromRedis).await;
        store.loaded(); // also when the message could not be delivered
        entry = store.get(&request.key);
    } else if !servable(&entry) && store.load_in_flight.load(Ordering::Acquire) {
        // Another request is asking Redis: wait for that answer.
        let _ = tokio::time::timeout(LOAD_WAIT, loads.changed()).await;
        entry = store.get(&request.key);
    } else if entry.as_ref().is_some_and(|p| {
        (p.origin == Origin::Redis && p.loaded_at.elapsed() >= REDIS_REFRESH)
            || store.freshness(p) == Freshness::Stale
    }) && store.claim_load()
    {
        // Serve what we have; pick up newer writes (the leader's, or another
        // daemon's while this one's entry is stale) for the next request.
        state.cache.do_send(LoadReadsFromRedis);
    }
    let Some(entry) = entry.filter(|p| store.freshness(p) != Freshness::Expired) else {
        return json_error(&ErrorAnswer::unavailable(&request.key));
    };
    respond(req, &request, &entry)
}

fn respond(req: &HttpRequest, request: &ReadRequest, entry: &Published) -> HttpResponse {
    let rendered;
    let body: &Body = match &request.view {
        View::Stored => entry.version.body(),
        view => {
            rendered = entry.version.view(view);
            match &*rendered {
                Ok(b) => b,
                Err(e) => return json_error(e),
            }
        }
    };
    let left = entry.ttl.saturating_sub(entry.stored_at.elapsed()).as_secs();
    let cache_control = HeaderValue::from_str(&format!("max-age={left}"))
        .unwrap_or_else(|_| HeaderValue::from_static("max-age=0"));
    let gzip = if accepts_gzip(req) { body.gzip() } else { None };
    let etag = if gzip.is_some() { &body.gzip_etag } else { &body.etag };
    // Either tag names this version: a client that cached one form may be sent the other's 304.
    if if_none_match(req, &body.etag) || if_none_match(req, &body.gzip_etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag.clone()))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")))
            .finish();
    }
    let mut reply = HttpResponse::Ok();
    reply
        .content_type("application/json")
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    match gzip {
        Some(gz) => {
            reply.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            reply.body(gz.clone())
        }
        None => reply.body(body.bytes.clone()),
    }
}

/// `If-None-Match` lists this tag (or `*`); weak tags compare equal (RFC 9110 §13.1.2).
fn if_none_match(req: &HttpRequest, etag: &HeaderValue) -> bool {
    let tag = etag.as_bytes();
    req.headers().get_all(header::IF_NONE_MATCH).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == tag)
        })
    })
}

/// `Accept-Encoding` names gzip (or `*`) with a non-zero q.
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
                    return false;
                }
                !parts.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .or_else(|| p.strip_prefix("Q="))
                        .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
                })
            })
        })
    })
}
