use super::*;
use crate::storage::{segment_rel_path, SECOND};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

const M: Micros = 60 * SECOND;

fn tz() -> chrono_tz::Tz {
    "America/Sao_Paulo".parse().unwrap()
}

/// 2026-11-19T03:00:00Z = midnight in São Paulo.
const T0: Micros = 1_795_057_200 * SECOND;

fn seg(camera: u32, start: Micros) -> SegmentName {
    SegmentName {
        camera,
        start,
        rel: segment_rel_path(camera, start, tz()),
    }
}

fn write_seg(root: &Path, camera: u32, start: Micros, bytes: usize) -> PathBuf {
    let p = root.join(segment_rel_path(camera, start, tz()));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, vec![7u8; bytes]).unwrap();
    p
}

/// Gives every directory under the root an old mtime, so the next change
/// is visible whatever the clock's granularity.
fn age_dirs(root: &Path) {
    let old = TimeSpec::new(1_700_000_000, 0);
    for cam in std::fs::read_dir(root).unwrap().flatten() {
        for day in std::fs::read_dir(cam.path()).unwrap().flatten() {
            utimensat(None, &day.path(), &old, &old, UtimensatFlags::FollowSymlink).unwrap();
        }
    }
}

fn on_disk(conn: &Connection, camera: u32) -> Vec<(Micros, SegState)> {
    segments(conn, camera, 0, Micros::MAX / 2)
        .unwrap()
        .into_iter()
        .map(|r| (r.start, r.state))
        .collect()
}

#[test]
fn reconcile_finds_segments_added_and_removed_while_the_daemon_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open(&dir.path().join("storage.db")).unwrap();
    let root = &dir.path().join("rec");
    // Camera 1: five days, three segments a day; camera 2: one day.
    for d in 0..5 {
        for i in 0..3 {
            write_seg(root, 1, T0 + d * DAY + i * M, 100);
        }
    }
    write_seg(root, 2, T0, 50);
    write_seg(root, 2, T0 + M, 0);
    std::fs::create_dir_all(root.join("not_a_camera/2026-11-20")).unwrap();
    age_dirs(root);
    let r = reconcile(&mut conn, root, tz(), T0 + 5 * DAY).unwrap();
    assert_eq!((r.dirs_total, r.dirs_listed), (6, 6));
    assert_eq!((r.added, r.removed), (17, 0));
    // The newest segment of each camera stays open (recording).
    let open: Vec<(u32, Micros)> = r.open.iter().map(|s| (s.camera, s.start)).collect();
    assert_eq!(open, vec![(1, T0 + 4 * DAY + 2 * M), (2, T0 + M)]);
    let s = summary(&conn, T0 + 5 * DAY).unwrap();
    assert_eq!(s.cameras[0].segments_on_disk, 15);
    assert_eq!(s.cameras[0].bytes_on_disk, 1500);
    assert_eq!(s.cameras[0].oldest_on_disk, Some(T0));

    // Nothing changed: only the two newest days of each camera are listed.
    let r = reconcile(&mut conn, root, tz(), T0 + 5 * DAY).unwrap();
    assert_eq!((r.dirs_listed, r.added, r.removed, r.updated), (3, 0, 0, 0));

    // While the daemon is down: a file of day 0 is removed, one is added to
    // day 1, day 2 disappears, camera 3 appears, camera 1 goes on recording.
    age_dirs(root);
    let r = reconcile(&mut conn, root, tz(), T0 + 5 * DAY).unwrap();
    assert_eq!(r.dirs_listed, 3);
    std::fs::remove_file(root.join(segment_rel_path(1, T0 + M, tz()))).unwrap();
    write_seg(root, 1, T0 + DAY + 30 * M, 100);
    std::fs::remove_dir_all(
        root.join(segment_rel_path(1, T0 + 2 * DAY, tz()))
            .parent()
            .unwrap(),
    )
    .unwrap();
    write_seg(root, 3, T0 + 4 * DAY, 10);
    write_seg(root, 1, T0 + 4 * DAY + 3 * M, 100);
    let r = reconcile(&mut conn, root, tz(), T0 + 5 * DAY).unwrap();
    // Listed: day 0 and day 1 (mtime changed), days 3 and 4 (newest),
    // camera 2's day and camera 3's day.
    assert_eq!(r.dirs_listed, 6);
    assert_eq!(r.added, 3);
    assert_eq!(r.removed, 4);
    let states = on_disk(&conn, 1);
    assert!(states.contains(&(T0 + M, SegState::Deleted)));
    assert!(states.contains(&(T0 + 2 * DAY, SegState::Deleted)));
    assert!(states.contains(&(T0 + DAY + 30 * M, SegState::Complete)));
    // The segment open before is complete now that a later one exists.
    assert!(states.contains(&(T0 + 4 * DAY + 2 * M, SegState::Complete)));
    assert!(states.contains(&(T0 + 4 * DAY + 3 * M, SegState::Recording)));
    let s = summary(&conn, T0 + 5 * DAY).unwrap();
    assert_eq!(s.cameras[0].segments_on_disk, 15 - 4 + 2);
    assert_eq!(s.cameras.len(), 3);
}

