//! The fault-injection endpoint (`MTXSIM_CONTROL`): a small loopback JSON API, separate
//! from the fake MediaMTX API so that it keeps answering when that one is hung.

use crate::faults::{CameraMode, Faults, WhepMode};
use crate::http::{json, json_error, plain_404, query_map};
use crate::log::info;
use crate::sim::Sim;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

fn ok(sim: &Sim) -> Response {
    json(&sim.faults.get())
}

fn bad(msg: &str) -> Response {
    json_error(StatusCode::BAD_REQUEST, msg)
}

async fn handle(State(sim): State<Arc<Sim>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let q = query_map(uri.query());
    let path = uri.path();
    let post = method == Method::POST;
    let r = match (method.clone(), path) {
        (Method::GET, "/faults") => ok(&sim),
        // An empty body resets every fault (same as `{}`).
        (Method::PUT, "/faults") => match if body.iter().all(u8::is_ascii_whitespace) {
            Ok(Faults::default())
        } else {
            serde_json::from_slice::<Faults>(&body)
        } {
            Ok(f) => {
                sim.faults.update(|x| *x = f);
                changed(&sim);
                ok(&sim)
            }
            Err(e) => bad(&e.to_string()),
        },
        (Method::GET, "/state") => json(&state(&sim)),
        (Method::POST, "/crash") => {
            info!("[mtxsim] crash requested: abort()");
            std::process::abort()
        }
        (Method::POST, "/exit") => {
            let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(1);
            std::process::exit(code)
        }
        (Method::POST, "/api/delay") => match q.get("ms").map(|v| v.parse::<u64>()) {
            Some(Ok(ms)) => {
                sim.faults.update(|f| f.api_delay_ms = ms);
                ok(&sim)
            }
            _ => bad("ms must be a non-negative integer"),
        },
        (Method::POST, "/reload-fatal") => {
            sim.faults.update(|f| f.reload_fatal = true);
            ok(&sim)
        }
        (Method::POST, "/api/hang") => {
            sim.faults.update(|f| f.api_hung = true);
            ok(&sim)
        }
        (Method::POST, "/api/unhang") => {
            sim.faults.update(|f| f.api_hung = false);
            ok(&sim)
        }
        (Method::POST, "/memory/grow") => match q.get("mib_per_sec").map(|v| v.parse::<u64>()) {
            Some(Ok(n)) => {
                sim.faults.update(|f| f.memory_grow_mib_per_sec = n);
                changed(&sim);
                ok(&sim)
            }
            _ => bad("mib_per_sec must be a non-negative integer"),
        },
        (Method::POST, "/whep") => {
            let mode = match q.get("mode").map(String::as_str) {
                Some("fail") => WhepMode::Fail,
                Some("hang") => WhepMode::Hang,
                Some("not_found") => WhepMode::NotFound,
                Some("no_ice") => WhepMode::NoIce,
                Some("no_media") => WhepMode::NoMedia,
                Some("no_stack") => WhepMode::NoStack,
                Some("default") | None => WhepMode::Default,
                Some(m) => return bad(&format!("unknown mode '{m}'")),
            };
            sim.faults.update(|f| f.whep = mode);
            ok(&sim)
        }
        (Method::POST, "/stream/freeze") => match q.get("after_secs").map(|v| v.parse::<u64>()) {
            Some(Ok(n)) => {
                sim.faults.update(|f| f.stream_freeze_after_secs = n);
                ok(&sim)
            }
            _ => bad("after_secs must be a non-negative integer"),
        },
        _ if post => per_path(&sim, path, &q).unwrap_or_else(plain_404),
        _ => plain_404(),
    };
    r
}

/// `/cameras/{path}/down|up`, `/recorder/{path}/stall|resume`,
/// `/paths/{path}/freeze-bytes|unfreeze-bytes`; names may contain `/`.
fn per_path(
    sim: &Sim,
    path: &str,
    q: &std::collections::BTreeMap<String, String>,
) -> Option<Response> {
    let (kind, rest) = path.trim_start_matches('/').split_once('/')?;
    let (name, action) = rest.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    let name = name.to_string();
    match (kind, action) {
        ("cameras", "down") => {
            let mode = match q.get("mode").map(String::as_str) {
                None | Some("silent") => CameraMode::Silent,
                Some("closed") => CameraMode::Closed,
                Some(m) => return Some(bad(&format!("unknown mode '{m}'"))),
            };
            sim.faults.update(|f| f.cameras.insert(name, mode));
        }
        ("cameras", "up") => {
            sim.faults.update(|f| f.cameras.remove(&name));
        }
        ("recorder", "stall") => {
            sim.faults.update(|f| f.recorder_stalled.insert(name));
        }
        ("recorder", "resume") => {
            sim.faults.update(|f| f.recorder_stalled.remove(&name));
        }
        ("paths", "freeze-bytes") => {
            sim.faults.update(|f| f.bytes_frozen.insert(name));
        }
        ("paths", "unfreeze-bytes") => {
            sim.faults.update(|f| f.bytes_frozen.remove(&name));
        }
        _ => return None,
    }
    changed(sim);
    Some(ok(sim))
}

fn changed(sim: &Sim) {
    sim.poke_all();
    let _ = sim
        .memory_rate
        .send(sim.faults.get().memory_grow_mib_per_sec);
}

fn state(sim: &Sim) -> Value {
    let (listeners, paths) = {
        let st = sim.state.lock().unwrap();
        let l: Map<String, Value> = st
            .bound
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let p: Vec<_> = st.paths.values().map(|h| h.shared.clone()).collect();
        (l, p)
    };
    let faults = sim.faults.get();
    let mut pm = Map::new();
    for p in paths {
        let st = p.status.lock().unwrap().clone();
        let rec = p.rec.lock().unwrap().clone();
        let picture = sim.live.state(&p.name);
        let camera = match faults.camera(&p.name) {
            Some(CameraMode::Silent) => "silent",
            Some(CameraMode::Closed) => "closed",
            None => "up",
        };
        pm.insert(
            p.name.clone(),
            json!({
                "ready": st.ready_time.is_some(),
                "camera": camera,
                "inbound_bytes": if st.ready_time.is_some() { st.inbound_bytes } else { 0 },
                "segment": rec.segment.as_ref().map(|s| s.display().to_string()),
                "parts_written": rec.parts_written,
                "segments_completed": rec.segments_completed,
                // The camera's picture: its code, and whether it is its own (rendered)
                // or still the shared one (code 0).
                "picture": {"code": picture.0, "own": picture.1},
            }),
        );
    }
    json!({
        "pid": std::process::id(),
        "started": sim.started_flag.load(std::sync::atomic::Ordering::SeqCst),
        "startup_ms": sim.startup_time.lock().unwrap().map(|d| d.as_secs_f64() * 1000.0),
        "listeners": listeners,
        "paths": pm,
        "faults": faults,
    })
}
