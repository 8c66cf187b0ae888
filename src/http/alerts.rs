//! The alert routes of the HTTP API.
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
//!   changes need an operator's session or the token (the guard decides,
//!   [`super::auth`]), and are audited.
//! * `POST /api/alerts/{id}/ack` (JSON body `{}`): an operator acknowledges
//!   an alert (the dashboard's critical banner); who and when are stored and
//!   shown in the list: the user's name, or `api-token`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use crate::access::AccessHandle;
use crate::alerts::{webhook, AlertsHandle, Filter};
use crate::events::Severity;

/// Who may call what is decided by the guard ([`super::auth`]): the
/// webhook needs the token, the changes an operator (or the token).
#[derive(Clone)]
struct AlertsState {
    handle: AlertsHandle,
    access: AccessHandle,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// The longest maintenance silence: a camera silenced "until 9999" is a
/// camera nobody will hear of again.
pub const MAX_SILENCE_DAYS: i64 = 366;

/// The longest silence reason kept.
pub const MAX_REASON_CHARS: usize = 500;

type Reply = Result<Json<Value>, ApiError>;

pub fn router(handle: AlertsHandle, access: AccessHandle) -> Router {
    Router::new()
        .route("/api/alerts", get(list))
        .route("/api/alerts/webhook", post(webhook))
        .route("/api/alerts/{id}/ack", post(ack))
        .route("/api/alerts/incidents", get(incidents))
        .route("/api/alerts/silences", get(silences).post(add_silence))
        .route("/api/alerts/silences/{camera_id}", delete(remove_silence))
        .with_state(AlertsState { handle, access })
}

async fn webhook(State(state): State<AlertsState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let events = webhook::parse(&body).map_err(|e| {
        tracing::warn!(error = %e, "rejected an Alertmanager webhook payload");
        ApiError::bad_request(e.0)
    })?;
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let i = state.handle.submit(event).await?;
        stored.push(json!({ "id": i.alert_id, "action": i.outcome.as_str() }));
    }
    Ok(Json(json!({ "stored": stored.len(), "alerts": stored })))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    severity: Option<Severity>,
    camera_id: Option<u32>,
    open: Option<bool>,
}

/// A camera named in a query that the caller may not see: 403, as on the
/// camera routes.
fn check_scope(caller: &Caller, camera: Option<u32>) -> Result<(), ApiError> {
    match camera {
        Some(c) if !caller.may_see(c) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} may not see camera {c}", caller.actor()),
        )),
        _ => Ok(()),
    }
}

async fn list(
    State(state): State<AlertsState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Reply {
    let Query(q) = query?;
    check_scope(&caller, q.camera_id)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    // SQLite's OFFSET is an i64: beyond it, the wrapped value would be
    // negative, which SQLite reads as 0 (the first page instead of none).
    let offset = q.offset.unwrap_or(0).min(i64::MAX as usize);
    let filter = Filter {
        severity: q.severity,
        camera_id: q.camera_id,
        open: q.open,
        only_cameras: caller.camera_scope().map(<[u32]>::to_vec),
    };
    let (alerts, total) = state.handle.list(filter, limit, offset).await?;
    Ok(Json(json!({
        "alerts": alerts,
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

#[derive(Debug, Deserialize)]
struct IncidentQuery {
    camera_id: Option<u32>,
    limit: Option<usize>,
}

async fn incidents(
    State(state): State<AlertsState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Reply {
    let Query(q) = query?;
    check_scope(&caller, q.camera_id)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let only = caller.camera_scope().map(<[u32]>::to_vec);
    let list = state.handle.incidents(q.camera_id, only, limit).await?;
    Ok(Json(json!({ "incidents": list })))
}

async fn silences(State(state): State<AlertsState>, Extension(caller): Extension<Caller>) -> Reply {
    let mut s = state.handle.silences().await?;
    s.retain(|s| caller.may_see(s.camera_id));
    Ok(Json(json!({ "silences": s })))
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
    State(state): State<AlertsState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<SilenceRequest>, JsonRejection>,
) -> Reply {
    let Json(req) = body?;
    check_scope(&caller, Some(req.camera_id))?;
    if req.reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "\"reason\" is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    let now = Utc::now();
    let longest = now + chrono::Duration::days(MAX_SILENCE_DAYS);
    let until = match (req.minutes, req.until) {
        (Some(m), None) if m > 0 && m <= MAX_SILENCE_DAYS as u64 * 1440 => {
            now + chrono::Duration::minutes(m as i64)
        }
        (None, Some(u)) if u > now && u <= longest => u,
        (None, Some(u)) if u <= now => {
            return Err(ApiError::bad_request("\"until\" is in the past"))
        }
        (Some(m), None) if m > 0 => {
            return Err(ApiError::bad_request(format!(
                "a silence lasts at most {MAX_SILENCE_DAYS} days ({} minutes)",
                MAX_SILENCE_DAYS * 1440
            )))
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "a silence lasts at most {MAX_SILENCE_DAYS} days: \"until\" is too far"
            )))
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either \"minutes\" (> 0) or \"until\" (RFC 3339)",
            ))
        }
    };
    state
        .handle
        .silence(req.camera_id, until, req.reason.trim())
        .await?;
    state
        .access
        .audit(
            caller
                .audit("silence_add")
                .camera(req.camera_id)
                .detail(format!(
                    "until {}; {}",
                    until.format("%Y-%m-%dT%H:%M:%SZ"),
                    req.reason.trim()
                )),
        )
        .await;
    Ok(Json(json!({ "camera_id": req.camera_id, "until": until })))
}

async fn remove_silence(
    State(state): State<AlertsState>,
    Extension(caller): Extension<Caller>,
    camera_id: Result<Path<u32>, PathRejection>,
) -> Reply {
    // A camera id that is not a u32 is a JSON 400 like every other error
    // (axum's own rejection is plain text).
    let Path(camera_id) = camera_id?;
    check_scope(&caller, Some(camera_id))?;
    if state.handle.unsilence(camera_id).await? {
        state
            .access
            .audit(caller.audit("silence_remove").camera(camera_id))
            .await;
        Ok(Json(json!({ "camera_id": camera_id, "silenced": false })))
    } else {
        Err(ApiError::not_found(format!(
            "camera {camera_id} is not silenced"
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {}

/// The operator acknowledges an alert. The JSON body is required so that a
/// cross-site page cannot send it without a CORS preflight.
async fn ack(
    State(state): State<AlertsState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<AckRequest>, JsonRejection>,
) -> Reply {
    let Path(id) = id?;
    let Json(AckRequest {}) = body?;
    match state.handle.ack(id, caller.actor().to_string()).await? {
        Some((by, at)) => {
            state
                .access
                .audit(caller.audit("alert_ack").detail(format!("alert {id}")))
                .await;
            Ok(Json(json!({ "id": id, "acked_by": by, "acked_at": at })))
        }
        None => Err(ApiError::not_found(format!("no alert with id {id}"))),
    }
}
