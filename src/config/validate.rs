//! Cross-checks: everything that involves more than one entry of the file
//! (references, duplicates, cycles, quorum settings against the node list).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::diag::{Sink, closest};
use super::model::*;
use super::parse::Paths;
use super::reader::Spans;

/// What an id in the shared namespace names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Primitive,
    Group,
    Clone,
    FenceDevice,
    Constraint,
}

impl IdKind {
    fn word(self) -> &'static str {
        match self {
            IdKind::Primitive => "resource",
            IdKind::Group => "group",
            IdKind::Clone => "clone",
            IdKind::FenceDevice => "fence device",
            IdKind::Constraint => "constraint",
        }
    }
}

pub(crate) fn validate(c: &Config, paths: &Paths, sink: &mut Sink, spans: &Spans) {
    check_nodes(c, paths, sink, spans);
    check_quorum(c, paths, sink, spans);
    let ids = check_ids(c, paths, sink, spans);
    check_resources(c, paths, &ids, sink, spans);
    check_constraints(c, paths, &ids, sink, spans);
}

fn err(
    sink: &mut Sink,
    spans: &Spans,
    path: &str,
    msg: impl Into<String>,
    hint: impl Into<String>,
) {
    sink.error(&spans.at(path), path, msg, hint);
}

// ---------------------------------------------------------------- nodes and links

