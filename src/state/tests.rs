use std::path::Path;

use super::codec::*;
use super::membership::{Summary, check_peer};
use super::merge::{Side, merge};
use super::*;
use crate::scheduler::view::{NodeStatus, ResourceStatus};
use crate::sim::Rng;
use crate::totem::wire::{NodeSet, RingId};

const WEB: &str = include_str!("../../conf/web-cluster.toml");

fn web() -> Config {
    crate::config::parse_str(WEB, Path::new("web-cluster.toml"))
        .expect("the example configuration is valid")
        .config
}

fn t(ms: u64) -> WallMs {
    WallMs(ms)
}

fn standby(node: NodeId, on: bool) -> Command {
    Command::SetStandby { node, standby: on }
}

fn op(resource: &str, node: NodeId, op: OpName, rc: i32, at: u64) -> Command {
    Command::OpResult(OpRecord {
        resource: resource.into(),
        node,
        op,
        interval_ms: if op == OpName::Monitor { 10_000 } else { 0 },
        rc,
        at: t(at),
        exit_reason: String::new(),
    })
}

fn set(ids: &[NodeId]) -> NodeSet {
    let mut s = NodeSet::EMPTY;
    ids.iter().for_each(|i| s.insert(*i));
    s
}

fn configure(epoch: u64, text: &str) -> Command {
    Command::Configure {
        epoch,
        text: text.into(),
        digest: config_digest(text),
    }
}

// ------------------------------------------------------------------ apply

#[test]
fn standby_and_online_change_the_standby_set() {
    let mut s = ClusterState::new();
    s.apply(3, &standby(2, true), t(10)).unwrap();
    s.apply(3, &standby(4, true), t(11)).unwrap();
    assert_eq!(s.standby_nodes(), [2, 4].into());
    s.apply(1, &standby(2, false), t(12)).unwrap();
    assert_eq!(s.standby_nodes(), [4].into());
    assert_eq!(
        s.nodes[&2].touched,
        Stamp {
            at: t(12),
            origin: 1
        }
    );
}

#[test]
fn migrate_lifetime_ends_in_queries_and_in_the_state() {
    let mut s = ClusterState::new();
    let m = Command::Migrate {
        resource: "web".into(),
        target: MigrateTarget::To(2),
        expires: Some(t(1_000)),
    };
    s.apply(1, &m, t(100)).unwrap();
    assert_eq!(
        s.migrate_locations(t(999)).get("web"),
        Some(&MigrateTarget::To(2))
    );
    // In force until the lifetime ends, whatever the replicated clock.
    assert!(s.migrate_locations(t(1_000)).is_empty());
    assert!(s.migrates["web"].target.is_some());
    // A later command moves the replicated clock: every node drops it.
    s.apply(2, &standby(1, true), t(1_500)).unwrap();
    assert_eq!(s.migrates["web"].target, None, "kept as a tombstone");
    assert!(s.migrate_locations(t(0)).is_empty());
}

#[test]
fn unmigrate_forgets_the_preference() {
    let mut s = ClusterState::new();
    s.apply(
        1,
        &Command::Migrate {
            resource: "vip".into(),
            target: MigrateTarget::AwayFrom(1),
            expires: None,
        },
        t(1),
    )
    .unwrap();
    assert_eq!(
        s.migrate_locations(t(5)).get("vip"),
        Some(&MigrateTarget::AwayFrom(1))
    );
    s.apply(
        1,
        &Command::Unmigrate {
            resource: "vip".into(),
        },
        t(2),
    )
    .unwrap();
    assert!(s.migrate_locations(t(5)).is_empty());
}

fn role(resource: &str, role: Option<Role>) -> Command {
    Command::SetTargetRole {
        resource: resource.into(),
        role,
    }
}

#[test]
fn target_roles_are_set_forgotten_and_bounded() {
    let mut s = ClusterState::new();
    s.apply(1, &role("web", Some(Role::Stopped)), t(1)).unwrap();
    s.apply(2, &role("db", Some(Role::Started)), t(2)).unwrap();
    assert_eq!(
        s.target_roles(),
        [("db", Role::Started), ("web", Role::Stopped)].into()
    );
    s.apply(3, &role("web", None), t(3)).unwrap();
    assert_eq!(s.target_roles(), [("db", Role::Started)].into());
    assert_eq!(
        s.target_roles["web"],
        TargetRoleEntry {
            role: None,
            stamp: Stamp {
                at: t(3),
                origin: 3
            }
        },
        "a forget is kept as a tombstone"
    );
    // Over the bound, tombstones go first, then the oldest roles.
    for i in 0..TARGET_ROLE_ENTRIES_MAX {
        s.apply(
            1,
            &role(&format!("r{i}"), Some(Role::Stopped)),
            t(10 + i as u64),
        )
        .unwrap();
    }
    assert_eq!(s.target_roles.len(), TARGET_ROLE_ENTRIES_MAX);
    assert!(
        !s.target_roles.contains_key("web"),
        "the tombstone went first"
    );
    assert!(!s.target_roles.contains_key("db"), "then the oldest role");
    assert!(s.target_roles.contains_key("r0"));
}

#[test]
fn fail_counts_add_set_and_cleanup() {
    let mut s = ClusterState::new();
    let add = |by| Command::FailCountAdd {
        resource: "nginx".into(),
        node: 2,
        by,
    };
    s.apply(2, &add(1), t(10)).unwrap();
    s.apply(2, &add(2), t(20)).unwrap();
    assert_eq!(s.fail_count("nginx", 2), 3);
    assert_eq!(s.nodes[&2].fail_counts["nginx"].last_failure, Some(t(20)));
    s.apply(2, &add(0), t(25)).unwrap();
    assert_eq!(
        s.fail_count("nginx", 2),
        3,
        "adding nothing changes nothing"
    );
    s.apply(2, &add(u32::MAX), t(30)).unwrap();
    assert_eq!(s.fail_count("nginx", 2), FAIL_COUNT_INFINITY, "saturates");
    s.apply(
        1,
        &Command::FailCountSet {
            resource: "nginx".into(),
            node: 2,
            count: 1,
        },
        t(40),
    )
    .unwrap();
    assert_eq!(s.fail_count("nginx", 2), 1);
    s.apply(2, &op("nginx", 2, OpName::Start, 1, 41), t(41))
        .unwrap();
    s.apply(2, &op("vip", 2, OpName::Start, 0, 42), t(42))
        .unwrap();
    s.apply(
        1,
        &Command::Cleanup {
            resource: Some("nginx".into()),
            node: None,
        },
        t(50),
    )
    .unwrap();
    assert_eq!(s.fail_count("nginx", 2), 0);
    assert!(s.op_history("nginx", 2).is_empty());
    assert_eq!(s.op_history("vip", 2).len(), 1, "other resources are kept");
}

