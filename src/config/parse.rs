//! Reads the spanned TOML tree into the typed model, filling in defaults.
//! Problems with single values are reported here; problems that involve
//! several entries (references, duplicates, cycles) are in `validate`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::DeValue;

use super::diag::Sink;
use super::model::*;
use super::reader::{Spans, Table, integer_of, match_choice, type_name};
use super::score::Score;

/// Totem defaults, chosen for fast failure detection on a LAN (corosync
/// 3.1's are in brackets); measured in docs/totem.md ("Choosing the
/// defaults"). A crash is noticed after token + consensus (350 ms); an idle
/// ring costs one token rotation per hold (45 ms).
pub const TOKEN_MS_DEFAULT: u64 = 250; // [3000]
pub const TOKEN_COEFFICIENT_MS_DEFAULT: u64 = 0; // [650]
/// Two re-sends of a lost token before it counts as lost (corosync: four):
/// the retransmit interval, token / 2.2 = 113 ms, bounds the hold, and with
/// it the idle cost; the simulator's lossy network shows no false
/// membership change at 5 % loss with it (examples/totem_timers.rs).
pub const TOKEN_RETRANSMITS_BEFORE_LOSS_DEFAULT: u32 = 2; // [4]
/// consensus without a value: a third of the effective token, at least
/// this many join intervals (two rounds of join messages).
pub const CONSENSUS_JOIN_ROUNDS_MIN: u64 = 2; // [1.2 × token]
pub const JOIN_MS_DEFAULT: u64 = 50; // [50]
pub const MERGE_MS_DEFAULT: u64 = 200; // [200]
pub const DOWNCHECK_MS_DEFAULT: u64 = 1000; // [1000]
pub const FAIL_RECV_CONST_DEFAULT: u32 = 2500; // [2500]
pub const SEQNO_UNCHANGED_CONST_DEFAULT: u32 = 30; // [30]
/// Token hold of an idle ring (corosync derives it: 0.8 × token_retransmit
/// − 10 ms, 561 ms with its defaults): the most the default token allows
/// (40 % of its 113 ms retransmit interval). Measured in docs/totem.md: idle
/// CPU falls with 1/hold, and a hold cancel makes the latency independent
/// of it.
pub const HOLD_MS_DEFAULT: u64 = 45; // [derived]
pub const MAX_MESSAGES_DEFAULT: u32 = 17; // [17]
pub const WINDOW_SIZE_DEFAULT: u32 = 50; // [50]
pub const TOTEM_PORT_DEFAULT: u16 = 5405;
/// Totem timers below this are refused: they would fire on scheduling
/// noise alone.
pub const TOTEM_TIMER_MS_MIN: u64 = 10;
pub const TOTEM_TIMER_MS_MAX: u64 = 600_000;
pub const LAST_MAN_STANDING_WINDOW_MS_DEFAULT: u64 = 10_000;
pub const OP_TIMEOUT_MS_DEFAULT: u64 = 20_000;
pub const MONITOR_INTERVAL_MS_DEFAULT: u64 = 10_000;
pub const FENCE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
pub const IPMI_PORT_DEFAULT: u16 = 623;
pub const IPMI_USERNAME_BYTES_MAX: usize = 16;
pub const IPMI_PASSWORD_BYTES_MAX: usize = 20;
pub const WATCHDOG_TIMEOUT_S_DEFAULT: u32 = 10;
pub const WATCHDOG_DEVICE_DEFAULT: &str = "/dev/watchdog";
/// Longest id or name accepted, so messages and logs stay readable.
pub const ID_LEN_MAX: usize = 64;
/// Constraint ids may be longer: a derived one holds two other ids.
pub const CONSTRAINT_ID_LEN_MAX: usize = 160;

const HINT_ID: &str =
    "ids start with a letter or '_' and contain letters, digits, '-', '_', '.' (at most 64)";

/// Checks a Pacemaker-style id (an XML name, which is what a CIB would need).
pub(crate) fn valid_id(s: &str) -> bool {
    valid_id_of_len(s, ID_LEN_MAX)
}

fn valid_id_of_len(s: &str, len_max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= len_max
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Reads an id-valued key, checking its spelling.
fn read_id(
    t: &mut Table,
    sink: &mut Sink,
    spans: &mut Spans,
    key: &'static str,
    what: &str,
) -> Option<String> {
    let s = t.req_string(
        sink,
        spans,
        key,
        &format!("every {what} needs {key} = \"...\""),
    )?;
    let len_max = if what == "constraint" {
        CONSTRAINT_ID_LEN_MAX
    } else {
        ID_LEN_MAX
    };
    if !valid_id_of_len(s.get_ref(), len_max) {
        sink.error(
            &s.span(),
            &t.key_path(key),
            format!("\"{}\" is not a valid id", s.get_ref()),
            HINT_ID.replace("64", &len_max.to_string()),
        );
        return None;
    }
    Some(s.into_inner())
}

/// Reads a key that names another object (checked for existence later).
fn read_ref(
    t: &mut Table,
    sink: &mut Sink,
    spans: &mut Spans,
    key: &'static str,
    what: &str,
) -> Option<String> {
    t.req_string(
        sink,
        spans,
        key,
        &format!("name the {what} with {key} = \"...\""),
    )
    .map(Spanned::into_inner)
}

pub(crate) fn parse_document(
    root: &toml::de::DeTable<'_>,
    sink: &mut Sink,
    spans: &mut Spans,
) -> (Config, Paths) {
    let mut top = Table::new(root, 0..0, String::new(), spans);

    let cluster_t = top.table(sink, spans, "cluster");
    let totem_t = top.table(sink, spans, "totem");
    let quorum_t = top.table(sink, spans, "quorum");
    let node_ts = top.tables(sink, spans, "node");
    let fence_ts = top.tables(sink, spans, "fence_device");
    let resource_ts = top.tables(sink, spans, "resource");
    let group_ts = top.tables(sink, spans, "group");
    let clone_ts = top.tables(sink, spans, "clone");
    let location_ts = top.tables(sink, spans, "location");
    let colocation_ts = top.tables(sink, spans, "colocation");
    let order_ts = top.tables(sink, spans, "order");
    top.finish(sink);

    let mut broken = HashSet::new();
    let mut derived_ids = HashSet::new();
    // Count declared devices, not parsed ones: one broken device must not
    // add "no fence device" errors elsewhere.
    let has_fencing = !fence_ts.is_empty();
    let (fence_paths, fence_devices) = located(fence_ts, "id", &mut broken, |t| {
        parse_fence_device(t, sink, spans)
    });
    // A [cluster] that is not a table was reported as such: not "missing".
    let cluster = parse_cluster(cluster_t, root_has(root, "cluster"), sink, spans);
    let mut totem = parse_totem(totem_t, sink, spans);
    let quorum = parse_quorum(quorum_t, sink, spans);
    let declared_nodes = node_ts.len();
    let mut broken_node_names = HashSet::new();
    let (node_paths, nodes) = located(node_ts, "name", &mut broken_node_names, |t| {
        parse_node(t, sink, spans)
    });
    let broken_nodes = declared_nodes - nodes.len();
    derive_mcast_addrs(&mut totem, &nodes, &cluster.name);
    settle_consensus(&mut totem, declared_nodes, sink, spans);
    check_hold(&totem, declared_nodes, sink, spans);
    let op_defaults = cluster.op_defaults.clone();
    let (resource_paths, resources) = located(resource_ts, "id", &mut broken, |t| {
        parse_resource(t, &op_defaults, has_fencing, sink, spans)
    });
    let (group_paths, groups) =
        located(group_ts, "id", &mut broken, |t| parse_group(t, sink, spans));
    let (clone_paths, clones) =
        located(clone_ts, "id", &mut broken, |t| parse_clone(t, sink, spans));
    let mut note_derived = |t: &Table| {
        if !t.has("id") {
            derived_ids.insert(t.path.clone());
        }
    };
    let (location_paths, mut locations) = located(location_ts, "id", &mut broken, |t| {
        note_derived(&t);
        parse_location(t, sink, spans)
    });
    let (colocation_paths, mut colocations) = located(colocation_ts, "id", &mut broken, |t| {
        note_derived(&t);
        parse_colocation(t, sink, spans)
    });
    let (order_paths, mut orders) = located(order_ts, "id", &mut broken, |t| {
        note_derived(&t);
        parse_order(t, sink, spans)
    });
    // Two constraints of the same kind between the same resources get the
    // same derived id: number the later ones.
    let mut taken: HashSet<String> = HashSet::new();
    let ids = locations
        .iter_mut()
        .map(|l| &mut l.id)
        .zip(&location_paths)
        .chain(
            colocations
                .iter_mut()
                .map(|l| &mut l.id)
                .zip(&colocation_paths),
        )
        .chain(orders.iter_mut().map(|l| &mut l.id).zip(&order_paths));
    for (id, path) in ids {
        if derived_ids.contains(path) {
            let base = id.clone();
            let mut n = 2;
            while taken.contains(id.as_str()) {
                *id = format!("{base}-{n}");
                n += 1;
            }
        }
        taken.insert(id.clone());
    }
    let paths = Paths {
        broken,
        broken_nodes,
        broken_node_names,
        derived_ids,
        nodes: node_paths,
        fence_devices: fence_paths,
        resources: resource_paths,
        groups: group_paths,
        clones: clone_paths,
        locations: location_paths,
        colocations: colocation_paths,
        orders: order_paths,
    };

    let config = Config {
        cluster,
        totem,
        quorum,
        nodes,
        fence_devices,
        resources,
        groups,
        clones,
        locations,
        colocations,
        orders,
    };
    (config, paths)
}

/// The key path (`resource[3]`) of every parsed entry, index for index with
/// the model's lists (entries that failed to parse are not in either).
#[derive(Default)]
pub(crate) struct Paths {
    /// Ids and node names of entries that failed to parse: their errors are
    /// reported already, so references to them are not errors on top.
    pub(crate) broken: HashSet<String>,
    /// Nodes that failed to parse, still counted where the number matters.
    pub(crate) broken_nodes: usize,
    /// Names of the nodes that failed to parse.
    pub(crate) broken_node_names: HashSet<String>,
    /// Paths of constraints whose id was derived, not written.
    pub(crate) derived_ids: HashSet<String>,
    pub(crate) nodes: Vec<String>,
    pub(crate) fence_devices: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) clones: Vec<String>,
    pub(crate) locations: Vec<String>,
    pub(crate) colocations: Vec<String>,
    pub(crate) orders: Vec<String>,
}

