//! HydratorActor: the schedule, and one cycle (fetch → compute → store).
//!
//! Sends itself timed ticks: the first after `hydration.startup_delay_seconds`,
//! then every `hydration.interval_seconds`. A cycle runs the categories
//! concurrently, each on its own: fetch its three sources (fetcher), compute
//! its entries (compute pool), store them with one atomic script (cache, fenced.rs). Never two
//! cycles at once: a tick during a cycle is skipped, and a "hydrate now"
//! ([`HydrateNow`], from an invalidation or an admin command) during a cycle
//! queues exactly one follow-up cycle for the union of the requested
//! categories.
//!
//! Failure semantics (SPEC §3), entry by entry — each depends on what it
//! reads:
//! * the statistics read the model reference alone: computed and written
//!   whenever the reference was fetched now, whatever the Horde does;
//! * the deletion-risk entries read the reference and the Horde: computed
//!   only when all three sources were fetched now;
//! * an entry that could not be computed keeps its last good value, byte for
//!   byte, and stays readable in Redis (stale-if-error: [`KeepStale`] re-arms
//!   its TTL, within `hydration.stale_ttl_seconds`).
//!
//! We recompute only from fresh inputs, because an entry computed partly
//! from old data would be presented with a new `computed_at` as if it were
//! current — with one exception: a category whose entries were invalidated
//! (the reference changed, [`NoteInvalidated`]) has nothing to keep, so its
//! deletion risk is computed from the new reference and the last good Horde
//! data (if younger than the stale TTL, which then runs from that data)
//! rather than leaving readers to miss. One category failing never stops the
//! other.
//!
//! Generations: a category's generation (bumped by an invalidation, kept in
//! [`Metrics::generations`](crate::metrics::Metrics)) is noted when the cycle begins it; a fetch or a
//! computation that finishes in a later generation is dropped (`superseded`),
//! and the cache drops a store from an older one.
//!
//! One log line per cycle gives its duration and, per category, the outcome,
//! counts and the fetch/compute/store times. [`run_cycle`] is also what
//! `once` runs.

use crate::cache::{CacheActor, KeepStale, RedisWrite, StoreCategory};
use crate::horde_fetcher::{FetchCategory, HordeFetcherActor};
use crate::leader::RoleChanged;
use crate::metrics::{CycleOutcome, Metrics, Stage};
use crate::risk_compute::{Compute, ComputeStatistics, Computed, RiskComputeActor};
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::ComputedEntry;
use horde_hydrator::input::source::SourceId;
use horde_hydrator::keys::{EntryKey, EntryKind};
use horde_hydrator::leader::{first_cycle_in, Role};
use horde_hydrator::settings::{AnalysisSettings, Settings};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------- one cycle

/// The actors a cycle talks to.
#[derive(Clone)]
pub struct CycleDeps {
    pub fetcher: Addr<HordeFetcherActor>,
    pub compute: Addr<RiskComputeActor>,
    pub cache: Addr<CacheActor>,
    pub analysis: Arc<AnalysisSettings>,
    pub metrics: Arc<Metrics>,
}

/// One written entry, as the summary table shows it.
#[derive(Debug, Clone)]
pub struct EntrySummary {
    pub key: EntryKey,
    pub models: usize,
    pub at_risk: Option<usize>,
    pub critical: Option<usize>,
    pub bytes: usize,
}

/// What became of a [`CategoryOutcome::Superseded`] category (status, log line).
const SUPERSEDED: &str = "invalidated meanwhile; result dropped";

/// How a category's part of a cycle ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CategoryOutcome {
    /// Computed and stored (memory always; `redis` says whether Redis got it).
    Written { redis: RedisWrite },
    /// A source failed; its last good data exists, but entries were kept as they were.
    KeptStale,
    /// The Horde's data failed: the statistics were computed and stored,
    /// the deletion-risk entries kept as they were.
    StatisticsOnly { redis: RedisWrite },
    /// An invalidation came while the category was fetched or computed:
    /// the result was dropped (the re-hydration it queued writes instead).
    Superseded,
    /// Nothing computed or written.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct CategoryReport {
    pub category: Category,
    /// The category's generation when the cycle began it.
    pub generation: u64,
    pub outcome: CategoryOutcome,
    /// Sources that failed in this cycle, with the reason.
    pub failed_sources: Vec<(SourceId, String)>,
    pub entries: Vec<EntrySummary>,
    /// The entries themselves (kept for `once --dump`; dropped by the daemon).
    pub payloads: Vec<ComputedEntry>,
    pub fetch_ms: u64,
    pub compute_ms: u64,
    pub store_ms: u64,
}

impl CategoryReport {
    fn new(category: Category) -> Self {
        CategoryReport {
            category,
            generation: 0,
            outcome: CategoryOutcome::Failed("not run".to_string()),
            failed_sources: Vec::new(),
            entries: Vec::new(),
            payloads: Vec::new(),
            fetch_ms: 0,
            compute_ms: 0,
            store_ms: 0,
        }
    }

    pub fn is_written(&self) -> bool {
        matches!(self.outcome, CategoryOutcome::Written { .. })
    }

