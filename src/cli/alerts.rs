//! `vms-supervisor alerts`: recent alerts from the running daemon's API, or
//! from the database (read-only) when the daemon is down; and maintenance
//! silences, through the API or, with the daemon down, in the database. The
//! output says which source was used.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;

use crate::alerts::{db_path, level_name, AlertRow, AlertSettings, Filter, Store};
use crate::client::{ClientError, DaemonClient};
use crate::config::Config;

/// Where [`recent`] found the alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The daemon's API at this URL.
    Daemon(String),
    /// The database file; the string says why the daemon was not asked.
    Database(String),
}

/// The newest `limit` alerts and where they came from.
pub async fn recent(config: &Config, limit: usize) -> anyhow::Result<(Vec<AlertRow>, Source)> {
    let client = DaemonClient::new(config);
    let url = format!("{}/api/alerts?limit={limit}", client.base());
    match client.alerts(limit).await {
        Ok(rows) => Ok((rows, Source::Daemon(url))),
        Err(e) => {
            let why = e.to_string();
            let path = db_path(config);
            let store = Store::open_read_only(&path).with_context(|| {
                format!("the daemon is not answering ({why}) and the database cannot be read")
            })?;
            let settings = AlertSettings::from_config(config);
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
pub async fn recent_text(config: &Config, limit: usize) -> anyhow::Result<String> {
    let (rows, source) = recent(config, limit).await?;
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
pub async fn silence(
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
    match DaemonClient::new(config)
        .silence(camera_id, until, reason)
        .await
    {
        Ok(()) => Ok(format!(
            "camera {camera_id} silenced until {local} (through the running daemon)\n"
        )),
        Err(ClientError::Unreachable(why)) => {
            let store = open_existing(config, &why)?;
            store.silence(camera_id, until, reason, chrono::Utc::now())?;
            Ok(format!(
                "camera {camera_id} silenced until {local} (written to the database; the daemon is down: {why})\n"
            ))
        }
        Err(e) => anyhow::bail!("the daemon refused the silence: {e}"),
    }
}

/// `vms-supervisor alerts unsilence ID`.
pub async fn unsilence(config: &Config, camera_id: u32) -> anyhow::Result<String> {
    match DaemonClient::new(config).unsilence(camera_id).await {
        Ok(true) => Ok(format!("camera {camera_id} is no longer silenced\n")),
        Ok(false) => Ok(format!("camera {camera_id} was not silenced\n")),
        Err(ClientError::Unreachable(why)) => {
            let store = open_existing(config, &why)?;
            Ok(if store.unsilence(camera_id)? {
                format!("camera {camera_id} is no longer silenced (database; the daemon is down)\n")
            } else {
                format!("camera {camera_id} was not silenced\n")
            })
        }
        Err(e) => anyhow::bail!("the daemon refused: {e}"),
    }
}
