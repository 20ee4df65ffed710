//! One client connection: a reader that decodes and dispatches requests in order, and a
//! writer that sends replies in the same order. The bounded queue between them is the
//! client's pipeline depth: a client that never reads its replies stops being read.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use zedis_resp::{ProtocolError, RequestDecoder};

use crate::dispatch::{dispatch, ClientState, Pending};
use crate::metrics::{command_stats, CommandStats};
use crate::pubsub::Push;
use crate::state::ProxyState;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A reply in the making, with what its metrics need.
struct Queued {
    pending: Pending,
    stats: Option<&'static CommandStats>,
    since: Instant,
}

pub async fn serve(state: Arc<ProxyState>, stream: TcpStream, id: u64) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Queued>(state.options.max_pipeline.max(1));
    let metrics_state = state.clone();
    // This client's share of the global pipeline depth, returned when it goes.
    let depth = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer_depth = depth.clone();
    let (push_tx, mut push_rx) = mpsc::channel::<Push>(1024);
    let (gone_tx, mut gone_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::with_capacity(16 * 1024);
        let mut push_open = true;
        loop {
            let first = tokio::select! {
                biased;
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => return,
                },
                m = push_rx.recv(), if push_open => {
                    // Subscription messages, between replies (never inside one).
                    match m {
                        Some(Push::Message(bytes)) => {
                            out.extend_from_slice(&bytes);
                            while out.len() < 64 * 1024 {
                                match push_rx.try_recv() {
                                    Ok(Push::Message(b)) => out.extend_from_slice(&b),
                                    _ => break,
                                }
                            }
                            if wr.write_all(&out).await.is_err() {
                                return;
                            }
                            out.clear();
                            continue;
                        }
                        Some(Push::Close) => {
                            let _ = wr.shutdown().await;
                            return;
                        }
                        None => {
                            push_open = false;
                            continue;
                        }
                    }
                }
            };
            let mut close = false;
            let mut next = Some(first);
            // Gather every reply that is already due, then write them in one go.
            while let Some(q) = next.take() {
                let (bytes, closing) = q.pending.resolve(&metrics_state, &mut gone_rx).await;
                metrics_state.metrics.hot().pipeline_depth.fetch_sub(1, Ordering::Relaxed);
                writer_depth.fetch_sub(1, Ordering::Relaxed);
                if let Some(stats) = q.stats {
                    stats.record(q.since.elapsed(), bytes.first() == Some(&b'-'));
                }
                out.extend_from_slice(&bytes);
                close |= closing;
                if close || out.len() > 64 * 1024 {
                    break;
                }
                if let Ok(p) = rx.try_recv() {
                    next = Some(p);
                }
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if out.capacity() > 1024 * 1024 {
                out = BytesMut::with_capacity(16 * 1024);
            }
            if close {
                let _ = wr.shutdown().await;
                return;
            }
        }
    });

    let mut client = ClientState::new(id, peer, push_tx);
    client.role = state.options.auth.initial_role();
    let mut decoder = RequestDecoder::new(state.options.limits.clone());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut client_gone = false;
    'read: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                client_gone = true;
                break;
            }
            Ok(_) => {}
        }
        state.check_zk_contact(Instant::now());
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(req)) => {
                    let since = Instant::now();
                    let mut spec = None;
                    let pending = dispatch(&state, &mut client, req, &mut spec).await;
                    let closing = pending.closes();
                    let stats = spec.and_then(command_stats);
                    state.metrics.hot().pipeline_depth.fetch_add(1, Ordering::Relaxed);
                    depth.fetch_add(1, Ordering::Relaxed);
                    if tx.send(Queued { pending, stats, since }).await.is_err() || closing {
                        break 'read;
                    }
                }
                Ok(None) => {
                    if let Some(need) = decoder.needed() {
                        buf.reserve(need.min(64 * 1024 * 1024));
                    } else if buf.capacity() - buf.len() < 4096 {
                        buf.reserve(16 * 1024);
                    }
                    break;
                }
                Err(e) => {
                    state.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    state.metrics.hot().pipeline_depth.fetch_add(1, Ordering::Relaxed);
                    depth.fetch_add(1, Ordering::Relaxed);
                    let queued =
                        Queued { pending: Pending::close_with(protocol_error(&e)), stats: None, since: Instant::now() };
                    let _ = tx.send(queued).await;
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    if client_gone {
        // A half-closed client still gets the replies to what it sent (each bounded by the
        // request timeout), but what it blocks on (a BLPOP with no timeout) is dropped at once,
        // closing that backend connection, as Redis does for a client that hangs up.
        let _ = gone_tx.send(true);
    }
    let _ = writer.await;
    state.metrics.hot().pipeline_depth.fetch_sub(depth.load(Ordering::Relaxed) as i64, Ordering::Relaxed);
    state.metrics.client_closed();
}

fn protocol_error(e: &ProtocolError) -> Bytes {
    let mut out = BytesMut::new();
    e.write_reply(&mut out);
    out.freeze()
}
