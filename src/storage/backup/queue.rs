//! The durable backup queue: the catalog's `segments` rows themselves.
//!
//! A segment is pending when it is complete (state 1, never the one being
//! written), not empty, and not yet acknowledged (`backup_state <> 2`).
//! Uploading follows the outbox order: the row is marked queued (1) before
//! the network, and uploaded (2, with key, ETag, SHA-256 and time) only
//! after the service acknowledged it. A row found queued after a restart is
//! checked with a HEAD first, so nothing is uploaded twice.

use rusqlite::{params, Connection, OptionalExtension};

use crate::storage::Micros;

/// `(camera, start_us)`: a segment's identity.
pub type SegKey = (u32, Micros);

/// A segment waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub camera: u32,
    pub start_us: Micros,
    pub end_us: Micros,
    /// Relative to the recordings root.
    pub path: String,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// 1 when an upload was started before (maybe by a previous run).
    pub backup_state: u8,
    pub attempts: u32,
}

impl Pending {
    pub fn key(&self) -> SegKey {
        (self.camera, self.start_us)
    }
}

const PENDING: &str =
    "state = 1 AND backup_state <> 2 AND coalesce(complete_reason, '') <> 'empty'";

/// The oldest pending segments, at most `limit`.
pub fn pending(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Pending>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT camera, start_us, end_us, path, bytes, sha256, backup_state, backup_attempts
         FROM segments WHERE {PENDING} ORDER BY start_us LIMIT ?1"
    ))?;
    let rows = st.query_map([limit as i64], |r| {
        Ok(Pending {
            camera: r.get(0)?,
            start_us: r.get(1)?,
            end_us: r.get(2)?,
            path: r.get(3)?,
            bytes: r.get::<_, i64>(4)? as u64,
            sha256: r.get(5)?,
            backup_state: r.get(6)?,
            attempts: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// What is not yet backed up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub segments: u64,
    pub bytes: u64,
    /// When the oldest pending segment became complete (its end).
    pub oldest_end_us: Option<Micros>,
}

pub fn backlog(conn: &Connection) -> rusqlite::Result<Backlog> {
    conn.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(bytes), 0), min(end_us) FROM segments WHERE {PENDING}"
        ),
        [],
        |r| {
            Ok(Backlog {
                segments: r.get::<_, i64>(0)? as u64,
                bytes: r.get::<_, i64>(1)? as u64,
                oldest_end_us: r.get(2)?,
            })
        },
    )
}

/// Before the network: the row is queued, with the SHA-256 the box computed.
pub fn mark_started(conn: &Connection, seg: SegKey, sha256: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE segments SET backup_state = 1, sha256 = ?3, backup_attempts = backup_attempts + 1
         WHERE camera = ?1 AND start_us = ?2",
        params![seg.0, seg.1, sha256],
    )?;
    Ok(())
}

/// After the acknowledgement.
pub fn mark_uploaded(
    conn: &mut Connection,
    seg: SegKey,
    key: &str,
    etag: &str,
    bytes: u64,
    now: Micros,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE segments SET backup_state = 2, backup_key = ?3, backup_etag = ?4,
                uploaded_at = ?5, backup_error = NULL
         WHERE camera = ?1 AND start_us = ?2",
        params![seg.0, seg.1, key, etag, now],
    )?;
    tx.execute(
        "UPDATE backup_status SET last_success_us = ?1, uploaded_segments = uploaded_segments + 1,
                uploaded_bytes = uploaded_bytes + ?2 WHERE id = 1",
        params![now, bytes as i64],
    )?;
    tx.commit()
}

pub fn mark_failed(
    conn: &Connection,
    seg: SegKey,
    error: &str,
    now: Micros,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE segments SET backup_error = ?3 WHERE camera = ?1 AND start_us = ?2",
        params![seg.0, seg.1, error],
    )?;
    conn.execute(
        "UPDATE backup_status SET last_error = ?1, last_error_us = ?2 WHERE id = 1",
        params![error, now],
    )?;
    Ok(())
}

/// The configuration error that stops uploads (`None` clears it: `backup retry`).
pub fn set_config_error(conn: &Connection, error: Option<&str>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE backup_status SET config_error = ?1 WHERE id = 1",
        [error],
    )?;
    Ok(())
}

/// `backup retry`: clears the configuration error and every segment's
/// attempt count.
pub fn retry(conn: &Connection) -> rusqlite::Result<()> {
    set_config_error(conn, None)?;
    conn.execute(
        &format!("UPDATE segments SET backup_attempts = 0, backup_error = NULL WHERE {PENDING}"),
        [],
    )?;
    Ok(())
}

/// The status row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub last_success_us: Option<Micros>,
    pub last_error: Option<String>,
    pub last_error_us: Option<Micros>,
    pub config_error: Option<String>,
    pub uploaded_segments: u64,
    pub uploaded_bytes: u64,
}

pub fn status(conn: &Connection) -> rusqlite::Result<Status> {
    conn.query_row(
        "SELECT last_success_us, last_error, last_error_us, config_error, uploaded_segments,
                uploaded_bytes FROM backup_status WHERE id = 1",
        [],
        |r| {
            Ok(Status {
                last_success_us: r.get(0)?,
                last_error: r.get(1)?,
                last_error_us: r.get(2)?,
                config_error: r.get(3)?,
                uploaded_segments: r.get::<_, i64>(4)? as u64,
                uploaded_bytes: r.get::<_, i64>(5)? as u64,
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

/// A segment in the bucket, for restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub camera: u32,
    pub start_us: Micros,
    pub end_us: Micros,
    pub key: String,
    pub sha256: String,
}

/// Segments of `camera` in the bucket overlapping `[from, to)`.
pub fn uploaded(
    conn: &Connection,
    camera: u32,
    from: Micros,
    to: Micros,
) -> rusqlite::Result<Vec<Uploaded>> {
    let mut st = conn.prepare(
        "SELECT camera, start_us, end_us, backup_key, sha256 FROM segments
         WHERE camera = ?1 AND backup_state = 2 AND start_us < ?3 AND end_us > ?2
         ORDER BY start_us",
    )?;
    let rows = st.query_map(params![camera, from, to], |r| {
        Ok(Uploaded {
            camera: r.get(0)?,
            start_us: r.get(1)?,
            end_us: r.get(2)?,
            key: r.get(3)?,
            sha256: r.get(4)?,
        })
    })?;
    rows.collect()
}
