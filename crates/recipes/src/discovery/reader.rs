//! Reading services and their instance records from ZooKeeper (shared by the cache, the
//! mirror and one-off listings).

use std::collections::BTreeMap;

use zookeeper_client::{Client, MultiReadResult};

use super::error::{DiscoveryError, Result};
use super::instance::ServiceInstance;
use super::paths::{check_instance_id, check_service, ServicePaths};

/// An instance as read: parsed, plus the exact bytes of its znode (what the mirror copies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub instance: ServiceInstance,
    pub raw: String,
}

/// Records per multi-read: keeps each reply far below ZooKeeper's 1 MiB packet limit even
/// with records of [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES) / 8.
const READ_BATCH: usize = 64;

/// The names of the services under `<root>/services` (valid names only).
pub(crate) async fn list_services(client: &Client, paths: &ServicePaths) -> Result<Vec<String>> {
    let dir = paths.services();
    let mut names = match client.list_children(&dir).await {
        Ok(names) => names,
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => return Err(DiscoveryError::zk(&dir, e)),
    };
    names.retain(|n| check_service(n).is_ok());
    names.sort();
    Ok(names)
}

/// Every readable instance record of `service`, by id. Records that do not parse are logged
/// and left out (they are not instances a client could use); nodes that vanish while being
/// read are simply absent.
pub(crate) async fn read_service(
    client: &Client,
    paths: &ServicePaths,
    service: &str,
) -> Result<BTreeMap<String, Record>> {
    let dir = paths.service(service);
    let mut ids = match client.list_children(&dir).await {
        Ok(ids) => ids,
        Err(zookeeper_client::Error::NoNode) => return Ok(BTreeMap::new()),
        Err(e) => return Err(DiscoveryError::zk(&dir, e)),
    };
    ids.retain(|id| match check_instance_id(id) {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(service, id, "ignoring a node whose name is not an instance id");
            false
        }
    });
    let mut out = BTreeMap::new();
    for batch in ids.chunks(READ_BATCH) {
        // One round trip per batch instead of one per instance.
        let mut reader = client.new_multi_reader();
        for id in batch {
            let path = paths.instance(service, id);
            reader.add_get_data(&path).map_err(|e| DiscoveryError::zk(&path, e))?;
        }
        let results = reader.commit().await.map_err(|e| DiscoveryError::zk(&dir, e))?;
        for (id, result) in batch.iter().zip(results) {
            let path = paths.instance(service, id);
            match result {
                MultiReadResult::Data { data, .. } => {
                    if let Some(record) = parse(service, id, &path, data) {
                        out.insert(id.clone(), record);
                    }
                }
                MultiReadResult::Error { err: zookeeper_client::Error::NoNode } => {}
                MultiReadResult::Error { err } => return Err(DiscoveryError::zk(&path, err)),
                other => tracing::warn!(path, ?other, "unexpected multi-read result"),
            }
        }
    }
    Ok(out)
}

/// One instance record; `None` if the node is gone or its record does not parse.
pub(crate) async fn read_instance(
    client: &Client,
    paths: &ServicePaths,
    service: &str,
    id: &str,
) -> Result<Option<Record>> {
    let path = paths.instance(service, id);
    match client.get_data(&path).await {
        Ok((data, _)) => Ok(parse(service, id, &path, data)),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(DiscoveryError::zk(&path, e)),
    }
}

fn parse(service: &str, id: &str, path: &str, data: Vec<u8>) -> Option<Record> {
    let instance = match ServiceInstance::from_record(service, id, path, &data) {
        Ok(instance) => instance,
        Err(error) => {
            tracing::warn!(path, %error, "ignoring an instance record that does not parse");
            return None;
        }
    };
    // It parsed as JSON, so it is UTF-8.
    let raw = String::from_utf8(data).ok()?;
    Some(Record { instance, raw })
}
