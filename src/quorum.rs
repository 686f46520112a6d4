//! Quorum: corosync votequorum's rules as a pure state machine (sans-I/O).
//!
//! One [`Quorum`] per node, built from the configuration ([`Quorum::new`]
//! or [`Quorum::from_parts`]) and the local node id. It never reads a clock
//! or touches a socket; the caller drives it:
//!
//! - inputs: [`Quorum::handle_membership`] (a new regular configuration from
//!   totem: ring id and members), [`Quorum::handle_node_info`] (a member's
//!   [`NodeInfo`], delivered by totem in agreed order, our own included) and
//!   [`Quorum::handle_timeout`] (the last_man_standing window);
//! - outputs: [`Quorum::poll_broadcast`] (the [`NodeInfo`] this node must
//!   multicast in the current ring, once per membership),
//!   [`Quorum::poll_timeout`] (when to call `handle_timeout`) and
//!   [`Quorum::poll_event`] ([`QuorumEvent`]: quorum gained or lost, a
//!   membership's agreed outcome, expected votes lowered);
//! - getters: [`Quorum::is_quorate`], [`Quorum::ring`],
//!   [`Quorum::local_node`] and [`Quorum::status`], the data of `hactl
//!   quorum` ([`QuorumStatus`]: [`QuorumStatus::render_text`] in the layout
//!   of `corosync-quorumtool -s`, JSON through serde).
//!
//! Errors: [`QuorumConfigError`] from the constructors, [`QuorumError`] for
//! input refused by `handle_*` (the state machine has already reacted
//! safely; the caller logs it), [`NodeInfoError`] for malformed bytes.
//! A broken invariant is a panic.
//!
//! # How members agree
//!
//! After a membership change every member multicasts its [`NodeInfo`]:
//! votes, expected votes, flags, and the memberships its quorum comes from.
//! Once every member's NodeInfo has arrived ("sync"), each member computes
//! the outcome with one pure function of (configuration, members, their
//! NodeInfos): members of a ring agree whatever their own history and the
//! delivery order. Until then a node keeps quorum only if its quorum
//! survives in the new membership on its own; otherwise it loses quorum at
//! once. Quorum is lost at the membership change and gained after sync.
//!
//! A node's quorum "survives" in a membership if the members present of
//! the last membership it saw settle as quorate would be quorate by
//! themselves (a majority of its expected votes, or its tie-breaker half),
//! and the same for every membership it went through quorate without
//! seeing it settle (others may have settled it), and for every quorate
//! membership a member present settled after it (the cluster moved on
//! there). Members whose quorum survives are the ring's "carriers".
//!
//! # The rules, and the test in `tests/quorum.rs` that proves each one
//!
//! 1. Each node has its configured votes; `total` is the sum over the
//!    members (a member announcing LEAVING is not counted).
//!    — `weighted_votes_count_per_node`, `a_leaving_member_is_not_counted`.
//! 2. Expected votes start at `quorum.expected_votes`, or the sum of all
//!    nodes' votes, and grow to `total` when it exceeds them.
//!    — `configured_expected_votes_above_the_total_raise_quorum`,
//!    `expected_votes_grow_to_the_votes_present`.
//! 3. A ring's expected votes are the highest a carrier announces (a
//!    joining node adopts the running cluster's, which last_man_standing
//!    may have lowered), or a member that settled a quorate membership
//!    newer than every carrier's, otherwise the highest any member
//!    announces. — `a_rejoining_node_adopts_the_lowered_expected_votes`,
//!    `a_stale_claim_does_not_lower_the_expected_votes_of_a_newer_membership`.
//! 4. quorum = ⌊expected / 2⌋ + 1; quorate iff total ≥ quorum. Quorum does
//!    not decrease when nodes are lost: only last_man_standing lowers it.
//!    — `table_three_nodes_plain`, `three_nodes_keep_quorum_with_two_and_lose_it_with_one`,
//!    `table_two_nodes_without_two_node_need_both`,
//!    `table_four_nodes_even_split_without_tie_breaker`.
//! 5. two_node: with at most two members quorum is 1, so each half of a
//!    split stays quorate and fencing decides. — `table_two_node_split_and_restart_with_wait_for_all`.
//! 6. two_node implies wait_for_all unless it is turned off (resolved by the
//!    configuration); without it a lone node is quorate at cold start, and
//!    with it a rebooted node alone never is.
//!    — `two_node_without_wait_for_all_lets_a_lone_node_start_quorate`,
//!    `two_node_restarted_node_is_never_quorate_alone_in_any_sequence`.
//! 7. wait_for_all: a ring without a carrier (a cold start, or members that
//!    all lost quorum) is quorate only once it holds all votes — the
//!    configured expected votes at least. Joining a quorate partition
//!    clears the wait. — `table_wait_for_all_three_nodes`,
//!    `joining_a_quorate_partition_clears_wait_for_all`,
//!    `a_peer_whose_quorum_did_not_survive_does_not_lift_wait_for_all`,
//!    `nodes_cut_off_from_a_shrunken_cluster_wait_for_every_configured_vote`.
//! 8. last_man_standing: every settled membership of a quorate ring that
//!    is missing votes (re)starts a window of `last_man_standing_window`;
//!    when it ends and the ring is still quorate, expected votes drop to the
//!    votes present, never below 2 unless auto_tie_breaker (then 1).
//!    — `table_last_man_standing_shrinks_after_the_window_not_before`,
//!    `last_man_standing_does_not_shrink_before_the_window_ends`,
//!    `last_man_standing_window_restarts_when_another_node_leaves`,
//!    `table_last_man_standing_with_tie_breaker_goes_down_to_one_node`,
//!    `last_man_standing_with_tie_breaker_keeps_only_the_tie_breaker_half`.
//! 9. auto_tie_breaker (lowest | highest | list): with an even number of
//!    expected votes, a ring holding exactly half of them is also quorate if, for a carrier's quorate
//!    membership, (a) its nodes elsewhere hold fewer than quorum votes and
//!    (b) its tie-breaker is here: its lowest id, its highest id, or the
//!    first listed id that was in it. — `table_four_nodes_even_split_with_tie_breaker_lowest`,
//!    `…_highest`, `…_list`, `tie_breaker_list_skips_a_listed_node_that_was_not_in_the_cluster`,
//!    `odd_split_is_never_decided_by_the_tie_breaker`,
//!    `a_stale_tie_breaker_does_not_make_a_half_quorate`.
//! 10. A node keeps quorum through memberships it never saw settle only if
//!     it would keep it in each of them, and at most [`UNSETTLED_RINGS_MAX`]
//!     of them; and a carrier's quorum must survive in every quorate
//!     membership a member present settled after the carrier's own.
//!     — `quorum_must_survive_in_a_membership_that_may_have_settled_elsewhere`,
//!     `a_membership_that_keeps_changing_without_settling_gives_quorum_up`,
//!     `a_claim_superseded_by_a_newer_quorate_membership_does_not_carry_quorum`.
//! 11. Quorum is lost at the membership change, gained only after sync;
//!     events tell it in order. — `quorum_is_lost_at_the_membership_change_and_gained_after_sync`.
//! 12. Safety: two disjoint partitions are never both quorate, except under
//!     two_node. — `no_two_disjoint_partitions_are_quorate_*`: every
//!     sequence of set partitions (synced, or broken off before sync), the
//!     window and crashes, three steps deep for 2–4 nodes and two for 5,
//!     from a cold start and from a running cluster, plus seeded random
//!     walks where rings break mid-sync; for every option combination.
//! 13. Agreement: members of a ring that received every NodeInfo compute the
//!     same outcome, in any delivery order. — checked after every step of
//!     every test; `delivery_order_does_not_change_the_outcome`.
//! 14. Bad input: malformed NodeInfo bytes are refused; a member whose
//!     NodeInfo is invalid, contradicts the configuration or changes within
//!     a ring, or a member that is not configured, makes the ring inquorate
//!     until the next membership. Stale input is ignored. — `node_info_*`,
//!     `a_member_announcing_other_votes_makes_the_ring_inquorate`,
//!     `a_second_different_node_info_in_one_ring_makes_it_inquorate`,
//!     `a_membership_with_an_unconfigured_node_is_inquorate`,
//!     `stale_and_foreign_input_is_refused_without_effect`,
//!     `a_node_missing_from_the_configuration_is_refused`.
//!
//! # Where this differs from corosync, and why
//!
//! corosync decides per node, from each node's own history; here the
//! outcome is a function of what the members exchanged, so they agree, and:
//! - A peer lifts wait_for_all and lends its expected votes only if its
//!   quorum survives here. corosync trusts any peer that was quorate in its
//!   previous membership; a variant of these rules that does so fails the
//!   exhaustive check, e.g. three nodes with auto_tie_breaker and
//!   wait_for_all, {1,2,3} → {1,2}|{3} → {1}|{2,3}: node 1 keeps quorum as
//!   the tie-breaker half of {1,2}, and node 2 lifts node 3's wait, so
//!   {2,3} is a majority too.
//! - The tie-breaker comes only from a carrier's membership, never from
//!   what a node remembers after losing quorum (found by the exhaustive
//!   check: a stale tie-breaker made both halves quorate); a list is read
//!   against that membership only (corosync also takes a listed node that
//!   joined during the split, which lets both halves win).
//! - wait_for_all waits for the configured expected votes at least
//!   (found by the exhaustive check: corosync's current expected votes,
//!   lowered by last_man_standing, let nodes cut off from a shrunken
//!   cluster regain quorum beside it).
//! - Memberships left before they settled keep constraining quorum, rule
//!   10 (found by the exhaustive check with rings breaking mid-sync).
//! - A claim is judged against every newer quorate membership a member
//!   present settled, and such a member's expected votes count (rule 3):
//!   a node cut off for less than totem's detection time never sees its
//!   ring break and brings a stale claim into its next ring (found by the
//!   quorum simulator, seeds 4950 and 50036, with last_man_standing; the
//!   exhaustive check, which now moves nodes unaware, finds it with
//!   auto_tie_breaker too: {1,2,3,4}, then {2,3,4} with node 1 unaware,
//!   then {1,3} | {2,4}).
//! - The last_man_standing window restarts at every settled membership,
//!   not only after losses, so members lower expected votes together; and
//!   wait_for_all status belongs to the ring, not to each node.
//! - No qdevice, allow_downscale, expected_votes_tracking or runtime
//!   changes of votes and expected votes.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{Config, NODE_ID_MAX, NODE_ID_MIN, Node, QuorumSection, TieBreaker};
use crate::time::Instant;
use crate::totem::NodeId;
use crate::totem::wire::{NodeSet, RingId};

