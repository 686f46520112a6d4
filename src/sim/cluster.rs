//! Whole nodes in the deterministic simulator: per node, totem ([`Srp`]
//! through [`TotemSim`]), quorum ([`Quorum`]), the replicated state
//! ([`Replica`]), the controller ([`Controller`], with the scheduler) and
//! the executor's real decision core ([`executor::Core`]), wired as hactld
//! wires them (src/daemon.rs: the driver turn, `state_turn`,
//! `controller_turn`, the controller tick every 100 ms, the SIGTERM path).
//! Service bytes as on the wire: 1 quorum, 2 state, 3 controller.
//!
//! What is simulated below the executor: per node and resource, a boolean
//! "running here" (the truth the invariants look at). The simulated agent
//! acts on it after a seeded delay: start sets it, stop clears it, a
//! monitor reports it (0 or 7). Faults ([`AgentFaults`]): a start that
//! fails (rc 1, nothing runs), a stop that fails (rc 1, it keeps running),
//! an operation that hangs (its result comes only after the controller's
//! deadline, timeout + [`controller::RESULT_GRACE`], as rc 1; a hung start
//! may or may not have started the resource), and a resource that dies by
//! itself (the next recurring monitor reports rc 7).
//!
//! Fencing is on (every node has a fence level): [`controller::Output::Fence`]
//! powers the target off after a seeded delay (everything on it stops
//! running), then, if the DC that asked is still the same process, its
//! replica records `Command::Fenced` (success), as `fence_node` does. The
//! fenced machine boots again a few seconds later and starts hactld.
//! An operator's fencing (`hactl fence`, announced with
//! `Message::Fencing`) is not simulated: the message is delivered to the
//! controllers as hactld delivers it, but no node sends one.
//!
//! docs/simulation-cluster.md describes the invariants the tests check.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::agents::{AgentAction, OcfCode, OpOutcome, OpRequest};
use crate::config::{Config, OpName};
use crate::controller::{self, Controller, Message, SERVICE_CONTROL};
use crate::executor::{self, ExecutorConfig, OpEvent, ResourceSpec};
use crate::quorum::{NodeInfo, Quorum};
use crate::sim::{NetFaults, Rng, TotemSim, srp_config};
use crate::state::membership::Summary;
use crate::state::persist::{from_file_bytes, to_file_bytes};
use crate::state::replica::{Replica, ReplicaEvent};
use crate::state::{ClusterState, Command, FenceAction, FenceRecord, WallMs};
use crate::time::Instant;
use crate::totem::NodeId;
use crate::totem::srp::{Srp, TotemEvent};
use crate::totem::wire::{NodeSet, RingId};

/// The first byte of a quorum message (as in hactld).
pub const SERVICE_QUORUM: u8 = 1;
/// hactld's controller tick.
pub const CONTROLLER_TICK: Duration = Duration::from_millis(100);
/// hactld's limit for a clean shutdown.
pub const STOP_DEADLINE: Duration = Duration::from_secs(240);
/// The wall clock of every node at simulated time zero.
const WALL_BASE_MS: u64 = 1_700_000_000_000;

/// Faults of one resource's agent on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFaults {
    /// Every start fails (rc 1) and starts nothing, until recovered.
    pub broken: bool,
    /// The next stop fails (rc 1); the resource keeps running.
    pub fail_next_stop: bool,
    /// The next start or stop hangs past the controller's deadline.
    pub hang_next: bool,
}

/// Timings of the simulated agents and fencing.
#[derive(Clone, Debug)]
pub struct Timings {
    pub start_ms: (u64, u64),
    pub stop_ms: (u64, u64),
    pub monitor_ms: (u64, u64),
    pub fence_ms: (u64, u64),
    /// From fencing to hactld running again on the rebooted machine.
    pub boot_ms: (u64, u64),
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            start_ms: (20, 600),
            stop_ms: (20, 400),
            monitor_ms: (5, 60),
            fence_ms: (300, 3_000),
            boot_ms: (2_000, 10_000),
        }
    }
}

