//! A connection suited to queues.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::QueueError;

/// How long a reply may take on connections made by [`connect`]: above any sensible
/// [`crate::QueueOptions::block`].
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`ConnectionManager`] (it reconnects by itself) to `url`, e.g. the zedis proxy
/// `redis://127.0.0.1:6380`, with a response timeout of [`RESPONSE_TIMEOUT`] rather than the
/// driver's 500 ms, so a blocking pop of a few seconds does not time out.
///
/// # Cancellation safety
///
/// Cancel-safe: dropping the future drops the half-made connection.
pub async fn connect(url: &str) -> Result<ConnectionManager, QueueError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2);
    Ok(ConnectionManager::new_with_config(client, config).await?)
}
