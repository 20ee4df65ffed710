//! p50 / max / mean / min of the measured write times.

use std::time::Duration;

use crate::measure::Sample;

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The median: the middle value, or the mean of the two middle ones for an even count.
    pub p50: Duration,
    pub max: Duration,
    pub mean: Duration,
    pub min: Duration,
}

impl Summary {
    /// Summary of the write times; `samples` must not be empty.
    pub fn of(samples: &[Sample]) -> Summary {
        summarize(samples.iter().map(|s| s.write).collect())
    }
}

fn summarize(mut times: Vec<Duration>) -> Summary {
    assert!(!times.is_empty(), "no samples");
    times.sort();
    let n = times.len();
    let p50 = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2 };
    let total: Duration = times.iter().sum();
    Summary { p50, max: times[n - 1], mean: total / n as u32, min: times[0] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn median_odd_and_even() {
        let s = summarize(ms(&[30, 10, 20]));
        assert_eq!(s.p50, Duration::from_millis(20));
        assert_eq!(s.max, Duration::from_millis(30));
        assert_eq!(s.min, Duration::from_millis(10));
        assert_eq!(s.mean, Duration::from_millis(20));
        let s = summarize(ms(&[40, 10, 20, 30]));
        assert_eq!(s.p50, Duration::from_millis(25));
        assert_eq!(s.mean, Duration::from_millis(25));
    }
}
