//! The off-site backup against real S3 servers started here: moto (the venv
//! `scripts/setup` makes under target/) for the main paths, s3s-fs for the
//! strict ones (signatures, storage classes it refuses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vms_supervisor::config::Secret;
use vms_supervisor::storage::backup::machine::{BackupAlert, Level};
use vms_supervisor::storage::backup::s3::{S3Client, S3Settings};
use vms_supervisor::storage::backup::{self, queue, Settings, Worker};
use vms_supervisor::storage::{catalog, SECOND};

use crate::harness::free_port;

const BUCKET: &str = "vms-test";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The moto server `scripts/setup` installs. Missing, the test fails: a
/// test that passes without its server would say nothing.
fn moto_binary() -> PathBuf {
    let p = crate::harness::files::repo().join("target/s3-venv/bin/moto_server");
    assert!(p.is_file(), "{} is missing: run scripts/setup", p.display());
    p
}

fn s3s_binary() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let p = home.join("bin/s3s-fs");
    assert!(p.is_file(), "{} is missing: run scripts/setup", p.display());
    p
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "S3 server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_moto(bin: &Path, port: u16) -> Server {
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server");
    wait_listening(port);
    // moto does not check signatures: create the bucket with a plain PUT.
    let r = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{port}/{BUCKET}"))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
    Server { child, port }
}

/// A moto bucket for a daemon under test: the server, the key files the
/// box reads, the `[backup]` section that points at them, and a client to
/// read the bucket back (the dashboard's timeline test uses it too).
pub(crate) struct MotoBucket {
    server: Option<Server>,
    port: u16,
    keys: tempfile::TempDir,
}

impl MotoBucket {
    pub(crate) fn start() -> MotoBucket {
        let port = free_port();
        let server = start_moto(&moto_binary(), port);
        let keys = tempfile::tempdir().unwrap();
        std::fs::write(keys.path().join("id"), "AKIDTEST\n").unwrap();
        std::fs::write(keys.path().join("secret"), "secret-for-moto\n").unwrap();
        MotoBucket {
            server: Some(server),
            port,
            keys,
        }
    }

    /// `[backup]` on, to this bucket, with `extra` lines.
    pub(crate) fn section(&self, extra: &str) -> String {
        format!(
            "[backup]\nenabled = true\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"{BUCKET}\"\n\
             path_style = true\nstorage_class = \"STANDARD\"\naccess_key_id_file = \"{}\"\n\
             secret_access_key_file = \"{}\"\n{extra}",
            self.port,
            self.keys.path().join("id").display(),
            self.keys.path().join("secret").display()
        )
    }

    /// The service goes away (`false`) or comes back on the same port.
    fn set_up(&mut self, up: bool) {
        self.server = up.then(|| start_moto(&moto_binary(), self.port));
    }

    fn client(&self) -> vms_supervisor::storage::backup::s3::S3Client {
        use vms_supervisor::config::Secret;
        vms_supervisor::storage::backup::s3::S3Client::new(
            vms_supervisor::storage::backup::s3::S3Settings {
                endpoint: format!("http://127.0.0.1:{}", self.port),
                region: "us-east-1".into(),
                bucket: BUCKET.into(),
                path_style: true,
                access_key_id: Secret::new("AKIDTEST"),
                secret_access_key: Secret::new("secret-for-moto"),
            },
            None,
        )
    }
}

fn start_s3s(bin: &Path, dir: &Path) -> Server {
    let port = free_port();
    std::fs::create_dir_all(dir.join(BUCKET)).unwrap();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "AK", "--secret-key", "SK"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs");
    wait_listening(port);
    Server { child, port }
}

struct Box_ {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
}

fn make_box() -> Box_ {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rec");
    let db = dir.path().join("storage.db");
    catalog::open(&db).unwrap();
    Box_ {
        root,
        db,
        _dir: dir,
    }
}

