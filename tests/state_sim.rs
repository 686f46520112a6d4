//! The replicated state on top of totem, in the deterministic simulator:
//! every node runs totem and the state service ([`Replica`]) as hactld
//! will; random commands come from random nodes (each stamped with its own,
//! slightly skewed wall clock) while the network loses, delays, duplicates
//! and reorders datagrams and random partitions, heals, crashes and
//! restarts happen. A restarted node starts from what it last persisted
//! (through the real file format, in memory).
//!
//! After every step: no state message is unreadable, no node reports a
//! membership mismatch (they all run the same configuration), and no
//! node's state breaks its invariants (asserted on every change).
//!
//! When the faults stop and every node is back: one ring, every sync round
//! complete, and every node holds the same state, byte for byte.
//!
//! Seeds: 100 by default, HACTL_LONG=1 runs 10,000; a failing seed prints
//! the command that replays it (HACTL_SEED=N).

use std::time::Duration;

use hactl::config::Role;
use hactl::sim::{NetFaults, Rng, TotemSim, run_seeds, srp_config};
use hactl::state::codec::encode_snapshot;
use hactl::state::membership::Summary;
use hactl::state::persist::{from_file_bytes, to_file_bytes};
use hactl::state::replica::{Replica, ReplicaEvent};
use hactl::state::{
    ClusterState, Command, FenceAction, FenceRecord, MigrateTarget, OpRecord, WallMs, config_digest,
};
use hactl::time::Instant;
use hactl::totem::srp::{Srp, TotemEvent};

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn random_command(rng: &mut Rng, n: u64, wall: u64, epoch: &mut u64) -> Command {
    let node = rng.range(1, n) as u32;
    let rsc = format!("r{}", rng.range(0, 4));
    match rng.range(0, 9) {
        0 => Command::SetStandby {
            node,
            standby: rng.chance(500_000),
        },
        1 => Command::Migrate {
            resource: rsc,
            target: MigrateTarget::To(node),
            expires: rng
                .chance(500_000)
                .then(|| WallMs(wall + rng.range(100, 3_000))),
        },
        2 => Command::Unmigrate { resource: rsc },
        3 => Command::FailCountAdd {
            resource: rsc,
            node,
            by: 1,
        },
        4 => Command::Cleanup {
            resource: rng.chance(500_000).then_some(rsc),
            node: rng.chance(500_000).then_some(node),
        },
        5 => Command::OpResult(OpRecord {
            resource: rsc,
            node,
            op: hactl::config::OpName::Monitor,
            interval_ms: 10_000,
            rc: rng.range(0, 7) as i32,
            at: WallMs(wall),
            exit_reason: String::new(),
        }),
        6 => Command::Fenced(FenceRecord {
            at: WallMs(wall),
            target: node,
            device: "dev".into(),
            action: FenceAction::Reboot,
            error: None,
            executor: rng.range(1, n) as u32,
        }),
        7 => Command::SetTargetRole {
            resource: rsc,
            role: [None, Some(Role::Stopped), Some(Role::Started)][rng.range(0, 2) as usize],
        },
        _ => {
            // Each node proposes the epoch after the highest it has seen;
            // concurrent proposals collide (one refused, or a merge
            // conflict across a partition). The text is large enough to
            // need several totem messages now and then.
            *epoch += 1;
            let text = format!(
                "configuration {} {}",
                *epoch,
                "x".repeat(rng.range(0, 20_000) as usize)
            );
            Command::Configure {
                epoch: *epoch,
                digest: config_digest(&text),
                text,
            }
        }
    }
}

struct Node {
    replica: Replica,
    read: usize,
    restarts: usize,
    /// The last persisted file.
    disk: Vec<u8>,
    /// Payloads totem pushed back.
    pending: Vec<Vec<u8>>,
    /// Milliseconds this node's wall clock is ahead.
    skew_ms: u64,
}

