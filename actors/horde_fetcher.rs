//! HordeFetcherActor: the sources of a cycle (SPEC §2 "Sources").
//!
//! Owns the HTTP client (awc, rustls with webpki roots), one circuit breaker
//! per service (AI Horde, model reference) and the last good parsed inputs of
//! every source. For a category it fetches three sources concurrently — the
//! model reference, the Horde status and the Horde stats — over HTTP(S) or
//! from a `file://` snapshot directory, and parses them here (so garbage or a
//! truncated body is a fetch failure, like a 500).
//!
//! HTTP policy per request: a timeout covering connect, headers and body; a
//! response size limit; the `Client-Agent` header; retries with jittered
//! exponential backoff on connection errors, 429 and 5xx (a `Retry-After` in
//! seconds is honoured, capped by `horde.retry_max_delay_seconds`). A fetch
//! that still fails counts against the service's circuit breaker; an open
//! circuit fails fast until its trial request.
//!
//! When a source fails, its last good parsed value is returned instead and
//! the source is reported [`SourceOutcome::Stale`]; with no last good value
//! the whole fetch is an error naming the sources (carrying the model
//! reference when that one was fetched now, so the statistics, which need
//! nothing else, can still be computed). An invalidation drops the kept model
//! reference of its category ([`DropReference`]); a fetch that was under way
//! when it came does not become the last good value (it would restore the
//! reference the invalidation dropped).

use crate::metrics::{FetchFailureKind, Metrics};
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::CategoryInputs;
use horde_hydrator::input::horde::{self, HordeModelStats, HordeModelStatus};
use horde_hydrator::input::reference::{self, ParsedReference};
use horde_hydrator::input::source::{Service, SourceId};
use horde_hydrator::settings::{HordeSettings, LimitsSettings, Settings, Source};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- retry policy

