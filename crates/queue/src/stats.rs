//! What `Queue::stats` reports, and how it is derived from the raw replies. The derivation
//! is pure.

use serde::Serialize;

use crate::reply::{GroupInfo, Pending};

/// A queue at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub group: String,
    /// Entries in the stream: waiting plus delivered-but-unacknowledged (acknowledged
    /// messages are deleted).
    pub length: u64,
    /// Delivered and not acknowledged yet.
    pub pending: u64,
    /// Not delivered yet.
    pub waiting: u64,
    /// Consumers the group knows (ever seen, until removed).
    pub consumers: u64,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// The oldest pending message: its id, how long since it was last delivered, and its
    /// delivery count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_idle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_deliveries: Option<u64>,
    /// Last id handed out to the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered_id: Option<String>,
    /// False when the stream or its group is missing (deleted, or data lost); the next pop
    /// recreates it.
    pub group_exists: bool,
}

/// The replies `stats` gathers.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawStats {
    pub length: u64,
    pub dead_length: u64,
    pub group: Option<GroupInfo>,
    pub oldest: Option<Pending>,
}

impl QueueStats {
    pub(crate) fn derive(queue: &str, group: &str, raw: RawStats) -> QueueStats {
        let (pending, consumers, lag, last) = match &raw.group {
            Some(g) => (g.pending, g.consumers, g.lag, Some(g.last_delivered_id.clone()).filter(|s| !s.is_empty())),
            None => (0, 0, Some(raw.length), None),
        };
        // Redis cannot always count the lag (after deletions inside the range); with acked
        // messages deleted, whatever is in the stream and not pending is waiting.
        let waiting = lag.unwrap_or_else(|| raw.length.saturating_sub(pending));
        QueueStats {
            queue: queue.to_string(),
            group: group.to_string(),
            length: raw.length,
            pending,
            waiting,
            consumers,
            dead_letters: raw.dead_length,
            oldest_pending_id: raw.oldest.as_ref().map(|p| p.id.clone()),
            oldest_pending_idle_ms: raw.oldest.as_ref().map(|p| p.idle_ms),
            oldest_pending_deliveries: raw.oldest.as_ref().map(|p| p.deliveries),
            last_delivered_id: last,
            group_exists: raw.group.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pending: u64, lag: Option<u64>) -> Option<GroupInfo> {
        Some(GroupInfo { consumers: 2, pending, lag, last_delivered_id: "9-0".into() })
    }

    #[test]
    fn derivation() {
        // (name, raw, want pending, want waiting, want group_exists)
        let table: Vec<(&str, RawStats, u64, u64, bool)> = vec![
            ("empty queue", RawStats { group: group(0, Some(0)), ..Default::default() }, 0, 0, true),
            (
                "lag from Redis wins",
                RawStats { length: 10, group: group(3, Some(7)), ..Default::default() },
                3,
                7,
                true,
            ),
            (
                "lag unknown: length minus pending",
                RawStats { length: 10, group: group(4, None), ..Default::default() },
                4,
                6,
                true,
            ),
            (
                "pending above length (entries trimmed): no underflow",
                RawStats { length: 1, group: group(4, None), ..Default::default() },
                4,
                0,
                true,
            ),
            ("no group yet: everything waits", RawStats { length: 5, ..Default::default() }, 0, 5, false),
        ];
        for (name, raw, pending, waiting, exists) in table {
            let s = QueueStats::derive("q", "workers", raw);
            assert_eq!((s.pending, s.waiting, s.group_exists), (pending, waiting, exists), "{name}");
        }
        let oldest = Pending { id: "1-0".into(), consumer: "c".into(), idle_ms: 1500, deliveries: 2 };
        let s = QueueStats::derive(
            "q",
            "workers",
            RawStats { length: 1, dead_length: 3, group: group(1, Some(0)), oldest: Some(oldest) },
        );
        assert_eq!(s.oldest_pending_idle_ms, Some(1500));
        assert_eq!(s.oldest_pending_deliveries, Some(2));
        assert_eq!(s.dead_letters, 3);
        assert_eq!(s.consumers, 2);
        assert_eq!(s.last_delivered_id.as_deref(), Some("9-0"));
    }
}
