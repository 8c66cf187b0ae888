//! The recordings watcher: inotify on the recordings tree.
//!
//! MediaMTX writes `<root>/cam_<id>/<YYYY-MM-DD>/<HH-MM-SS-micros>.mp4` and
//! appends a part about every second (docs/mediamtx.md §0.13), so every write is an
//! `IN_MODIFY` on the current segment: the freshest possible signal that a
//! camera records, with no directory walk. New per-camera and per-day
//! directories are watched as they appear (and scanned once, for what was
//! created before the watch). A full rescan happens only at start, after an
//! inotify queue overflow, and when the recordings root itself was deleted
//! (`rm -rf` of the tree: MediaMTX re-creates it at its next segment, and
//! the watcher re-arms itself as soon as the root exists again).
//!
//! Only bytes count: an event reports [`RecEvent::Data`] only when the file
//! is larger than it was (a writer on a full disk still creates empty
//! segment files and closes them; that is not recording).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecEvent {
    /// The segment file was created or grew.
    Data { camera: u32, file: PathBuf },
    /// The segment file was closed after writing (finalized).
    Closed { camera: u32, file: PathBuf },
    /// Events were lost (the inotify queue overflowed, or the root was gone
    /// until it was re-created); the tree was rescanned. The gap since a
    /// camera's last event says nothing about its cadence.
    Missed,
}

#[derive(Debug, Clone)]
enum Dir {
    Root,
    Camera(u32),
    Day(u32),
}

struct Watches {
    inotify_watches: inotify::Watches,
    by_wd: HashMap<WatchDescriptor, (Dir, PathBuf)>,
    /// The size last seen of each segment being written.
    sizes: HashMap<PathBuf, u64>,
}

const ROOT_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR);
const DAY_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_TO);

fn camera_of(name: &str) -> Option<u32> {
    crate::config::camera_of_path(name)
}

impl Watches {
    fn root_watched(&self) -> bool {
        self.by_wd.values().any(|(d, _)| matches!(d, Dir::Root))
    }

    /// Whether `file` has more bytes than when last seen (and remembers
    /// its size). A file that cannot be read has not grown.
    fn grew(&mut self, file: &Path) -> bool {
        let Ok(size) = std::fs::metadata(file).map(|m| m.len()) else {
            return false;
        };
        let before = self.sizes.insert(file.to_path_buf(), size).unwrap_or(0);
        size > before
    }

    fn add(&mut self, dir: Dir, path: &Path) {
        let mask = match dir {
            Dir::Root | Dir::Camera(_) => ROOT_MASK,
            Dir::Day(_) => DAY_MASK,
        };
        match self.inotify_watches.add(path, mask) {
            Ok(wd) => {
                self.by_wd.insert(wd, (dir, path.to_path_buf()));
            }
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot watch directory"),
        }
    }

    /// Watches `path` and everything below it that matters. The newest
    /// segment of every day directory found is added to `found`: at run time
    /// it was written just before its directory got a watch.
    fn scan(&mut self, dir: Dir, path: &Path, found: &mut Vec<RecEvent>) {
        self.add(dir.clone(), path);
        if let Dir::Day(id) = dir {
            if let Some(file) = newest_file(path) {
                if self.grew(&file) {
                    found.push(RecEvent::Data { camera: id, file });
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            match dir {
                Dir::Root => {
                    if let Some(id) = camera_of(&name) {
                        self.scan(Dir::Camera(id), &entry.path(), found);
                    }
                }
                Dir::Camera(id) => self.scan(Dir::Day(id), &entry.path(), found),
                Dir::Day(_) => {}
            }
        }
    }
}

/// Watches `root` (created if missing) and sends [`RecEvent`]s until the
/// receiver is dropped.
pub fn spawn(
    root: &Path,
    tx: mpsc::Sender<RecEvent>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    std::fs::create_dir_all(root)?;
    let inotify = Inotify::init()?;
    let mut watches = Watches {
        inotify_watches: inotify.watches(),
        by_wd: HashMap::new(),
        sizes: HashMap::new(),
    };
    // Old segments found at start say nothing about the present.
    watches.scan(Dir::Root, root, &mut Vec::new());
    let root = root.to_path_buf();
    let mut stream = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
    Ok(tokio::spawn(async move {
        // While the root is gone, look for it again every second.
        let mut rearm = tokio::time::interval(std::time::Duration::from_secs(1));
        rearm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "inotify read failed");
                        break;
                    }
                    None => break,
                },
                _ = rearm.tick(), if !watches.root_watched() => {
                    if root.is_dir() {
                        tracing::warn!(path = %root.display(), "the recordings root exists again; watching it");
                        let mut found = vec![RecEvent::Missed];
                        watches.sizes.clear();
                        watches.scan(Dir::Root, &root, &mut found);
                        for ev in found {
                            if tx.send(ev).await.is_err() {
                                return;
                            }
                        }
                    }
                    continue;
                }
            };
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                tracing::warn!("inotify queue overflow; rescanning the recordings tree");
                watches.by_wd.clear();
                watches.scan(Dir::Root, &root, &mut Vec::new());
                if tx.send(RecEvent::Missed).await.is_err() {
                    break;
                }
                continue;
            }
            if event.mask.contains(EventMask::IGNORED) {
                if let Some((Dir::Root, path)) = watches.by_wd.remove(&event.wd) {
                    tracing::error!(path = %path.display(), "the recordings root was deleted or moved; re-arming when it exists again");
                }
                continue;
            }
            let Some((dir, dir_path)) = watches.by_wd.get(&event.wd).cloned() else {
                continue;
            };
            let Some(name) = event.name.map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let path = dir_path.join(&name);
            let is_dir = event.mask.contains(EventMask::ISDIR);
            let mut out = Vec::new();
            match dir {
                Dir::Root if is_dir => {
                    if let Some(id) = camera_of(&name) {
                        watches.scan(Dir::Camera(id), &path, &mut out);
                    }
                }
                Dir::Camera(id) if is_dir => watches.scan(Dir::Day(id), &path, &mut out),
                Dir::Day(id) if !is_dir && name.ends_with(".mp4") => {
                    if event.mask.contains(EventMask::CLOSE_WRITE) {
                        // The last bytes may come with the close.
                        if watches.grew(&path) {
                            out.push(RecEvent::Data {
                                camera: id,
                                file: path.clone(),
                            });
                        }
                        watches.sizes.remove(&path);
                        out.push(RecEvent::Closed {
                            camera: id,
                            file: path,
                        });
                    } else if watches.grew(&path) {
                        out.push(RecEvent::Data {
                            camera: id,
                            file: path,
                        });
                    }
                }
                _ => {}
            }
            for ev in out {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    }))
}

fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".mp4"))
        .max_by_key(|e| e.file_name())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    async fn next(rx: &mut mpsc::Receiver<RecEvent>) -> RecEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("watcher alive")
    }

    #[tokio::test]
    async fn sees_new_cameras_days_writes_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let (tx, mut rx) = mpsc::channel(64);
        let _h = spawn(&root, tx).unwrap();
        // MediaMTX creates the directories (0755) and then the file.
        let day = root.join("cam_7/2026-11-25");
        std::fs::create_dir_all(&day).unwrap();
        let file = day.join("10-00-00-000001.mp4");
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(b"ftyp").unwrap();
        // The day directory may be watched after the file appeared: either
        // way the first event names the file.
        let first = next(&mut rx).await;
        assert_eq!(
            first,
            RecEvent::Data {
                camera: 7,
                file: file.clone()
            }
        );
        f.write_all(b"part").unwrap();
        assert_eq!(
            next(&mut rx).await,
            RecEvent::Data {
                camera: 7,
                file: file.clone()
            }
        );
        drop(f);
        loop {
            match next(&mut rx).await {
                RecEvent::Closed { camera: 7, file: p } => {
                    assert_eq!(p, file);
                    break;
                }
                RecEvent::Data { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn existing_trees_are_watched_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let day = root.join("cam_3/2026-11-24");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(root.join("not-a-camera/x")).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = spawn(&root, tx).unwrap();
        let file = day.join("23-59-00-000001.mp4");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            next(&mut rx).await,
            RecEvent::Data {
                camera: 3,
                file: file.clone()
            }
        );
        // Files elsewhere are ignored: the next events after this file's own
        // are about the next segment.
        std::fs::write(root.join("not-a-camera/x/a.mp4"), b"x").unwrap();
        std::fs::write(day.join("notes.txt"), b"x").unwrap();
        let other = day.join("23-59-01-000001.mp4");
        std::fs::write(&other, b"x").unwrap();
        loop {
            match next(&mut rx).await {
                RecEvent::Data { camera: 3, file: p } | RecEvent::Closed { camera: 3, file: p }
                    if p == file => {}
                ev => {
                    assert_eq!(
                        ev,
                        RecEvent::Data {
                            camera: 3,
                            file: other
                        }
                    );
                    break;
                }
            }
        }
    }

    /// Regression (disk 100 % full): the writer left a 0-byte segment every
    /// few seconds and each creation counted as recording.
    #[tokio::test]
    async fn empty_segments_on_a_full_disk_are_not_recording() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("cam_2/2026-11-25");
        std::fs::create_dir_all(&day).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = spawn(dir.path(), tx).unwrap();
        for i in 0..3 {
            let empty = day.join(format!("10-00-0{i}-000001.mp4"));
            drop(std::fs::File::create(&empty).unwrap());
            assert_eq!(
                next(&mut rx).await,
                RecEvent::Closed {
                    camera: 2,
                    file: empty
                },
                "an empty file is closed, never data"
            );
        }
        let real = day.join("10-00-09-000001.mp4");
        std::fs::write(&real, b"moof").unwrap();
        assert_eq!(
            next(&mut rx).await,
            RecEvent::Data {
                camera: 2,
                file: real
            }
        );
    }

    /// Regression (`rm -rf` of the recordings root while running): the
    /// watches were gone for good and every camera looked stopped.
    #[tokio::test]
    async fn recordings_root_deleted_while_running_is_watched_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let day = root.join("cam_4/2026-11-25");
        std::fs::create_dir_all(&day).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _h = spawn(&root, tx).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        // MediaMTX re-creates the tree at its next segment.
        std::fs::create_dir_all(&day).unwrap();
        let file = day.join("10-01-00-000001.mp4");
        std::fs::write(&file, b"moof").unwrap();
        // First: the events missed while the root was gone (what was
        // written meanwhile comes from the rescan).
        assert_eq!(next(&mut rx).await, RecEvent::Missed);
        let ev = next(&mut rx).await;
        assert_eq!(
            ev,
            RecEvent::Data {
                camera: 4,
                file: file.clone()
            }
        );
        // And it keeps being watched: the next write is seen too.
        let more = day.join("10-02-00-000001.mp4");
        std::fs::write(&more, b"moof").unwrap();
        loop {
            match next(&mut rx).await {
                RecEvent::Data { file: f, .. } if f == more => break,
                RecEvent::Data { .. } | RecEvent::Closed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
