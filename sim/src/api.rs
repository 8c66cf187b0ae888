//! Control API v3 (docs/mediamtx.md, control API), routed by hand so that unknown routes, wrong methods and
//! HEAD all get gin's plain-text `404 page not found`, as MediaMTX does.

use crate::auth;
use crate::config::{self, check_path_name, Conf};
use crate::http::{go_time, json, json_error, json_ok, parse_time, plain_404, query_map};
use crate::log::info;
use crate::recordpath;
use crate::sim::{PathShared, Sim};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

type Res = Result<Response, Response>;

fn bad(msg: impl AsRef<str>) -> Response {
    json_error(StatusCode::BAD_REQUEST, msg.as_ref())
}

fn not_found(msg: &str) -> Response {
    json_error(StatusCode::NOT_FOUND, msg)
}

async fn handle(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = sim.faults.get();
    if faults.api_hung {
        std::future::pending::<()>().await;
    }
    if faults.api_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.api_delay_ms)).await;
    }
    if method == Method::OPTIONS && headers.contains_key("access-control-request-method") {
        return (
            StatusCode::NO_CONTENT,
            [
                ("Access-Control-Allow-Origin", "*"),
                (
                    "Access-Control-Allow-Methods",
                    "OPTIONS, GET, POST, PATCH, DELETE",
                ),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type",
                ),
            ],
        )
            .into_response();
    }
    // Every route, unknown ones included, is the `api` action (docs/mediamtx.md §b2).
    let req = auth::Request {
        action: auth::Action::Api,
        path: String::new(),
        query: uri.query().unwrap_or("").to_string(),
        protocol: "",
        id: None,
        user_agent: String::new(),
        creds: auth::Credentials::from_http(&headers),
        ip: peer.ip(),
    };
    if let Err(refusal) =
        auth::check(&sim.conf(), &req, &format!("[API] [conn {peer}]"), None).await
    {
        return refusal.response();
    }
    let q = query_map(uri.query());
    let path = crate::http::path_decode(uri.path());
    let mut r = match route(&sim, &method, &path, &q, &body).await {
        Ok(r) | Err(r) => r,
    };
    r.headers_mut()
        .insert("Access-Control-Allow-Origin", "*".parse().unwrap());
    r
}

