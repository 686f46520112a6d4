//! The data of the `Status` method: what hactld knows now about its node,
//! the ring, the links and quorum, as one serde type ([`ClusterStatus`])
//! that the daemon serializes to JSON and `hactl status` reads back.
//!
//! [`ClusterStatus::build`] is a pure function of what the main loop holds
//! (configuration, ring, link status, packet counts, quorum status), so
//! that its output is testable without sockets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::{self, Config};
use crate::quorum::QuorumStatus;
use crate::totem::NodeId;
use crate::totem::crypto::OpenError;
use crate::totem::driver::LinkStatus;
use crate::totem::wire::{NodeSet, RingId};

/// A node, by id and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub id: NodeId,
    pub name: String,
}

/// A ring id: the representative's node id and the sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingRef {
    pub rep: NodeId,
    pub seq: u64,
}

impl From<RingId> for RingRef {
    fn from(r: RingId) -> RingRef {
        RingRef {
            rep: r.rep,
            seq: r.seq,
        }
    }
}

impl std::fmt::Display for RingRef {
    /// `rep.seq`, as `hactl quorum` and corosync-quorumtool show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.rep, self.seq)
    }
}

/// A configured node and whether it is in this node's ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub id: NodeId,
    pub name: String,
    /// In the current ring (seen by this node).
    pub online: bool,
    /// This node.
    pub local: bool,
}

/// One totem link of this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// 0 or 1, the configuration's `[[totem.link]]` order.
    pub index: usize,
    /// This node's address and port on the link.
    pub local: String,
    /// "up", "down" or "unknown" (no other node in the ring to judge by).
    pub state: String,
    /// The ring members heard on this link recently, by name.
    pub heard_from: Vec<String>,
}

/// Packets dropped for one reason (replayed second copies over the other
/// link are normal and not listed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// A stable name of the reason, e.g. `AuthFailed`, `OtherCluster`.
    pub reason: String,
    /// What it means, for people.
    pub text: String,
    pub count: u64,
}

/// The quorum line of `hactl status`; `Quorum` has the details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumSummary {
    pub quorate: bool,
    pub total_votes: u32,
    pub expected_votes: u32,
    pub quorum: u32,
    /// Why not quorate, for people; None when quorate.
    pub reason: Option<String>,
}

/// What `Status()` returns, as JSON. Fields are only ever added within one
/// [`super::API_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub api_version: u32,
    pub cluster: String,
    /// This node.
    pub node: NodeRef,
    /// The ring this node is in; None while it forms its first one.
    pub ring: Option<RingRef>,
    /// The ring's members, by node id.
    pub members: Vec<NodeRef>,
    /// Every configured node, by node id, online or not.
    pub nodes: Vec<NodeState>,
    pub links: Vec<LinkInfo>,
    pub rejected_packets: Vec<Rejected>,
    pub quorum: QuorumSummary,
    /// The membership digest of the running configuration
    /// (`hactl config show --digest`).
    pub config_digest: String,
    /// Resources in the running configuration.
    pub resources: usize,
    /// The controller's view (DC, resources, failures); None before the
    /// controller has state to show.
    #[serde(default)]
    pub controller: Option<crate::controller::summary::ControllerSummary>,
}

