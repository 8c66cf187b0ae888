//! The access database: users, sessions, failed logins and lockouts, and
//! the audit trail. Every time is given by the caller (milliseconds since
//! the epoch in the database), so the rules are tested on any clock.
//!
//! The audit table has no UPDATE path: a trigger refuses it, and the only
//! DELETE is [`Store::prune`]'s retention.
//!
//! Secrets are never stored: a session is found by the SHA-256 of its
//! cookie, and its CSRF and media tokens are derived from the cookie
//! ([`derive`]), so a copy of the database opens no session.

use std::collections::HashSet;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension as _, TransactionBehavior};
use serde::Serialize;

use super::{from_ms, ms, password, AccessError, Role, Settings};

/// The schema, one migration per `PRAGMA user_version` step. Never edit a
/// shipped one; add a new step.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE users (
    name     TEXT PRIMARY KEY,
    role     TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash     TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    cameras  TEXT NOT NULL DEFAULT '',
    created  INTEGER NOT NULL,
    changed  INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    media_hash TEXT NOT NULL UNIQUE,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    created    INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user);
CREATE TABLE login_failures (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(kind, key, at);
CREATE TABLE lockouts (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    camera INTEGER,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
",
    "
CREATE TABLE live_views (
    reader   TEXT PRIMARY KEY,
    audit_id INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    source   TEXT NOT NULL,
    camera   INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    started  INTEGER NOT NULL,
    seen     INTEGER NOT NULL DEFAULT 0
);
",
];

/// A view whose reader MediaMTX has not listed this long after it was
/// authorized never played (a WHEP offer that failed, an RTSP `DESCRIBE`
/// alone): it is ended then.
pub const VIEW_START_GRACE: Duration = Duration::from_secs(30);

/// Appends an audit row on `c` (the store's connection or a transaction
/// of it); its id.
fn insert_audit(c: &Connection, e: &AuditEntry) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO audit (at, actor, source, action, camera, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![ms(e.at), e.actor, e.source, e.action, e.camera, e.detail],
    )?;
    Ok(c.last_insert_rowid())
}

/// A row of `live_views`: a reader MediaMTX was allowed to serve.
struct OpenView {
    reader: String,
    audit_id: i64,
    actor: String,
    source: String,
    camera: u32,
    protocol: String,
    /// Milliseconds since the epoch.
    started: i64,
    /// Whether MediaMTX has listed the reader yet.
    seen: bool,
}

/// A person who may log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// The cameras this user may see; empty = all.
    pub cameras: Vec<u32>,
    pub created: DateTime<Utc>,
    /// Whether a lockout of this account is in force (filled by
    /// [`Store::users`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
}

impl User {
    /// Whether this user may see `camera` at all (live or recorded).
    pub fn may_see(&self, camera: u32) -> bool {
        self.cameras.is_empty() || self.cameras.contains(&camera)
    }
}

/// A logged-in session, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created: DateTime<Utc>,
    /// When it ends if unused / at the latest.
    pub idle_until: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// The secrets of a new session, given once.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie's value.
    pub token: String,
    pub session: Session,
}

#[derive(Debug, Clone)]
pub enum LoginOutcome {
    Ok(NewSession),
    /// Wrong name or password (the same answer for both).
    Refused,
    /// Too many failures: refused whatever the password, until `until`.
    Locked {
        until: DateTime<Utc>,
    },
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// 0 until stored.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who: a user name, `api-token`, `cli:<login>`, `system` (the daemon
    /// itself: config reloads) or `-` (nobody identified).
    pub actor: String,
    /// The source address, or `cli`.
    pub source: String,
    /// What: `login`, `login_failed`, `login_locked`, `logout`,
    /// `live_view`, `live_view_end`, `playback`, `alert_ack`, `camera_reset`,
    /// `silence_add`, `silence_remove`, `config_reload`,
    /// `config_reload_refused`, `hold_add`, `hold_release`, `user_add`,
    /// `user_passwd`, `user_disable`, `user_enable`, `user_remove`,
    /// `user_unlock`, `evidence_export`, `evidence_download`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<u32>,
    /// The rest: a time range, the account changed, a reason.
    pub detail: String,
}

