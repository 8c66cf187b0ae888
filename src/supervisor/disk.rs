//! Disk thresholds of the recordings filesystem, as a decision: Warning at
//! `disk_warning_percent`, Critical at `disk_critical_percent` (the design's
//! 85 % and 90 %), one alert per change of level, not one per check.
//!
//! A level is left only [`HYSTERESIS`] points below its threshold, so that a
//! disk hovering at 85.0 % while segments are written and deleted does not
//! open and resolve an alert every minute. Going down from Critical to
//! Warning changes nothing visible: the open alert keeps its severity until
//! the disk is below the warning threshold and it is resolved.

use chrono::{DateTime, Utc};

use crate::events::{AlertEvent, Issue, Phase, Severity};
use crate::status::DiskView;

/// Percentage points below a threshold before its level is left.
pub const HYSTERESIS: f64 = 1.0;

/// Less than this left for MediaMTX's user: the disk is full (a recorder
/// needs room for its next part, a few hundred kilobytes per camera).
pub const FULL_BELOW: u64 = 1 << 20;
/// A full disk is left when this much is free again.
pub const NOT_FULL_ABOVE: u64 = 8 << 20;

/// One `statvfs` of the recordings filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskReading {
    pub mount_point: String,
    pub total_bytes: u64,
    /// Free blocks, including the ones reserved for root.
    pub free_bytes: u64,
    /// Free blocks an unprivileged writer (MediaMTX) may use.
    pub available_bytes: u64,
}

