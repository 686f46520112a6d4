//! The local executor (Pacemaker's pacemaker-execd): runs agent operations
//! on this node and reports every result as an [`OpEvent`].
//!
//! - One operation at a time per resource; later ones wait in a FIFO queue
//!   (at most [`QUEUE_OPS_MAX`]). Different resources run in parallel.
//! - Every operation is bounded: the agent ends it at `req.timeout`, and the
//!   executor gives up `backstop_grace` later in any case (dropping the
//!   operation kills what it runs), answering [`OcfCode::ErrGeneric`].
//! - Recurring monitors (a resource's `monitor` ops with an interval) start
//!   after a successful start (the promoted-role ones after a promote), or
//!   on request ([`ExecutorHandle::start_monitors`], after a probe found
//!   the resource running); they are cancelled when a stop is requested.
//!   The first run follows at once, the next ones `interval` after the
//!   previous one ended. As in Pacemaker, a recurring monitor's result is
//!   reported only when it differs from the last one reported.
//! - Agents' [`Notice`]s (a systemd unit that failed by itself) become
//!   failed-monitor events at once.
//! - Fail counts, as Pacemaker keeps them: keyed by node, resource,
//!   operation and interval (so that the controller can merge every node's
//!   counts); a failed start sets INFINITY when `start_failure_is_fatal`
//!   (Pacemaker's default) and adds 1 otherwise, a failed stop sets
//!   INFINITY, a failed promote, demote or recurring monitor adds 1; a
//!   probe (one-shot monitor) never counts. [`ExecutorHandle::cleanup`]
//!   clears them.
//!
//! Shape: [`Core`] decides (queues, monitors, fail counts) without I/O or
//! clocks, in the style of the crate's other cores; [`spawn`] runs it on a
//! tokio task, driven by the commands of an [`ExecutorHandle`]. Nothing the
//! handle does blocks: commands go over an unbounded channel, and queries
//! are futures.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::agents::{AgentAction, Notice, OcfCode, OpOutcome, OpRequest, ResourceAgent};
use crate::config;

/// Operations waiting per resource, beyond which a request is refused.
pub const QUEUE_OPS_MAX: usize = 64;
/// Pacemaker's INFINITY: a fail count that bans the resource from the node.
pub const FAIL_COUNT_INFINITY: u32 = 1_000_000;
/// Default time the executor waits beyond an operation's own timeout.
pub const BACKSTOP_GRACE_MS_DEFAULT: u64 = 5_000;

/// Settings of the executor.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// This node's name: fail counts are kept under it.
    pub node: String,
    /// Pacemaker's start-failure-is-fatal (default true): a failed start
    /// sets the fail count to INFINITY instead of adding 1.
    pub start_failure_is_fatal: bool,
    /// How long after an operation's timeout the executor gives up on it.
    pub backstop_grace: Duration,
}

impl ExecutorConfig {
    pub fn new(node: &str) -> ExecutorConfig {
        ExecutorConfig {
            node: node.to_string(),
            start_failure_is_fatal: true,
            backstop_grace: Duration::from_millis(BACKSTOP_GRACE_MS_DEFAULT),
        }
    }
}

/// The role a recurring monitor checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorRole {
    /// Any running resource (expects [`OcfCode::Success`], or
    /// [`OcfCode::RunningPromoted`] when promoted).
    Any,
    /// Only while running unpromoted (expects Success).
    Unpromoted,
    /// Only while promoted (expects RunningPromoted).
    Promoted,
}

/// One recurring monitor of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorSpec {
    pub interval: Duration,
    pub timeout: Duration,
    pub role: MonitorRole,
    pub check_level: u32,
}

/// What the executor knows of a resource: its parameters (for recurring
/// monitors) and its recurring monitors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceSpec {
    pub params: BTreeMap<String, String>,
    pub monitors: Vec<MonitorSpec>,
}

impl ResourceSpec {
    /// The spec of a configured resource: its params and its monitor ops
    /// that have an interval.
    pub fn from_config(res: &config::Resource) -> ResourceSpec {
        let monitors = res
            .ops
            .iter()
            .filter(|o| o.name == config::OpName::Monitor && o.interval_ms > 0)
            .map(|o| MonitorSpec {
                interval: Duration::from_millis(o.interval_ms),
                timeout: Duration::from_millis(o.timeout_ms),
                role: match o.role {
                    Some(config::Role::Promoted) => MonitorRole::Promoted,
                    Some(config::Role::Unpromoted) => MonitorRole::Unpromoted,
                    _ => MonitorRole::Any,
                },
                check_level: 0,
            })
            .collect();
        ResourceSpec {
            params: res.params.clone(),
            monitors,
        }
    }
}

/// Why an operation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Asked for through [`ExecutorHandle::execute`].
    Requested,
    /// A recurring monitor.
    Recurring,
    /// An agent's [`Notice`] (no operation ran).
    Notice,
    /// Refused by the executor itself (unknown resource, full queue).
    Refused,
}

