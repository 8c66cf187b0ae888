//! The segment catalog: `<state.dir>/storage.db`.
//!
//! Every function takes the connection as an argument, so the daemon runs
//! them on one owner thread (as `alerts/db.rs` does) and the tests on a
//! temporary file. Times are [`Micros`] (UTC).
//!
//! # Tables
//!
//! * `segments` (`WITHOUT ROWID`, key `(camera, start_us)`): one row per
//!   segment file, kept after the file is deleted (state `evicted` or
//!   `deleted`) so the ledger can say why footage is missing; such rows are
//!   purged [`HISTORY_AFTER_DELETE`] after the deletion by [`maintain`].
//! * `camera_stats`: per camera counters kept by triggers (segments and
//!   bytes on disk, first segment ever, evictions), so the summary the
//!   machine needs every few minutes never scans millions of rows.
//! * `causes`: intervals that explain gaps (camera down, stall, MediaMTX
//!   down, disk full, daemon down), for one camera or for all (`camera`
//!   NULL); an open interval has no `end_us`.
//! * `holds`: legal holds (see [`super::holds`]).
//! * `dirs`: the mtime of each `cam_<id>/<day>` directory as last seen in
//!   agreement with the catalog; start-up reconciliation lists only the
//!   directories whose mtime changed, plus the two newest days of each
//!   camera (which a crash may have left a file or two ahead of the catalog).
//! * `meta`: the heartbeat (the last time the daemon was known alive).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::{parse_day, parse_start, start_on, Cause, Micros, SegmentName, DAY, HOUR};

/// Rows of deleted or evicted segments are kept this long after the
/// deletion, so the ledger can explain the gap.
pub const HISTORY_AFTER_DELETE: Micros = 30 * DAY;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("storage catalog {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("storage catalog {path}: {message}")]
    Other { path: PathBuf, message: String },
}

