//! One test per item of docs/mediamtx.md §0 "Surprises first" that applies to the stand-in.

use crate::harness::*;
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn conf(paths: &str) -> String {
    format!("{LISTENERS}readTimeout: 2s\npaths:\n{paths}")
}

const CAM1: &str = "  cam1:\n    source: rtsp://10.0.0.1:554/stream\n";

fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// §0.1: API, metrics and playback are off by default; API and metrics answer loopback only.
#[test]
fn s01_api_metrics_playback_off_by_default_and_loopback_only() {
    let sim = Sim::start(
        "rtspAddress: 127.0.0.1:0\nhlsAddress: 127.0.0.1:0\nwebrtcAddress: 127.0.0.1:0\n",
    );
    let l = sim.state()["listeners"].clone();
    for s in ["api", "metrics", "playback"] {
        assert!(l.get(s).is_none(), "{s} must be off by default: {l}");
    }
    assert!(l.get("rtsp").is_some() && l.get("hls").is_some() && l.get("webrtc").is_some());
    assert!(!sim.log().contains("[API]"));

    let sim = Sim::start(
        "api: yes\napiAddress: 0.0.0.0:0\nmetrics: yes\nmetricsAddress: 0.0.0.0:0\n\
         rtsp: no\nhls: no\nwebrtc: no\n",
    );
    let api_port = sim.addr("api").rsplit(':').next().unwrap().to_string();
    let met_port = sim.addr("metrics").rsplit(':').next().unwrap().to_string();
    let r = http(&format!("127.0.0.1:{api_port}"), "GET", "/v3/info", None);
    assert_eq!(r.status, 200);
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: skipping the remote half");
        return;
    };
    let r = http(&format!("{ip}:{api_port}"), "GET", "/v3/info", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "authentication error");
    let r = http(&format!("{ip}:{met_port}"), "GET", "/metrics", None);
    assert_eq!(r.status, 401);
}

