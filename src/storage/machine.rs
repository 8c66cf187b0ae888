//! The storage decisions, as a synchronous state machine:
//! `handle(now, event) -> Vec<Action>`. No I/O: the daemon runs the actions
//! (see the table in [`super`]) and feeds their results back as events.
//!
//! * **Complete segments**: a close event is not proof (after ENOSPC the
//!   writer still closes the cut-off file). A segment is complete when the
//!   next segment of its camera gets bytes (`next_segment`), or when it was
//!   closed `settle` ago with nothing wrong since (`closed_clean`). If the
//!   disk was full while it was written, or its camera then closed an empty
//!   segment, it is `cut_short`; with no bytes it is `empty`.
//! * **Bytes, not events, are recording**: a segment that stays at 0 bytes
//!   records nothing.
//! * **Disk full**: empty segments closed by two or more cameras (or by every
//!   camera that records) within [`DISK_FULL_WINDOW`], a MediaMTX write error,
//!   or a disk sample with almost nothing free, is one `disk:full` incident
//!   ("disco cheio") and one `disk_full` cause interval for every camera.
//!   Resolved when a segment grows again with space free.
//! * **Retention**: at start (after the reconciliation) and every
//!   `sweep_interval`, segments whose end is older than the camera's
//!   retention go, oldest first, in batches of `batch`; never a segment
//!   being written, never a held one, and with backup on never one not yet
//!   uploaded (a Warning says how much footage that keeps past retention).
//! * **Disk pressure**: below the free-space floor (configured, or the larger
//!   of `floor_percent` of the disk and one hour of the measured write rate
//!   of all cameras) the oldest unheld footage is evicted (uploaded footage
//!   first with backup on) until the floor plus a tenth is free; then one
//!   `footage_evicted` alert says per camera what went. If nothing deletable
//!   is left, one Critical says the floor cannot be restored.
//! * **Forecast and compliance**: from the write rate of the last hour,
//!   the days of footage the disk holds and the days until it reaches the
//!   floor; per camera the days of footage on disk against its retention
//!   (a Warning, with the reason, when it is short).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalog::{
    CandidateBatch, CandidateQuery, CatalogOp, CompleteReason, Purpose, ReconcileReport,
    SegmentRow, Summary, HISTORY_AFTER_DELETE,
};
use super::exec::{DeleteOutcome, DiskSample};
use super::{
    from_micros, parse_segment, to_micros, Cause, CauseChange, EvictedRange, Micros, SegmentName,
    StorageAlert, StorageIssue, DAY, HOUR, SECOND,
};
use crate::events::{Phase, Severity};

/// Empty segments from several cameras within this window are one full disk.
pub const DISK_FULL_WINDOW: Duration = Duration::from_secs(10);

/// How soon the summary is taken again while a camera is missing from it.
const SUMMARY_SOON: Micros = 10 * SECOND;
/// Below this much free space (or two seconds of writing) the disk is full.
const FULL_BYTES: u64 = 1 << 20;
const MEBI: f64 = 1024.0 * 1024.0;
const GIBI: f64 = 1024.0 * MEBI;

/// The storage settings (`[storage]` and `[recording]` in `vms.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `recording.retention_days`.
    pub retention_days: u32,
    /// Per camera overrides (`[[cameras]] retention_days`).
    pub camera_retention_days: BTreeMap<u32, u32>,
    /// `storage.min_free`: a fixed floor; `None` = the default rule.
    pub min_free_bytes: Option<u64>,
    /// `storage.min_free_percent` (default 5).
    pub min_free_percent: f64,
    /// `backup.enabled`.
    pub backup_enabled: bool,
    /// `storage.retention_interval` (default 1 h).
    pub sweep_interval: Duration,
    /// `storage.delete_batch` (default 500 segments).
    pub batch: usize,
    /// How often the catalog summary is read (default 5 min).
    pub summary_interval: Duration,
    /// How often the heartbeat is written (default 10 s).
    pub heartbeat_interval: Duration,
    /// A closed segment with nothing wrong after this long is complete.
    pub settle: Duration,
    /// The size of a growing segment is written at most this often.
    pub grown_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention_days: 90,
            camera_retention_days: BTreeMap::new(),
            min_free_bytes: None,
            min_free_percent: 5.0,
            backup_enabled: false,
            sweep_interval: Duration::from_secs(3600),
            batch: 500,
            summary_interval: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(10),
            settle: Duration::from_secs(10),
            grown_every: Duration::from_secs(10),
        }
    }
}

/// A length of footage as a person reads it: `2.5 h`, `40 min`, `25 s`
/// (a few minutes evicted must not read as `0.0 h`).
pub fn span_text(hours: f64) -> String {
    if hours >= 1.0 {
        format!("{hours:.1} h")
    } else if hours * 60.0 >= 1.0 {
        format!("{:.0} min", hours * 60.0)
    } else {
        format!("{:.0} s", hours * 3600.0)
    }
}

