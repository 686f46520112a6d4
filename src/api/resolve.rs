//! The names D-Bus callers give (nodes, resources), checked against the
//! status the API serves, and turned into what [`crate::state::Command`]
//! carries. Pure functions of a [`ClusterStatus`]; an unknown name is
//! `org.freedesktop.DBus.Error.InvalidArgs` with the list of known ones.

use zbus::fdo::Error;

use super::ClusterStatus;
use crate::controller::summary::{ControllerSummary, ResourceSummary};
use crate::totem::NodeId;

/// A node by name; "" is this node. Returns its id and name.
pub fn node(status: &ClusterStatus, name: &str) -> Result<(NodeId, String), Error> {
    if name.is_empty() {
        return Ok((status.node.id, status.node.name.clone()));
    }
    status
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| (n.id, n.name.clone()))
        .ok_or_else(|| {
            Error::InvalidArgs(format!(
                "no node {name:?} in the configuration; the nodes are: {}",
                status
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// The controller's summary, or the error for methods that name resources
/// before the controller has any.
pub fn controller(status: &ClusterStatus) -> Result<&ControllerSummary, Error> {
    status.controller.as_ref().ok_or_else(|| {
        Error::Failed(
            "hactld's controller has no state yet (it starts once this node is in a ring); \
             try again in a moment, and check hactl status"
                .to_string(),
        )
    })
}

/// The names a caller may give for resources, in configuration order
/// without repeats: clone ids, group ids and primitive ids (a clone
/// instance, `ID:N`, is accepted too, but not listed).
pub fn resource_names(c: &ControllerSummary) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in &c.resources {
        let chain = r.clone.as_deref().into_iter().chain(r.group.as_deref());
        for n in chain.chain([r.id.as_str()]) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// What a resource name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named<'a> {
    Primitive(&'a ResourceSummary),
    Group(&'a str),
    Clone(&'a str),
}

/// Finds `name` among the known resources; `ID:N` names an instance of a
/// cloned primitive or group, which stands for that primitive or group.
fn find<'a>(c: &'a ControllerSummary, name: &str) -> Option<Named<'a>> {
    let exact = |name: &str| -> Option<Named<'a>> {
        c.resources.iter().find_map(|r| {
            if r.id == name {
                Some(Named::Primitive(r))
            } else if r.group.as_deref() == Some(name) {
                r.group.as_deref().map(Named::Group)
            } else if r.clone.as_deref() == Some(name) {
                r.clone.as_deref().map(Named::Clone)
            } else {
                None
            }
        })
    };
    if let Some(found) = exact(name) {
        return Some(found);
    }
    let (base, n) = name.rsplit_once(':')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cloned = |found: &Named<'_>| match found {
        Named::Primitive(r) => r.clone.is_some(),
        Named::Group(g) => c
            .resources
            .iter()
            .any(|r| r.group.as_deref() == Some(*g) && r.clone.is_some()),
        Named::Clone(_) => false,
    };
    exact(base).filter(cloned)
}

/// `find`, or `InvalidArgs` listing the known names.
fn known<'a>(status: &'a ClusterStatus, name: &str) -> Result<Named<'a>, Error> {
    let c = controller(status)?;
    if let Some(found) = find(c, name) {
        return Ok(found);
    }
    let names = resource_names(c);
    Err(Error::InvalidArgs(if names.is_empty() {
        format!("no resource {name:?}: the configuration has no resources")
    } else {
        format!(
            "no resource {name:?} in the configuration; the resources are: {}",
            names.join(", ")
        )
    }))
}

/// The clone around group `g`, if it is cloned.
fn clone_of_group<'a>(c: &'a ControllerSummary, g: &str) -> Option<&'a str> {
    c.resources
        .iter()
        .filter(|r| r.group.as_deref() == Some(g))
        .find_map(|r| r.clone.as_deref())
}