    /// Written to every store it was meant for (memory, and Redis when enabled).
    pub fn is_complete(&self) -> bool {
        // Superseded: Redis already holds what a later cycle computed.
        matches!(
            self.outcome,
            CategoryOutcome::Written {
                redis: RedisWrite::Written | RedisWrite::Disabled | RedisWrite::Superseded
            }
        )
    }

    fn outcome_str(&self) -> &'static str {
        match self.outcome {
            CategoryOutcome::Written { .. } => "written",
            CategoryOutcome::KeptStale => "kept_stale",
            CategoryOutcome::StatisticsOnly { .. } => "statistics_only",
            CategoryOutcome::Superseded => "superseded",
            CategoryOutcome::Failed(_) => "failed",
        }
    }

    /// This category's part of the status reply's `last_cycle`.
    pub fn status(&self) -> CategoryStatus {
        let (error, redis) = match &self.outcome {
            CategoryOutcome::Written { redis } => (None, Some(redis.clone())),
            CategoryOutcome::KeptStale => (Some("a source failed; existing entries kept".to_string()), None),
            CategoryOutcome::StatisticsOnly { redis } => {
                (Some("the Horde's data failed; deletion-risk entries kept".to_string()), Some(redis.clone()))
            }
            CategoryOutcome::Superseded => (Some(SUPERSEDED.to_string()), None),
            CategoryOutcome::Failed(e) => (Some(e.clone()), None),
        };
        CategoryStatus {
            category: self.category.as_str(),
            outcome: self.outcome_str(),
            error,
            redis,
            failed_sources: self
                .failed_sources
                .iter()
                .map(|(s, e)| FailedSource { source: s.to_string(), error: e.clone() })
                .collect(),
            entries: self.entries.len(),
            bytes: self.entries.iter().map(|e| e.bytes).sum(),
            fetch_ms: self.fetch_ms,
            compute_ms: self.compute_ms,
            store_ms: self.store_ms,
        }
    }
}

/// A category's part of a cycle, as the status reply shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryStatus {
    pub category: &'static str,
    /// `written`, `kept_stale` or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub redis: Option<RedisWrite>,
    pub failed_sources: Vec<FailedSource>,
    pub entries: usize,
    pub bytes: usize,
    pub fetch_ms: u64,
    pub compute_ms: u64,
    pub store_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedSource {
    pub source: String,
    pub error: String,
}

/// A cycle, as the status reply's `last_cycle` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CycleStatus {
    pub started_at: f64,
    pub finished_at: f64,
    pub duration_ms: u64,
    pub outcome: &'static str,
    pub categories: Vec<CategoryStatus>,
}

/// A whole cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub started_unix: f64,
    pub duration: Duration,
    pub categories: Vec<CategoryReport>,
}

impl CycleReport {
    /// `ok` (every category's entries reached every store they were meant
    /// for), `partial` (some written, only statistics written, or written to
    /// memory while Redis did not take them) or `failed` (none written).
    pub fn outcome(&self) -> CycleOutcome {
        let written = self.categories.iter().filter(|c| c.is_written()).count();
        let complete = self.categories.iter().filter(|c| c.is_complete()).count();
        let some =
            self.categories.iter().any(|c| matches!(c.outcome, CategoryOutcome::StatisticsOnly { .. }));
        if complete == self.categories.len() {
            CycleOutcome::Ok
        } else if written > 0 || some {
            CycleOutcome::Partial
        } else {
            CycleOutcome::Failed
        }
    }

    pub fn status(&self) -> CycleStatus {
        CycleStatus {
            started_at: self.started_unix,
            finished_at: self.started_unix + self.duration.as_secs_f64(),
            duration_ms: self.duration.as_millis() as u64,
            outcome: self.outcome().as_str(),
            categories: self.categories.iter().map(CategoryReport::status).collect(),
        }
    }

    /// The one log line of a cycle.
    pub fn log_line(&self) -> String {
        let parts: Vec<String> = self
            .categories
            .iter()
            .map(|c| {
                let models = c.entries.first().map_or(0, |e| e.models);
                let failed =
                    || c.failed_sources.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(", ");
                let detail = match &c.outcome {
                    CategoryOutcome::Written { redis } => {
                        format!("{} entries, {models} models, redis {redis:#}", c.entries.len())
                    }
                    CategoryOutcome::KeptStale => format!("entries kept; sources failed: {}", failed()),
                    CategoryOutcome::StatisticsOnly { redis } => format!(
                        "{} statistics entries, redis {redis:#}; deletion risk kept; sources failed: {}",
                        c.entries.len(),
                        failed()
                    ),
                    CategoryOutcome::Superseded => SUPERSEDED.to_string(),
                    CategoryOutcome::Failed(e) => e.clone(),
                };
                format!(
                    "{}: {} ({detail}; fetch {} ms, compute {} ms, store {} ms)",
                    c.category,
                    c.outcome_str(),
                    c.fetch_ms,
                    c.compute_ms,
                    c.store_ms
                )
            })
            .collect();
        format!("cycle {} in {} ms: {}", self.outcome().as_str(), self.duration.as_millis(), parts.join("; "))
    }
}

