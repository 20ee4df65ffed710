//! Latency summaries of a time window of the client's commands.

use serde_json::json;

use crate::client::ClientRun;

/// The client's commands started within `[from_us, to_us)`.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub name: &'static str,
    pub secs: f64,
    pub ops: usize,
    pub failures: usize,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Window {
    pub fn of(name: &'static str, run: &ClientRun, from_us: u64, to_us: u64) -> Window {
        Window::of_slots(name, run, from_us, to_us, None)
    }

    /// The same, counting only keys in the moving slots (`Some(true)`) or only the others
    /// (`Some(false)`); failures are counted whatever the key.
    pub fn of_slots(name: &'static str, run: &ClientRun, from_us: u64, to_us: u64, moving: Option<bool>) -> Window {
        let mut lat: Vec<u64> = run
            .samples
            .iter()
            .filter(|s| (from_us..to_us).contains(&s.at_us) && moving.is_none_or(|m| s.moving_slot == m))
            .map(|s| s.latency_ns)
            .collect();
        lat.sort_unstable();
        let failures = run.failed_at_us.iter().filter(|t| (from_us..to_us).contains(t)).count();
        let secs = to_us.saturating_sub(from_us) as f64 / 1e6;
        let ms = |ns: u64| ns as f64 / 1e6;
        let mean = if lat.is_empty() { 0.0 } else { lat.iter().map(|&n| ms(n)).sum::<f64>() / lat.len() as f64 };
        Window {
            name,
            secs,
            ops: lat.len(),
            failures,
            ops_per_s: if secs > 0.0 { (lat.len() + failures) as f64 / secs } else { 0.0 },
            p50_ms: ms(percentile(&lat, 0.50)),
            p99_ms: ms(percentile(&lat, 0.99)),
            p999_ms: ms(percentile(&lat, 0.999)),
            max_ms: ms(lat.last().copied().unwrap_or(0)),
            mean_ms: mean,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "secs": self.secs,
            "ops": self.ops,
            "failures": self.failures,
            "ops_per_s": self.ops_per_s,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
        })
    }
}

/// The client's commands in consecutive windows of `bucket_us` from `from_us` to `to_us`:
/// `(start relative to `origin_us` in seconds, window)`.
pub fn timeline(run: &ClientRun, from_us: u64, to_us: u64, bucket_us: u64, origin_us: u64) -> Vec<(f64, Window)> {
    let bucket_us = bucket_us.max(1);
    let mut out = Vec::new();
    let mut t = from_us;
    while t < to_us {
        let end = (t + bucket_us).min(to_us);
        let rel = (t as f64 - origin_us as f64) / 1e6;
        out.push((rel, Window::of("bucket", run, t, end)));
        t = end;
    }
    out
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