fn check_nodes(c: &Config, paths: &Paths, sink: &mut Sink, spans: &Spans) {
    // (`node` written as something else than [[node]] was reported already.)
    if c.nodes.is_empty() && paths.broken_nodes == 0 && !spans.contains("node") {
        err(
            sink,
            spans,
            "node",
            "no [[node]] is configured",
            "add one [[node]] section per cluster member, with name, id and addresses",
        );
    }
    if c.nodes.is_empty() {
        return;
    }
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut ids: HashMap<u32, &str> = HashMap::new();
    let mut addrs: HashMap<std::net::IpAddr, &str> = HashMap::new();
    let links = c.totem.links.len();
    for (n, path) in c.nodes.iter().zip(&paths.nodes) {
        if let Some(first) = names.insert(&n.name, path) {
            err(
                sink,
                spans,
                &format!("{path}.name"),
                format!("node name \"{}\" is used twice (also at {first})", n.name),
                "give every node its own host name",
            );
        }
        if n.id != 0
            && let Some(first) = ids.insert(n.id, path)
        {
            err(
                sink,
                spans,
                &format!("{path}.id"),
                format!("node id {} is used twice (also at {first})", n.id),
                format!("give every node its own id from {NODE_ID_MIN} to {NODE_ID_MAX}"),
            );
        }
        // Too many links is reported already; counting against them is noise.
        if !n.addresses.is_empty() && n.addresses.len() != links && links <= LINKS_MAX {
            err(
                sink,
                spans,
                &format!("{path}.addresses"),
                format!(
                    "node \"{}\" has {} address(es) but totem has {links} link(s)",
                    n.name,
                    n.addresses.len()
                ),
                "give each node exactly one address per [[totem.link]], in link order",
            );
        }
        for (i, a) in n.addresses.iter().enumerate() {
            let apath = format!("{path}.addresses[{i}]");
            if let Some(first) = addrs.insert(*a, path) {
                err(
                    sink,
                    spans,
                    &apath,
                    format!("address {a} is used twice (also at {first})"),
                    "every node needs its own address on every link",
                );
            }
            if a.is_unspecified() || a.is_multicast() {
                err(
                    sink,
                    spans,
                    &apath,
                    format!("{a} cannot be a node address"),
                    "use the node's own unicast address on this link",
                );
            }
            if let Some(link) = c.totem.links.get(i) {
                if let Some(net) = link.network
                    && !net.contains(a)
                {
                    err(
                        sink,
                        spans,
                        &apath,
                        format!("{a} is not in link {i}'s network {net}"),
                        "fix the address, or the network of [[totem.link]]",
                    );
                }
                if let Some(m) = link.mcast_addr
                    && m.is_ipv4() != a.is_ipv4()
                {
                    err(
                        sink,
                        spans,
                        &apath,
                        format!(
                            "{a} and the link's multicast group {m} are of different IP versions"
                        ),
                        "use IPv4 or IPv6 on a link, not both",
                    );
                }
            }
        }
        for (l, level) in n.fence_levels.iter().enumerate() {
            for (d, dev) in level.iter().enumerate() {
                if !c.fence_devices.iter().any(|f| &f.id == dev) && !paths.broken.contains(dev) {
                    let known: Vec<&str> = c.fence_devices.iter().map(|f| f.id.as_str()).collect();
                    let hint = closest(dev, &known).map_or(
                        "declare it in a [[fence_device]] section".to_string(),
                        |s| format!("did you mean \"{s}\"?"),
                    );
                    err(
                        sink,
                        spans,
                        &format!("{path}.fence_levels[{l}][{d}]"),
                        format!("unknown fence device \"{dev}\""),
                        hint,
                    );
                }
            }
        }
    }
    // All addresses of one link must be of one IP version.
    for i in 0..links {
        let v4 = c
            .nodes
            .iter()
            .filter_map(|n| n.addresses.get(i))
            .filter(|a| a.is_ipv4())
            .count();
        let all = c.nodes.iter().filter_map(|n| n.addresses.get(i)).count();
        if v4 != 0 && v4 != all {
            err(
                sink,
                spans,
                "node",
                format!("link {i} mixes IPv4 and IPv6 node addresses"),
                "use one IP version per link",
            );
        }
    }
    if c.cluster.fencing_disabled {
        // Said by the parser, once.
    } else if c.fence_devices.is_empty() && !spans.contains("fence_device") {
        sink.warning(
            &spans.at("node"),
            "fence_device",
            "no fencing is configured",
            "a node that fails uncleanly cannot be fenced, so hactl cannot be sure its resources stopped before they start elsewhere; add a [[fence_device]] (ipmi, libvirt, agent or watchdog) and fence_levels for each node (or, for a lab, say so with [cluster] fencing_disabled_i_understand_split_brain = true)",
        );
    } else if !c.fence_devices.is_empty() {
        for (n, path) in c.nodes.iter().zip(&paths.nodes) {
            if n.fence_levels.is_empty() {
                sink.warning(&spans.at(path), &format!("{path}.fence_levels"), format!("node \"{}\" has no fencing", n.name), "if it fails uncleanly, its resources cannot be recovered safely; add fence_levels = [[\"DEVICE\"]]");
            }
        }
    }
}

// ---------------------------------------------------------------- quorum

