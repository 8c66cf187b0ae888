//! The alert pipeline (docs/design.md §5, "Sistema de Alertas"): every alert is a
//! row in SQLite before it is a message, and a network outage, a dead SMTP
//! server or a killed daemon delays an alert but never loses it.
//!
//! # Flow
//!
//! ```text
//! producers ── AlertSink ──▶ pipeline task ──▶ log line (tracing, journald fields)
//! webhook   ── handle.submit ─┘     │
//!                                    ▼
//!                       DB owner thread (one SQLite connection)
//!                       alerts · incidents · silences · outbox
//!                                    │  Notify (wakes at once)
//!                    ┌───────────────┴───────────────┐
//!              telegram worker                  e-mail worker
//!         (due rows, retry with backoff,   (lettre SMTP, same retry)
//!          429 retry_after, ack on ok:true)
//! ```
//!
//! * [`store`]: the schema, migrations and every query, synchronous and
//!   clock-free (the caller passes `now`), so the lifecycle is unit-tested
//!   with a fake clock.
//! * [`lifecycle`]: dedup and routing as a pure decision.
//! * [`text`]: the Telegram text of docs/design.md §5.3, the e-mail, the dashboard message,
//!   pt-BR or English.
//! * [`outbox`]: the delivery workers, Telegram and SMTP, and [`RetryPolicy`].
//! * [`webhook`]: Alertmanager's webhook payload (version 4) to events.
//!
//! The HTTP routes are in [`crate::http::alerts`]; the CLI in
//! [`crate::cli::alerts`].
//!
//! # Guarantees
//!
//! * An event is logged, then stored (alert row, incident, outbox rows in one
//!   transaction) before any message exists. Workers only send rows that are
//!   committed; a killed daemon sends them after its restart.
//! * A row is acknowledged only after the channel confirmed it and is never
//!   sent again; a crash between the send and the acknowledgement can repeat
//!   one message (at-least-once).
//! * If the database fails at runtime, events are still logged and Critical
//!   ones are still pushed, from memory (deduplicated by key in memory, not
//!   durable). If it cannot be opened at start, [`open`] fails with a clear
//!   [`AlertsError`], and the daemon runs the same pipeline on a database in
//!   memory ([`open_in_memory`]) and raises a Critical alert about it
//!   ([`store_unusable`]).
//!
//! # Routing (docs/design.md §5.1)
//!
//! Info: log. Warning: log + dashboard (stored, `GET /api/alerts`).
//! Critical: log + dashboard + Telegram + e-mail. One open alert per key;
//! a reminder after `alerts.reminder_after` while a Critical alert stays open;
//! "RESOLVIDO" when a Resolved event closes an alert someone was paged for;
//! a silenced camera is stored and logged, not pushed. See [`lifecycle`].
//!
//! # Log fields
//!
//! One `tracing` event per alert (target `vms_supervisor::alerts`) with the
//! fields of docs/design.md §5.5: `camera_id`, `camera_name`, `issue`, `recovery_attempts`,
//! `last_recording`, plus `alert_level` (`INFO`/`WARNING`/`CRITICAL`, the
//! `level` of docs/design.md §5.5; the tracing level is INFO/WARN/ERROR), `alert_timestamp`,
//! `key`, `phase`, `action`, `alert_id`, `silenced`, `details`. Under
//! journald they are `CAMERA_ID=5` etc. when the journald layer has no field
//! prefix. [`log_record`] gives the exact JSON object of docs/design.md §5.5.
//!
//! # Starting it from the daemon
//!
//! ```ignore
//! let (sink, rx) = AlertSink::channel(256);
//! let alerts = match alerts::open(&config) {
//!     Ok(pipeline) => pipeline.start(rx, shutdown.clone()),
//!     Err(e) => open_in_memory(&config, &e)?.start(rx, shutdown.clone()),
//! };
//! ```

pub mod lifecycle;
pub mod outbox;
pub mod store;
pub mod text;
pub mod webhook;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Language, Secret, SmtpSecurity};
use crate::events::{AlertEvent, Issue, Phase, Severity};

pub use lifecycle::Outcome;
pub use outbox::RetryPolicy;
pub use store::{
    AlertRow, ChannelStats, Filter, IncidentRow, Ingested, OpenCounts, OutboxRow, Silence, Store,
};

/// The database file inside `state.dir`.
pub const DB_FILE: &str = "vms.db";

