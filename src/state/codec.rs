//! The encoding of state messages on totem and of state snapshots.
//!
//! Every totem payload of the state service starts with the service byte
//! [`SERVICE_STATE`] (the quorum service uses 1, see `src/daemon.rs`), then
//! the wire version and a fragment header, because a snapshot or a
//! configuration can be larger than one totem message:
//!
//! ```text
//! [SERVICE_STATE=2][WIRE_VERSION][part: u16 BE][parts: u16 BE][chunk…]
//! ```
//!
//! The chunks of one message, concatenated in order, are the message body:
//! a kind byte, then the fields. Integers are big-endian and fixed width;
//! strings and byte strings carry a `u32` length; optional values a 0/1
//! byte; maps are written in key order, so equal states encode to equal
//! bytes. A decoder refuses versions it does not know (a newer node's
//! message is reported, not misread) and everything longer than the
//! documented limits.

use std::collections::BTreeMap;

use super::*;
use crate::totem::wire::{APP_PAYLOAD_BYTES_MAX, NodeSet, RingId};

/// First byte of a totem payload of the state service.
pub const SERVICE_STATE: u8 = 2;
/// Version of the message encoding ([`Message`]).
pub const WIRE_VERSION: u8 = 1;
/// Version of the snapshot encoding ([`encode_snapshot`]), also the
/// persisted format's body. Version 2 adds the target roles after the
/// configuration. A state without target roles is written as version 1,
/// byte for byte what nodes before version 2 write and read, so such nodes
/// keep syncing with this one until someone runs `hactl resource
/// start|stop`; both versions are read.
pub const SNAPSHOT_VERSION: u8 = 2;
/// The snapshot version written when the state holds no target roles.
pub const SNAPSHOT_VERSION_V1: u8 = 1;
/// Bytes before the chunk in each payload.
pub const FRAGMENT_HEADER_BYTES: usize = 6;
/// Chunk bytes per payload.
pub const CHUNK_BYTES_MAX: usize = APP_PAYLOAD_BYTES_MAX - FRAGMENT_HEADER_BYTES;
/// Largest message body. The limits on a state's parts keep a snapshot
/// below it: a 1 MiB configuration, and 32 nodes × 512 operation records
/// of at most ~800 bytes (13 MB) in the worst case.
pub const MESSAGE_BYTES_MAX: usize = 32 << 20;
/// Entries of any one map or list accepted when decoding.
pub const ENTRIES_MAX: u32 = 1 << 16;

/// A message of the state service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A command, with the sender's wall clock when it was sent.
    Command { at: WallMs, cmd: Command },
    /// A member's state for the merge after a ring change (every member
    /// sends one, see [`super::replica`]).
    Sync(Sync),
    /// A node's membership summary ([`super::membership::Summary`]).
    Membership { canonical: String },
}

/// One side's state for the merge after `ring` was installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    /// The new ring this snapshot is for.
    pub ring: RingId,
    /// The members of the side: the sender's transitional configuration.
    pub side: NodeSet,
    /// The side is a node that has not been in a ring since it started:
    /// its state comes from disk.
    pub fresh: bool,
    pub state: ClusterState,
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before `what`.
    Truncated { what: &'static str },
    /// A version this node does not know (a newer node sent it?).
    UnknownVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    /// A tag that means nothing in `what`.
    UnknownTag { what: &'static str, tag: u8 },
    /// A length above the limit.
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// A string that is not UTF-8.
    NotUtf8 { what: &'static str },
    /// Bytes left after the end.
    Trailing { bytes: usize },
    /// Not a state service payload.
    NotState { service: Option<u8> },
    /// A fragment out of order or inconsistent with the previous ones.
    BadFragment {
        part: u16,
        parts: u16,
        expected: u16,
    },
    /// Well-formed bytes describing a state that breaks its rules.
    Inconsistent { what: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { what } => write!(f, "truncated before {what}"),
            DecodeError::UnknownVersion {
                what,
                found,
                supported,
            } => write!(
                f,
                "{what} version {found} is not known here (this hactl reads version {supported}): \
                 a node runs a newer hactl; upgrade this node"
            ),
            DecodeError::UnknownTag { what, tag } => write!(f, "unknown {what} tag {tag}"),
            DecodeError::TooLong { what, len, max } => {
                write!(f, "{what} of {len} is longer than the limit {max}")
            }
            DecodeError::NotUtf8 { what } => write!(f, "{what} is not UTF-8"),
            DecodeError::Trailing { bytes } => write!(f, "{bytes} bytes after the end"),
            DecodeError::NotState { service } => {
                write!(f, "not a state service payload (service byte {service:?})")
            }
            DecodeError::BadFragment {
                part,
                parts,
                expected,
            } => write!(
                f,
                "fragment {part} of {parts} arrived where fragment {expected} was expected"
            ),
            DecodeError::Inconsistent { what } => write!(f, "inconsistent state: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

// ------------------------------------------------------------------ writer

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
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).expect("bounded by the caller"));
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("bounded collection"));
    }
}