#[test]
fn operation_history_keeps_the_last_result_per_key_and_is_bounded() {
    let mut s = ClusterState::new();
    s.apply(1, &op("vip", 1, OpName::Start, 0, 1), t(1))
        .unwrap();
    s.apply(1, &op("vip", 1, OpName::Monitor, 0, 2), t(2))
        .unwrap();
    s.apply(1, &op("vip", 1, OpName::Monitor, 7, 3), t(3))
        .unwrap();
    let h = s.op_history("vip", 1);
    assert_eq!(h.len(), 2);
    assert_eq!((h[1].op, h[1].rc), (OpName::Monitor, 7));
    for i in 0..OP_RECORDS_PER_NODE_MAX + 10 {
        s.apply(1, &op(&format!("r{i}"), 1, OpName::Start, 0, 10), t(10))
            .unwrap();
    }
    assert_eq!(s.nodes[&1].ops.len(), OP_RECORDS_PER_NODE_MAX);
    assert!(s.op_history("vip", 1).is_empty(), "the oldest went first");
    assert!(s.op_history("r9", 1).is_empty());
    assert_eq!(s.op_history("r10", 1).len(), 1);
}

#[test]
fn long_exit_reasons_are_cut_at_a_char_boundary() {
    let mut s = ClusterState::new();
    let mut c = op("vip", 1, OpName::Start, 1, 1);
    if let Command::OpResult(r) = &mut c {
        r.exit_reason = "é".repeat(EXIT_REASON_BYTES_MAX);
    }
    s.apply(1, &c, t(1)).unwrap();
    let kept = &s.op_history("vip", 1)[0].exit_reason;
    assert!(kept.len() <= EXIT_REASON_BYTES_MAX && kept.starts_with('é'));
    // On the wire too: the command stays readable.
    let Command::OpResult(sent) = decode_command(&encode_command(&c)).unwrap() else {
        panic!("an operation result")
    };
    assert_eq!(&sent.exit_reason, kept);
}

#[test]
fn fencing_history_is_sorted_and_bounded() {
    let mut s = ClusterState::new();
    for i in (0..FENCE_HISTORY_MAX as u64 + 5).rev() {
        let rec = FenceRecord {
            at: t(i),
            target: 2,
            device: "ipmi-node2".into(),
            action: FenceAction::Reboot,
            error: (i % 3 == 0).then(|| "timed out".to_string()),
            executor: 1,
        };
        s.apply(1, &Command::Fenced(rec), t(1_000)).unwrap();
    }
    assert_eq!(s.fencing.len(), FENCE_HISTORY_MAX);
    assert_eq!(s.fencing[0].at, t(5), "the oldest were dropped");
    assert!(s.fencing.windows(2).all(|w| w[0].at < w[1].at));
}

#[test]
fn configuration_epochs_only_grow_and_digests_must_match() {
    let mut s = ClusterState::new();
    s.apply(1, &configure(1, "a"), t(1)).unwrap();
    assert_eq!(s.config_epoch(), 1);
    assert_eq!(
        s.apply(2, &configure(1, "b"), t(2)),
        Err(Refused::StaleEpoch {
            epoch: 1,
            current: 1
        })
    );
    let forged = Command::Configure {
        epoch: 2,
        text: "c".into(),
        digest: config_digest("d"),
    };
    assert_eq!(
        s.apply(2, &forged, t(3)),
        Err(Refused::DigestMismatch { epoch: 2 })
    );
    assert_eq!(s.config.as_ref().unwrap().text, "a", "unchanged");
    s.apply(2, &configure(2, "c"), t(4)).unwrap();
    assert_eq!(s.config_epoch(), 2);
}

#[test]
fn bad_node_ids_and_long_names_are_refused() {
    let mut s = ClusterState::new();
    assert_eq!(
        s.apply(1, &standby(33, true), t(1)),
        Err(Refused::BadNode { node: 33 })
    );
    let long = Command::Unmigrate {
        resource: "x".repeat(NAME_BYTES_MAX + 1),
    };
    assert!(matches!(
        s.apply(1, &long, t(1)),
        Err(Refused::TooLong { .. })
    ));
    let long = role(&"x".repeat(NAME_BYTES_MAX + 1), Some(Role::Stopped));
    assert_eq!(
        s.apply(1, &long, t(1)),
        Err(Refused::TooLong {
            what: "resource id",
            len: NAME_BYTES_MAX + 1
        })
    );
    assert_eq!(s, ClusterState::new());
}

// ---------------------------------------------------- config apply (prepare)

#[test]
fn prepare_config_validates_and_bumps_the_epoch() {
    let first = prepare_config(WEB, Path::new("web.toml"), None).unwrap();
    let mut s = ClusterState::new();
    s.apply(1, &first, t(1)).unwrap();
    assert_eq!(s.config_epoch(), 1);
    assert_eq!(s.config.as_ref().unwrap().parse().unwrap(), web());
    // A resource change is fine.
    let changed = WEB.replace("id = \"vip\"", "id = \"vip\"\n# a comment");
    let second = prepare_config(&changed, Path::new("web.toml"), s.config.as_ref()).unwrap();
    assert!(matches!(second, Command::Configure { epoch: 2, .. }));
    // An invalid file is refused with its diagnostics.
    let err = prepare_config("[cluster]\nname = 5\n", Path::new("bad.toml"), None).unwrap_err();
    assert!(err.to_string().contains("bad.toml"), "{err}");
}

#[test]
fn prepare_config_refuses_a_membership_change_naming_it() {
    let first = prepare_config(WEB, Path::new("web.toml"), None).unwrap();
    let mut s = ClusterState::new();
    s.apply(1, &first, t(1)).unwrap();
    let moved = WEB.replacen("id = 4", "id = 3", 1);
    assert_ne!(moved, WEB);
    let err = prepare_config(&moved, Path::new("new.toml"), s.config.as_ref()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("node node4 has id 3 there, 4 here"), "{text}");
    assert!(text.contains("restart hactld one node at a time"), "{text}");
}

// ------------------------------------------------------- membership check

#[test]
fn membership_differences_are_named() {
    let here = web();
    let mut there = web();
    there.totem.timers.token_ms = 1_000;
    there.nodes[2].id = 3;
    there.nodes[1].votes = 2;
    there.totem.links[0].port += 2;
    let d = Summary::of(&here)
        .differences(&Summary::of(&there))
        .unwrap();
    let want = [
        format!(
            "totem.token differs: {} ms here, 1000 ms there",
            here.totem.timers.token_ms
        ),
        format!(
            "totem.link[1].port differs: {} here, {} there",
            here.totem.links[0].port,
            here.totem.links[0].port + 2
        ),
        "node node2 has 2 votes there, 1 here".to_string(),
        "node node4 has id 3 there, 4 here".to_string(),
    ];
    for w in &want {
        assert!(d.contains(w), "missing {w:?} in {d:#?}");
    }
    assert_eq!(d.len(), want.len(), "{d:#?}");
}

