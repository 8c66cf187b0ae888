//! Edits of `vms.toml` (hot reload, or the old config kept when the new one
//! is invalid) and writes of the generated `mediamtx.yml`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::Daemon;
use crate::clock::Now;
use crate::config::Config;
use crate::mediamtx::{self, api::Client, render};
use crate::reload;
use crate::supervisor::cameras as camera_machine;
use crate::supervisor::files::WRITE_SPACING;
use crate::supervisor::process::{Event, Reason};

impl Daemon {
    /// Applies an edit of vms.toml, or keeps the old config if it is invalid.
    pub(super) async fn reload(&mut self, now: Now, path: &Path) {
        let new = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(key = %e.key, error = %e.message, "invalid configuration; still running the previous one");
                self.audit_reload("config_reload_refused", format!("{}: {}", e.key, e.message))
                    .await;
                if let Some(event) = self
                    .config_errors
                    .invalid(now.wall, format!("{}: {e}", path.display()))
                {
                    self.alert(event).await;
                }
                return;
            }
        };
        if let Some(event) = self.config_errors.valid(now.wall) {
            self.alert(event).await;
        }
        let diff = reload::diff(&self.config, &new);
        let sections = reload::changed_sections(&self.config, &new);
        self.audit_reload("config_reload", diff.audit_text(&sections))
            .await;
        tracing::info!(
            added = ?diff.added, removed = ?diff.removed, changed = ?diff.changed,
            mediamtx_restart = ?diff.mediamtx_restart, "configuration reloaded"
        );
        if !diff.daemon_restart.is_empty() {
            tracing::warn!(keys = ?diff.daemon_restart, "these settings take effect when vms-supervisor restarts");
        }
        let new = Arc::new(new);
        self.alerts.reload(&new);
        self.backup.apply(&new);
        // Timings and thresholds apply from now on, without a restart.
        self.cameras
            .set_settings(new.monitor.clone(), new.recording.part_duration.get());
        self.process.set_settings(new.mediamtx.clone());
        self.client = Client::new(new.mediamtx.api_address, new.monitor.probe_timeout.get());
        if diff.added.len() + diff.removed.len() + diff.changed.len() > 0 {
            let acts = self
                .cameras
                .handle(now, camera_machine::Event::Cameras(new.cameras.clone()));
            self.camera_actions(now, acts).await;
        }
        self.config = new;
        use crate::storage::machine::Event as StorageEvent;
        let settings = super::storage::settings(&self.config);
        self.storage_event(now, StorageEvent::Settings(settings))
            .await;
        let cameras = super::storage::cameras(&self.config);
        self.storage_event(now, StorageEvent::Cameras(cameras))
            .await;
        if diff.mediamtx_file {
            let text = render::render(&self.config);
            if let Some(text) = self.writes.offer(text, now.mono) {
                self.write_mediamtx_config(text, now.mono);
            }
        }
        if !diff.mediamtx_restart.is_empty() {
            if let Some(binary) = mediamtx::resolve_binary(&self.config.mediamtx.binary) {
                self.binary = binary;
            }
            let acts = self.process.handle(
                now.mono,
                Event::Restart {
                    reason: Reason::Reconfigure,
                },
            );
            self.process_actions(now, acts).await;
        }
    }

    /// An edit of vms.toml in the audit trail. Who edited the file is not
    /// known to the daemon (the box's own logs say who logged in); the row
    /// says when and what changed.
    async fn audit_reload(&self, action: &str, detail: String) {
        let entry =
            crate::access::AuditEntry::new(chrono::Utc::now(), "system", "vms.toml", action)
                .detail(detail);
        self.access.audit(entry).await;
    }

    /// Writes mediamtx.yml atomically (the [`WriteSpacer`] said when).
    /// After MediaMTX has reloaded, the convergence check verifies the
    /// running paths.
    ///
    /// [`WriteSpacer`]: crate::supervisor::files::WriteSpacer
    pub(super) fn write_mediamtx_config(&mut self, text: String, now: Instant) {
        let path = self.config.mediamtx_config_path();
        match crate::durable::write_atomic(&path, text.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "MediaMTX configuration written");
                self.writes.wrote(text, now);
                self.timers.converge_at(now + WRITE_SPACING);
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot write MediaMTX configuration");
                self.writes.failed(text);
            }
        }
    }
}

/// Watches the directory of the config file (editors replace files) and
/// sends `()` on every change of the file itself.
pub(super) fn watch_config_file(
    path: &Path,
    tx: mpsc::Sender<()>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use futures_util::StreamExt;
    use inotify::{Inotify, WatchMask};
    // A bare file name (`--config vms.toml`) lives in the current directory.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
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
