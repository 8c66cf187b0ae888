//! The HTTP edge (axum): the API, the dashboard page, server-sent events and
//! `/metrics`. Handlers read the published [`crate::status::Snapshot`] and
//! the alert store; the only way to change the supervisor is a
//! [`crate::daemon::Command`] sent to the loop.
//!
//! * [`cameras`]: health, cameras, status, reset, latency reports.
//! * [`alerts`]: alert history, incidents, silences, Alertmanager's webhook.
//! * [`events`]: `GET /api/events`.
//! * [`recordings`], [`holds`], [`playback`]: the gap ledger, legal holds,
//!   recorded video.
//! * [`exports`]: evidence export (admins).
//! * [`session`]: login, logout, `/api/me`, the audit trail;
//!   [`mediamtx_auth`]: MediaMTX's authorization callback.
//! * [`auth`]: who may do what (the guard in front of every route);
//!   [`error`]: the one JSON error type;
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
pub mod exports;
pub mod holds;
pub mod mediamtx_auth;
pub mod playback;
pub mod recordings;
pub mod session;
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

use crate::access::AccessHandle;
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
    /// Users, sessions and the audit trail.
    pub access: AccessHandle,
    /// `[api] allowed_hosts`.
    pub allowed_hosts: Arc<Vec<String>>,
    /// Evidence exports (`[state] dir`/exports).
    pub exports: Arc<crate::evidence::Exports>,
    /// Whether the listener serves TLS (the cookie is then `Secure`).
    pub tls: bool,
}

impl ApiState {
    /// A camera of the current configuration, or the API's 404.
    pub fn known_camera(&self, id: u32) -> Result<(), error::ApiError> {
        if self
            .daemon
            .snapshot
            .borrow()
            .cameras
            .iter()
            .any(|c| c.id == id)
        {
            Ok(())
        } else {
            Err(error::ApiError::not_found(format!(
                "no camera with id {id}"
            )))
        }
    }
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
    serve_on(listener, None, state, shutdown).await
}

/// [`serve`] over TLS (`[api] tls_listen`): each connection's handshake,
/// within [`HEADER_READ_TIMEOUT`], then the same routes, with the session
/// cookie `Secure`. A client that speaks plain HTTP to this port is told
/// in one 400 answer to use `https://`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: ApiState,
    shutdown: CancellationToken,
) {
    let state = ApiState { tls: true, ..state };
    serve_on(listener, Some(acceptor), state, shutdown).await
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: ApiState,
    shutdown: CancellationToken,
) {
    use hyper_util::service::TowerToHyperService;

    let app = router(state);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
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
        // Who is at each end, for the guard (loopback peers, the Host check).
        let local = stream.local_addr().unwrap_or(peer);
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(auth::Conn { peer, local })),
        );
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let Some(acceptor) = tls else {
                return connection(stream, service, shutdown).await;
            };
            let handshake = async {
                if !starts_tls(&stream).await {
                    refuse_plain(stream).await;
                    return None;
                }
                match acceptor.accept(stream).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // Scanners and browsers that distrust the
                        // certificate: not worth more than debug.
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                }
            };
            let stream = tokio::select! {
                s = tokio::time::timeout(HEADER_READ_TIMEOUT, handshake) => s.ok().flatten(),
                _ = shutdown.cancelled() => None,
            };
            if let Some(stream) = stream {
                connection(stream, service, shutdown).await;
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// One connection's HTTP/1.1, until it ends or `shutdown` (then [`DRAIN`]).
async fn connection<I>(
    io: I,
    service: hyper_util::service::TowerToHyperService<Router>,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = tokio::time::timeout(DRAIN, conn).await;
}

/// Whether a connection begins with a TLS handshake record (content type
/// 22), without reading it.
async fn starts_tls(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// The answer to plain HTTP on the HTTPS port (someone typed `http://`).
async fn refuse_plain(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // The request is read first: a socket closed with unread bytes is
    // reset, and the client would see that instead of the answer.
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request).await;
    let body = r#"{"error":"this port speaks HTTPS: use https:// in the address"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Every route, behind [`auth::guard`].
pub fn router(state: ApiState) -> Router {
    let gate = auth::Gate {
        token: state.token.clone(),
        access: state.access.clone(),
        allowed_hosts: state.allowed_hosts.clone(),
    };
    Router::new()
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
        .route("/api/holds", get(holds::list).post(holds::add))
        .route("/api/holds/{id}/release", post(holds::release))
        .route("/api/cameras/{id}/exports", post(exports::create))
        .route("/api/exports", get(exports::list))
        .route("/api/exports/{id}", get(exports::one))
        .route("/api/exports/{id}/{file}", get(exports::file))
        .route("/api/events", get(events::stream))
        .route("/api/status", get(cameras::status))
        .route("/metrics", get(metrics))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/audit", get(session::audit))
        .route("/internal/mediamtx/auth", post(mediamtx_auth::decide))
        .with_state(state.clone())
        .merge(alerts::router(state.alerts.clone(), state.access.clone()))
        // After the merge, so that every route answers in JSON.
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(gate, auth::guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
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
