//! What the controller tells `hactl status` and D-Bus clients: the DC, whether
//! the cluster has settled, where every resource runs, standby nodes,
//! migrate preferences, fail counts and failed actions. Part of the JSON of
//! `Status()` (field `controller`, docs/api.md).

use serde::{Deserialize, Serialize};

/// The controller's part of `Status()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerSummary {
    /// The designated controller (lowest node id of the quorate ring), by
    /// name; None while this node has no quorum.
    pub dc: Option<String>,
    /// True when no transition runs and none is needed: the cluster has
    /// settled (what `hactl standby` and friends wait for).
    pub idle: bool,
    /// Moves each time the DC computes a new transition (as this node saw
    /// it: every node learns of transitions through the actions they bring).
    pub transition: u64,
    /// Nodes in standby, by name.
    pub standby: Vec<String>,
    /// Every configured primitive (clone instances as `ID:N`), in
    /// configuration order.
    pub resources: Vec<ResourceSummary>,
    /// Migrate preferences in force.
    pub migrations: Vec<MigrationSummary>,
    /// Non-zero fail counts.
    pub fail_counts: Vec<FailCountSummary>,
    /// The last failed operation per resource, node and operation.
    pub failed_actions: Vec<FailedAction>,
}

/// One resource and where it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSummary {
    pub id: String,
    /// The agent, as in the configuration (`systemd:nginx.service`,
    /// `ipaddr`, `ocf:heartbeat:Dummy`, …).
    pub agent: String,
    /// The group it belongs to, if any.
    pub group: Option<String>,
    /// Nodes where it is active, by name (more than one only for clones,
    /// or when something is wrong).
    pub running_on: Vec<String>,
    /// Nodes where it is promoted (promotable clones).
    pub promoted_on: Vec<String>,
    /// The node it runs on or goes to once the current transition is done;
    /// None when it is to be stopped.
    pub target: Option<String>,
}

/// A migrate preference (`hactl migrate`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationSummary {
    pub resource: String,
    /// `migrate RSC NODE`: prefer this node.
    pub to: Option<String>,
    /// `migrate RSC`: keep it off this node.
    pub away_from: Option<String>,
    /// When it ends, in milliseconds since the Unix epoch; None: until
    /// `hactl unmigrate`.
    pub expires_ms: Option<u64>,
}

/// A fail count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailCountSummary {
    pub resource: String,
    pub node: String,
    pub count: u32,
    /// The last failure, in milliseconds since the Unix epoch.
    pub last_failure_ms: Option<u64>,
}

/// A failed operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAction {
    pub resource: String,
    pub node: String,
    /// `start`, `stop`, `monitor`, `promote`, `demote`.
    pub operation: String,
    pub interval_ms: u64,
    /// The OCF return code.
    pub rc: i32,
    /// The OCF return code's name (`not running`, `generic error`, …).
    pub rc_text: String,
    /// What the agent said.
    pub reason: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}
