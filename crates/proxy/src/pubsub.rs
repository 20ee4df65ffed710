//! Publish/subscribe across groups. A channel lives on the master of its hash slot: PUBLISH
//! and SUBSCRIBE of a channel meet there (SPUBLISH/SSUBSCRIBE likewise); a pattern is
//! subscribed on every master, and each message reaches it from the one master where it was
//! published. Each subscribing client has its own connection per master it listens on; the
//! proxy answers the (un)subscribe confirmations itself, with the client's own counts.
//!
//! If a subscription connection breaks (a master died), the client is disconnected, as a
//! Redis server would on its death, so it resubscribes through the new topology.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use zedis_resp::{Frame, ReplyScanner, Request};
use zedis_topology::key_slot;

use crate::command_table::{LocalKind, Policy, PubSubKind};
use crate::dispatch::{ClientState, Pending};
use crate::merge;
use crate::state::ProxyState;

/// Out-of-band traffic for a client's writer.
pub enum Push {
    Message(Bytes),
    /// A subscription connection broke: close the client.
    Close,
}

/// A subscribed client's state.
#[derive(Default)]
pub struct SubState {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
    conns: HashMap<String, SubConn>,
}

struct SubConn {
    wr: OwnedWriteHalf,
    /// The server's (un)subscribe confirmations as (kind, name), to wait for ours.
    acks: mpsc::UnboundedReceiver<(Bytes, Bytes)>,
    /// Set when we close it on purpose, so its reader does not report a broken subscription.
    retired: Arc<AtomicBool>,
}

impl Drop for SubConn {
    fn drop(&mut self) {
        self.retired.store(true, Ordering::SeqCst);
    }
}

impl SubState {
    pub fn is_active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }

    fn count(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }
}

fn bulk(b: &[u8]) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(b))
}

/// A (un)subscribe confirmation: a push in RESP3, an array in RESP2.
fn confirm(kind: &str, name: Option<&[u8]>, count: i64, resp3: bool) -> Frame {
    let items = vec![bulk(kind.as_bytes()), name.map(bulk).unwrap_or(Frame::Null), Frame::Integer(count)];
    if resp3 {
        Frame::Push(items)
    } else {
        Frame::Array(items)
    }
}

fn err(msg: &str) -> Pending {
    Pending::Ready(merge::encode(&Frame::error(msg)))
}

/// Whether `policy` may run while the client is subscribed (RESP2 rules).
pub fn allowed_while_subscribed(policy: Policy) -> bool {
    matches!(
        policy,
        Policy::PubSub(
            PubSubKind::Subscribe
                | PubSubKind::Unsubscribe
                | PubSubKind::PSubscribe
                | PubSubKind::PUnsubscribe
                | PubSubKind::SSubscribe
                | PubSubKind::SUnsubscribe
        ) | Policy::Local(LocalKind::Ping | LocalKind::Quit | LocalKind::Reset)
    )
}

/// The reply to PING while subscribed.
pub fn subscribed_ping(req: &Request) -> Pending {
    let msg = req.arg(1).unwrap_or_default();
    Pending::Ready(merge::encode(&Frame::Array(vec![bulk(b"pong"), bulk(msg)])))
}

/// Opens (or reuses) this client's subscription connection to `addr`.
async fn conn<'a>(state: &ProxyState, client: &'a mut ClientState, addr: &str) -> Result<&'a mut SubConn, String> {
    let subs = client.subs.get_or_insert_with(SubState::default);
    if !subs.conns.contains_key(addr) {
        let stream = crate::backend::connect(addr, &state.options.backend, client.resp3)
            .await
            .map_err(|e| format!("ERR {e}"))?;
        let (rd, wr) = stream.into_split();
        let retired = Arc::new(AtomicBool::new(false));
        let (ack_tx, acks) = mpsc::unbounded_channel();
        tokio::spawn(forward(rd, client.push.clone(), ack_tx, state.options.limits.clone(), retired.clone()));
        subs.conns.insert(addr.to_string(), SubConn { wr, acks, retired });
    }
    subs.conns.get_mut(addr).ok_or_else(|| "ERR internal: no subscription connection".to_string())
}

