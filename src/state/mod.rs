//! The replicated cluster state: node standby flags, migrate preferences,
//! target roles (`hactl resource start|stop`), fail counts, operation
//! history, fencing history and the resource configuration with its epoch. A pure state machine: commands travel
//! through totem in agreed order and every node applies them in that order
//! with [`ClusterState::apply`], so every node holds the same state.
//!
//! Public surface:
//! - [`Command`] and [`ClusterState::apply`]: the state machine (no clock:
//!   the time a command happened is the sender's wall clock, carried in the
//!   message, so every node applies the same value);
//! - queries for the controller and the scheduler ([`ClusterState::standby_nodes`],
//!   [`ClusterState::migrate_locations`], [`ClusterState::fail_count`], …) and
//!   [`ClusterState::fill_view`] / [`ClusterState::add_migrate_locations`] /
//!   [`ClusterState::apply_target_roles`], which fill the scheduler's inputs;
//! - [`codec`]: the versioned encoding of state messages on totem (service
//!   byte [`codec::SERVICE_STATE`]) and of snapshots;
//! - [`merge`]: the rules by which the states of two (or more) sides of a
//!   healed partition become one;
//! - [`replica`]: the sync protocol after a ring change, driven by totem's
//!   events (pure);
//! - [`membership`]: the membership summary nodes exchange and the check
//!   that names what differs;
//! - [`persist`]: atomic storage under `/var/lib/hactl/` (the only I/O here).
//!
//! docs/state.md describes the commands, the encoding, the merge rules and
//! why the sync converges.

pub mod codec;
pub mod membership;
pub mod merge;
pub mod persist;
pub mod replica;

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::config::{Config, Location, OpName, Role, Score};
use crate::scheduler::view::{ClusterView, FAIL_COUNT_INFINITY};
use crate::time::Instant;
use crate::totem::NodeId;

/// Operation records kept per node (the last result per key; the oldest go
/// first when a node has more keys than this, e.g. after many resources
/// were removed from the configuration).
pub const OP_RECORDS_PER_NODE_MAX: usize = 512;
/// Fencing history entries kept cluster-wide (the most recent).
pub const FENCE_HISTORY_MAX: usize = 64;
/// Migrate entries (preferences and unmigrate tombstones) kept.
pub const MIGRATE_ENTRIES_MAX: usize = 256;
/// Target role entries (roles and forget tombstones) kept.
pub const TARGET_ROLE_ENTRIES_MAX: usize = 256;
/// Longest resource id, device name or exit reason accepted, in bytes.
pub const NAME_BYTES_MAX: usize = 256;
/// Longest exit reason kept, in bytes (longer ones are cut at a char
/// boundary when the record is made).
pub const EXIT_REASON_BYTES_MAX: usize = 512;
/// Largest configuration text carried by [`Command::Configure`].
pub const CONFIG_TEXT_BYTES_MAX: usize = 1 << 20;

/// Wall-clock time: milliseconds since the Unix epoch. Replicated facts
/// carry wall time, not the crate's monotonic [`Instant`], because they
/// outlive processes and are compared across nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallMs(pub u64);

/// Who changed an entry and when: ordered by time, then origin node id, so
/// that "most recent" is a total order when sides of a partition compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub at: WallMs,
    pub origin: NodeId,
}

/// Where `migrate` sends a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateTarget {
    /// Prefer this node (score +INFINITY), crmsh's `migrate RSC NODE`.
    To(NodeId),
    /// Keep the resource off this node (score −INFINITY), crmsh's
    /// `migrate RSC` without a node: away from where it runs.
    AwayFrom(NodeId),
}

/// The fencing actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FenceAction {
    Off,
    On,
    Reboot,
}

impl FenceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Reboot => "reboot",
        }
    }
}

/// One fencing attempt, as recorded in the history.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FenceRecord {
    pub at: WallMs,
    pub target: NodeId,
    pub device: String,
    pub action: FenceAction,
    /// `None`: confirmed; `Some(reason)`: failed.
    pub error: Option<String>,
    /// The node that fenced.
    pub executor: NodeId,
}

/// The result of one agent operation on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub resource: String,
    pub node: NodeId,
    pub op: OpName,
    pub interval_ms: u64,
    /// The OCF return code.
    pub rc: i32,
    /// When the operation finished (the executing node's wall clock).
    pub at: WallMs,
    /// The agent's exit reason, if it gave one.
    pub exit_reason: String,
}

