//! The safety invariants of totem, checked event by event as the simulator
//! produces them (DESIGN.md: agreed order, no duplicates, membership
//! agreement, extended virtual synchrony). A violation is reported at the
//! step that causes it, with the node and the event.
//!
//! - agreed order: a (ring, seq) is the same message at every node; each
//!   node delivers a ring's messages in increasing order, each message once
//!   (per process: a restarted node starts afresh);
//! - deliveries happen within the node's current configuration;
//! - membership agreement: a ring id means the same members everywhere;
//! - configuration changes: a transitional configuration is a subset of the
//!   old ring containing the node, `left` its complement; a regular one
//!   contains the transitional members, `joined` is the difference;
//! - virtual synchrony: nodes that move together from one ring to the next
//!   delivered the same messages of the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::totem::srp::TotemEvent;
use crate::totem::wire::{NodeSet, RingId};

/// A set of delivered payloads.
type Payloads = BTreeSet<Vec<u8>>;

#[derive(Default)]
struct NodeView {
    seen_payloads: BTreeSet<Vec<u8>>,
    last_seq: BTreeMap<RingId, u32>,
    current: Option<(RingId, NodeSet)>,
    delivered_in: BTreeMap<RingId, BTreeSet<Vec<u8>>>,
    pending_transitional: Option<NodeSet>,
}

/// Checks every node's events as they happen.
#[derive(Default)]
pub struct SafetyChecker {
    by_ring_seq: HashMap<(RingId, u32), Vec<u8>>,
    members_of: HashMap<RingId, NodeSet>,
    /// (from ring, to ring) → the first mover and the from-ring messages it
    /// delivered.
    moves: HashMap<(RingId, RingId), (usize, Payloads)>,
    nodes: Vec<NodeView>,
    /// The layer above sends each payload once (the totem tests make them
    /// unique), so a payload delivered twice is a duplicate. Off for layers
    /// that may send the same bytes twice (quorum's NodeInfo).
    pub unique_payloads: bool,
}

impl SafetyChecker {
    pub fn new(nodes: usize) -> SafetyChecker {
        SafetyChecker {
            nodes: (0..nodes).map(|_| NodeView::default()).collect(),
            unique_payloads: true,
            ..SafetyChecker::default()
        }
    }

    /// The regular configuration node index `i` is in, if it has not yet
    /// seen its transitional configuration.
    pub fn regular_ring(&self, i: usize) -> Option<(RingId, NodeSet)> {
        let v = &self.nodes[i];
        if v.pending_transitional.is_some() {
            return None;
        }
        v.current
    }

