//! The scheduler's rules on hactl's own configuration language: each test
//! names the behaviour it proves and checks what a user would see (where
//! resources end up, which actions run in which order).

use std::path::Path;

use hactl::config::{self, Config, OnFail, Role};
use hactl::scheduler::{self, ClusterView, NodeState, NodeStatus, PlannedAction, Task, Transition};
use hactl::time::Instant;

const NOW: Instant = Instant::from_millis(3_600_000);

/// A three-node cluster (node1..node3) plus `body`.
fn config(body: &str) -> Config {
    config_with("", body)
}

fn config_with(cluster: &str, body: &str) -> Config {
    let text = format!(
        "[cluster]\nname = \"t\"\n{cluster}\n[totem]\ninsecure_no_crypto_i_understand_anyone_can_join = true\n\n\
         [[node]]\nname = \"node1\"\nid = 1\naddresses = [\"10.0.0.1\"]\n\n\
         [[node]]\nname = \"node2\"\nid = 2\naddresses = [\"10.0.0.2\"]\n\n\
         [[node]]\nname = \"node3\"\nid = 3\naddresses = [\"10.0.0.3\"]\n\n{body}"
    );
    match config::parse_str(&text, Path::new("test.toml")) {
        Ok(l) => l.config,
        Err(d) => panic!("test configuration invalid: {d:#?}\n{text}"),
    }
}

fn view(c: &Config) -> ClusterView {
    ClusterView {
        nodes: c
            .nodes
            .iter()
            .map(|n| NodeStatus::online(&n.name))
            .collect(),
        has_quorum: true,
        resources: Vec::new(),
    }
}

fn running(v: &mut ClusterView, rsc: &str, node: &str) {
    let e = v.resource_mut(rsc, node);
    e.role = Role::Started;
    e.known = true;
}

fn nodes_of(t: &Transition, id: &str) -> Vec<String> {
    t.outcome
        .get(id)
        .unwrap_or_else(|| panic!("{id} not in outcome"))
        .nodes
        .iter()
        .cloned()
        .collect()
}

fn position(t: &Transition, task: Task, rsc: &str, node: &str) -> Option<usize> {
    t.actions.iter().position(|a: &PlannedAction| {
        a.task == task && a.resource.as_deref() == Some(rsc) && a.node.as_deref() == Some(node)
    })
}

fn ordered_before(t: &Transition, first: usize, then: usize) -> bool {
    // Edges point forward in the action list; follow them transitively.
    let mut reach = vec![false; t.actions.len()];
    reach[first] = true;
    for i in first..t.actions.len() {
        if reach[i] {
            for &(f, th) in &t.edges {
                if f == i {
                    reach[th] = true;
                }
            }
        }
    }
    reach[then]
}

const PRIMITIVES: &str = "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n\n[[resource]]\nid = \"b\"\nagent = \"systemd:b\"\n\n[[resource]]\nid = \"c\"\nagent = \"systemd:c\"\n";

#[test]
fn equal_scores_spread_resources_then_break_ties_by_node_name() {
    let c = config(PRIMITIVES);
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node1"]);
    assert_eq!(nodes_of(&t, "b"), ["node2"]);
    assert_eq!(nodes_of(&t, "c"), ["node3"]);
}

#[test]
fn stickiness_keeps_a_resource_in_place_against_a_lower_location_preference() {
    let body = |pref: i64| {
        format!(
            "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\nmeta = {{ resource_stickiness = 100 }}\n\n\
             [[location]]\nresource = \"a\"\nnode = \"node2\"\nscore = {pref}\n"
        )
    };
    let c = config(&body(50));
    let mut v = view(&c);
    running(&mut v, "a", "node1");
    let t = scheduler::schedule(&c, &v, NOW);
    assert_eq!(nodes_of(&t, "a"), ["node1"]);
    assert!(t.actions.is_empty(), "nothing to do: {:?}", t.actions);

    let c = config(&body(150));
    let t = scheduler::schedule(&c, &v, NOW);
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
}

