//! Recordings through the daemon: MediaMTX's playback server listens on
//! loopback only, so the dashboard reaches it here (behind the API's
//! authentication: an operator or an admin whose camera list has the
//! camera; never the machine token). Each `/get` is audited (`playback`,
//! with its time range). The daemon presents its own credential to
//! MediaMTX ([`crate::mediamtx::credential`]).
//!
//! * `GET /api/cameras/{id}/playback/list?start=&end=`: MediaMTX's `/list` of
//!   path `cam_{id}` (recorded spans; what is between two spans is a gap).
//! * `GET /api/cameras/{id}/playback/get?start=&duration=&format=`: MediaMTX's
//!   `/get`, streamed as it comes (no length; a seek is a new request).

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use super::auth::Caller;

use super::error::ApiError;
use super::ApiState;

/// How long MediaMTX may take to start answering.
const UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GetQuery {
    start: String,
    duration: f64,
    format: Option<String>,
}

fn camera(state: &ApiState, raw: Result<Path<String>, PathRejection>) -> Result<u32, ApiError> {
    let Path(raw) = raw?;
    let id: u32 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("camera id {raw:?} is not a number")))?;
    state.known_camera(id)?;
    Ok(id)
}

async fn forward(
    state: &ApiState,
    what: &str,
    query: Vec<(&str, String)>,
) -> Result<Response, ApiError> {
    let url = format!("http://{}/{what}", state.live.playback);
    let client = reqwest::Client::builder()
        .connect_timeout(UPSTREAM_TIMEOUT)
        .build()
        .map_err(|e| ApiError::unavailable(format!("playback client: {e}")))?;
    let resp = tokio::time::timeout(
        UPSTREAM_TIMEOUT,
        client
            .get(&url)
            .query(&query)
            .bearer_auth(crate::mediamtx::credential())
            .send(),
    )
    .await
    .map_err(|_| ApiError::unavailable("MediaMTX's playback server did not answer"))?
    .map_err(|e| ApiError::unavailable(format!("MediaMTX's playback server: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let code = if code.is_client_error() {
            code
        } else {
            StatusCode::BAD_GATEWAY
        };
        return Err(ApiError::new(code, format!("playback: {msg}")));
    }
    let mime = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = Body::from_stream(futures_util::stream::unfold(resp, |mut r| async move {
        match r.chunk().await {
            Ok(Some(b)) => Some((Ok::<_, reqwest::Error>(b), r)),
            Ok(None) => None,
            Err(e) => Some((Err(e), r)),
        }
    }));
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

pub async fn list(
    State(state): State<ApiState>,
    raw: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = camera(&state, raw)?;
    let Query(q) = query?;
    let mut args = vec![("path", format!("cam_{id}"))];
    args.extend(q.start.map(|s| ("start", s)));
    args.extend(q.end.map(|s| ("end", s)));
    forward(&state, "list", args).await
}

pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    raw: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = camera(&state, raw)?;
    let Query(q) = query?;
    if !(q.duration.is_finite() && q.duration > 0.0 && q.duration <= 86_400.0) {
        return Err(ApiError::bad_request(
            "\"duration\" must be seconds between 0 and 86400",
        ));
    }
    state
        .access
        .audit(
            caller
                .audit("playback")
                .camera(id)
                .detail(format!("start={} duration={}", q.start, q.duration)),
        )
        .await;
    let mut args = vec![
        ("path", format!("cam_{id}")),
        ("start", q.start),
        ("duration", q.duration.to_string()),
    ];
    args.extend(q.format.map(|f| ("format", f)));
    forward(&state, "get", args).await
}
