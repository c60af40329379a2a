//! Replicas: the leader lease's pure parts — the role state machine, its
//! timing decisions and the names it uses.
//!
//! Several daemons may run against one Redis; exactly one of them, the holder
//! of the lease `P:hydrator:leader` (a random token, `SET … NX PX lease`),
//! hydrates and writes. The shell (`actors/leader.rs`) does the Redis calls and
//! feeds their outcomes to [`Lease`], which decides the role and when to talk
//! to Redis next. Time is passed in, so everything here is tested without
//! waiting.
//!
//! The local view of the lease is conservative: a renewal counts from the
//! moment it was *sent* (the server's clock started the new lease no earlier
//! than that), and the holder stops acting as leader [`SAFETY_MARGIN`] before
//! the lease can have run out in Redis. Writes are fenced in Redis anyway
//! (`actors/fenced.rs`), so a slow clock or a pause can cost a write, never
//! let two leaders write.

use std::fmt;
use std::time::{Duration, Instant};

/// This daemon's part among the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease: hydrates and writes.
    Leader,
    /// Does not hold it: answers `status`, drops memory copies on
    /// invalidation, and tries to take the lease when it lapses.
    Follower,
    /// Redis has not answered a lease call for a whole lease: nobody can tell
    /// who leads. Hydrates into memory only (as a daemon does during an
    /// outage); writes nothing to Redis until it holds the lease.
    Detached,
    /// Replicas are off (`leader.enabled = false` or Redis disabled): hydrates
    /// and writes unconditionally, as a single daemon.
    Standalone,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Detached => "detached",
            Role::Standalone => "standalone",
        }
    }

    /// May this daemon run cycles (and answer hydrate, invalidate, clear)?
    /// Writing to Redis needs more: the lease (or no replicas at all).
    pub fn hydrates(self) -> bool {
        matches!(self, Role::Leader | Role::Standalone | Role::Detached)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The holder stops acting as leader this long before its lease can expire
/// in Redis (or a tenth of the lease, if that is less).
pub const SAFETY_MARGIN: Duration = Duration::from_millis(500);

/// The lease key: `P:hydrator:leader` (the reference never uses `P:hydrator:`).
pub fn lease_key(prefix: &str) -> String {
    format!("{prefix}:hydrator:leader")
}

/// The hash of the cycle start times of the entries in Redis (never backwards).
pub fn written_at_key(prefix: &str) -> String {
    format!("{prefix}:hydrator:written_at")
}

/// A lease token: `<instance id>/<64 random bits in hex>`; the instance part
/// tells the other replicas who leads, the random part makes it unique to this
/// run (a restarted daemon with the same instance id does not hold its old lease).
pub fn token(instance_id: &str, random: u64) -> String {
    format!("{instance_id}/{random:016x}")
}

/// The instance id inside a token (the whole value if it has no `/`).
pub fn token_instance(token: &str) -> &str {
    token.rsplit_once('/').map_or(token, |(instance, _)| instance)
}

/// `CLIENT SETNAME` value: `horde-hydrator:<instance>:<purpose>`. Redis
/// refuses spaces and newlines in a name; they are replaced by `_`.
pub fn connection_name(instance_id: &str, purpose: &str) -> String {
    format!("horde-hydrator:{instance_id}:{purpose}")
        .chars()
        .map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c })
        .collect()
}

/// What a Redis call about the lease returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseReply {
    /// `SET NX` set it, or the compare-and-pexpire extended it.
    Held,
    /// Somebody else holds it (SET NX refused, or our token is gone).
    Taken,
    /// No answer (timeout, connection lost, error reply).
    Unknown,
}

/// A change of role, to be logged once and told to the other actors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    BecameLeader,
    /// `reason` says why (for the one log line).
    LostLease {
        reason: LossReason,
    },
    /// Follower → detached: Redis stopped answering.
    Detached,
    /// Detached → follower: Redis answers, and another instance leads.
    Following,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// The renewal found another token (or none) in the lease key.
    TakenOver,
    /// Redis did not confirm a renewal before the lease could run out.
    Unconfirmed,
}

impl LossReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::TakenOver => "another instance holds it now",
            LossReason::Unconfirmed => "Redis did not confirm a renewal before it could expire",
        }
    }
}

/// The lease as this daemon sees it.
#[derive(Debug, Clone)]
pub struct Lease {
    lease: Duration,
    /// While leader: until when the lease surely holds in Redis.
    valid_until: Option<Instant>,
    /// The last answer from Redis (the start, before the first).
    last_answer: Instant,
    /// The role last reported (transitions are changes of it).
    reported: Role,
}

