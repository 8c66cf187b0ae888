//! The owner thread of the catalog connection (as `alerts/db.rs` is for
//! the alert database): async code sends it closures and awaits the answer,
//! so no task blocks on SQLite or on deleting files, and the connection
//! needs no lock. The machine's actions run here through [`StorageDb::execute`].

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::exec;
use super::machine::{Action, Event};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

#[derive(Debug, thiserror::Error)]
#[error("the storage thread has stopped")]
pub struct Stopped;

#[derive(Clone)]
pub struct StorageDb {
    tx: std_mpsc::Sender<Job>,
    root: PathBuf,
    tz: chrono_tz::Tz,
}

impl StorageDb {
    /// Moves `conn` to its own thread; it ends with the last clone.
    pub fn start(mut conn: Connection, root: PathBuf, tz: chrono_tz::Tz) -> StorageDb {
        let (tx, rx) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("storage-db".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .expect("spawning the storage-db thread");
        StorageDb { tx, root, tz }
    }

    /// Runs `f` on the owner thread.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Queues one machine action (not `Alert`) on the owner thread at once,
    /// in order with the ones queued before (catalog writes must not be
    /// reordered), and sends the event to feed back, if any, to `feedback`.
    /// This is what the main loop calls: it never waits.
    pub fn submit(
        &self,
        now: DateTime<Utc>,
        action: Action,
        feedback: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<(), Stopped> {
        let (root, tz) = (self.root.clone(), self.tz);
        let now = super::to_micros(now);
        self.tx
            .send(Box::new(move |conn| {
                match exec::execute(conn, &root, tz, now, &action) {
                    Ok(Some(ev)) => {
                        let _ = feedback.send(ev);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "storage catalog action failed"),
                }
            }))
            .map_err(|_| Stopped)
    }

    /// Runs one machine action (not `Alert`) and returns the event to feed
    /// back. A catalog error is logged and gives no event; the machine
    /// retries on its own schedule.
    pub async fn execute(&self, now: DateTime<Utc>, action: Action) -> Option<Event> {
        let (root, tz) = (self.root.clone(), self.tz);
        let now = super::to_micros(now);
        match self
            .call(move |conn| exec::execute(conn, &root, tz, now, &action))
            .await
        {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "storage catalog action failed");
                None
            }
            Err(Stopped) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::catalog;
    use crate::storage::machine::{Machine, Settings};

    #[tokio::test]
    async fn the_machine_runs_against_the_owner_thread() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rec");
        std::fs::create_dir_all(root.join("cam_1/2026-11-25")).unwrap();
        std::fs::write(root.join("cam_1/2026-11-25/10-00-00-000000.mp4"), b"x").unwrap();
        let tz: chrono_tz::Tz = "UTC".parse().unwrap();
        let conn = catalog::open(&dir.path().join("storage.db")).unwrap();
        let db = StorageDb::start(conn, root.clone(), tz);
        let mut m = Machine::new(root, tz, Settings::default());
        let now = Utc::now();
        let mut queue = std::collections::VecDeque::from([Event::Started]);
        let mut reconciled = None;
        while let Some(ev) = queue.pop_front() {
            if let Event::Reconciled(r) = &ev {
                reconciled = Some(r.clone());
            }
            for a in m.handle(now, ev) {
                if !matches!(a, Action::Alert(_)) {
                    queue.extend(db.execute(now, a).await);
                }
            }
        }
        assert_eq!(reconciled.unwrap().added, 1);
        // The main loop's way: queued in order, results on a channel.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        db.submit(now, Action::Summarize, tx.clone()).unwrap();
        db.submit(
            now,
            Action::Reconcile {
                session_start: false,
            },
            tx,
        )
        .unwrap();
        assert!(matches!(rx.recv().await, Some(Event::Summary(_))));
        assert!(matches!(rx.recv().await, Some(Event::Reconciled(_))));
        let n = db
            .call(|c| catalog::summary(c, 0).unwrap().cameras.len())
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}
