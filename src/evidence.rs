//! Evidence export: the footage of one camera over a time range, as MP4
//! files with a manifest that a prosecutor can verify with `sha256sum -c`
//! (issue 18's evidence export; issue 19: admins only, audited with the
//! files' SHA-256, which the HTTP edge does in `http::exports`).
//!
//! # How an export is made
//!
//! 1. MediaMTX's playback `/list` gives the recorded spans of `cam_{id}`
//!    inside the range, already clipped to it (docs/mediamtx.md §h).
//! 2. A playback `/get` stops at the first segment that cannot be joined to
//!    the one before (a gap: an outage, a restart), so one `/get` over the
//!    whole range would silently end at the first gap. Each recorded span
//!    is therefore fetched on its own, `format=mp4` (a regular MP4, which
//!    every player opens), and becomes one file. The manifest lists the
//!    files and the gaps between them: what the range does *not* contain is
//!    part of the evidence too. A span longer than [`MAX_FILE_SECS`] is
//!    cut into files of that length: with `format=mp4` MediaMTX keeps every
//!    sample's index in memory and writes nothing until it has read the
//!    whole span, so an hour per request bounds both its memory and the
//!    wait for the first byte (and a 20-40 GB single file helps nobody).
//!    Each `/get` starts at the keyframe at or before its start, so
//!    neighbouring files of one span overlap by less than a keyframe
//!    interval; they never leave a hole.
//! 3. Each file is streamed to disk while its SHA-256 is computed, then
//!    fsynced. MediaMTX cuts the connection when it fails after the first
//!    byte (docs/mediamtx.md §h), so a body that ends with an error fails
//!    the whole export; a truncated file is never presented as evidence.
//! 4. Everything is written in `exports/.<id>.partial/` under the state
//!    directory, then that directory is renamed to `exports/<id>/` and the
//!    parent fsynced: an export either exists whole or not at all. A
//!    partial directory left by a crash is removed when the next export
//!    begins.
//!
//! An export directory holds the MP4 files, `manifest.json` ([`Manifest`])
//! and `SHA256SUMS` (`sha256sum` format, so `sha256sum -c SHA256SUMS` in
//! the directory checks every file). The daemon never deletes an export
//! (retention does not apply to evidence); an administrator removes the
//! directory by hand when the case is closed.
//!
//! Exports run one at a time ([`Exports::begin`] holds a lock until the
//! [`Job`] ends): they are long sequential reads and writes on a small box
//! that is recording at the same time.
//!
//! # Free space
//!
//! Before anything is fetched, the export checks that the disk of the
//! exports directory has room for it: the bytes the segment catalog has
//! recorded in the range ([`recorded_bytes`]) plus a margin
//! ([`bytes_needed`]). When that disk is also the recordings disk, the
//! recordings' free-space floor (`storage.min_free`, the storage machine's
//! rule) is kept free too: an export must never make the daemon evict
//! footage. Too little room is [`ExportError::NoSpace`] (the API's 507)
//! before a byte is written. The check is an estimate; a disk that fills
//! during the export anyway (something else writing) still ends the export
//! with nothing partial left.
//!
//! The footage must not be evicted while it is being read: the caller
//! places a storage hold over the range for the duration of the job (see
//! [`HOLD_REASON_PREFIX`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

/// The longest range one export may cover. A day of one camera at a
/// typical 2-4 Mbit/s is 20-40 GB: more than that in one request would tie
/// the box up for a long time; a longer case is several exports.
pub const MAX_RANGE_SECS: i64 = 86_400;

/// The longest file of an export, in seconds of footage.
pub const MAX_FILE_SECS: i64 = 3600;

/// The longest free-text reason (a case number, an official letter).
pub const MAX_REASON: usize = 500;

/// The directory under `[state] dir`.
pub const DIR: &str = "exports";

/// The manifest's file name in an export directory.
pub const MANIFEST: &str = "manifest.json";

/// The checksum list's file name in an export directory.
pub const SUMS: &str = "SHA256SUMS";

/// The reason of the storage hold an export places over its range while it
/// runs; holds with this prefix that are still open when an export begins
/// were left by an export that never ended (a crash) and are released.
pub const HOLD_REASON_PREFIX: &str = "evidence export ";

/// Two recorded spans closer than this are one (MediaMTX's own tolerance
/// for joining segments, docs/mediamtx.md §h); a shorter hole is no gap.
const GAP_TOLERANCE_MS: i64 = 1000;

