//! The totem messages and their byte format (inside the crypto envelope).
//!
//! hactl's own format, not corosync's: all integers big-endian, sets of
//! nodes as 32-bit masks (node ids are 1..=32), every list bounded. A
//! decoder never panics and never allocates more than the input justifies;
//! anything malformed is a [`WireError`].

use std::fmt;

use super::NodeId;

/// Protocol version carried in every message.
pub const WIRE_VERSION: u8 = 1;
/// Entries of a token's retransmit list.
pub const RTR_ENTRIES_MAX: usize = 64;
/// Bytes of application payload in one multicast message. Larger messages
/// are split by the layer above; this keeps a sealed packet in one
/// unfragmented datagram on a 9000-byte-MTU link at most.
pub const MCAST_PAYLOAD_BYTES_MAX: usize = 8_192;
/// Room kept for re-sending an old-ring message inside a new-ring one
/// (recovery): the inner message's own header.
pub const ENCAPSULATION_BYTES: usize = 64;
/// Bytes of application payload per message.
pub const APP_PAYLOAD_BYTES_MAX: usize = MCAST_PAYLOAD_BYTES_MAX - ENCAPSULATION_BYTES;

/// A set of node ids 1..=32 as a bit mask (bit `id − 1`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NodeSet(u32);

impl NodeSet {
    pub const EMPTY: NodeSet = NodeSet(0);

    pub fn from_bits(bits: u32) -> NodeSet {
        NodeSet(bits)
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn single(id: NodeId) -> NodeSet {
        let mut s = NodeSet::EMPTY;
        s.insert(id);
        s
    }

    pub fn insert(&mut self, id: NodeId) {
        assert!((1..=32).contains(&id), "node id {id} out of range");
        self.0 |= 1 << (id - 1);
    }

    pub fn remove(&mut self, id: NodeId) {
        assert!((1..=32).contains(&id), "node id {id} out of range");
        self.0 &= !(1 << (id - 1));
    }

    pub fn contains(self, id: NodeId) -> bool {
        (1..=32).contains(&id) && self.0 & (1 << (id - 1)) != 0
    }

    pub fn union(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 | other.0)
    }

    pub fn minus(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    pub fn intersect(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & other.0)
    }

    pub fn is_subset(self, other: NodeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Ids in ascending order (ring order).
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        (1..=32).filter(move |id| self.contains(*id))
    }

    pub fn lowest(self) -> Option<NodeId> {
        (self.0 != 0).then(|| self.0.trailing_zeros() + 1)
    }
}

impl fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A ring's identity: its representative (lowest member id) and a sequence
/// number that only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RingId {
    pub seq: u64,
    pub rep: NodeId,
}

/// The token: ordering, reliability and flow control, passed around the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub ring: RingId,
    /// The token's own counter: a copy with a lower one is a duplicate.
    pub token_seq: u64,
    /// Highest message sequence number assigned on this ring.
    pub seq: u32,
    /// All-received-up-to: every member has every message ≤ aru.
    pub aru: u32,
    /// Who last lowered aru (0: nobody).
    pub aru_addr: NodeId,
    /// Messages sent during the last rotation (flow control).
    pub fcc: u32,
    /// Messages waiting to be sent, summed over the ring (flow control).
    pub backlog: u32,
    /// Set while someone still re-sends old-ring messages (recovery).
    pub retrans: bool,
    /// Sequence numbers somebody is missing.
    pub rtr: Vec<u32>,
}

/// One multicast message of a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mcast {
    pub ring: RingId,
    pub seq: u32,
    /// The node that originated the message.
    pub sender: NodeId,
    /// An old-ring message re-sent during recovery; `ring` is then the old
    /// ring the message belongs to.
    pub encapsulated: bool,
    /// Safe delivery: delivered only once every member of the ring has it.
    pub safe: bool,
    pub payload: Vec<u8>,
}

/// A membership proposal: who the sender believes is alive and failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    pub sender: NodeId,
    pub proc_set: NodeSet,
    pub fail_set: NodeSet,
    /// Highest ring sequence number the sender has seen.
    pub ring_seq: u64,
}

/// What one member reports about its old ring in the commit token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitEntry {
    pub old_ring: RingId,
    pub aru: u32,
    pub high_delivered: u32,
    /// Whether it holds every old-ring message up to its high sequence.
    pub received_all: bool,
    /// Highest sequence number it saw on the old ring.
    pub high_seq: u32,
}

