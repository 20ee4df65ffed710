//! Leader election: each candidate holds an ephemeral sequential node; the lowest sequence
//! leads; every other candidate watches only its predecessor (no herd on a change).
//!
//! Node names carry a per-candidate random token before the sequence, so a candidate whose
//! create reply was lost can find its own node again instead of leaving an orphan.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::error::{CoordError, Result};
use crate::session::{Zk, EPHEMERAL_SEQUENTIAL};

/// Width of the sequence suffix ZooKeeper appends.
const SEQ_DIGITS: usize = 10;

fn random_token() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// The sequence of a candidate node name, `None` for names that are not candidates.
pub fn sequence_of(name: &str) -> Option<u64> {
    if name.len() < SEQ_DIGITS {
        return None;
    }
    name[name.len() - SEQ_DIGITS..].parse().ok()
}

/// Candidate node names in election order (lowest sequence first).
pub fn in_order(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| sequence_of(n).is_some());
    names.sort_by_key(|n| sequence_of(n));
    names
}

/// One candidacy. Dropping it does not withdraw: call [`Candidate::resign`] (or let the
/// session end).
#[derive(Debug)]
pub struct Candidate {
    zk: Zk,
    dir: String,
    name: String,
    czxid: i64,
}

impl Candidate {
    /// Enters the election under `dir` with `data` (usually the candidate's id) as node data.
    ///
    /// A create whose reply is lost (connection loss) may or may not have happened: the node is
    /// looked for by the candidate's token (and this session as its owner) once the connection
    /// is back, and created again with the same token only if it is not there, so a candidate
    /// never leaves a second node of its own in the line (it would wait on itself forever).
    ///
    /// # Cancellation safety
    /// Not cancellation safe: dropped after the create reached the server, the node stays until
    /// the session ends. Callers that may be cancelled run it in a task of their own.
    pub async fn join(zk: &Zk, dir: &str, data: &[u8]) -> Result<Candidate> {
        zk.ensure_path(dir).await?;
        let token = random_token();
        let prefix = format!("{dir}/c-{token}-");
        loop {
            match zk.client().create(&prefix, data, &EPHEMERAL_SEQUENTIAL).await {
                Ok((stat, seq)) => {
                    let name = format!("c-{token}-{seq}");
                    return Ok(Candidate { zk: zk.clone(), dir: dir.to_string(), name, czxid: stat.czxid });
                }
                Err(zookeeper_client::Error::ConnectionLoss) => {
                    if let Some((name, czxid)) = find_own(zk, dir, &token).await? {
                        return Ok(Candidate { zk: zk.clone(), dir: dir.to_string(), name, czxid });
                    }
                    // Not there: the create did not happen; try again with the same token.
                }
                Err(e) => return Err(CoordError::zk(&prefix, e)),
            }
        }
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }

    /// The node's name within the election directory (`c-<token>-<seq>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The election directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The zxid of the transaction that created this candidacy's node. It is greater for every
    /// later candidacy in any election of the ensemble, across sessions, server restarts and
    /// re-creation of the directory, which makes it a fencing token for the candidate's term.
    pub fn czxid(&self) -> i64 {
        self.czxid
    }

    /// The sequence number of this candidacy; it rises with every new candidacy, so it serves
    /// as the leader's epoch.
    pub fn sequence(&self) -> u64 {
        sequence_of(&self.name).unwrap_or(0)
    }

    /// Waits until this candidate leads.
    ///
    /// # Cancellation safety
    /// Safe: dropping the future leaves the candidacy in place.
    pub async fn wait_for_leadership(&self) -> Result<()> {
        loop {
            let names = in_order(self.zk.children(&self.dir).await?);
            let Some(pos) = names.iter().position(|n| *n == self.name) else {
                return Err(CoordError::SessionExpired);
            };
            if pos == 0 {
                return Ok(());
            }
            let predecessor = format!("{}/{}", self.dir, names[pos - 1]);
            match self.zk.client().check_and_watch_stat(&predecessor).await {
                Ok((Some(_), watcher)) => {
                    watcher.changed().await;
                }
                Ok((None, _)) => {}
                Err(e) => return Err(CoordError::zk(&predecessor, e)),
            }
        }
    }

    /// Whether our node still exists and still leads (a read; use after a reconnect).
    pub async fn is_leader(&self) -> Result<bool> {
        let names = in_order(self.zk.children(&self.dir).await?);
        Ok(names.first() == Some(&self.name))
    }

    /// Withdraws from the election (idempotent).
    pub async fn resign(self) -> Result<()> {
        self.zk.delete(&self.path(), None).await.map(|_| ())
    }
}

/// How long to wait before asking again while the connection is down.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Looks for the node this session created with `token` (after a create's reply was lost),
/// asking again while the connection is down; ends with the session.
async fn find_own(zk: &Zk, dir: &str, token: &str) -> Result<Option<(String, i64)>> {
    let marker = format!("c-{token}-");
    let session = zk.client().session_id().0;
    loop {
        let names = match zk.children(dir).await {
            Ok(names) => names,
            Err(CoordError::ConnectionLoss) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(name) = names.into_iter().find(|n| n.starts_with(&marker)) else {
            return Ok(None);
        };
        match zk.get(&format!("{dir}/{name}")).await {
            Ok(Some((_, stat))) if stat.ephemeral_owner == session => return Ok(Some((name, stat.czxid))),
            // Gone again, or not ours (a token collision): it is not our candidacy.
            Ok(_) => return Ok(None),
            Err(CoordError::ConnectionLoss) => tokio::time::sleep(RETRY_PAUSE).await,
            Err(e) => return Err(e),
        }
    }
}

/// The data of the current leader's node, if there is a leader.
pub async fn current_leader(zk: &Zk, dir: &str) -> Result<Option<Vec<u8>>> {
    for name in in_order(zk.children(dir).await?) {
        if let Some((data, _)) = zk.get(&format!("{dir}/{name}")).await? {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_by_sequence_not_token() {
        let names = vec![
            "c-ffff-0000000003".to_string(),
            "c-0000-0000000010".to_string(),
            "c-aaaa-0000000001".to_string(),
            "junk".to_string(),
        ];
        assert_eq!(in_order(names), vec!["c-aaaa-0000000001", "c-ffff-0000000003", "c-0000-0000000010"]);
    }
}
