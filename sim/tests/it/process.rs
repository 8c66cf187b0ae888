//! Process behaviour (docs/mediamtx.md §k): startup errors, signals, exit codes.

use crate::harness::*;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

const S: Duration = Duration::from_secs(1);

fn failing(yaml: &str) -> (Option<i32>, String) {
    let mut sim = Sim::start_opts(
        yaml,
        Opts {
            wait_ready: false,
            ..Default::default()
        },
    );
    let st = sim.wait_exit(5 * S);
    wait_until(2 * S, "ERR line", || sim.log().contains("ERR"));
    (st.code(), sim.log())
}

#[test]
fn startup_errors_exit_1() {
    let (code, log) = failing("rtsp: no\nhls: no\nwebrtc: no\nfoo: bar\n");
    assert_eq!(code, Some(1));
    assert!(
        log.lines().any(|l| l == "ERR: json: unknown field \"foo\""),
        "{log}"
    );

    let (code, log) =
        failing("rtsp: no\nhls: no\nwebrtc: no\npaths:\n  cam:\n    hlsSegmentCount: 3\n");
    assert_eq!(code, Some(1));
    assert!(
        log.contains("ERR: json: unknown field \"hlsSegmentCount\""),
        "{log}"
    );

    let (code, log) = failing("api: yes\napiAddress: \"\"\nrtsp: no\nhls: no\nwebrtc: no\n");
    assert_eq!(code, Some(1));
    assert!(
        log.contains("ERR: 'apiAddress' must be set when API is enabled"),
        "{log}"
    );

    let (code, log) = failing("rtsp: no\nhls: no\nwebrtc: no\npaths:\n  \"~^cam(\":\n");
    assert_eq!(code, Some(1));
    assert!(log.contains("ERR: invalid regular expression: "), "{log}");

    // A port in use: logged, exit 1.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, log) = failing(&format!(
        "rtsp: no\nhls: no\nwebrtc: no\napi: yes\napiAddress: 127.0.0.1:{port}\n"
    ));
    assert_eq!(code, Some(1));
    assert!(
        log.contains(&format!(
            "listen tcp 127.0.0.1:{port}: bind: address already in use"
        )),
        "{log}"
    );

    // A missing file.
    let out = std::process::Command::new(BIN)
        .arg("/nonexistent/mediamtx.yml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("ERR: open /nonexistent/mediamtx.yml: no such file or directory"));
}

#[test]
fn startup_log_lines() {
    let sim = Sim::start(&format!(
        "{LISTENERS}paths:\n  cam_1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    sim.wait_log(
        "INF [path cam_1] stream is available and online, 1 track (H264)",
        3 * S,
    );
    let log = sim.log();
    let first = log.lines().next().unwrap();
    // YYYY/MM/DD HH:MM:SS INF ...
    assert_eq!(&first[4..5], "/");
    assert_eq!(
        &first[19..],
        " INF MediaMTX v1.20.1, linux, amd64 (mediamtx-sim)"
    );
    assert!(log.contains(&format!(
        "INF configuration loaded from {}",
        sim.conf.display()
    )));
    assert!(log.contains("INF [API] started with listener on 127.0.0.1:"));
    assert!(log.contains("INF [path cam_1] [RTSP source] started"));
}

#[test]
fn sighup_kills_at_once() {
    // Under `nohup` the tests run with SIGHUP ignored, and an ignored
    // signal stays ignored across exec (MediaMTX would not die of it
    // either): the sim gets the default disposition, as under systemd.
    // SAFETY: setting a signal's disposition to the default has no
    // memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_DFL);
    }
    let mut sim = Sim::start(&format!("{LISTENERS}paths:\n  cam1:\n"));
    sim.signal(SIGHUP);
    let st = sim.wait_exit(2 * S);
    assert_eq!(st.signal(), Some(SIGHUP));
    assert!(!sim.log().contains("shutting down"));
}

/// `logLevel: warn` hides INF lines, `debug` adds DEB lines; an unknown level is an error.
#[test]
fn log_level() {
    let sim = Sim::start(&format!(
        "{LISTENERS}logLevel: warn\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    sim.ctl("POST", "/cameras/cam1/down?mode=closed");
    sim.wait_log("ERR [path cam1] [RTSP source]", 8 * S);
    assert!(
        !sim.log()
            .lines()
            .any(|l| l.contains(" INF ") && !l.contains("[mtxsim]")),
        "{}",
        sim.log()
    );
    let dbg = Sim::start(&format!(
        "{LISTENERS}logLevel: debug\npaths:\n  cam1:\n    source: rtsp://10.0.0.1/s\n"
    ));
    dbg.wait_log("DEB [path cam1] [RTSP source] connecting", 3 * S);
    let (code, log) = failing("logLevel: loud\n");
    assert_eq!(code, Some(1));
    assert!(log.contains("ERR: invalid log level: loud"), "{log}");
}

/// The shipped `mediamtx.yml` starts the sim (its fixed ports moved to free ones).
#[test]
fn starts_with_the_reference_config() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/mediamtx/mediamtx.yml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("rtspAddress: :8554", "rtspAddress: 127.0.0.1:0")
        .replace("hlsAddress: :8888", "hlsAddress: 127.0.0.1:0")
        .replace("webrtcAddress: :8889", "webrtcAddress: 127.0.0.1:0");
    let sim = Sim::start(&text);
    let l = sim.state()["listeners"].clone();
    assert!(l.get("rtsp").is_some() && l.get("api").is_none(), "{l}");
    assert!(sim.log().contains("INF configuration loaded from"));
}
