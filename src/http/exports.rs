//! Evidence export over HTTP ([`crate::evidence`] makes the files). Only an
//! administrator whose camera list has the camera; never the machine token
//! (an export is video, and a person's name goes on it).
//!
//! * `POST /api/cameras/{id}/exports` `{"start", "end", "reason"?}`: makes
//!   the export and answers 201 with its [`Manifest`] (and `Location`). The
//!   request waits for the whole export; the export itself runs in a task
//!   of its own, so a client that gives up does not leave half an export.
//!   Audited as `evidence_export` with the range and every file's SHA-256.
//! * `GET /api/exports`: every export of the cameras the caller may see,
//!   newest first.
//! * `GET /api/exports/{id}`: one manifest.
//! * `GET /api/exports/{id}/{file}`: a file of the export (an MP4,
//!   `manifest.json` or `SHA256SUMS`) as an attachment (the last two saved
//!   as `<id>_manifest.json`, `<id>_SHA256SUMS`); audited as
//!   `evidence_download`.
//!
//! While an export reads the footage, a storage hold over its camera and
//! range keeps retention and eviction away from it; the hold is released
//! when the export ends (released holds stay in the catalog, so the hold
//! is on record too). A hold left open by a crash is released by the next
//! export (exports run one at a time, so an open export hold found at the
//! start of one is stale). Without a segment catalog the export runs
//! without a hold (the daemon's log says so).

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use super::auth::Caller;
use super::error::ApiError;
use super::ApiState;
use crate::evidence::{self, ExportError, Manifest};
use crate::storage::holds;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Serialize)]
pub struct ExportList {
    pub exports: Vec<Manifest>,
}

/// What `POST /api/cameras/{id}/exports` answers when it fails: the API's
/// error, or the 507 of a range the exports disk has no room for, which
/// also names the bytes (`needed_bytes`, `available_bytes`, `floor_bytes`)
/// so that the page can say it in the operator's language.
#[derive(Debug)]
pub enum CreateError {
    Api(ApiError),
    NoSpace {
        message: String,
        needed: u64,
        available: u64,
        floor: u64,
    },
}

impl From<ApiError> for CreateError {
    fn from(e: ApiError) -> Self {
        CreateError::Api(e)
    }
}

impl IntoResponse for CreateError {
    fn into_response(self) -> Response {
        match self {
            CreateError::Api(e) => e.into_response(),
            CreateError::NoSpace {
                message,
                needed,
                available,
                floor,
            } => (
                StatusCode::INSUFFICIENT_STORAGE,
                Json(serde_json::json!({
                    "error": message,
                    "needed_bytes": needed,
                    "available_bytes": available,
                    "floor_bytes": floor,
                })),
            )
                .into_response(),
        }
    }
}

impl From<ExportError> for CreateError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NoSpace {
                needed,
                available,
                floor,
            } => {
                let message = e.to_string();
                tracing::warn!(error = %message, "evidence export refused");
                CreateError::NoSpace {
                    message,
                    needed,
                    available,
                    floor,
                }
            }
            e => CreateError::Api(e.into()),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::Invalid(m) => ApiError::bad_request(m),
            e @ ExportError::NoFootage { .. } => ApiError::not_found(e.to_string()),
            e @ ExportError::Upstream(_) => {
                tracing::error!(error = %e, "evidence export failed");
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            e @ ExportError::Io(_) => {
                tracing::error!(error = %e, "evidence export failed");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            e @ ExportError::NoSpace { .. } => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
        }
    }
}

fn user_may_see(caller: &Caller, camera: u32) -> bool {
    match caller {
        Caller::User { user, .. } => user.may_see(camera),
        // The guard lets no one else in.
        _ => false,
    }
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<ExportRequest>, JsonRejection>,
) -> Result<Response, CreateError> {
    let Path(raw) = id.map_err(ApiError::from)?;
    let camera: u32 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("camera id {raw:?} is not a number")))?;
    let Json(body) = body.map_err(ApiError::from)?;
    let reason = body.reason.trim().to_string();
    if reason.chars().count() > evidence::MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "\"reason\" has at most {} characters",
            evidence::MAX_REASON
        ))
        .into());
    }
    evidence::check_range(body.start, body.end).map_err(ApiError::from)?;
    let (camera_name, box_name) = {
        let snap = state.daemon.snapshot.borrow();
        let Some(c) = snap.cameras.iter().find(|c| c.id == camera) else {
            return Err(ApiError::not_found(format!("no camera with id {camera}")).into());
        };
        (c.name.clone(), snap.box_name.clone())
    };
    let req = evidence::Request {
        camera_id: camera,
        camera_name,
        start: body.start,
        end: body.end,
        reason,
        box_name,
        user: caller.actor().to_string(),
        source: caller.source().to_string(),
    };
    // In a task of its own: a client that disconnects cancels this
    // handler, never the export half-way.
    let task = tokio::spawn(run(state.clone(), caller, req));
    let manifest = task
        .await
        .map_err(|e| ApiError::unavailable(format!("the export stopped: {e}")))??;
    let location = format!("/api/exports/{}", manifest.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(manifest),
    )
        .into_response())
}

