//! Leader election: each candidate holds an ephemeral sequential node; the lowest sequence
//! leads; every other candidate watches only its predecessor (no herd on a change).
//!
//! Node names carry a per-candidate random token before the sequence, so a candidate whose
//! create reply was lost can find its own node again instead of leaving an orphan.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::error::{CoordError, Result};
use crate::session::Zk;

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
}

impl Candidate {
    /// Enters the election under `dir` with `data` (usually the candidate's id) as node data.
    pub async fn join(zk: &Zk, dir: &str, data: &[u8]) -> Result<Candidate> {
        zk.ensure_path(dir).await?;
        let token = random_token();
        let prefix = format!("{dir}/c-{token}-");
        let name = match zk.create_sequential(&prefix, data, true).await {
            Ok(path) => path[dir.len() + 1..].to_string(),
            Err(CoordError::ConnectionLoss) => {
                // The create may have happened: look for our token.
                let names = zk.children(dir).await?;
                match names.into_iter().find(|n| n.contains(&token)) {
                    Some(n) => n,
                    None => Box::pin(Candidate::join(zk, dir, data)).await?.name,
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Candidate { zk: zk.clone(), dir: dir.to_string(), name })
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
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
