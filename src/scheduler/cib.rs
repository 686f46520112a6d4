//! Import of Pacemaker CIB XML (`hactl simulate --cib`): the configuration
//! section becomes a [`Config`] plus [`Extensions`], the status section a
//! [`ClusterView`] (node states, and each resource's state derived from its
//! operation history the way Pacemaker 2.1.5 derives it).
//!
//! Only the subset hactl schedules is imported. Everything else is listed
//! by name in [`CibImport::unsupported`] (it could change the result) or
//! [`CibImport::ignored`] (it cannot change placement: alerts, fencing
//! topology, timeouts, …); nothing is dropped silently.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use roxmltree::{Document, Node};

use crate::config::{
    self, Clone as CloneCfg, Colocation, Config, Group, Location, Meta, NoQuorumPolicy, OnFail,
    OpName, Operation, Order, OrderKind, Resource, Role, Score,
};
use crate::time::Instant;

use super::view::{
    ClusterView, Extensions, FAIL_COUNT_INFINITY, MultipleActive, NodeState, NodeStatus,
    ResourceExtensions, ResourceStatus,
};

/// The feature set from which fail counts are kept per operation
/// (`fail-count-RSC#OP_INTERVAL`); older CIBs keep one per resource.
const PER_OPERATION_FAIL_COUNTS_SINCE: (u32, u32, u32) = (3, 0, 13);
/// Timeouts are not used for placement; this is what imported operations get.
const IMPORTED_OP_TIMEOUT_MS: u64 = 20_000;
/// OCF and executor codes the history derivation needs.
mod rc {
    pub const OK: i64 = 0;
    pub const INVALID_PARAM: i64 = 2;
    pub const UNIMPLEMENTED: i64 = 3;
    pub const INSUFFICIENT_PRIV: i64 = 4;
    pub const NOT_INSTALLED: i64 = 5;
    pub const NOT_CONFIGURED: i64 = 6;
    pub const NOT_RUNNING: i64 = 7;
    pub const RUNNING_PROMOTED: i64 = 8;
    pub const FAILED_PROMOTED: i64 = 9;
    pub const DEGRADED: i64 = 190;
    pub const DEGRADED_PROMOTED: i64 = 191;
}
mod exec {
    pub const PENDING: i64 = -1;
    pub const DONE: i64 = 0;
    pub const CANCELLED: i64 = 1;
    pub const NOT_SUPPORTED: i64 = 3;
    pub const ERROR: i64 = 4;
    pub const ERROR_HARD: i64 = 5;
    pub const ERROR_FATAL: i64 = 6;
    pub const NOT_INSTALLED: i64 = 7;
}

/// The result of importing a CIB.
#[derive(Clone, Debug)]
pub struct CibImport {
    pub config: Config,
    pub extensions: Extensions,
    pub view: ClusterView,
    /// Features present in the CIB that hactl does not schedule; the result
    /// may differ from Pacemaker's because of them.
    pub unsupported: Vec<String>,
    /// Settings that cannot change placement and were not imported.
    pub ignored: Vec<String>,
}

/// Why a CIB could not be imported at all.
#[derive(Debug)]
pub enum CibError {
    Xml(String),
    Structure(String),
}

impl std::fmt::Display for CibError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CibError::Xml(e) => write!(f, "not well-formed XML: {e}"),
            CibError::Structure(e) => write!(f, "not a CIB: {e}"),
        }
    }
}

impl std::error::Error for CibError {}

/// An instant from seconds since the Unix epoch: CIB times are wall-clock
/// seconds, so `now` for an imported CIB is taken on the same scale.
pub fn epoch_instant(seconds: u64) -> Instant {
    Instant::from_micros(seconds.saturating_mul(1_000_000))
}

/// Imports CIB XML. `now` is on the scale of [`epoch_instant`].
pub fn import(xml: &str, now: Instant) -> Result<CibImport, CibError> {
    let doc = Document::parse(xml).map_err(|e| CibError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "cib" {
        return Err(CibError::Structure(format!(
            "the root element is <{}>, expected <cib>",
            root.tag_name().name()
        )));
    }
    let configuration = child(root, "configuration")
        .ok_or_else(|| CibError::Structure("no <configuration> section".into()))?;
    let mut imp = Importer {
        config: base_config(),
        ext: Extensions::default(),
        unsupported: Vec::new(),
        ignored: Vec::new(),
        properties: BTreeMap::new(),
        clone_of: HashMap::new(),
        promotable: HashMap::new(),
        defaults_set_stickiness: false,
        resource_index: HashMap::new(),
        group_of: HashMap::new(),
        have_quorum: root.attribute("have-quorum").is_some_and(is_true),
        now,
    };
    imp.config.nodes.clear();
    imp.config.cluster.name = "cib".into();
    imp.crm_config(configuration);
    imp.rsc_defaults(configuration);
    imp.nodes(configuration);
    if let Some(resources) = child(configuration, "resources") {
        imp.resources(resources);
    }
    imp.resource_index = imp
        .config
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    for g in &imp.config.groups {
        for m in &g.members {
            imp.group_of.insert(m.clone(), g.id.clone());
        }
    }
    if let Some(constraints) = child(configuration, "constraints") {
        imp.constraints(constraints);
    }
    for section in configuration.children().filter(Node::is_element) {
        match section.tag_name().name() {
            "crm_config" | "rsc_defaults" | "nodes" | "resources" | "constraints" => {}
            "op_defaults" | "alerts" | "fencing-topology" | "acls" => imp.ignored.push(format!(
                "<{}> (no effect on placement)",
                section.tag_name().name()
            )),
            other => imp.unsupported.push(format!("<{other}> section")),
        }
    }
    let have_quorum = root.attribute("have-quorum").is_some_and(is_true);
    let feature_set = root.attribute("crm_feature_set").and_then(parse_version);
    let mut view = ClusterView {
        nodes: Vec::new(),
        has_quorum: have_quorum,
        resources: Vec::new(),
    };
    if let Some(status) = child(root, "status") {
        imp.status(status, feature_set, &mut view);
    }
    // Configured nodes without any status: never seen, so down.
    for n in &imp.config.nodes {
        if view.node(&n.name).is_none() {
            view.nodes.push(NodeStatus {
                state: NodeState::Offline,
                ..NodeStatus::online(&n.name)
            });
        }
    }
    imp.unsupported.dedup();
    Ok(CibImport {
        config: imp.config,
        extensions: imp.ext,
        view,
        unsupported: imp.unsupported,
        ignored: imp.ignored,
    })
}

/// A configuration with every default filled in, from the parser itself
/// (so that new sections of the model need no change here).
fn base_config() -> Config {
    const TEMPLATE: &str = "[cluster]\nname = \"cib\"\n\n[totem]\ninsecure_no_crypto_i_understand_anyone_can_join = true\n\n[[node]]\nname = \"n\"\nid = 1\naddresses = [\"127.0.0.1\"]\n";
    match config::parse_str(TEMPLATE, Path::new("(cib import)")) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("the built-in configuration template is invalid: {diags:?}"),
    }
}

