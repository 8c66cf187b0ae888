//! The alert database, `<state.dir>/vms.db`: alert history, incidents (the
//! audit ledger of recording gaps), maintenance silences and the delivery
//! outbox.
//!
//! [`Store`] is synchronous and takes the current time as an argument, so the
//! tests drive the whole lifecycle (dedup, reminders, silences) with a fake
//! clock. In the daemon it lives on one owner thread (`alerts/db.rs`).
//!
//! Times are stored as RFC 3339 UTC text with milliseconds
//! (`2026-01-05T17:35:22.000Z`): readable with the `sqlite3` shell and
//! ordered correctly as text.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::lifecycle::{self, OpenAlert, Outcome, Push};
use super::text::{self, Kind};
use super::{AlertSettings, AlertsError, Channel};
use crate::events::{AlertEvent, CameraRef, Issue, Phase, Severity};

/// The schema, one migration per `PRAGMA user_version` step. Never edit a
/// released migration; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE incidents (
        id                    INTEGER PRIMARY KEY,
        key                   TEXT NOT NULL,
        severity              TEXT NOT NULL,
        issue                 TEXT NOT NULL,
        camera_id             INTEGER,
        camera_name           TEXT,
        -- The alert row that opened it.
        alert_id              INTEGER NOT NULL,
        opened_at             TEXT NOT NULL,
        last_seen_at          TEXT NOT NULL,
        resolved_at           TEXT,
        -- Why it opened (the opening event's details) and why it closed.
        reason                TEXT NOT NULL,
        resolution            TEXT,
        -- The recording gap (audit ledger): from the camera's last segment
        -- data before the problem to the time it was resolved. Only for
        -- issues that mean 'not recording'.
        recording_gap_start   TEXT,
        recording_gap_end     TEXT,
        -- Paging: when someone was last paged for it, and how often.
        pushed                INTEGER NOT NULL DEFAULT 0,
        notified_at           TEXT,
        reminders             INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents(key) WHERE resolved_at IS NULL;
    CREATE INDEX incidents_camera ON incidents(camera_id, opened_at);

    CREATE TABLE alerts (
        id                INTEGER PRIMARY KEY,
        at                TEXT NOT NULL,
        received_at       TEXT NOT NULL,
        severity          TEXT NOT NULL,
        phase             TEXT NOT NULL,
        key               TEXT NOT NULL,
        issue             TEXT NOT NULL,
        camera_id         INTEGER,
        camera_name       TEXT,
        recovery_attempts INTEGER NOT NULL,
        last_recording    TEXT,
        details           TEXT NOT NULL,
        -- What the pipeline did with it: opened, repeated, escalated,
        -- resolved, nothing_open, notice.
        action            TEXT NOT NULL,
        incident_id       INTEGER REFERENCES incidents(id),
        silenced          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alerts_camera ON alerts(camera_id, id);

    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY,
        alert_id         INTEGER NOT NULL REFERENCES alerts(id),
        incident_id      INTEGER REFERENCES incidents(id),
        channel          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        subject          TEXT,
        body             TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  TEXT NOT NULL,
        last_error       TEXT,
        delivered_at     TEXT,
        -- Set on a permanent failure (e.g. Telegram 400/403, SMTP 5xx); the
        -- row stays with its error for the operator to see.
        failed_at        TEXT
    );
    CREATE INDEX outbox_pending ON outbox(channel, next_attempt_at)
        WHERE delivered_at IS NULL AND failed_at IS NULL;

    CREATE TABLE silences (
        camera_id   INTEGER PRIMARY KEY,
        until       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    ",
    // 2: an operator's acknowledgement of an alert (the dashboard's banner).
    "
    ALTER TABLE alerts ADD COLUMN acked_by TEXT;
    ALTER TABLE alerts ADD COLUMN acked_at TEXT;
    ",
];

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn parse_severity(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

fn parse_phase(s: &str) -> Phase {
    match s {
        "firing" => Phase::Firing,
        "resolved" => Phase::Resolved,
        _ => Phase::Notice,
    }
}

fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::Firing => "firing",
        Phase::Resolved => "resolved",
        Phase::Notice => "notice",
    }
}

fn parse_issue(s: &str) -> Issue {
    super::ALL_ISSUES
        .iter()
        .copied()
        .find(|i| i.as_str() == s)
        .unwrap_or(Issue::External)
}

