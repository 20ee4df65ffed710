//! Operator requests: the CLI queues an [`AdminRequest`], the controller leader applies it and
//! writes the [`Outcome`] back into the same node, the CLI reads it and removes the node.

use std::time::{Duration, Instant};

use zedis_topology::{now_ms, AdminOp, AdminRequest, Outcome};

use crate::error::{CoordError, Result};
use crate::paths::ClusterPaths;
use crate::session::Zk;

/// Handled requests the submitter never collected are removed after this long.
const STALE_AFTER_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no controller leader handled the request within {0:?}; is `zedis controller` running for this cluster?")]
    NoLeader(Duration),
    #[error("controller {by} took the request but gave no answer within {after:?}; see `zedis cluster events`")]
    NoAnswer { by: String, after: Duration },
    #[error(transparent)]
    Coord(#[from] CoordError),
}

#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub path: String,
    pub version: i32,
    pub request: AdminRequest,
}

#[derive(Clone, Debug)]
pub struct RequestQueue {
    zk: Zk,
    dir: String,
}

impl RequestQueue {
    pub fn new(zk: Zk, paths: &ClusterPaths) -> RequestQueue {
        RequestQueue { zk, dir: paths.requests() }
    }

    /// Queues `op` and waits for the leader's outcome.
    pub async fn submit(&self, op: AdminOp, by: &str, timeout: Duration) -> std::result::Result<Outcome, RequestError> {
        let request = AdminRequest {
            op,
            by: by.to_string(),
            time_ms: now_ms(),
            taken_by: None,
            taken_epoch: None,
            outcome: None,
        };
        self.zk.ensure_path(&self.dir).await?;
        let data = serde_json::to_vec(&request).unwrap_or_default();
        let path = self.zk.create_sequential(&format!("{}/r-", self.dir), &data, false).await?;
        let deadline = Instant::now() + timeout;
        // Once taken, a request may run for a while (a switchover waits for catch-up), and a
        // successor leader redoes it if the taker dies; but never wait forever.
        let answer_deadline = deadline + Duration::from_secs(60);
        loop {
            let (data, stat, watcher) = match self.zk.client().get_and_watch_data(&path).await {
                Ok(v) => v,
                Err(e) => return Err(CoordError::zk(&path, e).into()),
            };
            let seen = serde_json::from_slice::<AdminRequest>(&data).ok();
            if let Some(AdminRequest { outcome: Some(outcome), .. }) = seen {
                self.zk.delete(&path, None).await?;
                return Ok(outcome);
            }
            if let Some(AdminRequest { taken_by: Some(by), .. }) = seen {
                let remaining = answer_deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(remaining, watcher.changed()).await.is_err() {
                    return Err(RequestError::NoAnswer { by, after: timeout + Duration::from_secs(60) });
                }
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, watcher.changed()).await.is_err() {
                // Withdraw it unless the leader has just taken it (then its version moved).
                match self.zk.delete(&path, Some(stat.version)).await {
                    Ok(_) => return Err(RequestError::NoLeader(timeout)),
                    Err(CoordError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// Requests without an outcome, oldest first; also drops stale handled ones.
    pub async fn pending(&self) -> Result<Vec<PendingRequest>> {
        let mut names = self.zk.children(&self.dir).await?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let path = format!("{}/{name}", self.dir);
            let Some((data, stat)) = self.zk.get(&path).await? else { continue };
            match serde_json::from_slice::<AdminRequest>(&data) {
                Ok(request) if request.outcome.is_none() => {
                    out.push(PendingRequest { path, version: stat.version, request })
                }
                Ok(request) => {
                    let handled = request.outcome.map(|o| o.time_ms).unwrap_or(0);
                    if now_ms().saturating_sub(handled) > STALE_AFTER_MS {
                        self.zk.delete(&path, None).await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(path, error = %e, "dropping unreadable admin request");
                    self.zk.delete(&path, None).await?;
                }
            }
        }
        Ok(out)
    }

    /// Marks the request as taken by `controller`, so its submitter stops trying to withdraw it.
    pub async fn take(&self, pending: &PendingRequest, controller: &str, epoch: u64) -> Result<PendingRequest> {
        let mut request = pending.request.clone();
        request.taken_by = Some(controller.to_string());
        request.taken_epoch.get_or_insert(epoch);
        let data = serde_json::to_vec(&request).unwrap_or_default();
        let stat = self.zk.set(&pending.path, &data, Some(pending.version)).await?;
        Ok(PendingRequest { path: pending.path.clone(), version: stat.version, request })
    }

    /// Records the outcome; `Conflict` if someone else handled or withdrew it first.
    pub async fn complete(&self, pending: &PendingRequest, outcome: Outcome) -> Result<()> {
        let mut request = pending.request.clone();
        request.outcome = Some(outcome);
        let data = serde_json::to_vec(&request).unwrap_or_default();
        match self.zk.set(&pending.path, &data, Some(pending.version)).await {
            Err(CoordError::Zk { source: zookeeper_client::Error::NoNode, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
