//! The daemon's loop: one task owns all state, feeds the state machines of
//! [`crate::supervisor`] with events (ticks, child exits, API answers,
//! inotify events, MediaMTX log lines, config edits, commands) and executes
//! their actions. It decides nothing itself.
//!
//! Slow work (HTTP calls to MediaMTX, `statvfs`) runs in spawned tasks that
//! report back on a channel, so the loop never waits on the network. The
//! clock is read once per event and handed to the machines. What the loop
//! knows is published as a [`Snapshot`] on a `watch` channel, every second
//! and at once when a camera or MediaMTX changes state (the page shows a
//! failure with its alert, not up to a second later); the HTTP edge and the
//! metrics read it and never lock anything the loop holds.
//!
//! * [`process`]: executes the MediaMTX process machine's actions (spawn,
//!   signals, probes, log lines).
//! * [`cameras`]: executes the camera machine's actions (path removal and
//!   re-creation through MediaMTX's API, alerts, metrics).
//! * [`periodic`]: the timed observations (the one-call path poll, path
//!   convergence, the HLS listener, the disk).
//! * [`reload`]: edits of `vms.toml` and writes of `mediamtx.yml`.
//! * [`storage`]: runs the storage machine (catalog, retention, eviction)
//!   against the catalog's owner thread.

mod cameras;
mod periodic;
mod process;
mod reload;
mod storage;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertsHandle;
use crate::clock::Now;
use crate::config::Config;
use crate::events::{AlertEvent, AlertSink};
use crate::mediamtx::{api::Client, child, logs, render};
use crate::notify;
use crate::recordings::{self, RecEvent};
use crate::status::{DiskView, MediamtxView, Snapshot};
use crate::supervisor::cameras::{self as camera_machine, CameraMachine, PathObs};
use crate::supervisor::disk::DiskWatch;
use crate::supervisor::files::{ConfigErrors, WriteSpacer, WRITE_SPACING};
use crate::supervisor::process::{self as process_machine, ProcessMachine};

/// How often the loop ticks: the resolution of every timer.
const TICK: Duration = Duration::from_millis(250);

/// Requests from the API and the CLI.
#[derive(Debug)]
pub enum Command {
    /// Bring an offline camera back under supervision; `false` if unknown.
    ResetCamera {
        camera: u32,
        reply: oneshot::Sender<bool>,
    },
}

/// What the HTTP edge holds of the daemon: the published snapshot and the
/// way to send it commands.
#[derive(Clone)]
pub struct Handle {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub commands: mpsc::Sender<Command>,
}

/// The loop's ends of the [`Handle`] channels.
pub struct Ends {
    snapshot: watch::Sender<Arc<Snapshot>>,
    commands: mpsc::Receiver<Command>,
}

/// The channels between the loop and the HTTP edge, with a first snapshot
/// (no cameras known yet).
pub fn channels(config: &Config, alert_store_error: Option<String>) -> (Handle, Ends) {
    let now = Utc::now();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot {
        box_name: config.general.box_name.clone(),
        site: config.general.site.clone(),
        version: crate::VERSION,
        started_at: now,
        updated_at: now,
        mediamtx: MediamtxView::default(),
        cameras: Vec::new(),
        disk: None,
        config_error: None,
        alert_store_error,
        alert_channel_errors: Vec::new(),
        storage: None,
    }));
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    (
        Handle {
            snapshot: snap_rx,
            commands: cmd_tx,
        },
        Ends {
            snapshot: snap_tx,
            commands: cmd_rx,
        },
    )
}

/// Where the loop gets its inputs besides the config.
pub struct RunOptions {
    /// The config file to watch for edits (`None` for the embedded demo).
    pub config_path: Option<PathBuf>,
    /// Requests to reload the config file now (SIGHUP).
    pub reload: mpsc::Receiver<()>,
}

/// Results of work done outside the loop.
enum Report {
    Probe { ok: bool },
    Paths(Result<Vec<PathObs>, String>),
    ChildExited { pid: u32, status: String },
    Hls { listening: bool },
    Log(logs::PathSignal),
    Converged { fixed: Vec<String> },
    Disk(Option<crate::supervisor::disk::DiskReading>),
}