/// An amount of bytes as a person reads it: `1.25 GiB`, `350.0 MiB`.
pub fn bytes_text(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= GIBI {
        format!("{:.2} GiB", b / GIBI)
    } else if b >= MEBI {
        format!("{:.1} MiB", b / MEBI)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

fn us(d: Duration) -> Micros {
    d.as_micros() as Micros
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The daemon started (the catalog is open).
    Started,
    /// Time passed (every few seconds).
    Tick,
    Settings(Settings),
    /// The configured cameras: id and name.
    Cameras(Vec<(u32, String)>),
    /// inotify: the segment file was created or grew; `bytes` its size now.
    SegmentData {
        camera: u32,
        file: PathBuf,
        bytes: u64,
    },
    /// inotify: the segment file was closed after writing.
    SegmentClosed {
        camera: u32,
        file: PathBuf,
        bytes: u64,
    },
    /// MediaMTX logged a write error ("no space left on device").
    WriteFailed {
        camera: Option<u32>,
    },
    /// The recordings filesystem's space.
    Disk(DiskSample),
    /// A cause interval opens or closes (from the daemon's alerts).
    Cause(CauseChange),
    /// inotify overflowed or the recordings root was re-created.
    Rescan,
    Reconciled(ReconcileReport),
    Summary(Summary),
    Candidates(CandidateBatch),
    Deleted(DeleteOutcome),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `catalog::apply(conn, &ops)`.
    Catalog(Vec<CatalogOp>),
    /// `catalog::start_session` (when `session_start`) then
    /// `catalog::reconcile`; feed back `Event::Reconciled`.
    Reconcile {
        session_start: bool,
    },
    /// `catalog::summary`; feed back `Event::Summary`.
    Summarize,
    /// `exec::disk_sample`; feed back `Event::Disk`.
    SampleDisk,
    /// `catalog::candidates`; feed back `Event::Candidates`.
    FindCandidates(CandidateQuery),
    /// `exec::delete_segments`; feed back `Event::Deleted`.
    Delete {
        purpose: Purpose,
        segments: Vec<SegmentRow>,
    },
    /// `catalog::maintain(conn, root, purge_before, 10_000)`.
    Maintain {
        purge_before: Micros,
    },
    Alert(StorageAlert),
}

#[derive(Debug, Clone)]
struct Current {
    seg: SegmentName,
    bytes: u64,
    last_data: Micros,
    written_at: Micros,
    written_bytes: u64,
}

/// A segment no longer written that is not complete yet.
#[derive(Debug, Clone)]
struct Unsettled {
    seg: SegmentName,
    bytes: u64,
    end: Micros,
    closed_at: Micros,
}

#[derive(Debug, Clone, Default)]
struct Cam {
    name: Option<String>,
    current: Option<Current>,
    unsettled: Vec<Unsettled>,
    last_empty_close: Option<Micros>,
    /// When a segment of this camera last grew.
    last_growth: Option<Micros>,
}

#[derive(Debug, Clone, Default)]
struct Episode {
    per_camera: BTreeMap<u32, EvictedRange>,
}

/// Per camera compliance and footage, for status, the dashboard and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraStorage {
    pub camera: u32,
    pub footage_days: f64,
    pub required_days: u32,
    pub compliant: bool,
    /// Why it is short: `evictions`, `disk_too_small`, `footage_missing`.
    pub reason: Option<&'static str>,
    pub segments: u64,
    pub bytes: u64,
    pub evicted_segments: u64,
    pub evicted_bytes: u64,
    pub evicted_hours: f64,
}

/// What `status`, the API and the metrics show about storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageView {
    pub disk: Option<DiskSample>,
    pub floor_bytes: Option<u64>,
    pub write_bytes_per_second: f64,
    /// Days of footage the disk holds at the current write rate.
    pub capacity_days: Option<f64>,
    /// Days until the free space reaches the floor (then eviction starts);
    /// `None` when retention keeps it from ever getting there.
    pub days_until_full: Option<f64>,
    pub disk_full: bool,
    pub evicting: bool,
    pub evictions_total: u64,
    pub evicted_bytes_total: u64,
    pub evicted_hours_total: f64,
    pub retention_deleted_total: u64,
    pub catalog_bytes: u64,
    pub cameras: Vec<CameraStorage>,
}

pub struct Machine {
    root: PathBuf,
    tz: chrono_tz::Tz,
    settings: Settings,
    cams: BTreeMap<u32, Cam>,
    started: bool,
    reconciled: bool,
    reconciling: bool,
    job: Option<Purpose>,
    /// Retention: the last batch was full, so there may be more.
    next_sweep: Option<Micros>,
    next_summary: Micros,
    next_heartbeat: Micros,
    next_maintain: Micros,
    disk: Option<DiskSample>,
    summary: Option<Summary>,
    disk_full_since: Option<Micros>,
    disk_full_ended: Option<Micros>,
    episode: Option<Episode>,
    floor_alert: bool,
    backup_alert: bool,
    short_alerts: BTreeSet<u32>,
    evictions_total: u64,
    evicted_bytes_total: u64,
    evicted_us_total: Micros,
    retention_deleted_total: u64,
}

