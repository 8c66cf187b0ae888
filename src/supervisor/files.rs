//! Decisions about the two configuration files: when the generated
//! `mediamtx.yml` may be written ([`WriteSpacer`]), and when an invalid
//! `vms.toml` edit is alerted and resolved ([`ConfigErrors`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::events::{AlertEvent, Issue, Phase, Severity};

/// MediaMTX ignores a file change less than 1 s after the previous reload
/// (docs/mediamtx.md §0.9): our writes are spaced by more than that.
pub const WRITE_SPACING: Duration = Duration::from_millis(1300);

/// Spaces the writes of `mediamtx.yml`: a text identical to the one written
/// is not written again, and a text that comes too soon after the previous
/// write waits (only the newest waiting text is kept).
#[derive(Debug)]
pub struct WriteSpacer {
    spacing: Duration,
    written: String,
    last_write: Option<Instant>,
    pending: Option<String>,
}

impl WriteSpacer {
    /// `written` was just written at `now` (at start).
    pub fn new(spacing: Duration, written: String, now: Instant) -> WriteSpacer {
        WriteSpacer {
            spacing,
            written,
            last_write: Some(now),
            pending: None,
        }
    }

    /// A new text to write: returns it if it should be written now, or
    /// keeps it for [`WriteSpacer::due`].
    pub fn offer(&mut self, text: String, now: Instant) -> Option<String> {
        if text == self.written {
            self.pending = None;
            return None;
        }
        if self
            .last_write
            .is_some_and(|t| now.duration_since(t) < self.spacing)
        {
            self.pending = Some(text);
            return None;
        }
        self.pending = None;
        Some(text)
    }

    /// The waiting text, once its time has come.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        let text = self.pending.take()?;
        self.offer(text, now)
    }

    /// The text was written at `now`.
    pub fn wrote(&mut self, text: String, now: Instant) {
        self.written = text;
        self.last_write = Some(now);
    }

    /// Writing failed: try again at the next [`WriteSpacer::due`], unless a
    /// newer text came in the meantime.
    pub fn failed(&mut self, text: String) {
        if self.pending.is_none() {
            self.pending = Some(text);
        }
    }
}

/// The key of the one "invalid configuration" alert.
const KEY: &str = "config:invalid";

/// Whether `vms.toml` has an error the daemon refused, and the alert about
/// it: one Warning per distinct error, resolved when a valid file loads.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    current: Option<String>,
}

impl ConfigErrors {
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// An edit failed to load with `message` (which names the key).
    pub fn invalid(&mut self, at: DateTime<Utc>, message: String) -> Option<AlertEvent> {
        if self.current.as_deref() == Some(message.as_str()) {
            return None;
        }
        self.current = Some(message.clone());
        Some(AlertEvent::system(
            at,
            Severity::Warning,
            Phase::Firing,
            KEY,
            Issue::ConfigInvalid,
            message,
        ))
    }

    /// An edit loaded.
    pub fn valid(&mut self, at: DateTime<Utc>) -> Option<AlertEvent> {
        self.current.take()?;
        Some(AlertEvent::system(
            at,
            Severity::Warning,
            Phase::Resolved,
            KEY,
            Issue::ConfigInvalid,
            "configuration is valid again",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_spaced_and_only_the_newest_waits() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = WriteSpacer::new(WRITE_SPACING, "a".into(), t0);
        assert_eq!(w.offer("a".into(), t0 + ms(5000)), None, "unchanged text");
        assert_eq!(w.offer("b".into(), t0 + ms(500)), None, "too soon");
        assert_eq!(w.offer("c".into(), t0 + ms(600)), None, "too soon");
        assert_eq!(w.due(t0 + ms(1000)), None, "still too soon");
        assert_eq!(w.due(t0 + ms(1300)), Some("c".into()), "the newest text");
        w.wrote("c".into(), t0 + ms(1300));
        assert_eq!(w.due(t0 + ms(5000)), None, "nothing waits");
        assert_eq!(w.offer("d".into(), t0 + ms(2000)), None);
        assert_eq!(
            w.offer("c".into(), t0 + ms(2100)),
            None,
            "back to the written text: nothing to do"
        );
        assert_eq!(w.due(t0 + ms(9000)), None);
    }

    #[test]
    fn a_failed_write_is_retried() {
        let t0 = Instant::now();
        let mut w = WriteSpacer::new(WRITE_SPACING, "a".into(), t0);
        let later = t0 + Duration::from_secs(5);
        let text = w.offer("b".into(), later).unwrap();
        w.failed(text);
        assert_eq!(w.due(later + Duration::from_secs(1)), Some("b".into()));
    }

    #[test]
    fn one_alert_per_distinct_config_error_and_one_resolution() {
        let mut c = ConfigErrors::default();
        let now = Utc::now();
        assert!(c.valid(now).is_none(), "nothing to resolve");
        let e = c
            .invalid(now, "vms.toml: cameras[0].url: bad".into())
            .unwrap();
        assert_eq!((e.severity, e.phase), (Severity::Warning, Phase::Firing));
        assert!(
            c.invalid(now, "vms.toml: cameras[0].url: bad".into())
                .is_none(),
            "same error again"
        );
        assert!(
            c.invalid(now, "vms.toml: api.listen: bad".into()).is_some(),
            "a new error"
        );
        assert_eq!(c.current(), Some("vms.toml: api.listen: bad"));
        assert_eq!(c.valid(now).unwrap().phase, Phase::Resolved);
        assert!(c.valid(now).is_none());
        assert_eq!(c.current(), None);
    }
}
