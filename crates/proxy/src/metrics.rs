//! Proxy metrics: per-command counts, errors and latency histograms, clients, backend errors,
//! pipeline depth. Lock-free counters on the hot path, one shard per worker thread (so two
//! workers never bounce a counter's cache line between cores), summed when rendered in
//! Prometheus text format.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::command_table::{self, CommandSpec};

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 14] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into` (summing the shards of one command).
    fn add_to(&self, into: &Histogram) {
        for (i, b) in self.buckets.iter().enumerate() {
            into.buckets[i].fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        into.count.fetch_add(self.count.load(Ordering::Relaxed), Ordering::Relaxed);
        into.sum_us.fetch_add(self.sum_us.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{}\"}} {cumulative}", *b as f64 / 1e6);
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{}}} {count}", labels.trim_end_matches(','));
    }
}

#[derive(Default)]
pub struct CommandStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub latency: Histogram,
}

impl CommandStats {
    pub fn record(&self, took: Duration, error: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(took);
    }
}

/// Hashes a spec's address as is: the keys are already unique, spread pointers.
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ByAddress = HashMap<usize, (&'static str, CommandStats), std::hash::BuildHasherDefault<AddressHasher>>;

/// Shards of the hot counters; worker threads beyond this share them.
const SHARDS: usize = 8;

fn shard() -> usize {
    crate::workers::current().unwrap_or(0) % SHARDS
}

/// Stats of every top-level command, keyed by the address of its spec, one table per shard,
/// created once.
fn tables() -> &'static [ByAddress] {
    static TABLES: OnceLock<Vec<ByAddress>> = OnceLock::new();
    TABLES.get_or_init(|| {
        (0..SHARDS)
            .map(|_| {
                command_table::commands()
                    .iter()
                    .map(|c| (c as *const CommandSpec as usize, (c.name, CommandStats::default())))
                    .collect()
            })
            .collect()
    })
}

/// The stats a request of `spec` counts towards (subcommands count under their container).
pub fn command_stats(spec: &'static CommandSpec) -> Option<&'static CommandStats> {
    let top = match spec.parent {
        Some(parent) => command_table::lookup(parent.as_bytes()).unwrap_or(spec),
        None => spec,
    };
    tables()[shard()].get(&(top as *const CommandSpec as usize)).map(|(_, s)| s)
}

/// Counters every request touches, one cache line per shard.
#[derive(Default)]
#[repr(align(128))]
pub struct HotCounters {
    pub commands: AtomicU64,
    /// Replies queued but not yet written, by this shard's clients (a shard's sessions
    /// increment and decrement it on the same thread).
    pub pipeline_depth: AtomicI64,
}

#[derive(Default)]
pub struct Metrics {
    pub clients: AtomicUsize,
    pub clients_total: AtomicU64,
    pub errors: AtomicU64,
    pub rejected_clients: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub topology_epoch: AtomicU64,
    hot: [HotCounters; SHARDS],
}

impl Metrics {
    pub fn client_opened(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
        self.clients_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_closed(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }

    /// The hot counters of the worker thread we run on.
    pub fn hot(&self) -> &HotCounters {
        &self.hot[shard()]
    }

    pub fn commands(&self) -> u64 {
        self.hot.iter().map(|h| h.commands.load(Ordering::Relaxed)).sum()
    }

    /// Replies queued and not yet written, all clients.
    pub fn pipeline_depth(&self) -> u64 {
        self.hot.iter().map(|h| h.pipeline_depth.load(Ordering::Relaxed)).sum::<i64>().max(0) as u64
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            &mut out,
            "zedis_proxy_clients",
            "Connected clients.",
            "gauge",
            self.clients.load(Ordering::Relaxed) as u64,
        );
        gauge(
            &mut out,
            "zedis_proxy_clients_total",
            "Clients accepted.",
            "counter",
            self.clients_total.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "zedis_proxy_clients_rejected_total",
            "Clients refused at max-clients.",
            "counter",
            self.rejected_clients.load(Ordering::Relaxed),
        );
        gauge(&mut out, "zedis_proxy_commands_total", "Commands received.", "counter", self.commands());
        gauge(
            &mut out,
            "zedis_proxy_backend_errors_total",
            "Requests failed by a backend (unreachable, lost, malformed).",
            "counter",
            crate::backend::BACKEND_ERRORS.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "zedis_proxy_protocol_errors_total",
            "Client connections closed for malformed input.",
            "counter",
            self.protocol_errors.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "zedis_proxy_pipeline_depth",
            "Replies queued and not yet written, all clients.",
            "gauge",
            self.pipeline_depth(),
        );
        gauge(
            &mut out,
            "zedis_proxy_topology_epoch",
            "Topology epoch the proxy routes with.",
            "gauge",
            self.topology_epoch.load(Ordering::Relaxed),
        );
        // Every command's shards summed.
        let mut totals: HashMap<&str, CommandStats> = HashMap::new();
        for table in tables() {
            for (name, stats) in table.values().filter(|(_, s)| s.calls.load(Ordering::Relaxed) > 0) {
                let total = totals.entry(name).or_default();
                total.calls.fetch_add(stats.calls.load(Ordering::Relaxed), Ordering::Relaxed);
                total.errors.fetch_add(stats.errors.load(Ordering::Relaxed), Ordering::Relaxed);
                stats.latency.add_to(&total.latency);
            }
        }
        let mut names: Vec<(&str, &CommandStats)> = totals.iter().map(|(n, s)| (*n, s)).collect();
        names.sort_by_key(|(n, _)| *n);
        out.push_str("# HELP zedis_proxy_command_calls_total Commands by name.\n# TYPE zedis_proxy_command_calls_total counter\n");
        for (name, s) in &names {
            let _ = writeln!(
                out,
                "zedis_proxy_command_calls_total{{command=\"{name}\"}} {}",
                s.calls.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP zedis_proxy_command_errors_total Error replies by command.\n# TYPE zedis_proxy_command_errors_total counter\n");
        for (name, s) in &names {
            let _ = writeln!(
                out,
                "zedis_proxy_command_errors_total{{command=\"{name}\"}} {}",
                s.errors.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP zedis_proxy_command_duration_seconds Time from a request's arrival to its reply being ready.\n# TYPE zedis_proxy_command_duration_seconds histogram\n");
        for (name, s) in &names {
            s.latency.render(&mut out, "zedis_proxy_command_duration_seconds", &format!("command=\"{name}\","));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        for us in [10, 60, 60, 2_000, 10_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let mut out = String::new();
        h.render(&mut out, "x", "command=\"get\",");
        assert!(out.contains("x_bucket{command=\"get\",le=\"0.00005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{command=\"get\",le=\"0.0001\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{command=\"get\",le=\"0.0025\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{command=\"get\",le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count{command=\"get\"} 5\n"), "{out}");
    }

    #[test]
    fn every_command_has_stats() {
        let get = command_table::lookup(b"GET").unwrap();
        assert!(command_stats(get).is_some());
        let config_get = command_table::lookup_full_name(b"config|get").unwrap();
        assert!(std::ptr::eq(
            command_stats(config_get).unwrap(),
            command_stats(command_table::lookup(b"CONFIG").unwrap()).unwrap()
        ));
        let m = Metrics::default();
        command_stats(get).unwrap().record(Duration::from_micros(100), false);
        assert!(m.render().contains("zedis_proxy_command_calls_total{command=\"get\"}"));
    }
}
