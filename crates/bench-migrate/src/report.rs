//! What was measured, as a table and as JSON.

use serde_json::json;

use crate::raw::RawResult;
use crate::stats::Window;
use crate::{SLOTS, SOURCE, TARGET};

/// The zedis migration as the benchmark saw it.
#[derive(Clone, Debug, Default)]
pub struct Migration {
    pub id: u64,
    /// Just before `zedis cluster migrate` was run (wall clock, µs).
    pub command_us: u64,
    /// When a poll first showed `moving` / `done` (wall clock, µs).
    pub seen_moving_us: Option<u64>,
    pub seen_done_us: Option<u64>,
    /// The controller's events (wall clock, ms): migration recorded (`preparing`), markers
    /// set and keys moving (`moving`), slots committed to the target (`done`).
    pub started_ms: Option<u64>,
    pub moving_ms: Option<u64>,
    pub done_ms: Option<u64>,
    /// The driver's final progress record.
    pub keys_moved: u64,
    pub bytes_moved: u64,
    pub passes: u64,
    pub big_keys: u64,
    pub polls: u32,
    /// Seeded keys in the moving slots.
    pub expected_keys: u64,
    /// `key:*` left on the source and found on the target afterwards.
    pub left_in_source: u64,
    pub in_target: u64,
}

impl Migration {
    /// Start of the "moving" phase: the controller's event, else the first poll showing it.
    pub fn moving_us(&self) -> u64 {
        self.moving_ms.map(|t| t * 1000).or(self.seen_moving_us).unwrap_or(self.command_us)
    }

    /// End of the migration: the controller's event, else the first poll showing `done`.
    pub fn done_us(&self) -> u64 {
        self.done_ms.map(|t| t * 1000).or(self.seen_done_us).unwrap_or_else(|| self.moving_us())
    }

    pub fn moving_secs(&self) -> f64 {
        self.done_us().saturating_sub(self.moving_us()) as f64 / 1e6
    }

    /// From just before `cluster migrate` to done.
    pub fn total_secs(&self) -> f64 {
        self.done_us().saturating_sub(self.command_us) as f64 / 1e6
    }

    /// From the migration being recorded to keys moving (routers' epochs, start-up grace).
    pub fn preparing_secs(&self) -> f64 {
        let from = self.started_ms.map(|t| t * 1000).unwrap_or(self.command_us);
        self.moving_us().saturating_sub(from) as f64 / 1e6
    }

    /// From just before `cluster migrate` to the migration being recorded (CLI, request queue,
    /// the leader's commit).
    pub fn request_secs(&self) -> f64 {
        self.started_ms.map(|t| (t * 1000).saturating_sub(self.command_us) as f64 / 1e6).unwrap_or(0.0)
    }

    fn times_from_events(&self) -> bool {
        self.moving_ms.is_some() && self.done_ms.is_some()
    }
}

pub struct Outcome {
    pub keys: u64,
    pub value_size: usize,
    pub key_len: usize,
    pub batch: usize,
    pub cpus: usize,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub raw: RawResult,
    /// The same keys moved back with the mover's sizing pipeline before each `MIGRATE`.
    pub raw_sized: RawResult,
    pub migration: Migration,
    /// before, preparing, during move, after.
    pub windows: Vec<Window>,
    /// `(seconds from `cluster migrate`, window)` over the whole client run.
    pub timeline: Vec<(f64, Window)>,
    pub print_timeline: bool,
    /// `cluster migrate --rate`, if given.
    pub rate: Option<u32>,
    pub client_failures: usize,
    pub first_failures: Vec<String>,
}

impl Outcome {
    /// No client failure, and every key where it belongs.
    pub fn clean(&self) -> bool {
        self.client_failures == 0 && self.migration.left_in_source == 0 && self.migration.in_target == self.keys
    }

    fn window(&self, name: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.name == name)
    }
}