/// One simulated machine and the hactld on it.
pub struct SimNode {
    pub id: NodeId,
    /// hactld runs.
    pub up: bool,
    /// The machine is on (resources can run); off after a crash or fencing.
    pub powered: bool,
    pub incarnation: u64,
    pub replica: Replica,
    pub quorum: Quorum,
    pub ctl: Controller,
    pub exec: executor::Core,
    /// Events of `TotemSim::observed` already handled.
    read: usize,
    /// The last persisted state file.
    pub disk: Vec<u8>,
    /// Payloads totem pushed back.
    out: VecDeque<Vec<u8>>,
    pub ring: Option<(RingId, NodeSet)>,
    /// A clean shutdown (SIGTERM) began; leave by then at the latest.
    pub stopping: Option<Instant>,
    /// Per resource (configuration order): running here, in truth.
    pub running: Vec<bool>,
    pub faults: Vec<AgentFaults>,
}

#[derive(Clone, Debug)]
enum Timed {
    ControllerTick,
    OpDone {
        node: usize,
        incarnation: u64,
        op_id: u64,
        resource: usize,
        code: OcfCode,
        /// The truth after the operation, if it changes it.
        effect: Option<bool>,
        started: Instant,
    },
    ExecTick {
        node: usize,
        incarnation: u64,
        resource: String,
        interval: Duration,
        generation: u64,
    },
    ExecEvent {
        node: usize,
        incarnation: u64,
        ev: Box<OpEvent>,
    },
    FenceDone {
        dc: usize,
        incarnation: u64,
        target: NodeId,
    },
    /// A fenced machine boots again (fencing reboots) and starts hactld.
    Boot {
        node: usize,
    },
}

/// A command applied by a node's replica (for the no-lost-command check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedCommand {
    pub by: NodeId,
    /// The incarnation of hactld on `by` that applied it.
    pub incarnation: u64,
    pub origin: NodeId,
    pub cmd: Command,
}

/// A cluster of whole nodes on the simulated network; node ids 1..=N.
pub struct ClusterSim {
    pub sim: TotemSim,
    pub config: Config,
    pub nodes: Vec<SimNode>,
    pub rng: Rng,
    pub timings: Timings,
    pub seed: u64,
    timed: BTreeMap<(Instant, u64), Timed>,
    timed_seq: u64,
    /// What happened, for the failure report (faults, notes, fencing).
    pub trace: Vec<String>,
    /// Keep the controllers' notes in the trace.
    pub trace_notes: bool,
    /// Every command applied on any node, in order.
    pub applied: Vec<AppliedCommand>,
    /// Fencing done: (time, by, target).
    pub fenced: Vec<(Instant, NodeId, NodeId)>,
    /// Checked after every step; a message says what broke.
    pub check: Option<CheckFn>,
    /// A fenced machine boots again and starts hactld (fencing reboots).
    pub reboot_after_fencing: bool,
}

/// An invariant checked after every step.
pub type CheckFn = fn(&ClusterSim) -> Result<(), String>;

fn new_exec(config: &Config, id: NodeId) -> executor::Core {
    let name = config
        .nodes
        .iter()
        .find(|n| n.id == id)
        .map_or_else(|| format!("node{id}"), |n| n.name.clone());
    let mut core = executor::Core::new(ExecutorConfig::new(&name));
    for r in &config.resources {
        core.register(&r.id, ResourceSpec::from_config(r));
    }
    core
}