/// The margin an export keeps beyond the footage it copies: a share of it
/// (MediaMTX's regular MP4 carries a sample index the recorded fMP4 parts
/// spread out, and a segment's size in the catalog is refreshed every few
/// seconds only) plus a fixed amount for the manifest, the checksums and
/// the filesystem's own blocks.
pub const SPACE_MARGIN_SHARE: u64 = 20; // 1/20 = 5 %
pub const SPACE_MARGIN_BYTES: u64 = 4 << 20;

/// How long MediaMTX may take to answer, and to send the next piece.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The manifest of one export (`manifest.json`, and the API's answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    /// `[general] box_name`.
    pub box_name: String,
    /// The machine's host name.
    pub hostname: String,
    pub camera_id: u32,
    pub camera_name: String,
    /// The range asked for.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Why (a case number, an official letter), as the administrator gave it.
    pub reason: String,
    /// The recorded spans of the range, one file each, in time order.
    pub files: Vec<ExportFile>,
    /// The parts of the range with no recording.
    pub gaps: Vec<Span>,
    pub exported_at: DateTime<Utc>,
    /// The user who made it, and from which address.
    pub exported_by: String,
    pub source: String,
    /// `vms-supervisor --version` of the daemon that made it.
    pub supervisor_version: String,
}

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    pub name: String,
    /// The recorded span it holds (as MediaMTX listed it).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub size: u64,
    /// Lowercase hex, as `sha256sum` prints it.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What an export is asked for, and by whom.
#[derive(Debug, Clone)]
pub struct Request {
    pub camera_id: u32,
    pub camera_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub box_name: String,
    pub user: String,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request itself is wrong (the message names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("camera {camera} has no recording between {start} and {end}")]
    NoFootage {
        camera: u32,
        start: String,
        end: String,
    },
    #[error("MediaMTX's playback server: {0}")]
    Upstream(String),
    #[error("writing the export: {0}")]
    Io(String),
    /// The exports disk has too little room for the range (checked before
    /// anything is fetched).
    #[error("{}", no_space_text(*needed, *available, *floor))]
    NoSpace {
        /// The range's recorded bytes plus the margin.
        needed: u64,
        /// Free on the exports disk now.
        available: u64,
        /// The recordings' floor kept free when the exports share their
        /// disk; 0 when they do not.
        floor: u64,
    },
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn no_space_text(needed: u64, available: u64, floor: u64) -> String {
    let mut s = format!(
        "not enough free space for this export: it needs {needed} bytes ({}, the footage \
         recorded in the range plus a margin) and {available} bytes ({}) are free on the \
         exports disk",
        mib(needed),
        mib(available)
    );
    if floor > 0 {
        s.push_str(&format!(
            ", of which {floor} bytes ({}) are the recordings' free-space floor (the exports \
             share the recordings disk)",
            mib(floor)
        ));
    }
    s.push_str("; free some space or export a shorter range");
    s
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Io(e.to_string())
    }
}

/// Checks a range before anything is fetched.
pub fn check_range(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), ExportError> {
    if end <= start {
        return Err(ExportError::Invalid(
            "\"end\" must be after \"start\"".into(),
        ));
    }
    if (end - start).num_seconds() > MAX_RANGE_SECS {
        return Err(ExportError::Invalid(format!(
            "an export covers at most {} hours (\"end\" - \"start\"); make several",
            MAX_RANGE_SECS / 3600
        )));
    }
    Ok(())
}

