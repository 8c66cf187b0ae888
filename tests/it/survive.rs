//! Regression tests for the faults of the box itself (issue "Survive the
//! box itself"): each is named after the fault, end to end against the
//! stand-in where the fault is in the environment (a real deleted tree, a
//! real `sqlite3` process holding a lock, a real second daemon, a real
//! signal).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{mediamtx_pid, Daemon, FakeTelegram, Setup};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn critical_firing(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["severity"] == "critical" && a["phase"] == "firing")
        .collect()
}

/// 1. `rm -rf` of the recordings root while running: MediaMTX writes on
/// into the deleted files until its next segment (a minute by default), so
/// every camera looks stalled at once: one systemic MediaMTX restart (a
/// notice, whichever camera the poll finds first), the tree re-created, the
/// watcher re-armed by itself, and nobody paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_root_deleted_while_running() {
    let d = Daemon::start(Setup {
        recording: "segment_duration = \"60s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    crate::harness::remove_tree_being_written(&d.recordings);
    let deleted = Instant::now();
    // Recording comes back on every camera, seen through new watches.
    d.wait_status(
        "both cameras record in the re-created tree",
        secs(30),
        |s| {
            s["cameras"].as_array().unwrap().iter().all(|c| {
                c["recording"] == true
                    && c["current_segment"]
                        .as_str()
                        .is_some_and(|p| std::path::Path::new(p).exists())
            })
        },
    )
    .await;
    eprintln!(
        "recording seen again {:?} after the deletion",
        deleted.elapsed()
    );
    d.observe(secs(8)).await;
    let alerts = d.alerts().await;
    assert!(critical_firing(&alerts).is_empty(), "no page: {alerts:#?}");
    assert!(d.logs().contains("recordings root"), "{}", d.logs());
}

/// 5. A URL typo (one slash missing) must not put the camera's password in
/// the config error, the status, the alert history, the log or `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_password_never_in_error_messages() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let good = d.config_text(&[(1, "Portaria".into())], "grace_period = \"2s\"\n", "");
    let bad = good.replace(
        "url = \"rtsp://10.0.0.1:554/stream\"",
        "url = \"rtsp:/admin:S3nhaSecreta@10.0.0.1:554/stream\"",
    );
    assert_ne!(good, bad);
    d.write_config_text(&bad);
    let status = d
        .wait_status("the config error", secs(15), |s| {
            s["config_error"].is_string()
        })
        .await;
    let error = status["config_error"].as_str().unwrap();
    assert!(error.contains("cameras[0].url"), "{error}");
    let check = d.cli(&["check-config"]);
    let status_cli = d.cli(&["status"]);
    let alerts = d.alerts().await;
    let everything = format!(
        "{status}\n{alerts:?}\n{}\n{}\n{}\n{}",
        d.logs(),
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&status_cli.stdout),
        String::from_utf8_lossy(&status_cli.stderr),
    );
    assert!(!everything.contains("S3nhaSecreta"), "{everything}");
    assert!(
        everything.contains("admin:***@10.0.0.1"),
        "the redacted URL is still shown: {everything}"
    );
    let db = std::fs::read(d.dir.path().join("state/vms.db")).unwrap_or_default();
    let wal = std::fs::read(d.dir.path().join("state/vms.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(12).any(|w| w == b"S3nhaSecreta"),
            "the password is not in the SQLite history"
        );
    }
}

/// 6. `vms.db` deleted while running: noticed within a check interval and
/// handled as an unusable database (memory, Critical, metric, status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_deleted_while_running() {
    let tg = FakeTelegram::ok().await;
    let d = Daemon::start(Setup {
        extra: tg.config("-1"),
        env: vec![("VMS_TELEGRAM_BOT_TOKEN".into(), "1:T".into())],
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    assert!(d.metrics().await.contains("vms_alert_store_durable 1"));
    std::fs::remove_file(d.dir.path().join("state/vms.db")).unwrap();
    let status = d
        .wait_status("the store error", secs(30), |s| {
            s["alert_store_error"].is_string()
        })
        .await;
    assert!(
        status["alert_store_error"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{status}"
    );
    let text = tg
        .wait_requests(1, secs(15))
        .await
        .first()
        .map(|r| r.text().to_string())
        .unwrap();
    assert!(text.contains("Banco de alertas inutilizável"), "{text}");
    assert!(d.metrics().await.contains("vms_alert_store_durable 0"));
    // Alerts are still stored (in memory) and shown.
    let alerts = d.alerts().await;
    assert!(
        alerts.iter().any(|a| a["issue"] == "alert_store_unusable"),
        "{alerts:?}"
    );
}

/// 7. A second daemon on the same state directory refuses to start, naming
/// the running one, and leaves its MediaMTX alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_daemon_on_the_same_state_dir_refuses() {
    let d = Daemon::start(Setup::default());
    let status = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&status).unwrap();
    let other_port = crate::harness::free_port();
    let text = std::fs::read_to_string(&d.config_path)
        .unwrap()
        .replace(&d.api.to_string(), &format!("127.0.0.1:{other_port}"));
    let other = d.dir.path().join("etc/other.toml");
    std::fs::write(&other, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vms-supervisor"))
        .arg("--config")
        .arg(&other)
        .arg("run")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("another vms-supervisor (pid {})", d.pid())),
        "{stderr}"
    );
    let status = d.status().await.unwrap();
    assert_eq!(mediamtx_pid(&status), Some(mtx), "MediaMTX untouched");
    assert!(crate::harness::alive(mtx));
}

