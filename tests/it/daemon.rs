//! End to end: the real daemon supervising the `mediamtx-sim` stand-in.
//! MediaMTX's life (issue 5): restarts, hang, memory, storm, graceful stop,
//! config edits, systemd notifications.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::harness::{alive, camera, mediamtx_pid, mvhd_duration, tail, Daemon, Setup};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Waits for MediaMTX to be back with a new pid after `old` went away.
async fn wait_restarted(d: &Daemon, old: u32, within: Duration) -> serde_json::Value {
    d.wait_status("MediaMTX restarted with a new pid", within, |s| {
        s["mediamtx"]["up"] == true && mediamtx_pid(s).is_some_and(|p| p != old)
    })
    .await
}

#[tokio::test]
async fn records_every_camera_and_reports_health() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let c1 = camera(&s, 1);
    assert_eq!(c1["name"], "Portaria");
    let seg = c1["current_segment"].as_str().unwrap();
    assert!(
        seg.starts_with(d.recordings.join("cam_1").to_str().unwrap()),
        "{seg}"
    );
    assert!(std::path::Path::new(seg).is_file());
    // The health document of docs/design.md §6.1.
    let h = d.get("/api/cameras/health").await.unwrap();
    assert_eq!(h["total"], 2);
    assert_eq!(h["online"], 2);
    assert_eq!(h["recovering"], 0);
    assert_eq!(h["offline"], 0);
    assert_eq!(h["recording_health"]["active"], 2);
    assert_eq!(h["recording_health"]["failed"], 0);
    assert!(h["recording_health"]["disk_usage"]
        .as_str()
        .unwrap()
        .ends_with('%'));
    assert!(h["recent_alerts"].is_array());
    // The status command prints the dashboard text of docs/design.md §5.2 and exits 0.
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("🟢 Online: 2 câmeras"), "{text}");
    assert!(text.contains("🔴 Offline: 0 câmeras"), "{text}");
    assert!(text.contains("Alertas Recentes:"), "{text}");
    assert!(!text.contains("Atenção"), "nothing to warn about: {text}");
}

#[tokio::test]
async fn sigterm_finalizes_segments_and_leaves_no_mediamtx() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let pid = mediamtx_pid(&s).unwrap();
    let seg = std::path::PathBuf::from(camera(&s, 1)["current_segment"].as_str().unwrap());
    assert_eq!(mvhd_duration(&seg), 0, "still being written");
    let t0 = Instant::now();
    let st = d.stop(secs(15));
    assert_eq!(st.code(), Some(0), "{}", tail(&d.logs(), 20));
    assert!(
        t0.elapsed() < secs(11),
        "within the stop budget: {:?}",
        t0.elapsed()
    );
    assert!(!alive(pid), "MediaMTX {pid} is still running");
    assert!(
        mvhd_duration(&seg) > 0,
        "the segment was finalized (duration patched)"
    );
}

/// The rule changed with issue 17: MediaMTX outlives a killed daemon and
/// keeps recording until the next daemon adopts it (`tests/it/adopt.rs`).
#[tokio::test]
async fn a_killed_daemon_leaves_mediamtx_recording_for_the_next_one() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let pid = mediamtx_pid(&s).unwrap();
    d.kill();
    assert!(alive(pid), "MediaMTX died with its daemon");
    assert_eq!(d.mediamtx_left(), Some(pid), "the pid file names it");
}

