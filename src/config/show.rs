//! The canonical form: the configuration written back as TOML with every
//! default filled in, in a fixed order. `hactl config show` prints it, and
//! parsing it gives the same configuration again. The membership digest is
//! the SHA-256 of the canonical form of the parts every member must agree on.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::model::*;
use super::reader::format_duration_ms;

/// A TOML string literal (quoted and escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn dur(ms: u64) -> String {
    q(&format_duration_ms(ms))
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

fn inline_map(m: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), q(v)))
        .collect();
    format!("{{ {} }}", body.join(", "))
}

/// A bare key when TOML allows it, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        q(k)
    }
}

fn threshold(t: Option<u32>) -> String {
    t.map_or_else(|| q("INFINITY"), |n| n.to_string())
}

fn meta(out: &mut String, m: &Meta) {
    if m.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if let Some(s) = m.resource_stickiness {
        parts.push(format!("resource_stickiness = {}", score(s)));
    }
    if let Some(t) = m.migration_threshold {
        parts.push(format!("migration_threshold = {}", threshold(t)));
    }
    if let Some(ms) = m.failure_timeout_ms {
        parts.push(format!("failure_timeout = {}", dur(ms)));
    }
    if let Some(r) = m.target_role {
        parts.push(format!("target_role = {}", q(r.as_str())));
    }
    if let Some(p) = m.priority {
        parts.push(format!("priority = {p}"));
    }
    let _ = writeln!(out, "meta = {{ {} }}", parts.join(", "));
}

fn score(s: super::score::Score) -> String {
    if s.is_infinite() {
        q(&s.to_string())
    } else {
        s.to_string()
    }
}

fn cluster_section(out: &mut String, c: &ClusterSection) {
    let _ = writeln!(out, "[cluster]");
    let _ = writeln!(out, "name = {}", q(&c.name));
    let policy = match c.no_quorum_policy {
        NoQuorumPolicy::Stop => "stop",
        NoQuorumPolicy::Freeze => "freeze",
        NoQuorumPolicy::Ignore => "ignore",
    };
    let _ = writeln!(out, "no_quorum_policy = {}", q(policy));
    if c.fencing_disabled {
        let _ = writeln!(out, "fencing_disabled_i_understand_split_brain = true");
    }
    let d = &c.resource_defaults;
    let _ = writeln!(out, "\n[cluster.resource_defaults]");
    let _ = writeln!(
        out,
        "resource_stickiness = {}",
        score(d.resource_stickiness)
    );
    let _ = writeln!(
        out,
        "migration_threshold = {}",
        threshold(d.migration_threshold)
    );
    let _ = writeln!(out, "failure_timeout = {}", dur(d.failure_timeout_ms));
    let _ = writeln!(out, "\n[cluster.op_defaults]");
    let _ = writeln!(out, "timeout = {}", dur(c.op_defaults.timeout_ms));
    let _ = writeln!(
        out,
        "monitor_interval = {}",
        dur(c.op_defaults.monitor_interval_ms)
    );
}

/// `with_local` includes settings that are this node's own business (the
/// key's path), left out of the digest.
fn totem_section(out: &mut String, t: &TotemSection, with_local: bool) {
    let _ = writeln!(out, "[totem]");
    let transport = match t.transport {
        Transport::Udp => "udp",
        Transport::Udpu => "udpu",
    };
    let _ = writeln!(out, "transport = {}", q(transport));
    if with_local {
        let _ = writeln!(out, "authkey = {}", q(&t.authkey.display().to_string()));
    }
    if t.insecure_no_crypto {
        let _ = writeln!(
            out,
            "insecure_no_crypto_i_understand_anyone_can_join = true"
        );
    }
    let m = &t.timers;
    for (k, v) in [
        ("token", m.token_ms),
        ("token_coefficient", m.token_coefficient_ms),
        (
            "token_retransmits_before_loss_const",
            u64::from(m.token_retransmits_before_loss_const),
        ),
        ("consensus", m.consensus_ms),
        ("join", m.join_ms),
        ("merge", m.merge_ms),
        ("downcheck", m.downcheck_ms),
        ("fail_recv_const", u64::from(m.fail_recv_const)),
        ("seqno_unchanged_const", u64::from(m.seqno_unchanged_const)),
        ("hold", m.hold_ms),
        ("send_join", m.send_join_ms),
        ("max_messages", u64::from(m.max_messages)),
        ("window_size", u64::from(m.window_size)),
    ] {
        let _ = writeln!(out, "{k} = {v}");
    }
    for l in &t.links {
        let _ = writeln!(out, "\n[[totem.link]]");
        if let Some(n) = l.network {
            let _ = writeln!(out, "network = {}", q(&n.to_string()));
        }
        if let Some(m) = l.mcast_addr {
            let _ = writeln!(out, "mcast_addr = {}", q(&m.to_string()));
        }
        let _ = writeln!(out, "port = {}", l.port);
        let _ = writeln!(out, "ttl = {}", l.ttl);
    }
}