/// Parses each table, pairing every result with its path; the `name_key`
/// (id or name) of an entry that fails goes into `broken`.
fn located<'a, 'i, T>(
    tables: Vec<Table<'a, 'i>>,
    name_key: &str,
    broken: &mut HashSet<String>,
    mut parse: impl FnMut(Table<'a, 'i>) -> Option<T>,
) -> (Vec<String>, Vec<T>) {
    tables
        .into_iter()
        .filter_map(|t| {
            let path = t.path.clone();
            let name = t.peek_str(name_key);
            let parsed = parse(t);
            if parsed.is_none()
                && let Some(n) = name
            {
                broken.insert(n);
            }
            parsed.map(|v| (path, v))
        })
        .unzip()
}

// ---------------------------------------------------------------- [cluster]

fn root_has(root: &toml::de::DeTable<'_>, key: &str) -> bool {
    root.iter().any(|(k, _)| k.get_ref() == key)
}

fn parse_cluster(
    t: Option<Table>,
    present: bool,
    sink: &mut Sink,
    spans: &mut Spans,
) -> ClusterSection {
    let mut section = ClusterSection {
        name: String::new(),
        no_quorum_policy: NoQuorumPolicy::Stop,
        fencing_disabled: false,
        resource_defaults: ResourceDefaults {
            resource_stickiness: Score::ZERO,
            migration_threshold: None,
            failure_timeout_ms: 0,
        },
        op_defaults: OpDefaults {
            timeout_ms: OP_TIMEOUT_MS_DEFAULT,
            monitor_interval_ms: MONITOR_INTERVAL_MS_DEFAULT,
        },
    };
    let Some(mut t) = t else {
        if !present {
            sink.error(
                &(0..0),
                "cluster",
                "missing section [cluster]",
                "add [cluster] with name = \"...\" at the top of the file",
            );
        }
        return section;
    };
    if let Some(name) = t.req_string(
        sink,
        spans,
        "name",
        "give the cluster a name: name = \"web\"",
    ) {
        if valid_id(name.get_ref()) {
            section.name = name.into_inner();
        } else {
            sink.error(
                &name.span(),
                "cluster.name",
                format!("\"{}\" is not a valid cluster name", name.get_ref()),
                HINT_ID,
            );
        }
    }
    if let Some(p) = t.choice(
        sink,
        spans,
        "no_quorum_policy",
        &[
            ("stop", NoQuorumPolicy::Stop),
            ("freeze", NoQuorumPolicy::Freeze),
            ("ignore", NoQuorumPolicy::Ignore),
        ],
    ) {
        section.no_quorum_policy = p;
    }
    if let Some(b) = t.bool(sink, spans, "fencing_disabled_i_understand_split_brain") {
        section.fencing_disabled = b;
        if b {
            sink.warning(
                &spans.at("cluster.fencing_disabled_i_understand_split_brain"),
                "cluster.fencing_disabled_i_understand_split_brain",
                "fencing is OFF: a node that is cut off keeps running its resources while the others start them too",
                "for labs and tests only; remove this line and configure [[fence_device]] with fence_levels for every node",
            );
        }
    }
    if let Some(mut d) = t.table(sink, spans, "resource_defaults") {
        if let Some(s) = d.score(sink, spans, "resource_stickiness") {
            section.resource_defaults.resource_stickiness = s;
        }
        if let Some(m) = migration_threshold(&mut d, sink, spans) {
            section.resource_defaults.migration_threshold = m;
        }
        if let Some(ms) = d.duration_ms(sink, spans, "failure_timeout", 1_000) {
            section.resource_defaults.failure_timeout_ms = ms;
        }
        d.finish(sink);
    }
    if let Some(mut d) = t.table(sink, spans, "op_defaults") {
        if let Some(ms) = d.duration_ms(sink, spans, "timeout", 1_000) {
            if ms == 0 {
                sink.error(
                    &spans.at("cluster.op_defaults.timeout"),
                    "cluster.op_defaults.timeout",
                    "an operation timeout of 0 would fail every operation",
                    "use a positive duration such as \"20s\"",
                );
            } else {
                section.op_defaults.timeout_ms = ms;
            }
        }
        if let Some(ms) = d.duration_ms(sink, spans, "monitor_interval", 1_000) {
            section.op_defaults.monitor_interval_ms = ms;
        }
        d.finish(sink);
    }
    t.finish(sink);
    section
}

/// `migration_threshold`: a count, or INFINITY (never ban); 0 also means
/// never, as in Pacemaker. Returns Some(None) for "never".
fn migration_threshold(t: &mut Table, sink: &mut Sink, spans: &mut Spans) -> Option<Option<u32>> {
    let v = t.raw("migration_threshold", spans)?;
    let path = t.key_path("migration_threshold");
    let n = match v.get_ref() {
        DeValue::Integer(_) => integer_of(v.get_ref()),
        DeValue::String(s) => match Score::parse(s) {
            Some(s) if s == Score::INFINITY => return Some(None),
            Some(s) => Some(s.value()),
            None => None,
        },
        _ => None,
    };
    match n {
        Some(0) => Some(None),
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) && n < super::score::INFINITY => {
            Some(Some(n as u32))
        }
        Some(n) if n >= super::score::INFINITY => Some(None),
        _ => {
            sink.error(
                &v.span(),
                &path,
                "migration_threshold must be a positive count or \"INFINITY\"",
                "e.g. migration_threshold = 3 (ban from a node after 3 failures there)",
            );
            None
        }
    }
}

// ---------------------------------------------------------------- [totem]