/// Every [`Issue`], for parsing stored names back.
pub const ALL_ISSUES: &[Issue] = &[
    Issue::StreamDown,
    Issue::StreamRecovered,
    Issue::RecordingStalled,
    Issue::RecordingStopped,
    Issue::RecordingRecovered,
    Issue::CameraOffline,
    Issue::MediamtxDown,
    Issue::MediamtxRestartStorm,
    Issue::MediamtxMemory,
    Issue::MediamtxUpgraded,
    Issue::ConfigInvalid,
    Issue::DiskWarning,
    Issue::DiskCritical,
    Issue::AlertStoreUnusable,
    Issue::AlertChannelFailed,
    Issue::DiskFull,
    Issue::FootageEvicted,
    Issue::DiskFloorUnrestorable,
    Issue::RetentionBlockedByBackup,
    Issue::RetentionShort,
    Issue::BackupLag,
    Issue::BackupRefused,
    Issue::External,
];

/// Rows that failed permanently within this window are retried once more
/// after a restart or a config reload (the cause may have been fixed).
pub const REQUEUE_FAILED_WITHIN: Duration = Duration::from_secs(86_400);

/// Alert history (not incidents) older than this is pruned.
pub const HISTORY_KEEP: Duration = Duration::from_secs(400 * 86_400);

/// Where the alert database of `config` lives.
pub fn db_path(config: &Config) -> PathBuf {
    config.state.dir.join(DB_FILE)
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The database cannot be opened, migrated or written. The message says
    /// what to do.
    #[error("alert database {}: {message}", path.display())]
    Database { path: PathBuf, message: String },
    /// Another process holds a lock on the database longer than the busy
    /// timeout: the write is retried later, nothing is lost.
    #[error("alert database {} is locked by another process: {message}", path.display())]
    Busy { path: PathBuf, message: String },
    /// The pipeline was shut down.
    #[error("the alert pipeline has stopped")]
    Stopped,
}

impl From<crate::sqlite::Stopped> for AlertsError {
    fn from(_: crate::sqlite::Stopped) -> AlertsError {
        AlertsError::Stopped
    }
}

impl AlertsError {
    pub(crate) fn database(path: &Path, message: String) -> AlertsError {
        let hint = if message.contains("not a database") || message.contains("malformed") {
            " (the file is damaged or is not SQLite: stop the daemon, move the file aside and start again; a new empty history is created)"
        } else if message.contains("unable to open")
            || message.contains("readonly")
            || message.contains("Permission denied")
        {
            " (check that the directory and the file exist and are writable by the daemon's user)"
        } else {
            ""
        };
        AlertsError::Database {
            path: path.to_path_buf(),
            message: format!("{message}{hint}"),
        }
    }
}

/// A push channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Telegram,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Telegram, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "telegram" => Some(Channel::Telegram),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Channel::Telegram => 0,
            Channel::Email => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub api_base: String,
    pub chat_id: String,
    pub token: Secret,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

/// What the pipeline takes from the config (replaced on reload).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub language: Language,
    pub tz: Tz,
    pub box_name: String,
    pub site: String,
    /// `None`: no reminders (`alerts.reminder_after = "0s"`).
    pub reminder_after: Option<Duration>,
    /// The enabled push channels.
    pub channels: Vec<Channel>,
    pub telegram: Option<TelegramSettings>,
    pub email: Option<EmailSettings>,
    pub camera_names: HashMap<u32, String>,
}

impl AlertSettings {
    pub fn from_config(config: &Config) -> AlertSettings {
        let a = &config.alerts;
        let telegram = match (&config.secrets.telegram_bot_token, a.telegram.enabled) {
            (Some(token), true) => Some(TelegramSettings {
                api_base: a.telegram.api_base.trim_end_matches('/').to_string(),
                chat_id: a.telegram.chat_id.clone(),
                token: token.clone(),
            }),
            _ => None,
        };
        let email = a.email.enabled.then(|| EmailSettings {
            host: a.email.smtp_host.clone(),
            port: a.email.smtp_port,
            security: a.email.security,
            username: a.email.username.clone(),
            password: config.secrets.smtp_password.clone(),
            from: a.email.from.clone(),
            to: a.email.to.clone(),
        });
        let mut channels = Vec::new();
        if telegram.is_some() {
            channels.push(Channel::Telegram);
        }
        if email.is_some() {
            channels.push(Channel::Email);
        }
        AlertSettings {
            language: config.general.language,
            tz: config.timezone(),
            box_name: config.general.box_name.clone(),
            site: config.general.site.clone(),
            reminder_after: Some(a.reminder_after.get()).filter(|d| !d.is_zero()),
            channels,
            telegram,
            email,
            camera_names: config
                .cameras
                .iter()
                .map(|c| (c.id, c.name.clone()))
                .collect(),
        }
    }