impl Machine {
    /// `root` is the recordings root and `tz` MediaMTX's time zone (the
    /// file names are decoded, never read).
    pub fn new(root: PathBuf, tz: chrono_tz::Tz, settings: Settings) -> Machine {
        Machine {
            root,
            tz,
            settings,
            cams: BTreeMap::new(),
            started: false,
            reconciled: false,
            reconciling: false,
            job: None,
            next_sweep: None,
            next_summary: 0,
            next_heartbeat: 0,
            next_maintain: 0,
            disk: None,
            summary: None,
            disk_full_since: None,
            disk_full_ended: None,
            episode: None,
            floor_alert: false,
            backup_alert: false,
            short_alerts: BTreeSet::new(),
            evictions_total: 0,
            evicted_bytes_total: 0,
            evicted_us_total: 0,
            retention_deleted_total: 0,
        }
    }

    pub fn handle(&mut self, now: DateTime<Utc>, event: Event) -> Vec<Action> {
        let now_us = to_micros(now);
        let mut ops = Vec::new();
        let mut out = Vec::new();
        match event {
            Event::Started => {
                self.started = true;
                self.reconciling = true;
                out.push(Action::Reconcile {
                    session_start: true,
                });
                self.next_heartbeat = now_us + us(self.settings.heartbeat_interval);
            }
            Event::Tick => self.tick(now_us, &mut ops, &mut out),
            Event::Settings(s) => self.settings = s,
            Event::Cameras(list) => {
                for (id, name) in list {
                    self.cams.entry(id).or_default().name = Some(name);
                }
            }
            Event::SegmentData {
                camera,
                file,
                bytes,
            } => self.data(now_us, camera, file, bytes, &mut ops, &mut out),
            Event::SegmentClosed {
                camera,
                file,
                bytes,
            } => self.closed(now_us, camera, file, bytes, &mut ops, &mut out),
            Event::WriteFailed { camera } => {
                if let Some(c) = camera {
                    self.cams.entry(c).or_default().last_empty_close = Some(now_us);
                }
                self.open_disk_full(
                    now_us,
                    "MediaMTX could not write a segment",
                    &mut ops,
                    &mut out,
                );
            }
            Event::Disk(d) => self.disk(now_us, d, &mut ops, &mut out),
            Event::Cause(c) => ops.push(CatalogOp::Cause {
                camera: c.camera,
                cause: c.cause,
                active: c.active,
                at: c.since.map_or(now_us, |t| to_micros(t).min(now_us)),
            }),
            Event::Rescan => {
                if !self.reconciling {
                    self.reconciling = true;
                    out.push(Action::Reconcile {
                        session_start: false,
                    });
                }
            }
            Event::Reconciled(report) => {
                self.reconciling = false;
                self.reconciled = true;
                // What was being written when the daemon stopped: complete
                // once the camera writes again, or after the settle time.
                for row in report.open {
                    let cam = self.cams.entry(row.camera).or_default();
                    let known = cam
                        .current
                        .as_ref()
                        .is_some_and(|c| c.seg.start == row.start)
                        || cam.unsettled.iter().any(|u| u.seg.start == row.start);
                    if !known {
                        cam.unsettled.push(Unsettled {
                            seg: SegmentName {
                                camera: row.camera,
                                start: row.start,
                                rel: row.path,
                            },
                            bytes: row.bytes,
                            end: row.end,
                            closed_at: now_us,
                        });
                    }
                }
                if self.next_sweep.is_none() {
                    self.next_sweep = Some(now_us);
                }
                out.push(Action::Summarize);
                self.next_summary = now_us + us(self.settings.summary_interval);
                self.tick(now_us, &mut ops, &mut out);
            }
            Event::Summary(s) => {
                // A camera without a segment in the summary yet (a new box,
                // a new camera): look again soon rather than in 5 minutes,
                // so the status shows its retention from its first minute.
                let missing = self
                    .cams
                    .keys()
                    .any(|id| !s.cameras.iter().any(|c| c.camera == *id));
                if missing {
                    self.next_summary = self.next_summary.min(now_us + SUMMARY_SOON);
                }
                self.summary = Some(s);
                self.evaluate(now_us, &mut out);
            }
            Event::Candidates(batch) => self.candidates(now_us, batch, &mut out),
            Event::Deleted(outcome) => self.deleted(now_us, outcome, &mut out),
        }
        if !ops.is_empty() {
            out.insert(0, Action::Catalog(ops));
        }
        out
    }

    fn retention_of(&self, camera: u32) -> u32 {
        self.settings
            .camera_retention_days
            .get(&camera)
            .copied()
            .unwrap_or(self.settings.retention_days)
    }