impl DiskReading {
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.free_bytes)
    }

    /// Used percentage as `df` computes it: used / (used + available to
    /// users), so that a disk whose reserve is all that is left shows 100 %.
    pub fn percent(&self) -> f64 {
        let used = self.used_bytes();
        if used + self.available_bytes == 0 {
            0.0
        } else {
            used as f64 * 100.0 / (used + self.available_bytes) as f64
        }
    }

    pub fn view(&self) -> DiskView {
        DiskView {
            mount_point: self.mount_point.clone(),
            percent: self.percent(),
            used_bytes: self.used_bytes(),
            total_bytes: self.total_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warning: f64,
    pub critical: f64,
}

/// The level the disk is at, and the decisions about it.
#[derive(Debug, Default)]
pub struct DiskWatch {
    level: Option<Severity>,
    full: bool,
}

impl DiskWatch {
    pub fn new() -> DiskWatch {
        DiskWatch::default()
    }

    /// No room left to record: one "disco cheio" incident for the box (not
    /// one per camera; the cameras are not judged meanwhile).
    pub fn full(&self) -> bool {
        self.full
    }

    /// Judges one reading; returns the alerts to raise or resolve: the
    /// level when it changed, and the full disk when it filled or emptied.
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        reading: &DiskReading,
        t: Thresholds,
    ) -> Vec<AlertEvent> {
        let mut out: Vec<AlertEvent> = self.level(at, reading, t).into_iter().collect();
        let full = if self.full {
            reading.available_bytes < NOT_FULL_ABOVE
        } else {
            reading.available_bytes < FULL_BELOW
        };
        if full != self.full {
            self.full = full;
            out.push(AlertEvent::system(
                at,
                Severity::Critical,
                if full { Phase::Firing } else { Phase::Resolved },
                format!("disk:{}:full", reading.mount_point),
                Issue::DiskFull,
                if full {
                    format!(
                        "no space left on {} ({} bytes free): no camera can record",
                        reading.mount_point, reading.available_bytes
                    )
                } else {
                    format!("space is free again on {}", reading.mount_point)
                },
            ));
        }
        out
    }

    fn level(
        &mut self,
        at: DateTime<Utc>,
        reading: &DiskReading,
        t: Thresholds,
    ) -> Option<AlertEvent> {
        let percent = reading.percent();
        let level = if percent >= t.critical {
            Some(Severity::Critical)
        } else if percent >= t.warning {
            Some(Severity::Warning)
        } else {
            None
        };
        // Leaving a level needs HYSTERESIS points of margin.
        let level = match (self.level, level) {
            (Some(Severity::Critical), l) if l < Some(Severity::Critical) => {
                if percent >= t.critical - HYSTERESIS {
                    Some(Severity::Critical)
                } else if percent >= t.warning - HYSTERESIS {
                    Some(Severity::Warning)
                } else {
                    l
                }
            }
            (Some(Severity::Warning), None) if percent >= t.warning - HYSTERESIS => {
                Some(Severity::Warning)
            }
            (_, l) => l,
        };
        let before = std::mem::replace(&mut self.level, level);
        let key = format!("disk:{}", reading.mount_point);
        match (before, level) {
            (b, Some(now)) if Some(now) > b => {
                let issue = if now == Severity::Critical {
                    Issue::DiskCritical
                } else {
                    Issue::DiskWarning
                };
                Some(AlertEvent::system(
                    at,
                    now,
                    Phase::Firing,
                    key,
                    issue,
                    format!("recordings disk {} at {percent:.1}%", reading.mount_point),
                ))
            }
            (Some(_), None) => Some(AlertEvent::system(
                at,
                Severity::Warning,
                Phase::Resolved,
                key,
                Issue::DiskWarning,
                format!("recordings disk {} at {percent:.1}%", reading.mount_point),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        warning: 85.0,
        critical: 90.0,
    };

    const GIB: u64 = 1 << 30;

    fn at_percent(p: f64) -> DiskReading {
        // 1000 GiB, no reserve: percent = used / 10.
        let used = (p * 10.0).round() as u64 * GIB;
        DiskReading {
            mount_point: "/srv".into(),
            total_bytes: 1000 * GIB,
            free_bytes: 1000 * GIB - used,
            available_bytes: 1000 * GIB - used,
        }
    }

    /// Regression (disk 100 % full): one "disco cheio" incident for the
    /// box, resolved when space is free again, with no flapping at the edge.
    #[test]
    fn a_full_disk_is_one_incident() {
        let mut w = DiskWatch::new();
        let reading = |avail: u64| DiskReading {
            mount_point: "/srv".into(),
            total_bytes: 100 << 20,
            free_bytes: avail,
            available_bytes: avail,
        };
        let full: Vec<_> = w.observe(Utc::now(), &reading(0), T);
        assert!(w.full());
        let disk_full: Vec<_> = full.iter().filter(|e| e.issue == Issue::DiskFull).collect();
        assert_eq!(disk_full.len(), 1);
        assert_eq!(
            (disk_full[0].severity, disk_full[0].phase),
            (Severity::Critical, Phase::Firing)
        );
        assert!(disk_full[0].camera.is_none());
        for avail in [0, 512 << 10, 2 << 20, 0] {
            assert!(
                w.observe(Utc::now(), &reading(avail), T)
                    .iter()
                    .all(|e| e.issue != Issue::DiskFull),
                "{avail}: no repeat while full or just above the edge"
            );
        }
        let freed = w.observe(Utc::now(), &reading(20 << 20), T);
        assert!(!w.full());
        assert!(freed
            .iter()
            .any(|e| e.issue == Issue::DiskFull && e.phase == Phase::Resolved));
    }

    fn run(watch: &mut DiskWatch, p: f64) -> Option<(Severity, Phase, Issue)> {
        let events = watch.observe(Utc::now(), &at_percent(p), T);
        assert!(events.len() <= 1, "{events:?}");
        events.first().map(|e| (e.severity, e.phase, e.issue))
    }

    #[test]
    fn one_alert_per_level_not_per_check() {
        let mut w = DiskWatch::new();
        assert_eq!(run(&mut w, 50.0), None);
        assert_eq!(
            run(&mut w, 86.0),
            Some((Severity::Warning, Phase::Firing, Issue::DiskWarning))
        );
        for _ in 0..10 {
            assert_eq!(run(&mut w, 87.0), None, "a steady warning repeats nothing");
        }
        assert_eq!(
            run(&mut w, 91.0),
            Some((Severity::Critical, Phase::Firing, Issue::DiskCritical))
        );
        for _ in 0..10 {
            assert_eq!(run(&mut w, 95.0), None, "a steady critical repeats nothing");
        }
        // Down to warning: the open Critical stays as it is.
        assert_eq!(run(&mut w, 86.0), None);
        assert_eq!(
            run(&mut w, 40.0),
            Some((Severity::Warning, Phase::Resolved, Issue::DiskWarning))
        );
        assert_eq!(run(&mut w, 40.0), None);
    }

    #[test]
    fn hovering_at_a_threshold_does_not_flap() {
        let mut w = DiskWatch::new();
        assert!(run(&mut w, 85.0).is_some());
        for p in [84.5, 85.2, 84.1, 85.0, 84.3] {
            assert_eq!(run(&mut w, p), None, "{p}");
        }
        assert_eq!(
            run(&mut w, 83.9).map(|x| x.1),
            Some(Phase::Resolved),
            "resolved a full point below the threshold"
        );
        // From critical, hovering just under 90 keeps it critical; a
        // return above does not page again.
        assert!(run(&mut w, 90.0).is_some());
        assert_eq!(run(&mut w, 89.5), None);
        assert_eq!(run(&mut w, 90.5), None);
    }

    #[test]
    fn percent_counts_the_root_reserve_as_used() {
        let r = DiskReading {
            mount_point: "/".into(),
            total_bytes: 1000,
            free_bytes: 100,
            available_bytes: 50,
        };
        assert_eq!(r.used_bytes(), 900);
        assert!((r.percent() - 900.0 * 100.0 / 950.0).abs() < 1e-9);
    }
}
