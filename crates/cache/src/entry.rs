//! A cache entry as read by [`Cache::peek`](crate::Cache::peek).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::envelope::Envelope;

/// A stored entry with its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<V> {
    /// The value; `None` for a negative entry (the loader found nothing).
    pub value: Option<V>,
    /// When its load finished.
    pub computed_at: SystemTime,
    /// How long its load took (XFetch's `delta`).
    pub compute_time: Duration,
    /// When it stops being fresh (it is kept a while longer as a stale copy).
    pub expires_at: SystemTime,
}

impl<V> Entry<V> {
    pub(crate) fn from_envelope(envelope: Envelope<V>) -> Entry<V> {
        Entry {
            computed_at: UNIX_EPOCH + Duration::from_millis(envelope.computed_at_ms),
            compute_time: Duration::from_millis(envelope.delta_ms),
            expires_at: UNIX_EPOCH + Duration::from_millis(envelope.expires_at_ms),
            value: envelope.value,
        }
    }

    /// True before its logical expiry.
    pub fn is_fresh(&self) -> bool {
        SystemTime::now() < self.expires_at
    }

    /// True for a cached "not found".
    pub fn is_negative(&self) -> bool {
        self.value.is_none()
    }

    /// How long it was fresh for when written: its TTL after jitter.
    pub fn logical_ttl(&self) -> Duration {
        self.expires_at.duration_since(self.computed_at).unwrap_or_default()
    }
}
