//! The data set: keys `key:000000000` .. with values of `--value-size` bytes, written with
//! pipelined `SET`s, and the connections every part of the benchmark uses.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// `SET`s per pipeline while seeding (below the proxy's default `--max-pipeline` of 1024).
const SEED_BATCH: usize = 500;

/// Key number `i`.
pub fn key(i: u64) -> String {
    format!("key:{i:09}")
}

/// The value of key `i`: `value_size` bytes, its number first, then filler.
pub fn value(i: u64, value_size: usize) -> Vec<u8> {
    let mut v = format!("{i:09}:").into_bytes();
    v.resize(value_size, b'x');
    v.truncate(value_size);
    v
}

/// A blocking connection with `timeout` on connect, reads and writes.
pub fn connect(addr: &str, timeout: Duration) -> Result<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/")).with_context(|| format!("bad address {addr}"))?;
    let conn = client.get_connection_with_timeout(timeout).with_context(|| format!("cannot connect to {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Writes keys `which` with their values to `addr`, `SEED_BATCH` `SET`s per round trip.
pub fn seed(addr: &str, which: &[u64], value_size: usize, timeout: Duration) -> Result<()> {
    let mut conn = connect(addr, timeout)?;
    for chunk in which.chunks(SEED_BATCH) {
        crate::procs::check_interrupted()?;
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("SET").arg(key(i)).arg(value(i, value_size));
        }
        let replies: Vec<redis::Value> = pipe.query(&mut conn).with_context(|| format!("SET on {addr}"))?;
        if let Some(other) = replies.iter().find(|r| !matches!(r, redis::Value::Okay)) {
            bail!("SET on {addr} answered {other:?}");
        }
    }
    Ok(())
}

/// xorshift64*: the client's key and command choices (no need for a crypto-grade generator).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` ≥ 1; the modulo bias is negligible for key counts).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_size() {
        assert_eq!(value(7, 100).len(), 100);
        assert_eq!(value(123_456_789, 4), b"1234".to_vec());
        assert!(value(1, 20).starts_with(b"000000001:x"));
    }

    #[test]
    fn rng_stays_below() {
        let mut r = Rng::new(0);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}