    pub fn style(&self) -> text::Style<'_> {
        text::Style {
            language: self.language,
            tz: self.tz,
            box_name: &self.box_name,
            site: &self.site,
        }
    }
}

/// Tuning for tests and the daemon.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub retry: RetryPolicy,
    /// How often reminders are checked and the metrics refreshed.
    pub tick: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            retry: RetryPolicy::default(),
            tick: Duration::from_secs(10),
        }
    }
}

/// The alert pipeline with its database open, not started yet.
pub struct Pipeline {
    store: Store,
    settings: AlertSettings,
    options: PipelineOptions,
    /// Why the database file could not be used ([`open_in_memory`]).
    store_error: Option<String>,
}

/// Opens `<state.dir>/vms.db` (creating the directory and the file, mode
/// 0640), migrates it, and prepares the pipeline. Fails with a clear
/// [`AlertsError::Database`] on a corrupt or unwritable database; the daemon
/// then falls back to [`open_in_memory`].
pub fn open(config: &Config) -> Result<Pipeline, AlertsError> {
    open_at(&db_path(config), AlertSettings::from_config(config))
}

/// The daemon's fallback when [`open`] fails: the same pipeline on a
/// database in memory, so that alerts are still deduplicated, shown on the
/// dashboard and pushed to Telegram and e-mail; only the history does not
/// survive a restart. The damaged file is left as it is, for whoever repairs
/// it. `error` is reported by [`AlertsHandle::store_error`] and by
/// [`store_unusable`], the Critical alert the daemon raises about it.
pub fn open_in_memory(config: &Config, error: &AlertsError) -> Result<Pipeline, AlertsError> {
    Ok(Pipeline {
        store: Store::open_in_memory()?,
        settings: AlertSettings::from_config(config),
        options: PipelineOptions::default(),
        store_error: Some(error.to_string()),
    })
}

/// The Critical alert for an alert database that cannot be used: it pages,
/// because until it is fixed a restart forgets every open alert.
pub fn store_unusable(error: &str, at: DateTime<Utc>) -> AlertEvent {
    AlertEvent::system(
        at,
        Severity::Critical,
        Phase::Firing,
        "alerts:store",
        Issue::AlertStoreUnusable,
        error,
    )
}

/// [`open`] with an explicit database path and settings.
pub fn open_at(path: &Path, settings: AlertSettings) -> Result<Pipeline, AlertsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            AlertsError::database(path, format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    Ok(Pipeline {
        store: Store::open(path)?,
        settings,
        options: PipelineOptions::default(),
        store_error: None,
    })
}

/// Opens the database and starts the pipeline: [`open`] then
/// [`Pipeline::start`]. Needs a tokio runtime.
pub fn spawn(
    config: &Config,
    rx: mpsc::Receiver<AlertEvent>,
    shutdown: CancellationToken,
) -> Result<AlertsHandle, AlertsError> {
    Ok(open(config)?.start(rx, shutdown))
}

impl Pipeline {
    pub fn with_options(mut self, options: PipelineOptions) -> Pipeline {
        self.options = options;
        self
    }

    /// Starts the DB owner thread, the pipeline task that consumes `rx`, and
    /// one delivery worker per channel. Pending outbox rows from a previous
    /// run are delivered at once. Everything stops when `shutdown` is
    /// cancelled (events still queued in `rx` are stored first).
    pub fn start(
        self,
        rx: mpsc::Receiver<AlertEvent>,
        shutdown: CancellationToken,
    ) -> AlertsHandle {
        let tracker = TaskTracker::new();
        requeue_failed(&self.store);
        let db = crate::sqlite::Owner::start("alerts-db", self.store);
        let handle = AlertsHandle {
            inner: Arc::new(Inner {
                db,
                settings: RwLock::new(Arc::new(self.settings)),
                wake: [Arc::new(Notify::new()), Arc::new(Notify::new())],
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                retry: self.options.retry.clone(),
                unstored: Default::default(),
                store_error: RwLock::new(self.store_error),
                channel_errors: Default::default(),
            }),
        };
        for channel in Channel::ALL {
            if handle.settings().channels.contains(&channel) {
                metrics::gauge!("vms_alert_channel_up", "channel" => channel.as_str()).set(1.0);
            }
            tracker.spawn(outbox::worker(
                handle.clone(),
                channel,
                self.options.retry.clone(),
                shutdown.clone(),
            ));
        }
        tracker.spawn(run(handle.clone(), rx, shutdown, self.options.tick));
        tracker.close();
        handle
    }
}