/// The result of one operation (or notice), as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpEvent {
    pub node: String,
    pub resource: String,
    pub action: AgentAction,
    /// Zero for one-shot operations.
    pub interval: Duration,
    pub code: OcfCode,
    pub exit_reason: String,
    /// The meta-data XML of a meta-data operation; empty otherwise.
    pub output: String,
    /// How long the operation ran (zero for notices and refusals).
    pub duration: Duration,
    /// When it ended (wall clock, for people and logs).
    pub when: SystemTime,
    pub origin: Origin,
    /// Not the result expected of the operation: a failure.
    pub failed: bool,
    /// The resource's fail count on this node after this event.
    pub fail_count: u32,
}

/// Key of a fail count: Pacemaker's `fail-count-RSC#OP_INTERVAL` on NODE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FailKey {
    pub node: String,
    pub resource: String,
    pub action: AgentAction,
    pub interval_ms: u64,
}

/// One fail count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailCount {
    pub key: FailKey,
    /// 1..=[`FAIL_COUNT_INFINITY`].
    pub count: u32,
    pub last_failure: SystemTime,
}

/// Adds fail counts as Pacemaker adds scores: saturating at INFINITY.
pub fn add_fail_counts(a: u32, b: u32) -> u32 {
    a.saturating_add(b).min(FAIL_COUNT_INFINITY)
}

// ------------------------------------------------------------------ the core

/// What the driver must do next (from [`Core::poll_output`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Run this operation; report its end with [`Core::handle_done`].
    Run { op_id: u64, req: OpRequest },
    /// Call [`Core::handle_tick`] with these values after `after`.
    Arm {
        resource: String,
        interval: Duration,
        generation: u64,
        after: Duration,
    },
    /// Deliver this event.
    Event(OpEvent),
}

/// What the resource is believed to be doing, from the operations seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Unknown,
    Stopped,
    Started,
    Promoted,
}

#[derive(Clone, Debug)]
struct Queued {
    req: OpRequest,
    origin: Origin,
    /// For recurring monitors: the generation it belongs to.
    generation: u64,
}

#[derive(Debug)]
struct ResState {
    spec: ResourceSpec,
    queue: VecDeque<Queued>,
    busy: Option<u64>,
    role: Role,
    /// Bumped whenever the recurring monitors are cancelled or restarted;
    /// ticks and results of an older generation are dropped.
    generation: u64,
    monitors_active: bool,
    /// Last reported recurring result per interval (ms).
    last_reported: BTreeMap<u64, OcfCode>,
}

/// The executor's decisions: queues, recurring monitors, fail counts. No
/// I/O and no clock: the driver passes `when` and durations in.
#[derive(Debug)]
pub struct Core {
    cfg: ExecutorConfig,
    resources: BTreeMap<String, ResState>,
    in_flight: HashMap<u64, (String, Queued)>,
    fails: BTreeMap<FailKey, FailCount>,
    out: VecDeque<Output>,
    next_op_id: u64,
}

/// Pacemaker treats the degraded codes as their healthy counterparts when
/// it compares results with expectations.
fn effective(code: OcfCode) -> OcfCode {
    match code {
        OcfCode::Degraded => OcfCode::Success,
        OcfCode::DegradedPromoted => OcfCode::RunningPromoted,
        c => c,
    }
}

