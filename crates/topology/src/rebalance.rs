//! `cluster rebalance`: which slots each group should receive so that every group owns a
//! share of the 16384 slots proportional to its weight (pure; the helper fills this in).
//!
//! Each group's quota is `16384 * weight / total weight`, rounded down; the slots left over
//! go one each to the groups with the largest rounding loss (ties: a group that owns more
//! than its rounded-down quota first, so it keeps a slot instead of moving one; then the
//! lower id). Groups above their quota give away their *highest* slots, which keeps their
//! own ranges whole; the freed slots, in slot order, are dealt out to the groups below their
//! quota in id order, so each receives a few contiguous ranges. No slot moves twice and only
//! the surplus moves.

use std::collections::BTreeMap;

use crate::error::TopologyError;
use crate::group::GroupId;
use crate::migration::{MigrationId, MigrationState};
use crate::slot::{Slot, SLOT_COUNT};
use crate::slot_map::SlotMap;
use crate::topology::Topology;

/// Why a rebalance cannot be planned or started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RebalanceError {
    #[error("no group {0} (a weight names a group that is not in the cluster)")]
    UnknownGroup(GroupId),
    #[error("every group has weight 0: at least one group must keep slots")]
    AllZero,
    #[error("the cluster has no groups")]
    NoGroups,
    #[error("{count} slots have no owner (the first is slot {first}); assign them before rebalancing")]
    Unassigned { first: Slot, count: usize },
    #[error("slot {slot} belongs to group {group}, which is not in the cluster")]
    OrphanSlot { slot: Slot, group: GroupId },
    #[error("migration {0} is still in progress; rebalance once it has finished (or cancel it)")]
    Busy(MigrationId),
    #[error("nothing to do: the slots are already spread by weight")]
    Balanced,
}

/// A rebalance plan: per receiving group (in id order), the inclusive slot ranges it gets.
pub type RebalancePlan = Vec<(GroupId, Vec<(Slot, Slot)>)>;

/// How many slots each group of `groups` should own, by `weights` (groups not named weigh 1).
pub fn quotas(
    slots: &SlotMap,
    groups: &[GroupId],
    weights: &BTreeMap<GroupId, u32>,
) -> Result<BTreeMap<GroupId, usize>, RebalanceError> {
    if groups.is_empty() {
        return Err(RebalanceError::NoGroups);
    }
    if let Some(g) = weights.keys().find(|g| !groups.contains(g)) {
        return Err(RebalanceError::UnknownGroup(*g));
    }
    let weight = |g: GroupId| u64::from(weights.get(&g).copied().unwrap_or(1));
    let total_weight: u64 = groups.iter().map(|g| weight(*g)).sum();
    if total_weight == 0 {
        return Err(RebalanceError::AllZero);
    }
    let total = u64::from(SLOT_COUNT);
    let mut quota: BTreeMap<GroupId, usize> =
        groups.iter().map(|g| (*g, (total * weight(*g) / total_weight) as usize)).collect();
    let left = SLOT_COUNT as usize - quota.values().sum::<usize>();
    let mut order: Vec<GroupId> = groups.to_vec();
    order.sort_by_key(|g| {
        let loss = total * weight(*g) % total_weight;
        let keeps = slots.count(*g) > quota[g];
        (std::cmp::Reverse(loss), std::cmp::Reverse(keeps), *g)
    });
    // At most `left` groups have a rounding loss, and weight-0 groups have none.
    for g in order.into_iter().take(left) {
        if let Some(q) = quota.get_mut(&g) {
            *q += 1;
        }
    }
    Ok(quota)
}

