//! Options shared by every lock recipe.

use redis::aio::ConnectionManager;
use zedis_coord::paths::{check_name, check_root};

use super::error::LockError;

/// Options of [`crate::ZkLock`], [`crate::ZkRwLock`] and [`crate::ZkSemaphore`].
#[derive(Clone)]
pub struct LockOptions {
    /// zedis's root in ZooKeeper; a lock named `N` lives under `<root>/locks/N`.
    pub root: String,
    /// Reentrant: taking the lock again through the same instance while it holds it returns
    /// another guard on the same hold (same node, same token) instead of queueing behind
    /// itself. The node goes when the last of these guards is released. Semaphores ignore it.
    pub reentrant: bool,
    /// Who holds, as shown by `zedis lock list` and the Redis mirror. Default `host:pid`.
    pub owner: String,
    /// Mirror exclusive holds (mutex, write lock) into Redis, hash `zedis:locks:<name>`; see
    /// [`crate::lock::mirror`]. Best effort: a mirror failure never fails the lock.
    pub mirror: Option<ConnectionManager>,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            root: "/zedis".to_string(),
            reentrant: false,
            owner: format!("{}:{}", host_name(), std::process::id()),
            mirror: None,
        }
    }
}

impl std::fmt::Debug for LockOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockOptions")
            .field("root", &self.root)
            .field("reentrant", &self.reentrant)
            .field("owner", &self.owner)
            .field("mirror", &self.mirror.is_some())
            .finish()
    }
}

/// The directory of every lock: `<root>/locks`.
pub fn locks_dir(root: &str) -> Result<String, LockError> {
    Ok(format!("{}/locks", check_root(root)?))
}

/// The directory of lock `name`: `<root>/locks/<name>`.
pub fn lock_dir(root: &str, name: &str) -> Result<String, LockError> {
    check_name("lock", name)?;
    Ok(format!("{}/{name}", locks_dir(root)?))
}

/// This machine's host name (for the contender record), `localhost` if unknown.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(lock_dir("/zedis", "jobs").expect("valid"), "/zedis/locks/jobs");
        assert_eq!(lock_dir("/", "jobs").expect("valid"), "/locks/jobs");
        assert_eq!(lock_dir("/a/b/", "x.y").expect("valid"), "/a/b/locks/x.y");
        assert!(matches!(lock_dir("/zedis", "a/b"), Err(LockError::BadName(_))));
        assert!(matches!(lock_dir("zedis", "a"), Err(LockError::BadName(_))));
        assert!(LockOptions::default().owner.contains(':'));
    }
}
