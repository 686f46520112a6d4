//! Quorum on top of totem, in the deterministic simulator: every node runs
//! the totem protocol and votequorum as hactld does (NodeInfos travel as
//! totem messages in agreed order; each regular configuration goes to the
//! quorum layer), on a network that loses, delays, duplicates and reorders
//! datagrams, while random partitions, heals, crashes and restarts happen.
//!
//! After every step of the simulation (every datagram and every timer):
//! - the quorum invariant: no two nodes that are running are quorate in
//!   disjoint memberships (except under two_node, where both halves of a
//!   split are quorate by design and fencing decides; and except a node
//!   that was cut off for less than the detection time, while it keeps
//!   quorum provisionally on what it knew until its next ring syncs — see
//!   `World::unaware`);
//! - every error the quorum layer reports is one that a changing membership
//!   explains (a NodeInfo of an earlier ring), never a contradiction.
//!
//! When the faults stop and every node is back: one ring, quorate, and every
//! member shows the same expected votes, total votes and quorum.
//!
//! Configurations vary per seed: 2–5 nodes, uneven votes, wait_for_all,
//! last_man_standing (with a short window), auto_tie_breaker (lowest,
//! highest, a list), two_node. Seeds: 300 by default, HACTL_LONG=1 runs
//! 10,000, HACTL_SEEDS=N runs N; a failing seed prints the command that replays it
//! (HACTL_SEED=N).

use std::path::Path;
use std::time::Duration;

use hactl::config::{Config, parse_str};
use hactl::quorum::{NodeInfo, Quorum, QuorumError, QuorumEvent};
use hactl::sim::{NetFaults, Rng, TotemSim, srp_config};
use hactl::time::Instant;
use hactl::totem::srp::{Srp, TotemEvent};
use hactl::totem::wire::NodeSet;

/// The first byte of a quorum message, as in hactld.
const SERVICE_QUORUM: u8 = 1;
/// last_man_standing_window in these runs.
const WINDOW_MS: u64 = 1_500;

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// A random valid configuration: (config, description, two_node).
fn random_config(rng: &mut Rng) -> (Config, String, bool) {
    let n = rng.range(2, 5) as usize;
    let mut votes = vec![1u32; n];
    if rng.chance(250_000) {
        votes[rng.range(0, n as u64 - 1) as usize] = 2;
    }
    let even_votes = votes.iter().all(|v| *v == 1);
    let mut choices: Vec<String> = vec![
        String::new(),
        "wait_for_all = true".into(),
        "wait_for_all = true\nauto_tie_breaker = true".into(),
        "wait_for_all = true\nauto_tie_breaker = true\nauto_tie_breaker_node = \"highest\"".into(),
        format!(
            "wait_for_all = true\nauto_tie_breaker = true\nauto_tie_breaker_node = [{}, 1]",
            n
        ),
    ];
    // last_man_standing counts nodes, so it wants one vote each.
    if even_votes {
        choices.push(format!(
            "wait_for_all = true\nlast_man_standing = true\nlast_man_standing_window = {WINDOW_MS}"
        ));
        choices.push(format!(
            "wait_for_all = true\nlast_man_standing = true\nlast_man_standing_window = {WINDOW_MS}\nauto_tie_breaker = true"
        ));
    }
    if n == 2 && even_votes {
        choices.push("two_node = true".into());
        choices.push("two_node = true\nwait_for_all = false".into());
    }
    let quorum = choices[rng.range(0, choices.len() as u64 - 1) as usize].clone();
    let two_node = quorum.contains("two_node");
    let mut t = format!("[cluster]\nname = \"qs\"\n\n[quorum]\n{quorum}\n");
    for (i, v) in votes.iter().enumerate() {
        let id = i + 1;
        t.push_str(&format!(
            "\n[[node]]\nname = \"n{id}\"\nid = {id}\naddresses = [\"10.0.0.{id}\"]\nvotes = {v}\n"
        ));
    }
    let config = match parse_str(&t, Path::new("quorum-sim.toml")) {
        Ok(loaded) => loaded.config,
        Err(diags) => {
            let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            panic!("generated configuration refused:\n{t}\n{}", all.join("\n"))
        }
    };
    let desc = format!(
        "{n} nodes, votes {votes:?}, [quorum] {}",
        if quorum.is_empty() {
            "defaults".to_string()
        } else {
            quorum.replace('\n', "; ")
        }
    );
    (config, desc, two_node)
}

/// One node's quorum layer and how far it has read its totem events.
struct Layer {
    quorum: Quorum,
    read: usize,
    restarts: usize,
    /// NodeInfos totem pushed back; sent again at the next step.
    pending: Vec<Vec<u8>>,
    /// The ring number of the last membership this process settled.
    last_settled: Option<u64>,
}