/// A resource name as `ResourceStop` / `ResourceStart` take it: the id
/// whose target role they set. As crmsh and `crm_resource` do: a group
/// member is set itself; a primitive in a clone, a clone instance (`ID:N`)
/// or a cloned group stands for its clone; a group or clone for itself
/// (and a role set on it acts on all of it, see
/// [`crate::state::ClusterState::target_role_overrides`]).
pub fn role_target(status: &ClusterStatus, name: &str) -> Result<String, Error> {
    let c = controller(status)?;
    Ok(match known(status, name)? {
        Named::Primitive(r) if r.group.is_some() => r.id.clone(),
        Named::Primitive(r) => r.clone.clone().unwrap_or_else(|| r.id.clone()),
        Named::Group(g) => clone_of_group(c, g).unwrap_or(g).to_string(),
        Named::Clone(id) => id.to_string(),
    })
}

/// A resource name as `Migrate` / `Unmigrate` take it: the top-level
/// resource that moves (a member moves with its group, a primitive or
/// instance with its clone), which gets the location preference.
pub fn placement_target(status: &ClusterStatus, name: &str) -> Result<String, Error> {
    let c = controller(status)?;
    Ok(match known(status, name)? {
        Named::Primitive(r) => r
            .clone
            .clone()
            .or_else(|| r.group.clone())
            .unwrap_or_else(|| r.id.clone()),
        Named::Group(g) => clone_of_group(c, g).unwrap_or(g).to_string(),
        Named::Clone(id) => id.to_string(),
    })
}

/// A resource name as `Cleanup` takes it: the primitives whose fail counts
/// and operation history to forget (every member of a group, the
/// primitives of a clone).
pub fn primitives(status: &ClusterStatus, name: &str) -> Result<Vec<String>, Error> {
    let c = controller(status)?;
    let found = known(status, name)?;
    Ok(c.resources
        .iter()
        .filter(|r| match found {
            Named::Primitive(p) => r.id == p.id,
            Named::Group(g) => r.group.as_deref() == Some(g),
            Named::Clone(id) => r.clone.as_deref() == Some(id),
        })
        .map(|r| r.id.clone())
        .collect())
}

/// Where `resource` (primitive, clone or group) runs now: the nodes named
/// by its primitives' `running_on`, without repeats.
pub fn running_on<'a>(c: &'a ControllerSummary, resource: &str) -> Vec<&'a str> {
    let mut nodes: Vec<&str> = Vec::new();
    for r in &c.resources {
        let base = r.id.split(':').next().unwrap_or(&r.id);
        if r.id == resource
            || base == resource
            || r.group.as_deref() == Some(resource)
            || r.clone.as_deref() == Some(resource)
        {
            for n in &r.running_on {
                if !nodes.contains(&n.as_str()) {
                    nodes.push(n);
                }
            }
        }
    }
    nodes
}