    /// Node index `i` restarted: a new process, outside any configuration.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i] = NodeView::default();
    }

    /// Checks one event of node index `i` (node id `i + 1`).
    pub fn observe(&mut self, i: usize, e: &TotemEvent) -> Result<(), String> {
        let node = i + 1;
        let me = node as u32;
        let v = &mut self.nodes[i];
        match e {
            TotemEvent::Deliver {
                ring, seq, payload, ..
            } => {
                match self.by_ring_seq.get(&(*ring, *seq)) {
                    Some(p) if p != payload => {
                        return Err(format!(
                            "agreed order: node {node} delivered {payload:?} as ({ring:?}, {seq}), which is {p:?} elsewhere"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.by_ring_seq.insert((*ring, *seq), payload.clone());
                    }
                }
                if self.unique_payloads && !v.seen_payloads.insert(payload.clone()) {
                    return Err(format!("node {node} delivered {payload:?} twice"));
                }
                let last = v.last_seq.entry(*ring).or_insert(0);
                if *seq <= *last {
                    return Err(format!(
                        "agreed order: node {node} delivered seq {seq} after {last} in {ring:?}"
                    ));
                }
                *last = *seq;
                let Some((cur, _)) = v.current else {
                    return Err(format!(
                        "node {node} delivered a message outside any configuration"
                    ));
                };
                if *ring != cur {
                    return Err(format!(
                        "node {node} delivered a message of {ring:?} in {cur:?}"
                    ));
                }
                v.delivered_in
                    .entry(*ring)
                    .or_default()
                    .insert(payload.clone());
            }
            TotemEvent::Transitional {
                ring,
                members,
                left,
            } => {
                let Some((cur, cur_members)) = v.current else {
                    return Err(format!(
                        "node {node}: a transitional configuration before any regular one"
                    ));
                };
                if *ring != cur {
                    return Err(format!(
                        "node {node}: transitional configuration of {ring:?} while in {cur:?}"
                    ));
                }
                if !members.is_subset(cur_members) || !members.contains(me) {
                    return Err(format!(
                        "node {node}: transitional members {members:?} not within {cur_members:?} or without the node"
                    ));
                }
                if *left != cur_members.minus(*members) {
                    return Err(format!(
                        "node {node}: transitional `left` {left:?} is not the old ring minus the members"
                    ));
                }
                v.pending_transitional = Some(*members);
            }
            TotemEvent::Regular {
                ring,
                members,
                joined,
            } => {
                if let Some(m) = self.members_of.get(ring) {
                    if m != members {
                        return Err(format!(
                            "membership agreement: {ring:?} has members {members:?} at node {node} and {m:?} elsewhere"
                        ));
                    }
                } else {
                    self.members_of.insert(*ring, *members);
                }
                if !members.contains(me) {
                    return Err(format!("node {node} installed {ring:?} without itself"));
                }
                if let Some((old, _)) = v.current {
                    let Some(t) = v.pending_transitional.take() else {
                        return Err(format!(
                            "node {node}: regular configuration without a transitional one"
                        ));
                    };
                    if !t.is_subset(*members) {
                        return Err(format!(
                            "node {node}: transitional members not in the new ring {ring:?}"
                        ));
                    }
                    if *joined != members.minus(t) {
                        return Err(format!(
                            "node {node}: `joined` {joined:?} is not the new ring minus the transitional members"
                        ));
                    }
                    let delivered = v.delivered_in.remove(&old).unwrap_or_default();
                    match self.moves.get(&(old, *ring)) {
                        Some((first, theirs)) if *theirs != delivered => {
                            return Err(format!(
                                "virtual synchrony: nodes {first} and {node} moved from {old:?} to {ring:?} with different messages of the old ring"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.moves.insert((old, *ring), (node, delivered));
                        }
                    }
                }
                v.current = Some((*ring, *members));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u32]) -> NodeSet {
        let mut s = NodeSet::EMPTY;
        ids.iter().for_each(|i| s.insert(*i));
        s
    }

    fn ring(seq: u64) -> RingId {
        RingId { rep: 1, seq }
    }

    fn regular(seq: u64, members: &[u32], joined: &[u32]) -> TotemEvent {
        TotemEvent::Regular {
            ring: ring(seq),
            members: set(members),
            joined: set(joined),
        }
    }

    fn deliver(seq_ring: u64, seq: u32, p: u8) -> TotemEvent {
        TotemEvent::Deliver {
            ring: ring(seq_ring),
            seq,
            sender: 1,
            safe: false,
            payload: vec![p],
        }
    }

    fn transitional(seq: u64, members: &[u32], left: &[u32]) -> TotemEvent {
        TotemEvent::Transitional {
            ring: ring(seq),
            members: set(members),
            left: set(left),
        }
    }

    /// Two nodes in ring 4, each delivering `a` then `b`.
    fn two_in_a_ring() -> SafetyChecker {
        let mut c = SafetyChecker::new(2);
        for i in 0..2 {
            c.observe(i, &regular(4, &[1, 2], &[1, 2])).unwrap();
        }
        c
    }

    #[test]
    fn a_correct_history_passes() {
        let mut c = two_in_a_ring();
        for i in 0..2 {
            c.observe(i, &deliver(4, 1, 10)).unwrap();
            c.observe(i, &deliver(4, 2, 11)).unwrap();
            c.observe(i, &transitional(4, &[1, 2], &[])).unwrap();
            c.observe(i, &regular(8, &[1, 2, 3], &[3])).unwrap();
        }
    }

    #[test]
    fn each_violation_is_named() {
        let mut c = two_in_a_ring();
        c.observe(0, &deliver(4, 1, 10)).unwrap();
        let e = c.observe(1, &deliver(4, 1, 99)).unwrap_err();
        assert!(e.contains("agreed order"), "{e}");

        let mut c = two_in_a_ring();
        c.observe(0, &deliver(4, 1, 10)).unwrap();
        let e = c.observe(0, &deliver(4, 2, 10)).unwrap_err();
        assert!(e.contains("twice"), "{e}");

        let mut c = two_in_a_ring();
        c.observe(0, &deliver(4, 2, 10)).unwrap();
        let e = c.observe(0, &deliver(4, 1, 11)).unwrap_err();
        assert!(e.contains("seq 1 after 2"), "{e}");

        let mut c = SafetyChecker::new(2);
        c.observe(0, &regular(4, &[1, 2], &[1, 2])).unwrap();
        let e = c.observe(1, &regular(4, &[2], &[2])).unwrap_err();
        assert!(e.contains("membership agreement"), "{e}");

        let mut c = two_in_a_ring();
        c.observe(0, &deliver(4, 1, 10)).unwrap();
        for i in 0..2 {
            c.observe(i, &transitional(4, &[1, 2], &[])).unwrap();
        }
        c.observe(0, &regular(8, &[1, 2], &[])).unwrap();
        let e = c.observe(1, &regular(8, &[1, 2], &[])).unwrap_err();
        assert!(e.contains("virtual synchrony"), "{e}");

        let mut c = two_in_a_ring();
        let e = c.observe(0, &regular(8, &[1, 2], &[])).unwrap_err();
        assert!(e.contains("without a transitional"), "{e}");
    }

    #[test]
    fn a_restarted_node_starts_afresh() {
        let mut c = two_in_a_ring();
        c.observe(0, &deliver(4, 1, 10)).unwrap();
        c.restart(0);
        // The new process may deliver the same payload again in a new ring.
        c.observe(0, &regular(12, &[1], &[1])).unwrap();
        c.observe(
            0,
            &TotemEvent::Deliver {
                ring: ring(12),
                seq: 1,
                sender: 1,
                safe: false,
                payload: vec![10],
            },
        )
        .unwrap();
    }
}
