//! The acting leader announces itself in an ephemeral node, so readers learn who *acts*, not
//! merely whose election node sorts first (which can belong to a session about to expire).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::paths::ClusterPaths;
use crate::session::Zk;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub id: String,
    /// The election sequence of the leader's candidacy: rises with every new leadership.
    pub term: u64,
    pub since_ms: u64,
}

impl LeaderRecord {
    pub async fn publish(&self, zk: &Zk, paths: &ClusterPaths) -> Result<()> {
        zk.put_ephemeral(&paths.leader(), &serde_json::to_vec(self).unwrap_or_default()).await
    }

    /// Removes the record if it is ours (on resignation).
    pub async fn withdraw(&self, zk: &Zk, paths: &ClusterPaths) -> Result<()> {
        if let Some(current) = LeaderRecord::read(zk, paths).await? {
            if current == *self {
                zk.delete(&paths.leader(), None).await?;
            }
        }
        Ok(())
    }

    pub async fn read(zk: &Zk, paths: &ClusterPaths) -> Result<Option<LeaderRecord>> {
        Ok(zk.get(&paths.leader()).await?.and_then(|(data, _)| serde_json::from_slice(&data).ok()))
    }
}
