//! The controller's logic against its own inputs (no daemon): the real
//! scheduler and replicated state, commands applied as totem would deliver
//! them. tests/controller.rs runs it in real daemons.

use super::*;
use crate::config::parse_str;
use crate::state::ClusterState;

const CONFIG: &str = r#"
[cluster]
name = "c"
[totem]
authkey = "/nonexistent"
[[node]]
name = "n1"
id = 1
addresses = ["10.0.0.1"]
[[node]]
name = "n2"
id = 2
addresses = ["10.0.0.2"]
[[node]]
name = "n3"
id = 3
addresses = ["10.0.0.3"]

[[resource]]
id = "web"
agent = "ocf:test:Marker"

[[location]]
resource = "web"
node = "n2"
score = 100
"#;

fn config() -> Config {
    parse_str(CONFIG, std::path::Path::new("c.toml"))
        .expect("valid")
        .config
}

fn set(ids: &[NodeId]) -> NodeSet {
    let mut s = NodeSet::EMPTY;
    ids.iter().for_each(|i| s.insert(*i));
    s
}

fn outputs(c: &mut Controller) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// Applies the operation records in `out` back to `c`, as the replicated
/// state does once totem delivers them.
fn deliver_records(c: &mut Controller, out: &[Output]) {
    for o in out {
        if let Output::Submit(cmd @ Command::OpResult(_)) = o {
            c.handle_applied(&config(), cmd);
        }
    }
}

/// The DC (node 1) asks node 2 to start web, in `transition`.
fn start_web_on_2(transition: u64) -> Execute {
    Execute {
        dc: 1,
        transition,
        action: 0,
        node: 2,
        resource: "web".into(),
        op: OpName::Start,
        interval_ms: 0,
        timeout_ms: 20_000,
    }
}

