//! The soak behind `SOAK.md` (run it with `scripts/soak [DURATION]`, e.g.
//! `scripts/soak 24h`; `#[ignore]`d in the default suite).
//!
//! The real daemon against `mediamtx-sim` with eight cameras, for a wall-clock
//! duration, cycling through every fault the product must survive without a
//! human: a camera that goes silent, a camera that drops its connection, a
//! recorder that stalls, MediaMTX killed, MediaMTX's API hung, the daemon
//! itself killed, the recordings root deleted, the recordings disk full, the
//! alert database locked by another program while a camera fails, and a
//! camera out long enough to be declared offline (the
//! one case that ends in a manual `camera reset`, by design). After each fault
//! the box must be back to every camera recording, then stay quiet for a
//! while with no new alert (no false alarm).
//!
//! At the end, "nothing lost" is checked on the evidence: every recording gap
//! found in the segment files lies inside an injected outage of that camera;
//! every Critical alert reached the Telegram stand-in and the outbox is empty;
//! the daemon's memory and file descriptors did not grow from cycle to cycle.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use nix::sys::signal::Signal;

use crate::harness::{camera, mediamtx_pid, Daemon, FakeTelegram, Setup};

const CAMERAS: u32 = 8;
/// How long the box must stay quiet after a fault is repaired.
const QUIET: Duration = Duration::from_secs(30);
/// Slack around an outage when attributing a recording gap to it: the
/// segment file times are written by the stand-in, the outage times by this
/// driver.
const SLACK: f64 = 3.0;
/// A hole between two segment files shorter than this is the normal
/// rotation, not a gap.
const GAP_MIN: f64 = 2.5;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Silent,
    Closed,
    Stall,
    MediamtxKilled,
    ApiHung,
    DaemonKilled,
    RootDeleted,
    DiskFilled,
    DbLocked,
    Offline,
}

const CYCLE: [Fault; 10] = [
    Fault::Silent,
    Fault::Closed,
    Fault::Stall,
    Fault::MediamtxKilled,
    Fault::ApiHung,
    Fault::DaemonKilled,
    Fault::RootDeleted,
    Fault::DiskFilled,
    Fault::DbLocked,
    Fault::Offline,
];

/// How long the alert database stays locked in [`Fault::DbLocked`].
const DB_LOCK: Duration = Duration::from_secs(30);
/// How long the disk stays full in [`Fault::DiskFilled`].
const DISK_FULL: Duration = Duration::from_secs(15);

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::Silent => "Camera silent for 20 s (stops sending)",
            Fault::Closed => "Camera connection closed for 10 s",
            Fault::Stall => "Recorder stalled (stream up, file stops growing)",
            Fault::MediamtxKilled => "MediaMTX killed (SIGKILL)",
            Fault::ApiHung => "MediaMTX API hung",
            Fault::DaemonKilled => "vms-supervisor killed (SIGKILL) and started again",
            Fault::RootDeleted => "Recordings root deleted (`rm -rf`) while recording",
            Fault::DiskFilled => "Recordings disk filled to 100 % for 15 s (a foreign file)",
            Fault::DbLocked => {
                "Alert database locked for 30 s (an admin's `sqlite3`) while a camera fails"
            }
            Fault::Offline => "Camera out until declared offline, then `camera reset`",
        }
    }

    /// Whether the fault stops every camera, or only camera `k`.
    fn all_cameras(self) -> bool {
        matches!(
            self,
            Fault::MediamtxKilled
                | Fault::ApiHung
                | Fault::DaemonKilled
                | Fault::RootDeleted
                | Fault::DiskFilled
        )
    }
}

/// One injected outage: which cameras, and from when to when (seconds since
/// the Unix epoch), from the injection to every camera recording again.
pub(crate) struct Outage {
    pub(crate) cameras: Vec<u32>,
    pub(crate) from: f64,
    pub(crate) to: f64,
}

#[derive(Default)]
struct Times {
    detect: Vec<f64>,
    repair: Vec<f64>,
    /// Per injection, the longest hole between two segment files of an
    /// affected camera within the outage (0 when recording went on).
    gap: Vec<f64>,
}