/// The token that installs a new ring: it goes around twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitToken {
    pub ring: RingId,
    pub token_seq: u64,
    pub members: NodeSet,
    /// Members that have filled in their entry.
    pub memb_index: u8,
    /// One entry per member, in ascending id order (None until filled).
    pub entries: Vec<Option<CommitEntry>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Token(Token),
    Mcast(Mcast),
    Join(Join),
    Commit(CommitToken),
    /// Sent by an idle ring's representative so other rings find it.
    MergeDetect {
        ring: RingId,
        sender: NodeId,
    },
    /// Sent by a member with messages to send while the ring is idle: the
    /// representative, which may be holding the token, passes it on at once.
    HoldCancel {
        ring: RingId,
        sender: NodeId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    UnknownType(u8),
    Version(u8),
    TooLong,
    BadNodeId(u32),
    TrailingBytes,
    Inconsistent(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated message"),
            WireError::UnknownType(t) => write!(f, "unknown message type {t}"),
            WireError::Version(v) => {
                write!(f, "totem wire version {v}, this node speaks {WIRE_VERSION}")
            }
            WireError::TooLong => f.write_str("a list or payload exceeds its limit"),
            WireError::BadNodeId(id) => write!(f, "node id {id} out of range"),
            WireError::TrailingBytes => f.write_str("bytes after the end of the message"),
            WireError::Inconsistent(what) => write!(f, "inconsistent message: {what}"),
        }
    }
}