async fn route(
    sim: &Arc<Sim>,
    method: &Method,
    path: &str,
    q: &std::collections::BTreeMap<String, String>,
    body: &Bytes,
) -> Res {
    let conf = sim.conf();
    let hls = conf.bool("hls");
    let get = method == Method::GET;
    macro_rules! name_after {
        ($prefix:expr) => {
            path.strip_prefix($prefix)
        };
    }
    if get && path == "/v3/info" {
        return Ok(json(
            &json!({"version": "v1.20.1", "started": go_time(&sim.started)}),
        ));
    }
    if get && path == "/v3/config/global/get" {
        return Ok(json(&redacted(&conf.global)));
    }
    if method == Method::PATCH && path == "/v3/config/global/patch" {
        let b = parse_body(body)?;
        return mutate(sim, |c| config::patch_global(&mut c.global, b)).await;
    }
    if get && path == "/v3/config/pathdefaults/get" {
        return Ok(json(&conf.path_defaults));
    }
    if method == Method::PATCH && path == "/v3/config/pathdefaults/patch" {
        let b = parse_body(body)?;
        return mutate(sim, |c| config::patch_path(&mut c.path_defaults, b)).await;
    }
    if get && path == "/v3/config/paths/list" {
        let items = conf
            .paths
            .keys()
            .map(|n| path_conf_json(&conf, n))
            .collect();
        return paginate(q, items);
    }
    if let Some(name) = name_after!("/v3/config/paths/get/").filter(|_| get) {
        check_name(name)?;
        if !conf.paths.contains_key(name) {
            return Err(not_found("path configuration not found"));
        }
        return Ok(json(&path_conf_json(&conf, name)));
    }
    if let Some(name) = name_after!("/v3/config/paths/add/").filter(|_| method == Method::POST) {
        if name.is_empty() {
            return Err(bad("invalid name"));
        }
        check_path_name(name).map_err(bad)?;
        let b = parse_body(body)?;
        let name = name.to_string();
        return mutate(sim, |c| {
            if c.paths.contains_key(&name) {
                return Err("path already exists".into());
            }
            let mut m = Map::new();
            config::patch_path(&mut m, b)?;
            c.paths.insert(name, m);
            Ok(())
        })
        .await;
    }
    if let Some(name) = name_after!("/v3/config/paths/patch/").filter(|_| method == Method::PATCH) {
        check_name(name)?;
        let b = parse_body(body)?;
        if !conf.paths.contains_key(name) {
            return Err(not_found("path not found"));
        }
        let name = name.to_string();
        return mutate(sim, |c| {
            let entry = c.paths.get_mut(&name).ok_or("path not found")?;
            config::patch_path(entry, b)
        })
        .await;
    }
    if let Some(name) = name_after!("/v3/config/paths/replace/").filter(|_| method == Method::POST)
    {
        if name.is_empty() {
            return Err(bad("invalid name"));
        }
        check_path_name(name).map_err(bad)?;
        let b = parse_body(body)?;
        let name = name.to_string();
        return mutate(sim, |c| {
            let mut m = Map::new();
            config::patch_path(&mut m, b)?;
            c.paths.insert(name, m);
            Ok(())
        })
        .await;
    }
    if let Some(name) = name_after!("/v3/config/paths/delete/").filter(|_| method == Method::DELETE)
    {
        check_name(name)?;
        if !conf.paths.contains_key(name) {
            return Err(not_found("path not found"));
        }
        let name = name.to_string();
        return mutate(sim, |c| {
            c.paths.remove(&name);
            Ok(())
        })
        .await;
    }
    if get && path == "/v3/paths/list" {
        let _pm = sim.path_manager.lock().await;
        let items = sim
            .all_paths()
            .iter()
            .map(|p| serde_json::to_value(path_json(sim, p)).unwrap())
            .collect();
        return paginate(q, items);
    }
    if let Some(name) = name_after!("/v3/paths/get/").filter(|_| get) {
        let _pm = sim.path_manager.lock().await;
        check_name(name)?;
        let p = sim.path(name).ok_or_else(|| not_found("path not found"))?;
        return Ok(json(&path_json(sim, &p)));
    }
    if get && path == "/v3/recordings/list" {
        let items = conf
            .static_names()
            .into_iter()
            .filter_map(|n| {
                let segs = segments_json(&conf, &n);
                (!segs.is_empty()).then(|| json!({"name": n, "segments": segs}))
            })
            .collect();
        return paginate(q, items);
    }
    if let Some(name) = name_after!("/v3/recordings/get/").filter(|_| get) {
        check_name(name)?;
        if conf.matching_entry(name).is_none() {
            return Err(bad(format!("path '{name}' is not configured")));
        }
        return Ok(json(
            &json!({"name": name, "segments": segments_json(&conf, name)}),
        ));
    }
    if method == Method::DELETE && path == "/v3/recordings/deletesegment" {
        let name = q.get("path").map(String::as_str).unwrap_or("");
        check_name(name)?;
        let Some(entry) = conf.matching_entry(name) else {
            return Err(bad(format!("path '{name}' is not configured")));
        };
        let start = parse_time(q.get("start").map(String::as_str).unwrap_or("")).map_err(bad)?;
        let pc = conf.path_conf(&entry).unwrap();
        let file = recordpath::expand(config::path_str(&pc, "recordPath"), name, start, ".mp4");
        return match std::fs::remove_file(&file) {
            Ok(()) => Ok(json_ok()),
            Err(e) => Err(bad(format!("remove {file}: {}", go_io_error(&e)))),
        };
    }
    if hls {
        if get && path == "/v3/hlsmuxers/list" {
            let items = sim.state.lock().unwrap().hls.muxers_json();
            return paginate(q, items);
        }
        if let Some(name) = name_after!("/v3/hlsmuxers/get/").filter(|_| get) {
            check_name(name)?;
            let items = sim.state.lock().unwrap().hls.muxers_json();
            return items
                .into_iter()
                .find(|m| m["path"] == name)
                .map(|m| json(&m))
                .ok_or_else(|| not_found("muxer not found"));
        }
        if get && path == "/v3/hlssessions/list" {
            let items = sim.state.lock().unwrap().hls.sessions_json();
            return paginate(q, items);
        }
        if let Some(id) = name_after!("/v3/hlssessions/get/").filter(|_| get) {
            check_uuid(id)?;
            let items = sim.state.lock().unwrap().hls.sessions_json();
            return items
                .into_iter()
                .find(|m| m["id"] == id)
                .map(|m| json(&m))
                .ok_or_else(|| not_found("session not found"));
        }
        if let Some(id) = name_after!("/v3/hlssessions/kick/").filter(|_| method == Method::POST) {
            check_uuid(id)?;
            return if sim.state.lock().unwrap().hls.kick(id) {
                Ok(json_ok())
            } else {
                Err(not_found("session not found"))
            };
        }
    }
    if conf.bool("webrtc") {
        if get && path == "/v3/webrtcsessions/list" {
            let items = sim.state.lock().unwrap().webrtc.live();
            return paginate(q, items.iter().map(|s| s.lock().unwrap().json()).collect());
        }
        let get_id = name_after!("/v3/webrtcsessions/get/").filter(|_| get);
        let kick_id = name_after!("/v3/webrtcsessions/kick/").filter(|_| method == Method::POST);
        if let Some(id) = get_id.or(kick_id) {
            check_uuid(id)?;
            let s = sim.state.lock().unwrap().webrtc.find(|s| s.id == id);
            let s = s.ok_or_else(|| not_found("session not found"))?;
            let mut s = s.lock().unwrap();
            if kick_id.is_some() {
                s.kicked = true;
                return Ok(json_ok());
            }
            return Ok(json(&s.json()));
        }
    }
    // Servers the sim has no sessions for: empty lists, and 404 for any id.
    for (enabled, prefix) in [
        (conf.bool("rtsp"), "/v3/rtspconns/"),
        (conf.bool("rtsp"), "/v3/rtspsessions/"),
        (conf.bool("rtmp"), "/v3/rtmpconns/"),
        (conf.bool("srt"), "/v3/srtconns/"),
    ] {
        let Some(rest) = path.strip_prefix(prefix).filter(|_| enabled) else {
            continue;
        };
        if get && rest == "list" {
            return paginate(q, vec![]);
        }
        let id = rest.strip_prefix("get/").filter(|_| get).or_else(|| {
            rest.strip_prefix("kick/")
                .filter(|_| method == Method::POST)
        });
        if let Some(id) = id {
            check_uuid(id)?;
            let what = if prefix.contains("conns") {
                "connection not found"
            } else {
                "session not found"
            };
            return Err(not_found(what));
        }
    }
    Err(plain_404())
}

