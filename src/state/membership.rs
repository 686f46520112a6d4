//! The membership check: nodes exchange a small summary of what every
//! member must agree on (the cluster's name, totem, quorum, and each node's
//! name, id, addresses and votes — [`crate::config::membership_canonical`],
//! about a kilobyte) rather than only its digest, so that a node whose
//! configuration differs is refused with a message that names the
//! difference: `node node3 has id 4 there, 3 here`, `totem.token differs:
//! "300ms" here, "1s" there`.

use crate::config::{Config, membership_canonical, membership_digest};

/// What one node says about its membership configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// [`membership_canonical`]: canonical TOML.
    pub canonical: String,
}

impl Summary {
    pub fn of(config: &Config) -> Summary {
        Summary {
            canonical: membership_canonical(config),
        }
    }

    /// SHA-256 of the canonical text, as [`membership_digest`] gives it.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.canonical.as_bytes()))
    }

    /// What differs between this node's summary (`self`, "here") and
    /// another's ("there"), one sentence each; empty when they agree.
    /// `Err` when the other summary is not readable (a newer hactl?).
    pub fn differences(&self, there: &Summary) -> Result<Vec<String>, String> {
        if self.canonical == there.canonical {
            return Ok(Vec::new());
        }
        let here_t: toml::Table = self
            .canonical
            .parse()
            .map_err(|e| format!("this node's membership summary does not parse: {e}"))?;
        let there_t: toml::Table = there.canonical.parse().map_err(|e| {
            format!("the other node's membership summary does not parse (a different hactl version?): {e}")
        })?;
        let mut out = Vec::new();
        for section in ["cluster", "totem", "quorum"] {
            let empty = toml::Table::new();
            let h = here_t
                .get(section)
                .and_then(|v| v.as_table())
                .unwrap_or(&empty);
            let t = there_t
                .get(section)
                .and_then(|v| v.as_table())
                .unwrap_or(&empty);
            compare_tables(section, h, t, &mut out);
        }
        let nodes = |t: &toml::Table| -> Vec<toml::Table> {
            t.get("node")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_table().cloned()).collect())
                .unwrap_or_default()
        };
        let (h_nodes, t_nodes) = (nodes(&here_t), nodes(&there_t));
        let name = |n: &toml::Table| {
            n.get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        for h in &h_nodes {
            match t_nodes.iter().find(|t| name(t) == name(h)) {
                None => out.push(format!("node {} is configured here, not there", name(h))),
                Some(t) => {
                    for (k, hv) in h {
                        if k == "name" {
                            continue;
                        }
                        match t.get(k) {
                            Some(tv) if tv == hv => {}
                            Some(tv) => out.push(node_difference(&name(h), k, hv, tv)),
                            None => out.push(format!(
                                "node {} has {k} = {hv} here, nothing there",
                                name(h)
                            )),
                        }
                    }
                    for (k, tv) in t {
                        if !h.contains_key(k) {
                            out.push(format!(
                                "node {} has {k} = {tv} there, nothing here",
                                name(h)
                            ));
                        }
                    }
                }
            }
        }
        for t in &t_nodes {
            if !h_nodes.iter().any(|h| name(h) == name(t)) {
                out.push(format!("node {} is configured there, not here", name(t)));
            }
        }
        if out.is_empty() {
            // Same content, different text: only the order or layout.
            out.push(format!(
                "the membership digests differ ({} here, {} there) though every setting \
                 agrees: the nodes run different hactl versions?",
                &self.digest()[..12],
                &there.digest()[..12]
            ));
        }
        Ok(out)
    }
}

fn node_difference(node: &str, key: &str, here: &toml::Value, there: &toml::Value) -> String {
    match key {
        "id" => format!("node {node} has id {there} there, {here} here"),
        "votes" => format!("node {node} has {there} votes there, {here} here"),
        _ => format!("node {node} has {key} = {there} there, {here} here"),
    }
}

/// Totem settings in milliseconds (the canonical form writes them as
/// plain numbers).
const TOTEM_MS_KEYS: &[&str] = &[
    "token",
    "token_coefficient",
    "consensus",
    "join",
    "merge",
    "downcheck",
    "send_join",
];

fn show(path: &str, v: &toml::Value) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    match v {
        toml::Value::Integer(n) if path.starts_with("totem.") && TOTEM_MS_KEYS.contains(&key) => {
            format!("{n} ms")
        }
        _ => v.to_string(),
    }
}

fn compare_tables(section: &str, here: &toml::Table, there: &toml::Table, out: &mut Vec<String>) {
    for (k, hv) in here {
        let path = format!("{section}.{k}");
        match there.get(k) {
            Some(tv) => compare_values(&path, hv, tv, out),
            None => out.push(format!("{path} is {} here, not set there", show(&path, hv))),
        }
    }
    for (k, tv) in there {
        if !here.contains_key(k) {
            let path = format!("{section}.{k}");
            out.push(format!("{path} is {} there, not set here", show(&path, tv)));
        }
    }
}

fn compare_values(path: &str, hv: &toml::Value, tv: &toml::Value, out: &mut Vec<String>) {
    if hv == tv {
        return;
    }
    match (hv, tv) {
        (toml::Value::Table(h), toml::Value::Table(t)) => compare_tables(path, h, t, out),
        (toml::Value::Array(h), toml::Value::Array(t))
            if h.iter().chain(t).all(toml::Value::is_table) =>
        {
            if h.len() != t.len() {
                out.push(format!(
                    "{path}: {} here, {} there",
                    count(h.len()),
                    count(t.len())
                ));
            }
            for (i, (a, b)) in h.iter().zip(t).enumerate() {
                compare_values(&format!("{path}[{}]", i + 1), a, b, out);
            }
        }
        _ => out.push(format!(
            "{path} differs: {} here, {} there",
            show(path, hv),
            show(path, tv)
        )),
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

/// The check made when a node's summary arrives: `Ok` when it matches this
/// node's configuration, otherwise the refusal naming every difference.
pub fn check_peer(local: &Config, peer_name: &str, peer: &Summary) -> Result<(), String> {
    let here = Summary::of(local);
    if here.digest() == peer.digest() {
        return Ok(());
    }
    let diffs = here.differences(peer).unwrap_or_else(|e| vec![e]);
    debug_assert_eq!(here.digest(), membership_digest(local));
    Err(format!(
        "node {peer_name} is refused: its membership configuration differs from this node's \
         ({}); make /etc/hactl/cluster.toml agree on every node (`hactl config show` prints \
         the canonical form to compare)",
        diffs.join("; ")
    ))
}