// ------------------------------------------------------------------ reader

struct R<'a> {
    b: &'a [u8],
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError::Truncated { what });
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { what, tag }),
        }
    }
    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError::TooLong {
                what,
                len: n as u64,
                max: max as u64,
            });
        }
        self.take(n, what)
    }
    fn str(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let b = self.bytes(what, max)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8 { what })
    }
    fn name(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.str(what, NAME_BYTES_MAX)
    }
    fn count(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let n = self.u32(what)?;
        if n > ENTRIES_MAX {
            return Err(DecodeError::TooLong {
                what,
                len: u64::from(n),
                max: u64::from(ENTRIES_MAX),
            });
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing {
                bytes: self.b.len(),
            })
        }
    }
}

// ------------------------------------------------------------- the values

fn op_tag(op: OpName) -> u8 {
    match op {
        OpName::Start => 1,
        OpName::Stop => 2,
        OpName::Monitor => 3,
        OpName::Promote => 4,
        OpName::Demote => 5,
    }
}

fn op_from(tag: u8) -> Result<OpName, DecodeError> {
    Ok(match tag {
        1 => OpName::Start,
        2 => OpName::Stop,
        3 => OpName::Monitor,
        4 => OpName::Promote,
        5 => OpName::Demote,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "operation",
                tag,
            });
        }
    })
}

fn put_role(w: &mut W, role: Option<Role>) {
    w.u8(match role {
        None => 0,
        Some(Role::Stopped) => 1,
        Some(Role::Started) => 2,
        Some(Role::Unpromoted) => 3,
        Some(Role::Promoted) => 4,
    });
}

fn get_role(r: &mut R) -> Result<Option<Role>, DecodeError> {
    Ok(match r.u8("target role")? {
        0 => None,
        1 => Some(Role::Stopped),
        2 => Some(Role::Started),
        3 => Some(Role::Unpromoted),
        4 => Some(Role::Promoted),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "target role",
                tag,
            });
        }
    })
}

fn put_target(w: &mut W, t: MigrateTarget) {
    match t {
        MigrateTarget::To(n) => {
            w.u8(1);
            w.u32(n);
        }
        MigrateTarget::AwayFrom(n) => {
            w.u8(2);
            w.u32(n);
        }
    }
}

fn get_target(r: &mut R) -> Result<MigrateTarget, DecodeError> {
    match r.u8("migrate target")? {
        1 => Ok(MigrateTarget::To(r.u32("migrate node")?)),
        2 => Ok(MigrateTarget::AwayFrom(r.u32("migrate node")?)),
        tag => Err(DecodeError::UnknownTag {
            what: "migrate target",
            tag,
        }),
    }
}

fn put_opt_wall(w: &mut W, t: Option<WallMs>) {
    match t {
        None => w.u8(0),
        Some(t) => {
            w.u8(1);
            w.u64(t.0);
        }
    }
}

fn get_opt_wall(r: &mut R, what: &'static str) -> Result<Option<WallMs>, DecodeError> {
    Ok(if r.bool(what)? {
        Some(WallMs(r.u64(what)?))
    } else {
        None
    })
}

fn put_op(w: &mut W, o: &OpRecord) {
    w.str(&o.resource);
    w.u32(o.node);
    w.u8(op_tag(o.op));
    w.u64(o.interval_ms);
    w.i32(o.rc);
    w.u64(o.at.0);
    // Cut here too, so that a long reason never makes the whole record
    // unreadable at the receivers (apply cuts it the same way).
    w.str(truncate_utf8(&o.exit_reason, EXIT_REASON_BYTES_MAX));
}

