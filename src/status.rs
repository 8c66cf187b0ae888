//! What the daemon publishes about itself: one [`Snapshot`] per change, sent
//! on a `watch` channel by the loop and read by the HTTP edge, the metrics
//! and `sd_notify`. A leaf: it depends on nothing of ours, so every layer
//! can read it without reaching into the loop.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A camera's state as the design names it (🟢 / 🟡 / 🔴).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Online,
    Recovering,
    Offline,
}

impl Health {
    pub const ALL: [Health; 3] = [Health::Online, Health::Recovering, Health::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Online => "online",
            Health::Recovering => "recovering",
            Health::Offline => "offline",
        }
    }
}

/// Where a recovery attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Path removed; re-created when the wait is over.
    Removed,
    /// Path re-created; verified when the wait is over (or as soon as data flows).
    Verifying,
    /// Level 2 only: recording checked again when the wait is over.
    Rechecking,
}

/// One camera as the camera machine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraView {
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
    pub problem: Option<&'static str>,
    pub recovery_level: Option<u8>,
    pub recovery_step: Option<Step>,
    pub consecutive_failures: u32,
    pub recoveries_total: u64,
    pub recovery_failures_total: u64,
    /// How long a quiet segment file must last to be a recording stall,
    /// and (with the inbound bytes frozen) a silent camera: learned from
    /// the camera's own cadence (docs/cadence.md).
    pub stall_threshold_seconds: f64,
    pub silence_threshold_seconds: f64,
}

/// MediaMTX's process as the process machine sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediamtxView {
    pub up: bool,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub restart_storm: bool,
    /// The HLS server accepts connections (a plain TCP connect: an HLS
    /// request would create a reader session and a muxer per probe,
    /// docs/mediamtx.md §i).
    pub hls_listening: Option<bool>,
}

/// The recordings filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskView {
    pub mount_point: String,
    pub percent: f64,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Everything the daemon shows, published by the loop.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub box_name: String,
    /// `general.site` (empty for a single box).
    pub site: String,
    pub version: &'static str,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub mediamtx: MediamtxView,
    pub cameras: Vec<CameraView>,
    pub disk: Option<DiskView>,
    /// The last invalid edit of vms.toml, while it is not fixed.
    pub config_error: Option<String>,
    /// Why the alert database is not used (alerts live in memory only).
    pub alert_store_error: Option<String>,
    /// Push channels that refuse every message (a configuration error), and
    /// why: `("telegram", "HTTP 400 Bad Request: chat not found")`.
    pub alert_channel_errors: Vec<(String, String)>,
    /// What the recordings disk holds and will hold; `None` without the
    /// segment catalog.
    pub storage: Option<StorageStatus>,
}

impl Snapshot {
    /// The snapshot as a user limited to `cameras` sees it: the other
    /// cameras are left out everywhere (the counts follow).
    pub fn only_cameras(&self, cameras: &[u32]) -> Snapshot {
        let mut s = self.clone();
        s.cameras.retain(|c| cameras.contains(&c.id));
        if let Some(st) = s.storage.as_mut() {
            st.cameras.retain(|c| cameras.contains(&c.camera_id));
        }
        s
    }
}

/// Storage as the operator reads it: how many days the disk holds, when
/// eviction would start, and whether each camera keeps its retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// Days of footage the disk holds at the current write rate.
    pub capacity_days: Option<f64>,
    /// Days until the free space reaches the floor (then the oldest footage
    /// is evicted); `None` when retention keeps it from getting there.
    pub days_until_full: Option<f64>,
    /// The free space kept (`storage.min_free` / `min_free_percent`).
    pub floor_bytes: Option<u64>,
    pub write_bytes_per_second: f64,
    /// Old footage is being deleted for space right now.
    pub evicting: bool,
    /// Hours of footage evicted for space since the catalog began.
    pub evicted_hours_total: f64,
    pub cameras: Vec<CameraRetention>,
}

/// One camera's retention compliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRetention {
    pub camera_id: u32,
    /// Days between the oldest footage kept and now.
    pub footage_days: f64,
    pub required_days: u32,
    /// The footage covers the retention (or the camera is younger than it).
    pub compliant: bool,
    /// Why not: `evictions`, `disk_too_small` or `footage_missing`.
    pub reason: Option<String>,
}

impl Snapshot {
    /// How many cameras are in `state`.
    pub fn count(&self, state: Health) -> usize {
        self.cameras.iter().filter(|c| c.state == state).count()
    }

    /// How many cameras write segment data.
    pub fn recording(&self) -> usize {
        self.cameras.iter().filter(|c| c.recording).count()
    }

    /// The one-line summary of `systemctl status` (`STATUS=`).
    pub fn summary(&self) -> String {
        format!(
            "{} cameras: {} online, {} recovering, {} offline; {} recording; MediaMTX {}",
            self.cameras.len(),
            self.count(Health::Online),
            self.count(Health::Recovering),
            self.count(Health::Offline),
            self.recording(),
            if self.mediamtx.up { "up" } else { "down" }
        )
    }
}
