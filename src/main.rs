//! The `vms-supervisor` command: parse the CLI, load the config, set up
//! logging, run. Exit codes are decided here and nowhere else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use vms_supervisor::access::AuditFilter;
use vms_supervisor::config::{self, Config, ConfigError};
use vms_supervisor::{app, cli, daemon, logging, mediamtx};

/// sysexits EX_CONFIG: the unit's `RestartPreventExitStatus=78` keeps systemd
/// from restarting in a loop on a bad config.
const EXIT_CONFIG: u8 = 78;
/// `status`: a camera is offline or not recording.
const EXIT_PROBLEM: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Config(path, e)) => {
            eprintln!(
                "vms-supervisor: invalid configuration {}: {e}",
                path.display()
            );
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Other(e)) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("vms-supervisor: {e:#}");
            if e.downcast_ref::<app::MissingBinary>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

enum Failure {
    Config(PathBuf, ConfigError),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::Config(path.to_path_buf(), e))
}

/// The config for a command that talks to the running daemon. An invalid
/// file is a warning, not a refusal: the daemon keeps running its previous
/// config, and the administrator who broke the file needs `status` most.
fn load_client(path: &Path) -> Result<Config, Failure> {
    let (config, error) =
        Config::load_for_client(path).map_err(|e| Failure::Config(path.to_path_buf(), e))?;
    if let Some(e) = error {
        eprintln!(
            "warning: {}: {e} (the running daemon keeps its previous configuration; check it with `vms-supervisor check-config`)",
            path.display()
        );
    }
    Ok(config)
}

/// The demo's dashboard login: user `demo`, password `demo-demo-demo`
/// (admin), made in the demo's own state directory (/tmp/vms-demo) when it
/// is not there. Only `run --demo` does this; an installed box has no user
/// until an administrator adds one (README, "The first admin").
const DEMO_USER: (&str, &str) = ("demo", "demo-demo-demo");

