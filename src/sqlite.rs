//! The owner thread of a SQLite connection (or of anything that wraps one).
//! Async code sends it closures over a channel and awaits the result on a
//! oneshot, so no task ever blocks on SQLite and the connection needs no
//! lock. The alert store uses it; the storage catalog can too.

use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// The owner thread has stopped (its state was dropped at shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database thread has stopped")]
pub struct Stopped;

pub struct Owner<S> {
    tx: std_mpsc::Sender<Job<S>>,
}

impl<S> Clone for Owner<S> {
    fn clone(&self) -> Self {
        Owner {
            tx: self.tx.clone(),
        }
    }
}

impl<S: Send + 'static> Owner<S> {
    /// Moves `state` to its own thread, named `name`. The thread ends (and
    /// drops the state, closing the connection) when every clone of the
    /// returned [`Owner`] is dropped.
    pub fn start(name: &str, mut state: S) -> Owner<S> {
        let (tx, rx) = std_mpsc::channel::<Job<S>>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut state);
                }
            })
            .expect("spawning a database thread");
        Owner { tx }
    }

    /// Runs `f` on the owner thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |state| {
                let _ = tx.send(f(state));
            }))
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_in_order_on_one_thread_and_stop_with_the_last_owner() {
        let owner = Owner::start("test-db", Vec::<u32>::new());
        for i in 0..5 {
            owner.call(move |v| v.push(i)).await.unwrap();
        }
        let name = owner
            .call(|_| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("test-db"));
        assert_eq!(
            owner.call(|v| v.clone()).await.unwrap(),
            vec![0, 1, 2, 3, 4]
        );
    }
}