fn parse_totem(t: Option<Table>, sink: &mut Sink, spans: &mut Spans) -> TotemSection {
    // Unicast by default: it works on every network, multicast needs
    // switches configured for it (IGMP snooping / querier).
    let mut s = TotemSection {
        transport: Transport::Udpu,
        links: Vec::new(),
        authkey: PathBuf::from(DEFAULT_AUTHKEY_PATH),
        insecure_no_crypto: false,
        timers: TotemTimers {
            token_ms: TOKEN_MS_DEFAULT,
            token_coefficient_ms: TOKEN_COEFFICIENT_MS_DEFAULT,
            token_retransmits_before_loss_const: TOKEN_RETRANSMITS_BEFORE_LOSS_DEFAULT,
            consensus_ms: 0,
            join_ms: JOIN_MS_DEFAULT,
            merge_ms: MERGE_MS_DEFAULT,
            downcheck_ms: DOWNCHECK_MS_DEFAULT,
            fail_recv_const: FAIL_RECV_CONST_DEFAULT,
            seqno_unchanged_const: SEQNO_UNCHANGED_CONST_DEFAULT,
            hold_ms: HOLD_MS_DEFAULT,
            send_join_ms: 0,
            max_messages: MAX_MESSAGES_DEFAULT,
            window_size: WINDOW_SIZE_DEFAULT,
        },
    };
    let mut consensus = None;
    let mut link_ts = Vec::new();
    if let Some(mut t) = t {
        if let Some(tr) = t.choice(
            sink,
            spans,
            "transport",
            &[("udp", Transport::Udp), ("udpu", Transport::Udpu)],
        ) {
            s.transport = tr;
        }
        if let Some(p) = t.string(sink, spans, "authkey") {
            if p.get_ref().starts_with('/') {
                s.authkey = PathBuf::from(p.into_inner());
            } else {
                sink.error(
                    &p.span(),
                    "totem.authkey",
                    "the authkey path must be absolute",
                    "e.g. authkey = \"/etc/hactl/authkey\"",
                );
            }
        }
        if let Some(b) = t.bool(
            sink,
            spans,
            "insecure_no_crypto_i_understand_anyone_can_join",
        ) {
            s.insecure_no_crypto = b;
            if b {
                sink.warning(&spans.at("totem.insecure_no_crypto_i_understand_anyone_can_join"), "totem.insecure_no_crypto_i_understand_anyone_can_join", "crypto is OFF: anyone on the network can read cluster traffic, join the cluster and trigger fencing", "remove this line and create a key with `hactl keygen`");
            }
        }
        let tm = &mut s.timers;
        let timer = |t: &mut Table,
                     sink: &mut Sink,
                     spans: &mut Spans,
                     key: &'static str,
                     slot: &mut u64,
                     min: u64| {
            if let Some(v) = t.duration_ms(sink, spans, key, 1) {
                if v < min || v > TOTEM_TIMER_MS_MAX {
                    let kp = t.key_path(key);
                    sink.error(
                        &spans.at(&kp),
                        &kp,
                        format!("{v} ms is out of range"),
                        format!("use a value from {min} to {TOTEM_TIMER_MS_MAX} milliseconds"),
                    );
                } else {
                    *slot = v;
                }
            }
        };
        timer(
            &mut t,
            sink,
            spans,
            "token",
            &mut tm.token_ms,
            TOTEM_TIMER_MS_MIN,
        );
        timer(
            &mut t,
            sink,
            spans,
            "token_coefficient",
            &mut tm.token_coefficient_ms,
            0,
        );
        timer(
            &mut t,
            sink,
            spans,
            "join",
            &mut tm.join_ms,
            TOTEM_TIMER_MS_MIN,
        );
        timer(
            &mut t,
            sink,
            spans,
            "merge",
            &mut tm.merge_ms,
            TOTEM_TIMER_MS_MIN,
        );
        timer(
            &mut t,
            sink,
            spans,
            "downcheck",
            &mut tm.downcheck_ms,
            TOTEM_TIMER_MS_MIN,
        );
        timer(&mut t, sink, spans, "send_join", &mut tm.send_join_ms, 0);
        timer(&mut t, sink, spans, "hold", &mut tm.hold_ms, 0);
        let mut c = 0;
        timer(&mut t, sink, spans, "consensus", &mut c, TOTEM_TIMER_MS_MIN);
        if t.has("consensus") && c > 0 {
            consensus = Some(c);
        }
        let count = |t: &mut Table,
                     sink: &mut Sink,
                     spans: &mut Spans,
                     key: &'static str,
                     slot: &mut u32,
                     max: i64| {
            if let Some(v) = t.int(sink, spans, key, 1, max) {
                *slot = v as u32;
            }
        };
        count(
            &mut t,
            sink,
            spans,
            "token_retransmits_before_loss_const",
            &mut tm.token_retransmits_before_loss_const,
            100,
        );
        count(
            &mut t,
            sink,
            spans,
            "fail_recv_const",
            &mut tm.fail_recv_const,
            1_000_000,
        );
        count(
            &mut t,
            sink,
            spans,
            "seqno_unchanged_const",
            &mut tm.seqno_unchanged_const,
            1_000_000,
        );
        count(
            &mut t,
            sink,
            spans,
            "max_messages",
            &mut tm.max_messages,
            10_000,
        );
        count(
            &mut t,
            sink,
            spans,
            "window_size",
            &mut tm.window_size,
            10_000,
        );
        if tm.max_messages > tm.window_size {
            sink.error(&spans.at("totem.max_messages"), "totem.max_messages", format!("max_messages ({}) is larger than window_size ({})", tm.max_messages, tm.window_size), "a node cannot send more per token visit than the whole ring per rotation: lower max_messages or raise window_size");
        }
        link_ts = t.tables(sink, spans, "link");
        t.finish(sink);
    }
    // consensus stays 0 ("not set") until the node count is known.
    s.timers.consensus_ms = consensus.unwrap_or(0);

    if link_ts.len() > LINKS_MAX {
        sink.error(
            &link_ts[LINKS_MAX].span,
            &link_ts[LINKS_MAX].path,
            format!(
                "{} links configured, at most {LINKS_MAX} are supported",
                link_ts.len()
            ),
            "remove the extra [[totem.link]] sections",
        );
    }
    if link_ts.is_empty() {
        s.links.push(Link {
            network: None,
            mcast_addr: None,
            port: TOTEM_PORT_DEFAULT,
            ttl: 1,
        });
    }
    for (i, mut lt) in link_ts.into_iter().enumerate() {
        let mut link = Link {
            network: None,
            mcast_addr: None,
            port: TOTEM_PORT_DEFAULT + i as u16,
            ttl: 1,
        };
        if let Some(n) = lt.string(sink, spans, "network") {
            match parse_ipnet(n.get_ref()) {
                Some(net) => link.network = Some(net),
                None => sink.error(
                    &n.span(),
                    &lt.key_path("network"),
                    format!("\"{}\" is not a network", n.get_ref()),
                    "write an address and prefix length, e.g. \"10.0.0.0/24\"",
                ),
            }
        }
        if let Some(a) = lt.string(sink, spans, "mcast_addr") {
            match a.get_ref().parse::<IpAddr>() {
                Ok(ip) if ip.is_multicast() => link.mcast_addr = Some(ip),
                Ok(_) => sink.error(&a.span(), &lt.key_path("mcast_addr"), format!("{} is not a multicast address", a.get_ref()), "use an address in 239.192.0.0/16 (IPv4, organisation-local) or ff15::/16 (IPv6)"),
                Err(_) => sink.error(&a.span(), &lt.key_path("mcast_addr"), format!("\"{}\" is not an IP address", a.get_ref()), "e.g. mcast_addr = \"239.192.7.1\""),
            }
            if s.transport == Transport::Udpu {
                link.mcast_addr = None;
                sink.warning(
                    &a.span(),
                    &lt.key_path("mcast_addr"),
                    "mcast_addr is ignored with transport = \"udpu\"",
                    "remove it, or set transport = \"udp\" to use multicast",
                );
            }
        }
        if let Some(p) = lt.int(sink, spans, "port", 1, 65535) {
            link.port = p as u16;
        }
        if let Some(ttl) = lt.int(sink, spans, "ttl", 0, 255) {
            link.ttl = ttl as u8;
        }
        lt.finish(sink);
        s.links.push(link);
    }
    s
}

/// The consensus timeout without a value: a third of the token in effect
/// for this many nodes, and at least two join intervals.
///
/// corosync uses 1.2 × token. A crash is noticed after token + consensus,
/// and a member that stops answering for that long is taken as failed, so
/// the two timeouts add up to both the detection time and the stall a node
/// may have without being dropped; only their split differs. The token
/// timeout already waits out a stall (and makes the token rotate, which is
/// what an idle ring costs), while consensus only has to let the live
/// members' join messages meet once the token is gone: every member still
/// in the ring enters gather as soon as it sees a join, and joins are sent
/// every `join`. So hactl spends the detection time on the token and gives
/// consensus two rounds of joins (docs/totem.md, "Choosing the defaults").
pub fn default_consensus_ms(token_ms: u64, join_ms: u64) -> u64 {
    (token_ms / 3).max(join_ms * CONSENSUS_JOIN_ROUNDS_MIN)
}