#[test]
fn membership_check_refuses_a_peer_with_a_missing_node_and_accepts_an_equal_one() {
    let here = web();
    assert_eq!(check_peer(&here, "node2", &Summary::of(&web())), Ok(()));
    // Resources may differ: not part of the membership.
    let mut other = web();
    other.resources.pop();
    assert_eq!(check_peer(&here, "node2", &Summary::of(&other)), Ok(()));
    let mut fewer = web();
    fewer.nodes.pop();
    let err = check_peer(&here, "node2", &Summary::of(&fewer)).unwrap_err();
    assert!(
        err.contains("node node2 is refused")
            && err.contains("node node4 is configured here, not there"),
        "{err}"
    );
}

// ------------------------------------------------------ scheduler inputs

#[test]
fn migrate_preferences_become_location_constraints() {
    let config = web();
    let mut s = ClusterState::new();
    s.apply(
        1,
        &Command::Migrate {
            resource: "web".into(),
            target: MigrateTarget::To(2),
            expires: None,
        },
        t(1),
    )
    .unwrap();
    s.apply(
        1,
        &Command::Migrate {
            resource: "vip".into(),
            target: MigrateTarget::AwayFrom(4),
            expires: None,
        },
        t(1),
    )
    .unwrap();
    s.apply(
        1,
        &Command::Migrate {
            resource: "no-such".into(),
            target: MigrateTarget::To(2),
            expires: None,
        },
        t(1),
    )
    .unwrap();
    let mut c = config.clone();
    s.add_migrate_locations(&mut c, t(2));
    let added = &c.locations[config.locations.len()..];
    assert_eq!(added.len(), 2, "{added:#?}");
    let prefer = added.iter().find(|l| l.id == "cli-prefer-web").unwrap();
    assert_eq!(
        (prefer.node.as_str(), prefer.score),
        ("node2", Score::INFINITY)
    );
    let ban = added
        .iter()
        .find(|l| l.id == "cli-ban-vip-on-node4")
        .unwrap();
    assert_eq!(
        (ban.node.as_str(), ban.score),
        ("node4", Score::MINUS_INFINITY)
    );
}

#[test]
fn standby_and_migrate_from_the_state_move_a_group_in_the_scheduler() {
    let config = web();
    let mut view = ClusterView {
        nodes: config
            .nodes
            .iter()
            .map(|n| NodeStatus::online(&n.name))
            .collect(),
        has_quorum: true,
        resources: Vec::new(),
    };
    let now = Instant::from_millis(50_000);
    let mut s = ClusterState::new();
    s.apply(1, &standby(1, true), t(1)).unwrap();
    s.apply(
        1,
        &Command::Migrate {
            resource: "web".into(),
            target: MigrateTarget::To(4),
            expires: None,
        },
        t(1),
    )
    .unwrap();
    s.fill_view(&config, &mut view, t(10), now);
    let mut c = config.clone();
    s.add_migrate_locations(&mut c, t(10));
    let tr = crate::scheduler::schedule(&c, &view, now);
    let web = &tr.outcome["web"];
    assert_eq!(web.nodes, ["node4".to_string()].into(), "{:#?}", tr.summary);
    assert!(
        !tr.outcome["vip"].nodes.contains("node1"),
        "node1 is in standby"
    );
}

#[test]
fn target_roles_become_meta_and_stop_a_group_in_the_scheduler() {
    let config = web();
    let view = all_online(&config);
    let now = Instant::from_millis(50_000);
    let schedule = |s: &ClusterState, config: &Config| {
        let mut c = config.clone();
        s.apply_target_roles(&mut c);
        (crate::scheduler::schedule(&c, &view, now), c)
    };
    let mut s = ClusterState::new();
    let (tr, _) = schedule(&s, &config);
    assert!(!tr.outcome["web"].nodes.is_empty(), "{:#?}", tr.summary);
    s.apply(1, &role("web", Some(Role::Stopped)), t(1)).unwrap();
    s.apply(1, &role("no-such", Some(Role::Stopped)), t(1))
        .unwrap();
    let (tr, c) = schedule(&s, &config);
    assert_eq!(
        c.groups
            .iter()
            .find(|g| g.id == "web")
            .unwrap()
            .meta
            .target_role,
        Some(Role::Stopped)
    );
    assert!(tr.outcome["web"].nodes.is_empty(), "{:#?}", tr.summary);
    assert!(
        !tr.outcome["nfs-client-clone"].nodes.is_empty(),
        "only web stops: {:#?}",
        tr.summary
    );
    // Forgotten: the configuration decides again.
    s.apply(1, &role("web", None), t(2)).unwrap();
    let (tr, c) = schedule(&s, &config);
    assert_eq!(c, config);
    assert!(!tr.outcome["web"].nodes.is_empty(), "{:#?}", tr.summary);
    // Started overrides a configuration that stops the resource.
    let mut stopped = config.clone();
    stopped
        .resources
        .iter_mut()
        .find(|r| r.id == "vip")
        .unwrap()
        .meta
        .target_role = Some(Role::Stopped);
    let (tr, _) = schedule(&s, &stopped);
    assert!(tr.outcome["vip"].nodes.is_empty(), "{:#?}", tr.summary);
    s.apply(1, &role("vip", Some(Role::Started)), t(3)).unwrap();
    let (tr, _) = schedule(&s, &stopped);
    assert!(!tr.outcome["vip"].nodes.is_empty(), "{:#?}", tr.summary);
}

#[test]
fn fill_view_reads_roles_fail_counts_and_bans_from_the_history() {
    let config = web();
    let mut view = ClusterView {
        nodes: config
            .nodes
            .iter()
            .map(|n| NodeStatus::online(&n.name))
            .collect(),
        has_quorum: true,
        resources: Vec::new(),
    };
    let mut s = ClusterState::new();
    s.apply(1, &op("vip", 1, OpName::Start, 0, 1_000), t(1_000))
        .unwrap();
    s.apply(1, &op("vip", 1, OpName::Monitor, 0, 2_000), t(2_000))
        .unwrap();
    s.apply(2, &op("nginx", 2, OpName::Start, 5, 3_000), t(3_000))
        .unwrap();
    s.apply(
        2,
        &Command::FailCountAdd {
            resource: "nginx".into(),
            node: 2,
            by: 1,
        },
        t(3_000),
    )
    .unwrap();
    s.apply(4, &op("vip", 4, OpName::Monitor, 7, 4_000), t(4_000))
        .unwrap();
    let now = Instant::from_millis(100_000);
    s.fill_view(&config, &mut view, t(10_000), now);
    let find = |r: &str, n: &str| -> ResourceStatus {
        view.resources
            .iter()
            .find(|x| x.resource == r && x.node == n)
            .cloned()
            .unwrap()
    };
    let vip1 = find("vip", "node1");
    assert_eq!((vip1.role, vip1.known), (Role::Started, true));
    let vip4 = find("vip", "node4");
    assert_eq!((vip4.role, vip4.known), (Role::Stopped, true));
    let nginx = find("nginx", "node2");
    assert!(nginx.banned && nginx.fail_count == 1);
    // Failed 7 s before the wall "now": 7 s before the monotonic now.
    assert_eq!(nginx.last_failure, Some(Instant::from_millis(93_000)));
}

