//! `vms-supervisor recordings ID --from T --to T` (the gap ledger) and
//! `hold add|list|release` (legal holds), straight on the segment catalog
//! (`<state.dir>/storage.db`): they work whether the daemon runs or not
//! (SQLite's WAL lets them read and write beside it).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use crate::config::Config;
use crate::storage::{catalog, holds, ledger};

/// The catalog file of a config.
pub fn catalog_path(config: &Config) -> PathBuf {
    config.state.dir.join(crate::storage::CATALOG_FILE)
}

/// A time on the command line: RFC 3339 (`2026-11-29T14:00:00Z`) or local
/// `YYYY-MM-DD HH:MM` in the box's time zone.
pub fn parse_time(text: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .ok()
        .and_then(|n| tz.from_local_datetime(&n).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            format!("{text:?} is not a time: write 2026-11-29T14:00:00Z or \"2026-11-29 14:00\"")
        })
}

fn open(config: &Config) -> anyhow::Result<rusqlite::Connection> {
    let path = catalog_path(config);
    anyhow::ensure!(
        path.exists(),
        "no segment catalog at {} yet (the daemon creates it at its first start)",
        path.display()
    );
    catalog::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// `recordings ID --from --to`: spans and gaps, times in the box's zone.
pub fn recordings(
    config: &Config,
    camera: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<String> {
    anyhow::ensure!(from < to, "--from must be before --to");
    let conn = open(config)?;
    let l = ledger::query(
        &conn,
        camera,
        from,
        to,
        Utc::now(),
        ledger::DEFAULT_TOLERANCE,
    )?;
    let tz = config.timezone();
    let t = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string();
    let mut out = String::new();
    let _ = writeln!(out, "camera {camera}, {} to {} ({tz})", t(from), t(to));
    let mut rows: Vec<(DateTime<Utc>, String)> = Vec::new();
    for s in &l.spans {
        rows.push((s.start, format!("recorded  {}  {}", t(s.start), t(s.end))));
    }
    for s in &l.in_bucket {
        rows.push((
            s.start,
            format!(
                "in bucket {}  {}  (off the box; backup restore fetches it)",
                t(s.start),
                t(s.end)
            ),
        ));
    }
    for g in &l.gaps {
        rows.push((
            g.start,
            format!(
                "GAP       {}  {}  {}",
                t(g.start),
                t(g.end),
                g.cause.as_str()
            ),
        ));
    }
    rows.sort_by_key(|r| r.0);
    if rows.is_empty() {
        out.push_str("nothing in this range\n");
    }
    for (_, line) in rows {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// The operator's name for the audit columns: the login user.
fn who() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into())
}

pub fn hold_add(
    config: &Config,
    camera: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reason: &str,
) -> anyhow::Result<String> {
    let conn = open(config)?;
    let h = holds::add(
        &conn,
        &holds::NewHold {
            camera,
            from,
            to,
            reason: reason.to_string(),
        },
        &who(),
        Utc::now(),
    )?;
    let audited = super::access::audit_other(
        config,
        "hold_add",
        camera,
        format!(
            "hold {}: {} to {}; {}",
            h.id,
            h.from.format("%Y-%m-%dT%H:%M:%SZ"),
            h.to.format("%Y-%m-%dT%H:%M:%SZ"),
            h.reason
        ),
    );
    Ok(format!(
        "hold {} on camera {camera}: kept from deletion and eviction until released\n{}",
        h.id,
        unaudited(audited)
    ))
}

pub fn hold_list(config: &Config) -> anyhow::Result<String> {
    let conn = open(config)?;
    let tz = config.timezone();
    let t = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let list = holds::list(&conn, false)?;
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no hold in force\n");
    }
    for h in list {
        let _ = writeln!(
            out,
            "{}  camera {}  {} to {}  by {}  {}",
            h.id,
            h.camera,
            t(h.from),
            t(h.to),
            h.created_by,
            h.reason
        );
    }
    Ok(out)
}

pub fn hold_release(config: &Config, id: i64) -> anyhow::Result<String> {
    let conn = open(config)?;
    let h = holds::release(&conn, id, &who(), Utc::now())?;
    let audited =
        super::access::audit_other(config, "hold_release", h.camera, format!("hold {id}"));
    Ok(format!("hold {id} released\n{}", unaudited(audited)))
}

/// The line that says the audit trail missed a change (the change itself
/// stands: the hold protects footage either way).
fn unaudited(r: anyhow::Result<()>) -> String {
    match r {
        Ok(()) => String::new(),
        Err(e) => format!("warning: not written to the audit trail: {e:#}\n"),
    }
}
