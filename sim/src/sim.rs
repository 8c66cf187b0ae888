//! The simulated server: the current config, the path objects and their sources, and the
//! reload logic (docs/mediamtx.md, config reload).
//!
//! Each path object with a static source has one task that plays the camera: it connects
//! (0.5 s), then ticks once per second (or per `recordPartDuration` when recording) to
//! account the received bytes, feed the recorder and notice faults; on an error it waits
//! a fixed 5 s and retries, forever.

use crate::config::{self, is_regexp_name, Conf, RECORD_KEYS};
use crate::faults::{CameraMode, FaultStore};
use crate::log::{debug, error, info};
use crate::mp4::Fixture;
use crate::readers::{HlsState, WebRtcSessions};
use crate::recorder::{RecStatus, Recorder};
use chrono::{DateTime, Local};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The retry pause of static sources (fixed, no backoff).
pub const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How often a connected camera's data is accounted (see `run_ready`).
const FRAME_TICK: Duration = Duration::from_millis(100);
/// The simulated connection time.
pub const CONNECT_TIME: Duration = Duration::from_millis(500);

pub struct Sim {
    pub fixture: Arc<Fixture>,
    /// The live view's media (WebRTC and HLS): the live fixture, each camera with its
    /// own name burned in once rendered.
    pub live: Arc<crate::livemedia::LiveMedia>,
    /// `MTXSIM_LIVE_RECORDINGS=1`: cameras "send" the live fixture aligned to the wall
    /// clock (then `fixture` is `live`), so recordings show the same burned-in clock as
    /// the live view.
    pub live_recordings: bool,
    pub started: DateTime<Local>,
    pub faults: FaultStore,
    pub state: Mutex<State>,
    /// Serialises config changes (file reloads and API changes).
    pub reload_lock: tokio::sync::Mutex<()>,
    /// MediaMTX's path manager loop: `read` authentication calls and the API's
    /// `/v3/paths/list|get` take turns on it (docs/mediamtx.md §b2), so a slow auth
    /// server delays them.
    pub path_manager: tokio::sync::Mutex<()>,
    /// Where config changes that touch server keys are sent; the listener code
    /// (`servers`) owns the receiving end and answers when it has acted.
    pub server_changes: tokio::sync::mpsc::UnboundedSender<ServerRequest>,
    /// Cancelled to stop the process; `exit_code` says with which code.
    pub stop: CancellationToken,
    pub exit_code: Mutex<i32>,
    /// Set once the listeners are bound and the initial paths exist (`/state.started`).
    pub started_flag: AtomicBool,
    /// Time from `main` to `started_flag` (`/state.startup_ms`).
    pub startup_time: Mutex<Option<Duration>>,
    /// Notified after every applied config change (the cleaner re-plans).
    pub conf_changed: Notify,
    /// The memory-growth fault's rate (MiB/s), watched by the grower task.
    pub memory_rate: tokio::sync::watch::Sender<u64>,
}

/// What a config change means for the listeners: the old and new config, and whether
/// every server restarts (a path-manager key changed).
pub struct ServerChange {
    pub old: Conf,
    pub new: Conf,
    pub restart_all: bool,
}

