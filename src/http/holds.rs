//! Legal holds over the API, for operators (the CLI's `hold` does the same
//! on the box):
//!
//! * `GET /api/holds?all=true`: the holds in force, newest first (with
//!   `all`, the released ones too: they are part of the record).
//! * `POST /api/holds` `{camera, from, to, reason}`: footage of a camera
//!   over a range is kept from retention and eviction until released.
//! * `POST /api/holds/{id}/release`: it falls back under retention.
//!
//! A user limited to some cameras sees and changes the holds of those
//! only. Every change goes to the audit trail (`hold_add`,
//! `hold_release`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::ApiState;
use crate::storage::holds::{self, Hold, HoldError, NewHold};

/// The longest hold one request may place (ten years of a camera): a typo
/// in a year must not keep a camera's footage forever without anyone
/// noticing.
const MAX_HOLD_DAYS: i64 = 3660;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    camera: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {}

fn catalog(state: &ApiState) -> Result<crate::storage::db::StorageDb, ApiError> {
    state.storage.clone().ok_or_else(|| {
        ApiError::unavailable("the segment catalog is not available (see the daemon's log)")
    })
}

fn hold_error(e: HoldError) -> ApiError {
    match e {
        HoldError::EmptyRange => ApiError::bad_request("\"from\" must be before \"to\""),
        HoldError::NoReason => ApiError::bad_request("\"reason\" must say why the footage is held"),
        HoldError::NotFound(id) => ApiError::not_found(format!("no hold with id {id}")),
        HoldError::AlreadyReleased(id) => ApiError::new(
            StatusCode::CONFLICT,
            format!("hold {id} was already released"),
        ),
        HoldError::Sql(e) => ApiError::unavailable(format!("segment catalog: {e}")),
    }
}

async fn run<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, HoldError> + Send + 'static,
) -> Result<T, ApiError> {
    catalog(state)?
        .call(move |c: &mut rusqlite::Connection| f(c))
        .await
        .map_err(|_| ApiError::unavailable("the segment catalog has stopped"))?
        .map_err(hold_error)
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Hold>>, ApiError> {
    let Query(ListQuery { all }) = query?;
    let list = run(&state, move |c| holds::list(c, all)).await?;
    Ok(Json(
        list.into_iter()
            .filter(|h| caller.may_see(h.camera))
            .collect(),
    ))
}

pub async fn add(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    let Json(req) = body?;
    state.known_camera(req.camera)?;
    if !caller.may_see(req.camera) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} may not see camera {}", caller.actor(), req.camera),
        ));
    }
    if req.to - req.from > chrono::Duration::days(MAX_HOLD_DAYS) {
        return Err(ApiError::bad_request(format!(
            "a hold covers at most {MAX_HOLD_DAYS} days; place several if you must"
        )));
    }
    let new = NewHold {
        camera: req.camera,
        from: req.from,
        to: req.to,
        reason: req.reason,
    };
    let who = caller.actor().to_string();
    let hold = run(&state, move |c| holds::add(c, &new, &who, Utc::now())).await?;
    state
        .access
        .audit(caller.audit("hold_add").camera(hold.camera).detail(format!(
            "hold {}: {} to {}; {}",
            hold.id,
            time(hold.from),
            time(hold.to),
            hold.reason
        )))
        .await;
    Ok((StatusCode::CREATED, Json(hold)))
}

pub async fn release(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<ReleaseRequest>, JsonRejection>,
) -> Result<Json<Hold>, ApiError> {
    let Path(id) = id?;
    let Json(ReleaseRequest {}) = body?;
    // A hold of a camera the caller may not see does not exist for them.
    match run(&state, move |c| holds::get(c, id)).await? {
        Some(h) if caller.may_see(h.camera) => {}
        _ => return Err(ApiError::not_found(format!("no hold with id {id}"))),
    }
    let who = caller.actor().to_string();
    let hold = run(&state, move |c| holds::release(c, id, &who, Utc::now())).await?;
    state
        .access
        .audit(
            caller
                .audit("hold_release")
                .camera(hold.camera)
                .detail(format!("hold {id}")),
        )
        .await;
    Ok(Json(hold))
}