/// `HH:MM:SS UTC` of a Unix time, for log lines.
pub fn utc_clock(unix: f64) -> String {
    let s = unix.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// The largest value Redis accepts (its `proto-max-bulk-len`, 512 MiB).
pub const MAX_REDIS_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// Now, as Unix seconds (every actor's wall clock).
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// What a cycle is asked to do beyond computing what it can.
#[derive(Debug, Clone, Default)]
pub struct CyclePlan {
    /// Categories whose entries were invalidated since they were last
    /// written: their deletion risk may use the last good Horde data, and
    /// their store is guarded against late DELs.
    pub invalidated: BTreeSet<Category>,
    /// `hydration.stale_ttl_seconds`: Horde data older than this is not used.
    pub stale_ttl: Duration,
}

/// Run one cycle over `categories` (concurrently) and report it.
pub async fn run_cycle(deps: CycleDeps, categories: Vec<Category>) -> CycleReport {
    run_planned_cycle(deps, categories, CyclePlan::default()).await
}

/// [`run_cycle`], following a [`CyclePlan`].
pub async fn run_planned_cycle(deps: CycleDeps, categories: Vec<Category>, plan: CyclePlan) -> CycleReport {
    let started = Instant::now();
    let started_unix = unix_now();
    let computed_at = started_unix as i64;
    let started_ms = (started_unix * 1000.0) as u64;
    // Text first: it is the larger category (the cycle's critical path), so its
    // sources are the first to reach the blocking threads (see `runtime` in
    // main.rs). The report keeps the configured order.
    let mut started_order = categories.clone();
    started_order.sort_by_key(|c| !c.is_text());
    let jobs = started_order.into_iter().map(|c| {
        let run = CategoryRun {
            generation: deps.metrics.generations.current(c),
            invalidated: plan.invalidated.contains(&c),
            stale_ttl: plan.stale_ttl,
        };
        hydrate_category(deps.clone(), c, computed_at, started_ms, run)
    });
    let mut reports = futures_util::future::join_all(jobs).await;
    reports.sort_by_key(|r| categories.iter().position(|c| *c == r.category));
    let report = CycleReport { started_unix, duration: started.elapsed(), categories: reports };
    deps.metrics.cycle_finished(report.outcome(), report.duration);
    report
}

/// One category's part of a cycle, as planned.
#[derive(Debug, Clone, Copy)]
struct CategoryRun {
    generation: u64,
    invalidated: bool,
    stale_ttl: Duration,
}

/// What a category's fetch allows to compute.
enum Plan {
    /// Every entry; the deletion risk's Horde data is this old.
    All { inputs: Arc<horde_hydrator::cycle::CategoryInputs>, horde_age: Duration },
    /// The statistics only (the reference is fresh, the Horde's data is not).
    Statistics(Arc<horde_hydrator::cycle::CategoryInputs>),
    /// Nothing: every entry is kept as it is.
    Nothing(CategoryOutcome),
}

async fn hydrate_category(
    deps: CycleDeps,
    category: Category,
    computed_at: i64,
    started_ms: u64,
    run: CategoryRun,
) -> CategoryReport {
    let mut report = CategoryReport::new(category);
    report.generation = run.generation;
    let superseded = || deps.metrics.generations.current(category) != run.generation;
    let t = Instant::now();
    let fetched = deps.fetcher.send(FetchCategory(category)).await;
    report.fetch_ms = t.elapsed().as_millis() as u64;
    deps.metrics.stage(category, Stage::Fetch, t.elapsed());
    if superseded() {
        report.outcome = CategoryOutcome::Superseded;
        return report;
    }
    let plan = match fetched {
        Err(e) => Plan::Nothing(CategoryOutcome::Failed(format!("fetcher unavailable: {e}"))),
        Ok(Err(e)) => {
            report.failed_sources = e.failures.clone();
            match e.fresh_reference {
                Some(inputs) => Plan::Statistics(inputs),
                None => {
                    // Each source's cause has its own line (the fetcher's); name them only.
                    let ids: Vec<String> = e.failures.iter().map(|(s, _)| s.to_string()).collect();
                    Plan::Nothing(CategoryOutcome::Failed(format!("sources failed: {}", ids.join(", "))))
                }
            }
        }
        Ok(Ok(f)) => {
            report.failed_sources = f.stale_sources().map(|(s, e)| (*s, e.to_string())).collect();
            let horde_age = f.horde_age();
            if !f.reference_is_fresh() {
                Plan::Nothing(CategoryOutcome::KeptStale)
            } else if f.horde_is_fresh() || (run.invalidated && horde_age < run.stale_ttl) {
                Plan::All { inputs: f.inputs, horde_age }
            } else {
                Plan::Statistics(f.inputs)
            }
        }
    };

    let (computed, risk_inputs_age) = match plan {
        Plan::Nothing(outcome) => {
            report.outcome = outcome;
            keep_stale(&deps, &report, &[EntryKind::DeletionRisk, EntryKind::Statistics], run.generation);
            return report;
        }
        Plan::All { inputs, horde_age } => {
            let t = Instant::now();
            let computed = deps
                .compute
                .send(Compute { category, inputs, analysis: deps.analysis.clone(), computed_at })
                .await;
            report.compute_ms = t.elapsed().as_millis() as u64;
            (computed, horde_age)
        }
        Plan::Statistics(inputs) => {
            keep_stale(&deps, &report, &[EntryKind::DeletionRisk], run.generation);
            let t = Instant::now();
            let computed = deps.compute.send(ComputeStatistics { category, inputs, computed_at }).await;
            report.compute_ms = t.elapsed().as_millis() as u64;
            (computed, Duration::ZERO)
        }
    };
    let entries = match computed {
        Err(e) => {
            report.outcome = CategoryOutcome::Failed(format!("compute pool unavailable: {e}"));
            return report;
        }
        Ok(Err(e)) => {
            report.outcome = CategoryOutcome::Failed(e);
            return report;
        }
        Ok(Ok(Computed { entries, millis })) => {
            report.compute_ms = millis;
            deps.metrics.stage(category, Stage::Compute, Duration::from_millis(millis));
            entries
        }
    };
    let statistics_only = entries.iter().all(|e| e.key.kind == EntryKind::Statistics);
    let expected: Vec<EntryKey> = EntryKey::for_category(category)
        .into_iter()
        .filter(|k| !statistics_only || k.kind == EntryKind::Statistics)
        .collect();
    let got: Vec<EntryKey> = entries.iter().map(|e| e.key).collect();
    if got.len() != expected.len() || expected.iter().any(|k| !got.contains(k)) {
        report.outcome = CategoryOutcome::Failed(format!(
            "the analytics produced {} of the {} entries; nothing written",
            got.len(),
            expected.len()
        ));
        return report;
    }
    // Redis refuses a value over 512 MiB: never send one (the category keeps
    // its entries, as for any failure).
    if let Some(e) = entries.iter().find(|e| e.json.len() > MAX_REDIS_VALUE_BYTES) {
        report.outcome = CategoryOutcome::Failed(format!(
            "entry {} is {} bytes, more than Redis accepts ({MAX_REDIS_VALUE_BYTES}); nothing written \
             (lower limits.max_models_per_category)",
            e.key,
            e.json.len()
        ));
        return report;
    }
    if superseded() {
        report.outcome = CategoryOutcome::Superseded;
        return report;
    }
    report.entries = entries
        .iter()
        .map(|e| EntrySummary {
            key: e.key,
            models: e.models,
            at_risk: e.at_risk,
            critical: e.critical,
            bytes: e.json.len(),
        })
        .collect();

    let t = Instant::now();
    let stored = deps
        .cache
        .send(StoreCategory {
            category,
            entries: entries.clone(),
            generation: run.generation,
            guard: run.invalidated,
            risk_inputs_age,
            started_ms,
        })
        .await;
    report.store_ms = t.elapsed().as_millis() as u64;
    deps.metrics.stage(category, Stage::Store, t.elapsed());
    report.payloads = entries;
    match stored {
        Ok(_) if superseded() => report.outcome = CategoryOutcome::Superseded,
        Ok(redis) => {
            deps.metrics.entries_written(report.entries.len());
            report.outcome = if statistics_only {
                CategoryOutcome::StatisticsOnly { redis }
            } else {
                CategoryOutcome::Written { redis }
            };
        }
        Err(e) => report.outcome = CategoryOutcome::Failed(format!("cache unavailable: {e}")),
    }
    report
}

/// Tell the cache these kinds of the category's entries could not be
/// refreshed: it keeps them readable (stale-if-error).
fn keep_stale(deps: &CycleDeps, report: &CategoryReport, kinds: &[EntryKind], generation: u64) {
    let reason = if report.failed_sources.is_empty() {
        match &report.outcome {
            CategoryOutcome::Failed(e) => e.clone(),
            _ => "its sources failed".to_string(),
        }
    } else {
        let failed: Vec<String> = report.failed_sources.iter().map(|(s, e)| format!("{s}: {e}")).collect();
        format!("sources failed: {}", failed.join("; "))
    };
    deps.cache.do_send(KeepStale { category: report.category, kinds: kinds.to_vec(), reason, generation });
}

// ---------------------------------------------------------------- the actor

/// Run a cycle now (or right after the current one) for these categories.
#[derive(Message)]
#[rtype(result = "HydrateAck")]
pub struct HydrateNow {
    pub categories: Vec<Category>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HydrateAck {
    Started,
    /// A cycle is running; one follow-up cycle will run after it.
    Queued,
    /// The daemon is shutting down.
    Refused,
    /// Another replica leads; it hydrates (replicas: `leader.rs`).
    NotLeader,
}

/// A category's entries were invalidated (generation `generation`): until a
/// cycle writes them again, its deletion risk may be computed from the last
/// good Horde data, and its store is guarded against late DELs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoteInvalidated {
    pub category: Category,
    pub generation: u64,
}

/// Drop the queued follow-up cycle (`admin clear`: nothing re-fills the
/// cleared entries before the next scheduled cycle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelQueued;

/// Stop scheduling; let the running cycle finish within `grace`, else abort it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

/// The schedule's state, for the status reply.
#[derive(Message)]
#[rtype(result = "HydratorStatus")]
pub struct GetHydratorInfo;

/// The hydrator's part of a settings reload (SIGHUP): applied at once. A new
/// interval counts from the start of the last scheduled cycle (a cycle that
/// is due by now starts at once); the thresholds apply from the next cycle.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub enabled: bool,
    pub interval: Duration,
    /// `hydration.stale_ttl_seconds`: Horde data older than this is not used.
    pub stale_ttl: Duration,
    pub analysis: AnalysisSettings,
}

