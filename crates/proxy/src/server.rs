//! The listener: accepts clients up to `max_clients` and runs a session for each, spread
//! round-robin over the worker threads (see [`crate::workers`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::ProxyState;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Serves clients on `listener` until `shutdown` turns true.
pub async fn run(state: Arc<ProxyState>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let workers = match crate::workers::Workers::start(state.options.threads) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start worker threads; serving clients on the main runtime");
            None
        }
    };
    let mut next_worker = 0usize;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (mut stream, _) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if state.metrics.clients.load(Ordering::Relaxed) >= state.options.max_clients {
            state.metrics.rejected_clients.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            });
            continue;
        }
        state.metrics.client_opened();
        let id = NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed);
        let Some(workers) = &workers else {
            tokio::spawn(crate::session::serve(state.clone(), stream, id));
            continue;
        };
        // Handed over as a std socket: a tokio socket belongs to the runtime that accepted it.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a client to a worker");
                state.metrics.client_closed();
                continue;
            }
        };
        let session_state = state.clone();
        workers.spawn(next_worker, async move {
            match tokio::net::TcpStream::from_std(std_stream) {
                Ok(stream) => crate::session::serve(session_state, stream, id).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register a client with its worker");
                    session_state.metrics.client_closed();
                }
            }
        });
        next_worker = next_worker.wrapping_add(1);
    }
}