struct Importer {
    config: Config,
    ext: Extensions,
    unsupported: Vec<String>,
    ignored: Vec<String>,
    properties: BTreeMap<String, String>,
    /// Primitive (or group) id → clone id.
    clone_of: HashMap<String, String>,
    /// Primitive id → whether it is in a promotable clone.
    promotable: HashMap<String, bool>,
    /// Whether rsc_defaults sets resource-stickiness explicitly.
    defaults_set_stickiness: bool,
    /// Primitive id → its index in `config.resources`.
    resource_index: HashMap<String, usize>,
    /// Group member → group id.
    group_of: HashMap<String, String>,
    have_quorum: bool,
    now: Instant,
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// Pacemaker's `crm_is_true`.
fn is_true(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "on" | "yes" | "y" | "1"
    )
}

/// The nvpairs of all `<set>` children of `n`, the first value of a name
/// winning (Pacemaker's order when no scores or rules are involved).
fn nvpairs(n: Node<'_, '_>, set: &'static str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in children(n, set) {
        for p in children(s, "nvpair") {
            let (Some(name), Some(value)) = (p.attribute("name"), p.attribute("value")) else {
                continue;
            };
            if !out.iter().any(|(k, _)| k == name) {
                out.push((name.to_string(), value.to_string()));
            }
        }
    }
    out
}

fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

/// Pacemaker's role names, old and new.
fn parse_role(s: &str) -> Option<Role> {
    match s.to_ascii_lowercase().as_str() {
        "stopped" => Some(Role::Stopped),
        "started" => Some(Role::Started),
        "slave" | "unpromoted" => Some(Role::Unpromoted),
        "master" | "promoted" => Some(Role::Promoted),
        _ => None,
    }
}

/// Pacemaker's interval specs: a number with an optional unit, or ISO 8601
/// (`PT5S`); in milliseconds.
fn parse_interval_ms(s: &str) -> Option<u64> {
    let t = s.trim();
    if let Some(iso) = t.strip_prefix("PT").or_else(|| t.strip_prefix("pt")) {
        let mut total = 0u64;
        let mut num = String::new();
        for ch in iso.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            let v: u64 = num.parse().ok()?;
            num.clear();
            total += match ch.to_ascii_uppercase() {
                'H' => v * 3_600_000,
                'M' => v * 60_000,
                'S' => v * 1_000,
                _ => return None,
            };
        }
        return Some(total);
    }
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let v: u64 = digits.parse().ok()?;
    let unit = t[digits.len()..].trim().to_ascii_lowercase();
    Some(match unit.as_str() {
        "" | "s" | "sec" | "secs" => v * 1_000,
        "ms" | "msec" | "msecs" => v,
        "us" | "usec" | "usecs" => v / 1_000,
        "m" | "min" | "mins" => v * 60_000,
        "h" | "hr" | "hrs" => v * 3_600_000,
        _ => return None,
    })
}

fn parse_on_fail(s: &str) -> Option<OnFail> {
    Some(match s.to_ascii_lowercase().as_str() {
        "ignore" | "nothing" => OnFail::Ignore,
        "block" => OnFail::Block,
        "stop" => OnFail::Stop,
        "restart" => OnFail::Restart,
        "fence" => OnFail::Fence,
        "standby" => OnFail::Standby,
        "demote" => OnFail::Demote,
        _ => return None,
    })
}

/// Cluster properties that cannot change where resources run.
const HARMLESS_PROPERTIES: &[&str] = &[
    "dc-version",
    "cluster-infrastructure",
    "cluster-name",
    "have-watchdog",
    "last-lrm-refresh",
    "batch-limit",
    "dc-deadtime",
    "cluster-delay",
    "pe-input-series-max",
    "pe-error-series-max",
    "pe-warn-series-max",
    "transition-idle-timeout",
    "shutdown-escalation",
    "stonith-action",
    "stonith-timeout",
    "election-timeout",
    "cluster-recheck-interval",
    "startup-fencing",
    "concurrent-fencing",
    "expected-quorum-votes",
    "start-failure-is-fatal",
    "stop-orphan-actions",
    "default-action-timeout",
    "crmd-transition-delay",
    "join-integration-timeout",
    "join-finalization-timeout",
    "migration-limit",
    "node-action-limit",
    "load-threshold",
    "enable-acl",
    "cluster-ipc-limit",
    "fence-reaction",
    "priority-fencing-delay",
    "stonith-watchdog-timeout",
    "stonith-max-attempts",
    "no-quorum-policy",
    "stonith-enabled",
    "symmetric-cluster",
    "is-managed-default",
    "default-resource-stickiness",
];

impl Importer {
    fn unsupported(&mut self, what: String) {
        if !self.unsupported.contains(&what) {
            self.unsupported.push(what);
        }
    }

    // ------------------------------------------------------------ options

    fn crm_config(&mut self, configuration: Node<'_, '_>) {
        if let Some(c) = child(configuration, "crm_config") {
            for (k, v) in nvpairs(c, "cluster_property_set") {
                self.properties.entry(k).or_insert(v);
            }
        }
        let props = self.properties.clone();
        self.ext.fencing_enabled = props.get("stonith-enabled").is_none_or(|v| is_true(v));
        self.ext.symmetric_cluster = props.get("symmetric-cluster").is_none_or(|v| is_true(v));
        self.config.cluster.no_quorum_policy =
            match props.get("no-quorum-policy").map(String::as_str) {
                None | Some("stop") => NoQuorumPolicy::Stop,
                Some("freeze") => NoQuorumPolicy::Freeze,
                Some("ignore") => NoQuorumPolicy::Ignore,
                Some(other) => {
                    self.unsupported(format!("no-quorum-policy={other} (scheduled as stop)"));
                    NoQuorumPolicy::Stop
                }
            };
        for (k, v) in &props {
            match k.as_str() {
                "stop-all-resources" | "maintenance-mode" | "shutdown-lock" if is_true(v) => {
                    self.unsupported(format!("cluster property {k}={v}"))
                }
                "stop-orphan-resources" if !is_true(v) => {
                    self.unsupported(format!("cluster property {k}={v}"))
                }
                "placement-strategy" if v != "default" => {
                    self.unsupported(format!("cluster property {k}={v} (utilization)"))
                }
                "node-health-strategy" if v != "none" => {
                    self.unsupported(format!("cluster property {k}={v}"))
                }
                "stop-all-resources"
                | "maintenance-mode"
                | "shutdown-lock"
                | "stop-orphan-resources"
                | "placement-strategy"
                | "node-health-strategy" => {}
                name if HARMLESS_PROPERTIES.contains(&name) => {}
                name => self.ignored.push(format!("cluster property {name}")),
            }
        }
    }