fn check_quorum(c: &Config, paths: &Paths, sink: &mut Sink, spans: &Spans) {
    let q = &c.quorum;
    // Nodes that failed to parse still count: the user declared them.
    let nodes = c.nodes.len() + paths.broken_nodes;
    if nodes == 0 {
        return;
    }
    if q.two_node && nodes != 2 {
        err(
            sink,
            spans,
            "quorum.two_node",
            format!("two_node is set but {nodes} node(s) are configured"),
            "two_node is for clusters of exactly two nodes; remove it (with three or more nodes a majority decides by itself)",
        );
    }
    if q.two_node && q.auto_tie_breaker {
        err(
            sink,
            spans,
            "quorum.auto_tie_breaker",
            "auto_tie_breaker cannot be combined with two_node",
            "in a two-node cluster fencing decides; remove one of them",
        );
    }
    if q.two_node
        && let Some(e) = q.expected_votes
        && e != 2
    {
        err(
            sink,
            spans,
            "quorum.expected_votes",
            format!("expected_votes = {e} contradicts two_node"),
            "remove expected_votes: two_node means two expected votes",
        );
    }
    let total = c.total_configured_votes();
    // (The votes of a node that failed to parse are unknown.)
    if total == 0 && paths.broken_nodes == 0 {
        err(
            sink,
            spans,
            "node",
            "every node has votes = 0: no partition could ever be quorate",
            "give at least one node a vote (the default is 1)",
        );
    }
    if let Some(e) = q.expected_votes
        && !q.two_node
        && paths.broken_nodes == 0
    {
        // votequorum: quorum = floor(expected / 2) + 1 (never below the
        // majority of the votes present).
        let needed = e / 2 + 1;
        if needed > total {
            err(
                sink,
                spans,
                "quorum.expected_votes",
                format!(
                    "expected_votes = {e} needs {needed} votes for quorum, but the nodes have only {total} in all"
                ),
                "this cluster could never be quorate: remove expected_votes (the default is the nodes' total)",
            );
        } else if e < total {
            // From a cold start, two halves could then both be quorate.
            err(
                sink,
                spans,
                "quorum.expected_votes",
                format!(
                    "expected_votes = {e} is below the nodes' total of {total} votes: two disjoint partitions could both be quorate"
                ),
                "remove expected_votes (the default is the nodes' total), or raise it",
            );
        }
    }
    if q.last_man_standing {
        for (n, path) in c.nodes.iter().zip(&paths.nodes) {
            if n.votes != 1 {
                err(
                    sink,
                    spans,
                    &format!("{path}.votes"),
                    format!(
                        "last_man_standing needs every node to have 1 vote; node \"{}\" has {}",
                        n.name, n.votes
                    ),
                    "remove votes (default 1), or turn off last_man_standing",
                );
            }
        }
        // Without wait_for_all, a side cut off after the cluster shrank can
        // regain quorum while the other side keeps it (found by the quorum
        // module's exhaustive check): refuse it.
        if !q.wait_for_all {
            err(
                sink,
                spans,
                "quorum.last_man_standing",
                "last_man_standing without wait_for_all lets two disjoint partitions both be quorate",
                "set wait_for_all = true",
            );
        }
    }
    if q.auto_tie_breaker && nodes % 2 == 1 && !q.wait_for_all {
        err(
            sink,
            spans,
            "quorum.auto_tie_breaker",
            format!("auto_tie_breaker with an odd number of nodes ({nodes}) needs wait_for_all"),
            "set wait_for_all = true (votequorum would otherwise disable the tie-breaker)",
        );
    }
    if let TieBreaker::List(ids) = &q.auto_tie_breaker_node {
        for (i, id) in ids.iter().enumerate() {
            if !c.nodes.iter().any(|n| n.id == *id) && paths.broken_nodes == 0 {
                err(
                    sink,
                    spans,
                    &format!("quorum.auto_tie_breaker_node[{i}]"),
                    format!("no node has id {id}"),
                    "list ids of configured nodes",
                );
            }
        }
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                err(
                    sink,
                    spans,
                    &format!("quorum.auto_tie_breaker_node[{i}]"),
                    format!("node id {id} is listed twice"),
                    "list each node once, most preferred first",
                );
            }
        }
    }
    if !q.auto_tie_breaker && spans.contains("quorum.auto_tie_breaker_node") {
        sink.warning(
            &spans.at("quorum.auto_tie_breaker_node"),
            "quorum.auto_tie_breaker_node",
            "auto_tie_breaker_node has no effect without auto_tie_breaker = true",
            "set auto_tie_breaker = true, or remove auto_tie_breaker_node",
        );
    }
}

// ---------------------------------------------------------------- ids

