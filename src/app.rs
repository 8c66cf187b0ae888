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

/// The lock file of a state directory.
pub const LOCK_FILE: &str = "vms-supervisor.lock";

/// Takes the state directory for this process (an exclusive `flock` held
/// until the returned file is dropped, released by the kernel if the process
/// dies), or fails naming the daemon that holds it. Two daemons on one
/// directory would kill each other's MediaMTX and write the same database.
pub fn lock_state_dir(dir: &std::path::Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::{Read as _, Seek as _, Write as _};
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            lock.rewind()?;
            writeln!(lock, "{}", std::process::id())?;
            Ok(lock)
        }
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            anyhow::bail!(
                "another vms-supervisor (pid {}) is already running with the state directory {}; stop it first, or give this one its own [state] dir",
                pid.trim(),
                dir.display()
            )
        }
    }
}

/// The access database (users, sessions, audit trail) on its owner thread,
/// and its hourly retention. A database that cannot be opened costs the
/// logins (nobody can log in; the token still works), not recording: the
/// same store runs in memory, with no users, and the error is logged.
fn start_access(config: &Config) -> crate::access::AccessHandle {
    let settings = crate::access::Settings::from_config(config);
    let path = crate::access::db_path(config);
    let store = crate::access::Store::open(&path).or_else(|e| {
        tracing::error!(error = %e, "the access database cannot be opened: nobody can log in to the dashboard until it is fixed");
        crate::access::Store::open_in_memory()
    });
    let store = match store {
        Ok(s) => s,
        Err(e) => panic!("an SQLite database in memory cannot be opened: {e}"),
    };
    let handle = crate::access::AccessHandle::start(store, settings);
    let pruner = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = Utc::now();
            match pruner.call(move |s, settings| s.prune(now, settings)).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(rows = n, "audit trail: rows past retention deleted")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "audit trail retention failed"),
                _ => {}
            }
        }
    });
    handle
}

/// The HTTPS listener (`[api] tls_listen`) and its TLS acceptor, or why
/// not. The pair was checked with the config; it is read again here.
async fn https_listener(
    config: &Config,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)> {
    let resolver = crate::tls::Resolver::new(cert, key)?;
    let listener = tokio::net::TcpListener::bind(config.api.tls_listen)
        .await
        .with_context(|| format!("listening on {} (api.tls_listen)", config.api.tls_listen))?;
    tracing::info!(
        listen = %config.api.tls_listen,
        cert = %cert.display(),
        "serving the dashboard and API over HTTPS"
    );
    let server = crate::tls::server_config(Arc::new(resolver));
    Ok((listener, tokio_rustls::TlsAcceptor::from(server)))
}

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
    // Before anything touches MediaMTX or the database: one daemon per
    // state directory.
    let _lock = lock_state_dir(&config.state.dir)?;
    // Before the TLS pair is read: its expiry is a metric.
    crate::metrics::install();
    let tls = match config.api.tls() {
        Some((cert, key)) => Some(https_listener(&config, cert, key).await?),
        None => None,
    };
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

    // The segment catalog: its own database and owner thread. A catalog
    // that cannot be opened costs the ledger and retention, not recording.
    let storage_db = match crate::storage::catalog::open(
        &config.state.dir.join(crate::storage::CATALOG_FILE),
    ) {
        Ok(conn) => Some(crate::storage::db::StorageDb::start(
            conn,
            config.recording.path.clone(),
            config.timezone(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "the segment catalog cannot be opened: no gap ledger, retention or eviction until it is fixed");
            None
        }
    };
    crate::storage::metrics::describe();
    let access = start_access(&config);
    // The credential the daemon presents to MediaMTX, readable by root and
    // the vms user (for querying MediaMTX's API by hand, and the tests).
    if let Err(e) = crate::durable::write_atomic(
        &config.state.dir.join(mediamtx::CREDENTIAL_FILE),
        format!("{}\n", mediamtx::credential()).as_bytes(),
    ) {
        tracing::warn!(error = %e, "cannot write the MediaMTX credential file");
    }
    let (handle, ends) = daemon::channels(&config, alerts.store_error());
    let (alert_events, _) = broadcast::channel(256);
    let api_shutdown = CancellationToken::new();
    let api_state = http::ApiState {
        daemon: handle,
        alert_events: alert_events.clone(),
        alerts: alerts.clone(),
        token,
        storage: storage_db.clone(),
        live: Arc::new(http::dashboard::LiveSettings::from_config(&config)),
        access: access.clone(),
        allowed_hosts: Arc::new(config.api.allowed_hosts.clone()),
        exports: Arc::new(
            crate::evidence::Exports::new(
                config.state.dir.join(crate::evidence::DIR),
                config.mediamtx.playback_address,
            )
            .with_recordings(crate::evidence::RecordingsDisk {
                root: config.recording.path.clone(),
                min_free: config.storage.min_free.map(|b| b.0),
                min_free_percent: config.storage.min_free_percent,
            }),
        ),
        tls: false,
    };
    // HTTPS for the LAN; the plain listener stays on loopback for this
    // box's own programs (docs/design.md, "HTTPS").
    let tls_task = tls.map(|(tls_listener, acceptor)| {
        tokio::spawn(http::serve_tls(
            tls_listener,
            acceptor,
            api_state.clone(),
            api_shutdown.clone(),
        ))
    });
    let api_task = tokio::spawn(http::serve(listener, api_state, api_shutdown.clone()));

    let daemon = Daemon::new(
        Arc::new(config),
        binary,
        sink,
        alerts.clone(),
        alert_events,
        ends,
        daemon::Records {
            storage: storage_db,
            access,
        },
    )
    .await?;
    let result = daemon.run(options, shutdown).await;

    api_shutdown.cancel();
    let _ = api_task.await;
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    alerts_shutdown.cancel();
    alerts.stopped().await;
    result
}