fn executes(out: &[Output]) -> Vec<Execute> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(b) => match Message::from_bytes(b) {
                Ok(Message::Execute(e)) => Some(e),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A cluster seen by one controller: the replicated state every node holds.
struct World {
    config: Config,
    state: ClusterState,
    clock: u64,
}

impl World {
    fn new() -> World {
        World {
            config: config(),
            state: ClusterState::new(),
            clock: 1_000,
        }
    }

    fn apply(&mut self, origin: NodeId, cmd: Command, ctls: &mut [&mut Controller]) {
        self.clock += 1;
        self.state
            .apply(origin, &cmd, WallMs(self.clock))
            .expect("applied");
        for c in ctls.iter_mut() {
            c.handle_applied(&self.config, &cmd);
        }
    }

    fn result(&mut self, node: NodeId, op: OpName, rc: i32) -> Command {
        Command::OpResult(OpRecord {
            resource: "web".into(),
            node,
            op,
            interval_ms: 0,
            rc,
            at: WallMs(self.clock),
            exit_reason: String::new(),
        })
    }

    /// The same cluster with fencing on: a libvirt fence device `fN` in
    /// the fence levels of each node N of `nodes`.
    fn fencing(nodes: &[NodeId]) -> World {
        let mut text = CONFIG.to_string();
        for n in nodes {
            text = text.replace(
                "[[resource]]",
                &format!("[[fence_device]]\nid = \"f{n}\"\nkind = \"libvirt\"\nuri = \"qemu:///system\"\ndomain = \"n{n}\"\n\n[[resource]]"),
            );
            let addr = format!("addresses = [\"10.0.0.{n}\"]");
            text = text.replace(&addr, &format!("{addr}\nfence_levels = [[\"f{n}\"]]"));
        }
        World {
            config: parse_str(&text, std::path::Path::new("c.toml"))
                .expect("valid")
                .config,
            ..World::new()
        }
    }

    /// Every node of `nodes` answered its probe of web: not running.
    fn probed(&mut self, nodes: &[NodeId]) {
        for &n in nodes {
            let cmd = self.result(n, OpName::Monitor, 7);
            self.apply(n, cmd, &mut []);
        }
    }

    fn tick(&self, c: &mut Controller) -> Vec<Output> {
        c.tick(
            &self.config,
            &self.state,
            WallMs(self.clock),
            Instant::from_millis(self.clock),
        );
        outputs(c)
    }
}

#[test]
fn the_dc_is_the_lowest_member_of_a_settled_ring() {
    let mut c = Controller::new(2);
    assert_eq!(c.dc(), None);
    c.handle_ring(set(&[2, 3]), false, true, false);
    assert_eq!(c.dc(), None, "not before the ring settled");
    c.handle_ring(set(&[2, 3]), true, true, false);
    assert_eq!(c.dc(), Some(2));
    assert!(c.is_dc());
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    assert_eq!(c.dc(), Some(1));
    assert!(!c.is_dc());
}

#[test]
fn a_node_forgets_its_history_once_and_probes_every_resource() {
    let mut w = World::new();
    let mut c = Controller::new(3);
    c.handle_state_synced();
    c.handle_ring(set(&[3]), true, false, false);
    assert!(outputs(&mut c).is_empty(), "not alone without quorum");
    c.handle_ring(set(&[1, 2, 3]), false, true, false);
    assert!(outputs(&mut c).is_empty(), "not before the ring settled");
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    let out = outputs(&mut c);
    let cleanup = Command::Cleanup {
        resource: None,
        node: Some(3),
    };
    assert_eq!(out, vec![Output::Submit(cleanup.clone())]);
    c.handle_state_synced();
    c.handle_ring(set(&[2, 3]), true, true, false);
    assert!(outputs(&mut c).is_empty(), "only the first time");
    // The cleanup, delivered back: probe everything here.
    w.apply(3, cleanup, &mut [&mut c]);
    let out = outputs(&mut c);
    assert!(
        out.contains(&Output::ForgetFailures { resource: None }),
        "{out:?}"
    );
    assert!(
        out.contains(&Output::Run {
            resource: "web".into(),
            op: OpName::Monitor,
            interval_ms: 0,
            timeout_ms: w.config.cluster.op_defaults.timeout_ms,
        }),
        "{out:?}"
    );
    // Another node's cleanup is not this node's business.
    w.apply(
        1,
        Command::Cleanup {
            resource: None,
            node: Some(1),
        },
        &mut [&mut c],
    );
    assert!(
        !outputs(&mut c)
            .iter()
            .any(|o| matches!(o, Output::Run { .. }))
    );
}

#[test]
fn the_dc_places_nothing_before_every_member_answered_its_probes_then_starts_once() {
    let mut w = World::new();
    let mut dc = Controller::new(1);
    let mut n2 = Controller::new(2);
    for c in [&mut dc, &mut n2] {
        c.handle_ring(set(&[1, 2, 3]), true, true, false);
        // The start-up cleanup of its own history.
        outputs(c);
    }
    assert!(executes(&w.tick(&mut dc)).is_empty(), "no probes yet");
    assert_eq!(dc.waiting_for_probe(), Some((1, "web")));
    for n in [1, 2] {
        let cmd = w.result(n, OpName::Monitor, 7);
        w.apply(n, cmd, &mut [&mut dc, &mut n2]);
    }
    assert!(
        executes(&w.tick(&mut dc)).is_empty(),
        "node 3 has not answered"
    );
    assert_eq!(dc.waiting_for_probe(), Some((3, "web")));
    let cmd = w.result(3, OpName::Monitor, 7);
    w.apply(3, cmd, &mut [&mut dc, &mut n2]);
    let ex = executes(&w.tick(&mut dc));
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!((ex[0].node, ex[0].op), (2, OpName::Start), "location n2");
    assert!(!dc.is_idle());
    // Nothing is dispatched twice while it runs.
    assert!(executes(&w.tick(&mut dc)).is_empty());
    // Node 2 records it pending, runs it and records the result.
    n2.handle_execute(1, &ex[0], WallMs(w.clock));
    let out = outputs(&mut n2);
    let Output::Submit(pending) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(matches!(pending, Command::OpResult(r) if r.rc == RC_PENDING));
    assert!(matches!(
        &out[1],
        Output::Run {
            op: OpName::Start,
            ..
        }
    ));
    w.apply(2, pending.clone(), &mut [&mut dc, &mut n2]);
    let done = w.result(2, OpName::Start, 0);
    w.apply(2, done, &mut [&mut dc, &mut n2]);
    // The transition is complete; the next computation has nothing to do.
    w.tick(&mut dc);
    w.tick(&mut dc);
    assert!(dc.is_idle(), "the DC settled");
    w.tick(&mut n2);
    assert!(n2.is_idle(), "every node can tell the cluster settled");
    assert_eq!(dc.target("web"), Some(Some("n2")));
}

#[test]
fn an_execute_from_anyone_but_the_dc_or_for_another_node_is_ignored() {
    let mut c = Controller::new(2);
    c.handle_ring(set(&[1, 2]), true, true, false);
    outputs(&mut c);
    let e = Execute {
        dc: 1,
        transition: 1,
        action: 0,
        node: 2,
        resource: "web".into(),
        op: OpName::Start,
        interval_ms: 0,
        timeout_ms: 20_000,
    };
    c.handle_execute(3, &Execute { dc: 3, ..e.clone() }, WallMs(1));
    c.handle_execute(
        1,
        &Execute {
            node: 3,
            ..e.clone()
        },
        WallMs(1),
    );
    assert!(outputs(&mut c).is_empty());
    c.handle_execute(1, &e, WallMs(1));
    assert_eq!(outputs(&mut c).len(), 2);
}

#[test]
fn a_start_in_flight_is_active_where_it_runs_and_is_not_started_elsewhere() {
    // A DC that takes over while node 3 runs a start (recorded pending).
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let pending = w.result(3, OpName::Start, RC_PENDING);
    w.apply(3, pending, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    let ex = executes(&w.tick(&mut dc));
    assert!(
        ex.iter().all(|e| !(e.op == OpName::Start && e.node != 3)),
        "started elsewhere while a start runs on node 3: {ex:?}"
    );
    assert!(!dc.is_idle());
}

#[test]
fn a_failed_action_ends_the_transition_and_the_dc_computes_again() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    let ex = executes(&w.tick(&mut dc));
    assert_eq!((ex[0].node, ex[0].op), (2, OpName::Start));
    // The start fails on node 2 (and the executor bans it there).
    let failed = w.result(2, OpName::Start, 1);
    w.apply(2, failed, &mut [&mut dc]);
    w.apply(
        2,
        Command::FailCountSet {
            resource: "web".into(),
            node: 2,
            count: crate::scheduler::view::FAIL_COUNT_INFINITY,
        },
        &mut [&mut dc],
    );
    let out = w.tick(&mut dc);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Note(n) if n.contains("failed"))),
        "{out:?}"
    );
    // Recovery: stop what the failed start may have left on node 2, then
    // start it on another node.
    let ex = executes(&out);
    assert!(
        ex.iter().any(|e| e.op == OpName::Stop && e.node == 2),
        "{ex:?}"
    );
}