fn demo_user(config: &Config) -> anyhow::Result<()> {
    use vms_supervisor::access::{password, store::Store, Role};
    std::fs::create_dir_all(&config.state.dir)
        .with_context(|| format!("creating {}", config.state.dir.display()))?;
    let mut store = Store::open(&vms_supervisor::access::db_path(config))?;
    if store.user(DEMO_USER.0)?.is_none() {
        let hash = password::hash(DEMO_USER.1)?;
        store.add_user(DEMO_USER.0, Role::Admin, &[], &hash, chrono::Utc::now())?;
    }
    eprintln!(
        "demo: the dashboard is at http://{}/ (user {:?}, password {:?})",
        config.api.listen, DEMO_USER.0, DEMO_USER.1
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::CheckConfig { path } => {
            let path = path.unwrap_or(cli.config);
            let config = load(&path)?;
            let n = config.cameras.len();
            println!(
                "{}: ok ({n} camera{})",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RenderMediamtx => {
            let config = load(&cli.config)?;
            print!("{}", mediamtx::render::render(&config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { demo } => {
            let (config, watch) = if demo {
                let path = PathBuf::from("<embedded demo config>");
                let config =
                    Config::from_toml(config::DEMO_TOML).map_err(|e| Failure::Config(path, e))?;
                demo_user(&config)?;
                (config, None)
            } else {
                (load(&cli.config)?, Some(cli.config.clone()))
            };
            logging::init();
            tracing::info!(
                version = vms_supervisor::VERSION,
                cameras = config.cameras.len(),
                "starting"
            );
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.api.listen)
                    .await
                    .with_context(|| format!("listening on {} (api.listen)", config.api.listen))?;
                let shutdown = CancellationToken::new();
                let (reload_tx, reload) = tokio::sync::mpsc::channel(1);
                tokio::spawn(
                    signals(shutdown.clone(), reload_tx).context("installing signal handlers")?,
                );
                app::run(
                    config,
                    listener,
                    daemon::RunOptions {
                        config_path: watch,
                        reload,
                    },
                    shutdown,
                )
                .await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let config = load_client(&cli.config)?;
            let (text, problem) = runtime()?.block_on(cli::status::text(&config))?;
            print!("{text}");
            Ok(if problem {
                ExitCode::from(EXIT_PROBLEM)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Alerts { limit, action } => {
            let config = load_client(&cli.config)?;
            let text = runtime()?.block_on(async {
                match action {
                    None => cli::alerts::recent_text(&config, limit).await,
                    Some(AlertsAction::Silence {
                        id,
                        duration,
                        reason,
                    }) => cli::alerts::silence(&config, id, duration.get(), &reason).await,
                    Some(AlertsAction::Unsilence { id }) => {
                        cli::alerts::unsilence(&config, id).await
                    }
                }
            })?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Recordings { id, from, to } => {
            let config = load_client(&cli.config)?;
            let tz = config.timezone();
            let parse = |t: &str| cli::storage::parse_time(t, tz).map_err(anyhow::Error::msg);
            print!(
                "{}",
                cli::storage::recordings(&config, id, parse(&from)?, parse(&to)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Hold { action } => {
            let config = load_client(&cli.config)?;
            let tz = config.timezone();
            let parse = |t: &str| cli::storage::parse_time(t, tz).map_err(anyhow::Error::msg);
            let text = match action {
                HoldAction::Add {
                    id,
                    from,
                    to,
                    reason,
                } => cli::storage::hold_add(&config, id, parse(&from)?, parse(&to)?, &reason)?,
                HoldAction::List => cli::storage::hold_list(&config)?,
                HoldAction::Release { hold_id } => cli::storage::hold_release(&config, hold_id)?,
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { action } => {
            let text = match action {
                BackupAction::Status => cli::backup::status(&load_client(&cli.config)?)?,
                BackupAction::Retry => cli::backup::retry(&load_client(&cli.config)?)?,
                BackupAction::Restore { id, from, to, dir } => {
                    // The bucket's keys: loaded as the daemon loads them.
                    let config = Config::load(&cli.config)
                        .map_err(|e| Failure::Config(cli.config.clone(), e))?;
                    let tz = config.timezone();
                    let parse =
                        |t: &str| cli::storage::parse_time(t, tz).map_err(anyhow::Error::msg);
                    let (from, to) = (parse(&from)?, parse(&to)?);
                    runtime()?.block_on(cli::backup::restore(&config, id, from, to, &dir))?
                }
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::User { action } => {
            let config = load_client(&cli.config)?;
            let text = match action {
                UserAction::Add {
                    name,
                    role,
                    cameras,
                } => cli::access::add(&config, &name, &role, &cameras)?,
                UserAction::List => cli::access::list(&config)?,
                UserAction::Passwd { name } => cli::access::passwd(&config, &name)?,
                UserAction::Disable { name } => cli::access::disable(&config, &name, true)?,
                UserAction::Enable { name } => cli::access::disable(&config, &name, false)?,
                UserAction::Remove { name } => cli::access::remove(&config, &name)?,
                UserAction::Unlock { name } => cli::access::unlock(&config, &name)?,
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            user,
            action,
            camera,
            since,
            limit,
        } => {
            let config = load_client(&cli.config)?;
            let tz = config.timezone();
            let since = since
                .map(|t| cli::storage::parse_time(&t, tz).map_err(anyhow::Error::msg))
                .transpose()?;
            print!(
                "{}",
                cli::access::trail(
                    &config,
                    AuditFilter {
                        actor: user,
                        action,
                        camera,
                        since,
                        limit,
                    }
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Camera {
            action: CameraAction::Reset { id },
        } => {
            let config = load_client(&cli.config)?;
            print!("{}", runtime()?.block_on(cli::reset_camera(&config, id))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SIGTERM (systemd) or SIGINT (Ctrl-C): a graceful stop. SIGHUP: reload
/// the configuration file (as an edit of it would). SIGUSR1 and SIGUSR2:
/// ignored (their default action would kill the daemon, and with it the
/// recording).
///
/// The handlers are installed before this returns (so no signal that comes
/// early takes its default action); the returned future handles them.
fn signals(
    shutdown: CancellationToken,
    reload: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received"); break; }
                _ = int.recv() => { tracing::info!("SIGINT received"); break; }
                _ = hup.recv() => { let _ = reload.try_send(()); }
                _ = usr1.recv() => tracing::info!("SIGUSR1 received; ignored"),
                _ = usr2.recv() => tracing::info!("SIGUSR2 received; ignored"),
            }
        }
        shutdown.cancel();
    })
}

/// Keeps 24/7 camera recording alive: supervises MediaMTX, watches
/// recordings, repairs streams and alerts when it cannot.
#[derive(Parser)]
#[command(name = "vms-supervisor", version = vms_supervisor::VERSION)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Use the embedded demo configuration (three simulated cameras,
        /// the MediaMTX stand-in, everything under /tmp/vms-demo).
        #[arg(long)]
        demo: bool,
    },
    /// Validate a configuration file: exit 0 if good, 78 naming the bad key.
    CheckConfig {
        /// The file to check (default: --config).
        path: Option<PathBuf>,
    },
    /// Print the MediaMTX configuration generated from --config.
    RenderMediamtx,
    /// Camera counts and recent alerts from the running daemon; exits 2 when
    /// a camera is offline or not recording.
    Status,
    /// Recent alerts (from the running daemon, or the database when it is
    /// down), and maintenance silences.
    Alerts {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(subcommand)]
        action: Option<AlertsAction>,
    },
    /// Camera commands.
    Camera {
        #[command(subcommand)]
        action: CameraAction,
    },
    /// A camera's recorded spans and the gaps between them, with their
    /// cause (from the segment catalog; works with the daemon stopped).
    Recordings {
        id: u32,
        /// RFC 3339 (2026-11-29T14:00:00Z) or local "YYYY-MM-DD HH:MM".
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Legal holds: footage kept from retention and eviction.
    Hold {
        #[command(subcommand)]
        action: HoldAction,
    },
    /// The off-site copy to S3: its queue, a retry after a configuration
    /// error, and restoring footage from the bucket.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Dashboard users (on the access database; works with the daemon
    /// stopped; needs root or the vms user).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// The audit trail: logins, live views, playback, changes; newest first.
    Audit {
        /// Only what this user (or `api-token`, `cli:root`...) did.
        #[arg(long)]
        user: Option<String>,
        /// Only one action: evidence_export, config_reload, hold_add, ...
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        camera: Option<u32>,
        /// RFC 3339 or local "YYYY-MM-DD HH:MM".
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum BackupAction {
    /// Whether backup is on, the queue, the lag and the last error.
    Status,
    /// Resume after a configuration error (fix [backup] first).
    Retry,
    /// Fetch a camera's footage of a time range from the bucket into DIR,
    /// each file checked against the SHA-256 taken at upload.
    Restore {
        id: u32,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password is asked (twice, not shown) on a terminal,
    /// or read from the first line of standard input.
    Add {
        name: String,
        /// viewer (live view), operator (+ playback, alerts, reset,
        /// silences) or admin (+ users, audit, evidence export).
        #[arg(long)]
        role: String,
        /// The cameras this user may see, e.g. "1,2" (default: all).
        #[arg(long, default_value = "")]
        cameras: String,
    },
    /// Users, roles, cameras, and whether disabled or locked.
    List,
    /// Set a new password (asked like for `add`); ends the user's sessions.
    Passwd { name: String },
    /// Refuse the user's logins and end its sessions.
    Disable { name: String },
    /// Allow a disabled user again.
    Enable { name: String },
    /// Delete the user (its audit rows stay).
    Remove { name: String },
    /// End a lockout after too many failed logins.
    Unlock { name: String },
}

#[derive(Subcommand)]
enum HoldAction {
    /// Keep a camera's footage of a time range until released.
    Add {
        id: u32,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
    },
    /// Holds in force.
    List,
    /// End a hold (it stays in the record).
    Release { hold_id: i64 },
}

#[derive(Subcommand)]
enum AlertsAction {
    /// Maintenance: the camera still records and its alerts are stored, but
    /// nobody is paged until the silence ends.
    Silence {
        id: u32,
        /// How long, e.g. "2h" or "30m".
        #[arg(long = "for", value_parser = parse_span)]
        duration: config::Span,
        #[arg(long, default_value = "maintenance")]
        reason: String,
    },
    /// End a camera's silence.
    Unsilence { id: u32 },
}

fn parse_span(s: &str) -> Result<config::Span, String> {
    config::Span::parse(s)
}

#[derive(Subcommand)]
enum CameraAction {
    /// Bring a camera marked offline (level 3) back under supervision.
    Reset { id: u32 },
}
