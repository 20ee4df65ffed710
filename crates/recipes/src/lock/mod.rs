//! Locks on ZooKeeper with fencing tokens: a mutex ([`ZkLock`]), a read-write lock
//! ([`ZkRwLock`]) and a counting semaphore ([`ZkSemaphore`]), their state for `zedis lock
//! list` ([`lock_state`], [`list_locks`]) and a Redis mirror of it ([`mirror`]).
//!
//! # Layout
//!
//! ```text
//! <root>/locks/<name>                          container node (ZooKeeper deletes it when empty)
//! <root>/locks/<name>/<kind>-<token>-<seq>     one contender: ephemeral sequential, JSON data
//!                                              {"owner", "host", "pid", "queued_ms", "acquired_ms"?, "permits"?}
//! ```
//! `kind` is `lock`, `read`, `write` or `permit`; `token` is random per attempt (to find the
//! node again when a create's reply is lost); `seq` orders the queue.
//!
//! # Guarantees
//!
//! - Fair (FIFO by sequence) and herd-free (a waiter watches only the nodes it waits for).
//! - The fencing token of an acquisition is its node's `czxid`: ZooKeeper's zxids strictly
//!   increase, across sessions, server restarts and re-creations of the lock's directory,
//!   so each holder's token is greater than every earlier holder's.
//! - A guard's loss signal goes `MayBeLost` while the connection is suspended and `Lost`
//!   when the session expires or closes, when the node is deleted, or on release.
//! - No orphan nodes: ephemeral nodes go with a dead process's session; a timed-out,
//!   failed or cancelled acquisition deletes its node.
//!
//! ```no_run
//! # async fn example(zk: zedis_coord::Zk) -> Result<(), zedis_recipes::lock::LockError> {
//! use zedis_recipes::lock::{LockOptions, ZkLock};
//!
//! let lock = ZkLock::new(&zk, "nightly-report", LockOptions::default())?;
//! let mut guard = lock.lock().await?;
//! let mut loss = guard.loss();
//! tokio::select! {
//!     _ = write_report(guard.token()) => {}
//!     _ = loss.may_be_lost() => { /* stop touching the resource */ }
//! }
//! guard.release().await?;
//! # Ok(()) }
//! # async fn write_report(_token: u64) {}
//! ```

pub mod contender;
pub mod error;
pub mod mirror;
pub mod options;
pub mod state;

mod acquire;
mod guard;
mod mutex;
mod rw_lock;
mod semaphore;

pub use contender::{ContenderKind, ContenderRecord};
pub use error::LockError;
pub use guard::{LockGuard, LossReason};
pub use mirror::mirror_key;
pub use mutex::ZkLock;
pub use options::LockOptions;
pub use rw_lock::ZkRwLock;
pub use semaphore::ZkSemaphore;
pub use state::{list_locks, lock_state, ContenderState, LockState};
