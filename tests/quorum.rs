//! votequorum rules, tested from the documentation (votequorum(5) as
//! summarised in ../shared/research/totem-votequorum.md §4), not from the
//! code: tables of membership sequences with the outcome a user would see
//! after each step, an exhaustive check of the quorum invariant over every
//! set partition of 2–5 nodes, and the NodeInfo byte format.
//!
//! The harness runs one `Quorum` per node. A step either forms new
//! memberships (each block of a partition becomes a ring; a node left out of
//! every block is down and boots afresh when it next appears) or lets time
//! pass. NodeInfos travel as bytes between the members of each ring: to all
//! of them, to none (the ring breaks before sync) or a prefix of the agreed
//! order to each (it breaks during sync). After every step the harness
//! checks that events match `is_quorate`, that the members of a ring that
//! received every NodeInfo agree and, except under two_node, that no two
//! rings are quorate.
//!
//! A failure prints the steps that led to it; QUORUM_TRACE=1 adds every
//! node's state after each step. QUORUM_WALKS=100000 soaks the random walks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use hactl::config::{Config, parse_str};
use hactl::quorum::{
    InquorateReason, NODE_INFO_BYTES, NodeInfo, NodeInfoError, QuorateRing, Quorum, QuorumError,
    QuorumEvent, QuorumFlag, QuorumStatus, UNSETTLED_RINGS_MAX,
};
use hactl::time::Instant;
use hactl::totem::NodeId;
use hactl::totem::wire::{NodeSet, RingId};

const WINDOW_MS: u64 = 10_000;

// ---------------------------------------------------------------- configuration

/// A cluster of nodes n1..nN with these votes and `[quorum]` lines.
fn config_votes(votes: &[u32], quorum: &str) -> Config {
    let mut t = format!("[cluster]\nname = \"q\"\n\n[quorum]\n{quorum}\n");
    for (i, v) in votes.iter().enumerate() {
        let id = i + 1;
        t.push_str(&format!(
            "\n[[node]]\nname = \"n{id}\"\nid = {id}\naddresses = [\"10.0.0.{id}\"]\n"
        ));
        if *v != 1 {
            t.push_str(&format!("votes = {v}\n"));
        }
    }
    match parse_str(&t, Path::new("quorum-test.toml")) {
        Ok(loaded) => loaded.config,
        Err(diags) => {
            let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            panic!("test configuration refused:\n{t}\n{}", all.join("\n"))
        }
    }
}

fn config(nodes: usize, quorum: &str) -> Config {
    config_votes(&vec![1; nodes], quorum)
}

// ---------------------------------------------------------------- the harness

#[derive(Clone)]
struct Member {
    q: Quorum,
    up: bool,
    /// The members of its current ring (empty while down).
    ring: Vec<NodeId>,
    /// Quorate as told by the events so far.
    quorate_by_events: bool,
    /// two_node: booted and not yet in a ring with its peer.
    alone_since_boot: bool,
    /// Cut off without noticing ([`Cluster::form_keeping`]) and not settled
    /// a ring since: it is quorate on what it knew, like any node in the
    /// time totem takes to notice a failure, and it may stay so
    /// provisionally in its next ring until the NodeInfos arrive.
    unaware: bool,
}

/// What the members of a new ring receive of each other's NodeInfos.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    All,
    /// The ring breaks before any NodeInfo is delivered.
    Nothing,
    /// The ring breaks during sync: each member has a (seeded) prefix.
    Prefixes(u64),
    /// The ring breaks during sync: the i-th member (by id) of each new ring
    /// has the first `counts[i]` NodeInfos.
    Counts(&'static [usize]),
}

/// A 64-bit linear congruential generator: every "random" choice in these
/// tests replays from its seed.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }

    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

#[derive(Clone, Copy)]
enum Order {
    Ascending,
    Descending,
}

#[derive(Clone)]
struct Cluster {
    config: Config,
    nodes: BTreeMap<NodeId, Member>,
    now: Instant,
    seq: u64,
    /// two_node: both halves of a split are quorate by design.
    two_node: bool,
    order: Order,
    /// The steps so far, for failure messages.
    history: Vec<String>,
}

