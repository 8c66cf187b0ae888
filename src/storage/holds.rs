//! Legal holds: footage of a camera over a time range that neither
//! retention nor eviction may delete, until the hold is released. A
//! released hold stays in the table (who released it and when): holds are
//! part of the audit trail.
//!
//! The deletion queries (`catalog::candidates`) and the executor
//! (`exec::delete_segments`, which checks again right before unlinking)
//! both honour them.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{from_micros, to_micros, Micros};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub id: i64,
    pub camera: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub released_by: Option<String>,
}

/// A new hold, as the CLI and the API send it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NewHold {
    pub camera: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HoldError {
    #[error("from must be before to")]
    EmptyRange,
    #[error("reason must not be empty")]
    NoReason,
    #[error("no hold with id {0}")]
    NotFound(i64),
    #[error("hold {0} was already released")]
    AlreadyReleased(i64),
    #[error("storage catalog: {0}")]
    Sql(String),
}

impl From<rusqlite::Error> for HoldError {
    fn from(e: rusqlite::Error) -> Self {
        HoldError::Sql(e.to_string())
    }
}

const COLUMNS: &str =
    "id, camera, from_us, to_us, reason, created_by, created_at, released_at, released_by";

fn hold(r: &rusqlite::Row) -> rusqlite::Result<Hold> {
    Ok(Hold {
        id: r.get(0)?,
        camera: r.get(1)?,
        from: from_micros(r.get(2)?),
        to: from_micros(r.get(3)?),
        reason: r.get(4)?,
        created_by: r.get(5)?,
        created_at: from_micros(r.get(6)?),
        released_at: r.get::<_, Option<Micros>>(7)?.map(from_micros),
        released_by: r.get(8)?,
    })
}

/// Adds a hold; `who` is the operator (CLI user, API client).
pub fn add(
    conn: &Connection,
    new: &NewHold,
    who: &str,
    now: DateTime<Utc>,
) -> Result<Hold, HoldError> {
    if new.from >= new.to {
        return Err(HoldError::EmptyRange);
    }
    let reason = new.reason.trim();
    if reason.is_empty() {
        return Err(HoldError::NoReason);
    }
    conn.execute(
        "INSERT INTO holds(camera, from_us, to_us, reason, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new.camera,
            to_micros(new.from),
            to_micros(new.to),
            reason,
            who,
            to_micros(now)
        ],
    )?;
    get(conn, conn.last_insert_rowid())?.ok_or(HoldError::NotFound(conn.last_insert_rowid()))
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Hold>, HoldError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM holds WHERE id = ?1"),
            [id],
            hold,
        )
        .optional()?)
}

/// Holds, newest first; released ones only with `include_released`.
pub fn list(conn: &Connection, include_released: bool) -> Result<Vec<Hold>, HoldError> {
    let filter = if include_released {
        ""
    } else {
        "WHERE released_at IS NULL"
    };
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM holds {filter} ORDER BY id DESC"
    ))?;
    let rows = st.query_map([], hold)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Releases a hold: its footage falls back under retention and eviction.
pub fn release(
    conn: &Connection,
    id: i64,
    who: &str,
    now: DateTime<Utc>,
) -> Result<Hold, HoldError> {
    let Some(h) = get(conn, id)? else {
        return Err(HoldError::NotFound(id));
    };
    if h.released_at.is_some() {
        return Err(HoldError::AlreadyReleased(id));
    }
    conn.execute(
        "UPDATE holds SET released_at = ?2, released_by = ?3 WHERE id = ?1",
        params![id, to_micros(now), who],
    )?;
    get(conn, id)?.ok_or(HoldError::NotFound(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::catalog;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn add_list_release_keep_the_audit_trail() {
        let conn = catalog::open_in_memory().unwrap();
        let now = t("2026-11-25T12:00:00Z");
        let h = add(
            &conn,
            &NewHold {
                camera: 5,
                from: t("2026-11-01T00:00:00Z"),
                to: t("2026-11-02T00:00:00Z"),
                reason: " ofício 123/2026 ".into(),
            },
            "maria",
            now,
        )
        .unwrap();
        assert_eq!(h.reason, "ofício 123/2026");
        assert_eq!(h.created_by, "maria");
        assert_eq!(list(&conn, false).unwrap(), vec![h.clone()]);
        assert!(catalog::is_held(
            &conn,
            5,
            to_micros(t("2026-11-01T23:59:30Z")),
            to_micros(t("2026-11-02T00:00:30Z"))
        )
        .unwrap());
        assert!(!catalog::is_held(
            &conn,
            6,
            to_micros(t("2026-11-01T10:00:00Z")),
            to_micros(t("2026-11-01T10:01:00Z"))
        )
        .unwrap());
        let r = release(&conn, h.id, "joão", now).unwrap();
        assert_eq!(r.released_by.as_deref(), Some("joão"));
        assert!(list(&conn, false).unwrap().is_empty());
        assert_eq!(list(&conn, true).unwrap().len(), 1);
        assert!(!catalog::is_held(
            &conn,
            5,
            to_micros(t("2026-11-01T10:00:00Z")),
            to_micros(t("2026-11-01T10:01:00Z"))
        )
        .unwrap());
        assert_eq!(
            release(&conn, h.id, "joão", now),
            Err(HoldError::AlreadyReleased(h.id))
        );
        assert_eq!(release(&conn, 99, "x", now), Err(HoldError::NotFound(99)));
        let bad = NewHold {
            camera: 5,
            from: now,
            to: now,
            reason: "x".into(),
        };
        assert_eq!(add(&conn, &bad, "x", now), Err(HoldError::EmptyRange));
        let bad = NewHold {
            to: t("2026-11-26T00:00:00Z"),
            reason: "  ".into(),
            ..bad
        };
        assert_eq!(add(&conn, &bad, "x", now), Err(HoldError::NoReason));
    }
}
