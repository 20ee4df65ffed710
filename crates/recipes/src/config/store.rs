//! The thin I/O layer over ZooKeeper: read a key (its released record and canary in one
//! consistent read), a whole namespace, a history; carry out a [`WritePlan`] as one
//! transaction. Decides nothing: [`plan`] does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, MultiReadResult, MultiWriteError, Stat};

use super::error::{ConfigError, Result};
use super::paths::{history_version, ConfigPaths};
use super::plan::{history_to_trim, plan, Change, Stamp, WritePlan};
use super::record::ConfigRecord;

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

/// Keys read per multi-read request, so that a response stays well under ZooKeeper's 1 MiB
/// packet limit (each record is at most `MAX_RECORD_BYTES`, but typical ones are small; a
/// namespace of large values is read in more, smaller requests).
const READ_BATCH: usize = 32;

/// A write re-reads and retries this often when other writers keep winning the race.
const MAX_WRITE_ATTEMPTS: u32 = 64;

/// How long one read or write may wait on ZooKeeper (e.g. while the connection is down).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A record as stored, with what is needed to compare-and-set it.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub record: ConfigRecord,
    pub raw: Vec<u8>,
    pub stat: Stat,
}

/// One key as read: the released record and the canary candidate.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyState {
    pub released: Option<Stored>,
    pub canary: Option<Stored>,
}

/// A whole namespace as read.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamespaceRead {
    pub keys: BTreeMap<String, KeyState>,
    /// Keys whose records do not parse (logged): neither told nor mirrored, and not taken
    /// for deleted either.
    pub unreadable: BTreeSet<String>,
}

/// Runs a ZooKeeper request with [`REQUEST_TIMEOUT`], mapping a timeout to a connection loss.
async fn timed<T>(
    path: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, zookeeper_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(result) => result.map_err(|e| ConfigError::zk(path, e)),
        Err(_) => Err(ConfigError::zk(path, zookeeper_client::Error::ConnectionLoss)),
    }
}

/// Reads one key (record and canary) in one consistent read.
pub(crate) async fn read_key(client: &Client, paths: &ConfigPaths, namespace: &str, key: &str) -> Result<KeyState> {
    let mut read = read_keys(client, paths, namespace, std::slice::from_ref(&key.to_string())).await?;
    if read.unreadable.contains(key) {
        // A single key asked for by name: say why it cannot be read.
        let path = paths.key(namespace, key);
        let (data, _) = timed(&path, client.get_data(&path)).await?;
        ConfigRecord::parse(&path, &data)?;
    }
    Ok(read.keys.remove(key).unwrap_or_default())
}

