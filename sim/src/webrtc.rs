//! The WebRTC server (docs/mediamtx.md, WebRTC): WHEP sessions (`POST /NAME/whep`, trickle ICE with
//! `PATCH`, `DELETE`), the preflight `OPTIONS`, and the reader page. The media itself is
//! the `rtc` engine's.

use crate::auth;
use crate::faults::WhepMode;
use crate::http::{cors_for, json_error, plain_404, typed, uuid_v4};
use crate::readers::WebRtcSession;
use crate::rtc::{self, Command, Engine, Feed, NewSession};
use crate::sim::{Check, Sim};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Local;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Server {
    sim: Arc<Sim>,
    engine: Engine,
}

/// The router of `webrtcAddress`; it starts the media engine on `webrtcLocalUDPAddress`.
pub fn router(sim: Arc<Sim>) -> Result<Router, String> {
    let conf = sim.conf();
    let udp = conf.str("webrtcLocalUDPAddress");
    let udp = if udp.is_empty() { "127.0.0.1:0" } else { udp };
    let engine = Engine::start(udp, sim.live.shared().clone())?;
    let s = Arc::new(Server { sim, engine });
    Ok(Router::new().fallback(handle).with_state(s))
}

async fn handle(
    State(s): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origins = s.sim.conf().str_list("webrtcAllowOrigins");
    let cors = |r: Response| cors_for(r, &origins, &headers);
    let path = uri.path().trim_start_matches('/');
    if method == Method::OPTIONS && headers.contains_key("access-control-request-method") {
        return cors(preflight());
    }
    if let Some(name) = path.strip_suffix("/whep") {
        return cors(match method {
            Method::OPTIONS => match check_outside_session(&s, name, &uri, &headers, peer).await {
                Ok(()) => with_ice_links(whep_options(), &s.sim.conf()),
                Err(r) => r,
            },
            Method::POST => whep(&s, name, peer, &uri, &headers, &body).await,
            Method::GET | Method::HEAD | Method::PUT => {
                StatusCode::METHOD_NOT_ALLOWED.into_response()
            }
            _ => plain_404(),
        });
    }
    if let Some((name, secret)) = path.rsplit_once("/whep/") {
        let _ = name;
        return cors(match method {
            Method::PATCH => patch(&s, secret, &headers, &body),
            Method::DELETE => delete(&s, secret),
            _ => plain_404(),
        });
    }
    if method != Method::GET {
        return plain_404();
    }
    if let Some(name) = path.strip_suffix('/') {
        return match check_outside_session(&s, name, &uri, &headers, peer).await {
            Err(r) => r,
            Ok(()) => typed(
                "text/html",
                "<!DOCTYPE html><html><body>mediamtx-sim: play /NAME/whep with a WHEP client\
                 </body></html>",
            ),
        };
    }
    if !path.is_empty() {
        return (StatusCode::FOUND, [(header::LOCATION, format!("/{path}/"))]).into_response();
    }
    plain_404()
}

/// A `read` decision of the WebRTC server (docs/mediamtx.md §b2).
fn read_request(
    name: &str,
    uri: &Uri,
    id: Option<&str>,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> auth::Request {
    auth::Request {
        action: auth::Action::Read,
        path: name.to_string(),
        query: uri.query().unwrap_or("").to_string(),
        protocol: "webrtc",
        id: id.map(str::to_string),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        creds: auth::Credentials::from_http(headers),
        ip: peer.ip(),
    }
}

/// The checks of a request outside a session (the page, a non-preflight `OPTIONS`):
/// the path configuration (500), then a `read` decision without a reader id.
async fn check_outside_session(
    s: &Server,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(), Response> {
    if let Check::NotConfigured = s.sim.check_path(name) {
        return Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("path '{name}' is not configured"),
        ));
    }
    let req = read_request(name, uri, None, headers, peer);
    let author = format!("[WebRTC] [conn {peer}]");
    auth::check(&s.sim.conf(), &req, &author, Some(&s.sim.path_manager))
        .await
        .map_err(|r| r.response())
}

/// 204 with the methods and headers a browser may use (ICE servers: none configured).
fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        "Access-Control-Allow-Methods",
        HeaderValue::from_static("OPTIONS, GET, POST, PATCH, DELETE"),
    );
    h.insert(
        "Access-Control-Allow-Headers",
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("Link"),
    );
    r
}

/// `response` with one `Link` header per ICE server of `webrtcICEServers2`
/// (all of them, `clientOnly` too: they are the client's configuration), as
/// MediaMTX writes them: `<URL>; rel="ice-server"`, and for a server with a
/// username `; username="U"; credential="P"; credential-type="password"`
/// (backslashes and double quotes escaped). MediaMTX's `AUTH_SECRET`
/// username (time-limited TURN credentials) is not modelled: the username is
/// sent as written.
fn with_ice_links(mut response: Response, conf: &crate::config::Conf) -> Response {
    let Some(serde_json::Value::Array(servers)) = conf.global.get("webrtcICEServers2") else {
        return response;
    };
    let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    for server in servers {
        let field = |k: &str| server.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let mut link = format!("<{}>; rel=\"ice-server\"", field("url"));
        if !field("username").is_empty() {
            link.push_str(&format!(
                "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                quote(field("username")),
                quote(field("password"))
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().append("Link", v);
        }
    }
    response
}

/// The answer to a non-preflight `OPTIONS /NAME/whep`, without its `Link`
/// headers ([`with_ice_links`]).
fn whep_options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        "Access-Control-Allow-Methods",
        HeaderValue::from_static("OPTIONS, GET, POST, PATCH, DELETE"),
    );
    h.insert(
        "Access-Control-Allow-Headers",
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("Accept-Post, Link"),
    );
    h.insert("Accept-Post", HeaderValue::from_static("application/sdp"));
    r
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
}

