//! The results table and its JSON form.

use std::time::Duration;

use serde_json::{json, Value};

use crate::measure::{percentiles, Measurement};

/// Which coordination service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Redis,
    ZooKeeper,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Redis => "redis",
            System::ZooKeeper => "zookeeper",
        }
    }

    /// The goal for lock cycles/s over raw cycles/s.
    pub fn goal(self) -> f64 {
        match self {
            System::Redis => 0.5,
            System::ZooKeeper => 0.4,
        }
    }
}

/// The raw operations or the zedis lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Raw,
    Lock,
}

impl Variant {
    pub fn describe(self, system: System) -> &'static str {
        match (system, self) {
            (System::Redis, Variant::Raw) => "raw SET NX PX + DEL",
            (System::Redis, Variant::Lock) => "zedis lease lock",
            (System::ZooKeeper, Variant::Raw) => "raw create(ephemeral) + delete",
            (System::ZooKeeper, Variant::Lock) => "zedis ZkLock",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Lock => "lock",
        }
    }
}

/// One measured row: the same measurement repeated over rounds.
#[derive(Clone, Debug)]
pub struct Row {
    pub system: System,
    pub variant: Variant,
    /// One per round; never empty.
    pub runs: Vec<Measurement>,
}

impl Row {
    pub fn clients(&self) -> usize {
        self.runs.first().map_or(0, |m| m.clients)
    }

    /// The round with the median cycles/s (the lower middle one for an even count).
    pub fn median(&self) -> &Measurement {
        let mut sorted: Vec<&Measurement> = self.runs.iter().collect();
        sorted.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        sorted[(sorted.len() - 1) / 2]
    }

    /// The lowest and highest cycles/s over the rounds.
    pub fn range(&self) -> (f64, f64) {
        let rates = self.runs.iter().map(Measurement::per_sec);
        let lo = rates.clone().fold(f64::INFINITY, f64::min);
        let hi = rates.fold(0.0, f64::max);
        (lo, hi)
    }
}

/// Lock cycles/s over raw cycles/s for the same system and client count.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub system: System,
    pub clients: usize,
    pub lock_over_raw: f64,
}

impl Ratio {
    pub fn goal_met(&self) -> bool {
        self.lock_over_raw >= self.system.goal()
    }
}