    fn rsc_defaults(&mut self, configuration: Node<'_, '_>) {
        let Some(d) = child(configuration, "rsc_defaults") else {
            return;
        };
        for (k, v) in nvpairs(d, "meta_attributes") {
            let defaults = &mut self.config.cluster.resource_defaults;
            match k.as_str() {
                "resource-stickiness" | "resource_stickiness" => {
                    defaults.resource_stickiness = Score::parse(&v).unwrap_or(Score::ZERO);
                    // Clones default to stickiness 1 only when nothing sets it:
                    // remember that the defaults do.
                    self.defaults_set_stickiness = true;
                }
                "migration-threshold" => {
                    defaults.migration_threshold = threshold(&v);
                }
                "failure-timeout" => {
                    defaults.failure_timeout_ms = parse_interval_ms(&v).unwrap_or(0);
                }
                "is-managed" => {
                    if !is_true(&v) {
                        self.unsupported("rsc_defaults is-managed=false".into());
                    }
                }
                other => self.unsupported(format!("rsc_defaults {other}")),
            }
        }
    }

    // ------------------------------------------------------------ nodes

    fn nodes(&mut self, configuration: Node<'_, '_>) {
        let Some(nodes) = child(configuration, "nodes") else {
            return;
        };
        let mut id = config::NODE_ID_MIN;
        for n in children(nodes, "node") {
            let Some(uname) = n.attribute("uname").or_else(|| n.attribute("id")) else {
                continue;
            };
            match n.attribute("type") {
                None | Some("member") | Some("normal") => {}
                Some(t) => {
                    self.unsupported(format!("node type {t} (node {uname})"));
                    continue;
                }
            }
            if n.attribute("score").is_some_and(|s| s != "0") {
                self.unsupported(format!("node score (node {uname})"));
            }
            self.config.nodes.push(config::Node {
                name: uname.to_string(),
                id,
                addresses: Vec::new(),
                votes: 1,
                fence_levels: Vec::new(),
            });
            id += 1;
        }
    }