/// Fills in consensus ([`default_consensus_ms`]) and checks it against join.
fn settle_consensus(totem: &mut TotemSection, nodes: usize, sink: &mut Sink, spans: &Spans) {
    let t = &mut totem.timers;
    let explicit = t.consensus_ms != 0;
    let token_ms = t.effective_token_ms(nodes);
    if !explicit {
        t.consensus_ms = default_consensus_ms(token_ms, t.join_ms);
    }
    if t.consensus_ms < t.join_ms {
        sink.error(
            &spans.at("totem.consensus"),
            "totem.consensus",
            format!("consensus ({} ms) is shorter than join ({} ms)", t.consensus_ms, t.join_ms),
            "consensus must be at least join: raise consensus or lower join (without a value, consensus is a third of token and at least two joins)",
        );
    } else if explicit && t.consensus_ms < t.join_ms * CONSENSUS_JOIN_ROUNDS_MIN {
        sink.warning(
            &spans.at("totem.consensus"),
            "totem.consensus",
            format!(
                "consensus ({} ms) leaves time for less than {CONSENSUS_JOIN_ROUNDS_MIN} rounds of join messages ({} ms each)",
                t.consensus_ms, t.join_ms
            ),
            "one lost join can then drop a live member from the next membership; remove consensus to use the default",
        );
    }
}

/// Warns when an explicit `hold` is longer than the token retransmit
/// interval allows (the protocol then uses the maximum). A default hold
/// above it (a very short token) is clamped silently.
fn check_hold(totem: &TotemSection, nodes: usize, sink: &mut Sink, spans: &Spans) {
    let t = &totem.timers;
    let max = t.hold_max_ms(nodes);
    if t.hold_ms > max && spans.contains("totem.hold") {
        sink.warning(
            &spans.at("totem.hold"),
            "totem.hold",
            format!(
                "hold ({} ms) is more than {HOLD_MAX_PERCENT_OF_RETRANSMIT} % of the token retransmit interval ({} ms with {nodes} {}); {max} ms is used",
                t.hold_ms,
                t.token_retransmit_ms(nodes),
                if nodes == 1 { "node" } else { "nodes" }
            ),
            "a longer hold would make a held token look lost: lower hold, or raise token",
        );
    }
}

/// Gives every multicast link without a group one derived from the cluster
/// name, of the IP version its nodes use.
fn derive_mcast_addrs(totem: &mut TotemSection, nodes: &[Node], cluster_name: &str) {
    if totem.transport != Transport::Udp {
        return;
    }
    for (i, link) in totem.links.iter_mut().enumerate() {
        if link.mcast_addr.is_none() {
            let ipv6 = match link.network {
                Some(net) => net.addr.is_ipv6(),
                None => nodes
                    .iter()
                    .filter_map(|n| n.addresses.get(i))
                    .any(IpAddr::is_ipv6),
            };
            link.mcast_addr = Some(derived_mcast_addr(cluster_name, i, ipv6));
        }
    }
}

/// A multicast group derived from the cluster name, as corosync does, so
/// that two clusters on one LAN do not share a group by default.
pub(crate) fn derived_mcast_addr(cluster_name: &str, link: usize, ipv6: bool) -> IpAddr {
    let h = Sha256::digest(format!("{cluster_name}/{link}").as_bytes());
    if ipv6 {
        IpAddr::V6(std::net::Ipv6Addr::new(
            0xff15,
            0,
            0,
            0,
            0,
            0,
            u16::from(h[0]),
            u16::from_be_bytes([h[1], h[2]]),
        ))
    } else {
        // 239.192.0.0/16 is the organisation-local scope; avoid .0 and .255.
        IpAddr::V4(std::net::Ipv4Addr::new(239, 192, h[0], h[1].clamp(1, 254)))
    }
}

pub(crate) fn parse_ipnet(s: &str) -> Option<IpNet> {
    let (addr, len) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix_len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix_len <= max).then_some(IpNet { addr, prefix_len })
}

// ---------------------------------------------------------------- [quorum]

fn parse_quorum(t: Option<Table>, sink: &mut Sink, spans: &mut Spans) -> QuorumSection {
    let mut q = QuorumSection {
        expected_votes: None,
        two_node: false,
        wait_for_all: false,
        last_man_standing: false,
        last_man_standing_window_ms: LAST_MAN_STANDING_WINDOW_MS_DEFAULT,
        auto_tie_breaker: false,
        auto_tie_breaker_node: TieBreaker::Lowest,
    };
    let Some(mut t) = t else {
        return q;
    };
    q.expected_votes = t
        .int(sink, spans, "expected_votes", 1, 1024)
        .map(|v| v as u32);
    q.two_node = t.bool(sink, spans, "two_node").unwrap_or(false);
    // two_node implies wait_for_all unless it is explicitly turned off.
    q.wait_for_all = t.bool(sink, spans, "wait_for_all").unwrap_or(q.two_node);
    q.last_man_standing = t.bool(sink, spans, "last_man_standing").unwrap_or(false);
    if let Some(ms) = t.duration_ms(sink, spans, "last_man_standing_window", 1) {
        if (1..=TOTEM_TIMER_MS_MAX).contains(&ms) {
            q.last_man_standing_window_ms = ms;
        } else {
            let kp = "quorum.last_man_standing_window";
            sink.error(
                &spans.at(kp),
                kp,
                format!("{ms} ms is out of range"),
                format!("use a value from 1 to {TOTEM_TIMER_MS_MAX} milliseconds"),
            );
        }
    }
    q.auto_tie_breaker = t.bool(sink, spans, "auto_tie_breaker").unwrap_or(false);
    if let Some(v) = t.raw("auto_tie_breaker_node", spans) {
        let path = "quorum.auto_tie_breaker_node";
        let hint = "use \"lowest\", \"highest\", or a list of node ids in order of preference, e.g. [1, 3]";
        match v.get_ref() {
            DeValue::String(s) => {
                if let Some(tb) = match_choice(
                    sink,
                    path,
                    &Spanned::new(v.span(), s.to_string()),
                    &[("lowest", 0u8), ("highest", 1u8)],
                ) {
                    q.auto_tie_breaker_node = if tb == 0 {
                        TieBreaker::Lowest
                    } else {
                        TieBreaker::Highest
                    };
                }
            }
            DeValue::Array(items) => {
                let mut ids = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    spans.record(&format!("{path}[{i}]"), item.span());
                    match integer_of(item.get_ref()) {
                        Some(n)
                            if (i64::from(NODE_ID_MIN)..=i64::from(NODE_ID_MAX)).contains(&n) =>
                        {
                            ids.push(n as u32)
                        }
                        Some(n) => sink.error(
                            &item.span(),
                            &format!("{path}[{i}]"),
                            format!("{n} is not a node id"),
                            format!("node ids are {NODE_ID_MIN} to {NODE_ID_MAX}"),
                        ),
                        None => sink.error(
                            &item.span(),
                            &format!("{path}[{i}]"),
                            format!("expected a node id, found {}", type_name(item.get_ref())),
                            hint,
                        ),
                    }
                }
                if items.is_empty() {
                    sink.error(&v.span(), path, "the tie-breaker list is empty", hint);
                }
                q.auto_tie_breaker_node = TieBreaker::List(ids);
            }
            other => sink.error(
                &v.span(),
                path,
                format!(
                    "expected a string or a list of node ids, found {}",
                    type_name(other)
                ),
                hint,
            ),
        }
    }
    t.finish(sink);
    q
}

// ---------------------------------------------------------------- [[node]]