#[test]
fn a_resource_with_target_role_stopped_is_stopped_and_starts_again_once_forgotten() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let started = w.result(2, OpName::Start, 0);
    w.apply(2, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    w.tick(&mut dc);
    assert!(dc.is_idle(), "web runs where it should");

    // hactl resource stop web: stopped on node 2, started nowhere.
    let role = |role| Command::SetTargetRole {
        resource: "web".into(),
        role,
    };
    w.apply(1, role(Some(Role::Stopped)), &mut [&mut dc]);
    let ex = executes(&w.tick(&mut dc));
    assert!(
        ex.iter().any(|e| e.op == OpName::Stop && e.node == 2),
        "{ex:?}"
    );
    assert!(ex.iter().all(|e| e.op != OpName::Start), "{ex:?}");
    let stopped = w.result(2, OpName::Stop, 0);
    w.apply(2, stopped, &mut [&mut dc]);
    for _ in 0..5 {
        let ex = executes(&w.tick(&mut dc));
        assert!(ex.iter().all(|e| e.op != OpName::Start), "{ex:?}");
    }
    assert!(dc.is_idle(), "stopped and settled");
    assert!(!Controller::has_active_resources(&w.config, &w.state, 2));

    // Forgotten (the configuration has no target role): started on node 2
    // again.
    w.apply(1, role(None), &mut [&mut dc]);
    let ex = executes(&w.tick(&mut dc));
    assert!(
        ex.iter().any(|e| e.op == OpName::Start && e.node == 2),
        "{ex:?}"
    );
}

#[test]
fn a_node_that_leaves_is_unclean_with_fencing_unless_it_shut_down_cleanly() {
    let mut c = Controller::new(1);
    c.handle_ring(set(&[1, 2, 3]), true, true, true);
    c.handle_leaving(3);
    c.handle_ring(set(&[1]), true, false, true);
    assert_eq!(c.ring_view().unclean, set(&[2]), "3 left cleanly");
    c.handle_fenced(2);
    assert_eq!(c.ring_view().unclean, NodeSet::EMPTY);
    // Without fencing a node that left is simply offline.
    let mut d = Controller::new(1);
    d.handle_ring(set(&[1, 2]), true, true, false);
    d.handle_ring(set(&[1]), true, false, false);
    assert_eq!(d.ring_view().unclean, NodeSet::EMPTY);
}

#[test]
fn a_shutting_down_node_has_its_resources_moved_away() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let started = w.result(2, OpName::Start, 0);
    w.apply(2, started, &mut []);
    assert!(Controller::has_active_resources(&w.config, &w.state, 2));
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    w.tick(&mut dc);
    assert!(dc.is_idle(), "web runs where it should");
    dc.handle_leaving(2);
    let ex = executes(&w.tick(&mut dc));
    assert!(
        ex.iter().any(|e| e.op == OpName::Stop && e.node == 2),
        "{ex:?}"
    );
}

#[test]
fn a_node_that_restarts_within_one_ring_change_is_no_longer_shutting_down() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    dc.handle_leaving(2);
    w.tick(&mut dc);
    assert_ne!(dc.target("web"), Some(Some("n2")), "n2 is shutting down");
    assert_eq!(dc.ring_view().shutting_down, set(&[2]));
    // It stopped and came back before the ring noticed it leave.
    dc.handle_joined(set(&[2]));
    assert_eq!(dc.ring_view().shutting_down, NodeSet::EMPTY);
}

#[test]
fn with_fencing_a_lost_node_is_fenced_before_its_resources_start_elsewhere() {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    // web runs on node 3 (say node 2 was in standby when it started).
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    w.tick(&mut dc);
    // Node 3 is lost.
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = w.tick(&mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");
    assert!(
        executes(&out).iter().all(|e| e.op != OpName::Start),
        "started before node 3 was fenced: {out:?}"
    );
    // Fenced: its resources are stopped for good, web starts elsewhere.
    let fenced = Command::Fenced(crate::state::FenceRecord {
        at: WallMs(w.clock),
        target: 3,
        device: "f3".into(),
        action: crate::state::FenceAction::Reboot,
        error: None,
        executor: 1,
    });
    dc.handle_fenced(3);
    w.apply(1, fenced, &mut [&mut dc]);
    let mut started_on = None;
    for _ in 0..3 {
        if let Some(e) = executes(&w.tick(&mut dc))
            .into_iter()
            .find(|e| e.op == OpName::Start)
        {
            started_on = Some(e.node);
        }
    }
    assert_eq!(
        started_on,
        Some(2),
        "web starts on node 2 once node 3 is fenced"
    );
}

#[test]
fn at_start_the_dc_waits_a_moment_for_configured_nodes_that_are_missing() {
    let mut w = World::new();
    w.probed(&[1, 2]);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2]), true, true, false);
    assert!(
        executes(&w.tick(&mut dc)).is_empty(),
        "node 3 may still come"
    );
    w.clock += STARTUP_WAIT.as_millis() as u64 - 10;
    assert!(executes(&w.tick(&mut dc)).is_empty());
    w.clock += 20;
    let ex = executes(&w.tick(&mut dc));
    assert_eq!(ex.len(), 1, "placed once the wait is over: {ex:?}");
}

