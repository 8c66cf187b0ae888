//! The gap ledger: for a camera and a time range, the recorded spans and
//! the gaps between them, each gap with its cause. The audit answer ("when
//! did camera 5 not record last month, and why?") and the data of the
//! dashboard's playback timeline.
//!
//! Spans are the on-disk segments with bytes, merged when the space between
//! two is at most the tolerance (MediaMTX starts the next segment on the
//! keyframe after the previous one ends, and the last write of a segment is
//! up to one part before that). A gap is split where its cause changes; the
//! cause of each piece is, in order of precedence:
//!
//! 1. `evicted` / `deleted`: footage was recorded here and removed later;
//! 2. `disk_full`, `mediamtx_down`, `daemon_down`, `camera_down`,
//!    `recording_stalled`: an interval the daemon recorded;
//! 3. `before_camera_existed`: before the camera's first segment;
//! 4. `unknown`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::catalog::{self, SegState};
use super::{from_micros, to_micros, Cause, Micros};

/// The default merge tolerance: a part (1 s) plus the reporting slack.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(3);

/// A problem is detected some seconds after recording stops (a stall after
/// `monitor.stall_after`, a heartbeat every 10 s): an unexplained start of
/// a gap shorter than this takes the cause that follows it. Likewise a
/// segment being written whose last stored write is this recent records
/// up to now (its size is stored every 10 s, not every second).
pub const DETECTION_SLACK: Micros = 30 * super::SECOND;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub cause: Cause,
}

/// The answer of `GET /api/cameras/{id}/recordings?from&to` and of
/// `vms-supervisor recordings CAMERA --from --to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub camera_id: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Footage on the box's disk (what the dashboard plays back).
    pub spans: Vec<Span>,
    /// Footage no longer on the box (deleted by retention or evicted) but
    /// kept in the backup bucket: not a gap; `vms-supervisor backup
    /// restore` fetches it.
    #[serde(default)]
    pub in_bucket: Vec<Span>,
    /// Time with no footage anywhere, and why.
    pub gaps: Vec<Gap>,
}

