//! RiskComputeActor: runs the analytics core off the async threads, and
//! decides which of its steps run in parallel (the core has no threads; the
//! parses run on the runtime's blocking pool, sized in main.rs).
//!
//! A stateless `SyncActor` started in a `SyncArbiter` (one thread per core,
//! at most two), so a large category never stalls the fetcher, the cache or
//! pub/sub; the two categories of a cycle are computed at once. Within a
//! category, one more thread ([`compute_in_parallel`]): it computes the
//! statistics entries while the actor's thread builds the
//! [`RiskBasis`] (Horde index, record facts) and the ungrouped and grouped
//! entries; the text entry with backend variations (which needs the basis)
//! is made by whichever of the two is free first. Should the thread not
//! start, everything runs on the actor's thread; the entries and their order
//! are the same either way ([`cycle::compute_category`]'s). A panic in the
//! core is caught and returned as an error, so one bad category cannot take
//! the daemon (or the other category) down. While the Horde's data is
//! unavailable, [`ComputeStatistics`] runs [`cycle::compute_statistics_entries`]
//! alone.

use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{self, CategoryInputs, ComputedEntry, RiskBasis};
use horde_hydrator::input::horde::BaseNames;
use horde_hydrator::settings::AnalysisSettings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub struct RiskComputeActor;

impl Actor for RiskComputeActor {
    type Context = SyncContext<Self>;
}

impl RiskComputeActor {
    /// Start the pool: one thread per core, at most two (SPEC §1).
    pub fn start_pool() -> Addr<RiskComputeActor> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 2);
        SyncArbiter::start(threads, || RiskComputeActor)
    }
}

/// Compute every entry of a category.
#[derive(Message)]
#[rtype(result = "Result<Computed, String>")]
pub struct Compute {
    pub category: Category,
    pub inputs: Arc<CategoryInputs>,
    pub analysis: Arc<AnalysisSettings>,
    /// Unix seconds stamped into the entries.
    pub computed_at: i64,
}

/// The entries and how long they took.
#[derive(Debug, Clone)]
pub struct Computed {
    pub entries: Vec<ComputedEntry>,
    pub millis: u64,
}

impl Handler<Compute> for RiskComputeActor {
    type Result = Result<Computed, String>;

    fn handle(&mut self, msg: Compute, _ctx: &mut Self::Context) -> Self::Result {
        let category = msg.category;
        let computed = guarded(category, "analytics", || {
            compute_in_parallel(msg.category, &msg.inputs, &msg.analysis, msg.computed_at)
        })?;
        if computed.entries.is_empty() {
            return Err(format!("{category}: the analytics produced no entries"));
        }
        Ok(computed)
    }
}

/// Runs one computation, timed; a panic in it becomes an error naming the
/// category and `what` ran (logged once), so one bad record never takes the
/// compute thread down.
fn guarded(
    category: Category,
    what: &str,
    run: impl FnOnce() -> Vec<ComputedEntry>,
) -> Result<Computed, String> {
    let started = Instant::now();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(entries) => Ok(Computed { entries, millis: started.elapsed().as_millis() as u64 }),
        Err(panic) => {
            let cause = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            log::error!("compute: {category} {what} panicked: {cause}");
            Err(format!("{category}: the {what} crashed: {cause}"))
        }
    }
}

/// Compute only the statistics entries of a category (they read the model
/// reference alone): what a cycle refreshes while the Horde fails.
#[derive(Message)]
#[rtype(result = "Result<Computed, String>")]
pub struct ComputeStatistics {
    pub category: Category,
    pub inputs: Arc<CategoryInputs>,
    /// Unix seconds stamped into the entries.
    pub computed_at: i64,
}

impl Handler<ComputeStatistics> for RiskComputeActor {
    type Result = Result<Computed, String>;

    fn handle(&mut self, msg: ComputeStatistics, _ctx: &mut Self::Context) -> Self::Result {
        guarded(msg.category, "statistics", || {
            cycle::compute_statistics_entries(msg.category, &msg.inputs.reference, msg.computed_at)
        })
    }
}

