//! The cluster controller (Pacemaker's controld, reduced): a pure state
//! machine that the daemon drives (no clock, no socket; `now` is an
//! argument).
//!
//! - **DC.** Once a ring has settled (quorum and the replicated state have
//!   synchronised), its lowest node id is the DC. A DC without quorum only
//!   applies `no_quorum_policy` (the scheduler is told `has_quorum =
//!   false`).
//! - **Transitions.** The DC builds the scheduler's view from the
//!   configuration, the membership and the replicated state
//!   ([`build_view`]), runs the scheduler, and executes the transition: an
//!   action runs once every action ordered before it succeeded; the DC
//!   broadcasts it ([`wire::Execute`]) and the node it names runs it. The
//!   node records the result in the replicated state (`Command::OpResult`),
//!   where the DC (like everyone) sees it in agreed order. Pseudo-actions
//!   complete by themselves; recurring monitors are the executor's own
//!   business after a start (or after a probe found the resource running).
//! - **Aborts.** Anything new (a command applied that is not an awaited
//!   result, a failure, a membership or quorum change) aborts the
//!   transition: nothing more is dispatched, the operations in flight are
//!   awaited, then the DC computes again. An operation whose result does not
//!   come within its timeout (plus [`RESULT_GRACE`]) counts as failed.
//! - **Nothing run twice.** A node records an operation as pending (rc
//!   [`RC_PENDING`]) before it runs it, so a DC that takes over sees a start
//!   in flight as active on that node and never starts it elsewhere;
//!   operations are queued per resource on the node (the executor runs one
//!   at a time), so a stop sent after a start runs after it.
//! - **Start-up.** A node that starts forgets its own operation history
//!   (`Cleanup` of itself, the first time it is in a settled quorate ring,
//!   so that the cluster's record of it, e.g. a standby set while it was
//!   down, is not lost to its own stale disk) and probes every resource;
//!   the DC places nothing before every member answered, and at cold start
//!   waits up to [`STARTUP_WAIT`] for configured nodes still missing.
//! - **Left nodes.** A node that leaves the ring is offline when fencing is
//!   off, unclean when it is on (to be fenced before its resources start
//!   elsewhere; also a node outside the ring whose recorded state shows
//!   something active and that was not fenced since). A node fenced while
//!   still in the ring (an operator's `hactl fence`) leaves cleanly: its
//!   leave is the fencing's outcome, not a new failure to fence again for.
//! - **Operator fencing announced.** The node that runs `hactl fence`
//!   first announces it to the ring ([`Controller::announce_fencing`],
//!   [`Message::Fencing`] in agreed order) and starts the devices only once
//!   the announcement came back to it ([`Output::OperatorFence`]): every
//!   node then knows who fences whom before the ring can notice the target
//!   gone. A DC whose transition must fence a node announced that way
//!   awaits that fencing's `Fenced` record instead of running the devices
//!   a second time; it fences the node itself when the fencing node leaves
//!   the ring (or restarts) or no record came within
//!   [`FENCE_RESULT_TIMEOUT`] of the announcement. (A fencing is announced
//!   anyway after [`FENCE_ANNOUNCE_WAIT`] without the message back: a ring
//!   that keeps re-forming does not stop an operator's fencing; a
//!   partition that lost quorum meanwhile does:
//!   [`Output::OperatorFenceRefused`].)
//!
//! docs/controller.md describes it for operators.

pub mod summary;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::config::{Config, OnFail, OpName, Role};
use crate::scheduler::{self, ClusterView, Extensions, NodeState, NodeStatus, Task};
use crate::state::{ClusterState, Command, OpRecord, WallMs};
use crate::time::Instant;
use crate::totem::NodeId;
use crate::totem::wire::NodeSet;

pub use wire::{Execute, Message, SERVICE_CONTROL};

/// The return code recorded while an operation runs (Pacemaker's pending
/// operations use 193 too).
pub const RC_PENDING: i32 = 193;
/// How long past an operation's timeout the DC waits for its result before
/// it counts the operation as failed.
pub const RESULT_GRACE: Duration = Duration::from_secs(10);
/// How long the DC waits for the outcome of fencing (every level of every
/// device, each bounded by its own timeout) before it counts it as failed.
pub const FENCE_RESULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a node that fences on an operator's request waits for its
/// announcement ([`Message::Fencing`]) to come back before it fences
/// anyway (a healthy ring delivers it within milliseconds; a ring that
/// re-forms within a second or two).
pub const FENCE_ANNOUNCE_WAIT: Duration = Duration::from_secs(5);
/// At start, how long a DC waits for the configured nodes that are not in
/// its ring yet before it places anything (Pacemaker's dc-deadtime, which is
/// 20 s): a resource already running on a node that joins a moment later is
/// then found by that node's probe instead of being started elsewhere too.
/// No wait once every configured node has been seen in a settled ring.
pub const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// Transitions in a row that change nothing before the DC stops computing
/// (a scheduler that keeps asking for the same actions must not spin).
pub const TRANSITIONS_PER_CHANGE_MAX: u32 = 32;