// ---------------------------------------------------------------- limits

/// Version of the [`NodeInfo`] byte format.
pub const NODE_INFO_VERSION: u8 = 1;
/// Size of an encoded [`NodeInfo`], in bytes.
pub const NODE_INFO_BYTES: usize = 35 + 4 * UNSETTLED_RINGS_MAX;
/// Memberships a node may pass through while quorate without learning
/// their outcome (their sync broke off) before it gives quorum up: a
/// membership that changes this often without settling is not one to run
/// services in.
pub const UNSETTLED_RINGS_MAX: usize = 4;
/// Votes one node may have (the configuration's `votes` range).
pub const NODE_VOTES_MAX: u32 = 255;
/// Expected votes can never exceed every configurable node with the most
/// votes.
pub const EXPECTED_VOTES_MAX: u32 = NODE_ID_MAX * NODE_VOTES_MAX;
/// last_man_standing never lowers expected votes below this ...
pub const LMS_EXPECTED_VOTES_MIN: u32 = 2;
/// ... unless auto_tie_breaker is on: then a single node may carry on.
pub const LMS_EXPECTED_VOTES_MIN_WITH_TIE_BREAKER: u32 = 1;
/// Events queued at most. One input queues at most three (quorum lost or
/// gained, synced, expected votes lowered): a driver that lets this many
/// pile up does not drain [`Quorum::poll_event`] after each input (a bug).
pub const EVENTS_QUEUED_MAX: usize = 16;

// A NodeSet is a 32-bit mask of node ids 1..=32.
const _: () = assert!(NODE_ID_MIN == 1 && NODE_ID_MAX <= 32);
// Votes and expected votes travel as u16.
const _: () = assert!(EXPECTED_VOTES_MAX <= u16::MAX as u32);

const FLAG_QUORATE: u8 = 1 << 0;
const FLAG_WAIT_FOR_ALL: u8 = 1 << 1;
const FLAG_LEAVING: u8 = 1 << 2;
const FLAGS_KNOWN: u8 = FLAG_QUORATE | FLAG_WAIT_FOR_ALL | FLAG_LEAVING;

fn node_id_in_range(id: u32) -> bool {
    (NODE_ID_MIN..=NODE_ID_MAX).contains(&id)
}

// ---------------------------------------------------------------- NodeInfo

/// A membership in which a node was quorate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorateRing {
    pub ring: RingId,
    pub members: NodeSet,
}

/// What a member multicasts after each membership change: its votes,
/// expected votes, flags, and the memberships its quorum comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The ring this NodeInfo is sent in; NodeInfos of other rings are stale.
    pub ring: RingId,
    pub votes: u32,
    pub expected_votes: u32,
    /// The sender is quorate as the membership changes (QUORATE): its
    /// quorate memberships survive in this one.
    pub quorate: bool,
    /// The sender waits for all nodes (WAIT_FOR_ALL status); never with
    /// `quorate`.
    pub wait_for_all: bool,
    /// The sender is leaving cleanly; its votes no longer count (LEAVING).
    /// This version never sets it, but honours it.
    pub leaving: bool,
    /// The last membership the sender saw settle as quorate (present
    /// whenever `quorate` is set).
    pub last_quorate: Option<QuorateRing>,
    /// Memberships the sender went through since then, quorate, without
    /// seeing them settle: others may have settled them as quorate, so its
    /// quorum must survive in each of them too. Only with `quorate`; at
    /// most [`UNSETTLED_RINGS_MAX`], oldest first.
    pub unsettled: Vec<NodeSet>,
}

/// Why a [`NodeInfo`] is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeInfoError {
    Length {
        bytes: usize,
    },
    Version {
        version: u8,
    },
    UnknownFlags {
        flags: u8,
    },
    RingNodeIdOutOfRange {
        node: u32,
    },
    VotesOutOfRange {
        votes: u32,
    },
    ExpectedVotesOutOfRange {
        expected_votes: u32,
    },
    QuorateAndWaitingForAll,
    QuorateWithoutQuorateRing,
    /// The "no quorate ring" encoding (all zero) is only partly zero.
    PartialQuorateRing,
    EmptyQuorateRing,
    /// The last quorate ring is not older than the ring the NodeInfo is for.
    QuorateRingNotOlder,
    /// Unsettled memberships without `quorate`, too many, or an empty one.
    Unsettled,
    /// Bytes after the unsettled memberships in use are not zero.
    Padding,
}

impl fmt::Display for NodeInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeInfoError::Length { bytes } => {
                write!(f, "{bytes} bytes, a NodeInfo has {NODE_INFO_BYTES}")
            }
            NodeInfoError::Version { version } => write!(
                f,
                "format version {version}, this node speaks {NODE_INFO_VERSION}: run the same hactl version on every node"
            ),
            NodeInfoError::UnknownFlags { flags } => write!(f, "unknown flags {flags:#04x}"),
            NodeInfoError::RingNodeIdOutOfRange { node } => {
                write!(f, "ring representative {node} is not a node id")
            }
            NodeInfoError::VotesOutOfRange { votes } => {
                write!(f, "{votes} votes (at most {NODE_VOTES_MAX})")
            }
            NodeInfoError::ExpectedVotesOutOfRange { expected_votes } => write!(
                f,
                "{expected_votes} expected votes (1 to {EXPECTED_VOTES_MAX})"
            ),
            NodeInfoError::QuorateAndWaitingForAll => {
                f.write_str("quorate and waiting for all nodes at once")
            }
            NodeInfoError::QuorateWithoutQuorateRing => {
                f.write_str("quorate without a quorate membership")
            }
            NodeInfoError::PartialQuorateRing => f.write_str("half-empty quorate membership"),
            NodeInfoError::EmptyQuorateRing => f.write_str("quorate membership without members"),
            NodeInfoError::QuorateRingNotOlder => {
                f.write_str("last quorate membership is not older than the current one")
            }
            NodeInfoError::Unsettled => write!(
                f,
                "unsettled memberships without quorum, more than {UNSETTLED_RINGS_MAX}, or empty"
            ),
            NodeInfoError::Padding => f.write_str("unused bytes are not zero"),
        }
    }
}