/// The running daemon's state. Fields are the machines, the executors'
/// handles and the timers of the periodic work.
pub struct Daemon {
    config: Arc<Config>,
    binary: PathBuf,
    client: Client,
    process: ProcessMachine,
    cameras: CameraMachine,
    disk_watch: DiskWatch,
    config_errors: ConfigErrors,
    writes: WriteSpacer,
    sink: AlertSink,
    alerts: AlertsHandle,
    alert_events: broadcast::Sender<AlertEvent>,
    ends: Ends,
    reports_tx: mpsc::Sender<Report>,
    reports_rx: mpsc::Receiver<Report>,
    started_at: DateTime<Utc>,
    timers: periodic::Timers,
    disk: Option<DiskView>,
    hls_listening: Option<bool>,
    ready_sent: bool,
    last_status: String,
    /// A camera or MediaMTX changed state since the last publish (their
    /// machine acted): the snapshot is published at once, not at the next
    /// 1 s beat, so that the dashboard shows a failure as soon as it is
    /// known.
    state_changed: bool,
    log_limiter: Arc<Mutex<logs::RateLimiter>>,
    /// `None` when the catalog cannot be opened (logged; supervision goes on).
    storage: Option<storage::Storage>,
    storage_rx: Option<mpsc::UnboundedReceiver<crate::storage::machine::Event>>,
    /// The audit trail (config reloads are on record).
    access: crate::access::AccessHandle,
    /// The off-site backup worker.
    backup: crate::storage::backup::Runner,
    // MediaMTX adoption (issue 17): the MediaMTX found running at start
    // and the task reading its log FIFO.
    adopted: Option<u32>,
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

/// The databases the loop writes beside the alerts: the segment catalog
/// (`None` when it cannot be opened) and the access database's audit trail.
pub struct Records {
    pub storage: Option<crate::storage::db::StorageDb>,
    pub access: crate::access::AccessHandle,
}

impl Daemon {
    /// Finds the MediaMTX a previous daemon left running (adopted when the
    /// loop starts, or stopped when it cannot be) and writes the generated
    /// `mediamtx.yml` (a running MediaMTX reloads it; any drift left is
    /// converged through its API).
    pub async fn new(
        config: Arc<Config>,
        binary: PathBuf,
        sink: AlertSink,
        alerts: AlertsHandle,
        alert_events: broadcast::Sender<AlertEvent>,
        ends: Ends,
        records: Records,
    ) -> anyhow::Result<Daemon> {
        let Records {
            storage: storage_db,
            access,
        } = records;
        let now = Now::system();
        let config_path = config.mediamtx_config_path();
        let adopted = process::first_decision(&config, &binary).await;
        let rendered = render::render(&config);
        crate::durable::write_atomic(&config_path, rendered.as_bytes())
            .with_context(|| format!("writing {}", config_path.display()))?;
        let (reports_tx, reports_rx) = mpsc::channel(1024);
        let (storage, storage_rx) = match storage_db {
            Some(db) => {
                let (st, rx) = storage::Storage::new(&config, db);
                (Some(st), Some(rx))
            }
            None => (None, None),
        };
        let mut backup = crate::storage::backup::Runner::new(
            config.state.dir.join(crate::storage::CATALOG_FILE),
            storage.is_some(),
            sink.clone(),
        );
        backup.apply(&config);
        Ok(Daemon {
            storage,
            storage_rx,
            access,
            backup,
            client: Client::new(
                config.mediamtx.api_address,
                config.monitor.probe_timeout.get(),
            ),
            process: ProcessMachine::new(
                config.mediamtx.clone(),
                config.monitor.api_poll_interval.get(),
            ),
            cameras: CameraMachine::new(
                config.monitor.clone(),
                config.recording.part_duration.get(),
                &config.cameras,
                now,
            ),
            disk_watch: DiskWatch::new(),
            config_errors: ConfigErrors::default(),
            writes: WriteSpacer::new(WRITE_SPACING, rendered, now.mono),
            log_limiter: Arc::new(Mutex::new(logs::RateLimiter::new(
                config.mediamtx.log_lines_per_second,
            ))),
            config,
            binary,
            sink,
            alerts,
            alert_events,
            ends,
            reports_tx,
            reports_rx,
            started_at: now.wall,
            timers: periodic::Timers::new(now.mono),
            disk: None,
            hls_listening: None,
            ready_sent: false,
            last_status: String::new(),
            state_changed: false,
            adopted,
            log_reader: None,
        })
    }