impl ClusterSim {
    /// Nodes 1..=`n` of `config` (which lists them with ids 1..=n).
    pub fn new(config: Config, faults: NetFaults, seed: u64) -> ClusterSim {
        let n = config.nodes.len();
        let srps = (1..=n as u32)
            .map(|id| Srp::new(id, srp_config(n), 1, Instant::ZERO))
            .collect();
        let mut sim = TotemSim::new(srps, faults, seed);
        // Services send the same bytes twice now and then.
        sim.checker.unique_payloads = false;
        let r = config.resources.len();
        let nodes = (1..=n as u32)
            .map(|id| SimNode {
                id,
                up: true,
                powered: true,
                incarnation: 1,
                replica: Replica::new(id, ClusterState::new(), Some(Summary::of(&config))),
                quorum: Quorum::new(&config, id).expect("the simulated quorum settings are valid"),
                ctl: Controller::new(id),
                exec: new_exec(&config, id),
                read: 0,
                disk: to_file_bytes(&ClusterState::new()),
                out: VecDeque::new(),
                ring: None,
                stopping: None,
                running: vec![false; r],
                faults: vec![AgentFaults::default(); r],
            })
            .collect();
        let mut c = ClusterSim {
            sim,
            config,
            nodes,
            rng: Rng::new(seed ^ 0xC1u64.rotate_left(40)),
            timings: Timings::default(),
            seed,
            timed: BTreeMap::new(),
            timed_seq: 0,
            trace: Vec::new(),
            trace_notes: false,
            applied: Vec::new(),
            fenced: Vec::new(),
            check: None,
            reboot_after_fencing: true,
        };
        c.at(Instant::ZERO + CONTROLLER_TICK, Timed::ControllerTick);
        c.pump();
        c
    }

    pub fn now(&self) -> Instant {
        self.sim.now
    }

    /// The wall clock (every node's: no skew).
    pub fn wall(&self) -> WallMs {
        WallMs(WALL_BASE_MS + self.sim.now.as_micros() / 1_000)
    }

    pub fn resource_index(&self, id: &str) -> Option<usize> {
        self.config.resources.iter().position(|r| r.id == id)
    }

    fn at(&mut self, when: Instant, t: Timed) {
        self.timed_seq += 1;
        self.timed.insert((when, self.timed_seq), t);
    }

    fn note(&mut self, what: String) {
        let line = format!("{:.3}s {what}", self.sim.now.as_micros() as f64 / 1e6);
        self.trace.push(line);
    }

    /// Panics with the seed, the time, the message and the trace.
    pub fn fail(&self, what: &str) -> ! {
        // HACTL_TRACE_LINES=N shows more of the trace when replaying a seed.
        let lines = std::env::var("HACTL_TRACE_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(80);
        let tail: Vec<&String> = self.trace.iter().rev().take(lines).collect();
        let tail: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
        panic!(
            "seed {}: at {:?}: {what}\n  trace (last {} lines):\n    {}",
            self.seed,
            self.sim.now,
            tail.len(),
            tail.join("\n    ")
        )
    }

    // ------------------------------------------------------------ driving

    /// Runs everything due up to `until` (datagrams, totem and quorum
    /// timers, agents, ticks), checking the invariant after every step.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let quorum_due = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.up)
                .filter_map(|(i, n)| n.quorum.poll_timeout().map(|t| (t, i)))
                .min();
            let timed_due = self.timed.keys().next().map(|(t, _)| *t);
            let mine = match (quorum_due.map(|q| q.0), timed_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let limit = mine.map_or(until, |m| m.min(until));
            if self.sim.step(limit) {
                self.pump();
                self.run_check();
                continue;
            }
            let Some(m) = mine.filter(|m| *m <= until) else {
                break;
            };
            self.sim.now = self.sim.now.max(m);
            if let Some((t, i)) = quorum_due
                && t <= m
            {
                let now = self.sim.now;
                let q = &mut self.nodes[i].quorum;
                q.handle_timeout(now);
                while q.poll_event().is_some() {}
                // A timer that did not move would spin.
                if q.poll_timeout().is_some_and(|t2| t2 <= now) {
                    self.fail(&format!(
                        "node {}: the quorum timer at {t:?} does not move after handle_timeout",
                        i + 1
                    ));
                }
            } else {
                let key = *self.timed.keys().next().expect("due");
                let t = self.timed.remove(&key).expect("due");
                self.handle_timed(t);
            }
            self.pump();
            self.run_check();
        }
        self.sim.now = self.sim.now.max(until);
    }

    fn run_check(&self) {
        if let Some(check) = self.check
            && let Err(e) = check(self)
        {
            self.fail(&e);
        }
    }

