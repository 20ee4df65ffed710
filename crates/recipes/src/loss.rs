//! The "you may have lost it" signal every holder (lock, leadership, lease) carries.
//!
//! A ZooKeeper hold is tied to the session that created its ephemeral node. While the
//! connection is suspended the node may already be gone (the session may expire on the
//! server before we hear of it): the hold *may be lost*. When the session expires or is
//! closed it *is lost*, for good. A reconnect within the session timeout restores the hold.

use tokio::sync::watch;
use zookeeper_client::SessionState;

/// What a holder can assume about its hold right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Held: the session is connected.
    Held,
    /// The connection is suspended: another process may hold it already. Stop touching
    /// the protected resource until it is back to `Held`.
    MayBeLost,
    /// Lost for good (session expired or closed, lease not renewed, released).
    Lost,
}

/// The pure transition: how a session state changes a hold. `Lost` is terminal.
pub fn next_hold(current: Hold, session: SessionState) -> Hold {
    match (current, session) {
        (Hold::Lost, _) => Hold::Lost,
        (_, SessionState::SyncConnected | SessionState::ConnectedReadOnly) => Hold::Held,
        (_, SessionState::Disconnected) => Hold::MayBeLost,
        (_, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) => Hold::Lost,
    }
}

/// A receiver of hold changes. Cheap to clone; every clone sees every change.
#[derive(Clone, Debug)]
pub struct LossSignal {
    rx: watch::Receiver<Hold>,
}

/// The sending side, kept by whoever tracks the hold.
#[derive(Debug)]
pub struct LossSender {
    tx: watch::Sender<Hold>,
}

impl LossSignal {
    /// A new signal starting at `Held`, and its sender.
    pub fn new() -> (LossSender, LossSignal) {
        let (tx, rx) = watch::channel(Hold::Held);
        (LossSender { tx }, LossSignal { rx })
    }

    /// The hold now.
    pub fn hold(&self) -> Hold {
        *self.rx.borrow()
    }

    /// Whether the holder may still act on the resource (`Held`).
    pub fn is_held(&self) -> bool {
        self.hold() == Hold::Held
    }

    /// Resolves once the hold is not `Held` (may be lost, or lost); returns which.
    ///
    /// # Cancellation safety
    /// Safe to drop and call again: it re-reads the current hold first.
    pub async fn may_be_lost(&mut self) -> Hold {
        match self.rx.wait_for(|h| *h != Hold::Held).await {
            Ok(h) => *h,
            // The tracker is gone: nobody vouches for the hold any more.
            Err(_) => Hold::Lost,
        }
    }

    /// Resolves once the hold is lost for good.
    ///
    /// # Cancellation safety
    /// Safe to drop and call again.
    pub async fn lost(&mut self) {
        let _ = self.rx.wait_for(|h| *h == Hold::Lost).await;
    }
}

impl LossSender {
    /// Moves the hold along [`next_hold`] for a session state; returns the new hold.
    pub fn session_state(&self, state: SessionState) -> Hold {
        let mut out = Hold::Lost;
        self.tx.send_modify(|h| {
            *h = next_hold(*h, state);
            out = *h;
        });
        out
    }

    /// Sets the hold directly (e.g. `Lost` on release or when a lease renewal fails).
    pub fn set(&self, hold: Hold) {
        self.tx.send_modify(|h| {
            if *h != Hold::Lost {
                *h = hold;
            }
        });
    }

    pub fn hold(&self) -> Hold {
        *self.tx.borrow()
    }

    /// Whether every [`LossSignal`] was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Follows a ZooKeeper session's state into `sender` until the hold is lost or every signal
/// is dropped. Spawn it next to the hold.
pub async fn track_session(zk: &zedis_coord::Zk, sender: LossSender) {
    let mut states = zk.client().state_watcher();
    sender.session_state(zk.state());
    loop {
        if sender.hold() == Hold::Lost {
            return;
        }
        tokio::select! {
            state = states.changed() => {
                sender.session_state(state);
            }
            _ = sender.tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use Hold::*;
        use SessionState as S;
        let table: &[(Hold, SessionState, Hold)] = &[
            (Held, S::Disconnected, MayBeLost),
            (MayBeLost, S::SyncConnected, Held),
            (MayBeLost, S::Expired, Lost),
            (Held, S::Closed, Lost),
            (Held, S::AuthFailed, Lost),
            (Lost, S::SyncConnected, Lost),
            (Held, S::ConnectedReadOnly, Held),
        ];
        for (from, state, want) in table {
            assert_eq!(next_hold(*from, *state), *want, "{from:?} + {state:?}");
        }
    }

    #[tokio::test]
    async fn signal_resolves_on_change() {
        let (tx, mut rx) = LossSignal::new();
        assert!(rx.is_held());
        tx.session_state(SessionState::Disconnected);
        assert_eq!(rx.may_be_lost().await, Hold::MayBeLost);
        tx.set(Hold::Lost);
        rx.lost().await;
        tx.set(Hold::Held);
        assert_eq!(rx.hold(), Hold::Lost, "lost is terminal");
    }
}
