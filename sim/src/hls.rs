//! The HLS server (docs/mediamtx.md, HLS).
//!
//! HLS is served as the `fmp4` variant whatever `hlsVariant` says: a multivariant
//! playlist, a media playlist with a sliding window of 1 s segments (one fixture GOP
//! each), an init segment and the segments, all built from the fixture. The first request
//! of a muxer blocks until two segments exist, as gohlslib does for fmp4.

use crate::auth;
use crate::http::{
    cors_for, go_encode, go_values, json_error, plain_404, query_map, typed, uuid_v4,
};
use crate::readers::{muxer_config_error, Muxer, Session};
use crate::sim::{Check, Sim};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Local};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Segments the muxer must have before the first playlist is answered (fmp4).
const FIRST_SEGMENTS: u64 = 2;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle_hls).with_state(sim)
}

async fn handle_hls(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let origins = sim.conf().str_list("hlsAllowOrigins");
    if method == Method::OPTIONS && headers.contains_key("access-control-request-method") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            "Access-Control-Allow-Methods",
            HeaderValue::from_static("OPTIONS, GET"),
        );
        h.insert(
            "Access-Control-Allow-Headers",
            HeaderValue::from_static("Authorization, Range"),
        );
        return cors_for(r, &origins, &headers);
    }
    if method != Method::GET {
        return plain_404();
    }
    cors_for(
        hls_get(&sim, peer, &uri, &headers).await,
        &origins,
        &headers,
    )
}

fn seg_count(sim: &Sim) -> u64 {
    sim.conf()
        .global
        .get("hlsSegmentCount")
        .and_then(Value::as_u64)
        .unwrap_or(7)
        .max(1)
}

async fn hls_get(sim: &Arc<Sim>, peer: SocketAddr, uri: &Uri, headers: &HeaderMap) -> Response {
    let path = uri.path();
    let q = query_map(uri.query());
    if let Some(name) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/index.m3u8"))
    {
        if q.get("cookieCheck").map(String::as_str) != Some("1") {
            // The query is re-encoded as Go does (keys sorted).
            let mut v = go_values(uri.query().unwrap_or(""));
            v.retain(|(k, _)| k != "cookieCheck");
            v.push(("cookieCheck".into(), vec!["1".into()]));
            let loc = format!("/{name}/index.m3u8?{}", go_encode(&v));
            return (
                StatusCode::FOUND,
                [
                    (header::LOCATION, loc),
                    (
                        header::SET_COOKIE,
                        "cookieCheck=1; HttpOnly; Secure; SameSite=None; Partitioned".into(),
                    ),
                ],
            )
                .into_response();
        }
        return multivariant(sim, name, peer, uri, headers).await;
    }
    let trimmed = path.trim_start_matches('/');
    if let Some((name, file)) = trimmed.rsplit_once('/') {
        if file == "main_stream.m3u8" || file == "main_init.mp4" || file.starts_with("main_seg") {
            return media(sim, peer, name, file, &q, headers);
        }
        if file.is_empty() {
            if let Check::NotConfigured = sim.check_path(name) {
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("path '{name}' is not configured"),
                );
            }
            let req = read_request(name, uri.query().unwrap_or(""), None, "", headers, peer);
            let author = format!("[HLS] [conn {peer}]");
            if let Err(r) = auth::check(&sim.conf(), &req, &author, Some(&sim.path_manager)).await {
                return r.response();
            }
            return typed("text/html", player_page(name));
        }
    }
    if !trimmed.is_empty() && !trimmed.ends_with('/') {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, format!("/{trimmed}/"))],
        )
            .into_response();
    }
    plain_404()
}

