//! horde-hydrator: the daemon's entry point and its three commands.
//!
//! * `run` starts the actors (SPEC §1) — CacheActor, HordeFetcherActor, the
//!   RiskComputeActor pool, HydratorActor, (with Redis) InvalidationActor
//!   and LeaderActor (replicas: only the lease holder hydrates) and (with
//!   `http.enabled`) the operations HTTP server (`http.rs`) — and waits for
//!   SIGINT/SIGTERM; then it stops the HTTP server and scheduling, lets a running
//!   cycle finish for up to 3 s (else aborts it; each category's write is one
//!   atomic script either way) and exits 0 within 5 s. SIGHUP reloads the
//!   settings (`reload.rs`); SIGUSR1/SIGUSR2 are logged and ignored.
//! * `once` runs one cycle through the same actors, prints a table and exits
//!   non-zero when any source or entry failed.
//! * `admin` publishes a command on `P:admin` and prints the reply.
//! * `check-config` loads and validates the settings and prints them (secrets
//!   redacted) with where each value came from.
//!
//! Exit codes: 0 success, 1 a failed cycle or admin command, 2 bad settings
//! or start-up failure.

mod admin;
mod cache;
mod cli;
mod config;
mod fenced;
mod generations;
mod horde_fetcher;
mod http;
mod hydrator;
mod invalidation;
mod leader;
mod log_filter;
mod metrics;
mod read_api;
mod redis_client;
mod redis_link;
mod reload;
mod risk_compute;
mod sd_notify;
mod signals;
mod status;

use actix::prelude::*;
use clap::Parser;
use cli::{AdminCli, Cli, Command};
use horde_hydrator::category::Category;
use horde_hydrator::input::source::SourceId;
use horde_hydrator::keys::EntryKey;
use horde_hydrator::settings::Settings;
use hydrator::{CategoryOutcome, CycleDeps, CycleReport};
use metrics::Metrics;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a running cycle may go on after a stop signal before it is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The hard limit for the whole shutdown.
const SHUTDOWN_LIMIT: Duration = Duration::from_millis(4500);

fn main() {
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("horde-hydrator: {e}");
            std::process::exit(2);
        }
    };
    if matches!(cli.command, Command::CheckConfig) {
        emit(&check_config_report(&settings));
        std::process::exit(0);
    }
    init_logging(&settings.log);
    let mut settings = settings;
    if settings.leader.instance_id.is_empty() {
        settings.leader.instance_id = default_instance_id();
    }
    match &settings.provenance.file {
        Some(f) => log::debug!("settings from {} and the environment: {settings:?}", f.display()),
        None => log::debug!("settings: defaults and the environment: {settings:?}"),
    }
    // awc's rustls needs a process-wide crypto provider; a second install
    // (impossible here) would only return an error, which changes nothing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("horde-hydrator: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let system = actix_rt::System::with_tokio_rt(move || runtime);
    let code = system.block_on(async move {
        match cli.command {
            Command::Run => run(settings, cli.config.as_deref()).await,
            Command::Once { dump } => once(settings, dump.as_deref()).await,
            Command::Admin(cmd) => admin_command(settings, cmd).await,
            Command::CheckConfig => 0,
        }
    });
    let _ = std::io::stdout().flush();
    // Exit now: compute or parse threads still busy must not delay the exit.
    std::process::exit(code);
}

/// The runtime the actors run on: actix's own (one thread, I/O and timers),
/// with at most one blocking thread per core (at least two). The blocking
/// threads read and parse the six sources of a cycle, which is CPU work: more
/// threads than cores only time-slice them, which delays the largest job (the
/// text reference), the one the cycle waits for (docs/PERFORMANCE.md has the
/// measurement). Within a category, RiskComputeActor decides the threads.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(cores).build()
}

/// The actors of a cycle, started on this system.
struct Parts {
    deps: CycleDeps,
    metrics: Arc<Metrics>,
    /// The read API's snapshot of the cache's entries.
    reads: read_api::ReadStore,
}

fn start_parts(settings: &Settings) -> Result<Parts, String> {
    let metrics = Arc::new(Metrics::new());
    let cache = cache::CacheActor::new(settings, metrics.clone()).map_err(|e| e.to_string())?;
    let reads = cache.reads();
    let cache = cache.start();
    let fetcher = horde_fetcher::HordeFetcherActor::new(settings, metrics.clone()).start();
    let compute = risk_compute::RiskComputeActor::start_pool();
    let deps = CycleDeps {
        fetcher,
        compute,
        cache,
        analysis: Arc::new(settings.analysis.clone()),
        metrics: metrics.clone(),
    };
    Ok(Parts { deps, metrics, reads })
}