#[tokio::test]
async fn every_kind_of_exit_is_restarted_and_recorded() {
    let d = Daemon::start(Setup {
        mediamtx: "restart_delay = \"500ms\"\n".into(),
        ..Setup::default()
    });
    let s = d.wait_all_recording(2).await;
    let mut pid = mediamtx_pid(&s).unwrap();
    // SIGKILL, a clean-looking exit 0 (as after a fatal reload), an abort.
    for (what, inject) in [("SIGKILL", 0), ("exit code 0", 1), ("SIGABRT", 2)] {
        match inject {
            0 => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL)
                .unwrap(),
            1 => {
                d.sim("POST", "/exit?code=0").await;
            }
            _ => {
                d.sim("POST", "/crash").await;
            }
        }
        let s = wait_restarted(&d, pid, secs(15)).await;
        let last = s["mediamtx"]["last_exit"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            last.contains(what.trim_start_matches("exit code ")) || last.contains(what),
            "{what}: {last}"
        );
        pid = mediamtx_pid(&s).unwrap();
        d.wait_all_recording(2).await;
    }
    let s = d.status().await.unwrap();
    assert!(s["mediamtx"]["restarts"].as_u64().unwrap() >= 3);
    // One incident per outage, stored as alerts; no per-camera alerts.
    let alerts = d.alerts().await;
    let down: Vec<_> = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_down" && a["phase"] == "firing")
        .collect();
    assert_eq!(down.len(), 3, "{alerts:#?}");
    assert!(
        alerts.iter().all(|a| a["camera_id"].is_null()),
        "{alerts:#?}"
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("vms_mediamtx_restarts_total{reason=\"exited\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hung_mediamtx_is_stopped_and_restarted() {
    let d = Daemon::start(Setup {
        mediamtx: "stop_timeout = \"3s\"\n".into(),
        ..Setup::default()
    });
    let s = d.wait_all_recording(2).await;
    let pid = mediamtx_pid(&s).unwrap();
    d.sim("POST", "/api/hang").await;
    // 3 probes 2 s apart, then SIGTERM (the sim still stops on it), then a
    // new process. The stand-in keeps its faults across restarts: clear the
    // hang on the new process, as a restart clears a real hang.
    d.wait_status("a new MediaMTX process", secs(20), |s| {
        mediamtx_pid(s).is_some_and(|p| p != pid)
    })
    .await;
    assert!(!alive(pid));
    d.unhang().await;
    let s = wait_restarted(&d, pid, secs(20)).await;
    assert!(s["mediamtx"]["restarts"].as_u64().unwrap() >= 1);
    let alerts = d.alerts().await;
    assert!(
        alerts.iter().any(|a| a["issue"] == "mediamtx_down"
            && a["details"].as_str().unwrap_or("").contains("hung")),
        "{alerts:#?}"
    );
    // The fault is in memory only; the new process answers.
    d.wait_all_recording(2).await;
}

#[tokio::test]
async fn memory_growth_restarts_mediamtx_with_a_warning() {
    let d = Daemon::start(Setup {
        mediamtx: "memory_limit = \"80MiB\"\nmemory_limit_for = \"2s\"\n".into(),
        ..Setup::default()
    });
    let s = d.wait_all_recording(2).await;
    let pid = mediamtx_pid(&s).unwrap();
    d.sim("POST", "/memory/grow?mib_per_sec=40").await;
    wait_restarted(&d, pid, secs(20)).await;
    let alerts = d.alerts().await;
    let mem: Vec<_> = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_memory")
        .collect();
    assert_eq!(mem.len(), 1, "{alerts:#?}");
    assert_eq!(mem[0]["severity"], "warning");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("vms_mediamtx_restarts_total{reason=\"memory\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_restart_storm_is_one_critical_incident_and_bounded() {
    let d = Daemon::start(Setup {
        mediamtx: "restart_delay = \"100ms\"\nrestart_max_delay = \"2s\"\nstorm_restarts = 3\nstorm_window = \"1m\"\n".into(),
        faults: Some(json!({"crash_at_start": true})),
        ..Setup::default()
    });
    d.wait_for("a restart storm alert", secs(20), || async {
        let alerts = d.alerts().await;
        alerts
            .iter()
            .any(|a| a["issue"] == "mediamtx_restart_storm")
            .then_some(())
    })
    .await;
    // The published status (once a second) catches up with the alert.
    let first = d
        .wait_status("the storm in the status", secs(5), |s| {
            s["mediamtx"]["restart_storm"] == true
        })
        .await["mediamtx"]["restarts"]
        .as_u64()
        .unwrap();
    // Over the next 6 s, restarts continue at the capped 2 s delay, no faster.
    d.observe(secs(6)).await;
    let later = d.status().await.unwrap()["mediamtx"]["restarts"]
        .as_u64()
        .unwrap();
    assert!(later - first <= 4, "{first} -> {later} restarts in 6 s");
    let alerts = d.alerts().await;
    let storms: Vec<_> = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_restart_storm")
        .collect();
    assert_eq!(storms.len(), 1, "{alerts:#?}");
    assert_eq!(storms[0]["severity"], "critical");
    let downs = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_down" && a["phase"] == "firing")
        .count();
    assert_eq!(downs, 1, "one outage, one incident");
    // The fault cleared: it recovers.
    d.sim("PUT", "/faults").await;
    std::fs::write(d.path("faults.json"), "{}").unwrap();
    d.wait_all_recording(2).await;
}

/// Seconds since the daemon published status `s`.
fn status_age(s: &serde_json::Value) -> f64 {
    let updated = chrono::DateTime::parse_from_rfc3339(s["updated_at"].as_str().unwrap()).unwrap();
    (chrono::Utc::now() - updated.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
}

/// The API stays hung across restarts (the stand-in keeps the fault): every
/// new MediaMTX is judged hung in turn, the restarts become a storm, and
/// through it all the daemon keeps deciding and publishing; once the hang
/// clears, the next MediaMTX runs and every camera records again. (A status
/// is published every second; 3 s leaves room for a loaded CI machine.)
#[tokio::test]
async fn a_mediamtx_hung_at_every_start_storms_and_recovers_when_the_hang_clears() {
    let d = Daemon::start(Setup {
        mediamtx: "stop_timeout = \"2s\"\nstartup_timeout = \"2s\"\nrestart_delay = \"100ms\"\nrestart_max_delay = \"2s\"\nstorm_restarts = 2\nstorm_window = \"1m\"\n".into(),
        monitor: "probe_timeout = \"500ms\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    d.sim("POST", "/api/hang").await;
    // Every status read during the storm is fresh: the loop never stops.
    let stale = std::cell::Cell::new(0.0f64);
    let s = d
        .wait_status(
            "a restart storm of hung MediaMTX processes",
            secs(60),
            |s| {
                stale.set(stale.get().max(status_age(s)));
                s["mediamtx"]["restart_storm"] == true
            },
        )
        .await;
    assert!(s["mediamtx"]["restarts"].as_u64().unwrap() >= 3, "{s}");
    d.observe(secs(5)).await;
    let s = d.status().await.unwrap();
    let age = status_age(&s);
    assert!(age < 3.0, "the status is {age} s old during the storm: {s}");
    assert!(
        stale.get() < 3.0,
        "a status {} s old was read during the storm",
        stale.get()
    );
    d.unhang().await;
    // Restarts are 2 s apart at most now: the next one runs.
    d.wait_all_recording(2).await;
    let alerts = d.alerts().await;
    let storms = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_restart_storm" && a["phase"] == "firing")
        .count();
    assert_eq!(storms, 1, "{alerts:#?}");
}

#[tokio::test]
async fn config_edits_touch_only_the_cameras_that_changed() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let seg1 = camera(&s, 1)["current_segment"]
        .as_str()
        .unwrap()
        .to_string();
    let monitor = "grace_period = \"2s\"\n";
    // Remove camera 2, add camera 3.
    d.write_config(
        &[(1, "Portaria".into()), (3, "Recepção".into())],
        monitor,
        "",
    );
    let s = d
        .wait_status("camera 3 recording, camera 2 gone", secs(20), |s| {
            let cams = s["cameras"].as_array().unwrap();
            cams.len() == 2 && cams.iter().any(|c| c["id"] == 3 && c["recording"] == true)
        })
        .await;
    assert_eq!(
        camera(&s, 1)["current_segment"].as_str().unwrap(),
        seg1,
        "camera 1 kept its segment file"
    );
    let sim = d.sim_state().await.unwrap();
    assert!(
        sim["paths"].get("cam_2").is_none(),
        "cam_2 removed from MediaMTX"
    );

    // An invalid edit keeps the old config running, names the key, warns.
    d.write_config(
        &[(1, "Portaria".into()), (3, "Recepção".into())],
        "grace_period = \"2s\"\nstall_after = \"soon\"\n",
        "",
    );
    let s = d
        .wait_status("the config error is reported", secs(10), |s| {
            s["config_error"].is_string()
        })
        .await;
    assert!(
        s["config_error"]
            .as_str()
            .unwrap()
            .contains("monitor.stall_after"),
        "{s}"
    );
    assert_eq!(s["cameras"].as_array().unwrap().len(), 2);
    assert!(d.logs().contains("monitor.stall_after"));
    let out = d.cli(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("⚠ Configuração inválida, a anterior continua em uso: ")
            && status.contains("monitor.stall_after"),
        "{status}"
    );
    d.wait_for("a config_invalid warning", secs(5), || async {
        d.alerts()
            .await
            .iter()
            .any(|a| a["issue"] == "config_invalid" && a["severity"] == "warning")
            .then_some(())
    })
    .await;
    let s = d.wait_all_recording(2).await;
    assert_eq!(camera(&s, 1)["current_segment"].as_str().unwrap(), seg1);
    // Both edits are in the audit trail: what changed, and what was refused.
    let audit = d
        .get("/api/audit?action=config_reload&limit=10")
        .await
        .unwrap();
    let rows = audit["entries"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["actor"] == "system"
            && r["detail"] == "sections cameras; cameras added 3; removed 2"),
        "{audit}"
    );
    let refused = d
        .get("/api/audit?action=config_reload_refused&limit=10")
        .await
        .unwrap();
    assert!(
        refused["entries"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("monitor.stall_after: "),
        "{refused}"
    );

    // Two edits inside one second both take effect.
    d.write_config(
        &[
            (1, "Portaria".into()),
            (3, "Recepção".into()),
            (4, "Pátio".into()),
        ],
        monitor,
        "",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.write_config(
        &[
            (1, "Portaria".into()),
            (3, "Recepção".into()),
            (4, "Pátio".into()),
            (5, "Garagem".into()),
        ],
        monitor,
        "",
    );
    let s = d.wait_all_recording(4).await;
    assert!(s["config_error"].is_null());
    assert_eq!(camera(&s, 1)["current_segment"].as_str().unwrap(), seg1);
}

#[tokio::test]
async fn systemd_notifications_arrive_on_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(secs(30))).unwrap();
    let d = Daemon::start(Setup {
        env: vec![
            ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "1000000".into()),
        ],
        ..Setup::default()
    });
    // The harness removes NOTIFY_SOCKET by default; Setup.env puts it back.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + secs(30);
    while !(seen.contains("READY=1")
        && seen.contains("WATCHDOG=1")
        && seen.contains("STATUS=2 cameras: 2 online"))
        && Instant::now() < deadline
    {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    assert!(seen.contains("STATUS=2 cameras: 2 online"), "{seen}");
    // READY came once MediaMTX answered; the API listener was already up.
    d.wait_status("MediaMTX up", secs(2), |s| s["mediamtx"]["up"] == true)
        .await;
    d.stop(secs(15));
    let n = sock.recv(&mut buf).unwrap();
    let mut rest = String::from_utf8_lossy(&buf[..n]).to_string();
    while !rest.contains("STOPPING=1") {
        let n = sock.recv(&mut buf).unwrap();
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}