/// Found by tests/cluster_sim.rs (seed 278): a start that hung past the
/// DC's deadline, then the same start asked for again by a later
/// transition; the first one's result replaced the second one's pending
/// record, the DC saw the resource stopped there and started it on
/// another node while the queued start still ran here.
#[test]
fn a_result_with_the_same_operation_still_queued_records_it_pending_again() {
    let w = World::new();
    let mut c = Controller::new(2);
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    w.tick(&mut c);
    outputs(&mut c);
    assert!(!c.has_local_ops());
    let start = start_web_on_2;
    c.handle_execute(1, &start(1), WallMs(1));
    c.handle_execute(1, &start(2), WallMs(2));
    let mut submitted = outputs(&mut c);
    assert!(c.has_local_ops());
    let pending = |out: &[Output]| {
        out.iter().any(|o| {
            matches!(o, Output::Submit(Command::OpResult(r))
                if r.op == OpName::Start && r.rc == RC_PENDING)
        })
    };
    // The first (hung) start ends: its result, then the second is pending.
    c.handle_op_result("web", OpName::Start, 0, 1, "timed out", true, 1, WallMs(3));
    let out = outputs(&mut c);
    submitted.extend(out.iter().cloned());
    assert!(
        matches!(&out[0], Output::Submit(Command::OpResult(r)) if r.rc == 1),
        "{out:?}"
    );
    assert!(
        pending(&out),
        "the queued start is recorded pending again: {out:?}"
    );
    assert!(c.has_local_ops());
    c.handle_op_result("web", OpName::Start, 0, 0, "", false, 0, WallMs(4));
    let out = outputs(&mut c);
    assert!(!pending(&out), "{out:?}");
    assert!(c.has_local_ops(), "its records are not applied yet");
    submitted.extend(out);
    deliver_records(&mut c, &submitted);
    assert!(!c.has_local_ops());
}

/// Found by tests/cluster_sim.rs (long seed 97751): a start ended while the
/// ring was re-forming, so neither its pending record nor its result had
/// been applied; the node shut down then, saw nothing active, and left with
/// the resource running where nobody knew, and it started elsewhere too.
#[test]
fn a_node_has_local_operations_until_their_records_are_applied() {
    let w = World::new();
    let mut c = Controller::new(2);
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    let probes = outputs(&mut c);
    w.tick(&mut c);
    deliver_records(&mut c, &probes);
    outputs(&mut c);
    let start = start_web_on_2(1);
    c.handle_execute(1, &start, WallMs(1));
    let pending = outputs(&mut c);
    c.handle_op_result("web", OpName::Start, 0, 0, "", false, 0, WallMs(2));
    let result = outputs(&mut c);
    assert!(
        c.has_local_ops(),
        "the start ended but nobody knows yet: the node must not leave"
    );
    deliver_records(&mut c, &pending);
    assert!(c.has_local_ops(), "the result is not applied yet");
    // A refused record counts as answered (every node refuses it alike).
    for o in &result {
        if let Output::Submit(cmd @ Command::OpResult(_)) = o {
            c.handle_refused(cmd);
        }
    }
    assert!(!c.has_local_ops());
}

/// Found by tests/cluster_sim.rs (seed 269): a cleanup erased the pending
/// record of a stop that still ran on a node shutting down; the node left
/// the ring while the resource ran, and it started elsewhere too.
#[test]
fn probes_after_a_cleanup_are_local_operations_until_they_answer() {
    let mut w = World::new();
    let mut c = Controller::new(2);
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    w.apply(
        1,
        Command::Cleanup {
            resource: None,
            node: None,
        },
        &mut [&mut c],
    );
    outputs(&mut c);
    assert!(c.has_local_ops(), "the probe runs");
    c.handle_op_result("web", OpName::Monitor, 0, 0, "", false, 0, WallMs(5));
    let out = outputs(&mut c);
    deliver_records(&mut c, &out);
    assert!(!c.has_local_ops());
    // With a start still running here, a cleanup records it pending again
    // (long seed 3398).
    let start = start_web_on_2(1);
    c.handle_execute(1, &start, WallMs(6));
    outputs(&mut c);
    w.apply(
        1,
        Command::Cleanup {
            resource: None,
            node: None,
        },
        &mut [&mut c],
    );
    let out = w.tick(&mut c);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Submit(Command::OpResult(r))
            if r.op == OpName::Start && r.rc == RC_PENDING)),
        "{out:?}"
    );
}

