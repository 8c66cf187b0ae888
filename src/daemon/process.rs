//! Executes the MediaMTX process machine's actions: spawn the child (or
//! adopt the one a previous daemon left running), send signals, probe its
//! API, watch for its exit, forward its log lines.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Daemon, Report};
use crate::clock::Now;
use crate::mediamtx::{child, logs};
use crate::notify;
use crate::supervisor::cameras as camera_machine;
use crate::supervisor::process::{Action, Event, Reason};

/// What the daemon does with MediaMTX when it starts: adopt the one a
/// previous daemon left running, or start one (after stopping a MediaMTX of
/// ours that cannot be adopted).
pub(super) async fn first_decision(
    config: &crate::config::Config,
    binary: &std::path::Path,
) -> Option<u32> {
    let config_path = config.mediamtx_config_path();
    let state_dir = &config.state.dir;
    // A marker from an earlier stop that was never read (the daemon died
    // first) is stale now.
    let _ = std::fs::remove_file(child::stop_marker(state_dir));
    match child::find_running(state_dir, binary, &config_path) {
        child::Found::Nothing => None,
        child::Found::Adoptable { pid } => {
            tracing::info!(
                pid,
                "adopting the MediaMTX left running by the previous daemon"
            );
            Some(pid)
        }
        child::Found::Outdated { pid } => {
            tracing::info!(
                pid,
                binary = %binary.display(),
                "adopting the MediaMTX left running by the previous daemon; a new binary was installed since it started, so it is restarted once to run it as soon as it answers"
            );
            Some(pid)
        }
        child::Found::Stranger { pid, what } => {
            tracing::warn!(pid, process = %what, "the MediaMTX pid file names another process now; it is left alone");
            let _ = std::fs::remove_file(child::pid_file(state_dir));
            None
        }
        child::Found::Hidden { pid } => {
            tracing::warn!(pid, "not adopting: the process named by the MediaMTX pid file runs but its /proc entry cannot be read (hidden from this daemon), so it cannot be checked; it is left alone and a new MediaMTX is started");
            let _ = std::fs::remove_file(child::pid_file(state_dir));
            None
        }
        child::Found::Unsafe { pid, why } => {
            tracing::warn!(pid, reason = %why, "not adopting the running MediaMTX: stopping it and starting a new one");
            child::stop_unadoptable(pid, config.mediamtx.stop_timeout.get()).await;
            let _ = std::fs::remove_file(child::pid_file(state_dir));
            None
        }
    }
}

/// On SIGTERM: does the daemon leave MediaMTX running for the next daemon
/// (a restart) or stop it (a stop for good)? Outside systemd it always
/// stops it. Under systemd (`INVOCATION_ID` set) SIGTERM means a restart
/// unless the unit's `ExecStop=` left the stop marker, which it does only
/// when systemd's job for the unit is a stop (`systemctl stop`, package
/// removal, shutdown of the box); see `systemd/vms-supervisor.service`.
pub(super) fn leave_running_on_sigterm(state_dir: &std::path::Path) -> bool {
    let marker = child::stop_marker(state_dir);
    let stop_for_good = marker.exists();
    let _ = std::fs::remove_file(&marker);
    std::env::var_os("INVOCATION_ID").is_some() && !stop_for_good
}

impl Daemon {
    /// The first actions of the process machine: adopt `adopted` or spawn.
    pub(super) async fn start_mediamtx(&mut self, now: Now, adopted: Option<u32>) {
        let acts = match adopted {
            Some(pid) => {
                self.watch_adopted(pid);
                self.process.adopt(now.mono, pid)
            }
            None => self.process.start(now.mono),
        };
        self.process_actions(now, acts).await;
    }

    /// Restarts MediaMTX once when a new binary was installed at the
    /// configured path while it runs (checked after every probe).
    pub(super) async fn check_binary(&mut self, now: Now) -> bool {
        let Some(pid) = self.process.pid() else {
            return false;
        };
        if !self.process.is_running() || !child::binary_replaced(pid, &self.binary) {
            return false;
        }
        tracing::info!(pid, binary = %self.binary.display(), "a new MediaMTX binary was installed: restarting MediaMTX once to run it");
        let acts = self.process.handle(
            now.mono,
            Event::Restart {
                reason: Reason::Upgrade,
            },
        );
        self.process_actions(now, acts).await
    }

