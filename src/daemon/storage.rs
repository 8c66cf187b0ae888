//! Runs the storage machine: its catalog actions go to the catalog's owner
//! thread in order and what they find comes back as events; its alerts
//! become the daemon's alerts. Storage is best effort for supervision: a
//! catalog that cannot be opened is logged and recording is still watched.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::Daemon;
use crate::clock::Now;
use crate::config::Config;
use crate::events::{AlertEvent, CameraRef, Issue};
use crate::storage::db::StorageDb;
use crate::storage::machine::{self, Action, Event, Machine};
use crate::storage::{StorageAlert, StorageIssue};

/// The storage machine and the way to its catalog.
pub(super) struct Storage {
    pub machine: Machine,
    pub db: StorageDb,
    feedback: mpsc::UnboundedSender<Event>,
}

impl Storage {
    pub fn new(config: &Config, db: StorageDb) -> (Storage, mpsc::UnboundedReceiver<Event>) {
        let (feedback, rx) = mpsc::unbounded_channel();
        let machine = Machine::new(
            config.recording.path.clone(),
            config.timezone(),
            settings(config),
        );
        (
            Storage {
                machine,
                db,
                feedback,
            },
            rx,
        )
    }
}

/// The storage settings of a config.
pub fn settings(config: &Config) -> machine::Settings {
    let s = &config.storage;
    machine::Settings {
        retention_days: config.recording.retention_days,
        camera_retention_days: config
            .cameras
            .iter()
            .filter_map(|c| c.retention_days.map(|d| (c.id, d)))
            .collect::<BTreeMap<_, _>>(),
        min_free_bytes: s.min_free.map(|b| b.0),
        min_free_percent: s.min_free_percent,
        sweep_interval: s.retention_interval.get(),
        batch: s.delete_batch,
        backup_enabled: config.backup.enabled,
        ..machine::Settings::default()
    }
}

/// What the status shows of the storage machine's view.
pub fn status(v: &machine::StorageView) -> crate::status::StorageStatus {
    crate::status::StorageStatus {
        capacity_days: v.capacity_days,
        days_until_full: v.days_until_full,
        floor_bytes: v.floor_bytes,
        write_bytes_per_second: v.write_bytes_per_second,
        evicting: v.evicting,
        evicted_hours_total: v.evicted_hours_total,
        cameras: v
            .cameras
            .iter()
            .map(|c| crate::status::CameraRetention {
                camera_id: c.camera,
                footage_days: c.footage_days,
                required_days: c.required_days,
                compliant: c.compliant,
                reason: c.reason.map(str::to_string),
            })
            .collect(),
    }
}

pub fn cameras(config: &Config) -> Vec<(u32, String)> {
    config
        .cameras
        .iter()
        .map(|c| (c.id, c.name.clone()))
        .collect()
}

impl Daemon {
    /// Feeds one event to the storage machine and runs its actions. Its
    /// alerts are raised at once.
    pub(super) async fn storage_event(&mut self, now: Now, event: Event) {
        for alert in self.storage_feed(now, event) {
            if alert.issue == StorageIssue::DiskFull {
                // Raised by the disk watch, which also pauses the cameras'
                // judgements: one incident, one page.
                tracing::debug!(phase = ?alert.phase, "storage: disk full (raised by the disk watch)");
                continue;
            }
            let event = self.storage_alert(alert);
            self.alert(event).await;
        }
    }

    /// The synchronous part of [`Daemon::storage_event`]: returns the alerts.
    pub(super) fn storage_feed(&mut self, now: Now, event: Event) -> Vec<StorageAlert> {
        let Some(st) = self.storage.as_mut() else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        for action in st.machine.handle(now.wall, event) {
            match action {
                Action::Alert(a) => alerts.push(a),
                other => {
                    if st.db.submit(now.wall, other, st.feedback.clone()).is_err() {
                        tracing::error!("the storage catalog thread has stopped");
                    }
                }
            }
        }
        alerts
    }

    /// A storage alert as the daemon's alert. The full disk is raised by
    /// the disk watch already (one incident, which also pauses the camera
    /// judgements); the storage machine's own is only logged.
    fn storage_alert(&self, a: StorageAlert) -> AlertEvent {
        let issue = match a.issue {
            StorageIssue::DiskFull => Issue::DiskFull,
            StorageIssue::FootageEvicted => Issue::FootageEvicted,
            StorageIssue::FloorUnrestorable => Issue::DiskFloorUnrestorable,
            StorageIssue::RetentionBlockedByBackup => Issue::RetentionBlockedByBackup,
            StorageIssue::RetentionShort => Issue::RetentionShort,
        };
        let camera = a.camera.map(|id| CameraRef {
            id,
            name: self
                .config
                .camera(id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        });
        let mut event = AlertEvent::system(a.at, a.severity, a.phase, a.key, issue, a.summary_pt);
        event.camera = camera;
        event
    }
}
