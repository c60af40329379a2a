//! Replicas: three daemons on one Redis (interval 2 s, the default 10 s
//! lease). Exactly one writes the entries (seen with MONITOR: every entry
//! SETEX runs inside a fenced-store script, attributed to the client that
//! sent it); `kill -9` of the writer hands over within lease + interval + 2 s,
//! SIGTERM within interval + 2 s; `status` is answered by every replica; a
//! writer cut off by a proxy that blackholes its connections for 20 s is
//! fenced out and never writes again after it heals; a sampled `computed_at`
//! never goes backwards.

mod common;

use common::daemon::{wait_for_entries, wait_until, Daemon, Setup};
use common::horde_server::HordeServer;
use common::proxy::Proxy;
use common::redis_server::{Monitor, Monitored, RedisClient, RedisServer};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const INTERVAL: u64 = 2;
const LEASE: u64 = 10;
/// The entry whose `computed_at` is sampled.
const SAMPLED: &str = "stats:image_generation:grouped=false";

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn replica(horde: &HordeServer, redis: &RedisServer, name: &str) -> Daemon {
    replica_at(horde, &redis.url(), name)
}

fn replica_at(horde: &HordeServer, redis_url: &str, name: &str) -> Daemon {
    let mut setup = Setup::new(horde, Some(redis_url));
    setup.interval(INTERVAL);
    setup.set_str("leader", "instance_id", name);
    Daemon::start(&setup)
}

/// One fenced store that wrote entries: when (server time) and from which client.
#[derive(Debug, Clone, PartialEq)]
struct Write {
    at: f64,
    client: String,
}

/// Every store that wrote entry keys under `prefix`, in order. A SETEX run by
/// a script shows as client `lua` right after the EVAL of the client that
/// sent it; a refused script (lease lost, older cycle) writes nothing and is
/// not counted.
fn entry_writes(seen: &[Monitored], prefix: &str) -> Vec<Write> {
    let entry = |k: &str| {
        k.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(":deletion_risk:") || rest.starts_with(":stats:"))
    };
    let mut writes: Vec<Write> = Vec::new();
    let mut sender: Option<(usize, &Monitored)> = None;
    let mut counted: Option<usize> = None;
    for (i, m) in seen.iter().enumerate() {
        if m.client != "lua" {
            sender = Some((i, m));
            // Writes outside a script would be a bug: count them too, as their own client.
            if m.args.first().is_some_and(|c| c.starts_with("SET") || c == "DEL")
                && m.args.get(1).is_some_and(|k| entry(k))
            {
                writes.push(Write { at: m.at, client: m.client.clone() });
            }
            continue;
        }
        let is_write =
            m.args.first().is_some_and(|c| c.starts_with("SET")) && m.args.get(1).is_some_and(|k| entry(k));
        if let (true, Some((j, eval))) = (is_write, sender) {
            if counted != Some(j) {
                counted = Some(j);
                writes.push(Write { at: eval.at, client: eval.client.clone() });
            }
        }
    }
    writes
}

/// The clients in the order they took turns writing; a client that appears
/// twice means two writers alternated.
fn turns(writes: &[Write]) -> Vec<String> {
    let mut turns: Vec<String> = Vec::new();
    for w in writes {
        if turns.last() != Some(&w.client) {
            turns.push(w.client.clone());
        }
    }
    turns
}

fn assert_one_writer_at_a_time(writes: &[Write]) {
    let turns = turns(writes);
    let mut seen = std::collections::BTreeSet::new();
    for t in &turns {
        assert!(seen.insert(t), "writers alternated (a deposed writer wrote again): turns {turns:?}");
    }
}

/// The instance (`leader.instance_id`) that owns a client address, by its `CLIENT SETNAME`.
fn instance_of(redis: &mut RedisClient, addr: &str) -> String {
    wait_until(Duration::from_secs(10), &format!("a name for client {addr}"), || {
        let list = redis.client_list();
        let name = list.into_iter().find(|(a, _)| a == addr).map(|(_, n)| n)?;
        let rest = name.strip_prefix("horde-hydrator:")?;
        let (instance, _purpose) = rest.rsplit_once(':')?;
        Some(instance.to_string())
    })
}

