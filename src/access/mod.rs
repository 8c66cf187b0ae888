//! Who may watch what, and the record of who did: people with roles, their
//! sessions, the lockout of password guessing, and the audit trail. One
//! SQLite database, `access.db` in the state directory ([`store`]), owned
//! by one thread in the daemon ([`AccessHandle`]) and opened directly by
//! the `user` and `audit` commands (so the first admin can be made before
//! the daemon ever ran, and an admin locked out of the dashboard can still
//! be unlocked by root on the box).
//!
//! Roles, each including the one before:
//! * `viewer`: live view of the cameras of its list (empty list = all);
//! * `operator`: + playback, acknowledge alerts, reset a camera, silences;
//! * `admin`: + export evidence, manage users, read the audit trail.
//!
//! The machine token (`api.token_file`) is none of them: it may operate and
//! administer through the API, but never read video (no media credential,
//! no playback).

pub mod password;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use store::{AuditEntry, AuditFilter, LoginOutcome, Session, Store, User};

use crate::config::Config;
use crate::sqlite::Owner;

/// The database file in `[state] dir`.
pub const DB_FILE: &str = "access.db";

/// The path of the access database of `config`.
pub fn db_path(config: &Config) -> std::path::PathBuf {
    config.state.dir.join(DB_FILE)
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("access database {path}: {message}")]
    Database { path: String, message: String },
    /// A request that cannot be done (no such user, a name taken...).
    #[error("{0}")]
    Invalid(String),
    #[error("the access database thread has stopped")]
    Stopped,
}

impl From<crate::sqlite::Stopped> for AccessError {
    fn from(_: crate::sqlite::Stopped) -> Self {
        AccessError::Stopped
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("{s:?} is not a role: viewer, operator or admin")),
        }
    }

    /// Whether this role may do `what`.
    pub fn allows(self, what: Permission) -> bool {
        self >= what.least()
    }
}

/// What a request asks to do, from the API's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Status, cameras, alerts, events: what the dashboard shows.
    Read,
    /// Live video of a camera.
    Live,
    /// Recorded video.
    Playback,
    /// Acknowledge alerts, reset a camera, silences.
    Operate,
    /// Export evidence, manage users, read the audit trail.
    Administer,
}

impl Permission {
    /// The least role that has it.
    pub fn least(self) -> Role {
        match self {
            Permission::Read | Permission::Live => Role::Viewer,
            Permission::Playback | Permission::Operate => Role::Operator,
            Permission::Administer => Role::Admin,
        }
    }
}

/// `[access]`: sessions, lockout and the audit trail's retention.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after the login, used or not.
    pub session_max: Duration,
    /// This many failed logins of one account within `failure_window` lock
    /// it for `lockout`.
    pub max_failures: u32,
    /// The same, per source address (a whole office may share one).
    pub max_failures_per_address: u32,
    pub failure_window: Duration,
    pub lockout: Duration,
    /// Audit rows older than this many days are deleted.
    pub audit_retention_days: u32,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let a = &config.access;
        Settings {
            session_idle: a.session_idle.0,
            session_max: a.session_max.0,
            max_failures: a.max_failures,
            max_failures_per_address: a.max_failures_per_address,
            failure_window: a.failure_window.0,
            lockout: a.lockout.0,
            audit_retention_days: a.audit_retention_days,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&Config::default())
    }
}

/// The daemon's handle on the access database: every call runs on its
/// owner thread.
#[derive(Clone)]
pub struct AccessHandle {
    owner: Owner<Store>,
    pub settings: Arc<Settings>,
}

impl AccessHandle {
    pub fn start(store: Store, settings: Settings) -> AccessHandle {
        AccessHandle {
            owner: Owner::start("vms-access-db", store),
            settings: Arc::new(settings),
        }
    }

    /// Runs `f` on the database thread.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store, &Settings) -> R + Send + 'static,
    ) -> Result<R, AccessError> {
        let settings = self.settings.clone();
        Ok(self.owner.call(move |s| f(s, &settings)).await?)
    }

    /// Appends an audit row; a failure is logged, never fatal to the
    /// action that was audited (it already happened).
    pub async fn audit(&self, entry: AuditEntry) {
        let r = self.call(move |s, _| s.audit(&entry)).await;
        if let Err(e) | Ok(Err(e)) = r.map(|r| r.map(|_| ())) {
            tracing::error!(error = %e, "cannot write the audit trail");
        }
    }
}

/// Milliseconds since the epoch, the unit of every time in the database.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A user or camera name as it may appear in the database: 1..=64 of
/// letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a user name: 1 to 64 letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_the_one_before() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, true, false, false, false]),
            (Role::Operator, [true, true, true, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Live, Playback, Operate, Administer].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role:?}");
        }
        assert_eq!(Role::parse("operator"), Ok(Role::Operator));
        assert!(Role::parse("root").is_err());
        assert!(check_name("maria.silva").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}
