//! Evidence export against the real daemon and the stand-in: an admin
//! exports a recorded range; the files it downloads pass `sha256sum -c`
//! with the export's own `SHA256SUMS`, their hashes are the manifest's and
//! the audit trail's, the video lasts as long as the range (ffprobe), a
//! range across an outage becomes one file per recorded span with the gap
//! in the manifest, and nobody but an admin of the camera gets anything.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{eventually, Daemon, Login, Setup};

const PW: &str = "uma senha longa de teste";

fn t(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The recorded spans of a camera, as the playback list gives them.
async fn spans(who: &Login, camera: u32) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let r = who
        .request(Method::GET, &format!("/api/cameras/{camera}/playback/list"))
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return Vec::new();
    }
    let list: Value = r.json().await.unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let start = t(&s["start"]);
            let d = s["duration"].as_f64().unwrap();
            (
                start,
                start + chrono::Duration::milliseconds((d * 1000.0) as i64),
            )
        })
        .collect()
}

/// Waits for a recorded span of camera 1 at least `secs` long; its bounds.
async fn recorded(who: &Login, secs: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    eventually(
        &format!("{secs} s of recording of camera 1"),
        Duration::from_secs(60),
        || async {
            spans(who, 1)
                .await
                .into_iter()
                .find(|(s, e)| (*e - *s).num_seconds() >= secs)
        },
    )
    .await
}