/// Samples an entry's `computed_at` every 100 ms until stopped, and records
/// the name of every client it sees connected (a cut-off daemon's connections
/// are gone by the end).
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<i64>>>,
    names: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(redis: &RedisServer, key: String) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let names = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let (stop2, samples2, names2) = (stop.clone(), samples.clone(), names.clone());
        let mut client = redis.client();
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                for (addr, name) in client.client_list() {
                    if !name.is_empty() {
                        names2.lock().unwrap().insert(addr, name);
                    }
                }
                if let Some(v) = client.get_json(&key) {
                    if let Some(at) = v["computed_at"].as_i64() {
                        samples2.lock().unwrap().push(at);
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler { stop, samples, names, thread: Some(thread) }
    }

    /// The instance that owned a client address (by its `CLIENT SETNAME`).
    fn instance(&self, addr: &str) -> String {
        let names = self.names.lock().unwrap();
        names
            .get(addr)
            .and_then(|n| n.strip_prefix("horde-hydrator:"))
            .and_then(|n| n.rsplit_once(':'))
            .map_or_else(|| format!("client {addr}"), |(i, _)| i.to_string())
    }

    /// Stops and asserts the samples never decreased; returns how many there were.
    fn assert_never_backwards(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let samples = self.samples.lock().unwrap().clone();
        let backwards: Vec<(i64, i64)> =
            samples.windows(2).filter(|w| w[1] < w[0]).map(|w| (w[0], w[1])).collect();
        assert!(backwards.is_empty(), "computed_at went backwards {} times: {backwards:?}", backwards.len());
        samples.len()
    }
}

/// The JSON documents `admin` printed (one per replying replica).
fn replies(stdout: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(stdout).into_iter::<Value>().map(|v| v.unwrap()).collect()
}

/// Waits for a write by a client other than `old` after `since`; its delay from `since`.
fn failover(monitor: &Monitor, prefix: &str, old: &str, since: f64, what: &str) -> (Write, f64) {
    let w = wait_until(Duration::from_secs(40), what, || {
        entry_writes(&monitor.seen(), prefix).into_iter().find(|w| w.at > since && w.client != old)
    });
    let delay = w.at - since;
    (w, delay)
}

