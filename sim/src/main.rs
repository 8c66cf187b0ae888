//! `mediamtx-sim`: a stand-in for MediaMTX v1.20.1, for vms-supervisor's tests.
//!
//! It is started as MediaMTX is (`mediamtx-sim /abs/path/mediamtx.yml`) and behaves as
//! `docs/mediamtx.md` describes, with simulated cameras and real fMP4
//! recordings made from a committed fixture. Module map:
//!
//! * `config`: the YAML keys, defaults, strict parsing and validation;
//! * `sim`: the path objects, their simulated sources, and reload semantics;
//! * `recorder`, `mp4`, `recordpath`: the fMP4 recorder, the fixture, segment names;
//! * `servers`: the listeners' lifecycle (binds and restarts the routers of `api`,
//!   `metrics`, `playback`, `hls`, `webrtc`, and the `rtsp` listener); `http`: the
//!   routers' leaf helpers; `auth`: credentials, internal users, `authMethod: http`;
//!   `readers`: HLS muxers and sessions as the API and metrics see them;
//! * `watcher`: config file watching; `cleaner`: `recordDeleteAfter`;
//! * `faults`, `control`: fault injection for tests (`MTXSIM_CONTROL`, `MTXSIM_FAULTS`).
//!
//! Imports form a DAG (checked by `tests/it/modules.rs`): `log`, `http`, `regex`, `mp4`,
//! `faults` at the bottom; `config`, `recordpath`, `readers`, `recorder`, `auth` above
//! them; `sim` (which returns config changes to its callers instead of restarting
//! listeners); the routers (and `rtsp`) and `watcher`/`cleaner`; `servers`; `main`.

// HTTP handlers return `Result<Response, Response>` to use `?` for early error answers;
// the error path is cold, so the size of `Response` does not matter.
#![allow(clippy::result_large_err)]

mod api;
mod auth;
mod cleaner;
mod config;
mod control;
mod faults;
mod hls;
mod http;
mod livemedia;
mod log;
mod metrics;
mod mp4;
mod playback;
mod readers;
mod recorder;
mod recordpath;
mod regex;
mod rtc;
mod rtsp;
mod servers;
mod sim;
mod tls;
mod watcher;
mod webrtc;

use log::{error, info, warning};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn main() {
    let t0 = std::time::Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("v1.20.1");
        return;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: mediamtx-sim [<confpath>]");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(args.first().cloned(), t0));
    // Blocking threads (the inotify reader) must not delay the exit.
    std::process::exit(code);
}

/// Loads the config: the explicit file, or `mediamtx.yml` in the working directory.
fn load(arg: Option<String>) -> Result<(Conf, Option<PathBuf>), String> {
    let path = match arg {
        Some(p) => PathBuf::from(p),
        None => {
            let p = PathBuf::from("mediamtx.yml");
            if !p.exists() {
                warning!("configuration file not found (looked in mediamtx.yml), using an empty configuration");
                return Ok((Conf::default(), None));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("open {}: {why}", path.display())
    })?;
    let conf = Conf::load(&text)?;
    let abs = std::path::absolute(&path).unwrap_or(path);
    Ok((conf, Some(abs)))
}

use config::Conf;

async fn run(arg: Option<String>, t0: std::time::Instant) -> i32 {
    // Installed first, so that a SIGTERM during startup is still a graceful stop.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let (conf, conf_path) = match load(arg) {
        Ok(c) => c,
        Err(e) => {
            println!("ERR: {e}");
            return 1;
        }
    };
    log::set_level(conf.str("logLevel"));
    info!("MediaMTX v1.20.1, linux, amd64 (mediamtx-sim)");
    if let Some(p) = &conf_path {
        info!("configuration loaded from {}", p.display());
    }
    let faults = match faults::FaultStore::from_env() {
        Ok(f) => f,
        Err(e) => {
            println!("ERR: {e}");
            return 1;
        }
    };
    let live_recordings = std::env::var("MTXSIM_LIVE_RECORDINGS").is_ok_and(|v| v == "1");
    let (memory_rate, memory_rx) =
        tokio::sync::watch::channel(faults.get().memory_grow_mib_per_sec);
    let (server_changes, server_rx) = tokio::sync::mpsc::unbounded_channel();
    let live = Arc::new(mp4::Fixture::load_live().expect("the committed live fixture parses"));
    let fixture = if live_recordings {
        live.clone()
    } else {
        Arc::new(mp4::Fixture::load().expect("the committed fixture parses"))
    };
    let sim = Arc::new(sim::Sim {
        fixture,
        live: Arc::new(livemedia::LiveMedia::new(live)),
        live_recordings,
        started: chrono::Local::now(),
        faults,
        state: Mutex::new(sim::State {
            conf,
            paths: Default::default(),
            hls: Default::default(),
            webrtc: Default::default(),
            bound: Default::default(),
        }),
        reload_lock: Default::default(),
        path_manager: Default::default(),
        server_changes,
        stop: Default::default(),
        exit_code: Mutex::new(0),
        started_flag: Default::default(),
        startup_time: Mutex::new(None),
        conf_changed: Default::default(),
        memory_rate,
    });

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    if let Some(p) = conf_path {
        if let Err(e) = watcher::spawn(sim.clone(), p, started_rx) {
            error!("config watcher: {e}");
        }
    }

    if let Err(e) = serve_control(&sim) {
        error!("[mtxsim] control: {e}");
        return 1;
    }

    if let Err(e) = servers::start(&sim, server_rx).await {
        error!("{e}");
        return 1;
    }
    if sim.faults.get().crash_at_start {
        error!("[mtxsim] crash_at_start: abort()");
        std::process::abort();
    }
    sim.start_paths();
    let _ = started_tx.send(());
    *sim.startup_time.lock().unwrap() = Some(t0.elapsed());
    sim.started_flag
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(cleaner::run(sim.clone()));
    tokio::spawn(grow_memory(memory_rx));

    tokio::select! {
        _ = sigint.recv() => info!("shutting down gracefully"),
        _ = sigterm.recv() => info!("shutting down gracefully"),
        _ = sim.stop.cancelled() => {}
    }
    sim.close_all().await;
    let code = *sim.exit_code.lock().unwrap();
    code
}

/// Serves the fault-injection endpoint on `MTXSIM_CONTROL`, if set.
fn serve_control(sim: &Arc<sim::Sim>) -> Result<(), String> {
    let Ok(addr) = std::env::var("MTXSIM_CONTROL") else {
        return Ok(());
    };
    let l = http::bind(&addr)?;
    let local: SocketAddr = l.local_addr().map_err(|e| e.to_string())?;
    let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
    log::write_line(
        log::Level::Info,
        &format!("[mtxsim] control listener on {local}"),
    );
    let router = control::router(sim.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    Ok(())
}

/// The memory-growth fault: allocates and touches `rate` MiB every second, forever.
async fn grow_memory(mut rate: tokio::sync::watch::Receiver<u64>) {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let r = *rate.borrow_and_update();
        if r == 0 {
            if rate.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Touch every page so the memory is really resident.
        let mut v = vec![0u8; (r as usize) << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        hoard.push(v);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
