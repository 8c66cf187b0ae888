//! The store's lifecycle with a fake clock: every `now` is explicit.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::store::{Filter, Store};
use super::text::Kind;
use super::*;
use crate::events::{AlertEvent, CameraRef, Issue, Phase, Severity};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 17, 35, 22).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn settings() -> AlertSettings {
    AlertSettings {
        language: crate::config::Language::PtBr,
        tz: chrono_tz::America::Sao_Paulo,
        box_name: "nvr-centro".into(),
        site: String::new(),
        reminder_after: Some(Duration::from_secs(3600)),
        channels: vec![Channel::Telegram, Channel::Email],
        telegram: None,
        email: None,
        camera_names: Default::default(),
    }
}

fn event(id: u32, issue: Issue, severity: Severity, phase: Phase, at: DateTime<Utc>) -> AlertEvent {
    AlertEvent {
        at,
        severity,
        phase,
        key: AlertEvent::camera_key(id, issue),
        issue,
        camera: Some(CameraRef {
            id,
            name: "Portaria Principal".into(),
        }),
        recovery_attempts: 3,
        last_recording: Some(at - secs(120)),
        details: "test".into(),
    }
}

fn stopped(at: DateTime<Utc>) -> AlertEvent {
    event(
        5,
        Issue::RecordingStopped,
        Severity::Critical,
        Phase::Firing,
        at,
    )
}

fn resolved(at: DateTime<Utc>) -> AlertEvent {
    event(
        5,
        Issue::RecordingStopped,
        Severity::Info,
        Phase::Resolved,
        at,
    )
}

struct Db {
    _dir: tempfile::TempDir,
    store: Store,
    path: std::path::PathBuf,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vms.db");
    let store = Store::open(&path).unwrap();
    Db {
        _dir: dir,
        store,
        path,
    }
}

#[test]
fn critical_is_stored_and_queued_for_both_channels() {
    let mut d = db();
    let s = settings();
    let i = d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert_eq!(i.outcome, Outcome::Opened);
    assert_eq!(i.queued, vec![Channel::Telegram, Channel::Email]);
    let rows = d.store.outbox().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].alert_id, i.alert_id);
    assert!(rows[0]
        .body
        .starts_with("ALERTA CRÍTICO\nCâmera: Portaria Principal\n"));
    assert_eq!(rows[0].subject, None);
    assert!(rows[1]
        .subject
        .as_deref()
        .unwrap()
        .starts_with("[VMS nvr-centro] ALERTA CRÍTICO"));
    assert_eq!(d.store.open_counts().unwrap().critical, 1);
}

#[test]
fn warning_and_info_are_stored_not_pushed() {
    let mut d = db();
    let s = settings();
    let w = event(2, Issue::StreamDown, Severity::Warning, Phase::Firing, t0());
    let n = event(
        2,
        Issue::StreamRecovered,
        Severity::Info,
        Phase::Notice,
        t0() + secs(5),
    );
    assert!(d.store.ingest(&w, t0(), &s).unwrap().queued.is_empty());
    assert!(d.store.ingest(&n, t0(), &s).unwrap().queued.is_empty());
    assert!(d.store.outbox().unwrap().is_empty());
    let (rows, total) = d.store.list(&Filter::default(), 10, 0, &s).unwrap();
    assert_eq!(total, 2);
    // Newest first, messages in the configured language.
    assert_eq!(rows[0].message, "Stream reconectado");
    assert!(rows[0].resolved);
    assert_eq!(rows[1].message, "Stream indisponível");
    assert!(!rows[1].resolved);
    assert_eq!(d.store.open_counts().unwrap().warning, 1);
}

#[test]
fn repeats_are_deduplicated() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    for k in 1..=5 {
        let i = d
            .store
            .ingest(&stopped(t0() + secs(k * 30)), t0() + secs(k * 30), &s)
            .unwrap();
        assert_eq!(i.outcome, Outcome::Repeated);
        assert!(i.queued.is_empty());
    }
    assert_eq!(d.store.outbox().unwrap().len(), 2);
    assert_eq!(d.store.table_counts().unwrap()["alerts"], 6);
    assert_eq!(d.store.table_counts().unwrap()["incidents"], 1);
}

