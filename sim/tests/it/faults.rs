//! Fault injection through the control endpoint and the persisted faults file.

use crate::harness::*;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn conf(record: bool) -> String {
    format!(
        "{LISTENERS}readTimeout: 2s\npathDefaults:\n  record: {}\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n  cam3:\n    source: rtsp://10.0.0.3/s\n",
        if record { "yes" } else { "no" }
    )
}

fn inbound(sim: &Sim) -> u64 {
    sim.api("GET", "/v3/paths/get/cam1", None).json()["inboundBytes"]
        .as_u64()
        .unwrap()
}

#[test]
fn recorder_stall_keeps_path_ready_and_bytes_growing() {
    let sim = Sim::start(&conf(true));
    wait_until(5 * S, "a part", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(1)
    });
    sim.ctl("POST", "/recorder/cam1/stall");
    std::thread::sleep(Duration::from_millis(1100));
    let seg = sim.path_state("cam1")["segment"]
        .as_str()
        .unwrap()
        .to_string();
    let file = sim.path().join(&seg);
    let (parts, len, bytes) = (
        sim.path_state("cam1")["parts_written"].clone(),
        std::fs::metadata(&file).unwrap().len(),
        inbound(&sim),
    );
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(sim.path_state("cam1")["parts_written"], parts);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        len,
        "file must not grow"
    );
    assert_eq!(sim.path_state("cam1")["ready"], true);
    assert!(inbound(&sim) > bytes);
    sim.ctl("POST", "/recorder/cam1/resume");
    wait_until(4 * S, "file grows again", || {
        std::fs::metadata(&file).unwrap().len() > len
    });
}

#[test]
fn frozen_bytes_and_hung_api() {
    let sim = Sim::start(&conf(false));
    sim.wait_ready("cam1", true, 3 * S);
    wait_until(3 * S, "bytes", || inbound(&sim) > 0);
    sim.ctl("POST", "/paths/cam1/freeze-bytes");
    std::thread::sleep(Duration::from_millis(1100));
    let b = inbound(&sim);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(inbound(&sim), b);
    assert_eq!(
        sim.api("GET", "/v3/paths/get/cam1", None).json()["ready"],
        true
    );
    sim.ctl("POST", "/paths/cam1/unfreeze-bytes");
    wait_until(3 * S, "bytes grow", || inbound(&sim) > b);

    let api = sim.addr("api");
    sim.ctl("POST", "/api/hang");
    let t = Instant::now();
    let r = http_try(
        &api,
        "GET",
        "/v3/paths/list",
        &[],
        None,
        Duration::from_millis(1500),
    );
    assert!(
        r.is_none() && t.elapsed() >= Duration::from_millis(1400),
        "hung API answered"
    );
    assert_eq!(
        sim.state()["faults"]["api_hung"],
        true,
        "control still answers"
    );
    sim.ctl("POST", "/api/unhang");
    assert_eq!(sim.api("GET", "/v3/paths/list", None).status, 200);

    sim.ctl("POST", "/api/delay?ms=700");
    let t = Instant::now();
    assert_eq!(sim.api("GET", "/v3/info", None).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(700));
    sim.ctl("POST", "/api/delay?ms=0");
}

