//! The single-ring protocol (SRP) as a pure state machine: ordering and
//! membership, after Amir et al., "The Totem single-ring ordering and
//! membership protocol" (1995), with corosync's practical choices where
//! they matter (see shared/research/totem-votequorum.md).
//!
//! Ordering: a token passed around the ring in node-id order carries the
//! sequence number, all-received-up-to (aru), the retransmit list and the
//! flow-control counters; multicast messages are delivered in agreed order,
//! each exactly once; lost messages are re-sent on request.
//!
//! Membership: token loss, a join from outside the ring, or a message of a
//! foreign ring starts a *gather* round (join messages with the sets of
//! nodes believed alive and failed) until every live node proposes the
//! same sets (consensus); the lowest id then sends a *commit token* around
//! the new ring twice; during *recovery* the survivors of each old ring
//! re-send old-ring messages some of them lack, so that they all deliver
//! the same old-ring messages; then each node delivers, in order, the rest
//! of its old ring's messages, a *transitional* configuration (who moved
//! with it), and the *regular* configuration of the new ring (extended
//! virtual synchrony).
//!
//! Surface (quinn-proto style): [`Srp::broadcast`] for what the layer above
//! sends; `handle_message` / `handle_timeout` for what arrives; and
//! `poll_transmit` / `poll_timeout` / `poll_event` for what the driver must
//! do. `now` is always an argument; nothing here reads a clock or a socket.
//!
//! Token hold (corosync's `hold`): on an idle ring the representative keeps
//! the token for up to `hold` before passing it on, so an idle ring costs a
//! few datagrams per `hold` instead of a token circulating without pause. A
//! member that gets a message to send multicasts a hold cancel and the
//! representative passes the token on at once (see [`Srp::broadcast`]).
//!
//! Deliberate simplifications (documented in docs/totem.md): only agreed
//! delivery (as corosync); the representative sends merge-detect messages
//! at every `merge` interval.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::NodeId;
use super::wire::{
    APP_PAYLOAD_BYTES_MAX, CommitEntry, CommitToken, Join, Mcast, Message, NodeSet,
    RTR_ENTRIES_MAX, RingId, Token,
};
use crate::config::{HOLD_MAX_PERCENT_OF_RETRANSMIT, TotemSection};
use crate::time::Instant;

/// Messages waiting for the token before `broadcast` pushes back.
pub const PENDING_MESSAGES_MAX: usize = 1_024;
/// Messages held for retransmission (between the ring's aru and its seq).
/// A sender never runs further ahead than this of the slowest member.
pub const STORE_MESSAGES_MAX: u32 = 16_384;
/// Token visits a gap must persist before it is requested: multicast may
/// lag the unicast token a little, so an immediate request would mostly
/// duplicate traffic (corosync's miss_count_const is 5).
pub const MISS_VISITS_BEFORE_RTR: u32 = 2;
/// Consecutive own token visits with the retransmit flag clear after which
/// recovery is known to be complete (see `Recovery`).
const CLEAR_VISITS_TO_INSTALL: u32 = 2;
/// Ring sequence numbers grow by this per new ring (corosync's step).
const RING_SEQ_STEP: u64 = 4;

/// The protocol's timing and flow-control parameters.
#[derive(Clone, Debug)]
pub struct SrpConfig {
    /// No token for this long: the token is lost.
    pub token: Duration,
    /// Re-send the token we passed on if it has not come back this soon.
    pub token_retransmit: Duration,
    /// The representative of an idle ring keeps the token this long before
    /// passing it on (zero: never). [`Srp::new`] clamps it to
    /// [`HOLD_MAX_PERCENT_OF_RETRANSMIT`] % of `token_retransmit`.
    pub hold: Duration,
    /// Token visits in a row without new messages before the token is held.
    pub seqno_unchanged_const: u32,
    /// Re-send our join this often while gathering.
    pub join: Duration,
    /// Give up waiting for silent nodes' joins after this long.
    pub consensus: Duration,
    /// The representative announces its ring this often (finds partitions
    /// to merge).
    pub merge: Duration,
    pub max_messages: u32,
    pub window_size: u32,
    /// Every configured node (joins go to all of them).
    pub nodes: NodeSet,
}

