//! The fMP4 recorder of one path (docs/mediamtx.md, recording): samples are grouped in parts; a part is
//! written straight to the file when the next sample arrives and the part already covers
//! `recordPartDuration`; the file is created lazily at the first part; a segment ends at
//! the first keyframe once it has lasted `recordSegmentDuration`; finalizing writes the
//! last part and patches the `mvhd` duration.

use crate::config::{path_duration, path_str};
use crate::log::{error, info};
use crate::mp4::{Fixture, Sample};
use crate::recordpath;
use chrono::{DateTime, Local};
use serde_json::{Map, Value};
use std::fs::{DirBuilder, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pause before recording restarts after an error.
const RESTART_PAUSE: Duration = Duration::from_secs(2);

fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => match e.raw_os_error() {
            Some(libc::ENOSPC) => "no space left on device".into(),
            Some(libc::EROFS) => "read-only file system".into(),
            Some(libc::ENOTDIR) => "not a directory".into(),
            _ => e.to_string(),
        },
    }
}

/// What the recorder publishes for `/state`.
#[derive(Clone, Debug, Default)]
pub struct RecStatus {
    pub segment: Option<PathBuf>,
    pub parts_written: u64,
    pub segments_completed: u64,
}

struct Segment {
    /// The file name, decided from the wall time of the first sample.
    path: PathBuf,
    file: Option<File>,
    start_dts: u64,
    end_dts: u64,
}

pub struct Recorder {
    fixture: Arc<Fixture>,
    name: String,
    record_path: String,
    part_dur: u64,
    seg_dur: u64,
    /// Wall time of media time 0 (when the stream became ready).
    wall0: DateTime<Local>,
    seg: Option<Segment>,
    pending: Vec<(Sample, u64)>,
    need_key: bool,
    /// After an error, recording restarts (new segment) at this time.
    paused_until: Option<Instant>,
    seq: u32,
    status: Arc<Mutex<RecStatus>>,
}

impl Recorder {
    pub fn new(
        fixture: Arc<Fixture>,
        name: &str,
        pc: &Map<String, Value>,
        wall0: DateTime<Local>,
        status: Arc<Mutex<RecStatus>>,
    ) -> Recorder {
        let ts = fixture.timescale as f64;
        let to_ts = |d: Duration| (d.as_secs_f64() * ts).round() as u64;
        info!("[path {name}] [recorder] recording 1 track (H264)");
        Recorder {
            name: name.to_string(),
            record_path: path_str(pc, "recordPath").to_string(),
            part_dur: to_ts(path_duration(pc, "recordPartDuration")).max(1),
            seg_dur: to_ts(path_duration(pc, "recordSegmentDuration")).max(1),
            fixture,
            wall0,
            seg: None,
            pending: Vec::new(),
            need_key: true,
            paused_until: None,
            seq: 0,
            status,
        }
    }

    /// Drops samples until the next keyframe (after a stall or a gap in the data).
    /// From the next sample on, the samples come from `fixture` (one of the same shape:
    /// the same parameter sets and GOPs): the part so far is written from the old one.
    pub fn switch_fixture(&mut self, fixture: Arc<Fixture>) {
        self.flush();
        self.fixture = fixture;
    }

    pub fn skip(&mut self) {
        self.pending.clear();
        self.need_key = true;
    }

    pub fn push(&mut self, s: &Sample, dts: u64) {
        if let Some(t) = self.paused_until {
            if Instant::now() < t {
                return;
            }
            self.paused_until = None;
            self.need_key = true;
        }
        if self.need_key {
            if !s.key {
                return;
            }
            self.need_key = false;
        }
        if s.key {
            if let Some(seg) = &self.seg {
                if dts.saturating_sub(seg.start_dts) >= self.seg_dur {
                    self.close_segment();
                }
            }
        }
        if self.seg.is_none() {
            let secs = dts as f64 / self.fixture.timescale as f64;
            let t = self.wall0 + chrono::Duration::microseconds((secs * 1e6) as i64);
            let path = recordpath::expand(&self.record_path, &self.name, t, ".mp4");
            self.seg = Some(Segment {
                path: PathBuf::from(path),
                file: None,
                start_dts: dts,
                end_dts: dts,
            });
        }
        if let Some((_, first)) = self.pending.first() {
            if dts.saturating_sub(*first) >= self.part_dur {
                self.flush();
            }
        }
        self.pending.push((s.clone(), dts));
    }

    /// Writes the pending part, creating the segment file if needed.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        if seg.file.is_none() {
            if let Some(dir) = seg.path.parent() {
                let _ = DirBuilder::new().recursive(true).mode(0o755).create(dir);
            }
            match File::create(&seg.path).and_then(|mut f| {
                f.write_all(&self.fixture.init)?;
                Ok(f)
            }) {
                Ok(f) => seg.file = Some(f),
                Err(e) => {
                    let msg = format!("open {}: {}", seg.path.display(), go_error(&e));
                    self.fail(&msg);
                    return;
                }
            }
            let mut st = self.status.lock().unwrap();
            st.segment = Some(seg.path.clone());
        }
        self.seq += 1;
        let base = self.pending[0].1.saturating_sub(seg.start_dts);
        let refs: Vec<&Sample> = self.pending.iter().map(|(s, _)| s).collect();
        let frag = self.fixture.fragment(self.seq, base, &refs);
        let (last, last_dts) = self.pending.last().unwrap();
        seg.end_dts = last_dts + last.duration as u64;
        if let Err(e) = seg.file.as_mut().unwrap().write_all(&frag) {
            let msg = format!("write {}: {}", seg.path.display(), go_error(&e));
            self.fail(&msg);
            return;
        }
        self.pending.clear();
        self.status.lock().unwrap().parts_written += 1;
    }

    /// A recorder error, as MediaMTX handles it: the segment is closed, the error logged,
    /// and recording restarts 2 s later with a new segment.
    fn fail(&mut self, msg: &str) {
        self.pending.clear();
        self.close_segment();
        error!("[path {}] [recorder] {msg}", self.name);
        self.paused_until = Some(Instant::now() + RESTART_PAUSE);
    }

    /// Finalizes the current segment: last part written, mvhd duration patched, closed.
    fn close_segment(&mut self) {
        self.flush();
        self.pending.clear();
        if let Some(mut seg) = self.seg.take() {
            if let Some(mut f) = seg.file.take() {
                let secs = seg.end_dts.saturating_sub(seg.start_dts) as f64
                    / self.fixture.timescale as f64;
                let d = (secs * self.fixture.movie_timescale as f64).round() as u64;
                let (at, w) = self.fixture.mvhd_duration_at;
                let bytes = if w == 8 {
                    d.to_be_bytes().to_vec()
                } else {
                    (d as u32).to_be_bytes().to_vec()
                };
                let _ = f
                    .seek(SeekFrom::Start(at as u64))
                    .and_then(|_| f.write_all(&bytes));
                let mut st = self.status.lock().unwrap();
                st.segments_completed += 1;
            }
        }
        self.status.lock().unwrap().segment = None;
    }

    /// Stops recording: finalizes the segment and logs `recording stopped`.
    pub fn close(mut self) {
        self.close_segment();
        info!("[path {}] [recorder] recording stopped", self.name);
    }
}
