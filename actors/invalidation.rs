//! InvalidationActor: the pub/sub side of the daemon (SPEC §2 "Pub/sub").
//!
//! Owns the subscriber connection (on `P:invalidate` and `P:admin`) and a
//! publisher connection for admin replies. The subscriber runs in a loop:
//! connect, subscribe, forward every message to this actor, and when the
//! connection is lost, log it once with its cause, reconnect with backoff
//! capped at 5 s and subscribe again.
//!
//! * **Liveness.** A subscribed connection receives nothing when nobody
//!   publishes, so a silently dropped one (NAT or load-balancer idle drop:
//!   the socket stays open, nothing arrives) would look exactly like a quiet
//!   one. The loop therefore sends a PING on the subscriber itself every
//!   `redis.health_check_seconds` — RESP2 allows PING in subscribe mode and
//!   answers `["pong", ""]`; redis-rs 1.8's `PubSubSink::ping` sends it and
//!   matches the answer, while the split-off message stream keeps being read.
//!   No answer within `redis.socket_timeout_seconds`, an error or the end of
//!   the stream replaces the connection: a half-open subscriber is found
//!   within health check + timeout. (A PUBLISH to a private channel would
//!   prove the same, but needs a second connection and a channel of ours on
//!   the server; the PING needs neither.)
//! * **Level-triggered after a gap.** Messages published while the
//!   subscription was down are lost for good, so after every resubscription
//!   the hydrator re-hydrates every configured category, as one cycle. (Not
//!   after the first subscription: the start-up cycle covers that.)
//!
//! * `P:invalidate`, payload a bare category name (what the reference's Redis
//!   backend publishes): the cache drops the category's entries (memory and
//!   Redis, all variants), the fetcher drops its kept model reference, and
//!   the category is re-hydrated when the burst is over (a quiet period of
//!   `hydration.invalidation_debounce_ms`, at most 500 ms after its first
//!   message): a burst causes one re-hydration. Each invalidation first
//!   bumps the category's generation, so work a cycle began before it is
//!   dropped rather than stored.
//! * `admin clear` bumps every generation, cancels a pending (debounced) or
//!   queued re-hydration, and drops every entry.
//! * `P:admin`: JSON commands (`admin.rs`), answered on `reply_to`, which
//!   must be `P:admin:reply` or a channel under it (`P:admin:reply:…`);
//!   a command asking for any other channel is refused with a log line and
//!   not answered (a `reply_to` of `P:admin` would make the reply run as a
//!   command). A reply that fails on the publisher connection is retried
//!   once on a fresh connection (e.g. the first reply after a Redis restart).
//!
//! An invalidation burst is logged as one line per category when it ends
//! (the message count, whether Redis took the deletions), not per message.
//!
//! Garbage, oversized (> 64 KiB) and unknown messages are ignored and logged,
//! rate-limited (at most 5 lines per 10 s, then a count of the suppressed).

