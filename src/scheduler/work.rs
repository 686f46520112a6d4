//! The scheduler's working set: nodes, the resource tree (clones expanded
//! into instances), constraints and the current state, built from the
//! configuration and the cluster view. Everything the later phases
//! (placement, promotion, actions) read and write lives here, indexed by
//! small integers instead of pointers.

use std::collections::{BTreeMap, HashMap};

use crate::config::score::INFINITY;
use crate::config::{Config, Meta, NoQuorumPolicy, OnFail, OrderKind, Role, Score};
use crate::time::Instant;

use super::view::{ClusterView, Extensions, MultipleActive, NodeState, ResourceStatus};

pub(crate) type NodeIx = usize;
pub(crate) type RscIx = usize;
pub(crate) type ColocIx = usize;

/// Stickiness a clone instance gets when nothing configures any, so that
/// instances are not shuffled between nodes for no benefit (Pacemaker's
/// rule).
pub(crate) const CLONE_DEFAULT_STICKINESS: i64 = 1;

/// Pacemaker's resource variants, in its order (colocation lists sort
/// clones before groups before primitives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Variant {
    Primitive,
    Group,
    Clone,
}

/// A node's entry in a resource's table of allowed nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub weight: Score,
    /// Instances (or promoted instances) placed on it, for clone limits.
    pub count: u32,
}

impl Allowed {
    pub fn new(weight: Score) -> Allowed {
        Allowed { weight, count: 0 }
    }
}

/// Allowed nodes of a resource: `None` where the node is not in the table.
pub(crate) type NodeTable = Vec<Option<Allowed>>;

#[derive(Clone, Debug)]
pub(crate) struct WNode {
    pub name: String,
    pub online: bool,
    pub unclean: bool,
    pub standby: bool,
    pub maintenance: bool,
    pub shutdown: bool,
    /// 0, or −INFINITY for a node that is not online or is shutting down.
    pub base_weight: Score,
    pub attributes: BTreeMap<String, String>,
    /// Resources assigned to it in this transition (a tie-breaker).
    pub num_resources: u32,
}

