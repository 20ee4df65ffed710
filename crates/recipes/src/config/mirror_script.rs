//! The version-checked write: a Lua script that stores a key's entry in a namespace's two
//! hashes only if it is not older than what Redis holds, and announces what it changed. The
//! mirror never goes backwards because Redis itself refuses the older write — also one sent
//! by a second, lagging mirror, or by hand.

use std::sync::OnceLock;

use super::mirror_plan::{meta_key, values_key, MetaRecord, MirrorWrite, Notification};
use super::mirror_target::{MirrorTarget, TargetError};

/// The script. `KEYS[1]` is the values hash, `KEYS[2]` the meta hash (same hash slot).
/// `ARGV` holds groups of six: op (`set`, `del` or `purge`), key, version, meta JSON, value,
/// message. For each group it returns two integers: the status (1 applied and published,
/// 0 already there — rewritten in place if it differed, -1 refused: Redis holds a newer
/// version) and the version Redis held before (0 if none).
pub const SCRIPT: &str = r#"
local out = {}
for i = 1, #ARGV, 6 do
  local op, field, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]) or 0
  local meta, value, message = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local stored = 0
  local current = redis.call('HGET', KEYS[2], field)
  if current then
    local ok, decoded = pcall(cjson.decode, current)
    if ok and type(decoded) == 'table' and tonumber(decoded['version']) then
      stored = tonumber(decoded['version'])
    end
  end
  local status
  if op == 'purge' then
    local removed = redis.call('HDEL', KEYS[1], field) + redis.call('HDEL', KEYS[2], field)
    if removed > 0 then status = 1 else status = 0 end
  elseif stored > version then
    status = -1
  else
    redis.call('HSET', KEYS[2], field, meta)
    if op == 'set' then
      redis.call('HSET', KEYS[1], field, value)
    else
      redis.call('HDEL', KEYS[1], field)
    end
    if stored < version then status = 1 else status = 0 end
  end
  if status == 1 then
    redis.call('PUBLISH', KEYS[1], message)
  end
  out[#out + 1] = status
  out[#out + 1] = stored
end
return out
"#;

/// Writes per script call: bounds the time the script holds the server.
const BATCH: usize = 64;

/// What the script did with one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored (newer than what Redis had) and announced on the channel.
    Applied,
    /// Redis already had this version (repaired in place if it differed; not announced).
    Unchanged,
    /// Refused: Redis holds `stored`, newer than the write.
    Refused { stored: u64 },
}

/// The SHA1 of [`SCRIPT`], for `EVALSHA`.
pub fn script_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| redis::Script::new(SCRIPT).get_hash().to_string())
}

/// The arguments after `EVAL <script>` / `EVALSHA <sha>` for `writes` to `namespace`.
pub fn script_args(namespace: &str, writes: &[MirrorWrite]) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> =
        vec![b"2".to_vec(), values_key(namespace).into_bytes(), meta_key(namespace).into_bytes()];
    for write in writes {
        let (op, version, meta, value, deleted) = match write {
            MirrorWrite::Record { record, .. } => (
                if record.deleted { "del" } else { "set" },
                record.version,
                MetaRecord::of(record).to_json(),
                record.value.as_str(),
                record.deleted,
            ),
            MirrorWrite::Purge { .. } => ("purge", 0, String::new(), "", true),
        };
        let message = Notification { namespace: namespace.to_string(), key: write.key().to_string(), version, deleted };
        args.push(op.as_bytes().to_vec());
        args.push(write.key().as_bytes().to_vec());
        args.push(version.to_string().into_bytes());
        args.push(meta.into_bytes());
        args.push(value.as_bytes().to_vec());
        args.push(message.to_json().into_bytes());
    }
    args
}

/// Reads the script's reply for `n` writes.
pub fn parse_outcomes(reply: &redis::Value, n: usize) -> Result<Vec<WriteOutcome>, String> {
    let redis::Value::Array(items) = reply else {
        return Err(format!("the mirror script answered {reply:?}"));
    };
    if items.len() != n * 2 {
        return Err(format!("the mirror script answered {} numbers for {n} writes", items.len()));
    }
    items
        .chunks(2)
        .map(|pair| match pair {
            [redis::Value::Int(1), _] => Ok(WriteOutcome::Applied),
            [redis::Value::Int(0), _] => Ok(WriteOutcome::Unchanged),
            [redis::Value::Int(-1), redis::Value::Int(stored)] => {
                Ok(WriteOutcome::Refused { stored: u64::try_from(*stored).unwrap_or(0) })
            }
            other => Err(format!("the mirror script answered {other:?}")),
        })
        .collect()
}

/// Runs the script for `writes` to `namespace` (in batches; `EVALSHA`, then `EVAL` if the
/// server does not have the script yet, e.g. after a restart or on a new master).
///
/// # Cancellation safety
/// Each batch is atomic in Redis; if dropped, a prefix of the batches was applied.
pub async fn apply_writes<T: MirrorTarget>(
    target: &T,
    namespace: &str,
    writes: &[MirrorWrite],
) -> Result<Vec<WriteOutcome>, TargetError> {
    let mut outcomes = Vec::with_capacity(writes.len());
    for chunk in writes.chunks(BATCH) {
        let args = script_args(namespace, chunk);
        let mut evalsha = vec![b"EVALSHA".to_vec(), script_sha().as_bytes().to_vec()];
        evalsha.extend(args.iter().cloned());
        let reply = match target.query(evalsha).await {
            Err(e) if e.is_code("NOSCRIPT") => {
                let mut eval = vec![b"EVAL".to_vec(), SCRIPT.as_bytes().to_vec()];
                eval.extend(args);
                target.query(eval).await?
            }
            other => other?,
        };
        outcomes.extend(parse_outcomes(&reply, chunk.len()).map_err(TargetError::Reply)?);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::format::Format;
    use crate::config::record::ConfigRecord;
    use redis::Value;

    #[test]
    fn args_layout() {
        let record = ConfigRecord {
            value: "v".into(),
            format: Format::Text,
            version: 3,
            time_ms: 1,
            author: "a".into(),
            comment: String::new(),
            deleted: false,
            canary: None,
        };
        let args = script_args(
            "app",
            &[MirrorWrite::Record { key: "k".into(), record }, MirrorWrite::Purge { key: "old".into() }],
        );
        let text: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        assert_eq!(&text[..3], ["2", "zedis:config:app", "{zedis:config:app}:meta"]);
        assert_eq!(&text[3..6], ["set", "k", "3"]);
        assert_eq!(text[7], "v");
        assert_eq!(text[8], r#"{"namespace":"app","key":"k","version":3,"deleted":false}"#);
        assert_eq!(&text[9..11], ["purge", "old"]);
        assert_eq!(args.len(), 3 + 12);
    }

    #[test]
    fn outcomes() {
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
            Value::Int(4),
            Value::Int(-1),
            Value::Int(9),
        ]);
        assert_eq!(
            parse_outcomes(&reply, 3).unwrap(),
            [WriteOutcome::Applied, WriteOutcome::Unchanged, WriteOutcome::Refused { stored: 9 }]
        );
        assert!(parse_outcomes(&reply, 2).is_err());
        assert!(parse_outcomes(&Value::Nil, 0).is_err());
        assert_eq!(script_sha().len(), 40);
    }
}