/// The schema, one migration per `PRAGMA user_version` step. Never edit a
/// released migration; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE segments (
        camera          INTEGER NOT NULL,
        -- From the file name (MediaMTX's local time zone), as UTC micros.
        start_us        INTEGER NOT NULL,
        -- The last write seen (inotify or the file's mtime).
        end_us          INTEGER NOT NULL,
        -- Relative to the recordings root: cam_5/2026-11-25/10-00-00-000001.mp4
        path            TEXT NOT NULL,
        bytes           INTEGER NOT NULL DEFAULT 0,
        -- 0 recording, 1 complete, 2 evicted, 3 deleted.
        state           INTEGER NOT NULL,
        -- Why it counts as complete: next_segment, closed_clean,
        -- cut_short (a write failed: the disk was full), empty (0 bytes),
        -- found_at_start (found on disk by the reconciliation).
        complete_reason TEXT,
        -- Why it left the disk: retention, eviction, outside (removed by
        -- someone else).
        gone_reason     TEXT,
        -- When the state last changed.
        state_at        INTEGER,
        -- Backup (off-site copy): the SHA-256 the box computed, 0 not
        -- backed up / 1 queued / 2 uploaded, the object key, its ETag and
        -- when the upload was acknowledged.
        sha256          TEXT,
        backup_state    INTEGER NOT NULL DEFAULT 0,
        backup_key      TEXT,
        backup_etag     TEXT,
        uploaded_at     INTEGER,
        PRIMARY KEY (camera, start_us)
    ) WITHOUT ROWID;
    -- On disk, per camera in time order: the ledger, retention, summaries.
    CREATE INDEX segments_on_disk ON segments(camera, start_us) WHERE state < 2;
    -- Eviction: the oldest complete footage of any camera.
    CREATE INDEX segments_complete ON segments(start_us) WHERE state = 1;
    CREATE INDEX segments_complete_backed_up ON segments(start_us)
        WHERE state = 1 AND backup_state = 2;
    CREATE INDEX segments_recording ON segments(camera) WHERE state = 0;
    CREATE INDEX segments_gone ON segments(state_at) WHERE state >= 2;

    CREATE TABLE camera_stats (
        camera            INTEGER PRIMARY KEY,
        first_start_us    INTEGER NOT NULL,
        segments_on_disk  INTEGER NOT NULL DEFAULT 0,
        bytes_on_disk     INTEGER NOT NULL DEFAULT 0,
        evicted_segments  INTEGER NOT NULL DEFAULT 0,
        evicted_bytes     INTEGER NOT NULL DEFAULT 0,
        evicted_us        INTEGER NOT NULL DEFAULT 0,
        last_evicted_at   INTEGER
    );
    CREATE TRIGGER segments_insert AFTER INSERT ON segments BEGIN
        INSERT INTO camera_stats(camera, first_start_us) VALUES (NEW.camera, NEW.start_us)
            ON CONFLICT(camera) DO UPDATE SET first_start_us = min(first_start_us, NEW.start_us);
        UPDATE camera_stats SET
            segments_on_disk = segments_on_disk + (NEW.state < 2),
            bytes_on_disk = bytes_on_disk + CASE WHEN NEW.state < 2 THEN NEW.bytes ELSE 0 END
        WHERE camera = NEW.camera;
    END;
    CREATE TRIGGER segments_update AFTER UPDATE OF state, bytes ON segments BEGIN
        UPDATE camera_stats SET
            segments_on_disk = segments_on_disk - (OLD.state < 2) + (NEW.state < 2),
            bytes_on_disk = bytes_on_disk
                - CASE WHEN OLD.state < 2 THEN OLD.bytes ELSE 0 END
                + CASE WHEN NEW.state < 2 THEN NEW.bytes ELSE 0 END,
            evicted_segments = evicted_segments + (NEW.state = 2 AND OLD.state <> 2),
            evicted_bytes = evicted_bytes
                + CASE WHEN NEW.state = 2 AND OLD.state <> 2 THEN OLD.bytes ELSE 0 END,
            evicted_us = evicted_us
                + CASE WHEN NEW.state = 2 AND OLD.state <> 2 THEN NEW.end_us - NEW.start_us ELSE 0 END,
            last_evicted_at = CASE WHEN NEW.state = 2 AND OLD.state <> 2
                THEN NEW.state_at ELSE last_evicted_at END
        WHERE camera = NEW.camera;
    END;
    CREATE TRIGGER segments_delete AFTER DELETE ON segments BEGIN
        UPDATE camera_stats SET
            segments_on_disk = segments_on_disk - (OLD.state < 2),
            bytes_on_disk = bytes_on_disk - CASE WHEN OLD.state < 2 THEN OLD.bytes ELSE 0 END
        WHERE camera = OLD.camera;
    END;

    CREATE TABLE causes (
        id        INTEGER PRIMARY KEY,
        -- NULL: every camera (MediaMTX down, disk full, daemon down).
        camera    INTEGER,
        cause     TEXT NOT NULL,
        start_us  INTEGER NOT NULL,
        end_us    INTEGER
    );
    CREATE INDEX causes_start ON causes(start_us);
    CREATE UNIQUE INDEX causes_one_open ON causes(coalesce(camera, -1), cause)
        WHERE end_us IS NULL;

    CREATE TABLE holds (
        id           INTEGER PRIMARY KEY,
        camera       INTEGER NOT NULL,
        from_us      INTEGER NOT NULL,
        to_us        INTEGER NOT NULL,
        reason       TEXT NOT NULL,
        created_by   TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        released_at  INTEGER,
        released_by  TEXT
    );
    CREATE INDEX holds_active ON holds(camera) WHERE released_at IS NULL;

    CREATE TABLE dirs (
        camera    INTEGER NOT NULL,
        day       TEXT NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        PRIMARY KEY (camera, day)
    ) WITHOUT ROWID;

    CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  INTEGER NOT NULL
    );
    ",
    // 2: the backup queue: attempts and the last error per segment, the
    // pending index, and one row of backup status (last success, the
    // configuration error that stops uploads until `backup retry`).
    "
    ALTER TABLE segments ADD COLUMN backup_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE segments ADD COLUMN backup_error TEXT;
    CREATE INDEX segments_backup_pending ON segments(start_us)
        WHERE state = 1 AND backup_state <> 2;
    CREATE TABLE backup_status (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        last_success_us    INTEGER,
        last_error         TEXT,
        last_error_us      INTEGER,
        config_error       TEXT,
        uploaded_segments  INTEGER NOT NULL DEFAULT 0,
        uploaded_bytes     INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO backup_status(id) VALUES (1);
    ",
];

/// Segment states as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegState {
    Recording = 0,
    Complete = 1,
    Evicted = 2,
    Deleted = 3,
}

impl SegState {
    fn from_i64(v: i64) -> SegState {
        match v {
            0 => SegState::Recording,
            1 => SegState::Complete,
            2 => SegState::Evicted,
            _ => SegState::Deleted,
        }
    }
}

/// Why a segment counts as complete. A close event alone is not enough: a
/// write cut short by a full disk still closes the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompleteReason {
    /// The next segment of the camera got data.
    NextSegment,
    /// The file was closed and nothing went wrong around it.
    ClosedClean,
    /// The disk was full while it was written: readable up to the cut.
    CutShort,
    /// Closed with no bytes (MediaMTX leaves these when it cannot write).
    Empty,
    /// Found on disk by the reconciliation, with a later segment after it.
    FoundAtStart,
}

