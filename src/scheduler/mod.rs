//! The policy engine: from the configuration and the cluster as it is now,
//! compute where every resource should run and the transition that gets it
//! there. Pure: no clock, no I/O (`now` is an argument).
//!
//! Public surface:
//! - [`schedule`] / [`schedule_with`]: configuration + [`ClusterView`] +
//!   `now` → [`Transition`] (placements, actions, ordering edges, the state
//!   after the transition, and optionally the allocation scores);
//! - [`current_outcome`]: where everything runs now according to a view;
//! - [`view`]: the input types ([`ClusterView`], [`Extensions`]);
//! - [`cib`]: import of Pacemaker CIB XML into those inputs;
//! - [`render`]: the `hactl simulate` outputs (text, `--json`, `--scores`).
//!
//! The rules are Pacemaker 2.1.5's, written down in docs/scheduler.md; the
//! code follows the structure of Pacemaker's scheduler (function names are
//! cited) because its results depend on the order in which scores merge.

mod actions;
mod assign;
pub mod cib;
mod promote;
pub mod render;
pub mod view;
mod work;

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, Role, Score};
use crate::time::Instant;

pub use actions::Task;
pub use view::{ClusterView, Extensions, NodeState, NodeStatus, ResourceStatus};

use work::{RscIx, Variant, Work};

/// Options of one scheduling run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Record the allocation and promotion scores ([`Transition::scores`]).
    pub show_scores: bool,
}

/// Where one primitive (or clone instance) ends up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The primitive id; `ID:N` for clone instance N.
    pub resource: String,
    /// The node it is assigned to, if any.
    pub node: Option<String>,
    /// The role it is to have there (`Stopped` if unassigned).
    pub role: Role,
    /// Where it runs now.
    pub current: Vec<String>,
}

/// One action of the transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAction {
    pub task: Task,
    /// The resource (a primitive or instance), or `None` for fencing.
    pub resource: Option<String>,
    /// Where it runs (the node fenced, for fencing).
    pub node: Option<String>,
    /// For recurring monitors.
    pub interval_ms: u64,
    /// Why, when it is not the obvious consequence of the placement.
    pub reason: Option<String>,
}

/// The state of one configured resource after the transition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceOutcome {
    /// Nodes where it (or any instance or member) is active.
    pub nodes: BTreeSet<String>,
    /// Nodes where it (or an instance) is promoted.
    pub promoted: BTreeSet<String>,
}

/// What the scheduler decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    pub placements: Vec<Placement>,
    /// The actions to execute, in a valid execution order.
    pub actions: Vec<PlannedAction>,
    /// Ordering edges between `actions`: `(first, then)` indices.
    pub edges: Vec<(usize, usize)>,
    /// Every primitive outside a clone, every group and member, every clone,
    /// as they will be once the actions have run.
    pub outcome: BTreeMap<String, ResourceOutcome>,
    /// One line per resource that changes, in crm_simulate's words
    /// (`start rsc1 node=node1`, `move rsc2 source=node1 dest=node2`, …).
    pub summary: Vec<String>,
    /// Allocation and promotion scores, one line each (with
    /// [`Options::show_scores`]).
    pub scores: Vec<String>,
    /// Configuration problems found while scheduling.
    pub warnings: Vec<String>,
}

/// Pacemaker's spelling of a role in summaries.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Stopped => "Stopped",
        Role::Started => "Started",
        Role::Unpromoted => "Unpromoted",
        Role::Promoted => "Promoted",
    }
}

/// Schedules a TOML configuration (its [`Extensions`] are implied).
pub fn schedule(config: &Config, view: &ClusterView, now: Instant) -> Transition {
    schedule_with(
        config,
        &Extensions::for_config(config),
        view,
        now,
        Options::default(),
    )
}

/// Schedules with explicit extensions (e.g. from a CIB) and options.
pub fn schedule_with(
    config: &Config,
    ext: &Extensions,
    view: &ClusterView,
    now: Instant,
    options: Options,
) -> Transition {
    let mut w = Work::build(config, ext, view, now, options.show_scores);
    w.apply_node_criteria();
    w.create_internal_colocations();
    for r in w.top.clone() {
        w.assign(r, None);
    }
    if w.depth_exceeded.get() {
        w.warnings.push(format!(
            "colocation chains deeper than {} resources were cut like loops",
            assign::COLOCATION_DEPTH_MAX
        ));
    }
    w.sort_instances_for_probes();
    w.create_actions();
    w.create_orderings();
    w.schedule_fencing();
    w.apply_orderings();
    w.update_action_flags();
    w.transition()
}