pub(crate) fn now_epoch() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn worst(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::NAN, f64::max)
}

/// `VMS_SOAK_DURATION`: `90s`, `30m`, `24h` (default 30 minutes).
fn soak_duration() -> Duration {
    let text = std::env::var("VMS_SOAK_DURATION").unwrap_or_else(|_| "30m".into());
    let (num, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = num
        .parse()
        .expect("VMS_SOAK_DURATION: a number and s, m or h");
    secs(match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => panic!("VMS_SOAK_DURATION: unit s, m or h, not {unit:?}"),
    })
}

pub(crate) fn proc_value(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

pub(crate) fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The alerts stored since the one with id `last` (the API lists the newest
/// first; a cycle stores a few dozen at most), and moves `last` on.
pub(crate) async fn new_alerts(d: &Daemon, last: &mut i64) -> Vec<serde_json::Value> {
    let mut fresh: Vec<_> = d
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["id"].as_i64().unwrap_or(0) > *last)
        .collect();
    fresh.reverse();
    if let Some(id) = fresh.last().and_then(|a| a["id"].as_i64()) {
        *last = id;
    }
    fresh
}

/// After a fault: counts the Critical alerts stored since `last`, then
/// watches the box for `quiet` and returns (Criticals in all, what fired
/// during the quiet time as "issue camera"): on a healthy box that list is
/// a false alarm.
pub(crate) async fn criticals_then_quiet(
    d: &Daemon,
    last: &mut i64,
    quiet: Duration,
) -> (usize, Vec<String>) {
    let critical = |a: &&serde_json::Value| a["severity"] == "critical" && a["phase"] == "firing";
    let mut criticals = new_alerts(d, last).await.iter().filter(critical).count();
    d.observe(quiet).await;
    let after = new_alerts(d, last).await;
    criticals += after.iter().filter(critical).count();
    let fired = after
        .iter()
        .filter(|a| a["phase"] == "firing")
        .map(|a| format!("{} {}", a["issue"], a["camera_id"]))
        .collect();
    (criticals, fired)
}

/// How many delays of the whole box the daemon has logged (its processes
/// in this run).
fn box_delays(d: &Daemon) -> usize {
    d.logs().matches("came late together").count()
}

/// The status field of the threshold a fault is judged by, if one.
fn threshold_key(fault: Fault) -> Option<&'static str> {
    match fault {
        Fault::Stall => Some("stall_threshold_seconds"),
        Fault::Silent => Some("silence_threshold_seconds"),
        _ => None,
    }
}