use crate::admin::{authorized, parse_admin, AdminCommand, Reply, ReplyBody, MAX_MESSAGE_BYTES};
use crate::cache::{self, CacheActor, RedisWrite};
use crate::horde_fetcher::{DropReference, HordeFetcherActor};
use crate::hydrator::{CancelQueued, HydrateAck, HydrateNow, HydratorActor, NoteInvalidated};
use crate::leader::RoleChanged;
use crate::metrics::{AdminOutcome, Channel, MessageOutcome, Metrics};
use crate::redis_link::{self, CommandLink, Failure};
use crate::status::StatusSources;
use actix::prelude::*;
use horde_hydrator::category::Category;
use horde_hydrator::keys::{admin_channel, admin_reply_channel, invalidate_channel};
use horde_hydrator::leader::{connection_name, Role};
use horde_hydrator::settings::Settings;
use std::collections::{BTreeMap, BTreeSet};
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

    /// Forget the burst (`clear`): the timer then fires with nothing to do.
    pub fn cancel(&mut self) {
        self.pending.clear();
        self.first = None;
        self.last = None;
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

pub use crate::redis_link::reconnect_delay;

/// Whether `channel` may receive admin replies: the default reply channel
/// or one under it.
pub fn reply_channel_allowed(channel: &str, default_reply: &str) -> bool {
    channel == default_reply
        || channel.strip_prefix(default_reply).is_some_and(|rest| rest.starts_with(':') && rest.len() > 1)
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

/// The subscriber's state changed.
#[derive(Message)]
#[rtype(result = "()")]
enum Subscribed {
    /// Subscribed to both channels; `again`: after a lost subscription.
    Up {
        again: bool,
    },
    Lost,
}

/// The pub/sub side's part of a settings reload (SIGHUP): the admin token
/// (`None`: commands need none) and the invalidation debounce, both applied
/// to the next message.
#[derive(Message, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub token: Option<horde_hydrator::settings::Secret>,
    pub debounce: Duration,
}

/// Is the subscription up? (for the status reply)
#[derive(Message)]
#[rtype(result = "bool")]
pub struct GetSubscribed;

/// Messages over the size limit, counted by the loop without copying them.
#[derive(Message)]
#[rtype(result = "()")]
struct Oversized {
    channel: String,
    len: usize,
}

// ---------------------------------------------------------------- the actor

pub struct InvalidationActor {
    /// Built once by `redis_client::client` (`None`: it could not be built,
    /// which already stopped start-up in the cache); the subscriber connects with it.
    client: Option<redis::Client>,
    redis_url_shown: String,
    socket_timeout: Duration,
    health_every: Duration,
    invalidate_channel: String,
    admin_channel: String,
    default_reply: String,
    token: Option<String>,
    configured: Vec<Category>,
    cache: Addr<CacheActor>,
    fetcher: Addr<HordeFetcherActor>,
    hydrator: Addr<HydratorActor>,
    metrics: Arc<Metrics>,
    status: StatusSources,
    publisher: Option<CommandLink>,
    debouncer: Debouncer,
    /// The current burst's messages per category, logged when it ends.
    burst: BTreeMap<Category, u64>,
    /// Categories of the current burst whose deletion did not reach Redis (warned once).
    burst_redis_failed: BTreeSet<Category>,
    limiter: LogLimiter,
    subscribed: bool,
    /// Replicas: only the leader carries out (and answers) hydrate, invalidate and clear.
    role: Role,
}

impl InvalidationActor {
    /// `status` names the actors it works with (the cache, fetcher, hydrator,
    /// leader and metrics) and answers `status`; its `invalidation` is this
    /// actor's own part, which it adds itself (`subscribed`).
    pub fn new(settings: &Settings, status: StatusSources) -> Self {
        let cache = status.cache.clone();
        let fetcher = status.fetcher.clone();
        let hydrator = status.hydrator.clone();
        let metrics = status.metrics.clone();
        let prefix = &settings.redis.key_prefix;
        let timeout = settings.redis.socket_timeout;
        let client = match crate::redis_client::client(&settings.redis) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("pubsub: {e}");
                None
            }
        };
        let publisher = client.clone().map(|c| {
            CommandLink::new(c, timeout).named(connection_name(&settings.leader.instance_id, "publisher"))
        });
        InvalidationActor {
            client,
            redis_url_shown: settings.redis.url.redacted(),
            socket_timeout: timeout,
            health_every: settings.redis.health_check,
            invalidate_channel: invalidate_channel(prefix),
            admin_channel: admin_channel(prefix),
            default_reply: admin_reply_channel(prefix),
            token: settings.admin.required_token().map(str::to_string),
            configured: settings.hydration.categories.clone(),
            cache,
            status: StatusSources { invalidation: None, ..status },
            fetcher,
            hydrator,
            metrics,
            publisher,
            debouncer: Debouncer::new(settings.hydration.invalidation_debounce, DEBOUNCE_MAX_WAIT),
            burst: BTreeMap::new(),
            burst_redis_failed: BTreeSet::new(),
            limiter: LogLimiter::new(Duration::from_secs(10), 5),
            subscribed: false,
            role: if settings.leader.active(&settings.redis) { Role::Follower } else { Role::Standalone },
        }
    }

    /// Log an ignored message, rate-limited (the caller counts it).
    fn ignored(&mut self, what: String) {
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
        self.metrics.invalidation(category);
        *self.burst.entry(category).or_default() += 1;
        let generation = self.metrics.generations.bump(category);
        self.hydrator.do_send(NoteInvalidated { category, generation });
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
                self.metrics.debounced_burst();
                for c in &categories {
                    let n = self.burst.remove(c).unwrap_or(0);
                    let redis = if self.burst_redis_failed.remove(c) {
                        " (memory only: Redis did not take the deletion)"
                    } else {
                        ""
                    };
                    log::info!(
                        "pubsub: invalidated {c} ({n} message{}){redis}; re-hydrating",
                        if n == 1 { "" } else { "s" }
                    );
                }
                self.hydrator.do_send(HydrateNow { categories, reason: "invalidation".to_string() });
            }
        }
    }

    /// Which of the subscribed channels `name` is.
    fn channel(&self, name: &str) -> Channel {
        if name == self.invalidate_channel {
            Channel::Invalidate
        } else if name == self.admin_channel {
            Channel::Admin
        } else {
            Channel::Other
        }
    }

    fn on_invalidate(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let parsed = parse_invalidation(payload);
        let outcome = if parsed.is_some() { MessageOutcome::Handled } else { MessageOutcome::Ignored };
        self.metrics.pubsub_message(Channel::Invalidate, outcome);
        match parsed {
            Some(category) => {
                let dropped = self.invalidate(category, ctx);
                ctx.spawn(dropped.into_actor(self).map(move |w, act, _ctx| {
                    if let RedisWrite::Failed(e) = w {
                        if act.burst_redis_failed.insert(category) {
                            log::warn!("pubsub: invalidation of {category} reached memory only: {e}");
                        }
                    }
                }));
            }
            None => {
                let shown: String = String::from_utf8_lossy(payload).chars().take(80).collect();
                self.ignored(format!("invalidation payload {shown:?}: not a category"));
            }
        }
    }

    fn on_admin(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let (envelope, command) = match parse_admin(payload) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.metrics.pubsub_message(Channel::Admin, MessageOutcome::Ignored);
                return self.ignored(format!("admin message: {e}"));
            }
        };
        self.metrics.pubsub_message(Channel::Admin, MessageOutcome::Handled);
        let sent_as = envelope.command.command;
        let label = command.as_ref().map_or("unknown", AdminCommand::name);
        let reply_to = envelope.reply_to.unwrap_or_else(|| self.default_reply.clone());
        if !reply_channel_allowed(&reply_to, &self.default_reply) {
            self.metrics.admin_command(label, AdminOutcome::Unauthorized);
            let shown: String = reply_to.chars().take(80).collect();
            log::warn!(
                "admin: refused {:?} command: reply_to {shown:?} is not {} or a channel under it; not answered",
                sent_as.as_deref().unwrap_or("?"),
                self.default_reply
            );
            return;
        }
        if !authorized(self.token.as_deref(), envelope.token.as_deref()) {
            self.metrics.admin_command(label, AdminOutcome::Unauthorized);
            log::warn!(
                "admin: rejected {:?} command: {} token",
                sent_as.as_deref().unwrap_or("?"),
                if envelope.token.is_some() { "wrong" } else { "missing" }
            );
            return self.reply(reply_to, Reply::error(sent_as, "unauthorized: missing or wrong token"), ctx);
        }
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                self.metrics.admin_command(label, AdminOutcome::Invalid);
                self.ignored(format!("admin command: {e}"));
                return self.reply(reply_to, Reply::error(sent_as, e.to_string()), ctx);
            }
        };
        self.metrics.admin_command(label, AdminOutcome::Ok);
        log::info!("admin: {} command", command.name());
        // A follower leaves commands that change entries to the leader, which
        // answers them; it drops its own memory copies all the same.
        let follower = !self.role.hydrates();
        match &command {
            AdminCommand::Hydrate { .. } if follower => {}
            AdminCommand::Invalidate { category } if follower => {
                let dropped = self.invalidate(*category, ctx);
                ctx.spawn(async move { drop(dropped.await) }.into_actor(self));
            }
            AdminCommand::Clear if follower => {
                self.cache.do_send(cache::Clear);
            }
            AdminCommand::Hydrate { categories } => {
                let categories =
                    if categories.is_empty() { self.configured.clone() } else { categories.clone() };
                let ack = self
                    .hydrator
                    .send(HydrateNow { categories: categories.clone(), reason: "admin hydrate".to_string() });
                let fut = async move {
                    match ack.await {
                        Ok(HydrateAck::Started) => {
                            Reply::ok(&command, ReplyBody::Hydrate { categories, queued: false })
                        }
                        Ok(HydrateAck::Queued) => {
                            Reply::ok(&command, ReplyBody::Hydrate { categories, queued: true })
                        }
                        Ok(HydrateAck::Refused) => Reply::failed(&command, "shutting down"),
                        Ok(HydrateAck::NotLeader) => {
                            Reply::failed(&command, "this replica just lost the lead; send it again")
                        }
                        Err(e) => Reply::failed(&command, e.to_string()),
                    }
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Invalidate { category } => {
                let category = *category;
                let dropped = self.invalidate(category, ctx);
                let fut = async move {
                    let redis = dropped.await;
                    Reply::ok(&command, ReplyBody::Invalidate { category, redis })
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Clear => {
                for category in Category::ALL {
                    let generation = self.metrics.generations.bump(category);
                    self.hydrator.do_send(NoteInvalidated { category, generation });
                }
                self.debouncer.cancel();
                for (c, n) in std::mem::take(&mut self.burst) {
                    log::info!(
                        "pubsub: invalidated {c} ({n} message(s)); its re-hydration is cancelled by clear"
                    );
                }
                self.burst_redis_failed.clear();
                self.hydrator.do_send(CancelQueued);
                let cleared = self.cache.send(cache::Clear);
                let fut = async move {
                    match cleared.await {
                        Ok(redis) => Reply::ok(&command, ReplyBody::Clear { redis }),
                        Err(e) => Reply::failed(&command, e.to_string()),
                    }
                };
                self.reply_when(reply_to, fut, ctx);
            }
            AdminCommand::Status => {
                let sources = self.status.clone();
                let subscribed = self.subscribed;
                let fut = async move {
                    match sources.gather().await {
                        Ok(mut status) => {
                            status.redis.subscribed = subscribed;
                            Reply::ok(&command, ReplyBody::Status(Box::new(status)))
                        }
                        Err(e) => Reply::failed(&command, e),
                    }
                };
                self.reply_when(reply_to, fut, ctx);
            }
        }
    }

    fn reply_when(
        &mut self,
        channel: String,
        reply: impl std::future::Future<Output = Reply> + 'static,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(reply.into_actor(self).map(move |value, act, ctx| act.reply(channel, value, ctx)));
    }

    /// Publish a reply: on the publisher connection, and when that fails at
    /// the connection level, once more on a fresh connection (which then
    /// becomes the publisher connection).
    fn reply(&mut self, channel: String, reply: Reply, ctx: &mut Context<Self>) {
        let Some(link) = self.publisher.as_ref() else { return };
        let existing = link.current();
        let fresh = link.fresh();
        let timeout = self.socket_timeout;
        let body = reply.to_json();
        let fut = async move {
            let publish = |mut conn: redis::aio::MultiplexedConnection| {
                let cmd = redis::cmd("PUBLISH").arg(&channel).arg(&body).clone();
                async move { redis_link::run(timeout, cmd.query_async::<i64>(&mut conn)).await.map(|_| ()) }
            };
            let mut first_failure = None;
            if let Some(c) = existing {
                match publish(c.conn).await {
                    Ok(()) => return (channel, None, None, Ok(())),
                    Err(Failure::Connection(e)) => first_failure = Some(e),
                    Err(refused) => return (channel, None, None, Err(refused)),
                }
            }
            match fresh.await {
                Ok(conn) => {
                    let res = publish(conn.clone()).await;
                    (channel, first_failure, Some(conn), res)
                }
                Err(e) => (channel, first_failure, None, Err(e)),
            }
        };
        ctx.spawn(fut.into_actor(self).map(|(channel, first_failure, conn, res), act, _ctx| {
            if let Some(link) = act.publisher.as_mut() {
                match conn {
                    Some(conn) => {
                        link.connected(conn);
                    }
                    None if first_failure.is_some() => link.forget(),
                    None => {}
                }
            }
            match (first_failure, res) {
                (None, Ok(())) => {}
                (Some(e), Ok(())) => log::info!(
                    "admin: reply on {channel} failed on the publisher connection ({e}); sent on a fresh connection"
                ),
                (Some(e), Err(again)) => {
                    log::warn!("admin: reply on {channel} lost: {e}; again on a fresh connection: {again}")
                }
                (None, Err(e)) => log::warn!("admin: reply on {channel} lost: {e}"),
            }
        }));
    }
}

impl Actor for InvalidationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(client) = self.client.clone() else { return };
        let link = SubscriberLink {
            client,
            shown: self.redis_url_shown.clone(),
            channels: [self.invalidate_channel.clone(), self.admin_channel.clone()],
            timeout: self.socket_timeout,
            health_every: self.health_every,
        };
        actix_rt::spawn(subscriber_loop(ctx.address(), link));
    }
}