/// Found by tests/cluster_sim.rs (seed 149): node 3 ran web and was cut
/// off; node 1 restarted and became the DC of the majority without ever
/// seeing node 3 leave. It must still fence node 3 before web starts
/// elsewhere (its record says web runs there and nothing fenced it since).
#[test]
fn a_new_dc_fences_a_lost_node_it_never_saw_leave_before_starting_its_resources() {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    // A new DC in a ring without node 3: it never saw node 3 leave.
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2]), true, true, true);
    // (After the start-up wait for the missing node.)
    assert!(
        w.tick(&mut dc)
            .iter()
            .all(|o| !matches!(o, Output::Fence { .. }))
    );
    w.clock += STARTUP_WAIT.as_millis() as u64 + 1;
    let out = w.tick(&mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");
    assert!(
        executes(&out).iter().all(|e| e.op != OpName::Start),
        "started before node 3 was fenced: {out:?}"
    );
    // Without fencing configured the node counts as offline, as before.
    let mut nofence = Controller::new(1);
    nofence.handle_ring(set(&[1, 2]), true, true, false);
    w.tick(&mut nofence);
    w.clock += STARTUP_WAIT.as_millis() as u64 + 1;
    let out = w.tick(&mut nofence);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Fence { .. })),
        "{out:?}"
    );
    // Once fenced, web starts elsewhere.
    let fenced = Command::Fenced(crate::state::FenceRecord {
        at: WallMs(w.clock + 1),
        target: 3,
        device: "f3".into(),
        action: crate::state::FenceAction::Reboot,
        error: None,
        executor: 1,
    });
    w.apply(1, fenced, &mut [&mut dc]);
    let mut started_on = None;
    for _ in 0..3 {
        if let Some(e) = executes(&w.tick(&mut dc))
            .into_iter()
            .find(|e| e.op == OpName::Start)
        {
            started_on = Some(e.node);
        }
    }
    assert_eq!(
        started_on,
        Some(2),
        "web starts on node 2 once node 3 is fenced"
    );
}

/// Found by tests/cluster_sim.rs (seeds 380, 750, 813): node 3 had two
/// stops and a start of web queued (a hung start, a DC that changed); the
/// result of the first stop completed the DC's stop step, and the DC
/// started web on node 2 while the queued start was still to run on
/// node 3. A start is held back while web is pending on another member.
#[test]
fn a_start_is_held_back_while_the_resource_is_pending_on_another_member() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, false);
    // web prefers node 2: it moves (stop on 3, then start on 2).
    let out = w.tick(&mut dc);
    let stops: Vec<NodeId> = executes(&out)
        .iter()
        .filter(|e| e.op == OpName::Stop)
        .map(|e| e.node)
        .collect();
    assert_eq!(stops, vec![3], "{out:?}");
    // Node 3 records a start still queued there, then the stop's result.
    let pending = w.result(3, OpName::Start, RC_PENDING);
    w.apply(3, pending, &mut [&mut dc]);
    let stopped = w.result(3, OpName::Stop, 0);
    w.apply(3, stopped, &mut [&mut dc]);
    for _ in 0..3 {
        let out = w.tick(&mut dc);
        assert!(
            executes(&out).iter().all(|e| e.op != OpName::Start),
            "web started while a start of it waits on node 3: {out:?}"
        );
    }
}

/// Found by tests/cluster_sim.rs (seed 482): node 1 restarted and became
/// the DC after node 3 announced its shutdown; it never heard of it and
/// kept resources on node 3, which then could not leave.
#[test]
fn a_node_shutting_down_announces_it_again_to_nodes_that_join() {
    let leaving = Output::Broadcast(Message::leaving_bytes());
    let mut c = Controller::new(3);
    c.handle_ring(set(&[2, 3]), true, true, true);
    c.handle_joined(set(&[1]));
    assert!(!outputs(&mut c).contains(&leaving), "not shutting down");
    c.begin_shutdown();
    assert!(outputs(&mut c).contains(&leaving));
    c.handle_joined(NodeSet::EMPTY);
    assert!(!outputs(&mut c).contains(&leaving), "nobody new");
    c.handle_joined(set(&[1]));
    assert!(outputs(&mut c).contains(&leaving), "node 1 hears it too");
}

/// Found by tests/cluster_sim.rs (seed 268): a stop failed on the DC's
/// own node; the scheduler asked to fence it and the DC fenced itself,
/// then did it again after every restart (its history still said so).
#[test]
fn the_dc_does_not_fence_itself() {
    let mut w = World::fencing(&[1]);
    w.probed(&[1, 2, 3]);
    let started = w.result(1, OpName::Start, 0);
    w.apply(1, started, &mut []);
    let failed = w.result(1, OpName::Stop, 1);
    w.apply(1, failed, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    outputs(&mut dc);
    for _ in 0..5 {
        let out = w.tick(&mut dc);
        assert!(
            !out.contains(&Output::Fence { target: 1 }),
            "the DC fences itself: {out:?}"
        );
    }
}

/// Long seed 27173: the pending record must be handed to totem before the
/// node's Sync of a ring installed in the same turn, so the driver takes it
/// at once; the operation itself stays queued for the turn's end.
#[test]
fn take_submits_hands_over_the_pending_record_and_keeps_the_run() {
    let mut c = Controller::new(2);
    c.handle_ring(set(&[1, 2, 3]), true, true, false);
    outputs(&mut c);
    let start = start_web_on_2(1);
    c.handle_execute(1, &start, WallMs(1));
    let submits = c.take_submits();
    assert!(
        matches!(&submits[..], [Command::OpResult(r)] if r.op == OpName::Start && r.rc == RC_PENDING),
        "{submits:?}"
    );
    let rest = outputs(&mut c);
    assert!(
        rest.iter().any(|o| matches!(
            o,
            Output::Run {
                op: OpName::Start,
                ..
            }
        )),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|o| matches!(o, Output::Submit(_))),
        "{rest:?}"
    );
}