/// Injects `fault` on camera `k`, waits until the daemon has seen it and the
/// box is recording again. Returns (detection, repair) in seconds.
pub(crate) async fn inject(d: &Daemon, fault: Fault, k: u32) -> (f64, f64) {
    let cam = format!("cam_{k}");
    // The newest alert before the fault: what follows is this fault's.
    let before = d
        .alerts()
        .await
        .iter()
        .filter_map(|a| a["id"].as_i64())
        .max();
    let t0 = Instant::now();
    let not_online = |s: &serde_json::Value| camera(s, k)["state"] != "online";
    let detected = match fault {
        Fault::Silent | Fault::Closed => {
            let mode = if fault == Fault::Silent {
                "silent"
            } else {
                "closed"
            };
            d.sim("POST", &format!("/cameras/{cam}/down?mode={mode}"))
                .await;
            d.wait_status("the camera failure seen", secs(30), not_online)
                .await;
            let detected = t0.elapsed();
            let down_for = secs(if fault == Fault::Silent { 20 } else { 10 });
            d.wait_for("the outage to last", down_for + secs(5), || async {
                (t0.elapsed() >= down_for).then_some(())
            })
            .await;
            d.sim("POST", &format!("/cameras/{cam}/up")).await;
            detected
        }
        Fault::Stall => {
            d.sim("POST", &format!("/recorder/{cam}/stall")).await;
            d.wait_status("the stall seen", secs(30), not_online).await;
            let detected = t0.elapsed();
            d.wait_path_recreated(&cam).await;
            d.sim("POST", &format!("/recorder/{cam}/resume")).await;
            detected
        }
        Fault::MediamtxKilled | Fault::ApiHung => {
            let old = d
                .status()
                .await
                .as_ref()
                .and_then(mediamtx_pid)
                .unwrap_or(0);
            if fault == Fault::MediamtxKilled {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), Signal::SIGKILL)
                    .unwrap();
            } else {
                d.sim("POST", "/api/hang").await;
            }
            d.wait_status("MediaMTX seen down", secs(60), |s| {
                s["mediamtx"]["up"] == false || mediamtx_pid(s) != Some(old)
            })
            .await;
            let detected = t0.elapsed();
            if fault == Fault::ApiHung {
                // The stand-in keeps its faults across restarts: clear the
                // hang on the new process, as a restart clears a real hang.
                d.wait_status("a new MediaMTX process", secs(60), |s| {
                    mediamtx_pid(s).is_some_and(|p| p != old)
                })
                .await;
                d.unhang().await;
            }
            detected
        }
        Fault::DaemonKilled => {
            d.kill();
            d.spawn();
            d.wait_status("the daemon answers again", secs(30), |_| true)
                .await;
            t0.elapsed()
        }
        Fault::RootDeleted => {
            crate::harness::remove_tree_being_written(&d.recordings);
            // Seen when every camera records in the re-created tree (the
            // daemon re-arms its watches by itself).
            d.wait_status(
                "every camera recording in the re-created tree",
                secs(120),
                |s| {
                    s["cameras"].as_array().unwrap().iter().all(|c| {
                        c["recording"] == true
                            && c["current_segment"]
                                .as_str()
                                .is_some_and(|p| Path::new(p).exists())
                    })
                },
            )
            .await;
            t0.elapsed()
        }
        Fault::DiskFilled => {
            let filler = d.recordings.join("soak-filler");
            {
                use std::io::Write as _;
                let mut f = std::fs::File::create(&filler).unwrap();
                let chunk = vec![7u8; 1 << 20];
                while f.write_all(&chunk).is_ok() {}
            }
            d.wait_for("the disk-full incident", secs(60), || async {
                d.alerts()
                    .await
                    .iter()
                    .any(|a| {
                        a["issue"] == "disk_full"
                            && a["phase"] == "firing"
                            && a["id"].as_i64() > before
                    })
                    .then_some(())
            })
            .await;
            let detected = t0.elapsed();
            d.wait_for("the disk to stay full", DISK_FULL + secs(5), || async {
                (t0.elapsed() >= DISK_FULL).then_some(())
            })
            .await;
            std::fs::remove_file(&filler).unwrap();
            let freed = now_epoch();
            // The outage lasts until every camera writes footage again: a
            // recorder that hit the full disk closed its segment and, as
            // MediaMTX does, starts a new one 2 s after the error at the
            // next keyframe, which can be after the incident is resolved
            // (a 78 min soak counted that hole, 5.6 s, outside the outage).
            d.wait_for("every camera writing footage again", secs(60), || async {
                (1..=CAMERAS)
                    .all(|cam| {
                        segments(&d.recordings, cam, chrono_tz::America::Sao_Paulo)
                            .iter()
                            .any(|&(_, end)| end > freed)
                    })
                    .then_some(())
            })
            .await;
            d.wait_for("the disk-full incident resolved", secs(60), || async {
                d.alerts()
                    .await
                    .iter()
                    .any(|a| {
                        a["issue"] == "disk_full"
                            && a["phase"] == "resolved"
                            && a["id"].as_i64() > before
                    })
                    .then_some(())
            })
            .await;
            detected
        }
        Fault::DbLocked => {
            let db = d.dir.path().join("state/vms.db");
            let mut lock = std::process::Command::new("sqlite3")
                .arg(&db)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("the sqlite3 command (scripts/setup installs it)");
            let mut stdin = lock.stdin.take().unwrap();
            {
                use std::io::Write as _;
                writeln!(stdin, "BEGIN EXCLUSIVE; SELECT 1;").unwrap();
                stdin.flush().unwrap();
            }
            d.wait_for("sqlite3 to hold the lock", secs(10), || async {
                locked(&db).then_some(())
            })
            .await;
            d.sim("POST", &format!("/cameras/{cam}/down?mode=closed"))
                .await;
            d.wait_status("the camera failure seen", secs(30), not_online)
                .await;
            let detected = t0.elapsed();
            d.wait_for("the lock to last", DB_LOCK + secs(5), || async {
                (t0.elapsed() >= DB_LOCK).then_some(())
            })
            .await;
            {
                use std::io::Write as _;
                writeln!(stdin, "COMMIT;").unwrap();
            }
            drop(stdin);
            let _ = lock.wait();
            d.sim("POST", &format!("/cameras/{cam}/up")).await;
            // The alert raised while the database was locked is stored.
            d.wait_for(
                "the camera's alert, stored after the lock",
                secs(60),
                || async {
                    d.alerts()
                        .await
                        .iter()
                        .any(|a| {
                            a["camera_id"] == k
                                && a["phase"] == "firing"
                                && a["id"].as_i64() > before
                        })
                        .then_some(())
                },
            )
            .await;
            detected
        }
        Fault::Offline => {
            d.sim("POST", &format!("/cameras/{cam}/down?mode=closed"))
                .await;
            d.wait_status("the camera declared offline", secs(300), |s| {
                camera(s, k)["state"] == "offline"
            })
            .await;
            let detected = t0.elapsed();
            d.sim("POST", &format!("/cameras/{cam}/up")).await;
            let out = d.cli(&["camera", "reset", &k.to_string()]);
            assert!(
                out.status.success(),
                "camera reset: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            detected
        }
    };
    let t1 = Instant::now();
    d.wait_status(
        "every camera recording again",
        secs(120),
        |s: &serde_json::Value| {
            let cams = s["cameras"].as_array().unwrap();
            s["mediamtx"]["up"] == true
                && cams
                    .iter()
                    .all(|c| c["state"] == "online" && c["recording"] == true)
        },
    )
    .await;
    (detected.as_secs_f64(), t1.elapsed().as_secs_f64())
}