fn check_name(name: &str) -> Result<(), Response> {
    if name.is_empty() || check_path_name(name).is_err() {
        return Err(bad("invalid name"));
    }
    Ok(())
}

fn check_uuid(id: &str) -> Result<(), Response> {
    let ok = id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err(bad(
            "invalid UUID length: ".to_string() + &id.len().to_string()
        ))
    }
}

fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Strict JSON body: empty is an error, unknown keys are checked by the patchers.
fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("unexpected end of JSON input"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("json: cannot unmarshal non-object into Go value")),
        Err(e) if e.is_eof() => Err(bad("unexpected end of JSON input")),
        Err(e) => Err(bad(format!("invalid character in JSON: {e}"))),
    }
}

/// Applies an API config change: validated as a whole, then applied like a reload
/// restricted to what changed. Memory only: the next file reload discards it.
async fn mutate(sim: &Arc<Sim>, f: impl FnOnce(&mut Conf) -> Result<(), String>) -> Res {
    let _g = sim.reload_lock.lock().await;
    let mut c = sim.conf();
    f(&mut c).map_err(|e| {
        if e == "path not found" {
            not_found(&e)
        } else {
            bad(e)
        }
    })?;
    c.validate().map_err(bad)?;
    info!("reloading configuration (API request)");
    if let Err(e) = sim.reload(c).await {
        // Like MediaMTX: the change was accepted, re-creating a resource failed: exit 0.
        crate::log::error!("{e}");
        sim.request_exit(0);
    }
    Ok(json_ok())
}

