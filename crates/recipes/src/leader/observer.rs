//! Who leads an election, for anyone: [`current_leader`] (one read) and [`observe`] (a watch
//! that follows every change). Observers do not take part in the election.

use std::time::Duration;

use tokio::sync::watch;
use zedis_coord::election::in_order;
use zedis_coord::{CoordError, SessionState, Zk};
use zookeeper_client::OneshotWatcher;

use super::error::{zk_error, ElectionError};
use super::options::election_dir;
use super::record::LeaderInfo;

/// Pause before reading again after a failed read.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The leader of `election` under `root` now, or `None` when nobody stands.
///
/// This is the first candidate in line: it leads, or is about to notice it does (until then
/// [`LeaderInfo::since_ms`] is its node's creation time). It is a read from the server this
/// session talks to, which may lag the ensemble slightly.
///
/// # Cancellation safety
/// Safe: it only reads.
pub async fn current_leader(zk: &Zk, root: &str, election: &str) -> Result<Option<LeaderInfo>, ElectionError> {
    let dir = election_dir(root, election)?;
    Ok(read(zk, &dir, false).await?.0)
}

/// Follows the leader of `election` under `root`: the receiver holds the leader now and
/// changes with each new leader (or when the leader publishes when it began). Nothing is
/// created in ZooKeeper; an election nobody has joined yet reads `None` until someone does.
///
/// The first value is read before this returns (its errors are returned). Afterwards the
/// value stays at the last one read while the connection is suspended, and the channel closes
/// (`changed()` fails) when the session ends: observe again with a new session. Only the
/// first candidate's node is watched, so a long line of candidates costs observers nothing.
///
/// # Cancellation safety
/// Safe. The follower task stops when every receiver is dropped.
pub async fn observe(
    zk: &Zk,
    root: &str,
    election: &str,
) -> Result<watch::Receiver<Option<LeaderInfo>>, ElectionError> {
    let dir = election_dir(root, election)?;
    let (first, watcher) = read(zk, &dir, true).await?;
    let (tx, rx) = watch::channel(first);
    tokio::spawn(follow(zk.clone(), dir, tx, watcher));
    Ok(rx)
}

async fn follow(zk: Zk, dir: String, tx: watch::Sender<Option<LeaderInfo>>, mut watcher: Option<OneshotWatcher>) {
    let mut states = zk.client().state_watcher();
    loop {
        // A change of what we watch; without a watch armed, any session state change.
        let woke = async {
            match watcher.take() {
                Some(w) => drop(w.changed().await),
                None => drop(states.changed().await),
            }
        };
        tokio::select! {
            _ = woke => {}
            _ = tx.closed() => return,
        }
        loop {
            if is_over(zk.state()) {
                tracing::debug!(dir, "session over: the leader observer stops");
                return;
            }
            match read(&zk, &dir, true).await {
                Ok((leader, w)) => {
                    watcher = w;
                    tx.send_if_modified(|now| {
                        if *now == leader {
                            return false;
                        }
                        tracing::debug!(dir, leader = ?leader.as_ref().map(|l| (&l.id, l.epoch)), "leader changed");
                        *now = leader;
                        true
                    });
                    break;
                }
                Err(e) if e.is_session_lost() => return,
                Err(e) => {
                    if !matches!(e, ElectionError::Coord(CoordError::ConnectionLoss)) {
                        tracing::warn!(dir, error = %e, "cannot read the election; trying again");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        }
    }
}

fn is_over(state: SessionState) -> bool {
    matches!(state, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed)
}

/// Reads the first candidate; with `watch`, also arms a watch that fires when that may have
/// changed: on the first node (its deletion or data change) or, with no candidate, on the
/// directory's children (or on its creation when it does not exist yet).
async fn read(zk: &Zk, dir: &str, watch: bool) -> Result<(Option<LeaderInfo>, Option<OneshotWatcher>), ElectionError> {
    let client = zk.client();
    loop {
        let names = in_order(zk.children(dir).await?);
        if names.is_empty() {
            if !watch {
                return Ok((None, None));
            }
            match client.list_and_watch_children(dir).await {
                Ok((names, w)) if in_order(names.clone()).is_empty() => return Ok((None, Some(w))),
                // Someone joined in between: read again.
                Ok(_) => continue,
                Err(zookeeper_client::Error::NoNode) => match client.check_and_watch_stat(dir).await {
                    Ok((None, w)) => return Ok((None, Some(w))),
                    Ok((Some(_), _)) => continue,
                    Err(e) => return Err(zk_error(dir, e).into()),
                },
                Err(e) => return Err(zk_error(dir, e).into()),
            }
        }
        for name in names {
            let path = format!("{dir}/{name}");
            let got = if watch {
                client.get_and_watch_data(&path).await.map(|(data, stat, w)| (data, stat, Some(w)))
            } else {
                client.get_data(&path).await.map(|(data, stat)| (data, stat, None))
            };
            match got {
                Ok((data, stat, w)) => return Ok((Some(LeaderInfo::from_node(&path, &name, &data, &stat)?), w)),
                // Left between the listing and the read: the next one is first now.
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(zk_error(&path, e).into()),
            }
        }
        // Every listed candidate left meanwhile: read again.
    }
}
