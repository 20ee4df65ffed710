//! The client whose latency is measured: one connection to the proxy, one command at a time,
//! `GET` or `SET` (50/50) of a random seeded key. Every command is recorded with its start
//! (wall clock, to compare with the controller's event times) and its latency; failures are
//! kept apart: error replies, I/O errors, and `GET`s that did not return the key's value of
//! the right size (a migration must not lose a key, even for a moment).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zedis_topology::key_slot;

use crate::data::{connect, key, value, Rng};
use crate::procs::now_us;
use crate::SLOTS;

/// Timeout of the client's connection (a reply slower than this is an error).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Failures kept with their text (the rest are only counted).
const KEPT_FAILURES: usize = 20;

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Wall-clock microseconds at which the command was sent.
    pub at_us: u64,
    pub latency_ns: u64,
    /// Whether the key is in the slots that move.
    pub moving_slot: bool,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub at_us: u64,
    pub what: String,
}

#[derive(Default, Debug)]
pub struct ClientRun {
    pub samples: Vec<Sample>,
    /// Start times of every failed command.
    pub failed_at_us: Vec<u64>,
    /// The first failures with what went wrong.
    pub failures: Vec<Failure>,
}

impl ClientRun {
    fn fail(&mut self, at_us: u64, what: String) {
        self.failed_at_us.push(at_us);
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(Failure { at_us, what });
        }
    }
}

/// Starts the client thread; it runs until `stop` is set and returns what it recorded.
pub fn spawn(addr: String, keys: u64, value_size: usize, stop: Arc<AtomicBool>) -> JoinHandle<ClientRun> {
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || run(&addr, keys, value_size, &stop))
        .expect("cannot start the client thread")
}

fn run(addr: &str, keys: u64, value_size: usize, stop: &AtomicBool) -> ClientRun {
    let mut out = ClientRun { samples: Vec::with_capacity(1 << 20), ..ClientRun::default() };
    let mut rng = Rng::new(now_us() ^ 0x9e37_79b9_7f4a_7c15);
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(addr, TIMEOUT) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    out.fail(now_us(), format!("connect: {e:#}"));
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let i = rng.below(keys);
        let is_get = rng.next() & 1 == 0;
        let k = key(i);
        let moving_slot = (SLOTS.0..=SLOTS.1).contains(&key_slot(k.as_bytes()));
        let at_us = now_us();
        let t0 = Instant::now();
        // Err((what, whether the connection must be replaced)).
        let drop_conn = |e: &redis::RedisError| e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error();
        let result: Result<(), (String, bool)> = if is_get {
            match redis::cmd("GET").arg(&k).query::<Option<Vec<u8>>>(c) {
                Ok(Some(v)) if v.len() == value_size => Ok(()),
                Ok(Some(v)) => Err((format!("GET {k}: {} bytes, expected {value_size}", v.len()), false)),
                Ok(None) => Err((format!("GET {k}: nil (the key is missing)"), false)),
                Err(e) => Err((format!("GET {k}: {e}"), drop_conn(&e))),
            }
        } else {
            match redis::cmd("SET").arg(&k).arg(value(i, value_size)).query::<redis::Value>(c) {
                Ok(redis::Value::Okay) => Ok(()),
                Ok(other) => Err((format!("SET {k}: {other:?}"), false)),
                Err(e) => Err((format!("SET {k}: {e}"), drop_conn(&e))),
            }
        };
        let latency_ns = t0.elapsed().as_nanos() as u64;
        match result {
            Ok(()) => out.samples.push(Sample { at_us, latency_ns, moving_slot }),
            Err((what, reconnect)) => {
                // After an I/O error the connection's state is unknown: start a new one.
                if reconnect {
                    conn = None;
                }
                out.fail(at_us, what);
            }
        }
    }
    out
}