/// Throughput of moving `keys` keys of `bytes` bytes in `secs`.
struct Rate {
    keys_per_s: f64,
    mb_per_s: f64,
    payload_mb_per_s: f64,
}

impl Rate {
    fn of(keys: u64, bytes: u64, payload: u64, secs: f64) -> Rate {
        let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        Rate {
            keys_per_s: per_s(keys as f64),
            mb_per_s: per_s(bytes as f64) / 1e6,
            payload_mb_per_s: per_s(payload as f64) / 1e6,
        }
    }
}

fn payload(o: &Outcome, keys: u64) -> u64 {
    keys * (o.key_len + o.value_size) as u64
}

fn raw_rate(o: &Outcome, r: &RawResult) -> Rate {
    Rate::of(r.keys, r.memory_bytes, payload(o, r.keys), r.secs)
}

fn zedis_rate(o: &Outcome) -> Rate {
    let m = &o.migration;
    Rate::of(m.keys_moved, m.bytes_moved, payload(o, m.keys_moved), m.moving_secs())
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// `1234567` → `1 234 567`.
fn thousands(n: u64) -> String {
    let digits: Vec<u8> = n.to_string().into_bytes().into_iter().rev().collect();
    let groups: Vec<String> =
        digits.chunks(3).map(|g| g.iter().rev().map(|&b| char::from(b)).collect::<String>()).rev().collect();
    groups.join(" ")
}

/// The human-readable report.
pub fn lines(o: &Outcome) -> Vec<String> {
    let m = &o.migration;
    let (raw, sized, zedis) = (raw_rate(o, &o.raw), raw_rate(o, &o.raw_sized), zedis_rate(o));
    let mut out = vec![
        String::new(),
        format!(
            "slot migration: {} keys of {} bytes (keys {} bytes); slots {}-{} ({} keys) group {SOURCE} → group {TARGET}{}",
            thousands(o.keys),
            o.value_size,
            o.key_len,
            SLOTS.0,
            SLOTS.1,
            thousands(m.expected_keys),
            o.rate.map(|r| format!(", --rate {r}")).unwrap_or_default()
        ),
        format!("{} CPUs; load average {} before, {} after", o.cpus, o.loadavg_before, o.loadavg_after),
        String::new(),
        format!(
            "{:<40} {:>9} {:>8} {:>9} {:>7} {:>12}",
            "move (MB/s: MEMORY USAGE, 10^6 B)", "keys", "secs", "keys/s", "MB/s", "payload MB/s"
        ),
        format!(
            "{:<40} {:>9} {:>8.3} {:>9} {:>7.2} {:>12.2}",
            format!("raw SCAN + MIGRATE, batch {}", o.batch),
            thousands(o.raw.keys),
            o.raw.secs,
            thousands(raw.keys_per_s.round() as u64),
            raw.mb_per_s,
            raw.payload_mb_per_s
        ),
        format!(
            "{:<40} {:>9} {:>8.3} {:>9} {:>7.2} {:>12.2}",
            "raw, + MEMORY USAGE/TYPE pipeline",
            thousands(o.raw_sized.keys),
            o.raw_sized.secs,
            thousands(sized.keys_per_s.round() as u64),
            sized.mb_per_s,
            sized.payload_mb_per_s
        ),
        format!(
            "{:<40} {:>9} {:>8.3} {:>9} {:>7.2} {:>12.2}",
            "zedis, moving → done (client running)",
            thousands(m.keys_moved),
            m.moving_secs(),
            thousands(zedis.keys_per_s.round() as u64),
            zedis.mb_per_s,
            zedis.payload_mb_per_s
        ),
        format!(
            "{:<40} {:>9} {:>8} {:>8.2}× {:>6.2}× {:>11.2}×",
            "zedis / raw",
            "",
            "",
            ratio(zedis.keys_per_s, raw.keys_per_s),
            ratio(zedis.mb_per_s, raw.mb_per_s),
            ratio(zedis.payload_mb_per_s, raw.payload_mb_per_s)
        ),
        format!(
            "zedis total, `cluster migrate` → done: {:.3} s (request {:.3} s, preparing {:.3} s, moving {:.3} s); \
             {} passes, {} big keys; times from {}",
            m.total_secs(),
            m.request_secs(),
            m.preparing_secs(),
            m.moving_secs(),
            m.passes,
            m.big_keys,
            if m.times_from_events() { "the controller's events" } else { "polling" }
        ),
        format!(
            "raw: {} MIGRATE commands, {} pass(es); bytes: zedis {} (MEMORY USAGE at move time), raw {} (MEMORY USAGE before)",
            thousands(o.raw.migrates),
            o.raw.passes,
            thousands(m.bytes_moved),
            thousands(o.raw.memory_bytes)
        ),
        String::new(),
        "client through the proxy: GET/SET 50/50 on random keys, one command at a time".to_string(),
        format!(
            "{:<20} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}",
            "window", "secs", "ops", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failures"
        ),
    ];
    for w in &o.windows {
        out.push(format!(
            "{:<20} {:>6.2} {:>8} {:>8.0} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {:>9}",
            w.name, w.secs, w.ops, w.ops_per_s, w.p50_ms, w.p99_ms, w.p999_ms, w.max_ms, w.failures
        ));
    }
    if let (Some(b), Some(d)) = (o.window("before"), o.window("during move")) {
        out.push(format!(
            "{:<20} {:>6} {:>8} {:>7.2}× {:>7.2}× {:>7.2}× {:>8.2}× {:>7.2}×",
            "during/before",
            "",
            "",
            ratio(d.ops_per_s, b.ops_per_s),
            ratio(d.p50_ms, b.p50_ms),
            ratio(d.p99_ms, b.p99_ms),
            ratio(d.p999_ms, b.p999_ms),
            ratio(d.max_ms, b.max_ms)
        ));
    }
    if o.print_timeline {
        out.push(String::new());
        out.push(format!(
            "timeline (s from `cluster migrate`; moving {:.3}–{:.3} s)",
            (m.moving_us() as f64 - m.command_us as f64) / 1e6,
            (m.done_us() as f64 - m.command_us as f64) / 1e6
        ));
        out.push(format!(
            "{:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "t s", "ops/s", "p50 ms", "p99 ms", "max ms", "failures"
        ));
        for (t, w) in &o.timeline {
            out.push(format!(
                "{t:>8.2} {:>8.0} {:>8.3} {:>8.3} {:>8.3} {:>9}",
                w.ops_per_s, w.p50_ms, w.p99_ms, w.max_ms, w.failures
            ));
        }
    }
    out.push(String::new());
    out.push(format!("client failures: {} (must be 0)", o.client_failures));
    for f in &o.first_failures {
        out.push(format!("  {f}"));
    }
    out.push(format!(
        "keys afterwards: group {SOURCE} {} (expected 0), group {TARGET} {} (expected {}); the driver moved {} of the {} keys in the slots",
        thousands(m.left_in_source),
        thousands(m.in_target),
        thousands(o.keys),
        thousands(m.keys_moved),
        thousands(m.expected_keys)
    ));
    out.push(if o.clean() { "result: clean".to_string() } else { "result: NOT CLEAN (see above)".to_string() });
    out
}

fn raw_json(o: &Outcome, r: &RawResult) -> serde_json::Value {
    let rate = raw_rate(o, r);
    json!({
        "keys": r.keys,
        "secs": r.secs,
        "memory_bytes": r.memory_bytes,
        "migrates": r.migrates,
        "batch": o.batch,
        "passes": r.passes,
        "keys_per_s": rate.keys_per_s,
        "mb_per_s": rate.mb_per_s,
        "payload_mb_per_s": rate.payload_mb_per_s,
    })
}

/// Every round and the summary.
pub fn json_all(outcomes: &[Outcome]) -> serde_json::Value {
    json!({
        "rounds": outcomes.iter().map(json).collect::<Vec<_>>(),
        "median": medians(outcomes).iter().map(|(name, v)| (name.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "client_failures": outcomes.iter().map(|o| o.client_failures).sum::<usize>(),
        "clean": outcomes.iter().all(Outcome::clean),
    })
}

pub fn json(o: &Outcome) -> serde_json::Value {
    let m = &o.migration;
    let (raw, zedis) = (raw_rate(o, &o.raw), zedis_rate(o));
    let windows: serde_json::Map<String, serde_json::Value> =
        o.windows.iter().map(|w| (w.name.replace(", ", "_").replace(' ', "_"), w.json())).collect();
    let (b, d) = (o.window("before"), o.window("during move"));
    json!({
        "keys": o.keys,
        "value_size": o.value_size,
        "key_len": o.key_len,
        "slots": format!("{}-{}", SLOTS.0, SLOTS.1),
        "rate_limit": o.rate,
        "cpus": o.cpus,
        "loadavg_before": o.loadavg_before,
        "loadavg_after": o.loadavg_after,
        "raw": raw_json(o, &o.raw),
        "raw_sized": raw_json(o, &o.raw_sized),
        "zedis": {
            "migration_id": m.id,
            "keys_moved": m.keys_moved,
            "bytes_moved": m.bytes_moved,
            "passes": m.passes,
            "big_keys": m.big_keys,
            "moving_secs": m.moving_secs(),
            "total_secs": m.total_secs(),
            "request_secs": m.request_secs(),
            "preparing_secs": m.preparing_secs(),
            "times_from_events": m.times_from_events(),
            "polls": m.polls,
            "keys_per_s": zedis.keys_per_s,
            "mb_per_s": zedis.mb_per_s,
            "payload_mb_per_s": zedis.payload_mb_per_s,
            "expected_keys": m.expected_keys,
            "left_in_source": m.left_in_source,
            "in_target": m.in_target,
        },
        "ratio": {
            "keys_per_s": ratio(zedis.keys_per_s, raw.keys_per_s),
            "mb_per_s": ratio(zedis.mb_per_s, raw.mb_per_s),
            "client_p50": b.zip(d).map(|(b, d)| ratio(d.p50_ms, b.p50_ms)),
            "client_p99": b.zip(d).map(|(b, d)| ratio(d.p99_ms, b.p99_ms)),
        },
        "client": windows,
        "client_timeline": o.timeline.iter().map(|(t, w)| {
            let mut v = w.json();
            v["t_s"] = json!(t);
            v
        }).collect::<Vec<_>>(),
        "client_failures": o.client_failures,
        "first_failures": o.first_failures,
        "clean": o.clean(),
    })
}

/// The figures the summary gives the median of: (name, value per round).
fn figures(outcomes: &[Outcome]) -> Vec<(&'static str, Vec<f64>)> {
    let each = |f: &dyn Fn(&Outcome) -> f64| outcomes.iter().map(f).collect::<Vec<f64>>();
    let win = |o: &Outcome, name: &str, f: fn(&Window) -> f64| o.window(name).map(f).unwrap_or(0.0);
    vec![
        ("raw keys/s", each(&|o| raw_rate(o, &o.raw).keys_per_s)),
        ("raw MB/s", each(&|o| raw_rate(o, &o.raw).mb_per_s)),
        ("raw + sizing keys/s", each(&|o| raw_rate(o, &o.raw_sized).keys_per_s)),
        ("zedis keys/s", each(&|o| zedis_rate(o).keys_per_s)),
        ("zedis MB/s", each(&|o| zedis_rate(o).mb_per_s)),
        ("zedis / raw", each(&|o| ratio(zedis_rate(o).keys_per_s, raw_rate(o, &o.raw).keys_per_s))),
        ("zedis moving s", each(&|o| o.migration.moving_secs())),
        ("zedis total s", each(&|o| o.migration.total_secs())),
        ("zedis preparing s", each(&|o| o.migration.preparing_secs())),
        ("client ops/s before", each(&|o| win(o, "before", |w| w.ops_per_s))),
        ("client ops/s during", each(&|o| win(o, "during move", |w| w.ops_per_s))),
        ("client p50 ms before", each(&|o| win(o, "before", |w| w.p50_ms))),
        ("client p50 ms during", each(&|o| win(o, "during move", |w| w.p50_ms))),
        (
            "client p50 during/before",
            each(&|o| ratio(win(o, "during move", |w| w.p50_ms), win(o, "before", |w| w.p50_ms))),
        ),
        ("client p99 ms before", each(&|o| win(o, "before", |w| w.p99_ms))),
        ("client p99 ms during", each(&|o| win(o, "during move", |w| w.p99_ms))),
        (
            "client p99 during/before",
            each(&|o| ratio(win(o, "during move", |w| w.p99_ms), win(o, "before", |w| w.p99_ms))),
        ),
        ("p50 ms during, moving slots", each(&|o| win(o, "during, moving slots", |w| w.p50_ms))),
        ("p99 ms during, moving slots", each(&|o| win(o, "during, moving slots", |w| w.p99_ms))),
        ("p50 ms during, other slots", each(&|o| win(o, "during, other slots", |w| w.p50_ms))),
        ("p99 ms during, other slots", each(&|o| win(o, "during, other slots", |w| w.p99_ms))),
        ("client max ms before", each(&|o| win(o, "before", |w| w.max_ms))),
        ("client max ms during", each(&|o| win(o, "during move", |w| w.max_ms))),
        ("client failures", each(&|o| o.client_failures as f64)),
    ]
}

/// Median of each figure over the rounds.
fn medians(outcomes: &[Outcome]) -> Vec<(&'static str, f64)> {
    figures(outcomes).into_iter().map(|(name, v)| (name, median(&v))).collect()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The summary over rounds: each figure's median, min, max and per-round values.
pub fn summary(outcomes: &[Outcome]) -> Vec<String> {
    let mut out = vec![
        format!("summary over {} rounds", outcomes.len()),
        format!("{:<28} {:>10} {:>10} {:>10}   per round", "", "median", "min", "max"),
    ];
    for (name, v) in figures(outcomes) {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let fmt = |x: f64| if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.3}") };
        let each: Vec<String> = v.iter().map(|&x| fmt(x)).collect();
        out.push(format!("{name:<26} {:>10} {:>10} {:>10}   {}", fmt(median(&v)), fmt(min), fmt(max), each.join(" ")));
    }
    let failures: usize = outcomes.iter().map(|o| o.client_failures).sum();
    let clean = outcomes.iter().filter(|o| o.clean()).count();
    out.push(format!(
        "client failures over all rounds: {failures} (must be 0); rounds clean: {clean} of {}",
        outcomes.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1 000");
        assert_eq!(thousands(1_234_567), "1 234 567");
    }

    #[test]
    fn phase_times_prefer_events() {
        let m = Migration {
            command_us: 1_000_000,
            started_ms: Some(1_100),
            moving_ms: Some(1_500),
            done_ms: Some(4_500),
            seen_moving_us: Some(1_700_000),
            seen_done_us: Some(4_800_000),
            ..Migration::default()
        };
        assert_eq!(m.moving_secs(), 3.0);
        assert_eq!(m.total_secs(), 3.5);
        assert!((m.preparing_secs() - 0.4).abs() < 1e-9);
        assert!((m.request_secs() - 0.1).abs() < 1e-9);
        let polled = Migration { moving_ms: None, done_ms: None, ..m };
        assert!((polled.moving_secs() - 3.1).abs() < 1e-9);
    }
}
