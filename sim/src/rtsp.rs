//! The RTSP listener: `OPTIONS` and `DESCRIBE` with MediaMTX's checks and
//! authentication (docs/mediamtx.md §b2); no media is served (`SETUP`, `PLAY` and the
//! rest answer 501).

use crate::auth;
use crate::http::uuid_v4;
use crate::sim::{Check, Sim};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections forever, one task each.
pub async fn serve(sim: Arc<Sim>, l: TcpListener) {
    loop {
        if let Ok((s, peer)) = l.accept().await {
            tokio::spawn(conn(sim.clone(), s, peer));
        }
    }
}

struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request (head and body); None at EOF or on garbage.
async fn read_req(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Req> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let url = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut rest = buf.split_off(end + 4);
    while rest.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    *buf = rest.split_off(len);
    Some(Req {
        method,
        url,
        headers,
    })
}

fn response(req: &Req, status: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut out = format!("RTSP/1.0 {status}\r\n");
    if let Some(c) = req.header("CSeq") {
        out.push_str(&format!("CSeq: {c}\r\n"));
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Server: gortsplib\r\n");
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// The path and the query of an `rtsp://host:port/path?query` URL.
fn path_and_query(url: &str) -> (String, String) {
    let after = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let rest = after.find('/').map(|i| &after[i..]).unwrap_or("");
    let (p, q) = rest.split_once('?').unwrap_or((rest, ""));
    (crate::http::path_decode(p), q.to_string())
}

async fn conn(sim: Arc<Sim>, mut s: TcpStream, peer: SocketAddr) {
    let id = uuid_v4();
    let mut buf = Vec::new();
    while let Some(req) = read_req(&mut s, &mut buf).await {
        let (out, close) = match req.method.as_str() {
            "OPTIONS" => (
                response(
                    &req,
                    "200 OK",
                    &[(
                        "Public",
                        "DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN"
                            .into(),
                    )],
                    "",
                ),
                false,
            ),
            "DESCRIBE" => describe(&sim, &req, &id, peer).await,
            _ => (response(&req, "501 Not Implemented", &[], ""), false),
        };
        if s.write_all(&out).await.is_err() || close {
            return;
        }
    }
}

/// `DESCRIBE`: the path configuration (400), the `read` decision (401), readiness
/// (404), then the SDP of the camera's H.264 track.
async fn describe(sim: &Sim, req: &Req, id: &str, peer: SocketAddr) -> (Vec<u8>, bool) {
    let (path, query) = path_and_query(&req.url);
    let Some(name) = path.strip_prefix('/').filter(|n| !n.is_empty()) else {
        return (response(req, "400 Bad Request", &[], ""), false);
    };
    if let Check::NotConfigured = sim.check_path(name) {
        return (response(req, "400 Bad Request", &[], ""), false);
    }
    let areq = auth::Request {
        action: auth::Action::Read,
        path: name.to_string(),
        query,
        protocol: "rtsp",
        id: Some(id.to_string()),
        user_agent: String::new(),
        creds: auth::Credentials::from_rtsp(req.header("Authorization")),
        ip: peer.ip(),
    };
    let author = format!("[RTSP] [conn {peer}]");
    if let Err(refusal) = auth::check(&sim.conf(), &areq, &author, Some(&sim.path_manager)).await {
        // Without credentials the client is asked for them and the connection stays;
        // refused credentials close it.
        return if refusal.ask {
            let h = [("WWW-Authenticate", "Basic realm=\"ipcam\"".to_string())];
            (response(req, "401 Unauthorized", &h, ""), false)
        } else {
            (response(req, "401 Unauthorized", &[], ""), true)
        };
    }
    if !matches!(sim.check_path(name), Check::Ready) {
        return (response(req, "404 Not Found", &[], ""), false);
    }
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Stream\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
               m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n\
               a=fmtp:96 packetization-mode=1\r\n";
    let h = [
        ("Content-Base", format!("{}/", req.url)),
        ("Content-Type", "application/sdp".to_string()),
    ];
    (response(req, "200 OK", &h, sdp), false)
}