struct World {
    sim: TotemSim,
    layers: Vec<Layer>,
    config: Config,
    two_node: bool,
    seed: u64,
    desc: String,
    /// The faults so far, for the failure message.
    history: Vec<String>,
    incarnations: Vec<u64>,
    /// Every membership any node settled: (ring number, members).
    settled: Vec<(u64, NodeSet)>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let (config, desc, two_node) = random_config(&mut rng);
        let n = config.nodes.len();
        let loss = [0, 5_000, 20_000][rng.range(0, 2) as usize];
        let faults = NetFaults {
            loss_per_million: loss,
            duplicate_per_million: 20_000,
            delay_min: Duration::from_micros(50),
            delay_max: Duration::from_micros(rng.range(100, 3_000)),
        };
        let nodes = (1..=n as u32)
            .map(|id| Srp::new(id, srp_config(n), 1, Instant::ZERO))
            .collect();
        let mut sim = TotemSim::new(nodes, faults, seed);
        // A node may send the same NodeInfo bytes twice (in one ring, after
        // a retry): payloads are not unique here.
        sim.checker.unique_payloads = false;
        let layers = (1..=n as u32)
            .map(|id| Layer {
                quorum: Quorum::new(&config, id).expect("valid quorum configuration"),
                read: 0,
                restarts: 0,
                pending: Vec::new(),
                last_settled: None,
            })
            .collect();
        World {
            sim,
            layers,
            config,
            two_node,
            seed,
            desc,
            history: Vec::new(),
            incarnations: vec![1; n],
            settled: Vec::new(),
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: {what}\n  configuration: {}\n  faults: {}\n  nodes: {}",
            self.seed,
            self.desc,
            self.history.join(", "),
            self.describe()
        )
    }

    fn describe(&self) -> String {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let s = l.quorum.status();
                format!(
                    "n{}{}: ring {:?} members {:?} quorate {} expected {} total {}",
                    i + 1,
                    if self.sim.alive[i] { "" } else { " (down)" },
                    s.ring_id.map(|r| (r.rep, r.seq)),
                    s.members.iter().map(|m| m.node_id).collect::<Vec<_>>(),
                    s.quorate,
                    s.expected_votes,
                    s.total_votes
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Feeds every node's new totem events to its quorum layer, sends what
    /// the quorum layer asks for, and fires its timers.
    fn pump(&mut self) {
        let now = self.sim.now;
        for i in 0..self.layers.len() {
            if !self.sim.alive[i] {
                continue;
            }
            if self.sim.observed[i].restarts.len() > self.layers[i].restarts {
                // A new process: a new quorum layer, reading from the restart.
                let at = *self.sim.observed[i].restarts.last().expect("restarted");
                self.layers[i] = Layer {
                    quorum: Quorum::new(&self.config, i as u32 + 1).expect("valid"),
                    read: at,
                    restarts: self.sim.observed[i].restarts.len(),
                    pending: Vec::new(),
                    last_settled: None,
                };
            }
            loop {
                let events = &self.sim.observed[i].events;
                if self.layers[i].read >= events.len() {
                    break;
                }
                let e = events[self.layers[i].read].clone();
                self.layers[i].read += 1;
                let q = &mut self.layers[i].quorum;
                let result = match e {
                    TotemEvent::Regular { ring, members, .. } => {
                        let ids: Vec<u32> = members.iter().collect();
                        q.handle_membership(now, ring, &ids)
                    }
                    TotemEvent::Deliver {
                        sender, payload, ..
                    } if payload.first() == Some(&SERVICE_QUORUM) => {
                        match NodeInfo::from_bytes(&payload[1..]) {
                            Ok(info) => q.handle_node_info(now, sender, info),
                            Err(e) => self.fail(format!(
                                "node {} got a malformed NodeInfo from {sender}: {e}",
                                i + 1
                            )),
                        }
                    }
                    _ => Ok(()),
                };
                match result {
                    Ok(()) | Err(QuorumError::OtherRing { .. }) => {}
                    Err(e) => self.fail(format!("node {}: quorum error: {e}", i + 1)),
                }
                while let Some(info) = self.layers[i].quorum.poll_broadcast() {
                    let mut p = vec![SERVICE_QUORUM];
                    p.extend_from_slice(&info.to_bytes());
                    self.layers[i].pending.push(p);
                }
            }
            if self.layers[i]
                .quorum
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.layers[i].quorum.handle_timeout(now);
            }
            while let Some(e) = self.layers[i].quorum.poll_event() {
                if let QuorumEvent::Synced { ring, members, .. } = e {
                    let mut set = NodeSet::EMPTY;
                    members.iter().for_each(|m| set.insert(*m));
                    self.settled.push((ring.seq, set));
                    self.layers[i].last_settled = Some(ring.seq);
                }
            }
            let pending = std::mem::take(&mut self.layers[i].pending);
            for (k, p) in pending.iter().enumerate() {
                if !self.sim.broadcast(i, p.clone()) {
                    self.layers[i].pending = pending[k..].to_vec();
                    break;
                }
            }
        }
    }

    /// The quorum invariant over the nodes that are running.
    fn check(&self) {
        if self.two_node {
            return;
        }
        let quorate: Vec<(usize, NodeSet)> = self
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                self.sim.alive[*i] && l.quorum.is_quorate() && !self.unaware(*i as u32 + 1, l)
            })
            .map(|(i, l)| {
                let mut set = NodeSet::EMPTY;
                l.quorum
                    .status()
                    .members
                    .iter()
                    .for_each(|m| set.insert(m.node_id));
                (i, set)
            })
            .collect();
        for (a, sa) in &quorate {
            for (b, sb) in &quorate {
                if a < b && sa.iter().all(|id| !sb.contains(id)) {
                    self.fail(format!(
                        "split brain at {:?}: node {} is quorate in {:?} and node {} in {:?}",
                        self.sim.now,
                        a + 1,
                        sa.iter().collect::<Vec<_>>(),
                        b + 1,
                        sb.iter().collect::<Vec<_>>()
                    ));
                }
            }
        }
    }

    /// A node quorate on stale knowledge: cut off for less than totem's
    /// detection time, it never saw its ring break while the others settled
    /// a membership without it, and it keeps quorum provisionally in its
    /// next ring until the NodeInfos arrive. Like any node in the time totem
    /// takes to notice a failure, it cannot know better (fencing covers
    /// that window, not quorum); tests/quorum.rs checks the same case with
    /// `form_keeping`.
    fn unaware(&self, id: u32, layer: &Layer) -> bool {
        let s = layer.quorum.status();
        if !s.syncing {
            return false;
        }
        let Some(mine) = layer.last_settled else {
            return false;
        };
        self.settled
            .iter()
            .any(|(seq, members)| *seq > mine && !members.contains(id))
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let more = self.sim.step(until);
            self.pump();
            self.check();
            if !more {
                // Quorum timers may be due with nothing else happening.
                let next_q = (0..self.layers.len())
                    .filter(|i| self.sim.alive[*i])
                    .filter_map(|i| self.layers[i].quorum.poll_timeout())
                    .min();
                match next_q {
                    Some(t) if t <= until && t > self.sim.now => {
                        self.sim.now = t;
                        self.pump();
                        self.check();
                    }
                    _ => break,
                }
            }
        }
        self.sim.now = self.sim.now.max(until);
        self.pump();
        self.check();
    }
}