/// The delay before retry number `retry` (0-based): `base · 2^retry`, capped,
/// scaled by `0.5 + jitter/2` (`jitter` in `[0, 1)`) so that clients spread out.
pub fn backoff_delay(retry: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
    exp.min(cap).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// A `Retry-After` header in delta-seconds (HTTP dates are not honoured:
/// the jittered backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The delay before the next attempt: the server's `Retry-After` when it sent
/// one, else the backoff; never more than `cap`.
pub fn retry_delay(
    retry: u32,
    retry_after: Option<Duration>,
    base: Duration,
    cap: Duration,
    jitter: f64,
) -> Duration {
    match retry_after {
        Some(d) => d.min(cap),
        None => backoff_delay(retry, base, cap, jitter),
    }
}

// ---------------------------------------------------------------- circuit breaker

crate::metrics::label_enum! {
    /// The state of a service's circuit, as the status reply shows it (and
    /// the metrics label it).
    pub enum CircuitState {
        Closed = "closed",
        Open = "open",
        HalfOpen = "half_open",
    }
}

impl serde::Serialize for CircuitState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Opens after `threshold` consecutive failed fetches; while open, requests
/// fail fast; after `open_for`, one trial is let through (half-open): success
/// closes the circuit, failure opens it again.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            open_for,
            consecutive_failures: 0,
            open_until: None,
            trial_in_flight: false,
        }
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// New limits (a settings reload); the count of failures so far and an
    /// open circuit's current wait are kept.
    pub fn set_limits(&mut self, threshold: u32, open_for: Duration) {
        self.threshold = threshold.max(1);
        self.open_for = open_for;
    }

    /// May a request go out now? In half-open state only one at a time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen if self.trial_in_flight => false,
            CircuitState::HalfOpen => {
                self.trial_in_flight = true;
                true
            }
        }
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
        self.trial_in_flight = false;
    }

    /// Returns true when this failure opened (or re-opened) the circuit;
    /// failures of requests that were in flight while it is open do not
    /// (so an opening is logged once).
    pub fn record_failure(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let was_trial = self.trial_in_flight;
        self.trial_in_flight = false;
        if !was_trial && self.state(now) == CircuitState::Open {
            return false;
        }
        if was_trial || self.consecutive_failures >= self.threshold {
            self.open_until = Some(now + self.open_for);
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------- results

/// How one source of a fetch went.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceOutcome {
    /// Fetched and parsed now.
    Fresh,
    /// Failed now; the last good value (fetched `age` ago) was used.
    Stale { error: String, age: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub source: SourceId,
    pub outcome: SourceOutcome,
}

/// A category's inputs and how each source went.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub inputs: Arc<CategoryInputs>,
    pub sources: Vec<SourceReport>,
}

impl Fetched {
    /// Was the model reference fetched now (not its last good value)?
    pub fn reference_is_fresh(&self) -> bool {
        self.is_fresh(|s| matches!(s, SourceId::Reference(_)))
    }

    /// Were both Horde sources fetched now?
    pub fn horde_is_fresh(&self) -> bool {
        self.is_fresh(|s| !matches!(s, SourceId::Reference(_)))
    }

    fn is_fresh(&self, which: impl Fn(SourceId) -> bool) -> bool {
        self.sources.iter().filter(|r| which(r.source)).all(|r| r.outcome == SourceOutcome::Fresh)
    }

    /// How old the oldest Horde input is (zero when both were fetched now).
    pub fn horde_age(&self) -> Duration {
        self.sources
            .iter()
            .filter(|r| !matches!(r.source, SourceId::Reference(_)))
            .map(|r| match r.outcome {
                SourceOutcome::Fresh => Duration::ZERO,
                SourceOutcome::Stale { age, .. } => age,
            })
            .max()
            .unwrap_or_default()
    }

    /// Sources that failed now (and fell back to their last good value).
    pub fn stale_sources(&self) -> impl Iterator<Item = (&SourceId, &str)> {
        self.sources.iter().filter_map(|r| match &r.outcome {
            SourceOutcome::Stale { error, .. } => Some((&r.source, error.as_str())),
            SourceOutcome::Fresh => None,
        })
    }
}

/// Some source failed and no last good value exists for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .failures.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; "))]
pub struct FetchError {
    pub failures: Vec<(SourceId, String)>,
    /// The model reference, when it was fetched now (only Horde sources
    /// failed): inputs with empty Horde parts, enough for the statistics.
    pub fresh_reference: Option<Arc<CategoryInputs>>,
}

// ---------------------------------------------------------------- messages

/// Fetch (and parse) every source of a category.
#[derive(Message)]
#[rtype(result = "Result<Fetched, FetchError>")]
pub struct FetchCategory(pub Category);

/// Forget the kept model reference of a category (it changed upstream).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropReference(pub Category);

/// The fetcher's part of a settings reload (SIGHUP): the HTTP policy and the
/// circuit breakers' limits, and the work limits, applied from the next
/// request. (The source URLs
/// need a restart.)
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub horde: HordeSettings,
    pub reference_timeout: Duration,
    pub limits: LimitsSettings,
}

/// The circuit states, for the status reply.
#[derive(Message)]
#[rtype(result = "FetcherInfo")]
pub struct GetFetcherInfo;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FetcherInfo {
    pub horde_circuit: CircuitState,
    pub model_reference_circuit: CircuitState,
}

// ---------------------------------------------------------------- the actor

/// The last good inputs of a category, and when each part was fetched
/// (`None`: that part is not usable, e.g. dropped by an invalidation).
/// Shared with the cycle that computed from it, so keeping it costs no copy.
#[derive(Default)]
struct LastGood {
    inputs: Arc<CategoryInputs>,
    reference_at: Option<Instant>,
    status_at: Option<Instant>,
    stats_at: Option<Instant>,
}

impl LastGood {
    fn fetched_at(&self, id: SourceId) -> Option<Instant> {
        match id {
            SourceId::Reference(_) => self.reference_at,
            SourceId::Status(_) => self.status_at,
            SourceId::Stats(_) => self.stats_at,
        }
    }
}

/// Everything the fetch futures share (the actor runs on one thread).
struct State {
    /// Built on the first HTTP fetch: its TLS set-up (the webpki root store)
    /// is wasted on `file://` sources, which a `once` run pays at start-up.
    client: std::cell::OnceCell<awc::Client>,
    /// The client's timeout for a whole request, and for connecting.
    client_timeouts: (Duration, Duration),
    horde: Source,
    model_reference: Source,
    horde_timeout: Duration,
    reference_timeout: Duration,
    client_agent: String,
    max_retries: u32,
    retry_base: Duration,
    retry_cap: Duration,
    max_bytes: usize,
    limits: LimitsSettings,
    breakers: HashMap<Service, CircuitBreaker>,
    last_good: HashMap<Category, LastGood>,
    /// Bumped by each [`DropReference`]: a fetch that began before one does
    /// not become the last good value.
    drops: HashMap<Category, u64>,
    metrics: Arc<Metrics>,
}

