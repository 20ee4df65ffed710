//! When this router last heard from ZooKeeper in its session. A router out of touch for its
//! session timeout may have lost the session without knowing it (a partition, a process
//! stopped and resumed): the controller then stops waiting for it and may move slots, so the
//! router must stop serving data. ZooKeeper expires a session a timeout after *it* last heard
//! from the router, and the controller waits one more timeout after the registration vanished
//! before it moves keys; stopping a timeout after *our* last contact keeps a timeout's margin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct ZkContact {
    base: Instant,
    /// Milliseconds after `base` of the last successful exchange with ZooKeeper.
    last_ms: AtomicU64,
    /// How long without contact before the router stops serving; 0: not tracked yet.
    limit_ms: AtomicU64,
}

impl Default for ZkContact {
    fn default() -> Self {
        ZkContact { base: Instant::now(), last_ms: AtomicU64::new(0), limit_ms: AtomicU64::new(0) }
    }
}

impl ZkContact {
    /// Starts tracking with this session timeout.
    pub fn track(&self, session_timeout: Duration) {
        self.touch();
        self.limit_ms.store(session_timeout.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether the router is out of touch at `now`.
    pub fn is_stale(&self, now: Instant) -> bool {
        let now_ms = now.saturating_duration_since(self.base).as_millis() as u64;
        stale(self.last_ms.load(Ordering::Relaxed), now_ms, self.limit_ms.load(Ordering::Relaxed))
    }
}

/// Out of touch: tracked (`limit_ms > 0`) and silent for longer than `limit_ms`.
pub fn stale(last_ms: u64, now_ms: u64, limit_ms: u64) -> bool {
    limit_ms > 0 && now_ms.saturating_sub(last_ms) > limit_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let table: &[(u64, u64, u64, bool)] = &[
            (0, 100_000, 0, false),    // not tracked yet
            (1000, 6000, 6000, false), // 5 s silent, 6 s allowed
            (1000, 7001, 6000, true),
            (5000, 4000, 6000, false), // contact recorded after `now` was read
        ];
        for &(last, now, limit, want) in table {
            assert_eq!(stale(last, now, limit), want, "{last} {now} {limit}");
        }
    }
}
