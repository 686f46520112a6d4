//! What the controller tells `hactl status` and D-Bus clients: the DC, whether
//! the cluster has settled, where every resource runs, standby nodes,
//! migrate preferences, fail counts, failed actions and the fencing
//! history. Part of the JSON of
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
    /// Target roles set by `hactl resource stop|start` and in force (not
    /// replaced by a later configuration or a later start or stop of the
    /// group or clone around; absent in the JSON of a daemon from before
    /// them: empty).
    #[serde(default)]
    pub target_roles: Vec<TargetRoleSummary>,
    /// The replicated configuration epoch this node runs (`hactl config
    /// apply` makes the next one); 0: the configuration file it started
    /// with, none applied yet (also in the JSON of a daemon from before
    /// this field).
    #[serde(default)]
    pub config_epoch: u64,
    /// Non-zero fail counts.
    pub fail_counts: Vec<FailCountSummary>,
    /// The last failed operation per resource, node and operation.
    pub failed_actions: Vec<FailedAction>,
    /// The replicated fencing history (by the controller or `hactl fence`),
    /// newest first (absent in the JSON of a daemon from before it: empty).
    #[serde(default)]
    pub fencing: Vec<FencingSummary>,
}

/// One fencing attempt and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencingSummary {
    /// The node fenced, by name.
    pub target: String,
    /// The fence level used (its devices joined by `+`; for a failure, the
    /// last level tried).
    pub device: String,
    /// `reboot`, `off` or `on`.
    pub action: String,
    /// The node that ran the fence devices, by name.
    pub executor: String,
    /// True when the devices confirmed it.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
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
    /// The clone it belongs to (directly, or through its group), if any
    /// (absent in the JSON of a daemon from before this field).
    #[serde(default)]
    pub clone: Option<String>,
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

/// A target role (`hactl resource stop|start`), overriding the
/// configuration's `meta.target_role`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRoleSummary {
    /// A resource, group or clone id.
    pub resource: String,
    /// `stopped`, `started` (`unpromoted`, `promoted`).
    pub role: String,
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

use crate::config::Config;
use crate::scheduler::Extensions;
use crate::state::{ClusterState, MigrateTarget, WallMs};
use crate::time::Instant;
use crate::totem::wire::NodeSet;

use super::{Controller, RingView, build_view};

/// The OCF name of a return code, for people.
pub fn rc_text(rc: i32) -> String {
    if rc == super::RC_PENDING {
        return "pending".to_string();
    }
    match crate::agents::OcfCode::from_code(rc) {
        Some(c) => c.to_string(),
        None => format!("unknown code {rc}"),
    }
}

/// The summary from what this node holds: the configuration, the
/// replicated state, the controller and the ring's members.
pub fn build(
    config: &Config,
    state: &ClusterState,
    ctl: &Controller,
    members: NodeSet,
    now_wall: WallMs,
    now: Instant,
) -> ControllerSummary {
    let name_of = |id: u32| {
        config
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(|| format!("node{id}"), |n| n.name.clone())
    };
    let ring = RingView {
        members,
        ..ctl.ring_view()
    };
    let (cfg, view) = build_view(config, state, &ring, now_wall, now);
    let outcome =
        crate::scheduler::current_outcome(&cfg, &Extensions::for_config(config), &view, now);
    let group_of = |id: &str| {
        config
            .groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == id))
            .map(|g| g.id.clone())
    };
    let clone_of = |id: &str| {
        let around = group_of(id);
        config
            .clones
            .iter()
            .find(|c| c.resource == id || Some(&c.resource) == around.as_ref())
            .map(|c| c.id.clone())
    };
    let resources = config
        .resources
        .iter()
        .map(|r| {
            let o = outcome.get(&r.id).cloned().unwrap_or_default();
            let promoted: Vec<String> = o.promoted.iter().cloned().collect();
            let running: Vec<String> = o.nodes.iter().cloned().collect();
            ResourceSummary {
                id: r.id.clone(),
                agent: r.agent.to_string(),
                group: group_of(&r.id),
                clone: clone_of(&r.id),
                running_on: running.clone(),
                promoted_on: promoted,
                target: match ctl.target(&r.id) {
                    Some(t) => t.map(str::to_string),
                    None => running.first().cloned(),
                },
            }
        })
        .collect();
    let migrations = state
        .migrate_locations(now_wall)
        .into_iter()
        .map(|(rsc, target)| {
            let (to, away_from) = match target {
                MigrateTarget::To(n) => (Some(name_of(n)), None),
                MigrateTarget::AwayFrom(n) => (None, Some(name_of(n))),
            };
            MigrationSummary {
                resource: rsc.to_string(),
                to,
                away_from,
                expires_ms: state.migrates.get(rsc).and_then(|e| e.expires).map(|w| w.0),
            }
        })
        .collect();
    let in_force = state.target_role_overrides(config);
    let target_roles = state
        .target_roles()
        .into_iter()
        .filter(|(rsc, role)| in_force.get(*rsc) == Some(&Some(*role)))
        .map(|(rsc, role)| TargetRoleSummary {
            resource: rsc.to_string(),
            role: role.as_str().to_string(),
        })
        .collect();
    let mut fail_counts = Vec::new();
    let mut failed_actions = Vec::new();
    for n in &config.nodes {
        for r in &config.resources {
            let count = state.fail_count(&r.id, n.id);
            if count > 0 {
                fail_counts.push(FailCountSummary {
                    resource: r.id.clone(),
                    node: n.name.clone(),
                    count,
                    last_failure_ms: state
                        .nodes
                        .get(&n.id)
                        .and_then(|f| f.fail_counts.get(&r.id))
                        .and_then(|c| c.last_failure)
                        .map(|w| w.0),
                });
            }
        }
    }
    for rec in ctl.failures() {
        failed_actions.push(FailedAction {
            resource: rec.resource.clone(),
            node: name_of(rec.node),
            operation: rec.op.as_str().to_string(),
            interval_ms: rec.interval_ms,
            rc: rec.rc,
            rc_text: rc_text(rec.rc),
            reason: (!rec.exit_reason.is_empty()).then(|| rec.exit_reason.clone()),
            at_ms: rec.at.0,
        });
    }
    failed_actions.sort_by_key(|f| std::cmp::Reverse(f.at_ms));
    ControllerSummary {
        dc: ctl.dc().map(name_of),
        idle: ctl.is_idle(),
        transition: ctl.transitions(),
        standby: state.standby_nodes().into_iter().map(name_of).collect(),
        resources,
        migrations,
        target_roles,
        config_epoch: state.config_epoch(),
        fail_counts,
        failed_actions,
        fencing: state
            .fencing
            .iter()
            .rev()
            .map(|f| FencingSummary {
                target: name_of(f.target),
                device: f.device.clone(),
                action: f.action.as_str().to_string(),
                executor: name_of(f.executor),
                ok: f.error.is_none(),
                error: f.error.clone(),
                at_ms: f.at.0,
            })
            .collect(),
    }
}
