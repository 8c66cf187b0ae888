//! Off-site backup of completed segments to any S3-compatible bucket.
//!
//! * [`queue`]: the durable queue, which is the catalog's `segments` rows
//!   (a row is marked queued before the network and uploaded after the
//!   acknowledgement), plus the `backup_status` row.
//! * [`machine`]: the decisions (what next, concurrency, backoff,
//!   configuration errors, the lag alert), synchronous and tested with a
//!   fake clock.
//! * [`s3`]: a small Signature V4 client over `reqwest` with Content-MD5 on
//!   every body (the service verifies it) and a token bucket on bytes sent.
//! * this file: the worker that ties them together, object keys, restore
//!   and the Prometheus series.
//!
//! The worker opens its own connection to the catalog file (WAL), so it
//! runs beside the storage owner thread and the `backup` commands can use
//! the same file while the daemon is stopped.

pub mod machine;
pub mod queue;
pub mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rusqlite::Connection;
use tokio::sync::mpsc;

use self::machine::{Action, BackupAlert, Event, Machine};
use self::queue::{Pending, SegKey};
use self::s3::{S3Client, S3Error};
use super::{Micros, SECOND};
use crate::config::Config;
use crate::events::{AlertEvent, Issue, Phase, Severity};

/// Everything the worker needs, built from `[backup]` by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub s3: s3::S3Settings,
    pub prefix: String,
    pub box_name: String,
    pub storage_class: String,
    pub max_bytes_per_second: Option<u64>,
    pub machine: machine::Settings,
    /// Segments larger than this use multipart upload, in parts of this size
    /// (at least 5 MiB: S3's minimum part).
    pub part_size: u64,
    /// How often the queue is polled.
    pub poll: Duration,
    pub recordings_root: PathBuf,
    /// Camera id → name, for the object metadata.
    pub camera_names: BTreeMap<u32, String>,
}

/// Default part size: 16 MiB (memory per concurrent upload).
pub const PART_SIZE: u64 = 16 * 1024 * 1024;

/// How often the daemon's worker polls the queue. A segment completes every
/// `recording.segment_duration` at most once per camera, so this is far
/// below anything the lag alert could notice.
pub const POLL: Duration = Duration::from_secs(2);

impl Settings {
    /// The worker's settings from `[backup]`; `None` when backup is off, or
    /// on when its keys were not loaded (the config check refuses that for
    /// the daemon, so only a caller that skipped it sees `None` then).
    pub fn from_config(config: &Config) -> Option<Settings> {
        let b = &config.backup;
        if !b.enabled {
            return None;
        }
        let (Some(id), Some(secret)) = (
            config.secrets.s3_access_key_id.clone(),
            config.secrets.s3_secret_access_key.clone(),
        ) else {
            return None;
        };
        let micros = |d: Duration| d.as_micros().min(i64::MAX as u128) as Micros;
        Some(Settings {
            s3: s3::S3Settings {
                endpoint: b.endpoint.trim().trim_end_matches('/').to_string(),
                region: b.region.clone(),
                bucket: b.bucket.clone(),
                path_style: b.path_style,
                access_key_id: id,
                secret_access_key: secret,
            },
            prefix: b.prefix.clone(),
            box_name: config.general.box_name.clone(),
            storage_class: b.storage_class.clone(),
            max_bytes_per_second: (b.max_bytes_per_second.0 > 0)
                .then_some(b.max_bytes_per_second.0),
            machine: machine::Settings {
                concurrency: b.concurrency as usize,
                lag_warning: micros(b.lag_warning.get()),
                lag_critical: micros(b.lag_critical.get()),
                backoff_base: micros(b.retry_max.get().min(Duration::from_secs(5))),
                backoff_max: micros(b.retry_max.get()),
            },
            part_size: PART_SIZE,
            poll: POLL,
            recordings_root: config.recording.path.clone(),
            camera_names: config
                .cameras
                .iter()
                .map(|c| (c.id, c.name.clone()))
                .collect(),
        })
    }
}