/// What the subscriber loop needs to know.
struct SubscriberLink {
    client: redis::Client,
    /// The URL with its password masked, for logs.
    shown: String,
    channels: [String; 2],
    timeout: Duration,
    health_every: Duration,
}

impl SubscriberLink {
    /// A new connection subscribed to both channels, within the timeout.
    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let timeout = self.timeout;
        let mut pubsub = tokio::time::timeout(timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| format!("no connection within {} s", timeout.as_secs_f64()))?
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(timeout, pubsub.subscribe(&self.channels))
            .await
            .map_err(|_| format!("SUBSCRIBE: no answer within {} s", timeout.as_secs_f64()))?
            .map_err(|e| e.to_string())?;
        Ok(pubsub)
    }

    /// Forward messages until the subscription is lost; the cause.
    async fn listen(&self, pubsub: redis::aio::PubSub, addr: &Addr<InvalidationActor>) -> String {
        use futures_util::StreamExt;
        let (mut sink, mut stream) = pubsub.split();
        let mut next_ping = tokio::time::Instant::now() + self.health_every;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { return "connection closed".to_string() };
                    let channel = msg.get_channel_name().to_string();
                    let payload = msg.get_payload_bytes();
                    if payload.len() > MAX_MESSAGE_BYTES {
                        addr.do_send(Oversized { channel, len: payload.len() });
                    } else {
                        addr.do_send(Incoming { channel, payload: payload.to_vec() });
                    }
                }
                () = tokio::time::sleep_until(next_ping) => {
                    // Messages arriving meanwhile wait in the stream's queue.
                    match tokio::time::timeout(self.timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("PING failed: {e}"),
                        Err(_) => {
                            return format!("no answer to PING within {} s", self.timeout.as_secs_f64())
                        }
                    }
                    next_ping = tokio::time::Instant::now() + self.health_every;
                }
            }
            if !addr.connected() {
                return "shutting down".to_string();
            }
        }
    }
}