impl State {
    /// The HTTP client, built on first use.
    fn client(&self) -> &awc::Client {
        self.client.get_or_init(|| {
            let (timeout, connect_timeout) = self.client_timeouts;
            awc::Client::builder()
                .connector(awc::Connector::new().timeout(connect_timeout))
                .timeout(timeout)
                .finish()
        })
    }
}

pub struct HordeFetcherActor {
    state: Rc<RefCell<State>>,
}

/// The HTTP client's timeouts: (whole request, connect).
fn client_timeouts(h: &HordeSettings) -> (Duration, Duration) {
    (h.timeout, h.timeout.min(Duration::from_secs(10)))
}

/// The `Client-Agent` header.
fn client_agent(h: &HordeSettings) -> String {
    format!("horde-hydrator:{}:{}", env!("CARGO_PKG_VERSION"), h.client_agent)
}

impl HordeFetcherActor {
    /// Must be created on the thread (arbiter) it runs on: awc's client is not `Send`.
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Self {
        let h = &settings.horde;
        let breaker = CircuitBreaker::new(h.circuit_failure_threshold, h.circuit_open);
        let state = State {
            client: std::cell::OnceCell::new(),
            client_timeouts: client_timeouts(h),
            horde: h.api.clone(),
            model_reference: settings.model_reference.source.clone(),
            horde_timeout: h.timeout,
            reference_timeout: settings.model_reference.timeout,
            client_agent: client_agent(h),
            limits: settings.limits.clone(),
            max_retries: h.max_retries,
            retry_base: h.retry_base_delay,
            retry_cap: h.retry_max_delay,
            max_bytes: usize::try_from(h.max_response_bytes).unwrap_or(usize::MAX),
            breakers: HashMap::from([(Service::Horde, breaker.clone()), (Service::ModelReference, breaker)]),
            last_good: HashMap::new(),
            drops: HashMap::new(),
            metrics,
        };
        HordeFetcherActor { state: Rc::new(RefCell::new(state)) }
    }
}

impl Actor for HordeFetcherActor {
    type Context = Context<Self>;
}

impl Handler<FetchCategory> for HordeFetcherActor {
    type Result = ResponseFuture<Result<Fetched, FetchError>>;

    fn handle(&mut self, msg: FetchCategory, _ctx: &mut Self::Context) -> Self::Result {
        let state = self.state.clone();
        // Noted now, not when the future first runs: a drop handled in between
        // supersedes this fetch.
        let drops_before = state.borrow().drops.get(&msg.0).copied().unwrap_or(0);
        Box::pin(fetch_category(state, msg.0, drops_before))
    }
}

impl Handler<DropReference> for HordeFetcherActor {
    type Result = ();

    fn handle(&mut self, msg: DropReference, _ctx: &mut Self::Context) {
        let mut st = self.state.borrow_mut();
        *st.drops.entry(msg.0).or_default() += 1;
        if let Some(last) = st.last_good.get_mut(&msg.0) {
            last.reference_at = None;
        }
        log::debug!("fetcher: dropped the kept model reference of {}", msg.0);
    }
}

impl Handler<Reconfigure> for HordeFetcherActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Self::Context) {
        let h = &msg.horde;
        let mut st = self.state.borrow_mut();
        let timeouts = client_timeouts(h);
        if timeouts != st.client_timeouts {
            // Built again, with the new timeouts, on the next HTTP fetch.
            st.client = std::cell::OnceCell::new();
            st.client_timeouts = timeouts;
        }
        st.horde_timeout = h.timeout;
        st.reference_timeout = msg.reference_timeout;
        st.client_agent = client_agent(h);
        st.max_retries = h.max_retries;
        st.retry_base = h.retry_base_delay;
        st.retry_cap = h.retry_max_delay;
        st.max_bytes = usize::try_from(h.max_response_bytes).unwrap_or(usize::MAX);
        for breaker in st.breakers.values_mut() {
            breaker.set_limits(h.circuit_failure_threshold, h.circuit_open);
        }
        st.limits = msg.limits;
    }
}

