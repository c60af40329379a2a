//! A fake AI Horde API and model-reference server for the daemon's tests.
//!
//! An in-process actix-web server on a free loopback port, in its own thread
//! with its own actix `System`, serving a dataset directory in the layout of the
//! conformance corpus (`horde/…`, `model_reference/…`) under the SPEC §2 routes:
//!
//! | route | file |
//! | --- | --- |
//! | `/api/v2/status/models?type=image\|text&model_state=known` | `horde/status_models_{image,text}.json` |
//! | `/api/v2/stats/img/models` | `horde/stats_img_models.json` |
//! | `/api/v2/stats/text/models` | `horde/stats_text_models.json` |
//! | `/model_references/v2/{category}` | `model_reference/{category}.json` |
//!
//! so one server is both `horde.api_url` ([`HordeServer::api_url`]) and
//! `model_reference.url` ([`HordeServer::reference_url`]). Files are read on
//! every request, so a test edits them in place to change the data. The server
//! can misbehave on demand ([`Mode`]), globally or per route, and it logs every
//! request (route, query, `Client-Agent` header).

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Size of the body [`Mode::Huge`] streams.
pub const HUGE_BODY_BYTES: usize = 200 * 1024 * 1024;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The file, as JSON.
    Normal,
    /// An empty-bodied error with this status (500, 503, 429, ...).
    Status(u16),
    /// Waits this long, then answers normally.
    Slow(Duration),
    /// 200 with a JSON content type and a body that is not JSON.
    Garbage,
    /// 200, chunked; the first half of the file, then the connection is cut.
    Truncated,
    /// 200, chunked, [`HUGE_BODY_BYTES`] of valid JSON (an empty list padded
    /// with whitespace): only a response size limit stops a client taking it.
    Huge,
}

/// The routes the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    StatusImage,
    StatusText,
    StatsImage,
    StatsText,
    ImageReference,
    TextReference,
    /// Anything else (answered 404).
    Unknown,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::StatusImage,
        Route::StatusText,
        Route::StatsImage,
        Route::StatsText,
        Route::ImageReference,
        Route::TextReference,
    ];

    /// The file answering this route, relative to the dataset directory.
    pub fn file(self) -> Option<&'static str> {
        Some(match self {
            Route::StatusImage => "horde/status_models_image.json",
            Route::StatusText => "horde/status_models_text.json",
            Route::StatsImage => "horde/stats_img_models.json",
            Route::StatsText => "horde/stats_text_models.json",
            Route::ImageReference => "model_reference/image_generation.json",
            Route::TextReference => "model_reference/text_generation.json",
            Route::Unknown => return None,
        })
    }

    pub fn is_reference(self) -> bool {
        matches!(self, Route::ImageReference | Route::TextReference)
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub route: Route,
    pub path: String,
    pub query: String,
    pub client_agent: Option<String>,
    pub at: Instant,
}

/// State shared between the test and the server thread.
struct Shared {
    root: PathBuf,
    default_mode: Mutex<Mode>,
    route_modes: Mutex<HashMap<Route, Mode>>,
    requests: Mutex<Vec<Request>>,
}

impl Shared {
    fn mode(&self, route: Route) -> Mode {
        let overrides = self.route_modes.lock().unwrap();
        overrides.get(&route).copied().unwrap_or(*self.default_mode.lock().unwrap())
    }
}

/// The running fake server; stopped when dropped.
pub struct HordeServer {
    shared: Arc<Shared>,
    port: u16,
    handle: actix_web::dev::ServerHandle,
    thread: Option<thread::JoinHandle<()>>,
}

fn route_of(path: &str, query: &str) -> Route {
    let param = |name: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    };
    match path {
        "/api/v2/status/models" => match param("type") {
            Some("image") => Route::StatusImage,
            Some("text") => Route::StatusText,
            _ => Route::Unknown,
        },
        "/api/v2/stats/img/models" => Route::StatsImage,
        "/api/v2/stats/text/models" => Route::StatsText,
        "/model_references/v2/image_generation" => Route::ImageReference,
        "/model_references/v2/text_generation" => Route::TextReference,
        _ => Route::Unknown,
    }
}