/// The per-source and per-entry series `/metrics` shows (at 0) before their
/// first event (`run` only: `once` exposes no metrics).
fn preset_metrics(metrics: &Metrics, settings: &Settings) {
    let categories = &settings.hydration.categories;
    let sources: Vec<String> = categories
        .iter()
        .flat_map(|c| [SourceId::Reference(*c), SourceId::Status(*c), SourceId::Stats(*c)])
        .map(|s| s.to_string())
        .collect();
    let entries: Vec<String> = http::configured_entries(settings).iter().map(EntryKey::name).collect();
    metrics.preset(categories, &sources, &entries);
}

async fn run(settings: Settings, config_file: Option<&Path>) -> i32 {
    // Before the actors start, so that a SIGHUP or SIGUSR1 during their start-up
    // does not end the daemon.
    hydrator::bound_large_allocations();
    let mut signals = match signals::Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("horde-hydrator: cannot install the signal handlers: {e}");
            return 2;
        }
    };
    let started = std::time::Instant::now();
    let parts = match start_parts(&settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("horde-hydrator: {e}");
            return 2;
        }
    };
    preset_metrics(&parts.metrics, &settings);
    log::info!(
        "horde-hydrator {} starting: categories {}, every {} s after {} s; horde {}; model reference {}; redis {}",
        env!("CARGO_PKG_VERSION"),
        settings.hydration.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
        settings.hydration.interval.as_secs(),
        settings.hydration.startup_delay.as_secs(),
        settings.horde.api,
        settings.model_reference.source,
        if settings.redis.enabled { settings.redis.url.redacted() } else { "disabled".to_string() },
    );
    let leader = match leader::LeaderActor::new(&settings) {
        Ok(l) => l.map(Actor::start),
        Err(e) => {
            eprintln!("horde-hydrator: {e}");
            return 2;
        }
    };
    let hydrator = hydrator::HydratorActor::new(&settings, parts.deps.clone()).start();
    // The settings in effect, for the status reply: sent again after each reload.
    let (settings_in_effect, settings_view) = tokio::sync::watch::channel(Arc::new(settings.clone()));
    let status = status::StatusSources {
        cache: parts.deps.cache.clone(),
        hydrator: hydrator.clone(),
        fetcher: parts.deps.fetcher.clone(),
        invalidation: None,
        leader: leader.clone(),
        metrics: parts.metrics.clone(),
        settings: settings_view,
        started,
    };
    let invalidation = settings
        .redis
        .enabled
        .then(|| invalidation::InvalidationActor::new(&settings, status.clone()).start());
    if let Some(leader) = &leader {
        log::info!(
            "replicas: instance {} takes part in the leader election (lease {} s); only the leader hydrates",
            settings.leader.instance_id,
            settings.leader.lease.as_secs()
        );
        leader.do_send(leader::Subscribe(parts.deps.cache.clone().recipient()));
        leader.do_send(leader::Subscribe(hydrator.clone().recipient()));
        if let Some(invalidation) = &invalidation {
            leader.do_send(leader::Subscribe(invalidation.clone().recipient()));
        }
    }

    let http_server = if settings.http.enabled {
        let state = http::AppState {
            status: status::StatusSources { invalidation: invalidation.clone(), ..status },
            reads: parts.reads.clone(),
        };
        match http::start(state) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("horde-hydrator: {e}");
                return 2;
            }
        }
    } else {
        None
    };

    let targets = reload::Targets {
        hydrator: hydrator.clone(),
        cache: parts.deps.cache.clone(),
        fetcher: parts.deps.fetcher.clone(),
        invalidation,
    };
    let mut running = settings;
    let signal = loop {
        match signals.next().await {
            signals::Received::Stop(name) => break name,
            signals::Received::Reload => {
                log::info!("received SIGHUP: reloading the settings");
                running = reload::reload(config_file, &running, &targets);
                settings_in_effect.send_replace(Arc::new(running.clone()));
            }
            signals::Received::Ignored(name) => {
                log::info!("received {name}: ignored (SIGHUP reloads the settings; SIGTERM or SIGINT stops)")
            }
        }
    };
    log::info!("received {signal}: shutting down");
    sd_notify::notify("STOPPING=1");
    let stop_http = async {
        if let Some(h) = &http_server {
            h.stop().await;
        }
    };
    let (stopped, ()) = tokio::join!(
        tokio::time::timeout(SHUTDOWN_LIMIT, hydrator.send(hydrator::Shutdown { grace: SHUTDOWN_GRACE })),
        stop_http
    );
    if stopped.is_err() {
        log::warn!("shutdown: the hydrator did not stop in time; exiting anyway");
    }
    if let Some(leader) = &leader {
        // After the last cycle's writes: hand over at once.
        let _ = tokio::time::timeout(Duration::from_secs(1), leader.send(leader::Release)).await;
    }
    log::info!("stopped");
    System::current().stop();
    0
}

