//! Merging the states of the sides of a healed partition.
//!
//! A side is the set of nodes that were together in one ring before the
//! new ring formed (their transitional configuration) and therefore hold
//! the same state. The rules (docs/state.md, "Merge rules"):
//!
//! 1. **Per-node facts** of node X (standby, fail counts, operation
//!    results, as one unit): from the side that contains X, unless that side
//!    is *fresh* (X just started and its state comes from disk); otherwise
//!    from the side whose record of X was changed last (greatest
//!    [`Stamp`]: wall time, then origin node id).
//! 2. **Resource configuration**: the highest epoch wins. Equal epochs with
//!    different digests are a conflict: the side that contains the lowest
//!    node id of all sides (the DC of the merged ring) wins, and a note
//!    says which configuration was dropped.
//! 3. **Migrate preferences**: per resource, the entry with the greatest
//!    stamp, unmigrate tombstones included; lifetimes that ended by the
//!    merged clock are dropped.
//! 4. **Fencing history**: the union, sorted, the most recent
//!    [`FENCE_HISTORY_MAX`] kept.
//! 5. **Clock**: the highest.
//! 6. **Target roles**: per resource, the entry with the greatest stamp,
//!    forget tombstones included (as migrate preferences).
//!
//! The result depends on the set of sides only, not on their order, so
//! every node that merges the same snapshots gets the same state.

use super::*;
use crate::totem::wire::NodeSet;

/// One side's snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    pub members: NodeSet,
    /// The side is a node that has not been in a ring since it started.
    pub fresh: bool,
    pub state: &'a ClusterState,
}

/// The merged state and what the log should say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub state: ClusterState,
    /// Conflicts resolved by a rule that dropped something, one a line.
    pub notes: Vec<String>,
}

fn lowest(s: NodeSet) -> NodeId {
    s.iter().next().unwrap_or(NodeId::MAX)
}

/// Merges the sides' states by the rules above.
pub fn merge(sides: &[Side]) -> Merged {
    // Order independence: sides sorted by their lowest member (disjoint
    // sides have distinct lowest members; ties, a bug of the caller, are
    // broken by the encoding so the result is still deterministic).
    let mut sides: Vec<(Side, Vec<u8>)> = sides
        .iter()
        .map(|s| (*s, codec::encode_snapshot(s.state)))
        .collect();
    sides.sort_by(|a, b| {
        (lowest(a.0.members), a.0.fresh, &a.1).cmp(&(lowest(b.0.members), b.0.fresh, &b.1))
    });
    let sides: Vec<Side> = sides.into_iter().map(|(s, _)| s).collect();
    let mut notes = Vec::new();
    let mut out = ClusterState {
        clock: sides
            .iter()
            .map(|s| s.state.clock)
            .max()
            .unwrap_or_default(),
        ..ClusterState::default()
    };

    // 1. Per-node facts.
    let mut ids: BTreeSet<NodeId> = BTreeSet::new();
    for s in &sides {
        ids.extend(s.state.nodes.keys().copied());
    }
    for id in ids {
        let home = sides.iter().find(|s| !s.fresh && s.members.contains(id));
        let facts = match home {
            Some(s) => s.state.nodes.get(&id),
            None => sides.iter().filter_map(|s| s.state.nodes.get(&id)).fold(
                None,
                |best: Option<&NodeFacts>, f| match best {
                    Some(b) if b.touched >= f.touched => Some(b),
                    _ => Some(f),
                },
            ),
        };
        if let Some(f) = facts {
            out.nodes.insert(id, f.clone());
        }
    }

    // 2. Configuration by epoch; equal epochs, different texts: the side
    // with the lowest node id (sides are sorted so) wins.
    let top = sides
        .iter()
        .filter_map(|s| s.state.config.as_ref())
        .map(|c| c.epoch)
        .max();
    if let Some(top) = top {
        let candidates: Vec<(&Side, &ConfigEpoch)> = sides
            .iter()
            .filter_map(|s| s.state.config.as_ref().map(|c| (s, c)))
            .filter(|(_, c)| c.epoch == top)
            .collect();
        let (winner_side, winner) = candidates[0];
        for (s, c) in &candidates[1..] {
            if c.digest != winner.digest {
                notes.push(format!(
                    "configuration conflict at epoch {top}: both sides changed the \
                     configuration during the partition; kept the one of the side with node {} \
                     (digest {}), dropped the one of the side with node {} (digest {}); \
                     check `hactl config show` and apply again what is missing",
                    lowest(winner_side.members),
                    &hex::encode(winner.digest)[..12],
                    lowest(s.members),
                    &hex::encode(c.digest)[..12],
                ));
            }
        }
        out.config = Some(winner.clone());
    }

    // 3. Migrate entries: the greatest stamp per resource.
    for s in &sides {
        for (rsc, e) in &s.state.migrates {
            match out.migrates.get(rsc) {
                Some(have) if have.stamp >= e.stamp => {}
                _ => {
                    out.migrates.insert(rsc.clone(), e.clone());
                }
            }
        }
    }

    // 6. Target roles: the greatest stamp per resource.
    for s in &sides {
        for (rsc, e) in &s.state.target_roles {
            match out.target_roles.get(rsc) {
                Some(have) if have.stamp >= e.stamp => {}
                _ => {
                    out.target_roles.insert(rsc.clone(), e.clone());
                }
            }
        }
    }

    // 4. Fencing history: the union.
    for s in &sides {
        out.fencing.extend(s.state.fencing.iter().cloned());
    }
    out.normalize_fencing();

    out.expire(out.clock);
    out.check_invariants();
    Merged { state: out, notes }
}
