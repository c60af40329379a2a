//! InvalidationActor: the pub/sub side of the daemon (SPEC §2 "Pub/sub").
//!
//! Owns the subscriber connection (on `P:invalidate` and `P:admin`) and a
//! publisher connection for admin replies. The subscriber runs in a loop:
//! connect, subscribe, forward every message to this actor, and when the
//! connection drops, log it (once per outage), reconnect with backoff capped
//! at 5 s and subscribe again.
//!
//! * `P:invalidate`, payload a bare category name (what the reference's Redis
//!   backend publishes): the cache drops the category's entries (memory and
//!   Redis, all variants), the fetcher drops its kept model reference, and
//!   the category is re-hydrated when the burst is over (a quiet period of
//!   `hydration.invalidation_debounce_ms`, at most 500 ms after its first
//!   message): a burst causes one re-hydration.
//! * `P:admin`: JSON commands (`admin.rs`), answered on `reply_to`.
//!
//! Garbage, oversized (> 64 KiB) and unknown messages are ignored and logged,
//! rate-limited (at most 5 lines per 10 s, then a count of the suppressed).

use crate::admin::{authorized, parse_admin, AdminCommand, Envelope, MAX_MESSAGE_BYTES};
use crate::cache::{self, CacheActor, RedisWrite};
use crate::counters::Counters;
use crate::horde_fetcher::{DropReference, GetFetcherInfo, HordeFetcherActor};
use crate::hydrator::{GetHydratorInfo, HydrateAck, HydrateNow, HydratorActor};
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::keys::{admin_channel, admin_reply_channel, invalidate_channel};
use horde_hydrator::settings::Settings;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- pure helpers

/// Collects invalidated categories until the burst is over: the re-hydration
/// fires `quiet` after the last message of a burst, but never later than
/// `max_wait` after its first, so a steady trickle cannot postpone it forever.
#[derive(Debug)]
pub struct Debouncer {
    quiet: Duration,
    max_wait: Duration,
    pending: BTreeSet<Category>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What the caller does when the debounce timer fires.
#[derive(Debug, PartialEq, Eq)]
pub enum DebounceTick {
    /// The burst is over: re-hydrate these.
    Fire(Vec<Category>),
    /// More messages came: wait this much longer.
    Wait(Duration),
}

impl Debouncer {
    pub fn new(quiet: Duration, max_wait: Duration) -> Self {
        Debouncer { quiet, max_wait: max_wait.max(quiet), pending: BTreeSet::new(), first: None, last: None }
    }

    /// Note an invalidation; `Some(delay)` when it starts a burst and the
    /// caller must arm a timer.
    pub fn note(&mut self, category: Category, now: Instant) -> Option<Duration> {
        self.pending.insert(category);
        self.last = Some(now);
        if self.first.is_none() {
            self.first = Some(now);
            return Some(self.quiet);
        }
        None
    }

    /// A new quiet period (a settings reload); a burst in progress ends by the new one.
    pub fn set_quiet(&mut self, quiet: Duration) {
        self.quiet = quiet;
        self.max_wait = self.max_wait.max(quiet);
    }

    /// The timer fired at `now`.
    pub fn tick(&mut self, now: Instant) -> DebounceTick {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return DebounceTick::Fire(Vec::new());
        };
        let deadline = (last + self.quiet).min(first + self.max_wait);
        if now < deadline {
            return DebounceTick::Wait(deadline - now);
        }
        self.first = None;
        self.last = None;
        DebounceTick::Fire(std::mem::take(&mut self.pending).into_iter().collect())
    }
}

/// The longest an invalidation burst can delay its re-hydration.
pub const DEBOUNCE_MAX_WAIT: Duration = Duration::from_millis(500);

/// At most `max` log lines per `window`; the rest are counted and reported
/// with the next line allowed.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    max: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(window: Duration, max: u32) -> Self {
        LogLimiter { window, max, window_start: None, in_window: 0, suppressed: 0 }
    }

    /// `Some(n)`: log now, mentioning `n` lines suppressed since the last one.
    /// `None`: stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.window_start {
            Some(start) if now.duration_since(start) < self.window => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window < self.max {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The capped, doubling delay between reconnect attempts (100 ms … 5 s).
pub fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << failures.min(10))).min(Duration::from_secs(5))
}

