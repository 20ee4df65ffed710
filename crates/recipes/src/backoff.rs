//! Exponential backoff with jitter for the background tasks' retries.

use std::time::Duration;

use rand::Rng;
use zedis_coord::{Zk, ZkOptions};

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, current: min }
    }

    /// The next delay: the current step with ±25% jitter (so many clients that lost
    /// ZooKeeper together do not come back in lockstep), then double the step up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::rng().random_range(0.75..=1.25);
        step.mul_f64(jitter)
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Delays between attempts to open a ZooKeeper session.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Opens a ZooKeeper session, retrying with backoff, until one opens or `closed` completes
/// (nobody wants it any more: `None`).
///
/// # Cancellation safety
/// Safe: nothing is held between attempts.
pub(crate) async fn connect_retrying(options: &ZkOptions, closed: impl std::future::Future<Output = ()>) -> Option<Zk> {
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
    tokio::pin!(closed);
    loop {
        tokio::select! {
            result = Zk::connect(options) => match result {
                Ok(zk) => return Some(zk),
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in = ?delay, hosts = %options.hosts, "cannot open a ZooKeeper session yet");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = &mut closed => return None,
                    }
                }
            },
            _ = &mut closed => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        for (got, step) in steps.iter().zip([100u128, 200, 400, 800, 800, 800]) {
            assert!(*got >= step * 3 / 4 && *got <= step * 5 / 4, "{steps:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