/// Whether another connection holds a write lock on the SQLite file `db`.
fn locked(db: &Path) -> bool {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return false;
    };
    let _ = c.busy_timeout(Duration::ZERO);
    match c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
        Ok(()) => false,
        Err(_) => true,
    }
}

/// Every segment file of a camera that holds anything, as (start, end) in seconds since the
/// epoch: the start from its name (local time of the box), the end from its
/// last write.
pub(crate) fn segments(root: &Path, k: u32, tz: chrono_tz::Tz) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(root.join(format!("cam_{k}"))) else {
        return out;
    };
    for day in days.flatten() {
        for file in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            let (Some(day_name), Some(stem)) = (
                day.file_name().to_str().map(str::to_string),
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string),
            ) else {
                continue;
            };
            let Ok(naive) = NaiveDateTime::parse_from_str(
                &format!("{day_name}_{stem}"),
                "%Y-%m-%d_%H-%M-%S-%f",
            ) else {
                continue;
            };
            let Some(start) = tz.from_local_datetime(&naive).earliest() else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            // An empty file is no footage (MediaMTX on a full disk creates
            // them and cannot write).
            if meta.len() == 0 {
                continue;
            }
            let end: DateTime<Utc> = meta.modified().unwrap().into();
            out.push((
                start.timestamp_millis() as f64 / 1000.0,
                end.timestamp_millis() as f64 / 1000.0,
            ));
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

