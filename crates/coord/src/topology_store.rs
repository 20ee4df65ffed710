//! The topology record: created once, then only ever replaced by compare-and-set.

use zedis_topology::Topology;
use zookeeper_client::OneshotWatcher;

use crate::error::{CoordError, Result};
use crate::paths::ClusterPaths;
use crate::session::{Zk, PERSISTENT};

/// A value read from ZooKeeper with the znode version to compare-and-set against.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i32,
}

#[derive(Clone, Debug)]
pub struct TopologyStore {
    zk: Zk,
    paths: ClusterPaths,
}

impl TopologyStore {
    pub fn new(zk: Zk, paths: ClusterPaths) -> TopologyStore {
        TopologyStore { zk, paths }
    }

    pub fn paths(&self) -> &ClusterPaths {
        &self.paths
    }

    /// Creates the cluster's nodes and its first topology record.
    pub async fn create(&self, topology: &Topology) -> Result<()> {
        let p = &self.paths;
        for dir in [p.base(), p.election(), p.observers(), p.proxies(), p.events(), p.requests()] {
            self.zk.ensure_path(&dir).await?;
        }
        let path = p.topology();
        if !self.zk.create(&path, &topology.to_json(), &PERSISTENT).await? {
            return Err(CoordError::ClusterExists { cluster: p.cluster().into(), root: p.root().into() });
        }
        Ok(())
    }

    fn decode(&self, data: &[u8], version: i32) -> Result<Versioned<Topology>> {
        let value = Topology::from_json(data)
            .map_err(|source| CoordError::BadRecord { path: self.paths.topology(), source })?;
        Ok(Versioned { value, version })
    }

    fn no_cluster(&self) -> CoordError {
        CoordError::NoCluster { cluster: self.paths.cluster().into(), root: self.paths.root().into() }
    }

    pub async fn read(&self) -> Result<Versioned<Topology>> {
        let (data, stat) = self.zk.get(&self.paths.topology()).await?.ok_or_else(|| self.no_cluster())?;
        self.decode(&data, stat.version)
    }

    /// Reads and leaves a one-shot watch that fires on the next change.
    pub async fn read_and_watch(&self) -> Result<(Versioned<Topology>, OneshotWatcher)> {
        let path = self.paths.topology();
        match self.zk.client().get_and_watch_data(&path).await {
            Ok((data, stat, watcher)) => Ok((self.decode(&data, stat.version)?, watcher)),
            Err(zookeeper_client::Error::NoNode) => Err(self.no_cluster()),
            Err(e) => Err(CoordError::zk(&path, e)),
        }
    }

    /// Replaces the record if nobody changed it since `expected_version`; returns the new version.
    pub async fn write(&self, topology: &Topology, expected_version: i32) -> Result<i32> {
        topology.check().map_err(|source| CoordError::BadRecord { path: self.paths.topology(), source })?;
        let stat = self.zk.set(&self.paths.topology(), &topology.to_json(), Some(expected_version)).await?;
        Ok(stat.version)
    }

    /// Names of every cluster under the root.
    pub async fn clusters(&self) -> Result<Vec<String>> {
        let mut names = self.zk.children(&self.paths.clusters()).await?;
        names.sort();
        Ok(names)
    }
}