/// A SQLite error as ours: a lock held by another process (an admin's
/// `sqlite3` shell, a backup tool) is [`AlertsError::Busy`], which delays a
/// write; anything else makes the database unusable.
fn sql_err(path: &Path, e: rusqlite::Error) -> AlertsError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => AlertsError::Busy {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
        _ => AlertsError::database(path, e.to_string()),
    }
}

/// What [`Store::ingest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub alert_id: i64,
    pub outcome: Outcome,
    pub silenced: bool,
    /// Outbox rows created, by channel.
    pub queued: Vec<Channel>,
}

/// One stored alert, as the API, the dashboard and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: i64,
    /// When it happened (UTC).
    pub timestamp: DateTime<Utc>,
    pub severity: Severity,
    pub phase: Phase,
    pub issue: Issue,
    pub key: String,
    pub camera_id: Option<u32>,
    /// The camera's name (`recent_alerts[].camera` of docs/design.md §6.1); the box name
    /// for alerts about the server itself.
    pub camera: Option<String>,
    /// The operator-facing message in the configured language.
    pub message: String,
    pub details: String,
    pub recovery_attempts: u32,
    pub last_recording: Option<DateTime<Utc>>,
    /// False only for a Firing alert whose incident is still open.
    pub resolved: bool,
    /// Stored while the camera was silenced (not pushed).
    pub silenced: bool,
    /// What the pipeline did: opened, repeated, escalated, resolved,
    /// nothing_open, notice.
    pub action: String,
    /// Who acknowledged it on the dashboard, and when.
    #[serde(default)]
    pub acked_by: Option<String>,
    #[serde(default)]
    pub acked_at: Option<DateTime<Utc>>,
}

/// Filters of [`Store::list`] (and `GET /api/alerts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    pub severity: Option<Severity>,
    pub camera_id: Option<u32>,
    /// `true`: only Firing alerts whose incident is still open; `false`:
    /// only the others.
    pub open: Option<bool>,
    /// A user limited to some cameras: only their alerts and the box's
    /// own (disk, MediaMTX, channels); `None` = every alert.
    #[serde(skip)]
    pub only_cameras: Option<Vec<u32>>,
}

/// `(camera_id IS NULL OR camera_id IN (...))` over `column`, for a user
/// limited to `cameras`, its arguments appended to `args`.
fn scope_condition(
    column: &str,
    cameras: &[u32],
    args: &mut Vec<rusqlite::types::Value>,
) -> String {
    let mut marks = Vec::with_capacity(cameras.len());
    for c in cameras {
        args.push(i64::from(*c).into());
        marks.push(format!("?{}", args.len()));
    }
    if marks.is_empty() {
        format!("{column} IS NULL")
    } else {
        format!("({column} IS NULL OR {column} IN ({}))", marks.join(", "))
    }
}

/// One incident of the audit ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub id: i64,
    pub key: String,
    pub severity: Severity,
    pub issue: Issue,
    pub camera_id: Option<u32>,
    pub camera_name: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub resolution: Option<String>,
    /// When the camera stopped recording (its last segment data), for issues
    /// that mean "not recording".
    pub recording_gap_start: Option<DateTime<Utc>>,
    /// When it recorded again (the resolution time); `None` while open.
    pub recording_gap_end: Option<DateTime<Utc>>,
}

/// An outbox row due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: i64,
    pub channel: Channel,
    pub kind: Kind,
    pub subject: Option<String>,
    pub body: String,
    pub attempts: u32,
}

/// One outbox row, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub alert_id: i64,
    pub channel: Channel,
    pub kind: Kind,
    pub subject: Option<String>,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// Outbox health of one channel (for the metrics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    pub channel: Channel,
    /// Rows not delivered yet and not failed permanently.
    pub depth: u64,
    /// Age of the oldest of them, in seconds (0 when empty).
    pub oldest_seconds: f64,
    pub delivered: u64,
    pub failed: u64,
}

/// Open alerts by severity (for `vms_active_alerts{severity}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpenCounts {
    pub info: u64,
    pub warning: u64,
    pub critical: u64,
}