    fn tick(&mut self, now: Micros, ops: &mut Vec<CatalogOp>, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        if now >= self.next_heartbeat {
            ops.push(CatalogOp::Heartbeat { at: now });
            self.next_heartbeat = now + us(self.settings.heartbeat_interval);
        }
        // Settle closed segments.
        let settle = us(self.settings.settle);
        let full_since = self.disk_full_since;
        let full_ended = self.disk_full_ended;
        for cam in self.cams.values_mut() {
            let last_empty = cam.last_empty_close;
            let (due, keep): (Vec<Unsettled>, Vec<Unsettled>) = std::mem::take(&mut cam.unsettled)
                .into_iter()
                .partition(|u| u.closed_at + settle <= now);
            cam.unsettled = keep;
            for u in due {
                let cut = full_since.is_some()
                    || full_ended.is_some_and(|e| e >= u.seg.start)
                    || last_empty.is_some_and(|t| t >= u.seg.start);
                let reason = if u.bytes == 0 {
                    CompleteReason::Empty
                } else if cut {
                    CompleteReason::CutShort
                } else {
                    CompleteReason::ClosedClean
                };
                ops.push(CatalogOp::Complete {
                    seg: u.seg,
                    bytes: u.bytes,
                    end: u.end,
                    reason,
                });
            }
        }
        if !self.reconciled {
            return;
        }
        if self.job.is_none() && self.next_sweep.is_some_and(|t| now >= t) {
            self.next_sweep = None;
            self.find_retention(now, out);
        }
        if now >= self.next_summary {
            self.next_summary = now + us(self.settings.summary_interval);
            out.push(Action::Summarize);
        }
        if now >= self.next_maintain {
            self.next_maintain = now + us(self.settings.sweep_interval);
            out.push(Action::Maintain {
                purge_before: now - HISTORY_AFTER_DELETE,
            });
        }
    }

    fn find_retention(&mut self, now: Micros, out: &mut Vec<Action>) {
        let mut ids: BTreeSet<u32> = self.cams.keys().copied().collect();
        if let Some(s) = &self.summary {
            ids.extend(s.cameras.iter().map(|c| c.camera));
        }
        let cutoffs = ids
            .into_iter()
            .map(|id| (id, now - i64::from(self.retention_of(id)) * DAY))
            .collect();
        self.job = Some(Purpose::Retention);
        out.push(Action::FindCandidates(CandidateQuery {
            purpose: Purpose::Retention,
            limit: self.settings.batch,
            cutoffs,
            backup_enabled: self.settings.backup_enabled,
        }));
    }

    fn data(
        &mut self,
        now: Micros,
        camera: u32,
        file: PathBuf,
        bytes: u64,
        ops: &mut Vec<CatalogOp>,
        out: &mut Vec<Action>,
    ) {
        let Some(seg) = parse_segment(&self.root, &file, self.tz) else {
            return;
        };
        if seg.camera != camera {
            return;
        }
        let grown_every = us(self.settings.grown_every);
        let cam = self.cams.entry(camera).or_default();
        let same = cam
            .current
            .as_ref()
            .is_some_and(|c| c.seg.start == seg.start);
        if !same {
            if cam.unsettled.iter().any(|u| u.seg.start == seg.start) {
                // A late event about a segment already closed.
                return;
            }
            if let Some(prev) = cam.current.take() {
                cam.unsettled.push(Unsettled {
                    end: prev.last_data,
                    closed_at: now,
                    seg: prev.seg,
                    bytes: prev.bytes,
                });
            }
            ops.push(CatalogOp::Created {
                seg: seg.clone(),
                at: now,
            });
            cam.current = Some(Current {
                seg,
                bytes: 0,
                last_data: now,
                written_at: now,
                written_bytes: 0,
            });
        }
        let cur = cam.current.as_mut().expect("set above");
        if bytes <= cur.bytes {
            return;
        }
        // Bytes were written: this camera records.
        cur.bytes = bytes;
        cur.last_data = now;
        cam.last_growth = Some(now);
        if cur.written_bytes == 0 || now - cur.written_at >= grown_every {
            cur.written_at = now;
            cur.written_bytes = bytes;
            ops.push(CatalogOp::Grown {
                seg: cur.seg.clone(),
                bytes,
                at: now,
            });
        }
        // Everything before it is complete now.
        let start = cur.seg.start;
        let earlier: Vec<Unsettled> = std::mem::take(&mut cam.unsettled);
        let last_empty = cam.last_empty_close;
        for u in earlier {
            if u.seg.start >= start {
                cam.unsettled.push(u);
                continue;
            }
            let cut = self.disk_full_since.is_some()
                || self.disk_full_ended.is_some_and(|e| e >= u.seg.start)
                || last_empty.is_some_and(|t| t >= u.seg.start);
            let reason = if u.bytes == 0 {
                CompleteReason::Empty
            } else if cut {
                CompleteReason::CutShort
            } else {
                CompleteReason::NextSegment
            };
            ops.push(CatalogOp::Complete {
                seg: u.seg,
                bytes: u.bytes,
                end: u.end,
                reason,
            });
        }
        // Writing works again: the full disk is over if space is free.
        if let Some(since) = self.disk_full_since {
            let space = self
                .disk
                .is_none_or(|d| d.available_bytes >= self.full_bytes());
            if space && now > since {
                self.disk_full_since = None;
                self.disk_full_ended = Some(now);
                ops.push(CatalogOp::Cause {
                    camera: None,
                    cause: Cause::DiskFull,
                    active: false,
                    at: now,
                });
                out.push(Action::Alert(StorageAlert {
                    at: from_micros(now),
                    severity: Severity::Critical,
                    phase: Phase::Resolved,
                    key: "disk:full".into(),
                    issue: StorageIssue::DiskFull,
                    camera: None,
                    details: "segments grow again: the recordings disk has room".into(),
                    summary_pt: "disco cheio resolvido: a gravação voltou".into(),
                    evicted: Vec::new(),
                }));
            }
        }
    }