fn json_response(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

async fn handle(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let route = route_of(req.path(), req.query_string());
    shared.requests.lock().unwrap().push(Request {
        route,
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        client_agent: req.headers().get("Client-Agent").and_then(|v| v.to_str().ok()).map(str::to_string),
        at: Instant::now(),
    });
    let Some(file) = route.file() else {
        return HttpResponse::NotFound().body("no such route in the fake Horde");
    };
    let read = || std::fs::read(shared.root.join(file));
    match shared.mode(route) {
        Mode::Normal => match read() {
            Ok(body) => json_response(body),
            Err(_) => HttpResponse::NotFound().finish(),
        },
        Mode::Status(code) => HttpResponse::new(StatusCode::from_u16(code).unwrap()),
        Mode::Slow(delay) => {
            actix_rt::time::sleep(delay).await;
            match read() {
                Ok(body) => json_response(body),
                Err(_) => HttpResponse::NotFound().finish(),
            }
        }
        Mode::Garbage => {
            let mut body = b"<html><body>502 Bad Gateway</body></html>{\"name\": [1, 2".to_vec();
            body.extend((0u8..=255).rev());
            json_response(body)
        }
        Mode::Truncated => {
            let body = read().unwrap_or_else(|_| vec![b'['; 4096]);
            let half = Bytes::from(body[..body.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))];
            HttpResponse::Ok().content_type("application/json").streaming(futures_util::stream::iter(chunks))
        }
        Mode::Huge => {
            const CHUNK: usize = 64 * 1024;
            let spaces = Bytes::from(vec![b' '; CHUNK]);
            let body = std::iter::once(Bytes::from_static(b"["))
                .chain(std::iter::repeat_n(spaces, HUGE_BODY_BYTES / CHUNK))
                .chain(std::iter::once(Bytes::from_static(b"]")))
                .map(Ok::<Bytes, std::io::Error>);
            HttpResponse::Ok().content_type("application/json").streaming(futures_util::stream::iter(body))
        }
    }
}

impl HordeServer {
    /// Serves the dataset directory `root` (holding `horde/` and `model_reference/`).
    pub fn start(root: impl AsRef<Path>) -> HordeServer {
        let shared = Arc::new(Shared {
            root: std::fs::canonicalize(root.as_ref()).unwrap_or_else(|_| root.as_ref().to_path_buf()),
            default_mode: Mutex::new(Mode::Normal),
            route_modes: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let data = web::Data::from(shared.clone());
        let thread = thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new().app_data(data.clone()).default_service(web::to(handle))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                let _ = server.await;
            })
        });
        let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).expect("fake Horde did not start");
        HordeServer { shared, port, handle, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The value for `horde.api_url`: `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    /// The value for `model_reference.url`: `http://127.0.0.1:PORT`.
    pub fn reference_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The dataset directory served.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Sets how every route answers (per-route modes set by [`Self::set_route_mode`] win).
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.default_mode.lock().unwrap() = mode;
    }

    /// Sets how one route answers.
    pub fn set_route_mode(&self, route: Route, mode: Mode) {
        self.shared.route_modes.lock().unwrap().insert(route, mode);
    }

    /// Back to [`Mode::Normal`] everywhere.
    pub fn reset_modes(&self) {
        self.set_mode(Mode::Normal);
        self.shared.route_modes.lock().unwrap().clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests a route has had.
    pub fn count(&self, route: Route) -> usize {
        self.shared.requests.lock().unwrap().iter().filter(|r| r.route == route).count()
    }

    /// How many requests any route has had.
    pub fn total(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }
}

impl Drop for HordeServer {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only awaits it.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies a dataset (its `horde/` and `model_reference/`) into a new temporary
/// directory that a test may edit.
pub fn copy_dataset(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["horde", "model_reference"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(src.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// Reads a JSON file of a dataset.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes a JSON file of a dataset atomically (so the server never serves half).
pub fn write_json(path: &Path, value: &serde_json::Value) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