/// The bytes on the box's disk recorded by a camera in `[start, end)`,
/// from the segment catalog's intervals of that camera: segments on disk
/// (being written or complete), each counted by the share of its time
/// inside the range (an export of five minutes out of an hour-long segment
/// copies about a twelfth of it).
pub fn recorded_bytes(
    segments: &[crate::storage::catalog::Interval],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> u64 {
    use crate::storage::catalog::SegState;
    let (from, to) = (
        crate::storage::to_micros(start),
        crate::storage::to_micros(end),
    );
    let mut total = 0u64;
    for &(s, e, bytes, state, _) in segments {
        if !matches!(state, SegState::Recording | SegState::Complete) || bytes == 0 {
            continue;
        }
        let overlap = e.min(to) - s.max(from);
        if e <= s {
            // No length known yet: the whole of it when it starts inside.
            if s >= from && s < to {
                total += bytes;
            }
        } else if overlap > 0 {
            total += (bytes as u128 * overlap as u128 / (e - s) as u128) as u64;
        }
    }
    total
}

/// What an export of `recorded` bytes of footage needs free.
pub fn bytes_needed(recorded: u64) -> u64 {
    recorded + recorded / SPACE_MARGIN_SHARE + SPACE_MARGIN_BYTES
}

/// Whether `needed` bytes fit in `available` with `floor` left free.
pub fn check_space(needed: u64, available: u64, floor: u64) -> Result<(), ExportError> {
    if available.saturating_sub(floor) < needed {
        return Err(ExportError::NoSpace {
            needed,
            available,
            floor,
        });
    }
    Ok(())
}

/// Whether `id` may name an export (what [`Exports::begin`] makes: letters,
/// digits, `_`, `-`); anything else (`..`, a slash) is never a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn compact(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The parts of `[start, end)` that `spans` (sorted, inside the range) do
/// not cover, ignoring holes shorter than MediaMTX's joining tolerance.
pub fn gaps(start: DateTime<Utc>, end: DateTime<Utc>, spans: &[Span]) -> Vec<Span> {
    let tolerance = chrono::Duration::milliseconds(GAP_TOLERANCE_MS);
    let mut out = Vec::new();
    let mut covered = start;
    for s in spans {
        if s.start - covered > tolerance {
            out.push(Span {
                start: covered,
                end: s.start,
            });
        }
        covered = covered.max(s.end);
    }
    if end - covered > tolerance {
        out.push(Span {
            start: covered,
            end,
        });
    }
    out
}

/// `spans` cut into pieces of at most `max` each.
pub fn pieces(spans: &[Span], max: chrono::Duration) -> Vec<Span> {
    let mut out = Vec::new();
    for s in spans {
        let mut from = s.start;
        while s.end - from > max {
            out.push(Span {
                start: from,
                end: from + max,
            });
            from += max;
        }
        out.push(Span {
            start: from,
            end: s.end,
        });
    }
    out
}

/// The `SHA256SUMS` text of `files`.
pub fn sums(files: &[ExportFile]) -> String {
    files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect()
}

/// The machine's host name (the box name is the operator's; the host name
/// is what the network knows it as).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The exports of this box: the directory, MediaMTX's playback server and
/// the one-at-a-time lock.
pub struct Exports {
    dir: PathBuf,
    playback: SocketAddr,
    client: reqwest::Client,
    busy: Arc<tokio::sync::Mutex<()>>,
    recordings: Option<RecordingsDisk>,
}

/// The recordings disk, whose free-space floor an export keeps when it
/// writes to the same filesystem.
#[derive(Debug, Clone)]
pub struct RecordingsDisk {
    /// `[recording] path`.
    pub root: PathBuf,
    /// `storage.min_free`, and `storage.min_free_percent`: the floor when
    /// the storage machine has not published its own yet.
    pub min_free: Option<u64>,
    pub min_free_percent: f64,
}

/// What an export may count on before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// The range's recorded bytes (from the catalog).
    pub recorded: u64,
    /// The recordings' floor as the storage machine computes it now, if
    /// it has published one.
    pub floor: Option<u64>,
}

/// An export being made: its id and partial directory, and the lock.
pub struct Job {
    pub id: String,
    partial: PathBuf,
    _busy: tokio::sync::OwnedMutexGuard<()>,
}

impl Exports {
    /// Exports under `dir` (made when the first export begins), fetched
    /// from MediaMTX's playback server at `playback`.
    pub fn new(dir: PathBuf, playback: SocketAddr) -> Exports {
        let client = reqwest::Client::builder()
            .connect_timeout(UPSTREAM_TIMEOUT)
            .build()
            .unwrap_or_default();
        Exports {
            dir,
            playback,
            client,
            busy: Arc::new(tokio::sync::Mutex::new(())),
            recordings: None,
        }
    }

    /// The recordings disk, so that an export sharing it keeps its floor.
    pub fn with_recordings(mut self, disk: RecordingsDisk) -> Exports {
        self.recordings = Some(disk);
        self
    }