/// 11. Rotating the API token applies without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_api_token_applies_without_restart() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let old = d.wait_token().await;
    let path = d.dir.path().join("api-token");
    let tmp = d.dir.path().join("api-token.new");
    std::fs::write(&tmp, "a-brand-new-token\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let reset = |token: String| {
        let url = format!("http://{}/api/cameras/1/reset", d.api);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(reset("a-brand-new-token".into()).await, 200);
    assert_eq!(reset(old).await, 401);
    let out = d.cli(&["camera", "reset", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 12. A carriage return in a camera name cannot add keys to MediaMTX's
/// file: the name is refused, naming the key, and the daemon keeps running
/// on the old config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carriage_return_in_camera_name_cannot_inject_config() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let before = std::fs::read_to_string(d.dir.path().join("state/mediamtx.yml")).unwrap();
    let text = d.config_text(
        &[(
            1,
            "Portaria\\r  cam_666:\\r    runOnInit: touch /tmp/pwned".into(),
        )],
        "grace_period = \"2s\"\n",
        "",
    );
    d.write_config_text(&text);
    let status = d
        .wait_status("the config error", secs(15), |s| {
            s["config_error"].is_string()
        })
        .await;
    assert!(
        status["config_error"]
            .as_str()
            .unwrap()
            .contains("cameras[0].name"),
        "{status}"
    );
    let after = std::fs::read_to_string(d.dir.path().join("state/mediamtx.yml")).unwrap();
    assert_eq!(before, after);
    assert!(!after.contains("runOnInit"));
    let check = d.cli(&["check-config"]);
    assert_eq!(check.status.code(), Some(78));
}

/// 13. SIGHUP reloads the configuration and says so; SIGUSR1 and SIGUSR2
/// are ignored. None of them stops the daemon or its MediaMTX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_other_signals_do_not_kill() {
    let d = Daemon::start(Setup::default());
    let status = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&status).unwrap();
    d.signal(Signal::SIGUSR1);
    d.signal(Signal::SIGUSR2);
    d.signal(Signal::SIGHUP);
    d.wait_for("the reload log line", secs(10), || async {
        d.logs()
            .contains("SIGHUP: reloading the configuration")
            .then_some(())
    })
    .await;
    d.wait_for("the reload itself", secs(10), || async {
        d.logs().contains("configuration reloaded").then_some(())
    })
    .await;
    d.observe(secs(2)).await;
    let status = d.wait_all_recording(2).await;
    assert_eq!(mediamtx_pid(&status), Some(mtx));
    assert!(
        d.logs().contains("SIGUSR1 received; ignored"),
        "{}",
        d.logs()
    );
}

/// 14. A body over the limit gets a JSON 413, as the API's other errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_a_json_413() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let token = d.wait_token().await;
    let big = format!("{{\"alerts\": [\"{}\"]}}", "x".repeat(1 << 20));
    for path in ["/api/alerts/webhook", "/api/alerts/silences"] {
        let r = reqwest::Client::new()
            .post(format!("http://{}{path}", d.api))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        assert!(v["error"].is_string(), "{path}: {v}");
    }
}