/// One export from start to end: the lock, the free-space check, the
/// hold, the files, the release, the audit row.
async fn run(
    state: ApiState,
    caller: Caller,
    req: evidence::Request,
) -> Result<Manifest, CreateError> {
    let job = state.exports.begin(req.camera_id, Utc::now()).await?;
    let job = match room(&state, &req).await {
        Some(room) => state.exports.ensure_room(job, room).await?,
        None => job,
    };
    let hold = place_hold(&state, &req, &job.id).await;
    let result = state.exports.make(job, &req, Utc::now()).await;
    if let Some(hold) = hold {
        release_hold(&state, hold, &req.user).await;
    }
    let manifest = result?;
    let hashes: Vec<String> = manifest
        .files
        .iter()
        .map(|f| format!("{} sha256={} bytes={}", f.name, f.sha256, f.size))
        .collect();
    let mut detail = format!(
        "id={} start={} end={} files: {}",
        manifest.id,
        manifest.start.to_rfc3339(),
        manifest.end.to_rfc3339(),
        hashes.join(", ")
    );
    if !manifest.reason.is_empty() {
        detail.push_str(&format!(" reason={:?}", manifest.reason));
    }
    state
        .access
        .audit(
            caller
                .audit("evidence_export")
                .camera(req.camera_id)
                .detail(detail),
        )
        .await;
    tracing::info!(
        id = %manifest.id,
        camera_id = req.camera_id,
        user = %req.user,
        files = manifest.files.len(),
        "evidence exported"
    );
    Ok(manifest)
}

/// What the export may count on: the range's recorded bytes from the
/// catalog and the recordings' floor the storage machine published;
/// `None` without a catalog (the export then runs unchecked, and a disk
/// that fills still ends it with nothing partial).
async fn room(state: &ApiState, req: &evidence::Request) -> Option<evidence::Room> {
    let Some(db) = state.storage.clone() else {
        tracing::warn!("no segment catalog: the export's free space is not checked first");
        return None;
    };
    let (camera, start, end) = (req.camera_id, req.start, req.end);
    let segments = db
        .call(move |conn| {
            crate::storage::catalog::intervals(
                conn,
                camera,
                crate::storage::to_micros(start),
                crate::storage::to_micros(end),
            )
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let segments = match segments {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "segment catalog: the export's free space is not checked first");
            return None;
        }
    };
    let floor = state
        .daemon
        .snapshot
        .borrow()
        .storage
        .as_ref()
        .and_then(|s| s.floor_bytes);
    Some(evidence::Room {
        recorded: evidence::recorded_bytes(&segments, start, end),
        floor,
    })
}

/// Holds the range while it is read (and releases export holds left by a
/// crash); `None` without a catalog or when the hold cannot be placed
/// (logged: the export goes on, the footage was there a moment ago).
async fn place_hold(state: &ApiState, req: &evidence::Request, id: &str) -> Option<i64> {
    let Some(db) = state.storage.clone() else {
        tracing::warn!("no segment catalog: the export runs without a storage hold");
        return None;
    };
    let new = holds::NewHold {
        camera: req.camera_id,
        from: req.start,
        to: req.end,
        reason: format!(
            "{}{id} (released when the export ends)",
            evidence::HOLD_REASON_PREFIX
        ),
    };
    let who = req.user.clone();
    let r = db
        .call(move |conn| -> Result<i64, holds::HoldError> {
            let now = Utc::now();
            for stale in holds::list(conn, false)? {
                if stale.reason.starts_with(evidence::HOLD_REASON_PREFIX) {
                    holds::release(conn, stale.id, "vms-supervisor", now)?;
                }
            }
            Ok(holds::add(conn, &new, &who, now)?.id)
        })
        .await;
    match r {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot place the export's storage hold");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot place the export's storage hold");
            None
        }
    }
}

async fn release_hold(state: &ApiState, hold: i64, who: &str) {
    let Some(db) = state.storage.clone() else {
        return;
    };
    let who = who.to_string();
    let r = db
        .call(move |conn| holds::release(conn, hold, &who, Utc::now()))
        .await;
    if !matches!(r, Ok(Ok(_))) {
        tracing::error!(hold, "cannot release the export's storage hold");
    }
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Json<ExportList> {
    let exports = state
        .exports
        .list_all()
        .await
        .into_iter()
        .filter(|m| user_may_see(&caller, m.camera_id))
        .collect();
    Json(ExportList { exports })
}

async fn find(state: &ApiState, caller: &Caller, id: &str) -> Result<Manifest, ApiError> {
    let missing = || ApiError::not_found(format!("no export with id {id:?}"));
    let m = state.exports.manifest(id).await.ok_or_else(missing)?;
    if !user_may_see(caller, m.camera_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} may not see camera {}", caller.actor(), m.camera_id),
        ));
    }
    Ok(m)
}

pub async fn one(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Manifest>, ApiError> {
    let Path(id) = id?;
    Ok(Json(find(&state, &caller, &id).await?))
}

pub async fn file(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, name)) = params?;
    let m = find(&state, &caller, &id).await?;
    let path = state
        .exports
        .file(&m, &name)
        .ok_or_else(|| ApiError::not_found(format!("export {id} has no file {name:?}")))?;
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::not_found(format!("export {id}, {name}: {e}")))?;
    let size = f
        .metadata()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .len();
    let mime = if name.ends_with(".mp4") {
        "video/mp4"
    } else if name == evidence::MANIFEST {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    state
        .access
        .audit(
            caller
                .audit("evidence_download")
                .camera(m.camera_id)
                .detail(format!("id={id} file={name}")),
        )
        .await;
    let body = Body::from_stream(chunks(f));
    // The MP4s are named by camera and time already; the manifest and the
    // checksums get the export's id in front, so that several exports can
    // sit in one downloads folder (`sha256sum -c` does not care what the
    // checksum file is called). Names are ours (letters, digits, `_`, `-`,
    // `.`): no quoting needed.
    let saved_as = if name.ends_with(".mp4") {
        name.clone()
    } else {
        format!("{id}_{name}")
    };
    let disposition = format!("attachment; filename=\"{saved_as}\"");
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// The file's bytes, 64 KiB at a time.
fn chunks(f: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(Some(f), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