/// A backup alert as the daemon's alert (one incident per kind: `backup:lag`
/// and `backup:config`).
pub fn alert_event(a: &BackupAlert, at: chrono::DateTime<Utc>) -> AlertEvent {
    let (severity, phase, key, issue) = match a {
        BackupAlert::Lag { level, .. } => (
            if *level == machine::Level::Critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            Phase::Firing,
            "backup:lag",
            Issue::BackupLag,
        ),
        BackupAlert::LagResolved => (
            Severity::Warning,
            Phase::Resolved,
            "backup:lag",
            Issue::BackupLag,
        ),
        BackupAlert::Config { .. } => (
            Severity::Critical,
            Phase::Firing,
            "backup:config",
            Issue::BackupRefused,
        ),
        BackupAlert::ConfigResolved => (
            Severity::Critical,
            Phase::Resolved,
            "backup:config",
            Issue::BackupRefused,
        ),
    };
    let details = match a {
        BackupAlert::Lag {
            lag_seconds,
            segments,
            bytes,
            ..
        } => format!(
            "{} sem cópia, {segments} segmentos, {:.1} MB",
            if *lag_seconds >= 3600 {
                format!("{:.1} h", *lag_seconds as f64 / 3600.0)
            } else {
                format!("{} min", lag_seconds.div_ceil(60))
            },
            *bytes as f64 / 1e6
        ),
        BackupAlert::Config { code, message } => format!("{code}: {message}"),
        _ => String::new(),
    };
    AlertEvent::system(at, severity, phase, key, issue, details)
}

/// Runs the worker for the daemon until `shutdown`: its alerts go to the
/// alert pipeline. Opens its own connection to the catalog at `db`.
pub fn spawn(
    settings: Settings,
    db: &Path,
    sink: crate::events::AlertSink,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let conn = super::catalog::open(db)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<BackupAlert>();
    let worker = Worker::new(settings, conn);
    let forward = tokio::spawn(async move {
        while let Some(a) = rx.recv().await {
            sink.send(alert_event(&a, Utc::now())).await;
        }
    });
    Ok(tokio::spawn(async move {
        worker.run(tx, shutdown).await;
        let _ = forward.await;
    }))
}

