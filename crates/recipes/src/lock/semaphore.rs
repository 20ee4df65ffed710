//! [`ZkSemaphore`]: a fair counting semaphore on ZooKeeper.

use std::sync::Arc;
use std::time::Duration;

use zedis_coord::Zk;

use super::acquire::{take, LockTarget};
use super::contender::ContenderKind;
use super::error::LockError;
use super::guard::LockGuard;
use super::options::LockOptions;
use super::state::{lock_state, LockState};

/// A counting semaphore named `name` with `permits` permits, under `<root>/locks/<name>`: a
/// contender holds a permit while it is one of the first `permits` contenders in the queue.
///
/// FIFO and herd-free: the first waiter watches the holders (any of them leaving frees its
/// permit); every later waiter watches only the waiter before it, which marks its node when
/// it moves up to a permit. Each permit carries its own fencing token and loss signal (see
/// [`LockGuard`]); no orphans, lost-create recovery, as [`crate::ZkLock`].
///
/// Every client of one semaphore must use the same number of permits: each decides from its
/// own. (The number is recorded in each contender node, so `zedis lock list` shows it.)
/// [`LockOptions::reentrant`] is ignored: every `acquire` takes one more permit.
#[derive(Debug)]
pub struct ZkSemaphore {
    target: Arc<LockTarget>,
    permits: u32,
}

impl ZkSemaphore {
    /// A semaphore handle; `permits` below one counts as one. Nothing is sent to ZooKeeper
    /// until a permit is taken.
    pub fn new(zk: &Zk, name: &str, permits: u32, options: LockOptions) -> Result<ZkSemaphore, LockError> {
        Ok(ZkSemaphore { target: Arc::new(LockTarget::new(zk, name, options)?), permits: permits.max(1) })
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The number of permits.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// Waits as long as it takes for a permit.
    ///
    /// # Cancellation safety
    /// Safe: a dropped future leaves no node in the queue.
    pub async fn acquire(&self) -> Result<LockGuard, LockError> {
        let guard = take(&self.target, ContenderKind::Permit, self.permits, None, None).await?;
        Ok(guard.expect("an acquisition without a deadline only ends with a permit"))
    }

    /// Waits at most `timeout` for a permit; `Ok(None)` if none came.
    ///
    /// # Cancellation safety
    /// Safe, as [`ZkSemaphore::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<LockGuard>, LockError> {
        take(&self.target, ContenderKind::Permit, self.permits, None, Some(timeout)).await
    }

    /// Who holds permits and who waits, read from ZooKeeper.
    pub async fn state(&self) -> Result<LockState, LockError> {
        lock_state(&self.target.zk, &self.target.options.root, &self.target.name).await
    }
}
