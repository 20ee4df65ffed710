//! In-process single flight: concurrent callers for one key share one trip to Redis (and at
//! most one load). The first caller leads; the others follow and get the leader's outcome.
//!
//! The outcome is shared as the stored JSON bytes, not as a typed value: callers of one key
//! may ask for different Rust types, and each decodes for itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

/// What the leader ended with.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The entry (an envelope as stored), fresh or stale as the leader chose to serve it.
    Done(Bytes),
    /// The load failed; the loader's error as text.
    Failed(Arc<str>),
}

type Slot = watch::Receiver<Option<Outcome>>;

/// The flights running now, by Redis key.
#[derive(Default)]
pub(crate) struct Inflight {
    map: Mutex<HashMap<String, Slot>>,
}

/// The result of joining a flight.
pub(crate) enum Join<'a> {
    /// This caller leads: it must do the work and [`Leader::finish`].
    Leader(Leader<'a>),
    /// Another caller leads: wait with [`follow`].
    Follower(Slot),
}

/// Held by the leading caller. Dropping it without finishing (the caller was cancelled or
/// panicked) ends the flight with no outcome: followers then start over, one of them leading.
pub(crate) struct Leader<'a> {
    inflight: &'a Inflight,
    key: String,
    tx: watch::Sender<Option<Outcome>>,
}

impl Inflight {
    pub fn join(&self, key: &str) -> Join<'_> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_string(), rx);
        Join::Leader(Leader { inflight: self, key: key.to_string(), tx })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Leader<'_> {
    pub fn finish(self, outcome: Outcome) {
        // No receiver left is fine: nobody followed.
        let _ = self.tx.send(Some(outcome));
        // Drop removes the entry.
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Only the leader removes its key, and there is one leader per key at a time, so the
        // entry is ours.
        self.inflight.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// Waits for the leader. `None` if it gave up without an outcome (then join again).
///
/// # Cancellation safety
/// Cancel-safe: a follower holds nothing but a receiver.
pub(crate) async fn follow(mut slot: Slot) -> Option<Outcome> {
    match slot.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let inflight = Inflight::default();
        let Join::Leader(leader) = inflight.join("k") else { panic!("first caller leads") };
        let Join::Follower(a) = inflight.join("k") else { panic!("second follows") };
        let Join::Follower(b) = inflight.join("k") else { panic!("third follows") };
        let other = inflight.join("other");
        assert!(matches!(other, Join::Leader(_)), "keys are independent");
        drop(other);
        leader.finish(Outcome::Done(Bytes::from_static(b"v")));
        assert_eq!(inflight.len(), 0);
        for slot in [a, b] {
            match follow(slot).await {
                Some(Outcome::Done(bytes)) => assert_eq!(bytes, Bytes::from_static(b"v")),
                other => panic!("got {other:?}"),
            }
        }
        assert!(matches!(inflight.join("k"), Join::Leader(_)), "a finished flight is gone");
    }

    #[tokio::test]
    async fn an_abandoned_flight_releases_followers() {
        let inflight = Inflight::default();
        let Join::Leader(leader) = inflight.join("k") else { panic!("leads") };
        let Join::Follower(slot) = inflight.join("k") else { panic!("follows") };
        drop(leader);
        assert!(follow(slot).await.is_none());
        assert!(matches!(inflight.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn failures_are_shared() {
        let inflight = Inflight::default();
        let Join::Leader(leader) = inflight.join("k") else { panic!("leads") };
        let Join::Follower(slot) = inflight.join("k") else { panic!("follows") };
        leader.finish(Outcome::Failed(Arc::from("db down")));
        assert!(matches!(follow(slot).await, Some(Outcome::Failed(m)) if &*m == "db down"));
    }
}