/// The hydrator's part of the status reply.
#[derive(Debug, Clone, Serialize)]
pub struct HydratorStatus {
    pub hydration: HydrationStatus,
    pub cycle_running: Option<RunningStatus>,
    pub follow_up_queued: bool,
    pub last_cycle: Option<CycleStatus>,
    pub next_cycle: Option<NextCycle>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HydrationStatus {
    pub enabled: bool,
    pub interval_seconds: u64,
    pub categories: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunningStatus {
    pub for_seconds: f64,
    pub categories: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextCycle {
    /// Unix time.
    pub at: f64,
    pub in_seconds: f64,
}

struct Running {
    since: Instant,
    categories: Vec<Category>,
    handle: SpawnHandle,
}

pub struct HydratorActor {
    deps: CycleDeps,
    enabled: bool,
    interval: Duration,
    categories: Vec<Category>,
    running: Option<Running>,
    follow_up: BTreeSet<Category>,
    /// Invalidated categories not written since, with the generation.
    invalidated: std::collections::BTreeMap<Category, u64>,
    stale_ttl: Duration,
    last: Option<CycleReport>,
    next_at: Option<Instant>,
    stopping: bool,
    stop_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Replicas: only a leader (or a standalone daemon) runs cycles.
    role: Role,
    /// The pending schedule timer (the next tick; replaced when the schedule changes).
    schedule: Option<SpawnHandle>,
    /// When the startup delay is over.
    first_tick_at: Instant,
    /// When the last scheduled tick fired.
    last_tick: Option<Instant>,
}

impl HydratorActor {
    pub fn new(settings: &Settings, deps: CycleDeps) -> Self {
        HydratorActor {
            deps,
            enabled: settings.hydration.enabled,
            interval: settings.hydration.interval,
            categories: settings.hydration.categories.clone(),
            running: None,
            follow_up: BTreeSet::new(),
            invalidated: std::collections::BTreeMap::new(),
            stale_ttl: settings.hydration.stale_ttl,
            last: None,
            next_at: None,
            stopping: false,
            stop_waiters: Vec::new(),
            role: if settings.leader.active(&settings.redis) { Role::Follower } else { Role::Standalone },
            schedule: None,
            first_tick_at: Instant::now() + settings.hydration.startup_delay,
            last_tick: None,
        }
    }

    /// (Re)start the schedule: a tick after `first_in`, then one every
    /// `self.interval` (read at each tick, so a reload changes it).
    fn reschedule(&mut self, first_in: Duration, ctx: &mut Context<Self>) {
        if let Some(h) = self.schedule.take() {
            ctx.cancel_future(h);
        }
        self.next_at = Some(Instant::now() + first_in);
        self.schedule = Some(ctx.run_later(first_in, |act, ctx| {
            act.schedule = None;
            act.last_tick = Some(Instant::now());
            act.tick(ctx);
            let interval = act.interval;
            act.reschedule(interval, ctx);
        }));
    }

    /// A scheduled tick (the caller, [`Self::reschedule`]'s timer, then sets
    /// the next one and `next_at`).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if !self.role.hydrates() {
            log::debug!("hydrator: scheduled cycle skipped: another replica leads");
            return;
        }
        if self.running.is_some() {
            log::info!("hydrator: scheduled cycle skipped: the previous one is still running");
            return;
        }
        self.start_cycle(self.categories.clone(), "scheduled", ctx);
    }

    fn start_cycle(&mut self, categories: Vec<Category>, reason: &str, ctx: &mut Context<Self>) {
        log::debug!(
            "hydrator: cycle starts ({reason}): {}",
            categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        );
        let plan = CyclePlan {
            invalidated: categories.iter().copied().filter(|c| self.invalidated.contains_key(c)).collect(),
            stale_ttl: self.stale_ttl,
        };
        let fut = run_planned_cycle(self.deps.clone(), categories.clone(), plan);
        let handle = ctx.spawn(fut.into_actor(self).map(|report, act, ctx| act.finish(report, ctx)));
        self.running = Some(Running { since: Instant::now(), categories, handle });
    }

    fn finish(&mut self, mut report: CycleReport, ctx: &mut Context<Self>) {
        self.running = None;
        let mut line = report.log_line();
        if let Some(at) = self.next_at.filter(|_| self.enabled && !self.stopping) {
            let wait = at.saturating_duration_since(Instant::now());
            line.push_str(&format!(
                "; next cycle at {} (in {} s)",
                utc_clock(unix_now() + wait.as_secs_f64()),
                wait.as_secs()
            ));
        }
        if report.outcome() == CycleOutcome::Ok {
            log::info!("{line}");
        } else {
            log::warn!("{line}");
        }
        for c in &mut report.categories {
            c.payloads = Vec::new();
            if c.is_written() && self.invalidated.get(&c.category).is_some_and(|g| *g <= c.generation) {
                self.invalidated.remove(&c.category);
            }
        }
        if self.last.is_none() {
            // Under systemd (Type=notify) the service is up once its first cycle ran.
            crate::sd_notify::ready();
        }
        self.last = Some(report);
        release_free_memory();
        if self.stopping {
            for w in self.stop_waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        if !self.follow_up.is_empty() {
            let cats: Vec<Category> = std::mem::take(&mut self.follow_up).into_iter().collect();
            self.start_cycle(cats, "queued follow-up", ctx);
        }
    }
}

/// Give the memory a cycle freed back to the OS, so that an idle daemon holds
/// only what it keeps (the cached entries and the last good sources).
///
/// The system allocator (glibc) keeps freed memory in its arenas, one per
/// thread that allocated, and returns only what lies at the top of each;
/// `malloc_trim` releases every free page of every arena. It runs once per
/// cycle, on the actors' thread.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// For the daemon (`run`): every allocation of 128 KiB or more gets its own
/// mapping, returned to the OS the moment it is freed.
///
/// glibc's threshold is 128 KiB at start but rises to the size of each large
/// block freed (up to 32 MiB): from the second cycle on, the entries and the
/// parse buffers (up to 65 MB each at x100) came from the arenas, where
/// growing a buffer copies it and freed space is kept; a fixed threshold
/// keeps later cycles' peak at the first's (docs/PERFORMANCE.md has the
/// figures). `once` keeps glibc's default (one
/// cycle, where the two hardly differ and fewer mappings start faster).
pub fn bound_large_allocations() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets the allocator's own tuning parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

impl Actor for HydratorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.enabled {
            log::info!("hydrator: scheduled hydration disabled (hydration.enabled = false); cycles run on demand only");
            crate::sd_notify::ready();
            return;
        }
        self.reschedule(self.first_tick_at.saturating_duration_since(Instant::now()), ctx);
    }
}

