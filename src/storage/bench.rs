//! The storage scale benchmark behind the "Storage catalog" section of
//! `BENCHMARKS.md`: 64 cameras x 90 days of 60 s segments (8.3 million
//! rows), with a real directory tree (every day directory; the files of the
//! two newest days of every camera, sparse, which is what a start lists).
//! Run by `scripts/bench`:
//!
//! ```text
//! cargo test --release --locked --lib storage::bench -- --ignored --nocapture --test-threads=1
//! ```
//!
//! The measures that a daemon would do at start (open, reconcile, summary)
//! and a ledger query run in a child process (this test binary again, the
//! ignored test `storage_bench_probe`), so its peak RSS is that of the
//! storage work alone and not of the generation of the data set.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::params;

use super::catalog::{self, CandidateQuery, Purpose};
use super::{exec, ledger, segment_rel_path, Micros, DAY, SECOND};

/// The scale; `VMS_STORAGE_BENCH_SCALE=small` runs 4 cameras x 5 days (a
/// smoke run of the benchmark itself).
fn small() -> bool {
    std::env::var("VMS_STORAGE_BENCH_SCALE").is_ok_and(|v| v == "small")
}

fn cameras() -> u32 {
    if small() {
        4
    } else {
        64
    }
}

fn days() -> i64 {
    if small() {
        5
    } else {
        90
    }
}
const SEG: Micros = 60 * SECOND;
/// 2 Mbit/s for 60 s.
const SEG_BYTES: i64 = 15_000_000;
/// The newest days of each camera that have real files.
const REAL_DAYS: i64 = 2;

fn tz() -> chrono_tz::Tz {
    "America/Sao_Paulo".parse().unwrap()
}

/// Midnight in São Paulo, the first day of the data set.
const T0: Micros = 1_795_057_200 * SECOND;

fn now() -> Micros {
    T0 + days() * DAY
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn set_mtime(p: &Path, us: Micros) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(us / SECOND, (us % SECOND) * 1000);
    utimensat(None, p, &t, &t, UtimensatFlags::FollowSymlink).unwrap();
}

