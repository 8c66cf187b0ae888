//! The operator's dashboard: its embedded files and routes over HTTP, and the
//! browser tests of `web/dashboard-tests/` (headless Debian chromium via
//! playwright-core) against the real daemon and the stand-in: the
//! `*.test.mjs` files at its top against one daemon, and
//! `bucket/timeline.test.mjs` against a daemon that backs up to a moto
//! bucket. The browser tests fail, with the reason, when node, chromium or
//! `web/node_modules` (`npm ci` in web/, done by scripts/setup) are missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Daemon, Setup};

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn all_online(d: &Daemon) {
    d.wait_status("both cameras online", Duration::from_secs(30), |s| {
        s["cameras"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["state"] == "online"))
    })
    .await;
}

#[tokio::test]
async fn the_page_its_files_ack_and_playback_routes() {
    let d = Daemon::start(Setup::default());
    all_online(&d).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", d.api);
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("/ui/app.js?v="), "{html}");
    for (file, mime) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("player.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("hls.min.js", "text/javascript; charset=utf-8"),
    ] {
        let r = http.get(format!("{base}/ui/{file}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], mime, "{file}");
        assert!(r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
    }
    let r = http.get(format!("{base}/ui/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let s: Value = http
        .get(format!("{base}/ui/settings.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["whep_tries"], 3);
    assert!(s["webrtc_port"].as_u64().unwrap() > 0);

    // Ack, as an operator logged in on the page: an unknown alert is a JSON
    // 404; a stored one records who and when. Without a session: 401.
    d.add_user("ana", "operator", "", "senha-da-ana-123");
    let ana = d.login("ana", "senha-da-ana-123").await;
    let r = http
        .post(format!("{base}/api/alerts/1/ack"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ana
        .request(reqwest::Method::POST, "/api/alerts/999999/ack")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    d.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let alerts: Value =
        crate::harness::eventually("an alert for camera 2", Duration::from_secs(30), || async {
            let a = d.get("/api/alerts?camera_id=2").await?;
            (a["total"].as_u64()? > 0).then_some(a)
        })
        .await;
    let id = alerts["alerts"][0]["id"].as_i64().unwrap();
    let r: Value = ana
        .request(reqwest::Method::POST, &format!("/api/alerts/{id}/ack"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["acked_by"], "ana");
    let listed = d.get("/api/alerts?camera_id=2").await.unwrap();
    let row = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert_eq!(row["acked_by"], "ana");
    assert_eq!(row["acked_at"], r["acked_at"]);

    // Playback through the daemon, for the operator: MediaMTX's answer, or
    // its error as JSON. The machine token reads no video.
    let r = ana
        .request(reqwest::Method::GET, "/api/cameras/1/playback/list")
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        code == 200 && body.is_array() || code == 404 && body["error"].is_string(),
        "{code} {body}"
    );
    let r = d
        .client()
        .get(format!("{base}/api/cameras/1/playback/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = ana
        .request(reqwest::Method::GET, "/api/cameras/77/playback/list")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// `web/` and chromium's path, or the reason the browser tests cannot run.
fn browser() -> (std::path::PathBuf, String) {
    let repo = crate::harness::files::repo();
    let web = repo.join("web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let why = if !have("node", &["--version"]) {
        Some("node not found".to_string())
    } else if !Path::new(&chromium).exists() {
        Some(format!("{chromium} not found"))
    } else if !web.join("node_modules/playwright-core").exists() {
        Some("web/node_modules missing (npm ci in web/)".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        panic!(
            "the dashboard browser tests cannot run: {why}; scripts/setup installs what they need"
        );
    }
    (web, chromium)
}

/// A tmpfs this test mounted, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(on: &Path, size: &str) -> Tmpfs {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "this test mounts a tmpfs: run the suite as root (CI does)"
        );
        std::fs::create_dir_all(on).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(on)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount a tmpfs on {}: {}",
            on.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(on.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The test files at the top of `web/dashboard-tests/` (those in its
/// folders need a daemon of their own).
fn top_tests(web: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(web.join("dashboard-tests"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("dashboard-tests/{n}"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn dashboard_in_chromium() {
    let (web, chromium) = browser();
    let repo = crate::harness::files::repo();
    let d = Daemon::start(Setup::default());
    all_online(&d).await;
    d.add_user("porteiro", "viewer", "", "senha-do-porteiro");
    // The evidence export's test (web/dashboard-tests/export.test.mjs): an
    // admin, an operator (plays back, exports nothing), and the exports
    // directory on a small filesystem of its own that the test fills.
    d.add_user("promotora", "admin", "", "senha-da-promotora");
    d.add_user("operadora", "operator", "", "senha-da-operadora");
    let exports = d.dir.path().join("state/exports");
    let _exports_fs = Tmpfs::mount(&exports, "64m");
    let token = d.token();
    let shots = repo.join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let bench = shots.join("bench.json");
    let _ = std::fs::remove_file(&bench);
    // On the host's loopback: the daemon runs outside any network namespace.
    let env = [
        ("DASH_URL", format!("http://{}", d.api)),
        ("MTXSIM_CTL", format!("http://{}", d.control)),
        ("SHOTS", shots.display().to_string()),
        ("BENCH_JSON", bench.display().to_string()),
        ("CHROMIUM", chromium),
        ("DASH_USER", "porteiro".into()),
        ("DASH_PASSWORD", "senha-do-porteiro".into()),
        ("DASH_TOKEN", token),
        ("DASH_ADMIN", "promotora".into()),
        ("DASH_ADMIN_PASSWORD", "senha-da-promotora".into()),
        ("DASH_OPERATOR", "operadora".into()),
        ("DASH_OPERATOR_PASSWORD", "senha-da-operadora".into()),
        ("EXPORTS_DIR", exports.display().to_string()),
    ];
    node_tests(&d, &web, top_tests(&web), &env).await;
    println!("{}", std::fs::read_to_string(&bench).unwrap_or_default());
}

/// Footage no longer on the box but kept in the backup bucket, on the
/// playback timeline: a daemon that backs up to a real moto bucket finds
/// old footage of camera 1 (100 days ago, past the 90 days of retention)
/// and uploads it; at the next start, retention deletes it from the disk,
/// except a minute that a hold keeps. The page (bucket/timeline.test.mjs) draws the
/// deleted minutes as footage only in the bucket (its own colour, the
/// restore command in its title, not a gap, not playable) and the held
/// minute as footage on disk that plays.
#[tokio::test]
async fn footage_only_in_the_bucket_on_the_timeline_in_chromium() {
    let (web, chromium) = browser();
    let repo = crate::harness::files::repo();
    // Started off the runtime: it makes the bucket with a blocking client.
    let bucket = tokio::task::spawn_blocking(crate::backup::MotoBucket::start)
        .await
        .unwrap();
    let d = Daemon::start(Setup {
        extra: bucket.section(""),
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    d.add_user("olga", "operator", "", "senha-da-olga-123");
    let tz = chrono_tz::America::Sao_Paulo;
    let day = (chrono::Utc::now() - chrono::Duration::days(100))
        .with_timezone(&tz)
        .date_naive();
    let at = |h: u32, m: u32| {
        day.and_hms_opt(h, m, 0)
            .unwrap()
            .and_local_timezone(tz)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // 11:30-12:00 is held: retention leaves it on the disk.
    let out = d.cli(&[
        "hold",
        "add",
        "1",
        "--from",
        &format!("{day} 11:30"),
        "--to",
        &format!("{day} 12:00"),
        "--reason",
        "inquérito 7/2026",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // While the daemon is down, the old footage appears (as after a disk
    // moved in from another box): 10:00-11:00 in three segments, and
    // 11:30-12:00, each file's end its modification time.
    d.kill();
    for ((h, m), end) in [
        ((10, 0), at(10, 20)),
        ((10, 20), at(10, 40)),
        ((10, 40), at(11, 0)),
        ((11, 30), at(12, 0)),
    ] {
        let path = d.path(&format!(
            "recordings/cam_1/{day}/{h:02}-{m:02}-00-000000.mp4"
        ));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0x42u8; 64 * 1024]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(end.timestamp() as u64))
            .unwrap();
    }
    d.spawn();
    d.wait_all_recording(2).await;
    // Retention keeps footage that is not in the bucket yet; once the four
    // files are, the next start deletes the three unheld ones.
    let catalog = d.path("state/storage.db");
    let old_end = at(12, 0).timestamp_micros();
    d.wait_for("the old footage in the bucket", Duration::from_secs(60), || async {
        let db = rusqlite::Connection::open(&catalog).ok()?;
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM segments WHERE camera = 1 AND end_us <= ?1 AND backup_state = 2",
                [old_end],
                |r| r.get(0),
            )
            .ok()?;
        (n == 4).then_some(())
    })
    .await;
    d.kill();
    d.spawn();
    d.wait_all_recording(2).await;
    let (from, to) = (
        day.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_local_timezone(tz)
            .unwrap()
            .with_timezone(&chrono::Utc),
        day.succ_opt()
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_local_timezone(tz)
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let q = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ledger = d
        .wait_for(
            "the old footage deleted by retention",
            Duration::from_secs(30),
            || async {
                let l = d
                    .get(&format!(
                        "/api/cameras/1/recordings?from={}&to={}",
                        q(from),
                        q(to)
                    ))
                    .await?;
                (l["in_bucket"].as_array()?.len() == 1 && l["spans"].as_array()?.len() == 1)
                    .then_some(l)
            },
        )
        .await;
    let span = |v: &Value| -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
        (
            v["start"].as_str().unwrap().parse().unwrap(),
            v["end"].as_str().unwrap().parse().unwrap(),
        )
    };
    assert_eq!(
        span(&ledger["in_bucket"][0]),
        (at(10, 0), at(11, 0)),
        "{ledger:#}"
    );
    assert_eq!(
        span(&ledger["spans"][0]),
        (at(11, 30), at(12, 0)),
        "{ledger:#}"
    );
    let gaps = ledger["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().all(|g| {
            let (s, e) = span(g);
            e <= at(10, 0) || s >= at(11, 0)
        }),
        "the bucket's minutes are no gap: {ledger:#}"
    );
    let shots = repo.join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("DASH_URL", format!("http://{}", d.api)),
        ("SHOTS", shots.display().to_string()),
        ("CHROMIUM", chromium),
        ("DASH_USER", "olga".into()),
        ("DASH_PASSWORD", "senha-da-olga-123".into()),
        ("BUCKET_DAY", day.to_string()),
        ("BUCKET_LEDGER", ledger.to_string()),
    ];
    let files = vec!["dashboard-tests/bucket/timeline.test.mjs".to_string()];
    node_tests(&d, &web, files, &env).await;
}

/// Runs node's test runner on `files` (relative to `web`) with `env`, one
/// file at a time, off the runtime; fails with the output and the daemon's
/// log unless every test ran and passed.
async fn node_tests(d: &Daemon, web: &Path, files: Vec<String>, env: &[(&str, String)]) {
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=1"])
        .args(files)
        .current_dir(web)
        .envs(env.iter().map(|(k, v)| (*k, v)));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run node"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser tests failed:\n{text}\n{err}\n{}",
        crate::harness::tail(&d.logs(), 40)
    );
    assert!(
        text.contains("# pass ") && !text.contains("# pass 0") && text.contains("# skipped 0"),
        "{text}"
    );
}
