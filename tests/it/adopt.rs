//! MediaMTX outlives a restart of the daemon and is adopted by the next one
//! (issue 17): recording never stops because the supervisor restarts.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{alive, camera, eventually, mediamtx_pid, sim_binary, tail, Daemon, Setup};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn size(path: &PathBuf) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_sigkilled_daemon_leaves_mediamtx_recording_and_the_next_one_adopts_it() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&s).unwrap();
    let segments: Vec<PathBuf> = [1, 2]
        .iter()
        .map(|id| PathBuf::from(camera(&s, *id)["current_segment"].as_str().unwrap()))
        .collect();
    let before = files(&d.recordings);

    d.kill();
    // Alone, MediaMTX keeps running and every segment keeps growing.
    assert!(alive(mtx), "MediaMTX died with its daemon");
    for seg in &segments {
        let s0 = size(seg);
        eventually(
            &format!("{} grows with no daemon", seg.display()),
            secs(10),
            || async { (size(seg) > s0).then_some(()) },
        )
        .await;
    }
    assert!(alive(mtx));

    d.spawn();
    let s = d
        .wait_status("the same MediaMTX adopted and up", secs(30), |s| {
            s["mediamtx"]["up"] == true && mediamtx_pid(s) == Some(mtx)
        })
        .await;
    assert_eq!(s["mediamtx"]["restarts"], 0, "an adoption is no restart");
    let logs = d.logs();
    assert!(
        logs.contains("adopting the MediaMTX left running by the previous daemon"),
        "{}",
        tail(&logs, 40)
    );
    // The same segment files still grow: no new segment because of the restart.
    let s = d.wait_all_recording(2).await;
    for (i, seg) in segments.iter().enumerate() {
        let id = i as u32 + 1;
        assert_eq!(
            camera(&s, id)["current_segment"]
                .as_str()
                .map(PathBuf::from)
                .as_ref(),
            Some(seg),
            "camera {id} started a new segment"
        );
        let s0 = size(seg);
        eventually(
            &format!("{} grows after the adoption", seg.display()),
            secs(10),
            || async { (size(seg) > s0).then_some(()) },
        )
        .await;
    }
    assert_eq!(
        files(&d.recordings),
        before,
        "no segment file was started by the restart"
    );
    // Its log lines reach the new daemon through the FIFO.
    d.sim("POST", "/cameras/cam_1/down?mode=closed").await;
    d.wait_status("cam_1 seen down by the new daemon", secs(30), |s| {
        camera(s, 1)["state"] != "online"
    })
    .await;
    d.sim("POST", "/cameras/cam_1/up").await;
    d.wait_all_recording(2).await;

    // Supervised: its exit (not our child) is noticed and it is restarted
    // within the backoff.
    kill(Pid::from_raw(mtx as i32), Signal::SIGKILL).unwrap();
    let s = d
        .wait_status(
            "a new MediaMTX after the adopted one was killed",
            secs(15),
            |s| s["mediamtx"]["up"] == true && mediamtx_pid(s).is_some_and(|p| p != mtx),
        )
        .await;
    assert_eq!(s["mediamtx"]["restarts"], 1);
    d.wait_all_recording(2).await;
}

