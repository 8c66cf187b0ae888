//! The listeners: binding, starting and restarting the HTTP servers (API, metrics,
//! playback, HLS, WebRTC) and the RTSP listener (`rtsp`).

use crate::config::Conf;
use crate::http;
use crate::log::{error, info};
use crate::sim::{ServerChange, ServerRequest, Sim};
use axum::Router;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The servers the sim binds: (name, enable key, address key, log label).
const SERVERS: &[(&str, &str, &str, &str)] = &[
    ("rtsp", "rtsp", "rtspAddress", "RTSP"),
    ("hls", "hls", "hlsAddress", "HLS"),
    ("webrtc", "webrtc", "webrtcAddress", "WebRTC"),
    ("playback", "playback", "playbackAddress", "playback"),
    ("metrics", "metrics", "metricsAddress", "metrics"),
    ("api", "api", "apiAddress", "API"),
];

#[derive(Default)]
struct Listeners {
    running: BTreeMap<&'static str, (String, JoinHandle<()>)>,
}

async fn start_one(
    sim: &Arc<Sim>,
    conf: &Conf,
    name: &'static str,
    addr_key: &str,
    label: &str,
    prev: Option<SocketAddr>,
) -> Result<(String, JoinHandle<()>), String> {
    let addr = conf.str(addr_key).to_string();
    // A restarted listener configured on port 0 keeps the port it had, as a fixed
    // address would.
    let std_l = match prev.filter(|_| addr.ends_with(":0")) {
        Some(p) => http::bind(&p.to_string()).or_else(|_| http::bind(&addr))?,
        None => http::bind(&addr)?,
    };
    let local = std_l.local_addr().map_err(|e| e.to_string())?;
    let l = tokio::net::TcpListener::from_std(std_l).map_err(|e| e.to_string())?;
    sim.state.lock().unwrap().bound.insert(name, local);
    // Port 0 is logged with the port the kernel chose, so tests can find it.
    let shown = if addr.ends_with(":0") {
        local.to_string()
    } else {
        addr.clone()
    };
    let task = if name == "rtsp" {
        info!("[RTSP] started with listener on {shown} (TCP/RTSP)");
        tokio::spawn(crate::rtsp::serve(sim.clone(), l))
    } else {
        // The pair is loaded before the server starts (no "started" line
        // when it cannot be).
        let tls = crate::tls::acceptor(conf, name)?;
        info!("[{label}] started with listener on {shown} (TCP/HTTP)");
        let router: Router = match name {
            "api" => crate::api::router(sim.clone()),
            "metrics" => crate::metrics::router(sim.clone()),
            "playback" => crate::playback::router(sim.clone()),
            "hls" => crate::hls::router(sim.clone()),
            _ => crate::webrtc::router(sim.clone())?,
        };
        match tls {
            Some(acceptor) => tokio::spawn(crate::tls::serve(l, acceptor, router)),
            None => tokio::spawn(async move {
                let _ = axum::serve(
                    l,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            }),
        }
    };
    Ok((addr, task))
}

/// Starts the enabled servers of the initial config, then restarts servers as the
/// config changes that `Sim::reload` sends arrive.
pub async fn start(
    sim: &Arc<Sim>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<ServerRequest>,
) -> Result<(), String> {
    let conf = sim.conf();
    let mut ls = Listeners::default();
    for (name, en, addr_key, label) in SERVERS {
        if conf.bool(en) {
            let r = start_one(sim, &conf, name, addr_key, label, None).await?;
            ls.running.insert(name, r);
        }
    }
    let sim = sim.clone();
    tokio::spawn(async move {
        while let Some((change, answer)) = changes.recv().await {
            let _ = answer.send(reconcile(&sim, &mut ls, &change).await);
        }
    });
    Ok(())
}

/// Restarts the servers whose enable flag or address changed (all of them when the path
/// manager restarts). A bind failure is fatal (the process exits with 0).
async fn reconcile(
    sim: &Arc<Sim>,
    ls: &mut Listeners,
    change: &ServerChange,
) -> Result<(), String> {
    let ServerChange {
        old,
        new,
        restart_all,
    } = change;
    let restart_all = *restart_all;
    for (name, en, addr_key, label) in SERVERS {
        let changed = old.bool(en) != new.bool(en)
            || old.str(addr_key) != new.str(addr_key)
            || crate::tls::keys(name)
                .iter()
                .any(|k| old.str(k) != new.str(k) || old.bool(k) != new.bool(k));
        if !(changed || restart_all && new.bool(en)) {
            continue;
        }
        let mut prev = None;
        if let Some((_, task)) = ls.running.remove(name) {
            task.abort();
            let _ = task.await;
            let was = sim.state.lock().unwrap().bound.remove(name);
            if old.str(addr_key) == new.str(addr_key) {
                prev = was;
            }
            info!("[{label}] listener is closing");
        }
        if new.bool(en) {
            match start_one(sim, new, name, addr_key, label, prev).await {
                Ok(r) => {
                    ls.running.insert(name, r);
                }
                Err(e) => {
                    error!("{e}");
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