impl Handler<GetFetcherInfo> for HordeFetcherActor {
    type Result = MessageResult<GetFetcherInfo>;

    fn handle(&mut self, _msg: GetFetcherInfo, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let st = self.state.borrow();
        let state_of = |s: Service| st.breakers.get(&s).map_or(CircuitState::Closed, |b| b.state(now));
        MessageResult(FetcherInfo {
            horde_circuit: state_of(Service::Horde),
            model_reference_circuit: state_of(Service::ModelReference),
        })
    }
}

/// One parsed source value.
enum Parsed {
    Reference(ParsedReference),
    Status(Vec<HordeModelStatus>),
    Stats(HordeModelStats),
}

async fn fetch_category(
    state: Rc<RefCell<State>>,
    category: Category,
    drops_before: u64,
) -> Result<Fetched, FetchError> {
    let ids = [SourceId::Reference(category), SourceId::Status(category), SourceId::Stats(category)];
    let (r, s, t) = futures_util::future::join3(
        fetch_source(state.clone(), ids[0]),
        fetch_source(state.clone(), ids[1]),
        fetch_source(state.clone(), ids[2]),
    )
    .await;

    let now = Instant::now();
    let mut st = state.borrow_mut();
    let superseded = st.drops.get(&category).copied().unwrap_or(0) != drops_before;
    let last = st.last_good.entry(category).or_default();
    let mut reports = Vec::with_capacity(3);
    let mut failures = Vec::new();
    let mut inputs = CategoryInputs::default();
    let mut fetched_at = [Some(now); 3];

    for (i, (id, result)) in ids.into_iter().zip([r, s, t]).enumerate() {
        match result {
            Ok(parsed) => {
                reports.push(SourceReport { source: id, outcome: SourceOutcome::Fresh });
                match parsed {
                    Parsed::Reference(v) => inputs.reference = v,
                    Parsed::Status(v) => inputs.status = v,
                    Parsed::Stats(v) => inputs.stats = v,
                }
            }
            Err(error) => match last.fetched_at(id) {
                // Fall back to the last good part (a copy: only on this path).
                Some(at) => {
                    match id {
                        SourceId::Reference(_) => inputs.reference = last.inputs.reference.clone(),
                        SourceId::Status(_) => inputs.status = last.inputs.status.clone(),
                        SourceId::Stats(_) => inputs.stats = last.inputs.stats.clone(),
                    }
                    fetched_at[i] = Some(at);
                    reports.push(SourceReport {
                        source: id,
                        outcome: SourceOutcome::Stale { error, age: now.duration_since(at) },
                    });
                }
                None => failures.push((id, error)),
            },
        }
    }
    if !failures.is_empty() {
        // Each source is in `reports` or in `failures`, never both.
        let reference_fetched = reports
            .iter()
            .any(|r| matches!(r.source, SourceId::Reference(_)) && r.outcome == SourceOutcome::Fresh);
        let fresh_reference = reference_fetched
            .then(|| Arc::new(CategoryInputs { reference: inputs.reference, ..CategoryInputs::default() }));
        return Err(FetchError { failures, fresh_reference });
    }
    let inputs = Arc::new(inputs);
    let [reference_at, status_at, stats_at] = fetched_at;
    if superseded {
        // An invalidation came while this fetch ran: its model reference may
        // predate the change, so it must not replace the dropped one.
        log::debug!("fetcher: {category} was invalidated during the fetch; its result is not kept");
    } else {
        *last = LastGood { inputs: inputs.clone(), reference_at, status_at, stats_at };
    }
    Ok(Fetched { inputs, sources: reports })
}

