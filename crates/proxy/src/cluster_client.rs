//! `Cluster`: a Rust client that reads the topology from ZooKeeper and sends each command
//! straight to the right master, with the proxy's own routing code (no proxy hop).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use zedis_proxy::cluster_client::{Cluster, ClusterOptions};
//! let cluster = Cluster::connect(ClusterOptions::new("127.0.0.1:2181", "default")).await?;
//! cluster.query(["SET", "greeting", "hello"]).await?;
//! let value = cluster.query(["GET", "greeting"]).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use zedis_coord::{ClusterPaths, CoordError, ZkOptions};
use zedis_resp::{Frame, Request};

use crate::dispatch::{dispatch, ClientState};
use crate::options::ProxyOptions;
use crate::state::ProxyState;

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub zk: ZkOptions,
    pub root: String,
    pub cluster: String,
    /// How long `connect` waits for the first topology.
    pub ready_timeout: Duration,
    /// Routing, timeouts, durability: as for the proxy.
    pub proxy: ProxyOptions,
}

impl ClusterOptions {
    pub fn new(zk: &str, cluster: &str) -> ClusterOptions {
        ClusterOptions {
            zk: ZkOptions::new(zk),
            root: "/zedis".into(),
            cluster: cluster.into(),
            ready_timeout: Duration::from_secs(10),
            proxy: ProxyOptions { id: format!("client-{}", std::process::id()), ..ProxyOptions::default() },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Coord(#[from] CoordError),
    #[error("no topology for cluster {0:?} within {1:?}")]
    NoTopology(String, Duration),
    /// The server (or the router) answered with an error reply.
    #[error("{0}")]
    Reply(String),
    #[error("unreadable reply")]
    BadReply,
}

/// A handle on a zedis cluster; cheap to clone, shared by many tasks.
#[derive(Clone)]
pub struct Cluster {
    state: Arc<ProxyState>,
    /// One client state per handle family: commands keep their order on a lane.
    client: Arc<Mutex<ClientState>>,
    _stop: Arc<watch::Sender<bool>>,
}

impl Cluster {
    /// Connects to ZooKeeper and waits until the cluster's topology is known.
    pub async fn connect(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let paths = ClusterPaths::new(&options.root, &options.cluster)?;
        // Fail fast with ZooKeeper's own error when it is unreachable or the cluster is missing.
        let zk = zedis_coord::Zk::connect(&options.zk).await?;
        zedis_coord::TopologyStore::new(zk, paths.clone()).read().await?;
        let state = ProxyState::new(options.proxy.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(crate::follower::follow(state.clone(), options.zk.clone(), paths, stop_rx));
        let deadline = tokio::time::Instant::now() + options.ready_timeout;
        while state.routes.load().epoch == 0 {
            if tokio::time::Instant::now() > deadline {
                let _ = stop_tx.send(true);
                return Err(ClusterError::NoTopology(options.cluster, options.ready_timeout));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Pushes only matter to subscribers, which this handle does not offer.
        let (push, _) = mpsc::channel(1);
        let mut client = ClientState::new(0, "in-process".into(), push);
        client.role = options.proxy.auth.initial_role();
        Ok(Cluster { state, client: Arc::new(Mutex::new(client)), _stop: Arc::new(stop_tx) })
    }

    /// The topology epoch the client routes with.
    pub fn epoch(&self) -> u64 {
        self.state.routes.load().epoch
    }

    /// Runs one command and returns its reply; an error reply becomes `ClusterError::Reply`.
    pub async fn query<I, A>(&self, args: I) -> Result<Frame, ClusterError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let req = Request::from_args(args);
        let pending = {
            let mut client = self.client.lock().await;
            let mut spec = None;
            dispatch(&self.state, &mut client, req, &mut spec).await
        };
        let (_gone_tx, mut gone) = watch::channel(false);
        let (bytes, _) = pending.resolve(&self.state, &mut gone).await;
        match Frame::parse(&bytes) {
            Ok(Some((frame, _))) if frame.is_error() => Err(ClusterError::Reply(
                String::from_utf8_lossy(frame.error_message().unwrap_or_default()).into_owned(),
            )),
            Ok(Some((frame, _))) => Ok(frame),
            _ => Err(ClusterError::BadReply),
        }
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<bytes::Bytes>, ClusterError> {
        let frame = self.query([b"GET".as_slice(), key.as_ref()]).await?;
        Ok(frame.as_bytes().cloned())
    }

    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), ClusterError> {
        self.query([b"SET".as_slice(), key.as_ref(), value.as_ref()]).await.map(|_| ())
    }
}