/// The key of the last result kept per operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpKey {
    pub resource: String,
    pub op: OpName,
    pub interval_ms: u64,
}

/// A command of the replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Put a node in standby (`true`) or bring it back online (`false`).
    SetStandby { node: NodeId, standby: bool },
    /// Prefer (or avoid) a node for a resource, until `expires` if given.
    Migrate {
        resource: String,
        target: MigrateTarget,
        expires: Option<WallMs>,
    },
    /// Forget the migrate preference of a resource.
    Unmigrate { resource: String },
    /// `hactl resource stop|start`: the role the resource (primitive,
    /// group or clone) should have, as Pacemaker's `target-role` meta
    /// attribute that crmsh sets; the latest change wins: it overrides the
    /// configuration's `meta.target_role` of that resource unless a
    /// configuration applied after it states one
    /// ([`ClusterState::target_role_overrides`]). `None` forgets it: the
    /// configuration's own meta decides again.
    SetTargetRole {
        resource: String,
        role: Option<Role>,
    },
    /// Count `by` more failures of `resource` on `node` (saturating at
    /// [`FAIL_COUNT_INFINITY`]).
    FailCountAdd {
        resource: String,
        node: NodeId,
        by: u32,
    },
    /// Set the fail count (0 clears it but keeps the operation history).
    FailCountSet {
        resource: String,
        node: NodeId,
        count: u32,
    },
    /// `hactl cleanup`: forget fail counts and operation history of a
    /// resource (every resource for `None`) on a node (every node for
    /// `None`), so that the scheduler looks at it afresh.
    Cleanup {
        resource: Option<String>,
        node: Option<NodeId>,
    },
    /// The result of an operation (the last one per key is kept).
    OpResult(OpRecord),
    /// A fencing attempt and how it ended.
    Fenced(FenceRecord),
    /// A new resource configuration. `text` is the canonical form
    /// ([`crate::config::canonical`]) of a configuration that the sender
    /// validated ([`prepare_config`]); `digest` is the SHA-256 of `text`.
    Configure {
        epoch: u64,
        text: String,
        digest: [u8; 32],
    },
}

/// Why [`ClusterState::apply`] left the state unchanged. Every node refuses
/// the same commands (the checks depend on the state and the command only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A configuration whose epoch is not above the current one: another
    /// change went first; `hactl config apply` should be run again.
    StaleEpoch { epoch: u64, current: u64 },
    /// The digest does not match the text (corrupted or forged).
    DigestMismatch { epoch: u64 },
    /// A name longer than [`NAME_BYTES_MAX`] or a text longer than
    /// [`CONFIG_TEXT_BYTES_MAX`].
    TooLong { what: &'static str, len: usize },
    /// A node id outside 1..=32.
    BadNode { node: NodeId },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::StaleEpoch { epoch, current } => write!(
                f,
                "configuration epoch {epoch} refused: the cluster is at epoch {current} \
                 (another change went first); check `hactl config show` and apply again"
            ),
            Refused::DigestMismatch { epoch } => write!(
                f,
                "configuration epoch {epoch} refused: its digest does not match its text"
            ),
            Refused::TooLong { what, len } => write!(f, "{what} of {len} bytes is too long"),
            Refused::BadNode { node } => write!(f, "node id {node} is outside 1..=32"),
        }
    }
}

impl std::error::Error for Refused {}

/// A migrate entry: a preference, or the tombstone of an unmigrate (kept so
/// that an unmigrate on one side of a partition beats an older migrate on
/// the other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateEntry {
    /// `None`: unmigrated.
    pub target: Option<MigrateTarget>,
    pub expires: Option<WallMs>,
    pub stamp: Stamp,
}

/// A target role entry: a role, or the tombstone of a forget (kept so
/// that a forget on one side of a partition beats an older role set on
/// the other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRoleEntry {
    /// `None`: forgotten (the configuration decides).
    pub role: Option<Role>,
    pub stamp: Stamp,
}

/// A fail count and when the last failure was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailCount {
    pub count: u32,
    pub last_failure: Option<WallMs>,
}