fn get_op(r: &mut R) -> Result<OpRecord, DecodeError> {
    Ok(OpRecord {
        resource: r.name("resource id")?,
        node: r.u32("node id")?,
        op: op_from(r.u8("operation")?)?,
        interval_ms: r.u64("interval")?,
        rc: r.i32("return code")?,
        at: WallMs(r.u64("operation time")?),
        exit_reason: r.str("exit reason", EXIT_REASON_BYTES_MAX)?,
    })
}

fn put_fence(w: &mut W, f: &FenceRecord) {
    w.u64(f.at.0);
    w.u32(f.target);
    w.str(&f.device);
    w.u8(match f.action {
        FenceAction::Off => 1,
        FenceAction::On => 2,
        FenceAction::Reboot => 3,
    });
    match &f.error {
        None => w.u8(0),
        Some(e) => {
            w.u8(1);
            w.str(e);
        }
    }
    w.u32(f.executor);
}

fn get_fence(r: &mut R) -> Result<FenceRecord, DecodeError> {
    Ok(FenceRecord {
        at: WallMs(r.u64("fencing time")?),
        target: r.u32("fencing target")?,
        device: r.name("fence device")?,
        action: match r.u8("fencing action")? {
            1 => FenceAction::Off,
            2 => FenceAction::On,
            3 => FenceAction::Reboot,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "fencing action",
                    tag,
                });
            }
        },
        error: if r.bool("fencing result")? {
            Some(r.name("fencing error")?)
        } else {
            None
        },
        executor: r.u32("fencing executor")?,
    })
}

fn put_command(w: &mut W, c: &Command) {
    match c {
        Command::SetStandby { node, standby } => {
            w.u8(1);
            w.u32(*node);
            w.bool(*standby);
        }
        Command::Migrate {
            resource,
            target,
            expires,
        } => {
            w.u8(2);
            w.str(resource);
            put_target(w, *target);
            put_opt_wall(w, *expires);
        }
        Command::Unmigrate { resource } => {
            w.u8(3);
            w.str(resource);
        }
        Command::FailCountAdd { resource, node, by } => {
            w.u8(4);
            w.str(resource);
            w.u32(*node);
            w.u32(*by);
        }
        Command::FailCountSet {
            resource,
            node,
            count,
        } => {
            w.u8(5);
            w.str(resource);
            w.u32(*node);
            w.u32(*count);
        }
        Command::Cleanup { resource, node } => {
            w.u8(6);
            match resource {
                None => w.u8(0),
                Some(r) => {
                    w.u8(1);
                    w.str(r);
                }
            }
            match node {
                None => w.u8(0),
                Some(n) => {
                    w.u8(1);
                    w.u32(*n);
                }
            }
        }
        Command::OpResult(o) => {
            w.u8(7);
            put_op(w, o);
        }
        Command::Fenced(f) => {
            w.u8(8);
            put_fence(w, f);
        }
        Command::Configure {
            epoch,
            text,
            digest,
        } => {
            w.u8(9);
            w.u64(*epoch);
            w.str(text);
            w.0.extend_from_slice(digest);
        }
        // A node before this command reports tag 10 as an unknown command
        // (ReplicaEvent::Malformed, logged) and does not apply it.
        Command::SetTargetRole { resource, role } => {
            w.u8(10);
            w.str(resource);
            put_role(w, *role);
        }
    }
}

fn get_command(r: &mut R) -> Result<Command, DecodeError> {
    Ok(match r.u8("command")? {
        1 => Command::SetStandby {
            node: r.u32("node id")?,
            standby: r.bool("standby")?,
        },
        2 => Command::Migrate {
            resource: r.name("resource id")?,
            target: get_target(r)?,
            expires: get_opt_wall(r, "migrate lifetime")?,
        },
        3 => Command::Unmigrate {
            resource: r.name("resource id")?,
        },
        4 => Command::FailCountAdd {
            resource: r.name("resource id")?,
            node: r.u32("node id")?,
            by: r.u32("fail count")?,
        },
        5 => Command::FailCountSet {
            resource: r.name("resource id")?,
            node: r.u32("node id")?,
            count: r.u32("fail count")?,
        },
        6 => Command::Cleanup {
            resource: if r.bool("cleanup resource")? {
                Some(r.name("resource id")?)
            } else {
                None
            },
            node: if r.bool("cleanup node")? {
                Some(r.u32("node id")?)
            } else {
                None
            },
        },
        7 => Command::OpResult(get_op(r)?),
        8 => Command::Fenced(get_fence(r)?),
        9 => Command::Configure {
            epoch: r.u64("configuration epoch")?,
            text: r.str("configuration text", CONFIG_TEXT_BYTES_MAX)?,
            digest: r.take(32, "configuration digest")?.try_into().expect("32"),
        },
        10 => Command::SetTargetRole {
            resource: r.name("resource id")?,
            role: get_role(r)?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "command",
                tag,
            });
        }
    })
}

