//! `vms-supervisor alerts`: recent alerts from the running daemon's API, or
//! from the database (read-only) when the daemon is down. The output says
//! which source was used.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use super::store::{AlertRow, Filter, Store};
use super::{db_path, level_name, Settings};
use crate::config::Config;

#[derive(Deserialize)]
struct ListReply {
    alerts: Vec<AlertRow>,
}

/// Where [`recent`] found the alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The daemon's API at this URL.
    Daemon(String),
    /// The database file; the string says why the daemon was not asked.
    Database(String),
}

/// The newest `limit` alerts and where they came from. Blocking (runs its
/// own small runtime on a helper thread), so it can be called from `main`;
/// from async code, call it inside `spawn_blocking`.
pub fn recent(config: &Config, limit: usize) -> anyhow::Result<(Vec<AlertRow>, Source)> {
    let url = format!(
        "http://{}/api/alerts?limit={limit}",
        connect_addr(config.api.listen)
    );
    let token = std::fs::read_to_string(&config.api.token_file)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let from_api = {
        let url = url.clone();
        std::thread::spawn(move || fetch(&url, token.as_deref()))
            .join()
            .unwrap_or_else(|_| Err("the HTTP helper thread panicked".into()))
    };
    match from_api {
        Ok(rows) => Ok((rows, Source::Daemon(url))),
        Err(why) => {
            let path = db_path(config);
            let store = Store::open_read_only(&path).with_context(|| {
                format!("the daemon is not answering ({why}) and the database cannot be read")
            })?;
            let settings = Settings::from_config(config);
            let (rows, _) = store.list(&Filter::default(), limit, 0, &settings)?;
            Ok((
                rows,
                Source::Database(format!("{} (daemon: {why})", path.display())),
            ))
        }
    }
}

/// `vms-supervisor alerts`: a table of the newest `limit` alerts, times in
/// the configured time zone, messages in the configured language, with the
/// source on the first line.
pub fn recent_text(config: &Config, limit: usize) -> anyhow::Result<String> {
    let (rows, source) = recent(config, limit)?;
    Ok(format_rows(&rows, &source, config.timezone()))
}

pub fn format_rows(rows: &[AlertRow], source: &Source, tz: chrono_tz::Tz) -> String {
    let mut out = String::new();
    match source {
        Source::Daemon(url) => {
            let _ = writeln!(out, "source: running daemon ({url})");
        }
        Source::Database(what) => {
            let _ = writeln!(out, "source: database {what}");
        }
    }
    if rows.is_empty() {
        out.push_str("no alerts stored\n");
        return out;
    }
    for r in rows {
        let when = r.timestamp.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S");
        let state = match (r.resolved, r.silenced) {
            (false, true) => "open, silenced",
            (false, false) => "open",
            (true, true) => "silenced",
            (true, false) => "",
        };
        let _ = writeln!(
            out,
            "{when}  {:<8}  {:<24}  {}{}",
            level_name(r.severity),
            r.camera.as_deref().unwrap_or("-"),
            r.message,
            if state.is_empty() {
                String::new()
            } else {
                format!("  [{state}]")
            }
        );
    }
    out
}

/// A wildcard listen address is reached through loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// The daemon did not answer at all (not running, wrong address): the
/// caller may fall back to the database.
struct Unreachable(String);

/// One JSON request to the daemon, on a helper thread with its own small
/// runtime (so this works from `main` and from async code alike).
fn request(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), Unreachable> {
    let url = url.to_string();
    let token = token.map(str::to_string);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Unreachable(e.to_string()))?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| Unreachable(e.to_string()))?;
            let mut req = client.request(method, &url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.map_err(|e| {
                Unreachable(if e.is_connect() {
                    "not running (connection refused)".to_string()
                } else {
                    e.without_url().to_string()
                })
            })?;
            let status = resp.status().as_u16();
            let value = resp
                .json::<serde_json::Value>()
                .await
                .unwrap_or(serde_json::Value::Null);
            Ok((status, value))
        })
    })
    .join()
    .unwrap_or_else(|_| Err(Unreachable("the HTTP helper thread panicked".into())))
}