const T_TOKEN: u8 = 1;
const T_MCAST: u8 = 2;
const T_JOIN: u8 = 3;
const T_COMMIT: u8 = 4;
const T_MERGE_DETECT: u8 = 5;
const T_HOLD_CANCEL: u8 = 6;

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn ring(&mut self, r: RingId) {
        self.u64(r.seq);
        self.u32(r.rep);
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn node(&mut self) -> Result<NodeId, WireError> {
        let id = self.u32()?;
        if (1..=32).contains(&id) {
            Ok(id)
        } else {
            Err(WireError::BadNodeId(id))
        }
    }
    /// A node id or 0 ("nobody").
    fn node_or_zero(&mut self) -> Result<NodeId, WireError> {
        let id = self.u32()?;
        if id <= 32 {
            Ok(id)
        } else {
            Err(WireError::BadNodeId(id))
        }
    }
    fn ring(&mut self) -> Result<RingId, WireError> {
        let seq = self.u64()?;
        let rep = self.node()?;
        Ok(RingId { seq, rep })
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Inconsistent("boolean not 0 or 1")),
        }
    }
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(64));
        w.u8(WIRE_VERSION);
        match self {
            Message::Token(t) => {
                assert!(
                    t.rtr.len() <= RTR_ENTRIES_MAX,
                    "retransmit list is bounded by its producer"
                );
                w.u8(T_TOKEN);
                w.ring(t.ring);
                w.u64(t.token_seq);
                w.u32(t.seq);
                w.u32(t.aru);
                w.u32(t.aru_addr);
                w.u32(t.fcc);
                w.u32(t.backlog);
                w.u8(u8::from(t.retrans));
                w.u8(t.rtr.len() as u8);
                t.rtr.iter().for_each(|s| w.u32(*s));
            }
            Message::Mcast(m) => {
                assert!(
                    m.payload.len() <= MCAST_PAYLOAD_BYTES_MAX,
                    "payload is bounded by its producer"
                );
                w.u8(T_MCAST);
                w.ring(m.ring);
                w.u32(m.seq);
                w.u32(m.sender);
                w.u8(u8::from(m.encapsulated) | (u8::from(m.safe) << 1));
                w.u32(m.payload.len() as u32);
                w.0.extend_from_slice(&m.payload);
            }
            Message::Join(j) => {
                w.u8(T_JOIN);
                w.u32(j.sender);
                w.u32(j.proc_set.bits());
                w.u32(j.fail_set.bits());
                w.u64(j.ring_seq);
            }
            Message::Commit(c) => {
                assert_eq!(c.entries.len(), c.members.len(), "one entry per member");
                w.u8(T_COMMIT);
                w.ring(c.ring);
                w.u64(c.token_seq);
                w.u32(c.members.bits());
                w.u8(c.memb_index);
                for e in &c.entries {
                    match e {
                        None => w.u8(0),
                        Some(e) => {
                            w.u8(1);
                            w.ring(e.old_ring);
                            w.u32(e.aru);
                            w.u32(e.high_delivered);
                            w.u8(u8::from(e.received_all));
                            w.u32(e.high_seq);
                        }
                    }
                }
            }
            Message::MergeDetect { ring, sender } => {
                w.u8(T_MERGE_DETECT);
                w.ring(*ring);
                w.u32(*sender);
            }
            Message::HoldCancel { ring, sender } => {
                w.u8(T_HOLD_CANCEL);
                w.ring(*ring);
                w.u32(*sender);
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let mut r = R(bytes);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version(version));
        }
        let msg = match r.u8()? {
            T_TOKEN => {
                let ring = r.ring()?;
                let token_seq = r.u64()?;
                let seq = r.u32()?;
                let aru = r.u32()?;
                let aru_addr = r.node_or_zero()?;
                let fcc = r.u32()?;
                let backlog = r.u32()?;
                let retrans = r.bool()?;
                let n = r.u8()? as usize;
                if n > RTR_ENTRIES_MAX {
                    return Err(WireError::TooLong);
                }
                let rtr = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
                Message::Token(Token {
                    ring,
                    token_seq,
                    seq,
                    aru,
                    aru_addr,
                    fcc,
                    backlog,
                    retrans,
                    rtr,
                })
            }
            T_MCAST => {
                let ring = r.ring()?;
                let seq = r.u32()?;
                let sender = r.node()?;
                let flags = r.u8()?;
                if flags & !0b11 != 0 {
                    return Err(WireError::Inconsistent("unknown message flags"));
                }
                let encapsulated = flags & 1 != 0;
                let safe = flags & 2 != 0;
                let len = r.u32()? as usize;
                if len > MCAST_PAYLOAD_BYTES_MAX {
                    return Err(WireError::TooLong);
                }
                let payload = r.take(len)?.to_vec();
                Message::Mcast(Mcast {
                    ring,
                    seq,
                    sender,
                    encapsulated,
                    safe,
                    payload,
                })
            }
            T_JOIN => {
                let sender = r.node()?;
                let proc_set = NodeSet::from_bits(r.u32()?);
                let fail_set = NodeSet::from_bits(r.u32()?);
                let ring_seq = r.u64()?;
                if !proc_set.contains(sender) && !fail_set.contains(sender) {
                    return Err(WireError::Inconsistent("join sender in neither set"));
                }
                Message::Join(Join {
                    sender,
                    proc_set,
                    fail_set,
                    ring_seq,
                })
            }
            T_COMMIT => {
                let ring = r.ring()?;
                let token_seq = r.u64()?;
                let members = NodeSet::from_bits(r.u32()?);
                let memb_index = r.u8()?;
                if members.is_empty() || usize::from(memb_index) > members.len() {
                    return Err(WireError::Inconsistent("commit token members"));
                }
                let mut entries = Vec::with_capacity(members.len());
                for _ in 0..members.len() {
                    entries.push(match r.u8()? {
                        0 => None,
                        1 => Some(CommitEntry {
                            old_ring: r.ring()?,
                            aru: r.u32()?,
                            high_delivered: r.u32()?,
                            received_all: r.bool()?,
                            high_seq: r.u32()?,
                        }),
                        _ => return Err(WireError::Inconsistent("commit entry marker")),
                    });
                }
                Message::Commit(CommitToken {
                    ring,
                    token_seq,
                    members,
                    memb_index,
                    entries,
                })
            }
            T_MERGE_DETECT => {
                let ring = r.ring()?;
                let sender = r.node()?;
                Message::MergeDetect { ring, sender }
            }
            T_HOLD_CANCEL => {
                let ring = r.ring()?;
                let sender = r.node()?;
                Message::HoldCancel { ring, sender }
            }
            t => return Err(WireError::UnknownType(t)),
        };
        if !r.0.is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn node(&mut self) -> NodeId {
            (self.next() % 32) as NodeId + 1
        }
        fn ring(&mut self) -> RingId {
            RingId {
                seq: self.next(),
                rep: self.node(),
            }
        }
    }

    fn random_message(r: &mut Rng) -> Message {
        match r.next() % 6 {
            0 => Message::Token(Token {
                ring: r.ring(),
                token_seq: r.next(),
                seq: r.next() as u32,
                aru: r.next() as u32,
                aru_addr: (r.next() % 33) as NodeId,
                fcc: r.next() as u32,
                backlog: r.next() as u32,
                retrans: r.next().is_multiple_of(2),
                rtr: (0..r.next() % (RTR_ENTRIES_MAX as u64 + 1))
                    .map(|_| r.next() as u32)
                    .collect(),
            }),
            1 => Message::Mcast(Mcast {
                ring: r.ring(),
                seq: r.next() as u32,
                sender: r.node(),
                encapsulated: r.next().is_multiple_of(2),
                safe: r.next().is_multiple_of(3),
                payload: (0..r.next() % 300).map(|_| r.next() as u8).collect(),
            }),
            2 => {
                let sender = r.node();
                let mut proc_set = NodeSet::from_bits(r.next() as u32);
                proc_set.insert(sender);
                Message::Join(Join {
                    sender,
                    proc_set,
                    fail_set: NodeSet::from_bits(r.next() as u32),
                    ring_seq: r.next(),
                })
            }
            3 => {
                let members = NodeSet::from_bits((r.next() as u32) | 1);
                let entries = (0..members.len())
                    .map(|_| {
                        (r.next().is_multiple_of(2)).then(|| CommitEntry {
                            old_ring: r.ring(),
                            aru: r.next() as u32,
                            high_delivered: r.next() as u32,
                            received_all: r.next().is_multiple_of(2),
                            high_seq: r.next() as u32,
                        })
                    })
                    .collect();
                Message::Commit(CommitToken {
                    ring: r.ring(),
                    token_seq: r.next(),
                    members,
                    memb_index: (r.next() % (members.len() as u64 + 1)) as u8,
                    entries,
                })
            }
            4 => Message::MergeDetect {
                ring: r.ring(),
                sender: r.node(),
            },
            _ => Message::HoldCancel {
                ring: r.ring(),
                sender: r.node(),
            },
        }
    }

    #[test]
    fn every_message_round_trips() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..5_000 {
            let m = random_message(&mut r);
            assert_eq!(Message::decode(&m.encode()), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn truncated_and_extended_messages_are_rejected() {
        let mut r = Rng(99);
        for _ in 0..500 {
            let bytes = random_message(&mut r).encode();
            for cut in 0..bytes.len() {
                assert!(Message::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Message::decode(&longer), Err(WireError::TrailingBytes));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut r = Rng(7);
        for _ in 0..100_000 {
            let len = (r.next() % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            if len > 1 {
                bytes[0] = WIRE_VERSION;
                bytes[1] = (r.next() % 7) as u8;
            }
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn limits_and_ids_are_enforced() {
        let mut t = Message::Token(Token {
            ring: RingId { seq: 1, rep: 1 },
            token_seq: 1,
            seq: 0,
            aru: 0,
            aru_addr: 0,
            fcc: 0,
            backlog: 0,
            retrans: false,
            rtr: vec![],
        })
        .encode();
        // rtr count byte is the last one of an empty-list token.
        *t.last_mut().unwrap() = RTR_ENTRIES_MAX as u8 + 1;
        assert_eq!(Message::decode(&t), Err(WireError::TooLong));
        let m = Message::MergeDetect {
            ring: RingId { seq: 1, rep: 1 },
            sender: 1,
        }
        .encode();
        let mut bad = m.clone();
        let end = bad.len();
        bad[end - 4..].copy_from_slice(&33u32.to_be_bytes());
        assert_eq!(Message::decode(&bad), Err(WireError::BadNodeId(33)));
        let mut v2 = m.clone();
        v2[0] = 2;
        assert_eq!(Message::decode(&v2), Err(WireError::Version(2)));
    }

    #[test]
    fn hold_cancel_has_its_own_type_and_a_checked_sender() {
        let m = Message::HoldCancel {
            ring: RingId { seq: 7, rep: 2 },
            sender: 3,
        };
        let bytes = m.encode();
        // version, type, ring (seq 8 + rep 4), sender 4.
        assert_eq!(bytes.len(), 2 + 12 + 4);
        assert_eq!(bytes[1], T_HOLD_CANCEL);
        assert_eq!(Message::decode(&bytes), Ok(m));
        let mut bad = bytes.clone();
        bad[14..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(Message::decode(&bad), Err(WireError::BadNodeId(0)));
    }

    #[test]
    fn node_sets_behave_like_sets() {
        let mut s = NodeSet::EMPTY;
        s.insert(3);
        s.insert(1);
        s.insert(32);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 3, 32]);
        assert_eq!(s.lowest(), Some(1));
        assert_eq!(s.len(), 3);
        s.remove(1);
        assert!(!s.contains(1) && s.contains(3));
        assert!(NodeSet::single(3).is_subset(s));
        assert_eq!(
            s.minus(NodeSet::single(3)).iter().collect::<Vec<_>>(),
            vec![32]
        );
        assert!(!s.contains(0) && !s.contains(33));
    }
}