#[test]
fn resolved_closes_and_sends_resolved_once() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let r = d
        .store
        .ingest(&resolved(t0() + secs(725)), t0() + secs(725), &s)
        .unwrap();
    assert_eq!(r.outcome, Outcome::Resolved);
    assert_eq!(r.queued.len(), 2);
    let rows = d.store.outbox().unwrap();
    assert_eq!(rows[2].kind, Kind::Resolved);
    assert!(
        rows[2]
            .body
            .starts_with("RESOLVIDO\nCâmera: Portaria Principal\n"),
        "{}",
        rows[2].body
    );
    assert!(rows[2].body.ends_with("Duração: 12 min 05 s"));
    // A second Resolved has nothing to close.
    let again = d
        .store
        .ingest(&resolved(t0() + secs(800)), t0() + secs(800), &s)
        .unwrap();
    assert_eq!(again.outcome, Outcome::NothingOpen);
    assert!(again.queued.is_empty());
    assert_eq!(d.store.open_counts().unwrap().critical, 0);
    // The next Firing opens a new alert and pages again.
    let reopened = d
        .store
        .ingest(&stopped(t0() + secs(900)), t0() + secs(900), &s)
        .unwrap();
    assert_eq!(reopened.outcome, Outcome::Opened);
    assert_eq!(reopened.queued.len(), 2);
}

#[test]
fn a_resolved_warning_sends_nothing() {
    let mut d = db();
    let s = settings();
    let w = event(2, Issue::StreamDown, Severity::Warning, Phase::Firing, t0());
    d.store.ingest(&w, t0(), &s).unwrap();
    let r = event(
        2,
        Issue::StreamDown,
        Severity::Info,
        Phase::Resolved,
        t0() + secs(10),
    );
    let i = d.store.ingest(&r, t0() + secs(10), &s).unwrap();
    assert_eq!(i.outcome, Outcome::Resolved);
    assert!(i.queued.is_empty());
}

#[test]
fn incidents_record_the_recording_gap() {
    let mut d = db();
    let s = settings();
    let ev = stopped(t0());
    d.store.ingest(&ev, t0(), &s).unwrap();
    let open = &d.store.incidents(Some(5), None, 10).unwrap()[0];
    assert_eq!(open.recording_gap_start, ev.last_recording);
    assert_eq!(open.recording_gap_end, None);
    assert_eq!(open.reason, "test");
    let mut r = resolved(t0() + secs(600));
    r.details = "segment data flows again".into();
    d.store.ingest(&r, t0() + secs(600), &s).unwrap();
    let closed = &d.store.incidents(Some(5), None, 10).unwrap()[0];
    assert_eq!(closed.resolved_at, Some(t0() + secs(600)));
    assert_eq!(closed.recording_gap_end, Some(t0() + secs(600)));
    assert_eq!(
        closed.resolution.as_deref(),
        Some("segment data flows again")
    );
    // A disk warning is not a recording gap.
    let disk = AlertEvent {
        camera: None,
        key: "disk:/var/lib/vms".into(),
        issue: Issue::DiskWarning,
        ..event(
            0,
            Issue::DiskWarning,
            Severity::Warning,
            Phase::Firing,
            t0(),
        )
    };
    d.store.ingest(&disk, t0(), &s).unwrap();
    let all = d.store.incidents(None, None, 10).unwrap();
    assert_eq!(all[0].issue, Issue::DiskWarning);
    assert_eq!(all[0].recording_gap_start, None);
    // A user limited to camera 7 sees the box's incident, not camera 5's.
    let scoped = d.store.incidents(None, Some(&[7]), 10).unwrap();
    assert_eq!(
        scoped.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        vec!["disk:/var/lib/vms"]
    );
    assert!(all.len() > scoped.len());
}

