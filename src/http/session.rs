//! Dashboard sessions and the audit trail over HTTP.
//!
//! * `POST /api/login` `{"user", "password"}`: sets the session cookie
//!   (`HttpOnly; SameSite=Strict; Path=/`, `Secure` over TLS) and answers
//!   [`Me`]; 401 for a wrong name or password (the same answer for both),
//!   429 with `Retry-After` while the account or the address is locked.
//! * `POST /api/logout`: ends the session (with its CSRF token) and clears
//!   the cookie.
//! * `GET /api/me`: the session's user, role, cameras, CSRF token and
//!   media token; 401 without a live session.
//! * `GET /api/audit?user=&camera=&since=&limit=`: the audit trail, newest
//!   first (admins and the token). Nothing in the API changes or deletes it.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{self, Caller};
use super::error::ApiError;
use super::ApiState;
use crate::access::store::derive;
use crate::access::{AccessError, AuditFilter, LoginOutcome, Session};

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> ApiError {
        tracing::error!(error = %e, "API: access database error");
        ApiError::unavailable(e.to_string())
    }
}

/// What `/api/login` and `/api/me` answer.
#[derive(Debug, Serialize)]
pub struct Me {
    pub user: String,
    pub role: &'static str,
    /// The cameras this user may see; empty = all.
    pub cameras: Vec<u32>,
    /// Send as `X-CSRF-Token` with every change.
    pub csrf_token: String,
    /// The credential for MediaMTX's live view and playback
    /// (`Authorization: Bearer <media_token>` on WHEP and HLS, or
    /// `?token=<media_token>`); valid as long as the session.
    pub media_token: String,
    pub idle_expires: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Me {
    fn new(cookie: &str, s: &Session) -> Me {
        Me {
            user: s.user.name.clone(),
            role: s.user.role.as_str(),
            cameras: s.user.cameras.clone(),
            csrf_token: derive("csrf", cookie),
            media_token: derive("media", cookie),
            idle_expires: s.idle_until,
            expires: s.expires,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    user: String,
    password: String,
}

fn cookie(value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict",
        auth::COOKIE
    );
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

pub async fn login(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    // A login form posted from another origin (login CSRF).
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let same = origin
            .split_once("://")
            .is_some_and(|(_, h)| h.trim_end_matches('/').eq_ignore_ascii_case(host));
        if !same {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a login from a page of another origin is refused",
            ));
        }
    }
    let Json(req) = body?;
    let source = caller.source().to_string();
    let now = Utc::now();
    let outcome = state
        .access
        .call(move |s, settings| s.login(&req.user, &req.password, &source, now, settings))
        .await??;
    match outcome {
        LoginOutcome::Ok(new) => {
            let me = Me::new(&new.token, &new.session);
            let age = (new.session.expires - now).num_seconds().max(0);
            Ok((
                [(header::SET_COOKIE, cookie(&new.token, Some(age), state.tls))],
                Json(me),
            )
                .into_response())
        }
        LoginOutcome::Refused => Err(ApiError::unauthorized("wrong user or password")),
        LoginOutcome::Locked { until } => {
            let wait = (until - now).num_seconds().max(1);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins: locked until {} (or until an admin runs `vms-supervisor user unlock`)",
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )
            .into_response();
            if let Ok(v) = wait.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(r)
        }
    }
}

pub async fn logout(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let clear = [(header::SET_COOKIE, cookie("", Some(0), state.tls))];
    let Some(token) = auth::session_cookie(&headers).map(str::to_string) else {
        return Ok((clear, Json(json!({ "logged_out": false }))).into_response());
    };
    // Logging someone out is a change: the page's CSRF token is needed.
    let csrf = headers
        .get(auth::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::token::constant_time_eq(csrf.as_bytes(), derive("csrf", &token).as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "logout needs the session's X-CSRF-Token header",
        ));
    }
    let now = Utc::now();
    let t = token.clone();
    let session = state
        .access
        .call(move |s, settings| s.session(&t, now, settings))
        .await??;
    let ended = state.access.call(move |s, _| s.logout(&token)).await??;
    if let Some(session) = session {
        let mut row = caller.audit("logout");
        row.actor = session.user.name;
        state.access.audit(row).await;
    }
    Ok((clear, Json(json!({ "logged_out": ended }))).into_response())
}

pub async fn me(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Me>, ApiError> {
    let Some(token) = auth::session_cookie(&headers).map(str::to_string) else {
        return Err(ApiError::unauthorized("not logged in"));
    };
    let now = Utc::now();
    let t = token.clone();
    let session = state
        .access
        .call(move |s, settings| s.session(&t, now, settings))
        .await??;
    match session {
        Some(s) => Ok(Json(Me::new(&token, &s))),
        None => Err(ApiError::unauthorized(
            "the session has ended; log in again",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    action: Option<String>,
    camera: Option<u32>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

pub async fn audit(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let filter = AuditFilter {
        actor: q.user,
        action: q.action,
        camera: q.camera,
        since: q.since,
        limit: q.limit.unwrap_or(100).min(super::alerts::MAX_LIMIT),
    };
    let rows = state
        .access
        .call(move |s, _| s.audit_rows(&filter))
        .await??;
    Ok(Json(json!({ "entries": rows })))
}