impl std::error::Error for NodeInfoError {}

fn put_ring(out: &mut [u8], ring: RingId) {
    out[..8].copy_from_slice(&ring.seq.to_be_bytes());
    out[8..12].copy_from_slice(&ring.rep.to_be_bytes());
}

fn get_ring(b: &[u8]) -> RingId {
    RingId {
        seq: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        rep: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
    }
}

impl NodeInfo {
    /// Checks everything a NodeInfo must satisfy on its own (not against a
    /// configuration or a ring).
    pub fn check(&self) -> Result<(), NodeInfoError> {
        if !node_id_in_range(self.ring.rep) {
            return Err(NodeInfoError::RingNodeIdOutOfRange {
                node: self.ring.rep,
            });
        }
        if self.votes > NODE_VOTES_MAX {
            return Err(NodeInfoError::VotesOutOfRange { votes: self.votes });
        }
        if !(1..=EXPECTED_VOTES_MAX).contains(&self.expected_votes) {
            return Err(NodeInfoError::ExpectedVotesOutOfRange {
                expected_votes: self.expected_votes,
            });
        }
        if self.quorate && self.wait_for_all {
            return Err(NodeInfoError::QuorateAndWaitingForAll);
        }
        match self.last_quorate {
            None if self.quorate => return Err(NodeInfoError::QuorateWithoutQuorateRing),
            None => {}
            Some(q) => {
                if !node_id_in_range(q.ring.rep) {
                    return Err(NodeInfoError::RingNodeIdOutOfRange { node: q.ring.rep });
                }
                if q.members.is_empty() {
                    return Err(NodeInfoError::EmptyQuorateRing);
                }
                if q.ring >= self.ring {
                    return Err(NodeInfoError::QuorateRingNotOlder);
                }
            }
        }
        if (!self.unsettled.is_empty() && !self.quorate)
            || self.unsettled.len() > UNSETTLED_RINGS_MAX
            || self.unsettled.iter().any(|m| m.is_empty())
        {
            return Err(NodeInfoError::Unsettled);
        }
        Ok(())
    }

    /// The byte format, version 1, big-endian like totem's: version u8,
    /// flags u8 (1 QUORATE, 2 WAIT_FOR_ALL, 4 LEAVING), votes u16, expected
    /// votes u16, ring (seq u64, rep u32), last quorate ring (seq u64, rep
    /// u32, members u32 mask; all zero when none), the number of unsettled
    /// memberships u8, then [`UNSETTLED_RINGS_MAX`] member masks u32 (unused
    /// ones zero).
    pub fn to_bytes(&self) -> [u8; NODE_INFO_BYTES] {
        // We only ever build valid NodeInfos: sending an invalid one is a bug.
        if let Err(e) = self.check() {
            panic!("encoding an invalid NodeInfo ({e}): {self:?}");
        }
        let mut out = [0u8; NODE_INFO_BYTES];
        out[0] = NODE_INFO_VERSION;
        out[1] = (if self.quorate { FLAG_QUORATE } else { 0 })
            | (if self.wait_for_all {
                FLAG_WAIT_FOR_ALL
            } else {
                0
            })
            | (if self.leaving { FLAG_LEAVING } else { 0 });
        let votes = u16::try_from(self.votes).expect("checked above");
        let expected = u16::try_from(self.expected_votes).expect("checked above");
        out[2..4].copy_from_slice(&votes.to_be_bytes());
        out[4..6].copy_from_slice(&expected.to_be_bytes());
        put_ring(&mut out[6..18], self.ring);
        if let Some(q) = self.last_quorate {
            put_ring(&mut out[18..30], q.ring);
            out[30..34].copy_from_slice(&q.members.bits().to_be_bytes());
        }
        out[34] = u8::try_from(self.unsettled.len()).expect("checked above");
        for (i, m) in self.unsettled.iter().enumerate() {
            out[35 + 4 * i..39 + 4 * i].copy_from_slice(&m.bits().to_be_bytes());
        }
        out
    }

    /// Decodes and checks a NodeInfo; anything malformed is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<NodeInfo, NodeInfoError> {
        if bytes.len() != NODE_INFO_BYTES {
            return Err(NodeInfoError::Length { bytes: bytes.len() });
        }
        if bytes[0] != NODE_INFO_VERSION {
            return Err(NodeInfoError::Version { version: bytes[0] });
        }
        let flags = bytes[1];
        if flags & !FLAGS_KNOWN != 0 {
            return Err(NodeInfoError::UnknownFlags { flags });
        }
        let q_ring = get_ring(&bytes[18..30]);
        let q_members = u32::from_be_bytes(bytes[30..34].try_into().expect("4 bytes"));
        let last_quorate = if q_ring.rep == 0 {
            if q_ring.seq != 0 || q_members != 0 {
                return Err(NodeInfoError::PartialQuorateRing);
            }
            None
        } else {
            Some(QuorateRing {
                ring: q_ring,
                members: NodeSet::from_bits(q_members),
            })
        };
        let unsettled_count = usize::from(bytes[34]);
        if unsettled_count > UNSETTLED_RINGS_MAX {
            return Err(NodeInfoError::Unsettled);
        }
        let masks: Vec<u32> = bytes[35..]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if masks[unsettled_count..].iter().any(|m| *m != 0) {
            return Err(NodeInfoError::Padding);
        }
        let info = NodeInfo {
            ring: get_ring(&bytes[6..18]),
            votes: u32::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            expected_votes: u32::from(u16::from_be_bytes([bytes[4], bytes[5]])),
            quorate: flags & FLAG_QUORATE != 0,
            wait_for_all: flags & FLAG_WAIT_FOR_ALL != 0,
            leaving: flags & FLAG_LEAVING != 0,
            last_quorate,
            unsettled: masks[..unsettled_count]
                .iter()
                .map(|m| NodeSet::from_bits(*m))
                .collect(),
        };
        info.check()?;
        Ok(info)
    }
}

// ---------------------------------------------------------------- errors

/// A configuration the quorum layer cannot work with. The configuration
/// validator refuses all of these; they reach here only from a hand-built
/// [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumConfigError {
    LocalNodeNotConfigured {
        node: NodeId,
    },
    NodeIdOutOfRange {
        node: u32,
    },
    DuplicateNodeId {
        node: NodeId,
    },
    VotesOutOfRange {
        node: NodeId,
        votes: u32,
    },
    ExpectedVotesOutOfRange {
        expected_votes: u32,
    },
    /// Contradictory settings (issue item 5), with what is wrong.
    Contradiction(&'static str),
}

impl fmt::Display for QuorumConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumConfigError::LocalNodeNotConfigured { node } => write!(
                f,
                "this node's id {node} is not in the configuration: add a [[node]] with id = {node}"
            ),
            QuorumConfigError::NodeIdOutOfRange { node } => {
                write!(f, "node id {node} is outside {NODE_ID_MIN}..={NODE_ID_MAX}")
            }
            QuorumConfigError::DuplicateNodeId { node } => {
                write!(f, "node id {node} is configured twice")
            }
            QuorumConfigError::VotesOutOfRange { node, votes } => {
                write!(
                    f,
                    "node {node} has {votes} votes (at most {NODE_VOTES_MAX})"
                )
            }
            QuorumConfigError::ExpectedVotesOutOfRange { expected_votes } => write!(
                f,
                "expected_votes = {expected_votes} is outside 1..={EXPECTED_VOTES_MAX}"
            ),
            QuorumConfigError::Contradiction(what) => {
                write!(f, "contradictory quorum settings: {what}")
            }
        }
    }
}

impl std::error::Error for QuorumConfigError {}

