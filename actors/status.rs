//! The daemon's status: one typed [`StatusReply`], built from the parts each
//! actor supplies (hydrator: schedule and last cycle; cache: entries and
//! Redis; fetcher: circuits; invalidation: the subscription; metrics: the
//! counters). `admin status` (pub/sub) and `GET /status` (HTTP) both answer
//! with it, so they say the same thing; `GET /metrics` sets its state gauges
//! from it, and `GET /readyz` judges readiness from it.

use crate::cache::{self, CacheActor, EntryInfo, RedisState};
use crate::horde_fetcher::{FetcherInfo, GetFetcherInfo, HordeFetcherActor};
use crate::hydrator::{GetHydratorInfo, HydratorActor, HydratorStatus};
use crate::invalidation::{GetSubscribed, InvalidationActor};
use crate::leader::{GetLeaderInfo, LeaderActor};
use crate::metrics::{Counters, Metrics};
use actix::Addr;
use horde_hydrator::leader::Role;
use horde_hydrator::settings::Settings;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// The reply to `status`, after `"ok"` and `"command"` (README "Admin
/// commands" lists the fields).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReply {
    pub version: &'static str,
    pub uptime_seconds: f64,
    /// `hydration`, `cycle_running`, `follow_up_queued`, `last_cycle`, `next_cycle`.
    #[serde(flatten)]
    pub hydrator: HydratorStatus,
    pub entries: Vec<EntryInfo>,
    pub redis: RedisStatus,
    /// `horde_circuit`, `model_reference_circuit`.
    #[serde(flatten)]
    pub fetcher: FetcherInfo,
    pub counters: Counters,
    /// Replicas: this daemon's role and the lease holder, as the
    /// leader actor knows them (a standalone daemon is its own leader).
    pub replica: ReplicaStatus,
    /// The settings in effect (those of start-up, or of the last SIGHUP's
    /// reload), key by key as `check-config` prints them: the value (a TOML
    /// literal, secrets redacted) and where it came from.
    pub settings: Vec<SettingInEffect>,
}

/// One setting of the status reply's `settings`.
#[derive(Debug, Clone, Serialize)]
pub struct SettingInEffect {
    /// `section.key`, as in `config.toml`.
    pub key: String,
    /// As a TOML literal, secrets redacted.
    pub value: String,
    /// `default`, the file position, or the environment variable.
    pub source: String,
}

/// A replica's part of the status reply (`replica`).
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// `leader`, `follower` or `standalone`.
    pub role: &'static str,
    pub instance_id: String,
    /// The instance holding the lease, as last seen in Redis.
    pub leader: Option<String>,
    pub lease_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    pub state: RedisState,
    pub connected: bool,
    /// With any password replaced by `***`.
    pub url: String,
    /// Subscribed to `P:invalidate` and `P:admin` (false when Redis is disabled).
    pub subscribed: bool,
}

/// Where the status comes from: every actor's address, and what the process knows.
#[derive(Clone)]
pub struct StatusSources {
    pub cache: Addr<CacheActor>,
    pub hydrator: Addr<HydratorActor>,
    pub fetcher: Addr<HordeFetcherActor>,
    /// `None` when Redis is disabled.
    pub invalidation: Option<Addr<InvalidationActor>>,
    pub metrics: Arc<Metrics>,
    /// The settings in effect: `main.rs` sends the new ones after each reload.
    pub settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    /// When the daemon started.
    pub started: Instant,
    /// The replicas' lease holder (`None`: no lease, this daemon is standalone).
    pub leader: Option<Addr<LeaderActor>>,
}

impl StatusSources {
    /// The settings in effect now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }

    /// Ask every actor for its part (concurrently) and put the reply together.
    /// An error names the actor that did not answer (it has stopped).
    pub async fn gather(&self) -> Result<StatusReply, String> {
        let subscribed = async {
            match &self.invalidation {
                Some(addr) => addr.send(GetSubscribed).await.unwrap_or(false),
                None => false,
            }
        };
        let leader = async {
            match &self.leader {
                Some(addr) => Some(addr.send(GetLeaderInfo).await),
                None => None,
            }
        };
        let (h, c, f, subscribed, leader) = tokio::join!(
            self.hydrator.send(GetHydratorInfo),
            self.cache.send(cache::Info),
            self.fetcher.send(GetFetcherInfo),
            subscribed,
            leader
        );
        let settings = self.settings();
        let instance_id = settings.leader.instance_id.clone();
        let replica = match leader {
            Some(Ok(i)) => ReplicaStatus {
                role: i.role.as_str(),
                instance_id: i.instance_id,
                leader: i.leader,
                lease_seconds: Some(i.lease_seconds),
            },
            Some(Err(_)) => ReplicaStatus { role: "unknown", instance_id, leader: None, lease_seconds: None },
            None => ReplicaStatus {
                role: Role::Standalone.as_str(),
                leader: Some(instance_id.clone()),
                instance_id,
                lease_seconds: None,
            },
        };
        let hydrator = h.map_err(|e| format!("the hydrator did not answer: {e}"))?;
        let cache = c.map_err(|e| format!("the cache did not answer: {e}"))?;
        let fetcher = f.map_err(|e| format!("the fetcher did not answer: {e}"))?;
        let redis_url = settings.redis.url.redacted();
        Ok(StatusReply {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            hydrator,
            entries: cache.entries,
            redis: RedisStatus {
                state: cache.redis,
                connected: cache.redis == RedisState::Up,
                url: redis_url,
                subscribed,
            },
            fetcher,
            counters: self.metrics.counters(),
            replica,
            settings: settings
                .provenance
                .values
                .iter()
                .map(|(key, value, origin)| SettingInEffect {
                    key: key.clone(),
                    value: value.clone(),
                    source: origin.to_string(),
                })
                .collect(),
        })
    }
}