/// What the controller asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Broadcast this payload on totem.
    Broadcast(Vec<u8>),
    /// Submit this command to the replicated state.
    Submit(Command),
    /// Run an operation on this node (through the executor).
    Run {
        resource: String,
        op: OpName,
        interval_ms: u64,
        timeout_ms: u64,
    },
    /// Fence this node (the DC asks its own daemon, which runs the node's
    /// fence levels and records the outcome with `Command::Fenced`).
    Fence { target: NodeId },
    /// Run the fencing of `target` an operator asked for on this node
    /// ([`Controller::announce_fencing`]): its announcement came back in
    /// agreed order (or did not within [`FENCE_ANNOUNCE_WAIT`]). One per
    /// announcement (this or [`Output::OperatorFenceRefused`]), in the
    /// order they were made.
    OperatorFence { target: NodeId },
    /// Do not run the fencing of `target` an operator asked for: this
    /// node's partition lost quorum before the devices started. The daemon
    /// answers the caller with `reason` and records the fencing as failed
    /// (`Command::Fenced` with an error), so that no node awaits it.
    OperatorFenceRefused { target: NodeId, reason: String },
    /// Clear the executor's fail counts of a resource (every resource for
    /// None): a cleanup reached this node.
    ForgetFailures { resource: Option<String> },
    /// Start the recurring monitors of a resource found running here.
    StartMonitors { resource: String, promoted: bool },
    /// Something for the journal (a transition started or ended, an
    /// action failed).
    Note(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActionState {
    Waiting,
    InFlight { deadline: Instant },
    Done,
    Failed,
}

/// One action of the running transition, resolved for execution.
#[derive(Clone, Debug)]
struct Step {
    /// None for pseudo-actions and recurring monitors (complete at once).
    run: Option<(NodeId, String, OpName, u64, u64)>,
    /// The node to fence, for fencing actions.
    fence: Option<NodeId>,
    /// For a fencing action in flight: the node whose announced fencing
    /// of the target it awaits (None: this node's daemon fences it).
    awaits: Option<NodeId>,
    label: String,
    state: ActionState,
    preds: Vec<usize>,
}

#[derive(Clone, Debug)]
struct Run {
    id: u64,
    steps: Vec<Step>,
    aborted: bool,
}

/// The controller of one node.
#[derive(Clone, Debug)]
pub struct Controller {
    me: NodeId,
    /// The ring's members and whether it has settled (quorum synced, state
    /// synced); quorate.
    members: NodeSet,
    settled: bool,
    quorate: bool,
    /// Whether nodes that leave must be fenced (fence devices configured).
    fencing: bool,
    /// This node is shutting down cleanly (announced to every node that
    /// joins, so that a DC that joins later knows it too).
    leaving: bool,
    /// Nodes that left without a clean shutdown (to be fenced when fencing
    /// is on).
    unclean: NodeSet,
    /// Whether this node has forgotten its own history since it started.
    started_clean: bool,
    /// The resource ids of the configuration at the last tick: one that
    /// appears later (`hactl config apply` added it) is probed here, as
    /// every resource is at start, since the DC places nothing before
    /// every member answered its probe.
    known_resources: Option<BTreeSet<String>>,
    /// Nodes shutting down cleanly (their resources move away; once they
    /// leave the ring they are offline, not unclean).
    shutting_down: NodeSet,
    /// Members a successful fencing was recorded for while they were in
    /// the ring (`hactl fence`): their next leave is clean, or the DC would
    /// fence them a second time. Forgotten when they leave or join again.
    fenced_members: NodeSet,
    /// When each node last joined the ring (the wall clock of the last
    /// tick before): a fencing that ended before a member joined fenced an
    /// earlier life of it (a record that comes late, after the node
    /// rebooted and rejoined), not the member that runs now.
    joined_at: BTreeMap<NodeId, WallMs>,
    /// The wall clock at the last tick.
    last_wall: WallMs,
    /// Announced operator fencings: (target, the node that fences it) →
    /// until when at the latest. A transition's fencing of the target
    /// awaits that outcome (the `Fenced` record) instead of fencing it
    /// again, while the fencing node is this one or a member. Bounded:
    /// at most one entry per pair of node ids.
    fence_requests: BTreeMap<(NodeId, NodeId), Instant>,
    /// This node's own announcements that have not come back yet: target,
    /// and when to fence anyway ([`FENCE_ANNOUNCE_WAIT`]); oldest first.
    announced: VecDeque<(NodeId, Instant)>,
    run: Option<Run>,
    transitions: u64,
    /// Something changed since the last transition was computed.
    dirty: bool,
    /// Transitions computed since the last change from outside.
    spins: u32,
    /// The last transition computed had nothing to do.
    idle: bool,
    /// Where the last transition puts every primitive: resource → node.
    targets: BTreeMap<String, Option<String>>,
    /// The DC waits for this node's probe of this resource.
    waiting_for_probe: Option<(NodeId, String)>,
    /// When this controller first saw a settled ring, and whether it has
    /// seen every configured node in one since (see [`STARTUP_WAIT`]).
    first_settled: Option<Instant>,
    seen_all: bool,
    /// The last failed operation per (node, resource, operation,
    /// interval) this node has seen applied, until a cleanup: the
    /// operation history keeps only the last result per operation, which a
    /// successful monitor after a recovery overwrites.
    failures: BTreeMap<(NodeId, String, OpName, u64), OpRecord>,
    /// One-shot operations this node was asked to run whose results have
    /// not come yet: (resource, operation, interval) → how many.
    local_ops: BTreeMap<(String, OpName, u64), u32>,
    /// A cleanup of this node erased the pending records of operations
    /// still running here: record them again (at the next tick).
    repend: bool,
    /// Operation records this node submitted that the replicated state has
    /// not applied yet (still queued for totem, or the ring is re-forming).
    unconfirmed: usize,
    out: VecDeque<Output>,
}

/// What the controller knows of the ring, for [`build_view`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingView {
    pub members: NodeSet,
    /// Left without a clean shutdown, not fenced since.
    pub unclean: NodeSet,
    /// Shutting down cleanly: their resources move away.
    pub shutting_down: NodeSet,
    pub quorate: bool,
}

/// The scheduler's view of the cluster now, and the configuration with the
/// migrate preferences added as location constraints.
pub fn build_view(
    config: &Config,
    state: &ClusterState,
    ring: &RingView,
    now_wall: WallMs,
    now: Instant,
) -> (Config, ClusterView) {
    let RingView {
        members,
        unclean,
        shutting_down,
        quorate,
    } = *ring;
    let mut cfg = config.clone();
    state.add_migrate_locations(&mut cfg, now_wall);
    // `hactl resource start|stop`: the replicated target roles override
    // the configuration's meta.target_role.
    state.apply_target_roles(&mut cfg);
    let mut view = ClusterView {
        nodes: config
            .nodes
            .iter()
            .map(|n| {
                let mut s = NodeStatus::online(&n.name);
                s.state = if members.contains(n.id) {
                    NodeState::Online
                } else if unclean.contains(n.id) {
                    NodeState::Unclean
                } else {
                    NodeState::Offline
                };
                s
            })
            .collect(),
        has_quorum: quorate,
        resources: Vec::new(),
    };
    state.fill_view(&cfg, &mut view, now_wall, now);
    for n in &mut view.nodes {
        if config
            .node_by_name(&n.name)
            .is_some_and(|c| shutting_down.contains(c.id))
        {
            n.shutdown = true;
        }
    }
    // A node that is cleanly down runs nothing, whatever its history says.
    let offline: BTreeSet<String> = view
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Offline)
        .map(|n| n.name.clone())
        .collect();
    view.resources.retain(|r| !offline.contains(&r.node));
    // Failures still in effect: the last result of a resource on a node.
    for r in &mut view.resources {
        let Some(node) = config.node_by_name(&r.node) else {
            continue;
        };
        let primitive = primitive_of(&r.resource);
        let Some(last) = state.op_history(primitive, node.id).into_iter().last() else {
            continue;
        };
        if let Some(on_fail) = failure_of(config, last) {
            r.failure = Some(on_fail);
            if last.op == OpName::Start {
                // A failed start may have left something behind: stop it.
                r.role = r.role.max(Role::Started);
            }
        }
    }
    (cfg, view)
}

