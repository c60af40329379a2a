//! LeaderActor: the leader lease in Redis (replicas), and this daemon's role.
//!
//! Owns the lease `P:hydrator:leader` and its own Redis connection (named
//! `horde-hydrator:<instance>:leader`; replaced after any error or timeout, so
//! a half-open link cannot keep a stale view). A follower tries
//! `SET … NX PX lease` every `leader::follower_poll` (500 ms with the default 10 s
//! lease); the holder renews every third of the lease with a
//! compare-and-pexpire script and, on shutdown, deletes it with a
//! compare-and-delete ([`Release`]), so a clean stop hands over at once. The
//! decisions (role, timing, when a lease may have run out) are
//! `horde_hydrator::leader::Lease`'s; this actor does the calls and tells
//! every subscriber ([`RoleChanged`]) — the cache (its write fence), the
//! hydrator (whether to run cycles) and the pub/sub actor (whether to answer
//! commands that change entries). Becoming leader and losing the lease are
//! logged once each; a follower logs who leads when that changes.
//!
//! With replicas off (`leader.enabled = false`, or Redis disabled) the actor
//! is not started and every part acts as [`Role::Standalone`].

use crate::fenced::{self, FenceKeys, LeaseView, Writer};
use actix::prelude::*;
use horde_hydrator::leader::{connection_name, token, token_instance, Lease, LeaseReply, Role, Transition};
use horde_hydrator::settings::Settings;
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

/// The role changed (sent to every subscriber, and once at subscription).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RoleChanged {
    pub role: Role,
    /// The lease token while leader (the cache fences its writes with it).
    pub token: Option<String>,
    /// On becoming leader: the newest cycle start (Unix ms) of the entries in
    /// Redis, for the first cycle's timing.
    pub newest_written_ms: Option<u64>,
}

/// Subscribe to [`RoleChanged`]; the current role is sent at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<RoleChanged>);

/// What `status` shows about replicas.
#[derive(Debug, Clone)]
pub struct LeaderInfo {
    pub role: Role,
    pub instance_id: String,
    /// The instance holding the lease, as last seen in Redis.
    pub leader: Option<String>,
    pub lease_seconds: u64,
}

#[derive(Message)]
#[rtype(result = "LeaderInfo")]
pub struct GetLeaderInfo;

/// Stop: give the lease up (compare-and-delete) and make no more calls.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release;

pub struct LeaderActor {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    keys: FenceKeys,
    instance_id: String,
    token: String,
    lease_len: Duration,
    timeout: Duration,
    lease: Lease,
    last_reply: LeaseReply,
    in_flight: bool,
    stopping: bool,
    holder_seen: Option<String>,
    /// The first call's outcome has been logged (as leader or follower).
    announced: bool,
    subscribers: Vec<Recipient<RoleChanged>>,
}

impl LeaderActor {
    /// `None` when replicas are off (see the module doc).
    pub fn new(settings: &Settings) -> Result<Option<Self>, String> {
        if !settings.leader.active(&settings.redis) {
            return Ok(None);
        }
        let client = crate::redis_client::client(&settings.redis).map_err(|e| e.to_string())?;
        let instance_id = settings.leader.instance_id.clone();
        let lease_len = settings.leader.lease;
        Ok(Some(LeaderActor {
            client,
            conn: None,
            keys: FenceKeys::new(&settings.redis.key_prefix),
            token: token(&instance_id, rand::random()),
            instance_id,
            lease_len,
            // A lease call must not outlive the lease's third: a renewal that
            // waits longer is treated as unanswered and retried.
            timeout: settings.redis.socket_timeout.min(lease_len / 3),
            lease: Lease::new(lease_len, Instant::now()),
            last_reply: LeaseReply::Unknown,
            in_flight: false,
            stopping: false,
            holder_seen: None,
            announced: false,
            subscribers: Vec::new(),
        }))
    }