#[test]
fn crash_exit_and_crash_at_start() {
    let mut sim = Sim::start(&conf(false));
    let _ = http_try(&sim.ctl, "POST", "/crash", &[], None, S);
    assert_eq!(sim.wait_exit(3 * S).signal(), Some(6), "SIGABRT");

    let mut sim = Sim::start(&conf(false));
    let _ = http_try(&sim.ctl, "POST", "/exit?code=3", &[], None, S);
    assert_eq!(sim.wait_exit(3 * S).code(), Some(3));

    // crash_at_start is read from MTXSIM_FAULTS at every start.
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    std::fs::write(&faults, r#"{"crash_at_start": true}"#).unwrap();
    for _ in 0..2 {
        let mut sim = Sim::start_in(
            tempfile::tempdir().unwrap(),
            &conf(false),
            Opts {
                env: vec![("MTXSIM_FAULTS", faults.to_str().unwrap())],
                wait_ready: false,
                ..Default::default()
            },
        );
        assert_eq!(sim.wait_exit(3 * S).signal(), Some(6));
    }
}

#[test]
fn faults_persist_and_cameras_start_down() {
    let mut sim = Sim::start_opts(
        &conf(false),
        Opts {
            faults: Some(r#"{"cameras": {"cam3": "silent"}}"#),
            ..Default::default()
        },
    );
    sim.wait_ready("cam1", true, 3 * S);
    assert_eq!(sim.path_state("cam3")["ready"], false);
    assert_eq!(sim.path_state("cam3")["camera"], "silent");
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.ctl("POST", "/whep?mode=fail");
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sim.path().join("faults.json")).unwrap()).unwrap();
    assert_eq!(
        file["cameras"],
        serde_json::json!({"cam1": "closed", "cam3": "silent"})
    );
    assert_eq!(file["whep"], "fail");
    // Camera faults survive path removal and re-creation.
    assert_eq!(
        sim.api("DELETE", "/v3/config/paths/delete/cam1", None)
            .status,
        200
    );
    assert_eq!(
        sim.api(
            "POST",
            "/v3/config/paths/add/cam1",
            Some(r#"{"source":"rtsp://10.0.0.1/s"}"#)
        )
        .status,
        200
    );
    sim.wait_log(
        "[path cam1] [RTSP source] dial tcp 10.0.0.1:554: connect: connection refused",
        3 * S,
    );
    assert_eq!(sim.path_state("cam1")["ready"], false);
    // PUT replaces the whole document; unknown fields are rejected.
    let r = http(&sim.ctl, "PUT", "/faults", Some(r#"{"bogus": 1}"#));
    assert_eq!(r.status, 400);
    let r = http(&sim.ctl, "PUT", "/faults", None);
    assert_eq!(r.status, 200, "an empty body resets every fault");
    assert_eq!(r.json()["cameras"], serde_json::json!({}));
    sim.wait_ready("cam3", true, 7 * S);
    sim.signal(SIGTERM);
    sim.wait_exit(2 * S);
}

#[test]
fn whep_modes() {
    let sim = Sim::start_opts(
        &conf(false),
        Opts {
            faults: Some(r#"{"cameras": {"cam3": "closed"}}"#),
            ..Default::default()
        },
    );
    sim.wait_ready("cam1", true, 3 * S);
    let w = sim.addr("webrtc");
    let sdp = [("Content-Type", "application/sdp")];
    let post =
        |p: &str, h: &[(&str, &str)], t: Duration| http_try(&w, "POST", p, h, Some(b"v=0\r\n"), t);
    assert_eq!(
        post("/cam1/whep", &[("Content-Type", "text/plain")], S)
            .unwrap()
            .status,
        400
    );
    let r = post("/cam3/whep", &sdp, S).unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, "no stream is available on path 'cam3'".into())
    );
    // Not an SDP offer: 400.
    let r = post("/cam1/whep", &sdp, S).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    sim.ctl("POST", "/whep?mode=no_stack");
    let r = post("/cam1/whep", &sdp, S).unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "the sim has no WebRTC stack".into())
    );
    sim.ctl("POST", "/whep?mode=not_found");
    assert_eq!(post("/cam1/whep", &sdp, S).unwrap().status, 404);
    sim.ctl("POST", "/whep?mode=fail");
    assert_eq!(post("/cam1/whep", &sdp, S).unwrap().status, 500);
    sim.ctl("POST", "/whep?mode=hang");
    assert!(post("/cam1/whep", &sdp, Duration::from_millis(800)).is_none());
    let r = http_try(&w, "OPTIONS", "/cam1/whep", &[], None, S).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(http(&w, "GET", "/cam1/whep", None).status, 405);
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn memory_grows() {
    let sim = Sim::start(&conf(false));
    let before = rss_kib(sim.child.id());
    sim.ctl("POST", "/memory/grow?mib_per_sec=16");
    wait_until(5 * S, "RSS +40 MiB", || {
        rss_kib(sim.child.id()) > before + 40 * 1024
    });
    sim.ctl("POST", "/memory/grow?mib_per_sec=0");
}

/// `"*"` in `cameras` applies to every path without its own entry.
#[test]
fn wildcard_camera_fault() {
    let sim = Sim::start_opts(
        &conf(false),
        Opts {
            faults: Some(r#"{"cameras": {"*": "closed", "cam3": "silent"}}"#),
            ..Default::default()
        },
    );
    sim.wait_log(
        "[path cam1] [RTSP source] dial tcp 10.0.0.1:554: connect: connection refused",
        3 * S,
    );
    sim.wait_log(
        "[path cam3] [RTSP source] dial tcp 10.0.0.3:554: i/o timeout",
        3 * S,
    );
    assert_eq!(sim.path_state("cam1")["camera"], "closed");
    assert_eq!(sim.path_state("cam1")["ready"], false);
}
