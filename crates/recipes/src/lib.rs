//! Coordination recipes for applications: locks with fencing tokens, leader election,
//! service discovery and a configuration center on ZooKeeper, a Redis lease lock, a
//! Redis-side fencing guard, and the Redis mirrors that show their state to clients in any
//! language.
//!
//! Every recipe takes a [`zedis_coord::Zk`] session (or a Redis connection) and a
//! `FooOptions` struct; holders learn that they may have lost, or have lost, what they hold
//! through a [`LossSignal`].

mod backoff;
pub mod config;
pub mod discovery;
pub mod fenced_resource;
pub mod leader;
pub mod lease_lock;
pub mod lock;
pub mod loss;
mod zk_watch;

pub use config::{
    ConfigClient, ConfigError, ConfigEvent, ConfigMirror, ConfigOptions, ConfigRecord, ConfigValue, ConfigWatch,
    MirrorTarget, PublishOptions,
};
pub use discovery::{
    Discovery, DiscoveryError, DiscoveryOptions, MirrorOptions, Picker, PickerOptions, Registration, ServiceCache,
    ServiceInstance, ServiceMirror, Strategy,
};
pub use fenced_resource::{FenceError, FencedResource};
pub use leader::{
    current_leader, observe, ElectionError, ElectionOptions, EndReason, LeaderInfo, LeaderLatch, LeaderSelector,
    Leadership,
};
pub use lease_lock::{LeaseGuard, LeaseLockError, LeaseLockOptions, RedisLeaseLock};
pub use lock::{
    list_locks, lock_state, LockError, LockGuard, LockOptions, LockState, LossReason, ZkLock, ZkRwLock, ZkSemaphore,
};
pub use loss::{Hold, LossSender, LossSignal};
