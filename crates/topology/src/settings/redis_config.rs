//! The Redis settings an operator may set on every server of a cluster at once
//! (`zedis cluster config set maxmemory 256mb ...`), and their validation.
//!
//! Every accepted setting is brought to its *canonical* form: the name Redis 7.0 reports in
//! `CONFIG GET` (aliases such as `hash-max-ziplist-entries` become their `listpack` names) and
//! the value exactly as `CONFIG GET` prints it (memory in bytes, `yes`/`no`, lower-case enum
//! names, keyspace-event flags in Redis's own order). The controller compares what servers
//! report with the desired values as plain strings, so anything not canonical would look like
//! drift forever and be re-applied on every probe.
//!
//! Only settings that are safe to change on a live fleet, on masters and replicas alike, are
//! accepted; the ones zedis itself manages, and those that could cut the controller or the
//! proxies off, break replication, or write files, are refused with the reason.

/// Why a Redis setting was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisSettingError {
    /// The setting exists but zedis does not let operators change it fleet-wide.
    #[error("refusing Redis setting {name:?}: {why}")]
    Refused { name: String, why: &'static str },
    /// Not a setting zedis knows to be safe (or not a Redis 7.0 setting at all).
    #[error("unknown or unsupported Redis setting {name:?}; settable fleet-wide: {}", safe_names().join(", "))]
    Unknown { name: String },
    #[error("bad value {value:?} for Redis setting {name}: {why}")]
    BadValue { name: String, value: String, why: String },
}

/// How a setting's value is checked and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Bytes, with Redis's units: `b`, `k`/`kb`, `m`/`mb`, `g`/`gb` (`k` = 1000, `kb` = 1024).
    Memory {
        max: u64,
    },
    /// An integer in `min..=max` (the range Redis accepts, narrowed where Redis would silently
    /// clamp the value and so report something else than what was set).
    Int {
        min: i64,
        max: i64,
    },
    YesNo,
    OneOf(&'static [&'static str]),
    /// `notify-keyspace-events` flags.
    KeyspaceEvents,
}

struct Spec {
    name: &'static str,
    kind: Kind,
}

const INT_MAX: i64 = i32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;

const POLICIES: &[&str] = &[
    "volatile-lru",
    "allkeys-lru",
    "volatile-lfu",
    "allkeys-lfu",
    "volatile-random",
    "allkeys-random",
    "volatile-ttl",
    "noeviction",
];

/// The safe list, as of Redis 7.0.
const SAFE: &[Spec] = &[
    Spec { name: "maxmemory", kind: Kind::Memory { max: u64::MAX } },
    Spec { name: "maxmemory-policy", kind: Kind::OneOf(POLICIES) },
    Spec { name: "maxmemory-samples", kind: Kind::Int { min: 1, max: INT_MAX } },
    Spec { name: "maxmemory-eviction-tenacity", kind: Kind::Int { min: 0, max: 100 } },
    Spec { name: "timeout", kind: Kind::Int { min: 0, max: INT_MAX } },
    Spec { name: "tcp-keepalive", kind: Kind::Int { min: 0, max: INT_MAX } },
    // Redis clamps hz to 1..=500 and would then report another value than was set.
    Spec { name: "hz", kind: Kind::Int { min: 1, max: 500 } },
    Spec { name: "dynamic-hz", kind: Kind::YesNo },
    Spec { name: "active-expire-effort", kind: Kind::Int { min: 1, max: 10 } },
    Spec { name: "activerehashing", kind: Kind::YesNo },
    Spec { name: "lazyfree-lazy-eviction", kind: Kind::YesNo },
    Spec { name: "lazyfree-lazy-expire", kind: Kind::YesNo },
    Spec { name: "lazyfree-lazy-server-del", kind: Kind::YesNo },
    Spec { name: "lazyfree-lazy-user-del", kind: Kind::YesNo },
    Spec { name: "lazyfree-lazy-user-flush", kind: Kind::YesNo },
    Spec { name: "lfu-log-factor", kind: Kind::Int { min: 0, max: INT_MAX } },
    Spec { name: "lfu-decay-time", kind: Kind::Int { min: 0, max: INT_MAX } },
    Spec { name: "slowlog-log-slower-than", kind: Kind::Int { min: -1, max: LONG_MAX } },
    Spec { name: "slowlog-max-len", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "latency-monitor-threshold", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "latency-tracking", kind: Kind::YesNo },
    Spec { name: "busy-reply-threshold", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "notify-keyspace-events", kind: Kind::KeyspaceEvents },
    Spec { name: "tracking-table-max-keys", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "hash-max-listpack-entries", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "hash-max-listpack-value", kind: Kind::Memory { max: LONG_MAX as u64 } },
    Spec { name: "list-max-listpack-size", kind: Kind::Int { min: -5, max: INT_MAX } },
    Spec { name: "list-compress-depth", kind: Kind::Int { min: 0, max: INT_MAX } },
    Spec { name: "set-max-intset-entries", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "zset-max-listpack-entries", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "zset-max-listpack-value", kind: Kind::Memory { max: LONG_MAX as u64 } },
    Spec { name: "stream-node-max-bytes", kind: Kind::Memory { max: LONG_MAX as u64 } },
    Spec { name: "stream-node-max-entries", kind: Kind::Int { min: 0, max: LONG_MAX } },
    Spec { name: "hll-sparse-max-bytes", kind: Kind::Memory { max: LONG_MAX as u64 } },
];