#[test]
fn reminders_follow_the_fake_clock() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert_eq!(d.store.remind(t0() + secs(3599), &s).unwrap(), 0);
    assert_eq!(d.store.remind(t0() + secs(3600), &s).unwrap(), 1);
    // Not again until another hour has passed since the reminder.
    assert_eq!(d.store.remind(t0() + secs(3600 + 1800), &s).unwrap(), 0);
    assert_eq!(d.store.remind(t0() + secs(7200), &s).unwrap(), 1);
    let rows = d.store.outbox().unwrap();
    let reminders: Vec<_> = rows.iter().filter(|r| r.kind == Kind::Reminder).collect();
    assert_eq!(reminders.len(), 4, "two reminders on two channels");
    assert!(reminders[0]
        .body
        .starts_with("LEMBRETE: ALERTA CRÍTICO AINDA ABERTO\n"));
    assert!(reminders[0]
        .body
        .contains("Horário: 15:35:22\nAberto desde: 14:35:22\n"));
    // Resolved: no more reminders.
    d.store
        .ingest(&resolved(t0() + secs(7300)), t0() + secs(7300), &s)
        .unwrap();
    assert_eq!(d.store.remind(t0() + secs(20000), &s).unwrap(), 0);
}

#[test]
fn reminder_zero_means_never() {
    let mut d = db();
    let mut s = settings();
    s.reminder_after = None;
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert_eq!(d.store.remind(t0() + secs(86_400 * 30), &s).unwrap(), 0);
}

#[test]
fn an_absurd_reminder_after_means_never() {
    let mut d = db();
    let mut s = settings();
    s.reminder_after = Some(Duration::from_secs(u64::MAX / 4));
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert_eq!(d.store.remind(t0() + secs(86_400 * 3650), &s).unwrap(), 0);
    assert_eq!(
        d.store
            .prune(t0(), Duration::from_secs(u64::MAX / 4))
            .unwrap(),
        0
    );
}

#[test]
fn warnings_get_no_reminders() {
    let mut d = db();
    let s = settings();
    let w = event(2, Issue::StreamDown, Severity::Warning, Phase::Firing, t0());
    d.store.ingest(&w, t0(), &s).unwrap();
    assert_eq!(d.store.remind(t0() + secs(86_400), &s).unwrap(), 0);
}

#[test]
fn silenced_camera_is_stored_but_not_pushed_until_the_silence_ends() {
    let mut d = db();
    let s = settings();
    d.store
        .silence(5, t0() + secs(1800), "lens cleaning", t0())
        .unwrap();
    let i = d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert_eq!(i.outcome, Outcome::Opened);
    assert!(i.silenced);
    assert!(i.queued.is_empty());
    // Other cameras still page.
    let other = event(
        6,
        Issue::RecordingStopped,
        Severity::Critical,
        Phase::Firing,
        t0(),
    );
    assert_eq!(d.store.ingest(&other, t0(), &s).unwrap().queued.len(), 2);
    // No reminder while silenced, even past reminder_after.
    let mut s2 = s.clone();
    s2.reminder_after = Some(Duration::from_secs(600));
    d.store.silence(6, t0() + secs(1800), "", t0()).unwrap();
    assert_eq!(d.store.remind(t0() + secs(1200), &s2).unwrap(), 0);
    assert_eq!(d.store.silences(t0() + secs(1000)).unwrap().len(), 2);
    // After the silence, a repeat of the never-pushed alert pages.
    let later = t0() + secs(1900);
    let i = d.store.ingest(&stopped(later), later, &s).unwrap();
    assert_eq!(i.outcome, Outcome::Repeated);
    assert_eq!(i.queued.len(), 2);
    assert!(
        d.store.silences(later).unwrap().is_empty(),
        "expired silences are gone"
    );
    // Listing shows the silenced row.
    let (rows, _) = d
        .store
        .list(
            &Filter {
                camera_id: Some(5),
                ..Default::default()
            },
            10,
            0,
            &s,
        )
        .unwrap();
    assert!(rows.last().unwrap().silenced);
    assert!(!rows[0].silenced);
}

