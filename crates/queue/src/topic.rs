//! A pub/sub topic: **at-most-once**. A message reaches only the subscribers connected at
//! the moment it is published; a subscriber that is down, reconnecting or not yet
//! subscribed misses it for good, and nothing is stored. Use a [`crate::Queue`] when every
//! message must be handled.

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, PubSubStream};
use redis::Value;

use crate::error::QueueError;
use crate::keys::check_name;
use crate::reply;

/// A named channel, `zedis:topic:NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    name: String,
    channel: String,
}

impl Topic {
    pub fn new(name: &str) -> Result<Topic, QueueError> {
        check_name(name)?;
        Ok(Topic { name: name.to_string(), channel: format!("zedis:topic:{name}") })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis channel, for subscribers in other languages.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Publishes `payload`; returns how many subscribers received it (0: it is gone).
    ///
    /// # Cancellation safety
    ///
    /// Not cancel-safe: once sent, the message may have been delivered.
    pub async fn publish<C: ConnectionLike + Send>(&self, conn: &mut C, payload: &[u8]) -> Result<u64, QueueError> {
        let reply: Value = redis::cmd("PUBLISH").arg(&self.channel).arg(payload).query_async(conn).await?;
        let receivers = reply::int(&reply)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| QueueError::reply("PUBLISH", format!("not a count: {reply:?}")))?;
        tracing::debug!(topic = %self.name, receivers, bytes = payload.len(), "published");
        Ok(receivers)
    }

    /// Subscribes on a connection of its own; messages published after this returns are
    /// received (while the connection lasts).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: dropping the future drops the connection.
    pub async fn subscribe(&self, client: &redis::Client) -> Result<Subscription, QueueError> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(Subscription { topic: self.name.clone(), stream: pubsub.into_on_message() })
    }
}

/// Messages of one topic, from the moment of subscribing.
pub struct Subscription {
    topic: String,
    stream: PubSubStream,
}

impl Subscription {
    /// The next message's payload; `None` once the connection is closed (messages published
    /// meanwhile are lost: subscribe again).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: a message not yet returned stays queued for the next call.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        let msg = self.stream.next().await;
        if msg.is_none() {
            tracing::debug!(topic = %self.topic, "subscription closed");
        }
        msg.map(|m| m.get_payload_bytes().to_vec())
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("topic", &self.topic).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert_eq!(Topic::new("prices").unwrap().channel(), "zedis:topic:prices");
        assert!(Topic::new("a b").is_err());
    }
}