/// Old names Redis still accepts; `CONFIG GET` answers under the name asked, so only the
/// new one is stored.
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("lua-time-limit", "busy-reply-threshold"),
];

const REPLICATION: &str = "replication is wired by the zedis controller (REPLICAOF on every change of master)";
const FENCING: &str = "zedis manages it from the cluster settings, per group, to fence an isolated master";
const AUTH: &str = "the controller and the proxies authenticate with the cluster's password; changing it here \
                    would lock them out";
const NETWORK: &str = "a server's network identity is its address in the topology";
const FILES: &str = "file paths are per-host provisioning (and changing them lets Redis write files anywhere)";
const PERSISTENCE: &str = "persistence is per-host provisioning; switching it on everywhere at once forks and writes \
                           to disk on every server together";
const CLIENTS: &str = "too low a limit locks the controller and the proxies out";
const REPLICA_LIMITS: &str = "its replica class can break full resynchronisations";
const REPLICA_MEMORY: &str = "replicas must follow their master's evictions, or their data diverges";
const NOT_CLUSTER: &str = "zedis does not run Redis in cluster mode";
const STARTUP_ONLY: &str = "it cannot be changed on a running server";
const HOST: &str = "it is a property of the host process, not of the data service";

/// Settings refused by exact name, with the reason.
const REFUSED: &[(&str, &str)] = &[
    ("replicaof", REPLICATION),
    ("slaveof", REPLICATION),
    ("masterauth", REPLICATION),
    ("masteruser", REPLICATION),
    ("replica-read-only", REPLICATION),
    ("slave-read-only", REPLICATION),
    ("replica-priority", REPLICATION),
    ("slave-priority", REPLICATION),
    ("replica-serve-stale-data", REPLICATION),
    ("slave-serve-stale-data", REPLICATION),
    ("replica-announced", REPLICATION),
    ("replica-ignore-maxmemory", REPLICA_MEMORY),
    ("slave-ignore-maxmemory", REPLICA_MEMORY),
    ("requirepass", AUTH),
    ("aclfile", AUTH),
    ("acl-pubsub-default", AUTH),
    ("port", NETWORK),
    ("bind", NETWORK),
    ("bind-source-addr", NETWORK),
    ("unixsocket", NETWORK),
    ("unixsocketperm", NETWORK),
    ("protected-mode", NETWORK),
    ("tcp-backlog", NETWORK),
    ("dir", FILES),
    ("dbfilename", FILES),
    ("logfile", FILES),
    ("pidfile", FILES),
    ("appendfilename", FILES),
    ("appenddirname", FILES),
    ("save", PERSISTENCE),
    ("appendonly", PERSISTENCE),
    ("appendfsync", PERSISTENCE),
    ("maxclients", CLIENTS),
    ("client-output-buffer-limit", REPLICA_LIMITS),
    ("daemonize", STARTUP_ONLY),
    ("supervised", STARTUP_ONLY),
    ("databases", STARTUP_ONLY),
    ("io-threads", STARTUP_ONLY),
    ("enable-debug-command", STARTUP_ONLY),
    ("enable-module-command", STARTUP_ONLY),
    ("enable-protected-configs", STARTUP_ONLY),
    ("rename-command", STARTUP_ONLY),
    ("oom-score-adj", HOST),
    ("oom-score-adj-values", HOST),
    ("disable-thp", HOST),
    ("shutdown-on-sigint", HOST),
    ("shutdown-on-sigterm", HOST),
];