#[test]
fn standby_moves_a_group_to_the_next_best_node_stopping_before_starting() {
    let c = config(
        "[[resource]]\nid = \"vip\"\nagent = \"systemd:vip\"\n\n[[resource]]\nid = \"app\"\nagent = \"systemd:app\"\n\n\
         [[group]]\nid = \"web\"\nmembers = [\"vip\", \"app\"]\n\n\
         [[location]]\nresource = \"web\"\nnode = \"node2\"\nscore = 200\n\n\
         [[location]]\nresource = \"web\"\nnode = \"node1\"\nscore = 100\n",
    );
    let mut v = view(&c);
    running(&mut v, "vip", "node2");
    running(&mut v, "app", "node2");
    v.node_mut("node2").expect("node2").standby = true;
    let t = scheduler::schedule(&c, &v, NOW);
    assert_eq!(nodes_of(&t, "web"), ["node1"]);
    assert_eq!(nodes_of(&t, "app"), ["node1"]);
    let stop_app = position(&t, Task::Stop, "app", "node2").expect("stop app");
    let stop_vip = position(&t, Task::Stop, "vip", "node2").expect("stop vip");
    let start_vip = position(&t, Task::Start, "vip", "node1").expect("start vip");
    let start_app = position(&t, Task::Start, "app", "node1").expect("start app");
    assert!(
        ordered_before(&t, stop_app, stop_vip),
        "members stop in reverse"
    );
    assert!(
        ordered_before(&t, stop_vip, start_vip),
        "stop before start when moving"
    );
    assert!(
        ordered_before(&t, start_vip, start_app),
        "members start in order"
    );
}

#[test]
fn migration_threshold_bans_a_node_after_that_many_failures() {
    let body =
        "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\nmeta = { migration_threshold = 3 }\n";
    let c = config(body);
    let fail = |count: u32| {
        let mut v = view(&c);
        running(&mut v, "a", "node1");
        let e = v.resource_mut("a", "node1");
        e.fail_count = count;
        e.last_failure = Some(NOW);
        e.failure = Some(OnFail::Restart);
        v
    };
    // Below the threshold it recovers in place.
    let t = scheduler::schedule(&c, &fail(2), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node1"]);
    assert!(
        t.summary.iter().any(|s| s.starts_with("recover a")),
        "{:?}",
        t.summary
    );
    // At the threshold the node is banned.
    let t = scheduler::schedule(&c, &fail(3), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
}

#[test]
fn failures_older_than_failure_timeout_no_longer_count() {
    let c = config(
        "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\nmeta = { migration_threshold = 1, failure_timeout = 60 }\n",
    );
    let mut v = view(&c);
    running(&mut v, "a", "node1");
    let e = v.resource_mut("a", "node1");
    e.fail_count = 1;
    e.last_failure = Some(Instant::ZERO);
    // An hour later the failure has expired: it stays.
    let t = scheduler::schedule(&c, &v, NOW);
    assert_eq!(nodes_of(&t, "a"), ["node1"]);
    // Just after the failure it is banned from node1.
    let t = scheduler::schedule(&c, &v, Instant::from_millis(30_000));
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
}

#[test]
fn a_mandatory_order_stops_then_when_first_cannot_run() {
    let mut body = String::from(PRIMITIVES);
    for n in ["node1", "node2", "node3"] {
        body.push_str(&format!(
            "\n[[location]]\nresource = \"a\"\nnode = \"{n}\"\nscore = \"-INFINITY\"\n"
        ));
    }
    body.push_str("\n[[order]]\nfirst = \"a\"\nthen = \"b\"\n");
    let c = config(&body);
    let mut v = view(&c);
    running(&mut v, "b", "node2");
    let t = scheduler::schedule(&c, &v, NOW);
    assert!(nodes_of(&t, "a").is_empty());
    assert!(nodes_of(&t, "b").is_empty(), "b cannot start after a");
    assert!(position(&t, Task::Stop, "b", "node2").is_some());
}

#[test]
fn colocations_keep_resources_together_or_apart() {
    let c = config(&format!(
        "{PRIMITIVES}\n[[location]]\nresource = \"a\"\nnode = \"node3\"\nscore = 10\n\n\
         [[colocation]]\nresource = \"b\"\nwith = \"a\"\nscore = \"INFINITY\"\n\n\
         [[colocation]]\nresource = \"c\"\nwith = \"a\"\nscore = \"-INFINITY\"\n"
    ));
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node3"]);
    assert_eq!(nodes_of(&t, "b"), ["node3"]);
    assert_ne!(nodes_of(&t, "c"), ["node3"]);
}

#[test]
fn the_dependent_of_a_colocation_pulls_its_primary_too() {
    // a prefers node1 a little, b (colocated with a) prefers node2 a lot:
    // Pacemaker's two-way colocation places a where b wants to be.
    let c = config(&format!(
        "{PRIMITIVES}\n[[location]]\nresource = \"a\"\nnode = \"node1\"\nscore = 10\n\n\
         [[location]]\nresource = \"b\"\nnode = \"node2\"\nscore = 100\n\n\
         [[colocation]]\nresource = \"b\"\nwith = \"a\"\nscore = \"INFINITY\"\n"
    ));
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
    assert_eq!(nodes_of(&t, "b"), ["node2"]);
}

#[test]
fn without_quorum_policy_stop_stops_everything_and_freeze_keeps_what_runs() {
    for (policy, expect_a, expect_b) in [
        ("stop", Vec::<&str>::new(), Vec::<&str>::new()),
        ("freeze", vec!["node1"], vec![]),
        ("ignore", vec!["node1"], vec!["node2"]),
    ] {
        let c = config_with(&format!("no_quorum_policy = \"{policy}\""), PRIMITIVES);
        let mut v = view(&c);
        v.has_quorum = false;
        running(&mut v, "a", "node1");
        let t = scheduler::schedule(&c, &v, NOW);
        assert_eq!(nodes_of(&t, "a"), expect_a, "policy {policy}");
        assert_eq!(nodes_of(&t, "b"), expect_b, "policy {policy}");
    }
}

#[test]
fn a_clone_runs_one_instance_per_node_up_to_clone_max() {
    let c = config(
        "[[resource]]\nid = \"d\"\nagent = \"systemd:d\"\n\n[[clone]]\nid = \"d-clone\"\nresource = \"d\"\n",
    );
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "d-clone"), ["node1", "node2", "node3"]);

    let c = config(
        "[[resource]]\nid = \"d\"\nagent = \"systemd:d\"\n\n[[clone]]\nid = \"d-clone\"\nresource = \"d\"\nclone_max = 2\n",
    );
    let mut v = view(&c);
    running(&mut v, "d", "node3");
    let t = scheduler::schedule(&c, &v, NOW);
    let nodes = nodes_of(&t, "d-clone");
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes.contains(&"node3".to_string()),
        "a running instance stays"
    );
}

