//! Where every controller publishes what it sees, and the leader reads all of it.

use zedis_topology::ObserverReport;

use crate::error::Result;
use crate::paths::ClusterPaths;
use crate::session::Zk;

/// One observer's latest report as read, with its znode version (which changes on every
/// publish, so a reader can tell a live observer from a stuck one by its own clock).
#[derive(Clone, Debug)]
pub struct PostedReport {
    pub observer: String,
    pub version: i32,
    pub report: Option<ObserverReport>,
}

#[derive(Clone, Debug)]
pub struct ObserverBoard {
    zk: Zk,
    paths: ClusterPaths,
}

impl ObserverBoard {
    pub fn new(zk: Zk, paths: ClusterPaths) -> ObserverBoard {
        ObserverBoard { zk, paths }
    }

    /// Publishes this session's report as an ephemeral node.
    pub async fn publish(&self, report: &ObserverReport) -> Result<()> {
        let data = serde_json::to_vec(report).unwrap_or_default();
        self.zk.put_ephemeral(&self.paths.observer(&report.observer), &data).await
    }

    pub async fn read_all(&self) -> Result<Vec<PostedReport>> {
        let mut out = Vec::new();
        for name in self.zk.children(&self.paths.observers()).await? {
            if let Some((data, stat)) = self.zk.get(&self.paths.observer(&name)).await? {
                let report = serde_json::from_slice::<ObserverReport>(&data).ok();
                out.push(PostedReport { observer: name, version: stat.version, report });
            }
        }
        out.sort_by(|a, b| a.observer.cmp(&b.observer));
        Ok(out)
    }
}
