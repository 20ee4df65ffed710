//! Medians over the rounds, the table, the goals and the JSON summary.

use serde_json::{json, Value};

use crate::bench::{Sample, Test};

/// The goals and the done-when bar.
pub const GOAL_PIPELINED: f64 = 1.5;
pub const GOAL_UNPIPELINED: f64 = 1.0;
pub const DONE_PIPELINED: f64 = 1.0;
pub const DONE_UNPIPELINED: f64 = 0.9;
pub const GOAL_P99_OVERHEAD_MS: f64 = 0.2;

/// One measured run.
#[derive(Clone, Debug)]
pub struct Record {
    pub round: usize,
    pub pipeline: u32,
    pub test: Test,
    pub target: &'static str,
    pub sample: Sample,
    /// Other processes used more CPU than `--max-other-cpus` during the run.
    pub disturbed: bool,
}

/// Medians over the rounds of one (pipeline, test, target).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
    /// CPU microseconds per request.
    pub proxy_us: Option<f64>,
    /// Context switches of the proxy's threads per request.
    pub proxy_cs: Option<f64>,
    pub redis_us: f64,
    pub client_us: f64,
    pub other_us: f64,
    /// Busy CPUs of the machine during the run (of `procs::cpus()`).
    pub busy_cpus: f64,
    pub rounds: usize,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn summarize(records: &[Record], pipeline: u32, test: Test, target: &str) -> Summary {
    let s: Vec<&Sample> = records
        .iter()
        .filter(|r| r.pipeline == pipeline && r.test == test && r.target == target)
        .map(|r| &r.sample)
        .collect();
    let m = |f: &dyn Fn(&Sample) -> f64| median(s.iter().map(|x| f(x)).collect());
    let has_proxy = s.iter().all(|x| x.proxy_cpu_us.is_some()) && !s.is_empty();
    Summary {
        rps: m(&|x| x.rps),
        p50_ms: m(&|x| x.p50_ms),
        p99_ms: m(&|x| x.p99_ms),
        avg_ms: m(&|x| x.avg_ms),
        proxy_us: has_proxy.then(|| m(&|x| x.per_request(x.proxy_cpu_us.unwrap_or(0.0)))),
        proxy_cs: has_proxy.then(|| m(&|x| x.per_request(x.proxy_switches.unwrap_or(0) as f64))),
        redis_us: m(&|x| x.per_request(x.redis_cpu_us)),
        client_us: m(&|x| x.per_request(x.client_cpu_us)),
        other_us: m(&|x| x.per_request(x.other_cpu_us())),
        busy_cpus: m(&|x| x.machine_busy_us / (x.wall_s * 1e6).max(1.0)),
        rounds: s.len(),
    }
}

/// The comparison for one (pipeline, test).
pub struct Row {
    pub pipeline: u32,
    pub test: Test,
    pub requests: u64,
    pub direct: Summary,
    pub twemproxy: Summary,
    pub zedis: Summary,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.zedis.rps / self.twemproxy.rps
    }

    pub fn zedis_p99_overhead_ms(&self) -> f64 {
        self.zedis.p99_ms - self.direct.p99_ms
    }

    pub fn twemproxy_p99_overhead_ms(&self) -> f64 {
        self.twemproxy.p99_ms - self.direct.p99_ms
    }

    /// The throughput goal and the done-when bar for this pipeline depth.
    pub fn bars(&self) -> (f64, f64) {
        if self.pipeline > 1 {
            (GOAL_PIPELINED, DONE_PIPELINED)
        } else {
            (GOAL_UNPIPELINED, DONE_UNPIPELINED)
        }
    }
}

fn us(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".to_string())
}

