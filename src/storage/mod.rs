//! Storage the daemon owns: the segment catalog, the gap ledger, retention,
//! legal holds and a disk that never fills.
//!
//! # What lives here
//!
//! * [`catalog`]: its own SQLite file (`<state.dir>/storage.db`, separate
//!   from the alert database: a catalog of millions of rows must never put
//!   the alert history at risk) with versioned migrations: every segment of
//!   every camera (state `recording` / `complete` / `evicted` / `deleted`,
//!   why it counts as complete, SHA-256 and the backup fields), the cause
//!   intervals behind gaps, per-day directory mtimes for a cheap start-up
//!   reconciliation, and a heartbeat that turns a daemon outage into a gap
//!   cause. Functions over a `&Connection` / `&mut Connection`, meant to run
//!   on one SQLite owner thread.
//! * [`holds`]: legal holds (add, list, release) over the same database.
//! * [`ledger`]: for a camera and a time range, the recorded spans and the
//!   gaps between them, each with a cause.
//! * [`machine`]: the decisions, as a synchronous state machine
//!   `handle(now, event) -> Vec<Action>` (as in `supervisor/`): when a
//!   segment counts as complete, retention, eviction under disk pressure,
//!   the "disco cheio" incident, the forecast and per-camera compliance. It
//!   never does I/O.
//! * [`db`]: the owner thread of the catalog connection, with
//!   `StorageDb::execute(now, action) -> Option<Event>`.
//! * [`metrics`]: the Prometheus series, set from `Machine::view`.
//! * [`exec`]: the I/O the machine asks for (deleting files, `statvfs`,
//!   file sizes), plain blocking functions for the storage owner thread or
//!   `spawn_blocking`.
//!
//! # Wiring (what the daemon feeds the machine, and how it runs the actions)
//!
//! One owner thread holds the catalog connection: `db::StorageDb::start(
//! catalog::open(&state_dir.join("storage.db"))?, recording.path, tz)`,
//! like `alerts/db.rs`. The daemon's main task owns a
//! [`machine::Machine`] (`Machine::new(recording.path, tz, settings)`),
//! queues every action but `Alert` with `StorageDb::submit(now, action,
//! feedback_tx)` (in order, never waiting; the result comes back as an
//! event on the channel, which the main loop feeds to the machine) and maps
//! `Alert`s to `AlertEvent`s. It feeds:
//!
//! | Source | Machine event |
//! |---|---|
//! | start, after `catalog::open` | `Event::Started` (→ `Action::Reconcile`) |
//! | `RecEvent::Data{camera, file}` | `Event::SegmentData{camera, file, bytes}` with `bytes = exec::file_size(&file)` |
//! | `RecEvent::Closed{camera, file}` | `Event::SegmentClosed{camera, file, bytes}` (same) |
//! | `RecEvent::Missed` (inotify overflow, recordings root re-created) | `Event::Rescan` (→ `Action::Reconcile`) |
//! | every `monitor.interval` (the disk check) | `Event::Disk(exec::disk_sample(root)?)` |
//! | a MediaMTX log line with "no space left on device" | `Event::WriteFailed{camera}` |
//! | every alert event the daemon raises | `Event::Cause(..)` from [`Cause::from_alert`] (camera down, stall, MediaMTX down) |
//! | config load and reload | `Event::Settings(..)`, `Event::Cameras(..)` |
//! | a timer, every few seconds | `Event::Tick` |
//! | results of actions | `Event::Reconciled`, `Event::Summary`, `Event::Candidates`, `Event::Deleted` |
//!
//! `exec::execute(conn, root, tz, now, &action)` runs any action but
//! `Alert` and returns the event to feed back; what it does:
//!
//! | Action | Run (on the storage owner thread) | Feeds back |
//! |---|---|---|
//! | `Catalog(ops)` | `catalog::apply(conn, &ops)` | nothing |
//! | `Reconcile{session_start}` | `catalog::start_session` (at start) then `catalog::reconcile(conn, root, tz, now)` | `Event::Reconciled(report)` |
//! | `SampleDisk` | `exec::disk_sample(root)` | `Event::Disk(sample)` |
//! | `Summarize` | `catalog::summary(conn, now)` | `Event::Summary(summary)` |
//! | `FindCandidates(query)` | `catalog::candidates(conn, &query)` | `Event::Candidates(batch)` |
//! | `Delete{purpose, segments}` | `exec::delete_segments(conn, root, purpose, &segments, now)` | `Event::Deleted(outcome)` |
//! | `Maintain{..}` | `catalog::maintain(conn, root, purge_before)` | nothing |
//! | `Alert(StorageAlert)` | map to `AlertEvent` (see [`StorageAlert`]) | nothing |
//!
//! The API/CLI read paths (`ledger::query`, `holds::*`, `catalog::segments`)
//! also run on the owner thread (or on a read-only connection: WAL lets
//! readers run beside the writer).
//!
//! # Configuration
//!
//! [`machine::Settings`] comes from `vms.toml`:
//!
//! * `recording.retention_days` (90): now enforced by the daemon, so the
//!   generated MediaMTX config must say `recordDeleteAfter: 0s` (MediaMTX
//!   deleting by age alone is what lets a disk fill).
//! * `[[cameras]] retention_days` (optional): a per-camera override.
//! * `storage.min_free` (a size, unset by default) or
//!   `storage.min_free_percent` (5): the free-space floor; unset `min_free`
//!   means the larger of the percentage and one hour of the measured write
//!   rate of all cameras.
//! * `storage.retention_interval` (1 h) and `storage.delete_batch` (500).
//! * `backup.enabled` (false): retention keeps what is not uploaded yet and
//!   eviction takes uploaded footage first.
//!
//! The catalog file is `<state.dir>/storage.db` (no key).
//!
//! # Times
//!
//! Segment start times come from the file names MediaMTX writes,
//! `<root>/cam_<id>/<YYYY-MM-DD>/<HH-MM-SS-ffffff>.mp4`, in MediaMTX's local
//! time zone (`general.timezone`, passed to it as `TZ`). The catalog stores
//! every time as integer microseconds since the Unix epoch (UTC): 8 bytes a
//! value and exact round trips of the `%f` microseconds, which matters at
//! millions of rows.

