//! The recorder's naming, rotation and finalization, and the playback server.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const S: Duration = Duration::from_secs(1);

fn rec_conf(extra: &str) -> String {
    rec_conf_paths(extra, "")
}

fn rec_conf_paths(extra: &str, paths: &str) -> String {
    format!(
        "{LISTENERS}readTimeout: 2s\npathDefaults:\n  record: yes\n  recordSegmentDuration: 2s\n{extra}paths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n{paths}"
    )
}

#[test]
fn rotation_naming_and_finalization() {
    let sim = Sim::start_opts(
        &rec_conf("  recordPath: ./rec/%path/%Y/%m/%d/%H-%M-%S-%f\n"),
        Opts {
            env: vec![("TZ", "Asia/Kolkata")],
            ..Default::default()
        },
    );
    wait_until(8 * S, "two finalized segments", || {
        sim.path_state("cam1")["segments_completed"].as_u64() >= Some(2)
    });
    let files = files_under(&sim.path().join("rec/cam1"));
    assert!(files.len() >= 2, "{files:?}");
    // Local time of the process's TZ (UTC+5:30) in the name.
    let now = chrono::Utc::now() + chrono::Duration::minutes(330);
    let rel = files[0]
        .strip_prefix(sim.path().join("rec/cam1"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        rel.starts_with(&now.format("%Y/%m/%d/").to_string()),
        "{rel} vs {now}"
    );
    assert!(rel.ends_with(".mp4"));
    let dir_mode = std::fs::metadata(files[0].parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o755);
    for f in &files[..2] {
        let (frags, dur) = check_fmp4(f);
        assert!(frags >= 2, "{frags} parts in {}", f.display());
        assert!(
            (dur - 2.0).abs() < 0.15,
            "finalized duration {dur} of {}",
            f.display()
        );
    }
    // Consecutive segments start where the previous one ended (1 s keyframes).
    let api = sim.api("GET", "/v3/recordings/get/cam1", None).json();
    let starts: Vec<chrono::DateTime<chrono::FixedOffset>> = api["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s["start"].as_str().unwrap()).unwrap())
        .collect();
    assert!(starts.len() >= 2);
    assert_eq!(starts[0].offset().local_minus_utc(), 330 * 60);
    let gap = (starts[1] - starts[0]).num_milliseconds();
    assert!((1990..=2010).contains(&gap), "{gap}");

    // deletesegment with the exact start string from recordings/get removes the file.
    let start = api["segments"][0]["start"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let r = sim.api(
        "DELETE",
        &format!("/v3/recordings/deletesegment?path=cam1&start={start}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!files[0].exists());
}

/// The cleaner runs again after a config change, and then every deleteAfter/2.
#[test]
fn cleaner_runs_periodically() {
    let sim = Sim::start(&rec_conf("  recordSegmentDuration: 1s\n"));
    wait_until(5 * S, "segments", || {
        sim.path_state("cam1")["segments_completed"].as_u64() >= Some(2)
    });
    let first = files_under(&sim.path().join("recordings/cam1"))[0].clone();
    let r = sim.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"recordDeleteAfter":"2s"}"#),
    );
    assert_eq!(r.status, 200);
    wait_until(5 * S, "old segment deleted", || !first.exists());
}

#[test]
fn graceful_stop_finalizes_and_exits_0() {
    for sig in [SIGTERM, SIGINT] {
        let mut sim = Sim::start(&rec_conf("  recordSegmentDuration: 1h\n"));
        wait_until(5 * S, "two parts", || {
            sim.path_state("cam1")["parts_written"].as_u64() >= Some(2)
        });
        let seg = sim.path_state("cam1")["segment"]
            .as_str()
            .unwrap()
            .to_string();
        let t = std::time::Instant::now();
        sim.signal(sig);
        let st = sim.wait_exit(2 * S);
        assert!(t.elapsed() < S, "{:?}", t.elapsed());
        assert_eq!(st.code(), Some(0));
        wait_until(S, "shutdown log", || {
            sim.log().contains("INF shutting down gracefully")
        });
        let (_, dur) = check_fmp4(&sim.path().join(seg));
        assert!(dur >= 2.0, "finalized duration {dur}");
    }
}

#[test]
fn sigkill_leaves_duration_zero() {
    let mut sim = Sim::start(&rec_conf("  recordSegmentDuration: 1h\n"));
    wait_until(5 * S, "a part", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(1)
    });
    let seg = sim.path_state("cam1")["segment"]
        .as_str()
        .unwrap()
        .to_string();
    sim.signal(SIGKILL);
    sim.wait_exit(2 * S);
    let (frags, dur) = check_fmp4(&sim.path().join(seg));
    assert!(frags >= 1);
    assert_eq!(dur, 0.0);
}

#[test]
fn disconnect_finalizes_and_reconnect_starts_a_new_segment() {
    let sim = Sim::start(&rec_conf("  recordSegmentDuration: 1h\n"));
    wait_until(5 * S, "two parts", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(2)
    });
    let seg1 = sim.path_state("cam1")["segment"]
        .as_str()
        .unwrap()
        .to_string();
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_ready("cam1", false, 2 * S);
    let (_, dur) = check_fmp4(&sim.path().join(&seg1));
    assert!(dur >= 2.0);
    assert!(sim
        .log()
        .contains("[path cam1] [recorder] recording stopped"));
    sim.ctl("POST", "/cameras/cam1/up");
    wait_until(9 * S, "a new segment", || {
        sim.path_state("cam1")["segment"]
            .as_str()
            .is_some_and(|s| s != seg1)
    });
}

#[test]
fn playback_list_and_get() {
    let sim = Sim::start(&rec_conf_paths("", "  all_others:\n"));
    wait_until(8 * S, "two finalized segments", || {
        sim.path_state("cam1")["segments_completed"].as_u64() >= Some(2)
    });
    let pb = sim.addr("playback");
    let r = http(&pb, "GET", "/list?path=cam1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1, "segments of one run are merged: {list}");
    let dur = items[0]["duration"].as_f64().unwrap();
    assert!(dur >= 4.0, "{dur}");
    let url = items[0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{pb}/get?duration=")),
        "{url}"
    );
    let start = items[0]["start"].as_str().unwrap().to_string();

    let get = url
        .split_once(&pb)
        .unwrap()
        .1
        .replace(&format!("duration={dur}"), "duration=3");
    let r = http(&pb, "GET", &get, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "video/mp4");
    assert_eq!(r.headers["accept-ranges"], "none");
    let kinds: Vec<String> = boxes(&r.body).into_iter().map(|(k, _)| k).collect();
    assert_eq!(&kinds[..2], ["ftyp", "moov"]);
    assert!(kinds.len() >= 2 + 6, "3 s of 1 s parts: {kinds:?}");

    // Errors
    let r = http(&pb, "GET", "/list?path=zzz", None);
    assert_eq!(r.status, 404, "all_others matches; nothing recorded");
    assert_eq!(r.json()["error"], "no recording segments found");
    let r = http(&pb, "GET", "/list?path=cam1&start=bad", None);
    assert_eq!(r.status, 400);
    let enc = start.replace('+', "%2B");
    let r = http(
        &pb,
        "GET",
        &format!("/get?path=cam1&start={enc}&duration=1&format=avi"),
        None,
    );
    assert_eq!(r.status, 400);
    let r = http(
        &pb,
        "GET",
        "/get?path=cam1&start=2000-01-01T00:00:00Z&duration=1",
        None,
    );
    assert_eq!(r.status, 404);

    let sim2 = Sim::start(&rec_conf(""));
    let r = http(&sim2.addr("playback"), "GET", "/list?path=zzz", None);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "path 'zzz' is not configured".into())
    );
}