/// Writes a segment file of `len` pseudo-random bytes and its catalog row.
fn add_segment(b: &Box_, camera: u32, start_s: i64, len: usize, state: u8, reason: &str) {
    let rel = format!("cam_{camera}/2026-11-25/{start_s}.mp4");
    let path = b.root.join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut x = (start_s as u64).wrapping_mul(6364136223846793005) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, data).unwrap();
    let c = Connection::open(&b.db).unwrap();
    c.execute(
        "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, complete_reason, state_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?3)",
        params![
            camera,
            start_s * SECOND,
            (start_s + 60) * SECOND,
            rel,
            len as i64,
            state,
            if reason.is_empty() { None } else { Some(reason) }
        ],
    )
    .unwrap();
}

fn settings(b: &Box_, port: u16, key: &str, secret: &str, class: &str) -> Settings {
    let mut names = BTreeMap::new();
    names.insert(1, "Portão Norte".to_string());
    Settings {
        s3: S3Settings {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            path_style: true,
            access_key_id: Secret::new(key),
            secret_access_key: Secret::new(secret),
        },
        prefix: "vms".into(),
        box_name: "escola-1".into(),
        storage_class: class.into(),
        max_bytes_per_second: None,
        machine: backup::machine::Settings {
            concurrency: 2,
            lag_warning: 3600 * SECOND,
            lag_critical: 7200 * SECOND,
            backoff_base: SECOND / 5,
            backoff_max: SECOND,
        },
        part_size: 5 * 1024 * 1024,
        poll: Duration::from_millis(100),
        recordings_root: b.root.clone(),
        camera_names: names,
    }
}

struct Running {
    stop: CancellationToken,
    alerts: mpsc::UnboundedReceiver<BackupAlert>,
    task: tokio::task::JoinHandle<()>,
}

/// `clock`: an offset added to the wall clock (the backoff needs time to
/// pass; the lag alert needs hours to pass at once).
fn start(rt: &tokio::runtime::Runtime, s: Settings, db: &Path, clock: Arc<AtomicI64>) -> Running {
    let stop = CancellationToken::new();
    let (tx, alerts) = mpsc::unbounded_channel();
    let worker = Worker::new(s, catalog::open(db).unwrap()).with_clock(Arc::new(move || {
        backup::now_us() + clock.load(Ordering::SeqCst)
    }));
    let task = rt.spawn(worker.run(tx, stop.clone()));
    Running { stop, alerts, task }
}

fn stop(rt: &tokio::runtime::Runtime, r: Running) -> mpsc::UnboundedReceiver<BackupAlert> {
    r.stop.cancel();
    rt.block_on(r.task).unwrap();
    r.alerts
}

