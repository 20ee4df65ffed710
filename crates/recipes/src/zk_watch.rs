//! Helpers for ZooKeeper persistent watches shared by the recipes that follow a subtree
//! (the config watch and mirror, the service cache and mirror).

use std::time::Duration;

use zookeeper_client::{AddWatchMode, Client, Error, PersistentWatcher, SessionState, WatchedEvent};

/// Most events taken in one go after a first one, before the follower acts on them.
const EVENT_BATCH: usize = 1024;

/// Passes `first`, then every event already waiting on `watcher` (at most [`EVENT_BATCH`]),
/// to `note`, so a burst of changes is acted on once. False as soon as `note` says the
/// session is over (the watcher must not be polled again).
pub(crate) async fn take_ready(
    watcher: &mut PersistentWatcher,
    first: WatchedEvent,
    mut note: impl FnMut(WatchedEvent) -> bool,
) -> bool {
    if !note(first) {
        return false;
    }
    for _ in 0..EVENT_BATCH {
        tokio::select! {
            biased;
            event = watcher.changed() => if !note(event) {
                return false;
            },
            () = std::future::ready(()) => break,
        }
    }
    true
}

/// What a session event on a persistent watcher means to a follower of a subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionTurn {
    /// Disconnected: what it shows may be stale until it resumes.
    Suspended,
    /// Connected again in the same session: events during the gap may be lost
    /// (ZOOKEEPER-4698) and the watch must be added again ([`rewatch`]), then everything read
    /// again.
    Resumed,
    /// The session is over (expired, closed, auth failed): the watcher must not be polled
    /// again.
    Ended,
}

pub(crate) fn session_turn(state: SessionState) -> SessionTurn {
    match state {
        SessionState::Disconnected => SessionTurn::Suspended,
        SessionState::SyncConnected | SessionState::ConnectedReadOnly => SessionTurn::Resumed,
        SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => SessionTurn::Ended,
    }
}

/// Longest [`rewatch`] waits for ZooKeeper's answer before reporting a connection loss.
const REWATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds the persistent recursive watch on `path` again and replaces `watcher` with the new one.
/// Call it after every reconnect within a session (a `SyncConnected` event on `watcher`), before
/// reading what the watch covers; until it succeeds, events under `path` may not arrive.
///
/// Why: zookeeper-client 0.11.2 does not re-register persistent watches when it reconnects
/// within a session (its `resend_watches` sends `SetWatches` without the persistent lists:
/// `index = index.max(index)` instead of `index.max(i)`), so the server forgets them and no
/// more events arrive. The new watcher is added before the old one is dropped, so the client
/// never asks the server to remove the watch. Harmless once the client is fixed: adding a
/// watch that exists changes nothing on the server.
pub(crate) async fn rewatch(client: &Client, path: &str, watcher: &mut PersistentWatcher) -> Result<(), Error> {
    let fresh = tokio::time::timeout(REWATCH_TIMEOUT, client.watch(path, AddWatchMode::PersistentRecursive))
        .await
        .map_err(|_| Error::ConnectionLoss)??;
    *watcher = fresh;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_turns() {
        let table = [
            (SessionState::Disconnected, SessionTurn::Suspended),
            (SessionState::SyncConnected, SessionTurn::Resumed),
            (SessionState::ConnectedReadOnly, SessionTurn::Resumed),
            (SessionState::Expired, SessionTurn::Ended),
            (SessionState::Closed, SessionTurn::Ended),
            (SessionState::AuthFailed, SessionTurn::Ended),
        ];
        for (state, want) in table {
            assert_eq!(session_turn(state), want, "{state:?}");
        }
    }
}
