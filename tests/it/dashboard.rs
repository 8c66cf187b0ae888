//! The operator's dashboard: its embedded files and routes over HTTP, and the
//! browser tests of `web/dashboard-tests/` (headless Debian chromium via
//! playwright-core) against the real daemon and the stand-in. The browser
//! tests are skipped, with the reason printed, when node, chromium or
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

#[tokio::test]
async fn dashboard_in_chromium() {
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
    let d = Daemon::start(Setup::default());
    all_online(&d).await;
    d.add_user("porteiro", "viewer", "", "senha-do-porteiro");
    // The evidence export's test (web/dashboard-tests/export.test.mjs).
    d.add_user("promotora", "admin", "", "senha-da-promotora");
    let token = d.token();
    let shots = repo.join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let bench = shots.join("bench.json");
    let _ = std::fs::remove_file(&bench);
    // On the host's loopback: the daemon runs outside any network namespace.
    let out = tokio::task::spawn_blocking({
        let web = web.clone();
        let url = format!("http://{}", d.api);
        let ctl = format!("http://{}", d.control);
        let shots = shots.clone();
        let bench = bench.clone();
        move || {
            Command::new("node")
                .args(["--test", "--test-concurrency=1", "dashboard-tests/"])
                .current_dir(&web)
                .env("DASH_URL", url)
                .env("MTXSIM_CTL", ctl)
                .env("SHOTS", &shots)
                .env("BENCH_JSON", &bench)
                .env("CHROMIUM", &chromium)
                .env("DASH_USER", "porteiro")
                .env("DASH_PASSWORD", "senha-do-porteiro")
                .env("DASH_TOKEN", token)
                .env("DASH_ADMIN", "promotora")
                .env("DASH_ADMIN_PASSWORD", "senha-da-promotora")
                .output()
                .expect("run node")
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard browser tests failed:\n{text}\n{err}\n{}",
        crate::harness::tail(&d.logs(), 40)
    );
    assert!(
        text.contains("# pass ") && !text.contains("# pass 0"),
        "{text}"
    );
    assert!(text.contains("# skipped 0"), "{text}");
    println!("{}", std::fs::read_to_string(&bench).unwrap_or_default());
}
