//! The typed configuration model: what `cluster.toml` means once parsed and
//! validated. Every layer reads its settings from here; nothing here does I/O.
//!
//! Times carry their unit in the field name (`_ms`). Defaults are filled in by
//! the parser, so a [`Config`] is always complete.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::score::Score;

/// The lowest and highest node id a cluster may use.
pub const NODE_ID_MIN: u32 = 1;
pub const NODE_ID_MAX: u32 = 32;
/// Totem carries at most two links (redundant rings).
pub const LINKS_MAX: usize = 2;
/// The default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hactl/cluster.toml";
/// The default location of the shared cluster key.
pub const DEFAULT_AUTHKEY_PATH: &str = "/etc/hactl/authkey";

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub cluster: ClusterSection,
    pub totem: TotemSection,
    pub quorum: QuorumSection,
    pub nodes: Vec<Node>,
    pub fence_devices: Vec<FenceDevice>,
    pub resources: Vec<Resource>,
    pub groups: Vec<Group>,
    pub clones: Vec<Clone>,
    pub locations: Vec<Location>,
    pub colocations: Vec<Colocation>,
    pub orders: Vec<Order>,
}

impl Config {
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// Sum of the configured votes of every node.
    pub fn total_configured_votes(&self) -> u32 {
        self.nodes.iter().map(|n| n.votes).sum()
    }
}

// ---------------------------------------------------------------- [cluster]

#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSection {
    pub name: String,
    pub no_quorum_policy: NoQuorumPolicy,
    /// `fencing_disabled_i_understand_split_brain = true`: no node is ever
    /// fenced, even with fence devices configured; a node that disappears
    /// is taken as cleanly down. For labs and tests.
    pub fencing_disabled: bool,
    pub resource_defaults: ResourceDefaults,
    pub op_defaults: OpDefaults,
}

/// What a partition without quorum does with its resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoQuorumPolicy {
    Stop,
    Freeze,
    Ignore,
}

/// Cluster-wide defaults of resource meta attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDefaults {
    pub resource_stickiness: Score,
    /// Failures on a node before the resource is banned from it; `None` is
    /// INFINITY (never banned), as in Pacemaker.
    pub migration_threshold: Option<u32>,
    /// How long a failure counts; 0 means forever.
    pub failure_timeout_ms: u64,
}

/// Cluster-wide defaults of operations.
#[derive(Clone, Debug, PartialEq)]
pub struct OpDefaults {
    pub timeout_ms: u64,
    /// Interval of the monitor given to resources that configure none; 0
    /// means such resources are not monitored (Pacemaker's behaviour).
    pub monitor_interval_ms: u64,
}

// ---------------------------------------------------------------- [totem]

#[derive(Clone, Debug, PartialEq)]
pub struct TotemSection {
    pub transport: Transport,
    pub links: Vec<Link>,
    pub authkey: PathBuf,
    /// Crypto is always on unless this loudly named switch is set.
    pub insecure_no_crypto: bool,
    pub timers: TotemTimers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP multicast.
    Udp,
    /// UDP unicast to every configured node address.
    Udpu,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Optional: the network every node's address on this link lies in.
    pub network: Option<IpNet>,
    /// Multicast group (transport `udp` only).
    pub mcast_addr: Option<IpAddr>,
    pub port: u16,
    pub ttl: u8,
}