fn parse_node(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Node> {
    let name = t.req_string(
        sink,
        spans,
        "name",
        "give the node its host name: name = \"node1\"",
    );
    let name = name.and_then(|n| {
        if valid_hostname(n.get_ref()) {
            Some(n.into_inner())
        } else {
            sink.error(
                &n.span(),
                &t.key_path("name"),
                format!("\"{}\" is not a valid node name", n.get_ref()),
                "use the host name: letters, digits, '-' and '.', at most 64 characters",
            );
            None
        }
    });
    let id = if t.require(
        sink,
        "id",
        &format!("give every node a unique id from {NODE_ID_MIN} to {NODE_ID_MAX}: id = 1"),
    ) {
        t.int(
            sink,
            spans,
            "id",
            i64::from(NODE_ID_MIN),
            i64::from(NODE_ID_MAX),
        )
        .map(|n| n as u32)
    } else {
        None
    };
    let mut addresses = Vec::new();
    let single = t.string(sink, spans, "address");
    let many = t.strings(sink, spans, "addresses");
    let written: Vec<Spanned<String>> = match (single, many) {
        (Some(_), Some(_)) => {
            sink.error(
                &spans.at(&t.key_path("address")),
                &t.key_path("address"),
                "both `address` and `addresses` are set",
                "keep one: `addresses` lists one address per link",
            );
            Vec::new()
        }
        (Some(a), None) => vec![a],
        (None, Some(v)) => {
            if v.is_empty() {
                let kp = t.key_path("addresses");
                sink.error(
                    &spans.at(&kp),
                    &kp,
                    "the node has no address",
                    "list its address on each totem link: addresses = [\"10.0.0.1\"]",
                );
            }
            v
        }
        (None, None) => {
            // A present but malformed key was reported as such already.
            if !t.has("address") && !t.has("addresses") {
                t.missing(
                    sink,
                    "addresses",
                    "list the node's address on each totem link: addresses = [\"10.0.0.1\"]",
                );
            }
            Vec::new()
        }
    };
    let mut bad_address = false;
    for a in written {
        match a.get_ref().parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) => {
                bad_address = true;
                sink.error(
                    &a.span(),
                    &t.key_path("addresses"),
                    format!("\"{}\" is not an IP address", a.get_ref()),
                    "write the address itself, e.g. \"10.0.0.1\" (host names are not resolved)",
                )
            }
        }
    }
    let votes = t.int(sink, spans, "votes", 0, 255).map_or(1, |v| v as u32);
    let mut fence_levels = Vec::new();
    if let Some(v) = t.raw("fence_levels", spans) {
        let path = t.key_path("fence_levels");
        let hint = "fence_levels is a list of levels, each a list of fence device ids: fence_levels = [[\"ipmi-node1\"], [\"pdu-a\", \"pdu-b\"]]";
        match v.get_ref() {
            DeValue::Array(levels) => {
                for (i, level) in levels.iter().enumerate() {
                    let lpath = format!("{path}[{i}]");
                    spans.record(&lpath, level.span());
                    match level.get_ref() {
                        DeValue::Array(devs) => {
                            let mut ids = Vec::new();
                            for (j, d) in devs.iter().enumerate() {
                                spans.record(&format!("{lpath}[{j}]"), d.span());
                                match d.get_ref().as_str() {
                                    Some(s) => ids.push(s.to_string()),
                                    None => sink.error(
                                        &d.span(),
                                        &format!("{lpath}[{j}]"),
                                        format!(
                                            "expected a fence device id, found {}",
                                            type_name(d.get_ref())
                                        ),
                                        hint,
                                    ),
                                }
                            }
                            if devs.is_empty() {
                                sink.error(&level.span(), &lpath, "empty fencing level", hint);
                            }
                            fence_levels.push(ids);
                        }
                        other => sink.error(
                            &level.span(),
                            &lpath,
                            format!("expected a list of device ids, found {}", type_name(other)),
                            hint,
                        ),
                    }
                }
            }
            other => sink.error(
                &v.span(),
                &path,
                format!("expected a list of levels, found {}", type_name(other)),
                hint,
            ),
        }
    }
    t.finish(sink);
    if bad_address {
        // Checking the remaining addresses against the links would compare
        // them with the wrong link: leave the node out (it still counts).
        return None;
    }
    Some(Node {
        name: name?,
        // An invalid id was reported; 0 keeps the node for the other checks.
        id: id.unwrap_or(0),
        addresses,
        votes,
        fence_levels,
    })
}

/// Host names: letters, digits, '-', '.', not starting with '-' or '.'.
pub(crate) fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ID_LEN_MAX
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
}

// ---------------------------------------------------------------- [[fence_device]]

fn parse_secret(
    t: &mut Table,
    sink: &mut Sink,
    spans: &mut Spans,
    required: bool,
) -> Option<Secret> {
    let file = t.string(sink, spans, "password_file");
    let inline = t.string(sink, spans, "password");
    match (file, inline) {
        (Some(_), Some(p)) => {
            sink.error(
                &p.span(),
                &t.key_path("password"),
                "both password and password_file are set",
                "keep password_file and remove password",
            );
            None
        }
        (Some(f), None) => {
            if f.get_ref().starts_with('/') {
                Some(Secret::File(PathBuf::from(f.into_inner())))
            } else {
                sink.error(
                    &f.span(),
                    &t.key_path("password_file"),
                    "password_file must be an absolute path",
                    "e.g. password_file = \"/etc/hactl/ipmi-node1.pass\"",
                );
                None
            }
        }
        (None, Some(p)) => {
            sink.warning(
                &p.span(),
                &t.key_path("password"),
                "password given inline: anyone who can read this file can power off the node",
                "put it in a root-only file (mode 0600) and use password_file = \"/etc/hactl/...\"",
            );
            Some(Secret::Inline(p.into_inner()))
        }
        (None, None) => {
            if required {
                t.missing(sink, "password_file", "put the password in a root-only file and name it: password_file = \"/etc/hactl/ipmi-node1.pass\"");
            }
            None
        }
    }
}