/// Reads the catalog and computes the ledger. `to` is clipped to `now`
/// (the future is neither recorded nor a gap).
pub fn query(
    conn: &Connection,
    camera: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> rusqlite::Result<Ledger> {
    let (f, t, n) = (to_micros(from), to_micros(to), to_micros(now));
    let t_eff = t.min(n);
    let mut recorded = Vec::new();
    let mut bucket = Vec::new();
    let mut causes: Vec<(Cause, Micros, Micros)> = Vec::new();
    let tol = tolerance.as_micros() as Micros;
    for (start, end, bytes, state, uploaded) in catalog::intervals(conn, camera, f, t_eff.max(f))? {
        let cause = match state {
            SegState::Evicted | SegState::Deleted if uploaded && bytes > 0 => {
                bucket.push((start, end));
                continue;
            }
            SegState::Recording if bytes > 0 && end >= n - DETECTION_SLACK => {
                recorded.push((start, n));
                continue;
            }
            SegState::Recording | SegState::Complete if bytes > 0 => {
                recorded.push((start, end));
                continue;
            }
            SegState::Evicted => Cause::Evicted,
            SegState::Deleted => Cause::Deleted,
            _ => continue,
        };
        // Runs of removed segments are one interval (segments come in
        // time order), which keeps the gap split cheap.
        match causes.last_mut() {
            Some((c, _, e)) if *c == cause && start <= *e + tol => *e = (*e).max(end),
            _ => causes.push((cause, start, end)),
        }
    }
    causes.extend(catalog::causes(conn, camera, f, t_eff.max(f), n)?);
    let first = catalog::first_segment(conn, camera)?;
    // Gaps: time with footage nowhere, on disk or in the bucket.
    let anywhere: Vec<Interval> = recorded.iter().chain(&bucket).copied().collect();
    let (_, gaps) = compute(f, t_eff, &anywhere, &causes, first, tol);
    let (spans, _) = compute(f, t_eff, &recorded, &[], first, tol);
    let (in_bucket, _) = compute(f, t_eff, &bucket, &[], first, tol);
    let to_spans = |v: Vec<Interval>| {
        v.into_iter()
            .map(|(s, e)| Span {
                start: from_micros(s),
                end: from_micros(e),
            })
            .collect()
    };
    Ok(Ledger {
        camera_id: camera,
        from,
        to,
        spans: to_spans(spans),
        in_bucket: to_spans(in_bucket),
        gaps: gaps
            .into_iter()
            .map(|(s, e, cause)| Gap {
                start: from_micros(s),
                end: from_micros(e),
                cause,
            })
            .collect(),
    })
}

fn rank(c: Cause) -> u8 {
    match c {
        Cause::Evicted => 0,
        Cause::Deleted => 1,
        Cause::DiskFull => 2,
        Cause::MediamtxDown => 3,
        Cause::DaemonDown => 4,
        Cause::CameraDown => 5,
        Cause::RecordingStalled => 6,
        Cause::BeforeCameraExisted => 7,
        Cause::Unknown => 8,
    }
}

/// `(start, end)`.
pub type Interval = (Micros, Micros);
/// `(start, end, cause)`.
pub type CausedInterval = (Micros, Micros, Cause);

/// The pure core: `recorded` intervals (any order) and cause intervals in,
/// spans and gaps within `[from, to)` out.
pub fn compute(
    from: Micros,
    to: Micros,
    recorded: &[(Micros, Micros)],
    causes: &[(Cause, Micros, Micros)],
    first_segment: Option<Micros>,
    tolerance: Micros,
) -> (Vec<Interval>, Vec<CausedInterval>) {
    if to <= from {
        return (Vec::new(), Vec::new());
    }
    let mut rec: Vec<(Micros, Micros)> = recorded.iter().filter(|(s, e)| e > s).copied().collect();
    rec.sort_unstable();
    let mut spans: Vec<(Micros, Micros)> = Vec::new();
    for (s, e) in rec {
        match spans.last_mut() {
            Some(last) if s <= last.1 + tolerance => last.1 = last.1.max(e),
            _ => spans.push((s, e)),
        }
    }
    let spans: Vec<(Micros, Micros)> = spans
        .into_iter()
        .filter(|(s, e)| *e > from && *s < to)
        .map(|(s, e)| (s.max(from), e.min(to)))
        .collect();
    let mut holes = Vec::new();
    let mut cursor = from;
    for &(s, e) in &spans {
        if s > cursor {
            holes.push((cursor, s));
        }
        cursor = cursor.max(e);
    }
    if cursor < to {
        holes.push((cursor, to));
    }
    let mut all_causes: Vec<(Cause, Micros, Micros)> = causes.to_vec();
    if let Some(first) = first_segment {
        all_causes.push((Cause::BeforeCameraExisted, Micros::MIN, first));
    } else {
        all_causes.push((Cause::BeforeCameraExisted, Micros::MIN, Micros::MAX));
    }
    let mut gaps: Vec<(Micros, Micros, Cause)> = Vec::new();
    for (hs, he) in holes {
        // Elementary pieces between every cause boundary inside the hole.
        let mut cuts = vec![hs, he];
        for &(_, cs, ce) in &all_causes {
            if cs > hs && cs < he {
                cuts.push(cs);
            }
            if ce > hs && ce < he {
                cuts.push(ce);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces: Vec<CausedInterval> = Vec::new();
        for w in cuts.windows(2) {
            let (ps, pe) = (w[0], w[1]);
            let cause = all_causes
                .iter()
                .filter(|(_, cs, ce)| *cs <= ps && *ce >= pe)
                .map(|(c, _, _)| *c)
                .min_by_key(|c| rank(*c))
                .unwrap_or(Cause::Unknown);
            match pieces.last_mut() {
                Some(last) if last.2 == cause => last.1 = pe,
                _ => pieces.push((ps, pe, cause)),
            }
        }
        // The problem was detected a little after recording stopped.
        if pieces.len() >= 2
            && pieces[0].2 == Cause::Unknown
            && pieces[0].1 - pieces[0].0 <= DETECTION_SLACK
        {
            pieces[1].0 = pieces[0].0;
            pieces.remove(0);
        }
        gaps.extend(pieces);
    }
    (spans, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::catalog::{CatalogOp, CompleteReason};
    use crate::storage::{SegmentName, SECOND};

    const M: Micros = 60 * SECOND;

    #[test]
    fn adjacent_segments_merge_and_gaps_take_the_strongest_cause() {
        // Minutes 0..10 recorded in 60 s segments ending 1 s early; 10..20
        // camera down; 15..17 also MediaMTX down (stronger); 20..30
        // recorded; 30..40 nothing known; 40..50 evicted.
        let mut rec: Vec<(Micros, Micros)> =
            (0..10).map(|i| (i * M, (i + 1) * M - SECOND)).collect();
        rec.extend((20..30).map(|i| (i * M, (i + 1) * M - SECOND)));
        let causes = vec![
            (Cause::CameraDown, 10 * M - SECOND, 20 * M),
            (Cause::MediamtxDown, 15 * M, 17 * M),
            (Cause::Evicted, 40 * M, 50 * M),
        ];
        let (spans, gaps) = compute(-5 * M, 50 * M, &rec, &causes, Some(0), 3 * SECOND);
        assert_eq!(spans, vec![(0, 10 * M - SECOND), (20 * M, 30 * M - SECOND)]);
        assert_eq!(
            gaps,
            vec![
                (-5 * M, 0, Cause::BeforeCameraExisted),
                (10 * M - SECOND, 15 * M, Cause::CameraDown),
                (15 * M, 17 * M, Cause::MediamtxDown),
                (17 * M, 20 * M, Cause::CameraDown),
                (30 * M - SECOND, 40 * M, Cause::Unknown),
                (40 * M, 50 * M, Cause::Evicted),
            ]
        );
        // A gap longer than the tolerance is a gap.
        let (spans, gaps) = compute(
            0,
            2 * M,
            &[(0, M), (M + 5 * SECOND, 2 * M)],
            &[],
            Some(0),
            3 * SECOND,
        );
        assert_eq!(spans.len(), 2);
        assert_eq!(gaps, vec![(M, M + 5 * SECOND, Cause::Unknown)]);
    }

    #[test]
    fn footage_deleted_from_the_disk_but_in_the_bucket_is_no_gap() {
        let mut conn = catalog::open_in_memory().unwrap();
        let t0: Micros = 1_780_000_000 * SECOND;
        let seg = |i: i64| SegmentName {
            camera: 3,
            start: t0 + i * M,
            rel: format!("cam_3/d/{i}.mp4"),
        };
        let ops: Vec<CatalogOp> = (0..6)
            .map(|i| CatalogOp::Complete {
                seg: seg(i),
                bytes: 1000,
                end: t0 + (i + 1) * M,
                reason: CompleteReason::NextSegment,
            })
            .collect();
        catalog::apply(&mut conn, &ops).unwrap();
        // Minutes 0..2 uploaded then deleted by retention; 2..3 deleted
        // without a copy; 3..6 still on disk.
        for i in 0..2 {
            crate::storage::backup::queue::mark_uploaded(
                &mut conn,
                (3, t0 + i * M),
                &format!("box/cam_3/{i}.mp4"),
                "etag",
                1000,
                t0 + 7 * M,
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE segments SET state = ?1 WHERE camera = 3 AND start_us < ?2",
            rusqlite::params![SegState::Deleted as i64, t0 + 3 * M],
        )
        .unwrap();
        let l = query(
            &conn,
            3,
            from_micros(t0),
            from_micros(t0 + 6 * M),
            from_micros(t0 + 10 * M),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let mins = |v: &[Span]| -> Vec<(i64, i64)> {
            v.iter()
                .map(|s| ((to_micros(s.start) - t0) / M, (to_micros(s.end) - t0) / M))
                .collect()
        };
        assert_eq!(mins(&l.in_bucket), vec![(0, 2)]);
        assert_eq!(mins(&l.spans), vec![(3, 6)]);
        let gaps: Vec<(i64, i64, Cause)> = l
            .gaps
            .iter()
            .map(|g| {
                (
                    (to_micros(g.start) - t0) / M,
                    (to_micros(g.end) - t0) / M,
                    g.cause,
                )
            })
            .collect();
        assert_eq!(gaps, vec![(2, 3, Cause::Deleted)]);
    }

    #[test]
    fn ledger_reads_segments_causes_and_daemon_outages_from_the_catalog() {
        let mut conn = catalog::open_in_memory().unwrap();
        let t0: Micros = 1_780_000_000 * SECOND;
        let seg = |i: i64| SegmentName {
            camera: 2,
            start: t0 + i * M,
            rel: format!("cam_2/d/{i}.mp4"),
        };
        let mut ops = Vec::new();
        for i in 0..5 {
            ops.push(CatalogOp::Complete {
                seg: seg(i),
                bytes: 1000,
                end: t0 + (i + 1) * M - SECOND,
                reason: CompleteReason::NextSegment,
            });
        }
        // A 0-byte segment (disk full) is not footage.
        ops.push(CatalogOp::Complete {
            seg: seg(5),
            bytes: 0,
            end: t0 + 6 * M,
            reason: CompleteReason::Empty,
        });
        ops.push(CatalogOp::Cause {
            camera: None,
            cause: Cause::DiskFull,
            active: true,
            at: t0 + 5 * M - SECOND,
        });
        ops.push(CatalogOp::Cause {
            camera: None,
            cause: Cause::DiskFull,
            active: false,
            at: t0 + 7 * M,
        });
        ops.push(CatalogOp::Heartbeat { at: t0 + 7 * M });
        catalog::apply(&mut conn, &ops).unwrap();
        // The daemon was down 7..9; then recording resumed.
        catalog::start_session(&mut conn, t0 + 9 * M).unwrap();
        catalog::apply(
            &mut conn,
            &[CatalogOp::Grown {
                seg: seg(9),
                bytes: 10,
                at: t0 + 10 * M,
            }],
        )
        .unwrap();
        let l = query(
            &conn,
            2,
            from_micros(t0 - M),
            from_micros(t0 + 11 * M),
            from_micros(t0 + 10 * M),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["camera_id"], 2);
        let gaps: Vec<(i64, i64, &str)> = l
            .gaps
            .iter()
            .map(|g| {
                (
                    (to_micros(g.start) - t0) / SECOND,
                    (to_micros(g.end) - t0) / SECOND,
                    g.cause.as_str(),
                )
            })
            .collect();
        assert_eq!(
            gaps,
            vec![
                (-60, 0, "before_camera_existed"),
                (299, 420, "disk_full"),
                (420, 540, "daemon_down"),
            ]
        );
        assert_eq!(l.spans.len(), 2);
        assert_eq!(to_micros(l.spans[1].end), t0 + 10 * M, "clipped to now");
    }
}
