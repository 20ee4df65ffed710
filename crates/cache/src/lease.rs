//! A loader's lease: the lock key holding this caller's token, which makes it the one loader
//! of a key across all processes until it writes, gives up, or the lease expires.

use std::time::Duration;

use redis::aio::ConnectionLike;

use crate::scripts;

/// A held lease. Ended by the write script, by [`Lease::release`], or, if dropped while still
/// held (the caller was cancelled, or the loader panicked), by a release sent from a spawned
/// task; failing all those, it expires after `lock_ttl`.
pub(crate) struct Lease<C: ConnectionLike + Clone + Send + 'static> {
    conn: C,
    lock_key: String,
    token: String,
    timeout: Duration,
    held: bool,
}

impl<C: ConnectionLike + Clone + Send + 'static> Lease<C> {
    pub fn new(conn: C, lock_key: String, token: String, timeout: Duration) -> Lease<C> {
        Lease { conn, lock_key, token, timeout, held: true }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lease ended in Redis by other means (the write script deleted it, or found it
    /// gone): nothing to release.
    pub fn ended(mut self) {
        self.held = false;
    }

    /// Ends the lease now so that waiters can take over at once instead of after `lock_ttl`.
    /// Failures are logged: the lease then just expires.
    ///
    /// # Cancellation safety
    /// If cancelled, the release is sent from a spawned task instead (see the type docs).
    pub async fn release(mut self) {
        let mut conn = self.conn.clone();
        let mut release = scripts::RELEASE.prepare_invoke();
        release.key(&self.lock_key).arg(&self.token);
        match tokio::time::timeout(self.timeout, release.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => self.held = false,
            Ok(Err(error)) => {
                tracing::warn!(lock = %self.lock_key, %error, "cache: cannot release a lease; it will expire");
                self.held = false;
            }
            Err(_) => {
                tracing::warn!(lock = %self.lock_key, "cache: lease release timed out; it will expire");
                self.held = false;
            }
        }
    }
}

impl<C: ConnectionLike + Clone + Send + 'static> Drop for Lease<C> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        // Outside a runtime (shutdown) there is nothing to spawn on; the lease expires.
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let mut conn = self.conn.clone();
        let lock_key = std::mem::take(&mut self.lock_key);
        let token = std::mem::take(&mut self.token);
        let timeout = self.timeout;
        handle.spawn(async move {
            let mut release = scripts::RELEASE.prepare_invoke();
            release.key(&lock_key).arg(&token);
            if !matches!(tokio::time::timeout(timeout, release.invoke_async::<i64>(&mut conn)).await, Ok(Ok(_))) {
                tracing::debug!(lock = %lock_key, "cache: release of an abandoned lease failed; it will expire");
            }
        });
    }
}
