//! Authentication as MediaMTX v1.20.1 does it (docs/mediamtx.md §b, §b2), against a real
//! auth server started by the test: the JSON body of each decision per endpoint, which
//! requests ask, exclusions, the refusal answers, an unreachable or slow auth server,
//! the pause after a refused attempt, reloads, and the internal users.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);
/// `alice:s3cret` in base64.
const ALICE: &str = "Basic YWxpY2U6czNjcmV0";

/// One call the auth server received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    raw: String,
    body: Value,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

type Decide = dyn Fn(&Value) -> (u16, String) + Send + Sync;

/// A small auth server on loopback: records every call and answers what `decide` says.
struct AuthServer {
    addr: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl AuthServer {
    fn start(decide: impl Fn(&Value) -> (u16, String) + Send + Sync + 'static) -> AuthServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let decide: Arc<Decide> = Arc::new(decide);
        let c2 = calls.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (calls, decide) = (c2.clone(), decide.clone());
                std::thread::spawn(move || serve(s, &calls, &*decide));
            }
        });
        AuthServer { addr, calls }
    }

    fn url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The bodies of the calls for `action`.
    fn bodies(&self, action: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .map(|c| c.body)
            .filter(|b| b["action"] == action)
            .collect()
    }
}

fn serve(s: TcpStream, calls: &Mutex<Vec<Call>>, decide: &Decide) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    calls.lock().unwrap().push(Call {
        method,
        target,
        headers,
        raw,
        body: parsed.clone(),
    });
    let (code, text) = decide(&parsed);
    let mut s = s;
    if code == 204 {
        // As an axum or Go server answers 204: no length, no body, and the
        // connection kept open for the next request.
        let _ = write!(s, "HTTP/1.1 204 No Content\r\n\r\n");
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let _ = write!(
        s,
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn conf(auth: &str, extra: &str) -> String {
    format!(
        "{LISTENERS}webrtcLocalUDPAddress: 127.0.0.1:0\nhlsVariant: fmp4\nhlsSegmentCount: 3\n\
         {auth}{extra}paths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n  cam2:\n    source: rtsp://10.0.0.2/s\n"
    )
}

fn http_auth(a: &AuthServer) -> String {
    format!("authMethod: http\nauthHTTPAddress: {}\n", a.url())
}

fn req(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    http_try(addr, method, path, headers, None, 15 * S)
        .unwrap_or_else(|| panic!("{method} {addr}{path}: no answer"))
}

fn offer(addr: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("Content-Type", "application/sdp")];
    h.extend_from_slice(headers);
    http_try(addr, "POST", path, &h, Some(OFFER.as_bytes()), 15 * S).expect("a WHEP answer")
}

/// Sends one RTSP request on `s` and reads the answer: (status line, headers).
fn rtsp(
    s: &mut TcpStream,
    method: &str,
    url: &str,
    cseq: u32,
    auth: Option<&str>,
) -> (String, String) {
    let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap_or("").to_string(), head)
}

fn rtsp_conn(sim: &Sim) -> TcpStream {
    let s = TcpStream::connect(sim.addr("rtsp")).unwrap();
    s.set_read_timeout(Some(15 * S)).unwrap();
    s
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
    })
}