impl Cluster {
    fn new(config: Config) -> Cluster {
        let two_node = config.quorum.two_node;
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            now: Instant::from_millis(1_000),
            seq: 0,
            two_node,
            order: Order::Ascending,
            history: Vec::new(),
            config,
        };
        for id in c.config.nodes.iter().map(|n| n.id).collect::<Vec<_>>() {
            let m = c.boot(id);
            c.nodes.insert(id, m);
        }
        c
    }

    fn boot(&self, id: NodeId) -> Member {
        Member {
            q: Quorum::new(&self.config, id).expect("valid configuration"),
            up: false,
            ring: Vec::new(),
            quorate_by_events: false,
            alone_since_boot: true,
            unaware: false,
        }
    }

    fn quorate(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, m)| m.up && m.q.is_quorate())
            .map(|(id, _)| *id)
            .collect()
    }

    fn status(&self, id: NodeId) -> QuorumStatus {
        self.nodes[&id].q.status()
    }

    /// New memberships: every block becomes a ring (unless it is exactly a
    /// settled ring that already exists); nodes in no block go down and boot
    /// afresh when they next appear. Every member receives every NodeInfo.
    fn form(&mut self, blocks: &[Vec<NodeId>]) {
        self.form_with(blocks, Delivery::All);
    }

    fn form_with(&mut self, blocks: &[Vec<NodeId>], delivery: Delivery) {
        self.form_keeping(blocks, delivery, &[]);
    }

    /// The same, but the nodes in `keep` (in no block) are neither down nor
    /// in a new ring: they were cut off for less than totem's detection
    /// time and still sit in their old ring, unaware that its other
    /// members moved on.
    fn form_keeping(&mut self, blocks: &[Vec<NodeId>], delivery: Delivery, keep: &[NodeId]) {
        let mut seen: BTreeSet<NodeId> = keep.iter().copied().collect();
        for id in keep {
            self.nodes.get_mut(id).unwrap().unaware = true;
        }
        for b in blocks {
            assert!(!b.is_empty());
            for id in b {
                assert!(seen.insert(*id), "node {id} in two blocks");
            }
        }
        self.now += Duration::from_millis(1);
        self.seq += 4;
        if keep.is_empty() {
            self.history.push(format!("form {blocks:?} ({delivery:?})"));
        } else {
            self.history
                .push(format!("form {blocks:?} ({delivery:?}), {keep:?} unaware"));
        }
        for (id, m) in self.nodes.clone() {
            if !seen.contains(&id) && m.up {
                // Crashed: it keeps no state.
                let fresh = self.boot(id);
                self.nodes.insert(id, fresh);
            }
        }
        let mut formed = Vec::new();
        for b in blocks {
            let mut members = b.clone();
            members.sort();
            // (A ring that breaks during sync is always a new membership.)
            let unchanged = matches!(delivery, Delivery::All)
                && members.iter().all(|id| {
                    let m = &self.nodes[id];
                    m.up && m.ring == members && !m.q.status().syncing
                });
            if unchanged {
                continue;
            }
            let ring = RingId {
                seq: self.seq,
                rep: members[0],
            };
            for id in &members {
                let m = self.nodes.get_mut(id).unwrap();
                m.up = true;
                m.ring = members.clone();
                if members.len() > 1 {
                    m.alone_since_boot = false;
                }
                m.q.handle_membership(self.now, ring, &members)
                    .expect("membership accepted");
            }
            formed.push((ring, members));
        }
        self.drain_events();
        self.trace();
        self.check_invariant("after the membership change");
        let mut rng = match delivery {
            Delivery::Prefixes(seed) => Lcg::new(seed),
            _ => Lcg::new(0),
        };
        for (ring, members) in formed {
            let mut infos = Vec::new();
            for id in &members {
                let m = self.nodes.get_mut(id).unwrap();
                let info = m.q.poll_broadcast().expect("a NodeInfo per membership");
                assert!(
                    m.q.poll_broadcast().is_none(),
                    "one NodeInfo per membership"
                );
                assert_eq!(info.ring, ring);
                infos.push((*id, info.to_bytes()));
            }
            if let Order::Descending = self.order {
                infos.reverse();
            }
            // Totem delivers in agreed order; when a ring breaks during
            // sync, each member has delivered a prefix of that order.
            let received: Vec<usize> = members
                .iter()
                .enumerate()
                .map(|(i, _)| match delivery {
                    Delivery::All => infos.len(),
                    Delivery::Nothing => 0,
                    Delivery::Prefixes(_) => rng.below(infos.len() + 1),
                    Delivery::Counts(counts) => counts[i].min(infos.len()),
                })
                .collect();
            for (k, (from, bytes)) in infos.iter().enumerate() {
                let info = NodeInfo::from_bytes(bytes).expect("our own encoding decodes");
                for (to, count) in members.iter().zip(&received) {
                    if k < *count {
                        let m = self.nodes.get_mut(to).unwrap();
                        m.q.handle_node_info(self.now, *from, info.clone())
                            .expect("NodeInfo accepted");
                    }
                }
            }
            for id in &members {
                let m = self.nodes.get_mut(id).unwrap();
                if !m.q.status().syncing {
                    m.unaware = false;
                }
            }
            self.drain_events();
            self.trace();
            self.check_agreement(&members);
            self.check_invariant("after NodeInfos were delivered");
        }
    }

    /// Time passes; timers that run out fire.
    fn elapse(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.history.push(format!("elapse {ms} ms"));
        let now = self.now;
        for m in self.nodes.values_mut().filter(|m| m.up) {
            while let Some(t) = m.q.poll_timeout() {
                if t > now {
                    break;
                }
                m.q.handle_timeout(now);
            }
        }
        self.drain_events();
        self.trace();
        for m in self.nodes.values().filter(|m| m.up) {
            let members = m.ring.clone();
            self.check_agreement(&members);
        }
        self.check_invariant("after time passed");
    }

    /// Events tell the same story as `is_quorate`.
    fn drain_events(&mut self) {
        for (id, m) in self.nodes.iter_mut() {
            while let Some(e) = m.q.poll_event() {
                match e {
                    QuorumEvent::Gained { .. } => {
                        assert!(!m.quorate_by_events, "node {id}: gained twice");
                        m.quorate_by_events = true;
                    }
                    QuorumEvent::Lost { .. } => {
                        assert!(m.quorate_by_events, "node {id}: lost twice");
                        m.quorate_by_events = false;
                    }
                    QuorumEvent::Synced {
                        members, quorate, ..
                    } => {
                        assert_eq!(members, m.ring, "node {id}: synced members");
                        assert_eq!(quorate, m.quorate_by_events, "node {id}: synced outcome");
                    }
                    QuorumEvent::ExpectedVotesLowered { .. } => {
                        assert!(m.quorate_by_events, "node {id}: lowered while inquorate");
                    }
                }
            }
            if m.up {
                assert_eq!(m.quorate_by_events, m.q.is_quorate(), "node {id}: events");
            }
        }
    }

    /// With QUORUM_TRACE set, every node's state goes into the history.
    fn trace(&mut self) {
        if std::env::var_os("QUORUM_TRACE").is_none() {
            return;
        }
        for (id, m) in &self.nodes {
            if !m.up {
                continue;
            }
            let s = m.q.status();
            self.history.push(format!(
                "    node {id}: ring {:?} quorate {} expected {} quorum {}{}",
                m.ring,
                s.quorate,
                s.expected_votes,
                s.quorum,
                if s.syncing { " (syncing)" } else { "" }
            ));
        }
    }

    /// Members of a ring that received every NodeInfo compute the same
    /// outcome.
    fn check_agreement(&self, members: &[NodeId]) {
        let views: Vec<(NodeId, _)> = members
            .iter()
            .map(|id| (*id, self.status(*id)))
            .filter(|(_, s)| !s.syncing)
            .map(|(id, s)| {
                (
                    id,
                    (
                        s.ring_id,
                        s.quorate,
                        s.expected_votes,
                        s.quorum,
                        s.total_votes,
                    ),
                )
            })
            .collect();
        // (A node unaware that its ring broke still lists the old members.)
        for (id, view) in &views {
            let Some(first) = views.iter().find(|(_, v)| v.0 == view.0) else {
                continue;
            };
            assert_eq!(
                *view,
                first.1,
                "members {members:?} disagree (node {id} vs node {}); steps:\n{}",
                first.0,
                self.history.join("\n")
            );
        }
    }

    /// No two disjoint partitions are quorate (two_node excepted); under
    /// two_node with wait_for_all, a node that booted is not quorate before
    /// it has been with its peer.
    fn check_invariant(&self, when: &str) {
        let quorate = self.quorate();
        if self.two_node {
            if self.config.quorum.wait_for_all {
                for id in &quorate {
                    assert!(
                        !self.nodes[id].alone_since_boot,
                        "{when}: two_node node {id} quorate alone after a restart; steps:\n{}",
                        self.history.join("\n")
                    );
                }
            }
            return;
        }
        // A node unaware that its ring broke still sees its old ring, which
        // overlaps the new ones: only disjoint rings are a split brain.
        // A node that was cut off without noticing is quorate on stale
        // knowledge until it settles a ring (no protocol without leases
        // avoids that; fencing does): it is not judged here.
        let rings: BTreeSet<Vec<NodeId>> = quorate
            .iter()
            .filter(|id| !self.nodes[id].unaware)
            .map(|id| self.nodes[id].ring.clone())
            .collect();
        for a in &rings {
            for b in &rings {
                assert!(
                    a == b || a.iter().any(|id| b.contains(id)),
                    "{when}: disjoint partitions {a:?} and {b:?} are both quorate; steps:\n{}",
                    self.history.join("\n")
                );
            }
        }
    }
}

// ---------------------------------------------------------------- tables

enum Step {
    /// These partitions form (nodes in none are down).
    Form(&'static [&'static [NodeId]]),
    /// The same, but the new rings break during sync (see
    /// [`Delivery::Counts`]).
    FormPartly(&'static [&'static [NodeId]], &'static [usize]),
    /// These partitions form; the nodes listed second stay in their old
    /// ring, unaware (see [`Cluster::form_keeping`]).
    FormUnaware(&'static [&'static [NodeId]], &'static [NodeId]),
    /// Milliseconds pass.
    Elapse(u64),
}
use Step::*;

