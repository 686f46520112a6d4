//! Actions and the ordering edges between them: what must happen on which
//! node to reach the placement, and which actions can run at all
//! (Pacemaker's `create_actions`, orderings and their flag propagation).
//!
//! An action is *required* (not optional) when it must happen in this
//! transition and *runnable* when nothing prevents it. Orderings carry
//! flags that move those two properties between actions until nothing
//! changes: a mandatory order makes `then` unrunnable when `first` cannot
//! run, a restart makes a stop required when the start is, and so on.

use std::collections::HashMap;

use crate::config::{NoQuorumPolicy, OpName, OrderKind, Role, Score};

use super::work::{NodeIx, RscIx, Variant, Work};

pub(crate) type ActionIx = usize;

/// Upper bound on flag updates per action. Flags only ever get cleared
/// (each action has two), so an action is re-examined only when one of the
/// few actions before it changed; real configurations need a handful.
pub(crate) const FLAG_UPDATES_PER_ACTION_MAX: usize = 64;

/// Ordering flags (Pacemaker's `pe_order_*`).
pub(crate) mod of {
    pub const OPTIONAL: u32 = 1 << 0;
    pub const IMPLIES_THEN: u32 = 1 << 1;
    pub const IMPLIES_FIRST: u32 = 1 << 2;
    pub const RESTART: u32 = 1 << 3;
    pub const RUNNABLE_LEFT: u32 = 1 << 4;
    pub const PROMOTED_IMPLIES_FIRST: u32 = 1 << 5;
    pub const ASYMMETRICAL: u32 = 1 << 6;
    pub const SERIALIZE_ONLY: u32 = 1 << 7;
    pub const ANTI_COLOCATION: u32 = 1 << 8;
    pub const IMPLIES_THEN_PRINTED: u32 = 1 << 9;
    pub const IMPLIES_FIRST_PRINTED: u32 = 1 << 10;
    pub const PRESERVE: u32 = 1 << 11;
}

/// What an action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    Start,
    Stop,
    Promote,
    Demote,
    Monitor,
    /// Pseudo: all starts of a group or clone are done.
    Running,
    /// Pseudo: all stops are done.
    Stopped,
    Promoted,
    Demoted,
    /// Power a node off (or reboot it).
    Fence,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Start => "start",
            Task::Stop => "stop",
            Task::Promote => "promote",
            Task::Demote => "demote",
            Task::Monitor => "monitor",
            Task::Running => "running",
            Task::Stopped => "stopped",
            Task::Promoted => "promoted",
            Task::Demoted => "demoted",
            Task::Fence => "fence",
        }
    }

    fn from_op(op: OpName) -> Task {
        match op {
            OpName::Start => Task::Start,
            OpName::Stop => Task::Stop,
            OpName::Promote => Task::Promote,
            OpName::Demote => Task::Demote,
            OpName::Monitor => Task::Monitor,
        }
    }

    /// The opposite action (for symmetrical orders).
    fn invert(self) -> Option<Task> {
        Some(match self {
            Task::Start => Task::Stop,
            Task::Stop => Task::Start,
            Task::Promote => Task::Demote,
            Task::Demote => Task::Promote,
            Task::Promoted => Task::Demoted,
            Task::Demoted => Task::Promoted,
            Task::Running => Task::Stopped,
            Task::Stopped => Task::Running,
            _ => return None,
        })
    }

    /// The "done" pseudo-action of a composite resource's action.
    fn completed(self) -> Task {
        match self {
            Task::Start => Task::Running,
            Task::Stop => Task::Stopped,
            Task::Promote => Task::Promoted,
            Task::Demote => Task::Demoted,
            other => other,
        }
    }

    /// A primitive's action behind a composite's "done" action.
    fn atomic(self) -> Task {
        match self {
            Task::Running => Task::Start,
            Task::Stopped => Task::Stop,
            Task::Promoted => Task::Promote,
            Task::Demoted => Task::Demote,
            other => other,
        }
    }
}

/// What an action needs before it may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    Quorum,
    Fencing,
}

#[derive(Clone, Debug)]
pub(crate) struct Action {
    pub rsc: Option<RscIx>,
    pub task: Task,
    pub interval_ms: u64,
    pub node: Option<NodeIx>,
    pub optional: bool,
    pub runnable: bool,
    pub pseudo: bool,
    pub print_always: bool,
    pub migrate_runnable: bool,
    pub needs: Needs,
    /// Orderings this action waits for: (first, flags).
    pub before: Vec<(ActionIx, u32)>,
    pub after: Vec<(ActionIx, u32)>,
    pub reason: Option<String>,
}

/// An ordering between the actions of two resources, before it is
/// resolved to actions: (resource, task) then (resource, task).
#[derive(Clone, Debug)]
pub(crate) struct Ordering {
    pub first: (RscIx, Task),
    pub then: (RscIx, Task),
    pub flags: u32,
}

/// Actions and pending orderings of one scheduling run.
#[derive(Default)]
pub(crate) struct ActionSet {
    pub list: Vec<Action>,
    pub orderings: Vec<Ordering>,
    pub by_rsc: HashMap<RscIx, Vec<ActionIx>>,
    /// Actions whose flags or inputs changed since the propagation last
    /// looked (it re-examines them and what follows them).
    pub touched: Vec<ActionIx>,
}

impl ActionSet {
    /// Makes an action required, noting the change.
    pub fn clear_optional(&mut self, a: ActionIx) {
        if self.list[a].optional {
            self.list[a].optional = false;
            self.touched.push(a);
        }
    }

    /// Makes an action unrunnable, noting the change.
    pub fn clear_runnable(&mut self, a: ActionIx) {
        if self.list[a].runnable {
            self.list[a].runnable = false;
            self.touched.push(a);
        }
    }
}