impl WNode {
    /// Whether the node can run resources at all (Pacemaker's
    /// `pcmk__node_available` without the score test).
    pub fn can_run(&self) -> bool {
        self.online && !self.shutdown && !self.unclean && !self.standby && !self.maintenance
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CloneInfo {
    pub max: u32,
    pub node_max: u32,
    pub promoted_max: u32,
    pub promoted_node_max: u32,
    pub ordered: bool,
    pub interleave: bool,
    /// Instances created so far (numbers are 0..total).
    pub total: u32,
    pub promotion_added: bool,
    pub promotion_constrained: bool,
    /// The configuration of what is cloned, to create orphan instances.
    pub template: Template,
}

/// What a clone clones.
#[derive(Clone, Debug)]
pub(crate) enum Template {
    Primitive(String),
    Group(String, Vec<String>),
}

#[derive(Clone, Debug)]
pub(crate) struct Rsc {
    pub id: String,
    pub variant: Variant,
    pub parent: Option<RscIx>,
    pub children: Vec<RscIx>,
    pub clone: Option<CloneInfo>,
    /// The configured id (without instance suffix).
    pub base_id: String,
    /// The id the node history used for this instance, if different.
    pub history_name: Option<String>,
    pub instance: Option<u32>,

    // Meta attributes (effective, after inheritance and defaults).
    pub priority: Score,
    pub stickiness: Score,
    /// 0: never ban.
    pub migration_threshold: i64,
    pub failure_timeout_us: u64,
    pub target_role: Option<Role>,
    pub managed: bool,
    pub critical: bool,
    pub unique: bool,
    pub promotable: bool,
    pub fence_device: bool,
    pub needs_fencing: bool,
    pub needs_quorum: bool,
    pub multiple_active: MultipleActive,
    /// Deprecated `restart-type=restart`.
    pub restart_type_restart: bool,
    pub group_ordered: bool,
    pub group_colocated: bool,
    /// Recurring monitors: (interval in ms, role).
    pub monitors: Vec<(u64, Option<Role>)>,

    // Current state.
    pub role: Role,
    pub next_role: Option<Role>,
    pub running_on: Vec<NodeIx>,
    pub known_on: Vec<bool>,
    pub pending_node: Option<NodeIx>,
    pub failed: bool,
    /// Recovery by stopping (Pacemaker's `pe_rsc_stop`).
    pub stop_flag: bool,
    pub blocked: bool,
    pub start_pending: bool,
    pub orphan: bool,
    /// Nodes where a failure requires a stop (recovery or demotion).
    pub stop_required_on: Vec<NodeIx>,
    pub demote_required_on: Vec<NodeIx>,

    // Placement.
    pub allowed: NodeTable,
    pub this_with: Vec<ColocIx>,
    pub with_this: Vec<ColocIx>,
    pub locations: Vec<usize>,
    pub allocated_to: Option<NodeIx>,
    /// The allowed-node score of the chosen node when it was chosen.
    pub allocated_weight: Score,
    pub provisional: bool,
    pub allocating: bool,
    /// Loop detection while merging colocated scores (set through `&self`).
    pub merging: std::cell::Cell<bool>,
    pub sort_index: Score,
}

#[derive(Clone, Debug)]
pub(crate) struct Coloc {
    pub id: String,
    pub dependent: RscIx,
    pub primary: RscIx,
    pub score: Score,
    /// `None`: any role (Pacemaker's "Unknown"; "Started" maps here too).
    pub dependent_role: Option<Role>,
    pub primary_role: Option<Role>,
    pub influence: bool,
    /// Colocate by this node attribute instead of by node.
    pub node_attribute: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Loc {
    pub rsc: RscIx,
    pub node: NodeIx,
    pub score: Score,
    /// Applies only to this role (only `Promoted` or `Stopped` filter).
    pub role_filter: Option<Role>,
}

#[derive(Clone, Debug)]
pub(crate) struct OrderCons {
    pub first: RscIx,
    pub then: RscIx,
    pub kind: OrderKind,
    pub symmetrical: bool,
    pub first_action: crate::config::OpName,
    pub then_action: crate::config::OpName,
}

/// Settings of the whole cluster the phases consult.
#[derive(Clone, Debug)]
pub(crate) struct ClusterFlags {
    pub symmetric: bool,
    pub fencing_enabled: bool,
    pub fence_device_configured: bool,
    pub have_quorum: bool,
    pub no_quorum_policy: NoQuorumPolicy,
}

pub(crate) struct Work<'a> {
    pub config: &'a Config,
    pub ext: &'a Extensions,
    pub nodes: Vec<WNode>,
    pub rscs: Vec<Rsc>,
    /// Top-level resources in allocation order.
    pub top: Vec<RscIx>,
    pub colocs: Vec<Coloc>,
    pub locs: Vec<Loc>,
    pub orders: Vec<OrderCons>,
    pub flags: ClusterFlags,
    pub now: Instant,
    /// Fail counts by (name Pacemaker matches them by, node).
    pub fail_counts: HashMap<(String, NodeIx), (u32, Option<Instant>)>,
    pub show_scores: bool,
    pub score_lines: Vec<String>,
    pub warnings: Vec<String>,
    /// Resource ids (as constraints may name them) to their index.
    pub by_id: HashMap<String, RscIx>,
    /// Primitives (clone instances included) by their own id.
    pub prim_by_id: HashMap<String, RscIx>,
    /// The first primitive created from a configured primitive id.
    prim_by_base: HashMap<String, RscIx>,
    /// Configuration entries by id, for meta attribute inheritance.
    meta_by_id: HashMap<&'a str, &'a Meta>,
    resource_by_id: HashMap<&'a str, &'a crate::config::Resource>,
    pub acts: super::actions::ActionSet,
    /// Current recursion depth of placement and score merging.
    pub depth: std::cell::Cell<u32>,
    /// Whether a colocation chain was cut at the depth limit.
    pub depth_exceeded: std::cell::Cell<bool>,
}

/// Effective meta attributes, resolved along the parent chain.
struct Resolved {
    priority: Score,
    stickiness: Score,
    migration_threshold: i64,
    failure_timeout_us: u64,
    target_role: Option<Role>,
    managed: bool,
    critical: bool,
    multiple_active: MultipleActive,
    restart_type_restart: bool,
}

impl<'a> Work<'a> {
    pub fn build(
        config: &'a Config,
        ext: &'a Extensions,
        view: &ClusterView,
        now: Instant,
        show_scores: bool,
    ) -> Work<'a> {
        let mut w = Work {
            config,
            ext,
            nodes: Vec::new(),
            rscs: Vec::new(),
            top: Vec::new(),
            colocs: Vec::new(),
            locs: Vec::new(),
            orders: Vec::new(),
            flags: ClusterFlags {
                symmetric: ext.symmetric_cluster,
                fencing_enabled: ext.fencing_enabled,
                fence_device_configured: ext.fence_device_configured,
                have_quorum: view.has_quorum,
                no_quorum_policy: config.cluster.no_quorum_policy,
            },
            now,
            fail_counts: HashMap::new(),
            show_scores,
            score_lines: Vec::new(),
            warnings: Vec::new(),
            by_id: HashMap::new(),
            prim_by_id: HashMap::new(),
            prim_by_base: HashMap::new(),
            meta_by_id: meta_index(config),
            resource_by_id: config
                .resources
                .iter()
                .map(|r| (r.id.as_str(), r))
                .collect(),
            acts: super::actions::ActionSet::default(),
            depth: std::cell::Cell::new(0),
            depth_exceeded: std::cell::Cell::new(false),
        };
        w.build_nodes(config, view);
        w.build_resources();
        w.unpack_status(view);
        w.unpack_constraints();
        w
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node_ix(&self, name: &str) -> Option<NodeIx> {
        self.nodes.iter().position(|n| n.name == name)
    }

    // ------------------------------------------------------------ nodes

    fn build_nodes(&mut self, config: &Config, view: &ClusterView) {
        for n in &config.nodes {
            let status = view.node(&n.name);
            let (online, unclean) = match status.map(|s| s.state) {
                Some(NodeState::Online) => (true, false),
                Some(NodeState::Unclean) => (false, true),
                Some(NodeState::Offline) | None => (false, false),
            };
            let shutdown = status.is_some_and(|s| s.shutdown);
            self.nodes.push(WNode {
                name: n.name.clone(),
                online,
                unclean,
                standby: status.is_some_and(|s| s.standby),
                maintenance: status.is_some_and(|s| s.maintenance),
                shutdown,
                base_weight: if online && !shutdown {
                    Score::ZERO
                } else {
                    Score::MINUS_INFINITY
                },
                attributes: status.map(|s| s.attributes.clone()).unwrap_or_default(),
                num_resources: 0,
            });
        }
        for s in &view.nodes {
            if config.node_by_name(&s.name).is_none() {
                self.warnings.push(format!(
                    "node {} is in the cluster view but not in the configuration: ignored",
                    s.name
                ));
            }
        }
    }

    // ------------------------------------------------------------ resources

    fn build_resources(&mut self) {
        let config = self.config;
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for (gi, g) in config.groups.iter().enumerate() {
            for m in &g.members {
                group_of.insert(m.as_str(), gi);
            }
        }
        let mut clone_of: HashMap<&str, usize> = HashMap::new();
        for (ci, c) in config.clones.iter().enumerate() {
            clone_of.insert(c.resource.as_str(), ci);
        }
        // Top-level resources in the order their first primitive appears,
        // which is document order for a CIB and file order for TOML.
        #[derive(PartialEq, Eq, Hash, Clone, Copy)]
        enum Top {
            Primitive(usize),
            Group(usize),
            Clone(usize),
        }
        let mut seen = std::collections::HashSet::new();
        let mut tops = Vec::new();
        for (ri, r) in config.resources.iter().enumerate() {
            let top = match group_of.get(r.id.as_str()) {
                Some(&gi) => match clone_of.get(config.groups[gi].id.as_str()) {
                    Some(&ci) => Top::Clone(ci),
                    None => Top::Group(gi),
                },
                None => match clone_of.get(r.id.as_str()) {
                    Some(&ci) => Top::Clone(ci),
                    None => Top::Primitive(ri),
                },
            };
            if seen.insert(top) {
                tops.push(top);
            }
        }
        for top in tops {
            let ix = match top {
                Top::Primitive(ri) => {
                    let r = &config.resources[ri];
                    self.new_primitive(&r.id, &r.id, None, None)
                }
                Top::Group(gi) => {
                    let g = &config.groups[gi];
                    self.new_group(&g.id, &g.members, None, None)
                }
                Top::Clone(ci) => self.new_clone(ci),
            };
            self.top.push(ix);
        }
        // Pacemaker allocates by priority (highest first), then in
        // configuration order (a stable sort).
        let mut top = std::mem::take(&mut self.top);
        top.sort_by_key(|&r| std::cmp::Reverse(self.rscs[r].priority));
        self.top = top;
    }

    fn chain_ids(&self, own: &str, parent: Option<RscIx>) -> Vec<String> {
        let mut ids = vec![own.to_string()];
        let mut p = parent;
        while let Some(pi) = p {
            ids.push(self.rscs[pi].base_id.clone());
            p = self.rscs[pi].parent;
        }
        ids
    }

    fn in_clone(&self, parent: Option<RscIx>) -> bool {
        let mut p = parent;
        while let Some(pi) = p {
            if self.rscs[pi].variant == Variant::Clone {
                return true;
            }
            p = self.rscs[pi].parent;
        }
        false
    }

    fn resolve_meta(&self, own: &str, parent: Option<RscIx>, variant: Variant) -> Resolved {
        let (config, ext) = (self.config, self.ext);
        let ids = self.chain_ids(own, parent);
        let metas: Vec<&Meta> = ids
            .iter()
            .filter_map(|id| self.meta_by_id.get(id.as_str()).copied())
            .collect();
        let exts: Vec<_> = ids.iter().filter_map(|id| ext.resources.get(id)).collect();
        let defaults = &config.cluster.resource_defaults;
        let in_clone = variant == Variant::Clone || self.in_clone(parent);
        let stickiness = metas.iter().find_map(|m| m.resource_stickiness).unwrap_or(
            if in_clone && defaults.resource_stickiness == Score::ZERO {
                Score::new(CLONE_DEFAULT_STICKINESS)
            } else {
                defaults.resource_stickiness
            },
        );
        let threshold = metas
            .iter()
            .find_map(|m| m.migration_threshold)
            .unwrap_or(defaults.migration_threshold);
        let maintenance_unmanaged = false;
        Resolved {
            priority: Score::new(metas.iter().find_map(|m| m.priority).unwrap_or(0)),
            stickiness,
            // Unset (INFINITY) bans only at an INFINITY fail count.
            migration_threshold: threshold.map_or(INFINITY, i64::from),
            failure_timeout_us: metas
                .iter()
                .find_map(|m| m.failure_timeout_ms)
                .unwrap_or(defaults.failure_timeout_ms)
                .saturating_mul(1_000),
            target_role: metas.iter().find_map(|m| m.target_role),
            managed: !maintenance_unmanaged && exts.iter().find_map(|e| e.managed).unwrap_or(true),
            critical: exts.iter().find_map(|e| e.critical).unwrap_or(true),
            multiple_active: exts
                .iter()
                .find_map(|e| e.multiple_active)
                .unwrap_or(MultipleActive::StopStart),
            restart_type_restart: exts
                .iter()
                .find_map(|e| e.restart_type_restart)
                .unwrap_or(false),
        }
    }

    fn blank(&self, id: String, base_id: &str, variant: Variant, parent: Option<RscIx>) -> Rsc {
        let n = self.node_count();
        Rsc {
            id,
            variant,
            parent,
            children: Vec::new(),
            clone: None,
            base_id: base_id.to_string(),
            history_name: None,
            instance: None,
            priority: Score::ZERO,
            stickiness: Score::ZERO,
            migration_threshold: INFINITY,
            failure_timeout_us: 0,
            target_role: None,
            managed: true,
            critical: true,
            unique: true,
            promotable: false,
            fence_device: false,
            needs_fencing: false,
            needs_quorum: true,
            multiple_active: MultipleActive::StopStart,
            restart_type_restart: false,
            group_ordered: true,
            group_colocated: true,
            monitors: Vec::new(),
            role: Role::Stopped,
            next_role: None,
            running_on: Vec::new(),
            known_on: vec![false; n],
            pending_node: None,
            failed: false,
            stop_flag: false,
            blocked: false,
            start_pending: false,
            orphan: false,
            stop_required_on: Vec::new(),
            demote_required_on: Vec::new(),
            // Pacemaker's "symmetric_default": every node at 0.
            allowed: vec![None; n],
            this_with: Vec::new(),
            with_this: Vec::new(),
            locations: Vec::new(),
            allocated_to: None,
            allocated_weight: Score::ZERO,
            provisional: true,
            allocating: false,
            merging: std::cell::Cell::new(false),
            sort_index: Score::ZERO,
        }
    }

    fn push(&mut self, mut r: Rsc) -> RscIx {
        let m = self.resolve_meta(&r.base_id.clone(), r.parent, r.variant);
        r.priority = m.priority;
        r.stickiness = m.stickiness;
        r.migration_threshold = m.migration_threshold;
        r.failure_timeout_us = m.failure_timeout_us;
        r.managed = m.managed;
        r.critical = m.critical;
        r.multiple_active = m.multiple_active;
        r.restart_type_restart = m.restart_type_restart;
        // Only an explicit Stopped or (for promotable clones) Unpromoted
        // target role changes anything: Started and Promoted are defaults.
        r.target_role = match m.target_role {
            Some(Role::Stopped) => Some(Role::Stopped),
            Some(Role::Unpromoted) if r.promotable => Some(Role::Unpromoted),
            _ => None,
        };
        r.next_role = r.target_role;
        if self.flags.symmetric {
            for slot in r.allowed.iter_mut() {
                *slot = Some(Allowed::new(Score::ZERO));
            }
        }
        let ix = self.rscs.len();
        self.rscs.push(r);
        ix
    }

    /// A primitive (or a clone instance of one).
    fn new_primitive(
        &mut self,
        base_id: &str,
        id: &str,
        parent: Option<RscIx>,
        instance: Option<u32>,
    ) -> RscIx {
        let ext = self.ext;
        let mut r = self.blank(id.to_string(), base_id, Variant::Primitive, parent);
        r.instance = instance;
        self.inherit_clone_flags(&mut r);
        r.fence_device = ext.fence_resources.contains(base_id);
        if let Some(res) = self.resource_by_id.get(base_id) {
            for op in &res.ops {
                if op.name == crate::config::OpName::Monitor && op.interval_ms > 0 {
                    r.monitors.push((op.interval_ms, op.role));
                }
            }
        }
        // Pacemaker's default "requires".
        let (fencing, quorum) = if r.fence_device {
            (false, true)
        } else if self.flags.fencing_enabled {
            (true, false)
        } else if self.flags.no_quorum_policy == NoQuorumPolicy::Ignore {
            (false, false)
        } else {
            (false, true)
        };
        r.needs_fencing = fencing;
        r.needs_quorum = quorum;
        let ix = self.push(r);
        self.by_id.entry(base_id.to_string()).or_insert(ix);
        self.prim_by_id.insert(id.to_string(), ix);
        self.prim_by_base.entry(base_id.to_string()).or_insert(ix);
        ix
    }

    fn inherit_clone_flags(&self, r: &mut Rsc) {
        let ext = self.ext;
        let mut p = r.parent;
        while let Some(pi) = p {
            let parent = &self.rscs[pi];
            if parent.variant == Variant::Clone {
                r.unique = ext
                    .resources
                    .get(&parent.base_id)
                    .and_then(|e| e.globally_unique)
                    .unwrap_or(false);
                r.promotable = parent.promotable;
            }
            p = parent.parent;
        }
    }

    fn new_group(
        &mut self,
        base_id: &str,
        members: &[String],
        parent: Option<RscIx>,
        instance: Option<u32>,
    ) -> RscIx {
        let suffix = instance.map(|n| format!(":{n}")).unwrap_or_default();
        let mut r = self.blank(
            format!("{base_id}{suffix}"),
            base_id,
            Variant::Group,
            parent,
        );
        r.instance = instance;
        self.inherit_clone_flags(&mut r);
        let e = self.ext.resources.get(base_id);
        r.group_ordered = e.and_then(|e| e.ordered).unwrap_or(true);
        r.group_colocated = e.and_then(|e| e.collocated).unwrap_or(true);
        let gix = self.push(r);
        if instance.is_none() {
            self.by_id.insert(base_id.to_string(), gix);
        }
        for m in members {
            let c = self.new_primitive(m, &format!("{m}{suffix}"), Some(gix), instance);
            self.rscs[gix].children.push(c);
        }
        gix
    }

    fn new_clone(&mut self, ci: usize) -> RscIx {
        let (config, ext) = (self.config, self.ext);
        let c = &config.clones[ci];
        let e = ext.resources.get(&c.id);
        let unique = e.and_then(|e| e.globally_unique).unwrap_or(false);
        let template = match config.groups.iter().find(|g| g.id == c.resource) {
            Some(g) => Template::Group(g.id.clone(), g.members.clone()),
            None => Template::Primitive(c.resource.clone()),
        };
        let nodes = u32::try_from(self.node_count().max(1)).unwrap_or(u32::MAX);
        let mut r = self.blank(c.id.clone(), &c.id, Variant::Clone, None);
        r.unique = unique;
        r.promotable = c.promotable;
        r.clone = Some(CloneInfo {
            max: c.clone_max.unwrap_or(nodes),
            // Anonymous clones run at most one instance per node.
            node_max: if unique { c.clone_node_max } else { 1 },
            promoted_max: c.promoted_max,
            promoted_node_max: c.promoted_node_max,
            ordered: e.and_then(|e| e.ordered).unwrap_or(false),
            interleave: e.and_then(|e| e.interleave).unwrap_or(false),
            total: 0,
            promotion_added: false,
            promotion_constrained: false,
            template: template.clone(),
        });
        let cix = self.push(r);
        self.by_id.insert(c.id.clone(), cix);
        let max = self.rscs[cix].clone.as_ref().map_or(0, |c| c.max);
        // Even with clone_max = 0 one instance exists, so that history of
        // the cloned resource finds its clone.
        for _ in 0..max.max(1) {
            self.new_instance(cix);
        }
        // Constraints naming the cloned resource (or a member of a cloned
        // group) apply to the clone.
        match &template {
            Template::Primitive(p) => {
                self.by_id.insert(p.clone(), cix);
            }
            Template::Group(g, members) => {
                self.by_id.insert(g.clone(), cix);
                for m in members {
                    self.by_id.insert(m.clone(), cix);
                }
            }
        }
        cix
    }

    /// Creates the next instance of a clone; beyond `clone_max` it is an
    /// orphan (only ever stopped).
    pub fn new_instance(&mut self, cix: RscIx) -> RscIx {
        let info = self.rscs[cix].clone.clone().expect("a clone");
        let n = info.total;
        let ix = match &info.template {
            Template::Primitive(p) => {
                self.new_primitive(p, &format!("{p}:{n}"), Some(cix), Some(n))
            }
            Template::Group(g, members) => self.new_group(g, members, Some(cix), Some(n)),
        };
        if n >= info.max {
            self.set_orphan(ix);
        }
        self.rscs[cix].children.push(ix);
        if let Some(ci) = self.rscs[cix].clone.as_mut() {
            ci.total += 1;
        }
        ix
    }

    fn set_orphan(&mut self, r: RscIx) {
        self.rscs[r].orphan = true;
        for c in self.rscs[r].children.clone() {
            self.set_orphan(c);
        }
    }

    // ------------------------------------------------------------ status

    fn unpack_status(&mut self, view: &ClusterView) {
        // Needed again for orphan instances; the view is the only input.
        let mut by_node: Vec<Vec<&ResourceStatus>> = vec![Vec::new(); self.node_count()];
        for s in &view.resources {
            match self.node_ix(&s.node) {
                Some(n) => by_node[n].push(s),
                None => self.warnings.push(format!(
                    "state of {} on unknown node {}: ignored",
                    s.resource, s.node
                )),
            }
        }
        // Online nodes first when fencing is off: Pacemaker never looks at
        // the history of an offline node then (nothing can run there).
        let order: Vec<NodeIx> = view
            .nodes
            .iter()
            .filter_map(|s| self.node_ix(&s.name))
            .collect();
        for &n in &order {
            if !self.flags.fencing_enabled && !self.nodes[n].online {
                continue;
            }
            for s in by_node[n].clone() {
                let meaningful = s.known
                    || s.is_active()
                    || s.failure.is_some()
                    || s.banned
                    || s.banned_everywhere;
                if meaningful {
                    self.unpack_entry(n, s);
                } else if s.fail_count > 0 {
                    self.record_fail_count(&s.resource, n, s);
                }
            }
        }
    }

    fn unpack_entry(&mut self, node: NodeIx, s: &ResourceStatus) {
        let Some(r) = self.find_history_rsc(node, &s.resource) else {
            return;
        };
        if s.resource != self.rscs[r].id {
            self.rscs[r].history_name = Some(s.resource.clone());
        }
        // Fail counts are matched by name, not by instance: an anonymous
        // clone's instances share the count of the cloned resource.
        if s.fail_count > 0 {
            let name = self.fail_name(r);
            let e = self.fail_counts.entry((name, node)).or_insert((0, None));
            e.0 = add_counts(e.0, s.fail_count);
            e.1 = e.1.max(s.last_failure);
        }
        let active = s.is_active();
        if s.known || active {
            let mut p = Some(r);
            while let Some(pi) = p {
                self.rscs[pi].known_on[node] = true;
                if self.rscs[pi].unique {
                    break;
                }
                p = self.rscs[pi].parent;
            }
        }
        if s.start_pending {
            self.rscs[r].start_pending = true;
            self.rscs[r].pending_node = Some(node);
        }
        let mut role = s.role;
        if s.start_pending && role < Role::Started {
            role = Role::Started;
        }
        // A managed resource thought active on a node that is not online
        // means that node must be fenced.
        if active
            && !self.nodes[node].online
            && !self.nodes[node].maintenance
            && self.rscs[r].managed
            && self.flags.fencing_enabled
        {
            self.nodes[node].unclean = true;
        }
        let saved = s.failure;
        let on_fail = if self.nodes[node].unclean {
            None
        } else {
            s.failure
        };
        match on_fail {
            None | Some(OnFail::Ignore) => {}
            Some(OnFail::Demote) => {
                self.rscs[r].failed = true;
                self.rscs[r].demote_required_on.push(node);
            }
            Some(OnFail::Fence) => self.nodes[node].unclean = true,
            Some(OnFail::Standby) => self.nodes[node].standby = true,
            Some(OnFail::Block) => {
                self.rscs[r].managed = false;
                self.rscs[r].blocked = true;
            }
            Some(OnFail::Stop) => {
                self.rscs[r].next_role = Some(Role::Stopped);
                // Make sure it does not come up again, anywhere.
                let target = self.fail_target(r);
                self.ban_everywhere(target);
            }
            Some(OnFail::Restart) => {
                if active {
                    self.rscs[r].failed = true;
                    self.rscs[r].stop_flag = true;
                    self.rscs[r].stop_required_on.push(node);
                }
            }
        }
        if s.banned {
            let target = self.fail_target(r);
            self.resource_location(target, Some(node), Score::MINUS_INFINITY);
        }
        if s.banned_everywhere {
            let target = self.fail_target(r);
            self.ban_everywhere(target);
        }
        if active {
            self.add_running(r, node, saved.is_some_and(|f| f != OnFail::Ignore));
            match on_fail {
                None | Some(OnFail::Ignore) => {}
                Some(OnFail::Demote) | Some(OnFail::Block) => self.rscs[r].failed = true,
                Some(_) => {
                    self.rscs[r].failed = true;
                    self.rscs[r].stop_flag = true;
                }
            }
            if role > self.rscs[r].role {
                self.rscs[r].role = role;
            }
        } else if self.rscs[r]
            .history_name
            .as_ref()
            .is_some_and(|h| h.contains(':'))
        {
            // Old histories name instances; a stopped one keeps no name, or
            // it would look like an orphan.
            self.rscs[r].history_name = None;
        }
    }

    /// A fail count of a resource the node has no history for: matched by
    /// name as Pacemaker matches fail-count attributes.
    fn record_fail_count(&mut self, id: &str, node: NodeIx, s: &ResourceStatus) {
        let base = clone_strip(id);
        let Some(r) = self
            .prim_by_id
            .get(id)
            .or_else(|| self.prim_by_base.get(base))
            .copied()
        else {
            return;
        };
        let name = if self.rscs[r].unique {
            id.to_string()
        } else {
            base.to_string()
        };
        let e = self.fail_counts.entry((name, node)).or_insert((0, None));
        e.0 = add_counts(e.0, s.fail_count);
        e.1 = e.1.max(s.last_failure);
    }

    /// The resource a failure bans: the clone for an anonymous instance.
    fn fail_target(&self, r: RscIx) -> RscIx {
        if self.rscs[r].unique {
            r
        } else {
            self.uber_parent(r)
        }
    }

    fn ban_everywhere(&mut self, r: RscIx) {
        self.resource_location(r, None, Score::MINUS_INFINITY);
    }

    /// The name fail counts are recorded under for this primitive.
    pub fn fail_name(&self, r: RscIx) -> String {
        let rsc = &self.rscs[r];
        if rsc.unique {
            rsc.id.clone()
        } else {
            rsc.base_id.clone()
        }
    }

    pub fn uber_parent(&self, r: RscIx) -> RscIx {
        let mut x = r;
        while let Some(p) = self.rscs[x].parent {
            x = p;
        }
        x
    }

    fn add_running(&mut self, r: RscIx, node: NodeIx, _failed: bool) {
        if self.rscs[r].running_on.contains(&node) {
            return;
        }
        self.rscs[r].running_on.push(node);
        let primitive = self.rscs[r].variant == Variant::Primitive;
        if primitive && self.nodes[node].maintenance {
            self.rscs[r].managed = false;
        }
        if !self.rscs[r].managed {
            // An unmanaged resource stays where it is.
            self.resource_location(r, Some(node), Score::INFINITY);
            let mut p = self.rscs[r].parent;
            while let Some(pi) = p {
                if !self.nodes[node].online {
                    break;
                }
                self.rscs[pi].running_on.push(node);
                p = self.rscs[pi].parent;
            }
            return;
        }
        if primitive && self.count_active(r) > 1 {
            match self.rscs[r].multiple_active {
                MultipleActive::StopOnly => {
                    for slot in self.rscs[r].allowed.iter_mut() {
                        *slot = Some(Allowed::new(Score::MINUS_INFINITY));
                    }
                }
                MultipleActive::Block => {
                    self.rscs[r].managed = false;
                    self.rscs[r].blocked = true;
                }
                MultipleActive::StopStart | MultipleActive::StopUnexpected => {}
            }
        }
        if let Some(p) = self.rscs[r].parent {
            self.add_running(p, node, false);
        }
    }

    /// Active nodes that count for "multiply active": all of them for a
    /// resource that requires fencing, only clean ones otherwise.
    pub fn count_active(&self, r: RscIx) -> usize {
        let rsc = &self.rscs[r];
        if rsc.needs_fencing {
            rsc.running_on.len()
        } else {
            rsc.running_on
                .iter()
                .filter(|&&n| self.nodes[n].online && !self.nodes[n].unclean)
                .count()
        }
    }

    /// Finds (or creates, for orphans) the primitive a history entry is for.
    fn find_history_rsc(&mut self, node: NodeIx, id: &str) -> Option<RscIx> {
        let base = clone_strip(id);
        // An exact instance or primitive id.
        let exact = self.prim_by_id.get(id).copied();
        let candidate = exact.or_else(|| self.prim_by_id.get(&format!("{base}:0")).copied());
        let Some(found) = candidate else {
            return Some(self.orphan_primitive(id));
        };
        let top = self.uber_parent(found);
        if self.rscs[top].variant == Variant::Clone && !self.rscs[top].unique {
            return Some(self.find_anonymous_instance(node, top, base));
        }
        if exact.is_none() {
            // "P:N" of a unique clone beyond its instances: an orphan.
            return Some(self.orphan_primitive(id));
        }
        Some(found)
    }

    /// Pacemaker's `find_anonymous_clone`: the instance already active on
    /// this node, else the first inactive one, else a new orphan instance.
    fn find_anonymous_instance(&mut self, node: NodeIx, clone: RscIx, base: &str) -> RscIx {
        let mut found = None;
        let mut inactive = None;
        let mut skip_inactive = false;
        for &child in &self.rscs[clone].children.clone() {
            let locations = self.current_locations(child, true);
            if !locations.is_empty() {
                if locations[0] == node
                    && let Some(m) = self.member_named(child, base)
                {
                    if self.rscs[m].running_on.is_empty() {
                        found = Some(m);
                    } else {
                        skip_inactive = true;
                    }
                }
            } else if !skip_inactive && inactive.is_none() && !self.rscs[child].blocked {
                inactive = self.member_named(child, base);
                if let Some(m) = inactive
                    && self.rscs[m].pending_node.is_some_and(|p| p != node)
                {
                    inactive = None;
                }
            }
            if found.is_some() {
                break;
            }
        }
        if found.is_none() && !skip_inactive {
            found = inactive;
        }
        if let Some(m) = found
            && !self.rscs[m].needs_fencing
            && (!self.nodes[node].online || self.nodes[node].unclean)
        {
            found = None;
        }
        match found {
            Some(m) => m,
            None => {
                let inst = self.new_instance(clone);
                self.set_orphan(inst);
                self.member_named(inst, base).unwrap_or(inst)
            }
        }
    }

    fn member_named(&self, child: RscIx, base: &str) -> Option<RscIx> {
        let c = &self.rscs[child];
        match c.variant {
            Variant::Primitive => (c.base_id == base).then_some(child),
            _ => c
                .children
                .iter()
                .copied()
                .find(|&m| self.rscs[m].base_id == base),
        }
    }

    /// Nodes a resource is active on (`current`) including a pending start.
    pub fn current_locations(&self, r: RscIx, include_pending: bool) -> Vec<NodeIx> {
        let mut out = Vec::new();
        self.collect_locations(r, include_pending, &mut out);
        out
    }

    fn collect_locations(&self, r: RscIx, include_pending: bool, out: &mut Vec<NodeIx>) {
        let rsc = &self.rscs[r];
        if !rsc.children.is_empty() {
            for &c in &rsc.children {
                self.collect_locations(c, include_pending, out);
            }
            return;
        }
        for &n in &rsc.running_on {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        if include_pending
            && let Some(p) = rsc.pending_node
            && !out.contains(&p)
        {
            out.push(p);
        }
    }

    /// A resource found in the history but not configured: it is stopped
    /// wherever it runs and never started.
    fn orphan_primitive(&mut self, id: &str) -> RscIx {
        if let Some(&r) = self.by_id.get(id)
            && self.rscs[r].orphan
        {
            return r;
        }
        let mut r = self.blank(id.to_string(), id, Variant::Primitive, None);
        r.orphan = true;
        if self.flags.symmetric {
            for slot in r.allowed.iter_mut() {
                *slot = Some(Allowed::new(Score::ZERO));
            }
        }
        r.needs_quorum = false;
        let ix = self.rscs.len();
        self.rscs.push(r);
        self.by_id.insert(id.to_string(), ix);
        self.prim_by_id.insert(id.to_string(), ix);
        self.top.push(ix);
        self.ban_everywhere(ix);
        self.warnings.push(format!(
            "{id} is in the node history but not configured: it will be stopped"
        ));
        ix
    }

    /// Adds `score` for `r` (and everything under it) on `node`, or on every
    /// node; a node not yet allowed is added with its base weight first
    /// (Pacemaker's `resource_location`).
    pub fn resource_location(&mut self, r: RscIx, node: Option<NodeIx>, score: Score) {
        match node {
            Some(n) => self.resource_node_score(r, n, score),
            None => {
                for n in 0..self.node_count() {
                    self.resource_node_score(r, n, score);
                }
                if score == Score::MINUS_INFINITY {
                    self.rscs[r].allocated_to = None;
                }
            }
        }
    }

    fn resource_node_score(&mut self, r: RscIx, n: NodeIx, score: Score) {
        for c in self.rscs[r].children.clone() {
            self.resource_node_score(c, n, score);
        }
        let base = self.nodes[n].base_weight;
        let slot = &mut self.rscs[r].allowed[n];
        let current = slot.map_or(base, |a| a.weight);
        let count = slot.map_or(0, |a| a.count);
        *slot = Some(Allowed {
            weight: current + score,
            count,
        });
    }

    // ------------------------------------------------------------ constraints

    fn lookup(&mut self, id: &str, what: &str, constraint: &str) -> Option<RscIx> {
        let found = self.by_id.get(id).copied();
        if found.is_none() {
            self.warnings.push(format!(
                "{what} {constraint}: resource {id} does not exist: ignored"
            ));
        }
        found
    }

    fn unpack_constraints(&mut self) {
        let (config, ext) = (self.config, self.ext);
        for l in &config.locations {
            let Some(r) = self.lookup(&l.resource, "location", &l.id) else {
                continue;
            };
            let Some(n) = self.node_ix(&l.node) else {
                continue;
            };
            let role_filter = match ext.location_roles.get(&l.id) {
                Some(Role::Promoted) => Some(Role::Promoted),
                Some(Role::Stopped) => Some(Role::Stopped),
                _ => None,
            };
            let ix = self.locs.len();
            self.locs.push(Loc {
                rsc: r,
                node: n,
                score: l.score,
                role_filter,
            });
            self.rscs[r].locations.push(ix);
        }
        for c in &config.colocations {
            let (Some(d), Some(p)) = (
                self.lookup(&c.resource, "colocation", &c.id),
                self.lookup(&c.with, "colocation", &c.id),
            ) else {
                continue;
            };
            let influence = ext
                .colocation_influence
                .get(&c.id)
                .copied()
                .unwrap_or(self.rscs[d].critical);
            self.new_colocation(
                &c.id,
                d,
                p,
                c.score,
                c.resource_role,
                c.with_role,
                influence,
                ext.colocation_node_attribute.get(&c.id).cloned(),
            );
        }
        for o in &config.orders {
            let (Some(f), Some(t)) = (
                self.lookup(&o.first, "order", &o.id),
                self.lookup(&o.then, "order", &o.id),
            ) else {
                continue;
            };
            self.orders.push(OrderCons {
                first: f,
                then: t,
                kind: o.kind,
                symmetrical: o.symmetrical,
                first_action: o.first_action,
                then_action: o.then_action,
            });
        }
    }

    /// Pacemaker's `pcmk__new_colocation`.
    #[allow(clippy::too_many_arguments)]
    pub fn new_colocation(
        &mut self,
        id: &str,
        dependent: RscIx,
        primary: RscIx,
        score: Score,
        dependent_role: Option<Role>,
        primary_role: Option<Role>,
        influence: bool,
        node_attribute: Option<String>,
    ) {
        if score == Score::ZERO {
            return;
        }
        let norm = |r: Option<Role>| match r {
            Some(Role::Started) | None => None,
            other => other,
        };
        let ix = self.colocs.len();
        self.colocs.push(Coloc {
            id: id.to_string(),
            dependent,
            primary,
            score,
            dependent_role: norm(dependent_role),
            primary_role: norm(primary_role),
            influence,
            node_attribute,
        });
        self.add_this_with(dependent, ix);
        self.add_with_this(primary, ix);
    }

    /// Inserts into `rsc.this_with`, keeping Pacemaker's order (by the
    /// primary's priority, variant, promotability, id).
    pub fn add_this_with(&mut self, r: RscIx, c: ColocIx) {
        let key = |w: &Work<'_>, c: ColocIx| w.coloc_sort_key(w.colocs[c].primary);
        let k = key(self, c);
        let list = &self.rscs[r].this_with;
        let pos = list
            .iter()
            .position(|&o| key(self, o) > k)
            .unwrap_or(list.len());
        self.rscs[r].this_with.insert(pos, c);
    }

    pub fn add_with_this(&mut self, r: RscIx, c: ColocIx) {
        let key = |w: &Work<'_>, c: ColocIx| w.coloc_sort_key(w.colocs[c].dependent);
        let k = key(self, c);
        let list = &self.rscs[r].with_this;
        let pos = list
            .iter()
            .position(|&o| key(self, o) > k)
            .unwrap_or(list.len());
        self.rscs[r].with_this.insert(pos, c);
    }

    fn coloc_sort_key(
        &self,
        r: RscIx,
    ) -> (
        std::cmp::Reverse<Score>,
        std::cmp::Reverse<Variant>,
        bool,
        String,
    ) {
        let rsc = &self.rscs[r];
        let promotable_first = !(rsc.variant == Variant::Clone && rsc.promotable);
        (
            std::cmp::Reverse(rsc.priority),
            std::cmp::Reverse(rsc.variant),
            promotable_first,
            rsc.id.clone(),
        )
    }

    // ------------------------------------------------------------ helpers

    /// Pacemaker's `pcmk__node_available` for an entry of a table.
    pub fn available(&self, n: NodeIx, weight: Score, consider_score: bool) -> bool {
        self.nodes[n].can_run() && !(consider_score && weight < Score::ZERO)
    }

    pub fn any_available(&self, table: &NodeTable) -> bool {
        table
            .iter()
            .enumerate()
            .any(|(n, a)| a.is_some_and(|a| self.available(n, a.weight, true)))
    }

    /// The node a resource is active on, preferring a clean one (Pacemaker's
    /// `pe__current_node`).
    pub fn current_node(&self, r: RscIx) -> Option<NodeIx> {
        let rsc = &self.rscs[r];
        let mut active: Option<NodeIx> = None;
        for &n in &rsc.running_on {
            let happy = self.nodes[n].online && !self.nodes[n].unclean;
            if !rsc.needs_fencing {
                if happy && active.is_none_or(|a| !self.nodes[a].online || self.nodes[a].unclean) {
                    active = Some(n);
                }
            } else if active.is_none() {
                return Some(n);
            }
            if active.is_none() {
                active = Some(n);
            }
        }
        active
    }

    /// Writes one line of the scores output (`--scores`).
    pub fn show_table(&mut self, func: &str, r: RscIx, recursive: bool) {
        // Pacemaker shows no scores for orphans.
        if !self.show_scores || self.rscs[r].orphan {
            return;
        }
        self.show_one(func, r);
        if recursive {
            for c in self.rscs[r].children.clone() {
                self.show_table(func, c, true);
            }
        }
    }

    fn show_one(&mut self, func: &str, r: RscIx) {
        let mut lines = Vec::new();
        let mut order: Vec<NodeIx> = (0..self.node_count()).collect();
        order.sort_by(|&a, &b| self.nodes[a].name.cmp(&self.nodes[b].name));
        for n in order {
            if let Some(a) = self.rscs[r].allowed[n] {
                lines.push(format!(
                    "{func}: {} allocation score on {}: {}",
                    self.rscs[r].id, self.nodes[n].name, a.weight
                ));
            }
        }
        self.score_lines.extend(lines);
    }

    /// The effective fail count of a primitive on a node (0 once the last
    /// failure is older than `failure_timeout`).
    pub fn fail_count(&self, r: RscIx, n: NodeIx) -> u32 {
        let Some(&(count, last)) = self.fail_counts.get(&(self.fail_name(r), n)) else {
            return 0;
        };
        let timeout = self.rscs[r].failure_timeout_us;
        if count > 0
            && timeout > 0
            && let Some(last) = last
            && self.now.as_micros() > last.as_micros().saturating_add(timeout)
        {
            return 0;
        }
        count
    }
}

fn add_counts(a: u32, b: u32) -> u32 {
    a.saturating_add(b).min(super::view::FAIL_COUNT_INFINITY)
}

/// Meta attributes of every configured primitive, group and clone by id.
fn meta_index(config: &Config) -> HashMap<&str, &Meta> {
    let mut m = HashMap::new();
    for c in &config.clones {
        m.insert(c.id.as_str(), &c.meta);
    }
    for g in &config.groups {
        m.insert(g.id.as_str(), &g.meta);
    }
    for r in &config.resources {
        m.insert(r.id.as_str(), &r.meta);
    }
    m
}

/// An id without a clone instance suffix (`web:2` → `web`).
pub(crate) fn clone_strip(id: &str) -> &str {
    match id.rsplit_once(':') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => id,
    }
}