fn put_stamp(w: &mut W, s: Stamp) {
    w.u64(s.at.0);
    w.u32(s.origin);
}

fn get_stamp(r: &mut R) -> Result<Stamp, DecodeError> {
    Ok(Stamp {
        at: WallMs(r.u64("stamp time")?),
        origin: r.u32("stamp origin")?,
    })
}

fn put_state(w: &mut W, s: &ClusterState) {
    let version = if s.target_roles.is_empty() {
        SNAPSHOT_VERSION_V1
    } else {
        SNAPSHOT_VERSION
    };
    w.u8(version);
    w.u64(s.clock.0);
    w.len(s.nodes.len());
    for (id, f) in &s.nodes {
        w.u32(*id);
        w.bool(f.standby);
        put_stamp(w, f.touched);
        w.u64(f.op_seq);
        w.len(f.fail_counts.len());
        for (rsc, fc) in &f.fail_counts {
            w.str(rsc);
            w.u32(fc.count);
            put_opt_wall(w, fc.last_failure);
        }
        w.len(f.ops.len());
        // In key order (the map's): the record carries the key.
        for (seq, rec) in f.ops.values() {
            w.u64(*seq);
            put_op(w, rec);
        }
    }
    w.len(s.migrates.len());
    for (rsc, e) in &s.migrates {
        w.str(rsc);
        match e.target {
            None => w.u8(0),
            Some(t) => {
                w.u8(1);
                put_target(w, t);
            }
        }
        put_opt_wall(w, e.expires);
        put_stamp(w, e.stamp);
    }
    w.len(s.fencing.len());
    for f in &s.fencing {
        put_fence(w, f);
    }
    match &s.config {
        None => w.u8(0),
        Some(c) => {
            w.u8(1);
            w.u64(c.epoch);
            w.str(&c.text);
            w.0.extend_from_slice(&c.digest);
            put_stamp(w, c.stamp);
        }
    }
    if version >= 2 {
        w.len(s.target_roles.len());
        for (rsc, e) in &s.target_roles {
            w.str(rsc);
            put_role(w, e.role);
            put_stamp(w, e.stamp);
        }
    }
}

fn get_state(r: &mut R) -> Result<ClusterState, DecodeError> {
    let v = r.u8("snapshot version")?;
    if !(SNAPSHOT_VERSION_V1..=SNAPSHOT_VERSION).contains(&v) {
        return Err(DecodeError::UnknownVersion {
            what: "snapshot",
            found: v,
            supported: SNAPSHOT_VERSION,
        });
    }
    let mut s = ClusterState {
        clock: WallMs(r.u64("clock")?),
        ..ClusterState::default()
    };
    for _ in 0..r.count("nodes")? {
        let id = r.u32("node id")?;
        let mut f = NodeFacts {
            standby: r.bool("standby")?,
            touched: get_stamp(r)?,
            op_seq: r.u64("operation sequence")?,
            ..NodeFacts::default()
        };
        for _ in 0..r.count("fail counts")? {
            let rsc = r.name("resource id")?;
            let count = r.u32("fail count")?;
            let last_failure = get_opt_wall(r, "last failure")?;
            f.fail_counts.insert(
                rsc,
                FailCount {
                    count,
                    last_failure,
                },
            );
        }
        for _ in 0..r.count("operation records")? {
            let seq = r.u64("operation sequence")?;
            let rec = get_op(r)?;
            let key = OpKey {
                resource: rec.resource.clone(),
                op: rec.op,
                interval_ms: rec.interval_ms,
            };
            f.ops.insert(key, (seq, rec));
        }
        s.nodes.insert(id, f);
    }
    let mut migrates = BTreeMap::new();
    for _ in 0..r.count("migrate entries")? {
        let rsc = r.name("resource id")?;
        let target = if r.bool("migrate target present")? {
            Some(get_target(r)?)
        } else {
            None
        };
        let expires = get_opt_wall(r, "migrate lifetime")?;
        let stamp = get_stamp(r)?;
        migrates.insert(
            rsc,
            MigrateEntry {
                target,
                expires,
                stamp,
            },
        );
    }
    s.migrates = migrates;
    for _ in 0..r.count("fencing history")? {
        s.fencing.push(get_fence(r)?);
    }
    if r.bool("configuration present")? {
        s.config = Some(ConfigEpoch {
            epoch: r.u64("configuration epoch")?,
            text: r.str("configuration text", CONFIG_TEXT_BYTES_MAX)?,
            digest: r.take(32, "configuration digest")?.try_into().expect("32"),
            stamp: get_stamp(r)?,
        });
    }
    if v >= 2 {
        for _ in 0..r.count("target roles")? {
            let rsc = r.name("resource id")?;
            let role = get_role(r)?;
            let stamp = get_stamp(r)?;
            s.target_roles.insert(rsc, TargetRoleEntry { role, stamp });
        }
    }
    check_state(&s)?;
    Ok(s)
}