/// `<hostname>:<pid>`: this daemon's name among replicas when
/// `leader.instance_id` is not set.
fn default_instance_id() -> String {
    let host = system_hostname()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    let host: String =
        host.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect();
    format!("{host}:{}", std::process::id())
}

/// The kernel's host name, from gethostname(2): unlike
/// /proc/sys/kernel/hostname it is readable under the unit's `ProcSubset=pid`.
fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..len]).trim().to_string())
}

async fn once(settings: Settings, dump: Option<&Path>) -> i32 {
    let parts = match start_parts(&settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("horde-hydrator: {e}");
            return 2;
        }
    };
    if settings.redis.enabled {
        // `once` is a manual run: its writes are not fenced by the lease
        // (never backwards still holds).
        parts.deps.cache.do_send(leader::RoleChanged {
            role: horde_hydrator::leader::Role::Standalone,
            token: None,
            newest_written_ms: None,
        });
        let state = parts.deps.cache.send(cache::ProbeRedis).await;
        if !matches!(state, Ok(cache::RedisState::Up)) {
            log::warn!("redis {} is not reachable: entries will stay in memory", settings.redis.url);
        }
    }
    let report = hydrator::run_cycle(parts.deps.clone(), settings.hydration.categories.clone()).await;
    if report.outcome() == metrics::CycleOutcome::Ok {
        log::info!("{}", report.log_line());
    } else {
        log::warn!("{}", report.log_line());
    }
    print_table(&report, &settings);

    let mut problems = problems_of(&report);
    if let Some(dir) = dump {
        if let Err(e) = write_dump(&report, dir, &settings.hydration.categories) {
            problems.push(format!("dump to {}: {e}", dir.display()));
        }
    }
    if problems.is_empty() {
        0
    } else {
        for p in &problems {
            eprintln!("FAILED: {p}");
        }
        1
    }
}

/// Everything that makes `once` fail, one line each.
fn problems_of(report: &CycleReport) -> Vec<String> {
    let mut problems = Vec::new();
    // One line per cause: offline, six sources fail for two reasons.
    let mut causes: Vec<(&str, Vec<String>)> = Vec::new();
    for c in &report.categories {
        for (source, error) in &c.failed_sources {
            // "GET <url>: cause": the source names the URL; group by the cause.
            let error = error
                .strip_prefix("GET ")
                .and_then(|e| e.split_once(": "))
                .map_or(error.as_str(), |(_, c)| c);
            match causes.iter_mut().find(|(e, _)| *e == error) {
                Some((_, sources)) => sources.push(source.to_string()),
                None => causes.push((error, vec![source.to_string()])),
            }
        }
    }
    for (error, sources) in causes {
        let plural = if sources.len() == 1 { "" } else { "s" };
        problems.push(format!("source{plural} {} failed: {error}", sources.join(", ")));
    }
    for c in &report.categories {
        match &c.outcome {
            CategoryOutcome::Written { redis: cache::RedisWrite::Failed(e) } => {
                problems.push(format!("{}: entries not written to Redis: {e}", c.category))
            }
            CategoryOutcome::Written { .. } => {}
            CategoryOutcome::KeptStale => {
                problems.push(format!("{}: no entries computed (a source failed)", c.category))
            }
            CategoryOutcome::StatisticsOnly { .. } => problems
                .push(format!("{}: only the statistics computed (the Horde's data failed)", c.category)),
            CategoryOutcome::Superseded => {
                problems.push(format!("{}: invalidated during the cycle; nothing written", c.category))
            }
            CategoryOutcome::Failed(_) if !c.failed_sources.is_empty() => {
                problems.push(format!("{}: no entries computed (its sources failed)", c.category))
            }
            CategoryOutcome::Failed(e) => problems.push(format!("{}: no entries: {e}", c.category)),
        }
    }
    problems
}

