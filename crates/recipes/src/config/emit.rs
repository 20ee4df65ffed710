//! The watch's decision, pure: whether an observed record of a key is news to a reader, so that
//! what a reader is told never goes backwards — across reconnects, session expiry and full
//! re-reads, which may observe a version the reader was already told about, or (from a
//! ZooKeeper server that lags behind) an older one.

/// The last version a reader was told about for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub version: u64,
    /// That version deleted the key (or the key node vanished).
    pub deleted: bool,
}

/// What a read found for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A record (a deletion is a record too).
    Record { version: u64, deleted: bool },
    /// No node at all (removed by hand; the API deletes by writing a deletion record).
    Missing,
}

/// What to do about an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// Tell the reader: the key has a new value.
    Updated,
    /// Tell the reader: the key is gone.
    Deleted,
    /// Nothing to tell, but remember the version (a deletion of a key the reader never saw):
    /// an older value must not be told later.
    Remember,
    /// Old news, or older than what the reader saw: drop it.
    Ignore,
}

/// Decides about `observed` given the reader's `last` seen version; returns the decision and
/// what the reader has seen afterwards.
pub fn decide(last: Option<Seen>, observed: Observed) -> (Emit, Option<Seen>) {
    match (last, observed) {
        (Some(l), Observed::Record { version, .. }) if version <= l.version => (Emit::Ignore, last),
        (last, Observed::Record { version, deleted }) => {
            let seen = Some(Seen { version, deleted });
            match (deleted, last) {
                (false, _) => (Emit::Updated, seen),
                (true, Some(Seen { deleted: false, .. })) => (Emit::Deleted, seen),
                (true, _) => (Emit::Remember, seen),
            }
        }
        (Some(l), Observed::Missing) if !l.deleted => (Emit::Deleted, Some(Seen { version: l.version, deleted: true })),
        (last, Observed::Missing) => (Emit::Ignore, last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(version: u64, deleted: bool) -> Option<Seen> {
        Some(Seen { version, deleted })
    }

    fn rec(version: u64, deleted: bool) -> Observed {
        Observed::Record { version, deleted }
    }

    #[test]
    fn decide_table() {
        // (last, observed, decision, last afterwards)
        let table: &[(Option<Seen>, Observed, Emit, Option<Seen>)] = &[
            // First sight.
            (None, rec(1, false), Emit::Updated, seen(1, false)),
            (None, rec(4, true), Emit::Remember, seen(4, true)),
            (None, Observed::Missing, Emit::Ignore, None),
            // Newer.
            (seen(1, false), rec(2, false), Emit::Updated, seen(2, false)),
            (seen(1, false), rec(5, false), Emit::Updated, seen(5, false)),
            (seen(2, false), rec(3, true), Emit::Deleted, seen(3, true)),
            (seen(3, true), rec(4, false), Emit::Updated, seen(4, false)),
            (seen(3, true), rec(5, true), Emit::Remember, seen(5, true)),
            // The same again (a full re-read after a reconnect): nothing.
            (seen(2, false), rec(2, false), Emit::Ignore, seen(2, false)),
            (seen(3, true), rec(3, true), Emit::Ignore, seen(3, true)),
            // Older (a lagging server, a stale snapshot): never told.
            (seen(5, false), rec(4, false), Emit::Ignore, seen(5, false)),
            (seen(5, true), rec(4, false), Emit::Ignore, seen(5, true)),
            // The node vanished.
            (seen(5, false), Observed::Missing, Emit::Deleted, seen(5, true)),
            (seen(5, true), Observed::Missing, Emit::Ignore, seen(5, true)),
        ];
        for (last, observed, emit, after) in table {
            assert_eq!(decide(*last, *observed), (*emit, *after), "{last:?} + {observed:?}");
        }
    }

    #[test]
    fn never_backwards_over_any_sequence() {
        // Every order of a few observations: the versions told are strictly increasing.
        let observations =
            [rec(1, false), rec(3, false), rec(2, false), rec(4, true), Observed::Missing, rec(5, false)];
        for start in 0..observations.len() {
            let mut last = None;
            let mut told = Vec::new();
            for o in observations.iter().cycle().skip(start).take(observations.len() * 2) {
                let (emit, after) = decide(last, *o);
                if matches!(emit, Emit::Updated | Emit::Deleted) {
                    told.push(after.map(|s| s.version).unwrap_or(0));
                }
                last = after;
            }
            assert!(told.windows(2).all(|w| w[0] <= w[1]), "told {told:?}");
        }
    }
}