/// Settings refused by prefix, with the reason.
const REFUSED_PREFIXES: &[(&str, &str)] = &[
    ("min-replicas-", FENCING),
    ("min-slaves-", FENCING),
    ("repl-", REPLICATION),
    ("replica-announce-", REPLICATION),
    ("slave-announce-", REPLICATION),
    ("tls-", NETWORK),
    ("cluster-", NOT_CLUSTER),
    ("aof-", PERSISTENCE),
    ("auto-aof-", PERSISTENCE),
    ("rdb", PERSISTENCE),
];

/// The names accepted by [`canonical_setting`] (without aliases), sorted.
pub fn safe_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SAFE.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names
}

/// Validates one setting and returns it in canonical form: `(name, value)` as `CONFIG GET`
/// on a Redis 7.0 server reports them after `CONFIG SET name value`.
pub fn canonical_setting(name: &str, value: &str) -> Result<(String, String), RedisSettingError> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = ALIASES.iter().find(|(alias, _)| *alias == lower).map(|(_, to)| to.to_string()).unwrap_or(lower);
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == lower) {
        return Err(RedisSettingError::Refused { name: lower, why });
    }
    if let Some((_, why)) = REFUSED_PREFIXES.iter().find(|(p, _)| lower.starts_with(p)) {
        return Err(RedisSettingError::Refused { name: lower, why });
    }
    let Some(spec) = SAFE.iter().find(|s| s.name == lower) else {
        return Err(RedisSettingError::Unknown { name: name.to_string() });
    };
    let bad = |why: String| RedisSettingError::BadValue { name: spec.name.to_string(), value: value.to_string(), why };
    let canonical = match spec.kind {
        Kind::Memory { max } => {
            let bytes = parse_memory(value).map_err(bad)?;
            if bytes > max {
                return Err(bad(format!("at most {max} bytes")));
            }
            bytes.to_string()
        }
        Kind::Int { min, max } => {
            let n: i64 = value.parse().map_err(|_| bad("not an integer".to_string()))?;
            if n < min || n > max {
                return Err(bad(format!("must be between {min} and {max}")));
            }
            n.to_string()
        }
        Kind::YesNo => match value.to_ascii_lowercase().as_str() {
            v @ ("yes" | "no") => v.to_string(),
            _ => return Err(bad("must be yes or no".to_string())),
        },
        Kind::OneOf(allowed) => {
            let v = value.to_ascii_lowercase();
            if !allowed.contains(&v.as_str()) {
                return Err(bad(format!("must be one of {}", allowed.join(", "))));
            }
            v
        }
        Kind::KeyspaceEvents => keyspace_events(value).map_err(bad)?,
    };
    Ok((spec.name.to_string(), canonical))
}

