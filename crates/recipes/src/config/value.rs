//! What readers get: [`ConfigValue`] (one key) and [`NamespaceView`] (a namespace), each saying
//! where it came from ([`Source`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::ConfigRecord;

/// Where a value was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// From ZooKeeper, now.
    #[serde(rename = "zookeeper")]
    ZooKeeper,
    /// ZooKeeper is unreachable: from this client's last snapshot of the namespace, taken at
    /// `taken_at_ms` (ms since the Unix epoch). It may be stale.
    LocalSnapshot { taken_at_ms: u64 },
}

impl Source {
    /// The value may be stale (ZooKeeper could not be asked).
    pub fn is_stale(&self) -> bool {
        matches!(self, Source::LocalSnapshot { .. })
    }
}

/// One key's value as this client sees it (a canary candidate if its labels are selected).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigValue {
    pub namespace: String,
    pub key: String,
    #[serde(flatten)]
    pub record: ConfigRecord,
    #[serde(flatten)]
    pub source: Source,
}

/// Every live key of a namespace as this client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamespaceView {
    pub namespace: String,
    pub entries: BTreeMap<String, ConfigRecord>,
    #[serde(flatten)]
    pub source: Source,
}