impl CompleteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CompleteReason::NextSegment => "next_segment",
            CompleteReason::ClosedClean => "closed_clean",
            CompleteReason::CutShort => "cut_short",
            CompleteReason::Empty => "empty",
            CompleteReason::FoundAtStart => "found_at_start",
        }
    }
}

/// Why a segment left the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    Retention,
    Eviction,
    /// Removed by someone else (found missing).
    Outside,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::Retention => "retention",
            GoneReason::Eviction => "eviction",
            GoneReason::Outside => "outside",
        }
    }
    fn state(self) -> SegState {
        match self {
            GoneReason::Eviction => SegState::Evicted,
            _ => SegState::Deleted,
        }
    }
}

/// A change the machine asks the catalog to record.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogOp {
    /// A new segment file appeared (state `recording`).
    Created { seg: SegmentName, at: Micros },
    /// The segment grew to `bytes`, last written at `at`.
    Grown {
        seg: SegmentName,
        bytes: u64,
        at: Micros,
    },
    /// The segment is complete, for `reason`.
    Complete {
        seg: SegmentName,
        bytes: u64,
        end: Micros,
        reason: CompleteReason,
    },
    /// A cause interval opens (`active`) or closes at `at`.
    Cause {
        camera: Option<u32>,
        cause: Cause,
        active: bool,
        at: Micros,
    },
    /// The daemon is alive at `at`.
    Heartbeat { at: Micros },
}

/// A segment as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRow {
    pub camera: u32,
    pub start: Micros,
    pub end: Micros,
    pub path: String,
    pub bytes: u64,
    pub state: SegState,
    pub backed_up: bool,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
    move |source| CatalogError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating if needed) the catalog with WAL, a busy timeout and the
/// schema migrated. A schema newer than this binary is an error.
pub fn open(path: &Path) -> Result<Connection, CatalogError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(path))?;
    prepare(&mut conn, path)?;
    Ok(conn)
}

/// A catalog in memory (tests, and a fallback when the file is unusable).
pub fn open_in_memory() -> Result<Connection, CatalogError> {
    let path = Path::new(":memory:");
    let mut conn = Connection::open_in_memory().map_err(sql(path))?;
    prepare(&mut conn, path)?;
    Ok(conn)
}