async fn export(who: &Login, camera: u32, body: Value) -> (u16, Value) {
    let r = who
        .request(Method::POST, &format!("/api/cameras/{camera}/exports"))
        .timeout(Duration::from_secs(60))
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// The duration of a media file, by ffprobe.
fn probe_duration(file: &std::path::Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("running ffprobe (scripts/setup installs ffmpeg)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe {}: {text} {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Downloads every file of an export into `dir`; the response headers of
/// the first MP4.
async fn download(who: &Login, m: &Value, dir: &std::path::Path) -> reqwest::header::HeaderMap {
    let id = m["id"].as_str().unwrap();
    let mut names: Vec<String> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.extend(["manifest.json".to_string(), "SHA256SUMS".to_string()]);
    let mut first = None;
    for name in names {
        let r = who
            .request(Method::GET, &format!("/api/exports/{id}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let headers = r.headers().clone();
        std::fs::write(dir.join(&name), r.bytes().await.unwrap()).unwrap();
        if name.ends_with(".mp4") && first.is_none() {
            first = Some(headers);
        }
    }
    first.unwrap()
}

#[tokio::test]
async fn an_admin_exports_a_range_that_sha256sum_verifies() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    d.add_user("ada", "admin", "", PW);
    d.add_user("otto", "operator", "", PW);
    d.add_user("vera", "viewer", "", PW);
    d.add_user("alice", "admin", "2", PW);
    let ada = d.login("ada", PW).await;
    let otto = d.login("otto", PW).await;
    let vera = d.login("vera", PW).await;
    let alice = d.login("alice", PW).await;

    // 8 s of a span that has at least 12 s, a second before its end.
    let (_, span_end) = recorded(&ada, 12).await;
    let end = (span_end - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let start = end - chrono::Duration::seconds(8);
    let range = json!({"start": rfc(start), "end": rfc(end), "reason": "Ofício 123/2026"});

    // Nobody else: no session, the token, the admin's session without its
    // CSRF token, a viewer, an operator, an admin of another camera.
    let url = format!("http://{}/api/cameras/1/exports", d.api);
    let r = reqwest::Client::new()
        .post(&url)
        .json(&range)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = d.client().post(&url).json(&range).send().await.unwrap();
    assert_eq!(r.status(), 403, "the API token reads no video");
    // A session's change without its CSRF token (a page of another origin).
    let r = reqwest::Client::new()
        .post(&url)
        .header("cookie", &ada.cookie)
        .json(&range)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no X-CSRF-Token");
    for who in [&vera, &otto, &alice] {
        let (code, body) = export(who, 1, range.clone()).await;
        assert_eq!(code, 403, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }

    // The admin's export.
    let before = Utc::now();
    let t0 = std::time::Instant::now();
    let (code, m) = export(&ada, 1, range.clone()).await;
    println!("export: an 8 s range answered in {:?}", t0.elapsed());
    assert_eq!(code, 201, "{m}\n{}", crate::harness::tail(&d.logs(), 30));
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["camera_id"], 1);
    assert_eq!(m["camera_name"], "Portaria");
    assert_eq!(m["box_name"], "teste");
    assert!(!m["hostname"].as_str().unwrap().is_empty());
    assert_eq!(m["exported_by"], "ada");
    assert_eq!(m["reason"], "Ofício 123/2026");
    assert_eq!(t(&m["start"]), start);
    assert_eq!(t(&m["end"]), end);
    assert!(t(&m["exported_at"]) >= before - chrono::Duration::seconds(1));
    assert!(m["supervisor_version"]
        .as_str()
        .unwrap()
        .starts_with(env!("CARGO_PKG_VERSION")));
    assert_eq!(m["gaps"], json!([]), "{m}");
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{m}");

    // The files, downloaded as a prosecutor would get them.
    let dir = tempfile::tempdir().unwrap();
    let headers = download(&ada, &m, dir.path()).await;
    assert_eq!(headers["content-type"], "video/mp4");
    let name = files[0]["name"].as_str().unwrap();
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{name}\"").as_str()
    );
    // The checksum list and the manifest are saved under the export's id.
    let r = ada
        .request(Method::GET, &format!("/api/exports/{id}/SHA256SUMS"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"{id}_SHA256SUMS\"").as_str()
    );
    let out = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("sha256sum")
        .arg(name)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.split_whitespace().next(),
        files[0]["sha256"].as_str()
    );
    let video = dir.path().join(name);
    assert_eq!(
        std::fs::metadata(&video).unwrap().len(),
        files[0]["size"].as_u64().unwrap()
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(saved, m);
    // The video lasts as long as the range, within the cut of one part
    // (1 s) at each end.
    let seconds = probe_duration(&video);
    println!("export: ffprobe says {seconds} s for an 8 s range");
    assert!((seconds - 8.0).abs() <= 2.0, "{seconds} s for an 8 s range");

    // Listed, and readable by id.
    let list: Value = ada
        .request(Method::GET, "/api/exports")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["exports"][0], m);
    let one: Value = ada
        .request(Method::GET, &format!("/api/exports/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, m);
    // An admin of camera 2 does not see it; others are refused.
    let list: Value = alice
        .request(Method::GET, "/api/exports")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["exports"], json!([]));
    for (who, path) in [
        (&alice, format!("/api/exports/{id}")),
        (&alice, format!("/api/exports/{id}/{name}")),
        (&otto, "/api/exports".to_string()),
        (&vera, format!("/api/exports/{id}/{name}")),
    ] {
        let r = who.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = d
        .client()
        .get(format!("http://{}/api/exports/{id}/{name}", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the token downloads no evidence");
    let r = reqwest::get(format!("http://{}/api/exports", d.api))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // On record: the export with every hash, and the download.
    let audit: Value = ada
        .request(Method::GET, "/api/audit?user=ada")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = audit["entries"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["action"] == "evidence_export")
        .unwrap_or_else(|| panic!("no evidence_export row: {audit}"));
    assert_eq!(row["camera"], 1);
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains(&id), "{detail}");
    assert!(
        detail.contains(&format!("sha256={}", files[0]["sha256"].as_str().unwrap())),
        "{detail}"
    );
    assert!(
        rows.iter()
            .any(|r| r["action"] == "evidence_download"
                && r["detail"].as_str().unwrap().contains(name)),
        "{audit}"
    );

    // The footage was held while it was read, and released after.
    let db = rusqlite::Connection::open(d.dir.path().join("state/storage.db")).unwrap();
    let (by, released_by, reason): (String, Option<String>, String) = db
        .query_row(
            "SELECT created_by, released_by, reason FROM holds WHERE reason LIKE 'evidence export %'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(by, "ada");
    assert_eq!(released_by.as_deref(), Some("ada"));
    assert!(reason.contains(&id), "{reason}");

    // Bad requests: a JSON error that names the problem.
    let far = Utc::now() - chrono::Duration::days(300);
    for (camera, body, code, says) in [
        (
            1,
            json!({"start": rfc(end), "end": rfc(start)}),
            400,
            "\"end\"",
        ),
        (
            1,
            json!({"start": rfc(start), "end": rfc(start)}),
            400,
            "\"end\"",
        ),
        (
            1,
            json!({"start": rfc(start), "end": rfc(start + chrono::Duration::hours(25))}),
            400,
            "24 hours",
        ),
        (99, range.clone(), 404, "camera"),
        (
            1,
            json!({"start": rfc(far), "end": rfc(far + chrono::Duration::minutes(5))}),
            404,
            "no recording",
        ),
        (1, json!({"start": "ontem", "end": rfc(end)}), 400, "start"),
        (
            1,
            json!({"start": rfc(start), "end": rfc(end), "extra": 1}),
            400,
            "extra",
        ),
        (
            1,
            json!({"start": rfc(start), "end": rfc(end), "reason": "x".repeat(501)}),
            400,
            "reason",
        ),
    ] {
        let (got, body2) = export(&ada, camera, body.clone()).await;
        assert_eq!(got, code, "{body} -> {body2}");
        let msg = body2["error"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{body} -> {msg:?} should name {says}");
    }
    for path in [
        "/api/exports/nope".to_string(),
        format!("/api/exports/{id}/..%2Fmanifest.json"),
        format!("/api/exports/{id}/state.db"),
        "/api/exports/..%2F..%2Fstate/SHA256SUMS".to_string(),
    ] {
        let r = ada.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    // Exactly one export exists: the failed ones left nothing behind.
    let names: Vec<_> = std::fs::read_dir(d.dir.path().join("state/exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![id.clone()]);
}

#[tokio::test]
async fn a_range_across_an_outage_is_one_file_per_recorded_span_and_names_the_gap() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    d.add_user("ada", "admin", "", PW);
    let ada = d.login("ada", PW).await;
    recorded(&ada, 4).await;
    // Camera 1 goes away for a few seconds, then comes back and records.
    d.sim("POST", "/cameras/cam_1/down?mode=closed").await;
    // The outage: the newest span has ended at least 2 s ago (more than
    // the 1 s within which MediaMTX joins spans).
    let before_outage = eventually(
        "a 2 s outage of camera 1",
        Duration::from_secs(30),
        || async {
            let s = spans(&ada, 1).await;
            let last = s.last()?.1;
            (Utc::now() - last > chrono::Duration::seconds(2)).then_some(s)
        },
    )
    .await;
    d.sim("POST", "/cameras/cam_1/up").await;
    let all = eventually("a second span of 4 s", Duration::from_secs(60), || async {
        let s = spans(&ada, 1).await;
        (s.len() >= 2 && (s[s.len() - 1].1 - s[s.len() - 1].0).num_seconds() >= 4).then_some(s)
    })
    .await;
    assert!(!before_outage.is_empty());
    let (first, second) = (all[all.len() - 2], all[all.len() - 1]);
    let start = first.1 - chrono::Duration::seconds(3);
    let end = second.0 + chrono::Duration::seconds(3);
    let (code, m) = export(&ada, 1, json!({"start": rfc(start), "end": rfc(end)})).await;
    assert_eq!(code, 201, "{m}");
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{m}");
    let gaps = m["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{m}");
    assert!(
        (t(&gaps[0]["start"]) - first.1).num_milliseconds().abs() < 100,
        "{m}"
    );
    assert!(
        (t(&gaps[0]["end"]) - second.0).num_milliseconds().abs() < 100,
        "{m}"
    );
    let dir = tempfile::tempdir().unwrap();
    download(&ada, &m, dir.path()).await;
    let out = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for f in files {
        let secs = probe_duration(&dir.path().join(f["name"].as_str().unwrap()));
        assert!((secs - 3.0).abs() <= 2.0, "{secs} s for a 3 s span: {m}");
    }
}

const MIB: u64 = 1 << 20;

/// A filesystem a test mounted, unmounted when dropped (declare it after
/// the daemon, so that it goes first).
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], on: &std::path::Path) -> Mount {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test mounts a filesystem: run the suite as root (CI does)"
    );
    std::fs::create_dir_all(on).unwrap();
    let out = Command::new("mount")
        .args(args)
        .arg(on)
        .output()
        .expect("running mount");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        on.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mount(on.to_path_buf())
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()) * u64::from(st.fragment_size());
    free
}

/// Fills the filesystem of `dir` with `.filler` until `leave` bytes are
/// free (a dot name: no export id).
fn fill_until(dir: &std::path::Path, leave: u64) -> std::path::PathBuf {
    let path = dir.join(".filler");
    let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let free = free_bytes(dir);
    assert!(free > leave, "{free} bytes free, cannot leave {leave}");
    // Written for real (a sparse file would take no room).
    let data = vec![0x5au8; (have + free - leave) as usize];
    std::fs::write(&path, data).unwrap();
    path
}

/// The names in the exports directory (the export ids and the filler).
fn exports_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The exports directory on a real small filesystem (a 12 MiB tmpfs): an
/// export that fits is made; with the disk nearly full, the same export is
/// refused up front with a 507 that names the bytes needed and free, and
/// leaves nothing (no partial directory, no hold); with room again it is
/// made; and when the disk fills during the export anyway, the export ends
/// with a 507 and nothing partial.
#[tokio::test]
async fn an_export_the_disk_has_no_room_for_is_refused_before_it_starts() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let exports = d.dir.path().join("state/exports");
    let _fs = mount(
        &["-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs"],
        &exports,
    );
    d.add_user("ada", "admin", "", PW);
    let ada = d.login("ada", PW).await;
    let (_, span_end) = recorded(&ada, 8).await;
    let end = (span_end - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let range = json!({"start": rfc(end - chrono::Duration::seconds(6)), "end": rfc(end)});
    let (code, first) = export(&ada, 1, range.clone()).await;
    assert_eq!(code, 201, "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();

    // Less free than the margin alone.
    let filler = fill_until(&exports, 2 * MIB);
    let free = free_bytes(&exports);
    let (code, body) = export(&ada, 1, range.clone()).await;
    assert_eq!(code, 507, "{body}");
    let needed = body["needed_bytes"].as_u64().unwrap();
    let available = body["available_bytes"].as_u64().unwrap();
    assert_eq!(body["floor_bytes"], 0, "another disk than the recordings");
    assert!(
        needed >= vms_supervisor::evidence::SPACE_MARGIN_BYTES,
        "{body}"
    );
    assert!(needed > available, "{body}");
    assert!(
        available.abs_diff(free) <= 256 * 1024,
        "{available} bytes said free, statvfs says {free}"
    );
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("needs {needed} bytes"))
            && msg.contains(&format!("{available} bytes")),
        "{msg}"
    );
    assert_eq!(
        exports_in(&exports),
        vec![".filler".to_string(), first_id.clone()],
        "nothing of the refused export is left"
    );
    let db = rusqlite::Connection::open(d.dir.path().join("state/storage.db")).unwrap();
    let holds: i64 = db
        .query_row(
            "SELECT count(*) FROM holds WHERE reason LIKE 'evidence export %'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holds, 1, "the refused export placed no hold");

    // Room again: the same range is exported.
    std::fs::remove_file(&filler).unwrap();
    let (code, again) = export(&ada, 1, range.clone()).await;
    assert_eq!(code, 201, "{again}");

    // A disk that fills during the export all the same (the check passes:
    // bytes are free; but the filesystem, mounted over the first, has
    // inodes for the export's directory only, so the first file gets the
    // ENOSPC of a full disk): 507, and nothing partial is left.
    let _full = mount(
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=12m,nr_inodes=2,mode=0700",
            "tmpfs",
        ],
        &exports,
    );
    let (code, body) = export(&ada, 1, range).await;
    assert_eq!(code, 507, "{body}");
    assert!(
        body.get("needed_bytes").is_none(),
        "not refused up front: {body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("No space left"),
        "{body}"
    );
    assert_eq!(
        exports_in(&exports),
        Vec::<String>::new(),
        "nothing partial"
    );
}

/// Exports on the recordings disk (a 32 MiB tmpfs with an 8 MiB floor, the
/// exports directory bound into it) never eat into the recordings'
/// free-space floor: with 10 MiB free, an export of a few MiB would fit
/// the disk but not the disk minus the floor, and is refused naming the
/// floor.
#[tokio::test]
async fn an_export_on_the_recordings_disk_keeps_their_floor_free() {
    let d = Daemon::start(Setup {
        recordings_tmpfs: Some(32 * MIB),
        extra: "[storage]\nmin_free = \"8MiB\"\n".into(),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    let inside = d.recordings.join(".exports");
    std::fs::create_dir_all(&inside).unwrap();
    let exports = d.dir.path().join("state/exports");
    let _bind = mount(&["--bind", inside.to_str().unwrap()], &exports);
    d.add_user("ada", "admin", "", PW);
    let ada = d.login("ada", PW).await;
    let (_, span_end) = recorded(&ada, 8).await;
    let end = (span_end - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let range = json!({"start": rfc(end - chrono::Duration::seconds(6)), "end": rfc(end)});
    // The storage machine has published its floor.
    d.wait_status("the floor in the status", Duration::from_secs(30), |s| {
        s["storage"]["floor_bytes"] == 8 * MIB
    })
    .await;
    let filler = fill_until(&exports, 10 * MIB);
    let (code, body) = export(&ada, 1, range.clone()).await;
    assert_eq!(code, 507, "{body}");
    assert_eq!(body["floor_bytes"], 8 * MIB, "{body}");
    let needed = body["needed_bytes"].as_u64().unwrap();
    let available = body["available_bytes"].as_u64().unwrap();
    assert!(
        needed < available,
        "the disk alone had room ({needed} of {available}): the floor refused it"
    );
    assert!(
        body["error"].as_str().unwrap().contains("free-space floor"),
        "{body}"
    );
    assert_eq!(exports_in(&exports), vec![".filler".to_string()]);
    std::fs::remove_file(&filler).unwrap();
    let (code, m) = export(&ada, 1, range).await;
    assert_eq!(code, 201, "{m}");
}