#[test]
fn every_endpoint_sends_the_body_mediamtx_sends() {
    let a = AuthServer::start(|_| (200, String::new()));
    let sim = Sim::start(&conf(&http_auth(&a), ""));
    sim.wait_ready("cam1", true, 3 * S);

    // API: Basic credentials; the password is also the token; raw query; no path, id or
    // user agent. Go's encoder escapes `&`, and the keys come in MediaMTX's order.
    let api = sim.addr("api");
    let r = req(
        &api,
        "GET",
        "/v3/paths/list?a=1&b=2",
        &[("Authorization", ALICE), ("User-Agent", "x/1")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let calls = a.calls();
    let c = calls
        .iter()
        .find(|c| c.body["action"] == "api")
        .expect("an api call");
    assert_eq!(c.method, "POST");
    assert_eq!(c.target, "/auth");
    assert_eq!(c.header("Content-Type"), "application/json");
    assert_eq!(c.header("User-Agent"), "Go-http-client/1.1");
    assert_eq!(
        c.raw,
        r#"{"ip":"127.0.0.1","user":"alice","password":"s3cret","token":"s3cret","action":"api","path":"","protocol":"","id":null,"query":"a=1\u0026b=2","userAgent":""}"#
    );

    // Metrics: a Bearer token that is not user:pass.
    let r = req(
        &sim.addr("metrics"),
        "GET",
        "/metrics",
        &[("Authorization", "Bearer tok123")],
    );
    assert_eq!(r.status, 200);
    let m = &a.bodies("metrics")[0];
    assert_eq!(
        m,
        &json!({"ip":"127.0.0.1","user":"","password":"","token":"tok123","action":"metrics",
                "path":"","protocol":"","id":null,"query":"","userAgent":""})
    );

    // Playback: `Bearer user:pass` is user and password; the path comes from the query.
    let pb = sim.addr("playback");
    let q = "/list?path=cam1&start=2026-01-01T00%3A00%3A00Z";
    let r = req(&pb, "GET", q, &[("Authorization", "Bearer bob:pw")]);
    assert_eq!(r.status, 404, "allowed, then no segments: {}", r.text());
    let p = &a.bodies("playback")[0];
    assert_eq!(
        p,
        &json!({"ip":"127.0.0.1","user":"bob","password":"pw","token":"pw","action":"playback",
                "path":"cam1","protocol":"","id":null,"query":"path=cam1&start=2026-01-01T00%3A00%3A00Z",
                "userAgent":""})
    );
    // An invalid path name is refused before any decision.
    let before = a.calls().len();
    assert_eq!(req(&pb, "GET", "/get?path=a%20b", &[]).status, 400);
    assert_eq!(req(&pb, "GET", "/get?path=a%2F..%2Fb", &[]).status, 400);
    assert_eq!(a.calls().len(), before, "no call for an invalid path name");

    // WHEP: a query token stays in `query` (it is not a token for HTTP protocols); the
    // id is the session's (`ID` header); PATCH and DELETE ask nothing.
    let w = sim.addr("webrtc");
    let r = offer(&w, "/cam1/whep?token=abc", &[("User-Agent", "probe/1")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let reads = a.bodies("read");
    let b = reads.iter().find(|b| b["protocol"] == "webrtc").unwrap();
    assert_eq!(b["id"], r.headers["id"].as_str());
    assert_eq!(
        (
            b["user"].as_str(),
            b["token"].as_str(),
            b["query"].as_str(),
            b["userAgent"].as_str()
        ),
        (Some(""), Some(""), Some("token=abc"), Some("probe/1"))
    );
    assert_eq!(
        (b["path"].as_str(), b["ip"].as_str()),
        (Some("cam1"), Some("127.0.0.1"))
    );
    let loc = r.headers["location"].clone();
    assert!(
        loc.ends_with("?token=abc"),
        "the Location repeats the query: {loc}"
    );
    let before = a.calls().len();
    let frag = "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host\r\n";
    let patch = http_try(
        &w,
        "PATCH",
        &loc,
        &[
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("If-Match", "*"),
        ],
        Some(frag.as_bytes()),
        15 * S,
    )
    .unwrap();
    assert_eq!(patch.status, 204, "{}", patch.text());
    assert_eq!(req(&w, "DELETE", &loc, &[]).status, 200);
    // The WHEP OPTIONS (not a preflight) asks, without an id; a preflight does not.
    assert_eq!(
        req(
            &w,
            "OPTIONS",
            "/cam1/whep",
            &[("Access-Control-Request-Method", "POST")]
        )
        .status,
        204
    );
    assert_eq!(
        a.calls().len(),
        before,
        "PATCH, DELETE and the preflight ask nothing"
    );
    assert_eq!(req(&w, "OPTIONS", "/cam1/whep", &[]).status, 204);
    let last = a.calls().last().unwrap().body.clone();
    assert_eq!(
        (last["protocol"].as_str(), last["id"].clone()),
        (Some("webrtc"), Value::Null)
    );

    // HLS: the 302 asks nothing and re-encodes the query (keys sorted).
    let h = sim.addr("hls");
    let before = a.calls().len();
    let r = req(&h, "GET", "/cam1/index.m3u8?z=1&a=x%20y", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers["location"],
        "/cam1/index.m3u8?a=x+y&cookieCheck=1&z=1"
    );
    assert_eq!(a.calls().len(), before, "the redirect asks nothing");
    // The playlist asks once, with the session's id and the query without cookieCheck.
    let r = req(
        &h,
        "GET",
        "/cam1/index.m3u8?z=1&cookieCheck=1&a=x%20y",
        &[("User-Agent", "hls.js")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let hls_reads: Vec<Value> = a
        .bodies("read")
        .into_iter()
        .filter(|b| b["protocol"] == "hls")
        .collect();
    assert_eq!(hls_reads.len(), 1);
    let hb = &hls_reads[0];
    assert_eq!(
        (hb["query"].as_str(), hb["userAgent"].as_str()),
        (Some("a=x+y&z=1"), Some("hls.js"))
    );
    assert!(is_uuid(&hb["id"]), "{hb}");
    let sessions = sim.api("GET", "/v3/hlssessions/list", None).json();
    assert_eq!(
        sessions["items"][0]["id"], hb["id"],
        "the id is the listed session's"
    );
    // The media playlist and segments ask nothing.
    let uri = r
        .text()
        .lines()
        .find(|l| l.starts_with("main_stream"))
        .unwrap()
        .to_string();
    let media = req(&h, "GET", &format!("/cam1/{uri}"), &[]);
    assert_eq!(media.status, 200);
    let seg = media
        .text()
        .lines()
        .find(|l| l.starts_with("main_seg"))
        .unwrap()
        .to_string();
    assert_eq!(req(&h, "GET", &format!("/cam1/{seg}"), &[]).status, 200);
    let hls_reads = a
        .bodies("read")
        .into_iter()
        .filter(|b| b["protocol"] == "hls")
        .count();
    assert_eq!(hls_reads, 1, "segments and media playlists ask nothing");

    // RTSP DESCRIBE: the `token` query parameter becomes the token (RTSP only); the id
    // is the connection's.
    let mut s = rtsp_conn(&sim);
    let url = format!("rtsp://{}/cam1?token=t9", sim.addr("rtsp"));
    let (status, head) = rtsp(&mut s, "DESCRIBE", &url, 1, None);
    assert_eq!(status, "RTSP/1.0 200 OK", "{head}");
    assert!(head.contains("Content-Type: application/sdp"), "{head}");
    let rb = a
        .bodies("read")
        .into_iter()
        .find(|b| b["protocol"] == "rtsp")
        .unwrap();
    assert_eq!(
        (
            rb["token"].as_str(),
            rb["query"].as_str(),
            rb["userAgent"].as_str(),
            rb["path"].as_str()
        ),
        (Some("t9"), Some("token=t9"), Some(""), Some("cam1"))
    );
    assert!(is_uuid(&rb["id"]));
}

#[test]
fn refusals_answer_as_each_server_does() {
    let a = AuthServer::start(|_| (401, "nope".into()));
    let sim = Sim::start_opts(
        &conf(&http_auth(&a), ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    let www = |r: &Resp| r.headers.get("www-authenticate").cloned();
    let basic = Some("Basic realm=\"mediamtx\"".to_string());
    let checks: Vec<(&str, Resp, Resp)> = vec![
        (
            "api",
            req(&sim.addr("api"), "GET", "/v3/paths/list", &[]),
            req(
                &sim.addr("api"),
                "GET",
                "/v3/paths/list",
                &[("Authorization", ALICE)],
            ),
        ),
        (
            "api, unknown route",
            req(&sim.addr("api"), "GET", "/nothing", &[]),
            req(
                &sim.addr("api"),
                "GET",
                "/nothing",
                &[("Authorization", "Bearer t")],
            ),
        ),
        (
            "metrics",
            req(&sim.addr("metrics"), "GET", "/metrics", &[]),
            req(
                &sim.addr("metrics"),
                "GET",
                "/metrics",
                &[("Authorization", "Bearer t")],
            ),
        ),
        (
            "playback",
            req(&sim.addr("playback"), "GET", "/list?path=cam1", &[]),
            req(
                &sim.addr("playback"),
                "GET",
                "/get?path=cam1",
                &[("Authorization", ALICE)],
            ),
        ),
        (
            "hls",
            req(
                &sim.addr("hls"),
                "GET",
                "/cam1/index.m3u8?cookieCheck=1",
                &[],
            ),
            req(
                &sim.addr("hls"),
                "GET",
                "/cam1/index.m3u8?cookieCheck=1",
                &[("Authorization", ALICE)],
            ),
        ),
        (
            "hls page",
            req(&sim.addr("hls"), "GET", "/cam1/", &[]),
            req(
                &sim.addr("hls"),
                "GET",
                "/cam1/",
                &[("Authorization", ALICE)],
            ),
        ),
        (
            "whep",
            offer(&sim.addr("webrtc"), "/cam1/whep", &[]),
            offer(
                &sim.addr("webrtc"),
                "/cam1/whep",
                &[("Authorization", "Bearer t")],
            ),
        ),
    ];
    for (what, without, with) in &checks {
        assert_eq!(without.status, 401, "{what} without credentials");
        assert_eq!(
            without.json(),
            json!({"status":"error","error":"authentication error"}),
            "{what}"
        );
        assert_eq!(www(without), basic, "{what}: asks for credentials");
        assert_eq!(with.status, 401, "{what} with credentials");
        assert_eq!(
            with.json(),
            json!({"status":"error","error":"authentication error"}),
            "{what}"
        );
        assert_eq!(
            www(with),
            None,
            "{what}: refused credentials are not asked again"
        );
    }
    sim.wait_log("[API] [conn 127.0.0.1:", 5 * S);
    sim.wait_log(
        "failed to authenticate: server replied with code 401: nope",
        5 * S,
    );
    let log = sim.log();
    for prefix in [
        "WAR [API] [conn 127.0.0.1:",
        "WAR [metrics] [conn ",
        "WAR [playback] [conn ",
        "WAR [HLS] [session ",
        "WAR [HLS] [conn ",
        "WAR [WebRTC] [session ",
    ] {
        assert!(log.contains(prefix), "{prefix} in\n{log}");
    }
    // A query token alone counts as no credential for HTTP protocols.
    let r = offer(&sim.addr("webrtc"), "/cam1/whep?token=x", &[]);
    assert_eq!((r.status, www(&r)), (401, basic.clone()));

    // RTSP: without credentials, 401 with the RTSP realm and the connection stays; with
    // refused credentials, 401 and the connection is closed.
    let url = format!("rtsp://{}/cam1", sim.addr("rtsp"));
    let mut s = rtsp_conn(&sim);
    let (status, head) = rtsp(&mut s, "DESCRIBE", &url, 1, None);
    assert_eq!(status, "RTSP/1.0 401 Unauthorized");
    assert!(
        head.contains("WWW-Authenticate: Basic realm=\"ipcam\""),
        "{head}"
    );
    assert!(head.contains("CSeq: 1"), "{head}");
    let (status, _) = rtsp(&mut s, "OPTIONS", &url, 2, None);
    assert_eq!(status, "RTSP/1.0 200 OK", "the connection is still open");
    let (status, head) = rtsp(&mut s, "DESCRIBE", &url, 3, Some("Basic YWxpY2U6czNjcmV0"));
    assert_eq!(status, "RTSP/1.0 401 Unauthorized");
    assert!(!head.contains("WWW-Authenticate"), "{head}");
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap_or(0),
        0,
        "the connection is closed"
    );
    let rb = a
        .bodies("read")
        .into_iter()
        .rfind(|b| b["protocol"] == "rtsp")
        .unwrap();
    assert_eq!(
        (rb["user"].as_str(), rb["password"].as_str()),
        (Some("alice"), Some("s3cret"))
    );

    // The path configuration is checked before asking: an unknown name asks nothing.
    let before = a.calls().len();
    assert_eq!(
        req(
            &sim.addr("hls"),
            "GET",
            "/nope/index.m3u8?cookieCheck=1",
            &[]
        )
        .status,
        500
    );
    assert_eq!(offer(&sim.addr("webrtc"), "/nope/whep", &[]).status, 400);
    let mut s = rtsp_conn(&sim);
    let nope = format!("rtsp://{}/nope", sim.addr("rtsp"));
    assert_eq!(
        rtsp(&mut s, "DESCRIBE", &nope, 1, None).0,
        "RTSP/1.0 400 Bad Request"
    );
    assert_eq!(a.calls().len(), before, "unconfigured names ask nothing");

    // The decision comes before readiness: a refused reader of a path that is not
    // ready gets 401, not 404.
    sim.ctl("POST", "/cameras/cam2/down?mode=closed");
    sim.wait_ready("cam2", false, 5 * S);
    assert_eq!(
        req(
            &sim.addr("hls"),
            "GET",
            "/cam2/index.m3u8?cookieCheck=1",
            &[]
        )
        .status,
        401
    );
    assert_eq!(offer(&sim.addr("webrtc"), "/cam2/whep", &[]).status, 401);
}

/// A 204 answer has no body, and the server may keep the connection open:
/// the request is allowed at once, not after the call's timeout.
#[test]
fn a_204_kept_alive_allows_at_once() {
    let a = AuthServer::start(|_| (204, String::new()));
    let sim = Sim::start(&conf(&http_auth(&a), "readTimeout: 20s\n"));
    let started = std::time::Instant::now();
    assert_eq!(sim.api("GET", "/v3/paths/list", None).status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "allowed only after {:?}",
        started.elapsed()
    );
    assert_eq!(a.bodies("api").len(), 1);
}

#[test]
fn exclusions_pass_without_a_call() {
    let a = AuthServer::start(|_| (401, String::new()));
    let excl = "authHTTPExclude:\n  - action: api\n  - action: read\n    path: cam2\n  - action: playback\n    path: ~^cam[0-9]$\n";
    let sim = Sim::start_opts(
        &conf(&http_auth(&a), excl),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    sim.wait_ready("cam2", true, 3 * S);
    // `api` is excluded for every client, with or without credentials.
    assert_eq!(sim.api("GET", "/v3/paths/list", None).status, 200);
    assert_eq!(
        req(
            &sim.addr("api"),
            "GET",
            "/v3/info",
            &[("Authorization", "Bearer wrong")]
        )
        .status,
        200
    );
    assert_eq!(offer(&sim.addr("webrtc"), "/cam2/whep", &[]).status, 201);
    assert_eq!(
        req(&sim.addr("playback"), "GET", "/list?path=cam1", &[]).status,
        404
    );
    assert!(a.calls().is_empty(), "excluded: {:?}", a.calls());
    // Not excluded: read on cam1, metrics.
    assert_eq!(offer(&sim.addr("webrtc"), "/cam1/whep", &[]).status, 401);
    assert_eq!(
        req(&sim.addr("metrics"), "GET", "/metrics", &[]).status,
        401
    );
    let actions: Vec<String> = a
        .calls()
        .iter()
        .map(|c| c.body["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["read", "metrics"]);
}

#[test]
fn an_unreachable_or_slow_auth_server_refuses() {
    // A port with no listener.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/auth");
    let sim = Sim::start_opts(
        &conf(&format!("authMethod: http\nauthHTTPAddress: {url}\n"), ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    let api = sim.addr("api");
    let r = req(&api, "GET", "/v3/paths/list", &[]);
    assert_eq!(
        (r.status, r.headers.contains_key("www-authenticate")),
        (401, true)
    );
    let r = req(&api, "GET", "/v3/paths/list", &[("Authorization", ALICE)]);
    assert_eq!(
        (r.status, r.headers.contains_key("www-authenticate")),
        (401, false)
    );
    sim.wait_log(
        &format!("failed to authenticate: HTTP request failed: Post \"{url}\": dial tcp {closed}: connect: connection refused"),
        5 * S,
    );
    drop(sim);

    // A server that accepts and never answers: refused after `readTimeout`.
    let hold = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    let addr = hold.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in hold.incoming().flatten() {
            h2.lock().unwrap().push(s);
        }
    });
    let sim = Sim::start_opts(
        &conf(
            &format!("authMethod: http\nauthHTTPAddress: http://{addr}/auth\nreadTimeout: 1s\n"),
            "",
        ),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let r = req(
        &sim.addr("metrics"),
        "GET",
        "/metrics",
        &[("Authorization", "Bearer t")],
    );
    assert_eq!(r.status, 401);
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    sim.wait_log("Client.Timeout exceeded while awaiting headers", 5 * S);
    assert!(!held.lock().unwrap().is_empty(), "the call was made");
}

#[test]
fn a_refused_attempt_pauses_and_a_request_without_credentials_does_not() {
    let a = AuthServer::start(|_| (403, String::new()));
    let sim = Sim::start_opts(
        &conf(&http_auth(&a), ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "1500")],
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let r = req(
        &sim.addr("api"),
        "GET",
        "/v3/info",
        &[("Authorization", ALICE)],
    );
    assert_eq!(r.status, 401);
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "paused: {:?}",
        t0.elapsed()
    );
    drop(sim);

    // With a 60 s pause, a request without credentials still answers within the
    // client's 15 s: it is not paused.
    let sim = Sim::start_opts(
        &conf(&http_auth(&a), ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "60000")],
            ..Default::default()
        },
    );
    let r = req(&sim.addr("playback"), "GET", "/list?path=cam1", &[]);
    assert_eq!(r.status, 401);
    assert!(r.headers.contains_key("www-authenticate"));
    assert!(
        !sim.log().contains("failed to authenticate"),
        "not logged either"
    );
}

#[test]
fn read_decisions_hold_the_path_manager() {
    // The auth server holds `read` decisions until released.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g2 = gate.clone();
    let a = AuthServer::start(move |b| {
        if b["action"] == "read" {
            let (m, cv) = &*g2;
            let mut open = m.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        (200, String::new())
    });
    let sim = Sim::start(&conf(&http_auth(&a), "authHTTPExclude:\n  - action: api\n"));
    sim.wait_ready("cam1", true, 3 * S);
    let w = sim.addr("webrtc");
    let reader = std::thread::spawn(move || offer(&w, "/cam1/whep", &[]).status);
    wait_until(5 * S, "the read call", || !a.bodies("read").is_empty());
    let api = sim.addr("api");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(req(&api, "GET", "/v3/paths/list", &[]).status);
    });
    // Other API routes are not held.
    assert_eq!(sim.api("GET", "/v3/info", None).status, 200);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "/v3/paths/list waits for the read decision"
    );
    {
        let (m, cv) = &*gate;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
    assert_eq!(rx.recv_timeout(15 * S).unwrap(), 200);
    assert_eq!(reader.join().unwrap(), 201);
}

#[test]
fn auth_keys_apply_at_start_and_on_api_changes() {
    let a = AuthServer::start(|b| {
        if b["token"] == "good" {
            (200, String::new())
        } else {
            (401, String::new())
        }
    });
    // Internal users by default: loopback may use the API.
    let sim = Sim::start_opts(
        &conf("", ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    let api = sim.addr("api");
    let bad = sim.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"authMethod":"http"}"#),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "'authHTTPAddress' is empty");
    let bad = sim.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"authMethod":"magic"}"#),
    );
    assert_eq!(bad.json()["error"], "invalid authMethod: 'magic'");
    let bad = sim.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"authHTTPExclude":[{"action":"look"}]}"#),
    );
    assert_eq!(bad.json()["error"], "invalid auth action: 'look'");
    let patch = format!(r#"{{"authMethod":"http","authHTTPAddress":"{}"}}"#, a.url());
    assert_eq!(
        sim.api("PATCH", "/v3/config/global/patch", Some(&patch))
            .status,
        200
    );
    // Every server restarted (same ports), and the API now asks the auth server.
    sim.wait_log("[API] listener is closing", 5 * S);
    assert_eq!(req(&api, "GET", "/v3/info", &[]).status, 401);
    assert_eq!(
        req(&api, "GET", "/v3/info", &[("Authorization", "Bearer good")]).status,
        200
    );
    let r = req(
        &api,
        "GET",
        "/v3/config/global/get",
        &[("Authorization", "Bearer good")],
    );
    assert_eq!(r.json()["authMethod"], "http");
    assert_eq!(a.bodies("api").len(), 3);
    drop(sim);

    // jwt is refused clearly at start.
    let mut sim = Sim::start_opts(
        &conf(
            "authMethod: jwt\nauthJWTJWKS: http://127.0.0.1:1/jwks\n",
            "",
        ),
        Opts {
            wait_ready: false,
            ..Default::default()
        },
    );
    assert_eq!(sim.wait_exit(10 * S).code(), Some(1));
    assert!(
        sim.log()
            .contains("ERR: authMethod 'jwt' is not supported by mediamtx-sim"),
        "{}",
        sim.log()
    );
}

#[test]
fn internal_users_with_credentials_and_addresses() {
    let users = concat!(
        "authInternalUsers:\n",
        "  - user: any\n    ips: ['127.0.0.1']\n    permissions:\n      - action: metrics\n",
        "  - user: admin\n    pass: pw\n    permissions:\n      - action: api\n",
        "      - action: read\n        path: cam1\n",
    );
    let sim = Sim::start_opts(
        &conf(users, ""),
        Opts {
            env: vec![("MTXSIM_AUTH_PAUSE_MS", "0")],
            ..Default::default()
        },
    );
    sim.wait_ready("cam1", true, 3 * S);
    let api = sim.addr("api");
    let r = req(&api, "GET", "/v3/info", &[]);
    assert_eq!(
        (r.status, r.headers.contains_key("www-authenticate")),
        (401, true)
    );
    assert_eq!(
        req(
            &api,
            "GET",
            "/v3/info",
            &[("Authorization", "Basic YWRtaW46cHc=")]
        )
        .status,
        200
    );
    let r = req(
        &api,
        "GET",
        "/v3/info",
        &[("Authorization", "Basic YWRtaW46YmFk")],
    );
    assert_eq!(
        (r.status, r.headers.contains_key("www-authenticate")),
        (401, false)
    );
    assert_eq!(
        req(&sim.addr("metrics"), "GET", "/metrics", &[]).status,
        200
    );
    let w = sim.addr("webrtc");
    assert_eq!(
        offer(&w, "/cam1/whep", &[("Authorization", "Basic YWRtaW46cHc=")]).status,
        201
    );
    assert_eq!(
        offer(&w, "/cam2/whep", &[("Authorization", "Basic YWRtaW46cHc=")]).status,
        401
    );
    assert_eq!(offer(&w, "/cam1/whep", &[]).status, 401);
}