    fn role(&self) -> Role {
        self.lease.role(Instant::now())
    }

    fn role_message(&self, newest_written_ms: Option<u64>) -> RoleChanged {
        let role = self.role();
        RoleChanged { role, token: (role == Role::Leader).then(|| self.token.clone()), newest_written_ms }
    }

    fn notify(&self, newest_written_ms: Option<u64>) {
        let msg = self.role_message(newest_written_ms);
        for s in &self.subscribers {
            s.do_send(msg.clone());
        }
    }

    fn schedule(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, |act, ctx| act.call(ctx));
    }

    /// One lease call: acquire while follower, renew while leader.
    fn call(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.stopping {
            return;
        }
        self.in_flight = true;
        let leader = self.role() == Role::Leader;
        let (client, conn, keys, token) =
            (self.client.clone(), self.conn.take(), self.keys.clone(), self.token.clone());
        let (timeout, lease_len) = (self.timeout, self.lease_len);
        let name = connection_name(&self.instance_id, "leader");
        let sent_at = Instant::now();
        let fut = async move {
            let work = async {
                let mut conn = match conn {
                    Some(c) => c,
                    None => connect(client, name, timeout).await?,
                };
                let writer = Writer { keys: &keys, token: &token };
                let view = if leader {
                    fenced::renew(&mut conn, writer, lease_len).await
                } else {
                    fenced::acquire(&mut conn, writer, lease_len).await
                };
                view.map(|v| (v, conn)).map_err(|e| e.to_string())
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.in_flight = false;
            if act.stopping {
                // Shutting down: a lease this call took is given back at once.
                if let Ok((view, conn)) = res {
                    if view.held {
                        act.conn = Some(conn);
                        ctx.spawn(act.release_now().into_actor(act));
                    }
                }
                return;
            }
            let now = Instant::now();
            let (reply, newest) = match res {
                Ok((view, conn)) => {
                    act.conn = Some(conn);
                    act.note_holder(&view);
                    let reply = if view.held { LeaseReply::Held } else { LeaseReply::Taken };
                    (reply, view.newest_written_ms)
                }
                Err(e) => {
                    // A fresh connection next time: a timed-out one may be half-open.
                    log::debug!("leader: lease call failed: {e}");
                    (LeaseReply::Unknown, None)
                }
            };
            act.last_reply = reply;
            let transition = act.lease.on_reply(reply, sent_at, now);
            act.on_transition(transition, newest);
            if !act.announced && reply != LeaseReply::Unknown {
                act.announced = true;
                if act.role() == Role::Follower {
                    // Under systemd (Type=notify): a follower runs no cycle, it is up once it follows.
                    crate::sd_notify::ready_with("following the leader");
                    log::info!(
                        "leader: instance {} is a follower; {} leads (lease {})",
                        act.instance_id,
                        act.holder_seen.as_deref().map_or("nobody", token_instance),
                        act.keys.lease
                    );
                }
            }
            let delay = act.lease.next_call_in(now, reply);
            act.schedule(delay, ctx);
        }));
    }

    /// Log a change of the leader a follower sees.
    fn note_holder(&mut self, view: &LeaseView) {
        if view.holder == self.holder_seen {
            return;
        }
        self.holder_seen = view.holder.clone();
        // A detached daemon says who leads when it follows again (`Following`).
        let detached = self.lease.role(Instant::now()) == Role::Detached;
        if self.announced && !view.held && !detached {
            match &view.holder {
                Some(h) => log::info!("leader: {} leads now", token_instance(h)),
                None => log::info!("leader: the lease is free; trying to take it"),
            }
        }
    }

    fn on_transition(&mut self, transition: Option<Transition>, newest_written_ms: Option<u64>) {
        match transition {
            None => {}
            Some(Transition::Detached) => {
                log::warn!(
                    "leader: no answer from Redis for {} s: nobody can tell who leads; hydrating into memory only, writing nothing to Redis until this instance holds the lease",
                    self.lease_len.as_secs()
                );
                self.notify(None);
            }
            Some(Transition::Following) => {
                log::info!(
                    "leader: Redis answers again; {} leads, this instance follows",
                    self.holder_seen.as_deref().map_or("nobody", token_instance)
                );
                crate::sd_notify::ready_with("following the leader");
                self.notify(None);
            }
            Some(Transition::BecameLeader) => {
                self.announced = true;
                log::info!(
                    "leader: instance {} holds the lease {} ({} s, renewed every {} ms): hydrating",
                    self.instance_id,
                    self.keys.lease,
                    self.lease_len.as_secs(),
                    (self.lease_len / 3).as_millis()
                );
                self.notify(newest_written_ms);
            }
            Some(Transition::LostLease { reason }) => {
                log::warn!(
                    "leader: instance {} lost the lease ({}); now a follower: it writes nothing until it holds the lease again",
                    self.instance_id,
                    reason.as_str()
                );
                // A follower now (it may have lost the lease before its first cycle).
                crate::sd_notify::ready_with("following the leader");
                self.notify(None);
            }
        }
    }
}