    /// Supervises a MediaMTX that is not our child: its log lines from the
    /// FIFO, its exit through a pidfd (or by polling `/proc` without one).
    fn watch_adopted(&mut self, pid: u32) {
        self.follow_logs();
        let tx = self.reports_tx.clone();
        let status = "exited (status unknown: adopted, not the daemon's child)".to_string();
        match child::exit_watch(pid) {
            Ok(exited) => {
                tokio::spawn(async move {
                    exited.await;
                    let _ = tx.send(Report::ChildExited { pid, status }).await;
                });
            }
            Err(e) => {
                tracing::debug!(pid, error = %e, "no pidfd: polling /proc for the exit of MediaMTX");
                tokio::spawn(async move {
                    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
                    while proc.exists() {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    let _ = tx.send(Report::ChildExited { pid, status }).await;
                });
            }
        }
    }

    /// Reads MediaMTX's log FIFO (replacing the reader of an earlier
    /// MediaMTX).
    fn follow_logs(&mut self) {
        if let Some(old) = self.log_reader.take() {
            old.abort();
        }
        match child::open_logs(&self.config.state.dir) {
            Ok(rx) => self.log_reader = Some(self.read_logs(rx)),
            Err(e) => tracing::warn!(error = %e, "cannot read MediaMTX's log lines"),
        }
    }

    /// Executes the process machine's actions. Returns true when stopped.
    pub(super) async fn process_actions(&mut self, now: Now, actions: Vec<Action>) -> bool {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            // MediaMTX's state as the page shows it changes with these
            // (a probe changes nothing until it reports).
            self.state_changed |= !matches!(action, Action::Probe);
            match action {
                Action::Spawn => {
                    let event = self.spawn_child();
                    queue.extend(self.process.handle(now.mono, event));
                }
                Action::Terminate => {
                    if let Some(pid) = self.process.pid() {
                        tracing::info!(pid, "sending SIGTERM to MediaMTX");
                        child::terminate(pid);
                    }
                }
                Action::Kill => {
                    if let Some(pid) = self.process.pid() {
                        tracing::warn!(pid, "MediaMTX did not stop in time; SIGKILL");
                        child::kill_group(pid);
                    }
                }
                Action::Probe => {
                    let client = self.client.clone();
                    let tx = self.reports_tx.clone();
                    tokio::spawn(async move {
                        let ok = client.info().await.is_ok();
                        let _ = tx.send(Report::Probe { ok }).await;
                    });
                }
                Action::BecameReady => {
                    tracing::info!(pid = self.process.pid(), "MediaMTX is ready");
                    let acts = self
                        .cameras
                        .handle(now, camera_machine::Event::MediamtxReady);
                    self.camera_actions(now, acts).await;
                    self.timers.mediamtx_ready(now.mono);
                    if !self.ready_sent {
                        self.ready_sent = true;
                        notify::ready(&self.snapshot(now, None).summary());
                    }
                }
                Action::WentDown {
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
                        .handle(now, camera_machine::Event::MediamtxDown);
                    self.camera_actions(now, acts).await;
                }
                Action::Alert(alert) => self.alert(alert.event(now.wall)).await,
                Action::Stopped => return true,
            }
        }
        false
    }

    fn spawn_child(&mut self) -> Event {
        let config_path = self.config.mediamtx_config_path();
        match child::spawn(
            &self.binary,
            &config_path,
            &self.config.state.dir,
            &self.config.general.timezone,
        ) {
            Ok(mut proc) => {
                let pid = proc.id().unwrap_or(0);
                let _ = crate::durable::write_atomic(
                    &child::pid_file(&self.config.state.dir),
                    format!("{pid}\n").as_bytes(),
                );
                tracing::info!(pid, binary = %self.binary.display(), "MediaMTX started");
                self.follow_logs();
                let tx = self.reports_tx.clone();
                tokio::spawn(async move {
                    let status = match proc.wait().await {
                        Ok(st) => child::describe_exit(st),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    let _ = tx.send(Report::ChildExited { pid, status }).await;
                });
                Event::Spawned { pid }
            }
            Err(e) => {
                tracing::error!(binary = %self.binary.display(), error = %e, "cannot start MediaMTX");
                Event::SpawnFailed {
                    error: e.to_string(),
                }
            }
        }
    }

    /// Forwards MediaMTX's lines to our log (rate-limited) and its stream
    /// announcements to the loop.
    fn read_logs<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
        &self,
        stream: R,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(forward_logs(
            stream,
            self.reports_tx.clone(),
            self.log_limiter.clone(),
        ))
    }
}

/// Reads MediaMTX's log lines until the stream ends: each goes to our log
/// (rate-limited), and a stream announcement to the loop.
async fn forward_logs<R: tokio::io::AsyncRead + Unpin>(
    stream: R,
    tx: tokio::sync::mpsc::Sender<Report>,
    limiter: std::sync::Arc<std::sync::Mutex<logs::RateLimiter>>,
) {
    // Bytes, not `lines()`: a line that is not UTF-8 (a camera's name or an
    // error text passed through as raw bytes) would end a `lines()` reader,
    // and MediaMTX would block on its next line once the FIFO is full. It is
    // read with the bad bytes replaced.
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading MediaMTX's log lines failed");
                break;
            }
        }
        let raw = String::from_utf8_lossy(&buf);
        let line = logs::parse(raw.trim_end_matches(['\n', '\r']));
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
            logs::Level::Error => tracing::error!(target: "mediamtx", path, "{}", line.message),
            logs::Level::Warn => tracing::warn!(target: "mediamtx", path, "{}", line.message),
            logs::Level::Info => tracing::info!(target: "mediamtx", path, "{}", line.message),
            logs::Level::Debug => tracing::debug!(target: "mediamtx", path, "{}", line.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that is not UTF-8 does not end the reading: the announcement
    /// after it still reaches the loop.
    #[tokio::test]
    async fn a_line_that_is_not_utf8_does_not_stop_the_log_reader() {
        let text: &[u8] = b"2026/08/22 10:00:00 INF [path cam_1] stream is available and online\n\
            2026/08/22 10:00:01 WAR [RTSP] [conn 10.0.0.9] user agent \xff\xfe\xc3(\n\
            2026/08/22 10:00:02 ERR [path cam_2] [RTSP source] TCP timeout\r\n\
            2026/08/22 10:00:03 INF [path cam_3] stream is ready";
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let limiter = std::sync::Arc::new(std::sync::Mutex::new(logs::RateLimiter::new(100)));
        forward_logs(text, tx, limiter).await;
        let mut signals = Vec::new();
        while let Ok(report) = rx.try_recv() {
            if let Report::Log(signal) = report {
                signals.push(signal);
            }
        }
        assert_eq!(
            signals,
            vec![
                logs::PathSignal::Available("cam_1".into()),
                logs::PathSignal::Unavailable("cam_2".into()),
                logs::PathSignal::Available("cam_3".into()),
            ]
        );
    }
}