    fn handle_timed(&mut self, t: Timed) {
        match t {
            Timed::ControllerTick => {
                let next = self.sim.now + CONTROLLER_TICK;
                self.at(next, Timed::ControllerTick);
                for i in 0..self.nodes.len() {
                    if self.nodes[i].up {
                        self.controller_turn(i);
                        self.flush_out(i);
                        self.check_stopping(i);
                    }
                }
            }
            Timed::OpDone {
                node,
                incarnation,
                op_id,
                resource,
                code,
                effect,
                started,
            } => {
                if !self.live(node, incarnation) {
                    return;
                }
                if let Some(e) = effect {
                    self.nodes[node].running[resource] = e;
                }
                let when = self.system_time();
                let duration = self.sim.now.saturating_since(started);
                let outcome = if code == OcfCode::Success || code == OcfCode::NotRunning {
                    OpOutcome::code(code)
                } else {
                    OpOutcome::fail(code, "simulated failure")
                };
                self.nodes[node]
                    .exec
                    .handle_done(op_id, outcome, duration, when);
                self.drain_exec(node);
            }
            Timed::ExecTick {
                node,
                incarnation,
                resource,
                interval,
                generation,
            } => {
                if !self.live(node, incarnation) {
                    return;
                }
                self.nodes[node]
                    .exec
                    .handle_tick(&resource, interval, generation);
                self.drain_exec(node);
            }
            Timed::ExecEvent {
                node,
                incarnation,
                ev,
            } => {
                if !self.live(node, incarnation) {
                    return;
                }
                let wall = self.wall();
                controller_op_event(&mut self.nodes[node].ctl, &ev, wall);
                self.controller_turn(node);
                self.flush_out(node);
                self.check_stopping(node);
            }
            Timed::Boot { node } => {
                if !self.nodes[node].powered {
                    self.restart(node);
                }
            }
            Timed::FenceDone {
                dc,
                incarnation,
                target,
            } => {
                let t = target as usize - 1;
                // Fencing powers the target off, whatever it was doing.
                if self.nodes[t].powered {
                    self.power_off(t);
                    if self.reboot_after_fencing {
                        let (lo, hi) = self.timings.boot_ms;
                        let d = self.rng.range(lo, hi);
                        self.at(
                            self.sim.now + Duration::from_millis(d),
                            Timed::Boot { node: t },
                        );
                    }
                }
                if !self.live(dc, incarnation) {
                    self.note(format!(
                        "fencing of n{target} done, but n{} that asked is gone: nothing recorded",
                        dc + 1
                    ));
                    return;
                }
                self.note(format!("n{} fenced n{target}", dc + 1));
                self.fenced.push((self.sim.now, dc as NodeId + 1, target));
                let rec = FenceRecord {
                    at: self.wall(),
                    target,
                    device: format!("fence-n{target}"),
                    action: FenceAction::Reboot,
                    error: None,
                    executor: dc as NodeId + 1,
                };
                let wall = self.wall();
                self.nodes[dc].replica.submit(Command::Fenced(rec), wall);
                self.controller_turn(dc);
                self.flush_out(dc);
            }
        }
    }

    fn live(&self, i: usize, incarnation: u64) -> bool {
        self.nodes[i].up && self.nodes[i].incarnation == incarnation
    }

