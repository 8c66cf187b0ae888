//! Camera health and the recovery ladder of docs/design.md §4, as a synchronous state
//! machine: `handle(now, event) -> actions`.
//!
//! Facts come in as events: segment data seen by inotify, path state from
//! MediaMTX (the one-call poll and its log lines), MediaMTX up or down, ticks.
//! Decisions come out as actions: remove or re-create a path, raise or resolve
//! an alert, restart MediaMTX.
//!
//! * **Stream down**: the path is not available (or available with frozen
//!   inbound bytes and no data). Warning on the first failure, then level 1.
//! * **Recording stalled**: the path is available but the segment file has
//!   not grown for `stall_after` (MediaMTX appends a part about every second,
//!   so a rotation or a slow keyframe never comes near it). Then level 2.
//! * **Level 1**: remove the path, wait `recovery_remove_wait`, re-create it
//!   with its original config, wait `recovery_verify_wait`, verify by fresh
//!   segment data written after the re-creation (not by path state). Success
//!   is declared as soon as that data arrives.
//! * **Level 2**: level 1, then `recording_recheck_wait` more, then the
//!   recording must be alive; if not, Critical "recording stopped".
//! * **Level 3**: `failures_to_offline` failed attempts in a row: offline,
//!   Critical, no more attempts until a reset. MediaMTX still retries the
//!   camera by itself; if recording resumes, the camera comes back online on
//!   its own and the alert is resolved (an operator should not have to reset
//!   a camera that works).
//! * **Outer bound**: no segment data for `recording_stale` (docs/design.md §3.2:
//!   2 minutes) is a Critical "recording stopped" whatever else is going on.
//! * **Grace**: no judgement for `grace_period` after a start, a MediaMTX
//!   restart or a config change; stall timers start at the end of the grace.
//! * **Systemic guard**: while MediaMTX is down nothing is judged (the
//!   process supervisor owns that incident); if every camera (two or more)
//!   fails at the same moment, that is one incident and one MediaMTX restart,
//!   not N recoveries (at most once per `SYSTEMIC_COOLDOWN`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::clock::Now;
use crate::config::{Camera, Monitor};
use crate::events::{AlertEvent, CameraRef, Issue, Phase, Severity};
use crate::status::{CameraView, Health, Step};

/// Cameras failing within this window of each other fail "at the same moment".
const SYSTEMIC_WINDOW: Duration = Duration::from_secs(5);
/// A systemic restart is tried at most this often; after that, cameras that
/// are really all down (a dead switch) get their own ladders.
const SYSTEMIC_COOLDOWN: Duration = Duration::from_secs(600);
/// A recording stall found while every other camera is overdue too waits at
/// most this long for the others' verdict before it pages: the cameras'
/// stalls are found from the same 1 s path poll, so when a whole recorder
/// stops (the recordings root deleted, a hung disk) one camera can be found
/// a poll before the others. Without the wait that camera was paged, the
/// others then made it a systemic MediaMTX restart (one page too many).
const SYSTEMIC_HOLD: Duration = Duration::from_millis(1500);
/// A camera whose last write is older than its longest learned gap by this
/// much is overdue (late, not yet a stall).
const OVERDUE_MARGIN: Duration = Duration::from_millis(250);
/// How much longer than the longest gap between writes the camera has shown
/// (docs/cadence.md): a write overdue by this much is a stall.
const STALL_FACTOR_NUM: u32 = 3;
const STALL_FACTOR_DEN: u32 = 2;
const STALL_MARGIN: Duration = Duration::from_millis(500);
/// The shortest stall threshold: one part and a margin for a loaded box.
const STALL_FLOOR_MARGIN: Duration = Duration::from_millis(1500);
/// The longest gaps between writes are remembered over this window (two
/// halves, so that one odd gap is forgotten after 10 minutes at most).
const GAP_WINDOW: Duration = Duration::from_secs(300);
/// Late writes of most cameras that end within this time of each other are
/// one delay of the box (a disk busy with something else, a machine short of
/// CPU), not each camera's cadence (`CameraMachine::box_delay`).
const BURST_WINDOW: Duration = Duration::from_secs(1);
/// A camera that stalls again within this time after recovering is flapping:
/// the new episode is shown (Warning) but nobody is paged again for it.
const FLAP_WINDOW: Duration = Duration::from_secs(600);