impl AuditEntry {
    pub fn new(at: DateTime<Utc>, actor: &str, source: &str, action: &str) -> AuditEntry {
        AuditEntry {
            id: 0,
            at,
            actor: actor.to_string(),
            source: source.to_string(),
            action: action.to_string(),
            camera: None,
            detail: String::new(),
        }
    }

    pub fn camera(mut self, camera: u32) -> AuditEntry {
        self.camera = Some(camera);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = detail.into();
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// One action (`evidence_export`, `config_reload`, ...).
    pub action: Option<String>,
    pub camera: Option<u32>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// The hex SHA-256 of `what`.
pub fn sha256_hex(what: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, what.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A secret derived from a session's cookie: `csrf` (the `X-CSRF-Token`
/// the page sends with every change) or `media` (the credential the page
/// gives MediaMTX). Whoever has the cookie can compute them; whoever has
/// only one of them cannot compute the cookie.
pub fn derive(kind: &str, session_token: &str) -> String {
    sha256_hex(&format!("vms-{kind}:{session_token}"))
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const MEMORY: &str = ":memory:";

fn role_of(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Viewer)
}

fn cameras_of(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|c| c.trim().parse().ok()).collect()
}

fn cameras_text(cameras: &[u32]) -> String {
    cameras
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get(0)?,
        role: role_of(&r.get::<_, String>(1)?),
        disabled: r.get(2)?,
        cameras: cameras_of(&r.get::<_, String>(3)?),
        created: from_ms(r.get(4)?),
        locked_until: None,
    })
}

const USER_COLUMNS: &str = "name, role, disabled, cameras, created";

