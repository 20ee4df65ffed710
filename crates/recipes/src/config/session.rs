//! A ZooKeeper session that is replaced when it expires, and that may start without one.
//!
//! `zookeeper-client` keeps a session across reconnects, but once the session has expired (or
//! was closed) its `Client` is dead for good. The config client must also be able to start
//! while ZooKeeper is unreachable (it then serves local snapshots), so the keeper publishes
//! `Option<Session>`: `None` while there is no session, then each new session with a higher
//! `generation`. Watches and the mirror re-read everything when the session changes.

use tokio::sync::watch;
use zedis_coord::{Zk, ZkOptions};

use crate::backoff::connect_retrying;
pub(crate) use crate::backoff::Backoff;

/// One ZooKeeper session and its place in the keeper's succession.
#[derive(Clone, Debug)]
pub struct Session {
    pub zk: Zk,
    /// 0 for the first session, +1 for each later one.
    pub generation: u64,
}

impl Session {
    /// The session is connected now (requests will not just wait for a reconnect).
    pub fn is_connected(&self) -> bool {
        matches!(
            self.zk.state(),
            zedis_coord::SessionState::SyncConnected | zedis_coord::SessionState::ConnectedReadOnly
        )
    }
}

/// Keeps a ZooKeeper session, opening a new one whenever there is none. Cheap to clone; the
/// background task ends when every clone and every subscribed receiver is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Keeper {
    rx: watch::Receiver<Option<Session>>,
}

impl Keeper {
    /// Keeps `first` (or, if `None`, keeps trying to open a session); `options` are used for
    /// every later session. Must be called within a tokio runtime.
    pub(crate) fn start(first: Option<Zk>, options: ZkOptions) -> Keeper {
        let (tx, rx) = watch::channel(first.map(|zk| Session { zk, generation: 0 }));
        tokio::spawn(keep(tx, options));
        Keeper { rx }
    }

    /// The current session, if there is one (it may have expired a moment ago).
    pub(crate) fn current(&self) -> Option<Session> {
        self.rx.borrow().clone()
    }

    /// A receiver that sees each change of session.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Session>> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }
}

/// The keeper task: open a session when there is none, wait for it to end, repeat; until
/// nobody listens any more.
async fn keep(tx: watch::Sender<Option<Session>>, options: ZkOptions) {
    let mut generation = tx.borrow().as_ref().map_or(0, |s| s.generation);
    loop {
        let current = tx.borrow().clone();
        match current {
            Some(session) => {
                let mut states = session.zk.client().state_watcher();
                // `state_watcher()` consumed the current state: look at it before waiting so
                // that an expiry that already happened is not missed.
                let mut state = session.zk.state();
                while !state.is_terminated() {
                    tokio::select! {
                        s = states.changed() => state = s,
                        _ = tx.closed() => return,
                    }
                }
                tracing::warn!(generation, ?state, hosts = %options.hosts, "ZooKeeper session ended; opening a new one");
                generation += 1;
                drop(session);
                if tx.send(None).is_err() {
                    return;
                }
            }
            None => {
                let Some(zk) = connect_retrying(&options, tx.closed()).await else { return };
                let session_id = zk.client().session_id().0;
                tracing::info!(generation, session_id = format_args!("{session_id:#x}"), "ZooKeeper session opened");
                if tx.send(Some(Session { zk, generation })).is_err() {
                    return;
                }
            }
        }
    }
}
