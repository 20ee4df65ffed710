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
            proxy: ProxyOptions {
                id: format!("client-{}", std::process::id()),
                role: crate::options::RouterRole::Client,
                ..ProxyOptions::default()
            },
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
///
/// It is also a `redis` crate connection ([`redis::aio::ConnectionLike`]): commands, pipelines,
/// atomic pipelines (MULTI/EXEC in one call) and scripts of the `redis` crate run over it,
/// routed in-process.
#[derive(Clone)]
pub struct Cluster {
    state: Arc<ProxyState>,
    /// The access every command runs with (full unless the options configure auth).
    role: Option<crate::auth::Role>,
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
        let role = client.role;
        Ok(Cluster { state, role, client: Arc::new(Mutex::new(client)), _stop: Arc::new(stop_tx) })
    }

    /// The topology epoch the client routes with.
    pub fn epoch(&self) -> u64 {
        self.state.routes.load().epoch
    }

    /// A number that changes when a group's master changes (a failover, a group added or
    /// removed), and not with other topology changes such as slot migrations: what a writer
    /// that must re-check its data after a failover watches.
    pub fn masters_generation(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let routes = self.state.routes.load();
        let mut masters: Vec<(u32, &str)> = routes.groups.iter().map(|g| (g.id, g.master.addr())).collect();
        masters.sort_unstable();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        masters.hash(&mut h);
        h.finish()
    }

    /// Runs one command and returns its reply; an error reply becomes `ClusterError::Reply`.
    pub async fn query<I, A>(&self, args: I) -> Result<Frame, ClusterError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let req = Request::from_args(args);
        self.state.check_zk_contact(std::time::Instant::now());
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

/// Client ids of the states `redis` crate calls run on, apart from the proxy's own ids.
static NEXT_CALL_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);

/// Commands that only make sense across calls on one connection (a transaction begun in one
/// call, subscriptions): refused, as each `redis` crate call runs on its own client state.
fn needs_a_connection(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 10] = [
        b"MULTI",
        b"EXEC",
        b"DISCARD",
        b"WATCH",
        b"UNWATCH",
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"SSUBSCRIBE",
        b"MONITOR",
        b"RESET",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn client_error(msg: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "zedis cluster", msg))
}

impl Cluster {
    /// Decodes packed commands and runs them in order on a fresh client state (a transaction
    /// stays within the call); returns each raw reply.
    ///
    /// A lone command that only makes sense on a connection of its own is refused (see
    /// [`needs_a_connection`]); in a pipeline MULTI/EXEC stay within the call and work.
    async fn run_packed(&self, packed: Vec<u8>, lone: bool) -> redis::RedisResult<Vec<bytes::Bytes>> {
        let mut decoder = zedis_resp::RequestDecoder::new(self.state.options.limits.clone());
        let mut buf = bytes::BytesMut::from(packed.as_slice());
        let mut requests = Vec::new();
        while !buf.is_empty() {
            match decoder.decode(&mut buf) {
                Ok(Some(req)) => requests.push(req),
                Ok(None) => return Err(client_error("incomplete command".into())),
                Err(e) => return Err(client_error(format!("unencodable command: {e}"))),
            }
        }
        if let (true, Some(req)) = (lone, requests.first()) {
            if needs_a_connection(req.name()) {
                return Err(client_error(format!(
                    "'{}' needs a connection of its own: run transactions as an atomic pipeline, subscribe through the proxy",
                    String::from_utf8_lossy(req.name()).to_lowercase()
                )));
            }
        }
        let (push, _) = mpsc::channel(1);
        let id = NEXT_CALL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut client = ClientState::new(id, "in-process".into(), push);
        client.role = self.role;
        let mut pending = Vec::with_capacity(requests.len());
        self.state.check_zk_contact(std::time::Instant::now());
        for req in requests {
            let mut spec = None;
            pending.push(dispatch(&self.state, &mut client, req, &mut spec).await);
        }
        let (_gone_tx, mut gone) = watch::channel(false);
        let mut replies = Vec::with_capacity(pending.len());
        for p in pending {
            replies.push(p.resolve(&self.state, &mut gone).await.0);
        }
        Ok(replies)
    }
}

impl redis::aio::ConnectionLike for Cluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let replies = self.run_packed(cmd.get_packed_command(), true).await?;
            match replies.first() {
                Some(reply) => redis::parse_redis_value(reply)?.extract_error(),
                None => Err(client_error("no command".into())),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let replies = self.run_packed(pipeline.get_packed_pipeline(), false).await?;
            replies.iter().skip(offset).take(count).map(|r| redis::parse_redis_value(r)).collect()
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