#[tokio::test]
async fn a_stale_pid_file_naming_another_process_is_neither_adopted_nor_signalled() {
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&s).unwrap();
    d.kill();
    kill(Pid::from_raw(mtx as i32), Signal::SIGKILL).unwrap();
    eventually("the old MediaMTX gone", secs(10), || async {
        (!alive(mtx)).then_some(())
    })
    .await;
    // Its pid now "belongs" to an unrelated process.
    let mut stranger = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let spid = stranger.id();
    std::fs::write(d.path("state/mediamtx.pid"), format!("{spid}\n")).unwrap();

    d.spawn();
    let s = d
        .wait_status("a new MediaMTX started", secs(30), |s| {
            s["mediamtx"]["up"] == true && mediamtx_pid(s).is_some_and(|p| p != spid && p != mtx)
        })
        .await;
    assert!(mediamtx_pid(&s).is_some());
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the unrelated process was signalled"
    );
    let logs = d.logs();
    assert!(
        logs.contains("names another process now; it is left alone"),
        "{}",
        tail(&logs, 40)
    );
    assert!(!logs.contains("adopting the MediaMTX"));
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[tokio::test]
async fn sigterm_outside_systemd_stops_mediamtx_and_under_systemd_only_with_the_stop_marker() {
    // Outside systemd: SIGTERM stops MediaMTX, as before.
    let d = Daemon::start(Setup::default());
    let s = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&s).unwrap();
    assert!(d.stop(secs(30)).success());
    assert!(!alive(mtx), "MediaMTX outlived `run` stopped by SIGTERM");
    assert!(d.mediamtx_left().is_none());

    // Under systemd (INVOCATION_ID set): SIGTERM is a restart, MediaMTX
    // keeps running for the next daemon...
    let d = Daemon::start(Setup {
        env: vec![("INVOCATION_ID".into(), "0123456789abcdef".into())],
        ..Setup::default()
    });
    let s = d.wait_all_recording(2).await;
    let mtx = mediamtx_pid(&s).unwrap();
    assert!(d.stop(secs(30)).success());
    assert!(alive(mtx), "a restart under systemd stopped MediaMTX");
    assert_eq!(
        d.mediamtx_left(),
        Some(mtx),
        "the pid file is kept for the next daemon"
    );
    d.spawn();
    d.wait_status("adopted", secs(30), |s| {
        mediamtx_pid(s) == Some(mtx) && s["mediamtx"]["up"] == true
    })
    .await;
    // ...unless the unit's ExecStop= left the stop marker (`systemctl stop`).
    std::fs::write(d.path("state/mediamtx.stop"), "").unwrap();
    assert!(d.stop(secs(30)).success());
    assert!(!alive(mtx), "a stop for good left MediaMTX running");
    assert!(
        !d.path("state/mediamtx.stop").exists(),
        "the marker is consumed"
    );
}

#[tokio::test]
async fn a_mediamtx_binary_replaced_while_the_daemon_was_down_is_adopted_then_restarted_once_with_an_info_notice(
) {
    let setup = Setup::default();
    let (cameras, monitor) = (setup.cameras.clone(), setup.monitor.clone());
    let d = Daemon::start(setup);
    let s = d.wait_all_recording(2).await;
    let first = mediamtx_pid(&s).unwrap();
    // MediaMTX runs from a file of the test's own, which the test can replace.
    d.kill();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    eventually("the first MediaMTX gone", secs(10), || async {
        (!alive(first)).then_some(())
    })
    .await;
    let binary = d.path("bin/mediamtx");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(sim_binary(), &binary).unwrap();
    let text = d.config_text(&cameras, &monitor, "");
    let ours = text.replace(
        &format!("binary = {:?}", sim_binary()),
        &format!("binary = {binary:?}"),
    );
    assert_ne!(ours, text, "the harness's binary line was not found");
    d.write_config_text(&ours);
    d.spawn();
    let s = d.wait_all_recording(2).await;
    let old = mediamtx_pid(&s).unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{old}/exe")).unwrap(),
        binary,
        "MediaMTX does not run the test's binary"
    );

    // The daemon is down while a new MediaMTX is installed at the configured
    // path (a new file renamed over the old one, as a package manager does).
    d.kill();
    let staged = d.path("bin/mediamtx.new");
    std::fs::copy(sim_binary(), &staged).unwrap();
    std::fs::rename(&staged, &binary).unwrap();
    assert!(alive(old));

    // The next daemon adopts the old MediaMTX, then restarts it once, on
    // purpose, to run the new binary, with one Info notice.
    d.spawn();
    let s = d
        .wait_status("the new MediaMTX binary up", secs(30), |s| {
            s["mediamtx"]["up"] == true && mediamtx_pid(s).is_some_and(|p| p != old)
        })
        .await;
    let new = mediamtx_pid(&s).unwrap();
    eventually("the old MediaMTX gone", secs(15), || async {
        (!alive(old)).then_some(())
    })
    .await;
    let logs = d.logs();
    assert!(
        logs.contains("a new binary was installed since it started"),
        "{}",
        tail(&logs, 40)
    );
    d.wait_all_recording(2).await;
    d.observe(secs(3)).await;
    let s = d.status().await.unwrap();
    assert_eq!(mediamtx_pid(&s), Some(new), "restarted more than once");
    let alerts = d.alerts().await;
    let upgraded: Vec<_> = alerts
        .iter()
        .filter(|a| a["issue"] == "mediamtx_upgraded")
        .collect();
    assert_eq!(upgraded.len(), 1, "{alerts:#?}");
    assert_eq!(upgraded[0]["severity"], "info");
    assert!(
        !alerts.iter().any(|a| a["issue"] == "mediamtx_down"),
        "a deliberate upgrade restart is no outage: {alerts:#?}"
    );
}
