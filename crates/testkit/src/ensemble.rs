//! A ZooKeeper ensemble: N [`ZkServer`] members on loopback, each in its own directory.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Instant;

use crate::dir::ServerDir;
use crate::error::mentions_address_in_use;
use crate::zookeeper::{Peer, Role, PORT_ATTEMPTS};
use crate::{free_port, Result, TestkitError, ZkOptions, ZkServer};

/// An N-node ZooKeeper ensemble (3 is typical) on free loopback ports. Node `i` (0-based)
/// has `myid` `i + 1` and lives in `DIR/node-{i+1}`. Dropping the ensemble kills every node.
///
/// Nodes are addressed by index. Either use the index methods ([`ZkEnsemble::kill9`],
/// [`ZkEnsemble::restart`], [`ZkEnsemble::pid`], [`ZkEnsemble::port`], ...) or take the
/// node itself with [`ZkEnsemble::node`], which is a full [`ZkServer`] (its `restart` waits
/// until the node is leader or follower again). Indices out of range panic, like slices.
pub struct ZkEnsemble {
    // Declared before `root`: the nodes must be dead before a temporary dir is removed.
    nodes: Vec<ZkServer>,
    root: ServerDir,
}

impl ZkEnsemble {
    /// Starts `n` nodes in a temporary directory and waits until every node is leader or
    /// follower.
    pub fn start(n: usize) -> Result<ZkEnsemble> {
        ZkEnsemble::start_with(n, ZkOptions::default())
    }

    /// Starts `n` nodes as `opts` says (`opts.dir` is the parent of the node directories,
    /// `opts.port` is ignored) and waits until every node is leader or follower (with one
    /// node, until it is standalone). `opts.ready_timeout` bounds the whole start.
    pub fn start_with(n: usize, opts: ZkOptions) -> Result<ZkEnsemble> {
        if n == 0 {
            return Err(TestkitError::Io(io::Error::new(io::ErrorKind::InvalidInput, "an ensemble needs a node")));
        }
        let root = ServerDir::create(opts.dir.as_deref(), "zedis-zk-ensemble-")?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let myid = i as u32 + 1;
            let dir = ServerDir::create(Some(&root.path().join(format!("node-{myid}"))), "")?;
            let role = Role::Member { myid, peers: Vec::new() };
            nodes.push(ZkServer::new(format!("zookeeper node {myid}"), dir, &opts, role));
        }
        let mut ensemble = ZkEnsemble { nodes, root };
        for attempt in 1..=PORT_ATTEMPTS {
            let mut offsets = Vec::new();
            match ensemble.try_start(attempt, &mut offsets) {
                Ok(()) => return Ok(ensemble),
                Err(e) => {
                    let bind_failed = e.is_address_in_use()
                        || ensemble
                            .nodes
                            .iter()
                            .zip(&offsets)
                            .any(|(node, offset)| mentions_address_in_use(&node.process().log_since(*offset)));
                    ensemble.kill_all();
                    if !(bind_failed && attempt < PORT_ATTEMPTS) {
                        return Err(e);
                    }
                    tracing::warn!(attempt, "a port was taken before zookeeper bound it; retrying on new ports");
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// One attempt on fresh ports. `offsets` receives each spawned node's log offset, so the
    /// caller can look for bind failures in this attempt's logs.
    fn try_start(&mut self, attempt: usize, offsets: &mut Vec<u64>) -> Result<()> {
        let mut peers = Vec::with_capacity(self.nodes.len());
        let mut client_ports = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let (client, quorum, election) = (free_port()?, free_port()?, free_port()?);
            peers.push(Peer { myid: i as u32 + 1, quorum_port: quorum, election_port: election });
            client_ports.push(client);
        }
        tracing::info!(
            nodes = self.nodes.len(),
            dir = %self.root.path().display(),
            ?client_ports,
            attempt,
            "starting zookeeper ensemble"
        );
        for (node, port) in self.nodes.iter_mut().zip(&client_ports) {
            node.set_port(*port);
            node.set_peers(peers.clone());
            offsets.push(node.spawn()?);
        }
        let timeout = self.nodes[0].ready_timeout();
        let deadline = Instant::now() + timeout;
        for (node, offset) in self.nodes.iter_mut().zip(offsets.iter()) {
            node.wait_ready(deadline, *offset)?;
        }
        tracing::info!(connect = %self.connect_string(), leader = ?self.leader(), "zookeeper ensemble ready");
        Ok(())
    }

    /// SIGKILL every node at once, then reap them all.
    fn kill_all(&mut self) {
        for node in &self.nodes {
            node.process().send_kill();
        }
        for node in &mut self.nodes {
            node.kill9();
        }
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,...` over every node, running or not.
    pub fn connect_string(&self) -> String {
        self.nodes.iter().map(ZkServer::connect_string).collect::<Vec<_>>().join(",")
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: an ensemble has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The parent directory of the node directories.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// Node `i` (0-based; its `myid` is `i + 1`).
    pub fn node(&mut self, i: usize) -> &mut ZkServer {
        &mut self.nodes[i]
    }

    /// All nodes, for read-only use (ports, pids, modes, logs).
    pub fn nodes(&self) -> &[ZkServer] {
        &self.nodes
    }

    /// Client port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// Pid of node `i` while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].pid()
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// SIGTERM node `i`, then SIGKILL after 5 s; reaps it.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// SIGSTOP node `i`.
    pub fn sigstop(&self, i: usize) {
        self.nodes[i].sigstop();
    }

    /// SIGCONT node `i`.
    pub fn sigcont(&self, i: usize) {
        self.nodes[i].sigcont();
    }

    /// Restarts node `i` on its ports and data and waits until it is leader or follower,
    /// which needs a quorum of running nodes.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.nodes[i].restart()
    }

    /// Starts every node that is not running, then waits until every node is leader or
    /// follower. This is how to bring back an ensemble that lost its quorum (a single
    /// [`ZkEnsemble::restart`] would wait for a quorum that is not there yet).
    pub fn restart_all(&mut self) -> Result<()> {
        let mut offsets = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            offsets.push(if node.is_running() { None } else { Some(node.spawn()?) });
        }
        let deadline = Instant::now() + self.nodes[0].ready_timeout();
        for (node, offset) in self.nodes.iter_mut().zip(offsets) {
            node.wait_ready(deadline, offset.unwrap_or(0))?;
        }
        Ok(())
    }

    /// Waits until every *running* node is leader or follower again, e.g. after killing the
    /// leader. Bounded by the ready timeout.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.nodes[0].ready_timeout();
        for node in &mut self.nodes {
            if node.is_running() {
                let offset = node.process().log_len().saturating_sub(LOG_LOOKBACK);
                node.wait_ready(deadline, offset)?;
            }
        }
        Ok(())
    }

    /// Index of the node whose `srvr` says `Mode: leader`, if any answers so now.
    pub fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.mode().as_deref() == Some("leader"))
    }

    /// `Mode` of every node as `srvr` reports it now (`None` for a node that does not answer).
    pub fn modes(&self) -> Vec<Option<String>> {
        self.nodes.iter().map(ZkServer::mode).collect()
    }
}

/// How much earlier log [`ZkEnsemble::wait_ready`] puts in its error.
const LOG_LOOKBACK: u64 = 16 * 1024;

impl Drop for ZkEnsemble {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl fmt::Debug for ZkEnsemble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkEnsemble").field("dir", &self.root).field("nodes", &self.nodes).finish()
    }
}
