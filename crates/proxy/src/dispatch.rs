//! Turns one client request into a pending reply: forwarded to the group that owns its slot,
//! split across groups and merged, answered locally, or refused with a clear error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use zedis_resp::{Frame, Request};
use zedis_topology::key_slot;

use crate::backend::{BackendError, Lane, Reply};
use crate::command_table::{self, AggregateKind, LocalKind, Policy, SplitKind};
use crate::fence::Fence;
use crate::merge;
use crate::options::{Durability, ReadFrom};
use crate::state::ProxyState;

/// Per-connection state the proxy keeps for a client.
pub struct ClientState {
    pub id: u64,
    pub peer: String,
    pub name: Option<Bytes>,
    /// Inside MULTI: the queued commands.
    pub tx: Option<crate::tx::TxState>,
    /// The connection holding this client's WATCH.
    pub pinned: Option<crate::tx::Pinned>,
    /// The role this connection authenticated as; None until it does (when auth is required).
    pub role: Option<crate::auth::Role>,
    /// Switched to RESP3 by HELLO 3.
    pub resp3: bool,
    /// The user name this connection authenticated as.
    pub user: String,
    /// Subscriptions, while the client has any.
    pub subs: Option<crate::pubsub::SubState>,
    /// Where subscription messages go: this client's writer.
    pub push: tokio::sync::mpsc::Sender<crate::pubsub::Push>,
}

impl ClientState {
    pub fn new(id: u64, peer: String, push: tokio::sync::mpsc::Sender<crate::pubsub::Push>) -> ClientState {
        ClientState {
            id,
            peer,
            name: None,
            role: None,
            resp3: false,
            user: "default".into(),
            tx: None,
            pinned: None,
            subs: None,
            push,
        }
    }

    pub fn lane(&self) -> Lane {
        Lane { id: self.id, resp3: self.resp3 }
    }

    pub fn subscribed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.is_active())
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Bytes> + Send>>;

/// A reply in the making, kept in request order.
pub enum Pending {
    Ready(Bytes),
    Backend(oneshot::Receiver<Reply>, Duration, Option<Box<Fence>>),
    Deferred(BoxFuture),
    /// A blocking command's reply: dropped if the client hangs up meanwhile.
    Blocking(BoxFuture),
    /// Reply, then close the connection.
    Close(Bytes),
}

impl Pending {
    pub fn close_with(bytes: Bytes) -> Pending {
        Pending::Close(bytes)
    }

    pub fn closes(&self) -> bool {
        matches!(self, Pending::Close(_))
    }

    /// The reply bytes, and whether the connection closes after them. `gone` turns true when
    /// the client hung up: a blocking command then stops waiting.
    pub async fn resolve(self, state: &ProxyState, gone: &mut tokio::sync::watch::Receiver<bool>) -> (Bytes, bool) {
        match self {
            Pending::Blocking(f) => tokio::select! {
                b = f => (b, false),
                _ = gone.wait_for(|g| *g) => (Bytes::new(), false),
            },
            Pending::Ready(b) => (b, false),
            Pending::Close(b) => (b, true),
            Pending::Backend(rx, timeout, None) => (await_backend(rx, timeout).await, false),
            Pending::Backend(mut rx, timeout, Some(fence)) => {
                let ready = rx.try_recv().ok();
                let reply = match ready {
                    Some(r) => r,
                    None => match tokio::time::timeout(timeout, rx).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err(BackendError::Lost("the master".into())),
                        Err(_) => {
                            return (error_bytes(&format!("ERR backend did not answer within {timeout:?}")), false)
                        }
                    },
                };
                (reply_bytes(fence.settle(state, reply, timeout).await), false)
            }
            Pending::Deferred(f) => (f.await, false),
        }
    }
}

fn error_bytes(msg: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.len() + 3);
    zedis_resp::write_error(&mut out, msg);
    out.freeze()
}

fn error(msg: &str) -> Pending {
    Pending::Ready(error_bytes(msg))
}

fn reply_bytes(reply: Reply) -> Bytes {
    match reply {
        Ok(bytes) => bytes,
        Err(e) => error_bytes(&format!("ERR {e}")),
    }
}

