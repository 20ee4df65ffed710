//! Slot migrations as recorded in the topology: which slots move from which group to which,
//! in what state, and the pure decisions about them (routing of a migrating slot, starting,
//! finishing, pausing, cancelling). The driver that moves keys lives in the controller.
//!
//! The protocol (see ARCHITECTURE.md, "Slot migration"): a migration enters the topology as
//! `Preparing` under a new epoch; routers that applied it send every command on its slots to
//! the source wrapped in a script ([`Markers`]): while the source has no marker it simply runs
//! the command. Once every registered router has applied the epoch the driver sets the
//! source's marker (state `Moving`): from then on the source creates no key of the migration's
//! slots, serves the keys it still has, and answers "ask the target" for the others; the
//! mover walks the source and moves keys with `MIGRATE`. When a full pass finds no key left,
//! the slots are committed to the target under a new epoch (`Done`). Cancel sets the target's
//! *back* marker instead: the target then serves only keys it holds and sends the rest back to
//! the source, while the mover moves keys back (`Cancelling`, then `Cancelled`).

use serde::{Deserialize, Serialize};

use crate::error::TopologyError;
use crate::group::GroupId;
use crate::slot::{Slot, SLOT_COUNT};
use crate::topology::Topology;

/// Finished migrations kept in the topology (for `cluster migrations`); older ones are dropped.
pub const FINISHED_KEPT: usize = 20;

pub type MigrationId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// In the topology; waiting until every registered router applied its epoch.
    Preparing,
    /// Keys are moving.
    Moving,
    /// The mover is stopped; routers still serve the slots through the source's marker.
    Paused,
    /// Being undone: keys already at the target move back to the source.
    Cancelling,
    Done,
    Cancelled,
}

impl MigrationState {
    /// Whether its slots are still in motion (routers must treat them specially).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Preparing | Self::Moving | Self::Paused | Self::Cancelling)
    }
}

/// Slots `from..=to`, all owned by `source` when the migration started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotMove {
    pub from: Slot,
    pub to: Slot,
    pub source: GroupId,
}

impl SlotMove {
    pub fn contains(&self, slot: Slot) -> bool {
        (self.from..=self.to).contains(&slot)
    }

    pub fn len(&self) -> usize {
        usize::from(self.to - self.from) + 1
    }

    /// Never: a move has at least one slot (`from <= to`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub id: MigrationId,
    pub target: GroupId,
    /// The slots still to move (a slot leaves this list when it is committed to the target).
    pub pending: Vec<SlotMove>,
    /// Slots moved so far.
    #[serde(default)]
    pub moved: u32,
    pub state: MigrationState,
    /// The epoch that introduced it: routers must have applied it before keys move.
    pub since_epoch: u64,
    /// Keys per second the mover may move (None: as fast as it goes).
    #[serde(default)]
    pub rate: Option<u32>,
    /// The groups its slots came from (kept after they have moved, for listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<GroupId>,
    /// The epoch that finished it (`Done` or `Cancelled`): its markers may go once every
    /// router has applied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_epoch: Option<u64>,
}

impl Migration {
    pub fn total_slots(&self) -> usize {
        self.moved as usize + self.pending.iter().map(SlotMove::len).sum::<usize>()
    }

    /// The move of `slot`, if this migration still has it pending.
    pub fn pending_move(&self, slot: Slot) -> Option<&SlotMove> {
        self.pending.iter().find(|m| m.contains(slot))
    }
}

/// How a router reaches a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRoute {
    /// Straight to the owner.
    Owner(GroupId),
    /// Through `source` with the marker-checking script, then `target` (also through the
    /// script, which checks the back marker while cancelling), then plainly to `source`
    /// when the target sends the command back. The same route in every active state: the
    /// switches happen on the servers, by setting markers.
    Migrating { id: MigrationId, source: GroupId, target: GroupId },
}

/// The route of `slot` given its owner in the slot map and the migrations in flight.
pub fn route(slot: Slot, owner: Option<GroupId>, migrations: &[Migration]) -> Option<SlotRoute> {
    for m in migrations.iter().filter(|m| m.state.is_active()) {
        if let Some(mv) = m.pending_move(slot) {
            return Some(SlotRoute::Migrating { id: m.id, source: mv.source, target: m.target });
        }
    }
    owner.map(SlotRoute::Owner)
}

