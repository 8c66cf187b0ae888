//! Who may do what on the API ([`guard`], a middleware in front of every
//! route):
//!
//! 1. The `Host` header must name this listener (its address, `localhost`,
//!    `127.0.0.1` or `[::1]` with its port) or one of `[api]
//!    allowed_hosts`; anything else is 421 (a web page reaching the API
//!    through a DNS name it controls, i.e. DNS rebinding).
//! 2. The caller is the machine token (`Authorization: Bearer <token>`,
//!    the scheme matched case-insensitively), or a dashboard session (the
//!    `vms_session` cookie), or nobody.
//! 3. A change made with a session cookie needs `X-CSRF-Token` (the
//!    session's, from `/api/login` or `/api/me`), and an `Origin` (or
//!    `Referer`) naming this host when the browser sends one.
//! 4. The route's [`Need`] decides: the page and its files, login, logout
//!    and `/api/me` are open; `/metrics` and the health document are open
//!    to a loopback peer (local monitoring); MediaMTX's authorization
//!    callback only to a loopback peer; everything else needs the role of
//!    [`need`]'s table, and for a camera route, a user whose camera list
//!    has the camera. The token may do everything but watch video (live,
//!    playback or evidence exports): it is for machines.
//!
//! The caller is left in the request's extensions ([`Caller`]) for the
//! handlers that audit what they did.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::error::ApiError;
use crate::access::store::derive;
use crate::access::AccessHandle;
use crate::access::{AuditEntry, Permission, User};
use crate::token::{constant_time_eq, ApiToken};

/// The session cookie.
pub const COOKIE: &str = "vms_session";

/// The CSRF header a session's changes carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The two ends of the request's connection (set by `serve` for each one).
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The machine token.
    Token { source: String },
    /// A logged-in person.
    User { user: User, source: String },
    /// Nobody identified (an open route).
    Anonymous { source: String },
}

impl Caller {
    /// The name in the audit trail.
    pub fn actor(&self) -> &str {
        match self {
            Caller::Token { .. } => "api-token",
            Caller::User { user, .. } => &user.name,
            Caller::Anonymous { .. } => "-",
        }
    }

    /// The cameras this caller may see: `None` for all (the token, an
    /// unlimited user, a process on the box).
    pub fn camera_scope(&self) -> Option<&[u32]> {
        match self {
            Caller::User { user, .. } if !user.cameras.is_empty() => Some(&user.cameras),
            _ => None,
        }
    }

    pub fn may_see(&self, camera: u32) -> bool {
        self.camera_scope().is_none_or(|c| c.contains(&camera))
    }

    pub fn source(&self) -> &str {
        match self {
            Caller::Token { source }
            | Caller::User { source, .. }
            | Caller::Anonymous { source } => source,
        }
    }

    /// An audit row of this caller at `now`.
    pub fn audit(&self, action: &str) -> AuditEntry {
        AuditEntry::new(chrono::Utc::now(), self.actor(), self.source(), action)
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anybody (the page, its files, login).
    Open,
    /// Anybody from a loopback peer, else [`Need::Role`] `Read`.
    LocalOrRead,
    /// A loopback peer only (MediaMTX's callback).
    Loopback,
    /// The token only (Alertmanager's webhook).
    Token,
    /// A user with this permission (for a camera, also in its list), or
    /// the token unless the permission is video.
    Role(Permission, Option<u32>),
    /// Video: a user with this permission (and the camera, when the path
    /// names one; otherwise the handler checks it); never the token.
    Video(Permission, Option<u32>),
}

/// The table of the API: what `method path` needs.
pub fn need(method: &Method, path: &str) -> Need {
    let get = method == Method::GET || method == Method::HEAD;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [""] | ["ui", _] => Need::Open,
        ["api", "login"] | ["api", "logout"] | ["api", "me"] => Need::Open,
        ["metrics"] => Need::LocalOrRead,
        ["api", "cameras", "health"] => Need::LocalOrRead,
        ["internal", "mediamtx", "auth"] => Need::Loopback,
        ["api", "alerts", "webhook"] => Need::Token,
        ["api", "audit"] | ["api", "users", ..] => Need::Role(Permission::Administer, None),
        ["api", "cameras", id, rest @ ..] => {
            // A segment that is not a camera id: the handler answers 400.
            let camera = id.parse::<u32>().ok();
            match (rest, camera) {
                (["playback", _], Some(c)) => Need::Video(Permission::Playback, Some(c)),
                (["exports"], _) => Need::Video(Permission::Administer, camera),
                (["playback", _], None) => Need::Role(Permission::Playback, None),
                (["recordings"], _) => Need::Role(Permission::Playback, camera),
                (["reset"], _) => Need::Role(Permission::Operate, camera),
                (["latency"], _) => Need::Role(Permission::Live, camera),
                _ => Need::Role(Permission::Read, camera),
            }
        }
        ["api", "exports", ..] => Need::Video(Permission::Administer, None),
        ["api", "alerts", ..] if !get => Need::Role(Permission::Operate, None),
        // Holds name cameras in their body: the handler checks the user's
        // camera list.
        ["api", "holds", ..] => Need::Role(Permission::Operate, None),
        _ => Need::Role(Permission::Read, None),
    }
}

