//! The measured client: from the `kill -9` on, ask the system where the master is and write
//! there, every [`RETRY`], until a write succeeds.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::redis_io::ConnPool;

/// The client retries this often (discovery + write), as the benchmark's brief says.
pub const RETRY: Duration = Duration::from_millis(10);

/// How a client learns where the master is.
pub trait Discovery {
    /// Addresses the system names as master now, best first; an error when it cannot say.
    async fn masters(&mut self) -> Result<Vec<String>, String>;
}

/// One failover as the client saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The master that was killed.
    pub old_master: String,
    /// Where the first successful write went.
    pub new_master: String,
    /// From just before the `kill -9` to the first time discovery named another server.
    pub discovered: Duration,
    /// From just before the `kill -9` to the first successful `SET` (the figure reported).
    pub write: Duration,
    /// Write attempts that failed before the first success.
    pub failed_attempts: u32,
    /// The master once everything settled after the run (the old server back as a replica).
    /// Not `new_master` when the system failed over once more after the measured write.
    pub settled_master: String,
}

impl Sample {
    /// True if the system failed over again after the measured write.
    pub fn failed_over_again(&self) -> bool {
        self.settled_master != self.new_master
    }
}

/// Retries discovery + `SET` every [`RETRY`] from `killed_at` until a write succeeds or
/// `timeout` has passed since `killed_at`.
pub async fn first_write(
    discovery: &mut impl Discovery,
    writer: &mut ConnPool,
    old_master: &str,
    killed_at: Instant,
    timeout: Duration,
    key: &str,
) -> Result<Sample> {
    let mut discovered = None;
    let mut failed_attempts = 0;
    let mut last_error = String::from("no attempt yet");
    loop {
        let attempt = Instant::now();
        match discovery.masters().await {
            Ok(addrs) => {
                if discovered.is_none() && addrs.iter().any(|a| a != old_master) {
                    discovered = Some(killed_at.elapsed());
                }
                for addr in addrs {
                    match writer.set(&addr, key, "after-failover").await {
                        Ok(()) => {
                            let write = killed_at.elapsed();
                            if addr == old_master {
                                bail!("a write succeeded on the killed master {addr}: was it really killed?");
                            }
                            return Ok(Sample {
                                old_master: old_master.to_string(),
                                new_master: addr,
                                discovered: discovered.unwrap_or(write),
                                write,
                                failed_attempts,
                                settled_master: String::new(),
                            });
                        }
                        Err(e) => {
                            failed_attempts += 1;
                            last_error = e;
                        }
                    }
                }
            }
            Err(e) => last_error = format!("discovery: {e}"),
        }
        if killed_at.elapsed() >= timeout {
            bail!("no write succeeded within {timeout:?} of killing master {old_master}; last error: {last_error}");
        }
        tokio::time::sleep(RETRY.saturating_sub(attempt.elapsed())).await;
    }
}
