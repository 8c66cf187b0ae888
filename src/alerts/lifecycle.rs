//! The alert lifecycle as a pure decision: given the open alert with the
//! same key (if any), the new event and whether its camera is silenced, what
//! happens. The store applies the decision inside one transaction.

use crate::events::{AlertEvent, Phase, Severity};

/// The open alert (incident) that shares the event's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub incident_id: i64,
    pub severity: Severity,
    /// Whether someone was paged for it (alert or reminder pushed).
    pub pushed: bool,
}

/// What an event did to the alert with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Opened a new alert.
    Opened,
    /// Same key is already open: deduplicated.
    Repeated,
    /// Same key is open with a lower severity: raised.
    Escalated,
    /// Closed the open alert.
    Resolved,
    /// A Resolved event for a key that has no open alert.
    NothingOpen,
    /// A one-off fact.
    Notice,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Opened => "opened",
            Outcome::Repeated => "repeated",
            Outcome::Escalated => "escalated",
            Outcome::Resolved => "resolved",
            Outcome::NothingOpen => "nothing_open",
            Outcome::Notice => "notice",
        }
    }
}

/// Which push message the event causes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Alert,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub push: Option<Push>,
}

/// The routing of docs/design.md §5.1 plus dedup:
///
/// * Only Critical is pushed (Telegram + e-mail); Warning and Info are
///   stored (dashboard) and logged.
/// * One open alert per key: a repeat is not pushed again, unless it was
///   never pushed (it opened while its camera was silenced and the silence is
///   over now).
/// * A repeat with a higher severity escalates the open alert and is pushed
///   if it became Critical.
/// * A Resolved event closes the open alert and sends "resolved" only if
///   someone was paged for it (even if the camera is silenced by now: who
///   was paged wants to know it is over).
/// * A silenced camera's alerts are stored and logged, never pushed.
pub fn decide(open: Option<&OpenAlert>, event: &AlertEvent, silenced: bool) -> Decision {
    let pageable = event.severity == Severity::Critical && !silenced;
    let (outcome, push) = match (event.phase, open) {
        (Phase::Firing, None) => (Outcome::Opened, pageable.then_some(Push::Alert)),
        (Phase::Firing, Some(o)) if event.severity > o.severity => {
            (Outcome::Escalated, pageable.then_some(Push::Alert))
        }
        (Phase::Firing, Some(o)) => (
            Outcome::Repeated,
            (pageable && !o.pushed && o.severity == Severity::Critical).then_some(Push::Alert),
        ),
        (Phase::Resolved, Some(o)) => (Outcome::Resolved, o.pushed.then_some(Push::Resolved)),
        (Phase::Resolved, None) => (Outcome::NothingOpen, None),
        (Phase::Notice, _) => (Outcome::Notice, pageable.then_some(Push::Alert)),
    };
    Decision { outcome, push }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Issue;

    fn ev(severity: Severity, phase: Phase) -> AlertEvent {
        AlertEvent {
            at: chrono::Utc::now(),
            severity,
            phase,
            key: "camera:1:recording_stopped".into(),
            issue: Issue::RecordingStopped,
            camera: None,
            recovery_attempts: 0,
            last_recording: None,
            details: String::new(),
        }
    }

    fn open(severity: Severity, pushed: bool) -> OpenAlert {
        OpenAlert {
            incident_id: 1,
            severity,
            pushed,
        }
    }

    #[test]
    fn severity_table() {
        use Severity::*;
        for (sev, push) in [(Info, None), (Warning, None), (Critical, Some(Push::Alert))] {
            let d = decide(None, &ev(sev, Phase::Firing), false);
            assert_eq!(d.outcome, Outcome::Opened);
            assert_eq!(d.push, push, "{sev:?}");
        }
    }

    #[test]
    fn repeats_are_not_pushed_again() {
        let o = open(Severity::Critical, true);
        let d = decide(Some(&o), &ev(Severity::Critical, Phase::Firing), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Repeated,
                push: None
            }
        );
    }

    #[test]
    fn escalation_to_critical_pages() {
        let o = open(Severity::Warning, false);
        let d = decide(Some(&o), &ev(Severity::Critical, Phase::Firing), false);
        assert_eq!(d.outcome, Outcome::Escalated);
        assert_eq!(d.push, Some(Push::Alert));
        // A lower severity repeat neither escalates nor pages.
        let o = open(Severity::Critical, true);
        let d = decide(Some(&o), &ev(Severity::Warning, Phase::Firing), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Repeated,
                push: None
            }
        );
    }

    #[test]
    fn resolved_is_pushed_only_when_someone_was_paged() {
        let d = decide(
            Some(&open(Severity::Critical, true)),
            &ev(Severity::Info, Phase::Resolved),
            true,
        );
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Resolved,
                push: Some(Push::Resolved)
            }
        );
        let d = decide(
            Some(&open(Severity::Warning, false)),
            &ev(Severity::Info, Phase::Resolved),
            false,
        );
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Resolved,
                push: None
            }
        );
        let d = decide(None, &ev(Severity::Critical, Phase::Resolved), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::NothingOpen,
                push: None
            }
        );
    }

    #[test]
    fn silence_stores_but_does_not_page() {
        let d = decide(None, &ev(Severity::Critical, Phase::Firing), true);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Opened,
                push: None
            }
        );
        // After the silence, the next repeat of the never-pushed alert pages.
        let o = open(Severity::Critical, false);
        let d = decide(Some(&o), &ev(Severity::Critical, Phase::Firing), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Repeated,
                push: Some(Push::Alert)
            }
        );
    }

    #[test]
    fn notices_never_open_but_critical_ones_page() {
        let o = open(Severity::Critical, true);
        let d = decide(Some(&o), &ev(Severity::Info, Phase::Notice), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Notice,
                push: None
            }
        );
        let d = decide(None, &ev(Severity::Critical, Phase::Notice), false);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Notice,
                push: Some(Push::Alert)
            }
        );
    }
}