struct Inner {
    db: crate::sqlite::Owner<Store>,
    settings: RwLock<Arc<AlertSettings>>,
    /// One per channel: wakes its worker when a row is queued.
    wake: [Arc<Notify>; 2],
    tracker: TaskTracker,
    shutdown: CancellationToken,
    retry: RetryPolicy,
    /// Alerts open while the database failed (see [`AlertsHandle::submit`]),
    /// by key: the opening event and whether it was paged, for the same
    /// dedup and "resolved" decisions as the store's.
    unstored: std::sync::Mutex<HashMap<String, (AlertEvent, bool)>>,
    /// Set when the history lives in memory only (see [`open_in_memory`]),
    /// at start or since the file failed.
    store_error: RwLock<Option<String>>,
    /// Why a channel refuses every message, while it does.
    channel_errors: [RwLock<Option<String>>; 2],
}

/// The running pipeline: cheap to clone, for the API, the health document,
/// the metrics and the webhook.
#[derive(Clone)]
pub struct AlertsHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AlertsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertsHandle")
    }
}

impl AlertsHandle {
    /// Why the alert database file is not used, when the history lives in
    /// memory only ([`open_in_memory`]); `None` when it is durable.
    pub fn store_error(&self) -> Option<String> {
        self.inner
            .store_error
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn settings(&self) -> Arc<AlertSettings> {
        self.inner
            .settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Applies a reloaded config (language, time zone, channels, camera
    /// names, token, password). Rows already queued keep the text they were
    /// rendered with; rows that failed permanently in the last day are
    /// retried with the new settings.
    pub fn reload(&self, config: &Config) {
        let new = Arc::new(AlertSettings::from_config(config));
        match self.inner.settings.write() {
            Ok(mut s) => *s = new,
            Err(p) => *p.into_inner() = new,
        }
        let handle = self.clone();
        self.inner.tracker.spawn(async move {
            let _ = handle
                .call(|st| {
                    requeue_failed(st);
                    Ok(())
                })
                .await;
            for w in &handle.inner.wake {
                w.notify_one();
            }
        });
    }

    /// Why `channel` refuses every message, while it does.
    pub fn channel_error(&self, channel: Channel) -> Option<String> {
        self.inner.channel_errors[channel.index()]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every broken channel and why.
    pub fn channel_errors(&self) -> Vec<(Channel, String)> {
        Channel::ALL
            .into_iter()
            .filter_map(|c| self.channel_error(c).map(|e| (c, e)))
            .collect()
    }

    /// A channel refuses every message: one Critical alert (the other
    /// channel delivers it), `vms_alert_channel_up{channel}` 0.
    pub(crate) async fn channel_broken(&self, channel: Channel, error: &str) {
        let first = self.inner.channel_errors[channel.index()]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(error.to_string())
            .is_none();
        metrics::gauge!("vms_alert_channel_up", "channel" => channel.as_str()).set(0.0);
        if first {
            let event = AlertEvent::system(
                Utc::now(),
                Severity::Critical,
                Phase::Firing,
                format!("alerts:channel:{}", channel.as_str()),
                Issue::AlertChannelFailed,
                format!("{}: {error}", channel.as_str()),
            );
            let _ = self.submit(event).await;
        }
    }

    /// A broken channel delivered again.
    pub(crate) async fn channel_repaired(&self, channel: Channel) {
        let was = self.inner.channel_errors[channel.index()]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        metrics::gauge!("vms_alert_channel_up", "channel" => channel.as_str()).set(1.0);
        if was.is_some() {
            tracing::info!(channel = channel.as_str(), "alert channel delivers again");
            let event = AlertEvent::system(
                Utc::now(),
                Severity::Critical,
                Phase::Resolved,
                format!("alerts:channel:{}", channel.as_str()),
                Issue::AlertChannelFailed,
                format!("{} delivers again", channel.as_str()),
            );
            let _ = self.submit(event).await;
        }
    }

    /// Stores, logs and routes one event, as if it came through the
    /// [`crate::events::AlertSink`] (the webhook uses this). Returns what
    /// was done with it.
    ///
    /// * A database locked by another process ([`AlertsError::Busy`]): the
    ///   event is logged and the error returned; the pipeline keeps it and
    ///   stores it when the lock is released (the webhook answers 503 and
    ///   Alertmanager sends it again). Nothing is pushed before it is
    ///   stored, so nothing is pushed twice.
    /// * Any other failure (the disk that fills with footage usually holds
    ///   the database too; the file deleted): handled as a database that
    ///   cannot be opened at start. The pipeline switches to a database in
    ///   memory, raises the Critical [`store_unusable`] alert, and stores
    ///   the event there.
    /// * If even that fails, a Critical event is still pushed, directly and
    ///   without durability, deduplicated in memory.
    pub async fn submit(&self, mut event: AlertEvent) -> Result<Ingested, AlertsError> {
        let settings = self.settings();
        if let Some(c) = event.camera.as_mut() {
            if c.name.trim().is_empty() {
                c.name = settings
                    .camera_names
                    .get(&c.id)
                    .cloned()
                    .unwrap_or_else(|| crate::config::path_name(c.id));
            }
        }
        let mut result = self.ingest(&event, &settings).await;
        if let Err(e @ AlertsError::Database { .. }) = &result {
            let why = e.to_string();
            if self.fall_back_to_memory(&why).await {
                result = self.ingest(&event, &settings).await;
            }
        }
        match &result {
            Ok(ingested) => {
                log_event(&event, Some(ingested));
                for channel in &ingested.queued {
                    self.inner.wake[channel.index()].notify_one();
                }
                self.publish_open_counts().await;
            }
            Err(e @ AlertsError::Busy { .. }) => {
                log_event(&event, None);
                tracing::warn!(error = %e, key = %event.key, "alert database locked; the alert is stored when the lock is released");
            }
            Err(e) => {
                log_event(&event, None);
                tracing::error!(error = %e, key = %event.key, "alert not stored in the database");
                self.push_unstored(&event, &settings);
            }
        }
        result
    }

    async fn ingest(
        &self,
        event: &AlertEvent,
        settings: &Arc<AlertSettings>,
    ) -> Result<Ingested, AlertsError> {
        let ev = event.clone();
        let s = settings.clone();
        self.inner
            .db
            .call(move |store| store.ingest(&ev, Utc::now(), &s))
            .await
            .map_err(AlertsError::from)
            .and_then(|r| r)
    }

    /// The database file failed while running: from now on the history
    /// lives in memory, exactly as when it cannot be opened at start
    /// ([`open_in_memory`]), and a Critical alert says so. Returns whether
    /// the switch happened (false if already in memory).
    async fn fall_back_to_memory(&self, why: &str) -> bool {
        {
            let mut err = self
                .inner
                .store_error
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if err.is_some() {
                return false;
            }
            *err = Some(why.to_string());
        }
        tracing::error!(
            error = %why,
            "the alert database failed: alerts are kept in memory (still shown and sent, lost on restart) until vms-supervisor restarts with a usable file"
        );
        let swapped = self
            .inner
            .db
            .call(|store| Store::open_in_memory().map(|mem| *store = mem))
            .await
            .map_err(AlertsError::from)
            .and_then(|r| r);
        if let Err(e) = swapped {
            tracing::error!(error = %e, "cannot open a database in memory");
            return false;
        }
        let settings = self.settings();
        let alarm = store_unusable(why, Utc::now());
        match self.ingest(&alarm, &settings).await {
            Ok(ingested) => {
                log_event(&alarm, Some(&ingested));
                for channel in &ingested.queued {
                    self.inner.wake[channel.index()].notify_one();
                }
            }
            Err(_) => self.push_unstored(&alarm, &settings),
        }
        true
    }

    /// Checks that the database file is still the one opened (not deleted
    /// or replaced); falls back to memory if not.
    pub async fn check_store(&self) {
        if self.store_error().is_some() {
            return;
        }
        if let Ok(Err(e)) = self.inner.db.call(|st| st.check_file()).await {
            self.fall_back_to_memory(&e.to_string()).await;
        }
    }

    /// The no-database path of [`AlertsHandle::submit`]: the same
    /// [`lifecycle::decide`] as the store, over alerts kept in memory.
    fn push_unstored(&self, event: &AlertEvent, settings: &AlertSettings) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let message = {
            let mut open = self
                .inner
                .unstored
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let current = open
                .get(&event.key)
                .map(|(opening, pushed)| lifecycle::OpenAlert {
                    incident_id: 0,
                    severity: opening.severity,
                    pushed: *pushed,
                });
            let decision = lifecycle::decide(current.as_ref(), event, false);
            let opening = open.get(&event.key).map(|(e, _)| e.clone());
            match decision.outcome {
                Outcome::Opened => {
                    open.insert(event.key.clone(), (event.clone(), decision.push.is_some()));
                }
                Outcome::Escalated | Outcome::Repeated => {
                    if let Some(entry) = open.get_mut(&event.key) {
                        if decision.outcome == Outcome::Escalated {
                            entry.0.severity = event.severity;
                        }
                        entry.1 |= decision.push.is_some();
                    }
                }
                Outcome::Resolved => {
                    open.remove(&event.key);
                }
                Outcome::NothingOpen | Outcome::Notice => {}
            }
            match decision.push {
                None => None,
                Some(lifecycle::Push::Alert) => Some((
                    text::Kind::Alert,
                    text::render(text::Kind::Alert, event, event.at, None, &settings.style()),
                )),
                Some(lifecycle::Push::Resolved) => opening.map(|opening| {
                    (
                        text::Kind::Resolved,
                        text::render(
                            text::Kind::Resolved,
                            &opening,
                            event.at,
                            Some(opening.at),
                            &settings.style(),
                        ),
                    )
                }),
            }
        };
        if settings.channels.is_empty() {
            return;
        }
        let Some((kind, message)) = message else {
            return;
        };
        tracing::warn!(key = %event.key, "pushing the alert without the outbox (not durable)");
        for &channel in &settings.channels {
            let (subject, body) = match channel {
                Channel::Telegram => (None, message.telegram.clone()),
                Channel::Email => (
                    Some(message.email_subject.clone()),
                    message.email_body.clone(),
                ),
            };
            let row = store::Pending {
                id: 0,
                channel,
                kind,
                subject,
                body,
                attempts: 0,
            };
            self.inner.tracker.spawn(outbox::deliver_unstored(
                self.clone(),
                row,
                self.inner.retry.clone(),
                self.inner.shutdown.clone(),
            ));
        }
    }

    /// The newest `limit` alerts (for `/api/cameras/health` `recent_alerts`),
    /// of `only_cameras` (and the box) when given.
    pub async fn recent(
        &self,
        limit: usize,
        only_cameras: Option<Vec<u32>>,
    ) -> Result<Vec<AlertRow>, AlertsError> {
        let filter = Filter {
            only_cameras,
            ..Filter::default()
        };
        Ok(self.list(filter, limit, 0).await?.0)
    }

    /// Stored alerts, newest first, and the total matching `filter`.
    pub async fn list(
        &self,
        filter: Filter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<AlertRow>, u64), AlertsError> {
        let s = self.settings();
        self.call(move |st| st.list(&filter, limit, offset, &s))
            .await
    }

    /// Open alerts by severity (`vms_active_alerts{severity}`).
    pub async fn open_counts(&self) -> Result<OpenCounts, AlertsError> {
        self.call(|st| st.open_counts()).await
    }

    /// Outbox depth, oldest undelivered age, delivered and failed counts per
    /// channel.
    pub async fn outbox_stats(&self) -> Result<Vec<ChannelStats>, AlertsError> {
        self.call(|st| st.channel_stats(Utc::now())).await
    }

    /// Every outbox row (diagnostics and tests).
    pub async fn outbox(&self) -> Result<Vec<OutboxRow>, AlertsError> {
        self.call(|st| st.outbox()).await
    }

    /// The audit ledger: incidents (with recording gaps), newest first.
    pub async fn incidents(
        &self,
        camera_id: Option<u32>,
        only_cameras: Option<Vec<u32>>,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, AlertsError> {
        self.call(move |st| st.incidents(camera_id, only_cameras.as_deref(), limit))
            .await
    }

    /// Maintenance silence: until `until`, the camera's alerts are stored and
    /// logged but not pushed. Replaces an existing silence of the camera.
    pub async fn silence(
        &self,
        camera_id: u32,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), AlertsError> {
        let reason = reason.to_string();
        self.call(move |st| st.silence(camera_id, until, &reason, Utc::now()))
            .await?;
        tracing::info!(camera_id, until = %store::ts(until), "camera alerts silenced");
        Ok(())
    }

    /// Ends a silence early. Returns whether there was one.
    pub async fn unsilence(&self, camera_id: u32) -> Result<bool, AlertsError> {
        let had = self.call(move |st| st.unsilence(camera_id)).await?;
        if had {
            tracing::info!(camera_id, "camera alerts unsilenced");
        }
        Ok(had)
    }

    /// Records an operator's acknowledgement of alert `id` (the first one
    /// stands): who and when, or `None` when there is no such alert.
    pub async fn ack(
        &self,
        id: i64,
        who: String,
    ) -> Result<Option<(String, DateTime<Utc>)>, AlertsError> {
        self.call(move |st| st.ack(id, &who, Utc::now())).await
    }

    /// Silences in force.
    pub async fn silences(&self) -> Result<Vec<Silence>, AlertsError> {
        self.call(|st| st.silences(Utc::now())).await
    }

    /// Queues due reminders now (the pipeline also does it every tick).
    pub async fn remind(&self) -> Result<usize, AlertsError> {
        let s = self.settings();
        let n = self.call(move |st| st.remind(Utc::now(), &s)).await?;
        if n > 0 {
            for w in &self.inner.wake {
                w.notify_one();
            }
        }
        Ok(n)
    }

    /// Waits until every task and the DB thread have stopped (after the
    /// shutdown token was cancelled).
    pub async fn stopped(&self) {
        self.inner.tracker.wait().await;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, AlertsError> + Send + 'static,
    ) -> Result<R, AlertsError> {
        self.inner
            .db
            .call(f)
            .await
            .map_err(AlertsError::from)
            .and_then(|r| r)
    }

    fn wake_of(&self, channel: Channel) -> Arc<Notify> {
        self.inner.wake[channel.index()].clone()
    }

    async fn publish_open_counts(&self) {
        if let Ok(c) = self.open_counts().await {
            record_open_counts(c);
        }
    }

    async fn publish_outbox_stats(&self) {
        if let Ok(stats) = self.outbox_stats().await {
            record_outbox_stats(&stats);
        }
    }
}

/// Sets `vms_active_alerts{severity}`.
pub fn record_open_counts(c: OpenCounts) {
    metrics::gauge!("vms_active_alerts", "severity" => "info").set(c.info as f64);
    metrics::gauge!("vms_active_alerts", "severity" => "warning").set(c.warning as f64);
    metrics::gauge!("vms_active_alerts", "severity" => "critical").set(c.critical as f64);
}

/// Sets `vms_alert_outbox_depth{channel}` and
/// `vms_alert_outbox_oldest_seconds{channel}`.
pub fn record_outbox_stats(stats: &[ChannelStats]) {
    for s in stats {
        let ch = s.channel.as_str();
        metrics::gauge!("vms_alert_outbox_depth", "channel" => ch).set(s.depth as f64);
        metrics::gauge!("vms_alert_outbox_oldest_seconds", "channel" => ch).set(s.oldest_seconds);
    }
}

fn requeue_failed(store: &Store) {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(REQUEUE_FAILED_WITHIN).unwrap_or_default();
    match store.requeue_failed(since, now) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            rows = n,
            "retrying alert deliveries that failed permanently"
        ),
        Err(e) => tracing::error!(error = %e, "cannot requeue failed alert deliveries"),
    }
}

/// The pipeline task: consumes the producers' events, checks reminders and
/// refreshes the gauges every tick.
async fn run(
    handle: AlertsHandle,
    mut rx: mpsc::Receiver<AlertEvent>,
    shutdown: CancellationToken,
    tick: Duration,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rx_open = true;
    let mut next_prune = tokio::time::Instant::now();
    // Events that met a locked database, in the order they were raised:
    // stored before any newer one, so that the history keeps its order.
    let mut waiting: std::collections::VecDeque<AlertEvent> = Default::default();
    let retry_every = Duration::from_millis(500);
    let mut retry = tokio::time::interval(retry_every);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                // Store what producers already sent; delivery resumes at the
                // next start. Events still waiting for a lock are logged
                // (their log line is the record of last resort).
                rx.close();
                while let Some(event) = rx.recv().await {
                    waiting.push_back(event);
                }
                store_waiting(&handle, &mut waiting).await;
                for event in waiting {
                    tracing::error!(key = %event.key, issue = event.issue.as_str(), "alert database still locked at shutdown; alert only logged");
                }
                break;
            }
            event = rx.recv(), if rx_open => match event {
                Some(event) => {
                    waiting.push_back(event);
                    store_waiting(&handle, &mut waiting).await;
                }
                None => rx_open = false,
            },
            _ = retry.tick(), if !waiting.is_empty() => store_waiting(&handle, &mut waiting).await,
            _ = interval.tick() => {
                handle.check_store().await;
                if let Err(e) = handle.remind().await {
                    tracing::error!(error = %e, "cannot check alert reminders");
                }
                handle.publish_open_counts().await;
                handle.publish_outbox_stats().await;
                if tokio::time::Instant::now() >= next_prune {
                    next_prune += Duration::from_secs(3600);
                    match handle.call(|st| st.prune(Utc::now(), HISTORY_KEEP)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "pruned old alert history"),
                        Err(e) => tracing::error!(error = %e, "cannot prune alert history"),
                    }
                }
            }
        }
    }
}

