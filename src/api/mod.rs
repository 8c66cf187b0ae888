//! The HTTP API (axum): health, cameras, reset, server-sent events, metrics
//! and the dashboard page. Handlers read the published snapshot; the only
//! way to change anything is a [`Command`] sent to the daemon's loop.
//!
//! Access: reading is open on a loopback listener; changes (reset, silence,
//! webhook) need `Authorization: Bearer <token>`; on any other listener
//! every request needs the token. The one write that is open on loopback is
//! `POST /api/cameras/{id}/latency`: telemetry from the dashboard page the
//! daemon serves itself, which has no token. Errors are JSON with a 4xx/5xx
//! code.
//!
//! The contract of every route is `openapi.yaml` at the repository root;
//! `scripts/api-contract` checks the running daemon against it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_util::sync::CancellationToken;

use crate::daemon::{Command, Handles, Snapshot};
use crate::supervisor::cameras::Health;

/// Serves until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handles: Handles,
    shutdown: CancellationToken,
) {
    let app = router(handles);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP API stopped");
    }
}

pub fn router(handles: Handles) -> Router {
    let loopback = handles.config.api.listen.ip().is_loopback();
    let app = Router::new()
        .route("/", get(dashboard))
        .route("/api/cameras/health", get(health))
        .route("/api/cameras", get(cameras))
        .route("/api/cameras/{id}", get(camera))
        .route("/api/cameras/{id}/reset", post(reset))
        .route("/api/cameras/{id}/latency", post(latency))
        .route("/api/events", get(events))
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(handles.clone());
    let app = app.merge(crate::alerts::api::router(
        handles.alerts.clone(),
        Some(handles.token.clone()),
    ));
    // After the merge, so that every route answers a wrong method in JSON.
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if loopback {
        app
    } else {
        app.layer(middleware::from_fn_with_state(handles, require_token))
    }
}

/// A JSON error: `{"error": "..."}` with a 4xx/5xx status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// A known path with a method it does not serve (axum keeps the `Allow`
/// header).
async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

fn authorized(handles: &Handles, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), handles.token.as_bytes()))
}

/// Compares a presented token with ours in time independent of where they
/// differ (shared with the alert routes).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(handles): State<Handles>, req: Request, next: Next) -> Response {
    if authorized(&handles, req.headers()) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (Authorization: Bearer <token>)",
        )
    }
}

fn snapshot(handles: &Handles) -> Arc<Snapshot> {
    handles.snapshot.borrow().clone()
}

/// The seed's health document, field for field.
#[derive(Serialize)]
struct HealthDoc {
    total: usize,
    online: usize,
    recovering: usize,
    offline: usize,
    recording_health: RecordingHealth,
    recent_alerts: Vec<RecentAlert>,
}

#[derive(Serialize)]
struct RecordingHealth {
    active: usize,
    failed: usize,
    disk_usage: String,
}

#[derive(Serialize)]
struct RecentAlert {
    camera: String,
    severity: String,
    message: String,
    timestamp: String,
    resolved: bool,
}

async fn health(State(handles): State<Handles>) -> Response {
    let snap = snapshot(&handles);
    let count = |h| snap.cameras.iter().filter(|c| c.state == h).count();
    let active = snap.cameras.iter().filter(|c| c.recording).count();
    let recent_alerts = handles
        .alerts
        .recent(10)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| RecentAlert {
            camera: a.camera.unwrap_or_else(|| snap.box_name.clone()),
            severity: a.severity.as_str().to_string(),
            message: a.message,
            timestamp: a.timestamp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            resolved: a.resolved,
        })
        .collect();
    Json(HealthDoc {
        total: snap.cameras.len(),
        online: count(Health::Online),
        recovering: count(Health::Recovering),
        offline: count(Health::Offline),
        recording_health: RecordingHealth {
            active,
            failed: snap.cameras.len() - active,
            disk_usage: snap
                .disk
                .as_ref()
                .map(|d| format!("{:.0}%", d.percent))
                .unwrap_or_else(|| "unknown".into()),
        },
        recent_alerts,
    })
    .into_response()
}

async fn status(State(handles): State<Handles>) -> Response {
    Json(snapshot(&handles).as_ref().clone()).into_response()
}