fn check_ids<'c>(
    c: &'c Config,
    paths: &'c Paths,
    sink: &mut Sink,
    spans: &Spans,
) -> HashMap<&'c str, (IdKind, &'c str)> {
    let mut ids: HashMap<&str, (IdKind, &str)> = HashMap::new();
    let mut add = |sink: &mut Sink, id: &'c str, kind: IdKind, path: &'c str| {
        if let Some((k, first)) = ids.get(id) {
            let (message, hint) = if paths.derived_ids.contains(path) {
                (
                    format!(
                        "the id \"{id}\" derived for this constraint is already used by the {} at {first}",
                        k.word()
                    ),
                    "give this constraint an explicit id = \"...\"".to_string(),
                )
            } else {
                (
                    format!("id \"{id}\" is already used by the {} at {first}", k.word()),
                    "ids are shared by resources, groups, clones, fence devices and constraints: rename one".to_string(),
                )
            };
            err(sink, spans, &format!("{path}.id"), message, hint);
        } else {
            ids.insert(id, (kind, path));
        }
    };
    for (r, p) in c.resources.iter().zip(&paths.resources) {
        add(sink, &r.id, IdKind::Primitive, p);
    }
    for (g, p) in c.groups.iter().zip(&paths.groups) {
        add(sink, &g.id, IdKind::Group, p);
    }
    for (x, p) in c.clones.iter().zip(&paths.clones) {
        add(sink, &x.id, IdKind::Clone, p);
    }
    for (f, p) in c.fence_devices.iter().zip(&paths.fence_devices) {
        add(sink, &f.id, IdKind::FenceDevice, p);
    }
    for (l, p) in c.locations.iter().zip(&paths.locations) {
        add(sink, &l.id, IdKind::Constraint, p);
    }
    for (l, p) in c.colocations.iter().zip(&paths.colocations) {
        add(sink, &l.id, IdKind::Constraint, p);
    }
    for (l, p) in c.orders.iter().zip(&paths.orders) {
        add(sink, &l.id, IdKind::Constraint, p);
    }
    ids
}

/// Suggests a known resource-like id close to an unknown one.
fn suggest(unknown: &str, ids: &HashMap<&str, (IdKind, &str)>, kinds: &[IdKind]) -> String {
    let known: Vec<&str> = ids
        .iter()
        .filter(|(_, (k, _))| kinds.contains(k))
        .map(|(id, _)| *id)
        .collect();
    match closest(unknown, &known) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None => {
            let sections: Vec<&str> = kinds
                .iter()
                .filter_map(|k| match k {
                    IdKind::Primitive => Some("[[resource]]"),
                    IdKind::Group => Some("[[group]]"),
                    IdKind::Clone => Some("[[clone]]"),
                    _ => None,
                })
                .collect();
            format!(
                "declare it in a {} section, or fix the id",
                sections.join(" or ")
            )
        }
    }
}

const RESOURCE_KINDS: &[IdKind] = &[IdKind::Primitive, IdKind::Group, IdKind::Clone];

// ---------------------------------------------------------------- groups and clones

