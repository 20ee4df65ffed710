//! [`Discovery`]: the entry point to service discovery.

use std::time::Duration;

use zedis_coord::{Zk, ZkOptions};

use super::cache::ServiceCache;
use super::error::Result;
use super::instance::ServiceInstance;
use super::keeper::SessionKeeper;
use super::mirror::{MirrorOptions, ServiceMirror};
use super::paths::{check_service, ServicePaths};
use super::reader::{list_services, read_service};
use super::registration::Registration;

/// Where discovery lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// Root of zedis's nodes in ZooKeeper (services are under `<root>/services`).
    pub root: String,
}

impl Default for DiscoveryOptions {
    fn default() -> DiscoveryOptions {
        DiscoveryOptions { root: "/zedis".to_string() }
    }
}

/// Service discovery over one kept ZooKeeper session (see [`SessionKeeper`]): registrations,
/// caches and the mirror made from it share that session and all move to its replacement
/// after an expiry. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Discovery {
    keeper: SessionKeeper,
    paths: ServicePaths,
}

impl Discovery {
    /// Opens a session and keeps it. Fails if ZooKeeper is unreachable or the root is bad.
    pub async fn connect(zk: ZkOptions, options: DiscoveryOptions) -> Result<Discovery> {
        let paths = ServicePaths::new(&options.root)?;
        Ok(Discovery { keeper: SessionKeeper::connect(zk).await?, paths })
    }

    /// Uses an open session (shared with other recipes) and `zk` to replace it after expiry.
    /// Must be called within a tokio runtime.
    pub fn with_session(session: Zk, zk: ZkOptions, options: DiscoveryOptions) -> Result<Discovery> {
        let paths = ServicePaths::new(&options.root)?;
        Ok(Discovery { keeper: SessionKeeper::with_session(session, zk), paths })
    }

    /// Shares an existing keeper.
    pub fn with_keeper(keeper: SessionKeeper, options: DiscoveryOptions) -> Result<Discovery> {
        Ok(Discovery { keeper, paths: ServicePaths::new(&options.root)? })
    }

    pub fn keeper(&self) -> &SessionKeeper {
        &self.keeper
    }

    pub fn paths(&self) -> &ServicePaths {
        &self.paths
    }

    /// Registers `instance` (setting `registered_at` if it is 0) and keeps it registered until
    /// the returned handle is deregistered or dropped. Returns once the node is written.
    ///
    /// # Cancellation safety
    /// If dropped before it returns, the node may have been written; it then stays until
    /// the session ends (or an equal registration takes it over).
    pub async fn register(&self, instance: ServiceInstance) -> Result<Registration> {
        Registration::start(&self.keeper, &self.paths, instance).await
    }

    /// The services that have a node (possibly without live instances), sorted.
    pub async fn services(&self) -> Result<Vec<String>> {
        list_services(self.keeper.zk().client(), &self.paths).await
    }

    /// The live instances of `service` now, ordered by id (one read; use [`Discovery::cache`]
    /// to follow them).
    pub async fn instances(&self, service: &str) -> Result<Vec<ServiceInstance>> {
        check_service(service)?;
        let records = read_service(self.keeper.zk().client(), &self.paths, service).await?;
        Ok(records.into_values().map(|r| r.instance).collect())
    }

    /// Starts following `service`; see [`ServiceCache::ready`] to wait for the first read.
    /// Must be called within a tokio runtime.
    pub fn cache(&self, service: &str) -> Result<ServiceCache> {
        ServiceCache::start(&self.keeper, &self.paths, service)
    }

    /// A mirror of every service into Redis; it runs when [`ServiceMirror::run`] is awaited.
    pub fn mirror<C>(&self, redis: C, options: MirrorOptions) -> ServiceMirror<C>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        ServiceMirror::new(self.keeper.clone(), self.paths.clone(), redis, options)
    }

    /// Drops this handle and waits, at most `timeout`, until the session is closed — which
    /// happens once every registration, cache and mirror made from it is dropped too (other
    /// clones of this `Discovery` and of its keeper included). Call it before a process
    /// exits: ZooKeeper then deletes what the session still holds at once rather than after
    /// the session timeout, and no background task is torn down mid-flight by the runtime's
    /// shutdown. Returns whether the session closed in time.
    pub async fn close(self, timeout: Duration) -> bool {
        let zk = self.keeper.zk();
        let mut states = zk.client().state_watcher();
        let mut state = zk.state();
        drop(zk);
        drop(self);
        tokio::time::timeout(timeout, async {
            while !state.is_terminated() {
                state = states.changed().await;
            }
        })
        .await
        .is_ok()
    }
}
