//! Slot migrations as recorded in the topology: which slots move from which group to which,
//! in what state, and the pure decisions about them (routing of a migrating slot, starting,
//! completing a slot, pausing, cancelling). The driver that moves keys lives in the controller.
//!
//! The protocol (see ARCHITECTURE.md, "Slot migration"): a migration enters the topology as
//! `Preparing` under a new epoch; routers that applied it serve its slots through the source
//! with a script that checks the source's per-slot marker (`zedis:migrating:{<slot tag>}`),
//! so the *source* enforces where each key is served. Once every registered router has
//! applied the epoch the driver sets the marker (state `Moving`): from then on the source
//! creates no new key of the slot, serves the keys it still has, and answers "ask the target"
//! for the others; the mover walks the source and moves keys with `MIGRATE`. A slot whose
//! source holds no key any more is committed to the target under a new epoch.

use serde::{Deserialize, Serialize};

use crate::group::GroupId;
use crate::slot::{Slot, SLOT_COUNT};

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
    /// Through `source` with the marker-checking script; "ask the target" replies go to
    /// `target`. (While `Cancelling`, keys flow back: the target of the move is the source.)
    Migrating { source: GroupId, target: GroupId },
}

/// The route of `slot` given its owner in the slot map and the migrations in flight.
pub fn route(slot: Slot, owner: Option<GroupId>, migrations: &[Migration]) -> Option<SlotRoute> {
    for m in migrations.iter().filter(|m| m.state.is_active()) {
        if let Some(mv) = m.pending_move(slot) {
            return Some(match m.state {
                MigrationState::Cancelling => SlotRoute::Migrating { source: m.target, target: mv.source },
                _ => SlotRoute::Migrating { source: mv.source, target: m.target },
            });
        }
    }
    owner.map(SlotRoute::Owner)
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
    #[error("migration {id} is {state:?}; cannot {action}")]
    BadState { id: MigrationId, state: MigrationState, action: &'static str },
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

    fn mig(id: MigrationId, state: MigrationState, pending: Vec<SlotMove>, target: GroupId) -> Migration {
        Migration { id, target, pending, moved: 0, state, since_epoch: 5, rate: None }
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
            ("moving: through the source", 50, Some(1), Some(SlotRoute::Migrating { source: 1, target: 2 })),
            ("cancelling: keys flow back", 250, Some(1), Some(SlotRoute::Migrating { source: 3, target: 1 })),
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