/// The credentials of `Authorization: Bearer <credentials>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The session cookie's value, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Checks the machine token; the error says what is wrong.
pub fn require(token: &ApiToken, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(given) if token.matches(given) => Ok(()),
        Some(_) if token.current().is_none() => Err(ApiError::unauthorized(
            "this daemon has no API token (api.token_file is missing, empty or unreadable); changes are refused",
        )),
        Some(_) => Err(ApiError::unauthorized("invalid API token")),
        None => Err(ApiError::unauthorized(
            "log in, or send \"Authorization: Bearer <token>\"",
        )),
    }
}

fn host_port(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    }
}

/// Whether `host` (the `Host` header) names this listener.
pub fn host_allowed(host: &str, local: SocketAddr, allowed: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let port = local.port();
    let mut names = vec![
        host_port(local),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    // A browser leaves out the scheme's own port (80, or 443 for HTTPS).
    if port == 80 || port == 443 {
        let bare: Vec<String> = names
            .iter()
            .map(|n| {
                n.rsplit_once(':')
                    .map(|(h, _)| h.to_string())
                    .unwrap_or_default()
            })
            .collect();
        names.extend(bare);
    }
    names.contains(&host) || allowed.iter().any(|a| a.eq_ignore_ascii_case(&host))
}

/// Whether an `Origin` (or a `Referer`'s origin) names `host`.
fn same_origin(value: &str, host: &str) -> bool {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let origin_host = rest.split('/').next().unwrap_or("");
    origin_host.eq_ignore_ascii_case(host.trim())
}

/// A change made from a page: the CSRF token and the page's origin.
fn check_csrf(headers: &HeaderMap, cookie: &str, host: &str) -> Result<(), ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, m);
    for h in [header::ORIGIN, header::REFERER] {
        if let Some(v) = headers.get(&h) {
            let ok = v.to_str().is_ok_and(|v| same_origin(v, host));
            if !ok {
                return Err(forbidden(
                    "a change from a page of another origin is refused",
                ));
            }
            break;
        }
    }
    let expected = derive("csrf", cookie);
    match headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(given) if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(forbidden("wrong X-CSRF-Token")),
        None => Err(forbidden(
            "a change with a session needs the X-CSRF-Token header (from /api/login or /api/me)",
        )),
    }
}

/// What the guard needs.
#[derive(Clone)]
pub struct Gate {
    pub token: Arc<ApiToken>,
    pub access: AccessHandle,
    /// `[api] allowed_hosts`.
    pub allowed_hosts: Arc<Vec<String>>,
}

/// Puts [`guard`] in front of every route of `router`.
pub fn guarded(router: axum::Router, gate: Gate) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(gate, guard))
}

/// The middleware in front of every route (see the module's text).
pub async fn guard(State(state): State<Gate>, mut req: Request, next: Next) -> Response {
    match admit(&state, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn admit(state: &Gate, req: &mut Request) -> Result<(), ApiError> {
    let conn = req.extensions().get::<Conn>().copied();
    let source = conn.map(|c| c.peer.ip().to_string()).unwrap_or_default();
    let loopback_peer = conn.is_some_and(|c| c.peer.ip().is_loopback());
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    // A request without a `Host` header (HTTP/1.0 from a script) cannot be
    // a browser's, so it cannot be DNS rebinding; it still needs a caller.
    if let Some(c) = conn.filter(|_| !host.is_empty()) {
        if !host_allowed(&host, c.local, &state.allowed_hosts) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this API does not answer for host {host:?} (add it to [api] allowed_hosts)"
                ),
            ));
        }
    }
    let need = need(req.method(), req.uri().path());
    let caller = identify(state, headers, &source, &host, req.method()).await;
    let caller = match (need, caller) {
        (Need::Open, c) => c.unwrap_or(Caller::Anonymous { source }),
        (Need::Loopback, _) if loopback_peer => Caller::Anonymous { source },
        (Need::Loopback, _) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only for processes on this box",
            ))
        }
        (Need::LocalOrRead, c) if loopback_peer => c.unwrap_or(Caller::Anonymous { source }),
        (_, Err(e)) => return Err(e),
        (need, Ok(caller)) => {
            allowed(need, &caller)?;
            caller
        }
    };
    req.extensions_mut().insert(caller);
    Ok(())
}

