//! The Redis mirror of lock state, for clients in any language: a hash `zedis:locks:<name>`.
//!
//! | field     | meaning |
//! |-----------|---------|
//! | `holder`  | the holder's owner id (`LockOptions::owner`); empty when the lock is free |
//! | `host`, `pid` | where the holder runs (absent when free) |
//! | `token`   | the holder's fencing token; when free, the last holder's |
//! | `since`   | ms since the Unix epoch: when the holder acquired it, or when it was freed |
//! | `waiters` | contenders queued behind the holder when it acquired (or left when freed) |
//! | `kind`    | `lock` (a [`crate::ZkLock`]) or `write` (a [`crate::ZkRwLock`] writer) |
//!
//! Written by the lock client itself, on acquire and on release (and when it learns the hold
//! is lost), for exclusive holds only (one hash describes one holder). It is a view, not the
//! truth: ZooKeeper decides who holds. A holder that crashes leaves its entry until the next
//! holder overwrites it. Writes are ordered by the fencing token, so the mirror never goes
//! backwards: an acquire write lands only if its token is greater than the stored one, and a
//! release only clears the entry it wrote. Best effort: each write is bounded by
//! [`MIRROR_TIMEOUT`]; a failure is logged and never fails the lock.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::contender::{now_ms, ContenderKind};

/// The longest a lock operation waits for a mirror write.
pub const MIRROR_TIMEOUT: Duration = Duration::from_secs(1);

/// The mirror's key for lock `name`.
pub fn mirror_key(name: &str) -> String {
    format!("zedis:locks:{name}")
}

/// Tokens are decimal u64 strings, beyond the exact range of Lua's doubles: compare them as
/// strings, shorter first.
const ACQUIRE_LUA: &str = r#"
local function older(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local current = redis.call('HGET', KEYS[1], 'token')
if current and not older(current, ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'holder', ARGV[2], 'host', ARGV[3], 'pid', ARGV[4],
  'since', ARGV[5], 'waiters', ARGV[6], 'kind', ARGV[7])
return 1
"#;

const RELEASE_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'holder', '', 'since', ARGV[2])
redis.call('HDEL', KEYS[1], 'host', 'pid')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'waiters', ARGV[3]) end
return 1
"#;

static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACQUIRE_LUA));
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE_LUA));

/// What changes with each acquisition.
pub(crate) struct MirrorEntry {
    pub token: u64,
    pub since_ms: u64,
    pub kind: ContenderKind,
}

/// One holder's writer of the mirror.
#[derive(Clone)]
pub(crate) struct LockMirror {
    conn: ConnectionManager,
    key: String,
    owner: String,
    host: String,
    pid: u32,
    waiters: usize,
}

impl LockMirror {
    pub fn new(
        conn: ConnectionManager,
        lock: &str,
        owner: String,
        host: String,
        pid: u32,
        waiters: usize,
    ) -> LockMirror {
        LockMirror { conn, key: mirror_key(lock), owner, host, pid, waiters }
    }

    /// Records the holder (unless a newer holder is recorded already).
    pub async fn acquired(&self, entry: MirrorEntry) {
        let mut invocation = ACQUIRE.key(&self.key);
        invocation
            .arg(entry.token.to_string())
            .arg(&self.owner)
            .arg(&self.host)
            .arg(self.pid)
            .arg(entry.since_ms)
            .arg(self.waiters)
            .arg(entry.kind.prefix());
        let mut conn = self.conn.clone();
        let result = tokio::time::timeout(MIRROR_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        self.report("acquire", entry.token, result);
    }

    /// Marks the lock free, if the mirror still shows our hold; `waiting` is how many remain
    /// queued, if known.
    pub async fn released(&self, token: u64, waiting: Option<usize>) {
        let mut invocation = RELEASE.key(&self.key);
        invocation.arg(token.to_string()).arg(now_ms()).arg(waiting.map(|n| n.to_string()).unwrap_or_default());
        let mut conn = self.conn.clone();
        let result = tokio::time::timeout(MIRROR_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        self.report("release", token, result);
    }

    fn report(&self, what: &str, token: u64, result: Result<redis::RedisResult<i64>, tokio::time::error::Elapsed>) {
        match result {
            Ok(Ok(1)) => tracing::debug!(key = %self.key, token, what, "lock mirror updated"),
            Ok(Ok(_)) => tracing::debug!(key = %self.key, token, what, "lock mirror already shows a newer holder"),
            Ok(Err(e)) => tracing::warn!(key = %self.key, token, what, error = %e, "lock mirror write failed"),
            Err(_) => {
                tracing::warn!(key = %self.key, token, what, after = ?MIRROR_TIMEOUT, "lock mirror write timed out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key() {
        assert_eq!(mirror_key("jobs.nightly"), "zedis:locks:jobs.nightly");
    }
}
