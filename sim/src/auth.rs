//! Authentication (docs/mediamtx.md §b, §b2): where credentials come from, the internal
//! users, the HTTP method (`authMethod: http`: a POST to `authHTTPAddress` for each
//! decision) with its exclusions, and what a refusal does (the 401 with or without
//! `WWW-Authenticate`, the log line and the 0–4 s pause).
//!
//! Callers build a [`Request`], call [`check`], and turn a [`Refusal`] into their answer.
//! `read` decisions are made one at a time (MediaMTX makes them inside its path
//! manager); the caller passes the lock that serialises them.

use crate::config::Conf;
use crate::log::warning;
use crate::regex::Regex;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// MediaMTX's longest pause after a refused attempt (the pause is uniform in [0, 4 s)).
const MAX_PAUSE: Duration = Duration::from_secs(4);
/// The most of a refusal's body that is read (for the log line).
const MAX_BODY: usize = 128 * 1024;

/// User and password, or a token, as a client presented them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
    pub token: String,
}

impl Credentials {
    /// From an HTTP request: the first `Authorization: Bearer …` (`user:pass` when it
    /// splits on `:` into exactly two parts, else a token), otherwise Basic auth.
    pub fn from_http(headers: &HeaderMap) -> Credentials {
        let values: Vec<&str> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for v in &values {
            if let Some(rest) = v.strip_prefix("Bearer ") {
                let parts: Vec<&str> = rest.split(':').collect();
                if parts.len() == 2 {
                    return Credentials {
                        user: parts[0].into(),
                        pass: parts[1].into(),
                        token: String::new(),
                    };
                }
                return Credentials {
                    token: rest.into(),
                    ..Default::default()
                };
            }
        }
        values.first().map(|v| basic(v)).unwrap_or_default()
    }

    /// From an RTSP `Authorization` header: the user, and the password when it is Basic.
    pub fn from_rtsp(value: Option<&str>) -> Credentials {
        let Some(v) = value else {
            return Credentials::default();
        };
        if let Some(rest) = v.strip_prefix("Digest ") {
            let user = rest
                .split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == "username")
                .map(|(_, v)| v.trim_matches('"').to_string())
                .unwrap_or_default();
            return Credentials {
                user,
                ..Default::default()
            };
        }
        basic(v)
    }
}

/// Go's `Request.BasicAuth`: `Basic ` (any case) + base64 of `user:pass`.
fn basic(v: &str) -> Credentials {
    let Some(b64) = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| &v[6..])
    else {
        return Credentials::default();
    };
    let Some(raw) = base64_decode(b64) else {
        return Credentials::default();
    };
    let s = String::from_utf8_lossy(&raw);
    match s.split_once(':') {
        Some((u, p)) => Credentials {
            user: u.into(),
            pass: p.into(),
            token: String::new(),
        },
        None => Credentials::default(),
    }
}

/// Standard base64 with padding (what browsers' `btoa` writes).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, chunk) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// What a client wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Playback,
    Api,
    Metrics,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Playback => "playback",
            Action::Api => "api",
            Action::Metrics => "metrics",
        }
    }

    fn has_path(self) -> bool {
        matches!(self, Action::Read | Action::Playback)
    }
}

/// One decision to make.
#[derive(Clone, Debug)]
pub struct Request {
    pub action: Action,
    /// The path name (`read`, `playback`), else empty.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// `hls`, `webrtc`, `rtsp` for `read`; empty otherwise.
    pub protocol: &'static str,
    /// The uuid of the reader being created, if any.
    pub id: Option<String>,
    pub user_agent: String,
    pub creds: Credentials,
    pub ip: IpAddr,
}

/// Why a request was refused.
#[derive(Debug)]
pub struct Refusal {
    /// No credential was given: answer at once and ask for one (`WWW-Authenticate`).
    pub ask: bool,
}

impl Refusal {
    /// The HTTP servers' 401: JSON `authentication error`, plus `WWW-Authenticate:
    /// Basic realm="mediamtx"` when asking for credentials.
    pub fn response(&self) -> Response {
        let mut r = crate::http::json_error(StatusCode::UNAUTHORIZED, "authentication error");
        if self.ask {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"mediamtx\"".parse().unwrap(),
            );
        }
        r
    }
}