fn dur_ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Store {
    /// Opens (creating if needed, mode 0600: it holds password hashes) and
    /// migrates the database.
    pub fn open(path: &Path) -> Result<Store, AccessError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Self::error(path, e))?;
        }
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Self::error(path, format!("cannot create the file: {e}")))?;
        }
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Self::error(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.prepare()?;
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store, AccessError> {
        let conn = Connection::open_in_memory().map_err(|e| Self::error(Path::new(MEMORY), e))?;
        let mut store = Store {
            conn,
            path: PathBuf::from(MEMORY),
        };
        store.prepare()?;
        Ok(store)
    }

    fn error(path: &Path, e: impl std::fmt::Display) -> AccessError {
        AccessError::Database {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> AccessError {
        Self::error(&self.path, e)
    }

    fn prepare(&mut self) -> Result<(), AccessError> {
        let path = self.path.clone();
        let c = &mut self.conn;
        c.busy_timeout(Duration::from_secs(5))
            .map_err(|e| Self::error(&path, e))?;
        let _: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| Self::error(&path, e))?;
        c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| Self::error(&path, e))?;
        let version: usize = c
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| Self::error(&path, e))? as usize;
        if version > MIGRATIONS.len() {
            return Err(Self::error(
                &path,
                format!(
                    "schema version {version} is newer than this vms-supervisor knows ({})",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| Self::error(&path, e))?;
            tx.execute_batch(sql).map_err(|e| Self::error(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| Self::error(&path, e))?;
            tx.commit().map_err(|e| Self::error(&path, e))?;
        }
        Ok(())
    }

    // ---- users --------------------------------------------------------

    pub fn add_user(
        &mut self,
        name: &str,
        role: Role,
        cameras: &[u32],
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        super::check_name(name).map_err(AccessError::Invalid)?;
        if self.user(name)?.is_some() {
            return Err(AccessError::Invalid(format!(
                "user {name:?} already exists"
            )));
        }
        self.conn
            .execute(
                "INSERT INTO users (name, role, hash, cameras, created, changed) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![name, role.as_str(), hash, cameras_text(cameras), ms(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, AccessError> {
        self.conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                user_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every user, by name, with the lockout in force at `now`.
    pub fn users(&self, now: DateTime<Utc>) -> Result<Vec<User>, AccessError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .map_err(|e| self.err(e))?;
        let mut users = stmt
            .query_map([], user_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        drop(stmt);
        for u in &mut users {
            u.locked_until = self.locked("user", &u.name, now)?;
        }
        Ok(users)
    }

    fn require_user(&self, name: &str) -> Result<(), AccessError> {
        match self.user(name)? {
            Some(_) => Ok(()),
            None => Err(AccessError::Invalid(format!("no user {name:?}"))),
        }
    }

    /// A new password; the user's sessions end.
    pub fn set_password(
        &mut self,
        name: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        self.require_user(name)?;
        self.conn
            .execute(
                "UPDATE users SET hash = ?2, changed = ?3 WHERE name = ?1",
                params![name, hash, ms(now)],
            )
            .map_err(|e| self.err(e))?;
        self.end_sessions(name)
    }

    /// Disables (ending every session) or enables an account.
    pub fn set_disabled(
        &mut self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        self.require_user(name)?;
        self.conn
            .execute(
                "UPDATE users SET disabled = ?2, changed = ?3 WHERE name = ?1",
                params![name, disabled, ms(now)],
            )
            .map_err(|e| self.err(e))?;
        if disabled {
            self.end_sessions(name)?;
        }
        Ok(())
    }

    pub fn remove_user(&mut self, name: &str) -> Result<(), AccessError> {
        self.require_user(name)?;
        self.end_sessions(name)?;
        self.conn
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Ends the lockout of an account and forgets its failures; whether it
    /// was locked.
    pub fn unlock(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool, AccessError> {
        self.require_user(name)?;
        let was = self.locked("user", name, now)?.is_some();
        self.conn
            .execute(
                "DELETE FROM lockouts WHERE kind = 'user' AND key = ?1",
                [name],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM login_failures WHERE kind = 'user' AND key = ?1",
                [name],
            )
            .map_err(|e| self.err(e))?;
        Ok(was)
    }

    fn end_sessions(&mut self, name: &str) -> Result<(), AccessError> {
        self.conn
            .execute("DELETE FROM sessions WHERE user = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---- logins -------------------------------------------------------

    fn locked(
        &self,
        kind: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AccessError> {
        self.conn
            .query_row(
                "SELECT until FROM lockouts WHERE kind = ?1 AND key = ?2 AND until > ?3",
                params![kind, key, ms(now)],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(from_ms))
            .map_err(|e| self.err(e))
    }

    /// Counts a failure of `key`; locks it when it reaches `max` within the
    /// window. Returns the lockout's end if this failure locked it.
    fn fail(
        &mut self,
        kind: &str,
        key: &str,
        max: u32,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Result<Option<DateTime<Utc>>, AccessError> {
        let now_ms = ms(now);
        self.conn
            .execute(
                "INSERT INTO login_failures (kind, key, at) VALUES (?1, ?2, ?3)",
                params![kind, key, now_ms],
            )
            .map_err(|e| self.err(e))?;
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM login_failures WHERE kind = ?1 AND key = ?2 AND at > ?3",
                params![kind, key, now_ms - dur_ms(s.failure_window)],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if max == 0 || n < max as i64 {
            return Ok(None);
        }
        let until = now_ms + dur_ms(s.lockout);
        self.conn
            .execute(
                "INSERT INTO lockouts (kind, key, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET until = excluded.until",
                params![kind, key, until],
            )
            .map_err(|e| self.err(e))?;
        // A lockout starts a new count: after it, the next failure does not
        // lock again at once.
        self.conn
            .execute(
                "DELETE FROM login_failures WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )
            .map_err(|e| self.err(e))?;
        Ok(Some(from_ms(until)))
    }

    /// A login attempt from `source` at `now`: checks the lockouts, the
    /// password (as long for an unknown name as for a known one), counts a
    /// failure, opens a session, and audits what happened.
    pub fn login(
        &mut self,
        name: &str,
        pass: &str,
        source: &str,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Result<LoginOutcome, AccessError> {
        let account = self.locked("user", name, now)?;
        let address = self.locked("addr", source, now)?;
        if let Some(until) = account.max(address) {
            let why = if account.is_some() {
                "account locked"
            } else {
                "address locked"
            };
            self.audit(&AuditEntry::new(now, name, source, "login_locked").detail(why))?;
            return Ok(LoginOutcome::Locked { until });
        }
        let stored: Option<(String, bool)> = self
            .conn
            .query_row(
                "SELECT hash, disabled FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let good = match &stored {
            Some((hash, disabled)) => password::verify(pass, hash) && !disabled,
            None => {
                let _ = password::verify(pass, password::decoy());
                false
            }
        };
        if !good {
            let why = match &stored {
                None => "no such user",
                Some((_, true)) => "account disabled",
                Some(_) => "wrong password",
            };
            let a = self.fail("user", name, s.max_failures, now, s)?;
            let b = self.fail("addr", source, s.max_failures_per_address, now, s)?;
            let mut detail = why.to_string();
            if let Some(until) = a.or(b) {
                detail.push_str(&format!(
                    "; {} locked until {}",
                    if a.is_some() { "account" } else { "address" },
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                ));
            }
            self.audit(&AuditEntry::new(now, name, source, "login_failed").detail(detail))?;
            return Ok(LoginOutcome::Refused);
        }
        self.conn
            .execute(
                "DELETE FROM login_failures WHERE kind = 'user' AND key = ?1",
                [name],
            )
            .map_err(|e| self.err(e))?;
        let token = crate::token::random().map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT INTO sessions (token_hash, media_hash, user, source, created, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![
                    sha256_hex(&token),
                    sha256_hex(&derive("media", &token)),
                    name,
                    source,
                    ms(now)
                ],
            )
            .map_err(|e| self.err(e))?;
        self.audit(&AuditEntry::new(now, name, source, "login"))?;
        let session = self
            .find("token_hash", &sha256_hex(&token), now, s, false)?
            .ok_or_else(|| self.err("the new session is gone"))?;
        Ok(LoginOutcome::Ok(NewSession { token, session }))
    }

    /// The session of `column` = `hash` if it is alive at `now`, its idle
    /// clock restarted when `touch`. An expired one is deleted.
    fn find(
        &mut self,
        column: &str,
        hash: &str,
        now: DateTime<Utc>,
        s: &Settings,
        touch: bool,
    ) -> Result<Option<Session>, AccessError> {
        let row: Option<(String, i64, i64)> = self
            .conn
            .query_row(
                &format!("SELECT user, created, last_seen FROM sessions WHERE {column} = ?1"),
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((name, created, last_seen)) = row else {
            return Ok(None);
        };
        let now_ms = ms(now);
        let expires = created + dur_ms(s.session_max);
        let idle_until = last_seen + dur_ms(s.session_idle);
        let user = self.user(&name)?;
        let alive = now_ms < expires && now_ms < idle_until;
        let Some(user) = user.filter(|u| alive && !u.disabled) else {
            self.conn
                .execute(&format!("DELETE FROM sessions WHERE {column} = ?1"), [hash])
                .map_err(|e| self.err(e))?;
            return Ok(None);
        };
        let last_seen = if touch {
            self.conn
                .execute(
                    &format!("UPDATE sessions SET last_seen = ?2 WHERE {column} = ?1"),
                    params![hash, now_ms],
                )
                .map_err(|e| self.err(e))?;
            now_ms
        } else {
            last_seen
        };
        Ok(Some(Session {
            user,
            created: from_ms(created),
            idle_until: from_ms((last_seen + dur_ms(s.session_idle)).min(expires)),
            expires: from_ms(expires),
        }))
    }

    /// The session of a cookie, if alive; using it restarts its idle clock.
    pub fn session(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Result<Option<Session>, AccessError> {
        self.find("token_hash", &sha256_hex(token), now, s, true)
    }

    /// The session of a media credential ([`derive`]`("media", cookie)`),
    /// if alive; watching counts as using it.
    pub fn media_session(
        &mut self,
        media_token: &str,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Result<Option<Session>, AccessError> {
        self.find("media_hash", &sha256_hex(media_token), now, s, true)
    }

    /// Ends the session of a cookie; whether there was one.
    pub fn logout(&mut self, token: &str) -> Result<bool, AccessError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [sha256_hex(token)],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    // ---- audit --------------------------------------------------------

    /// Appends a row; its id.
    pub fn audit(&mut self, e: &AuditEntry) -> Result<i64, AccessError> {
        insert_audit(&self.conn, e).map_err(|e| self.err(e))
    }

    // ---- live views -----------------------------------------------------

    /// A reader MediaMTX is about to serve (its session id `reader`): the
    /// `live_view` row of `start` (its actor, source and camera), once per
    /// reader. False when the reader was already on record (MediaMTX asks
    /// again for the same session).
    pub fn open_view(
        &mut self,
        reader: &str,
        start: &AuditEntry,
        protocol: &str,
    ) -> Result<bool, AccessError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Self::error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM live_views WHERE reader = ?1)",
                [reader],
                |r| r.get(0),
            )
            .map_err(err)?;
        if known {
            return Ok(false);
        }
        let audit_id = insert_audit(&tx, start).map_err(err)?;
        tx.execute(
            "INSERT INTO live_views (reader, audit_id, actor, source, camera, protocol, started)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                reader,
                audit_id,
                start.actor,
                start.source,
                start.camera.unwrap_or(0),
                protocol,
                ms(start.at)
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    /// Ends the views whose readers are gone: `present` is every reader
    /// MediaMTX lists now (`None`: MediaMTX is not running, so none is).
    /// A view ends when its reader, once listed, is no longer, or was never
    /// listed within [`VIEW_START_GRACE`]; each end is a `live_view_end`
    /// row naming the `live_view` row it closes and how long it lasted.
    /// The ended rows, and how many views are being served now.
    pub fn close_views(
        &mut self,
        now: DateTime<Utc>,
        present: Option<&HashSet<String>>,
    ) -> Result<(Vec<AuditEntry>, usize), AccessError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Self::error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let open: Vec<OpenView> = {
            let mut stmt = tx
                .prepare(
                    "SELECT reader, audit_id, actor, source, camera, protocol, started, seen
                     FROM live_views",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(OpenView {
                        reader: r.get(0)?,
                        audit_id: r.get(1)?,
                        actor: r.get(2)?,
                        source: r.get(3)?,
                        camera: r.get(4)?,
                        protocol: r.get(5)?,
                        started: r.get(6)?,
                        seen: r.get(7)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        let mut ended = Vec::new();
        let mut watching = 0;
        for v in open {
            let OpenView {
                reader,
                audit_id,
                actor,
                source,
                camera,
                protocol,
                started,
                seen,
            } = v;
            let listed = present.is_some_and(|p| p.contains(&reader));
            if listed {
                watching += 1;
                if !seen {
                    tx.execute(
                        "UPDATE live_views SET seen = 1 WHERE reader = ?1",
                        [&reader],
                    )
                    .map_err(err)?;
                }
                continue;
            }
            let age = (ms(now) - started).max(0);
            let young = present.is_some() && !seen && age < VIEW_START_GRACE.as_millis() as i64;
            if young {
                continue;
            }
            let detail = if seen {
                format!("{protocol}, {} s, ends view {audit_id}", age / 1000)
            } else {
                format!("{protocol}, never served, ends view {audit_id}")
            };
            let e = AuditEntry::new(now, &actor, &source, "live_view_end")
                .camera(camera)
                .detail(detail);
            insert_audit(&tx, &e).map_err(err)?;
            tx.execute("DELETE FROM live_views WHERE reader = ?1", [&reader])
                .map_err(err)?;
            ended.push(e);
        }
        tx.commit().map_err(err)?;
        Ok((ended, watching))
    }

    /// Rows matching `f`, newest first.
    pub fn audit_rows(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, AccessError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, at, actor, source, action, camera, detail FROM audit
                 WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR camera = ?2)
                   AND (?3 IS NULL OR at >= ?3) AND (?5 IS NULL OR action = ?5)
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    f.actor,
                    f.camera,
                    f.since.map(ms),
                    f.limit.min(i64::MAX as usize) as i64,
                    f.action
                ],
                |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: from_ms(r.get(1)?),
                        actor: r.get(2)?,
                        source: r.get(3)?,
                        action: r.get(4)?,
                        camera: r.get(5)?,
                        detail: r.get(6)?,
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Retention: audit rows older than `audit_retention_days`, sessions
    /// past their end, failures and lockouts that no longer count. The
    /// number of audit rows deleted.
    pub fn prune(&mut self, now: DateTime<Utc>, s: &Settings) -> Result<usize, AccessError> {
        let now_ms = ms(now);
        let keep_from = now_ms - i64::from(s.audit_retention_days) * 86_400_000;
        let n = self
            .conn
            .execute("DELETE FROM audit WHERE at < ?1", [keep_from])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM sessions WHERE created <= ?1 OR last_seen <= ?2",
                params![
                    now_ms - dur_ms(s.session_max),
                    now_ms - dur_ms(s.session_idle)
                ],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM login_failures WHERE at <= ?1",
                [now_ms - dur_ms(s.failure_window)],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("DELETE FROM lockouts WHERE until <= ?1", [now_ms])
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// For tests: an UPDATE of the audit trail, which the trigger refuses.
    #[cfg(test)]
    fn tamper(&self) -> rusqlite::Result<usize> {
        self.conn
            .execute("UPDATE audit SET actor = 'someone else'", [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-11-29T10:00:00Z".parse().unwrap()
    }

    fn secs(n: u64) -> chrono::Duration {
        chrono::Duration::seconds(n as i64)
    }

    fn settings() -> Settings {
        Settings {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            max_failures: 5,
            max_failures_per_address: 20,
            failure_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            audit_retention_days: 1826,
        }
    }

    fn store_with(name: &str, role: Role, cameras: &[u32], pw: &str) -> Store {
        let mut s = Store::open_in_memory().unwrap();
        s.add_user(name, role, cameras, &password::hash(pw).unwrap(), t0())
            .unwrap();
        s
    }

    #[test]
    fn the_sixth_attempt_after_five_failures_is_refused_even_with_the_right_password() {
        let s = settings();
        let mut st = store_with("ana", Role::Viewer, &[], "the right password");
        for i in 0..5 {
            let r = st
                .login("ana", "wrong password!", "10.0.0.9", t0() + secs(i), &s)
                .unwrap();
            assert!(matches!(r, LoginOutcome::Refused), "attempt {i}: {r:?}");
        }
        let at = t0() + secs(10);
        match st
            .login("ana", "the right password", "10.0.0.9", at, &s)
            .unwrap()
        {
            LoginOutcome::Locked { until } => assert_eq!(until, t0() + secs(4) + secs(900)),
            other => panic!("{other:?}"),
        }
        // Another address is refused too: the account is locked.
        assert!(matches!(
            st.login("ana", "the right password", "10.0.0.10", at, &s)
                .unwrap(),
            LoginOutcome::Locked { .. }
        ));
        let audit = st
            .audit_rows(&AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        let actions: Vec<&str> = audit.iter().rev().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "login_failed",
                "login_failed",
                "login_failed",
                "login_failed",
                "login_failed",
                "login_locked",
                "login_locked"
            ]
        );
        assert!(
            audit[2].detail.contains("account locked until"),
            "{audit:?}"
        );
        assert_eq!(audit[0].source, "10.0.0.10");
        // The lockout ends as configured.
        let after = t0() + secs(4) + secs(900);
        assert!(matches!(
            st.login("ana", "the right password", "10.0.0.9", after, &s)
                .unwrap(),
            LoginOutcome::Ok(_)
        ));
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_unlock_clears_the_lockout() {
        let s = settings();
        let mut st = store_with("ana", Role::Viewer, &[], "the right password");
        for i in 0..4 {
            st.login("ana", "nope nope nope", "h", t0() + secs(i * 600), &s)
                .unwrap();
        }
        // 4 failures, but spread over 30 minutes: at most 2 in any window.
        let r = st
            .login("ana", "nope nope nope", "h", t0() + secs(2400), &s)
            .unwrap();
        assert!(matches!(r, LoginOutcome::Refused));
        assert!(st.users(t0() + secs(2400)).unwrap()[0]
            .locked_until
            .is_none());
        for i in 0..5 {
            st.login("ana", "nope nope nope", "h", t0() + secs(3000 + i), &s)
                .unwrap();
        }
        let now = t0() + secs(3010);
        assert!(st.users(now).unwrap()[0].locked_until.is_some());
        assert!(st.unlock("ana", now).unwrap());
        assert!(matches!(
            st.login("ana", "the right password", "h2", now, &s)
                .unwrap(),
            LoginOutcome::Ok(_)
        ));
    }

    #[test]
    fn an_address_guessing_many_accounts_is_locked() {
        let mut s = settings();
        s.max_failures_per_address = 3;
        let mut st = store_with("ana", Role::Viewer, &[], "the right password");
        for name in ["a", "b", "c"] {
            st.login(name, "xxxxxxxxxxxx", "10.1.1.1", t0(), &s)
                .unwrap();
        }
        assert!(matches!(
            st.login("ana", "the right password", "10.1.1.1", t0(), &s)
                .unwrap(),
            LoginOutcome::Locked { .. }
        ));
        assert!(matches!(
            st.login("ana", "the right password", "10.1.1.2", t0(), &s)
                .unwrap(),
            LoginOutcome::Ok(_)
        ));
    }

    #[test]
    fn a_session_ends_when_idle_or_old_and_with_its_user() {
        let s = settings();
        let mut st = store_with("ana", Role::Operator, &[2], "the right password");
        let LoginOutcome::Ok(new) = st
            .login("ana", "the right password", "h", t0(), &s)
            .unwrap()
        else {
            panic!()
        };
        let media = derive("media", &new.token);
        assert_eq!(new.session.user.cameras, vec![2]);
        // Used every 20 minutes, it lives until the absolute limit.
        let mut at = t0();
        for _ in 0..35 {
            at += secs(20 * 60);
            assert!(st.session(&new.token, at, &s).unwrap().is_some(), "{at}");
        }
        at += secs(20 * 60);
        assert!(at >= t0() + secs(12 * 3600));
        assert!(st.session(&new.token, at, &s).unwrap().is_none());
        // Idle for 31 minutes: gone.
        let LoginOutcome::Ok(new) = st.login("ana", "the right password", "h", at, &s).unwrap()
        else {
            panic!()
        };
        assert!(
            st.media_session(&media, at, &s).unwrap().is_none(),
            "old media token"
        );
        assert!(st
            .media_session(&derive("media", &new.token), at + secs(60), &s)
            .unwrap()
            .is_some());
        assert!(st
            .session(&new.token, at + secs(60 + 31 * 60), &s)
            .unwrap()
            .is_none());
        // Disabling the user ends its sessions.
        let LoginOutcome::Ok(new) = st.login("ana", "the right password", "h", at, &s).unwrap()
        else {
            panic!()
        };
        st.set_disabled("ana", true, at).unwrap();
        assert!(st.session(&new.token, at, &s).unwrap().is_none());
        assert!(matches!(
            st.login("ana", "the right password", "h", at, &s).unwrap(),
            LoginOutcome::Refused
        ));
    }

    #[test]
    fn the_audit_trail_refuses_updates_and_retention_prunes_it() {
        let s = settings();
        let mut st = Store::open_in_memory().unwrap();
        st.audit(&AuditEntry::new(t0(), "ana", "h", "live_view").camera(2))
            .unwrap();
        let later = t0() + chrono::Duration::days(1826);
        st.audit(
            &AuditEntry::new(later, "ana", "h", "playback")
                .camera(1)
                .detail("x"),
        )
        .unwrap();
        assert!(st.tamper().is_err(), "an UPDATE of the audit trail");
        let f = AuditFilter {
            camera: Some(2),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(st.audit_rows(&f).unwrap().len(), 1);
        assert_eq!(st.prune(later + secs(1), &s).unwrap(), 1);
        let all = st
            .audit_rows(&AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].action, "playback");
    }

    #[test]
    fn user_changes_need_an_existing_user_and_a_free_name() {
        let mut st = store_with("ana", Role::Admin, &[], "the right password");
        let h = password::hash("another password").unwrap();
        assert!(st.add_user("ana", Role::Viewer, &[], &h, t0()).is_err());
        assert!(st
            .add_user("bad name", Role::Viewer, &[], &h, t0())
            .is_err());
        assert!(st.set_password("bob", &h, t0()).is_err());
        st.add_user("bob", Role::Viewer, &[1, 3], &h, t0()).unwrap();
        let users = st.users(t0()).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].cameras, vec![1, 3]);
        assert!(users[1].may_see(3) && !users[1].may_see(2));
        st.remove_user("bob").unwrap();
        assert!(st.user("bob").unwrap().is_none());
    }

    #[test]
    fn a_live_view_ends_when_its_reader_leaves_or_never_comes() {
        let mut st = Store::open_in_memory().unwrap();
        let start = |at, who: &str, camera| {
            AuditEntry::new(at, who, "192.0.2.7", "live_view")
                .camera(camera)
                .detail("webrtc")
        };
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        assert!(st
            .open_view("r1", &start(t0(), "ana", 2), "webrtc")
            .unwrap());
        // MediaMTX asks again for the same session: one row, not two.
        assert!(!st
            .open_view("r1", &start(t0() + secs(1), "ana", 2), "webrtc")
            .unwrap());
        assert!(st.open_view("r2", &start(t0(), "bob", 1), "hls").unwrap());
        // r1 plays; r2 is not listed yet but is young: nothing ends.
        let (ended, watching) = st.close_views(t0() + secs(2), Some(&set(&["r1"]))).unwrap();
        assert!(ended.is_empty());
        assert_eq!(watching, 1);
        // r2 never came within the grace: ended as never served.
        let grace = VIEW_START_GRACE.as_secs();
        let (ended, _) = st
            .close_views(t0() + secs(grace), Some(&set(&["r1"])))
            .unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].actor.as_str(), ended[0].camera), ("bob", Some(1)));
        assert!(
            ended[0].detail.starts_with("hls, never served, ends view "),
            "{}",
            ended[0].detail
        );
        // r1 leaves after 192 s: its end names the row it closes and the time.
        let (ended, watching) = st.close_views(t0() + secs(192), Some(&set(&[]))).unwrap();
        assert_eq!((ended.len(), watching), (1, 0));
        let all = st
            .audit_rows(&AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let opened = all
            .iter()
            .find(|r| r.action == "live_view" && r.actor == "ana")
            .unwrap();
        assert_eq!(
            ended[0].detail,
            format!("webrtc, 192 s, ends view {}", opened.id)
        );
        assert_eq!(ended[0].at, t0() + secs(192));
        assert_eq!(all.iter().filter(|r| r.action == "live_view").count(), 2);
        assert_eq!(
            all.iter().filter(|r| r.action == "live_view_end").count(),
            2
        );
        // Nothing left open: a later poll ends nothing twice.
        assert!(st.close_views(t0() + secs(300), None).unwrap().0.is_empty());
        // MediaMTX stopped (None): a view ends at once, young or not.
        assert!(st
            .open_view("r3", &start(t0() + secs(400), "ana", 2), "hls")
            .unwrap());
        assert_eq!(st.close_views(t0() + secs(401), None).unwrap().0.len(), 1);
    }
}
