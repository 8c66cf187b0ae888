//! Playback server (docs/mediamtx.md, playback): `/list` of recorded spans and `/get` of a time range,
//! built from the segment files on disk. `/get` is cut at part (fragment) granularity.

use crate::auth;
use crate::config;
use crate::http::{go_time, json, json_error, parse_time, pct_encode, plain_404, query_map};
use crate::mp4::{retime_fragment, Recorded};
use crate::recordpath;
use crate::sim::Sim;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, FixedOffset};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Two segments belong to the same recorder run when the second starts where the first
/// ends (the sim names segments from media time, so the gap is ~0 inside a run and at
/// least the 0.5 s reconnect between runs).
const SAME_RUN_GAP: f64 = 0.2;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

fn bad(msg: &str) -> Response {
    json_error(StatusCode::BAD_REQUEST, msg)
}

async fn handle(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method == Method::GET && (uri.path() == "/list" || uri.path() == "/get") {
        if let Err(r) = authorize(&sim, peer, &uri, &headers).await {
            return with_cors(r);
        }
    }
    let r = match (method.clone(), uri.path()) {
        (Method::OPTIONS, _) => (
            StatusCode::NO_CONTENT,
            [
                ("Access-Control-Allow-Methods", "OPTIONS, GET"),
                ("Access-Control-Allow-Headers", "Authorization"),
            ],
        )
            .into_response(),
        (Method::GET, "/list") => list(&sim, &uri, &headers),
        (Method::GET, "/get") => get(&sim, &uri),
        _ => plain_404(),
    };
    with_cors(r)
}

/// MediaMTX's check of a requested path name: not empty, no slash at either end, only
/// alphanumerics and `_.-/`, no `.` or `..` segment.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
        && name.split('/').all(|s| s != "." && s != "..")
}

fn with_cors(mut r: Response) -> Response {
    r.headers_mut()
        .insert("Access-Control-Allow-Origin", "*".parse().unwrap());
    r
}

/// Every `/list` and `/get` with a valid path name is the `playback` action on that
/// path (docs/mediamtx.md §b2); an invalid name is answered 400 before any decision.
async fn authorize(
    sim: &Sim,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let name = query_map(uri.query()).remove("path").unwrap_or_default();
    if !valid_name(&name) {
        return Ok(());
    }
    let req = auth::Request {
        action: auth::Action::Playback,
        path: name,
        query: uri.query().unwrap_or("").to_string(),
        protocol: "",
        id: None,
        user_agent: String::new(),
        creds: auth::Credentials::from_http(headers),
        ip: peer.ip(),
    };
    let author = format!("[playback] [conn {peer}]");
    auth::check(&sim.conf(), &req, &author, None)
        .await
        .map_err(|r| r.response())
}

struct Seg {
    start: DateTime<FixedOffset>,
    dur: f64,
    file: std::path::PathBuf,
}

fn segments(sim: &Sim, name: &str) -> Result<Vec<Seg>, Response> {
    if !valid_name(name) {
        return Err(bad("invalid path name"));
    }
    let conf = sim.conf();
    let Some(entry) = conf.matching_entry(name) else {
        return Err(bad(&format!("path '{name}' is not configured")));
    };
    let pc = conf.path_conf(&entry).unwrap();
    if config::path_str(&pc, "recordFormat") == "mpegts" {
        return Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MPEG-TS format is not supported yet",
        ));
    }
    Ok(
        recordpath::list_segments(config::path_str(&pc, "recordPath"), name, ".mp4")
            .into_iter()
            .filter_map(|(file, start)| {
                let data = std::fs::read(&file).ok()?;
                let r = Recorded::parse(&data)?;
                Some(Seg {
                    start,
                    dur: r.duration_secs(),
                    file,
                })
            })
            .collect(),
    )
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(0) as f64 / 1e6
}

fn opt_time(
    q: &std::collections::BTreeMap<String, String>,
    k: &str,
) -> Result<Option<DateTime<FixedOffset>>, Response> {
    match q.get(k) {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).map_err(|e| bad(&e)),
    }
}

