//! The baseline: the same keys moved by hand between two plain `redis-server`s (testkit) with
//! what zedis's mover does at its core, minus the bookkeeping: `SCAN COUNT 1000` on the
//! source and `MIGRATE host port "" 0 5000 KEYS k1..kB` per batch of B keys, one command at a
//! time from one connection, passes until the source is empty. No client load, no ZooKeeper.
//! Then the same keys back, with the mover's sizing pipeline before each `MIGRATE`, to show
//! what that costs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Value;
use zedis_testkit::{RedisOptions, RedisServer};

use crate::data::{connect, seed};
use crate::procs::check_interrupted;

/// Keys per `SCAN` (zedis's mover asks for as many).
const SCAN_COUNT: usize = 1000;
/// `MIGRATE`'s timeout, milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5000;

#[derive(Clone, Debug)]
pub struct RawResult {
    pub keys: u64,
    /// Sum of `MEMORY USAGE key SAMPLES 5` before the move (what zedis's `bytes_moved` counts).
    pub memory_bytes: u64,
    pub secs: f64,
    pub migrates: u64,
    pub passes: u32,
}

/// Starts two servers under `dir`, writes keys `which` to the first and sizes them; times
/// moving them all to the second with plain `SCAN` + `MIGRATE`, then back to the first with
/// the mover's own sequence per batch: a pipeline of `MEMORY USAGE` + `TYPE` per key (how the
/// mover sizes each key and spots big collections), then `MIGRATE`.
pub fn run(
    dir: &Path,
    which: &[u64],
    value_size: usize,
    batch: usize,
    timeout: Duration,
) -> Result<(RawResult, RawResult)> {
    let start = |name: &str| {
        RedisServer::start_with(RedisOptions { dir: Some(dir.join(name)), ..RedisOptions::default() })
            .with_context(|| format!("redis-server {name} does not start"))
    };
    let a = start("raw-a")?;
    let b = start("raw-b")?;
    seed(&a.addr(), which, value_size, timeout)?;
    let mut conn_a = connect(&a.addr(), timeout)?;
    let mut conn_b = connect(&b.addr(), timeout)?;
    let loaded: u64 = redis::cmd("DBSIZE").query(&mut conn_a)?;
    if loaded != which.len() as u64 {
        bail!("the raw source holds {loaded} keys, expected {}", which.len());
    }
    let memory_bytes = memory_usage(&mut conn_a)?;
    let plain = move_all(&mut conn_a, &mut conn_b, &b.addr(), batch, false, timeout)?;
    let sized = move_all(&mut conn_b, &mut conn_a, &a.addr(), batch, true, timeout)?;
    let result =
        |(secs, migrates, passes)| RawResult { keys: which.len() as u64, memory_bytes, secs, migrates, passes };
    Ok((result(plain), result(sized)))
}

/// Moves every key from `src` to `dst` (at `dst_addr`); returns (seconds, MIGRATEs, passes).
fn move_all(
    src: &mut redis::Connection,
    dst: &mut redis::Connection,
    dst_addr: &str,
    batch: usize,
    sized: bool,
    timeout: Duration,
) -> Result<(f64, u64, u32)> {
    let expected: u64 = redis::cmd("DBSIZE").query(src)?;
    let before: u64 = redis::cmd("DBSIZE").query(dst)?;
    let (host, port) = dst_addr.rsplit_once(':').context("bad target address")?;
    let mut migrates = 0u64;
    let mut passes = 0u32;
    let t0 = Instant::now();
    loop {
        passes += 1;
        let mut cursor: u64 = 0;
        loop {
            check_interrupted()?;
            let (next, keys): (u64, Vec<Vec<u8>>) =
                redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT).query(src).context("SCAN")?;
            cursor = next;
            for chunk in keys.chunks(batch.max(1)) {
                if sized {
                    let mut pipe = redis::pipe();
                    for k in chunk {
                        pipe.cmd("MEMORY").arg("USAGE").arg(k.as_slice()).arg("SAMPLES").arg(5);
                        pipe.cmd("TYPE").arg(k.as_slice());
                    }
                    let _: Vec<Value> = pipe.query(src).context("MEMORY USAGE + TYPE")?;
                }
                let mut cmd = redis::cmd("MIGRATE");
                cmd.arg(host).arg(port).arg("").arg(0).arg(MIGRATE_TIMEOUT_MS).arg("KEYS");
                for k in chunk {
                    cmd.arg(k.as_slice());
                }
                match cmd.query::<Value>(src).context("MIGRATE")? {
                    Value::Okay => {}
                    Value::SimpleString(s) if s == "OK" || s == "NOKEY" => {}
                    other => bail!("MIGRATE answered {other:?}"),
                }
                migrates += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        let left: u64 = redis::cmd("DBSIZE").query(src)?;
        if left == 0 {
            break;
        }
        if t0.elapsed() > timeout * 10 {
            bail!("raw MIGRATE: {left} keys still on the source after {:?}", t0.elapsed());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let arrived: u64 = redis::cmd("DBSIZE").query(dst)?;
    if arrived != before + expected {
        bail!("the raw target holds {arrived} keys after the move, expected {}", before + expected);
    }
    Ok((secs, migrates, passes))
}

/// Sum of `MEMORY USAGE key SAMPLES 5` over every key of the server (pipelined).
fn memory_usage(conn: &mut redis::Connection) -> Result<u64> {
    let mut cursor: u64 = 0;
    let mut total = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT).query(conn).context("SCAN")?;
        cursor = next;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("MEMORY").arg("USAGE").arg(k.as_slice()).arg("SAMPLES").arg(5);
            }
            let sizes: Vec<Option<u64>> = pipe.query(conn).context("MEMORY USAGE")?;
            total += sizes.into_iter().flatten().sum::<u64>();
        }
        if cursor == 0 {
            return Ok(total);
        }
    }
}