    /// Runs until `shutdown` fires, then stops MediaMTX gracefully.
    pub async fn run(
        mut self,
        mut options: RunOptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (rec_tx, mut rec_rx) = mpsc::channel(4096);
        let _watcher = recordings::spawn(&self.config.recording.path, rec_tx)
            .with_context(|| format!("watching {}", self.config.recording.path.display()))?;
        let (edit_tx, mut edit_rx) = mpsc::channel(16);
        let _config_watch = match &options.config_path {
            Some(path) => Some(reload::watch_config_file(path, edit_tx)?),
            None => None,
        };
        let watchdog = notify::watchdog_interval();
        let mut next_watchdog = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let mut next_publish = Instant::now();

        let now = Now::system();
        let adopted = self.adopted.take();
        self.start_mediamtx(now, adopted).await;
        use crate::storage::machine::Event as StorageEvent;
        self.storage_event(now, StorageEvent::Settings(storage::settings(&self.config)))
            .await;
        self.storage_event(now, StorageEvent::Cameras(storage::cameras(&self.config)))
            .await;
        self.storage_event(now, StorageEvent::Started).await;
        let mut storage_rx = self.storage_rx.take();

        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    notify::stopping();
                    let now = Now::system();
                    let event = if process::leave_running_on_sigterm(&self.config.state.dir) {
                        tracing::info!(pid = self.process.pid(), "restarting: MediaMTX keeps recording for the next daemon to adopt");
                        process_machine::Event::Detach
                    } else {
                        tracing::info!("stopping: MediaMTX is asked to finalize its segments");
                        process_machine::Event::Shutdown
                    };
                    let acts = self.process.handle(now.mono, event);
                    if self.process_actions(now, acts).await {
                        break;
                    }
                }
                _ = ticker.tick() => {
                    let now = Now::system();
                    let acts = self.process.handle(now.mono, process_machine::Event::Tick);
                    if self.process_actions(now, acts).await {
                        break;
                    }
                    if !stopping {
                        self.periodic(now).await;
                        let acts = self.cameras.handle(now, camera_machine::Event::Tick);
                        self.camera_actions(now, acts).await;
                    }
                    if now.mono >= next_publish {
                        next_publish = now.mono + Duration::from_secs(1);
                        if !stopping {
                            self.storage_event(now, StorageEvent::Tick).await;
                        }
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
                    if self.report(Now::system(), report).await {
                        break;
                    }
                }
                Some(ev) = rec_rx.recv(), if !stopping => {
                    let now = Now::system();
                    let (storage_event, event) = match ev {
                        RecEvent::Data { camera, file } => (
                            StorageEvent::SegmentData { camera, bytes: crate::storage::exec::file_size(&file), file: file.clone() },
                            camera_machine::Event::SegmentData { camera, file },
                        ),
                        RecEvent::Closed { camera, file } => (
                            StorageEvent::SegmentClosed { camera, bytes: crate::storage::exec::file_size(&file), file: file.clone() },
                            camera_machine::Event::SegmentClosed { camera, file },
                        ),
                        RecEvent::Missed => {
                            self.storage_event(now, StorageEvent::Rescan).await;
                            let acts = self.cameras.handle(now, camera_machine::Event::WatchMissed);
                            self.camera_actions(now, acts).await;
                            continue;
                        }
                    };
                    self.storage_event(now, storage_event).await;
                    let acts = self.cameras.handle(now, event);
                    self.camera_actions(now, acts).await;
                }
                Some(()) = edit_rx.recv(), if !stopping => {
                    // Let an editor finish (several events per save).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while edit_rx.try_recv().is_ok() {}
                    if let Some(path) = &options.config_path {
                        self.reload(Now::system(), path).await;
                    }
                }
                Some(()) = options.reload.recv(), if !stopping => match &options.config_path {
                    Some(path) => {
                        tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
                        self.reload(Now::system(), path).await;
                    }
                    None => tracing::info!("SIGHUP: the embedded demo configuration has no file to reload"),
                },
                Some(cmd) = self.ends.commands.recv() => self.command(Now::system(), cmd).await,
                Some(ev) = async { match storage_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    self.storage_event(Now::system(), ev).await;
                }
            }
            if self.state_changed {
                self.publish(Now::system());
            }
        }
        if self.process.pid().is_none() {
            let _ = std::fs::remove_file(child::pid_file(&self.config.state.dir));
        }
        self.backup.stop().await;
        self.publish(Now::system());
        tracing::info!("stopped");
        Ok(())
    }

    /// Stores and pushes an alert, and shows it on the live event stream;
    /// what it says about a gap in the recordings goes to the storage
    /// machine's cause intervals (the gap ledger).
    async fn alert(&mut self, event: AlertEvent) {
        if let Some(change) = crate::storage::Cause::from_alert(&event) {
            // Causes raise no storage alert of their own.
            let now = Now::system();
            let _ = self.storage_feed(now, crate::storage::machine::Event::Cause(change));
        }
        let _ = self.alert_events.send(event.clone());
        self.sink.send(event).await;
    }

    /// Handles a report; true when the daemon has stopped.
    async fn report(&mut self, now: Now, report: Report) -> bool {
        match report {
            Report::Probe { ok } => {
                let acts = self
                    .process
                    .handle(now.mono, process_machine::Event::Probe { ok });
                if self.process_actions(now, acts).await || self.check_binary(now).await {
                    return true;
                }
                if let Some(bytes) = self.process.pid().and_then(child::rss_bytes) {
                    let acts = self
                        .process
                        .handle(now.mono, process_machine::Event::Rss { bytes });
                    return self.process_actions(now, acts).await;
                }
            }
            Report::Paths(result) => {
                self.timers.poll_in_flight = false;
                match result {
                    Ok(list) if self.process.is_running() => {
                        let readers = list.iter().flat_map(|p| p.readers.iter().cloned());
                        self.end_views(now, Some(readers.collect()));
                        let acts = self.cameras.handle(now, camera_machine::Event::Paths(list));
                        self.camera_actions(now, acts).await;
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
                self.end_views(now, None);
                let acts = self
                    .process
                    .handle(now.mono, process_machine::Event::Exited { status });
                return self.process_actions(now, acts).await;
            }
            Report::Log(signal) => {
                let (path, available) = match signal {
                    logs::PathSignal::Available(p) => (p, true),
                    logs::PathSignal::Unavailable(p) => (p, false),
                };
                if let Some(camera) = crate::config::camera_of_path(&path) {
                    if self.process.is_running() {
                        let acts = self.cameras.handle(
                            now,
                            camera_machine::Event::PathAvailability { camera, available },
                        );
                        self.camera_actions(now, acts).await;
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
            Report::Disk(reading) => self.disk_observed(now, reading).await,
        }
        false
    }

    async fn command(&mut self, now: Now, cmd: Command) {
        match cmd {
            Command::ResetCamera { camera, reply } => {
                let known = self.config.camera(camera).is_some();
                if known {
                    tracing::info!(camera_id = camera, "manual reset");
                    let acts = self
                        .cameras
                        .handle(now, camera_machine::Event::Reset { camera });
                    self.camera_actions(now, acts).await;
                }
                let _ = reply.send(known);
            }
        }
    }

    /// The published state; `storage` is the storage machine's view of the
    /// same moment (the metrics use it too: computed once per publish).
    fn snapshot(
        &self,
        now: Now,
        storage: Option<&crate::storage::machine::StorageView>,
    ) -> Snapshot {
        let st = self.process.status();
        Snapshot {
            box_name: self.config.general.box_name.clone(),
            site: self.config.general.site.clone(),
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
            config_error: self.config_errors.current().map(str::to_string),
            alert_store_error: self.alerts.store_error(),
            alert_channel_errors: self
                .alerts
                .channel_errors()
                .into_iter()
                .map(|(c, e)| (c.as_str().to_string(), e))
                .collect(),
            storage: storage.map(storage::status),
        }
    }

    fn publish(&mut self, now: Now) {
        self.state_changed = false;
        let view = self.storage.as_ref().map(|st| st.machine.view(now.wall));
        if let Some(v) = &view {
            crate::storage::metrics::publish(v);
        }
        let snap = self.snapshot(now, view.as_ref());
        crate::metrics::update(&snap);
        let summary = snap.summary();
        if summary != self.last_status {
            notify::status(&summary);
            self.last_status = summary;
        }
        self.ends.snapshot.send_replace(Arc::new(snap));
    }
}
