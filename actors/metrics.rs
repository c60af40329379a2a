//! The daemon's metrics: one Prometheus registry (`prometheus-client`), the
//! small functions the actors call to count, and the text exposition of
//! `GET /metrics`.
//!
//! Every actor holds the same `Arc<Metrics>` (made in `main.rs`) and calls
//! the functions below (`cycle_finished`, `fetch_failed`, …); nobody touches
//! a metric handle directly. The `counters` section of the status reply is
//! read back from these metrics ([`Metrics::counters`]), so `/metrics` and
//! `/status` show the same numbers.
//!
//! Names start with `horde_hydrator_`, use base units named in the metric's
//! name (`_seconds`, `_bytes`; no `# UNIT` lines, which some OpenMetrics
//! parsers refuse on histograms), and counters end in `_total` (the encoder
//! adds it). Label values come from
//! fixed sets ([`AdminOutcome`], [`FetchFailureKind`], …), each pre-set to 0
//! so a series exists before its first event. Gauges that describe state
//! (entries, circuits, Redis up) are set from the status reply just before
//! each scrape ([`Metrics::observe_status`]).
//!
//! The text is OpenMetrics 1.0 (`application/openmetrics-text`), which
//! Prometheus scrapes natively; it ends with `# EOF`.

use crate::cache::Freshness;
use crate::generations::Generations;
use crate::redis_link::RefusalKind;
use crate::status::StatusReply;
use horde_hydrator::category::Category;
use horde_hydrator::keys::EntryKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type FloatGauge = Gauge<f64, AtomicU64>;

/// A fixed set of label values, each variant with its text: the enum, its
/// `ALL` (every variant, in order) and `as_str`.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: [$name; [$($text),*].len()] = [$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}
pub(crate) use label_enum;

label_enum! {
    /// How a whole cycle ended (as `CycleReport::outcome`).
    pub enum CycleOutcome {
        Ok = "ok",
        Partial = "partial",
        Failed = "failed",
    }
}

label_enum! {
    /// A stage of a category's part of a cycle.
    pub enum Stage {
        Fetch = "fetch",
        Compute = "compute",
        Store = "store",
    }
}

label_enum! {
    /// Why a source's fetch failed.
    pub enum FetchFailureKind {
        /// The service's circuit is open: no request was made.
        CircuitOpen = "circuit_open",
        /// No answer in time.
        Timeout = "timeout",
        /// Connecting or sending failed (DNS, refused, TLS, reset).
        Connect = "connect",
        /// An HTTP status other than 200.
        Status = "status",
        /// The body exceeded `horde.max_response_bytes`.
        TooLarge = "too_large",
        /// The body (or snapshot file) could not be read.
        Read = "read",
        /// The body is not what the source should return.
        Parse = "parse",
        /// More records than `limits.*` allow.
        OverLimit = "over_limit",
    }
}

label_enum! {
    /// The pub/sub channel a message came on.
    pub enum Channel {
        Invalidate = "invalidate",
        Admin = "admin",
        Other = "other",
    }
}

label_enum! {
    /// What became of a pub/sub message.
    pub enum MessageOutcome {
        /// Acted on (an invalidation, or an admin command that was answered).
        Handled = "handled",
        /// Not understood (garbage, unknown category, unexpected channel).
        Ignored = "ignored",
        /// Over the 64 KiB limit, not read.
        Oversized = "oversized",
    }
}

label_enum! {
    /// How an admin command ended.
    pub enum AdminOutcome {
        Ok = "ok",
        /// A JSON object that is not a valid command.
        Invalid = "invalid",
        /// Missing or wrong token: rejected, nothing changed.
        Unauthorized = "unauthorized",
    }
}

/// The admin commands as labels (`unknown` for an invalid one).
pub const ADMIN_COMMANDS: [&str; 5] = ["hydrate", "invalidate", "clear", "status", "unknown"];