/// Stores the waiting events in order, until the database is locked again.
async fn store_waiting(
    handle: &AlertsHandle,
    waiting: &mut std::collections::VecDeque<AlertEvent>,
) {
    while let Some(event) = waiting.front().cloned() {
        if let Err(AlertsError::Busy { .. }) = handle.submit(event).await {
            return;
        }
        waiting.pop_front();
    }
}

/// The level names of docs/design.md §5.1: `INFO`, `WARNING`, `CRITICAL`.
pub fn level_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "INFO",
        Severity::Warning => "WARNING",
        Severity::Critical => "CRITICAL",
    }
}

/// The structured log record (docs/design.md §5.5) of an event, as a JSON object
/// (`timestamp`, `level`, `camera_id`, `camera_name`, `issue`,
/// `recovery_attempts`, `last_recording`, plus `key`, `phase`, `details`).
pub fn log_record(event: &AlertEvent) -> serde_json::Value {
    serde_json::json!({
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "level": level_name(event.severity),
        "camera_id": event.camera.as_ref().map(|c| c.id),
        "camera_name": event.camera.as_ref().map(|c| c.name.as_str()),
        "issue": event.issue.as_str(),
        "recovery_attempts": event.recovery_attempts,
        "last_recording": event
            .last_recording
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "key": event.key,
        "phase": match event.phase {
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
            Phase::Notice => "notice",
        },
        "details": event.details,
    })
}

