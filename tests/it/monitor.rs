//! End to end: camera health and the recovery ladder (issue 6), the real
//! daemon against `mediamtx-sim` with the default timings of docs/design.md §3-§4 unless a
//! test says otherwise. Measured times are printed (`--nocapture`).

use std::time::{Duration, Instant};

use crate::harness::{camera, Daemon, Setup};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn a_silent_camera_is_detected_and_recovered_when_it_returns() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    d.sim("POST", "/cameras/cam_1/down?mode=silent").await;
    let t0 = Instant::now();
    d.wait_status("camera 1 seen failing", secs(12), |s| {
        camera(s, 1)["state"] != "online"
    })
    .await;
    let detected = t0.elapsed();
    println!("silent camera detected after {detected:?}");
    assert!(detected < secs(12));
    assert_eq!(
        camera(&d.status().await.unwrap(), 2)["state"],
        "online",
        "the other camera is untouched"
    );
    // Bring it back while the daemon verifies its re-created path.
    d.wait_status("level 1 verifying", secs(10), |s| {
        camera(s, 1)["recovery_step"] == "verifying"
    })
    .await;
    d.sim("POST", "/cameras/cam_1/up").await;
    let t1 = Instant::now();
    d.wait_status("camera 1 online and recording again", secs(15), |s| {
        let c = camera(s, 1);
        c["state"] == "online" && c["recording"] == true
    })
    .await;
    let recovered = t1.elapsed();
    println!("recovered {recovered:?} after the camera returned");
    assert!(recovered < secs(15));
    let alerts = d.alerts().await;
    assert!(
        alerts
            .iter()
            .any(|a| a["issue"] == "stream_down" && a["severity"] == "warning"),
        "{alerts:#?}"
    );
    assert!(
        alerts.iter().any(|a| a["issue"] == "stream_recovered"),
        "{alerts:#?}"
    );
}

#[tokio::test]
async fn a_recorder_stall_is_detected_and_repaired() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let before = d.sim_state().await.unwrap()["paths"]["cam_1"]["segment"].clone();
    d.sim("POST", "/recorder/cam_1/stall").await;
    let t0 = Instant::now();
    let s = d
        .wait_status("the stall seen", secs(10), |s| {
            camera(s, 1)["problem"] == "recording_stalled"
        })
        .await;
    println!("recording stall detected after {:?}", t0.elapsed());
    assert!(t0.elapsed() < secs(10));
    assert_eq!(camera(&s, 1)["state"], "recovering");
    assert_eq!(camera(&s, 1)["recovery_level"], 2);
    // The daemon removes and re-creates the path: clear the fault then.
    d.wait_path_recreated("cam_1").await;
    d.sim("POST", "/recorder/cam_1/resume").await;
    let s = d
        .wait_status("camera 1 recording again", secs(20), |s| {
            let c = camera(s, 1);
            c["state"] == "online" && c["recording"] == true
        })
        .await;
    assert_ne!(
        camera(&s, 1)["current_segment"].to_string(),
        before.to_string(),
        "a new segment"
    );
    let alerts = d.alerts().await;
    assert!(
        alerts.iter().any(|a| a["issue"] == "recording_stalled"),
        "{alerts:#?}"
    );
    assert!(
        alerts.iter().any(|a| a["issue"] == "recording_recovered"),
        "{alerts:#?}"
    );
    assert!(
        !alerts.iter().any(|a| a["issue"] == "recording_stopped"),
        "repaired before it became critical"
    );
}