/// Fetch and parse one source: its value or an error message.
async fn fetch_source(state: Rc<RefCell<State>>, id: SourceId) -> Result<Parsed, String> {
    let service = id.service();
    let (location, metrics) = {
        let st = state.borrow();
        let loc = match service {
            Service::Horde => st.horde.clone(),
            Service::ModelReference => st.model_reference.clone(),
        };
        (loc, st.metrics.clone())
    };
    let is_http = matches!(location, Source::Http(_));
    let raw = match location {
        // Read on the blocking thread too: the six files of a cycle are then
        // read in parallel, not one after the other on the actors' thread.
        Source::Dir(dir) => {
            Ok(Raw::File { path: dir.join(id.file_name()), max_bytes: state.borrow().max_bytes })
        }
        Source::Http(_) => {
            let allowed =
                state.borrow_mut().breakers.get_mut(&service).is_none_or(|b| b.allow(Instant::now()));
            if !allowed {
                metrics.fetch_failed(id.to_string(), FetchFailureKind::CircuitOpen);
                return Err(format!("circuit open for {}", service_name(service)));
            }
            let base = location.http_base().unwrap_or_default();
            http_get_with_retries(&state, &format!("{base}{}", id.http_path()), service).await.map(Raw::Bytes)
        }
    };
    let outcome = match raw {
        Ok(raw) => {
            let limits = state.borrow().limits.clone();
            parse_off_thread(id, raw, limits).await
        }
        Err(e) => Err(e),
    };
    // The breaker judges the whole fetch, parse included: garbage counts.
    // Snapshot directories have no breaker (a missing file is not an outage).
    if is_http {
        let mut st = state.borrow_mut();
        if let Some(b) = st.breakers.get_mut(&service) {
            match &outcome {
                Ok(_) => b.record_success(),
                Err(_) => {
                    if b.record_failure(Instant::now()) {
                        log::warn!(
                            "fetcher: circuit for {} is open after repeated failures",
                            service_name(service)
                        );
                    }
                }
            }
        }
    }
    match outcome {
        Ok(parsed) => {
            metrics.fetch_succeeded(id.to_string(), crate::hydrator::unix_now());
            Ok(parsed)
        }
        Err((kind, e)) => {
            metrics.fetch_failed(id.to_string(), kind);
            log::warn!("fetcher: {id} failed: {e}");
            Err(e)
        }
    }
}

/// A connection error in plain words: what failed, and what to do about it
/// when the likely cause is an offline machine. Other errors pass unchanged.
fn plain_cause(url: &str, error: &str) -> String {
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let lower = error.to_ascii_lowercase();
    if lower.contains("resolv")
        || lower.contains("lookup address")
        || lower.contains("name or service not known")
    {
        format!(
            "cannot resolve {host}: is this machine offline? For an offline run use --config examples/offline.toml"
        )
    } else if lower.contains("connection refused") {
        format!("{host} refused the connection")
    } else if lower.contains("network is unreachable") || lower.contains("no route to host") {
        format!("cannot reach {host} (network unreachable): is this machine offline? For an offline run use --config examples/offline.toml")
    } else {
        error.to_string()
    }
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Horde => "the AI Horde API",
        Service::ModelReference => "the model reference",
    }
}

/// A failed fetch: its kind (for the metrics) and what to tell the operator.
type Failure = (FetchFailureKind, String);

fn read_file(path: PathBuf, max_bytes: usize) -> Result<Vec<u8>, Failure> {
    let unreadable =
        |e: std::io::Error| (FetchFailureKind::Read, format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(&path).map_err(unreadable)?;
    if meta.len() > max_bytes as u64 {
        return Err((
            FetchFailureKind::TooLarge,
            format!("{} is larger than {max_bytes} bytes", path.display()),
        ));
    }
    std::fs::read(&path).map_err(unreadable)
}

/// A source's bytes, or the snapshot file that holds them.
enum Raw {
    Bytes(Vec<u8>),
    File { path: PathBuf, max_bytes: usize },
}

/// Read (snapshot files) and parse on a blocking thread: a large reference
/// must not stall the actors.
async fn parse_off_thread(id: SourceId, raw: Raw, limits: LimitsSettings) -> Result<Parsed, Failure> {
    let job = tokio::task::spawn_blocking(move || -> Result<Parsed, Failure> {
        let bytes = match raw {
            Raw::Bytes(bytes) => bytes,
            Raw::File { path, max_bytes } => read_file(path, max_bytes)?,
        };
        // A UTF-8 byte order mark is accepted, as the reference does (Python's
        // json.loads on bytes detects and skips it).
        let doc = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&bytes);
        let parsed = match id {
            SourceId::Reference(_) => {
                reference::parse_reference(doc).map(Parsed::Reference).map_err(|e| e.to_string())
            }
            SourceId::Status(_) => horde::parse_status(doc).map(Parsed::Status).map_err(|e| e.to_string()),
            SourceId::Stats(_) => horde::parse_stats(doc).map(Parsed::Stats).map_err(|e| e.to_string()),
        };
        let parsed = parsed.map_err(|e| (FetchFailureKind::Parse, e))?;
        within_limits(id, &parsed, &limits).map_err(|e| (FetchFailureKind::OverLimit, e))?;
        Ok(parsed)
    });
    match job.await {
        Ok(r) => r,
        Err(e) => Err((FetchFailureKind::Parse, format!("parser crashed: {e}"))),
    }
}