#[test]
fn three_replicas_one_writer_kill_and_sigterm_hand_over() {
    let Some(corpus) = common::conformance_dir() else { return };
    let horde = HordeServer::start(corpus.join("seed1"));
    let redis = RedisServer::start();
    let monitor = Monitor::start(&redis);
    let mut daemons: Vec<Daemon> =
        ["replica-a", "replica-b", "replica-c"].into_iter().map(|n| replica(&horde, &redis, n)).collect();
    let prefix = daemons[0].prefix.clone();
    wait_for_entries(&redis, &prefix, Duration::from_secs(60));
    let sampler = Sampler::start(&redis, format!("{prefix}:{SAMPLED}"));
    let mut looker = redis.client();

    // Every replica answers status; one leads, and every one sees it.
    let statuses = wait_until(Duration::from_secs(30), "three status replies agreeing on the leader", || {
        let out = daemons[0].cli(&["admin", "status"], Duration::from_secs(20));
        let r = replies(&out.stdout);
        let leaders: Vec<&Value> = r.iter().filter(|s| s["replica"]["role"] == "leader").collect();
        let agreed = r.len() == 3
            && leaders.len() == 1
            && r.iter().all(|s| s["replica"]["leader"] == leaders[0]["replica"]["instance_id"]);
        agreed.then_some(r)
    });
    let mut ids: Vec<&str> = statuses.iter().map(|s| s["replica"]["instance_id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["replica-a", "replica-b", "replica-c"]);
    assert_eq!(statuses.iter().filter(|s| s["replica"]["role"] == "follower").count(), 2, "{statuses:?}");
    // Every replica is ready: the leader by its entries, a follower because it
    // sees a live leader (it holds no entries of its own).
    for d in &daemons {
        let r = d.http_get("/readyz");
        assert_eq!(r.status, 200, "/readyz of {}: {}", id_of(d), r.text());
    }

    // hydrate is carried out by the leader, the only one to answer.
    let out = daemons[1].cli(&["admin", "hydrate"], Duration::from_secs(20));
    let r = replies(&out.stdout);
    assert_eq!(r.len(), 1, "hydrate answered by {} replicas: {}", r.len(), out.stdout);
    assert_eq!(r[0]["ok"], true, "{}", out.stdout);

    // 20 s of MONITOR: one writer.
    let start = unix_now();
    thread::sleep(Duration::from_secs(20));
    let writes: Vec<Write> = entry_writes(&monitor.seen(), &prefix)
        .into_iter()
        .filter(|w| w.at >= start && w.at < start + 20.0)
        .collect();
    let clients: std::collections::BTreeSet<&str> = writes.iter().map(|w| w.client.as_str()).collect();
    eprintln!("20 s of MONITOR: {} entry writes from clients {clients:?}", writes.len());
    assert!(writes.len() >= 10, "too few writes in 20 s at a 2 s interval: {writes:?}");
    assert_eq!(clients.len(), 1, "entry writes from several clients: {writes:?}");
    let writer = writes[0].client.clone();
    let writer_id = instance_of(&mut looker, &writer);
    let leader_id = statuses.iter().find(|s| s["replica"]["role"] == "leader").unwrap()["replica"]
        ["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(writer_id, leader_id, "the writer is not the replica that says it leads");

    // kill -9 of the writer: another writes within lease + interval + 2 s.
    let victim = daemons.iter().position(|d| id_of(d) == writer_id).unwrap();
    let killed_at = unix_now();
    daemons[victim].signal("KILL");
    // While the dead writer's lease runs out nobody leads: a hydrate gets no
    // reply, and the admin client says why and what to do.
    let survivor = &daemons[(victim + 1) % daemons.len()];
    let out = survivor.cli(&["admin", "hydrate", "--timeout", "1"], Duration::from_secs(20));
    assert!(!out.status.success(), "hydrate answered during the failover: {}", out.stdout);
    assert!(out.stderr.contains("none leads: send it again in a few seconds"), "{}", out.stderr);
    assert!(out.stderr.contains("2 daemon connection(s) received the command"), "{}", out.stderr);
    let (w, delay) = failover(&monitor, &prefix, &writer, killed_at, "another writer after kill -9");
    eprintln!("kill -9 of {writer_id}: {} writes {delay:.2} s later", instance_of(&mut looker, &w.client));
    assert!(
        delay <= (LEASE + INTERVAL + 2) as f64,
        "kill -9: the next writer came after {delay:.2} s (> lease + interval + 2 s)"
    );
    daemons.remove(victim);

    // SIGTERM of the new writer: another writes within interval + 2 s.
    let second = w.client.clone();
    let second_id = instance_of(&mut looker, &second);
    let victim = daemons.iter().position(|d| id_of(d) == second_id).unwrap();
    let termed_at = unix_now();
    daemons[victim].sigterm();
    let (w, delay) = failover(&monitor, &prefix, &second, termed_at, "another writer after SIGTERM");
    eprintln!("SIGTERM of {second_id}: {} writes {delay:.2} s later", instance_of(&mut looker, &w.client));
    assert!(
        delay <= (INTERVAL + 2) as f64,
        "SIGTERM: the next writer came after {delay:.2} s (> interval + 2 s)"
    );
    let status = daemons[victim].wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "SIGTERM: exit {status:?}");
    assert!(daemons[victim].log().contains("released the lease"), "{}", daemons[victim].log());

    thread::sleep(Duration::from_secs(3));
    assert_one_writer_at_a_time(&entry_writes(&monitor.seen(), &prefix));
    let n = sampler.assert_never_backwards();
    assert!(n > 100, "only {n} samples of computed_at");
}

/// The instance id a daemon was started with (from its config file).
fn id_of(d: &Daemon) -> String {
    let text = std::fs::read_to_string(&d.config).unwrap();
    let line = text.lines().find(|l| l.starts_with("instance_id")).unwrap();
    serde_json::from_str(line.split_once('=').unwrap().1.trim()).unwrap()
}

#[test]
fn a_writer_cut_off_for_20_s_is_fenced_out_and_one_writer_writes_at_a_time() {
    let Some(corpus) = common::conformance_dir() else { return };
    let horde = HordeServer::start(corpus.join("seed1"));
    let redis = RedisServer::start();
    let monitor = Monitor::start(&redis);
    let proxy = Proxy::start(redis.port());
    // replica-a, through the proxy, starts first: it leads.
    let a = replica_at(&horde, &proxy.redis_url(), "replica-a");
    let prefix = a.prefix.clone();
    let sampler = Sampler::start(&redis, format!("{prefix}:{SAMPLED}"));
    wait_for_entries(&redis, &prefix, Duration::from_secs(60));
    let mut looker = redis.client();
    let first = wait_until(Duration::from_secs(20), "a write by replica-a", || {
        entry_writes(&monitor.seen(), &prefix).into_iter().next()
    });
    assert_eq!(instance_of(&mut looker, &first.client), "replica-a");
    let _b = replica(&horde, &redis, "replica-b");
    let _c = replica(&horde, &redis, "replica-c");
    thread::sleep(Duration::from_secs(4));

    // The cut: every connection of replica-a, open or new, forwards nothing.
    let cut_at = unix_now();
    proxy.set_blackhole_new(true);
    proxy.blackhole_existing();
    let (w, delay) = failover(&monitor, &prefix, &first.client, cut_at, "another writer during the cut");
    let successor = instance_of(&mut looker, &w.client);
    let successor_at = w.at;
    eprintln!("replica-a cut off: {successor} writes {delay:.2} s later");
    assert_ne!(successor, "replica-a");
    let heal_at = cut_at + 20.0;
    thread::sleep(Duration::from_secs_f64((heal_at - unix_now()).max(0.0)));
    proxy.set_blackhole_new(false);

    // Healed: replica-a sees the new leader and follows; it never writes again.
    wait_until(Duration::from_secs(30), "replica-a to follow after the heal", || {
        let log = a.log();
        let after_cut = log.split("lost the lease").nth(1)?;
        (after_cut.contains("leads, this instance follows")
            || after_cut.contains(&format!("{successor} leads now")))
        .then_some(())
    });
    thread::sleep(Duration::from_secs(8));
    let writes: Vec<Write> = entry_writes(&monitor.seen(), &prefix)
        .into_iter()
        .map(|w| Write { at: w.at, client: sampler.instance(&w.client) })
        .collect();
    let turns = turns(&writes);
    eprintln!("writers in turn: {turns:?}");
    assert_eq!(turns.first().map(String::as_str), Some("replica-a"), "{turns:?}");
    let mut seen = std::collections::BTreeSet::new();
    for t in &turns {
        assert!(seen.insert(t), "writers alternated (a deposed writer wrote again): {turns:?}");
    }
    // (A write already forwarded when the cut came may land just after it,
    // while replica-a still held the lease; none after the successor's first.)
    let late: Vec<&Write> =
        writes.iter().filter(|w| w.at > successor_at && w.client == "replica-a").collect();
    assert!(late.is_empty(), "replica-a wrote after {successor} did: {late:?} (cut at {cut_at})");
    assert!(
        writes.iter().filter(|w| w.at > heal_at).count() >= 4,
        "too few writes after the heal: {writes:?}"
    );
    let log = a.log();
    assert_eq!(log.matches("lost the lease").count(), 1, "the loss is logged once:\n{log}");
    let n = sampler.assert_never_backwards();
    assert!(n > 100, "only {n} samples of computed_at");
}