impl ClusterStatus {
    /// The status from what the main loop holds.
    pub fn build(
        config: &Config,
        local: NodeId,
        ring: Option<(RingId, NodeSet)>,
        links: &[LinkStatus],
        dropped: &HashMap<OpenError, u64>,
        quorum: &QuorumStatus,
    ) -> ClusterStatus {
        let name_of = |id: NodeId| {
            config
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map_or_else(|| format!("id {id}"), |n| n.name.clone())
        };
        let members_set = ring.map_or(NodeSet::EMPTY, |(_, m)| m);
        let mut nodes: Vec<NodeState> = config
            .nodes
            .iter()
            .map(|n| NodeState {
                id: n.id,
                name: n.name.clone(),
                online: members_set.contains(n.id),
                local: n.id == local,
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        let mut rejected_packets: Vec<Rejected> = dropped
            .iter()
            .filter(|(e, n)| **e != OpenError::Replayed && **n > 0)
            .map(|(e, n)| Rejected {
                reason: format!("{e:?}"),
                text: e.to_string(),
                count: *n,
            })
            .collect();
        rejected_packets.sort_by(|a, b| a.reason.cmp(&b.reason));
        ClusterStatus {
            api_version: super::API_VERSION,
            cluster: config.cluster.name.clone(),
            node: NodeRef {
                id: local,
                name: name_of(local),
            },
            ring: ring.map(|(r, _)| r.into()),
            members: members_set
                .iter()
                .map(|id| NodeRef {
                    id,
                    name: name_of(id),
                })
                .collect(),
            nodes,
            links: links
                .iter()
                .map(|l| LinkInfo {
                    index: l.index,
                    local: l.local.to_string(),
                    state: l.state.to_string(),
                    heard_from: l.heard_from.iter().map(name_of).collect(),
                })
                .collect(),
            rejected_packets,
            quorum: QuorumSummary {
                quorate: quorum.quorate,
                total_votes: quorum.total_votes,
                expected_votes: quorum.expected_votes,
                quorum: quorum.quorum,
                reason: quorum.inquorate_reason.as_ref().map(ToString::to_string),
            },
            config_digest: config::membership_digest(config),
            resources: config.resources.len(),
            controller: None,
        }
    }

    /// Text for `hactl status`: the node, the configured nodes online (in
    /// the ring) and offline, the links, and the quorum line.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Cluster:  {} (configuration {}, {} resource{})",
            self.cluster,
            self.config_digest.get(..12).unwrap_or(&self.config_digest),
            self.resources,
            if self.resources == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "Node:     {} (id {})", self.node.name, self.node.id);
        let ring = match self.ring {
            Some(r) => format!("{r}, {} of {} nodes", self.members.len(), self.nodes.len()),
            None => "none yet (forming a membership)".to_string(),
        };
        let _ = writeln!(out, "Ring:     {ring}");
        let q = &self.quorum;
        let mut quorum = format!(
            "{} ({} of {} expected votes, quorum {})",
            if q.quorate { "quorate" } else { "NOT quorate" },
            q.total_votes,
            q.expected_votes,
            q.quorum
        );
        if let Some(reason) = &q.reason {
            let _ = write!(quorum, ": {reason}");
        }
        let _ = writeln!(out, "Quorum:   {quorum}");

        let names = |online: bool| {
            self.nodes
                .iter()
                .filter(|n| n.online == online)
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(out, "\nNode list:");
        let _ = writeln!(out, "  * Online:  [ {} ]", names(true));
        let offline = names(false);
        if !offline.is_empty() {
            let _ = writeln!(out, "  * Offline: [ {offline} ]");
        }

        let _ = writeln!(out, "\nLinks:");
        for l in &self.links {
            let heard = if l.heard_from.is_empty() {
                String::new()
            } else {
                format!(" (hears {})", l.heard_from.join(", "))
            };
            let _ = writeln!(out, "  * link {} {}: {}{heard}", l.index, l.local, l.state);
        }
        if !self.rejected_packets.is_empty() {
            let total: u64 = self.rejected_packets.iter().map(|r| r.count).sum();
            let _ = writeln!(out, "\nRejected packets: {total}");
            for r in &self.rejected_packets {
                let _ = writeln!(out, "  * {} {}", r.count, r.text);
            }
        }
        out
    }

    /// Pretty JSON, what `Status()` returns.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ClusterStatus always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;
    use crate::totem::driver::LinkState;
    use std::path::Path;

    fn config() -> Config {
        let text = r#"
[cluster]
name = "c"
[[node]]
name = "a"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "b"
id = 2
addresses = ["10.0.0.2"]
[[node]]
name = "c3"
id = 3
addresses = ["10.0.0.3"]
"#;
        config::parse_str(text, Path::new("t.toml"))
            .expect("valid")
            .config
    }

    #[test]
    fn nodes_outside_the_ring_are_offline_and_rejections_exclude_replays() {
        let c = config();
        let mut members = NodeSet::EMPTY;
        members.insert(1);
        members.insert(2);
        let ring = RingId { seq: 8, rep: 1 };
        let links = [LinkStatus {
            index: 0,
            local: "10.0.0.1:5405".parse().unwrap(),
            state: LinkState::Up,
            heard_from: NodeSet::single(2),
        }];
        let dropped = HashMap::from([(OpenError::AuthFailed, 3), (OpenError::Replayed, 99)]);
        let q = Quorum::new(&c, 1).unwrap().status();
        let s = ClusterStatus::build(&c, 1, Some((ring, members)), &links, &dropped, &q);
        let online: Vec<&str> = s
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(online, ["a", "b"]);
        assert_eq!(s.members.len(), 2);
        assert_eq!(s.rejected_packets.len(), 1);
        assert_eq!(s.rejected_packets[0].reason, "AuthFailed");
        assert_eq!(s.links[0].heard_from, ["b"]);
        let text = s.render_text();
        assert!(text.contains("* Online:  [ a b ]"), "{text}");
        assert!(text.contains("* Offline: [ c3 ]"), "{text}");
        assert!(text.contains("Ring:     1.8, 2 of 3 nodes"), "{text}");
        assert!(text.contains("Rejected packets: 3"), "{text}");
        let back: ClusterStatus = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!(back, s);
    }
}
