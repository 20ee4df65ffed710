//! [`NsView`]: what one client has seen of one namespace. Every read (`get`, `list`, watches)
//! goes through it, so a client never hands out an older version of a key than one it handed
//! out before, and it is what the local snapshot is made of.

use std::collections::BTreeMap;

use super::emit::{decide, Emit, Observed, Seen};
use super::record::ConfigRecord;
use super::snapshot::SnapshotFile;
use super::value::Source;

#[derive(Clone, Debug)]
pub(crate) struct NsView {
    /// Every key as seen (deletions included), as this client's labels make it.
    pub entries: BTreeMap<String, ConfigRecord>,
    /// The whole namespace was read from ZooKeeper and has been followed since: a snapshot of
    /// it may be written. Cleared when ZooKeeper fails, so the next read refreshes it whole.
    pub complete: bool,
    pub source: Source,
    /// Bumped on every change; compared with `saved` to skip writing an unchanged snapshot.
    pub generation: u64,
    pub saved: u64,
    /// When the namespace was last read whole from ZooKeeper (ms since the Unix epoch).
    pub refreshed_ms: u64,
}

impl Default for NsView {
    fn default() -> NsView {
        NsView {
            entries: BTreeMap::new(),
            complete: false,
            source: Source::ZooKeeper,
            generation: 0,
            saved: 0,
            refreshed_ms: 0,
        }
    }
}

impl NsView {
    /// A view made of a snapshot file (ZooKeeper unreachable).
    pub fn from_snapshot(file: SnapshotFile) -> NsView {
        NsView {
            entries: file.entries,
            complete: false,
            source: Source::LocalSnapshot { taken_at_ms: file.taken_at_ms },
            generation: 0,
            saved: 0,
            refreshed_ms: file.taken_at_ms,
        }
    }

    /// Takes in a whole-namespace read from ZooKeeper as this client's `labels` see it: keys
    /// read, keys gone (unreadable ones are kept as they were); the view is complete after.
    pub fn take_whole_read(&mut self, read: &super::store::NamespaceRead, labels: &BTreeMap<String, String>) {
        for (key, state) in &read.keys {
            let seen = super::canary::effective(
                state.released.as_ref().map(|s| &s.record),
                state.canary.as_ref().map(|s| &s.record),
                labels,
            );
            self.observe(key, seen);
        }
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !read.keys.contains_key(*k) && !read.unreadable.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.observe(&key, None);
        }
        self.complete = true;
        self.source = Source::ZooKeeper;
        self.refreshed_ms = super::record::now_ms();
    }

    /// Takes in what a read found for `key` (`None`: no record this client can see); returns
    /// what a reader should be told (see [`decide`]).
    pub fn observe(&mut self, key: &str, observed: Option<&ConfigRecord>) -> Emit {
        let last = self.entries.get(key).map(|r| Seen { version: r.version, deleted: r.deleted });
        let what = match observed {
            Some(r) => Observed::Record { version: r.version, deleted: r.deleted },
            None => Observed::Missing,
        };
        let (emit, _) = decide(last, what);
        match (emit, observed) {
            (Emit::Ignore, _) => return emit,
            (_, Some(record)) => {
                self.entries.insert(key.to_string(), record.clone());
            }
            (_, None) => {
                if let Some(r) = self.entries.get_mut(key) {
                    r.deleted = true;
                    r.value.clear();
                }
            }
        }
        self.generation += 1;
        emit
    }

    /// The live (not deleted) record of `key`.
    pub fn live(&self, key: &str) -> Option<&ConfigRecord> {
        self.entries.get(key).filter(|r| !r.deleted)
    }

    /// Every live key.
    pub fn live_entries(&self) -> BTreeMap<String, ConfigRecord> {
        self.entries.iter().filter(|(_, r)| !r.deleted).map(|(k, r)| (k.clone(), r.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::format::Format;

    fn rec(version: u64, deleted: bool) -> ConfigRecord {
        ConfigRecord {
            value: if deleted { String::new() } else { format!("v{version}") },
            format: Format::Text,
            version,
            time_ms: 0,
            author: String::new(),
            comment: String::new(),
            deleted,
            canary: None,
        }
    }

    #[test]
    fn keeps_the_newest() {
        let mut v = NsView::default();
        assert_eq!(v.observe("k", Some(&rec(2, false))), Emit::Updated);
        assert_eq!(v.observe("k", Some(&rec(1, false))), Emit::Ignore);
        assert_eq!(v.live("k").map(|r| r.version), Some(2));
        assert_eq!(v.observe("k", Some(&rec(3, true))), Emit::Deleted);
        assert_eq!(v.live("k"), None);
        assert_eq!(v.observe("k", Some(&rec(2, false))), Emit::Ignore, "no resurrection of an older value");
        assert_eq!(v.observe("k", Some(&rec(4, false))), Emit::Updated);
        assert_eq!(v.observe("k", None), Emit::Deleted);
        assert_eq!(v.live("k"), None);
        assert_eq!(v.entries["k"].version, 4);
        let generation = v.generation;
        assert_eq!(v.observe("k", None), Emit::Ignore);
        assert_eq!(v.generation, generation, "nothing changed");
    }
}