/// A maintenance silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub camera_id: u32,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// The `path` of a [`Store::open_in_memory`] store.
const MEMORY: &str = ":memory:";

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Device and inode of the file when it was opened.
    identity: Option<(u64, u64)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Store {
    /// Opens (creating if needed) the database read-write, with WAL, mode
    /// 0640, and the schema migrated. A corrupt file, an unwritable
    /// directory or a schema newer than this binary is an error that names
    /// the file.
    pub fn open(path: &Path) -> Result<Store, AlertsError> {
        if !path.exists() {
            // Create it ourselves so it never exists with a wider mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(path)
                .map_err(|e| AlertsError::database(path, format!("cannot create the file: {e}")))?;
        }
        // An existing file from an older install keeps no wider mode either.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_err(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            identity: file_identity(path),
        };
        store.prepare()?;
        Ok(store)
    }

    /// Whether the file this store writes is still the one at its path: a
    /// database deleted or replaced while the daemon runs would take every
    /// write with it (SQLite writes on into the unlinked file).
    pub fn check_file(&self) -> Result<(), AlertsError> {
        if !self.durable() {
            return Ok(());
        }
        match (self.identity, file_identity(&self.path)) {
            (Some(opened), Some(now)) if opened == now => Ok(()),
            (_, None) => Err(AlertsError::database(
                &self.path,
                "the database file was deleted while the daemon ran; alerts are kept in memory until vms-supervisor restarts (it then creates a new file)".into(),
            )),
            _ => Err(AlertsError::database(
                &self.path,
                "the database file was replaced while the daemon ran; alerts are kept in memory until vms-supervisor restarts".into(),
            )),
        }
    }

    /// A database in memory, with the same schema: the daemon's fallback
    /// when the file cannot be used, so that alerts are still deduplicated,
    /// shown and pushed (but not kept across a restart).
    pub fn open_in_memory() -> Result<Store, AlertsError> {
        let path = PathBuf::from(MEMORY);
        let conn = Connection::open_in_memory().map_err(|e| sql_err(&path, e))?;
        let mut store = Store {
            conn,
            path,
            identity: None,
        };
        store.prepare()?;
        Ok(store)
    }

    /// Whether this store is a file (not [`Store::open_in_memory`]).
    pub fn durable(&self) -> bool {
        self.path != Path::new(MEMORY)
    }

    /// Opens an existing database read-only (the CLI while the daemon is
    /// down). Never migrates.
    pub fn open_read_only(path: &Path) -> Result<Store, AlertsError> {
        if !path.exists() {
            return Err(AlertsError::database(path, "no such file".to_string()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_err(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            identity: None,
        };
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store.err(e))?;
        if version == 0 {
            return Err(AlertsError::database(
                path,
                "the database has no alert tables yet".into(),
            ));
        }
        Ok(store)
    }

    fn err(&self, e: rusqlite::Error) -> AlertsError {
        sql_err(&self.path, e)
    }

    fn prepare(&mut self) -> Result<(), AlertsError> {
        let path = self.path.clone();
        let c = &mut self.conn;
        c.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sql_err(&path, e))?;
        // The first statement that reads the file: a file that is not a
        // database fails here with "file is not a database".
        let mode: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| sql_err(&path, e))?;
        // A database in memory has no journal file ("memory").
        if !mode.eq_ignore_ascii_case("wal") && path != Path::new(MEMORY) {
            return Err(AlertsError::database(
                &path,
                format!("cannot switch to WAL (journal_mode is {mode})"),
            ));
        }
        c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| sql_err(&path, e))?;
        let check: String = c
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| sql_err(&path, e))?;
        if check != "ok" {
            return Err(AlertsError::database(
                &path,
                format!("integrity check failed: {check}"),
            ));
        }
        let version: usize = c
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| sql_err(&path, e))? as usize;
        if version > MIGRATIONS.len() {
            return Err(AlertsError::database(
                &path,
                format!(
                    "schema version {version} is newer than this vms-supervisor knows ({}); downgrading is not supported",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| sql_err(&path, e))?;
            tx.execute_batch(sql).map_err(|e| sql_err(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| sql_err(&path, e))?;
            tx.commit().map_err(|e| sql_err(&path, e))?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, AlertsError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Is this camera silenced at `now`?
    fn silenced(
        conn: &Connection,
        camera_id: Option<u32>,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<bool> {
        let Some(id) = camera_id else {
            return Ok(false);
        };
        conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM silences WHERE camera_id = ?1 AND until > ?2)",
            params![id, ts(now)],
            |r| r.get(0),
        )
    }

    /// Stores an event and applies its decision (incident, outbox rows) in
    /// one transaction. The alert row exists before any message does.
    pub fn ingest(
        &mut self,
        event: &AlertEvent,
        now: DateTime<Utc>,
        settings: &AlertSettings,
    ) -> Result<Ingested, AlertsError> {
        let path = self.path.clone();
        let e = |err: rusqlite::Error| sql_err(&path, err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let camera_id = event.camera.as_ref().map(|c| c.id);
        let silenced = Self::silenced(&tx, camera_id, now).map_err(e)?;
        let open: Option<(OpenAlert, i64, String)> = tx
            .query_row(
                "SELECT id, severity, pushed, alert_id, opened_at FROM incidents
                 WHERE key = ?1 AND resolved_at IS NULL",
                params![event.key],
                |r| {
                    Ok((
                        OpenAlert {
                            incident_id: r.get(0)?,
                            severity: parse_severity(&r.get::<_, String>(1)?),
                            pushed: r.get::<_, i64>(2)? != 0,
                        },
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            )
            .optional()
            .map_err(e)?;
        let decision = lifecycle::decide(open.as_ref().map(|o| &o.0), event, silenced);

        tx.execute(
            "INSERT INTO alerts (at, received_at, severity, phase, key, issue, camera_id,
                 camera_name, recovery_attempts, last_recording, details, action, silenced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                ts(event.at),
                ts(now),
                event.severity.as_str(),
                phase_str(event.phase),
                event.key,
                event.issue.as_str(),
                camera_id,
                event.camera.as_ref().map(|c| c.name.as_str()),
                event.recovery_attempts,
                event.last_recording.map(ts),
                event.details,
                decision.outcome.as_str(),
                silenced,
            ],
        )
        .map_err(e)?;
        let alert_id = tx.last_insert_rowid();

        let incident_id = match (decision.outcome, &open) {
            (Outcome::Opened, _) => {
                let gap_start = text::is_recording_gap(event.issue)
                    .then(|| ts(event.last_recording.unwrap_or(event.at)));
                tx.execute(
                    "INSERT INTO incidents (key, severity, issue, camera_id, camera_name, alert_id,
                         opened_at, last_seen_at, reason, recording_gap_start)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
                    params![
                        event.key,
                        event.severity.as_str(),
                        event.issue.as_str(),
                        camera_id,
                        event.camera.as_ref().map(|c| c.name.as_str()),
                        alert_id,
                        ts(event.at),
                        event.details,
                        gap_start,
                    ],
                )
                .map_err(e)?;
                Some(tx.last_insert_rowid())
            }
            (Outcome::Escalated, Some((o, _, _))) => {
                tx.execute(
                    "UPDATE incidents SET severity = ?2, last_seen_at = ?3, alert_id = ?4 WHERE id = ?1",
                    params![o.incident_id, event.severity.as_str(), ts(event.at), alert_id],
                )
                .map_err(e)?;
                Some(o.incident_id)
            }
            (Outcome::Repeated, Some((o, _, _))) => {
                tx.execute(
                    "UPDATE incidents SET last_seen_at = ?2 WHERE id = ?1",
                    params![o.incident_id, ts(event.at)],
                )
                .map_err(e)?;
                Some(o.incident_id)
            }
            (Outcome::Resolved, Some((o, _, _))) => {
                tx.execute(
                    "UPDATE incidents SET resolved_at = ?2, last_seen_at = ?2, resolution = ?3,
                         recording_gap_end = CASE WHEN recording_gap_start IS NULL THEN NULL ELSE ?2 END
                     WHERE id = ?1",
                    params![o.incident_id, ts(event.at), event.details],
                )
                .map_err(e)?;
                Some(o.incident_id)
            }
            _ => None,
        };
        if let Some(id) = incident_id {
            tx.execute(
                "UPDATE alerts SET incident_id = ?2 WHERE id = ?1",
                params![alert_id, id],
            )
            .map_err(e)?;
        }

        let mut queued = Vec::new();
        if let Some(push) = decision.push {
            let message = match (push, &open) {
                (Push::Resolved, Some((_, opening_alert, opened_at))) => {
                    let opening = Self::load_event(&tx, *opening_alert).map_err(e)?;
                    text::render(
                        Kind::Resolved,
                        &opening,
                        event.at,
                        Some(parse_ts(opened_at)),
                        &settings.style(),
                    )
                }
                _ => text::render(Kind::Alert, event, event.at, None, &settings.style()),
            };
            let kind = match push {
                Push::Alert => Kind::Alert,
                Push::Resolved => Kind::Resolved,
            };
            for &channel in &settings.channels {
                Self::enqueue(&tx, alert_id, incident_id, channel, kind, &message, now)
                    .map_err(e)?;
                queued.push(channel);
            }
            if push == Push::Alert {
                if let Some(id) = incident_id {
                    tx.execute(
                        "UPDATE incidents SET pushed = 1, notified_at = ?2 WHERE id = ?1",
                        params![id, ts(now)],
                    )
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(Ingested {
            alert_id,
            outcome: decision.outcome,
            silenced,
            queued,
        })
    }

    fn enqueue(
        conn: &Connection,
        alert_id: i64,
        incident_id: Option<i64>,
        channel: Channel,
        kind: Kind,
        message: &text::Message,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        let (subject, body) = match channel {
            Channel::Telegram => (None, message.telegram.as_str()),
            Channel::Email => (
                Some(message.email_subject.as_str()),
                message.email_body.as_str(),
            ),
        };
        conn.execute(
            "INSERT INTO outbox (alert_id, incident_id, channel, kind, subject, body, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                alert_id,
                incident_id,
                channel.as_str(),
                kind.as_str(),
                subject,
                body,
                ts(now)
            ],
        )?;
        Ok(())
    }

    fn load_event(conn: &Connection, alert_id: i64) -> rusqlite::Result<AlertEvent> {
        conn.query_row(
            "SELECT at, severity, phase, key, issue, camera_id, camera_name, recovery_attempts,
                 last_recording, details FROM alerts WHERE id = ?1",
            params![alert_id],
            |r| {
                let camera_id: Option<u32> = r.get(5)?;
                let camera_name: Option<String> = r.get(6)?;
                Ok(AlertEvent {
                    at: parse_ts(&r.get::<_, String>(0)?),
                    severity: parse_severity(&r.get::<_, String>(1)?),
                    phase: parse_phase(&r.get::<_, String>(2)?),
                    key: r.get(3)?,
                    issue: parse_issue(&r.get::<_, String>(4)?),
                    camera: camera_id.map(|id| CameraRef {
                        id,
                        name: camera_name.unwrap_or_default(),
                    }),
                    recovery_attempts: r.get(7)?,
                    last_recording: r.get::<_, Option<String>>(8)?.map(|s| parse_ts(&s)),
                    details: r.get(9)?,
                })
            },
        )
    }

    /// Queues reminders for open Critical alerts not pushed for
    /// `reminder_after` (whose camera is not silenced). Returns how many
    /// alerts were reminded.
    pub fn remind(
        &mut self,
        now: DateTime<Utc>,
        settings: &AlertSettings,
    ) -> Result<usize, AlertsError> {
        let Some(after) = settings.reminder_after else {
            return Ok(0);
        };
        let path = self.path.clone();
        let e = |err: rusqlite::Error| sql_err(&path, err);
        // An absurdly long reminder_after means "never", not a panic.
        let Some(cutoff) = chrono::Duration::from_std(after)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(0);
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let due: Vec<(i64, i64, String)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT i.id, i.alert_id, i.opened_at FROM incidents i
                     WHERE i.resolved_at IS NULL AND i.severity = 'critical'
                       AND COALESCE(i.notified_at, i.opened_at) <= ?1
                       AND NOT EXISTS (SELECT 1 FROM silences s
                                       WHERE s.camera_id = i.camera_id AND s.until > ?2)
                     ORDER BY i.id",
                )
                .map_err(e)?;
            let rows = stmt
                .query_map(params![ts(cutoff), ts(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)?
        };
        for (incident_id, alert_id, opened_at) in &due {
            let opening = Self::load_event(&tx, *alert_id).map_err(e)?;
            let message = text::render(
                Kind::Reminder,
                &opening,
                now,
                Some(parse_ts(opened_at)),
                &settings.style(),
            );
            for &channel in &settings.channels {
                Self::enqueue(
                    &tx,
                    *alert_id,
                    Some(*incident_id),
                    channel,
                    Kind::Reminder,
                    &message,
                    now,
                )
                .map_err(e)?;
            }
            tx.execute(
                "UPDATE incidents SET pushed = 1, notified_at = ?2, reminders = reminders + 1 WHERE id = ?1",
                params![incident_id, ts(now)],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(due.len())
    }

    /// The oldest pending rows of `channel`, in order, if the oldest is due
    /// at `now`: a row waiting for its retry holds back the ones raised
    /// after it (messages leave a channel in the order they were raised).
    pub fn due(
        &self,
        channel: Channel,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Pending>, AlertsError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, subject, body, attempts, next_attempt_at FROM outbox
                 WHERE channel = ?1 AND delivered_at IS NULL AND failed_at IS NULL
                 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let now = ts(now);
        let rows = stmt
            .query_map(params![channel.as_str(), limit as i64], |r| {
                Ok((
                    Pending {
                        id: r.get(0)?,
                        channel,
                        kind: Kind::parse(&r.get::<_, String>(1)?),
                        subject: r.get(2)?,
                        body: r.get(3)?,
                        attempts: r.get(4)?,
                    },
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let rows: Vec<(Pending, String)> =
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        let head_due = rows.first().is_some_and(|(_, next)| *next <= now);
        Ok(if head_due {
            rows.into_iter().map(|(p, _)| p).collect()
        } else {
            Vec::new()
        })
    }

    /// When the oldest pending row of `channel` is due (the rest follow it).
    pub fn next_due_at(&self, channel: Channel) -> Result<Option<DateTime<Utc>>, AlertsError> {
        self.conn
            .query_row(
                "SELECT next_attempt_at FROM outbox
                 WHERE channel = ?1 AND delivered_at IS NULL AND failed_at IS NULL
                 ORDER BY id LIMIT 1",
                params![channel.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|o| o.map(|s| parse_ts(&s)))
            .map_err(|e| self.err(e))
    }

    /// Acknowledges a delivery: the row is never sent again.
    pub fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), AlertsError> {
        self.conn
            .execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1 AND delivered_at IS NULL",
                params![id, ts(now)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn mark_retry(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), AlertsError> {
        self.conn
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND delivered_at IS NULL",
                params![id, ts(next_attempt_at), error],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn mark_failed(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<(), AlertsError> {
        self.conn
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, failed_at = ?2, last_error = ?3
                 WHERE id = ?1 AND delivered_at IS NULL",
                params![id, ts(now), error],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Puts rows that failed permanently since `since` back in the queue
    /// (after a config change or a restart: the bad token, password or chat
    /// id may have been fixed). Returns how many.
    pub fn requeue_failed(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, AlertsError> {
        self.conn
            .execute(
                "UPDATE outbox SET failed_at = NULL, next_attempt_at = ?2
                 WHERE failed_at IS NOT NULL AND failed_at >= ?1 AND delivered_at IS NULL",
                params![ts(since), ts(now)],
            )
            .map_err(|e| self.err(e))
    }

    /// Every outbox row, oldest first (tests, diagnostics).
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, AlertsError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, alert_id, channel, kind, subject, body, attempts, next_attempt_at,
                     last_error, delivered_at, failed_at FROM outbox ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    alert_id: r.get(1)?,
                    channel: Channel::parse(&r.get::<_, String>(2)?).unwrap_or(Channel::Telegram),
                    kind: Kind::parse(&r.get::<_, String>(3)?),
                    subject: r.get(4)?,
                    body: r.get(5)?,
                    attempts: r.get(6)?,
                    next_attempt_at: parse_ts(&r.get::<_, String>(7)?),
                    last_error: r.get(8)?,
                    delivered_at: r.get::<_, Option<String>>(9)?.map(|s| parse_ts(&s)),
                    failed_at: r.get::<_, Option<String>>(10)?.map(|s| parse_ts(&s)),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn channel_stats(&self, now: DateTime<Utc>) -> Result<Vec<ChannelStats>, AlertsError> {
        let mut out = Vec::new();
        for channel in [Channel::Telegram, Channel::Email] {
            let (depth, oldest, delivered, failed): (u64, Option<String>, u64, u64) = self
                .conn
                .query_row(
                    "SELECT
                        COALESCE(SUM(delivered_at IS NULL AND failed_at IS NULL), 0),
                        MIN(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN created_at END),
                        COALESCE(SUM(delivered_at IS NOT NULL), 0),
                        COALESCE(SUM(failed_at IS NOT NULL), 0)
                     FROM outbox WHERE channel = ?1",
                    params![channel.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(|e| self.err(e))?;
            let oldest_seconds = oldest
                .map(|s| ((now - parse_ts(&s)).num_milliseconds().max(0) as f64) / 1000.0)
                .unwrap_or(0.0);
            out.push(ChannelStats {
                channel,
                depth,
                oldest_seconds,
                delivered,
                failed,
            });
        }
        Ok(out)
    }

    pub fn open_counts(&self) -> Result<OpenCounts, AlertsError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT severity, COUNT(*) FROM incidents WHERE resolved_at IS NULL GROUP BY severity",
            )
            .map_err(|e| self.err(e))?;
        let mut counts = OpenCounts::default();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (sev, n) = row.map_err(|e| self.err(e))?;
            match parse_severity(&sev) {
                Severity::Info => counts.info = n,
                Severity::Warning => counts.warning = n,
                Severity::Critical => counts.critical = n,
            }
        }
        Ok(counts)
    }

    /// Stored alerts, newest first, with the total matching the filter.
    pub fn list(
        &self,
        filter: &Filter,
        limit: usize,
        offset: usize,
        settings: &AlertSettings,
    ) -> Result<(Vec<AlertRow>, u64), AlertsError> {
        let mut conds = vec!["1=1".to_string()];
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = filter.severity {
            args.push(s.as_str().to_string().into());
            conds.push(format!("a.severity = ?{}", args.len()));
        }
        if let Some(c) = filter.camera_id {
            args.push(i64::from(c).into());
            conds.push(format!("a.camera_id = ?{}", args.len()));
        }
        if let Some(only) = &filter.only_cameras {
            conds.push(scope_condition("a.camera_id", only, &mut args));
        }
        const OPEN: &str = "(a.phase = 'firing' AND i.id IS NOT NULL AND i.resolved_at IS NULL)";
        match filter.open {
            Some(true) => conds.push(OPEN.into()),
            Some(false) => conds.push(format!("NOT {OPEN}")),
            None => {}
        }
        let where_ = conds.join(" AND ");
        let total: u64 = self
            .conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id WHERE {where_}"
                ),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        args.push((limit as i64).into());
        let lim = args.len();
        args.push((offset as i64).into());
        let off = args.len();
        let sql = format!(
            "SELECT a.id, a.at, a.severity, a.phase, a.key, a.issue, a.camera_id, a.camera_name,
                 a.recovery_attempts, a.last_recording, a.details, a.silenced, a.action,
                 {OPEN} AS open, a.acked_by, a.acked_at
             FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id
             WHERE {where_} ORDER BY a.id DESC LIMIT ?{lim} OFFSET ?{off}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                row_to_alert(r, settings)
            })
            .map_err(|e| self.err(e))?;
        let rows = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        Ok((rows, total))
    }

    /// The audit ledger: incidents of one camera (or all), newest first.
    pub fn incidents(
        &self,
        camera_id: Option<u32>,
        only_cameras: Option<&[u32]>,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, AlertsError> {
        let mut args: Vec<rusqlite::types::Value> =
            vec![camera_id.map(i64::from).into(), (limit as i64).into()];
        let scope = match only_cameras {
            Some(only) => format!(" AND {}", scope_condition("camera_id", only, &mut args)),
            None => String::new(),
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, key, severity, issue, camera_id, camera_name, opened_at, resolved_at,
                     reason, resolution, recording_gap_start, recording_gap_end
                 FROM incidents WHERE (?1 IS NULL OR camera_id = ?1){scope} ORDER BY id DESC LIMIT ?2",
            ))
            .map_err(|e| self.err(e))?;
        let opt_ts = |s: Option<String>| s.map(|s| parse_ts(&s));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(IncidentRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    severity: parse_severity(&r.get::<_, String>(2)?),
                    issue: parse_issue(&r.get::<_, String>(3)?),
                    camera_id: r.get(4)?,
                    camera_name: r.get(5)?,
                    opened_at: parse_ts(&r.get::<_, String>(6)?),
                    resolved_at: opt_ts(r.get(7)?),
                    reason: r.get(8)?,
                    resolution: r.get(9)?,
                    recording_gap_start: opt_ts(r.get(10)?),
                    recording_gap_end: opt_ts(r.get(11)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn silence(
        &self,
        camera_id: u32,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AlertsError> {
        self.conn
            .execute(
                "INSERT INTO silences (camera_id, until, reason, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(camera_id) DO UPDATE SET until = ?2, reason = ?3, created_at = ?4",
                params![camera_id, ts(until), reason, ts(now)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Ends a silence. Returns whether there was one.
    /// Records that `who` acknowledged alert `id` at `now`. The first
    /// acknowledgement stands; `None` when there is no such alert.
    pub fn ack(
        &self,
        id: i64,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, AlertsError> {
        self.conn
            .execute(
                "UPDATE alerts SET acked_by = ?2, acked_at = ?3 WHERE id = ?1 AND acked_at IS NULL",
                params![id, who, ts(now)],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .query_row(
                "SELECT acked_by, acked_at FROM alerts WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .optional()
            .map(|row| match row {
                Some((Some(by), Some(at))) => Some((by, parse_ts(&at))),
                _ => None,
            })
            .map_err(|e| self.err(e))
    }

    pub fn unsilence(&self, camera_id: u32) -> Result<bool, AlertsError> {
        self.conn
            .execute(
                "DELETE FROM silences WHERE camera_id = ?1",
                params![camera_id],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Silences in force at `now` (expired ones are deleted).
    pub fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, AlertsError> {
        self.conn
            .execute("DELETE FROM silences WHERE until <= ?1", params![ts(now)])
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare("SELECT camera_id, until, reason, created_at FROM silences ORDER BY camera_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Silence {
                    camera_id: r.get(0)?,
                    until: parse_ts(&r.get::<_, String>(1)?),
                    reason: r.get(2)?,
                    created_at: parse_ts(&r.get::<_, String>(3)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes history older than `keep`: delivered or failed outbox rows,
    /// then alert rows nothing points to any more. Incidents (the audit
    /// ledger of recording gaps, one row per problem) are kept. Returns the
    /// number of alert rows deleted.
    pub fn prune(&mut self, now: DateTime<Utc>, keep: Duration) -> Result<usize, AlertsError> {
        let Some(cut) = chrono::Duration::from_std(keep)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(0);
        };
        let cut = ts(cut);
        let path = self.path.clone();
        let e = |err: rusqlite::Error| sql_err(&path, err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        tx.execute(
            "DELETE FROM outbox WHERE created_at < ?1
               AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)",
            params![cut],
        )
        .map_err(e)?;
        let n = tx
            .execute(
                "DELETE FROM alerts WHERE received_at < ?1
                   AND id NOT IN (SELECT alert_id FROM outbox)
                   AND id NOT IN (SELECT alert_id FROM incidents WHERE resolved_at IS NULL)",
                params![cut],
            )
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(n)
    }

    /// Counts of each table (diagnostics and tests).
    pub fn table_counts(&self) -> Result<BTreeMap<&'static str, u64>, AlertsError> {
        let mut out = BTreeMap::new();
        for t in ["alerts", "incidents", "outbox", "silences"] {
            let n: u64 = self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            out.insert(t, n);
        }
        Ok(out)
    }
}

fn row_to_alert(r: &Row<'_>, settings: &AlertSettings) -> rusqlite::Result<AlertRow> {
    let camera_id: Option<u32> = r.get(6)?;
    let camera_name: Option<String> = r.get(7)?;
    let event = AlertEvent {
        at: parse_ts(&r.get::<_, String>(1)?),
        severity: parse_severity(&r.get::<_, String>(2)?),
        phase: parse_phase(&r.get::<_, String>(3)?),
        key: r.get(4)?,
        issue: parse_issue(&r.get::<_, String>(5)?),
        camera: camera_id.map(|id| CameraRef {
            id,
            name: camera_name.clone().unwrap_or_default(),
        }),
        recovery_attempts: r.get(8)?,
        last_recording: r.get::<_, Option<String>>(9)?.map(|s| parse_ts(&s)),
        details: r.get(10)?,
    };
    let open: bool = r.get(13)?;
    Ok(AlertRow {
        id: r.get(0)?,
        timestamp: event.at,
        severity: event.severity,
        phase: event.phase,
        issue: event.issue,
        key: event.key.clone(),
        camera_id,
        camera: camera_name.or_else(|| Some(settings.box_name.clone())),
        message: text::dashboard_message(&event, settings.language),
        details: event.details.clone(),
        recovery_attempts: event.recovery_attempts,
        last_recording: event.last_recording,
        resolved: !open,
        silenced: r.get(11)?,
        action: r.get(12)?,
        acked_by: r.get(14)?,
        acked_at: r.get::<_, Option<String>>(15)?.map(|s| parse_ts(&s)),
    })
}