/// Where every configured resource runs now, as the view says (no
/// scheduling): the same keys and rules as [`Transition::outcome`].
pub fn current_outcome(
    config: &Config,
    ext: &Extensions,
    view: &ClusterView,
    now: Instant,
) -> BTreeMap<String, ResourceOutcome> {
    let w = Work::build(config, ext, view, now, false);
    let state = w.initial_state();
    w.outcome(&state)
}

impl Work<'_> {
    /// Group members are colocated with the member before them
    /// (Pacemaker's `pcmk__create_internal_constraints`, colocation part).
    /// Pacemaker schedules start-up probes between placement and action
    /// creation, and probing a clone re-sorts its instances by number
    /// (`clone_create_probe`). hactl plans no probes, but keeps the side
    /// effect: the instance order decides, for instance, which instance of
    /// an interleaved clone is paired with which when a node holds several.
    /// Probes run when some node is online and not about to be fenced.
    fn sort_instances_for_probes(&mut self) {
        if !self.nodes.iter().any(|n| n.online && !n.unclean) {
            return;
        }
        for r in self.top.clone() {
            if self.rscs[r].clone.is_some() {
                let mut children = std::mem::take(&mut self.rscs[r].children);
                children.sort_by_key(|&c| self.rscs[c].instance);
                self.rscs[r].children = children;
            }
        }
    }

    fn create_internal_colocations(&mut self) {
        for r in 0..self.rscs.len() {
            if self.rscs[r].variant != Variant::Group || !self.rscs[r].group_colocated {
                continue;
            }
            let members = self.rscs[r].children.clone();
            for pair in members.windows(2) {
                let (prev, m) = (pair[0], pair[1]);
                let influence = self.rscs[m].critical;
                self.new_colocation(
                    "group:internal_colocation",
                    m,
                    prev,
                    Score::INFINITY,
                    None,
                    None,
                    influence,
                    None,
                );
            }
        }
    }

    /// Whether an action goes into the transition graph (and is executed).
    fn in_graph(&self, a: usize) -> bool {
        let act = &self.acts.list[a];
        if !act.runnable || (act.optional && !act.print_always) {
            return false;
        }
        if let Some(r) = act.rsc
            && !self.rscs[r].managed
            && act.task != Task::Monitor
        {
            return false;
        }
        if act.pseudo {
            return true;
        }
        match act.node {
            Some(n) => act.task == Task::Fence || self.nodes[n].online,
            None => false,
        }
    }

    fn transition(&mut self) -> Transition {
        let mut t = Transition {
            scores: std::mem::take(&mut self.score_lines),
            ..Transition::default()
        };
        // Placements of every primitive (instances included).
        for r in 0..self.rscs.len() {
            let rsc = &self.rscs[r];
            if rsc.variant != Variant::Primitive {
                continue;
            }
            t.placements.push(Placement {
                resource: rsc.id.clone(),
                node: rsc.allocated_to.map(|n| self.nodes[n].name.clone()),
                role: match rsc.allocated_to {
                    Some(_) => rsc.next_role.unwrap_or(Role::Started),
                    None => Role::Stopped,
                },
                current: rsc
                    .running_on
                    .iter()
                    .map(|&n| self.nodes[n].name.clone())
                    .collect(),
            });
        }
        // The actions in the graph, then executed in dependency order.
        let graph: Vec<usize> = (0..self.acts.list.len())
            .filter(|&a| self.in_graph(a))
            .collect();
        let order = self.topological(&graph);
        let mut index = vec![usize::MAX; self.acts.list.len()];
        for (i, &a) in order.iter().enumerate() {
            index[a] = i;
        }
        let mut final_state = self.initial_state();
        for &a in &order {
            self.apply_to_state(a, &mut final_state);
            let act = &self.acts.list[a];
            if act.pseudo {
                continue;
            }
            t.actions.push(PlannedAction {
                task: act.task,
                resource: act.rsc.map(|r| self.rscs[r].id.clone()),
                node: act.node.map(|n| self.nodes[n].name.clone()),
                interval_ms: act.interval_ms,
                reason: act.reason.clone(),
            });
        }
        self.add_monitors(&mut t);
        // Edges between executed (non-pseudo) actions, through pseudo ones.
        let real: Vec<Option<usize>> = {
            let mut pos = vec![None; self.acts.list.len()];
            let mut k = 0;
            for &a in &order {
                if !self.acts.list[a].pseudo {
                    pos[a] = Some(k);
                    k += 1;
                }
            }
            pos
        };
        let mut edges = BTreeSet::new();
        for &a in &order {
            if let Some(then) = real[a] {
                for f in self.real_predecessors(a, &index) {
                    if let Some(first) = real[f] {
                        edges.insert((first, then));
                    }
                }
            }
        }
        t.edges.extend(
            edges
                .into_iter()
                .filter(|&(f, th)| f < t.actions.len() && th < t.actions.len()),
        );
        t.outcome = self.outcome(&final_state);
        for &r in &self.top.clone() {
            self.summarize(r, &mut t.summary);
        }
        t.warnings = std::mem::take(&mut self.warnings);
        t
    }

    /// The first action of a task on a node (any node for `None`).
    fn first_action(&self, r: RscIx, task: Task, node: Option<usize>) -> Option<usize> {
        self.acts.by_rsc.get(&r).and_then(|l| {
            l.iter().copied().find(|&a| {
                let act = &self.acts.list[a];
                act.task == task
                    && act.interval_ms == 0
                    && (node.is_none() || act.node.is_none() || act.node == node)
            })
        })
    }

    /// Pacemaker's `rsc-action` summary of one resource (recursively).
    fn summarize(&self, r: RscIx, out: &mut Vec<String>) {
        let rsc = &self.rscs[r];
        if !rsc.children.is_empty() {
            for &c in &rsc.children {
                self.summarize(c, out);
            }
            return;
        }
        let current = if rsc.running_on.is_empty() {
            None
        } else {
            self.current_node(r)
        };
        let next = rsc.allocated_to;
        if !rsc.managed || (current.is_none() && next.is_none()) {
            return;
        }
        let role = if current.is_some() && rsc.role == Role::Stopped {
            Role::Started
        } else {
            rsc.role
        };
        let next_role = rsc.next_role.unwrap_or(Role::Stopped);
        let moving = matches!((current, next), (Some(c), Some(n)) if c != n);
        let start = self.first_action(r, Task::Start, next);
        let start_runnable = start.is_some_and(|s| self.acts.list[s].runnable);
        let start_node = if start_runnable { current } else { None };
        let stop = self.first_action(r, Task::Stop, start_node);
        let promote = self.first_action(r, Task::Promote, next);
        let demote = self.first_action(r, Task::Demote, next);
        let optional = |a: Option<usize>| a.is_none_or(|a| self.acts.list[a].optional);
        let item =
            |change: &str, origin: Option<usize>, dest: Option<usize>, action: Option<usize>| {
                self.summary_item(change, r, role, next_role, origin, dest, action)
            };
        if role == next_role {
            let Some(s) = start.filter(|&s| !self.acts.list[s].optional) else {
                if demote.is_some() && promote.is_some() && !optional(demote) && !optional(promote)
                {
                    out.push(item("re-promote", current, next, promote));
                }
                return;
            };
            if !self.acts.list[s].runnable {
                out.push(item("stop", current, None, stop.or(Some(s))));
            } else if moving {
                let change = if rsc.failed { "recover" } else { "move" };
                out.push(item(change, current, next, stop));
            } else if rsc.failed {
                out.push(item("recover", current, None, stop));
            } else {
                out.push(item("restart", current, next, Some(s)));
            }
            return;
        }
        if stop.is_some() && (next_role == Role::Stopped || (start.is_some() && !start_runnable)) {
            for &n in &rsc.running_on {
                let op = self.first_action(r, Task::Stop, Some(n)).or(start);
                out.push(self.summary_item("stop", r, role, next_role, Some(n), None, op));
            }
        } else if stop.is_some() && rsc.failed && rsc.stop_flag {
            out.push(item("recover", current, next, stop));
        } else if moving {
            out.push(item("move", current, next, stop));
        } else if stop.is_some() && !optional(stop) {
            out.push(item("restart", current, next, start));
        } else if role == Role::Promoted {
            out.push(item("demote", current, next, demote));
        } else if next_role == Role::Promoted {
            out.push(item("promote", current, next, promote));
        } else if role == Role::Stopped && next_role > Role::Stopped {
            out.push(item("start", current, next, start));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn summary_item(
        &self,
        change: &str,
        r: RscIx,
        role: Role,
        next_role: Role,
        origin: Option<usize>,
        dest: Option<usize>,
        action: Option<usize>,
    ) -> String {
        let name = |n: Option<usize>| n.map_or("?", |n| self.nodes[n].name.as_str());
        let need_role = role > Role::Started || next_role > Role::Unpromoted;
        let same_host = origin.is_some() && origin == dest;
        let same_role = role == next_role;
        let role_s = role_name(role);
        let next_s = role_name(next_role);
        let attrs = if need_role && origin.is_none() {
            format!("role={role_s} next-role={next_s} dest={}", name(dest))
        } else if origin.is_none() {
            format!("node={}", name(dest))
        } else if need_role && dest.is_none() {
            format!("role={role_s} node={}", name(origin))
        } else if dest.is_none() {
            format!("node={}", name(origin))
        } else if need_role && same_role && same_host {
            format!("role={role_s} source={}", name(origin))
        } else if same_role && same_host {
            format!("source={}", name(origin))
        } else if need_role && same_role {
            format!("source={} dest={} role={role_s}", name(origin), name(dest))
        } else if same_role {
            format!("source={} dest={}", name(origin), name(dest))
        } else if same_host {
            format!("role={role_s} next-role={next_s} source={}", name(origin))
        } else {
            format!(
                "role={role_s} source={} next-role={next_s} dest={}",
                name(origin),
                name(dest)
            )
        };
        let blocked = action.is_some_and(|a| !self.acts.list[a].runnable);
        let mut line = format!("{change} {} {attrs}", self.rscs[r].id);
        if blocked {
            line.push_str(" blocked=true");
        }
        line
    }

    /// Monitors start with (and after) each executed start or role change.
    fn add_monitors(&self, t: &mut Transition) {
        let mut extra = Vec::new();
        let by_id: std::collections::HashMap<&str, RscIx> = self
            .rscs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        for (i, a) in t.actions.iter().enumerate() {
            if !matches!(a.task, Task::Start | Task::Promote | Task::Demote) {
                continue;
            }
            let Some(name) = &a.resource else { continue };
            let Some(&r) = by_id.get(name.as_str()) else {
                continue;
            };
            let role_after = match a.task {
                Task::Promote => Role::Promoted,
                Task::Demote => Role::Unpromoted,
                _ if self.rscs[r].promotable => Role::Unpromoted,
                _ => Role::Started,
            };
            for &(interval, role) in &self.rscs[r].monitors {
                let matches = match role {
                    None | Some(Role::Started) => {
                        role_after != Role::Promoted || a.task != Task::Promote
                    }
                    Some(want) => want == role_after,
                };
                if matches {
                    extra.push((
                        i,
                        PlannedAction {
                            task: Task::Monitor,
                            resource: a.resource.clone(),
                            node: a.node.clone(),
                            interval_ms: interval,
                            reason: None,
                        },
                    ));
                }
            }
        }
        for (after, m) in extra {
            t.actions.push(m);
            t.edges.push((after, t.actions.len() - 1));
        }
    }

    /// The nearest non-pseudo, in-graph predecessors of an action.
    fn real_predecessors(&self, a: usize, index: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = self.acts.list[a]
            .before
            .iter()
            .filter(|&&(_, f)| f != 0)
            .map(|&(b, _)| b)
            .collect();
        while let Some(b) = stack.pop() {
            if !seen.insert(b) || index[b] == usize::MAX {
                continue;
            }
            if self.acts.list[b].pseudo {
                stack.extend(
                    self.acts.list[b]
                        .before
                        .iter()
                        .filter(|&&(_, f)| f != 0)
                        .map(|&(x, _)| x),
                );
            } else {
                out.push(b);
            }
        }
        out
    }

    /// A topological order of the graph actions (Kahn's algorithm, ties by
    /// creation order); edges that would form a cycle are ignored.
    fn topological(&self, graph: &[usize]) -> Vec<usize> {
        let in_graph: BTreeSet<usize> = graph.iter().copied().collect();
        let mut indegree: BTreeMap<usize, usize> = graph.iter().map(|&a| (a, 0)).collect();
        for &a in graph {
            for &(b, f) in &self.acts.list[a].before {
                if f != 0 && in_graph.contains(&b) && b != a {
                    *indegree.get_mut(&a).expect("in graph") += 1;
                }
            }
        }
        let mut ready: BTreeSet<usize> = indegree
            .iter()
            .filter(|&(_, &d)| d == 0)
            .map(|(&a, _)| a)
            .collect();
        let mut out = Vec::with_capacity(graph.len());
        let mut done = BTreeSet::new();
        while out.len() < graph.len() {
            let next = match ready.pop_first() {
                Some(a) => a,
                // A cycle: take the earliest remaining action.
                None => *graph
                    .iter()
                    .find(|a| !done.contains(*a))
                    .expect("remaining"),
            };
            if !done.insert(next) {
                continue;
            }
            out.push(next);
            for &(t, f) in &self.acts.list[next].after {
                if f == 0 || !in_graph.contains(&t) || done.contains(&t) {
                    continue;
                }
                let d = indegree.get_mut(&t).expect("in graph");
                *d = d.saturating_sub(1);
                if *d == 0 {
                    ready.insert(t);
                }
            }
        }
        out
    }

    /// Per primitive: node → role, as it is now.
    fn initial_state(&self) -> Vec<BTreeMap<usize, Role>> {
        self.rscs
            .iter()
            .map(|r| {
                let role = if r.role == Role::Stopped {
                    Role::Started
                } else {
                    r.role
                };
                let mut m: BTreeMap<usize, Role> =
                    r.running_on.iter().map(|&n| (n, role)).collect();
                if let Some(p) = r.pending_node {
                    m.entry(p).or_insert(Role::Started);
                }
                if r.children.is_empty() {
                    m
                } else {
                    BTreeMap::new()
                }
            })
            .collect()
    }

    fn apply_to_state(&self, a: usize, state: &mut [BTreeMap<usize, Role>]) {
        let act = &self.acts.list[a];
        let Some(n) = act.node else { return };
        if act.task == Task::Fence {
            for (r, s) in state.iter_mut().enumerate() {
                // A start still in flight is reported where it was sent.
                if self.rscs[r].pending_node != Some(n) {
                    s.remove(&n);
                }
            }
            return;
        }
        let Some(r) = act.rsc else { return };
        if self.rscs[r].variant != Variant::Primitive {
            return;
        }
        let s = &mut state[r];
        match act.task {
            Task::Stop if self.rscs[r].pending_node != Some(n) => {
                s.remove(&n);
            }
            Task::Start => {
                let role = if self.rscs[r].promotable {
                    Role::Unpromoted
                } else {
                    Role::Started
                };
                s.insert(n, role);
            }
            Task::Promote => {
                s.insert(n, Role::Promoted);
            }
            Task::Demote => {
                if let Some(x) = s.get_mut(&n) {
                    *x = Role::Unpromoted;
                }
            }
            _ => {}
        }
    }

    fn outcome(&self, state: &[BTreeMap<usize, Role>]) -> BTreeMap<String, ResourceOutcome> {
        let mut out = BTreeMap::new();
        for &r in &self.top {
            if self.rscs[r].orphan {
                continue;
            }
            let o = self.collect_outcome(r, state);
            out.insert(self.rscs[r].id.clone(), o);
            if self.rscs[r].variant == Variant::Group {
                for &m in &self.rscs[r].children {
                    out.insert(self.rscs[m].id.clone(), self.collect_outcome(m, state));
                }
            }
        }
        out
    }

    fn collect_outcome(&self, r: RscIx, state: &[BTreeMap<usize, Role>]) -> ResourceOutcome {
        let mut o = ResourceOutcome::default();
        self.collect_into(r, state, &mut o);
        o
    }

    fn collect_into(&self, r: RscIx, state: &[BTreeMap<usize, Role>], o: &mut ResourceOutcome) {
        let rsc = &self.rscs[r];
        if !rsc.children.is_empty() {
            for &c in &rsc.children {
                self.collect_into(c, state, o);
            }
            return;
        }
        for (&n, &role) in &state[r] {
            o.nodes.insert(self.nodes[n].name.clone());
            if role == Role::Promoted {
                o.promoted.insert(self.nodes[n].name.clone());
            }
        }
    }
}