/// A camera as the API shows it: the monitor's view plus HLS availability
/// (the stream is available and the HLS server listens).
fn camera_json(snap: &Snapshot, cam: &crate::supervisor::cameras::CameraView) -> serde_json::Value {
    let mut v = serde_json::to_value(cam).unwrap_or_default();
    let hls = match (cam.stream_available, snap.mediamtx.hls_listening) {
        (Some(stream), Some(server)) => json!(stream && server),
        _ => serde_json::Value::Null,
    };
    v["hls_available"] = hls;
    v
}

async fn cameras(State(handles): State<Handles>) -> Response {
    let snap = snapshot(&handles);
    let items: Vec<_> = snap.cameras.iter().map(|c| camera_json(&snap, c)).collect();
    Json(json!({ "items": items })).into_response()
}

/// The `{id}` of a camera route. Taken as a `Result` so that a segment that
/// is not even UTF-8 gets our JSON 400, not axum's plain-text one.
type RawId = Result<Path<String>, PathRejection>;

fn parse_id(raw: RawId) -> Result<u32, Box<Response>> {
    let Path(raw) = raw.map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e.body_text())))?;
    raw.parse().map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("camera id {raw:?} is not a number from 0 to {}", u32::MAX),
        ))
    })
}

async fn camera(State(handles): State<Handles>, raw: RawId) -> Response {
    let id = match parse_id(raw) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let snap = snapshot(&handles);
    match snap.cameras.iter().find(|c| c.id == id) {
        Some(c) => Json(camera_json(&snap, c)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no camera with id {id}")),
    }
}

async fn reset(State(handles): State<Handles>, headers: HeaderMap, raw: RawId) -> Response {
    if !authorized(&handles, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (Authorization: Bearer <token>)",
        );
    }
    let id = match parse_id(raw) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if handles
        .commands
        .send(Command::ResetCamera {
            camera: id,
            reply: tx,
        })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(true)) => Json(json!({ "status": "ok", "camera_id": id })).into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no camera with id {id}")),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon did not answer"),
    }
}

/// The largest latency a player may report: anything above is a broken
/// measurement, not a slow stream.
const MAX_LATENCY_SECONDS: f64 = 600.0;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    Webrtc,
    Hls,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Webrtc => "webrtc",
            Protocol::Hls => "hls",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyReport {
    protocol: Protocol,
    seconds: f64,
}

/// One live-latency measurement from the dashboard's player, recorded in
/// `vms_stream_latency_seconds{camera_id,protocol}`. Only known cameras and
/// the two protocols are accepted, so that nobody can grow the label set.
/// The JSON content type is required: a cross-site page cannot send it to
/// the loopback listener without a CORS preflight, which we never grant.
async fn latency(
    State(handles): State<Handles>,
    raw: RawId,
    body: Result<Json<LatencyReport>, JsonRejection>,
) -> Response {
    let id = match parse_id(raw) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let report = match body {
        Ok(Json(report)) => report,
        Err(JsonRejection::MissingJsonContentType(e)) => {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.body_text())
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if !(report.seconds.is_finite() && (0.0..=MAX_LATENCY_SECONDS).contains(&report.seconds)) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("\"seconds\" must be between 0 and {MAX_LATENCY_SECONDS}"),
        );
    }
    if !snapshot(&handles).cameras.iter().any(|c| c.id == id) {
        return error(StatusCode::NOT_FOUND, format!("no camera with id {id}"));
    }
    metrics::histogram!(
        "vms_stream_latency_seconds",
        "camera_id" => id.to_string(),
        "protocol" => report.protocol.as_str()
    )
    .record(report.seconds);
    StatusCode::NO_CONTENT.into_response()
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

/// Server-sent events: `status` (counts and cameras) on every change, and
/// `alert` for every alert as it happens.
async fn events(
    State(handles): State<Handles>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let status = WatchStream::new(handles.snapshot.clone()).map(|snap| {
        let count = |h| snap.cameras.iter().filter(|c| c.state == h).count();
        let data = json!({
            "online": count(Health::Online),
            "recovering": count(Health::Recovering),
            "offline": count(Health::Offline),
            "mediamtx_up": snap.mediamtx.up,
            "cameras": snap.cameras,
            "updated_at": snap.updated_at,
        });
        Ok(SseEvent::default().event("status").data(data.to_string()))
    });
    let alerts =
        BroadcastStream::new(handles.alert_events.subscribe()).filter_map(|ev| async move {
            ev.ok().map(|ev| {
                Ok(SseEvent::default()
                    .event("alert")
                    .data(serde_json::to_string(&ev).unwrap_or_default()))
            })
        });
    Sse::new(futures_util::stream::select(status, alerts)).keep_alive(KeepAlive::default())
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
