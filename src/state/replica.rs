//! The state service on totem: applies commands in agreed order and, after
//! every ring change, runs the sync that merges the sides' states. Pure:
//! it takes totem's events and hands back payloads to broadcast and events
//! for the controller (`poll_broadcast`, `poll_event`), in the style of the
//! other cores.
//!
//! The sync (docs/state.md, "Sync after a ring change"):
//!
//! 1. On `Transitional`, a node notes its *side*: the members of its old
//!    ring that move on with it. Extended virtual synchrony makes them have
//!    delivered the same messages, so they hold the same state.
//! 2. On `Regular`, every node enters a sync round for the new ring and
//!    broadcasts a [`codec::Sync`] with its side, whether it is fresh, and
//!    its state. A node with no old ring (it just started) is a side of its
//!    own.
//! 3. Commands delivered during the round are held back.
//! 4. When a Sync from every member of the new ring has been delivered for
//!    the round, every node replaces its state by [`merge()`] of the
//!    delivered snapshots and applies the held-back commands in their
//!    order. The snapshots and commands were delivered in agreed order, and
//!    the merge depends on the set of snapshots only (equal snapshots of one
//!    side count once), so every member ends with the same state — whatever
//!    it held before.
//! 5. If the ring changes again before the round completes, a node keeps
//!    the merge of what it received (its own state included if its Sync did
//!    not arrive) plus the held-back commands, and the next round starts;
//!    the next complete round makes every member equal again.

use std::collections::VecDeque;

use super::codec::{self, DecodeError, Message, Reassembler, SERVICE_STATE, Sync};
use super::membership::Summary;
use super::merge::{Side, merge};
use super::*;
use crate::totem::srp::TotemEvent;
use crate::totem::wire::{NodeSet, RingId};

/// Commands held back during a sync round before the round is given up
/// as broken (a bug elsewhere: totem's window limits what a round sees).
pub const HELD_COMMANDS_MAX: usize = 65_536;

/// What the controller should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// A command was applied (in agreed order).
    Applied { origin: NodeId, cmd: Command },
    /// A command was refused; every node refuses it alike.
    Refused {
        origin: NodeId,
        cmd: Command,
        reason: Refused,
    },
    /// The sync of `ring` completed; `notes` are conflicts to log.
    Synced { ring: RingId, notes: Vec<String> },
    /// A node's membership configuration differs from this node's.
    MembershipMismatch { node: NodeId, message: String },
    /// A payload of the state service that could not be read.
    Malformed { sender: NodeId, error: DecodeError },
}

#[derive(Debug)]
struct Round {
    ring: RingId,
    members: NodeSet,
    /// This node's side in the round.
    side: NodeSet,
    got: Vec<Sync>,
    /// Members whose Sync was delivered.
    covered: NodeSet,
    held: Vec<(NodeId, WallMs, Command)>,
}

/// One node's replica of the state and its sync machine.
#[derive(Debug)]
pub struct Replica {
    me: NodeId,
    state: ClusterState,
    /// Not yet applied a command nor completed a sync with other nodes
    /// since start: the state is what the disk held.
    fresh: bool,
    side: NodeSet,
    /// The members of the last round this node completed (itself alone
    /// after an abandoned one): the nodes known to hold the same state.
    synced_with: NodeSet,
    round: Option<Round>,
    reasm: Reassembler,
    membership: Option<Summary>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ReplicaEvent>,
    dirty: bool,
}