/// The facts about one node: taken as a unit from one side when a
/// partition heals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub standby: bool,
    /// Per resource.
    pub fail_counts: BTreeMap<String, FailCount>,
    /// The last result per key, with the order in which results arrived
    /// (`seq`, like Pacemaker's call-id).
    pub ops: BTreeMap<OpKey, (u64, OpRecord)>,
    /// The next `seq`.
    pub op_seq: u64,
    /// The last command that changed any of these facts.
    pub touched: Stamp,
}

/// The resource configuration in force, with its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEpoch {
    pub epoch: u64,
    pub text: String,
    pub digest: [u8; 32],
    pub stamp: Stamp,
}

impl ConfigEpoch {
    /// Parses the canonical text (validated when it was applied).
    pub fn parse(&self) -> Result<Config, String> {
        let file = format!("<replicated configuration, epoch {}>", self.epoch);
        crate::config::parse_str(&self.text, std::path::Path::new(&file))
            .map(|l| l.config)
            .map_err(|diags| {
                diags
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    }
}

/// The replicated state. Equal commands applied in equal order give equal
/// states (and equal encodings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// The highest command time applied (or merged): the replicated clock
    /// that expires migrate lifetimes deterministically.
    pub clock: WallMs,
    pub nodes: BTreeMap<NodeId, NodeFacts>,
    pub migrates: BTreeMap<String, MigrateEntry>,
    /// Per resource id, at most [`TARGET_ROLE_ENTRIES_MAX`].
    pub target_roles: BTreeMap<String, TargetRoleEntry>,
    /// Sorted (oldest first), at most [`FENCE_HISTORY_MAX`].
    pub fencing: Vec<FenceRecord>,
    pub config: Option<ConfigEpoch>,
}

/// SHA-256 of a configuration text.
pub fn config_digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Why `hactl config apply` refuses a new configuration.
#[derive(Debug)]
pub enum ConfigRefused {
    /// The file does not validate: every diagnostic, one a line.
    Invalid(String),
    /// The membership part differs from the configuration in force: such
    /// changes need every node's file changed and a restart, one node at a
    /// time. The differences, one a line.
    MembershipChanged(Vec<String>),
}

impl std::fmt::Display for ConfigRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigRefused::Invalid(d) => write!(f, "{d}\nthe configuration was not applied"),
            ConfigRefused::MembershipChanged(diffs) => {
                write!(
                    f,
                    "the configuration changes what the members must agree on, which \
                     `hactl config apply` cannot change in a running cluster:"
                )?;
                for d in diffs {
                    write!(f, "\n  {d}")?;
                }
                write!(
                    f,
                    "\nchange /etc/hactl/cluster.toml on every node and restart hactld one node \
                     at a time, or apply a file that keeps these settings"
                )
            }
        }
    }
}

impl std::error::Error for ConfigRefused {}