    fn config_node_attributes(configuration: Node<'_, '_>, uname: &str) -> Vec<(String, String)> {
        child(configuration, "nodes")
            .and_then(|ns| {
                children(ns, "node")
                    .find(|n| n.attribute("uname").or_else(|| n.attribute("id")) == Some(uname))
            })
            .map(|n| nvpairs(n, "instance_attributes"))
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ resources

    fn resources(&mut self, resources: Node<'_, '_>) {
        for r in resources.children().filter(Node::is_element) {
            match r.tag_name().name() {
                "primitive" => {
                    self.primitive(r, false);
                }
                "group" => self.group(r, false),
                "clone" => self.clone_rsc(r, false),
                "master" => self.clone_rsc(r, true),
                other => {
                    let id = r.attribute("id").unwrap_or("?");
                    self.unsupported(format!("<{other}> resource {id}"));
                }
            }
        }
    }

    fn meta(
        &mut self,
        id: &str,
        n: Node<'_, '_>,
        kind: &str,
    ) -> (Meta, ResourceExtensions, Vec<(String, String)>) {
        let mut meta = Meta::default();
        let mut ext = ResourceExtensions::default();
        let mut rest = Vec::new();
        for (k, v) in nvpairs(n, "meta_attributes") {
            let key = k.replace('_', "-");
            match key.as_str() {
                "target-role" => meta.target_role = parse_role(&v),
                "resource-stickiness" => meta.resource_stickiness = Score::parse(&v),
                "migration-threshold" => meta.migration_threshold = Some(threshold(&v)),
                "failure-timeout" => meta.failure_timeout_ms = parse_interval_ms(&v),
                "priority" => meta.priority = Score::parse(&v).map(Score::value),
                "is-managed" => ext.managed = Some(is_true(&v)),
                "maintenance" => {
                    if is_true(&v) {
                        ext.managed = Some(false);
                    }
                }
                "critical" => ext.critical = Some(is_true(&v)),
                "multiple-active" => {
                    ext.multiple_active = Some(match v.as_str() {
                        "stop_only" => MultipleActive::StopOnly,
                        "block" => MultipleActive::Block,
                        "stop_unexpected" => MultipleActive::StopUnexpected,
                        _ => MultipleActive::StopStart,
                    })
                }
                "requires" => {
                    if !matches!(v.as_str(), "fencing" | "quorum") {
                        self.unsupported(format!("{kind} {id}: requires={v}"));
                    }
                }
                "allow-migrate" => {
                    if is_true(&v) {
                        self.ignored.push(format!(
                            "{kind} {id}: allow-migrate (moves are stop and start)"
                        ));
                    }
                }
                "notify" => {
                    if is_true(&v) {
                        self.ignored
                            .push(format!("{kind} {id}: notify (no notifications)"));
                    }
                }
                "restart-type" => ext.restart_type_restart = Some(v == "restart"),
                "description" | "resource-discovery" => {}
                _ => rest.push((key, v)),
            }
        }
        if child(n, "utilization").is_some() {
            self.ignored.push(format!("{kind} {id}: utilization"));
        }
        (meta, ext, rest)
    }

    fn primitive(&mut self, p: Node<'_, '_>, in_promotable: bool) -> Option<String> {
        let id = p.attribute("id")?.to_string();
        if p.attribute("template").is_some() {
            self.unsupported(format!("resource template (primitive {id})"));
        }
        let class = p.attribute("class").unwrap_or("ocf");
        let kind = p.attribute("type").unwrap_or("?").to_string();
        let agent = match class {
            "ocf" => config::Agent::Ocf {
                provider: p.attribute("provider").unwrap_or("heartbeat").to_string(),
                kind,
            },
            "lsb" | "service" | "upstart" | "nagios" => config::Agent::Lsb { script: kind },
            "systemd" => config::Agent::Systemd { unit: kind },
            "stonith" => {
                self.ext.fence_resources.insert(id.clone());
                self.ext.fence_device_configured = true;
                // The model has no fence-agent class: keep the name visible.
                config::Agent::Ocf {
                    provider: "stonith".into(),
                    kind,
                }
            }
            other => {
                self.unsupported(format!("resource class {other} (primitive {id})"));
                config::Agent::Lsb { script: kind }
            }
        };
        let (meta, ext, rest) = self.meta(&id, p, "primitive");
        for (k, _) in rest {
            self.unsupported(format!("primitive {id}: meta attribute {k}"));
        }
        let mut ops = Vec::new();
        if let Some(operations) = child(p, "operations") {
            for op in children(operations, "op") {
                let name = match op.attribute("name").unwrap_or("") {
                    "start" => OpName::Start,
                    "stop" => OpName::Stop,
                    "monitor" => OpName::Monitor,
                    "promote" => OpName::Promote,
                    "demote" => OpName::Demote,
                    _ => continue,
                };
                if op.attribute("enabled").is_some_and(|v| !is_true(v)) {
                    continue;
                }
                let interval_ms = op
                    .attribute("interval")
                    .and_then(parse_interval_ms)
                    .unwrap_or(0);
                let on_fail = match op.attribute("on-fail") {
                    Some(v) => parse_on_fail(v).unwrap_or(OnFail::Restart),
                    None => self.default_on_fail(name),
                };
                ops.push(Operation {
                    name,
                    interval_ms,
                    timeout_ms: op
                        .attribute("timeout")
                        .and_then(parse_interval_ms)
                        .unwrap_or(IMPORTED_OP_TIMEOUT_MS),
                    on_fail,
                    role: op.attribute("role").and_then(parse_role),
                });
            }
        }
        self.promotable.insert(id.clone(), in_promotable);
        self.config.resources.push(Resource {
            id: id.clone(),
            agent,
            params: BTreeMap::new(),
            ops,
            meta,
        });
        if ext != ResourceExtensions::default() {
            self.ext.resources.insert(id.clone(), ext);
        }
        Some(id)
    }

    fn default_on_fail(&self, op: OpName) -> OnFail {
        match op {
            OpName::Stop if self.ext.fencing_enabled => OnFail::Fence,
            OpName::Stop => OnFail::Block,
            _ => OnFail::Restart,
        }
    }

    fn group(&mut self, g: Node<'_, '_>, in_promotable: bool) {
        let Some(id) = g.attribute("id") else { return };
        let (meta, mut ext, rest) = self.meta(id, g, "group");
        for (k, v) in rest {
            match k.as_str() {
                "ordered" => ext.ordered = Some(is_true(&v)),
                "collocated" => ext.collocated = Some(is_true(&v)),
                "promotable" => {}
                _ => self.unsupported(format!("group {id}: meta attribute {k}")),
            }
        }
        let mut members = Vec::new();
        for m in g.children().filter(Node::is_element) {
            match m.tag_name().name() {
                "primitive" => {
                    if let Some(mid) = self.primitive(m, in_promotable) {
                        members.push(mid);
                    }
                }
                "meta_attributes" | "instance_attributes" | "utilization" => {}
                other => self.unsupported(format!("<{other}> in group {id}")),
            }
        }
        if members.is_empty() {
            self.unsupported(format!("empty group {id}"));
            return;
        }
        if ext != ResourceExtensions::default() {
            self.ext.resources.insert(id.to_string(), ext);
        }
        self.config.groups.push(Group {
            id: id.to_string(),
            members,
            meta,
        });
    }

    fn clone_rsc(&mut self, c: Node<'_, '_>, master: bool) {
        let Some(id) = c.attribute("id") else { return };
        let (mut meta, mut ext, rest) = self.meta(id, c, "clone");
        let mut clone_max = None;
        let mut clone_node_max = 1;
        let mut promotable = master;
        let mut promoted_max = 1;
        let mut promoted_node_max = 1;
        let num = |v: &str| v.trim().parse::<u32>().unwrap_or(0);
        for (k, v) in rest {
            match k.as_str() {
                "clone-max" => clone_max = Some(num(&v)),
                "clone-node-max" => clone_node_max = num(&v),
                "promotable" => promotable = is_true(&v),
                "promoted-max" | "master-max" => promoted_max = num(&v),
                "promoted-node-max" | "master-node-max" => promoted_node_max = num(&v),
                "globally-unique" => ext.globally_unique = Some(is_true(&v)),
                "interleave" => ext.interleave = Some(is_true(&v)),
                "ordered" => ext.ordered = Some(is_true(&v)),
                "clone-min" => self.unsupported(format!("clone {id}: clone-min")),
                _ => self.unsupported(format!("clone {id}: meta attribute {k}")),
            }
        }
        // Stickiness set in rsc_defaults is explicit, so clones do not get
        // their implicit stickiness of 1: carry it onto the clone.
        if meta.resource_stickiness.is_none() && self.defaults_set_stickiness {
            meta.resource_stickiness =
                Some(self.config.cluster.resource_defaults.resource_stickiness);
        }
        let mut cloned = None;
        for m in c.children().filter(Node::is_element) {
            match m.tag_name().name() {
                "primitive" => {
                    cloned = self.primitive(m, promotable);
                    break;
                }
                "group" => {
                    self.group(m, promotable);
                    cloned = m.attribute("id").map(str::to_string);
                    break;
                }
                "meta_attributes" | "instance_attributes" | "utilization" => {}
                other => self.unsupported(format!("<{other}> in clone {id}")),
            }
        }
        let Some(resource) = cloned else {
            self.unsupported(format!("clone {id} with nothing to clone"));
            return;
        };
        self.clone_of.insert(resource.clone(), id.to_string());
        if ext != ResourceExtensions::default() {
            self.ext.resources.insert(id.to_string(), ext);
        }
        self.config.clones.push(CloneCfg {
            id: id.to_string(),
            resource,
            clone_max,
            clone_node_max,
            promotable,
            promoted_max,
            promoted_node_max,
            meta,
        });
    }

    // ------------------------------------------------------------ constraints

    fn constraints(&mut self, constraints: Node<'_, '_>) {
        for c in constraints.children().filter(Node::is_element) {
            let id = c.attribute("id").unwrap_or("?").to_string();
            if child(c, "resource_set").is_some() {
                self.unsupported(format!("resource sets (constraint {id})"));
                continue;
            }
            match c.tag_name().name() {
                "rsc_location" => self.location(c, &id),
                "rsc_colocation" => self.colocation(c, &id),
                "rsc_order" => self.order(c, &id),
                other => self.unsupported(format!("<{other}> constraint {id}")),
            }
        }
    }

    fn location(&mut self, c: Node<'_, '_>, id: &str) {
        if child(c, "rule").is_some() {
            self.unsupported(format!("location rules (constraint {id})"));
            return;
        }
        if c.attribute("rsc-pattern").is_some() {
            self.unsupported(format!("rsc-pattern (constraint {id})"));
            return;
        }
        if let Some(d) = c.attribute("resource-discovery")
            && d != "always"
        {
            self.unsupported(format!("resource-discovery={d} (constraint {id})"));
        }
        let (Some(rsc), Some(node), Some(score)) = (
            c.attribute("rsc"),
            c.attribute("node"),
            c.attribute("score").and_then(Score::parse),
        ) else {
            self.unsupported(format!(
                "location without rsc, node and score (constraint {id})"
            ));
            return;
        };
        if let Some(role) = c.attribute("role").and_then(parse_role) {
            self.ext.location_roles.insert(id.to_string(), role);
        }
        self.config.locations.push(Location {
            id: id.to_string(),
            resource: rsc.to_string(),
            node: node.to_string(),
            score,
        });
    }

    fn colocation(&mut self, c: Node<'_, '_>, id: &str) {
        let (Some(rsc), Some(with)) = (c.attribute("rsc"), c.attribute("with-rsc")) else {
            self.unsupported(format!(
                "colocation without rsc and with-rsc (constraint {id})"
            ));
            return;
        };
        if c.attribute("rsc-instance").is_some() || c.attribute("with-rsc-instance").is_some() {
            self.unsupported(format!(
                "colocation with a clone instance (constraint {id})"
            ));
        }
        let score = c
            .attribute("score")
            .and_then(Score::parse)
            .unwrap_or(Score::ZERO);
        if let Some(a) = c.attribute("node-attribute") {
            self.ext
                .colocation_node_attribute
                .insert(id.to_string(), a.to_string());
        }
        if let Some(i) = c.attribute("influence") {
            self.ext
                .colocation_influence
                .insert(id.to_string(), is_true(i));
        }
        self.config.colocations.push(Colocation {
            id: id.to_string(),
            resource: rsc.to_string(),
            with: with.to_string(),
            score,
            resource_role: c.attribute("rsc-role").and_then(parse_role),
            with_role: c.attribute("with-rsc-role").and_then(parse_role),
        });
    }

    fn order(&mut self, c: Node<'_, '_>, id: &str) {
        let (Some(first), Some(then)) = (c.attribute("first"), c.attribute("then")) else {
            self.unsupported(format!("order without first and then (constraint {id})"));
            return;
        };
        if c.attribute("first-instance").is_some() || c.attribute("then-instance").is_some() {
            self.unsupported(format!("order with a clone instance (constraint {id})"));
        }
        if c.attribute("require-all").is_some() {
            self.unsupported(format!("require-all (constraint {id})"));
        }
        let kind = match c.attribute("kind") {
            Some(k) => match k.to_ascii_lowercase().as_str() {
                "optional" => OrderKind::Optional,
                "serialize" => OrderKind::Serialize,
                _ => OrderKind::Mandatory,
            },
            // Deprecated: a score of 0 meant optional.
            None => match c.attribute("score").and_then(Score::parse) {
                Some(s) if s == Score::ZERO => OrderKind::Optional,
                _ => OrderKind::Mandatory,
            },
        };
        let action = |v: Option<&str>| match v.map(str::to_ascii_lowercase).as_deref() {
            Some("stop") => Some(OpName::Stop),
            Some("promote") => Some(OpName::Promote),
            Some("demote") => Some(OpName::Demote),
            Some("start") => Some(OpName::Start),
            None => None,
            Some(_) => Some(OpName::Monitor),
        };
        let first_action = action(c.attribute("first-action")).unwrap_or(OpName::Start);
        let then_action = action(c.attribute("then-action")).unwrap_or(first_action);
        if first_action == OpName::Monitor || then_action == OpName::Monitor {
            self.unsupported(format!(
                "order of an action other than start, stop, promote, demote (constraint {id})"
            ));
            return;
        }
        let symmetrical = match c.attribute("symmetrical") {
            Some(v) => is_true(v) && kind != OrderKind::Serialize,
            None => kind != OrderKind::Serialize,
        };
        self.config.orders.push(Order {
            id: id.to_string(),
            first: first.to_string(),
            then: then.to_string(),
            kind,
            symmetrical,
            first_action,
            then_action,
        });
    }

    // ------------------------------------------------------------ status

    fn status(
        &mut self,
        status: Node<'_, '_>,
        feature_set: Option<(u32, u32, u32)>,
        view: &mut ClusterView,
    ) {
        let per_op = feature_set.is_some_and(|v| v >= PER_OPERATION_FAIL_COUNTS_SINCE);
        let configuration = status
            .parent()
            .and_then(|root| child(root, "configuration"))
            .expect("checked by the caller");
        for state in children(status, "node_state") {
            let Some(uname) = state.attribute("uname") else {
                continue;
            };
            if self.config.node_by_name(uname).is_none() {
                self.ignored
                    .push(format!("status of node {uname}, which is not configured"));
                continue;
            }
            let mut attrs: BTreeMap<String, String> =
                Self::config_node_attributes(configuration, uname)
                    .into_iter()
                    .collect();
            if let Some(t) = child(state, "transient_attributes") {
                for (k, v) in nvpairs(t, "instance_attributes") {
                    attrs.insert(k, v);
                }
            }
            let node = self.node_status(state, uname, &attrs);
            let online = node.state == NodeState::Online;
            view.nodes.push(node);
            self.histories(state, uname, online, view);
            self.fail_counts(uname, &attrs, per_op, view);
            if let Some(n) = view.node_mut(uname) {
                n.attributes = attrs
                    .into_iter()
                    .filter(|(k, _)| {
                        !k.starts_with("fail-count-") && !k.starts_with("last-failure-")
                    })
                    .collect();
            }
        }
    }

    /// Pacemaker's `determine_online_status` (with and without fencing).
    fn node_status(
        &mut self,
        state: Node<'_, '_>,
        uname: &str,
        attrs: &BTreeMap<String, String>,
    ) -> NodeStatus {
        let in_cluster_attr = state.attribute("in_ccm");
        let in_cluster = in_cluster_attr.is_some_and(is_true);
        let crmd_online = state.attribute("crmd") == Some("online");
        let join = state.attribute("join").unwrap_or("");
        let expected = state.attribute("expected").unwrap_or("down");
        let shutdown = attrs.get("shutdown").is_some_and(|v| v != "0");
        let terminate = attrs
            .get("terminate")
            .is_some_and(|v| is_true(v) || v.starts_with(|c: char| c.is_ascii_digit() && c != '0'));
        let mut standby = attrs.get("standby").is_some_and(|v| is_true(v));
        let maintenance = attrs.get("maintenance").is_some_and(|v| is_true(v));
        let state_of = if !self.ext.fencing_enabled {
            if !in_cluster {
                NodeState::Offline
            } else if crmd_online {
                if join == "member" {
                    NodeState::Online
                } else {
                    NodeState::Offline
                }
            } else if expected != "member" || shutdown {
                NodeState::Offline
            } else {
                NodeState::Unclean
            }
        } else if shutdown {
            if crmd_online {
                NodeState::Online
            } else {
                NodeState::Offline
            }
        } else if in_cluster_attr.is_none() || join == "nack" {
            NodeState::Unclean
        } else if !terminate && expected == "down" {
            if in_cluster || crmd_online {
                // Not ready to run resources yet.
                standby = true;
                NodeState::Online
            } else {
                NodeState::Offline
            }
        } else if terminate && join == "down" && !in_cluster && !crmd_online {
            NodeState::Offline
        } else if !in_cluster || !crmd_online || terminate {
            NodeState::Unclean
        } else if join == "member" {
            NodeState::Online
        } else if join == "pending" || join == "down" {
            standby = true;
            NodeState::Online
        } else {
            NodeState::Unclean
        };
        if state_of == NodeState::Unclean {
            let _ = uname;
        }
        NodeStatus {
            name: uname.to_string(),
            state: state_of,
            standby,
            maintenance,
            shutdown,
            attributes: BTreeMap::new(),
        }
    }

    fn fail_counts(
        &mut self,
        uname: &str,
        attrs: &BTreeMap<String, String>,
        per_op: bool,
        view: &mut ClusterView,
    ) {
        // (resource as named in the attribute) → (count, last failure)
        let mut counts: BTreeMap<String, (u32, Option<u64>)> = BTreeMap::new();
        for (k, v) in attrs {
            let (prefix_fail, rest) = if let Some(r) = k.strip_prefix("fail-count-") {
                (true, r)
            } else if let Some(r) = k.strip_prefix("last-failure-") {
                (false, r)
            } else {
                continue;
            };
            let name = match rest.split_once('#') {
                Some((n, _)) if per_op => n,
                None if !per_op => rest,
                _ => continue,
            };
            let e = counts.entry(name.to_string()).or_insert((0, None));
            if prefix_fail {
                let add = match Score::parse(v) {
                    Some(s) if s >= Score::INFINITY => FAIL_COUNT_INFINITY,
                    Some(s) => u32::try_from(s.value().max(0)).unwrap_or(0),
                    None => 0,
                };
                e.0 = e.0.saturating_add(add).min(FAIL_COUNT_INFINITY);
            } else if let Ok(t) = v.parse::<u64>() {
                e.1 = Some(e.1.map_or(t, |x: u64| x.max(t)));
            }
        }
        for (name, (count, last)) in counts {
            if count == 0 {
                continue;
            }
            let entry = view.resource_mut(&name, uname);
            entry.fail_count = entry
                .fail_count
                .saturating_add(count)
                .min(FAIL_COUNT_INFINITY);
            entry.last_failure = last.map(epoch_instant);
        }
    }

    fn histories(
        &mut self,
        state: Node<'_, '_>,
        uname: &str,
        online: bool,
        view: &mut ClusterView,
    ) {
        let Some(lrm) = child(state, "lrm") else {
            return;
        };
        let Some(resources) = child(lrm, "lrm_resources") else {
            return;
        };
        for lr in children(resources, "lrm_resource") {
            let Some(id) = lr.attribute("id") else {
                continue;
            };
            let ops: Vec<OpRecord> = children(lr, "lrm_rsc_op")
                .filter_map(OpRecord::parse)
                .collect();
            if ops.is_empty() {
                continue;
            }
            let status = self.derive(id, uname, online, &ops);
            view.resources.push(status);
        }
    }

    /// The resource's configuration as far as history derivation needs it.
    fn rsc_info(&self, id: &str) -> (bool, u64, Vec<Operation>) {
        let base = super::work::clone_strip(id);
        let r = self
            .resource_index
            .get(id)
            .or_else(|| self.resource_index.get(base))
            .map(|&i| &self.config.resources[i]);
        let promotable = r.is_some_and(|r| self.promotable.get(&r.id).copied().unwrap_or(false));
        // failure-timeout is inherited from the group and the clone.
        let timeout = r.and_then(|r| {
            let group = self.group_of.get(&r.id);
            let clone = self
                .clone_of
                .get(&r.id)
                .or_else(|| group.and_then(|g| self.clone_of.get(g)));
            r.meta
                .failure_timeout_ms
                .or_else(|| {
                    group.and_then(|g| {
                        self.config
                            .groups
                            .iter()
                            .find(|x| &x.id == g)
                            .and_then(|x| x.meta.failure_timeout_ms)
                    })
                })
                .or_else(|| {
                    clone.and_then(|c| {
                        self.config
                            .clones
                            .iter()
                            .find(|x| &x.id == c)
                            .and_then(|x| x.meta.failure_timeout_ms)
                    })
                })
        });
        let timeout = timeout.unwrap_or(self.config.cluster.resource_defaults.failure_timeout_ms);
        (
            promotable,
            timeout,
            r.map(|r| r.ops.clone()).unwrap_or_default(),
        )
    }

    /// Pacemaker's `unpack_lrm_resource` for one resource on one node.
    fn derive(&mut self, id: &str, uname: &str, online: bool, ops: &[OpRecord]) -> ResourceStatus {
        let (promotable, failure_timeout_ms, configured) = self.rsc_info(id);
        let sorted = super::assign::glib_sort(&(0..ops.len()).collect::<Vec<_>>(), &mut |a, b| {
            cmp_ops(&ops[a], &ops[b])
        });
        let mut d = Derivation {
            role: None,
            on_fail: None,
            last_failure_key: None,
            promotable,
            status: ResourceStatus::new(id, uname),
        };
        // Pacemaker's pe_can_fence for this node.
        let can_fence = self.ext.fencing_enabled
            && self.ext.fence_device_configured
            && (self.have_quorum
                || self.config.cluster.no_quorum_policy == NoQuorumPolicy::Ignore
                || online);
        for &i in &sorted {
            let op = &ops[i];
            if op.task == "notify" || op.task == "meta-data" {
                continue;
            }
            self.unpack_op(&mut d, op, failure_timeout_ms, &configured, can_fence);
        }
        let mut s = d.status;
        s.known = d.role.is_some();
        s.role = d.role.unwrap_or(Role::Stopped);
        s.failure = match d.on_fail {
            None | Some(OnFail::Ignore) => None,
            other => other,
        };
        s
    }

    fn unpack_op(
        &mut self,
        d: &mut Derivation,
        op: &OpRecord,
        failure_timeout_ms: u64,
        configured: &[Operation],
        can_fence: bool,
    ) {
        let is_probe = op.task == "monitor" && op.interval_ms == 0;
        let target_rc = op.target_rc;
        let mut rc = op.rc;
        let mut status = op.status;
        // Old failures expire with failure-timeout (probes that found the
        // resource in a normal state never do).
        let expired = failure_timeout_ms > 0
            && op.last_rc_change.is_some_and(|t| {
                self.now.as_micros() >= epoch_instant(t).as_micros() + failure_timeout_ms * 1_000
            })
            && !(is_probe
                && matches!(
                    rc,
                    rc::OK
                        | rc::NOT_RUNNING
                        | rc::RUNNING_PROMOTED
                        | rc::DEGRADED
                        | rc::DEGRADED_PROMOTED
                ));
        let masked_probe = is_probe
            && (rc == rc::NOT_INSTALLED
                || rc == rc::INVALID_PARAM
                || status == exec::NOT_INSTALLED);
        // remap_operation
        if op.task == "monitor" {
            rc = match rc {
                rc::DEGRADED => rc::OK,
                rc::DEGRADED_PROMOTED => rc::RUNNING_PROMOTED,
                x => x,
            };
        }
        if masked_probe {
            status = exec::DONE;
            rc = rc::NOT_RUNNING;
        }
        if status == exec::DONE || status == exec::ERROR {
            status = if target_rc < 0 || target_rc != rc {
                exec::ERROR
            } else {
                exec::DONE
            };
            match rc {
                rc::OK if is_probe && target_rc == rc::NOT_RUNNING => status = exec::DONE,
                rc::NOT_RUNNING => {
                    if is_probe || target_rc == rc {
                        status = exec::DONE;
                        d.role = Some(Role::Stopped);
                        d.on_fail = None;
                    }
                }
                rc::RUNNING_PROMOTED => {
                    if is_probe && rc != target_rc {
                        status = exec::DONE;
                    }
                    d.role = Some(Role::Promoted);
                }
                rc::FAILED_PROMOTED => {
                    d.role = Some(Role::Promoted);
                    status = exec::ERROR;
                }
                rc::NOT_CONFIGURED => status = exec::ERROR_FATAL,
                rc::UNIMPLEMENTED => {
                    if op.interval_ms == 0 {
                        self.check_recoverable(d, op, can_fence);
                        status = exec::ERROR_HARD;
                    } else {
                        status = exec::NOT_SUPPORTED;
                    }
                }
                rc::NOT_INSTALLED | rc::INVALID_PARAM | rc::INSUFFICIENT_PRIV => {
                    self.check_recoverable(d, op, can_fence);
                    status = exec::ERROR_HARD;
                }
                rc::OK => {}
                _ => {
                    if status == exec::DONE {
                        status = exec::ERROR;
                    }
                }
            }
        }
        if expired && masked_probe && op.rc != op.target_rc {
            if d.role <= Some(Role::Stopped) {
                d.role = None;
            }
            return;
        }
        if expired && rc != target_rc {
            return;
        }
        if masked_probe {
            self.update_state(d, op, target_rc);
            d.status.banned = true;
            return;
        }
        match status {
            exec::CANCELLED => {}
            exec::PENDING => match op.task.as_str() {
                "start" => {
                    d.status.start_pending = true;
                    self.set_active(d);
                }
                "promote" => d.role = Some(Role::Promoted),
                _ => {}
            },
            exec::DONE => self.update_state(d, op, rc),
            exec::NOT_INSTALLED => {
                d.status.banned = true;
                self.op_failure(d, op, rc, configured);
            }
            _ => {
                let strategy = self.action_on_fail(op, configured);
                if strategy == OnFail::Ignore {
                    self.update_state(d, op, target_rc);
                } else {
                    self.op_failure(d, op, rc, configured);
                    if status == exec::ERROR_HARD {
                        d.status.banned = true;
                    } else if status == exec::ERROR_FATAL {
                        d.status.banned_everywhere = true;
                    }
                }
            }
        }
    }

    fn set_active(&self, d: &mut Derivation) {
        d.role = Some(if d.promotable {
            Role::Unpromoted
        } else {
            Role::Started
        });
    }

    /// `check_recoverable`: a stop that failed and cannot be fenced leaves
    /// the resource blocked.
    fn check_recoverable(&self, d: &mut Derivation, op: &OpRecord, can_fence: bool) {
        if op.task == "stop" && !can_fence {
            d.on_fail = Some(worse(d.on_fail, OnFail::Block));
        }
    }

    /// The configured (or default) on-fail of the operation of `op`.
    fn action_on_fail(&self, op: &OpRecord, configured: &[Operation]) -> OnFail {
        let name = match op.task.as_str() {
            "start" => OpName::Start,
            "stop" => OpName::Stop,
            "monitor" => OpName::Monitor,
            "promote" => OpName::Promote,
            "demote" => OpName::Demote,
            _ => return OnFail::Restart,
        };
        configured
            .iter()
            .find(|c| c.name == name && c.interval_ms == op.interval_ms)
            .map(|c| c.on_fail)
            .map(|f| {
                if f == OnFail::Fence && !self.ext.fencing_enabled {
                    OnFail::Stop
                } else {
                    f
                }
            })
            .unwrap_or_else(|| self.default_on_fail(name))
    }

    /// `unpack_rsc_op_failure`.
    fn op_failure(&mut self, d: &mut Derivation, op: &OpRecord, rc: i64, configured: &[Operation]) {
        d.last_failure_key = Some(op.key());
        let action_fail = self.action_on_fail(op, configured);
        d.on_fail = Some(worse(d.on_fail, action_fail));
        match op.task.as_str() {
            "stop" => d.status.banned = true,
            "promote" => d.role = Some(Role::Promoted),
            "demote" => {
                if action_fail == OnFail::Block {
                    d.role = Some(Role::Promoted);
                } else if rc == rc::NOT_RUNNING {
                    d.role = Some(Role::Stopped);
                } else {
                    d.role = Some(Role::Unpromoted);
                }
            }
            "migrate_to" | "migrate_from" => {
                self.unsupported(format!("live migration history ({})", op.id));
            }
            _ => {}
        }
        let is_probe = op.task == "monitor" && op.interval_ms == 0;
        if is_probe && rc == rc::NOT_INSTALLED {
            d.role = Some(Role::Stopped);
        } else if d.role < Some(Role::Started) {
            self.set_active(d);
        }
    }

    /// `update_resource_state`: a completed operation.
    fn update_state(&mut self, d: &mut Derivation, op: &OpRecord, rc: i64) {
        let is_probe = op.task == "monitor" && op.interval_ms == 0;
        let masked = is_probe && (op.rc == rc::NOT_INSTALLED || op.rc == rc::INVALID_PARAM);
        let mut clear = false;
        if rc == rc::NOT_INSTALLED || masked {
            d.role = Some(Role::Stopped);
        } else if rc == rc::NOT_RUNNING {
            clear = true;
        } else {
            match op.task.as_str() {
                "monitor" => {
                    if d.last_failure_key.as_deref() == Some(op.key().as_str()) {
                        clear = true;
                    }
                    if d.role < Some(Role::Started) {
                        self.set_active(d);
                    }
                }
                "start" => {
                    d.role = Some(Role::Started);
                    clear = true;
                }
                "stop" => {
                    d.role = Some(Role::Stopped);
                    clear = true;
                }
                "promote" => {
                    d.role = Some(Role::Promoted);
                    clear = true;
                }
                "demote" => {
                    if d.on_fail == Some(OnFail::Demote) {
                        clear = true;
                    }
                    d.role = Some(Role::Unpromoted);
                }
                "migrate_from" => {
                    d.role = Some(Role::Started);
                    clear = true;
                }
                "migrate_to" => {
                    self.unsupported(format!("live migration history ({})", op.id));
                }
                _ => {
                    if d.role < Some(Role::Started) {
                        self.set_active(d);
                    }
                }
            }
        }
        if clear {
            match d.on_fail {
                Some(OnFail::Stop | OnFail::Fence | OnFail::Standby) => {}
                _ => d.on_fail = None,
            }
        }
    }
}

/// `migration-threshold`: 0 or negative never bans; INFINITY is the default.
fn threshold(v: &str) -> Option<u32> {
    match Score::parse(v) {
        Some(s) if s >= Score::INFINITY => None,
        Some(s) if s.value() <= 0 => Some(0),
        Some(s) => u32::try_from(s.value()).ok(),
        None => None,
    }
}

/// The more severe of two failure responses (Pacemaker's `cmp_on_fail`).
fn worse(current: Option<OnFail>, new: OnFail) -> OnFail {
    let rank = |f: OnFail| match f {
        OnFail::Ignore => 0,
        OnFail::Demote => 1,
        OnFail::Restart => 2,
        OnFail::Block => 4,
        OnFail::Stop => 5,
        OnFail::Standby => 6,
        OnFail::Fence => 7,
    };
    match current {
        Some(c) if rank(c) >= rank(new) => c,
        _ => new,
    }
}

struct Derivation {
    role: Option<Role>,
    on_fail: Option<OnFail>,
    last_failure_key: Option<String>,
    promotable: bool,
    status: ResourceStatus,
}

/// One `lrm_rsc_op` entry.
#[derive(Clone, Debug)]
struct OpRecord {
    id: String,
    task: String,
    interval_ms: u64,
    call_id: i64,
    rc: i64,
    status: i64,
    target_rc: i64,
    last_rc_change: Option<u64>,
    magic: Option<(String, i64)>,
}

impl OpRecord {
    fn parse(n: Node<'_, '_>) -> Option<OpRecord> {
        let num = |a: &str| n.attribute(a).and_then(|v| v.trim().parse::<i64>().ok());
        let key = n.attribute("transition-key");
        let target_rc = key
            .and_then(|k| k.split(':').nth(2))
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(-1);
        let magic = n.attribute("transition-magic").and_then(|m| {
            let (_, key) = m.split_once(';')?;
            let mut parts = key.split(':');
            let _action = parts.next()?;
            let transition = parts.next()?.parse::<i64>().ok()?;
            let _target = parts.next()?;
            Some((parts.next().unwrap_or("").to_string(), transition))
        });
        Some(OpRecord {
            id: n.attribute("id")?.to_string(),
            task: n.attribute("operation")?.to_string(),
            interval_ms: num("interval").map_or(0, |v| u64::try_from(v).unwrap_or(0)),
            call_id: num("call-id").unwrap_or(-1),
            rc: num("rc-code").unwrap_or(0),
            status: num("op-status").unwrap_or(0),
            target_rc,
            last_rc_change: num("last-rc-change")
                .or_else(|| num("last_rc_change"))
                .and_then(|v| u64::try_from(v).ok()),
            magic,
        })
    }

