//! [`ZkRwLock`]: a fair ZooKeeper read-write lock with fencing tokens.

use std::sync::Arc;
use std::time::Duration;

use zedis_coord::Zk;

use super::acquire::{holds, reenter, take, LockTarget, Slot};
use super::contender::ContenderKind;
use super::error::LockError;
use super::guard::LockGuard;
use super::options::LockOptions;
use super::state::{lock_state, LockState};

/// A read-write lock named `name`, under `<root>/locks/<name>`: readers share it, a writer
/// holds it alone. FIFO: a reader waits only for the nearest writer queued before it, a
/// writer for its predecessor, so a stream of readers cannot starve a writer. Same
/// guarantees as [`crate::ZkLock`] (no herd, lost-create recovery, no orphans, fencing
/// token, loss signal).
///
/// With [`LockOptions::reentrant`], within this instance: a read or write while holding the
/// same mode shares that hold; a read while holding the write lock shares the write hold (a
/// writer may read); a write while holding only the read lock is refused
/// ([`LockError::UpgradeNotSupported`]) since it would wait for itself.
#[derive(Debug)]
pub struct ZkRwLock {
    target: Arc<LockTarget>,
    read_slot: Slot,
    write_slot: Slot,
}

impl ZkRwLock {
    /// A lock handle; nothing is sent to ZooKeeper until it is taken.
    pub fn new(zk: &Zk, name: &str, options: LockOptions) -> Result<ZkRwLock, LockError> {
        Ok(ZkRwLock {
            target: Arc::new(LockTarget::new(zk, name, options)?),
            read_slot: Slot::default(),
            write_slot: Slot::default(),
        })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// Waits as long as it takes for a read lock.
    ///
    /// # Cancellation safety
    /// Safe: a dropped future leaves no node in the queue.
    pub async fn read(&self) -> Result<LockGuard, LockError> {
        Ok(self.take(ContenderKind::Read, None).await?.expect("no deadline: only ends with the lock"))
    }

    /// Waits as long as it takes for the write lock.
    ///
    /// # Cancellation safety
    /// Safe: a dropped future leaves no node in the queue.
    pub async fn write(&self) -> Result<LockGuard, LockError> {
        Ok(self.take(ContenderKind::Write, None).await?.expect("no deadline: only ends with the lock"))
    }

    /// Waits at most `timeout` for a read lock; `Ok(None)` if it did not come.
    ///
    /// # Cancellation safety
    /// Safe, as [`ZkRwLock::read`].
    pub async fn try_read(&self, timeout: Duration) -> Result<Option<LockGuard>, LockError> {
        self.take(ContenderKind::Read, Some(timeout)).await
    }

    /// Waits at most `timeout` for the write lock; `Ok(None)` if it did not come.
    ///
    /// # Cancellation safety
    /// Safe, as [`ZkRwLock::write`].
    pub async fn try_write(&self, timeout: Duration) -> Result<Option<LockGuard>, LockError> {
        self.take(ContenderKind::Write, Some(timeout)).await
    }

    /// Who holds it and who waits, read from ZooKeeper.
    pub async fn state(&self) -> Result<LockState, LockError> {
        lock_state(&self.target.zk, &self.target.options.root, &self.target.name).await
    }

    async fn take(&self, kind: ContenderKind, timeout: Option<Duration>) -> Result<Option<LockGuard>, LockError> {
        let slot = match kind {
            ContenderKind::Read => &self.read_slot,
            _ => &self.write_slot,
        };
        if self.target.options.reentrant {
            // A writer may read: the write hold covers it.
            if let Some(guard) = reenter(&self.write_slot) {
                return Ok(Some(guard));
            }
            if kind == ContenderKind::Read {
                if let Some(guard) = reenter(&self.read_slot) {
                    return Ok(Some(guard));
                }
            } else if holds(&self.read_slot) {
                return Err(LockError::UpgradeNotSupported { name: self.target.name.clone() });
            }
        }
        take(&self.target, kind, 1, Some(slot), timeout).await
    }
}