    fn closed(
        &mut self,
        now: Micros,
        camera: u32,
        file: PathBuf,
        bytes: u64,
        ops: &mut Vec<CatalogOp>,
        out: &mut Vec<Action>,
    ) {
        let Some(seg) = parse_segment(&self.root, &file, self.tz) else {
            return;
        };
        if seg.camera != camera {
            return;
        }
        let cam = self.cams.entry(camera).or_default();
        if cam
            .current
            .as_ref()
            .is_some_and(|c| c.seg.start == seg.start)
        {
            let cur = cam.current.take().expect("checked");
            let grew = bytes > cur.bytes;
            let bytes = bytes.max(cur.bytes);
            let end = if grew { now } else { cur.last_data };
            if grew {
                cam.last_growth = Some(now);
            }
            cam.unsettled.push(Unsettled {
                seg: cur.seg,
                bytes,
                end,
                closed_at: now,
            });
        } else if let Some(u) = cam.unsettled.iter_mut().find(|u| u.seg.start == seg.start) {
            u.bytes = u.bytes.max(bytes);
        } else {
            ops.push(CatalogOp::Created {
                seg: seg.clone(),
                at: now,
            });
            cam.unsettled.push(Unsettled {
                seg,
                bytes,
                end: now,
                closed_at: now,
            });
        }
        if bytes == 0 {
            cam.last_empty_close = Some(now);
            self.check_disk_full(now, ops, out);
        }
    }

    fn full_bytes(&self) -> u64 {
        FULL_BYTES.max((self.write_rate() * 2.0) as u64)
    }

    /// Empty segments closed by several cameras at once are a full disk.
    fn check_disk_full(&mut self, now: Micros, ops: &mut Vec<CatalogOp>, out: &mut Vec<Action>) {
        if self.disk_full_since.is_some() {
            return;
        }
        let window = us(DISK_FULL_WINDOW);
        let failing = self
            .cams
            .values()
            .filter(|c| c.last_empty_close.is_some_and(|t| now - t <= window))
            .count();
        let recording = self
            .cams
            .values()
            .filter(|c| {
                c.last_growth.is_some_and(|t| now - t <= 60 * SECOND)
                    || c.last_empty_close.is_some_and(|t| now - t <= window)
            })
            .count();
        let low = self
            .disk
            .is_some_and(|d| d.available_bytes < self.full_bytes());
        if failing >= 2 || (failing >= 1 && failing >= recording) || (failing >= 1 && low) {
            let detail = format!(
                "{failing} camera(s) closed empty segments within {} s",
                DISK_FULL_WINDOW.as_secs()
            );
            self.open_disk_full(now, &detail, ops, out);
        }
    }

    fn open_disk_full(
        &mut self,
        now: Micros,
        detail: &str,
        ops: &mut Vec<CatalogOp>,
        out: &mut Vec<Action>,
    ) {
        if self.disk_full_since.is_some() {
            return;
        }
        // The outage began at the first empty close.
        let window = us(DISK_FULL_WINDOW);
        let since = self
            .cams
            .values()
            .filter_map(|c| c.last_empty_close)
            .filter(|t| now - *t <= window)
            .min()
            .unwrap_or(now);
        self.disk_full_since = Some(since);
        ops.push(CatalogOp::Cause {
            camera: None,
            cause: Cause::DiskFull,
            active: true,
            at: since,
        });
        out.push(Action::Alert(StorageAlert {
            at: from_micros(now),
            severity: Severity::Critical,
            phase: Phase::Firing,
            key: "disk:full".into(),
            issue: StorageIssue::DiskFull,
            camera: None,
            details: format!("recordings disk full: {detail}"),
            summary_pt: "disco cheio: o MediaMTX não consegue gravar em nenhuma câmera".into(),
            evicted: Vec::new(),
        }));
        // A fresh sample starts the eviction now rather than at the next check.
        out.push(Action::SampleDisk);
    }

    /// Bytes per second written by all cameras (the last hour's segments).
    fn write_rate(&self) -> f64 {
        self.summary.as_ref().map_or(0.0, |s| {
            s.cameras
                .iter()
                .map(|c| c.bytes_last_hour as f64)
                .sum::<f64>()
                / 3600.0
        })
    }

    /// The free-space floor for a disk of `total` bytes.
    pub fn floor(&self, total: u64) -> u64 {
        if let Some(b) = self.settings.min_free_bytes {
            return b;
        }
        let pct = (total as f64 * self.settings.min_free_percent / 100.0) as u64;
        pct.max((self.write_rate() * 3600.0) as u64)
    }

