//! Status codes and bodies of the control API (docs/mediamtx.md §a), including where they differ
//! from the OpenAPI file.

use crate::harness::*;
use serde_json::json;
use std::time::Duration;

fn sim() -> Sim {
    Sim::start(&format!(
        "{LISTENERS}readTimeout: 2s\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n  ~^grp.*$:\n"
    ))
}

fn err(r: &Resp) -> String {
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "{}",
        r.text()
    );
    r.json()["error"].as_str().unwrap().to_string()
}

#[test]
fn status_codes_of_the_endpoint_table() {
    let sim = sim();
    let info = sim.api("GET", "/v3/info", None).json();
    assert_eq!(info["version"], "v1.20.1");
    assert!(info["started"].as_str().unwrap().contains('T'));

    // gin's plain-text 404 for unknown routes, wrong methods and HEAD.
    for (m, p) in [
        ("GET", "/v3/nope"),
        ("GET", "/v3/config/paths/add/x"),
        ("HEAD", "/v3/info"),
        ("POST", "/v3/paths/list"),
        ("GET", "/v3/paths/get"),
    ] {
        let r = sim.api(m, p, None);
        assert_eq!(r.status, 404, "{m} {p}");
        if m != "HEAD" {
            assert_eq!(r.text(), "404 page not found", "{m} {p}");
        }
    }
    let r = sim.api("GET", "/v3/paths/get/", None);
    assert_eq!((r.status, err(&r)), (400, "invalid name".into()));

    // config/global
    let g = sim.api("GET", "/v3/config/global/get", None).json();
    assert_eq!(g["api"], true);
    assert_eq!(
        g["recordPath"],
        serde_json::Value::Null,
        "path keys are not global"
    );
    assert!(g.get("paths").is_none() && g.get("pathDefaults").is_none());
    assert_eq!(g["hlsMuxerCloseAfter"], "1m0s");
    let r = sim.api("PATCH", "/v3/config/global/patch", Some(r#"{"foo":1}"#));
    assert_eq!(
        (r.status, err(&r)),
        (400, "json: unknown field \"foo\"".into())
    );
    let r = sim.api("PATCH", "/v3/config/global/patch", Some(""));
    assert_eq!(
        (r.status, err(&r)),
        (400, "unexpected end of JSON input".into())
    );
    assert_eq!(
        sim.api("PATCH", "/v3/config/global/patch", Some("{}"))
            .status,
        200
    );

    // pathdefaults
    let d = sim.api("GET", "/v3/config/pathdefaults/get", None).json();
    assert_eq!(d["recordDeleteAfter"], "1d");
    assert_eq!(d["recordSegmentDuration"], "1h0m0s");
    assert_eq!(d["record"], false);
    let r = sim.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"hls":true}"#),
    );
    assert_eq!(
        (r.status, err(&r)),
        (400, "json: unknown field \"hls\"".into())
    );
    let r = sim.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"recordDeleteAfter":"0s"}"#),
    );
    assert_eq!(r.status, 200);
    let d = sim.api("GET", "/v3/config/pathdefaults/get", None).json();
    assert_eq!(
        d["recordDeleteAfter"], "",
        "a zero duration is an empty string"
    );

    // config/paths
    let r = sim.api("GET", "/v3/config/paths/get/nosuch", None);
    assert_eq!(
        (r.status, err(&r)),
        (404, "path configuration not found".into())
    );
    let c = sim.api("GET", "/v3/config/paths/get/cam1", None).json();
    assert_eq!(c["name"], "cam1");
    assert_eq!(c["source"], "rtsp://10.0.0.1/s");
    let r = sim.api("POST", "/v3/config/paths/add/cam1", Some("{}"));
    assert_eq!((r.status, err(&r)), (400, "path already exists".into()));
    let r = sim.api("POST", "/v3/config/paths/add/a%20b", Some("{}"));
    assert_eq!(r.status, 400);
    assert_eq!(
        err(&r),
        "invalid path name 'a b': can contain only alphanumeric characters, underscore, dot, minus, slash"
    );
    let r = sim.api("POST", "/v3/config/paths/add/cam2", Some(r#"{"foo":true}"#));
    assert_eq!(
        (r.status, err(&r)),
        (400, "json: unknown field \"foo\"".into())
    );
    let r = sim.api("POST", "/v3/config/paths/add/cam2", None);
    assert_eq!(
        (r.status, err(&r)),
        (400, "unexpected end of JSON input".into())
    );
    assert_eq!(
        sim.api("POST", "/v3/config/paths/add/cam2", Some("{}"))
            .status,
        200
    );
    assert_eq!(
        sim.api("POST", "/v3/config/paths/add/group/cam3", Some("{}"))
            .status,
        200
    );
    assert_eq!(
        sim.api("GET", "/v3/paths/get/group/cam3", None).json()["name"],
        "group/cam3"
    );
    let r = sim.api("PATCH", "/v3/config/paths/patch/nosuch", Some("{}"));
    assert_eq!((r.status, err(&r)), (404, "path not found".into()));
    assert_eq!(
        sim.api(
            "PATCH",
            "/v3/config/paths/patch/cam2",
            Some(r#"{"maxReaders":3}"#)
        )
        .status,
        200
    );
    assert_eq!(
        sim.api("GET", "/v3/config/paths/get/cam2", None).json()["maxReaders"],
        3
    );
    // replace is an upsert: never 404.
    let r = sim.api(
        "POST",
        "/v3/config/paths/replace/newcam",
        Some(r#"{"source":"rtsp://10.0.0.9/s"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(sim.api("GET", "/v3/paths/get/newcam", None).status, 200);
    let r = sim.api("DELETE", "/v3/config/paths/delete/nosuch", None);
    assert_eq!((r.status, err(&r)), (404, "path not found".into()));
    assert_eq!(
        sim.api("DELETE", "/v3/config/paths/delete/newcam", None)
            .status,
        200
    );
    assert_eq!(sim.api("GET", "/v3/paths/get/newcam", None).status, 404);
    let list = sim.api("GET", "/v3/config/paths/list", None).json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cam1", "cam2", "group/cam3", "~^grp.*$"]);

    // recordings: 400, never 404.
    let r = sim.api("GET", "/v3/recordings/get/zzz", None);
    assert_eq!(
        (r.status, err(&r)),
        (400, "path 'zzz' is not configured".into())
    );
    let r = sim.api("GET", "/v3/recordings/get/cam1", None);
    assert_eq!(r.json(), json!({"name":"cam1","segments":[]}));
    // A name matched by the `~^grp.*$` entry is configured, but no path object exists.
    let r = sim.api("GET", "/v3/recordings/get/grp7", None);
    assert_eq!(r.json(), json!({"name":"grp7","segments":[]}));
    assert_eq!(sim.api("GET", "/v3/paths/get/grp7", None).status, 404);
    let r = http(
        &sim.addr("hls"),
        "GET",
        "/grp7/index.m3u8?cookieCheck=1",
        None,
    );
    assert_eq!(r.status, 404, "matched by a regexp: 404, not 500");
    let r = http(
        &sim.addr("hls"),
        "GET",
        "/other/index.m3u8?cookieCheck=1",
        None,
    );
    assert_eq!(r.status, 500, "matched by nothing");
    let r = sim.api(
        "DELETE",
        "/v3/recordings/deletesegment?path=cam1&start=yesterday",
        None,
    );
    assert_eq!(r.status, 400);
    let r = sim.api(
        "DELETE",
        "/v3/recordings/deletesegment?path=cam1&start=2026-01-01T00:00:00Z",
        None,
    );
    assert_eq!(r.status, 400);
    assert!(
        err(&r).contains("no such file or directory"),
        "{}",
        r.text()
    );
    let r = sim.api("GET", "/v3/recordings/list", None).json();
    assert_eq!(r, json!({"itemCount":0,"pageCount":0,"items":[]}));

    // hls muxers
    let r = sim.api("GET", "/v3/hlsmuxers/get/cam1", None);
    assert_eq!((r.status, err(&r)), (404, "muxer not found".into()));
    assert_eq!(
        sim.api("GET", "/v3/hlsmuxers/list", None).json()["items"],
        json!([])
    );

    // CORS preflight
    let r = http_try(
        &sim.addr("api"),
        "OPTIONS",
        "/v3/paths/list",
        &[("Access-Control-Request-Method", "GET")],
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "OPTIONS, GET, POST, PATCH, DELETE"
    );
}

#[test]
fn pagination() {
    let sim = sim();
    for i in 0..4 {
        let r = sim.api("POST", &format!("/v3/config/paths/add/p{i}"), Some("{}"));
        assert_eq!(r.status, 200);
    }
    // cam1 + p0..p3 = 5 paths
    let r = sim
        .api("GET", "/v3/paths/list?itemsPerPage=2&page=1", None)
        .json();
    assert_eq!(r["itemCount"], 5);
    assert_eq!(r["pageCount"], 3);
    let names: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p1", "p2"]);
    let r = sim
        .api("GET", "/v3/paths/list?itemsPerPage=2&page=9", None)
        .json();
    assert_eq!(r["items"], json!([]));
    let r = sim.api("GET", "/v3/paths/list?itemsPerPage=x", None);
    assert_eq!(
        (r.status, err(&r)),
        (
            400,
            "strconv.ParseUint: parsing \"x\": invalid syntax".into()
        )
    );
    let r = sim.api("GET", "/v3/paths/list?page=-1", None);
    assert_eq!(
        (r.status, err(&r)),
        (
            400,
            "strconv.ParseUint: parsing \"-1\": invalid syntax".into()
        )
    );
    let r = sim.api("GET", "/v3/config/paths/list?itemsPerPage=0", None);
    assert_eq!((r.status, err(&r)), (400, "invalid items per page".into()));
}

#[test]
fn disabled_servers_have_no_routes() {
    let sim = Sim::start("api: yes\napiAddress: 127.0.0.1:0\nrtsp: no\nhls: no\nwebrtc: no\n");
    let r = sim.api("GET", "/v3/hlsmuxers/list", None);
    assert_eq!((r.status, r.text()), (404, "404 page not found".into()));
    let r = sim.api("GET", "/v3/webrtcsessions/list", None);
    assert_eq!(r.status, 404);
    let r = sim.api("GET", "/v3/paths/list", None).json();
    assert_eq!(r, json!({"itemCount":0,"pageCount":0,"items":[]}));
}

/// §f: a change in record* keys only keeps the source up and restarts the recorder; any
/// other change recreates the path; an identical replace is a no-op; delete finalizes.
#[test]
fn path_changes_follow_reload_rules() {
    let sim = Sim::start(&format!(
        "{LISTENERS}readTimeout: 2s\npathDefaults:\n  record: yes\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    let started = || {
        sim.log()
            .matches("[path cam1] [RTSP source] started")
            .count()
    };
    wait_until(Duration::from_secs(4), "first part", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(1)
    });
    let seg1 = sim.path_state("cam1")["segment"].clone();
    let r = sim.api(
        "PATCH",
        "/v3/config/paths/patch/cam1",
        Some(r#"{"recordSegmentDuration":"30s"}"#),
    );
    assert_eq!(r.status, 200);
    wait_until(Duration::from_secs(4), "a new segment", || {
        let s = sim.path_state("cam1");
        s["segments_completed"] == 1 && !s["segment"].is_null() && s["segment"] != seg1
    });
    assert_eq!(
        started(),
        1,
        "record-only change must not restart the source"
    );
    assert_eq!(sim.path_state("cam1")["ready"], true);

    // Identical replace: nothing happens.
    let cur = sim.api("GET", "/v3/config/paths/get/cam1", None).json();
    let mut body = cur.as_object().unwrap().clone();
    body.remove("name");
    let same = serde_json::to_string(&body).unwrap();
    assert_eq!(
        sim.api("POST", "/v3/config/paths/replace/cam1", Some(&same))
            .status,
        200
    );
    assert_eq!(started(), 1);

    // Any other change recreates the path.
    let r = sim.api(
        "PATCH",
        "/v3/config/paths/patch/cam1",
        Some(r#"{"rtspTransport":"tcp"}"#),
    );
    assert_eq!(r.status, 200);
    wait_until(Duration::from_secs(2), "source restarted", || {
        started() == 2
    });
    assert_eq!(
        sim.path_state("cam1")["segments_completed"],
        0,
        "a new path object"
    );
    sim.wait_ready("cam1", true, Duration::from_secs(3));

    // Delete finalizes the segment (mvhd duration patched).
    wait_until(Duration::from_secs(4), "a part", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(2)
    });
    let seg = sim.path_state("cam1")["segment"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sim.api("DELETE", "/v3/config/paths/delete/cam1", None)
            .status,
        200
    );
    let (_, dur) = check_fmp4(&sim.path().join(seg));
    assert!(dur > 1.0, "{dur}");
}

/// With `hlsAlwaysRemux: yes` a muxer exists as soon as the path is ready, so
/// `/v3/hlsmuxers/get/NAME` works as a health check without any HLS request.
#[test]
fn hls_always_remux_creates_muxers() {
    let sim = Sim::start(&format!(
        "{LISTENERS}hlsAlwaysRemux: yes\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    sim.wait_ready("cam1", true, Duration::from_secs(3));
    wait_until(Duration::from_secs(2), "muxer", || {
        sim.api("GET", "/v3/hlsmuxers/get/cam1", None).status == 200
    });
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_ready("cam1", false, Duration::from_secs(2));
    assert_eq!(sim.api("GET", "/v3/hlsmuxers/get/cam1", None).status, 404);
}

/// docs/mediamtx.md §l.4: lowLatency needs hlsSegmentCount >= 7, checked only when a muxer is
/// created: the config loads, the muxer crashes, HLS never works.
#[test]
fn hls_segment_count_checked_at_muxer_creation() {
    let sim = Sim::start(&format!(
        "{LISTENERS}hlsSegmentCount: 5\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    sim.wait_ready("cam1", true, Duration::from_secs(3));
    let r = http(
        &sim.addr("hls"),
        "GET",
        "/cam1/index.m3u8?cookieCheck=1",
        None,
    );
    assert_eq!(r.status, 500);
    sim.wait_log(
        "ERR [HLS] [muxer cam1] muxer instance crashed: Low-Latency HLS requires at least 7 segments",
        Duration::from_secs(1),
    );
    assert_eq!(sim.api("GET", "/v3/hlsmuxers/get/cam1", None).status, 404);
}
