//! One-line descriptions of slot migrations, shared by the controller's messages and events
//! and the CLI (`cluster migrate`, `cluster rebalance --dry-run`, `cluster migrations`).

use crate::group::GroupId;
use crate::migration::{Migration, SlotMove};
use crate::slot::Slot;

/// Ranges listed in full before the rest is only counted.
const RANGES_SHOWN: usize = 8;

/// `0-99,200,300-310` (at most a few ranges, then `... (+N more)`).
pub fn ranges_text(ranges: &[(Slot, Slot)]) -> String {
    let mut parts: Vec<String> = ranges
        .iter()
        .take(RANGES_SHOWN)
        .map(|&(from, to)| if from == to { from.to_string() } else { format!("{from}-{to}") })
        .collect();
    if ranges.len() > RANGES_SHOWN {
        parts.push(format!("... (+{} more ranges)", ranges.len() - RANGES_SHOWN));
    }
    parts.join(",")
}

/// The source groups of `moves`, in order of first appearance.
pub fn sources(moves: &[SlotMove]) -> Vec<GroupId> {
    let mut out: Vec<GroupId> = Vec::new();
    for mv in moves {
        if !out.contains(&mv.source) {
            out.push(mv.source);
        }
    }
    out
}

/// `slots 0-99 from group 1 and 100-149 from group 3 to group 2` (the pending slots).
pub fn summary(m: &Migration) -> String {
    moves_text(&m.pending, m.target)
}

/// The same for any moves towards `target`.
pub fn moves_text(moves: &[SlotMove], target: GroupId) -> String {
    if moves.is_empty() {
        return format!("no slot left to move to group {target}");
    }
    let per_source: Vec<String> = sources(moves)
        .into_iter()
        .map(|source| {
            let ranges: Vec<(Slot, Slot)> =
                moves.iter().filter(|mv| mv.source == source).map(|mv| (mv.from, mv.to)).collect();
            format!("{} from group {source}", ranges_text(&ranges))
        })
        .collect();
    let count: usize = moves.iter().map(SlotMove::len).sum();
    let noun = if count == 1 { "slot" } else { "slots" };
    format!("{noun} {} to group {target}", per_source.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let mv = |from, to, source| SlotMove { from, to, source };
        assert_eq!(ranges_text(&[(0, 99), (200, 200)]), "0-99,200");
        let many: Vec<(Slot, Slot)> = (0..10).map(|i| (i * 10, i * 10 + 1)).collect();
        assert!(ranges_text(&many).ends_with("70-71,... (+2 more ranges)"), "{}", ranges_text(&many));
        assert_eq!(moves_text(&[mv(0, 99, 1)], 2), "slots 0-99 from group 1 to group 2");
        assert_eq!(moves_text(&[mv(7, 7, 1)], 2), "slot 7 from group 1 to group 2");
        assert_eq!(
            moves_text(&[mv(0, 99, 1), mv(100, 149, 3), mv(200, 299, 1)], 2),
            "slots 0-99,200-299 from group 1 and 100-149 from group 3 to group 2"
        );
        assert_eq!(sources(&[mv(0, 1, 3), mv(2, 3, 1), mv(4, 5, 3)]), vec![3, 1]);
        assert_eq!(moves_text(&[], 2), "no slot left to move to group 2");
    }
}
