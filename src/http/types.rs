//! The API's own response types: what `openapi.yaml` describes. They are
//! built from the published [`Snapshot`] and the alert store, so the loop's
//! internal structs can change without changing the wire contract. The CLI's
//! client ([`crate::client`]) reads the same types back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::{CameraView, DiskView, Health, MediamtxView, Snapshot, Step};

/// `GET /api/cameras/health`: the design's health document, field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthDoc {
    pub total: usize,
    pub online: usize,
    pub recovering: usize,
    pub offline: usize,
    pub recording_health: RecordingHealth,
    pub recent_alerts: Vec<RecentAlert>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingHealth {
    pub active: usize,
    pub failed: usize,
    pub disk_usage: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentAlert {
    pub camera: String,
    pub severity: String,
    pub message: String,
    pub timestamp: String,
    pub resolved: bool,
}

/// One camera as the supervisor sees it (`CameraView` in openapi.yaml).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraDoc {
    pub id: u32,
    pub name: String,
    pub path: String,
    pub state: Health,
    pub stream_available: Option<bool>,
    pub recording: bool,
    pub last_data: Option<DateTime<Utc>>,
    pub last_data_age_seconds: Option<f64>,
    pub current_segment: Option<String>,
    pub segments_completed: u64,
    pub inbound_bytes: u64,
    pub problem: Option<String>,
    pub recovery_level: Option<u8>,
    pub recovery_step: Option<Step>,
    pub consecutive_failures: u32,
    pub recoveries_total: u64,
    pub recovery_failures_total: u64,
    pub stall_threshold_seconds: f64,
    pub silence_threshold_seconds: f64,
}

impl From<&CameraView> for CameraDoc {
    fn from(c: &CameraView) -> CameraDoc {
        CameraDoc {
            id: c.id,
            name: c.name.clone(),
            path: c.path.clone(),
            state: c.state,
            stream_available: c.stream_available,
            recording: c.recording,
            last_data: c.last_data,
            last_data_age_seconds: c.last_data_age_seconds,
            current_segment: c.current_segment.clone(),
            segments_completed: c.segments_completed,
            inbound_bytes: c.inbound_bytes,
            problem: c.problem.map(str::to_string),
            recovery_level: c.recovery_level,
            recovery_step: c.recovery_step,
            consecutive_failures: c.consecutive_failures,
            recoveries_total: c.recoveries_total,
            recovery_failures_total: c.recovery_failures_total,
            stall_threshold_seconds: c.stall_threshold_seconds,
            silence_threshold_seconds: c.silence_threshold_seconds,
        }
    }
}

/// A camera as `/api/cameras` shows it: the supervisor's view plus HLS
/// availability (`Camera` in openapi.yaml).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Camera {
    #[serde(flatten)]
    pub camera: CameraDoc,
    /// The stream is available and MediaMTX's HLS server listens; `None`
    /// until both are known.
    pub hls_available: Option<bool>,
}

impl Camera {
    pub fn new(snap: &Snapshot, c: &CameraView) -> Camera {
        let hls_available = match (c.stream_available, snap.mediamtx.hls_listening) {
            (Some(stream), Some(server)) => Some(stream && server),
            _ => None,
        };
        Camera {
            camera: c.into(),
            hls_available,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraList {
    pub items: Vec<Camera>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediamtxDoc {
    pub up: bool,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub restart_storm: bool,
    pub hls_listening: Option<bool>,
}

impl From<&MediamtxView> for MediamtxDoc {
    fn from(m: &MediamtxView) -> MediamtxDoc {
        MediamtxDoc {
            up: m.up,
            pid: m.pid,
            restarts: m.restarts,
            last_exit: m.last_exit.clone(),
            restart_storm: m.restart_storm,
            hls_listening: m.hls_listening,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskDoc {
    pub mount_point: String,
    pub percent: f64,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

impl From<&DiskView> for DiskDoc {
    fn from(d: &DiskView) -> DiskDoc {
        DiskDoc {
            mount_point: d.mount_point.clone(),
            percent: d.percent,
            used_bytes: d.used_bytes,
            total_bytes: d.total_bytes,
        }
    }
}

/// `GET /api/status`: everything the daemon publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDoc {
    pub box_name: String,
    pub site: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub mediamtx: MediamtxDoc,
    pub cameras: Vec<CameraDoc>,
    pub disk: Option<DiskDoc>,
    pub config_error: Option<String>,
    pub alert_store_error: Option<String>,
    /// Push channels that refuse every message, and why.
    pub alert_channel_errors: std::collections::BTreeMap<String, String>,
    /// Capacity, forecast and retention compliance (`null` without the
    /// segment catalog).
    pub storage: Option<crate::status::StorageStatus>,
}

impl From<&Snapshot> for StatusDoc {
    fn from(s: &Snapshot) -> StatusDoc {
        StatusDoc {
            box_name: s.box_name.clone(),
            site: s.site.clone(),
            version: s.version.to_string(),
            started_at: s.started_at,
            updated_at: s.updated_at,
            mediamtx: (&s.mediamtx).into(),
            cameras: s.cameras.iter().map(CameraDoc::from).collect(),
            disk: s.disk.as_ref().map(DiskDoc::from),
            config_error: s.config_error.clone(),
            alert_store_error: s.alert_store_error.clone(),
            alert_channel_errors: s.alert_channel_errors.iter().cloned().collect(),
            storage: s.storage.clone(),
        }
    }
}

/// The `status` server-sent event: counts and cameras, on every change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEvent {
    pub online: usize,
    pub recovering: usize,
    pub offline: usize,
    pub mediamtx_up: bool,
    pub cameras: Vec<CameraDoc>,
    pub updated_at: DateTime<Utc>,
    /// As in `GET /api/status`.
    pub storage: Option<crate::status::StorageStatus>,
}

impl From<&Snapshot> for StatusEvent {
    fn from(s: &Snapshot) -> StatusEvent {
        StatusEvent {
            online: s.count(Health::Online),
            recovering: s.count(Health::Recovering),
            offline: s.count(Health::Offline),
            mediamtx_up: s.mediamtx.up,
            cameras: s.cameras.iter().map(CameraDoc::from).collect(),
            updated_at: s.updated_at,
            storage: s.storage.clone(),
        }
    }
}

/// `POST /api/cameras/{id}/reset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetReply {
    pub status: String,
    pub camera_id: u32,
}
