//! Config file watching (docs/mediamtx.md, config reload): inotify on the parent directory; a Write, Create or
//! MovedTo of the file's name triggers a reload 10 ms later, unless it comes less than
//! 1 s after the previous reload, in which case it is dropped (not deferred).

use crate::config::Conf;
use crate::log::{error, info};
use crate::sim::Sim;
use inotify::{Inotify, WatchMask};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// Starts watching at once (so no event is missed while the sim starts); events are
/// handled once `started` fires (the paths of the initial config exist).
pub fn spawn(
    sim: Arc<Sim>,
    file: PathBuf,
    started: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let dir = file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    let fname = file.file_name().ok_or("bad config path")?.to_os_string();
    let mut ino = Inotify::init().map_err(|e| e.to_string())?;
    ino.watches()
        .add(
            &dir,
            WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO,
        )
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::Builder::new()
        .name("confwatcher".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(evs) = ino.read_events_blocking(&mut buf) else {
                    return;
                };
                for e in evs {
                    if e.name == Some(fname.as_os_str()) && tx.send(()).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if started.await.is_err() {
            return;
        }
        let mut last: Option<Instant> = None;
        while rx.recv().await.is_some() {
            if last.is_some_and(|l| l.elapsed() < DEBOUNCE) {
                continue;
            }
            last = Some(Instant::now());
            tokio::time::sleep(Duration::from_millis(10)).await;
            reload(&sim, &file).await;
        }
    });
    Ok(())
}

async fn reload(sim: &Arc<Sim>, file: &PathBuf) {
    info!("reloading configuration (file changed)");
    if sim.faults.get().reload_fatal {
        sim.faults.update(|f| f.reload_fatal = false);
        error!("reload made fatal by mediamtx-sim (reload-fatal fault)");
        sim.request_exit(0);
        return;
    }
    let parsed = std::fs::read_to_string(file)
        .map_err(|e| format!("open {}: {e}", file.display()))
        .and_then(|t| Conf::load(&t));
    let conf = match parsed {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            sim.request_exit(0);
            return;
        }
    };
    let _g = sim.reload_lock.lock().await;
    if sim.reload(conf).await.is_err() {
        sim.request_exit(0);
    }
}