// ---------------------------------------------------------------- codec

fn random_name(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}{}", rng.range(0, 5))
}

/// A random command, mostly valid, sometimes refused (stale epochs, bad
/// node ids): refusals must be deterministic too.
pub(crate) fn random_command(rng: &mut Rng, configs: &mut u64) -> Command {
    let node = rng.range(1, 4) as NodeId;
    match rng.range(0, 11) {
        0 => standby(node, rng.chance(500_000)),
        1 => Command::Migrate {
            resource: random_name(rng, "r"),
            target: if rng.chance(500_000) {
                MigrateTarget::To(node)
            } else {
                MigrateTarget::AwayFrom(node)
            },
            expires: rng.chance(500_000).then(|| WallMs(rng.range(0, 2_000))),
        },
        2 => Command::Unmigrate {
            resource: random_name(rng, "r"),
        },
        3 => Command::FailCountAdd {
            resource: random_name(rng, "r"),
            node,
            by: rng.range(0, 3) as u32,
        },
        4 => Command::FailCountSet {
            resource: random_name(rng, "r"),
            node,
            count: rng.range(0, 2) as u32,
        },
        5 => Command::Cleanup {
            resource: rng.chance(500_000).then(|| random_name(rng, "r")),
            node: rng.chance(500_000).then_some(node),
        },
        6 | 7 => Command::OpResult(OpRecord {
            resource: random_name(rng, "r"),
            node,
            op: [
                OpName::Start,
                OpName::Stop,
                OpName::Monitor,
                OpName::Promote,
                OpName::Demote,
            ][rng.range(0, 4) as usize],
            interval_ms: rng.range(0, 1) * 10_000,
            rc: rng.range(0, 9) as i32,
            at: WallMs(rng.range(0, 2_000)),
            exit_reason: if rng.chance(300_000) {
                "agent said ✗".into()
            } else {
                String::new()
            },
        }),
        8 => Command::Fenced(FenceRecord {
            at: WallMs(rng.range(0, 2_000)),
            target: node,
            device: random_name(rng, "dev"),
            action: FenceAction::Reboot,
            error: rng.chance(300_000).then(|| "timeout".into()),
            executor: rng.range(1, 4) as NodeId,
        }),
        9 => {
            *configs += 1;
            // Sometimes stale on purpose.
            let epoch = *configs - rng.range(0, 1).min(*configs - 1);
            configure(epoch, &format!("config {}", *configs))
        }
        10 => Command::SetTargetRole {
            resource: random_name(rng, "r"),
            role: [None, Some(Role::Stopped), Some(Role::Started)][rng.range(0, 2) as usize],
        },
        _ => standby(33, true),
    }
}

#[test]
fn same_commands_in_same_order_give_equal_states_and_encodings() {
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let mut configs = 0;
        let (mut a, mut b) = (ClusterState::new(), ClusterState::new());
        for _ in 0..rng.range(1, 200) {
            let cmd = random_command(&mut rng, &mut configs);
            let origin = rng.range(1, 4) as NodeId;
            let at = WallMs(rng.range(0, 2_000));
            // The command as it travels: encoded, fragmented, reassembled.
            let mut re = Reassembler::default();
            let mut got = None;
            for p in to_payloads(&Message::Command {
                at,
                cmd: cmd.clone(),
            }) {
                got = re.push(origin, &p).unwrap();
            }
            assert_eq!(
                got,
                Some(Message::Command {
                    at,
                    cmd: cmd.clone()
                }),
                "seed {seed}"
            );
            assert_eq!(decode_command(&encode_command(&cmd)).unwrap(), cmd);
            let ra = a.apply(origin, &cmd, at);
            let rb = b.apply(origin, &cmd, at);
            assert_eq!(ra, rb, "seed {seed}");
        }
        assert_eq!(a, b, "seed {seed}");
        let bytes = encode_snapshot(&a);
        assert_eq!(bytes, encode_snapshot(&b), "seed {seed}");
        assert_eq!(decode_snapshot(&bytes).unwrap(), a, "seed {seed}");
    }
}

#[test]
fn large_messages_are_fragmented_within_totem_limits() {
    let text = "x".repeat(3 * CHUNK_BYTES_MAX + 17);
    let m = Message::Command {
        at: t(1),
        cmd: configure(1, &text),
    };
    let parts = to_payloads(&m);
    assert_eq!(parts.len(), 4);
    assert!(
        parts
            .iter()
            .all(|p| p.len() <= crate::totem::wire::APP_PAYLOAD_BYTES_MAX && p[0] == SERVICE_STATE)
    );
    let mut re = Reassembler::default();
    // Another sender's message in between does not disturb it.
    let other = to_payloads(&Message::Command {
        at: t(2),
        cmd: standby(1, true),
    });
    assert!(re.push(1, &parts[0]).unwrap().is_none());
    assert!(re.push(2, &other[0]).unwrap().is_some());
    assert!(re.push(1, &parts[1]).unwrap().is_none());
    assert!(re.push(1, &parts[2]).unwrap().is_none());
    assert_eq!(re.push(1, &parts[3]).unwrap(), Some(m));
    // A part out of order is reported and the partial message dropped.
    assert!(re.push(1, &parts[0]).unwrap().is_none());
    assert!(matches!(
        re.push(1, &parts[2]),
        Err(DecodeError::BadFragment {
            part: 2,
            expected: 1,
            ..
        })
    ));
}