/// Decides `req`. On a refusal with credentials (or when the auth server failed), logs
/// `WAR <author> failed to authenticate: …` and pauses before returning, as MediaMTX
/// does against brute force; a refusal without credentials returns at once. `serial`
/// is held during the decision itself (not the pause).
pub async fn check(
    conf: &Conf,
    req: &Request,
    author: &str,
    serial: Option<&tokio::sync::Mutex<()>>,
) -> Result<(), Refusal> {
    let decided = {
        let _g = match serial {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        decide(conf, req).await
    };
    let Err(why) = decided else {
        return Ok(());
    };
    // A Bearer token counts only when the method uses tokens (http), as in MediaMTX.
    let ask = req.creds.user.is_empty() && req.creds.pass.is_empty() && token(conf, req).is_empty();
    if !ask {
        warning!("{author} failed to authenticate: {why}");
        tokio::time::sleep(pause()).await;
    }
    Err(Refusal { ask })
}

/// The pause after a refused attempt: `MTXSIM_AUTH_PAUSE_MS` when set (tests), else
/// uniform in [0, 4 s) as MediaMTX.
fn pause() -> Duration {
    if let Some(ms) = std::env::var("MTXSIM_AUTH_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_millis(ms);
    }
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    Duration::from_nanos(u64::from_le_bytes(b) % MAX_PAUSE.as_nanos() as u64)
}

/// The token MediaMTX derives for the HTTP method: the Bearer token, else the password,
/// else (RTSP only) the `token` or `jwt` query parameter when it appears once.
fn token(conf: &Conf, req: &Request) -> String {
    if conf.str("authMethod") != "http" {
        return String::new();
    }
    if !req.creds.token.is_empty() {
        return req.creds.token.clone();
    }
    if !req.creds.pass.is_empty() {
        return req.creds.pass.clone();
    }
    if req.protocol == "rtsp" {
        for key in ["token", "jwt"] {
            let vals: Vec<String> = query_pairs(&req.query)
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect();
            if vals.len() == 1 {
                return vals[0].clone();
            }
        }
    }
    String::new()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (crate::http::pct_decode(k), crate::http::pct_decode(v))
        })
        .collect()
}

async fn decide(conf: &Conf, req: &Request) -> Result<(), String> {
    match conf.str("authMethod") {
        "http" => decide_http(conf, req).await,
        "jwt" => Err("authMethod 'jwt' is not supported by mediamtx-sim".into()),
        _ => decide_internal(conf, req),
    }
}

/// Whether a list of `{action, path}` permissions grants the request.
fn permits(perms: Option<&Value>, req: &Request) -> bool {
    let Some(Value::Array(perms)) = perms else {
        return false;
    };
    perms.iter().any(|p| {
        if p.get("action").and_then(Value::as_str) != Some(req.action.as_str()) {
            return false;
        }
        if !req.action.has_path() {
            return true;
        }
        let path = p.get("path").and_then(Value::as_str).unwrap_or("");
        if path.is_empty() {
            true
        } else if let Some(re) = path.strip_prefix('~') {
            Regex::new(re).is_ok_and(|r| r.is_match(&req.path))
        } else {
            path == req.path
        }
    })
}

/// `authInternalUsers`: an entry applies when its address list is empty or holds the
/// client, it grants the action (and path), and its user is `any` or the credentials
/// match. Hashed credentials (`argon2:`, `sha256:`) are not simulated: they never match.
fn decide_internal(conf: &Conf, req: &Request) -> Result<(), String> {
    let Some(Value::Array(users)) = conf.global.get("authInternalUsers") else {
        return Err("authentication failed".into());
    };
    let ok = users.iter().any(|u| {
        let ips: Vec<&str> = match u.get("ips") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !ips.is_empty() && !ips.iter().any(|n| ip_in(n, req.ip)) {
            return false;
        }
        if !permits(u.get("permissions"), req) {
            return false;
        }
        let user = u.get("user").and_then(Value::as_str).unwrap_or("");
        let pass = u.get("pass").and_then(Value::as_str).unwrap_or("");
        user == "any" || (user == req.creds.user && pass == req.creds.pass)
    });
    if ok {
        Ok(())
    } else {
        Err("authentication failed".into())
    }
}