/// Redis's `memtoull`: digits and an optional unit, no sign, no fraction, no spaces.
pub fn parse_memory(value: &str) -> Result<u64, String> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() {
        return Err("not a memory size (digits with an optional unit b, k, kb, m, mb, g, gb)".to_string());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown unit {other:?} (use b, k, kb, m, mb, g or gb)")),
    };
    let n: u64 = digits.parse().map_err(|_| "too large".to_string())?;
    n.checked_mul(multiplier).ok_or_else(|| "too large".to_string())
}

/// Bytes for people: `67108864` → `64mb`, when it divides evenly.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 30, "gb"), (1 << 20, "mb"), (1 << 10, "kb")];
    for (size, unit) in UNITS {
        if bytes >= *size && bytes.checked_rem(*size) == Some(0) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}b")
}

/// Event classes in the order Redis 7.0 prints them; `A` stands for all of them.
const EVENT_CLASSES: &str = "g$lshzxetd";

/// `notify-keyspace-events` as Redis 7.0 prints it: `A` or the classes in its order, then
/// `n`, `K`, `E`, `m`.
fn keyspace_events(value: &str) -> Result<String, String> {
    let mut classes = std::collections::BTreeSet::new();
    let (mut new, mut keyspace, mut keyevent, mut miss) = (false, false, false, false);
    for c in value.chars() {
        match c {
            'A' => classes.extend(EVENT_CLASSES.chars()),
            'n' => new = true,
            'K' => keyspace = true,
            'E' => keyevent = true,
            'm' => miss = true,
            c if EVENT_CLASSES.contains(c) => {
                classes.insert(c);
            }
            other => return Err(format!("unknown event class {other:?} (use the characters of 'Ag$lshzxeKEtmdn')")),
        }
    }
    let all = EVENT_CLASSES.chars().all(|c| classes.contains(&c));
    if all && new {
        // Redis 7.0 then prints `A` alone and the `n` could never be read back.
        return Err("'n' together with every other class ('A') cannot be read back from Redis 7.0; \
                    leave out a class or 'n'"
            .to_string());
    }
    let mut out = String::new();
    if all {
        out.push('A');
    } else {
        out.extend(EVENT_CLASSES.chars().filter(|c| classes.contains(c)));
        if new {
            out.push('n');
        }
    }
    for (on, c) in [(keyspace, 'K'), (keyevent, 'E'), (miss, 'm')] {
        if on {
            out.push(c);
        }
    }
    Ok(out)
}

