//! The daemon: one task owns all state and runs the loop.
//!
//! It feeds the two state machines (MediaMTX's process, the cameras) with
//! events — ticks, child exits, API answers, inotify events, MediaMTX log
//! lines, config edits, API commands — and executes their actions. Slow work
//! (HTTP calls to MediaMTX) runs in spawned tasks that report back on a
//! channel, so the loop never waits on the network. The HTTP API and metrics
//! read the [`Snapshot`] published on a `watch` channel and never lock
//! anything the loop holds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::{AlertEvent, AlertSink, Issue, Phase, Severity};
use crate::mediamtx::{self, api::Client, child, logs, render};
use crate::recordings::{self, RecEvent};
use crate::reload;
use crate::supervisor::cameras::{self, CameraMachine, CameraView, Now};
use crate::supervisor::process::{self, ProcessMachine, Reason};
use crate::{alerts, notify};

/// How often the loop ticks: the resolution of every timer.
const TICK: Duration = Duration::from_millis(250);
/// MediaMTX ignores a file change less than 1 s after the previous reload
/// (NOTES.md §0.9): our writes are spaced by more than that.
const WRITE_SPACING: Duration = Duration::from_millis(1300);

/// Everything the API, metrics and `status` show, published by the loop.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub box_name: String,
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
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct MediamtxView {
    pub up: bool,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub restart_storm: bool,
    /// The HLS server accepts connections (checked every `monitor.interval`
    /// with a plain TCP connect: an HLS request would create a reader
    /// session and a muxer per probe, NOTES.md §i).
    pub hls_listening: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskView {
    pub mount_point: String,
    pub percent: f64,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Requests from the API and the CLI.
#[derive(Debug)]
pub enum Command {
    /// Bring an offline camera back under supervision; `false` if unknown.
    ResetCamera {
        camera: u32,
        reply: oneshot::Sender<bool>,
    },
}

/// What the API needs from the daemon.
#[derive(Clone)]
pub struct Handles {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub commands: mpsc::Sender<Command>,
    /// Alerts as they happen, for server-sent events.
    pub alert_events: broadcast::Sender<AlertEvent>,
    pub alerts: alerts::AlertsHandle,
    pub token: Arc<String>,
    pub config: Arc<Config>,
}

/// Results of work done outside the loop.
enum Report {
    Probe { ok: bool },
    Paths(Result<Vec<cameras::PathObs>, String>),
    ChildExited { pid: u32, status: String },
    Hls { listening: bool },
    Log(logs::PathSignal),
    Converged { fixed: Vec<String> },
}

/// `[mediamtx] binary` does not exist: a configuration problem of the box
/// (exit 78, so systemd does not retry every few seconds until someone
/// installs MediaMTX and restarts the service).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingBinary(pub String);

pub struct Options {
    /// The config file to watch for edits (`None` for the embedded demo).
    pub config_path: Option<PathBuf>,
}

/// Runs the daemon until `shutdown` fires, then stops MediaMTX gracefully.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let binary = mediamtx::resolve_binary(&config.mediamtx.binary).ok_or_else(|| {
        anyhow::Error::new(MissingBinary(mediamtx::missing_binary_help(
            &config.mediamtx.binary,
        )))
    })?;
    std::fs::create_dir_all(&config.state.dir)
        .with_context(|| format!("creating {}", config.state.dir.display()))?;
    std::fs::create_dir_all(&config.recording.path)
        .with_context(|| format!("creating {}", config.recording.path.display()))?;
    let token = Arc::new(match load_or_create_token(&config.api.token_file) {
        Ok(t) => t,
        Err(e) => {
            // Reading still works; changes through the API are refused until
            // the token file exists (the package creates it at install).
            tracing::error!(
                error = format!("{e:#}"),
                "no API token: reset, silences and the webhook are refused"
            );
            random_token()?
        }
    });
    crate::metrics::install();

    // Alerts: stored in SQLite before anything is sent.
    let (sink, alert_rx) = AlertSink::channel(1024);
    let alerts_shutdown = CancellationToken::new();
    // A database that cannot be opened must not stop the supervision of
    // recording, nor the alerts: the same pipeline runs on a database in
    // memory (no history across a restart) and pages about it.
    let alerts = match alerts::open(&config) {
        Ok(pipeline) => pipeline.start(alert_rx, alerts_shutdown.clone()),
        Err(e) => {
            tracing::error!(
                error = %e,
                "the alert database cannot be used: alerts are kept in memory (still shown and sent, lost on restart) until it is fixed"
            );
            let alerts =
                alerts::open_in_memory(&config, &e)?.start(alert_rx, alerts_shutdown.clone());
            sink.send(alerts::store_unusable(&e.to_string(), Utc::now()))
                .await;
            alerts
        }
    };

    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot {
        box_name: config.general.box_name.clone(),
        version: crate::VERSION,
        started_at: Utc::now(),
        updated_at: Utc::now(),
        mediamtx: MediamtxView::default(),
        cameras: Vec::new(),
        disk: None,
        config_error: None,
        alert_store_error: alerts.store_error().map(str::to_string),
    }));
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (alert_events, _) = broadcast::channel(256);
    let config = Arc::new(config);
    let handles = Handles {
        snapshot: snap_rx,
        commands: cmd_tx,
        alert_events: alert_events.clone(),
        alerts: alerts.clone(),
        token,
        config: config.clone(),
    };
    let api_shutdown = CancellationToken::new();
    let api_task = tokio::spawn(crate::api::serve(listener, handles, api_shutdown.clone()));

    let mut d = Daemon::new(config, binary, sink, alerts.clone(), alert_events, snap_tx).await?;
    let result = d.run(options, cmd_rx, shutdown).await;

    api_shutdown.cancel();
    let _ = api_task.await;
    alerts_shutdown.cancel();
    alerts.stopped().await;
    result
}

