//! HTTP helpers shared by every router: JSON answers, gin's plain 404, Go-style times
//! and query strings, ids, and binding a MediaMTX-style address. A leaf: it imports no
//! other module of the sim.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Offset, TimeZone};
use std::collections::BTreeMap;

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

/// A query string as Go's `url.Values`: keys in first-seen order with all their values.
pub fn go_values(q: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for kv in q.split('&').filter(|s| !s.is_empty() && !s.contains(';')) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let (k, v) = (pct_decode(k), pct_decode(v));
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vals)) => vals.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

/// Go's `url.Values.Encode`: keys sorted, keys and values query-escaped (space as `+`).
pub fn go_encode(values: &[(String, Vec<String>)]) -> String {
    let esc = |s: &str| pct_encode(s).replace("%20", "+");
    let mut keys: Vec<&(String, Vec<String>)> = values.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts = Vec::new();
    for (k, vals) in keys {
        for v in vals {
            parts.push(format!("{}={}", esc(k), esc(v)));
        }
    }
    parts.join("&")
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

/// A response with a body and a Content-Type.
pub fn typed(ct: &'static str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// A random RFC 4122 version 4 UUID.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether a browser origin matches an allowed origin (`*`, exact, or with `*` for any
/// run of characters, as in `http://*.example.com`).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == origin,
        Some((a, b)) => {
            origin.len() >= a.len() + b.len() && origin.starts_with(a) && origin.ends_with(b)
        }
    }
}

/// CORS headers of the HLS and WebRTC servers: with `*` allowed, `Access-Control-Allow-
/// Origin: *`; otherwise the request's `Origin` is echoed when it matches an allowed
/// origin, and nothing is added when it does not (the browser then refuses the answer).
pub fn cors_for(mut r: Response, allowed: &[String], req: &axum::http::HeaderMap) -> Response {
    let origin = req
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let value = if allowed.iter().any(|a| a == "*") {
        "*".to_string()
    } else if !origin.is_empty() && allowed.iter().any(|a| origin_matches(a, origin)) {
        origin.to_string()
    } else {
        return r;
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("Access-Control-Allow-Origin", v);
    }
    h.insert(
        "Access-Control-Allow-Credentials",
        HeaderValue::from_static("true"),
    );
    r
}