/// After a step: the nodes that are quorate, and (for every one of them)
/// the expected votes and quorum `corosync-quorumtool` would show.
type Row = (Step, &'static [NodeId], Option<(u32, u32)>);

fn run_table(config: Config, rows: &[Row]) {
    let mut c = Cluster::new(config);
    for (i, (step, quorate, votes)) in rows.iter().enumerate() {
        let what = match step {
            Form(blocks) => {
                let blocks: Vec<Vec<NodeId>> = blocks.iter().map(|b| b.to_vec()).collect();
                c.form(&blocks);
                format!("form {blocks:?}")
            }
            FormPartly(blocks, counts) => {
                let blocks: Vec<Vec<NodeId>> = blocks.iter().map(|b| b.to_vec()).collect();
                c.form_with(&blocks, Delivery::Counts(counts));
                format!("form {blocks:?}, NodeInfos delivered {counts:?}")
            }
            FormUnaware(blocks, keep) => {
                let blocks: Vec<Vec<NodeId>> = blocks.iter().map(|b| b.to_vec()).collect();
                c.form_keeping(&blocks, Delivery::All, keep);
                format!("form {blocks:?}, {keep:?} unaware")
            }
            Elapse(ms) => {
                c.elapse(*ms);
                format!("elapse {ms} ms")
            }
        };
        assert_eq!(
            c.quorate(),
            quorate.to_vec(),
            "step {} ({what}): quorate nodes",
            i + 1
        );
        if let Some((expected, quorum)) = votes {
            for id in *quorate {
                let s = c.status(*id);
                assert_eq!(
                    (s.expected_votes, s.quorum),
                    (*expected, *quorum),
                    "step {} ({what}): node {id}'s expected votes and quorum",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn table_three_nodes_plain() {
    run_table(
        config(3, ""),
        &[
            // Cold start one by one: 1 of 3 votes is below quorum 2.
            (Form(&[&[1], &[2], &[3]]), &[], None),
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            // One node lost: quorum does not decrease, 2 of 3 keep it.
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            // Two lost.
            (Form(&[&[1], &[2], &[3]]), &[], None),
            // Rejoin.
            (Form(&[&[1, 3], &[2]]), &[1, 3], Some((3, 2))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            // A crashed node boots and rejoins.
            (Form(&[&[1, 2]]), &[1, 2], Some((3, 2))),
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn three_nodes_keep_quorum_with_two_and_lose_it_with_one() {
    run_table(
        config(3, ""),
        &[
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            (Form(&[&[2, 3]]), &[2, 3], Some((3, 2))),
            (Form(&[&[3]]), &[], None),
        ],
    );
}

#[test]
fn table_two_nodes_without_two_node_need_both() {
    run_table(
        config(2, ""),
        &[
            (Form(&[&[1], &[2]]), &[], None),
            (Form(&[&[1, 2]]), &[1, 2], Some((2, 2))),
            (Form(&[&[1], &[2]]), &[], None),
            (Form(&[&[1]]), &[], None),
        ],
    );
}

#[test]
fn table_two_node_split_and_restart_with_wait_for_all() {
    // two_node implies wait_for_all.
    run_table(
        config(2, "two_node = true"),
        &[
            // Cold start, the peer still down: wait for all.
            (Form(&[&[1]]), &[], None),
            (Form(&[&[1, 2]]), &[1, 2], Some((2, 1))),
            // Split: each half stays quorate with one vote; fencing decides.
            (Form(&[&[1], &[2]]), &[1, 2], Some((2, 1))),
            // Node 2 is fenced (down): node 1 carries on.
            (Form(&[&[1]]), &[1], Some((2, 1))),
            // Node 2 reboots but cannot reach node 1: not quorate alone, so it
            // cannot fence the survivor (no fence loop).
            (Form(&[&[1], &[2]]), &[1], Some((2, 1))),
            (Form(&[&[1, 2]]), &[1, 2], Some((2, 1))),
            // Both restart, apart: neither is quorate.
            (Form(&[]), &[], None),
            (Form(&[&[1], &[2]]), &[], None),
            (Form(&[&[1, 2]]), &[1, 2], Some((2, 1))),
        ],
    );
}

#[test]
fn two_node_without_wait_for_all_lets_a_lone_node_start_quorate() {
    run_table(
        config(2, "two_node = true\nwait_for_all = false"),
        &[
            (Form(&[&[1]]), &[1], Some((2, 1))),
            (Form(&[&[1], &[2]]), &[1, 2], Some((2, 1))),
        ],
    );
}

#[test]
fn table_wait_for_all_three_nodes() {
    run_table(
        config(3, "wait_for_all = true"),
        &[
            // Two of three would be a majority, but not all have been seen.
            (Form(&[&[1, 2], &[3]]), &[], None),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            // Once running, losing a node keeps quorum.
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            // Quorum lost: wait_for_all applies again (corosync re-arms it
            // when a node becomes inquorate) ...
            (Form(&[&[1], &[2], &[3]]), &[], None),
            (Form(&[&[1, 2], &[3]]), &[], None),
            // ... until all nodes have been seen together.
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn joining_a_quorate_partition_clears_wait_for_all() {
    run_table(
        config(5, "wait_for_all = true"),
        &[
            (Form(&[&[1, 2, 3, 4, 5]]), &[1, 2, 3, 4, 5], Some((5, 3))),
            // Nodes 4 and 5 crash.
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((5, 3))),
            // Node 4 boots (waiting for all) and joins the running cluster:
            // 4 of 5 votes, and it is quorate with them.
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((5, 3))),
            // Node 5 boots apart: alone it waits for all.
            (Form(&[&[1, 2, 3, 4], &[5]]), &[1, 2, 3, 4], Some((5, 3))),
        ],
    );
}

#[test]
fn table_four_nodes_even_split_without_tie_breaker() {
    run_table(
        config(4, ""),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // An even split: neither half has 3 of 4 votes.
            (Form(&[&[1, 2], &[3, 4]]), &[], None),
            (Form(&[&[1, 2, 3], &[4]]), &[1, 2, 3], Some((4, 3))),
            (Form(&[&[1], &[2, 3, 4]]), &[2, 3, 4], Some((4, 3))),
        ],
    );
}

#[test]
fn table_four_nodes_even_split_with_tie_breaker_lowest() {
    run_table(
        config(4, "auto_tie_breaker = true"),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // The half with the lowest node id keeps quorum.
            (Form(&[&[1, 2], &[3, 4]]), &[1, 2], Some((4, 3))),
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 3], &[2, 4]]), &[1, 3], Some((4, 3))),
            // Not a half: one node of four is not enough.
            (Form(&[&[1], &[2], &[3, 4]]), &[], None),
        ],
    );
}

#[test]
fn table_four_nodes_even_split_with_tie_breaker_highest() {
    run_table(
        config(
            4,
            "auto_tie_breaker = true\nauto_tie_breaker_node = \"highest\"",
        ),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2], &[3, 4]]), &[3, 4], Some((4, 3))),
        ],
    );
}

#[test]
fn table_four_nodes_even_split_with_tie_breaker_list() {
    run_table(
        config(4, "auto_tie_breaker = true\nauto_tie_breaker_node = [3, 1]"),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // The first listed node decides.
            (Form(&[&[1, 2], &[3, 4]]), &[3, 4], Some((4, 3))),
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 4], &[2, 3]]), &[2, 3], Some((4, 3))),
        ],
    );
}

#[test]
fn tie_breaker_list_skips_a_listed_node_that_was_not_in_the_cluster() {
    run_table(
        config(4, "auto_tie_breaker = true\nauto_tie_breaker_node = [3, 1]"),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // Node 3 crashes; the cluster of 1, 2, 4 runs on.
            (Form(&[&[1, 2, 4]]), &[1, 2, 4], Some((4, 3))),
            // Node 3 was not in the cluster before this split: the second
            // listed node, 1, decides. Node 3 (booting) is not quorate.
            (Form(&[&[1, 2], &[3, 4]]), &[1, 2], Some((4, 3))),
        ],
    );
}

#[test]
fn odd_split_is_never_decided_by_the_tie_breaker() {
    // Five nodes split 2 / 3: the three are a majority; the two hold the
    // lowest id and ⌊5/2⌋ = 2 votes, but the other side can be quorate.
    run_table(
        config(5, "auto_tie_breaker = true\nwait_for_all = true"),
        &[
            (Form(&[&[1, 2, 3, 4, 5]]), &[1, 2, 3, 4, 5], Some((5, 3))),
            (Form(&[&[1, 2], &[3, 4, 5]]), &[3, 4, 5], Some((5, 3))),
        ],
    );
}

#[test]
fn a_peer_whose_quorum_did_not_survive_does_not_lift_wait_for_all() {
    run_table(
        config(3, "auto_tie_breaker = true\nwait_for_all = true"),
        &[
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            // An odd split is never decided by the tie-breaker (one node of
            // three is not a half): node 1 alone is not quorate. Node 2 was
            // quorate a moment ago, but not in a way that survives in
            // {2, 3}, and node 3 (which lost quorum) waits for all: {2, 3}
            // is not quorate either until everyone is back.
            (Form(&[&[1], &[2, 3]]), &[], Some((3, 2))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn a_stale_tie_breaker_does_not_make_a_half_quorate() {
    // The tie-breaker keeps quorum for a half of a quorate membership; it
    // never grants quorum from what a node remembers after losing it.
    run_table(
        config(4, "auto_tie_breaker = true"),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1], &[2, 3, 4]]), &[2, 3, 4], Some((4, 3))),
            // Node 3 crashes: 2 and 4 are the half with the tie-breaker (2,
            // the lowest id of the cluster they were quorate in).
            (Form(&[&[1], &[2, 4]]), &[2, 4], Some((4, 3))),
            // Node 3 boots and meets node 1, which still remembers being
            // quorate with everyone, where it was the tie-breaker.
            (Form(&[&[1, 3], &[2, 4]]), &[2, 4], Some((4, 3))),
        ],
    );
}