fn prepare(c: &mut Connection, path: &Path) -> Result<(), CatalogError> {
    c.busy_timeout(Duration::from_secs(5)).map_err(sql(path))?;
    let _mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql(path))?;
    c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        .map_err(sql(path))?;
    let version: usize = c
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(sql(path))? as usize;
    if version > MIGRATIONS.len() {
        return Err(CatalogError::Other {
            path: path.to_path_buf(),
            message: format!(
                "schema version {version} is newer than this vms-supervisor knows ({}); downgrading is not supported",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = c.transaction().map_err(sql(path))?;
        tx.execute_batch(m).map_err(sql(path))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sql(path))?;
        tx.commit().map_err(sql(path))?;
    }
    Ok(())
}

/// The `(camera, day)` of a relative segment path.
fn day_of(rel: &str) -> Option<(u32, &str)> {
    let mut it = rel.split('/');
    let camera = it.next()?.strip_prefix("cam_")?.parse().ok()?;
    Some((camera, it.next()?))
}

/// Records `ops` in one transaction.
pub fn apply(conn: &mut Connection, ops: &[CatalogOp]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for op in ops {
        match op {
            CatalogOp::Created { seg, at } => {
                tx.execute(
                    "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, state_at)
                     VALUES (?1, ?2, max(?2, ?3), ?4, 0, 0, ?3)
                     ON CONFLICT(camera, start_us) DO NOTHING",
                    params![seg.camera, seg.start, at, seg.rel],
                )?;
                // A day first seen at run time is listed at the next start
                // (mtime 0 never matches) unless a snapshot caught up.
                if let Some((camera, day)) = day_of(&seg.rel) {
                    tx.execute(
                        "INSERT OR IGNORE INTO dirs(camera, day, mtime_ns) VALUES (?1, ?2, 0)",
                        params![camera, day],
                    )?;
                }
            }
            CatalogOp::Grown { seg, bytes, at } => {
                tx.execute(
                    "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, state_at)
                     VALUES (?1, ?2, max(?2, ?3), ?4, ?5, 0, ?3)
                     ON CONFLICT(camera, start_us) DO UPDATE SET
                        bytes = excluded.bytes, end_us = max(end_us, excluded.end_us)
                     WHERE state < 2",
                    params![seg.camera, seg.start, at, seg.rel, *bytes as i64],
                )?;
            }
            CatalogOp::Complete {
                seg,
                bytes,
                end,
                reason,
            } => {
                tx.execute(
                    "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, complete_reason, state_at)
                     VALUES (?1, ?2, max(?2, ?3), ?4, ?5, 1, ?6, ?3)
                     ON CONFLICT(camera, start_us) DO UPDATE SET
                        bytes = excluded.bytes, end_us = max(end_us, excluded.end_us),
                        state = 1, complete_reason = excluded.complete_reason,
                        state_at = excluded.state_at
                     WHERE state < 2",
                    params![
                        seg.camera,
                        seg.start,
                        end,
                        seg.rel,
                        *bytes as i64,
                        reason.as_str()
                    ],
                )?;
            }
            CatalogOp::Cause {
                camera,
                cause,
                active: true,
                at,
            } => {
                tx.execute(
                    "INSERT OR IGNORE INTO causes(camera, cause, start_us) VALUES (?1, ?2, ?3)",
                    params![camera, cause.as_str(), at],
                )?;
            }
            CatalogOp::Cause {
                camera,
                cause,
                active: false,
                at,
            } => {
                tx.execute(
                    "UPDATE causes SET end_us = max(start_us, ?3)
                     WHERE camera IS ?1 AND cause = ?2 AND end_us IS NULL",
                    params![camera, cause.as_str(), at],
                )?;
            }
            CatalogOp::Heartbeat { at } => set_meta(&tx, "heartbeat", *at)?,
        }
    }
    tx.commit()
}

fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// At daemon start: the time since the last heartbeat becomes a
/// `daemon_down` interval, and cause intervals left open by the previous run
/// end at that heartbeat. Returns the outage, if there was one.
pub fn start_session(
    conn: &mut Connection,
    now: Micros,
) -> rusqlite::Result<Option<(Micros, Micros)>> {
    let tx = conn.transaction()?;
    let last = get_meta(&tx, "heartbeat")?;
    let mut outage = None;
    if let Some(hb) = last {
        tx.execute(
            "UPDATE causes SET end_us = max(start_us, ?1) WHERE end_us IS NULL",
            [hb],
        )?;
        if now > hb {
            tx.execute(
                "INSERT INTO causes(camera, cause, start_us, end_us) VALUES (NULL, 'daemon_down', ?1, ?2)",
                params![hb, now],
            )?;
            outage = Some((hb, now));
        }
    }
    set_meta(&tx, "heartbeat", now)?;
    tx.commit()?;
    Ok(outage)
}

/// What a reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// Day directories on disk, and how many were listed.
    pub dirs_total: usize,
    pub dirs_listed: usize,
    /// Files catalogued that the catalog did not know.
    pub added: usize,
    /// Catalogued segments whose file is gone (marked `deleted`, outside).
    pub removed: usize,
    /// Segments whose size or end changed.
    pub updated: usize,
    /// Segments still `recording` (the newest of each camera): the machine
    /// decides when they are complete.
    pub open: Vec<SegmentRow>,
    pub millis: u64,
}