impl Core {
    pub fn new(cfg: ExecutorConfig) -> Core {
        Core {
            cfg,
            resources: BTreeMap::new(),
            in_flight: HashMap::new(),
            fails: BTreeMap::new(),
            out: VecDeque::new(),
            next_op_id: 1,
        }
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Makes a resource known (again: a new spec replaces the old one and
    /// restarts its active monitors).
    pub fn register(&mut self, resource: &str, spec: ResourceSpec) {
        match self.resources.get_mut(resource) {
            Some(st) => {
                st.spec = spec;
                if st.monitors_active {
                    self.activate_monitors(resource);
                }
            }
            None => {
                self.resources.insert(
                    resource.to_string(),
                    ResState {
                        spec,
                        queue: VecDeque::new(),
                        busy: None,
                        role: Role::Unknown,
                        generation: 0,
                        monitors_active: false,
                        last_reported: BTreeMap::new(),
                    },
                );
            }
        }
    }

    /// Forgets a resource: queued operations are dropped, monitors stop; an
    /// operation in flight still reports its result.
    pub fn unregister(&mut self, resource: &str) {
        self.resources.remove(resource);
    }

    pub fn is_registered(&self, resource: &str) -> bool {
        self.resources.contains_key(resource)
    }

    /// Queues an operation. A stop cancels the resource's recurring
    /// monitors first (as Pacemaker cancels them before stopping).
    pub fn submit(&mut self, req: OpRequest, when: SystemTime) {
        let Some(st) = self.resources.get_mut(&req.resource) else {
            let reason = format!(
                "resource \"{}\" is not registered with the executor (is it in the configuration?)",
                req.resource
            );
            self.refuse(req, OcfCode::ErrGeneric, reason, when);
            return;
        };
        if st.queue.len() >= QUEUE_OPS_MAX {
            let reason = format!(
                "{} operations already wait for resource \"{}\"; refusing {} (is its agent hanging?)",
                QUEUE_OPS_MAX, req.resource, req.action
            );
            self.refuse(req, OcfCode::ErrGeneric, reason, when);
            return;
        }
        if req.action == AgentAction::Stop {
            Self::cancel_in(st);
        }
        st.queue.push_back(Queued {
            req: req.clone(),
            origin: Origin::Requested,
            generation: 0,
        });
        self.dispatch(&req.resource);
    }

    /// Starts the recurring monitors of a resource found running (by a
    /// probe); `promoted` selects the promoted-role monitors.
    pub fn start_monitors(&mut self, resource: &str, promoted: bool) {
        if let Some(st) = self.resources.get_mut(resource) {
            st.role = if promoted {
                Role::Promoted
            } else {
                Role::Started
            };
            self.activate_monitors(resource);
        }
    }

    /// Cancels the recurring monitors of a resource.
    pub fn cancel_monitors(&mut self, resource: &str) {
        if let Some(st) = self.resources.get_mut(resource) {
            Self::cancel_in(st);
        }
    }

    /// Clears fail counts (of one resource, or all) and forgets the last
    /// reported recurring results, so the next monitor reports afresh.
    pub fn cleanup(&mut self, resource: Option<&str>) {
        self.fails
            .retain(|k, _| resource.is_some_and(|r| r != k.resource));
        for (name, st) in self.resources.iter_mut() {
            if resource.is_none_or(|r| r == name) {
                st.last_reported.clear();
            }
        }
    }

    /// Every fail count, in key order.
    pub fn fail_counts(&self) -> Vec<FailCount> {
        self.fails.values().cloned().collect()
    }

    /// A resource's total fail count on this node (saturating at INFINITY).
    pub fn fail_count(&self, resource: &str) -> u32 {
        self.fails
            .values()
            .filter(|f| f.key.resource == resource)
            .fold(0, |acc, f| add_fail_counts(acc, f.count))
    }

    /// Operations waiting (not running) for a resource.
    pub fn queued(&self, resource: &str) -> usize {
        self.resources.get(resource).map_or(0, |s| s.queue.len())
    }

    pub fn handle_tick(&mut self, resource: &str, interval: Duration, generation: u64) {
        let Some(st) = self.resources.get_mut(resource) else {
            return;
        };
        if generation != st.generation || !st.monitors_active {
            return;
        }
        let Some(m) = st
            .spec
            .monitors
            .iter()
            .find(|m| m.interval == interval)
            .cloned()
        else {
            return;
        };
        let req = OpRequest {
            resource: resource.to_string(),
            action: AgentAction::Monitor,
            params: st.spec.params.clone(),
            timeout: m.timeout,
            interval: m.interval,
            check_level: m.check_level,
        };
        st.queue.push_back(Queued {
            req,
            origin: Origin::Recurring,
            generation,
        });
        self.dispatch(resource);
    }

    /// An operation the driver ran has ended.
    pub fn handle_done(
        &mut self,
        op_id: u64,
        outcome: OpOutcome,
        duration: Duration,
        when: SystemTime,
    ) {
        let Some((resource, q)) = self.in_flight.remove(&op_id) else {
            return;
        };
        let Some(st) = self.resources.get_mut(&resource) else {
            // Unregistered while it ran: report it, decide nothing.
            let ev = self.event(&q, outcome, duration, when, false);
            self.out.push_back(Output::Event(ev));
            return;
        };
        st.busy = None;
        let action = q.req.action;
        let code = effective(outcome.code);
        let mut emit = true;
        let failed;
        match (action, q.origin) {
            (AgentAction::Monitor, Origin::Recurring) => {
                if q.generation != st.generation || !st.monitors_active {
                    // Cancelled while it ran.
                    self.dispatch(&resource);
                    return;
                }
                let expect = if st.role == Role::Promoted {
                    OcfCode::RunningPromoted
                } else {
                    OcfCode::Success
                };
                failed = code != expect;
                let key = q.req.interval.as_millis() as u64;
                emit = st.last_reported.get(&key) != Some(&outcome.code);
                st.last_reported.insert(key, outcome.code);
                self.out.push_back(Output::Arm {
                    resource: resource.clone(),
                    interval: q.req.interval,
                    generation: q.generation,
                    after: q.req.interval,
                });
            }
            (AgentAction::Monitor, _) => {
                // A probe: any clean state is an answer, not a failure.
                failed = !matches!(
                    code,
                    OcfCode::Success | OcfCode::NotRunning | OcfCode::RunningPromoted
                );
                st.role = match code {
                    OcfCode::Success => Role::Started,
                    OcfCode::RunningPromoted => Role::Promoted,
                    OcfCode::NotRunning => Role::Stopped,
                    _ => Role::Unknown,
                };
            }
            (AgentAction::Start, _) => {
                failed = code != OcfCode::Success;
                st.role = if failed { Role::Unknown } else { Role::Started };
            }
            (AgentAction::Stop, _) => {
                failed = code != OcfCode::Success;
                st.role = if failed { Role::Unknown } else { Role::Stopped };
            }
            (AgentAction::Promote, _) => {
                failed = code != OcfCode::Success;
                st.role = if failed {
                    Role::Unknown
                } else {
                    Role::Promoted
                };
            }
            (AgentAction::Demote, _) => {
                failed = code != OcfCode::Success;
                st.role = if failed { Role::Unknown } else { Role::Started };
            }
            (AgentAction::MetaData | AgentAction::ValidateAll, _) => {
                failed = code != OcfCode::Success;
            }
        }
        // Role changes (re)start or end the recurring monitors.
        let activate = !failed
            && q.origin == Origin::Requested
            && matches!(
                action,
                AgentAction::Start | AgentAction::Promote | AgentAction::Demote
            );
        if failed && q.origin == Origin::Requested && action != AgentAction::Monitor {
            Self::cancel_in(st);
        }
        // An unchanged recurring result is not reported, and so (as in
        // Pacemaker, where the controller counts what the executor reports)
        // not counted again.
        if failed && emit {
            self.count_failure(&q.req, when);
        }
        if emit {
            let ev = self.event(&q, outcome, duration, when, failed);
            self.out.push_back(Output::Event(ev));
        }
        if activate {
            self.activate_monitors(&resource);
        }
        self.dispatch(&resource);
    }

    /// An agent noticed a change by itself.
    pub fn handle_notice(&mut self, notice: Notice, when: SystemTime) {
        let Some(st) = self.resources.get_mut(&notice.resource) else {
            return;
        };
        let expect = match st.role {
            Role::Started => Some(OcfCode::Success),
            Role::Promoted => Some(OcfCode::RunningPromoted),
            // Not believed running: a stopped or failed resource that is
            // still not running is no news.
            Role::Stopped | Role::Unknown => None,
        };
        let code = effective(notice.code);
        let failed = expect.is_some_and(|e| e != code);
        // Report under the interval of the resource's active monitor, so the
        // failure counts where a monitor would have counted it.
        let interval = if st.monitors_active {
            Self::active_monitors(st)
                .first()
                .map_or(Duration::ZERO, |m| m.interval)
        } else {
            Duration::ZERO
        };
        // The next recurring monitor that finds the same state must not
        // report it a second time.
        for m in Self::active_monitors(st) {
            st.last_reported
                .insert(m.interval.as_millis() as u64, notice.code);
        }
        let q = Queued {
            req: OpRequest {
                resource: notice.resource.clone(),
                action: AgentAction::Monitor,
                params: BTreeMap::new(),
                timeout: Duration::ZERO,
                interval,
                check_level: 0,
            },
            origin: Origin::Notice,
            generation: 0,
        };
        if failed {
            self.count_failure(&q.req, when);
        }
        let outcome = OpOutcome::fail(notice.code, notice.exit_reason);
        let ev = self.event(&q, outcome, Duration::ZERO, when, failed);
        self.out.push_back(Output::Event(ev));
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    // ------------------------------------------------------------ inside

    fn refuse(&mut self, req: OpRequest, code: OcfCode, reason: String, when: SystemTime) {
        let q = Queued {
            req,
            origin: Origin::Refused,
            generation: 0,
        };
        let ev = self.event(
            &q,
            OpOutcome::fail(code, reason),
            Duration::ZERO,
            when,
            true,
        );
        self.out.push_back(Output::Event(ev));
    }

    fn event(
        &self,
        q: &Queued,
        outcome: OpOutcome,
        duration: Duration,
        when: SystemTime,
        failed: bool,
    ) -> OpEvent {
        OpEvent {
            node: self.cfg.node.clone(),
            resource: q.req.resource.clone(),
            action: q.req.action,
            interval: q.req.interval,
            code: outcome.code,
            exit_reason: outcome.exit_reason,
            output: outcome.output,
            duration,
            when,
            origin: q.origin,
            failed,
            fail_count: self.fail_count(&q.req.resource),
        }
    }

    /// Counts a failure as Pacemaker's controller does.
    fn count_failure(&mut self, req: &OpRequest, when: SystemTime) {
        let add = match req.action {
            AgentAction::Start if self.cfg.start_failure_is_fatal => FAIL_COUNT_INFINITY,
            AgentAction::Stop => FAIL_COUNT_INFINITY,
            AgentAction::Start | AgentAction::Promote | AgentAction::Demote => 1,
            AgentAction::Monitor if !req.interval.is_zero() => 1,
            // Probes, meta-data and validation do not count.
            _ => return,
        };
        let key = FailKey {
            node: self.cfg.node.clone(),
            resource: req.resource.clone(),
            action: req.action,
            interval_ms: req.interval.as_millis() as u64,
        };
        let e = self.fails.entry(key.clone()).or_insert(FailCount {
            key,
            count: 0,
            last_failure: when,
        });
        e.count = add_fail_counts(e.count, add);
        e.last_failure = when;
    }

    fn active_monitors(st: &ResState) -> Vec<MonitorSpec> {
        st.spec
            .monitors
            .iter()
            .filter(|m| {
                matches!(
                    (m.role, st.role),
                    (MonitorRole::Any, Role::Started | Role::Promoted)
                        | (MonitorRole::Unpromoted, Role::Started)
                        | (MonitorRole::Promoted, Role::Promoted)
                )
            })
            .cloned()
            .collect()
    }

    fn cancel_in(st: &mut ResState) {
        st.generation += 1;
        st.monitors_active = false;
        st.queue.retain(|q| q.origin != Origin::Recurring);
        st.last_reported.clear();
    }

    /// (Re)starts the monitors that fit the resource's role: each runs once
    /// now (queued), then every interval.
    fn activate_monitors(&mut self, resource: &str) {
        let Some(st) = self.resources.get_mut(resource) else {
            return;
        };
        Self::cancel_in(st);
        // A stop already waits: monitors would only find it stopped.
        if st
            .queue
            .iter()
            .any(|q| q.req.action == AgentAction::Stop && q.origin == Origin::Requested)
        {
            return;
        }
        st.monitors_active = true;
        let generation = st.generation;
        for m in Self::active_monitors(st) {
            self.out.push_back(Output::Arm {
                resource: resource.to_string(),
                interval: m.interval,
                generation,
                after: Duration::ZERO,
            });
        }
    }

    fn dispatch(&mut self, resource: &str) {
        let Some(st) = self.resources.get_mut(resource) else {
            return;
        };
        if st.busy.is_some() {
            return;
        }
        let Some(q) = st.queue.pop_front() else {
            return;
        };
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        st.busy = Some(op_id);
        let req = q.req.clone();
        self.in_flight.insert(op_id, (resource.to_string(), q));
        self.out.push_back(Output::Run { op_id, req });
    }
}

// ------------------------------------------------------------------ the driver

enum Cmd {
    Register {
        resource: String,
        agent: Arc<dyn ResourceAgent>,
        spec: ResourceSpec,
    },
    Unregister(String),
    Execute(OpRequest),
    StartMonitors {
        resource: String,
        promoted: bool,
    },
    CancelMonitors(String),
    Cleanup(Option<String>),
    FailCounts(oneshot::Sender<Vec<FailCount>>),
}

enum Internal {
    Done {
        op_id: u64,
        outcome: OpOutcome,
        duration: Duration,
    },
    Tick {
        resource: String,
        interval: Duration,
        generation: u64,
    },
}

/// The daemon's handle on the executor. Cheap to clone; every call returns
/// at once. The executor stops when every handle is dropped (operations in
/// flight are then killed).
#[derive(Clone)]
pub struct ExecutorHandle {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl ExecutorHandle {
    fn send(&self, c: Cmd) {
        // The executor task ends only when every handle is gone; a send can
        // fail only while the runtime shuts down, when nothing matters.
        let _ = self.tx.send(c);
    }

    /// Makes a resource known, with its agent, and starts the agent's watch
    /// (its notices become events).
    pub fn register(&self, resource: &str, agent: Box<dyn ResourceAgent>, spec: ResourceSpec) {
        self.send(Cmd::Register {
            resource: resource.to_string(),
            agent: Arc::from(agent),
            spec,
        });
    }

    pub fn unregister(&self, resource: &str) {
        self.send(Cmd::Unregister(resource.to_string()));
    }

    /// Queues an operation; its result arrives as an [`OpEvent`].
    pub fn execute(&self, req: OpRequest) {
        self.send(Cmd::Execute(req));
    }

    /// Starts the recurring monitors of a resource found running.
    pub fn start_monitors(&self, resource: &str, promoted: bool) {
        self.send(Cmd::StartMonitors {
            resource: resource.to_string(),
            promoted,
        });
    }

    pub fn cancel_monitors(&self, resource: &str) {
        self.send(Cmd::CancelMonitors(resource.to_string()));
    }

    /// Clears the fail counts of one resource, or of all (`None`).
    pub fn cleanup(&self, resource: Option<&str>) {
        self.send(Cmd::Cleanup(resource.map(str::to_string)));
    }

    /// Every fail count on this node.
    pub async fn fail_counts(&self) -> Vec<FailCount> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::FailCounts(tx));
        rx.await.unwrap_or_default()
    }
}

/// Starts the executor on the current tokio runtime: the handle, and the
/// stream of events (read it: events are not dropped, they wait there).
pub fn spawn(cfg: ExecutorConfig) -> (ExecutorHandle, mpsc::UnboundedReceiver<OpEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(Core::new(cfg), rx, ev_tx));
    (ExecutorHandle { tx }, ev_rx)
}

async fn drive(
    mut core: Core,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<OpEvent>,
) {
    let backstop_grace = core.cfg.backstop_grace;
    let mut agents: HashMap<String, Arc<dyn ResourceAgent>> = HashMap::new();
    let (int_tx, mut int_rx) = mpsc::unbounded_channel::<Internal>();
    let (notice_tx, mut notices) = mpsc::unbounded_channel::<Notice>();
    // Operations and timers; aborted (operations killed) when we return.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            c = cmds.recv() => match c {
                None => break,
                Some(Cmd::Register { resource, agent, spec }) => {
                    let a = agent.clone();
                    let (r, tx) = (resource.clone(), notice_tx.clone());
                    tasks.spawn(async move {
                        match a.watch(&r, tx).await {
                            Ok(_) => {}
                            Err(e) => tracing::warn!(
                                resource = %r,
                                "cannot watch {r} for changes outside hactl ({e}); only its monitors will notice them"
                            ),
                        }
                    });
                    agents.insert(resource.clone(), agent);
                    core.register(&resource, spec);
                }
                Some(Cmd::Unregister(r)) => {
                    agents.remove(&r);
                    core.unregister(&r);
                }
                Some(Cmd::Execute(req)) => core.submit(req, SystemTime::now()),
                Some(Cmd::StartMonitors { resource, promoted }) => {
                    core.start_monitors(&resource, promoted)
                }
                Some(Cmd::CancelMonitors(r)) => core.cancel_monitors(&r),
                Some(Cmd::Cleanup(r)) => core.cleanup(r.as_deref()),
                Some(Cmd::FailCounts(reply)) => {
                    let _ = reply.send(core.fail_counts());
                }
            },
            Some(i) = int_rx.recv() => match i {
                Internal::Done { op_id, outcome, duration } => {
                    core.handle_done(op_id, outcome, duration, SystemTime::now())
                }
                Internal::Tick { resource, interval, generation } => {
                    core.handle_tick(&resource, interval, generation)
                }
            },
            Some(n) = notices.recv() => core.handle_notice(n, SystemTime::now()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
        while let Some(o) = core.poll_output() {
            match o {
                Output::Event(ev) => {
                    log_event(&ev);
                    let _ = events.send(ev);
                }
                Output::Arm {
                    resource,
                    interval,
                    generation,
                    after,
                } => {
                    let tx = int_tx.clone();
                    tasks.spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(Internal::Tick {
                            resource,
                            interval,
                            generation,
                        });
                    });
                }
                Output::Run { op_id, req } => {
                    let tx = int_tx.clone();
                    let agent = agents.get(&req.resource).cloned();
                    tasks.spawn(async move {
                        let started = std::time::Instant::now();
                        let outcome = run_op_catching_panics(agent, req, backstop_grace).await;
                        let _ = tx.send(Internal::Done {
                            op_id,
                            outcome,
                            duration: started.elapsed(),
                        });
                    });
                }
            }
        }
    }
    tasks.abort_all();
}