/// The state as bytes (deterministic: equal states, equal bytes).
pub fn encode_snapshot(s: &ClusterState) -> Vec<u8> {
    let mut w = W(Vec::new());
    put_state(&mut w, s);
    w.0
}

/// The inverse of [`encode_snapshot`].
pub fn decode_snapshot(b: &[u8]) -> Result<ClusterState, DecodeError> {
    let mut r = R { b };
    let s = get_state(&mut r)?;
    r.end()?;
    Ok(s)
}

/// The rules a decoded state must keep (the ones `apply` asserts), so that
/// a corrupt file or a faulty peer is reported instead of crashing later.
fn check_state(s: &ClusterState) -> Result<(), DecodeError> {
    let bad = |what: String| Err(DecodeError::Inconsistent { what });
    if s.fencing.len() > FENCE_HISTORY_MAX || !s.fencing.windows(2).all(|w| w[0] < w[1]) {
        return bad("the fencing history is too long or not sorted".into());
    }
    if s.migrates.len() > MIGRATE_ENTRIES_MAX {
        return bad(format!("{} migrate entries", s.migrates.len()));
    }
    if s.target_roles.len() > TARGET_ROLE_ENTRIES_MAX {
        return bad(format!("{} target role entries", s.target_roles.len()));
    }
    for (id, f) in &s.nodes {
        if !(1..=32).contains(id) {
            return bad(format!("node id {id}"));
        }
        if f.ops.len() > OP_RECORDS_PER_NODE_MAX || f.ops.values().any(|(q, _)| *q >= f.op_seq) {
            return bad(format!("the operation history of node {id}"));
        }
        if f.fail_counts.values().any(|c| c.count == 0) {
            return bad(format!("a zero fail count on node {id}"));
        }
    }
    if let Some(c) = &s.config
        && config_digest(&c.text) != c.digest
    {
        return bad(format!("the digest of configuration epoch {}", c.epoch));
    }
    Ok(())
}

/// One command as bytes (the body of [`Message::Command`] without `at`).
pub fn encode_command(c: &Command) -> Vec<u8> {
    let mut w = W(Vec::new());
    put_command(&mut w, c);
    w.0
}

pub fn decode_command(b: &[u8]) -> Result<Command, DecodeError> {
    let mut r = R { b };
    let c = get_command(&mut r)?;
    r.end()?;
    Ok(c)
}

/// A message body (before fragmentation).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut w = W(Vec::new());
    match m {
        Message::Command { at, cmd } => {
            w.u8(1);
            w.u64(at.0);
            put_command(&mut w, cmd);
        }
        Message::Sync(s) => {
            w.u8(2);
            w.u64(s.ring.seq);
            w.u32(s.ring.rep);
            w.u32(s.side.bits());
            w.bool(s.fresh);
            put_state(&mut w, &s.state);
        }
        Message::Membership { canonical } => {
            w.u8(3);
            w.str(canonical);
        }
    }
    w.0
}