impl Replica {
    /// A replica starting from `state` (from disk, or empty). With a
    /// `membership` summary, the node announces it in every new ring and
    /// checks the others'.
    pub fn new(me: NodeId, state: ClusterState, membership: Option<Summary>) -> Replica {
        Replica {
            me,
            state,
            fresh: true,
            side: NodeSet::single(me),
            synced_with: NodeSet::single(me),
            round: None,
            reasm: Reassembler::default(),
            membership,
            out: VecDeque::new(),
            events: VecDeque::new(),
            dirty: false,
        }
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The round under way: its ring, members, and the members whose Sync
    /// has been delivered (for status and diagnostics).
    pub fn sync_progress(&self) -> Option<(RingId, NodeSet, NodeSet)> {
        self.round.as_ref().map(|r| (r.ring, r.members, r.covered))
    }

    /// Whether a sync round is under way (the state is then frozen).
    pub fn is_syncing(&self) -> bool {
        self.round.is_some()
    }

    /// Broadcasts a command stamped with this node's wall clock. It takes
    /// effect when totem delivers it, on every node alike.
    pub fn submit(&mut self, cmd: Command, now: WallMs) {
        self.out
            .extend(codec::to_payloads(&Message::Command { at: now, cmd }));
    }

    /// The next payload to hand to totem's `broadcast`.
    pub fn poll_broadcast(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ReplicaEvent> {
        self.events.pop_front()
    }

    /// True once after every change of the state: time to persist it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn handle_event(&mut self, event: &TotemEvent) {
        match event {
            TotemEvent::Transitional { members, .. } => {
                if self.round.is_some() {
                    self.abandon_round();
                }
                // Those that move on with this node hold its state only if
                // it completed a round with them: after an abandoned round
                // this node stands alone for its state (found by
                // tests/cluster_sim.rs, long seed 2449: a restarted node
                // whose round with node 2 was abandoned claimed node 2 in
                // its side, and its stale record of node 2 won the merge).
                self.side = members.intersect(self.synced_with);
            }
            TotemEvent::Regular { ring, members, .. } => {
                if self.round.is_some() {
                    self.abandon_round();
                }
                self.reasm.reset();
                let side = self.side.intersect(*members);
                let side = if side.contains(self.me) {
                    side
                } else {
                    NodeSet::single(self.me)
                };
                self.round = Some(Round {
                    ring: *ring,
                    members: *members,
                    side,
                    got: Vec::new(),
                    covered: NodeSet::EMPTY,
                    held: Vec::new(),
                });
                // Every member sends its snapshot, not only one per side:
                // members of a side normally hold equal states (and equal
                // snapshots merge to the same result), but a round must not
                // depend on every member agreeing on who its side is (a
                // node that restarted quickly may be counted in its old
                // ring's side by the others).
                let sync = Sync {
                    ring: *ring,
                    side,
                    fresh: self.fresh,
                    state: self.state.clone(),
                };
                self.out.extend(codec::to_payloads(&Message::Sync(sync)));
                if let Some(m) = &self.membership {
                    self.out.extend(codec::to_payloads(&Message::Membership {
                        canonical: m.canonical.clone(),
                    }));
                }
                // From now on the side is this ring's members (until the
                // next Transitional says who moves on).
                self.side = *members;
            }
            TotemEvent::Deliver {
                sender, payload, ..
            } => {
                if payload.first() != Some(&SERVICE_STATE) {
                    return;
                }
                match self.reasm.push(*sender, payload) {
                    Ok(None) => {}
                    Ok(Some(m)) => self.handle_message(*sender, m),
                    Err(error) => self.events.push_back(ReplicaEvent::Malformed {
                        sender: *sender,
                        error,
                    }),
                }
            }
        }
    }

    fn handle_message(&mut self, sender: NodeId, m: Message) {
        match m {
            Message::Command { at, cmd } => match self.round.as_mut() {
                Some(r) => {
                    if r.held.len() >= HELD_COMMANDS_MAX {
                        panic!(
                            "{} commands held back during one sync round: the round cannot complete",
                            r.held.len()
                        );
                    }
                    r.held.push((sender, at, cmd));
                }
                None => self.apply(sender, cmd, at),
            },
            Message::Sync(s) => {
                let Some(r) = self.round.as_mut() else {
                    return;
                };
                if s.ring != r.ring {
                    // Sent for an earlier ring, delivered late: obsolete.
                    return;
                }
                if r.members.contains(sender) {
                    r.covered.insert(sender);
                }
                r.got.push(s);
                if r.members.is_subset(r.covered) {
                    self.complete_round();
                }
            }
            Message::Membership { canonical } => {
                if sender == self.me {
                    return;
                }
                if let Some(mine) = &self.membership {
                    let there = Summary { canonical };
                    if mine.digest() != there.digest() {
                        let diffs = mine.differences(&there).unwrap_or_else(|e| vec![e]);
                        self.events.push_back(ReplicaEvent::MembershipMismatch {
                            node: sender,
                            message: format!(
                                "node {sender}'s membership configuration differs: {}",
                                diffs.join("; ")
                            ),
                        });
                    }
                }
            }
        }
    }

    fn apply(&mut self, origin: NodeId, cmd: Command, at: WallMs) {
        match self.state.apply(origin, &cmd, at) {
            Ok(()) => {
                self.fresh = false;
                self.dirty = true;
                self.events.push_back(ReplicaEvent::Applied { origin, cmd });
            }
            Err(reason) => self.events.push_back(ReplicaEvent::Refused {
                origin,
                cmd,
                reason,
            }),
        }
    }

    fn complete_round(&mut self) {
        let r = self.round.take().expect("a round");
        let sides: Vec<Side> = r
            .got
            .iter()
            .map(|s| Side {
                members: s.side,
                fresh: s.fresh,
                state: &s.state,
            })
            .collect();
        let merged = merge(&sides);
        self.state = merged.state;
        self.dirty = true;
        self.synced_with = r.members;
        if r.members.len() > 1 {
            self.fresh = false;
        }
        self.events.push_back(ReplicaEvent::Synced {
            ring: r.ring,
            notes: merged.notes,
        });
        for (origin, at, cmd) in r.held {
            self.apply(origin, cmd, at);
        }
    }

    /// The ring changed before the round completed: keep the merge of what
    /// arrived (this node's state standing for its side when the side's
    /// Sync did not) and apply what was held back.
    fn abandon_round(&mut self) {
        let r = self.round.take().expect("a round");
        let own = r.side;
        let mut sides: Vec<Side> = r
            .got
            .iter()
            .map(|s| Side {
                members: s.side,
                fresh: s.fresh,
                state: &s.state,
            })
            .collect();
        let own_state = self.state.clone();
        if !r.covered.contains(self.me) {
            sides.push(Side {
                members: own,
                fresh: self.fresh,
                state: &own_state,
            });
        }
        let merged = merge(&sides);
        self.state = merged.state;
        self.dirty = true;
        self.synced_with = NodeSet::single(self.me);
        for (origin, at, cmd) in r.held {
            self.apply(origin, cmd, at);
        }
    }
}