    /// The job back when the exports disk has room for it
    /// ([`Exports::check_room`]); else the job ends here, its directory
    /// removed.
    pub async fn ensure_room(&self, job: Job, room: Room) -> Result<Job, ExportError> {
        match self.check_room(room) {
            Ok(()) => Ok(job),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&job.partial).await;
                Err(e)
            }
        }
    }

    /// Checks that the exports disk has room for `room.recorded` bytes and
    /// the margin, beyond the recordings' floor when the exports share
    /// their disk.
    pub fn check_room(&self, room: Room) -> Result<(), ExportError> {
        let here = crate::storage::exec::disk_sample(&self.dir)?;
        let floor = match &self.recordings {
            Some(r) if same_filesystem(&self.dir, &r.root) => room.floor.unwrap_or_else(|| {
                r.min_free
                    .unwrap_or((here.total_bytes as f64 * r.min_free_percent / 100.0) as u64)
            }),
            _ => 0,
        };
        check_space(bytes_needed(room.recorded), here.available_bytes, floor)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the exports before it, then picks the id
    /// (`<export time>_cam<N>`, `_2`... if taken) and makes the partial
    /// directory; partial directories of exports that never ended are
    /// removed first.
    pub async fn begin(&self, camera: u32, now: DateTime<Utc>) -> Result<Job, ExportError> {
        let busy = self.busy.clone().lock_owned().await;
        make_private_dir(&self.dir).await?;
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".partial") {
                tracing::warn!(dir = %e.path().display(), "removing an unfinished export");
                let _ = tokio::fs::remove_dir_all(e.path()).await;
            }
        }
        let base = format!("{}_cam{camera}", compact(now));
        for n in 1..1000 {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}_{n}")
            };
            if tokio::fs::try_exists(self.dir.join(&id)).await? {
                continue;
            }
            let partial = self.dir.join(format!(".{id}.partial"));
            make_private_dir(&partial).await?;
            return Ok(Job {
                id,
                partial,
                _busy: busy,
            });
        }
        Err(ExportError::Io(format!("too many exports named {base}_*")))
    }

    /// Makes the export of `job`: lists the spans, fetches each, writes
    /// the manifest and the checksums, and moves the directory in place.
    /// On failure the partial directory is removed.
    pub async fn make(
        &self,
        job: Job,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<Manifest, ExportError> {
        let result = self.fill(&job, req, now).await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&job.partial).await;
        }
        result
    }

    async fn fill(
        &self,
        job: &Job,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<Manifest, ExportError> {
        check_range(req.start, req.end)?;
        let path = format!("cam_{}", req.camera_id);
        let spans = self.list(&path, req).await?;
        if spans.is_empty() {
            return Err(no_footage(req));
        }
        let spans = pieces(&spans, chrono::Duration::seconds(MAX_FILE_SECS));
        let mut files: Vec<ExportFile> = Vec::new();
        for span in &spans {
            let mut name = format!(
                "cam{}_{}_{}.mp4",
                req.camera_id,
                compact(span.start),
                compact(span.end)
            );
            if files.iter().any(|f| f.name == name) {
                name = format!("{}_{}.mp4", name.trim_end_matches(".mp4"), files.len() + 1);
            }
            match self.fetch(&path, *span, &job.partial.join(&name)).await? {
                Some((size, sha256)) => files.push(ExportFile {
                    name,
                    start: span.start,
                    end: span.end,
                    size,
                    sha256,
                }),
                // Listed, then gone (evicted before the hold, or shorter
                // than one part): it is a gap.
                None => continue,
            }
        }
        if files.is_empty() {
            return Err(no_footage(req));
        }
        let covered: Vec<Span> = files
            .iter()
            .map(|f| Span {
                start: f.start,
                end: f.end,
            })
            .collect();
        let manifest = Manifest {
            id: job.id.clone(),
            box_name: req.box_name.clone(),
            hostname: hostname(),
            camera_id: req.camera_id,
            camera_name: req.camera_name.clone(),
            start: req.start,
            end: req.end,
            reason: req.reason.clone(),
            gaps: gaps(req.start, req.end, &covered),
            files,
            exported_at: now,
            exported_by: req.user.clone(),
            source: req.source.clone(),
            supervisor_version: crate::VERSION.to_string(),
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Io(e.to_string()))?;
        let (partial, final_dir, parent) = (
            job.partial.clone(),
            self.dir.join(&job.id),
            self.dir.clone(),
        );
        let sums = sums(&manifest.files);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            crate::durable::write_atomic(&partial.join(MANIFEST), &json)?;
            crate::durable::write_atomic(&partial.join(SUMS), sums.as_bytes())?;
            std::fs::rename(&partial, &final_dir)?;
            std::fs::File::open(&parent)?.sync_all()
        })
        .await
        .map_err(|e| ExportError::Io(e.to_string()))??;
        Ok(manifest)
    }

    /// The recorded spans of `path` inside the request's range.
    async fn list(&self, path: &str, req: &Request) -> Result<Vec<Span>, ExportError> {
        #[derive(Deserialize)]
        struct Entry {
            start: String,
            duration: f64,
        }
        let resp = self
            .request("list")
            .query(&[
                ("path", path.to_string()),
                ("start", rfc3339(req.start)),
                ("end", rfc3339(req.end)),
            ])
            .send();
        let resp = tokio::time::timeout(UPSTREAM_TIMEOUT, resp)
            .await
            .map_err(|_| ExportError::Upstream("no answer to /list".into()))?
            .map_err(|e| ExportError::Upstream(e.to_string()))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let resp = upstream_ok(resp).await?;
        let entries: Vec<Entry> = tokio::time::timeout(UPSTREAM_TIMEOUT, resp.json())
            .await
            .map_err(|_| ExportError::Upstream("/list did not finish".into()))?
            .map_err(|e| ExportError::Upstream(format!("/list: {e}")))?;
        let mut spans = Vec::new();
        for e in entries {
            let start = DateTime::parse_from_rfc3339(&e.start)
                .map_err(|err| ExportError::Upstream(format!("/list start {:?}: {err}", e.start)))?
                .with_timezone(&Utc);
            if !(e.duration.is_finite() && e.duration > 0.0) {
                continue;
            }
            let end = start + chrono::Duration::microseconds((e.duration * 1e6) as i64);
            // Clipped by MediaMTX already; clipped again in case it did not.
            let span = Span {
                start: start.max(req.start),
                end: end.min(req.end),
            };
            if span.end > span.start {
                spans.push(span);
            }
        }
        spans.sort_by_key(|s| s.start);
        Ok(spans)
    }

    /// Fetches one span into `file`: its size and SHA-256, or `None` when
    /// MediaMTX has nothing there after all (404).
    async fn fetch(
        &self,
        path: &str,
        span: Span,
        file: &Path,
    ) -> Result<Option<(u64, String)>, ExportError> {
        let seconds = (span.end - span.start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        let resp = self
            .request("get")
            .query(&[
                ("path", path.to_string()),
                ("start", rfc3339(span.start)),
                ("duration", format!("{seconds:.6}")),
                ("format", "mp4".to_string()),
            ])
            .send();
        // With `format=mp4` MediaMTX answers only once it has indexed the
        // whole piece: a second more per minute of footage.
        let first_byte = UPSTREAM_TIMEOUT + Duration::from_secs_f64(seconds / 60.0);
        let mut resp = tokio::time::timeout(first_byte, resp)
            .await
            .map_err(|_| ExportError::Upstream("no answer to /get".into()))?
            .map_err(|e| ExportError::Upstream(e.to_string()))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp = upstream_ok(resp).await?;
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true).mode(0o600);
            tokio::fs::OpenOptions::from(o).open(file).await?
        };
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        loop {
            let chunk = tokio::time::timeout(UPSTREAM_TIMEOUT, resp.chunk())
                .await
                .map_err(|_| ExportError::Upstream("/get stalled".into()))?
                .map_err(|e| ExportError::Upstream(format!("/get was cut: {e}")))?;
            let Some(chunk) = chunk else { break };
            digest.update(&chunk);
            out.write_all(&chunk).await?;
            size += chunk.len() as u64;
        }
        out.sync_all().await?;
        if size == 0 {
            return Err(ExportError::Upstream("/get answered an empty file".into()));
        }
        let sha256 = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some((size, sha256)))
    }

    fn request(&self, what: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("http://{}/{what}", self.playback))
            .bearer_auth(crate::mediamtx::credential())
    }

    /// Every finished export, newest first (an unreadable manifest is
    /// logged and left out).
    pub async fn list_all(&self) -> Vec<Manifest> {
        let mut out = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return out;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if valid_id(&name) {
                if let Some(m) = self.manifest(&name).await {
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| b.exported_at.cmp(&a.exported_at).then(b.id.cmp(&a.id)));
        out
    }

    /// The manifest of export `id`, if it exists.
    pub async fn manifest(&self, id: &str) -> Option<Manifest> {
        if !valid_id(id) {
            return None;
        }
        let path = self.dir.join(id).join(MANIFEST);
        let bytes = tokio::fs::read(&path).await.ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "unreadable export manifest");
                None
            }
        }
    }

    /// The path of file `name` of export `id`: one of its MP4 files, the
    /// manifest or the checksums; `None` for anything else.
    pub fn file(&self, m: &Manifest, name: &str) -> Option<PathBuf> {
        let known = name == MANIFEST || name == SUMS || m.files.iter().any(|f| f.name == name);
        (known && valid_id(&m.id)).then(|| self.dir.join(&m.id).join(name))
    }
}