/// A change for the listener code, and where to answer (an error is a failed bind).
pub type ServerRequest = (
    ServerChange,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Where a request for a path lands.
pub enum Check {
    NotConfigured,
    NotReady,
    Ready,
}

pub struct State {
    pub conf: Conf,
    pub paths: BTreeMap<String, PathHandle>,
    pub hls: HlsState,
    pub webrtc: WebRtcSessions,
    /// Addresses actually bound, by server name (`api`, `metrics`, ...).
    pub bound: BTreeMap<&'static str, SocketAddr>,
}

pub struct PathHandle {
    pub shared: Arc<PathShared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// What a path publishes to the API, metrics and `/state`.
#[derive(Clone, Debug, Default)]
pub struct PathStatus {
    pub ready_time: Option<DateTime<Local>>,
    pub online_time: Option<DateTime<Local>>,
    pub inbound_bytes: u64,
}

pub struct PathShared {
    pub name: String,
    /// The effective path config.
    pub conf: Mutex<Map<String, Value>>,
    pub status: Mutex<PathStatus>,
    pub rec: Arc<Mutex<RecStatus>>,
    /// Wakes the path task (fault or record-config change).
    pub poke: Notify,
    pub record_changed: AtomicBool,
}

impl PathShared {
    pub fn source(&self) -> String {
        config::path_str(&self.conf.lock().unwrap(), "source").to_string()
    }

    /// `rtspSource` etc. for static sources, None for `publisher`.
    pub fn source_type(&self) -> Option<&'static str> {
        let src = self.source();
        let scheme = src.split("://").next().unwrap_or("");
        if !src.contains("://") {
            return if src == "redirect" {
                Some("redirect")
            } else if src == "rpiCamera" {
                Some("rpiCameraSource")
            } else {
                None
            };
        }
        Some(match scheme {
            "rtsp" | "rtsps" | "rtspx" => "rtspSource",
            "rtmp" | "rtmps" => "rtmpSource",
            "http" | "https" => "hlsSource",
            "srt" => "srtSource",
            "udp" | "udp+mpegts" | "unix+mpegts" => "mpegtsSource",
            "udp+rtp" => "rtpSource",
            "whep" | "wheps" => "webRTCSource",
            _ => "rtspSource",
        })
    }

    pub fn ready(&self) -> bool {
        self.status.lock().unwrap().ready_time.is_some()
    }
}

impl Sim {
    pub fn conf(&self) -> Conf {
        self.state.lock().unwrap().conf.clone()
    }

    pub fn path(&self, name: &str) -> Option<Arc<PathShared>> {
        self.state
            .lock()
            .unwrap()
            .paths
            .get(name)
            .map(|h| h.shared.clone())
    }

    pub fn all_paths(&self) -> Vec<Arc<PathShared>> {
        self.state
            .lock()
            .unwrap()
            .paths
            .values()
            .map(|h| h.shared.clone())
            .collect()
    }

    /// Wakes every path task (after a fault change).
    pub fn poke_all(&self) {
        for p in self.all_paths() {
            p.poke.notify_one();
        }
    }

    /// Creates the path objects of a freshly loaded config.
    pub fn start_paths(self: &Arc<Self>) {
        let conf = self.conf();
        for name in conf.static_names() {
            let pc = conf.path_conf(&name).unwrap();
            let h = self.spawn_path(&name, pc, &conf);
            self.state.lock().unwrap().paths.insert(name, h);
        }
    }

    fn spawn_path(self: &Arc<Self>, name: &str, pc: Map<String, Value>, conf: &Conf) -> PathHandle {
        let shared = Arc::new(PathShared {
            name: name.to_string(),
            conf: Mutex::new(pc),
            status: Mutex::new(PathStatus::default()),
            rec: Arc::new(Mutex::new(RecStatus::default())),
            poke: Notify::new(),
            record_changed: AtomicBool::new(false),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_path(
            self.clone(),
            shared.clone(),
            cancel.clone(),
            conf.duration("readTimeout"),
        ));
        PathHandle {
            shared,
            cancel,
            task,
        }
    }

    async fn close_path(&self, h: PathHandle) {
        h.cancel.cancel();
        let _ = h.task.await;
        self.state.lock().unwrap().hls.path_gone(&h.shared.name);
    }

    /// Closes every path (graceful shutdown): segments are finalized.
    pub async fn close_all(&self) {
        let hs: Vec<PathHandle> = std::mem::take(&mut self.state.lock().unwrap().paths)
            .into_values()
            .collect();
        for h in &hs {
            h.cancel.cancel();
        }
        for h in hs {
            self.close_path(h).await;
        }
    }

    /// Applies a new config to the paths per §f and returns what the listeners must do
    /// about it (None: identical config, nothing changed). The caller hands the change
    /// to `reconcile_servers`.
    pub async fn apply(self: &Arc<Self>, new: Conf) -> Option<ServerChange> {
        let old = self.conf();
        if old == new {
            return None;
        }
        let restart_all = old.path_manager_changed(&new);
        crate::log::set_level(new.str("logLevel"));
        self.state.lock().unwrap().conf = new.clone();
        let mut names: Vec<String> = old.static_names();
        for n in new.static_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        for name in names {
            let a = old.path_conf(&name).filter(|_| !is_regexp_name(&name));
            let b = new.path_conf(&name).filter(|_| !is_regexp_name(&name));
            match (a, b) {
                (None, None) => {}
                (None, Some(b)) => {
                    let h = self.spawn_path(&name, b, &new);
                    self.state.lock().unwrap().paths.insert(name, h);
                }
                (Some(_), None) => {
                    let h = self.state.lock().unwrap().paths.remove(&name);
                    if let Some(h) = h {
                        self.close_path(h).await;
                    }
                }
                (Some(a), Some(b)) => {
                    if a == b && !restart_all {
                        continue;
                    }
                    let only_record = !restart_all
                        && a.keys()
                            .chain(b.keys())
                            .filter(|k| a.get(*k) != b.get(*k))
                            .all(|k| RECORD_KEYS.contains(&k.as_str()));
                    if only_record {
                        let sh = self.path(&name);
                        if let Some(sh) = sh {
                            *sh.conf.lock().unwrap() = b;
                            sh.record_changed.store(true, Ordering::SeqCst);
                            sh.poke.notify_one();
                        }
                        continue;
                    }
                    let h = self.state.lock().unwrap().paths.remove(&name);
                    if let Some(h) = h {
                        self.close_path(h).await;
                    }
                    let h = self.spawn_path(&name, b, &new);
                    self.state.lock().unwrap().paths.insert(name, h);
                }
            }
        }
        self.conf_changed.notify_one();
        Some(ServerChange {
            old,
            new,
            restart_all,
        })
    }

    /// Applies a config change to the paths, then to the listeners. Returns an error when
    /// a server cannot be re-created (the caller exits with 0).
    pub async fn reload(self: &Arc<Self>, new: Conf) -> Result<(), String> {
        let Some(change) = self.apply(new).await else {
            return Ok(());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.server_changes.send((change, tx)).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    pub fn check_path(&self, name: &str) -> Check {
        let conf = self.conf();
        if conf.matching_entry(name).is_none() {
            return Check::NotConfigured;
        }
        match self.path(name) {
            Some(p) if p.ready() => Check::Ready,
            _ => Check::NotReady,
        }
    }

    /// Asks the process to stop with `code` (graceful: segments are finalized).
    pub fn request_exit(&self, code: i32) {
        *self.exit_code.lock().unwrap() = code;
        self.stop.cancel();
    }
}

/// The `host:port` a source URL dials, for error messages.
fn dial_target(src: &str) -> String {
    let rest = src.split("://").nth(1).unwrap_or(src);
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:554")
    }
}

fn source_label(kind: &str) -> &'static str {
    match kind {
        "rtmpSource" => "RTMP source",
        "hlsSource" => "HLS source",
        "srtSource" => "SRT source",
        "mpegtsSource" => "MPEG-TS source",
        "rtpSource" => "RTP source",
        "webRTCSource" => "WebRTC source",
        _ => "RTSP source",
    }
}

enum Outcome {
    Stopped,
    Failed(String),
}

async fn run_path(
    sim: Arc<Sim>,
    sh: Arc<PathShared>,
    cancel: CancellationToken,
    read_timeout: Duration,
) {
    let Some(kind) = sh.source_type() else {
        cancel.cancelled().await;
        return;
    };
    let name = sh.name.clone();
    let label = source_label(kind);
    info!("[path {name}] [{label}] started");
    loop {
        debug!("[path {name}] [{label}] connecting");
        let outcome = match sim.faults.camera(&name) {
            Some(mode) => Outcome::Failed(dial_error(&sh.source(), mode)),
            None => {
                tokio::select! {
                    _ = cancel.cancelled() => Outcome::Stopped,
                    _ = tokio::time::sleep(CONNECT_TIME) => match sim.faults.camera(&name) {
                        Some(mode) => Outcome::Failed(dial_error(&sh.source(), mode)),
                        None => run_ready(&sim, &sh, &cancel, read_timeout).await,
                    },
                }
            }
        };
        match outcome {
            Outcome::Stopped => break,
            Outcome::Failed(e) => error!("[path {name}] [{label}] {e}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
    info!("[path {name}] [{label}] stopped: terminated");
}

fn dial_error(src: &str, mode: CameraMode) -> String {
    match mode {
        CameraMode::Closed => format!("dial tcp {}: connect: connection refused", dial_target(src)),
        CameraMode::Silent => format!("dial tcp {}: i/o timeout", dial_target(src)),
    }
}

/// Plays a connected camera until it fails or the path is closed.
async fn run_ready(
    sim: &Arc<Sim>,
    sh: &Arc<PathShared>,
    cancel: &CancellationToken,
    read_timeout: Duration,
) -> Outcome {
    let name = &sh.name;
    sim.live.prepare(name);
    let mut fx = if sim.live_recordings {
        sim.live.for_path(name).fx.clone()
    } else {
        sim.fixture.clone()
    };
    let mut wall0 = Local::now();
    let t0 = Instant::now();
    // With live recordings the camera's frames follow the wall clock: the first sample is
    // the frame of this moment, and media time 0 is that frame's wall time.
    let mut next: u64 = 0;
    if sim.live_recordings {
        let fps = fx.fps();
        let frame = (wall0.timestamp_micros().max(0) as f64 / 1e6 * fps) as u64;
        next = frame;
        let at = chrono::DateTime::from_timestamp_micros((frame as f64 / fps * 1e6) as i64);
        if let Some(at) = at {
            wall0 = at.with_timezone(&Local);
        }
    }
    let base = fx.sample_at(next).1;
    {
        let mut st = sh.status.lock().unwrap();
        st.ready_time = Some(wall0);
        st.online_time = Some(wall0);
        st.inbound_bytes = 0;
    }
    info!("[path {name}] stream is available and online, 1 track (H264)");
    let make_rec = |pc: &Map<String, Value>, fx: &Arc<Fixture>| {
        config::path_bool(pc, "record")
            .then(|| Recorder::new(fx.clone(), name, pc, wall0, sh.rec.clone()))
    };
    sh.record_changed.store(false, Ordering::SeqCst);
    let pc = sh.conf.lock().unwrap().clone();
    let mut rec = make_rec(&pc, &fx);
    let conf = sim.conf();
    if conf.bool("hls") && conf.bool("hlsAlwaysRemux") {
        match crate::readers::muxer_config_error(&conf) {
            Some(why) => error!("[HLS] [muxer {name}] muxer instance crashed: {why}"),
            None => sim.state.lock().unwrap().hls.always_remux(name),
        }
    }
    // The camera's data arrives frame by frame (10 fps in the recorder's fixture): the
    // byte count moves every 100 ms as MediaMTX's moves with every packet, never once a
    // second (a count that moves once a second, polled once a second, can stand still
    // between two polls while the camera streams). Parts are still cut by media time.
    let period = |pc: &Map<String, Value>| {
        let p = config::path_duration(pc, "recordPartDuration");
        if config::path_bool(pc, "record") && p < FRAME_TICK {
            p.max(Duration::from_millis(50))
        } else {
            FRAME_TICK
        }
    };
    let mut ticker = tokio::time::interval(period(&pc));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_data = t0;
    // MediaMTX's RTSP client checks its read timeout once a second.
    let mut next_timeout_check = t0 + Duration::from_secs(1);
    let mut silent = false;
    let ts = fx.timescale as f64;
    let outcome = loop {
        tokio::select! {
            _ = cancel.cancelled() => break Outcome::Stopped,
            _ = ticker.tick() => {}
            _ = sh.poke.notified() => {}
        }
        if sh.record_changed.swap(false, Ordering::SeqCst) {
            if let Some(r) = rec.take() {
                r.close();
            }
            let pc = sh.conf.lock().unwrap().clone();
            rec = make_rec(&pc, &fx);
            ticker = tokio::time::interval(period(&pc));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let now = Instant::now();
        let (camera, stalled, frozen) = sim.faults.for_path(name);
        let target = (now.duration_since(t0).as_secs_f64() * ts) as u64;
        match camera {
            Some(CameraMode::Closed) => break Outcome::Failed("EOF".into()),
            Some(CameraMode::Silent) if silent => {
                if now >= next_timeout_check {
                    next_timeout_check += Duration::from_secs(1);
                    if now.duration_since(last_data) >= read_timeout {
                        break Outcome::Failed("TCP timeout".into());
                    }
                }
                // Nothing arrives: skip the samples of this interval.
                while fx.sample_at(next).1 - base <= target {
                    next += 1;
                }
                if let Some(r) = rec.as_mut() {
                    r.skip();
                }
            }
            _ => {
                // Data flowed until now; a camera that just went silent (the fault pokes
                // this task at once) stops sending from this moment.
                silent = camera.is_some();
                last_data = now;
                let mut bytes = 0u64;
                while fx.sample_at(next).1 - base <= target {
                    if sim.live_recordings && fx.sample_at(next).0.key {
                        // The camera's own picture, once rendered, from a keyframe on.
                        let own = sim.live.for_path(name).fx.clone();
                        if !Arc::ptr_eq(&own, &fx) {
                            fx = own;
                            if let Some(r) = rec.as_mut() {
                                r.switch_fixture(fx.clone());
                            }
                        }
                    }
                    let (s, dts) = fx.sample_at(next);
                    let dts = dts - base;
                    bytes += s.data.len() as u64;
                    if let Some(r) = rec.as_mut() {
                        if stalled {
                            r.skip();
                        } else {
                            r.push(s, dts);
                        }
                    }
                    next += 1;
                }
                if !frozen {
                    sh.status.lock().unwrap().inbound_bytes += bytes;
                }
            }
        }
    };
    // Teardown order as MediaMTX: not ready, readers closed, recorder finalized, then the
    // caller logs the source error.
    {
        let mut st = sh.status.lock().unwrap();
        st.ready_time = None;
        st.inbound_bytes = 0;
    }
    sim.state.lock().unwrap().hls.path_gone(name);
    if let Some(r) = rec.take() {
        r.close();
    }
    outcome
}
