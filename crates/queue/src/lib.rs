//! Queues on Redis Streams: push, consumer groups, pop with a visibility timeout (stuck
//! messages are reclaimed), ack, retries up to a maximum delivery count with a dead-letter
//! stream, and stats; plus a pub/sub topic wrapper that is at-most-once by design.
//!
//! Everything works through the zedis proxy (or against one Redis server): a queue's keys
//! share one hash tag — `zedis:queue:{NAME}` (the stream) and `zedis:queue:{NAME}:dead` (its
//! dead letters) — so the scripts that touch both run on one group.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zedis_queue::QueueError> {
//! use std::collections::BTreeMap;
//! use zedis_queue::{Queue, QueueOptions};
//!
//! let conn = zedis_queue::connect("redis://127.0.0.1:6380").await?;
//! let queue = Queue::open(conn, "emails", QueueOptions::default()).await?;
//! queue.push(b"hello", &BTreeMap::new()).await?;
//! for message in queue.pop("worker-1", 10).await? {
//!     // ... handle it; if this process dies first, another worker gets it after the
//!     // visibility timeout, and after `max_deliveries` attempts it goes to the dead letters.
//!     queue.ack(&[message.id]).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Delivery is at-least-once: a message is acknowledged only by [`Queue::ack`], and one whose
//! consumer goes quiet for longer than the visibility timeout is delivered again (with its
//! delivery count raised), so handlers should be idempotent.

pub mod connect;
pub mod decision;
pub mod error;
pub mod keys;
pub mod message;
pub mod options;
pub mod queue;
mod reply;
mod scripts;
pub mod stats;
pub mod topic;

pub use connect::connect;
pub use decision::{disposition, retry_idle, Disposition};
pub use error::QueueError;
pub use keys::QueueKeys;
pub use message::{DeadLetter, Message};
pub use options::QueueOptions;
pub use queue::Queue;
pub use stats::QueueStats;
pub use topic::{Subscription, Topic};