struct FileSeen {
    rel: String,
    bytes: u64,
    mtime: Micros,
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn mtime_us(m: &std::fs::Metadata) -> Micros {
    m.mtime() * 1_000_000 + m.mtime_nsec() / 1000
}

/// Brings the catalog in line with the recordings tree, listing only the
/// day directories that may have changed: those whose mtime differs from
/// the one recorded, those not recorded yet, and the two newest days of each
/// camera. Files found are catalogued (`complete`, `found_at_start`, or
/// `recording` for the newest of a camera); catalogued files that are gone
/// are marked `deleted` (`outside`); sizes and ends are refreshed.
pub fn reconcile(
    conn: &mut Connection,
    root: &Path,
    tz: chrono_tz::Tz,
    now: Micros,
) -> rusqlite::Result<ReconcileReport> {
    let t0 = Instant::now();
    let mut report = ReconcileReport::default();
    let known: HashMap<(u32, String), i64> = {
        let mut st = conn.prepare("SELECT camera, day, mtime_ns FROM dirs")?;
        let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut seen: HashSet<(u32, String)> = HashSet::new();
    let mut cameras_touched: HashSet<u32> = HashSet::new();
    let tx = conn.transaction()?;
    for cam_entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = cam_entry.file_name().to_string_lossy().into_owned();
        let Some(camera) = name
            .strip_prefix("cam_")
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if !cam_entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let mut days: Vec<(String, i64)> = Vec::new();
        for d in std::fs::read_dir(cam_entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let day = d.file_name().to_string_lossy().into_owned();
            if chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").is_err() {
                continue;
            }
            let Ok(meta) = d.metadata() else { continue };
            if meta.is_dir() {
                days.push((day, mtime_ns(&meta)));
            }
        }
        days.sort();
        let newest: Vec<String> = days.iter().rev().take(2).map(|(d, _)| d.clone()).collect();
        for (day, mtime) in days {
            report.dirs_total += 1;
            let key = (camera, day);
            let changed = known.get(&key) != Some(&mtime) || newest.contains(&key.1);
            if changed {
                report.dirs_listed += 1;
                scan_day(&tx, root, tz, camera, &key.1, now, &mut report)?;
                cameras_touched.insert(camera);
                tx.execute(
                    "INSERT INTO dirs(camera, day, mtime_ns) VALUES (?1, ?2, ?3)
                     ON CONFLICT(camera, day) DO UPDATE SET mtime_ns = excluded.mtime_ns",
                    params![camera, key.1, mtime],
                )?;
            }
            seen.insert(key);
        }
    }
    // Directories the catalog knew that are gone: their segments too.
    for (camera, day) in known.keys().filter(|k| !seen.contains(*k)) {
        let prefix = format!("cam_{camera}/{day}/");
        let rows = day_rows(&tx, *camera, day, tz)?;
        for (start, path, _, _) in rows.iter().filter(|r| r.1.starts_with(&prefix)) {
            let _ = path;
            mark_gone(&tx, *camera, *start, GoneReason::Outside, now)?;
            report.removed += 1;
        }
        tx.execute(
            "DELETE FROM dirs WHERE camera = ?1 AND day = ?2",
            params![camera, day],
        )?;
        cameras_touched.insert(*camera);
    }
    // A `recording` row or a found file with a later segment after it is
    // complete; the newest of each camera is left to the machine.
    for camera in cameras_touched {
        let newest: Option<Micros> = tx.query_row(
            "SELECT max(start_us) FROM segments WHERE camera = ?1 AND state < 2",
            [camera],
            |r| r.get(0),
        )?;
        let Some(newest) = newest else { continue };
        tx.execute(
            "UPDATE segments SET state = 1, state_at = ?3,
                complete_reason = CASE WHEN bytes = 0 THEN 'empty' ELSE 'next_segment' END
             WHERE camera = ?1 AND state = 0 AND start_us < ?2",
            params![camera, newest, now],
        )?;
        tx.execute(
            "UPDATE segments SET state = 0, complete_reason = NULL
             WHERE camera = ?1 AND start_us = ?2 AND complete_reason = 'found_at_start'",
            params![camera, newest],
        )?;
    }
    tx.commit()?;
    report.open = recording_rows(conn)?;
    report.millis = t0.elapsed().as_millis() as u64;
    Ok(report)
}

/// On-disk rows of a camera whose start may fall on `day` (local): from
/// its local midnight to the next, with an hour of slack either side for
/// daylight saving time (the caller filters by path).
fn day_rows(
    conn: &Connection,
    camera: u32,
    day: &str,
    tz: chrono_tz::Tz,
) -> rusqlite::Result<Vec<(Micros, String, u64, Micros)>> {
    let Some(lo) = parse_start(day, "00-00-00-000000.mp4", tz) else {
        return Ok(Vec::new());
    };
    let hi = parse_start(day, "23-59-59-999999.mp4", tz).unwrap_or(lo + DAY);
    let mut st = conn.prepare_cached(
        "SELECT start_us, path, bytes, end_us FROM segments
         WHERE camera = ?1 AND state < 2 AND start_us >= ?2 AND start_us <= ?3",
    )?;
    let rows = st.query_map(params![camera, lo - HOUR, hi + HOUR], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?))
    })?;
    rows.collect()
}