/// The text entry with backend variations goes to whichever thread is free
/// first: the worker after the statistics, or the calling thread after the
/// ungrouped and grouped entries (at x1 the statistics are the shorter part,
/// at x10 the longer one).
#[derive(Debug, Default)]
struct VariationsJob(AtomicBool);

impl VariationsJob {
    /// Take the job; `true` for exactly one caller.
    fn claim(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// What the worker makes: the statistics entries, then (text, if it claimed
/// the job) the entry with backend variations.
struct WorkerOutput {
    statistics: Vec<ComputedEntry>,
    variations: Option<ComputedEntry>,
}

/// The worker's part; `ready` says when `basis` is set (it never comes if
/// the calling thread failed, and the sender is then dropped).
fn worker_part(
    category: Category,
    inputs: &CategoryInputs,
    basis: &OnceLock<RiskBasis<'_>>,
    ready: Receiver<()>,
    job: &VariationsJob,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> WorkerOutput {
    let statistics = cycle::compute_statistics_entries(category, &inputs.reference, computed_at);
    let variations = if category.is_text() && job.claim() {
        ready
            .recv()
            .ok()
            .and_then(|()| basis.get())
            .and_then(|basis| cycle::variations_entry(basis, settings))
    } else {
        None
    };
    WorkerOutput { statistics, variations }
}

/// [`cycle::compute_category`] on two threads (see the module's doc).
fn compute_in_parallel(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    computed_at: i64,
) -> Vec<ComputedEntry> {
    let basis_lock: OnceLock<RiskBasis<'_>> = OnceLock::new();
    let job = VariationsJob::default();
    let (risk, variations, worker) = std::thread::scope(|scope| {
        let (lock, job) = (&basis_lock, &job);
        let (signal, ready) = sync_channel::<()>(1);
        let worker = std::thread::Builder::new()
            .name("analytics".into())
            .spawn_scoped(scope, move || {
                worker_part(category, inputs, lock, ready, job, settings, computed_at)
            })
            .map_err(|e| log::debug!("no worker thread ({e}); everything computed here"));
        let mut base_names = BaseNames::new();
        let basis = lock.get_or_init(|| RiskBasis::new(category, inputs, settings, &mut base_names));
        // Nothing to do if the worker is gone (it then reports nothing).
        let _ = signal.send(());
        let risk = cycle::ungrouped_and_grouped(basis, &mut base_names, settings);
        drop(signal);
        let variations =
            if category.is_text() && job.claim() { cycle::variations_entry(basis, settings) } else { None };
        let worker = match worker {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No worker: this thread claimed the variations above.
            Err(()) => WorkerOutput {
                statistics: cycle::compute_statistics_entries(category, &inputs.reference, computed_at),
                variations: None,
            },
        };
        (risk, variations, worker)
    });
    let mut entries = Vec::with_capacity(5);
    entries.extend(risk);
    entries.extend(variations.or(worker.variations));
    entries.extend(worker.statistics);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use horde_hydrator::input::horde::{parse_stats, parse_status};
    use horde_hydrator::input::reference::parse_reference;
    use horde_hydrator::keys::EntryKey;

    #[test]
    fn the_parallel_split_makes_the_entries_of_compute_category() {
        let inputs = CategoryInputs {
            reference: parse_reference(
                br#"{"Org/Foo-7B": {"name": "Org/Foo-7B", "parameters": 7000000000},
                     "Org/Foo-13B": {"name": "Org/Foo-13B"}, "B": {"name": "B", "baseline": "b"}}"#,
            )
            .unwrap(),
            status: parse_status(br#"[{"name": "koboldcpp/Foo-7B", "count": 2, "performance": 1.5}]"#)
                .unwrap(),
            stats: parse_stats(br#"{"day": {}, "month": {"koboldcpp/Foo-7B": 50, "B": 5}, "total": {}}"#)
                .unwrap(),
        };
        let settings = AnalysisSettings::default();
        for category in Category::ALL {
            let parallel = compute_in_parallel(category, &inputs, &settings, 7);
            assert_eq!(parallel, cycle::compute_category(category, &inputs, &settings, 7), "{category}");
            assert_eq!(parallel.len(), EntryKey::for_category(category).len());
        }
    }
}
