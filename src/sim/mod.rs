//! The deterministic simulator: nodes, a virtual clock and a network that
//! drops, duplicates, delays and reorders — all from one seed, so a failing
//! seed replays exactly.
//!
//! [`TotemSim`] drives totem ([`crate::totem::srp`]): nodes crash, restart,
//! are partitioned and healed. [`cluster::ClusterSim`] runs whole nodes on
//! it (quorum, the replicated state, the controller, the executor's core and
//! simulated agents; docs/simulation-cluster.md).

pub mod check;
pub mod cluster;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::time::Instant;
use crate::totem::NodeId;
use crate::totem::srp::{Dest, Srp, SrpConfig, TotemEvent};
use crate::totem::wire::Message;
use crate::totem::wire::NodeSet;

/// A small, fast, deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Avoid the all-zero state; mix the seed so nearby seeds differ.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_million` / 1,000,000.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.next_u64() % 1_000_000 < u64::from(per_million)
    }
}

/// How the simulated network misbehaves.
#[derive(Clone, Debug)]
pub struct NetFaults {
    pub loss_per_million: u32,
    pub duplicate_per_million: u32,
    /// Each datagram takes a delay drawn uniformly from this range, so
    /// later datagrams can overtake earlier ones.
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl NetFaults {
    pub fn perfect() -> NetFaults {
        NetFaults {
            loss_per_million: 0,
            duplicate_per_million: 0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(100),
        }
    }
}

/// A datagram in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    /// Tie-breaker: send order, so equal times stay deterministic.
    id: u64,
    from: NodeId,
    to: NodeId,
    bytes: Vec<u8>,
}

/// What the simulation observed, per node: every event, in order.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub events: Vec<TotemEvent>,
    /// Positions in `events` where the node restarted (a new process).
    pub restarts: Vec<usize>,
}

impl Observed {
    /// The payloads delivered, in order.
    pub fn delivered(&self) -> Vec<&[u8]> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TotemEvent::Deliver { payload, .. } => Some(payload.as_slice()),
                _ => None,
            })
            .collect()
    }
}

/// N totem nodes on a simulated network; node ids are 1..=N, indexes 0..N.
pub struct TotemSim {
    pub now: Instant,
    pub nodes: Vec<Srp>,
    pub observed: Vec<Observed>,
    pub faults: NetFaults,
    pub rng: Rng,
    queue: BinaryHeap<Reverse<InFlight>>,
    next_id: u64,
    /// Datagrams sent and dropped (for reports).
    pub sent: u64,
    pub dropped: u64,
    /// Crashed nodes neither send nor receive.
    pub alive: Vec<bool>,
    /// `link[a][b]`: datagrams from index a reach index b.
    pub link: Vec<Vec<bool>>,
    /// Drops the datagrams it returns true for: (from, to, message).
    pub drop_if: Option<DropFilter>,
    /// Checks totem's safety invariants at every event; a violation panics
    /// at the step that caused it.
    pub checker: check::SafetyChecker,
    seed: u64,
    /// What each node has persisted of its highest ring sequence number
    /// (as hactld does before it sends anything that depends on it).
    pub ring_seq_persisted: Vec<u64>,
}

/// A targeted fault: which datagrams to lose.
pub type DropFilter = Box<dyn FnMut(NodeId, NodeId, &Message) -> bool>;

impl TotemSim {
    pub fn new(nodes: Vec<Srp>, faults: NetFaults, seed: u64) -> TotemSim {
        let n = nodes.len();
        let mut sim = TotemSim {
            now: Instant::ZERO,
            nodes,
            observed: vec![Observed::default(); n],
            faults,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            next_id: 0,
            sent: 0,
            dropped: 0,
            alive: vec![true; n],
            link: vec![vec![true; n]; n],
            drop_if: None,
            checker: check::SafetyChecker::new(n),
            seed,
            ring_seq_persisted: vec![0; n],
        };
        for i in 0..n {
            sim.flush(i);
        }
        sim
    }