fn scan_day(
    tx: &Connection,
    root: &Path,
    tz: chrono_tz::Tz,
    camera: u32,
    day: &str,
    now: Micros,
    report: &mut ReconcileReport,
) -> rusqlite::Result<()> {
    let dir = root.join(format!("cam_{camera}")).join(day);
    let Some(date) = parse_day(day) else {
        return Ok(());
    };
    let mut files: HashMap<Micros, FileSeen> = HashMap::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(start) = start_on(date, name, tz) else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.insert(
            start,
            FileSeen {
                rel: format!("cam_{camera}/{day}/{name}"),
                bytes: meta.len(),
                mtime: mtime_us(&meta),
            },
        );
    }
    let prefix = format!("cam_{camera}/{day}/");
    let rows = day_rows(tx, camera, day, tz)?;
    let mut known: HashSet<Micros> = HashSet::new();
    for (start, path, bytes, end) in rows.into_iter().filter(|r| r.1.starts_with(&prefix)) {
        known.insert(start);
        match files.get(&start) {
            None => {
                mark_gone(tx, camera, start, GoneReason::Outside, now)?;
                report.removed += 1;
            }
            Some(f) if f.rel == path && (f.bytes != bytes || f.mtime.max(start) != end) => {
                tx.execute(
                    "UPDATE segments SET bytes = ?3, end_us = max(start_us, ?4)
                     WHERE camera = ?1 AND start_us = ?2",
                    params![camera, start, f.bytes as i64, f.mtime],
                )?;
                report.updated += 1;
            }
            Some(_) => {}
        }
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, complete_reason, state_at)
         VALUES (?1, ?2, max(?2, ?3), ?4, ?5, 1, 'found_at_start', ?6)
         ON CONFLICT(camera, start_us) DO UPDATE SET
            end_us = excluded.end_us, path = excluded.path, bytes = excluded.bytes,
            state = 1, complete_reason = 'found_at_start', gone_reason = NULL,
            state_at = excluded.state_at",
    )?;
    for (start, f) in files.iter().filter(|(s, _)| !known.contains(*s)) {
        ins.execute(params![camera, start, f.mtime, f.rel, f.bytes as i64, now])?;
        report.added += 1;
    }
    Ok(())
}

fn mark_gone(
    conn: &Connection,
    camera: u32,
    start: Micros,
    reason: GoneReason,
    now: Micros,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE segments SET state = ?3, gone_reason = ?4, state_at = ?5
         WHERE camera = ?1 AND start_us = ?2 AND state < 2",
    )?
    .execute(params![
        camera,
        start,
        reason.state() as i64,
        reason.as_str(),
        now
    ])
}

/// Marks segments whose files were deleted, in one transaction.
pub fn mark_deleted(
    conn: &mut Connection,
    segs: &[(u32, Micros)],
    reason: GoneReason,
    now: Micros,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (camera, start) in segs {
        mark_gone(&tx, *camera, *start, reason, now)?;
    }
    tx.commit()
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        camera: r.get(0)?,
        start: r.get(1)?,
        end: r.get(2)?,
        path: r.get(3)?,
        bytes: r.get::<_, i64>(4)? as u64,
        state: SegState::from_i64(r.get(5)?),
        backed_up: r.get::<_, i64>(6)? == 2,
    })
}

const ROW_COLUMNS: &str = "camera, start_us, end_us, path, bytes, state, backup_state";

/// Segments still `recording`.
pub fn recording_rows(conn: &Connection) -> rusqlite::Result<Vec<SegmentRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM segments WHERE state = 0 ORDER BY camera, start_us"
    ))?;
    let rows = st.query_map([], row)?;
    rows.collect()
}

/// The segments of a camera overlapping `[from, to)`, every state, in time
/// order (the API's segment list; the ledger).
pub fn segments(
    conn: &Connection,
    camera: u32,
    from: Micros,
    to: Micros,
) -> rusqlite::Result<Vec<SegmentRow>> {
    // A segment lasts at most a day (MediaMTX's limit), so one that
    // overlaps `from` started after `from - 1 day`.
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM segments
         WHERE camera = ?1 AND start_us >= ?2 AND start_us < ?3 AND end_us > ?4
         ORDER BY start_us"
    ))?;
    let rows = st.query_map(params![camera, from - DAY, to, from], row)?;
    rows.collect()
}

/// One segment for the ledger: start, end, bytes, state, and whether it
/// is in the backup bucket.
pub type Interval = (Micros, Micros, u64, SegState, bool);

/// The ledger's view of the same segments ([`Interval`]), without the
/// paths.
pub fn intervals(
    conn: &Connection,
    camera: u32,
    from: Micros,
    to: Micros,
) -> rusqlite::Result<Vec<Interval>> {
    let mut st = conn.prepare_cached(
        "SELECT start_us, end_us, bytes, state, backup_state = 2 FROM segments
         WHERE camera = ?1 AND start_us >= ?2 AND start_us < ?3 AND end_us > ?4
         ORDER BY start_us",
    )?;
    let rows = st.query_map(params![camera, from - DAY, to, from], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, i64>(2)? as u64,
            SegState::from_i64(r.get(3)?),
            r.get(4)?,
        ))
    })?;
    rows.collect()
}