fn no_footage(req: &Request) -> ExportError {
    ExportError::NoFootage {
        camera: req.camera_id,
        start: rfc3339(req.start),
        end: rfc3339(req.end),
    }
}

async fn upstream_ok(resp: reqwest::Response) -> Result<reqwest::Response, ExportError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(text);
    Err(ExportError::Upstream(format!("{status}: {msg}")))
}

fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

async fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    b.create(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn span(a: &str, b: &str) -> Span {
        Span {
            start: t(a),
            end: t(b),
        }
    }

    #[test]
    fn gaps_are_what_the_spans_leave_out_beyond_the_tolerance() {
        let (s, e) = (t("2026-11-29T10:00:00Z"), t("2026-11-29T11:00:00Z"));
        assert_eq!(gaps(s, e, &[]), vec![Span { start: s, end: e }]);
        assert_eq!(
            gaps(
                s,
                e,
                &[span("2026-11-29T10:00:00.5Z", "2026-11-29T10:59:59.2Z")]
            ),
            vec![],
            "holes under a second at both ends are no gap"
        );
        assert_eq!(
            gaps(
                s,
                e,
                &[
                    span("2026-11-29T10:05:00Z", "2026-11-29T10:20:00Z"),
                    span("2026-11-29T10:20:00.8Z", "2026-11-29T10:30:00Z"),
                    span("2026-11-29T10:40:00Z", "2026-11-29T11:00:00Z"),
                ]
            ),
            vec![
                span("2026-11-29T10:00:00Z", "2026-11-29T10:05:00Z"),
                span("2026-11-29T10:30:00Z", "2026-11-29T10:40:00Z"),
            ]
        );
    }

    #[test]
    fn long_spans_are_cut_into_contiguous_pieces() {
        let hour = chrono::Duration::hours(1);
        let spans = [
            span("2026-11-29T10:00:00Z", "2026-11-29T12:30:00Z"),
            span("2026-11-29T13:00:00Z", "2026-11-29T14:00:00Z"),
        ];
        assert_eq!(
            pieces(&spans, hour),
            vec![
                span("2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z"),
                span("2026-11-29T11:00:00Z", "2026-11-29T12:00:00Z"),
                span("2026-11-29T12:00:00Z", "2026-11-29T12:30:00Z"),
                span("2026-11-29T13:00:00Z", "2026-11-29T14:00:00Z"),
            ]
        );
        let covered = pieces(&spans, hour);
        assert_eq!(
            gaps(
                t("2026-11-29T10:00:00Z"),
                t("2026-11-29T14:00:00Z"),
                &covered
            ),
            vec![span("2026-11-29T12:30:00Z", "2026-11-29T13:00:00Z")],
            "the cuts are no gaps"
        );
    }

    #[test]
    fn ranges_and_ids() {
        let s = t("2026-11-29T10:00:00Z");
        assert!(check_range(s, s).is_err());
        assert!(check_range(s, s - chrono::Duration::seconds(1)).is_err());
        assert!(check_range(s, s + chrono::Duration::hours(24)).is_ok());
        let long = check_range(s, s + chrono::Duration::hours(25)).unwrap_err();
        assert!(long.to_string().contains("24 hours"), "{long}");
        assert!(valid_id("20261129T100000Z_cam1_2"));
        for bad in ["", "..", "a/b", ".x.partial", "a b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_checksum_list_is_what_sha256sum_reads() {
        let f = ExportFile {
            name: "cam1_a.mp4".into(),
            start: t("2026-11-29T10:00:00Z"),
            end: t("2026-11-29T10:01:00Z"),
            size: 3,
            sha256: "ab".repeat(32),
        };
        assert_eq!(sums(&[f]), format!("{}  cam1_a.mp4\n", "ab".repeat(32)));
    }

    #[test]
    fn the_recorded_bytes_of_a_range_count_the_share_of_each_segment_on_disk() {
        use crate::storage::catalog::SegState;
        use crate::storage::to_micros;
        let at = |s: &str| to_micros(t(s));
        let segs = vec![
            // Gone from the disk (in the bucket or not): nothing to copy.
            (
                at("2026-11-29T09:00:00Z"),
                at("2026-11-29T10:00:00Z"),
                3_600_000,
                SegState::Deleted,
                true,
            ),
            // Half inside the range.
            (
                at("2026-11-29T09:30:00Z"),
                at("2026-11-29T10:30:00Z"),
                3_600_000,
                SegState::Complete,
                false,
            ),
            // Wholly inside, still being written.
            (
                at("2026-11-29T10:30:00Z"),
                at("2026-11-29T10:40:00Z"),
                600_000,
                SegState::Recording,
                false,
            ),
            // Just started, no length yet.
            (
                at("2026-11-29T10:40:00Z"),
                at("2026-11-29T10:40:00Z"),
                1000,
                SegState::Recording,
                false,
            ),
            // After the range.
            (
                at("2026-11-29T11:00:00Z"),
                at("2026-11-29T11:10:00Z"),
                600_000,
                SegState::Complete,
                false,
            ),
        ];
        let (s, e) = (t("2026-11-29T10:00:00Z"), t("2026-11-29T11:00:00Z"));
        assert_eq!(recorded_bytes(&segs, s, e), 1_800_000 + 600_000 + 1000);
        assert_eq!(recorded_bytes(&[], s, e), 0);
    }

    #[test]
    fn an_export_keeps_the_margin_and_the_recordings_floor_free() {
        let mib = 1u64 << 20;
        assert_eq!(bytes_needed(0), SPACE_MARGIN_BYTES);
        assert_eq!(bytes_needed(100 * mib), 105 * mib + SPACE_MARGIN_BYTES);
        assert!(check_space(10 * mib, 10 * mib, 0).is_ok());
        let e = check_space(10 * mib, 10 * mib - 1, 0).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("needs {} bytes", 10 * mib))
                && text.contains(&format!("{} bytes", 10 * mib - 1))
                && !text.contains("floor"),
            "{text}"
        );
        // On the recordings disk, the floor is not the export's to take.
        assert!(check_space(10 * mib, 20 * mib, 10 * mib).is_ok());
        let e = check_space(10 * mib, 20 * mib, 10 * mib + 1).unwrap_err();
        assert!(matches!(
            e,
            ExportError::NoSpace {
                needed,
                available,
                floor
            } if needed == 10 * mib && available == 20 * mib && floor == 10 * mib + 1
        ));
        assert!(e.to_string().contains("free-space floor"), "{e}");
        assert!(check_space(1, 5, 10).is_err(), "less free than the floor");
    }

    #[tokio::test]
    async fn a_partial_export_is_removed_when_the_next_begins_and_ids_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exports::new(dir.path().join(DIR), "127.0.0.1:9".parse().unwrap());
        let now = t("2026-11-29T10:00:00Z");
        let job = ex.begin(1, now).await.unwrap();
        assert_eq!(job.id, "20261129T100000Z_cam1");
        let partial = job.partial.clone();
        assert!(partial.is_dir());
        // The job "crashes": its directory stays, unfinished.
        std::mem::forget(job);
        // A finished export with the first id exists.
        std::fs::create_dir(dir.path().join(DIR).join("20261129T100000Z_cam1")).unwrap();
        let ex2 = Exports::new(dir.path().join(DIR), "127.0.0.1:9".parse().unwrap());
        let job = ex2.begin(1, now).await.unwrap();
        assert!(!partial.exists(), "the unfinished export is removed");
        assert_eq!(job.id, "20261129T100000Z_cam1_2");
        // Nothing answers on port 9: the export fails, and leaves nothing.
        let req = Request {
            camera_id: 1,
            camera_name: "Portaria".into(),
            start: now - chrono::Duration::minutes(5),
            end: now,
            reason: String::new(),
            box_name: "caixa".into(),
            user: "ada".into(),
            source: "127.0.0.1".into(),
        };
        let partial = job.partial.clone();
        assert!(matches!(
            ex2.make(job, &req, now).await,
            Err(ExportError::Upstream(_))
        ));
        assert!(!partial.exists());
        assert!(
            ex2.list_all().await.is_empty(),
            "an empty directory has no manifest"
        );
    }
}