/// §0.2: bare metric names, no HELP/TYPE, `# Paths` headers, unlabelled zeros when empty.
#[test]
fn s02_metric_names_and_format() {
    let sim = Sim::start_opts(
        &conf(&format!("{CAM1}  cam2:\n    source: rtsp://10.0.0.2/s\n")),
        Opts {
            faults: Some(r#"{"cameras": {"cam2": "closed"}}"#),
            ..Default::default()
        },
    );
    sim.wait_ready("cam1", true, 5 * S);
    let m = http(&sim.addr("metrics"), "GET", "/metrics", None).text();
    for want in [
        "# Paths\n",
        "paths{name=\"cam1\",state=\"ready\"} 1\n",
        "paths{name=\"cam2\",state=\"notReady\"} 1\n",
        "paths_readers{name=\"cam2\",readerType=\"\",state=\"notReady\"} 0\n",
        "paths_inbound_bytes{name=\"cam2\",state=\"notReady\"} 0\n",
        "# Paths (deprecated)\n",
        "paths_bytes_received{name=\"cam1\",state=\"ready\"} ",
        "# HLS sessions\nhls_sessions 0\n",
        "# HLS muxers\nhls_muxers 0\n",
        "# RTSP connections\nrtsp_conns 0\n",
        "# RTSP sessions\nrtsp_sessions 0\n",
        "# WebRTC sessions\nwebrtc_sessions 0\n",
    ] {
        assert!(m.contains(want), "missing {want:?} in:\n{m}");
    }
    assert!(!m.contains("mediamtx_") && !m.contains("# HELP") && !m.contains("# TYPE"));
    assert!(!m.contains("_total"));
    let inbound: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("paths_inbound_bytes{name=\"cam1\",state=\"ready\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(inbound > 0);

    let empty = Sim::start(&format!("{LISTENERS}paths:\n  all_others:\n"));
    let m = http(&empty.addr("metrics"), "GET", "/metrics", None).text();
    assert!(m.starts_with(
        "# Paths\npaths 0\npaths_inbound_bytes 0\npaths_outbound_bytes 0\npaths_inbound_frames_in_error 0\n\n\
         # Paths (deprecated)\npaths_bytes_received 0\npaths_bytes_sent 0\npaths_readers 0\n\n"
    ), "{m}");
    let only = http(
        &empty.addr("metrics"),
        "GET",
        "/metrics?type=hls_muxers",
        None,
    )
    .text();
    assert!(
        only.starts_with("# HLS muxers\n") && !only.contains("# Paths"),
        "{only}"
    );
}

fn start_fails(yaml: &str) -> (i32, String) {
    let mut sim = Sim::start_opts(
        yaml,
        Opts {
            wait_ready: false,
            ..Default::default()
        },
    );
    let st = sim.wait_exit(5 * S);
    // Let the reader thread drain stdout.
    wait_until(2 * S, "ERR line", || sim.log().contains("ERR"));
    (st.code().unwrap_or(-1), sim.log())
}

/// §0.3: recordPath needs %path and %s or all of %Y %m %d %H %M %S (and %f with
/// playback), checked on every entry even with record: no; exit 1 at start, 400 via API.
#[test]
fn s03_record_path_validation() {
    for (yaml, msg) in [
        (
            "pathDefaults:\n  recordPath: /rec/%Y-%m-%d/%H-%M-%S-cam\n",
            "'recordPath' must contain %path",
        ),
        (
            "paths:\n  cam:\n    record: no\n    recordPath: /rec/%path/%Y\n",
            "'recordPath' must contain either %s or %Y %m %d %H %M %S",
        ),
        (
            "playback: yes\npathDefaults:\n  recordPath: /rec/%path/%s\n",
            "'recordPath' must contain %f",
        ),
        (
            "pathDefaults:\n  recordSegmentDuration: 2h\n  recordDeleteAfter: 1h\n",
            "",
        ),
    ] {
        let (code, log) = start_fails(&format!("rtsp: no\nhls: no\nwebrtc: no\n{yaml}"));
        if msg.is_empty() {
            assert_eq!(code, 1);
            assert!(
                log.contains(
                    "ERR: 'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'"
                ),
                "{log}"
            );
            continue;
        }
        assert_eq!(code, 1, "{log}");
        assert!(
            log.lines().any(|l| l == format!("ERR: {msg}")),
            "{msg}: {log}"
        );
    }
    let sim = Sim::start(&conf(CAM1));
    let r = sim.api(
        "POST",
        "/v3/config/paths/add/cam9",
        Some(r#"{"recordPath":"/r/%Y%m%d%H%M%S"}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"error","error":"'recordPath' must contain %path"})
    );
}

/// §0.4: recordDeleteAfter defaults to 1d: older segments (by the start time in the file
/// name) are deleted at startup; 0s disables the cleaner.
#[test]
fn s04_record_delete_after_default_deletes_old_files() {
    let make = |dir: &std::path::Path, ago: chrono::Duration| {
        let t = chrono::Local::now() - ago;
        let f = dir.join(format!(
            "recordings/cam1/{}.mp4",
            t.format("%Y-%m-%d_%H-%M-%S-%6f")
        ));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"x").unwrap();
        f
    };
    let dir = tempfile::tempdir().unwrap();
    let old = make(dir.path(), chrono::Duration::hours(25));
    let young = make(dir.path(), chrono::Duration::hours(23));
    let other = dir.path().join("recordings/cam1/notes.txt");
    std::fs::write(&other, b"x").unwrap();
    let sim = Sim::start_in(dir, &conf("  cam1:\n"), Opts::default());
    wait_until(5 * S, "old segment deleted", || !old.exists());
    assert!(young.exists() && other.exists());
    drop(sim);

    let dir = tempfile::tempdir().unwrap();
    let old = make(dir.path(), chrono::Duration::hours(49));
    let sim = Sim::start_in(
        dir,
        &format!("{LISTENERS}pathDefaults:\n  recordDeleteAfter: 0s\npaths:\n  cam1:\n"),
        Opts::default(),
    );
    sim.state();
    std::thread::sleep(Duration::from_millis(500));
    assert!(old.exists(), "recordDeleteAfter: 0s must keep files");
}

/// §0.5: a configured static path whose camera is down answers 200 with ready:false;
/// names that exist only through all_others answer 404.
#[test]
fn s05_down_static_path_is_200_not_ready_and_unknown_is_404() {
    let sim = Sim::start_opts(
        &conf(&format!("{CAM1}  all_others:\n")),
        Opts {
            faults: Some(r#"{"cameras": {"cam1": "closed"}}"#),
            ..Default::default()
        },
    );
    sim.wait_log(
        "[path cam1] [RTSP source] dial tcp 10.0.0.1:554: connect: connection refused",
        3 * S,
    );
    let r = sim.api("GET", "/v3/paths/get/cam1", None);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["ready"], false);
    assert_eq!(j["available"], false);
    assert_eq!(j["readyTime"], serde_json::Value::Null);
    assert_eq!(
        j["source"],
        serde_json::json!({"type":"rtspSource","id":""})
    );
    assert_eq!(j["tracks"], serde_json::json!([]));
    assert_eq!(j["tracks2"], serde_json::json!([]));
    assert_eq!(j["readers"], serde_json::json!([]));
    assert_eq!(j["inboundBytes"], 0);
    let r = sim.api("GET", "/v3/paths/get/cam77", None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"error","error":"path not found"})
    );
    let list = sim.api("GET", "/v3/paths/list", None).json();
    assert_eq!(list["itemCount"], 1);
}