fn list(sim: &Sim, uri: &Uri, headers: &HeaderMap) -> Response {
    let q = query_map(uri.query());
    let name = q.get("path").cloned().unwrap_or_default();
    let segs = match segments(sim, &name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (start, end) = match (opt_time(&q, "start"), opt_time(&q, "end")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    // Merge the segments of one recorder run.
    let mut spans: Vec<(DateTime<FixedOffset>, f64)> = Vec::new();
    for s in segs {
        if let Some((ps, pd)) = spans.last_mut() {
            let gap = secs(s.start - *ps) - *pd;
            if gap.abs() < SAME_RUN_GAP {
                *pd = secs(s.start - *ps) + s.dur;
                continue;
            }
        }
        spans.push((s.start, s.dur));
    }
    let mut out = Vec::new();
    for (mut s, mut d) in spans {
        let e = s + chrono::Duration::microseconds((d * 1e6) as i64);
        if let Some(st) = start {
            if e <= st {
                continue;
            }
            if s < st {
                d -= secs(st - s);
                s = st;
            }
        }
        if let Some(en) = end {
            if s >= en {
                continue;
            }
            if e > en {
                d -= secs(e - en);
            }
        }
        out.push((s, d));
    }
    if out.is_empty() {
        return json_error(StatusCode::NOT_FOUND, "no recording segments found");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let items: Vec<_> = out
        .into_iter()
        .map(|(s, d)| {
            let st = go_time(&s);
            json!({"start": st, "duration": d,
                "url": format!("http://{host}/get?duration={d}&path={}&start={}", pct_encode(&name), pct_encode(&st))})
        })
        .collect();
    json(&items)
}

fn parse_secs(v: &str) -> Option<f64> {
    v.parse::<f64>()
        .ok()
        .or_else(|| config::parse_duration(v).ok().map(|d| d.as_secs_f64()))
        .filter(|d| *d >= 0.0)
}

fn get(sim: &Sim, uri: &Uri) -> Response {
    let q = query_map(uri.query());
    let name = q.get("path").cloned().unwrap_or_default();
    let segs = match segments(sim, &name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let start = match parse_time(q.get("start").map(String::as_str).unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return bad(&e),
    };
    let Some(dur) = q.get("duration").and_then(|v| parse_secs(v)) else {
        return bad("invalid duration");
    };
    match q.get("format").map(String::as_str) {
        None | Some("fmp4") | Some("mp4") => {}
        Some(f) => return bad(&format!("invalid format: {f}")),
    }
    let end = start + chrono::Duration::microseconds((dur * 1e6) as i64);
    let mut body: Vec<u8> = Vec::new();
    let mut seq = 0u32;
    let mut first_abs: Option<f64> = None;
    // The end of the last segment served: the answer stops at the first
    // segment that does not continue it (a gap ends what one `/get` can
    // give, docs/mediamtx.md §h).
    let mut served_until: Option<DateTime<FixedOffset>> = None;
    for s in segs {
        let seg_end = s.start + chrono::Duration::microseconds((s.dur * 1e6) as i64);
        if seg_end <= start || s.start >= end {
            continue;
        }
        if served_until.is_some_and(|u| secs(s.start - u).abs() >= SAME_RUN_GAP) {
            break;
        }
        served_until = Some(seg_end);
        let Ok(data) = std::fs::read(&s.file) else {
            continue;
        };
        let Some(r) = Recorded::parse(&data) else {
            continue;
        };
        let ts = r.timescale as f64;
        for p in &r.parts {
            let ps =
                s.start + chrono::Duration::microseconds((p.base_dts as f64 / ts * 1e6) as i64);
            let pe = ps + chrono::Duration::microseconds((p.duration as f64 / ts * 1e6) as i64);
            if pe <= start || ps >= end {
                continue;
            }
            let abs = ps.timestamp_micros() as f64 / 1e6;
            if body.is_empty() {
                body.extend_from_slice(&data[r.init.clone()]);
            }
            let base = *first_abs.get_or_insert(abs);
            let mut frag = data[p.range.clone()].to_vec();
            seq += 1;
            retime_fragment(&mut frag, seq, ((abs - base).max(0.0) * ts).round() as u64);
            body.extend_from_slice(&frag);
        }
    }
    if body.is_empty() {
        return json_error(StatusCode::NOT_FOUND, "no recording segments found");
    }
    (
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::ACCEPT_RANGES, "none"),
        ],
        body,
    )
        .into_response()
}