#[test]
fn quorum_must_survive_in_a_membership_that_may_have_settled_elsewhere() {
    run_table(
        config(
            4,
            "auto_tie_breaker = true\nauto_tie_breaker_node = \"highest\"",
        ),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // Node 4 leaves; the new ring breaks during sync: nodes 1 and 3
            // see it settle (quorate, tie-breaker now 3), node 2 misses node
            // 3's NodeInfo and only keeps quorum provisionally.
            (
                FormPartly(&[&[1, 2, 3], &[4]], &[3, 2, 3]),
                &[1, 2, 3],
                Some((4, 3)),
            ),
            // By its last settled membership (tie-breaker 4) node 2 could
            // keep quorum with node 4, but {1, 2, 3} may have settled: in
            // it node 2 is no half with the tie-breaker. Only 1 and 3 are.
            (Form(&[&[1, 3], &[2, 4]]), &[1, 3], Some((4, 3))),
        ],
    );
}

#[test]
fn a_membership_that_keeps_changing_without_settling_gives_quorum_up() {
    const NOTHING: &[usize] = &[0, 0, 0];
    let mut rows: Vec<Row> = vec![(Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2)))];
    // Every change keeps quorum provisionally, up to UNSETTLED_RINGS_MAX
    // memberships that never settled ...
    for _ in 0..=UNSETTLED_RINGS_MAX {
        rows.push((FormPartly(&[&[1, 2, 3]], NOTHING), &[1, 2, 3], None));
    }
    // ... and one more is too many.
    rows.push((FormPartly(&[&[1, 2, 3]], NOTHING), &[], None));
    // A membership that settles brings quorum back.
    rows.push((Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))));
    run_table(config(3, ""), &rows);
}

const LMS: &str =
    "last_man_standing = true\nwait_for_all = true\nlast_man_standing_window = \"10s\"";
const LMS_ATB: &str = "last_man_standing = true\nwait_for_all = true\nlast_man_standing_window = \"10s\"\nauto_tie_breaker = true";

#[test]
fn table_last_man_standing_shrinks_after_the_window_not_before() {
    run_table(
        config(4, LMS),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            // Node 4 is lost: still quorate with 3 of 4.
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((4, 3))),
            // Not before the window ...
            (Elapse(WINDOW_MS - 1), &[1, 2, 3], Some((4, 3))),
            // ... but when it ends, expected votes drop to the votes present.
            (Elapse(1), &[1, 2, 3], Some((3, 2))),
            // So a further loss keeps quorum.
            (Form(&[&[1, 2]]), &[1, 2], Some((3, 2))),
            (Elapse(WINDOW_MS), &[1, 2], Some((2, 2))),
            // Never below 2 without auto_tie_breaker: the last node is not
            // quorate.
            (Form(&[&[1]]), &[], None),
        ],
    );
}

#[test]
fn last_man_standing_does_not_shrink_before_the_window_ends() {
    run_table(
        config(4, LMS),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((4, 3))),
            (Elapse(WINDOW_MS / 2), &[1, 2, 3], Some((4, 3))),
            // A second loss inside the window: quorum is still 3.
            (Form(&[&[1, 2]]), &[], None),
            (Elapse(WINDOW_MS), &[], None),
        ],
    );
}

#[test]
fn last_man_standing_window_restarts_when_another_node_leaves() {
    run_table(
        config(5, LMS),
        &[
            (Form(&[&[1, 2, 3, 4, 5]]), &[1, 2, 3, 4, 5], Some((5, 3))),
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((5, 3))),
            (Elapse(6_000), &[1, 2, 3, 4], Some((5, 3))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((5, 3))),
            // 12 s after the first loss, 6 s after the second: not yet.
            (Elapse(6_000), &[1, 2, 3], Some((5, 3))),
            (Elapse(4_000), &[1, 2, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn table_last_man_standing_with_tie_breaker_goes_down_to_one_node() {
    run_table(
        config(4, LMS_ATB),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((4, 3))),
            (Elapse(WINDOW_MS), &[1, 2, 3], Some((3, 2))),
            (Form(&[&[1, 2]]), &[1, 2], Some((3, 2))),
            (Elapse(WINDOW_MS), &[1, 2], Some((2, 2))),
            // Half of two votes, with the tie-breaker (lowest id): quorate ...
            (Form(&[&[1]]), &[1], Some((2, 2))),
            // ... and after the window, a one-node cluster.
            (Elapse(WINDOW_MS), &[1], Some((1, 1))),
        ],
    );
}

#[test]
fn last_man_standing_with_tie_breaker_keeps_only_the_tie_breaker_half() {
    run_table(
        config(4, LMS_ATB),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2]]), &[1, 2], Some((4, 3))),
            (Elapse(WINDOW_MS), &[1, 2], Some((2, 2))),
            (Form(&[&[1], &[2]]), &[1], Some((2, 2))),
        ],
    );
}

#[test]
fn nodes_cut_off_from_a_shrunken_cluster_wait_for_every_configured_vote() {
    run_table(
        config(4, LMS_ATB),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2], &[3], &[4]]), &[1, 2], Some((4, 3))),
            (Elapse(WINDOW_MS), &[1, 2], Some((2, 2))),
            // Node 3 joins the shrunken cluster and takes its 2 expected
            // votes; node 2 is cut off with them.
            (Form(&[&[1, 3], &[2], &[4]]), &[1, 3], Some((2, 2))),
            // Node 1 carries on as the tie-breaker half. Nodes 2 and 3 hold
            // "all" 2 expected votes of the shrunken cluster between them,
            // but waiting for all means every configured vote.
            (Form(&[&[1], &[2, 3], &[4]]), &[1], Some((2, 2))),
            (Elapse(WINDOW_MS), &[1], Some((1, 1))),
            (Form(&[&[1], &[2, 3, 4]]), &[1], Some((1, 1))),
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
        ],
    );
}

#[test]
fn a_rejoining_node_adopts_the_lowered_expected_votes() {
    run_table(
        config(4, LMS),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2]]), &[], None),
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((4, 3))),
            (Elapse(WINDOW_MS), &[1, 2, 3], Some((3, 2))),
            (Form(&[&[1, 2]]), &[1, 2], Some((3, 2))),
            (Elapse(WINDOW_MS), &[1, 2], Some((2, 2))),
            // Node 3 boots with 4 expected votes from its configuration and
            // joins: it takes the cluster's 2, grown to the 3 votes present.
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn a_claim_superseded_by_a_newer_quorate_membership_does_not_carry_quorum() {
    // The quorum simulator's seed 50036: a node cut off for less than
    // totem's detection time never sees its ring break and keeps its claim.
    run_table(
        config(4, LMS),
        &[
            (Form(&[&[1, 2, 3, 4]]), &[1, 2, 3, 4], Some((4, 3))),
            (Form(&[&[1, 2, 4], &[3]]), &[1, 2, 4], Some((4, 3))),
            (Elapse(WINDOW_MS), &[1, 2, 4], Some((3, 2))),
            // {1, 2, 3} settles; node 4 still sits in {1, 2, 4}, unaware.
            (
                FormUnaware(&[&[1, 2, 3]], &[4]),
                &[1, 2, 3, 4],
                Some((3, 2)),
            ),
            // {1, 3} carries {1, 2, 3} on. Node 4's claim from {1, 2, 4}
            // would hold with {2, 4}, but node 2 settled {1, 2, 3} since,
            // where {2, 4} holds 1 vote of 3.
            (Form(&[&[1, 3], &[2, 4]]), &[1, 3], Some((3, 2))),
        ],
    );
}