/// More work than the limits allow is a failed source (the category keeps
/// its entries): the error names the limit and its setting.
fn within_limits(id: SourceId, parsed: &Parsed, limits: &LimitsSettings) -> Result<(), String> {
    let (n, what, max, setting) = match parsed {
        Parsed::Reference(r) => {
            (r.records().len(), "models", limits.max_models_per_category, "limits.max_models_per_category")
        }
        Parsed::Status(s) => {
            (s.len(), "status entries", limits.max_horde_entries, "limits.max_horde_entries")
        }
        Parsed::Stats(s) => {
            (s.name_count(), "model names", limits.max_horde_entries, "limits.max_horde_entries")
        }
    };
    if n > max {
        return Err(format!("{id} has {n} {what}, more than the limit of {max} (setting {setting})"));
    }
    Ok(())
}

/// Why one HTTP attempt failed, and whether another attempt may help.
struct AttemptError {
    kind: FetchFailureKind,
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

async fn http_get_with_retries(
    state: &Rc<RefCell<State>>,
    url: &str,
    service: Service,
) -> Result<Vec<u8>, Failure> {
    let (client, agent, timeout, max_retries, base, cap, max_bytes) = {
        let st = state.borrow();
        let timeout = match service {
            Service::Horde => st.horde_timeout,
            Service::ModelReference => st.reference_timeout,
        };
        (
            st.client().clone(),
            st.client_agent.clone(),
            timeout,
            st.max_retries,
            st.retry_base,
            st.retry_cap,
            st.max_bytes,
        )
    };
    let mut retry = 0;
    loop {
        match http_get_once(&client, url, &agent, timeout, max_bytes).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.retryable && retry < max_retries => {
                let delay = retry_delay(retry, e.retry_after, base, cap, rand::random::<f64>());
                log::debug!(
                    "fetcher: GET {url}: {} (retry {} of {max_retries} in {delay:?})",
                    e.message,
                    retry + 1
                );
                actix_rt::time::sleep(delay).await;
                retry += 1;
            }
            Err(e) => return Err((e.kind, format!("GET {url}: {}", e.message))),
        }
    }
}