impl Handler<HydrateNow> for HydratorActor {
    type Result = MessageResult<HydrateNow>;

    fn handle(&mut self, msg: HydrateNow, ctx: &mut Self::Context) -> Self::Result {
        if self.stopping {
            return MessageResult(HydrateAck::Refused);
        }
        if !self.role.hydrates() {
            log::debug!("hydrator: hydrate requested ({}) on a follower: the leader hydrates", msg.reason);
            return MessageResult(HydrateAck::NotLeader);
        }
        let mut cats: Vec<Category> = msg.categories;
        if cats.is_empty() {
            cats = self.categories.clone();
        }
        if self.running.is_some() {
            self.follow_up.extend(cats);
            log::info!("hydrator: hydrate requested ({}) during a cycle: one follow-up queued", msg.reason);
            return MessageResult(HydrateAck::Queued);
        }
        cats.sort();
        cats.dedup();
        log::info!("hydrator: hydrating now ({})", msg.reason);
        self.start_cycle(cats, &msg.reason, ctx);
        MessageResult(HydrateAck::Started)
    }
}

impl Handler<RoleChanged> for HydratorActor {
    type Result = ();

    /// A new leader runs its first cycle at once when the entries in Redis are
    /// older than the interval, else when they become that old (never before
    /// the startup delay); the schedule runs on from there. A daemon that
    /// becomes detached (Redis silent) goes by its own last cycle instead.
    fn handle(&mut self, msg: RoleChanged, ctx: &mut Self::Context) {
        let became_leader = msg.role == Role::Leader && self.role != Role::Leader;
        let became_detached = msg.role == Role::Detached && !self.role.hydrates();
        self.role = msg.role;
        if !(became_leader || became_detached) || !self.enabled || self.stopping {
            return;
        }
        let newest_ms = if became_leader {
            msg.newest_written_ms
        } else {
            self.last.as_ref().map(|r| (r.started_unix * 1000.0) as u64)
        };
        let now_ms = (unix_now() * 1000.0) as u64;
        let first_in = first_cycle_in(newest_ms, now_ms, self.interval)
            .max(self.first_tick_at.saturating_duration_since(Instant::now()));
        log::info!(
            "hydrator: {}; first cycle in {} ms",
            if became_leader { "leading" } else { "detached" },
            first_in.as_millis()
        );
        self.reschedule(first_in, ctx);
    }
}