/// `Migrate(resource, "")`: the one node the resource runs on now, to keep
/// it away from.
pub fn away_from(status: &ClusterStatus, resource: &str) -> Result<NodeId, Error> {
    let c = controller(status)?;
    match running_on(c, resource).as_slice() {
        [] => Err(Error::Failed(format!(
            "{resource} is not running anywhere, so there is nothing to move it away from; \
             name the node to move it to: hactl migrate {resource} NODE"
        ))),
        [one] => node(status, one).map(|(id, _)| id),
        several => Err(Error::Failed(format!(
            "{resource} runs on {}; name the node to move it to: hactl migrate {resource} NODE",
            several.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::status::{NodeRef, NodeState, QuorumSummary};
    use crate::controller::summary::ResourceSummary;

    fn status() -> ClusterStatus {
        let node = |id, name: &str| NodeState {
            id,
            name: name.to_string(),
            online: true,
            local: id == 1,
        };
        let rsc = |id: &str, group: Option<&str>, on: &[&str]| ResourceSummary {
            id: id.to_string(),
            agent: "ipaddr".to_string(),
            group: group.map(str::to_string),
            running_on: on.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let cloned = |mut r: ResourceSummary, clone: &str| {
            r.clone = Some(clone.to_string());
            r
        };
        ClusterStatus {
            api_version: 1,
            cluster: "c".to_string(),
            node: NodeRef {
                id: 1,
                name: "node1".to_string(),
            },
            ring: None,
            members: vec![],
            nodes: vec![node(1, "node1"), node(2, "node2")],
            links: vec![],
            rejected_packets: vec![],
            quorum: QuorumSummary {
                quorate: true,
                total_votes: 2,
                expected_votes: 2,
                quorum: 2,
                reason: None,
            },
            config_digest: String::new(),
            resources: 3,
            controller: Some(ControllerSummary {
                resources: vec![
                    rsc("web-ip", Some("web"), &["node2"]),
                    rsc("web-server", Some("web"), &["node2"]),
                    cloned(rsc("ping", None, &["node1", "node2"]), "ping-clone"),
                    rsc("idle", None, &[]),
                    cloned(rsc("db-fs", Some("db"), &["node1", "node2"]), "db-clone"),
                    cloned(
                        rsc("db-server", Some("db"), &["node1", "node2"]),
                        "db-clone",
                    ),
                ],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn nodes_resolve_by_name_and_empty_is_this_node() {
        let s = status();
        assert_eq!(node(&s, "node2").unwrap(), (2, "node2".to_string()));
        assert_eq!(node(&s, "").unwrap(), (1, "node1".to_string()));
        let Error::InvalidArgs(m) = node(&s, "node9").unwrap_err() else {
            panic!("InvalidArgs expected")
        };
        assert!(m.contains("node9") && m.contains("node1, node2"), "{m}");
    }

    #[test]
    fn names_resolve_to_where_roles_and_preferences_go_as_crmsh_does() {
        let s = status();
        let role = |n| role_target(&s, n).unwrap();
        let place = |n| placement_target(&s, n).unwrap();
        let prims = |n| primitives(&s, n).unwrap();
        // A group, and a member of it: the role on what is named, the
        // preference on the group, cleanup of the named primitives.
        assert_eq!((role("web"), place("web")), ("web".into(), "web".into()));
        assert_eq!(
            (role("web-ip"), place("web-ip")),
            ("web-ip".into(), "web".into())
        );
        assert_eq!(prims("web"), ["web-ip", "web-server"]);
        assert_eq!(prims("web-server"), ["web-server"]);
        // A clone, its primitive, an instance: all stand for the clone.
        for n in ["ping-clone", "ping", "ping:1"] {
            assert_eq!(
                (role(n), place(n)),
                ("ping-clone".into(), "ping-clone".into())
            );
            assert_eq!(prims(n), ["ping"]);
        }
        // A cloned group: the group and its instances stand for the clone;
        // a member (or a member's instance) keeps its role, moves the clone.
        for n in ["db-clone", "db", "db:0"] {
            assert_eq!((role(n), place(n)), ("db-clone".into(), "db-clone".into()));
            assert_eq!(prims(n), ["db-fs", "db-server"]);
        }
        for n in ["db-fs", "db-fs:1"] {
            assert_eq!((role(n), place(n)), ("db-fs".into(), "db-clone".into()));
        }
        assert_eq!(
            (role("idle"), place("idle")),
            ("idle".into(), "idle".into())
        );
        // Unknown names, and instances of what is not cloned.
        for bad in [
            "nosuch",
            "web:1",
            "idle:0",
            "ping:",
            "ping:x",
            "ping-clone:0x",
        ] {
            let Error::InvalidArgs(m) = role_target(&s, bad).unwrap_err() else {
                panic!("InvalidArgs expected for {bad}")
            };
            assert!(
                m.contains(
                    "the resources are: web, web-ip, web-server, ping-clone, ping, idle, \
                     db-clone, db, db-fs, db-server"
                ),
                "{m}"
            );
            assert!(placement_target(&s, bad).is_err() && primitives(&s, bad).is_err());
        }
    }

    #[test]
    fn away_from_needs_exactly_one_node() {
        let s = status();
        assert_eq!(away_from(&s, "web").unwrap(), 2);
        assert_eq!(away_from(&s, "web-ip").unwrap(), 2);
        let Error::Failed(m) = away_from(&s, "ping-clone").unwrap_err() else {
            panic!("Failed expected")
        };
        assert!(m.contains("node1, node2"), "{m}");
        let Error::Failed(m) = away_from(&s, "idle").unwrap_err() else {
            panic!("Failed expected")
        };
        assert!(m.contains("not running anywhere"), "{m}");
        let mut none = status();
        none.controller = None;
        assert!(matches!(role_target(&none, "web"), Err(Error::Failed(_))));
    }
}