/// Input the quorum layer refuses. None of these is a bug here: they come
/// from the network or from a peer with another configuration. The caller
/// logs them; the state machine has already reacted (see each variant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumError {
    /// A membership names a node that is not configured. The ring is
    /// installed but inquorate until the next membership.
    UnknownMember { ring: RingId, node: u32 },
    /// A membership whose ring id is not newer than the current one;
    /// ignored.
    StaleMembership { ring: RingId, current: RingId },
    /// A NodeInfo before any membership, or for another ring; ignored.
    OtherRing {
        from: NodeId,
        ring: RingId,
        current: Option<RingId>,
    },
    /// A NodeInfo from a node that is not a member of the current ring;
    /// ignored.
    NotAMember { from: NodeId, ring: RingId },
    /// A member's NodeInfo is malformed; the ring becomes inquorate.
    Invalid { from: NodeId, error: NodeInfoError },
    /// A member's NodeInfo contradicts our configuration (votes, node ids):
    /// the nodes run different configurations. The ring becomes inquorate.
    ConfigMismatch { from: NodeId, what: String },
    /// A member's NodeInfo contradicts itself or the ring; the ring becomes
    /// inquorate.
    Inconsistent { from: NodeId, what: &'static str },
    /// A member sent two different NodeInfos in one ring; the ring becomes
    /// inquorate.
    Conflicting { from: NodeId, ring: RingId },
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumError::UnknownMember { ring, node } => write!(
                f,
                "ring {} has member {node}, which is not in the configuration: quorum is withheld until it leaves; check that every node runs the same configuration",
                ring_text(*ring)
            ),
            QuorumError::StaleMembership { ring, current } => write!(
                f,
                "membership of ring {} ignored: not newer than ring {}",
                ring_text(*ring),
                ring_text(*current)
            ),
            QuorumError::OtherRing {
                from,
                ring,
                current,
            } => write!(
                f,
                "NodeInfo from node {from} for ring {} ignored: the current ring is {}",
                ring_text(*ring),
                current.map_or("none".to_string(), ring_text)
            ),
            QuorumError::NotAMember { from, ring } => write!(
                f,
                "NodeInfo from node {from} ignored: not a member of ring {}",
                ring_text(*ring)
            ),
            QuorumError::Invalid { from, error } => write!(
                f,
                "malformed NodeInfo from node {from} ({error}): quorum is withheld in this ring"
            ),
            QuorumError::ConfigMismatch { from, what } => write!(
                f,
                "node {from} disagrees with this node's configuration ({what}): quorum is withheld in this ring; make the [quorum] and [[node]] sections identical on every node"
            ),
            QuorumError::Inconsistent { from, what } => write!(
                f,
                "inconsistent NodeInfo from node {from} ({what}): quorum is withheld in this ring"
            ),
            QuorumError::Conflicting { from, ring } => write!(
                f,
                "node {from} sent two different NodeInfos in ring {}: quorum is withheld in this ring",
                ring_text(*ring)
            ),
        }
    }
}

impl std::error::Error for QuorumError {}

// ---------------------------------------------------------------- events and status

/// Why this node is not quorate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InquorateReason {
    /// No membership yet.
    NoMembership,
    /// The membership changed; waiting for the NodeInfo of every member.
    Syncing {
        nodes_missing: u32,
    },
    NotEnoughVotes {
        total_votes: u32,
        quorum: u32,
    },
    /// wait_for_all: not every vote has been seen together yet.
    WaitingForAll {
        total_votes: u32,
        expected_votes: u32,
    },
    /// The membership changed more than [`UNSETTLED_RINGS_MAX`] times
    /// without settling.
    Unsettled {
        memberships: u32,
    },
    /// A member is not in the configuration.
    UnknownMember {
        node: u32,
    },
    /// A member's NodeInfo was malformed or contradicts the configuration.
    BadNodeInfo {
        node: NodeId,
    },
}

impl fmt::Display for InquorateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InquorateReason::NoMembership => f.write_str("no membership yet"),
            InquorateReason::Syncing { nodes_missing } => write!(
                f,
                "membership changing: waiting for {nodes_missing} node(s) to report"
            ),
            InquorateReason::NotEnoughVotes {
                total_votes,
                quorum,
            } => write!(f, "{total_votes} vote(s) present, quorum is {quorum}"),
            InquorateReason::WaitingForAll {
                total_votes,
                expected_votes,
            } => write!(
                f,
                "waiting for all nodes: {total_votes} of {expected_votes} votes seen together"
            ),
            InquorateReason::Unsettled { memberships } => write!(
                f,
                "the membership changed {memberships} times without settling"
            ),
            InquorateReason::UnknownMember { node } => {
                write!(f, "member {node} is not in the configuration")
            }
            InquorateReason::BadNodeInfo { node } => write!(
                f,
                "node {node} sent a NodeInfo that contradicts this configuration"
            ),
        }
    }
}

/// What the caller must react to, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumEvent {
    /// This node became quorate (resources may run).
    Gained { ring: RingId },
    /// This node lost quorum (apply `no_quorum_policy` now). Sent at the
    /// membership change itself when the node's quorate lineage does not
    /// survive it, without waiting for sync.
    Lost {
        ring: RingId,
        reason: InquorateReason,
    },
    /// Every member's NodeInfo for `ring` arrived: the outcome every member
    /// of the ring computes alike.
    Synced {
        ring: RingId,
        members: Vec<NodeId>,
        quorate: bool,
    },
    /// last_man_standing lowered expected votes after its window.
    ExpectedVotesLowered {
        ring: RingId,
        expected_votes: u32,
        quorum: u32,
    },
}

/// A flag as `corosync-quorumtool -s` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumFlag {
    Quorate,
    TwoNode,
    WaitForAll,
    LastManStanding,
    AutoTieBreaker,
}

impl QuorumFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            QuorumFlag::Quorate => "Quorate",
            QuorumFlag::TwoNode => "TwoNode",
            QuorumFlag::WaitForAll => "WaitForAll",
            QuorumFlag::LastManStanding => "LastManStanding",
            QuorumFlag::AutoTieBreaker => "AutoTieBreaker",
        }
    }
}

/// One member of the current ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub node_id: NodeId,
    pub name: String,
    pub votes: u32,
    pub local: bool,
}

/// The data of `hactl quorum` (after `corosync-quorumtool -s`). Also what
/// hactld's D-Bus method `Quorum` returns as JSON, which `hactl` reads back
/// (hence `Deserialize`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    #[serde(
        serialize_with = "serialize_ring",
        deserialize_with = "deserialize_ring"
    )]
    pub ring_id: Option<RingId>,
    pub quorate: bool,
    /// Quorate only through auto_tie_breaker (an exact half).
    pub by_tie_breaker: bool,
    /// The membership changed and not every member has reported yet.
    pub syncing: bool,
    pub expected_votes: u32,
    /// The highest expected votes any member announced in this ring.
    pub highest_expected: u32,
    pub total_votes: u32,
    pub quorum: u32,
    pub flags: Vec<QuorumFlag>,
    pub inquorate_reason: Option<InquorateReason>,
    /// When last_man_standing will lower expected votes, in microseconds of
    /// the node's monotonic clock.
    pub last_man_standing_deadline_us: Option<u64>,
    pub members: Vec<MemberStatus>,
}

/// A ring id in JSON: `{"rep": 1, "seq": 8}`.
#[derive(Serialize, Deserialize)]
struct RingJson {
    rep: NodeId,
    seq: u64,
}

fn serialize_ring<S: Serializer>(ring: &Option<RingId>, s: S) -> Result<S::Ok, S::Error> {
    ring.map(|r| RingJson {
        rep: r.rep,
        seq: r.seq,
    })
    .serialize(s)
}

fn deserialize_ring<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RingId>, D::Error> {
    Ok(Option::<RingJson>::deserialize(d)?.map(|r| RingId {
        rep: r.rep,
        seq: r.seq,
    }))
}

/// A ring id as `corosync-quorumtool` shows it: `rep.seq`.
fn ring_text(ring: RingId) -> String {
    format!("{}.{}", ring.rep, ring.seq)
}