pub mod backup;
pub mod catalog;
pub mod db;
pub mod exec;
pub mod holds;
pub mod ledger;
pub mod machine;
pub mod metrics;

#[cfg(test)]
mod bench;

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{AlertEvent, Issue, Phase};

/// The catalog's file name in the state directory.
pub const CATALOG_FILE: &str = "storage.db";

/// Microseconds since the Unix epoch, UTC: how the catalog stores time.
pub type Micros = i64;

pub fn to_micros(t: DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

pub fn from_micros(us: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub const SECOND: Micros = 1_000_000;
pub const HOUR: Micros = 3600 * SECOND;
pub const DAY: Micros = 24 * HOUR;

/// Why a stretch of time has no footage. The snake_case names are the
/// `cause` field of the ledger API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The camera's stream was down (or the camera offline).
    CameraDown,
    /// The stream was up but the segment file stopped growing.
    RecordingStalled,
    /// MediaMTX was down, hung or restarting: every camera.
    MediamtxDown,
    /// The recordings disk was full (MediaMTX could not write).
    DiskFull,
    /// Footage was recorded and later evicted to keep the free-space floor.
    Evicted,
    /// Footage was recorded and later deleted by retention (or removed by
    /// someone else while the daemon was down).
    Deleted,
    /// Before the camera's first segment.
    BeforeCameraExisted,
    /// The daemon was not running.
    DaemonDown,
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::CameraDown => "camera_down",
            Cause::RecordingStalled => "recording_stalled",
            Cause::MediamtxDown => "mediamtx_down",
            Cause::DiskFull => "disk_full",
            Cause::Evicted => "evicted",
            Cause::Deleted => "deleted",
            Cause::BeforeCameraExisted => "before_camera_existed",
            Cause::DaemonDown => "daemon_down",
            Cause::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Cause> {
        Some(match s {
            "camera_down" => Cause::CameraDown,
            "recording_stalled" => Cause::RecordingStalled,
            "mediamtx_down" => Cause::MediamtxDown,
            "disk_full" => Cause::DiskFull,
            "evicted" => Cause::Evicted,
            "deleted" => Cause::Deleted,
            "before_camera_existed" => Cause::BeforeCameraExisted,
            "daemon_down" => Cause::DaemonDown,
            "unknown" => Cause::Unknown,
            _ => return None,
        })
    }

    /// The cause interval an alert event opens or closes, if any:
    /// `(camera or None for all, cause, opens)`. The daemon passes every
    /// alert event it raises through this and feeds the result to the
    /// machine as `Event::Cause`.
    pub fn from_alert(e: &AlertEvent) -> Option<CauseChange> {
        let cause = match e.issue {
            Issue::StreamDown | Issue::CameraOffline => Cause::CameraDown,
            Issue::RecordingStalled | Issue::RecordingStopped => Cause::RecordingStalled,
            Issue::MediamtxDown => Cause::MediamtxDown,
            // Recovery events close what the problem opened.
            Issue::StreamRecovered => {
                return Some(CauseChange {
                    camera: e.camera.as_ref().map(|c| c.id),
                    cause: Cause::CameraDown,
                    active: false,
                    since: None,
                })
            }
            Issue::RecordingRecovered => {
                return Some(CauseChange {
                    camera: e.camera.as_ref().map(|c| c.id),
                    cause: Cause::RecordingStalled,
                    active: false,
                    since: None,
                })
            }
            _ => return None,
        };
        let active = match e.phase {
            Phase::Firing => true,
            Phase::Resolved => false,
            Phase::Notice => return None,
        };
        Some(CauseChange {
            camera: if cause == Cause::MediamtxDown {
                None
            } else {
                e.camera.as_ref().map(|c| c.id)
            },
            cause,
            active,
            since: if active { e.last_recording } else { None },
        })
    }
}

/// A cause interval opens (`active`) or closes, for one camera or (None)
/// for every camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseChange {
    pub camera: Option<u32>,
    pub cause: Cause,
    pub active: bool,
    /// When the problem really began, if known before it was detected (the
    /// camera's last segment data): the interval opens there.
    pub since: Option<DateTime<Utc>>,
}