/// Whether `ip` is `net` (an address, or a CIDR network).
fn ip_in(net: &str, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    let (addr, bits) = match net.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (net, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (canonical(addr), ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses as IPv4 (as Go prints and compares them).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The body of the call, fields in MediaMTX's order.
#[derive(Serialize)]
struct Body<'a> {
    ip: String,
    user: &'a str,
    password: &'a str,
    token: String,
    action: &'a str,
    path: &'a str,
    protocol: &'a str,
    id: Option<&'a str>,
    query: &'a str,
    #[serde(rename = "userAgent")]
    user_agent: &'a str,
}

/// The JSON MediaMTX sends (Go's encoder escapes `<`, `>`, `&`, U+2028 and U+2029).
pub fn body_json(conf: &Conf, req: &Request) -> String {
    let b = Body {
        ip: canonical(req.ip).to_string(),
        user: &req.creds.user,
        password: &req.creds.pass,
        token: token(conf, req),
        action: req.action.as_str(),
        path: &req.path,
        protocol: req.protocol,
        id: req.id.as_deref(),
        query: &req.query,
        user_agent: &req.user_agent,
    };
    serde_json::to_string(&b)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `authMethod: http`: excluded actions pass without a call; otherwise a 2xx answer
/// from `authHTTPAddress` allows, anything else (or no answer within `readTimeout`)
/// refuses.
async fn decide_http(conf: &Conf, req: &Request) -> Result<(), String> {
    if permits(conf.global.get("authHTTPExclude"), req) {
        return Ok(());
    }
    let url = conf.str("authHTTPAddress");
    let body = body_json(conf, req);
    let timeout = conf.duration("readTimeout");
    let call = post(url, &body);
    let res = if timeout.is_zero() {
        call.await
    } else {
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into(),
            ),
        }
    };
    let (status, answer) = res.map_err(|e| format!("HTTP request failed: Post \"{url}\": {e}"))?;
    if (200..=299).contains(&status) {
        return Ok(());
    }
    if answer.is_empty() {
        Err(format!("server replied with code {status}"))
    } else {
        Err(format!(
            "server replied with code {status}: {}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// One POST of JSON over plain HTTP/1.1, as Go's client sends it; returns the status
/// and (up to 128 KiB of) the body.
async fn post(url: &str, body: &str) -> Result<(u16, Vec<u8>), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("https is not supported by mediamtx-sim".into());
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let connect_to = if hostport.ends_with(']') || !hostport.contains(':') {
        format!("{hostport}:80")
    } else {
        hostport.to_string()
    };
    let mut s = tokio::net::TcpStream::connect(connect_to.as_str())
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("dial tcp {connect_to}: connect: connection refused")
            }
            _ => format!("dial tcp {connect_to}: {e}"),
        })?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (split, status, length, chunked) = loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("EOF".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..i]).into_owned();
            let mut lines = head.lines();
            let status: u16 = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|c| c.parse().ok())
                .ok_or("malformed HTTP response")?;
            let mut length = None;
            let mut chunked = false;
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                    if k == "content-length" {
                        length = v.parse::<usize>().ok();
                    } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                        chunked = true;
                    }
                }
            }
            break (i + 4, status, length, chunked);
        }
        if raw.len() > MAX_BODY {
            return Err("malformed HTTP response".into());
        }
    };
    let mut rest = raw.split_off(split);
    // 1xx, 204 and 304 answers have no body whatever their headers say;
    // the server may keep the connection open after them (as an axum or Go
    // server does), so reading on would wait for nothing.
    let want = if status == 204 || status == 304 || (100..200).contains(&status) {
        Some(0)
    } else if chunked {
        None
    } else {
        length
    };
    loop {
        let done = match want {
            Some(n) => rest.len() >= n,
            None if chunked => rest.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done || rest.len() > MAX_BODY {
            break;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    if chunked {
        rest = dechunk(&rest);
    }
    rest.truncate(want.unwrap_or(MAX_BODY).min(MAX_BODY));
    Ok((status, rest))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..i]).unwrap_or("0");
        let n =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = b.get(i + 2 + n + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(vals: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in vals {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn credentials_from_http_headers() {
        let c = Credentials::from_http(&headers(&["Basic YWxpY2U6czNjcmV0"]));
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("alice", "s3cret"));
        let c = Credentials::from_http(&headers(&["basic YWxpY2U6czNjcmV0"]));
        assert_eq!(c.user, "alice", "Basic is matched in any case");
        let c = Credentials::from_http(&headers(&["Bearer abc.def"]));
        assert_eq!((c.user.as_str(), c.token.as_str()), ("", "abc.def"));
        let c = Credentials::from_http(&headers(&["Bearer bob:pw"]));
        assert_eq!(
            (c.user.as_str(), c.pass.as_str(), c.token.as_str()),
            ("bob", "pw", "")
        );
        let c = Credentials::from_http(&headers(&["Bearer a:b:c"]));
        assert_eq!(c.token, "a:b:c", "three parts are a token");
        let c = Credentials::from_http(&headers(&["bearer abc"]));
        assert_eq!(c, Credentials::default(), "Bearer is case-sensitive");
        let c = Credentials::from_http(&headers(&["Basic YWxpY2U6czNjcmV0", "Bearer t"]));
        assert_eq!(c.token, "t", "a Bearer header wins over Basic");
        assert_eq!(
            Credentials::from_http(&HeaderMap::new()),
            Credentials::default()
        );
        let c = Credentials::from_rtsp(Some("Digest username=\"carol\", realm=\"ipcam\""));
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("carol", ""));
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("YWJ").is_none());
        assert!(base64_decode("Y===").is_none());
    }

    #[test]
    fn networks() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_in("127.0.0.1", v4("127.0.0.1")));
        assert!(!ip_in("127.0.0.1", v4("127.0.0.2")));
        assert!(ip_in("10.0.0.0/8", v4("10.1.2.3")));
        assert!(ip_in("::1", v4("::1")));
        assert!(ip_in("127.0.0.1", v4("::ffff:127.0.0.1")));
        assert!(!ip_in("::1", v4("127.0.0.1")));
    }
}