/// Aborts a task when dropped (the driver's shutdown aborts the outer task).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the operation in a task of its own, so that an agent that panics
/// fails its operation instead of leaving the resource busy forever.
async fn run_op_catching_panics(
    agent: Option<Arc<dyn ResourceAgent>>,
    req: OpRequest,
    backstop_grace: Duration,
) -> OpOutcome {
    let what = format!("{} {}", req.resource, req.action);
    let inner = tokio::spawn(run_op(agent, req, backstop_grace));
    let _guard = AbortOnDrop(inner.abort_handle());
    match inner.await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("the agent of {what} panicked: {e} (a bug in hactl)");
            OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!(
                    "the agent of {what} failed internally (a bug in hactl: {e}); see the journal"
                ),
            )
        }
    }
}

async fn run_op(
    agent: Option<Arc<dyn ResourceAgent>>,
    req: OpRequest,
    backstop_grace: Duration,
) -> OpOutcome {
    let Some(agent) = agent else {
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "resource \"{}\" has no agent registered with the executor",
                req.resource
            ),
        );
    };
    let limit = req.timeout + backstop_grace;
    let (action, name) = (req.action, agent.name());
    // Dropping the agent's future on expiry kills what it runs.
    match tokio::time::timeout(limit, agent.execute(req)).await {
        Ok(o) => o,
        Err(_) => OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{name} {action} did not finish within {} ms (its timeout plus {} ms); the executor abandoned it",
                limit.as_millis(),
                backstop_grace.as_millis()
            ),
        ),
    }
}

