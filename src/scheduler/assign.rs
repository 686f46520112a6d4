//! Placement: choosing a node for every resource (Pacemaker's "assign"
//! phase), including colocation in both directions, groups and clone
//! instances. The functions follow Pacemaker 2.1.5's structure closely
//! (their names are given in the comments) because its results depend on
//! the order in which scores are merged.

use crate::config::score::INFINITY;
use crate::config::{Role, Score};

use super::work::{Allowed, ColocIx, NodeIx, NodeTable, RscIx, Variant, Work};

/// How deep placement may recurse through colocations (placing a
/// resource places its primaries first, and merging scores follows chains
/// of dependents). Pacemaker has no limit; hactl cuts deeper chains like a
/// colocation loop (with a warning) instead of overflowing a thread's stack:
/// a debug build on a 2 MB stack handles four times this depth.
pub(crate) const COLOCATION_DEPTH_MAX: u32 = 256;

/// Merge flags (Pacemaker's `pcmk__coloc_select_*`).
pub(crate) const SELECT_THIS_WITH: u8 = 1;
pub(crate) const SELECT_NONNEGATIVE: u8 = 2;
pub(crate) const SELECT_ACTIVE: u8 = 4;

/// A node's entry while scores of colocated resources are merged in:
/// `unusable` marks a node that a "positive only" merge must not make
/// negative (Pacemaker's INFINITY_HACK); it ends as a score of 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Merge {
    pub allowed: Allowed,
    pub unusable: bool,
}

pub(crate) type MergeTable = Vec<Option<Merge>>;

fn to_merge(t: &NodeTable) -> MergeTable {
    t.iter()
        .map(|a| {
            a.map(|allowed| Merge {
                allowed,
                unusable: false,
            })
        })
        .collect()
}

fn from_merge(t: &MergeTable) -> NodeTable {
    t.iter().map(|m| m.map(|m| m.allowed)).collect()
}

/// What a colocation affects at this point of scheduling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affects {
    Nothing,
    Location,
    Role,
}

/// `score / INFINITY` in single precision, as Pacemaker computes it.
pub(crate) fn factor_of(score: Score) -> f32 {
    score.value() as f32 / INFINITY as f32
}

/// Pacemaker's rounding of an attenuated score.
fn round_weight(weight_f: f32) -> i64 {
    let w = f64::from(weight_f);
    (if w < 0.0 { w - 0.5 } else { w + 0.5 }) as i64
}