/// An entry's freshness states, as the status reply names them.
pub const FRESHNESS_STATES: [&str; 3] = ["fresh", "stale-if-error", "missing"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    category: &'static str,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryLabels {
    entry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryStateLabels {
    entry: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceKindLabels {
    source: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceStateLabels {
    service: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Every kind of error reply, for the labels.
const REFUSAL_KINDS: [RefusalKind; 9] = [
    RefusalKind::OutOfMemory,
    RefusalKind::NoPermission,
    RefusalKind::ReadOnly,
    RefusalKind::Misconfigured,
    RefusalKind::TooLarge,
    RefusalKind::WrongType,
    RefusalKind::Loading,
    RefusalKind::Authentication,
    RefusalKind::Other,
];

/// An error reply's kind as a label: the server's error code, lower-cased.
fn refusal_label(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::OutOfMemory => "oom",
        RefusalKind::NoPermission => "noperm",
        RefusalKind::ReadOnly => "readonly",
        RefusalKind::Misconfigured => "misconf",
        RefusalKind::TooLarge => "too_large",
        RefusalKind::WrongType => "wrongtype",
        RefusalKind::Loading => "loading",
        RefusalKind::Authentication => "auth",
        RefusalKind::Other => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

fn stage_histogram() -> Histogram {
    // 1 ms … ~65 s, ×4
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

fn write_histogram() -> Histogram {
    // 0.1 ms … ~6.5 s, ×4
    Histogram::new(exponential_buckets(0.0001, 4.0, 9))
}

/// Declares every registered metric once, in `/metrics` order: its field in
/// [`Series`], its type, how it is made, its name (after the
/// `horde_hydrator_` prefix; the encoder adds `_total` to counters) and its
/// help text.
macro_rules! series {
    ($($field:ident: $ty:ty = $make:expr, $name:literal, $help:literal;)*) => {
        /// Every metric in the registry.
        struct Series {
            $($field: $ty,)*
        }

        impl Series {
            /// Make each metric and register it in `registry`.
            fn register(registry: &mut Registry) -> Series {
                let s = Series { $($field: $make,)* };
                $(registry.register($name, $help, s.$field.clone());)*
                s
            }
        }
    };
}

series! {
    build_info: Family<BuildLabels, Gauge> = Family::default(),
        "build_info", "The running version (always 1)";
    cycles: Family<OutcomeLabels, Counter> = Family::default(),
        "cycles", "Hydration cycles by outcome (ok, partial, failed)";
    cycle_duration: Histogram = stage_histogram(),
        "cycle_duration_seconds", "Duration of whole cycles";
    stage_duration: Family<StageLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(stage_histogram),
        "stage_duration_seconds", "Duration of a category's fetch, compute and store stages";
    entries_written: Counter = Counter::default(),
        "entries_written", "Entries computed and stored (memory, and Redis when up)";
    entry_age: Family<EntryLabels, FloatGauge> = Family::default(),
        "entry_age_seconds", "Age of each entry held (since it was computed and stored)";
    entry_size: Family<EntryLabels, Gauge> = Family::default(),
        "entry_size_bytes", "Size of each entry's JSON";
    entry_models: Family<EntryLabels, Gauge> = Family::default(),
        "entry_models", "Models in each entry";
    entry_freshness: Family<EntryStateLabels, Gauge> = Family::default(),
        "entry_freshness", "Each configured entry's state: 1 for its current one of fresh, stale-if-error, missing";
    fetch_failures: Family<SourceKindLabels, Counter> = Family::default(),
        "source_fetch_failures", "Failed fetches by source and kind";
    source_last_success: Family<SourceLabels, FloatGauge> = Family::default(),
        "source_last_success_timestamp_seconds", "Unix time of each source's last good fetch";
    circuit_state: Family<ServiceStateLabels, Gauge> = Family::default(),
        "source_circuit_state", "Each service's circuit: 1 for its current one of closed, open, half_open";
    redis_up: Gauge = Gauge::default(),
        "redis_up", "1 while Redis answers, else 0";
    redis_outages: Counter = Counter::default(),
        "redis_outages", "Times Redis became unreachable";
    redis_reconnects: Counter = Counter::default(),
        "redis_reconnects", "Times Redis became reachable again after an outage";
    redis_connection_failures: Counter = Counter::default(),
        "redis_connection_failures",
        "Redis commands and connection attempts that failed at the connection level (I/O error, no answer in time)";
    redis_error_replies: Family<KindLabels, Counter> = Family::default(),
        "redis_error_replies",
        "Error replies from a live Redis by kind (oom, noperm, readonly, misconf, too_large, wrongtype, loading, auth, other)";
    stale_rearms: Counter = Counter::default(),
        "stale_rearms", "Entries whose Redis TTL was re-armed while their sources failed (stale-if-error)";
    late_deletes_repaired: Counter = Counter::default(),
        "late_deletes_repaired", "Entries restored in Redis after a DEL that came after their re-hydration";
    pubsub_resubscribes: Counter = Counter::default(),
        "pubsub_resubscribes", "Subscriptions lost and made again";
    redis_write_duration: Histogram = write_histogram(),
        "redis_write_duration_seconds", "Duration of a category's store to Redis";
    pubsub_messages: Family<ChannelLabels, Counter> = Family::default(),
        "pubsub_messages", "Pub/sub messages by channel and outcome";
    invalidations: Family<CategoryLabels, Counter> = Family::default(),
        "invalidations", "Invalidations applied, by category";
    debounced_bursts: Counter = Counter::default(),
        "invalidation_bursts", "Re-hydrations started after a debounced burst of invalidations";
    admin_commands: Family<AdminLabels, Counter> = Family::default(),
        "admin_commands", "Admin commands by command and outcome";
    uptime: FloatGauge = FloatGauge::default(),
        "uptime_seconds", "Time since the daemon started";
    replica_role: Family<RoleLabels, Gauge> = Family::default(),
        "replica_role", "This daemon's role: 1 for its current one of leader, follower, standalone";
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    s: Series,
    /// Not a metric: each category's generation (see `generations.rs`),
    /// shared here because every actor holds this `Arc`.
    pub generations: Generations,
    /// The total of the family whose label values are open-ended (not
    /// registered: the status reply's `counters` only).
    fetch_failure_sum: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("horde_hydrator");
        let s = Series::register(&mut registry);
        s.build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        for o in CycleOutcome::ALL {
            let _ = s.cycles.get_or_create(&OutcomeLabels { outcome: o.as_str() });
        }
        for command in ADMIN_COMMANDS {
            for outcome in AdminOutcome::ALL {
                let _ = s.admin_commands.get_or_create(&AdminLabels { command, outcome: outcome.as_str() });
            }
        }
        for channel in Channel::ALL {
            for outcome in MessageOutcome::ALL {
                let _ = s
                    .pubsub_messages
                    .get_or_create(&ChannelLabels { channel: channel.as_str(), outcome: outcome.as_str() });
            }
        }
        for k in REFUSAL_KINDS {
            let _ = s.redis_error_replies.get_or_create(&KindLabels { kind: refusal_label(k) });
        }
        for c in Category::ALL {
            let _ = s.invalidations.get_or_create(&CategoryLabels { category: c.as_str() });
        }
        Metrics { registry, s, generations: Generations::default(), fetch_failure_sum: Counter::default() }
    }

    /// Make sure the per-source and per-entry series of the configured
    /// categories exist (at 0) before their first event.
    pub fn preset(&self, categories: &[Category], sources: &[String], entries: &[String]) {
        for c in categories {
            for stage in Stage::ALL {
                let _ = self
                    .s
                    .stage_duration
                    .get_or_create(&StageLabels { category: c.as_str(), stage: stage.as_str() });
            }
        }
        for s in sources {
            for kind in FetchFailureKind::ALL {
                let _ = self
                    .s
                    .fetch_failures
                    .get_or_create(&SourceKindLabels { source: s.clone(), kind: kind.as_str() });
            }
        }
        for e in entries {
            for state in FRESHNESS_STATES {
                let _ = self.s.entry_freshness.get_or_create(&EntryStateLabels { entry: e.clone(), state });
            }
        }
    }

    // ------------------------------------------------------------ events

    /// A cycle ended.
    pub fn cycle_finished(&self, outcome: CycleOutcome, duration: Duration) {
        self.s.cycles.get_or_create(&OutcomeLabels { outcome: outcome.as_str() }).inc();
        self.s.cycle_duration.observe(duration.as_secs_f64());
    }

    /// A stage of a category's part of a cycle took `duration`.
    pub fn stage(&self, category: Category, stage: Stage, duration: Duration) {
        self.s
            .stage_duration
            .get_or_create(&StageLabels { category: category.as_str(), stage: stage.as_str() })
            .observe(duration.as_secs_f64());
    }

    pub fn entries_written(&self, n: usize) {
        self.s.entries_written.inc_by(n as u64);
    }

    /// A source's fetch failed (`source` as `SourceId` displays it).
    pub fn fetch_failed(&self, source: String, kind: FetchFailureKind) {
        self.s.fetch_failures.get_or_create(&SourceKindLabels { source, kind: kind.as_str() }).inc();
        self.fetch_failure_sum.inc();
    }

    /// A source was fetched and parsed.
    pub fn fetch_succeeded(&self, source: String, unix_time: f64) {
        self.s.source_last_success.get_or_create(&SourceLabels { source }).set(unix_time);
    }

    /// A Redis command or connection attempt failed at the connection level
    /// (an I/O error, no answer in time).
    pub fn redis_connection_failure(&self) {
        self.s.redis_connection_failures.inc();
    }

    /// Redis answered a command with an error reply.
    pub fn redis_refusal(&self, kind: RefusalKind) {
        self.s.redis_error_replies.get_or_create(&KindLabels { kind: refusal_label(kind) }).inc();
    }

    /// `n` entries' TTLs were re-armed in Redis (stale-if-error).
    pub fn stale_rearms(&self, n: usize) {
        self.s.stale_rearms.inc_by(n as u64);
    }

    /// `n` entries were restored after a late DEL.
    pub fn late_deletes_repaired(&self, n: usize) {
        self.s.late_deletes_repaired.inc_by(n as u64);
    }

    /// The subscription was lost and made again.
    pub fn pubsub_resubscribed(&self) {
        self.s.pubsub_resubscribes.inc();
    }

    /// Redis became unreachable.
    pub fn redis_outage(&self) {
        self.s.redis_outages.inc();
    }

    /// Redis answers again after an outage.
    pub fn redis_reconnected(&self) {
        self.s.redis_reconnects.inc();
    }

    /// A category's store to Redis took `duration`.
    pub fn redis_write(&self, duration: Duration) {
        self.s.redis_write_duration.observe(duration.as_secs_f64());
    }

    pub fn pubsub_message(&self, channel: Channel, outcome: MessageOutcome) {
        self.s
            .pubsub_messages
            .get_or_create(&ChannelLabels { channel: channel.as_str(), outcome: outcome.as_str() })
            .inc();
    }

    pub fn invalidation(&self, category: Category) {
        self.s.invalidations.get_or_create(&CategoryLabels { category: category.as_str() }).inc();
    }

    /// A burst of invalidations ended in one re-hydration.
    pub fn debounced_burst(&self) {
        self.s.debounced_bursts.inc();
    }

    /// An admin command was handled (`command` one of [`ADMIN_COMMANDS`]).
    pub fn admin_command(&self, command: &'static str, outcome: AdminOutcome) {
        self.s.admin_commands.get_or_create(&AdminLabels { command, outcome: outcome.as_str() }).inc();
    }

    // ------------------------------------------------------------ reading

    /// The counters of the status reply, read from the metrics.
    pub fn counters(&self) -> Counters {
        let cycles = |o: CycleOutcome| {
            self.s.cycles.get(&OutcomeLabels { outcome: o.as_str() }).map_or(0, |c| c.get())
        };
        let admin = |outcome: AdminOutcome| {
            ADMIN_COMMANDS
                .iter()
                .map(|&command| {
                    self.s
                        .admin_commands
                        .get(&AdminLabels { command, outcome: outcome.as_str() })
                        .map_or(0, |c| c.get())
                })
                .sum::<u64>()
        };
        let messages = |outcome: MessageOutcome| {
            Channel::ALL
                .iter()
                .map(|ch| {
                    self.s
                        .pubsub_messages
                        .get(&ChannelLabels { channel: ch.as_str(), outcome: outcome.as_str() })
                        .map_or(0, |c| c.get())
                })
                .sum::<u64>()
        };
        Counters {
            cycles: CycleOutcome::ALL.iter().map(|o| cycles(*o)).sum(),
            cycles_failed: cycles(CycleOutcome::Partial) + cycles(CycleOutcome::Failed),
            entries_written: self.s.entries_written.get(),
            fetch_failures: self.fetch_failure_sum.get(),
            redis_errors: self.s.redis_connection_failures.get(),
            redis_refusals: REFUSAL_KINDS
                .iter()
                .map(|k| {
                    self.s
                        .redis_error_replies
                        .get(&KindLabels { kind: refusal_label(*k) })
                        .map_or(0, |c| c.get())
                })
                .sum(),
            pubsub_resubscribes: self.s.pubsub_resubscribes.get(),
            stale_rearms: self.s.stale_rearms.get(),
            late_deletes_repaired: self.s.late_deletes_repaired.get(),
            redis_outages: self.s.redis_outages.get(),
            invalidations: Category::ALL
                .iter()
                .map(|c| {
                    self.s.invalidations.get(&CategoryLabels { category: c.as_str() }).map_or(0, |v| v.get())
                })
                .sum(),
            admin_commands: admin(AdminOutcome::Ok),
            admin_rejected: admin(AdminOutcome::Unauthorized),
            messages_ignored: messages(MessageOutcome::Ignored)
                + messages(MessageOutcome::Oversized)
                + admin(AdminOutcome::Invalid),
        }
    }

    /// Set the state gauges from a status reply (just before a scrape).
    pub fn observe_status(&self, status: &StatusReply, configured: &[EntryKey], prefix: &str) {
        self.s.uptime.set(status.uptime_seconds);
        for role in ["leader", "follower", "standalone"] {
            self.s
                .replica_role
                .get_or_create(&RoleLabels { role })
                .set(i64::from(status.replica.role == role));
        }
        self.s.redis_up.set(i64::from(status.redis.connected));
        for (service, state) in [
            ("horde", status.fetcher.horde_circuit),
            ("model_reference", status.fetcher.model_reference_circuit),
        ] {
            for s in crate::horde_fetcher::CircuitState::ALL {
                self.s
                    .circuit_state
                    .get_or_create(&ServiceStateLabels { service, state: s.as_str() })
                    .set(i64::from(s == state));
            }
        }
        for key in configured {
            let name = key.name();
            let redis_key = key.redis_key(prefix);
            let held = status.entries.iter().find(|e| e.key == redis_key);
            let state = match held.map(|e| e.freshness) {
                Some(Freshness::Fresh) => "fresh",
                Some(Freshness::Stale) => "stale-if-error",
                Some(Freshness::Expired) | None => "missing",
            };
            for s in FRESHNESS_STATES {
                self.s
                    .entry_freshness
                    .get_or_create(&EntryStateLabels { entry: name.clone(), state: s })
                    .set(i64::from(s == state));
            }
            let labels = EntryLabels { entry: name };
            match held {
                Some(e) => {
                    self.s.entry_age.get_or_create(&labels).set(e.age_seconds);
                    self.s.entry_size.get_or_create(&labels).set(e.bytes as i64);
                    self.s.entry_models.get_or_create(&labels).set(e.models as i64);
                }
                None => {
                    self.s.entry_age.remove(&labels);
                    self.s.entry_size.remove(&labels);
                    self.s.entry_models.remove(&labels);
                }
            }
        }
    }

    /// The whole registry as OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The counters of the status reply (`counters`), totals over the labelled metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counters {
    pub cycles: u64,
    /// Cycles that were `partial` or `failed`.
    pub cycles_failed: u64,
    pub entries_written: u64,
    pub fetch_failures: u64,
    /// Commands and connection attempts that failed at the connection level.
    pub redis_errors: u64,
    pub redis_outages: u64,
    /// Error replies from a live Redis (OOM, NOPERM, READONLY, …).
    pub redis_refusals: u64,
    /// Subscriptions lost and made again.
    pub pubsub_resubscribes: u64,
    /// Entries whose TTL was re-armed in Redis while their sources failed.
    pub stale_rearms: u64,
    /// Entries restored in Redis after a DEL that came after a re-hydration.
    pub late_deletes_repaired: u64,
    pub invalidations: u64,
    /// Admin commands carried out (`ok`).
    pub admin_commands: u64,
    /// Admin commands rejected for a missing or wrong token.
    pub admin_rejected: u64,
    /// Pub/sub messages ignored (not understood, oversized, invalid commands).
    pub messages_ignored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_counters_are_totals_of_the_metrics() {
        let m = Metrics::new();
        m.cycle_finished(CycleOutcome::Ok, Duration::from_millis(5));
        m.cycle_finished(CycleOutcome::Partial, Duration::from_millis(5));
        m.cycle_finished(CycleOutcome::Failed, Duration::from_millis(5));
        m.entries_written(9);
        m.fetch_failed("horde/stats_img_models".into(), FetchFailureKind::Timeout);
        m.fetch_failed("model_reference/text_generation".into(), FetchFailureKind::Parse);
        m.redis_connection_failure();
        m.redis_refusal(RefusalKind::OutOfMemory);
        m.redis_refusal(RefusalKind::NoPermission);
        m.redis_refusal(RefusalKind::NoPermission);
        m.pubsub_message(Channel::Invalidate, MessageOutcome::Ignored);
        m.pubsub_message(Channel::Admin, MessageOutcome::Oversized);
        m.admin_command("unknown", AdminOutcome::Invalid);
        m.admin_command("status", AdminOutcome::Ok);
        m.admin_command("clear", AdminOutcome::Unauthorized);
        m.invalidation(Category::TextGeneration);
        m.pubsub_resubscribed();
        let c = m.counters();
        assert_eq!((c.cycles, c.cycles_failed, c.entries_written), (3, 2, 9));
        assert_eq!((c.fetch_failures, c.redis_errors, c.redis_refusals), (2, 1, 3));
        assert_eq!((c.messages_ignored, c.admin_commands, c.admin_rejected), (3, 1, 1));
        assert_eq!((c.invalidations, c.pubsub_resubscribes), (1, 1));

        let text = m.encode().unwrap();
        assert!(text.contains("horde_hydrator_cycles_total{outcome=\"partial\"} 1"), "{text}");
        assert!(text.contains("horde_hydrator_redis_error_replies_total{kind=\"noperm\"} 2"), "{text}");
        assert!(text.contains("horde_hydrator_redis_error_replies_total{kind=\"readonly\"} 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
