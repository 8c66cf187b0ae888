//! The live endpoints' HTTP rules (docs: WebRTC/WHEP and HLS of MediaMTX v1.20.1): status
//! codes, headers, `Location`, `ETag`, `Link`, cookie redirect, session binding, CORS and
//! the preflight, `/v3/webrtcsessions` and the metrics. The media itself is checked by the
//! browser tests (`browser.rs`).

use crate::harness::*;
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn conf(extra: &str) -> String {
    format!(
        "{LISTENERS}webrtcLocalUDPAddress: 127.0.0.1:0\nhlsVariant: fmp4\nhlsSegmentCount: 3\n{extra}\
         paths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    )
}

fn post_offer(w: &str, path: &str, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![("Content-Type", "application/sdp")];
    h.extend_from_slice(extra);
    http_try(w, "POST", path, &h, Some(OFFER.as_bytes()), 5 * S).expect("an answer")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

#[test]
fn whep_session_shape_list_patch_delete_and_metrics() {
    let sim = Sim::start(&conf(""));
    sim.wait_ready("cam1", true, 3 * S);
    let w = sim.addr("webrtc");
    let r = post_offer(&w, "/cam1/whep?token=x", &[("User-Agent", "probe/1")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let h = &r.headers;
    assert_eq!(h["content-type"], "application/sdp");
    assert_eq!(h["etag"], "*");
    assert_eq!(h["accept-patch"], "application/trickle-ice-sdpfrag");
    assert!(is_uuid(&h["id"]), "{h:?}");
    let loc = &h["location"];
    let secret = loc
        .strip_prefix("/cam1/whep/")
        .and_then(|s| s.strip_suffix("?token=x"))
        .unwrap_or_else(|| panic!("Location {loc}"));
    assert!(is_uuid(secret) && secret != h["id"]);
    assert!(h["access-control-expose-headers"].contains("Location"));
    let answer = r.text();
    assert!(answer.starts_with("v=0\r\n"), "{answer}");
    assert!(
        answer.contains("H264/90000") && answer.contains("a=sendonly"),
        "{answer}"
    );
    assert!(
        answer.contains("typ host"),
        "the 201 carries the server's candidate"
    );

    // The session is a reader of the path, listed and counted.
    let list = sim.api("GET", "/v3/webrtcsessions/list", None).json();
    assert_eq!(list["itemCount"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], h["id"].as_str());
    assert_eq!(
        (
            &item["path"],
            &item["state"],
            &item["query"],
            &item["userAgent"]
        ),
        (
            &"cam1".into(),
            &"read".into(),
            &"token=x".into(),
            &"probe/1".into()
        )
    );
    assert_eq!(item["peerConnectionEstablished"], false);
    let id = item["id"].as_str().unwrap().to_string();
    let got = sim.api("GET", &format!("/v3/webrtcsessions/get/{id}"), None);
    assert_eq!(got.status, 200);
    let p = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(p["readers"][0]["type"], "webRTCSession");
    let m = http(
        &sim.addr("metrics"),
        "GET",
        "/metrics?type=webrtc_sessions",
        None,
    )
    .text();
    assert!(
        m.contains(&format!(
            "webrtc_sessions{{id=\"{id}\",path=\"cam1\",remoteAddr=\"{}\",state=\"read\"}} 1",
            item["remoteAddr"].as_str().unwrap()
        )),
        "{m}"
    );
    let m = http(&sim.addr("metrics"), "GET", "/metrics?type=paths", None).text();
    assert!(
        m.contains("paths_readers{name=\"cam1\",readerType=\"webRTCSession\",state=\"ready\"} 1"),
        "{m}"
    );

    // Trickle ICE.
    let frag = b"a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host\r\n";
    let patch = |ct: &str, path: &str| {
        http_try(&w, "PATCH", path, &[("Content-Type", ct)], Some(frag), S)
            .unwrap()
            .status
    };
    assert_eq!(patch("application/trickle-ice-sdpfrag", loc), 204);
    assert_eq!(patch("text/plain", loc), 400);
    let unknown = "/cam1/whep/00000000-0000-4000-8000-000000000000";
    assert_eq!(patch("application/trickle-ice-sdpfrag", unknown), 404);

    // DELETE closes it; a second DELETE finds nothing.
    assert_eq!(http(&w, "DELETE", loc, None).status, 200);
    wait_until(3 * S, "session gone", || {
        sim.api("GET", "/v3/webrtcsessions/list", None).json()["itemCount"] == 0
    });
    assert_eq!(http(&w, "DELETE", loc, None).status, 404);
    let m = http(
        &sim.addr("metrics"),
        "GET",
        "/metrics?type=webrtc_sessions",
        None,
    )
    .text();
    assert!(
        m.starts_with("# WebRTC sessions\nwebrtc_sessions 0\n"),
        "{m}"
    );

    // Kick through the API.
    let r = post_offer(&w, "/cam1/whep", &[]);
    let id = r.headers["id"].clone();
    let k = sim.api("POST", &format!("/v3/webrtcsessions/kick/{id}"), None);
    assert_eq!(k.status, 200);
    wait_until(3 * S, "kicked session gone", || {
        sim.api("GET", "/v3/webrtcsessions/list", None).json()["itemCount"] == 0
    });
    assert_eq!(
        sim.api("GET", &format!("/v3/webrtcsessions/get/{id}"), None)
            .status,
        404
    );
}

#[test]
fn whep_errors_and_methods() {
    let sim = Sim::start_opts(
        &conf(""),
        Opts {
            faults: Some(r#"{"cameras": {"cam1": "closed"}}"#),
            ..Default::default()
        },
    );
    let w = sim.addr("webrtc");
    let r = post_offer(&w, "/cam1/whep", &[]);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, "no stream is available on path 'cam1'".into())
    );
    let r = post_offer(&w, "/nosuch/whep", &[]);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "path 'nosuch' is not configured".into())
    );
    for m in ["GET", "HEAD", "PUT"] {
        assert_eq!(http(&w, m, "/cam1/whep", None).status, 405, "{m}");
    }
    let r = http(&w, "OPTIONS", "/cam1/whep", None);
    assert_eq!(r.status, 204);
    assert_eq!(http(&w, "GET", "/cam1", None).status, 302);
    assert_eq!(http(&w, "GET", "/cam1/", None).status, 200);
}

#[test]
fn cors_and_preflight_follow_the_allowed_origins() {
    // Default `*`.
    let sim = Sim::start(&conf(""));
    sim.wait_ready("cam1", true, 3 * S);
    let w = sim.addr("webrtc");
    let pre = [
        ("Origin", "http://127.0.0.1:9000"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let r = http_try(&w, "OPTIONS", "/cam1/whep", &pre, None, S).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "OPTIONS, GET, POST, PATCH, DELETE"
    );
    assert!(r.headers["access-control-allow-headers"].contains("Content-Type"));
    let hls = sim.addr("hls");
    let r = http_try(&hls, "OPTIONS", "/cam1/index.m3u8", &pre, None, S).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-methods"], "OPTIONS, GET");
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    // Without the preflight header, OPTIONS is not an HLS route.
    assert_eq!(http(&hls, "OPTIONS", "/cam1/index.m3u8", None).status, 404);
    drop(sim);

    // A list: a matching origin is echoed, another gets no CORS header.
    let sim = Sim::start(&conf(
        "webrtcAllowOrigins: ['http://*.example.org', 'http://127.0.0.1:9000']\n\
         hlsAllowOrigins: ['http://127.0.0.1:9000']\n",
    ));
    sim.wait_ready("cam1", true, 3 * S);
    for (server, path) in [("webrtc", "/cam1/whep"), ("hls", "/cam1/index.m3u8")] {
        let a = sim.addr(server);
        let ok = http_try(&a, "OPTIONS", path, &pre, None, S).unwrap();
        assert_eq!(
            ok.headers["access-control-allow-origin"],
            "http://127.0.0.1:9000"
        );
        let other = [
            ("Origin", "http://evil.test"),
            ("Access-Control-Request-Method", "POST"),
        ];
        let no = http_try(&a, "OPTIONS", path, &other, None, S).unwrap();
        assert!(!no.headers.contains_key("access-control-allow-origin"));
    }
    let w = sim.addr("webrtc");
    let wild = [
        ("Origin", "http://cams.example.org"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let r = http_try(&w, "OPTIONS", "/cam1/whep", &wild, None, S).unwrap();
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://cams.example.org"
    );
}

/// Segment numbers and program date-times follow the wall clock, 2 s segments, the first
/// playlist only once two segments exist, no-cache playlists, and sessions bound to
/// their path.
#[test]
fn hls_playlists_follow_the_wall_clock() {
    let sim = Sim::start(&conf(""));
    sim.wait_ready("cam1", true, 3 * S);
    let hls = sim.addr("hls");
    let t0 = Instant::now();
    let r = http_try(
        &hls,
        "GET",
        "/cam1/index.m3u8?cookieCheck=1",
        &[],
        None,
        10 * S,
    )
    .unwrap();
    let waited = t0.elapsed();
    assert_eq!(r.status, 200);
    // Two complete 2 s segments after the next keyframe: between 4 and 6 s (+ slack for
    // a loaded machine).
    assert!(
        waited >= Duration::from_millis(3900) && waited < Duration::from_millis(8000),
        "{waited:?}"
    );
    assert_eq!(r.headers["cache-control"], "private, no-cache");
    let cookie = &r.headers["set-cookie"];
    assert!(cookie.starts_with("hlsSession="), "{cookie}");
    let mv = r.text();
    assert!(mv.contains("CODECS=\"avc1.42c01e\""), "{mv}");
    assert!(mv.contains("RESOLUTION=640x360") && mv.contains("FRAME-RATE=25.000"));
    let uri = mv.lines().find(|l| l.starts_with("main_stream")).unwrap();
    let media = http(&hls, "GET", &format!("/cam1/{uri}"), None);
    assert_eq!(media.status, 200);
    assert_eq!(media.headers["cache-control"], "no-cache");
    let text = media.text();
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    let seq: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let first_seg: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("main_seg"))
        .and_then(|l| l.split('.').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seq, first_seg);
    // Segment N starts at Unix time 2N s.
    let pdt = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .unwrap();
    let pdt = chrono_secs(pdt);
    assert_eq!(pdt, first_seg as f64 * 2.0, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - pdt < 12.0, "recent segments: {now} vs {pdt}");
    // The session is bound to its path: another path's playlist with it is refused.
    let id = uri.split("session=").nth(1).unwrap();
    let other = http(
        &hls,
        "GET",
        &format!("/cam2/main_stream.m3u8?session={id}"),
        None,
    );
    assert_eq!(other.status, 401);
    // A segment outside the window: 404.
    let r = http(
        &hls,
        "GET",
        &format!("/cam1/main_seg1.mp4?session={id}"),
        None,
    );
    assert_eq!(r.status, 404);
}

/// `2026-11-29T02:00:04.000+01:00` as Unix seconds.
fn chrono_secs(s: &str) -> f64 {
    let (date, rest) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (time, off) = rest.split_at(12);
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let o: Vec<i64> = off[1..].split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (proleptic Gregorian).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
        - (sign * (o[0] * 3600 + o[1] * 60)) as f64
}

/// `hlsEncryption` / `webrtcEncryption`: HLS and WHEP over HTTPS with the
/// configured pair (files relative to the working directory); plain HTTP on
/// those ports gets Go's one-line 400; a pair that cannot be read stops the
/// process at start with Go's file error, exit 1.
#[test]
fn hls_and_whep_over_https_with_the_configured_pair() {
    // An authority, and the certificate it signs for `nvr.test`.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["nvr.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
    let sim = Sim::start_in(
        dir,
        &conf("hlsEncryption: yes\nwebrtcEncryption: yes\nwebrtcServerKey: server.key\nwebrtcServerCert: server.crt\n"),
        Opts::default(),
    );
    sim.wait_ready("cam1", true, 3 * S);
    for server in ["hls", "webrtc"] {
        let plain = http(&sim.addr(server), "GET", "/cam1/", None);
        assert_eq!(plain.status, 400, "{server}");
        assert_eq!(
            plain.text(),
            "Client sent an HTTP request to an HTTPS server.\n"
        );
    }
    let (status, body) = https(
        &sim.addr("hls"),
        ca.der(),
        "GET",
        "/cam1/index.m3u8?cookieCheck=1",
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("#EXTM3U"), "{body}");
    let (status, body) = https(&sim.addr("webrtc"), ca.der(), "POST", "/cam1/whep", OFFER);
    assert_eq!(status, 201, "{body}");
    assert!(body.starts_with("v=0\r\n"), "{body}");

    // The default pair (server.key, server.crt) is not there: no start.
    let mut sim = Sim::start_opts(
        &conf("hlsEncryption: yes\n"),
        Opts {
            wait_ready: false,
            ..Default::default()
        },
    );
    let st = sim.wait_exit(5 * S);
    assert_eq!(st.code(), Some(1));
    wait_until(2 * S, "ERR line", || sim.log().contains("ERR"));
    assert!(
        sim.log()
            .contains(" ERR open server.crt: no such file or directory")
            && !sim.log().contains("[HLS] started"),
        "{}",
        sim.log()
    );
}

/// One HTTPS request to `addr` as `nvr.test`, trusting authority `ca`: the
/// status and the body.
fn https(
    addr: &str,
    ca: &rustls::pki_types::CertificateDer<'static>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("nvr.test").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    // The first playlist of a muxer waits for two whole segments (4 to 6 s,
    // more on a loaded machine): the same 15 s as the plain `http` helper.
    tcp.set_read_timeout(Some(15 * S)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let content = if method == "POST" {
        format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        String::new()
    };
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: nvr.test\r\n{content}Connection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut answer = Vec::new();
    if let Err(e) = tls.read_to_end(&mut answer) {
        // A server that closes without TLS's close_notify, as Go's does
        // after `Connection: close`, is fine once the answer is in.
        assert!(!answer.is_empty(), "HTTPS {method} {path}: {e}");
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `webrtcICEServers2` reaches the client as `Link` headers, one per server
/// (`clientOnly` ones too), on the 201 of a WHEP POST and on a plain
/// `OPTIONS`; a server with a username carries the username and credential,
/// quoted with `\` and `"` escaped. None configured: no `Link` at all.
#[test]
fn whep_link_headers_list_the_ice_servers() {
    let sim = Sim::start(&conf(concat!(
        "webrtcICEServers2:\n",
        "  - url: stun:stun.example.net:3478\n",
        "  - url: turn:turn.example.net:3478?transport=tcp\n",
        "    username: op\"s\\1\n",
        "    password: p@ss\n",
        "    clientOnly: yes\n",
    )));
    sim.wait_ready("cam1", true, 3 * S);
    let w = sim.addr("webrtc");
    let expected = [
        "<stun:stun.example.net:3478>; rel=\"ice-server\"".to_string(),
        concat!(
            "<turn:turn.example.net:3478?transport=tcp>; rel=\"ice-server\"; ",
            "username=\"op\\\"s\\\\1\"; credential=\"p@ss\"; credential-type=\"password\""
        )
        .to_string(),
    ];
    let links = |r: Resp| {
        (
            r.status,
            r.all("link").iter().map(|l| l.to_string()).collect(),
        )
    };
    let options = |addr: &str| http_try(addr, "OPTIONS", "/cam1/whep", &[], None, 15 * S);
    let post: (u16, Vec<String>) = links(post_offer(&w, "/cam1/whep", &[]));
    assert_eq!(post, (201, expected.to_vec()));
    let plain: (u16, Vec<String>) = links(options(&w).expect("an answer"));
    assert_eq!(plain, (204, expected.to_vec()));

    let bare = Sim::start(&conf(""));
    let none: (u16, Vec<String>) = links(options(&bare.addr("webrtc")).expect("an answer"));
    assert_eq!(none, (204, Vec::new()));
}

/// Each camera shows its own name and code (sim/README.md, "The live view's media"):
/// rendered with ffmpeg into a fresh cache, then served by HLS and written by the
/// recorder (live recordings), each camera's picture carrying its own code, never
/// another camera's; the shared picture (code 0) only until the render is ready.
#[test]
fn each_camera_shows_its_own_picture_in_hls_and_recordings() {
    if !have_ffmpeg() {
        eprintln!("SKIPPED: ffmpeg not found (scripts/setup installs it)");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let sim = Sim::start_opts(
        &format!(
            "{LISTENERS}webrtcLocalUDPAddress: 127.0.0.1:0\nhlsVariant: fmp4\nhlsSegmentCount: 3\n\
             pathDefaults:\n  record: yes\n  recordSegmentDuration: 2s\n  recordPath: ./rec/%path/%s-%f\n\
             paths:\n  cam_1:\n    source: rtsp://10.0.0.1/s\n  cam_2:\n    source: rtsp://10.0.0.2/s\n"
        ),
        Opts {
            env: vec![
                ("MTXSIM_LIVE_RECORDINGS", "1"),
                ("MTXSIM_CACHE_DIR", cache.path().to_str().unwrap()),
            ],
            ..Default::default()
        },
    );
    // Rendered in the background, one camera after the other.
    wait_until(90 * S, "both cameras' own pictures", || {
        ["cam_1", "cam_2"]
            .iter()
            .all(|c| sim.path_state(c)["picture"]["own"] == true)
    });
    let code = |c: &str| sim.path_state(c)["picture"]["code"].as_u64().unwrap();
    let (c1, c2) = (code("cam_1"), code("cam_2"));
    assert!(c1 != 0 && c2 != 0 && c1 != c2, "{c1} {c2}");
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        2,
        "one cached render per camera"
    );

    let hls = sim.addr("hls");
    for (cam, expected) in [("cam_1", c1), ("cam_2", c2)] {
        let mv = http(
            &hls,
            "GET",
            &format!("/{cam}/index.m3u8?cookieCheck=1"),
            None,
        );
        assert_eq!(mv.status, 200, "{}", mv.text());
        let uri = mv
            .text()
            .lines()
            .find(|l| l.starts_with("main_stream"))
            .unwrap()
            .to_string();
        let session = uri.split("session=").nth(1).unwrap().to_string();
        let playlist = http(&hls, "GET", &format!("/{cam}/{uri}"), None).text();
        let segment = playlist
            .lines()
            .rfind(|l| l.starts_with("main_seg"))
            .unwrap_or_else(|| panic!("{playlist}"));
        let mut file = http(
            &hls,
            "GET",
            &format!("/{cam}/main_init.mp4?session={session}"),
            None,
        )
        .body;
        file.extend(http(&hls, "GET", &format!("/{cam}/{segment}"), None).body);
        let at = sim.path().join(format!("{cam}-hls.mp4"));
        std::fs::write(&at, file).unwrap();
        let frame = first_frame_gray(&at).expect("ffmpeg decodes the HLS segment");
        assert_eq!(picture_code(&frame), expected, "{cam} over HLS ({segment})");
    }

    // The recorder switched to the camera's picture at a keyframe: the newest
    // finished segment shows it.
    for (cam, expected) in [("cam_1", c1), ("cam_2", c2)] {
        let done = sim.path_state(cam)["segments_completed"].as_u64().unwrap();
        wait_until(10 * S, "two more segments", || {
            sim.path_state(cam)["segments_completed"].as_u64().unwrap() >= done + 2
        });
        let mut files = files_under(&sim.path().join(format!("rec/{cam}")));
        files.sort();
        let newest_done = &files[files.len() - 2];
        let frame = first_frame_gray(newest_done).expect("ffmpeg decodes the segment");
        assert_eq!(picture_code(&frame), expected, "{cam}: {newest_done:?}");
    }
}