/// GLib's `g_list_sort`: a stable top-down merge sort whose result on a
/// comparison that is not a total order is what Pacemaker's is.
pub(crate) fn glib_sort<T: Copy>(
    v: &[T],
    cmp: &mut dyn FnMut(T, T) -> std::cmp::Ordering,
) -> Vec<T> {
    if v.len() <= 1 {
        return v.to_vec();
    }
    let half = v.len() / 2;
    let a = glib_sort(&v[..half], cmp);
    let b = glib_sort(&v[half..], cmp);
    let mut out = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if cmp(a[i], b[j]) != std::cmp::Ordering::Greater {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Work<'_> {
    // ------------------------------------------------------------ dispatch

    /// Assigns a resource (and what it must be placed with) to a node.
    pub fn assign(&mut self, r: RscIx, prefer: Option<NodeIx>) -> Option<NodeIx> {
        if !self.enter_depth() {
            return self.rscs[r].allocated_to;
        }
        let node = match self.rscs[r].variant {
            Variant::Primitive => self.primitive_assign(r, prefer),
            Variant::Group => self.group_assign(r, prefer),
            Variant::Clone => self.clone_assign(r, prefer),
        };
        self.depth.set(self.depth.get() - 1);
        node
    }

    /// Counts one more level of recursion; false (and a warning, once) when
    /// that would exceed [`COLOCATION_DEPTH_MAX`].
    fn enter_depth(&self) -> bool {
        let d = self.depth.get();
        if d >= COLOCATION_DEPTH_MAX {
            self.depth_exceeded.set(true);
            return false;
        }
        self.depth.set(d + 1);
        true
    }

    /// Applies colocation `c` between `dependent` and `primary`, on behalf
    /// of the dependent (`for_dependent`) or of the primary.
    pub fn apply_coloc_score(
        &mut self,
        dependent: RscIx,
        primary: RscIx,
        c: ColocIx,
        for_dependent: bool,
    ) {
        if for_dependent && self.rscs[dependent].variant == Variant::Group {
            self.colocate_group_with(dependent, primary, c);
            return;
        }
        match self.rscs[primary].variant {
            Variant::Primitive => match self.colocation_affects(dependent, primary, c, false) {
                Affects::Role => self.apply_coloc_to_priority(dependent, primary, c),
                Affects::Location => self.apply_coloc_to_weights(dependent, primary, c),
                Affects::Nothing => {}
            },
            Variant::Group => self.colocate_with_group(dependent, primary, c),
            Variant::Clone => self.clone_apply_coloc_score(dependent, primary, c),
        }
    }

    // ------------------------------------------------------------ locations

    /// Applies every location constraint, then stickiness, then failure
    /// bans (Pacemaker's `apply_node_criteria`).
    pub fn apply_node_criteria(&mut self) {
        // Pacemaker prepends constraints to its list: apply the last first.
        for l in (0..self.locs.len()).rev() {
            let r = self.locs[l].rsc;
            self.apply_location_to(r, l, false);
        }
        for r in self.top.clone() {
            self.apply_stickiness(r);
        }
        for n in 0..self.node_count() {
            for r in self.top.clone() {
                self.check_failure_threshold(r, n);
            }
        }
    }

    /// `pcmk__apply_location` and its group and clone variants.
    fn apply_location_to(&mut self, r: RscIx, l: usize, zero: bool) {
        let loc = self.locs[l].clone();
        match self.rscs[r].variant {
            Variant::Group => {
                self.apply_location_one(r, &loc, zero);
                // The first member of a colocated group takes the score; the
                // others only learn that the node is allowed.
                let mut reset = self.rscs[r].group_colocated;
                let mut member_zero = zero;
                for m in self.rscs[r].children.clone() {
                    self.apply_location_to(m, l, member_zero);
                    if reset {
                        reset = false;
                        member_zero = true;
                    }
                }
            }
            Variant::Clone => {
                self.apply_location_one(r, &loc, zero);
                for c in self.rscs[r].children.clone() {
                    self.apply_location_to(c, l, zero);
                }
            }
            Variant::Primitive => self.apply_location_one(r, &loc, zero),
        }
    }

    fn apply_location_one(&mut self, r: RscIx, loc: &super::work::Loc, zero: bool) {
        if let Some(role) = loc.role_filter
            && self.rscs[r].next_role != Some(role)
        {
            return;
        }
        let score = if zero { Score::ZERO } else { loc.score };
        let slot = &mut self.rscs[r].allowed[loc.node];
        *slot = Some(match *slot {
            None => Allowed::new(score),
            Some(a) => Allowed {
                weight: a.weight + score,
                count: a.count,
            },
        });
    }

    fn apply_stickiness(&mut self, r: RscIx) {
        if !self.rscs[r].children.is_empty() {
            for c in self.rscs[r].children.clone() {
                self.apply_stickiness(c);
            }
            return;
        }
        let rsc = &self.rscs[r];
        if !rsc.managed || rsc.stickiness < Score::new(1) || rsc.running_on.len() != 1 {
            return;
        }
        let node = rsc.running_on[0];
        if !self.flags.symmetric && rsc.allowed[node].is_none() {
            return;
        }
        let s = rsc.stickiness;
        self.resource_location(r, Some(node), s);
    }

    fn check_failure_threshold(&mut self, r: RscIx, n: NodeIx) {
        if !self.rscs[r].children.is_empty() {
            for c in self.rscs[r].children.clone() {
                self.check_failure_threshold(c, n);
            }
            return;
        }
        let threshold = self.rscs[r].migration_threshold;
        if threshold == 0 {
            return;
        }
        let count = i64::from(self.fail_count(r, n));
        if count <= 0 {
            return;
        }
        if threshold - count <= 0 {
            let target = if self.rscs[r].unique {
                r
            } else {
                self.uber_parent(r)
            };
            self.resource_location(target, Some(n), Score::MINUS_INFINITY);
        }
    }

    // ------------------------------------------------------------ primitives

    /// `pcmk__primitive_assign`.
    fn primitive_assign(&mut self, r: RscIx, prefer: Option<NodeIx>) -> Option<NodeIx> {
        if let Some(p) = self.rscs[r].parent
            && !self.rscs[p].allocating
        {
            self.assign(p, prefer);
        }
        if !self.rscs[r].provisional {
            return self.rscs[r].allocated_to;
        }
        if self.rscs[r].allocating {
            return None;
        }
        self.rscs[r].allocating = true;
        for c in self.rscs[r].this_with.clone() {
            self.apply_this_with(c, r);
        }
        for c in self.rscs[r].with_this.clone() {
            self.apply_with_this(c, r);
        }
        let (role, next_role) = (self.rscs[r].role, self.rscs[r].next_role);
        if next_role == Some(Role::Stopped) {
            self.resource_location(r, None, Score::MINUS_INFINITY);
        } else if next_role > Some(role)
            && !self.flags.have_quorum
            && self.flags.no_quorum_policy == crate::config::NoQuorumPolicy::Freeze
        {
            self.rscs[r].next_role = Some(role);
        }
        self.show_table("pcmk__primitive_assign", r, false);
        // Pacemaker freezes everything when fencing is on but no device is.
        if self.flags.fencing_enabled && !self.flags.fence_device_configured {
            self.rscs[r].managed = false;
        }
        if !self.rscs[r].managed {
            self.rscs[r].next_role = Some(self.rscs[r].role);
            let to = self.current_node(r);
            self.finalize_assignment(r, to, true);
        } else if self.rscs[r].provisional {
            self.assign_best_node(r, prefer);
        }
        self.rscs[r].allocating = false;
        self.rscs[r].allocated_to
    }

    fn apply_this_with(&mut self, c: ColocIx, r: RscIx) {
        let (other, score, dep_role) = {
            let co = &self.colocs[c];
            (co.primary, co.score, co.dependent_role)
        };
        let archive = (dep_role >= Some(Role::Promoted)
            || (score < Score::ZERO && score > Score::MINUS_INFINITY))
            .then(|| self.rscs[r].allowed.clone());
        self.assign(other, None);
        self.apply_coloc_score(r, other, c, true);
        if let Some(a) = archive
            && !self.any_available(&self.rscs[r].allowed)
        {
            self.rscs[r].allowed = a;
        }
    }

    fn apply_with_this(&mut self, c: ColocIx, r: RscIx) {
        let (other, factor, attr) = {
            let co = &self.colocs[c];
            (co.dependent, factor_of(co.score), co.node_attribute.clone())
        };
        if !self.has_influence(c, None) {
            return;
        }
        let mut nodes = Some(to_merge(&self.rscs[r].allowed));
        self.add_colocated_node_scores(other, &mut nodes, attr.as_deref(), factor, SELECT_ACTIVE);
        if let Some(n) = nodes {
            self.rscs[r].allowed = from_merge(&n);
        }
    }

    /// `pcmk__colocation_has_influence`.
    pub fn has_influence(&self, c: ColocIx, rsc: Option<RscIx>) -> bool {
        let co = &self.colocs[c];
        let rsc = rsc.unwrap_or(co.primary);
        co.influence || self.rscs[rsc].running_on.is_empty()
    }

    /// Allowed nodes sorted best first (Pacemaker's `pcmk__sort_nodes`).
    pub fn sorted_nodes(&self, table: &NodeTable, active: Option<NodeIx>) -> Vec<NodeIx> {
        let entries: Vec<NodeIx> = (0..table.len()).filter(|&n| table[n].is_some()).collect();
        glib_sort(&entries, &mut |a, b| {
            self.compare_nodes(table, a, b, active)
        })
    }

    fn compare_nodes(
        &self,
        table: &NodeTable,
        a: NodeIx,
        b: NodeIx,
        active: Option<NodeIx>,
    ) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let weight = |n: NodeIx| {
            if self.nodes[n].can_run() {
                table[n].map_or(Score::MINUS_INFINITY, |x| x.weight)
            } else {
                Score::MINUS_INFINITY
            }
        };
        let (wa, wb) = (weight(a), weight(b));
        if wa != wb {
            return wb.cmp(&wa);
        }
        let (ra, rb) = (self.nodes[a].num_resources, self.nodes[b].num_resources);
        if ra != rb {
            return ra.cmp(&rb);
        }
        if let Some(act) = active {
            if act == a {
                return Ordering::Less;
            }
            if act == b {
                return Ordering::Greater;
            }
        }
        self.nodes[a]
            .name
            .as_bytes()
            .cmp(self.nodes[b].name.as_bytes())
    }

    /// `assign_best_node`.
    fn assign_best_node(&mut self, r: RscIx, prefer: Option<NodeIx>) -> bool {
        if !self.rscs[r].provisional {
            return self.rscs[r].allocated_to.is_some();
        }
        let current = self.current_node(r);
        let table = self.rscs[r].allowed.clone();
        let nodes = self.sorted_nodes(&table, current);
        let best = nodes.first().copied();
        let weight = |n: NodeIx| table[n].map_or(Score::MINUS_INFINITY, |a| a.weight);
        let mut chosen = None;
        if let (Some(p), Some(b)) = (prefer, best)
            && table[p].is_some()
            && weight(p) >= weight(b)
            && self.available(p, weight(p), true)
        {
            chosen = Some(p);
        }
        if chosen.is_none()
            && let Some(b) = best
        {
            chosen = Some(b);
            let unique_clone_instance = self.rscs[r]
                .parent
                .is_some_and(|p| self.rscs[p].variant == Variant::Clone && self.rscs[p].unique);
            if !unique_clone_instance
                && weight(b) > Score::ZERO
                && self.nodes[b].can_run()
                && let Some(running) = current
                && self.available(running, self.nodes[running].base_weight, true)
            {
                // Equal scores: stay where it runs.
                for &n in &nodes[1..] {
                    if weight(n) != weight(b) {
                        break;
                    }
                    if n == running {
                        chosen = Some(n);
                    }
                }
            }
        }
        self.finalize_assignment(r, chosen, false)
    }

    /// `pcmk__finalize_assignment`.
    pub fn finalize_assignment(&mut self, r: RscIx, chosen: Option<NodeIx>, force: bool) -> bool {
        let mut chosen = chosen;
        if !force && let Some(n) = chosen {
            let w = self.rscs[r].allowed[n].map_or(Score::MINUS_INFINITY, |a| a.weight);
            if w < Score::ZERO || !self.available(n, w, true) {
                self.rscs[r].next_role = Some(Role::Stopped);
                chosen = None;
            }
        }
        self.unassign(r);
        self.rscs[r].provisional = false;
        let Some(n) = chosen else {
            self.rscs[r].next_role = Some(Role::Stopped);
            // Once actions exist (an interleaved order can unassign an
            // instance), they follow: stops are required, starts and
            // monitors cannot run.
            for a in self.acts.by_rsc.get(&r).cloned().unwrap_or_default() {
                let act = &self.acts.list[a];
                match act.task {
                    super::actions::Task::Stop => self.acts.clear_optional(a),
                    super::actions::Task::Start => self.acts.clear_runnable(a),
                    super::actions::Task::Monitor if act.interval_ms > 0 => {
                        self.acts.clear_runnable(a)
                    }
                    _ => {}
                }
            }
            return false;
        };
        self.rscs[r].allocated_to = Some(n);
        self.rscs[r].allocated_weight =
            self.rscs[r].allowed[n].map_or(self.nodes[n].base_weight, |a| a.weight);
        self.nodes[n].num_resources += 1;
        if let Some(a) = self.rscs[r].allowed[n].as_mut() {
            a.count += 1;
        }
        true
    }

    /// `pcmk__unassign_resource`.
    pub fn unassign(&mut self, r: RscIx) {
        if let Some(old) = self.rscs[r].allocated_to.take() {
            self.rscs[r].provisional = true;
            self.nodes[old].num_resources = self.nodes[old].num_resources.saturating_sub(1);
        }
    }

    /// `pcmk__assign_resource`: forces a resource and its children.
    pub fn force_assign(&mut self, r: RscIx, node: Option<NodeIx>) {
        if self.rscs[r].children.is_empty() {
            self.finalize_assignment(r, node, true);
        } else {
            for c in self.rscs[r].children.clone() {
                self.force_assign(c, node);
            }
        }
    }

    // ------------------------------------------------------------ colocation

    /// `pcmk__colocation_affects`.
    pub fn colocation_affects(
        &self,
        dependent: RscIx,
        primary: RscIx,
        c: ColocIx,
        preview: bool,
    ) -> Affects {
        let co = &self.colocs[c];
        let (d, p) = (&self.rscs[dependent], &self.rscs[primary]);
        if !preview && p.provisional {
            return Affects::Nothing;
        }
        if co.dependent_role >= Some(Role::Unpromoted)
            && d.parent.is_some_and(|par| self.rscs[par].promotable)
            && !d.provisional
        {
            return Affects::Role;
        }
        if !preview && !d.provisional {
            return Affects::Nothing;
        }
        let positive = co.score > Score::ZERO;
        let negative = co.score < Score::ZERO;
        if positive && co.dependent_role.is_some() && co.dependent_role != d.next_role {
            return Affects::Nothing;
        }
        if positive && co.primary_role.is_some() && co.primary_role != p.next_role {
            return Affects::Nothing;
        }
        if negative && co.dependent_role.is_some() && co.dependent_role == d.next_role {
            return Affects::Nothing;
        }
        if negative && co.primary_role.is_some() && co.primary_role == p.next_role {
            return Affects::Nothing;
        }
        Affects::Location
    }

    /// The value of a node attribute; `#uname`/`#id` (and none) name the node.
    fn node_attr<'s>(&'s self, n: NodeIx, attr: Option<&str>) -> Option<&'s str> {
        match attr {
            None | Some("#uname") | Some("#id") => Some(self.nodes[n].name.as_str()),
            Some(a) => self.nodes[n].attributes.get(a).map(String::as_str),
        }
    }

    fn attr_eq(a: Option<&str>, b: Option<&str>) -> bool {
        match (a, b) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            (None, None) => true,
            _ => false,
        }
    }

    /// `pcmk__apply_coloc_to_weights`.
    fn apply_coloc_to_weights(&mut self, dependent: RscIx, primary: RscIx, c: ColocIx) {
        let (score, attr) = {
            let co = &self.colocs[c];
            (co.score, co.node_attribute.clone())
        };
        let prim_node = self.rscs[primary].allocated_to;
        let value: Option<String> = match prim_node {
            Some(n) => self.node_attr(n, attr.as_deref()).map(str::to_string),
            None if score < Score::ZERO => return,
            None => None,
        };
        let mut work = self.rscs[dependent].allowed.clone();
        for (n, slot) in work.iter_mut().enumerate() {
            let Some(a) = slot.as_mut() else { continue };
            if prim_node.is_none() {
                a.weight = -score + a.weight;
            } else if Self::attr_eq(self.node_attr(n, attr.as_deref()), value.as_deref()) {
                if score < Score::INFINITY {
                    a.weight = score + a.weight;
                }
            } else if score >= Score::INFINITY {
                a.weight = -score + a.weight;
            }
        }
        if score.is_infinite() || self.any_available(&work) {
            self.rscs[dependent].allowed = work;
        }
    }

    /// `pcmk__apply_coloc_to_priority`: colocations with roles adjust the
    /// promotion priority of a promotable instance.
    fn apply_coloc_to_priority(&mut self, dependent: RscIx, primary: RscIx, c: ColocIx) {
        let co = self.colocs[c].clone();
        let (Some(dn), Some(pn)) = (
            self.rscs[dependent].allocated_to,
            self.rscs[primary].allocated_to,
        ) else {
            return;
        };
        let attr = co.node_attribute.as_deref();
        if !Self::attr_eq(self.node_attr(dn, attr), self.node_attr(pn, attr)) {
            if co.score == Score::INFINITY && co.dependent_role == Some(Role::Promoted) {
                self.rscs[dependent].priority = Score::MINUS_INFINITY;
            }
            return;
        }
        if co.primary_role.is_some() && co.primary_role != self.rscs[primary].next_role {
            return;
        }
        let s = if co.dependent_role == Some(Role::Unpromoted) {
            -co.score
        } else {
            co.score
        };
        self.rscs[dependent].priority = s + self.rscs[dependent].priority;
    }

    /// `best_node_score_matching_attr`.
    fn best_node_score_matching_attr(
        &self,
        r: RscIx,
        attr: Option<&str>,
        value: Option<&str>,
    ) -> Score {
        let mut best = Score::MINUS_INFINITY;
        for (n, a) in self.rscs[r].allowed.iter().enumerate() {
            let Some(a) = a else { continue };
            if a.weight > best
                && self.nodes[n].can_run()
                && Self::attr_eq(value, self.node_attr(n, attr))
            {
                best = a.weight;
            }
        }
        best
    }

    /// `add_node_scores_matching_attr`.
    fn add_node_scores_matching_attr(
        &self,
        work: &mut MergeTable,
        r: RscIx,
        attr: Option<&str>,
        factor: f32,
        only_positive: bool,
    ) {
        for (n, slot) in work.iter_mut().enumerate() {
            let Some(m) = *slot else { continue };
            let value = self.node_attr(n, attr);
            let score = self.best_node_score_matching_attr(r, attr, value);
            if factor < 0.0 && score < Score::ZERO {
                continue;
            }
            if m.unusable {
                continue;
            }
            let weight_f = factor * score.value() as f32;
            let mut weight = round_weight(weight_f);
            if weight == 0 && score != Score::ZERO {
                if factor > 0.0 {
                    weight = 1;
                } else if factor < 0.0 {
                    weight = -1;
                }
            }
            let new_score = Score::new(weight) + m.allowed.weight;
            let entry = slot.as_mut().expect("present");
            if only_positive && new_score < Score::ZERO && m.allowed.weight > Score::ZERO {
                entry.unusable = true;
                continue;
            }
            if only_positive && new_score < Score::ZERO && m.allowed.weight == Score::ZERO {
                continue;
            }
            entry.allowed.weight = new_score;
        }
    }

    fn any_available_merge(&self, t: &MergeTable) -> bool {
        t.iter().enumerate().any(|(n, m)| {
            m.is_some_and(|m| !m.unusable && self.available(n, m.allowed.weight, true))
        })
    }

    /// `pcmk__add_colocated_node_scores`: merges the (attenuated) scores of
    /// `r` and of what is colocated with it into `nodes`.
    pub fn add_colocated_node_scores(
        &self,
        r: RscIx,
        nodes: &mut Option<MergeTable>,
        attr: Option<&str>,
        factor: f32,
        flags: u8,
    ) {
        if self.rscs[r].merging.get() || !self.enter_depth() {
            return;
        }
        self.rscs[r].merging.set(true);
        let is_group = self.rscs[r].variant == Variant::Group;
        let work = if is_group {
            let children = &self.rscs[r].children;
            if children.is_empty() {
                None
            } else {
                let member = if nodes.is_none() {
                    *children.last().expect("nonempty")
                } else {
                    children[0]
                };
                let mut w = nodes.clone();
                self.add_colocated_node_scores(member, &mut w, attr, factor, flags);
                w
            }
        } else if let Some(existing) = nodes.as_ref() {
            let mut w = existing.clone();
            self.add_node_scores_matching_attr(
                &mut w,
                r,
                attr,
                factor,
                flags & SELECT_NONNEGATIVE != 0,
            );
            Some(w)
        } else {
            Some(to_merge(&self.rscs[r].allowed))
        };
        let Some(mut work) = work else {
            self.rscs[r].merging.set(false);
            self.depth.set(self.depth.get() - 1);
            return;
        };
        if self.any_available_merge(&work) {
            let multiplier: f32 = if factor < 0.0 { -1.0 } else { 1.0 };
            let list: Vec<ColocIx> = if flags & SELECT_THIS_WITH != 0 {
                self.rscs[r].this_with.clone()
            } else if is_group {
                let last = *self.rscs[r].children.last().expect("nonempty");
                self.rscs[last].with_this.clone()
            } else {
                self.rscs[r].with_this.clone()
            };
            for c in list {
                let other = if flags & SELECT_THIS_WITH != 0 {
                    self.colocs[c].primary
                } else if !self.has_influence(c, None) {
                    continue;
                } else {
                    self.colocs[c].dependent
                };
                let f = multiplier * self.colocs[c].score.value() as f32 / INFINITY as f32;
                let a = self.colocs[c].node_attribute.clone();
                let mut wt = Some(work);
                self.add_colocated_node_scores(
                    other,
                    &mut wt,
                    a.as_deref(),
                    f,
                    flags | SELECT_ACTIVE,
                );
                work = wt.expect("stays some");
            }
        } else if flags & SELECT_ACTIVE != 0 {
            self.rscs[r].merging.set(false);
            self.depth.set(self.depth.get() - 1);
            return;
        }
        if flags & SELECT_NONNEGATIVE != 0 {
            for m in work.iter_mut().flatten() {
                if m.unusable {
                    m.unusable = false;
                    m.allowed.weight = Score::new(1);
                }
            }
        }
        *nodes = Some(work);
        self.rscs[r].merging.set(false);
        self.depth.set(self.depth.get() - 1);
    }

    // ------------------------------------------------------------ groups

    /// `pcmk__group_assign`.
    fn group_assign(&mut self, r: RscIx, prefer: Option<NodeIx>) -> Option<NodeIx> {
        if !self.rscs[r].provisional || self.rscs[r].allocating {
            return None;
        }
        let children = self.rscs[r].children.clone();
        if children.is_empty() {
            self.rscs[r].provisional = false;
            return None;
        }
        self.rscs[r].allocating = true;
        let first = children[0];
        self.rscs[r].role = self.rscs[first].role;
        self.expand_group_colocations(r);
        self.show_table("pcmk__group_assign", r, true);
        let mut first_node = None;
        for m in children {
            let node = self.assign(m, prefer);
            if first_node.is_none() {
                first_node = node;
            }
        }
        self.rscs[r].next_role = self.rscs[first].next_role;
        self.rscs[r].allocating = false;
        self.rscs[r].provisional = false;
        if self.rscs[r].group_colocated {
            first_node
        } else {
            None
        }
    }

    /// `expand_group_colocations`: "group with X" becomes "first member with
    /// X", and "X with group" becomes "X with last member".
    fn expand_group_colocations(&mut self, r: RscIx) {
        let children = self.rscs[r].children.clone();
        let Some(&first) = children.first() else {
            return;
        };
        let this_with = std::mem::take(&mut self.rscs[r].this_with);
        for &c in &this_with {
            self.add_this_with(first, c);
        }
        let mut any_unmanaged = !self.rscs[first].managed;
        for &m in &children[1..] {
            if any_unmanaged {
                for &c in &this_with {
                    if self.colocs[c].score == Score::INFINITY {
                        self.add_this_with(m, c);
                    }
                }
            } else if !self.rscs[m].managed {
                any_unmanaged = true;
            }
        }
        let last = *children.last().expect("nonempty");
        let with_this = std::mem::take(&mut self.rscs[r].with_this);
        for c in with_this {
            self.add_with_this(last, c);
        }
    }

    /// `colocate_group_with`: the group is the dependent.
    fn colocate_group_with(&mut self, dependent: RscIx, primary: RscIx, c: ColocIx) {
        let children = self.rscs[dependent].children.clone();
        if children.is_empty() {
            return;
        }
        if self.rscs[dependent].group_colocated {
            self.apply_coloc_score(children[0], primary, c, true);
            return;
        }
        if self.colocs[c].score >= Score::INFINITY {
            self.warnings.push(format!(
                "{}: cannot colocate a non-colocated group mandatorily",
                self.colocs[c].id
            ));
            return;
        }
        for m in children {
            self.apply_coloc_score(m, primary, c, true);
        }
    }

    /// `colocate_with_group`: the group is the primary.
    fn colocate_with_group(&mut self, dependent: RscIx, primary: RscIx, c: ColocIx) {
        if self.rscs[primary].provisional {
            return;
        }
        let children = self.rscs[primary].children.clone();
        if self.rscs[primary].group_colocated {
            let member = if self.colocs[c].score >= Score::INFINITY {
                children.last().copied()
            } else {
                children.first().copied()
            };
            if let Some(m) = member {
                self.apply_coloc_score(dependent, m, c, false);
            }
            return;
        }
        if self.colocs[c].score >= Score::INFINITY {
            return;
        }
        for m in children {
            self.apply_coloc_score(dependent, m, c, false);
        }
    }

    // ------------------------------------------------------------ locations of
    // composite resources

    /// The single node a resource is (or will be) on, if it is on exactly
    /// one (Pacemaker's `fns->location`).
    pub fn location(&self, r: RscIx, current: bool) -> Option<NodeIx> {
        let nodes = self.location_list(r, current);
        (nodes.len() == 1).then(|| nodes[0])
    }

    pub fn location_list(&self, r: RscIx, current: bool) -> Vec<NodeIx> {
        let mut out = Vec::new();
        self.collect_location(r, current, &mut out);
        out
    }

    fn collect_location(&self, r: RscIx, current: bool, out: &mut Vec<NodeIx>) {
        let rsc = &self.rscs[r];
        if !rsc.children.is_empty() {
            for &c in &rsc.children {
                self.collect_location(c, current, out);
            }
            return;
        }
        let nodes: Vec<NodeIx> = if current {
            rsc.running_on.clone()
        } else {
            rsc.allocated_to.into_iter().collect()
        };
        for n in nodes {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }

    /// The role a resource has (`current`) or will have: the highest of its
    /// members for groups and clones. `None` is Pacemaker's "Unknown".
    pub fn state(&self, r: RscIx, current: bool) -> Option<Role> {
        let rsc = &self.rscs[r];
        if rsc.children.is_empty() {
            return if current {
                Some(rsc.role)
            } else {
                rsc.next_role
            };
        }
        rsc.children
            .iter()
            .map(|&c| self.state(c, current))
            .max()
            .flatten()
    }

    fn blocked_recursive(&self, r: RscIx) -> bool {
        let rsc = &self.rscs[r];
        rsc.blocked || rsc.children.iter().any(|&c| self.blocked_recursive(c))
    }

    /// The allowed-node weight the resource had where it was placed.
    fn placed_weight(&self, r: RscIx) -> Score {
        let rsc = &self.rscs[r];
        if rsc.children.is_empty() {
            return rsc.allocated_weight;
        }
        rsc.children
            .iter()
            .find(|&&c| self.rscs[c].allocated_to.is_some())
            .map_or(Score::ZERO, |&c| self.placed_weight(c))
    }

    // ------------------------------------------------------------ clones

    /// `pcmk__clone_allocate`.
    fn clone_assign(&mut self, r: RscIx, prefer: Option<NodeIx>) -> Option<NodeIx> {
        if !self.rscs[r].provisional || self.rscs[r].allocating {
            return None;
        }
        if self.rscs[r].promotable {
            self.add_promotion_scores(r);
        }
        self.rscs[r].allocating = true;
        for c in self.rscs[r].this_with.clone() {
            let p = self.colocs[c].primary;
            self.assign(p, prefer);
        }
        for c in self.rscs[r].with_this.clone() {
            if self.has_influence(c, None) {
                let (d, f, a) = {
                    let co = &self.colocs[c];
                    (co.dependent, factor_of(co.score), co.node_attribute.clone())
                };
                let mut nodes = Some(to_merge(&self.rscs[r].allowed));
                self.add_colocated_node_scores(
                    d,
                    &mut nodes,
                    a.as_deref(),
                    f,
                    SELECT_ACTIVE | SELECT_NONNEGATIVE,
                );
                if let Some(n) = nodes {
                    self.rscs[r].allowed = from_merge(&n);
                }
            }
        }
        self.show_table("pcmk__clone_allocate", r, true);
        let table = self.rscs[r].allowed.clone();
        let nodes = self.sorted_nodes(&table, None);
        let children = self.rscs[r].children.clone();
        let sorted = glib_sort(&children, &mut |a, b| self.cmp_instance(a, b));
        self.rscs[r].children = sorted.clone();
        let info = self.rscs[r].clone.clone().expect("a clone");
        self.distribute_children(r, &sorted, &nodes, info.max, info.node_max);
        if self.rscs[r].promotable {
            self.set_instance_roles(r);
        }
        self.rscs[r].provisional = false;
        self.rscs[r].allocating = false;
        None
    }

    fn distribute_children(
        &mut self,
        clone: RscIx,
        children: &[RscIx],
        nodes: &[NodeIx],
        max: u32,
        per_host_max: u32,
    ) {
        let mut available_nodes = 0u32;
        for &n in nodes {
            if let Some(a) = self.rscs[clone].allowed[n].as_mut() {
                a.count = 0;
            }
            if self.nodes[n].can_run() {
                available_nodes += 1;
            }
        }
        let all_coloc = max < available_nodes;
        let loop_max = max.checked_div(available_nodes).unwrap_or(1).max(1);
        let mut allocated = 0u32;
        for &child in children {
            if allocated >= max {
                break;
            }
            let rsc = &self.rscs[child];
            if rsc.running_on.is_empty() || !rsc.provisional || rsc.failed {
                continue;
            }
            let Some(child_node) = self.current_node(child) else {
                continue;
            };
            let local = self.rscs[clone].allowed[child_node];
            if !self.available(child_node, self.nodes[child_node].base_weight, true) {
                continue;
            }
            if local.is_some_and(|l| l.count >= loop_max) {
                continue;
            }
            if self
                .allocate_instance(child, Some(child_node), all_coloc, per_host_max)
                .is_some()
            {
                allocated += 1;
            }
        }
        for &child in children {
            if !self.rscs[child].provisional {
                continue;
            }
            if allocated >= max {
                self.resource_location(child, None, Score::MINUS_INFINITY);
            } else if self
                .allocate_instance(child, None, all_coloc, per_host_max)
                .is_some()
            {
                allocated += 1;
            }
        }
    }

    /// `allocate_instance`.
    fn allocate_instance(
        &mut self,
        r: RscIx,
        prefer: Option<NodeIx>,
        all_coloc: bool,
        limit: u32,
    ) -> Option<NodeIx> {
        if !self.rscs[r].provisional {
            return self.location(r, false);
        }
        if self.rscs[r].allocating {
            return None;
        }
        let parent = self.rscs[r].parent.expect("an instance");
        self.append_parent_colocation(parent, r, all_coloc);
        if let Some(p) = prefer {
            let ok = self.rscs[r].allowed[p].is_some_and(|a| a.weight >= Score::ZERO);
            if !ok {
                return None;
            }
        }
        self.can_run_instance(r, limit);
        let backup = self.rscs[r].allowed.clone();
        let mut chosen = self.assign(r, prefer);
        if let (Some(c), Some(p)) = (chosen, prefer)
            && c != p
        {
            self.rscs[r].allowed = backup;
            self.unassign(r);
            chosen = None;
        }
        if let Some(c) = chosen
            && let Some(a) = self.rscs[parent].allowed[c].as_mut()
        {
            a.count += 1;
        }
        chosen
    }

    /// `append_parent_colocation`.
    fn append_parent_colocation(&mut self, parent: RscIx, child: RscIx, all: bool) {
        for c in self.rscs[parent].this_with.clone() {
            let s = self.colocs[c].score;
            if all || s < Score::ZERO || s == Score::INFINITY {
                self.add_this_with(child, c);
            }
        }
        for c in self.rscs[parent].with_this.clone() {
            if !self.has_influence(c, Some(child)) {
                continue;
            }
            if all || self.colocs[c].score < Score::ZERO {
                self.add_with_this(child, c);
            }
        }
    }

    /// `can_run_instance`: bans nodes an instance cannot use.
    fn can_run_instance(&mut self, r: RscIx, limit: u32) {
        let parent = self.rscs[r].parent.expect("an instance");
        for n in 0..self.node_count() {
            if self.rscs[r].allowed[n].is_none() {
                continue;
            }
            let mut bail = !self.nodes[n].can_run() || self.rscs[r].orphan;
            if !bail {
                match self.rscs[parent].allowed[n] {
                    None => bail = true,
                    Some(local) if local.weight < Score::ZERO => {
                        // The parent's weight is added, and then the node is
                        // banned anyway (Pacemaker falls through to its bail).
                        self.common_update_score(r, n, local.weight);
                        bail = true;
                    }
                    Some(local) if local.count < limit => {}
                    Some(_) => bail = true,
                }
            }
            if bail {
                self.common_update_score(r, n, Score::MINUS_INFINITY);
            }
        }
    }

    fn common_update_score(&mut self, r: RscIx, n: NodeIx, score: Score) {
        if let Some(a) = self.rscs[r].allowed[n].as_mut() {
            a.weight = a.weight + score;
        }
        for c in self.rscs[r].children.clone() {
            self.common_update_score(c, n, score);
        }
    }

    /// `pcmk__clone_apply_coloc_score`: the clone is the primary.
    fn clone_apply_coloc_score(&mut self, dependent: RscIx, primary: RscIx, c: ColocIx) {
        let co = self.colocs[c].clone();
        if self.rscs[primary].promotable {
            if self.rscs[primary].provisional {
                return;
            } else if co.primary_role.is_none() {
                // Not role-specific: handled as for any clone.
            } else if self.rscs[dependent].provisional {
                self.update_dependent_with_promotable(primary, dependent, c);
                return;
            } else if co.dependent_role == Some(Role::Promoted) {
                self.update_promotable_dependent_priority(primary, dependent, c);
                return;
            }
        }
        let constraint_dep = co.dependent;
        let mut interleave = false;
        if self.rscs[constraint_dep].variant == Variant::Clone
            && self.rscs[constraint_dep]
                .clone
                .as_ref()
                .is_some_and(|i| i.interleave)
        {
            let per_node = |w: &Self, x: RscIx| w.rscs[x].clone.as_ref().map_or(1, |i| i.node_max);
            if per_node(self, constraint_dep) == per_node(self, co.primary) {
                interleave = true;
            } else {
                self.warnings.push(format!(
                    "cannot interleave {} and {}: different instances per node",
                    self.rscs[constraint_dep].id, self.rscs[co.primary].id
                ));
            }
        }
        if self.rscs[primary].provisional {
            return;
        }
        if interleave {
            match self.find_compatible_child(dependent, primary, None) {
                Some(pi) => self.apply_coloc_score(dependent, pi, c, true),
                None if co.score >= Score::INFINITY => self.force_assign(dependent, None),
                None => {}
            }
            return;
        }
        if co.score >= Score::INFINITY {
            let mut affected: Vec<(NodeIx, Score)> = Vec::new();
            for child in self.rscs[primary].children.clone() {
                if let Some(n) = self.location(child, false)
                    && !self.blocked_recursive(child)
                {
                    affected.push((n, self.placed_weight(child)));
                }
            }
            self.node_list_exclude(dependent, &affected, false);
            return;
        }
        for child in self.rscs[primary].children.clone() {
            self.apply_coloc_score(dependent, child, c, false);
        }
    }

    /// `node_list_exclude`: bans every node not in `list`.
    fn node_list_exclude(&mut self, r: RscIx, list: &[(NodeIx, Score)], merge: bool) {
        for n in 0..self.node_count() {
            let Some(a) = self.rscs[r].allowed[n].as_mut() else {
                continue;
            };
            match list.iter().find(|(m, _)| *m == n) {
                None => a.weight = Score::MINUS_INFINITY,
                Some(&(_, w)) if merge => a.weight = a.weight + w,
                Some(_) => {}
            }
        }
        for &(n, _) in list {
            if self.rscs[r].allowed[n].is_none() {
                self.rscs[r].allowed[n] = Some(Allowed::new(Score::MINUS_INFINITY));
            }
        }
    }

    /// `find_compatible_child`: the instance of `clone` on the same node as
    /// `local` (for interleaving and role colocations).
    pub fn find_compatible_child(
        &self,
        local: RscIx,
        clone: RscIx,
        filter: Option<Role>,
    ) -> Option<RscIx> {
        self.find_compatible_child_at(local, clone, filter, false)
    }

    /// The same, on current locations (`current`) or planned ones.
    pub fn find_compatible_child_at(
        &self,
        local: RscIx,
        clone: RscIx,
        filter: Option<Role>,
        current: bool,
    ) -> Option<RscIx> {
        if let Some(n) = self.location(local, current) {
            return self.compatible_on(n, clone, filter, current);
        }
        let table = self.rscs[local].allowed.clone();
        for n in self.sorted_nodes(&table, None) {
            if let Some(p) = self.compatible_on(n, clone, filter, current) {
                return Some(p);
            }
        }
        None
    }

    fn compatible_on(
        &self,
        n: NodeIx,
        clone: RscIx,
        filter: Option<Role>,
        current: bool,
    ) -> Option<RscIx> {
        self.rscs[clone].children.iter().copied().find(|&child| {
            let next = self.state(child, current);
            if filter.is_some() && next != filter {
                return false;
            }
            !self.blocked_recursive(child) && self.location(child, current) == Some(n)
        })
    }

    /// `pcmk__cmp_instance`: the order clone instances are assigned in.
    pub fn cmp_instance(&self, a: RscIx, b: RscIx) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (na, nb) = (self.rscs[a].running_on.len(), self.rscs[b].running_on.len());
        let mut node1 = self.current_node(a);
        let mut node2 = self.current_node(b);
        if na > 0 && nb > 0 {
            if na < nb {
                return Ordering::Less;
            } else if na > nb {
                return Ordering::Greater;
            }
        }
        let can1 = self.node_is_allowed(a, &mut node1);
        let can2 = self.node_is_allowed(b, &mut node2);
        if can1 != can2 {
            return if can1 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (pa, pb) = (self.rscs[a].priority, self.rscs[b].priority);
        if pa != pb {
            return pb.cmp(&pa);
        }
        let (n1, n2) = match (node1, node2) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) => (x, y),
        };
        let (c1, c2) = (self.nodes[n1].can_run(), self.nodes[n2].can_run());
        if c1 != c2 {
            return if c1 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let top = |w: &Self, r: RscIx, n: NodeIx| {
            let p = w.rscs[r].parent.unwrap_or(r);
            w.rscs[p].allowed[n]
        };
        let (t1, t2) = (top(self, a, n1), top(self, b, n2));
        let (t1, t2) = match (t1, t2) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) => (x, y),
        };
        if t1.count != t2.count {
            return t1.count.cmp(&t2.count);
        }
        let (f1, f2) = (self.did_fail(a), self.did_fail(b));
        if f1 != f2 {
            return if f2 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let rc = self.cmp_instance_by_colocation(a, b, n1, n2);
        if rc != Ordering::Equal {
            return rc;
        }
        self.rscs[a].instance.cmp(&self.rscs[b].instance)
    }

    fn node_is_allowed(&self, r: RscIx, node: &mut Option<NodeIx>) -> bool {
        if let Some(n) = *node {
            let ok = self.rscs[r].allowed[n].is_some_and(|a| a.weight >= Score::ZERO);
            if !ok {
                *node = None;
                return false;
            }
        }
        true
    }

    fn did_fail(&self, r: RscIx) -> bool {
        let rsc = &self.rscs[r];
        rsc.failed || rsc.children.iter().any(|&c| self.did_fail(c))
    }

    /// `cmp_instance_by_colocation`: the instance whose current node the
    /// clone's colocations like better goes first.
    fn cmp_instance_by_colocation(
        &self,
        a: RscIx,
        b: RscIx,
        n1: NodeIx,
        n2: NodeIx,
    ) -> std::cmp::Ordering {
        let w1 = self.parent_colocated_weight(a, n1);
        let w2 = self.parent_colocated_weight(b, n2);
        w2.cmp(&w1)
    }

    fn parent_colocated_weight(&self, r: RscIx, n: NodeIx) -> Score {
        let mut table: MergeTable = vec![None; self.node_count()];
        table[n] = Some(Merge {
            allowed: Allowed::new(self.nodes[n].base_weight),
            unusable: false,
        });
        let mut nodes = Some(table);
        let parent = self.rscs[r].parent.expect("an instance");
        for c in self.rscs[parent].this_with.clone() {
            let co = &self.colocs[c];
            self.add_colocated_node_scores(
                co.primary,
                &mut nodes,
                co.node_attribute.as_deref(),
                factor_of(co.score),
                0,
            );
        }
        for c in self.rscs[parent].with_this.clone() {
            if !self.has_influence(c, Some(r)) {
                continue;
            }
            let co = &self.colocs[c];
            self.add_colocated_node_scores(
                co.dependent,
                &mut nodes,
                co.node_attribute.as_deref(),
                factor_of(co.score),
                SELECT_NONNEGATIVE,
            );
        }
        nodes
            .and_then(|t| t[n])
            .map_or(Score::MINUS_INFINITY, |m| m.allowed.weight)
    }
}