#[test]
fn decoding_refuses_newer_versions_and_damaged_bytes() {
    let mut p = to_payloads(&Message::Command {
        at: t(1),
        cmd: standby(1, true),
    })
    .remove(0);
    p[1] = WIRE_VERSION + 1;
    let err = Reassembler::default().push(1, &p).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownVersion {
            what: "state message",
            found: WIRE_VERSION + 1,
            supported: WIRE_VERSION
        }
    );
    assert!(err.to_string().contains("upgrade this node"));
    let mut s = ClusterState::new();
    s.apply(1, &standby(2, true), t(1)).unwrap();
    let mut snap = encode_snapshot(&s);
    snap[0] = SNAPSHOT_VERSION + 1;
    assert!(matches!(
        decode_snapshot(&snap),
        Err(DecodeError::UnknownVersion {
            what: "snapshot",
            ..
        })
    ));
    let snap = encode_snapshot(&s);
    assert!(matches!(
        decode_snapshot(&snap[..snap.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut longer = snap.clone();
    longer.push(0);
    assert_eq!(
        decode_snapshot(&longer),
        Err(DecodeError::Trailing { bytes: 1 })
    );
    assert!(matches!(
        decode_command(&[99]),
        Err(DecodeError::UnknownTag {
            what: "command",
            tag: 99
        })
    ));
    assert!(matches!(
        Reassembler::default().push(1, &[1, 2, 3]),
        Err(DecodeError::NotState { service: Some(1) })
    ));
}

#[test]
fn snapshots_without_target_roles_keep_version_1_and_both_versions_are_read() {
    let mut s = common();
    s.apply(1, &standby(2, true), t(150)).unwrap();
    let v1 = encode_snapshot(&s);
    assert_eq!(
        v1[0], SNAPSHOT_VERSION_V1,
        "what nodes before version 2 read"
    );
    assert_eq!(decode_snapshot(&v1).unwrap(), s);
    s.apply(1, &role("web", Some(Role::Stopped)), t(160))
        .unwrap();
    s.apply(1, &role("db", None), t(170)).unwrap();
    let v2 = encode_snapshot(&s);
    assert_eq!(v2[0], SNAPSHOT_VERSION);
    assert_eq!(decode_snapshot(&v2).unwrap(), s);
    // Version 2 is version 1 followed by the target roles.
    let mut without = s.clone();
    without.target_roles.clear();
    assert_eq!(
        v2[1..encode_snapshot(&without).len()],
        encode_snapshot(&without)[1..]
    );
    // A tombstone alone still needs version 2 (it must survive a merge).
    let mut only_tomb = common();
    only_tomb.apply(1, &role("db", None), t(170)).unwrap();
    assert_eq!(encode_snapshot(&only_tomb)[0], SNAPSHOT_VERSION);
    // The command round-trips; an unknown role tag is refused.
    for r in [
        None,
        Some(Role::Stopped),
        Some(Role::Started),
        Some(Role::Promoted),
    ] {
        let c = role("web", r);
        assert_eq!(decode_command(&encode_command(&c)).unwrap(), c);
    }
    let mut bad = encode_command(&role("web", Some(Role::Stopped)));
    *bad.last_mut().unwrap() = 9;
    assert_eq!(
        decode_command(&bad),
        Err(DecodeError::UnknownTag {
            what: "target role",
            tag: 9
        })
    );
}

#[test]
fn a_decoded_state_that_breaks_the_rules_is_refused() {
    let mut s = ClusterState::new();
    s.apply(1, &configure(1, "text"), t(1)).unwrap();
    s.config.as_mut().unwrap().text = "other".into();
    assert!(matches!(
        decode_snapshot(&encode_snapshot(&s)),
        Err(DecodeError::Inconsistent { .. })
    ));
}

// ---------------------------------------------------------------- merge

/// Two sides that start from a common state and diverge.
fn common() -> ClusterState {
    let mut s = ClusterState::new();
    s.apply(1, &configure(1, "base"), t(100)).unwrap();
    s
}

fn side<'a>(members: &[NodeId], state: &'a ClusterState) -> Side<'a> {
    Side {
        members: set(members),
        fresh: false,
        state,
    }
}

#[test]
fn merge_standby_set_on_a_minority_side_for_its_own_node_is_kept() {
    let (mut a, mut b) = (common(), common());
    // Node 3 alone (minority) puts itself in standby.
    b.apply(3, &standby(3, true), t(200)).unwrap();
    // The majority thinks otherwise about node 3 (an older change).
    a.apply(1, &standby(3, false), t(300)).unwrap();
    a.apply(1, &standby(1, true), t(150)).unwrap();
    let m = merge(&[side(&[1, 2], &a), side(&[3], &b)]);
    assert_eq!(
        m.state.standby_nodes(),
        [1, 3].into(),
        "node 3's side decides"
    );
}

#[test]
fn merge_takes_facts_of_a_node_in_no_side_from_the_latest_change() {
    let (mut a, mut b) = (common(), common());
    // Node 4 is down; each side touched its record.
    a.apply(1, &standby(4, true), t(200)).unwrap();
    b.apply(3, &standby(4, false), t(250)).unwrap();
    b.apply(
        3,
        &Command::FailCountAdd {
            resource: "vip".into(),
            node: 4,
            by: 1,
        },
        t(260),
    )
    .unwrap();
    let m = merge(&[side(&[1, 2], &a), side(&[3], &b)]);
    assert!(!m.state.is_standby(4));
    assert_eq!(m.state.fail_count("vip", 4), 1);
}

#[test]
fn merge_fail_counts_and_history_come_from_each_nodes_side() {
    let (mut a, mut b) = (common(), common());
    let add = |node| Command::FailCountAdd {
        resource: "nginx".into(),
        node,
        by: 1,
    };
    a.apply(1, &add(1), t(200)).unwrap();
    a.apply(1, &op("nginx", 1, OpName::Start, 0, 201), t(201))
        .unwrap();
    // Side b saw a failure on node 1 before the partition? No: b recorded
    // one for its own node 3, and a stale one about node 1.
    b.apply(3, &add(3), t(210)).unwrap();
    b.apply(3, &add(1), t(400)).unwrap();
    b.apply(3, &add(1), t(401)).unwrap();
    let m = merge(&[side(&[1, 2], &a), side(&[3], &b)]);
    assert_eq!(m.state.fail_count("nginx", 1), 1, "node 1's side decides");
    assert_eq!(m.state.fail_count("nginx", 3), 1);
    assert_eq!(m.state.op_history("nginx", 1).len(), 1);
}

#[test]
fn merge_higher_configuration_epoch_wins() {
    let (mut a, b) = (common(), common());
    a.apply(2, &configure(2, "new"), t(200)).unwrap();
    for sides in [
        [side(&[1], &b), side(&[2, 3], &a)],
        [side(&[2, 3], &a), side(&[1], &b)],
    ] {
        let m = merge(&sides);
        assert_eq!(m.state.config.as_ref().unwrap().text, "new");
        assert!(m.notes.is_empty());
    }
}

#[test]
fn merge_equal_epochs_conflict_goes_to_the_side_with_the_lowest_node() {
    let (mut a, mut b) = (common(), common());
    a.apply(3, &configure(2, "from side 3"), t(300)).unwrap();
    b.apply(2, &configure(2, "from side 1,2"), t(200)).unwrap();
    let m = merge(&[side(&[3], &a), side(&[1, 2], &b)]);
    assert_eq!(m.state.config.as_ref().unwrap().text, "from side 1,2");
    assert_eq!(m.notes.len(), 1);
    assert!(
        m.notes[0].contains("configuration conflict at epoch 2")
            && m.notes[0].contains("kept the one of the side with node 1"),
        "{}",
        m.notes[0]
    );
}

#[test]
fn merge_migrate_latest_change_wins_and_lifetimes_end() {
    let (mut a, mut b) = (common(), common());
    let mig = |r: &str, n, expires| Command::Migrate {
        resource: r.into(),
        target: MigrateTarget::To(n),
        expires,
    };
    a.apply(1, &mig("web", 1, None), t(200)).unwrap();
    b.apply(3, &mig("web", 3, None), t(300)).unwrap();
    // vip: migrated on a, unmigrated later on b.
    a.apply(1, &mig("vip", 2, None), t(210)).unwrap();
    b.apply(
        3,
        &Command::Unmigrate {
            resource: "vip".into(),
        },
        t(310),
    )
    .unwrap();
    // db: migrated with a lifetime that ends during the partition (side b
    // moves the clock past it; side a never applied anything after).
    a.apply(1, &mig("db", 2, Some(t(500))), t(220)).unwrap();
    b.apply(3, &standby(3, false), t(600)).unwrap();
    let m = merge(&[side(&[1, 2], &a), side(&[3], &b)]);
    let locs = m.state.migrate_locations(t(0));
    assert_eq!(locs.get("web"), Some(&MigrateTarget::To(3)));
    assert_eq!(locs.get("vip"), None, "the later unmigrate wins");
    assert_eq!(
        locs.get("db"),
        None,
        "its lifetime ended at 500, clock is 600"
    );
    assert_eq!(m.state.clock, t(600));
}

#[test]
fn merge_target_roles_latest_change_wins_forgets_included() {
    let (mut a, mut b) = (common(), common());
    // web: stopped on a, started later on b.
    a.apply(1, &role("web", Some(Role::Stopped)), t(200))
        .unwrap();
    b.apply(3, &role("web", Some(Role::Started)), t(300))
        .unwrap();
    // db: stopped on b, forgotten later on a.
    b.apply(3, &role("db", Some(Role::Stopped)), t(210))
        .unwrap();
    a.apply(1, &role("db", None), t(220)).unwrap();
    // vip: stopped on a only.
    a.apply(2, &role("vip", Some(Role::Stopped)), t(230))
        .unwrap();
    for sides in [
        [side(&[1, 2], &a), side(&[3], &b)],
        [side(&[3], &b), side(&[1, 2], &a)],
    ] {
        let m = merge(&sides);
        assert_eq!(
            m.state.target_roles(),
            [("vip", Role::Stopped), ("web", Role::Started)].into(),
            "the later forget of db beats the older stop"
        );
        assert!(m.notes.is_empty());
    }
}

#[test]
fn merge_fencing_history_is_the_union() {
    let (mut a, mut b) = (common(), common());
    let f = |at, target| {
        Command::Fenced(FenceRecord {
            at: t(at),
            target,
            device: "d".into(),
            action: FenceAction::Off,
            error: None,
            executor: 1,
        })
    };
    a.apply(1, &f(200, 3), t(200)).unwrap();
    b.apply(3, &f(210, 1), t(210)).unwrap();
    let m = merge(&[side(&[1, 2], &a), side(&[3], &b)]);
    assert_eq!(m.state.fencing.len(), 2);
}

#[test]
fn merge_prefers_the_cluster_over_a_fresh_nodes_disk() {
    let (mut cluster, mut disk) = (common(), common());
    // Node 3 crashed with a fail count; the cluster cleaned it up later.
    disk.apply(
        3,
        &Command::FailCountAdd {
            resource: "vip".into(),
            node: 3,
            by: 1,
        },
        t(200),
    )
    .unwrap();
    cluster
        .apply(
            3,
            &Command::FailCountAdd {
                resource: "vip".into(),
                node: 3,
                by: 1,
            },
            t(200),
        )
        .unwrap();
    cluster
        .apply(
            1,
            &Command::Cleanup {
                resource: None,
                node: Some(3),
            },
            t(300),
        )
        .unwrap();
    let fresh = Side {
        members: set(&[3]),
        fresh: true,
        state: &disk,
    };
    let m = merge(&[side(&[1, 2], &cluster), fresh]);
    assert_eq!(m.state.fail_count("vip", 3), 0);
    // Not fresh: node 3's own side would decide.
    let m = merge(&[side(&[1, 2], &cluster), side(&[3], &disk)]);
    assert_eq!(m.state.fail_count("vip", 3), 1);
}

#[test]
fn merge_is_independent_of_the_order_of_sides() {
    for seed in 0..100 {
        let mut rng = Rng::new(seed);
        let mut configs = 0;
        let mut states = vec![common(), common(), common()];
        for s in &mut states {
            for _ in 0..rng.range(0, 30) {
                let cmd = random_command(&mut rng, &mut configs);
                let _ = s.apply(rng.range(1, 4) as NodeId, &cmd, WallMs(rng.range(0, 2_000)));
            }
        }
        let groups = [set(&[1]), set(&[2, 4]), set(&[3])];
        let sides: Vec<Side> = (0..3)
            .map(|i| Side {
                members: groups[i],
                fresh: i == 2 && seed % 2 == 0,
                state: &states[i],
            })
            .collect();
        let m1 = merge(&sides);
        let mut rev = sides.clone();
        rev.reverse();
        let m2 = merge(&rev);
        assert_eq!(m1, m2, "seed {seed}");
        // Merging a state with itself changes nothing but expiry.
        let mut alone = states[0].clone();
        alone.expire(alone.clock);
        assert_eq!(merge(&[sides[0]]).state, alone, "seed {seed}");
    }
}

#[test]
fn sync_message_round_trips() {
    let mut s = common();
    s.apply(2, &standby(2, true), t(5)).unwrap();
    let m = Message::Sync(Sync {
        ring: RingId { seq: 12, rep: 1 },
        side: set(&[1, 2]),
        fresh: true,
        state: s,
    });
    assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
}

// ------------------------------------------------------------- replica

use super::replica::{Replica, ReplicaEvent};
use crate::totem::srp::TotemEvent;

/// Hands every payload a replica wants to broadcast to all replicas, in
/// one agreed order (as totem would), until none is left.
fn deliver_all(ring: RingId, replicas: &mut [(NodeId, &mut Replica)]) {
    let mut seq = 0;
    loop {
        let mut sent = Vec::new();
        for (id, r) in replicas.iter_mut() {
            while let Some(p) = r.poll_broadcast() {
                sent.push((*id, p));
            }
        }
        if sent.is_empty() {
            return;
        }
        for (sender, payload) in sent {
            seq += 1;
            let e = TotemEvent::Deliver {
                ring,
                seq,
                sender,
                safe: false,
                payload,
            };
            for (_, r) in replicas.iter_mut() {
                r.handle_event(&e);
            }
        }
    }
}

#[test]
fn replicas_of_two_sides_sync_to_one_state_and_hold_commands_back_meanwhile() {
    // Node 1 (with node 2 before, gone now) and node 3 were apart; node 1
    // put itself in standby, node 3 migrated a resource.
    let mut s1 = common();
    s1.apply(1, &standby(1, true), t(200)).unwrap();
    let mut s3 = common();
    s3.apply(
        3,
        &Command::Migrate {
            resource: "web".into(),
            target: MigrateTarget::To(3),
            expires: None,
        },
        t(210),
    )
    .unwrap();
    let mut r1 = Replica::new(1, s1, Some(Summary::of(&web())));
    let mut r3 = Replica::new(3, s3, Some(Summary::of(&web())));
    let old = RingId { seq: 4, rep: 1 };
    r1.handle_event(&TotemEvent::Transitional {
        ring: old,
        members: set(&[1]),
        left: set(&[2]),
    });
    let ring = RingId { seq: 8, rep: 1 };
    let regular = TotemEvent::Regular {
        ring,
        members: set(&[1, 3]),
        joined: set(&[3]),
    };
    r1.handle_event(&regular);
    r3.handle_event(&regular);
    assert!(r1.is_syncing() && r3.is_syncing());
    // A command sent before the Syncs are delivered waits for the merge.
    r3.submit(standby(3, true), t(300));
    deliver_all(ring, &mut [(1, &mut r1), (3, &mut r3)]);
    assert!(!r1.is_syncing() && !r3.is_syncing());
    assert_eq!(r1.state(), r3.state());
    assert_eq!(r1.state().standby_nodes(), [1, 3].into());
    assert_eq!(
        r1.state().migrate_locations(t(0)).get("web"),
        Some(&MigrateTarget::To(3))
    );
    let events: Vec<ReplicaEvent> = std::iter::from_fn(|| r1.poll_event()).collect();
    assert!(
        matches!(events[0], ReplicaEvent::Synced { .. }),
        "{events:?}"
    );
    assert!(matches!(events[1], ReplicaEvent::Applied { origin: 3, .. }));
    assert!(r1.take_dirty() && !r1.take_dirty());
}

#[test]
fn a_replica_reports_a_peer_whose_membership_differs() {
    let mut other = web();
    other.totem.timers.token_ms += 700;
    let mut r1 = Replica::new(1, ClusterState::new(), Some(Summary::of(&web())));
    let mut r2 = Replica::new(2, ClusterState::new(), Some(Summary::of(&other)));
    let ring = RingId { seq: 4, rep: 1 };
    let regular = TotemEvent::Regular {
        ring,
        members: set(&[1, 2]),
        joined: set(&[2]),
    };
    r1.handle_event(&regular);
    r2.handle_event(&regular);
    deliver_all(ring, &mut [(1, &mut r1), (2, &mut r2)]);
    let events: Vec<ReplicaEvent> = std::iter::from_fn(|| r1.poll_event()).collect();
    let msg = events
        .iter()
        .find_map(|e| match e {
            ReplicaEvent::MembershipMismatch { node: 2, message } => Some(message.clone()),
            _ => None,
        })
        .expect("a mismatch event");
    assert!(msg.contains("totem.token differs"), "{msg}");
}

/// Found by tests/cluster_sim.rs (long seed 2449): node 1 restarted with a
/// stale record of node 2 and recorded something alone; its round with
/// node 2 was abandoned before node 2's Sync arrived, yet in the next ring
/// it claimed node 2 in its side, and its stale record of node 2 beat node
/// 2's own (which had put itself in standby).
#[test]
fn after_an_abandoned_round_a_node_stands_alone_for_its_state() {
    let stale = common();
    let mut s2 = common();
    s2.apply(2, &standby(2, true), t(300)).unwrap();
    let mut r1 = Replica::new(1, stale, Some(Summary::of(&web())));
    let mut r2 = Replica::new(2, s2, Some(Summary::of(&web())));
    // Node 1 alone: a round with itself, then something about itself.
    let alone = RingId { seq: 4, rep: 1 };
    r1.handle_event(&TotemEvent::Regular {
        ring: alone,
        members: set(&[1]),
        joined: set(&[1]),
    });
    deliver_all(alone, &mut [(1, &mut r1)]);
    r1.submit(standby(1, false), t(400));
    deliver_all(alone, &mut [(1, &mut r1)]);
    // Node 2 alone too.
    let alone2 = RingId { seq: 4, rep: 2 };
    r2.handle_event(&TotemEvent::Regular {
        ring: alone2,
        members: set(&[2]),
        joined: set(&[2]),
    });
    deliver_all(alone2, &mut [(2, &mut r2)]);
    // A ring of both that changes before any Sync is delivered.
    let short = RingId { seq: 8, rep: 1 };
    for (r, old) in [(&mut r1, set(&[1])), (&mut r2, set(&[2]))] {
        r.handle_event(&TotemEvent::Transitional {
            ring: if old.contains(1) { alone } else { alone2 },
            members: old,
            left: NodeSet::EMPTY,
        });
        r.handle_event(&TotemEvent::Regular {
            ring: short,
            members: set(&[1, 2]),
            joined: set(&[1, 2]).minus(old),
        });
        r.handle_event(&TotemEvent::Transitional {
            ring: short,
            members: set(&[1, 2]),
            left: NodeSet::EMPTY,
        });
        while r.poll_broadcast().is_some() {}
    }
    let ring = RingId { seq: 12, rep: 1 };
    let regular = TotemEvent::Regular {
        ring,
        members: set(&[1, 2]),
        joined: NodeSet::EMPTY,
    };
    r1.handle_event(&regular);
    r2.handle_event(&regular);
    deliver_all(ring, &mut [(1, &mut r1), (2, &mut r2)]);
    assert_eq!(r1.state(), r2.state());
    assert!(
        r1.state().is_standby(2),
        "node 2's own record of itself was lost"
    );
}

/// A configuration epoch of `config` applied at `at` (what `hactl config
/// apply` does).
fn apply_config(s: &mut ClusterState, config: &Config, at: u64) {
    let text = crate::config::canonical(config);
    let epoch = s.config_epoch() + 1;
    let digest = config_digest(&text);
    s.apply(
        1,
        &Command::Configure {
            epoch,
            text,
            digest,
        },
        t(at),
    )
    .unwrap();
}

fn set_role(config: &mut Config, id: &str, role: Option<Role>) {
    if let Some(r) = config.resources.iter_mut().find(|r| r.id == id) {
        r.meta.target_role = role;
    } else if let Some(g) = config.groups.iter_mut().find(|g| g.id == id) {
        g.meta.target_role = role;
    } else {
        let c = config.clones.iter_mut().find(|c| c.id == id).unwrap();
        c.meta.target_role = role;
    }
}

/// The target roles in force once the replicated ones are applied:
/// id → role, for the ids that have one.
fn roles_in_force(s: &ClusterState, config: &Config) -> BTreeMap<String, Role> {
    let mut c = config.clone();
    s.apply_target_roles(&mut c);
    let mut out = BTreeMap::new();
    for r in &c.resources {
        out.extend(r.meta.target_role.map(|x| (r.id.clone(), x)));
    }
    for g in &c.groups {
        out.extend(g.meta.target_role.map(|x| (g.id.clone(), x)));
    }
    for k in &c.clones {
        out.extend(k.meta.target_role.map(|x| (k.id.clone(), x)));
    }
    out
}

fn roles(pairs: &[(&str, Role)]) -> BTreeMap<String, Role> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn the_latest_of_hactl_resource_start_and_config_apply_sets_the_target_role() {
    use Role::{Started, Stopped};
    let file = web();
    let mut stopping = web();
    set_role(&mut stopping, "vip", Some(Stopped));
    let mut s = ClusterState::new();
    // The file the daemons started with counts as older than any command.
    s.apply(1, &role("vip", Some(Stopped)), t(10)).unwrap();
    assert_eq!(roles_in_force(&s, &file), roles(&[("vip", Stopped)]));
    s.apply(1, &role("vip", Some(Started)), t(20)).unwrap();
    assert_eq!(roles_in_force(&s, &stopping), roles(&[("vip", Started)]));
    // What config apply tells the operator it replaces.
    assert_eq!(
        s.target_roles_replaced_by(&file, &stopping),
        [("vip".to_string(), Started, Stopped)]
    );
    assert!(s.target_roles_replaced_by(&file, &file).is_empty());
    // A configuration applied later that states target_role = "stopped"
    // wins over the earlier start ...
    apply_config(&mut s, &stopping, 30);
    assert_eq!(roles_in_force(&s, &stopping), roles(&[("vip", Stopped)]));
    // ... and is not listed as in force any more.
    assert!(!s.target_role_overrides(&stopping).contains_key("vip"));
    // A start after it wins again.
    s.apply(2, &role("vip", Some(Started)), t(40)).unwrap();
    assert_eq!(roles_in_force(&s, &stopping), roles(&[("vip", Started)]));
    // A configuration that states no target role leaves the start (or a
    // stop) in force.
    s.apply(2, &role("vip", Some(Stopped)), t(50)).unwrap();
    apply_config(&mut s, &file, 60);
    assert_eq!(roles_in_force(&s, &file), roles(&[("vip", Stopped)]));
}

#[test]
fn a_start_or_stop_of_a_group_or_clone_overrides_older_roles_of_what_it_contains() {
    use Role::{Started, Stopped};
    let mut config = web();
    // The file stops nginx (a member of web) and the cloned nfs-client.
    set_role(&mut config, "nginx", Some(Stopped));
    set_role(&mut config, "nfs-client", Some(Stopped));
    let mut s = ClusterState::new();
    apply_config(&mut s, &config, 5);
    s.apply(1, &role("www-data", Some(Stopped)), t(10)).unwrap();
    assert_eq!(
        roles_in_force(&s, &config),
        roles(&[
            ("nginx", Stopped),
            ("nfs-client", Stopped),
            ("www-data", Stopped)
        ])
    );
    // hactl resource start web: all of web, members included.
    s.apply(1, &role("web", Some(Started)), t(20)).unwrap();
    assert_eq!(
        roles_in_force(&s, &config),
        roles(&[("nfs-client", Stopped), ("web", Started)])
    );
    // A member stopped after that stays stopped.
    s.apply(1, &role("nginx", Some(Stopped)), t(30)).unwrap();
    assert_eq!(
        roles_in_force(&s, &config),
        roles(&[
            ("nfs-client", Stopped),
            ("nginx", Stopped),
            ("web", Started)
        ])
    );
    // The clone: its start overrides its primitive's older stop.
    s.apply(1, &role("nfs-client-clone", Some(Started)), t(40))
        .unwrap();
    assert_eq!(
        roles_in_force(&s, &config),
        roles(&[
            ("nfs-client-clone", Started),
            ("nginx", Stopped),
            ("web", Started)
        ])
    );
    // The summary lists only the entries in force.
    let o = s.target_role_overrides(&config);
    assert_eq!(
        o.get("www-data"),
        Some(&None),
        "cleared by the start of web"
    );
    assert_eq!(o.get("web"), Some(&Some(Started)));
}

#[test]
fn a_member_of_a_stopped_group_or_clone_names_it() {
    use Role::{Started, Stopped};
    let config = web();
    let mut s = ClusterState::new();
    assert_eq!(s.stopped_container(&config, "vip"), None);
    s.apply(1, &role("web", Some(Stopped)), t(10)).unwrap();
    assert_eq!(s.stopped_container(&config, "vip"), Some("web".into()));
    assert_eq!(s.stopped_container(&config, "web"), None, "not a member");
    s.apply(1, &role("web", Some(Started)), t(20)).unwrap();
    assert_eq!(s.stopped_container(&config, "vip"), None);
    let mut stopped_clone = web();
    set_role(&mut stopped_clone, "nfs-client-clone", Some(Stopped));
    assert_eq!(
        s.stopped_container(&stopped_clone, "nfs-client"),
        Some("nfs-client-clone".into())
    );
}

#[test]
fn a_promotable_clone_stops_and_starts_with_its_target_role_over_its_primitives() {
    use Role::{Started, Stopped};
    let mut config = web();
    let db = {
        let mut r = config.resources[0].clone();
        r.id = "db".into();
        r.agent = crate::config::Agent::Ocf {
            provider: "heartbeat".into(),
            kind: "Stateful".into(),
        };
        r.meta.target_role = Some(Stopped);
        r
    };
    config.resources.push(db);
    let mut clone = config.clones[0].clone();
    clone.id = "db-clone".into();
    clone.resource = "db".into();
    clone.promotable = true;
    config.clones.push(clone);
    let view = all_online(&config);
    let now = Instant::from_millis(50_000);
    let instances = |s: &ClusterState| {
        let mut c = config.clone();
        s.apply_target_roles(&mut c);
        crate::scheduler::schedule(&c, &view, now).outcome["db-clone"]
            .nodes
            .len()
    };
    let mut s = ClusterState::new();
    assert_eq!(instances(&s), 0, "the file stops db");
    // hactl resource start db-clone (or db, or db:1: the API names the
    // clone): every instance, over the primitive's own stop.
    s.apply(1, &role("db-clone", Some(Started)), t(10)).unwrap();
    assert_eq!(instances(&s), config.nodes.len());
    s.apply(1, &role("db-clone", Some(Stopped)), t(20)).unwrap();
    assert_eq!(instances(&s), 0);
}

/// Every configured node online, with quorum, nothing known to run.
fn all_online(config: &Config) -> ClusterView {
    ClusterView {
        nodes: config
            .nodes
            .iter()
            .map(|n| NodeStatus::online(&n.name))
            .collect(),
        has_quorum: true,
        resources: Vec::new(),
    }
}