/// The probes (monitor, interval 0) among `out`, by resource.
fn probes(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Run {
                resource,
                op: OpName::Monitor,
                interval_ms: 0,
                ..
            } => Some(resource.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_resource_added_to_the_configuration_is_probed_on_every_node_once() {
    let mut w = World::new();
    w.probed(&[1, 2, 3]);
    let mut ctls = [Controller::new(1), Controller::new(2)];
    for c in &mut ctls {
        c.handle_ring(set(&[1, 2, 3]), true, true, false);
        let out = w.tick(c);
        assert!(probes(&out).is_empty(), "nothing new: {out:?}");
    }
    // hactl config apply adds "extra": every node probes it, once.
    let mut more = w.config.clone();
    let mut extra = more.resources[0].clone();
    extra.id = "extra".into();
    more.resources.push(extra);
    w.config = more;
    for c in &mut ctls {
        assert_eq!(probes(&w.tick(c)), ["extra"]);
        assert!(probes(&w.tick(c)).is_empty(), "probed twice");
    }
}

fn fence_record(w: &World, target: NodeId, error: Option<&str>) -> Command {
    fence_record_by(w, 1, target, error)
}

/// A `Fenced` record of node `executor`'s fencing of `target`.
fn fence_record_by(w: &World, executor: NodeId, target: NodeId, error: Option<&str>) -> Command {
    Command::Fenced(crate::state::FenceRecord {
        at: WallMs(w.clock),
        target,
        device: format!("f{target}"),
        action: crate::state::FenceAction::Reboot,
        error: error.map(str::to_string),
        executor,
    })
}

/// Ticks the DC a few times; the outputs of every tick.
fn ticks(w: &World, dc: &mut Controller) -> Vec<Output> {
    (0..3).flat_map(|_| w.tick(dc)).collect()
}

/// `hactl fence node3` while node 3 is in the ring: the fencing's record is
/// applied before the ring notices node 3 gone. Its leave is the fencing's
/// outcome: clean, not a reason to fence it a second time; web starts on a
/// survivor at once. Once node 3 is back, losing it again is unclean again.
#[test]
fn a_node_fenced_while_in_the_ring_leaves_cleanly_and_is_not_fenced_again() {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    w.tick(&mut dc);

    let fenced = fence_record(&w, 3, None);
    dc.handle_fenced(3);
    w.apply(1, fenced, &mut [&mut dc]);
    assert_eq!(dc.ring_view().unclean, NodeSet::EMPTY);
    dc.handle_ring(set(&[1, 2]), true, true, true);
    assert_eq!(
        dc.ring_view().unclean,
        NodeSet::EMPTY,
        "node 3 left because it was fenced: clean"
    );
    let out = ticks(&w, &mut dc);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Fence { .. })),
        "node 3 fenced a second time: {out:?}"
    );
    assert!(
        executes(&out)
            .iter()
            .any(|e| e.op == OpName::Start && e.node == 2),
        "web starts on node 2: {out:?}"
    );

    // Node 3 rebooted and joined again; lost again, it is unclean again.
    dc.handle_joined(set(&[3]));
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    dc.handle_ring(set(&[1, 2]), true, true, true);
    assert_eq!(dc.ring_view().unclean, set(&[3]));
}