struct Daemon {
    config: Arc<Config>,
    binary: PathBuf,
    client: Client,
    process: ProcessMachine,
    cameras: CameraMachine,
    sink: AlertSink,
    alerts: alerts::AlertsHandle,
    alert_events: broadcast::Sender<AlertEvent>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    reports_tx: mpsc::Sender<Report>,
    reports_rx: mpsc::Receiver<Report>,
    started_at: DateTime<Utc>,
    poll_in_flight: bool,
    next_poll: Instant,
    next_converge: Instant,
    next_disk: Instant,
    last_write: Option<Instant>,
    /// A config write waiting for the spacing MediaMTX needs.
    pending_write: Option<String>,
    written: String,
    config_error: Option<String>,
    disk: Option<DiskView>,
    hls_listening: Option<bool>,
    ready_sent: bool,
    last_status: String,
    log_limiter: Arc<Mutex<logs::RateLimiter>>,
}

impl Daemon {
    async fn new(
        config: Arc<Config>,
        binary: PathBuf,
        sink: AlertSink,
        alerts: alerts::AlertsHandle,
        alert_events: broadcast::Sender<AlertEvent>,
        snap_tx: watch::Sender<Arc<Snapshot>>,
    ) -> anyhow::Result<Daemon> {
        let now = Now::system();
        let client = Client::new(
            config.mediamtx.api_address,
            config.monitor.probe_timeout.get(),
        );
        let process = ProcessMachine::new(
            config.mediamtx.clone(),
            config.monitor.api_poll_interval.get(),
        );
        let cameras = CameraMachine::new(
            config.monitor.clone(),
            config.recording.part_duration.get(),
            &config.cameras,
            now,
        );
        let (reports_tx, reports_rx) = mpsc::channel(1024);
        let config_path = config.mediamtx_config_path();
        if let Some(pid) = child::stop_leftover(
            &config.state.dir,
            &config_path,
            config.mediamtx.stop_timeout.get(),
        )
        .await
        {
            tracing::warn!(pid, "stopped a MediaMTX left running by a previous daemon");
        }
        let rendered = render::render(&config);
        render::write_atomic(&config_path, rendered.as_bytes())
            .with_context(|| format!("writing {}", config_path.display()))?;
        Ok(Daemon {
            log_limiter: Arc::new(Mutex::new(logs::RateLimiter::new(
                config.mediamtx.log_lines_per_second,
            ))),
            config,
            binary,
            client,
            process,
            cameras,
            sink,
            alerts,
            alert_events,
            snap_tx,
            reports_tx,
            reports_rx,
            started_at: now.wall,
            poll_in_flight: false,
            next_poll: now.mono,
            next_converge: now.mono,
            next_disk: now.mono,
            last_write: Some(now.mono),
            pending_write: None,
            written: rendered,
            config_error: None,
            disk: None,
            hls_listening: None,
            ready_sent: false,
            last_status: String::new(),
        })
    }