async fn await_backend(mut rx: oneshot::Receiver<Reply>, timeout: Duration) -> Bytes {
    // Pipelined replies are often here already: no timer for those.
    if let Ok(reply) = rx.try_recv() {
        return reply_bytes(reply);
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(bytes))) => bytes,
        Ok(Ok(Err(e))) => error_bytes(&format!("ERR {e}")),
        Ok(Err(_)) => error_bytes("ERR backend connection closed"),
        Err(_) => error_bytes(&format!("ERR backend did not answer within {timeout:?}")),
    }
}

/// Awaits a backend reply and parses it for merging.
async fn backend_frame(rx: oneshot::Receiver<Reply>, timeout: Duration) -> Frame {
    frame_of(&await_backend(rx, timeout).await)
}

fn frame_of(bytes: &Bytes) -> Frame {
    match Frame::parse(bytes) {
        Ok(Some((frame, _))) => frame,
        _ => Frame::error("ERR backend returned an unreadable reply"),
    }
}

fn printable(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).chars().take(128).collect()
}

/// Dispatches one request; `resolved` learns its command (for per-command metrics).
pub async fn dispatch(
    state: &Arc<ProxyState>,
    client: &mut ClientState,
    req: Request,
    resolved: &mut Option<&'static command_table::CommandSpec>,
) -> Pending {
    state.metrics.hot().commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let spec = match command_table::resolve(&req) {
        Ok(spec) => {
            *resolved = Some(spec);
            spec
        }
        Err(e) => {
            crate::tx::mark_dirty(client);
            return error(&e.to_string());
        }
    };
    if let Err(e) = command_table::check_arity(spec, req.len()) {
        crate::tx::mark_dirty(client);
        return error(&e.to_string());
    }
    let policy = command_table::policy(spec, &req);
    if let Err(e) = crate::auth::permitted(client.role, spec, policy) {
        crate::tx::mark_dirty(client);
        return error(&e);
    }
    // RESP3 clients may run any command while subscribed; RESP2 ones only these.
    if client.subscribed() && !client.resp3 {
        if !crate::pubsub::allowed_while_subscribed(policy) {
            return error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ));
        }
        if let Policy::Local(command_table::LocalKind::Ping) = policy {
            return crate::pubsub::subscribed_ping(&req);
        }
    }
    if !matches!(policy, Policy::Local(_)) && state.session_lost.load(std::sync::atomic::Ordering::Relaxed) {
        crate::tx::mark_dirty(client);
        return error(SESSION_LOST);
    }
    if let Policy::Transaction(kind) = policy {
        return crate::tx::command(state, client, kind, spec, req).await;
    }
    if client.tx.is_some() {
        return crate::tx::queue(client, spec, policy, req);
    }
    match policy {
        Policy::Blocking => blocking(state, spec, client.resp3, req),
        Policy::PubSub(kind) => crate::pubsub::command(state, client, kind, req).await,
        Policy::Keyed => keyed(state, spec, client.lane(), req).await,
        Policy::Split(kind) => split(state, kind, command_table::may_write(spec), client.lane(), req).await,
        Policy::AllGroups(kind) => all_groups(state, kind, client.lane(), req).await,
        Policy::AnyGroup => any_group(state, client.lane(), req).await,
        Policy::Local(kind) => local(state, client, kind, req).await,
        Policy::Unsupported(why) => error(&command_table::unsupported_error(spec, why)),
        _ => error(&format!("ERR '{}' is not supported by the zedis proxy yet", printable(req.name()).to_lowercase())),
    }
}

pub const SESSION_LOST: &str = "TRYAGAIN this zedis router lost touch with ZooKeeper and serves no data until it has the current topology (slots may be moving); retry, or use another proxy";

fn timeout(state: &ProxyState) -> Duration {
    state.options.request_timeout
}

