//! A ZooKeeper session that is replaced when it expires.
//!
//! `zookeeper-client` keeps a session across reconnects, but once the session has expired (or
//! was closed) its `Client` is dead for good and a new one must be built. Registrations,
//! caches and the mirror all need "the current session", so one keeper task owns the
//! `ZkOptions`, watches the session's state and publishes a fresh [`Session`] (with a higher
//! `generation`) after each expiry. Users re-do their session-bound work (ephemeral nodes,
//! watches) when the generation changes.

use tokio::sync::watch;
use zedis_coord::{Zk, ZkOptions};

use super::error::Result;
use crate::backoff::connect_retrying;

/// One ZooKeeper session and its place in the keeper's succession.
#[derive(Clone, Debug)]
pub struct Session {
    pub zk: Zk,
    /// 0 for the first session, +1 for each replacement.
    pub generation: u64,
}

/// Keeps a live ZooKeeper session, replacing it after expiry. Cheap to clone; the background
/// task ends (and the last session closes) when every clone and every receiver from
/// [`SessionKeeper::subscribe`] is dropped.
#[derive(Clone, Debug)]
pub struct SessionKeeper {
    rx: watch::Receiver<Session>,
    options: ZkOptions,
}

impl SessionKeeper {
    /// Opens the first session (failing like [`Zk::connect`] if ZooKeeper cannot be reached)
    /// and starts keeping it. Must be called within a tokio runtime.
    pub async fn connect(options: ZkOptions) -> Result<SessionKeeper> {
        let zk = Zk::connect(&options).await?;
        Ok(SessionKeeper::with_session(zk, options))
    }

    /// Keeps an already open session; `options` are used for its replacements. Must be called
    /// within a tokio runtime.
    pub fn with_session(zk: Zk, options: ZkOptions) -> SessionKeeper {
        let (tx, rx) = watch::channel(Session { zk, generation: 0 });
        tokio::spawn(keep(tx, options.clone()));
        SessionKeeper { rx, options }
    }

    /// The current session (it may have expired a moment ago; its replacement follows).
    pub fn current(&self) -> Session {
        self.rx.borrow().clone()
    }

    /// The current session's [`Zk`].
    pub fn zk(&self) -> Zk {
        self.rx.borrow().zk.clone()
    }

    /// A receiver that sees each new session; `changed()` resolves on a replacement.
    pub fn subscribe(&self) -> watch::Receiver<Session> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }

    pub fn options(&self) -> &ZkOptions {
        &self.options
    }
}

/// The keeper task: wait for the session to end, open the next one, publish it; until nobody
/// listens any more.
async fn keep(tx: watch::Sender<Session>, options: ZkOptions) {
    loop {
        let session = tx.borrow().clone();
        let mut states = session.zk.client().state_watcher();
        // `state_watcher()` consumed the current state; look at it before waiting for changes
        // so an expiry that already happened is not missed.
        let mut state = session.zk.state();
        while !state.is_terminated() {
            tokio::select! {
                s = states.changed() => state = s,
                _ = tx.closed() => return,
            }
        }
        let generation = session.generation;
        drop(session);
        tracing::warn!(generation, ?state, hosts = %options.hosts, "ZooKeeper session ended; opening a new one");
        let Some(zk) = connect_retrying(&options, tx.closed()).await else { return };
        let session_id = zk.client().session_id().0;
        if tx.send(Session { zk, generation: generation + 1 }).is_err() {
            return;
        }
        tracing::info!(
            generation = generation + 1,
            session_id = format_args!("{session_id:#x}"),
            "new ZooKeeper session"
        );
    }
}