#[test]
fn unsilence_ends_it_early() {
    let d = db();
    d.store.silence(5, t0() + secs(1800), "", t0()).unwrap();
    assert!(d.store.unsilence(5).unwrap());
    assert!(!d.store.unsilence(5).unwrap());
    assert!(d.store.silences(t0()).unwrap().is_empty());
}

#[test]
fn escalation_pages_once() {
    let mut d = db();
    let s = settings();
    let mut ev = stopped(t0());
    ev.severity = Severity::Warning;
    d.store.ingest(&ev, t0(), &s).unwrap();
    assert!(d.store.outbox().unwrap().is_empty());
    let i = d
        .store
        .ingest(&stopped(t0() + secs(60)), t0() + secs(60), &s)
        .unwrap();
    assert_eq!(i.outcome, Outcome::Escalated);
    assert_eq!(i.queued.len(), 2);
    assert_eq!(
        d.store.open_counts().unwrap(),
        OpenCounts {
            info: 0,
            warning: 0,
            critical: 1
        }
    );
    let i = d
        .store
        .ingest(&stopped(t0() + secs(90)), t0() + secs(90), &s)
        .unwrap();
    assert_eq!(i.outcome, Outcome::Repeated);
    assert!(i.queued.is_empty());
}

#[test]
fn no_channels_no_rows() {
    let mut d = db();
    let mut s = settings();
    s.channels.clear();
    let i = d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    assert!(i.queued.is_empty());
    assert!(d.store.outbox().unwrap().is_empty());
}

#[test]
fn outbox_delivery_bookkeeping() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let due = d.store.due(Channel::Telegram, t0(), 10).unwrap();
    assert_eq!(due.len(), 1);
    let id = due[0].id;
    d.store.mark_retry(id, t0() + secs(10), "HTTP 500").unwrap();
    assert!(d
        .store
        .due(Channel::Telegram, t0() + secs(9), 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        d.store.next_due_at(Channel::Telegram).unwrap(),
        Some(t0() + secs(10))
    );
    let due = d.store.due(Channel::Telegram, t0() + secs(10), 10).unwrap();
    assert_eq!(due[0].attempts, 1);
    d.store.mark_delivered(id, t0() + secs(11)).unwrap();
    assert!(d
        .store
        .due(Channel::Telegram, t0() + secs(1000), 10)
        .unwrap()
        .is_empty());
    // A late retry report cannot un-deliver it.
    d.store.mark_retry(id, t0() + secs(12), "late").unwrap();
    let row = d
        .store
        .outbox()
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(row.delivered_at, Some(t0() + secs(11)));
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error, None);
    // Stats: telegram delivered, e-mail pending for 100 s.
    let stats = d.store.channel_stats(t0() + secs(100)).unwrap();
    assert_eq!(stats[0].channel, Channel::Telegram);
    assert_eq!((stats[0].depth, stats[0].delivered), (0, 1));
    assert_eq!(stats[1].depth, 1);
    assert_eq!(stats[1].oldest_seconds, 100.0);
    let e = d.store.due(Channel::Email, t0(), 10).unwrap()[0].id;
    d.store
        .mark_failed(e, t0() + secs(1), "550 no such user")
        .unwrap();
    let stats = d.store.channel_stats(t0() + secs(100)).unwrap();
    assert_eq!((stats[1].depth, stats[1].failed), (0, 1));
    assert!(d
        .store
        .due(Channel::Email, t0() + secs(1000), 10)
        .unwrap()
        .is_empty());
}