/// A payload on `P:invalidate` → the category, if it is one.
pub fn parse_invalidation(payload: &[u8]) -> Option<Category> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------- messages

/// A pub/sub message from the subscriber loop.
#[derive(Message)]
#[rtype(result = "()")]
struct Incoming {
    channel: String,
    payload: Vec<u8>,
}

/// The subscriber connected (true) or lost its connection (false).
#[derive(Message)]
#[rtype(result = "()")]
struct Subscribed(bool);

/// The pub/sub side's part of a settings reload (SIGHUP): the admin token
/// (`None`: commands need none) and the invalidation debounce, both applied
/// to the next message.
#[derive(Message, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub token: Option<horde_hydrator::settings::Secret>,
    pub debounce: Duration,
}

/// Messages over the size limit, counted by the loop without copying them.
#[derive(Message)]
#[rtype(result = "()")]
struct Oversized {
    channel: String,
    len: usize,
}

// ---------------------------------------------------------------- the actor

pub struct InvalidationActor {
    /// Built once by `redis_client::client`; the subscriber loop connects with it.
    client: Option<redis::Client>,
    redis_url_shown: String,
    socket_timeout: Duration,
    invalidate_channel: String,
    admin_channel: String,
    default_reply: String,
    token: Option<String>,
    configured: Vec<Category>,
    cache: Addr<CacheActor>,
    fetcher: Addr<HordeFetcherActor>,
    hydrator: Addr<HydratorActor>,
    counters: Arc<Counters>,
    publisher: Option<redis::aio::ConnectionManager>,
    debouncer: Debouncer,
    limiter: LogLimiter,
    subscribed: bool,
    started: Instant,
}