#[tokio::test]
async fn a_camera_that_never_returns_goes_offline_until_reset() {
    let d = Daemon::start(Setup {
        monitor:
            "grace_period = \"2s\"\nrecovery_remove_wait = \"1s\"\nrecovery_verify_wait = \"3s\"\n"
                .into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    d.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let s = d
        .wait_status("camera 2 offline", secs(40), |s| {
            camera(s, 2)["state"] == "offline"
        })
        .await;
    assert_eq!(camera(&s, 2)["consecutive_failures"], 3);
    assert_eq!(camera(&s, 2)["recoveries_total"], 3);
    let alerts = d.alerts().await;
    let offline: Vec<_> = alerts
        .iter()
        .filter(|a| a["issue"] == "camera_offline")
        .collect();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0]["severity"], "critical");
    assert_eq!(offline[0]["recovery_attempts"], 3);
    // No further attempts while offline.
    d.observe(secs(10)).await;
    let s = d.status().await.unwrap();
    assert_eq!(camera(&s, 2)["state"], "offline");
    assert_eq!(camera(&s, 2)["recoveries_total"], 3);
    assert_eq!(camera(&s, 1)["state"], "online");
    // `camera reset` brings it back under supervision: attempts resume.
    let out = d.cli(&["camera", "reset", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_status("a new attempt after the reset", secs(10), |s| {
        camera(s, 2)["recoveries_total"].as_u64() > Some(3)
    })
    .await;
    // An unknown camera is a 404 JSON error; no token is a 401.
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{}/api/cameras/99/reset", d.api))
        .bearer_auth(d.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let r = c
        .post(format!("http://{}/api/cameras/2/reset", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn mediamtx_down_is_one_incident_not_one_per_camera() {
    let d = Daemon::start(Setup {
        cameras: (1..=4).map(|i| (i, format!("Câmera {i}"))).collect(),
        mediamtx: "restart_delay = \"3s\"\n".into(),
        ..Setup::default()
    });
    let s = d.wait_all_recording(4).await;
    let pid = s["mediamtx"]["pid"].as_u64().unwrap() as u32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_status("MediaMTX back", secs(20), |s| {
        s["mediamtx"]["up"] == true && s["mediamtx"]["pid"].as_u64() != Some(pid as u64)
    })
    .await;
    d.wait_all_recording(4).await;
    let alerts = d.alerts().await;
    let camera_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| !a["camera_id"].is_null())
        .collect();
    assert!(camera_alerts.is_empty(), "{camera_alerts:#?}");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["issue"] == "mediamtx_down" && a["phase"] == "firing")
            .count(),
        1
    );
}

/// A path removed behind the daemon's back (or by a recovery the daemon did
/// not finish) is put back by the convergence check.
#[tokio::test]
async fn a_missing_path_is_put_back_while_running() {
    let d = Daemon::start(Setup {
        monitor: "grace_period = \"2s\"\ninterval = \"5s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    let st = d.sim_state().await.unwrap();
    let api = st["listeners"]["api"].as_str().unwrap().to_string();
    let r = d
        .mediamtx_client()
        .delete(format!("http://{api}/v3/config/paths/delete/cam_2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d.wait_for("cam_2 configured in MediaMTX again", secs(15), || async {
        let st = d.sim_state().await?;
        st["paths"]["cam_2"].is_object().then_some(())
    })
    .await;
    d.wait_all_recording(2).await;
}

/// The daemon killed between "remove path" and "re-create path": when it
/// starts again, the camera records again (the adopted MediaMTX gets the
/// path back through the convergence of its running config).
#[tokio::test]
async fn a_crash_in_the_middle_of_a_recovery_converges_on_restart() {
    let d = Daemon::start(Setup {
        monitor: "grace_period = \"2s\"\nrecovery_remove_wait = \"10s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    d.sim("POST", "/recorder/cam_1/stall").await;
    d.wait_for("cam_1 removed by level 2", secs(15), || async {
        let st = d.sim_state().await?;
        st["paths"]["cam_1"].is_null().then_some(())
    })
    .await;
    d.kill();
    d.spawn();
    // The running MediaMTX is adopted (issue 17): the new daemon converges
    // its paths through the API, re-creating cam_1; the stand-in's stall
    // fault is cleared by hand as a re-created recorder would be.
    d.wait_path_recreated("cam_1").await;
    d.sim("POST", "/recorder/cam_1/resume").await;
    let s = d.wait_all_recording(2).await;
    assert_eq!(camera(&s, 1)["state"], "online");
}