fn backlog(db: &Path) -> queue::Backlog {
    queue::backlog(&Connection::open(db).unwrap()).unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sha_file(p: &Path) -> String {
    backup::file_sha256(p).unwrap()
}

const T0: i64 = 1_795_000_000;

#[test]
fn uploads_completed_segments_verified_survives_outage_restart_and_restores() {
    let bin = moto_binary();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let server = start_moto(&bin, port);
    let b = make_box();
    let clock = Arc::new(AtomicI64::new((T0 + 600) * SECOND - backup::now_us()));
    // Two complete segments (one large enough for multipart), one being
    // written, one empty.
    add_segment(&b, 1, T0, 200_000, 1, "next_segment");
    add_segment(&b, 1, T0 + 60, 11 * 1024 * 1024, 1, "closed_clean");
    add_segment(&b, 1, T0 + 120, 50_000, 0, "");
    add_segment(&b, 2, T0, 0, 1, "empty");
    let s = settings(&b, port, "AK", "SK", "GLACIER_IR");
    let client = S3Client::new(s.s3.clone(), None);
    let run = start(&rt, s.clone(), &b.db, clock.clone());
    wait_for("the backlog to drain", Duration::from_secs(30), || {
        backlog(&b.db).segments == 0
    });
    let conn = Connection::open(&b.db).unwrap();
    assert_eq!(queue::status(&conn).unwrap().uploaded_segments, 2);
    // The segment being written was not touched.
    let recording: u8 = conn
        .query_row(
            "SELECT backup_state FROM segments WHERE start_us = ?1",
            [(T0 + 120) * SECOND],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recording, 0);
    for start in [T0, T0 + 60] {
        let key = backup::object_key("vms", "escola-1", 1, start * SECOND);
        let info = rt.block_on(client.head_object(&key)).unwrap();
        assert_eq!(info.storage_class.as_deref(), Some("GLACIER_IR"), "{key}");
        let file = b.root.join(format!("cam_1/2026-11-25/{start}.mp4"));
        let sha = sha_file(&file);
        assert_eq!(info.metadata.get("sha256"), Some(&sha));
        assert_eq!(
            info.metadata.get("camera-name").map(String::as_str),
            Some("Portão Norte")
        );
        assert!(info.metadata.get("start").unwrap().starts_with("2026-"));
        let body = rt.block_on(client.get_object(&key)).unwrap();
        assert_eq!(vms_supervisor::storage::backup::s3::sha256_hex(&body), sha);
        let recorded: String = conn
            .query_row(
                "SELECT sha256 FROM segments WHERE camera = 1 AND start_us = ?1",
                [start * SECOND],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(recorded, sha);
    }
    assert!(rt
        .block_on(client.head_object(&backup::object_key(
            "vms",
            "escola-1",
            1,
            (T0 + 120) * SECOND
        )))
        .is_err());

    // Outage: the server goes away, segments keep completing.
    drop(server);
    for i in 0..3 {
        add_segment(&b, 2, T0 + 600 + 60 * i, 100_000, 1, "next_segment");
    }
    let mut alerts = run.alerts;
    // Two hours later nothing went out: the Warning fires.
    clock.fetch_add(3800 * SECOND, Ordering::SeqCst);
    let alert = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), alerts.recv()).await })
        .expect("a lag alert")
        .unwrap();
    match &alert {
        BackupAlert::Lag {
            level, segments, ..
        } => {
            assert_eq!(*level, Level::Warning);
            assert_eq!(*segments, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(backlog(&b.db).segments, 3);
    // The server is back (empty: moto keeps objects in memory).
    let server = start_moto(&bin, port);
    wait_for(
        "the backlog to drain after the outage",
        Duration::from_secs(30),
        || backlog(&b.db).segments == 0,
    );
    let resolved = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), alerts.recv()).await })
        .unwrap()
        .unwrap();
    assert_eq!(resolved, BackupAlert::LagResolved);
    let run = Running { alerts, ..run };
    let _ = stop(&rt, run);
    assert_eq!(
        queue::status(&conn).unwrap().uploaded_segments,
        5,
        "exactly once"
    );

    // A restart mid-upload: a slow (limited) worker is dropped after it
    // started, a new one finishes; nothing lost or doubled.
    add_segment(&b, 2, T0 + 900, 3 * 1024 * 1024, 1, "next_segment");
    let mut slow = s.clone();
    slow.max_bytes_per_second = Some(512 * 1024);
    let run = start(&rt, slow, &b.db, clock.clone());
    wait_for("the upload to start", Duration::from_secs(10), || {
        Connection::open(&b.db)
            .unwrap()
            .query_row(
                "SELECT backup_state FROM segments WHERE camera = 2 AND start_us = ?1",
                [(T0 + 900) * SECOND],
                |r| r.get::<_, u8>(0),
            )
            .unwrap()
            == 1
    });
    let _ = stop(&rt, run);
    assert_eq!(backlog(&b.db).segments, 1);
    let run = start(&rt, s.clone(), &b.db, clock.clone());
    wait_for("the resumed upload", Duration::from_secs(30), || {
        backlog(&b.db).segments == 0
    });
    let _ = stop(&rt, run);
    assert_eq!(queue::status(&conn).unwrap().uploaded_segments, 6);

    // Restore a time range of camera 2: the files match their SHA-256.
    let out = tempfile::tempdir().unwrap();
    let restored = rt
        .block_on(backup::restore(
            &client,
            &conn,
            2,
            (T0 + 600) * SECOND,
            (T0 + 1000) * SECOND,
            out.path(),
        ))
        .unwrap();
    assert_eq!(restored.len(), 4);
    for r in &restored {
        assert!(r.verified, "{r:?}");
        assert_eq!(sha_file(&r.path), r.sha256);
    }
    drop(server);
}