#[test]
fn a_stale_claim_does_not_lower_the_expected_votes_of_a_newer_membership() {
    // The quorum simulator's seed 4950.
    run_table(
        config(5, LMS),
        &[
            (Form(&[&[1, 2, 3, 4, 5]]), &[1, 2, 3, 4, 5], Some((5, 3))),
            (Form(&[&[3, 4, 5], &[1], &[2]]), &[3, 4, 5], Some((5, 3))),
            (Elapse(WINDOW_MS), &[3, 4, 5], Some((3, 2))),
            // {1, 2, 3, 5} settles with 4 expected votes; node 4 still
            // sits in {3, 4, 5} with 3, unaware.
            (FormUnaware(&[&[1, 2, 3, 5]], &[4]), &[1, 2, 3, 4, 5], None),
            // Node 4's {4, 5} would be a majority of its 3 expected votes,
            // but node 5 settled {1, 2, 3, 5} since, where {1, 5} hold 2 of
            // 4: no quorum for {1, 4, 5}, nor for {2, 3}.
            (Form(&[&[1, 4, 5], &[2, 3]]), &[], None),
            // Had {1, 4, 5} settled on node 4's 3 expected votes, {4, 5}
            // would now be quorate beside {1, 2, 3}. Every node lost quorum
            // instead, so both wait for all.
            (Form(&[&[4, 5], &[1, 2, 3]]), &[], None),
            (Form(&[&[1, 2, 3, 4, 5]]), &[1, 2, 3, 4, 5], Some((5, 3))),
        ],
    );
}

#[test]
fn weighted_votes_count_per_node() {
    // Votes 2, 1, 1: expected 4, quorum 3.
    run_table(
        config_votes(&[2, 1, 1], ""),
        &[
            (Form(&[&[1], &[2, 3]]), &[], None),
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((4, 3))),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((4, 3))),
            (Form(&[&[1, 3], &[2]]), &[1, 3], Some((4, 3))),
            (Form(&[&[1], &[2, 3]]), &[], None),
        ],
    );
}

#[test]
fn configured_expected_votes_above_the_total_raise_quorum() {
    // expected_votes = 5 with three nodes: quorum 3, all three needed.
    run_table(
        config(3, "expected_votes = 5"),
        &[
            (Form(&[&[1, 2], &[3]]), &[], None),
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((5, 3))),
            (Form(&[&[1, 2], &[3]]), &[], None),
        ],
    );
}

#[test]
fn expected_votes_grow_to_the_votes_present() {
    // expected_votes = 2, below the total: the configuration refuses it
    // (two halves could both be quorate from a cold start), so it is set
    // on the model here. Once three votes are present, expected votes are
    // 3 and stay.
    let mut low = config(3, "");
    low.quorum.expected_votes = Some(2);
    run_table(
        low,
        &[
            (Form(&[&[1, 2, 3]]), &[1, 2, 3], Some((3, 2))),
            (Form(&[&[1, 2], &[3]]), &[1, 2], Some((3, 2))),
            (Form(&[&[1], &[2], &[3]]), &[], None),
        ],
    );
}

// ---------------------------------------------------------------- agreement

#[test]
fn delivery_order_does_not_change_the_outcome() {
    // Members with different histories merge: a lowered cluster, a crashed
    // and rebooted node, a node that lost quorum.
    let mut c = Cluster::new(config(5, LMS));
    c.form(&[vec![1, 2, 3, 4, 5]]);
    c.form(&[vec![1, 2, 3], vec![4], vec![5]]);
    c.elapse(WINDOW_MS);
    c.form(&[vec![1, 2], vec![3], vec![4]]);
    let mut forward = c.clone();
    let mut backward = c.clone();
    backward.order = Order::Descending;
    for blocks in [vec![vec![1, 2, 3, 4, 5]], vec![vec![1, 3, 5], vec![2, 4]]] {
        forward.form(&blocks);
        backward.form(&blocks);
        for id in 1..=5 {
            assert_eq!(forward.status(id), backward.status(id), "node {id}");
        }
    }
}

// ---------------------------------------------------------------- the exhaustive check

