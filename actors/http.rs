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
//! Shared state: [`AppState`] (the actors' addresses and the settings), put
//! into the app as `web::Data<AppState>`; a handler takes
//! `state: web::Data<AppState>` and sends the actors their messages.
//!
//! The server does not handle signals itself: `run` calls [`HttpHandle::stop`]
//! on SIGTERM/SIGINT with the rest of the shutdown.

use crate::cache::CacheActor;
use crate::horde_fetcher::HordeFetcherActor;
use crate::hydrator::HydratorActor;
use crate::invalidation::InvalidationActor;
use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use horde_hydrator::settings::Settings;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What every handler may use: the actors' addresses and the settings in
/// effect. Cheap to clone (addresses and an `Arc`).
#[derive(Clone)]
#[allow(dead_code)] // the routes that read them (/status, /readyz, the read API) come next
pub struct AppState {
    /// The entries (memory and Redis), Redis's state.
    pub cache: Addr<CacheActor>,
    /// The schedule, the last cycle's report.
    pub hydrator: Addr<HydratorActor>,
    /// The sources and their circuits.
    pub fetcher: Addr<HordeFetcherActor>,
    /// The pub/sub subscriber (`None` when Redis is disabled).
    pub invalidation: Option<Addr<InvalidationActor>>,
    pub settings: Arc<Settings>,
    /// The read API's snapshot of the entries, written by the cache (`read_api.rs`).
    pub reads: crate::read_api::ReadStore,
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
    let addr = state.settings.http.bind_addr().map_err(|e| e.to_string())?;
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
    // ---- more route sets go here, e.g. the read API (issue 15):
    cfg.configure(crate::read_api::routes);
    // ----
    cfg.default_service(web::to(not_found));
}

/// The operations routes: `/healthz`, and (in progress) `/readyz`, `/metrics`, `/status`.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz").route(web::get().to(healthz)).default_service(web::to(method_not_allowed)),
    );
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
/// Every route of this server is read-only, so `Allow: GET`.
pub async fn method_not_allowed() -> HttpResponse {
    let mut reply = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    reply
        .headers_mut()
        .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("GET"));
    reply
}

/// Liveness: the actors' system runs (no dependency is checked).
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