impl QuorumStatus {
    /// Text in the layout of `corosync-quorumtool -s`.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let yes_no = |b: bool| if b { "Yes" } else { "No" };
        let _ = writeln!(out, "Quorum information\n------------------");
        let _ = writeln!(out, "Node ID:          {}", self.node_id);
        let _ = writeln!(
            out,
            "Ring ID:          {}",
            self.ring_id.map_or("none".to_string(), ring_text)
        );
        let _ = writeln!(out, "Nodes:            {}", self.members.len());
        let mut quorate = yes_no(self.quorate).to_string();
        if let Some(reason) = &self.inquorate_reason {
            let _ = write!(quorate, " ({reason})");
        } else if self.by_tie_breaker {
            quorate.push_str(" (by auto_tie_breaker)");
        } else if self.syncing {
            quorate.push_str(" (membership changing)");
        }
        let _ = writeln!(out, "Quorate:          {quorate}");
        let _ = writeln!(out, "\nVotequorum information\n----------------------");
        let _ = writeln!(out, "Expected votes:   {}", self.expected_votes);
        let _ = writeln!(out, "Highest expected: {}", self.highest_expected);
        let _ = writeln!(out, "Total votes:      {}", self.total_votes);
        let _ = writeln!(out, "Quorum:           {}", self.quorum);
        let flags: Vec<&str> = self.flags.iter().map(|f| f.as_str()).collect();
        let _ = writeln!(out, "Flags:            {}", flags.join(" "));
        let _ = writeln!(out, "\nMembership information\n----------------------");
        let _ = writeln!(out, "    Nodeid      Votes Name");
        for m in &self.members {
            let local = if m.local { " (local)" } else { "" };
            let _ = writeln!(out, "{:>10} {:>10} {}{local}", m.node_id, m.votes, m.name);
        }
        out
    }

    /// Pretty JSON (`hactl quorum --json`).
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a QuorumStatus always serializes")
    }
}

// ---------------------------------------------------------------- the rules

/// The configuration, as the rules use it.
#[derive(Clone, Debug)]
struct Rules {
    local: NodeId,
    /// Index = node id; 0 for ids not configured.
    votes: [u32; NODE_ID_MAX as usize + 1],
    names: BTreeMap<NodeId, String>,
    configured: NodeSet,
    configured_expected: u32,
    two_node: bool,
    wait_for_all: bool,
    last_man_standing: bool,
    last_man_standing_window: Duration,
    tie_breaker: Option<TieBreaker>,
}

/// A quorate node's claim to carry quorum into a new membership (from its
/// NodeInfo, or our own state).
#[derive(Clone, Debug)]
struct Claim {
    expected: u32,
    last: NodeSet,
    /// The ring of `last` (rule 3: a member that settled a newer one
    /// lends its expected votes).
    last_ring: RingId,
    unsettled: Vec<NodeSet>,
}

impl Claim {
    fn of(info: &NodeInfo) -> Option<Claim> {
        info.quorate.then(|| {
            let last = info.last_quorate.expect("checked: quorate has a ring");
            Claim {
                expected: info.expected_votes,
                last: last.members,
                last_ring: last.ring,
                unsettled: info.unsettled.clone(),
            }
        })
    }
}

/// The outcome of one membership.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decision {
    expected: u32,
    highest_expected: u32,
    total: u32,
    quorum: u32,
    quorate: bool,
    by_tie_breaker: bool,
    reason: Option<InquorateReason>,
}

impl Rules {
    /// A member's NodeInfo against our configuration.
    fn check_info(&self, from: NodeId, info: &NodeInfo) -> Result<(), QuorumError> {
        info.check()
            .map_err(|error| QuorumError::Invalid { from, error })?;
        let configured = self.votes[from as usize];
        if info.votes != configured {
            return Err(QuorumError::ConfigMismatch {
                from,
                what: format!(
                    "it has {} vote(s), our configuration gives it {configured}",
                    info.votes
                ),
            });
        }
        let memberships = info.last_quorate.map(|q| q.members).into_iter();
        for m in memberships.chain(info.unsettled.iter().copied()) {
            if !m.is_subset(self.configured) {
                return Err(QuorumError::ConfigMismatch {
                    from,
                    what: format!("it was quorate with unconfigured nodes {m:?}"),
                });
            }
            if !m.contains(from) {
                return Err(QuorumError::Inconsistent {
                    from,
                    what: "it claims quorum from a membership without it",
                });
            }
        }
        Ok(())
    }

    fn new(q: &QuorumSection, nodes: &[Node], local: NodeId) -> Result<Rules, QuorumConfigError> {
        use QuorumConfigError as E;
        let mut votes = [0u32; NODE_ID_MAX as usize + 1];
        let mut names = BTreeMap::new();
        let mut configured = NodeSet::EMPTY;
        for n in nodes {
            if !node_id_in_range(n.id) {
                return Err(E::NodeIdOutOfRange { node: n.id });
            }
            if configured.contains(n.id) {
                return Err(E::DuplicateNodeId { node: n.id });
            }
            if n.votes > NODE_VOTES_MAX {
                return Err(E::VotesOutOfRange {
                    node: n.id,
                    votes: n.votes,
                });
            }
            configured.insert(n.id);
            votes[n.id as usize] = n.votes;
            names.insert(n.id, n.name.clone());
        }
        if !configured.contains(local) {
            return Err(E::LocalNodeNotConfigured { node: local });
        }
        let total: u32 = votes.iter().sum();
        if total == 0 {
            return Err(E::Contradiction("every node has 0 votes"));
        }
        let configured_expected = q.expected_votes.unwrap_or(total);
        if !(1..=EXPECTED_VOTES_MAX).contains(&configured_expected) {
            return Err(E::ExpectedVotesOutOfRange {
                expected_votes: configured_expected,
            });
        }
        if q.two_node && nodes.len() != 2 {
            return Err(E::Contradiction("two_node needs exactly two nodes"));
        }
        if q.two_node && q.auto_tie_breaker {
            return Err(E::Contradiction(
                "auto_tie_breaker cannot be combined with two_node",
            ));
        }
        if q.last_man_standing && nodes.iter().any(|n| n.votes != 1) {
            return Err(E::Contradiction(
                "last_man_standing needs every node to have 1 vote",
            ));
        }
        if q.auto_tie_breaker && nodes.len() % 2 == 1 && !q.wait_for_all {
            return Err(E::Contradiction(
                "auto_tie_breaker with an odd number of nodes needs wait_for_all",
            ));
        }
        if let TieBreaker::List(ids) = &q.auto_tie_breaker_node
            && q.auto_tie_breaker
            && (ids.is_empty() || ids.iter().any(|id| !configured.contains(*id)))
        {
            return Err(E::Contradiction(
                "auto_tie_breaker_node lists a node that is not configured",
            ));
        }
        Ok(Rules {
            local,
            votes,
            names,
            configured,
            configured_expected,
            two_node: q.two_node,
            wait_for_all: q.wait_for_all,
            last_man_standing: q.last_man_standing,
            last_man_standing_window: Duration::from_millis(q.last_man_standing_window_ms),
            tie_breaker: q.auto_tie_breaker.then(|| q.auto_tie_breaker_node.clone()),
        })
    }

    fn votes_of(&self, set: NodeSet) -> u32 {
        assert!(
            set.is_subset(self.configured),
            "votes of unconfigured nodes {set:?}"
        );
        set.iter().map(|id| self.votes[id as usize]).sum()
    }

    /// Quorum for `expected` votes with `members` nodes present.
    fn quorum_for(&self, expected: u32, members: usize) -> u32 {
        if self.two_node && members <= 2 {
            1
        } else {
            expected / 2 + 1
        }
    }

    /// The tie-breaker node of a quorate membership.
    fn tie_breaker_of(&self, reference: NodeSet) -> Option<NodeId> {
        match self.tie_breaker.as_ref()? {
            TieBreaker::Lowest => reference.lowest(),
            TieBreaker::Highest => reference.iter().last(),
            TieBreaker::List(ids) => ids.iter().copied().find(|id| reference.contains(*id)),
        }
    }

    /// auto_tie_breaker: `present` (holding `total` votes) is quorate as the
    /// half of `reference` (the last quorate membership) that holds its
    /// tie-breaker, if the rest of `reference` cannot be quorate.
    ///
    /// Only an exact half of an even number of expected votes, as
    /// votequorum does. An earlier version also let the tie-breaker's
    /// ⌊expected / 2⌋ side of an odd cluster carry on; the quorum simulator
    /// (tests/quorum_sim.rs, seed 8364 of the long mode) found that unsafe:
    /// in three nodes, {1, 3} quorate, then {1, 2} | {3}: node 1 came from a
    /// quorate membership, so {1, 2} was quorate with 2 of 3 votes, and node
    /// 3 as the tie-breaker's "half" of {1, 3} too.
    fn tie_breaker_holds(
        &self,
        expected: u32,
        quorum: u32,
        total: u32,
        reference: NodeSet,
        present: NodeSet,
    ) -> bool {
        total > 0
            && expected.is_multiple_of(2)
            && total == expected / 2
            && self.votes_of(reference.minus(present)) < quorum
            && self
                .tie_breaker_of(reference)
                .is_some_and(|tb| present.contains(tb))
    }