/// The configuration every node runs (only its membership part matters
/// here: each node announces it in every ring and checks the others').
fn membership(n: usize) -> Summary {
    let mut t = String::from("[cluster]\nname = \"state-sim\"\n");
    for id in 1..=n {
        t.push_str(&format!(
            "\n[[node]]\nname = \"n{id}\"\nid = {id}\naddresses = [\"10.0.0.{id}\"]\n"
        ));
    }
    let config = hactl::config::parse_str(&t, std::path::Path::new("state-sim.toml"))
        .unwrap_or_else(|d| panic!("generated configuration refused: {d:?}"))
        .config;
    Summary::of(&config)
}

struct World {
    sim: TotemSim,
    nodes: Vec<Node>,
    seed: u64,
    history: Vec<String>,
    incarnations: Vec<u64>,
    syncs: u64,
    applied: u64,
    refused: u64,
}

impl World {
    fn new(seed: u64, rng: &mut Rng) -> World {
        let n = rng.range(2, 4) as usize;
        let faults = NetFaults {
            loss_per_million: [0, 5_000, 20_000][rng.range(0, 2) as usize],
            duplicate_per_million: 20_000,
            delay_min: Duration::from_micros(50),
            delay_max: Duration::from_micros(rng.range(100, 3_000)),
        };
        let srps = (1..=n as u32)
            .map(|id| Srp::new(id, srp_config(n), 1, Instant::ZERO))
            .collect();
        let mut sim = TotemSim::new(srps, faults, seed);
        // The state service may send the same bytes twice (a command
        // resubmitted, a snapshot unchanged): payloads are not unique.
        sim.checker.unique_payloads = false;
        let nodes = (1..=n as u32)
            .map(|id| Node {
                replica: Replica::new(id, ClusterState::new(), Some(membership(n))),
                read: 0,
                restarts: 0,
                disk: to_file_bytes(&ClusterState::new()),
                pending: Vec::new(),
                skew_ms: rng.range(0, 50),
            })
            .collect();
        World {
            sim,
            nodes,
            seed,
            history: Vec::new(),
            incarnations: vec![1; n],
            syncs: 0,
            applied: 0,
            refused: 0,
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: {what}\n  faults: {}",
            self.seed,
            self.history.join(", ")
        )
    }

    fn wall(&self, i: usize) -> u64 {
        1_700_000_000_000 + self.sim.now.as_micros() / 1_000 + self.nodes[i].skew_ms
    }

    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.sim.alive[i] {
                continue;
            }
            if self.sim.observed[i].restarts.len() > self.nodes[i].restarts {
                // A new process: the state from disk.
                let at = *self.sim.observed[i].restarts.last().expect("restarted");
                let state = from_file_bytes(&self.nodes[i].disk)
                    .unwrap_or_else(|e| self.fail(format!("node {}: disk: {e}", i + 1)));
                let summary = membership(self.nodes.len());
                let node = &mut self.nodes[i];
                node.replica = Replica::new(i as u32 + 1, state, Some(summary));
                node.read = at;
                node.restarts = self.sim.observed[i].restarts.len();
                node.pending.clear();
            }
            while self.nodes[i].read < self.sim.observed[i].events.len() {
                let e = self.sim.observed[i].events[self.nodes[i].read].clone();
                self.nodes[i].read += 1;
                self.nodes[i].replica.handle_event(&e);
            }
            while let Some(ev) = self.nodes[i].replica.poll_event() {
                match ev {
                    ReplicaEvent::Malformed { sender, error } => self.fail(format!(
                        "node {} could not read a message from {sender}: {error}",
                        i + 1
                    )),
                    ReplicaEvent::MembershipMismatch { message, .. } => self.fail(message),
                    ReplicaEvent::Synced { .. } => self.syncs += 1,
                    ReplicaEvent::Applied { .. } => self.applied += 1,
                    ReplicaEvent::Refused { .. } => self.refused += 1,
                }
            }
            if self.nodes[i].replica.take_dirty() {
                self.nodes[i].disk = to_file_bytes(self.nodes[i].replica.state());
            }
            while let Some(p) = self.nodes[i].replica.poll_broadcast() {
                self.nodes[i].pending.push(p);
            }
            let pending = std::mem::take(&mut self.nodes[i].pending);
            for (k, p) in pending.iter().enumerate() {
                if !self.sim.broadcast(i, p.clone()) {
                    self.nodes[i].pending = pending[k..].to_vec();
                    break;
                }
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        while self.sim.step(until) {
            self.pump();
        }
        self.sim.now = self.sim.now.max(until);
        self.pump();
    }