fn api_token(config: &Config) -> Option<String> {
    std::fs::read_to_string(&config.api.token_file)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn api_url(config: &Config, path: &str) -> String {
    format!("http://{}{path}", connect_addr(config.api.listen))
}

fn fetch(url: &str, token: Option<&str>) -> Result<Vec<AlertRow>, String> {
    match request(reqwest::Method::GET, url, token, None) {
        Err(Unreachable(why)) => Err(why),
        Ok((200, v)) => serde_json::from_value::<ListReply>(v)
            .map(|r| r.alerts)
            .map_err(|e| format!("unexpected reply: {e}")),
        Ok((status, v)) => Err(format!(
            "HTTP {status}: {}",
            v["error"].as_str().unwrap_or("")
        )),
    }
}

/// Opens the existing database read-write for a CLI mutation while the
/// daemon is down. Never creates it (a file created by root would lock the
/// daemon's user out).
fn open_existing(config: &Config, why: &str) -> anyhow::Result<Store> {
    let path = db_path(config);
    anyhow::ensure!(
        path.exists(),
        "the daemon is not answering ({why}) and there is no database at {} yet",
        path.display()
    );
    Store::open(&path).with_context(|| {
        format!("the daemon is not answering ({why}) and the database cannot be opened")
    })
}

/// `vms-supervisor alerts silence ID --for DURATION`: the camera's alerts
/// are stored and logged but not pushed until then. Through the running
/// daemon's API (with the token of `api.token_file`), or directly in the
/// database when the daemon is down.
pub fn silence(
    config: &Config,
    camera_id: u32,
    duration: Duration,
    reason: &str,
) -> anyhow::Result<String> {
    anyhow::ensure!(!duration.is_zero(), "the silence must last more than 0 s");
    let until = chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .context("the silence is too long")?;
    let local = until
        .with_timezone(&config.timezone())
        .format("%Y-%m-%d %H:%M:%S %Z");
    let body = serde_json::json!({ "camera_id": camera_id, "until": until, "reason": reason });
    match request(
        reqwest::Method::POST,
        &api_url(config, "/api/alerts/silences"),
        api_token(config).as_deref(),
        Some(body),
    ) {
        Ok((200, _)) => Ok(format!(
            "camera {camera_id} silenced until {local} (through the running daemon)\n"
        )),
        Ok((status, v)) => anyhow::bail!(
            "the daemon refused the silence: HTTP {status}: {}",
            v["error"].as_str().unwrap_or("")
        ),
        Err(Unreachable(why)) => {
            let store = open_existing(config, &why)?;
            store.silence(camera_id, until, reason, chrono::Utc::now())?;
            Ok(format!(
                "camera {camera_id} silenced until {local} (written to the database; the daemon is down: {why})\n"
            ))
        }
    }
}

/// `vms-supervisor alerts unsilence ID`.
pub fn unsilence(config: &Config, camera_id: u32) -> anyhow::Result<String> {
    match request(
        reqwest::Method::DELETE,
        &api_url(config, &format!("/api/alerts/silences/{camera_id}")),
        api_token(config).as_deref(),
        None,
    ) {
        Ok((200, _)) => Ok(format!("camera {camera_id} is no longer silenced\n")),
        Ok((404, _)) => Ok(format!("camera {camera_id} was not silenced\n")),
        Ok((status, v)) => anyhow::bail!(
            "the daemon refused: HTTP {status}: {}",
            v["error"].as_str().unwrap_or("")
        ),
        Err(Unreachable(why)) => {
            let store = open_existing(config, &why)?;
            Ok(if store.unsilence(camera_id)? {
                format!("camera {camera_id} is no longer silenced (database; the daemon is down)\n")
            } else {
                format!("camera {camera_id} was not silenced\n")
            })
        }
    }
}