/// Whether the value of `name` is a byte count (so it can be shown as `64mb`).
pub fn is_memory_setting(name: &str) -> bool {
    SAFE.iter().any(|s| s.name == name && matches!(s.kind, Kind::Memory { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_settings_come_out_as_config_get_prints_them() {
        // Expected values checked against `CONFIG SET` + `CONFIG GET` on Redis 7.0.15.
        let table: &[(&str, &str, &str, &str)] = &[
            ("maxmemory", "64mb", "maxmemory", "67108864"),
            ("MAXMEMORY", "1k", "maxmemory", "1000"),
            ("maxmemory", "1KB", "maxmemory", "1024"),
            ("maxmemory", "1G", "maxmemory", "1000000000"),
            ("maxmemory", "1gb", "maxmemory", "1073741824"),
            ("maxmemory", "0", "maxmemory", "0"),
            ("maxmemory", "7b", "maxmemory", "7"),
            ("maxmemory", "18446744073709551615", "maxmemory", "18446744073709551615"),
            ("maxmemory-policy", "ALLKEYS-LRU", "maxmemory-policy", "allkeys-lru"),
            ("maxmemory-samples", "10", "maxmemory-samples", "10"),
            ("hz", "500", "hz", "500"),
            ("lazyfree-lazy-eviction", "YES", "lazyfree-lazy-eviction", "yes"),
            ("slowlog-log-slower-than", "-1", "slowlog-log-slower-than", "-1"),
            ("hash-max-ziplist-entries", "100", "hash-max-listpack-entries", "100"),
            ("hash-max-listpack-value", "1kb", "hash-max-listpack-value", "1024"),
            ("lua-time-limit", "6000", "busy-reply-threshold", "6000"),
            ("list-max-ziplist-size", "-2", "list-max-listpack-size", "-2"),
            ("notify-keyspace-events", "Ex", "notify-keyspace-events", "xE"),
            ("notify-keyspace-events", "KEA", "notify-keyspace-events", "AKE"),
            ("notify-keyspace-events", "g$lshzxetdKE", "notify-keyspace-events", "AKE"),
            ("notify-keyspace-events", "nmKE", "notify-keyspace-events", "nKEm"),
            ("notify-keyspace-events", "Am", "notify-keyspace-events", "Am"),
            ("notify-keyspace-events", "tdn", "notify-keyspace-events", "tdn"),
            ("notify-keyspace-events", "", "notify-keyspace-events", ""),
            (" timeout ", "300", "timeout", "300"),
        ];
        for (name, value, want_name, want_value) in table {
            let got = canonical_setting(name, value).unwrap_or_else(|e| panic!("{name} {value}: {e}"));
            assert_eq!(got, (want_name.to_string(), want_value.to_string()), "{name} {value}");
            // Canonical forms are fixed points.
            assert_eq!(canonical_setting(&got.0, &got.1).unwrap(), got, "{name} {value}");
        }
    }

    #[test]
    fn refused_and_bad_settings_say_why() {
        let table: &[(&str, &str, &str)] = &[
            ("replicaof", "h 1", "replication"),
            ("SLAVEOF", "h 1", "replication"),
            ("min-replicas-to-write", "0", "fence"),
            ("repl-timeout", "60", "replication"),
            ("requirepass", "x", "password"),
            ("dir", "/tmp", "file paths"),
            ("dbfilename", "x.rdb", "file paths"),
            ("save", "", "persistence"),
            ("appendonly", "yes", "persistence"),
            ("port", "1", "network identity"),
            ("bind", "0.0.0.0", "network identity"),
            ("tls-port", "1", "network identity"),
            ("maxclients", "1", "locks the controller"),
            ("cluster-enabled", "yes", "cluster mode"),
            ("replica-ignore-maxmemory", "no", "diverges"),
            ("client-output-buffer-limit", "replica 0 0 0", "resynchronisations"),
            ("no-such-thing", "1", "unknown or unsupported"),
            ("set-max-listpack-entries", "1", "unknown or unsupported"),
            ("maxmemory", "lots", "not a memory size"),
            ("maxmemory", "-1", "not a memory size"),
            ("maxmemory", "1.5mb", "unknown unit"),
            ("maxmemory", "1tb", "unknown unit"),
            ("maxmemory", "18446744073709551616", "too large"),
            ("maxmemory", "18446744073709551615kb", "too large"),
            ("hash-max-listpack-value", "9223372036854775808", "at most"),
            ("maxmemory-policy", "lru", "one of"),
            ("maxmemory-samples", "0", "between 1 and"),
            ("hz", "1000", "between 1 and 500"),
            ("timeout", "-1", "between 0 and"),
            ("timeout", "ten", "not an integer"),
            ("lazyfree-lazy-expire", "true", "yes or no"),
            ("notify-keyspace-events", "q", "unknown event class"),
            ("notify-keyspace-events", "AnKE", "cannot be read back"),
        ];
        for (name, value, needle) in table {
            let err = canonical_setting(name, value).expect_err(name).to_string();
            assert!(err.contains(needle), "{name} {value}: {err:?} should mention {needle:?}");
            assert!(err.contains(&name.trim().to_ascii_lowercase()) || err.contains(name), "names it: {err}");
        }
    }

    #[test]
    fn memory_sizes_for_people() {
        for (bytes, want) in [(67108864, "64mb"), (1024, "1kb"), (1 << 30, "1gb"), (1000, "1000b"), (0, "0b")] {
            assert_eq!(human_bytes(bytes), want);
        }
        assert!(is_memory_setting("maxmemory"));
        assert!(!is_memory_setting("maxmemory-policy"));
    }
}