fn quorum_section(out: &mut String, qs: &QuorumSection) {
    let _ = writeln!(out, "[quorum]");
    if let Some(e) = qs.expected_votes {
        let _ = writeln!(out, "expected_votes = {e}");
    }
    let _ = writeln!(out, "two_node = {}", qs.two_node);
    let _ = writeln!(out, "wait_for_all = {}", qs.wait_for_all);
    let _ = writeln!(out, "last_man_standing = {}", qs.last_man_standing);
    let _ = writeln!(
        out,
        "last_man_standing_window = {}",
        qs.last_man_standing_window_ms
    );
    let _ = writeln!(out, "auto_tie_breaker = {}", qs.auto_tie_breaker);
    // Only meaningful (and only accepted without a warning) with the
    // tie-breaker on.
    if qs.auto_tie_breaker {
        let tb = match &qs.auto_tie_breaker_node {
            TieBreaker::Lowest => q("lowest"),
            TieBreaker::Highest => q("highest"),
            TieBreaker::List(ids) => list(ids.iter().map(u32::to_string)),
        };
        let _ = writeln!(out, "auto_tie_breaker_node = {tb}");
    }
}

fn node_section(out: &mut String, n: &Node, with_fencing: bool) {
    let _ = writeln!(out, "[[node]]");
    let _ = writeln!(out, "name = {}", q(&n.name));
    let _ = writeln!(out, "id = {}", n.id);
    let _ = writeln!(
        out,
        "addresses = {}",
        list(n.addresses.iter().map(|a| q(&a.to_string())))
    );
    let _ = writeln!(out, "votes = {}", n.votes);
    if with_fencing && !n.fence_levels.is_empty() {
        let levels = list(n.fence_levels.iter().map(|l| list(l.iter().map(|d| q(d)))));
        let _ = writeln!(out, "fence_levels = {levels}");
    }
}

/// Comment written instead of an inline secret when secrets are hidden.
const HIDDEN: &str = "(hidden: `hactl config show --show-secrets` prints it)";

fn secret(out: &mut String, s: &Secret, redact: bool) {
    let _ = match s {
        Secret::File(p) => writeln!(out, "password_file = {}", q(&p.display().to_string())),
        Secret::Inline(_) if redact => writeln!(out, "# password = {HIDDEN}"),
        Secret::Inline(p) => writeln!(out, "password = {}", q(p)),
    };
}

fn fence_section(out: &mut String, f: &FenceDevice, redact: bool) {
    let _ = writeln!(out, "[[fence_device]]");
    let _ = writeln!(out, "id = {}", q(&f.id));
    let _ = writeln!(out, "kind = {}", q(f.kind.name()));
    let _ = writeln!(out, "timeout = {}", dur(f.timeout_ms));
    let _ = writeln!(out, "delay = {}", dur(f.delay_ms));
    match &f.kind {
        FenceKind::Ipmi {
            host,
            port,
            username,
            password,
            cipher_suite,
            privilege,
        } => {
            let _ = writeln!(out, "host = {}", q(host));
            let _ = writeln!(out, "port = {port}");
            let _ = writeln!(out, "username = {}", q(username));
            secret(out, password, redact);
            let _ = writeln!(out, "cipher_suite = {cipher_suite}");
            let p = match privilege {
                IpmiPrivilege::Operator => "operator",
                IpmiPrivilege::Administrator => "administrator",
            };
            let _ = writeln!(out, "privilege = {}", q(p));
        }
        FenceKind::Libvirt { uri, domain } => {
            let _ = writeln!(out, "uri = {}", q(uri));
            let _ = writeln!(out, "domain = {}", q(domain));
        }
        FenceKind::Agent {
            agent,
            params,
            password,
        } => {
            let _ = writeln!(out, "agent = {}", q(agent));
            if let Some(p) = password {
                secret(out, p, redact);
            }
            let mut params = params.clone();
            for key in ["password", "passwd"] {
                if redact && params.remove(key).is_some() {
                    let _ = writeln!(out, "# params.{key} = {HIDDEN}");
                }
            }
            if !params.is_empty() {
                let _ = writeln!(out, "params = {}", inline_map(&params));
            }
        }
        FenceKind::Watchdog { device, timeout_s } => {
            let _ = writeln!(out, "device = {}", q(&device.display().to_string()));
            let _ = writeln!(out, "watchdog_timeout = {timeout_s}");
        }
    }
}

