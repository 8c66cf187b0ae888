//! The owner thread of the SQLite connection. Async code sends it closures
//! over a channel and awaits the result on a oneshot, so no task ever blocks
//! on SQLite and the connection needs no lock.

use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use super::{AlertsError, Store};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

#[derive(Clone)]
pub(crate) struct Db {
    tx: std_mpsc::Sender<Job>,
}

impl Db {
    /// Moves `store` to its own thread. The thread ends (closing the
    /// connection) when every [`Db`] clone is dropped, i.e. with the last
    /// [`super::AlertsHandle`].
    pub fn start(mut store: Store) -> Db {
        let (tx, rx) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("alerts-db".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut store);
                }
            })
            .expect("spawning the alerts-db thread");
        Db { tx }
    }

    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, AlertsError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |store| {
                let _ = tx.send(f(store));
            }))
            .map_err(|_| AlertsError::Stopped)?;
        rx.await.map_err(|_| AlertsError::Stopped)
    }
}
