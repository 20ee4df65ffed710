//! The Lua scripts. Each touches only an entry and its lease key, which share a hash tag (see
//! [`keys`](crate::keys)), so each runs on one server, through the proxy too.

use std::sync::LazyLock;

use redis::Script;

/// Writes the entry only while the caller's lease is still in place, and ends the lease.
/// KEYS: entry, lease. ARGV: token, entry bytes, physical TTL in ms. Returns 1 if written,
/// 0 if the lease was gone (expired and maybe taken by another loader, or revoked by an
/// invalidation or a `set`): then the value this caller loaded may be older than what is
/// there, so it must not be written.
pub(crate) static WRITE_WITH_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
",
    )
});

/// Writes the entry unconditionally and revokes any lease, so that a load that started
/// before this write cannot overwrite it. KEYS: entry, lease. ARGV: entry bytes, physical TTL
/// in ms.
pub(crate) static WRITE_REVOKING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
",
    )
});

/// Deletes the entry and revokes any lease, atomically: a loader whose load started before
/// the invalidation finds its lease gone and does not write. KEYS: entry, lease.
pub(crate) static INVALIDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new("return redis.call('DEL', KEYS[1], KEYS[2])"));

/// Ends a lease if it is still the caller's. KEYS: lease. ARGV: token.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
