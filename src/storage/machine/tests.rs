use super::*;
use crate::storage::catalog::{self, CameraSummary, SegState};
use crate::storage::{exec, holds, segment_rel_path};
use rusqlite::Connection;
use std::collections::VecDeque;

const M: Micros = 60 * SECOND;
/// Midnight in São Paulo (2026-11-19T03:00:00Z).
const T0: Micros = 1_795_057_200 * SECOND;

fn tz() -> chrono_tz::Tz {
    "America/Sao_Paulo".parse().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from("/rec")
}

fn file(camera: u32, start: Micros) -> PathBuf {
    root().join(segment_rel_path(camera, start, tz()))
}

fn ops(actions: &[Action]) -> Vec<CatalogOp> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Catalog(o) => Some(o.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn completes(actions: &[Action]) -> Vec<(Micros, CompleteReason)> {
    ops(actions)
        .into_iter()
        .filter_map(|o| match o {
            CatalogOp::Complete { seg, reason, .. } => Some((seg.start, reason)),
            _ => None,
        })
        .collect()
}

fn alerts(actions: &[Action]) -> Vec<StorageAlert> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Alert(x) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

fn started(settings: Settings) -> Machine {
    let mut m = Machine::new(root(), tz(), settings);
    m.handle(from_micros(T0), Event::Started);
    m.handle(
        from_micros(T0),
        Event::Reconciled(ReconcileReport::default()),
    );
    m
}

fn data(m: &mut Machine, now: Micros, camera: u32, start: Micros, bytes: u64) -> Vec<Action> {
    m.handle(
        from_micros(now),
        Event::SegmentData {
            camera,
            file: file(camera, start),
            bytes,
        },
    )
}

fn closed(m: &mut Machine, now: Micros, camera: u32, start: Micros, bytes: u64) -> Vec<Action> {
    m.handle(
        from_micros(now),
        Event::SegmentClosed {
            camera,
            file: file(camera, start),
            bytes,
        },
    )
}

#[test]
fn a_segment_is_complete_when_the_next_one_has_bytes_or_after_a_clean_close() {
    let mut m = started(Settings::default());
    let a = data(&mut m, T0, 1, T0, 0);
    assert!(matches!(ops(&a)[..], [CatalogOp::Created { .. }]), "{a:?}");
    // Bytes are written every second, but stored every 10 s.
    let a = data(&mut m, T0 + SECOND, 1, T0, 100);
    assert!(matches!(ops(&a)[..], [CatalogOp::Grown { bytes: 100, .. }]));
    let a = data(&mut m, T0 + 2 * SECOND, 1, T0, 200);
    assert!(ops(&a).is_empty());
    let a = data(&mut m, T0 + 12 * SECOND, 1, T0, 300);
    assert!(matches!(ops(&a)[..], [CatalogOp::Grown { bytes: 300, .. }]));
    // Rotation: the close alone does not complete it...
    let a = closed(&mut m, T0 + M, 1, T0, 400);
    assert!(completes(&a).is_empty());
    // ...an empty new file does not either (it records nothing)...
    let a = data(&mut m, T0 + M, 1, T0 + M, 0);
    assert!(completes(&a).is_empty());
    // ...bytes in the next segment do.
    let a = data(&mut m, T0 + M + SECOND, 1, T0 + M, 10);
    assert_eq!(completes(&a), vec![(T0, CompleteReason::NextSegment)]);
    // The camera disconnects: the close settles after 10 s.
    closed(&mut m, T0 + 2 * M, 1, T0 + M, 500);
    let a = m.handle(from_micros(T0 + 2 * M + 5 * SECOND), Event::Tick);
    assert!(completes(&a).is_empty());
    let a = m.handle(from_micros(T0 + 2 * M + 10 * SECOND), Event::Tick);
    assert_eq!(completes(&a), vec![(T0 + M, CompleteReason::ClosedClean)]);
    // A file that never got bytes is complete as empty.
    data(&mut m, T0 + 3 * M, 1, T0 + 3 * M, 0);
    closed(&mut m, T0 + 3 * M + SECOND, 1, T0 + 3 * M, 0);
    let a = m.handle(from_micros(T0 + 4 * M), Event::Tick);
    assert_eq!(completes(&a), vec![(T0 + 3 * M, CompleteReason::Empty)]);
}

#[test]
fn a_full_disk_is_one_incident_for_all_cameras_and_cut_segments_are_not_clean() {
    let mut m = started(Settings::default());
    for cam in 1..=3 {
        data(&mut m, T0, cam, T0, 1000);
    }
    // ENOSPC: each writer closes its cut-off file, then leaves empty ones.
    let mut all = Vec::new();
    for cam in 1..=3 {
        all.extend(closed(&mut m, T0 + 20 * SECOND, cam, T0, 1000));
    }
    for cam in 1..=3 {
        let t = T0 + 22 * SECOND + i64::from(cam) * 100_000;
        all.extend(data(&mut m, t, cam, T0 + 22 * SECOND, 0));
        all.extend(closed(&mut m, t, cam, T0 + 22 * SECOND, 0));
    }
    let fired = alerts(&all);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].key, "disk:full");
    assert_eq!(fired[0].severity, Severity::Critical);
    assert!(fired[0].summary_pt.contains("disco cheio"));
    let causes: Vec<CatalogOp> = ops(&all)
        .into_iter()
        .filter(|o| matches!(o, CatalogOp::Cause { .. }))
        .collect();
    assert_eq!(
        causes,
        vec![CatalogOp::Cause {
            camera: None,
            cause: Cause::DiskFull,
            active: true,
            at: T0 + 22 * SECOND + 100_000,
        }]
    );
    assert!(all.contains(&Action::SampleDisk));
    assert!(m.view(from_micros(T0 + 23 * SECOND)).disk_full);
    // The cut-off segments settle as cut short, never as clean.
    let a = m.handle(from_micros(T0 + 40 * SECOND), Event::Tick);
    let c = completes(&a);
    assert_eq!(
        c.iter().filter(|x| x.1 == CompleteReason::CutShort).count(),
        3
    );
    assert_eq!(c.iter().filter(|x| x.1 == CompleteReason::Empty).count(), 3);
    // Space is back and a segment grows: resolved, once.
    m.handle(
        from_micros(T0 + 50 * SECOND),
        Event::Disk(DiskSample {
            total_bytes: 1 << 40,
            available_bytes: 1 << 39,
        }),
    );
    let a = data(&mut m, T0 + 60 * SECOND, 2, T0 + 60 * SECOND, 5000);
    let r = alerts(&a);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].key.as_str(), r[0].phase),
        ("disk:full", Phase::Resolved)
    );
    assert!(ops(&a).contains(&CatalogOp::Cause {
        camera: None,
        cause: Cause::DiskFull,
        active: false,
        at: T0 + 60 * SECOND
    }));
    let a = data(&mut m, T0 + 61 * SECOND, 3, T0 + 61 * SECOND, 5000);
    assert!(alerts(&a).is_empty());
}