#[test]
fn list_filters_and_pages() {
    let mut d = db();
    let s = settings();
    for k in 0..10 {
        let at = t0() + secs(k);
        let ev = event(
            (k % 2) as u32 + 1,
            Issue::StreamDown,
            if k < 3 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            Phase::Notice,
            at,
        );
        d.store.ingest(&ev, at, &s).unwrap();
    }
    let (rows, total) = d.store.list(&Filter::default(), 4, 2, &s).unwrap();
    assert_eq!(total, 10);
    assert_eq!(
        rows.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        (4..8).rev().map(|k| t0() + secs(k)).collect::<Vec<_>>()
    );
    let f = Filter {
        severity: Some(Severity::Critical),
        ..Default::default()
    };
    assert_eq!(d.store.list(&f, 100, 0, &s).unwrap().1, 3);
    let f = Filter {
        camera_id: Some(2),
        ..Default::default()
    };
    assert_eq!(d.store.list(&f, 100, 0, &s).unwrap().1, 5);
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let f = Filter {
        open: Some(true),
        ..Default::default()
    };
    let (open, n) = d.store.list(&f, 100, 0, &s).unwrap();
    assert_eq!(n, 1);
    assert_eq!(open[0].issue, Issue::RecordingStopped);
    let f = Filter {
        open: Some(false),
        ..Default::default()
    };
    assert_eq!(d.store.list(&f, 100, 0, &s).unwrap().1, 10);
}

#[test]
fn english_messages_when_configured() {
    let mut d = db();
    let mut s = settings();
    s.language = crate::config::Language::En;
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let rows = d.store.outbox().unwrap();
    assert!(rows[0]
        .body
        .starts_with("CRITICAL ALERT\nCamera: Portaria Principal\n"));
    let (list, _) = d.store.list(&Filter::default(), 1, 0, &s).unwrap();
    assert_eq!(list[0].message, "Recording not recovered after 3 attempts");
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let path = d.path.clone();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(store.table_counts().unwrap()["alerts"], 1);
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.table_counts().unwrap()["outbox"], 2);
}

#[test]
fn database_file_mode_is_restrictive() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = db();
    d.store.ingest(&stopped(t0()), t0(), &settings()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.path), 0o640);
    // SQLite gives the WAL files the database's mode.
    let wal = d.path.with_file_name("vms.db-wal");
    assert!(wal.exists(), "WAL mode");
    assert_eq!(mode(&wal), 0o640);
    // An existing file with a wider mode is narrowed.
    std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    drop(Store::open(&d.path).unwrap());
    assert_eq!(mode(&d.path), 0o640);
}

#[test]
fn prune_keeps_what_is_still_needed() {
    let mut d = db();
    let s = settings();
    let day = secs(86_400);
    // Old, closed and delivered.
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    d.store
        .ingest(&resolved(t0() + secs(60)), t0() + secs(60), &s)
        .unwrap();
    for r in d.store.outbox().unwrap() {
        d.store.mark_delivered(r.id, t0() + secs(61)).unwrap();
    }
    // Old but still open (camera 6), and old but undelivered (camera 7).
    let six = event(
        6,
        Issue::RecordingStopped,
        Severity::Warning,
        Phase::Firing,
        t0(),
    );
    d.store.ingest(&six, t0(), &s).unwrap();
    let seven = event(
        7,
        Issue::RecordingStopped,
        Severity::Critical,
        Phase::Notice,
        t0(),
    );
    d.store.ingest(&seven, t0(), &s).unwrap();
    // Recent.
    d.store
        .ingest(&stopped(t0() + day * 30), t0() + day * 30, &s)
        .unwrap();

    let deleted = d
        .store
        .prune(t0() + day * 20, Duration::from_secs(10 * 86_400))
        .unwrap();
    assert_eq!(deleted, 2, "the closed alert and its resolution");
    let counts = d.store.table_counts().unwrap();
    assert_eq!(counts["alerts"], 3);
    assert_eq!(counts["incidents"], 3, "the ledger is kept");
    assert_eq!(
        counts["outbox"], 4,
        "undelivered rows and the recent alert's rows"
    );
}