/// The table, one block per pipeline depth.
pub fn table(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_pipeline = None;
    for row in rows {
        if last_pipeline != Some(row.pipeline) {
            last_pipeline = Some(row.pipeline);
            out.push(String::new());
            out.push(format!(
                "pipeline {} ({} requests per run, median of {} rounds); latency in ms, CPU in µs per request",
                row.pipeline, row.requests, row.zedis.rounds
            ));
            out.push(format!(
                "{:<5} {:<10} {:>10} {:>7} {:>7} {:>7} | {:>6} {:>6} {:>6} {:>6} | {:>5} | {:>6}",
                "test", "target", "rps", "avg", "p50", "p99", "proxy", "redis", "client", "other", "busy", "cs/req"
            ));
        }
        for (i, (name, s)) in
            [("direct", &row.direct), ("twemproxy", &row.twemproxy), ("zedis", &row.zedis)].into_iter().enumerate()
        {
            out.push(format!(
                "{:<5} {:<10} {:>10.0} {:>7.3} {:>7.3} {:>7.3} | {:>6} {:>6.2} {:>6.2} {:>6.2} | {:>5.2} | {:>6}",
                if i == 0 { row.test.label() } else { "" },
                name,
                s.rps,
                s.avg_ms,
                s.p50_ms,
                s.p99_ms,
                us(s.proxy_us),
                s.redis_us,
                s.client_us,
                s.other_us,
                s.busy_cpus,
                s.proxy_cs.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".to_string())
            ));
        }
        out.push(format!(
            "      zedis/twemproxy {:.2}x   zedis/direct {:.2}x   p99 over direct: zedis {:+.3} ms, twemproxy {:+.3} ms",
            row.ratio(),
            row.zedis.rps / row.direct.rps,
            row.zedis_p99_overhead_ms(),
            row.twemproxy_p99_overhead_ms()
        ));
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// One line per test and pipeline depth: the goals and the done-when bar.
pub fn goals(rows: &[Row]) -> Vec<String> {
    let mut out = vec![String::new(), "goals (zedis rps / twemproxy rps; p99 over direct at pipeline 1):".to_string()];
    for row in rows {
        let (goal, done) = row.bars();
        let r = row.ratio();
        let mut line = format!(
            "  P{:<2} {:<4} {:.2}x: goal >= {goal:.1}x {}; done-when >= {done:.1}x {}",
            row.pipeline,
            row.test.label(),
            r,
            verdict(r >= goal),
            verdict(r >= done)
        );
        if row.pipeline == 1 {
            let o = row.zedis_p99_overhead_ms();
            line += &format!(
                "; p99 overhead {o:+.3} ms: goal <= {GOAL_P99_OVERHEAD_MS} ms {}",
                verdict(o <= GOAL_P99_OVERHEAD_MS)
            );
        }
        out.push(line);
    }
    out
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "rps": s.rps,
        "avg_ms": s.avg_ms,
        "p50_ms": s.p50_ms,
        "p99_ms": s.p99_ms,
        "cpu_us_per_request": {
            "proxy": s.proxy_us,
            "redis": s.redis_us,
            "client": s.client_us,
            "other": s.other_us,
        },
        "proxy_context_switches_per_request": s.proxy_cs,
        "busy_cpus": s.busy_cpus,
        "rounds": s.rounds,
    })
}

pub fn rows_json(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|row| {
                let (goal, done) = row.bars();
                json!({
                    "pipeline": row.pipeline,
                    "test": row.test.label(),
                    "requests": row.requests,
                    "direct": summary_json(&row.direct),
                    "twemproxy": summary_json(&row.twemproxy),
                    "zedis": summary_json(&row.zedis),
                    "ratio_zedis_over_twemproxy": row.ratio(),
                    "ratio_zedis_over_direct": row.zedis.rps / row.direct.rps,
                    "zedis_p99_overhead_ms": row.zedis_p99_overhead_ms(),
                    "twemproxy_p99_overhead_ms": row.twemproxy_p99_overhead_ms(),
                    "goal_ratio": goal,
                    "goal_ratio_met": row.ratio() >= goal,
                    "done_when_ratio": done,
                    "done_when_ratio_met": row.ratio() >= done,
                    "goal_p99_overhead_met": (row.pipeline == 1).then(|| row.zedis_p99_overhead_ms() <= GOAL_P99_OVERHEAD_MS),
                })
            })
            .collect(),
    )
}

pub fn records_json(records: &[Record]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                let s = &r.sample;
                json!({
                    "round": r.round,
                    "pipeline": r.pipeline,
                    "test": r.test.label(),
                    "target": r.target,
                    "requests": s.requests,
                    "rps": s.rps,
                    "avg_ms": s.avg_ms,
                    "p50_ms": s.p50_ms,
                    "p99_ms": s.p99_ms,
                    "max_ms": s.max_ms,
                    "wall_s": s.wall_s,
                    "cpu_us": {
                        "proxy": s.proxy_cpu_us,
                        "redis": s.redis_cpu_us,
                        "client": s.client_cpu_us,
                        "other": s.other_cpu_us(),
                        "machine_busy": s.machine_busy_us,
                    },
                    "proxy_context_switches": s.proxy_switches,
                    "other_cpus": s.other_cpus(),
                    "disturbed": r.disturbed,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
