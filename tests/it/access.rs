//! Users, roles, sessions and the audit trail against the real daemon
//! (real HTTP, the real access database): the role table over every route,
//! camera lists, MediaMTX's authorization callback, the lockout of password
//! guessing, CSRF, and the audit rows of each action.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Daemon, Login, Setup};

const PW: &str = "uma senha longa";

/// The daemon with a viewer, an operator, an admin, and a viewer and an
/// operator limited to camera 2; all logged in.
struct World {
    d: Daemon,
    viewer: Login,
    operator: Login,
    admin: Login,
    viewer2: Login,
    operator2: Login,
}

async fn world(setup: Setup) -> World {
    let d = Daemon::start(setup);
    d.wait_status("the API answers", Duration::from_secs(20), |s| {
        s["cameras"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    for (name, role, cams) in [
        ("vera", "viewer", ""),
        ("otto", "operator", ""),
        ("ada", "admin", ""),
        ("vic", "viewer", "2"),
        ("oz", "operator", "2"),
    ] {
        d.add_user(name, role, cams, PW);
    }
    World {
        viewer: d.login("vera", PW).await,
        operator: d.login("otto", PW).await,
        admin: d.login("ada", PW).await,
        viewer2: d.login("vic", PW).await,
        operator2: d.login("oz", PW).await,
        d,
    }
}

/// (method, route as the router spells it, the path requested, a body,
/// the status for [nobody, viewer, operator, admin, token]).
type Row = (Method, &'static str, String, Option<Value>, [u16; 5]);

/// One request as each caller: nobody, viewer, operator, admin, token.
async fn as_each(w: &World, method: &Method, path: &str, body: Option<&Value>) -> [u16; 5] {
    let with_body = |r: reqwest::RequestBuilder| match body {
        Some(b) => r.json(b),
        None => r,
    };
    let url = format!("http://{}{path}", w.d.api);
    let mut out = [0u16; 5];
    let anon = reqwest::Client::new().request(method.clone(), &url);
    out[0] = with_body(anon).send().await.unwrap().status().as_u16();
    for (i, who) in [&w.viewer, &w.operator, &w.admin].into_iter().enumerate() {
        let r = with_body(who.request(method.clone(), path));
        out[i + 1] = r.send().await.unwrap().status().as_u16();
    }
    let t = w.d.client().request(method.clone(), &url);
    out[4] = with_body(t).send().await.unwrap().status().as_u16();
    out
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_table_says() {
    let w = world(Setup::default()).await;
    let day = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    let latency = json!({"protocol": "webrtc", "seconds": 0.2});
    let silence = json!({"camera_id": 99, "minutes": 5, "reason": "teste"});
    let publish = json!({"action": "publish", "path": "cam_1", "protocol": "rtsp"});
    let hold = json!({"camera": 99, "from": "2026-01-01T00:00:00Z",
                      "to": "2026-01-02T00:00:00Z", "reason": "teste"});
    // (method, route as in the router, concrete path, body,
    //  [nobody, viewer, operator, admin, token]); 0 = 200 or 404 (playback
    //  answers 404 when MediaMTX has no recording yet).
    let table: Vec<Row> = vec![
        (
            Method::GET,
            "/",
            "/".into(),
            None,
            [200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/ui/settings.json",
            "/ui/settings.json".into(),
            None,
            [200; 5],
        ),
        (
            Method::GET,
            "/ui/{file}",
            "/ui/app.js".into(),
            None,
            [200; 5],
        ),
        // Open to processes on the box (these requests come from loopback).
        (Method::GET, "/metrics", "/metrics".into(), None, [200; 5]),
        (
            Method::GET,
            "/api/cameras/health",
            "/api/cameras/health".into(),
            None,
            [200; 5],
        ),
        (
            Method::GET,
            "/api/me",
            "/api/me".into(),
            None,
            [401, 200, 200, 200, 401],
        ),
        (
            Method::GET,
            "/api/status",
            "/api/status".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/cameras",
            "/api/cameras".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/cameras/{id}",
            "/api/cameras/1".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/alerts",
            "/api/alerts".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/alerts/incidents",
            "/api/alerts/incidents".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/alerts/silences",
            "/api/alerts/silences".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/cameras/{id}/latency",
            "/api/cameras/1/latency".into(),
            Some(latency),
            [401, 204, 204, 204, 204],
        ),
        (
            Method::GET,
            "/api/cameras/{id}/recordings",
            format!("/api/cameras/1/recordings?{day}"),
            None,
            [401, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/cameras/{id}/playback/list",
            "/api/cameras/1/playback/list".into(),
            None,
            [401, 403, 0, 0, 403],
        ),
        (
            Method::GET,
            "/api/cameras/{id}/playback/get",
            "/api/cameras/1/playback/get?start=2026-01-01T00:00:00Z&duration=1".into(),
            None,
            [401, 403, 0, 0, 403],
        ),
        // Evidence: admins only, never the token (an export is video).
        (
            Method::POST,
            "/api/cameras/{id}/exports",
            "/api/cameras/1/exports".into(),
            Some(json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:05:00Z"})),
            [401, 403, 403, 404, 403],
        ),
        (
            Method::GET,
            "/api/exports",
            "/api/exports".into(),
            None,
            [401, 403, 403, 200, 403],
        ),
        (
            Method::GET,
            "/api/exports/{id}",
            "/api/exports/20260101T000000Z_cam1".into(),
            None,
            [401, 403, 403, 404, 403],
        ),
        (
            Method::GET,
            "/api/exports/{id}/{file}",
            "/api/exports/20260101T000000Z_cam1/SHA256SUMS".into(),
            None,
            [401, 403, 403, 404, 403],
        ),
        (
            Method::POST,
            "/api/cameras/{id}/reset",
            "/api/cameras/99/reset".into(),
            None,
            [401, 403, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/alerts/{id}/ack",
            "/api/alerts/999999/ack".into(),
            Some(json!({})),
            [401, 403, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/alerts/silences",
            "/api/alerts/silences".into(),
            Some(silence),
            [401, 403, 200, 200, 200],
        ),
        (
            Method::DELETE,
            "/api/alerts/silences/{camera_id}",
            "/api/alerts/silences/98".into(),
            None,
            [401, 403, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/alerts/webhook",
            "/api/alerts/webhook".into(),
            Some(json!({})),
            [401, 403, 403, 403, 400],
        ),
        (
            Method::GET,
            "/api/holds",
            "/api/holds".into(),
            None,
            [401, 403, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/holds",
            "/api/holds".into(),
            Some(hold),
            [401, 403, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/holds/{id}/release",
            "/api/holds/999999/release".into(),
            Some(json!({})),
            [401, 403, 404, 404, 404],
        ),
        (
            Method::GET,
            "/api/audit",
            "/api/audit".into(),
            None,
            [401, 403, 403, 200, 200],
        ),
        (
            Method::GET,
            "/api/events",
            "/api/events".into(),
            None,
            [401, 200, 200, 200, 200],
        ),
        // MediaMTX's callback: loopback peers only; publishing never.
        (
            Method::POST,
            "/internal/mediamtx/auth",
            "/internal/mediamtx/auth".into(),
            Some(publish),
            [401; 5],
        ),
    ];
    let mut failures = Vec::new();
    for (method, _, path, body, want) in &table {
        let got = as_each(&w, method, path, body.as_ref()).await;
        let ok = got
            .iter()
            .zip(want)
            .all(|(g, w)| g == w || *w == 0 && (*g == 200 || *g == 404));
        if !ok {
            failures.push(format!("{method} {path}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Login and logout are open; tested below. Every other route of the
    // router is in the table.
    let covered: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, route, ..)| (m.to_string(), route.to_string()))
        .chain([
            ("POST".to_string(), "/api/login".to_string()),
            ("POST".to_string(), "/api/logout".to_string()),
        ])
        .collect();
    let routes = crate::openapi::routes_in_source();
    let missing: Vec<_> = routes.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes not in the role table: {missing:?}"
    );
}

/// The callback MediaMTX makes before a reader starts (docs/mediamtx.md
/// §b2), as MediaMTX sends it.
async fn mediamtx_asks(d: &Daemon, action: &str, path: &str, token: &str, query: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/internal/mediamtx/auth", d.api))
        .json(&json!({
            "ip": "192.0.2.7", "user": "", "password": "", "token": token,
            "action": action, "path": path, "protocol": "webrtc",
            "id": "5f6c1d2e-0000-4000-8000-000000000001", "query": query,
            "userAgent": "Mozilla/5.0"
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_viewer_of_camera_2_cannot_watch_or_play_back_camera_1() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    // The API: camera routes of another camera are refused.
    for (who, path, code) in [
        (&w.viewer2, "/api/cameras/1", 403),
        (&w.viewer2, "/api/cameras/2", 200),
        (&w.operator2, "/api/cameras/1/playback/list", 403),
        (
            &w.operator2,
            "/api/cameras/1/recordings?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            403,
        ),
        (
            &w.operator2,
            "/api/cameras/2/recordings?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            200,
        ),
    ] {
        let r = who.request(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
    }
    // MediaMTX's questions: live (WHEP, HLS) and playback of each camera.
    let v2 = &w.viewer2.media;
    assert_eq!(mediamtx_asks(d, "read", "cam_1", v2, "").await, 401);
    assert_eq!(mediamtx_asks(d, "read", "cam_2", v2, "").await, 204);
    // HLS and playback links carry it in the query.
    let q = format!("token={v2}");
    assert_eq!(mediamtx_asks(d, "read", "cam_1", "", &q).await, 401);
    assert_eq!(mediamtx_asks(d, "read", "cam_2", "", &q).await, 204);
    // A viewer plays nothing back; an operator of camera 2 only camera 2.
    assert_eq!(mediamtx_asks(d, "playback", "cam_2", v2, "").await, 401);
    let o2 = &w.operator2.media;
    assert_eq!(mediamtx_asks(d, "playback", "cam_1", o2, "").await, 401);
    assert_eq!(mediamtx_asks(d, "playback", "cam_2", o2, "").await, 204);
    // Nobody publishes; nobody but the daemon drives MediaMTX's API; the
    // session cookie and the API token are not media credentials.
    let admin = &w.admin.media;
    assert_eq!(mediamtx_asks(d, "publish", "cam_1", admin, "").await, 401);
    assert_eq!(mediamtx_asks(d, "api", "", admin, "").await, 401);
    assert_eq!(mediamtx_asks(d, "read", "cam_1", &d.token(), "").await, 401);
    let cookie = w
        .admin
        .cookie
        .trim_start_matches("vms_session=")
        .to_string();
    assert_eq!(mediamtx_asks(d, "read", "cam_1", &cookie, "").await, 401);
    let own = std::fs::read_to_string(d.path("state/mediamtx-credential")).unwrap();
    assert_eq!(mediamtx_asks(d, "api", "", own.trim(), "").await, 204);
    assert_eq!(mediamtx_asks(d, "read", "cam_1", own.trim(), "").await, 401);
    // After logout the media token is dead too.
    let r = w
        .viewer2
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mediamtx_asks(d, "read", "cam_2", v2, "").await, 401);
    let r = w
        .viewer2
        .request(Method::GET, "/api/status")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn try_login(d: &Daemon, user: &str, pw: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/api/login", d.api))
        .json(&json!({"user": user, "password": pw}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_fourth_login_after_three_failures_is_refused_until_the_lockout_ends() {
    let d = Daemon::start(Setup {
        extra: "[access]\nmax_failures = 3\nfailure_window = \"10m\"\nlockout = \"3s\"\n".into(),
        ..Setup::default()
    });
    d.wait_status("the API answers", Duration::from_secs(20), |s| {
        s["cameras"].is_array()
    })
    .await;
    d.add_user("ana", "viewer", "", PW);
    for _ in 0..3 {
        assert_eq!(try_login(&d, "ana", "a wrong password").await.status(), 401);
    }
    let locked_at = std::time::Instant::now();
    let r = try_login(&d, "ana", PW).await;
    assert_eq!(r.status(), 429, "the right password, but locked");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    // The lockout ends as configured (3 s), not before.
    let open = d
        .wait_for("the lockout ends", Duration::from_secs(10), || async {
            (try_login(&d, "ana", PW).await.status() == 200).then(std::time::Instant::now)
        })
        .await;
    let locked_for = open - locked_at;
    assert!(locked_for >= Duration::from_millis(2500), "{locked_for:?}");
    // Locked again; an admin clears it at once.
    for _ in 0..3 {
        try_login(&d, "ana", "a wrong password").await;
    }
    assert_eq!(try_login(&d, "ana", PW).await.status(), 429);
    let out = d.cli(&["user", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("locked until"));
    let out = d.cli(&["user", "unlock", "ana"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(try_login(&d, "ana", PW).await.status(), 200);
    // Each attempt is in the audit trail, with its source address.
    let audit = d.get("/api/audit?user=ana&limit=100").await.unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "login_failed").count(),
        6,
        "{actions:?}"
    );
    assert!(
        actions.iter().filter(|a| **a == "login_locked").count() >= 2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "login").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(audit["entries"][0]["source"], "127.0.0.1");
}

#[tokio::test]
async fn a_change_from_another_origin_or_without_the_csrf_token_is_refused() {
    let w = world(Setup::default()).await;
    let op = &w.operator;
    let url = format!("http://{}/api/alerts/999999/ack", w.d.api);
    let send = |csrf: Option<&str>, origin: Option<&str>| {
        let mut r = reqwest::Client::new()
            .post(&url)
            .header("cookie", &op.cookie)
            .json(&json!({}));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let own = format!("http://{}", w.d.api);
    assert_eq!(send(None, None).await.unwrap().status(), 403);
    assert_eq!(send(None, Some(&own)).await.unwrap().status(), 403);
    assert_eq!(send(Some("0000"), Some(&own)).await.unwrap().status(), 403);
    assert_eq!(
        send(Some(&op.csrf), Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    // The page's own request: through to the handler (no such alert).
    assert_eq!(
        send(Some(&op.csrf), Some(&own)).await.unwrap().status(),
        404
    );
    // A login form on another origin.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/login", w.d.api))
        .header("origin", "http://evil.example")
        .json(&json!({"user": "otto", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The cookie is what a browser must never show to scripts or send
    // cross-site.
    let r = try_login(&w.d, "otto", PW).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
}

#[tokio::test]
async fn each_action_leaves_an_audit_row_that_the_api_cannot_change() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    let op = &w.operator;
    d.wait_all_recording(2).await;
    // Reset, silence and its end, playback, a live view, an ack.
    let r = op
        .request(Method::POST, "/api/cameras/1/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = op
        .request(Method::POST, "/api/alerts/silences")
        .json(&json!({"camera_id": 2, "minutes": 30, "reason": "troca de lente"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = op
        .request(Method::DELETE, "/api/alerts/silences/2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = op
        .request(
            Method::GET,
            "/api/cameras/2/playback/get?start=2026-01-01T10:00:00Z&duration=60",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        mediamtx_asks(d, "read", "cam_2", &w.viewer.media, "").await,
        204
    );
    d.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let alerts: Value =
        crate::harness::eventually("an alert for camera 2", Duration::from_secs(30), || async {
            let a = d.get("/api/alerts?camera_id=2").await?;
            (a["total"].as_u64()? > 0).then_some(a)
        })
        .await;
    let id = alerts["alerts"][0]["id"].as_i64().unwrap();
    let r = op
        .request(Method::POST, &format!("/api/alerts/{id}/ack"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let audit = w
        .admin
        .request(Method::GET, "/api/audit?limit=200")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let rows = audit["entries"].as_array().unwrap();
    let find = |actor: &str, action: &str| {
        rows.iter()
            .find(|r| r["actor"] == actor && r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} by {actor} in {rows:#?}"))
    };
    assert_eq!(find("otto", "camera_reset")["camera"], 1);
    assert_eq!(find("otto", "camera_reset")["source"], "127.0.0.1");
    assert!(find("otto", "silence_add")["detail"]
        .as_str()
        .unwrap()
        .contains("troca de lente"));
    assert_eq!(find("otto", "silence_remove")["camera"], 2);
    let pb = find("otto", "playback");
    assert_eq!(pb["camera"], 2);
    assert!(pb["detail"]
        .as_str()
        .unwrap()
        .contains("start=2026-01-01T10:00:00Z duration=60"));
    let live = find("vera", "live_view");
    assert_eq!(
        (live["camera"].clone(), live["source"].clone()),
        (json!(2), json!("192.0.2.7"))
    );
    assert_eq!(find("otto", "alert_ack")["detail"], format!("alert {id}"));
    for who in ["vera", "otto", "ada", "vic", "oz"] {
        find(who, "login");
    }
    assert!(rows
        .iter()
        .any(|r| r["action"] == "user_add" && r["actor"].as_str().unwrap().starts_with("cli:")));
    // The filters.
    let by_camera = d.get("/api/audit?camera=1").await.unwrap();
    assert!(by_camera["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["camera"] == 1));
    let since = d
        .get("/api/audit?since=2999-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(since["entries"], json!([]));
    // Nothing in the API changes or deletes it.
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
        let r = w
            .admin
            .request(method.clone(), "/api/audit")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
    }
    let r = w
        .admin
        .request(Method::DELETE, "/api/audit/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The CLI reads the same trail.
    let out = d.cli(&["audit", "--user", "otto", "--camera", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("camera_reset"),
        "{text}"
    );
    assert!(!text.contains("silence_add"), "{text}");
}

/// The end of a live view is on record too. MediaMTX says when a reader
/// starts (it asks the daemon) but not when it leaves, so the daemon
/// watches the readers MediaMTX lists: a closed WebRTC session and an HLS
/// session that expired each leave a `live_view_end` row (how long, and
/// which `live_view` row it closes), also when the daemon itself was
/// restarted while they played (the open views are in the database).
#[tokio::test]
async fn a_live_view_s_end_is_on_record_with_its_length_across_a_restart() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    d.wait_all_recording(2).await;
    let http = reqwest::Client::new();
    let webrtc = format!("http://127.0.0.1:{}", d.ports.webrtc);
    let r = http
        .post(format!("{webrtc}/cam_2/whep"))
        .header("content-type", "application/sdp")
        .bearer_auth(&w.viewer.media)
        .body(include_str!("../fixtures/webrtc/offer.sdp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let hls = format!("http://127.0.0.1:{}/cam_1/index.m3u8", d.ports.hls);
    assert_eq!(fetch(&hls, Some(&w.operator.media)).await.0, 200);
    let serving = |n: usize| {
        let want = format!("\nvms_live_views {n}\n");
        async move {
            d.wait_for(
                &format!("{n} live views served"),
                Duration::from_secs(20),
                || {
                    let want = want.clone();
                    // (Also while the daemon restarts: no answer is no.)
                    let url = format!("http://{}/metrics", d.api);
                    async move {
                        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
                        text.contains(&want).then_some(())
                    }
                },
            )
            .await
        }
    };
    serving(2).await;
    // The supervisor restarts; MediaMTX (adopted) keeps serving both.
    d.kill();
    d.spawn();
    serving(2).await;
    let admin = &w.admin;
    let ends = |actor: &'static str| async move {
        let audit = admin.get_json("/api/audit?action=live_view_end").await;
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["actor"] == actor)
            .cloned()
    };
    assert_eq!(ends("vera").await, None, "a view ended while it played");
    let r = http
        .delete(format!("{webrtc}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let end = d
        .wait_for("vera's view ends", Duration::from_secs(10), || ends("vera"))
        .await;
    let audit = w.admin.get_json("/api/audit?action=live_view").await;
    let start = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["actor"] == "vera" && r["camera"] == 2)
        .unwrap_or_else(|| panic!("no live_view by vera: {audit}"))
        .clone();
    assert_eq!(
        (end["camera"].clone(), end["source"].clone()),
        (json!(2), start["source"].clone())
    );
    let detail = end["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("webrtc, ")
            && detail.ends_with(&format!(" s, ends view {}", start["id"])),
        "{detail}"
    );
    serving(1).await;
    // Nobody asks for the HLS session again: it expires after 30 s, as in
    // MediaMTX, and its end is written then.
    let end = d
        .wait_for("otto's HLS view ends", Duration::from_secs(60), || {
            ends("otto")
        })
        .await;
    assert_eq!(end["camera"], 1);
    let detail = end["detail"].as_str().unwrap();
    let secs: u64 = detail
        .strip_prefix("hls, ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{detail}"));
    assert!(secs >= 30, "{detail}");
    serving(0).await;
}

/// The answer time of MediaMTX's authorization callback, which sits on
/// every reader's path: 10 000 calls, each on a new connection as MediaMTX
/// makes them (docs/mediamtx.md §b2), half allowed (a reader starting: a
/// session lookup and an audit row), half refused. Writes the
/// "Authorization" section of BENCHMARKS.md; run by `scripts/bench`.
#[tokio::test]
#[ignore = "a benchmark: scripts/bench runs it"]
async fn mediamtx_authorization_answer_time() {
    const CALLS: usize = 10_000;
    let d = Daemon::start(Setup::default());
    d.wait_status("the API answers", Duration::from_secs(20), |s| {
        s["cameras"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    d.add_user("vic", "viewer", "2", PW);
    let vic = d.login("vic", PW).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("http://{}/internal/mediamtx/auth", d.api);
    let mut allowed = Vec::with_capacity(CALLS / 2);
    let mut refused = Vec::with_capacity(CALLS / 2);
    for i in 0..CALLS {
        let cam = if i % 2 == 0 { "cam_2" } else { "cam_1" };
        let body = json!({
            "ip": "192.0.2.7", "user": "", "password": "", "token": vic.media,
            "action": "read", "path": cam, "protocol": "webrtc",
            "id": format!("00000000-0000-4000-8000-{i:012}"), "query": "", "userAgent": "bench"
        });
        let t0 = std::time::Instant::now();
        let status = http.post(&url).json(&body).send().await.unwrap().status();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if i % 2 == 0 {
            assert_eq!(status, 204);
            allowed.push(ms);
        } else {
            assert_eq!(status, 401);
            refused.push(ms);
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[v.len() * 99 / 100], v[v.len() - 1])
    };
    let (am, a99, amax) = stats(&mut allowed);
    let (rm, r99, rmax) = stats(&mut refused);
    let build = if std::env::var_os("VMS_TEST_BIN_DIR").is_some() {
        "release"
    } else {
        "debug"
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').next().unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let md = format!(
        "\n## Authorization of MediaMTX's readers\n\n\
         `POST /internal/mediamtx/auth`, {CALLS} calls from one client, each on a new TCP\n\
         connection as MediaMTX makes them, against the {build} daemon (access database on\n\
         disk, WAL). Allowed: a viewer's media token for its camera (session lookup, idle\n\
         clock, the reader's open view and its `live_view` audit row, one transaction);\n\
         refused: the same token for another camera (and its `media_refused` row).\n\
         `cargo test --test it -- --ignored mediamtx_authorization_answer_time`; load\n\
         average {load} on {cores} cores at the end of the run.\n\n\
         | Answer | Median | p99 | Worst |\n|---|---|---|---|\n\
         | 204 allowed | {am:.2} ms | {a99:.2} ms | {amax:.1} ms |\n\
         | 401 refused | {rm:.2} ms | {r99:.2} ms | {rmax:.1} ms |\n"
    );
    let path = crate::harness::files::repo().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let (head, tail) = match old.split_once("\n## Authorization of MediaMTX's readers\n") {
        Some((head, rest)) => (
            head.to_string(),
            rest.find("\n## ")
                .map(|i| rest[i..].to_string())
                .unwrap_or_default(),
        ),
        None => (old.trim_end().to_string(), String::new()),
    };
    std::fs::write(&path, format!("{}\n{md}{tail}", head.trim_end())).unwrap();
    println!("{md}");
}

/// Legal holds over the API: operators place and release them, a user
/// limited to camera 2 sees and touches camera 2's only, bad requests are
/// JSON 4xx, and every change is in the audit trail (the CLI's too).
#[tokio::test]
async fn operators_place_and_release_holds_within_their_cameras_on_record() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    let send = |who: &Login, method: Method, path: &str, body: Value| {
        let r = who.request(method, path).json(&body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let range = |camera: u32, reason: &str| {
        json!({"camera": camera, "from": "2026-11-28T21:00:00Z",
               "to": "2026-11-28T23:00:00Z", "reason": reason})
    };
    let (status, h1) = send(
        &w.operator,
        Method::POST,
        "/api/holds",
        range(1, "Ofício 12/2026"),
    )
    .await;
    assert_eq!(status, 201, "{h1}");
    assert_eq!(
        (h1["camera"].clone(), h1["created_by"].clone()),
        (json!(1), json!("otto"))
    );
    assert_eq!(h1["released_at"], Value::Null);
    let (status, h2) = send(&w.operator2, Method::POST, "/api/holds", range(2, "BO 77")).await;
    assert_eq!(status, 201, "{h2}");
    // oz may not see camera 1: not its holds, not placing one there.
    let (status, e) = send(&w.operator2, Method::POST, "/api/holds", range(1, "x")).await;
    assert_eq!(status, 403, "{e}");
    let oz_list: Value = w
        .operator2
        .request(Method::GET, "/api/holds")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&oz_list), vec![h2["id"].as_i64().unwrap()]);
    let release1 = format!("/api/holds/{}/release", h1["id"]);
    let (status, e) = send(&w.operator2, Method::POST, &release1, json!({})).await;
    assert_eq!(status, 404, "{e}");
    // Bad requests name the problem.
    let mut backwards = range(1, "x");
    backwards["to"] = json!("2026-11-28T20:00:00Z");
    for (body, want) in [
        (backwards, "before"),
        (range(1, "  "), "reason"),
        (
            json!({"camera": 1, "from": "ontem", "to": "hoje", "reason": "x"}),
            "from",
        ),
        (
            json!({"camera": 1, "from": "2016-01-01T00:00:00Z",
                "to": "2026-11-28T00:00:00Z", "reason": "x"}),
            "3660 days",
        ),
    ] {
        let (status, e) = send(&w.operator, Method::POST, "/api/holds", body).await;
        assert_eq!(status, 400, "{e}");
        assert!(
            e["error"].as_str().unwrap().contains(want),
            "{e} lacks {want}"
        );
    }
    // Release, once.
    let (status, r) = send(&w.admin, Method::POST, &release1, json!({})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["released_by"], "ada");
    let (status, e) = send(&w.admin, Method::POST, &release1, json!({})).await;
    assert_eq!(status, 409, "{e}");
    let in_force = ids(&d.get("/api/holds").await.unwrap());
    assert_eq!(in_force, vec![h2["id"].as_i64().unwrap()]);
    let all = d.get("/api/holds?all=true").await.unwrap();
    assert_eq!(ids(&all).len(), 2, "{all}");
    // The CLI's holds are audited too.
    let out = d.cli(&[
        "hold",
        "add",
        "2",
        "--from",
        "2026-11-27T10:00:00Z",
        "--to",
        "2026-11-27T11:00:00Z",
        "--reason",
        "pedido da promotoria",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && !stdout.contains("warning"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = d.get("/api/audit?limit=200").await.unwrap();
    let rows = audit["entries"].as_array().unwrap();
    let row = |actor: &str, action: &str| {
        rows.iter()
            .find(|r| r["actor"].as_str().unwrap().starts_with(actor) && r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} by {actor} in {rows:#?}"))
    };
    let placed = row("otto", "hold_add");
    assert_eq!(placed["camera"], 1);
    assert!(
        placed["detail"]
            .as_str()
            .unwrap()
            .contains("2026-11-28T21:00:00Z to 2026-11-28T23:00:00Z; Ofício 12/2026"),
        "{placed}"
    );
    assert_eq!(
        row("ada", "hold_release")["detail"],
        format!("hold {}", h1["id"])
    );
    assert!(row("cli:", "hold_add")["detail"]
        .as_str()
        .unwrap()
        .contains("pedido da promotoria"));
}

/// A user limited to camera 2 (a school principal) learns nothing of
/// camera 1: not in the status, the camera list, the health document, the
/// alerts, the incidents, the silences nor the server-sent events; and
/// cannot silence it. The box's own alerts stay visible.
#[tokio::test]
async fn a_user_limited_to_camera_2_sees_nothing_of_camera_1() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    d.wait_all_recording(2).await;
    let get = |who: &Login, path: &str| {
        let r = who.request(Method::GET, path);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let ids = |list: &Value| -> Vec<u64> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect()
    };
    let (_, status) = get(&w.viewer2, "/api/status").await;
    assert_eq!(ids(&status["cameras"]), vec![2], "{status}");
    let (_, full) = get(&w.viewer, "/api/status").await;
    assert_eq!(ids(&full["cameras"]), vec![1, 2]);
    let (_, list) = get(&w.viewer2, "/api/cameras").await;
    assert_eq!(ids(&list["items"]), vec![2], "{list}");
    let (_, health) = get(&w.viewer2, "/api/cameras/health").await;
    assert_eq!(health["total"], 1, "{health}");

    // Events from here on: camera 1 fails first, then camera 2.
    let mut events = w
        .viewer2
        .request(Method::GET, "/api/events")
        .send()
        .await
        .unwrap();
    d.sim("POST", "/cameras/cam_1/down?mode=closed").await;
    crate::harness::eventually("camera 1's alert", Duration::from_secs(30), || async {
        let a = d.get("/api/alerts?camera_id=1").await?;
        (a["total"].as_u64()? > 0).then_some(())
    })
    .await;
    d.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let alert_cameras = |text: &str| -> Vec<Value> {
        text.split("\n\n")
            .filter(|b| b.contains("event: alert"))
            .filter_map(|b| b.split("data: ").nth(1))
            .map(|d| serde_json::from_str::<Value>(d).unwrap()["camera"]["id"].clone())
            .collect()
    };
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !alert_cameras(&text).contains(&json!(2)) {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .expect("camera 2's alert on the event stream within 30 s")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !alert_cameras(&text).contains(&json!(1)),
        "camera 1's alert reached vic: {text}"
    );
    for block in text.split("\n\n").filter(|b| b.contains("event: status")) {
        assert!(
            !block.contains("\"id\":1,"),
            "camera 1 in vic's status: {block}"
        );
    }

    let (_, alerts) = get(&w.viewer2, "/api/alerts").await;
    let cams: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["camera_id"])
        .collect();
    assert!(
        !cams.is_empty() && cams.iter().all(|c| **c == json!(2) || c.is_null()),
        "{alerts}"
    );
    assert_eq!(alerts["total"].as_u64().unwrap(), cams.len() as u64);
    let (status, e) = get(&w.viewer2, "/api/alerts?camera_id=1").await;
    assert_eq!(status, 403, "{e}");
    let (_, inc) = get(&w.viewer2, "/api/alerts/incidents").await;
    assert!(
        inc["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["camera_id"] != 1),
        "{inc}"
    );
    let (_, all_inc) = get(&w.viewer, "/api/alerts/incidents").await;
    assert!(all_inc["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["camera_id"] == 1));

    // Silences: oz may silence camera 2, not camera 1, and sees camera 2's.
    let r = w
        .operator
        .request(Method::POST, "/api/alerts/silences")
        .json(&json!({"camera_id": 1, "minutes": 30, "reason": "obra"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (camera, want) in [(1, 403), (2, 200)] {
        let r = w
            .operator2
            .request(Method::POST, "/api/alerts/silences")
            .json(&json!({"camera_id": camera, "minutes": 30, "reason": "obra"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "silence camera {camera}");
    }
    let r = w
        .operator2
        .request(Method::DELETE, "/api/alerts/silences/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, silences) = get(&w.operator2, "/api/alerts/silences").await;
    let silenced: Vec<&Value> = silences["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["camera_id"])
        .collect();
    assert_eq!(silenced, vec![&json!(2)], "{silences}");
}

/// Every MediaMTX endpoint of the stand-in that serves video (HLS
/// playlists and segments, WHEP, RTSP DESCRIBE, playback `/list` and
/// `/get`) asked by nobody, a viewer, an operator, an admin and with the API
/// token, through MediaMTX's own authorization (it asks the daemon): only
/// a session's media token opens live video, only an operator's or admin's
/// opens recordings, and the API token opens no video at all. HLS asks about
/// the first request of a session only (`index.m3u8`); its media playlist
/// and segments go to whoever holds the session's id, and without one they
/// are refused (docs/mediamtx.md §b2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mediamtx_endpoint_answers_each_role_as_the_table_says() {
    let w = world(Setup::default()).await;
    let d = &w.d;
    d.wait_all_recording(2).await;
    let token = d.token();
    // [nobody, viewer, operator, admin, API token]: the media credential.
    let creds: [Option<String>; 5] = [
        None,
        Some(w.viewer.media.clone()),
        Some(w.operator.media.clone()),
        Some(w.admin.media.clone()),
        Some(token),
    ];
    let hls = format!("http://127.0.0.1:{}/cam_2", d.ports.hls);
    let whep = format!("http://127.0.0.1:{}/cam_2/whep", d.ports.webrtc);
    let playback = format!("http://127.0.0.1:{}", d.ports.playback);
    let offer = include_str!("../fixtures/webrtc/offer.sdp");
    // A moment that is recorded, from the operator's `/list`.
    let op = format!("&token={}", w.operator.media);
    let list: Value = d
        .wait_for(
            "a recorded span of camera 2",
            Duration::from_secs(30),
            || async {
                let (code, body) = fetch(&format!("{playback}/list?path=cam_2{op}"), None).await;
                let v: Value = serde_json::from_str(&body).ok()?;
                (code == 200 && v.as_array().is_some_and(|a| !a.is_empty())).then_some(v)
            },
        )
        .await;
    let start = list[0]["start"].as_str().unwrap().replace('+', "%2B");

    let mut failures = Vec::new();
    for (i, cred) in creds.iter().enumerate() {
        let cred = cred.as_deref();
        // HLS: the caller's own session, then its media playlist and a
        // segment with nothing but the session's id.
        let (index, multivariant) = fetch(&format!("{hls}/index.m3u8"), cred).await;
        let (media, segment) = if index == 200 {
            let media = first_uri(&multivariant, false);
            let (code, playlist) = fetch(&format!("{hls}/{media}"), None).await;
            let seg = first_uri(&playlist, true);
            (code, fetch(&format!("{hls}/{seg}"), None).await.0)
        } else {
            let (code, _) = fetch(&format!("{hls}/main_stream.m3u8"), cred).await;
            let (seg, _) = fetch(&format!("{hls}/main_seg0.mp4"), cred).await;
            (code, seg)
        };
        let mut r = reqwest::Client::new()
            .post(&whep)
            .header("content-type", "application/sdp")
            .body(offer);
        if let Some(c) = cred {
            r = r.bearer_auth(c);
        }
        let whep_code = r.send().await.unwrap().status().as_u16();
        let q = cred.map(|c| format!("token={c}")).unwrap_or_default();
        let describe = rtsp_describe(d.ports.rtsp, &format!("cam_2?{q}"));
        let (list_code, _) = fetch(&format!("{playback}/list?path=cam_2&{q}"), None).await;
        let get_url = format!("{playback}/get?path=cam_2&start={start}&duration=1&format=mp4&{q}");
        let (get_code, _) = fetch(&get_url, None).await;
        let got = [
            index, media, segment, whep_code, describe, list_code, get_code,
        ];
        // [index.m3u8, media playlist, segment, WHEP, DESCRIBE, /list, /get]
        let want: [u16; 7] = match i {
            0 | 4 => [401; 7],
            1 => [200, 200, 200, 201, 200, 401, 401],
            _ => [200, 200, 200, 201, 200, 200, 200],
        };
        if got != want {
            failures.push(format!("caller {i}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// GET `url`, with `Authorization: Bearer <cred>` when given: the status
/// and the body.
async fn fetch(url: &str, cred: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(c) = cred {
        r = r.bearer_auth(c);
    }
    let r = r.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// The first (or last) URI line of a playlist.
fn first_uri(playlist: &str, last: bool) -> String {
    let mut uris = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let uri = if last { uris.next_back() } else { uris.next() };
    uri.unwrap_or_else(|| panic!("no URI in {playlist}"))
        .to_string()
}

/// `DESCRIBE rtsp://127.0.0.1:port/<path_and_query>`: the status code.
fn rtsp_describe(port: u16, path_and_query: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "DESCRIBE rtsp://127.0.0.1:{port}/{path_and_query} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no RTSP status in {line:?}"))
}
