//! Storage owned by the daemon, end to end against the stand-in: the gap
//! ledger after a camera outage (API and CLI), retention at start, holds.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::harness::{Daemon, Setup};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A camera down for a while shows as a gap with its cause, between two
/// recorded spans, in `GET /api/cameras/{id}/recordings` and in
/// `vms-supervisor recordings`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_ledger_names_a_camera_outage() {
    let d = Daemon::start(Setup {
        recording: "segment_duration = \"3s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    let t0 = Utc::now() - chrono::Duration::seconds(10);
    d.observe(secs(4)).await;
    d.sim("POST", "/cameras/cam_1/down?mode=closed").await;
    d.wait_status("camera 1 down", secs(20), |s| {
        s["cameras"][0]["recording"] == false
    })
    .await;
    d.observe(secs(6)).await;
    d.sim("POST", "/cameras/cam_1/up").await;
    d.wait_all_recording(2).await;
    d.observe(secs(5)).await;
    let t1 = Utc::now();
    let q = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let ledger: Value = d
        .wait_for("a ledger with the outage", secs(30), || async {
            let l = d
                .get(&format!(
                    "/api/cameras/1/recordings?from={}&to={}",
                    q(t0),
                    q(t1)
                ))
                .await?;
            let gaps = l["gaps"].as_array()?;
            gaps.iter()
                .any(|g| g["cause"] == "camera_down")
                .then_some(l)
        })
        .await;
    let spans = ledger["spans"].as_array().unwrap();
    assert!(spans.len() >= 2, "recorded before and after: {ledger:#}");
    let out = d.cli(&["recordings", "1", "--from", &q(t0), "--to", &q(t1)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("GAP") && text.contains("camera_down"),
        "{text}"
    );
    // Camera 2 recorded throughout: no gap caused by a camera.
    let other = d
        .get(&format!(
            "/api/cameras/2/recordings?from={}&to={}",
            q(t0),
            q(t1)
        ))
        .await
        .unwrap();
    assert!(
        other["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["cause"] != "camera_down"),
        "{other:#}"
    );
    // The status names each camera's retention against its footage.
    let st = d.status().await.unwrap();
    let cams = st["storage"]["cameras"]
        .as_array()
        .expect("storage in the status");
    assert_eq!(cams.len(), 2, "{:#}", st["storage"]);
    for c in cams {
        assert_eq!(
            c["required_days"], 90,
            "recording.retention_days by default: {c}"
        );
        assert_eq!(
            c["compliant"], true,
            "a camera younger than its retention: {c}"
        );
    }
    // Bad requests are JSON 4xx.
    for bad in [
        format!("/api/cameras/1/recordings?from={}&to={}", q(t1), q(t0)),
        "/api/cameras/1/recordings?from=yesterday&to=today".to_string(),
        format!("/api/cameras/99/recordings?from={}&to={}", q(t0), q(t1)),
    ] {
        let r = d
            .client()
            .get(format!("http://{}{bad}", d.api))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{bad}: {v}");
    }
}

/// Footage older than the retention is deleted by the daemon (the catalog
/// finds it at start, the sweep removes it); MediaMTX's own deletion is off.
/// A held range survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_footage_but_never_held_footage() {
    let tz = chrono_tz::America::Sao_Paulo;
    let day = |ago: i64| {
        (Utc::now() - chrono::Duration::days(ago))
            .with_timezone(&tz)
            .format("%Y-%m-%d")
            .to_string()
    };
    let (old, held_day) = (day(100), day(95));
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    // A hold, on the catalog the first start made.
    let from = format!("{held_day} 00:00");
    let to = format!("{held_day} 23:59");
    let out = d.cli(&[
        "hold",
        "add",
        "2",
        "--from",
        &from,
        "--to",
        &to,
        "--reason",
        "inquérito 123/2026",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = d.cli(&["hold", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("inquérito 123/2026"));
    // While the daemon is down, old footage appears (as after a restore or
    // a disk moved in from another box), with its own old times.
    d.kill();
    let mut files = Vec::new();
    for (cam, date) in [(1, &old), (1, &old), (2, &held_day)] {
        let name = if files.len() == 1 {
            "10-01-00-000000.mp4"
        } else {
            "10-00-00-000000.mp4"
        };
        let path = d.path(&format!("recordings/cam_{cam}/{date}/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"old footage").unwrap();
        let local = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(10, 1, 0)
            .unwrap()
            .and_local_timezone(tz)
            .unwrap();
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(local.timestamp() as u64);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        files.push(path);
    }
    d.spawn();
    d.wait_all_recording(2).await;
    d.wait_for("the old footage deleted by retention", secs(30), || async {
        (!files[0].exists() && !files[1].exists()).then_some(())
    })
    .await;
    assert!(files[2].exists(), "held footage is never deleted");
    let yml = std::fs::read_to_string(d.path("state/mediamtx.yml")).unwrap();
    assert!(yml.contains("recordDeleteAfter: \"0s\""), "{yml}");
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() * st.fragment_size()
}

/// A real small filesystem (a 24 MiB tmpfs holding the recordings directory)
/// fills up. First the floor: old footage is evicted, oldest first, so that
/// `storage.min_free` stays free while the cameras go on recording. Then,
/// with what is left held, the disk really fills: one "disco cheio"
/// Critical for the box and no page per camera; with space back, every
/// camera records again and the incident resolves. Needs root (CI is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_really_fills_evicts_old_footage_then_pages_once() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("this test mounts a tmpfs: run the suite as root (CI does)");
    }
    const MIB: usize = 1 << 20;
    let tz = chrono_tz::America::Sao_Paulo;
    let old_day = (Utc::now() - chrono::Duration::days(3))
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string();
    // Six old 2 MiB segments of camera 1, three days ago (within retention).
    let old: Vec<String> = (0..6)
        .map(|i| format!("recordings/cam_1/{old_day}/10-0{i}-00-000000.mp4"))
        .collect();
    let d = Daemon::start(Setup {
        recordings_tmpfs: Some(24 * MIB as u64),
        files: old
            .iter()
            .map(|p| (p.clone(), vec![7u8; 2 * MIB]))
            .collect(),
        extra: "[storage]\nmin_free = \"8MiB\"\n".into(),
        recording: "segment_duration = \"2s\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    let path = |p: &String| d.recordings.join(p.strip_prefix("recordings/").unwrap());
    assert!(old.iter().all(|p| path(p).exists()));

    // 9 MiB of something else arrives: less than the floor is free, and the
    // daemon deletes the oldest footage until the floor is back.
    std::fs::write(d.recordings.join("other-data"), vec![1u8; 9 * MIB]).unwrap();
    d.wait_for("the floor restored by eviction", secs(30), || async {
        (free_bytes(&d.recordings) >= 8 * MIB as u64).then_some(())
    })
    .await;
    assert!(!path(&old[0]).exists(), "the oldest segment was evicted");
    assert!(path(&old[5]).exists(), "only as much as needed was evicted");
    let alerts = d.alerts().await;
    assert!(
        alerts.iter().any(|a| a["issue"] == "footage_evicted"),
        "{alerts:#?}"
    );
    d.wait_all_recording(2).await;

    // What is left is held: now the disk really fills.
    let out = d.cli(&[
        "hold",
        "add",
        "1",
        "--from",
        &format!("{old_day} 00:00"),
        "--to",
        &format!("{old_day} 23:59"),
        "--reason",
        "inquérito",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filler = d.recordings.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![2u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
    }
    let full = d
        .wait_for("the disk-full incident", secs(30), || async {
            d.alerts()
                .await
                .into_iter()
                .find(|a| a["issue"] == "disk_full" && a["phase"] == "firing")
        })
        .await;
    assert_eq!(full["severity"], "critical", "{full}");
    d.observe(secs(8)).await;
    let alerts = d.alerts().await;
    let disk_full = alerts
        .iter()
        .filter(|a| a["issue"] == "disk_full" && a["phase"] == "firing")
        .count();
    assert_eq!(disk_full, 1, "one incident for the box: {alerts:#?}");
    let per_camera: Vec<_> = alerts
        .iter()
        .filter(|a| {
            a["severity"] == "critical" && a["camera_id"].is_u64() && a["phase"] == "firing"
        })
        .collect();
    assert!(per_camera.is_empty(), "no page per camera: {per_camera:#?}");
    // The held footage survived the full disk.
    assert!(old[1..].iter().filter(|p| path(p).exists()).count() >= 1);
    assert!(path(&old[5]).exists());

    // Space is back: recording resumes and the incident resolves.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(d.recordings.join("other-data")).unwrap();
    d.wait_for("the disk-full incident resolved", secs(30), || async {
        d.alerts()
            .await
            .iter()
            .any(|a| a["issue"] == "disk_full" && a["phase"] == "resolved")
            .then_some(())
    })
    .await;
    d.wait_all_recording(2).await;
}