/// The slots to move so that every group owns its quota (see the module docs): per
/// receiving group, its inclusive ranges. Empty when the slots are spread by weight already.
pub fn plan_rebalance(
    slots: &SlotMap,
    groups: &[GroupId],
    weights: &BTreeMap<GroupId, u32>,
) -> Result<RebalancePlan, RebalanceError> {
    let quota = quotas(slots, groups, weights)?;
    let unassigned = slots.unassigned();
    if unassigned > 0 {
        let first = (0..SLOT_COUNT).find(|s| slots.owner(*s).is_none()).unwrap_or(0);
        return Err(RebalanceError::Unassigned { first, count: unassigned });
    }
    if let Some(r) = slots.ranges().into_iter().find(|r| !quota.contains_key(&r.group)) {
        return Err(RebalanceError::OrphanSlot { slot: r.from, group: r.group });
    }
    // Each group above its quota gives away its highest slots.
    let mut freed: Vec<Slot> = Vec::new();
    for (&g, &want) in &quota {
        let surplus = slots.count(g).saturating_sub(want);
        freed.extend((0..SLOT_COUNT).rev().filter(|s| slots.owner(*s) == Some(g)).take(surplus));
    }
    freed.sort_unstable();
    // Dealt out in slot order to the groups below their quota, lowest id first.
    let mut plan: RebalancePlan = Vec::new();
    let mut next = freed.into_iter();
    for (&g, &want) in &quota {
        let deficit = want.saturating_sub(slots.count(g));
        if deficit == 0 {
            continue;
        }
        let mut ranges: Vec<(Slot, Slot)> = Vec::new();
        for slot in next.by_ref().take(deficit) {
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == slot => last.1 = slot,
                _ => ranges.push((slot, slot)),
            }
        }
        plan.push((g, ranges));
    }
    Ok(plan)
}

