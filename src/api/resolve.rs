//! The names D-Bus callers give (nodes, resources), checked against the
//! status the API serves, and turned into what [`crate::state::Command`]
//! carries. Pure functions of a [`ClusterStatus`]; an unknown name is
//! `org.freedesktop.DBus.Error.InvalidArgs` with the list of known ones.

use zbus::fdo::Error;

use super::ClusterStatus;
use crate::controller::summary::ControllerSummary;
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

/// The names a caller may give for resources: primitive ids, clone ids
/// without their `:N` instance suffix, and group ids, in configuration
/// order without repeats.
pub fn resource_names(c: &ControllerSummary) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in &c.resources {
        let base = r.id.split(':').next().unwrap_or(&r.id);
        for n in r.group.as_deref().into_iter().chain([base, r.id.as_str()]) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// A resource (primitive, clone or group) by name.
pub fn resource(status: &ClusterStatus, name: &str) -> Result<String, Error> {
    let c = controller(status)?;
    let names = resource_names(c);
    if names.contains(&name) {
        return Ok(name.to_string());
    }
    Err(Error::InvalidArgs(if names.is_empty() {
        format!("no resource {name:?}: the configuration has no resources")
    } else {
        format!(
            "no resource {name:?} in the configuration; the resources are: {}",
            names.join(", ")
        )
    }))
}

/// Where `resource` (primitive, clone or group) runs now: the nodes named
/// by its primitives' `running_on`, without repeats.
pub fn running_on<'a>(c: &'a ControllerSummary, resource: &str) -> Vec<&'a str> {
    let mut nodes: Vec<&str> = Vec::new();
    for r in &c.resources {
        let base = r.id.split(':').next().unwrap_or(&r.id);
        if r.id == resource || base == resource || r.group.as_deref() == Some(resource) {
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
                    rsc("ping:0", None, &["node1"]),
                    rsc("ping:1", None, &["node2"]),
                    rsc("idle", None, &[]),
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
    fn resources_resolve_as_primitives_clones_and_groups() {
        let s = status();
        for name in ["web", "web-ip", "ping", "ping:1", "idle"] {
            assert_eq!(resource(&s, name).unwrap(), name);
        }
        let Error::InvalidArgs(m) = resource(&s, "db").unwrap_err() else {
            panic!("InvalidArgs expected")
        };
        assert!(
            m.contains("web, web-ip, web-server, ping, ping:0, ping:1, idle"),
            "{m}"
        );
    }

    #[test]
    fn away_from_needs_exactly_one_node() {
        let s = status();
        assert_eq!(away_from(&s, "web").unwrap(), 2);
        assert_eq!(away_from(&s, "web-ip").unwrap(), 2);
        let Error::Failed(m) = away_from(&s, "ping").unwrap_err() else {
            panic!("Failed expected")
        };
        assert!(m.contains("node1, node2"), "{m}");
        let Error::Failed(m) = away_from(&s, "idle").unwrap_err() else {
            panic!("Failed expected")
        };
        assert!(m.contains("not running anywhere"), "{m}");
        let mut none = status();
        none.controller = None;
        assert!(matches!(resource(&none, "web"), Err(Error::Failed(_))));
    }
}