/// Every set partition of nodes 1..=n (restricted growth strings).
fn set_partitions(n: usize) -> Vec<Vec<Vec<NodeId>>> {
    fn grow(n: usize, prefix: &mut Vec<usize>, blocks: usize, out: &mut Vec<Vec<Vec<NodeId>>>) {
        if prefix.len() == n {
            let mut p = vec![Vec::new(); blocks];
            for (i, b) in prefix.iter().enumerate() {
                p[*b].push(i as NodeId + 1);
            }
            out.push(p);
            return;
        }
        for b in 0..=blocks {
            prefix.push(b);
            grow(n, prefix, blocks.max(b + 1), out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    grow(n, &mut Vec::new(), 0, &mut out);
    out
}

#[test]
fn set_partitions_are_counted_by_the_bell_numbers() {
    let bell = [1, 1, 2, 5, 15, 52];
    for (n, b) in bell.iter().enumerate().skip(1) {
        assert_eq!(set_partitions(n).len(), *b, "B({n})");
    }
}

#[derive(Clone)]
enum Move {
    Partition(Vec<Vec<NodeId>>, Delivery),
    /// The other nodes form these rings; this one stays in its old ring,
    /// unaware.
    Unaware(Vec<Vec<NodeId>>, NodeId),
    Window,
    Crash(NodeId),
}

fn apply(c: &mut Cluster, m: &Move) {
    match m {
        Move::Partition(p, delivery) => c.form_with(p, *delivery),
        Move::Unaware(p, id) => {
            if c.nodes[id].up {
                c.form_keeping(p, Delivery::All, &[*id]);
            } else {
                c.form(p);
            }
        }
        Move::Window => c.elapse(WINDOW_MS),
        Move::Crash(id) => {
            // The crashed node's ring loses it; everything else stays.
            // (A node unaware that its ring broke lists members that moved
            // on: each node goes into the first block that lists it.)
            let mut blocks: BTreeSet<Vec<NodeId>> = BTreeSet::new();
            let mut placed = BTreeSet::new();
            for (n, m) in &c.nodes {
                if m.up && *n != *id && !placed.contains(n) {
                    let block: Vec<NodeId> = m
                        .ring
                        .iter()
                        .copied()
                        .filter(|x| x != id && c.nodes[x].up && !placed.contains(x))
                        .collect();
                    placed.extend(block.iter().copied());
                    blocks.insert(block);
                }
            }
            let blocks: Vec<Vec<NodeId>> = blocks.into_iter().filter(|b| !b.is_empty()).collect();
            c.form(&blocks);
        }
    }
}

/// Every sequence of `depth` moves from `start`; the harness checks the
/// invariant and agreement after every step.
fn explore(start: &Cluster, moves: &[Move], depth: usize) -> usize {
    if depth == 0 {
        return 1;
    }
    let mut runs = 0;
    for m in moves {
        let mut c = start.clone();
        apply(&mut c, m);
        runs += explore(&c, moves, depth - 1);
    }
    runs
}

/// Seeded random walks: partitions whose sync completes, breaks before it
/// starts or breaks half-way (each member with a prefix of the NodeInfos),
/// the window, crashes.
fn random_walks(start: &Cluster, n: usize, walks: u64, length: usize) {
    for seed in 0..walks {
        let mut rng = Lcg::new(seed);
        let mut c = start.clone();
        for _ in 0..length {
            let m = match rng.below(9) {
                0 => Move::Window,
                1 => Move::Crash(rng.below(n) as NodeId + 1),
                8 => {
                    let unaware = rng.below(n) as NodeId + 1;
                    let mut blocks: Vec<Vec<NodeId>> = vec![Vec::new(); n];
                    for id in (1..=n as NodeId).filter(|id| *id != unaware) {
                        blocks[rng.below(n)].push(id);
                    }
                    let blocks = blocks.into_iter().filter(|b| !b.is_empty()).collect();
                    Move::Unaware(blocks, unaware)
                }
                choice => {
                    let mut blocks: Vec<Vec<NodeId>> = vec![Vec::new(); n];
                    for id in 1..=n {
                        blocks[rng.below(n)].push(id as NodeId);
                    }
                    let delivery = match choice {
                        2 => Delivery::Nothing,
                        3 | 4 => Delivery::Prefixes(rng.below(1 << 30) as u64),
                        _ => Delivery::All,
                    };
                    let blocks = blocks.into_iter().filter(|b| !b.is_empty()).collect();
                    Move::Partition(blocks, delivery)
                }
            };
            apply(&mut c, &m);
        }
    }
}

/// Every set partition (whose sync completes, or breaks before any
/// NodeInfo), the window, and every single crash; up to four nodes also
/// every partition of all nodes but one, which stays unaware in its old
/// ring.
fn moves(n: usize) -> Vec<Move> {
    let mut m = Vec::new();
    for p in set_partitions(n) {
        m.push(Move::Partition(p.clone(), Delivery::All));
        m.push(Move::Partition(p, Delivery::Nothing));
    }
    if n <= 4 {
        for unaware in 1..=n as NodeId {
            for p in set_partitions(n - 1) {
                let p = p
                    .into_iter()
                    .map(|b| {
                        b.into_iter()
                            .map(|id| if id >= unaware { id + 1 } else { id })
                            .collect()
                    })
                    .collect();
                m.push(Move::Unaware(p, unaware));
            }
        }
    }
    m.push(Move::Window);
    m.extend((1..=n as NodeId).map(Move::Crash));
    m
}

/// The invariant over every sequence of moves, from a cold start (the first
/// move may already be any partition) and from a running cluster: three
/// moves deep for up to four nodes, two for five; then seeded random walks.
fn check_every_partition(quorum: &str, votes: impl Fn(usize) -> Vec<u32>, sizes: &[usize]) {
    for &n in sizes {
        let cfg = config_votes(&votes(n), quorum);
        let fresh = Cluster::new(cfg);
        let mut all_up = fresh.clone();
        all_up.form(&[(1..=n as NodeId).collect()]);
        let m = moves(n);
        let depth = if n <= 4 { 3 } else { 2 };
        let runs = explore(&fresh, &m, depth) + explore(&all_up, &m, depth);
        assert_eq!(runs, 2 * m.len().pow(depth as u32));
        // QUORUM_WALKS=100000 for a longer soak.
        let walks = std::env::var("QUORUM_WALKS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(200);
        random_walks(&all_up, n, walks, 12);
    }
}

fn ones(n: usize) -> Vec<u32> {
    vec![1; n]
}

fn heavy_first(n: usize) -> Vec<u32> {
    let mut v = vec![1; n];
    v[0] = 2;
    v
}

#[test]
fn no_two_disjoint_partitions_are_quorate_plain() {
    check_every_partition("", ones, &[2, 3, 4, 5]);
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_wait_for_all() {
    check_every_partition("wait_for_all = true", ones, &[2, 3, 4, 5]);
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_weighted_votes() {
    check_every_partition("", heavy_first, &[3, 4, 5]);
    check_every_partition("wait_for_all = true", heavy_first, &[3, 4]);
    check_every_partition(
        "auto_tie_breaker = true\nwait_for_all = true",
        heavy_first,
        &[3, 4],
    );
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_expected_votes_above_the_total() {
    check_every_partition("expected_votes = 5", ones, &[3, 4]);
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_last_man_standing() {
    check_every_partition(LMS, ones, &[2, 3, 4, 5]);
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_tie_breaker_lowest() {
    check_every_partition("auto_tie_breaker = true", ones, &[2, 4]);
    check_every_partition(
        "auto_tie_breaker = true\nwait_for_all = true",
        ones,
        &[3, 4, 5],
    );
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_tie_breaker_highest() {
    let q = "auto_tie_breaker = true\nauto_tie_breaker_node = \"highest\"";
    check_every_partition(q, ones, &[4]);
    check_every_partition(&format!("{q}\nwait_for_all = true"), ones, &[3, 5]);
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_tie_breaker_list() {
    check_every_partition(
        "auto_tie_breaker = true\nauto_tie_breaker_node = [3, 1]",
        ones,
        &[4],
    );
    check_every_partition(
        "auto_tie_breaker = true\nauto_tie_breaker_node = [3, 1]\nwait_for_all = true",
        ones,
        &[3, 5],
    );
}

#[test]
fn no_two_disjoint_partitions_are_quorate_with_last_man_standing_and_tie_breaker() {
    check_every_partition(LMS_ATB, ones, &[2, 3, 4, 5]);
}

#[test]
fn two_node_restarted_node_is_never_quorate_alone_in_any_sequence() {
    // Under two_node both halves of a split may be quorate (fencing
    // decides); what must hold is that a rebooted node alone never is.
    check_every_partition("two_node = true", ones, &[2]);
}

// ---------------------------------------------------------------- the API directly

fn ring(seq: u64, rep: NodeId) -> RingId {
    RingId { seq, rep }
}

fn members(ids: &[NodeId]) -> NodeSet {
    let mut s = NodeSet::EMPTY;
    for id in ids {
        s.insert(*id);
    }
    s
}

fn now() -> Instant {
    Instant::from_millis(5)
}

/// Node `id`'s NodeInfo for ring (seq 8, rep 1) of a fresh 3-node cluster.
fn fresh_info(id: NodeId) -> NodeInfo {
    let mut q = Quorum::new(&config(3, ""), id).unwrap();
    q.handle_membership(now(), ring(8, 1), &[1, 2, 3]).unwrap();
    q.poll_broadcast().unwrap()
}

#[test]
fn quorum_is_lost_at_the_membership_change_and_gained_after_sync() {
    let mut c = Cluster::new(config(3, ""));
    c.form(&[vec![1, 2, 3]]);
    let q = &mut c.nodes.get_mut(&3).unwrap().q;
    // Node 3 is cut off: it loses quorum at once, before any NodeInfo.
    q.handle_membership(c.now, ring(100, 3), &[3]).unwrap();
    assert!(!q.is_quorate());
    assert!(matches!(
        q.poll_event(),
        Some(QuorumEvent::Lost {
            reason: InquorateReason::NotEnoughVotes {
                total_votes: 1,
                quorum: 2
            },
            ..
        })
    ));
    // Nodes 1 and 2 keep quorum through the change ...
    let mut q1 = c.nodes[&1].q.clone();
    q1.handle_membership(c.now, ring(100, 1), &[1, 2]).unwrap();
    assert!(q1.is_quorate() && q1.status().syncing);
    assert_eq!(q1.poll_event(), None);

    // A fresh node becomes quorate only when the last NodeInfo arrives.
    let mut q = Quorum::new(&config(3, ""), 1).unwrap();
    q.handle_membership(now(), ring(8, 1), &[1, 2, 3]).unwrap();
    q.handle_node_info(now(), 2, fresh_info(2)).unwrap();
    assert!(!q.is_quorate());
    assert_eq!(
        q.status().inquorate_reason,
        Some(InquorateReason::Syncing { nodes_missing: 1 })
    );
    q.handle_node_info(now(), 3, fresh_info(3)).unwrap();
    assert!(q.is_quorate());
    assert_eq!(
        q.poll_event(),
        Some(QuorumEvent::Gained { ring: ring(8, 1) })
    );
    assert_eq!(
        q.poll_event(),
        Some(QuorumEvent::Synced {
            ring: ring(8, 1),
            members: vec![1, 2, 3],
            quorate: true
        })
    );
    assert_eq!(q.poll_event(), None);
    // Totem's copy of our own NodeInfo is a harmless duplicate.
    let own = q.poll_broadcast().unwrap();
    assert_eq!(q.handle_node_info(now(), 1, own), Ok(()));
    assert_eq!(q.poll_event(), None);
}

#[test]
fn a_leaving_member_is_not_counted() {
    let mut q = Quorum::new(&config(3, ""), 1).unwrap();
    q.handle_membership(now(), ring(8, 1), &[1, 2, 3]).unwrap();
    q.handle_node_info(now(), 2, fresh_info(2)).unwrap();
    let leaving = NodeInfo {
        leaving: true,
        ..fresh_info(3)
    };
    q.handle_node_info(now(), 3, leaving).unwrap();
    let s = q.status();
    assert_eq!((s.total_votes, s.quorum, s.quorate), (2, 2, true));

    let mut q = Quorum::new(&config(3, ""), 1).unwrap();
    q.handle_membership(now(), ring(8, 1), &[1, 2, 3]).unwrap();
    for id in [2, 3] {
        let info = NodeInfo {
            leaving: true,
            ..fresh_info(id)
        };
        q.handle_node_info(now(), id, info).unwrap();
    }
    let s = q.status();
    assert_eq!((s.total_votes, s.quorate), (1, false));
}

#[test]
fn a_member_announcing_other_votes_makes_the_ring_inquorate() {
    let mut q = Quorum::new(&config(3, ""), 1).unwrap();
    q.handle_membership(now(), ring(8, 1), &[1, 2, 3]).unwrap();
    q.handle_node_info(now(), 2, fresh_info(2)).unwrap();
    let bad = NodeInfo {
        votes: 3,
        ..fresh_info(3)
    };
    let err = q.handle_node_info(now(), 3, bad).unwrap_err();
    assert!(
        matches!(err, QuorumError::ConfigMismatch { from: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("identical on every node"), "{err}");
    let s = q.status();
    assert!(!s.quorate && !s.syncing);
    assert_eq!(
        s.inquorate_reason,
        Some(InquorateReason::BadNodeInfo { node: 3 })
    );
    // A correct NodeInfo afterwards does not lift it for this ring ...
    assert_eq!(q.handle_node_info(now(), 3, fresh_info(3)), Ok(()));
    assert!(!q.is_quorate());
    // ... the next membership starts clean.
    q.handle_membership(now(), ring(12, 1), &[1, 2, 3]).unwrap();
    for id in [2, 3] {
        let info = NodeInfo {
            ring: ring(12, 1),
            ..fresh_info(id)
        };
        q.handle_node_info(now(), id, info).unwrap();
    }
    assert!(q.is_quorate());
}

#[test]
fn a_second_different_node_info_in_one_ring_makes_it_inquorate() {
    let mut c = Cluster::new(config(3, ""));
    c.form(&[vec![1, 2, 3]]);
    let q = &mut c.nodes.get_mut(&1).unwrap().q;
    let err = q
        .handle_node_info(
            c.now,
            2,
            NodeInfo {
                expected_votes: 7,
                ..fresh_info(2)
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, QuorumError::OtherRing { .. }),
        "a NodeInfo of an old ring is stale: {err}"
    );
    let current = q.ring().unwrap();
    let err = q
        .handle_node_info(
            c.now,
            2,
            NodeInfo {
                ring: current,
                expected_votes: 7,
                ..fresh_info(2)
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, QuorumError::Conflicting { from: 2, .. }),
        "{err}"
    );
    assert!(!q.is_quorate());
}

#[test]
fn stale_and_foreign_input_is_refused_without_effect() {
    let mut c = Cluster::new(config(3, ""));
    c.form(&[vec![1, 2], vec![3]]);
    let q = &mut c.nodes.get_mut(&1).unwrap().q;
    let current = q.ring().unwrap();
    assert!(q.is_quorate());
    // An older membership.
    let err = q
        .handle_membership(c.now, ring(current.seq - 1, 1), &[1])
        .unwrap_err();
    assert!(matches!(err, QuorumError::StaleMembership { .. }), "{err}");
    // A NodeInfo from a node outside the ring.
    let err = q
        .handle_node_info(
            c.now,
            3,
            NodeInfo {
                ring: current,
                ..fresh_info(3)
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, QuorumError::NotAMember { from: 3, .. }),
        "{err}"
    );
    assert!(q.is_quorate() && q.ring() == Some(current));
    assert_eq!(q.poll_event(), None);

    // Before any membership.
    let mut fresh = Quorum::new(&config(3, ""), 1).unwrap();
    let err = fresh.handle_node_info(now(), 2, fresh_info(2)).unwrap_err();
    assert!(
        matches!(err, QuorumError::OtherRing { current: None, .. }),
        "{err}"
    );
}

#[test]
fn a_membership_with_an_unconfigured_node_is_inquorate() {
    let mut c = Cluster::new(config(3, ""));
    c.form(&[vec![1, 2, 3]]);
    let q = &mut c.nodes.get_mut(&1).unwrap().q;
    let err = q
        .handle_membership(c.now, ring(100, 1), &[1, 2, 3, 9])
        .unwrap_err();
    assert!(
        matches!(err, QuorumError::UnknownMember { node: 9, .. }),
        "{err}"
    );
    assert!(!q.is_quorate());
    assert_eq!(
        q.status().inquorate_reason,
        Some(InquorateReason::UnknownMember { node: 9 })
    );
}

#[test]
fn a_node_missing_from_the_configuration_is_refused() {
    let err = Quorum::new(&config(3, ""), 4).unwrap_err();
    assert!(err.to_string().contains("id = 4"), "{err}");
}

// ---------------------------------------------------------------- status

#[test]
fn status_shows_votes_flags_and_members_like_corosync_quorumtool() {
    let mut c = Cluster::new(config(3, "wait_for_all = true"));
    c.form(&[vec![1, 2, 3]]);
    c.form(&[vec![1, 2], vec![3]]);
    let s = c.status(1);
    let r = s.ring_id.unwrap();
    assert_eq!(
        s.render_text(),
        format!(
            "Quorum information
------------------
Node ID:          1
Ring ID:          1.{}
Nodes:            2
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   3
Highest expected: 3
Total votes:      2
Quorum:           2
Flags:            Quorate WaitForAll

Membership information
----------------------
    Nodeid      Votes Name
         1          1 n1 (local)
         2          1 n2
",
            r.seq
        )
    );
    let json: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
    assert_eq!(json["quorate"], true);
    assert_eq!(json["expected_votes"], 3);
    assert_eq!(json["total_votes"], 2);
    assert_eq!(json["quorum"], 2);
    assert_eq!(json["ring_id"]["rep"], 1);
    assert_eq!(json["flags"], serde_json::json!(["Quorate", "WaitForAll"]));
    assert_eq!(json["members"][1]["name"], "n2");
    assert_eq!(json["members"][0]["local"], true);

    // The cut-off node says why it is not quorate.
    let s = c.status(3);
    assert!(!s.quorate);
    assert!(
        s.render_text()
            .contains("Quorate:          No (waiting for all nodes: 1 of 3 votes seen together)"),
        "{}",
        s.render_text()
    );
    let json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(json["inquorate_reason"]["kind"], "waiting_for_all");
}

#[test]
fn status_shows_every_configured_flag_and_the_tie_breaker() {
    let mut c = Cluster::new(config(4, LMS_ATB));
    c.form(&[vec![1, 2, 3, 4]]);
    c.form(&[vec![1, 2], vec![3, 4]]);
    let s = c.status(2);
    assert_eq!(
        s.flags,
        vec![
            QuorumFlag::Quorate,
            QuorumFlag::WaitForAll,
            QuorumFlag::LastManStanding,
            QuorumFlag::AutoTieBreaker
        ]
    );
    assert!(s.by_tie_breaker);
    assert!(
        s.render_text()
            .contains("Quorate:          Yes (by auto_tie_breaker)")
    );
    assert_eq!(
        s.last_man_standing_deadline_us,
        Some((c.now + Duration::from_millis(WINDOW_MS)).as_micros())
    );
    let s = Cluster::new(config(2, "two_node = true")).status(1);
    assert_eq!(s.flags, vec![QuorumFlag::TwoNode, QuorumFlag::WaitForAll]);
    assert_eq!(s.ring_id, None);
    assert!(s.render_text().contains("Ring ID:          none"));
}

// ---------------------------------------------------------------- NodeInfo bytes

fn sample_infos() -> Vec<NodeInfo> {
    let base = NodeInfo {
        ring: ring(0x0102_0304_0506_0708, 3),
        votes: 1,
        expected_votes: 5,
        quorate: false,
        wait_for_all: true,
        leaving: false,
        last_quorate: None,
        unsettled: Vec::new(),
    };
    vec![
        base.clone(),
        NodeInfo {
            quorate: true,
            wait_for_all: false,
            votes: 255,
            expected_votes: 8160,
            last_quorate: Some(QuorateRing {
                ring: ring(0x0102_0304_0506_0704, 1),
                members: members(&[1, 3, 32]),
            }),
            unsettled: vec![members(&[1, 3]), members(&[3, 4])],
            ..base.clone()
        },
        NodeInfo {
            wait_for_all: false,
            leaving: true,
            votes: 0,
            last_quorate: Some(QuorateRing {
                ring: ring(4, 2),
                members: members(&[2, 3]),
            }),
            ..base.clone()
        },
        NodeInfo {
            quorate: true,
            wait_for_all: false,
            last_quorate: Some(QuorateRing {
                ring: ring(4, 2),
                members: members(&[2, 3]),
            }),
            unsettled: vec![members(&[3]); UNSETTLED_RINGS_MAX],
            ..base
        },
    ]
}

#[test]
fn node_info_round_trips_through_bytes() {
    for info in sample_infos() {
        let bytes = info.to_bytes();
        assert_eq!(bytes.len(), NODE_INFO_BYTES);
        assert_eq!(bytes[0], 1, "version");
        assert_eq!(NodeInfo::from_bytes(&bytes), Ok(info));
    }
}

#[test]
fn node_info_layout_is_big_endian_and_fixed() {
    let info = sample_infos()[1].clone();
    let b = info.to_bytes();
    assert_eq!(b[1], 0b001, "flags: QUORATE");
    assert_eq!(&b[2..4], &[0, 255], "votes");
    assert_eq!(&b[4..6], &8160u16.to_be_bytes(), "expected votes");
    assert_eq!(&b[6..14], &[1, 2, 3, 4, 5, 6, 7, 8], "ring seq");
    assert_eq!(&b[14..18], &[0, 0, 0, 3], "ring rep");
    assert_eq!(
        &b[30..34],
        &(1u32 << 31 | 1 << 2 | 1).to_be_bytes(),
        "members"
    );
    assert_eq!(b[34], 2, "unsettled memberships");
    assert_eq!(&b[35..39], &0b101u32.to_be_bytes(), "first unsettled");
    assert_eq!(&b[39..43], &0b1100u32.to_be_bytes(), "second unsettled");
    assert_eq!(&b[43..], &[0; 8], "unused");
    assert_eq!(
        &sample_infos()[0].to_bytes()[18..],
        &[0; NODE_INFO_BYTES - 18],
        "no quorate ring, nothing unsettled"
    );
}

#[test]
fn node_info_truncated_or_overlong_is_rejected() {
    let bytes = sample_infos()[1].to_bytes();
    for len in 0..NODE_INFO_BYTES {
        assert_eq!(
            NodeInfo::from_bytes(&bytes[..len]),
            Err(NodeInfoError::Length { bytes: len })
        );
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(
        NodeInfo::from_bytes(&long),
        Err(NodeInfoError::Length {
            bytes: NODE_INFO_BYTES + 1
        })
    );
}

#[test]
fn node_info_with_bad_fields_is_rejected() {
    let good = sample_infos()[1].to_bytes();
    let with = |at: usize, value: &[u8]| {
        let mut b = good;
        b[at..at + value.len()].copy_from_slice(value);
        NodeInfo::from_bytes(&b)
    };
    assert_eq!(with(0, &[2]), Err(NodeInfoError::Version { version: 2 }));
    assert_eq!(with(0, &[0]), Err(NodeInfoError::Version { version: 0 }));
    assert_eq!(
        with(1, &[0x09]),
        Err(NodeInfoError::UnknownFlags { flags: 0x09 })
    );
    assert_eq!(
        with(1, &[0x03]),
        Err(NodeInfoError::QuorateAndWaitingForAll)
    );
    assert_eq!(
        with(2, &[1, 0]),
        Err(NodeInfoError::VotesOutOfRange { votes: 256 })
    );
    assert_eq!(
        with(4, &[0, 0]),
        Err(NodeInfoError::ExpectedVotesOutOfRange { expected_votes: 0 })
    );
    assert_eq!(
        with(4, &[0xff, 0xff]),
        Err(NodeInfoError::ExpectedVotesOutOfRange {
            expected_votes: 65535
        })
    );
    assert_eq!(
        with(14, &[0, 0, 0, 0]),
        Err(NodeInfoError::RingNodeIdOutOfRange { node: 0 })
    );
    assert_eq!(
        with(14, &[0, 0, 0, 33]),
        Err(NodeInfoError::RingNodeIdOutOfRange { node: 33 })
    );
    assert_eq!(
        with(30, &[0, 0, 0, 0]),
        Err(NodeInfoError::EmptyQuorateRing)
    );
    // The last quorate ring must be older than the ring.
    assert_eq!(
        with(18, &[1, 2, 3, 4, 5, 6, 7, 9]),
        Err(NodeInfoError::QuorateRingNotOlder)
    );
    // "No quorate ring" is all zero, or it is malformed; quorate needs one.
    assert_eq!(
        with(26, &[0, 0, 0, 0]),
        Err(NodeInfoError::PartialQuorateRing)
    );
    let mut none = good;
    none[18..34].fill(0);
    assert_eq!(
        NodeInfo::from_bytes(&none),
        Err(NodeInfoError::QuorateWithoutQuorateRing)
    );
    // Unsettled memberships: at most UNSETTLED_RINGS_MAX, none empty, unused
    // slots zero, and only from a quorate node.
    assert_eq!(
        with(34, &[UNSETTLED_RINGS_MAX as u8 + 1]),
        Err(NodeInfoError::Unsettled)
    );
    assert_eq!(with(35, &[0, 0, 0, 0]), Err(NodeInfoError::Unsettled));
    assert_eq!(with(43, &[0, 0, 0, 1]), Err(NodeInfoError::Padding));
    let mut not_quorate = sample_infos()[0].to_bytes();
    not_quorate[34] = 1;
    not_quorate[38] = 1;
    assert_eq!(
        NodeInfo::from_bytes(&not_quorate),
        Err(NodeInfoError::Unsettled)
    );
}

#[test]
fn node_info_garbage_never_panics_and_valid_decodings_reencode_identically() {
    // Every single-bit flip of valid encodings, then pseudo-random bytes.
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for info in sample_infos() {
        let b = info.to_bytes();
        for bit in 0..NODE_INFO_BYTES * 8 {
            let mut f = b;
            f[bit / 8] ^= 1 << (bit % 8);
            inputs.push(f.to_vec());
        }
    }
    let mut rng = Lcg::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut b = vec![0u8; NODE_INFO_BYTES];
        for byte in &mut b {
            *byte = rng.below(256) as u8;
        }
        b[0] = 1;
        inputs.push(b);
    }
    // Whatever decodes is handed to a node in that ring: an error or not,
    // never a panic (a panic is for our own bugs).
    let mut q = Quorum::new(&config(3, "wait_for_all = true"), 1).unwrap();
    q.handle_membership(now(), sample_infos()[0].ring, &[1, 2, 3])
        .unwrap();
    let mut valid = 0;
    for b in &inputs {
        if let Ok(info) = NodeInfo::from_bytes(b) {
            valid += 1;
            assert_eq!(info.to_bytes().as_slice(), b.as_slice());
            for from in [2, 3] {
                let mut peer = q.clone();
                let _ = peer.handle_node_info(now(), from, info.clone());
                let _ = peer.status().render_text();
            }
        }
    }
    assert!(valid > 0 && valid < inputs.len());
}