/// Connect, subscribe, forward, health-check; on loss, resubscribe with
/// capped backoff. Ends when the actor is gone.
async fn subscriber_loop(addr: Addr<InvalidationActor>, link: SubscriberLink) {
    let mut failures: u32 = 0;
    let mut lost_at: Option<Instant> = None;
    let mut ever = false;
    let [invalidate, admin] = &link.channels;
    loop {
        if !addr.connected() {
            return;
        }
        match link.subscribe().await {
            Ok(pubsub) => {
                failures = 0;
                match lost_at.take() {
                    Some(at) => log::info!(
                        "pubsub: resubscribed to {invalidate} and {admin} on {} after {:.1} s; re-hydrating every category (messages may have been lost)",
                        link.shown,
                        at.elapsed().as_secs_f64()
                    ),
                    None => log::info!("pubsub: subscribed to {invalidate} and {admin} on {}", link.shown),
                }
                addr.do_send(Subscribed::Up { again: ever });
                ever = true;
                let cause = link.listen(pubsub, &addr).await;
                addr.do_send(Subscribed::Lost);
                log::warn!("pubsub: subscription on {} lost ({cause}); resubscribing", link.shown);
                lost_at = Some(Instant::now());
            }
            Err(e) => {
                if failures == 0 && lost_at.is_none() {
                    log::warn!("pubsub: cannot subscribe on {} ({e}); retrying with backoff", link.shown);
                    lost_at = Some(Instant::now());
                } else {
                    log::debug!("pubsub: subscribing on {} failed: {e}", link.shown);
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
        match self.channel(&msg.channel) {
            Channel::Invalidate => self.on_invalidate(&msg.payload, ctx),
            Channel::Admin => self.on_admin(&msg.payload, ctx),
            Channel::Other => {
                self.metrics.pubsub_message(Channel::Other, MessageOutcome::Ignored);
                self.ignored(format!("message on unexpected channel {:?}", msg.channel));
            }
        }
    }
}

impl Handler<RoleChanged> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: RoleChanged, _ctx: &mut Self::Context) {
        self.role = msg.role;
    }
}

impl Handler<Oversized> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Oversized, _ctx: &mut Self::Context) {
        let channel = self.channel(&msg.channel);
        self.metrics.pubsub_message(channel, MessageOutcome::Oversized);
        self.ignored(format!("{} byte message on {} (limit {MAX_MESSAGE_BYTES})", msg.len, msg.channel));
    }
}

