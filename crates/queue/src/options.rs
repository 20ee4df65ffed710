//! How a queue behaves: consumer group, visibility timeout, retries, trimming, waiting.

use std::time::Duration;

use crate::error::QueueError;

/// Options of a [`crate::Queue`]. They are the client's, not stored in Redis: every process
/// using a queue should use the same group, visibility timeout and maximum deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// Consumer group of the workers (default `workers`). Each message goes to one consumer
    /// of the group.
    pub group: String,
    /// How long a delivered message may stay unacknowledged before another consumer may take
    /// it (default 30 s). Longer than the slowest handler, or the handler must call
    /// [`crate::Queue::extend`].
    pub visibility_timeout: Duration,
    /// Deliveries after which a message that is still not acknowledged goes to the
    /// dead-letter stream instead of being delivered again (default 5).
    pub max_deliveries: u32,
    /// Approximate cap on the stream's length, applied on push (`MAXLEN ~`). When reached,
    /// the oldest entries are dropped *even if not yet delivered or acknowledged*: a bound on
    /// memory, not a back-pressure. `None` (the default) never trims; acknowledged messages
    /// are deleted anyway.
    pub maxlen: Option<usize>,
    /// Approximate cap on the dead-letter stream (default 10 000), oldest dropped first.
    pub dead_maxlen: Option<usize>,
    /// How long [`crate::Queue::pop`] waits for a message when none is ready (default 0: it
    /// returns at once). Waiting holds the connection (`XREADGROUP BLOCK`), so use a
    /// connection of its own for blocking pops, keep this short, and below the connection's
    /// response timeout (see [`crate::connect`]).
    pub block: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            group: "workers".to_string(),
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            maxlen: None,
            dead_maxlen: Some(10_000),
            block: Duration::ZERO,
        }
    }
}

impl QueueOptions {
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |s: &str| Err(QueueError::BadOptions(s.to_string()));
        if self.group.is_empty() || !self.group.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("group must be a non-empty printable name without spaces");
        }
        if self.visibility_timeout < Duration::from_millis(1) {
            return bad("visibility_timeout must be at least 1 ms");
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries must be at least 1");
        }
        if self.maxlen == Some(0) || self.dead_maxlen == Some(0) {
            return bad("maxlen and dead_maxlen must be positive (or None for no cap)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_options_are_refused() {
        QueueOptions::default().validate().unwrap();
        let table: Vec<(QueueOptions, &str)> = vec![
            (QueueOptions { group: String::new(), ..Default::default() }, "group"),
            (QueueOptions { group: "a b".into(), ..Default::default() }, "group"),
            (QueueOptions { visibility_timeout: Duration::ZERO, ..Default::default() }, "visibility_timeout"),
            (QueueOptions { max_deliveries: 0, ..Default::default() }, "max_deliveries"),
            (QueueOptions { maxlen: Some(0), ..Default::default() }, "maxlen"),
        ];
        for (o, needle) in table {
            let err = o.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{o:?}: {err}");
        }
    }
}