impl Topology {
    /// Starts the migrations that spread the slots over the groups by `weights` (see
    /// [`plan_rebalance`]): one per receiving group, all introduced by one new epoch. Refused
    /// while any migration is in progress, and when there is nothing to move.
    pub fn rebalance(
        &self,
        weights: &BTreeMap<GroupId, u32>,
        rate: Option<u32>,
    ) -> Result<(Topology, Vec<MigrationId>), TopologyError> {
        if let Some(m) = self.migrations.iter().find(|m| m.state.is_active()) {
            return Err(RebalanceError::Busy(m.id).into());
        }
        let groups: Vec<GroupId> = self.groups.iter().map(|g| g.id).collect();
        let plan = plan_rebalance(&self.slots, &groups, weights)?;
        if plan.is_empty() {
            return Err(RebalanceError::Balanced.into());
        }
        let mut next = self.clone();
        let mut ids = Vec::with_capacity(plan.len());
        for (target, ranges) in &plan {
            let (t, id) = next.start_migration(ranges, *target, rate)?;
            next = t;
            ids.push(id);
        }
        // One change, one epoch: every migration of the rebalance starts with it.
        next.epoch = self.epoch + 1;
        for m in next.migrations.iter_mut().filter(|m| ids.contains(&m.id)) {
            debug_assert_eq!(m.state, MigrationState::Preparing);
            m.since_epoch = next.epoch;
        }
        Ok((next, ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Server;
    use crate::migration::MigrationAction;
    use crate::settings::ClusterSettings;
    use crate::topology::GroupSpec;

    fn spec(addr: &str) -> GroupSpec {
        GroupSpec { servers: vec![Server::new(addr)] }
    }

    /// A cluster of `n` groups with the slots spread over them.
    fn cluster(n: u32) -> Topology {
        let specs: Vec<GroupSpec> = (0..n).map(|i| spec(&format!("h:{}", 7000 + i))).collect();
        Topology::new("c", &specs, ClusterSettings::default()).unwrap()
    }

    fn weights(pairs: &[(GroupId, u32)]) -> BTreeMap<GroupId, u32> {
        pairs.iter().copied().collect()
    }

    /// The slot map after the plan is carried out; also checks that no slot is given twice
    /// nor to the group that owns it.
    fn apply(slots: &SlotMap, plan: &RebalancePlan) -> SlotMap {
        let mut seen = vec![false; SLOT_COUNT as usize];
        let mut after = slots.clone();
        for (target, ranges) in plan {
            for &(from, to) in ranges {
                assert!(from <= to && to < SLOT_COUNT, "range {from}-{to}");
                for slot in from..=to {
                    assert!(!seen[slot as usize], "slot {slot} moves twice");
                    seen[slot as usize] = true;
                    assert_ne!(slots.owner(slot), Some(*target), "slot {slot} moves to its own owner");
                }
                after.assign(from, to, *target);
            }
        }
        after
    }

    fn moved(plan: &RebalancePlan) -> usize {
        plan.iter().flat_map(|(_, r)| r.iter().map(|(a, b)| usize::from(b - a) + 1)).sum()
    }

    #[test]
    fn plans_reach_the_quotas_moving_only_the_surplus() {
        struct Case {
            name: &'static str,
            slots: SlotMap,
            groups: Vec<GroupId>,
            weights: BTreeMap<GroupId, u32>,
            /// Slots each group owns afterwards.
            want: Vec<(GroupId, usize)>,
            /// Slots moved.
            moved: usize,
            /// At most this many ranges in the whole plan.
            max_ranges: usize,
        }
        let table = [
            Case {
                name: "a group added to two: an even split",
                slots: SlotMap::spread(&[1, 2]),
                groups: vec![1, 2, 3],
                weights: weights(&[]),
                want: vec![(1, 5462), (2, 5461), (3, 5461)],
                moved: 5461,
                max_ranges: 2,
            },
            Case {
                name: "weights 2:1",
                slots: SlotMap::spread(&[1, 2]),
                groups: vec![1, 2],
                weights: weights(&[(1, 2)]),
                want: vec![(1, 10923), (2, 5461)],
                moved: 2731,
                max_ranges: 1,
            },
            Case {
                name: "weight 0 drains a group",
                slots: SlotMap::spread(&[1, 2, 3]),
                groups: vec![1, 2, 3],
                weights: weights(&[(2, 0)]),
                want: vec![(1, 8192), (2, 0), (3, 8192)],
                moved: 5461,
                max_ranges: 2,
            },
            Case {
                name: "already balanced",
                slots: SlotMap::spread(&[1, 2, 3]),
                groups: vec![1, 2, 3],
                weights: weights(&[(3, 1)]),
                want: vec![(1, 5462), (2, 5461), (3, 5461)],
                moved: 0,
                max_ranges: 0,
            },
            Case {
                name: "two groups added to one",
                slots: SlotMap::spread(&[1]),
                groups: vec![1, 2, 3],
                weights: weights(&[]),
                want: vec![(1, 5462), (2, 5461), (3, 5461)],
                moved: 10922,
                max_ranges: 2,
            },
            Case {
                name: "weights 1:3 over four groups added to two",
                slots: SlotMap::spread(&[1, 2]),
                groups: vec![1, 2, 3, 4],
                weights: weights(&[(1, 1), (2, 1), (3, 3), (4, 3)]),
                want: vec![(1, 2048), (2, 2048), (3, 6144), (4, 6144)],
                moved: 12288,
                max_ranges: 4,
            },
        ];
        for case in table {
            let plan = plan_rebalance(&case.slots, &case.groups, &case.weights).unwrap();
            let after = apply(&case.slots, &plan);
            let got: Vec<(GroupId, usize)> = case.groups.iter().map(|g| (*g, after.count(*g))).collect();
            assert_eq!(got, case.want, "{}: ownership afterwards", case.name);
            let quota = quotas(&case.slots, &case.groups, &case.weights).unwrap();
            for (g, n) in &got {
                assert_eq!(quota[g], *n, "{}: group {g} owns its quota", case.name);
            }
            assert_eq!(moved(&plan), case.moved, "{}: slots moved", case.name);
            let ranges: usize = plan.iter().map(|(_, r)| r.len()).sum();
            assert!(ranges <= case.max_ranges, "{}: {ranges} ranges in {plan:?}", case.name);
            assert_eq!(after.unassigned(), 0, "{}", case.name);
            assert_eq!(
                plan_rebalance(&after, &case.groups, &case.weights).unwrap(),
                vec![],
                "{}: a second rebalance has nothing to do",
                case.name
            );
        }
    }

    #[test]
    fn surplus_groups_give_their_highest_slots() {
        let plan = plan_rebalance(&SlotMap::spread(&[1, 2]), &[1, 2, 3], &weights(&[])).unwrap();
        // Group 1 (0-8191) keeps 5462 and gives 5462-8191; group 2 (8192-16383) keeps 5461.
        assert_eq!(plan, vec![(3, vec![(5462, 8191), (13653, 16383)])]);
    }

    #[test]
    fn refusals() {
        let two = SlotMap::spread(&[1, 2]);
        let mut ranges = two.ranges();
        ranges[1].from += 10;
        let partial = SlotMap::from_ranges(&ranges).unwrap();
        type Case<'a> = (&'a str, &'a SlotMap, &'a [GroupId], BTreeMap<GroupId, u32>, RebalanceError);
        let table: &[Case] = &[
            ("unknown group", &two, &[1, 2], weights(&[(9, 1)]), RebalanceError::UnknownGroup(9)),
            ("all zero", &two, &[1, 2], weights(&[(1, 0), (2, 0)]), RebalanceError::AllZero),
            ("no groups", &two, &[], weights(&[]), RebalanceError::NoGroups),
            (
                "unassigned slots",
                &partial,
                &[1, 2],
                weights(&[]),
                RebalanceError::Unassigned { first: 8192, count: 10 },
            ),
            ("orphan slots", &two, &[1], weights(&[]), RebalanceError::OrphanSlot { slot: 8192, group: 2 }),
        ];
        for (name, slots, groups, w, want) in table {
            assert_eq!(plan_rebalance(slots, groups, w).unwrap_err(), *want, "{name}");
        }
    }

    #[test]
    fn topology_rebalance_starts_one_migration_per_receiver_under_one_epoch() {
        let t = cluster(2);
        let (t, g3) = t.add_group(&spec("h:8000")).unwrap();
        let (t, g4) = t.add_group(&spec("h:8001")).unwrap();
        let (next, ids) = t.rebalance(&weights(&[]), Some(500)).unwrap();
        assert_eq!(next.epoch, t.epoch + 1);
        assert_eq!(ids.len(), 2);
        let targets: Vec<GroupId> =
            ids.iter().map(|id| next.migrations.iter().find(|m| m.id == *id).unwrap().target).collect();
        assert_eq!(targets, vec![g3, g4]);
        for m in &next.migrations {
            assert_eq!((m.state, m.since_epoch, m.rate), (MigrationState::Preparing, next.epoch, Some(500)));
            assert_eq!(m.total_slots(), 4096);
        }
        assert_eq!(next.slots, t.slots, "the slot map changes only as slots are committed");
        assert!(Topology::from_json(&next.to_json()).is_ok());

        assert!(
            matches!(next.rebalance(&weights(&[]), None), Err(TopologyError::Rebalance(RebalanceError::Busy(_)))),
            "refused while migrations run"
        );
        let mut done = next.clone();
        for id in &ids {
            done = done.migration_action(*id, MigrationAction::Begin).unwrap().finish_migration(*id).unwrap();
        }
        for g in 1..=4 {
            assert_eq!(done.slots.count(g), 4096, "group {g}");
        }
        assert_eq!(
            done.rebalance(&weights(&[]), None).unwrap_err(),
            TopologyError::Rebalance(RebalanceError::Balanced)
        );
        assert_eq!(
            done.rebalance(&weights(&[(7, 1)]), None).unwrap_err(),
            TopologyError::Rebalance(RebalanceError::UnknownGroup(7))
        );
    }
}