impl LeaderActor {
    /// Compare-and-delete the lease (within a second), logging the outcome.
    fn release_now(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let (client, conn, keys, token) =
            (self.client.clone(), self.conn.take(), self.keys.clone(), self.token.clone());
        let timeout = self.timeout.min(Duration::from_secs(1));
        let name = connection_name(&self.instance_id, "leader");
        let instance = self.instance_id.clone();
        async move {
            let work = async {
                let mut conn = match conn {
                    Some(c) => c,
                    None => connect(client, name, timeout).await?,
                };
                fenced::release(&mut conn, Writer { keys: &keys, token: &token })
                    .await
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(Ok(true)) => {
                    log::info!("leader: instance {instance} released the lease; another replica takes over")
                }
                Ok(Ok(false)) => {
                    log::debug!("leader: instance {instance} did not hold the lease at shutdown")
                }
                Ok(Err(e)) => log::warn!("leader: could not release the lease ({e}); it expires by itself"),
                Err(_) => log::warn!("leader: releasing the lease got no answer; it expires by itself"),
            }
        }
    }
}

/// A new connection, named for `CLIENT LIST`.
async fn connect(
    client: redis::Client,
    name: String,
    timeout: Duration,
) -> Result<MultiplexedConnection, String> {
    crate::redis_link::open(client, timeout, Some(name)).await.map_err(|e| e.to_string())
}

impl Actor for LeaderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.call(ctx);
        // Notice a lease that may have run out even while a call hangs.
        ctx.run_interval(Duration::from_millis(100), |act, _ctx| {
            if act.stopping {
                return;
            }
            let t = act.lease.on_tick(Instant::now());
            act.on_transition(t, None);
        });
    }
}

impl Handler<Subscribe> for LeaderActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        msg.0.do_send(self.role_message(None));
        self.subscribers.push(msg.0);
    }
}

impl Handler<GetLeaderInfo> for LeaderActor {
    type Result = MessageResult<GetLeaderInfo>;

    fn handle(&mut self, _msg: GetLeaderInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(LeaderInfo {
            role: self.role(),
            instance_id: self.instance_id.clone(),
            leader: self.holder_seen.as_deref().map(|h| token_instance(h).to_string()),
            lease_seconds: self.lease_len.as_secs(),
        })
    }
}

impl Handler<Release> for LeaderActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Release, _ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let was_leader = self.role() == Role::Leader;
        self.lease.release();
        self.notify(None);
        // A call in flight may be a SET NX that takes the lease: release then too
        // (compare-and-delete: harmless when another instance holds it).
        if !was_leader && !self.in_flight {
            return Box::pin(fut::ready(()));
        }
        Box::pin(self.release_now().into_actor(self))
    }
}