async fn http_get_once(
    client: &awc::Client,
    url: &str,
    agent: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Vec<u8>, AttemptError> {
    let attempt = async {
        let mut resp = client
            .get(url)
            .insert_header(("Client-Agent", agent))
            .insert_header(("Accept", "application/json"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                let retryable = matches!(
                    e,
                    awc::error::SendRequestError::Connect(_) | awc::error::SendRequestError::Send(_)
                );
                let kind = match e {
                    awc::error::SendRequestError::Timeout => FetchFailureKind::Timeout,
                    _ => FetchFailureKind::Connect,
                };
                AttemptError { kind, message: plain_cause(url, &e.to_string()), retryable, retry_after: None }
            })?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after =
                resp.headers().get("Retry-After").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
            let retryable = status.as_u16() == 429 || status.is_server_error();
            return Err(AttemptError {
                kind: FetchFailureKind::Status,
                message: format!("HTTP {status}"),
                retryable,
                retry_after,
            });
        }
        let body = resp.body().limit(max_bytes).await.map_err(|e| {
            let overflow = matches!(e, awc::error::PayloadError::Overflow);
            let message = if overflow {
                format!("response larger than {max_bytes} bytes")
            } else {
                format!("body: {e}")
            };
            let kind = if overflow { FetchFailureKind::TooLarge } else { FetchFailureKind::Read };
            AttemptError { kind, message, retryable: !overflow, retry_after: None }
        })?;
        Ok(Vec::<u8>::from(body))
    };
    match actix_rt::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(AttemptError {
            kind: FetchFailureKind::Timeout,
            message: format!("timed out after {timeout:?}"),
            retryable: false,
            retry_after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example snapshot copied into a directory the test may edit.
    fn example_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");
        for sub in ["horde", "model_reference"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            for e in std::fs::read_dir(format!("{src}/{sub}")).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
        dir
    }

    #[test]
    fn a_fetch_under_way_during_an_invalidation_does_not_restore_the_dropped_reference() {
        let dir = example_copy();
        let mut settings = Settings::default();
        settings.horde.api = Source::Dir(dir.path().join("horde"));
        settings.model_reference.source = Source::Dir(dir.path().join("model_reference"));
        let reference = dir.path().join("model_reference/text_generation.json");
        let text = Category::TextGeneration;
        actix_rt::System::new().block_on(async move {
            let fetcher = HordeFetcherActor::new(&settings, Arc::new(Metrics::new())).start();
            // Control: a good fetch, then the reference fails: its last good value is used.
            fetcher.send(FetchCategory(text)).await.unwrap().unwrap();
            let saved = std::fs::read(&reference).unwrap();
            std::fs::remove_file(&reference).unwrap();
            let stale = fetcher.send(FetchCategory(text)).await.unwrap().unwrap();
            assert!(!stale.reference_is_fresh() && stale.horde_is_fresh());
            std::fs::write(&reference, &saved).unwrap();

            // A fetch, and an invalidation while it reads (both queued at once).
            let under_way = fetcher.send(FetchCategory(text));
            let dropped = fetcher.send(DropReference(text));
            under_way.await.unwrap().unwrap();
            dropped.await.unwrap();
            // The reference now fails: nothing to fall back on, the
            // invalidation's drop stands.
            std::fs::remove_file(&reference).unwrap();
            let err = fetcher.send(FetchCategory(text)).await.unwrap().unwrap_err();
            assert_eq!(err.failures.len(), 1, "{err}");
            assert!(matches!(err.failures[0].0, SourceId::Reference(_)), "{err}");
            assert!(err.fresh_reference.is_none());
        });
    }

    #[test]
    fn only_the_horde_failing_still_hands_over_the_fresh_reference() {
        let dir = example_copy();
        let mut settings = Settings::default();
        settings.horde.api = Source::Dir(dir.path().join("no-such-horde"));
        settings.model_reference.source = Source::Dir(dir.path().join("model_reference"));
        actix_rt::System::new().block_on(async move {
            let fetcher = HordeFetcherActor::new(&settings, Arc::new(Metrics::new())).start();
            let err = fetcher.send(FetchCategory(Category::ImageGeneration)).await.unwrap().unwrap_err();
            assert_eq!(err.failures.len(), 2, "{err}");
            let inputs = err.fresh_reference.expect("the reference was fetched");
            assert!(inputs.reference.records().count() > 0);
            assert!(inputs.status.is_empty());
        });
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, base, cap, 1.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(0, base, cap, 0.0), Duration::from_millis(250));
        assert_eq!(backoff_delay(3, base, cap, 1.0), Duration::from_millis(4000));
        assert_eq!(backoff_delay(3, base, cap, 0.5), Duration::from_millis(3000));
        assert_eq!(backoff_delay(10, base, cap, 1.0), Duration::from_secs(30));
        assert_eq!(backoff_delay(200, base, cap, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_delay(0, Some(Duration::from_secs(7)), base, cap, 0.0), Duration::from_secs(7));
        assert_eq!(retry_delay(0, Some(Duration::from_secs(3600)), base, cap, 0.0), Duration::from_secs(30));
        assert_eq!(retry_delay(1, None, base, cap, 1.0), Duration::from_millis(1000));
    }

    #[test]
    fn circuit_opens_after_threshold_and_recovers_through_one_trial() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(60));
        assert!(b.allow(t0));
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert_eq!(b.state(t0), CircuitState::Closed);
        assert!(b.record_failure(t0), "third failure opens");
        assert_eq!(b.state(t0), CircuitState::Open);
        // Requests that were in flight fail too: the opening is reported once.
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0 + Duration::from_secs(1)));
        assert!(!b.allow(t0 + Duration::from_secs(59)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert!(b.allow(later), "one trial");
        assert!(!b.allow(later), "only one trial at a time");
        assert!(b.record_failure(later), "a failed trial re-opens");
        assert_eq!(b.state(later + Duration::from_secs(1)), CircuitState::Open);
        let much_later = later + Duration::from_secs(61);
        assert!(b.allow(much_later));
        b.record_success();
        assert_eq!(b.state(much_later), CircuitState::Closed);
        assert!(b.allow(much_later) && b.allow(much_later));
    }

    /// Every kind of source document may start with a UTF-8 BOM (the
    /// reference's json.loads on bytes accepts it); a BOM elsewhere is garbage.
    #[test]
    fn a_utf8_bom_at_the_start_is_accepted() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");
        let t = Category::TextGeneration;
        actix_rt::System::new().block_on(async move {
            for (id, file) in [
                (SourceId::Reference(t), "model_reference/text_generation.json"),
                (SourceId::Status(t), "horde/status_models_text.json"),
                (SourceId::Stats(t), "horde/stats_text_models.json"),
            ] {
                let plain = std::fs::read(format!("{data}/{file}")).unwrap();
                let mut with_bom = b"\xef\xbb\xbf".to_vec();
                with_bom.extend_from_slice(&plain);
                let limits = Settings::default().limits;
                assert!(
                    parse_off_thread(id, Raw::Bytes(with_bom), limits.clone()).await.is_ok(),
                    "{file} with a BOM"
                );
                let mut doubled = b"\xef\xbb\xbf\xef\xbb\xbf".to_vec();
                doubled.extend_from_slice(&plain);
                assert!(
                    parse_off_thread(id, Raw::Bytes(doubled), limits).await.is_err(),
                    "{file} with two BOMs"
                );
            }
        });
    }

    #[test]
    fn horde_documents_over_the_entry_limit_fail_naming_the_setting() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");
        let t = Category::TextGeneration;
        actix_rt::System::new().block_on(async move {
            let limits = LimitsSettings { max_models_per_category: 1, max_horde_entries: 1 };
            for (id, file) in [
                (SourceId::Reference(t), "model_reference/text_generation.json"),
                (SourceId::Status(t), "horde/status_models_text.json"),
                (SourceId::Stats(t), "horde/stats_text_models.json"),
            ] {
                let bytes = std::fs::read(format!("{data}/{file}")).unwrap();
                let e = parse_off_thread(id, Raw::Bytes(bytes), limits.clone()).await.err().unwrap();
                let setting = if file.starts_with("horde") {
                    "limits.max_horde_entries"
                } else {
                    "limits.max_models_per_category"
                };
                assert_eq!(e.0, FetchFailureKind::OverLimit, "{e:?}");
                assert!(e.1.contains(&format!("more than the limit of 1 (setting {setting})")), "{e:?}");
            }
        });
    }

    #[test]
    fn connection_errors_in_plain_words() {
        let e =
            "Failed to connect to host: Failed resolving hostname: failed to lookup address information: \
                 Name or service not known";
        assert_eq!(
            plain_cause("https://aihorde.net/api/v2/status/models", e),
            "cannot resolve aihorde.net: is this machine offline? For an offline run use --config examples/offline.toml"
        );
        assert_eq!(
            plain_cause(
                "http://127.0.0.1:9/x",
                "Failed to connect to host: Connection refused (os error 111)"
            ),
            "127.0.0.1 refused the connection"
        );
        assert_eq!(plain_cause("http://h/x", "something else"), "something else");
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, Duration::from_secs(5));
        b.record_failure(t0);
        b.record_success();
        assert!(!b.record_failure(t0));
        assert_eq!(b.state(t0), CircuitState::Closed);
    }

    #[test]
    fn sources_are_named_like_the_snapshot_files() {
        let t = Category::TextGeneration;
        let i = Category::ImageGeneration;
        assert_eq!(SourceId::Reference(t).file_name(), "text_generation.json");
        assert_eq!(SourceId::Status(i).file_name(), "status_models_image.json");
        assert_eq!(SourceId::Stats(i).file_name(), "stats_img_models.json");
        assert_eq!(SourceId::Stats(t).file_name(), "stats_text_models.json");
        assert_eq!(SourceId::Status(t).http_path(), "/v2/status/models?type=text&model_state=known");
        assert_eq!(SourceId::Stats(i).http_path(), "/v2/stats/img/models?model_state=known");
        assert_eq!(SourceId::Reference(i).http_path(), "/model_references/v2/image_generation");
    }
}
