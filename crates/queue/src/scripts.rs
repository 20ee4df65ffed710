//! Lua scripts for the steps that must be atomic. Each touches only one queue's keys, which
//! share a hash tag, so the zedis proxy runs it on one group. Decisions are made in Rust
//! (see [`crate::decision`]); the scripts only re-check ownership and carry them out.

use std::sync::LazyLock;

use redis::Script;

/// Acknowledge and delete: `KEYS[1]` stream; `ARGV[1]` group, `ARGV[2..]` ids. Deletes only
/// entries this call acknowledged, so an id that was never delivered (or is acknowledged
/// already) is left alone. Returns how many were acknowledged.
pub(crate) static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local acked = 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    acked = acked + 1
  end
end
return acked
"#,
    )
});

/// Move to the dead letters: `KEYS[1]` stream, `KEYS[2]` dead-letter stream; `ARGV[1]`
/// group, `ARGV[2]` consumer, `ARGV[3]` dead-letter MAXLEN (0: none), `ARGV[4]` time in ms,
/// then triples of id, deliveries, reason. Only entries still pending *for this consumer*
/// move (one acknowledged or taken by another consumer meanwhile is left alone), each in one
/// step: copied with its bookkeeping fields, acknowledged, deleted. Returns the moved ids.
pub(crate) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local moved = {}
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    local args = {'XADD', KEYS[2]}
    if tonumber(ARGV[3]) > 0 then
      table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[3])
    end
    table.insert(args, '*')
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry == 1 then
      for _, v in ipairs(entry[1][2]) do table.insert(args, v) end
    end
    for _, v in ipairs({'dead:original-id', id, 'dead:deliveries', ARGV[i + 1],
                        'dead:reason', ARGV[i + 2], 'dead:time-ms', ARGV[4]}) do
      table.insert(args, v)
    end
    redis.call(unpack(args))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    table.insert(moved, id)
  end
end
return moved
"#,
    )
});

/// Set the idle time of messages a consumer holds: `KEYS[1]` stream; `ARGV[1]` group,
/// `ARGV[2]` consumer, `ARGV[3]` idle ms, `ARGV[4..]` ids. 0 extends the visibility timeout;
/// the timeout itself makes the message reclaimable at once (a retry). Only messages this
/// consumer still holds are touched, so a consumer that lost a message to a reclaim cannot
/// take it back. The delivery count is left alone (`JUSTID`). Returns how many were touched.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local touched = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"#,
    )
});

/// Put dead letters back on the queue as new messages: `KEYS[1]` stream, `KEYS[2]` dead
/// letters; `ARGV[1]` stream MAXLEN (0: none), `ARGV[2..]` dead-letter ids. The bookkeeping
/// fields are dropped and the delivery count starts again. Returns the new ids.
pub(crate) static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i = 2, #ARGV do
  local entry = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #entry == 1 then
    local args = {'XADD', KEYS[1]}
    if tonumber(ARGV[1]) > 0 then
      table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[1])
    end
    table.insert(args, '*')
    local f = entry[1][2]
    local kept = 0
    for j = 1, #f, 2 do
      if string.sub(f[j], 1, 5) ~= 'dead:' then
        table.insert(args, f[j]); table.insert(args, f[j + 1]); kept = kept + 1
      end
    end
    if kept == 0 then
      table.insert(args, 'payload'); table.insert(args, '')
    end
    table.insert(out, redis.call(unpack(args)))
    redis.call('XDEL', KEYS[2], ARGV[i])
  end
end
return out
"#,
    )
});
