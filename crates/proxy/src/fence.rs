//! Epoch fencing of replies: a write is never acknowledged from a server that is no longer its
//! group's master in the current topology, and a read that raced a failover is tried once more
//! on the new master. The decision is a pure function, tested with a table.

use std::time::Duration;

use bytes::Bytes;

use crate::backend::{Lane, Reply};
use crate::route_table::RouteTable;
use crate::state::ProxyState;

/// What a request was sent against. Holds no reference-counted handle: this is built for
/// every request, and counts shared by all worker threads would bounce between cores.
pub struct Fence {
    pub epoch: u64,
    pub group: u32,
    /// [`ServerPool::id`] of the master it went to.
    pub pool: u64,
    pub write: bool,
    /// The client's connection lane (see [`ServerPool::send`]).
    pub lane: Lane,
    /// The request, to send again (reads only).
    pub raw: Bytes,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// The master changed under a write: its outcome is unknown, so it is not acknowledged.
    Refuse,
    /// The master changed under a read (or the read failed as the master died): ask the new one.
    Retry,
}

/// `same_master`: the group's master now is the server the request went to (false if the
/// group is gone).
pub fn verdict(sent_epoch: u64, now_epoch: u64, same_master: bool, write: bool, failed: bool) -> Verdict {
    let moved = now_epoch != sent_epoch && !same_master;
    match (moved, write, failed) {
        (false, _, _) => Verdict::Deliver,
        (true, true, false) => Verdict::Refuse,
        (true, true, true) => Verdict::Deliver, // an error is never an acknowledgement
        (true, false, _) => Verdict::Retry,
    }
}

/// Whether `addr` is the master of `group` in `routes`.
fn master_is(routes: &RouteTable, group: u32, addr: &str) -> bool {
    routes.groups.iter().any(|g| g.id == group && g.master.addr() == addr)
}

/// Whether the pool `pool` (a [`ServerPool::id`]) is the master of `group` in `routes`.
fn master_pool_is(routes: &RouteTable, group: u32, pool: u64) -> bool {
    routes.groups.iter().any(|g| g.id == group && g.master.id() == pool)
}

/// Whether `addr` is still the master of `group` in the current route table.
pub fn still_master(state: &ProxyState, group: u32, addr: &str) -> bool {
    master_is(&state.routes.load(), group, addr)
}

pub const REFUSED: &str =
    "TRYAGAIN the group's master changed while the write was in flight; its outcome is unknown, retry it";

impl Fence {
    /// Applies the verdict to a reply that arrived (or failed).
    pub async fn settle(self, state: &ProxyState, reply: Reply, timeout: Duration) -> Reply {
        let routes = state.routes.load();
        if routes.epoch == self.epoch {
            return reply;
        }
        let current = routes.groups.iter().find(|g| g.id == self.group);
        let failed = reply.is_err();
        let same = master_pool_is(&routes, self.group, self.pool);
        match verdict(self.epoch, routes.epoch, same, self.write, failed) {
            Verdict::Deliver => reply,
            Verdict::Refuse => Ok(error(REFUSED)),
            Verdict::Retry => {
                let Some(group) = current else { return reply };
                let rx = group.master.send(self.lane, self.raw).await;
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(r)) => r,
                    _ => reply,
                }
            }
        }
    }
}

pub fn error(msg: &str) -> Bytes {
    let mut out = bytes::BytesMut::new();
    zedis_resp::write_error(&mut out, msg);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        type Case = (&'static str, u64, u64, bool, bool, bool, Verdict);
        let table: &[Case] = &[
            ("same epoch", 3, 3, true, true, false, Verdict::Deliver),
            ("new epoch, same master (another group changed)", 3, 4, true, true, false, Verdict::Deliver),
            ("write acknowledged by a deposed master", 3, 4, false, true, false, Verdict::Refuse),
            ("write failed as the master died", 3, 4, false, true, true, Verdict::Deliver),
            ("read from a deposed master", 3, 4, false, false, false, Verdict::Retry),
            ("read failed, new master known", 3, 4, false, false, true, Verdict::Retry),
            ("read failed, no new epoch yet", 3, 3, true, false, true, Verdict::Deliver),
        ];
        for (name, sent, now, same, write, failed, want) in table {
            assert_eq!(verdict(*sent, *now, *same, *write, *failed), *want, "{name}");
        }
    }
}