/// The Redis keys a migration keeps on its servers while it runs. They are not in any slot's
/// sense "owned": they live on the source (`out`, `held`) or the target (`back`, `held`) and
/// the mover never moves keys starting with [`MARKER_PREFIX`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    /// On the source: keys of the migration's slots are no longer created here.
    pub out: String,
    /// On the target, while cancelling: keys are no longer created here.
    pub back: String,
    /// Keys being copied in chunks (big collections): refused to writers until moved.
    pub held: String,
}

/// Every key the migration machinery keeps in Redis starts with this.
pub const MARKER_PREFIX: &str = "zedis:mig:";

impl Markers {
    pub fn of(id: MigrationId) -> Markers {
        Markers {
            out: format!("{MARKER_PREFIX}{id}:out"),
            back: format!("{MARKER_PREFIX}{id}:back"),
            held: format!("{MARKER_PREFIX}{id}:held"),
        }
    }

    /// Where a big key is assembled on the receiving side before it is renamed into place.
    pub fn temp_key(id: MigrationId, key: &[u8]) -> Vec<u8> {
        let mut k = format!("{MARKER_PREFIX}{id}:tmp:").into_bytes();
        k.extend_from_slice(key);
        k
    }

    /// Whether `key` is one of the machinery's own (never moved, never counted).
    pub fn is_marker(key: &[u8]) -> bool {
        key.starts_with(MARKER_PREFIX.as_bytes())
    }
}

/// Why a migration cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error("no group {0}")]
    UnknownGroup(GroupId),
    #[error("slot range {from}-{to} is not valid (slots are 0-{max})", max = SLOT_COUNT - 1)]
    BadRange { from: Slot, to: Slot },
    #[error("slot {0} has no owner")]
    Unassigned(Slot),
    #[error("slot {slot} is already being moved by migration {id}")]
    Busy { slot: Slot, id: MigrationId },
    #[error("no slot to move: group {0} already owns them all")]
    Nothing(GroupId),
    #[error("no migration {0}")]
    UnknownMigration(MigrationId),
    #[error("migration {id}: refused, {why}")]
    Refused { id: MigrationId, why: &'static str },
    #[error("slot {slot} is not pending in migration {id}")]
    NotPending { id: MigrationId, slot: Slot },
}

/// The moves needed to bring `ranges` to `target`: runs of consecutive slots with one source,
/// skipping slots the target owns already. `owner` gives each slot's owner.
pub fn plan_moves(
    ranges: &[(Slot, Slot)],
    target: GroupId,
    owner: impl Fn(Slot) -> Option<GroupId>,
    migrations: &[Migration],
) -> Result<Vec<SlotMove>, MigrationError> {
    let mut moves: Vec<SlotMove> = Vec::new();
    for &(from, to) in ranges {
        if from > to || to >= SLOT_COUNT {
            return Err(MigrationError::BadRange { from, to });
        }
        for slot in from..=to {
            if let Some(m) = migrations.iter().find(|m| m.state.is_active() && m.pending_move(slot).is_some()) {
                return Err(MigrationError::Busy { slot, id: m.id });
            }
            let source = owner(slot).ok_or(MigrationError::Unassigned(slot))?;
            if source == target {
                continue;
            }
            match moves.last_mut() {
                Some(last) if last.source == source && last.to + 1 == slot => last.to = slot,
                _ => moves.push(SlotMove { from: slot, to: slot, source }),
            }
        }
    }
    if moves.is_empty() {
        return Err(MigrationError::Nothing(target));
    }
    Ok(moves)
}

/// What an operator or the driver asks of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationAction {
    /// Every router applied the migration's epoch: keys may move (the driver, not operators).
    Begin,
    Pause,
    Resume,
    Cancel,
}