#[test]
fn a_segment_grown_while_the_daemon_was_down_gets_its_size_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut conn = open_in_memory().unwrap();
    let s = seg(4, T0);
    apply(
        &mut conn,
        &[CatalogOp::Created {
            seg: s.clone(),
            at: T0,
        }],
    )
    .unwrap();
    write_seg(root, 4, T0, 4000);
    let r = reconcile(&mut conn, root, tz(), T0 + HOUR).unwrap();
    assert_eq!((r.added, r.updated), (0, 1));
    assert_eq!(r.open[0].bytes, 4000);
    assert!(r.open[0].end > T0, "end from the file's mtime");
}

#[test]
fn ops_keep_segments_and_counters_consistent() {
    let mut conn = open_in_memory().unwrap();
    let a = seg(1, T0);
    let b = seg(1, T0 + M);
    apply(
        &mut conn,
        &[
            CatalogOp::Created {
                seg: a.clone(),
                at: T0,
            },
            CatalogOp::Grown {
                seg: a.clone(),
                bytes: 500,
                at: T0 + 30 * SECOND,
            },
            CatalogOp::Complete {
                seg: a.clone(),
                bytes: 900,
                end: T0 + 59 * SECOND,
                reason: CompleteReason::NextSegment,
            },
            CatalogOp::Grown {
                seg: b.clone(),
                bytes: 10,
                at: T0 + M + SECOND,
            },
        ],
    )
    .unwrap();
    let rows = segments(&conn, 1, T0, T0 + HOUR).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].bytes, rows[0].end, rows[0].state),
        (900, T0 + 59 * SECOND, SegState::Complete)
    );
    assert_eq!(rows[1].state, SegState::Recording);
    let reason: String = conn
        .query_row(
            "SELECT complete_reason FROM segments WHERE start_us = ?1",
            [T0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "next_segment");
    mark_deleted(&mut conn, &[(1, T0)], GoneReason::Eviction, T0 + DAY).unwrap();
    // A late event about an evicted segment does not bring it back.
    apply(
        &mut conn,
        &[CatalogOp::Grown {
            seg: a,
            bytes: 1,
            at: T0 + DAY,
        }],
    )
    .unwrap();
    let s = summary(&conn, T0 + M + 2 * SECOND).unwrap();
    let c = &s.cameras[0];
    assert_eq!((c.segments_on_disk, c.bytes_on_disk), (1, 10));
    assert_eq!((c.evicted_segments, c.evicted_bytes), (1, 900));
    assert_eq!(c.last_evicted_at, Some(T0 + DAY));
    assert_eq!(c.first_start, T0);
    assert_eq!(c.bytes_last_hour, 10);
    assert!(s.db_bytes > 0);
}

fn complete(conn: &mut Connection, camera: u32, start: Micros, bytes: u64) {
    apply(
        conn,
        &[CatalogOp::Complete {
            seg: seg(camera, start),
            bytes,
            end: start + M - SECOND,
            reason: CompleteReason::NextSegment,
        }],
    )
    .unwrap();
}