fn resource_section(out: &mut String, r: &Resource) {
    let _ = writeln!(out, "[[resource]]");
    let _ = writeln!(out, "id = {}", q(&r.id));
    let _ = writeln!(out, "agent = {}", q(&r.agent.to_string()));
    if !r.params.is_empty() {
        let _ = writeln!(out, "params = {}", inline_map(&r.params));
    }
    meta(out, &r.meta);
    for o in &r.ops {
        let _ = writeln!(out, "[[resource.op]]");
        let _ = writeln!(out, "name = {}", q(o.name.as_str()));
        if o.interval_ms != 0 {
            let _ = writeln!(out, "interval = {}", dur(o.interval_ms));
        }
        let _ = writeln!(out, "timeout = {}", dur(o.timeout_ms));
        let _ = writeln!(out, "on_fail = {}", q(o.on_fail.as_str()));
        if let Some(role) = o.role {
            let _ = writeln!(out, "role = {}", q(role.as_str()));
        }
    }
}

/// The whole configuration in canonical form.
pub fn canonical(c: &Config) -> String {
    render(c, false)
}

/// The canonical form with inline passwords left out (as comments), for
/// printing where others may see it.
pub fn canonical_redacted(c: &Config) -> String {
    render(c, true)
}

fn render(c: &Config, redact: bool) -> String {
    let mut out = String::new();
    cluster_section(&mut out, &c.cluster);
    out.push('\n');
    totem_section(&mut out, &c.totem, true);
    out.push('\n');
    quorum_section(&mut out, &c.quorum);
    for n in &c.nodes {
        out.push('\n');
        node_section(&mut out, n, true);
    }
    for f in &c.fence_devices {
        out.push('\n');
        fence_section(&mut out, f, redact);
    }
    for r in &c.resources {
        out.push('\n');
        resource_section(&mut out, r);
    }
    for g in &c.groups {
        let _ = writeln!(
            out,
            "\n[[group]]\nid = {}\nmembers = {}",
            q(&g.id),
            list(g.members.iter().map(|m| q(m)))
        );
        meta(&mut out, &g.meta);
    }
    for x in &c.clones {
        let _ = writeln!(
            out,
            "\n[[clone]]\nid = {}\nresource = {}",
            q(&x.id),
            q(&x.resource)
        );
        if let Some(m) = x.clone_max {
            let _ = writeln!(out, "clone_max = {m}");
        }
        let _ = writeln!(
            out,
            "clone_node_max = {}\npromotable = {}",
            x.clone_node_max, x.promotable
        );
        if x.promotable {
            let _ = writeln!(
                out,
                "promoted_max = {}\npromoted_node_max = {}",
                x.promoted_max, x.promoted_node_max
            );
        }
        meta(&mut out, &x.meta);
    }
    for l in &c.locations {
        let _ = writeln!(
            out,
            "\n[[location]]\nid = {}\nresource = {}\nnode = {}\nscore = {}",
            q(&l.id),
            q(&l.resource),
            q(&l.node),
            score(l.score)
        );
    }
    for col in &c.colocations {
        let _ = writeln!(
            out,
            "\n[[colocation]]\nid = {}\nresource = {}\nwith = {}\nscore = {}",
            q(&col.id),
            q(&col.resource),
            q(&col.with),
            score(col.score)
        );
        if let Some(r) = col.resource_role {
            let _ = writeln!(out, "resource_role = {}", q(r.as_str()));
        }
        if let Some(r) = col.with_role {
            let _ = writeln!(out, "with_role = {}", q(r.as_str()));
        }
    }
    for o in &c.orders {
        let _ = writeln!(
            out,
            "\n[[order]]\nid = {}\nfirst = {}\nthen = {}\nkind = {}\nsymmetrical = {}\nfirst_action = {}\nthen_action = {}",
            q(&o.id),
            q(&o.first),
            q(&o.then),
            q(o.kind.as_str()),
            o.symmetrical,
            q(o.first_action.as_str()),
            q(o.then_action.as_str())
        );
    }
    out
}

/// The canonical text of what every member must agree on to form a ring:
/// the cluster's name, totem (transport, links, crypto on or off, timers),
/// quorum, and each node's name, id, addresses and votes. Resources,
/// fencing and the local key path are not part of it: they may differ
/// during a rolling change and travel through the replicated state.
pub fn membership_canonical(c: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[cluster]\nname = {}\n", q(&c.cluster.name));
    totem_section(&mut out, &c.totem, false);
    out.push('\n');
    quorum_section(&mut out, &c.quorum);
    let mut nodes: Vec<&Node> = c.nodes.iter().collect();
    nodes.sort_by_key(|n| n.id);
    for n in nodes {
        out.push('\n');
        node_section(&mut out, n, false);
    }
    out
}

/// SHA-256 of [`membership_canonical`], as 64 hex digits.
pub fn membership_digest(c: &Config) -> String {
    hex::encode(Sha256::digest(membership_canonical(c).as_bytes()))
}
