//! `FencedResource`: Redis enforces a lock's fencing token at the data it protects.
//!
//! ZooKeeper decides who holds a lock and hands every holder a token that strictly increases
//! across holders. A holder that paused (GC, `SIGSTOP`, a slow network) may still believe it
//! holds the lock after its session expired and another took over; its late writes must not
//! land. A `FencedResource` keeps, in Redis, the highest token seen for a resource and runs a
//! command only if the token it carries is at least that high — atomically, in one Lua script:
//!
//! 1. read the highest token recorded for the resource (`zedis:fence:{<resource>}`);
//! 2. refuse with [`FenceError::Stale`] if ours is lower;
//! 3. run the command;
//! 4. record our token as the highest.
//!
//! A token *equal* to the highest passes: the current holder writes many times. Tokens are
//! compared as exact unsigned 64-bit integers (Lua's numbers are doubles, so the script
//! compares decimal strings, not numbers).
//!
//! # Keys and slots
//! The command runs inside the script, so its keys must live in the same hash slot as the
//! fence record, or the zedis proxy (and Redis Cluster) could not send both to one server.
//! The fence record's hash tag is the resource name; build data keys with
//! [`FencedResource::data_key`] (`{<resource>}:<suffix>`), or put `{<resource>}` in them
//! yourself. The command's keys are not declared to the script (it cannot know which arguments
//! are keys); standalone Redis and the zedis proxy, which route by the declared fence key,
//! accept that as long as the slot is the same.
//!
//! # Durability
//! The fence record has no TTL, so it never "resets" on its own the way a token kept beside a
//! lease can. It lives on the same server as the data it guards: if that server loses the
//! record, it lost the data with it.
//!
//! Scripts go as `EVALSHA`, falling back to `EVAL` (and loading the script) on `NOSCRIPT`.

use std::fmt;
use std::sync::LazyLock;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Arg, Cmd, RedisError, Script, Value};

/// Prefix of the fence record's key: `zedis:fence:{<resource>}`.
pub const FENCE_KEY_PREFIX: &str = "zedis:fence:";

/// `KEYS[1]` = the fence record, `ARGV[1]` = our token (canonical decimal u64),
/// `ARGV[2..]` = the command to run (may be empty).
/// Returns `{1, reply}` (or `{1}` without a command) when the token passes, `{0, highest}`
/// when it is stale. A command error aborts the script before the token is recorded.
const FENCE_LUA: &str = r"
local function canonical(s)
  return type(s) == 'string' and #s >= 1 and #s <= 20 and (s == '0' or string.match(s, '^[1-9][0-9]*$') ~= nil)
end
-- a < b for canonical decimal strings: shorter is smaller, else byte by byte.
local function less(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local token = ARGV[1]
if not canonical(token) then
  return redis.error_reply('ERR zedis fence: token is not an unsigned 64-bit integer')
end
local highest = redis.call('GET', KEYS[1])
if highest then
  if not canonical(highest) then
    return redis.error_reply('ERR zedis fence: record ' .. KEYS[1] .. ' does not hold a token')
  end
  if less(token, highest) then
    return {0, highest}
  end
end
local out = {1}
if #ARGV > 1 then
  out[2] = redis.call(unpack(ARGV, 2, #ARGV))
end
if highest ~= token then
  redis.call('SET', KEYS[1], token)
end
return out
";

static FENCE: LazyLock<Script> = LazyLock::new(|| Script::new(FENCE_LUA));

/// Why a fenced operation did not run.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// A newer holder already wrote with a higher token: this holder lost the lock.
    #[error("token {token} is stale for resource {resource:?}: {highest} was seen")]
    Stale { resource: String, token: u64, highest: u64 },
    #[error("invalid resource name {0:?}: it must be non-empty and contain no '{{' or '}}'")]
    InvalidResource(String),
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
    /// Redis failed, or the command itself failed (e.g. `WRONGTYPE`); the token was not
    /// recorded then.
    #[error("redis error on resource {resource:?}: {source}")]
    Redis {
        resource: String,
        #[source]
        source: RedisError,
    },
    /// The fence record or the script's reply is not what this module writes.
    #[error("corrupt fence record for resource {resource:?}: {detail}")]
    Corrupt { resource: String, detail: String },
}

impl FenceError {
    /// Whether this is [`FenceError::Stale`].
    pub fn is_stale(&self) -> bool {
        matches!(self, FenceError::Stale { .. })
    }
}

/// A resource whose writes are fenced by a lock's token. Cheap to clone when the connection is.
#[derive(Clone)]
pub struct FencedResource<C = ConnectionManager> {
    conn: C,
    resource: String,
    fence_key: String,
}

impl<C> fmt::Debug for FencedResource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FencedResource").field("resource", &self.resource).field("fence_key", &self.fence_key).finish()
    }
}