/// §h: one `/get` covers one run of segments: across an outage it stops at the gap, and
/// each `/list` entry fetched alone is whole.
#[test]
fn playback_get_stops_at_a_gap() {
    let sim = Sim::start(&rec_conf_paths("", "  all_others:\n"));
    wait_until(8 * S, "two finalized segments", || {
        sim.path_state("cam1")["segments_completed"].as_u64() >= Some(2)
    });
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_ready("cam1", false, 2 * S);
    sim.ctl("POST", "/cameras/cam1/up");
    let pb = sim.addr("playback");
    let mut list = serde_json::Value::Null;
    wait_until(15 * S, "two runs with 2 s after the outage", || {
        list = http(&pb, "GET", "/list?path=cam1", None).json();
        list.as_array().is_some_and(|items| {
            items.len() == 2 && items[1]["duration"].as_f64().is_some_and(|d| d >= 2.0)
        })
    });
    let items = list.as_array().unwrap();
    let parts = |path: &str| -> usize {
        let r = http(&pb, "GET", path, None);
        assert_eq!(r.status, 200, "{}", r.text());
        boxes(&r.body).iter().filter(|(k, _)| k == "moof").count()
    };
    let first = items[0]["start"].as_str().unwrap().replace('+', "%2B");
    let d0 = items[0]["duration"].as_f64().unwrap();
    // A range from the first run's start to well past the second run's.
    let across = parts(&format!("/get?path=cam1&start={first}&duration=3600"));
    let alone = parts(&format!("/get?path=cam1&start={first}&duration={d0}"));
    assert_eq!(across, alone, "the answer stops at the gap");
    let second = items[1]["start"].as_str().unwrap().replace('+', "%2B");
    assert!(parts(&format!("/get?path=cam1&start={second}&duration=2")) >= 1);
}