    async fn run(
        &mut self,
        options: Options,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (rec_tx, mut rec_rx) = mpsc::channel(4096);
        let _watcher = recordings::spawn(&self.config.recording.path, rec_tx)
            .with_context(|| format!("watching {}", self.config.recording.path.display()))?;
        let (edit_tx, mut edit_rx) = mpsc::channel(16);
        let _config_watch = match &options.config_path {
            Some(path) => Some(watch_config_file(path, edit_tx)?),
            None => None,
        };
        let watchdog = notify::watchdog_interval();
        let mut next_watchdog = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let mut next_metrics = Instant::now();

        let acts = self.process.start(Instant::now());
        self.process_actions(acts).await;

        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    tracing::info!("stopping: MediaMTX is asked to finalize its segments");
                    notify::stopping();
                    let acts = self.process.handle(Instant::now(), process::Event::Shutdown);
                    if self.process_actions(acts).await {
                        break;
                    }
                }
                _ = ticker.tick() => {
                    let now = Now::system();
                    let acts = self.process.handle(now.mono, process::Event::Tick);
                    if self.process_actions(acts).await {
                        break;
                    }
                    if !stopping {
                        self.periodic(now).await;
                        let acts = self.cameras.handle(now, cameras::Event::Tick);
                        self.camera_actions(acts).await;
                    }
                    if now.mono >= next_metrics {
                        next_metrics = now.mono + Duration::from_secs(1);
                        self.publish(now);
                    }
                    if let Some(every) = watchdog {
                        if now.mono >= next_watchdog {
                            next_watchdog = now.mono + every;
                            notify::watchdog();
                        }
                    }
                }
                Some(report) = self.reports_rx.recv() => {
                    if self.report(report).await {
                        break;
                    }
                }
                Some(ev) = rec_rx.recv(), if !stopping => {
                    let now = Now::system();
                    let event = match ev {
                        RecEvent::Data { camera, file } => cameras::Event::SegmentData { camera, file },
                        RecEvent::Closed { camera, file } => cameras::Event::SegmentClosed { camera, file },
                        RecEvent::Overflow => continue,
                    };
                    let acts = self.cameras.handle(now, event);
                    self.camera_actions(acts).await;
                }
                Some(()) = edit_rx.recv(), if !stopping => {
                    // Let an editor finish (several events per save).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while edit_rx.try_recv().is_ok() {}
                    if let Some(path) = &options.config_path {
                        self.reload(path).await;
                    }
                }
                Some(cmd) = commands.recv() => self.command(cmd).await,
            }
        }
        let _ = std::fs::remove_file(child::pid_file(&self.config.state.dir));
        self.publish(Now::system());
        tracing::info!("stopped");
        Ok(())
    }

    /// Work on timers: the one-call poll, convergence, disk, deferred writes.
    async fn periodic(&mut self, now: Now) {
        if self.process.is_running() && !self.poll_in_flight && now.mono >= self.next_poll {
            self.poll_in_flight = true;
            self.next_poll = now.mono + self.config.monitor.api_poll_interval.get();
            let client = self.client.clone();
            let tx = self.reports_tx.clone();
            tokio::spawn(async move {
                let r = client.paths().await.map_err(|e| e.to_string());
                let _ = tx.send(Report::Paths(r)).await;
            });
        }
        if self.process.is_running() && now.mono >= self.next_converge {
            self.next_converge = now.mono + self.config.monitor.interval.get();
            self.converge();
            self.check_hls();
        }
        if now.mono >= self.next_disk {
            self.next_disk = now.mono + self.config.monitor.interval.get();
            self.check_disk(now).await;
        }
        if let Some(text) = self.pending_write.take() {
            self.write_mediamtx_config(text, now.mono);
        }
    }

    /// Checks MediaMTX's running paths against the file and fixes drift
    /// (a path removed through the API and never re-created, a crash in the
    /// middle of a recovery, an extra path).
    fn converge(&self) {
        let client = self.client.clone();
        let tx = self.reports_tx.clone();
        let busy = self.recovering_paths();
        let desired: Vec<(String, serde_json::Value)> = self
            .config
            .cameras
            .iter()
            .map(|c| (c.path_name(), render::path_json(&self.config, c)))
            .collect();
        tokio::spawn(async move {
            let Ok(running) = client.configured_paths().await else {
                return;
            };
            let mut fixed = Vec::new();
            for (name, conf) in &desired {
                if busy.contains(name) {
                    continue;
                }
                let present = running.iter().find(|(n, _)| n == name);
                let differs = present.is_none_or(|(_, running)| !subset(conf, running));
                if differs && client.replace_path(name, conf).await.is_ok() {
                    fixed.push(name.clone());
                }
            }
            for (name, _) in &running {
                if name.starts_with("cam_")
                    && !desired.iter().any(|(n, _)| n == name)
                    && client.delete_path(name).await.is_ok()
                {
                    fixed.push(format!("-{name}"));
                }
            }
            let _ = tx.send(Report::Converged { fixed }).await;
        });
    }

    fn check_hls(&self) {
        let addr = local_address(&self.config.mediamtx.hls_address);
        let timeout = self.config.monitor.probe_timeout.get();
        let tx = self.reports_tx.clone();
        tokio::spawn(async move {
            let listening = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await,
                Ok(Ok(_))
            );
            let _ = tx.send(Report::Hls { listening }).await;
        });
    }

    fn recovering_paths(&self) -> Vec<String> {
        self.cameras
            .views(Now::system())
            .into_iter()
            .filter(|v| v.recovery_step.is_some())
            .map(|v| v.path)
            .collect()
    }

    async fn check_disk(&mut self, now: Now) {
        let path = self.config.recording.path.clone();
        let Ok(st) = nix::sys::statvfs::statvfs(&path) else {
            return;
        };
        // u64::from: these are 32-bit on some ARM boxes.
        #[allow(clippy::useless_conversion)]
        let (frsize, blocks, bfree, bavail) = (
            u64::from(st.fragment_size()),
            u64::from(st.blocks()),
            u64::from(st.blocks_free()),
            u64::from(st.blocks_available()),
        );
        let total = blocks * frsize;
        let free = bfree * frsize;
        let avail = bavail * frsize;
        let used = total.saturating_sub(free);
        // As df computes it: used / (used + available to users).
        let percent = if used + avail == 0 {
            0.0
        } else {
            used as f64 * 100.0 / (used + avail) as f64
        };
        let mount_point = mount_point_of(&path);
        let key = format!("disk:{mount_point}");
        let s = &self.config.storage;
        let (severity, issue) = if percent >= f64::from(s.disk_critical_percent) {
            (Some(Severity::Critical), Issue::DiskCritical)
        } else if percent >= f64::from(s.disk_warning_percent) {
            (Some(Severity::Warning), Issue::DiskWarning)
        } else {
            (None, Issue::DiskWarning)
        };
        let details = format!("recordings disk {mount_point} at {percent:.1}%");
        let event = AlertEvent {
            at: now.wall,
            severity: severity.unwrap_or(Severity::Warning),
            phase: if severity.is_some() {
                Phase::Firing
            } else {
                Phase::Resolved
            },
            key,
            issue,
            camera: None,
            recovery_attempts: 0,
            last_recording: None,
            details,
        };
        let was_bad = self
            .disk
            .as_ref()
            .is_some_and(|d| d.percent >= f64::from(s.disk_warning_percent));
        if severity.is_some() || was_bad {
            self.alert(event).await;
        }
        self.disk = Some(DiskView {
            mount_point,
            percent,
            used_bytes: used,
            total_bytes: total,
        });
    }

    async fn alert(&self, event: AlertEvent) {
        let _ = self.alert_events.send(event.clone());
        self.sink.send(event).await;
    }

    /// Executes the process machine's actions. Returns true when stopped.
    async fn process_actions(&mut self, actions: Vec<process::Action>) -> bool {
        let mut queue: VecDeque<process::Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                process::Action::Spawn => {
                    let event = self.spawn_child();
                    queue.extend(self.process.handle(Instant::now(), event));
                }
                process::Action::Terminate => {
                    if let Some(pid) = self.process.pid() {
                        tracing::info!(pid, "sending SIGTERM to MediaMTX");
                        child::terminate(pid);
                    }
                }
                process::Action::Kill => {
                    if let Some(pid) = self.process.pid() {
                        tracing::warn!(pid, "MediaMTX did not stop in time; SIGKILL");
                        child::kill_group(pid);
                    }
                }
                process::Action::Probe => {
                    let client = self.client.clone();
                    let tx = self.reports_tx.clone();
                    tokio::spawn(async move {
                        let ok = client.info().await.is_ok();
                        let _ = tx.send(Report::Probe { ok }).await;
                    });
                }
                process::Action::BecameReady => {
                    tracing::info!(pid = self.process.pid(), "MediaMTX is ready");
                    let now = Now::system();
                    let acts = self.cameras.handle(now, cameras::Event::MediamtxReady);
                    self.camera_actions(acts).await;
                    self.next_poll = now.mono;
                    self.next_converge = now.mono;
                    if !self.ready_sent {
                        self.ready_sent = true;
                        notify::ready(&self.summary());
                    }
                }
                process::Action::WentDown {
                    reason,
                    unexpected,
                    detail,
                } => {
                    if unexpected {
                        tracing::error!(reason = reason.as_str(), detail = %detail, "MediaMTX went down");
                    } else if reason == Reason::Shutdown {
                        tracing::info!("stopping MediaMTX");
                    } else {
                        tracing::info!(reason = reason.as_str(), "MediaMTX is being restarted");
                    }
                    if reason != Reason::Shutdown {
                        crate::metrics::mediamtx_restart(reason.as_str());
                    }
                    let acts = self
                        .cameras
                        .handle(Now::system(), cameras::Event::MediamtxDown);
                    self.camera_actions(acts).await;
                }
                process::Action::Incident(incident) => self.incident(incident).await,
                process::Action::Stopped => return true,
            }
        }
        false
    }

    fn spawn_child(&mut self) -> process::Event {
        let config_path = self.config.mediamtx_config_path();
        match child::spawn(
            &self.binary,
            &config_path,
            &self.config.state.dir,
            &self.config.general.timezone,
        ) {
            Ok(mut proc) => {
                let pid = proc.id().unwrap_or(0);
                let _ = std::fs::write(child::pid_file(&self.config.state.dir), format!("{pid}\n"));
                tracing::info!(pid, binary = %self.binary.display(), "MediaMTX started");
                if let Some(out) = proc.stdout.take() {
                    self.read_logs(out);
                }
                if let Some(err) = proc.stderr.take() {
                    self.read_logs(err);
                }
                let tx = self.reports_tx.clone();
                tokio::spawn(async move {
                    let status = match proc.wait().await {
                        Ok(st) => child::describe_exit(st),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    let _ = tx.send(Report::ChildExited { pid, status }).await;
                });
                process::Event::Spawned { pid }
            }
            Err(e) => {
                tracing::error!(binary = %self.binary.display(), error = %e, "cannot start MediaMTX");
                process::Event::SpawnFailed {
                    error: e.to_string(),
                }
            }
        }
    }

    /// Forwards MediaMTX's lines to our log (rate-limited) and its stream
    /// announcements to the loop.
    fn read_logs<R: tokio::io::AsyncRead + Unpin + Send + 'static>(&self, stream: R) {
        let tx = self.reports_tx.clone();
        let limiter = self.log_limiter.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(raw)) = lines.next_line().await {
                let line = logs::parse(&raw);
                if let Some(signal) = logs::path_signal(&line) {
                    let _ = tx.send(Report::Log(signal)).await;
                }
                let verdict = limiter
                    .lock()
                    .map(|mut l| l.check(Instant::now(), &line.message))
                    .unwrap_or(logs::Verdict::Emit);
                if let logs::Verdict::EmitWithSummary { suppressed } = verdict {
                    tracing::warn!(target: "mediamtx", suppressed, "repeated MediaMTX log lines were suppressed");
                }
                if verdict == logs::Verdict::Drop {
                    continue;
                }
                let path = line.path.as_deref().unwrap_or("");
                match line.level {
                    logs::Level::Error => {
                        tracing::error!(target: "mediamtx", path, "{}", line.message)
                    }
                    logs::Level::Warn => {
                        tracing::warn!(target: "mediamtx", path, "{}", line.message)
                    }
                    logs::Level::Info => {
                        tracing::info!(target: "mediamtx", path, "{}", line.message)
                    }
                    logs::Level::Debug => {
                        tracing::debug!(target: "mediamtx", path, "{}", line.message)
                    }
                }
            }
        });
    }

    async fn incident(&self, incident: process::Incident) {
        use process::Incident as I;
        let (severity, phase, issue, details) = match incident {
            I::DownFiring { reason, detail } => (
                Severity::Warning,
                Phase::Firing,
                Issue::MediamtxDown,
                format!("MediaMTX {}: {detail}", reason.as_str()),
            ),
            I::DownResolved => (
                Severity::Warning,
                Phase::Resolved,
                Issue::MediamtxDown,
                "MediaMTX is back".into(),
            ),
            I::StormFiring { restarts, window } => (
                Severity::Critical,
                Phase::Firing,
                Issue::MediamtxRestartStorm,
                format!(
                    "MediaMTX cannot be kept running: {restarts} restarts within {}s",
                    window.as_secs()
                ),
            ),
            I::StormResolved => (
                Severity::Critical,
                Phase::Resolved,
                Issue::MediamtxRestartStorm,
                "MediaMTX has been running steadily again".into(),
            ),
            I::MemoryRestart { rss, limit } => (
                Severity::Warning,
                Phase::Notice,
                Issue::MediamtxMemory,
                format!(
                    "MediaMTX used {} MiB (limit {} MiB); restarted gracefully",
                    rss >> 20,
                    limit >> 20
                ),
            ),
        };
        let event = AlertEvent {
            at: Utc::now(),
            severity,
            phase,
            key: format!("mediamtx:{}", issue.as_str()),
            issue,
            camera: None,
            recovery_attempts: 0,
            last_recording: None,
            details,
        };
        self.alert(event).await;
    }

    async fn camera_actions(&mut self, actions: Vec<cameras::Action>) {
        for action in actions {
            match action {
                cameras::Action::RemovePath { camera } => {
                    let name = crate::config::path_name(camera);
                    tracing::info!(camera_id = camera, path = %name, "recovery: removing path");
                    let client = self.client.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client.delete_path(&name).await {
                            tracing::warn!(path = %name, error = %e, "recovery: remove failed");
                        }
                    });
                }
                cameras::Action::CreatePath { camera } => {
                    let Some(cam) = self.config.camera(camera) else {
                        continue;
                    };
                    let name = cam.path_name();
                    let conf = render::path_json(&self.config, cam);
                    tracing::info!(camera_id = camera, path = %name, "recovery: re-creating path");
                    let client = self.client.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client.replace_path(&name, &conf).await {
                            tracing::warn!(path = %name, error = %e, "recovery: re-create failed; the convergence check will retry");
                        }
                    });
                }
                cameras::Action::Alert(event) => self.alert(event).await,
                cameras::Action::RestartMediamtx { detail } => {
                    tracing::error!(detail = %detail, "systemic failure: restarting MediaMTX");
                    self.alert(AlertEvent {
                        at: Utc::now(),
                        severity: Severity::Warning,
                        phase: Phase::Notice,
                        key: "mediamtx:systemic".into(),
                        issue: Issue::MediamtxDown,
                        camera: None,
                        recovery_attempts: 0,
                        last_recording: None,
                        details: detail,
                    })
                    .await;
                    let acts = self.process.handle(
                        Instant::now(),
                        process::Event::Restart {
                            reason: Reason::Systemic,
                        },
                    );
                    Box::pin(self.process_actions(acts)).await;
                }
                cameras::Action::RecoveryFinished {
                    camera,
                    level,
                    success,
                    duration,
                } => {
                    let problem = if level == 2 { "recording" } else { "stream" };
                    tracing::info!(
                        camera_id = camera,
                        level,
                        success,
                        seconds = duration.as_secs_f64(),
                        "recovery attempt finished"
                    );
                    crate::metrics::recovery_finished(
                        camera,
                        level,
                        success,
                        problem,
                        duration.as_secs_f64(),
                    );
                }
            }
        }
    }

    /// Handles a report; true when the daemon has stopped.
    async fn report(&mut self, report: Report) -> bool {
        let now = Now::system();
        match report {
            Report::Probe { ok } => {
                let acts = self.process.handle(now.mono, process::Event::Probe { ok });
                if self.process_actions(acts).await {
                    return true;
                }
                if let Some(pid) = self.process.pid() {
                    if let Some(bytes) = child::rss_bytes(pid) {
                        let acts = self.process.handle(now.mono, process::Event::Rss { bytes });
                        return self.process_actions(acts).await;
                    }
                }
            }
            Report::Paths(result) => {
                self.poll_in_flight = false;
                match result {
                    Ok(list) if self.process.is_running() => {
                        let acts = self.cameras.handle(now, cameras::Event::Paths(list));
                        self.camera_actions(acts).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "paths poll failed"),
                }
            }
            Report::ChildExited { pid, status } => {
                if self.process.pid() != Some(pid) {
                    return false;
                }
                let _ = std::fs::remove_file(child::pid_file(&self.config.state.dir));
                tracing::info!(pid, status = %status, "MediaMTX exited");
                let acts = self
                    .process
                    .handle(now.mono, process::Event::Exited { status });
                return self.process_actions(acts).await;
            }
            Report::Log(signal) => {
                let (path, available) = match signal {
                    logs::PathSignal::Available(p) => (p, true),
                    logs::PathSignal::Unavailable(p) => (p, false),
                };
                if let Some(camera) = path.strip_prefix("cam_").and_then(|s| s.parse().ok()) {
                    if self.process.is_running() {
                        let acts = self
                            .cameras
                            .handle(now, cameras::Event::PathAvailability { camera, available });
                        self.camera_actions(acts).await;
                    }
                }
            }
            Report::Hls { listening } => {
                if !listening && self.process.is_running() {
                    tracing::warn!(address = %self.config.mediamtx.hls_address, "MediaMTX's HLS server does not accept connections");
                }
                self.hls_listening = Some(listening);
            }
            Report::Converged { fixed } => {
                if !fixed.is_empty() {
                    tracing::warn!(paths = ?fixed, "MediaMTX's running paths differed from the config; converged");
                }
            }
        }
        false
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::ResetCamera { camera, reply } => {
                let known = self.config.camera(camera).is_some();
                if known {
                    tracing::info!(camera_id = camera, "manual reset");
                    let acts = self
                        .cameras
                        .handle(Now::system(), cameras::Event::Reset { camera });
                    self.camera_actions(acts).await;
                }
                let _ = reply.send(known);
            }
        }
    }

    /// Applies an edit of vms.toml, or keeps the old config if it is invalid.
    async fn reload(&mut self, path: &Path) {
        let new = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{}: {e}", path.display());
                tracing::error!(key = %e.key, error = %e.message, "invalid configuration; still running the previous one");
                if self.config_error.as_deref() != Some(msg.as_str()) {
                    self.config_error = Some(msg.clone());
                    self.alert(AlertEvent {
                        at: Utc::now(),
                        severity: Severity::Warning,
                        phase: Phase::Firing,
                        key: "config:invalid".into(),
                        issue: Issue::ConfigInvalid,
                        camera: None,
                        recovery_attempts: 0,
                        last_recording: None,
                        details: msg,
                    })
                    .await;
                }
                return;
            }
        };
        if self.config_error.take().is_some() {
            self.alert(AlertEvent {
                at: Utc::now(),
                severity: Severity::Warning,
                phase: Phase::Resolved,
                key: "config:invalid".into(),
                issue: Issue::ConfigInvalid,
                camera: None,
                recovery_attempts: 0,
                last_recording: None,
                details: "configuration is valid again".into(),
            })
            .await;
        }
        let diff = reload::diff(&self.config, &new);
        tracing::info!(
            added = ?diff.added, removed = ?diff.removed, changed = ?diff.changed,
            mediamtx_restart = ?diff.mediamtx_restart, "configuration reloaded"
        );
        if !diff.daemon_restart.is_empty() {
            tracing::warn!(keys = ?diff.daemon_restart, "these settings take effect when vms-supervisor restarts");
        }
        let new = Arc::new(new);
        self.alerts.reload(&new);
        // Timings and thresholds apply from now on, without a restart.
        self.cameras
            .set_settings(new.monitor.clone(), new.recording.part_duration.get());
        self.process.set_settings(new.mediamtx.clone());
        self.client = Client::new(new.mediamtx.api_address, new.monitor.probe_timeout.get());
        let now = Now::system();
        if diff.added.len() + diff.removed.len() + diff.changed.len() > 0 {
            let acts = self
                .cameras
                .handle(now, cameras::Event::Cameras(new.cameras.clone()));
            self.camera_actions(acts).await;
        }
        self.config = new;
        if diff.mediamtx_file {
            let text = render::render(&self.config);
            self.write_mediamtx_config(text, now.mono);
        }
        if !diff.mediamtx_restart.is_empty() {
            if let Some(binary) = mediamtx::resolve_binary(&self.config.mediamtx.binary) {
                self.binary = binary;
            }
            let acts = self.process.handle(
                now.mono,
                process::Event::Restart {
                    reason: Reason::Reconfigure,
                },
            );
            self.process_actions(acts).await;
        }
    }

    /// Writes mediamtx.yml atomically, never within 1 s of the previous
    /// write (MediaMTX would drop the second reload); a write that comes too
    /// early waits for the next tick. After MediaMTX has reloaded, the
    /// convergence check verifies the running paths.
    fn write_mediamtx_config(&mut self, text: String, now: Instant) {
        if text == self.written {
            return;
        }
        if self
            .last_write
            .is_some_and(|t| now.duration_since(t) < WRITE_SPACING)
        {
            self.pending_write = Some(text);
            return;
        }
        let path = self.config.mediamtx_config_path();
        match render::write_atomic(&path, text.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "MediaMTX configuration written");
                self.written = text;
                self.last_write = Some(now);
                // Verify once MediaMTX has had time to reload.
                self.next_converge = now + WRITE_SPACING;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot write MediaMTX configuration");
                self.pending_write = Some(text);
            }
        }
    }

    fn summary(&self) -> String {
        let views = self.cameras.views(Now::system());
        let count = |h| views.iter().filter(|v| v.state == h).count();
        let recording = views.iter().filter(|v| v.recording).count();
        format!(
            "{} cameras: {} online, {} recovering, {} offline; {} recording; MediaMTX {}",
            views.len(),
            count(cameras::Health::Online),
            count(cameras::Health::Recovering),
            count(cameras::Health::Offline),
            recording,
            if self.process.is_running() {
                "up"
            } else {
                "down"
            }
        )
    }

    fn publish(&mut self, now: Now) {
        let st = self.process.status();
        let snap = Snapshot {
            box_name: self.config.general.box_name.clone(),
            version: crate::VERSION,
            started_at: self.started_at,
            updated_at: now.wall,
            mediamtx: MediamtxView {
                up: st.up,
                pid: st.pid,
                restarts: st.restarts,
                last_exit: st.last_exit,
                restart_storm: st.storm,
                hls_listening: self.hls_listening.filter(|_| st.up),
            },
            cameras: self.cameras.views(now),
            disk: self.disk.clone(),
            config_error: self.config_error.clone(),
            alert_store_error: self.alerts.store_error().map(str::to_string),
        };
        crate::metrics::update(&snap);
        let summary = self.summary();
        if summary != self.last_status {
            notify::status(&summary);
            self.last_status = summary;
        }
        self.snap_tx.send_replace(Arc::new(snap));
    }
}