impl SrpConfig {
    /// From the configuration (corosync's formulas: token in effect for the
    /// node count; retransmit = token / (retransmits_before_loss + 0.2)).
    pub fn from_config(totem: &TotemSection, nodes: NodeSet) -> SrpConfig {
        let t = &totem.timers;
        SrpConfig {
            token: Duration::from_millis(t.effective_token_ms(nodes.len())),
            token_retransmit: Duration::from_millis(t.token_retransmit_ms(nodes.len())),
            hold: Duration::from_millis(t.effective_hold_ms(nodes.len())),
            seqno_unchanged_const: t.seqno_unchanged_const,
            join: Duration::from_millis(t.join_ms),
            consensus: Duration::from_millis(t.consensus_ms),
            merge: Duration::from_millis(t.merge_ms),
            max_messages: t.max_messages,
            window_size: t.window_size,
            nodes,
        }
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Every other configured node (multicast, or one unicast each).
    All,
    Node(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: Dest,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TotemEvent {
    /// A message in agreed order: the members of a configuration deliver
    /// the same messages in the same order.
    Deliver {
        ring: RingId,
        seq: u32,
        sender: NodeId,
        /// Sent with safe delivery ([`Srp::broadcast_safe`]).
        safe: bool,
        payload: Vec<u8>,
    },
    /// The members of `ring` (the old ring) that move on together with
    /// this node; `left` are the others. Messages delivered after this and
    /// before the next `Regular` belong to the old ring and came from these
    /// members.
    Transitional {
        ring: RingId,
        members: NodeSet,
        left: NodeSet,
    },
    /// A new ring is installed.
    Regular {
        ring: RingId,
        members: NodeSet,
        joined: NodeSet,
    },
}

/// `broadcast` refused: too many messages are waiting for the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backpressure;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Gather,
    Commit,
    Recovery,
    Operational,
}

/// The messages of one ring as this node holds them.
#[derive(Clone, Debug, Default)]
struct RingLog {
    ring: RingId,
    members: NodeSet,
    /// Received or sent messages not yet freed.
    store: BTreeMap<u32, Mcast>,
    /// Every message ≤ my_aru is in the store or was delivered and freed.
    my_aru: u32,
    /// Highest sequence number seen on this ring.
    high_seq: u32,
    delivered: u32,
    /// Every member is known to have every message up to here (the token's
    /// aru on two visits in a row): safe messages up to here may be
    /// delivered.
    stable: u32,
}

impl RingLog {
    fn new(ring: RingId, members: NodeSet) -> RingLog {
        RingLog {
            ring,
            members,
            ..RingLog::default()
        }
    }

    /// Stores a message of this ring; false if it was known already.
    fn insert(&mut self, m: Mcast) -> bool {
        if m.seq <= self.my_aru
            || self.store.contains_key(&m.seq)
            || m.seq - self.my_aru > STORE_MESSAGES_MAX
        {
            return false;
        }
        self.high_seq = self.high_seq.max(m.seq);
        self.store.insert(m.seq, m);
        while self.store.contains_key(&(self.my_aru + 1)) {
            self.my_aru += 1;
        }
        true
    }
}

/// What the recovery of one new ring needs.
#[derive(Clone, Debug)]
struct RecoveryPlan {
    /// Members of the new ring that come from my old ring.
    transitional: NodeSet,
    /// Old-ring messages to re-send inside new-ring messages.
    to_resend: VecDeque<Mcast>,
    /// I set the token's retransmit flag and must clear it.
    set_retrans: bool,
    /// Own visits in a row that found the flag clear, and the token's seq
    /// at the first of them: every recovery message has a seq ≤ it.
    clear_visits: u32,
    install_seq: u32,
}

pub struct Srp {
    me: NodeId,
    cfg: SrpConfig,
    state: State,
    /// The installed ring (the old ring while gathering/committing/recovering).
    old: RingLog,
    /// The ring being formed (commit, recovery).
    new: Option<RingLog>,
    recovery: Option<RecoveryPlan>,
    /// Highest ring sequence number seen anywhere.
    ring_seq_max: u64,
    /// False until the first ring is installed: the "old ring" before it is
    /// a placeholder with nothing to deliver.
    installed_before: bool,
    // Gather.
    proc_set: NodeSet,
    fail_set: NodeSet,
    consensus: NodeSet,
    join_at: Option<Instant>,
    consensus_at: Option<Instant>,
    // Token (ordering) state of the ring that carries the token now.
    last_token_seq: u64,
    /// The token or commit token as last passed on, for retransmission.
    last_sent: Option<(NodeId, Message)>,
    token_loss_at: Option<Instant>,
    token_retransmit_at: Option<Instant>,
    merge_at: Option<Instant>,
    prev_token_aru: u32,
    my_last_sent: u32,
    my_last_backlog: u32,
    missing_visits: BTreeMap<u32, u32>,
    // Token hold.
    /// The token's seq at my previous visit, and how many of my visits in
    /// a row found it unchanged with everything received by everyone.
    last_visit_seq: Option<u32>,
    quiet_visits: u32,
    /// The token I hold (representative of an idle ring), not yet
    /// processed, when it came, and when to pass it on at the latest.
    held: Option<(Token, Instant)>,
    hold_until: Option<Instant>,
    /// A hold cancel went out since my last token visit.
    hold_cancel_sent: bool,
    /// Messages waiting for the token, with their safe-delivery flag.
    pending: VecDeque<(Vec<u8>, bool)>,
    out: VecDeque<Transmit>,
    events: VecDeque<TotemEvent>,
}

impl Srp {
    /// A node starting up for the first time (nothing persisted): see
    /// [`Srp::restart`].
    pub fn new(me: NodeId, cfg: SrpConfig, incarnation: u64, now: Instant) -> Srp {
        Srp::restart(me, cfg, incarnation, 0, now)
    }

    /// A node starting up: it gathers a membership with whoever answers.
    /// `incarnation` (strictly larger on every start, see
    /// [`super::incarnation`]) and `ring_seq_seen` (the highest ring
    /// sequence number the node saw before it stopped,
    /// [`Srp::ring_seq_seen`], persisted by the caller) seed the ring
    /// sequence numbers: every ring this node forms or joins is numbered
    /// above both, so a restarted node can never re-create a ring id it (or
    /// a peer, with other members) used before. The incarnation alone is not
    /// enough: a peer with a larger incarnation pushes ring numbers beyond
    /// it.
    pub fn restart(
        me: NodeId,
        mut cfg: SrpConfig,
        incarnation: u64,
        ring_seq_seen: u64,
        now: Instant,
    ) -> Srp {
        assert!(
            cfg.nodes.contains(me),
            "a node is one of the configured nodes"
        );
        // A held token must come back to everyone well before anyone
        // re-sends it (see HOLD_MAX_PERCENT_OF_RETRANSMIT).
        cfg.hold = cfg
            .hold
            .min(cfg.token_retransmit * HOLD_MAX_PERCENT_OF_RETRANSMIT as u32 / 100);
        // Also the id of the placeholder ring of one the node starts in:
        // above everything seen, so it cannot be taken for a real ring.
        let ring_seq_max = incarnation
            .saturating_mul(1 << 16)
            .max(ring_seq_seen.saturating_add(1));
        let mut s = Srp {
            me,
            cfg,
            state: State::Gather,
            old: RingLog::new(
                RingId {
                    seq: ring_seq_max,
                    rep: me,
                },
                NodeSet::single(me),
            ),
            new: None,
            recovery: None,
            ring_seq_max,
            installed_before: false,
            proc_set: NodeSet::single(me),
            fail_set: NodeSet::EMPTY,
            consensus: NodeSet::single(me),
            join_at: None,
            consensus_at: None,
            last_token_seq: 0,
            last_sent: None,
            token_loss_at: None,
            token_retransmit_at: None,
            merge_at: None,
            prev_token_aru: 0,
            my_last_sent: 0,
            my_last_backlog: 0,
            missing_visits: BTreeMap::new(),
            last_visit_seq: None,
            quiet_visits: 0,
            held: None,
            hold_until: None,
            hold_cancel_sent: false,
            pending: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        s.enter_gather(now);
        s
    }

    // ------------------------------------------------------------ getters

    pub fn state(&self) -> State {
        self.state
    }

    /// The installed ring and its members.
    pub fn ring(&self) -> (RingId, NodeSet) {
        (self.old.ring, self.old.members)
    }

    pub fn is_operational(&self) -> bool {
        self.state == State::Operational
    }

    /// The highest ring sequence number this node has seen (formed, joined,
    /// or heard of): what [`Srp::restart`] needs after a restart. Persist
    /// it whenever a regular configuration is installed.
    pub fn ring_seq_seen(&self) -> u64 {
        self.ring_seq_max
    }

    /// Whether this node has received message `seq` of `ring` (for the
    /// simulator's safe-delivery check): only answered for the installed
    /// ring; `None` for any other.
    pub fn holds(&self, ring: RingId, seq: u32) -> Option<bool> {
        (self.old.ring == ring).then(|| seq <= self.old.my_aru || self.old.store.contains_key(&seq))
    }

    /// The hold in effect (after clamping).
    pub fn hold(&self) -> Duration {
        self.cfg.hold
    }

    /// Whether this node holds the token of an idle ring now.
    pub fn is_holding_token(&self) -> bool {
        self.held.is_some()
    }

    // ------------------------------------------------------------ the layer above

    /// Queues a message for agreed-order delivery to every member.
    pub fn broadcast(&mut self, now: Instant, payload: Vec<u8>) -> Result<(), Backpressure> {
        self.broadcast_with(now, payload, false)
    }

    /// Queues a message for safe delivery: in agreed order, and only once
    /// every member of the ring has it (messages after it wait behind it).
    /// If the ring changes first, it is delivered in the transitional
    /// configuration, whose members all have it.
    pub fn broadcast_safe(&mut self, now: Instant, payload: Vec<u8>) -> Result<(), Backpressure> {
        self.broadcast_with(now, payload, true)
    }

    fn broadcast_with(
        &mut self,
        now: Instant,
        payload: Vec<u8>,
        safe: bool,
    ) -> Result<(), Backpressure> {
        assert!(
            payload.len() <= APP_PAYLOAD_BYTES_MAX,
            "the layer above splits large messages"
        );
        if self.pending.len() >= PENDING_MESSAGES_MAX {
            return Err(Backpressure);
        }
        let first_waiting = self.pending.is_empty();
        self.pending.push_back((payload, safe));
        if self.state == State::Operational && self.old.members.len() == 1 {
            // A ring of one holds its own token: visit it now.
            if let Some((_, Message::Token(t))) = self.last_sent.clone() {
                self.process_token(now, t);
            }
        } else if self.held.is_some() {
            // I hold the idle ring's token: send now.
            self.release_hold(now);
        } else if first_waiting && self.may_be_held_elsewhere() {
            // The representative may be holding the token: ask it to pass
            // it on now rather than after the hold (once per visit: the
            // token brings everything waiting anyway).
            self.hold_cancel_sent = true;
            self.out.push_back(Transmit {
                dest: Dest::All,
                message: Message::HoldCancel {
                    ring: self.old.ring,
                    sender: self.me,
                },
            });
        }
        Ok(())
    }

    /// Whether the representative may hold the token now, as far as this
    /// member can tell from its last token visit: the ring was idle for
    /// nearly as long as the representative waits before holding (all it
    /// needs one visit more to see).
    fn may_be_held_elsewhere(&self) -> bool {
        self.state == State::Operational && !self.hold_cancel_sent && self.may_have_been_held()
    }

    /// Passes on the token I hold: it is processed now, so whatever I have
    /// to send goes with it.
    ///
    /// The hold moves no timer: the token's retransmission and loss timers
    /// run from its arrival, as if it had been passed on then. So a token
    /// lost after a hold is re-sent on the same schedule as without one,
    /// and a crash is noticed as soon (the hold spends none of the other
    /// members' token timeout that the retransmissions need).
    fn release_hold(&mut self, now: Instant) {
        self.hold_until = None;
        let Some((t, arrived)) = self.held.take() else {
            return;
        };
        self.process_token(now, t);
        if self.token_retransmit_at.is_some() {
            self.token_retransmit_at = Some(arrived + self.cfg.token_retransmit);
        }
        if self.token_loss_at.is_some() {
            self.token_loss_at = Some(arrived + self.cfg.token);
        }
    }

    // ------------------------------------------------------------ inputs

    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        match msg {
            Message::Token(t) => self.on_token(now, t),
            Message::Mcast(m) => self.on_mcast(now, m),
            Message::Join(j) => self.on_join(now, j),
            Message::Commit(c) => self.on_commit(now, c),
            Message::MergeDetect { ring, sender } => {
                if self.state == State::Operational
                    && ring != self.old.ring
                    && !self.old.members.contains(sender)
                {
                    self.proc_set = self.proc_set.union(NodeSet::single(sender));
                    self.enter_gather(now);
                }
            }
            Message::HoldCancel { ring, sender } => {
                if self.state == State::Operational && ring == self.old.ring && sender != self.me {
                    // Someone has messages: the ring is not idle any more.
                    // A cancel that arrives before I hold keeps me from
                    // holding at my next visit.
                    self.quiet_visits = 0;
                    self.release_hold(now);
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if due(self.token_loss_at) {
            self.token_loss_at = None;
            // The ring (or the ring being formed) is gone: gather with the
            // members we had; silent ones fail at the consensus timeout.
            self.proc_set = self
                .old
                .members
                .union(self.new.as_ref().map_or(NodeSet::EMPTY, |n| n.members));
            self.enter_gather(now);
            return;
        }
        if due(self.hold_until) {
            self.release_hold(now);
        }
        if due(self.token_retransmit_at) {
            if let Some((to, m)) = self.last_sent.clone() {
                self.out.push_back(Transmit {
                    dest: Dest::Node(to),
                    message: m,
                });
            }
            self.token_retransmit_at = Some(now + self.cfg.token_retransmit);
        }
        if due(self.join_at) {
            self.send_join();
            self.join_at = Some(now + self.cfg.join);
        }
        if due(self.consensus_at) {
            // Nodes that never agreed are failed; try again without them.
            let silent = self.proc_set.minus(self.fail_set).minus(self.consensus);
            self.fail_set = self.fail_set.union(silent);
            self.consensus_at = None;
            self.enter_gather(now);
        }
        if due(self.merge_at) {
            if self.state == State::Operational && self.old.ring.rep == self.me {
                self.out.push_back(Transmit {
                    dest: Dest::All,
                    message: Message::MergeDetect {
                        ring: self.old.ring,
                        sender: self.me,
                    },
                });
            }
            self.merge_at = Some(now + self.cfg.merge);
        }
    }

    // ------------------------------------------------------------ outputs

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TotemEvent> {
        self.events.pop_front()
    }

    /// Whether events wait to be polled (a ring of one delivers a message
    /// as it is broadcast, without any datagram or timer).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.token_loss_at,
            self.token_retransmit_at,
            self.hold_until,
            self.join_at,
            self.consensus_at,
            self.merge_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------ membership

    fn send_join(&mut self) {
        let j = Join {
            sender: self.me,
            proc_set: self.proc_set,
            fail_set: self.fail_set,
            ring_seq: self.ring_seq_max,
        };
        self.out.push_back(Transmit {
            dest: Dest::All,
            message: Message::Join(j),
        });
    }

    fn enter_gather(&mut self, now: Instant) {
        if self.state == State::Recovery || self.state == State::Commit {
            // The new ring failed to form: its messages are forgotten; the
            // old ring's stay for the next attempt.
            self.new = None;
            self.recovery = None;
        }
        self.state = State::Gather;
        self.proc_set.insert(self.me);
        self.fail_set.remove(self.me);
        self.consensus = NodeSet::single(self.me);
        self.token_loss_at = None;
        self.token_retransmit_at = None;
        self.merge_at = None;
        self.last_sent = None;
        self.reset_hold();
        self.send_join();
        self.join_at = Some(now + self.cfg.join);
        if self.consensus_at.is_none() {
            self.consensus_at = Some(now + self.cfg.consensus);
        }
        self.check_consensus(now);
    }

    fn on_join(&mut self, now: Instant, j: Join) {
        if j.sender == self.me {
            return;
        }
        self.ring_seq_max = self.ring_seq_max.max(j.ring_seq);
        match self.state {
            State::Operational => {
                // A member's stale join from before the current ring, or
                // one that has given up on me, is ignored.
                if j.fail_set.contains(self.me)
                    || (self.old.members.contains(j.sender) && j.ring_seq < self.old.ring.seq)
                {
                    return;
                }
            }
            State::Commit | State::Recovery => {
                // Only a member of the ring being formed, that has moved
                // on, aborts it; others wait for the operational ring.
                let forming = self.new.as_ref().map_or(NodeSet::EMPTY, |n| n.members);
                if !(forming.contains(j.sender)
                    && j.ring_seq >= self.new.as_ref().map_or(0, |n| n.ring.seq))
                {
                    return;
                }
                self.proc_set = forming;
                self.fail_set = NodeSet::EMPTY;
                self.enter_gather(now);
            }
            State::Gather => {}
        }
        if self.state != State::Gather {
            self.enter_gather(now);
        }
        if j.proc_set == self.proc_set && j.fail_set == self.fail_set {
            self.consensus.insert(j.sender);
            self.check_consensus(now);
            return;
        }
        if self.fail_set.contains(j.sender) {
            return;
        }
        if j.proc_set.is_subset(self.proc_set) && j.fail_set.is_subset(self.fail_set) {
            return; // it will catch up with us
        }
        self.proc_set = self.proc_set.union(j.proc_set);
        if j.fail_set.contains(self.me) {
            self.fail_set.insert(j.sender);
        } else {
            self.fail_set = self.fail_set.union(j.fail_set);
        }
        self.fail_set.remove(self.me);
        // New information starts a new round: everyone gets a full
        // consensus period to agree to the new sets, and the sender counts
        // at once if it already proposes them.
        self.consensus_at = Some(now + self.cfg.consensus);
        self.enter_gather(now);
        if j.proc_set == self.proc_set && j.fail_set == self.fail_set {
            self.consensus.insert(j.sender);
            self.check_consensus(now);
        }
    }

    fn check_consensus(&mut self, now: Instant) {
        if self.state != State::Gather {
            return;
        }
        let alive = self.proc_set.minus(self.fail_set);
        if !alive.is_subset(self.consensus) || alive.lowest() != Some(self.me) {
            return;
        }
        // I am the representative: create the commit token.
        let ring = RingId {
            seq: self.ring_seq_max + RING_SEQ_STEP,
            rep: self.me,
        };
        self.ring_seq_max = ring.seq;
        let token = CommitToken {
            ring,
            token_seq: 0,
            members: alive,
            memb_index: 0,
            entries: vec![None; alive.len()],
        };
        self.accept_commit(now, token);
    }

    fn commit_entry(&self) -> CommitEntry {
        CommitEntry {
            old_ring: self.old.ring,
            aru: self.old.my_aru,
            high_delivered: self.old.delivered,
            received_all: self.old.my_aru == self.old.high_seq,
            high_seq: self.old.high_seq,
        }
    }

    fn successor_in(&self, members: NodeSet) -> NodeId {
        members
            .iter()
            .find(|m| *m > self.me)
            .or_else(|| members.lowest())
            .expect("non-empty ring")
    }

    fn send_token_msg(&mut self, now: Instant, to: NodeId, m: Message) {
        self.last_sent = Some((to, m.clone()));
        self.out.push_back(Transmit {
            dest: Dest::Node(to),
            message: m,
        });
        self.token_retransmit_at = Some(now + self.cfg.token_retransmit);
        self.token_loss_at = Some(now + self.cfg.token);
    }

    fn on_commit(&mut self, now: Instant, mut c: CommitToken) {
        let index = c.members.iter().position(|m| m == self.me);
        let Some(index) = index else { return };
        match self.state {
            State::Gather => {
                // Accept a commit token for exactly the membership I agree to.
                let alive = self.proc_set.minus(self.fail_set);
                if c.members == alive
                    && c.ring.seq > self.old.ring.seq
                    && c.entries[index].is_none()
                {
                    self.ring_seq_max = self.ring_seq_max.max(c.ring.seq);
                    self.accept_commit(now, c);
                }
            }
            State::Commit => {
                // Second rotation: the token is full; recovery starts.
                let forming = self.new.as_ref().expect("commit state has a new ring").ring;
                if c.ring == forming
                    && c.token_seq > self.last_token_seq
                    && c.entries.iter().all(Option::is_some)
                {
                    self.last_token_seq = c.token_seq;
                    self.enter_recovery(now, &c);
                    c.token_seq += 1;
                    let to = self.successor_in(c.members);
                    self.send_token_msg(now, to, Message::Commit(c));
                }
            }
            State::Recovery => {
                // The representative: the commit token came back after its
                // second rotation: everyone is in recovery; start the ring.
                let forming = self.new.as_ref().map(|n| n.ring);
                if Some(c.ring) == forming
                    && self.me == c.ring.rep
                    && c.token_seq > self.last_token_seq
                {
                    self.last_token_seq = c.token_seq;
                    self.start_new_ring_token(now);
                }
            }
            State::Operational => {}
        }
    }

    /// Fills in my entry and passes the commit token on (first rotation).
    fn accept_commit(&mut self, now: Instant, mut c: CommitToken) {
        let index = c
            .members
            .iter()
            .position(|m| m == self.me)
            .expect("checked by caller");
        c.entries[index] = Some(self.commit_entry());
        c.memb_index += 1;
        self.state = State::Commit;
        self.join_at = None;
        self.consensus_at = None;
        self.new = Some(RingLog::new(c.ring, c.members));
        self.last_token_seq = c.token_seq;
        c.token_seq += 1;
        if c.members.len() == 1 {
            self.enter_recovery(now, &c);
            self.start_new_ring_token(now);
            return;
        }
        // When the last member has filled it in, its successor is the
        // representative, which starts the second rotation.
        let to = self.successor_in(c.members);
        self.send_token_msg(now, to, Message::Commit(c));
    }

    fn enter_recovery(&mut self, _now: Instant, c: &CommitToken) {
        self.state = State::Recovery;
        // Survivors of my old ring, and what any of them may lack.
        let mut transitional = NodeSet::EMPTY;
        let mut low = u32::MAX;
        let mut high = 0;
        for (m, e) in c.members.iter().zip(&c.entries) {
            let e = e.as_ref().expect("a full commit token");
            if e.old_ring == self.old.ring && self.old.members.contains(m) {
                transitional.insert(m);
                low = low.min(e.aru);
                high = high.max(e.high_seq);
            }
        }
        debug_assert!(transitional.contains(self.me));
        let to_resend = if low < high {
            self.old
                .store
                .range(low + 1..=high)
                .map(|(_, m)| m.clone())
                .collect()
        } else {
            VecDeque::new()
        };
        self.recovery = Some(RecoveryPlan {
            transitional,
            to_resend,
            set_retrans: false,
            clear_visits: 0,
            install_seq: 0,
        });
        self.prev_token_aru = 0;
        self.my_last_sent = 0;
        self.my_last_backlog = 0;
        self.missing_visits.clear();
        self.reset_hold();
    }

    /// A new ring, or none: no token held, idleness counted afresh.
    fn reset_hold(&mut self) {
        self.held = None;
        self.hold_until = None;
        self.last_visit_seq = None;
        self.quiet_visits = 0;
        self.hold_cancel_sent = false;
    }

    fn start_new_ring_token(&mut self, now: Instant) {
        let ring = self.new.as_ref().expect("recovery has a new ring").ring;
        let t = Token {
            ring,
            token_seq: self.last_token_seq,
            seq: 0,
            aru: 0,
            aru_addr: 0,
            fcc: 0,
            backlog: 0,
            retrans: false,
            rtr: Vec::new(),
        };
        self.process_token(now, t);
        // A ring of one passes the token to itself until recovery is done.
        while self.state == State::Recovery
            && self.new.as_ref().is_some_and(|n| n.members.len() == 1)
        {
            let Some((_, Message::Token(t))) = self.last_sent.clone() else {
                break;
            };
            self.process_token(now, t);
        }
    }

    /// Recovery is over: deliver what remains of the old ring (extended
    /// virtual synchrony), then install the new ring.
    fn install(&mut self, now: Instant) {
        let plan = self.recovery.take().expect("installing after recovery");
        let new = self.new.take().expect("installing a new ring");
        let old = std::mem::take(&mut self.old);
        if self.installed_before {
            // 1. Old-ring messages in order, up to the first gap or the
            // first safe message not known to be safe in the old ring.
            let mut next = old.delivered + 1;
            while let Some(m) = old.store.get(&next) {
                if m.safe && next > old.stable {
                    break;
                }
                self.deliver(old.ring, m);
                next += 1;
            }
            // 2. The transitional configuration.
            self.events.push_back(TotemEvent::Transitional {
                ring: old.ring,
                members: plan.transitional,
                left: old.members.minus(plan.transitional),
            });
            // 3. The rest of the old ring: what follows without a gap (the
            // transitional members all have it after recovery: safe in the
            // transitional configuration), then, after the first gap, what
            // the members that moved with me sent, skipping what nobody has
            // any more.
            while let Some(m) = old.store.get(&next) {
                self.deliver(old.ring, m);
                next += 1;
            }
            for (_, m) in old.store.range(next..) {
                if plan.transitional.contains(m.sender) {
                    self.deliver(old.ring, m);
                }
            }
        }
        self.installed_before = true;
        // 4. The new ring.
        self.events.push_back(TotemEvent::Regular {
            ring: new.ring,
            members: new.members,
            joined: new.members.minus(plan.transitional),
        });
        self.old = new;
        self.state = State::Operational;
        self.proc_set = self.old.members;
        self.fail_set = NodeSet::EMPTY;
        self.consensus = NodeSet::single(self.me);
        self.merge_at = Some(now + self.cfg.merge);
        // New-ring messages that arrived during recovery (members that
        // installed first already send): the encapsulated ones were
        // recovery traffic; the others in order, a safe one (and what
        // follows it) only once every member has it.
        self.deliver_contiguous();
    }

    fn deliver(&mut self, ring: RingId, m: &Mcast) {
        self.events.push_back(TotemEvent::Deliver {
            ring,
            seq: m.seq,
            sender: m.sender,
            safe: m.safe,
            payload: m.payload.clone(),
        });
    }

    // ------------------------------------------------------------ ordering

    /// The ring that carries tokens and messages now.
    fn carrier(&mut self) -> Option<&mut RingLog> {
        match self.state {
            State::Operational => Some(&mut self.old),
            State::Recovery => self.new.as_mut(),
            State::Gather | State::Commit => None,
        }
    }

    /// Takes the carrier ring's log out of `self` (put it back with
    /// `put_carrier`), so the token code can use both.
    fn take_carrier(&mut self) -> RingLog {
        match self.state {
            State::Operational => std::mem::take(&mut self.old),
            State::Recovery => self.new.take().expect("recovery has a new ring"),
            State::Gather | State::Commit => {
                unreachable!("no token outside operational and recovery")
            }
        }
    }

    fn put_carrier(&mut self, log: RingLog) {
        match self.state {
            State::Operational => self.old = log,
            State::Recovery => self.new = Some(log),
            State::Gather | State::Commit => {
                unreachable!("no token outside operational and recovery")
            }
        }
    }

    fn on_mcast(&mut self, now: Instant, m: Mcast) {
        let state = self.state;
        if state == State::Operational
            && m.ring != self.old.ring
            && !self.old.members.contains(m.sender)
        {
            // A message of a foreign ring: someone to merge with.
            self.proc_set.insert(m.sender);
            self.enter_gather(now);
            return;
        }
        // Old-ring messages may still arrive (late copies) while forming a
        // new ring: keep them, they count for recovery.
        if m.ring == self.old.ring && !m.encapsulated && state != State::Operational {
            self.old.insert(m);
            return;
        }
        let Some(log) = self.carrier() else { return };
        if m.ring != log.ring || !log.insert(m.clone()) {
            return;
        }
        self.missing_visits.remove(&m.seq);
        if m.encapsulated {
            // Recovery traffic: the inner message belongs to an old ring.
            if let Ok(Message::Mcast(inner)) = Message::decode(&m.payload)
                && inner.ring == self.old.ring
            {
                self.old.insert(inner);
            }
        }
        if self.state == State::Operational {
            self.deliver_contiguous();
        }
    }

    /// Delivers the installed ring's messages up to my_aru; a safe message
    /// (and everything after it) waits until every member has it.
    fn deliver_contiguous(&mut self) {
        while self.old.delivered < self.old.my_aru {
            let seq = self.old.delivered + 1;
            let m = self
                .old
                .store
                .get(&seq)
                .expect("≤ my_aru is held until delivered")
                .clone();
            if m.safe && seq > self.old.stable {
                break;
            }
            self.old.delivered = seq;
            if !m.encapsulated {
                self.deliver(self.old.ring, &m);
            }
        }
    }

    fn on_token(&mut self, now: Instant, t: Token) {
        let carrier = match self.state {
            State::Operational => Some(self.old.ring),
            State::Recovery => self.new.as_ref().map(|n| n.ring),
            _ => None,
        };
        if Some(t.ring) == carrier && t.token_seq > self.last_token_seq {
            debug_assert!(
                self.held.is_none(),
                "one token per ring: a newer one while holding"
            );
            // Idle: nothing new since my last visit, every member has every
            // message, nothing to retransmit.
            let idle = self.state == State::Operational
                && self.last_visit_seq == Some(t.seq)
                && t.aru == t.seq
                && t.rtr.is_empty();
            self.quiet_visits = if idle { self.quiet_visits + 1 } else { 0 };
            self.last_visit_seq = Some(t.seq);
            self.hold_cancel_sent = false;
            if self.should_hold(&t) {
                // Keep the token (unprocessed) for up to `hold`: nobody
                // re-sends it meanwhile, and it is not lost while here.
                self.last_token_seq = t.token_seq;
                self.held = Some((t, now));
                self.hold_until = Some(now + self.cfg.hold);
                self.token_retransmit_at = None;
                self.token_loss_at = Some(now + self.cfg.token);
                return;
            }
            self.process_token(now, t);
            if self.state == State::Operational
                && self.may_have_been_held()
                && self.token_retransmit_at.is_some()
            {
                // The representative probably held this token for `hold`
                // before it came here: re-send it that much sooner, so that
                // the hold spends none of the token timeout of the members
                // it passed before the hold (their timers started then).
                // This is safe: a hold is at most 40 % of token_retransmit,
                // so the token, even held again, is back before this fires.
                self.token_retransmit_at = Some(now + (self.cfg.token_retransmit - self.cfg.hold));
            }
        } else if Some(t.ring) == carrier
            && t.token_seq == self.last_token_seq
            && self.held.is_none()
        {
            // My predecessor re-sent the token I already passed on: it has
            // seen no sign of it moving since, so mine may be lost too. Send
            // mine again now rather than at my next retransmit tick: each
            // copy the predecessor sends is then one more chance for the
            // token to get through before the token timeout (the receiver
            // ignores copies it has processed).
            if let Some((to, Message::Token(mine))) = &self.last_sent
                && *to != self.me
                && mine.ring == t.ring
                && mine.token_seq == t.token_seq + 1
            {
                self.out.push_back(Transmit {
                    dest: Dest::Node(*to),
                    message: Message::Token(mine.clone()),
                });
            }
        }
    }

    /// Whether the token I got may have been held by the representative
    /// on its way: the ring was idle at my visit for nearly as long as the
    /// representative waits before holding.
    fn may_have_been_held(&self) -> bool {
        !self.cfg.hold.is_zero()
            && self.old.ring.rep != self.me
            && self.old.members.len() > 1
            && self.last_visit_seq.is_some()
            && self.quiet_visits + 1 >= self.cfg.seqno_unchanged_const
    }

    /// corosync's choice: only the representative holds, so a rotation has
    /// at most one hold in it, and the token comes back to every member
    /// within `hold` plus one rotation whatever the ring's size.
    fn should_hold(&self, t: &Token) -> bool {
        !self.cfg.hold.is_zero()
            && self.state == State::Operational
            && self.old.ring.rep == self.me
            && self.old.members.len() > 1
            // At least this visit idle, whatever the configuration says.
            && self.quiet_visits >= self.cfg.seqno_unchanged_const.max(1)
            && self.pending.is_empty()
            && self.old.my_aru == t.seq
            && self.old.delivered == t.seq
    }

    fn process_token(&mut self, now: Instant, mut t: Token) {
        assert!(t.aru <= t.seq, "token aru {} above seq {}", t.aru, t.seq);
        self.last_token_seq = t.token_seq;
        let me = self.me;
        let cfg = self.cfg.clone();
        let mut recovering = self.recovery.take();
        let in_recovery = recovering.is_some();
        let mut log = self.take_carrier();
        let ring = log.ring;

        // Serve retransmit requests for messages I hold.
        let mut out = Vec::new();
        let mut budget = cfg.max_messages;
        let mut still_missing = Vec::new();
        for seq in std::mem::take(&mut t.rtr) {
            match log.store.get(&seq) {
                Some(m) if budget > 0 => {
                    budget -= 1;
                    out.push(Message::Mcast(m.clone()));
                }
                _ => still_missing.push(seq),
            }
        }
        t.rtr = still_missing;

        // Flow control: the ring's window, my share per visit, and the
        // store: never run further ahead of the slowest member than it holds.
        let others_sent = t.fcc.saturating_sub(self.my_last_sent);
        let window_left = cfg.window_size.saturating_sub(others_sent);
        let store_left = STORE_MESSAGES_MAX.saturating_sub(t.seq - t.aru);
        let allowed = budget.min(window_left).min(store_left);
        let mut sent = 0u32;
        let mut sent_recovery = false;
        while sent < allowed {
            // Recovery traffic first; application messages only once the
            // new ring is installed.
            let (payload, encapsulated, safe) = match recovering.as_mut() {
                Some(plan) => match plan.to_resend.pop_front() {
                    Some(inner) => (Message::Mcast(inner).encode(), true, false),
                    None => break,
                },
                None => match self.pending.pop_front() {
                    Some((p, safe)) => (p, false, safe),
                    None => break,
                },
            };
            t.seq += 1;
            let m = Mcast {
                ring,
                seq: t.seq,
                sender: me,
                encapsulated,
                safe,
                payload,
            };
            out.push(Message::Mcast(m.clone()));
            log.insert(m);
            sent += 1;
            sent_recovery |= encapsulated;
        }
        t.fcc = others_sent + sent;
        self.my_last_sent = sent;
        let backlog = self.pending.len() as u32;
        t.backlog = t
            .backlog
            .saturating_sub(self.my_last_backlog)
            .saturating_add(backlog);
        self.my_last_backlog = backlog;

        // Request what I still miss after a few visits.
        for seq in (log.my_aru + 1)..=t.seq {
            if log.store.contains_key(&seq) {
                continue;
            }
            let visits = self.missing_visits.entry(seq).or_insert(0);
            *visits += 1;
            if *visits >= MISS_VISITS_BEFORE_RTR
                && !t.rtr.contains(&seq)
                && t.rtr.len() < RTR_ENTRIES_MAX
            {
                t.rtr.push(seq);
            }
        }

        // All-received-up-to: lower it to mine, or raise it if I lowered it.
        if log.my_aru < t.aru || t.aru_addr == me || t.aru_addr == 0 {
            t.aru = log.my_aru;
            t.aru_addr = if t.aru == t.seq { 0 } else { me };
        }

        // Every member has had up to here for two rotations: safe messages
        // up to here may be delivered; and what I delivered may be freed.
        let stable = if log.members.len() == 1 {
            log.my_aru
        } else {
            t.aru.min(self.prev_token_aru)
        };
        log.stable = log.stable.max(stable);
        let safe = stable.min(log.delivered);
        log.store = log.store.split_off(&(safe + 1));
        self.prev_token_aru = t.aru;
        let my_aru = log.my_aru;
        let members = log.members;
        self.put_carrier(log);
        if self.state == State::Operational {
            // Safe messages that every member now has.
            self.deliver_contiguous();
        }

        // Recovery: keep the retransmit flag set while I re-send, and
        // install once it has been clear for two of my visits in a row and
        // I hold every message up to the first of them.
        let mut install = false;
        if let Some(plan) = recovering.as_mut() {
            if sent_recovery || !plan.to_resend.is_empty() {
                t.retrans = true;
                plan.set_retrans = true;
                plan.clear_visits = 0;
            } else if plan.set_retrans {
                t.retrans = false;
                plan.set_retrans = false;
                plan.clear_visits = 0;
            } else if !t.retrans {
                if plan.clear_visits == 0 {
                    plan.install_seq = t.seq;
                }
                plan.clear_visits += 1;
            } else {
                plan.clear_visits = 0;
            }
            install = plan.clear_visits >= CLEAR_VISITS_TO_INSTALL && my_aru >= plan.install_seq;
        }
        self.recovery = recovering;

        for m in out {
            self.out.push_back(Transmit {
                dest: Dest::All,
                message: m,
            });
        }
        t.token_seq += 1;
        let to = self.successor_in(members);
        if in_recovery && install {
            self.install(now);
        } else if self.state == State::Operational {
            self.deliver_contiguous();
        }
        if to == self.me {
            // A ring of one keeps the token: its next visit is due when
            // something is broadcast (or, in recovery, right away: see
            // `start_new_ring_token`).
            self.last_sent = Some((to, Message::Token(t)));
            self.token_loss_at = None;
            self.token_retransmit_at = None;
            return;
        }
        self.send_token_msg(now, to, Message::Token(t));
    }
}