/// The worker as the daemon runs it: started from `[backup]`, started
/// again with the new settings when a reload of vms.toml changes them
/// (keys, bucket, limits, turned on or off), stopped at shutdown. A change
/// never blocks the caller: the old worker is told to stop (its in-flight
/// uploads are dropped; their rows stay queued) and the new one starts
/// once it has, so two workers never share the queue.
pub struct Runner {
    db: PathBuf,
    sink: crate::events::AlertSink,
    /// `false` when the segment catalog cannot be opened: nothing to back up
    /// from.
    catalog: bool,
    settings: Option<Settings>,
    running: Option<(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Runner {
    pub fn new(db: PathBuf, catalog: bool, sink: crate::events::AlertSink) -> Runner {
        Runner {
            db,
            sink,
            catalog,
            settings: None,
            running: None,
        }
    }

    /// Runs the worker `config` asks for, if that is not what runs already.
    pub fn apply(&mut self, config: &Config) {
        let wanted = Settings::from_config(config);
        if wanted == self.settings && (self.running.is_some() || wanted.is_none()) {
            return;
        }
        if wanted.is_some() && !self.catalog {
            tracing::error!(
                "backup: enabled, but the segment catalog cannot be opened; nothing is uploaded"
            );
            return;
        }
        let was_running = self.settings.is_some();
        self.settings = wanted.clone();
        let previous = self.running.take();
        if let Some((stop, _)) = &previous {
            stop.cancel();
        }
        match (&wanted, was_running) {
            (Some(_), true) => {
                tracing::info!("backup: new settings; the worker restarts with them")
            }
            (None, true) => tracing::info!("backup: turned off; the worker stops"),
            _ => {}
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let (db, sink, token) = (self.db.clone(), self.sink.clone(), stop.clone());
        let task = tokio::spawn(async move {
            if let Some((_, old)) = previous {
                let _ = old.await;
            }
            let Some(settings) = wanted else {
                return;
            };
            if token.is_cancelled() {
                return;
            }
            describe();
            match spawn(settings, &db, sink, token) {
                Ok(worker) => {
                    let _ = worker.await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "backup: the catalog cannot be opened; nothing is uploaded")
                }
            }
        });
        self.running = Some((stop, task));
    }

    /// Stops the worker and waits for it.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
    }
}

/// `<prefix>/<box>/cam_<id>/<YYYY-MM-DD>/<HH-MM-SS>.mp4`, in UTC so the key
/// never repeats across a daylight-saving change.
pub fn object_key(prefix: &str, box_name: &str, camera: u32, start_us: Micros) -> String {
    let t = Utc.timestamp_micros(start_us).single().unwrap_or_default();
    let prefix = prefix.trim_matches('/');
    let tail = format!(
        "{box_name}/cam_{camera}/{}/{}.mp4",
        t.format("%Y-%m-%d"),
        t.format("%H-%M-%S")
    );
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

fn rfc3339(us: Micros) -> String {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The SHA-256 of a file, read in blocks (blocking).
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(s3::hex(ctx.finish().as_ref()))
}

/// What an upload acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub key: String,
    pub etag: String,
    pub bytes: u64,
    /// True when a previous run had uploaded it already (found by HEAD).
    pub already_there: bool,
}

/// Uploads one segment (SHA-256 first, then PUT or multipart).
pub async fn upload_segment(
    client: &S3Client,
    settings: &Settings,
    seg: &Pending,
    sha256: &str,
) -> Result<Done, S3Error> {
    let key = object_key(
        &settings.prefix,
        &settings.box_name,
        seg.camera,
        seg.start_us,
    );
    if seg.backup_state == 1 {
        // Started by an earlier run: it may be there already.
        match client.head_object(&key).await {
            Ok(info) if info.metadata.get("sha256").map(String::as_str) == Some(sha256) => {
                return Ok(Done {
                    key,
                    etag: info.etag,
                    bytes: info.size,
                    already_there: true,
                });
            }
            Ok(_) | Err(S3Error::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let path = settings.recordings_root.join(&seg.path);
    let mut meta = BTreeMap::new();
    meta.insert("sha256".to_string(), sha256.to_string());
    meta.insert("start".to_string(), rfc3339(seg.start_us));
    meta.insert("end".to_string(), rfc3339(seg.end_us));
    meta.insert(
        "camera-name".to_string(),
        settings
            .camera_names
            .get(&seg.camera)
            .cloned()
            .unwrap_or_else(|| format!("cam_{}", seg.camera)),
    );
    meta.insert("camera-id".to_string(), seg.camera.to_string());
    let headers = S3Client::object_headers(&settings.storage_class, &meta);
    let io = |e: std::io::Error| S3Error::Transient(format!("reading {}: {e}", path.display()));
    let size = tokio::fs::metadata(&path).await.map_err(io)?.len();
    let part = settings.part_size.max(5 * 1024 * 1024);
    let etag = if size <= part {
        let body = tokio::fs::read(&path).await.map_err(io)?;
        client.put_object(&key, body, &headers).await?
    } else {
        use tokio::io::AsyncReadExt;
        let id = client.create_multipart(&key, &headers).await?;
        let result = async {
            let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
            let mut etags = Vec::new();
            let mut number = 1;
            loop {
                let mut buf = Vec::with_capacity(part as usize);
                (&mut f)
                    .take(part)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(io)?;
                if buf.is_empty() {
                    break;
                }
                etags.push(client.upload_part(&key, &id, number, buf).await?);
                number += 1;
            }
            client.complete_multipart(&key, &id, &etags).await
        }
        .await;
        if result.is_err() {
            let _ = client.abort_multipart(&key, &id).await;
        }
        result?
    };
    // A single PUT's ETag is the MD5 the service computed; the service
    // already compared it with our Content-MD5, a mismatch would be BadDigest.
    Ok(Done {
        key,
        etag,
        bytes: size,
        already_there: false,
    })
}

/// The wall clock in catalog micros.
pub fn now_us() -> Micros {
    Utc::now().timestamp_micros()
}

/// The upload worker: polls the queue, runs the machine, uploads, records.
pub struct Worker {
    settings: Settings,
    client: S3Client,
    db: Arc<Mutex<Connection>>,
    machine: Machine,
    clock: Arc<dyn Fn() -> Micros + Send + Sync>,
}

type Outcome = (SegKey, Result<Done, S3Error>);

impl Worker {
    /// `conn`: a connection to the catalog (`catalog::open`).
    pub fn new(settings: Settings, conn: Connection) -> Worker {
        let client = S3Client::new(settings.s3.clone(), settings.max_bytes_per_second);
        Worker {
            machine: Machine::new(settings.machine.clone()),
            settings,
            client,
            db: Arc::new(Mutex::new(conn)),
            clock: Arc::new(now_us),
        }
    }

    /// The clock for lag (tests move it forward).
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> Micros + Send + Sync>) -> Worker {
        self.clock = clock;
        self
    }

    pub fn client(&self) -> &S3Client {
        &self.client
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Option<T> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || {
            let mut c = db.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "backup: catalog");
                None
            }
            Err(_) => None,
        }
    }

    /// Runs until `shutdown` fires; alerts go to `alerts`. In-flight uploads
    /// are dropped at shutdown (the rows stay queued and are checked by HEAD
    /// at the next start).
    pub async fn run(
        mut self,
        alerts: mpsc::UnboundedSender<BackupAlert>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
        let mut tasks = tokio::task::JoinSet::new();
        let mut pending: BTreeMap<SegKey, Pending> = BTreeMap::new();
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some((seg, result)) = rx.recv() => {
                    self.record(seg, &result).await;
                    // A slot is free: look at the queue again now, not at
                    // the next poll (uploads would otherwise be capped at
                    // `concurrency` per poll, below what 100 cameras make).
                    tick.reset_immediately();
                    match result {
                        Ok(_) => Event::Uploaded(seg),
                        Err(e) => Event::Failed(seg, e),
                    }
                }
                _ = tick.tick() => {
                    let limit = self.settings.machine.concurrency * 2 + self.machine.in_flight();
                    let Some((rows, backlog, status)) = self
                        .db(move |c| Ok((queue::pending(c, limit)?, queue::backlog(c)?, queue::status(c)?)))
                        .await
                    else { continue };
                    publish(&backlog, &status, (self.clock)());
                    let keys = rows.iter().map(Pending::key).collect();
                    for r in rows {
                        pending.insert(r.key(), r);
                    }
                    Event::Queue { pending: keys, backlog, config_error: status.config_error }
                }
            };
            let now = (self.clock)();
            for action in self.machine.handle(now, event) {
                match action {
                    Action::Alert(a) => {
                        tracing::warn!(alert = %a.text(), "backup");
                        let _ = alerts.send(a);
                    }
                    Action::SetConfigError(e) => {
                        self.db(move |c| queue::set_config_error(c, e.as_deref()))
                            .await;
                    }
                    Action::Upload(seg) => {
                        let Some(row) = pending.get(&seg).cloned() else {
                            continue;
                        };
                        let client = self.client.clone();
                        let settings = self.settings.clone();
                        let db = self.db.clone();
                        let tx = tx.clone();
                        tasks.spawn(async move {
                            let result = upload_one(&client, &settings, &db, &row).await;
                            let _ = tx.send((seg, result));
                        });
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        tasks.abort_all();
    }

    async fn record(&self, seg: SegKey, result: &Result<Done, S3Error>) {
        let now = (self.clock)();
        match result {
            Ok(done) => {
                let done = done.clone();
                metrics::counter!("vms_backup_uploaded_segments_total").increment(1);
                if !done.already_there {
                    metrics::counter!("vms_backup_uploaded_bytes_total").increment(done.bytes);
                }
                self.db(move |c| {
                    queue::mark_uploaded(c, seg, &done.key, &done.etag, done.bytes, now)
                })
                .await;
            }
            Err(e) => {
                metrics::counter!("vms_backup_failures_total", "reason" => e.reason()).increment(1);
                let text = e.to_string();
                tracing::info!(camera = seg.0, error = %text, "backup: upload failed");
                self.db(move |c| queue::mark_failed(c, seg, &text, now))
                    .await;
            }
        }
    }
}

async fn upload_one(
    client: &S3Client,
    settings: &Settings,
    db: &Arc<Mutex<Connection>>,
    row: &Pending,
) -> Result<Done, S3Error> {
    let path = settings.recordings_root.join(&row.path);
    let sha = match &row.sha256 {
        Some(s) => s.clone(),
        None => {
            let p = path.clone();
            tokio::task::spawn_blocking(move || file_sha256(&p))
                .await
                .map_err(|e| S3Error::Transient(e.to_string()))?
                .map_err(|e| S3Error::Transient(format!("reading {}: {e}", path.display())))?
        }
    };
    {
        let db = db.clone();
        let sha = sha.clone();
        let seg = row.key();
        tokio::task::spawn_blocking(move || {
            let c = db.lock().unwrap_or_else(|e| e.into_inner());
            queue::mark_started(&c, seg, &sha)
        })
        .await
        .map_err(|e| S3Error::Transient(e.to_string()))?
        .map_err(|e| S3Error::Transient(format!("catalog: {e}")))?;
    }
    upload_segment(client, settings, row, &sha).await
}

/// Prometheus descriptions; call once after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        "vms_backup_queue_segments",
        "Completed segments not yet backed up"
    );
    describe_gauge!(
        "vms_backup_queue_bytes",
        Unit::Bytes,
        "Bytes of completed segments not yet backed up"
    );
    describe_gauge!(
        "vms_backup_lag_seconds",
        Unit::Seconds,
        "Age of the oldest completed segment not yet backed up (0 when caught up)"
    );
    describe_gauge!(
        "vms_backup_config_error",
        "1 while the S3 service refuses the configuration (uploads stopped)"
    );
    describe_counter!(
        "vms_backup_uploaded_segments_total",
        "Segments acknowledged by the bucket"
    );
    describe_counter!(
        "vms_backup_uploaded_bytes_total",
        Unit::Bytes,
        "Bytes uploaded to the bucket"
    );
    describe_counter!("vms_backup_failures_total", "Failed uploads by reason");
}

/// Sets the gauges (the worker calls it at every poll).
pub fn publish(backlog: &queue::Backlog, status: &queue::Status, now: Micros) {
    metrics::gauge!("vms_backup_queue_segments").set(backlog.segments as f64);
    metrics::gauge!("vms_backup_queue_bytes").set(backlog.bytes as f64);
    metrics::gauge!("vms_backup_lag_seconds").set(machine::lag_seconds(now, backlog));
    metrics::gauge!("vms_backup_config_error").set(if status.config_error.is_some() {
        1.0
    } else {
        0.0
    });
}

/// A restored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub path: PathBuf,
    pub sha256: String,
    pub verified: bool,
}