/// True when every key of `want` has the same value in `have` (MediaMTX's
/// answer carries every key, with its own formatting for some; only the keys
/// we set matter).
fn subset(want: &serde_json::Value, have: &serde_json::Value) -> bool {
    let (Some(want), Some(have)) = (want.as_object(), have.as_object()) else {
        return false;
    };
    want.iter().all(|(k, v)| match (v, have.get(k)) {
        (_, None) => false,
        (serde_json::Value::String(a), Some(serde_json::Value::String(b))) => {
            a == b || same_duration(a, b)
        }
        (a, Some(b)) => a == b,
    })
}

/// `"60s"` and `"1m0s"` are the same duration to MediaMTX.
fn same_duration(a: &str, b: &str) -> bool {
    let secs = |s: &str| -> Option<f64> {
        let mut total = 0.0;
        let mut num = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let n: f64 = num.parse().ok()?;
            num.clear();
            total += match c {
                'h' => n * 3600.0,
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    n / 1000.0
                }
                'm' => n * 60.0,
                's' => n,
                'd' => n * 86400.0,
                _ => return None,
            };
        }
        num.is_empty().then_some(total)
    };
    matches!((secs(a), secs(b)), (Some(x), Some(y)) if (x - y).abs() < 1e-9)
}

/// Where to reach a MediaMTX listener from this box: `:8888` and
/// `0.0.0.0:8888` mean every interface, so loopback.
fn local_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("" | "0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_string(),
    }
}

