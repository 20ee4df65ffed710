//! The task that keeps a near cache subscribed to invalidations, and clears it whenever the
//! subscription may have missed one.
//!
//! It uses a RESP3 connection of its own (whatever protocol the caller's client asked for):
//! in RESP3 the messages arrive as pushes beside ordinary replies, so the same connection can
//! be pinged for liveness, and the client library reports its loss as a `Disconnection` push.
//! Messages are applied right in the push callback, on the connection's reader, so an
//! invalidation takes effect before any later reply on that connection is seen.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::Rng;
use redis::{AsyncConnectionConfig, Client, Msg, ProtocolVersion, PushInfo, PushKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::invalidation::InvalidationMessage;
use crate::near_cache::NearShared;
use crate::options::NearCacheOptions;

/// The running task; aborted on drop (when the last clone of its [`Cache`](crate::Cache)
/// goes).
pub(crate) struct Subscriber {
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a subscription ended.
enum Lost {
    Connect(redis::RedisError),
    Subscribe(redis::RedisError),
    Timeout(&'static str),
    Closed,
    Heartbeat(redis::RedisError),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Connect(e) => write!(f, "cannot connect: {e}"),
            Lost::Subscribe(e) => write!(f, "SUBSCRIBE failed: {e}"),
            Lost::Timeout(what) => write!(f, "{what} timed out"),
            Lost::Closed => f.write_str("connection closed"),
            Lost::Heartbeat(e) => write!(f, "heartbeat failed: {e}"),
        }
    }
}

impl Subscriber {
    /// Starts the task. Must be called within a tokio runtime.
    pub fn spawn(
        client: &Client,
        channel: String,
        origin: String,
        near: Arc<NearShared>,
        options: NearCacheOptions,
    ) -> Subscriber {
        // Same server, credentials and database; RESP3 for the reasons in the module docs.
        let info = client.get_connection_info().clone();
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let task = tokio::spawn(async move {
            let client = match Client::open(info) {
                Ok(client) => client,
                Err(error) => {
                    // Cannot happen for info taken from a valid client; if it did, the near
                    // cache simply never goes live and every lookup goes to Redis.
                    tracing::error!(%error, "near cache: cannot build the subscription client; near cache disabled");
                    return;
                }
            };
            run(client, channel, origin, near, options).await;
        });
        Subscriber { task }
    }
}

async fn run(client: Client, channel: String, origin: String, near: Arc<NearShared>, options: NearCacheOptions) {
    let mut delay = options.reconnect_min_delay;
    loop {
        let (lost, was_live) = subscribe_and_watch(&client, &channel, &origin, &near, &options).await;
        let dropped = near.go_down();
        if was_live {
            tracing::warn!(%channel, dropped, reason = %lost, "near cache: subscription lost; cleared");
            delay = options.reconnect_min_delay;
        } else {
            tracing::debug!(%channel, reason = %lost, ?delay, "near cache: cannot subscribe yet");
        }
        // Jitter so that many processes do not reconnect in lockstep after a server restart.
        let pause = delay.mul_f64(rand::rng().random_range(0.5..=1.0));
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(options.reconnect_max_delay);
    }
}

/// One connection's life: connect, subscribe, go live, then watch for its loss. Returns why it
/// ended and whether it had gone live.
async fn subscribe_and_watch(
    client: &Client,
    channel: &str,
    origin: &str,
    near: &Arc<NearShared>,
    options: &NearCacheOptions,
) -> (Lost, bool) {
    let closed = Arc::new(Notify::new());
    // A connection given up on (heartbeat) may report its disconnection later, when a newer
    // one is live; only the current connection's pushes count.
    let current = CurrentFlag(Arc::new(AtomicBool::new(true)));
    let on_push = {
        let near = near.clone();
        let origin = origin.to_string();
        let closed = closed.clone();
        let current = current.0.clone();
        move |push: PushInfo| -> Result<(), Infallible> {
            if current.load(Ordering::SeqCst) {
                handle_push(&near, &origin, &closed, push);
            }
            Ok(())
        }
    };
    let config = AsyncConnectionConfig::new()
        .set_push_sender(on_push)
        .set_connection_timeout(Some(options.heartbeat_timeout))
        .set_response_timeout(Some(options.heartbeat_timeout));
    let mut conn = match client.get_multiplexed_async_connection_with_config(&config).await {
        Ok(conn) => conn,
        Err(e) => return (Lost::Connect(e), false),
    };
    match tokio::time::timeout(options.heartbeat_timeout, conn.subscribe(channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return (Lost::Subscribe(e), false),
        Err(_) => return (Lost::Timeout("subscribe"), false),
    }
    near.go_live();
    tracing::info!(%channel, "near cache: subscribed to invalidations; serving");
    let mut heartbeat = tokio::time::interval(options.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = closed.notified() => return (Lost::Closed, true),
            _ = heartbeat.tick() => {
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<redis::Value>(&mut conn);
                match tokio::time::timeout(options.heartbeat_timeout, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return (Lost::Heartbeat(e), true),
                    Err(_) => return (Lost::Timeout("heartbeat"), true),
                }
            }
        }
    }
}

/// Marks a connection's pushes as stale when its watch ends, however it ends.
struct CurrentFlag(Arc<AtomicBool>);

impl Drop for CurrentFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn handle_push(near: &NearShared, origin: &str, closed: &Notify, push: PushInfo) {
    match push.kind {
        PushKind::Disconnection => {
            // Clear at once, not when the task gets to run: from here on nothing may be
            // served from memory.
            near.go_down();
            closed.notify_one();
        }
        PushKind::Message => {
            let Some(msg) = Msg::from_push_info(push) else { return };
            let Some(message) = InvalidationMessage::decode(msg.get_payload_bytes()) else {
                tracing::debug!(channel = msg.get_channel_name(), "near cache: ignoring an empty or non-UTF-8 message");
                return;
            };
            // Our own writes already updated our memory, before they were published.
            if message.origin != origin {
                near.invalidate(&message.key);
            }
        }
        _ => {}
    }
}

/// Backoff bounds are exercised by the integration tests (restart of the server); the push
/// handling is pure enough to test here.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use redis::Value;

    use super::*;

    fn message(payload: &[u8]) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![Value::BulkString(b"chan".to_vec()), Value::BulkString(payload.to_vec())],
        }
    }

    #[test]
    fn pushes() {
        let near = NearShared::new(&NearCacheOptions::default());
        near.go_live();
        let closed = Notify::new();
        let put = |k: &str| {
            let t = near.ticket(k);
            assert!(near.insert(k, Bytes::from_static(b"v"), t, Duration::from_secs(10)));
        };
        put("a");
        put("b");
        put("c");
        handle_push(&near, "me", &closed, message(&InvalidationMessage::encode("other", "a")));
        assert!(!near.contains("a"), "another origin's message drops the key");
        handle_push(&near, "me", &closed, message(&InvalidationMessage::encode("me", "b")));
        assert!(near.contains("b"), "our own message is skipped");
        handle_push(&near, "me", &closed, message(b"b"));
        assert!(!near.contains("b"), "a bare key from any client drops it");
        handle_push(&near, "me", &closed, PushInfo { kind: PushKind::Subscribe, data: vec![] });
        assert!(near.contains("c"));
        handle_push(&near, "me", &closed, PushInfo { kind: PushKind::Disconnection, data: vec![] });
        let stats = near.stats();
        assert!(!stats.live);
        assert_eq!((stats.entries, stats.clears), (0, 1));
    }
}