/// One camera as the machine sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraSummary {
    pub camera: u32,
    /// Start of its first segment ever catalogued.
    pub first_start: Micros,
    /// Start of its oldest segment still on disk.
    pub oldest_on_disk: Option<Micros>,
    pub segments_on_disk: u64,
    pub bytes_on_disk: u64,
    /// Bytes of segments that started in the last hour (the write rate).
    pub bytes_last_hour: u64,
    pub evicted_segments: u64,
    pub evicted_bytes: u64,
    pub evicted_hours: f64,
    pub last_evicted_at: Option<Micros>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub at: Micros,
    pub cameras: Vec<CameraSummary>,
    /// The database file's size (pages in use and free).
    pub db_bytes: u64,
}

/// Per camera counters, read without scanning the segments.
pub fn summary(conn: &Connection, now: Micros) -> rusqlite::Result<Summary> {
    let mut st = conn.prepare_cached(
        "SELECT camera, first_start_us, segments_on_disk, bytes_on_disk,
                evicted_segments, evicted_bytes, evicted_us, last_evicted_at,
                (SELECT min(start_us) FROM segments s INDEXED BY segments_on_disk
                   WHERE s.camera = c.camera AND s.state < 2),
                (SELECT coalesce(sum(bytes), 0) FROM segments s INDEXED BY segments_on_disk
                   WHERE s.camera = c.camera AND s.state < 2 AND s.start_us >= ?1)
         FROM camera_stats c ORDER BY camera",
    )?;
    let rows = st.query_map([now - HOUR], |r| {
        Ok(CameraSummary {
            camera: r.get(0)?,
            first_start: r.get(1)?,
            segments_on_disk: r.get::<_, i64>(2)? as u64,
            bytes_on_disk: r.get::<_, i64>(3)? as u64,
            evicted_segments: r.get::<_, i64>(4)? as u64,
            evicted_bytes: r.get::<_, i64>(5)? as u64,
            evicted_hours: r.get::<_, i64>(6)? as f64 / HOUR as f64,
            last_evicted_at: r.get(7)?,
            oldest_on_disk: r.get(8)?,
            bytes_last_hour: r.get::<_, i64>(9)? as u64,
        })
    })?;
    let cameras = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(Summary {
        at: now,
        cameras,
        db_bytes: (pages * page_size) as u64,
    })
}

/// What deletion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Retention,
    Eviction,
}

/// Which segments may be deleted next. Never a `recording` segment, never
/// one overlapping an active hold.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateQuery {
    pub purpose: Purpose,
    pub limit: usize,
    /// Retention: per camera, segments that ended before this time.
    pub cutoffs: Vec<(u32, Micros)>,
    /// Backup on: retention skips what is not uploaded yet (and reports
    /// it); eviction takes uploaded footage first.
    pub backup_enabled: bool,
}

/// Segments past retention that wait for their upload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockedByBackup {
    pub segments: u64,
    pub bytes: u64,
    pub oldest: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CandidateBatch {
    pub purpose: Purpose,
    /// Oldest first, at most `limit`.
    pub segments: Vec<SegmentRow>,
    /// There may be more after these (ask again after deleting them).
    pub more: bool,
    /// Retention with backup on, when this is the last batch.
    pub blocked_by_backup: Option<BlockedByBackup>,
}

const NOT_HELD: &str = "NOT EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL
    AND h.camera = s.camera AND h.from_us < s.end_us AND h.to_us > s.start_us)";