fn parse_fence_device(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<FenceDevice> {
    let id = read_id(&mut t, sink, spans, "id", "fence device");
    let timeout_ms = match t.duration_ms(sink, spans, "timeout", 1_000) {
        Some(0) => {
            let kp = t.key_path("timeout");
            sink.error(
                &spans.at(&kp),
                &kp,
                "a fencing timeout of 0 would fail every fencing attempt",
                "use a positive duration such as \"60s\"",
            );
            FENCE_TIMEOUT_MS_DEFAULT
        }
        Some(ms) => ms,
        None => FENCE_TIMEOUT_MS_DEFAULT,
    };
    let delay_ms = t.duration_ms(sink, spans, "delay", 1_000).unwrap_or(0);
    let kind_s = t.req_string(
        sink,
        spans,
        "kind",
        "say what the device is: kind = \"ipmi\" (or \"libvirt\", \"agent\", \"watchdog\")",
    );
    let kind = kind_s.as_ref().and_then(|k| {
        match_choice(
            sink,
            &t.key_path("kind"),
            k,
            &[("ipmi", 0u8), ("libvirt", 1), ("agent", 2), ("watchdog", 3)],
        )
    });
    let kind = match kind {
        Some(0) => {
            let host = t.req_string(
                sink,
                spans,
                "host",
                "the BMC's address: host = \"10.0.0.201\"",
            );
            let port = t
                .int(sink, spans, "port", 1, 65535)
                .map_or(IPMI_PORT_DEFAULT, |p| p as u16);
            let username = t.req_string(
                sink,
                spans,
                "username",
                "the BMC user: username = \"admin\"",
            );
            let password = parse_secret(&mut t, sink, spans, true);
            let cipher_suite = match t.raw("cipher_suite", spans) {
                None => 17,
                Some(v) => match integer_of(v.get_ref()) {
                    Some(n @ (3 | 17)) => n as u8,
                    None => {
                        sink.error(
                            &v.span(),
                            &t.key_path("cipher_suite"),
                            format!("expected an integer, found {}", type_name(v.get_ref())),
                            "write cipher_suite = 17 or cipher_suite = 3, without quotes",
                        );
                        17
                    }
                    Some(_) => {
                        sink.error(&v.span(), &t.key_path("cipher_suite"), "only cipher suites 3 and 17 are supported", "use 17 (HMAC-SHA256, AES-128) or, for older BMCs, 3 (HMAC-SHA1, AES-128); suite 0 and the other weak suites are refused on purpose");
                        17
                    }
                },
            };
            let privilege = t
                .choice(
                    sink,
                    spans,
                    "privilege",
                    &[
                        ("operator", IpmiPrivilege::Operator),
                        ("administrator", IpmiPrivilege::Administrator),
                    ],
                )
                .unwrap_or(IpmiPrivilege::Operator);
            // IPMI 2.0 limits: user names 16 bytes, passwords 20 bytes.
            if let Some(u) = &username
                && u.get_ref().len() > IPMI_USERNAME_BYTES_MAX
            {
                sink.error(
                    &u.span(),
                    &t.key_path("username"),
                    format!(
                        "the user name is {} bytes; IPMI allows at most {IPMI_USERNAME_BYTES_MAX}",
                        u.get_ref().len()
                    ),
                    "use the BMC user's exact (short) name",
                );
            }
            if let Some(Secret::Inline(p)) = &password
                && p.len() > IPMI_PASSWORD_BYTES_MAX
            {
                let kp = t.key_path("password");
                sink.error(&spans.at(&kp), &kp, format!("the password is {} bytes; IPMI 2.0 allows at most {IPMI_PASSWORD_BYTES_MAX}", p.len()), "set a shorter password on the BMC");
            }
            FenceKind::Ipmi {
                host: host?.into_inner(),
                port,
                username: username?.into_inner(),
                password: password?,
                cipher_suite,
                privilege,
            }
        }
        Some(1) => {
            let uri = t.req_string(
                sink,
                spans,
                "uri",
                "the hypervisor's libvirt URI: uri = \"qemu+tcp://10.0.0.250/system\"",
            );
            let domain = t.req_string(
                sink,
                spans,
                "domain",
                "the VM's libvirt domain name or UUID: domain = \"node1\"",
            );
            // The device's own parser: what it would refuse at its first
            // use is refused here, at the key.
            let uri = uri.and_then(|u| match super::libvirt_uri::parse(u.get_ref()) {
                Ok(_) => Some(u.into_inner()),
                Err(e) => {
                    sink.error(
                        &u.span(),
                        &t.key_path("uri"),
                        format!("unsupported libvirt URI \"{}\": {}", u.get_ref(), e.message),
                        e.hint,
                    );
                    None
                }
            });
            FenceKind::Libvirt {
                uri: uri?,
                domain: domain?.into_inner(),
            }
        }
        Some(2) => {
            let agent = t.req_string(
                sink,
                spans,
                "agent",
                "the fence agent program: agent = \"fence_ipmilan\"",
            );
            let agent = agent.and_then(|a| {
                let base = a.get_ref().rsplit('/').next().unwrap_or("");
                if base.starts_with("fence_") && (a.get_ref().starts_with('/') || !a.get_ref().contains('/')) {
                    Some(a.into_inner())
                } else {
                    sink.error(&a.span(), &t.key_path("agent"), format!("\"{}\" is not a fence agent", a.get_ref()), "name a fence_* program on PATH, e.g. \"fence_ipmilan\", or give its absolute path");
                    None
                }
            });
            let params: BTreeMap<String, String> = t
                .string_map(sink, spans, "params")
                .into_iter()
                .map(|(k, v)| (k.into_inner(), v.into_inner()))
                .collect();
            for k in params.keys() {
                if matches!(k.as_str(), "password" | "passwd") {
                    let p = format!("{}.params.{k}", t.path);
                    sink.warning(&spans.at(&p), &p, "password given inline in params", "use password_file on the device instead; hactl passes the file's content to the agent");
                }
                if k == "action" {
                    let p = format!("{}.params.action", t.path);
                    sink.error(
                        &spans.at(&p),
                        &p,
                        "`action` is chosen by hactl for each operation",
                        "remove action from params",
                    );
                }
            }
            let password = parse_secret(&mut t, sink, spans, false);
            FenceKind::Agent {
                agent: agent?,
                params,
                password,
            }
        }
        Some(3) => {
            let device = match t.string(sink, spans, "device") {
                Some(d) if d.get_ref().starts_with("/dev/") => PathBuf::from(d.into_inner()),
                Some(d) => {
                    sink.error(
                        &d.span(),
                        &t.key_path("device"),
                        format!("\"{}\" is not a device path", d.get_ref()),
                        "e.g. device = \"/dev/watchdog\"",
                    );
                    PathBuf::from(WATCHDOG_DEVICE_DEFAULT)
                }
                None => PathBuf::from(WATCHDOG_DEVICE_DEFAULT),
            };
            let timeout_s = t
                .int(sink, spans, "watchdog_timeout", 1, 600)
                .map_or(WATCHDOG_TIMEOUT_S_DEFAULT, |v| v as u32);
            FenceKind::Watchdog { device, timeout_s }
        }
        _ => {
            // Unknown kind: do not report its keys as unknown on top.
            for k in [
                "host",
                "port",
                "username",
                "password",
                "password_file",
                "cipher_suite",
                "privilege",
                "uri",
                "domain",
                "agent",
                "params",
                "device",
                "watchdog_timeout",
            ] {
                t.allow(k);
            }
            t.finish(sink);
            return None;
        }
    };
    t.finish(sink);
    Some(FenceDevice {
        id: id?,
        kind,
        timeout_ms,
        delay_ms,
    })
}

// ---------------------------------------------------------------- [[resource]]

/// Parameters of the built-in agents: (name, required).
pub const IPADDR_PARAMS: &[(&str, bool)] = &[
    ("ip", true),
    ("cidr_netmask", false),
    ("nic", false),
    ("label", false),
    ("arp_count", false),
    ("arp_interval", false),
];
pub const FILESYSTEM_PARAMS: &[(&str, bool)] = &[
    ("device", true),
    ("directory", true),
    ("fstype", true),
    ("options", false),
    ("force_unmount", false),
    ("create_directory", false),
];

fn parse_agent(a: &Spanned<String>, path: &str, sink: &mut Sink) -> Option<Agent> {
    let s = a.get_ref().as_str();
    let hint = "use systemd:UNIT, ipaddr, filesystem, ocf:PROVIDER:TYPE or lsb:SCRIPT";
    let safe = |x: &str| {
        !x.is_empty()
            && !x.contains('/')
            && x != "."
            && x != ".."
            && !x.chars().any(char::is_whitespace)
    };
    let bad = |sink: &mut Sink, msg: String| {
        sink.error(&a.span(), path, msg, hint);
        None
    };
    match s.split_once(':') {
        None => match s {
            "ipaddr" => Some(Agent::IpAddr),
            "filesystem" => Some(Agent::Filesystem),
            _ => {
                let lower = s.to_ascii_lowercase();
                let extra = if lower.starts_with("ipaddr") {
                    " (did you mean \"ipaddr\"?)"
                } else if lower.starts_with("filesystem") {
                    " (did you mean \"filesystem\"?)"
                } else {
                    ""
                };
                bad(sink, format!("unknown agent \"{s}\"{extra}"))
            }
        },
        Some(("systemd", unit)) => {
            if safe(unit) && !unit.contains(':') {
                Some(Agent::Systemd {
                    unit: unit.to_string(),
                })
            } else {
                bad(sink, format!("\"{unit}\" is not a systemd unit name"))
            }
        }
        Some(("ocf", rest)) => match rest.split_once(':') {
            Some((provider, kind)) if safe(provider) && safe(kind) && !kind.contains(':') => {
                Some(Agent::Ocf {
                    provider: provider.to_string(),
                    kind: kind.to_string(),
                })
            }
            _ => bad(
                sink,
                format!(
                    "\"{s}\" is not an OCF agent: write ocf:PROVIDER:TYPE, e.g. ocf:heartbeat:IPaddr2"
                ),
            ),
        },
        Some(("lsb", script)) => {
            if safe(script) && !script.contains(':') {
                Some(Agent::Lsb {
                    script: script.to_string(),
                })
            } else {
                bad(sink, format!("\"{script}\" is not an init script name"))
            }
        }
        Some((class, _)) => bad(sink, format!("unknown agent class \"{class}\"")),
    }
}

fn parse_meta(t: &mut Table, sink: &mut Sink, spans: &mut Spans) -> Meta {
    let mut meta = Meta::default();
    let Some(mut m) = t.table(sink, spans, "meta") else {
        return meta;
    };
    meta.resource_stickiness = m.score(sink, spans, "resource_stickiness");
    meta.migration_threshold = migration_threshold(&mut m, sink, spans);
    meta.failure_timeout_ms = m.duration_ms(sink, spans, "failure_timeout", 1_000);
    meta.target_role = m.choice(sink, spans, "target_role", ROLES);
    meta.priority = m.int(
        sink,
        spans,
        "priority",
        -super::score::INFINITY,
        super::score::INFINITY,
    );
    m.finish(sink);
    meta
}

/// Role spellings; the pre-2.1 Pacemaker names are accepted too.
const ROLES: &[(&str, Role)] = &[
    ("stopped", Role::Stopped),
    ("started", Role::Started),
    ("unpromoted", Role::Unpromoted),
    ("promoted", Role::Promoted),
    ("slave", Role::Unpromoted),
    ("master", Role::Promoted),
];

const OP_NAMES: &[(&str, OpName)] = &[
    ("start", OpName::Start),
    ("stop", OpName::Stop),
    ("monitor", OpName::Monitor),
    ("promote", OpName::Promote),
    ("demote", OpName::Demote),
];

fn parse_resource(
    mut t: Table,
    op_defaults: &OpDefaults,
    has_fencing: bool,
    sink: &mut Sink,
    spans: &mut Spans,
) -> Option<Resource> {
    let id = read_id(&mut t, sink, spans, "id", "resource");
    let agent_s = t.req_string(sink, spans, "agent", "say what runs the resource: agent = \"systemd:nginx\" (or ipaddr, filesystem, ocf:PROVIDER:TYPE, lsb:SCRIPT)");
    let agent_path = t.key_path("agent");
    let agent = agent_s
        .as_ref()
        .and_then(|a| parse_agent(a, &agent_path, sink));
    let params_raw = t.string_map(sink, spans, "params");
    let meta = parse_meta(&mut t, sink, spans);
    let mut ops: Vec<Operation> = Vec::new();
    for mut o in t.tables(sink, spans, "op") {
        let name = if o.require(
            sink,
            "name",
            "name the operation: name = \"monitor\" (or start, stop, promote, demote)",
        ) {
            o.choice(sink, spans, "name", OP_NAMES)
        } else {
            None
        };
        let interval = o.duration_ms(sink, spans, "interval", 1_000);
        // An interval that failed to parse was reported; don't add "needs one".
        let interval_invalid = interval.is_none() && o.has("interval");
        let interval_ms = interval.unwrap_or(0);
        let timeout_ms = o
            .duration_ms(sink, spans, "timeout", 1_000)
            .unwrap_or(op_defaults.timeout_ms);
        if timeout_ms == 0 {
            sink.error(
                &spans.at(&o.key_path("timeout")),
                &o.key_path("timeout"),
                "an operation timeout of 0 would fail every operation",
                "use a positive duration such as \"20s\"",
            );
        }
        let on_fail = o.choice(
            sink,
            spans,
            "on_fail",
            &[
                ("ignore", OnFail::Ignore),
                ("block", OnFail::Block),
                ("stop", OnFail::Stop),
                ("restart", OnFail::Restart),
                ("fence", OnFail::Fence),
                ("standby", OnFail::Standby),
                ("demote", OnFail::Demote),
            ],
        );
        let role = o.choice(sink, spans, "role", ROLES);
        let (opath, ospan) = (o.path.clone(), o.span.clone());
        o.finish(sink);
        let Some(name) = name else { continue };
        if name == OpName::Monitor && interval_ms == 0 && !interval_invalid {
            sink.error(
                &ospan,
                &format!("{opath}.interval"),
                "a monitor needs an interval",
                "e.g. interval = \"10s\"",
            );
        }
        if name != OpName::Monitor && interval_ms != 0 {
            sink.error(
                &spans.at(&format!("{opath}.interval")),
                &format!("{opath}.interval"),
                format!("only monitors recur: {} takes no interval", name.as_str()),
                "remove interval",
            );
        }
        if on_fail == Some(OnFail::Fence) && !has_fencing {
            sink.error(
                &spans.at(&format!("{opath}.on_fail")),
                &format!("{opath}.on_fail"),
                "on_fail = \"fence\" but no [[fence_device]] is configured",
                "configure a fence device, or choose another on_fail",
            );
        }
        if ops
            .iter()
            .any(|p| p.name == name && p.interval_ms == interval_ms && p.role == role)
        {
            sink.error(
                &ospan,
                &opath,
                format!(
                    "duplicate {} operation with the same interval",
                    name.as_str()
                ),
                "remove one of them",
            );
        }
        ops.push(Operation {
            name,
            interval_ms,
            timeout_ms,
            on_fail: on_fail.unwrap_or_else(|| default_on_fail(name, has_fencing)),
            role,
        });
    }
    // Fill in the operations every resource has, so the model is complete.
    for (name, needed) in [
        (OpName::Start, true),
        (OpName::Stop, true),
        (OpName::Monitor, op_defaults.monitor_interval_ms > 0),
    ] {
        if needed && !ops.iter().any(|o| o.name == name) {
            ops.push(Operation {
                name,
                interval_ms: if name == OpName::Monitor {
                    op_defaults.monitor_interval_ms
                } else {
                    0
                },
                timeout_ms: op_defaults.timeout_ms,
                on_fail: default_on_fail(name, has_fencing),
                role: None,
            });
        }
    }
    ops.sort_by_key(|o| (o.name, o.role, o.interval_ms));
    let path = t.path.clone();
    t.finish(sink);

    let id = id?;
    let agent = agent?;
    let params: BTreeMap<String, String> = params_raw
        .iter()
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect();
    let builtin = match agent {
        Agent::IpAddr => Some(("ipaddr", IPADDR_PARAMS)),
        Agent::Filesystem => Some(("filesystem", FILESYSTEM_PARAMS)),
        _ => None,
    };
    if let Some((agent_name, known)) = builtin {
        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
        for (k, _) in &params_raw {
            if !names.contains(&k.get_ref().as_str()) {
                let hint = match super::diag::closest(k.get_ref(), &names) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("{agent_name} takes: {}", names.join(", ")),
                };
                sink.error(
                    &k.span(),
                    &format!("{path}.params.{}", k.get_ref()),
                    format!("{agent_name} has no parameter `{}`", k.get_ref()),
                    hint,
                );
            }
        }
        for (name, required) in known {
            if *required && !params.contains_key(*name) {
                let example = match *name {
                    "ip" => "ip = \"10.0.0.100\"",
                    "device" => "device = \"nfs.example.com:/export/www\"",
                    "directory" => "directory = \"/srv/www\"",
                    _ => "fstype = \"nfs\"",
                };
                sink.error(
                    &spans.at(&format!("{path}.params")),
                    &format!("{path}.params.{name}"),
                    format!("{agent_name} needs the parameter `{name}`"),
                    format!("add it to params, e.g. {example}"),
                );
            }
        }
    }
    match agent {
        Agent::IpAddr => check_ipaddr_params(&params, &path, sink, spans),
        Agent::Filesystem => check_filesystem_params(&params, &path, sink, spans),
        Agent::Systemd { .. } if !params.is_empty() => {
            sink.error(
                &spans.at(&format!("{path}.params")),
                &format!("{path}.params"),
                "systemd resources take no params",
                "configure the unit itself (a drop-in under /etc/systemd/system/UNIT.d/)",
            );
        }
        Agent::Lsb { .. } if !params.is_empty() => {
            sink.error(
                &spans.at(&format!("{path}.params")),
                &format!("{path}.params"),
                "lsb resources take no params",
                "init scripts read their settings from their own files (often /etc/default/NAME)",
            );
        }
        _ => {}
    }
    Some(Resource {
        id,
        agent,
        params,
        ops,
        meta,
    })
}