/// A segment file name decoded: the camera and the start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub camera: u32,
    pub start: Micros,
    /// The path relative to the recordings root (`cam_5/2026-11-25/10-00-00-000001.mp4`).
    pub rel: String,
}

/// Decodes `cam_<id>/<YYYY-MM-DD>/<HH-MM-SS-ffffff>.mp4` (relative to the
/// recordings root, or absolute under `root`), with the date and time in
/// `tz`. `None` for anything else. A local time that occurs twice (the end
/// of daylight saving time) takes the earlier instant.
pub fn parse_segment(root: &Path, file: &Path, tz: chrono_tz::Tz) -> Option<SegmentName> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let rel = rel.to_str()?;
    let mut parts = rel.split('/');
    let (cam, day, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let camera: u32 = cam.strip_prefix("cam_")?.parse().ok()?;
    let start = parse_start(day, name, tz)?;
    Some(SegmentName {
        camera,
        start,
        rel: rel.to_string(),
    })
}

/// The start time of a segment from its day directory and file name.
pub fn parse_start(day: &str, name: &str, tz: chrono_tz::Tz) -> Option<Micros> {
    start_on(parse_day(day)?, name, tz)
}

/// A day directory's name (`YYYY-MM-DD`).
pub fn parse_day(day: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// The start time of a segment file `name` in the directory of `date`.
pub fn start_on(date: NaiveDate, name: &str, tz: chrono_tz::Tz) -> Option<Micros> {
    let stem = name.strip_suffix(".mp4")?;
    // HH-MM-SS-ffffff
    let b = stem.as_bytes();
    if b.len() != 15 || b[2] != b'-' || b[5] != b'-' || b[8] != b'-' {
        return None;
    }
    let num = |s: &str| -> Option<u32> {
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let time = NaiveTime::from_hms_micro_opt(
        num(&stem[0..2])?,
        num(&stem[3..5])?,
        num(&stem[6..8])?,
        num(&stem[9..15])?,
    )?;
    let local = tz.from_local_datetime(&date.and_time(time)).earliest()?;
    Some(local.with_timezone(&Utc).timestamp_micros())
}

/// The relative path MediaMTX gives a segment of `camera` starting at `start`.
pub fn segment_rel_path(camera: u32, start: Micros, tz: chrono_tz::Tz) -> String {
    let t = from_micros(start).with_timezone(&tz);
    format!(
        "cam_{camera}/{}/{}-{:06}.mp4",
        t.format("%Y-%m-%d"),
        t.format("%H-%M-%S"),
        t.timestamp_subsec_micros()
    )
}

/// What a storage alert is about. The lead's mapping to [`Issue`]:
/// `DiskFull` → a new `disk_full` issue ("disco cheio", one incident for all
/// cameras), `FootageEvicted` → `footage_evicted`, `FloorUnrestorable` →
/// `disk_floor_unrestorable`, `RetentionBlockedByBackup` →
/// `retention_blocked_by_backup`, `RetentionShort` → `retention_short`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageIssue {
    DiskFull,
    FootageEvicted,
    FloorUnrestorable,
    RetentionBlockedByBackup,
    RetentionShort,
}

impl StorageIssue {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageIssue::DiskFull => "disk_full",
            StorageIssue::FootageEvicted => "footage_evicted",
            StorageIssue::FloorUnrestorable => "disk_floor_unrestorable",
            StorageIssue::RetentionBlockedByBackup => "retention_blocked_by_backup",
            StorageIssue::RetentionShort => "retention_short",
        }
    }
}

