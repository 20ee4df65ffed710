//! Leader election for applications, on ZooKeeper.
//!
//! Each participant holds an ephemeral sequential node under `<root>/elections/<name>/`
//! (`c-<token>-<seq>`, JSON: id, data, when it joined, since when it leads); the lowest
//! sequence leads and every other candidate watches only its predecessor. Two styles:
//!
//! - latch: [`LeaderLatch::start`], then [`LeaderLatch::await_leadership`] /
//!   [`LeaderLatch::is_leader`], and [`LeaderLatch::resign`];
//! - selector: [`LeaderSelector::run`] calls a closure for each term.
//!
//! Every term carries a [`Leadership`]: its **epoch**, the czxid of the candidate node, which
//! is greater for every later leader (a fencing token for what the leader writes), and a
//! [`crate::LossSignal`] that goes `MayBeLost` when the connection to ZooKeeper stays suspended
//! longer than the grace and `Lost` when the term is over. The grace is below the time
//! ZooKeeper needs to expire the session and elect someone else, so two processes never both
//! believe they lead (see [`ElectionOptions::suspend_grace`]); the decision is the pure
//! [`verdict::decide`].
//!
//! Anyone can follow the leader with [`observe`] or read it with [`current_leader`].

mod campaign;
mod error;
mod latch;
mod leadership;
mod observer;
mod options;
mod record;
mod selector;
pub mod verdict;

pub use error::{ElectionError, EndReason};
pub use latch::LeaderLatch;
pub use leadership::Leadership;
pub use observer::{current_leader, observe};
pub use options::{default_id, election_dir, ElectionOptions, DEFAULT_ROOT, MAX_DATA_BYTES};
pub use record::LeaderInfo;
pub use selector::LeaderSelector;