#[test]
fn one_camera_with_empty_segments_among_recording_cameras_is_not_a_full_disk() {
    let mut m = started(Settings::default());
    data(&mut m, T0, 1, T0, 1000);
    data(&mut m, T0, 2, T0, 1000);
    data(&mut m, T0 + SECOND, 1, T0 + SECOND, 0);
    let a = closed(&mut m, T0 + 2 * SECOND, 1, T0 + SECOND, 0);
    assert!(alerts(&a).is_empty());
}

#[test]
fn floor_is_the_larger_of_the_percentage_and_an_hour_of_writing() {
    let mut m = started(Settings::default());
    assert_eq!(m.floor(1000 * 1000), 50_000);
    m.handle(
        from_micros(T0),
        Event::Summary(Summary {
            at: T0,
            cameras: vec![summary_cam(1, T0, Some(T0), 3600 * 100)],
            db_bytes: 0,
        }),
    );
    assert_eq!(m.floor(1000 * 1000), 360_000);
    m.handle(
        from_micros(T0),
        Event::Settings(Settings {
            min_free_bytes: Some(7),
            ..Settings::default()
        }),
    );
    assert_eq!(m.floor(1000 * 1000), 7);
}

fn summary_cam(
    camera: u32,
    first: Micros,
    oldest: Option<Micros>,
    last_hour: u64,
) -> CameraSummary {
    CameraSummary {
        camera,
        first_start: first,
        oldest_on_disk: oldest,
        segments_on_disk: 1,
        bytes_on_disk: 1,
        bytes_last_hour: last_hour,
        evicted_segments: 0,
        evicted_bytes: 0,
        evicted_hours: 0.0,
        last_evicted_at: None,
    }
}