/// `hactl fence node3` on the DC, and node 3 dies of it before the record
/// is applied (the ring notices first): the transition's fencing of node 3
/// awaits the operator's outcome instead of running the devices again; the
/// record completes it. A failed operator fencing leaves the DC to fence.
#[test]
fn the_dc_awaits_an_operator_fencing_in_flight_instead_of_fencing_twice() {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    w.tick(&mut dc);

    dc.announce_fencing(3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(
        !out.contains(&Output::Fence { target: 3 }),
        "fenced while the operator's fencing runs: {out:?}"
    );
    assert!(
        executes(&out).iter().all(|e| e.op != OpName::Start),
        "started before node 3 was fenced: {out:?}"
    );
    let fenced = fence_record(&w, 3, None);
    dc.handle_fenced(3);
    w.apply(1, fenced, &mut [&mut dc]);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    assert!(
        executes(&out)
            .iter()
            .any(|e| e.op == OpName::Start && e.node == 2),
        "web starts on node 2 once the operator's fencing is recorded: {out:?}"
    );

    // Another time, the operator's fencing fails: the DC fences itself.
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    w.tick(&mut dc);
    dc.announce_fencing(3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    ticks(&w, &mut dc);
    let failed = fence_record(&w, 3, Some("f3: timeout"));
    w.apply(1, failed, &mut [&mut dc]);
    let out = ticks(&w, &mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");
}

/// The DC fenced lost node 3, but its record comes late (the DC's ring was
/// busy): node 3 had rebooted and joined again before. The record is about
/// its earlier life: losing the node that runs now is unclean, as ever.
#[test]
fn a_fencing_record_that_comes_after_the_node_rejoined_does_not_make_its_next_leave_clean() {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    w.tick(&mut dc);
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = w.tick(&mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");
    let late = fence_record(&w, 3, None);
    // Node 3 boots and joins again, 20 s later; then the record applies.
    w.clock += 20_000;
    w.tick(&mut dc);
    dc.handle_joined(set(&[3]));
    dc.handle_ring(set(&[1, 2, 3]), true, true, true);
    dc.handle_fenced(3);
    w.apply(1, late, &mut [&mut dc]);
    dc.handle_ring(set(&[1, 2]), true, true, true);
    assert_eq!(
        dc.ring_view().unclean,
        set(&[3]),
        "the rebooted node 3 was lost: unclean"
    );
}

/// Node 3 runs web; the DC (node 1) and node 2 see a settled ring of all
/// three.
fn web_on_node3_with_fencing() -> (World, Controller, Controller) {
    let mut w = World::fencing(&[3]);
    w.probed(&[1, 2, 3]);
    let started = w.result(3, OpName::Start, 0);
    w.apply(3, started, &mut []);
    let mut dc = Controller::new(1);
    let mut two = Controller::new(2);
    for c in [&mut dc, &mut two] {
        c.handle_ring(set(&[1, 2, 3]), true, true, true);
        w.tick(c);
    }
    (w, dc, two)
}

/// The totem payloads among `out`.
fn broadcasts(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn operator_fences(out: &[Output]) -> Vec<NodeId> {
    out.iter()
        .filter_map(|o| match o {
            Output::OperatorFence { target } => Some(*target),
            _ => None,
        })
        .collect()
}

/// `hactl fence node3` on node 2 (not the DC): node 2 announces it and
/// starts the devices only once the announcement came back; the DC, which
/// delivered it first (agreed order), sees node 3 leave before the record
/// is applied and does not fence node 3 a second time: it awaits node 2's
/// record, then starts web on a survivor.
#[test]
fn a_dc_awaits_the_fencing_a_non_dc_node_announced_instead_of_fencing_twice() {
    let (mut w, mut dc, mut two) = web_on_node3_with_fencing();
    let now = Instant::from_millis(w.clock);
    two.announce_fencing(3, now);
    let out = outputs(&mut two);
    assert_eq!(broadcasts(&out), [Message::fencing_bytes(3)], "{out:?}");
    assert!(
        operator_fences(&out).is_empty(),
        "the devices run before the announcement came back: {out:?}"
    );
    assert!(operator_fences(&w.tick(&mut two)).is_empty());
    // Delivered in agreed order: to the DC, and back to node 2.
    let Ok(Message::Fencing { target }) = Message::from_bytes(&broadcasts(&out)[0]) else {
        panic!("not a fencing announcement: {out:?}");
    };
    dc.handle_fencing(2, target, now);
    assert!(outputs(&mut dc).is_empty(), "the DC acted on it");
    two.handle_fencing(2, target, now);
    assert_eq!(operator_fences(&outputs(&mut two)), [3]);
    two.handle_fencing(2, target, now);
    assert!(
        operator_fences(&outputs(&mut two)).is_empty(),
        "one fencing per announcement"
    );

    // Node 3 dies of it; the ring notices before the record is applied.
    dc.handle_ring(set(&[1, 2]), true, true, true);
    assert_eq!(dc.ring_view().unclean, set(&[3]));
    let out = ticks(&w, &mut dc);
    assert!(
        !out.contains(&Output::Fence { target: 3 }),
        "the DC fenced node 3 while node 2 fences it: {out:?}"
    );
    assert!(
        executes(&out).iter().all(|e| e.op != OpName::Start),
        "started before node 3 was fenced: {out:?}"
    );
    // Later, still within the deadline: still waiting.
    w.clock += FENCE_RESULT_TIMEOUT.as_millis() as u64 / 2;
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    let fenced = fence_record_by(&w, 2, 3, None);
    dc.handle_fenced(3);
    w.apply(2, fenced, &mut [&mut dc]);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    assert!(
        executes(&out)
            .iter()
            .any(|e| e.op == OpName::Start && e.node == 2),
        "web starts on node 2 once node 2's fencing is recorded: {out:?}"
    );
}

/// The same announcement, but node 2, which fences node 3, leaves the ring
/// (or restarts) before its record comes: its fencing died with it, and
/// the DC fences node 3 itself. Never waits for nothing.
#[test]
fn the_dc_fences_the_node_itself_once_the_node_that_announced_its_fencing_left() {
    // Node 2 leaves with node 3 (quorum from elsewhere, e.g. a quorum
    // device: the DC stays quorate).
    let (w, mut dc, _) = web_on_node3_with_fencing();
    dc.handle_fencing(2, 3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    dc.handle_ring(set(&[1]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(
        out.contains(&Output::Fence { target: 3 }),
        "node 2 left: the DC must fence node 3 itself: {out:?}"
    );

    // Node 2 left first, then node 3: the announcement is no longer in
    // force when the DC must fence node 3.
    let (w, mut dc, _) = web_on_node3_with_fencing();
    dc.handle_fencing(2, 3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 3]), true, true, true);
    w.tick(&mut dc);
    dc.handle_ring(set(&[1]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");

    // Node 2 restarted within one ring change (it left and joined again
    // at once): the ring's members are the same, its fencing is gone.
    let (w, mut dc, _) = web_on_node3_with_fencing();
    dc.handle_fencing(2, 3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    dc.handle_joined(set(&[2]));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(
        out.contains(&Output::Fence { target: 3 }),
        "node 2 restarted: the DC must fence node 3 itself: {out:?}"
    );
}

/// The same announcement, but no record comes within the fencing deadline
/// (node 2 stays, its devices hang): the DC fences node 3 itself then, not
/// earlier.
#[test]
fn the_dc_fences_the_node_itself_when_the_announced_fencing_records_nothing_in_time() {
    let (mut w, mut dc, _) = web_on_node3_with_fencing();
    let announced = w.clock;
    dc.handle_fencing(2, 3, Instant::from_millis(announced));
    w.clock += 1_000;
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    w.clock = announced + FENCE_RESULT_TIMEOUT.as_millis() as u64 - 1;
    let out = ticks(&w, &mut dc);
    assert!(
        !out.contains(&Output::Fence { target: 3 }),
        "fenced before the deadline: {out:?}"
    );
    w.clock += 1;
    let out = ticks(&w, &mut dc);
    assert!(
        out.contains(&Output::Fence { target: 3 }),
        "no record within the deadline: the DC must fence node 3 itself: {out:?}"
    );
    assert!(
        executes(&out).iter().all(|e| e.op != OpName::Start),
        "started before node 3 was fenced: {out:?}"
    );
}

/// An announcement that does not come back (the ring keeps re-forming)
/// does not stop the operator's fencing: it runs after
/// FENCE_ANNOUNCE_WAIT. Another node's announcement of the same target
/// does not start this node's.
#[test]
fn an_operator_fencing_runs_anyway_when_its_announcement_does_not_come_back_in_time() {
    let (mut w, _, mut two) = web_on_node3_with_fencing();
    let t0 = w.clock;
    two.announce_fencing(3, Instant::from_millis(t0));
    outputs(&mut two);
    two.handle_fencing(1, 3, Instant::from_millis(t0));
    assert!(operator_fences(&outputs(&mut two)).is_empty());
    w.clock = t0 + FENCE_ANNOUNCE_WAIT.as_millis() as u64 - 1;
    assert!(operator_fences(&w.tick(&mut two)).is_empty());
    w.clock += 1;
    assert_eq!(operator_fences(&w.tick(&mut two)), [3]);
    assert!(operator_fences(&w.tick(&mut two)).is_empty(), "twice");
    // Its announcement comes back late: nothing more to run.
    two.handle_fencing(2, 3, Instant::from_millis(w.clock));
    assert!(operator_fences(&outputs(&mut two)).is_empty(), "twice");
}

/// The announced fencing fails (node 2's record says so): the DC fences
/// node 3 itself. A failure of another node's fencing of node 3 does not
/// end the wait for node 2's.
#[test]
fn the_dc_fences_the_node_itself_when_the_announced_fencing_fails() {
    let (mut w, mut dc, _) = web_on_node3_with_fencing();
    dc.handle_fencing(2, 3, Instant::from_millis(w.clock));
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(!out.contains(&Output::Fence { target: 3 }), "{out:?}");
    let other = fence_record_by(&w, 1, 3, Some("f3: timeout"));
    w.apply(2, other, &mut [&mut dc]);
    let out = ticks(&w, &mut dc);
    assert!(
        !out.contains(&Output::Fence { target: 3 }),
        "another node's failure ended the wait for node 2's fencing: {out:?}"
    );
    let failed = fence_record_by(&w, 2, 3, Some("f3: timeout"));
    w.apply(2, failed, &mut [&mut dc]);
    let out = ticks(&w, &mut dc);
    assert!(
        out.contains(&Output::Fence { target: 3 }),
        "node 2's fencing failed: the DC must fence node 3 itself: {out:?}"
    );
}

/// The partition of the node that announced a fencing lost quorum before
/// the announcement came back: the devices do not run (the target may be
/// fine in the majority's ring), the caller is told why, and this node,
/// as a DC later, does not await a fencing that never ran.
#[test]
fn an_announced_operator_fencing_does_not_run_once_the_partition_lost_quorum() {
    let (w, mut dc, mut two) = web_on_node3_with_fencing();
    let now = Instant::from_millis(w.clock);
    two.announce_fencing(3, now);
    outputs(&mut two);
    two.handle_ring(set(&[2]), true, false, true);
    outputs(&mut two);
    two.handle_fencing(2, 3, now);
    let out = outputs(&mut two);
    assert!(operator_fences(&out).is_empty(), "{out:?}");
    assert!(
        out.iter().any(|o| matches!(o,
            Output::OperatorFenceRefused { target: 3, reason } if reason.contains("lost quorum"))),
        "{out:?}"
    );
    // The same when the announcement does not come back at all: the DC
    // (node 1) that announced it and then lost quorum fences nobody, and
    // once quorate again it fences node 3 itself, without waiting.
    dc.announce_fencing(3, now);
    outputs(&mut dc);
    dc.handle_ring(set(&[1]), true, false, true);
    let mut w = w;
    w.clock += FENCE_ANNOUNCE_WAIT.as_millis() as u64;
    let out = w.tick(&mut dc);
    assert!(operator_fences(&out).is_empty(), "{out:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::OperatorFenceRefused { target: 3, .. })),
        "{out:?}"
    );
    dc.handle_ring(set(&[1, 2]), true, true, true);
    let out = ticks(&w, &mut dc);
    assert!(out.contains(&Output::Fence { target: 3 }), "{out:?}");
}