fn run(seed: u64) -> String {
    let mut w = World::new(seed);
    let n = w.layers.len();
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    w.run_until(ms(2_000));

    // Random faults for ten seconds of virtual time.
    let mut t = 2_000;
    let mut down: Vec<usize> = Vec::new();
    while t < 12_000 {
        t += rng.range(200, 2_500);
        w.run_until(ms(t));
        match rng.range(0, 5) {
            0 | 1 => {
                // A random partition into 2 or 3 groups.
                let k = rng.range(2, 3);
                let mut groups: Vec<Vec<usize>> = vec![Vec::new(); k as usize];
                for i in 0..n {
                    groups[rng.range(0, k - 1) as usize].push(i);
                }
                let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
                w.sim.partition(&refs);
                w.history.push(format!("{t} ms partition {groups:?}"));
            }
            2 => {
                w.sim.heal();
                w.history.push(format!("{t} ms heal"));
            }
            3 if down.len() + 1 < n => {
                let i = rng.range(0, n as u64 - 1) as usize;
                if !down.contains(&i) {
                    w.sim.crash(i);
                    down.push(i);
                    w.history.push(format!("{t} ms crash n{}", i + 1));
                }
            }
            _ => {
                if let Some(i) = down.pop() {
                    w.incarnations[i] += 1;
                    w.sim.restart_persisted(i, srp_config(n), w.incarnations[i]);
                    w.history.push(format!("{t} ms restart n{}", i + 1));
                }
            }
        }
    }

    // Everything back: every node up, the network whole.
    w.sim.heal();
    for i in down.drain(..) {
        w.incarnations[i] += 1;
        w.sim.restart_persisted(i, srp_config(n), w.incarnations[i]);
    }
    w.history.push(format!("{t} ms all back"));
    w.run_until(ms(t + 6_000));

    let first = w.layers[0].quorum.status();
    for (i, l) in w.layers.iter().enumerate() {
        let s = l.quorum.status();
        if s.members.len() != n || s.ring_id != first.ring_id {
            w.fail(format!(
                "node {} is not in one ring with all the others",
                i + 1
            ));
        }
        if !s.quorate {
            w.fail(format!(
                "node {} is not quorate with every node back",
                i + 1
            ));
        }
        if (s.expected_votes, s.total_votes, s.quorum)
            != (first.expected_votes, first.total_votes, first.quorum)
        {
            w.fail(format!(
                "node {} disagrees with node 1 on the votes: {:?} vs {:?}",
                i + 1,
                (s.expected_votes, s.total_votes, s.quorum),
                (first.expected_votes, first.total_votes, first.quorum)
            ));
        }
    }
    w.desc.clone()
}

#[test]
fn quorum_never_splits_and_every_member_agrees_once_faults_stop() {
    hactl::sim::run_seeds("quorum_sim", 300, 10_000, run);
}