/// Reads every key of a namespace (an empty read if it does not exist).
pub(crate) async fn read_namespace(client: &Client, paths: &ConfigPaths, namespace: &str) -> Result<NamespaceRead> {
    let dir = paths.namespace(namespace);
    let keys = match timed(&dir, client.list_children(&dir)).await {
        Ok(keys) => keys,
        Err(ConfigError::Coord(zedis_coord::CoordError::Zk { source: zookeeper_client::Error::NoNode, .. })) => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let mut out = NamespaceRead::default();
    for chunk in keys.chunks(READ_BATCH) {
        let part = read_keys(client, paths, namespace, chunk).await?;
        out.keys.extend(part.keys);
        out.unreadable.extend(part.unreadable);
    }
    Ok(out)
}

/// The namespaces that exist, sorted.
pub(crate) async fn list_namespaces(client: &Client, paths: &ConfigPaths) -> Result<Vec<String>> {
    let mut namespaces = match timed(paths.base(), client.list_children(paths.base())).await {
        Ok(n) => n,
        Err(ConfigError::Coord(zedis_coord::CoordError::Zk { source: zookeeper_client::Error::NoNode, .. })) => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    namespaces.sort();
    Ok(namespaces)
}

/// Reads `keys` (record and canary each) in one multi-read.
async fn read_keys(client: &Client, paths: &ConfigPaths, namespace: &str, keys: &[String]) -> Result<NamespaceRead> {
    let mut reader = client.new_multi_reader();
    for key in keys {
        let path = paths.key(namespace, key);
        reader.add_get_data(&path).map_err(|e| ConfigError::zk(&path, e))?;
        let canary = paths.canary(namespace, key);
        reader.add_get_data(&canary).map_err(|e| ConfigError::zk(&canary, e))?;
    }
    let results = timed(&paths.namespace(namespace), reader.commit()).await?;
    if results.len() != keys.len() * 2 {
        return Err(ConfigError::zk(
            &paths.namespace(namespace),
            zookeeper_client::Error::UnexpectedError(format!("{} results for {} reads", results.len(), keys.len() * 2)),
        ));
    }
    let mut out = NamespaceRead::default();
    let mut results = results.into_iter();
    for key in keys {
        let (Some(released), Some(canary)) = (results.next(), results.next()) else { break };
        let released = stored(&paths.key(namespace, key), released);
        let canary = stored(&paths.canary(namespace, key), canary);
        match (released, canary) {
            (Ok(released), Ok(canary)) => {
                if released.is_some() || canary.is_some() {
                    out.keys.insert(key.clone(), KeyState { released, canary });
                }
            }
            (Err(e), _) | (_, Err(e)) if !e.is_unreachable() => {
                tracing::warn!(namespace, key, error = %e, "skipping an unreadable config record");
                out.unreadable.insert(key.clone());
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
    }
    Ok(out)
}

fn stored(path: &str, result: MultiReadResult) -> Result<Option<Stored>> {
    match result {
        MultiReadResult::Data { data, stat } => {
            let record = ConfigRecord::parse(path, &data)?;
            Ok(Some(Stored { record, raw: data, stat }))
        }
        MultiReadResult::Error { err: zookeeper_client::Error::NoNode } => Ok(None),
        MultiReadResult::Error { err } => Err(ConfigError::zk(path, err)),
        _ => {
            Err(ConfigError::zk(path, zookeeper_client::Error::UnexpectedError("children in a data read".to_string())))
        }
    }
}

/// The key's history, newest first.
pub(crate) async fn read_history(
    client: &Client,
    paths: &ConfigPaths,
    namespace: &str,
    key: &str,
) -> Result<Vec<ConfigRecord>> {
    let dir = paths.history_dir(namespace, key);
    let names = match timed(&dir, client.list_children(&dir)).await {
        Ok(names) => names,
        Err(ConfigError::Coord(zedis_coord::CoordError::Zk { source: zookeeper_client::Error::NoNode, .. })) => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let mut versions: Vec<u64> = names.iter().filter_map(|n| history_version(n)).collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut out = Vec::with_capacity(versions.len());
    for chunk in versions.chunks(READ_BATCH) {
        let mut reader = client.new_multi_reader();
        for v in chunk {
            let path = paths.history(namespace, key, *v);
            reader.add_get_data(&path).map_err(|e| ConfigError::zk(&path, e))?;
        }
        let results = timed(&dir, reader.commit()).await?;
        for (v, result) in chunk.iter().zip(results) {
            let path = paths.history(namespace, key, *v);
            match stored(&path, result) {
                Ok(Some(s)) => out.push(s.record),
                // Trimmed between the listing and the read.
                Ok(None) => {}
                Err(e) if e.is_unreachable() => return Err(e),
                Err(e) => tracing::warn!(path, error = %e, "skipping an unreadable history record"),
            }
        }
    }
    Ok(out)
}

/// One version out of the history.
pub(crate) async fn read_history_version(
    client: &Client,
    paths: &ConfigPaths,
    namespace: &str,
    key: &str,
    version: u64,
) -> Result<Option<ConfigRecord>> {
    let path = paths.history(namespace, key, version);
    match timed(&path, client.get_data(&path)).await {
        Ok((data, _)) => Ok(Some(ConfigRecord::parse(&path, &data)?)),
        Err(ConfigError::Coord(zedis_coord::CoordError::Zk { source: zookeeper_client::Error::NoNode, .. })) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What each operation of a write transaction is, to understand which one failed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    CreateKey,
    CreateHistoryDir,
    SetKey,
    CreateCanary,
    DeleteCanary,
    CreateHistory(u64),
}

/// Applies `change` to `namespace/key`: read, plan, write as one transaction (compare-and-set
/// on the key node and the canary node), retrying when another writer got there first (the
/// plan decides again on what it re-reads, so an `expect_version` that no longer holds becomes
/// [`ConfigError::VersionConflict`]). Trims the history to `history_limit` afterwards.
///
/// # Cancellation safety
/// The transaction is atomic: if dropped, the change was made entirely or not at all (and the
/// history may not be trimmed yet; the next write trims it).
pub(crate) async fn write(
    client: &Client,
    paths: &ConfigPaths,
    namespace: &str,
    key: &str,
    change: &Change,
    author: &str,
    history_limit: usize,
) -> Result<ConfigRecord> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > MAX_WRITE_ATTEMPTS {
            return Err(ConfigError::Contention {
                namespace: namespace.to_string(),
                key: key.to_string(),
                attempts: MAX_WRITE_ATTEMPTS,
            });
        }
        let state = read_key(client, paths, namespace, key).await?;
        let stamp = Stamp { time_ms: super::record::now_ms(), author: author.to_string() };
        let planned = plan(
            namespace,
            key,
            state.released.as_ref().map(|s| &s.record),
            state.canary.as_ref().map(|s| &s.record),
            change,
            &stamp,
        )?;
        match commit(client, paths, namespace, key, &state, &planned).await {
            Ok(()) => {
                tracing::info!(
                    namespace,
                    key,
                    version = planned.result.version,
                    deleted = planned.result.deleted,
                    canary = planned.result.is_canary_candidate(),
                    author,
                    "config written"
                );
                if !planned.history.is_empty() {
                    trim_history(client, paths, namespace, key, history_limit).await;
                }
                return Ok(planned.result);
            }
            Err(Retry::Again) => continue,
            Err(Retry::Missing(path)) => {
                // The namespace (or a history folder) is missing: create it and try again.
                timed(&path, client.mkdir(&path, &PERSISTENT)).await?;
            }
            Err(Retry::Stale(path)) => {
                // A history node left over from a key removed by hand: replace it.
                tracing::warn!(path, "removing a stale history node");
                match timed(&path, client.delete(&path, None)).await {
                    Ok(()) => {}
                    Err(ConfigError::Coord(zedis_coord::CoordError::Zk {
                        source: zookeeper_client::Error::NoNode,
                        ..
                    })) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(Retry::Fail(e)) => return Err(e),
        }
    }
}

/// Why a transaction did not commit.
enum Retry {
    /// Someone else changed the key or its canary: read and plan again.
    Again,
    /// A parent node is missing: create it, then retry.
    Missing(String),
    /// A history node that should not exist: delete it, then retry.
    Stale(String),
    Fail(ConfigError),
}

async fn commit(
    client: &Client,
    paths: &ConfigPaths,
    namespace: &str,
    key: &str,
    state: &KeyState,
    planned: &WritePlan,
) -> std::result::Result<(), Retry> {
    let key_path = paths.key(namespace, key);
    let canary_path = paths.canary(namespace, key);
    let mut writer = client.new_multi_writer();
    let mut ops = Vec::new();
    let fail = |path: &str, e: zookeeper_client::Error| Retry::Fail(ConfigError::zk(path, e));
    let encode = |r: &ConfigRecord| r.to_json().map_err(Retry::Fail);
    if let Some(record) = &planned.released {
        let data = encode(record)?;
        match &state.released {
            Some(s) => {
                writer.add_set_data(&key_path, &data, Some(s.stat.version)).map_err(|e| fail(&key_path, e))?;
                ops.push(Op::SetKey);
            }
            None => {
                writer.add_create(&key_path, &data, &PERSISTENT).map_err(|e| fail(&key_path, e))?;
                ops.push(Op::CreateKey);
                let dir = paths.history_dir(namespace, key);
                writer.add_create(&dir, b"", &PERSISTENT).map_err(|e| fail(&dir, e))?;
                ops.push(Op::CreateHistoryDir);
            }
        }
    } else if planned.fence_released {
        let s = state.released.as_ref().ok_or(Retry::Again)?;
        writer.add_set_data(&key_path, &s.raw, Some(s.stat.version)).map_err(|e| fail(&key_path, e))?;
        ops.push(Op::SetKey);
    }
    if let Some(record) = &planned.create_canary {
        let data = encode(record)?;
        writer.add_create(&canary_path, &data, &PERSISTENT).map_err(|e| fail(&canary_path, e))?;
        ops.push(Op::CreateCanary);
    }
    if planned.delete_canary {
        let s = state.canary.as_ref().ok_or(Retry::Again)?;
        writer.add_delete(&canary_path, Some(s.stat.version)).map_err(|e| fail(&canary_path, e))?;
        ops.push(Op::DeleteCanary);
    }
    for record in &planned.history {
        let path = paths.history(namespace, key, record.version);
        let data = encode(record)?;
        writer.add_create(&path, &data, &PERSISTENT).map_err(|e| fail(&path, e))?;
        ops.push(Op::CreateHistory(record.version));
    }
    let result = match tokio::time::timeout(REQUEST_TIMEOUT, writer.commit()).await {
        Ok(result) => result,
        Err(_) => return Err(fail(&key_path, zookeeper_client::Error::ConnectionLoss)),
    };
    match result {
        Ok(_) => Ok(()),
        Err(MultiWriteError::RequestFailed { source }) => Err(fail(&key_path, source)),
        Err(MultiWriteError::OperationFailed { index, source }) => {
            use zookeeper_client::Error::{BadVersion, NoNode, NodeExists};
            match (ops.get(index), source) {
                // Lost a race with another writer (or the key was removed by hand).
                (Some(Op::SetKey | Op::CreateKey | Op::CreateCanary | Op::DeleteCanary), BadVersion | NodeExists)
                | (Some(Op::SetKey | Op::DeleteCanary), NoNode) => Err(Retry::Again),
                (Some(Op::CreateKey), NoNode) => Err(Retry::Missing(paths.namespace(namespace))),
                (Some(Op::CreateHistory(_)), NoNode) => Err(Retry::Missing(paths.history_dir(namespace, key))),
                // The key node was created by hand, without its history folder.
                (Some(Op::CreateHistoryDir), NodeExists) => Err(Retry::Again),
                (Some(Op::CreateHistory(v)), NodeExists) => Err(Retry::Stale(paths.history(namespace, key, *v))),
                (_, source) => Err(fail(&key_path, source)),
            }
        }
    }
}

/// Deletes the oldest history versions beyond `limit`. Best effort: a failure is logged and
/// the next write trims again.
async fn trim_history(client: &Client, paths: &ConfigPaths, namespace: &str, key: &str, limit: usize) {
    let dir = paths.history_dir(namespace, key);
    let names = match timed(&dir, client.list_children(&dir)).await {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(path = dir, %error, "cannot list the history to trim it");
            return;
        }
    };
    let versions: Vec<u64> = names.iter().filter_map(|n| history_version(n)).collect();
    for v in history_to_trim(&versions, limit) {
        let path = paths.history(namespace, key, v);
        match timed(&path, client.delete(&path, None)).await {
            Ok(()) => {}
            Err(ConfigError::Coord(zedis_coord::CoordError::Zk {
                source: zookeeper_client::Error::NoNode, ..
            })) => {}
            Err(error) => {
                tracing::warn!(path, %error, "cannot trim the history");
                return;
            }
        }
    }
}
