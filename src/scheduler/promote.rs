//! Promotable clones: promotion scores and the choice of which placed
//! instances are promoted (Pacemaker's `pcmk_sched_promotable.c`).

use crate::config::{Role, Score};

use super::assign::{SELECT_ACTIVE, SELECT_NONNEGATIVE, factor_of, glib_sort};
use super::work::{Allowed, ColocIx, NodeIx, RscIx, Work, clone_strip};

/// The node attribute prefix of promotion scores (`crm_attribute --promotion`).
pub(crate) const PROMOTION_ATTR_PREFIX: &str = "master-";

impl Work<'_> {
    /// `pcmk__add_promotion_scores`: promotion scores also count as
    /// placement preferences.
    pub fn add_promotion_scores(&mut self, clone: RscIx) {
        {
            let info = self.rscs[clone].clone.as_mut().expect("a clone");
            if info.promotion_added {
                return;
            }
            info.promotion_added = true;
        }
        for child in self.rscs[clone].children.clone() {
            for n in 0..self.node_count() {
                if self.rscs[child].allowed[n].is_none() || !self.nodes[n].can_run() {
                    continue;
                }
                let (score, _) = self.promotion_score(child, n);
                if score > Score::ZERO
                    && let Some(a) = self.rscs[child].allowed[n].as_mut()
                {
                    a.weight = a.weight + score;
                }
                if score > self.rscs[child].priority {
                    self.rscs[child].priority = score;
                }
            }
        }
    }

    /// The promotion score of an instance on a node, and whether it is the
    /// default (no attribute found).
    fn promotion_score(&self, r: RscIx, n: NodeIx) -> (Score, bool) {
        let rsc = &self.rscs[r];
        if !rsc.children.is_empty() {
            // A cloned group: the sum over its members (plain addition).
            let mut sum = 0i64;
            let mut is_default = true;
            for &c in &rsc.children {
                let (s, d) = self.promotion_score(c, n);
                if !d {
                    is_default = false;
                }
                sum += s.value();
            }
            return (Score::new(sum), is_default);
        }
        if !self.promotion_score_applies(r, n) {
            return (Score::ZERO, true);
        }
        let name = rsc.history_name.clone().unwrap_or_else(|| rsc.id.clone());
        let attrs = &self.nodes[n].attributes;
        let mut value = attrs.get(&format!("{PROMOTION_ATTR_PREFIX}{name}"));
        if value.is_none() && !rsc.unique {
            let base = clone_strip(&rsc.id);
            if base != rsc.id {
                value = attrs.get(&format!("{PROMOTION_ATTR_PREFIX}{base}"));
            }
        }
        match value {
            None => (Score::ZERO, true),
            Some(v) => (Score::parse(v).unwrap_or(Score::ZERO), false),
        }
    }

    fn promotion_score_applies(&self, r: RscIx, n: NodeIx) -> bool {
        let rsc = &self.rscs[r];
        let id = clone_strip(&rsc.id);
        let parent = self.uber_parent(r);
        let allowed = || rsc.allowed[n].is_some_and(|a| a.weight >= Score::ZERO);
        if !rsc.unique {
            let active = self.find_active_anon_instance(parent, id, n);
            if active == Some(r) {
                return allowed();
            }
            if active.is_none() && self.anonymous_known_on(parent, id, n) {
                return allowed();
            }
        }
        if rsc.running_on.is_empty() && !rsc.known_on.iter().any(|&k| k) {
            return allowed();
        }
        if rsc.known_on[n] || rsc.running_on.contains(&n) {
            return allowed();
        }
        false
    }

    /// The member named `id` of the instance active on node `n`.
    fn find_active_anon_instance(&self, clone: RscIx, id: &str, n: NodeIx) -> Option<RscIx> {
        for &child in &self.rscs[clone].children {
            if let Some(m) = self.find_member(child, id)
                && self.rscs[m].running_on.contains(&n)
            {
                return Some(m);
            }
        }
        None
    }

    fn anonymous_known_on(&self, clone: RscIx, id: &str, n: NodeIx) -> bool {
        self.rscs[clone]
            .children
            .iter()
            .filter_map(|&c| self.find_member(c, id))
            .any(|m| self.rscs[m].known_on[n])
    }

    fn find_member(&self, r: RscIx, id: &str) -> Option<RscIx> {
        let rsc = &self.rscs[r];
        if rsc.children.is_empty() {
            return (clone_strip(&rsc.id) == id).then_some(r);
        }
        rsc.children.iter().find_map(|&c| self.find_member(c, id))
    }

    /// `pcmk__set_instance_roles`: chooses the instances to promote.
    pub fn set_instance_roles(&mut self, clone: RscIx) {
        for a in self.rscs[clone].allowed.iter_mut().flatten() {
            a.count = 0;
        }
        for child in self.rscs[clone].children.clone() {
            self.set_instance_priority(child, clone);
        }
        self.sort_promotable_instances(clone);
        let mut promoted = 0u32;
        for child in self.rscs[clone].children.clone() {
            self.set_instance_role(child, clone, &mut promoted);
        }
    }

    fn set_current_role_unpromoted(&mut self, r: RscIx) {
        if self.rscs[r].role == Role::Started {
            self.rscs[r].role = Role::Unpromoted;
        }
        for c in self.rscs[r].children.clone() {
            self.set_current_role_unpromoted(c);
        }
    }

    fn set_instance_priority(&mut self, instance: RscIx, clone: RscIx) {
        if self.state(instance, true) == Some(Role::Started) {
            self.set_current_role_unpromoted(instance);
        }
        let Some(chosen) = self.location(instance, false) else {
            return;
        };
        let next_role = self.state(instance, false);
        match next_role {
            None | Some(Role::Started) => {
                let (score, is_default) = self.promotion_score(instance, chosen);
                // Without any promotion score or constraint nothing is
                // promoted: -1 keeps it out unless a location adds to it.
                self.rscs[instance].priority = if is_default { Score::new(-1) } else { score };
            }
            Some(Role::Unpromoted) | Some(Role::Stopped) => {
                self.rscs[instance].priority = Score::MINUS_INFINITY;
            }
            Some(Role::Promoted) => {}
        }
        for l in self.rscs[instance]
            .locations
            .iter()
            .chain(self.rscs[clone].locations.iter())
            .copied()
            .collect::<Vec<_>>()
        {
            let loc = &self.locs[l];
            if loc.role_filter == Some(Role::Promoted) && loc.node == chosen {
                let s = loc.score;
                self.rscs[instance].priority = self.rscs[instance].priority + s;
            }
        }
        for c in self.rscs[instance].this_with.clone() {
            let p = self.colocs[c].primary;
            self.apply_coloc_score(instance, p, c, true);
        }
        self.rscs[instance].sort_index = if next_role == Some(Role::Promoted) {
            Score::INFINITY
        } else {
            self.rscs[instance].priority
        };
    }

    fn sort_promotable_instances(&mut self, clone: RscIx) {
        {
            let info = self.rscs[clone].clone.as_mut().expect("a clone");
            if info.promotion_constrained {
                return;
            }
            info.promotion_constrained = true;
        }
        self.rscs[clone].merging.set(true);
        for child in self.rscs[clone].children.clone() {
            let si = self.rscs[child].sort_index;
            if si < Score::ZERO {
                continue;
            }
            let Some(chosen) = self.location(child, false) else {
                continue;
            };
            if let Some(a) = self.rscs[clone].allowed[chosen].as_mut() {
                a.weight = si + a.weight;
            }
        }
        for c in self.rscs[clone].this_with.clone() {
            self.apply_coloc_to_dependent(c, clone);
        }
        for c in self.rscs[clone].with_this.clone() {
            self.apply_coloc_to_primary(c, clone);
        }
        for child in self.rscs[clone].children.clone() {
            let chosen = self.location(child, false);
            let rsc = &self.rscs[child];
            if !rsc.managed && rsc.next_role == Some(Role::Promoted) {
                self.rscs[child].sort_index = Score::INFINITY;
            } else if let Some(n) = chosen
                && rsc.sort_index >= Score::ZERO
            {
                let w = self.rscs[clone].allowed[n].map_or(Score::ZERO, |a| a.weight);
                self.rscs[child].sort_index = w;
            }
        }
        let children = self.rscs[clone].children.clone();
        let sorted = glib_sort(&children, &mut |a, b| self.cmp_promotable_instance(a, b));
        self.rscs[clone].children = sorted;
        self.rscs[clone].merging.set(false);
    }

    fn apply_coloc_to_dependent(&mut self, c: ColocIx, clone: RscIx) {
        let co = self.colocs[c].clone();
        if co.dependent_role != Some(Role::Promoted) {
            return;
        }
        let flags = if co.score < Score::INFINITY {
            SELECT_ACTIVE
        } else {
            0
        };
        let mut nodes = Some(to_merge_table(&self.rscs[clone].allowed));
        self.add_colocated_node_scores(
            co.primary,
            &mut nodes,
            co.node_attribute.as_deref(),
            factor_of(co.score),
            flags,
        );
        if let Some(n) = nodes {
            self.rscs[clone].allowed = n.iter().map(|m| m.map(|m| m.allowed)).collect();
        }
    }

    fn apply_coloc_to_primary(&mut self, c: ColocIx, clone: RscIx) {
        let co = self.colocs[c].clone();
        if co.primary_role != Some(Role::Promoted) || !self.has_influence(c, None) {
            return;
        }
        let mut nodes = Some(to_merge_table(&self.rscs[clone].allowed));
        self.add_colocated_node_scores(
            co.dependent,
            &mut nodes,
            co.node_attribute.as_deref(),
            factor_of(co.score),
            SELECT_ACTIVE | SELECT_NONNEGATIVE,
        );
        if let Some(n) = nodes {
            self.rscs[clone].allowed = n.iter().map(|m| m.map(|m| m.allowed)).collect();
        }
    }

    fn cmp_promotable_instance(&self, a: RscIx, b: RscIx) -> std::cmp::Ordering {
        let (sa, sb) = (self.rscs[a].sort_index, self.rscs[b].sort_index);
        if sa != sb {
            return sb.cmp(&sa);
        }
        let (ra, rb) = (self.state(a, true), self.state(b, true));
        if ra != rb {
            return rb.cmp(&ra);
        }
        self.cmp_instance(a, b)
    }

    fn set_instance_role(&mut self, instance: RscIx, clone: RscIx, count: &mut u32) {
        if self.show_scores {
            let node = self
                .location(instance, false)
                .map_or("none".to_string(), |n| self.nodes[n].name.clone());
            self.score_lines.push(format!(
                "{} promotion score on {}: {}",
                self.rscs[instance].id, node, self.rscs[instance].sort_index
            ));
        }
        let promoted_max = self.rscs[clone]
            .clone
            .as_ref()
            .map_or(0, |i| i.promoted_max);
        let mut chosen = None;
        if self.rscs[instance].sort_index < Score::ZERO {
            // Not to be promoted.
        } else if *count < promoted_max || !self.rscs[clone].managed {
            chosen = self.node_to_be_promoted_on(instance);
        }
        let Some(node) = chosen else {
            self.set_next_role_unpromoted(instance);
            return;
        };
        if self.rscs[instance].role < Role::Promoted
            && !self.flags.have_quorum
            && self.flags.no_quorum_policy == crate::config::NoQuorumPolicy::Freeze
        {
            self.set_next_role_unpromoted(instance);
            return;
        }
        if let Some(a) = self.rscs[clone].allowed[node].as_mut() {
            a.count += 1;
        }
        self.set_next_role_promoted(instance);
        *count += 1;
    }

    fn set_next_role_unpromoted(&mut self, r: RscIx) {
        let assigned = !self.location_list(r, false).is_empty();
        self.rscs[r].next_role = Some(if assigned {
            Role::Unpromoted
        } else {
            Role::Stopped
        });
        for c in self.rscs[r].children.clone() {
            self.set_next_role_unpromoted(c);
        }
    }

    fn set_next_role_promoted(&mut self, r: RscIx) {
        if self.rscs[r].next_role.is_none() {
            self.rscs[r].next_role = Some(Role::Promoted);
        }
        for c in self.rscs[r].children.clone() {
            self.set_next_role_promoted(c);
        }
    }

    fn node_to_be_promoted_on(&self, r: RscIx) -> Option<NodeIx> {
        for &c in &self.rscs[r].children {
            self.node_to_be_promoted_on(c)?;
        }
        let node = self.location(r, false)?;
        let rsc = &self.rscs[r];
        if !rsc.managed {
            if self.state(r, true) != Some(Role::Promoted) {
                return None;
            }
        } else if rsc.priority < Score::ZERO || !self.nodes[node].can_run() {
            return None;
        }
        let clone = self.uber_parent(r);
        let local = self.rscs[clone].allowed[node]?;
        let node_max = self.rscs[clone]
            .clone
            .as_ref()
            .map_or(1, |i| i.promoted_node_max);
        if local.count >= node_max && rsc.managed {
            return None;
        }
        Some(node)
    }

    /// `pcmk__update_dependent_with_promotable`: a dependent placed with a
    /// role of a promotable clone.
    pub fn update_dependent_with_promotable(
        &mut self,
        primary: RscIx,
        dependent: RscIx,
        c: ColocIx,
    ) {
        let co = self.colocs[c].clone();
        let mut affected: Vec<(NodeIx, Score)> = Vec::new();
        for inst in self.rscs[primary].children.clone() {
            let Some(node) = self.location(inst, false) else {
                continue;
            };
            if self.state(inst, false) == co.primary_role {
                if co.score < Score::INFINITY {
                    self.add_where_attr_matches(dependent, node, &co);
                }
                affected.push((node, self.rscs[inst].allocated_weight));
            }
        }
        if co.score >= Score::INFINITY
            && (co.dependent_role != Some(Role::Promoted)
                || co.primary_role != Some(Role::Promoted))
        {
            self.exclude_others(dependent, &affected);
        }
    }

    fn add_where_attr_matches(
        &mut self,
        dependent: RscIx,
        primary_node: NodeIx,
        co: &super::work::Coloc,
    ) {
        let attr = co.node_attribute.as_deref();
        let value = self.attr_of(primary_node, attr);
        for n in 0..self.node_count() {
            if self.rscs[dependent].allowed[n].is_none() {
                continue;
            }
            let same = match (&value, self.attr_of(n, attr)) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b),
                (None, None) => true,
                _ => false,
            };
            if same && let Some(a) = self.rscs[dependent].allowed[n].as_mut() {
                a.weight = a.weight + co.score;
            }
        }
    }

    fn attr_of(&self, n: NodeIx, attr: Option<&str>) -> Option<String> {
        match attr {
            None | Some("#uname") | Some("#id") => Some(self.nodes[n].name.clone()),
            Some(a) => self.nodes[n].attributes.get(a).cloned(),
        }
    }

    /// `node_list_exclude` with merged scores.
    fn exclude_others(&mut self, r: RscIx, list: &[(NodeIx, Score)]) {
        for n in 0..self.node_count() {
            let Some(a) = self.rscs[r].allowed[n].as_mut() else {
                continue;
            };
            match list.iter().find(|(m, _)| *m == n) {
                None => a.weight = Score::MINUS_INFINITY,
                Some(&(_, w)) => a.weight = a.weight + w,
            }
        }
        for &(n, _) in list {
            if self.rscs[r].allowed[n].is_none() {
                self.rscs[r].allowed[n] = Some(Allowed::new(Score::MINUS_INFINITY));
            }
        }
    }

    /// `pcmk__update_promotable_dependent_priority`.
    pub fn update_promotable_dependent_priority(
        &mut self,
        primary: RscIx,
        dependent: RscIx,
        c: ColocIx,
    ) {
        let co = self.colocs[c].clone();
        match self.find_compatible_child(dependent, primary, co.primary_role) {
            Some(_) => {
                self.rscs[dependent].priority = self.rscs[dependent].priority + co.score;
            }
            None if co.score >= Score::INFINITY => {
                self.rscs[dependent].priority = Score::MINUS_INFINITY;
            }
            None => {}
        }
    }
}

fn to_merge_table(t: &super::work::NodeTable) -> super::assign::MergeTable {
    t.iter()
        .map(|a| {
            a.map(|allowed| super::assign::Merge {
                allowed,
                unusable: false,
            })
        })
        .collect()
}