/// Whether `caller` may do what `need` says.
fn allowed(need: Need, caller: &Caller) -> Result<(), ApiError> {
    let forbidden = |m: String| Err(ApiError::new(StatusCode::FORBIDDEN, m));
    match (need, caller) {
        (_, Caller::Anonymous { .. }) => Err(ApiError::unauthorized(
            "log in, or send \"Authorization: Bearer <token>\"",
        )),
        (Need::Token, Caller::Token { .. }) => Ok(()),
        (Need::Token, _) => forbidden("only the API token may call this".into()),
        (Need::Video(..), Caller::Token { .. }) => {
            forbidden("the API token cannot read video; log in as a user".into())
        }
        (Need::LocalOrRead | Need::Role(..), Caller::Token { .. }) => Ok(()),
        (Need::LocalOrRead, Caller::User { .. }) => Ok(()),
        (Need::Role(p, camera), Caller::User { user, .. }) => user_may(user, p, camera),
        (Need::Video(p, camera), Caller::User { user, .. }) => user_may(user, p, camera),
        _ => forbidden("refused".into()),
    }
}

fn user_may(user: &User, p: Permission, camera: Option<u32>) -> Result<(), ApiError> {
    let forbidden = |m: String| Err(ApiError::new(StatusCode::FORBIDDEN, m));
    if !user.role.allows(p) {
        return forbidden(format!(
            "the role {} may not do this (it needs {})",
            user.role.as_str(),
            p.least().as_str()
        ));
    }
    match camera {
        Some(c) if !user.may_see(c) => forbidden(format!("{} may not see camera {c}", user.name)),
        _ => Ok(()),
    }
}

/// The caller of a request: `Ok(Token|User)`, or why its credentials are
/// refused; `Err` too when it has none.
async fn identify(
    state: &Gate,
    headers: &HeaderMap,
    source: &str,
    host: &str,
    method: &Method,
) -> Result<Caller, ApiError> {
    if bearer(headers).is_some() {
        require(&state.token, headers)?;
        return Ok(Caller::Token {
            source: source.to_string(),
        });
    }
    let Some(cookie) = session_cookie(headers) else {
        return Err(ApiError::unauthorized(
            "log in, or send \"Authorization: Bearer <token>\"",
        ));
    };
    let token = cookie.to_string();
    let now = chrono::Utc::now();
    let session = state
        .access
        .call(move |s, settings| s.session(&token, now, settings))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(session) = session else {
        return Err(ApiError::unauthorized(
            "the session has ended; log in again",
        ));
    };
    if is_change(method) {
        check_csrf(headers, cookie, host)?;
    }
    Ok(Caller::User {
        user: session.user,
        source: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let t = ApiToken::fixed("s3cret");
        for v in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "] {
            assert!(require(&t, &headers(v)).is_ok(), "{v}");
        }
        assert!(require(&t, &headers("Basic s3cret")).is_err());
        assert!(require(&t, &headers("Bearer wrong")).is_err());
        assert!(require(&t, &HeaderMap::new()).is_err());
    }

    #[test]
    fn only_the_listener_s_own_names_are_hosts() {
        let local: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let extra = vec!["nvr.local:8000".to_string()];
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "[::1]:8000",
            "NVR.local:8000",
        ] {
            assert!(host_allowed(ok, local, &extra), "{ok}");
        }
        for bad in ["evil.example:8000", "localhost", "127.0.0.1:8001", ""] {
            assert!(!host_allowed(bad, local, &extra), "{bad}");
        }
        let lan: SocketAddr = "192.168.1.5:8000".parse().unwrap();
        assert!(host_allowed("192.168.1.5:8000", lan, &[]));
        let https: SocketAddr = "192.168.1.5:443".parse().unwrap();
        assert!(host_allowed("192.168.1.5", https, &[]));
        assert!(!host_allowed("evil.example", https, &[]));
    }

    #[test]
    fn the_route_table() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(need(&g, "/"), Need::Open);
        assert_eq!(need(&g, "/ui/app.js"), Need::Open);
        assert_eq!(need(&g, "/metrics"), Need::LocalOrRead);
        assert_eq!(need(&g, "/api/status"), Need::Role(Permission::Read, None));
        assert_eq!(
            need(&g, "/api/cameras/2/playback/get"),
            Need::Video(Permission::Playback, Some(2))
        );
        assert_eq!(
            need(&p, "/api/cameras/2/exports"),
            Need::Video(Permission::Administer, Some(2))
        );
        for path in ["/api/exports", "/api/exports/x", "/api/exports/x/a.mp4"] {
            assert_eq!(need(&g, path), Need::Video(Permission::Administer, None));
        }
        assert_eq!(
            need(&p, "/api/cameras/2/reset"),
            Need::Role(Permission::Operate, Some(2))
        );
        assert_eq!(
            need(&p, "/api/alerts/7/ack"),
            Need::Role(Permission::Operate, None)
        );
        assert_eq!(need(&g, "/api/alerts"), Need::Role(Permission::Read, None));
        assert_eq!(need(&p, "/api/alerts/webhook"), Need::Token);
        assert_eq!(
            need(&g, "/api/audit"),
            Need::Role(Permission::Administer, None)
        );
        assert_eq!(need(&p, "/internal/mediamtx/auth"), Need::Loopback);
    }

    #[test]
    fn origins_must_name_the_host() {
        assert!(same_origin("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(same_origin("https://nvr.local:8000/x", "nvr.local:8000"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8000"));
        assert!(!same_origin("null", "127.0.0.1:8000"));
    }
}
