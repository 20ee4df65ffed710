//! Coordination recipes for applications: locks with fencing tokens, leader election and
//! service discovery on ZooKeeper, a Redis lease lock, a Redis-side fencing guard, and the
//! Redis mirror that shows their state to clients in any language.
//!
//! Every recipe takes a [`zedis_coord::Zk`] session (or a Redis connection) and a
//! `FooOptions` struct; holders learn that they may have lost, or have lost, what they hold
//! through a [`LossSignal`].

pub mod loss;

pub use loss::{Hold, LossSender, LossSignal};
