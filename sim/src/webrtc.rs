//! The WebRTC server (NOTES.md §j): WHEP sessions and the reader page.

use crate::faults::WhepMode;
use crate::http::{cors, json_error, plain_404, typed};
use crate::sim::{Check, Sim};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle_webrtc).with_state(sim)
}

async fn handle_webrtc(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(name) = path.strip_suffix("/whep") {
        return cors(match method {
            Method::OPTIONS => StatusCode::NO_CONTENT.into_response(),
            Method::POST => whep(&sim, name, &headers).await,
            Method::GET | Method::HEAD | Method::PUT => {
                StatusCode::METHOD_NOT_ALLOWED.into_response()
            }
            _ => plain_404(),
        });
    }
    if method != Method::GET {
        return plain_404();
    }
    if let Some(name) = path.strip_suffix('/') {
        return match sim.check_path(name) {
            Check::NotConfigured => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("path '{name}' is not configured"),
            ),
            _ => typed(
                "text/html",
                "<!DOCTYPE html><html><body>mediamtx-sim: no WebRTC stack</body></html>",
            ),
        };
    }
    if !path.is_empty() {
        return (StatusCode::FOUND, [(header::LOCATION, format!("/{path}/"))]).into_response();
    }
    plain_404()
}

async fn whep(sim: &Arc<Sim>, name: &str, headers: &HeaderMap) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim() != "application/sdp" {
        return json_error(StatusCode::BAD_REQUEST, "invalid Content-Type");
    }
    match sim.check_path(name) {
        Check::NotConfigured => json_error(
            StatusCode::BAD_REQUEST,
            &format!("path '{name}' is not configured"),
        ),
        Check::NotReady => json_error(
            StatusCode::NOT_FOUND,
            &format!("no stream is available on path '{name}'"),
        ),
        Check::Ready => match sim.faults.get().whep {
            WhepMode::Default => json_error(StatusCode::BAD_REQUEST, "the sim has no WebRTC stack"),
            WhepMode::Fail => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "WHEP failure injected by mediamtx-sim",
            ),
            WhepMode::Hang => std::future::pending().await,
        },
    }
}