    fn send(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        self.sent += 1;
        if self.rng.chance(self.faults.loss_per_million) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate_per_million) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let lo = self.faults.delay_min.as_micros() as u64;
            let hi = (self.faults.delay_max.as_micros() as u64).max(lo);
            let at = self.now + Duration::from_micros(self.rng.range(lo, hi));
            self.next_id += 1;
            self.queue.push(Reverse(InFlight {
                at,
                id: self.next_id,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Moves node `i`'s transmits onto the network and records its events.
    fn flush(&mut self, i: usize) {
        let me = i as NodeId + 1;
        // Persisted before anything leaves (the driver does the same).
        self.ring_seq_persisted[i] = self.ring_seq_persisted[i].max(self.nodes[i].ring_seq_seen());
        while let Some(t) = self.nodes[i].poll_transmit() {
            let bytes = t.message.encode();
            match t.dest {
                Dest::Node(to) => self.send(me, to, bytes),
                Dest::All => {
                    for to in 1..=self.nodes.len() as NodeId {
                        if to != me {
                            self.send(me, to, bytes.clone());
                        }
                    }
                }
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            // Safe delivery: a safe message delivered in the regular
            // configuration of its ring is held by every member still in
            // that ring.
            if let TotemEvent::Deliver {
                ring,
                seq,
                safe: true,
                ..
            } = &e
                && let Some((cur, members)) = self.checker.regular_ring(i)
                && cur == *ring
            {
                for j in members.iter() {
                    let j = j as usize - 1;
                    if self.nodes[j].holds(*ring, *seq) == Some(false) {
                        panic!(
                            "seed {}: at {:?}: safe delivery: node {} delivered safe message {seq} of {ring:?} in its regular configuration, but member {} does not have it",
                            self.seed,
                            self.now,
                            i + 1,
                            j + 1
                        );
                    }
                }
            }
            if let Err(violation) = self.checker.observe(i, &e) {
                panic!("seed {}: at {:?}: {violation}", self.seed, self.now);
            }
            self.observed[i].events.push(e);
        }
    }

    /// Crashes node index `i`: it stops; what is in flight to it is lost.
    pub fn crash(&mut self, i: usize) {
        self.alive[i] = false;
    }

    /// Crashes node index `i` and cuts its port at once: what it sent that
    /// is still in flight is lost too (the hardest case for recovery).
    pub fn crash_and_cut(&mut self, i: usize) {
        self.alive[i] = false;
        let from = i as NodeId + 1;
        let queue = std::mem::take(&mut self.queue);
        self.queue = queue
            .into_iter()
            .filter(|Reverse(d)| d.from != from)
            .collect();
    }

    /// Restarts node index `i` as a new hactld process: a new incarnation,
    /// and the highest ring sequence number it had persisted.
    pub fn restart_persisted(&mut self, i: usize, cfg: SrpConfig, incarnation: u64) {
        let srp = Srp::restart(
            i as NodeId + 1,
            cfg,
            incarnation,
            self.ring_seq_persisted[i],
            self.now,
        );
        self.restart(i, srp);
    }

    /// Restarts node index `i` as a new process (a new incarnation) built by
    /// the caller (e.g. one that lost its persisted state).
    pub fn restart(&mut self, i: usize, srp: Srp) {
        self.nodes[i] = srp;
        self.alive[i] = true;
        self.checker.restart(i);
        let at = self.observed[i].events.len();
        self.observed[i].restarts.push(at);
        self.flush(i);
    }

    /// Cuts the network into groups of node indexes (checked on arrival).
    pub fn partition(&mut self, groups: &[&[usize]]) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in 0..n {
                self.link[a][b] = groups.iter().any(|g| g.contains(&a) && g.contains(&b));
            }
        }
    }

    pub fn heal(&mut self) {
        self.link
            .iter_mut()
            .for_each(|row| row.iter_mut().for_each(|l| *l = true));
    }

    /// Node index `i` broadcasts `payload` now; false if it is down or
    /// pushes back.
    pub fn broadcast(&mut self, i: usize, payload: Vec<u8>) -> bool {
        if !self.alive[i] {
            return false;
        }
        let ok = self.nodes[i].broadcast(self.now, payload).is_ok();
        self.flush(i);
        ok
    }

    /// The same with safe delivery ([`Srp::broadcast_safe`]).
    pub fn broadcast_safe(&mut self, i: usize, payload: Vec<u8>) -> bool {
        if !self.alive[i] {
            return false;
        }
        let ok = self.nodes[i].broadcast_safe(self.now, payload).is_ok();
        self.flush(i);
        ok
    }

    /// Runs the next datagram or timer, whichever is first, if it is due
    /// by `until`; returns false when nothing is.
    pub fn step(&mut self, until: Instant) -> bool {
        let next_timer = (0..self.nodes.len())
            .filter(|i| self.alive[*i])
            .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
            .min();
        let next_packet = self.queue.peek().map(|Reverse(p)| p.at);
        match (next_timer, next_packet) {
            (Some((t, i)), p) if p.is_none_or(|p| t < p) => {
                if t > until {
                    return false;
                }
                self.now = self.now.max(t);
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
                true
            }
            (_, Some(p)) => {
                if p > until {
                    return false;
                }
                let Reverse(d) = self.queue.pop().expect("peeked");
                self.now = self.now.max(d.at);
                let (from, to) = (d.from as usize - 1, d.to as usize - 1);
                // A partition cuts what arrives while it lasts.
                if !self.alive[to] || !self.link[from][to] {
                    return true;
                }
                let msg =
                    Message::decode(&d.bytes).expect("the simulator only carries encoded messages");
                if let Some(drop_if) = self.drop_if.as_mut()
                    && drop_if(d.from, d.to, &msg)
                {
                    return true;
                }
                self.nodes[to].handle_message(self.now, msg);
                self.flush(to);
                true
            }
            _ => false,
        }
    }

    /// Runs everything due up to `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        while self.step(until) {}
        self.now = self.now.max(until);
    }
}

/// Runs a simulation test over many seeds, on every core, and reports
/// every failing seed with the command that replays it.
///
/// `run(seed)` panics on a failure (its message says what went wrong) and
/// otherwise returns a one-line summary. Seeds are 1..=`short`, or
/// 1..=`long` with `HACTL_LONG=1`, or 1..=N with `HACTL_SEEDS=N`;
/// `HACTL_SEED=N` runs seed N alone and prints its summary. `test` is the test binary's name, for the replay
/// command.
pub fn run_seeds(test: &str, short: u64, long: u64, run: impl Fn(u64) -> String + Sync) {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    let seeds: Vec<u64> = match std::env::var("HACTL_SEED") {
        Ok(s) => vec![s.parse().expect("HACTL_SEED is a number")],
        Err(_) => {
            let count = if let Ok(n) = std::env::var("HACTL_SEEDS") {
                n.parse().expect("HACTL_SEEDS is a number")
            } else if std::env::var_os("HACTL_LONG").is_some() {
                long
            } else {
                short
            };
            (1..=count).collect()
        }
    };
    // Failures are collected and reported together, each with the command
    // that replays it; the default hook would print every one with a
    // backtrace as it happens.
    let default_hook = std::panic::take_hook();
    if seeds.len() > 1 {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(seed) = seeds.get(k).copied() else {
                        break;
                    };
                    match catch_unwind(AssertUnwindSafe(|| run(seed))) {
                        Ok(summary) if seeds.len() == 1 => println!("seed {seed}: {summary}"),
                        Ok(_) => {}
                        Err(e) => {
                            let msg = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            failures.lock().expect("not poisoned").push((seed, msg));
                        }
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if seeds.len() >= 10_000 && d.is_multiple_of(10_000) {
                        eprintln!(
                            "{test}: {d} of {} seeds in {:.0} s",
                            seeds.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            });
        }
    });
    std::panic::set_hook(default_hook);
    let mut failures = failures.into_inner().expect("not poisoned");
    if !failures.is_empty() {
        failures.sort();
        let mut report = String::new();
        // The long mode runs longer scenarios: a replay needs it too.
        let long = if std::env::var_os("HACTL_LONG").is_some() {
            "HACTL_LONG=1 "
        } else {
            ""
        };
        for (seed, msg) in &failures {
            report.push_str(&format!(
                "{msg}\n  replay: {long}HACTL_SEED={seed} cargo nextest run --test {test} --no-capture\n"
            ));
        }
        panic!(
            "{} of {} seeds failed:\n{report}",
            failures.len(),
            seeds.len()
        );
    }
    println!(
        "{} seeds passed in {:.1} s on {workers} threads",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The protocol settings of nodes 1..=`n` with hactl's default timers, as
/// the parser fills them in for `n` nodes (token 250 ms, token_retransmit
/// 250 / 2.2 = 113 ms, hold 45 ms, consensus 100 ms, join 50 ms, merge
/// 200 ms), as the simulation tests use them.
pub fn srp_config(n: usize) -> SrpConfig {
    let mut nodes = NodeSet::EMPTY;
    (1..=n as u32).for_each(|id| nodes.insert(id));
    // hactl's default timers, as the parser fills them in.
    let timers = crate::config::parse_str(
        "[cluster]\nname = \"sim\"\n[[node]]\nname = \"n1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n",
        std::path::Path::new("sim.toml"),
    )
    .expect("the default configuration loads")
    .config
    .totem
    .timers;
    SrpConfig {
        token: Duration::from_millis(timers.effective_token_ms(n)),
        token_retransmit: Duration::from_millis(timers.token_retransmit_ms(n)),
        hold: Duration::from_millis(timers.effective_hold_ms(n)),
        seqno_unchanged_const: timers.seqno_unchanged_const,
        join: Duration::from_millis(timers.join_ms),
        consensus: Duration::from_millis(timers.consensus_ms),
        merge: Duration::from_millis(timers.merge_ms),
        max_messages: timers.max_messages,
        window_size: timers.window_size,
        nodes,
    }
}