fn default_on_fail(name: OpName, has_fencing: bool) -> OnFail {
    match name {
        // A stop that fails leaves the resource in an unknown state: only
        // fencing makes it safe to start elsewhere (Pacemaker's default).
        OpName::Stop if has_fencing => OnFail::Fence,
        OpName::Stop => OnFail::Block,
        _ => OnFail::Restart,
    }
}

fn check_ipaddr_params(p: &BTreeMap<String, String>, path: &str, sink: &mut Sink, spans: &Spans) {
    let mut err = |key: &str, msg: String, hint: &str| {
        let kp = format!("{path}.params.{key}");
        sink.error(&spans.at(&kp), &kp, msg, hint);
    };
    let ip = p.get("ip").map(|s| s.parse::<IpAddr>());
    if let Some(Err(_)) = ip {
        err(
            "ip",
            format!("\"{}\" is not an IP address", p["ip"]),
            "e.g. ip = \"10.0.0.100\"",
        );
    }
    if let Some(m) = p.get("cidr_netmask") {
        let max = if let Some(Ok(IpAddr::V6(_))) = ip {
            128
        } else {
            32
        };
        match m.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => {}
            _ => err(
                "cidr_netmask",
                format!("\"{m}\" is not a prefix length"),
                &format!("use a number from 1 to {max}, e.g. cidr_netmask = 24"),
            ),
        }
    }
    if let Some(c) = p.get("arp_count")
        && !matches!(c.parse::<u32>(), Ok(0..=100))
    {
        err(
            "arp_count",
            format!("\"{c}\" is not a count from 0 to 100"),
            "e.g. arp_count = 5",
        );
    }
    if let Some(c) = p.get("arp_interval")
        && !matches!(c.parse::<u32>(), Ok(1..=10_000))
    {
        err(
            "arp_interval",
            format!("\"{c}\" is not an interval in milliseconds"),
            "e.g. arp_interval = 200",
        );
    }
    if let Some(l) = p.get("label")
        && l.len() > 15
    {
        err(
            "label",
            format!("label \"{l}\" is longer than 15 characters"),
            "the kernel limits address labels to 15 characters, including the interface name",
        );
    }
}