impl InvalidationActor {
    pub fn new(
        settings: &Settings,
        cache: Addr<CacheActor>,
        fetcher: Addr<HordeFetcherActor>,
        hydrator: Addr<HydratorActor>,
        counters: Arc<Counters>,
    ) -> Self {
        let prefix = &settings.redis.key_prefix;
        let timeout = settings.redis.socket_timeout;
        let client = match crate::redis_client::client(&settings.redis) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("pubsub: {e}");
                None
            }
        };
        let publisher = client.clone().and_then(|client| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_max_delay(Duration::from_secs(5))
                .set_number_of_retries(2);
            redis::aio::ConnectionManager::new_lazy_with_config(client, config).ok()
        });
        InvalidationActor {
            client,
            redis_url_shown: settings.redis.url.redacted(),
            socket_timeout: timeout,
            invalidate_channel: invalidate_channel(prefix),
            admin_channel: admin_channel(prefix),
            default_reply: admin_reply_channel(prefix),
            token: settings.admin.required_token().map(str::to_string),
            configured: settings.hydration.categories.clone(),
            cache,
            fetcher,
            hydrator,
            counters,
            publisher,
            debouncer: Debouncer::new(settings.hydration.invalidation_debounce, DEBOUNCE_MAX_WAIT),
            limiter: LogLimiter::new(Duration::from_secs(10), 5),
            subscribed: false,
            started: Instant::now(),
        }
    }

    /// Log an ignored message, rate-limited.
    fn ignored(&mut self, what: String) {
        self.counters.inc(&self.counters.messages_ignored);
        if let Some(suppressed) = self.limiter.allow(Instant::now()) {
            if suppressed > 0 {
                log::warn!("pubsub: ignored {what} ({suppressed} similar messages not logged)");
            } else {
                log::warn!("pubsub: ignored {what}");
            }
        }
    }

    /// Drop the category everywhere now; re-hydrate it after the debounce.
    fn invalidate(&mut self, category: Category, ctx: &mut Context<Self>) -> ResponseFuture<RedisWrite> {
        self.counters.inc(&self.counters.invalidations);
        log::info!("pubsub: invalidating {category}");
        self.fetcher.do_send(DropReference(category));
        let dropped = self.cache.send(cache::Invalidate(category));
        if let Some(delay) = self.debouncer.note(category, Instant::now()) {
            ctx.run_later(delay, Self::debounce_tick);
        }
        Box::pin(async move { dropped.await.unwrap_or_else(|e| RedisWrite::Failed(e.to_string())) })
    }

    /// The debounce timer: re-hydrate, or wait for the rest of the burst.
    fn debounce_tick(&mut self, ctx: &mut Context<Self>) {
        match self.debouncer.tick(Instant::now()) {
            DebounceTick::Wait(delay) => {
                ctx.run_later(delay, Self::debounce_tick);
            }
            DebounceTick::Fire(categories) if categories.is_empty() => {}
            DebounceTick::Fire(categories) => {
                self.hydrator.do_send(HydrateNow { categories, reason: "invalidation".to_string() });
            }
        }
    }

    fn on_admin(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let (envelope, command) = match parse_admin(payload) {
            Ok(parsed) => parsed,
            Err(e) => return self.ignored(format!("admin message: {e}")),
        };
        let reply_to = envelope.reply_to.clone().unwrap_or_else(|| self.default_reply.clone());
        if !authorized(self.token.as_deref(), envelope.token.as_deref()) {
            self.counters.inc(&self.counters.admin_rejected);
            log::warn!(
                "admin: rejected {:?} command: {} token",
                envelope.command_name.as_deref().unwrap_or("?"),
                if envelope.token.is_some() { "wrong" } else { "missing" }
            );
            return self.reply(reply_to, error_reply(&envelope, "unauthorized: missing or wrong token"));
        }
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                self.ignored(format!("admin command: {e}"));
                return self.reply(reply_to, error_reply(&envelope, &e.to_string()));
            }
        };
        self.counters.inc(&self.counters.admin_commands);
        log::info!("admin: {} command", command.name());
        match command {
            AdminCommand::Hydrate(mut categories) => {
                if categories.is_empty() {
                    categories = self.configured.clone();
                }
                let names: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
                let names: Vec<String> = names.into_iter().map(str::to_string).collect();
                let ack = self.hydrator.send(HydrateNow { categories, reason: "admin hydrate".to_string() });
                let fut = async move {
                    match ack.await {
                        Ok(HydrateAck::Started) => {
                            json!({"ok": true, "command": "hydrate", "categories": names, "queued": false})
                        }
                        Ok(HydrateAck::Queued) => {
                            json!({"ok": true, "command": "hydrate", "categories": names, "queued": true})
                        }
                        Ok(HydrateAck::Refused) => {
                            json!({"ok": false, "command": "hydrate", "error": "shutting down"})
                        }
                        Err(e) => json!({"ok": false, "command": "hydrate", "error": e.to_string()}),
                    }
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Invalidate(category) => {
                let dropped = self.invalidate(category, ctx);
                let fut = async move {
                    let redis = redis_write_str(&dropped.await);
                    json!({"ok": true, "command": "invalidate", "category": category.as_str(), "redis": redis})
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Clear => {
                let cleared = self.cache.send(cache::Clear);
                let fut = async move {
                    match cleared.await {
                        Ok(w) => json!({"ok": true, "command": "clear", "redis": redis_write_str(&w)}),
                        Err(e) => json!({"ok": false, "command": "clear", "error": e.to_string()}),
                    }
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Status => {
                let fut = self.status(ctx);
                self.reply_when(reply_to, fut, ctx);
            }
        }
    }

    /// Gather the daemon's state from every actor.
    fn status(&mut self, _ctx: &mut Context<Self>) -> impl std::future::Future<Output = Value> + 'static {
        let hydrator = self.hydrator.send(GetHydratorInfo);
        let cache = self.cache.send(cache::Info);
        let fetcher = self.fetcher.send(GetFetcherInfo);
        let uptime = self.started.elapsed().as_secs_f64();
        let subscribed = self.subscribed;
        let url = self.redis_url_shown.clone();
        let counters = self.counters.clone();
        async move {
            let (h, c, f) = futures_util::future::join3(hydrator, cache, fetcher).await;
            let h = h.unwrap_or(Value::Null);
            let (redis_state, entries) = match c {
                Ok(info) => (
                    info.redis.as_str(),
                    info.entries
                        .iter()
                        .map(|e| {
                            json!({
                                "key": e.key,
                                "stored_at": e.stored_at_unix,
                                "age_seconds": e.age_seconds,
                                "ttl_seconds": e.ttl_seconds,
                                "freshness": e.freshness.as_str(),
                                "bytes": e.bytes,
                                "models": e.models,
                                "at_risk": e.at_risk,
                                "critical": e.critical,
                            })
                        })
                        .collect::<Vec<_>>(),
                ),
                Err(_) => ("unknown", Vec::new()),
            };
            let (horde, reference) = match f {
                Ok(i) => (i.horde_circuit.as_str(), i.model_reference_circuit.as_str()),
                Err(_) => ("unknown", "unknown"),
            };
            json!({
                "ok": true,
                "command": "status",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": uptime,
                "hydration": {
                    "enabled": h.get("enabled"),
                    "interval_seconds": h.get("interval_seconds"),
                    "categories": h.get("categories"),
                },
                "cycle_running": h.get("cycle_running"),
                "follow_up_queued": h.get("follow_up_queued"),
                "last_cycle": h.get("last_cycle"),
                "next_cycle": h.get("next_cycle"),
                "entries": entries,
                "redis": {"state": redis_state, "connected": redis_state == "up", "url": url, "subscribed": subscribed},
                "horde_circuit": horde,
                "model_reference_circuit": reference,
                "counters": counters.to_json(),
            })
        }
    }

    fn reply_when(
        &mut self,
        channel: String,
        reply: impl std::future::Future<Output = Value> + 'static,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(reply.into_actor(self).map(move |value, act, _ctx| act.reply(channel, value)));
    }

    fn reply(&mut self, channel: String, reply: Value) {
        let Some(conn) = self.publisher.clone() else { return };
        let timeout = self.socket_timeout;
        let body = reply.to_string();
        actix_rt::spawn(async move {
            let mut conn = conn;
            let sent = tokio::time::timeout(
                timeout,
                redis::cmd("PUBLISH").arg(&channel).arg(body).query_async::<i64>(&mut conn),
            )
            .await;
            match sent {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => log::warn!("admin: reply on {channel} failed: {e}"),
                Err(_) => log::warn!("admin: reply on {channel} timed out"),
            }
        });
    }
}

fn error_reply(envelope: &Envelope, error: &str) -> Value {
    json!({"ok": false, "command": envelope.command_name, "error": error})
}

fn redis_write_str(w: &RedisWrite) -> String {
    match w {
        RedisWrite::Written => "written".to_string(),
        RedisWrite::Disabled => "disabled".to_string(),
        RedisWrite::Failed(e) => format!("failed: {e}"),
    }
}

impl Actor for InvalidationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let addr = ctx.address();
        let Some(client) = self.client.clone() else { return };
        let shown = self.redis_url_shown.clone();
        let channels = [self.invalidate_channel.clone(), self.admin_channel.clone()];
        let timeout = self.socket_timeout;
        actix_rt::spawn(subscriber_loop(addr, client, shown, channels, timeout));
    }
}

/// Connect, subscribe, forward; on loss, reconnect with capped backoff. Ends
/// when the actor is gone.
async fn subscriber_loop(
    addr: Addr<InvalidationActor>,
    client: redis::Client,
    shown: String,
    channels: [String; 2],
    timeout: Duration,
) {
    use futures_util::StreamExt;
    let mut failures: u32 = 0;
    let mut warned = false;
    loop {
        if !addr.connected() {
            return;
        }
        let attempt = async {
            let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .map_err(|_| format!("no connection within {timeout:?}"))?
                .map_err(|e| e.to_string())?;
            for ch in &channels {
                tokio::time::timeout(timeout, pubsub.subscribe(ch))
                    .await
                    .map_err(|_| format!("SUBSCRIBE {ch}: no answer within {timeout:?}"))?
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(pubsub)
        };
        match attempt.await {
            Ok(pubsub) => {
                failures = 0;
                if warned {
                    log::info!(
                        "pubsub: reconnected to {shown}; subscribed to {} and {}",
                        channels[0],
                        channels[1]
                    );
                } else {
                    log::info!("pubsub: subscribed to {} and {} on {shown}", channels[0], channels[1]);
                }
                addr.do_send(Subscribed(true));
                let mut stream = pubsub.into_on_message();
                while let Some(msg) = stream.next().await {
                    let channel = msg.get_channel_name().to_string();
                    let payload = msg.get_payload_bytes();
                    if payload.len() > MAX_MESSAGE_BYTES {
                        addr.do_send(Oversized { channel, len: payload.len() });
                    } else {
                        addr.do_send(Incoming { channel, payload: payload.to_vec() });
                    }
                }
                addr.do_send(Subscribed(false));
                log::warn!("pubsub: connection to {shown} lost; reconnecting");
                warned = true;
            }
            Err(e) => {
                if !warned {
                    log::warn!("pubsub: cannot subscribe on {shown} ({e}); retrying with backoff");
                    warned = true;
                }
                failures = failures.saturating_add(1);
            }
        }
        actix_rt::time::sleep(reconnect_delay(failures)).await;
    }
}

impl Handler<Incoming> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Incoming, ctx: &mut Self::Context) {
        if msg.channel == self.invalidate_channel {
            match parse_invalidation(&msg.payload) {
                Some(category) => {
                    let dropped = self.invalidate(category, ctx);
                    ctx.spawn(
                        async move {
                            if let RedisWrite::Failed(e) = dropped.await {
                                log::warn!("pubsub: invalidation of {category} reached memory only: {e}");
                            }
                        }
                        .into_actor(self),
                    );
                }
                None => {
                    let shown: String = String::from_utf8_lossy(&msg.payload).chars().take(80).collect();
                    self.ignored(format!("invalidation payload {shown:?}: not a category"));
                }
            }
        } else if msg.channel == self.admin_channel {
            self.on_admin(&msg.payload, ctx);
        } else {
            self.ignored(format!("message on unexpected channel {:?}", msg.channel));
        }
    }
}

