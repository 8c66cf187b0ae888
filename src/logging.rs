//! Logging: tracing, to journald when running under systemd (every field
//! becomes a journal field, so `journalctl -u vms-supervisor CAMERA_ID=5`
//! works), otherwise JSON lines on stderr. `RUST_LOG` filters (default info).
//!
//! The JSON lines are ours rather than tracing-subscriber's, so an alert's
//! line is the structured log line of docs/design.md §5.5 exactly: `level` is the alert's
//! level (`CRITICAL`, `WARNING`, `INFO`) and `timestamp` is when it
//! happened, next to `camera_id`, `camera_name`, `issue`,
//! `recovery_attempts` and `last_recording`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // JOURNAL_STREAM is set by systemd when stderr goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            registry
                .with(
                    journald
                        .with_syslog_identifier("vms-supervisor".into())
                        // Fields as they are named (CAMERA_ID, ISSUE...), so
                        // `journalctl CAMERA_ID=5` works; the default adds "F_".
                        .with_field_prefix(None),
                )
                .init();
            return;
        }
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(std::io::stderr),
        )
        .init();
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`,
/// then the event's fields.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", to_json(event))
    }
}

/// The JSON object of one event.
pub fn to_json(event: &Event<'_>) -> Value {
    let mut fields = Fields(Map::new());
    event.record(&mut fields);
    let mut fields = fields.0;
    let meta = event.metadata();
    let mut line = Map::new();
    let timestamp = fields.remove("alert_timestamp").unwrap_or_else(|| {
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    });
    line.insert("timestamp".into(), timestamp);
    let level = fields
        .remove("alert_level")
        .unwrap_or_else(|| Value::String(meta.level().to_string()));
    line.insert("level".into(), level);
    line.insert("target".into(), Value::String(meta.target().into()));
    if let Some(message) = fields.remove("message") {
        line.insert("message".into(), message);
    }
    line.extend(fields);
    Value::Object(line)
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The alert line is the example of docs/design.md §5.5, field for field.
    #[test]
    fn an_alert_is_the_designs_log_line() {
        let event = crate::events::AlertEvent {
            at: "2026-01-05T14:35:22Z".parse().unwrap(),
            severity: crate::events::Severity::Critical,
            phase: crate::events::Phase::Firing,
            key: "camera:5:recording_stopped".into(),
            issue: crate::events::Issue::RecordingStopped,
            camera: Some(crate::events::CameraRef {
                id: 5,
                name: "Portaria Principal".into(),
            }),
            recovery_attempts: 3,
            last_recording: Some("2026-01-05T14:20:15Z".parse().unwrap()),
            details: "recording did not resume".into(),
        };
        let lines = capture(|| crate::alerts::log_event(&event, None));
        let line = &lines[0];
        assert_eq!(line["timestamp"], "2026-01-05T14:35:22.000Z");
        assert_eq!(line["level"], "CRITICAL");
        assert_eq!(line["camera_id"], 5);
        assert_eq!(line["camera_name"], "Portaria Principal");
        assert_eq!(line["issue"], "recording_stopped");
        assert_eq!(line["recovery_attempts"], 3);
        assert_eq!(line["last_recording"], "2026-01-05T14:20:15.000Z");
    }

    #[test]
    fn other_lines_carry_their_own_level_and_fields() {
        let lines = capture(|| tracing::warn!(pid = 42, path = "cam_1", "MediaMTX went down"));
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["message"], "MediaMTX went down");
        assert_eq!(lines[0]["pid"], 42);
        assert_eq!(lines[0]["path"], "cam_1");
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