/// §0.6: online is true for a static source even while down, onlineTime is the zero time
/// until the first connection and keeps the last value after an outage; ready ==
/// available.
#[test]
fn s06_online_true_quirk() {
    let sim = Sim::start_opts(
        &conf(&format!("{CAM1}  pub:\n")),
        Opts {
            faults: Some(r#"{"cameras": {"cam1": "closed"}}"#),
            ..Default::default()
        },
    );
    let j = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(
        (j["online"].clone(), j["ready"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(j["onlineTime"], "0001-01-01T00:00:00Z");
    let p = sim.api("GET", "/v3/paths/get/pub", None).json();
    assert_eq!(p["online"], false);
    assert_eq!(p["onlineTime"], serde_json::Value::Null);
    assert_eq!(p["source"], serde_json::Value::Null);

    sim.ctl("POST", "/cameras/cam1/up");
    sim.wait_ready("cam1", true, 8 * S);
    let j = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(j["ready"], j["available"]);
    assert_eq!(j["readyTime"], j["availableTime"]);
    let online_time = j["onlineTime"].clone();
    assert_ne!(online_time, "0001-01-01T00:00:00Z");
    assert_eq!(j["tracks"], serde_json::json!(["H264"]));
    // Field order as MediaMTX emits it.
    let raw = sim.api("GET", "/v3/paths/get/cam1", None).text();
    assert!(
        raw.starts_with(r#"{"name":"cam1","confName":"cam1","ready":true,"readyTime":""#),
        "{raw}"
    );
    for part in [
        r#","available":true,"availableTime":""#,
        r#","online":true,"onlineTime":""#,
        r#","source":{"type":"rtspSource","id":""},"tracks":["H264"],"tracks2":[{"codec":"H264","codecProps":{"width":320,"height":180,"profile":"Baseline","level":"3"}}],"readers":[],"inboundBytes":"#,
        r#","outboundBytes":0,"inboundFramesInError":0,"bytesReceived":"#,
    ] {
        assert!(raw.contains(part), "{part} in {raw}");
    }
    assert_eq!(j["tracks2"][0]["codecProps"]["width"], 320);

    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_ready("cam1", false, 3 * S);
    let j = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(j["online"], true);
    assert_eq!(j["onlineTime"], online_time);
}

/// §0.7: config changes through the API are memory-only and are thrown away by the next
/// file-triggered reload.
#[test]
fn s07_api_changes_are_discarded_by_the_next_file_reload() {
    let yaml = conf(CAM1);
    let sim = Sim::start(&yaml);
    let r = sim.api(
        "POST",
        "/v3/config/paths/add/cam2",
        Some(r#"{"source":"rtsp://10.0.0.2/s"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"status":"ok"}));
    assert_eq!(sim.api("GET", "/v3/paths/get/cam2", None).status, 200);
    assert_eq!(
        sim.api("DELETE", "/v3/config/paths/delete/cam1", None)
            .status,
        200
    );
    assert_eq!(sim.api("GET", "/v3/paths/get/cam1", None).status, 404);
    assert_eq!(
        std::fs::read_to_string(&sim.conf).unwrap(),
        yaml,
        "nothing written to disk"
    );

    sim.write_conf(&yaml);
    sim.wait_log("INF reloading configuration (file changed)", 3 * S);
    wait_until(3 * S, "file config restored", || {
        sim.api("GET", "/v3/paths/get/cam2", None).status == 404
            && sim.api("GET", "/v3/paths/get/cam1", None).status == 200
    });
    assert_eq!(
        sim.api("GET", "/v3/config/paths/get/cam2", None).status,
        404
    );
}

/// §0.8: an invalid config on reload makes the process exit, with code 0.
#[test]
fn s08_invalid_reload_exits_with_code_0() {
    let mut sim = Sim::start(&conf(CAM1));
    sim.wait_ready("cam1", true, 3 * S);
    sim.write_conf(&format!("{}  cam2:\n    webrtc: yes\n", conf(CAM1)));
    let st = sim.wait_exit(5 * S);
    assert_eq!(st.code(), Some(0));
    wait_until(S, "ERR line", || {
        sim.log().contains("ERR json: unknown field \"webrtc\"")
    });

    // The reload-fatal fault does the same with a valid file.
    let mut sim = Sim::start(&conf(CAM1));
    sim.ctl("POST", "/reload-fatal");
    sim.write_conf(&conf("  cam5:\n"));
    assert_eq!(sim.wait_exit(5 * S).code(), Some(0));
}

/// §0.9: an edit less than 1 s after the previous reload is dropped, not deferred.
#[test]
fn s09_second_edit_within_one_second_is_dropped() {
    let sim = Sim::start(&conf(CAM1));
    sim.write_conf(&conf(&format!("{CAM1}  cam2:\n")));
    sim.wait_log("reloading configuration (file changed)", 3 * S);
    let t = Instant::now();
    sim.write_conf(&conf(&format!("{CAM1}  cam2:\n  cam3:\n")));
    assert!(t.elapsed() < Duration::from_millis(500));
    wait_until(3 * S, "cam2 added", || {
        sim.api("GET", "/v3/paths/get/cam2", None).status == 200
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sim.api("GET", "/v3/paths/get/cam3", None).status,
        404,
        "second edit applied"
    );
    assert_eq!(
        sim.log()
            .matches("reloading configuration (file changed)")
            .count(),
        1
    );
    // A later edit (more than 1 s after) is applied, and brings cam3 too.
    sim.write_conf(&conf(&format!("{CAM1}  cam2:\n  cam3:\n  cam4:\n")));
    wait_until(3 * S, "cam3 and cam4 added", || {
        sim.api("GET", "/v3/paths/get/cam4", None).status == 200
            && sim.api("GET", "/v3/paths/get/cam3", None).status == 200
    });
}

/// §0.10: index.m3u8 answers 302 first (even for unknown paths), then 404 when not ready,
/// and a real fMP4 playlist when ready, which creates a muxer and a reader session.
#[test]
fn s10_hls_302_then_404_or_playlist() {
    let sim = Sim::start_opts(
        &conf(&format!(
            "{CAM1}  cam2:\n    source: rtsp://10.0.0.2/s\n  all_others:\n"
        )),
        Opts {
            faults: Some(r#"{"cameras": {"cam2": "silent"}}"#),
            ..Default::default()
        },
    );
    let hls = sim.addr("hls");
    for name in ["cam1", "cam2", "nosuch"] {
        let r = http(&hls, "GET", &format!("/{name}/index.m3u8?x=1"), None);
        assert_eq!(r.status, 302);
        assert_eq!(
            r.headers["location"],
            format!("/{name}/index.m3u8?cookieCheck=1&x=1")
        );
        assert!(
            r.headers["set-cookie"].starts_with("cookieCheck=1; HttpOnly; Secure; SameSite=None")
        );
    }
    let r = http(&hls, "GET", "/cam2/index.m3u8?cookieCheck=1", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no stream is available on path 'cam2'");
    assert_eq!(http(&hls, "HEAD", "/cam1/index.m3u8", None).status, 404);

    sim.wait_ready("cam1", true, 3 * S);
    let r = http(&hls, "GET", "/cam1/index.m3u8?cookieCheck=1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/vnd.apple.mpegurl");
    let mv = r.text();
    assert!(
        mv.starts_with("#EXTM3U\n")
            && mv.contains("CODECS=\"avc1.")
            && mv.contains("RESOLUTION=640x360")
    );
    let media_uri = mv
        .lines()
        .find(|l| l.starts_with("main_stream.m3u8"))
        .unwrap();
    let media = http(&hls, "GET", &format!("/cam1/{media_uri}"), None);
    assert_eq!(media.status, 200);
    let media = media.text();
    let segs: Vec<&str> = media
        .lines()
        .filter(|l| l.starts_with("main_seg"))
        .collect();
    assert!(segs.len() >= 2, "{media}");
    let init_uri = media
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let init = http(&hls, "GET", &format!("/cam1/{init_uri}"), None);
    let kinds: Vec<String> = boxes(&init.body).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["ftyp", "moov"]);
    let seg = http(&hls, "GET", &format!("/cam1/{}", segs[0]), None);
    let kinds: Vec<String> = boxes(&seg.body).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["moof", "mdat"]);
    // Without the session: 401.
    assert_eq!(
        http(&hls, "GET", "/cam1/main_stream.m3u8", None).status,
        401
    );

    assert_eq!(sim.api("GET", "/v3/hlsmuxers/get/cam1", None).status, 200);
    let p = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(p["readers"][0]["type"], "hlsSession");
    let m = http(&sim.addr("metrics"), "GET", "/metrics", None).text();
    assert!(
        m.contains("hls_sessions{id=") && m.contains("hls_muxers{name=\"cam1\"} 1"),
        "{m}"
    );
}

/// §0.12: static sources are retried every 5 s, forever; a silent camera is detected after
/// readTimeout (checked once per second), a closed connection at once.
#[test]
fn s12_retry_every_5s_and_read_timeout() {
    let sim = Sim::start(&conf(CAM1));
    sim.wait_ready("cam1", true, 3 * S);

    let t = Instant::now();
    sim.ctl("POST", "/cameras/cam1/down?mode=silent");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sim.path_state("cam1")["ready"],
        true,
        "silence detected before readTimeout"
    );
    sim.wait_ready("cam1", false, 3 * S);
    let detected = t.elapsed();
    assert!(
        detected >= 2 * S && detected < Duration::from_millis(3500),
        "{detected:?}"
    );
    sim.wait_log("ERR [path cam1] [RTSP source] TCP timeout", S);

    // Up again: ready at the next retry tick (5 s after the error) + 0.5 s connect.
    sim.ctl("POST", "/cameras/cam1/up");
    sim.wait_ready("cam1", true, 7 * S);
    let back = t.elapsed() - detected;
    assert!(
        back >= Duration::from_millis(5200) && back < Duration::from_millis(6500),
        "{back:?}"
    );

    let t = Instant::now();
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_ready("cam1", false, 2 * S);
    assert!(t.elapsed() < Duration::from_millis(600));
    sim.wait_log("ERR [path cam1] [RTSP source] EOF", S);
    // While down, each retry logs the dial error (fixed 5 s, no backoff).
    sim.wait_log(
        "[path cam1] [RTSP source] dial tcp 10.0.0.1:554: connect: connection refused",
        7 * S,
    );
}

/// §0.13: the file is created about one part after the stream is ready, and grows (mtime
/// advances) about once per second.
#[test]
fn s13_lazy_creation_and_mtime_every_second() {
    let sim = Sim::start(&format!(
        "{LISTENERS}pathDefaults:\n  record: yes\npaths:\n{CAM1}"
    ));
    sim.wait_ready("cam1", true, 3 * S);
    let t_ready = Instant::now();
    let dir = sim.path().join("recordings/cam1");
    assert!(
        files_under(&dir).is_empty(),
        "the file must not exist right at ready"
    );
    wait_until(3 * S, "segment file created", || {
        !files_under(&dir).is_empty()
    });
    let created = t_ready.elapsed();
    assert!(
        created >= Duration::from_millis(500) && created < Duration::from_millis(1700),
        "{created:?}"
    );
    let file = files_under(&dir)[0].clone();
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.len() == "2026-08-22_10-00-00-123456.mp4".len() && name.ends_with(".mp4"),
        "{name}"
    );
    // Sample the size for 4.2 s: it changes about once per second. A part is
    // more than one write: on a loaded machine a sample can fall between
    // them, so a change within 300 ms of the one before is the same part.
    let mut changes: Vec<Duration> = Vec::new();
    let mut last = std::fs::metadata(&file).unwrap().len();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(4200) {
        std::thread::sleep(Duration::from_millis(50));
        let len = std::fs::metadata(&file).unwrap().len();
        if len != last {
            let at = t0.elapsed();
            if changes
                .last()
                .is_none_or(|&p| at - p > Duration::from_millis(300))
            {
                changes.push(at);
            }
            last = len;
        }
    }
    assert!((3..=5).contains(&changes.len()), "{changes:?}");
    for w in changes.windows(2) {
        let d = w[1] - w[0];
        assert!(
            d > Duration::from_millis(700) && d < Duration::from_millis(1300),
            "{changes:?}"
        );
    }
}

/// §0.14: a global change that restarts the path manager (readTimeout) recreates every
/// path: the source reconnects and a new segment starts.
#[test]
fn s14_global_change_restarts_paths() {
    let sim = Sim::start(&format!(
        "{LISTENERS}readTimeout: 2s\npathDefaults:\n  record: yes\npaths:\n{CAM1}"
    ));
    wait_until(4 * S, "first segment", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(1)
    });
    let r = sim.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readTimeout":"3s"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        sim.log()
            .matches("[path cam1] [RTSP source] started")
            .count(),
        2
    );
    assert!(sim
        .log()
        .contains("[path cam1] [recorder] recording stopped"));
    sim.wait_ready("cam1", true, 3 * S);
    // A change to a server key only (here: hlsAlwaysRemux) leaves the paths alone.
    let r = sim.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"hlsAlwaysRemux":true}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        sim.log()
            .matches("[path cam1] [RTSP source] started")
            .count(),
        2
    );
}