/// Builds the catalog and the tree; returns (rows, seconds).
fn generate(db: &Path, root: &Path) -> (u64, f64) {
    let t = Instant::now();
    let mut conn = catalog::open(db).unwrap();
    conn.execute_batch("PRAGMA cache_size = -200000").unwrap();
    // Bulk load: the secondary indexes and the triggers of the real schema
    // are set aside and re-created after (the same SQL, from sqlite_master),
    // and the counters are computed once; same result, a fraction of the time.
    let deferred: Vec<(String, String)> = {
        let mut st = conn
            .prepare(
                "SELECT type, name, sql FROM sqlite_master
                 WHERE tbl_name = 'segments' AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            )
            .unwrap();
        let rows = st
            .query_map([], |r| {
                Ok((
                    format!("DROP {} {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    r.get::<_, String>(2)?,
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    for (drop, _) in &deferred {
        conn.execute_batch(drop).unwrap();
    }
    let mut rows = 0u64;
    let per_day = DAY / SEG;
    for cam in 1..=cameras() {
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO segments(camera, start_us, end_us, path, bytes, state, complete_reason, state_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'next_segment', ?3)",
                )
                .unwrap();
            let total = days() * per_day;
            for i in 0..total {
                let start = T0 + i * SEG + i64::from(cam) * 1000;
                let end = start + SEG - SECOND;
                let state = if i == total - 1 { 0 } else { 1 };
                ins.execute(params![
                    cam,
                    start,
                    end,
                    segment_rel_path(cam, start, tz()),
                    SEG_BYTES,
                    state
                ])
                .unwrap();
                rows += 1;
            }
        }
        tx.commit().unwrap();
    }
    for (_, create) in &deferred {
        conn.execute_batch(create).unwrap();
    }
    conn.execute_batch(
        "INSERT INTO camera_stats(camera, first_start_us, segments_on_disk, bytes_on_disk)
         SELECT camera, min(start_us), sum(state < 2), sum(CASE WHEN state < 2 THEN bytes ELSE 0 END)
         FROM segments GROUP BY camera",
    )
    .unwrap();
    // The tree: every day directory, files for the newest days only.
    let tx = conn.transaction().unwrap();
    for cam in 1..=cameras() {
        for d in 0..days() {
            let start = T0 + d * DAY + i64::from(cam) * 1000;
            let rel = segment_rel_path(cam, start, tz());
            let day_dir = root.join(Path::new(&rel).parent().unwrap());
            std::fs::create_dir_all(&day_dir).unwrap();
            if d >= days() - REAL_DAYS {
                for i in 0..per_day {
                    let s = start + i * SEG;
                    let f = root.join(segment_rel_path(cam, s, tz()));
                    let file = std::fs::File::create(&f).unwrap();
                    file.set_len(SEG_BYTES as u64).unwrap();
                    drop(file);
                    set_mtime(&f, s + SEG - SECOND);
                }
            }
            let m = std::fs::metadata(&day_dir).unwrap();
            let day = day_dir.file_name().unwrap().to_string_lossy().into_owned();
            tx.execute(
                "INSERT OR REPLACE INTO dirs(camera, day, mtime_ns) VALUES (?1, ?2, ?3)",
                params![cam, day, m.mtime() * 1_000_000_000 + m.mtime_nsec()],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    catalog::apply(
        &mut conn,
        &[catalog::CatalogOp::Heartbeat {
            at: now() - 600 * SECOND,
        }],
    )
    .unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .unwrap();
    (rows, t.elapsed().as_secs_f64())
}

/// What a daemon does at start, then a month's ledger; printed as one line
/// of `key=value` for the parent.
fn probe(db: &Path, root: &Path) -> String {
    let t = Instant::now();
    let mut conn = catalog::open(db).unwrap();
    let open = t.elapsed();
    catalog::start_session(&mut conn, now()).unwrap();
    let r = catalog::reconcile(&mut conn, root, tz(), now()).unwrap();
    let reconcile = t.elapsed() - open;
    let s = catalog::summary(&conn, now()).unwrap();
    let startup = t.elapsed();
    let _ = s;
    let mut ledger_ms = Vec::new();
    let mut spans = 0;
    for cam in [7, 23, 41, 64, 7].map(|c| (c - 1) % cameras() + 1) {
        let t = Instant::now();
        let l = ledger::query(
            &conn,
            cam,
            super::from_micros(now() - 30 * DAY),
            super::from_micros(now()),
            super::from_micros(now()),
            ledger::DEFAULT_TOLERANCE,
        )
        .unwrap();
        ledger_ms.push(ms(t.elapsed()));
        spans = l.spans.len() + l.gaps.len();
    }
    ledger_ms.sort_by(f64::total_cmp);
    format!(
        "open_ms={:.1} reconcile_ms={:.1} startup_ms={:.1} dirs_total={} dirs_listed={} added={} removed={} ledger_median_ms={:.1} ledger_worst_ms={:.1} ledger_items={} hwm_kib={}",
        ms(open),
        ms(reconcile),
        ms(startup),
        r.dirs_total,
        r.dirs_listed,
        r.added,
        r.removed,
        ledger_ms[2],
        ledger_ms[4],
        spans,
        vm_hwm_kib()
    )
}

fn run_probe(db: &Path, root: &Path) -> std::collections::HashMap<String, String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "storage::bench::storage_bench_probe",
            "--nocapture",
        ])
        .env("VMS_STORAGE_BENCH_DB", db)
        .env("VMS_STORAGE_BENCH_ROOT", root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("PROBE "))
        .unwrap_or_else(|| {
            panic!(
                "probe failed: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line["PROBE ".len()..]
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
#[ignore]
fn storage_bench_probe() {
    let (Some(db), Some(root)) = (
        std::env::var_os("VMS_STORAGE_BENCH_DB"),
        std::env::var_os("VMS_STORAGE_BENCH_ROOT"),
    ) else {
        return;
    };
    println!("PROBE {}", probe(Path::new(&db), Path::new(&root)));
}

#[test]
#[ignore]
fn storage_bench_write_benchmarks_md() {
    let base = std::env::var_os("VMS_STORAGE_BENCH_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let db = dir.path().join("storage.db");
    let root = dir.path().join("recordings");
    let (rows, gen_s) = generate(&db, &root);
    let db_bytes = std::fs::metadata(&db).unwrap().len();
    {
        // The bulk load left the catalog as the triggers would have.
        let conn = catalog::open(&db).unwrap();
        let s = catalog::summary(&conn, now()).unwrap();
        assert_eq!(s.cameras.len(), cameras() as usize);
        assert!(s
            .cameras
            .iter()
            .all(|c| c.segments_on_disk == (days() * DAY / SEG) as u64
                && c.first_start < T0 + SECOND));
    }
    println!(
        "generated {rows} rows in {gen_s:.0} s; {} MiB",
        db_bytes >> 20
    );

    // 1. A start with nothing changed since the last run.
    let quiet = run_probe(&db, &root);
    // 2. A start after 30 minutes down: 30 new segments per camera in the
    //    newest day, and one old day of camera 9 removed by someone.
    for cam in 1..=cameras() {
        for i in 0..30 {
            let s = now() + i * SEG + i64::from(cam) * 1000;
            let f = root.join(segment_rel_path(cam, s, tz()));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            let file = std::fs::File::create(&f).unwrap();
            file.set_len(SEG_BYTES as u64).unwrap();
        }
    }
    let cam = cameras().min(9);
    let old_day = root.join(
        Path::new(&segment_rel_path(
            cam,
            T0 + days() / 3 * DAY + i64::from(cam) * 1000,
            tz(),
        ))
        .parent()
        .unwrap(),
    );
    std::fs::remove_dir_all(&old_day).unwrap();
    let after_down = run_probe(&db, &root);

    // 3. A retention sweep of one day (64 x 1440 segments) in batches of 500,
    //    through the real executor (the files of that day are absent here:
    //    the unlink answers ENOENT, which counts as deleted).
    let mut conn = catalog::open(&db).unwrap();
    let cutoffs: Vec<(u32, Micros)> = (1..=cameras())
        .map(|c| (c, T0 + DAY + 60 * SECOND))
        .collect();
    let t = Instant::now();
    let mut deleted = 0;
    let mut batches = 0;
    let mut query_time = Duration::ZERO;
    loop {
        let q = Instant::now();
        let b = catalog::candidates(
            &conn,
            &CandidateQuery {
                purpose: Purpose::Retention,
                limit: 500,
                cutoffs: cutoffs.clone(),
                backup_enabled: false,
            },
        )
        .unwrap();
        query_time += q.elapsed();
        if b.segments.is_empty() {
            break;
        }
        let o = exec::delete_segments(&mut conn, &root, Purpose::Retention, &b.segments, now());
        deleted += o.deleted.len();
        batches += 1;
    }
    let sweep = t.elapsed();
    // 4. One eviction candidate query (the oldest 500 of any camera).
    let t = Instant::now();
    let ev = catalog::candidates(
        &conn,
        &CandidateQuery {
            purpose: Purpose::Eviction,
            limit: 500,
            cutoffs: Vec::new(),
            backup_enabled: true,
        },
    )
    .unwrap();
    let evict_q = t.elapsed();
    assert_eq!(ev.segments.len(), 500);
    // 5. The summary the machine reads every 5 minutes, with the swept
    //    day's rows still in the catalog (kept 30 days as history).
    let t = Instant::now();
    let sum = catalog::summary(&conn, now()).unwrap();
    let summary_t = t.elapsed();
    assert_eq!(sum.cameras.len(), cameras() as usize);
    drop(conn);
    let db_after = std::fs::metadata(&db).unwrap().len();

    let g = |m: &std::collections::HashMap<String, String>, k: &str| m[k].clone();
    let mut md = String::new();
    let _ = writeln!(md, "## Storage catalog (scale)\n");
    let _ = writeln!(
        md,
        "Produced by `scripts/bench` (the ignored test `storage_bench_write_benchmarks_md` in\n\
         `src/storage/bench.rs`, release build): a synthetic catalog of {} cameras x {} days of\n\
         60 s segments ({rows} rows) in a real SQLite file, and a real recordings tree with every\n\
         day directory and, for the two newest days of every camera, every segment file\n\
         (sparse). Start-up and ledger figures come from a child process that only opens the\n\
         catalog, reconciles, reads the summary and queries ledgers; the page cache is warm.\n",
        cameras(),
        days()
    );
    let _ = writeln!(
        md,
        "Run: {} on {} ({} cores). Data set built in {gen_s:.0} s.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(md, "| Measure | Target | Result |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| Start-up (open, reconcile, summary), nothing changed | < 5 s | {:.0} ms ({} of {} day directories listed) |",
        g(&quiet, "startup_ms").parse::<f64>().unwrap(),
        g(&quiet, "dirs_listed"),
        g(&quiet, "dirs_total")
    );
    let _ = writeln!(
        md,
        "| Start-up after 30 min down ({} new segments, one old day removed) | < 5 s | {:.0} ms ({} added, {} marked removed) |",
        30 * cameras(),
        g(&after_down, "startup_ms").parse::<f64>().unwrap(),
        g(&after_down, "added"),
        g(&after_down, "removed")
    );
    let _ = writeln!(
        md,
        "| Gap ledger, one camera, 30 days (median of 5; worst) | < 100 ms | {} ms; {} ms |",
        g(&quiet, "ledger_median_ms"),
        g(&quiet, "ledger_worst_ms")
    );
    let _ = writeln!(
        md,
        "| Retention sweep of one day ({deleted} segments, {batches} batches of 500) | – | {:.1} s ({:.1} ms a batch; queries {:.1} s) |",
        sweep.as_secs_f64(),
        ms(sweep) / f64::from(batches.max(1)),
        query_time.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| Eviction candidates (oldest 500 of any camera) | – | {:.1} ms |",
        ms(evict_q)
    );
    let _ = writeln!(
        md,
        "| Catalog summary (all cameras) after the sweep | – | {:.1} ms |",
        ms(summary_t)
    );
    let _ = writeln!(
        md,
        "| Database size, {rows} rows (after the sweep) | – | {} MiB ({} MiB) |",
        db_bytes >> 20,
        db_after >> 20
    );
    let _ = writeln!(
        md,
        "| Peak RSS of the start-up and ledger process (VmHWM) | < 30 MiB | {:.1} MiB |",
        g(&quiet, "hwm_kib").parse::<f64>().unwrap() / 1024.0
    );
    let _ = writeln!(
        md,
        "\nNotes:\n\n\
         - A start lists only the day directories whose mtime changed since the catalog last\n  \
         agreed with them, plus the two newest days of each camera; every other day directory\n  \
         is one `stat`.\n\
         - The RSS is that of a test process (the storage code, SQLite's page cache of 2 MiB\n  \
         per connection and the test harness), not of the whole daemon.\n"
    );
    println!("{md}");
    if small() {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice(&old, &md)).unwrap();
}

const BEGIN: &str = "<!-- storage-bench:begin -->";
const END: &str = "<!-- storage-bench:end -->";

/// Replaces the storage section of `doc` (between the markers), or appends it.
fn splice(doc: &str, section: &str) -> String {
    let block = format!("{BEGIN}\n{section}{END}\n");
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!(
                "{}{block}{}",
                &doc[..b],
                doc[e + END.len()..].trim_start_matches('\n')
            )
        }
        _ => {
            let mut d = doc.trim_end().to_string();
            if !d.is_empty() {
                d.push_str("\n\n");
            }
            d + &block
        }
    }
}

#[test]
fn splice_replaces_only_the_storage_section() {
    let once = splice("# Benchmarks\n\nother\n", "A\n");
    assert_eq!(
        once,
        format!("# Benchmarks\n\nother\n\n{BEGIN}\nA\n{END}\n")
    );
    let twice = splice(&format!("{once}tail\n"), "B\n");
    assert_eq!(
        twice,
        format!("# Benchmarks\n\nother\n\n{BEGIN}\nB\n{END}\ntail\n")
    );
}