fn check_filesystem_params(
    p: &BTreeMap<String, String>,
    path: &str,
    sink: &mut Sink,
    spans: &Spans,
) {
    let mut err = |key: &str, msg: String, hint: &str| {
        let kp = format!("{path}.params.{key}");
        sink.error(&spans.at(&kp), &kp, msg, hint);
    };
    if let Some(d) = p.get("directory")
        && (!d.starts_with('/') || d == "/")
    {
        err(
            "directory",
            if d == "/" {
                "the root filesystem cannot be a resource's mount point".to_string()
            } else {
                format!("\"{d}\" is not an absolute mount point")
            },
            "e.g. directory = \"/srv/www\"",
        );
    }
    for key in ["force_unmount", "create_directory"] {
        if let Some(v) = p.get(key)
            && !matches!(v.as_str(), "true" | "false")
        {
            err(
                key,
                format!("\"{v}\" is not a boolean"),
                &format!("write {key} = true or {key} = false"),
            );
        }
    }
    if let Some(d) = p.get("device")
        && d.is_empty()
    {
        err(
            "device",
            "the device is empty".to_string(),
            "a block device, LABEL=..., UUID=... or host:/export",
        );
    }
}

// ---------------------------------------------------------------- groups, clones

fn parse_group(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Group> {
    let id = read_id(&mut t, sink, spans, "id", "group");
    let members = if t.require(
        sink,
        "members",
        "list the resources in start order: members = [\"vip\", \"fs\", \"web\"]",
    ) {
        t.strings(sink, spans, "members")
    } else {
        None
    };
    if let Some(m) = &members
        && m.is_empty()
    {
        sink.error(
            &spans.at(&t.key_path("members")),
            &t.key_path("members"),
            "a group needs at least one member",
            "list the resources in start order: members = [\"vip\", \"fs\", \"web\"]",
        );
    }
    let meta = parse_meta(&mut t, sink, spans);
    t.finish(sink);
    Some(Group {
        id: id?,
        members: members?.into_iter().map(Spanned::into_inner).collect(),
        meta,
    })
}

fn parse_clone(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Clone> {
    let id = read_id(&mut t, sink, spans, "id", "clone");
    let resource = read_ref(
        &mut t,
        sink,
        spans,
        "resource",
        "primitive or group to clone",
    );
    let clone_max = t
        .int(sink, spans, "clone_max", 1, i64::from(NODE_ID_MAX) * 64)
        .map(|v| v as u32);
    let clone_node_max = t
        .int(sink, spans, "clone_node_max", 1, 64)
        .map_or(1, |v| v as u32);
    let promotable = t.bool(sink, spans, "promotable").unwrap_or(false);
    let promoted_max = t
        .int(sink, spans, "promoted_max", 0, i64::from(NODE_ID_MAX) * 64)
        .map(|v| v as u32);
    let promoted_node_max = t
        .int(sink, spans, "promoted_node_max", 1, 64)
        .map(|v| v as u32);
    if !promotable {
        for key in ["promoted_max", "promoted_node_max"] {
            if t.has(key) {
                let kp = t.key_path(key);
                sink.warning(
                    &spans.at(&kp),
                    &kp,
                    format!("{key} has no effect: the clone is not promotable"),
                    "set promotable = true, or remove it",
                );
            }
        }
    }
    let meta = parse_meta(&mut t, sink, spans);
    t.finish(sink);
    Some(Clone {
        id: id?,
        resource: resource?,
        clone_max,
        clone_node_max,
        promotable,
        promoted_max: promoted_max.unwrap_or(1),
        promoted_node_max: promoted_node_max.unwrap_or(1),
        meta,
    })
}

// ---------------------------------------------------------------- constraints

/// Constraint ids are optional; a missing one is derived from the contents.
fn constraint_id(
    t: &mut Table,
    sink: &mut Sink,
    spans: &mut Spans,
    derived: impl FnOnce() -> String,
) -> Option<String> {
    if t.has("id") {
        read_id(t, sink, spans, "id", "constraint")
    } else {
        t.allow("id");
        Some(derived())
    }
}

fn parse_location(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Location> {
    let resource = read_ref(&mut t, sink, spans, "resource", "resource");
    let node = read_ref(&mut t, sink, spans, "node", "node");
    let score = if t.require(sink, "score", "say how much the resource prefers the node: score = 100 (or \"INFINITY\", or \"-INFINITY\" to forbid it)") {
        t.score(sink, spans, "score")
    } else {
        None
    };
    let id = constraint_id(&mut t, sink, spans, || {
        format!(
            "location-{}-{}",
            resource.as_deref().unwrap_or("?"),
            node.as_deref().unwrap_or("?")
        )
    });
    t.finish(sink);
    Some(Location {
        id: id?,
        resource: resource?,
        node: node?,
        // An invalid score was reported; keep the entry so that its
        // references are still checked.
        score: score.unwrap_or_default(),
    })
}

fn parse_colocation(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Colocation> {
    let resource = read_ref(&mut t, sink, spans, "resource", "resource to place");
    let with = read_ref(&mut t, sink, spans, "with", "resource to place it with");
    let score = if t.require(
        sink,
        "score",
        "score = \"INFINITY\" keeps them together, \"-INFINITY\" apart",
    ) {
        t.score(sink, spans, "score")
    } else {
        None
    };
    let resource_role = t.choice(sink, spans, "resource_role", ROLES);
    let with_role = t.choice(sink, spans, "with_role", ROLES);
    let id = constraint_id(&mut t, sink, spans, || {
        format!(
            "colocation-{}-with-{}",
            resource.as_deref().unwrap_or("?"),
            with.as_deref().unwrap_or("?")
        )
    });
    t.finish(sink);
    Some(Colocation {
        id: id?,
        resource: resource?,
        with: with?,
        score: score.unwrap_or_default(),
        resource_role,
        with_role,
    })
}

fn parse_order(mut t: Table, sink: &mut Sink, spans: &mut Spans) -> Option<Order> {
    let first = read_ref(&mut t, sink, spans, "first", "resource that goes first");
    let then = read_ref(&mut t, sink, spans, "then", "resource that follows");
    let kind = t
        .choice(
            sink,
            spans,
            "kind",
            &[
                ("mandatory", OrderKind::Mandatory),
                ("optional", OrderKind::Optional),
                ("serialize", OrderKind::Serialize),
            ],
        )
        .unwrap_or(OrderKind::Mandatory);
    let symmetrical = t
        .bool(sink, spans, "symmetrical")
        .unwrap_or(kind != OrderKind::Serialize);
    let first_action = t
        .choice(sink, spans, "first_action", OP_NAMES)
        .unwrap_or(OpName::Start);
    let then_action = t
        .choice(sink, spans, "then_action", OP_NAMES)
        .unwrap_or(first_action);
    for (key, action) in [("first_action", first_action), ("then_action", then_action)] {
        // A then_action defaulted from a bad first_action is not a second error.
        if action == OpName::Monitor && (key == "first_action" || t.has("then_action")) {
            let kp = t.key_path(key);
            sink.error(
                &spans.at(&kp),
                &kp,
                "monitor cannot be ordered",
                "use start, stop, promote or demote",
            );
        }
    }
    if kind == OrderKind::Serialize && symmetrical && t.has("symmetrical") {
        let kp = t.key_path("symmetrical");
        sink.error(
            &spans.at(&kp),
            &kp,
            "a serialize order cannot be symmetrical",
            "remove symmetrical",
        );
    }
    let id = constraint_id(&mut t, sink, spans, || {
        format!(
            "order-{}-then-{}",
            first.as_deref().unwrap_or("?"),
            then.as_deref().unwrap_or("?")
        )
    });
    t.finish(sink);
    Some(Order {
        id: id?,
        first: first?,
        then: then?,
        kind,
        symmetrical,
        first_action,
        then_action,
    })
}