fn check_resources(
    c: &Config,
    paths: &Paths,
    ids: &HashMap<&str, (IdKind, &str)>,
    sink: &mut Sink,
    spans: &Spans,
) {
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for (g, gp) in c.groups.iter().zip(&paths.groups) {
        let mut seen = HashSet::new();
        for (i, m) in g.members.iter().enumerate() {
            let mp = format!("{gp}.members[{i}]");
            match ids.get(m.as_str()) {
                None if paths.broken.contains(m) => {}
                None => err(
                    sink,
                    spans,
                    &mp,
                    format!("unknown resource \"{m}\""),
                    suggest(m, ids, &[IdKind::Primitive]),
                ),
                Some((IdKind::Primitive, _)) => {
                    if !seen.insert(m.as_str()) {
                        err(
                            sink,
                            spans,
                            &mp,
                            format!("\"{m}\" is listed twice in group \"{}\"", g.id),
                            "list each member once",
                        );
                    } else if let Some(other) = member_of.insert(m, &g.id)
                        && other != g.id
                    {
                        err(
                            sink,
                            spans,
                            &mp,
                            format!(
                                "resource \"{m}\" is in two groups: \"{other}\" and \"{}\"",
                                g.id
                            ),
                            "a resource can belong to one group only",
                        );
                    }
                }
                Some((k, _)) => err(
                    sink,
                    spans,
                    &mp,
                    format!(
                        "\"{m}\" is a {}; groups contain only primitive resources",
                        k.word()
                    ),
                    "list [[resource]] ids; to group clones, use colocation and order constraints",
                ),
            }
        }
    }
    let mut cloned: HashMap<&str, &str> = HashMap::new();
    for (x, xp) in c.clones.iter().zip(&paths.clones) {
        let rp = format!("{xp}.resource");
        match ids.get(x.resource.as_str()) {
            None if paths.broken.contains(&x.resource) => {}
            None => err(
                sink,
                spans,
                &rp,
                format!("unknown resource \"{}\"", x.resource),
                suggest(&x.resource, ids, &[IdKind::Primitive, IdKind::Group]),
            ),
            Some((IdKind::Primitive | IdKind::Group, _)) => {
                if let Some(other) = cloned.insert(&x.resource, &x.id) {
                    err(
                        sink,
                        spans,
                        &rp,
                        format!("\"{}\" is already cloned by \"{other}\"", x.resource),
                        "a resource can be cloned once",
                    );
                }
                if let Some(g) = member_of.get(x.resource.as_str()) {
                    err(
                        sink,
                        spans,
                        &rp,
                        format!("\"{}\" is a member of group \"{g}\"", x.resource),
                        format!("clone the whole group: resource = \"{g}\""),
                    );
                }
            }
            Some((k, _)) => err(
                sink,
                spans,
                &rp,
                format!("\"{}\" is a {} and cannot be cloned", x.resource, k.word()),
                "clone a [[resource]] or a [[group]]",
            ),
        }
        if x.promotable
            && let Some(max) = x.clone_max
            && x.promoted_max > max
        {
            err(
                sink,
                spans,
                &format!("{xp}.promoted_max"),
                format!(
                    "promoted_max ({}) exceeds clone_max ({max})",
                    x.promoted_max
                ),
                "lower promoted_max or raise clone_max",
            );
        }
    }
    // target_role = promoted makes sense only inside a promotable clone.
    let promotable_content: HashSet<&str> = c
        .clones
        .iter()
        .filter(|x| x.promotable)
        .flat_map(|x| {
            let mut v = vec![x.id.as_str(), x.resource.as_str()];
            if let Some(g) = c.groups.iter().find(|g| g.id == x.resource) {
                v.extend(g.members.iter().map(String::as_str));
            }
            v
        })
        .collect();
    let metas = c
        .resources
        .iter()
        .map(|r| (&r.id, &r.meta))
        .zip(&paths.resources)
        .chain(c.groups.iter().map(|g| (&g.id, &g.meta)).zip(&paths.groups))
        .chain(c.clones.iter().map(|x| (&x.id, &x.meta)).zip(&paths.clones));
    for ((id, meta), p) in metas {
        if matches!(meta.target_role, Some(Role::Promoted | Role::Unpromoted))
            && !promotable_content.contains(id.as_str())
        {
            err(
                sink,
                spans,
                &format!("{p}.meta.target_role"),
                format!("\"{id}\" is not in a promotable clone, so it has no promoted role"),
                "use target_role = \"started\" or \"stopped\"",
            );
        }
    }
    // Promote, demote and role-specific monitors need a promotable clone.
    for (r, p) in c.resources.iter().zip(&paths.resources) {
        if promotable_content.contains(r.id.as_str()) {
            continue;
        }
        for o in &r.ops {
            let what = match (o.name, o.role) {
                (OpName::Promote | OpName::Demote, _) => format!("a {} operation", o.name.as_str()),
                _ if o.on_fail == OnFail::Demote => {
                    format!("a {} with on_fail = \"demote\"", o.name.as_str())
                }
                (_, Some(role @ (Role::Promoted | Role::Unpromoted))) => {
                    format!("a {} for the {} role", o.name.as_str(), role.as_str())
                }
                _ => continue,
            };
            err(
                sink,
                spans,
                &format!("{p}.op"),
                format!(
                    "\"{}\" has {what}, but it is not in a promotable clone",
                    r.id
                ),
                "remove the operation, or put the resource in a [[clone]] with promotable = true",
            );
        }
    }
}