#[tokio::test]
#[ignore = "a long soak: scripts/soak [DURATION]"]
async fn soak_write_soak_md() {
    let duration = soak_duration();
    let tg = FakeTelegram::ok().await;
    // The recordings on a disk of their own (an ext4 image, sparse), so
    // that the disk can really fill: 2 GiB and 1 GiB per hour of soak, about
    // twice what eight cameras write, so that it fills only when the soak
    // fills it.
    let gib = 2 + duration.as_secs().div_ceil(3600);
    let d = Daemon::start(Setup {
        cameras: (1..=CAMERAS).map(|k| (k, format!("Câmera {k}"))).collect(),
        monitor: "grace_period = \"2s\"\n".into(),
        extra: tg.config("-1"),
        env: vec![("VMS_TELEGRAM_BOT_TOKEN".into(), "1:SOAK".into())],
        recordings_ext4: Some(gib << 30),
        ..Setup::default()
    });
    d.wait_all_recording(CAMERAS as usize).await;
    let tz: chrono_tz::Tz = "America/Sao_Paulo".parse().unwrap();
    // The soak's footage is its evidence: held, as an auditor would hold
    // it, so that the full disk of `DiskFilled` cannot make the daemon
    // evict it (eviction is tested in storage.rs).
    let today = Utc::now().with_timezone(&tz).date_naive();
    let last_day = today + chrono::Days::new(1 + duration.as_secs() / 86_400);
    for k in 1..=CAMERAS {
        let out = d.cli(&[
            "hold",
            "add",
            &k.to_string(),
            "--from",
            &format!("{today} 00:00"),
            "--to",
            &format!("{last_day} 23:59"),
            "--reason",
            "soak evidence",
        ]);
        assert!(
            out.status.success(),
            "hold add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The first fault comes once every camera has rotated a segment: from
    // then on the daemon knows each camera's cadence, as it does for the
    // rest of a camera's life (a failure in a camera's first minute, before
    // that, is measured in BENCHMARKS.md).
    d.wait_status(
        "every camera past its first segment rotation",
        secs(150),
        |s| {
            s["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["segments_completed"].as_u64() >= Some(1))
        },
    )
    .await;
    // Segments of files the soak deleted (`RootDeleted`), kept for the
    // gap check at the end.
    let mut deleted: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    let began = now_epoch();
    let t_start = Instant::now();
    let mut times: BTreeMap<Fault, Times> = BTreeMap::new();
    let mut outages: Vec<Outage> = Vec::new();
    // The fault of each outage, in the same order.
    let mut faults_of_outages: Vec<Fault> = Vec::new();
    let mut false_alarms = Vec::new();
    // Per fault, the daemon's threshold for the camera when it was injected.
    let mut thresholds: BTreeMap<Fault, Vec<f64>> = BTreeMap::new();
    let mut last_alert = 0i64;
    let mut criticals = new_alerts(&d, &mut last_alert)
        .await
        .iter()
        .filter(|a| a["severity"] == "critical" && a["phase"] == "firing")
        .count();
    // (cycle, daemon pid, VmRSS KiB, fds) after each quiet period.
    let mut samples: Vec<(usize, u32, f64, usize)> = Vec::new();
    let mut cycle = 0usize;
    // `VMS_SOAK_ONLY=RootDeleted,DbLocked`: cycle through these faults only.
    let only = std::env::var("VMS_SOAK_ONLY").unwrap_or_default();
    let faults: Vec<Fault> = CYCLE
        .into_iter()
        .filter(|f| only.is_empty() || only.split(',').any(|o| o.trim() == format!("{f:?}")))
        .collect();
    assert!(
        !faults.is_empty(),
        "VMS_SOAK_ONLY={only}: no such fault in {CYCLE:?}"
    );
    while t_start.elapsed() < duration {
        let fault = faults[cycle % faults.len()];
        let k = (cycle as u32 % CAMERAS) + 1;
        if fault == Fault::RootDeleted {
            for cam in 1..=CAMERAS {
                deleted
                    .entry(cam)
                    .or_default()
                    .extend(segments(&d.recordings, cam, tz));
            }
        }
        // The threshold the daemon applies to this camera as the fault comes
        // (learned from its cadence): what a slow detection is measured against.
        let threshold = match threshold_key(fault) {
            Some(key) => d.status().await.and_then(|s| camera(&s, k)[key].as_f64()),
            None => None,
        };
        let from = now_epoch();
        let (detect, repair) = inject(&d, fault, k).await;
        faults_of_outages.push(fault);
        outages.push(Outage {
            cameras: if fault.all_cameras() {
                (1..=CAMERAS).collect()
            } else {
                vec![k]
            },
            from,
            to: now_epoch(),
        });
        let t = times.entry(fault).or_default();
        t.detect.push(detect);
        t.repair.push(repair);
        let judged = threshold
            .map(|t| format!(" (threshold {t:.2} s)"))
            .unwrap_or_default();
        if let Some(t) = threshold {
            thresholds.entry(fault).or_default().push(t);
        }
        eprintln!(
            "soak: cycle {cycle} {fault:?} cam_{k}: detected {detect:.1} s{judged}, all recording {repair:.1} s later; \
             box delays so far {}",
            box_delays(&d)
        );

        let (n, alarms) = criticals_then_quiet(&d, &mut last_alert, QUIET).await;
        criticals += n;
        if !alarms.is_empty() {
            false_alarms.push(format!("cycle {cycle}, after {fault:?}: {alarms:?}"));
        }
        if fault == Fault::RootDeleted && n > 0 {
            // MediaMTX re-creates the tree and keeps recording: nothing to
            // page about.
            false_alarms.push(format!("cycle {cycle}, {fault:?}: {n} Critical alerts"));
        }
        let pid = d.pid();
        samples.push((cycle, pid, proc_value(pid, "VmRSS:"), fds(pid)));
        cycle += 1;
    }
    let ended = now_epoch();

    // Nothing lost: the outbox drains and every Critical alert was pushed.
    let outbox_empty = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("vms_alert_outbox_depth"))
            .all(|l| l.ends_with(" 0"))
    };
    let deadline = Instant::now() + secs(30);
    let mut metrics = d.metrics().await;
    while !outbox_empty(&metrics) && Instant::now() < deadline {
        d.observe(secs(1)).await;
        metrics = d.metrics().await;
    }
    let depth_zero = outbox_empty(&metrics);
    let pushed = tg.requests().len();

    // Recording gaps, each attributed to an outage of that camera or not.
    let mut gaps = 0usize;
    let mut gap_seconds = 0.0;
    let mut unexplained = Vec::new();
    // The largest hole between two segment files outside every outage: the
    // normal rotation, which should be next to nothing.
    let mut rotation_hole = 0.0f64;
    let mut holes_in: Vec<f64> = vec![0.0; outages.len()];
    for k in 1..=CAMERAS {
        let mut segs = deleted.remove(&k).unwrap_or_default();
        segs.extend(segments(&d.recordings, k, tz));
        segs.sort_by(|a, b| a.0.total_cmp(&b.0));
        segs.dedup_by(|a, b| a.0 == b.0);
        // What each outage cost this camera: its longest hole.
        for (i, o) in outages.iter().enumerate() {
            if !o.cameras.contains(&k) {
                continue;
            }
            for w in segs.windows(2) {
                let (hole_from, hole_to) = (w[0].1, w[1].0);
                if hole_to > o.from - SLACK && hole_from < o.to + SLACK {
                    holes_in[i] = holes_in[i].max(hole_to - hole_from);
                }
            }
        }
        for w in segs.windows(2) {
            let (hole_from, hole_to) = (w[0].1, w[1].0);
            if hole_from < began || hole_to > ended {
                continue;
            }
            let explained = outages.iter().any(|o| {
                o.cameras.contains(&k) && hole_from >= o.from - SLACK && hole_to <= o.to + SLACK
            });
            if !explained {
                rotation_hole = rotation_hole.max(hole_to - hole_from);
            }
            if hole_to - hole_from < GAP_MIN {
                continue;
            }
            gaps += 1;
            gap_seconds += hole_to - hole_from;
            if !explained {
                let hms = |t: f64| {
                    Utc.timestamp_millis_opt((t * 1000.0) as i64)
                        .unwrap()
                        .format("%H:%M:%S%.1f")
                        .to_string()
                };
                // The outage it overlaps, if any: what to read first.
                let near = outages
                    .iter()
                    .zip(&faults_of_outages)
                    .find(|(o, _)| hole_to > o.from - SLACK && hole_from < o.to + SLACK)
                    .map(|(o, f)| format!(" (overlaps {f:?} {}-{})", hms(o.from), hms(o.to)))
                    .unwrap_or_default();
                unexplained.push(format!(
                    "cam_{k}: {:.1} s from {} to {}{near}",
                    hole_to - hole_from,
                    hms(hole_from),
                    hms(hole_to)
                ));
            }
        }
    }

    for (fault, hole) in faults_of_outages.iter().zip(&holes_in) {
        times.entry(*fault).or_default().gap.push(*hole);
    }

    // Growth: the same daemon process, from its first sample to its last.
    let last_pid = samples.last().map(|s| s.1).unwrap_or(0);
    let same: Vec<_> = samples.iter().filter(|s| s.1 == last_pid).collect();
    let (rss_first, rss_last, fds_first, fds_last) = match (same.first(), same.last()) {
        (Some(a), Some(b)) => (a.2 / 1024.0, b.2 / 1024.0, a.3, b.3),
        _ => (f64::NAN, f64::NAN, 0, 0),
    };
    let rss_max = samples
        .iter()
        .map(|s| s.2 / 1024.0)
        .fold(f64::NAN, f64::max);

    let mut md = String::new();
    writeln!(md, "# Soak\n").unwrap();
    writeln!(
        md,
        "Produced by `scripts/soak [DURATION]` (the ignored test `soak_write_soak_md` in\n\
         `tests/it/soak.rs`): the real daemon (release build) against the `mediamtx-sim`\n\
         stand-in with {CAMERAS} cameras and a local Telegram Bot API, cycling through every\n\
         fault below; after each one the box must record on every camera again and then stay\n\
         quiet for {} s with no new alert. Default settings except `grace_period = 2s`. The\n\
         first fault comes after every camera's first segment rotation (the daemon knows each\n\
         camera's cadence from then on; a failure in a camera's first minute is measured in\n\
         BENCHMARKS.md). Times are read from the daemon's API, polled every 100 ms. Rerun it\n\
         to refresh this file.\n",
        QUIET.as_secs()
    )
    .unwrap();
    writeln!(
        md,
        "Run: {} UTC on {} ({} cores), {} of wall-clock time, {cycle} faults.\n",
        Utc::now().format("%Y-%m-%d %H:%M"),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        humanize(t_start.elapsed()),
    )
    .unwrap();
    // Which build ran (the soak may outlive several commits).
    let version = std::process::Command::new(crate::harness::daemon_binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    writeln!(md, "Daemon: `{version}`.\n").unwrap();
    writeln!(
        md,
        "| Fault | Runs | Seen by the daemon, median | worst | Every camera recording again, median | worst | Longest recording gap it caused, median | worst |\n|---|---|---|---|---|---|---|---|"
    )
    .unwrap();
    for (fault, t) in &times {
        writeln!(
            md,
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            fault.describe(),
            t.detect.len(),
            median(&t.detect),
            worst(&t.detect),
            median(&t.repair),
            worst(&t.repair),
            median(&t.gap),
            worst(&t.gap)
        )
        .unwrap();
    }
    writeln!(md, "\n| Check | Result |\n|---|---|").unwrap();
    writeln!(
        md,
        "| Recording gaps of {GAP_MIN} s or more in the segment files | {gaps} ({gap_seconds:.0} s in all) |"
    )
    .unwrap();
    writeln!(
        md,
        "| Gaps outside an injected outage of that camera | {} |",
        unexplained.len()
    )
    .unwrap();
    writeln!(
        md,
        "| Largest hole between two segment files outside an outage (rotation) | {rotation_hole:.2} s |"
    )
    .unwrap();
    writeln!(
        md,
        "| New alerts while the box was healthy (false alarms) | {} |",
        false_alarms.len()
    )
    .unwrap();
    writeln!(
        md,
        "| Critical alerts / Telegram messages received (incl. resolutions) | {criticals} / {pushed} |"
    )
    .unwrap();
    writeln!(
        md,
        "| Alert outbox empty at the end | {} |",
        if depth_zero { "yes" } else { "no" }
    )
    .unwrap();
    writeln!(
        md,
        "| Daemon RSS (VmRSS), last process: first sample / last / max of all | {rss_first:.1} / {rss_last:.1} / {rss_max:.1} MiB |"
    )
    .unwrap();
    writeln!(
        md,
        "| Daemon open files, last process: first sample / last | {fds_first} / {fds_last} |"
    )
    .unwrap();
    writeln!(
        md,
        "\nNotes:\n\n\
         - A gap is the time between the last write of a segment file and the start of the\n  \
         next one. Gaps inside an outage are the outage itself: the camera was not sending,\n  \
         or MediaMTX (with every recorder) was down until the daemon restarted it.\n\
         - \"Seen by the daemon\" runs from the injection to the daemon's API showing the\n  \
         camera not online (MediaMTX down or replaced, for the MediaMTX rows). \"Recording\n  \
         again\" runs from the end of the fault (camera back, recorder cleared once the\n  \
         daemon re-created the path, `camera reset` done; for MediaMTX and the daemon, from\n  \
         detection) to every camera online and recording.\n\
         - \"Seen\" for the faults that do not stop a recorder is the design's own timer, not\n  \
         a detection threshold: a hung API is declared after `hang_probes` (3) probes in a\n  \
         row failed (1 s apart, 3 s timeout each); the root deletion is seen when every\n  \
         camera records in the re-created tree; the full disk counts from the filler's first\n  \
         byte (filling the disk takes most of it) to the disk-full incident; the offline\n  \
         camera is declared offline after `failures_to_offline` (3) failed repairs.\n\
         - \"Longest recording gap it caused\" is, per injection, the longest hole between two\n  \
         segment files of an affected camera during the outage; a hole under {GAP_MIN} s is\n  \
         the normal rotation (MediaMTX starts the next file at a keyframe). A killed daemon\n  \
         leaves MediaMTX recording (the next daemon adopts it), so its gap is a rotation's.\n\
         - The daemon is restarted once per {} faults (the `vms-supervisor killed` row), so\n  \
         growth is judged within the last daemon process.",
        CYCLE.len()
    )
    .unwrap();
    for (fault, t) in &thresholds {
        let mut t = t.clone();
        t.sort_by(f64::total_cmp);
        writeln!(
            md,
            "- {}: the daemon's threshold for the camera when the fault came (`{}`, learned \
             from its cadence), least / median / most: {:.2} / {:.2} / {:.2} s.",
            fault.describe(),
            threshold_key(*fault).unwrap_or_default(),
            t[0],
            t[t.len() / 2],
            t[t.len() - 1]
        )
        .unwrap();
    }
    writeln!(
        md,
        "- Delays most cameras showed together, recognised as the box's (a disk busy with a \
         foreign writer) and not learned as the cameras' cadence (docs/cadence.md): {}.",
        box_delays(&d)
    )
    .unwrap();
    for line in unexplained.iter().chain(false_alarms.iter()) {
        writeln!(md, "- {line}").unwrap();
    }
    // A run of some faults only is a check, not the record.
    if only.is_empty() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("SOAK.md");
        std::fs::write(&out, &md).unwrap();
    }
    eprintln!("{md}");

    assert!(
        unexplained.is_empty(),
        "gaps outside an outage: {unexplained:?}"
    );
    assert!(false_alarms.is_empty(), "false alarms: {false_alarms:?}");
    assert!(depth_zero, "alerts left in the outbox:\n{metrics}");
    assert!(
        pushed >= criticals,
        "{criticals} Critical alerts, {pushed} messages"
    );
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
