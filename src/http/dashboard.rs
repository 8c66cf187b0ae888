//! The operator's dashboard: `GET /` (the page) and `GET /ui/{file}` (its ES
//! modules, CSS and the vendored hls.js), every byte embedded in the binary
//! (the box may have no internet), and `GET /ui/settings.json`: where the
//! browser finds MediaMTX's live view (WHEP and HLS ports on the same host)
//! and the player's retry policy.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::ApiState;

/// What the page needs to know about the box's live view.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSettings {
    /// Port of MediaMTX's WebRTC (WHEP) server, on the host the page came from.
    pub webrtc_port: u16,
    /// Port of MediaMTX's HLS server.
    pub hls_port: u16,
    /// WHEP tries before HLS, and how long each may take.
    pub whep_tries: u32,
    pub whep_try_ms: u64,
    /// A frozen-video watchdog: no new frame for this long restarts the player.
    pub stall_ms: u64,
    /// How often WebRTC is retried in the background while on HLS.
    pub webrtc_retry_ms: u64,
    /// MediaMTX's playback server (loopback only): served through
    /// `/api/cameras/{id}/playback/...`.
    #[serde(skip)]
    pub playback: std::net::SocketAddr,
}

impl LiveSettings {
    /// From `[mediamtx] hls_address` / `webrtc_address` (`":8888"`,
    /// `"127.0.0.1:8888"`): the port after the last colon.
    pub fn from_config(config: &crate::config::Config) -> LiveSettings {
        let port = |a: &str, default: u16| {
            a.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(default)
        };
        LiveSettings {
            webrtc_port: port(&config.mediamtx.webrtc_address, 8889),
            hls_port: port(&config.mediamtx.hls_address, 8888),
            whep_tries: 3,
            whep_try_ms: 5000,
            stall_ms: 3000,
            webrtc_retry_ms: 60_000,
            playback: config.mediamtx.playback_address,
        }
    }
}

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "session.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/session.js"),
    },
    Asset {
        name: "player.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/player.js"),
    },
    Asset {
        name: "playback.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/playback.js"),
    },
    Asset {
        name: "i18n.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/i18n.js"),
    },
    Asset {
        name: "style.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "hls.min.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/vendor/hls/hls.min.js"),
    },
    Asset {
        name: "hls-LICENSE.txt",
        mime: "text/plain; charset=utf-8",
        body: include_bytes!("../../web/vendor/hls/LICENSE"),
    },
];

/// `GET /`: the page. Not cached, so that an upgraded daemon serves its own
/// page; the assets it loads carry the daemon's version in their query.
pub async fn page() -> Response {
    let html = include_str!("assets/index.html").replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// `GET /ui/{file}`: one embedded asset. They change only with the binary:
/// cached for an hour, revalidated after (the page asks with `?v=<version>`).
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let a = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no dashboard file {name:?}")))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, a.mime),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        a.body,
    )
        .into_response())
}

/// `GET /ui/settings.json`.
pub async fn settings(State(state): State<ApiState>) -> Json<LiveSettings> {
    Json((*state.live).clone())
}
