//! The listeners: binding, starting and restarting the HTTP servers (API, metrics,
//! playback, HLS, WebRTC) and the RTSP accept-and-close listener; shared HTTP helpers.

use crate::config::Conf;
use crate::log::{error, info};
use crate::sim::Sim;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Offset, TimeZone};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The servers the sim binds: (name, enable key, address key, log label).
const SERVERS: &[(&str, &str, &str, &str)] = &[
    ("rtsp", "rtsp", "rtspAddress", "RTSP"),
    ("hls", "hls", "hlsAddress", "HLS"),
    ("webrtc", "webrtc", "webrtcAddress", "WebRTC"),
    ("playback", "playback", "playbackAddress", "playback"),
    ("metrics", "metrics", "metricsAddress", "metrics"),
    ("api", "api", "apiAddress", "API"),
];

#[derive(Default)]
pub struct Listeners {
    running: BTreeMap<&'static str, (String, JoinHandle<()>)>,
}

/// Binds a MediaMTX-style address (`:9997` means every interface).
pub fn bind(addr: &str) -> Result<std::net::TcpListener, String> {
    let real = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    let l = std::net::TcpListener::bind(&real).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::EADDRINUSE) => "bind: address already in use".to_string(),
            Some(libc::EACCES) => "bind: permission denied".to_string(),
            Some(libc::EADDRNOTAVAIL) => "bind: cannot assign requested address".to_string(),
            _ => e.to_string(),
        };
        format!("listen tcp {addr}: {why}")
    })?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

async fn start_one(
    sim: &Arc<Sim>,
    conf: &Conf,
    name: &'static str,
    addr_key: &str,
    label: &str,
    prev: Option<SocketAddr>,
) -> Result<(String, JoinHandle<()>), String> {
    let addr = conf.str(addr_key).to_string();
    // A restarted listener configured on port 0 keeps the port it had, as a fixed
    // address would.
    let std_l = match prev.filter(|_| addr.ends_with(":0")) {
        Some(p) => bind(&p.to_string()).or_else(|_| bind(&addr))?,
        None => bind(&addr)?,
    };
    let local = std_l.local_addr().map_err(|e| e.to_string())?;
    let l = tokio::net::TcpListener::from_std(std_l).map_err(|e| e.to_string())?;
    sim.state.lock().unwrap().bound.insert(name, local);
    // Port 0 is logged with the port the kernel chose, so tests can find it.
    let shown = if addr.ends_with(":0") {
        local.to_string()
    } else {
        addr.clone()
    };
    let task = if name == "rtsp" {
        info!("[RTSP] started with listener on {shown} (TCP/RTSP)");
        tokio::spawn(async move {
            loop {
                if let Ok((s, _)) = l.accept().await {
                    drop(s);
                }
            }
        })
    } else {
        info!("[{label}] started with listener on {shown} (TCP/HTTP)");
        let router: Router = match name {
            "api" => crate::api::router(sim.clone()),
            "metrics" => crate::metrics::router(sim.clone()),
            "playback" => crate::playback::router(sim.clone()),
            "hls" => crate::hls::router(sim.clone()),
            _ => crate::hls::webrtc_router(sim.clone()),
        };
        tokio::spawn(async move {
            let _ = axum::serve(
                l,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        })
    };
    Ok((addr, task))
}

/// Starts the enabled servers of the initial config.
pub async fn start_all(sim: &Arc<Sim>) -> Result<(), String> {
    let conf = sim.conf();
    let mut ls = sim.listeners.lock().await;
    for (name, en, addr_key, label) in SERVERS {
        if conf.bool(en) {
            let r = start_one(sim, &conf, name, addr_key, label, None).await?;
            ls.running.insert(name, r);
        }
    }
    Ok(())
}

/// Restarts the servers whose enable flag or address changed (all of them when the path
/// manager restarts). A bind failure is fatal (the process exits with 0).
pub async fn reconcile(
    sim: &Arc<Sim>,
    old: &Conf,
    new: &Conf,
    restart_all: bool,
) -> Result<(), String> {
    let mut ls = sim.listeners.lock().await;
    for (name, en, addr_key, label) in SERVERS {
        let changed = old.bool(en) != new.bool(en) || old.str(addr_key) != new.str(addr_key);
        if !(changed || restart_all && new.bool(en)) {
            continue;
        }
        let mut prev = None;
        if let Some((_, task)) = ls.running.remove(name) {
            task.abort();
            let _ = task.await;
            let was = sim.state.lock().unwrap().bound.remove(name);
            if old.str(addr_key) == new.str(addr_key) {
                prev = was;
            }
            info!("[{label}] listener is closing");
        }
        if new.bool(en) {
            match start_one(sim, new, name, addr_key, label, prev).await {
                Ok(r) => {
                    ls.running.insert(name, r);
                }
                Err(e) => {
                    error!("{e}");
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// `{"status":"error","error":msg}` with a status code.
pub fn json_error(code: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({"status": "error", "error": msg});
    (code, axum::Json(body)).into_response()
}

pub fn json_ok() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

pub fn json<T: serde::Serialize>(v: &T) -> Response {
    axum::Json(v).into_response()
}

/// gin's default 404: plain text.
pub fn plain_404() -> Response {
    let mut r = Response::new(Body::from("404 page not found"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Go's RFC3339Nano: trailing zeros of the fraction trimmed, `Z` for UTC.
pub fn go_time<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ns = t.timestamp_subsec_nanos();
    let frac = if ns == 0 {
        String::new()
    } else {
        format!(".{ns:09}").trim_end_matches('0').to_string()
    };
    let off = t.offset().fix().local_minus_utc();
    let z = if off == 0 {
        "Z".to_string()
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    };
    format!("{base}{frac}{z}")
}

/// Parses a query string the way Go's `url.ParseQuery` does (`+` is a space).
pub fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        m.entry(pct_decode(k)).or_insert_with(|| pct_decode(v));
    }
    m
}

/// Decodes a URL path segment (`%XX` only; `+` stays a plus).
pub fn path_decode(s: &str) -> String {
    pct_decode(&s.replace('+', "%2B"))
}

pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn pct_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses an RFC 3339 time as Go's `time.Parse(time.RFC3339, s)`.
pub fn parse_time(s: &str) -> Result<DateTime<chrono::FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|_| {
        format!("parsing time \"{s}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{s}\" as \"2006\"")
    })
}