// ---------------------------------------------------------------- constraints

fn check_constraints(
    c: &Config,
    paths: &Paths,
    ids: &HashMap<&str, (IdKind, &str)>,
    sink: &mut Sink,
    spans: &Spans,
) {
    // A primitive or group inside a clone is constrained through the clone.
    // (A clone of something that cannot be cloned is reported already.)
    let clone_of: HashMap<&str, &str> = c
        .clones
        .iter()
        .filter(|x| {
            matches!(
                ids.get(x.resource.as_str()),
                Some((IdKind::Primitive | IdKind::Group, _))
            )
        })
        .flat_map(|x| {
            let mut v = vec![(x.resource.as_str(), x.id.as_str())];
            if let Some(g) = c.groups.iter().find(|g| g.id == x.resource) {
                v.extend(g.members.iter().map(|m| (m.as_str(), x.id.as_str())));
            }
            v
        })
        .collect();
    let check_ref = |sink: &mut Sink, path: String, id: &str| -> bool {
        match ids.get(id) {
            None if paths.broken.contains(id) => false,
            None => {
                err(
                    sink,
                    spans,
                    &path,
                    format!("unknown resource \"{id}\""),
                    suggest(id, ids, RESOURCE_KINDS),
                );
                false
            }
            Some((IdKind::Primitive | IdKind::Group | IdKind::Clone, _)) => {
                if let Some(x) = clone_of.get(id) {
                    err(
                        sink,
                        spans,
                        &path,
                        format!("\"{id}\" is inside clone \"{x}\""),
                        format!("constrain the clone instead: \"{x}\""),
                    );
                    false
                } else {
                    true
                }
            }
            Some((k, _)) => {
                err(
                    sink,
                    spans,
                    &path,
                    format!("\"{id}\" is a {}, not a resource", k.word()),
                    "constraints place resources, groups and clones",
                );
                false
            }
        }
    };
    let promotable = |id: &str| c.clones.iter().any(|x| x.id == id && x.promotable);

    for (l, p) in c.locations.iter().zip(&paths.locations) {
        check_ref(sink, format!("{p}.resource"), &l.resource);
        if c.node_by_name(&l.node).is_none() && !paths.broken_node_names.contains(&l.node) {
            let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
            let hint = closest(&l.node, &names).map_or_else(
                || format!("configured nodes: {}", names.join(", ")),
                |s| format!("did you mean \"{s}\"?"),
            );
            err(
                sink,
                spans,
                &format!("{p}.node"),
                format!("unknown node \"{}\"", l.node),
                hint,
            );
        }
    }
    for (col, p) in c.colocations.iter().zip(&paths.colocations) {
        let a = check_ref(sink, format!("{p}.resource"), &col.resource);
        let b = check_ref(sink, format!("{p}.with"), &col.with);
        if col.resource == col.with {
            err(
                sink,
                spans,
                &format!("{p}.with"),
                format!("\"{}\" is colocated with itself", col.resource),
                "a colocation places one resource relative to another; name two different ones",
            );
        }
        for (ok, id, role, key) in [
            (a, &col.resource, col.resource_role, "resource_role"),
            (b, &col.with, col.with_role, "with_role"),
        ] {
            if ok && matches!(role, Some(Role::Promoted | Role::Unpromoted)) && !promotable(id) {
                err(
                    sink,
                    spans,
                    &format!("{p}.{key}"),
                    format!(
                        "\"{id}\" is not a promotable clone, so it has no {} role",
                        role.map_or("", Role::as_str)
                    ),
                    "use \"started\", or refer to the promotable clone",
                );
            }
        }
    }
    for (o, p) in c.orders.iter().zip(&paths.orders) {
        let a = check_ref(sink, format!("{p}.first"), &o.first);
        let b = check_ref(sink, format!("{p}.then"), &o.then);
        if o.first == o.then {
            err(
                sink,
                spans,
                &format!("{p}.then"),
                format!("\"{}\" is ordered after itself", o.first),
                "an order relates two different resources",
            );
        }
        for (ok, id, action, key) in [
            (a, &o.first, o.first_action, "first_action"),
            (b, &o.then, o.then_action, "then_action"),
        ] {
            if ok && matches!(action, OpName::Promote | OpName::Demote) && !promotable(id) {
                let kp = format!("{p}.{key}");
                let defaulted = key == "then_action" && !spans.contains(&kp);
                err(
                    sink,
                    spans,
                    &kp,
                    format!(
                        "\"{id}\" is not a promotable clone, so it cannot be {}d{}",
                        action.as_str(),
                        if defaulted {
                            " (then_action defaults to first_action)"
                        } else {
                            ""
                        }
                    ),
                    if defaulted {
                        "set then_action = \"start\" (or \"stop\")"
                    } else {
                        "use start or stop"
                    },
                );
            }
        }
    }
    check_order_cycles(c, paths, sink, spans);
}

