//! The HTTP edge (axum): the API, the dashboard page, server-sent events and
//! `/metrics`. Handlers read the published [`crate::status::Snapshot`] and
//! the alert store; the only way to change the supervisor is a
//! [`crate::daemon::Command`] sent to the loop.
//!
//! * [`cameras`]: health, cameras, status, reset, latency reports.
//! * [`alerts`]: alert history, incidents, silences, Alertmanager's webhook.
//! * [`events`]: `GET /api/events`.
//! * [`auth`]: the machine token; [`error`]: the one JSON error type;
//!   [`types`]: the response types `openapi.yaml` describes.
//!
//! The contract of every route is `openapi.yaml` at the repository root;
//! `scripts/api-contract` checks the running daemon against it.

pub mod alerts;
pub mod auth;
pub mod cameras;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod playback;
pub mod recordings;
pub mod types;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertsHandle;
use crate::daemon;
use crate::events::AlertEvent;
use crate::token::ApiToken;

/// The largest request body the API reads (a webhook batch of many alerts
/// fits; anything larger is a mistake or an attack).
pub const MAX_BODY: usize = 256 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub daemon: daemon::Handle,
    /// Alerts as they happen, for server-sent events.
    pub alert_events: broadcast::Sender<AlertEvent>,
    pub alerts: AlertsHandle,
    pub token: Arc<ApiToken>,
    /// The segment catalog (`None` when it cannot be opened).
    pub storage: Option<crate::storage::db::StorageDb>,
    /// The dashboard's live view and MediaMTX's playback server.
    pub live: Arc<dashboard::LiveSettings>,
}

/// How long a client may take to send a request's headers before the
/// connection is closed: a client that trickles them (slowloris) must not
/// hold a connection, and a file descriptor, forever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long open connections (server-sent events, slow clients) get to end
/// after `shutdown`.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves until `shutdown`: each connection with HTTP/1.1, a timeout on its
/// headers ([`HEADER_READ_TIMEOUT`]), and a graceful end at shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let loopback = listener
        .local_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let app = router(state, loopback);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a moment
                    // rather than spin.
                    tracing::error!(error = %e, "HTTP API: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = tokio::time::timeout(DRAIN, conn).await;
        });
    }
    connections.close();
    connections.wait().await;
}

/// Every route. On a listener that is not loopback, every request needs the
/// token.
pub fn router(state: ApiState, loopback: bool) -> Router {
    let token = state.token.clone();
    let app = Router::new()
        .route("/", get(dashboard::page))
        .route("/ui/settings.json", get(dashboard::settings))
        .route("/ui/{file}", get(dashboard::asset))
        .route("/api/cameras/{id}/playback/list", get(playback::list))
        .route("/api/cameras/{id}/playback/get", get(playback::get))
        .route("/api/cameras/health", get(cameras::health))
        .route("/api/cameras", get(cameras::list))
        .route("/api/cameras/{id}", get(cameras::one))
        .route("/api/cameras/{id}/reset", post(cameras::reset))
        .route("/api/cameras/{id}/latency", post(cameras::latency))
        .route("/api/cameras/{id}/recordings", get(recordings::ledger))
        .route("/api/events", get(events::stream))
        .route("/api/status", get(cameras::status))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(alerts::router(state.alerts.clone(), state.token.clone()))
        // After the merge, so that every route answers in JSON.
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    if loopback {
        app
    } else {
        app.layer(middleware::from_fn_with_state(token, auth::everything))
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
