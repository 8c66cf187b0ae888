//! The seam between the parts that notice problems (the supervisor of
//! MediaMTX, the camera monitor, the storage watcher, the Alertmanager
//! webhook) and the alert pipeline that stores and delivers them.
//!
//! Producers only build [`AlertEvent`]s and send them on an [`AlertSink`];
//! they never format messages or talk to Telegram. The pipeline stores each
//! event in SQLite before anything else, deduplicates by [`AlertEvent::key`],
//! and routes by [`Severity`] (docs/design.md §5.1: Info → log; Warning → log +
//! dashboard; Critical → log + dashboard + Telegram + e-mail).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The severity levels of docs/design.md §5.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What went wrong (or right). The snake_case names are the `issue` field of
/// the structured log line and of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    /// The camera's stream is not available in MediaMTX.
    StreamDown,
    /// The stream came back (after a recovery or by itself).
    StreamRecovered,
    /// The stream is available but the segment file stopped growing.
    RecordingStalled,
    /// No recording after level 2 ("Gravação parou", docs/design.md §4.2).
    RecordingStopped,
    /// Recording data flows again.
    RecordingRecovered,
    /// Level 3: recoveries failed N times in a row; no more attempts.
    CameraOffline,
    /// MediaMTX exited, hung or cannot be started: one incident for all cameras.
    MediamtxDown,
    /// Too many MediaMTX restarts in a short window.
    MediamtxRestartStorm,
    /// MediaMTX was restarted by the memory watchdog.
    MediamtxMemory,
    /// MediaMTX was restarted once, deliberately, to run the new binary
    /// installed at the configured path (Info).
    MediamtxUpgraded,
    /// An edited vms.toml was invalid; the old config keeps running.
    ConfigInvalid,
    DiskWarning,
    DiskCritical,
    /// The alert database cannot be used: the history lives in memory only.
    AlertStoreUnusable,
    /// A push channel (Telegram, e-mail) refuses every message: its
    /// configuration is wrong.
    AlertChannelFailed,
    /// The recordings disk has no space left: no camera can record.
    DiskFull,
    /// Old footage was deleted to keep the free-space floor (says what).
    FootageEvicted,
    /// The free-space floor cannot be restored: everything left is held.
    DiskFloorUnrestorable,
    /// Retention keeps footage past its time because it is not backed up.
    RetentionBlockedByBackup,
    /// A camera has less footage on disk than the required retention.
    RetentionShort,
    /// Completed footage is not yet off-site for longer than `[backup]
    /// lag_warning` / `lag_critical`.
    BackupLag,
    /// The S3 service refuses the configuration (credentials, bucket,
    /// storage class): uploads stop until `vms-supervisor backup retry`.
    BackupRefused,
    /// Received through the Alertmanager webhook.
    External,
}

impl Issue {
    pub fn as_str(self) -> &'static str {
        match self {
            Issue::StreamDown => "stream_down",
            Issue::StreamRecovered => "stream_recovered",
            Issue::RecordingStalled => "recording_stalled",
            Issue::RecordingStopped => "recording_stopped",
            Issue::RecordingRecovered => "recording_recovered",
            Issue::CameraOffline => "camera_offline",
            Issue::MediamtxDown => "mediamtx_down",
            Issue::MediamtxRestartStorm => "mediamtx_restart_storm",
            Issue::MediamtxMemory => "mediamtx_memory",
            Issue::MediamtxUpgraded => "mediamtx_upgraded",
            Issue::ConfigInvalid => "config_invalid",
            Issue::DiskWarning => "disk_warning",
            Issue::DiskCritical => "disk_critical",
            Issue::AlertStoreUnusable => "alert_store_unusable",
            Issue::AlertChannelFailed => "alert_channel_failed",
            Issue::DiskFull => "disk_full",
            Issue::FootageEvicted => "footage_evicted",
            Issue::DiskFloorUnrestorable => "disk_floor_unrestorable",
            Issue::RetentionBlockedByBackup => "retention_blocked_by_backup",
            Issue::RetentionShort => "retention_short",
            Issue::BackupLag => "backup_lag",
            Issue::BackupRefused => "backup_refused",
            Issue::External => "external",
        }
    }
}

/// Whether an event opens (or repeats) a problem, or closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A problem is present. Repeats with the same key are deduplicated.
    Firing,
    /// The problem with this key is gone: sends a "resolved" message for an
    /// open alert, nothing otherwise.
    Resolved,
    /// A one-off fact (e.g. "stream reconnected", Info): stored and logged,
    /// never opens an alert.
    Notice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraRef {
    pub id: u32,
    pub name: String,
}

/// One thing the alert pipeline must know about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub at: DateTime<Utc>,
    pub severity: Severity,
    pub phase: Phase,
    /// Dedup key: one open alert per key. By convention
    /// `camera:<id>:<issue>`, `mediamtx:<issue>`, `disk:<mount>`,
    /// `external:<alertname>:<labels>`.
    pub key: String,
    pub issue: Issue,
    pub camera: Option<CameraRef>,
    /// Recovery attempts made so far for this camera.
    pub recovery_attempts: u32,
    /// When the camera last wrote segment data.
    pub last_recording: Option<DateTime<Utc>>,
    /// A short technical detail for logs and e-mail (English).
    pub details: String,
}

impl AlertEvent {
    /// An event about the box rather than a camera (MediaMTX, the disk, the
    /// config file, the alert database, the webhook): no camera, no
    /// recovery attempts, no last recording.
    pub fn system(
        at: DateTime<Utc>,
        severity: Severity,
        phase: Phase,
        key: impl Into<String>,
        issue: Issue,
        details: impl Into<String>,
    ) -> AlertEvent {
        AlertEvent {
            at,
            severity,
            phase,
            key: key.into(),
            issue,
            camera: None,
            recovery_attempts: 0,
            last_recording: None,
            details: details.into(),
        }
    }

    /// The conventional key of a camera problem.
    pub fn camera_key(id: u32, issue: Issue) -> String {
        format!("camera:{id}:{}", issue.as_str())
    }
}

/// Where producers send events. Cloneable; sending never blocks the sender
/// for long (the pipeline's first step is a fast insert into SQLite).
#[derive(Debug, Clone)]
pub struct AlertSink(pub mpsc::Sender<AlertEvent>);

impl AlertSink {
    /// A sink and its receiving end, for the pipeline (or a test) to consume.
    pub fn channel(capacity: usize) -> (AlertSink, mpsc::Receiver<AlertEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        (AlertSink(tx), rx)
    }

    /// Sends an event. If the pipeline is gone (shutdown), the event is still
    /// written to the log, so it is never silently dropped.
    pub async fn send(&self, event: AlertEvent) {
        if let Err(e) = self.0.send(event).await {
            let event = e.0;
            tracing::error!(
                key = %event.key,
                issue = event.issue.as_str(),
                severity = event.severity.as_str(),
                details = %event.details,
                "alert pipeline is gone; alert only logged"
            );
        }
    }
}
