//! The camera routes: the design's health document, the camera list and
//! one camera, `/api/status`, the manual reset and the players' latency
//! reports.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::types::{
    Camera, CameraList, HealthDoc, RecentAlert, RecordingHealth, ResetReply, StatusDoc,
};
use super::ApiState;
use crate::daemon::Command;
use crate::status::{Health, Snapshot};

fn snapshot(state: &ApiState) -> Arc<Snapshot> {
    state.daemon.snapshot.borrow().clone()
}

/// The snapshot as `caller` may see it (a user limited to some cameras sees
/// only those, in the counts too).
pub fn snapshot_for(snap: Arc<Snapshot>, caller: &Caller) -> Arc<Snapshot> {
    match caller.camera_scope() {
        Some(cameras) => Arc::new(snap.only_cameras(cameras)),
        None => snap,
    }
}

/// The `{id}` of a camera route. Taken as a `Result` so that a segment that
/// is not even UTF-8 gets our JSON 400, not axum's plain-text one.
type RawId = Result<Path<String>, PathRejection>;

fn camera_id(raw: RawId) -> Result<u32, ApiError> {
    let Path(raw) = raw?;
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "camera id {raw:?} is not a number from 0 to {}",
            u32::MAX
        ))
    })
}

pub async fn health(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Json<HealthDoc> {
    let snap = snapshot_for(snapshot(&state), &caller);
    let active = snap.recording();
    let recent_alerts = state
        .alerts
        .recent(10, caller.camera_scope().map(<[u32]>::to_vec))
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
        online: snap.count(Health::Online),
        recovering: snap.count(Health::Recovering),
        offline: snap.count(Health::Offline),
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
}

pub async fn status(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Json<StatusDoc> {
    Json(StatusDoc::from(
        snapshot_for(snapshot(&state), &caller).as_ref(),
    ))
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Json<CameraList> {
    let snap = snapshot_for(snapshot(&state), &caller);
    Json(CameraList {
        items: snap.cameras.iter().map(|c| Camera::new(&snap, c)).collect(),
    })
}

pub async fn one(State(state): State<ApiState>, raw: RawId) -> Result<Json<Camera>, ApiError> {
    let id = camera_id(raw)?;
    let snap = snapshot(&state);
    snap.cameras
        .iter()
        .find(|c| c.id == id)
        .map(|c| Json(Camera::new(&snap, c)))
        .ok_or_else(|| ApiError::not_found(format!("no camera with id {id}")))
}

pub async fn reset(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    raw: RawId,
) -> Result<Json<ResetReply>, ApiError> {
    let id = camera_id(raw)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .daemon
        .commands
        .send(Command::ResetCamera {
            camera: id,
            reply: tx,
        })
        .await
        .map_err(|_| ApiError::unavailable("the daemon is stopping"))?;
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(true)) => {
            state
                .access
                .audit(caller.audit("camera_reset").camera(id))
                .await;
            Ok(Json(ResetReply {
                status: "ok".into(),
                camera_id: id,
            }))
        }
        Ok(Ok(false)) => Err(ApiError::not_found(format!("no camera with id {id}"))),
        _ => Err(ApiError::unavailable("the daemon did not answer")),
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
pub struct LatencyReport {
    protocol: Protocol,
    seconds: f64,
}

/// One live-latency measurement from the dashboard's player, recorded in
/// `vms_stream_latency_seconds{camera_id,protocol}`. Only known cameras and
/// the two protocols are accepted, so that nobody can grow the label set.
/// The JSON content type is required: a cross-site page cannot send it to
/// the loopback listener without a CORS preflight, which we never grant.
pub async fn latency(
    State(state): State<ApiState>,
    raw: RawId,
    body: Result<Json<LatencyReport>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = camera_id(raw)?;
    let Json(report) = body?;
    if !(report.seconds.is_finite() && (0.0..=MAX_LATENCY_SECONDS).contains(&report.seconds)) {
        return Err(ApiError::bad_request(format!(
            "\"seconds\" must be between 0 and {MAX_LATENCY_SECONDS}"
        )));
    }
    state.known_camera(id)?;
    crate::metrics::stream_latency(id, report.protocol.as_str(), report.seconds);
    Ok(StatusCode::NO_CONTENT.into_response())
}