impl Lease {
    /// `now`: the start; a daemon that gets no answer for a lease from then is detached.
    pub fn new(lease: Duration, now: Instant) -> Self {
        Lease { lease, valid_until: None, last_answer: now, reported: Role::Follower }
    }

    pub fn role(&self, now: Instant) -> Role {
        match self.valid_until {
            Some(until) if now < until => Role::Leader,
            _ if now.saturating_duration_since(self.last_answer) >= self.lease => Role::Detached,
            _ => Role::Follower,
        }
    }

    /// How long before the lease's end the holder gives up.
    fn margin(&self) -> Duration {
        SAFETY_MARGIN.min(self.lease / 10)
    }

    /// The role at `now` compared with the one last reported.
    fn report(&mut self, now: Instant, reply: LeaseReply) -> Option<Transition> {
        let (was, is) = (self.reported, self.role(now));
        self.reported = is;
        match (was, is) {
            (a, b) if a == b => None,
            (_, Role::Leader) => Some(Transition::BecameLeader),
            (Role::Leader, _) => Some(Transition::LostLease {
                reason: if reply == LeaseReply::Taken {
                    LossReason::TakenOver
                } else {
                    LossReason::Unconfirmed
                },
            }),
            (_, Role::Detached) => Some(Transition::Detached),
            (_, _) => Some(Transition::Following),
        }
    }

    /// The outcome of an acquire (`SET NX`) or renewal sent at `sent_at`.
    pub fn on_reply(&mut self, reply: LeaseReply, sent_at: Instant, now: Instant) -> Option<Transition> {
        match reply {
            LeaseReply::Held => {
                let until = sent_at + self.lease.saturating_sub(self.margin());
                // A late answer to an old request never shortens a newer lease.
                self.valid_until = Some(self.valid_until.map_or(until, |u| u.max(until)));
                self.last_answer = now;
            }
            LeaseReply::Taken => {
                self.valid_until = None;
                self.last_answer = now;
            }
            LeaseReply::Unknown => {}
        }
        self.report(now, reply)
    }

    /// Time passed (no reply): the lease may have run out, or Redis been
    /// silent for a whole lease.
    pub fn on_tick(&mut self, now: Instant) -> Option<Transition> {
        if self.valid_until.is_some_and(|until| now >= until) {
            self.valid_until = None;
        }
        self.report(now, LeaseReply::Unknown)
    }

    /// Released on shutdown: no longer leader.
    pub fn release(&mut self) {
        self.valid_until = None;
        self.reported = Role::Follower;
    }

    /// How long to wait before the next lease call: a holder renews every
    /// third of the lease (sooner after an unanswered renewal, so that a
    /// short blip does not cost the lease); a follower tries to take it
    /// every `follower_poll` (see [`follower_poll`]).
    pub fn next_call_in(&self, now: Instant, last_reply: LeaseReply) -> Duration {
        match self.role(now) {
            Role::Leader if last_reply == LeaseReply::Unknown => {
                Duration::from_millis(500).min(self.lease / 3)
            }
            Role::Leader => self.lease / 3,
            _ if last_reply == LeaseReply::Unknown => Duration::from_millis(500),
            _ => follower_poll(self.lease),
        }
    }
}

/// How often a follower tries to take the lease: a twentieth of it, between
/// 100 ms and 500 ms (one `SET NX` per follower; 500 ms with the default 10 s).
pub fn follower_poll(lease: Duration) -> Duration {
    (lease / 20).clamp(Duration::from_millis(100), Duration::from_millis(500))
}