    /// Whether the part of a quorate membership `lineage` (with `expected`
    /// votes) that is in `present` would stay quorate by itself.
    fn survives(&self, expected: u32, lineage: NodeSet, present: NodeSet) -> (bool, u32, u32) {
        let here = lineage.intersect(present);
        let total = self.votes_of(here);
        let quorum = self.quorum_for(expected, here.len());
        let ok = total > 0
            && (total >= quorum || self.tie_breaker_holds(expected, quorum, total, lineage, here));
        (ok, total, quorum)
    }

    /// The memberships a quorate node's quorum comes from, each with the
    /// expected votes to judge it by: the last one it saw settle, and those
    /// it went through without seeing them settle. Whoever settled one of
    /// those did so with at least our expected votes (we were among its
    /// carriers) and at least the votes of its members.
    fn lineages<'a>(&'a self, claim: &'a Claim) -> impl Iterator<Item = (u32, NodeSet)> + 'a {
        std::iter::once((claim.expected, claim.last)).chain(
            claim
                .unsettled
                .iter()
                .map(|m| (claim.expected.max(self.votes_of(*m)), *m)),
        )
    }

    /// Whether a quorate node's quorum survives in `present`: in every
    /// membership it may come from. Two disjoint partitions cannot both
    /// survive one membership, so they cannot both carry quorum on.
    /// Returns the votes and quorum of the first test that fails.
    fn claim_survives(&self, claim: &Claim, present: NodeSet) -> (bool, u32, u32) {
        let mut last = (false, 0, 0);
        for (expected, lineage) in self.lineages(claim) {
            last = self.survives(expected, lineage, present);
            if !last.0 {
                break;
            }
        }
        last
    }

    /// The outcome of a membership once every member's NodeInfo arrived: a
    /// pure function of the configuration, the members and their NodeInfos.
    fn decide(&self, members: NodeSet, infos: &BTreeMap<NodeId, NodeInfo>) -> Decision {
        assert_eq!(
            infos.len(),
            members.len(),
            "decide needs every member's NodeInfo"
        );
        assert!(infos.keys().all(|id| members.contains(*id)));
        let mut counted = members;
        for (id, info) in infos {
            if info.leaving {
                counted.remove(*id);
            }
        }
        let total = self.votes_of(counted);
        let highest_expected = infos
            .values()
            .map(|i| i.expected_votes)
            .max()
            .expect("a ring has members");
        // Members whose quorate membership survives here ("carriers") carry
        // the running cluster's expected votes (rule 3), lift wait_for_all
        // (rule 7) and are the only source of a tie-breaker (rule 9): a
        // stale membership remembered by a node that has since lost quorum
        // must not make a half quorate while the cluster moved on elsewhere.
        //
        // A claim must also survive in every quorate membership that a
        // member present settled after the claim's own: the cluster moved
        // on there, and its members elsewhere may carry quorum from it.
        // Found by the quorum simulator (tests/quorum_sim.rs, seed 50036 of
        // 100,000): four nodes, {1,2,4} quorate and lowered to 3 expected
        // votes by last_man_standing; node 4 cut off for less than the
        // detection time kept that claim while {1,2,3} settled; then
        // {1,3} | {2,4}: {1,3} carried {1,2,3} on and node 4 {1,2,4}.
        let carriers: Vec<Claim> = infos
            .values()
            .filter_map(Claim::of)
            .filter(|c| {
                self.claim_survives(c, counted).0
                    && infos.values().all(|i| match i.last_quorate {
                        Some(q) if q.ring.seq > c.last_ring.seq => {
                            self.survives(i.expected_votes, q.members, counted).0
                        }
                        _ => true,
                    })
            })
            .collect();
        // A member that settled a quorate membership newer than every
        // carrier's saw the cluster move on from it: the carriers' expected
        // votes may be stale (lowered by last_man_standing before), so its
        // expected votes count too. Raising expected votes is always safe.
        // Found by the quorum simulator (tests/quorum_sim.rs, seed 4950 of
        // the long mode): in five nodes, {3,4,5} quorate and lowered to 3
        // expected votes; node 4 cut off for less than the detection time
        // kept that claim while {1,2,3,5} settled with 4; {1,4,5} then
        // settled on node 4's 3, and {4,5} | {1,2,3} were both quorate.
        let newest_carried = carriers.iter().map(|c| c.last_ring.seq).max();
        let superseding = newest_carried.and_then(|newest| {
            infos
                .values()
                .filter(|i| i.last_quorate.is_some_and(|q| q.ring.seq > newest))
                .map(|i| i.expected_votes)
                .max()
        });
        let carried = carriers.iter().map(|c| c.expected).max().max(superseding);
        let expected = carried.unwrap_or(highest_expected).max(total);
        let quorum = self.quorum_for(expected, counted.len());
        // "All nodes" are at least the configured expected votes: nodes cut
        // off from a cluster that last_man_standing shrank know only its
        // lowered expected votes, and a few of them must not pass for all.
        let wait_for_all_votes = expected.max(self.configured_expected);
        let mut by_tie_breaker = false;
        let reason = if total == 0 {
            Some(InquorateReason::NotEnoughVotes {
                total_votes: total,
                quorum,
            })
        } else if self.wait_for_all && carried.is_none() && total < wait_for_all_votes {
            Some(InquorateReason::WaitingForAll {
                total_votes: total,
                expected_votes: wait_for_all_votes,
            })
        } else if total >= quorum {
            None
        } else if carriers.iter().any(|c| {
            self.lineages(c).all(|(_, lineage)| {
                self.tie_breaker_holds(expected, quorum, total, lineage, counted)
            })
        }) {
            by_tie_breaker = true;
            None
        } else {
            Some(InquorateReason::NotEnoughVotes {
                total_votes: total,
                quorum,
            })
        };
        let d = Decision {
            expected,
            highest_expected,
            total,
            quorum,
            quorate: reason.is_none(),
            by_tie_breaker,
            reason,
        };
        assert!(d.expected >= d.total && d.expected <= EXPECTED_VOTES_MAX);
        assert!(d.quorum >= 1 && d.quorum <= d.expected / 2 + 1);
        assert!(!d.quorate || d.total > 0);
        d
    }
}

// ---------------------------------------------------------------- the state machine

/// Where the current ring stands.
#[derive(Clone, Debug)]
enum Sync {
    /// Waiting for NodeInfos.
    Pending,
    Done(Decision),
}

#[derive(Clone, Debug)]
struct Ring {
    id: RingId,
    members: NodeSet,
    infos: BTreeMap<NodeId, NodeInfo>,
    sync: Sync,
}

impl Ring {
    /// Quorum is withheld for the rest of this ring (an unknown member, a
    /// bad NodeInfo).
    fn withheld(&self) -> bool {
        matches!(
            &self.sync,
            Sync::Done(Decision {
                reason: Some(
                    InquorateReason::BadNodeInfo { .. } | InquorateReason::UnknownMember { .. }
                ),
                ..
            })
        )
    }
}

/// What this node carries from one membership into the next (it goes into
/// its NodeInfo).
#[derive(Clone, Debug)]
struct Lineage {
    expected: u32,
    last_quorate: Option<QuorateRing>,
    /// Memberships left while quorate before they settled (see
    /// [`NodeInfo::unsettled`]); empty unless quorate.
    unsettled: Vec<NodeSet>,
}

/// votequorum for one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct Quorum {
    rules: Rules,
    now_last: Instant,
    ring: Option<Ring>,
    lineage: Lineage,
    quorate: bool,
    last_man_standing_deadline: Option<Instant>,
    broadcast: Option<NodeInfo>,
    events: VecDeque<QuorumEvent>,
}

impl Quorum {
    /// The quorum layer of node `local` for a validated configuration.
    pub fn new(config: &Config, local: NodeId) -> Result<Quorum, QuorumConfigError> {
        Quorum::from_parts(&config.quorum, &config.nodes, local)
    }

    /// The same from the `[quorum]` section and the node list.
    pub fn from_parts(
        quorum: &QuorumSection,
        nodes: &[Node],
        local: NodeId,
    ) -> Result<Quorum, QuorumConfigError> {
        let rules = Rules::new(quorum, nodes, local)?;
        let lineage = Lineage {
            expected: rules.configured_expected,
            last_quorate: None,
            unsettled: Vec::new(),
        };
        Ok(Quorum {
            rules,
            now_last: Instant::ZERO,
            ring: None,
            lineage,
            quorate: false,
            last_man_standing_deadline: None,
            broadcast: None,
            events: VecDeque::new(),
        })
    }

