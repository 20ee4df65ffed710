//! The proxy's HTTP endpoint: `/metrics` (Prometheus text format) and `/healthz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::ProxyState;

async fn metrics(State(state): State<Arc<ProxyState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn healthz(State(state): State<Arc<ProxyState>>) -> impl IntoResponse {
    let epoch = state.routes.load().epoch;
    if epoch == 0 {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no topology yet\n".to_string())
    } else {
        (axum::http::StatusCode::OK, format!("ok epoch {epoch}\n"))
    }
}

pub fn router(state: Arc<ProxyState>) -> Router {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(state)
}

/// Serves until `shutdown` turns true.
pub async fn serve(state: Arc<ProxyState>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "metrics endpoint stopped");
    }
}