fn print_table(report: &CycleReport, settings: &Settings) {
    let mut out = String::new();
    let width = 60;
    out.push_str(&format!(
        "{:<width$} {:>7} {:>8} {:>8} {:>6}\n",
        "entry", "models", "at risk", "critical", "ms"
    ));
    for c in &report.categories {
        if c.entries.is_empty() {
            let why = match &c.outcome {
                CategoryOutcome::Failed(e) => e.clone(),
                _ => "entries kept (a source failed)".to_string(),
            };
            out.push_str(&format!("{:<width$} FAILED: {why}\n", c.category.as_str()));
            continue;
        }
        for e in &c.entries {
            let opt = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
            out.push_str(&format!(
                "{:<width$} {:>7} {:>8} {:>8} {:>6}\n",
                e.key.name(),
                e.models,
                opt(e.at_risk),
                opt(e.critical),
                c.compute_ms
            ));
        }
    }
    let per_category: Vec<String> = report
        .categories
        .iter()
        .map(|c| {
            format!(
                "{} fetch {} ms, compute {} ms, store {} ms",
                c.category, c.fetch_ms, c.compute_ms, c.store_ms
            )
        })
        .collect();
    out.push_str(&format!(
        "cycle {} in {} ms ({}); ms column: the category's compute time; redis: {}\n",
        report.outcome().as_str(),
        report.duration.as_millis(),
        per_category.join("; "),
        if settings.redis.enabled { "enabled" } else { "disabled" }
    ));
    emit(&out);
}

/// The logger: `log.level` as the filter (a non-empty `RUST_LOG` wins; a
/// reload can change it: `log_filter.rs`), lines as text for people or JSON
/// for machines (`log.format`).
fn init_logging(log: &horde_hydrator::settings::LogSettings) {
    let mut builder = env_logger::Builder::new();
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        builder.parse_write_style(&style);
    }
    match log.format {
        horde_hydrator::settings::LogFormat::Text => {
            builder.format_timestamp_millis();
        }
        horde_hydrator::settings::LogFormat::Json => {
            builder.format(|buf, record| {
                let mut fields = serde_json::Map::new();
                let _ = record.key_values().visit(&mut JsonFields(&mut fields));
                let line = serde_json::json!({
                    "ts": buf.timestamp_millis().to_string(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "message": record.args().to_string(),
                    "fields": fields,
                });
                writeln!(buf, "{line}")
            });
        }
    }
    log_filter::install(builder, &log.level);
}

/// Collects a log record's key-values as JSON.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.insert(key.to_string(), serde_json::Value::String(value.to_string()));
        Ok(())
    }
}

/// `check-config`'s output: the file read, then every key with its value in
/// effect (secrets redacted) and where it came from, as TOML with comments.
fn check_config_report(settings: &Settings) -> String {
    let mut out = match &settings.provenance.file {
        Some(f) => format!("# settings valid: {} and the environment over the defaults\n", f.display()),
        None => "# settings valid: no config file; the environment over the defaults\n".to_string(),
    };
    let mut section = "";
    for (key, value, origin) in &settings.provenance.values {
        let (s, name) = key.split_once('.').unwrap_or(("", key));
        if s != section {
            out.push_str(&format!("\n[{s}]\n"));
            section = s;
        }
        out.push_str(&format!("{name} = {value}  # {origin}\n"));
    }
    out
}

/// Write to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Every computed entry as `dir/<dump file name>`; the entry files of
/// `categories` that this run did not compute are removed, so a dump holds
/// exactly what this run produced.
///
/// An earlier dump's file is overwritten in place (no truncation first, cut
/// to length after): ext4 then copies into the pages it already holds.
/// Truncating a file that holds data, or renaming over it, makes ext4 write
/// the new data out at once (its `auto_da_alloc` safeguard), and unlinking it
/// first makes the kernel free and allocate every page again: at x1 either
/// cost more than the rest of the dump.
fn write_dump(report: &CycleReport, dir: &Path, categories: &[Category]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut written = std::collections::HashSet::new();
    for c in &report.categories {
        for e in &c.payloads {
            let name = e.key.dump_file_name();
            overwrite(&dir.join(&name), e.json.as_bytes())?;
            written.insert(name);
        }
    }
    for name in categories.iter().flat_map(|c| EntryKey::for_category(*c)).map(|k| k.dump_file_name()) {
        if !written.contains(&name) {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Write `bytes` as the whole content of `path`, reusing the file if it exists.
fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    file.write_all(bytes)?;
    if file.metadata()?.len() > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

async fn admin_command(settings: Settings, cmd: AdminCli) -> i32 {
    let timeout = Duration::from_secs_f64(cmd.wait().timeout.clamp(0.1, 3600.0));
    match admin::send_command(&settings, cmd.to_command(), timeout).await {
        Ok(replies) => {
            // With replicas, every daemon answers `status`: one JSON document per reply.
            let mut ok = true;
            for reply in &replies {
                emit(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(reply).unwrap_or_else(|_| reply.to_string())
                ));
                ok &= reply.get("ok").and_then(|v| v.as_bool()) == Some(true);
            }
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("horde-hydrator admin: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_instance_id_is_the_kernels_host_name_and_the_pid() {
        let proc_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::system_hostname().as_deref(), Some(proc_name.trim()));
        let id = super::default_instance_id();
        assert!(id.ends_with(&format!(":{}", std::process::id())), "{id}");
    }
}
