//! The operations HTTP server: liveness, readiness, metrics, status — and the
//! hook where other route sets (the read API) plug in.
//!
//! An actix-web [`HttpServer`] in the daemon's own actix system, started by
//! `run` (never by `once` or `admin`) when `http.enabled`, on `http.bind`
//! (`127.0.0.1:9360` by default). One worker thread: the handlers only send
//! messages to the actors and wait for their answers, so the server never
//! runs on — or blocks — the actors' thread and the cycle.
//!
//! Routes: [`ops_routes`] (`GET /healthz` …) and, after it, every route set
//! listed in [`app_routes`] — the one place to add more. Anything else is a
//! JSON 404, a known path with another method a JSON 405 (`{"error": …}`).
//!
//! Shared state: [`AppState`] (the actors' addresses, the metrics and the
//! settings), put into the app as `web::Data<AppState>`; a handler takes
//! `state: web::Data<AppState>` and sends the actors their messages.
//!
//! The server does not handle signals itself: `run` calls [`HttpHandle::stop`]
//! on SIGTERM/SIGINT with the rest of the shutdown.

use crate::admin::{AdminCommand, Reply, ReplyBody};
use crate::cache::Freshness;
use crate::status::{StatusReply, StatusSources};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use horde_hydrator::keys::EntryKey;
use horde_hydrator::settings::Settings;
use serde::Serialize;
use std::time::Duration;

/// What every handler may use, as `state: web::Data<AppState>`. Cheap to
/// clone (addresses and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The actors' addresses (`cache`, `hydrator`, `fetcher`, `invalidation`
    /// — `None` without Redis), the metrics, the settings in effect
    /// (`Arc<Settings>`) and the start time: what the status is built from.
    /// Reachable directly too (`state.cache`, `state.settings()`) through `Deref`.
    pub status: StatusSources,
    /// The read API's snapshot of the entries, written by the cache (`read_api.rs`).
    pub reads: crate::read_api::ReadStore,
}

impl std::ops::Deref for AppState {
    type Target = StatusSources;

    fn deref(&self) -> &StatusSources {
        &self.status
    }
}

/// The running server.
pub struct HttpHandle {
    server: actix_web::dev::ServerHandle,
}

impl HttpHandle {
    /// Stop accepting, let requests in flight finish (at most 1 s).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// How long requests in flight may run on after a stop.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 1;

/// Start the server on `http.bind`; an error names the address and says what to do.
pub fn start(state: AppState) -> Result<HttpHandle, String> {
    let addr = state.settings().http.bind;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(app_routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS)
        .client_request_timeout(Duration::from_secs(5))
        .bind(addr)
        .map_err(|e| {
            format!(
                "cannot listen on http.bind {addr}: {e} (choose another address in [http] bind, or set http.enabled = false)"
            )
        })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    log::info!("http: listening on {bound} (/healthz /readyz /metrics /status)");
    Ok(HttpHandle { server: handle })
}

/// Every route set of the server, in order. **Add new route sets here.**
pub fn app_routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops_routes);
    // ---- more route sets go here, e.g. the read API:
    cfg.configure(crate::read_api::routes);
    // ----
    cfg.default_service(web::to(not_found));
}

/// The operations routes: `/healthz`, `/readyz`, `/metrics`, `/status`.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/healthz", healthz))
        .service(get("/readyz", readyz))
        .service(get("/metrics", metrics))
        .service(get("/status", status));
}

/// A resource answering GET and HEAD (and a JSON 405 for any other method).
pub fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(method_not_allowed))
}

/// A short JSON error body: `{"error": "...", "status": 404}`.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub status: u16,
}

/// A response with a short JSON error body.
pub fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody { error: message, status: status.as_u16() })
}

async fn not_found() -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "not found")
}

/// The default service of every resource: the path exists, not with this method.
/// Every route of this server is read-only, so `Allow: GET, HEAD`.
pub async fn method_not_allowed() -> HttpResponse {
    let mut reply = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    reply.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static("GET, HEAD"),
    );
    reply
}

/// Liveness: the actors' system runs (no dependency is checked).
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The status, or a 503 naming the actor that did not answer.
async fn gather(state: &AppState) -> Result<StatusReply, HttpResponse> {
    state.gather().await.map_err(|e| error_response(StatusCode::SERVICE_UNAVAILABLE, &e))
}

/// The same reply as `admin status` (`{"ok": true, "command": "status", …}`).
async fn status(state: web::Data<AppState>) -> HttpResponse {
    match gather(&state).await {
        Ok(status) => {
            HttpResponse::Ok().json(Reply::ok(&AdminCommand::Status, ReplyBody::Status(Box::new(status))))
        }
        Err(response) => response,
    }
}

/// The Prometheus scrape: the state gauges are set from a fresh status first.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let status = match gather(&state).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let settings = state.settings();
    state.metrics.observe_status(&status, &configured_entries(&settings), &settings.redis.key_prefix);
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(text),
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics"),
    }
}

/// Every entry of the configured categories: what `/readyz` and the
/// per-entry gauges of `/metrics` cover.
pub fn configured_entries(settings: &Settings) -> Vec<EntryKey> {
    settings.hydration.categories.iter().copied().flat_map(EntryKey::for_category).collect()
}

/// The body of `/readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, in one sentence (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Configured entries that readers cannot get (absent or expired), by name.
    pub missing: Vec<String>,
    /// Entries served past their TTL (stale-if-error), by name.
    pub stale: Vec<String>,
    /// Redis's state, for information (readiness does not depend on it).
    pub redis: crate::cache::RedisState,
}

/// Ready when a cycle has finished and every configured entry can be served
/// (fresh, or stale within `hydration.stale_ttl_seconds`); else 503 saying why.
pub fn readiness(status: &StatusReply, configured: &[EntryKey], prefix: &str) -> Readiness {
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for key in configured {
        let redis_key = key.redis_key(prefix);
        match status.entries.iter().find(|e| e.key == redis_key).map(|e| e.freshness) {
            Some(Freshness::Fresh) => {}
            Some(Freshness::Stale) => stale.push(key.name()),
            Some(Freshness::Expired) | None => missing.push(key.name()),
        }
    }
    // Replicas: a follower hydrates nothing itself; it is ready while it
    // sees a live leader (the lease holder keeps the entries in Redis).
    // Until its first lease answer a daemon counts as a follower that sees
    // nobody: at start-up the reason says both.
    let follower = status.replica.role == "follower";
    let no_cycle = status.hydrator.last_cycle.is_none() && status.entries.is_empty();
    let reason = if follower && status.replica.leader.is_some() {
        None
    } else if follower && no_cycle {
        Some(
            "no hydration cycle has finished yet, and this replica is a follower that sees no live leader"
                .to_string(),
        )
    } else if follower {
        Some("this replica is a follower and sees no live leader".to_string())
    } else if no_cycle {
        Some("no hydration cycle has finished yet".to_string())
    } else if !missing.is_empty() {
        Some(format!("{} of {} entries are missing or expired", missing.len(), configured.len()))
    } else {
        None
    };
    Readiness { ready: reason.is_none(), reason, missing, stale, redis: status.redis.state }
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let status = match gather(&state).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let settings = state.settings();
    let r = readiness(&status, &configured_entries(&settings), &settings.redis.key_prefix);
    let code = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(code).json(r)
}