/// Nodes outside the ring that the replicated state shows running
/// something (or an operation pending) with no successful fencing of them
/// recorded since their last operation: unclean, whether or not this
/// controller saw them leave. A DC that started (or joined) after such a
/// node was lost never saw it leave; without this it would count the node
/// cleanly offline and start its resources while they may still run there
/// (found by tests/cluster_sim.rs, seed 149). A node that shut down cleanly
/// left only once nothing was active there, so it is never counted.
pub fn unclean_by_state(config: &Config, state: &ClusterState, members: NodeSet) -> NodeSet {
    let mut out = NodeSet::EMPTY;
    for n in &config.nodes {
        if members.contains(n.id) || !Controller::has_active_resources(config, state, n.id) {
            continue;
        }
        let last_op = state
            .nodes
            .get(&n.id)
            .and_then(|f| f.ops.values().map(|(_, r)| r.at).max());
        let fenced_since = state
            .fencing
            .iter()
            .any(|f| f.target == n.id && f.error.is_none() && last_op.is_none_or(|at| f.at >= at));
        if !fenced_since {
            out.insert(n.id);
        }
    }
    out
}

/// A member other than `node` where an operation of `resource` (a
/// primitive, not a clone instance) is recorded pending (on a node outside
/// the ring it ended with the node: fenced, or shut down cleanly).
fn pending_elsewhere(
    state: &ClusterState,
    members: NodeSet,
    resource: &str,
    node: NodeId,
) -> Option<NodeId> {
    if resource.contains(':') {
        return None;
    }
    state.nodes.iter().find_map(|(id, facts)| {
        (*id != node
            && members.contains(*id)
            && facts
                .ops
                .values()
                .any(|(_, r)| r.resource == resource && r.rc == RC_PENDING))
        .then_some(*id)
    })
}

/// The node announced as fencing `target` (in `requests`, see
/// `Controller::fence_requests`) whose outcome a transition awaits, and
/// until when: this node (`me`), or a member, whose announcement has not
/// expired; the one that lasts longest.
fn announced_fencing(
    requests: &BTreeMap<(NodeId, NodeId), Instant>,
    me: NodeId,
    members: NodeSet,
    target: NodeId,
    now: Instant,
) -> Option<(NodeId, Instant)> {
    requests
        .range((target, 0)..=(target, NodeId::MAX))
        .map(|(&(_, fencer), &until)| (fencer, until))
        .filter(|&(fencer, until)| now < until && (fencer == me || members.contains(fencer)))
        .max_by_key(|&(_, until)| until)
}

/// The primitive a scheduler resource name refers to (`ID:N` → `ID`).
pub fn primitive_of(resource: &str) -> &str {
    resource.split_once(':').map_or(resource, |(p, _)| p)
}

/// The configured response to a failed operation, if `rec` is a failure.
fn failure_of(config: &Config, rec: &OpRecord) -> Option<OnFail> {
    let failed = match (rec.op, rec.rc) {
        (_, RC_PENDING) => false,
        (OpName::Monitor, 0 | 8) => false,
        // A probe finding it stopped is an answer, not a failure.
        (OpName::Monitor, 7) => rec.interval_ms > 0,
        (_, 0) => false,
        _ => true,
    };
    if !failed {
        return None;
    }
    let res = config.resources.iter().find(|r| r.id == rec.resource);
    let configured = res.and_then(|r| {
        r.ops
            .iter()
            .find(|o| o.name == rec.op && o.interval_ms == rec.interval_ms)
            .map(|o| o.on_fail)
    });
    Some(configured.unwrap_or(match rec.op {
        OpName::Stop => OnFail::Block,
        _ => OnFail::Restart,
    }))
}

/// The timeout of an operation of a resource, from its configuration.
pub fn op_timeout_ms(config: &Config, resource: &str, op: OpName, interval_ms: u64) -> u64 {
    config
        .resources
        .iter()
        .find(|r| r.id == resource)
        .and_then(|r| {
            r.ops
                .iter()
                .find(|o| o.name == op && o.interval_ms == interval_ms)
                .or_else(|| r.ops.iter().find(|o| o.name == op))
        })
        .map_or(config.cluster.op_defaults.timeout_ms, |o| o.timeout_ms)
}

fn op_of_task(task: Task) -> Option<OpName> {
    Some(match task {
        Task::Start => OpName::Start,
        Task::Stop => OpName::Stop,
        Task::Monitor => OpName::Monitor,
        Task::Promote => OpName::Promote,
        Task::Demote => OpName::Demote,
        _ => return None,
    })
}

impl Controller {
    pub fn new(me: NodeId) -> Controller {
        Controller {
            me,
            members: NodeSet::EMPTY,
            settled: false,
            quorate: false,
            fencing: false,
            leaving: false,
            unclean: NodeSet::EMPTY,
            fenced_members: NodeSet::EMPTY,
            joined_at: BTreeMap::new(),
            last_wall: WallMs(0),
            fence_requests: BTreeMap::new(),
            announced: VecDeque::new(),
            started_clean: false,
            known_resources: None,
            shutting_down: NodeSet::EMPTY,
            run: None,
            transitions: 0,
            dirty: true,
            spins: 0,
            idle: false,
            targets: BTreeMap::new(),
            waiting_for_probe: None,
            first_settled: None,
            seen_all: false,
            failures: BTreeMap::new(),
            local_ops: BTreeMap::new(),
            repend: false,
            unconfirmed: 0,
            out: VecDeque::new(),
        }
    }