#[test]
fn bandwidth_limit_holds_within_ten_percent() {
    let bin = moto_binary();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let _server = start_moto(&bin, port);
    let b = make_box();
    let limit = 1024 * 1024;
    add_segment(&b, 1, T0, 3 * 1024 * 1024, 1, "next_segment");
    let s = settings(&b, port, "AK", "SK", "GLACIER_IR");
    let client = S3Client::new(s.s3.clone(), Some(limit));
    let body = std::fs::read(b.root.join(format!("cam_1/2026-11-25/{T0}.mp4"))).unwrap();
    let started = Instant::now();
    rt.block_on(client.put_object("probe", body.clone(), &[]))
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    // The bucket starts full (a quarter second of burst).
    let rate = (body.len() as f64 - limit as f64 / 4.0) / secs;
    assert!(
        rate <= limit as f64 * 1.10 && rate >= limit as f64 * 0.8,
        "{rate:.0} B/s against a limit of {limit} B/s"
    );
}

#[test]
fn wrong_credentials_and_refused_storage_class_raise_one_config_alert() {
    let bin = s3s_binary();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = start_s3s(&bin, data.path());
    for (key, secret, class, code) in [
        ("AK", "wrong", "STANDARD", "SignatureDoesNotMatch"),
        ("AK", "SK", "GLACIER_IR", "InvalidStorageClass"),
    ] {
        let b = make_box();
        for i in 0..4 {
            add_segment(&b, 1, T0 + 60 * i, 10_000, 1, "next_segment");
        }
        let clock = Arc::new(AtomicI64::new(0));
        let run = start(
            &rt,
            settings(&b, server.port, key, secret, class),
            &b.db,
            clock,
        );
        wait_for("the configuration error", Duration::from_secs(10), || {
            queue::status(&Connection::open(&b.db).unwrap())
                .unwrap()
                .config_error
                .is_some()
        });
        // Give it time to storm, if it were going to.
        std::thread::sleep(Duration::from_secs(1));
        let mut alerts = stop(&rt, run);
        let mut got = Vec::new();
        while let Ok(a) = alerts.try_recv() {
            // The segments are days old: the lag alert fires too.
            if matches!(a, BackupAlert::Config { .. }) {
                got.push(a);
            }
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            matches!(&got[0], BackupAlert::Config { code: c, .. } if c == code),
            "{got:?}"
        );
        let c = Connection::open(&b.db).unwrap();
        let attempts: i64 = c
            .query_row("SELECT sum(backup_attempts) FROM segments", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(attempts <= 2, "{attempts} attempts: a retry storm");
        assert_eq!(queue::backlog(&c).unwrap().segments, 4);
    }
    // With the right settings s3s-fs (which checks signatures and
    // Content-MD5) accepts the uploads.
    let b = make_box();
    add_segment(&b, 1, T0, 6 * 1024 * 1024, 1, "next_segment");
    add_segment(&b, 1, T0 + 60, 1000, 1, "next_segment");
    let run = start(
        &rt,
        settings(&b, server.port, "AK", "SK", "STANDARD"),
        &b.db,
        Arc::new(AtomicI64::new(0)),
    );
    wait_for("uploads to s3s-fs", Duration::from_secs(20), || {
        backlog(&b.db).segments == 0
    });
    let _ = stop(&rt, run);
}

/// The daemon itself backs up what the stand-in records: completed segments
/// reach the bucket, `backup status` counts them, `backup restore` brings
/// them back checked against their SHA-256; with the service gone the lag
/// alert fires, and it clears once the service is back.
#[test]
fn the_daemon_backs_up_what_it_records_restores_it_and_pages_on_lag() {
    use crate::harness::{Daemon, Setup};
    let mut bucket = MotoBucket::start();
    let extra = bucket.section("lag_warning = \"6s\"\nlag_critical = \"1h\"\nretry_max = \"2s\"\n");
    let d = Daemon::start(Setup {
        recording: "segment_duration = \"2s\"\n".into(),
        extra,
        ..Setup::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(d.wait_all_recording(2));
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(60);
    let uploaded = |d: &Daemon| -> u64 {
        let out = d.cli(&["backup", "status"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find_map(|l| l.strip_prefix("uploaded: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no uploaded line in {text}"))
    };
    wait_for(
        "four segments in the bucket",
        Duration::from_secs(60),
        || uploaded(&d) >= 4,
    );
    let status = String::from_utf8_lossy(&d.cli(&["backup", "status"]).stdout).to_string();
    assert!(status.contains("backup: on"), "{status}");

    // Restore camera 1's footage into a new folder: every file checked.
    let restore = tempfile::tempdir().unwrap();
    let out_dir = restore.path().join("restored");
    let to = chrono::Utc::now().to_rfc3339();
    let out = d.cli(&[
        "backup",
        "restore",
        "1",
        "--from",
        &t0.to_rfc3339(),
        "--to",
        &to,
        "--dir",
        out_dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().collect();
    assert!(!restored.is_empty(), "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok")), "{text}");
    for f in &restored {
        let sha = sha_file(&f.path());
        assert!(
            text.contains(&sha),
            "{} ({sha}) not in {text}",
            f.path().display()
        );
    }

    // The service goes away: the lag alert fires; back: it clears.
    bucket.set_up(false);
    let lag = |phase: &'static str| {
        let d = &d;
        move || async move {
            d.alerts()
                .await
                .into_iter()
                .find(|a| a["issue"] == "backup_lag" && a["phase"] == phase)
        }
    };
    let firing = rt.block_on(d.wait_for(
        "the backup lag alert",
        Duration::from_secs(60),
        lag("firing"),
    ));
    assert_eq!(firing["severity"], "warning", "{firing}");
    bucket.set_up(true);
    rt.block_on(d.wait_for(
        "the backup lag resolved",
        Duration::from_secs(90),
        lag("resolved"),
    ));
}

/// The process's own CPU time (user + system), from `/proc/self/stat`.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0] + f[1]) as f64 / 100.0
}

/// Drains a queue of `segments` segments of `size` bytes through the worker
/// against moto: (seconds, bytes per second, CPU % of one core of this
/// process, where the worker runs).
fn drain(bin: &Path, segments: i64, size: usize, limit: Option<u64>) -> (f64, f64, f64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let _server = start_moto(bin, port);
    let b = make_box();
    for i in 0..segments {
        add_segment(&b, 1 + (i % 4) as u32, T0 + 60 * i, size, 1, "next_segment");
    }
    let mut s = settings(&b, port, "AK", "SK", "GLACIER_IR");
    s.max_bytes_per_second = limit;
    s.part_size = 16 * 1024 * 1024;
    let clock = Arc::new(AtomicI64::new(0));
    let cpu0 = own_cpu_seconds();
    let t0 = Instant::now();
    let run = start(&rt, s, &b.db, clock);
    wait_for("the queue drained", Duration::from_secs(600), || {
        backlog(&b.db).segments == 0
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu0;
    let _ = stop(&rt, run);
    let bytes = segments as f64 * size as f64;
    (secs, bytes / secs, 100.0 * cpu / secs)
}

/// Upload throughput against a local moto, with and without the bandwidth
/// limit, and the worker's CPU: its own section of BENCHMARKS.md.
#[test]
#[ignore = "benchmark: run with scripts/bench"]
fn bench_backup_throughput() {
    let bin = moto_binary();
    const MIB: usize = 1 << 20;
    let free = drain(&bin, 24, 8 * MIB, None);
    let limited = drain(&bin, 6, 4 * MIB, Some(4 * MIB as u64));
    let build = if cfg!(debug_assertions) {
        "a debug build, so an upper bound for the shipped release build"
    } else {
        "a release build, as the daemon ships (`cargo test --release`)"
    };
    let mut md = format!(
        "<!-- backup:begin (written by bench_backup_throughput in tests/it/backup.rs) -->\n\
         ## Off-site backup: upload throughput\n\n\
         The backup worker (2 uploads at once, Content-MD5 and SHA-256 on every body) draining \
         a queue of completed segments into a local `moto` S3 server on loopback; CPU is the \
         test process's, where the worker runs: {build} (moto's own is not counted).\n\n\
         | Queue | Limit | Time | Throughput | Worker CPU (% of one core) |\n|---|---|---|---|---|\n",
    );
    let mb = |b: f64| b / 1e6;
    md.push_str(&format!(
        "| 24 × 8 MiB | none | {:.1} s | {:.1} MB/s | {:.0} % |\n",
        free.0,
        mb(free.1),
        free.2
    ));
    md.push_str(&format!(
        "| 6 × 4 MiB | 4 MiB/s | {:.1} s | {:.2} MB/s (limit {:.2} MB/s) | {:.0} % |\n",
        limited.0,
        mb(limited.1),
        mb(4.0 * MIB as f64),
        limited.2
    ));
    md.push_str("\n<!-- backup:end -->\n");
    crate::bench::write_section("backup", &md);
    println!("{md}");
}

/// Turning backup on, or changing where it goes, takes effect at the next
/// reload of vms.toml without restarting the daemon (or MediaMTX): the
/// worker starts, then restarts with the new prefix, and the objects are in
/// the bucket where the catalog says.
#[test]
fn backup_settings_apply_on_reload_without_a_restart() {
    use crate::harness::{Daemon, Setup};
    let bucket = MotoBucket::start();
    let backup = |prefix: &str| bucket.section(&format!("prefix = \"{prefix}\"\n"));
    let setup = Setup {
        recording: "segment_duration = \"2s\"\n".into(),
        ..Setup::default()
    };
    let (cameras, monitor) = (setup.cameras.clone(), setup.monitor.clone());
    let d = Daemon::start(setup);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(d.wait_all_recording(2));
    let mediamtx = crate::harness::mediamtx_pid(&s);
    let catalog = d.path("state/storage.db");
    let uploaded_keys = || -> Vec<String> {
        let conn = rusqlite::Connection::open(&catalog).unwrap();
        let mut st = conn
            .prepare("SELECT backup_key FROM segments WHERE backup_state = 2 ORDER BY start_us")
            .unwrap();
        let keys = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        keys
    };
    // Off at start: segments complete, nothing goes up.
    rt.block_on(
        d.wait_status("two segments completed", Duration::from_secs(30), |s| {
            crate::harness::camera(s, 1)["segments_completed"].as_u64() >= Some(2)
        }),
    );
    assert!(uploaded_keys().is_empty());

    for prefix in ["primeiro", "segundo"] {
        d.write_config(&cameras, &monitor, &backup(prefix));
        wait_for(
            &format!("uploads under {prefix}/"),
            Duration::from_secs(60),
            || {
                uploaded_keys()
                    .iter()
                    .any(|k| k.starts_with(&format!("{prefix}/")))
            },
        );
    }
    // Each is really in the bucket.
    let client = bucket.client();
    for key in uploaded_keys() {
        rt.block_on(client.head_object(&key))
            .unwrap_or_else(|e| panic!("{key} not in the bucket: {e}"));
    }
    // Neither the daemon nor MediaMTX restarted for it.
    let s = rt.block_on(d.status()).unwrap();
    assert_eq!(crate::harness::mediamtx_pid(&s), mediamtx);
    assert!(crate::harness::alive(d.pid()));
    assert!(d.logs().contains("backup: new settings"), "{}", d.logs());
}

/// The daemon SIGKILLed while it uploads (a thin uplink: uploads take
/// seconds): started again, it resumes the queue; every segment completed
/// before the kill ends up in the bucket exactly once, its bytes matching
/// the SHA-256 the catalog recorded, and the upload counter counts each
/// once.
#[test]
fn daemon_killed_mid_upload_resumes_with_nothing_lost_or_doubled() {
    use crate::harness::{Daemon, Setup};
    let bucket = MotoBucket::start();
    let backup = |limit: &str| bucket.section(&format!("max_bytes_per_second = \"{limit}\"\n"));
    let setup = Setup {
        recording: "segment_duration = \"2s\"\n".into(),
        extra: backup("16KiB"),
        ..Setup::default()
    };
    let (cameras, monitor) = (setup.cameras.clone(), setup.monitor.clone());
    let d = Daemon::start(setup);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(d.wait_all_recording(2));
    let catalog = d.path("state/storage.db");
    let query = |sql: &str| -> Vec<(i64, i64, Option<String>, Option<String>)> {
        let conn = rusqlite::Connection::open(&catalog).unwrap();
        let mut st = conn.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    };
    let complete = "SELECT camera, start_us, backup_key, sha256 FROM segments WHERE state = 1";
    let uploaded = "SELECT camera, start_us, backup_key, sha256 FROM segments \
                    WHERE state = 1 AND backup_state = 2";
    // Uploads under way: one done, more waiting at 16 KiB/s.
    wait_for(
        "an upload done and more queued",
        Duration::from_secs(60),
        || {
            let done = query(uploaded).len();
            done >= 1 && query(complete).len() > done + 1
        },
    );
    d.kill();
    let before_kill = query(complete);
    // Back, with the uplink unlimited so that the test does not wait.
    d.write_config(&cameras, &monitor, &backup("0"));
    d.spawn();
    rt.block_on(d.wait_all_recording(2));
    wait_for(
        "every segment completed before the kill uploaded",
        Duration::from_secs(90),
        || {
            let up: std::collections::BTreeSet<(i64, i64)> =
                query(uploaded).iter().map(|r| (r.0, r.1)).collect();
            before_kill.iter().all(|r| up.contains(&(r.0, r.1)))
        },
    );
    let client = bucket.client();
    let rows = query(uploaded);
    for (camera, start, key, sha) in rows
        .iter()
        .filter(|r| before_kill.iter().any(|b| (b.0, b.1) == (r.0, r.1)))
    {
        let key = key.as_ref().unwrap();
        let body = rt
            .block_on(client.get_object(key))
            .unwrap_or_else(|e| panic!("camera {camera} {start}: {key} not in the bucket: {e}"));
        assert_eq!(
            vms_supervisor::storage::backup::s3::sha256_hex(&body),
            *sha.as_ref().unwrap(),
            "{key}"
        );
    }
    // Each key once, and the counter counted each upload once.
    let keys: std::collections::BTreeSet<&String> =
        rows.iter().filter_map(|r| r.2.as_ref()).collect();
    assert_eq!(keys.len(), rows.len());
    let conn = rusqlite::Connection::open(&catalog).unwrap();
    let counted: i64 = conn
        .query_row("SELECT uploaded_segments FROM backup_status", [], |r| {
            r.get(0)
        })
        .unwrap();
    let now_uploaded = query(uploaded).len() as i64;
    assert!(
        counted <= now_uploaded && counted >= rows.len() as i64,
        "uploads counted {counted}, segments uploaded {} then {now_uploaded}",
        rows.len()
    );
}