/// The state after `action`, or why it is refused. Finishing (`Done`, `Cancelled` after
/// `Cancelling`) happens when the last pending slot is committed, not by an action.
pub fn next_state(state: MigrationState, action: MigrationAction) -> Result<MigrationState, &'static str> {
    use MigrationAction as A;
    use MigrationState as S;
    match (state, action) {
        (S::Preparing, A::Begin) => Ok(S::Moving),
        // Nothing has moved yet: dropping it is the whole cancel.
        (S::Preparing, A::Cancel) => Ok(S::Cancelled),
        (S::Moving, A::Pause) => Ok(S::Paused),
        (S::Paused, A::Resume) => Ok(S::Moving),
        (S::Moving | S::Paused, A::Cancel) => Ok(S::Cancelling),
        (S::Done | S::Cancelled, _) => Err("it has finished"),
        (S::Preparing, A::Pause | A::Resume) => Err("it has not started moving keys"),
        (S::Cancelling, _) => Err("it is being cancelled"),
        (S::Moving, A::Begin | A::Resume) | (S::Paused, A::Begin | A::Pause) => Err("it is in that state already"),
    }
}

impl Topology {
    /// Starts moving `ranges` to group `target`: a `Preparing` migration under a new epoch.
    pub fn start_migration(
        &self,
        ranges: &[(Slot, Slot)],
        target: GroupId,
        rate: Option<u32>,
    ) -> Result<(Topology, MigrationId), TopologyError> {
        if self.group(target).is_none() {
            return Err(MigrationError::UnknownGroup(target).into());
        }
        let pending = plan_moves(ranges, target, |s| self.slots.owner(s), &self.migrations)?;
        let mut next = self.clone();
        next.epoch += 1;
        let id = self.migrations.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let sources = crate::migration_summary::sources(&pending);
        next.migrations.push(Migration {
            id,
            target,
            pending,
            moved: 0,
            state: MigrationState::Preparing,
            since_epoch: next.epoch,
            rate,
            sources,
            finished_epoch: None,
        });
        next.trim_finished();
        Ok((next, id))
    }

    /// Applies `action` to migration `id` under a new epoch.
    pub fn migration_action(&self, id: MigrationId, action: MigrationAction) -> Result<Topology, TopologyError> {
        let mut next = self.clone();
        next.epoch += 1;
        let epoch = next.epoch;
        let m = next.migration_mut(id)?;
        m.state = next_state(m.state, action).map_err(|why| MigrationError::Refused { id, why })?;
        if m.state == MigrationState::Cancelled {
            m.pending.clear();
            m.finished_epoch = Some(epoch);
        }
        Ok(next)
    }

    /// Commits every pending slot of migration `id` under one new epoch: while moving (or
    /// paused) the target owns them from now on (`Done`); while cancelling they stay with
    /// their sources (`Cancelled`). The driver calls it when a full pass over the sending
    /// side found no key of the pending slots.
    pub fn finish_migration(&self, id: MigrationId) -> Result<Topology, TopologyError> {
        let mut next = self.clone();
        next.epoch += 1;
        let epoch = next.epoch;
        let m = next.migration_mut(id)?;
        let to_target = match m.state {
            MigrationState::Moving | MigrationState::Paused => true,
            MigrationState::Cancelling => false,
            state => return Err(MigrationError::Refused { id, why: state_why(state) }.into()),
        };
        let pending = std::mem::take(&mut m.pending);
        let target = m.target;
        if to_target {
            m.moved += pending.iter().map(|mv| mv.len() as u32).sum::<u32>();
            m.state = MigrationState::Done;
        } else {
            m.state = MigrationState::Cancelled;
        }
        m.finished_epoch = Some(epoch);
        if to_target {
            for mv in &pending {
                next.slots.assign(mv.from, mv.to, target);
            }
        }
        next.trim_finished();
        Ok(next)
    }

