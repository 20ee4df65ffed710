//! The bounded event history of a cluster: persistent sequential nodes, oldest trimmed.

use zedis_topology::Event;

use crate::error::Result;
use crate::paths::ClusterPaths;
use crate::session::Zk;

/// Events kept per cluster.
pub const EVENT_HISTORY: usize = 1000;

#[derive(Clone, Debug)]
pub struct EventLog {
    zk: Zk,
    dir: String,
    keep: usize,
}

impl EventLog {
    pub fn new(zk: Zk, paths: &ClusterPaths) -> EventLog {
        EventLog { zk, dir: paths.events(), keep: EVENT_HISTORY }
    }

    pub fn with_limit(mut self, keep: usize) -> EventLog {
        self.keep = keep.max(1);
        self
    }

    /// Appends an event and trims the oldest beyond the limit.
    pub async fn append(&self, event: &Event) -> Result<()> {
        let data = serde_json::to_vec(event).unwrap_or_default();
        self.zk.create_sequential(&format!("{}/e-", self.dir), &data, false).await?;
        let mut names = self.zk.children(&self.dir).await?;
        if names.len() > self.keep {
            names.sort();
            for name in &names[..names.len() - self.keep] {
                self.zk.delete(&format!("{}/{name}", self.dir), None).await?;
            }
        }
        Ok(())
    }

    /// The newest `n` events, oldest first. Unreadable entries are skipped.
    pub async fn recent(&self, n: usize) -> Result<Vec<Event>> {
        let mut names = self.zk.children(&self.dir).await?;
        names.sort();
        let start = names.len().saturating_sub(n);
        let mut out = Vec::new();
        for name in &names[start..] {
            if let Some((data, _)) = self.zk.get(&format!("{}/{name}", self.dir)).await? {
                if let Ok(event) = serde_json::from_slice::<Event>(&data) {
                    out.push(event);
                }
            }
        }
        Ok(out)
    }
}