/// 3. A lock on `vms.db` held by another process (an admin's `sqlite3`
/// shell) delays the storage of an alert; it never loses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lock_delays_but_never_loses_an_alert() {
    assert!(
        Command::new("sqlite3").arg("-version").output().is_ok(),
        "the sqlite3 command is missing (scripts/setup installs it)"
    );
    let d = Daemon::start(Setup {
        monitor: "grace_period = \"2s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    let db = d.dir.path().join("state/vms.db");
    // An exclusive transaction held for 12 s, longer than the busy timeout.
    let mut lock = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = lock.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN EXCLUSIVE; SELECT 1;").unwrap();
        stdin.flush().unwrap();
    }
    // Give sqlite3 the lock before the failure.
    std::thread::sleep(Duration::from_millis(500));
    d.sim("POST", "/cameras/cam_1/down").await;
    // The warning is raised while the lock is held.
    d.wait_for("the lock to be noticed", secs(20), || async {
        d.logs().contains("alert database locked").then_some(())
    })
    .await;
    std::thread::sleep(Duration::from_secs(6));
    {
        use std::io::Write;
        let stdin = lock.stdin.as_mut().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
    }
    drop(lock.stdin.take());
    let _ = lock.wait();
    let alerts = d
        .wait_for(
            "the camera's alert, stored after the lock",
            secs(30),
            || async {
                let alerts = d.alerts().await;
                alerts
                    .iter()
                    .any(|a| a["camera_id"] == 1 && a["issue"] == "stream_down")
                    .then_some(alerts)
            },
        )
        .await;
    assert!(
        d.status().await.unwrap()["alert_store_error"].is_null(),
        "a lock is not a broken database"
    );
    assert!(!alerts.is_empty());
}

/// 14. Partial request headers (slowloris) were held without a timeout:
/// the connection is closed after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_are_not_held_forever() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let mut conn = tokio::net::TcpStream::connect(d.api).await.unwrap();
    conn.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(secs(20), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is still open after 20 s");
    let held = t0.elapsed();
    assert!(
        held >= secs(5) && held <= secs(15),
        "closed after {held:?} (timeout 10 s)"
    );
    // The API still answers everyone else.
    assert!(d.status().await.is_some());
}

/// 9. MediaMTX hangs whole (SIGSTOP: its API and its recorders stop), the
/// daemon kills it and starts a new one: every camera's warnings and
/// incidents of the episode resolve once fresh data arrives, and the gap
/// ledger closes the gap instead of saying it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_incidents_resolve_after_a_mediamtx_hang_and_restart() {
    let d = Daemon::start(Setup {
        mediamtx: "stop_timeout = \"2s\"\n".into(),
        ..Setup::default()
    });
    let s = d.wait_all_recording(2).await;
    let pid = mediamtx_pid(&s).unwrap();
    let hung_at = chrono::Utc::now();
    let before = d.alerts().await.len();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    // Something is raised about the hang (every camera stalled at once,
    // MediaMTX hung).
    d.wait_for("an alert about the hang", secs(30), || async {
        (d.alerts().await.len() > before).then_some(())
    })
    .await;
    d.wait_status("a new MediaMTX process", secs(40), |s| {
        mediamtx_pid(s).is_some_and(|p| p != pid)
    })
    .await;
    d.wait_all_recording(2).await;
    // Nothing stays open once every camera records again.
    d.wait_for("every alert of the episode resolved", secs(30), || async {
        let a = d.get("/api/alerts?open=true").await?;
        (a["total"] == 0).then_some(())
    })
    .await;
    let incidents = d.get("/api/alerts/incidents").await.unwrap();
    let still_open: Vec<&Value> = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["resolved_at"].is_null())
        .collect();
    assert!(still_open.is_empty(), "{still_open:#?}");
    // The ledger: the gap of the hang has an end, and footage follows it.
    for camera in [1, 2] {
        let from = (hung_at - chrono::Duration::minutes(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to = (chrono::Utc::now() + chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let ledger = d
            .wait_for("the gap closed in the ledger", secs(20), || async {
                let l = d
                    .get(&format!(
                        "/api/cameras/{camera}/recordings?from={from}&to={to}"
                    ))
                    .await?;
                let time =
                    |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
                let last_span_end = time(&l["spans"].as_array()?.last()?["end"]);
                let closed = l["gaps"]
                    .as_array()?
                    .iter()
                    .all(|g| time(&g["end"]) < last_span_end);
                closed.then_some(l)
            })
            .await;
        let spans = ledger["spans"].as_array().unwrap();
        assert!(
            spans.len() >= 2 && !ledger["gaps"].as_array().unwrap().is_empty(),
            "footage before and after the hang, a gap between: {ledger}"
        );
    }
}
