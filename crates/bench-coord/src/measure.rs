//! Runs N clients doing acquire+release cycles for a bounded time and summarizes them.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long the measurement may overrun its window before it is declared stuck (a server
/// that stopped answering).
const GRACE: Duration = Duration::from_secs(15);

/// One client of a measurement: it owns its connection or session.
pub trait Cycler: Send + 'static {
    /// One acquire+release cycle. `Ok(false)` if `deadline` passed before the lock came; the
    /// client then stops.
    fn cycle(&mut self, deadline: Instant) -> impl Future<Output = Result<bool>> + Send;
}

/// When to count and when to stop: cycles that start after `warmup` and end within `secs`
/// after that are counted.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub warmup: Duration,
    pub secs: Duration,
}

/// What one measurement found.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub clients: usize,
    /// Cycles counted in the window, all clients together.
    pub cycles: u64,
    pub window: Duration,
    /// Cycle time (from the start of the acquisition to the end of the release), all clients.
    pub p50: Duration,
    pub p99: Duration,
}

impl Measurement {
    pub fn per_sec(&self) -> f64 {
        self.cycles as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// Runs every client until the window ends; all must finish within [`GRACE`] after it.
pub async fn measure<C: Cycler>(clients: Vec<C>, window: Window) -> Result<Measurement> {
    let n = clients.len();
    let start = Instant::now() + window.warmup;
    let end = start + window.secs;
    let mut tasks = JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut times = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if !client.cycle(end).await.with_context(|| format!("client {i}"))? {
                    break;
                }
                let t1 = Instant::now();
                if t0 >= start && t1 <= end {
                    times.push(t1 - t0);
                }
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut times = Vec::new();
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            times.extend(joined.map_err(|e| anyhow!("client task failed: {e}"))??);
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout_at(end + GRACE, collect)
        .await
        .map_err(|_| anyhow!("clients still busy {GRACE:?} after the window closed"))??;
    let (p50, p99) = percentiles(&mut times);
    Ok(Measurement { clients: n, cycles: times.len() as u64, window: window.secs, p50, p99 })
}

/// p50 and p99 (nearest rank); zero for no samples. Sorts `times`.
pub fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    if times.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    times.sort_unstable();
    let rank = |p: f64| {
        let idx = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        times[idx]
    };
    (rank(0.50), rank(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = Duration::from_millis;
        let table: &[(&[u64], (u64, u64))] =
            &[(&[], (0, 0)), (&[7], (7, 7)), (&[3, 1, 2], (2, 3)), (&[4, 1, 3, 2], (2, 4))];
        for (input, (p50, p99)) in table {
            let mut times: Vec<Duration> = input.iter().map(|m| ms(*m)).collect();
            assert_eq!(percentiles(&mut times), (ms(*p50), ms(*p99)), "{input:?}");
        }
        let mut hundred: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentiles(&mut hundred), (ms(50), ms(99)));
    }

    struct Counter;

    impl Cycler for Counter {
        async fn cycle(&mut self, _deadline: Instant) -> Result<bool> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(true)
        }
    }

    #[tokio::test]
    async fn counts_only_the_window() {
        let window = Window { warmup: Duration::from_millis(50), secs: Duration::from_millis(200) };
        let m = measure(vec![Counter, Counter], window).await.expect("measure");
        assert_eq!(m.clients, 2);
        // About 20 cycles of 10 ms per client fit in 200 ms; timers are coarse, so be lenient.
        assert!((10..=40).contains(&m.cycles), "{m:?}");
        assert!(m.p50 >= Duration::from_millis(10));
    }
}