impl Handler<Reconfigure> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Self::Context) {
        self.token = msg.token.map(|t| t.expose().to_string());
        self.debouncer.set_quiet(msg.debounce);
    }
}

impl Handler<GetSubscribed> for InvalidationActor {
    type Result = bool;

    fn handle(&mut self, _msg: GetSubscribed, _ctx: &mut Self::Context) -> bool {
        self.subscribed
    }
}

impl Handler<Subscribed> for InvalidationActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribed, _ctx: &mut Self::Context) {
        match msg {
            Subscribed::Up { again } => {
                self.subscribed = true;
                if again {
                    self.metrics.pubsub_resubscribed();
                    // The publisher most likely shares the subscriber's fate
                    // (a restart, a dropped NAT mapping): start afresh.
                    if let Some(p) = self.publisher.as_mut() {
                        p.forget();
                    }
                    self.hydrator.do_send(HydrateNow {
                        categories: self.configured.clone(),
                        reason: "resubscribed: messages may have been lost".to_string(),
                    });
                }
            }
            Subscribed::Lost => self.subscribed = false,
        }
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
    fn replies_go_only_to_the_reply_channel_or_under_it() {
        let d = "P:admin:reply";
        assert!(reply_channel_allowed("P:admin:reply", d));
        assert!(reply_channel_allowed("P:admin:reply:0123abcd", d));
        assert!(
            !reply_channel_allowed("P:admin", d),
            "the command channel: the reply would run as a command"
        );
        assert!(!reply_channel_allowed("P:admin:replyX", d));
        assert!(!reply_channel_allowed("P:admin:reply:", d));
        assert!(!reply_channel_allowed("ops:private:replies", d));
        assert!(!reply_channel_allowed("P:invalidate", d));
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
