//! The backup decisions, without I/O: what to upload next, bounded
//! concurrency, backoff, configuration errors and the lag alert.

use std::collections::{BTreeMap, BTreeSet};

use super::queue::{Backlog, SegKey};
use super::s3::S3Error;
use crate::storage::{Micros, SECOND};

/// Tunables, from `[backup]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub concurrency: usize,
    pub lag_warning: Micros,
    pub lag_critical: Micros,
    /// First retry delay; doubles per failure up to `backoff_max`.
    pub backoff_base: Micros,
    pub backoff_max: Micros,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 2,
            lag_warning: 2 * crate::storage::HOUR,
            lag_critical: 24 * crate::storage::HOUR,
            backoff_base: 5 * SECOND,
            backoff_max: 10 * 60 * SECOND,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

/// What the machine tells the daemon (mapped to `AlertEvent`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupAlert {
    /// The oldest segment not yet backed up is older than a threshold.
    Lag {
        level: Level,
        lag_seconds: u64,
        segments: u64,
        bytes: u64,
    },
    /// Caught up (below the warning threshold).
    LagResolved,
    /// The service refuses the configuration; uploads stop until
    /// `vms-supervisor backup retry`.
    Config {
        code: String,
        message: String,
    },
    ConfigResolved,
}

impl BackupAlert {
    /// The operator-facing text.
    pub fn text(&self) -> String {
        match self {
            BackupAlert::Lag {
                level,
                lag_seconds,
                segments,
                bytes,
            } => format!(
                "backup {:?}: {:.1} h of footage not yet off-site ({segments} segments, {:.1} MB)",
                level,
                *lag_seconds as f64 / 3600.0,
                *bytes as f64 / 1e6
            ),
            BackupAlert::LagResolved => "backup caught up".into(),
            BackupAlert::Config { code, message } => format!(
                "backup stopped: the S3 service answered {code} ({message}); fix [backup] in vms.toml \
                 (credentials, bucket, storage_class) and run `vms-supervisor backup retry`"
            ),
            BackupAlert::ConfigResolved => "backup configuration accepted".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A poll of the queue: the oldest pending segments (oldest first, at
    /// least `concurrency` more than are in flight) and the backlog.
    Queue {
        pending: Vec<SegKey>,
        backlog: Backlog,
        /// From the catalog's status row (set by a previous run, cleared by
        /// `backup retry`).
        config_error: Option<String>,
    },
    Uploaded(SegKey),
    Failed(SegKey, S3Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Upload(SegKey),
    Alert(BackupAlert),
    /// Record (or clear) the configuration error in the catalog.
    SetConfigError(Option<String>),
}

#[derive(Debug)]
pub struct Machine {
    settings: Settings,
    in_flight: BTreeSet<SegKey>,
    /// Per segment: failures so far and the earliest next try.
    retry: BTreeMap<SegKey, (u32, Micros)>,
    /// Consecutive transient failures of any segment: pauses everything
    /// while the service is unreachable instead of trying each segment.
    streak: u32,
    paused_until: Micros,
    config_error: Option<String>,
    lag: Level,
}

impl Machine {
    pub fn new(settings: Settings) -> Machine {
        Machine {
            settings,
            in_flight: BTreeSet::new(),
            retry: BTreeMap::new(),
            streak: 0,
            paused_until: Micros::MIN,
            config_error: None,
            lag: Level::Ok,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn config_error(&self) -> Option<&str> {
        self.config_error.as_deref()
    }

    fn backoff(&self, failures: u32) -> Micros {
        let exp = failures.saturating_sub(1).min(20);
        (self.settings.backoff_base.saturating_mul(1 << exp)).min(self.settings.backoff_max)
    }

    pub fn handle(&mut self, now: Micros, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Queue {
                pending,
                backlog,
                config_error,
            } => {
                match (&self.config_error, config_error) {
                    (Some(_), None) => {
                        // `backup retry` cleared it.
                        self.config_error = None;
                        self.retry.clear();
                        self.paused_until = Micros::MIN;
                        out.push(Action::Alert(BackupAlert::ConfigResolved));
                    }
                    (None, Some(e)) => {
                        // Left by a previous run: still in force.
                        self.config_error = Some(e.clone());
                        out.push(Action::Alert(BackupAlert::Config {
                            code: e,
                            message: "recorded before the restart".into(),
                        }));
                    }
                    _ => {}
                }
                self.lag_alert(now, &backlog, &mut out);
                if self.config_error.is_none() && now >= self.paused_until {
                    for seg in pending {
                        if self.in_flight.len() >= self.settings.concurrency {
                            break;
                        }
                        if self.in_flight.contains(&seg) {
                            continue;
                        }
                        if self.retry.get(&seg).is_some_and(|(_, at)| *at > now) {
                            continue;
                        }
                        self.in_flight.insert(seg);
                        out.push(Action::Upload(seg));
                    }
                }
            }
            Event::Uploaded(seg) => {
                self.in_flight.remove(&seg);
                self.retry.remove(&seg);
                self.streak = 0;
            }
            Event::Failed(seg, error) => {
                self.in_flight.remove(&seg);
                match error {
                    S3Error::Config { code, message } => {
                        if self.config_error.is_none() {
                            self.config_error = Some(code.clone());
                            out.push(Action::SetConfigError(Some(code.clone())));
                            out.push(Action::Alert(BackupAlert::Config { code, message }));
                        }
                    }
                    S3Error::Transient(_) => {
                        self.streak += 1;
                        self.paused_until = now + self.backoff(self.streak);
                        self.bump(now, seg);
                    }
                    S3Error::Digest(_) | S3Error::NotFound => self.bump(now, seg),
                }
            }
        }
        out
    }

    fn bump(&mut self, now: Micros, seg: SegKey) {
        let failures = self.retry.get(&seg).map_or(0, |(n, _)| *n) + 1;
        let at = now + self.backoff(failures);
        self.retry.insert(seg, (failures, at));
    }

    fn lag_alert(&mut self, now: Micros, backlog: &Backlog, out: &mut Vec<Action>) {
        let lag = backlog.oldest_end_us.map_or(0, |t| (now - t).max(0));
        let level = if backlog.segments == 0 || lag < self.settings.lag_warning {
            Level::Ok
        } else if lag < self.settings.lag_critical {
            Level::Warning
        } else {
            Level::Critical
        };
        if level == self.lag {
            return;
        }
        self.lag = level;
        out.push(Action::Alert(if level == Level::Ok {
            BackupAlert::LagResolved
        } else {
            BackupAlert::Lag {
                level,
                lag_seconds: (lag / SECOND) as u64,
                segments: backlog.segments,
                bytes: backlog.bytes,
            }
        }));
    }
}

/// Lag in seconds for the metric: age of the oldest pending segment.
pub fn lag_seconds(now: Micros, backlog: &Backlog) -> f64 {
    backlog
        .oldest_end_us
        .map_or(0.0, |t| (now - t).max(0) as f64 / SECOND as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::HOUR;

    const T0: Micros = 1_780_000_000 * SECOND;

    fn backlog(n: u64, oldest: Option<Micros>) -> Backlog {
        Backlog {
            segments: n,
            bytes: n * 1_000_000,
            oldest_end_us: oldest,
        }
    }

    fn queue(pending: &[SegKey], b: Backlog) -> Event {
        Event::Queue {
            pending: pending.to_vec(),
            backlog: b,
            config_error: None,
        }
    }

    fn uploads(actions: &[Action]) -> Vec<SegKey> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Upload(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn alerts(actions: &[Action]) -> Vec<BackupAlert> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Alert(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn concurrency_is_bounded_and_in_flight_not_restarted() {
        let mut m = Machine::new(Settings::default());
        let segs = [(1, 1), (1, 2), (2, 1)];
        let a = m.handle(T0, queue(&segs, backlog(3, Some(T0))));
        assert_eq!(uploads(&a), vec![(1, 1), (1, 2)]);
        assert!(uploads(&m.handle(T0, queue(&segs, backlog(3, Some(T0))))).is_empty());
        m.handle(T0, Event::Uploaded((1, 1)));
        let a = m.handle(T0, queue(&segs[1..], backlog(2, Some(T0))));
        assert_eq!(uploads(&a), vec![(2, 1)]);
    }

    #[test]
    fn transient_failures_back_off_everything_and_double() {
        let mut m = Machine::new(Settings::default());
        let segs = [(1, 1)];
        m.handle(T0, queue(&segs, backlog(1, Some(T0))));
        m.handle(T0, Event::Failed((1, 1), S3Error::Transient("down".into())));
        // Paused for 5 s.
        assert!(uploads(&m.handle(T0 + 4 * SECOND, queue(&segs, backlog(1, Some(T0))))).is_empty());
        let t = T0 + 5 * SECOND;
        assert_eq!(
            uploads(&m.handle(t, queue(&segs, backlog(1, Some(T0))))),
            segs
        );
        m.handle(t, Event::Failed((1, 1), S3Error::Transient("down".into())));
        // Second failure: 10 s.
        assert!(uploads(&m.handle(t + 9 * SECOND, queue(&segs, backlog(1, Some(T0))))).is_empty());
        assert_eq!(
            uploads(&m.handle(t + 10 * SECOND, queue(&segs, backlog(1, Some(T0))))),
            segs
        );
        // The cap holds.
        assert_eq!(m.backoff(30), Settings::default().backoff_max);
    }

    #[test]
    fn a_digest_mismatch_retries_that_segment_only() {
        let mut m = Machine::new(Settings::default());
        let segs = [(1, 1), (1, 2)];
        m.handle(T0, queue(&segs, backlog(2, Some(T0))));
        m.handle(
            T0,
            Event::Failed((1, 1), S3Error::Digest("BadDigest".into())),
        );
        m.handle(T0, Event::Uploaded((1, 2)));
        let a = m.handle(T0 + SECOND, queue(&segs[..1], backlog(1, Some(T0))));
        assert!(uploads(&a).is_empty(), "backing off");
        let a = m.handle(T0 + 5 * SECOND, queue(&segs[..1], backlog(1, Some(T0))));
        assert_eq!(uploads(&a), vec![(1, 1)], "retried, never marked done");
    }

    #[test]
    fn a_configuration_error_alerts_once_and_stops_until_retry() {
        let mut m = Machine::new(Settings::default());
        let segs = [(1, 1), (1, 2)];
        m.handle(T0, queue(&segs, backlog(2, Some(T0))));
        let err = || S3Error::Config {
            code: "InvalidStorageClass".into(),
            message: "m".into(),
        };
        let a = m.handle(T0, Event::Failed((1, 1), err()));
        assert_eq!(
            a,
            vec![
                Action::SetConfigError(Some("InvalidStorageClass".into())),
                Action::Alert(BackupAlert::Config {
                    code: "InvalidStorageClass".into(),
                    message: "m".into()
                })
            ]
        );
        // The second in-flight upload fails the same way: no second alert.
        assert!(m.handle(T0, Event::Failed((1, 2), err())).is_empty());
        // No uploads for an hour of polls.
        for i in 1..=720 {
            let ev = Event::Queue {
                pending: segs.to_vec(),
                backlog: backlog(2, Some(T0)),
                config_error: Some("InvalidStorageClass".into()),
            };
            assert!(uploads(&m.handle(T0 + i * 5 * SECOND, ev)).is_empty());
        }
        // `backup retry` cleared the row.
        let a = m.handle(T0 + HOUR, queue(&segs, backlog(2, Some(T0 + HOUR))));
        assert!(alerts(&a).contains(&BackupAlert::ConfigResolved));
        assert_eq!(uploads(&a), segs);
    }

    #[test]
    fn a_configuration_error_left_by_the_previous_run_stays_in_force() {
        let mut m = Machine::new(Settings::default());
        let a = m.handle(
            T0,
            Event::Queue {
                pending: vec![(1, 1)],
                backlog: backlog(1, Some(T0)),
                config_error: Some("AccessDenied".into()),
            },
        );
        assert!(uploads(&a).is_empty());
        assert_eq!(alerts(&a).len(), 1);
    }

    #[test]
    fn lag_alert_warns_escalates_and_resolves() {
        let mut m = Machine::new(Settings::default());
        let oldest = Some(T0);
        assert!(alerts(&m.handle(T0 + HOUR, queue(&[], backlog(5, oldest)))).is_empty());
        let a = alerts(&m.handle(T0 + 2 * HOUR, queue(&[], backlog(7, oldest))));
        assert_eq!(
            a,
            vec![BackupAlert::Lag {
                level: Level::Warning,
                lag_seconds: 7200,
                segments: 7,
                bytes: 7_000_000
            }]
        );
        assert!(a[0].text().contains("2.0 h"), "{}", a[0].text());
        assert!(alerts(&m.handle(T0 + 3 * HOUR, queue(&[], backlog(8, oldest)))).is_empty());
        let a = alerts(&m.handle(T0 + 24 * HOUR, queue(&[], backlog(9, oldest))));
        assert!(matches!(
            a[..],
            [BackupAlert::Lag {
                level: Level::Critical,
                ..
            }]
        ));
        let a = alerts(&m.handle(T0 + 25 * HOUR, queue(&[], backlog(0, None))));
        assert_eq!(a, vec![BackupAlert::LagResolved]);
        assert_eq!(lag_seconds(T0 + HOUR, &backlog(1, oldest)), 3600.0);
    }
}