/// One camera's share of an eviction episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvictedRange {
    pub camera: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub hours: f64,
    pub bytes: u64,
    pub segments: u64,
}

/// An alert the storage machine raises. The daemon maps it to an
/// `AlertEvent` (same `key`, `severity`, `phase`; `details` as the details;
/// `camera` with its name from the config).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageAlert {
    pub at: DateTime<Utc>,
    pub severity: crate::events::Severity,
    pub phase: Phase,
    /// Dedup key: `disk:full`, `storage:floor`, `storage:footage_evicted`,
    /// `storage:retention_backup`, `camera:<id>:retention_short`.
    pub key: String,
    pub issue: StorageIssue,
    pub camera: Option<u32>,
    /// A short technical detail (English).
    pub details: String,
    /// The sentence for people, in pt-BR.
    pub summary_pt: String,
    /// For `FootageEvicted`: exactly what was deleted, per camera.
    pub evicted: Vec<EvictedRange>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn segment_names_round_trip_in_the_recorder_time_zone() {
        let tz: chrono_tz::Tz = "America/Sao_Paulo".parse().unwrap();
        let root = PathBuf::from("/var/lib/vms/recordings");
        let file = root.join("cam_5/2026-11-25/10-00-00-123456.mp4");
        let s = parse_segment(&root, &file, tz).unwrap();
        assert_eq!(s.camera, 5);
        assert_eq!(s.rel, "cam_5/2026-11-25/10-00-00-123456.mp4");
        // São Paulo is UTC-3.
        assert_eq!(
            from_micros(s.start).to_rfc3339(),
            "2026-11-25T13:00:00.123456+00:00"
        );
        assert_eq!(segment_rel_path(5, s.start, tz), s.rel);
        for bad in [
            "cam_x/2026-11-25/10-00-00-123456.mp4",
            "cam_5/2026-13-25/10-00-00-123456.mp4",
            "cam_5/2026-11-25/10-00-00.mp4",
            "cam_5/2026-11-25/10-00-00-123456.ts",
            "cam_5/2026-11-25/x/10-00-00-123456.mp4",
            "other/2026-11-25/10-00-00-123456.mp4",
        ] {
            assert_eq!(parse_segment(&root, &root.join(bad), tz), None, "{bad}");
        }
    }

    #[test]
    fn alerts_map_to_cause_intervals() {
        use crate::events::{CameraRef, Severity};
        let ev = |issue, phase| AlertEvent {
            at: Utc::now(),
            severity: Severity::Critical,
            phase,
            key: String::new(),
            issue,
            camera: Some(CameraRef {
                id: 3,
                name: "c".into(),
            }),
            recovery_attempts: 0,
            last_recording: None,
            details: String::new(),
        };
        assert_eq!(
            Cause::from_alert(&ev(Issue::StreamDown, Phase::Firing)),
            Some(CauseChange {
                camera: Some(3),
                cause: Cause::CameraDown,
                active: true,
                since: None,
            })
        );
        assert_eq!(
            Cause::from_alert(&ev(Issue::RecordingRecovered, Phase::Notice)),
            Some(CauseChange {
                camera: Some(3),
                cause: Cause::RecordingStalled,
                active: false,
                since: None,
            })
        );
        assert_eq!(
            Cause::from_alert(&ev(Issue::MediamtxDown, Phase::Resolved)),
            Some(CauseChange {
                camera: None,
                cause: Cause::MediamtxDown,
                active: false,
                since: None,
            })
        );
        assert_eq!(
            Cause::from_alert(&ev(Issue::DiskWarning, Phase::Firing)),
            None
        );
        for c in [
            Cause::CameraDown,
            Cause::RecordingStalled,
            Cause::MediamtxDown,
            Cause::DiskFull,
            Cause::Evicted,
            Cause::Deleted,
            Cause::BeforeCameraExisted,
            Cause::DaemonDown,
            Cause::Unknown,
        ] {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
        }
    }
}