    /// The DC of the settled ring, if any.
    pub fn dc(&self) -> Option<NodeId> {
        if self.settled {
            self.members.lowest()
        } else {
            None
        }
    }

    pub fn is_dc(&self) -> bool {
        self.dc() == Some(self.me)
    }

    /// No transition runs and the last one computed had nothing to do.
    pub fn is_idle(&self) -> bool {
        self.settled && self.run.is_none() && self.idle && !self.dirty
    }

    /// The last failed operations seen since this process started (or the
    /// last cleanup of them), newest first.
    pub fn failures(&self) -> Vec<&OpRecord> {
        let mut v: Vec<&OpRecord> = self.failures.values().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.at));
        v
    }

    /// The ring as [`build_view`] takes it.
    pub fn ring_view(&self) -> RingView {
        RingView {
            members: self.members,
            unclean: self.unclean,
            shutting_down: self.shutting_down,
            quorate: self.quorate,
        }
    }

    /// The probe the DC waits for before it places anything.
    pub fn waiting_for_probe(&self) -> Option<(NodeId, &str)> {
        self.waiting_for_probe
            .as_ref()
            .map(|(n, r)| (*n, r.as_str()))
    }

    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Where the last transition puts `resource` (a primitive or `ID:N`).
    pub fn target(&self, resource: &str) -> Option<Option<&str>> {
        self.targets.get(resource).map(|t| t.as_deref())
    }

    /// Whether operations asked of this node still run or wait in its
    /// executor (a node shutting down must not leave before they end: a
    /// cleanup may have erased their pending records).
    ///
    /// Also true while records of this node's operations have not been
    /// applied yet: a node that left with its start's record still queued
    /// (its ring re-forming) would leave the resource running where nobody
    /// knows (found by tests/cluster_sim.rs, long seed 97751).
    pub fn has_local_ops(&self) -> bool {
        !self.local_ops.is_empty() || self.unconfirmed > 0
    }

    /// Submits a record of one of this node's operations.
    fn submit_record(&mut self, rec: OpRecord) {
        self.unconfirmed += 1;
        self.out.push_back(Output::Submit(Command::OpResult(rec)));
    }

    /// The replicated state refused a command (every node alike).
    pub fn handle_refused(&mut self, cmd: &Command) {
        self.confirm(cmd);
    }

    fn confirm(&mut self, cmd: &Command) {
        if let Command::OpResult(rec) = cmd
            && rec.node == self.me
        {
            self.unconfirmed = self.unconfirmed.saturating_sub(1);
        }
    }

    /// Takes the commands waiting to be submitted, leaving the other
    /// outputs queued. The driver calls it right after
    /// [`Controller::handle_execute`], before it handles totem's next
    /// event: a pending record must reach totem ahead of this node's Sync
    /// for a ring that totem installs in the same turn. Totem keeps each
    /// sender's order, so the record is then delivered, and applied, before
    /// that ring's state sync completes, and the ring's DC sees the
    /// operation before it computes anything (found by tests/cluster_sim.rs,
    /// long seed 27173: the record went out after the Sync of a merged
    /// ring, whose new DC started the resource a second time).
    pub fn take_submits(&mut self) -> Vec<Command> {
        let mut submits = Vec::new();
        self.out.retain(|o| match o {
            Output::Submit(cmd) => {
                submits.push(cmd.clone());
                false
            }
            _ => true,
        });
        submits
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The ring, its state and quorum, whenever any of them changes.
    /// `settled`: quorum and the replicated state have synchronised in this
    /// ring. `fencing`: whether nodes that leave must be fenced.
    pub fn handle_ring(&mut self, members: NodeSet, settled: bool, quorate: bool, fencing: bool) {
        self.fencing = fencing;
        if members != self.members {
            let left = self.members.minus(members);
            if fencing {
                for id in left
                    .minus(self.shutting_down)
                    .minus(self.fenced_members)
                    .iter()
                {
                    self.unclean.insert(id);
                }
            }
            self.shutting_down = self.shutting_down.intersect(members);
            self.fenced_members = self.fenced_members.intersect(members);
            // A node back in the ring is no longer a danger.
            self.unclean = self.unclean.minus(members);
            if let Some(run) = &mut self.run {
                // What was in flight on a node that left will not report.
                for s in &mut run.steps {
                    if let (ActionState::InFlight { .. }, Some((node, ..))) = (s.state, &s.run)
                        && !members.contains(*node)
                    {
                        s.state = ActionState::Failed;
                    }
                }
            }
            self.forget_fencers(left);
        }
        if (members, settled, quorate) != (self.members, self.settled, self.quorate) {
            self.members = members;
            self.settled = settled;
            self.quorate = quorate;
            self.changed();
        }
        if !self.is_dc() {
            // Only the DC runs transitions.
            self.run = None;
        }
        if settled && quorate && !self.started_clean {
            // The first time in a settled quorate ring, this node forgets its
            // own operation history: nothing runs here that the cluster
            // started before this process did. Not before: a node alone
            // that records anything about itself decides its own facts when
            // it meets the others, and a standby they set while it was down
            // would be lost (docs/state.md, merge rule 1; found by
            // tests/cluster_sim.rs, seed 8).
            self.started_clean = true;
            self.out.push_back(Output::Submit(Command::Cleanup {
                resource: None,
                node: Some(self.me),
            }));
        }
    }

    /// This node begins a clean shutdown: tell the others (the DC moves its
    /// resources away, or stops them when they can go nowhere).
    pub fn begin_shutdown(&mut self) {
        self.leaving = true;
        self.out
            .push_back(Output::Broadcast(Message::leaving_bytes()));
    }

    /// Nodes that joined the ring (totem's regular configuration): a node
    /// that restarted quickly may have left and joined in one ring change;
    /// whatever it announced before is over.
    pub fn handle_joined(&mut self, joined: NodeSet) {
        if self.leaving && !joined.is_empty() {
            // Nodes that joined did not see the announcement (found by
            // tests/cluster_sim.rs, seed 482: a DC that restarted kept the
            // resources on a node shutting down, which could not leave).
            self.out
                .push_back(Output::Broadcast(Message::leaving_bytes()));
        }
        if !self.shutting_down.intersect(joined).is_empty() {
            self.shutting_down = self.shutting_down.minus(joined);
            self.changed();
        }
        // A fenced node that is back (rebooted) is a node like any other:
        // if it is lost again, it must be fenced again.
        self.fenced_members = self.fenced_members.minus(joined);
        // A fencing node that restarted within one ring change lost the
        // fencing it announced with its process.
        let mut restarted = joined;
        if restarted.contains(self.me) {
            restarted.remove(self.me);
        }
        if self
            .fence_requests
            .keys()
            .any(|(_, fencer)| restarted.contains(*fencer))
        {
            self.forget_fencers(restarted);
            self.changed();
        }
        for id in joined.iter() {
            self.joined_at.insert(id, self.last_wall);
        }
    }

    /// A node announced its clean shutdown.
    pub fn handle_leaving(&mut self, node: NodeId) {
        if !self.shutting_down.contains(node) {
            self.shutting_down.insert(node);
            self.changed();
        }
    }

    /// Whether any resource is active (or an operation pending) on `node`
    /// as the replicated state tells.
    pub fn has_active_resources(config: &Config, state: &ClusterState, node: NodeId) -> bool {
        config.resources.iter().any(|r| {
            let mut active = false;
            for rec in state.op_history(&r.id, node) {
                if rec.rc == RC_PENDING {
                    return true;
                }
                active = match (rec.op, rec.rc) {
                    (OpName::Start | OpName::Promote | OpName::Demote, 0) => true,
                    (OpName::Stop, 0) => false,
                    (OpName::Monitor, 7) => false,
                    (OpName::Monitor, 5) => false,
                    (OpName::Monitor, _) => true,
                    // A failed start may have left something; a failed stop
                    // surely did.
                    (OpName::Start | OpName::Stop, _) => true,
                    _ => active,
                };
            }
            active
        })
    }

    /// A node was fenced (a successful `Fenced` record was applied): it is
    /// safe to start its resources elsewhere. (A node still in the ring,
    /// fenced by an operator, is seen to in [`Controller::handle_applied`].)
    pub fn handle_fenced(&mut self, node: NodeId) {
        if self.unclean.contains(node) {
            self.unclean.remove(node);
            self.changed();
        }
    }

    /// An operator asked this node to fence `target` (`hactl fence`):
    /// announce it to the ring. The daemon runs the devices at
    /// [`Output::OperatorFence`], once the announcement came back (every
    /// node has it then, before the ring can notice `target` gone), or
    /// after [`FENCE_ANNOUNCE_WAIT`] without it. Recorded here at once,
    /// so that this node, as the DC, never fences `target` itself
    /// meanwhile.
    pub fn announce_fencing(&mut self, target: NodeId, now: Instant) {
        assert!(target != self.me, "a node does not fence itself");
        self.fence_requests
            .insert((target, self.me), now + FENCE_RESULT_TIMEOUT);
        self.announced
            .push_back((target, now + FENCE_ANNOUNCE_WAIT));
        self.out
            .push_back(Output::Broadcast(Message::fencing_bytes(target)));
    }

    /// Node `sender` announced that it fences `target` on an operator's
    /// request ([`Message::Fencing`], delivered in agreed order). Until its
    /// `Fenced` record is applied (at the latest [`FENCE_RESULT_TIMEOUT`]
    /// after `now`), while `sender` stays in the ring, a transition that
    /// must fence `target` (it died of that fencing before the record was
    /// applied) awaits that record instead of fencing it again.
    pub fn handle_fencing(&mut self, sender: NodeId, target: NodeId, now: Instant) {
        if sender == target {
            // Nobody fences itself (hactld refuses it): not a real request.
            return;
        }
        self.fence_requests
            .insert((target, sender), now + FENCE_RESULT_TIMEOUT);
        if sender == self.me
            && let Some(i) = self.announced.iter().position(|(t, _)| *t == target)
        {
            self.announced.remove(i);
            self.start_operator_fencing(target);
        }
    }

    /// The devices may run for an announced operator fencing of `target`,
    /// if this node's partition still has quorum (a partition without it
    /// fences nobody: the node may be fine in the majority's ring).
    fn start_operator_fencing(&mut self, target: NodeId) {
        if self.quorate {
            self.out.push_back(Output::OperatorFence { target });
        } else {
            self.fence_requests.remove(&(target, self.me));
            self.out.push_back(Output::OperatorFenceRefused {
                target,
                reason: "this node's partition lost quorum before the fencing started: run hactl fence on a node of the quorate partition".to_string(),
            });
        }
    }

    /// Forgets the announced fencings of `fencers` (they left the ring, or
    /// restarted: their fencing died with them); a transition awaiting one
    /// counts its fencing as failed and fences the node itself next time.
    fn forget_fencers(&mut self, fencers: NodeSet) {
        let me = self.me;
        self.fence_requests
            .retain(|(_, fencer), _| *fencer == me || !fencers.contains(*fencer));
        if let Some(run) = &mut self.run {
            for s in &mut run.steps {
                if let (ActionState::InFlight { .. }, Some(fencer), Some(target)) =
                    (s.state, s.awaits, s.fence)
                    && fencers.contains(fencer)
                {
                    s.state = ActionState::Failed;
                    run.aborted = true;
                    self.out.push_back(Output::Note(format!(
                        "transition {}: {}: node {fencer}, which was fencing node {target} on an operator's request, left or restarted; the DC fences node {target} itself",
                        run.id, s.label
                    )));
                }
            }
        }
    }

    fn changed(&mut self) {
        self.dirty = true;
        self.spins = 0;
        if let Some(run) = &mut self.run {
            run.aborted = true;
        }
    }

    /// The replicated state applied a command (ours or another node's).
    pub fn handle_applied(&mut self, config: &Config, cmd: &Command) {
        self.confirm(cmd);
        match cmd {
            Command::OpResult(rec) if failure_of(config, rec).is_some() => {
                self.failures.insert(
                    (rec.node, rec.resource.clone(), rec.op, rec.interval_ms),
                    rec.clone(),
                );
            }
            Command::Cleanup { resource, node } => {
                self.failures.retain(|(n, r, _, _), _| {
                    !(node.is_none_or(|x| x == *n) && resource.as_ref().is_none_or(|x| x == r))
                });
            }
            _ => {}
        }
        if let Command::Fenced(rec) = cmd {
            // A success ends every fencing of the target; a failure only
            // the one that failed.
            self.fence_requests.retain(|(target, fencer), _| {
                *target != rec.target || (rec.error.is_some() && *fencer != rec.executor)
            });
            // A member fenced (an operator's `hactl fence`): when the ring
            // notices it gone, that is the fencing's outcome, a clean
            // leave. Not if it joined after the fencing ended: then the
            // record is late and the member a rebooted, unfenced one
            // (clocks of different nodes: a skew beyond a reboot's time
            // would defeat this).
            if rec.error.is_none()
                && self.members.contains(rec.target)
                && self
                    .joined_at
                    .get(&rec.target)
                    .is_none_or(|joined| *joined <= rec.at)
            {
                self.fenced_members.insert(rec.target);
            }
        }
        let me = self.me;
        if let Command::Fenced(rec) = cmd
            && let Some(run) = &mut self.run
            && let Some(step) = run.steps.iter_mut().find(|s| {
                // A success by anyone completes it; a failure only if it is
                // of the fencing the step awaits (another node's operator
                // fencing, or this node's own).
                matches!(s.state, ActionState::InFlight { .. })
                    && s.fence == Some(rec.target)
                    && (rec.error.is_none() || rec.executor == s.awaits.unwrap_or(me))
            })
        {
            step.state = if rec.error.is_none() {
                ActionState::Done
            } else {
                ActionState::Failed
            };
        }
        if let Command::Cleanup { resource, node } = cmd
            && node.is_none_or(|n| n == self.me)
        {
            // What this node knew of them is gone: its executor's fail
            // counts too, and it probes them again (the DC waits for the
            // answers before it places them). Operations still running here
            // are recorded pending again (found by tests/cluster_sim.rs,
            // long seed 3398: a start queued behind a hung stop lost its
            // pending record to a cleanup, and the DC started the resource
            // elsewhere too).
            self.out.push_back(Output::ForgetFailures {
                resource: resource.clone(),
            });
            self.repend = self.local_ops.keys().any(|(r, op, _)| {
                *op != OpName::Monitor && resource.as_ref().is_none_or(|x| x == r)
            });
            for r in &config.resources {
                if resource.as_ref().is_none_or(|x| *x == r.id) {
                    self.probe(config, &r.id);
                }
            }
        }
        if let Command::OpResult(rec) = cmd {
            if rec.rc == RC_PENDING {
                return;
            }
            if let Some(run) = &mut self.run {
                let awaited = run.steps.iter_mut().find(|s| {
                    matches!(s.state, ActionState::InFlight { .. })
                        && s.run.as_ref().is_some_and(|(n, r, op, i, _)| {
                            *n == rec.node
                                && primitive_of(r) == rec.resource
                                && *op == rec.op
                                && *i == rec.interval_ms
                        })
                });
                if let Some(step) = awaited {
                    let ok = match (rec.op, rec.rc) {
                        // A probe: any answer is an answer.
                        (OpName::Monitor, 0 | 7 | 8) if rec.interval_ms == 0 => true,
                        (_, 0) => true,
                        _ => false,
                    };
                    step.state = if ok {
                        ActionState::Done
                    } else {
                        ActionState::Failed
                    };
                    if !ok {
                        let label = step.label.clone();
                        self.out.push_back(Output::Note(format!(
                            "transition {}: {label} failed (rc {}{})",
                            run.id,
                            rec.rc,
                            if rec.exit_reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", rec.exit_reason)
                            }
                        )));
                        run.aborted = true;
                        self.dirty = true;
                    } else if rec.op == OpName::Monitor && rec.interval_ms == 0 {
                        // Probes change what the scheduler knows: compute
                        // again once this transition is done.
                        self.dirty = true;
                    }
                    return;
                }
            }
            // A result nobody awaited: a recurring monitor that changed, a
            // probe after a restart, an operation of an earlier DC.
            self.changed();
            return;
        }
        self.changed();
    }

    /// The state synchronised after a ring change. (The first time the
    /// ring is settled and quorate, [`Controller::handle_ring`] has this
    /// node forget its own operation history.)
    pub fn handle_state_synced(&mut self) {
        self.changed();
    }

    /// A controller message delivered by totem.
    pub fn handle_execute(&mut self, sender: NodeId, msg: &Execute, now_wall: WallMs) {
        if msg.node != self.me || Some(sender) != self.dc() || msg.dc != sender {
            return;
        }
        let resource = primitive_of(&msg.resource).to_string();
        if msg.op != OpName::Monitor {
            // Recorded before it runs: a DC that takes over sees it.
            self.submit_record(OpRecord {
                resource: resource.clone(),
                node: self.me,
                op: msg.op,
                interval_ms: msg.interval_ms,
                rc: RC_PENDING,
                at: now_wall,
                exit_reason: String::new(),
            });
        }
        *self
            .local_ops
            .entry((resource.clone(), msg.op, msg.interval_ms))
            .or_default() += 1;
        self.out.push_back(Output::Run {
            resource,
            op: msg.op,
            interval_ms: msg.interval_ms,
            timeout_ms: msg.timeout_ms,
        });
    }

    /// A local operation ended (or a recurring monitor / agent notice
    /// reported a change). `fail_count`: the executor's count for the
    /// resource on this node after it.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_op_result(
        &mut self,
        resource: &str,
        op: OpName,
        interval_ms: u64,
        rc: i32,
        exit_reason: &str,
        failed: bool,
        fail_count: u32,
        now_wall: WallMs,
    ) {
        self.submit_record(OpRecord {
            resource: resource.to_string(),
            node: self.me,
            op,
            interval_ms,
            rc,
            at: now_wall,
            exit_reason: crate::state::truncate_utf8(
                exit_reason,
                crate::state::EXIT_REASON_BYTES_MAX,
            )
            .to_string(),
        });
        let key = (resource.to_string(), op, interval_ms);
        if let Some(n) = self.local_ops.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.local_ops.remove(&key);
            } else if op != OpName::Monitor {
                // The same operation waits again in the executor (asked
                // for by a later transition): the result just recorded
                // replaced its pending record, so record it again.
                self.submit_record(OpRecord {
                    resource: resource.to_string(),
                    node: self.me,
                    op,
                    interval_ms,
                    rc: RC_PENDING,
                    at: now_wall,
                    exit_reason: String::new(),
                });
            }
        }
        if failed && fail_count > 0 {
            self.out.push_back(Output::Submit(Command::FailCountSet {
                resource: resource.to_string(),
                node: self.me,
                count: fail_count,
            }));
        }
        if op == OpName::Monitor && interval_ms == 0 && (rc == 0 || rc == 8) {
            self.out.push_back(Output::StartMonitors {
                resource: resource.to_string(),
                promoted: rc == 8,
            });
        }
    }

    /// Runs a probe (a one-shot monitor) of `resource` on this node.
    fn probe(&mut self, config: &Config, resource: &str) {
        *self
            .local_ops
            .entry((resource.to_string(), OpName::Monitor, 0))
            .or_default() += 1;
        self.out.push_back(Output::Run {
            resource: resource.to_string(),
            op: OpName::Monitor,
            interval_ms: 0,
            timeout_ms: op_timeout_ms(config, resource, OpName::Monitor, 0),
        });
    }

    /// Probes the resources the configuration gained since the last tick
    /// (before this node forgot its history at start, the probes of that
    /// cleanup cover every resource).
    fn probe_new_resources(&mut self, config: &Config) {
        let same = self.known_resources.as_ref().is_some_and(|k| {
            k.len() == config.resources.len() && config.resources.iter().all(|r| k.contains(&r.id))
        });
        if same {
            return;
        }
        let known = self
            .known_resources
            .replace(config.resources.iter().map(|r| r.id.clone()).collect());
        if let Some(known) = known
            && self.started_clean
        {
            for r in config.resources.iter().filter(|r| !known.contains(&r.id)) {
                self.probe(config, &r.id);
            }
        }
    }

    /// Runs the DC's work: time-outs of awaited results, dispatch, and a new
    /// transition when the last one is over and something changed.
    pub fn tick(&mut self, config: &Config, state: &ClusterState, now_wall: WallMs, now: Instant) {
        self.last_wall = now_wall;
        while let Some(&(target, at)) = self.announced.front()
            && now >= at
        {
            self.announced.pop_front();
            self.out.push_back(Output::Note(format!(
                "the announcement of fencing node {target} did not come back within {} s (the ring is re-forming?); fencing it anyway",
                FENCE_ANNOUNCE_WAIT.as_secs()
            )));
            self.start_operator_fencing(target);
        }
        self.fence_requests.retain(|_, until| now < *until);
        self.probe_new_resources(config);
        if std::mem::take(&mut self.repend) {
            let running: Vec<(String, OpName, u64)> = self
                .local_ops
                .keys()
                .filter(|(_, op, _)| *op != OpName::Monitor)
                .cloned()
                .collect();
            for (resource, op, interval_ms) in running {
                self.submit_record(OpRecord {
                    resource,
                    node: self.me,
                    op,
                    interval_ms,
                    rc: RC_PENDING,
                    at: now_wall,
                    exit_reason: String::new(),
                });
            }
        }
        if !self.settled {
            return;
        }
        if let Some(run) = &mut self.run {
            for s in &mut run.steps {
                if let ActionState::InFlight { deadline } = s.state
                    && now >= deadline
                {
                    s.state = ActionState::Failed;
                    run.aborted = true;
                    self.dirty = true;
                    self.out.push_back(Output::Note(format!(
                        "transition {}: no result for {} in time; counted as failed",
                        run.id, s.label
                    )));
                }
            }
        }
        self.dispatch(state, now);
        if self.run.is_some() || !self.dirty {
            return;
        }
        if self.spins >= TRANSITIONS_PER_CHANGE_MAX {
            return;
        }
        // At start, give the configured nodes that are missing a moment to
        // join (their probes may find what already runs there).
        let first = *self.first_settled.get_or_insert(now);
        let configured: NodeSet = {
            let mut all = NodeSet::EMPTY;
            config.nodes.iter().for_each(|n| all.insert(n.id));
            all
        };
        if configured.is_subset(self.members) {
            self.seen_all = true;
        }
        if !self.seen_all && now < first + STARTUP_WAIT {
            return;
        }
        // Nothing is placed before every member has answered the probes of
        // every resource (start-up, and after a cleanup).
        let unprobed = self.members.iter().find_map(|id| {
            config
                .resources
                .iter()
                .find(|r| state.op_history(&r.id, id).is_empty())
                .map(|r| (id, r.id.clone()))
        });
        if let Some((node, resource)) = unprobed {
            self.waiting_for_probe = Some((node, resource));
            return;
        }
        self.waiting_for_probe = None;
        self.spins += 1;
        self.dirty = false;
        let mut ring = self.ring_view();
        if self.fencing {
            ring.unclean = ring
                .unclean
                .union(unclean_by_state(config, state, self.members));
        }
        let (cfg, view) = build_view(config, state, &ring, now_wall, now);
        let t = scheduler::schedule_with(
            &cfg,
            &Extensions::for_config(config),
            &view,
            now,
            scheduler::Options::default(),
        );
        self.targets = t
            .placements
            .iter()
            .map(|p| (p.resource.clone(), p.node.clone()))
            .collect();
        let node_id = |name: &Option<String>| {
            name.as_deref()
                .and_then(|n| config.node_by_name(n))
                .map(|n| n.id)
        };
        let mut steps: Vec<Step> = t
            .actions
            .iter()
            .map(|a| {
                let op = op_of_task(a.task);
                let label = format!(
                    "{}{}{}{}",
                    a.task.as_str(),
                    a.resource
                        .as_deref()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default(),
                    if a.interval_ms > 0 {
                        format!(" every {} ms", a.interval_ms)
                    } else {
                        String::new()
                    },
                    a.node
                        .as_deref()
                        .map(|n| format!(" on {n}"))
                        .unwrap_or_default()
                );
                let run = match (op, &a.resource, node_id(&a.node)) {
                    // Recurring monitors are the executor's, after a start.
                    (Some(OpName::Monitor), _, _) if a.interval_ms > 0 => None,
                    (Some(op), Some(r), Some(n)) => Some((
                        n,
                        r.clone(),
                        op,
                        a.interval_ms,
                        op_timeout_ms(config, primitive_of(r), op, a.interval_ms),
                    )),
                    _ => None,
                };
                Step {
                    run,
                    fence: if a.task == Task::Fence {
                        node_id(&a.node)
                    } else {
                        None
                    },
                    awaits: None,
                    label,
                    state: ActionState::Waiting,
                    preds: Vec::new(),
                }
            })
            .collect();
        for &(first, then) in &t.edges {
            if first < steps.len() && then < steps.len() {
                steps[then].preds.push(first);
            }
        }
        let real = steps
            .iter()
            .filter(|s| s.run.is_some() || s.fence.is_some())
            .count();
        // Every node computes what the DC computes (the same inputs, in
        // agreed order), so every node can tell whether the cluster has
        // settled; only the DC acts on it.
        let pending = self.members.iter().any(|id| {
            config.resources.iter().any(|r| {
                state
                    .op_history(&r.id, id)
                    .iter()
                    .any(|rec| rec.rc == RC_PENDING)
            })
        });
        self.idle = real == 0 && !pending;
        if real == 0 {
            return;
        }
        // Counted on every node (they compute alike), so that a client on
        // any node sees a new transition begin.
        self.transitions += 1;
        if !self.is_dc() {
            return;
        }
        self.out.push_back(Output::Note(format!(
            "transition {}: {} action(s): {}",
            self.transitions,
            real,
            if t.summary.is_empty() {
                "probes".to_string()
            } else {
                t.summary.join("; ")
            }
        )));
        self.run = Some(Run {
            id: self.transitions,
            steps,
            aborted: false,
        });
        self.dispatch(state, now);
    }

    /// Starts every action whose predecessors succeeded; ends the run when
    /// nothing more can happen.
    fn dispatch(&mut self, state: &ClusterState, now: Instant) {
        let Some(run) = &mut self.run else { return };
        loop {
            let mut progressed = false;
            for i in 0..run.steps.len() {
                if run.steps[i].state != ActionState::Waiting || run.aborted {
                    continue;
                }
                let preds = run.steps[i].preds.clone();
                if preds
                    .iter()
                    .any(|p| run.steps[*p].state != ActionState::Done)
                {
                    continue;
                }
                let step = &mut run.steps[i];
                if step.fence == Some(self.me) {
                    // The DC does not fence itself: it would die with the
                    // transition and, restarted with the same history, do
                    // it again (found by tests/cluster_sim.rs, seed 268).
                    // The step fails; what needed it stays blocked until an
                    // operator cleans it up or another DC fences the node.
                    step.state = ActionState::Failed;
                    let label = step.label.clone();
                    self.out.push_back(Output::Note(format!(
                        "transition {}: {label} refused: the DC does not fence itself",
                        run.id
                    )));
                    run.aborted = true;
                    progressed = true;
                    continue;
                }
                if let Some(target) = step.fence {
                    let deadline = match announced_fencing(
                        &self.fence_requests,
                        self.me,
                        self.members,
                        target,
                        now,
                    ) {
                        Some((fencer, until)) => {
                            // An operator's fencing of it runs (announced
                            // in agreed order): its record completes this
                            // step; if none comes in time, or the fencing
                            // node leaves, the step fails and the next
                            // transition fences it here.
                            step.awaits = (fencer != self.me).then_some(fencer);
                            let label = step.label.clone();
                            self.out.push_back(Output::Note(format!(
                                "transition {}: {label}: already being fenced by node {fencer} on an operator's request; awaiting that outcome (for {} s at most)",
                                run.id,
                                until.saturating_since(now).as_secs()
                            )));
                            until
                        }
                        None => {
                            step.awaits = None;
                            self.out.push_back(Output::Fence { target });
                            now + FENCE_RESULT_TIMEOUT
                        }
                    };
                    step.state = ActionState::InFlight { deadline };
                    progressed = true;
                    continue;
                }
                if let Some((node, resource, OpName::Start | OpName::Promote, ..)) = &step.run
                    && let Some(other) = pending_elsewhere(state, self.members, resource, *node)
                {
                    // An operation on it still waits on another node (its
                    // result came from an earlier request of the same
                    // operation): starting it here could make it run twice.
                    // Compute again once that node reports.
                    let label = step.label.clone();
                    self.out.push_back(Output::Note(format!(
                        "transition {}: {label} held back: an operation of it is still pending on node {other}",
                        run.id
                    )));
                    run.aborted = true;
                    self.dirty = true;
                    break;
                }
                match &step.run {
                    None => step.state = ActionState::Done,
                    Some((node, resource, op, interval_ms, timeout_ms)) => {
                        let msg = Execute {
                            dc: self.me,
                            transition: run.id,
                            action: i as u32,
                            node: *node,
                            resource: resource.clone(),
                            op: *op,
                            interval_ms: *interval_ms,
                            timeout_ms: *timeout_ms,
                        };
                        self.out.push_back(Output::Broadcast(msg.to_bytes()));
                        step.state = ActionState::InFlight {
                            deadline: now + Duration::from_millis(*timeout_ms) + RESULT_GRACE,
                        };
                    }
                }
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let in_flight = run
            .steps
            .iter()
            .any(|s| matches!(s.state, ActionState::InFlight { .. }));
        let runnable = !run.aborted
            && run.steps.iter().any(|s| {
                s.state == ActionState::Waiting
                    && s.preds
                        .iter()
                        .all(|p| run.steps[*p].state == ActionState::Done)
            });
        if !in_flight && !runnable {
            let failed = run
                .steps
                .iter()
                .filter(|s| s.state == ActionState::Failed)
                .count();
            let done = run
                .steps
                .iter()
                .filter(|s| s.state == ActionState::Done && s.run.is_some())
                .count();
            self.out.push_back(Output::Note(format!(
                "transition {} {}: {done} action(s) done, {failed} failed",
                run.id,
                if run.aborted || failed > 0 {
                    "ended early"
                } else {
                    "complete"
                }
            )));
            self.run = None;
            // Compute again: to confirm there is nothing left to do, or to
            // recover from what went wrong.
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests;
