//! Options of the config client and of its writes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::format::Format;

/// Default number of versions kept in each key's history.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// How a [`ConfigClient`](super::ConfigClient) works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigOptions {
    /// Root of zedis's nodes in ZooKeeper (config lives under `<root>/config`).
    pub root: String,
    /// Versions kept in each key's history (at least 1), trimmed on every write.
    pub history_limit: usize,
    /// Recorded with every write (default `USER@HOST`).
    pub author: String,
    /// Where to keep the last snapshot of every namespace this client reads, and serve it
    /// from when ZooKeeper cannot be reached. `None`: no snapshots, reads fail instead.
    pub snapshot_dir: Option<PathBuf>,
    /// This client's labels: it sees the canary candidates whose selector they match.
    pub labels: BTreeMap<String, String>,
}

impl Default for ConfigOptions {
    fn default() -> ConfigOptions {
        ConfigOptions {
            root: "/zedis".to_string(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            author: default_author(),
            snapshot_dir: None,
            labels: BTreeMap::new(),
        }
    }
}

/// How one value is published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Validated on publish.
    pub format: Format,
    /// Compare-and-set: publish only if the key is at exactly this version (0: only if the key
    /// never existed); otherwise [`ConfigError::VersionConflict`](super::ConfigError).
    pub expect_version: Option<u64>,
    /// Why, for the history.
    pub comment: String,
}

/// How a canary candidate is published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryOptions {
    /// Clients whose labels include all of these see the candidate (must not be empty).
    pub selector: BTreeMap<String, String>,
    pub format: Format,
    pub comment: String,
}

/// `USER@HOST` of this process, as far as it can be told.
pub fn default_author() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{user}@{host}")
}