fn paginate(q: &std::collections::BTreeMap<String, String>, items: Vec<Value>) -> Res {
    let parse = |k: &str, def: u64| -> Result<u64, Response> {
        match q.get(k) {
            None => Ok(def),
            Some(v) => v.parse::<u64>().map_err(|_| {
                bad(format!(
                    "strconv.ParseUint: parsing \"{v}\": invalid syntax"
                ))
            }),
        }
    };
    let per = parse("itemsPerPage", 100)?;
    if per == 0 {
        return Err(bad("invalid items per page"));
    }
    let page = parse("page", 0)?;
    let count = items.len() as u64;
    let page_count = count.div_ceil(per);
    let start = page.saturating_mul(per).min(count) as usize;
    let end = (start as u64 + per).min(count) as usize;
    Ok(json(&json!({
        "itemCount": count,
        "pageCount": page_count,
        "items": items[start..end].to_vec(),
    })))
}

fn redacted(global: &Map<String, Value>) -> Map<String, Value> {
    let mut g = global.clone();
    if let Some(Value::Array(users)) = g.get_mut("authInternalUsers") {
        for u in users {
            if let Some(p) = u.get_mut("pass") {
                if p.as_str().is_some_and(|s| !s.is_empty()) {
                    *p = Value::String("<redacted>".into());
                }
            }
        }
    }
    g
}

fn path_conf_json(conf: &Conf, name: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(name.into()));
    for (k, v) in conf.path_conf(name).unwrap_or_default() {
        m.insert(k, v);
    }
    Value::Object(m)
}

fn segments_json(conf: &Conf, name: &str) -> Vec<Value> {
    let Some(entry) = conf.matching_entry(name) else {
        return vec![];
    };
    let pc = conf.path_conf(&entry).unwrap();
    recordpath::list_segments(config::path_str(&pc, "recordPath"), name, ".mp4")
        .into_iter()
        .map(|(_, t)| json!({"start": go_time(&t)}))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathJson {
    name: String,
    conf_name: String,
    ready: bool,
    ready_time: Option<String>,
    available: bool,
    available_time: Option<String>,
    online: bool,
    online_time: Option<String>,
    source: Option<SourceJson>,
    tracks: Vec<&'static str>,
    tracks2: Vec<TrackJson>,
    readers: Vec<Value>,
    inbound_bytes: u64,
    outbound_bytes: u64,
    inbound_frames_in_error: u64,
    bytes_received: u64,
    bytes_sent: u64,
}

/// `{"type","id"}`, in MediaMTX's field order.
#[derive(Serialize)]
struct SourceJson {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrackJson {
    codec: &'static str,
    codec_props: CodecProps,
}

#[derive(Serialize)]
struct CodecProps {
    width: u16,
    height: u16,
    profile: &'static str,
    level: String,
}

pub fn path_json(sim: &Sim, p: &PathShared) -> PathJson {
    let st = p.status.lock().unwrap().clone();
    let kind = p.source_type();
    let ready = st.ready_time.is_some();
    let ready_time = st.ready_time.as_ref().map(go_time);
    let (online, online_time) = match kind {
        Some(_) => (
            true,
            Some(
                st.online_time
                    .as_ref()
                    .map(go_time)
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            ),
        ),
        None => (false, None),
    };
    let fx = &sim.fixture;
    let (readers, outbound) = if ready {
        let mut st = sim.state.lock().unwrap();
        let (mut r, o) = st.hls.readers(&p.name);
        let (w, wo) = st.webrtc.readers(&p.name);
        r.extend(w);
        (r, o + wo)
    } else {
        (vec![], 0)
    };
    let inbound = if ready { st.inbound_bytes } else { 0 };
    PathJson {
        name: p.name.clone(),
        conf_name: p.name.clone(),
        ready,
        ready_time: ready_time.clone(),
        available: ready,
        available_time: ready_time,
        online,
        online_time,
        source: kind.map(|k| SourceJson { kind: k, id: "" }),
        tracks: if ready { vec!["H264"] } else { vec![] },
        tracks2: if ready {
            vec![TrackJson {
                codec: "H264",
                codec_props: CodecProps {
                    width: fx.width,
                    height: fx.height,
                    profile: fx.profile,
                    level: fx.level.clone(),
                },
            }]
        } else {
            vec![]
        },
        readers,
        inbound_bytes: inbound,
        outbound_bytes: outbound,
        inbound_frames_in_error: 0,
        bytes_received: inbound,
        bytes_sent: outbound,
    }
}