/// Mandatory orders (explicit, and the implicit ones inside each group)
/// must not form a cycle: nothing in it could ever start.
fn check_order_cycles(c: &Config, paths: &Paths, sink: &mut Sink, spans: &Spans) {
    // Edges first → then, labelled with where they come from.
    let mut edges: BTreeMap<&str, Vec<(&str, Option<usize>)>> = BTreeMap::new();
    for g in &c.groups {
        for w in g.members.windows(2) {
            edges.entry(&w[0]).or_default().push((&w[1], None));
        }
    }
    // An order on a group means: after its last member / before its first.
    let group_end = |id: &str, last: bool| -> String {
        c.groups
            .iter()
            .find(|g| g.id == id)
            .and_then(|g| {
                if last {
                    g.members.last()
                } else {
                    g.members.first()
                }
            })
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let ends: Vec<(String, String)> = c
        .orders
        .iter()
        .map(|o| (group_end(&o.first, true), group_end(&o.then, false)))
        .collect();
    for (i, o) in c.orders.iter().enumerate() {
        if o.kind == OrderKind::Mandatory && o.first != o.then {
            edges
                .entry(&ends[i].0)
                .or_default()
                .push((&ends[i].1, Some(i)));
        }
    }
    // Depth-first search with colours; report each cycle once, at an
    // explicit order in it.
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on stack, 2 = done
    let mut reported: HashSet<usize> = HashSet::new();
    let nodes: Vec<&str> = edges.keys().copied().collect();
    for start in nodes {
        if state.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        let mut trail: Vec<(&str, Option<usize>)> = vec![(start, None)];
        state.insert(start, 1);
        while let Some((node, next)) = stack.pop() {
            let out = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if next < out.len() {
                stack.push((node, next + 1));
                let (to, via) = out[next];
                match state.get(to) {
                    None => {
                        state.insert(to, 1);
                        stack.push((to, 0));
                        trail.push((to, via));
                    }
                    Some(1) => {
                        let pos = trail.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut cycle: Vec<&str> = trail[pos..].iter().map(|(n, _)| *n).collect();
                        let first_node = cycle.first().copied().unwrap_or(to);
                        cycle.push(first_node);
                        let at = trail[pos + 1..]
                            .iter()
                            .filter_map(|(_, v)| *v)
                            .chain(via)
                            .next();
                        if let Some(i) = at
                            && reported.insert(i)
                        {
                            err(
                                sink,
                                spans,
                                &paths.orders[i],
                                format!("mandatory orders form a cycle: {}", cycle.join(" → ")),
                                "nothing in a cycle could ever start; remove one of these orders or make it kind = \"optional\"",
                            );
                        }
                    }
                    _ => {}
                }
            } else {
                state.insert(node, 2);
                trail.pop();
            }
        }
    }
}
