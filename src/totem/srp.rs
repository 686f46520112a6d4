//! The single-ring protocol (SRP) as a pure state machine: the ordering and
//! reliability half — a token passed around the ring in node-id order
//! carries the sequence number, all-received-up-to (aru), the retransmit
//! list and the flow-control counters; multicast messages are delivered in
//! agreed order, each exactly once; lost messages are re-sent on request.
//!
//! Surface (quinn-proto style): [`Srp::broadcast`] for what the layer above
//! sends, `handle_message` / `handle_timeout` for what arrives, and
//! `poll_transmit` / `poll_timeout` / `poll_event` for what the driver must
//! do. `now` is always an argument; nothing here reads a clock or a socket.
//!
//! Not yet here: the membership half (gather, commit, recovery). A ring is
//! formed from a given member list; losing the token is reported as
//! [`TotemEvent::TokenLost`] and the ring stops.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::NodeId;
use super::wire::{MCAST_PAYLOAD_BYTES_MAX, Mcast, Message, RTR_ENTRIES_MAX, RingId, Token};
use crate::config::TotemSection;
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

/// The protocol's timing and flow-control parameters.
#[derive(Clone, Debug)]
pub struct SrpConfig {
    /// No token for this long: the token is lost.
    pub token: Duration,
    /// Re-send the token we passed on if it has not come back this soon.
    pub token_retransmit: Duration,
    pub max_messages: u32,
    pub window_size: u32,
}