/// Pairs every lock row with the raw row of the same system and client count.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    rows.iter()
        .filter(|r| r.variant == Variant::Lock)
        .filter_map(|lock| {
            let raw = rows
                .iter()
                .find(|r| r.variant == Variant::Raw && r.system == lock.system && r.clients() == lock.clients())?;
            let raw_rate = raw.median().per_sec();
            let lock_over_raw = if raw_rate > 0.0 { lock.median().per_sec() / raw_rate } else { 0.0 };
            Some(Ratio { system: lock.system, clients: lock.clients(), lock_over_raw })
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The header line of the table.
pub fn header() -> String {
    format!(
        "{:<10} {:>7}  {:<31} {:>10} {:>17} {:>9} {:>9}  {:>8}  goal",
        "system", "clients", "variant", "cycles/s", "(rounds min-max)", "p50 ms", "p99 ms", "lock/raw"
    )
}

/// One line of the table; lock rows carry their ratio.
pub fn line(row: &Row, ratio: Option<&Ratio>) -> String {
    let m = row.median();
    let (lo, hi) = row.range();
    let (ratio, goal) = match ratio {
        Some(r) => (
            format!("{:.2}", r.lock_over_raw),
            format!(">= {:.1}: {}", r.system.goal(), if r.goal_met() { "met" } else { "NOT met" }),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "{:<10} {:>7}  {:<31} {:>10.0} {:>17} {:>9.3} {:>9.3}  {:>8}  {goal}",
        row.system.name(),
        m.clients,
        row.variant.describe(row.system),
        m.per_sec(),
        format!("({lo:.0}-{hi:.0})"),
        ms(m.p50),
        ms(m.p99),
        ratio
    )
}

/// The ratio belonging to a lock row.
pub fn ratio_of<'a>(row: &Row, ratios: &'a [Ratio]) -> Option<&'a Ratio> {
    if row.variant != Variant::Lock {
        return None;
    }
    ratios.iter().find(|r| r.system == row.system && r.clients == row.clients())
}

/// Timed events of one kind (an election hand-over, a discovery change reaching caches).
#[derive(Clone, Debug)]
pub struct Latency {
    /// `election` or `discovery`.
    pub kind: &'static str,
    /// What was timed, from what to what.
    pub what: String,
    pub samples: Vec<Duration>,
}

impl Latency {
    /// p50, p99 (nearest rank) and max; zero for no samples.
    pub fn stats(&self) -> (Duration, Duration, Duration) {
        let mut sorted = self.samples.clone();
        let (p50, p99) = percentiles(&mut sorted);
        (p50, p99, sorted.last().copied().unwrap_or_default())
    }
}

/// The header line of the latency table.
pub fn latency_header() -> String {
    format!("{:<10} {:<44} {:>5} {:>9} {:>9} {:>9}", "kind", "timed", "n", "p50 ms", "p99 ms", "max ms")
}

/// One line of the latency table.
pub fn latency_line(l: &Latency) -> String {
    let (p50, p99, max) = l.stats();
    format!("{:<10} {:<44} {:>5} {:>9.3} {:>9.3} {:>9.3}", l.kind, l.what, l.samples.len(), ms(p50), ms(p99), ms(max))
}

/// Everything as one JSON document.
pub fn json(rows: &[Row], latencies: &[Latency], settings: Value) -> Value {
    let ratios = ratios(rows);
    json!({
        "settings": settings,
        "latencies": latencies.iter().map(|l| {
            let (p50, p99, max) = l.stats();
            json!({
                "kind": l.kind,
                "timed": l.what,
                "n": l.samples.len(),
                "p50_ms": ms(p50),
                "p99_ms": ms(p99),
                "max_ms": ms(max),
                "samples_ms": l.samples.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "results": rows.iter().map(|r| {
            let m = r.median();
            json!({
                "system": r.system.name(),
                "variant": r.variant.key(),
                "description": r.variant.describe(r.system),
                "clients": r.clients(),
                "cycles_per_sec": m.per_sec(),
                "p50_ms": ms(m.p50),
                "p99_ms": ms(m.p99),
                "rounds": r.runs.iter().map(|m| json!({
                    "cycles": m.cycles,
                    "window_secs": m.window.as_secs_f64(),
                    "cycles_per_sec": m.per_sec(),
                    "p50_ms": ms(m.p50),
                    "p99_ms": ms(m.p99),
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "ratios": ratios.iter().map(|r| json!({
            "system": r.system.name(),
            "clients": r.clients,
            "lock_over_raw": r.lock_over_raw,
            "goal": r.system.goal(),
            "goal_met": r.goal_met(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(clients: usize, cycles: u64) -> Measurement {
        Measurement {
            clients,
            cycles,
            window: Duration::from_secs(2),
            p50: Duration::from_micros(100),
            p99: Duration::from_micros(900),
        }
    }

    /// A row whose median round has `cycles`, with a slower and a faster round around it.
    fn row(system: System, variant: Variant, clients: usize, cycles: u64) -> Row {
        let runs =
            vec![measurement(clients, cycles * 2), measurement(clients, cycles), measurement(clients, cycles / 2)];
        Row { system, variant, runs }
    }

    #[test]
    fn median_and_range_over_rounds() {
        let r = row(System::Redis, Variant::Raw, 1, 1000);
        assert_eq!(r.median().cycles, 1000);
        assert_eq!(r.range(), (250.0, 1000.0));
        let even = Row { runs: vec![measurement(1, 10), measurement(1, 30)], ..r };
        assert_eq!(even.median().cycles, 10, "lower middle");
    }

    #[test]
    fn ratios_pair_lock_with_raw_of_same_system_and_clients() {
        use System::*;
        use Variant::*;
        let rows = vec![
            row(Redis, Raw, 1, 1000),
            row(Redis, Lock, 1, 600),
            row(Redis, Raw, 8, 2000),
            row(Redis, Lock, 8, 800),
            row(ZooKeeper, Raw, 1, 100),
            row(ZooKeeper, Lock, 1, 50),
            // No raw row for 8 ZooKeeper clients: no ratio.
            row(ZooKeeper, Lock, 8, 10),
        ];
        let got = ratios(&rows);
        let want = vec![
            Ratio { system: Redis, clients: 1, lock_over_raw: 0.6 },
            Ratio { system: Redis, clients: 8, lock_over_raw: 0.4 },
            Ratio { system: ZooKeeper, clients: 1, lock_over_raw: 0.5 },
        ];
        assert_eq!(got, want);
        let met: Vec<bool> = got.iter().map(Ratio::goal_met).collect();
        assert_eq!(met, vec![true, false, true]);
        assert!(ratio_of(&rows[0], &got).is_none(), "raw rows have no ratio");
        assert_eq!(ratio_of(&rows[3], &got).map(|r| r.clients), Some(8));
        let doc = json(&rows, &[], json!({}));
        assert_eq!(doc["results"].as_array().map(Vec::len), Some(7));
        assert_eq!(doc["ratios"][1]["goal_met"], json!(false));
        assert!(line(&rows[1], ratio_of(&rows[1], &got)).contains("0.60"));
    }

    #[test]
    fn latency_stats_and_json() {
        let samples = [5, 1, 3, 2, 4].into_iter().map(Duration::from_millis).collect();
        let l = Latency { kind: "election", what: "x -> y".into(), samples };
        let ms3 = Duration::from_millis;
        assert_eq!(l.stats(), (ms3(3), ms3(5), ms3(5)));
        assert_eq!(l.samples[0], ms3(5), "the samples keep their order");
        let empty = Latency { samples: Vec::new(), ..l.clone() };
        assert_eq!(empty.stats(), (Duration::ZERO, Duration::ZERO, Duration::ZERO));
        assert!(latency_line(&l).contains("5.000"));
        let doc = json(&[], &[l], json!({}));
        assert_eq!(doc["latencies"][0]["max_ms"], json!(5.0));
        assert_eq!(doc["latencies"][0]["samples_ms"].as_array().map(Vec::len), Some(5));
    }
}