/// A `read` decision of the HLS server (docs/mediamtx.md §b2).
fn read_request(
    name: &str,
    query: &str,
    id: Option<&str>,
    user_agent: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> auth::Request {
    auth::Request {
        action: auth::Action::Read,
        path: name.to_string(),
        query: query.to_string(),
        protocol: "hls",
        id: id.map(str::to_string),
        user_agent: user_agent.to_string(),
        creds: auth::Credentials::from_http(headers),
        ip: peer.ip(),
    }
}

fn player_page(name: &str) -> String {
    format!(
        "<!DOCTYPE html><html><body><video id=\"v\" controls autoplay muted playsinline></video>\
         <p>mediamtx-sim: load <code>/{name}/index.m3u8</code> with hls.js</p></body></html>"
    )
}

async fn multivariant(
    sim: &Arc<Sim>,
    name: &str,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Check::NotConfigured = sim.check_path(name) {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("path '{name}' is not configured"),
        );
    }
    // The session's query is the request's without `cookieCheck`, re-encoded.
    let mut v = go_values(uri.query().unwrap_or(""));
    v.retain(|(k, _)| k != "cookieCheck");
    let query = go_encode(&v);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let id = uuid_v4();
    let req = read_request(name, &query, Some(&id), &user_agent, headers, peer);
    let author = format!("[HLS] [session {}]", &id[..8]);
    if let Err(r) = auth::check(&sim.conf(), &req, &author, Some(&sim.path_manager)).await {
        return r.response();
    }
    if let Check::NotReady = sim.check_path(name) {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("no stream is available on path '{name}'"),
        );
    }
    let conf = sim.conf();
    if let Some(why) = muxer_config_error(&conf) {
        crate::log::error!("[HLS] [muxer {name}] muxer instance crashed: {why}");
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, &why);
    }
    let close_after = crate::config::parse_duration(conf.str("hlsMuxerCloseAfter")).ok();
    let created_at = {
        let mut st = sim.state.lock().unwrap();
        let hls = &mut st.hls;
        hls.close_after = close_after.filter(|d| !d.is_zero());
        hls.purge();
        let now = Local::now();
        if !hls.muxers.iter().any(|m| m.path == name) {
            hls.muxers.push(Muxer {
                path: name.to_string(),
                always: false,
                created: now,
                last_request: now,
                last_at: Instant::now(),
                outbound: 0,
            });
        }
        hls.sessions.push(Session {
            id: id.clone(),
            path: name.to_string(),
            created: now,
            last_at: Instant::now(),
            remote: peer.to_string(),
            query,
            user_agent,
            outbound: 0,
        });
        hls.muxers.iter().find(|m| m.path == name).unwrap().created
    };
    let gop = gop_duration(sim);
    let first = first_segment(created_at, gop);
    // The first playlist is answered once FIRST_SEGMENTS segments are complete.
    let ready_at = segment_wall(first + FIRST_SEGMENTS, gop);
    if let Ok(wait) = (ready_at - Local::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    if !matches!(sim.check_path(name), Check::Ready) {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "terminated");
    }
    let fx = sim.live.shared();
    let bw = fx.bitrate;
    let body = format!(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\n\
         #EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={bw},CODECS=\"{}\",RESOLUTION={}x{},FRAME-RATE={:.3}\n\
         main_stream.m3u8?session={id}\n",
        bw * 12 / 10,
        fx.codec,
        fx.width,
        fx.height,
        fx.fps(),
    );
    account(sim, name, &id, body.len());
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.apple.mpegurl".to_string(),
            ),
            (header::CACHE_CONTROL, "private, no-cache".to_string()),
            (
                header::SET_COOKIE,
                format!("hlsSession={id}; HttpOnly; Secure; SameSite=None; Partitioned"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Segments are numbered by the wall clock: segment `g` holds the GOP that starts at
/// Unix time `g * gop`, as the cameras' frame clock is aligned to the wall clock (see
/// `rtc`). A muxer's first segment starts at the first keyframe after its creation.
fn first_segment(created: DateTime<Local>, gop: Duration) -> u64 {
    let ms = created.timestamp_millis().max(0) as u64;
    let g = gop.as_millis().max(1) as u64;
    ms.div_ceil(g)
}

/// The wall time at which segment `g` starts.
fn segment_wall(g: u64, gop: Duration) -> DateTime<Local> {
    let ms = g * gop.as_millis() as u64;
    DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .with_timezone(&Local)
}

fn gop_duration(sim: &Sim) -> Duration {
    let fx = sim.live.shared();
    let n = fx.gops().len().max(1) as f64;
    Duration::from_secs_f64(fx.loop_duration as f64 / fx.timescale as f64 / n)
}

fn account(sim: &Sim, name: &str, id: &str, n: usize) {
    let mut st = sim.state.lock().unwrap();
    let now = Local::now();
    if let Some(m) = st.hls.muxers.iter_mut().find(|m| m.path == name) {
        m.outbound += n as u64;
        m.last_request = now;
        m.last_at = Instant::now();
    }
    if let Some(s) = st.hls.sessions.iter_mut().find(|s| s.id == id) {
        s.outbound += n as u64;
        s.last_at = Instant::now();
    }
}

fn media(
    sim: &Arc<Sim>,
    peer: SocketAddr,
    name: &str,
    file: &str,
    q: &std::collections::BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let cookie_session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("hlsSession="))
        .map(str::to_string)
        .next();
    let id = q.get("session").cloned().or(cookie_session);
    let created_at = {
        let mut st = sim.state.lock().unwrap();
        st.hls.purge();
        // A session is bound to its path and to the client's IP.
        let ok = id.as_ref().is_some_and(|id| {
            st.hls.sessions.iter().any(|s| {
                &s.id == id
                    && s.path == name
                    && s.remote.parse::<SocketAddr>().ok().map(|a| a.ip()) == Some(peer.ip())
            })
        });
        let muxer = st.hls.muxers.iter().find(|m| m.path == name);
        match (ok, muxer) {
            (true, Some(m)) => m.created,
            _ => return json_error(StatusCode::UNAUTHORIZED, "authentication error"),
        }
    };
    let id = id.unwrap();
    // The camera's own picture once rendered: it has the shared fixture's parameter
    // sets and GOPs, so the switch falls on a segment boundary unseen by the player.
    let media = sim.live.for_path(name);
    let fx = &media.fx;
    let gops = fx.gops();
    let gop = gop_duration(sim);
    let gop_ms = gop.as_millis().max(1) as u64;
    let first = first_segment(created_at, gop);
    // Complete segments: [start, end).
    let mut end = (Local::now().timestamp_millis().max(0) as u64) / gop_ms;
    let freeze = sim.faults.get().stream_freeze_after_secs;
    if freeze > 0 {
        let until = created_at.timestamp_millis().max(0) as u64 + freeze * 1000;
        end = end.min(until / gop_ms);
    }
    let end = end.max(first);
    let start = end.saturating_sub(seg_count(sim)).max(first);
    let resp = if file == "main_stream.m3u8" {
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{start}\n\
             #EXT-X-MAP:URI=\"main_init.mp4?session={id}\"\n",
            gop.as_secs_f64().ceil() as u64
        );
        for k in start..end {
            s.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.5},\nmain_seg{k}.mp4?session={id}\n",
                segment_wall(k, gop).to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                gop.as_secs_f64()
            ));
        }
        let mut r = typed("application/vnd.apple.mpegurl", s);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else if file == "main_init.mp4" {
        typed("video/mp4", Bytes::from(fx.init.clone()))
    } else {
        let k: Option<u64> = file
            .strip_prefix("main_seg")
            .and_then(|s| s.strip_suffix(".mp4"))
            .and_then(|s| s.parse().ok());
        match k {
            Some(k) if (start..end).contains(&k) => {
                let n = gops.len() as u64;
                let g = &gops[(k % n) as usize];
                let samples: Vec<_> = fx.samples[g.clone()].iter().collect();
                let base = (k / n) * fx.loop_duration + samples[0].dts;
                typed("video/mp4", fx.fragment(k as u32, base, &samples))
            }
            _ => return json_error(StatusCode::NOT_FOUND, "segment not found"),
        }
    };
    let len = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    account(sim, name, &id, len as usize);
    resp
}