/// The decoded script reply.
#[derive(Debug, PartialEq)]
enum Verdict {
    Passed(Value),
    Stale(u64),
}

/// Decodes the fence script's reply; `Err(detail)` if it is not one the script produces.
fn verdict(reply: Value) -> Result<Verdict, String> {
    let Value::Array(items) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    if items.is_empty() || items.len() > 2 {
        return Err(format!("expected 1 or 2 elements, got {}", items.len()));
    }
    let mut items = items.into_iter();
    match (items.next(), items.next()) {
        (Some(Value::Int(1)), reply) => Ok(Verdict::Passed(reply.unwrap_or(Value::Nil))),
        (Some(Value::Int(0)), Some(Value::BulkString(highest))) => std::str::from_utf8(&highest)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Verdict::Stale)
            .ok_or_else(|| format!("highest token {:?} is not a u64", String::from_utf8_lossy(&highest))),
        (first, rest) => Err(format!("unexpected reply [{first:?}, {rest:?}]")),
    }
}

/// Whether `resource` can be a hash tag: non-empty, and no brace that would cut the tag short
/// (an empty tag `{}` would even make Redis hash the whole key).
fn valid_resource(resource: &str) -> bool {
    !resource.is_empty() && !resource.contains(['{', '}'])
}

impl<C> FencedResource<C>
where
    C: ConnectionLike + Clone + Send,
{
    /// The fenced resource `resource` on `conn`. The name becomes a hash tag, so it must be
    /// non-empty and contain no `{` or `}`.
    pub fn new(conn: C, resource: impl Into<String>) -> Result<Self, FenceError> {
        let resource = resource.into();
        if !valid_resource(&resource) {
            return Err(FenceError::InvalidResource(resource));
        }
        let fence_key = format!("{FENCE_KEY_PREFIX}{{{resource}}}");
        Ok(FencedResource { conn, resource, fence_key })
    }

    /// The resource's name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The key of the fence record, `zedis:fence:{<resource>}`.
    pub fn fence_key(&self) -> &str {
        &self.fence_key
    }

    /// A data key in the fence record's slot: `{<resource>}:<suffix>`.
    pub fn data_key(&self, suffix: &str) -> String {
        format!("{{{}}}:{suffix}", self.resource)
    }

    /// Runs `command` (name and arguments, e.g. `["SET", key, value]`) if `token` is at least
    /// the highest seen for the resource, and records `token` as the highest. Returns the
    /// command's reply, or [`FenceError::Stale`] with the highest token if a newer holder
    /// wrote already (nothing ran then). The command's keys must share the resource's slot
    /// (see [`FencedResource::data_key`]).
    ///
    /// # Cancellation safety
    /// The script is atomic on the server: dropping the future leaves either nothing done or
    /// everything done, and the caller cannot tell which (as with any Redis write).
    pub async fn execute<A: AsRef<[u8]>>(&self, token: u64, command: &[A]) -> Result<Value, FenceError> {
        if command.is_empty() {
            return Err(FenceError::InvalidCommand("empty command"));
        }
        self.run(token, command.iter().map(AsRef::as_ref)).await
    }

    /// [`FencedResource::execute`] for a command built with [`redis::cmd`].
    pub async fn execute_cmd(&self, token: u64, cmd: &Cmd) -> Result<Value, FenceError> {
        let mut args = Vec::with_capacity(cmd.args_iter().len());
        for arg in cmd.args_iter() {
            match arg {
                Arg::Simple(bytes) => args.push(bytes),
                _ => return Err(FenceError::InvalidCommand("cursor arguments cannot be fenced")),
            }
        }
        self.execute(token, &args).await
    }

    /// Records `token` as the highest if it is at least the highest seen, without running a
    /// command; [`FenceError::Stale`] otherwise. A new holder can call it first thing, so that
    /// older holders are refused from then on even before it writes.
    pub async fn check(&self, token: u64) -> Result<(), FenceError> {
        self.run(token, std::iter::empty()).await.map(|_| ())
    }

    /// The highest token seen for the resource, `None` before any.
    pub async fn highest(&self) -> Result<Option<u64>, FenceError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.fence_key)
            .query_async(&mut conn)
            .await
            .map_err(|source| self.redis_error(source))?;
        let Some(raw) = raw else { return Ok(None) };
        std::str::from_utf8(&raw).ok().and_then(|s| s.parse::<u64>().ok()).map(Some).ok_or_else(|| {
            FenceError::Corrupt {
                resource: self.resource.clone(),
                detail: format!("{} holds {:?}", self.fence_key, String::from_utf8_lossy(&raw)),
            }
        })
    }

    async fn run<'a>(&self, token: u64, command: impl Iterator<Item = &'a [u8]>) -> Result<Value, FenceError> {
        let mut conn = self.conn.clone();
        let mut invocation = FENCE.prepare_invoke();
        invocation.key(&self.fence_key).arg(token.to_string());
        for arg in command {
            invocation.arg(arg);
        }
        let reply: Value = invocation.invoke_async(&mut conn).await.map_err(|source| self.redis_error(source))?;
        match verdict(reply) {
            Ok(Verdict::Passed(reply)) => Ok(reply),
            Ok(Verdict::Stale(highest)) => {
                tracing::debug!(resource = %self.resource, token, highest, "fenced write refused: stale token");
                Err(FenceError::Stale { resource: self.resource.clone(), token, highest })
            }
            Err(detail) => Err(FenceError::Corrupt { resource: self.resource.clone(), detail }),
        }
    }

    fn redis_error(&self, source: RedisError) -> FenceError {
        FenceError::Redis { resource: self.resource.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would hash for `key` (the whole key when there is none).
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    #[test]
    fn keys_share_the_resource_tag() {
        for resource in ["orders", "a:b", "x y", "é"] {
            let fenced = FencedResource::new(DummyConn, resource).expect("valid");
            assert_eq!(fenced.fence_key(), format!("zedis:fence:{{{resource}}}"));
            assert_eq!(hash_tag(fenced.fence_key()), resource);
            assert_eq!(hash_tag(&fenced.data_key("balance")), resource);
        }
    }

    #[test]
    fn resource_names() {
        let table = [("orders", true), ("", false), ("a{b", false), ("}a", false), ("a}", false)];
        for (name, ok) in table {
            assert_eq!(valid_resource(name), ok, "{name:?}");
            assert_eq!(FencedResource::new(DummyConn, name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn verdict_table() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let table: Vec<(Value, Result<Verdict, ()>)> = vec![
            (Value::Array(vec![Value::Int(1)]), Ok(Verdict::Passed(Value::Nil))),
            (Value::Array(vec![Value::Int(1), Value::Okay]), Ok(Verdict::Passed(Value::Okay))),
            (Value::Array(vec![Value::Int(1), Value::Nil]), Ok(Verdict::Passed(Value::Nil))),
            (Value::Array(vec![Value::Int(0), bulk("18446744073709551615")]), Ok(Verdict::Stale(u64::MAX))),
            (Value::Array(vec![Value::Int(0), bulk("18446744073709551616")]), Err(())),
            (Value::Array(vec![Value::Int(0), bulk("x")]), Err(())),
            (Value::Array(vec![Value::Int(0)]), Err(())),
            (Value::Array(vec![]), Err(())),
            (Value::Array(vec![Value::Int(2), Value::Nil]), Err(())),
            (Value::Array(vec![Value::Int(1), Value::Nil, Value::Nil]), Err(())),
            (Value::Okay, Err(())),
        ];
        for (reply, want) in table {
            let got = verdict(reply.clone()).map_err(|_| ());
            assert_eq!(got, want, "{reply:?}");
        }
    }

    /// A connection that is never used: the tests above only build keys.
    #[derive(Clone)]
    struct DummyConn;

    impl ConnectionLike for DummyConn {
        fn req_packed_command<'a>(&'a mut self, _cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
            unreachable!("not used")
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _cmd: &'a redis::Pipeline,
            _offset: usize,
            _count: usize,
        ) -> redis::RedisFuture<'a, Vec<Value>> {
            unreachable!("not used")
        }

        fn get_db(&self) -> i64 {
            0
        }
    }
}
