//! The composition root: builds the alert pipeline, the daemon's loop and
//! the HTTP edge from one config, wires their channels and runs them until
//! shutdown. Nothing else knows about all three.

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::daemon::{self, Daemon, RunOptions};
use crate::events::AlertSink;
use crate::token::ApiToken;
use crate::{alerts, http, mediamtx};

/// `[mediamtx] binary` does not exist: a configuration problem of the box
/// (exit 78, so systemd does not retry every few seconds until someone
/// installs MediaMTX and restarts the service).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingBinary(pub String);

/// Runs the daemon until `shutdown` fires, then stops MediaMTX gracefully,
/// the API and the alert pipeline (which stores what is still queued).
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let binary = mediamtx::resolve_binary(&config.mediamtx.binary).ok_or_else(|| {
        anyhow::Error::new(MissingBinary(mediamtx::missing_binary_help(
            &config.mediamtx.binary,
        )))
    })?;
    std::fs::create_dir_all(&config.state.dir)
        .with_context(|| format!("creating {}", config.state.dir.display()))?;
    std::fs::create_dir_all(&config.recording.path)
        .with_context(|| format!("creating {}", config.recording.path.display()))?;
    let token = Arc::new(match ApiToken::open(&config.api.token_file) {
        Ok(t) => t,
        Err(e) => {
            // Reading still works; changes through the API are refused until
            // the token file is readable (it is re-read on every check).
            tracing::error!(
                error = format!("{e:#}"),
                "no API token: reset, silences and the webhook are refused"
            );
            ApiToken::watching(&config.api.token_file)
        }
    });
    crate::metrics::install();

    // Alerts: stored in SQLite before anything is sent.
    let (sink, alert_rx) = AlertSink::channel(1024);
    let alerts_shutdown = CancellationToken::new();
    // A database that cannot be opened must not stop the supervision of
    // recording, nor the alerts: the same pipeline runs on a database in
    // memory (no history across a restart) and pages about it.
    let alerts = match alerts::open(&config) {
        Ok(pipeline) => pipeline.start(alert_rx, alerts_shutdown.clone()),
        Err(e) => {
            tracing::error!(
                error = %e,
                "the alert database cannot be used: alerts are kept in memory (still shown and sent, lost on restart) until it is fixed"
            );
            let alerts =
                alerts::open_in_memory(&config, &e)?.start(alert_rx, alerts_shutdown.clone());
            sink.send(alerts::store_unusable(&e.to_string(), Utc::now()))
                .await;
            alerts
        }
    };

    let (handle, ends) = daemon::channels(&config, alerts.store_error().map(str::to_string));
    let (alert_events, _) = broadcast::channel(256);
    let api_shutdown = CancellationToken::new();
    let api_task = tokio::spawn(http::serve(
        listener,
        http::ApiState {
            daemon: handle,
            alert_events: alert_events.clone(),
            alerts: alerts.clone(),
            token,
        },
        api_shutdown.clone(),
    ));

    let daemon = Daemon::new(
        Arc::new(config),
        binary,
        sink,
        alerts.clone(),
        alert_events,
        ends,
    )
    .await?;
    let result = daemon.run(options, shutdown).await;

    api_shutdown.cancel();
    let _ = api_task.await;
    alerts_shutdown.cancel();
    alerts.stopped().await;
    result
}