/// An address with a prefix length, e.g. `10.0.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IpNet {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len);
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                (u32::from(net) & mask) == (u32::from(*ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len);
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                (u128::from(net) & mask) == (u128::from(*ip) & mask)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Totem timers, in milliseconds, with corosync's names and meanings.
#[derive(Clone, Debug, PartialEq)]
pub struct TotemTimers {
    /// Token timeout: a token not seen for this long is lost.
    pub token_ms: u64,
    /// Added to `token_ms` per node beyond two.
    pub token_coefficient_ms: u64,
    pub token_retransmits_before_loss_const: u32,
    /// Wait for consensus before starting a new membership round.
    pub consensus_ms: u64,
    /// Wait for join messages during membership formation.
    pub join_ms: u64,
    /// Check for other rings (partitions to merge) this often.
    pub merge_ms: u64,
    /// Check whether a failed interface came back this often.
    pub downcheck_ms: u64,
    /// Token rotations without receiving a message before a node is failed.
    pub fail_recv_const: u32,
    /// Rotations without new messages before the token is held.
    pub seqno_unchanged_const: u32,
    /// How long the representative keeps the token of an idle ring before
    /// passing it on (0: never). At most [`HOLD_MAX_PERCENT_OF_RETRANSMIT`]
    /// % of the token retransmit interval is used.
    pub hold_ms: u64,
    /// Upper bound of a random delay before sending a join (0: none).
    pub send_join_ms: u64,
    /// Messages a node may send per token visit.
    pub max_messages: u32,
    /// Messages all nodes together may send per token rotation.
    pub window_size: u32,
}

/// The token hold may use at most this share of the token retransmit
/// interval. A held token returns to every member after the hold plus one
/// rotation, and members after the holder re-send it `hold` sooner (so the
/// hold costs the members before it none of their token timeout): with two
/// holds inside the retransmit interval and room for a rotation, a held
/// token never looks lost, and holding changes neither retransmissions nor
/// failure detection.
pub const HOLD_MAX_PERCENT_OF_RETRANSMIT: u64 = 40;

impl TotemTimers {
    /// The token timeout in effect for a ring of `nodes` members
    /// (corosync: token + (nodes − 2) × token_coefficient for 3+ nodes).
    pub fn effective_token_ms(&self, nodes: usize) -> u64 {
        let extra = nodes.saturating_sub(2) as u64;
        self.token_ms + extra * self.token_coefficient_ms
    }

    /// How long a passed-on token may stay away before it is re-sent
    /// (corosync: token / (token_retransmits_before_loss_const + 0.2)).
    pub fn token_retransmit_ms(&self, nodes: usize) -> u64 {
        let token_ms = self.effective_token_ms(nodes);
        (token_ms * 10 / (u64::from(self.token_retransmits_before_loss_const) * 10 + 2)).max(1)
    }

    /// The longest token hold allowed for a ring of `nodes` members.
    pub fn hold_max_ms(&self, nodes: usize) -> u64 {
        self.token_retransmit_ms(nodes) * HOLD_MAX_PERCENT_OF_RETRANSMIT / 100
    }

    /// The token hold in effect: `hold_ms`, clamped to [`Self::hold_max_ms`].
    pub fn effective_hold_ms(&self, nodes: usize) -> u64 {
        self.hold_ms.min(self.hold_max_ms(nodes))
    }
}

// ---------------------------------------------------------------- [quorum]

#[derive(Clone, Debug, PartialEq)]
pub struct QuorumSection {
    /// `None`: the sum of the nodes' votes.
    pub expected_votes: Option<u32>,
    pub two_node: bool,
    pub wait_for_all: bool,
    pub last_man_standing: bool,
    pub last_man_standing_window_ms: u64,
    pub auto_tie_breaker: bool,
    pub auto_tie_breaker_node: TieBreaker,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TieBreaker {
    Lowest,
    Highest,
    /// Node ids, most preferred first.
    List(Vec<u32>),
}

// ---------------------------------------------------------------- [[node]]

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub id: u32,
    /// One address per totem link, in link order.
    pub addresses: Vec<IpAddr>,
    pub votes: u32,
    /// Fencing topology: level 1 first; a level succeeds when all of its
    /// devices succeed.
    pub fence_levels: Vec<Vec<String>>,
}

// ---------------------------------------------------------------- [[fence_device]]

#[derive(Clone, Debug, PartialEq)]
pub struct FenceDevice {
    pub id: String,
    pub kind: FenceKind,
    /// Limit for one operation (off, on, reboot, status).
    pub timeout_ms: u64,
    /// Fixed wait before fencing with this device. In a two-node cluster,
    /// give the device that fences the node which should survive a fence
    /// race a delay: its peer is then shot first.
    pub delay_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FenceKind {
    Ipmi {
        host: String,
        port: u16,
        username: String,
        password: Secret,
        /// RMCP+ cipher suite: 3 or 17.
        cipher_suite: u8,
        privilege: IpmiPrivilege,
    },
    Libvirt {
        /// `qemu:///system`, `qemu+unix:///system?socket=PATH` or
        /// `qemu+tcp://HOST[:PORT]/system`.
        uri: String,
        /// Domain name or UUID.
        domain: String,
    },
    Agent {
        /// The `fence_*` program, a name on PATH or an absolute path.
        agent: String,
        /// key=value pairs passed on the agent's stdin.
        params: BTreeMap<String, String>,
        password: Option<Secret>,
    },
    Watchdog {
        device: PathBuf,
        timeout_s: u32,
    },
}

impl FenceKind {
    pub fn name(&self) -> &'static str {
        match self {
            FenceKind::Ipmi { .. } => "ipmi",
            FenceKind::Libvirt { .. } => "libvirt",
            FenceKind::Agent { .. } => "agent",
            FenceKind::Watchdog { .. } => "watchdog",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpmiPrivilege {
    Operator,
    Administrator,
}

/// A secret: read from a file at use (preferred), or given inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Inline(String),
}

// ---------------------------------------------------------------- [[resource]]

#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub id: String,
    pub agent: Agent,
    pub params: BTreeMap<String, String>,
    pub ops: Vec<Operation>,
    pub meta: Meta,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agent {
    Systemd { unit: String },
    IpAddr,
    Filesystem,
    Ocf { provider: String, kind: String },
    Lsb { script: String },
}

impl std::fmt::Display for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Agent::Systemd { unit } => write!(f, "systemd:{unit}"),
            Agent::IpAddr => f.write_str("ipaddr"),
            Agent::Filesystem => f.write_str("filesystem"),
            Agent::Ocf { provider, kind } => write!(f, "ocf:{provider}:{kind}"),
            Agent::Lsb { script } => write!(f, "lsb:{script}"),
        }
    }
}

