//! [`ZkLock`]: a fair, herd-free ZooKeeper mutex with fencing tokens.

use std::sync::Arc;
use std::time::Duration;

use zedis_coord::Zk;

use super::acquire::{reenter, take, LockTarget, Slot};
use super::contender::ContenderKind;
use super::error::LockError;
use super::guard::LockGuard;
use super::options::LockOptions;
use super::state::{lock_state, LockState};

/// A mutex named `name`, under `<root>/locks/<name>`.
///
/// - **Fair**: contenders get the lock in the order they asked (their node's sequence).
/// - **Herd-free**: each waiter watches only its predecessor, so a release wakes one process.
/// - **Safe when a create's reply is lost**: the node name carries a random token, and the
///   contender finds its node again instead of leaving an orphan.
/// - **No orphans**: contender nodes are ephemeral (they go with a crashed process's
///   session), and a timed-out or cancelled acquisition deletes its node.
/// - **Fencing token** on every acquisition, and a **loss signal**: see [`LockGuard`].
/// - **Reentrant** if [`LockOptions::reentrant`]: within this instance, not across
///   instances or processes.
///
/// One instance may be shared by tasks (`Arc<ZkLock>`): without reentrancy each `lock()` is
/// its own contender, so the tasks exclude each other as processes do.
#[derive(Debug)]
pub struct ZkLock {
    target: Arc<LockTarget>,
    slot: Slot,
}

impl ZkLock {
    /// A lock handle; nothing is sent to ZooKeeper until it is taken.
    pub fn new(zk: &Zk, name: &str, options: LockOptions) -> Result<ZkLock, LockError> {
        Ok(ZkLock { target: Arc::new(LockTarget::new(zk, name, options)?), slot: Slot::default() })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The lock's directory in ZooKeeper.
    pub fn dir(&self) -> &str {
        &self.target.dir
    }

    /// Waits as long as it takes for the lock.
    ///
    /// # Cancellation safety
    /// Safe: a dropped future leaves no node in the queue (it is deleted in the background),
    /// so it never blocks the contenders behind it.
    pub async fn lock(&self) -> Result<LockGuard, LockError> {
        if let Some(guard) = self.reentered() {
            return Ok(guard);
        }
        let guard = take(&self.target, ContenderKind::Exclusive, 1, Some(&self.slot), None).await?;
        Ok(guard.expect("an acquisition without a deadline only ends with the lock"))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it did not come, and then our node
    /// is gone from the queue. A zero timeout takes the lock only if it is free now (the
    /// question still goes to ZooKeeper, up to a session timeout if it answers slowly).
    ///
    /// # Cancellation safety
    /// Safe, as [`ZkLock::lock`].
    pub async fn try_lock(&self, timeout: Duration) -> Result<Option<LockGuard>, LockError> {
        if let Some(guard) = self.reentered() {
            return Ok(Some(guard));
        }
        take(&self.target, ContenderKind::Exclusive, 1, Some(&self.slot), Some(timeout)).await
    }

    /// Who holds it and who waits, read from ZooKeeper.
    pub async fn state(&self) -> Result<LockState, LockError> {
        lock_state(&self.target.zk, &self.target.options.root, &self.target.name).await
    }

    fn reentered(&self) -> Option<LockGuard> {
        if self.target.options.reentrant {
            reenter(&self.slot)
        } else {
            None
        }
    }
}