pub fn decode_message(b: &[u8]) -> Result<Message, DecodeError> {
    let mut r = R { b };
    let m = match r.u8("message kind")? {
        1 => Message::Command {
            at: WallMs(r.u64("command time")?),
            cmd: get_command(&mut r)?,
        },
        2 => Message::Sync(Sync {
            ring: RingId {
                seq: r.u64("ring sequence")?,
                rep: r.u32("ring representative")?,
            },
            side: NodeSet::from_bits(r.u32("side")?),
            fresh: r.bool("fresh")?,
            state: get_state(&mut r)?,
        }),
        3 => Message::Membership {
            canonical: r.str("membership summary", CONFIG_TEXT_BYTES_MAX)?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "message kind",
                tag,
            });
        }
    };
    r.end()?;
    Ok(m)
}

/// A message as totem payloads, each within totem's limit.
pub fn to_payloads(m: &Message) -> Vec<Vec<u8>> {
    let body = encode_message(m);
    assert!(
        body.len() <= MESSAGE_BYTES_MAX,
        "a state message of {} bytes: the limits on its parts keep it below {MESSAGE_BYTES_MAX}",
        body.len()
    );
    let parts = body.len().div_ceil(CHUNK_BYTES_MAX).max(1);
    let parts16 = u16::try_from(parts).expect("MESSAGE_BYTES_MAX / CHUNK_BYTES_MAX < 65536");
    (0..parts)
        .map(|i| {
            let chunk = &body[i * CHUNK_BYTES_MAX..((i + 1) * CHUNK_BYTES_MAX).min(body.len())];
            let mut p = Vec::with_capacity(FRAGMENT_HEADER_BYTES + chunk.len());
            p.push(SERVICE_STATE);
            p.push(WIRE_VERSION);
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&parts16.to_be_bytes());
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

/// Reassembles messages from payloads delivered in agreed order. Totem
/// delivers one sender's messages in the order it sent them, so the parts
/// of a message arrive in order (other senders' messages may come between
/// them). A ring change may cut a message: [`Reassembler::reset`] drops
/// partial messages when a new ring is installed, and the parts of a cut
/// message that arrive in the new ring are ignored. The sender of a command
/// learns it took effect when it is delivered back ([`super::replica`]),
/// and submits it again otherwise.
#[derive(Clone, Debug, Default)]
pub struct Reassembler {
    partial: BTreeMap<NodeId, (u16, u16, Vec<u8>)>,
}

impl Reassembler {
    /// Takes one payload (service byte included) from `sender`; returns the
    /// message it completes, if any.
    pub fn push(&mut self, sender: NodeId, payload: &[u8]) -> Result<Option<Message>, DecodeError> {
        let mut r = R { b: payload };
        let service = r.u8("service byte")?;
        if service != SERVICE_STATE {
            return Err(DecodeError::NotState {
                service: Some(service),
            });
        }
        let v = r.u8("wire version")?;
        if v != WIRE_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "state message",
                found: v,
                supported: WIRE_VERSION,
            });
        }
        let part = r.u16("fragment index")?;
        let parts = r.u16("fragment count")?;
        let chunk = r.b;
        if part > 0 && !self.partial.contains_key(&sender) {
            // The rest of a message whose beginning was delivered in an
            // earlier ring (the sender's queue carried it across the ring
            // change): the message is lost, as if the ring had cut it.
            return Ok(None);
        }
        let expected = self.partial.get(&sender).map_or(0, |p| p.0);
        let consistent = part < parts
            && part == expected
            && self.partial.get(&sender).is_none_or(|p| p.1 == parts);
        if !consistent {
            self.partial.remove(&sender);
            return Err(DecodeError::BadFragment {
                part,
                parts,
                expected,
            });
        }
        let entry = self
            .partial
            .entry(sender)
            .or_insert_with(|| (0, parts, Vec::new()));
        if entry.2.len() + chunk.len() > MESSAGE_BYTES_MAX {
            let len = (entry.2.len() + chunk.len()) as u64;
            self.partial.remove(&sender);
            return Err(DecodeError::TooLong {
                what: "state message",
                len,
                max: MESSAGE_BYTES_MAX as u64,
            });
        }
        entry.2.extend_from_slice(chunk);
        entry.0 += 1;
        if entry.0 < parts {
            return Ok(None);
        }
        let (_, _, body) = self.partial.remove(&sender).expect("present");
        decode_message(&body).map(Some)
    }

    /// Drops partial messages (after a ring change).
    pub fn reset(&mut self) {
        self.partial.clear();
    }
}
