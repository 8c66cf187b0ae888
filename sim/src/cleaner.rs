//! `recordDeleteAfter` (docs/mediamtx.md, recording): at startup, then every min(30 min, deleteAfter/2),
//! delete the segments of every configured path whose start time (from the file name) is
//! older than now − deleteAfter, then remove empty directories under the fixed prefix.
//! A config change re-creates the cleaner in MediaMTX; here it runs a pass at once.

use crate::config::{self, is_regexp_name};
use crate::log::info;
use crate::recordpath;
use crate::sim::Sim;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MAX_PERIOD: Duration = Duration::from_secs(30 * 60);

pub async fn run(sim: Arc<Sim>) {
    loop {
        let period = clean_once(&sim);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = sim.conf_changed.notified() => {}
        }
    }
}

/// One pass; returns the time until the next one.
fn clean_once(sim: &Sim) -> Duration {
    let conf = sim.conf();
    let mut period = MAX_PERIOD;
    let now = chrono::Local::now();
    for name in conf.paths.keys().filter(|n| !is_regexp_name(n)) {
        let pc = conf.path_conf(name).unwrap();
        let after = config::path_duration(&pc, "recordDeleteAfter");
        if after.is_zero() {
            continue;
        }
        period = period.min(after / 2);
        let pattern = config::path_str(&pc, "recordPath");
        let limit = now - chrono::Duration::from_std(after).unwrap_or_default();
        for (file, start) in recordpath::list_segments(pattern, name, ".mp4") {
            if start < limit && std::fs::remove_file(&file).is_ok() {
                info!("[record cleaner] removed {}", file.display());
            }
        }
        recordpath::remove_empty_dirs(Path::new(&recordpath::walk_root(pattern)));
    }
    period.max(Duration::from_millis(100))
}
