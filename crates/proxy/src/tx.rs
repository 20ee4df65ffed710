//! Transactions through the proxy: commands after MULTI are checked and queued here (all keys
//! must share one slot, as in Redis Cluster), and EXEC sends MULTI, the queue and EXEC to that
//! slot's master on a dedicated connection. WATCH pins a dedicated connection to the watched
//! slot's master, which the EXEC then uses.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Mutex;
use zedis_resp::{Frame, Request};
use zedis_topology::{key_slot, Slot};

use crate::command_table::{self, CommandSpec, LocalKind, Policy, TxKind};
use crate::dedicated::Dedicated;
use crate::dispatch::{ClientState, Pending};
use crate::merge;
use crate::options::Durability;
use crate::state::ProxyState;

/// Commands queued since MULTI.
#[derive(Default)]
pub struct TxState {
    queued: Vec<Bytes>,
    slot: Option<Slot>,
    dirty: bool,
    /// Some queued command may write (for fencing and replicated durability).
    writes: bool,
}

/// The connection a WATCH is held on.
pub struct Pinned {
    slot: Slot,
    addr: String,
    conn: Arc<Mutex<Option<Dedicated>>>,
}

fn ready(frame: Frame) -> Pending {
    Pending::Ready(merge::encode(&frame))
}

fn err(msg: &str) -> Pending {
    ready(Frame::error(msg))
}