#[test]
fn compliance_warns_when_a_camera_has_less_footage_than_its_retention() {
    let mut m = started(Settings::default());
    m.handle(
        from_micros(T0),
        Event::Cameras(vec![(5, "Portão".into()), (6, "Nova".into())]),
    );
    let now = T0 + 200 * DAY;
    let mut five = summary_cam(5, T0, Some(now - 61 * DAY - HOUR), 3600);
    five.last_evicted_at = Some(now - 2 * DAY);
    // Camera 6 is only 10 days old: not short.
    let six = summary_cam(6, now - 10 * DAY, Some(now - 10 * DAY), 3600);
    m.handle(
        from_micros(now),
        Event::Disk(DiskSample {
            total_bytes: 1 << 40,
            available_bytes: 1 << 39,
        }),
    );
    let a = m.handle(
        from_micros(now),
        Event::Summary(Summary {
            at: now,
            cameras: vec![five.clone(), six],
            db_bytes: 0,
        }),
    );
    let w = alerts(&a);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "camera:5:retention_short");
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(
        w[0].summary_pt
            .starts_with("a câmera 5 tem 61 dias gravados; a retenção exigida é de 90 ("),
        "{}",
        w[0].summary_pt
    );
    assert!(
        w[0].summary_pt.contains("falta de espaço"),
        "{}",
        w[0].summary_pt
    );
    let v = m.view(from_micros(now));
    assert_eq!(v.cameras[0].reason, Some("evictions"));
    assert!(v.cameras[1].compliant);
    // Repeated summaries do not repeat it; compliance again resolves it.
    let a = m.handle(
        from_micros(now),
        Event::Summary(Summary {
            at: now,
            cameras: vec![five.clone()],
            db_bytes: 0,
        }),
    );
    assert!(alerts(&a).is_empty());
    five.oldest_on_disk = Some(now - 90 * DAY);
    let a = m.handle(
        from_micros(now),
        Event::Summary(Summary {
            at: now,
            cameras: vec![five],
            db_bytes: 0,
        }),
    );
    assert_eq!(alerts(&a)[0].phase, Phase::Resolved);
}

#[test]
fn forecast_from_the_write_rate() {
    let mut m = started(Settings {
        retention_days: 30,
        min_free_bytes: Some(0),
        ..Settings::default()
    });
    m.handle(from_micros(T0), Event::Cameras(vec![(1, "a".into())]));
    // 1 MB/s, disk of 2 TB with 1 TB footage and 0.5 TB free: about 17.4
    // days of footage, short of 30; 5.8 days until the floor.
    let mut c = summary_cam(1, T0, Some(T0), 3600 * 1_000_000);
    c.bytes_on_disk = 1_000_000_000_000;
    m.handle(
        from_micros(T0),
        Event::Summary(Summary {
            at: T0,
            cameras: vec![c],
            db_bytes: 0,
        }),
    );
    m.handle(
        from_micros(T0),
        Event::Disk(DiskSample {
            total_bytes: 2_000_000_000_000,
            available_bytes: 500_000_000_000,
        }),
    );
    let v = m.view(from_micros(T0));
    assert!((v.capacity_days.unwrap() - 17.36).abs() < 0.01, "{v:?}");
    assert!((v.days_until_full.unwrap() - 5.79).abs() < 0.01, "{v:?}");
    assert_eq!(v.write_bytes_per_second, 1_000_000.0);
}

