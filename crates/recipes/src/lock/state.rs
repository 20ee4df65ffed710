//! Lock state as ZooKeeper has it (holders, tokens, waiters), for `zedis lock list` and for
//! anyone who wants to look without taking the lock.

use serde::Serialize;
use zedis_coord::Zk;

use super::contender::{holds, in_order, ContenderKind, ContenderRecord};
use super::error::LockError;
use super::options::{lock_dir, locks_dir};

/// One lock (or read-write lock, or semaphore) and its queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockState {
    pub name: String,
    /// Who holds it now: one for a mutex or a writer, any number of readers or permits.
    pub holders: Vec<ContenderState>,
    /// How many wait (`waiters.len()`).
    pub waiting: usize,
    /// Who waits, in queue order.
    pub waiters: Vec<ContenderState>,
}

impl LockState {
    /// The first holder, if any (the holder, for a mutex).
    pub fn holder(&self) -> Option<&ContenderState> {
        self.holders.first()
    }
}

/// One contender in a lock's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContenderState {
    /// Its node name.
    pub node: String,
    pub kind: ContenderKind,
    /// Its fencing token (the node's czxid).
    pub token: u64,
    /// Since when it holds (ms since the Unix epoch), for holders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// What it wrote into its node; `None` if that does not parse (not a zedis contender).
    #[serde(flatten)]
    pub record: Option<ContenderRecord>,
}

/// The state of lock `name` under `root`; a lock nobody holds or waits for is empty.
pub async fn lock_state(zk: &Zk, root: &str, name: &str) -> Result<LockState, LockError> {
    let dir = lock_dir(root, name)?;
    let names = zk.children(&dir).await?;
    let queue = in_order(&names);
    // Requests go out as they are made: send every read, then collect (one round trip).
    let reads: Vec<_> = queue.iter().map(|c| zk.client().get_data(&format!("{dir}/{}", c.name))).collect();
    let mut present = Vec::with_capacity(queue.len());
    let mut found = Vec::with_capacity(queue.len());
    for (contender, read) in queue.iter().zip(reads) {
        match read.await {
            Ok((data, stat)) => {
                let record = serde_json::from_slice::<ContenderRecord>(&data).ok();
                if record.is_none() {
                    tracing::debug!(lock = %name, node = %contender.name, "contender data is not a zedis record");
                }
                present.push(contender.clone());
                found.push((stat.czxid.max(0) as u64, record));
            }
            // Left between the listing and the read.
            Err(zookeeper_client::Error::NoNode) => {}
            Err(e) => return Err(LockError::zk(&dir, e)),
        }
    }
    let mut state = LockState { name: name.to_string(), holders: Vec::new(), waiting: 0, waiters: Vec::new() };
    for (i, (contender, (token, record))) in present.iter().zip(found).enumerate() {
        let permits = record.as_ref().and_then(|r| r.permits).unwrap_or(1);
        let holding = holds(&present, i, permits);
        let entry = ContenderState {
            node: contender.name.clone(),
            kind: contender.kind,
            token,
            since_ms: if holding { record.as_ref().map(ContenderRecord::since_ms) } else { None },
            record,
        };
        if holding {
            state.holders.push(entry);
        } else {
            state.waiters.push(entry);
        }
    }
    state.waiting = state.waiters.len();
    Ok(state)
}

/// The state of every lock under `root`, by name.
pub async fn list_locks(zk: &Zk, root: &str) -> Result<Vec<LockState>, LockError> {
    let mut names = zk.children(&locks_dir(root)?).await?;
    names.sort();
    let mut locks = Vec::with_capacity(names.len());
    for name in names {
        match lock_state(zk, root, &name).await {
            Ok(state) => locks.push(state),
            // Not a name we would create (someone else's node): skip it.
            Err(LockError::BadName(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(locks)
}