    /// Commits `slot` of migration `id` under a new epoch: while moving, the target owns it
    /// from now on; while cancelling, it stays with its source. The migration finishes with
    /// its last slot.
    pub fn commit_slot(&self, id: MigrationId, slot: Slot) -> Result<Topology, TopologyError> {
        let mut next = self.clone();
        next.epoch += 1;
        let epoch = next.epoch;
        let m = next.migration_mut(id)?;
        let Some(mv) = m.pending_move(slot).copied() else {
            return Err(MigrationError::NotPending { id, slot }.into());
        };
        let owner = match m.state {
            MigrationState::Moving | MigrationState::Paused => m.target,
            MigrationState::Cancelling => mv.source,
            state => return Err(MigrationError::Refused { id, why: state_why(state) }.into()),
        };
        m.pending = without_slot(&m.pending, slot);
        if owner == m.target {
            m.moved += 1;
        }
        if m.pending.is_empty() {
            m.state =
                if m.state == MigrationState::Cancelling { MigrationState::Cancelled } else { MigrationState::Done };
            m.finished_epoch = Some(epoch);
        }
        next.slots.assign(slot, slot, owner);
        next.trim_finished();
        Ok(next)
    }

    fn migration_mut(&mut self, id: MigrationId) -> Result<&mut Migration, MigrationError> {
        self.migrations.iter_mut().find(|m| m.id == id).ok_or(MigrationError::UnknownMigration(id))
    }

