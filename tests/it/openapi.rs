//! `openapi.yaml` is the contract of the HTTP API: schemathesis checks the
//! running daemon against it (`scripts/api-contract`). These tests keep the
//! document and the routers in step, and pin what the contract run found.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Daemon, Setup};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(METHOD, path)` of every `.route(...)` in the routers' sources.
pub(crate) fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for file in ["src/http/mod.rs", "src/http/alerts.rs"] {
        let src = std::fs::read_to_string(crate::harness::files::repo().join(file)).unwrap();
        for call in src.split(".route(\"").skip(1) {
            let (path, rest) = call.split_once('"').unwrap();
            // The handlers of this route: the rest of the `.route(` call.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("{file}: unclosed .route(\"{path}\""));
            let handlers = &rest[..end];
            let mut found = false;
            for m in METHODS {
                let hit = handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[i - 1] != b'_'
                });
                if hit {
                    out.insert((m.to_uppercase(), path.to_string()));
                    found = true;
                }
            }
            assert!(found, "{file}: no method found for route {path}");
        }
    }
    out
}

fn routes_in_openapi() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(crate::harness::files::repo().join("openapi.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method) {
                out.insert((method.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let code = routes_in_source();
    let doc = routes_in_openapi();
    assert!(code.contains(&("POST".into(), "/api/cameras/{id}/latency".into())));
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let missing: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "openapi.yaml documents routes the daemon does not serve: {missing:?}"
    );
}

/// Found while checking the contract: an offset beyond i64 wrapped to a
/// negative SQLite OFFSET, which SQLite reads as 0, so a page far past the
/// end returned the newest alerts instead of none.
#[tokio::test]
async fn an_offset_past_the_end_is_an_empty_page_even_beyond_i64() {
    let d = Daemon::start(Setup::default());
    let http = reqwest::Client::new();
    let token = d.wait_token().await;
    let payload = json!({
        "version": "4",
        "alerts": [{"status": "firing", "labels": {"alertname": "Teste"}}]
    });
    d.wait_for(
        "the webhook stores an alert",
        Duration::from_secs(10),
        || async {
            let r = http
                .post(format!("http://{}/api/alerts/webhook", d.api))
                .bearer_auth(&token)
                .json(&payload)
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    for offset in [
        "1000",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let page: Value = d
            .get(&format!("/api/alerts?limit=5&offset={offset}"))
            .await
            .unwrap();
        assert_eq!(page["alerts"], json!([]), "offset {offset}: {page}");
        assert!(page["total"].as_u64().unwrap() >= 1, "{page}");
    }
    let page = d.get("/api/alerts?limit=5&offset=0").await.unwrap();
    assert!(!page["alerts"].as_array().unwrap().is_empty(), "{page}");
}

/// Regression: `alert_store_unusable` was missing from the `Issue` enum of
/// openapi.yaml. Every issue the daemon can raise is documented.
#[test]
fn every_issue_is_in_the_openapi_issue_enum() {
    let doc: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(crate::harness::files::repo().join("openapi.yaml")).unwrap(),
    )
    .unwrap();
    let documented: BTreeSet<String> = doc["components"]["schemas"]["Issue"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let raised: BTreeSet<String> = vms_supervisor::alerts::ALL_ISSUES
        .iter()
        .map(|i| i.as_str().to_string())
        .collect();
    assert_eq!(raised, documented);
}