#[test]
fn a_promotable_clone_promotes_by_promotion_score_and_nothing_without_one() {
    let c = config(
        "[[resource]]\nid = \"db\"\nagent = \"ocf:heartbeat:Stateful\"\n\n\
         [[clone]]\nid = \"db-clone\"\nresource = \"db\"\npromotable = true\n",
    );
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "db-clone").len(), 3);
    assert!(t.outcome["db-clone"].promoted.is_empty());

    // The agent reports a promotion score (the `master-db` node attribute).
    let mut v = view(&c);
    for n in ["node1", "node2", "node3"] {
        let e = v.resource_mut("db", n);
        e.role = Role::Started;
        e.known = true;
    }
    v.node_mut("node2")
        .expect("node2")
        .attributes
        .insert("master-db".into(), "10".into());
    let t = scheduler::schedule(&c, &v, NOW);
    assert_eq!(
        t.outcome["db-clone"].promoted.iter().collect::<Vec<_>>(),
        ["node2"]
    );
    assert!(
        t.summary.iter().any(|s| s.starts_with("promote db:")),
        "{:?}",
        t.summary
    );

    // Without any promotion score even a promoted instance is demoted.
    let mut v = view(&c);
    let e = v.resource_mut("db", "node2");
    e.role = Role::Promoted;
    e.known = true;
    let t = scheduler::schedule(&c, &v, NOW);
    assert!(t.outcome["db-clone"].promoted.is_empty());
}

#[test]
fn target_role_stopped_stops_a_resource() {
    let c = config(
        "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\nmeta = { target_role = \"stopped\" }\n",
    );
    let mut v = view(&c);
    running(&mut v, "a", "node1");
    let t = scheduler::schedule(&c, &v, NOW);
    assert!(nodes_of(&t, "a").is_empty());
    assert!(position(&t, Task::Stop, "a", "node1").is_some());
}

#[test]
fn a_group_member_that_cannot_run_stops_only_the_members_after_it() {
    let mut body = String::from(PRIMITIVES);
    body.push_str("\n[[group]]\nid = \"g\"\nmembers = [\"a\", \"b\", \"c\"]\n");
    for n in ["node1", "node2", "node3"] {
        body.push_str(&format!(
            "\n[[location]]\nresource = \"b\"\nnode = \"{n}\"\nscore = \"-INFINITY\"\n"
        ));
    }
    let c = config(&body);
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert_eq!(nodes_of(&t, "a"), ["node1"]);
    assert!(nodes_of(&t, "b").is_empty());
    assert!(nodes_of(&t, "c").is_empty());
}

#[test]
fn a_lost_node_is_fenced_before_its_resources_start_elsewhere() {
    let c = config(
        "[[fence_device]]\nid = \"fence\"\nkind = \"agent\"\nagent = \"fence_dummy\"\n\n\
         [[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n",
    );
    let mut v = view(&c);
    running(&mut v, "a", "node1");
    v.node_mut("node1").expect("node1").state = NodeState::Unclean;
    let t = scheduler::schedule(&c, &v, NOW);
    let fence = t
        .actions
        .iter()
        .position(|a| a.task == Task::Fence && a.node.as_deref() == Some("node1"))
        .expect("node1 is fenced");
    let start = position(&t, Task::Start, "a", "node2").expect("a starts on node2");
    assert!(ordered_before(&t, fence, start));
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
}