    fn disk(
        &mut self,
        now: Micros,
        d: DiskSample,
        ops: &mut Vec<CatalogOp>,
        out: &mut Vec<Action>,
    ) {
        self.disk = Some(d);
        if d.available_bytes < self.full_bytes() {
            let failing = self.cams.values().any(|c| {
                c.last_empty_close
                    .is_some_and(|t| now - t <= us(DISK_FULL_WINDOW))
            });
            if failing {
                self.open_disk_full(now, "no space left on the recordings disk", ops, out);
            }
        }
        if !self.reconciled {
            return;
        }
        let floor = self.floor(d.total_bytes);
        if d.available_bytes < floor {
            if self.episode.is_none() {
                self.episode = Some(Episode::default());
            }
            if self.job.is_none() {
                self.find_eviction(out);
            }
        } else if self.job.is_none() {
            self.finish_episode(now, out);
            self.resolve_floor(now, out);
        }
    }

    fn find_eviction(&mut self, out: &mut Vec<Action>) {
        self.job = Some(Purpose::Eviction);
        out.push(Action::FindCandidates(CandidateQuery {
            purpose: Purpose::Eviction,
            limit: self.settings.batch,
            cutoffs: Vec::new(),
            backup_enabled: self.settings.backup_enabled,
        }));
    }

    fn is_current(&self, s: &SegmentRow) -> bool {
        self.cams.get(&s.camera).is_some_and(|c| {
            c.current
                .as_ref()
                .is_some_and(|cur| cur.seg.start == s.start)
                || c.unsettled.iter().any(|u| u.seg.start == s.start)
        })
    }

    fn candidates(&mut self, now: Micros, batch: CandidateBatch, out: &mut Vec<Action>) {
        let full = batch.more;
        let segs: Vec<SegmentRow> = batch
            .segments
            .into_iter()
            .filter(|s| !self.is_current(s))
            .collect();
        match batch.purpose {
            Purpose::Retention => {
                if let Some(b) = batch.blocked_by_backup {
                    self.backup_blocked(now, b, out);
                }
                if segs.is_empty() {
                    self.job = None;
                    self.next_sweep = Some(now + us(self.settings.sweep_interval));
                    return;
                }
                if !full {
                    self.next_sweep = Some(now + us(self.settings.sweep_interval));
                }
                out.push(Action::Delete {
                    purpose: Purpose::Retention,
                    segments: segs,
                });
            }
            Purpose::Eviction => {
                let Some(d) = self.disk else {
                    self.job = None;
                    return;
                };
                let floor = self.floor(d.total_bytes);
                let target = floor + floor / 10;
                if segs.is_empty() {
                    self.job = None;
                    if d.available_bytes < floor {
                        self.finish_episode(now, out);
                        self.floor_unrestorable(now, d, floor, out);
                    }
                    return;
                }
                let mut need = target.saturating_sub(d.available_bytes);
                let mut chosen = Vec::new();
                for s in segs {
                    if need == 0 {
                        break;
                    }
                    need = need.saturating_sub(s.bytes);
                    chosen.push(s);
                }
                if chosen.is_empty() {
                    self.job = None;
                    return;
                }
                out.push(Action::Delete {
                    purpose: Purpose::Eviction,
                    segments: chosen,
                });
            }
        }
    }

    fn deleted(&mut self, now: Micros, o: DeleteOutcome, out: &mut Vec<Action>) {
        self.job = None;
        if let Some(d) = o.disk {
            self.disk = Some(d);
        }
        match o.purpose {
            Purpose::Retention => {
                self.retention_deleted_total += o.deleted.len() as u64;
                // A full batch may have more behind it; a batch that deleted
                // nothing (files that cannot be removed) ends the sweep.
                if self.next_sweep.is_none() && !o.deleted.is_empty() {
                    self.find_retention(now, out);
                } else if self.next_sweep.is_none() {
                    self.next_sweep = Some(now + us(self.settings.sweep_interval));
                }
            }
            Purpose::Eviction => {
                let ep = self.episode.get_or_insert_with(Episode::default);
                for s in &o.deleted {
                    self.evictions_total += 1;
                    self.evicted_bytes_total += s.bytes;
                    self.evicted_us_total += s.end - s.start;
                    let r = ep.per_camera.entry(s.camera).or_insert(EvictedRange {
                        camera: s.camera,
                        from: from_micros(s.start),
                        to: from_micros(s.end),
                        hours: 0.0,
                        bytes: 0,
                        segments: 0,
                    });
                    r.from = r.from.min(from_micros(s.start));
                    r.to = r.to.max(from_micros(s.end));
                    r.hours += (s.end - s.start) as f64 / HOUR as f64;
                    r.bytes += s.bytes;
                    r.segments += 1;
                }
                let Some(d) = self.disk else { return };
                let floor = self.floor(d.total_bytes);
                if o.deleted.is_empty() {
                    self.finish_episode(now, out);
                    if d.available_bytes < floor {
                        self.floor_unrestorable(now, d, floor, out);
                    }
                } else if d.available_bytes < floor + floor / 10 {
                    self.find_eviction(out);
                } else {
                    self.finish_episode(now, out);
                    self.resolve_floor(now, out);
                }
            }
        }
    }