/// The mount point holding `path` (longest matching entry of /proc/mounts).
fn mount_point_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.len())
        .unwrap_or("/")
        .to_string()
}

/// The API token: read it, or create a random one (0600) if the file does
/// not exist (the package creates it at install; the demo and tests do not).
fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            render::write_atomic(path, format!("{token}\n").as_bytes())
                .with_context(|| format!("creating {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new API token");
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Watches the directory of the config file (editors replace files) and
/// sends `()` on every change of the file itself.
fn watch_config_file(
    path: &Path,
    tx: mpsc::Sender<()>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use futures_util::StreamExt;
    use inotify::{Inotify, WatchMask};
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let inotify = Inotify::init()?;
    inotify.watches().add(
        &dir,
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::MODIFY,
    )?;
    let mut stream = inotify.into_event_stream(vec![0u8; 4096])?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            if ev.name.as_deref() == Some(name.as_os_str()) && tx.send(()).await.is_err() {
                break;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_addresses_become_local_ones() {
        assert_eq!(local_address(":8888"), "127.0.0.1:8888");
        assert_eq!(local_address("0.0.0.0:8888"), "127.0.0.1:8888");
        assert_eq!(local_address("[::]:8888"), "[::1]:8888");
        assert_eq!(local_address("10.1.2.3:8888"), "10.1.2.3:8888");
    }

    #[test]
    fn durations_compare_as_mediamtx_reads_them() {
        assert!(same_duration("60s", "1m0s"));
        assert!(same_duration("2160h", "2160h0m0s"));
        assert!(same_duration("1s", "1000ms"));
        assert!(!same_duration("60s", "2m0s"));
    }

    #[test]
    fn subset_ignores_extra_keys_and_formatting() {
        let want = serde_json::json!({"source": "rtsp://a", "record": true, "recordSegmentDuration": "60s"});
        let have = serde_json::json!({"name": "cam_1", "source": "rtsp://a", "record": true, "recordSegmentDuration": "1m0s", "maxReaders": 0});
        assert!(subset(&want, &have));
        let other = serde_json::json!({"source": "rtsp://b", "record": true, "recordSegmentDuration": "60s"});
        assert!(!subset(&other, &have));
    }
}