/// A new leader's first cycle: at once when the entries in Redis are older than
/// the interval (or their age is unknown), else when they become that old.
pub fn first_cycle_in(newest_written_ms: Option<u64>, now_ms: u64, interval: Duration) -> Duration {
    match newest_written_ms {
        None => Duration::ZERO,
        Some(at) => {
            let age = Duration::from_millis(now_ms.saturating_sub(at));
            interval.saturating_sub(age)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn acquire_renew_and_expire() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        assert_eq!(l.role(t0), Role::Follower);
        assert_eq!(l.on_reply(LeaseReply::Taken, t0, t0), None, "someone else leads");
        assert_eq!(l.on_reply(LeaseReply::Held, t0, t0), Some(Transition::BecameLeader));
        assert_eq!(l.role(t0 + S(9)), Role::Leader);
        // Valid until sent_at + lease - margin (0.5 s).
        assert_eq!(l.role(t0 + Duration::from_millis(9_499)), Role::Leader);
        assert_eq!(l.role(t0 + Duration::from_millis(9_500)), Role::Follower);
        // A renewal sent at 3 s extends from then.
        assert_eq!(l.on_reply(LeaseReply::Held, t0 + S(3), t0 + S(4)), None);
        assert_eq!(l.role(t0 + S(12)), Role::Leader);
        assert_eq!(l.on_tick(t0 + S(12)), None);
        assert_eq!(
            l.on_tick(t0 + S(13)),
            Some(Transition::LostLease { reason: LossReason::Unconfirmed }),
            "no renewal confirmed: lost before it can expire in Redis"
        );
        assert_eq!(l.on_tick(t0 + S(13)), None, "lost once");
        // The last answer came at 4 s: silent for a lease, detached at 14 s.
        assert_eq!(l.on_tick(t0 + S(14)), Some(Transition::Detached));
        assert_eq!(l.role(t0 + S(15)), Role::Detached);
        assert_eq!(l.on_reply(LeaseReply::Taken, t0 + S(15), t0 + S(15)), Some(Transition::Following));
    }

    #[test]
    fn no_answer_from_the_start_detaches_after_a_lease() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        assert_eq!(l.on_reply(LeaseReply::Unknown, t0, t0 + S(5)), None);
        assert_eq!(l.role(t0 + S(9)), Role::Follower, "not before a whole lease");
        assert_eq!(l.on_tick(t0 + S(10)), Some(Transition::Detached));
        assert!(Role::Detached.hydrates());
        assert_eq!(l.on_reply(LeaseReply::Held, t0 + S(11), t0 + S(11)), Some(Transition::BecameLeader));
    }

    #[test]
    fn unanswered_renewals_keep_the_lease_until_it_may_have_expired() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        l.on_reply(LeaseReply::Held, t0, t0);
        assert_eq!(l.on_reply(LeaseReply::Unknown, t0 + S(3), t0 + S(8)), None);
        assert_eq!(l.role(t0 + S(9)), Role::Leader);
        assert_eq!(
            l.on_reply(LeaseReply::Unknown, t0 + S(5), t0 + S(10)),
            Some(Transition::LostLease { reason: LossReason::Unconfirmed })
        );
    }

    #[test]
    fn a_late_answer_never_shortens_the_lease() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        l.on_reply(LeaseReply::Held, t0 + S(6), t0 + S(6));
        l.on_reply(LeaseReply::Held, t0 + S(3), t0 + S(7));
        assert_eq!(l.role(t0 + S(15)), Role::Leader);
    }

    #[test]
    fn taken_over_is_lost_at_once() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        l.on_reply(LeaseReply::Held, t0, t0);
        assert_eq!(
            l.on_reply(LeaseReply::Taken, t0 + S(3), t0 + S(3)),
            Some(Transition::LostLease { reason: LossReason::TakenOver })
        );
        assert_eq!(l.role(t0 + S(3)), Role::Follower);
    }

    #[test]
    fn call_timing() {
        let t0 = Instant::now();
        let mut l = Lease::new(S(10), t0);
        assert_eq!(l.next_call_in(t0, LeaseReply::Taken), Duration::from_millis(500));
        l.on_reply(LeaseReply::Held, t0, t0);
        assert_eq!(
            l.next_call_in(t0, LeaseReply::Held),
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
        assert_eq!(l.next_call_in(t0, LeaseReply::Unknown), Duration::from_millis(500));
        assert_eq!(follower_poll(S(3)), Duration::from_millis(150));
        assert_eq!(follower_poll(S(1)), Duration::from_millis(100));
        assert_eq!(follower_poll(S(600)), Duration::from_millis(500));
    }

    #[test]
    fn first_cycle_of_a_new_leader() {
        assert_eq!(first_cycle_in(None, 10_000, S(2)), Duration::ZERO, "unknown age: at once");
        assert_eq!(first_cycle_in(Some(5_000), 10_000, S(2)), Duration::ZERO, "older than the interval");
        assert_eq!(first_cycle_in(Some(9_500), 10_000, S(2)), Duration::from_millis(1500));
        assert_eq!(first_cycle_in(Some(11_000), 10_000, S(2)), S(2), "a clock behind: one interval");
    }

    #[test]
    fn names() {
        assert_eq!(lease_key("horde:model_ref"), "horde:model_ref:hydrator:leader");
        assert_eq!(written_at_key("P"), "P:hydrator:written_at");
        let t = token("host-a:42", 0xab);
        assert_eq!(t, "host-a:42/00000000000000ab");
        assert_eq!(token_instance(&t), "host-a:42");
        assert_eq!(token_instance("odd"), "odd");
        assert_eq!(connection_name("h 1:9", "cache"), "horde-hydrator:h_1:9:cache");
        assert!(Role::Standalone.hydrates() && Role::Leader.hydrates() && !Role::Follower.hydrates());
    }
}
