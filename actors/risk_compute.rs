//! RiskComputeActor: runs the analytics core off the async threads.
//!
//! A stateless `SyncActor` started in a `SyncArbiter` (one or two OS threads),
//! so a large category never stalls the fetcher, the cache or pub/sub. It
//! calls [`cycle::compute_category`] (or, while the Horde's data is
//! unavailable, [`cycle::compute_statistics_entries`]) and nothing else; a panic in the core is
//! caught and returned as an error, so one bad category cannot take the
//! daemon (or the other category) down.

use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{self, CategoryInputs, ComputedEntry};
use horde_hydrator::settings::AnalysisSettings;
use std::sync::Arc;
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
        let started = Instant::now();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cycle::compute_category(msg.category, &msg.inputs, &msg.analysis, msg.computed_at)
        }));
        match run {
            Ok(entries) if entries.is_empty() => {
                Err(format!("{}: the analytics produced no entries", msg.category))
            }
            Ok(entries) => Ok(Computed { entries, millis: started.elapsed().as_millis() as u64 }),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                log::error!("compute: {} panicked: {what}", msg.category);
                Err(format!("{}: the analytics crashed: {what}", msg.category))
            }
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
        let started = Instant::now();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cycle::compute_statistics_entries(msg.category, &msg.inputs.reference, msg.computed_at)
        }));
        match run {
            Ok(entries) => Ok(Computed { entries, millis: started.elapsed().as_millis() as u64 }),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                log::error!("compute: {} statistics panicked: {what}", msg.category);
                Err(format!("{}: the statistics crashed: {what}", msg.category))
            }
        }
    }
}