/// Runs the machine against a real catalog and a real recordings tree,
/// executing its actions as the daemon would, with a fake clock and (when
/// set) a fake disk whose free space grows by what is deleted.
struct Harness {
    m: Machine,
    conn: Connection,
    dir: tempfile::TempDir,
    now: Micros,
    disk: Option<DiskSample>,
    alerts: Vec<StorageAlert>,
    deletes: usize,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let conn = catalog::open(&dir.path().join("storage.db")).unwrap();
        let m = Machine::new(dir.path().join("rec"), tz(), settings);
        Harness {
            m,
            conn,
            dir,
            now: T0,
            disk: None,
            alerts: Vec::new(),
            deletes: 0,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("rec")
    }

    /// A segment file of `dur`, its mtime at its end (as MediaMTX leaves it).
    fn write(&self, camera: u32, start: Micros, dur: Micros, bytes: usize) {
        use nix::sys::stat::{utimensat, UtimensatFlags};
        use nix::sys::time::TimeSpec;
        let p = self.root().join(segment_rel_path(camera, start, tz()));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![1u8; bytes]).unwrap();
        let end = start + dur - SECOND;
        let t = TimeSpec::new(end / SECOND, (end % SECOND) * 1000);
        utimensat(None, &p, &t, &t, UtimensatFlags::FollowSymlink).unwrap();
    }

    fn exists(&self, camera: u32, start: Micros) -> bool {
        self.root()
            .join(segment_rel_path(camera, start, tz()))
            .exists()
    }

    fn feed(&mut self, ev: Event) {
        let root = self.root();
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            for a in self.m.handle(from_micros(self.now), ev) {
                match &a {
                    Action::Alert(x) => self.alerts.push(x.clone()),
                    Action::SampleDisk => {
                        if let Some(d) = self.disk {
                            queue.push_back(Event::Disk(d));
                        }
                    }
                    Action::Delete { .. } => {
                        self.deletes += 1;
                        let Some(Event::Deleted(mut o)) =
                            exec::execute(&mut self.conn, &root, tz(), self.now, &a).unwrap()
                        else {
                            panic!("no outcome")
                        };
                        if let Some(d) = &mut self.disk {
                            d.available_bytes += o.deleted.iter().map(|s| s.bytes).sum::<u64>();
                            o.disk = Some(*d);
                        }
                        queue.push_back(Event::Deleted(o));
                    }
                    _ => {
                        if let Some(e) =
                            exec::execute(&mut self.conn, &root, tz(), self.now, &a).unwrap()
                        {
                            queue.push_back(e);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn retention_deletes_old_footage_in_batches_but_never_held_or_current_segments() {
    let mut h = Harness::new(Settings {
        retention_days: 2,
        camera_retention_days: BTreeMap::from([(2, 1)]),
        batch: 10,
        ..Settings::default()
    });
    // Four days of hourly segments for two cameras.
    for hour in 0..96 {
        h.write(1, T0 + hour * HOUR, HOUR, 100);
        h.write(2, T0 + hour * HOUR, HOUR, 100);
    }
    let held_until = T0 + 3 * HOUR;
    holds::add(
        &h.conn,
        &holds::NewHold {
            camera: 1,
            from: from_micros(T0),
            to: from_micros(held_until),
            reason: "inquérito 42".into(),
        },
        "op",
        from_micros(T0),
    )
    .unwrap();
    h.now = T0 + 4 * DAY;
    h.feed(Event::Cameras(vec![(1, "a".into()), (2, "b".into())]));
    h.feed(Event::Started);
    // Camera 1 keeps 2 days and the held hours; camera 2 keeps 1 day.
    for hour in 0..96 {
        let t = T0 + hour * HOUR;
        let keep1 = t < held_until || hour >= 48;
        let keep2 = hour >= 72;
        assert_eq!(h.exists(1, t), keep1, "camera 1 hour {hour}");
        assert_eq!(h.exists(2, t), keep2, "camera 2 hour {hour}");
    }
    // 45 + 72 files in batches of 10.
    assert_eq!(h.deletes, 12);
    let s = catalog::summary(&h.conn, h.now).unwrap();
    assert_eq!(s.cameras[0].segments_on_disk, 3 + 48);
    assert_eq!(s.cameras[1].segments_on_disk, 24);
    assert!(h.alerts.is_empty(), "{:?}", h.alerts);
    // Hourly: nothing before the hour, a sweep at the hour.
    h.write(2, h.now, HOUR, 100);
    h.now += 30 * M;
    h.deletes = 0;
    h.feed(Event::Tick);
    assert_eq!(h.deletes, 0);
    h.now += 30 * M;
    h.feed(Event::Tick);
    assert_eq!(h.deletes, 1);
    assert!(!h.exists(1, T0 + 48 * HOUR) && !h.exists(2, T0 + 72 * HOUR));
    assert!(h.exists(1, T0 + 49 * HOUR) && h.exists(2, T0 + 73 * HOUR));
    // The segment being written is never deleted, however old.
    h.feed(Event::SegmentData {
        camera: 2,
        file: h.root().join(segment_rel_path(2, T0 + 95 * HOUR, tz())),
        bytes: 200,
    });
    h.now += 3 * DAY;
    h.feed(Event::Tick);
    assert!(h.exists(2, T0 + 95 * HOUR));
    assert!(!h.exists(2, T0 + 94 * HOUR));
}

#[test]
fn with_backup_on_retention_keeps_what_is_not_uploaded_and_warns() {
    let mut h = Harness::new(Settings {
        retention_days: 1,
        backup_enabled: true,
        ..Settings::default()
    });
    for hour in 0..48 {
        h.write(1, T0 + hour * HOUR, HOUR, 100);
    }
    h.now = T0 + 2 * DAY;
    h.feed(Event::Started);
    // Nothing uploaded: nothing deleted, one Warning.
    assert!(h.exists(1, T0));
    assert_eq!(h.alerts.len(), 1, "{:?}", h.alerts);
    assert_eq!(h.alerts[0].key, "storage:retention_backup");
    assert!(
        h.alerts[0].details.starts_with("24 segment(s)"),
        "{}",
        h.alerts[0].details
    );
    // The backup catches up: deleted, and the warning resolves.
    h.conn
        .execute("UPDATE segments SET backup_state = 2", [])
        .unwrap();
    h.now += HOUR;
    h.feed(Event::Tick);
    assert!(!h.exists(1, T0));
    assert_eq!(h.alerts.len(), 2);
    assert_eq!(h.alerts[1].phase, Phase::Resolved);
}

#[test]
fn eviction_restores_the_floor_oldest_first_and_says_what_it_deleted() {
    let mut h = Harness::new(Settings {
        min_free_percent: 5.0,
        batch: 3,
        ..Settings::default()
    });
    for i in 0..10 {
        h.write(1, T0 + i * M, M, 10_000);
        h.write(2, T0 + i * M + SECOND, M, 10_000);
    }
    // Camera 1's first two minutes are held.
    holds::add(
        &h.conn,
        &holds::NewHold {
            camera: 1,
            from: from_micros(T0),
            to: from_micros(T0 + 2 * M - 2 * SECOND),
            reason: "perícia".into(),
        },
        "op",
        from_micros(T0),
    )
    .unwrap();
    h.now = T0 + DAY;
    h.feed(Event::Started);
    // Floor: 5 % of 1 MB = 50 kB; target 55 kB; 20 kB free: 35 kB to free.
    let disk = DiskSample {
        total_bytes: 1_000_000,
        available_bytes: 20_000,
    };
    h.disk = Some(disk);
    h.feed(Event::Disk(disk));
    assert_eq!(h.disk.unwrap().available_bytes, 60_000);
    assert!(
        h.exists(1, T0) && h.exists(1, T0 + M),
        "held footage survives"
    );
    // Oldest unheld: camera 2 minutes 0, 1, 2 and camera 1 minute 2.
    assert!(!h.exists(2, T0 + SECOND));
    assert!(!h.exists(2, T0 + 2 * M + SECOND));
    assert!(!h.exists(1, T0 + 2 * M));
    assert!(h.exists(1, T0 + 3 * M));
    assert_eq!(h.alerts.len(), 1, "{:?}", h.alerts);
    let a = &h.alerts[0];
    assert_eq!(a.issue, StorageIssue::FootageEvicted);
    assert_eq!(a.evicted.len(), 2);
    assert_eq!(a.evicted[1].camera, 2);
    assert_eq!(a.evicted[1].segments, 3);
    assert_eq!(a.evicted[1].from, from_micros(T0 + SECOND));
    assert!(
        a.summary_pt.contains("câmera 2: 19/11 00:00"),
        "{}",
        a.summary_pt
    );
    // Minutes read as minutes, not "0.1 h".
    assert!(
        a.summary_pt
            .starts_with("disco quase cheio: 4 min das gravações")
            && a.summary_pt.contains("(3 min)"),
        "{}",
        a.summary_pt
    );
    assert!(
        a.details.starts_with("evicted 4 min (39 KiB)"),
        "{}",
        a.details
    );
    let s = catalog::summary(&h.conn, h.now).unwrap();
    assert_eq!(s.cameras[1].evicted_segments, 3);
    let rows = catalog::segments(&h.conn, 2, T0, T0 + HOUR).unwrap();
    assert_eq!(rows[0].state, SegState::Evicted);
    // Above the floor: nothing more happens.
    h.feed(Event::Disk(h.disk.unwrap()));
    assert_eq!(h.alerts.len(), 1);
}

#[test]
fn a_floor_that_cannot_be_restored_because_everything_is_held_is_one_critical() {
    let mut h = Harness::new(Settings {
        min_free_bytes: Some(100_000),
        ..Settings::default()
    });
    for i in 0..3 {
        h.write(1, T0 + i * M, M, 10_000);
    }
    holds::add(
        &h.conn,
        &holds::NewHold {
            camera: 1,
            from: from_micros(T0),
            to: from_micros(T0 + DAY),
            reason: "processo".into(),
        },
        "op",
        from_micros(T0),
    )
    .unwrap();
    h.now = T0 + HOUR;
    h.feed(Event::Started);
    h.disk = Some(DiskSample {
        total_bytes: 1_000_000,
        available_bytes: 5_000,
    });
    h.feed(Event::Disk(h.disk.unwrap()));
    h.feed(Event::Disk(h.disk.unwrap()));
    assert_eq!(h.alerts.len(), 1, "{:?}", h.alerts);
    assert_eq!(h.alerts[0].key, "storage:floor");
    assert_eq!(h.alerts[0].severity, Severity::Critical);
    assert!(h.exists(1, T0) && h.exists(1, T0 + 2 * M));
    // The hold is released: eviction proceeds and the Critical resolves.
    let id = holds::list(&h.conn, false).unwrap()[0].id;
    holds::release(&h.conn, id, "op", from_micros(h.now)).unwrap();
    h.feed(Event::Disk(h.disk.unwrap()));
    // The newest segment is still open (recording) and stays.
    assert!(!h.exists(1, T0) && !h.exists(1, T0 + M) && h.exists(1, T0 + 2 * M));
    let keys: Vec<(&str, Phase)> = h.alerts.iter().map(|a| (a.key.as_str(), a.phase)).collect();
    assert!(
        keys.contains(&("storage:footage_evicted", Phase::Notice)),
        "{keys:?}"
    );
    // Still below the floor (5 k + 20 k < 100 k) and nothing left: the
    // Critical stays open, not repeated.
    assert_eq!(keys.iter().filter(|k| k.0 == "storage:floor").count(), 1);
}

impl Harness {
    fn path(&self, camera: u32, start: Micros) -> PathBuf {
        self.root().join(segment_rel_path(camera, start, tz()))
    }

    /// The file as MediaMTX leaves it: `bytes` long, last written at `at`.
    fn touch(&self, camera: u32, start: Micros, bytes: u64, at: Micros) {
        use nix::sys::stat::{utimensat, UtimensatFlags};
        use nix::sys::time::TimeSpec;
        let p = self.path(camera, start);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .unwrap();
        f.set_len(bytes).unwrap();
        let t = TimeSpec::new(at / SECOND, (at % SECOND) * 1000);
        utimensat(None, &p, &t, &t, UtimensatFlags::FollowSymlink).unwrap();
    }

    /// `cams` record 60 s segments from `from` to `to`, a part a second.
    fn record(&mut self, cams: &[u32], from: Micros, to: Micros) {
        let mut t = from;
        while t < to {
            self.now = t;
            for &c in cams {
                let start = T0 + (t - T0) / M * M;
                let bytes = ((t - start) / SECOND + 1) as u64 * 1000;
                self.touch(c, start, bytes, t);
                let file = self.path(c, start);
                self.feed(Event::SegmentData {
                    camera: c,
                    file,
                    bytes,
                });
            }
            self.feed(Event::Tick);
            t += SECOND;
        }
    }

    fn gaps(&self, camera: u32, from: Micros, to: Micros) -> Vec<(i64, i64, &'static str)> {
        let l = crate::storage::ledger::query(
            &self.conn,
            camera,
            from_micros(from),
            from_micros(to),
            from_micros(self.now),
            crate::storage::ledger::DEFAULT_TOLERANCE,
        )
        .unwrap();
        l.gaps
            .iter()
            .map(|g| {
                (
                    (to_micros(g.start) - T0) / SECOND,
                    (to_micros(g.end) - T0) / SECOND,
                    g.cause.as_str(),
                )
            })
            .collect()
    }
}

#[test]
fn the_ledger_after_a_scripted_sequence_of_faults_names_each_gap_and_no_other() {
    let mut h = Harness::new(Settings::default());
    let cams = [1, 2];
    h.feed(Event::Cameras(vec![(1, "a".into()), (2, "b".into())]));
    h.feed(Event::Started);
    h.record(&cams, T0, T0 + 10 * M);
    // Camera 1's stream goes down; detected 8 s later; back at minute 15.
    h.record(&[2], T0 + 10 * M, T0 + 10 * M + 8 * SECOND);
    h.feed(Event::Cause(CauseChange {
        camera: Some(1),
        cause: Cause::CameraDown,
        active: true,
        since: Some(from_micros(T0 + 10 * M - SECOND)),
    }));
    h.record(&[2], T0 + 10 * M + 8 * SECOND, T0 + 15 * M);
    h.now = T0 + 15 * M;
    h.feed(Event::Cause(CauseChange {
        camera: Some(1),
        cause: Cause::CameraDown,
        active: false,
        since: None,
    }));
    h.record(&cams, T0 + 15 * M, T0 + 20 * M);
    // MediaMTX dies at minute 20 (noticed 3 s later), is back at 22.
    h.now = T0 + 20 * M + 3 * SECOND;
    h.feed(Event::Cause(CauseChange {
        camera: None,
        cause: Cause::MediamtxDown,
        active: true,
        since: None,
    }));
    h.now = T0 + 22 * M;
    h.feed(Event::Cause(CauseChange {
        camera: None,
        cause: Cause::MediamtxDown,
        active: false,
        since: None,
    }));
    h.record(&cams, T0 + 22 * M, T0 + 25 * M);
    // The disk fills at minute 25: the cut-off files close, then MediaMTX
    // leaves an empty file every 2.5 s on every camera until minute 27.
    h.now = T0 + 25 * M;
    for c in cams {
        let start = T0 + 24 * M;
        let file = h.path(c, start);
        h.feed(Event::SegmentClosed {
            camera: c,
            file,
            bytes: 60_000,
        });
    }
    let mut t = T0 + 25 * M + 2_500_000;
    while t < T0 + 27 * M {
        h.now = t;
        for c in cams {
            h.touch(c, t, 0, t);
            let file = h.path(c, t);
            h.feed(Event::SegmentData {
                camera: c,
                file: file.clone(),
                bytes: 0,
            });
            h.feed(Event::SegmentClosed {
                camera: c,
                file,
                bytes: 0,
            });
        }
        h.feed(Event::Tick);
        t += 2_500_000;
    }
    h.record(&cams, T0 + 27 * M, T0 + 30 * M);
    // The daemon dies at minute 30 (MediaMTX with it) and starts at 35.
    h.m = Machine::new(h.root(), tz(), Settings::default());
    h.now = T0 + 35 * M;
    h.feed(Event::Cameras(vec![(1, "a".into()), (2, "b".into())]));
    h.feed(Event::Started);
    h.record(&cams, T0 + 35 * M, T0 + 40 * M);

    let disk_full = h
        .alerts
        .iter()
        .filter(|a| a.issue == StorageIssue::DiskFull)
        .map(|a| a.phase)
        .collect::<Vec<_>>();
    assert_eq!(disk_full, vec![Phase::Firing, Phase::Resolved]);
    let common = [(1499, 1620, "disk_full"), (1799, 2100, "daemon_down")];
    let mut one = vec![
        (-300, 0, "before_camera_existed"),
        (599, 900, "camera_down"),
        (1199, 1320, "mediamtx_down"),
    ];
    one.extend(common);
    assert_eq!(h.gaps(1, T0 - 5 * M, T0 + 40 * M), one);
    let mut two = vec![
        (-300, 0, "before_camera_existed"),
        (1199, 1320, "mediamtx_down"),
    ];
    two.extend(common);
    assert_eq!(h.gaps(2, T0 - 5 * M, T0 + 40 * M), two);
}

#[test]
fn a_camera_missing_from_the_summary_is_looked_at_again_within_seconds() {
    let mut m = Machine::new(root(), tz(), Settings::default());
    m.handle(
        from_micros(T0),
        Event::Cameras(vec![(1, "A".into()), (2, "B".into())]),
    );
    m.handle(from_micros(T0), Event::Started);
    m.handle(
        from_micros(T0),
        Event::Reconciled(ReconcileReport::default()),
    );
    let summarize = |a: &[Action]| a.iter().any(|a| matches!(a, Action::Summarize));
    // Camera 2 has no segment yet: the next summary comes in 10 s, not 5 min.
    m.handle(
        from_micros(T0),
        Event::Summary(Summary {
            at: T0,
            cameras: vec![summary_cam(1, T0, Some(T0), 100)],
            db_bytes: 0,
        }),
    );
    assert!(!summarize(
        &m.handle(from_micros(T0 + 9 * SECOND), Event::Tick)
    ));
    assert!(summarize(
        &m.handle(from_micros(T0 + 10 * SECOND), Event::Tick)
    ));
    // Both present: back to the regular interval.
    m.handle(
        from_micros(T0 + 10 * SECOND),
        Event::Summary(Summary {
            at: T0,
            cameras: vec![
                summary_cam(1, T0, Some(T0), 100),
                summary_cam(2, T0, Some(T0), 100),
            ],
            db_bytes: 0,
        }),
    );
    assert!(!summarize(
        &m.handle(from_micros(T0 + 30 * SECOND), Event::Tick)
    ));
}

#[test]
fn lengths_and_sizes_read_as_a_person_reads_them() {
    assert_eq!(span_text(2.54), "2.5 h");
    assert_eq!(span_text(1.0), "1.0 h");
    assert_eq!(span_text(0.5), "30 min");
    assert_eq!(span_text(0.004), "14 s");
    assert_eq!(bytes_text(3 * (1 << 30)), "3.00 GiB");
    assert_eq!(bytes_text(5 << 20), "5.0 MiB");
    assert_eq!(bytes_text(2048), "2 KiB");
}