impl Handler<Oversized> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Oversized, _ctx: &mut Self::Context) {
        self.ignored(format!("{} byte message on {} (limit {MAX_MESSAGE_BYTES})", msg.len, msg.channel));
    }
}

impl Handler<Reconfigure> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Self::Context) {
        self.token = msg.token.map(|t| t.expose().to_string()).filter(|t| !t.is_empty());
        self.debouncer.set_quiet(msg.debounce);
    }
}

impl Handler<Subscribed> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribed, _ctx: &mut Self::Context) {
        self.subscribed = msg.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_arms_one_timer_and_fires_once_after_it() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(500));
        assert_eq!(d.note(Category::TextGeneration, t0), Some(ms(50)), "first of a burst arms");
        assert_eq!(d.note(Category::TextGeneration, t0 + ms(10)), None);
        assert_eq!(d.note(Category::ImageGeneration, t0 + ms(30)), None);
        assert_eq!(
            d.tick(t0 + ms(50)),
            DebounceTick::Wait(ms(30)),
            "quiet period runs from the last message"
        );
        assert_eq!(
            d.tick(t0 + ms(80)),
            DebounceTick::Fire(vec![Category::ImageGeneration, Category::TextGeneration])
        );
        assert_eq!(d.note(Category::TextGeneration, t0 + ms(100)), Some(ms(50)), "a new burst arms again");
    }

    #[test]
    fn a_trickle_cannot_postpone_the_rehydration_past_max_wait() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(500));
        d.note(Category::TextGeneration, t0);
        for i in 1..=20 {
            assert_eq!(d.note(Category::TextGeneration, t0 + ms(40 * i)), None);
        }
        assert_eq!(d.tick(t0 + ms(490)), DebounceTick::Wait(ms(10)));
        assert_eq!(d.tick(t0 + ms(500)), DebounceTick::Fire(vec![Category::TextGeneration]));
    }

    #[test]
    fn log_limiter_counts_what_it_suppresses() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10), 2);
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(11)), Some(2), "next window reports the suppressed");
        assert_eq!(l.allow(t0 + Duration::from_secs(11)), Some(0));
    }

    #[test]
    fn reconnect_backoff_is_capped_at_five_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1), Duration::from_millis(200));
        assert_eq!(reconnect_delay(5), Duration::from_millis(3200));
        assert_eq!(reconnect_delay(6), Duration::from_secs(5));
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn invalidation_payloads() {
        assert_eq!(parse_invalidation(b"image_generation"), Some(Category::ImageGeneration));
        assert_eq!(parse_invalidation(b"text_generation\n"), Some(Category::TextGeneration));
        assert_eq!(parse_invalidation(b"clip"), None);
        assert_eq!(parse_invalidation(b"\xff\xfe"), None);
        assert_eq!(parse_invalidation(b""), None);
    }
}