/// The one slot all keys of `req` hash to (None without keys), or the error to reply.
fn single_slot(
    spec: &'static command_table::CommandSpec,
    req: &Request,
) -> Result<Option<zedis_topology::Slot>, String> {
    let keys = command_table::keys(spec, req).map_err(|e| e.to_string())?;
    let mut slot = None;
    for i in keys.iter().copied() {
        let s = key_slot(req.arg(i).unwrap_or_default());
        match slot {
            Some(prev) if prev != s => return Err(command_table::CROSSSLOT.to_string()),
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

/// A replica of `group` fresh enough to read from, the same one for a client while it stays
/// fresh (so its reads do not go back in time between replicas).
fn readable_replica(
    state: &ProxyState,
    group: &crate::route_table::GroupRoute,
    lane: Lane,
) -> Option<Arc<crate::backend::ServerPool>> {
    let readable = state.readable.load();
    let fresh: Vec<&Arc<crate::backend::ServerPool>> =
        group.replicas.iter().filter(|r| readable.contains(r.addr())).collect();
    if fresh.is_empty() {
        return None;
    }
    Some(fresh[(lane.id % fresh.len() as u64) as usize].clone())
}

/// All keys in one slot, routed to that slot's master.
async fn keyed(
    state: &Arc<ProxyState>,
    spec: &'static command_table::CommandSpec,
    lane: Lane,
    req: Request,
) -> Pending {
    let slot = match single_slot(spec, &req) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let routes = state.routes.load();
    if let Some(s) = slot.filter(|s| routes.migration_for(*s).is_some()) {
        return guarded(state, spec, lane, s, req);
    }
    let group = match slot {
        Some(s) => routes.group_for(s),
        // Keyless but keyed by policy (e.g. EVAL with 0 keys): any group will do.
        None => routes.groups.first(),
    };
    let Some(group) = group else {
        return error("CLUSTERDOWN Hash slot not served");
    };
    if let (ReadFrom::ReplicaPreferred { .. }, true) = (state.options.read_from, spec.is_readonly()) {
        if let Some(replica) = readable_replica(state, group, lane) {
            let rx = replica.send(lane, req.into_raw()).await;
            return Pending::Backend(rx, timeout(state), None);
        }
    }
    let raw = req.into_raw();
    let fence = Fence {
        epoch: routes.epoch,
        group: group.id,
        pool: group.master.id(),
        write: command_table::may_write(spec),
        lane,
        raw: raw.clone(),
    };
    if let (Durability::Replicated { replicas, timeout: wait }, true) =
        (state.options.durability, command_table::may_write(spec))
    {
        let mut rxs = group.master.send_all(lane, vec![raw, wait_request(replicas, wait)]).await.into_iter();
        let (Some(write_rx), Some(wait_rx)) = (rxs.next(), rxs.next()) else {
            return error("ERR internal: no reply slots");
        };
        let t = timeout(state) + wait;
        let master = group.master.addr().to_string();
        let state = state.clone();
        return Pending::Deferred(Box::pin(async move {
            let reply = match tokio::time::timeout(t, write_rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(BackendError::Lost(master)),
                Err(_) => return error_bytes("ERR backend did not answer in time"),
            };
            let reply = fence.settle(&state, reply, t).await;
            let confirmed = match tokio::time::timeout(t, wait_rx).await {
                Ok(Ok(Ok(b))) => Frame::parse(&b).ok().flatten().and_then(|(f, _)| f.as_integer()).unwrap_or(0),
                _ => 0,
            };
            match reply {
                Ok(bytes) if bytes.first() == Some(&b'-') => bytes,
                Ok(_) if confirmed >= i64::from(replicas) => reply_bytes(reply),
                Ok(_) => error_bytes(&format!(
                    "NOREPLICAS the write reached the master but {confirmed} of {replicas} replicas confirmed it within {wait:?}; it may not survive a failover"
                )),
                Err(e) => error_bytes(&format!("ERR {e}")),
            }
        }));
    }
    let rx = group.master.send(lane, raw).await;
    Pending::Backend(rx, timeout(state), Some(Box::new(fence)))
}

/// A command on a migrating slot (see [`crate::migrating`]).
fn guarded(
    state: &Arc<ProxyState>,
    spec: &'static command_table::CommandSpec,
    lane: Lane,
    slot: zedis_topology::Slot,
    req: Request,
) -> Pending {
    let keys = match command_table::keys(spec, &req) {
        Ok(k) => k.iter().copied().collect(),
        Err(e) => return error(&e.to_string()),
    };
    let g = crate::migrating::Guarded {
        slot,
        wrappable: crate::migrating::wrappable(spec, &req),
        write: command_table::may_write(spec),
        keys,
        req,
        lane,
    };
    Pending::Deferred(Box::pin(crate::migrating::run(state.clone(), g)))
}

/// Where one part of a split command is answered.
enum Part {
    Backend(oneshot::Receiver<Reply>),
    /// A key of a migrating slot, on its own through the migration path.
    Guarded(BoxFuture),
}

/// Splits a multi-key command by group and merges the answers.
async fn split(state: &Arc<ProxyState>, kind: SplitKind, write: bool, lane: Lane, req: Request) -> Pending {
    let routes = state.routes.load();
    let step = if matches!(kind, SplitKind::MSet) { 2 } else { 1 };
    let args = req.len() - 1;
    if args == 0 || !args.is_multiple_of(step) {
        return error(&format!("ERR wrong number of arguments for '{}' command", printable(req.name()).to_lowercase()));
    }
    // Keys (with their values for MSET) grouped by owning group, remembering client positions.
    let mut by_group: Vec<(usize, Vec<usize>)> = Vec::new();
    // Keys of migrating slots, each its own part: (position, slot).
    let mut migrating: Vec<(usize, zedis_topology::Slot)> = Vec::new();
    for (n, i) in (1..req.len()).step_by(step).enumerate() {
        let slot = key_slot(req.arg(i).unwrap_or_default());
        if !routes.no_migrations() && routes.migration_for(slot).is_some() {
            migrating.push((n, slot));
            continue;
        }
        let Some(g) = routes.group_index(slot) else {
            return error("CLUSTERDOWN Hash slot not served");
        };
        match by_group.iter_mut().find(|(gi, _)| *gi == g) {
            Some((_, v)) => v.push(n),
            None => by_group.push((g, vec![n])),
        }
    }
    let replicated = match state.options.durability {
        Durability::Replicated { replicas, timeout } if write => Some((replicas, timeout)),
        _ => None,
    };
    if by_group.len() == 1 && replicated.is_none() && migrating.is_empty() {
        // One group: forward the client's own bytes, fenced like a single-key command.
        let group = &routes.groups[by_group[0].0];
        let raw = req.into_raw();
        let fence =
            Fence { epoch: routes.epoch, group: group.id, pool: group.master.id(), write, lane, raw: raw.clone() };
        let rx = group.master.send(lane, raw).await;
        return Pending::Backend(rx, timeout(state), Some(Box::new(fence)));
    }
    // Where each part went, to refuse a write acknowledged by a master deposed meanwhile.
    let masters: Vec<(u32, String)> =
        by_group.iter().map(|(g, _)| (routes.groups[*g].id, routes.groups[*g].master.addr().to_string())).collect();
    let fence_state = state.clone();
    let name = req.name().to_vec();
    let mut parts = Vec::with_capacity(by_group.len());
    let mut waits = Vec::with_capacity(by_group.len());
    for (g, positions) in by_group {
        let mut sub: Vec<&[u8]> = Vec::with_capacity(1 + positions.len() * step);
        sub.push(&name);
        for n in &positions {
            let first = 1 + n * step;
            for j in first..first + step {
                sub.push(req.arg(j).unwrap_or_default());
            }
        }
        let sub = Request::from_args(sub).into_raw();
        let (rx, wait_rx) = match replicated {
            Some((replicas, wait)) => {
                let mut rxs =
                    routes.groups[g].master.send_all(lane, vec![sub, wait_request(replicas, wait)]).await.into_iter();
                match (rxs.next(), rxs.next()) {
                    (Some(a), Some(b)) => (a, Some(b)),
                    _ => return error("ERR internal: no reply slots"),
                }
            }
            None => (routes.groups[g].master.send(lane, sub).await, None),
        };
        parts.push((positions, Part::Backend(rx)));
        waits.push(wait_rx);
    }
    for (n, slot) in migrating {
        let first = 1 + n * step;
        let mut sub: Vec<&[u8]> = Vec::with_capacity(1 + step);
        sub.push(&name);
        for j in first..first + step {
            sub.push(req.arg(j).unwrap_or_default());
        }
        let g = crate::migrating::Guarded {
            slot,
            req: Request::from_args(sub),
            keys: vec![1],
            write,
            wrappable: true,
            lane,
        };
        parts.push((vec![n], Part::Guarded(Box::pin(crate::migrating::run(state.clone(), g)))));
    }
    let t = timeout(state) + replicated.map(|r| r.1).unwrap_or_default();
    let total = args / step;
    Pending::Deferred(Box::pin(async move {
        let mut frames = Vec::with_capacity(parts.len());
        for (positions, part) in parts {
            let frame = match part {
                Part::Backend(rx) => backend_frame(rx, t).await,
                Part::Guarded(f) => frame_of(&f.await),
            };
            frames.push((positions, frame));
        }
        let mut confirmed = i64::MAX;
        for w in waits.into_iter().flatten() {
            let n = match tokio::time::timeout(t, w).await {
                Ok(Ok(Ok(b))) => Frame::parse(&b).ok().flatten().and_then(|(f, _)| f.as_integer()).unwrap_or(0),
                _ => 0,
            };
            confirmed = confirmed.min(n);
        }
        if write && !masters.iter().all(|(g, addr)| crate::fence::still_master(&fence_state, *g, addr)) {
            return crate::fence::error(crate::fence::REFUSED);
        }
        if let Some((replicas, wait)) = replicated {
            let failed = frames.iter().find(|(_, f)| f.is_error()).map(|(_, f)| f.clone());
            if let Some(e) = failed {
                return merge::encode(&e);
            }
            if confirmed < i64::from(replicas) {
                return error_bytes(&format!(
                    "NOREPLICAS the write reached the masters but only {confirmed} of {replicas} replicas confirmed it within {wait:?}; it may not survive a failover"
                ));
            }
        }
        let merged = match kind {
            SplitKind::MGet => merge::mget(total, &frames),
            SplitKind::MSet => merge::all_ok(&frames.into_iter().map(|f| f.1).collect::<Vec<_>>()),
            SplitKind::SumIntegers => merge::sum(&frames.into_iter().map(|f| f.1).collect::<Vec<_>>()),
        };
        merge::encode_for(&merged, lane.resp3)
    }))
}

/// Sends the request to every group's master and aggregates.
async fn all_groups(state: &Arc<ProxyState>, kind: AggregateKind, lane: Lane, req: Request) -> Pending {
    let routes = state.routes.load();
    if routes.groups.is_empty() {
        return error("CLUSTERDOWN no topology yet");
    }
    if let AggregateKind::Scan = kind {
        return scan(state, lane, req).await;
    }
    let raw = req.into_raw();
    let mut rxs = Vec::with_capacity(routes.groups.len());
    for g in &routes.groups {
        rxs.push(g.master.send(lane, raw.clone()).await);
    }
    let t = timeout(state);
    Pending::Deferred(Box::pin(async move {
        let mut frames = Vec::with_capacity(rxs.len());
        for rx in rxs {
            frames.push(backend_frame(rx, t).await);
        }
        let merged = match kind {
            AggregateKind::Sum => merge::sum(&frames),
            AggregateKind::AllOk | AggregateKind::Flush => merge::all_ok(&frames),
            AggregateKind::Concat => merge::concat(&frames),
            AggregateKind::AndPerPosition => merge::and_each(&frames),
            AggregateKind::RandomKey => merge::any_non_null(&frames, random_index(frames.len())),
            AggregateKind::SameReply => merge::same_reply(&frames),
            AggregateKind::AnyOk => merge::any_ok(&frames),
            AggregateKind::Scan => Frame::error("ERR internal: scan"),
        };
        merge::encode_for(&merged, lane.resp3)
    }))
}

/// A cheap random index below `n` (for RANDOMKEY's choice of group).
fn random_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n as u64);
    (h.finish() % n.max(1) as u64) as usize
}

/// SCAN over every group in turn, with the group in the cursor's low bits.
async fn scan(state: &Arc<ProxyState>, lane: Lane, req: Request) -> Pending {
    let cursor = req.arg(1).and_then(|c| std::str::from_utf8(c).ok()).and_then(|c| c.parse::<u64>().ok());
    let Some((group, backend_cursor)) = cursor.and_then(merge::scan_cursor_decode) else {
        return error("ERR invalid cursor");
    };
    let routes = state.routes.load();
    let mut ids: Vec<u32> = routes.groups.iter().map(|g| g.id).collect();
    ids.sort_unstable();
    let group = if group == 0 { ids.first().copied().unwrap_or(0) } else { group };
    let Some(route) = routes.groups.iter().find(|g| g.id == group) else {
        return error("ERR invalid cursor");
    };
    let mut args: Vec<Vec<u8>> = req.args().map(|a| a.to_vec()).collect();
    args[1] = backend_cursor.to_string().into_bytes();
    let rx = route.master.send(lane, Request::from_args(args).into_raw()).await;
    let t = timeout(state);
    Pending::Deferred(Box::pin(async move {
        let frame = backend_frame(rx, t).await;
        if frame.is_error() {
            return merge::encode(&frame);
        }
        let Some([next, keys]) = frame.as_array().and_then(|a| <&[Frame; 2]>::try_from(a).ok()) else {
            return error_bytes("ERR backend returned a malformed SCAN reply");
        };
        let Some(next) = next
            .to_integer()
            .and_then(|n| u64::try_from(n).ok())
            .or_else(|| next.as_bytes().and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok()))
        else {
            return error_bytes("ERR backend returned a malformed SCAN cursor");
        };
        let Some(cursor) = merge::scan_cursor_next(&ids, group, next) else {
            return error_bytes("ERR backend cursor too large for the proxy");
        };
        merge::encode_for(&Frame::Array(vec![Frame::bulk(Bytes::from(cursor.to_string())), keys.clone()]), lane.resp3)
    }))
}

