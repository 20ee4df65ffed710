//! A ZooKeeper session with zedis's defaults and error mapping.

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, SessionState, Stat};

use crate::error::{CoordError, Result};

/// How to reach ZooKeeper.
#[derive(Clone, Debug)]
pub struct ZkOptions {
    /// Connect string, e.g. `127.0.0.1:2181,127.0.0.1:2182`.
    pub hosts: String,
    /// Negotiated with the server; ephemeral nodes vanish this long after a process dies.
    pub session_timeout: Duration,
    /// Give up establishing the first session after this long.
    pub connect_timeout: Duration,
}

impl ZkOptions {
    pub fn new(hosts: impl Into<String>) -> ZkOptions {
        ZkOptions {
            hosts: hosts.into(),
            session_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

pub(crate) const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
pub(crate) const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
pub(crate) const EPHEMERAL_SEQUENTIAL: CreateOptions<'static> =
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
pub(crate) const PERSISTENT_SEQUENTIAL: CreateOptions<'static> =
    CreateMode::PersistentSequential.with_acls(Acls::anyone_all());

/// A live ZooKeeper session. Cheap to clone; clones share the session.
#[derive(Clone, Debug)]
pub struct Zk {
    client: Client,
    hosts: String,
}

impl Zk {
    /// Opens a session, failing with [`CoordError::Unreachable`] after `connect_timeout`.
    pub async fn connect(options: &ZkOptions) -> Result<Zk> {
        let unreachable = || CoordError::Unreachable { hosts: options.hosts.clone(), after: options.connect_timeout };
        let connect = Client::connector().with_session_timeout(options.session_timeout).connect(&options.hosts);
        let client = match tokio::time::timeout(options.connect_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(zookeeper_client::Error::Timeout | zookeeper_client::Error::NoHosts)) | Err(_) => {
                return Err(unreachable())
            }
            Ok(Err(e)) => return Err(CoordError::zk("/", e)),
        };
        Ok(Zk { client, hosts: options.hosts.clone() })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    pub fn session_timeout(&self) -> Duration {
        self.client.session_timeout()
    }

    pub fn state(&self) -> SessionState {
        self.client.state()
    }

    /// `mkdir -p` for persistent nodes.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        self.client.mkdir(path, &PERSISTENT).await.map_err(|e| CoordError::zk(path, e))
    }

    pub async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        match self.client.get_data(path).await {
            Ok(v) => Ok(Some(v)),
            Err(zookeeper_client::Error::NoNode) => Ok(None),
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    pub async fn children(&self, path: &str) -> Result<Vec<String>> {
        match self.client.list_children(path).await {
            Ok(v) => Ok(v),
            Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    /// Creates a node; `Ok(false)` if it already existed.
    pub async fn create(&self, path: &str, data: &[u8], options: &CreateOptions<'_>) -> Result<bool> {
        match self.client.create(path, data, options).await {
            Ok(_) => Ok(true),
            Err(zookeeper_client::Error::NodeExists) => Ok(false),
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    /// Creates a sequential node and returns its full path.
    pub async fn create_sequential(&self, prefix: &str, data: &[u8], ephemeral: bool) -> Result<String> {
        let options = if ephemeral { &EPHEMERAL_SEQUENTIAL } else { &PERSISTENT_SEQUENTIAL };
        let (_, seq) = self.client.create(prefix, data, options).await.map_err(|e| CoordError::zk(prefix, e))?;
        Ok(format!("{prefix}{seq}"))
    }

    /// Compare-and-set write; [`CoordError::Conflict`] when the version moved.
    pub async fn set(&self, path: &str, data: &[u8], expected_version: Option<i32>) -> Result<Stat> {
        match self.client.set_data(path, data, expected_version).await {
            Ok(stat) => Ok(stat),
            Err(zookeeper_client::Error::BadVersion) => {
                Err(CoordError::Conflict { path: path.to_string(), expected: expected_version.unwrap_or(-1) })
            }
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    /// Deletes a node; `Ok(false)` if it was not there.
    pub async fn delete(&self, path: &str, expected_version: Option<i32>) -> Result<bool> {
        match self.client.delete(path, expected_version).await {
            Ok(()) => Ok(true),
            Err(zookeeper_client::Error::NoNode) => Ok(false),
            Err(zookeeper_client::Error::BadVersion) => {
                Err(CoordError::Conflict { path: path.to_string(), expected: expected_version.unwrap_or(-1) })
            }
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    /// Writes an ephemeral node, creating it if needed (it vanishes with this session).
    /// Sets a persistent node, creating it (and its parents) when missing.
    pub async fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        match self.client.set_data(path, data, None).await {
            Ok(_) => Ok(()),
            Err(zookeeper_client::Error::NoNode) => {
                if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
                    self.ensure_path(parent).await?;
                }
                match self.client.create(path, data, &PERSISTENT).await {
                    Ok(_) => Ok(()),
                    Err(zookeeper_client::Error::NodeExists) => {
                        self.client.set_data(path, data, None).await.map(|_| ()).map_err(|e| CoordError::zk(path, e))
                    }
                    Err(e) => Err(CoordError::zk(path, e)),
                }
            }
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }

    pub async fn put_ephemeral(&self, path: &str, data: &[u8]) -> Result<()> {
        match self.client.set_data(path, data, None).await {
            Ok(stat) if stat.ephemeral_owner == self.client.session_id().0 => Ok(()),
            // Left over from an expired session of ours: it would vanish with that session.
            Ok(_) => {
                self.delete(path, None).await?;
                self.client.create(path, data, &EPHEMERAL).await.map(|_| ()).map_err(|e| CoordError::zk(path, e))
            }
            Err(zookeeper_client::Error::NoNode) => match self.client.create(path, data, &EPHEMERAL).await {
                Ok(_) => Ok(()),
                // Lost a race with our own earlier create: overwrite.
                Err(zookeeper_client::Error::NodeExists) => {
                    self.client.set_data(path, data, None).await.map(|_| ()).map_err(|e| CoordError::zk(path, e))
                }
                Err(e) => Err(CoordError::zk(path, e)),
            },
            Err(e) => Err(CoordError::zk(path, e)),
        }
    }
}
