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
/// own small runtime on a helper thread), so it can be called from `main`
/// or from async code alike.
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

fn fetch(url: &str, token: Option<&str>) -> Result<Vec<AlertRow>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                "not running (connection refused)".to_string()
            } else {
                e.without_url().to_string()
            }
        })?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.json::<ListReply>()
            .await
            .map(|r| r.alerts)
            .map_err(|e| format!("unexpected reply: {}", e.without_url()))
    })
}