    // ------------------------------------------------------------ getters

    pub fn is_quorate(&self) -> bool {
        self.quorate
    }

    pub fn local_node(&self) -> NodeId {
        self.rules.local
    }

    /// The current ring, once a membership arrived.
    pub fn ring(&self) -> Option<RingId> {
        self.ring.as_ref().map(|r| r.id)
    }

    /// What `hactl quorum` shows.
    pub fn status(&self) -> QuorumStatus {
        let r = &self.rules;
        let mut flags = Vec::new();
        if self.quorate {
            flags.push(QuorumFlag::Quorate);
        }
        if r.two_node {
            flags.push(QuorumFlag::TwoNode);
        }
        if r.wait_for_all {
            flags.push(QuorumFlag::WaitForAll);
        }
        if r.last_man_standing {
            flags.push(QuorumFlag::LastManStanding);
        }
        if r.tie_breaker.is_some() {
            flags.push(QuorumFlag::AutoTieBreaker);
        }
        let members = self
            .ring
            .as_ref()
            .map_or(NodeSet::EMPTY, |ring| ring.members);
        let member_list = members
            .iter()
            .map(|id| MemberStatus {
                node_id: id,
                name: r.names[&id].clone(),
                votes: r.votes[id as usize],
                local: id == r.local,
            })
            .collect();
        let (expected, highest, total, quorum, by_tb, syncing, reason) = match &self.ring {
            None => (
                self.lineage.expected,
                self.lineage.expected,
                0,
                r.quorum_for(self.lineage.expected, 0),
                false,
                false,
                Some(InquorateReason::NoMembership),
            ),
            Some(ring) => match &ring.sync {
                Sync::Done(d) => (
                    d.expected,
                    d.highest_expected,
                    d.total,
                    d.quorum,
                    d.by_tie_breaker,
                    false,
                    d.reason.clone(),
                ),
                Sync::Pending => {
                    let total = r.votes_of(ring.members);
                    let expected = self.lineage.expected.max(total);
                    let highest = ring
                        .infos
                        .values()
                        .map(|i| i.expected_votes)
                        .fold(self.lineage.expected, u32::max);
                    let missing = ring.members.len() - ring.infos.len();
                    let reason = (!self.quorate).then_some(InquorateReason::Syncing {
                        nodes_missing: missing as u32,
                    });
                    (
                        expected,
                        highest,
                        total,
                        r.quorum_for(expected, ring.members.len()),
                        false,
                        true,
                        reason,
                    )
                }
            },
        };
        QuorumStatus {
            node_id: r.local,
            ring_id: self.ring(),
            quorate: self.quorate,
            by_tie_breaker: by_tb && self.quorate,
            syncing,
            expected_votes: expected,
            highest_expected: highest,
            total_votes: total,
            quorum,
            flags,
            inquorate_reason: if self.quorate { None } else { reason },
            last_man_standing_deadline_us: self.poll_timeout().map(Instant::as_micros),
            members: member_list,
        }
    }

    // ------------------------------------------------------------ outputs

    /// The NodeInfo to multicast in the current ring (once per membership).
    pub fn poll_broadcast(&mut self) -> Option<NodeInfo> {
        self.broadcast.take()
    }