    fn system_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.wall().0)
    }

    /// Handles what totem gave every running node since the last time, as
    /// hactld's driver turn does.
    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].up && self.nodes[i].read < self.sim.observed[i].events.len() {
                self.driver_turn(i);
            }
        }
    }

    fn driver_turn(&mut self, i: usize) {
        let now = self.sim.now;
        let wall = self.wall();
        let mut error = None;
        while self.nodes[i].read < self.sim.observed[i].events.len() {
            let e = self.sim.observed[i].events[self.nodes[i].read].clone();
            self.nodes[i].read += 1;
            let node = &mut self.nodes[i];
            node.replica.handle_event(&e);
            match e {
                TotemEvent::Regular {
                    ring,
                    members,
                    joined,
                } => {
                    node.ring = Some((ring, members));
                    node.ctl.handle_joined(joined);
                    let ids: Vec<u32> = members.iter().collect();
                    // A refusal is logged by hactld and changes nothing.
                    let _ = node.quorum.handle_membership(now, ring, &ids);
                    let mut infos = Vec::new();
                    while let Some(info) = node.quorum.poll_broadcast() {
                        infos.push(info);
                    }
                    while node.quorum.poll_event().is_some() {}
                    for info in infos {
                        let mut payload = vec![SERVICE_QUORUM];
                        payload.extend_from_slice(&info.to_bytes());
                        // Pushed back: hactld lets it go with the next ring.
                        let _ = self.sim.broadcast(i, payload);
                    }
                }
                TotemEvent::Transitional { .. } => {}
                TotemEvent::Deliver {
                    sender, payload, ..
                } => {
                    if payload.first() == Some(&SERVICE_CONTROL) {
                        match Message::from_bytes(&payload) {
                            Ok(Message::Execute(msg)) => {
                                node.ctl.handle_execute(sender, &msg, wall);
                                for cmd in node.ctl.take_submits() {
                                    node.replica.submit(cmd, wall);
                                }
                            }
                            Ok(Message::Leaving) => node.ctl.handle_leaving(sender),
                            // Nothing here runs `hactl fence` (only the DC's
                            // own fencing is simulated); delivered as hactld does.
                            Ok(Message::Fencing { target }) => {
                                node.ctl.handle_fencing(sender, target, now)
                            }
                            Err(e) => {
                                error = Some(format!(
                                    "node {}: controller message from {sender} refused: {e:?}",
                                    i + 1
                                ))
                            }
                        }
                    }
                    if payload.first() == Some(&SERVICE_QUORUM) {
                        match NodeInfo::from_bytes(&payload[1..]) {
                            Ok(info) => {
                                let _ = node.quorum.handle_node_info(now, sender, info);
                            }
                            Err(e) => {
                                error = Some(format!(
                                    "node {}: malformed node information from {sender}: {e:?}",
                                    i + 1
                                ))
                            }
                        }
                        while node.quorum.poll_event().is_some() {}
                    }
                }
            }
        }
        if let Some(e) = error {
            self.fail(&e);
        }
        self.state_turn(i);
        self.controller_turn(i);
        self.flush_out(i);
        self.check_stopping(i);
    }

    fn state_turn(&mut self, i: usize) {
        while let Some(p) = self.nodes[i].replica.poll_broadcast() {
            self.nodes[i].out.push_back(p);
        }
        self.flush_out(i);
        let node = &mut self.nodes[i];
        if node.replica.take_dirty() {
            node.disk = to_file_bytes(node.replica.state());
        }
        while let Some(e) = self.nodes[i].replica.poll_event() {
            match e {
                ReplicaEvent::Applied { origin, cmd } => {
                    let node = &mut self.nodes[i];
                    if let Command::Fenced(rec) = &cmd
                        && rec.error.is_none()
                    {
                        node.ctl.handle_fenced(rec.target);
                    }
                    node.ctl.handle_applied(&self.config, &cmd);
                    let incarnation = self.nodes[i].incarnation;
                    self.applied.push(AppliedCommand {
                        by: i as NodeId + 1,
                        incarnation,
                        origin,
                        cmd,
                    });
                }
                ReplicaEvent::Refused { cmd, .. } => self.nodes[i].ctl.handle_refused(&cmd),
                ReplicaEvent::Synced { .. } => self.nodes[i].ctl.handle_state_synced(),
                ReplicaEvent::MembershipMismatch { message, .. } => {
                    self.fail(&format!("node {}: {message}", i + 1))
                }
                ReplicaEvent::Malformed { sender, error } => self.fail(&format!(
                    "node {}: unreadable state message from {sender}: {error}",
                    i + 1
                )),
            }
        }
    }

    fn controller_turn(&mut self, i: usize) {
        let now = self.sim.now;
        let wall = self.wall();
        let node = &mut self.nodes[i];
        let members = node.ring.map_or(NodeSet::EMPTY, |(_, m)| m);
        let settled =
            node.ring.is_some() && !node.quorum.status().syncing && !node.replica.is_syncing();
        let fencing =
            !self.config.fence_devices.is_empty() && !self.config.cluster.fencing_disabled;
        node.ctl
            .handle_ring(members, settled, node.quorum.is_quorate(), fencing);
        node.ctl.tick(&self.config, node.replica.state(), wall, now);
        let mut fences = Vec::new();
        let mut notes = Vec::new();
        while let Some(o) = node.ctl.poll_output() {
            match o {
                controller::Output::Broadcast(p) => node.out.push_back(p),
                controller::Output::Submit(cmd) => node.replica.submit(cmd, wall),
                controller::Output::Run {
                    resource,
                    op,
                    interval_ms,
                    timeout_ms,
                } => {
                    let Some(res) = self.config.resources.iter().find(|r| r.id == resource) else {
                        continue;
                    };
                    if self.trace_notes {
                        notes.push(format!(
                            "n{} runs {} {resource}{}",
                            i + 1,
                            op.as_str(),
                            if interval_ms > 0 {
                                format!(" every {interval_ms} ms")
                            } else {
                                String::new()
                            }
                        ));
                    }
                    node.exec.submit(
                        OpRequest {
                            resource,
                            action: agent_action(op),
                            params: res.params.clone(),
                            timeout: Duration::from_millis(timeout_ms),
                            interval: Duration::from_millis(interval_ms),
                            check_level: 0,
                        },
                        SystemTime::UNIX_EPOCH + Duration::from_millis(wall.0),
                    );
                }
                // Nothing here announces an operator's fencing (the
                // simulator runs no `hactl fence`); if it did, this node
                // would run the devices as for its own fencing.
                controller::Output::Fence { target }
                | controller::Output::OperatorFence { target } => fences.push(target),
                controller::Output::OperatorFenceRefused { .. } => {}
                controller::Output::ForgetFailures { resource } => {
                    node.exec.cleanup(resource.as_deref())
                }
                controller::Output::StartMonitors { resource, promoted } => {
                    node.exec.start_monitors(&resource, promoted)
                }
                controller::Output::Note(text) => {
                    if self.trace_notes {
                        notes.push(format!("n{}: {text}", i + 1));
                    }
                }
            }
        }
        while let Some(p) = node.replica.poll_broadcast() {
            node.out.push_back(p);
        }
        for n in notes {
            self.note(n);
        }
        for target in fences {
            let (lo, hi) = self.timings.fence_ms;
            let d = self.rng.range(lo, hi);
            self.note(format!("n{} fences n{target} (takes {d} ms)", i + 1));
            let incarnation = self.nodes[i].incarnation;
            self.at(
                now + Duration::from_millis(d),
                Timed::FenceDone {
                    dc: i,
                    incarnation,
                    target,
                },
            );
        }
        self.drain_exec(i);
    }

    /// Carries out what the executor core asks: runs operations on the
    /// simulated agent, arms recurring monitors, delivers events.
    fn drain_exec(&mut self, i: usize) {
        let now = self.sim.now;
        let incarnation = self.nodes[i].incarnation;
        while let Some(o) = self.nodes[i].exec.poll_output() {
            match o {
                executor::Output::Run { op_id, req } => {
                    let Some(r) = self.resource_index(&req.resource) else {
                        continue;
                    };
                    let (delay, code, effect) = self.agent(i, r, &req);
                    self.at(
                        now + delay,
                        Timed::OpDone {
                            node: i,
                            incarnation,
                            op_id,
                            resource: r,
                            code,
                            effect,
                            started: now,
                        },
                    );
                }
                executor::Output::Arm {
                    resource,
                    interval,
                    generation,
                    after,
                } => self.at(
                    now + after,
                    Timed::ExecTick {
                        node: i,
                        incarnation,
                        resource,
                        interval,
                        generation,
                    },
                ),
                executor::Output::Event(ev) => self.at(
                    now,
                    Timed::ExecEvent {
                        node: i,
                        incarnation,
                        ev: Box::new(ev),
                    },
                ),
            }
        }
    }

    /// The simulated agent: how long the operation takes, its code, and
    /// what it leaves running.
    fn agent(&mut self, i: usize, r: usize, req: &OpRequest) -> (Duration, OcfCode, Option<bool>) {
        let t = self.timings.clone();
        let running = self.nodes[i].running[r];
        let hang_delay = |rng: &mut Rng| {
            req.timeout + controller::RESULT_GRACE + Duration::from_millis(rng.range(100, 3_000))
        };
        let f = &mut self.nodes[i].faults[r];
        match req.action {
            AgentAction::Start => {
                if std::mem::take(&mut f.hang_next) {
                    // Killed at last; it may or may not have started.
                    let started = self.rng.chance(500_000);
                    self.note(format!(
                        "n{} start {} hangs (started: {started})",
                        i + 1,
                        req.resource
                    ));
                    return (
                        hang_delay(&mut self.rng),
                        OcfCode::ErrGeneric,
                        Some(started),
                    );
                }
                let d = Duration::from_millis(self.rng.range(t.start_ms.0, t.start_ms.1));
                if f.broken {
                    (d, OcfCode::ErrGeneric, None)
                } else {
                    (d, OcfCode::Success, Some(true))
                }
            }
            AgentAction::Stop => {
                if std::mem::take(&mut f.hang_next) {
                    self.note(format!("n{} stop {} hangs", i + 1, req.resource));
                    return (hang_delay(&mut self.rng), OcfCode::ErrGeneric, None);
                }
                let d = Duration::from_millis(self.rng.range(t.stop_ms.0, t.stop_ms.1));
                if std::mem::take(&mut f.fail_next_stop) && running {
                    (d, OcfCode::ErrGeneric, None)
                } else {
                    (d, OcfCode::Success, Some(false))
                }
            }
            AgentAction::Monitor => {
                let d = Duration::from_millis(self.rng.range(t.monitor_ms.0, t.monitor_ms.1));
                // Reported as it is when the monitor ends.
                let code = if running {
                    OcfCode::Success
                } else {
                    OcfCode::NotRunning
                };
                (d, code, None)
            }
            _ => (Duration::from_millis(1), OcfCode::ErrUnimplemented, None),
        }
    }

    fn flush_out(&mut self, i: usize) {
        while let Some(p) = self.nodes[i].out.front() {
            if !self.sim.broadcast(i, p.clone()) {
                break;
            }
            self.nodes[i].out.pop_front();
        }
    }

    /// The SIGTERM path's check after every turn: leave once nothing is
    /// active here (or the deadline passed).
    fn check_stopping(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i].stopping else {
            return;
        };
        let node = &self.nodes[i];
        let active = Controller::has_active_resources(&self.config, node.replica.state(), node.id)
            || node.ctl.has_local_ops();
        if !active || self.sim.now >= deadline {
            self.note(format!(
                "n{} leaves after a clean shutdown{}",
                i + 1,
                if active { " (deadline passed)" } else { "" }
            ));
            self.process_exit(i);
        }
    }

    /// hactld on node index `i` ends (the machine stays on).
    fn process_exit(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.nodes[i].stopping = None;
        self.sim.crash(i);
    }

    fn power_off(&mut self, i: usize) {
        self.process_exit(i);
        let node = &mut self.nodes[i];
        node.powered = false;
        node.running.iter_mut().for_each(|r| *r = false);
    }

    // ------------------------------------------------------------ faults

    /// The machine of node index `i` loses power.
    pub fn crash(&mut self, i: usize) {
        self.note(format!("crash n{}", i + 1));
        self.power_off(i);
    }

    /// hactld starts again on node index `i` (the machine boots first if it
    /// was off): a new incarnation, the state from its disk.
    pub fn restart(&mut self, i: usize) {
        self.note(format!("restart n{}", i + 1));
        let n = self.nodes.len();
        let id = i as NodeId + 1;
        let state = from_file_bytes(&self.nodes[i].disk)
            .unwrap_or_else(|e| self.fail(&format!("node {id}: disk: {e}")));
        let incarnation = self.nodes[i].incarnation + 1;
        let at = self.sim.observed[i].events.len();
        {
            let node = &mut self.nodes[i];
            node.up = true;
            node.powered = true;
            node.incarnation = incarnation;
            node.replica = Replica::new(id, state, Some(Summary::of(&self.config)));
            node.quorum = Quorum::new(&self.config, id).expect("valid quorum settings");
            node.ctl = Controller::new(id);
            node.exec = new_exec(&self.config, id);
            node.read = at;
            node.out.clear();
            node.ring = None;
            node.stopping = None;
        }
        self.sim.restart_persisted(i, srp_config(n), incarnation);
        self.pump();
    }

    /// SIGTERM to hactld on node index `i` (hactld's `begin_stop`).
    pub fn shutdown(&mut self, i: usize) {
        if !self.nodes[i].up || self.nodes[i].stopping.is_some() {
            return;
        }
        let node = &mut self.nodes[i];
        if !Controller::has_active_resources(&self.config, node.replica.state(), node.id)
            && !node.ctl.has_local_ops()
        {
            self.note(format!("shutdown n{}: nothing active, leaves now", i + 1));
            self.process_exit(i);
            return;
        }
        node.ctl.begin_shutdown();
        node.stopping = Some(self.sim.now + STOP_DEADLINE);
        self.note(format!("shutdown n{}: moving resources away", i + 1));
    }

    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.note(format!("partition {groups:?}"));
        self.sim.partition(groups);
    }

    pub fn heal(&mut self) {
        self.note("heal".into());
        self.sim.heal();
    }

    /// The resource dies by itself on node index `i`.
    pub fn kill_resource(&mut self, i: usize, r: usize) {
        if self.nodes[i].running[r] {
            self.note(format!(
                "{} dies on n{}",
                self.config.resources[r].id,
                i + 1
            ));
            self.nodes[i].running[r] = false;
        }
    }

    pub fn set_faults(&mut self, i: usize, r: usize, f: AgentFaults) {
        self.note(format!(
            "agent of {} on n{}: {f:?}",
            self.config.resources[r].id,
            i + 1
        ));
        self.nodes[i].faults[r] = f;
    }

    /// Submits a command on node index `i` as `hactl` would through
    /// D-Bus: only in a settled, quorate ring (false otherwise).
    pub fn submit(&mut self, i: usize, cmd: Command) -> bool {
        let node = &self.nodes[i];
        if !node.up || node.ctl.dc().is_none() || !node.quorum.is_quorate() {
            return false;
        }
        self.note(format!("n{} submits {cmd:?}", i + 1));
        let wall = self.wall();
        self.nodes[i].replica.submit(cmd, wall);
        while let Some(p) = self.nodes[i].replica.poll_broadcast() {
            self.nodes[i].out.push_back(p);
        }
        self.flush_out(i);
        true
    }

    // ------------------------------------------------------------ views

    /// Whether every running node is in one settled ring of all of them.
    pub fn settled_together(&self) -> bool {
        let up: NodeSet = {
            let mut s = NodeSet::EMPTY;
            self.nodes
                .iter()
                .filter(|n| n.up)
                .for_each(|n| s.insert(n.id));
            s
        };
        self.nodes.iter().filter(|n| n.up).all(|n| {
            n.ring.is_some_and(|(_, m)| m == up)
                && n.ctl.dc().is_some()
                && !n.replica.is_syncing()
                && !n.quorum.status().syncing
        })
    }

    /// Nodes (ids) on which resource index `r` runs, in truth.
    pub fn running_on(&self, r: usize) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.powered && n.running[r])
            .map(|n| n.id)
            .collect()
    }
}

fn agent_action(op: OpName) -> AgentAction {
    match op {
        OpName::Start => AgentAction::Start,
        OpName::Stop => AgentAction::Stop,
        OpName::Monitor => AgentAction::Monitor,
        OpName::Promote => AgentAction::Promote,
        OpName::Demote => AgentAction::Demote,
    }
}

/// hactld's `controller_op_event`.
fn controller_op_event(ctl: &mut Controller, ev: &OpEvent, wall: WallMs) {
    let op = match ev.action {
        AgentAction::Start => OpName::Start,
        AgentAction::Stop => OpName::Stop,
        AgentAction::Monitor => OpName::Monitor,
        AgentAction::Promote => OpName::Promote,
        AgentAction::Demote => OpName::Demote,
        AgentAction::MetaData | AgentAction::ValidateAll => return,
    };
    ctl.handle_op_result(
        &ev.resource,
        op,
        ev.interval.as_millis() as u64,
        ev.code.code(),
        &ev.exit_reason,
        ev.failed,
        ev.fail_count,
        wall,
    );
}
