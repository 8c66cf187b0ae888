//! Logging: tracing, to journald when running under systemd (every field
//! becomes a journal field, so `journalctl -u vms-supervisor CAMERA_ID=5`
//! works), otherwise JSON lines on stderr. `RUST_LOG` filters (default info).

use tracing_subscriber::layer::SubscriberExt;
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
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_writer(std::io::stderr),
        )
        .init();
}