/// §f: a file reload that only adds a path leaves the other paths alone: same source,
/// same segment file.
#[test]
fn path_only_reload_keeps_other_paths_recording() {
    let yaml = rec_conf("  recordSegmentDuration: 1h\n");
    let sim = Sim::start(&yaml);
    wait_until(5 * S, "a part", || {
        sim.path_state("cam1")["parts_written"].as_u64() >= Some(1)
    });
    let seg = sim.path_state("cam1")["segment"].clone();
    sim.write_conf(&format!("{yaml}  cam2:\n    source: rtsp://10.0.0.2/s\n"));
    sim.wait_ready("cam2", true, 3 * S);
    let st = sim.path_state("cam1");
    assert_eq!(st["segment"], seg);
    assert_eq!(st["segments_completed"], 0);
    assert_eq!(
        sim.log()
            .matches("[path cam1] [RTSP source] started")
            .count(),
        1
    );
}

/// A recorder error (here: the directory cannot be created) is logged, and recording
/// restarts 2 s later with a new segment, while the path stays ready.
#[test]
fn recorder_error_restarts_after_2s() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), b"a file, not a directory").unwrap();
    let sim = Sim::start_in(
        dir,
        &rec_conf("  recordPath: ./blocker/%path/%Y-%m-%d_%H-%M-%S-%f\n"),
        Opts::default(),
    );
    let needle = "ERR [path cam1] [recorder] open ./blocker/cam1/";
    sim.wait_log(needle, 4 * S);
    let t = std::time::Instant::now();
    wait_until(5 * S, "a second error", || {
        sim.log().matches(needle).count() >= 2
    });
    let gap = t.elapsed();
    assert!(gap >= Duration::from_millis(1800), "{gap:?}");
    assert!(sim.log().contains(": not a directory"));
    assert_eq!(sim.path_state("cam1")["ready"], true);
}

/// With `MTXSIM_LIVE_RECORDINGS=1` a recording shows the live view's frames: the first
/// frame of a segment is the frame of the wall time its name says (what lets a player
/// check a recorded moment against the burned-in clock).
#[test]
fn live_recordings_carry_the_wall_clock() {
    if !have_ffmpeg() {
        eprintln!("SKIPPED: ffmpeg not found (scripts/setup installs it)");
        return;
    }
    let sim = Sim::start_opts(
        &rec_conf("  recordPath: ./rec/%path/%s-%f\n"),
        Opts {
            env: vec![("MTXSIM_LIVE_RECORDINGS", "1")],
            ..Default::default()
        },
    );
    wait_until(12 * S, "a finalized segment", || {
        sim.path_state("cam1")["segments_completed"].as_u64() >= Some(1)
    });
    let p = sim.api("GET", "/v3/paths/get/cam1", None).json();
    assert_eq!(p["tracks2"][0]["codecProps"]["width"], 640);
    let files = files_under(&sim.path().join("rec/cam1"));
    let file = &files[0];
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let (secs, micros) = stem.split_once('-').unwrap();
    let wall = secs.parse::<f64>().unwrap() + micros.parse::<f64>().unwrap() / 1e6;
    let expected = ((wall * 25.0).round() as u64) % 750;
    let got = frame_number(&first_frame_gray(file).expect("ffmpeg decodes the segment"));
    eprintln!("segment {stem}: burned-in frame {got}, wall-clock frame {expected}");
    assert_eq!(got, expected, "{stem}");
}
