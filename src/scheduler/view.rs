//! The scheduler's inputs besides the configuration: the cluster as it is
//! now ([`ClusterView`]) and the few configuration settings the TOML model
//! does not carry yet ([`Extensions`], filled in by the CIB import).
//!
//! Everything here is plain data: the controller builds a view from the
//! replicated state, `hactl simulate` from flags or from a Pacemaker CIB.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{OnFail, Role};
use crate::time::Instant;

/// A fail count that bans for good: what a failed start records, and the
/// value Pacemaker writes as `INFINITY`.
pub const FAIL_COUNT_INFINITY: u32 = 1_000_000;

/// What the scheduler knows about the cluster at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// Every configured node should appear once; a configured node that is
    /// missing is taken as offline.
    pub nodes: Vec<NodeStatus>,
    /// Whether this partition has quorum.
    pub has_quorum: bool,
    /// The state of resources on nodes. Order matters only for anonymous
    /// clones: instances are numbered in node order, then in list order.
    pub resources: Vec<ResourceStatus>,
}

impl ClusterView {
    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeStatus> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// The entry for `resource` on `node`, created (stopped, never probed)
    /// if there is none.
    pub fn resource_mut(&mut self, resource: &str, node: &str) -> &mut ResourceStatus {
        let at = self
            .resources
            .iter()
            .position(|r| r.resource == resource && r.node == node);
        match at {
            Some(i) => &mut self.resources[i],
            None => {
                self.resources.push(ResourceStatus::new(resource, node));
                self.resources.last_mut().expect("just pushed")
            }
        }
    }
}

/// Membership state of a node, as far as resources are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// A member that can run resources.
    Online,
    /// Cleanly down: nothing runs there.
    Offline,
    /// Lost without a clean shutdown: whatever ran there may still run, so
    /// it must be fenced before its resources start elsewhere.
    Unclean,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    pub state: NodeState,
    /// Online but must not run resources (they move away).
    pub standby: bool,
    /// Resources on it are left alone (neither started, stopped nor moved).
    pub maintenance: bool,
    /// The node is shutting down: resources leave it.
    pub shutdown: bool,
    /// Node attributes, e.g. `master-RSC` promotion scores.
    pub attributes: BTreeMap<String, String>,
}

impl NodeStatus {
    pub fn online(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.to_string(),
            state: NodeState::Online,
            standby: false,
            maintenance: false,
            shutdown: false,
            attributes: BTreeMap::new(),
        }
    }
}

/// One primitive (or one instance of a globally unique clone) on one node.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceStatus {
    /// The primitive id; `ID:N` for instance N of a globally unique clone.
    /// Instances of anonymous clones may be given as `ID` or `ID:N`.
    pub resource: String,
    pub node: String,
    /// The role it has there now; `Stopped` when known not to run.
    pub role: Role,
    /// Whether the node has reported anything about it (a probe included):
    /// Pacemaker's "known on".
    pub known: bool,
    /// The response to a failure that is still in effect, if any:
    /// `Restart` means it needs recovery (stop, then start); `Block` leaves
    /// it alone; `Stop` keeps it stopped; `Demote` demotes it. (`Fence` and
    /// `Standby` act on the node and are applied to the node's status.)
    pub failure: Option<OnFail>,
    /// A start was sent and has not completed.
    pub start_pending: bool,
    /// A hard error (not installed, bad configuration): never again on this
    /// node until cleaned up.
    pub banned: bool,
    /// A fatal error: never again on any node until cleaned up.
    pub banned_everywhere: bool,
    /// Failures counted against `migration_threshold`.
    pub fail_count: u32,
    /// When the last failure happened (for `failure_timeout`).
    pub last_failure: Option<Instant>,
}

impl ResourceStatus {
    pub fn new(resource: &str, node: &str) -> ResourceStatus {
        ResourceStatus {
            resource: resource.to_string(),
            node: node.to_string(),
            role: Role::Stopped,
            known: false,
            failure: None,
            start_pending: false,
            banned: false,
            banned_everywhere: false,
            fail_count: 0,
            last_failure: None,
        }
    }

    /// Whether it runs there (in any role) as far as anyone knows.
    pub fn is_active(&self) -> bool {
        self.role > Role::Stopped || self.start_pending
    }
}

/// Settings the configuration model does not carry (yet). A TOML
/// configuration uses [`Extensions::for_config`]; the CIB import fills in
/// what the CIB says. Every field has Pacemaker's default meaning.
#[derive(Clone, Debug, PartialEq)]
pub struct Extensions {
    /// `symmetric-cluster`: resources may run anywhere unless forbidden.
    /// When false, only nodes named by a location constraint are allowed.
    pub symmetric_cluster: bool,
    /// Whether unclean nodes are fenced (`stonith-enabled`).
    pub fencing_enabled: bool,
    /// Whether a fence device exists. Pacemaker freezes every resource when
    /// fencing is enabled but no device is configured.
    pub fence_device_configured: bool,
    /// Location constraints that apply to one role only, by constraint id.
    pub location_roles: BTreeMap<String, Role>,
    /// Colocations by node attribute instead of node name, by constraint id.
    pub colocation_node_attribute: BTreeMap<String, String>,
    /// Colocations with an explicit `influence`, by constraint id.
    pub colocation_influence: BTreeMap<String, bool>,
    /// Per resource (primitive, group or clone) options, by id.
    pub resources: BTreeMap<String, ResourceExtensions>,
    /// Primitives that are fence devices (placed like any other primitive).
    pub fence_resources: BTreeSet<String>,
}

impl Default for Extensions {
    fn default() -> Extensions {
        Extensions {
            symmetric_cluster: true,
            fencing_enabled: false,
            fence_device_configured: false,
            location_roles: BTreeMap::new(),
            colocation_node_attribute: BTreeMap::new(),
            colocation_influence: BTreeMap::new(),
            resources: BTreeMap::new(),
            fence_resources: BTreeSet::new(),
        }
    }
}

impl Extensions {
    /// The extensions implied by a TOML configuration: configuring a fence
    /// device is what turns fencing on, unless
    /// `fencing_disabled_i_understand_split_brain` (see
    /// docs/configuration.md).
    pub fn for_config(config: &crate::config::Config) -> Extensions {
        let fencing = !config.fence_devices.is_empty() && !config.cluster.fencing_disabled;
        Extensions {
            fencing_enabled: fencing,
            fence_device_configured: fencing,
            ..Extensions::default()
        }
    }
}

/// Meta attributes outside [`crate::config::Meta`]; `None` inherits from
/// the parent (group, clone), then takes Pacemaker's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceExtensions {
    /// `is-managed` (default true); `maintenance=true` also unmanages.
    pub managed: Option<bool>,
    /// `critical` (default true): the default `influence` of colocations in
    /// which this resource is the dependent.
    pub critical: Option<bool>,
    /// Clones: `globally-unique` (default false).
    pub globally_unique: Option<bool>,
    /// Clones: `interleave` (default false).
    pub interleave: Option<bool>,
    /// Clones: `ordered` (default false); groups: `ordered` (default true).
    pub ordered: Option<bool>,
    /// Groups: `collocated` (default true).
    pub collocated: Option<bool>,
    /// `multiple-active`: what to do when found running on several nodes.
    pub multiple_active: Option<MultipleActive>,
    /// `restart-type=restart` (deprecated): an optional order whose `then`
    /// is this resource restarts it when `first` restarts.
    pub restart_type_restart: Option<bool>,
}

/// Pacemaker's `multiple-active` meta attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultipleActive {
    StopStart,
    StopOnly,
    Block,
    StopUnexpected,
}
