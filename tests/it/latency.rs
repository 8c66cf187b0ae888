//! `POST /api/cameras/{id}/latency`: the dashboard's player reports the live
//! latency it measures, and `/metrics` shows it in the
//! `vms_stream_latency_seconds{camera_id,protocol}` histogram.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Daemon, Setup};

async fn metrics(d: &Daemon) -> String {
    reqwest::get(format!("http://{}/metrics", d.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reported_latency_lands_in_the_histogram() {
    let d = Daemon::start(Setup::default());
    d.wait_status("the API answers", Duration::from_secs(15), |s| {
        s["cameras"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    let http = d.client();
    let url = format!("http://{}/api/cameras/1/latency", d.api);
    // The dashboard sends it with its session; scripts with the token.
    let r = http
        .post(&url)
        .json(&json!({"protocol": "webrtc", "seconds": 0.3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("http://{}/api/cameras/2/latency", d.api))
        .json(&json!({"protocol": "hls", "seconds": 4.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let text = metrics(&d).await;
    for line in [
        // 0.3 s is above the 0.25 bucket and within 0.5.
        r#"vms_stream_latency_seconds_bucket{camera_id="1",protocol="webrtc",le="0.25"} 0"#,
        r#"vms_stream_latency_seconds_bucket{camera_id="1",protocol="webrtc",le="0.5"} 1"#,
        r#"vms_stream_latency_seconds_count{camera_id="1",protocol="webrtc"} 1"#,
        r#"vms_stream_latency_seconds_bucket{camera_id="2",protocol="hls",le="4"} 0"#,
        r#"vms_stream_latency_seconds_bucket{camera_id="2",protocol="hls",le="6"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line} in /metrics:\n{}",
            text.lines()
                .filter(|l| l.contains("latency"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Bad reports: 400 with a JSON error, and nothing recorded.
    for body in [
        json!({"protocol": "rtsp", "seconds": 0.3}),
        json!({"protocol": "webrtc", "seconds": -1}),
        json!({"protocol": "webrtc", "seconds": 601}),
        json!({"protocol": "webrtc", "seconds": "0.3"}),
        json!({"protocol": "webrtc"}),
        json!({"protocol": "webrtc", "seconds": 0.3, "extra": 1}),
        json!([]),
    ] {
        let r = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{body}: {v}");
    }
    for raw in [
        "{\"protocol\": \"webrtc\", \"seconds\": 1e999}",
        "not json",
        "",
    ] {
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{raw}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{raw}: {v}");
    }
    // JSON only: a cross-site form or beacon cannot post here.
    let r = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"protocol": "webrtc", "seconds": 0.3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Unknown camera and non-numeric id.
    let ok = json!({"protocol": "webrtc", "seconds": 0.3});
    for (path, code) in [
        ("/api/cameras/42/latency", 404),
        ("/api/cameras/x/latency", 400),
    ] {
        let r = http
            .post(format!("http://{}{path}", d.api))
            .json(&ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), code, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    let text = metrics(&d).await;
    assert!(
        text.lines()
            .any(|l| l == r#"vms_stream_latency_seconds_count{camera_id="1",protocol="webrtc"} 1"#),
        "a rejected report was recorded"
    );
    assert!(!text.contains(r#"camera_id="42",protocol"#));
}

#[tokio::test]
async fn beyond_loopback_latency_reports_need_the_token() {
    let d = Daemon::start(Setup {
        api_any: true,
        ..Setup::default()
    });
    let http = reqwest::Client::new();
    let token = d.wait_token().await;
    let url = format!("http://{}/api/cameras/1/latency", d.api);
    let body = json!({"protocol": "hls", "seconds": 1.5});
    d.wait_for("the API answers", Duration::from_secs(10), || async {
        let r = http
            .get(format!("http://{}/api/status", d.api))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}