#[test]
fn corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vms.db");
    std::fs::write(
        &path,
        b"this is not a database, just 64 bytes of text ...............\n",
    )
    .unwrap();
    let err = Store::open(&path)
        .err()
        .expect("a corrupt file must not open")
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not a database"), "{err}");
    assert!(err.contains("move the file aside"), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vms.db");
    drop(Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 99 is newer"), "{err}");
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    if nix::unistd::geteuid().is_root() {
        // root writes anywhere; use a path below a file instead.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = super::open_at(&file.join("vms.db"), settings())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot create"), "{err}");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let err = Store::open(&dir.path().join("vms.db"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot create the file"), "{err}");
}

#[test]
fn every_issue_round_trips_through_its_name() {
    for issue in ALL_ISSUES {
        let json = serde_json::to_value(issue).unwrap();
        assert_eq!(json.as_str().unwrap(), issue.as_str());
        assert!(
            ALL_ISSUES
                .iter()
                .filter(|i| i.as_str() == issue.as_str())
                .count()
                == 1
        );
    }
}

#[test]
fn log_record_has_the_designs_fields() {
    let ev = stopped(t0());
    let v = log_record(&ev);
    assert_eq!(v["timestamp"], "2026-01-05T17:35:22Z");
    assert_eq!(v["level"], "CRITICAL");
    assert_eq!(v["camera_id"], 5);
    assert_eq!(v["camera_name"], "Portaria Principal");
    assert_eq!(v["issue"], "recording_stopped");
    assert_eq!(v["recovery_attempts"], 3);
    assert_eq!(v["last_recording"], "2026-01-05T17:33:22Z");
}

/// Captures what a JSON tracing subscriber writes.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_line_carries_the_fields_as_tracing_fields() {
    let cap = Capture::default();
    let writer = cap.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let ev = stopped(t0());
    tracing::subscriber::with_default(subscriber, || {
        log_event(
            &ev,
            Some(&Ingested {
                alert_id: 7,
                outcome: Outcome::Opened,
                silenced: false,
                queued: vec![],
            }),
        )
    });
    let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["alert_level"], "CRITICAL");
    assert_eq!(line["camera_id"], 5);
    assert_eq!(line["camera_name"], "Portaria Principal");
    assert_eq!(line["issue"], "recording_stopped");
    assert_eq!(line["recovery_attempts"], 3);
    assert_eq!(line["last_recording"], "2026-01-05T17:33:22.000Z");
    assert_eq!(line["alert_id"], 7);
    assert_eq!(line["action"], "opened");
    assert!(line["timestamp"].is_string());
}

#[test]
fn metrics_have_the_fixed_names_and_labels() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        record_open_counts(OpenCounts {
            info: 0,
            warning: 2,
            critical: 1,
        });
        record_outbox_stats(&[ChannelStats {
            channel: Channel::Telegram,
            depth: 3,
            oldest_seconds: 42.5,
            delivered: 0,
            failed: 0,
        }]);
        outbox::record_delivery(Channel::Email, "retry");
        outbox::record_delivery(Channel::Email, "retry");
    });
    let text = handle.render();
    for line in [
        "vms_active_alerts{severity=\"critical\"} 1",
        "vms_active_alerts{severity=\"warning\"} 2",
        "vms_alert_outbox_depth{channel=\"telegram\"} 3",
        "vms_alert_outbox_oldest_seconds{channel=\"telegram\"} 42.5",
        "vms_alert_deliveries_total{channel=\"email\",result=\"retry\"} 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn failed_rows_can_be_requeued() {
    let mut d = db();
    let s = settings();
    d.store.ingest(&stopped(t0()), t0(), &s).unwrap();
    let rows = d.store.outbox().unwrap();
    d.store
        .mark_failed(rows[0].id, t0() + secs(1), "HTTP 401")
        .unwrap();
    d.store
        .mark_failed(rows[1].id, t0() - secs(100_000), "535")
        .unwrap();
    assert_eq!(
        d.store
            .requeue_failed(t0() - secs(86_400), t0() + secs(5))
            .unwrap(),
        1
    );
    let due = d.store.due(Channel::Telegram, t0() + secs(5), 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert!(d
        .store
        .due(Channel::Email, t0() + secs(5), 10)
        .unwrap()
        .is_empty());
}