async fn whep(
    s: &Server,
    name: &str,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let sim = &s.sim;
    if content_type(headers) != "application/sdp" {
        return json_error(StatusCode::BAD_REQUEST, "invalid Content-Type");
    }
    if let Check::NotConfigured = sim.check_path(name) {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("path '{name}' is not configured"),
        );
    }
    // The session exists (with its uuid) before the decision, as in MediaMTX.
    let id = uuid_v4();
    let req = read_request(name, uri, Some(&id), headers, peer);
    let author = format!("[WebRTC] [session {}]", &id[..8]);
    if let Err(r) = auth::check(&sim.conf(), &req, &author, Some(&sim.path_manager)).await {
        return r.response();
    }
    if let Check::NotReady = sim.check_path(name) {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("no stream is available on path '{name}'"),
        );
    }
    let faults = sim.faults.get();
    let feed = match faults.whep {
        WhepMode::NoStack => {
            return json_error(StatusCode::BAD_REQUEST, "the sim has no WebRTC stack")
        }
        WhepMode::Fail => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "WHEP failure injected by mediamtx-sim",
            )
        }
        WhepMode::Hang => std::future::pending().await,
        WhepMode::NotFound => {
            return json_error(
                StatusCode::NOT_FOUND,
                &format!("no stream is available on path '{name}'"),
            )
        }
        WhepMode::NoMedia => Feed::Nothing,
        _ if faults.stream_freeze_after_secs > 0 => {
            Feed::FreezeAfter(Duration::from_secs(faults.stream_freeze_after_secs))
        }
        _ => Feed::Live,
    };
    let offer = String::from_utf8_lossy(body);
    // NoIce: the answer's only candidate is a port nobody listens on.
    let candidate = if faults.whep == WhepMode::NoIce {
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|u| u.local_addr());
        match dead {
            Ok(a) => a,
            Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else {
        s.engine.candidate
    };
    let (rtc, answer) = match rtc::accept(&offer, candidate) {
        Ok(x) => x,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("invalid SDP: {e}")),
    };
    let secret = uuid_v4();
    let info = Arc::new(Mutex::new(WebRtcSession {
        id: id.clone(),
        secret: secret.clone(),
        created: Some(Local::now()),
        remote: peer.to_string(),
        path: name.to_string(),
        query: uri.query().unwrap_or("").to_string(),
        user_agent: req.user_agent.clone(),
        local_candidate: format!("host/udp/{}/{}", candidate.ip(), candidate.port()),
        ..Default::default()
    }));
    sim.state.lock().unwrap().webrtc.add(&info);
    let path = sim.path(name);
    let path_ready = Box::new(move || path.as_ref().is_some_and(|p| p.ready()));
    let _ = s.engine.tx.send(Command::Add(Box::new(NewSession {
        secret: secret.clone(),
        media: sim.live.for_path(name),
        rtc,
        feed,
        info,
        path_ready,
    })));
    crate::log::info!("[WebRTC] [session {}] created by {peer}", &id[..8]);
    let mut location = format!("/{name}/whep/{secret}");
    if let Some(q) = uri.query().filter(|q| !q.is_empty()) {
        location = format!("{location}?{q}");
    }
    let mut r = typed("application/sdp", answer);
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    let hv = |v: &str| HeaderValue::from_str(v).unwrap();
    h.insert(
        "Access-Control-Expose-Headers",
        hv("ETag, ID, Accept-Patch, Link, Location"),
    );
    h.insert(header::ETAG, hv("*"));
    h.insert("ID", hv(&id));
    h.insert("Accept-Patch", hv("application/trickle-ice-sdpfrag"));
    h.insert(header::LOCATION, hv(&location));
    with_ice_links(r, &sim.conf())
}

fn session(s: &Server, secret: &str) -> Option<Arc<Mutex<WebRtcSession>>> {
    s.sim
        .state
        .lock()
        .unwrap()
        .webrtc
        .find(|x| x.secret == secret)
}

fn patch(s: &Server, secret: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if content_type(headers) != "application/trickle-ice-sdpfrag" {
        return json_error(StatusCode::BAD_REQUEST, "invalid Content-Type");
    }
    if session(s, secret).is_none() {
        return json_error(StatusCode::NOT_FOUND, "session not found");
    }
    for line in String::from_utf8_lossy(body).lines() {
        if let Some(c) = line.trim().strip_prefix("a=") {
            if c.starts_with("candidate:") {
                match str0m::Candidate::from_sdp_string(c) {
                    Ok(c) => {
                        let _ = s.engine.tx.send(Command::Candidate(secret.to_string(), c));
                    }
                    Err(e) => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            &format!("invalid candidate: {e}"),
                        )
                    }
                }
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn delete(s: &Server, secret: &str) -> Response {
    let Some(info) = session(s, secret) else {
        return json_error(StatusCode::NOT_FOUND, "session not found");
    };
    info.lock().unwrap().kicked = true;
    let _ = s.engine.tx.send(Command::Remove(secret.to_string()));
    StatusCode::OK.into_response()
}
