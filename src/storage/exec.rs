//! The I/O behind the machine's actions: file sizes, the disk's free space
//! and deleting segments. Blocking functions: run them on the storage owner
//! thread (deletion needs the catalog connection) or in `spawn_blocking`,
//! never on the main loop.

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use super::catalog::{self, GoneReason, Purpose, SegmentRow};
use super::Micros;

/// The size of a segment file; 0 when it is gone or unreadable (a segment
/// that does not exist records nothing).
pub fn file_size(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// The recordings filesystem, as `df` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskSample {
    pub total_bytes: u64,
    /// Available to unprivileged writers (`f_bavail`): what MediaMTX can
    /// count on (root may not be able to use the reserve either).
    pub available_bytes: u64,
}

pub fn disk_sample(root: &Path) -> std::io::Result<DiskSample> {
    let st = nix::sys::statvfs::statvfs(root).map_err(std::io::Error::from)?;
    // u64::from: these are 32-bit on some ARM boxes.
    #[allow(clippy::useless_conversion)]
    let (frsize, blocks, bavail) = (
        u64::from(st.fragment_size()),
        u64::from(st.blocks()),
        u64::from(st.blocks_available()),
    );
    Ok(DiskSample {
        total_bytes: blocks * frsize,
        available_bytes: bavail * frsize,
    })
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeleteOutcome {
    pub purpose: Purpose,
    /// Deleted (or already gone) and marked in the catalog.
    pub deleted: Vec<SegmentRow>,
    /// Skipped because a hold now covers them (added since the query).
    pub held: usize,
    /// Could not be deleted: `(path, error)`.
    pub failed: Vec<(String, String)>,
    /// The disk right after, for the machine's next decision.
    pub disk: Option<DiskSample>,
}

/// Deletes the files of `segments` (checking holds once more right before),
/// removes day directories left empty, then marks the rows `evicted` or
/// `deleted` in one transaction. A file already gone counts as deleted.
/// A crash between the unlink and the mark is repaired by the next
/// reconciliation (the directory's mtime changed).
pub fn delete_segments(
    conn: &mut Connection,
    root: &Path,
    purpose: Purpose,
    segments: &[SegmentRow],
    now: Micros,
) -> DeleteOutcome {
    let mut out = DeleteOutcome {
        purpose,
        deleted: Vec::new(),
        held: 0,
        failed: Vec::new(),
        disk: None,
    };
    let mut dirs = std::collections::BTreeSet::new();
    for s in segments {
        match catalog::is_held(conn, s.camera, s.start, s.end) {
            Ok(false) => {}
            Ok(true) => {
                out.held += 1;
                continue;
            }
            Err(e) => {
                out.failed.push((s.path.clone(), e.to_string()));
                continue;
            }
        }
        let file = root.join(&s.path);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                out.failed.push((s.path.clone(), e.to_string()));
                continue;
            }
        }
        if let Some(d) = file.parent() {
            dirs.insert(d.to_path_buf());
        }
        out.deleted.push(s.clone());
    }
    for d in dirs {
        // Fails (and is meant to) while the directory still has files.
        let _ = std::fs::remove_dir(&d);
    }
    let reason = match purpose {
        Purpose::Retention => GoneReason::Retention,
        Purpose::Eviction => GoneReason::Eviction,
    };
    let keys: Vec<(u32, Micros)> = out.deleted.iter().map(|s| (s.camera, s.start)).collect();
    if let Err(e) = catalog::mark_deleted(conn, &keys, reason, now) {
        tracing::error!(error = %e, "cannot mark deleted segments in the catalog");
    }
    out.disk = disk_sample(root).ok();
    out
}

/// Runs one machine action that needs the catalog or the disk, and returns
/// the event to feed back to the machine, if any. `Action::Alert` is the
/// daemon's (it returns `None` here). This is the whole executor: the
/// daemon calls it on the storage owner thread for every action but alerts.
pub fn execute(
    conn: &mut Connection,
    root: &Path,
    tz: chrono_tz::Tz,
    now: Micros,
    action: &super::machine::Action,
) -> Result<Option<super::machine::Event>, rusqlite::Error> {
    use super::machine::{Action, Event};
    Ok(match action {
        Action::Catalog(ops) => {
            catalog::apply(conn, ops)?;
            None
        }
        Action::Reconcile { session_start } => {
            if *session_start {
                catalog::start_session(conn, now)?;
            }
            Some(Event::Reconciled(catalog::reconcile(conn, root, tz, now)?))
        }
        Action::Summarize => Some(Event::Summary(catalog::summary(conn, now)?)),
        Action::SampleDisk => disk_sample(root).ok().map(Event::Disk),
        Action::FindCandidates(q) => Some(Event::Candidates(catalog::candidates(conn, q)?)),
        Action::Delete { purpose, segments } => Some(Event::Deleted(delete_segments(
            conn, root, *purpose, segments, now,
        ))),
        Action::Maintain { purge_before } => {
            catalog::maintain(conn, root, *purge_before, 10_000)?;
            None
        }
        Action::Alert(_) => None,
    })
}