    fn restart(&mut self, i: usize) {
        self.incarnations[i] += 1;
        let n = self.nodes.len();
        self.sim
            .restart_persisted(i, srp_config(n), self.incarnations[i]);
    }
}

fn run(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut w = World::new(seed, &mut rng);
    let n = w.nodes.len();
    w.run_until(ms(2_000));
    let mut t = 2_000;
    let mut down: Vec<usize> = Vec::new();
    while t < 12_000 {
        t += rng.range(50, 800);
        w.run_until(ms(t));
        // A few commands from random running nodes.
        for _ in 0..rng.range(0, 3) {
            let i = rng.range(0, n as u64 - 1) as usize;
            if !w.sim.alive[i] {
                continue;
            }
            let mut epoch = w.nodes[i].replica.state().config_epoch();
            let wall = w.wall(i);
            let cmd = random_command(&mut rng, n as u64, wall, &mut epoch);
            w.nodes[i].replica.submit(cmd, WallMs(wall));
        }
        w.pump();
        if !rng.chance(250_000) {
            continue;
        }
        match rng.range(0, 5) {
            0 | 1 => {
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
                    w.restart(i);
                    w.history.push(format!("{t} ms restart n{}", i + 1));
                }
            }
        }
    }
    w.sim.heal();
    for i in down.drain(..) {
        w.restart(i);
    }
    w.history.push(format!("{t} ms all back"));
    w.run_until(ms(t + 8_000));

    let ring = w.sim.nodes[0].ring();
    for (i, node) in w.nodes.iter().enumerate() {
        if w.sim.nodes[i].ring() != ring || ring.1.len() != n {
            w.fail(format!(
                "node {} is not in one ring with all the others: {:?} vs {:?}",
                i + 1,
                w.sim.nodes[i].ring(),
                ring
            ));
        }
        if node.replica.is_syncing() {
            let all: Vec<String> = (0..n)
                .map(|j| {
                    let events: Vec<String> = w.sim.observed[j]
                        .events
                        .iter()
                        .filter(|e| !matches!(e, TotemEvent::Deliver { .. }))
                        .map(|e| match e {
                            TotemEvent::Regular { ring, members, .. } => {
                                format!("R{}{members:?}", ring.seq)
                            }
                            TotemEvent::Transitional { members, .. } => format!("T{members:?}"),
                            TotemEvent::Deliver { .. } => unreachable!(),
                        })
                        .collect();
                    format!(
                        "\n  node {}: {:?}, restarts at {:?}: {}",
                        j + 1,
                        w.nodes[j].replica.sync_progress(),
                        w.sim.observed[j].restarts,
                        events.join(" ")
                    )
                })
                .collect();
            w.fail(format!(
                "node {} never completed the sync{}",
                i + 1,
                all.concat()
            ));
        }
    }
    let first = encode_snapshot(w.nodes[0].replica.state());
    for (i, node) in w.nodes.iter().enumerate().skip(1) {
        if encode_snapshot(node.replica.state()) != first {
            w.fail(format!(
                "node {} holds a different state from node 1:\n  node 1: {:?}\n  node {}: {:?}",
                i + 1,
                w.nodes[0].replica.state(),
                i + 1,
                node.replica.state()
            ));
        }
    }
    format!(
        "{n} nodes, {} faults, {} syncs, {} applied, {} refused",
        w.history.len(),
        w.syncs,
        w.applied,
        w.refused
    )
}

#[test]
fn states_converge_after_partitions_crashes_and_heals() {
    run_seeds("state_sim", 100, 10_000, run);
}