/// A blocking command on a connection of its own, so it stalls no one else; the connection
/// closes with the reply (or when the client goes away).
fn blocking(state: &Arc<ProxyState>, spec: &'static command_table::CommandSpec, resp3: bool, req: Request) -> Pending {
    let slot = match single_slot(spec, &req) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let routes = state.routes.load();
    if let Some(s) = slot.filter(|s| routes.migration_for(*s).is_some()) {
        // A blocking command cannot run through the migration guard: it waits for the move.
        let state = state.clone();
        return Pending::Blocking(Box::pin(async move {
            if !crate::migrating::wait_settled(&state, s).await {
                return error_bytes(&format!("TRYAGAIN slot {s} is being migrated; retry the blocking command"));
            }
            match blocking(&state, spec, resp3, req) {
                Pending::Ready(b) | Pending::Close(b) => b,
                Pending::Blocking(f) | Pending::Deferred(f) => f.await,
                Pending::Backend(..) => error_bytes("ERR internal: unexpected pending kind"),
            }
        }));
    }
    let group = match slot {
        Some(s) => routes.group_for(s),
        None => routes.groups.first(),
    };
    let Some(group) = group else {
        return error("CLUSTERDOWN Hash slot not served");
    };
    let addr = group.master.addr().to_string();
    let group_id = group.id;
    let backend = state.options.backend.clone();
    let write = command_table::may_write(spec);
    let replicated = match state.options.durability {
        Durability::Replicated { replicas, timeout } if write => Some((replicas, timeout)),
        _ => None,
    };
    let state = state.clone();
    let raw = req.into_raw();
    Pending::Blocking(Box::pin(async move {
        let result = async {
            let mut conn = crate::dedicated::Dedicated::connect(&addr, &backend, resp3).await?;
            let reply = conn.roundtrip(&raw).await?;
            let confirmed = match replicated {
                Some((replicas, wait)) if reply.first() != Some(&b'-') => {
                    let wait_req = wait_request(replicas, wait);
                    let n = conn.roundtrip(&wait_req).await?;
                    Some(Frame::parse(&n).ok().flatten().and_then(|(f, _)| f.as_integer()).unwrap_or(0))
                }
                _ => None,
            };
            Ok::<_, BackendError>((reply, confirmed))
        };
        match result.await {
            Err(e) => error_bytes(&format!("ERR {e}")),
            Ok((reply, _)) if reply.first() == Some(&b'-') => reply,
            Ok(_) if write && !crate::fence::still_master(&state, group_id, &addr) => {
                crate::fence::error(crate::fence::REFUSED)
            }
            Ok((_, Some(n))) if replicated.is_some_and(|(r, _)| n < i64::from(r)) => {
                error_bytes("NOREPLICAS the write reached the master but was not confirmed by enough replicas in time")
            }
            Ok((reply, _)) => reply,
        }
    }))
}

/// `WAIT replicas timeout-ms`.
pub fn wait_request(replicas: u32, wait: Duration) -> Bytes {
    Request::from_args([b"WAIT".to_vec(), replicas.to_string().into_bytes(), wait.as_millis().to_string().into_bytes()])
        .into_raw()
}

/// Keyless and independent of the data: any one group's master answers.
async fn any_group(state: &Arc<ProxyState>, lane: Lane, req: Request) -> Pending {
    let routes = state.routes.load();
    let Some(group) = routes.groups.first() else {
        return error("CLUSTERDOWN no topology yet");
    };
    let rx = group.master.send(lane, req.into_raw()).await;
    Pending::Backend(rx, timeout(state), None)
}

async fn local(state: &Arc<ProxyState>, client: &mut ClientState, kind: LocalKind, req: Request) -> Pending {
    crate::local::reply(state, client, kind, req).await
}
