//! Executes the MediaMTX process machine's actions: spawn the child, send
//! signals, probe its API, forward its log lines.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Daemon, Report};
use crate::clock::Now;
use crate::mediamtx::{child, logs};
use crate::notify;
use crate::supervisor::cameras as camera_machine;
use crate::supervisor::process::{Action, Event, Reason};

impl Daemon {
    /// Executes the process machine's actions. Returns true when stopped.
    pub(super) async fn process_actions(&mut self, now: Now, actions: Vec<Action>) -> bool {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
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
                        notify::ready(&self.snapshot(now).summary());
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
}