/// A path as seen in `/v3/paths/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathObs {
    pub name: String,
    pub available: bool,
    pub inbound_bytes: u64,
    /// The session ids of its readers (HLS, WebRTC, RTSP sessions).
    pub readers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Time passed.
    Tick,
    /// MediaMTX answers its API (after a start or restart).
    MediamtxReady,
    /// MediaMTX is down, hung or being restarted.
    MediamtxDown,
    /// The result of one `/v3/paths/list` call.
    Paths(Vec<PathObs>),
    /// MediaMTX logged that a camera's stream became (un)available.
    PathAvailability { camera: u32, available: bool },
    /// The camera's segment file grew (or was created).
    SegmentData { camera: u32, file: PathBuf },
    /// A segment file was finalized (closed after writing).
    SegmentClosed { camera: u32, file: PathBuf },
    /// Manual reset (`camera reset ID`, `POST /api/cameras/{id}/reset`).
    Reset { camera: u32 },
    /// The set of cameras changed (hot reload).
    Cameras(Vec<Camera>),
    /// The recordings watcher missed events (its queue overflowed, or the
    /// root was deleted until it was re-created): the next gap between two
    /// writes of each camera is the watcher's blindness, not its cadence.
    WatchMissed,
    /// The recordings disk is full (`true`) or has room again: while full,
    /// no camera is judged (the disk is the one incident), and each gets a
    /// grace period when space is back.
    DiskFull(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `DELETE /v3/config/paths/delete/cam_{id}`.
    RemovePath { camera: u32 },
    /// `POST /v3/config/paths/replace/cam_{id}` with the original config.
    CreatePath { camera: u32 },
    /// Hand an event to the alert pipeline.
    Alert(AlertEvent),
    /// Every camera failed at once: restart MediaMTX (one incident, whose
    /// notice comes as an [`Action::Alert`] just before).
    RestartMediamtx { detail: String },
    /// A recovery attempt ended (for metrics).
    RecoveryFinished {
        camera: u32,
        level: u8,
        success: bool,
        duration: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Recovery {
    level: u8,
    step: Step,
    until: Instant,
    started: Instant,
    recreated_at: Option<Instant>,
}

/// How long the inbound byte count must stay still (over polls one
/// `api_poll_interval` apart) before the camera counts as silent, unless
/// its counter is known to be steady: two intervals without a byte, not
/// one. A camera at 1 or 2 fps sends a burst per frame, and a counter that
/// moves once a second can sit still between two polls a second apart while
/// the camera streams; taking that for silence made a stalled recorder a
/// Warning instead of a Critical page.
pub const FROZEN_AFTER: Duration = Duration::from_millis(1500);
/// A camera whose counter has moved at every one of this many polls in a
/// row, and has not paused for a poll within the last [`GAP_WINDOW`] or two,
/// has a steady counter (a camera at 5 fps or more sends within every poll
/// interval): one poll interval without a byte is silence.
const STEADY_POLLS: u32 = 10;
/// For a steady counter: still for at least this long (one poll interval,
/// whatever `api_poll_interval` is above it) is silence.
const FROZEN_AFTER_STEADY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
struct Cam {
    camera: Camera,
    health: Health,
    available: Option<bool>,
    available_since: Option<Instant>,
    inbound_bytes: u64,
    /// The inbound byte count has not moved for at least [`FROZEN_AFTER`]
    /// of polls while available.
    bytes_frozen: bool,
    /// The poll that last saw the count move (or the first one).
    bytes_moved_at: Option<Instant>,
    /// Polls in a row that saw the count move while available (kept while
    /// it stands still: the run before the stillness).
    moving_polls: u32,
    /// The last poll saw the count stand still while available.
    still: bool,
    /// The count stood still at a poll and then moved again while the path
    /// stayed available (a counter that pauses while the camera streams),
    /// in the current and the previous half of [`GAP_WINDOW`].
    counter_paused: [bool; 2],
    /// The inbound byte count grew after this instant: the time of the poll
    /// before the one that saw it grow (the bytes arrived in between).
    bytes_grew_after: Option<Instant>,
    /// The longest gaps between two writes, in the current and the previous
    /// half of [`GAP_WINDOW`]: within a segment (parts), and across a
    /// rotation (the new segment waits for a keyframe); and when the
    /// current half began.
    part_gap: [Duration; 2],
    rotation_gap: [Duration; 2],
    gap_since: Option<Instant>,
    /// A rotation was seen and learned: the cadence is known.
    rotation_seen: bool,
    /// The watcher missed events since the last write: the next gap is not
    /// learned.
    blind_gap: bool,
    /// The last write that came late within a segment (after `late_after`):
    /// when, the gap it ended, and the current half's longest part gap
    /// without it (with the gaps learned since), to be restored if the
    /// delay turns out to be the box's (`CameraMachine::box_delay`).
    late_write: Option<LateWrite>,
    /// The current segment was closed and the next has not written yet.
    between_segments: bool,
    /// When the last episode was resolved, and how many episodes came
    /// within [`FLAP_WINDOW`] of the one before.
    resolved_at: Option<Instant>,
    flaps: u32,
    last_data: Option<Instant>,
    last_data_wall: Option<DateTime<Utc>>,
    current_segment: Option<PathBuf>,
    segments_completed: u64,
    problem: Option<Issue>,
    recovery: Option<Recovery>,
    consecutive_failures: u32,
    offline_since: Option<Instant>,
    recoveries_total: u64,
    recovery_failures_total: u64,
    /// Alert keys this camera has open (so we resolve what we raised).
    open: Vec<Issue>,
    /// When the first of them was raised: segment data written after this
    /// proves the camera records again, whatever interrupted the ladder.
    opened_at: Option<Instant>,
    /// When a problem was first detected in the current episode.
    failed_at: Option<Instant>,
    /// A recording stall held back since then, waiting for the systemic
    /// verdict (`SYSTEMIC_HOLD`).
    held_since: Option<Instant>,
}

impl Cam {
    fn new(camera: Camera) -> Cam {
        Cam {
            camera,
            health: Health::Online,
            available: None,
            available_since: None,
            inbound_bytes: 0,
            bytes_frozen: false,
            bytes_moved_at: None,
            moving_polls: 0,
            still: false,
            counter_paused: [false; 2],
            bytes_grew_after: None,
            part_gap: [Duration::ZERO; 2],
            rotation_gap: [Duration::ZERO; 2],
            gap_since: None,
            rotation_seen: false,
            blind_gap: false,
            late_write: None,
            between_segments: false,
            resolved_at: None,
            flaps: 0,
            last_data: None,
            last_data_wall: None,
            current_segment: None,
            segments_completed: 0,
            problem: None,
            recovery: None,
            consecutive_failures: 0,
            offline_since: None,
            recoveries_total: 0,
            recovery_failures_total: 0,
            open: Vec::new(),
            opened_at: None,
            failed_at: None,
            held_since: None,
        }
    }

    /// One poll's inbound byte count: whether it moved, what that says of
    /// the counter's cadence, and whether the count is now frozen.
    /// `previous`: when the poll before this one answered. A still count
    /// at a poll less than [`FROZEN_AFTER_STEADY`] after it (an extra poll
    /// for an overdue camera, `poll_due`) may fall between two packets of
    /// a streaming camera: it says nothing of the counter's cadence.
    fn count_poll(&mut self, available: bool, bytes: u64, now: Instant, previous: Option<Instant>) {
        let moved = bytes != self.inbound_bytes;
        let soon = previous.is_some_and(|p| now.saturating_duration_since(p) < FROZEN_AFTER_STEADY);
        if !available {
            self.moving_polls = 0;
        } else if moved {
            if self.still {
                // Still, then moving again on a path that stayed available:
                // this counter pauses while the camera streams.
                self.counter_paused[0] = true;
                self.moving_polls = 0;
            }
            self.moving_polls = self.moving_polls.saturating_add(1);
        }
        if !available || moved || !soon {
            self.still = available && !moved;
        }
        if !available || moved || self.bytes_moved_at.is_none() {
            self.bytes_moved_at = Some(now);
        }
        let steady = self.moving_polls >= STEADY_POLLS && !self.counter_paused.contains(&true);
        let needed = if steady {
            FROZEN_AFTER_STEADY
        } else {
            FROZEN_AFTER
        };
        self.bytes_frozen = available
            && self
                .bytes_moved_at
                .is_some_and(|t| now.duration_since(t) >= needed);
    }

    /// How long after its last write the camera is late for the next: the
    /// longest gap it has shown (one part while it has shown none), plus a
    /// margin.
    fn late_after(&self, part: Duration) -> Duration {
        let mut gap = self.part_gap[0].max(self.part_gap[1]).max(part);
        if self.between_segments {
            gap = gap.max(self.rotation_gap[0].max(self.rotation_gap[1]));
        }
        gap + OVERDUE_MARGIN
    }

    /// Late for its next write (`late_after`).
    fn overdue(&self, part: Duration, now: Instant) -> bool {
        self.last_data
            .is_none_or(|d| now.saturating_duration_since(d) > self.late_after(part))
    }

    fn data_since(&self, t: Instant) -> bool {
        self.last_data.is_some_and(|d| d > t)
    }

    /// Remembers the gap since the previous write (gaps as long as a stall
    /// are outages, not cadence), as a part gap or a rotation gap. A part
    /// gap that made the camera late (longer than `late_after`) is also
    /// kept as `late_write`, and returned: it may be the box's delay.
    fn learn_gap(
        &mut self,
        now: Instant,
        cap: Duration,
        part: Duration,
        file: &std::path::Path,
    ) -> Option<Duration> {
        let since = *self.gap_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= GAP_WINDOW {
            self.counter_paused = [false, self.counter_paused[0]];
            self.part_gap = [Duration::ZERO, self.part_gap[0]];
            self.rotation_gap = [Duration::ZERO, self.rotation_gap[0]];
            self.gap_since = Some(now);
            // What it would restore belongs to the half that just ended.
            self.late_write = None;
        }
        let rotation =
            self.between_segments || self.current_segment.as_deref().is_some_and(|f| f != file);
        let blind = std::mem::take(&mut self.blind_gap);
        self.between_segments = false;
        let gap = now.saturating_duration_since(self.last_data.filter(|_| !blind)?);
        if gap >= cap {
            return None;
        }
        if rotation {
            self.rotation_gap[0] = self.rotation_gap[0].max(gap);
            self.rotation_seen = true;
            return None;
        }
        let late = gap > self.late_after(part);
        match &mut self.late_write {
            Some(w) if !late => w.part_gap_without = w.part_gap_without.max(gap),
            _ if late => {
                self.late_write = Some(LateWrite {
                    at: now,
                    gap,
                    part_gap_without: self.part_gap[0],
                })
            }
            _ => {}
        }
        self.part_gap[0] = self.part_gap[0].max(gap);
        late.then_some(gap)
    }

    /// How long without segment data is a stall for this camera: half as
    /// long again as the longest gap it has shown lately, plus a margin
    /// (across a rotation: the longest rotation gap; within a segment: the
    /// longest part gap, and at least one part and a margin), at most
    /// `stall_after`. Until a rotation has been seen the cadence is not
    /// known: `stall_after`. The facts behind it: docs/cadence.md.
    fn stall_threshold(&self, part: Duration, cap: Duration) -> Duration {
        if !self.rotation_seen {
            return cap;
        }
        let parts = self.silence_threshold(part, cap);
        let t = if self.between_segments {
            parts.max(learned(self.rotation_gap))
        } else {
            parts
        };
        t.min(cap)
    }

    /// How long without segment data, while the camera's inbound bytes are
    /// frozen, is a silent camera: the within-segment threshold always,
    /// across a rotation and before the first one too. A rotation waits for
    /// a keyframe, but the camera keeps sending while it waits, so frozen
    /// bytes there are no rotation: they are a silent camera.
    fn silence_threshold(&self, part: Duration, cap: Duration) -> Duration {
        learned(self.part_gap)
            .max(part + STALL_FLOOR_MARGIN)
            .min(cap)
    }
}

/// A write that came late within its segment (`Cam::late_write`).
#[derive(Debug, Clone, Copy)]
struct LateWrite {
    at: Instant,
    gap: Duration,
    part_gap_without: Duration,
}

/// Half as long again as the longest of the two windows' gaps, plus the
/// margin.
fn learned(g: [Duration; 2]) -> Duration {
    g[0].max(g[1]) * STALL_FACTOR_NUM / STALL_FACTOR_DEN + STALL_MARGIN
}

pub struct CameraMachine {
    settings: Monitor,
    part: Duration,
    cams: BTreeMap<u32, Cam>,
    mediamtx_up: bool,
    disk_full: bool,
    /// No judgement before this.
    grace_until: Option<Instant>,
    last_systemic: Option<Instant>,
    /// When the previous `/v3/paths/list` answer came.
    last_paths: Option<Instant>,
    /// When the machine (or MediaMTX) last started: the reference for "no
    /// data yet" timers.
    epoch: Instant,
    /// The longest delays most cameras showed together (`box_delay`), in
    /// the current and the previous half of [`GAP_WINDOW`], and when the
    /// current half began.
    box_gap: [Duration; 2],
    box_gap_since: Option<Instant>,
    /// When the last such delay was recognised: late writes within
    /// [`BURST_WINDOW`] of it belong to it.
    burst_at: Option<Instant>,
}

impl CameraMachine {
    pub fn new(settings: Monitor, part_duration: Duration, cameras: &[Camera], now: Now) -> Self {
        CameraMachine {
            settings,
            part: part_duration,
            cams: cameras
                .iter()
                .map(|c| (c.id, Cam::new(c.clone())))
                .collect(),
            mediamtx_up: false,
            disk_full: false,
            grace_until: None,
            last_systemic: None,
            last_paths: None,
            epoch: now.mono,
            box_gap: [Duration::ZERO; 2],
            box_gap_since: None,
            burst_at: None,
        }
    }

    /// New timings after a config reload; they apply from the next decision.
    pub fn set_settings(&mut self, settings: Monitor, part_duration: Duration) {
        self.settings = settings;
        self.part = part_duration;
    }

    pub fn camera_ids(&self) -> Vec<u32> {
        self.cams.keys().copied().collect()
    }

    pub fn views(&self, now: Now) -> Vec<CameraView> {
        self.cams
            .values()
            .map(|c| CameraView {
                id: c.camera.id,
                name: c.camera.name.clone(),
                path: c.camera.path_name(),
                state: c.health,
                stream_available: c.available,
                recording: self.recording_active(c, now.mono),
                last_data: c.last_data_wall,
                last_data_age_seconds: c
                    .last_data
                    .map(|t| now.mono.saturating_duration_since(t).as_secs_f64()),
                current_segment: c.current_segment.as_ref().map(|p| p.display().to_string()),
                segments_completed: c.segments_completed,
                inbound_bytes: c.inbound_bytes,
                problem: c.problem.map(|p| p.as_str()),
                recovery_level: c.recovery.as_ref().map(|r| r.level),
                recovery_step: c.recovery.as_ref().map(|r| r.step),
                consecutive_failures: c.consecutive_failures,
                recoveries_total: c.recoveries_total,
                recovery_failures_total: c.recovery_failures_total,
                stall_threshold_seconds: c
                    .stall_threshold(self.part, self.settings.stall_after.get())
                    .as_secs_f64(),
                silence_threshold_seconds: c
                    .silence_threshold(self.part, self.settings.stall_after.get())
                    .as_secs_f64(),
            })
            .collect()
    }

    fn recording_active(&self, c: &Cam, now: Instant) -> bool {
        c.last_data
            .is_some_and(|t| now.saturating_duration_since(t) < self.settings.stall_after.get())
    }

    fn in_grace(&self, now: Instant) -> bool {
        !self.mediamtx_up || self.disk_full || self.grace_until.is_some_and(|g| now < g)
    }

    /// When a path poll is wanted before the regular beat, if ever: a
    /// camera that misses its next write needs a byte count from after the
    /// write was due (it becomes overdue) and another one when its file has
    /// been quiet for its silence and its stall thresholds, so that a
    /// silent camera or a stalled recorder is judged at the threshold
    /// itself, not at the next regular poll (up to an interval later).
    /// Healthy cameras write before they are overdue: no extra poll.
    pub fn poll_due(&self, now: Instant) -> Option<Instant> {
        if self.in_grace(now) {
            return None;
        }
        let cap = self.settings.stall_after.get();
        let polled_after = |t: Instant| self.last_paths.is_some_and(|p| p >= t);
        self.cams
            .values()
            .filter(|c| c.health == Health::Online && c.available == Some(true))
            .filter_map(|c| {
                let last = c.last_data?;
                [
                    last + c.late_after(self.part),
                    last + c.silence_threshold(self.part, cap),
                    last + c.stall_threshold(self.part, cap),
                ]
                .into_iter()
                .find(|t| !polled_after(*t))
            })
            .min()
    }

    pub fn handle(&mut self, now: Now, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Tick => self.tick(now, &mut out),
            Event::WatchMissed => {
                for c in self.cams.values_mut() {
                    c.blind_gap = true;
                }
            }
            Event::DiskFull(full) => {
                self.disk_full = full;
                if full {
                    // Attempts under way cannot succeed: drop them, like a
                    // MediaMTX outage.
                    for c in self.cams.values_mut() {
                        c.recovery = None;
                        if c.health == Health::Recovering {
                            c.health = Health::Online;
                        }
                        c.problem = None;
                        c.failed_at = None;
                    }
                } else {
                    self.grace_until = Some(now.mono + self.settings.grace_period.get());
                    self.epoch = now.mono;
                }
            }
            Event::MediamtxReady => {
                self.mediamtx_up = true;
                self.grace_until = Some(now.mono + self.settings.grace_period.get());
                self.epoch = now.mono;
                for c in self.cams.values_mut() {
                    c.available = None;
                    c.available_since = None;
                }
            }
            Event::MediamtxDown => {
                self.mediamtx_up = false;
                // Attempts interrupted by MediaMTX itself are not the camera's
                // failures: drop them, the camera is judged again afterwards.
                for c in self.cams.values_mut() {
                    c.recovery = None;
                    if c.health == Health::Recovering {
                        c.health = Health::Online;
                    }
                    c.problem = None;
                    c.failed_at = None;
                }
            }
            Event::Paths(list) => {
                let mut seen = BTreeMap::new();
                for p in list {
                    if let Some(id) = crate::config::camera_of_path(&p.name) {
                        seen.insert(id, p);
                    }
                }
                let ids: Vec<u32> = self.cams.keys().copied().collect();
                let previous = self.last_paths.replace(now.mono);
                for id in ids {
                    let (available, bytes) = match seen.get(&id) {
                        Some(p) => (p.available, p.inbound_bytes),
                        None => (false, 0),
                    };
                    let c = self.cams.get_mut(&id).unwrap();
                    set_available(c, available, now.mono);
                    c.count_poll(available, bytes, now.mono, previous);
                    if available && bytes > c.inbound_bytes {
                        c.bytes_grew_after = previous;
                    }
                    c.inbound_bytes = bytes;
                }
                self.tick(now, &mut out);
            }
            Event::PathAvailability { camera, available } => {
                if let Some(c) = self.cams.get_mut(&camera) {
                    set_available(c, available, now.mono);
                }
                self.tick(now, &mut out);
            }
            Event::SegmentData { camera, file } => {
                let cap = self.settings.stall_after.get();
                let part = self.part;
                if let Some(c) = self.cams.get_mut(&camera) {
                    let late = c.learn_gap(now.mono, cap, part, &file);
                    c.last_data = Some(now.mono);
                    c.last_data_wall = Some(now.wall);
                    c.current_segment = Some(file);
                    if late.is_some() {
                        self.box_delay(now.mono);
                    }
                }
                // Judged at the next tick (a few per second): this event comes
                // once a second per camera and must stay cheap.
            }
            Event::SegmentClosed { camera, file } => {
                if let Some(c) = self.cams.get_mut(&camera) {
                    c.segments_completed += 1;
                    c.between_segments = true;
                    if c.current_segment.as_ref() == Some(&file) {
                        c.current_segment = None;
                    }
                }
            }
            Event::Reset { camera } => {
                if let Some(c) = self.cams.get_mut(&camera) {
                    c.consecutive_failures = 0;
                    c.offline_since = None;
                    c.recovery = None;
                    c.problem = None;
                    c.failed_at = None;
                    c.health = Health::Online;
                    // Judge it afresh from now on.
                    c.available_since = c.available_since.map(|_| now.mono);
                    resolve_all(c, now, &mut out);
                }
            }
            Event::Cameras(list) => {
                let mut next = BTreeMap::new();
                for cam in list {
                    let entry = match self.cams.remove(&cam.id) {
                        Some(mut old) if old.camera == cam => {
                            old.camera = cam;
                            old
                        }
                        Some(mut old) => {
                            // Changed URL or name: same history, fresh judgement.
                            old.camera = cam;
                            old.recovery = None;
                            old.available = None;
                            old
                        }
                        None => Cam::new(cam),
                    };
                    next.insert(entry.camera.id, entry);
                }
                // Removed cameras: close their alerts.
                for (_, mut gone) in std::mem::take(&mut self.cams) {
                    resolve_all(&mut gone, now, &mut out);
                }
                self.cams = next;
                self.grace_until = Some(now.mono + self.settings.grace_period.get());
            }
        }
        out
    }

    /// A camera's write came late (`Cam::late_write`). When most cameras'
    /// late writes ended within [`BURST_WINDOW`] of each other, the delay
    /// was the box's (a disk busy with a foreign writer, a machine short of
    /// CPU: every camera's writes wait and land together), not each
    /// camera's cadence: their part gaps are restored to what they were and
    /// the delay is remembered as the box's (`box_gap`), which counts only
    /// while every camera is late together (`box_threshold`). Learned per
    /// camera, a disk fill in the soak slowed every camera's stall and
    /// silence thresholds to 3.2-3.4 s for 5 to 10 minutes.
    fn box_delay(&mut self, now: Instant) {
        let recent = |t: Instant| now.saturating_duration_since(t) <= BURST_WINDOW;
        let together: Vec<(u32, Duration)> = self
            .cams
            .values()
            .filter_map(|c| {
                c.late_write
                    .filter(|w| recent(w.at))
                    .map(|w| (c.camera.id, w.gap))
            })
            .collect();
        let most = (self.cams.len() / 2 + 1).max(2);
        if !self.burst_at.is_some_and(recent) {
            if together.len() < most {
                return;
            }
            self.burst_at = Some(now);
            let longest = together.iter().map(|(_, gap)| *gap).max();
            tracing::info!(
                cameras = together.len(),
                longest_gap_ms = longest.unwrap_or_default().as_millis() as u64,
                "writes of most cameras came late together: the box's delay (disk or CPU), \
                 not learned as their cadence"
            );
        }
        if self
            .box_gap_since
            .is_none_or(|t| now.saturating_duration_since(t) >= GAP_WINDOW)
        {
            self.box_gap = self.box_gaps(now);
            self.box_gap_since = Some(now);
        }
        for (id, _) in together {
            let c = self.cams.get_mut(&id).unwrap();
            if let Some(w) = c.late_write.take() {
                c.part_gap[0] = w.part_gap_without;
                self.box_gap[0] = self.box_gap[0].max(w.gap);
            }
        }
    }

    /// The box's delays as of `now`: the current and the previous half of
    /// [`GAP_WINDOW`], the halves moved on if their time has passed.
    fn box_gaps(&self, now: Instant) -> [Duration; 2] {
        let age = self
            .box_gap_since
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if age >= 2 * GAP_WINDOW {
            [Duration::ZERO; 2]
        } else if age >= GAP_WINDOW {
            [Duration::ZERO, self.box_gap[0]]
        } else {
            self.box_gap
        }
    }

    /// How long without segment data is a stall while every camera is late
    /// together: the box's delays (`box_delay`) as a camera's own gaps
    /// would count (`learned`), nothing when none was seen lately.
    fn box_threshold(&self, now: Instant) -> Duration {
        let gaps = self.box_gaps(now);
        if gaps == [Duration::ZERO; 2] {
            Duration::ZERO
        } else {
            learned(gaps)
        }
    }

    fn tick(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.in_grace(now.mono) {
            for c in self.cams.values_mut() {
                c.held_since = None;
            }
            return;
        }
        let ids: Vec<u32> = self.cams.keys().copied().collect();
        // Every camera late together: the box's delay, as long as it has
        // been lately, is no stall.
        let box_late = ids.len() >= 2
            && self
                .cams
                .values()
                .all(|c| c.health != Health::Online || c.overdue(self.part, now.mono));
        let box_floor = if box_late {
            self.box_threshold(now.mono)
        } else {
            Duration::ZERO
        };
        // Pass 1: advance recoveries, and find newly failing cameras.
        let mut newly_failing = Vec::new();
        for &id in &ids {
            let problem = {
                let c = &self.cams[&id];
                self.detect(c, now.mono, box_floor)
            };
            let st = self.settings.clone();
            let part = self.part;
            let c = self.cams.get_mut(&id).unwrap();
            outer_bound(c, &st, now, self.epoch, out);
            match c.health {
                Health::Offline => {
                    // No attempts; but if recording resumed by itself, say so.
                    if c.offline_since.is_some_and(|t| c.data_since(t)) && problem.is_none() {
                        c.health = Health::Online;
                        c.offline_since = None;
                        c.consecutive_failures = 0;
                        c.problem = None;
                        c.failed_at = None;
                        notice(
                            c,
                            now,
                            Issue::RecordingRecovered,
                            "recording resumed while the camera was offline",
                            out,
                        );
                        resolve_all(c, now, out);
                    }
                }
                Health::Recovering => advance(c, &st, part, problem, now, out),
                Health::Online => match problem {
                    Some(p) => newly_failing.push((id, p)),
                    // Alerts left open by an episode that ended without the
                    // ladder (MediaMTX restarted in the middle of it, the
                    // outer bound fired and data came back): fresh segment
                    // data closes them.
                    None if c.opened_at.is_some_and(|t| c.data_since(t)) => {
                        notice(
                            c,
                            now,
                            Issue::RecordingRecovered,
                            "segment data flows again",
                            out,
                        );
                        resolve_all(c, now, out);
                    }
                    None => {}
                },
            }
        }
        // A hold ends when its camera is no longer newly failing (it wrote,
        // or its ladder or a systemic restart started: those are judged
        // from the next tick, after a grace period or in Recovering).
        for c in self.cams.values_mut() {
            if !newly_failing.iter().any(|(id, _)| *id == c.camera.id) {
                c.held_since = None;
            }
        }
        if newly_failing.is_empty() {
            return;
        }
        // Systemic guard: everyone failing at once is MediaMTX's problem.
        let recent = |c: &Cam| {
            c.failed_at
                .is_some_and(|t| now.mono.duration_since(t) <= SYSTEMIC_WINDOW)
        };
        let failing = |id: &u32| newly_failing.iter().any(|(f, _)| f == id);
        let recent_count = self.cams.values().filter(|c| recent(c)).count();
        let cooled = self
            .last_systemic
            .is_none_or(|t| now.mono.duration_since(t) >= SYSTEMIC_COOLDOWN);
        let systemic = ids.len() >= 2 && newly_failing.len() + recent_count >= ids.len();
        // Not yet everyone, but everyone else late: hold the stalls back
        // (at most SYSTEMIC_HOLD) until the others fail too or write again.
        let others_late = ids.len() >= 2
            && self.cams.values().all(|c| {
                failing(&c.camera.id)
                    || recent(c)
                    || (c.health == Health::Online && c.overdue(self.part, now.mono))
            });
        if !systemic && others_late && cooled {
            newly_failing.retain(|(id, problem)| {
                let c = self.cams.get_mut(id).unwrap();
                let since = *c.held_since.get_or_insert(now.mono);
                *problem != Issue::RecordingStalled
                    || now.mono.duration_since(since) >= SYSTEMIC_HOLD
            });
        }
        if newly_failing.is_empty() {
            return;
        }
        if systemic && cooled {
            self.last_systemic = Some(now.mono);
            // Nothing is judged until MediaMTX is back (its restart starts
            // a grace period of its own); another look before it went down
            // would start every camera's ladder.
            self.grace_until = Some(now.mono + self.settings.grace_period.get());
            for c in self.cams.values_mut() {
                c.recovery = None;
                c.health = Health::Online;
                c.problem = None;
                c.failed_at = None;
            }
            let detail = format!("all {} cameras failed at the same moment", ids.len());
            out.push(Action::Alert(AlertEvent::system(
                now.wall,
                Severity::Warning,
                Phase::Notice,
                "mediamtx:systemic",
                Issue::MediamtxDown,
                detail.clone(),
            )));
            out.push(Action::RestartMediamtx { detail });
            return;
        }
        for (id, problem) in newly_failing {
            let st = self.settings.clone();
            let c = self.cams.get_mut(&id).unwrap();
            c.failed_at = Some(now.mono);
            start_recovery(c, &st, problem, now, out);
        }
    }

    /// What is wrong with this camera now, if anything.
    ///
    /// A quiet file is a stream problem when the camera's inbound bytes
    /// stopped too (still at a poll for a steady counter, two for one that
    /// pauses: `count_poll`), a recording stall when
    /// bytes arrived after the next part was due (grown between two polls
    /// of which the first came at least one part after the file's last
    /// write: the camera sends, MediaMTX does not write; bytes of the part
    /// still being filled when a camera falls silent do not count), and
    /// undecided until one of those is known (at the latest at
    /// `stall_after`, as a stall). `box_floor`: the least stall threshold
    /// while every camera is late together (`box_threshold`).
    fn detect(&self, c: &Cam, now: Instant, box_floor: Duration) -> Option<Issue> {
        let cap = self.settings.stall_after.get();
        let stall = c.stall_threshold(self.part, cap).max(box_floor.min(cap));
        let silent = c.silence_threshold(self.part, cap);
        let reference = [
            c.last_data,
            c.available_since,
            self.grace_until,
            Some(self.epoch),
        ]
        .into_iter()
        .flatten()
        .max()?;
        let quiet_for = now.saturating_duration_since(reference);
        match c.available {
            Some(false) => Some(Issue::StreamDown),
            // The camera stopped sending; MediaMTX has not noticed yet (it
            // waits readTimeout). A stream problem.
            Some(true) if c.bytes_frozen && quiet_for >= silent => Some(Issue::StreamDown),
            Some(true) if quiet_for >= stall => {
                if c.bytes_grew_after
                    .is_some_and(|t| c.last_data.is_none_or(|d| t >= d + self.part))
                    || quiet_for >= cap
                {
                    Some(Issue::RecordingStalled)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

fn set_available(c: &mut Cam, available: bool, now: Instant) {
    if c.available != Some(available) {
        c.available = Some(available);
        c.available_since = Some(now);
    }
}

fn camera_ref(c: &Cam) -> CameraRef {
    CameraRef {
        id: c.camera.id,
        name: c.camera.name.clone(),
    }
}

fn event(
    c: &Cam,
    now: Now,
    severity: Severity,
    phase: Phase,
    issue: Issue,
    details: &str,
) -> AlertEvent {
    AlertEvent {
        at: now.wall,
        severity,
        phase,
        key: AlertEvent::camera_key(c.camera.id, issue),
        issue,
        camera: Some(camera_ref(c)),
        recovery_attempts: c.consecutive_failures,
        last_recording: c.last_data_wall,
        details: details.to_string(),
    }
}

fn fire(
    c: &mut Cam,
    now: Now,
    severity: Severity,
    issue: Issue,
    details: &str,
    out: &mut Vec<Action>,
) {
    if !c.open.contains(&issue) {
        if c.open.is_empty() {
            c.opened_at = Some(now.mono);
        }
        c.open.push(issue);
        out.push(Action::Alert(event(
            c,
            now,
            severity,
            Phase::Firing,
            issue,
            details,
        )));
    }
}

fn notice(c: &Cam, now: Now, issue: Issue, details: &str, out: &mut Vec<Action>) {
    out.push(Action::Alert(event(
        c,
        now,
        Severity::Info,
        Phase::Notice,
        issue,
        details,
    )));
}

fn resolve_all(c: &mut Cam, now: Now, out: &mut Vec<Action>) {
    c.opened_at = None;
    if !c.open.is_empty() {
        c.resolved_at = Some(now.mono);
    }
    for issue in std::mem::take(&mut c.open) {
        let sev = match issue {
            Issue::StreamDown | Issue::RecordingStalled => Severity::Warning,
            _ => Severity::Critical,
        };
        out.push(Action::Alert(event(
            c,
            now,
            sev,
            Phase::Resolved,
            issue,
            "resolved",
        )));
    }
}

/// The 2-minute rule of docs/design.md §3.2, independent of the ladder.
fn outer_bound(c: &mut Cam, st: &Monitor, now: Now, epoch: Instant, out: &mut Vec<Action>) {
    let since = c.last_data.unwrap_or(epoch).max(epoch);
    let paged_stall = c.open.contains(&Issue::RecordingStalled) && c.flaps == 0;
    if now.mono.saturating_duration_since(since) >= st.recording_stale.get()
        && !c.open.contains(&Issue::CameraOffline)
        && !paged_stall
    {
        let details = format!("no recording data for more than {}", st.recording_stale);
        fire(
            c,
            now,
            Severity::Critical,
            Issue::RecordingStopped,
            &details,
            out,
        );
    }
}

fn start_recovery(c: &mut Cam, st: &Monitor, problem: Issue, now: Now, out: &mut Vec<Action>) {
    let level = if problem == Issue::RecordingStalled {
        2
    } else {
        1
    };
    c.health = Health::Recovering;
    c.problem = Some(problem);
    c.recoveries_total += 1;
    if c.consecutive_failures == 0 {
        let flapping = c
            .resolved_at
            .is_some_and(|t| now.mono.saturating_duration_since(t) < FLAP_WINDOW);
        c.flaps = if flapping { c.flaps + 1 } else { 0 };
        match problem {
            // docs/design.md §5.1 and §14: a recording failure is Critical at
            // once (someone hears of it in seconds, while the recovery runs);
            // a camera that keeps stalling and recovering is shown, not paged
            // again for every flap.
            Issue::RecordingStalled if !flapping => {
                let details = format!(
                    "stream available but no segment data for {:.1} s; automatic recovery in progress",
                    c.last_data
                        .map(|t| now.mono.saturating_duration_since(t).as_secs_f64())
                        .unwrap_or_default()
                );
                fire(c, now, Severity::Critical, problem, &details, out);
            }
            Issue::RecordingStalled => {
                let details = format!(
                    "recording stalled again ({} times within {} min); automatic recovery in progress",
                    c.flaps + 1,
                    FLAP_WINDOW.as_secs() / 60
                );
                fire(c, now, Severity::Warning, problem, &details, out);
            }
            // docs/design.md §5.1: Warning on the first stream failure.
            _ => fire(
                c,
                now,
                Severity::Warning,
                problem,
                "stream not available in MediaMTX",
                out,
            ),
        }
    }
    c.recovery = Some(Recovery {
        level,
        step: Step::Removed,
        until: now.mono + st.recovery_remove_wait.get(),
        started: now.mono,
        recreated_at: None,
    });
    out.push(Action::RemovePath {
        camera: c.camera.id,
    });
}

fn advance(
    c: &mut Cam,
    st: &Monitor,
    part: Duration,
    problem: Option<Issue>,
    now: Now,
    out: &mut Vec<Action>,
) {
    let Some(r) = c.recovery.clone() else {
        c.health = Health::Online;
        return;
    };
    let fresh = |c: &Cam, min_after: Duration| {
        r.recreated_at.is_some_and(|t| c.data_since(t + min_after)) && c.available != Some(false)
    };
    match r.step {
        Step::Removed if now.mono >= r.until => {
            c.recovery = Some(Recovery {
                step: Step::Verifying,
                until: now.mono + st.recovery_verify_wait.get(),
                recreated_at: Some(now.mono),
                ..r
            });
            out.push(Action::CreatePath {
                camera: c.camera.id,
            });
        }
        Step::Removed => {}
        Step::Verifying | Step::Rechecking => {
            // Level 2 wants the recording to keep going: two parts seen.
            let need = if r.level == 2 { part } else { Duration::ZERO };
            if fresh(c, need) && problem.is_none() {
                finish(c, r.level, true, r.started, now, out);
            } else if now.mono >= r.until {
                if r.step == Step::Verifying && r.level == 2 {
                    c.recovery = Some(Recovery {
                        step: Step::Rechecking,
                        until: now.mono + st.recording_recheck_wait.get(),
                        ..r
                    });
                } else {
                    finish(c, r.level, false, r.started, now, out);
                    failed(c, st, r.level, now, out);
                }
            }
        }
    }
}

fn finish(
    c: &mut Cam,
    level: u8,
    success: bool,
    started: Instant,
    now: Now,
    out: &mut Vec<Action>,
) {
    c.recovery = None;
    out.push(Action::RecoveryFinished {
        camera: c.camera.id,
        level,
        success,
        duration: now.mono.saturating_duration_since(started),
    });
    if success {
        let issue = if level == 2 {
            Issue::RecordingRecovered
        } else {
            Issue::StreamRecovered
        };
        let details = format!(
            "recovered by level {level} after {} attempt(s)",
            c.consecutive_failures + 1
        );
        c.health = Health::Online;
        c.problem = None;
        c.failed_at = None;
        c.consecutive_failures = 0;
        notice(c, now, issue, &details, out);
        resolve_all(c, now, out);
    } else {
        c.recovery_failures_total += 1;
    }
}

fn failed(c: &mut Cam, st: &Monitor, level: u8, now: Now, out: &mut Vec<Action>) {
    c.consecutive_failures += 1;
    // The recording stall was paged at detection: its failed recovery is the
    // same incident (the alert stays open), not a second page. A flapping
    // camera whose recovery fails is paged now.
    if level == 2 && !(c.open.contains(&Issue::RecordingStalled) && c.flaps == 0) {
        let details = format!(
            "recording did not resume after level 2 recovery (attempt {})",
            c.consecutive_failures
        );
        fire(
            c,
            now,
            Severity::Critical,
            Issue::RecordingStopped,
            &details,
            out,
        );
    }
    if c.consecutive_failures >= st.failures_to_offline {
        c.health = Health::Offline;
        c.offline_since = Some(now.mono);
        let details = format!(
            "{} consecutive recovery attempts failed; no more attempts until `vms-supervisor camera reset {}`",
            c.consecutive_failures, c.camera.id
        );
        fire(
            c,
            now,
            Severity::Critical,
            Issue::CameraOffline,
            &details,
            out,
        );
        return;
    }
    // Try again at once, at the level the camera needs now.
    let problem = c.problem.unwrap_or(Issue::StreamDown);
    start_recovery(c, st, problem, now, out);
}

#[cfg(test)]
mod tests;