/// Emits the structured log line of one alert through `tracing`, with the
/// fields of docs/design.md §5.5 as fields (journald: `CAMERA_ID=5`, `ISSUE=...`). The
/// tracing level is ERROR for Critical, WARN for Warning, INFO for Info; the
/// level name of docs/design.md §5.5 is in the `alert_level` field.
pub fn log_event(event: &AlertEvent, ingested: Option<&Ingested>) {
    let camera_id = event.camera.as_ref().map(|c| c.id);
    let camera_name = event.camera.as_ref().map(|c| c.name.as_str());
    let last_recording = event.last_recording.map(store::ts);
    let last_recording = last_recording.as_deref();
    let timestamp = store::ts(event.at);
    let phase = match event.phase {
        Phase::Firing => "firing",
        Phase::Resolved => "resolved",
        Phase::Notice => "notice",
    };
    let action = ingested.map(|i| i.outcome.as_str()).unwrap_or("not_stored");
    let alert_id = ingested.map(|i| i.alert_id);
    let silenced = ingested.is_some_and(|i| i.silenced);
    let message = text::dashboard_message(event, Language::En);
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                alert_level = level_name(event.severity),
                alert_timestamp = timestamp.as_str(),
                camera_id,
                camera_name,
                issue = event.issue.as_str(),
                recovery_attempts = event.recovery_attempts,
                last_recording,
                key = event.key.as_str(),
                phase,
                action,
                alert_id,
                silenced,
                details = event.details.as_str(),
                "alert: {message}"
            )
        };
    }
    match event.severity {
        Severity::Critical => emit!(error),
        Severity::Warning => emit!(warn),
        Severity::Info => emit!(info),
    }
}

#[cfg(test)]
mod tests;
