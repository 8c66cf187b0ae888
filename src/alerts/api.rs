//! The alert routes of the daemon's HTTP API. The API module merges this
//! router into its own.
//!
//! * `POST /api/alerts/webhook`: Alertmanager's webhook (payload version 4).
//!   Needs `Authorization: Bearer <api token>` (401 otherwise, also when the
//!   daemon has no token). A malformed payload gets 400 `{"error": "..."}`;
//!   a database failure 503 (Alertmanager retries 5xx). Each alert is
//!   stored and delivered through the same pipeline and outbox as the
//!   daemon's own alerts.
//! * `GET /api/alerts?limit=&offset=&severity=&camera_id=&open=`: stored
//!   alerts, newest first, `{"alerts": [...], "total", "limit", "offset"}`.
//! * `GET /api/alerts/incidents?camera_id=&limit=`: the audit ledger,
//!   newest first: each incident with when it opened and closed, why, and
//!   the camera's recording gap (`recording_gap_start` .. `recording_gap_end`).
//! * `GET /api/alerts/silences`, `POST /api/alerts/silences`
//!   (`{"camera_id": 5, "minutes": 120, "reason": "..."}` or `"until"`),
//!   `DELETE /api/alerts/silences/{camera_id}`: maintenance silences; the
//!   mutations need the token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{AlertsHandle, Filter};
use crate::events::Severity;

#[derive(Clone)]
struct ApiState {
    handle: AlertsHandle,
    token: Option<Arc<String>>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

pub fn router(handle: AlertsHandle, token: Option<Arc<String>>) -> Router {
    Router::new()
        .route("/api/alerts", get(list))
        .route("/api/alerts/webhook", post(webhook))
        .route("/api/alerts/incidents", get(incidents))
        .route("/api/alerts/silences", get(silences).post(add_silence))
        .route("/api/alerts/silences/{camera_id}", delete(remove_silence))
        .with_state(ApiState { handle, token })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Checks `Authorization: Bearer <token>` in constant time.
/// On failure, the 401 message.
fn authorized(state: &ApiState, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(token) = state.token.as_deref() else {
        return Err("this daemon has no API token (api.token_file); mutations are refused");
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if crate::api::constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err("invalid API token"),
        None => Err("missing \"Authorization: Bearer <token>\" header"),
    }
}

fn store_error(e: super::AlertsError) -> Response {
    tracing::error!(error = %e, "alert API: database error");
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn webhook(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let events = match super::webhook::parse(&body) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "rejected an Alertmanager webhook payload");
            return error(StatusCode::BAD_REQUEST, e.0);
        }
    };
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        match state.handle.submit(event).await {
            Ok(i) => stored.push(json!({ "id": i.alert_id, "action": i.action.as_str() })),
            Err(e) => return store_error(e),
        }
    }
    Json(json!({ "stored": stored.len(), "alerts": stored })).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    severity: Option<Severity>,
    camera_id: Option<u32>,
    open: Option<bool>,
}

async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    // SQLite's OFFSET is an i64: beyond it, the wrapped value would be
    // negative, which SQLite reads as 0 (the first page instead of none).
    let offset = q.offset.unwrap_or(0).min(i64::MAX as usize);
    let filter = Filter {
        severity: q.severity,
        camera_id: q.camera_id,
        open: q.open,
    };
    match state.handle.list(filter, limit, offset).await {
        Ok((alerts, total)) => Json(json!({
            "alerts": alerts,
            "total": total,
            "limit": limit,
            "offset": offset,
        }))
        .into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct IncidentQuery {
    camera_id: Option<u32>,
    limit: Option<usize>,
}

async fn incidents(
    State(state): State<ApiState>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    match state.handle.incidents(q.camera_id, limit).await {
        Ok(list) => Json(json!({ "incidents": list })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn silences(State(state): State<ApiState>) -> Response {
    match state.handle.silences().await {
        Ok(s) => Json(json!({ "silences": s })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    camera_id: u32,
    minutes: Option<u64>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: String,
}

async fn add_silence(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<SilenceRequest>, JsonRejection>,
) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let until = match (req.minutes, req.until) {
        (Some(m), None) if m > 0 => Utc::now() + chrono::Duration::minutes(m.min(525_600) as i64),
        (None, Some(u)) if u > Utc::now() => u,
        (None, Some(_)) => return error(StatusCode::BAD_REQUEST, "\"until\" is in the past"),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either \"minutes\" (> 0) or \"until\" (RFC 3339)",
            )
        }
    };
    match state
        .handle
        .silence(req.camera_id, until, &req.reason)
        .await
    {
        Ok(()) => Json(json!({ "camera_id": req.camera_id, "until": until })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn remove_silence(
    State(state): State<ApiState>,
    headers: HeaderMap,
    camera_id: Result<Path<u32>, PathRejection>,
) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    // A camera id that is not a u32 is a JSON 400 like every other error
    // (axum's own rejection is plain text).
    let Path(camera_id) = match camera_id {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match state.handle.unsilence(camera_id).await {
        Ok(true) => Json(json!({ "camera_id": camera_id, "silenced": false })).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("camera {camera_id} is not silenced"),
        ),
        Err(e) => store_error(e),
    }
}