/// The single slot of `keys` of `req`, checked against an earlier slot.
fn one_slot(req: &Request, keys: &[usize], earlier: Option<Slot>) -> Result<Option<Slot>, &'static str> {
    let mut slot = earlier;
    for i in keys {
        let s = key_slot(req.arg(*i).unwrap_or_default());
        match slot {
            Some(prev) if prev != s => return Err(command_table::CROSSSLOT),
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

pub fn mark_dirty(client: &mut ClientState) {
    if let Some(tx) = client.tx.as_mut() {
        tx.dirty = true;
    }
}

/// A command inside MULTI: check it and queue it.
pub fn queue(client: &mut ClientState, spec: &'static CommandSpec, policy: Policy, req: Request) -> Pending {
    let queueable = matches!(
        policy,
        Policy::Keyed
            | Policy::Blocking
            | Policy::Split(_)
            | Policy::AnyGroup
            | Policy::Local(LocalKind::Ping | LocalKind::Echo)
    );
    if !queueable {
        mark_dirty(client);
        return err(&format!("ERR '{}' cannot be used inside MULTI through the zedis proxy", spec.name));
    }
    let keys = match command_table::keys(spec, &req) {
        Ok(k) => k,
        Err(e) => {
            mark_dirty(client);
            return err(&e.to_string());
        }
    };
    let earlier = client.tx.as_ref().and_then(|t| t.slot).or(client.pinned.as_ref().map(|p| p.slot));
    match one_slot(&req, &keys, earlier) {
        Ok(slot) => {
            if let Some(tx) = client.tx.as_mut() {
                tx.slot = slot;
                tx.writes |= command_table::may_write(spec);
                tx.queued.push(req.into_raw());
            }
            ready(Frame::simple("QUEUED"))
        }
        Err(e) => {
            mark_dirty(client);
            err(e)
        }
    }
}

pub async fn command(
    state: &Arc<ProxyState>,
    client: &mut ClientState,
    kind: TxKind,
    spec: &'static CommandSpec,
    req: Request,
) -> Pending {
    match kind {
        TxKind::Multi => {
            if client.tx.is_some() {
                return err("ERR MULTI calls can not be nested");
            }
            client.tx = Some(TxState::default());
            ready(Frame::ok())
        }
        TxKind::Discard => match client.tx.take() {
            None => err("ERR DISCARD without MULTI"),
            Some(_) => {
                // DISCARD also drops the WATCH, as in Redis: closing its connection does that.
                client.pinned = None;
                ready(Frame::ok())
            }
        },
        TxKind::Watch => {
            if client.tx.is_some() {
                return err("ERR WATCH inside MULTI is not allowed");
            }
            let keys = match command_table::keys(spec, &req) {
                Ok(k) => k,
                Err(e) => return err(&e.to_string()),
            };
            let slot = match one_slot(&req, &keys, client.pinned.as_ref().map(|p| p.slot)) {
                Ok(Some(s)) => s,
                Ok(None) => return err("ERR wrong number of arguments for 'watch' command"),
                Err(e) => return err(e),
            };
            if client.pinned.is_none() {
                let routes = state.routes.load();
                let Some(group) = routes.group_for(slot) else { return err("CLUSTERDOWN Hash slot not served") };
                client.pinned =
                    Some(Pinned { slot, addr: group.master.addr().to_string(), conn: Arc::new(Mutex::new(None)) });
            }
            let Some(pinned) = client.pinned.as_ref() else { return err("ERR internal: no pinned connection") };
            let (conn, addr) = (pinned.conn.clone(), pinned.addr.clone());
            let raw = req.into_raw();
            let state = state.clone();
            let resp3 = client.resp3;
            Pending::Deferred(Box::pin(async move {
                let mut guard = conn.lock().await;
                match roundtrip(&state, &mut guard, &addr, &[raw], resp3).await {
                    Ok(mut replies) => replies.pop().unwrap_or_default(),
                    Err(e) => e,
                }
            }))
        }
        TxKind::Unwatch => {
            if client.tx.is_some() {
                return queue(client, spec, Policy::AnyGroup, req);
            }
            client.pinned = None;
            ready(Frame::ok())
        }
        TxKind::Exec => {
            let Some(tx) = client.tx.take() else { return err("ERR EXEC without MULTI") };
            let pinned = client.pinned.take();
            if tx.dirty {
                return err("EXECABORT Transaction discarded because of previous errors.");
            }
            // A transaction cannot run through the migration guard: it waits until its slot
            // has moved. One that watched keys aborts as if they changed (the client retries).
            let migrating = tx.slot.filter(|s| state.routes.load().migration_for(*s).is_some());
            let routes = state.routes.load();
            let group = match tx.slot {
                Some(s) => routes.group_for(s),
                None => routes.groups.first(),
            };
            let Some(group) = group else { return err("CLUSTERDOWN Hash slot not served") };
            let mut group_id = group.id;
            let (conn, mut addr, watched) = match pinned {
                Some(p) => (p.conn, p.addr, true),
                None => (Arc::new(Mutex::new(None)), group.master.addr().to_string(), false),
            };
            let replicated = match state.options.durability {
                Durability::Replicated { replicas, timeout } if tx.writes => Some((replicas, timeout)),
                _ => None,
            };
            let writes = tx.writes;
            let mut batch = Vec::with_capacity(tx.queued.len() + 3);
            batch.push(Request::from_args(["MULTI"]).into_raw());
            batch.extend(tx.queued);
            batch.push(req.into_raw());
            if let Some((replicas, wait)) = replicated {
                batch.push(crate::dispatch::wait_request(replicas, wait));
            }
            let state = state.clone();
            let resp3 = client.resp3;
            Pending::Deferred(Box::pin(async move {
                if let Some(slot) = migrating {
                    if !crate::migrating::wait_settled(&state, slot).await {
                        return merge::encode(&Frame::error(&format!(
                            "TRYAGAIN slot {slot} is being migrated; the transaction was not run, retry it"
                        )));
                    }
                    if watched {
                        return Bytes::from_static(if resp3 { b"_\r\n" } else { b"*-1\r\n" });
                    }
                    let routes = state.routes.load();
                    let Some(group) = routes.group_for(slot) else {
                        return merge::encode(&Frame::error("CLUSTERDOWN Hash slot not served"));
                    };
                    group_id = group.id;
                    addr = group.master.addr().to_string();
                }
                let mut guard = conn.lock().await;
                let replies = roundtrip(&state, &mut guard, &addr, &batch, resp3).await;
                let (exec, confirmed) = match (replies, replicated) {
                    (Err(e), _) => return e,
                    (Ok(mut r), Some(_)) => {
                        let wait = r.pop().unwrap_or_default();
                        let n = Frame::parse(&wait).ok().flatten().and_then(|(f, _)| f.as_integer()).unwrap_or(0);
                        (r.pop().unwrap_or_default(), Some(n))
                    }
                    (Ok(mut r), None) => (r.pop().unwrap_or_default(), None),
                };
                if exec.first() == Some(&b'-') || exec.as_ref() == b"*-1\r\n" || exec.as_ref() == b"_\r\n" {
                    return exec; // aborted or refused: nothing was written
                }
                if writes && !crate::fence::still_master(&state, group_id, &addr) {
                    return crate::fence::error(crate::fence::REFUSED);
                }
                match (confirmed, replicated) {
                    (Some(n), Some((r, _))) if n < i64::from(r) => merge::encode(&Frame::error(
                        "NOREPLICAS the transaction reached the master but was not confirmed by enough replicas in time",
                    )),
                    _ => exec,
                }
            }))
        }
    }
}

/// Sends `batch` on the (lazily opened) dedicated connection and returns the last reply;
/// the earlier ones (MULTI's OK, the QUEUED) were answered by the proxy already.
async fn roundtrip(
    state: &ProxyState,
    slot: &mut Option<Dedicated>,
    addr: &str,
    batch: &[Bytes],
    resp3: bool,
) -> Result<Vec<Bytes>, Bytes> {
    if slot.is_none() {
        match Dedicated::connect(addr, &state.options.backend, resp3).await {
            Ok(c) => *slot = Some(c),
            Err(e) => return Err(merge::encode(&Frame::error(&format!("ERR {e}")))),
        }
    }
    let Some(conn) = slot.as_mut() else { return Err(merge::encode(&Frame::error("ERR internal: no connection"))) };
    let mut out = bytes::BytesMut::new();
    for b in batch {
        out.extend_from_slice(b);
    }
    let result = async {
        conn.send(&out).await?;
        let mut replies = Vec::with_capacity(batch.len());
        for _ in batch {
            replies.push(conn.read_reply().await?);
        }
        Ok::<Vec<Bytes>, crate::backend::BackendError>(replies)
    };
    match tokio::time::timeout(state.options.request_timeout, result).await {
        Ok(Ok(replies)) => Ok(replies),
        Ok(Err(e)) => {
            *slot = None;
            Err(merge::encode(&Frame::error(&format!("ERR {e}"))))
        }
        Err(_) => {
            *slot = None;
            Err(merge::encode(&Frame::error("ERR backend did not answer in time")))
        }
    }
}