impl Handler<NoteInvalidated> for HydratorActor {
    type Result = ();

    fn handle(&mut self, msg: NoteInvalidated, _ctx: &mut Self::Context) {
        let g = self.invalidated.entry(msg.category).or_default();
        *g = (*g).max(msg.generation);
    }
}

impl Handler<CancelQueued> for HydratorActor {
    type Result = ();

    fn handle(&mut self, _msg: CancelQueued, _ctx: &mut Self::Context) {
        if !self.follow_up.is_empty() {
            log::info!("hydrator: the queued follow-up cycle is cancelled");
        }
        self.follow_up.clear();
    }
}

impl Handler<Shutdown> for HydratorActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        self.follow_up.clear();
        let Some(running) = &self.running else { return Box::pin(async {}) };
        log::info!("hydrator: waiting up to {:?} for the running cycle", msg.grace);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop_waiters.push(tx);
        let handle = running.handle;
        ctx.run_later(msg.grace, move |act, ctx| {
            if act.running.is_some() {
                // Each category's store is one atomic script: aborting here
                // leaves every category either fully old or fully new.
                ctx.cancel_future(handle);
                act.running = None;
                log::warn!("hydrator: the running cycle was aborted for shutdown");
                for w in act.stop_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Reconfigure> for HydratorActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        if *self.deps.analysis != msg.analysis {
            self.deps.analysis = Arc::new(msg.analysis);
        }
        self.stale_ttl = msg.stale_ttl;
        if msg.enabled == self.enabled && msg.interval == self.interval {
            return;
        }
        self.enabled = msg.enabled;
        self.interval = msg.interval;
        if self.stopping {
            return;
        }
        if !self.enabled {
            if let Some(timer) = self.schedule.take() {
                ctx.cancel_future(timer);
            }
            self.next_at = None;
            log::info!("hydrator: scheduled cycles stopped (hydration.enabled = false)");
            return;
        }
        // Before the first tick (the startup delay) the first cycle keeps its time.
        let next = match (self.last_tick, self.next_at) {
            (Some(last), _) => last + self.interval,
            (None, Some(at)) => at,
            (None, None) => Instant::now(),
        };
        let delay = next.saturating_duration_since(Instant::now());
        self.reschedule(delay, ctx);
        if self.role.hydrates() {
            log::info!(
                "hydrator: a cycle every {} s; the next in {:.0} s",
                self.interval.as_secs(),
                delay.as_secs_f64()
            );
        } else {
            log::info!("hydrator: a cycle every {} s while this instance leads", self.interval.as_secs());
        }
    }
}

impl Handler<GetHydratorInfo> for HydratorActor {
    type Result = MessageResult<GetHydratorInfo>;

    fn handle(&mut self, _msg: GetHydratorInfo, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let now_unix = unix_now();
        let next =
            self.next_at.filter(|_| self.enabled && !self.stopping && self.role.hydrates()).map(|at| {
                let left = at.saturating_duration_since(now).as_secs_f64();
                NextCycle { at: now_unix + left, in_seconds: left }
            });
        MessageResult(HydratorStatus {
            hydration: HydrationStatus {
                enabled: self.enabled,
                interval_seconds: self.interval.as_secs(),
                categories: self.categories.iter().map(|c| c.as_str()).collect(),
            },
            cycle_running: self.running.as_ref().map(|r| RunningStatus {
                for_seconds: r.since.elapsed().as_secs_f64(),
                categories: r.categories.iter().map(|c| c.as_str()).collect(),
            }),
            follow_up_queued: !self.follow_up.is_empty(),
            last_cycle: self.last.as_ref().map(CycleReport::status),
            next_cycle: next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(c: Category) -> CategoryReport {
        let mut r = CategoryReport::new(c);
        r.outcome = CategoryOutcome::Written { redis: RedisWrite::Disabled };
        r
    }

    /// Offline settings over the example snapshot, no schedule, no Redis.
    fn offline_settings() -> Settings {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");
        let mut s = Settings::default();
        s.hydration.enabled = false;
        s.redis.enabled = false;
        s.horde.api = horde_hydrator::settings::Source::Dir(format!("{data}/horde").into());
        s.model_reference.source =
            horde_hydrator::settings::Source::Dir(format!("{data}/model_reference").into());
        s
    }

    /// The actors of a cycle over `settings` (started in the running system),
    /// and the metrics they share.
    fn offline_deps(settings: &Settings) -> (CycleDeps, Arc<Metrics>) {
        use crate::cache::CacheActor;
        use crate::horde_fetcher::HordeFetcherActor;
        use crate::risk_compute::RiskComputeActor;
        let metrics = Arc::new(Metrics::new());
        let deps = CycleDeps {
            fetcher: HordeFetcherActor::new(settings, metrics.clone()).start(),
            compute: RiskComputeActor::start_pool(),
            cache: CacheActor::new(settings, metrics.clone()).unwrap().start(),
            analysis: Arc::new(settings.analysis.clone()),
            metrics: metrics.clone(),
        };
        (deps, metrics)
    }

    #[test]
    fn hydrate_now_during_a_cycle_queues_exactly_one_follow_up() {
        let settings = offline_settings();
        actix_rt::System::new().block_on(async move {
            let (deps, metrics) = offline_deps(&settings);
            let hydrator = HydratorActor::new(&settings, deps).start();
            let now = |cats: Vec<Category>| HydrateNow { categories: cats, reason: "test".into() };
            // Queued together (`send` enqueues at once): the 2nd and 3rd arrive during the 1st cycle.
            let first = hydrator.send(now(vec![Category::TextGeneration]));
            let second = hydrator.send(now(vec![Category::ImageGeneration]));
            let third = hydrator.send(now(vec![Category::TextGeneration]));
            assert_eq!(first.await.unwrap(), HydrateAck::Started);
            assert_eq!(second.await.unwrap(), HydrateAck::Queued);
            assert_eq!(third.await.unwrap(), HydrateAck::Queued);
            // Wait for both cycles (the first and its one follow-up).
            let mut info = serde_json::Value::Null;
            for _ in 0..200 {
                info = serde_json::to_value(hydrator.send(GetHydratorInfo).await.unwrap()).unwrap();
                if metrics.counters().cycles >= 2 && info["cycle_running"].is_null() {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(metrics.counters().cycles, 2, "one cycle and one follow-up");
            let last = &info["last_cycle"];
            assert_eq!(last["outcome"], "ok", "{info}");
            let cats: Vec<&str> = last["categories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["category"].as_str().unwrap())
                .collect();
            assert_eq!(cats, ["image_generation", "text_generation"], "the follow-up covers both requests");
            assert_eq!(info["next_cycle"], serde_json::Value::Null, "no schedule when hydration is disabled");
            assert_eq!(metrics.counters().entries_written, 5 + 4 + 5);

            hydrator.send(Shutdown { grace: Duration::from_millis(100) }).await.unwrap();
            assert_eq!(hydrator.send(now(vec![])).await.unwrap(), HydrateAck::Refused);
        });
    }

    #[test]
    fn reconfigure_starts_stops_and_reschedules_the_schedule() {
        let settings = offline_settings();
        actix_rt::System::new().block_on(async move {
            let (deps, metrics) = offline_deps(&settings);
            let hydrator = HydratorActor::new(&settings, deps).start();
            let cycles = || metrics.counters().cycles;
            let info = serde_json::to_value(hydrator.send(GetHydratorInfo).await.unwrap()).unwrap();
            assert_eq!(info["next_cycle"], serde_json::Value::Null, "disabled: no schedule");

            // Enabled by a reload, with a 1 s interval: the first cycle is due at once.
            let enable = Reconfigure {
                enabled: true,
                interval: Duration::from_secs(1),
                stale_ttl: settings.hydration.stale_ttl,
                analysis: settings.analysis.clone(),
            };
            hydrator.send(enable.clone()).await.unwrap();
            let info = serde_json::to_value(hydrator.send(GetHydratorInfo).await.unwrap()).unwrap();
            assert_eq!(info["hydration"]["interval_seconds"], 1, "{info}");
            assert!(info["next_cycle"]["in_seconds"].as_f64().unwrap() < 0.1, "{info}");
            for _ in 0..100 {
                if cycles() >= 2 {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(cycles() >= 2, "a cycle at once and one a second later: {}", cycles());

            // Disabled again: no further scheduled cycle.
            hydrator.send(Reconfigure { enabled: false, ..enable }).await.unwrap();
            let info = serde_json::to_value(hydrator.send(GetHydratorInfo).await.unwrap()).unwrap();
            assert_eq!(info["next_cycle"], serde_json::Value::Null, "{info}");
            for _ in 0..100 {
                if hydrator.send(GetHydratorInfo).await.unwrap().cycle_running.is_none() {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            let after = cycles();
            actix_rt::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(cycles(), after, "a disabled schedule ran a cycle");
        });
    }

    #[test]
    fn cycle_outcome_counts_written_categories() {
        let mut failed = CategoryReport::new(Category::TextGeneration);
        failed.outcome = CategoryOutcome::Failed("boom".into());
        let mut kept = CategoryReport::new(Category::TextGeneration);
        kept.outcome = CategoryOutcome::KeptStale;
        let mk = |cats: Vec<CategoryReport>| CycleReport {
            started_unix: 0.0,
            duration: Duration::ZERO,
            categories: cats,
        };
        assert_eq!(
            mk(vec![written(Category::ImageGeneration), written(Category::TextGeneration)])
                .outcome()
                .as_str(),
            "ok"
        );
        assert_eq!(
            mk(vec![written(Category::ImageGeneration), failed.clone()]).outcome().as_str(),
            "partial"
        );
        assert_eq!(mk(vec![kept.clone(), failed]).outcome().as_str(), "failed");
        let line = mk(vec![written(Category::ImageGeneration), kept]).log_line();
        assert!(line.starts_with("cycle partial in 0 ms: image_generation: written"), "{line}");
        assert!(line.contains("text_generation: kept_stale"), "{line}");
        let mut not_in_redis = written(Category::TextGeneration);
        not_in_redis.outcome = CategoryOutcome::Written { redis: RedisWrite::Failed("redis is down".into()) };
        let cycle = mk(vec![written(Category::ImageGeneration), not_in_redis]);
        assert_eq!(cycle.outcome().as_str(), "partial", "a Redis write that failed is not ok");
        assert!(cycle.log_line().starts_with("cycle partial"), "{}", cycle.log_line());
        assert!(cycle.log_line().contains(", redis failed: redis is down; fetch"), "{}", cycle.log_line());
        // The words README's log section gives for the writes the fence drops.
        let mut fenced = written(Category::TextGeneration);
        fenced.outcome = CategoryOutcome::Written { redis: RedisWrite::NotLeader };
        let mut stats_only = written(Category::ImageGeneration);
        stats_only.outcome = CategoryOutcome::StatisticsOnly { redis: RedisWrite::Superseded };
        let line = mk(vec![stats_only, fenced]).log_line();
        assert!(line.contains("redis not written: this instance does not hold the lease"), "{line}");
        assert!(line.contains("redis not written: it holds entries of a later cycle"), "{line}");
    }
}