    fn trim_finished(&mut self) {
        let finished = self.migrations.iter().filter(|m| !m.state.is_active()).count();
        let mut drop = finished.saturating_sub(FINISHED_KEPT);
        self.migrations.retain(|m| {
            if drop > 0 && !m.state.is_active() {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

fn state_why(state: MigrationState) -> &'static str {
    match state {
        MigrationState::Preparing => "it has not started moving keys",
        MigrationState::Done | MigrationState::Cancelled => "it has finished",
        _ => "not in this state",
    }
}

/// `moves` without `slot` (a committed slot leaves its range, splitting it if needed).
pub fn without_slot(moves: &[SlotMove], slot: Slot) -> Vec<SlotMove> {
    let mut out = Vec::with_capacity(moves.len() + 1);
    for m in moves {
        if !m.contains(slot) {
            out.push(*m);
            continue;
        }
        if m.from < slot {
            out.push(SlotMove { from: m.from, to: slot - 1, source: m.source });
        }
        if slot < m.to {
            out.push(SlotMove { from: slot + 1, to: m.to, source: m.source });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Server;
    use crate::settings::ClusterSettings;
    use crate::topology::GroupSpec;

    fn two_groups() -> Topology {
        let spec = |a: &str| GroupSpec { servers: vec![Server::new(a)] };
        Topology::new("t", &[spec("127.0.0.1:7001"), spec("127.0.0.1:7002")], ClusterSettings::default()).unwrap()
    }

    #[test]
    fn state_transitions() {
        use MigrationAction as A;
        use MigrationState as S;
        let table: &[(S, A, Result<S, ()>)] = &[
            (S::Preparing, A::Begin, Ok(S::Moving)),
            (S::Preparing, A::Cancel, Ok(S::Cancelled)),
            (S::Preparing, A::Pause, Err(())),
            (S::Moving, A::Pause, Ok(S::Paused)),
            (S::Moving, A::Cancel, Ok(S::Cancelling)),
            (S::Moving, A::Begin, Err(())),
            (S::Paused, A::Resume, Ok(S::Moving)),
            (S::Paused, A::Cancel, Ok(S::Cancelling)),
            (S::Cancelling, A::Resume, Err(())),
            (S::Done, A::Cancel, Err(())),
            (S::Cancelled, A::Resume, Err(())),
        ];
        for (from, action, want) in table {
            assert_eq!(next_state(*from, *action).map_err(|_| ()), *want, "{from:?} + {action:?}");
        }
    }

    #[test]
    fn a_migration_moves_slot_by_slot_under_new_epochs() {
        let t = two_groups();
        assert_eq!(t.slots.owner(0), Some(1));
        let (t1, id) = t.start_migration(&[(0, 2)], 2, Some(1000)).unwrap();
        assert_eq!(t1.epoch, t.epoch + 1);
        assert_eq!(t1.migrations[0].since_epoch, t1.epoch);
        assert_eq!(t1.route(1), Some(SlotRoute::Migrating { id, source: 1, target: 2 }));
        assert_eq!(t1.slots.owner(1), Some(1), "the slot map changes only when a slot is committed");
        assert!(matches!(t1.commit_slot(id, 0), Err(TopologyError::Migration(MigrationError::Refused { .. }))));
        let t2 = t1.migration_action(id, MigrationAction::Begin).unwrap();
        let t3 = t2.commit_slot(id, 1).unwrap();
        assert_eq!(t3.slots.owner(1), Some(2));
        assert_eq!(t3.route(1), Some(SlotRoute::Owner(2)));
        assert_eq!(t3.route(0), Some(SlotRoute::Migrating { id, source: 1, target: 2 }));
        let t4 = t3.commit_slot(id, 0).unwrap().commit_slot(id, 2).unwrap();
        assert_eq!(t4.migrations[0].state, MigrationState::Done);
        assert_eq!(t4.migrations[0].moved, 3);
        assert_eq!((t4.slots.owner(0), t4.slots.owner(2), t4.slots.owner(3)), (Some(2), Some(2), Some(1)));
        assert_eq!(t4.epoch, t.epoch + 5);
        assert!(Topology::from_json(&t4.to_json()).is_ok(), "the record round-trips");
    }

    #[test]
    fn cancel_sends_pending_slots_back_and_keeps_moved_ones() {
        let (t, id) = two_groups().start_migration(&[(0, 1)], 2, None).unwrap();
        let t = t.migration_action(id, MigrationAction::Begin).unwrap().commit_slot(id, 0).unwrap();
        let t = t.migration_action(id, MigrationAction::Cancel).unwrap();
        assert_eq!(
            t.route(1),
            Some(SlotRoute::Migrating { id, source: 1, target: 2 }),
            "routing does not change: the target's back marker sends keys back"
        );
        let t = t.commit_slot(id, 1).unwrap();
        assert_eq!(t.migrations[0].state, MigrationState::Cancelled);
        assert_eq!((t.slots.owner(0), t.slots.owner(1)), (Some(2), Some(1)));
        assert_eq!(t.route(1), Some(SlotRoute::Owner(1)));
    }

    #[test]
    fn finishing_commits_every_pending_slot_at_once() {
        let (t, id) = two_groups().start_migration(&[(0, 9), (20, 29)], 2, None).unwrap();
        assert_eq!(t.migrations[0].sources, vec![1]);
        assert!(t.finish_migration(id).is_err(), "not moving yet");
        let t = t.migration_action(id, MigrationAction::Begin).unwrap();
        let done = t.finish_migration(id).unwrap();
        assert_eq!(done.epoch, t.epoch + 1);
        let m = &done.migrations[0];
        assert_eq!((m.state, m.moved, m.finished_epoch), (MigrationState::Done, 20, Some(done.epoch)));
        assert!(m.pending.is_empty());
        assert_eq!((done.slots.owner(0), done.slots.owner(15), done.slots.owner(29)), (Some(2), Some(1), Some(2)));
        assert_eq!(done.route(5), Some(SlotRoute::Owner(2)));
        assert!(done.finish_migration(id).is_err(), "finished already");

        let cancelled = t.migration_action(id, MigrationAction::Cancel).unwrap().finish_migration(id).unwrap();
        let m = &cancelled.migrations[0];
        assert_eq!((m.state, m.moved), (MigrationState::Cancelled, 0));
        assert_eq!((cancelled.slots.owner(0), cancelled.route(5)), (Some(1), Some(SlotRoute::Owner(1))));
    }

    #[test]
    fn markers_are_recognisable() {
        let m = Markers::of(7);
        assert_eq!(
            (m.out.as_str(), m.back.as_str(), m.held.as_str()),
            ("zedis:mig:7:out", "zedis:mig:7:back", "zedis:mig:7:held")
        );
        assert!(Markers::is_marker(&Markers::temp_key(7, b"user:1")));
        assert!(Markers::is_marker(m.out.as_bytes()));
        assert!(!Markers::is_marker(b"user:1"));
    }

    #[test]
    fn refusals_are_errors() {
        let t = two_groups();
        assert!(matches!(t.start_migration(&[(0, 1)], 9, None), Err(TopologyError::Migration(_))));
        let (t, id) = t.start_migration(&[(0, 1)], 2, None).unwrap();
        assert!(t.start_migration(&[(1, 5)], 2, None).is_err(), "slot 1 is busy");
        assert!(t.migration_action(id + 1, MigrationAction::Pause).is_err());
        assert!(t.commit_slot(id, 7).is_err(), "slot 7 is not part of it");
    }

    fn mig(id: MigrationId, state: MigrationState, pending: Vec<SlotMove>, target: GroupId) -> Migration {
        Migration {
            id,
            target,
            pending,
            moved: 0,
            state,
            since_epoch: 5,
            rate: None,
            sources: Vec::new(),
            finished_epoch: None,
        }
    }

    #[test]
    fn routes() {
        let mv = |from, to, source| SlotMove { from, to, source };
        let moving = mig(1, MigrationState::Moving, vec![mv(0, 99, 1)], 2);
        let cancelling = mig(2, MigrationState::Cancelling, vec![mv(200, 299, 1)], 3);
        let done = mig(3, MigrationState::Done, vec![mv(400, 499, 1)], 2);
        let all = [moving, cancelling, done];
        let table: &[(&str, Slot, Option<GroupId>, Option<SlotRoute>)] = &[
            ("outside every migration", 150, Some(1), Some(SlotRoute::Owner(1))),
            ("moving: through the source", 50, Some(1), Some(SlotRoute::Migrating { id: 1, source: 1, target: 2 })),
            ("cancelling: the same route", 250, Some(1), Some(SlotRoute::Migrating { id: 2, source: 1, target: 3 })),
            ("a finished migration routes nothing", 450, Some(2), Some(SlotRoute::Owner(2))),
            ("unassigned", 600, None, None),
        ];
        for (name, slot, owner, want) in table {
            assert_eq!(route(*slot, *owner, &all), *want, "{name}");
        }
    }

    #[test]
    fn plans_runs_per_source_and_refuses_what_cannot_move() {
        let owner = |s: Slot| {
            if s < 100 {
                Some(1)
            } else if s < 200 {
                Some(2)
            } else {
                None
            }
        };
        let mv = |from, to, source| SlotMove { from, to, source };
        assert_eq!(plan_moves(&[(0, 149)], 3, owner, &[]), Ok(vec![mv(0, 99, 1), mv(100, 149, 2)]));
        assert_eq!(plan_moves(&[(50, 149)], 2, owner, &[]), Ok(vec![mv(50, 99, 1)]), "the target's own slots stay");
        assert_eq!(plan_moves(&[(100, 149)], 2, owner, &[]), Err(MigrationError::Nothing(2)));
        assert_eq!(plan_moves(&[(150, 250)], 1, owner, &[]), Err(MigrationError::Unassigned(200)));
        assert_eq!(plan_moves(&[(5, 1)], 1, owner, &[]), Err(MigrationError::BadRange { from: 5, to: 1 }));
        assert_eq!(plan_moves(&[(0, 16384)], 1, owner, &[]), Err(MigrationError::BadRange { from: 0, to: 16384 }));
        let busy = [mig(7, MigrationState::Moving, vec![mv(10, 20, 1)], 2)];
        assert_eq!(plan_moves(&[(0, 50)], 3, owner, &busy), Err(MigrationError::Busy { slot: 10, id: 7 }));
        let finished = [mig(8, MigrationState::Done, vec![mv(10, 20, 1)], 2)];
        assert!(plan_moves(&[(0, 50)], 3, owner, &finished).is_ok());
    }

    #[test]
    fn committing_a_slot_splits_its_range() {
        let mv = |from, to, source| SlotMove { from, to, source };
        let moves = [mv(0, 9, 1), mv(20, 20, 2)];
        assert_eq!(without_slot(&moves, 0), vec![mv(1, 9, 1), mv(20, 20, 2)]);
        assert_eq!(without_slot(&moves, 5), vec![mv(0, 4, 1), mv(6, 9, 1), mv(20, 20, 2)]);
        assert_eq!(without_slot(&moves, 9), vec![mv(0, 8, 1), mv(20, 20, 2)]);
        assert_eq!(without_slot(&moves, 20), vec![mv(0, 9, 1)]);
        assert_eq!(without_slot(&moves, 15), moves.to_vec());
        let m = mig(1, MigrationState::Moving, moves.to_vec(), 3);
        assert_eq!(m.total_slots(), 11);
    }
}