/// What `hactl config apply FILE` sends: validates `text` (named `file` in
/// messages), checks that its membership part equals the configuration in
/// force, and makes the [`Command::Configure`] for the next epoch.
pub fn prepare_config(
    text: &str,
    file: &std::path::Path,
    current: Option<&ConfigEpoch>,
) -> Result<Command, ConfigRefused> {
    let loaded = crate::config::parse_str(text, file).map_err(|diags| {
        ConfigRefused::Invalid(
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let canonical = crate::config::canonical(&loaded.config);
    let mut epoch = 1;
    if let Some(cur) = current {
        epoch = cur.epoch + 1;
        let here = cur.parse().map_err(ConfigRefused::Invalid)?;
        let diffs = membership::Summary::of(&here)
            .differences(&membership::Summary::of(&loaded.config))
            .unwrap_or_else(|e| vec![e]);
        if !diffs.is_empty() {
            return Err(ConfigRefused::MembershipChanged(diffs));
        }
    }
    if canonical.len() > CONFIG_TEXT_BYTES_MAX {
        return Err(ConfigRefused::Invalid(format!(
            "{}: the configuration is {} bytes in canonical form; at most {} are carried",
            file.display(),
            canonical.len(),
            CONFIG_TEXT_BYTES_MAX
        )));
    }
    let digest = config_digest(&canonical);
    Ok(Command::Configure {
        epoch,
        text: canonical,
        digest,
    })
}

fn check_name(what: &'static str, s: &str) -> Result<(), Refused> {
    if s.len() > NAME_BYTES_MAX {
        Err(Refused::TooLong { what, len: s.len() })
    } else {
        Ok(())
    }
}

fn check_node(node: NodeId) -> Result<(), Refused> {
    if (1..=32).contains(&node) {
        Ok(())
    } else {
        Err(Refused::BadNode { node })
    }
}

/// Cuts `s` to at most `max` bytes at a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl ClusterState {
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// Applies one command delivered in agreed order. `origin` is the node
    /// that broadcast it and `at` the wall time it carries (the sender's
    /// clock): both come from the message, so every node computes the same
    /// state. Refused commands leave the state unchanged.
    pub fn apply(&mut self, origin: NodeId, cmd: &Command, at: WallMs) -> Result<(), Refused> {
        self.check(cmd)?;
        let stamp = Stamp { at, origin };
        self.clock = self.clock.max(at);
        match cmd {
            Command::SetStandby { node, standby } => {
                let f = self.node_mut(*node, stamp);
                f.standby = *standby;
            }
            Command::Migrate {
                resource,
                target,
                expires,
            } => {
                self.migrates.insert(
                    resource.clone(),
                    MigrateEntry {
                        target: Some(*target),
                        expires: *expires,
                        stamp,
                    },
                );
            }
            Command::Unmigrate { resource } => {
                self.migrates.insert(
                    resource.clone(),
                    MigrateEntry {
                        target: None,
                        expires: None,
                        stamp,
                    },
                );
            }
            Command::SetTargetRole { resource, role } => {
                self.target_roles
                    .insert(resource.clone(), TargetRoleEntry { role: *role, stamp });
            }
            Command::FailCountAdd { by: 0, .. } => {
                // Nothing to count (a zero entry would break the rule that
                // kept fail counts are positive).
            }
            Command::FailCountAdd { resource, node, by } => {
                let f = self.node_mut(*node, stamp);
                let e = f.fail_counts.entry(resource.clone()).or_insert(FailCount {
                    count: 0,
                    last_failure: None,
                });
                e.count = e.count.saturating_add(*by).min(FAIL_COUNT_INFINITY);
                e.last_failure = Some(at);
            }
            Command::FailCountSet {
                resource,
                node,
                count,
            } => {
                let f = self.node_mut(*node, stamp);
                if *count == 0 {
                    f.fail_counts.remove(resource);
                } else {
                    f.fail_counts.insert(
                        resource.clone(),
                        FailCount {
                            count: (*count).min(FAIL_COUNT_INFINITY),
                            last_failure: Some(at),
                        },
                    );
                }
            }
            Command::Cleanup { resource, node } => {
                let ids: Vec<NodeId> = match node {
                    Some(n) => vec![*n],
                    None => self.nodes.keys().copied().collect(),
                };
                for id in ids {
                    let f = self.node_mut(id, stamp);
                    match resource {
                        Some(r) => {
                            f.fail_counts.remove(r);
                            f.ops.retain(|k, _| &k.resource != r);
                        }
                        None => {
                            f.fail_counts.clear();
                            f.ops.clear();
                        }
                    }
                }
            }
            Command::OpResult(rec) => {
                let f = self.node_mut(rec.node, stamp);
                let key = OpKey {
                    resource: rec.resource.clone(),
                    op: rec.op,
                    interval_ms: rec.interval_ms,
                };
                let seq = f.op_seq;
                f.op_seq += 1;
                let mut rec = rec.clone();
                rec.exit_reason = truncate_utf8(&rec.exit_reason, EXIT_REASON_BYTES_MAX).into();
                f.ops.insert(key, (seq, rec));
                if f.ops.len() > OP_RECORDS_PER_NODE_MAX {
                    let oldest = f
                        .ops
                        .iter()
                        .min_by_key(|(_, (s, _))| *s)
                        .map(|(k, _)| k.clone())
                        .expect("not empty");
                    f.ops.remove(&oldest);
                }
            }
            Command::Fenced(rec) => {
                self.fencing.push(rec.clone());
                self.normalize_fencing();
            }
            Command::Configure {
                epoch,
                text,
                digest,
            } => {
                let current = self.config.as_ref().map_or(0, |c| c.epoch);
                self.config = Some(ConfigEpoch {
                    epoch: *epoch,
                    text: text.clone(),
                    digest: *digest,
                    stamp,
                });
                debug_assert!(*epoch > current);
            }
        }
        self.expire(self.clock);
        self.check_invariants();
        Ok(())
    }

    /// The checks that refuse a command, before anything changes.
    fn check(&self, cmd: &Command) -> Result<(), Refused> {
        match cmd {
            Command::SetStandby { node, .. } => check_node(*node),
            Command::Migrate {
                resource, target, ..
            } => {
                check_name("resource id", resource)?;
                match target {
                    MigrateTarget::To(n) | MigrateTarget::AwayFrom(n) => check_node(*n),
                }
            }
            Command::Unmigrate { resource } | Command::SetTargetRole { resource, .. } => {
                check_name("resource id", resource)
            }
            Command::FailCountAdd { resource, node, .. }
            | Command::FailCountSet { resource, node, .. } => {
                check_name("resource id", resource)?;
                check_node(*node)
            }
            Command::Cleanup { resource, node } => {
                if let Some(r) = resource {
                    check_name("resource id", r)?;
                }
                node.map_or(Ok(()), check_node)
            }
            Command::OpResult(rec) => {
                check_name("resource id", &rec.resource)?;
                check_node(rec.node)
            }
            Command::Fenced(rec) => {
                check_name("fence device id", &rec.device)?;
                if let Some(e) = &rec.error {
                    check_name("fencing error", e)?;
                }
                check_node(rec.target)?;
                check_node(rec.executor)
            }
            Command::Configure {
                epoch,
                text,
                digest,
            } => {
                if text.len() > CONFIG_TEXT_BYTES_MAX {
                    return Err(Refused::TooLong {
                        what: "configuration text",
                        len: text.len(),
                    });
                }
                let current = self.config.as_ref().map_or(0, |c| c.epoch);
                if *epoch <= current {
                    return Err(Refused::StaleEpoch {
                        epoch: *epoch,
                        current,
                    });
                }
                if config_digest(text) != *digest {
                    return Err(Refused::DigestMismatch { epoch: *epoch });
                }
                Ok(())
            }
        }
    }

    fn node_mut(&mut self, node: NodeId, stamp: Stamp) -> &mut NodeFacts {
        let f = self.nodes.entry(node).or_default();
        f.touched = f.touched.max(stamp);
        f
    }

    /// Sorts and bounds the fencing history (deterministic whatever order
    /// entries came in: merges rely on it).
    fn normalize_fencing(&mut self) {
        self.fencing.sort();
        self.fencing.dedup();
        let excess = self.fencing.len().saturating_sub(FENCE_HISTORY_MAX);
        self.fencing.drain(..excess);
    }

    /// Drops migrate preferences whose lifetime ended by `now`, and the
    /// oldest tombstones beyond [`MIGRATE_ENTRIES_MAX`]. [`apply`] and the
    /// merge call it with the replicated clock, so every node drops the same
    /// entries; a caller that wants to know what is in force at its own time
    /// uses the queries, which take `now` and leave the state alone.
    ///
    /// [`apply`]: ClusterState::apply
    pub fn expire(&mut self, now: WallMs) {
        for e in self.migrates.values_mut() {
            if e.target.is_some() && e.expires.is_some_and(|x| x <= now) {
                // An expired preference becomes a tombstone: a side of a
                // partition that still holds it must not bring it back.
                e.target = None;
                e.expires = None;
            }
        }
        while self.migrates.len() > MIGRATE_ENTRIES_MAX {
            let victim = self
                .migrates
                .iter()
                .min_by_key(|(k, e)| (e.target.is_some(), e.stamp, (*k).clone()))
                .map(|(k, _)| k.clone())
                .expect("not empty");
            self.migrates.remove(&victim);
        }
        while self.target_roles.len() > TARGET_ROLE_ENTRIES_MAX {
            let victim = self
                .target_roles
                .iter()
                .min_by_key(|(k, e)| (e.role.is_some(), e.stamp, (*k).clone()))
                .map(|(k, _)| k.clone())
                .expect("not empty");
            self.target_roles.remove(&victim);
        }
    }

    /// The invariants every state keeps; a broken one is a bug.
    fn check_invariants(&self) {
        assert!(self.fencing.len() <= FENCE_HISTORY_MAX);
        assert!(self.fencing.windows(2).all(|w| w[0] < w[1]));
        assert!(self.migrates.len() <= MIGRATE_ENTRIES_MAX);
        assert!(self.target_roles.len() <= TARGET_ROLE_ENTRIES_MAX);
        for f in self.nodes.values() {
            assert!(f.ops.len() <= OP_RECORDS_PER_NODE_MAX);
            assert!(f.ops.values().all(|(s, _)| *s < f.op_seq));
            assert!(f.fail_counts.values().all(|c| c.count > 0));
        }
    }

    // ------------------------------------------------------------ queries

    /// Nodes in standby.
    pub fn standby_nodes(&self) -> BTreeSet<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, f)| f.standby)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_standby(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|f| f.standby)
    }

    /// Migrate preferences in force at `now`: resource → target.
    pub fn migrate_locations(&self, now: WallMs) -> BTreeMap<&str, MigrateTarget> {
        self.migrates
            .iter()
            .filter(|(_, e)| e.expires.is_none_or(|x| x > now))
            .filter_map(|(r, e)| e.target.map(|t| (r.as_str(), t)))
            .collect()
    }

    /// Target roles in force: resource → role (forgotten ones left out).
    pub fn target_roles(&self) -> BTreeMap<&str, Role> {
        self.target_roles
            .iter()
            .filter_map(|(r, e)| e.role.map(|role| (r.as_str(), role)))
            .collect()
    }

    pub fn fail_count(&self, resource: &str, node: NodeId) -> u32 {
        self.nodes
            .get(&node)
            .and_then(|f| f.fail_counts.get(resource))
            .map_or(0, |c| c.count)
    }

    /// The last result of each operation of `resource` on `node`, in the
    /// order they arrived.
    pub fn op_history(&self, resource: &str, node: NodeId) -> Vec<&OpRecord> {
        let Some(f) = self.nodes.get(&node) else {
            return Vec::new();
        };
        let mut v: Vec<&(u64, OpRecord)> = f
            .ops
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .map(|(_, v)| v)
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v.into_iter().map(|(_, r)| r).collect()
    }

    pub fn config_epoch(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.epoch)
    }

    // ------------------------------------------------ the scheduler's inputs

    /// Adds the migrate preferences in force at `now` to a configuration as
    /// location constraints named like Pacemaker's (`cli-prefer-RSC` at
    /// +INFINITY, `cli-ban-RSC-on-NODE` at −INFINITY). Preferences for
    /// resources or nodes the configuration does not know are left out.
    pub fn add_migrate_locations(&self, config: &mut Config, now: WallMs) {
        for (rsc, target) in self.migrate_locations(now) {
            let known = config.resources.iter().any(|r| r.id == rsc)
                || config.groups.iter().any(|g| g.id == rsc)
                || config.clones.iter().any(|c| c.id == rsc);
            let (id, node, score) = match target {
                MigrateTarget::To(n) => (format!("cli-prefer-{rsc}"), n, Score::INFINITY),
                MigrateTarget::AwayFrom(n) => {
                    let Some(name) = config.nodes.iter().find(|x| x.id == n) else {
                        continue;
                    };
                    (
                        format!("cli-ban-{rsc}-on-{}", name.name),
                        n,
                        Score::MINUS_INFINITY,
                    )
                }
            };
            let Some(node) = config.nodes.iter().find(|x| x.id == node) else {
                continue;
            };
            if known {
                config.locations.push(Location {
                    id,
                    resource: rsc.to_string(),
                    node: node.name.clone(),
                    score,
                });
            }
        }
    }

    /// Sets the target roles in force ([`Command::SetTargetRole`]) as the
    /// `meta.target_role` of the resource, group or clone of that id (see
    /// [`ClusterState::target_role_overrides`]). (The scheduler reads the
    /// nearest `target_role` from the primitive up through its group and
    /// clone, as Pacemaker does.)
    pub fn apply_target_roles(&self, config: &mut Config) {
        for (id, role) in self.target_role_overrides(config) {
            if let Some(meta) = meta_mut(config, &id) {
                meta.target_role = role;
            }
        }
    }

    /// What the replicated target roles change in `config`: id → the
    /// `meta.target_role` it gets. The latest change wins, as in Pacemaker,
    /// where `crm resource start|stop` writes the very meta attribute the
    /// configuration holds:
    /// - an entry overrides the configuration's own `meta.target_role` of
    ///   that id, unless the configuration in force states one and was
    ///   applied (`hactl config apply`, [`Command::Configure`]) after the
    ///   entry was made; a configuration that states none leaves the entry
    ///   in force;
    /// - an entry on a group or clone that sets a role also clears the
    ///   older roles of what it contains (its members, the cloned resource
    ///   and that group's members), from the configuration or from entries,
    ///   so that starting or stopping the group or clone acts on all of it
    ///   (crmsh resets the children's `target-role` the same way);
    /// - a forgotten entry (`role: None`) changes nothing: the
    ///   configuration decides.
    ///
    /// Entries for ids the configuration does not know are left out.
    pub fn target_role_overrides(&self, config: &Config) -> BTreeMap<String, Option<Role>> {
        // When the value each id has now was set; the configuration's own
        // values count from the time it was applied (never, for the file
        // the daemon started with).
        let config_stamp = self.config.as_ref().map(|c| c.stamp).unwrap_or_default();
        let mut set_at: BTreeMap<&str, Stamp> = BTreeMap::new();
        for (id, meta) in metas(config) {
            if meta.target_role.is_some() {
                set_at.insert(id, config_stamp);
            }
        }
        let mut entries: Vec<(&String, &TargetRoleEntry)> = self.target_roles.iter().collect();
        entries.sort_by_key(|(id, e)| (e.stamp, (*id).clone()));
        let mut out = BTreeMap::new();
        for (id, e) in entries {
            let Some(role) = e.role else { continue };
            let Some((id, _)) = metas(config).find(|(m, _)| *m == id.as_str()) else {
                continue;
            };
            if set_at.get(id).is_some_and(|s| *s > e.stamp) {
                continue;
            }
            out.insert(id.to_string(), Some(role));
            set_at.insert(id, e.stamp);
            for inner in contained(config, id) {
                if set_at.get(inner).is_some_and(|s| *s < e.stamp) {
                    out.insert(inner.to_string(), None);
                    set_at.remove(inner);
                }
            }
        }
        out
    }

    /// The target roles in force with `running` (set with `hactl resource
    /// start|stop`) that applying `new` replaces, because `new` states
    /// another `meta.target_role` for that id (the latest change wins):
    /// (id, the role in force, the configuration's), for `hactl config
    /// apply` to tell the operator.
    pub fn target_roles_replaced_by(
        &self,
        running: &Config,
        new: &Config,
    ) -> Vec<(String, Role, Role)> {
        let in_force = self.target_role_overrides(running);
        self.target_roles()
            .into_iter()
            .filter(|(id, role)| in_force.get(*id) == Some(&Some(*role)))
            .filter_map(|(id, role)| {
                let (_, meta) = metas(new).find(|(m, _)| *m == id)?;
                let theirs = meta.target_role?;
                (theirs != role).then(|| (id.to_string(), role, theirs))
            })
            .collect()
    }

    /// Why `hactl resource start RESOURCE` would not start it: the group or
    /// clone around it whose target role in force (after
    /// [`ClusterState::apply_target_roles`]) is Stopped. Starting a member
    /// of a stopped group alone would defeat the operator's stop of the
    /// group (and could not start the members before it anyway), so the
    /// API refuses it and names the group to start instead.
    pub fn stopped_container(&self, config: &Config, resource: &str) -> Option<String> {
        let mut cfg = config.clone();
        self.apply_target_roles(&mut cfg);
        let group = cfg
            .groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == resource));
        let around = group.map_or(resource, |g| g.id.as_str());
        let clone = cfg.clones.iter().find(|c| c.resource == around);
        [
            group.map(|g| (&g.id, g.meta.target_role)),
            clone.map(|c| (&c.id, c.meta.target_role)),
        ]
        .into_iter()
        .flatten()
        .find(|(_, role)| *role == Some(Role::Stopped))
        .map(|(id, _)| id.clone())
    }

    /// Fills what the replicated state knows into a scheduler view whose
    /// `nodes` the controller built from the membership (names from
    /// `config`): standby flags, and per resource and node the role implied
    /// by the operation history, fail counts with the time of the last
    /// failure, and bans after hard errors. Wall times become monotonic
    /// ones through the pair (`now_wall`, `now`), read together by the
    /// caller.
    pub fn fill_view(
        &self,
        config: &Config,
        view: &mut ClusterView,
        now_wall: WallMs,
        now: Instant,
    ) {
        let name_of = |id: NodeId| config.nodes.iter().find(|n| n.id == id).map(|n| &n.name);
        let to_instant = |t: WallMs| {
            let ago = now_wall.0.saturating_sub(t.0);
            Instant::from_micros(now.as_micros().saturating_sub(ago.saturating_mul(1_000)))
        };
        for (&id, facts) in &self.nodes {
            let Some(name) = name_of(id) else { continue };
            if let Some(n) = view.node_mut(name) {
                n.standby = facts.standby;
            }
            let mut resources: BTreeSet<&str> =
                facts.fail_counts.keys().map(String::as_str).collect();
            resources.extend(facts.ops.keys().map(|k| k.resource.as_str()));
            for rsc in resources {
                let st = view.resource_mut(rsc, name);
                if let Some(fc) = facts.fail_counts.get(rsc) {
                    st.fail_count = fc.count;
                    st.last_failure = fc.last_failure.map(to_instant);
                }
                let mut history: Vec<&(u64, OpRecord)> = facts
                    .ops
                    .values()
                    .filter(|(_, r)| r.resource == rsc)
                    .collect();
                history.sort_by_key(|(s, _)| *s);
                for (_, rec) in history {
                    st.known = true;
                    if rec.rc == crate::controller::RC_PENDING {
                        // Still running: a start in flight counts as active
                        // there, so that it is never started elsewhere too.
                        if rec.op == OpName::Start {
                            st.start_pending = true;
                        }
                        continue;
                    }
                    st.role = role_after(st.role, rec);
                    match rec.rc {
                        // OCF_ERR_PERM, OCF_ERR_INSTALLED: not on this node.
                        4 | 5 => st.banned = true,
                        // OCF_ERR_CONFIGURED: nowhere until cleaned up.
                        6 => st.banned_everywhere = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Every id with meta attributes (resources, groups, clones) and its meta.
fn metas(config: &Config) -> impl Iterator<Item = (&str, &crate::config::Meta)> {
    let r = config.resources.iter().map(|r| (r.id.as_str(), &r.meta));
    let g = config.groups.iter().map(|g| (g.id.as_str(), &g.meta));
    let c = config.clones.iter().map(|c| (c.id.as_str(), &c.meta));
    r.chain(g).chain(c)
}

fn meta_mut<'a>(config: &'a mut Config, id: &str) -> Option<&'a mut crate::config::Meta> {
    if let Some(r) = config.resources.iter_mut().find(|r| r.id == id) {
        Some(&mut r.meta)
    } else if let Some(g) = config.groups.iter_mut().find(|g| g.id == id) {
        Some(&mut g.meta)
    } else {
        config
            .clones
            .iter_mut()
            .find(|c| c.id == id)
            .map(|c| &mut c.meta)
    }
}

/// What a group or clone contains, at every depth (a clone's resource, and
/// that group's members); nothing for a primitive.
fn contained<'a>(config: &'a Config, id: &str) -> Vec<&'a str> {
    let members = |g: &str| {
        config
            .groups
            .iter()
            .find(|x| x.id == g)
            .map(|x| x.members.iter().map(String::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    if let Some(c) = config.clones.iter().find(|c| c.id == id) {
        let mut v = vec![c.resource.as_str()];
        v.extend(members(&c.resource));
        v
    } else {
        members(id)
    }
}

/// The role a resource has after an operation result (Pacemaker's reading
/// of the history, reduced to what the view holds).
fn role_after(role: Role, rec: &OpRecord) -> Role {
    match (rec.op, rec.rc) {
        (OpName::Start, 0) => Role::Started,
        (OpName::Stop, 0) => Role::Stopped,
        (OpName::Promote, 0) => Role::Promoted,
        (OpName::Demote, 0) => Role::Unpromoted,
        (OpName::Monitor, 0) if role == Role::Stopped => Role::Started,
        (OpName::Monitor, 7) => Role::Stopped,
        (OpName::Monitor, 8) => Role::Promoted,
        // A failed start or stop leaves it where it was as far as anyone
        // knows; a failed monitor (other than 7) means it is there, broken.
        (OpName::Monitor, _) if role == Role::Stopped => Role::Started,
        _ => role,
    }
}

#[cfg(test)]
mod tests;