fn log_event(ev: &OpEvent) {
    if ev.failed {
        tracing::warn!(
            resource = %ev.resource, action = %ev.action, interval_ms = ev.interval.as_millis() as u64,
            code = ev.code.code(), fail_count = ev.fail_count,
            "{} {} failed: {}{}", ev.resource, ev.action, ev.code,
            if ev.exit_reason.is_empty() { String::new() } else { format!(": {}", ev.exit_reason) }
        );
    } else {
        tracing::info!(
            resource = %ev.resource, action = %ev.action, interval_ms = ev.interval.as_millis() as u64,
            code = ev.code.code(), duration_ms = ev.duration.as_millis() as u64,
            "{} {}: {}", ev.resource, ev.action, ev.code
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(20);

    fn when() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
    }

    fn req(r: &str, action: AgentAction) -> OpRequest {
        OpRequest {
            resource: r.to_string(),
            action,
            params: BTreeMap::new(),
            timeout: T,
            interval: Duration::ZERO,
            check_level: 0,
        }
    }

    fn spec(intervals_s: &[u64]) -> ResourceSpec {
        ResourceSpec {
            params: BTreeMap::new(),
            monitors: intervals_s
                .iter()
                .map(|s| MonitorSpec {
                    interval: Duration::from_secs(*s),
                    timeout: T,
                    role: MonitorRole::Any,
                    check_level: 0,
                })
                .collect(),
        }
    }

    fn outputs(c: &mut Core) -> Vec<Output> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    fn runs(o: &[Output]) -> Vec<(u64, String, AgentAction)> {
        o.iter()
            .filter_map(|o| match o {
                Output::Run { op_id, req } => Some((*op_id, req.resource.clone(), req.action)),
                _ => None,
            })
            .collect()
    }

    fn events(o: &[Output]) -> Vec<OpEvent> {
        o.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn arms(o: &[Output]) -> Vec<(Duration, u64, Duration)> {
        o.iter()
            .filter_map(|o| match o {
                Output::Arm {
                    interval,
                    generation,
                    after,
                    ..
                } => Some((*interval, *generation, *after)),
                _ => None,
            })
            .collect()
    }

    fn done(c: &mut Core, op: u64, code: OcfCode) -> Vec<Output> {
        c.handle_done(op, OpOutcome::code(code), Duration::from_millis(5), when());
        outputs(c)
    }

    #[test]
    fn one_operation_at_a_time_per_resource_in_order_and_resources_in_parallel() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[]));
        c.register("b", spec(&[]));
        c.submit(req("a", AgentAction::Start), when());
        c.submit(req("a", AgentAction::Monitor), when());
        c.submit(req("b", AgentAction::Start), when());
        let o = outputs(&mut c);
        let r = runs(&o);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].1.as_str(), r[0].2), ("a", AgentAction::Start));
        assert_eq!((r[1].1.as_str(), r[1].2), ("b", AgentAction::Start));
        assert_eq!(c.queued("a"), 1);
        let o = done(&mut c, r[0].0, OcfCode::Success);
        let next = runs(&o);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].1.as_str(), next[0].2), ("a", AgentAction::Monitor));
    }

    #[test]
    fn a_start_failure_is_infinity_when_fatal_and_one_otherwise() {
        for (fatal, want) in [(true, FAIL_COUNT_INFINITY), (false, 1)] {
            let mut cfg = ExecutorConfig::new("n1");
            cfg.start_failure_is_fatal = fatal;
            let mut c = Core::new(cfg);
            c.register("a", spec(&[10]));
            c.submit(req("a", AgentAction::Start), when());
            let op = runs(&outputs(&mut c))[0].0;
            let o = done(&mut c, op, OcfCode::ErrGeneric);
            let ev = &events(&o)[0];
            assert!(ev.failed);
            assert_eq!(ev.fail_count, want);
            assert!(arms(&o).is_empty(), "no monitors after a failed start");
            let fc = c.fail_counts();
            assert_eq!(fc.len(), 1);
            assert_eq!(
                fc[0].key,
                FailKey {
                    node: "n1".into(),
                    resource: "a".into(),
                    action: AgentAction::Start,
                    interval_ms: 0
                }
            );
        }
    }

    #[test]
    fn stop_failures_are_infinity_probes_never_count() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[]));
        c.submit(req("a", AgentAction::Monitor), when());
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::NotRunning);
        assert!(!events(&o)[0].failed);
        c.submit(req("a", AgentAction::Monitor), when());
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::ErrGeneric);
        assert!(events(&o)[0].failed, "a probe error is a failure");
        assert_eq!(c.fail_count("a"), 0, "but probes do not count");
        c.submit(req("a", AgentAction::Stop), when());
        let op = runs(&outputs(&mut c))[0].0;
        done(&mut c, op, OcfCode::ErrGeneric);
        assert_eq!(c.fail_count("a"), FAIL_COUNT_INFINITY);
    }

    #[test]
    fn recurring_monitors_start_after_start_report_changes_only_and_count_failures() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[10]));
        c.submit(req("a", AgentAction::Start), when());
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::Success);
        let a = arms(&o);
        assert_eq!(a, vec![(Duration::from_secs(10), a[0].1, Duration::ZERO)]);
        let generation = a[0].1;
        let mut results = vec![];
        for code in [
            OcfCode::Success,
            OcfCode::Success,
            OcfCode::NotRunning,
            OcfCode::NotRunning,
            OcfCode::Success,
        ] {
            c.handle_tick("a", Duration::from_secs(10), generation);
            let r = runs(&outputs(&mut c));
            assert_eq!(r.len(), 1);
            let o = done(&mut c, r[0].0, code);
            assert_eq!(
                arms(&o),
                vec![(Duration::from_secs(10), generation, Duration::from_secs(10))]
            );
            results.extend(
                events(&o)
                    .into_iter()
                    .map(|e| (e.code, e.failed, e.fail_count)),
            );
        }
        assert_eq!(
            results,
            vec![
                (OcfCode::Success, false, 0),
                (OcfCode::NotRunning, true, 1),
                (OcfCode::Success, false, 1),
            ]
        );
        let fc = c.fail_counts();
        assert_eq!(fc[0].key.action, AgentAction::Monitor);
        assert_eq!(fc[0].key.interval_ms, 10_000);
    }

    #[test]
    fn a_stop_cancels_monitors_and_drops_a_result_that_arrives_late() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[10]));
        c.start_monitors("a", false);
        let o = outputs(&mut c);
        let g = arms(&o)[0].1;
        c.handle_tick("a", Duration::from_secs(10), g);
        let mon = runs(&outputs(&mut c))[0].0;
        c.submit(req("a", AgentAction::Stop), when());
        assert!(runs(&outputs(&mut c)).is_empty(), "the stop waits");
        let o = done(&mut c, mon, OcfCode::NotRunning);
        assert!(events(&o).is_empty(), "a cancelled monitor reports nothing");
        assert!(arms(&o).is_empty());
        let r = runs(&o);
        assert_eq!(r[0].2, AgentAction::Stop);
        c.handle_tick("a", Duration::from_secs(10), g);
        assert!(outputs(&mut c).is_empty(), "old ticks are ignored");
        assert_eq!(c.fail_count("a"), 0);
    }

    #[test]
    fn a_start_followed_by_a_queued_stop_starts_no_monitor() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[10]));
        c.submit(req("a", AgentAction::Start), when());
        c.submit(req("a", AgentAction::Stop), when());
        let start = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, start, OcfCode::Success);
        assert!(arms(&o).is_empty(), "{o:?}");
        assert_eq!(runs(&o)[0].2, AgentAction::Stop);
    }

    #[test]
    fn notices_are_failed_monitor_events_when_the_resource_should_run() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.register("a", spec(&[10]));
        let n = |code| Notice {
            resource: "a".into(),
            code,
            exit_reason: "unit a.service failed".into(),
        };
        c.handle_notice(n(OcfCode::NotRunning), when());
        let e = events(&outputs(&mut c));
        assert!(!e[0].failed, "not started: no news");
        c.start_monitors("a", false);
        outputs(&mut c);
        c.handle_notice(n(OcfCode::NotRunning), when());
        let e = events(&outputs(&mut c));
        assert_eq!(e.len(), 1);
        assert!(e[0].failed);
        assert_eq!(e[0].origin, Origin::Notice);
        assert_eq!(e[0].action, AgentAction::Monitor);
        assert_eq!(e[0].interval, Duration::from_secs(10));
        assert_eq!(e[0].exit_reason, "unit a.service failed");
        assert_eq!(e[0].fail_count, 1);
    }

    #[test]
    fn cleanup_clears_one_resource_or_all() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        for r in ["a", "b"] {
            c.register(r, spec(&[]));
            c.submit(req(r, AgentAction::Start), when());
            let op = runs(&outputs(&mut c))[0].0;
            done(&mut c, op, OcfCode::ErrGeneric);
        }
        assert_eq!(c.fail_counts().len(), 2);
        c.cleanup(Some("a"));
        assert_eq!(c.fail_count("a"), 0);
        assert_eq!(c.fail_count("b"), FAIL_COUNT_INFINITY);
        c.cleanup(None);
        assert!(c.fail_counts().is_empty());
    }

    #[test]
    fn unknown_resources_and_full_queues_are_refused_with_an_event() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        c.submit(req("ghost", AgentAction::Start), when());
        let e = events(&outputs(&mut c));
        assert_eq!(e[0].origin, Origin::Refused);
        assert!(e[0].exit_reason.contains("not registered"));
        c.register("a", spec(&[]));
        for _ in 0..=QUEUE_OPS_MAX {
            c.submit(req("a", AgentAction::Monitor), when());
        }
        assert!(events(&outputs(&mut c)).is_empty());
        c.submit(req("a", AgentAction::Monitor), when());
        let e = events(&outputs(&mut c));
        assert!(e[0].exit_reason.contains("already wait"), "{e:?}");
    }

    #[test]
    fn promoted_monitors_replace_the_others_after_a_promote() {
        let mut c = Core::new(ExecutorConfig::new("n1"));
        let mut s = spec(&[]);
        for (i, role) in [(11, MonitorRole::Unpromoted), (10, MonitorRole::Promoted)] {
            s.monitors.push(MonitorSpec {
                interval: Duration::from_secs(i),
                timeout: T,
                role,
                check_level: 0,
            });
        }
        c.register("a", s);
        c.submit(req("a", AgentAction::Start), when());
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::Success);
        assert_eq!(arms(&o)[0].0, Duration::from_secs(11));
        c.submit(req("a", AgentAction::Promote), when());
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::Success);
        let a = arms(&o);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, Duration::from_secs(10));
        c.handle_tick("a", Duration::from_secs(10), a[0].1);
        let op = runs(&outputs(&mut c))[0].0;
        let o = done(&mut c, op, OcfCode::RunningPromoted);
        assert!(
            !events(&o)[0].failed,
            "promoted is what a promoted monitor expects"
        );
    }
}