#[test]
fn without_fencing_the_resources_of_a_lost_node_are_recovered_elsewhere() {
    // No fence device means fencing is off: as in Pacemaker with
    // stonith-enabled=false, what ran on a lost node is taken as stopped.
    let c = config("[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n");
    let mut v = view(&c);
    running(&mut v, "a", "node1");
    v.node_mut("node1").expect("node1").state = NodeState::Unclean;
    let t = scheduler::schedule(&c, &v, NOW);
    assert!(!t.actions.iter().any(|a| a.task == Task::Fence));
    assert_eq!(nodes_of(&t, "a"), ["node2"]);
}

#[test]
fn starts_are_followed_by_their_configured_monitors() {
    let c = config(
        "[[resource]]\nid = \"a\"\nagent = \"systemd:a\"\n[[resource.op]]\nname = \"monitor\"\ninterval = \"5s\"\n",
    );
    let t = scheduler::schedule(&c, &view(&c), NOW);
    let start = position(&t, Task::Start, "a", "node1").expect("start");
    let monitor = t
        .actions
        .iter()
        .position(|a| a.task == Task::Monitor && a.interval_ms == 5_000)
        .expect("monitor");
    assert!(ordered_before(&t, start, monitor));
}

#[test]
fn a_colocation_chain_deeper_than_the_limit_is_cut_instead_of_overflowing_the_stack() {
    // Test threads have a 2 MB stack, like the daemon's worker threads.
    const CHAIN_LEN: usize = 2_000;
    let mut body = String::new();
    for i in 0..CHAIN_LEN {
        body.push_str(&format!(
            "[[resource]]\nid = \"r{i}\"\nagent = \"systemd:r{i}\"\n\n"
        ));
    }
    for i in 1..CHAIN_LEN {
        body.push_str(&format!(
            "[[colocation]]\nresource = \"r{i}\"\nwith = \"r{}\"\nscore = 100\n\n",
            i - 1
        ));
    }
    let c = config(&body);
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert!(
        t.warnings.iter().any(|w| w.contains("cut like loops")),
        "{:?}",
        t.warnings
    );
    assert_eq!(nodes_of(&t, "r0").len(), 1, "everything is still placed");
    assert_eq!(nodes_of(&t, &format!("r{}", CHAIN_LEN - 1)).len(), 1);
}

/// A chain of `len` resources, each ordered after (or colocated with) the
/// one before, whose first resource cannot run anywhere.
fn chain_with_blocked_head(len: usize, link: &str) -> Config {
    let mut body = String::new();
    for i in 0..len {
        body.push_str(&format!(
            "[[resource]]\nid = \"r{i}\"\nagent = \"systemd:r{i}\"\n\n"
        ));
    }
    for n in ["node1", "node2", "node3"] {
        body.push_str(&format!(
            "[[location]]\nresource = \"r0\"\nnode = \"{n}\"\nscore = \"-INFINITY\"\n\n"
        ));
    }
    for i in 1..len {
        let p = i - 1;
        body.push_str(&match link {
            "order" => format!("[[order]]\nfirst = \"r{p}\"\nthen = \"r{i}\"\n\n"),
            _ => format!(
                "[[colocation]]\nresource = \"r{i}\"\nwith = \"r{p}\"\nscore = \"INFINITY\"\n\n"
            ),
        });
    }
    config(&body)
}

#[test]
fn a_long_chain_of_mandatory_orders_stops_everything_after_a_blocked_head() {
    const CHAIN_LEN: usize = 1_500;
    let c = chain_with_blocked_head(CHAIN_LEN, "order");
    let mut v = view(&c);
    running(&mut v, &format!("r{}", CHAIN_LEN - 1), "node1");
    let t = scheduler::schedule(&c, &v, NOW);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert!(nodes_of(&t, &format!("r{}", CHAIN_LEN - 1)).is_empty());
    assert!(position(&t, Task::Stop, &format!("r{}", CHAIN_LEN - 1), "node1").is_some());
}

#[test]
fn a_long_chain_of_mandatory_colocations_cannot_start_without_its_head() {
    const CHAIN_LEN: usize = 1_500;
    let c = chain_with_blocked_head(CHAIN_LEN, "colocation");
    let t = scheduler::schedule(&c, &view(&c), NOW);
    assert!(nodes_of(&t, "r1").is_empty());
    assert!(nodes_of(&t, &format!("r{}", CHAIN_LEN - 1)).is_empty());
}