impl Work<'_> {
    // ------------------------------------------------------------ creation

    /// Pacemaker's `custom_action`: finds or creates an action and updates
    /// its optional and runnable flags.
    pub fn custom_action(
        &mut self,
        rsc: Option<RscIx>,
        task: Task,
        node: Option<NodeIx>,
        optional: bool,
    ) -> ActionIx {
        let existing = rsc.and_then(|r| {
            self.acts.by_rsc.get(&r).and_then(|l| {
                l.iter().copied().find(|&a| {
                    let act = &self.acts.list[a];
                    act.task == task && act.interval_ms == 0 && (node.is_none() || act.node == node)
                })
            })
        });
        let a = match existing {
            Some(a) => a,
            None => {
                let needs = match (task, rsc) {
                    (Task::Start | Task::Promote, Some(r)) => {
                        if self.rscs[r].needs_fencing {
                            Needs::Fencing
                        } else if self.rscs[r].needs_quorum {
                            Needs::Quorum
                        } else {
                            Needs::Nothing
                        }
                    }
                    _ => Needs::Nothing,
                };
                let a = self.acts.list.len();
                self.acts.list.push(Action {
                    rsc,
                    task,
                    interval_ms: 0,
                    node,
                    optional,
                    runnable: true,
                    pseudo: false,
                    print_always: false,
                    migrate_runnable: false,
                    needs,
                    before: Vec::new(),
                    after: Vec::new(),
                    reason: None,
                });
                if let Some(r) = rsc {
                    self.acts.by_rsc.entry(r).or_default().push(a);
                }
                a
            }
        };
        // Update "optional": an unmanaged resource's actions stay optional.
        if let Some(r) = rsc {
            let act = &self.acts.list[a];
            if act.node.is_some() && !act.pseudo && !self.rscs[r].managed {
                self.acts.list[a].optional = true;
            } else if !optional {
                self.acts.list[a].optional = false;
            }
            self.update_runnable(a);
        } else if !optional {
            self.acts.list[a].optional = false;
        }
        a
    }

    /// `update_resource_action_runnable`.
    fn update_runnable(&mut self, a: ActionIx) {
        let act = &self.acts.list[a];
        if act.pseudo {
            return;
        }
        let (task, needs) = (act.task, act.needs);
        let Some(r) = act.rsc else { return };
        let Some(n) = act.node else {
            self.acts.list[a].runnable = false;
            return;
        };
        if !self.nodes[n].online {
            self.acts.list[a].runnable = false;
            // A stop that cannot happen means the node must be fenced.
            if self.rscs[r].managed && task == Task::Stop && !self.nodes[n].unclean {
                self.nodes[n].unclean = true;
            }
            return;
        }
        if needs == Needs::Nothing {
            self.acts.list[a].runnable = true;
            return;
        }
        if self.flags.have_quorum {
            self.acts.list[a].runnable = true;
            return;
        }
        match self.flags.no_quorum_policy {
            NoQuorumPolicy::Stop => {
                self.acts.list[a].runnable = false;
                self.acts.list[a].reason = Some("no quorum".into());
            }
            NoQuorumPolicy::Freeze => {
                let active = self.rscs[r].running_on.iter().any(|&n| {
                    self.nodes[n].unclean || self.nodes[n].online || !self.rscs[r].managed
                });
                if !active || self.rscs[r].next_role > Some(self.rscs[r].role) {
                    self.acts.list[a].runnable = false;
                    self.acts.list[a].reason = Some("quorum freeze".into());
                }
            }
            NoQuorumPolicy::Ignore => self.acts.list[a].runnable = true,
        }
    }

    /// A pseudo-action of a group or clone.
    fn pseudo_action(&mut self, r: RscIx, task: Task, optional: bool, runnable: bool) -> ActionIx {
        let a = self.custom_action(Some(r), task, None, optional);
        let act = &mut self.acts.list[a];
        act.pseudo = true;
        act.runnable = runnable;
        a
    }

    pub fn find_action(&self, r: RscIx, task: Task, node: Option<NodeIx>) -> Option<ActionIx> {
        self.acts.by_rsc.get(&r).and_then(|l| {
            l.iter().copied().find(|&a| {
                let act = &self.acts.list[a];
                act.task == task && act.interval_ms == 0 && (node.is_none() || act.node == node)
            })
        })
    }

    fn rsc_actions(&self, r: RscIx, task: Task, node: Option<NodeIx>) -> Vec<ActionIx> {
        self.acts.by_rsc.get(&r).map_or_else(Vec::new, |l| {
            l.iter()
                .copied()
                .filter(|&a| {
                    let act = &self.acts.list[a];
                    act.task == task && act.interval_ms == 0 && (node.is_none() || act.node == node)
                })
                .collect()
        })
    }

    /// Creates every resource's actions (after placement).
    pub fn create_actions(&mut self) {
        for r in self.top.clone() {
            self.create_rsc_actions(r);
        }
    }

    fn create_rsc_actions(&mut self, r: RscIx) {
        match self.rscs[r].variant {
            Variant::Primitive => self.primitive_create_actions(r),
            Variant::Group => {
                for m in self.rscs[r].children.clone() {
                    self.create_rsc_actions(m);
                }
                for t in [Task::Start, Task::Running, Task::Stop, Task::Stopped] {
                    self.pseudo_action(r, t, true, true);
                }
                if self.rscs[r].promotable {
                    for t in [Task::Demote, Task::Demoted, Task::Promote, Task::Promoted] {
                        self.pseudo_action(r, t, true, true);
                    }
                }
            }
            Variant::Clone => self.clone_create_actions(r),
        }
    }

    fn clone_create_actions(&mut self, r: RscIx) {
        let mut active = false;
        let mut starting = false;
        let mut stopping = false;
        let mut allow_migrations = true;
        for c in self.rscs[r].children.clone() {
            self.create_rsc_actions(c);
            let (mut s1, mut s2) = (false, false);
            self.pseudo_status(c, &mut s2, &mut s1, &mut active);
            if s1 && s2 {
                allow_migrations = false;
            }
            starting |= s1;
            stopping |= s2;
        }
        self.pseudo_action(r, Task::Start, !starting, true);
        let started = self.pseudo_action(r, Task::Running, !starting, false);
        if active || starting {
            self.acts.list[started].runnable = true;
        }
        let stop = self.pseudo_action(r, Task::Stop, !stopping, true);
        self.pseudo_action(r, Task::Stopped, !stopping, true);
        if allow_migrations {
            self.acts.list[stop].migrate_runnable = true;
        }
        if self.rscs[r].promotable {
            let (mut promoting, mut demoting) = (false, false);
            for c in self.rscs[r].children.clone() {
                self.role_change(c, &mut demoting, &mut promoting);
            }
            self.pseudo_action(r, Task::Promote, !promoting, true);
            self.pseudo_action(r, Task::Promoted, !promoting, true);
            self.pseudo_action(r, Task::Demote, !demoting, true);
            self.pseudo_action(r, Task::Demoted, !demoting, true);
            // Undo the use of priority as promotion priority.
            let p = self.rscs[r].priority;
            for c in self.rscs[r].children.clone() {
                self.rscs[c].priority = p;
            }
        }
    }

    /// `clone_update_pseudo_status`.
    fn pseudo_status(&self, r: RscIx, stopping: &mut bool, starting: &mut bool, active: &mut bool) {
        if !self.rscs[r].children.is_empty() {
            for &c in &self.rscs[r].children {
                self.pseudo_status(c, stopping, starting, active);
            }
            return;
        }
        if !self.rscs[r].running_on.is_empty() {
            *active = true;
        }
        for &a in self.acts.by_rsc.get(&r).map_or(&[][..], Vec::as_slice) {
            if *starting && *stopping {
                return;
            }
            let act = &self.acts.list[a];
            if act.optional || !(act.pseudo || act.runnable) {
                continue;
            }
            match act.task {
                Task::Stop => *stopping = true,
                Task::Start if act.runnable => *starting = true,
                _ => {}
            }
        }
    }

    fn role_change(&self, r: RscIx, demoting: &mut bool, promoting: &mut bool) {
        if !self.rscs[r].children.is_empty() {
            for &c in &self.rscs[r].children {
                self.role_change(c, demoting, promoting);
            }
            return;
        }
        for &a in self.acts.by_rsc.get(&r).map_or(&[][..], Vec::as_slice) {
            let act = &self.acts.list[a];
            if act.optional {
                continue;
            }
            match act.task {
                Task::Demote => *demoting = true,
                Task::Promote => *promoting = true,
                _ => {}
            }
        }
    }

    /// `pcmk__primitive_create_actions`.
    fn primitive_create_actions(&mut self, r: RscIx) {
        if self.rscs[r].next_role.is_none() {
            self.rscs[r].next_role = Some(if self.rscs[r].allocated_to.is_some() {
                Role::Started
            } else {
                Role::Stopped
            });
        }
        // Failures found in the history already require a stop (or a
        // demote) there: Pacemaker creates those while unpacking, so they
        // come first among the resource's actions.
        for n in self.rscs[r].stop_required_on.clone() {
            self.custom_action(Some(r), Task::Stop, Some(n), false);
        }
        for n in self.rscs[r].demote_required_on.clone() {
            self.custom_action(Some(r), Task::Demote, Some(n), false);
        }
        let current = self.current_node(r);
        let allocated = self.rscs[r].allocated_to;
        let next_role = self.rscs[r].next_role.expect("set above");
        let mut need_stop = false;
        let mut need_promote = false;
        let is_moving = matches!((current, allocated), (Some(c), Some(a)) if c != a)
            && next_role >= Role::Started;
        if is_moving {
            need_stop = true;
        }
        let all = self.rscs[r].running_on.len();
        let clean = self.rscs[r]
            .running_on
            .iter()
            .filter(|&&n| self.nodes[n].online && !self.nodes[n].unclean)
            .count();
        let multiply_active = if self.rscs[r].needs_fencing {
            all > 1
        } else {
            clean > 1
        };
        if multiply_active {
            use super::view::MultipleActive;
            match self.rscs[r].multiple_active {
                MultipleActive::StopStart | MultipleActive::StopUnexpected => need_stop = true,
                MultipleActive::StopOnly | MultipleActive::Block => {}
            }
        }
        if self.rscs[r].start_pending
            && let Some(a) = allocated
        {
            let s = self.custom_action(Some(r), Task::Start, Some(a), true);
            self.acts.list[s].print_always = true;
        }
        let rsc = &self.rscs[r];
        if is_moving {
        } else if rsc.failed {
            if rsc.stop_flag {
                need_stop = true;
            } else if next_role == Role::Promoted {
                need_promote = true;
            }
        } else if rsc.blocked {
            need_stop = true;
        } else if rsc.role > Role::Started
            && current.is_some()
            && let Some(a) = allocated
        {
            let s = self.custom_action(Some(r), Task::Start, Some(a), true);
            if !self.acts.list[s].optional {
                need_stop = true;
            }
        }
        self.schedule_restart_actions(r, current, need_stop, need_promote);
        self.schedule_role_transition(r);
        // Pacemaker's pcmk__create_recurring_actions: an assigned resource
        // always has a (possibly optional) start on its node, which its
        // monitors follow; a required stop then makes that start required.
        if !self.rscs[r].blocked
            && let Some(a) = allocated
            && !self.nodes[a].maintenance
            && (self.rscs[r].next_role != Some(Role::Stopped) || !self.rscs[r].managed)
        {
            self.custom_action(Some(r), Task::Start, Some(a), true);
        }
    }

    fn schedule_restart_actions(
        &mut self,
        r: RscIx,
        current: Option<NodeIx>,
        need_stop: bool,
        need_promote: bool,
    ) {
        let _ = current;
        let rsc_role = self.rscs[r].role;
        let mut role = rsc_role;
        while role != Role::Stopped {
            let next = next_role_toward(role, Role::Stopped);
            if !self.transition_fn(r, role, next, None, !need_stop) {
                break;
            }
            role = next;
        }
        let next_role = self.rscs[r].next_role.unwrap_or(Role::Stopped);
        let allocated = self.rscs[r].allocated_to;
        while rsc_role <= next_role && role != rsc_role && !self.rscs[r].blocked {
            let next = next_role_toward(role, rsc_role);
            let required = need_stop || (next == Role::Promoted && need_promote);
            if !self.transition_fn(r, role, next, allocated, !required) {
                break;
            }
            role = next;
        }
    }

    fn schedule_role_transition(&mut self, r: RscIx) {
        let mut role = self.rscs[r].role;
        let target = self.rscs[r].next_role.unwrap_or(Role::Stopped);
        let allocated = self.rscs[r].allocated_to;
        while role != target {
            let next = next_role_toward(role, target);
            if !self.transition_fn(r, role, next, allocated, false) {
                break;
            }
            role = next;
        }
    }

    /// Runs the action that takes `r` from `from` to `to` (Pacemaker's
    /// `rsc_action_matrix`); false when no action leads there.
    fn transition_fn(
        &mut self,
        r: RscIx,
        from: Role,
        to: Role,
        node: Option<NodeIx>,
        optional: bool,
    ) -> bool {
        use Role::*;
        match (from, to) {
            (Started, Stopped) | (Unpromoted, Stopped) | (Unpromoted, Started) => {
                self.stop_resource(r, optional)
            }
            (Stopped, Started) | (Stopped, Unpromoted) => {
                let Some(n) = node else { return false };
                self.start_resource(r, n, optional);
            }
            (Started, Promoted) | (Unpromoted, Promoted) => {
                let Some(n) = node else { return false };
                self.promote_resource(r, n, optional);
            }
            (Promoted, Stopped) | (Promoted, Started) | (Promoted, Unpromoted) => {
                self.demote_resource(r, optional)
            }
            _ => return false,
        }
        true
    }

    fn stop_resource(&mut self, r: RscIx, optional: bool) {
        for n in self.rscs[r].running_on.clone() {
            let s = self.custom_action(Some(r), Task::Stop, Some(n), optional);
            if self.rscs[r].allocated_to.is_none() && self.acts.list[s].reason.is_none() {
                self.acts.list[s].reason = Some("node availability".into());
            }
            if !self.rscs[r].managed {
                self.acts.list[s].runnable = false;
            }
        }
    }

    fn start_resource(&mut self, r: RscIx, n: NodeIx, optional: bool) {
        let s = self.custom_action(Some(r), Task::Start, Some(n), true);
        if self.acts.list[s].runnable && !optional {
            self.acts.list[s].optional = false;
        }
    }

    fn promote_resource(&mut self, r: RscIx, n: NodeIx, optional: bool) {
        let runnable = self
            .rsc_actions(r, Task::Start, Some(n))
            .iter()
            .all(|&s| self.acts.list[s].runnable);
        if runnable {
            self.custom_action(Some(r), Task::Promote, Some(n), optional);
        } else {
            for p in self.rsc_actions(r, Task::Promote, Some(n)) {
                self.acts.list[p].runnable = false;
            }
        }
    }

    fn demote_resource(&mut self, r: RscIx, optional: bool) {
        for n in self.rscs[r].running_on.clone() {
            self.custom_action(Some(r), Task::Demote, Some(n), optional);
        }
    }

    // ------------------------------------------------------------ orderings

    fn order_rsc(&mut self, f: RscIx, ft: Task, t: RscIx, tt: Task, flags: u32) {
        self.acts.orderings.push(Ordering {
            first: (f, ft),
            then: (t, tt),
            flags,
        });
    }

    /// Creates every ordering: user orders (and their inverses),
    /// anti-colocation orders, and each resource's implicit ones.
    pub fn create_orderings(&mut self) {
        for i in 0..self.colocs.len() {
            let c = self.colocs[i].clone();
            if c.score <= Score::MINUS_INFINITY {
                self.anti_colocation_order(
                    c.dependent,
                    c.dependent_role,
                    c.primary,
                    c.primary_role,
                );
                self.anti_colocation_order(
                    c.primary,
                    c.primary_role,
                    c.dependent,
                    c.dependent_role,
                );
            }
        }
        for i in 0..self.orders.len() {
            let o = self.orders[i].clone();
            let first_action = Task::from_op(o.first_action);
            let then_action = Task::from_op(o.then_action);
            let symmetric = o.symmetrical && o.kind != OrderKind::Serialize;
            // Deprecated restart-type=restart turns an optional order into
            // one that restarts `then` with `first`.
            let restart = o.kind == OrderKind::Optional && self.rscs[o.then].restart_type_restart;
            let mut flags = order_flags(o.kind, first_action, symmetric, false);
            if restart {
                flags |= of::IMPLIES_THEN;
            }
            self.order_rsc(o.first, first_action, o.then, then_action, flags);
            if symmetric && let (Some(fi), Some(ti)) = (first_action.invert(), then_action.invert())
            {
                let mut flags = order_flags(o.kind, fi, true, true);
                if restart {
                    flags |= of::IMPLIES_FIRST;
                }
                self.order_rsc(o.then, ti, o.first, fi, flags);
            }
        }
        for r in self.top.clone() {
            self.internal_orderings(r);
        }
    }

    fn anti_colocation_order(
        &mut self,
        first: RscIx,
        first_role: Option<Role>,
        then: RscIx,
        then_role: Option<Role>,
    ) {
        let first_tasks: &[Task] = match first_role {
            Some(Role::Promoted) => &[Task::Demote],
            Some(Role::Unpromoted) => &[Task::Stop, Task::Promote],
            _ => &[Task::Stop],
        };
        let then_tasks: &[Task] = match then_role {
            Some(Role::Promoted) => &[Task::Promote],
            Some(Role::Unpromoted) => &[Task::Start, Task::Demote],
            _ => &[Task::Start],
        };
        for &f in first_tasks {
            for &t in then_tasks {
                self.order_rsc(first, f, then, t, of::ANTI_COLOCATION);
            }
        }
    }

    fn internal_orderings(&mut self, r: RscIx) {
        match self.rscs[r].variant {
            Variant::Primitive => self.primitive_orderings(r),
            Variant::Group => self.group_orderings(r),
            Variant::Clone => self.clone_orderings(r),
        }
    }

    fn primitive_orderings(&mut self, r: RscIx) {
        if !self.rscs[r].managed {
            return;
        }
        self.order_rsc(
            r,
            Task::Stop,
            r,
            Task::Start,
            of::OPTIONAL | of::IMPLIES_THEN | of::RESTART,
        );
        let top = self.uber_parent(r);
        if self.rscs[top].promotable || self.rscs[r].role > Role::Unpromoted {
            self.order_rsc(r, Task::Demote, r, Task::Stop, of::PROMOTED_IMPLIES_FIRST);
            self.order_rsc(r, Task::Start, r, Task::Promote, of::RUNNABLE_LEFT);
        }
    }

    fn group_orderings(&mut self, g: RscIx) {
        self.order_rsc(g, Task::Stop, g, Task::Stopped, of::RUNNABLE_LEFT);
        self.order_rsc(g, Task::Stopped, g, Task::Start, of::OPTIONAL);
        self.order_rsc(g, Task::Start, g, Task::Running, of::RUNNABLE_LEFT);
        let ordered = self.rscs[g].group_ordered;
        let promotable = {
            let top = self.uber_parent(g);
            self.rscs[top].promotable
        };
        let mut previous: Option<RscIx> = None;
        let mut last_active: Option<RscIx> = None;
        for m in self.rscs[g].children.clone() {
            self.internal_orderings(m);
            let mut down = of::IMPLIES_FIRST_PRINTED;
            let mut post_down = of::IMPLIES_THEN_PRINTED;
            if previous.is_none() && ordered {
                down |= of::OPTIONAL;
                post_down = of::IMPLIES_THEN;
            }
            if promotable {
                self.order_rsc(g, Task::Demote, m, Task::Demote, down);
                self.order_rsc(m, Task::Demote, g, Task::Demoted, post_down);
                self.order_rsc(
                    m,
                    Task::Promote,
                    g,
                    Task::Promoted,
                    of::RUNNABLE_LEFT | of::IMPLIES_THEN | of::IMPLIES_THEN_PRINTED,
                );
                self.order_rsc(
                    g,
                    Task::Promote,
                    m,
                    Task::Promote,
                    of::IMPLIES_FIRST_PRINTED,
                );
            }
            self.order_rsc(g, Task::Stop, m, Task::Stop, down);
            self.order_rsc(m, Task::Stop, g, Task::Stopped, post_down);
            self.order_rsc(g, Task::Start, m, Task::Start, of::IMPLIES_FIRST_PRINTED);
            self.order_rsc(
                m,
                Task::Start,
                g,
                Task::Running,
                of::RUNNABLE_LEFT | of::IMPLIES_THEN | of::IMPLIES_THEN_PRINTED,
            );
            if !ordered {
                self.order_rsc(
                    g,
                    Task::Start,
                    m,
                    Task::Start,
                    of::IMPLIES_THEN | of::RUNNABLE_LEFT | of::IMPLIES_FIRST_PRINTED,
                );
                if promotable {
                    self.order_rsc(
                        g,
                        Task::Promote,
                        m,
                        Task::Promote,
                        of::IMPLIES_THEN | of::RUNNABLE_LEFT | of::IMPLIES_FIRST_PRINTED,
                    );
                }
            } else if let Some(p) = previous {
                self.order_rsc(
                    p,
                    Task::Start,
                    m,
                    Task::Start,
                    of::IMPLIES_THEN | of::RUNNABLE_LEFT,
                );
                self.order_rsc(m, Task::Stop, p, Task::Stop, of::OPTIONAL | of::RESTART);
                if promotable {
                    self.order_rsc(
                        p,
                        Task::Promote,
                        m,
                        Task::Promote,
                        of::IMPLIES_THEN | of::RUNNABLE_LEFT,
                    );
                    self.order_rsc(m, Task::Demote, p, Task::Demote, of::OPTIONAL);
                }
            }
            if !self.rscs[m].running_on.is_empty() {
                if ordered
                    && let Some(p) = previous
                    && self.rscs[p].running_on.is_empty()
                    && let Some(la) = last_active
                    && !self.rscs[la].running_on.is_empty()
                {
                    self.order_rsc(m, Task::Stop, la, Task::Stop, of::OPTIONAL);
                }
                last_active = Some(m);
            }
            previous = Some(m);
        }
    }

    fn clone_orderings(&mut self, c: RscIx) {
        self.order_rsc(c, Task::Stopped, c, Task::Start, of::OPTIONAL);
        self.order_rsc(c, Task::Start, c, Task::Running, of::RUNNABLE_LEFT);
        self.order_rsc(c, Task::Stop, c, Task::Stopped, of::RUNNABLE_LEFT);
        let promotable = self.rscs[c].promotable;
        if promotable {
            self.order_rsc(c, Task::Demoted, c, Task::Stop, of::OPTIONAL);
            self.order_rsc(c, Task::Running, c, Task::Promote, of::RUNNABLE_LEFT);
        }
        let ordered = self.rscs[c].clone.as_ref().is_some_and(|i| i.ordered);
        let mut children = self.rscs[c].children.clone();
        if ordered {
            children.sort_by_key(|&x| self.rscs[x].instance);
        }
        let mut last: Option<RscIx> = None;
        for &child in &children {
            self.internal_orderings(child);
            self.order_rsc(
                c,
                Task::Start,
                child,
                Task::Start,
                of::RUNNABLE_LEFT | of::IMPLIES_FIRST_PRINTED,
            );
            self.order_rsc(
                child,
                Task::Start,
                c,
                Task::Running,
                of::IMPLIES_THEN_PRINTED,
            );
            if ordered && let Some(l) = last {
                self.order_rsc(l, Task::Start, child, Task::Start, of::OPTIONAL);
            }
            self.order_rsc(c, Task::Stop, child, Task::Stop, of::IMPLIES_FIRST_PRINTED);
            self.order_rsc(
                child,
                Task::Stop,
                c,
                Task::Stopped,
                of::IMPLIES_THEN_PRINTED,
            );
            if ordered && let Some(l) = last {
                self.order_rsc(child, Task::Stop, l, Task::Stop, of::OPTIONAL);
            }
            last = Some(child);
        }
        if promotable {
            for (f, t) in [
                (Task::Stopped, Task::Start),
                (Task::Stopped, Task::Promote),
                (Task::Demoted, Task::Stop),
                (Task::Demoted, Task::Start),
                (Task::Demoted, Task::Promote),
                (Task::Running, Task::Promote),
                (Task::Demote, Task::Demoted),
            ] {
                self.order_rsc(c, f, c, t, of::OPTIONAL);
            }
            let mut previous: Option<RscIx> = None;
            for &child in &self.rscs[c].children.clone() {
                self.order_rsc(child, Task::Demote, child, Task::Promote, of::OPTIONAL);
                self.order_rsc(c, Task::Promote, child, Task::Promote, of::OPTIONAL);
                self.order_rsc(child, Task::Promote, c, Task::Promoted, of::OPTIONAL);
                self.order_rsc(
                    c,
                    Task::Demote,
                    child,
                    Task::Demote,
                    of::IMPLIES_FIRST_PRINTED,
                );
                self.order_rsc(
                    child,
                    Task::Demote,
                    c,
                    Task::Demoted,
                    of::IMPLIES_THEN_PRINTED,
                );
                if ordered && let Some(p) = previous {
                    self.order_rsc(p, Task::Promote, child, Task::Promote, of::OPTIONAL);
                    self.order_rsc(child, Task::Demote, p, Task::Demote, of::OPTIONAL);
                }
                previous = Some(child);
            }
        }
    }

    /// `order_actions`: one edge, filtering duplicates that share a flag.
    fn order_actions(&mut self, first: ActionIx, then: ActionIx, flags: u32) -> bool {
        if flags == 0 || first == then {
            return false;
        }
        if self.acts.list[first]
            .after
            .iter()
            .any(|&(t, f)| t == then && f & flags != 0)
        {
            return false;
        }
        self.acts.list[first].after.push((then, flags));
        self.acts.list[then].before.push((first, flags));
        self.acts.touched.push(then);
        true
    }

    /// Resolves the orderings to edges between actions (Pacemaker's
    /// `pcmk__apply_orderings`, first half).
    pub fn apply_orderings(&mut self) {
        let orderings = std::mem::take(&mut self.acts.orderings);
        for o in orderings {
            let ((r, task), (t, then_task)) = (o.first, o.then);
            let mut firsts = self.rsc_actions(r, task, None);
            if firsts.is_empty() && t != r {
                // Pacemaker creates the missing "first" action (unrunnable
                // unless it gets a node), so that "then" waits for it.
                let state = self.state(r, true);
                let skip = (state == Some(Role::Stopped) && task == Task::Stop)
                    || (state == Some(Role::Unpromoted) && task == Task::Demote);
                if !skip {
                    firsts.push(self.custom_action(Some(r), task, None, true));
                }
            }
            let thens = self.rsc_actions(t, then_task, None);
            for &first in &firsts {
                for &then in &thens {
                    self.order_actions(first, then, o.flags);
                }
            }
        }
        self.remap_composite_firsts();
    }

    /// An ordering after a group's or clone's action really waits for the
    /// "done" pseudo-action (all members started, stopped, …).
    fn remap_composite_firsts(&mut self) {
        for then in 0..self.acts.list.len() {
            let before = self.acts.list[then].before.clone();
            for (i, &(first, flags)) in before.iter().enumerate() {
                let (Some(fr), Some(tr)) = (self.acts.list[first].rsc, self.acts.list[then].rsc)
                else {
                    continue;
                };
                if fr == tr
                    || self.rscs[fr].variant == Variant::Primitive
                    || self.is_ancestor(fr, tr)
                {
                    continue;
                }
                let task = self.acts.list[first].task;
                let mapped = task.completed();
                if mapped == task {
                    continue;
                }
                let Some(done) = self.find_action(fr, mapped, None) else {
                    continue;
                };
                // Disable the original edge, add the remapped one.
                self.acts.list[then].before[i].1 = 0;
                if let Some(e) = self.acts.list[first]
                    .after
                    .iter_mut()
                    .find(|(t, f)| *t == then && *f == flags)
                {
                    e.1 = 0;
                }
                self.order_actions(done, then, flags);
            }
        }
    }

    fn is_ancestor(&self, ancestor: RscIx, r: RscIx) -> bool {
        let mut p = self.rscs[r].parent;
        while let Some(x) = p {
            if x == ancestor {
                return true;
            }
            p = self.rscs[x].parent;
        }
        false
    }

    // ------------------------------------------------------------ fencing

    /// Schedules fencing of unclean nodes that can be fenced, and makes
    /// the stops there implied by it.
    pub fn schedule_fencing(&mut self) {
        let have_managed = self.rscs.iter().any(|r| r.managed);
        for n in 0..self.node_count() {
            if !(have_managed && self.nodes[n].unclean && self.can_fence(n)) {
                continue;
            }
            let f = self.acts.list.len();
            self.acts.list.push(Action {
                rsc: None,
                task: Task::Fence,
                interval_ms: 0,
                node: Some(n),
                optional: false,
                runnable: true,
                pseudo: false,
                print_always: false,
                migrate_runnable: false,
                needs: Needs::Nothing,
                before: Vec::new(),
                after: Vec::new(),
                reason: Some("node is unclean".into()),
            });
            for r in 0..self.rscs.len() {
                if !self.rscs[r].children.is_empty() || !self.rscs[r].managed {
                    continue;
                }
                for a in self.acts.by_rsc.get(&r).cloned().unwrap_or_default() {
                    let act = &self.acts.list[a];
                    match (act.task, act.needs) {
                        (_, Needs::Fencing) => {
                            self.order_actions(f, a, of::OPTIONAL);
                        }
                        (Task::Start, Needs::Quorum)
                            if self.rscs[r].allowed[n].is_some() && !self.rscs[r].known_on[n] =>
                        {
                            self.order_actions(f, a, of::OPTIONAL | of::RUNNABLE_LEFT);
                        }
                        _ => {}
                    }
                }
                for a in self.rsc_actions(r, Task::Stop, Some(n)) {
                    let act = &mut self.acts.list[a];
                    act.pseudo = true;
                    act.runnable = true;
                    act.reason = Some("implied by fencing".into());
                    if self.rscs[r].needs_fencing {
                        self.order_actions(f, a, of::PRESERVE);
                    }
                }
                for a in self.rsc_actions(r, Task::Demote, Some(n)) {
                    let act = &mut self.acts.list[a];
                    act.pseudo = true;
                    act.runnable = true;
                }
            }
        }
    }

    /// `pe_can_fence`.
    pub fn can_fence(&self, n: NodeIx) -> bool {
        self.flags.fencing_enabled
            && self.flags.fence_device_configured
            && (self.flags.have_quorum
                || self.flags.no_quorum_policy == NoQuorumPolicy::Ignore
                || self.nodes[n].online)
    }

    // ------------------------------------------------------------ flags

    /// Propagates optional/runnable along the orderings until nothing
    /// changes (Pacemaker's `pcmk__update_action_for_orderings`): every
    /// action is examined once, then whatever changed is examined again
    /// together with the actions ordered after it.
    pub fn update_action_flags(&mut self) {
        for a in 0..self.acts.list.len() {
            self.block_colocation_dependents(a);
        }
        let count = self.acts.list.len();
        let budget = count
            .saturating_mul(FLAG_UPDATES_PER_ACTION_MAX)
            .saturating_add(FLAG_UPDATES_PER_ACTION_MAX);
        // Pacemaker's list order: newest action first.
        let mut queue: std::collections::VecDeque<ActionIx> = (0..count).rev().collect();
        let mut queued = vec![true; count];
        self.acts.touched.clear();
        let mut updates = 0usize;
        while let Some(then) = queue.pop_front() {
            queued[then] = false;
            updates += 1;
            if updates > budget {
                self.warnings.push(format!(
                    "action flags did not settle after {budget} updates"
                ));
                return;
            }
            self.update_action(then);
            let touched = std::mem::take(&mut self.acts.touched);
            for t in touched {
                let after: Vec<ActionIx> =
                    self.acts.list[t].after.iter().map(|&(x, _)| x).collect();
                for x in std::iter::once(t).chain(after) {
                    if x < queued.len() && !queued[x] {
                        queued[x] = true;
                        queue.push_back(x);
                    }
                }
            }
        }
    }

    fn update_action(&mut self, then: ActionIx) {
        let before = self.acts.list[then].before.clone();
        for (first, flags) in before {
            if flags == 0 {
                continue;
            }
            let was_runnable = self.acts.list[then].runnable;
            let first_was = self.acts.list[first].runnable;
            // A group's start is evaluated on the node the group is placed on.
            let node_of = |w: &Self, a: ActionIx| {
                let act = &w.acts.list[a];
                match act.rsc {
                    Some(r) if w.rscs[r].variant == Variant::Group && act.task == Task::Start => {
                        w.location(r, false)
                    }
                    _ => act.node,
                }
            };
            let then_node = node_of(self, then);
            let first_node = node_of(self, first);
            let first_flags = self.action_flags(first, then_node);
            let then_flags = self.action_flags(then, first_node);
            self.update_for_ordering(first, then, first_flags, then_flags, flags);
            if was_runnable && !self.acts.list[then].runnable {
                self.block_colocation_dependents(then);
            }
            if first_was && !self.acts.list[first].runnable {
                self.block_colocation_dependents(first);
            }
        }
    }

    /// The flags an ordering sees for an action (Pacemaker's
    /// `action_flags_for_ordering`): for groups and clones a summary of
    /// their members' actions. Only a clone looks at the node of the other
    /// action, and then only for "optional".
    fn action_flags(&mut self, a: ActionIx, node: Option<NodeIx>) -> Flags {
        let Some(r) = self.acts.list[a].rsc else {
            return Flags::of(&self.acts.list[a]);
        };
        match self.rscs[r].variant {
            Variant::Primitive => Flags::of(&self.acts.list[a]),
            Variant::Group => self.group_action_flags(a, None),
            Variant::Clone => {
                let f = self.clone_action_flags(a, None);
                if node.is_none() {
                    return f;
                }
                let mut g = self.clone_action_flags(a, node);
                if f.runnable {
                    g.runnable = true;
                }
                g
            }
        }
    }

    /// The per-variant `action_flags` method, with a node.
    fn rsc_action_flags(&mut self, a: ActionIx, node: Option<NodeIx>) -> Flags {
        let Some(r) = self.acts.list[a].rsc else {
            return Flags::of(&self.acts.list[a]);
        };
        match self.rscs[r].variant {
            Variant::Primitive => Flags::of(&self.acts.list[a]),
            Variant::Group => self.group_action_flags(a, node),
            Variant::Clone => self.clone_action_flags(a, node),
        }
    }

    fn group_action_flags(&mut self, a: ActionIx, node: Option<NodeIx>) -> Flags {
        let r = self.acts.list[a].rsc.expect("a resource action");
        let task = self.acts.list[a].task;
        let mut flags = Flags {
            optional: true,
            runnable: true,
        };
        for m in self.rscs[r].children.clone() {
            let mtask = if self.rscs[m].variant == Variant::Primitive {
                task.atomic()
            } else {
                task
            };
            match self.find_action(m, mtask, node) {
                Some(ma) => {
                    let mf = self.rsc_action_flags(ma, node);
                    if flags.optional && !mf.optional {
                        flags.optional = false;
                        self.acts.clear_optional(a);
                    }
                    if mtask != task && flags.runnable && !mf.runnable {
                        flags.runnable = false;
                        self.acts.clear_runnable(a);
                    }
                }
                None => {
                    if mtask != Task::Stop && mtask != Task::Demote {
                        flags.runnable = false;
                    }
                }
            }
        }
        flags
    }

    fn clone_action_flags(&mut self, a: ActionIx, node: Option<NodeIx>) -> Flags {
        let r = self.acts.list[a].rsc.expect("a resource action");
        let task = self.acts.list[a].task;
        let mut flags = Flags {
            optional: true,
            runnable: true,
        };
        let mut any_runnable = false;
        let children = self.rscs[r].children.clone();
        let child_task = match children.first() {
            Some(&c) if self.rscs[c].variant == Variant::Primitive => task.atomic(),
            _ => task,
        };
        for c in children {
            let on = if self.rscs[c].children.is_empty() {
                node
            } else {
                None
            };
            if let Some(ca) = self.find_action(c, child_task, on) {
                let cf = self.rsc_action_flags(ca, node);
                if flags.optional && !cf.optional {
                    flags.optional = false;
                    self.acts.clear_optional(a);
                }
                if cf.runnable {
                    any_runnable = true;
                }
            }
        }
        if !any_runnable {
            flags.runnable = false;
            if node.is_none() {
                self.acts.clear_runnable(a);
            }
        }
        flags
    }

    /// `update_action_for_ordering_flags`.
    fn update_for_ordering(
        &mut self,
        first: ActionIx,
        then: ActionIx,
        first_flags: Flags,
        then_flags: Flags,
        flags: u32,
    ) {
        let _ = then_flags;
        let then_rsc = self.acts.list[then].rsc;
        let first_rsc = self.acts.list[first].rsc;
        if flags & of::IMPLIES_THEN != 0 {
            if then_rsc.is_some() {
                let f = Flags {
                    optional: first_flags.optional,
                    runnable: false,
                };
                self.update_ordered(first, then, f, FILTER_OPTIONAL, of::IMPLIES_THEN);
            } else if !first_flags.optional && self.acts.list[then].optional {
                self.acts.clear_optional(then);
            }
        }
        if flags & of::RESTART != 0 && then_rsc.is_some() {
            self.update_ordered(
                first,
                then,
                first_flags,
                FILTER_OPTIONAL | FILTER_RUNNABLE,
                of::RESTART,
            );
        }
        if flags & of::IMPLIES_FIRST != 0 {
            if first_rsc.is_some() {
                self.update_ordered(first, then, first_flags, FILTER_OPTIONAL, of::IMPLIES_FIRST);
            } else if !first_flags.optional && self.acts.list[first].runnable {
                self.acts.clear_runnable(first);
            }
        }
        if flags & of::PROMOTED_IMPLIES_FIRST != 0 && then_rsc.is_some() {
            let f = Flags {
                optional: first_flags.optional,
                runnable: false,
            };
            self.update_ordered(first, then, f, FILTER_OPTIONAL, of::PROMOTED_IMPLIES_FIRST);
        }
        if flags & of::RUNNABLE_LEFT != 0 {
            if then_rsc.is_some() {
                self.update_ordered(first, then, first_flags, FILTER_RUNNABLE, of::RUNNABLE_LEFT);
            } else if !first_flags.runnable && self.acts.list[then].runnable {
                self.acts.clear_runnable(then);
            }
        }
        if flags & of::ASYMMETRICAL != 0 && then_rsc.is_some() {
            self.update_ordered(first, then, first_flags, FILTER_RUNNABLE, of::ASYMMETRICAL);
        }
        if flags & (of::IMPLIES_THEN | of::IMPLIES_FIRST | of::RESTART) != 0
            && let Some(fr) = first_rsc
            && !self.rscs[fr].managed
            && self.rscs[fr].blocked
            && !self.acts.list[first].runnable
            && self.acts.list[first].task == Task::Stop
        {
            self.acts.clear_runnable(then);
        }
    }

    /// The per-variant `update_ordered_actions`: a group or clone passes the
    /// update on to its members' corresponding actions.
    fn update_ordered(
        &mut self,
        first: ActionIx,
        then: ActionIx,
        flags: Flags,
        filter: u8,
        kind: u32,
    ) {
        let then_rsc = self.acts.list[then].rsc;
        let node = self.acts.list[then].node;
        if self.can_interleave(first, then) {
            self.interleave_update(first, then, node, filter, kind);
            return;
        }
        self.update_ordered_primitive(first, then, flags, filter, kind);
        let Some(tr) = then_rsc else { return };
        match self.rscs[tr].variant {
            Variant::Primitive => {}
            Variant::Group => {
                let task = self.acts.list[then].task;
                for m in self.rscs[tr].children.clone() {
                    if let Some(ma) = self.find_action(m, task, node) {
                        self.update_ordered(first, ma, flags, filter, kind);
                    }
                }
            }
            Variant::Clone => {
                let task = self.acts.list[then].task;
                for c in self.rscs[tr].children.clone() {
                    if let Some(ca) = self.find_action(c, task, node)
                        && self.rsc_action_flags(ca, node).runnable
                    {
                        self.update_ordered(first, ca, flags, filter, kind);
                    }
                }
            }
        }
    }

    /// `can_interleave_actions`: an order between two clones pairs their
    /// instances node by node when the clone that acts second (the first
    /// one for stops and demotes) is `interleave`d.
    fn can_interleave(&self, first: ActionIx, then: ActionIx) -> bool {
        let (Some(fr), Some(tr)) = (self.acts.list[first].rsc, self.acts.list[then].rsc) else {
            return false;
        };
        if fr == tr
            || self.rscs[fr].variant != Variant::Clone
            || self.rscs[tr].variant != Variant::Clone
        {
            return false;
        }
        let decider = match self.acts.list[then].task {
            Task::Stop | Task::Demote => fr,
            _ => tr,
        };
        self.rscs[decider]
            .clone
            .as_ref()
            .is_some_and(|i| i.interleave)
    }

    /// `multi_update_interleave_actions`: orders each instance of `then`
    /// after the instance of `first` on its node; an instance without one
    /// may not run at all (a mandatory order).
    fn interleave_update(
        &mut self,
        first: ActionIx,
        then: ActionIx,
        node: Option<NodeIx>,
        filter: u8,
        kind: u32,
    ) {
        let (fr, tr) = (
            self.acts.list[first].rsc.expect("a clone"),
            self.acts.list[then].rsc.expect("a clone"),
        );
        let first_task = self.acts.list[first].task;
        let current = matches!(first_task, Task::Stopped | Task::Demoted);
        let then_task = self.acts.list[then].task;
        for then_child in self.rscs[tr].children.clone() {
            let Some(first_child) = self.find_compatible_child_at(then_child, fr, None, current)
            else {
                if !current && kind & (of::RUNNABLE_LEFT | of::IMPLIES_THEN) != 0 {
                    self.force_assign(then_child, None);
                }
                continue;
            };
            let child_task = if self.rscs[first_child].variant == Variant::Primitive {
                first_task.atomic()
            } else {
                first_task
            };
            let (Some(fa), Some(ta)) = (
                self.find_action(first_child, child_task, node),
                self.find_action(then_child, then_task, node),
            ) else {
                continue;
            };
            self.order_actions(fa, ta, kind);
            let f = self.rsc_action_flags(fa, node);
            self.update_ordered(fa, ta, f, filter, kind);
        }
    }

    /// `pcmk__update_ordered_actions`.
    fn update_ordered_primitive(
        &mut self,
        first: ActionIx,
        then: ActionIx,
        flags: Flags,
        filter: u8,
        kind: u32,
    ) {
        let then_flags = Flags::of(&self.acts.list[then]);
        let first_flags = Flags::of(&self.acts.list[first]);
        if kind & of::ASYMMETRICAL != 0 {
            self.handle_asymmetric(first, then);
        }
        if kind & of::IMPLIES_FIRST != 0
            && !then_flags.optional
            && filter & FILTER_OPTIONAL != 0
            && !flags.optional
            && first_flags.optional
        {
            self.acts.clear_optional(first);
        }
        if kind & of::PROMOTED_IMPLIES_FIRST != 0
            && let Some(tr) = self.acts.list[then].rsc
            && self.rscs[tr].role == Role::Promoted
            && filter & FILTER_OPTIONAL != 0
            && !self.acts.list[then].optional
        {
            self.acts.clear_optional(first);
        }
        if kind & of::RUNNABLE_LEFT != 0
            && filter & FILTER_RUNNABLE != 0
            && self.acts.list[then].runnable
            && !flags.runnable
        {
            self.acts.clear_runnable(then);
        }
        if kind & of::IMPLIES_THEN != 0
            && filter & FILTER_OPTIONAL != 0
            && self.acts.list[then].optional
            && !flags.optional
            && !self.acts.list[first].migrate_runnable
        {
            self.acts.clear_optional(then);
        }
        if kind & of::RESTART != 0 {
            self.handle_restart(first, then, filter);
        }
    }

    fn handle_asymmetric(&mut self, first: ActionIx, then: ActionIx) {
        let Some(tr) = self.acts.list[then].rsc else {
            return;
        };
        let role = self.state(tr, true);
        let task = self.acts.list[then].task;
        if role == Some(Role::Stopped) && task == Task::Stop {
            return;
        }
        let on = &self.rscs[tr].running_on;
        if role >= Some(Role::Started)
            && self.acts.list[then].optional
            && self.acts.list[then].node.is_some()
            && on.len() == 1
            && Some(on[0]) == self.acts.list[then].node
            && task == Task::Start
        {
            return;
        }
        if !self.acts.list[first].runnable {
            self.acts.clear_optional(then);
            self.acts.clear_runnable(then);
        }
    }

    fn handle_restart(&mut self, first: ActionIx, then: ActionIx, filter: u8) {
        let (Some(fr), Some(tr)) = (self.acts.list[first].rsc, self.acts.list[then].rsc) else {
            return;
        };
        if self.rscs[fr].variant != Variant::Primitive
            || self.rscs[tr].variant != Variant::Primitive
        {
            return;
        }
        let mut reason = false;
        if filter & FILTER_OPTIONAL != 0 && !self.acts.list[then].optional {
            reason = true;
        }
        if filter & FILTER_RUNNABLE != 0
            && !self.acts.list[then].runnable
            && self.rscs[tr].managed
            && fr == tr
        {
            reason = true;
        }
        if !reason {
            return;
        }
        if self.acts.list[first].runnable {
            self.acts.clear_optional(first);
        }
        if !self.acts.list[then].optional {
            self.acts.clear_optional(first);
        }
        if !self.acts.list[first].optional && !self.acts.list[first].runnable {
            self.acts.clear_runnable(then);
        }
    }

    /// `pcmk__block_colocation_dependents`: an unrunnable start (or promote)
    /// of a resource blocks the start (promote) of what must be colocated
    /// with it — transitively, with an explicit stack rather than recursion
    /// so that no chain length can exhaust the thread's stack.
    fn block_colocation_dependents(&mut self, a: ActionIx) {
        let mut pending = vec![a];
        while let Some(a) = pending.pop() {
            for (dependent, task) in self.colocation_blocks(a) {
                self.mark_blocked(dependent, task, &mut pending);
            }
        }
    }

    /// The (dependent, task) pairs an unrunnable action blocks.
    fn colocation_blocks(&self, a: ActionIx) -> Vec<(RscIx, Task)> {
        let act = &self.acts.list[a];
        if act.runnable {
            return Vec::new();
        }
        let is_start = act.task == Task::Start;
        if !is_start && act.task != Task::Promote {
            return Vec::new();
        }
        let Some(ar) = act.rsc else {
            return Vec::new();
        };
        let task = act.task;
        // For a collective resource, only when no instance can do it.
        let rsc = self.uber_parent(ar);
        if self.rscs[rsc].with_this.is_empty() {
            return Vec::new();
        }
        for &child in &self.rscs[rsc].children {
            match self.find_action(child, task, None) {
                None => return Vec::new(),
                Some(ca) if self.acts.list[ca].runnable => return Vec::new(),
                Some(_) => {}
            }
        }
        let mut out = Vec::new();
        for &c in &self.rscs[rsc].with_this {
            let co = &self.colocs[c];
            if co.score < Score::INFINITY {
                continue;
            }
            if !is_start && co.primary_role != Some(Role::Promoted) {
                continue;
            }
            let blocked_task = if co.dependent_role == Some(Role::Promoted) {
                Task::Promote
            } else {
                Task::Start
            };
            out.push((co.dependent, blocked_task));
        }
        out
    }

    /// Makes `task` of `r` (and of everything under it) unrunnable; each
    /// action that changes is queued on `pending` to block its own
    /// dependents.
    fn mark_blocked(&mut self, r: RscIx, task: Task, pending: &mut Vec<ActionIx>) {
        let mut resources = vec![r];
        while let Some(r) = resources.pop() {
            for a in self.acts.by_rsc.get(&r).cloned().unwrap_or_default() {
                let act = &self.acts.list[a];
                if act.runnable && act.task == task {
                    self.acts.clear_runnable(a);
                    pending.push(a);
                }
            }
            resources.extend(self.rscs[r].children.iter().copied());
        }
    }
}