pub fn candidates(conn: &Connection, q: &CandidateQuery) -> rusqlite::Result<CandidateBatch> {
    let mut out: Vec<SegmentRow> = Vec::new();
    let mut blocked = None;
    let mut more = false;
    match q.purpose {
        Purpose::Retention => {
            let backup = if q.backup_enabled {
                "AND s.backup_state = 2"
            } else {
                ""
            };
            let mut st = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM segments s INDEXED BY segments_on_disk
                 WHERE camera = ?1 AND state < 2 AND state = 1 AND start_us < ?2 AND end_us < ?2
                   {backup} AND {NOT_HELD}
                 ORDER BY start_us LIMIT ?3"
            ))?;
            // A share of the batch per camera, so a batch reads about
            // `limit` rows however many cameras there are; oldest first
            // within each camera and across the batch.
            let per = (q.limit / q.cutoffs.len().max(1)).max(16);
            for (camera, cutoff) in &q.cutoffs {
                let before = out.len();
                let rows = st.query_map(params![camera, cutoff, per as i64], row)?;
                for r in rows {
                    out.push(r?);
                }
                more |= out.len() - before == per;
            }
            out.sort_by_key(|r| (r.start, r.camera));
            if out.len() > q.limit {
                more = true;
                out.truncate(q.limit);
            }
            if q.backup_enabled && !more {
                let mut st = conn.prepare_cached(&format!(
                    "SELECT count(*), coalesce(sum(bytes), 0), min(start_us)
                     FROM segments s INDEXED BY segments_on_disk
                     WHERE camera = ?1 AND state < 2 AND state = 1 AND start_us < ?2 AND end_us < ?2
                       AND s.backup_state <> 2 AND {NOT_HELD}"
                ))?;
                let mut b = BlockedByBackup::default();
                for (camera, cutoff) in &q.cutoffs {
                    let (n, bytes, oldest): (i64, i64, Option<Micros>) = st
                        .query_row(params![camera, cutoff], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?;
                    b.segments += n as u64;
                    b.bytes += bytes as u64;
                    b.oldest = match (b.oldest, oldest) {
                        (Some(a), Some(o)) => Some(a.min(o)),
                        (a, o) => a.or(o),
                    };
                }
                blocked = Some(b);
            }
        }
        Purpose::Eviction => {
            let passes: &[&str] = if q.backup_enabled {
                &["AND s.backup_state = 2", "AND s.backup_state <> 2"]
            } else {
                &[""]
            };
            for filter in passes {
                let left = q.limit - out.len();
                if left == 0 {
                    break;
                }
                let mut st = conn.prepare_cached(&format!(
                    "SELECT {ROW_COLUMNS} FROM segments s
                     WHERE state = 1 {filter} AND {NOT_HELD}
                     ORDER BY start_us LIMIT ?1"
                ))?;
                let rows = st.query_map([left as i64], row)?;
                for r in rows {
                    out.push(r?);
                }
            }
            more = out.len() == q.limit;
        }
    }
    Ok(CandidateBatch {
        purpose: q.purpose,
        segments: out,
        more,
        blocked_by_backup: blocked,
    })
}

/// Whether an active hold covers any part of the segment.
pub fn is_held(
    conn: &Connection,
    camera: u32,
    start: Micros,
    end: Micros,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM holds WHERE released_at IS NULL
            AND camera = ?1 AND from_us < ?3 AND to_us > ?2)",
    )?
    .query_row(params![camera, start, end], |r| r.get(0))
}

/// Hourly housekeeping: purges the rows of segments deleted before
/// `purge_before` (at most `limit` a call) and records the current mtime of every known day
/// directory (the catalog agrees with them now). Returns the rows purged.
pub fn maintain(
    conn: &mut Connection,
    root: &Path,
    purge_before: Micros,
    limit: usize,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let purged = tx.execute(
        "DELETE FROM segments WHERE (camera, start_us) IN
            (SELECT camera, start_us FROM segments WHERE state >= 2 AND state_at < ?1 LIMIT ?2)",
        params![purge_before, limit as i64],
    )?;
    tx.execute(
        "DELETE FROM causes WHERE end_us IS NOT NULL AND end_us < ?1",
        [purge_before - 365 * DAY],
    )?;
    let dirs: Vec<(u32, String)> = {
        let mut st = tx.prepare("SELECT camera, day FROM dirs")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (camera, day) in dirs {
        if let Ok(m) = std::fs::metadata(root.join(format!("cam_{camera}")).join(&day)) {
            tx.execute(
                "UPDATE dirs SET mtime_ns = ?3 WHERE camera = ?1 AND day = ?2",
                params![camera, day, mtime_ns(&m)],
            )?;
        }
    }
    tx.commit()?;
    Ok(purged)
}

/// The cause intervals touching `[from, to)` for a camera (its own and
/// those of every camera). Open ones end at `now`.
pub fn causes(
    conn: &Connection,
    camera: u32,
    from: Micros,
    to: Micros,
    now: Micros,
) -> rusqlite::Result<Vec<(Cause, Micros, Micros)>> {
    let mut st = conn.prepare_cached(
        "SELECT cause, start_us, coalesce(end_us, ?4) FROM causes
         WHERE (camera = ?1 OR camera IS NULL) AND start_us < ?3
           AND coalesce(end_us, ?4) > ?2
         ORDER BY start_us",
    )?;
    let rows = st.query_map(params![camera, from, to, now], |r| {
        Ok((
            Cause::parse(&r.get::<_, String>(0)?).unwrap_or(Cause::Unknown),
            r.get(1)?,
            r.get(2)?,
        ))
    })?;
    rows.collect()
}

/// Start of the camera's first segment ever catalogued.
pub fn first_segment(conn: &Connection, camera: u32) -> rusqlite::Result<Option<Micros>> {
    conn.query_row(
        "SELECT first_start_us FROM camera_stats WHERE camera = ?1",
        [camera],
        |r| r.get(0),
    )
    .optional()
}

#[cfg(test)]
mod tests;