/// Fetches `camera`'s segments overlapping `[from, to)` from the bucket
/// into `dir`, checking each against the SHA-256 recorded at upload. A
/// mismatching file is kept as `<name>.mismatch` and reported.
pub async fn restore(
    client: &S3Client,
    conn: &Connection,
    camera: u32,
    from: Micros,
    to: Micros,
    dir: &Path,
) -> anyhow::Result<Vec<Restored>> {
    let rows = queue::uploaded(conn, camera, from, to)?;
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for r in rows {
        let data = client.get_object(&r.key).await?;
        let sha = s3::sha256_hex(&data);
        let name = r.key.rsplit('/').take(2).collect::<Vec<_>>();
        let verified = sha == r.sha256;
        let file = format!(
            "cam_{camera}_{}_{}{}",
            name.get(1).unwrap_or(&""),
            name.first().unwrap_or(&""),
            if verified { "" } else { ".mismatch" }
        );
        let path = dir.join(file);
        crate::durable::write_atomic(&path, &data)?;
        out.push(Restored {
            path,
            sha256: sha,
            verified,
        });
    }
    Ok(out)
}

/// `SECOND`, re-exported for callers building settings.
pub const fn seconds(n: i64) -> Micros {
    n * SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_box_camera_and_utc_time() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 13, 5, 9).unwrap();
        assert_eq!(
            object_key("/vms/", "escola-1", 5, t.timestamp_micros()),
            "vms/escola-1/cam_5/2026-11-25/13-05-09.mp4"
        );
        assert_eq!(
            object_key("", "b", 1, t.timestamp_micros()),
            "b/cam_1/2026-11-25/13-05-09.mp4"
        );
    }
}