const FILTER_OPTIONAL: u8 = 1;
const FILTER_RUNNABLE: u8 = 2;

/// The two action properties orderings move around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flags {
    pub optional: bool,
    pub runnable: bool,
}

impl Flags {
    fn of(a: &Action) -> Flags {
        Flags {
            optional: a.optional,
            runnable: a.runnable,
        }
    }
}

/// Flags of a user order (Pacemaker's `ordering_flags_for_kind`).
fn order_flags(kind: OrderKind, first: Task, symmetric: bool, inverse: bool) -> u32 {
    let mut flags = of::OPTIONAL;
    match kind {
        OrderKind::Optional => {}
        OrderKind::Serialize => flags |= of::SERIALIZE_ONLY,
        OrderKind::Mandatory => {
            if inverse {
                flags |= of::IMPLIES_FIRST;
            } else if symmetric {
                flags |= of::IMPLIES_THEN;
                if matches!(first, Task::Start | Task::Promote) {
                    flags |= of::RUNNABLE_LEFT;
                }
            } else {
                flags |= of::ASYMMETRICAL;
            }
        }
    }
    flags
}

/// The next role on the way from `current` to `target` (Pacemaker's
/// `rsc_state_matrix`).
fn next_role_toward(current: Role, target: Role) -> Role {
    use Role::*;
    match (current, target) {
        (Stopped, Promoted) => Unpromoted,
        (Stopped, t) => t,
        (Started, t) => t,
        (Unpromoted, Started) => Stopped,
        (Unpromoted, t) => t,
        (Promoted, Promoted) => Promoted,
        (Promoted, _) => Unpromoted,
    }
}
