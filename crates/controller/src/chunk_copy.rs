//! Moves one big collection (hash, set, sorted set, list) between servers in chunks, so
//! neither server blocks for longer than one chunk takes. `MIGRATE` would serialise and load the
//! whole value in one go (seconds for millions of elements).
//!
//! 1. The key joins the migration's held set on the sending side: routers' guard script then
//!    refuses writes to it (they wait and retry); reads keep being served there.
//! 2. Chunks (`HSCAN`/`SSCAN`/`ZSCAN`/`LRANGE`) are appended to a temporary key on the
//!    receiving side. Nothing writes the key meanwhile, so a scan sees every element.
//! 3. On the receiving side, one script renames the temporary key into place with the
//!    remaining TTL; on the sending side one script unlinks the key and releases the hold. From
//!    then on the sending side answers "ask the other side" for it.

use redis::Value;
use zedis_topology::Markers;

use crate::migrator::MoveError;
use crate::reconciler::Leadership;
use crate::server_ops::ServerConn;

/// Renames the temporary key into place (refusing to overwrite) and sets the TTL.
const PLACE: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('BUSYKEY the key exists on the receiving side') end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"#;

/// Unlinks the moved key and releases its hold.
const RELEASE: &str = r#"
redis.call('UNLINK', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return 1
"#;

/// Copies `key` (of Redis type `kind`) from `from` to `to` in chunks of `chunk` elements.
/// Returns false when the key vanished meanwhile (expired or deleted): nothing to move.
pub async fn copy(
    from: &mut ServerConn,
    to: &mut ServerConn,
    leadership: &Leadership,
    id: u64,
    key: &[u8],
    kind: &str,
    chunk: usize,
) -> Result<bool, MoveError> {
    let markers = Markers::of(id);
    let temp = Markers::temp_key(id, key);
    leadership.check()?;
    let _: i64 = from.query(redis::cmd("SADD").arg(&markers.held).arg(key)).await?;
    let _: i64 = to.query(redis::cmd("DEL").arg(&temp)).await?;
    tracing::info!(key = %String::from_utf8_lossy(key), kind, "moving a big key in chunks");
    let copied = match kind {
        "list" => copy_list(from, to, leadership, key, &temp, chunk).await,
        _ => copy_scanned(from, to, leadership, key, &temp, kind, chunk).await,
    };
    if let Err(e) = copied {
        let _ = release(from, &markers.held, key).await;
        return Err(e);
    }
    leadership.check()?;
    let ttl: i64 = from.query(redis::cmd("PTTL").arg(key)).await?;
    if ttl == -2 {
        let _: i64 = to.query(redis::cmd("DEL").arg(&temp)).await?;
        release(from, &markers.held, key).await?;
        return Ok(false);
    }
    let placed: Value = to.query(redis::cmd("EVAL").arg(PLACE).arg(2).arg(&temp).arg(key).arg(ttl.max(0))).await?;
    if placed != Value::Int(1) {
        release(from, &markers.held, key).await?;
        return Err(MoveError::Other(format!(
            "big key {}: could not put it in place on {}: {placed:?}",
            String::from_utf8_lossy(key),
            to.addr()
        )));
    }
    let _: i64 = from.query(redis::cmd("EVAL").arg(RELEASE).arg(2).arg(key).arg(&markers.held)).await?;
    Ok(true)
}

async fn release(from: &mut ServerConn, held: &str, key: &[u8]) -> Result<(), MoveError> {
    let _: i64 = from.query(redis::cmd("SREM").arg(held).arg(key)).await?;
    Ok(())
}

async fn copy_scanned(
    from: &mut ServerConn,
    to: &mut ServerConn,
    leadership: &Leadership,
    key: &[u8],
    temp: &[u8],
    kind: &str,
    chunk: usize,
) -> Result<(), MoveError> {
    let (scan, write_cmd) = match kind {
        "hash" => ("HSCAN", "HSET"),
        "set" => ("SSCAN", "SADD"),
        "zset" => ("ZSCAN", "ZADD"),
        other => return Err(MoveError::Other(format!("cannot copy a {other} in chunks"))),
    };
    // The next chunk is read while the last one is written: the two servers work in parallel.
    let (mut reader, mut writer) = (from.clone(), to.clone());
    let mut cursor: u64 = 0;
    let mut finished = false;
    let mut pending: Option<redis::Cmd> = None;
    loop {
        leadership.check()?;
        let scan_cmd = redis::cmd(scan).arg(key).arg(cursor).arg("COUNT").arg(chunk).clone();
        let write = async {
            match &pending {
                Some(cmd) => writer.query::<Value>(cmd).await.map(|_| ()),
                None => Ok(()),
            }
        };
        let read = async {
            if finished {
                Ok(None)
            } else {
                reader.query::<(u64, Vec<Vec<u8>>)>(&scan_cmd).await.map(Some)
            }
        };
        let (written, read) = tokio::join!(write, read);
        written?;
        let Some((next, items)) = read? else { return Ok(()) };
        pending = (!items.is_empty()).then(|| {
            let mut cmd = redis::cmd(write_cmd);
            cmd.arg(temp);
            match kind {
                // ZSCAN gives member, score; ZADD takes score, member.
                "zset" => {
                    for pair in items.chunks(2) {
                        if let [member, score] = pair {
                            cmd.arg(score.as_slice()).arg(member.as_slice());
                        }
                    }
                }
                _ => {
                    for item in &items {
                        cmd.arg(item.as_slice());
                    }
                }
            }
            cmd
        });
        cursor = next;
        finished = next == 0;
        if finished && pending.is_none() {
            return Ok(());
        }
    }
}

async fn copy_list(
    from: &mut ServerConn,
    to: &mut ServerConn,
    leadership: &Leadership,
    key: &[u8],
    temp: &[u8],
    chunk: usize,
) -> Result<(), MoveError> {
    let chunk = chunk.max(1) as i64;
    let mut start: i64 = 0;
    loop {
        leadership.check()?;
        let items: Vec<Vec<u8>> = from.query(redis::cmd("LRANGE").arg(key).arg(start).arg(start + chunk - 1)).await?;
        if items.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(temp);
        for item in &items {
            cmd.arg(item.as_slice());
        }
        let _: i64 = to.query(&cmd).await?;
        if (items.len() as i64) < chunk {
            return Ok(());
        }
        start += chunk;
    }
}
