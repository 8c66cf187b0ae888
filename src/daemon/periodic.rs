//! The timed observations: the one-call path poll, path convergence with
//! the config, the HLS listener check and the disk. Each runs in a spawned
//! task and reports back; the decisions are the machines'.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use super::{Daemon, Report};
use crate::clock::Now;
use crate::mediamtx::render;
use crate::supervisor::converge::{self, PathChange};
use crate::supervisor::disk::{DiskReading, Thresholds};

/// When each periodic observation is due.
pub(super) struct Timers {
    pub poll_in_flight: bool,
    next_poll: Instant,
    next_converge: Instant,
    next_disk: Instant,
}

impl Timers {
    pub fn new(now: Instant) -> Timers {
        Timers {
            poll_in_flight: false,
            next_poll: now,
            next_converge: now,
            next_disk: now,
        }
    }

    /// MediaMTX just became ready: look at its paths at once.
    pub fn mediamtx_ready(&mut self, now: Instant) {
        self.next_poll = now;
        self.next_converge = now;
    }

    /// Check the running paths once MediaMTX has reloaded a new file.
    pub fn converge_at(&mut self, at: Instant) {
        self.next_converge = at;
    }
}

impl Daemon {
    /// Work on timers: the one-call poll, convergence, disk, deferred writes.
    pub(super) async fn periodic(&mut self, now: Now) {
        let running = self.process.is_running();
        let t = &mut self.timers;
        // An extra poll when the camera machine wants one (a camera late
        // for its next write), beside the regular beat.
        let extra = self
            .cameras
            .poll_due(now.mono)
            .is_some_and(|t| now.mono >= t);
        if running && !t.poll_in_flight && (extra || now.mono >= t.next_poll) {
            t.poll_in_flight = true;
            // On the interval's own beat (not "an interval after the tick
            // that ran it", which made polls 1.0 to 1.25 s apart): the byte
            // counts the camera machine compares are an interval apart.
            let interval = self.config.monitor.api_poll_interval.get();
            if now.mono >= t.next_poll {
                t.next_poll = if now.mono < t.next_poll + interval {
                    t.next_poll + interval
                } else {
                    now.mono + interval
                };
            }
            let client = self.client.clone();
            let tx = self.reports_tx.clone();
            tokio::spawn(async move {
                let r = client.paths().await.map_err(|e| e.to_string());
                let _ = tx.send(Report::Paths(r)).await;
            });
        }
        if running && now.mono >= t.next_converge {
            t.next_converge = now.mono + self.config.monitor.interval.get();
            self.converge(now);
            self.check_hls();
        }
        // As often as the path poll: a full disk must be known before the
        // cameras' stall timers would blame each camera.
        if now.mono >= self.timers.next_disk {
            self.timers.next_disk = now.mono + self.config.monitor.api_poll_interval.get();
            self.check_disk();
        }
        if let Some(text) = self.writes.due(now.mono) {
            self.write_mediamtx_config(text, now.mono);
        }
    }

    /// Ends, in the audit trail, the live views whose readers MediaMTX no
    /// longer lists (`None`: it is not running). Off the loop: the access
    /// database's thread does the work.
    pub(super) fn end_views(&self, now: Now, present: Option<HashSet<String>>) {
        let access = self.access.clone();
        tokio::spawn(async move {
            let r = access
                .call(move |s, _| s.close_views(now.wall, present.as_ref()))
                .await;
            match r {
                Ok(Ok((_, watching))) => crate::metrics::live_views(watching),
                Err(e) | Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "cannot write the end of a live view to the audit trail"
                ),
            }
        });
    }

    /// Fetches MediaMTX's running paths and executes [`converge::plan`].
    fn converge(&self, now: Now) {
        let client = self.client.clone();
        let tx = self.reports_tx.clone();
        let busy: Vec<String> = self
            .cameras
            .views(now)
            .into_iter()
            .filter(|v| v.recovery_step.is_some())
            .map(|v| v.path)
            .collect();
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
            for change in converge::plan(&desired, &running, &busy) {
                match change {
                    PathChange::Replace { name, conf } => {
                        if client.replace_path(&name, &conf).await.is_ok() {
                            fixed.push(name);
                        }
                    }
                    PathChange::Delete { name } => {
                        if client.delete_path(&name).await.is_ok() {
                            fixed.push(format!("-{name}"));
                        }
                    }
                }
            }
            let _ = tx.send(Report::Converged { fixed }).await;
        });
    }

    /// A plain TCP connect to the HLS listener: an HLS request would create
    /// a reader session and a muxer per probe (docs/mediamtx.md §i).
    fn check_hls(&self) {
        let addr = crate::config::connect_addr_str(&self.config.mediamtx.hls_address);
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

    /// `statvfs` of the recordings root, off the loop (a dead network mount
    /// can block it).
    fn check_disk(&self) {
        let path = self.config.recording.path.clone();
        let tx = self.reports_tx.clone();
        tokio::spawn(async move {
            let reading = tokio::task::spawn_blocking(move || read_disk(&path))
                .await
                .ok()
                .flatten();
            let _ = tx.send(Report::Disk(reading)).await;
        });
    }

    pub(super) async fn disk_observed(&mut self, now: Now, reading: Option<DiskReading>) {
        let Some(reading) = reading else {
            return;
        };
        let s = &self.config.storage;
        let thresholds = Thresholds {
            warning: f64::from(s.disk_warning_percent),
            critical: f64::from(s.disk_critical_percent),
        };
        let was_full = self.disk_watch.full();
        for event in self.disk_watch.observe(now.wall, &reading, thresholds) {
            self.alert(event).await;
        }
        let full = self.disk_watch.full();
        if full != was_full {
            if full {
                tracing::error!(mount_point = %reading.mount_point, "the recordings disk is full; cameras are not judged one by one until there is space again");
            }
            let acts = self
                .cameras
                .handle(now, crate::supervisor::cameras::Event::DiskFull(full));
            self.camera_actions(now, acts).await;
        }
        // The storage machine keeps the free-space floor: every reading
        // reaches it, so the oldest footage is evicted before the disk fills
        // (not only once MediaMTX has failed to write).
        let sample = crate::storage::exec::DiskSample {
            total_bytes: reading.total_bytes,
            available_bytes: reading.available_bytes,
        };
        self.storage_event(now, crate::storage::machine::Event::Disk(sample))
            .await;
        self.disk = Some(reading.view());
    }
}

fn read_disk(path: &Path) -> Option<DiskReading> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    // u64::from: these are 32-bit on some ARM boxes.
    #[allow(clippy::useless_conversion)]
    let (frsize, blocks, bfree, bavail) = (
        u64::from(st.fragment_size()),
        u64::from(st.blocks()),
        u64::from(st.blocks_free()),
        u64::from(st.blocks_available()),
    );
    Some(DiskReading {
        mount_point: mount_point_of(path),
        total_bytes: blocks * frsize,
        free_bytes: bfree * frsize,
        available_bytes: bavail * frsize,
    })
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