    /// When to call [`Quorum::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The window only runs out in a settled ring; during sync the
        // decision at its end applies an expired window at once.
        match self.ring.as_ref()?.sync {
            Sync::Done(_) => self.last_man_standing_deadline,
            Sync::Pending => None,
        }
    }

    pub fn poll_event(&mut self) -> Option<QuorumEvent> {
        self.events.pop_front()
    }

    // ------------------------------------------------------------ inputs

    fn tick(&mut self, now: Instant) {
        assert!(
            now >= self.now_last,
            "time went backwards: {now:?} < {:?}",
            self.now_last
        );
        self.now_last = now;
    }

    fn push_event(&mut self, e: QuorumEvent) {
        assert!(
            self.events.len() < EVENTS_QUEUED_MAX,
            "quorum events not drained: {:?}",
            self.events
        );
        self.events.push_back(e);
    }

    fn set_quorate(&mut self, quorate: bool, ring: RingId, reason: Option<InquorateReason>) {
        if quorate == self.quorate {
            return;
        }
        self.quorate = quorate;
        if quorate {
            self.push_event(QuorumEvent::Gained { ring });
        } else {
            self.last_man_standing_deadline = None;
            let reason = reason.expect("losing quorum has a reason");
            self.push_event(QuorumEvent::Lost { ring, reason });
        }
    }

    /// A new regular configuration from totem: `ring` and its `members` (in
    /// ring order). The local node must be a member.
    pub fn handle_membership(
        &mut self,
        now: Instant,
        ring: RingId,
        members: &[NodeId],
    ) -> Result<(), QuorumError> {
        let result = self.membership(now, ring, members);
        self.check_invariants();
        result
    }

    /// A member's NodeInfo, delivered by totem (agreed order, the sender's
    /// own included).
    pub fn handle_node_info(
        &mut self,
        now: Instant,
        from: NodeId,
        info: NodeInfo,
    ) -> Result<(), QuorumError> {
        let result = self.node_info(now, from, info);
        self.check_invariants();
        result
    }

    /// Time passed: the last_man_standing window may have ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.last_man_standing_expired();
        }
        self.check_invariants();
    }

    // ------------------------------------------------------------ internals

    /// What must hold between inputs.
    fn check_invariants(&self) {
        let l = &self.lineage;
        assert!(
            !self.quorate || l.last_quorate.is_some(),
            "quorate without a quorate ring"
        );
        assert!(
            self.quorate || l.unsettled.is_empty(),
            "unsettled rings without quorum"
        );
        assert!(l.unsettled.len() <= UNSETTLED_RINGS_MAX);
        assert!((1..=EXPECTED_VOTES_MAX).contains(&l.expected));
        if let Some(Ring {
            sync: Sync::Done(d),
            ..
        }) = &self.ring
        {
            assert_eq!(
                self.quorate, d.quorate,
                "quorate differs from the settled outcome"
            );
            assert_eq!(self.lineage.expected, d.expected);
        }
        assert!(
            self.last_man_standing_deadline.is_none()
                || (self.quorate && self.rules.last_man_standing),
            "a last_man_standing window without quorum"
        );
    }

    fn membership(
        &mut self,
        now: Instant,
        ring: RingId,
        members: &[NodeId],
    ) -> Result<(), QuorumError> {
        self.tick(now);
        assert!(
            members.contains(&self.rules.local),
            "membership {members:?} of ring {ring:?} without the local node {}",
            self.rules.local
        );
        if let Some(current) = &self.ring
            && ring <= current.id
        {
            return Err(QuorumError::StaleMembership {
                ring,
                current: current.id,
            });
        }
        let mut set = NodeSet::EMPTY;
        let mut unknown = None;
        for &id in members {
            if !node_id_in_range(id) || !self.rules.configured.contains(id) {
                unknown.get_or_insert(id);
                continue;
            }
            assert!(
                !set.contains(id),
                "node {id} twice in membership {members:?}"
            );
            set.insert(id);
        }
        // A ring we leave quorate before it settled may have settled
        // elsewhere, as quorate: from now on our quorum must survive in it.
        let left_unsettled = self
            .ring
            .as_ref()
            .filter(|r| matches!(r.sync, Sync::Pending))
            .map(|r| r.members);
        self.ring = Some(Ring {
            id: ring,
            members: set,
            infos: BTreeMap::new(),
            sync: Sync::Pending,
        });
        self.broadcast = None;
        if let Some(node) = unknown {
            self.poison(InquorateReason::UnknownMember { node });
            return Err(QuorumError::UnknownMember { ring, node });
        }
        // Until sync, stay quorate only if our quorum survives here.
        if self.quorate {
            if let Some(m) = left_unsettled {
                self.lineage.unsettled.push(m);
            }
            let lost = if self.lineage.unsettled.len() > UNSETTLED_RINGS_MAX {
                Some(InquorateReason::Unsettled {
                    memberships: self.lineage.unsettled.len() as u32,
                })
            } else {
                let last = self.lineage.last_quorate.expect("quorate has a ring");
                let claim = Claim {
                    expected: self.lineage.expected,
                    last: last.members,
                    last_ring: last.ring,
                    unsettled: self.lineage.unsettled.clone(),
                };
                let (ok, total, quorum) = self.rules.claim_survives(&claim, set);
                (!ok).then_some(InquorateReason::NotEnoughVotes {
                    total_votes: total,
                    quorum,
                })
            };
            if lost.is_some() {
                self.set_quorate(false, ring, lost);
            }
        }
        if !self.quorate {
            self.lineage.unsettled.clear();
        }
        let info = NodeInfo {
            ring,
            votes: self.rules.votes[self.rules.local as usize],
            expected_votes: self.lineage.expected,
            quorate: self.quorate,
            wait_for_all: self.rules.wait_for_all && !self.quorate,
            leaving: false,
            last_quorate: self.lineage.last_quorate,
            unsettled: self.lineage.unsettled.clone(),
        };
        assert_eq!(info.check(), Ok(()), "our own NodeInfo");
        self.broadcast = Some(info.clone());
        // Our own NodeInfo counts at once; totem's copy of it is a duplicate.
        self.accept_info(now, self.rules.local, info);
        Ok(())
    }

    fn node_info(&mut self, now: Instant, from: NodeId, info: NodeInfo) -> Result<(), QuorumError> {
        self.tick(now);
        let Some(ring) = &self.ring else {
            return Err(QuorumError::OtherRing {
                from,
                ring: info.ring,
                current: None,
            });
        };
        if info.ring != ring.id {
            return Err(QuorumError::OtherRing {
                from,
                ring: info.ring,
                current: Some(ring.id),
            });
        }
        if !node_id_in_range(from) || !ring.members.contains(from) {
            return Err(QuorumError::NotAMember {
                from,
                ring: ring.id,
            });
        }
        if ring.withheld() {
            // Nothing can lift that for this ring.
            return Ok(());
        }
        let problem = match self.rules.check_info(from, &info) {
            Err(e) => Some(e),
            Ok(()) => match ring.infos.get(&from) {
                Some(known) if *known == info => return Ok(()),
                Some(_) => Some(QuorumError::Conflicting {
                    from,
                    ring: ring.id,
                }),
                None => None,
            },
        };
        if let Some(e) = problem {
            self.poison(InquorateReason::BadNodeInfo { node: from });
            return Err(e);
        }
        self.accept_info(now, from, info);
        Ok(())
    }

    fn accept_info(&mut self, now: Instant, from: NodeId, info: NodeInfo) {
        let ring = self.ring.as_mut().expect("checked by the caller");
        assert!(ring.members.contains(from) && info.ring == ring.id);
        ring.infos.insert(from, info);
        if matches!(ring.sync, Sync::Pending) && ring.infos.len() == ring.members.len() {
            let d = self.rules.decide(ring.members, &ring.infos);
            self.settle(now, d);
        }
    }

    /// The ring cannot be quorate (an unknown member, a bad NodeInfo).
    fn poison(&mut self, reason: InquorateReason) {
        let ring = self.ring.as_ref().expect("a ring to poison");
        let total = self.rules.votes_of(ring.members);
        let expected = self.lineage.expected.max(total);
        let d = Decision {
            expected,
            highest_expected: expected,
            total,
            quorum: self.rules.quorum_for(expected, ring.members.len()),
            quorate: false,
            by_tie_breaker: false,
            reason: Some(reason),
        };
        self.settle(self.now_last, d);
    }

    /// Applies the outcome of the current ring.
    fn settle(&mut self, now: Instant, d: Decision) {
        let ring = self.ring.as_mut().expect("a ring to settle");
        let (id, members) = (ring.id, ring.members);
        ring.sync = Sync::Done(d.clone());
        self.lineage.expected = d.expected;
        self.lineage.unsettled.clear();
        if d.quorate {
            self.lineage.last_quorate = Some(QuorateRing { ring: id, members });
        }
        self.set_quorate(d.quorate, id, d.reason.clone());
        self.push_event(QuorumEvent::Synced {
            ring: id,
            members: members.iter().collect(),
            quorate: d.quorate,
        });
        // last_man_standing: every settled membership of a quorate ring that
        // is missing votes (re)starts the window; anything else stops it.
        // The window depends on the ring, not on this node's history, so
        // members that settle a ring together lower expected votes together.
        let shrinkable = self.rules.last_man_standing
            && d.quorate
            && self.last_man_standing_target(d.total) < d.expected;
        self.last_man_standing_deadline =
            shrinkable.then(|| now + self.rules.last_man_standing_window);
        if self.last_man_standing_deadline.is_some_and(|t| t <= now) {
            self.last_man_standing_expired();
        }
    }

    fn last_man_standing_target(&self, total: u32) -> u32 {
        let floor = if self.rules.tie_breaker.is_some() {
            LMS_EXPECTED_VOTES_MIN_WITH_TIE_BREAKER
        } else {
            LMS_EXPECTED_VOTES_MIN
        };
        total.max(floor)
    }

    fn last_man_standing_expired(&mut self) {
        self.last_man_standing_deadline = None;
        let target = {
            let Some(Ring {
                sync: Sync::Done(d),
                ..
            }) = &self.ring
            else {
                unreachable!("the window only runs out in a settled ring")
            };
            if !d.quorate {
                return;
            }
            self.last_man_standing_target(d.total)
        };
        let ring = self.ring.as_mut().expect("checked above");
        let Sync::Done(d) = &mut ring.sync else {
            unreachable!()
        };
        if target >= d.expected {
            return;
        }
        d.expected = target;
        d.quorum = self.rules.quorum_for(target, ring.members.len());
        d.by_tie_breaker = false;
        // Lowering expected votes to the votes present keeps the ring quorate.
        assert!(d.total >= d.quorum, "last_man_standing lost quorum: {d:?}");
        self.lineage.expected = target;
        let (ring_id, quorum) = (ring.id, d.quorum);
        self.push_event(QuorumEvent::ExpectedVotesLowered {
            ring: ring_id,
            expected_votes: target,
            quorum,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(nodes: u32, tie_breaker: Option<TieBreaker>) -> Rules {
        let q = QuorumSection {
            expected_votes: None,
            two_node: false,
            wait_for_all: true,
            last_man_standing: false,
            last_man_standing_window_ms: 10_000,
            auto_tie_breaker: tie_breaker.is_some(),
            auto_tie_breaker_node: tie_breaker.unwrap_or(TieBreaker::Lowest),
        };
        let nodes: Vec<Node> = (1..=nodes)
            .map(|id| Node {
                name: format!("n{id}"),
                id,
                addresses: vec![],
                votes: 1,
                fence_levels: vec![],
            })
            .collect();
        Rules::new(&q, &nodes, 1).expect("valid")
    }

    fn set(ids: &[NodeId]) -> NodeSet {
        let mut s = NodeSet::EMPTY;
        for id in ids {
            s.insert(*id);
        }
        s
    }

    #[test]
    fn tie_breaker_of_a_membership_is_its_lowest_highest_or_first_listed_id() {
        let m = set(&[2, 3, 4]);
        assert_eq!(
            rules(4, Some(TieBreaker::Lowest)).tie_breaker_of(m),
            Some(2)
        );
        assert_eq!(
            rules(4, Some(TieBreaker::Highest)).tie_breaker_of(m),
            Some(4)
        );
        let list = rules(4, Some(TieBreaker::List(vec![1, 3, 2])));
        assert_eq!(list.tie_breaker_of(m), Some(3));
        assert_eq!(list.tie_breaker_of(set(&[4])), None);
        assert_eq!(rules(4, None).tie_breaker_of(m), None);
    }

    #[test]
    fn a_lineage_survives_with_a_majority_or_the_tie_breaker_half() {
        let r = rules(4, Some(TieBreaker::Lowest));
        let all = set(&[1, 2, 3, 4]);
        assert!(r.survives(4, all, set(&[1, 2, 3])).0);
        assert!(r.survives(4, all, set(&[1, 2])).0);
        assert!(!r.survives(4, all, set(&[3, 4])).0);
        assert!(!r.survives(4, all, set(&[1])).0);
        // Newcomers do not count for the lineage.
        assert!(!r.survives(4, set(&[1, 2, 3]), set(&[1, 4])).0);
    }
}