/// Forwards messages from a subscription connection; drops the server's own confirmations.
async fn forward(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    push: mpsc::Sender<Push>,
    acks: mpsc::UnboundedSender<(Bytes, Bytes)>,
    limits: zedis_resp::Limits,
    retired: Arc<AtomicBool>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut scanner = ReplyScanner::new(limits);
    loop {
        loop {
            match scanner.scan(&buf) {
                Ok(Some(n)) => {
                    let reply = buf.split_to(n).freeze();
                    let items = match Frame::parse(&reply) {
                        Ok(Some((Frame::Array(items) | Frame::Push(items), _))) => items,
                        _ => continue,
                    };
                    let kind = items.first().and_then(Frame::as_bytes).cloned().unwrap_or_default();
                    match kind.as_ref() {
                        b"message" | b"pmessage" | b"smessage" => {
                            if push.send(Push::Message(reply)).await.is_err() {
                                return;
                            }
                        }
                        _ => {
                            let name = items.get(1).and_then(Frame::as_bytes).cloned().unwrap_or_default();
                            let _ = acks.send((kind, name));
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    if !retired.load(Ordering::SeqCst) {
                        let _ = push.send(Push::Close).await;
                    }
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if !retired.load(Ordering::SeqCst) {
                    let _ = push.send(Push::Close).await;
                }
                return;
            }
            Ok(_) => {}
        }
    }
}

async fn send(state: &ProxyState, client: &mut ClientState, addr: &str, args: &[&[u8]]) -> Result<(), String> {
    let c = conn(state, client, addr).await?;
    let raw = Request::from_args(args.iter().copied()).into_raw();
    c.wr.write_all(&raw).await.map_err(|e| format!("ERR backend {addr}: {e}"))
}

/// Sends `verb name` and waits until the server confirms it, so a PUBLISH sent after our
/// confirmation to the client is sure to find the subscription.
async fn subscribe(
    state: &ProxyState,
    client: &mut ClientState,
    addr: &str,
    verb: &[u8],
    name: &[u8],
) -> Result<(), String> {
    send(state, client, addr, &[verb, name]).await?;
    let c = conn(state, client, addr).await?;
    let wait = async {
        while let Some((kind, n)) = c.acks.recv().await {
            if kind.eq_ignore_ascii_case(verb) && n == name {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(state.options.request_timeout, wait).await {
        Ok(true) => Ok(()),
        _ => Err(format!("ERR backend {addr} did not confirm the subscription")),
    }
}

pub async fn command(state: &Arc<ProxyState>, client: &mut ClientState, kind: PubSubKind, req: Request) -> Pending {
    let routes = state.routes.load();
    if routes.groups.is_empty() {
        return err("CLUSTERDOWN no topology yet");
    }
    let names: Vec<Bytes> = req.args().skip(1).map(Bytes::copy_from_slice).collect();
    let master_of = |name: &[u8]| routes.group_for(key_slot(name)).map(|g| g.master.addr().to_string());
    let mut out = BytesMut::new();
    match kind {
        PubSubKind::Subscribe | PubSubKind::SSubscribe => {
            let (verb, shard) = if kind == PubSubKind::Subscribe { ("subscribe", false) } else { ("ssubscribe", true) };
            // Shard channels of one SSUBSCRIBE must share a slot, as in Redis Cluster.
            if shard && names.windows(2).any(|w| key_slot(&w[0]) != key_slot(&w[1])) {
                return err(crate::command_table::CROSSSLOT);
            }
            for name in &names {
                let Some(addr) = master_of(name) else { return err("CLUSTERDOWN Hash slot not served") };
                if let Err(e) = subscribe(state, client, &addr, verb.as_bytes(), name).await {
                    return err(&e);
                }
                let subs = client.subs.get_or_insert_with(SubState::default);
                let count = if shard {
                    subs.shard_channels.insert(name.clone());
                    subs.shard_channels.len() as i64
                } else {
                    subs.channels.insert(name.clone());
                    subs.count()
                };
                confirm(verb, Some(name), count, client.resp3).encode(&mut out, client.resp3);
            }
        }
        PubSubKind::PSubscribe => {
            let masters: Vec<String> = routes.groups.iter().map(|g| g.master.addr().to_string()).collect();
            for name in &names {
                for addr in &masters {
                    if let Err(e) = subscribe(state, client, addr, b"psubscribe", name).await {
                        return err(&e);
                    }
                }
                let subs = client.subs.get_or_insert_with(SubState::default);
                subs.patterns.insert(name.clone());
                confirm("psubscribe", Some(name), subs.count(), client.resp3).encode(&mut out, client.resp3);
            }
        }
        PubSubKind::Unsubscribe | PubSubKind::PUnsubscribe | PubSubKind::SUnsubscribe => {
            let verb = match kind {
                PubSubKind::Unsubscribe => "unsubscribe",
                PubSubKind::PUnsubscribe => "punsubscribe",
                _ => "sunsubscribe",
            };
            let subs = client.subs.get_or_insert_with(SubState::default);
            let set = match kind {
                PubSubKind::Unsubscribe => &mut subs.channels,
                PubSubKind::PUnsubscribe => &mut subs.patterns,
                _ => &mut subs.shard_channels,
            };
            let targets: Vec<Bytes> = if names.is_empty() { set.iter().cloned().collect() } else { names.clone() };
            let conns: Vec<String> = subs.conns.keys().cloned().collect();
            for name in &targets {
                // Harmless on servers that never had it; cheaper than tracking where each is.
                for addr in &conns {
                    let _ = send(state, client, addr, &[verb.as_bytes(), name]).await;
                }
                let subs = client.subs.get_or_insert_with(SubState::default);
                match kind {
                    PubSubKind::Unsubscribe => subs.channels.remove(name),
                    PubSubKind::PUnsubscribe => subs.patterns.remove(name),
                    _ => subs.shard_channels.remove(name),
                };
                let count =
                    if kind == PubSubKind::SUnsubscribe { subs.shard_channels.len() as i64 } else { subs.count() };
                confirm(verb, Some(name), count, client.resp3).encode(&mut out, client.resp3);
            }
            if targets.is_empty() {
                let count = client.subs.as_ref().map(|s| s.count()).unwrap_or(0);
                confirm(verb, None, count, client.resp3).encode(&mut out, client.resp3);
            }
            if client.subs.as_ref().is_some_and(|s| !s.is_active()) {
                client.subs = None; // closes the subscription connections
            }
        }
        PubSubKind::Publish | PubSubKind::SPublish => {
            let Some(group) = names.first().and_then(|ch| routes.group_for(key_slot(ch))) else {
                return err("CLUSTERDOWN Hash slot not served");
            };
            let rx = group.master.send(client.lane(), req.into_raw()).await;
            return Pending::Backend(rx, state.options.request_timeout, None);
        }
        PubSubKind::Channels
        | PubSubKind::ShardChannels
        | PubSubKind::NumSub
        | PubSubKind::ShardNumSub
        | PubSubKind::NumPat => {
            return introspect(state, kind, client.lane(), req).await;
        }
    }
    Pending::Ready(out.freeze())
}

/// PUBSUB CHANNELS / NUMSUB / NUMPAT over every master.
async fn introspect(state: &Arc<ProxyState>, kind: PubSubKind, lane: crate::backend::Lane, req: Request) -> Pending {
    let routes = state.routes.load();
    let raw = req.into_raw();
    let mut rxs = Vec::new();
    for g in &routes.groups {
        rxs.push(g.master.send(lane, raw.clone()).await);
    }
    let timeout = state.options.request_timeout;
    Pending::Deferred(Box::pin(async move {
        let mut frames = Vec::new();
        for rx in rxs {
            let bytes = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(b))) => b,
                _ => return merge::encode(&Frame::error("ERR backend did not answer")),
            };
            match Frame::parse(&bytes) {
                Ok(Some((f, _))) => frames.push(f),
                _ => return merge::encode(&Frame::error("ERR backend returned an unreadable reply")),
            }
        }
        if let Some(e) = merge::first_error(&frames) {
            return merge::encode(e);
        }
        let merged = match kind {
            PubSubKind::Channels | PubSubKind::ShardChannels => {
                let all: BTreeSet<Bytes> = frames
                    .iter()
                    .flat_map(|f| f.as_array().unwrap_or_default().iter().filter_map(|x| x.as_bytes().cloned()))
                    .collect();
                Frame::Array(all.into_iter().map(Frame::bulk).collect())
            }
            // Patterns are subscribed on every master: count them once.
            PubSubKind::NumPat => Frame::Integer(frames.iter().filter_map(|f| f.as_integer()).max().unwrap_or(0)),
            _ => {
                // Pairs of (channel, count): sum the counts per channel, keeping the order.
                let mut order: Vec<Bytes> = Vec::new();
                let mut sums: HashMap<Bytes, i64> = HashMap::new();
                for f in &frames {
                    let items = f.as_array().unwrap_or_default();
                    for pair in items.chunks(2) {
                        if let [ch, n] = pair {
                            let ch = ch.as_bytes().cloned().unwrap_or_default();
                            if !sums.contains_key(&ch) {
                                order.push(ch.clone());
                            }
                            *sums.entry(ch).or_default() += n.as_integer().unwrap_or(0);
                        }
                    }
                }
                let mut flat = Vec::with_capacity(order.len() * 2);
                for ch in order {
                    let n = sums.get(&ch).copied().unwrap_or(0);
                    flat.push(Frame::bulk(ch));
                    flat.push(Frame::Integer(n));
                }
                Frame::Array(flat)
            }
        };
        merge::encode_for(&merged, lane.resp3)
    }))
}
