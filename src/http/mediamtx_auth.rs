//! `POST /internal/mediamtx/auth`: MediaMTX's `authMethod: http` asks here
//! before it serves a request (docs/mediamtx.md §b2; the body is
//! `{ip, user, password, token, action, path, protocol, id, query,
//! userAgent}`). Only a loopback peer may call it (the guard). 204 allows;
//! 401 refuses (any non-2xx does).
//!
//! * `read` of `cam_N`: a media credential (`Authorization: Bearer
//!   <media_token>` on WHEP and HLS, which MediaMTX passes as `token`, or
//!   `token=<media_token>` in the query) of a live session whose user may
//!   watch live video of camera N. The start of a reader (`id` set) is
//!   audited as `live_view`, once per reader; the daemon writes its
//!   `live_view_end` when MediaMTX no longer lists the reader
//!   ([`crate::access::Store::close_views`]).
//! * `playback` of `cam_N`: the same with a role that may play back, or the
//!   daemon's own credential (its playback proxy, which checked and audited
//!   the user already).
//! * `api`, `metrics`, `pprof`: the daemon's own credential only
//!   ([`crate::mediamtx::credential`]).
//! * `publish`: never (the cameras are pulled).
//!
//! No call to MediaMTX is ever made while answering: MediaMTX decides reads
//! one at a time and waits for this answer.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use crate::access::{AuditEntry, Permission};
use crate::token::constant_time_eq;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthRequest {
    pub ip: String,
    pub user: String,
    pub password: String,
    pub token: String,
    pub action: String,
    pub path: String,
    pub protocol: String,
    pub id: Option<String>,
    pub query: String,
}

impl AuthRequest {
    /// The credentials presented: the token, the password, and a `token`
    /// query parameter (the only way for a `<video src>` or a download).
    fn credentials(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in [&self.token, &self.password] {
            if !c.is_empty() {
                out.push(c.clone());
            }
        }
        for pair in self.query.split('&') {
            if let Some(("token", v)) = pair.split_once('=') {
                if !v.is_empty() {
                    out.push(percent_decode(v));
                }
            }
        }
        out
    }

    /// The `start` and `duration` of a playback query, for the audit trail.
    fn range(&self) -> String {
        self.query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| matches!(*k, "start" | "duration" | "end"))
            .map(|(k, v)| format!("{k}={}", percent_decode(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let pair = (b == b'%' && i + 2 < bytes.len())
            .then(|| Some((hex(bytes[i + 1])?, hex(bytes[i + 2])?)))
            .flatten();
        match (b, pair) {
            (_, Some((h, l))) => {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_daemon(credentials: &[String]) -> bool {
    let ours = crate::mediamtx::credential();
    !ours.is_empty()
        && credentials
            .iter()
            .any(|c| constant_time_eq(c.as_bytes(), ours.as_bytes()))
}

fn allow() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn refuse() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

/// The camera of a path `cam_N`.
fn camera_of(path: &str) -> Option<u32> {
    path.strip_prefix("cam_")?.parse().ok()
}

pub async fn decide(
    State(state): State<ApiState>,
    body: Result<Json<AuthRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return refuse();
    };
    let credentials = req.credentials();
    let permission = match req.action.as_str() {
        "api" | "metrics" | "pprof" => {
            return if is_daemon(&credentials) {
                allow()
            } else {
                refuse()
            }
        }
        "read" => Permission::Live,
        "playback" => {
            if is_daemon(&credentials) {
                return allow();
            }
            Permission::Playback
        }
        // publish, and anything MediaMTX may add later.
        _ => return refuse(),
    };
    let Some(camera) = camera_of(&req.path) else {
        return refuse();
    };
    let now = Utc::now();
    for media in credentials {
        if media.len() != 64 {
            continue;
        }
        let found = state
            .access
            .call(move |s, settings| s.media_session(&media, now, settings))
            .await;
        let Ok(Ok(Some(session))) = found else {
            continue;
        };
        let user = session.user;
        if !user.role.allows(permission) || !user.may_see(camera) {
            state
                .access
                .audit(
                    AuditEntry::new(now, &user.name, &req.ip, "media_refused")
                        .camera(camera)
                        .detail(format!("{} {}", req.action, req.protocol)),
                )
                .await;
            return refuse();
        }
        match (req.action.as_str(), req.id.as_deref()) {
            // A reader is being created (not a page, not an OPTIONS): on
            // record once per reader, until the daemon sees it leave.
            ("read", Some(reader)) => {
                let start = AuditEntry::new(now, &user.name, &req.ip, "live_view")
                    .camera(camera)
                    .detail(req.protocol.clone());
                let (reader, protocol) = (reader.to_string(), req.protocol.clone());
                let r = state
                    .access
                    .call(move |s, _| s.open_view(&reader, &start, &protocol))
                    .await;
                if let Err(e) | Ok(Err(e)) = r.map(|r| r.map(|_| ())) {
                    tracing::error!(error = %e, "cannot write the audit trail");
                }
            }
            ("playback", _) => {
                let row = AuditEntry::new(now, &user.name, &req.ip, "playback")
                    .camera(camera)
                    .detail(req.range());
                state.access.audit(row).await;
            }
            _ => {}
        }
        return allow();
    }
    refuse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_token_the_password_or_the_query() {
        let r = AuthRequest {
            token: "t".into(),
            password: "p".into(),
            query: "a=1&token=q%2Bx&start=2026-11-29T10%3A00%3A00Z&duration=60".into(),
            ..Default::default()
        };
        assert_eq!(r.credentials(), ["t", "p", "q+x"]);
        assert_eq!(r.range(), "start=2026-11-29T10:00:00Z duration=60");
        assert_eq!(camera_of("cam_12"), Some(12));
        assert_eq!(camera_of("cam_x"), None);
        assert_eq!(camera_of("other"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