    fn finish_episode(&mut self, now: Micros, out: &mut Vec<Action>) {
        let Some(ep) = self.episode.take() else {
            return;
        };
        if ep.per_camera.is_empty() {
            return;
        }
        let ranges: Vec<EvictedRange> = ep.per_camera.into_values().collect();
        let fmt_range = |r: &EvictedRange| {
            let tz = self.tz;
            format!(
                "câmera {}: {} a {} ({})",
                r.camera,
                r.from.with_timezone(&tz).format("%d/%m %H:%M"),
                r.to.with_timezone(&tz).format("%d/%m %H:%M"),
                span_text(r.hours)
            )
        };
        let total_h: f64 = ranges.iter().map(|r| r.hours).sum();
        let total_b: u64 = ranges.iter().map(|r| r.bytes).sum();
        let details = format!(
            "evicted {} ({}) of the oldest footage to keep the free-space floor: {}",
            span_text(total_h),
            bytes_text(total_b),
            ranges
                .iter()
                .map(|r| format!(
                    "camera {} {}..{} {}",
                    r.camera,
                    r.from.to_rfc3339(),
                    r.to.to_rfc3339(),
                    span_text(r.hours)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let summary_pt = format!(
            "disco quase cheio: {} das gravações mais antigas foram apagadas antes do prazo de retenção ({})",
            span_text(total_h),
            ranges.iter().map(fmt_range).collect::<Vec<_>>().join("; ")
        );
        out.push(Action::Alert(StorageAlert {
            at: from_micros(now),
            severity: Severity::Warning,
            phase: Phase::Notice,
            key: "storage:footage_evicted".into(),
            issue: StorageIssue::FootageEvicted,
            camera: None,
            details,
            summary_pt,
            evicted: ranges,
        }));
    }

    fn floor_unrestorable(
        &mut self,
        now: Micros,
        d: DiskSample,
        floor: u64,
        out: &mut Vec<Action>,
    ) {
        if self.floor_alert {
            return;
        }
        self.floor_alert = true;
        out.push(Action::Alert(StorageAlert {
            at: from_micros(now),
            severity: Severity::Critical,
            phase: Phase::Firing,
            key: "storage:floor".into(),
            issue: StorageIssue::FloorUnrestorable,
            camera: None,
            details: format!(
                "{:.0} MiB free, below the {:.0} MiB floor, and every segment left is held or being written",
                d.available_bytes as f64 / MEBI,
                floor as f64 / MEBI
            ),
            summary_pt: format!(
                "disco quase cheio e nada mais pode ser apagado (o resto está sob retenção legal): {:.0} MiB livres, mínimo {:.0} MiB",
                d.available_bytes as f64 / MEBI,
                floor as f64 / MEBI
            ),
            evicted: Vec::new(),
        }));
    }

    fn resolve_floor(&mut self, now: Micros, out: &mut Vec<Action>) {
        if !self.floor_alert {
            return;
        }
        self.floor_alert = false;
        out.push(Action::Alert(StorageAlert {
            at: from_micros(now),
            severity: Severity::Critical,
            phase: Phase::Resolved,
            key: "storage:floor".into(),
            issue: StorageIssue::FloorUnrestorable,
            camera: None,
            details: "free space is above the floor again".into(),
            summary_pt: "espaço livre acima do mínimo novamente".into(),
            evicted: Vec::new(),
        }));
    }

    fn backup_blocked(
        &mut self,
        now: Micros,
        b: super::catalog::BlockedByBackup,
        out: &mut Vec<Action>,
    ) {
        if b.segments > 0 {
            let hours_late = b.oldest.map_or(0.0, |o| (now - o) as f64 / HOUR as f64);
            let key_open = self.backup_alert;
            self.backup_alert = true;
            if key_open {
                return;
            }
            out.push(Action::Alert(StorageAlert {
                at: from_micros(now),
                severity: Severity::Warning,
                phase: Phase::Firing,
                key: "storage:retention_backup".into(),
                issue: StorageIssue::RetentionBlockedByBackup,
                camera: None,
                details: format!(
                    "{} segment(s), {:.2} GiB, are past retention but not backed up yet; the oldest started {:.1} h ago",
                    b.segments,
                    b.bytes as f64 / GIBI,
                    hours_late
                ),
                summary_pt: format!(
                    "{} segmentos ({:.2} GiB) passaram do prazo de retenção e continuam no disco porque o backup ainda não os enviou",
                    b.segments,
                    b.bytes as f64 / GIBI
                ),
                evicted: Vec::new(),
            }));
        } else if self.backup_alert {
            self.backup_alert = false;
            out.push(Action::Alert(StorageAlert {
                at: from_micros(now),
                severity: Severity::Warning,
                phase: Phase::Resolved,
                key: "storage:retention_backup".into(),
                issue: StorageIssue::RetentionBlockedByBackup,
                camera: None,
                details: "nothing past retention waits for the backup".into(),
                summary_pt: "nenhum segmento vencido aguarda o backup".into(),
                evicted: Vec::new(),
            }));
        }
    }

    /// Days of footage the disk holds at the current write rate.
    fn capacity_days(&self) -> Option<f64> {
        let d = self.disk?;
        let rate = self.write_rate();
        if rate <= 0.0 {
            return None;
        }
        let footage: u64 = self
            .summary
            .as_ref()
            .map_or(0, |s| s.cameras.iter().map(|c| c.bytes_on_disk).sum());
        let usable = (footage + d.available_bytes).saturating_sub(self.floor(d.total_bytes));
        Some(usable as f64 / (rate * 86_400.0))
    }

    fn days_until_full(&self) -> Option<f64> {
        let d = self.disk?;
        let rate = self.write_rate();
        let cap = self.capacity_days()?;
        let max_ret = self
            .cams
            .keys()
            .map(|c| self.retention_of(*c))
            .max()
            .unwrap_or(self.settings.retention_days);
        if cap >= f64::from(max_ret) {
            return None;
        }
        let free = d.available_bytes.saturating_sub(self.floor(d.total_bytes));
        Some(free as f64 / (rate * 86_400.0))
    }

    fn camera_views(&self, now: Micros) -> Vec<CameraStorage> {
        let Some(s) = &self.summary else {
            return Vec::new();
        };
        let cap = self.capacity_days();
        s.cameras
            .iter()
            .map(|c| {
                let required = self.retention_of(c.camera);
                let footage_days = c
                    .oldest_on_disk
                    .map_or(0.0, |o| (now - o).max(0) as f64 / DAY as f64);
                let existed_days = (now - c.first_start).max(0) as f64 / DAY as f64;
                // Short: less than required, and the camera is older than
                // its footage by more than a day (footage went missing).
                let short =
                    footage_days + 1.0 < f64::from(required) && existed_days > footage_days + 1.0;
                let reason = short.then(|| {
                    if cap.is_some_and(|d| d < f64::from(required)) {
                        "disk_too_small"
                    } else if c
                        .last_evicted_at
                        .is_some_and(|t| t >= now - i64::from(required) * DAY)
                    {
                        "evictions"
                    } else {
                        "footage_missing"
                    }
                });
                CameraStorage {
                    camera: c.camera,
                    footage_days,
                    required_days: required,
                    compliant: !short,
                    reason,
                    segments: c.segments_on_disk,
                    bytes: c.bytes_on_disk,
                    evicted_segments: c.evicted_segments,
                    evicted_bytes: c.evicted_bytes,
                    evicted_hours: c.evicted_hours,
                }
            })
            .collect()
    }

    /// Compliance alerts from a fresh summary.
    fn evaluate(&mut self, now: Micros, out: &mut Vec<Action>) {
        for v in self.camera_views(now) {
            // Only configured cameras are judged.
            if self.cams.get(&v.camera).is_none_or(|c| c.name.is_none()) {
                continue;
            }
            let key = format!("camera:{}:retention_short", v.camera);
            if !v.compliant {
                if !self.short_alerts.insert(v.camera) {
                    continue;
                }
                let why_pt = match v.reason {
                    Some("disk_too_small") => format!(
                        "o disco não comporta {} dias ao ritmo de gravação atual",
                        v.required_days
                    ),
                    Some("evictions") => {
                        "gravações foram apagadas antes do prazo por falta de espaço".to_string()
                    }
                    _ => "gravações antigas não estão no disco".to_string(),
                };
                out.push(Action::Alert(StorageAlert {
                    at: from_micros(now),
                    severity: Severity::Warning,
                    phase: Phase::Firing,
                    key,
                    issue: StorageIssue::RetentionShort,
                    camera: Some(v.camera),
                    details: format!(
                        "camera {} has {} days of footage on disk; the required retention is {} ({})",
                        v.camera,
                        v.footage_days.floor(),
                        v.required_days,
                        v.reason.unwrap_or("unknown")
                    ),
                    summary_pt: format!(
                        "a câmera {} tem {} dias gravados; a retenção exigida é de {} ({})",
                        v.camera,
                        v.footage_days.floor(),
                        v.required_days,
                        why_pt
                    ),
                    evicted: Vec::new(),
                }));
            } else if self.short_alerts.remove(&v.camera) {
                out.push(Action::Alert(StorageAlert {
                    at: from_micros(now),
                    severity: Severity::Warning,
                    phase: Phase::Resolved,
                    key,
                    issue: StorageIssue::RetentionShort,
                    camera: Some(v.camera),
                    details: format!("camera {} has its required retention on disk", v.camera),
                    summary_pt: format!("a câmera {} voltou a ter a retenção exigida", v.camera),
                    evicted: Vec::new(),
                }));
            }
        }
    }

    /// The snapshot for `status`, the dashboard and the metrics.
    pub fn view(&self, now: DateTime<Utc>) -> StorageView {
        let now = to_micros(now);
        StorageView {
            disk: self.disk,
            floor_bytes: self.disk.map(|d| self.floor(d.total_bytes)),
            write_bytes_per_second: self.write_rate(),
            capacity_days: self.capacity_days(),
            days_until_full: self.days_until_full(),
            disk_full: self.disk_full_since.is_some(),
            evicting: self.job == Some(Purpose::Eviction),
            evictions_total: self.evictions_total,
            evicted_bytes_total: self.evicted_bytes_total,
            evicted_hours_total: self.evicted_us_total as f64 / HOUR as f64,
            retention_deleted_total: self.retention_deleted_total,
            catalog_bytes: self.summary.as_ref().map_or(0, |s| s.db_bytes),
            cameras: self.camera_views(now),
        }
    }
}

#[cfg(test)]
mod tests;