#[test]
fn candidates_skip_held_recording_and_unuploaded_segments() {
    let mut conn = open_in_memory().unwrap();
    for i in 0..10 {
        complete(&mut conn, 1, T0 + i * M, 100);
        complete(&mut conn, 2, T0 + i * M + SECOND, 100);
    }
    apply(
        &mut conn,
        &[CatalogOp::Created {
            seg: seg(1, T0 + 10 * M),
            at: T0 + 10 * M,
        }],
    )
    .unwrap();
    // Camera 1 minutes 2..4 are held.
    crate::storage::holds::add(
        &conn,
        &crate::storage::holds::NewHold {
            camera: 1,
            from: crate::storage::from_micros(T0 + 2 * M + SECOND),
            to: crate::storage::from_micros(T0 + 4 * M),
            reason: "inquérito".into(),
        },
        "op",
        crate::storage::from_micros(T0),
    )
    .unwrap();
    let q = |cutoffs: Vec<(u32, Micros)>, limit| CandidateQuery {
        purpose: Purpose::Retention,
        limit,
        cutoffs,
        backup_enabled: false,
    };
    // Retention: camera 1 up to minute 6, camera 2 up to minute 2.
    let b = candidates(
        &conn,
        &q(vec![(1, T0 + 6 * M), (2, T0 + 2 * M + SECOND)], 100),
    )
    .unwrap();
    let got: Vec<(u32, i64)> = b
        .segments
        .iter()
        .map(|s| (s.camera, (s.start - T0) / M))
        .collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (1, 1), (2, 1), (1, 4), (1, 5)]);
    assert_eq!(b.blocked_by_backup, None);
    // Bounded batches, oldest first across cameras.
    let b = candidates(&conn, &q(vec![(1, T0 + 6 * M), (2, T0 + 2 * M)], 3)).unwrap();
    assert_eq!(b.segments.len(), 3);
    // The segment being written is never a candidate, even far past its time.
    let b = candidates(&conn, &q(vec![(1, T0 + DAY)], 100)).unwrap();
    assert_eq!(b.segments.len(), 10 - 2);
    // Backup on: only uploaded ones, and the rest is reported.
    conn.execute(
        "UPDATE segments SET backup_state = 2 WHERE camera = 1 AND start_us < ?1",
        [T0 + M],
    )
    .unwrap();
    let b = candidates(
        &conn,
        &CandidateQuery {
            backup_enabled: true,
            ..q(vec![(1, T0 + 6 * M)], 100)
        },
    )
    .unwrap();
    assert_eq!(b.segments.len(), 1);
    let blocked = b.blocked_by_backup.unwrap();
    assert_eq!(
        (blocked.segments, blocked.bytes, blocked.oldest),
        (3, 300, Some(T0 + M))
    );
    // Eviction: oldest of any camera, uploaded first when backup is on.
    let ev = |backup_enabled| CandidateQuery {
        purpose: Purpose::Eviction,
        limit: 3,
        cutoffs: Vec::new(),
        backup_enabled,
    };
    let b = candidates(&conn, &ev(false)).unwrap();
    let got: Vec<(u32, i64)> = b
        .segments
        .iter()
        .map(|s| (s.camera, (s.start - T0) / M))
        .collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (1, 1)]);
    conn.execute(
        "UPDATE segments SET backup_state = 2 WHERE camera = 2 AND start_us > ?1",
        [T0 + 9 * M],
    )
    .unwrap();
    let b = candidates(&conn, &ev(true)).unwrap();
    let got: Vec<(u32, i64)> = b
        .segments
        .iter()
        .map(|s| (s.camera, (s.start - T0) / M))
        .collect();
    assert_eq!(got, vec![(1, 0), (2, 9), (2, 0)]);
}

#[test]
fn a_daemon_outage_is_a_cause_and_closes_what_was_open() {
    let mut conn = open_in_memory().unwrap();
    assert_eq!(start_session(&mut conn, T0).unwrap(), None);
    apply(
        &mut conn,
        &[
            CatalogOp::Cause {
                camera: Some(3),
                cause: Cause::CameraDown,
                active: true,
                at: T0 + M,
            },
            // Opening twice keeps one open interval.
            CatalogOp::Cause {
                camera: Some(3),
                cause: Cause::CameraDown,
                active: true,
                at: T0 + 2 * M,
            },
            CatalogOp::Heartbeat { at: T0 + 5 * M },
        ],
    )
    .unwrap();
    assert_eq!(
        start_session(&mut conn, T0 + HOUR).unwrap(),
        Some((T0 + 5 * M, T0 + HOUR))
    );
    let c = causes(&conn, 3, T0, T0 + 2 * HOUR, T0 + 2 * HOUR).unwrap();
    assert_eq!(
        c,
        vec![
            (Cause::CameraDown, T0 + M, T0 + 5 * M),
            (Cause::DaemonDown, T0 + 5 * M, T0 + HOUR)
        ]
    );
}

#[test]
fn maintain_purges_old_history_and_records_directory_mtimes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut conn = open_in_memory().unwrap();
    write_seg(root, 1, T0, 10);
    write_seg(root, 1, T0 + DAY, 10);
    reconcile(&mut conn, root, tz(), T0 + DAY).unwrap();
    mark_deleted(&mut conn, &[(1, T0)], GoneReason::Retention, T0 + DAY).unwrap();
    assert_eq!(maintain(&mut conn, root, T0 + DAY, 100).unwrap(), 0);
    assert_eq!(maintain(&mut conn, root, T0 + DAY + 1, 100).unwrap(), 1);
    assert_eq!(on_disk(&conn, 1), vec![(T0 + DAY, SegState::Recording)]);
    let zero: i64 = conn
        .query_row("SELECT count(*) FROM dirs WHERE mtime_ns = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(zero, 0);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storage.db");
    drop(open(&path).unwrap());
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = open(&path).unwrap_err().to_string();
    assert!(e.contains("schema version 99 is newer"), "{e}");
}