    fn key(&self) -> String {
        format!("{}_{}", self.task, self.interval_ms)
    }
}

/// Pacemaker's `pe__is_newer_op`, as a sort order (oldest first).
fn cmp_ops(a: &OpRecord, b: &OpRecord) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a.id == b.id {
        return Equal;
    }
    let (ac, bc) = (a.call_id, b.call_id);
    if ac == -1 && bc == -1 {
        return Equal;
    }
    if ac >= 0 && ac < bc {
        return Less;
    }
    if bc >= 0 && ac > bc {
        return Greater;
    }
    if ac >= 0 && bc >= 0 && ac == bc {
        let (la, lb) = (
            a.last_rc_change.map_or(-1, |v| v as i64),
            b.last_rc_change.map_or(-1, |v| v as i64),
        );
        if la >= 0 && la < lb {
            return Less;
        }
        if lb >= 0 && la > lb {
            return Greater;
        }
        return Equal;
    }
    let (Some((au, aid)), Some((bu, bid))) = (&a.magic, &b.magic) else {
        return Equal;
    };
    if !au.eq_ignore_ascii_case(bu) || aid == bid {
        if bc == -1 {
            return Less;
        }
        if ac == -1 {
            return Greater;
        }
    } else if (*aid >= 0 && aid < bid) || *bid == -1 {
        return Less;
    } else if (*bid >= 0 && aid > bid) || *aid == -1 {
        return Greater;
    }
    Equal
}
