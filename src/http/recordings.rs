//! `GET /api/cameras/{id}/recordings?from=T&to=T`: the gap ledger of a
//! camera, the recorded spans and the gaps between them with their cause,
//! from the daemon's segment catalog. The audit answer and the data of the
//! dashboard's playback timeline.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::ApiState;
use crate::storage::ledger::{self, Ledger};

/// The longest range one request may ask for (a year of a camera).
const MAX_RANGE_DAYS: i64 = 366;

#[derive(Debug, Deserialize)]
pub struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

pub async fn ledger(
    State(state): State<ApiState>,
    id: Result<Path<u32>, PathRejection>,
    range: Result<Query<Range>, QueryRejection>,
) -> Result<Json<Ledger>, ApiError> {
    let Path(camera) = id?;
    let Query(Range { from, to }) = range?;
    if from >= to {
        return Err(ApiError::bad_request("\"from\" must be before \"to\""));
    }
    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::bad_request(format!(
            "a range of at most {MAX_RANGE_DAYS} days"
        )));
    }
    state.known_camera(camera)?;
    let Some(db) = state.storage.clone() else {
        return Err(ApiError::unavailable(
            "the segment catalog is not available (see the daemon's log)",
        ));
    };
    let now = Utc::now();
    let result = db
        .call(move |conn| ledger::query(conn, camera, from, to, now, ledger::DEFAULT_TOLERANCE))
        .await
        .map_err(|_| ApiError::unavailable("the segment catalog has stopped"))?;
    result
        .map(Json)
        .map_err(|e| ApiError::unavailable(format!("segment catalog: {e}")))
}
