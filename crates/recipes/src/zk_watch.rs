//! Helpers for ZooKeeper persistent watches shared by the recipes that follow a subtree
//! (the config watch and mirror, the service cache and mirror).

use std::time::Duration;

use zookeeper_client::{AddWatchMode, Client, Error, PersistentWatcher};

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