impl SrpConfig {
    /// From the configuration, for a ring of `nodes` members (corosync's
    /// formulas: retransmit = token / (retransmits_before_loss + 0.2)).
    pub fn from_config(totem: &TotemSection, nodes: usize) -> SrpConfig {
        let t = &totem.timers;
        let token_ms = t.effective_token_ms(nodes);
        let retransmit_ms =
            (token_ms * 10 / (u64::from(t.token_retransmits_before_loss_const) * 10 + 2)).max(1);
        SrpConfig {
            token: Duration::from_millis(token_ms),
            token_retransmit: Duration::from_millis(retransmit_ms),
            max_messages: t.max_messages,
            window_size: t.window_size,
        }
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Every other member (multicast, or one unicast each).
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
    /// A message in agreed order: every member delivers the same messages
    /// in the same order.
    Deliver {
        ring: RingId,
        seq: u32,
        sender: NodeId,
        payload: Vec<u8>,
    },
    /// No token within the token timeout.
    TokenLost { ring: RingId },
}

/// `broadcast` refused: too many messages are waiting for the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backpressure;

pub struct Srp {
    me: NodeId,
    cfg: SrpConfig,
    ring: RingId,
    /// Members in ring order (ascending id).
    members: Vec<NodeId>,
    operational: bool,
    /// Highest token_seq accepted (duplicates and old copies are dropped).
    last_token_seq: u64,
    /// The token as last passed on, for retransmission.
    token_copy: Option<Token>,
    token_loss_at: Option<Instant>,
    token_retransmit_at: Option<Instant>,
    /// Received or sent messages of this ring not yet known to all.
    store: BTreeMap<u32, Mcast>,
    /// Every message ≤ my_aru is here or was delivered and freed.
    my_aru: u32,
    delivered: u32,
    /// The token's aru at my previous visit (garbage collection waits for
    /// two rotations, as the paper does).
    prev_token_aru: u32,
    /// Messages I originated during my previous visit (flow control).
    my_last_sent: u32,
    /// My share of the token's backlog at my previous visit.
    my_last_backlog: u32,
    /// Token visits each missing seq has been missing for.
    missing_visits: BTreeMap<u32, u32>,
    pending: VecDeque<Vec<u8>>,
    out: VecDeque<Transmit>,
    events: VecDeque<TotemEvent>,
}

impl Srp {
    /// Forms the ring `members` (which includes `me`) with id `ring`; its
    /// representative (lowest id) sends the first token now.
    pub fn new(me: NodeId, members: &[NodeId], ring: RingId, cfg: SrpConfig, now: Instant) -> Srp {
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        assert!(members.contains(&me), "a node is a member of its own ring");
        assert_eq!(ring.rep, members[0], "the representative is the lowest id");
        let mut s = Srp {
            me,
            cfg,
            ring,
            members,
            operational: true,
            last_token_seq: 0,
            token_copy: None,
            token_loss_at: Some(now),
            token_retransmit_at: None,
            store: BTreeMap::new(),
            my_aru: 0,
            delivered: 0,
            prev_token_aru: 0,
            my_last_sent: 0,
            my_last_backlog: 0,
            missing_visits: BTreeMap::new(),
            pending: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        s.token_loss_at = Some(now + s.cfg.token);
        if me == ring.rep {
            let token = Token {
                ring,
                token_seq: 0,
                seq: 0,
                aru: 0,
                aru_addr: 0,
                fcc: 0,
                backlog: 0,
                retrans: false,
                rtr: Vec::new(),
            };
            s.process_token(now, token);
        }
        s
    }

    pub fn ring(&self) -> RingId {
        self.ring
    }

    pub fn is_operational(&self) -> bool {
        self.operational
    }

    /// Queues a message for agreed-order delivery to every member.
    pub fn broadcast(&mut self, now: Instant, payload: Vec<u8>) -> Result<(), Backpressure> {
        assert!(
            payload.len() <= MCAST_PAYLOAD_BYTES_MAX,
            "the layer above splits large messages"
        );
        if self.pending.len() >= PENDING_MESSAGES_MAX {
            return Err(Backpressure);
        }
        self.pending.push_back(payload);
        if self.operational && self.members.len() == 1 {
            // A ring of one holds its own token: visit it now.
            let t = self
                .token_copy
                .clone()
                .expect("the representative made the first token");
            self.process_token(now, t);
        }
        Ok(())
    }

    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        if !self.operational {
            return;
        }
        match msg {
            Message::Token(t) => {
                if t.ring == self.ring && t.token_seq > self.last_token_seq {
                    self.process_token(now, t);
                }
            }
            Message::Mcast(m) => {
                if m.ring == self.ring && !m.encapsulated {
                    self.receive_mcast(m);
                }
            }
            // Membership messages belong to the membership half.
            Message::Join(_) | Message::Commit(_) | Message::MergeDetect { .. } => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.operational {
            return;
        }
        if self.token_loss_at.is_some_and(|t| now >= t) {
            self.operational = false;
            self.token_retransmit_at = None;
            self.token_loss_at = None;
            self.events
                .push_back(TotemEvent::TokenLost { ring: self.ring });
            return;
        }
        if self.token_retransmit_at.is_some_and(|t| now >= t) {
            if let Some(copy) = &self.token_copy {
                let to = self.successor();
                self.out.push_back(Transmit {
                    dest: Dest::Node(to),
                    message: Message::Token(copy.clone()),
                });
            }
            self.token_retransmit_at = Some(now + self.cfg.token_retransmit);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TotemEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.token_loss_at, self.token_retransmit_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn successor(&self) -> NodeId {
        let i = self
            .members
            .iter()
            .position(|m| *m == self.me)
            .expect("member of own ring");
        self.members[(i + 1) % self.members.len()]
    }

    fn receive_mcast(&mut self, m: Mcast) {
        if m.seq <= self.my_aru || self.store.contains_key(&m.seq) {
            return; // duplicate
        }
        if m.seq - self.my_aru > STORE_MESSAGES_MAX {
            return; // beyond any sender's window: not from a correct member
        }
        self.missing_visits.remove(&m.seq);
        self.store.insert(m.seq, m);
        self.advance();
    }

    /// Moves my_aru over contiguous messages and delivers them.
    fn advance(&mut self) {
        while let Some(m) = self.store.get(&(self.my_aru + 1)) {
            self.my_aru += 1;
            debug_assert_eq!(self.delivered + 1, m.seq);
            self.delivered = m.seq;
            self.events.push_back(TotemEvent::Deliver {
                ring: self.ring,
                seq: m.seq,
                sender: m.sender,
                payload: m.payload.clone(),
            });
        }
    }

    fn process_token(&mut self, now: Instant, mut t: Token) {
        assert!(t.aru <= t.seq, "token aru {} above seq {}", t.aru, t.seq);
        self.last_token_seq = t.token_seq;

        // Serve retransmit requests for messages I hold.
        let mut budget = self.cfg.max_messages;
        let mut still_missing = Vec::new();
        for seq in std::mem::take(&mut t.rtr) {
            match self.store.get(&seq) {
                Some(m) if budget > 0 => {
                    budget -= 1;
                    self.out.push_back(Transmit {
                        dest: Dest::All,
                        message: Message::Mcast(m.clone()),
                    });
                }
                _ => still_missing.push(seq),
            }
        }
        t.rtr = still_missing;

        // Flow control: the ring's window, my share per visit, and the
        // store: never run further ahead of the slowest member than it holds.
        let others_sent = t.fcc.saturating_sub(self.my_last_sent);
        let window_left = self.cfg.window_size.saturating_sub(others_sent);
        let store_left = STORE_MESSAGES_MAX.saturating_sub(t.seq - t.aru);
        let allowed = budget.min(window_left).min(store_left) as usize;
        let mut sent = 0u32;
        while sent as usize != allowed {
            let Some(payload) = self.pending.pop_front() else {
                break;
            };
            t.seq += 1;
            let m = Mcast {
                ring: self.ring,
                seq: t.seq,
                sender: self.me,
                encapsulated: false,
                payload,
            };
            self.out.push_back(Transmit {
                dest: Dest::All,
                message: Message::Mcast(m.clone()),
            });
            self.store.insert(m.seq, m);
            sent += 1;
        }
        t.fcc = others_sent + sent;
        self.my_last_sent = sent;
        // The ring's backlog: replace my share of the sum with the current one.
        let backlog = self.pending.len() as u32;
        t.backlog = t
            .backlog
            .saturating_sub(self.my_last_backlog)
            .saturating_add(backlog);
        self.my_last_backlog = backlog;
        self.advance();

        // Request what I still miss after a few visits.
        for seq in (self.my_aru + 1)..=t.seq {
            if self.store.contains_key(&seq) {
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
        if self.my_aru < t.aru || t.aru_addr == self.me || t.aru_addr == 0 {
            t.aru = self.my_aru;
            t.aru_addr = if t.aru == t.seq { 0 } else { self.me };
        }

        // Free what every member has had for two rotations.
        let safe = t.aru.min(self.prev_token_aru).min(self.delivered);
        self.store = self.store.split_off(&(safe + 1));
        self.prev_token_aru = t.aru;

        t.token_seq += 1;
        let to = self.successor();
        self.token_copy = Some(t.clone());
        if to == self.me {
            // A ring of one keeps the token: its next visit is due when
            // something is broadcast (see `broadcast`), not by a timer loop.
            self.token_loss_at = None;
            self.token_retransmit_at = None;
            return;
        }
        self.out.push_back(Transmit {
            dest: Dest::Node(to),
            message: Message::Token(t),
        });
        self.token_retransmit_at = Some(now + self.cfg.token_retransmit);
        self.token_loss_at = Some(now + self.cfg.token);
    }
}