/// Resource meta attributes; `None` means "use the cluster default".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub resource_stickiness: Option<Score>,
    pub migration_threshold: Option<Option<u32>>,
    pub failure_timeout_ms: Option<u64>,
    pub target_role: Option<Role>,
    pub priority: Option<i64>,
}

impl Meta {
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Stopped,
    Started,
    Unpromoted,
    Promoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stopped => "stopped",
            Role::Started => "started",
            Role::Unpromoted => "unpromoted",
            Role::Promoted => "promoted",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub name: OpName,
    /// 0 for one-shot operations; the period of a recurring monitor.
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub on_fail: OnFail,
    /// For monitors of promotable clones: the role this monitor checks.
    pub role: Option<Role>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpName {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
}

impl OpName {
    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Start => "start",
            OpName::Stop => "stop",
            OpName::Monitor => "monitor",
            OpName::Promote => "promote",
            OpName::Demote => "demote",
        }
    }
}

/// What to do when an operation fails (Pacemaker's on-fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFail {
    Ignore,
    Block,
    Stop,
    Restart,
    Fence,
    Standby,
    Demote,
}

impl OnFail {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFail::Ignore => "ignore",
            OnFail::Block => "block",
            OnFail::Stop => "stop",
            OnFail::Restart => "restart",
            OnFail::Fence => "fence",
            OnFail::Standby => "standby",
            OnFail::Demote => "demote",
        }
    }
}

// ---------------------------------------------------------------- collections

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub id: String,
    /// Started in this order, stopped in reverse, all on one node.
    pub members: Vec<String>,
    pub meta: Meta,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clone {
    pub id: String,
    /// The primitive or group that is cloned.
    pub resource: String,
    /// `None`: as many instances as nodes.
    pub clone_max: Option<u32>,
    pub clone_node_max: u32,
    pub promotable: bool,
    pub promoted_max: u32,
    pub promoted_node_max: u32,
    pub meta: Meta,
}

// ---------------------------------------------------------------- constraints

#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub id: String,
    pub resource: String,
    pub node: String,
    pub score: Score,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Colocation {
    pub id: String,
    /// Placed relative to `with`.
    pub resource: String,
    pub with: String,
    pub score: Score,
    pub resource_role: Option<Role>,
    pub with_role: Option<Role>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub id: String,
    pub first: String,
    pub then: String,
    pub kind: OrderKind,
    pub symmetrical: bool,
    pub first_action: OpName,
    pub then_action: OpName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKind {
    Mandatory,
    Optional,
    Serialize,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Mandatory => "mandatory",
            OrderKind::Optional => "optional",
            OrderKind::Serialize => "serialize",
        }
    }
}
